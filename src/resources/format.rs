//! Content checks for `copy` and `template` (`format: toml`, `format: xml`), run when the task is built: a
//! config the server cannot read is then an error on the controller, naming the line, before any host is
//! touched, instead of a server that fails at startup after the whole run "succeeded".

use super::{bad, ResourceError};
use serde::Deserialize;
use toml_edit::{Document, Item, Table};

/// The format a file's content must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// TOML, with WSO2's table-order rule on top (see [`check`]).
    Toml,
    /// Well-formed XML (a DTD is allowed, as in log4j and web.xml files).
    Xml,
}

/// Checks `content` (labelled `name` in errors, e.g. the template's file name) against `format`.
///
/// For TOML, beyond parsing: an explicit table header `[a.b]` must come before the first array-of-tables
/// header below it (`[[a.b.c]]`). The TOML spec and `toml_edit` accept the reverse order, but WSO2's
/// deployment.toml reader does not and the server fails at startup, so it is rejected here.
///
/// For XML: well-formedness only (one root, tags closed, attributes quoted, entities defined, namespace
/// prefixes declared), as the `xml` resource reads files; no schema, since a product's own reader is the
/// only judge of that.
pub fn check(
    kind: &str,
    name: &str,
    format: Option<Format>,
    content: &[u8],
) -> Result<(), ResourceError> {
    match format {
        None => Ok(()),
        Some(Format::Toml) => {
            let text = std::str::from_utf8(content)
                .map_err(|e| bad(kind, format!("{name}: format: toml, but not UTF-8: {e}")))?;
            check_toml(text).map_err(|e| bad(kind, format!("{name}: {e}")))
        }
        Some(Format::Xml) => {
            let text = std::str::from_utf8(content)
                .map_err(|e| bad(kind, format!("{name}: format: xml, but not UTF-8: {e}")))?;
            check_xml(text).map_err(|e| bad(kind, format!("{name}: {e}")))
        }
    }
}

fn check_xml(text: &str) -> Result<(), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    super::xml::parse(text).map(drop).map_err(|e| {
        let pos = e.pos();
        let src = text
            .lines()
            .nth(pos.row.saturating_sub(1) as usize)
            .unwrap_or_default();
        format!(
            "invalid XML at line {} (`{}`): {}",
            pos.row,
            src.trim(),
            super::xml::error_message(&e)
        )
    })
}

/// 1-based line of byte offset `pos` in `text`.
fn line_at(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].matches('\n').count() + 1
}

fn check_toml(text: &str) -> Result<(), String> {
    let doc = Document::parse(text).map_err(|e| {
        let n = e.span().map_or(0, |s| line_at(text, s.start));
        let src = text.lines().nth(n.saturating_sub(1)).unwrap_or_default();
        format!(
            "invalid TOML at line {n} (`{}`): {}",
            src.trim(),
            e.message()
        )
    })?;
    let mut errors = Vec::new();
    order(text, doc.as_table(), &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Checks every explicit table header under `table` against the array-of-tables headers below it.
/// Walking the tree (rather than comparing dotted names) keeps each `[[x]]` element its own scope, so a
/// later element's `[x.y]` is not compared with an earlier element's `[[x.y.z]]`.
fn order(text: &str, table: &Table, errors: &mut Vec<String>) {
    for (_, item) in table.iter() {
        match item {
            Item::Table(t) => {
                if let Some(span) = t.span().filter(|_| !t.is_implicit() && !t.is_dotted()) {
                    if let Some(first) = first_array_header(t).filter(|f| f.start < span.start) {
                        errors.push(format!(
                            "{} (line {}) must come before {} (line {})",
                            &text[span.clone()],
                            line_at(text, span.start),
                            &text[first.clone()],
                            line_at(text, first.start)
                        ));
                    }
                }
                order(text, t, errors);
            }
            Item::ArrayOfTables(a) => a.iter().for_each(|t| order(text, t, errors)),
            _ => {}
        }
    }
}

/// The span of the earliest `[[...]]` header anywhere below `table`.
fn first_array_header(table: &Table) -> Option<std::ops::Range<usize>> {
    table
        .iter()
        .filter_map(|(_, item)| match item {
            Item::Table(t) => first_array_header(t),
            Item::ArrayOfTables(a) => a
                .iter()
                .flat_map(|t| t.span().into_iter().chain(first_array_header(t)))
                .min_by_key(|s| s.start),
            _ => None,
        })
        .min_by_key(|s| s.start)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, res};
    use super::super::Action;
    use crate::transport::LocalTransport;
    use serde_json::{json, Value};

    const DEPLOYMENT: &str = r#"[server]
hostname = "apim.example.com"
offset = 0

[super_admin]
username = "admin"
password = "admin"
create_admin_account = true

[database.apim_db]
type = "mysql"
url = "jdbc:mysql://db:3306/apim?useSSL=false"

[apim.throttling]
enable_data_publishing = true

[[apim.throttling.url_group]]
traffic_manager_urls = ["tcp://tm-1:9611"]
traffic_manager_auth_urls = ["ssl://tm-1:9711"]

[[apim.throttling.url_group]]
traffic_manager_urls = ["tcp://tm-2:9611"]
traffic_manager_auth_urls = ["ssl://tm-2:9711"]
"#;

    fn template(dir: &std::path::Path, text: &str) -> String {
        let src = dir.join("deployment.toml.j2");
        std::fs::write(&src, text).unwrap();
        src.display().to_string()
    }

    /// Converges a `template` of `text` into `dir`/`name` checked as `format`, which must create the file
    /// and then find nothing left to do: the file's path, for the test's own checks of what it holds.
    async fn templated(
        t: &LocalTransport,
        dir: &std::path::Path,
        text: &str,
        name: &str,
        format: &str,
    ) -> String {
        let src = template(dir, text);
        let dest = dir.join(name).display().to_string();
        let r = res(
            "template",
            json!({"src": src, "dest": dest, "format": format}),
        );
        let (first, second) = converge(r.as_ref(), t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(second.action, Action::None);
        dest
    }

    /// Why a `template` of `text` checked as `format` is rejected when built, which must name the template.
    fn template_rejects(text: &str, format: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let src = template(dir.path(), text);
        bad_args(
            "template",
            json!({"src": src, "dest": format!("/tmp/d.{format}"), "format": format}),
            "deployment.toml.j2",
        )
    }

    /// The arguments of a `copy` of `content` to /tmp/d.`format`, checked as `format`: what most cases
    /// here vary.
    fn copy_as(format: &str, content: &str) -> Value {
        json!({"content": content, "dest": format!("/tmp/d.{format}"), "format": format})
    }

    #[tokio::test]
    async fn a_valid_deployment_toml_is_written_then_unchanged() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let dest = templated(&t, dir.path(), DEPLOYMENT, "deployment.toml", "toml").await;
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), DEPLOYMENT);
        let changed = DEPLOYMENT.replace("offset = 0", "offset = 1");
        let r = res(
            "copy",
            json!({"content": changed, "dest": dest, "format": "toml"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        let diff = first.diff.unwrap();
        assert!(diff.new.contains("offset = 1"));
        assert_eq!(second.action, Action::None);
    }

    #[test]
    fn a_syntax_error_fails_at_build_naming_the_template_and_line() {
        let reason = template_rejects(&DEPLOYMENT.replace("offset = 0", "offset = \n"), "toml");
        assert!(
            reason.contains("invalid TOML at line 3 (`offset =`)"),
            "{reason}"
        );
        let reason = bad_args("copy", copy_as("toml", "[a]\n[a]\n"), "/tmp/d.toml");
        assert!(reason.contains("line 2"), "{reason}");
        let not_checked = res(
            "copy",
            json!({"content": "[a]\n[a]\n", "dest": "/tmp/d.toml"}),
        );
        assert_eq!(not_checked.describe(), "copy /tmp/d.toml");
    }

    #[test]
    fn a_table_after_its_array_of_tables_fails_at_build_naming_both() {
        let moved = DEPLOYMENT.replace("[apim.throttling]\nenable_data_publishing = true\n\n", "")
            + "\n[apim.throttling]\nenable_data_publishing = true\n";
        assert!(
            toml_edit::Document::parse(moved.as_str()).is_ok(),
            "toml_edit itself accepts this order, so the rule must be ours"
        );
        let reason = template_rejects(&moved, "toml");
        assert!(
            reason.contains(
                "deployment.toml.j2: [apim.throttling] (line 22) must come before [[apim.throttling.url_group]] (line 14)"
            ),
            "{reason}"
        );
        let deeper = "[[apim.throttling.url_group]]\nx = 1\n[apim]\ny = 2\n";
        let reason = bad_args(
            "copy",
            copy_as("toml", deeper),
            "[apim] (line 3) must come before [[apim.throttling.url_group]] (line 1)",
        );
        assert!(reason.starts_with("/tmp/d.toml: "), "{reason}");
    }

    #[test]
    fn each_array_element_is_its_own_scope() {
        let ok = "[[node]]\n[node.ports]\n[[node.ports.extra]]\n[[node]]\n[node.ports]\n[[node.ports.extra]]\n";
        res("copy", copy_as("toml", ok));
        let bad = "[[node]]\n[node.ports]\n[[node.ports.extra]]\n[[node]]\n[[node.ports.extra]]\n[node.ports]\n";
        bad_args(
            "copy",
            copy_as("toml", bad),
            "[node.ports] (line 6) must come before [[node.ports.extra]] (line 5)",
        );
    }

    const AXIS2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE axisconfig>
<axisconfig name="AxisJava2.0">
    <!-- the cluster -->
    <clustering class="org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent" enable="true">
        <parameter name="localMemberHost">{{ host }}</parameter>
    </clustering>
</axisconfig>
"#;

    #[tokio::test]
    async fn a_well_formed_xml_is_written_then_unchanged() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let text = format!("\u{feff}{AXIS2}");
        let dest = templated(&t, dir.path(), &text, "axis2.xml", "xml").await;
        assert!(std::fs::read_to_string(&dest)
            .unwrap()
            .contains("{{ host }}"));
    }

    #[test]
    fn malformed_xml_fails_at_build_naming_the_template_and_line() {
        let reason = template_rejects(&AXIS2.replace("</parameter>", "</param>"), "xml");
        assert!(
            reason.ends_with(
                "invalid XML at line 6 (`<parameter name=\"localMemberHost\">{{ host }}</param>`): expected 'parameter' tag, not 'param'"
            ),
            "{reason}"
        );
        let reason = bad_args(
            "copy",
            copy_as("xml", "<a x=1/>"),
            "/tmp/d.xml: invalid XML at line 1 (`<a x=1/>`)",
        );
        assert!(!reason.contains("1:"), "{reason}");
        bad_args(
            "copy",
            copy_as("xml", "<a><p:b/></a>"),
            "unknown namespace prefix 'p'",
        );
        bad_args("copy", copy_as("xml", "<a/><b/>"), "invalid XML at line 1");
        bad_args("copy", copy_as("xml", ""), "does not have a root");
        res("copy", json!({"content": "<a x=1/>", "dest": "/tmp/a.xml"}));
    }

    #[test]
    fn an_unknown_format_is_bad_args() {
        bad_args("copy", copy_as("yaml", ""), "format");
        bad_args(
            "template",
            json!({"src": "/nonexistent.j2", "dest": "/tmp/d", "format": "ini"}),
            "format",
        );
    }
}
