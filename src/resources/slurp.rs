//! `slurp`: read a (small) file on the host into the task's registered result. It never changes anything,
//! so its probe is the whole job; it exists so other tasks — on this host, or on others through
//! `registered['host']` — can use what a host has, such as a public key, on every run including a
//! converged one.

use super::{bad, parse_args, Action, BuildCtx, Change, Registered, Resource, ResourceError, Step};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "slurp";
/// Registered results travel in every later template context; keep them small.
const MAX: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
}

struct Slurp {
    path: String,
}

pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if !a.path.starts_with('/') {
        return Err(bad(KIND, format!("path `{}` must be absolute", a.path)));
    }
    Ok(Box::new(Slurp { path: a.path }))
}

impl Slurp {
    /// The registered result for the probed file, or why there is none.
    fn read(&self, facts: &Facts) -> Result<Option<Registered>, ResourceError> {
        match facts.get("type") {
            Some("file") => {}
            Some("absent") | None => return Ok(None),
            Some(other) => {
                return Err(ResourceError::Failed(format!(
                    "{} is a {other}, not a file",
                    self.path
                )))
            }
        }
        let bytes = facts.bytes("content").ok_or_else(|| {
            ResourceError::Failed(format!("{} is larger than {MAX} bytes", self.path))
        })?;
        let mut r = Registered::new();
        r.insert("path".into(), self.path.clone().into());
        r.insert(
            "base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .into(),
        );
        if let Ok(text) = String::from_utf8(bytes) {
            r.insert("content".into(), text.into());
        }
        Ok(Some(r))
    }
}

#[async_trait]
impl Resource for Slurp {
    fn describe(&self) -> String {
        format!("{KIND} {}", self.path)
    }

    fn probe(&self) -> String {
        let p = sh_quote(&self.path);
        format!("fact_stat {p}\nif [ -f {p} ] && [ \"$(stat -L -c %s {p})\" -le {MAX} ]; then fact_b64 content {p}; fi")
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        Ok(match self.read(facts)? {
            Some(result) => Change {
                result,
                ..Change::none()
            },
            // Not there yet: in plan an earlier task of this run may create it, and apply probes again
            // after such a change, so a file still missing when apply decides is a failure.
            None => Change::new(
                Action::Run,
                vec![format!("read {} (missing at plan time)", self.path)],
            )
            .then(Step::run(
                format!("reading {}", self.path),
                Vec::new(),
                format!(
                    "echo {} >&2; exit 1",
                    sh_quote(&format!("{} does not exist", self.path))
                ),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;

    #[tokio::test]
    async fn reads_a_file_without_changing_anything() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pub");
        std::fs::write(&path, "ssh-ed25519 AAAA test\n").unwrap();
        let r = res(KIND, json!({"path": path}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::None);
        assert_eq!(second.action, Action::None);
        assert_eq!(first.result["content"], "ssh-ed25519 AAAA test\n");
    }

    #[tokio::test]
    async fn a_file_missing_when_apply_decides_fails_and_once_there_is_read_by_its_plan() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later");
        let r = res(KIND, json!({"path": path}));
        let plan = super::super::testkit::plan_now(r.as_ref(), &t)
            .await
            .unwrap();
        assert_eq!(plan.action, Action::Run);
        let err = r.apply(&plan, &t).await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        std::fs::write(&path, [0xff, 0x00]).unwrap();
        let fresh = super::super::testkit::plan_now(r.as_ref(), &t)
            .await
            .unwrap();
        assert_eq!(fresh.action, Action::None);
        let got = fresh.result;
        assert_eq!(got["base64"], "/wA=");
        assert!(
            got.get("content").is_none(),
            "binary content is base64 only"
        );
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({"path": "relative"}), "path");
        bad_args(KIND, json!({"path": "/x", "mode": "0644"}), "mode");
    }
}
