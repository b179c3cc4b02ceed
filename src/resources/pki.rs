//! The controller-side PKI behind `keystore` and `truststore`: one cluster CA per state directory, leaf
//! certificates issued by it, and the PKCS#12 bundles delivered to hosts. Building a resource only reads
//! the state directory ([`StateDir::read_only`]): `plan`, `validate` and `graph` never write on the
//! controller, and say what apply will issue instead. Apply issues what is missing ([`StateDir::open`])
//! and stores it, so every host and every later run gets the same bytes: keys and PKCS#12 files (whose
//! encryption uses random salts) are never regenerated unless what they must contain changed, which is
//! what lets plans converge.
//!
//! Layout of a state directory (mode 0700, every file 0600): `ca.key` and `ca.pem` (the CA; modules copy
//! `ca.pem` to hosts that must trust it), `<name>.key`, `<name>.pem` and `<name>.p12` per issued identity,
//! and `.lock`, which serializes concurrent runs sharing the directory.

use super::{bad, sha256_hex, ResourceError};
use p12_keystore::{
    Certificate as P12Cert, KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKey,
    PrivateKeyChain,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, PKCS_RSA_SHA256,
};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// Default subject of the cluster CA, shared by both resource types so they agree on one CA.
pub(super) const DEFAULT_CA_CN: &str = "apim-provision cluster CA";

/// How long a new CA is valid. It is never renewed automatically: every deployed trust store holds it.
const CA_DAYS: i64 = 3650;
/// How long a new leaf certificate is valid.
const LEAF_DAYS: i64 = 730;
/// A leaf expiring within this many days is reissued, so a run well before expiry renews it.
const RENEW_DAYS: i64 = 30;

/// A subject alternative name, told apart by parsing so IP addresses get an IP SAN (clients match an
/// address only against IP SANs, never against a DNS SAN spelling it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum San {
    /// A DNS name (lowercased; a leading `*.` wildcard allowed).
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl San {
    /// Parses one `sans` entry, rejecting anything that is neither an address nor a host name.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        let name = s.to_ascii_lowercase();
        let labels = name.strip_prefix("*.").unwrap_or(&name);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if name.len() > 253 || !labels.split('.').all(label_ok) {
            return Err(format!(
                "sans: `{s}` is neither an IP address nor a DNS name"
            ));
        }
        Ok(San::Dns(name))
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => f.write_str(d),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The cluster CA, loaded or created.
pub(super) struct Ca {
    key: KeyPair,
    /// The certificate, DER.
    pub(super) der: Vec<u8>,
    /// The certificate, PEM, as `ca.pem` holds it.
    pub(super) pem: String,
    /// Hex SHA-256 of the DER: what keytool's fingerprint of a deployed copy is compared with.
    pub(super) fingerprint: String,
}

/// An issued leaf: key and certificate as stored in the state directory.
pub(super) struct Leaf {
    /// PKCS#8 DER of the private key.
    key_der: Vec<u8>,
    /// The private key, PEM, as `<name>.key` holds it.
    pub(super) key_pem: String,
    /// The certificate, PEM, as `<name>.pem` holds it.
    pub(super) pem: String,
    /// The certificate, DER.
    pub(super) der: Vec<u8>,
    /// Hex SHA-256 of the DER.
    pub(super) fingerprint: String,
}

/// An open state directory, locked for as long as it is held so two runs never issue or rewrite the same
/// files at once.
pub(super) struct StateDir {
    kind: &'static str,
    dir: PathBuf,
    /// Held while open for writing; `None` for a read-only view, which never creates anything.
    lock: Option<File>,
}

impl StateDir {
    /// A view of the directory that only reads (state files are replaced by rename, so a concurrent
    /// writer is never seen half-way): what plan uses to tell what exists and what apply will issue.
    pub(super) fn read_only(kind: &'static str, dir: &str) -> Result<Self, ResourceError> {
        check_dir(kind, dir)?;
        Ok(Self {
            kind,
            dir: PathBuf::from(dir),
            lock: None,
        })
    }

    /// True when opened for writing (locked): missing material may be issued.
    pub(super) fn is_writable(&self) -> bool {
        self.lock.is_some()
    }

    /// The directory, for plan lines.
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (0700) when needed and takes its lock, waiting for another run to finish.
    pub(super) fn open(kind: &'static str, dir: &str) -> Result<Self, ResourceError> {
        check_dir(kind, dir)?;
        let path = PathBuf::from(dir);
        let io = |what: &str, e: std::io::Error| fail(kind, &format!("{what} {dir}: {e}"));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|e| io("creating state_dir", e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restricting state_dir", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path.join(".lock"))
            .map_err(|e| io("opening the lock of", e))?;
        lock.lock().map_err(|e| io("locking", e))?;
        Ok(Self {
            kind,
            dir: path,
            lock: Some(lock),
        })
    }

    /// The CA of this directory: created on first use, then loaded forever after.
    pub(super) fn ca(&self, common_name: &str) -> Result<Ca, ResourceError> {
        match self.existing_ca(common_name)? {
            Some(ca) => Ok(ca),
            None => self.create_ca(common_name),
        }
    }

    /// The CA already in this directory, `None` when there is none yet. A different `common_name` is
    /// an error rather than a new CA, since every store already trusting the old one would silently
    /// stop working.
    pub(super) fn existing_ca(&self, common_name: &str) -> Result<Option<Ca>, ResourceError> {
        let (key_path, pem_path) = (self.dir.join("ca.key"), self.dir.join("ca.pem"));
        match (key_path.exists(), pem_path.exists()) {
            (true, true) => {
                let key = self.load_key(&key_path)?;
                let pem = self.read_text(&pem_path)?;
                let der = pem_to_der(&pem).ok_or_else(|| self.broken(&pem_path, "no certificate"))?;
                let cert = parse(&der).ok_or_else(|| self.broken(&pem_path, "unparsable"))?;
                if cert.public_key().raw != key.subject_public_key_info().as_slice() {
                    return Err(self.broken(&key_path, "does not match ca.pem"));
                }
                let cn = common_name_of(&cert);
                if cn != common_name {
                    return Err(bad(
                        self.kind,
                        format!(
                            "ca_common_name `{common_name}` differs from the CA already in {} (CN={cn}): \
                             a CA is created once and reused; use the same ca_common_name or another state_dir",
                            self.dir.display()
                        ),
                    ));
                }
                let fingerprint = sha256_hex(&der);
                Ok(Some(Ca {
                    key,
                    der,
                    pem,
                    fingerprint,
                }))
            }
            (false, false) => Ok(None),
            _ => Err(fail(
                self.kind,
                &format!(
                    "{} holds only one of ca.key and ca.pem: restore the other or remove both to start a new CA",
                    self.dir.display()
                ),
            )),
        }
    }

    fn create_ca(&self, common_name: &str) -> Result<Ca, ResourceError> {
        self.writable()?;
        let key = KeyPair::generate().map_err(|e| self.gen_err("CA key", e))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(CA_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(|e| self.gen_err("CA certificate", e))?;
        // Key first: a crash in between leaves a key without a certificate, which `ca` reports instead
        // of pairing an old certificate with a new key.
        self.write("ca.key", key.serialize_pem().as_bytes())?;
        self.write("ca.pem", cert.pem().as_bytes())?;
        let der = cert.der().to_vec();
        Ok(Ca {
            fingerprint: sha256_hex(&der),
            pem: cert.pem(),
            der,
            key,
        })
    }

    /// The leaf `name`: the stored one while it still matches `common_name` and `sans`, is signed by
    /// `ca`, matches its key and is not about to expire; otherwise a new key and certificate.
    pub(super) fn leaf(
        &self,
        ca: &Ca,
        name: &str,
        common_name: &str,
        sans: &[San],
        key_type: KeyType,
    ) -> Result<Leaf, ResourceError> {
        match self.existing_leaf(ca, name, common_name, sans, key_type)? {
            Some(leaf) => Ok(leaf),
            None => self.issue(ca, name, common_name, sans, key_type),
        }
    }

    /// The stored leaf `name` when it is still good for `ca`, `common_name`, `sans` and `key_type`.
    pub(super) fn existing_leaf(
        &self,
        ca: &Ca,
        name: &str,
        common_name: &str,
        sans: &[San],
        key_type: KeyType,
    ) -> Result<Option<Leaf>, ResourceError> {
        let (key_path, pem_path) = (
            self.dir.join(format!("{name}.key")),
            self.dir.join(format!("{name}.pem")),
        );
        if key_path.exists() && pem_path.exists() {
            let key = self.load_key(&key_path)?;
            let pem = self.read_text(&pem_path)?;
            if let Some(der) = pem_to_der(&pem) {
                if key_type.matches(&key) && leaf_still_valid(&der, &key, ca, common_name, sans) {
                    return Ok(Some(Leaf {
                        fingerprint: sha256_hex(&der),
                        key_der: key.serialize_der(),
                        key_pem: self.read_text(&key_path)?,
                        pem,
                        der,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// True when `<name>.key` or `<name>.pem` exists: a leaf apply would issue replaces an old one.
    pub(super) fn has_leaf(&self, name: &str) -> bool {
        self.dir.join(format!("{name}.key")).exists()
            || self.dir.join(format!("{name}.pem")).exists()
    }

    fn issue(
        &self,
        ca: &Ca,
        name: &str,
        common_name: &str,
        sans: &[San],
        key_type: KeyType,
    ) -> Result<Leaf, ResourceError> {
        self.writable()?;
        let key = key_type.generate().map_err(|e| self.gen_err("key", e))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s {
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
                San::Dns(d) => d.as_str().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| self.gen_err("SANs", e))?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(LEAF_DAYS);
        let issuer = Issuer::from_ca_cert_der(&ca.der.as_slice().into(), &ca.key)
            .map_err(|e| self.gen_err("CA issuer", e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| self.gen_err("certificate", e))?;
        let (key_pem, pem) = (key.serialize_pem(), cert.pem());
        self.write(&format!("{name}.key"), key_pem.as_bytes())?;
        self.write(&format!("{name}.pem"), pem.as_bytes())?;
        let der = cert.der().to_vec();
        Ok(Leaf {
            fingerprint: sha256_hex(&der),
            key_der: key.serialize_der(),
            key_pem,
            pem,
            der,
        })
    }

    /// The PKCS#12 bundle of `leaf` (chain: leaf, CA) under `alias`: the stored `<name>.p12` when it
    /// opens with `password` and holds exactly that entry, else a new one, stored for every later call.
    pub(super) fn pkcs12(
        &self,
        name: &str,
        leaf: &Leaf,
        ca: &Ca,
        alias: &str,
        password: &str,
    ) -> Result<Vec<u8>, ResourceError> {
        if let Some(stored) = self.existing_pkcs12(name, leaf, ca, alias, password) {
            return Ok(stored);
        }
        self.writable()?;
        let file = format!("{name}.p12");
        let err = |what: &str| {
            fail(
                self.kind,
                &format!("building the PKCS#12 of `{name}`: {what}"),
            )
        };
        let key = PrivateKey::from_der(&leaf.key_der).map_err(|_| err("unusable key"))?;
        let certs = [&leaf.der, &ca.der]
            .into_iter()
            .map(|d| P12Cert::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| err("unusable certificate"))?;
        let key_id = leaf.fingerprint.as_bytes()[..20].to_vec();
        let mut store = KeyStore::new();
        store.add_entry(
            alias,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id, key, certs)),
        );
        let bytes = store
            .writer(password)
            .write()
            .map_err(|_| err("encoding failed"))?;
        self.write(&file, &bytes)?;
        Ok(bytes)
    }

    /// The stored `<name>.p12` when it opens with `password` and holds exactly `leaf` under `alias`.
    pub(super) fn existing_pkcs12(
        &self,
        name: &str,
        leaf: &Leaf,
        ca: &Ca,
        alias: &str,
        password: &str,
    ) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(format!("{name}.p12")))
            .ok()
            .filter(|stored| p12_holds(stored, password, alias, leaf, ca))
    }

    /// Refuses to issue anything through a read-only view (a bug, never a user error).
    fn writable(&self) -> Result<(), ResourceError> {
        if self.is_writable() {
            return Ok(());
        }
        Err(fail(
            self.kind,
            &format!(
                "{} is open read-only: nothing is issued while planning",
                self.dir.display()
            ),
        ))
    }

    /// Writes a state file atomically (temp file, fsync, rename) with mode 0600 from the first byte.
    fn write(&self, file: &str, bytes: &[u8]) -> Result<(), ResourceError> {
        let tmp = self.dir.join(format!(".{file}.tmp"));
        let dest = self.dir.join(file);
        let io = |e: std::io::Error| fail(self.kind, &format!("writing {}: {e}", dest.display()));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &dest).map_err(io)
    }

    fn read_text(&self, path: &Path) -> Result<String, ResourceError> {
        std::fs::read_to_string(path)
            .map_err(|e| fail(self.kind, &format!("reading {}: {e}", path.display())))
    }

    fn load_key(&self, path: &Path) -> Result<KeyPair, ResourceError> {
        KeyPair::from_pem(&self.read_text(path)?)
            .map_err(|_| self.broken(path, "not a private key"))
    }

    fn broken(&self, path: &Path, what: &str) -> ResourceError {
        fail(
            self.kind,
            &format!("state file {} is unusable: {what}", path.display()),
        )
    }

    fn gen_err(&self, what: &str, e: impl std::fmt::Display) -> ResourceError {
        fail(self.kind, &format!("generating the {what} failed: {e}"))
    }
}

fn check_dir(kind: &str, dir: &str) -> Result<(), ResourceError> {
    if !dir.starts_with('/') {
        return Err(bad(
            kind,
            format!("state_dir `{dir}` must be an absolute path"),
        ));
    }
    Ok(())
}

fn fail(kind: &str, msg: &str) -> ResourceError {
    ResourceError::Failed(format!("{kind}: {msg}"))
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(p.contents)
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c)
}

fn common_name_of(cert: &X509Certificate) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The SANs of a certificate, sorted, so a reordered `sans` list does not reissue.
fn sans_of(cert: &X509Certificate) -> Vec<San> {
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.push(San::Dns(d.to_ascii_lowercase())),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        out.push(San::Ip(IpAddr::from(a)));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        out.push(San::Ip(IpAddr::from(a)));
                    }
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// The leaf key's algorithm. RSA is the default because WSO2 also signs JWTs and encrypts secrets with
/// its primary keystore's key, which must be RSA; ECDSA suits pure TLS keystores. The CA stays ECDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum KeyType {
    /// RSA 2048 with SHA-256 signatures.
    #[default]
    Rsa,
    /// ECDSA P-256.
    Ecdsa,
}

impl KeyType {
    /// A new key of this type. ring (rcgen's backend) cannot generate RSA keys, only sign with them, so
    /// RSA keys come from the `rsa` crate as PKCS#8.
    fn generate(self) -> Result<KeyPair, String> {
        match self {
            KeyType::Ecdsa => KeyPair::generate().map_err(|e| e.to_string()),
            KeyType::Rsa => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(|e| e.to_string())?;
                let pem = key
                    .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                    .map_err(|e| e.to_string())?;
                KeyPair::from_pem_and_sign_algo(&pem, &PKCS_RSA_SHA256).map_err(|e| e.to_string())
            }
        }
    }

    /// True when a stored key is of this type (a changed `key_type` reissues the leaf).
    fn matches(self, key: &KeyPair) -> bool {
        (key.algorithm() == &PKCS_RSA_SHA256) == (self == KeyType::Rsa)
    }
}

fn leaf_still_valid(der: &[u8], key: &KeyPair, ca: &Ca, cn: &str, sans: &[San]) -> bool {
    let (Some(cert), Some(ca_cert)) = (parse(der), parse(&ca.der)) else {
        return false;
    };
    let mut want = sans.to_vec();
    want.sort();
    want.dedup();
    let renew_at = OffsetDateTime::now_utc() + Duration::days(RENEW_DAYS);
    cert.public_key().raw == key.subject_public_key_info().as_slice()
        && cert.verify_signature(Some(ca_cert.public_key())).is_ok()
        && common_name_of(&cert) == cn
        && sans_of(&cert) == want
        && cert.validity().not_after.timestamp() > renew_at.unix_timestamp()
}

fn p12_holds(bytes: &[u8], password: &str, alias: &str, leaf: &Leaf, ca: &Ca) -> bool {
    let Ok(store) = KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Strict) else {
        return false;
    };
    match store.entry(alias) {
        Some(KeyStoreEntry::PrivateKeyChain(chain)) if store.entries_len() == 1 => {
            let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
            chain.key().as_der() == leaf.key_der.as_slice()
                && certs == [leaf.der.as_slice(), ca.der.as_slice()]
        }
        _ => false,
    }
}

/// The on-disk format of a store, as keytool names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StoreFormat {
    /// PKCS#12, the JDK's default since Java 9.
    Pkcs12,
    /// The legacy Java KeyStore format, still what many products ship (`wso2carbon.jks`).
    Jks,
}

impl StoreFormat {
    /// The `-storetype` keytool expects.
    pub(super) fn keytool_type(self) -> &'static str {
        match self {
            StoreFormat::Pkcs12 => "PKCS12",
            StoreFormat::Jks => "JKS",
        }
    }
}

/// Deserializes a password, also accepting a YAML number (`123456`), and never quoting the value in the
/// error, which serde's own message would do.
pub(super) fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match <serde_json::Value as serde::Deserialize>::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("expected a string")),
    }
}

/// Checks a store password against keytool's 6-character minimum, naming the field but not the value.
pub(super) fn check_password(kind: &str, field: &str, value: &str) -> Result<(), ResourceError> {
    if value.chars().count() < 6 {
        return Err(bad(
            kind,
            format!("{field} must be at least 6 characters (keytool's minimum)"),
        ));
    }
    Ok(())
}

/// Shell lines putting `value` into the exported variable `var` for keytool's `-…pass:env` options. The
/// value travels base64-encoded through the builtin `printf`, so it is on no command line and its
/// literal text is not in the script.
pub(super) fn env_secret(var: &str, value: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    format!("{var}=$(printf '%s' '{b64}' | base64 -d); export {var}\n")
}

/// Probe lines listing `alias` of the store at `"$d"` with the password in `$APIM_SP`, printing
/// `fingerprint` (hex SHA-256 of the certificate, the first of a chain) and `until` (keytool's text of
/// when it expires, see [`keytool_day`]), or `alias absent`, or `store_error` with keytool's first error
/// line. keytool runs under `LC_ALL=C TZ=UTC`, so its messages are the English ones matched here and its
/// dates are UTC whatever the host's locale and zone.
pub(super) fn list_alias_probe(alias: &str) -> String {
    format!(
        r#"LC_ALL=C TZ=UTC; export LC_ALL TZ
if out=$(keytool -list -v -keystore "$d" -storepass:env APIM_SP -alias {a} 2>&1); then
  fact fingerprint "$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*SHA256:[[:space:]]*//p' | head -n 1 | tr -d ': ' | tr 'A-F' 'a-f')"
  fact until "$(printf '%s\n' "$out" | sed -n 's/^.*[[:space:]]until:[[:space:]]*//p' | head -n 1)"
else
  case "$out" in
    *"does not exist"*) fact alias absent ;;
    *) fact store_error "$(printf '%s\n' "$out" | grep -m 1 'keytool error' || printf '%s\n' "$out" | head -n 1)" ;;
  esac
fi
"#,
        a = crate::transport::sh_quote(alias)
    )
}

/// Apply-script line failing with a clear message when the host has no keytool.
pub(super) fn require_keytool(host: &str) -> String {
    format!(
        "command -v keytool >/dev/null 2>&1 || {{ echo {} >&2; exit 127; }}\n",
        crate::transport::sh_quote(&format!("keytool not found on {host}: install a JDK first"))
    )
}

/// The plan line for a store keytool could not open: a wrong password is said so, anything else is
/// quoted from keytool (whose messages never contain the password).
pub(super) fn store_error_line(err: &str) -> String {
    if err.contains("password was incorrect") {
        "store cannot be opened with the given password".to_string()
    } else {
        format!("store cannot be read: {err}")
    }
}

/// The UTC day keytool's `until:` text names (Java's `EEE MMM dd HH:mm:ss zzz yyyy`, e.g. `Wed Jan 05
/// 16:21:17 UTC 2028`), as `YYYY-MM-DD`. `None` for anything else, a zone other than UTC included (a
/// host overriding the probe's `TZ=UTC` in its JVM options): no day rather than a wrong one.
pub(super) fn keytool_day(until: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let [_, month, day, _, zone, year] = until.split_whitespace().collect::<Vec<_>>()[..] else {
        return None;
    };
    if !matches!(zone, "UTC" | "GMT") {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? as u8 + 1;
    let date = time::Date::from_calendar_date(
        year.parse().ok()?,
        time::Month::try_from(month).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    Some(date.to_string())
}

/// The UTC day a certificate (DER) expires, `YYYY-MM-DD`: what plan lines show for the controller's
/// side of a certificate, to compare with [`keytool_day`] of the host's.
pub(super) fn expiry_day(der: &[u8]) -> Option<String> {
    parse(der).map(|c| c.validity().not_after.to_datetime().date().to_string())
}

/// The first 16 hex digits of a fingerprint or checksum: enough to tell two apart in a plan line.
pub(super) fn short(fp: &str) -> &str {
    fp.get(..16).unwrap_or(fp)
}

/// A certificate as plan lines name it: its short SHA-256 and, when known, the day it expires, e.g.
/// `ab12cd34ef567890 (expires 2027-12-01)`, so a drift report tells a renewed certificate from a
/// foreign one and shows which side expires first.
pub(super) fn cert_shown(fingerprint: &str, expires: Option<&str>) -> String {
    match expires {
        Some(day) => format!("{} (expires {day})", short(fingerprint)),
        None => short(fingerprint).to_string(),
    }
}

/// The certificate a [`list_alias_probe`] found on the host, as plan lines name it (`-` when the
/// listing showed none).
pub(super) fn probed_cert(facts: &crate::transport::Facts) -> String {
    cert_shown(
        facts.get("fingerprint").unwrap_or("-"),
        facts.get("until").and_then(keytool_day).as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::{cert_shown, keytool_day};

    #[test]
    fn keytool_dates_are_read_only_in_utc() {
        let day = |s| keytool_day(s);
        assert_eq!(
            day("Wed Jan 05 16:21:17 UTC 2028").as_deref(),
            Some("2028-01-05")
        );
        assert_eq!(
            day("Thu Feb 29 00:00:00 GMT 2024").as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(day("Thu Jan 06 01:21:17 JST 2028"), None);
        assert_eq!(day("Mon Foo 06 01:21:17 UTC 2028"), None);
        assert_eq!(day("Mon Feb 30 01:21:17 UTC 2028"), None);
        assert_eq!(day(""), None);
        assert_eq!(
            cert_shown("ab12cd34ef567890ffff", Some("2027-12-01")),
            "ab12cd34ef567890 (expires 2027-12-01)"
        );
        assert_eq!(cert_shown("-", None), "-");
    }
}
