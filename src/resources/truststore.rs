//! `truststore`: the cluster CA certificate under a fixed alias in a JKS or PKCS#12 trust store, new or
//! existing (a product's `client-truststore.jks`). Other entries are kept: keytool edits a copy next to
//! the store, which is then renamed over it, so the store is never seen half-written.
//!
//! The CA is the one `keystore` issues from in the same `state_dir`; its certificate is also at
//! `<state_dir>/ca.pem`, for tasks that need it as a plain file (`copy: src:` it for nginx or
//! `curl --cacert`).

use super::pki::{
    check_password, env_secret, list_alias_probe, require_keytool, secret, store_error_line,
    StateDir, StoreFormat, DEFAULT_CA_CN,
};
use super::{
    bad, parse_args, run_ok, Action, Attrs, BuildCtx, Change, Outcome, Resource, ResourceError,
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
    #[serde(deserialize_with = "secret")]
    password: String,
    #[serde(default = "default_format")]
    format: StoreFormat,
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

fn default_format() -> StoreFormat {
    StoreFormat::Jks
}

fn default_create() -> bool {
    true
}

struct Truststore {
    dest: String,
    alias: String,
    password: String,
    format: StoreFormat,
    create: bool,
    attrs: Attrs,
    ca_pem: String,
    fingerprint: String,
}

/// The `truststore` entry of `TYPES`: checks the arguments and creates or loads the CA in `state_dir`
/// before any host is touched.
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
    check_password(KIND, "password", &a.password)?;
    let ca = StateDir::open(KIND, &a.state_dir)?.ca(&a.ca_common_name)?;
    Ok(Box::new(Truststore {
        dest: a.dest,
        alias: a.alias,
        password: a.password,
        format: a.format,
        create: a.create,
        attrs: a.attrs,
        ca_pem: ca.pem,
        fingerprint: ca.fingerprint,
    }))
}

#[async_trait]
impl Resource for Truststore {
    fn describe(&self) -> String {
        format!("{KIND} {}", self.dest)
    }

    fn probe(&self) -> String {
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
        let mut change = match facts.get("type") {
            Some("absent") | None if !self.create => {
                return Err(ResourceError::Failed(format!(
                    "{} does not exist and create is false",
                    self.dest
                )))
            }
            Some("absent") | None => Change::new(
                Action::Create,
                vec![
                    format!("create {} store", self.format.keytool_type()),
                    import,
                ],
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
                let mut details = Vec::new();
                let mut action = Action::Update;
                if facts.is("keytool", "absent") {
                    details.push(format!(
                        "{import} (keytool not found at plan time: checked again at apply)"
                    ));
                } else if facts.is("alias", "absent") {
                    action = Action::Create;
                    details.push(import);
                } else if !facts.is("fingerprint", &self.fingerprint) {
                    details.push(format!("replace CA under alias {}", self.alias));
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
        change
            .result
            .insert("fingerprint".into(), self.fingerprint.clone().into());
        Ok(change)
    }

    async fn apply(&self, change: &Change, host: &dyn Transport) -> Result<Outcome, ResourceError> {
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
            pem = self.ca_pem,
            sp = env_secret("APIM_SP", &self.password),
            fmt = self.format.keytool_type(),
            new_mode = self.attrs.mode.unwrap_or(super::Mode(0o644)),
            attrs = self.attrs.script("\"$w/store\""),
        );
        run_ok(host, &format!("updating truststore {}", self.dest), &script).await?;
        Ok(change.result.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{
        bad_args, build_plain, converge, keytool, merged, mode_of, plan_now, res,
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

    #[tokio::test]
    async fn new_store_converges_and_shares_the_keystore_ca() {
        let t = LocalTransport::new("t");
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("pki");
        let dest = tmp.path().join("client-truststore.jks");
        let r = res(KIND, args(&state, &dest, json!({})));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            vec![
                "create JKS store",
                "import CA under alias apim-provision-ca"
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
        let ks = res(
            "keystore",
            json!({"dest": tmp.path().join("k.p12").display().to_string(),
                   "state_dir": state.display().to_string(), "name": "tls",
                   "common_name": "apim", "password": PW}),
        );
        let ks_plan = plan_now(ks.as_ref(), &t).await.unwrap();
        assert_eq!(
            ks_plan.result["ca_fingerprint"],
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
        let r = res(KIND, args(&state, &dest, json!({"create": false})));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            vec!["import CA under alias apim-provision-ca"]
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
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["replace CA under alias apim-provision-ca"]
        );
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
        let r = res(
            KIND,
            args(
                &tmp.path().join("pki"),
                &dest,
                json!({"format": "pkcs12", "alias": "ca"}),
            ),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details[0], "create PKCS12 store");
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
            args(&state, &dest, json!({"format": "pem"})),
            "format",
        );
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
    }
}
