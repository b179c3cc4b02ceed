//! `package`: OS packages installed or removed with the host's own manager (apt on Debian/Ubuntu, dnf or
//! yum on RHEL-likes). Only the packages that differ are touched: an installed package is never reinstalled
//! or upgraded, which is what keeps a converged host at "nothing to do".
//!
//! The apt cache is refreshed only on the way to installing something: when there are no lists at all, or
//! when `update_cache: true` and they are older than `cache_valid_time`. A stale cache is never a change on
//! its own, so a converged host keeps planning nothing as the cache ages.

use super::{
    bad, one_or_many, parse_args, Action, BuildCtx, Change, Guard, Resource, ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "package";

/// Where apt keeps its package lists; their presence and the directory's mtime tell how fresh they are.
const APT_LISTS: &str = "/var/lib/apt/lists";

/// Shell that sets `mgr` (apt, dnf, yum or none), defines `installed NAME` for it, and `lists_age DIR`
/// (seconds since apt's lists were refreshed, or `missing`). Shared by the probe and the apply step's
/// guard so both judge "installed" the same way (on apt the probe asks dpkg once for all its names, for
/// the same status `installed` reads).
const DETECT: &str = r#"if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
  mgr=apt
  installed() { case "$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null)" in *" installed"*) return 0;; esac; return 1; }
elif command -v rpm >/dev/null 2>&1 && command -v dnf >/dev/null 2>&1; then
  mgr=dnf; installed() { rpm -q --quiet "$1"; }
elif command -v rpm >/dev/null 2>&1 && command -v yum >/dev/null 2>&1; then
  mgr=yum; installed() { rpm -q --quiet "$1"; }
else
  mgr=none
fi
lists_age() {
  if [ -z "$(find "$1" -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]; then echo missing; return 0; fi
  now=$(date +%s); t=0
  for s in $(stat -c %Y -- "$1" /var/lib/apt/periodic/update-success-stamp 2>/dev/null); do if [ "$s" -gt "$t" ]; then t=$s; fi; done
  echo $(( now - t ))
}
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    #[serde(alias = "installed")]
    Present,
    #[serde(alias = "removed")]
    Absent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(deserialize_with = "one_or_many", alias = "pkg")]
    name: Vec<String>,
    #[serde(default)]
    state: State,
    #[serde(default)]
    update_cache: bool,
    #[serde(default = "default_cache_valid_time")]
    cache_valid_time: u64,
}

fn default_cache_valid_time() -> u64 {
    3600
}

struct Package {
    names: Vec<String>,
    state: State,
    update_cache: bool,
    cache_valid_time: u64,
    /// [`APT_LISTS`]; a field so tests can point it at a scratch directory.
    lists_dir: String,
}

/// The `package` entry of `TYPES`: checks the package names before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if a.name.is_empty() {
        return Err(bad(KIND, "name: give at least one package"));
    }
    let mut names: Vec<String> = Vec::new();
    for n in a.name {
        let ok = n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_' | ':' | '~')
            });
        if !ok {
            return Err(bad(
                KIND,
                format!("name `{n}` is not a package name (versions and globs are not supported)"),
            ));
        }
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(Box::new(Package {
        names,
        state: a.state,
        update_cache: a.update_cache,
        cache_valid_time: a.cache_valid_time,
        lists_dir: APT_LISTS.into(),
    }))
}

impl Package {
    /// The packages whose state differs, per the probe.
    fn todo<'a>(&'a self, facts: &Facts) -> Vec<&'a str> {
        self.names
            .iter()
            .filter(|n| facts.is(&format!("pkg.{n}"), "installed") == (self.state == State::Absent))
            .map(String::as_str)
            .collect()
    }

    /// Why apt's cache would be refreshed before installing, if it would.
    fn cache_refresh(&self, lists: Option<&str>) -> Option<String> {
        match lists {
            Some("missing") => Some("update apt cache (no package lists yet)".into()),
            Some(age) => {
                let age: u64 = age.parse().ok()?;
                (self.update_cache && age > self.cache_valid_time)
                    .then(|| format!("update apt cache (lists are {age}s old)"))
            }
            None => None,
        }
    }

    /// Installs or removes exactly `todo` with `manager`, refreshing apt's lists first when `refresh`.
    fn script(&self, manager: &str, todo: &[&str], refresh: bool) -> String {
        let todo: Vec<String> = todo.iter().map(|n| sh_quote(n)).collect();
        let todo = todo.join(" ");
        match (manager, self.state) {
            ("apt", State::Present) => format!(
                r#"set -e
export DEBIAN_FRONTEND=noninteractive
{update}apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {todo} </dev/null"#,
                update = if refresh {
                    format!(
                        "apt-get -q update </dev/null\ntouch {}\n",
                        sh_quote(&self.lists_dir)
                    )
                } else {
                    String::new()
                },
            ),
            ("apt", State::Absent) => format!(
                "set -e\nexport DEBIAN_FRONTEND=noninteractive\napt-get remove -y -q -o DPkg::Lock::Timeout=120 {todo} </dev/null"
            ),
            (mgr, state) => format!(
                "{mgr} {} -y {todo} </dev/null",
                if state == State::Present { "install" } else { "remove" }
            ),
        }
    }

    /// A read-only script listing which of the packages are installed, one per line: what the change was
    /// decided from, checked again right before it is made.
    fn installed_list(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| sh_quote(n)).collect();
        format!(
            "{DETECT}for p in {}; do if installed \"$p\"; then echo \"$p\"; fi; done",
            names.join(" ")
        )
    }
}

#[async_trait]
impl Resource for Package {
    fn describe(&self) -> String {
        format!("package {}", self.names.join(" "))
    }

    fn probe(&self) -> String {
        let names: Vec<String> = self.names.iter().map(|n| sh_quote(n)).collect();
        format!(
            r#"{DETECT}fact manager "$mgr"
if [ "$mgr" = apt ]; then
  for p in {names}; do fact "pkg.$p" missing; done
  dpkg-query -W -f='${{binary:Package}} ${{Package}} ${{db:Status-Status}}\n' -- {names} 2>/dev/null | while read -r b p st; do
    if [ "$st" = installed ]; then for n in {names}; do if [ "$n" = "$b" ] || [ "$n" = "$p" ]; then fact "pkg.$n" installed; fi; done; fi
  done
  fact apt_lists "$(lists_age {lists})"
elif [ "$mgr" != none ]; then
  for p in {names}; do if installed "$p"; then fact "pkg.$p" installed; else fact "pkg.$p" missing; fi; done
fi"#,
            names = names.join(" "),
            lists = sh_quote(&self.lists_dir),
        )
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let manager = match facts.get("manager") {
            Some(m @ ("apt" | "dnf" | "yum")) => m,
            _ => return Err(ResourceError::Failed(
                "no supported package manager on the host (apt-get with dpkg, or dnf/yum with rpm)"
                    .into(),
            )),
        };
        let todo = self.todo(facts);
        let mut change = if todo.is_empty() {
            Change::none()
        } else {
            let mut details = Vec::new();
            let (action, verb, doing) = match self.state {
                State::Present => (Action::Create, "install", "installing"),
                State::Absent => (Action::Delete, "remove", "removing"),
            };
            let refresh = if self.state == State::Present && manager == "apt" {
                self.cache_refresh(facts.get("apt_lists"))
            } else {
                None
            };
            let script = self.script(manager, &todo, refresh.is_some());
            details.extend(refresh);
            details.extend(todo.iter().map(|n| format!("{verb} {n}")));
            let installed: String = self
                .names
                .iter()
                .filter(|n| facts.is(&format!("pkg.{n}"), "installed"))
                .map(|n| format!("{n}\n"))
                .collect();
            let what = self.describe();
            let guard = Guard::output(&what, &self.installed_list(), &installed);
            Change::new(action, details).then(Step::run(
                format!("{doing} {}", todo.join(" ")),
                vec![guard],
                script,
            ))
        };
        change.result.insert("manager".into(), manager.into());
        change.result.insert("changed_packages".into(), todo.into());
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, facts_from, plan_now, res, FakeTools};
    use super::super::{Action, Resource};
    use super::{Package, State, KIND};
    use crate::transport::LocalTransport;
    use serde_json::json;

    #[tokio::test]
    async fn plans_only_the_missing_packages() {
        let r = res(KIND, json!({"name": ["tree", "jq", "curl"]}));
        let facts = facts_from(&[
            ("manager", "apt"),
            ("pkg.tree", "missing"),
            ("pkg.jq", "missing"),
            ("pkg.curl", "installed"),
            ("apt_lists", "100"),
        ])
        .await;
        let c = r.plan(&facts).unwrap();
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.details, vec!["install tree", "install jq"]);
    }

    #[tokio::test]
    async fn installed_packages_plan_nothing_however_old_the_cache() {
        let r = res(KIND, json!({"name": "curl", "update_cache": true}));
        let facts = facts_from(&[
            ("manager", "apt"),
            ("pkg.curl", "installed"),
            ("apt_lists", "999999"),
        ])
        .await;
        assert_eq!(r.plan(&facts).unwrap().action, Action::None);
    }

    #[tokio::test]
    async fn the_cache_is_refreshed_when_missing_or_stale_and_asked_for() {
        let facts = |lists: &'static str| async move {
            facts_from(&[
                ("manager", "apt"),
                ("pkg.jq", "missing"),
                ("apt_lists", lists),
            ])
            .await
        };
        let plain = res(KIND, json!({"name": "jq"}));
        let fresh = res(
            KIND,
            json!({"name": "jq", "update_cache": true, "cache_valid_time": 600}),
        );
        assert_eq!(
            plain.plan(&facts("missing").await).unwrap().details,
            vec!["update apt cache (no package lists yet)", "install jq"]
        );
        assert_eq!(
            plain.plan(&facts("7200").await).unwrap().details,
            vec!["install jq"]
        );
        assert_eq!(
            fresh.plan(&facts("7200").await).unwrap().details,
            vec!["update apt cache (lists are 7200s old)", "install jq"]
        );
        assert_eq!(
            fresh.plan(&facts("60").await).unwrap().details,
            vec!["install jq"]
        );
    }

    #[tokio::test]
    async fn absent_removes_only_installed_packages_and_dnf_has_no_cache_step() {
        let r = res(
            KIND,
            json!({"name": ["a", "b"], "state": "absent", "update_cache": true}),
        );
        let facts = facts_from(&[
            ("manager", "dnf"),
            ("pkg.a", "installed"),
            ("pkg.b", "missing"),
        ])
        .await;
        let c = r.plan(&facts).unwrap();
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.details, vec!["remove a"]);
        let none = facts_from(&[("manager", "none")]).await;
        let err = r.plan(&none).unwrap_err().to_string();
        assert!(err.contains("no supported package manager"), "{err}");
    }

    /// Reads this machine's dpkg database (read-only) and plans without applying.
    #[tokio::test]
    async fn the_probe_reads_the_real_dpkg_database() {
        let t = LocalTransport::new("t");
        if !std::path::Path::new("/usr/bin/dpkg-query").exists() {
            return;
        }
        let r = res(
            KIND,
            json!({"name": ["dpkg", "apim-provision-no-such-package"]}),
        );
        let c = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(c.result["manager"], "apt");
        assert_eq!(
            c.details.last().map(String::as_str),
            Some("install apim-provision-no-such-package")
        );
        assert!(!c.details.iter().any(|d| d == "install dpkg"));
    }

    /// A fake apt (dpkg-query and apt-get backed by marker files) to run the real probe and apply
    /// scripts end to end without touching this machine's packages.
    async fn fake_apt() -> FakeTools {
        let fake = FakeTools::new();
        let db = fake.dir().join("db");
        std::fs::create_dir(&db).unwrap();
        std::fs::write(db.join("present"), "").unwrap();
        let db = db.display().to_string();
        fake.tool(
            "dpkg-query",
            &format!(
                r#"case "$2" in
  *db:Status-Status*) shift 3; for n; do [ -e "{db}/$n" ] && echo "$n $n installed"; done; exit 0 ;;
esac
for last; do :; done
[ -e "{db}/$last" ] || exit 1
echo "install ok installed""#
            ),
        )
        .await;
        fake.tool(
            "apt-get",
            &format!(
                r#"echo "$*" >> "{db}/log"
op=
for a; do
  case "$a" in -*|*=*) ;; update|install|remove) op=$a ;; *) [ "$op" = install ] && : > "{db}/$a"; [ "$op" = remove ] && rm -f "{db}/$a" ;; esac
done
exit 0"#
            ),
        )
        .await;
        fake
    }

    fn with_lists(names: &[&str], state: State, lists: &str) -> Package {
        Package {
            names: names.iter().map(|s| s.to_string()).collect(),
            state,
            update_cache: false,
            cache_valid_time: 3600,
            lists_dir: lists.into(),
        }
    }

    #[tokio::test]
    async fn installs_what_is_missing_through_apt_then_plans_nothing() {
        let fake = fake_apt().await;
        let lists = tempfile::tempdir().unwrap();
        let lists_dir = lists.path().display().to_string();
        let r = with_lists(&["present", "new"], State::Present, &lists_dir);
        let (first, second) = converge(&r, &fake).await;
        assert_eq!(
            first.details,
            vec!["update apt cache (no package lists yet)", "install new"]
        );
        assert_eq!(second.action, Action::None);
        let log = std::fs::read_to_string(fake.dir().join("db/log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert_eq!(lines[0], "-q update");
        assert!(lines[1].starts_with("install -y -q --no-install-recommends"));
        assert!(lines[1].ends_with(" new"), "{log}");

        let r = with_lists(&["present", "new", "gone"], State::Absent, &lists_dir);
        let change = plan_now(&r, &fake).await.unwrap();
        assert_eq!(change.details, vec!["remove present", "remove new"]);
        let out = r.apply(&change, &fake).await.unwrap();
        assert_eq!(out["changed_packages"], json!(["present", "new"]));
        assert_eq!(plan_now(&r, &fake).await.unwrap().action, Action::None);
    }

    /// Apply runs the planned install only while the packages are as probed: one installed by someone
    /// else in between makes it refuse (apt would otherwise upgrade it), instead of deciding again.
    #[tokio::test]
    async fn a_package_installed_after_the_plan_is_refused_not_reinstalled() {
        let fake = fake_apt().await;
        let lists = tempfile::tempdir().unwrap();
        let r = with_lists(
            &["present", "new"],
            State::Present,
            &lists.path().display().to_string(),
        );
        let change = plan_now(&r, &fake).await.unwrap();
        std::fs::write(fake.dir().join("db/new"), "").unwrap();
        let err = r.apply(&change, &fake).await.unwrap_err().to_string();
        assert!(
            err.contains("package present new changed on the host since it was probed"),
            "{err}"
        );
        assert!(!fake.dir().join("db/log").exists(), "apt-get ran");
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({}), "name");
        bad_args(KIND, json!({"name": []}), "name");
        bad_args(KIND, json!({"name": "a b"}), "name");
        bad_args(KIND, json!({"name": "nginx=1.2"}), "name");
        bad_args(KIND, json!({"name": "-x"}), "name");
        bad_args(KIND, json!({"name": [1]}), "name");
        bad_args(KIND, json!({"name": "a", "state": "latest"}), "state");
        bad_args(
            KIND,
            json!({"name": "a", "cache_valid_time": -1}),
            "cache_valid_time",
        );
        bad_args(
            KIND,
            json!({"name": "a", "update_cache": "yes"}),
            "update_cache",
        );
        bad_args(KIND, json!({"name": "a", "purge": true}), "purge");
    }
}
