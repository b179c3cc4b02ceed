//! `keystore`: a private key and TLS certificate signed by the cluster CA, delivered as a PKCS#12 or JKS
//! store, or as the PEM key or PEM certificate alone (for servers such as nginx that read PEM). Keys and
//! certificates are made on the controller (see [`super::pki`]): planning only reads what the state
//! directory holds and says what apply will issue; apply issues it, so the host only ever receives
//! finished bytes and every host gets the same identity. What it writes is key material: the plan never
//! shows its content.
//!
//! PKCS#12 stores and PEM files are plain files: the stored bytes are identical across hosts and runs, so
//! a checksum decides. JKS stores are written by the host's keytool (the format is keytool's own), so the
//! certificate fingerprint under `alias` and whether the store and key open with the given passwords
//! decide instead. A store holding another certificate than the issued one is planned with both: their
//! short fingerprints and the days they expire (the host's as keytool lists it, also for a PKCS#12
//! store whose checksum differs), so plan and drift tell a stale or foreign certificate apart.

use super::pki::{
    cert_shown, check_password, env_secret, expiry_day, list_alias_probe, probed_cert,
    require_keytool, secret, short, store_error_line, KeyType, San, StateDir, DEFAULT_CA_CN,
};
use super::{
    atomic_write_script, bad, parse_args, run_ok, sha256_hex, Action, Attrs, BuildCtx, Change,
    FileMode, Registered, Resource, ResourceError,
};
use crate::transport::{sh_quote, Facts, Transport};
use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "keystore";

/// Mode of a file holding the private key that this task creates, unless `mode` says otherwise.
const NEW_MODE: FileMode = FileMode(0o600);

/// What the task writes at `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Output {
    /// A PKCS#12 store (key, certificate, CA).
    Pkcs12,
    /// A JKS store, converted by the host's keytool.
    Jks,
    /// The private key alone, PEM (PKCS#8).
    PemKey,
    /// The certificate alone, PEM.
    PemCert,
}

impl Output {
    /// True for formats that are the stored bytes, decided by checksum.
    fn is_file(self) -> bool {
        self != Output::Jks
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    dest: String,
    state_dir: String,
    name: String,
    common_name: String,
    #[serde(default, deserialize_with = "super::one_or_many")]
    sans: Vec<String>,
    #[serde(default = "default_ca_cn")]
    ca_common_name: String,
    #[serde(default = "default_alias")]
    alias: String,
    #[serde(default, deserialize_with = "optional_secret")]
    password: Option<String>,
    #[serde(default, deserialize_with = "optional_secret")]
    key_password: Option<String>,
    #[serde(default = "default_format")]
    format: Output,
    #[serde(default)]
    key_type: KeyType,
    #[serde(flatten)]
    attrs: Attrs,
}

fn default_ca_cn() -> String {
    DEFAULT_CA_CN.to_string()
}

fn default_alias() -> String {
    "wso2carbon".to_string()
}

fn default_format() -> Output {
    Output::Pkcs12
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    secret(d).map(Some)
}

/// What identifies the key and certificate in the state directory, and what the task makes of them.
#[derive(Clone)]
struct Identity {
    format: Output,
    alias: String,
    password: String,
    state_dir: String,
    name: String,
    common_name: String,
    sans: Vec<San>,
    ca_common_name: String,
    key_type: KeyType,
}

/// The bytes delivered and the fingerprints registered, once the state directory holds them.
struct Material {
    /// What a file format writes (the PKCS#12 bundle, the PEM key or the PEM certificate); for JKS the
    /// PKCS#12 bundle keytool converts.
    bytes: Vec<u8>,
    sha: String,
    fingerprint: String,
    /// The UTC day the certificate expires, for the plan line of a store holding another one.
    expires: Option<String>,
    ca_fingerprint: String,
}

struct Keystore {
    dest: String,
    key_password: String,
    attrs: Attrs,
    id: Identity,
    /// The plan's identity line, e.g. `keystore cluster-tls (CN=apim, SANs apim.local, 10.0.0.5)`.
    summary: String,
    /// What the state directory holds now, or what apply must issue first.
    now: Result<Material, Vec<String>>,
}

/// The `keystore` entry of `TYPES`: checks the arguments and reads (never writes) the state directory.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if !a.dest.starts_with('/') || a.dest.ends_with('/') {
        return Err(bad(
            KIND,
            format!("dest `{}` must be an absolute file path", a.dest),
        ));
    }
    let name_ok = !a.name.is_empty()
        && !a.name.starts_with('.')
        && a.name != "ca"
        && a.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !name_ok {
        return Err(bad(
            KIND,
            format!(
                "name `{}` must be letters, digits, `.`, `_` or `-`, not start with `.` and not be `ca`",
                a.name
            ),
        ));
    }
    if a.common_name.trim().is_empty() {
        return Err(bad(KIND, "common_name must not be empty"));
    }
    if a.alias.is_empty() || a.alias.chars().any(char::is_control) {
        return Err(bad(KIND, "alias must be a non-empty name"));
    }
    let sans = a
        .sans
        .iter()
        .map(|s| San::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(KIND, e))?;
    let (password, key_password) = match (a.format, a.password) {
        (Output::PemKey | Output::PemCert, None) => (String::new(), String::new()),
        (_, None) => return Err(bad(KIND, "password is required for a pkcs12 or jks store")),
        (_, Some(password)) => {
            check_password(KIND, "password", &password)?;
            let key_password = a.key_password.unwrap_or_else(|| password.clone());
            check_password(KIND, "key_password", &key_password)?;
            if a.format == Output::Pkcs12 && key_password != password {
                return Err(bad(
                    KIND,
                    "key_password must equal password with format pkcs12 (a PKCS#12 store has one password)",
                ));
            }
            (password, key_password)
        }
    };
    let san_list = if sans.is_empty() {
        "none".to_string()
    } else {
        sans.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut k = Keystore {
        dest: a.dest,
        key_password,
        attrs: a.attrs,
        summary: format!(
            "keystore {} (CN={}, SANs {san_list})",
            a.name, a.common_name
        ),
        id: Identity {
            format: a.format,
            alias: a.alias,
            password,
            state_dir: a.state_dir,
            name: a.name,
            common_name: a.common_name,
            sans,
            ca_common_name: a.ca_common_name,
            key_type: a.key_type,
        },
        now: Err(Vec::new()),
    };
    k.now =
        k.id.material(&StateDir::read_only(KIND, &k.id.state_dir)?)?;
    Ok(Box::new(k))
}

impl Identity {
    /// The material `state` holds for this task, or (through a read-only view) the plan lines of what
    /// apply must issue first; through a writable one, whatever is missing is issued and stored.
    fn material(&self, state: &StateDir) -> Result<Result<Material, Vec<String>>, ResourceError> {
        let id = self;
        let writable = state.is_writable();
        let ca = match state.existing_ca(&id.ca_common_name)? {
            Some(ca) => ca,
            None if writable => state.ca(&id.ca_common_name)?,
            None => {
                return Ok(Err(vec![
                    format!(
                        "issue cluster CA (CN={}) in {}",
                        id.ca_common_name,
                        state.path().display()
                    ),
                    format!("issue key and certificate for {}", id.name),
                ]))
            }
        };
        let leaf =
            match state.existing_leaf(&ca, &id.name, &id.common_name, &id.sans, id.key_type)? {
                Some(leaf) => leaf,
                None if writable => {
                    state.leaf(&ca, &id.name, &id.common_name, &id.sans, id.key_type)?
                }
                None => {
                    let verb = if state.has_leaf(&id.name) {
                        "reissue"
                    } else {
                        "issue"
                    };
                    return Ok(Err(vec![format!(
                        "{verb} key and certificate for {}",
                        id.name
                    )]));
                }
            };
        let bytes = match self.format {
            Output::PemKey => leaf.key_pem.clone().into_bytes(),
            Output::PemCert => leaf.pem.clone().into_bytes(),
            Output::Pkcs12 | Output::Jks => {
                match state.existing_pkcs12(&id.name, &leaf, &ca, &self.alias, &self.password) {
                    Some(p12) => p12,
                    None if writable => {
                        state.pkcs12(&id.name, &leaf, &ca, &self.alias, &self.password)?
                    }
                    // A JKS store is checked by fingerprint and passwords; its PKCS#12 source is only
                    // needed when apply converts it.
                    None if self.format == Output::Jks => Vec::new(),
                    None => {
                        return Ok(Err(vec![format!(
                            "build the PKCS#12 bundle of {}",
                            id.name
                        )]))
                    }
                }
            }
        };
        Ok(Ok(Material {
            sha: sha256_hex(&bytes),
            bytes,
            expires: expiry_day(&leaf.der),
            fingerprint: leaf.fingerprint,
            ca_fingerprint: ca.fingerprint,
        }))
    }
}

impl Keystore {
    /// The attributes a write applies: those asked for, plus the private-key default on a new file.
    fn attrs_for(&self, action: Action) -> Attrs {
        let mut attrs = self.attrs.clone();
        if action == Action::Create && self.id.format != Output::PemCert {
            attrs.mode = attrs.mode.or(Some(NEW_MODE));
        }
        attrs
    }

    /// Why an existing JKS store must be rewritten, or `None` when it already holds this identity.
    fn jks_problem(&self, facts: &Facts, m: &Material) -> Option<String> {
        if facts.is("keytool", "absent") {
            return Some("keytool not found at plan time: the store is rewritten at apply".into());
        }
        if !facts.is("magic", "feedfeed") {
            return Some("not a JKS store: replaced".into());
        }
        if let Some(problem) = self.listed_problem(facts, m) {
            return Some(problem);
        }
        if !facts.is("key_open", "yes") {
            return Some(format!(
                "key under alias {} cannot be opened with key_password",
                self.id.alias
            ));
        }
        None
    }

    /// What the probe's keytool listing of the store under `alias` shows differs from `m`: an error
    /// opening it, no entry, or another certificate (both sides' fingerprints and expiry days); `None`
    /// when it holds `m`'s certificate.
    fn listed_problem(&self, facts: &Facts, m: &Material) -> Option<String> {
        if let Some(err) = facts.get("store_error") {
            return Some(store_error_line(err));
        }
        if facts.is("alias", "absent") {
            return Some(format!("no entry under alias {}", self.id.alias));
        }
        if facts.is("fingerprint", &m.fingerprint) {
            return None;
        }
        Some(format!(
            "certificate under alias {}: sha256 {} -> {}",
            self.id.alias,
            probed_cert(facts),
            cert_shown(&m.fingerprint, m.expires.as_deref())
        ))
    }

    /// Why a file format's content differs from `m` (its checksum decided that it does): for a PKCS#12
    /// store keytool could list, what the listing shows (see [`Self::listed_problem`]); otherwise, or
    /// when it holds the same certificate in other bytes, the two checksums.
    fn file_problem(&self, facts: &Facts, m: &Material) -> String {
        let listed = ["fingerprint", "alias", "store_error"]
            .iter()
            .any(|k| facts.get(k).is_some());
        listed
            .then(|| self.listed_problem(facts, m))
            .flatten()
            .unwrap_or_else(|| {
                format!(
                    "content sha256 {} -> {}",
                    short(facts.get("sha256").unwrap_or("-")),
                    short(&m.sha)
                )
            })
    }

    fn jks_script(&self, host: &str, attrs: &Attrs, p12: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(p12);
        let mut body = String::new();
        for chunk in b64.as_bytes().chunks(76) {
            body.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
            body.push('\n');
        }
        format!(
            r#"set -e
umask 077
{need}dest={dest}
w=$(mktemp -d "$(dirname "$dest")/.apim-provision.XXXXXX")
trap 'rm -rf "$w"' EXIT
base64 -d > "$w/in.p12" <<'__APIM_EOF__'
{body}__APIM_EOF__
{sp}{kp}keytool -importkeystore -noprompt -srckeystore "$w/in.p12" -srcstoretype PKCS12 -srcstorepass:env APIM_SP \
  -srcalias {alias} -srckeypass:env APIM_SP -destkeystore "$w/out.jks" -deststoretype JKS \
  -deststorepass:env APIM_SP -destalias {alias} -destkeypass:env APIM_KP >&2
if [ -e "$dest" ]; then chmod --reference="$dest" "$w/out.jks"; chown --reference="$dest" "$w/out.jks"; fi
{attrs}sync "$w/out.jks" 2>/dev/null || true
mv -f "$w/out.jks" "$dest"
"#,
            need = require_keytool(host),
            dest = sh_quote(&self.dest),
            sp = env_secret("APIM_SP", &self.id.password),
            kp = env_secret("APIM_KP", &self.key_password),
            alias = sh_quote(&self.id.alias),
            attrs = attrs.script("\"$w/out.jks\""),
        )
    }

    /// What `register:` sees: the destination and, once known, the fingerprints.
    fn result(&self, change: &mut Change, m: Option<&Material>) {
        let r = &mut change.result;
        r.insert("dest".into(), self.dest.clone().into());
        if let Some(m) = m {
            r.insert("fingerprint".into(), m.fingerprint.clone().into());
            r.insert("ca_fingerprint".into(), m.ca_fingerprint.clone().into());
        }
    }
}

#[async_trait]
impl Resource for Keystore {
    fn describe(&self) -> String {
        format!("{KIND} {}", self.dest)
    }

    fn probe(&self) -> String {
        let d = sh_quote(&self.dest);
        let fp = self
            .now
            .as_ref()
            .map(|m| m.fingerprint.clone())
            .unwrap_or_default();
        match (self.id.format, &self.now) {
            // A PKCS#12 store whose bytes differ is listed too, to say which certificate it holds.
            (Output::Pkcs12, Ok(m)) => format!(
                r#"d={d}
fact_stat "$d"
fact_sha "$d"
[ -f "$d" ] && [ ! -L "$d" ] || exit 0
[ "$(sha256sum < "$d" | cut -c1-64)" != {sha} ] || exit 0
command -v keytool >/dev/null 2>&1 || exit 0
{sp}{list}"#,
                sha = sh_quote(&m.sha),
                sp = env_secret("APIM_SP", &self.id.password),
                list = list_alias_probe(&self.id.alias),
            ),
            (Output::Pkcs12 | Output::PemKey | Output::PemCert, _) => {
                format!("fact_stat {d}\nfact_sha {d}")
            }
            (Output::Jks, _) => format!(
                r#"d={d}
fact_stat "$d"
[ -f "$d" ] && [ ! -L "$d" ] || exit 0
fact magic "$(od -An -tx1 -N4 "$d" | tr -d ' \n')"
command -v keytool >/dev/null 2>&1 || {{ fact keytool absent; exit 0; }}
{sp}{kp}{list}if [ "$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*SHA256:[[:space:]]*//p' | head -n 1 | tr -d ': ' | tr 'A-F' 'a-f')" = {fp} ]; then
  if keytool -certreq -alias {alias} -keystore "$d" -storepass:env APIM_SP -keypass:env APIM_KP >/dev/null 2>&1; then fact key_open yes; else fact key_open no; fi
fi"#,
                sp = env_secret("APIM_SP", &self.id.password),
                kp = env_secret("APIM_KP", &self.key_password),
                list = list_alias_probe(&self.id.alias),
                fp = sh_quote(&fp),
                alias = sh_quote(&self.id.alias),
            ),
        }
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let mut change = match (facts.get("type"), &self.now) {
            (Some("absent") | None, now) => {
                let mut details = vec![self.summary.clone()];
                if let Err(issue) = now {
                    details.extend(issue.iter().cloned());
                }
                Change::new(Action::Create, details)
            }
            (Some("file"), now) => {
                let mut details: Vec<String> = match now {
                    Err(issue) => issue.clone(),
                    Ok(m) if self.id.format.is_file() && facts.is("sha256", &m.sha) => Vec::new(),
                    Ok(m) if self.id.format.is_file() => vec![self.file_problem(facts, m)],
                    Ok(m) => self.jks_problem(facts, m).into_iter().collect(),
                };
                details.extend(self.attrs.changes(facts));
                if details.is_empty() {
                    Change::none()
                } else {
                    details.insert(0, self.summary.clone());
                    Change::new(Action::Update, details)
                }
            }
            (Some(other), _) => {
                return Err(ResourceError::Failed(format!(
                    "{} exists and is a {other}, not a file",
                    self.dest
                )))
            }
        };
        change.sensitive = true;
        self.result(&mut change, self.now.as_ref().ok());
        Ok(change)
    }

    fn applies_by_steps(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        change: &Change,
        host: &dyn Transport,
    ) -> Result<Registered, ResourceError> {
        // Waiting for the state directory's lock and generating keys block: off the async workers.
        let id = self.id.clone();
        let m =
            tokio::task::spawn_blocking(move || id.material(&StateDir::open(KIND, &id.state_dir)?))
                .await
                .map_err(|e| ResourceError::Failed(format!("{KIND}: issuing failed: {e}")))??
                .map_err(|missing| {
                    ResourceError::Failed(format!("{KIND}: could not {}", missing.join(", ")))
                })?;
        let attrs = self.attrs_for(change.action);
        let script = match self.id.format {
            Output::Jks => self.jks_script(host.host(), &attrs, &m.bytes),
            _ => atomic_write_script(&self.dest, &m.bytes, &attrs, None),
        };
        run_ok(host, &format!("writing keystore {}", self.dest), &script).await?;
        let mut done = change.clone();
        self.result(&mut done, Some(&m));
        Ok(done.result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{
        bad_args, build_plain, converge_runs, facts_from, keytool, merged, mode_of, plan_now, res,
    };
    use super::super::{Action, Change, ResourceError, Transport};
    use super::KIND;
    use crate::transport::{LocalTransport, Output, TransportError};
    use serde_json::{json, Value};
    use std::path::Path;
    use std::process::Command;

    const PW: &str = "s3cret-Store-pw";

    fn args(state: &Path, dest: &Path, extra: Value) -> Value {
        merged(
            json!({
                "dest": dest.display().to_string(),
                "state_dir": state.display().to_string(),
                "name": "cluster-tls",
                "common_name": "apim.example.com",
                "sans": ["apim.example.com", "node1.example.com", "10.0.0.5"],
                "password": PW,
            }),
            extra,
        )
    }

    fn no_password_in(r: &dyn super::Resource, changes: &[&Change]) {
        assert!(!r.probe().contains(PW), "password in probe text");
        for c in changes {
            for d in &c.details {
                assert!(!d.contains(PW), "password in `{d}`");
            }
            assert!(!format!("{:?}", c.result).contains(PW));
        }
    }

    #[tokio::test]
    async fn pkcs12_store_converges_and_is_byte_identical_across_runs() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("inv/.apim-state/pki");
        let dest = tmp.path().join("wso2carbon.p12");
        let r = res(KIND, args(&state, &dest, json!({})));
        let (first, second) = converge_runs(KIND, args(&state, &dest, json!({})), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            vec![
                "keystore cluster-tls (CN=apim.example.com, SANs apim.example.com, node1.example.com, 10.0.0.5)".to_string(),
                format!("issue cluster CA (CN=apim-provision cluster CA) in {}", state.display()),
                "issue key and certificate for cluster-tls".to_string(),
            ]
        );
        assert!(first.diff.is_none() && first.sensitive);
        assert_eq!(second.action, Action::None);
        no_password_in(r.as_ref(), &[&first, &second]);
        assert_eq!(mode_of(&dest), 0o600);

        // State directory: private, one CA, one identity.
        assert_eq!(mode_of(&state), 0o700);
        for f in [
            "ca.key",
            "ca.pem",
            "cluster-tls.key",
            "cluster-tls.pem",
            "cluster-tls.p12",
        ] {
            assert_eq!(mode_of(state.join(f)), 0o600, "{f}");
        }
        let p12 = std::fs::read(state.join("cluster-tls.p12")).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), p12);

        // The chain verifies and the store opens with the password, showing the SANs.
        let verify = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(state.join("ca.pem"))
            .arg(state.join("cluster-tls.pem"))
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        let (ok, listing) = keytool(&dest, PW, &["-list", "-v", "-alias", "wso2carbon"]);
        assert!(ok, "{listing}");
        assert!(listing.contains("PrivateKeyEntry"), "{listing}");
        assert!(listing.contains("Certificate chain length: 2"), "{listing}");
        for san in ["DNSName: node1.example.com", "IPAddress: 10.0.0.5"] {
            assert!(listing.contains(san), "{san} missing in {listing}");
        }

        // A second run (a new build from the same state) changes nothing, byte for byte.
        let again = res(KIND, args(&state, &dest, json!({})));
        let plan = plan_now(again.as_ref(), &t).await.unwrap();
        assert_eq!(plan.action, Action::None);
        assert_eq!(plan.result["fingerprint"], first.result["fingerprint"]);
        assert_eq!(std::fs::read(state.join("cluster-tls.p12")).unwrap(), p12);

        // Reordered SANs are the same identity; a new SAN reissues.
        let reordered = json!({"sans": ["10.0.0.5", "NODE1.example.com", "apim.example.com"]});
        let same = res(KIND, args(&state, &dest, reordered));
        assert_eq!(
            plan_now(same.as_ref(), &t).await.unwrap().action,
            Action::None
        );
        let more = json!({"sans": ["apim.example.com", "node1.example.com", "10.0.0.5", "::1"]});
        let (first, second) = converge_runs(KIND, args(&state, &dest, more), &t).await;
        assert_eq!(first.action, Action::Update);
        assert!(
            first.details[0].ends_with("10.0.0.5, ::1)"),
            "{:?}",
            first.details
        );
        assert_eq!(
            first.details[1],
            "reissue key and certificate for cluster-tls"
        );
        assert_eq!(second.action, Action::None);
        assert_ne!(first.result["fingerprint"], plan.result["fingerprint"]);
        assert_eq!(
            first.result["ca_fingerprint"],
            plan.result["ca_fingerprint"]
        );
        let (_, listing) = keytool(&dest, PW, &["-list", "-v", "-alias", "wso2carbon"]);
        assert!(listing.contains("IPAddress: 0:0:0:0:0:0:0:1"), "{listing}");
        assert_eq!(mode_of(&dest), 0o600);
    }

    #[tokio::test]
    async fn jks_store_detects_changed_alias_passwords_and_sans() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let dest = tmp.path().join("wso2carbon.jks");
        let jks_args = |extra: Value| args(&state, &dest, merged(json!({"format": "jks"}), extra));
        let jks = |extra: Value| res(KIND, jks_args(extra));
        let (first, second) = converge_runs(KIND, jks_args(json!({})), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(second.action, Action::None, "{:?}", second.details);
        assert_eq!(
            &std::fs::read(&dest).unwrap()[..4],
            &[0xfe, 0xed, 0xfe, 0xed]
        );
        assert_eq!(mode_of(&dest), 0o600);
        let (ok, listing) = keytool(&dest, PW, &["-list", "-v", "-alias", "wso2carbon"]);
        assert!(
            ok && listing.contains("DNSName: apim.example.com"),
            "{listing}"
        );
        let fp = first.result["fingerprint"].as_str().unwrap().to_string();

        // Another key password: same certificate, but the key no longer opens.
        let kp = "other-key-pw";
        let r = jks(json!({"key_password": kp}));
        let (first, second) = converge_runs(KIND, jks_args(json!({"key_password": kp})), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details[1],
            "key under alias wso2carbon cannot be opened with key_password"
        );
        assert_eq!(second.action, Action::None);
        assert!(!r.probe().contains(kp));

        // Another store password: the store no longer opens; it is rewritten.
        let pw2 = "another-Store-pw";
        let r = jks(json!({"password": pw2}));
        let (first, second) = converge_runs(KIND, jks_args(json!({"password": pw2})), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details[1],
            "store cannot be opened with the given password"
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(first.result["fingerprint"].as_str().unwrap(), fp);
        assert!(keytool(&dest, pw2, &["-list", "-v", "-alias", "wso2carbon"]).0);
        assert!(!r.probe().contains(pw2));

        // Another alias (with the store's current password).
        let (first, second) =
            converge_runs(KIND, jks_args(json!({"alias": "tls", "password": pw2})), &t).await;
        assert_eq!(first.details[1], "no entry under alias tls");
        assert_eq!(second.action, Action::None);
        assert!(keytool(&dest, pw2, &["-list", "-v", "-alias", "tls"]).0);
        assert!(!keytool(&dest, pw2, &["-list", "-v", "-alias", "wso2carbon"]).0);

        // Another SAN: a new certificate.
        let sans = json!({"alias": "tls", "password": pw2, "sans": ["apim.example.com", "node2.example.com"]});
        let r = jks(sans.clone());
        let (first, second) = converge_runs(KIND, jks_args(sans), &t).await;
        assert_eq!(
            first.details[1],
            "reissue key and certificate for cluster-tls"
        );
        assert_eq!(second.action, Action::None);
        no_password_in(r.as_ref(), &[&first, &second]);
        assert!(!r.probe().contains(pw2));
        let (_, listing) = keytool(&dest, pw2, &["-list", "-v", "-alias", "tls"]);
        assert!(listing.contains("DNSName: node2.example.com"), "{listing}");
    }

    /// Replaces `dest` with a store keytool makes (`store_type`, password [`PW`]) holding a self-signed
    /// certificate under `wso2carbon` valid from 2030-01-01 12:00 UTC for 10 days, as a product ships
    /// its own; returns its hex SHA-256.
    fn foreign_store(dest: &Path, store_type: &str) -> String {
        std::fs::remove_file(dest).unwrap();
        let out = Command::new("keytool")
            .args([
                "-genkeypair",
                "-alias",
                "wso2carbon",
                "-keyalg",
                "EC",
                "-dname",
                "CN=foreign",
            ])
            .args(["-startdate", "2030/01/01 12:00:00", "-validity", "10"])
            .args([
                "-storetype",
                store_type,
                "-storepass:env",
                "T_PW",
                "-keypass:env",
                "T_PW",
            ])
            .arg("-keystore")
            .arg(dest)
            .env("T_PW", PW)
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (ok, listing) = keytool(dest, PW, &["-list", "-v", "-alias", "wso2carbon"]);
        assert!(ok, "{listing}");
        let line = listing
            .lines()
            .find(|l| l.trim().starts_with("SHA256:"))
            .unwrap();
        line.trim()["SHA256:".len()..]
            .trim()
            .replace(':', "")
            .to_ascii_lowercase()
    }

    /// The day `pem`'s certificate expires, as openssl prints it in ISO 8601.
    fn openssl_expiry(pem: &Path) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
            .arg(pem)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()["notAfter=".len()..][..10].to_string()
    }

    #[tokio::test]
    async fn a_replaced_store_names_both_certificates_and_their_expiry() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        for (format, store_type) in [("jks", "JKS"), ("pkcs12", "PKCS12")] {
            let dest = tmp.path().join(format!("wso2carbon.{format}"));
            let a = args(&state, &dest, json!({"format": format}));
            let (first, _) = converge_runs(KIND, a.clone(), &t).await;
            let want_fp = first.result["fingerprint"].as_str().unwrap().to_string();
            let want_day = openssl_expiry(&state.join("cluster-tls.pem"));
            let host_fp = foreign_store(&dest, store_type);

            let r = res(KIND, a);
            let plan = plan_now(r.as_ref(), &t).await.unwrap();
            assert_eq!(plan.action, Action::Update, "{format}");
            assert_eq!(
                plan.details[1..],
                [format!(
                    "certificate under alias wso2carbon: sha256 {} (expires 2030-01-11) -> {} (expires {want_day})",
                    &host_fp[..16],
                    &want_fp[..16]
                )],
                "{format}"
            );
            no_password_in(r.as_ref(), &[&plan]);
            r.apply(&plan, &t).await.unwrap();
            assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);
        }

        // The same certificate in other bytes (a PKCS#12 store re-encrypted by keytool) is told by
        // checksum only; so is a store keytool cannot open: the checksum decides a PKCS#12 store.
        let dest = tmp.path().join("wso2carbon.pkcs12");
        let copy = tmp.path().join("copy.p12");
        let out = Command::new("keytool")
            .args([
                "-importkeystore",
                "-srcstorepass:env",
                "T_PW",
                "-deststorepass:env",
                "T_PW",
            ])
            .args(["-deststoretype", "PKCS12", "-srckeystore"])
            .arg(&dest)
            .arg("-destkeystore")
            .arg(&copy)
            .env("T_PW", PW)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::rename(&copy, &dest).unwrap();
        let r = res(KIND, args(&state, &dest, json!({"format": "pkcs12"})));
        let plan = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(plan.details.len(), 2, "{:?}", plan.details);
        assert!(
            plan.details[1].starts_with("content sha256 "),
            "{:?}",
            plan.details
        );
        std::fs::write(&dest, "not a store\n").unwrap();
        let plan = plan_now(r.as_ref(), &t).await.unwrap();
        assert!(
            plan.details[1].starts_with("store cannot be read: keytool error"),
            "{:?}",
            plan.details
        );
    }

    /// A host without keytool: every script runs with an empty `PATH`.
    struct NoKeytool(LocalTransport);

    #[async_trait::async_trait]
    impl Transport for NoKeytool {
        fn host(&self) -> &str {
            "bare-host"
        }
        async fn run(&self, script: &str) -> Result<Output, TransportError> {
            self.0.run(&format!("PATH=/nonexistent\n{script}")).await
        }
        async fn upload(&self, local: &Path, remote: &str) -> Result<(), TransportError> {
            self.0.upload(local, remote).await
        }

        fn stats(&self) -> crate::transport::TransportStats {
            self.0.stats()
        }
    }

    #[tokio::test]
    async fn jks_without_keytool_plans_a_rewrite_and_fails_clearly_at_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("k.jks");
        let state = tmp.path().join("pki");
        // The identity exists already (another host's task issued it), so the plan can check the store.
        let mut pem = args(
            &state,
            &tmp.path().join("k.pem"),
            json!({"format": "pem_cert"}),
        );
        pem.as_object_mut().unwrap().remove("password");
        converge_runs(KIND, pem, &LocalTransport::new("t")).await;
        let r = res(KIND, args(&state, &dest, json!({"format": "jks"})));
        let facts = facts_from(&[("type", "file"), ("mode", "600"), ("keytool", "absent")]).await;
        let plan = r.plan(&facts).unwrap();
        assert_eq!(plan.action, Action::Update);
        assert!(plan.details[1].starts_with("keytool not found at plan time"));
        let err = r
            .apply(&plan, &NoKeytool(LocalTransport::new("t")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("keytool not found on bare-host: install a JDK first"),
            "{err}"
        );
        assert!(!err.contains(PW));
        assert!(!dest.exists());
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, dest) = (tmp.path().join("pki"), tmp.path().join("k.p12"));
        let mut a = args(&state, &dest, json!({}));
        a.as_object_mut().unwrap().remove("state_dir");
        bad_args(KIND, a, "state_dir");
        bad_args(
            KIND,
            args(&state, &dest, json!({"state_dir": "rel/pki"})),
            "state_dir",
        );
        bad_args(
            KIND,
            args(&state, &dest, json!({"format": "pem"})),
            "format",
        );
        bad_args(
            KIND,
            args(&state, &dest, json!({"sans": ["ok.example", "bad name"]})),
            "sans",
        );
        bad_args(KIND, args(&state, &dest, json!({"dest": "k.p12"})), "dest");
        bad_args(KIND, args(&state, &dest, json!({"name": "../x"})), "name");
        bad_args(KIND, args(&state, &dest, json!({"name": "ca"})), "name");
        let short = bad_args(
            KIND,
            args(&state, &dest, json!({"password": "abc"})),
            "password",
        );
        assert!(!short.contains("abc"));
        let typed = bad_args(
            KIND,
            args(&state, &dest, json!({"password": [PW]})),
            "password",
        );
        assert!(!typed.contains(PW));
        let kp = json!({"key_password": "different-pw"});
        let msg = bad_args(KIND, args(&state, &dest, kp), "key_password");
        assert!(!msg.contains("different-pw") && !msg.contains(PW));
        assert!(!state.exists(), "bad arguments must not create state");
        // A numeric password is a password, not a type error.
        assert!(build_plain(KIND, args(&state, &dest, json!({"password": 12345678}))).is_ok());
    }

    #[tokio::test]
    async fn a_state_dir_keeps_its_ca() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let (state, dest) = (tmp.path().join("pki"), tmp.path().join("k.p12"));
        converge_runs(KIND, args(&state, &dest, json!({})), &t).await;
        let ca = std::fs::read(state.join("ca.pem")).unwrap();
        let other = json!({"ca_common_name": "another CA"});
        bad_args(KIND, args(&state, &dest, other), "ca_common_name");
        let second = tmp.path().join("second.p12");
        converge_runs(KIND, args(&state, &second, json!({"name": "second"})), &t).await;
        assert_eq!(std::fs::read(state.join("ca.pem")).unwrap(), ca);
        std::fs::remove_file(state.join("ca.pem")).unwrap();
        match build_plain(KIND, args(&state, &dest, json!({}))) {
            Err(ResourceError::Failed(m)) => {
                assert!(m.contains("only one of ca.key and ca.pem"), "{m}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("built with half a CA"),
        }
    }

    #[tokio::test]
    async fn planning_writes_nothing_and_says_what_apply_issues() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let (state, dest) = (
            tmp.path().join("inv/.apim-state/pki"),
            tmp.path().join("k.jks"),
        );
        let r = res(KIND, args(&state, &dest, json!({"format": "jks"})));
        let plan = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(plan.action, Action::Create);
        assert!(
            plan.details[1].starts_with("issue cluster CA"),
            "{:?}",
            plan.details
        );
        assert!(!plan.result.contains_key("fingerprint"));
        assert!(
            !tmp.path().join("inv").exists(),
            "planning created the state directory"
        );

        // With a CA but no key yet, only the key is to issue, and still nothing is written.
        converge_runs(
            "truststore",
            json!({"dest": tmp.path().join("ca.pem").display().to_string(),
            "state_dir": state.display().to_string(), "format": "pem"}),
            &t,
        )
        .await;
        let files = || {
            let mut f: Vec<_> = std::fs::read_dir(&state)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            f.sort();
            f
        };
        let before = files();
        assert_eq!(before, [".lock", "ca.key", "ca.pem"]);
        let r = res(KIND, args(&state, &dest, json!({"format": "jks"})));
        let plan = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(
            plan.details[1..],
            ["issue key and certificate for cluster-tls"]
        );
        assert_eq!(files(), before);
        r.apply(&plan, &t).await.unwrap();
        assert_eq!(
            files(),
            [
                ".lock",
                "ca.key",
                "ca.pem",
                "cluster-tls.key",
                "cluster-tls.p12",
                "cluster-tls.pem"
            ]
        );
    }

    #[tokio::test]
    async fn pem_key_and_certificate_are_the_stored_identity() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let (key, cert) = (tmp.path().join("key.pem"), tmp.path().join("cert.pem"));
        let pem = |dest: &Path, format: &str| {
            let mut a = args(&state, dest, json!({"format": format}));
            a.as_object_mut().unwrap().remove("password");
            a
        };
        let (first, second) = converge_runs(KIND, pem(&key, "pem_key"), &t).await;
        assert_eq!(first.action, Action::Create);
        assert!(first.sensitive && first.diff.is_none());
        assert_eq!(second.action, Action::None);
        assert_eq!(mode_of(&key), 0o600);
        let (_, second) = converge_runs(KIND, pem(&cert, "pem_cert"), &t).await;
        assert_eq!(second.action, Action::None);
        assert_eq!(
            std::fs::read(&key).unwrap(),
            std::fs::read(state.join("cluster-tls.key")).unwrap()
        );
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            std::fs::read(state.join("cluster-tls.pem")).unwrap()
        );
        assert!(crate::resources::is_key_material(
            &std::fs::read(&key).unwrap()
        ));
        for c in [&first, &second] {
            assert!(
                !format!("{:?}", c.details).contains("BEGIN"),
                "{:?}",
                c.details
            );
        }
        // A store format still needs its password.
        let mut a = args(&state, &key, json!({}));
        a.as_object_mut().unwrap().remove("password");
        bad_args(KIND, a, "password");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_applies_share_one_ca_and_one_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let mut runs = Vec::new();
        for i in 0..4 {
            let a = args(&state, &tmp.path().join(format!("k{i}.p12")), json!({}));
            runs.push(tokio::spawn(async move {
                let t = LocalTransport::new("t");
                converge_runs(KIND, a, &t).await.0.result
            }));
        }
        let mut results = Vec::new();
        for r in runs {
            results.push(r.await.unwrap());
        }
        for r in &results[1..] {
            assert_eq!(r["ca_fingerprint"], results[0]["ca_fingerprint"]);
            assert_eq!(r["fingerprint"], results[0]["fingerprint"]);
        }
    }
}
