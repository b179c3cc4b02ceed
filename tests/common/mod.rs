//! Shared helpers for the CLI integration tests: a throwaway project directory and a way to run the real
//! binary on it.

#![allow(dead_code)]

pub mod lab;
pub mod mariadb;
pub mod vagrant;
pub mod vm;
pub mod wso2;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch project: inventory, playbooks and modules written by the test, hosts' files under `root`.
pub struct Project {
    pub dir: tempfile::TempDir,
    /// Environment every run of the binary gets (a `{ env: NAME }` reference's variable).
    env: std::cell::RefCell<Vec<(String, String)>>,
}

/// What a run of the binary printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for "never appears anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// JSON lines of stdout.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    /// The summary object of a `--json` run.
    pub fn summary(&self) -> serde_json::Value {
        self.json()
            .into_iter()
            .find(|e| e["type"] == "summary")
            .unwrap_or_else(|| panic!("no summary in:\n{}", self.stdout))
    }

    /// Checks a `--json` apply succeeded and added or changed nothing (the idempotency promise).
    pub fn assert_no_changes(&self) {
        assert_eq!(self.code, 0, "{}", self.all());
        let s = self.summary();
        assert_eq!(
            (s["add"].as_u64(), s["change"].as_u64()),
            (Some(0), Some(0)),
            "a re-apply changed something: {s}"
        );
    }

    /// `host task` of every task event of a `--json` run that is a change (pending in plan, made in
    /// apply), sorted: events come in completion order, which differs between plan and apply.
    pub fn changed_tasks(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .json()
            .into_iter()
            .filter(|e| e["type"] == "task")
            .filter(|e| {
                !matches!(
                    e["status"].as_str(),
                    Some("unchanged") | Some("skipped") | Some("not_notified")
                )
            })
            .map(|e| format!("{} {}", e["host"], e["task"]))
            .collect();
        out.sort();
        out
    }

    /// Checks a plan against the apply that followed it: every change the plan was sure of was made, and
    /// every change made was in the plan, sure or "known after apply" (a check after a change, such
    /// as a health gate whose probe the plan cannot run).
    pub fn assert_plan_matches(&self, applied: &Run) {
        let planned = self.changed_tasks();
        let made = applied.changed_tasks();
        let unsure: Vec<String> = self
            .json()
            .into_iter()
            .filter(|e| e["type"] == "task" && e["status"] == "known_after_apply")
            .map(|e| format!("{} {}", e["host"], e["task"]))
            .collect();
        let mut rest = planned.clone();
        for m in &made {
            let i = rest.iter().position(|p| p == m);
            assert!(
                i.is_some(),
                "{m} changed but was not planned\nplanned: {planned:?}\nmade: {made:?}"
            );
            rest.remove(i.unwrap());
        }
        for r in &rest {
            assert!(
                unsure.contains(r),
                "planned for sure but not made: {r}\nplanned: {planned:?}\nmade: {made:?}"
            );
        }
    }

    /// The JSON task event for `host`/`task`.
    pub fn event(&self, host: &str, task: &str) -> serde_json::Value {
        self.json()
            .into_iter()
            .find(|e| e["type"] == "task" && e["host"] == host && e["task"] == task)
            .unwrap_or_else(|| panic!("no event for {host}/{task} in:\n{}", self.stdout))
    }

    /// The `fields` of every drift object of a `drift --json` run, joined by spaces, sorted: the
    /// set of what drifted, to compare with what a test moved by hand.
    pub fn drifted(&self, fields: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = self
            .json()
            .into_iter()
            .filter(|e| e["type"] == "drift")
            .map(|e| {
                let values: Vec<&str> = fields.iter().map(|f| e[*f].as_str().unwrap()).collect();
                values.join(" ")
            })
            .collect();
        v.sort();
        v
    }
}

impl Project {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            env: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where host `h`'s files go (the inventories below set `root` to this).
    pub fn root(&self, h: &str) -> PathBuf {
        self.path().join("hosts").join(h)
    }

    /// Writes `rel` under the project; `@ROOT@` in the text becomes the hosts directory.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let text = text.replace("@ROOT@", &self.path().join("hosts").display().to_string());
        std::fs::write(&p, text).unwrap();
        p
    }

    /// An inventory of local hosts named `hosts`, each with `root` = its own directory, plus `extra` YAML
    /// appended at top level.
    pub fn local_inventory(&self, hosts: &[&str], extra: &str) -> PathBuf {
        let mut s = String::from("playbook: playbooks/main.yaml\nhosts:\n");
        for h in hosts {
            s.push_str(&format!(
                "  {h}:\n    connection: local\n    vars:\n      root: \"@ROOT@/{h}\"\n"
            ));
        }
        s.push_str(extra);
        self.write("inventory.yaml", &s)
    }

    /// The age identity the project's runs decrypt its secrets files with (`APIM_AGE_IDENTITY` is set
    /// to it when it exists), kept in the project as an operator keeps theirs in `~/.ssh`.
    pub fn identity(&self) -> PathBuf {
        self.path().join("age-identity.txt")
    }

    /// Encrypts `entries` as the secrets file `rel` for the project's identity, made on first use.
    pub fn seal_secrets(&self, rel: &str, entries: &[(&str, &str)]) -> PathBuf {
        use apim_provision::secrets::store;
        use std::os::unix::fs::PermissionsExt;
        let id = self.identity();
        if !id.exists() {
            let (text, _) = store::new_identity();
            std::fs::write(&id, text).unwrap();
            std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let key: age::x25519::Identity = std::fs::read_to_string(&id)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap()
            .parse()
            .unwrap();
        let recipients = store::recipients(&key.to_public().to_string(), "test").unwrap();
        let plain: String = entries
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", serde_json::to_string(v).unwrap()))
            .collect();
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        store::write(&path, plain.as_bytes(), &recipients).unwrap();
        path
    }

    /// Sets `key=value` in the environment of every later run of the binary.
    pub fn set_env(&self, key: &str, value: &str) {
        self.env.borrow_mut().push((key.into(), value.into()));
    }

    /// Runs the binary with `args` in the project directory.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = Command::new(env!("CARGO_BIN_EXE_apim-provision"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .env_remove("APIM_AGE_IDENTITY");
        if self.identity().exists() {
            c.env("APIM_AGE_IDENTITY", self.identity());
        }
        for (k, v) in self.env.borrow().iter() {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run apim-provision");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the binary with `args` and its standard output closed before it writes (`… | head -0`), as a
    /// pager or `head` that quits early leaves it.
    pub fn run_stdout_closed(&self, args: &[&str]) -> Run {
        // The reading end is closed before the child starts: closed after the spawn, a fast child
        // could write its output into the pipe first and succeed.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let child = Command::new(env!("CARGO_BIN_EXE_apim-provision"))
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_BACKTRACE")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run apim-provision");
        let out = child.wait_with_output().expect("wait for apim-provision");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// True when no host directory was created: nothing was touched.
    pub fn untouched(&self) -> bool {
        !self.path().join("hosts").exists()
    }
}
