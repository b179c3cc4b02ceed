//! `unarchive`: an archive (.zip, .tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.bz2/.tbz2) unpacked into a
//! directory on the host. `creates` is mandatory: a path that exists once the archive was unpacked is the
//! only cheap way to know an unpack already happened, and it is what keeps re-runs from unpacking again.
//!
//! `dest` must exist unless `create_dest: true`; a missing `dest` is not a plan error because an earlier
//! task of the same run may create it, so apply reports it instead.

use super::{
    bad, checksum, parse_args, Action, BuildCtx, Change, Effect, Guard, Reads, Resource,
    ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;

const KIND: &str = "unarchive";

/// `remote_src` the Ansible way (`remote_src: true`, `src` is then a host path) or as the host path
/// itself.
#[derive(Deserialize)]
#[serde(untagged)]
enum RemoteSrc {
    Flag(bool),
    Path(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    src: Option<String>,
    remote_src: Option<RemoteSrc>,
    /// Checks a controller `src` (empty: no check, so a module can pass an unset variable).
    sha256: Option<String>,
    dest: String,
    creates: String,
    #[serde(default)]
    create_dest: bool,
    owner: Option<String>,
    group: Option<String>,
}

/// Where the archive comes from.
enum Source {
    /// A controller file, uploaded next to `dest` first.
    Controller(PathBuf),
    /// A file already on the host (downloaded by `get_url`, say).
    Host(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Zip,
    Tar,
    TarGz,
    TarXz,
    TarBz2,
}

impl Format {
    /// Tells the format from the file name, as the archive's tools would not say it any better.
    fn of(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        let ends = |sufs: &[&str]| sufs.iter().any(|s| n.ends_with(s));
        if ends(&[".zip"]) {
            Some(Format::Zip)
        } else if ends(&[".tar.gz", ".tgz"]) {
            Some(Format::TarGz)
        } else if ends(&[".tar.xz", ".txz"]) {
            Some(Format::TarXz)
        } else if ends(&[".tar.bz2", ".tbz2"]) {
            Some(Format::TarBz2)
        } else if ends(&[".tar"]) {
            Some(Format::Tar)
        } else {
            None
        }
    }

    /// The extraction command for `"$archive"` into `"$work"`. Tar does not restore the archive's owners
    /// (they are whoever built it): files belong to the applying user, or to `owner`/`group`.
    fn command(self) -> &'static str {
        match self {
            Format::Zip => r#"unzip -q -o "$archive" -d "$work" </dev/null"#,
            Format::Tar => r#"tar -x --no-same-owner -f "$archive" -C "$work""#,
            Format::TarGz => r#"tar -xz --no-same-owner -f "$archive" -C "$work""#,
            Format::TarXz => r#"tar -xJ --no-same-owner -f "$archive" -C "$work""#,
            Format::TarBz2 => r#"tar -xj --no-same-owner -f "$archive" -C "$work""#,
        }
    }
}

struct Unarchive {
    source: Source,
    format: Format,
    dest: String,
    creates: String,
    create_dest: bool,
    owner: Option<String>,
    group: Option<String>,
}

/// The `unarchive` entry of `TYPES`: finds a controller `src`, tells the format from its name and
/// checks the paths before any host is touched.
pub(super) fn build(args: Value, ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let sha256 = checksum::parse_optional(KIND, &a.sha256)?;
    let source = match (a.src, a.remote_src) {
        (Some(src), None | Some(RemoteSrc::Flag(false))) => {
            let path = ctx
                .find("files", &src)
                .map_err(|e| bad(KIND, format!("src: {e}")))?;
            if let Some(want) = &sha256 {
                checksum::verify_file(KIND, &path, want, ctx.digests)?;
            }
            Source::Controller(path)
        }
        (Some(src), Some(RemoteSrc::Flag(true))) | (None, Some(RemoteSrc::Path(src))) => {
            if !src.starts_with('/') {
                return Err(bad(
                    KIND,
                    format!("remote_src: `{src}` must be an absolute path on the host"),
                ));
            }
            if sha256.is_some() {
                return Err(bad(
                    KIND,
                    "sha256 checks a controller `src`; pin a host file where it is downloaded (get_url)",
                ));
            }
            Source::Host(src)
        }
        (Some(_), Some(RemoteSrc::Path(_))) => {
            return Err(bad(
                KIND,
                "give the host path as `remote_src: PATH` or as `src` with `remote_src: true`, not both",
            ))
        }
        (None, _) => {
            return Err(bad(
                KIND,
                "`src` (a controller file) or `remote_src` (a path on the host) is required",
            ))
        }
    };
    let name = match &source {
        Source::Controller(p) => p.display().to_string(),
        Source::Host(p) => p.clone(),
    };
    let format = Format::of(&name).ok_or_else(|| {
        bad(
            KIND,
            format!("src: cannot tell the format of `{name}` (.zip, .tar, .tar.gz, .tgz, .tar.xz, .txz, .tar.bz2, .tbz2)"),
        )
    })?;
    for (field, path) in [("dest", &a.dest), ("creates", &a.creates)] {
        if !path.starts_with('/') {
            return Err(bad(
                KIND,
                format!("{field} `{path}` must be an absolute path"),
            ));
        }
    }
    Ok(Box::new(Unarchive {
        source,
        format,
        dest: a.dest,
        creates: a.creates,
        create_dest: a.create_dest,
        owner: a.owner,
        group: a.group,
    }))
}

impl Unarchive {
    fn src_name(&self) -> String {
        match &self.source {
            Source::Controller(p) => p.display().to_string(),
            Source::Host(p) => p.clone(),
        }
    }

    /// The top-level entry of `dest` that `creates` lives in, if it lives in `dest`. It is moved into place
    /// last, so an unpack interrupted while moving never leaves `creates` in place with its siblings
    /// missing (which would make every later run skip the unpack).
    fn creates_top(&self) -> Option<&str> {
        let base = self.dest.trim_end_matches('/');
        self.creates
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split('/').find(|c| !c.is_empty()))
    }

    /// Makes or checks `dest`.
    fn prepare_script(&self) -> String {
        let mkdir = if self.create_dest {
            "mkdir -p -- \"$dest\"\n"
        } else {
            ""
        };
        format!(
            r#"set -e
dest={dest}
{mkdir}if [ ! -d "$dest" ]; then echo "dest $dest does not exist (create it first or set create_dest: true)" >&2; exit 1; fi"#,
            dest = sh_quote(&self.dest),
        )
    }

    /// Unpacks into a temp dir inside `dest` and renames the top-level entries into place (merging into
    /// directories that already exist), so a crash mid-extraction never leaves a half-unpacked tree at
    /// the final path; then checks that `creates` now exists. `archive` is a shell word: a quoted path,
    /// or `"$upload"`.
    fn extract_script(&self, archive: &str) -> String {
        let uploaded = matches!(self.source, Source::Controller(_));
        let need_unzip = if self.format == Format::Zip {
            "command -v unzip >/dev/null 2>&1 || { echo \"unzip is not installed on the host (needed for .zip archives)\" >&2; exit 1; }\n"
        } else {
            ""
        };
        let chown = match (&self.owner, &self.group) {
            (Some(o), Some(g)) => format!("chown -R {} \"$work\"\n", sh_quote(&format!("{o}:{g}"))),
            (Some(o), None) => format!("chown -R {} \"$work\"\n", sh_quote(o)),
            (None, Some(g)) => format!("chgrp -R {} \"$work\"\n", sh_quote(g)),
            (None, None) => String::new(),
        };
        format!(
            r#"set -e
dest={dest}
archive={archive}
creates={creates}
last={last}
work=
cleanup() {{ if [ -n "$work" ]; then rm -rf -- "$work"; fi; {rm_upload}}}
trap cleanup EXIT
if [ ! -f "$archive" ]; then echo "archive $archive does not exist on the host" >&2; exit 1; fi
{need_unzip}work=$(mktemp -d "$dest/.apim-unpack.XXXXXX")
{extract}
{chown}place() {{
  t="$dest/${{1##*/}}"
  if [ -d "$1" ] && [ ! -L "$1" ] && [ -d "$t" ] && [ ! -L "$t" ]; then cp -a -- "$1/." "$t/"; else mv -fT -- "$1" "$t"; fi
}}
for e in "$work"/* "$work"/.[!.]* "$work"/..?*; do
  if [ ! -e "$e" ] && [ ! -L "$e" ]; then continue; fi
  if [ "${{e##*/}}" = "$last" ]; then continue; fi
  place "$e"
done
if [ -n "$last" ] && {{ [ -e "$work/$last" ] || [ -L "$work/$last" ]; }}; then place "$work/$last"; fi
if [ ! -e "$creates" ] && [ ! -L "$creates" ]; then echo "archive did not create $creates" >&2; exit 1; fi
"#,
            dest = sh_quote(&self.dest),
            archive = archive,
            creates = sh_quote(&self.creates),
            last = sh_quote(self.creates_top().unwrap_or_default()),
            rm_upload = if uploaded {
                "rm -f -- \"$archive\"; "
            } else {
                ""
            },
            extract = self.format.command(),
        )
    }
}

#[async_trait]
impl Resource for Unarchive {
    fn archive(&self) -> Option<(&std::path::Path, &str)> {
        match &self.source {
            Source::Controller(p) => Some((p.as_path(), self.dest.as_str())),
            Source::Host(_) => None,
        }
    }

    fn describe(&self) -> String {
        format!("unarchive {} -> {}", self.src_name(), self.dest)
    }

    fn probe(&self) -> String {
        format!(
            "c={c}\nd={d}\nif [ -e \"$c\" ] || [ -L \"$c\" ]; then fact created yes; fi\n\
             if [ -d \"$d\" ]; then fact dest directory; elif [ -e \"$d\" ]; then fact dest other; else fact dest absent; fi",
            c = sh_quote(&self.creates),
            d = sh_quote(&self.dest)
        )
    }

    fn reads(&self) -> Reads {
        Reads::Paths(vec![self.creates.clone()])
    }

    /// The unpacked tree: the top directory of `creates` below `dest` (a pack unpacks into one
    /// versioned directory), or `dest` itself when the marker lies elsewhere.
    fn effects(&self, _change: &Change) -> Vec<Effect> {
        let dest = self.dest.trim_end_matches('/');
        let top = self
            .creates
            .strip_prefix(&format!("{dest}/"))
            .and_then(|rest| rest.split('/').next())
            .map_or_else(|| self.dest.clone(), |first| format!("{dest}/{first}"));
        vec![Effect::Touch(top)]
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let mut change = if facts.is("created", "yes") {
            Change::none()
        } else if facts.is("dest", "other") {
            return Err(ResourceError::Failed(format!(
                "{} exists and is not a directory",
                self.dest
            )));
        } else {
            let mut details = Vec::new();
            if self.create_dest && facts.is("dest", "absent") {
                details.push(format!("create directory {}", self.dest));
            }
            details.push(format!("unpack {} into {}", self.src_name(), self.dest));
            let what = format!("unpacking {} into {}", self.src_name(), self.dest);
            let not_yet = Guard::File {
                path: self.creates.clone(),
                sha256: None,
            };
            let unpack = match &self.source {
                Source::Host(p) => {
                    Step::run(what.clone(), Vec::new(), self.extract_script(&sh_quote(p)))
                }
                Source::Controller(local) => Step::Upload {
                    what: what.clone(),
                    local: local.clone(),
                    dir: self.dest.clone(),
                    guards: Vec::new(),
                    script: self.extract_script("\"$upload\""),
                },
            };
            Change::new(Action::Create, details)
                .then(Step::run(what, vec![not_yet], self.prepare_script()))
                .then(unpack)
        };
        change
            .result
            .insert("dest".into(), self.dest.clone().into());
        change
            .result
            .insert("creates".into(), self.creates.clone().into());
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, build_plain, converge, plan_now, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::process::Command;

    /// A tree `pkg/README`, `pkg/bin/run` and a top-level `.hidden`, packed as `name` (zip or tar.gz).
    fn archive(dir: &Path, name: &str) -> String {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("pkg/bin")).unwrap();
        std::fs::write(tree.join("pkg/README"), "readme").unwrap();
        std::fs::write(tree.join("pkg/bin/run"), "#!/bin/sh").unwrap();
        std::fs::write(tree.join(".hidden"), "h").unwrap();
        let out = dir.join(name);
        let status = if name.ends_with(".zip") {
            Command::new("zip")
                .arg("-qr")
                .arg(&out)
                .args(["pkg", ".hidden"])
                .current_dir(&tree)
                .status()
        } else {
            Command::new("tar")
                .arg("-czf")
                .arg(&out)
                .args(["-C", &tree.display().to_string(), "pkg", ".hidden"])
                .status()
        };
        assert!(status.expect("zip/tar runs").success());
        out.display().to_string()
    }

    /// Entries of `dir`, sorted, to check that no temp file or directory was left behind.
    fn entries(dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn unpacks_a_tarball_once_then_plans_nothing() {
        let t = LocalTransport::new("t");
        let work = tempfile::tempdir().unwrap();
        let src = archive(work.path(), "pkg.tar.gz");
        let dest = work.path().join("opt");
        std::fs::create_dir(&dest).unwrap();
        let dest = dest.display().to_string();
        let r = res(
            KIND,
            json!({"src": src, "dest": dest, "creates": format!("{dest}/pkg/README")}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(first.details, vec![format!("unpack {src} into {dest}")]);
        assert_eq!(second.action, Action::None);
        assert_eq!(entries(&dest), vec![".hidden", "pkg"]);
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/pkg/bin/run")).unwrap(),
            "#!/bin/sh"
        );
    }

    #[tokio::test]
    async fn unpacks_a_zip_with_an_owner_and_merges_into_existing_dirs() {
        let t = LocalTransport::new("t");
        let work = tempfile::tempdir().unwrap();
        let src = archive(work.path(), "pkg.zip");
        let dest = work.path().join("opt").display().to_string();
        std::fs::create_dir_all(format!("{dest}/pkg")).unwrap();
        std::fs::write(format!("{dest}/pkg/local.conf"), "mine").unwrap();
        let r = res(
            KIND,
            json!({"src": src, "dest": dest, "creates": format!("{dest}/pkg/bin/run"),
                   "owner": "nobody", "group": "nogroup"}),
        );
        let (_, second) = converge(r.as_ref(), &t).await;
        assert_eq!(second.action, Action::None);
        assert_eq!(
            entries(&format!("{dest}/pkg")),
            vec!["README", "bin", "local.conf"]
        );
        let meta = std::fs::metadata(format!("{dest}/pkg/bin/run")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(entries(&dest), vec![".hidden", "pkg"]);
    }

    #[tokio::test]
    async fn a_host_archive_is_unpacked_in_both_spellings_and_kept() {
        let t = LocalTransport::new("t");
        let work = tempfile::tempdir().unwrap();
        let src = archive(work.path(), "pkg.tar.gz");
        for (i, args) in [
            json!({"src": src, "remote_src": true}),
            json!({"remote_src": src}),
        ]
        .into_iter()
        .enumerate()
        {
            let dest = work.path().join(format!("d{i}")).display().to_string();
            let mut args = args;
            args["dest"] = dest.clone().into();
            args["creates"] = format!("{dest}/pkg").into();
            args["create_dest"] = true.into();
            let r = res(KIND, args);
            let (first, second) = converge(r.as_ref(), &t).await;
            assert_eq!(
                first.details,
                vec![
                    format!("create directory {dest}"),
                    format!("unpack {src} into {dest}")
                ]
            );
            assert_eq!(second.action, Action::None);
            assert!(Path::new(&src).exists(), "a host archive is not removed");
        }
    }

    #[tokio::test]
    async fn a_missing_dest_fails_at_apply_and_names_it() {
        let t = LocalTransport::new("t");
        let work = tempfile::tempdir().unwrap();
        let src = archive(work.path(), "pkg.tar.gz");
        let dest = work.path().join("nope").display().to_string();
        let r = res(
            KIND,
            json!({"src": src, "dest": dest, "creates": format!("{dest}/pkg")}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(change.action, Action::Create);
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("dest {dest} does not exist")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_archive_that_does_not_create_creates_fails_and_cleans_up() {
        let t = LocalTransport::new("t");
        let work = tempfile::tempdir().unwrap();
        let src = archive(work.path(), "pkg.tar.gz");
        let dest = work.path().join("opt");
        std::fs::create_dir(&dest).unwrap();
        let dest = dest.display().to_string();
        let creates = format!("{dest}/pkg/VERSION");
        let r = res(KIND, json!({"src": src, "dest": dest, "creates": creates}));
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("archive did not create {creates}")),
            "{err}"
        );
        assert_eq!(entries(&dest), vec![".hidden", "pkg"]);
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("a.tar.gz");
        std::fs::write(&src, b"").unwrap();
        let src = src.display().to_string();
        bad_args(KIND, json!({"src": src, "dest": "/opt"}), "creates");
        bad_args(KIND, json!({"src": src, "creates": "/opt/x"}), "dest");
        let empty = crate::resources::sha256_hex(b"");
        let pinned =
            |sha: &str| json!({"src": src, "dest": "/opt", "creates": "/opt/x", "sha256": sha});
        res(KIND, pinned(&empty));
        res(KIND, pinned(""));
        bad_args(KIND, pinned(&"0".repeat(64)), "a.tar.gz");
        bad_args(KIND, pinned("0"), "sha256");
        bad_args(
            KIND,
            json!({"remote_src": "/tmp/a.zip", "dest": "/opt", "creates": "/opt/x", "sha256": empty}),
            "sha256",
        );
        bad_args(
            KIND,
            json!({"dest": "/opt", "creates": "/opt/x"}),
            "remote_src",
        );
        bad_args(
            KIND,
            json!({"src": src, "dest": "opt", "creates": "/opt/x"}),
            "dest",
        );
        bad_args(
            KIND,
            json!({"src": src, "dest": "/opt", "creates": "x"}),
            "creates",
        );
        bad_args(
            KIND,
            json!({"src": "/nonexistent/a.zip", "dest": "/opt", "creates": "/opt/x"}),
            "src",
        );
        bad_args(
            KIND,
            json!({"remote_src": "/tmp/a.rar", "dest": "/opt", "creates": "/opt/x"}),
            "src",
        );
        bad_args(
            KIND,
            json!({"src": src, "remote_src": "/tmp/a.zip", "dest": "/opt", "creates": "/opt/x"}),
            "remote_src",
        );
        bad_args(
            KIND,
            json!({"remote_src": "tmp/a.zip", "dest": "/opt", "creates": "/opt/x"}),
            "remote_src",
        );
        bad_args(
            KIND,
            json!({"src": src, "dest": "/opt", "creates": "/opt/x", "list_files": true}),
            "list_files",
        );
        assert!(build_plain(
            KIND,
            json!({"remote_src": "/tmp/A.TGZ", "dest": "/opt", "creates": "/opt/x"})
        )
        .is_ok());
    }
}
