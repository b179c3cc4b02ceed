//! `mount`: a filesystem's `/etc/fstab` entry and whether it is mounted, like Ansible's `mount` module, so
//! shared storage (an NFS export for the product's deployment directory) survives reboots and converges
//! like every other resource. The fstab edit goes through the text editors' machinery (diffed in the plan,
//! re-read and written atomically in apply); what the kernel has mounted comes from `findmnt`.
//!
//! States: `mounted` (fstab entry and mounted), `present` (fstab entry only), `unmounted` (fstab entry
//! kept, not mounted), `absent` (no fstab entry, not mounted).

use super::edit::{body, lines, Edit, TextFile};
use super::{bad, parse_args, Action, Attrs, BuildCtx, Change, Registered, Step};
use super::{Resource, ResourceError};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "mount";

/// The `state:` argument: which of fstab entry and live mount must exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    Mounted,
    Present,
    Unmounted,
    Absent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "name")]
    path: String,
    src: Option<String>,
    fstype: Option<String>,
    #[serde(default = "default_opts")]
    opts: String,
    #[serde(default)]
    dump: u8,
    #[serde(default)]
    passno: u8,
    #[serde(default)]
    state: State,
    #[serde(default = "default_fstab")]
    fstab: String,
}

fn default_opts() -> String {
    "defaults".into()
}

fn default_fstab() -> String {
    "/etc/fstab".into()
}

struct Mount {
    file: TextFile,
    /// The fstab path again: `mount -T` needs it and `TextFile` keeps its own private.
    fstab: String,
    path: String,
    /// The six fstab fields of the wanted entry; `None` for `unmounted`/`absent` without `src`.
    entry: Option<[String; 6]>,
    state: State,
}

/// The `mount` entry of `TYPES`: checks the path and that every field of the fstab line is given and
/// free of whitespace before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let path = match a.path.trim_end_matches('/') {
        "" if a.path.starts_with('/') => "/".to_string(),
        p => p.to_string(),
    };
    if !path.starts_with('/') {
        return Err(bad(KIND, format!("path `{}` must be absolute", a.path)));
    }
    let needs_entry = matches!(a.state, State::Mounted | State::Present);
    let entry = match (a.src, a.fstype) {
        (Some(src), Some(fstype)) => {
            for (field, v) in [("src", &src), ("fstype", &fstype), ("opts", &a.opts)] {
                if v.is_empty() || v.chars().any(char::is_whitespace) {
                    return Err(bad(
                        KIND,
                        format!("`{field}` must be one non-empty word, got `{v}`"),
                    ));
                }
            }
            Some([
                src,
                fstab_escape(&path),
                fstype,
                a.opts,
                a.dump.to_string(),
                a.passno.to_string(),
            ])
        }
        _ if needs_entry => {
            return Err(bad(
                KIND,
                "state: mounted and present need `src` and `fstype`",
            ))
        }
        _ => None,
    };
    let file = TextFile::new(
        KIND,
        a.fstab.clone(),
        Some(true),
        a.state == State::Absent,
        Attrs::default(),
        None,
    )?;
    Ok(Box::new(Mount {
        file,
        fstab: a.fstab,
        path,
        entry,
        state: a.state,
    }))
}

/// fstab's spelling of a path: blanks and backslashes as octal escapes (`\040`).
fn fstab_escape(path: &str) -> String {
    path.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
}

/// What apply does about the live mount, decided from the probe.
#[derive(Debug, PartialEq, Eq)]
enum MountStep {
    Nothing,
    Mount,
    Unmount,
    /// Mounted from another source or filesystem type: unmount, then mount the fstab entry.
    Replace,
    /// Mounted as wanted but the fstab entry (options) changed: remount so the options apply.
    Remount,
}

/// True when `have` (what the kernel reports) is the filesystem type `want` (what fstab says): NFS
/// mounts written as `nfs` show up as `nfs4` when the server negotiates version 4.
fn same_fstype(want: &str, have: &str) -> bool {
    want == have || (want == "nfs" && have == "nfs4")
}

impl Mount {
    /// Rewrites fstab: the first line for the mount point becomes the wanted entry (unless its fields
    /// already are), later lines for it go, and a missing entry is appended; `absent` removes them all.
    /// `unmounted` without `src` leaves the file alone.
    fn edit(&self, old: &[u8]) -> Edit {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut details = Vec::new();
        let mut placed = false;
        let want = match (self.state, &self.entry) {
            (State::Absent, _) | (_, None) => None,
            (_, Some(e)) => Some(e),
        };
        let keep_all = self.state == State::Unmounted && self.entry.is_none();
        let point = fstab_escape(&self.path);
        for (i, raw) in lines(old).into_iter().enumerate() {
            let text = String::from_utf8_lossy(body(&raw)).into_owned();
            let fields: Vec<&str> = text.split_whitespace().collect();
            let is_ours = !keep_all
                && !fields.first().is_some_and(|f| f.starts_with('#'))
                && fields
                    .get(1)
                    .is_some_and(|p| p.trim_end_matches('/') == point);
            if !is_ours {
                out.push(raw);
                continue;
            }
            match want {
                Some(e) if !placed => {
                    placed = true;
                    let mut have: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
                    have.resize(6, "0".into());
                    if have.as_slice() != e.as_slice() {
                        let new = e.join(" ");
                        details.push(format!("fstab: line {}: `{text}` -> `{new}`", i + 1));
                        out.push(format!("{new}\n").into_bytes());
                    } else {
                        out.push(raw);
                    }
                }
                _ => details.push(format!("fstab: remove line {} `{text}`", i + 1)),
            }
        }
        if let (Some(e), false) = (want, placed) {
            if out.last().is_some_and(|l| !l.ends_with(b"\n")) {
                if let Some(l) = out.last_mut() {
                    l.push(b'\n');
                }
            }
            let new = e.join(" ");
            details.push(format!("fstab: add `{new}`"));
            out.push(format!("{new}\n").into_bytes());
        }
        Edit {
            content: out.concat(),
            details,
        }
    }

    /// What to do about the live mount, given the probe and whether the fstab entry is about to change.
    fn mount_step(&self, facts: &Facts, fstab_changes: bool) -> MountStep {
        let mounted = facts.get("mnt_source");
        match (self.state, mounted, &self.entry) {
            (State::Mounted, None, _) => MountStep::Mount,
            (State::Mounted, Some(src), Some(e)) => {
                let fstype = facts.get("mnt_fstype").unwrap_or_default();
                if src != e[0] || !same_fstype(&e[2], fstype) {
                    MountStep::Replace
                } else if fstab_changes {
                    MountStep::Remount
                } else {
                    MountStep::Nothing
                }
            }
            (State::Unmounted | State::Absent, Some(_), _) => MountStep::Unmount,
            _ => MountStep::Nothing,
        }
    }

    fn src(&self) -> &str {
        self.entry.as_ref().map_or("", |e| e[0].as_str())
    }

    /// The fstab change with the live-mount step added to it.
    fn decide(&self, facts: &Facts) -> Result<(Change, MountStep), ResourceError> {
        let mut change = self.file.plan(facts, &|old| Ok(self.edit(old)))?;
        // The editors' wording is about a file; here the file is a means, so say it in mount terms.
        change.details.retain(|d| d != "create file");
        if change.is_pending() && !change.details.iter().any(|d| d.starts_with("fstab")) {
            change.details.push("fstab: rewrite".into());
        }
        let step = self.mount_step(facts, change.is_pending());
        let (p, src) = (&self.path, self.src());
        let what = match step {
            MountStep::Nothing => None,
            MountStep::Mount => Some(format!("mount {src} on {p}")),
            MountStep::Unmount => Some(format!("unmount {p}")),
            MountStep::Replace => Some(format!(
                "unmount {} from {p}, mount {src} on {p}",
                facts.get("mnt_source").unwrap_or_default()
            )),
            MountStep::Remount => Some(format!("remount {p} with the new options")),
        };
        // Unmounts first (so an entry that goes never leaves a mount fstab no longer knows), then writes
        // fstab, then creates the mount point and mounts from the fstab entry.
        let (pq, fstab) = (sh_quote(p), sh_quote(&self.fstab));
        if matches!(step, MountStep::Unmount | MountStep::Replace) {
            change.steps.insert(
                0,
                Step::run(
                    format!("unmounting {p}"),
                    Vec::new(),
                    format!("umount {pq}"),
                ),
            );
        }
        let mount = match step {
            MountStep::Mount | MountStep::Replace => {
                Some(format!("set -e\nmkdir -p -- {pq}\nmount -T {fstab} {pq}"))
            }
            MountStep::Remount => Some(format!("mount -T {fstab} -o remount {pq}")),
            MountStep::Nothing | MountStep::Unmount => None,
        };
        if let Some(script) = mount {
            change
                .steps
                .push(Step::run(format!("mounting {p}"), Vec::new(), script));
        }
        if let Some(w) = what {
            change.details.push(w);
            if change.action == Action::None {
                change.action = match step {
                    MountStep::Mount => Action::Create,
                    MountStep::Unmount => Action::Delete,
                    _ => Action::Update,
                };
            }
        }
        change.result = Registered::new();
        change
            .result
            .insert("path".into(), self.path.clone().into());
        if let Some(src) = facts.get("mnt_source") {
            change.result.insert("source".into(), src.into());
        }
        Ok((change, step))
    }
}

#[async_trait]
impl Resource for Mount {
    fn describe(&self) -> String {
        format!("mount {}", self.path)
    }

    /// The fstab file (as the editors probe it) and, when the path is itself a mount point, what is
    /// mounted there: `findmnt --target` reports the filesystem containing a path, which for a plain
    /// directory is its parent's, so the target must be the path itself.
    fn probe(&self) -> String {
        format!(
            r#"{fstab}
m={m}
if [ -d "$m" ]; then
  c=$(readlink -f -- "$m")
  findmnt -n -r -o TARGET,SOURCE,FSTYPE,OPTIONS --target "$c" 2>/dev/null | while read -r t s f o; do
    if [ "$t" = "$c" ]; then fact mnt_source "$s"; fact mnt_fstype "$f"; fact mnt_opts "$o"; fi
  done
fi
true"#,
            fstab = self.file.probe(),
            m = sh_quote(&self.path)
        )
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        Ok(self.decide(facts)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, facts_from, plan_now, read, res};
    use super::super::Action;
    use super::KIND;
    use crate::transport::LocalTransport;
    use serde_json::json;

    const FSTAB: &str = "# /etc/fstab\nUUID=1234 / ext4 errors=remount-ro 0 1\n";

    fn fstab_with(content: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fstab");
        std::fs::write(&path, content).unwrap();
        (dir, path.display().to_string())
    }

    #[tokio::test]
    async fn present_adds_the_fstab_entry_once() {
        let t = LocalTransport::new("t");
        let (_d, fstab) = fstab_with(FSTAB);
        let r = res(
            KIND,
            json!({"path": "/srv/shared/", "src": "10.0.0.1:/export", "fstype": "nfs",
                   "opts": "rw,hard", "state": "present", "fstab": fstab}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details,
            vec!["fstab: add `10.0.0.1:/export /srv/shared nfs rw,hard 0 0`"]
        );
        assert!(first.diff.is_some());
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&fstab),
            format!("{FSTAB}10.0.0.1:/export /srv/shared nfs rw,hard 0 0\n")
        );
    }

    #[tokio::test]
    async fn a_differing_entry_is_replaced_in_place_and_duplicates_go() {
        let t = LocalTransport::new("t");
        let (_d, fstab) = fstab_with(
            "a:/x /data nfs ro\nUUID=1 / ext4 defaults 0 1\n#a:/x /data nfs ro 0 0\na:/y /data/ nfs rw 0 0\n",
        );
        let r = res(
            KIND,
            json!({"path": "/data", "src": "a:/x", "fstype": "nfs", "state": "present", "fstab": fstab}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec![
                "fstab: line 1: `a:/x /data nfs ro` -> `a:/x /data nfs defaults 0 0`",
                "fstab: remove line 4 `a:/y /data/ nfs rw 0 0`",
            ]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(
            read(&fstab),
            "a:/x /data nfs defaults 0 0\nUUID=1 / ext4 defaults 0 1\n#a:/x /data nfs ro 0 0\n"
        );
    }

    #[tokio::test]
    async fn an_equal_entry_with_other_spacing_is_left_alone() {
        let t = LocalTransport::new("t");
        let (_d, fstab) = fstab_with("a:/x\t/data  nfs defaults\n");
        let r = res(
            KIND,
            json!({"path": "/data", "src": "a:/x", "fstype": "nfs", "state": "present", "fstab": fstab}),
        );
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);
    }

    #[tokio::test]
    async fn absent_removes_the_entry_and_a_missing_fstab_is_created_for_present() {
        let t = LocalTransport::new("t");
        let (_d, fstab) = fstab_with(&format!("{FSTAB}a:/x /data nfs defaults 0 0\n"));
        let r = res(
            KIND,
            json!({"path": "/data", "state": "absent", "fstab": fstab}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec!["fstab: remove line 3 `a:/x /data nfs defaults 0 0`"]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(read(&fstab), FSTAB);

        let missing = format!("{fstab}.new");
        let r = res(
            KIND,
            json!({"path": "/data", "src": "a:/x", "fstype": "nfs", "state": "present", "fstab": missing}),
        );
        let (first, _) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(read(&missing), "a:/x /data nfs defaults 0 0\n");
    }

    #[tokio::test]
    async fn mounted_plans_the_mount_from_the_probe() {
        let r = res(
            KIND,
            json!({"path": "/data", "src": "a:/x", "fstype": "nfs", "fstab": "/nonexistent/fstab"}),
        );
        let entry = "a:/x /data nfs defaults 0 0\n";
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        let with_entry = [("type", "file"), ("size", "28")];
        let mut facts: Vec<(&str, &str)> = with_entry.to_vec();
        let content = b64(entry);
        facts.push(("content", &content));
        let not_mounted = r.plan(&facts_from(&facts).await).unwrap();
        assert_eq!(not_mounted.action, Action::Create);
        assert_eq!(not_mounted.details, vec!["mount a:/x on /data"]);

        let mut mounted = facts.clone();
        mounted.extend([("mnt_source", "a:/x"), ("mnt_fstype", "nfs4")]);
        assert_eq!(
            r.plan(&facts_from(&mounted).await).unwrap().action,
            Action::None
        );

        let mut other = facts.clone();
        other.extend([("mnt_source", "b:/y"), ("mnt_fstype", "nfs4")]);
        assert_eq!(
            r.plan(&facts_from(&other).await).unwrap().details,
            vec!["unmount b:/y from /data, mount a:/x on /data"]
        );

        let gone = res(
            KIND,
            json!({"path": "/data", "state": "unmounted", "fstab": "/nonexistent/fstab"}),
        );
        let change = gone.plan(&facts_from(&mounted).await).unwrap();
        assert_eq!(change.action, Action::Delete);
        assert_eq!(change.details, vec!["unmount /data"]);
    }

    #[tokio::test]
    async fn a_plain_directory_is_not_taken_for_a_mount_point() {
        let t = LocalTransport::new("t");
        let (d, fstab) = fstab_with("");
        let point = d.path().join("point");
        std::fs::create_dir(&point).unwrap();
        let r = res(
            KIND,
            json!({"path": point, "src": "a:/x", "fstype": "nfs", "fstab": fstab}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        assert!(change
            .details
            .contains(&format!("mount a:/x on {}", point.display())));
    }

    #[test]
    fn bad_arguments_are_named() {
        bad_args(
            KIND,
            json!({"path": "data", "src": "a", "fstype": "nfs"}),
            "path",
        );
        bad_args(KIND, json!({"path": "/data", "fstype": "nfs"}), "src");
        bad_args(
            KIND,
            json!({"path": "/data", "src": "a", "fstype": "nfs", "opts": "rw, hard"}),
            "opts",
        );
        bad_args(
            KIND,
            json!({"path": "/data", "src": "a", "fstype": "nfs", "state": "gone"}),
            "state",
        );
    }
}
