//! `wait_for`: block until a TCP port accepts connections (or closes), a URL answers with success (or
//! stops), or a path appears (or goes), checked from the target host itself. Plays use it between starting
//! a server and using it; a condition already met plans nothing, so a converged run does not wait.

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
    Path(String),
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
            Target::Path(path)
        }
        _ => {
            return Err(bad(
                KIND,
                "exactly one of `port`, `url` or `path` is required",
            ))
        }
    };
    let is_path = matches!(target, Target::Path(_));
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
            (Target::Path(p), true) => format!("{p} to exist"),
            (Target::Path(p), false) => format!("{p} to be removed"),
        }
    }

    /// Shell defining `check`, which succeeds when the port is open, the URL answers 2xx/3xx, or the path
    /// exists; it fails the script when a tool it needs is missing, rather than waiting in vain.
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
            Target::Path(p) => format!("check() {{ [ -e {} ]; }}", sh_quote(p)),
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
    use super::super::testkit::{bad_args, converge, plan_now, res, serve_http};
    use super::super::Action;
    use super::KIND;
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
    }
}
