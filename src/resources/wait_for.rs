//! `wait_for`: block until a TCP port accepts connections (or closes), a URL answers with success (or
//! stops), or a path appears (or goes), optionally with a line matching `search_regex`, checked from the
//! target host itself. Plays use it between starting a server and using it; a condition already met plans
//! nothing, so a converged run does not wait.

use super::{
    bad, execute, parse_args, Action, BuildCtx, Change, Registered, Resource, ResourceError, Step,
};
use crate::transport::{sh_quote, Facts, Transport};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "wait_for";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Started,
    Stopped,
    Present,
    Absent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    port: Option<u16>,
    host: Option<String>,
    url: Option<String>,
    ca_cert: Option<String>,
    validate_certs: Option<bool>,
    path: Option<String>,
    search_regex: Option<String>,
    state: Option<State>,
    #[serde(default = "default_timeout")]
    timeout: u64,
    #[serde(default)]
    delay: u64,
    /// Ansible calls it `sleep`.
    #[serde(default = "default_interval", alias = "sleep")]
    interval: u64,
}

fn default_timeout() -> u64 {
    300
}

fn default_interval() -> u64 {
    1
}

/// What is waited for.
enum Target {
    Port {
        host: String,
        port: u16,
    },
    Url {
        url: String,
        /// curl's TLS option: `--cacert FILE`, `-k`, or nothing for the system's CAs.
        tls: String,
    },
    Path {
        path: String,
        /// A POSIX extended regex (see [`check_ere`]) some line of the file must match.
        regex: Option<String>,
    },
}

struct WaitFor {
    target: Target,
    /// True to wait for the condition to hold (started/present), false for it to stop holding.
    up: bool,
    timeout: u64,
    delay: u64,
    interval: u64,
}

/// The `wait_for` entry of `TYPES`: checks that exactly one condition is given, with states and TLS
/// options that fit it, before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    if a.host.is_some() && a.port.is_none() {
        return Err(bad(KIND, "`host` only goes with `port`"));
    }
    if a.search_regex.is_some() && a.path.is_none() {
        return Err(bad(KIND, "`search_regex` only goes with `path`"));
    }
    if (a.ca_cert.is_some() || a.validate_certs.is_some()) && a.url.is_none() {
        return Err(bad(
            KIND,
            "`ca_cert` and `validate_certs` only go with `url`",
        ));
    }
    let target = match (a.port, a.url, a.path) {
        (Some(port), None, None) => {
            let host = a.host.unwrap_or_else(|| "127.0.0.1".into());
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
            if host.is_empty() || !host.chars().all(ok) {
                return Err(bad(
                    KIND,
                    format!("host `{host}` must be a host name or an IP address"),
                ));
            }
            Target::Port { host, port }
        }
        (None, Some(url), None) => {
            let https = url.starts_with("https://");
            if !(https || url.starts_with("http://"))
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(bad(
                    KIND,
                    format!("url `{url}` must be an http or https URL without spaces"),
                ));
            }
            let tls = match (a.ca_cert, a.validate_certs) {
                (Some(_), _) | (None, Some(false)) if !https => {
                    return Err(bad(
                        KIND,
                        "`ca_cert` and `validate_certs` only apply to https URLs",
                    ))
                }
                (Some(_), Some(false)) => {
                    return Err(bad(
                        KIND,
                        "`ca_cert` with `validate_certs: false` contradict each other",
                    ))
                }
                (Some(ca), _) if !ca.starts_with('/') => {
                    return Err(bad(
                        KIND,
                        format!("ca_cert `{ca}` must be an absolute path on the host"),
                    ))
                }
                (Some(ca), _) => format!("--cacert {}", sh_quote(&ca)),
                (None, Some(false)) => "-k".to_string(),
                (None, _) => String::new(),
            };
            Target::Url { url, tls }
        }
        (None, None, Some(path)) => {
            if !path.starts_with('/') {
                return Err(bad(KIND, format!("path `{path}` must be absolute")));
            }
            if let Some(re) = &a.search_regex {
                if a.state == Some(State::Absent) {
                    return Err(bad(
                        KIND,
                        "`search_regex` waits for a match, so it goes with state present only",
                    ));
                }
                check_ere(re).map_err(|e| bad(KIND, format!("search_regex `{re}`: {e}")))?;
            }
            Target::Path {
                path,
                regex: a.search_regex,
            }
        }
        _ => {
            return Err(bad(
                KIND,
                "exactly one of `port`, `url` or `path` is required",
            ))
        }
    };
    let is_path = matches!(target, Target::Path { .. });
    let up = match (a.state, is_path) {
        (None, _) | (Some(State::Started), false) | (Some(State::Present), true) => true,
        (Some(State::Stopped), false) | (Some(State::Absent), true) => false,
        (Some(_), true) => return Err(bad(KIND, "state for `path` is present or absent")),
        (Some(_), false) => {
            return Err(bad(
                KIND,
                "state for `port` and `url` is started or stopped",
            ))
        }
    };
    if a.timeout == 0 || a.interval == 0 {
        return Err(bad(KIND, "timeout and interval must be at least 1 second"));
    }
    Ok(Box::new(WaitFor {
        target,
        up,
        timeout: a.timeout,
        delay: a.delay,
        interval: a.interval,
    }))
}

impl WaitFor {
    /// The condition, in words, for plans and the timeout message.
    fn what(&self) -> String {
        match (&self.target, self.up) {
            (Target::Port { host, port }, true) => {
                format!("port {host}:{port} to accept connections")
            }
            (Target::Port { host, port }, false) => format!("port {host}:{port} to close"),
            (Target::Url { url, .. }, true) => format!("{url} to answer with success"),
            (Target::Url { url, .. }, false) => format!("{url} to stop answering"),
            (Target::Path { path, regex: None }, true) => format!("{path} to exist"),
            (
                Target::Path {
                    path,
                    regex: Some(re),
                },
                _,
            ) => {
                format!("{path} to have a line matching `{re}`")
            }
            (Target::Path { path, .. }, false) => format!("{path} to be removed"),
        }
    }

    /// Shell defining `check`, which succeeds when the port is open, the URL answers 2xx/3xx, or the path
    /// exists (and has a line matching the regex); it fails the script when a tool it needs is missing or
    /// grep cannot read the file, rather than waiting in vain.
    fn check(&self) -> String {
        match &self.target {
            Target::Port { host, port } => format!(
                r#"for c in bash timeout; do command -v "$c" >/dev/null 2>&1 || {{ echo "wait_for port needs $c on the host" >&2; exit 1; }}; done
check() {{ timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' {host} {port} >/dev/null 2>&1; }}"#,
                host = sh_quote(host)
            ),
            Target::Url { url, tls } => format!(
                r#"command -v curl >/dev/null 2>&1 || {{ echo "wait_for url needs curl on the host" >&2; exit 1; }}
check() {{ curl -fsS -o /dev/null --max-time 5 {tls} -K - >/dev/null 2>&1 <<'__APIM_URL__'
url = "{url}"
__APIM_URL__
}}"#,
                url = url.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            Target::Path { path, regex: None } => {
                format!("check() {{ [ -e {} ]; }}", sh_quote(path))
            }
            // The C locale makes grep match bytes, as the ASCII-only pattern expects, whatever the
            // host's locale; exit 2 is grep's own error (an unreadable file).
            Target::Path {
                path,
                regex: Some(re),
            } => format!(
                r#"command -v grep >/dev/null 2>&1 || {{ echo "wait_for search_regex needs grep on the host" >&2; exit 1; }}
check() {{
  [ -f {p} ] || return 1
  LC_ALL=C grep -Eq -e {re} -- {p}
  case $? in 0) return 0 ;; 1) return 1 ;; *) echo "wait_for: grep could not read "{p} >&2; exit 1 ;; esac
}}"#,
                p = sh_quote(path),
                re = sh_quote(re)
            ),
        }
    }
}

impl WaitFor {
    /// Polls on the host, so the wait costs one round trip however long it lasts. Like Ansible, the
    /// timeout counts from before the delay.
    fn poll(&self) -> String {
        format!(
            r#"{check}
msg={msg}
start=$(date +%s)
sleep {delay}
while :; do
  if check; then up=yes; else up=no; fi
  if [ "$up" = {want} ]; then echo "@elapsed $(( $(date +%s) - start ))"; exit 0; fi
  if [ $(( $(date +%s) - start )) -ge {timeout} ]; then echo "$msg" >&2; exit 3; fi
  sleep {interval}
done
"#,
            check = self.check(),
            msg = sh_quote(&format!(
                "timed out after {}s waiting for {}",
                self.timeout,
                self.what()
            )),
            delay = self.delay,
            want = if self.up { "yes" } else { "no" },
            timeout = self.timeout,
            interval = self.interval,
        )
    }
}

/// POSIX character classes that both glibc's `grep -E` and the `regex` crate know.
const CLASSES: &[&str] = &[
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit",
];

/// Checks that `re` is in the part of POSIX extended regex syntax that `grep -E` on the host and the
/// `regex` crate on the controller read the same way, then compiles it with the crate, so a bad pattern
/// fails before any host is touched instead of a wait that can never succeed (or succeeds on the wrong
/// line). The host's grep is what matches: it is on every Debian system, where a controller-side matcher
/// would need the file's content shipped back on every poll.
///
/// Accepted: ASCII literals, `.`, `^`, `$`, `|`, groups `( )`, `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`,
/// bracket expressions with ranges and `[:class:]` names, and `\` before one of `.[]{}()*+?^$|\`.
/// Refused, because the two read them differently or only one has them: other escapes (`\d`, `\w`,
/// `\s`, `\b`, `\n`, back-references), a backslash or `[` inside brackets (literal for grep, an
/// escape or a nested class for the crate), `&&`, `--` and `~~` in brackets, `(?` groups and flags,
/// a quantifier right after another (`+?` is lazy for the crate, optional for grep) or after nothing to
/// repeat (`^*`: a literal `*` for grep), and control or
/// non-ASCII characters (a newline would make grep read two patterns).
fn check_ere(re: &str) -> Result<(), String> {
    if re.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = re.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return Err(format!(
            "{c:?}: only printable ASCII is accepted (grep on the host matches bytes)"
        ));
    }
    let b = re.as_bytes();
    let mut i = 0;
    // What the previous token was: something a quantifier repeats, a quantifier, or neither (the
    // start, `(`, `|`, `^`, `$`, after which grep reads `*` as a literal and the crate does not).
    let mut prev = Prev::Start;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'*' | b'+' | b'?' | b'{') {
            match prev {
                Prev::Atom => {}
                Prev::Quantifier => {
                    return Err(format!(
                        "`{}` right after a quantifier: grep -E and the regex crate read that differently; group it, as in `(a+)?`",
                        c as char
                    ))
                }
                Prev::Start => {
                    return Err(format!(
                        "`{}` repeats nothing: grep -E reads it as a literal there, escape it (`\\{}`)",
                        c as char, c as char
                    ))
                }
            }
            i += match c {
                b'{' => b[i..].iter().position(|&c| c == b'}').map_or(1, |n| n + 1),
                _ => 1,
            };
            prev = Prev::Quantifier;
            continue;
        }
        match c {
            b'\\' => match b.get(i + 1) {
                Some(e) if b".[]{}()*+?^$|\\".contains(e) => i += 2,
                Some(e) => {
                    return Err(format!(
                        "`\\{}` is not POSIX extended regex syntax (write `[[:digit:]]` for `\\d`, `[[:space:]]` for `\\s`, `[[:alnum:]_]` for `\\w`)",
                        *e as char
                    ))
                }
                None => return Err("ends with a lone `\\`".into()),
            },
            b'[' => i = bracket(b, i)?,
            b'(' if b.get(i + 1) == Some(&b'?') => {
                return Err("`(?` groups and flags are not POSIX extended regex syntax".into())
            }
            _ => i += 1,
        }
        prev = match c {
            b'(' | b'|' | b'^' | b'$' => Prev::Start,
            _ => Prev::Atom,
        };
    }
    regex::Regex::new(re).map(drop).map_err(|e| match e {
        regex::Error::Syntax(s) => {
            let last = s.lines().last().unwrap_or_default().trim();
            last.strip_prefix("error: ").unwrap_or(last).to_string()
        }
        other => other.to_string(),
    })
}

/// The token before a quantifier, in [`check_ere`].
#[derive(Clone, Copy)]
enum Prev {
    Start,
    Atom,
    Quantifier,
}

/// Checks the bracket expression starting at `b[open]` (`[`), returning the index after its `]`.
fn bracket(b: &[u8], open: usize) -> Result<usize, String> {
    let mut i = open + 1;
    if b.get(i) == Some(&b'^') {
        i += 1;
    }
    if b.get(i) == Some(&b']') {
        i += 1;
    }
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        match c {
            b']' => return Ok(i + 1),
            b'\\' => {
                return Err(
                    "a `\\` inside `[...]` is a literal for grep -E but an escape for the regex crate; put `\\` in `[[:punct:]]` or move it out".into(),
                )
            }
            b'[' if next == Some(b':') => {
                let name_end = b[i + 2..]
                    .windows(2)
                    .position(|w| w == b":]")
                    .ok_or("`[:` without its `:]`")?;
                let name = std::str::from_utf8(&b[i + 2..i + 2 + name_end]).unwrap_or_default();
                if !CLASSES.contains(&name) {
                    return Err(format!(
                        "`[:{name}:]` is not one of the POSIX classes {}",
                        CLASSES.join(", ")
                    ));
                }
                i += name_end + 4;
            }
            b'[' => {
                return Err(
                    "a `[` inside `[...]` (other than `[:class:]`) is a literal for grep -E but a nested class for the regex crate".into(),
                )
            }
            b'&' | b'-' | b'~' if next == Some(c) => {
                return Err(format!(
                    "`{0}{0}` inside `[...]` is a set operation for the regex crate only",
                    c as char
                ))
            }
            _ => i += 1,
        }
    }
    Err("`[` without its `]`".into())
}

#[async_trait]
impl Resource for WaitFor {
    fn describe(&self) -> String {
        format!("wait_for {}", self.what())
    }

    fn probe(&self) -> String {
        format!(
            "{}\nif check; then fact up yes; else fact up no; fi",
            self.check()
        )
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let met = facts.is("up", if self.up { "yes" } else { "no" });
        let mut change = if met {
            Change::none()
        } else {
            Change::new(
                Action::Run,
                vec![format!("wait up to {}s for {}", self.timeout, self.what())],
            )
            .then(Step::Capture {
                what: KIND.into(),
                guards: Vec::new(),
                script: self.poll(),
            })
        };
        change.result.insert("elapsed".into(), 0.into());
        Ok(change)
    }

    fn applies_by_steps(&self) -> bool {
        false
    }

    /// Runs the planned poll; what it printed says how long the wait took, which `register:` sees as
    /// `elapsed` (run-time data the plan cannot know).
    async fn apply(
        &self,
        change: &Change,
        host: &dyn Transport,
    ) -> Result<Registered, ResourceError> {
        let out = execute(change, host).await?;
        let elapsed: u64 = out
            .get("stdout")
            .and_then(|v| v.as_str())
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("@elapsed ")?.trim().parse().ok())
            })
            .unwrap_or_default();
        let mut r = change.result.clone();
        r.insert("elapsed".into(), elapsed.into());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, plan_now, res, serve_http, FakeTools};
    use super::super::Action;
    use super::{check_ere, KIND};
    use crate::transport::LocalTransport;
    use serde_json::json;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A loopback port nothing listens on (bound, then released).
    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    /// Starts listening on `port` after `after`, for 30 s.
    fn listen_later(port: u16, after: Duration) {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let _l = TcpListener::bind(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_secs(30));
        });
    }

    #[tokio::test]
    async fn an_open_port_plans_nothing_and_a_late_one_is_waited_for() {
        let t = LocalTransport::new("t");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let r = res(KIND, json!({"port": open}));
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);

        let late = free_port();
        listen_later(late, Duration::from_millis(1500));
        let r = res(KIND, json!({"port": late, "timeout": 20}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Run);
        assert_eq!(
            first.details,
            vec![format!(
                "wait up to 20s for port 127.0.0.1:{late} to accept connections"
            )]
        );
        assert_eq!(second.action, Action::None);
    }

    #[tokio::test]
    async fn waiting_for_a_port_that_never_opens_times_out() {
        let t = LocalTransport::new("t");
        let port = free_port();
        let r = res(KIND, json!({"port": port, "timeout": 1}));
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("wait_for exited 3: timed out after 1s waiting for port 127.0.0.1:{port} to accept connections")
        );
        let closed = res(KIND, json!({"port": port, "state": "stopped"}));
        assert_eq!(
            plan_now(closed.as_ref(), &t).await.unwrap().action,
            Action::None
        );
    }

    #[tokio::test]
    async fn a_path_is_waited_for_until_it_appears_or_goes() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready");
        let p = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            std::fs::write(p, "").unwrap();
        });
        let shown = path.display().to_string();
        let r = res(KIND, json!({"path": shown, "timeout": 20, "delay": 1}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec![format!("wait up to 20s for {shown} to exist")]
        );
        assert_eq!(second.action, Action::None);

        let p = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            std::fs::remove_file(p).unwrap();
        });
        let r = res(
            KIND,
            json!({"path": shown, "state": "absent", "timeout": 20}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Run);
        assert_eq!(second.action, Action::None);
    }

    #[tokio::test]
    async fn a_log_line_is_waited_for_until_it_appears() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("wso2carbon.log");
        let shown = log.display().to_string();
        let re = "WSO2 Carbon started in [[:digit:]]+ sec";
        let args = json!({"path": shown, "search_regex": re, "timeout": 20});
        let p = log.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            std::fs::write(&p, "INFO starting\n").unwrap();
            std::thread::sleep(Duration::from_millis(1200));
            std::fs::write(&p, "INFO starting\nINFO - WSO2 Carbon started in 35 sec\n").unwrap();
        });
        let r = res(KIND, args.clone());
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(
            first.details,
            vec![format!(
                "wait up to 20s for {shown} to have a line matching `{re}`"
            )]
        );
        assert_eq!(second.action, Action::None);

        std::fs::write(&log, "INFO - WSO2 Carbon started in soon sec\n").unwrap();
        let r = res(
            KIND,
            json!({"path": shown, "search_regex": re, "timeout": 1}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(
            change.action,
            Action::Run,
            "a file without a match is waited for"
        );
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("wait_for exited 3: timed out after 1s waiting for {shown} to have a line matching `{re}`")
        );
    }

    #[tokio::test]
    async fn a_pattern_is_shipped_to_grep_as_one_literal_argument() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("it's a log");
        std::fs::write(&log, "say 'x' $(touch pwned) `y` -e\n").unwrap();
        let shown = log.display().to_string();
        let re = "'x' [$][(]touch pwned[)] `y` -e$";
        let r = res(KIND, json!({"path": shown, "search_regex": re}));
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);
        assert!(!dir.path().join("pwned").exists());
        let r = res(KIND, json!({"path": shown, "search_regex": "^-e"}));
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::Run);
    }

    /// A directory is not a file with a matching line (waited for); grep failing to read a file (exit 2,
    /// here from a stand-in grep, since these tests may run as root) fails at once instead of after the
    /// whole timeout.
    #[tokio::test]
    async fn an_unreadable_file_fails_the_wait_instead_of_timing_out() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let shown = dir.path().display().to_string();
        let r = res(KIND, json!({"path": shown, "search_regex": "x"}));
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::Run);

        let fake = FakeTools::new();
        fake.tool("grep", "echo \"grep: $5: Permission denied\" >&2; exit 2")
            .await;
        let file = fake.dir().join("log");
        let r = res(
            KIND,
            json!({"path": file.display().to_string(), "search_regex": "x", "timeout": 60}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(change.action, Action::Run, "no file yet");
        std::fs::write(&file, "x\n").unwrap();
        let err = plan_now(r.as_ref(), &fake).await.unwrap_err().to_string();
        assert!(err.contains("grep could not read"), "{err}");
        let started = std::time::Instant::now();
        let err = r.apply(&change, &fake).await.unwrap_err().to_string();
        assert!(err.contains("grep could not read"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failed at once"
        );
    }

    /// Every pattern `check_ere` accepts means the same to the `regex` crate and to this machine's
    /// `grep -E` on these lines; every refused one is refused naming why.
    #[test]
    fn accepted_patterns_mean_the_same_to_grep_and_the_crate() {
        let lines = [
            "WSO2 Carbon started in 35 sec",
            "Pass-through HTTPS Listener started on 0.0.0.0:8243",
            "a+b? (c) [d] {e} |f| ^g$ \\h .i",
            "",
            "xy",
            "xay",
            "tab\there",
            "]-[",
        ];
        let accepted = [
            "started in [[:digit:]]+ sec$",
            "^WSO2",
            "Listener started on [0-9.]+:(8243|9443)",
            "a\\+b\\? \\(c\\) \\[d\\] \\{e\\} \\|f\\| \\^g\\$ \\\\h \\.i",
            "x(a)?y",
            "xa{0,1}y",
            "^$",
            "[]-]",
            "[^]a-z[:space:]]+",
            "[[:upper:]]{4}",
            "(^| )[[:alpha:]]+$",
            "tab[[:blank:]]here",
            "^(xy|xay)$",
        ];
        let file = tempfile::NamedTempFile::new().unwrap();
        for re in accepted {
            check_ere(re).unwrap_or_else(|e| panic!("{re}: {e}"));
            let crate_re = regex::Regex::new(re).unwrap();
            for line in lines {
                std::fs::write(file.path(), format!("{line}\n")).unwrap();
                let grep = std::process::Command::new("grep")
                    .env("LC_ALL", "C")
                    .args(["-Eq", "-e", re, "--"])
                    .arg(file.path())
                    .status()
                    .unwrap();
                assert_eq!(
                    grep.code() == Some(0),
                    crate_re.is_match(line),
                    "`{re}` on {line:?}: grep {grep}"
                );
            }
        }
        for (re, why) in [
            ("", "empty"),
            ("started in \\d+", "`\\d` is not POSIX"),
            ("\\bword", "`\\b`"),
            ("a\\", "lone"),
            ("x\ny", "printable ASCII"),
            ("caf\u{e9}", "printable ASCII"),
            ("[\\d]", "inside `[...]`"),
            ("[[a]]", "nested class"),
            ("[a&&b]", "`&&`"),
            ("[a--b]", "`--`"),
            ("[[:word:]]", "not one of the POSIX classes"),
            ("[[:alpha]", "`[:` without"),
            ("[abc", "without its `]`"),
            ("(?i)wso2", "`(?`"),
            ("(?:a)", "`(?`"),
            ("xa+?y", "right after a quantifier"),
            ("xa{2}?y", "right after a quantifier"),
            ("*x", "repeats nothing"),
            ("^*x", "repeats nothing"),
            ("(+x)", "repeats nothing"),
            ("a|?", "repeats nothing"),
            ("(ab", "unclosed group"),
            ("a{2,1}", "invalid repetition"),
            ("\\1", "not POSIX"),
        ] {
            let err = check_ere(re).expect_err(re);
            assert!(err.contains(why), "`{re}`: {err}");
        }
    }

    #[tokio::test]
    async fn a_url_answering_plans_nothing_and_a_dead_one_times_out() {
        let t = LocalTransport::new("t");
        let up = format!("http://127.0.0.1:{}/health", serve_http(b"ok".to_vec()));
        let r = res(KIND, json!({"url": up}));
        assert_eq!(plan_now(r.as_ref(), &t).await.unwrap().action, Action::None);
        let down = format!("http://127.0.0.1:{}/health", free_port());
        let stopped = res(KIND, json!({"url": down, "state": "stopped"}));
        assert_eq!(
            plan_now(stopped.as_ref(), &t).await.unwrap().action,
            Action::None
        );
        let r = res(KIND, json!({"url": down, "timeout": 1}));
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(
            err.starts_with("wait_for exited 3: timed out after 1s waiting for"),
            "{err}"
        );
    }

    /// A child process that is killed and reaped when the test ends, even when it fails.
    struct Server(std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A self-signed loopback TLS server (`openssl s_server`) is trusted through `ca_cert` or with
    /// `validate_certs: false`, and not otherwise.
    #[tokio::test]
    async fn tls_is_verified_against_ca_cert() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success());
        let port = free_port();
        let server = Server(
            std::process::Command::new("openssl")
                .args(["s_server", "-quiet", "-www", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(&cert)
                .arg("-key")
                .arg(&key)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("openssl s_server starts"),
        );
        converge(res(KIND, json!({"port": port, "timeout": 20})).as_ref(), &t).await;
        let url = format!("https://127.0.0.1:{port}/");
        let ca = cert.display().to_string();
        let trusted = res(KIND, json!({"url": url, "ca_cert": ca}));
        let insecure = res(KIND, json!({"url": url, "validate_certs": false}));
        let system = res(KIND, json!({"url": url}));
        let trusted = plan_now(trusted.as_ref(), &t).await;
        let insecure = plan_now(insecure.as_ref(), &t).await;
        let system = plan_now(system.as_ref(), &t).await;
        drop(server);
        assert_eq!(trusted.unwrap().action, Action::None);
        assert_eq!(insecure.unwrap().action, Action::None);
        assert_eq!(system.unwrap().action, Action::Run);
    }

    #[test]
    fn bad_arguments_name_the_field() {
        bad_args(KIND, json!({}), "port");
        bad_args(KIND, json!({"port": 1, "path": "/x"}), "path");
        bad_args(KIND, json!({"port": 70000}), "port");
        bad_args(KIND, json!({"port": 1, "host": "a b"}), "host");
        bad_args(KIND, json!({"path": "/x", "host": "h"}), "host");
        bad_args(KIND, json!({"url": "ftp://x/"}), "url");
        bad_args(
            KIND,
            json!({"url": "http://x/", "ca_cert": "/c"}),
            "ca_cert",
        );
        bad_args(
            KIND,
            json!({"url": "https://x/", "ca_cert": "/c", "validate_certs": false}),
            "validate_certs",
        );
        bad_args(
            KIND,
            json!({"url": "https://x/", "ca_cert": "c"}),
            "ca_cert",
        );
        bad_args(KIND, json!({"port": 1, "ca_cert": "/c"}), "ca_cert");
        bad_args(KIND, json!({"path": "x"}), "path");
        bad_args(KIND, json!({"path": "/x", "state": "started"}), "state");
        bad_args(KIND, json!({"port": 1, "state": "present"}), "state");
        bad_args(KIND, json!({"port": 1, "state": "drained"}), "state");
        bad_args(KIND, json!({"port": 1, "timeout": 0}), "timeout");
        bad_args(KIND, json!({"port": 1, "sleep": 0}), "interval");
        bad_args(
            KIND,
            json!({"port": 1, "search_regex": "x"}),
            "search_regex",
        );
        bad_args(
            KIND,
            json!({"path": "/x", "state": "absent", "search_regex": "x"}),
            "search_regex",
        );
        let reason = bad_args(
            KIND,
            json!({"path": "/x", "search_regex": "started in \\d+ sec"}),
            "search_regex `started in \\d+ sec`",
        );
        assert!(reason.contains("[[:digit:]]"), "{reason}");
        bad_args(
            KIND,
            json!({"path": "/x", "search_regex": "(a"}),
            "search_regex `(a`: unclosed group",
        );
    }
}
