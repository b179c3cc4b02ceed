// A stand-in for the Carbon 4 based WSO2 servers, API Manager 1.x and Enterprise Integrator 6.x, for tests
// only (the real packs cannot be downloaded here). Like StandIn (the 4.x stand-in, whose log and JSON helpers
// it shares) it meets the configuration the way the real server would and checks only what provisioning code
// must get right. The config directory is -Dcarbon.config.dir.path (EI's integrator.sh passes <home>/conf),
// else <home>/repository/conf; JDBC drivers load from <home>/lib next to an EI config dir, else from
// <home>/repository/components/lib.
//
// At startup it parses (JDK DOM parser; malformed XML refuses the start, naming the file) carbon.xml,
// axis2/axis2.xml, datasources/*-datasources.xml, registry.xml, user-mgt.xml, tomcat/catalina-server.xml and,
// when present, api-manager.xml, and:
//  - takes the port offset from -DportOffset, else carbon.xml Server/Ports/Offset, and listens on the
//    catalina-server.xml Connector ports (servlet HTTP 9763 / HTTPS 9443: the management console /carbon, the
//    admin services /services, the webapps and Jaggery apps of repository/deployment/server) and the axis2.xml
//    transportReceiver ports (pass-through HTTP 8280 / HTTPS 8243), each + offset; HTTPS from the Connector's
//    keystoreFile / the receiver's KeyStore parameter;
//  - opens carbon.xml Security/KeyStore (must hold KeyAlias's private key) and Security/TrustStore (the trust
//    of every outgoing TLS call);
//  - resolves every JNDI name the other files use (user-mgt.xml dataSource properties, registry.xml dbConfig
//    dataSource of the current dbConfig and of every remoteInstance, api-manager.xml DataSourceName) to a
//    datasource, and every registry mount to a remoteInstance: a dangling reference refuses the start, as the
//    real server cannot boot its registry or user realm then;
//  - with axis2.xml clustering enable="true" and membershipScheme wka, listens on localMemberHost:
//    localMemberPort (no offset: the real clustering port ignores it) for the cluster handshake.
// Anything wrong there makes it refuse to start with one clear ERROR line. Then, at startup and every 2 s:
//  - connects to every datasource (embedded H2 URLs are the pack's defaults: accepted, not connected) and
//    checks the marker tables of each use (UM_* user store, REG_* registry, AM_* API-M database);
//  - calls every api-manager.xml ServerURL (APIKeyManager, APIKeyValidator, AuthManager, APIGateway and its
//    Environments) over HTTPS trusting the TrustStore, with the element's Username/Password: the other
//    component answers 200 on /services/ only for its user-mgt.xml admin credentials;
//  - exchanges the clustering domain with every configured wka member and logs "Member joined" the first
//    time one answers in the same domain ("Member left" when it stops answering).
// GET /health on every port answers 200 only when nothing is wrong, else 503 with "reasons" naming each
// problem (datasource NAME: ..., peer URL: ..., member HOST:PORT unreachable); /health/node ignores peers and
// members.
//
// No external libraries: JDK 17 only.

import com.sun.net.httpserver.HttpExchange;
import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.Proxy;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.xml.sax.ErrorHandler;
import org.xml.sax.SAXException;
import org.xml.sax.SAXParseException;

public class CarbonStandIn {
    static Path home;
    static Path conf;
    static Path driverDir;
    static String product;
    static int offset;
    static String localIp;
    static String hostName;
    static String context = "/";
    static String adminUser = "admin";
    static String adminPassword = "admin";
    static SSLContext clientTls;
    static volatile long startedAt;
    static ClassLoader drivers;

    /** StandIn's: StandIn.httpServer records the listeners there. */
    static final Map<String, Integer> ports = StandIn.ports;
    static final Map<String, Integer> proxyPorts = new LinkedHashMap<>();
    static final Map<String, String> keystores = new LinkedHashMap<>();
    /** Datasource name -> datasource, in file order. */
    static final Map<String, DataSource> datasources = new LinkedHashMap<>();
    /** ServerURL -> peer. */
    static final Map<String, Peer> peers = new LinkedHashMap<>();
    static final List<String> warnings = new ArrayList<>();
    static Cluster cluster;

    /** Marker tables of each use of a datasource (a few of those the real dbscripts create). */
    static final Map<String, String[]> TABLES = Map.of(
            "user store", new String[] {"UM_USER", "UM_ROLE", "UM_TENANT"},
            "registry", new String[] {"REG_RESOURCE", "REG_PATH"},
            "API-M database", new String[] {"AM_API", "AM_SUBSCRIBER"});

    static void log(String level, String msg) {
        StandIn.log(level, msg);
    }

    static void fail(String msg) {
        StandIn.fail(msg);
    }

    public static void main(String[] args) throws Exception {
        long t0 = System.currentTimeMillis();
        home = Path.of(System.getProperty("carbon.home", ".")).toAbsolutePath().normalize();
        String dir = System.getProperty("carbon.config.dir.path");
        conf = dir != null ? Path.of(dir).toAbsolutePath().normalize() : home.resolve("repository/conf");
        driverDir = conf.equals(home.resolve("conf")) ? home.resolve("lib") : home.resolve("repository/components/lib");
        Files.createDirectories(home.resolve("repository/logs"));
        StandIn.home = home;
        StandIn.logFile = new PrintWriter(new FileWriter(home.resolve("repository/logs/wso2carbon.log").toFile(), true));

        Element carbon = parse("carbon.xml");
        product = text(carbon, "Name", "WSO2 Carbon") + " " + text(carbon, "Version", "");
        log("INFO", "Starting " + product + " (stand-in) at " + home + ", configuration " + rel(conf));
        offsets(carbon);
        hostName = text(carbon, "HostName", null);
        String root = text(carbon, "WebContextRoot", "/");
        context = root.endsWith("/") ? root : root + "/";
        localIp = System.getProperty("carbon.local.ip", firstAddress());
        security(carbon);

        Element users = parse("user-mgt.xml");
        Element registry = parse("registry.xml");
        Element axis2 = parse("axis2/axis2.xml");
        Element catalina = parse("tomcat/catalina-server.xml");
        Element apim = Files.exists(conf.resolve("api-manager.xml")) ? parse("api-manager.xml") : null;

        readDatasources();
        userStore(users);
        registry(registry);
        if (apim != null) {
            apiManager(apim);
        }
        clustering(axis2);

        drivers = driverLoader();
        checkDatasources();

        servlet(catalina);
        passThrough(axis2);
        if (cluster != null && cluster.wka) {
            cluster.listen();
        }
        log("INFO", "listening on " + StandIn.portList() + " (offset " + offset + "); local IP " + localIp
                + (hostName == null ? "" : ", HostName " + hostName)
                + (proxyPorts.isEmpty() ? "" : ", proxy ports " + proxyPorts));

        var checker = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "checker");
            t.setDaemon(true);
            return t;
        });
        checker.scheduleWithFixedDelay(() -> {
            try {
                checkDatasources();
                checkPeers();
                if (cluster != null && cluster.wka) {
                    cluster.check();
                }
            } catch (Throwable e) {
                log("WARN", "check failed: " + e);
            }
        }, 0, 2, TimeUnit.SECONDS);

        startedAt = System.currentTimeMillis();
        log("INFO", "WSO2 Carbon (stand-in) started in " + (startedAt - t0) + " ms: " + product);
    }

    // ---- XML ----

    static String rel(Path p) {
        return p.startsWith(home) ? home.relativize(p).toString() : p.toString();
    }

    /** The root element of conf/FILE; a missing or malformed file refuses the start, naming the file. */
    static Element parse(String file) {
        Path p = conf.resolve(file);
        String name = rel(p);
        if (!Files.isRegularFile(p)) {
            fail(name + ": missing");
        }
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setNamespaceAware(false);
            f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
            f.setAttribute(XMLConstants.ACCESS_EXTERNAL_DTD, "");
            f.setAttribute(XMLConstants.ACCESS_EXTERNAL_SCHEMA, "");
            DocumentBuilder db = f.newDocumentBuilder();
            db.setErrorHandler(new ErrorHandler() {
                public void warning(SAXParseException e) {
                }

                public void error(SAXParseException e) throws SAXException {
                    throw e;
                }

                public void fatalError(SAXParseException e) throws SAXException {
                    throw e;
                }
            });
            Document d = db.parse(p.toFile());
            return d.getDocumentElement();
        } catch (SAXParseException e) {
            fail(name + ": malformed XML at line " + e.getLineNumber() + ", column " + e.getColumnNumber() + ": "
                    + e.getMessage());
        } catch (Exception e) {
            fail(name + ": cannot read: " + e.getMessage());
        }
        return null;
    }

    static String local(Node n) {
        String t = n.getNodeName();
        return t.substring(t.indexOf(':') + 1);
    }

    /** The child elements of e named name (local names: carbon.xml has a default namespace). */
    static List<Element> children(Element e, String name) {
        List<Element> out = new ArrayList<>();
        if (e == null) {
            return out;
        }
        for (Node n = e.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element c && (name == null || local(c).equals(name))) {
                out.add(c);
            }
        }
        return out;
    }

    /** The first element at the slash-separated path below e, or null. */
    static Element at(Element e, String path) {
        for (String step : path.split("/")) {
            List<Element> c = children(e, step);
            if (c.isEmpty()) {
                return null;
            }
            e = c.get(0);
        }
        return e;
    }

    static String text(Element e, String path, String dflt) {
        Element x = path.isEmpty() ? e : at(e, path);
        return x == null ? dflt : x.getTextContent().trim();
    }

    /** The text of e's child <parameter name="name">, or null. */
    static String param(Element e, String name) {
        Element p = paramElement(e, name);
        return p == null ? null : p.getTextContent().trim();
    }

    static Element paramElement(Element e, String name) {
        for (Element p : children(e, "parameter")) {
            if (name.equals(p.getAttribute("name"))) {
                return p;
            }
        }
        return null;
    }

    /** The text of e's child <Property name="name">, or null. */
    static String property(Element e, String name) {
        for (Element p : children(e, "Property")) {
            if (name.equals(p.getAttribute("name"))) {
                return p.getTextContent().trim();
            }
        }
        return null;
    }

    static int integer(String what, String v) {
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException | NullPointerException e) {
            fail(what + " must be an integer, found '" + v + "'");
            return 0;
        }
    }

    /** The ${...} placeholders the real server resolves in these files. */
    static String resolve(String s) {
        if (s == null) {
            return null;
        }
        StringBuilder b = new StringBuilder();
        int i = 0;
        while (true) {
            int start = s.indexOf("${", i);
            int end = start < 0 ? -1 : s.indexOf('}', start);
            if (end < 0) {
                return b.append(s.substring(i)).toString();
            }
            b.append(s, i, start);
            String key = s.substring(start + 2, end);
            String v = switch (key) {
                case "carbon.home" -> home.toString();
                case "carbon.config.dir.path" -> conf.toString();
                case "carbon.context" -> context;
                case "carbon.local.ip" -> localIp;
                case "carbon.host", "hostName" -> hostName != null ? hostName : localIp;
                case "mgt.transport.https.port", "httpsPort" -> String.valueOf(
                        ports.getOrDefault("servlet_https", 9443 + offset));
                case "mgt.transport.http.port", "httpPort" -> String.valueOf(
                        ports.getOrDefault("servlet_http", 9763 + offset));
                case "https.nio.port" -> String.valueOf(ports.getOrDefault("passthrough_https", 8243 + offset));
                case "http.nio.port" -> String.valueOf(ports.getOrDefault("passthrough_http", 8280 + offset));
                case "admin.username" -> adminUser;
                case "admin.password" -> adminPassword;
                default -> System.getProperty(key);
            };
            b.append(v != null ? v : s.substring(start, end + 1));
            i = end + 1;
        }
    }

    static String firstAddress() {
        try {
            for (NetworkInterface ni : Collections.list(NetworkInterface.getNetworkInterfaces())) {
                if (!ni.isUp() || ni.isLoopback()) {
                    continue;
                }
                for (InetAddress a : Collections.list(ni.getInetAddresses())) {
                    if (a instanceof Inet4Address) {
                        return a.getHostAddress();
                    }
                }
            }
        } catch (IOException e) {
            // fall through
        }
        return "127.0.0.1";
    }

    /** Loopback, localhost or an address of this machine: names the node itself. */
    static boolean isSelf(String host) {
        if (host.equals("localhost") || host.equals(localIp) || StandIn.isLocal(host)) {
            return true;
        }
        try {
            InetAddress a = InetAddress.getByName(host);
            return a.isLoopbackAddress() || NetworkInterface.getByInetAddress(a) != null;
        } catch (IOException e) {
            return false;
        }
    }

    // ---- carbon.xml ----

    static void offsets(Element carbon) {
        String inFile = text(carbon, "Ports/Offset", "0");
        offset = integer("carbon.xml Server/Ports/Offset", inFile);
        String prop = System.getProperty("portOffset");
        if (prop != null) {
            offset = integer("-DportOffset", prop);
        }
        if (offset < 0) {
            fail("port offset " + offset + " is negative");
        }
    }

    static KeyStore open(String what, String location, String type, String password) {
        if (location == null || password == null) {
            fail(what + ": Location and Password are required");
        }
        Path p = home.resolve(resolve(location));
        KeyStore store = null;
        try {
            store = KeyStore.getInstance(type == null ? "JKS" : type);
        } catch (Exception e) {
            fail(what + " " + rel(p) + ": unknown keystore type " + type);
        }
        try (InputStream in = new FileInputStream(p.toFile())) {
            store.load(in, password.toCharArray());
        } catch (Exception e) {
            fail(what + " " + rel(p) + ": cannot open (" + store.getType() + "): " + e.getMessage());
        }
        return store;
    }

    static void security(Element carbon) throws Exception {
        Element ks = at(carbon, "Security/KeyStore");
        if (ks == null) {
            fail("carbon.xml: no Server/Security/KeyStore");
        }
        String what = "carbon.xml Security/KeyStore";
        KeyStore store = open(what, text(ks, "Location", null), text(ks, "Type", "JKS"), text(ks, "Password", null));
        String alias = text(ks, "KeyAlias", "wso2carbon");
        if (!store.isKeyEntry(alias)) {
            fail(what + ": no private key with KeyAlias '" + alias + "' (aliases: "
                    + String.join(", ", Collections.list(store.aliases())) + ")");
        }
        try {
            store.getKey(alias, text(ks, "KeyPassword", text(ks, "Password", "")).toCharArray());
        } catch (Exception e) {
            fail(what + ": wrong KeyPassword for '" + alias + "': " + e.getMessage());
        }
        keystores.put("primary", rel(home.resolve(resolve(text(ks, "Location", "")))) + " (" + alias + ")");

        Element ts = at(carbon, "Security/TrustStore");
        if (ts == null) {
            fail("carbon.xml: no Server/Security/TrustStore");
        }
        KeyStore trust = open("carbon.xml Security/TrustStore", text(ts, "Location", null), text(ts, "Type", "JKS"),
                text(ts, "Password", null));
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        try {
            tmf.init(trust);
        } catch (Exception e) {
            fail("carbon.xml Security/TrustStore: unusable: " + e.getMessage());
        }
        clientTls = SSLContext.getInstance("TLS");
        clientTls.init(null, tmf.getTrustManagers(), null);
        keystores.put("truststore", rel(home.resolve(resolve(text(ts, "Location", "")))) + " (" + trust.size()
                + " entries)");
    }

    /** A server TLS context from a keystore: only alias's key when given, else every key of the store. */
    static SSLContext serverTls(String what, String location, String type, String password, String keyPassword,
            String alias) throws Exception {
        KeyStore store = open(what, location, type, password);
        char[] kp = (keyPassword != null ? keyPassword : password).toCharArray();
        KeyStore use = store;
        if (alias != null) {
            if (!store.isKeyEntry(alias)) {
                fail(what + ": no private key with alias '" + alias + "'");
            }
            use = KeyStore.getInstance("PKCS12");
            use.load(null, null);
            try {
                use.setKeyEntry(alias, store.getKey(alias, kp), kp, store.getCertificateChain(alias));
            } catch (Exception e) {
                fail(what + ": wrong key password for '" + alias + "': " + e.getMessage());
            }
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        try {
            kmf.init(use, kp);
        } catch (Exception e) {
            fail(what + ": the key password does not open the keys of " + location + ": " + e.getMessage());
        }
        SSLContext c = SSLContext.getInstance("TLS");
        c.init(kmf.getKeyManagers(), null, null);
        return c;
    }

    // ---- datasources and what uses them ----

    static class DataSource {
        String name;
        String jndi;
        String file;
        String url;
        String user;
        String password;
        String driver;
        String validation;
        /** Use ("user store") -> where it is configured. */
        final Map<String, String> uses = new LinkedHashMap<>();
        Connection conn;
        volatile String state = "down";
        volatile String why = "not checked yet";
        String logged;
    }

    static void readDatasources() {
        File[] files = conf.resolve("datasources").toFile().listFiles((d, n) -> n.endsWith("-datasources.xml"));
        if (files == null || !conf.resolve("datasources/master-datasources.xml").toFile().isFile()) {
            fail(rel(conf.resolve("datasources/master-datasources.xml")) + ": missing");
        }
        java.util.Arrays.sort(files, (a, b) -> a.getName().equals("master-datasources.xml") ? -1
                : b.getName().equals("master-datasources.xml") ? 1 : a.getName().compareTo(b.getName()));
        Set<String> jndis = new TreeSet<>();
        for (File f : files) {
            String file = "datasources/" + f.getName();
            Element root = parse(file);
            for (Element d : children(at(root, "datasources"), "datasource")) {
                DataSource ds = new DataSource();
                ds.file = file;
                ds.name = text(d, "name", null);
                if (ds.name == null || ds.name.isEmpty()) {
                    fail(file + ": a datasource without a name");
                }
                String what = file + " datasource " + ds.name;
                if (datasources.containsKey(ds.name)) {
                    fail(what + ": the name is used twice (" + datasources.get(ds.name).file + ")");
                }
                ds.jndi = text(d, "jndiConfig/name", null);
                if (ds.jndi != null && !jndis.add(ds.jndi)) {
                    fail(what + ": JNDI name " + ds.jndi + " is used by another datasource too");
                }
                Element def = at(d, "definition");
                if (def == null || !"RDBMS".equals(def.getAttribute("type"))) {
                    fail(what + ": no <definition type=\"RDBMS\">");
                }
                Element c = at(def, "configuration");
                ds.url = resolve(text(c, "url", null));
                ds.user = text(c, "username", "");
                ds.password = text(c, "password", "");
                ds.driver = text(c, "driverClassName", null);
                ds.validation = text(c, "validationQuery", null);
                if (ds.url == null || ds.url.isEmpty() || ds.driver == null || ds.driver.isEmpty()) {
                    fail(what + ": url and driverClassName are required");
                }
                datasources.put(ds.name, ds);
            }
        }
        if (datasources.isEmpty()) {
            fail("datasources/master-datasources.xml: no datasource");
        }
    }

    /** The datasource of JNDI name jndi, used for use as configured at where; a dangling name refuses the start. */
    static DataSource use(String jndi, String use, String where) {
        for (DataSource ds : datasources.values()) {
            if (jndi.equals(ds.jndi)) {
                ds.uses.merge(use, where, (a, b) -> a + ", " + b);
                return ds;
            }
        }
        List<String> known = new ArrayList<>();
        datasources.values().forEach(d -> known.add(d.jndi + " (" + d.name + ")"));
        fail(where + ": " + jndi + " is not the JNDI name of any datasource in " + rel(conf.resolve("datasources"))
                + " (" + String.join(", ", known) + ")");
        return null;
    }

    static void userStore(Element users) {
        Element realm = at(users, "Realm");
        Element cfg = at(realm, "Configuration");
        if (cfg == null) {
            fail("user-mgt.xml: no UserManager/Realm/Configuration");
        }
        adminUser = text(cfg, "AdminUser/UserName", "admin");
        adminPassword = text(cfg, "AdminUser/Password", "admin");
        String realmDs = property(cfg, "dataSource");
        if (realmDs != null) {
            // The authorization manager and the JDBC tenant manager keep their UM_* tables there.
            use(realmDs, "user store", "user-mgt.xml Realm/Configuration dataSource");
        }
        List<Element> stores = children(realm, "UserStoreManager");
        if (stores.isEmpty()) {
            fail("user-mgt.xml: no UserStoreManager in Realm");
        }
        Element primary = stores.get(0);
        String cls = primary.getAttribute("class");
        if (cls.contains("JDBC")) {
            String ds = property(primary, "dataSource");
            if (ds == null && realmDs == null) {
                fail("user-mgt.xml: the JDBC user store has no dataSource (neither its own nor Realm/Configuration's)");
            }
            if (ds != null) {
                use(ds, "user store", "user-mgt.xml UserStoreManager dataSource");
            }
        }
    }

    static void registry(Element reg) {
        Map<String, Element> dbConfigs = new LinkedHashMap<>();
        for (Element d : children(reg, "dbConfig")) {
            String name = d.getAttribute("name");
            if (dbConfigs.put(name, d) != null) {
                fail("registry.xml: dbConfig " + name + " is defined twice");
            }
        }
        String current = text(reg, "currentDBConfig", null);
        if (current == null) {
            fail("registry.xml: no currentDBConfig");
        }
        registryDb(dbConfigs, current, "registry.xml currentDBConfig");
        Map<String, Element> instances = new LinkedHashMap<>();
        for (Element r : children(reg, "remoteInstance")) {
            String id = text(r, "id", "");
            if (instances.put(id, r) != null) {
                fail("registry.xml: remoteInstance id " + id + " is used twice");
            }
            String db = text(r, "dbConfig", null);
            if (db == null) {
                continue; // a remote registry reached over its URL, not a database
            }
            DataSource ds = registryDb(dbConfigs, db, "registry.xml remoteInstance " + id);
            String cacheId = text(r, "cacheId", null);
            String expected = ds.user + "@" + ds.url;
            if (cacheId != null && !cacheId.equals(expected)) {
                warn("registry.xml remoteInstance " + id + ": cacheId " + cacheId + " is not " + expected
                        + " (username@url of " + ds.name + "): nodes would not share its cache entries");
            }
        }
        Set<String> paths = new TreeSet<>();
        for (Element m : children(reg, "mount")) {
            String path = m.getAttribute("path");
            String id = text(m, "instanceId", "");
            if (!instances.containsKey(id)) {
                fail("registry.xml: mount " + path + " names instanceId " + id + ", which is no remoteInstance id ("
                        + String.join(", ", instances.keySet()) + ")");
            }
            if (!paths.add(path)) {
                fail("registry.xml: two mounts of " + path);
            }
        }
    }

    static DataSource registryDb(Map<String, Element> dbConfigs, String name, String where) {
        Element d = dbConfigs.get(name);
        if (d == null) {
            fail(where + ": no dbConfig named " + name + " (" + String.join(", ", dbConfigs.keySet()) + ")");
        }
        String jndi = text(d, "dataSource", null);
        if (jndi == null) {
            fail("registry.xml dbConfig " + name + ": no dataSource");
        }
        return use(jndi, "registry", "registry.xml dbConfig " + name + " dataSource");
    }

    static void warn(String msg) {
        warnings.add(msg);
        log("WARN", msg);
    }

    static ClassLoader driverLoader() throws Exception {
        List<URL> jars = new ArrayList<>();
        File[] files = driverDir.toFile().listFiles();
        if (files != null) {
            for (File j : files) {
                if (j.getName().endsWith(".jar") && !j.getName().equals("standin.jar")) {
                    jars.add(j.toURI().toURL());
                }
            }
        }
        return new URLClassLoader(jars.toArray(new URL[0]), CarbonStandIn.class.getClassLoader());
    }

    static void checkDatasources() {
        for (DataSource ds : datasources.values()) {
            check(ds);
            String now = ds.state + (ds.why == null ? "" : ": " + ds.why);
            if (!now.equals(ds.logged)) {
                ds.logged = now;
                if (ds.why == null) {
                    log("INFO", "datasource " + ds.name + " (" + ds.jndi + ") " + ds.state + ": " + ds.url
                            + (ds.uses.isEmpty() ? "" : ", used as " + String.join(", ", ds.uses.keySet())));
                } else {
                    log("ERROR", "datasource " + ds.name + " (" + ds.jndi + "): " + ds.why);
                }
            }
        }
    }

    static void check(DataSource ds) {
        if (ds.url.startsWith("jdbc:h2:")) {
            // The pack's own embedded database: node-local, created on first start by the real server.
            ds.state = "embedded";
            ds.why = null;
            return;
        }
        try {
            if (ds.conn != null && !ds.conn.isValid(3)) {
                ds.conn.close();
                ds.conn = null;
            }
            if (ds.conn == null) {
                Driver d;
                try {
                    d = (Driver) Class.forName(ds.driver, true, drivers).getDeclaredConstructor().newInstance();
                } catch (ClassNotFoundException e) {
                    throw new Exception("JDBC driver class " + ds.driver + " not found in " + rel(driverDir));
                }
                Properties props = new Properties();
                props.setProperty("user", ds.user);
                props.setProperty("password", ds.password);
                props.setProperty("connectTimeout", "5000");
                Connection c = d.connect(ds.url, props);
                if (c == null) {
                    throw new Exception("driver " + ds.driver + " does not accept " + ds.url);
                }
                ds.conn = c;
            }
            if (ds.validation != null && !ds.validation.isEmpty()) {
                try (Statement s = ds.conn.createStatement(); ResultSet r = s.executeQuery(ds.validation)) {
                    r.next();
                }
            }
            for (Map.Entry<String, String> u : ds.uses.entrySet()) {
                for (String table : TABLES.get(u.getKey())) {
                    try (Statement s = ds.conn.createStatement();
                            ResultSet r = s.executeQuery("SELECT COUNT(*) FROM " + table)) {
                        r.next();
                    } catch (SQLException e) {
                        throw new Exception("table " + table + " missing (is the dbscript imported? " + u.getKey()
                                + " of " + u.getValue() + "): " + e.getMessage());
                    }
                }
            }
            ds.state = "ok";
            ds.why = null;
        } catch (Exception e) {
            if (ds.conn != null) {
                try {
                    ds.conn.close();
                } catch (SQLException ignored) {
                    // already broken
                }
                ds.conn = null;
            }
            ds.state = "down";
            ds.why = e.getMessage() == null ? e.toString() : e.getMessage().replaceAll("\\s+", " ");
        }
    }

    // ---- api-manager.xml: the other components ----

    static class Peer {
        final String url;
        /** {element, username, password} of each element naming this URL. */
        final List<String[]> uses = new ArrayList<>();
        volatile String state = "down";
        volatile String why = "not checked yet";
        String logged;

        Peer(String url) {
            this.url = url;
        }

        String names() {
            List<String> n = new ArrayList<>();
            uses.forEach(u -> n.add(u[0]));
            return String.join(", ", n);
        }
    }

    static void apiManager(Element apim) {
        String ds = text(apim, "DataSourceName", null);
        if (ds == null) {
            fail("api-manager.xml: no APIManager/DataSourceName");
        }
        use(ds, "API-M database", "api-manager.xml DataSourceName");
        for (String name : new String[] {"APIKeyManager", "APIKeyValidator", "AuthManager", "APIGateway"}) {
            for (Element e : children(apim, name)) {
                serverUrl(name, e);
            }
        }
        for (Element env : children(at(apim, "APIGateway/Environments"), "Environment")) {
            serverUrl("APIGateway/Environments/Environment " + text(env, "Name", "?"), env);
        }
    }

    static void serverUrl(String name, Element e) {
        String raw = text(e, "ServerURL", null);
        if (raw == null) {
            return;
        }
        String url = resolve(raw);
        try {
            URI u = new URI(url);
            if (!"https".equals(u.getScheme()) || u.getHost() == null) {
                throw new Exception("not https://HOST:PORT/...");
            }
        } catch (Exception ex) {
            fail("api-manager.xml " + name + "/ServerURL '" + raw + "': " + ex.getMessage());
        }
        peers.computeIfAbsent(url, Peer::new).uses.add(new String[] {name,
            resolve(text(e, "Username", "${admin.username}")), resolve(text(e, "Password", "${admin.password}"))});
    }

    static void checkPeers() {
        for (Peer p : peers.values()) {
            String why = null;
            for (String[] use : p.uses) {
                why = call(p.url, use[1], use[2]);
                if (why != null) {
                    why = why + " (" + use[0] + " as " + use[1] + ")";
                    break;
                }
            }
            p.state = why == null ? "ok" : "down";
            p.why = why;
            String now = why == null ? "ok" : why;
            if (!now.equals(p.logged)) {
                p.logged = now;
                if (why == null) {
                    log("INFO", "peer " + p.url + " (" + p.names() + ") answers");
                } else {
                    log("WARN", "peer " + p.url + ": " + why);
                }
            }
        }
    }

    /** Null when GET url with these credentials answers 200, else why not. */
    static String call(String url, String user, String password) {
        try {
            HttpsURLConnection c = (HttpsURLConnection) new URL(url).openConnection(Proxy.NO_PROXY);
            c.setSSLSocketFactory(clientTls.getSocketFactory());
            // Names are checked against the certificate, except for the node itself (its pack certificate is
            // issued to localhost while the default ServerURLs name ${carbon.local.ip}).
            c.setHostnameVerifier((host, session) -> isSelf(host));
            c.setConnectTimeout(1500);
            c.setReadTimeout(3000);
            c.setRequestProperty("Authorization", "Basic " + Base64.getEncoder().encodeToString(
                    (user + ":" + password).getBytes(StandardCharsets.UTF_8)));
            int code = c.getResponseCode();
            c.disconnect();
            if (code == 401) {
                return "HTTP 401: the username/password are not that server's admin";
            }
            return code == 200 ? null : "HTTP " + code;
        } catch (Exception e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }

    // ---- axis2.xml clustering ----

    static final String HELLO = "WSO2-STANDIN-CLUSTER";

    static class Member {
        final String host;
        final int port;
        volatile String state = "unchecked";
        volatile String why = "not checked yet";
        /** The address it advertised in its last answer. */
        volatile String advertised;

        Member(String host, int port) {
            this.host = host;
            this.port = port;
        }

        String addr() {
            return host + ":" + port;
        }
    }

    static class Cluster {
        boolean enabled;
        boolean wka;
        String scheme;
        String domain;
        String host;
        int port;
        String bindHost;
        int bindPort;
        final List<Member> members = new ArrayList<>();
        /** Advertised address of every member currently joined. */
        final Set<String> joined = ConcurrentHashMap.newKeySet();

        String self() {
            return host + ":" + port;
        }

        void listen() {
            ServerSocket ss = null;
            try {
                ss = new ServerSocket();
                ss.setReuseAddress(true);
                ss.bind(new InetSocketAddress(bindHost, bindPort), 50);
            } catch (IOException e) {
                fail("axis2.xml clustering: cannot listen on " + bindHost + ":" + bindPort
                        + " (localMemberHost/localMemberPort must be this node's address and a free port): "
                        + e.getMessage());
            }
            ports.put("cluster", bindPort);
            ServerSocket server = ss;
            Thread t = new Thread(() -> {
                while (true) {
                    try {
                        Socket c = server.accept();
                        Thread w = new Thread(() -> answer(c), "cluster-conn");
                        w.setDaemon(true);
                        w.start();
                    } catch (IOException e) {
                        log("WARN", "cluster listener: " + e.getMessage());
                    }
                }
            }, "cluster-listener");
            t.setDaemon(true);
            t.start();
        }

        /** The handshake's server side: read the caller's domain and address, answer with ours. */
        void answer(Socket c) {
            try (c) {
                c.setSoTimeout(3000);
                String line = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8))
                        .readLine();
                if (line == null || !line.startsWith(HELLO + " ")) {
                    return;
                }
                OutputStream o = c.getOutputStream();
                o.write((HELLO + " " + domain + " " + self() + "\n").getBytes(StandardCharsets.UTF_8));
                o.flush();
                String[] f = line.split(" ");
                if (f.length == 3 && f[1].equals(domain)) {
                    joined(f[2]);
                }
            } catch (IOException e) {
                // a caller that hung up
            }
        }

        void joined(String addr) {
            if (joined.add(addr)) {
                log("INFO", "Member joined [" + domain + "]: /" + addr);
            }
        }

        boolean isSelfMember(Member m) {
            return m.port == port && (m.host.equals(host) || isSelf(m.host) && isSelf(host));
        }

        void check() {
            for (Member m : members) {
                if (isSelfMember(m)) {
                    m.state = "self";
                    m.why = null;
                    continue;
                }
                String[] answer = new String[1];
                String why = hello(m, answer);
                String was = m.state;
                if (why == null) {
                    String[] f = answer[0].split(" ");
                    m.advertised = f[2];
                    if (f[1].equals(domain)) {
                        m.state = "joined";
                        m.why = null;
                        joined(f[2]);
                    } else {
                        m.state = "other domain";
                        m.why = "is in domain " + f[1] + ", not " + domain;
                    }
                } else {
                    m.state = "unreachable";
                    m.why = why;
                    if (m.advertised != null && joined.remove(m.advertised)) {
                        log("WARN", "Member left [" + domain + "]: /" + m.advertised);
                    }
                }
                if (!m.state.equals(was) && m.why != null) {
                    log("WARN", "member " + m.addr() + " " + m.state + ": " + m.why);
                }
            }
        }

        /** Null when member answered the handshake (its answer in out[0]), else why not. */
        String hello(Member m, String[] out) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(m.host, m.port), 1500);
                s.setSoTimeout(3000);
                OutputStream o = s.getOutputStream();
                o.write((HELLO + " " + domain + " " + self() + "\n").getBytes(StandardCharsets.UTF_8));
                o.flush();
                String line = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8))
                        .readLine();
                if (line == null || !line.startsWith(HELLO + " ") || line.split(" ").length != 3) {
                    return "answered, but not as a cluster member";
                }
                out[0] = line;
                return null;
            } catch (IOException e) {
                return e.getClass().getSimpleName() + ": " + e.getMessage();
            }
        }
    }

    static void clustering(Element axis2) {
        Element c = at(axis2, "clustering");
        if (c == null) {
            return;
        }
        Cluster k = new Cluster();
        k.enabled = "true".equals(c.getAttribute("enable"));
        k.scheme = param(c, "membershipScheme");
        k.domain = param(c, "domain");
        if (!k.enabled) {
            return;
        }
        cluster = k;
        if (k.domain == null || k.domain.isEmpty()) {
            fail("axis2.xml clustering: no domain parameter");
        }
        if (!"wka".equals(k.scheme)) {
            warn("axis2.xml clustering: membershipScheme " + k.scheme
                    + " is not simulated by the stand-in (wka is): no member is checked");
            return;
        }
        k.wka = true;
        k.host = param(c, "localMemberHost");
        if (k.host == null || k.host.isEmpty()) {
            fail("axis2.xml clustering: wka needs localMemberHost");
        }
        k.port = integer("axis2.xml clustering localMemberPort", param(c, "localMemberPort"));
        String bind = param(c, "localMemberBindAddress");
        k.bindHost = bind != null ? bind : k.host;
        String bindPort = param(c, "localMemberBindPort");
        k.bindPort = bindPort != null ? integer("axis2.xml clustering localMemberBindPort", bindPort) : k.port;
        for (Element m : children(at(c, "members"), "member")) {
            String host = text(m, "hostName", "");
            int port = integer("axis2.xml clustering member " + host + " port", text(m, "port", null));
            for (String h : range(host)) {
                k.members.add(new Member(h, port));
            }
        }
        List<String> all = new ArrayList<>();
        k.members.forEach(m -> all.add(m.addr()));
        log("INFO", "clustering: wka, domain " + k.domain + ", local member " + k.self() + ", members "
                + (all.isEmpty() ? "(none)" : String.join(", ", all)));
    }

    /** A hostName, or the addresses of a last-octet range such as 10.0.0.2-4. */
    static List<String> range(String host) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+\\.\\d+\\.\\d+\\.)(\\d+)-(\\d+)")
                .matcher(host);
        List<String> out = new ArrayList<>();
        if (m.matches()) {
            int from = Integer.parseInt(m.group(2));
            int to = Integer.parseInt(m.group(3));
            if (from > to || to > 255) {
                fail("axis2.xml clustering: bad member range " + host);
            }
            for (int i = from; i <= to; i++) {
                out.add(m.group(1) + i);
            }
        } else {
            if (host.isEmpty()) {
                fail("axis2.xml clustering: a member without hostName");
            }
            out.add(host);
        }
        return out;
    }

    // ---- listeners ----

    static void servlet(Element catalina) throws Exception {
        List<Element> connectors = children(at(catalina, "Service"), "Connector");
        if (connectors.isEmpty()) {
            fail("tomcat/catalina-server.xml: no Server/Service/Connector");
        }
        for (Element c : connectors) {
            boolean tls = "true".equalsIgnoreCase(c.getAttribute("SSLEnabled"));
            String name = tls ? "servlet_https" : "servlet_http";
            int port = integer("tomcat/catalina-server.xml Connector port", c.getAttribute("port")) + offset;
            String proxy = c.getAttribute("proxyPort");
            if (!proxy.isEmpty()) {
                proxyPorts.put(name, integer("tomcat/catalina-server.xml Connector proxyPort", proxy));
            }
            SSLContext ctx = null;
            if (tls) {
                String what = "tomcat/catalina-server.xml HTTPS Connector keystoreFile";
                String file = c.getAttribute("keystoreFile");
                String pass = c.getAttribute("keystorePass");
                String alias = c.getAttribute("keyAlias");
                String type = c.getAttribute("keystoreType");
                ctx = serverTls(what, file.isEmpty() ? null : file, type.isEmpty() ? "JKS" : type,
                        pass.isEmpty() ? "changeit" : pass, null, alias.isEmpty() ? null : alias);
                keystores.put(name, rel(home.resolve(resolve(file))));
            }
            StandIn.httpServer(name, port, ctx, ex -> handle(ex, true));
        }
    }

    static void passThrough(Element axis2) throws Exception {
        for (Element r : children(axis2, "transportReceiver")) {
            String name = r.getAttribute("name");
            if (!name.equals("http") && !name.equals("https")) {
                continue;
            }
            String raw = param(r, "port");
            if (raw == null) {
                continue;
            }
            int port = integer("axis2.xml transportReceiver " + name + " port", resolve(raw)) + offset;
            SSLContext ctx = null;
            if (name.equals("https")) {
                Element ks = at(paramElement(r, "keystore"), "KeyStore");
                if (ks == null) {
                    fail("axis2.xml transportReceiver https: no keystore parameter with a KeyStore");
                }
                ctx = serverTls("axis2.xml transportReceiver https KeyStore", text(ks, "Location", null),
                        text(ks, "Type", "JKS"), text(ks, "Password", null), text(ks, "KeyPassword", null), null);
                keystores.put("passthrough_https", rel(home.resolve(resolve(text(ks, "Location", "")))));
            }
            StandIn.httpServer("passthrough_" + name, port, ctx, ex -> handle(ex, false));
        }
    }

    /** Context paths of the Jaggery apps and webapps deployed now (a playbook may remove some). */
    static List<String> apps() {
        List<String> out = new ArrayList<>();
        Path server = home.resolve("repository/deployment/server");
        for (String kind : new String[] {"jaggeryapps", "webapps"}) {
            File[] files = server.resolve(kind).toFile().listFiles();
            if (files == null) {
                continue;
            }
            java.util.Arrays.sort(files);
            for (File f : files) {
                String n = f.getName();
                if (kind.equals("jaggeryapps") && f.isDirectory()) {
                    out.add("/" + n);
                } else if (kind.equals("webapps") && (f.isDirectory() || n.endsWith(".war"))) {
                    out.add("/" + n.replaceAll("\\.war$", "").replace('#', '/'));
                }
            }
        }
        return out;
    }

    static void handle(HttpExchange ex, boolean servlet) throws IOException {
        String path = ex.getRequestURI().getPath();
        String[] answer;
        String type = "application/json";
        if (path.equals("/health") || path.equals("/health/") || path.startsWith("/health/node")) {
            answer = health(path.startsWith("/health/node"));
        } else if (path.equals("/services") || path.startsWith("/services/")) {
            answer = services(ex.getRequestHeaders().getFirst("Authorization"));
        } else if (servlet && (path.equals("/carbon") || path.startsWith("/carbon/"))) {
            answer = new String[] {"200", "<html><body>" + product + " management console (stand-in)</body></html>"};
            type = "text/html";
        } else if (servlet && apps().stream().anyMatch(a -> path.equals(a) || path.startsWith(a + "/"))) {
            answer = new String[] {"200", "{\"app\":" + StandIn.q(path) + "}"};
        } else {
            answer = new String[] {"404", "{\"error\":\"not found\"}"};
        }
        byte[] b = (answer[1] + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        if (answer[0].equals("401")) {
            ex.getResponseHeaders().set("WWW-Authenticate", "Basic realm=\"" + product + "\"");
        }
        ex.sendResponseHeaders(Integer.parseInt(answer[0]), b.length);
        try (OutputStream o = ex.getResponseBody()) {
            o.write(b);
        }
    }

    /** The admin services: the listing is public, but credentials given must be the admin's. */
    static String[] services(String auth) {
        if (auth != null) {
            String given = null;
            if (auth.startsWith("Basic ")) {
                try {
                    given = new String(Base64.getDecoder().decode(auth.substring(6).trim()), StandardCharsets.UTF_8);
                } catch (IllegalArgumentException e) {
                    // not Base64: refused below
                }
            }
            if (!(adminUser + ":" + adminPassword).equals(given)) {
                return new String[] {"401", "{\"error\":\"authentication failed\"}"};
            }
        }
        return new String[] {"200", "{\"services\":[\"AuthenticationAdmin\",\"RemoteUserStoreManagerService\"]}"};
    }

    static String arr(List<String> l) {
        StringBuilder b = new StringBuilder("[");
        l.forEach(s -> b.append(b.length() == 1 ? "" : ",").append(StandIn.q(s)));
        return b.append(']').toString();
    }

    /** [status code, JSON body] of /health (everything) or /health/node (datasources only). */
    static String[] health(boolean nodeOnly) {
        List<String> reasons = new ArrayList<>();
        if (startedAt == 0) {
            reasons.add("starting");
        }
        Map<String, String> ds = new LinkedHashMap<>();
        for (DataSource d : datasources.values()) {
            ds.put(d.name, d.state);
            if (d.why != null) {
                reasons.add("datasource " + d.name + ": " + d.why);
            }
        }
        Map<String, String> pe = new LinkedHashMap<>();
        for (Peer p : peers.values()) {
            pe.put(p.url, p.state);
            if (!nodeOnly && p.why != null) {
                reasons.add("peer " + p.url + ": " + p.why);
            }
        }
        Map<String, String> me = new LinkedHashMap<>();
        Map<String, Object> cl = new LinkedHashMap<>();
        if (cluster != null) {
            cl.put("enabled", true);
            cl.put("scheme", String.valueOf(cluster.scheme));
            cl.put("domain", cluster.domain);
            if (cluster.wka) {
                cl.put("local_member", cluster.self());
                for (Member m : cluster.members) {
                    me.put(m.addr(), m.state);
                    if (!nodeOnly && m.why != null) {
                        reasons.add("member " + m.addr() + " " + (m.state.equals("unreachable") ? "unreachable: "
                                : "") + m.why);
                    }
                }
            }
        } else {
            cl.put("enabled", false);
        }
        Map<String, Object> node = new LinkedHashMap<>();
        node.put("pid", ProcessHandle.current().pid());
        node.put("uptime_ms", startedAt == 0 ? 0 : System.currentTimeMillis() - startedAt);
        boolean ok = reasons.isEmpty();
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("status", ok ? "ok" : "degraded");
        body.put("reasons", new StandIn.Raw(arr(reasons)));
        body.put("product", product);
        body.put("node", new StandIn.Raw(StandIn.obj(node)));
        body.put("datasources", new StandIn.Raw(StandIn.obj(ds)));
        body.put("peers", new StandIn.Raw(StandIn.obj(pe)));
        body.put("clustering", new StandIn.Raw(StandIn.obj(cl)));
        body.put("members", new StandIn.Raw(StandIn.obj(me)));
        body.put("offset", offset);
        body.put("hostname", hostName == null ? localIp : hostName);
        body.put("local_ip", localIp);
        body.put("ports", new StandIn.Raw(StandIn.obj(ports)));
        body.put("proxy_ports", new StandIn.Raw(StandIn.obj(proxyPorts)));
        body.put("keystores", new StandIn.Raw(StandIn.obj(keystores)));
        body.put("apps", new StandIn.Raw(arr(apps())));
        body.put("warnings", new StandIn.Raw(arr(warnings)));
        body.put("started_at", startedAt);
        return new String[] {ok ? "200" : "503", StandIn.obj(body)};
    }
}
