//! Host key checking turned off in an ssh configuration a run uses. The engine runs `ssh -F FILE` when
//! the inventory names an `ssh_config`, which makes ssh read that file only; otherwise ssh reads the
//! user's `~/.ssh/config`. Each host is matched against the `Host` blocks by the address the engine
//! gives ssh, as ssh itself does; the parsing and matching are `ssh2-config`'s.

use super::{Finding, Severity};
use crate::model::location::Location;
use crate::model::{Connection, Inventory};
use ssh2_config::{ParseRule, SshConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Findings for the ssh configuration of every ssh host of `inv`; `home` is where `~/.ssh/config` is.
pub fn check(inv: &Inventory, home: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut configs: BTreeMap<PathBuf, Option<SshConfig>> = BTreeMap::new();
    for h in inv.hosts.iter().filter(|h| h.connection == Connection::Ssh) {
        if h.ssh.known_hosts.as_deref() == Some(Path::new("/dev/null")) {
            let at = inv.at(&format!("hosts.{}.known_hosts", h.name));
            let loc = if at.line == 0 {
                inv.at("ssh.known_hosts")
            } else {
                at
            };
            out.push(no_checking(loc, &h.name, "known_hosts: /dev/null"));
        }
        let file = match (&h.ssh.ssh_config, home) {
            (Some(f), _) => f.clone(),
            (None, Some(home)) => home.join(".ssh/config"),
            (None, None) => continue,
        };
        let config = configs
            .entry(file.clone())
            .or_insert_with(|| parse(&file, home, &mut out));
        let Some(config) = config else { continue };
        let params = config.query(&h.address);
        let field = |k: &str| {
            params
                .unsupported_fields
                .get(k)
                .cloned()
                .unwrap_or_default()
        };
        let strict = field("stricthostkeychecking");
        if strict
            .first()
            .is_some_and(|v| v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("off"))
        {
            let loc = line_of(
                &file,
                config,
                &h.address,
                "stricthostkeychecking",
                &strict[0],
            );
            out.push(no_checking(
                loc,
                &h.name,
                &format!("StrictHostKeyChecking {}", strict[0]),
            ));
        }
        let known = field("userknownhostsfile");
        if known.iter().any(|v| v == "/dev/null") {
            let loc = line_of(&file, config, &h.address, "userknownhostsfile", "/dev/null");
            out.push(no_checking(loc, &h.name, "UserKnownHostsFile /dev/null"));
        }
    }
    out
}

/// The file parsed, `None` (and a finding saying why) when it exists but cannot be read; a missing
/// `~/.ssh/config` is no finding, ssh runs without one.
fn parse(file: &Path, home: Option<&Path>, out: &mut Vec<Finding>) -> Option<SshConfig> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            out.push(unreadable(file, &e.to_string()));
            return None;
        }
    };
    let mut config = SshConfig::default();
    if let Some(home) = home {
        config = config.home_dir(home);
    }
    let rules = ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS;
    match config.parse(&mut text.as_bytes(), rules) {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(unreadable(file, &e.to_string()));
            None
        }
    }
}

fn unreadable(file: &Path, why: &str) -> Finding {
    Finding {
        severity: Severity::Warning,
        check: "ssh-config",
        loc: Location {
            file: file.to_path_buf(),
            line: 0,
        },
        why: format!("the ssh configuration the run uses could not be checked: {why}"),
        fix: "make it a file ssh and lint can read".into(),
        hosts: Vec::new(),
    }
}

fn no_checking(loc: Location, host: &str, what: &str) -> Finding {
    Finding {
        severity: Severity::Warning,
        check: "ssh-host-key",
        loc,
        why: format!(
            "`{what}` turns host key checking off: anyone on the path can pose as the host and receive every secret the run sends"
        ),
        fix: "keep the hosts' keys in a known_hosts file (the inventory's `known_hosts:`) and use `StrictHostKeyChecking yes` (or `accept-new` once)".into(),
        hosts: vec![host.to_string()],
    }
}

/// The line of `file` that sets `key` (lowercase, as ssh2-config names it) for `address`: in the first
/// block, in file order, that matches the address and sets it, which is the one ssh uses. The file alone
/// when the setting came from an included file.
fn line_of(file: &Path, config: &SshConfig, address: &str, key: &str, value: &str) -> Location {
    let at = |line| Location {
        file: file.to_path_buf(),
        line,
    };
    let sets = |h: &ssh2_config::Host| {
        h.params
            .unsupported_fields
            .get(key)
            .and_then(|v| v.first())
            .is_some_and(|v| v == value)
    };
    let Some(index) = config
        .get_hosts()
        .iter()
        .position(|h| h.intersects(address) && sets(h))
    else {
        return at(0);
    };
    let words: Vec<String> = config.get_hosts()[index]
        .pattern
        .iter()
        .map(|c| {
            let w = if c.negated {
                format!("!{}", c.pattern)
            } else {
                c.pattern.clone()
            };
            w.to_ascii_lowercase()
        })
        .collect();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    // The first block ssh2-config returns is what comes before any `Host` line.
    let mut inside = index == 0;
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        let (k, v) = l
            .split_once(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or((l, ""));
        let v = v
            .trim_start_matches(|c: char| c == '=' || c.is_whitespace())
            .trim()
            .trim_matches('"');
        if k.eq_ignore_ascii_case("host") {
            let here: Vec<String> = v.split_whitespace().map(str::to_ascii_lowercase).collect();
            inside = here == words;
        } else if k.eq_ignore_ascii_case("match") {
            inside = false;
        } else if inside && k.eq_ignore_ascii_case(key) && v.eq_ignore_ascii_case(value) {
            return at(i + 1);
        }
    }
    at(0)
}
