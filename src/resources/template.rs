//! `template`: a file rendered on the controller from a minijinja template with the task's variables, then
//! written like `copy`, so a rendered config is diffed and replaced atomically, and only when it differs.

use super::attrs::Attrs;
use super::copy::Copy;
use super::format::{self, Format};
use super::{bad, parse_args, BuildCtx, Resource, ResourceError};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    src: String,
    dest: String,
    validate: Option<String>,
    format: Option<Format>,
    #[serde(flatten)]
    attrs: Attrs,
}

pub(super) fn build(args: Value, ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args("template", args)?;
    let path = ctx
        .find("templates", &a.src)
        .map_err(|e| bad("template", e))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| bad("template", format!("reading {}: {e}", path.display())))?;
    let rendered =
        (ctx.render)(&text, &path.display().to_string()).map_err(|e| bad("template", e))?;
    format::check("template", &a.src, a.format, rendered.as_bytes())?;
    let sensitive =
        ctx.sensitive || (ctx.reads_secret)(&text, &path.display().to_string(), &rendered);
    Ok(Box::new(
        Copy::new(
            "template",
            a.dest,
            rendered.into_bytes(),
            a.attrs,
            a.validate,
        )?
        .sensitive(sensitive),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{converge, read};
    use super::super::{build, Action, BuildCtx, Resource, ResourceError};
    use crate::model::template::Templates;
    use crate::transport::LocalTransport;
    use serde_json::{json, Value};

    /// Builds a `template` task the way the engine does: found in `dir/templates`, rendered with `vars`,
    /// where the variable `token` is the secret.
    fn build_with(
        dir: &std::path::Path,
        args: Value,
        vars: Value,
    ) -> Result<Box<dyn Resource>, ResourceError> {
        let engine = Templates::new();
        let ctx = minijinja::Value::from_serialize(&vars);
        let render = |text: &str, name: &str| engine.render_named(name, text, &ctx);
        let search = [dir.to_path_buf()];
        let mut placeholder = vars.clone();
        if placeholder.get("token").is_some() {
            placeholder["token"] = json!("\u{1}token\u{1}");
        }
        let without = minijinja::Value::from_serialize(&placeholder);
        let reads_secret = |text: &str, name: &str, rendered: &str| {
            engine.render_named(name, text, &without).as_deref() != Ok(rendered)
        };
        let ctx = BuildCtx {
            search: &search,
            render: &render,
            sensitive: false,
            reads_secret: &reads_secret,
            digests: &crate::resources::Digests::default(),
        };
        build("template", args, &ctx)
    }

    fn project(template: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("templates")).unwrap();
        std::fs::write(d.path().join("templates/app.conf.j2"), template).unwrap();
        d
    }

    #[tokio::test]
    async fn renders_creates_and_rerenders_only_when_a_variable_changes() {
        let t = LocalTransport::new("t");
        let d = project("port = {{ port }}\nhost = \"{{ host }}\"\n");
        let dest = d.path().join("app.conf").display().to_string();
        let args = json!({"src": "app.conf.j2", "dest": dest});
        let r = build_with(d.path(), args.clone(), json!({"port": 9443, "host": "a"})).unwrap();
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&dest), "port = 9443\nhost = \"a\"\n");
        let r = build_with(d.path(), args, json!({"port": 9444, "host": "a"})).unwrap();
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        let diff = first.diff.unwrap();
        assert_eq!(diff.new, "port = 9444\nhost = \"a\"\n");
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&dest), "port = 9444\nhost = \"a\"\n");
    }

    #[tokio::test]
    async fn a_template_reading_a_secret_shows_no_diff() {
        let t = LocalTransport::new("t");
        let d = project("user = app\ntoken = {{ token | upper }}\n");
        let dest = d.path().join("app.conf").display().to_string();
        std::fs::write(&dest, "user = app\ntoken = OLD-TOKEN\n").unwrap();
        let args = json!({"src": "app.conf.j2", "dest": dest});
        let r = build_with(d.path(), args, json!({"token": "new-token"})).unwrap();
        let (first, second) = converge(r.as_ref(), &t).await;
        assert!(first.sensitive && first.diff.is_none());
        assert_eq!(first.details[1], "(sensitive content, 2 lines changed)");
        let shown = format!("{:?}", first.details);
        assert!(!shown.contains("TOKEN"), "{shown}");
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&dest), "user = app\ntoken = NEW-TOKEN\n");
    }

    #[test]
    fn bad_arguments_and_bad_templates_are_named() {
        let d = project("port = {{ port }}\n");
        std::fs::write(d.path().join("templates/typo.j2"), "a\nport = {{ prot }}\n").unwrap();
        let vars = json!({"port": 1});
        let err = |args: Value| match build_with(d.path(), args, vars.clone()) {
            Err(e) => e.to_string(),
            Ok(r) => panic!("built {}", r.describe()),
        };
        let e = err(json!({"src": "missing.j2", "dest": "/x"}));
        assert!(e.contains("missing.j2 not found"), "{e}");
        let e = err(json!({"src": "typo.j2", "dest": "/x"}));
        assert!(
            e.contains("`prot`") && e.contains("templates/typo.j2:2"),
            "{e}"
        );
        let e = err(json!({"src": "app.conf.j2", "dest": "rel"}));
        assert!(e.contains("dest"), "{e}");
        let e = err(json!({"src": "app.conf.j2"}));
        assert!(e.contains("dest"), "{e}");
    }
}
