//! `xml`: the text and/or attributes of the elements at a simple path in an existing XML file, for the large,
//! heavily commented configs of WSO2 1.x/EI (carbon.xml, axis2.xml, master-datasources.xml, ...). The file
//! is parsed on the controller only to locate byte ranges; the new values are spliced into the original
//! text, so every byte outside the edited spans (comments, whitespace, attribute order, CDATA) is kept and
//! the plan's diff shows exactly the lines that change.

use super::edit::TextEditor;
use super::edit::{Edit, TextFile};
use super::{bad, parse_args, Attrs, BuildCtx, Presence, Resource, ResourceError};
use indexmap::IndexMap;
use roxmltree::{Document, Node, ParsingOptions};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::ops::Range;

const KIND: &str = "xml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest")]
    path: String,
    xpath: String,
    #[serde(default)]
    state: Presence,
    #[serde(default, deserialize_with = "opt_scalar")]
    value: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    attributes: IndexMap<String, String>,
    #[serde(default)]
    count: Count,
    validate: Option<String>,
    #[serde(flatten)]
    attrs: Attrs,
}

/// How many elements the path must select: `count: N` (exactly N, 1 by default), or `count: all` (any
/// number but none), so a path that unexpectedly matches more (or fewer) elements than the author
/// thought fails the plan instead of editing the wrong ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Exactly(usize),
    All,
}

impl Default for Count {
    fn default() -> Self {
        Count::Exactly(1)
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Exactly(n) => write!(f, "{n}"),
            Count::All => write!(f, "all"),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) if s == "all" => Ok(Count::All),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Err(D::Error::custom("count must be at least 1 (or `all`)")),
                Some(n) => Ok(Count::Exactly(n as usize)),
                None => Err(D::Error::custom(format!("count {n} is not a whole number"))),
            },
            other => Err(D::Error::custom(format!(
                "count must be a number or `all`, got {other}"
            ))),
        }
    }
}

/// Reads a YAML scalar as text: `value: 9443` or `value: true` mean the text `9443` / `true` in XML, and
/// making authors quote every port number would only produce type errors.
fn scalar(v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, number or boolean, got {other}")),
    }
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar(v).map(Some).map_err(serde::de::Error::custom),
    }
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    IndexMap::<String, Value>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| {
            scalar(v)
                .map(|s| (k.clone(), s))
                .map_err(|e| serde::de::Error::custom(format!("attribute `{k}`: {e}")))
        })
        .collect()
}

/// A predicate of one path step.
#[derive(Debug, Clone, PartialEq)]
enum Pred {
    /// `[@name='value']`: the element has the attribute with exactly that value.
    Attr(String, String),
    /// `[child='text']`: the element has a child element whose trimmed text is `text`.
    Child(String, String),
}

/// One `/name[pred]...` step; names are local (any prefix is dropped), since WSO2 files put a default
/// namespace on the root that authors do not write in paths.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    name: String,
    preds: Vec<Pred>,
}

struct XmlEdit {
    file: TextFile,
    xpath: String,
    steps: Vec<Step>,
    /// Present: the elements get `value` and `attributes`; absent: they are removed.
    state: Presence,
    value: Option<String>,
    attributes: IndexMap<String, String>,
    count: Count,
}

/// The `xml` entry of `TYPES`: parses the path and checks the names before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let steps =
        parse_xpath(&a.xpath).map_err(|e| bad(KIND, format!("xpath `{}`: {e}", a.xpath)))?;
    match a.state {
        Presence::Present if a.value.is_none() && a.attributes.is_empty() => {
            return Err(bad(KIND, "set `value`, `attributes` or both"));
        }
        Presence::Absent if a.value.is_some() || !a.attributes.is_empty() => {
            return Err(bad(
                KIND,
                "state: absent removes the elements; `value` and `attributes` go with state: present",
            ));
        }
        Presence::Absent if steps.len() == 1 => {
            return Err(bad(
                KIND,
                format!(
                    "state: absent cannot remove the root element (xpath `{}`)",
                    a.xpath
                ),
            ));
        }
        _ => {}
    }
    if let Some(name) = a.attributes.keys().find(|k| !is_name(k) || k.contains(':')) {
        return Err(bad(
            KIND,
            format!("attributes: `{name}` is not a plain (unprefixed) XML attribute name"),
        ));
    }
    let removing = a.state == Presence::Absent;
    let file = TextFile::new(KIND, a.path, None, removing, a.attrs, a.validate)?;
    Ok(Box::new(XmlEdit {
        file,
        xpath: a.xpath,
        steps,
        state: a.state,
        value: a.value,
        attributes: a.attributes,
        count: a.count,
    }))
}

/// Parses XML text (without a byte order mark) as this resource and `format: xml` read it: a DTD is
/// allowed, since product files (log4j.xml, web.xml) carry one.
pub(super) fn parse(text: &str) -> Result<Document<'_>, roxmltree::Error> {
    let opts = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, opts)
}

/// True for an XML name as far as paths need: a letter, `_` or `:` first, then also digits, `-` and `.`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
}

/// The local part of a possibly prefixed name.
fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Parses `/a/b[@k='v']/c[child="t"]`: an absolute path of element names, each with any number of
/// attribute or child-text predicates. Quoted values may hold `/` and `]`, so this is a small scanner
/// rather than a split on `/`.
fn parse_xpath(xpath: &str) -> Result<Vec<Step>, String> {
    let mut rest = xpath
        .strip_prefix('/')
        .ok_or("must be absolute (start with /)")?;
    let mut steps = Vec::new();
    loop {
        let end = rest.find(['/', '[']).unwrap_or(rest.len());
        let name = rest[..end].trim();
        if !is_name(name) {
            return Err(format!("`{name}` is not an element name"));
        }
        rest = &rest[end..];
        let mut preds = Vec::new();
        while let Some(r) = rest.strip_prefix('[') {
            let (pred, after) = parse_pred(r)?;
            preds.push(pred);
            rest = after.trim_start();
        }
        steps.push(Step {
            name: local(name).to_string(),
            preds,
        });
        match rest.strip_prefix('/') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Ok(steps),
            None => return Err(format!("unexpected `{rest}`")),
        }
    }
}

/// Parses the inside of one `[...]` predicate, returning it and the text after its `]`.
fn parse_pred(s: &str) -> Result<(Pred, &str), String> {
    let eq = s
        .find('=')
        .ok_or("predicate needs `=` (e.g. [@name='x'])")?;
    let lhs = s[..eq].trim();
    let r = s[eq + 1..].trim_start();
    let quote = r
        .chars()
        .next()
        .filter(|c| matches!(c, '\'' | '"'))
        .ok_or("predicate value must be quoted")?;
    let close = r[1..]
        .find(quote)
        .ok_or("predicate value has no closing quote")?;
    let value = r[1..1 + close].to_string();
    let after = r[close + 2..].trim_start();
    let after = after
        .strip_prefix(']')
        .ok_or("predicate has no closing `]`")?;
    let pred = match lhs.strip_prefix('@') {
        Some(attr) if is_name(attr) => Pred::Attr(local(attr).to_string(), value),
        None if is_name(lhs) => Pred::Child(local(lhs).to_string(), value),
        _ => {
            return Err(format!(
                "`{lhs}` is not an @attribute or child element name"
            ))
        }
    };
    Ok((pred, after))
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        for p in &self.preds {
            match p {
                Pred::Attr(k, v) => write!(f, "[@{k}='{v}']")?,
                Pred::Child(k, v) => write!(f, "[{k}='{v}']")?,
            }
        }
        Ok(())
    }
}

fn step_matches(step: &Step, n: &Node) -> bool {
    n.is_element()
        && n.tag_name().name() == step.name
        && step.preds.iter().all(|p| match p {
            Pred::Attr(k, v) => n
                .attributes()
                .any(|a| a.name() == k && a.namespace().is_none() && a.value() == v),
            Pred::Child(k, v) => n
                .children()
                .any(|c| c.is_element() && c.tag_name().name() == k && text_of(&c).trim() == v),
        })
}

/// The concatenated text of an element's direct text children (entities decoded, CDATA unwrapped).
fn text_of(n: &Node) -> String {
    n.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect()
}

/// Escapes text for element content.
fn escape_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes text for an attribute value delimited by `quote`; line breaks and tabs become character
/// references because a parser would otherwise normalize them to spaces.
fn escape_attr(s: &str, quote: char) -> String {
    let mut out = escape_text(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;");
    out = if quote == '"' {
        out.replace('"', "&quot;")
    } else {
        out.replace('\'', "&apos;")
    };
    out
}

/// Shortens a value for a plan detail line.
fn show(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        format!("{:?}...", s.chars().take(MAX).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

impl XmlEdit {
    /// Computes the new content: the wanted text and attribute values spliced into the original text, or
    /// the elements cut out of it. Fails when the file is not well-formed XML, when the path does not
    /// select as many elements as `count` says, when an element to get text holds child elements or
    /// comments (not a leaf), or when the result would not parse (nothing is written then).
    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError> {
        let fail =
            |what: String| ResourceError::Failed(format!("{}: {what}", self.file.describe()));
        let text = std::str::from_utf8(old).map_err(|e| fail(format!("not UTF-8: {e}")))?;
        let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
        let body = &text[bom..];
        let doc = parse(body).map_err(|e| fail(format!("not well-formed XML: {e}")))?;
        let mut details = Vec::new();
        let out = match self.state {
            Presence::Present => self.set_values(&doc, body, &mut details),
            Presence::Absent => self.remove(&doc, body, &mut details),
        }
        .map_err(&fail)?;
        if out != body {
            parse(&out).map_err(|e| {
                fail(format!(
                    "the edited file would not be well-formed XML ({e}); nothing is written"
                ))
            })?;
        }
        Ok(Edit {
            content: [&text.as_bytes()[..bom], out.as_bytes()].concat(),
            details,
        })
    }

    /// `body` (parsed as `doc`) with `value` and `attributes` set on every element the path selects,
    /// adding one detail per change.
    fn set_values(
        &self,
        doc: &Document,
        body: &str,
        details: &mut Vec<String>,
    ) -> Result<String, String> {
        let found = self.select(doc)?;
        let line = |pos: usize| doc.text_pos_at(pos).row;
        let mut splices: Vec<(Range<usize>, String)> = Vec::new();
        for el in &found {
            let tag = start_tag(body, el);
            for (name, want) in &self.attributes {
                match el
                    .attributes()
                    .find(|a| a.name() == name && a.namespace().is_none())
                {
                    Some(a) if a.value() == want => {}
                    Some(a) => {
                        let r = a.range_value();
                        let quote = body[r.end..].chars().next().unwrap_or('"');
                        details.push(format!(
                            "line {}: @{name} {} -> {}",
                            line(r.start),
                            show(a.value()),
                            show(want)
                        ));
                        splices.push((r, escape_attr(want, quote)));
                    }
                    None => {
                        details.push(format!(
                            "line {}: add @{name} {}",
                            line(tag.attrs_end),
                            show(want)
                        ));
                        let attr = format!(" {name}=\"{}\"", escape_attr(want, '"'));
                        splices.push((tag.attrs_end..tag.attrs_end, attr));
                    }
                }
            }
            if let Some(want) = &self.value {
                if let Some(c) = el
                    .children()
                    .find(Node::is_element)
                    .or_else(|| el.children().find(|c| !c.is_text()))
                {
                    let what = if c.is_element() {
                        format!("child element <{}>", c.tag_name().name())
                    } else {
                        "a comment or processing instruction".to_string()
                    };
                    return Err(format!(
                        "`{}` matches the element at line {}, which holds {what}; `value` only sets the text of a leaf element",
                        self.xpath,
                        line(el.range().start)
                    ));
                }
                let cur = text_of(el);
                if cur != *want {
                    details.push(format!(
                        "line {}: text {} -> {}",
                        line(tag.end),
                        show(&cur),
                        show(want)
                    ));
                    let escaped = escape_text(want);
                    if tag.self_closing {
                        let qname = &body[el.range().start + 1..tag.name_end];
                        splices.push((tag.close..tag.end, format!(">{escaped}</{qname}>")));
                    } else {
                        let inner_end = el.range().start
                            + body[el.range()]
                                .rfind("</")
                                .expect("a closed element has an end tag");
                        splices.push((tag.end..inner_end, escaped));
                    }
                }
            }
        }
        Ok(splice(body, splices))
    }

    /// `body` (parsed as `doc`) without the elements the path selects: none is fine, more than `count`
    /// is not. An element alone on its lines goes with those lines, so no blank line is left behind.
    fn remove(
        &self,
        doc: &Document,
        body: &str,
        details: &mut Vec<String>,
    ) -> Result<String, String> {
        let found = matches(doc, &self.steps);
        if let Count::Exactly(n) = self.count {
            if found.len() > n {
                return Err(self.wrong_count(doc, &found));
            }
        }
        let last = self.steps.last().expect("a path has a step");
        let splices = found
            .iter()
            .map(|el| {
                let r = el.range();
                details.push(format!(
                    "line {}: remove {last}",
                    doc.text_pos_at(r.start).row
                ));
                let whole_lines = indent_before(body, r.start)
                    .and(line_end_after(body, r.end))
                    .map(|end| line_start(body, r.start)..end);
                (whole_lines.unwrap_or(r), String::new())
            })
            .collect();
        Ok(splice(body, splices))
    }

    /// The elements the path selects, as many as `count` says, or an error saying how far the path got.
    fn select<'a, 'i>(&self, doc: &'a Document<'i>) -> Result<Vec<Node<'a, 'i>>, String> {
        let found = matches(doc, &self.steps);
        if found.is_empty() {
            return Err(self.no_match(doc));
        }
        match self.count {
            Count::Exactly(n) if found.len() != n => Err(self.wrong_count(doc, &found)),
            _ => Ok(found),
        }
    }

    /// Why the path selects nothing: the first step that matches no element, and what the steps before
    /// it matched.
    fn no_match(&self, doc: &Document) -> String {
        let mut cur = vec![doc.root()];
        for (i, step) in self.steps.iter().enumerate() {
            let next: Vec<Node> = children_matching(&cur, step);
            if next.is_empty() {
                let reached = if i == 0 {
                    format!(
                        "the root element is <{}>",
                        doc.root_element().tag_name().name()
                    )
                } else {
                    format!(
                        "`{}` matches {} element(s) but none has a child `{step}`",
                        path_of(&self.steps[..i]),
                        cur.len()
                    )
                };
                return format!("`{}` matches no element: {reached}", self.xpath);
            }
            cur = next;
        }
        format!("`{}` matches no element", self.xpath)
    }

    /// The error for a path that selects a number of elements `count` does not allow.
    fn wrong_count(&self, doc: &Document, found: &[Node]) -> String {
        let (expected, verb) = match self.state {
            Presence::Present => ("", "edit"),
            Presence::Absent => ("at most ", "remove"),
        };
        format!(
            "`{}` matches {} elements (lines {}), expected {expected}{} (set `count: all` to {verb} them all, or add a predicate)",
            self.xpath,
            found.len(),
            lines_of(doc, found),
            self.count
        )
    }
}

/// The elements `steps` select in `doc`, in document order.
fn matches<'a, 'i>(doc: &'a Document<'i>, steps: &[Step]) -> Vec<Node<'a, 'i>> {
    steps
        .iter()
        .fold(vec![doc.root()], |cur, step| children_matching(&cur, step))
}

/// The children of `nodes` that `step` matches.
fn children_matching<'a, 'i>(nodes: &[Node<'a, 'i>], step: &Step) -> Vec<Node<'a, 'i>> {
    nodes
        .iter()
        .flat_map(|n| n.children())
        .filter(|c| step_matches(step, c))
        .collect()
}

/// `/a/b[@k='v']` for the steps.
fn path_of(steps: &[Step]) -> String {
    steps.iter().map(|s| format!("/{s}")).collect()
}

/// The lines where `nodes` start, as `3, 17`.
fn lines_of(doc: &Document, nodes: &[Node]) -> String {
    let lines: Vec<String> = nodes
        .iter()
        .map(|n| doc.text_pos_at(n.range().start).row.to_string())
        .collect();
    lines.join(", ")
}

/// Start of the line holding byte `pos`.
fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

/// The indentation before `pos` when only spaces and tabs precede it on its line.
fn indent_before(text: &str, pos: usize) -> Option<&str> {
    let ws = &text[line_start(text, pos)..pos];
    ws.chars().all(|c| c == ' ' || c == '\t').then_some(ws)
}

/// When only whitespace follows `pos` on its line: where the next line starts (or the text ends).
fn line_end_after(text: &str, pos: usize) -> Option<usize> {
    let rest = &text[pos..];
    let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
    rest[..end]
        .chars()
        .all(char::is_whitespace)
        .then_some(pos + end)
}

/// `text` with each range replaced; the ranges do not overlap.
fn splice(text: &str, mut splices: Vec<(Range<usize>, String)>) -> String {
    splices.sort_by_key(|(r, _)| (r.start, r.end));
    let mut out = text.to_string();
    for (r, with) in splices.into_iter().rev() {
        out.replace_range(r, &with);
    }
    out
}

/// Byte positions in an element's start tag.
struct StartTag {
    /// End of the element's qualified name.
    name_end: usize,
    /// Where a new attribute goes: after the last attribute, or after the name.
    attrs_end: usize,
    /// Start of the closing `/>` or `>`.
    close: usize,
    /// Just after the start tag's final `>`.
    end: usize,
    /// True for `<e/>`.
    self_closing: bool,
}

/// Locates the parts of `el`'s start tag in `text`. Scanning starts after the last attribute the parser
/// reports and skips quoted text, so a `>` inside a value (including namespace declarations, which the
/// parser does not list as attributes) cannot be mistaken for the tag's end.
fn start_tag(text: &str, el: &Node) -> StartTag {
    let start = el.range().start;
    let name_end = text[start + 1..]
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .map_or(text.len(), |i| start + 1 + i);
    let attrs_end = el
        .attributes()
        .map(|a| a.range().end)
        .max()
        .unwrap_or(name_end);
    let mut quote = None;
    let gt = attrs_end
        + text[attrs_end..]
            .char_indices()
            .find(|&(_, c)| match quote {
                Some(q) if c == q => {
                    quote = None;
                    false
                }
                Some(_) => false,
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    false
                }
                None => c == '>',
            })
            .expect("a parsed start tag ends with >")
            .0;
    let self_closing = text[..gt].ends_with('/');
    StartTag {
        name_end,
        attrs_end,
        close: if self_closing { gt - 1 } else { gt },
        end: gt + 1,
        self_closing,
    }
}

impl TextEditor for XmlEdit {
    fn file(&self) -> &TextFile {
        &self.file
    }

    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError> {
        XmlEdit::edit(self, old)
    }

    fn describe(&self) -> String {
        format!("{} {}", self.file.describe(), self.xpath)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, file_with, plan_now, read, res};
    use super::super::Action;
    use super::{parse_xpath, Pred, KIND};
    use crate::transport::{LocalTransport, ProbeBatch};
    use serde_json::json;

    const CARBON: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<!--
  ~ Copyright (c) 2005-2010, WSO2 Inc. (http://www.wso2.org) All Rights Reserved.
  -->
<!-- This is the main server configuration file -->
<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">

    <!-- Product Name -->
    <Name>WSO2 API Manager</Name>

    <!--
       Host name or IP address of the machine hosting this server
       e.g. www.wso2.org, 192.168.1.10
    -->
    <!--HostName>www.wso2.org</HostName-->
    <HostName>localhost</HostName>
    <MgtHostName>localhost</MgtHostName>

    <Ports>
        <!-- Ports offset. -->
        <Offset>0</Offset>
        <JMX>
            <RMIRegistryPort>9999</RMIRegistryPort>
        </JMX>
    </Ports>
    <Description><![CDATA[Keep <this> & that]]></Description>
    <Security>
        <KeyStore>
            <Location>${carbon.home}/repository/resources/security/wso2carbon.jks</Location>
            <Type>JKS</Type>
            <Password>wso2carbon</Password>
        </KeyStore>
    </Security>
    <Axis2Config>
        <HideAdminServiceWSDLs>true</HideAdminServiceWSDLs>
        <Empty/>
    </Axis2Config>
</Server>
"#;

    const AXIS2: &str = r#"<axisconfig name="AxisJava2.0">
    <clustering class="org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"
                enable="false">
        <!-- multicast or wka -->
        <parameter name="membershipScheme">multicast</parameter>
        <parameter name="domain">wso2.carbon.domain</parameter>
        <parameter name="localMemberHost">127.0.0.1</parameter>
    </clustering>
</axisconfig>
"#;

    const DATASOURCES: &str = r#"<datasources-configuration xmlns:svns="http://org.wso2.securevault/configuration">
    <providers>
        <provider>org.wso2.carbon.ndatasource.rdbms.RDBMSDataSourceReader</provider>
    </providers>
    <datasources>
        <datasource>
            <name>WSO2_CARBON_DB</name>
            <description>The datasource used for registry and user manager</description>
            <definition type="RDBMS">
                <configuration>
                    <url>jdbc:h2:repository/database/WSO2CARBON_DB;DB_CLOSE_ON_EXIT=FALSE</url>
                    <username>wso2carbon</username>
                </configuration>
            </definition>
        </datasource>
        <datasource>
            <name>WSO2AM_DB</name>
            <!-- the API Manager database -->
            <definition type="RDBMS">
                <configuration>
                    <url>jdbc:h2:repository/database/WSO2AM_DB;DB_CLOSE_ON_EXIT=FALSE</url>
                    <username>wso2carbon</username>
                </configuration>
            </definition>
        </datasource>
    </datasources>
</datasources-configuration>
"#;

    /// Asserts that `new` differs from `old` only on the 1-based `changed` lines and has as many lines.
    fn only_lines_changed(old: &str, new: &str, changed: &[usize]) {
        let (o, n): (Vec<_>, Vec<_>) = (old.split('\n').collect(), new.split('\n').collect());
        assert_eq!(o.len(), n.len(), "line count changed:\n{new}");
        for (i, (a, b)) in o.iter().zip(&n).enumerate() {
            if changed.contains(&(i + 1)) {
                assert_ne!(a, b, "line {} should change", i + 1);
            } else {
                assert_eq!(a, b, "line {} should be kept", i + 1);
            }
        }
    }

    #[tokio::test]
    async fn sets_text_under_a_default_namespace_touching_only_that_line() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(CARBON);
        let r = res(
            KIND,
            json!({"path": path, "xpath": "/Server/HostName", "value": "apim.example.com"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec![r#"line 16: text "localhost" -> "apim.example.com""#]
        );
        let diff = first.diff.expect("text diff");
        assert_eq!(diff.old, CARBON);
        assert_eq!(second.action, Action::None);
        let new = read(&path);
        assert_eq!(diff.new, new);
        only_lines_changed(CARBON, &new, &[16]);
        assert!(new.contains("    <HostName>apim.example.com</HostName>\n"));
        assert!(new.contains("<!--HostName>www.wso2.org</HostName-->"));
    }

    #[tokio::test]
    async fn nested_text_cdata_and_self_closing_elements() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(CARBON);
        let offset = res(
            KIND,
            json!({"path": path, "xpath": "/Server/Ports/Offset", "value": 2}),
        );
        let (first, _) = converge(offset.as_ref(), &t).await;
        assert_eq!(first.details, vec![r#"line 21: text "0" -> "2""#]);
        let cdata_same = res(
            KIND,
            json!({"path": path, "xpath": "/Server/Description", "value": "Keep <this> & that"}),
        );
        assert_eq!(
            plan_now(cdata_same.as_ref(), &t).await.unwrap().action,
            Action::None,
            "CDATA text equal to the value is left alone"
        );
        let empty = res(
            KIND,
            json!({"path": path, "xpath": "/Server/Axis2Config/Empty", "value": "x", "attributes": {"a": "1"}}),
        );
        converge(empty.as_ref(), &t).await;
        let new = read(&path);
        only_lines_changed(CARBON, &new, &[21, 36]);
        assert!(new.contains("        <Offset>2</Offset>\n"));
        assert!(new.contains("        <Empty a=\"1\">x</Empty>\n"));
        assert!(new.contains("<![CDATA[Keep <this> & that]]>"));
    }

    #[tokio::test]
    async fn sets_attributes_and_selects_by_attribute_predicate() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2);
        let scheme = res(
            KIND,
            json!({"path": path,
                   "xpath": "/axisconfig/clustering/parameter[@name='membershipScheme']",
                   "value": "wka"}),
        );
        let enable = res(
            KIND,
            json!({"path": path, "xpath": "/axisconfig/clustering",
                   "attributes": {"enable": "true", "class": "org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"}}),
        );
        let (first, second) = converge(enable.as_ref(), &t).await;
        assert_eq!(first.details, vec![r#"line 3: @enable "false" -> "true""#]);
        assert_eq!(second.action, Action::None);
        converge(scheme.as_ref(), &t).await;
        let new = read(&path);
        only_lines_changed(AXIS2, &new, &[3, 5]);
        assert!(new.contains("                enable=\"true\">\n"));
        assert!(new.contains("<parameter name=\"membershipScheme\">wka</parameter>"));
        assert!(new.contains("<parameter name=\"domain\">wso2.carbon.domain</parameter>"));
    }

    #[tokio::test]
    async fn selects_by_child_text_and_escapes_special_characters() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(DATASOURCES);
        let url = "jdbc:mysql://db:3306/apim?useSSL=false&autoReconnect=true";
        let r = res(
            KIND,
            json!({"path": path,
                   "xpath": "/datasources-configuration/datasources/datasource[name='WSO2AM_DB']/definition/configuration/url",
                   "value": url}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(second.action, Action::None);
        let new = read(&path);
        only_lines_changed(DATASOURCES, &new, &[21]);
        assert!(new
            .contains("<url>jdbc:mysql://db:3306/apim?useSSL=false&amp;autoReconnect=true</url>"));
        assert!(new.contains("WSO2CARBON_DB;DB_CLOSE_ON_EXIT=FALSE</url>"));

        let tricky = r#"a&b<c>d"e'f"#;
        let both = res(
            KIND,
            json!({"path": path,
                   "xpath": "/datasources-configuration/datasources/datasource[name='WSO2AM_DB']/definition",
                   "attributes": {"type": tricky, "note": tricky}}),
        );
        let (_, again) = converge(both.as_ref(), &t).await;
        assert_eq!(again.action, Action::None);
        let new = read(&path);
        assert!(
            new.contains(r#"<definition type="a&amp;b&lt;c&gt;d&quot;e'f" note="a&amp;b&lt;c&gt;d&quot;e'f">"#),
            "{new}"
        );
        let text = res(
            KIND,
            json!({"path": path,
                   "xpath": "/datasources-configuration/datasources/datasource[name='WSO2AM_DB']/definition/configuration/username",
                   "value": tricky}),
        );
        let (_, again) = converge(text.as_ref(), &t).await;
        assert_eq!(again.action, Action::None);
        assert!(read(&path).contains(r#"<username>a&amp;b&lt;c&gt;d"e'f</username>"#));
    }

    #[tokio::test]
    async fn zero_or_several_matches_fail_the_plan_naming_the_path() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(DATASOURCES);
        let none = res(
            KIND,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource[name='NOPE']/definition", "value": "x"}),
        );
        let err = plan_now(none.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("datasource[name='NOPE']"), "{err}");
        assert!(err.contains("matches no element"), "{err}");
        assert!(
            err.contains("`/datasources-configuration/datasources` matches 1"),
            "{err}"
        );
        let root = res(
            KIND,
            json!({"path": path, "xpath": "/Server/Name", "value": "x"}),
        );
        let err = plan_now(root.as_ref(), &t).await.unwrap_err().to_string();
        assert!(
            err.contains("root element is <datasources-configuration>"),
            "{err}"
        );

        let many = res(
            KIND,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/definition/configuration/username", "value": "am"}),
        );
        let err = plan_now(many.as_ref(), &t).await.unwrap_err().to_string();
        assert!(
            err.contains("matches 2 elements (lines 12, 22), expected 1"),
            "{err}"
        );
        let all = res(
            KIND,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/definition/configuration/username", "value": "am", "count": 2}),
        );
        let (first, second) = converge(all.as_ref(), &t).await;
        assert_eq!(first.details.len(), 2);
        assert_eq!(second.action, Action::None);
        only_lines_changed(DATASOURCES, &read(&path), &[12, 22]);

        let every = res(
            KIND,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/definition/configuration/username", "value": "apim", "count": "all"}),
        );
        let (first, second) = converge(every.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec![
                r#"line 12: text "am" -> "apim""#,
                r#"line 22: text "am" -> "apim""#
            ]
        );
        assert_eq!(second.action, Action::None);
        let none = res(
            KIND,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/nope", "value": "x", "count": "all"}),
        );
        let err = plan_now(none.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("matches no element"), "{err}");
    }

    #[tokio::test]
    async fn text_of_a_non_leaf_and_a_broken_file_fail_the_plan() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2);
        let r = res(
            KIND,
            json!({"path": path, "xpath": "/axisconfig/clustering", "value": "x"}),
        );
        let err = plan_now(r.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("holds child element <parameter>"), "{err}");
        assert!(err.contains("leaf element"), "{err}");
        assert!(err.contains("/axisconfig/clustering"), "{err}");
        std::fs::write(&path, "<a><b></a>").unwrap();
        let r = res(KIND, json!({"path": path, "xpath": "/a/b", "value": "x"}));
        let err = plan_now(r.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("not well-formed"), "{err}");
        let missing = res(
            KIND,
            json!({"path": format!("{path}.nope"), "xpath": "/a", "value": "x"}),
        );
        let err = plan_now(missing.as_ref(), &t)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn two_edits_of_one_file_planned_together_land_once_the_second_is_replanned() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(CARBON);
        let host = res(
            KIND,
            json!({"path": path, "xpath": "/Server/HostName", "value": "h"}),
        );
        let mgt = res(
            KIND,
            json!({"path": path, "xpath": "/Server/MgtHostName", "value": "m"}),
        );
        let mut batch = ProbeBatch::default();
        batch.push(host.probe());
        batch.push(mgt.probe());
        let answers = batch.run(&t).await.unwrap();
        let p1 = host.plan(&answers[0].facts).unwrap();
        let p2 = mgt.plan(&answers[1].facts).unwrap();
        host.apply(&p1, &t).await.unwrap();
        let err = mgt.apply(&p2, &t).await.unwrap_err().to_string();
        assert!(
            err.contains("changed on the host since it was probed"),
            "{err}"
        );
        only_lines_changed(CARBON, &read(&path), &[16]);
        let fresh = plan_now(mgt.as_ref(), &t).await.unwrap();
        mgt.apply(&fresh, &t).await.unwrap();
        only_lines_changed(CARBON, &read(&path), &[16, 17]);
    }

    #[tokio::test]
    async fn a_byte_order_mark_and_crlf_endings_are_kept() {
        let t = LocalTransport::new("t");
        let old = "\u{feff}<?xml version=\"1.0\"?>\r\n<a>\r\n  <b k='1'>x</b>\r\n</a>\r\n";
        let (_d, path) = file_with(old);
        let r = res(
            KIND,
            json!({"path": path, "xpath": "/a/b", "value": "y", "attributes": {"k": "it's"}}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec![r#"line 3: @k "1" -> "it's""#, r#"line 3: text "x" -> "y""#]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&path),
            old.replace("<b k='1'>x</b>", "<b k='it&apos;s'>y</b>")
        );
    }

    #[tokio::test]
    async fn absent_removes_the_elements_with_their_lines_and_none_is_fine() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2);
        let r = res(
            KIND,
            json!({"path": path, "xpath": "/axisconfig/clustering/parameter[@name='domain']", "state": "absent"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["line 6: remove parameter[@name='domain']"]
        );
        assert_eq!(second.action, Action::None, "nothing left to remove");
        let diff = first.diff.expect("text diff");
        let want = AXIS2.replace(
            "        <parameter name=\"domain\">wso2.carbon.domain</parameter>\n",
            "",
        );
        assert_eq!(
            (diff.old.as_str(), diff.new.as_str()),
            (AXIS2, want.as_str())
        );
        assert_eq!(read(&path), want);

        let (_d, path) = file_with(DATASOURCES);
        let ds = "/datasources-configuration/datasources/datasource";
        let one = res(KIND, json!({"path": path, "xpath": ds, "state": "absent"}));
        let err = plan_now(one.as_ref(), &t).await.unwrap_err().to_string();
        assert!(
            err.contains("matches 2 elements (lines 6, 16), expected at most 1 (set `count: all` to remove them all"),
            "{err}"
        );
        let all = res(
            KIND,
            json!({"path": path, "xpath": ds, "state": "absent", "count": "all"}),
        );
        let (first, second) = converge(all.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec!["line 6: remove datasource", "line 16: remove datasource"]
        );
        assert_eq!(second.action, Action::None);
        assert!(read(&path).contains("    <datasources>\n    </datasources>\n"));

        let (_d, path) = file_with("<a><b/><c k='1'/>\n  <c/> <!-- kept -->\n</a>");
        let r = res(
            KIND,
            json!({"path": path, "xpath": "/a/c", "state": "absent", "count": 2}),
        );
        converge(r.as_ref(), &t).await;
        assert_eq!(read(&path), "<a><b/>\n   <!-- kept -->\n</a>");
        let gone = res(
            KIND,
            json!({"path": format!("{path}.nope"), "xpath": "/a/c", "state": "absent"}),
        );
        assert_eq!(
            plan_now(gone.as_ref(), &t).await.unwrap().action,
            Action::None,
            "a missing file holds nothing to remove"
        );
    }

    #[test]
    fn paths_parse_with_quoted_slashes_and_brackets() {
        let steps = parse_xpath("/a/ns:b[@k='x/y]'][c = \"v\"]/d").unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].name, "b");
        assert_eq!(
            steps[1].preds,
            vec![
                Pred::Attr("k".into(), "x/y]".into()),
                Pred::Child("c".into(), "v".into())
            ]
        );
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let p = "/tmp/x.xml";
        bad_args(KIND, json!({"xpath": "/a", "value": "x"}), "path");
        bad_args(
            KIND,
            json!({"path": "rel.xml", "xpath": "/a", "value": "x"}),
            "path",
        );
        bad_args(KIND, json!({"path": p, "value": "x"}), "xpath");
        bad_args(
            KIND,
            json!({"path": p, "xpath": "a/b", "value": "x"}),
            "xpath",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a//b", "value": "x"}),
            "xpath",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a[@k=v]", "value": "x"}),
            "xpath",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a[@k='v'", "value": "x"}),
            "xpath",
        );
        bad_args(KIND, json!({"path": p, "xpath": "/a"}), "value");
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "value": ["x"]}),
            "value",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "attributes": {"x y": "1"}}),
            "attributes",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "attributes": {"k": {}}}),
            "attributes",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "value": "x", "count": 0}),
            "count",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "value": "x", "count": "some"}),
            "count",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "value": "x", "count": 1.5}),
            "count",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "value": "x", "validate": "true"}),
            "validate",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a/b", "state": "absent", "value": "x"}),
            "state: absent",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "state": "absent"}),
            "root element",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a/b", "state": "gone"}),
            "state",
        );
        bad_args(
            KIND,
            json!({"path": p, "xpath": "/a", "value": "x", "bogus": 1}),
            "bogus",
        );
    }
}
