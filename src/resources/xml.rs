//! `xml`: the text and/or attributes of the elements at a simple path in an existing XML file, the element
//! made present (uncommented, or inserted from a fragment) or removed, for the large, heavily commented
//! configs of WSO2 1.x/EI (carbon.xml, axis2.xml, master-datasources.xml, ...). The file is parsed on the
//! controller only to locate byte ranges; the new values are spliced into the original text, so every byte
//! outside the edited spans (comments, whitespace, attribute order, CDATA) is kept and the plan's diff
//! shows exactly the lines that change. The result is parsed again before it is written.

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
    #[serde(default)]
    uncomment: bool,
    fragment: Option<String>,
    insert: Option<InsertArg>,
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

/// Where `fragment` goes among the parent's children, as written: `first`, `last`, `{before: STEP}`,
/// `{after: STEP}`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum InsertArg {
    First,
    Last,
    Before(String),
    After(String),
}

/// Where `fragment` goes among the parent's children.
enum Position {
    /// Right after the parent's start tag, before any child (comments included).
    First,
    /// Right before the parent's end tag, after every child.
    Last,
    /// Before the first child element the step (`name[pred]`) matches.
    Before(Step),
    /// After the last child element the step matches.
    After(Step),
}

/// The element `fragment` inserts when the path selects none, checked when the task is built.
struct Fragment {
    /// Its lines, without the indentation they share: inserted, each gets the parent's child indentation.
    lines: Vec<String>,
    at: Position,
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
    /// When the path selects nothing, look for the element commented out under the parent.
    uncomment: bool,
    fragment: Option<Fragment>,
}

/// The `xml` entry of `TYPES`: parses the path and checks the names and the fragment before any host is
/// touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let steps =
        parse_xpath(&a.xpath).map_err(|e| bad(KIND, format!("xpath `{}`: {e}", a.xpath)))?;
    match a.state {
        Presence::Present
            if a.value.is_none()
                && a.attributes.is_empty()
                && a.fragment.is_none()
                && !a.uncomment =>
        {
            return Err(bad(
                KIND,
                "set `value`, `attributes`, `fragment`, `uncomment` or several",
            ));
        }
        Presence::Absent
            if a.value.is_some()
                || !a.attributes.is_empty()
                || a.fragment.is_some()
                || a.insert.is_some()
                || a.uncomment =>
        {
            return Err(bad(
                KIND,
                "state: absent removes the elements; `value`, `attributes`, `fragment`, `insert` and `uncomment` go with state: present",
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
    let last = steps.last().expect("a parsed path has a step");
    for pred in &last.preds {
        if let Pred::Attr(k, v) = pred {
            if a.attributes.get(k).is_some_and(|want| want != v) {
                return Err(bad(
                    KIND,
                    format!(
                        "attributes: `{k}` contradicts the path's own [@{k}='{v}']: once set, the path would no longer select the element"
                    ),
                ));
            }
        }
    }
    if a.uncomment && steps.len() < 2 {
        return Err(bad(
            KIND,
            format!(
                "uncomment: xpath `{}` has no parent to look for comments under",
                a.xpath
            ),
        ));
    }
    let fragment = match (a.fragment, a.insert) {
        (None, None) => None,
        (None, Some(_)) => return Err(bad(KIND, "`insert` goes with `fragment`")),
        (Some(text), insert) => {
            if steps.len() < 2 {
                return Err(bad(
                    KIND,
                    format!(
                        "fragment: xpath `{}` has no parent to insert under",
                        a.xpath
                    ),
                ));
            }
            if matches!(a.count, Count::Exactly(n) if n > 1) {
                return Err(bad(
                    KIND,
                    "fragment inserts one element, so count must be 1 or `all`",
                ));
            }
            Some(Fragment::new(&text, insert, last, &a.xpath)?)
        }
    };
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
        uncomment: a.uncomment,
        fragment,
    }))
}

impl Fragment {
    /// Checks that `text` is one element that the path's `last` step matches (else the path would
    /// still select nothing once it is inserted, and every run would insert it again) and reads where
    /// it goes.
    fn new(
        text: &str,
        insert: Option<InsertArg>,
        last: &Step,
        xpath: &str,
    ) -> Result<Self, ResourceError> {
        let lines = dedent(text);
        let matched = with_element(&lines.join("\n"), |el| {
            (step_matches(last, &el), el.tag_name().name().to_string())
        })
        .map_err(|e| bad(KIND, format!("fragment: {e}")))?;
        if let (false, name) = matched {
            return Err(bad(
                KIND,
                format!(
                    "fragment: its <{name}> does not match `{last}`, the last step of xpath `{xpath}`: once inserted, the path would still select nothing"
                ),
            ));
        }
        let sibling = |s: String| {
            parse_xpath(&format!("/{s}"))
                .ok()
                .and_then(|mut steps| (steps.len() == 1).then(|| steps.remove(0)))
                .ok_or_else(|| {
                    bad(
                        KIND,
                        format!(
                            "insert: `{s}` is not a child element step such as `name` or `name[@k='v']`"
                        ),
                    )
                })
        };
        let at = match insert.unwrap_or(InsertArg::Last) {
            InsertArg::First => Position::First,
            InsertArg::Last => Position::Last,
            InsertArg::Before(s) => Position::Before(sibling(s)?),
            InsertArg::After(s) => Position::After(sibling(s)?),
        };
        Ok(Fragment { lines, at })
    }

    /// The splice inserting the fragment under `parent` in `body`: the range to replace (empty, but for
    /// an empty parent, whose inside or `/>` is rewritten) and the text. On a line of its own, the
    /// fragment's lines get the parent's child indentation and the file's line ending; squeezed into a
    /// line (`<a><b/></a>`), it goes in as it is.
    fn placed(&self, body: &str, parent: &Node) -> Result<(Range<usize>, String), String> {
        let eol = if body.contains("\r\n") { "\r\n" } else { "\n" };
        let indent = child_indent(body, parent);
        let block: String = self
            .lines
            .iter()
            .map(|l| {
                if l.is_empty() {
                    eol.to_string()
                } else {
                    format!("{indent}{l}{eol}")
                }
            })
            .collect();
        let inline = self.lines.join(eol);
        let tag = start_tag(body, parent);
        let own = indent_before(body, parent.range().start).unwrap_or("");
        let empty = parent
            .children()
            .all(|c| c.is_text() && c.text().is_some_and(|t| t.trim().is_empty()));
        if tag.self_closing {
            let qname = &body[parent.range().start + 1..tag.name_end];
            return Ok((tag.close..tag.end, format!(">{eol}{block}{own}</{qname}>")));
        }
        let end = end_tag_start(body, parent);
        if empty {
            return Ok((tag.end..end, format!("{eol}{block}{own}")));
        }
        let missing = |how: &str, step: &Step| {
            format!(
                "insert: {how} `{step}`: the parent at line {} has no child `{step}`",
                line_at(body, parent.range().start)
            )
        };
        let at_line_start = |pos: usize| indent_before(body, pos).map(|_| line_start(body, pos));
        let (own_line, pos) = match &self.at {
            Position::First => (line_end_after(body, tag.end), tag.end),
            Position::Last => (at_line_start(end), end),
            Position::Before(step) => {
                let sib = parent
                    .children()
                    .find(|c| step_matches(step, c))
                    .ok_or_else(|| missing("before", step))?;
                (at_line_start(sib.range().start), sib.range().start)
            }
            Position::After(step) => {
                let sib = parent
                    .children()
                    .rfind(|c| step_matches(step, c))
                    .ok_or_else(|| missing("after", step))?;
                (line_end_after(body, sib.range().end), sib.range().end)
            }
        };
        Ok(match own_line {
            Some(at) => (at..at, block),
            None => (pos..pos, inline),
        })
    }
}

/// The comments directly under `parents` that hold only an element `step` matches, each with that
/// element's text: what WSO2's guides mean by "uncomment the <X> element". Both spellings of a
/// commented-out element count: `<!-- <a>1</a> -->`, and `<!--a>1</a-->`, whose comment markers stand
/// for the tag's own `<` and `>`.
fn commented_out<'a, 'i>(parents: &[Node<'a, 'i>], step: &Step) -> Vec<(Node<'a, 'i>, String)> {
    parents
        .iter()
        .flat_map(|p| p.children())
        .filter(Node::is_comment)
        .filter_map(|c| {
            let inner = c.text()?.trim();
            let el = if inner.starts_with('<') {
                inner.to_string()
            } else {
                format!("<{inner}>")
            };
            with_element(&el, |e| step_matches(step, &e))
                .ok()?
                .then_some((c, el))
        })
        .collect()
}

/// The lines of `text` without the blank lines around them, trailing spaces, and the indentation the
/// others share: how a fragment written in a YAML block reads, whatever its indentation there.
fn dedent(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let Some(first) = lines.iter().position(|l| !l.is_empty()) else {
        return Vec::new();
    };
    let last = lines.iter().rposition(|l| !l.is_empty()).unwrap_or(first);
    let lines = &lines[first..=last];
    let cut = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(cut..).unwrap_or_default().to_string())
        .collect()
}

/// Parses `text` as exactly one element (whitespace around it is fine) and runs `f` on it. Namespace
/// prefixes it uses without declaring them are declared for this parse only: in the file an ancestor
/// declares them, and the whole edited file is parsed again before it is written.
fn with_element<R>(text: &str, f: impl FnOnce(Node) -> R) -> Result<R, String> {
    let mut decls = String::new();
    loop {
        let wrapped = format!("<w{decls}>{text}</w>");
        match parse(&wrapped) {
            Ok(doc) => {
                let mut kids = doc
                    .root_element()
                    .children()
                    .filter(|c| !(c.is_text() && c.text().is_some_and(|t| t.trim().is_empty())));
                return match (kids.next(), kids.next()) {
                    (Some(el), None) if el.is_element() => Ok(f(el)),
                    _ => {
                        Err("must be exactly one element (and nothing else but whitespace)".into())
                    }
                };
            }
            Err(roxmltree::Error::UnknownNamespace(prefix, _))
                if !decls.contains(&format!(" xmlns:{prefix}=")) =>
            {
                decls.push_str(&format!(
                    " xmlns:{prefix}=\"urn:apim-provision:undeclared\""
                ));
            }
            Err(e) => {
                return Err(format!(
                    "not well-formed XML at line {}: {}",
                    e.pos().row,
                    error_message(&e)
                ))
            }
        }
    }
}

/// A parse error's message without the position it ends with, for callers that name the line
/// themselves.
pub(super) fn error_message(e: &roxmltree::Error) -> String {
    let msg = e.to_string();
    match msg.strip_suffix(&format!(" at {}", e.pos())) {
        Some(m) => m.to_string(),
        None => msg,
    }
}

/// The indentation of `parent`'s children: that of its first child element or comment starting a
/// line, else the parent's own plus one level (what the parent has over its own parent, or four
/// spaces).
fn child_indent(body: &str, parent: &Node) -> String {
    if let Some(ind) = parent
        .children()
        .filter(|c| c.is_element() || c.is_comment())
        .find_map(|c| indent_before(body, c.range().start))
    {
        return ind.to_string();
    }
    let own = indent_before(body, parent.range().start).unwrap_or("");
    let unit = parent
        .parent_element()
        .and_then(|g| indent_before(body, g.range().start))
        .and_then(|g| own.strip_prefix(g))
        .filter(|u| !u.is_empty())
        .unwrap_or("    ");
    format!("{own}{unit}")
}

/// Where `el`'s end tag starts (`el` is not self-closing).
fn end_tag_start(body: &str, el: &Node) -> usize {
    el.range().start
        + body[el.range()]
            .rfind("</")
            .expect("a closed element has an end tag")
}

/// 1-based line of byte `pos`.
fn line_at(text: &str, pos: usize) -> usize {
    text[..pos].matches('\n').count() + 1
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
        let unparsable = |e: roxmltree::Error| {
            fail(format!(
                "the edited file would not be well-formed XML ({e}); nothing is written"
            ))
        };
        let out = match self.state {
            Presence::Absent => self.remove(&doc, body, &mut details).map_err(&fail)?,
            Presence::Present => match self.ensure(&doc, body, &mut details).map_err(&fail)? {
                None => self.set_values(&doc, body, &mut details).map_err(&fail)?,
                Some(added) => {
                    let doc = parse(&added).map_err(unparsable)?;
                    self.set_values(&doc, &added, &mut details).map_err(&fail)?
                }
            },
        };
        if out != body {
            parse(&out).map_err(unparsable)?;
        }
        Ok(Edit {
            content: [&text.as_bytes()[..bom], out.as_bytes()].concat(),
            details,
        })
    }

    /// When the path selects nothing: `body` (parsed as `doc`) with the element made present under the
    /// path's parent, by uncommenting it (`uncomment`, as many as `count` says) or else by inserting
    /// `fragment` (under exactly one parent). `None` when the path selects elements already, or there is
    /// no way to add one (then `set_values` says what is missing).
    fn ensure(
        &self,
        doc: &Document,
        body: &str,
        details: &mut Vec<String>,
    ) -> Result<Option<String>, String> {
        if (!self.uncomment && self.fragment.is_none()) || !matches(doc, &self.steps).is_empty() {
            return Ok(None);
        }
        let (parent_steps, last) = self.steps.split_at(self.steps.len() - 1);
        let last = &last[0];
        let parents = matches(doc, parent_steps);
        if parents.is_empty() {
            return Err(self.no_match(doc));
        }
        if self.uncomment {
            let found = commented_out(&parents, last);
            if let (Count::Exactly(n), false) = (self.count, found.is_empty()) {
                if found.len() != n {
                    let nodes: Vec<Node> = found.iter().map(|(c, _)| *c).collect();
                    return Err(format!(
                        "`{}` matches no element, and {} commented-out ones (lines {}), expected {n} (set `count: all` to uncomment them all, or add a predicate)",
                        self.xpath,
                        found.len(),
                        lines_of(doc, &nodes)
                    ));
                }
            }
            if !found.is_empty() {
                let splices = found
                    .into_iter()
                    .map(|(c, el)| {
                        details.push(format!(
                            "line {}: uncomment {last}",
                            doc.text_pos_at(c.range().start).row
                        ));
                        (c.range(), el)
                    })
                    .collect();
                return Ok(Some(splice(body, splices)));
            }
        }
        let Some(fragment) = &self.fragment else {
            return Err(format!(
                "`{}` matches no element, and no comment directly under `{}` holds one",
                self.xpath,
                path_of(parent_steps)
            ));
        };
        let parent = match &parents[..] {
            [p] => p,
            _ => {
                return Err(format!(
                    "`{}` matches {} elements (lines {}); `fragment` goes under exactly one (add a predicate)",
                    path_of(parent_steps),
                    parents.len(),
                    lines_of(doc, &parents)
                ))
            }
        };
        let (range, text) = fragment.placed(body, parent)?;
        let lead = &text[..text.find('<').unwrap_or(0)];
        details.push(format!(
            "line {}: insert {last}",
            line_at(body, range.start) + lead.matches('\n').count()
        ));
        Ok(Some(splice(body, vec![(range, text)])))
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
                        splices.push((tag.end..end_tag_start(body, el), escaped));
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
    use super::super::testkit::{bad_args, converge, file_with, merged, plan_now, read, res};
    use super::super::{Action, Change};
    use super::{parse_xpath, Pred, KIND};
    use crate::transport::{LocalTransport, ProbeBatch};
    use serde_json::{json, Value};

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

    /// Builds the edit `args`, converges it and checks a second plan finds nothing left, as every edit
    /// here must be idempotent; the first change, for the test's own checks.
    async fn converged(t: &LocalTransport, args: Value) -> Change {
        let r = res(KIND, args);
        let (first, second) = converge(r.as_ref(), t).await;
        assert_eq!(
            second.action,
            Action::None,
            "{} planned again after apply: {:?}",
            r.describe(),
            second.details
        );
        first
    }

    /// Builds the edit `args` and plans it, which must fail naming `want`; the whole message, for
    /// further checks.
    async fn plan_fails(t: &LocalTransport, args: Value, want: &str) -> String {
        let r = res(KIND, args);
        let err = plan_now(r.as_ref(), t).await.unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        err
    }

    #[tokio::test]
    async fn sets_text_under_a_default_namespace_touching_only_that_line() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(CARBON);
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/Server/HostName", "value": "apim.example.com"}),
        )
        .await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec![r#"line 16: text "localhost" -> "apim.example.com""#]
        );
        let diff = first.diff.expect("text diff");
        assert_eq!(diff.old, CARBON);
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
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/Server/Ports/Offset", "value": 2}),
        )
        .await;
        assert_eq!(first.details, vec![r#"line 21: text "0" -> "2""#]);
        let cdata_same = converged(
            &t,
            json!({"path": path, "xpath": "/Server/Description", "value": "Keep <this> & that"}),
        )
        .await;
        assert_eq!(
            cdata_same.action,
            Action::None,
            "CDATA text equal to the value is left alone"
        );
        converged(
            &t,
            json!({"path": path, "xpath": "/Server/Axis2Config/Empty", "value": "x", "attributes": {"a": "1"}}),
        )
        .await;
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
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/axisconfig/clustering",
                   "attributes": {"enable": "true", "class": "org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"}}),
        )
        .await;
        assert_eq!(first.details, vec![r#"line 3: @enable "false" -> "true""#]);
        converged(
            &t,
            json!({"path": path,
                   "xpath": "/axisconfig/clustering/parameter[@name='membershipScheme']",
                   "value": "wka"}),
        )
        .await;
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
        let first = converged(
            &t,
            json!({"path": path,
                   "xpath": "/datasources-configuration/datasources/datasource[name='WSO2AM_DB']/definition/configuration/url",
                   "value": url}),
        )
        .await;
        assert_eq!(first.action, Action::Update);
        let new = read(&path);
        only_lines_changed(DATASOURCES, &new, &[21]);
        assert!(new
            .contains("<url>jdbc:mysql://db:3306/apim?useSSL=false&amp;autoReconnect=true</url>"));
        assert!(new.contains("WSO2CARBON_DB;DB_CLOSE_ON_EXIT=FALSE</url>"));

        let tricky = r#"a&b<c>d"e'f"#;
        converged(
            &t,
            json!({"path": path,
                   "xpath": "/datasources-configuration/datasources/datasource[name='WSO2AM_DB']/definition",
                   "attributes": {"type": tricky, "note": tricky}}),
        )
        .await;
        let new = read(&path);
        assert!(
            new.contains(r#"<definition type="a&amp;b&lt;c&gt;d&quot;e'f" note="a&amp;b&lt;c&gt;d&quot;e'f">"#),
            "{new}"
        );
        converged(
            &t,
            json!({"path": path,
                   "xpath": "/datasources-configuration/datasources/datasource[name='WSO2AM_DB']/definition/configuration/username",
                   "value": tricky}),
        )
        .await;
        assert!(read(&path).contains(r#"<username>a&amp;b&lt;c&gt;d"e'f</username>"#));
    }

    #[tokio::test]
    async fn zero_or_several_matches_fail_the_plan_naming_the_path() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(DATASOURCES);
        let err = plan_fails(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource[name='NOPE']/definition", "value": "x"}),
            "datasource[name='NOPE']",
        )
        .await;
        assert!(err.contains("matches no element"), "{err}");
        assert!(
            err.contains("`/datasources-configuration/datasources` matches 1"),
            "{err}"
        );
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/Server/Name", "value": "x"}),
            "root element is <datasources-configuration>",
        )
        .await;

        plan_fails(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/definition/configuration/username", "value": "am"}),
            "matches 2 elements (lines 12, 22), expected 1",
        )
        .await;
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/definition/configuration/username", "value": "am", "count": 2}),
        )
        .await;
        assert_eq!(first.details.len(), 2);
        only_lines_changed(DATASOURCES, &read(&path), &[12, 22]);

        let first = converged(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/definition/configuration/username", "value": "apim", "count": "all"}),
        )
        .await;
        assert_eq!(
            first.details,
            vec![
                r#"line 12: text "am" -> "apim""#,
                r#"line 22: text "am" -> "apim""#
            ]
        );
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource/nope", "value": "x", "count": "all"}),
            "matches no element",
        )
        .await;
    }

    #[tokio::test]
    async fn text_of_a_non_leaf_and_a_broken_file_fail_the_plan() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2);
        let err = plan_fails(
            &t,
            json!({"path": path, "xpath": "/axisconfig/clustering", "value": "x"}),
            "holds child element <parameter>",
        )
        .await;
        assert!(err.contains("leaf element"), "{err}");
        assert!(err.contains("/axisconfig/clustering"), "{err}");
        std::fs::write(&path, "<a><b></a>").unwrap();
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/a/b", "value": "x"}),
            "not well-formed",
        )
        .await;
        let err = plan_fails(
            &t,
            json!({"path": format!("{path}.nope"), "xpath": "/a", "value": "x"}),
            "does not exist",
        )
        .await;
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
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/a/b", "value": "y", "attributes": {"k": "it's"}}),
        )
        .await;
        assert_eq!(
            first.details,
            vec![r#"line 3: @k "1" -> "it's""#, r#"line 3: text "x" -> "y""#]
        );
        assert_eq!(
            read(&path),
            old.replace("<b k='1'>x</b>", "<b k='it&apos;s'>y</b>")
        );
    }

    #[tokio::test]
    async fn absent_removes_the_elements_with_their_lines_and_none_is_fine() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2);
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/axisconfig/clustering/parameter[@name='domain']", "state": "absent"}),
        )
        .await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["line 6: remove parameter[@name='domain']"]
        );
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
        plan_fails(
            &t,
            json!({"path": path, "xpath": ds, "state": "absent"}),
            "matches 2 elements (lines 6, 16), expected at most 1 (set `count: all` to remove them all",
        )
        .await;
        let first = converged(
            &t,
            json!({"path": path, "xpath": ds, "state": "absent", "count": "all"}),
        )
        .await;
        assert_eq!(
            first.details,
            vec!["line 6: remove datasource", "line 16: remove datasource"]
        );
        assert!(read(&path).contains("    <datasources>\n    </datasources>\n"));

        let (_d, path) = file_with("<a><b/><c k='1'/>\n  <c/> <!-- kept -->\n</a>");
        converged(
            &t,
            json!({"path": path, "xpath": "/a/c", "state": "absent", "count": 2}),
        )
        .await;
        assert_eq!(read(&path), "<a><b/>\n   <!-- kept -->\n</a>");
        let gone = converged(
            &t,
            json!({"path": format!("{path}.nope"), "xpath": "/a/c", "state": "absent"}),
        )
        .await;
        assert_eq!(
            gone.action,
            Action::None,
            "a missing file holds nothing to remove"
        );
    }

    /// axis2.xml as shipped, with the members and the local member host commented out, both ways WSO2
    /// writes it.
    const AXIS2_CLUSTER: &str = r#"<axisconfig name="AxisJava2.0">
    <clustering class="org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"
                enable="false">
        <parameter name="membershipScheme">multicast</parameter>
        <!--
           The host name or IP address of this member
        -->
        <!-- <parameter name="localMemberHost">127.0.0.1</parameter> -->
        <parameter name="localMemberPort">4000</parameter>
        <!-- <parameter name="localMemberHost">elsewhere</parameter> is not this one -->
        <members>
            <!--member>
                <hostName>127.0.0.1</hostName>
                <port>4000</port>
            </member-->
        </members>
    </clustering>
    <!-- <parameter name="localMemberHost">at the wrong place</parameter> -->
</axisconfig>
"#;

    #[tokio::test]
    async fn a_commented_out_member_host_is_uncommented_in_place_then_set() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2_CLUSTER);
        let first = converged(
            &t,
            json!({"path": path,
                   "xpath": "/axisconfig/clustering/parameter[@name='localMemberHost']",
                   "uncomment": true, "value": "10.0.0.5"}),
        )
        .await;
        assert_eq!(
            first.details,
            vec![
                "line 8: uncomment parameter[@name='localMemberHost']",
                r#"line 8: text "127.0.0.1" -> "10.0.0.5""#
            ]
        );
        let new = read(&path);
        only_lines_changed(AXIS2_CLUSTER, &new, &[8]);
        assert!(
            new.contains("\n        <parameter name=\"localMemberHost\">10.0.0.5</parameter>\n")
        );
        assert!(new.contains(
            "<!-- <parameter name=\"localMemberHost\">elsewhere</parameter> is not this one -->"
        ));
        assert!(new.contains(
            "<!-- <parameter name=\"localMemberHost\">at the wrong place</parameter> -->"
        ));

        let first = converged(
            &t,
            json!({"path": path, "xpath": "/axisconfig/clustering/members/member", "uncomment": true}),
        )
        .await;
        assert_eq!(first.details, vec!["line 12: uncomment member"]);
        converged(
            &t,
            json!({"path": path, "xpath": "/axisconfig/clustering/members/member/hostName", "value": "10.0.0.6"}),
        )
        .await;
        let new = read(&path);
        only_lines_changed(AXIS2_CLUSTER, &new, &[8, 12, 13, 15]);
        assert!(new.contains(
            "        <members>\n            <member>\n                <hostName>10.0.0.6</hostName>\n                <port>4000</port>\n            </member>\n        </members>\n"
        ));
    }

    #[tokio::test]
    async fn uncomment_is_preferred_to_the_fragment_and_counted() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(CARBON);
        converged(
            &t,
            json!({"path": path, "xpath": "/Server/HostName", "state": "absent"}),
        )
        .await;
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/Server/HostName", "uncomment": true,
                   "fragment": "<HostName>from-fragment</HostName>"}),
        )
        .await;
        assert_eq!(first.details, vec!["line 15: uncomment HostName"]);
        assert!(read(&path).contains("    <HostName>www.wso2.org</HostName>\n    <MgtHostName>"));

        let (_d, path) = file_with("<r>\n  <p>\n    <!-- <x k='1'/> -->\n    <!--<x k='2'/>-->\n    <!-- a note -->\n  </p>\n</r>\n");
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/r/p/x", "uncomment": true}),
            "`/r/p/x` matches no element, and 2 commented-out ones (lines 3, 4), expected 1",
        )
        .await;
        converged(
            &t,
            json!({"path": path, "xpath": "/r/p/x[@k='2']", "uncomment": true, "fragment": "<x k='2'/>"}),
        )
        .await;
        assert_eq!(
            read(&path),
            "<r>\n  <p>\n    <!-- <x k='1'/> -->\n    <x k='2'/>\n    <!-- a note -->\n  </p>\n</r>\n"
        );
        let first = converged(
            &t,
            json!({"path": path, "xpath": "/r/p/y", "uncomment": true, "count": "all", "fragment": "<y/>"}),
        )
        .await;
        assert_eq!(
            first.details,
            vec!["line 6: insert y"],
            "no comment holds a <y>"
        );
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/r/p/z", "uncomment": true}),
            "`/r/p/z` matches no element, and no comment directly under `/r/p` holds one",
        )
        .await;
    }

    #[tokio::test]
    async fn an_uncommented_element_must_parse_where_it_lands() {
        let t = LocalTransport::new("t");
        let old = "<r>\n  <!-- <p:x/> -->\n</r>\n";
        let (_d, path) = file_with(old);
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/r/x", "uncomment": true}),
            "would not be well-formed XML (an unknown namespace prefix 'p'",
        )
        .await;
        assert_eq!(read(&path), old);
        let declared = "<r xmlns:p=\"urn:p\">\n  <!-- <p:x/> -->\n</r>\n";
        let (_d, path) = file_with(declared);
        converged(
            &t,
            json!({"path": path, "xpath": "/r/x", "uncomment": true}),
        )
        .await;
        assert_eq!(read(&path), declared.replace("<!-- <p:x/> -->", "<p:x/>"));
    }

    /// A datasource block as a playbook would write it in a YAML `|` block: its own indentation.
    const MB_STORE: &str = "
      <datasource>
          <name>WSO2_MB_STORE_DB</name>
          <!-- the message broker store -->
          <definition type=\"RDBMS\">
              <configuration>
                  <url>jdbc:mysql://db:3306/mb</url>
                  <password svns:secretAlias=\"MB_DB_PASSWORD\">password</password>
              </configuration>
          </definition>
      </datasource>
    ";

    #[tokio::test]
    async fn a_missing_datasource_is_inserted_once_indented_as_its_siblings() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(DATASOURCES);
        let xpath = "/datasources-configuration/datasources/datasource[name='WSO2_MB_STORE_DB']";
        let first = converged(
            &t,
            json!({"path": path, "xpath": xpath, "fragment": MB_STORE,
                   "insert": {"after": "datasource[name='WSO2_CARBON_DB']"}}),
        )
        .await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["line 16: insert datasource[name='WSO2_MB_STORE_DB']"]
        );
        let block = "        <datasource>
            <name>WSO2_MB_STORE_DB</name>
            <!-- the message broker store -->
            <definition type=\"RDBMS\">
                <configuration>
                    <url>jdbc:mysql://db:3306/mb</url>
                    <password svns:secretAlias=\"MB_DB_PASSWORD\">password</password>
                </configuration>
            </definition>
        </datasource>
";
        let at = DATASOURCES
            .find("        <datasource>\n            <name>WSO2AM_DB")
            .unwrap();
        let want = format!("{}{block}{}", &DATASOURCES[..at], &DATASOURCES[at..]);
        assert_eq!(first.diff.unwrap().new, want);
        assert_eq!(read(&path), want);

        let first = converged(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/datasources/datasource[name='X']",
                   "fragment": "<datasource><name>X</name></datasource>"}),
        )
        .await;
        assert_eq!(first.details, vec!["line 36: insert datasource[name='X']"]);
        assert!(read(&path).ends_with(
            "        </datasource>\n        <datasource><name>X</name></datasource>\n    </datasources>\n</datasources-configuration>\n"
        ));
    }

    #[tokio::test]
    async fn an_inserted_element_then_gets_value_and_attributes() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(AXIS2);
        let first = converged(
            &t,
            json!({"path": path,
                   "xpath": "/axisconfig/clustering/parameter[@name='localMemberPort']",
                   "fragment": "<parameter name=\"localMemberPort\">4000</parameter>",
                   "insert": {"before": "parameter[@name='domain']"},
                   "value": 4100, "attributes": {"locked": "false"}}),
        )
        .await;
        assert_eq!(
            first.details,
            vec![
                "line 6: insert parameter[@name='localMemberPort']",
                r#"line 6: add @locked "false""#,
                r#"line 6: text "4000" -> "4100""#
            ]
        );
        let new = read(&path);
        assert_eq!(
            new,
            AXIS2.replace(
                "        <parameter name=\"domain\">",
                "        <parameter name=\"localMemberPort\" locked=\"false\">4100</parameter>\n        <parameter name=\"domain\">"
            )
        );
        converged(
            &t,
            json!({"path": path, "xpath": "/axisconfig/clustering/parameter[@name='a']",
                   "fragment": "<parameter name='a'/>", "insert": "first"}),
        )
        .await;
        assert!(read(&path).contains(
            "                enable=\"false\">\n        <parameter name='a'/>\n        <!-- multicast or wka -->\n"
        ));
    }

    #[tokio::test]
    async fn insertion_into_empty_inline_and_crlf_parents() {
        let t = LocalTransport::new("t");
        let cases = [
            ("<r>\n\t<p/>\n</r>\n", "<r>\n\t<p>\n\t\t<c>\n\t\t  <d/>\n\t\t</c>\n\t</p>\n</r>\n"),
            ("<r>\n  <p></p>\n</r>\n", "<r>\n  <p>\n    <c>\n      <d/>\n    </c>\n  </p>\n</r>\n"),
            ("<r>\n  <p>\n  </p>\n</r>\n", "<r>\n  <p>\n    <c>\n      <d/>\n    </c>\n  </p>\n</r>\n"),
            ("<r><p><x/></p></r>", "<r><p><x/><c>\n  <d/>\n</c></p></r>"),
            ("<r>\r\n  <p>\r\n    <x/>\r\n  </p>\r\n</r>\r\n", "<r>\r\n  <p>\r\n    <x/>\r\n    <c>\r\n      <d/>\r\n    </c>\r\n  </p>\r\n</r>\r\n"),
        ];
        for (old, want) in cases {
            let (_d, path) = file_with(old);
            converged(
                &t,
                json!({"path": path, "xpath": "/r/p/c", "fragment": "  <c>\n    <d/>\n  </c>\n"}),
            )
            .await;
            assert_eq!(read(&path), want, "from {old:?}");
        }
        let (_d, path) = file_with("<r><p><x/></p></r>");
        converged(
            &t,
            json!({"path": path, "xpath": "/r/p/c", "fragment": "<c/>", "insert": {"before": "x"}}),
        )
        .await;
        assert_eq!(read(&path), "<r><p><c/><x/></p></r>");
    }

    #[tokio::test]
    async fn an_insertion_that_cannot_be_placed_fails_the_plan() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(DATASOURCES);
        let ds = "/datasources-configuration/datasources/datasource";
        plan_fails(
            &t,
            json!({"path": path, "xpath": format!("{ds}/jndiConfig"),
                   "fragment": "<jndiConfig><name>jdbc/X</name></jndiConfig>"}),
            &format!("`{ds}` matches 2 elements (lines 6, 16); `fragment` goes under exactly one"),
        )
        .await;
        plan_fails(
            &t,
            json!({"path": path, "xpath": format!("{ds}[name='Y']"),
                   "fragment": "<datasource><name>Y</name></datasource>",
                   "insert": {"before": "datasource[name='NOPE']"}}),
            "insert: before `datasource[name='NOPE']`: the parent at line 5 has no child",
        )
        .await;
        plan_fails(
            &t,
            json!({"path": path, "xpath": "/datasources-configuration/nope/x", "fragment": "<x/>"}),
            "none has a child `nope`",
        )
        .await;

        let (_d, path) = file_with("<r>\n  <p/>\n</r>\n");
        let err = plan_fails(
            &t,
            json!({"path": path, "xpath": "/r/p/q", "fragment": "<q svns:secretAlias='x'/>"}),
            "the edited file would not be well-formed XML (an unknown namespace prefix 'svns'",
        )
        .await;
        assert!(err.contains("nothing is written"), "{err}");
        assert_eq!(read(&path), "<r>\n  <p/>\n</r>\n");
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
        bad_args(KIND, json!({"xpath": "/a", "value": "x"}), "path");
        // Every other case at an absolute path, so each shows only what makes it wrong.
        let cases = [
            (
                json!({"path": "rel.xml", "xpath": "/a", "value": "x"}),
                "path",
            ),
            (json!({"value": "x"}), "xpath"),
            (json!({"xpath": "a/b", "value": "x"}), "xpath"),
            (json!({"xpath": "/a//b", "value": "x"}), "xpath"),
            (json!({"xpath": "/a[@k=v]", "value": "x"}), "xpath"),
            (json!({"xpath": "/a[@k='v'", "value": "x"}), "xpath"),
            (json!({"xpath": "/a"}), "value"),
            (json!({"xpath": "/a", "value": ["x"]}), "value"),
            (
                json!({"xpath": "/a", "attributes": {"x y": "1"}}),
                "attributes",
            ),
            (
                json!({"xpath": "/a", "attributes": {"k": {}}}),
                "attributes",
            ),
            (json!({"xpath": "/a", "value": "x", "count": 0}), "count"),
            (
                json!({"xpath": "/a", "value": "x", "count": "some"}),
                "count",
            ),
            (json!({"xpath": "/a", "value": "x", "count": 1.5}), "count"),
            (
                json!({"xpath": "/a", "value": "x", "validate": "true"}),
                "validate",
            ),
            (
                json!({"xpath": "/a/b", "state": "absent", "value": "x"}),
                "state: absent",
            ),
            (json!({"xpath": "/a", "state": "absent"}), "root element"),
            (json!({"xpath": "/a/b", "state": "gone"}), "state"),
            (
                json!({"xpath": "/a/b[@k='1']", "attributes": {"k": "2"}}),
                "contradicts the path's own [@k='1']",
            ),
            (
                json!({"xpath": "/a/b[@k='1']", "fragment": "<b k='2'/>"}),
                "fragment: its <b> does not match `b[@k='1']`",
            ),
            (
                json!({"xpath": "/a/b", "fragment": "<b/><b/>"}),
                "fragment: must be exactly one element",
            ),
            (
                json!({"xpath": "/a/b", "fragment": "<!-- b --><b/>"}),
                "fragment: must be exactly one element",
            ),
            (
                json!({"xpath": "/a/b", "fragment": "<b>\n<c></b>"}),
                "fragment: not well-formed XML at line 2: expected 'c' tag, not 'b'",
            ),
            (
                json!({"xpath": "/a", "fragment": "<a/>"}),
                "fragment: xpath `/a` has no parent",
            ),
            (
                json!({"xpath": "/a/b", "fragment": "<b/>", "count": 2}),
                "count must be 1 or `all`",
            ),
            (
                json!({"xpath": "/a/b", "value": "x", "insert": "first"}),
                "`insert` goes with `fragment`",
            ),
            (
                json!({"xpath": "/a/b", "fragment": "<b/>", "insert": "middle"}),
                "insert",
            ),
            (
                json!({"xpath": "/a/b", "fragment": "<b/>", "insert": {"before": "x/y"}}),
                "insert: `x/y` is not a child element step",
            ),
            (
                json!({"xpath": "/a/b", "state": "absent", "fragment": "<b/>"}),
                "state: absent",
            ),
            (
                json!({"xpath": "/a/b", "state": "absent", "uncomment": true}),
                "state: absent",
            ),
            (
                json!({"xpath": "/a", "uncomment": true}),
                "uncomment: xpath `/a` has no parent",
            ),
            (json!({"xpath": "/a/b", "uncomment": "yes"}), "uncomment"),
            (json!({"xpath": "/a", "value": "x", "bogus": 1}), "bogus"),
        ];
        for (extra, field) in cases {
            bad_args(KIND, merged(json!({"path": "/tmp/x.xml"}), extra), field);
        }
    }
}
