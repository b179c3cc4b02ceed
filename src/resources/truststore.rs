//! `truststore`: the cluster CA certificate under a fixed alias in a JKS or PKCS#12 trust store, new or
//! existing (a product's `client-truststore.jks`). Other entries are kept: keytool edits a copy next to
//! the store, which is then renamed over it, so the store is never seen half-written.
//!
//! The CA is the one `keystore` issues from in the same `state_dir`. With `format: pem` the task writes
//! the CA certificate itself as a plain PEM file (for nginx or `curl --cacert`). Planning only reads the
//! state directory; a CA that does not exist yet is issued by apply (see [`super::pki`]). Another
//! certificate under the alias is planned as replaced with both short fingerprints and expiry days, as
//! `keystore` plans a foreign certificate.

use super::pki::{
    cert_shown, check_password, env_secret, expiry_day, list_alias_probe, probed_cert,
    require_keytool, secret, store_error_line, StateDir, StoreFormat, DEFAULT_CA_CN,
};
use super::{
    atomic_write_script, bad, parse_args, run_ok, sha256_hex, Action, Attrs, BuildCtx, Change,
    Registered, Resource, ResourceError,
};
use crate::transport::{sh_quote, Facts, Transport};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "truststore";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    dest: String,
    state_dir: String,
    #[serde(default = "default_ca_cn")]
    ca_common_name: String,
    #[serde(default = "default_alias")]
    alias: String,
    #[serde(default, deserialize_with = "optional_secret")]
    password: Option<String>,
    #[serde(default = "default_format")]
    format: TrustFormat,
    #[serde(default = "default_create")]
    create: bool,
    #[serde(flatten)]
    attrs: Attrs,
}

fn default_ca_cn() -> String {
    DEFAULT_CA_CN.to_string()
}

fn default_alias() -> String {
    "apim-provision-ca".to_string()
}

fn default_format() -> TrustFormat {
    TrustFormat::Jks
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    secret(d).map(Some)
}

/// What the task writes at `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TrustFormat {
    /// A JKS trust store (edited by keytool, other entries kept).
    Jks,
    /// A PKCS#12 trust store (edited by keytool, other entries kept).
    Pkcs12,
    /// The CA certificate alone, as a PEM file.
    Pem,
}

/// The CA as the state directory holds it.
struct CaCert {
    pem: String,
    fingerprint: String,
    /// The UTC day it expires, for the plan line of a store holding another certificate.
    expires: Option<String>,
}

fn default_create() -> bool {
    true
}

struct Truststore {
    dest: String,
    alias: String,
    password: String,
    format: TrustFormat,
    create: bool,
    attrs: Attrs,
    state_dir: String,
    ca_common_name: String,
    /// The CA when it exists already; `None` when apply issues it.
    ca: Option<CaCert>,
}

/// The `truststore` entry of `TYPES`: checks the arguments and reads (never writes) the CA in
/// `state_dir` before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if !a.dest.starts_with('/') || a.dest.ends_with('/') {
        return Err(bad(
            KIND,
            format!("dest `{}` must be an absolute file path", a.dest),
        ));
    }
    if a.alias.is_empty() || a.alias.chars().any(char::is_control) {
        return Err(bad(KIND, "alias must be a non-empty name"));
    }
    let password = match (a.format, a.password) {
        (TrustFormat::Pem, _) => String::new(),
        (_, None) => return Err(bad(KIND, "password is required for a jks or pkcs12 store")),
        (_, Some(p)) => {
            check_password(KIND, "password", &p)?;
            p
        }
    };
    let ca = StateDir::read_only(KIND, &a.state_dir)?
        .existing_ca(&a.ca_common_name)?
        .map(|ca| CaCert {
            expires: expiry_day(&ca.der),
            pem: ca.pem,
            fingerprint: ca.fingerprint,
        });
    Ok(Box::new(Truststore {
        dest: a.dest,
        alias: a.alias,
        password,
        format: a.format,
        create: a.create,
        attrs: a.attrs,
        state_dir: a.state_dir,
        ca_common_name: a.ca_common_name,
        ca,
    }))
}

impl Truststore {
    /// The plan line of a CA that apply issues first, when there is none yet.
    fn issue_line(&self) -> Option<String> {
        self.ca.is_none().then(|| {
            format!(
                "issue cluster CA (CN={}) in {}",
                self.ca_common_name, self.state_dir
            )
        })
    }

    fn keytool_type(&self) -> &'static str {
        match self.format {
            TrustFormat::Pkcs12 => StoreFormat::Pkcs12.keytool_type(),
            _ => StoreFormat::Jks.keytool_type(),
        }
    }

    /// Plan of the `pem` format: the file is the CA certificate, decided by checksum.
    fn plan_pem(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let mut details: Vec<String> = self.issue_line().into_iter().collect();
        let action = match facts.get("type") {
            Some("absent") | None => {
                details.push("write the CA certificate (PEM)".into());
                Action::Create
            }
            Some("file") => {
                match &self.ca {
                    Some(ca) if facts.is("sha256", &sha256_hex(ca.pem.as_bytes())) => {}
                    _ => details.push("replace the CA certificate (PEM)".into()),
                }
                details.extend(self.attrs.changes(facts));
                Action::Update
            }
            Some(other) => {
                return Err(ResourceError::Failed(format!(
                    "{} exists and is a {other}, not a file",
                    self.dest
                )))
            }
        };
        Ok(if details.is_empty() {
            Change::none()
        } else {
            Change::new(action, details)
        })
    }
}

#[async_trait]
impl Resource for Truststore {
    fn describe(&self) -> String {
        format!("{KIND} {}", self.dest)
    }

    fn probe(&self) -> String {
        if self.format == TrustFormat::Pem {
            let d = sh_quote(&self.dest);
            return format!("fact_stat {d}\nfact_sha {d}");
        }
        format!(
            r#"d={d}
fact_stat "$d"
[ -f "$d" ] && [ ! -L "$d" ] || exit 0
command -v keytool >/dev/null 2>&1 || {{ fact keytool absent; exit 0; }}
{sp}{list}"#,
            d = sh_quote(&self.dest),
            sp = env_secret("APIM_SP", &self.password),
            list = list_alias_probe(&self.alias),
        )
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let import = format!("import CA under alias {}", self.alias);
        let fingerprint = self.ca.as_ref().map(|c| c.fingerprint.as_str());
        let mut change = match facts.get("type") {
            _ if self.format == TrustFormat::Pem => self.plan_pem(facts)?,
            Some("absent") | None if !self.create => {
                return Err(ResourceError::Failed(format!(
                    "{} does not exist and create is false",
                    self.dest
                )))
            }
            Some("absent") | None => Change::new(
                Action::Create,
                self.issue_line()
                    .into_iter()
                    .chain([format!("create {} store", self.keytool_type()), import])
                    .collect(),
            ),
            Some("file") => {
                if let Some(err) = facts.get("store_error") {
                    // Unlike a keystore, a trust store holds entries this task does not own: it is
                    // never replaced wholesale, so a store it cannot open stops the task.
                    return Err(ResourceError::Failed(format!(
                        "{}: {} (other entries would be lost, so it is not replaced)",
                        self.dest,
                        store_error_line(err)
                    )));
                }
                let mut details: Vec<String> = self.issue_line().into_iter().collect();
                let mut action = Action::Update;
                if facts.is("keytool", "absent") {
                    details.push(format!(
                        "{import} (keytool not found at plan time: checked again at apply)"
                    ));
                } else if facts.is("alias", "absent") {
                    action = Action::Create;
                    details.push(import);
                } else if fingerprint.is_none_or(|fp| !facts.is("fingerprint", fp)) {
                    let want = self.ca.as_ref().map_or("the CA apply issues".into(), |ca| {
                        cert_shown(&ca.fingerprint, ca.expires.as_deref())
                    });
                    details.push(format!(
                        "replace CA under alias {}: sha256 {} -> {want}",
                        self.alias,
                        probed_cert(facts)
                    ));
                }
                details.extend(self.attrs.changes(facts));
                if details.is_empty() {
                    Change::none()
                } else {
                    Change::new(action, details)
                }
            }
            Some(other) => {
                return Err(ResourceError::Failed(format!(
                    "{} exists and is a {other}, not a file",
                    self.dest
                )))
            }
        };
        change
            .result
            .insert("dest".into(), self.dest.clone().into());
        change
            .result
            .insert("alias".into(), self.alias.clone().into());
        if let Some(fp) = fingerprint {
            change.result.insert("fingerprint".into(), fp.into());
        }
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
        // Waiting for the state directory's lock and generating the CA block: off the async workers.
        let (dir, cn) = (self.state_dir.clone(), self.ca_common_name.clone());
        let ca = tokio::task::spawn_blocking(move || StateDir::open(KIND, &dir)?.ca(&cn))
            .await
            .map_err(|e| ResourceError::Failed(format!("{KIND}: issuing the CA failed: {e}")))??;
        let mut result = change.result.clone();
        result.insert("fingerprint".into(), ca.fingerprint.clone().into());
        if self.format == TrustFormat::Pem {
            let script = atomic_write_script(&self.dest, ca.pem.as_bytes(), &self.attrs, None);
            run_ok(host, &format!("writing {}", self.dest), &script).await?;
            return Ok(result);
        }
        let script = format!(
            r#"set -e
umask 077
{need}dest={dest}
alias={alias}
w=$(mktemp -d "$(dirname "$dest")/.apim-provision.XXXXXX")
trap 'rm -rf "$w"' EXIT
cat > "$w/ca.pem" <<'__APIM_EOF__'
{pem}__APIM_EOF__
{sp}if [ -e "$dest" ]; then
  cp -p "$dest" "$w/store"
  if keytool -list -keystore "$w/store" -storepass:env APIM_SP -alias "$alias" >/dev/null 2>&1; then
    keytool -delete -alias "$alias" -keystore "$w/store" -storepass:env APIM_SP >&2
  fi
  keytool -importcert -noprompt -alias "$alias" -file "$w/ca.pem" -keystore "$w/store" -storepass:env APIM_SP >&2
else
  keytool -importcert -noprompt -alias "$alias" -file "$w/ca.pem" -keystore "$w/store" -storetype {fmt} -storepass:env APIM_SP >&2
  chmod {new_mode} "$w/store"
fi
{attrs}sync "$w/store" 2>/dev/null || true
mv -f "$w/store" "$dest"
"#,
            need = require_keytool(host.host()),
            dest = sh_quote(&self.dest),
            alias = sh_quote(&self.alias),
            pem = ca.pem,
            sp = env_secret("APIM_SP", &self.password),
            fmt = self.keytool_type(),
            new_mode = self.attrs.mode.unwrap_or(super::FileMode(0o644)),
            attrs = self.attrs.script("\"$w/store\""),
        );
        run_ok(host, &format!("updating truststore {}", self.dest), &script).await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{
        bad_args, build_plain, converge_runs, keytool, merged, mode_of, plan_now, res,
    };
    use super::super::{Action, ResourceError};
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::{json, Value};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const PW: &str = "wso2carbon-trust";

    fn args(state: &Path, dest: &Path, extra: Value) -> Value {
        merged(
            json!({
                "dest": dest.display().to_string(),
                "state_dir": state.display().to_string(),
                "password": PW,
            }),
            extra,
        )
    }

    /// A store with an entry this task does not own, as a product ships its client trust store.
    fn existing_store(store: &Path, alias: &str) {
        let (ok, out) = keytool(
            store,
            PW,
            &[
                "-genkeypair",
                "-alias",
                alias,
                "-keyalg",
                "EC",
                "-dname",
                "CN=other",
                "-storetype",
                "JKS",
                "-keypass:env",
                "T_PW",
            ],
        );
        assert!(ok, "{out}");
    }

    /// The hex SHA-256 and the expiry day of `pem`'s certificate, as openssl prints them.
    fn openssl_cert(pem: &Path) -> (String, String) {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-enddate"])
            .args(["-dateopt", "iso_8601", "-in"])
            .arg(pem)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |key: &str| {
            let line = text.lines().find(|l| l.starts_with(key)).unwrap();
            line[key.len()..].to_string()
        };
        (
            field("sha256 Fingerprint=")
                .replace(':', "")
                .to_ascii_lowercase(),
            field("notAfter=")[..10].to_string(),
        )
    }

    #[tokio::test]
    async fn new_store_converges_and_shares_the_keystore_ca() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let dest = tmp.path().join("client-truststore.jks");
        let r = res(KIND, args(&state, &dest, json!({})));
        assert!(!state.exists(), "building must not create the CA");
        let (first, second) = converge_runs(KIND, args(&state, &dest, json!({})), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            vec![
                format!(
                    "issue cluster CA (CN=apim-provision cluster CA) in {}",
                    state.display()
                ),
                "create JKS store".into(),
                "import CA under alias apim-provision-ca".into()
            ]
        );
        assert_eq!(second.action, Action::None);
        assert!(!r.probe().contains(PW));
        assert_eq!(
            &std::fs::read(&dest).unwrap()[..4],
            &[0xfe, 0xed, 0xfe, 0xed]
        );
        assert_eq!(mode_of(&dest), 0o644);
        let (ok, listing) = keytool(&dest, PW, &["-list", "-v", "-alias", "apim-provision-ca"]);
        assert!(ok && listing.contains("trustedCertEntry"), "{listing}");
        assert!(listing.contains("apim-provision cluster CA"), "{listing}");

        // A keystore from the same state_dir is issued by this very CA.
        let ks = json!({"dest": tmp.path().join("k.p12").display().to_string(),
                   "state_dir": state.display().to_string(), "name": "tls",
                   "common_name": "apim", "password": PW});
        let (ks_applied, _) = converge_runs("keystore", ks, &t).await;
        assert_eq!(
            ks_applied.result["ca_fingerprint"],
            first.result["fingerprint"]
        );

        // A second run: same CA, nothing to do.
        let again = res(KIND, args(&state, &dest, json!({})));
        assert_eq!(
            plan_now(again.as_ref(), &t).await.unwrap().action,
            Action::None
        );
    }

    #[tokio::test]
    async fn existing_store_keeps_its_entries_and_a_stale_ca_is_replaced() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let dest = tmp.path().join("client-truststore.jks");
        existing_store(&dest, "gateway");
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o640)).unwrap();
        let keep = args(&state, &dest, json!({"create": false}));
        let (first, second) = converge_runs(KIND, keep.clone(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details[1..],
            ["import CA under alias apim-provision-ca"]
        );
        assert_eq!(second.action, Action::None);
        assert!(keytool(&dest, PW, &["-list", "-alias", "gateway"]).0);
        assert_eq!(mode_of(&dest), 0o640);

        // Something else under the alias (an older CA): replaced, other entries kept.
        assert!(keytool(&dest, PW, &["-delete", "-alias", "apim-provision-ca"]).0);
        let (ok, out) = keytool(&dest, PW, &["-exportcert", "-rfc", "-alias", "gateway"]);
        assert!(ok);
        let stale = tmp.path().join("stale.pem");
        std::fs::write(&stale, out).unwrap();
        let stale = stale.display().to_string();
        let import = [
            "-importcert",
            "-noprompt",
            "-alias",
            "apim-provision-ca",
            "-file",
            &stale,
        ];
        assert!(keytool(&dest, PW, &import).0);
        let r = res(KIND, keep.clone());
        let (first, second) = converge_runs(KIND, keep, &t).await;
        assert_eq!(first.action, Action::Update);
        let (host_fp, host_day) = openssl_cert(Path::new(&stale));
        let (want_fp, want_day) = openssl_cert(&state.join("ca.pem"));
        assert_eq!(
            first.details,
            vec![format!(
                "replace CA under alias apim-provision-ca: sha256 {} (expires {host_day}) -> {} (expires {want_day})",
                &host_fp[..16],
                &want_fp[..16]
            )]
        );
        assert!(!r.probe().contains(PW));
        assert_eq!(second.action, Action::None);
        assert!(keytool(&dest, PW, &["-list", "-alias", "gateway"]).0);
    }

    #[tokio::test]
    async fn a_store_that_does_not_open_is_never_replaced() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let dest = tmp.path().join("trust.jks");
        existing_store(&dest, "gateway");
        let before = std::fs::read(&dest).unwrap();
        let wrong = "not-the-password";
        let r = res(KIND, args(&state, &dest, json!({"password": wrong})));
        let err = plan_now(r.as_ref(), &t).await.unwrap_err().to_string();
        assert!(
            err.contains("store cannot be opened with the given password"),
            "{err}"
        );
        assert!(!err.contains(wrong) && !r.probe().contains(wrong));
        assert_eq!(std::fs::read(&dest).unwrap(), before);

        let absent = tmp.path().join("absent.jks");
        let r = res(KIND, args(&state, &absent, json!({"create": false})));
        match plan_now(r.as_ref(), &t).await {
            Err(ResourceError::Failed(m)) => assert!(m.contains("create is false"), "{m}"),
            other => panic!("{:?}", other.map(|c| c.details)),
        }
    }

    #[tokio::test]
    async fn pkcs12_store_is_created_as_pkcs12() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("trust.p12");
        let a = args(
            &tmp.path().join("pki"),
            &dest,
            json!({"format": "pkcs12", "alias": "ca"}),
        );
        let (first, second) = converge_runs(KIND, a, &t).await;
        assert_eq!(first.details[1], "create PKCS12 store");
        assert_eq!(second.action, Action::None);
        assert_ne!(
            &std::fs::read(&dest).unwrap()[..4],
            &[0xfe, 0xed, 0xfe, 0xed]
        );
        let (ok, listing) = keytool(
            &dest,
            PW,
            &["-list", "-storetype", "PKCS12", "-alias", "ca"],
        );
        assert!(ok, "{listing}");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, dest) = (tmp.path().join("pki"), tmp.path().join("t.jks"));
        let mut a = args(&state, &dest, json!({}));
        a.as_object_mut().unwrap().remove("state_dir");
        bad_args(KIND, a, "state_dir");
        bad_args(
            KIND,
            args(&state, &dest, json!({"format": "der"})),
            "format",
        );
        let mut a = args(&state, &dest, json!({}));
        a.as_object_mut().unwrap().remove("password");
        bad_args(KIND, a, "password");
        bad_args(
            KIND,
            args(&state, &dest, json!({"create": "maybe"})),
            "create",
        );
        let m = bad_args(
            KIND,
            args(&state, &dest, json!({"password": "12345"})),
            "password",
        );
        assert!(!m.contains("12345"));
        assert!(build_plain(KIND, args(&state, &dest, json!({}))).is_ok());
        assert!(!state.exists(), "building must not create the CA");
    }

    #[tokio::test]
    async fn pem_format_writes_the_ca_certificate() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let dest = tmp.path().join("ca.pem");
        let a = json!({"dest": dest.display().to_string(), "state_dir": state.display().to_string(),
                       "format": "pem", "mode": "0644"});
        let (first, second) = converge_runs(KIND, a.clone(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(first.details[1], "write the CA certificate (PEM)");
        assert_eq!(second.action, Action::None);
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(state.join("ca.pem")).unwrap()
        );
        assert_eq!(mode_of(&dest), 0o644);
        assert_eq!(first.result["fingerprint"].as_str().unwrap().len(), 64);
        std::fs::write(&dest, "stale\n").unwrap();
        let (first, second) = converge_runs(KIND, a, &t).await;
        assert_eq!(first.details, ["replace the CA certificate (PEM)"]);
        assert_eq!(second.action, Action::None);
    }
}
