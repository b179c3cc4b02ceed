// A stand-in for the WSO2 API Manager server, for tests only (the real pack cannot be downloaded here).
// It does what the provisioning code must get right and nothing else: it reads
// repository/conf/deployment.toml, opens HTTPS on 9443+offset with the keystore named in [keystore.tls],
// connects to every [database.*] through the JDBC driver jars in repository/components/lib and checks that
// the dbscripts were imported, then answers GET /health. Anything wrong makes it refuse to start with one
// clear ERROR line, as the real server would fail on the same mistakes.
//
// No external libraries: JDK 17 only.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Executors;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

public class StandIn {
    static Path home;
    static PrintWriter logFile;

    /** Datasource names and dbscript marker tables of the well-known databases. */
    static final Map<String, String[]> KNOWN = Map.of(
            "apim_db", new String[] {"WSO2AM_DB", "AM_API"},
            "shared_db", new String[] {"WSO2SHARED_DB", "UM_USER"});

    static synchronized void log(String level, String msg) {
        msg = msg.replaceAll("\\s*\\R\\s*", " ");
        String line = "[" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss,SSS"))
                + "]  " + level + " {org.wso2.standin.StandIn} - " + msg;
        System.out.println(line);
        System.out.flush();
        if (logFile != null) {
            logFile.println(line);
            logFile.flush();
        }
    }

    static void fail(String msg) {
        log("ERROR", msg);
        log("ERROR", "WSO2 Carbon (stand-in) refused to start");
        System.exit(1);
    }

    // ---- TOML subset: [table], [[array.of.tables]], key = "string" | 'string' | number | bool | [..] ----

    /** Tables by name; each [[array]] element is a table named "name#index". */
    static Map<String, Map<String, String>> parseToml(List<String> lines) {
        Map<String, Map<String, String>> tables = new LinkedHashMap<>();
        Map<String, Integer> arrays = new LinkedHashMap<>();
        Map<String, String> cur = new LinkedHashMap<>();
        tables.put("", cur);
        int n = 0;
        for (String raw : lines) {
            n++;
            String line = stripComment(raw).trim();
            if (line.isEmpty()) {
                continue;
            }
            if (line.startsWith("[[")) {
                if (!line.endsWith("]]")) {
                    fail("deployment.toml line " + n + ": bad array-of-tables header: " + raw);
                }
                String name = line.substring(2, line.length() - 2).trim();
                int i = arrays.merge(name, 1, Integer::sum) - 1;
                cur = new LinkedHashMap<>();
                tables.put(name + "#" + i, cur);
            } else if (line.startsWith("[")) {
                if (!line.endsWith("]")) {
                    fail("deployment.toml line " + n + ": bad table header: " + raw);
                }
                String name = line.substring(1, line.length() - 1).trim();
                for (String a : arrays.keySet()) {
                    if (a.startsWith(name + ".")) {
                        fail("deployment.toml line " + n + ": table [" + name + "] after [[" + a + "]]");
                    }
                }
                if (tables.containsKey(name)) {
                    fail("deployment.toml line " + n + ": table [" + name + "] defined twice");
                }
                cur = new LinkedHashMap<>();
                tables.put(name, cur);
            } else {
                int eq = line.indexOf('=');
                if (eq < 1) {
                    fail("deployment.toml line " + n + ": expected key = value: " + raw);
                }
                String key = unquote(line.substring(0, eq).trim());
                cur.put(key, value(line.substring(eq + 1).trim(), n));
            }
        }
        return tables;
    }

    static String stripComment(String s) {
        boolean dq = false;
        boolean sq = false;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && dq) {
                i++;
            } else if (c == '"' && !sq) {
                dq = !dq;
            } else if (c == '\'' && !dq) {
                sq = !sq;
            } else if (c == '#' && !dq && !sq) {
                return s.substring(0, i);
            }
        }
        return s;
    }

    static String unquote(String s) {
        if (s.length() >= 2 && (s.startsWith("\"") && s.endsWith("\"") || s.startsWith("'") && s.endsWith("'"))) {
            String body = s.substring(1, s.length() - 1);
            return s.startsWith("\"") ? body.replace("\\\"", "\"").replace("\\\\", "\\") : body;
        }
        return s;
    }

    static String value(String v, int n) {
        if (v.startsWith("\"") || v.startsWith("'")) {
            if (v.length() < 2 || v.charAt(v.length() - 1) != v.charAt(0)) {
                fail("deployment.toml line " + n + ": unterminated string");
            }
            return unquote(v);
        }
        if (v.startsWith("[")) {
            return v; // arrays are kept as text; nothing here reads them
        }
        if (v.equals("true") || v.equals("false") || v.matches("[+-]?[0-9][0-9_]*(\\.[0-9]+)?")) {
            return v;
        }
        fail("deployment.toml line " + n + ": unsupported value: " + v);
        return null;
    }

    // ---- startup ----

    public static void main(String[] args) throws Exception {
        home = Path.of(System.getProperty("carbon.home", ".")).toAbsolutePath().normalize();
        Files.createDirectories(home.resolve("repository/logs"));
        logFile = new PrintWriter(new FileWriter(home.resolve("repository/logs/wso2carbon.log").toFile(), true));
        String profile = System.getProperty("profile", "default");
        log("INFO", "Starting WSO2 API Manager (stand-in) at " + home + " with profile " + profile);

        Path tomlPath = home.resolve("repository/conf/deployment.toml");
        Map<String, Map<String, String>> toml = parseToml(Files.readAllLines(tomlPath, StandardCharsets.UTF_8));
        Map<String, String> server = toml.getOrDefault("server", Map.of());
        int offset = Integer.parseInt(server.getOrDefault("offset", "0"));
        String hostname = server.getOrDefault("hostname", "localhost");

        SSLContext ssl = tls(toml.get("keystore.tls"));

        Map<String, Connection> dbs = new LinkedHashMap<>();
        ClassLoader drivers = driverLoader();
        for (Map.Entry<String, Map<String, String>> t : toml.entrySet()) {
            if (t.getKey().startsWith("database.")) {
                String name = t.getKey().substring("database.".length());
                dbs.put(name, connect(drivers, name, t.getValue()));
            }
        }

        int port = 9443 + offset;
        HttpsServer https = HttpsServer.create(new InetSocketAddress(port), 50);
        https.setHttpsConfigurator(new HttpsConfigurator(ssl));
        HttpsServer gwHttps = HttpsServer.create(new InetSocketAddress(8243 + offset), 50);
        gwHttps.setHttpsConfigurator(new HttpsConfigurator(ssl));
        HttpServer gwHttp = HttpServer.create(new InetSocketAddress(8280 + offset), 50);
        for (HttpServer s : new HttpServer[] {https, gwHttps, gwHttp}) {
            s.createContext("/", ex -> handle(ex, dbs, profile, hostname));
            s.setExecutor(Executors.newFixedThreadPool(4));
            s.start();
        }
        log("INFO", "HTTPS on " + port + ", gateway on " + (8243 + offset) + "/" + (8280 + offset)
                + ", hostname " + hostname);
        log("INFO", "WSO2 Carbon (stand-in) started; profile " + profile);
    }

    static SSLContext tls(Map<String, String> ks) throws Exception {
        if (ks == null) {
            fail("keystore: deployment.toml has no [keystore.tls]");
        }
        String file = ks.getOrDefault("file_name", "wso2carbon.jks");
        String type = ks.getOrDefault("type", "JKS");
        String password = ks.getOrDefault("password", "");
        String alias = ks.getOrDefault("alias", "wso2carbon");
        String keyPassword = ks.getOrDefault("key_password", password);
        File f = home.resolve("repository/resources/security").resolve(file).toFile();
        String what = "keystore [keystore.tls] " + f;
        KeyStore store = KeyStore.getInstance(type);
        try (InputStream in = new FileInputStream(f)) {
            store.load(in, password.toCharArray());
        } catch (IOException e) {
            fail(what + ": cannot open (" + type + "): " + e.getMessage());
        }
        if (!store.isKeyEntry(alias)) {
            fail(what + ": no private key with alias '" + alias + "' (aliases: "
                    + String.join(", ", java.util.Collections.list(store.aliases())) + ")");
        }
        Key key;
        try {
            key = store.getKey(alias, keyPassword.toCharArray());
        } catch (Exception e) {
            fail(what + ": wrong key_password for alias '" + alias + "': " + e.getMessage());
            return null;
        }
        // Only the configured alias is served.
        KeyStore only = KeyStore.getInstance("PKCS12");
        only.load(null, null);
        only.setKeyEntry(alias, key, keyPassword.toCharArray(), store.getCertificateChain(alias));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(only, keyPassword.toCharArray());
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        log("INFO", "TLS keystore " + file + " (" + type + "), alias " + alias);
        return ctx;
    }

    static ClassLoader driverLoader() throws Exception {
        List<URL> jars = new ArrayList<>();
        File[] files = home.resolve("repository/components/lib").toFile().listFiles();
        if (files != null) {
            for (File j : files) {
                if (j.getName().endsWith(".jar")) {
                    jars.add(j.toURI().toURL());
                }
            }
        }
        return new URLClassLoader(jars.toArray(new URL[0]), StandIn.class.getClassLoader());
    }

    static Connection connect(ClassLoader loader, String name, Map<String, String> db) {
        String[] known = KNOWN.getOrDefault(name, new String[] {name, null});
        String label = "datasource " + known[0] + " (" + name + ")";
        String url = db.get("url");
        String driver = db.get("driver");
        if (url == null || driver == null) {
            fail(label + ": url and driver are required");
        }
        try {
            Driver d = (Driver) Class.forName(driver, true, loader).getDeclaredConstructor().newInstance();
            Properties p = new Properties();
            p.setProperty("user", db.getOrDefault("username", ""));
            p.setProperty("password", db.getOrDefault("password", ""));
            p.setProperty("connectTimeout", "5000");
            Connection c = d.connect(url, p);
            if (c == null) {
                fail(label + ": driver " + driver + " does not accept " + url);
            }
            if (known[1] != null) {
                try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT COUNT(*) FROM " + known[1])) {
                    r.next();
                } catch (SQLException e) {
                    fail(label + ": dbscript table " + known[1] + " missing: " + e.getMessage());
                }
            }
            log("INFO", label + " connected: " + url);
            return c;
        } catch (ClassNotFoundException e) {
            fail(label + ": JDBC driver class " + driver + " not found in repository/components/lib");
        } catch (SQLException e) {
            fail(label + ": " + e.getMessage());
        } catch (ReflectiveOperationException e) {
            fail(label + ": cannot load " + driver + ": " + e);
        }
        return null;
    }

    static void handle(HttpExchange ex, Map<String, Connection> dbs, String profile, String hostname)
            throws IOException {
        int code = 404;
        String body = "{\"error\":\"not found\"}";
        if (ex.getRequestURI().getPath().equals("/health")) {
            StringBuilder ds = new StringBuilder();
            boolean ok = true;
            for (Map.Entry<String, Connection> e : dbs.entrySet()) {
                String state;
                try {
                    state = e.getValue().isValid(3) ? "ok" : "down";
                } catch (SQLException err) {
                    state = "down";
                }
                ok &= state.equals("ok");
                ds.append(ds.length() == 0 ? "" : ",").append('"').append(e.getKey()).append("\":\"")
                        .append(state).append('"');
            }
            code = ok ? 200 : 503;
            body = "{\"status\":\"" + (ok ? "ok" : "degraded") + "\",\"datasources\":{" + ds
                    + "},\"profile\":\"" + profile + "\",\"hostname\":\"" + hostname + "\"}";
        }
        byte[] b = (body + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream o = ex.getResponseBody()) {
            o.write(b);
        }
    }
}
