//! Mode, owner and group handling and the atomic write, shared by every resource that manages a path, so
//! they all compare, report and apply attributes the same way.

use super::{bad, ResourceError};
use crate::transport::{sh_quote, Facts};
use base64::Engine as _;
use serde::{Deserialize, Deserializer};

/// A permission mode. Accepts `"0644"`, `"644"` and an unquoted YAML `0644` (which YAML 1.2 reads as the
/// decimal 644: its digits are taken as octal, which is what the author meant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FileMode {
    /// Parses octal digits, rejecting anything that is not a valid mode.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches("0o");
        let v = u32::from_str_radix(t, 8).map_err(|_| format!("mode `{s}` is not octal"))?;
        if v > 0o7777 {
            return Err(format!("mode `{s}` is out of range"));
        }
        Ok(FileMode(v))
    }
}

impl std::fmt::Display for FileMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl<'de> Deserialize<'de> for FileMode {
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
        FileMode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Mode, owner and group of a path; unset fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Attrs {
    /// Permission bits.
    pub mode: Option<FileMode>,
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
            let cur = facts.get("mode").and_then(|c| FileMode::parse(c).ok());
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

    /// The `-m MODE -o OWNER -g GROUP` of an `install` that makes a file or directory with these
    /// attributes in one program, when all three are given: one program on the host instead of three.
    pub fn install_flags(&self) -> Option<String> {
        match (self.mode, &self.owner, &self.group) {
            (Some(m), Some(o), Some(g)) => {
                Some(format!("-m {m} -o {} -g {}", sh_quote(o), sh_quote(g)))
            }
            _ => None,
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
/// validation of the temp file, then rename. The rename is the script's last command, so a script cut
/// short by a dying controller (even in the middle of the content, which `sh` then takes as the whole)
/// never installs half a file: it ends before the rename and its exit removes the temp file. A crash at any point leaves the old
/// file or the new one, never a torn one; an existing file's mode and owner carry over unless `attrs`
/// say otherwise. The temp file is named after `dest` (`.<name>.apim-provision.tmp.*` next to it) and
/// removed on exit or on SIGINT/SIGTERM/SIGHUP; one a SIGKILL left behind is swept by the next write of
/// the same `dest`. The temp file is made only once the whole content has arrived (the heredoc belongs
/// to the block that makes it): while the shell is still reading a large script it cannot run traps,
/// so a temp file made earlier would outlive a SIGTERM.
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
    let (dir, base) = match dest.rsplit_once('/') {
        Some(("", base)) => ("/", base),
        Some((dir, base)) => (dir, base),
        None => (".", dest),
    };
    // With every attribute given, one `install` makes the temp file with them (it unlinks what is at the
    // name and creates it anew, so it follows no symlink); else it is made 0600 by the shell and given what
    // `attrs` set and the old file had.
    let (create, set) = match attrs.install_flags() {
        Some(flags) => (
            format!("install {flags} /dev/null \"$tmp\"\n"),
            String::new(),
        ),
        None => (
            "tmp_umask=$(umask); umask 077; set -C; : > \"$tmp\"; set +C; umask \"$tmp_umask\"\n"
                .to_string(),
            format!("{}{}", carry_over(attrs), attrs.script("\"$tmp\"")),
        ),
    };
    format!(
        r#"set -e
dest={dest}
{{
{temp}base64 -d > "$tmp"
}} <<'__APIM_EOF__'
{body}__APIM_EOF__
{set}{validate}sync "$tmp" 2>/dev/null || true
mv -f "$tmp" "$dest"
trap - EXIT
"#,
        dest = sh_quote(dest),
        temp = temp_next_to_dest(dir, base, &create),
    )
}

/// The line that gives `$tmp` what an existing `$dest` has and `attrs` do not set (its mode, its owner and
/// group), in one `cp --attributes-only`, or a new file the usual 0644 when `attrs` set no mode. An
/// explicit mode goes straight from the temp file's 0600 to the wanted one, so content meant to be private
/// (keys, keystores) is never readable through a default or inherited mode in between. What `attrs` set
/// is left to `Attrs::script`, so no attribute is set twice.
fn carry_over(attrs: &Attrs) -> String {
    let mut keep = Vec::new();
    if attrs.mode.is_none() {
        keep.push("mode");
    }
    if attrs.owner.is_none() || attrs.group.is_none() {
        keep.push("ownership");
    }
    if keep.is_empty() {
        return String::new();
    }
    // No mode set means an existing file's mode is kept, and a new one needs its own.
    let new = match attrs.mode {
        Some(_) => String::new(),
        None => format!("else chmod {} \"$tmp\"; ", FileMode(0o644)),
    };
    format!(
        "if [ -e \"$dest\" ]; then cp --attributes-only --preserve={} \"$dest\" \"$tmp\"; {new}fi\n",
        keep.join(",")
    )
}

/// Shell lines that make `$tmp` a fresh temp file in `dir`, named after `base` (the file it will become),
/// after removing what an earlier, killed write of the same file left; it is removed again when the script
/// exits or is stopped by SIGHUP/SIGINT/SIGTERM. The traps come first and the name is known before the
/// file exists (no `$(mktemp)`, whose subshell a signal can kill after it made the file but before the
/// name came back), so no signal falls between making the file and being able to remove it; `create` is
/// the line that makes it. SIGPIPE is ignored: a stopped run closes the script's output first,
/// and the shell's "Terminated" notice must not kill it before its EXIT trap ran. The directory and name
/// are split here rather than by `dirname`/`basename` on the host, and leftovers are removed only when
/// there are any: programs on the host do only what the controller cannot.
fn temp_next_to_dest(dir: &str, base: &str, create: &str) -> String {
    let prefix = format!(
        "{}/{}",
        sh_quote(dir),
        sh_quote(&format!(".{base}.apim-provision.tmp."))
    );
    format!(
        r#"tmp=
trap '' PIPE
trap 'rm -f "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
for tmp_old in {prefix}*; do if [ -e "$tmp_old" ]; then rm -f -- "$tmp_old"; fi; done
tmp={prefix}$$
{create}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{LocalTransport, Transport};

    #[tokio::test]
    async fn a_write_sweeps_what_a_killed_write_of_the_same_file_left() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("app.conf");
        let left = d.path().join(".app.conf.apim-provision.tmp.AbC123");
        let other = d.path().join(".other.conf.apim-provision.tmp.AbC123");
        std::fs::write(&left, "half").unwrap();
        std::fs::write(&other, "someone else's").unwrap();
        let script = atomic_write_script(
            &dest.display().to_string(),
            b"new\n",
            &Attrs::default(),
            None,
        );
        let out = LocalTransport::new("t").run(&script).await.unwrap();
        assert_eq!(out.status, 0, "{}", out.tail());
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n");
        assert!(!left.exists(), "the leftover of this file is still there");
        assert!(other.exists(), "another file's temp file was removed");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn a_write_cut_short_anywhere_leaves_the_old_file_and_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("app.conf");
        std::fs::write(&dest, "old\n").unwrap();
        let content = "new content\n".repeat(200);
        let script = atomic_write_script(
            &dest.display().to_string(),
            content.as_bytes(),
            &Attrs::default(),
            None,
        );
        let rename = script.find("mv -f").expect("the script renames");
        let host = LocalTransport::new("t");
        // Every line boundary and a cut inside a line: in the body, after it, just before the rename.
        let cuts = script[..rename]
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .chain([script.len() / 2 + 3, rename]);
        for cut in cuts {
            host.run(&script[..cut]).await.unwrap();
            assert_eq!(
                std::fs::read_to_string(&dest).unwrap(),
                "old\n",
                "cut at {cut}"
            );
            let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
            assert_eq!(names.len(), 1, "a temp file is left after a cut at {cut}");
        }
        let out = host.run(&script).await.unwrap();
        assert_eq!(out.status, 0, "{}", out.tail());
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), content);
    }
}
