//! Mode, owner and group handling and the atomic write, shared by every resource that manages a path, so
//! they all compare, report and apply attributes the same way.

use super::{bad, ResourceError};
use crate::transport::{sh_quote, Facts};
use base64::Engine as _;
use serde::{Deserialize, Deserializer};

/// A permission mode. Accepts `"0644"`, `"644"` and an unquoted YAML `0644` (which YAML 1.2 reads as the
/// decimal 644: its digits are taken as octal, which is what the author meant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses octal digits, rejecting anything that is not a valid mode.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches("0o");
        let v = u32::from_str_radix(t, 8).map_err(|_| format!("mode `{s}` is not octal"))?;
        if v > 0o7777 {
            return Err(format!("mode `{s}` is out of range"));
        }
        Ok(Mode(v))
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "mode must be octal, got {other}"
                )))
            }
        };
        Mode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Mode, owner and group of a path; unset fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Attrs {
    /// Permission bits.
    pub mode: Option<Mode>,
    /// Owning user name.
    pub owner: Option<String>,
    /// Owning group name.
    pub group: Option<String>,
}

impl Attrs {
    /// What differs between these attributes and the probed ones (`fact_stat` facts).
    pub fn changes(&self, facts: &Facts) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = self.mode {
            let cur = facts.get("mode").and_then(|c| Mode::parse(c).ok());
            if cur != Some(m) {
                let was = cur.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                out.push(format!("mode {was} -> {m}"));
            }
        }
        for (key, want) in [("owner", &self.owner), ("group", &self.group)] {
            if let Some(w) = want {
                let cur = facts.get(key).unwrap_or("-");
                if cur != w {
                    out.push(format!("{key} {cur} -> {w}"));
                }
            }
        }
        out
    }

    /// These attributes with the fields `later` sets taken from it: what a path looks like after two
    /// writers in turn, for the plan's view of the host.
    pub fn overlay(&self, later: &Attrs) -> Attrs {
        Attrs {
            mode: later.mode.or(self.mode),
            owner: later.owner.clone().or_else(|| self.owner.clone()),
            group: later.group.clone().or_else(|| self.group.clone()),
        }
    }

    /// The probed `fact_stat` facts as they will be after a write with these attributes: the fields set
    /// here replace the probed ones.
    pub fn onto(&self, facts: &mut Facts) {
        if let Some(m) = self.mode {
            facts.set("mode", &format!("{:o}", m.0));
        }
        if let Some(o) = &self.owner {
            facts.set("owner", o);
        }
        if let Some(g) = &self.group {
            facts.set("group", g);
        }
    }

    /// Shell lines setting these attributes on `path_expr` (an already quoted word or `"$var"`).
    pub fn script(&self, path_expr: &str) -> String {
        let mut s = String::new();
        if let Some(m) = self.mode {
            s.push_str(&format!("chmod {m} {path_expr}\n"));
        }
        match (&self.owner, &self.group) {
            (Some(o), Some(g)) => s.push_str(&format!(
                "chown {} {path_expr}\n",
                sh_quote(&format!("{o}:{g}"))
            )),
            (Some(o), None) => s.push_str(&format!("chown {} {path_expr}\n", sh_quote(o))),
            (None, Some(g)) => s.push_str(&format!("chgrp {} {path_expr}\n", sh_quote(g))),
            (None, None) => {}
        }
        s
    }
}

/// Checks a `validate:` command for the `%s` placeholder, so a mistyped one fails before any host.
pub fn check_validate(kind: &str, validate: &Option<String>) -> Result<(), ResourceError> {
    match validate {
        Some(v) if !v.contains("%s") => Err(bad(kind, format!("validate `{v}` must contain %s"))),
        _ => Ok(()),
    }
}

/// A script that writes `content` to `dest` atomically: temp file in the same directory, fsync, optional
/// validation of the temp file, then rename. A crash at any point leaves the old file or the new one,
/// never a torn one; an existing file's mode and owner carry over unless `attrs` say otherwise.
pub fn atomic_write_script(
    dest: &str,
    content: &[u8],
    attrs: &Attrs,
    validate: Option<&str>,
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    let mut body = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        body.push('\n');
    }
    let validate = validate
        .map(|v| {
            format!(
                "if ! {} >&2; then echo \"validation failed: {}\" >&2; exit 1; fi\n",
                v.replace("%s", "\"$tmp\""),
                v.replace('"', "'")
            )
        })
        .unwrap_or_default();
    format!(
        r#"set -e
dest={dest}
tmp=$(mktemp "$(dirname "$dest")/.apim-provision.XXXXXX")
trap 'rm -f "$tmp"' EXIT
base64 -d > "$tmp" <<'__APIM_EOF__'
{body}__APIM_EOF__
if [ -e "$dest" ]; then {keep_mode}chown --reference="$dest" "$tmp"; else chmod {new_mode} "$tmp"; fi
{attrs}{validate}sync "$tmp" 2>/dev/null || true
mv -f "$tmp" "$dest"
trap - EXIT
"#,
        dest = sh_quote(dest),
        attrs = attrs.script("\"$tmp\""),
        // An explicit mode goes straight from mktemp's 0600 to the wanted one, so content meant to be
        // private (keys, keystores) is never readable through a default or inherited mode in between.
        keep_mode = match attrs.mode {
            Some(_) => "",
            None => "chmod --reference=\"$dest\" \"$tmp\"; ",
        },
        new_mode = attrs.mode.unwrap_or(Mode(0o644)),
    )
}
