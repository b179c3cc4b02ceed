// A stand-in for the WSO2 API Manager 4.x server, for tests only (the real pack cannot be downloaded here).
// It checks what the provisioning code must get right, the way the real server would meet it, and nothing
// else. At startup it reads repository/conf/deployment.toml (TOML: dotted keys, arrays, arrays of tables)
// and
//  - opens the keystores [keystore.primary], [keystore.internal] and [keystore.tls] with their effective
//    settings (primary defaults to wso2carbon.jks / JKS / wso2carbon / alias wso2carbon, the other two
//    default key by key to primary's): each must hold a private key for its alias, primary and internal an
//    RSA key of at least 2048 bits; opens [truststore] (default client-truststore.jks / wso2carbon), which
//    must hold a certificate that verifies the TLS key's chain;
//  - connects to every [database.*] through the JDBC driver jars in repository/components/lib and checks
//    that the dbscripts were imported;
//  - reads repository/conf/jndi2.properties when present: its AMQP URL must parse and its URL-encoded
//    user and password must decode to [super_admin]'s;
//  - listens (all ports + [server] offset) on HTTPS 9443 and HTTP 9763 (management, both configurable as
//    transport.http(s).properties.port), gateway HTTP 8280 / HTTPS 8243, WebSocket 9099 / 8099 (TLS), and,
//    with a traffic manager (profile default, control-plane or traffic-manager), the binary receivers 9611
//    and 9711 (TLS) and the JMS broker 5672; with [clustering] membership_scheme = "wka", local_member_port.
// Anything wrong there makes it refuse to start with one clear ERROR line, as the real server would fail.
// Then, in the background every 2 s, it checks that its peers are reachable: the traffic managers of every
// [[apim.throttling.url_group]] (tcp:// by TCP, ssl:// by a TLS handshake trusting [truststore]), every
// [[apim.gateway.environment]] service_url (TLS, trusting [truststore]), the jndi2.properties brokers and
// the wka cluster members. Every HTTP(S) port answers GET /health (200 only when every datasource is valid
// and every peer reachable, else 503 "degraded") and GET /health/node (200 when the node itself is ready:
// its datasources are valid; peers ignored).
//
// No external libraries: JDK 17 only.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.Reader;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Key;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECKey;
import java.security.interfaces.RSAKey;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

public class StandIn {
    static Path home;
    static PrintWriter logFile;

    /** Datasource names and dbscript marker tables of the well-known databases. */
    static final Map<String, String[]> KNOWN = Map.of(
            "apim_db", new String[] {"WSO2AM_DB", "AM_API"},
            "shared_db", new String[] {"WSO2SHARED_DB", "UM_USER"});

    /** The -Dprofile values of API-M 4.x, and which of them run a traffic manager. */
    static final Set<String> PROFILES = Set.of("default", "control-plane", "gateway-worker", "traffic-manager");
    static final Set<String> WITH_TM = Set.of("default", "control-plane", "traffic-manager");

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

    // ---- TOML: tables, dotted keys, strings, numbers, booleans, arrays, inline tables, arrays of tables ----

    /**
     * deployment.toml flattened to full key paths: "transport.http.properties.port" -> "9763". Scalars are
     * kept as text, arrays as List. The i-th [[a.b]] element's keys are "a.b[i].key"; "a.b" -> count.
     */
    static class Toml {
        final Map<String, Object> values = new LinkedHashMap<>();
        final Map<String, Integer> arrays = new LinkedHashMap<>();
        final Set<String> tables = new java.util.HashSet<>();
        final String src;
        final String file;
        int pos;
        int line = 1;

        Toml(String file, String src) {
            this.file = file;
            this.src = src;
        }

        void err(String msg) {
            fail(file + " line " + line + ": " + msg);
        }

        String get(String key, String dflt) {
            Object v = values.get(key);
            if (v instanceof List) {
                fail(file + ": " + key + " is an array, a single value is expected");
            }
            return v == null ? dflt : (String) v;
        }

        List<String> strings(String key) {
            Object v = values.get(key);
            List<String> out = new ArrayList<>();
            if (v == null) {
                return out;
            }
            if (!(v instanceof List)) {
                fail(file + ": " + key + " must be an array of strings, found " + v);
            }
            for (Object o : (List<?>) v) {
                if (!(o instanceof String)) {
                    fail(file + ": " + key + " must be an array of strings");
                }
                out.add((String) o);
            }
            return out;
        }

        int integer(String key, int dflt) {
            String v = get(key, null);
            if (v == null) {
                return dflt;
            }
            try {
                return Integer.parseInt(v.replace("_", ""));
            } catch (NumberFormatException e) {
                fail(file + ": " + key + " must be an integer, found " + v);
                return dflt;
            }
        }

        /** Names of the sub-tables of prefix ("database" -> apim_db, shared_db), in file order. */
        List<String> children(String prefix) {
            List<String> out = new ArrayList<>();
            for (String k : values.keySet()) {
                if (k.startsWith(prefix + ".")) {
                    String rest = k.substring(prefix.length() + 1);
                    int dot = rest.indexOf('.');
                    if (dot > 0 && !out.contains(rest.substring(0, dot))) {
                        out.add(rest.substring(0, dot));
                    }
                }
            }
            return out;
        }

        int count(String array) {
            return arrays.getOrDefault(array, 0);
        }

        char peek() {
            return pos < src.length() ? src.charAt(pos) : '\0';
        }

        char next() {
            char c = src.charAt(pos++);
            if (c == '\n') {
                line++;
            }
            return c;
        }

        void spaces() {
            while (peek() == ' ' || peek() == '\t') {
                pos++;
            }
        }

        /** Spaces, newlines and comments (inside arrays, between lines). */
        void blanks() {
            while (true) {
                spaces();
                if (peek() == '#') {
                    while (pos < src.length() && peek() != '\n') {
                        pos++;
                    }
                } else if (peek() == '\n' || peek() == '\r') {
                    next();
                } else {
                    return;
                }
            }
        }

        void endOfLine() {
            spaces();
            if (peek() == '#') {
                while (pos < src.length() && peek() != '\n') {
                    pos++;
                }
            }
            if (peek() == '\r') {
                pos++;
            }
            if (pos < src.length() && peek() != '\n') {
                err("unexpected text after a value: " + src.substring(pos, Math.min(src.length(), pos + 30)));
            }
        }

        List<String> key() {
            List<String> parts = new ArrayList<>();
            while (true) {
                spaces();
                char c = peek();
                if (c == '"' || c == '\'') {
                    parts.add(string());
                } else {
                    int start = pos;
                    while (Character.isLetterOrDigit(peek()) || peek() == '_' || peek() == '-') {
                        pos++;
                    }
                    if (pos == start) {
                        err("expected a key, found '" + (c == '\0' ? "end of file" : String.valueOf(c)) + "'");
                    }
                    parts.add(src.substring(start, pos));
                }
                spaces();
                if (peek() != '.') {
                    return parts;
                }
                pos++;
            }
        }

        /** The path of a header or key: an [[array]] on the way names its last element. */
        String path(String base, List<String> parts) {
            String p = base;
            for (String part : parts) {
                p = p.isEmpty() ? part : p + "." + part;
                if (arrays.containsKey(p)) {
                    p = p + "[" + (arrays.get(p) - 1) + "]";
                }
            }
            return p;
        }

        void put(String key, Object v) {
            if (values.containsKey(key) || tables.contains(key)) {
                err("key " + key + " defined twice");
            }
            for (String t = key; t.contains("."); ) {
                t = t.substring(0, t.lastIndexOf('.'));
                if (values.containsKey(t)) {
                    err("key " + key + ": " + t + " is already a value, not a table");
                }
                tables.add(t);
            }
            values.put(key, v);
        }

        Toml parse() {
            String table = "";
            Set<String> headers = new java.util.HashSet<>();
            while (true) {
                blanks();
                if (pos >= src.length()) {
                    return this;
                }
                if (peek() == '[') {
                    pos++;
                    boolean array = peek() == '[';
                    if (array) {
                        pos++;
                    }
                    List<String> parts = key();
                    if (peek() != ']' || array && (pos + 1 >= src.length() || src.charAt(pos + 1) != ']')) {
                        err("bad table header: expected " + (array ? "]]" : "]"));
                    }
                    pos += array ? 2 : 1;
                    endOfLine();
                    if (array) {
                        String name = path("", parts.subList(0, parts.size() - 1));
                        name = name.isEmpty() ? parts.get(parts.size() - 1) : name + "." + parts.get(parts.size() - 1);
                        if (values.containsKey(name) || headers.contains(name)) {
                            err("[[" + name + "]]: " + name + " is already a table or value");
                        }
                        int i = arrays.merge(name, 1, Integer::sum) - 1;
                        table = name + "[" + i + "]";
                    } else {
                        table = path("", parts);
                        if (!headers.add(table)) {
                            err("table [" + table + "] defined twice");
                        }
                        if (values.containsKey(table)) {
                            err("table [" + table + "]: already a value");
                        }
                    }
                    tables.add(table);
                } else {
                    List<String> parts = key();
                    if (peek() != '=') {
                        err("expected key = value");
                    }
                    pos++;
                    spaces();
                    String k = table.isEmpty() ? String.join(".", parts) : table + "." + String.join(".", parts);
                    value(k);
                    endOfLine();
                }
            }
        }

        /** Parses a value at pos into key k (inline tables are flattened under k). */
        void value(String k) {
            char c = peek();
            if (c == '{') {
                pos++;
                tables.add(k);
                spaces();
                if (peek() == '}') {
                    pos++;
                    return;
                }
                while (true) {
                    List<String> parts = key();
                    if (peek() != '=') {
                        err("inline table: expected key = value");
                    }
                    pos++;
                    spaces();
                    value(k + "." + String.join(".", parts));
                    spaces();
                    if (peek() == ',') {
                        pos++;
                    } else if (peek() == '}') {
                        pos++;
                        return;
                    } else {
                        err("inline table: expected , or }");
                    }
                }
            }
            put(k, item());
        }

        /** A scalar (as text) or an array (a List of items). */
        Object item() {
            char c = peek();
            if (c == '"' || c == '\'') {
                return string();
            }
            if (c == '[') {
                pos++;
                List<Object> list = new ArrayList<>();
                while (true) {
                    blanks();
                    if (peek() == ']') {
                        pos++;
                        return list;
                    }
                    if (peek() == '{') {
                        err("inline tables inside arrays are not supported by the stand-in");
                    }
                    list.add(item());
                    blanks();
                    if (peek() == ',') {
                        pos++;
                    } else if (peek() != ']') {
                        err("array: expected , or ]");
                    }
                }
            }
            int start = pos;
            while (pos < src.length() && " \t\r\n,]}#".indexOf(peek()) < 0) {
                pos++;
            }
            String v = src.substring(start, pos);
            if (v.equals("true") || v.equals("false")
                    || v.matches("[+-]?(0|[1-9](_?[0-9])*)(\\.[0-9](_?[0-9])*)?([eE][+-]?[0-9]+)?")) {
                return v;
            }
            err("unsupported value: " + (v.isEmpty() ? "(nothing)" : v));
            return null;
        }

        String string() {
            char q = next();
            if (peek() == q) {
                if (pos + 1 < src.length() && src.charAt(pos + 1) == q) {
                    err("multi-line strings are not supported by the stand-in");
                }
                pos++;
                return "";
            }
            StringBuilder b = new StringBuilder();
            while (true) {
                if (pos >= src.length() || peek() == '\n') {
                    err("unterminated string");
                }
                char c = next();
                if (c == q) {
                    return b.toString();
                }
                if (c == '\\' && q == '"') {
                    char e = next();
                    switch (e) {
                        case 'n' -> b.append('\n');
                        case 't' -> b.append('\t');
                        case 'r' -> b.append('\r');
                        case 'b' -> b.append('\b');
                        case 'f' -> b.append('\f');
                        case '"' -> b.append('"');
                        case '\\' -> b.append('\\');
                        case 'u', 'U' -> {
                            int n = e == 'u' ? 4 : 8;
                            if (pos + n > src.length()) {
                                err("bad \\" + e + " escape");
                            }
                            b.appendCodePoint(Integer.parseInt(src.substring(pos, pos + n), 16));
                            pos += n;
                        }
                        default -> err("bad escape \\" + e + " in a string");
                    }
                } else {
                    b.append(c);
                }
            }
        }
    }

    // ---- startup ----

    static Toml toml;
    static String profile;
    static int offset;
    static final Map<String, Connection> dbs = new LinkedHashMap<>();
    /** Peer URL -> what it is (for the log). */
    static final Map<String, String> peers = new LinkedHashMap<>();
    static final Map<String, Boolean> peerUp = new ConcurrentHashMap<>();
    static final Map<String, Integer> ports = new LinkedHashMap<>();
    static final Map<String, Integer> proxyPorts = new LinkedHashMap<>();
    static final Map<String, String> keystores = new LinkedHashMap<>();
    static SSLContext serverTls;
    static SSLContext clientTls;
    static X509TrustManager trust;
    static volatile long startedAt;
    static String hostname;
    static String nodeIp;

    public static void main(String[] args) throws Exception {
        home = Path.of(System.getProperty("carbon.home", ".")).toAbsolutePath().normalize();
        Files.createDirectories(home.resolve("repository/logs"));
        logFile = new PrintWriter(new FileWriter(home.resolve("repository/logs/wso2carbon.log").toFile(), true));
        profile = System.getProperty("profile", "default");
        log("INFO", "Starting WSO2 API Manager (stand-in) at " + home + " with profile " + profile);
        if (!PROFILES.contains(profile)) {
            fail("unknown profile '" + profile + "' (one of " + String.join(", ", new java.util.TreeSet<>(PROFILES))
                    + ")");
        }

        Path tomlPath = home.resolve("repository/conf/deployment.toml");
        toml = new Toml("deployment.toml", Files.readString(tomlPath, StandardCharsets.UTF_8)).parse();
        offset = toml.integer("server.offset", 0);
        hostname = toml.get("server.hostname", "localhost");
        nodeIp = toml.get("server.node_ip", InetAddress.getLocalHost().getHostAddress());

        keystores();

        ClassLoader drivers = driverLoader();
        for (String name : toml.children("database")) {
            dbs.put(name, connect(drivers, name));
        }

        jndi2();
        collectPeers();
        listen();

        ScheduledExecutorService checker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "peer-checker");
            t.setDaemon(true);
            return t;
        });
        checker.scheduleWithFixedDelay(StandIn::checkPeers, 0, 2, TimeUnit.SECONDS);

        startedAt = System.currentTimeMillis();
        log("INFO", "WSO2 Carbon (stand-in) started; profile " + profile);
    }

    // ---- keystores ----

    /** A keystore setting: [keystore.<section>] key, else primary's effective value. */
    static String ks(String section, String key) {
        String v = toml.get("keystore." + section + "." + key, null);
        if (v != null) {
            return v;
        }
        if (!section.equals("primary")) {
            return ks("primary", key);
        }
        return switch (key) {
            case "file_name" -> "wso2carbon.jks";
            case "type" -> "JKS";
            case "password", "alias" -> "wso2carbon";
            case "key_password" -> ks("primary", "password");
            default -> throw new IllegalArgumentException(key);
        };
    }

    static KeyStore open(String what, String file, String type, String password) throws Exception {
        File f = home.resolve("repository/resources/security").resolve(file).toFile();
        KeyStore store = null;
        try {
            store = KeyStore.getInstance(type);
        } catch (Exception e) {
            fail(what + " " + f + ": unknown keystore type " + type);
        }
        try (InputStream in = new FileInputStream(f)) {
            store.load(in, password.toCharArray());
        } catch (IOException e) {
            fail(what + " " + f + ": cannot open (" + type + "): " + e.getMessage());
        }
        return store;
    }

    static void keystores() throws Exception {
        Map<String, KeyStore> stores = new LinkedHashMap<>();
        for (String section : new String[] {"primary", "internal", "tls"}) {
            String what = "keystore [keystore." + section + "]";
            String file = ks(section, "file_name");
            String alias = ks(section, "alias");
            String keyPassword = ks(section, "key_password");
            KeyStore store = open(what, file, ks(section, "type"), ks(section, "password"));
            if (!store.isKeyEntry(alias)) {
                fail(what + " " + file + ": no private key with alias '" + alias + "' (aliases: "
                        + String.join(", ", Collections.list(store.aliases())) + ")");
            }
            Key key = null;
            try {
                key = store.getKey(alias, keyPassword.toCharArray());
            } catch (Exception e) {
                fail(what + " " + file + ": wrong key_password for alias '" + alias + "': " + e.getMessage());
            }
            String desc;
            if (key instanceof RSAKey rsa) {
                int bits = rsa.getModulus().bitLength();
                desc = "RSA " + bits;
                if (!section.equals("tls") && bits < 2048) {
                    fail(what + " " + file + ": alias '" + alias + "' is an RSA key of " + bits
                            + " bits; the " + section + " keystore signs and encrypts and needs RSA >= 2048");
                }
            } else if (key instanceof ECKey ec) {
                desc = "EC " + ec.getParams().getCurve().getField().getFieldSize();
                if (!section.equals("tls")) {
                    fail(what + " " + file + ": alias '" + alias + "' is an " + desc + " key; the " + section
                            + " keystore signs JWTs and encrypts with RSA and needs an RSA key (>= 2048 bits)");
                }
            } else {
                desc = key.getAlgorithm();
                if (!section.equals("tls")) {
                    fail(what + " " + file + ": alias '" + alias + "' is a " + desc + " key; RSA is needed");
                }
            }
            keystores.put(section, alias + " (" + desc + ")");
            log("INFO", what + " " + file + " (" + ks(section, "type") + "), alias " + alias + ", " + desc);
            if (section.equals("tls")) {
                // Only the configured alias is served.
                KeyStore only = KeyStore.getInstance("PKCS12");
                only.load(null, null);
                only.setKeyEntry(alias, key, keyPassword.toCharArray(), store.getCertificateChain(alias));
                KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(only, keyPassword.toCharArray());
                serverTls = SSLContext.getInstance("TLS");
                serverTls.init(kmf.getKeyManagers(), null, null);
                stores.put(section, store);
            }
        }

        String tsFile = toml.get("truststore.file_name", "client-truststore.jks");
        String tsType = toml.get("truststore.type", "JKS");
        KeyStore ts = open("truststore [truststore]", tsFile, tsType, toml.get("truststore.password", "wso2carbon"));
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        try {
            tmf.init(ts);
        } catch (Exception e) {
            fail("truststore [truststore] " + tsFile + ": unusable: " + e.getMessage());
        }
        trust = (X509TrustManager) tmf.getTrustManagers()[0];
        clientTls = SSLContext.getInstance("TLS");
        clientTls.init(null, new javax.net.ssl.TrustManager[] {trust}, null);
        String tlsAlias = ks("tls", "alias");
        Certificate[] chain = stores.get("tls").getCertificateChain(tlsAlias);
        X509Certificate[] x509 = new X509Certificate[chain.length];
        for (int i = 0; i < chain.length; i++) {
            x509[i] = (X509Certificate) chain[i];
        }
        String authType = x509[0].getPublicKey().getAlgorithm().equals("EC") ? "ECDHE_ECDSA" : "ECDHE_RSA";
        try {
            trust.checkServerTrusted(x509, authType);
        } catch (Exception e) {
            fail("truststore [truststore] " + tsFile + " does not trust the TLS certificate of [keystore.tls] ("
                    + x509[0].getSubjectX500Principal() + ", issued by " + x509[0].getIssuerX500Principal()
                    + "): the server could not call itself or its peers over TLS: " + e.getMessage());
        }
        log("INFO", "truststore " + tsFile + " (" + tsType + ", " + ts.size() + " entries) trusts the TLS certificate "
                + x509[0].getSubjectX500Principal());
    }

    // ---- databases ----

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

    static Connection connect(ClassLoader loader, String name) {
        String[] known = KNOWN.getOrDefault(name, new String[] {name, null});
        String label = "datasource " + known[0] + " (" + name + ")";
        String p = "database." + name + ".";
        String url = toml.get(p + "url", null);
        String driver = toml.get(p + "driver", null);
        if (url == null || driver == null) {
            fail(label + ": url and driver are required");
        }
        try {
            Driver d = (Driver) Class.forName(driver, true, loader).getDeclaredConstructor().newInstance();
            Properties props = new Properties();
            props.setProperty("user", toml.get(p + "username", ""));
            props.setProperty("password", toml.get(p + "password", ""));
            props.setProperty("connectTimeout", "5000");
            Connection c = d.connect(url, props);
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

    // ---- jndi2.properties (the JMS broker of the other active node) ----

    static final Pattern AMQP = Pattern.compile("amqp://([^:@/]*):([^@/]*)@([^@/:?]*)/([^?@]*)\\?(.*)");
    static final Pattern BROKERLIST = Pattern.compile("(?:^|&)brokerlist='([^']*)'");
    static final Pattern BROKER = Pattern.compile("tcp://([^:/?;,]+):([0-9]+)(\\?[^;,]*)?");
    static final Pattern URL_SAFE = Pattern.compile("([A-Za-z0-9._~!*()-]|%[0-9A-Fa-f]{2})*");

    static void jndi2() throws IOException {
        Path f = home.resolve("repository/conf/jndi2.properties");
        if (!Files.exists(f)) {
            return;
        }
        Properties props = new Properties();
        try (Reader r = Files.newBufferedReader(f, StandardCharsets.UTF_8)) {
            props.load(r);
        }
        for (String name : props.stringPropertyNames()) {
            if (!name.startsWith("connectionfactory.")) {
                continue;
            }
            String what = "jndi2.properties " + name;
            String url = props.getProperty(name).trim();
            Matcher m = AMQP.matcher(url);
            if (!m.matches()) {
                fail(what + ": not an AMQP connection URL amqp://USER:PASS@CLIENTID/VHOST?brokerlist='tcp://HOST:PORT'"
                        + " (is a special character of the user or password not URL-encoded?)");
            }
            String user = decode(what, "user", m.group(1));
            String password = decode(what, "password", m.group(2));
            String admin = toml.get("super_admin.username", "admin");
            if (!user.equals(admin) || !password.equals(toml.get("super_admin.password", "admin"))) {
                fail(what + ": the AMQP credentials (user '" + user + "') do not match [super_admin] (user '" + admin
                        + "'): the broker would refuse the connection (user and password must be URL-encoded)");
            }
            Matcher bl = BROKERLIST.matcher(m.group(5));
            if (!bl.find()) {
                fail(what + ": no brokerlist='tcp://HOST:PORT' option in the AMQP URL");
            }
            for (String b : bl.group(1).split("[;,]")) {
                Matcher bm = BROKER.matcher(b.trim());
                if (!bm.matches()) {
                    fail(what + ": bad broker '" + b + "' in brokerlist (expected tcp://HOST:PORT)");
                }
                peers.put("tcp://" + bm.group(1) + ":" + bm.group(2), "JMS broker of " + name + " in jndi2.properties");
            }
            log("INFO", what + ": AMQP user " + user + ", brokers " + bl.group(1));
        }
    }

    static String decode(String what, String part, String raw) {
        if (!URL_SAFE.matcher(raw).matches()) {
            fail(what + ": the " + part + " in the AMQP URL is not URL-encoded (characters outside A-Z a-z 0-9 . _ ~ ! * ( ) -"
                    + " must be written %XX)");
        }
        return java.net.URLDecoder.decode(raw, StandardCharsets.UTF_8);
    }

    // ---- peers ----

    static String placeholders(String s) {
        int https = ports.getOrDefault("https", 9443 + offset);
        return s.replace("${mgt.transport.https.port}", String.valueOf(https))
                .replace("${carbon.local.ip}", nodeIp)
                .replace("${carbon.host}", hostname)
                .replace("${http.nio.port}", String.valueOf(8280 + offset))
                .replace("${https.nio.port}", String.valueOf(8243 + offset));
    }

    static void collectPeers() {
        int groups = toml.count("apim.throttling.url_group");
        for (int i = 0; i < groups; i++) {
            String g = "apim.throttling.url_group[" + i + "].";
            for (String u : toml.strings(g + "traffic_manager_urls")) {
                if (!u.matches("tcp://[^:/]+:[0-9]+")) {
                    fail("deployment.toml [[apim.throttling.url_group]] " + (i + 1) + ": traffic_manager_urls entry '"
                            + u + "' is not tcp://HOST:PORT");
                }
                peers.put(u, "traffic manager (url_group " + (i + 1) + ")");
            }
            for (String u : toml.strings(g + "traffic_manager_auth_urls")) {
                if (!u.matches("ssl://[^:/]+:[0-9]+")) {
                    fail("deployment.toml [[apim.throttling.url_group]] " + (i + 1)
                            + ": traffic_manager_auth_urls entry '" + u + "' is not ssl://HOST:PORT");
                }
                peers.put(u, "traffic manager auth (url_group " + (i + 1) + ")");
            }
        }
        int envs = toml.count("apim.gateway.environment");
        for (int i = 0; i < envs; i++) {
            String e = "apim.gateway.environment[" + i + "].";
            String name = toml.get(e + "name", String.valueOf(i + 1));
            String raw = toml.get(e + "service_url", null);
            if (raw == null) {
                fail("deployment.toml [[apim.gateway.environment]] " + name + ": no service_url");
            }
            String u = placeholders(raw);
            try {
                URI uri = new URI(u);
                if (!"https".equals(uri.getScheme()) || uri.getHost() == null) {
                    throw new Exception("not https://HOST:PORT/...");
                }
            } catch (Exception ex) {
                fail("deployment.toml [[apim.gateway.environment]] " + name + ": bad service_url '" + raw + "': "
                        + ex.getMessage());
            }
            peers.put(u, "gateway environment " + name);
        }
        if ("wka".equals(toml.get("clustering.membership_scheme", null))) {
            for (String member : toml.strings("clustering.members")) {
                if (!member.matches("[^:/]+:[0-9]+")) {
                    fail("deployment.toml [clustering] members entry '" + member + "' is not HOST:PORT");
                }
                peers.put("tcp://" + member, "wka cluster member");
            }
        }
    }

    static void checkPeers() {
        for (Map.Entry<String, String> p : peers.entrySet()) {
            String url = p.getKey();
            String why = reach(url);
            boolean up = why == null;
            Boolean was = peerUp.put(url, up);
            if (was == null || was != up) {
                if (up) {
                    log("INFO", "peer " + url + " (" + p.getValue() + ") is reachable");
                } else {
                    log("WARN", "peer " + url + " (" + p.getValue() + ") is not reachable: " + why);
                }
            }
        }
    }

    /** Null when url is reachable, else why not. */
    static String reach(String url) {
        try {
            URI u = new URI(url);
            String host = u.getHost();
            int port = u.getPort() < 0 ? 443 : u.getPort();
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(host, port), 1500);
                s.setSoTimeout(3000);
                if (u.getScheme().equals("tcp")) {
                    return null;
                }
                try (SSLSocket t = (SSLSocket) clientTls.getSocketFactory().createSocket(s, host, port, false)) {
                    SSLParameters params = t.getSSLParameters();
                    if (u.getScheme().equals("https") && !isLocal(host)) {
                        // As the product's HTTP client: the name must match the certificate (localhost is let through).
                        params.setEndpointIdentificationAlgorithm("HTTPS");
                    }
                    if (!host.matches("[0-9.]+|.*:.*")) {
                        params.setServerNames(List.of(new SNIHostName(host)));
                    }
                    t.setSSLParameters(params);
                    t.startHandshake();
                    if (u.getScheme().equals("https")) {
                        OutputStream o = t.getOutputStream();
                        o.write(("GET /health/node HTTP/1.0\r\nHost: " + host + ":" + port + "\r\n\r\n")
                                .getBytes(StandardCharsets.US_ASCII));
                        o.flush();
                        String status = new BufferedReader(new InputStreamReader(t.getInputStream(),
                                StandardCharsets.US_ASCII)).readLine();
                        if (status == null || !status.startsWith("HTTP/")) {
                            return "no HTTP answer over TLS";
                        }
                    }
                }
                return null;
            }
        } catch (Exception e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }

    static boolean isLocal(String host) {
        return host.equals("localhost") || host.equals("127.0.0.1") || host.equals("::1") || host.equals("[::1]");
    }

    // ---- listeners ----

    static void listen() throws Exception {
        int https = toml.integer("transport.https.properties.port", 9443) + offset;
        int http = toml.integer("transport.http.properties.port", 9763) + offset;
        for (String t : new String[] {"http", "https"}) {
            String v = toml.get("transport." + t + ".properties.proxyPort", null);
            if (v != null) {
                proxyPorts.put(t, toml.integer("transport." + t + ".properties.proxyPort", 0));
            }
        }
        httpServer("https", https, serverTls, StandIn::handle);
        httpServer("http", http, null, StandIn::handle);
        httpServer("gateway_http", 8280 + offset, null, StandIn::handle);
        httpServer("gateway_https", 8243 + offset, serverTls, StandIn::handle);
        raw("ws", 9099 + offset, false, true);
        raw("wss", 8099 + offset, true, true);
        if (WITH_TM.contains(profile)) {
            raw("tm_binary", 9611 + offset, false, false);
            raw("tm_binary_ssl", 9711 + offset, true, false);
            raw("jms", 5672 + offset, false, false);
        }
        if ("wka".equals(toml.get("clustering.membership_scheme", null))) {
            raw("cluster", toml.integer("clustering.local_member_port", 4000), false, false);
        }
        log("INFO", "listening on " + portList() + "; hostname " + hostname + ", node_ip " + nodeIp
                + (proxyPorts.isEmpty() ? "" : ", proxy ports " + proxyPorts));
    }

    /** The names and numbers of the ports listened on, for the startup log line. */
    static String portList() {
        StringBuilder b = new StringBuilder();
        ports.forEach((k, v) -> b.append(b.length() == 0 ? "" : ", ").append(k).append(' ').append(v));
        return b.toString();
    }

    /**
     * An HTTP server on port (HTTPS with tls, when not null) answering with handler, recorded in ports as
     * name; a port in use refuses the start. CarbonStandIn's listeners are these too.
     */
    static void httpServer(String name, int port, SSLContext tls, HttpHandler handler) throws IOException {
        HttpServer s;
        try {
            if (tls != null) {
                HttpsServer h = HttpsServer.create(new InetSocketAddress(port), 50);
                h.setHttpsConfigurator(new HttpsConfigurator(tls));
                s = h;
            } else {
                s = HttpServer.create(new InetSocketAddress(port), 50);
            }
        } catch (BindException e) {
            fail("cannot listen on port " + port + " (" + name + "): " + e.getMessage());
            return;
        }
        s.createContext("/", handler);
        s.setExecutor(Executors.newFixedThreadPool(4));
        s.start();
        ports.put(name, port);
    }

    /** A plain socket listener: WebSocket (upgrade + /health) or a binary receiver that only holds connections. */
    static void raw(String name, int port, boolean tls, boolean websocket) throws IOException {
        ServerSocket ss;
        try {
            if (tls) {
                SSLServerSocket s = (SSLServerSocket) serverTls.getServerSocketFactory().createServerSocket();
                s.setReuseAddress(true);
                s.bind(new InetSocketAddress(port), 50);
                ss = s;
            } else {
                ss = new ServerSocket();
                ss.setReuseAddress(true);
                ss.bind(new InetSocketAddress(port), 50);
            }
        } catch (BindException e) {
            fail("cannot listen on port " + port + " (" + name + "): " + e.getMessage());
            return;
        }
        Thread t = new Thread(() -> {
            while (true) {
                try {
                    Socket c = ss.accept();
                    Thread w = new Thread(() -> serve(c, websocket), name + "-conn");
                    w.setDaemon(true);
                    w.start();
                } catch (IOException e) {
                    log("WARN", name + " listener: " + e.getMessage());
                }
            }
        }, name + "-listener");
        t.start();
        ports.put(name, port);
    }

    static void serve(Socket c, boolean websocket) {
        try (c) {
            c.setSoTimeout(60_000);
            InputStream in = c.getInputStream();
            if (!websocket) {
                // A binary receiver / broker: hold the connection, discard what comes, until the peer closes.
                byte[] buf = new byte[4096];
                while (in.read(buf) >= 0) {
                    // discard
                }
                return;
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.ISO_8859_1));
            String request = r.readLine();
            Map<String, String> headers = new LinkedHashMap<>();
            for (String h; (h = r.readLine()) != null && !h.isEmpty(); ) {
                int colon = h.indexOf(':');
                if (colon > 0) {
                    headers.put(h.substring(0, colon).trim().toLowerCase(Locale.ROOT), h.substring(colon + 1).trim());
                }
            }
            if (request == null) {
                return;
            }
            String[] parts = request.split(" ");
            String path = parts.length > 1 ? parts[1] : "/";
            OutputStream o = c.getOutputStream();
            String key = headers.get("sec-websocket-key");
            boolean upgrade = "websocket".equalsIgnoreCase(headers.getOrDefault("upgrade", ""))
                    && headers.getOrDefault("connection", "").toLowerCase(Locale.ROOT).contains("upgrade");
            if (upgrade && key != null && "13".equals(headers.get("sec-websocket-version"))) {
                String accept = Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-1")
                        .digest((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").getBytes(StandardCharsets.US_ASCII)));
                o.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + "Sec-WebSocket-Accept: " + accept + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                o.flush();
                byte[] buf = new byte[4096];
                while (in.read(buf) >= 0) {
                    // frames are not interpreted: the stand-in only proves the upgrade works
                }
                return;
            }
            String[] answer = path.startsWith("/health") ? health(path) : new String[] {"400",
                    "{\"error\":\"WebSocket upgrade expected\"}"};
            byte[] body = (answer[1] + "\n").getBytes(StandardCharsets.UTF_8);
            String reason = answer[0].equals("200") ? "OK" : answer[0].equals("503") ? "Service Unavailable"
                    : answer[0].equals("404") ? "Not Found" : "Bad Request";
            o.write(("HTTP/1.1 " + answer[0] + " " + reason + "\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            o.write(body);
            o.flush();
        } catch (Exception e) {
            // a peer that hung up, a TLS client that did not trust us: nothing for the server to do
        }
    }

    // ---- health ----

    static void handle(HttpExchange ex) throws IOException {
        String[] answer = health(ex.getRequestURI().getPath());
        byte[] b = (answer[1] + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(Integer.parseInt(answer[0]), b.length);
        try (OutputStream o = ex.getResponseBody()) {
            o.write(b);
        }
    }

    static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static String obj(Map<String, ?> m) {
        StringBuilder b = new StringBuilder("{");
        m.forEach((k, v) -> b.append(b.length() == 1 ? "" : ",").append(q(k)).append(':')
                .append(v instanceof String s ? q(s) : String.valueOf(v)));
        return b.append('}').toString();
    }

    /** [status code, JSON body] of /health (node and peers) or /health/node (the node alone). */
    static String[] health(String path) {
        boolean nodeOnly = path.equals("/health/node") || path.equals("/health/node/");
        if (!nodeOnly && !path.equals("/health") && !path.equals("/health/")) {
            return new String[] {"404", "{\"error\":\"not found\"}"};
        }
        Map<String, String> ds = new LinkedHashMap<>();
        boolean nodeOk = startedAt != 0;
        for (Map.Entry<String, Connection> e : dbs.entrySet()) {
            String state;
            try {
                state = e.getValue().isValid(3) ? "ok" : "down";
            } catch (SQLException err) {
                state = "down";
            }
            nodeOk &= state.equals("ok");
            ds.put(e.getKey(), state);
        }
        Map<String, String> pe = new LinkedHashMap<>();
        boolean peersOk = true;
        for (String p : peers.keySet()) {
            boolean up = Boolean.TRUE.equals(peerUp.get(p));
            peersOk &= up;
            pe.put(p, up ? "ok" : "down");
        }
        boolean ok = nodeOk && (nodeOnly || peersOk);
        Map<String, Object> node = new LinkedHashMap<>();
        node.put("status", nodeOk ? "ok" : "degraded");
        node.put("pid", ProcessHandle.current().pid());
        node.put("uptime_ms", startedAt == 0 ? 0 : System.currentTimeMillis() - startedAt);
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("status", ok ? "ok" : "degraded");
        body.put("node", new Raw(obj(node)));
        body.put("datasources", new Raw(obj(ds)));
        body.put("peers", new Raw(obj(pe)));
        body.put("profile", profile);
        body.put("hostname", hostname);
        body.put("node_ip", nodeIp);
        body.put("ports", new Raw(obj(ports)));
        body.put("proxy_ports", new Raw(obj(proxyPorts)));
        body.put("keystores", new Raw(obj(keystores)));
        body.put("started_at", startedAt);
        return new String[] {ok ? "200" : "503", obj(body)};
    }

    /** Already-JSON text inside obj(). */
    record Raw(String json) {
        @Override
        public String toString() {
            return json;
        }
    }
}
