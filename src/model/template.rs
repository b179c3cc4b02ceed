//! Templating of variables, task arguments and template files with minijinja. Undefined is strict (a typo
//! is an error, not an empty string) and the filters Ansible users reach for are added where minijinja
//! lacks them. An argument that is exactly one `{{ expr }}` keeps the expression's type, so
//! `port: "{{ base_port + 1 }}"` is a number, as in Ansible.

use base64::Engine as _;
use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use std::collections::BTreeSet;

/// True when `s` holds template syntax and must be rendered.
pub fn is_templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// The template engine, configured once per run.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

fn fail(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn truthy(v: &Value) -> bool {
    match v.as_str() {
        Some(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "yes" | "on" | "1" | "true" | "y"
        ),
        None => v.is_true(),
    }
}

fn json_of(v: &Value) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| fail(format!("cannot convert to JSON: {e}")))
}

impl Templates {
    /// An engine with strict undefined, no HTML escaping, kept trailing newlines, `trim_blocks` (the
    /// newline after a block tag is dropped, as Ansible's template module does, so Ansible templates
    /// render byte-identically), `{% include %}` of files next to the including template, and the extra
    /// filters.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_path_join_callback(|name, parent| join_include(name, parent).into());
        env.set_loader(load_include);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("bool", |v: Value| truthy(&v));
        env.add_filter("to_json", |v: Value| -> Result<String, Error> {
            serde_json::to_string(&json_of(&v)?).map_err(|e| fail(e.to_string()))
        });
        env.add_filter("to_nice_json", |v: Value| -> Result<String, Error> {
            serde_json::to_string_pretty(&json_of(&v)?).map_err(|e| fail(e.to_string()))
        });
        env.add_filter("from_json", |s: String| -> Result<Value, Error> {
            serde_json::from_str::<serde_json::Value>(&s)
                .map(|j| Value::from_serialize(&j))
                .map_err(|e| fail(format!("from_json: {e}")))
        });
        env.add_filter("to_yaml", |v: Value| -> Result<String, Error> {
            serde_yaml::to_string(&json_of(&v)?).map_err(|e| fail(e.to_string()))
        });
        env.add_filter(
            "regex_replace",
            |s: String, pat: String, rep: String| -> Result<String, Error> {
                let re =
                    regex::Regex::new(&pat).map_err(|e| fail(format!("regex_replace: {e}")))?;
                let rep = regex::Regex::new(r"\\(\d)")
                    .expect("static regex")
                    .replace_all(&rep, "$${$1}");
                Ok(re.replace_all(&s, rep.as_ref()).into_owned())
            },
        );
        env.add_filter(
            "regex_search",
            |s: String, pat: String| -> Result<Value, Error> {
                let re = regex::Regex::new(&pat).map_err(|e| fail(format!("regex_search: {e}")))?;
                Ok(re
                    .find(&s)
                    .map(|m| Value::from(m.as_str()))
                    .unwrap_or(Value::from(())))
            },
        );
        env.add_filter("b64encode", |s: String| {
            base64::engine::general_purpose::STANDARD.encode(s)
        });
        env.add_filter("b64decode", |s: String| -> Result<String, Error> {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| fail(format!("b64decode: {e}")))?;
            String::from_utf8(b).map_err(|e| fail(format!("b64decode: {e}")))
        });
        env.add_filter("basename", |s: String| {
            s.rsplit('/').next().unwrap_or_default().to_string()
        });
        env.add_filter("dirname", |s: String| match s.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => s[..i].to_string(),
            None => String::new(),
        });
        env.add_filter("quote", |s: String| crate::transport::sh_quote(&s));
        env.add_filter(
            "ternary",
            |v: Value, a: Value, b: Value| if truthy(&v) { a } else { b },
        );
        env.add_filter(
            "mandatory",
            |v: Value, kw: Kwargs| -> Result<Value, Error> {
                let msg: Option<String> = kw.get("msg")?;
                if v.is_undefined() || v.is_none() {
                    return Err(fail(
                        msg.unwrap_or_else(|| "mandatory variable is not set".into()),
                    ));
                }
                Ok(v)
            },
        );
        env.add_filter("combine", |a: Value, b: Value| -> Result<Value, Error> {
            let (mut a, b) = (json_of(&a)?, json_of(&b)?);
            match (a.as_object_mut(), b.as_object()) {
                (Some(a), Some(b)) => a.extend(b.clone()),
                _ => return Err(fail("combine needs two mappings")),
            }
            Ok(Value::from_serialize(&a))
        });
        Self { env }
    }

    /// True for names minijinja provides itself (`range`, `dict`, `namespace`…), which templates may
    /// read without defining them.
    pub fn is_global(&self, name: &str) -> bool {
        self.env.globals().any(|(n, _)| n == name)
    }

    /// Renders `src` with `ctx`; the error names the undefined variable when that is what failed.
    pub fn render_str(&self, src: &str, ctx: &Value) -> Result<String, String> {
        self.env
            .render_str(src, ctx)
            .map_err(|e| self.explain(&e, src, ctx, false, None))
    }

    /// Renders a template file's text; `name` (its path) labels errors with the template's line.
    pub fn render_named(&self, name: &str, src: &str, ctx: &Value) -> Result<String, String> {
        self.env
            .render_named_str(name, src, ctx)
            .map_err(|e| self.explain(&e, src, ctx, false, Some(name)))
    }

    /// Evaluates a bare expression (a `when:` condition) to its truth.
    pub fn truth(&self, expr: &str, ctx: &Value) -> Result<bool, String> {
        let e = self
            .expression(expr)
            .map_err(|e| self.explain(&e, expr, ctx, true, None))?;
        e.eval(ctx)
            .map(|v| v.is_true())
            .map_err(|err| self.explain(&err, expr, ctx, true, None))
    }

    /// Renders every templated string inside `v`. A string that is exactly one `{{ expr }}` becomes the
    /// expression's value with its type.
    pub fn render_value(
        &self,
        v: &serde_json::Value,
        ctx: &Value,
    ) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        Ok(match v {
            J::String(s) if is_templated(s) => {
                if let Some(expr) = whole_expression(s) {
                    let e = self
                        .expression(expr)
                        .map_err(|e| self.explain(&e, expr, ctx, true, None))?;
                    let out = e
                        .eval(ctx)
                        .map_err(|err| self.explain(&err, expr, ctx, true, None))?;
                    if out.is_undefined() {
                        let name = self
                            .missing(expr, ctx, true)
                            .unwrap_or_else(|| expr.to_string());
                        return Err(format!("undefined variable `{name}`"));
                    }
                    json_of(&out).map_err(|e| e.to_string())?
                } else {
                    J::String(self.render_str(s, ctx)?)
                }
            }
            J::Array(a) => J::Array(
                a.iter()
                    .map(|x| self.render_value(x, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(m) => J::Object(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), self.render_value(x, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Top-level variable names that the templated strings inside `v` read (syntax errors are errors).
    pub fn names_in(&self, v: &serde_json::Value) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        self.collect_names(v, &mut out)?;
        Ok(out)
    }

    /// Top-level variable names a bare expression reads.
    pub fn names_in_expr(&self, expr: &str) -> Result<BTreeSet<String>, String> {
        let e = self.expression(expr).map_err(|e| e.to_string())?;
        Ok(e.undeclared_variables(false).into_iter().collect())
    }

    /// Top-level names that the templated strings inside `v` only guard: `x | default(…)`, `x is defined`,
    /// `x is not defined`, `x is undefined`. Such a name may be undefined; reading it unguarded still
    /// fails when the template renders.
    pub fn guarded_in(&self, v: &serde_json::Value) -> BTreeSet<String> {
        use serde_json::Value as J;
        match v {
            J::String(s) if is_templated(s) => guarded(s),
            J::Array(a) => a.iter().flat_map(|x| self.guarded_in(x)).collect(),
            J::Object(m) => m.values().flat_map(|x| self.guarded_in(x)).collect(),
            _ => BTreeSet::new(),
        }
    }

    /// [`Templates::guarded_in`] for a bare expression (a `when:` condition).
    pub fn guarded_in_expr(&self, expr: &str) -> BTreeSet<String> {
        guarded(expr)
    }

    fn collect_names(
        &self,
        v: &serde_json::Value,
        out: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        use serde_json::Value as J;
        match v {
            J::String(s) if is_templated(s) => {
                let t = self.env.template_from_str(s).map_err(|e| e.to_string())?;
                out.extend(t.undeclared_variables(false));
            }
            J::Array(a) => a.iter().try_for_each(|x| self.collect_names(x, out))?,
            J::Object(m) => m.values().try_for_each(|x| self.collect_names(x, out))?,
            _ => {}
        }
        Ok(())
    }

    /// Turns minijinja's "undefined value" into "undefined variable `x.y`" by finding the first dotted
    /// name the source reads that the context cannot resolve.
    fn explain(&self, e: &Error, src: &str, ctx: &Value, expr: bool, name: Option<&str>) -> String {
        let line = match (name, e.line()) {
            (Some(n), Some(l)) => format!(" (at {n}:{l})"),
            (Some(n), None) => format!(" (in {n})"),
            (None, Some(l)) => format!(" (template line {l})"),
            (None, None) => String::new(),
        };
        if e.kind() == ErrorKind::UndefinedError {
            if let Some(missing) = self.missing(src, ctx, expr) {
                return format!("undefined variable `{missing}`{line}");
            }
        }
        let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
        format!("{}{detail}{line}", e.kind())
    }
}

impl Templates {
    /// Compiles a bare expression. minijinja's expression lexer panics ("empty lexer stack") on a
    /// closing `}}`, `%}` or `#}` in one (found by fuzz/ target `template`), so such an expression is
    /// refused as the syntax error it is before minijinja sees it.
    fn expression<'s>(&'s self, expr: &'s str) -> Result<minijinja::Expression<'s, 's>, Error> {
        if ["}}", "%}", "#}"].iter().any(|d| expr.contains(d)) {
            return Err(Error::new(
                ErrorKind::SyntaxError,
                "a bare expression cannot hold `}}`, `%}` or `#}`",
            ));
        }
        self.env.compile_expression(expr)
    }

    /// The first dotted name `src` reads that `ctx` cannot resolve.
    fn missing(&self, src: &str, ctx: &Value, expr: bool) -> Option<String> {
        let names = if expr {
            self.expression(src)
                .map(|x| x.undeclared_variables(true))
                .unwrap_or_default()
        } else {
            self.env
                .template_from_str(src)
                .map(|t| t.undeclared_variables(true))
                .unwrap_or_default()
        };
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        names.into_iter().find(|n| !resolves(ctx, n))
    }
}

/// Names that `src` tests for definedness or gives a default: the name, any `.attr` / `[key]` after it,
/// then `| default`/`| d` or `is [not] defined`/`is undefined`.
fn guarded(src: &str) -> BTreeSet<String> {
    static GUARD: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?:^|[^\w.])([A-Za-z_]\w*)(?:\s*\.\s*\w+|\s*\[[^\]]*\])*\s*(?:\|\s*(?:default|d)\b|is\s+(?:not\s+)?(?:defined|undefined)\b)",
        )
        .expect("static regex")
    });
    GUARD.captures_iter(src).map(|c| c[1].to_string()).collect()
}

/// Resolves `{% include name %}` against the including template's directory. Only a plain relative
/// name (no `..`, not absolute) of a template rendered from a file is joined; anything else is marked so
/// that [`load_include`] refuses it by name.
fn join_include(name: &str, parent: &str) -> String {
    let p = std::path::Path::new(name);
    let plain = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    match std::path::Path::new(parent).parent() {
        Some(dir) if plain && !name.is_empty() && std::path::Path::new(parent).is_file() => {
            dir.join(p).display().to_string()
        }
        _ => format!("{REFUSED}{name}"),
    }
}

/// Prefix of include names [`join_include`] refused.
const REFUSED: &str = "\u{0}refused:";

fn load_include(name: &str) -> Result<Option<String>, Error> {
    if let Some(asked) = name.strip_prefix(REFUSED) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("include `{asked}`: only a file next to the including template file can be included (a relative name without `..`)"),
        ));
    }
    super::error::read(std::path::Path::new(name))
        .map(Some)
        .map_err(|e| Error::new(ErrorKind::TemplateNotFound, e.to_string()))
}

fn resolves(ctx: &Value, dotted: &str) -> bool {
    let mut cur = ctx.clone();
    for part in dotted.split('.') {
        match cur.get_attr(part) {
            Ok(v) if !v.is_undefined() => cur = v,
            _ => return false,
        }
    }
    true
}

pub(crate) fn whole_expression(s: &str) -> Option<&str> {
    let t = s.trim_matches(' ');
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

#[cfg(test)]
mod tests {
    /// Regression (fuzz/ target `template`): a `when:` holding a closing delimiter panicked inside
    /// minijinja's lexer; it is a syntax error.
    #[test]
    fn an_expression_with_a_closing_delimiter_is_an_error_not_a_panic() {
        let t = super::Templates::new();
        let ctx = minijinja::Value::from_serialize(serde_json::json!({"x": 1}));
        for e in ["tstore_file }}\"\ntype = 1", "x %}", "x #}", "}}"] {
            assert!(t.truth(e, &ctx).is_err(), "{e}");
            assert!(t.names_in_expr(e).is_err(), "{e}");
        }
        assert_eq!(t.truth("x == 1", &ctx), Ok(true));
    }

    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        Value::from_serialize(json!({"a": 1, "name": "x", "db": {"host": "h"}, "flag": "yes"}))
    }

    #[test]
    fn whole_expressions_keep_their_type() {
        let t = Templates::new();
        let v = t
            .render_value(
                &json!({"p": "{{ a + 1 }}", "s": "n={{ name }}", "l": ["{{ db.host }}"]}),
                &ctx(),
            )
            .unwrap();
        assert_eq!(v, json!({"p": 2, "s": "n=x", "l": ["h"]}));
    }

    #[test]
    fn undefined_names_the_variable() {
        let t = Templates::new();
        let e = t.render_str("x {{ db.hots }}", &ctx()).unwrap_err();
        assert!(e.contains("undefined variable `db.hots`"), "{e}");
        let e = t.render_value(&json!("{{ nope }}"), &ctx()).unwrap_err();
        assert!(e.contains("`nope`"), "{e}");
    }

    #[test]
    fn ansible_filters() {
        let t = Templates::new();
        let c = ctx();
        assert_eq!(t.render_str("{{ flag | bool }}", &c).unwrap(), "True");
        assert_eq!(
            t.render_str("{{ 'a-b-c' | regex_replace('-(\\w)', '_\\\\1') }}", &c)
                .unwrap(),
            "a_b_c"
        );
        assert_eq!(
            t.render_str("{{ db | to_json }}", &c).unwrap(),
            r#"{"host":"h"}"#
        );
        assert_eq!(
            t.render_str("{{ '/a/b.txt' | basename }}", &c).unwrap(),
            "b.txt"
        );
        assert!(t.truth("a == 1 and name == 'x'", &c).unwrap());
        assert_eq!(
            t.names_in(&json!(["{{ a }}{{ b.c }}"]))
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn default_and_definedness_tests_accept_undefined_names() {
        let t = Templates::new();
        let c = ctx();
        assert_eq!(t.render_str("{{ nope | default('d') }}", &c).unwrap(), "d");
        assert_eq!(
            t.render_str("{{ db.port | default(3306) }}", &c).unwrap(),
            "3306"
        );
        assert_eq!(
            t.render_value(&json!("{{ nope | d(7) }}"), &c).unwrap(),
            json!(7)
        );
        assert!(t.truth("nope is not defined", &c).unwrap());
        assert!(!t.truth("nope is defined", &c).unwrap());
        assert!(t.truth("nope is undefined and a is defined", &c).unwrap());
        let e = t.render_str("{{ nope }}", &c).unwrap_err();
        assert!(e.contains("undefined variable `nope`"), "{e}");
    }

    #[test]
    fn guarded_names_are_found_and_plain_reads_are_not() {
        let t = Templates::new();
        let g = t.guarded_in(&json!({
            "a": "{{ x | default('') }}{{ y.z['k'] |d(1) }}",
            "b": ["{% if w is not defined %}{% endif %}{{ plain }}{{ q.r | upper }}"],
        }));
        assert_eq!(g.into_iter().collect::<Vec<_>>(), vec!["w", "x", "y"]);
        assert_eq!(
            t.guarded_in_expr("v is defined and u")
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["v"]
        );
    }

    #[test]
    fn block_tags_eat_their_newline_as_in_ansible() {
        let t = Templates::new();
        let src = "a\n{% if flag %}\nb\n{% endif %}\nc\n";
        assert_eq!(t.render_str(src, &ctx()).unwrap(), "a\nb\nc\n");
    }

    #[test]
    fn a_template_file_includes_a_file_next_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.j2");
        std::fs::write(&main, "top {% include 'part.j2' %}end\n").unwrap();
        std::fs::write(dir.path().join("part.j2"), "{{ name }}\n").unwrap();
        let t = Templates::new();
        let name = main.display().to_string();
        let src = std::fs::read_to_string(&main).unwrap();
        assert_eq!(t.render_named(&name, &src, &ctx()).unwrap(), "top x\nend\n");
        for bad in ["../part.j2", "/etc/hostname"] {
            let e = t
                .render_named(&name, &format!("{{% include '{bad}' %}}"), &ctx())
                .unwrap_err();
            assert!(
                e.contains(&format!("include `{bad}`: only a file next to")),
                "{e}"
            );
        }
        let e = t.render_str("{% include 'part.j2' %}", &ctx()).unwrap_err();
        assert!(e.contains("only a file next to"), "{e}");
    }
}
