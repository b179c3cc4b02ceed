//! `assert`: a check of the variables, as Ansible's `assert`, so a module refuses a bad combination of
//! inputs (both a JDK tarball and a JDK URL, say) with its own message while planning, before any host
//! is touched. Each `that` is a `{{ expression }}`, which keeps its type when templated and so arrives
//! here as a boolean. The task never changes anything.

use super::{bad, parse_args, BuildCtx, Change, Resource, ResourceError};
use crate::transport::Facts;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "assert";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    that: Value,
    msg: Option<String>,
}

struct Assert;

pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let checks = match a.that {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => return Err(bad(KIND, "`that` is an empty list")),
        one => vec![one],
    };
    for (i, check) in checks.iter().enumerate() {
        match check {
            Value::Bool(true) => {}
            Value::Bool(false) => {
                return Err(bad(
                    KIND,
                    a.msg
                        .clone()
                        .unwrap_or_else(|| format!("check {} of `that` is false", i + 1)),
                ))
            }
            other => {
                return Err(bad(
                    KIND,
                    format!(
                        "`that` must be `{{{{ expression }}}}` giving true or false, got {other}"
                    ),
                ))
            }
        }
    }
    Ok(Box::new(Assert))
}

#[async_trait]
impl Resource for Assert {
    fn describe(&self) -> String {
        KIND.to_string()
    }

    fn probe(&self) -> String {
        "true".into()
    }

    fn plan(&self, _facts: &Facts) -> Result<Change, ResourceError> {
        Ok(Change::none())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, plan_now, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;

    #[tokio::test]
    async fn true_checks_plan_nothing() {
        let t = LocalTransport::new("t");
        for that in [json!(true), json!([true, true])] {
            let r = res(KIND, json!({ "that": that }));
            assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);
        }
    }

    #[test]
    fn a_false_check_fails_with_its_message_and_bad_arguments_are_named() {
        let e = bad_args(
            KIND,
            json!({"that": [true, false], "msg": "set jdk_tarball or jdk_url, not both"}),
            "not both",
        );
        assert!(e.starts_with("set jdk_tarball"), "{e}");
        bad_args(KIND, json!({"that": [true, false]}), "check 2");
        bad_args(KIND, json!({"that": "jdk_url != ''"}), "expression");
        bad_args(KIND, json!({"that": []}), "empty");
        bad_args(KIND, json!({"msg": "x"}), "that");
    }
}
