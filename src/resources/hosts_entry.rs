//! `hosts_entry`: the one line of a hosts file for an IP address, with exactly the given names, or no line
//! for it. Edited like `lineinfile` (computed on the controller from the probed content, diffed, written
//! atomically), but it understands the format, so a re-run compares addresses and names rather than text.
//!
//! A name should resolve to one address, so `present` also takes its names off every other address's line
//! (dropping lines left without names). Two exceptions keep the machine able to reach itself: the name
//! `localhost` is never taken off another line (it rightly maps to both 127.0.0.1 and ::1), and a line
//! carrying `localhost` is never deleted nor stripped of `localhost` by this type.

use super::edit::TextEditor;
use super::edit::{body, lines, Edit, TextFile};
use super::Presence as State;
use super::{bad, parse_args, Attrs, BuildCtx, Resource, ResourceError};
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;

const KIND: &str = "hosts_entry";

/// The name that is never removed, and whose lines are never deleted.
const LOCALHOST: &str = "localhost";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    ip: String,
    #[serde(default, deserialize_with = "super::one_or_many")]
    names: Vec<String>,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    state: State,
    #[serde(flatten)]
    attrs: Attrs,
}

fn default_path() -> String {
    "/etc/hosts".into()
}

struct HostsEntry {
    file: TextFile,
    ip: IpAddr,
    names: Vec<String>,
    state: State,
}

/// The `hosts_entry` entry of `TYPES`: checks the address and names before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let ip: IpAddr = a.ip.trim().parse().map_err(|_| {
        bad(
            KIND,
            format!("ip `{}` is not an IPv4 or IPv6 address", a.ip),
        )
    })?;
    if a.state == State::Present && a.names.is_empty() {
        return Err(bad(
            KIND,
            "state: present needs at least one entry in `names`",
        ));
    }
    for (i, n) in a.names.iter().enumerate() {
        let ok = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok {
            return Err(bad(KIND, format!("names: `{n}` is not a host name")));
        }
        if a.names[..i].contains(n) {
            return Err(bad(KIND, format!("names: `{n}` is listed twice")));
        }
    }
    let file = TextFile::new(KIND, a.path, None, a.state == State::Absent, a.attrs, None)?;
    Ok(Box::new(HostsEntry {
        file,
        ip,
        names: a.names,
        state: a.state,
    }))
}

/// One line of a hosts file, split into its address, names and trailing comment; comment-only and blank
/// lines have no address.
struct Line<'a> {
    ip: Option<&'a str>,
    names: Vec<&'a str>,
    /// The `#...` part, kept when the line is rewritten.
    comment: Option<&'a str>,
}

impl<'a> Line<'a> {
    fn parse(text: &'a str) -> Self {
        let (data, comment) = match text.find('#') {
            Some(i) => (&text[..i], Some(&text[i..])),
            None => (text, None),
        };
        let mut words = data.split_whitespace();
        Line {
            ip: words.next(),
            names: words.collect(),
            comment,
        }
    }

    /// True when the line's address is `ip`, comparing parsed addresses so `::1` and `0:0::1` agree.
    fn is_for(&self, ip: &IpAddr) -> bool {
        self.ip.and_then(|w| w.parse::<IpAddr>().ok()).as_ref() == Some(ip)
    }

    fn has_localhost(&self) -> bool {
        self.names.contains(&LOCALHOST)
    }
}

/// A hosts line: the address, a tab, the names separated by spaces (the Debian layout), then any comment.
fn render(ip: &str, names: &[&str], comment: Option<&str>) -> String {
    let mut s = format!("{ip}\t{}", names.join(" "));
    if let Some(c) = comment {
        s.push(' ');
        s.push_str(c);
    }
    s
}

impl HostsEntry {
    /// Rewrites the lines of the file: see the module documentation for the rules. Fails rather than
    /// drop `localhost` from a line, since that breaks the machine in ways that are hard to see.
    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError> {
        let text = std::str::from_utf8(old).map_err(|_| {
            ResourceError::Failed(format!("{} is not UTF-8 text", self.file.describe()))
        })?;
        let ip = self.ip.to_string();
        let mut out: Vec<String> = Vec::new();
        let mut details = Vec::new();
        let mut placed = false;
        for (i, raw) in lines(text.as_bytes()).iter().enumerate() {
            let raw = std::str::from_utf8(raw).expect("split from a str at newlines");
            let eol = &raw[body(raw.as_bytes()).len()..];
            let line = Line::parse(&raw[..raw.len() - eol.len()]);
            let n = i + 1;
            if line.is_for(&self.ip) {
                if line.has_localhost() && !self.names.iter().any(|x| x == LOCALHOST) {
                    return Err(ResourceError::Failed(format!(
                        "{}: line {n} for {ip} carries `localhost`; list `localhost` in names to keep it (this type never removes it)",
                        self.file.describe()
                    )));
                }
                if self.state == State::Absent || placed {
                    details.push(format!("remove line {n} ({})", line.names.join(" ")));
                    continue;
                }
                placed = true;
                if line.names != self.names {
                    let keep = line.ip.unwrap_or(&ip);
                    let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
                    out.push(render(keep, &names, line.comment) + eol);
                    details.push(format!(
                        "line {n}: {} -> {}",
                        line.names.join(" "),
                        names.join(" ")
                    ));
                    continue;
                }
            } else if self.state == State::Present && line.ip.is_some() {
                let stolen: Vec<&str> = line
                    .names
                    .iter()
                    .copied()
                    .filter(|x| *x != LOCALHOST && self.names.iter().any(|w| w == x))
                    .collect();
                if !stolen.is_empty() {
                    let rest: Vec<&str> = line
                        .names
                        .iter()
                        .copied()
                        .filter(|x| !stolen.contains(x))
                        .collect();
                    let other = line.ip.unwrap_or_default();
                    if rest.is_empty() {
                        details.push(format!(
                            "remove line {n} ({other} {}, names move to {ip})",
                            stolen.join(" ")
                        ));
                    } else {
                        details.push(format!("line {n}: take {} off {other}", stolen.join(" ")));
                        out.push(render(other, &rest, line.comment) + eol);
                    }
                    continue;
                }
            }
            out.push(raw.to_string());
        }
        if self.state == State::Present && !placed {
            if out.last().is_some_and(|l| !l.ends_with('\n')) {
                if let Some(l) = out.last_mut() {
                    l.push('\n');
                }
            }
            let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
            out.push(render(&ip, &names, None) + "\n");
            details.push(format!("add line {}: {ip} {}", out.len(), names.join(" ")));
        }
        Ok(Edit {
            content: out.concat().into_bytes(),
            details,
        })
    }
}

impl TextEditor for HostsEntry {
    fn file(&self) -> &TextFile {
        &self.file
    }

    fn edit(&self, old: &[u8]) -> Result<Edit, ResourceError> {
        HostsEntry::edit(self, old)
    }

    fn describe(&self) -> String {
        format!("{} {}", self.file.describe(), self.ip)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, file_with, plan_now, read, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;

    const HOSTS: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tapim-1.example.com apim-1\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n10.0.0.9\tdb old-db # the database\n";

    #[tokio::test]
    async fn adds_a_missing_entry_at_the_end_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(HOSTS);
        let r = res(
            KIND,
            json!({"ip": "10.0.0.21", "names": ["gw-1.example.com", "gw-1"], "path": path}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["add line 8: 10.0.0.21 gw-1.example.com gw-1"]
        );
        assert!(first.diff.is_some());
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&path),
            format!("{HOSTS}10.0.0.21\tgw-1.example.com gw-1\n")
        );
    }

    #[tokio::test]
    async fn changes_names_in_place_keeping_comments_and_other_lines() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(HOSTS);
        let r = res(
            KIND,
            json!({"ip": "10.0.0.9", "names": ["db.example.com", "db"], "path": path}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec!["line 7: db old-db -> db.example.com db"]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&path),
            HOSTS.replace(
                "10.0.0.9\tdb old-db # the database",
                "10.0.0.9\tdb.example.com db # the database"
            )
        );
    }

    #[tokio::test]
    async fn a_name_moves_off_other_addresses_but_localhost_stays() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(
            "127.0.0.1 localhost apim-1\n127.0.1.1 apim-1\n10.0.0.5 apim-1\n10.0.0.5 dup\n",
        );
        let r = res(
            KIND,
            json!({"ip": "10.0.0.5", "names": "apim-1", "path": path}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec![
                "line 1: take apim-1 off 127.0.0.1",
                "remove line 2 (127.0.1.1 apim-1, names move to 10.0.0.5)",
                "remove line 4 (dup)"
            ]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&path), "127.0.0.1\tlocalhost\n10.0.0.5 apim-1\n");

        let keep = res(
            KIND,
            json!({"ip": "::1", "names": ["localhost"], "path": path}),
        );
        converge(keep.as_ref(), &t).await;
        assert_eq!(
            read(&path),
            "127.0.0.1\tlocalhost\n10.0.0.5 apim-1\n::1\tlocalhost\n"
        );
        let drop_localhost = res(
            KIND,
            json!({"ip": "127.0.0.1", "names": ["me"], "path": path}),
        );
        let err = plan_now(drop_localhost.as_ref(), &t)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("carries `localhost`"), "{err}");
        let absent = res(
            KIND,
            json!({"ip": "127.0.0.1", "state": "absent", "path": path}),
        );
        let err = plan_now(absent.as_ref(), &t).await.unwrap_err().to_string();
        assert!(err.contains("carries `localhost`"), "{err}");
    }

    #[tokio::test]
    async fn absent_removes_every_line_for_the_address() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with(HOSTS);
        let r = res(
            KIND,
            json!({"ip": "10.0.0.9", "state": "absent", "path": path}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["remove line 7 (db old-db)"]);
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&path),
            HOSTS.replace("10.0.0.9\tdb old-db # the database\n", "")
        );
        let v6 = res(
            KIND,
            json!({"ip": "ff02:0:0::1", "state": "absent", "path": path}),
        );
        converge(v6.as_ref(), &t).await;
        assert!(!read(&path).contains("ip6-allnodes"));
    }

    #[tokio::test]
    async fn an_unterminated_last_line_is_ended_before_appending() {
        let t = LocalTransport::new("t");
        let (_d, path) = file_with("127.0.0.1 localhost");
        let r = res(
            KIND,
            json!({"ip": "fe80::1", "names": ["link"], "path": path}),
        );
        converge(r.as_ref(), &t).await;
        assert_eq!(read(&path), "127.0.0.1 localhost\nfe80::1\tlink\n");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({"names": ["a"]}), "ip");
        bad_args(KIND, json!({"ip": "10.0.0.256", "names": ["a"]}), "ip");
        bad_args(KIND, json!({"ip": "db.example.com", "names": ["a"]}), "ip");
        bad_args(KIND, json!({"ip": "10.0.0.1"}), "names");
        bad_args(KIND, json!({"ip": "10.0.0.1", "names": []}), "names");
        bad_args(KIND, json!({"ip": "10.0.0.1", "names": ["a b"]}), "names");
        bad_args(
            KIND,
            json!({"ip": "10.0.0.1", "names": ["a", "a"]}),
            "names",
        );
        bad_args(KIND, json!({"ip": "10.0.0.1", "names": [5]}), "names");
        bad_args(
            KIND,
            json!({"ip": "10.0.0.1", "names": ["a"], "path": "hosts"}),
            "path",
        );
        bad_args(
            KIND,
            json!({"ip": "10.0.0.1", "names": ["a"], "state": "gone"}),
            "state",
        );
        bad_args(
            KIND,
            json!({"ip": "10.0.0.1", "names": ["a"], "bogus": 1}),
            "bogus",
        );
    }
}
