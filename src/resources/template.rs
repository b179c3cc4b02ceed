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
    Ok(Box::new(Copy::new(
        "template",
        a.dest,
        rendered.into_bytes(),
        a.attrs,
        a.validate,
    )?))
}
