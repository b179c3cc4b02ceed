//! One script that carries many read-only probes to a host and one parser for its answer. This is what keeps
//! a no-op run at one round trip per host: the engine never sends a probe on its own when it can batch it.

use super::{Output, Transport, TransportError};
use base64::Engine as _;
use std::collections::BTreeMap;

/// Shell functions every probe snippet may call. Facts are printed as `@f key=value` lines so that anything
/// else a probe prints (warnings, errors) can be kept apart as messages. A probe's cost on the host is
/// mostly the programs it starts, so these start as few as they can and no subshell only to capture a
/// value: a program prints its fact line itself (`stat --printf`), and `@w key=value …` keeps only the
/// value's first word (what `sha256sum` prints before the file name).
const PRELUDE: &str = r#"fact() { printf '@f %s=%s\n' "$1" "$2"; }
fact_b64() { printf '@f %s=' "$1"; base64 -w0 < "$2"; printf '\n'; }
fact_stat() {
  if [ -L "$1" ]; then fact type link; printf '@f link_target='; readlink -- "$1"
  elif [ -d "$1" ]; then fact type directory
  elif [ -e "$1" ]; then fact type file
  else fact type absent; return 0; fi
  stat --printf='@f mode=%a\n@f owner=%U\n@f group=%G\n' -- "$1"
}
fact_sha() { if [ -f "$1" ] && [ ! -L "$1" ]; then printf '@w sha256='; sha256sum < "$1"; fi; }
"#;

/// Quotes `s` for a POSIX shell, for every value a resource splices into a script.
pub fn sh_quote(s: &str) -> String {
    shell_escape::unix::escape(s.into()).into_owned()
}

/// The facts one probe reported: a flat map, because a flat map is all a shell can print reliably.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(BTreeMap<String, String>);

impl Facts {
    /// The fact `key`, if the probe printed it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// True when the fact `key` was printed with exactly `value`.
    pub fn is(&self, key: &str, value: &str) -> bool {
        self.get(key) == Some(value)
    }

    /// A fact that was printed base64-encoded (file contents), decoded.
    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.get(key)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
    }

    /// Every fact, for resources that report what they found as their registered result.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// The facts `fact_stat` prints for a path that does not exist: how a plan describes a file that
    /// will not be there yet when a task runs.
    pub fn absent() -> Self {
        let mut f = Facts::default();
        f.set("type", "absent");
        f
    }

    /// Sets (or replaces) the fact `key`: how a plan describes a host as earlier pending changes will
    /// leave it, in the facts a probe would then print.
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }

    /// Removes the fact `key`, for the same simulation (a file that will exist has no `absent` marker).
    pub fn unset(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Sets the fact `key` to `bytes`, encoded as a probe's `fact_b64` prints them.
    pub fn set_bytes(&mut self, key: &str, bytes: &[u8]) {
        self.set(
            key,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    }
}

/// One probe's answer within a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchAnswer {
    /// The `@f` facts it printed.
    pub facts: Facts,
    /// Its exit status; non-zero means the probe itself failed (the task would fail).
    pub status: i32,
    /// Everything else it printed, for the error message.
    pub messages: Vec<String>,
}

/// A set of snippets to run on one host in one go: read-only probes, or (halting at the first failure)
/// the apply steps of several tasks.
#[derive(Debug, Default)]
pub struct ProbeBatch {
    snippets: Vec<String>,
    /// Later snippets do not run once one fails: each depends on the ones before it.
    halt_on_failure: bool,
}

impl ProbeBatch {
    /// Adds a snippet and returns its index in the answer.
    pub fn push(&mut self, snippet: String) -> usize {
        self.snippets.push(snippet);
        self.snippets.len() - 1
    }

    /// A batch whose snippets run only while the ones before them succeeded; those after a failure
    /// are answered as not finished.
    pub fn halting() -> Self {
        ProbeBatch {
            halt_on_failure: true,
            ..Self::default()
        }
    }

    /// True when nothing was added, so no round trip is needed.
    pub fn is_empty(&self) -> bool {
        self.snippets.is_empty()
    }

    /// The whole script; `nonce` makes the section markers impossible to forge from probe output.
    pub fn script(&self, nonce: &str) -> String {
        let mut s = String::from(PRELUDE);
        for (i, snippet) in self.snippets.iter().enumerate() {
            s.push_str(&format!(
                "printf '\\n@@{nonce} begin {i}\\n'\n( {snippet}\n) </dev/null 2>&1\nst=$?\nprintf '\\n@@{nonce} end {i} %d\\n' \"$st\"\n"
            ));
            if self.halt_on_failure {
                s.push_str("[ \"$st\" -eq 0 ] || exit 0\n");
            }
        }
        s
    }

    /// Runs every snippet in one round trip and splits the answer per snippet.
    pub async fn run(self, transport: &dyn Transport) -> Result<Vec<BatchAnswer>, TransportError> {
        let nonce = nonce();
        let out = transport.run(&self.script(&nonce)).await?;
        Ok(parse_answers(&out, &nonce, self.snippets.len()))
    }
}

fn nonce() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("apim{:x}{:x}", t, std::process::id())
}

/// Splits a batch's output into the answers of its `count` snippets, by the markers with `nonce` that
/// [`ProbeBatch::script`] prints. Whatever the host printed is taken apart without failing: a snippet
/// with no end marker is a failed probe. Public for the fuzz target, which feeds it any bytes.
pub fn parse_answers(out: &Output, nonce: &str, count: usize) -> Vec<BatchAnswer> {
    let mut answers: Vec<BatchAnswer> = vec![BatchAnswer::default(); count];
    let mut finished = vec![false; count];
    let begin = format!("@@{nonce} begin ");
    let end = format!("@@{nonce} end ");
    let mut current: Option<usize> = None;
    for line in out.stdout_text().lines() {
        if let Some(rest) = line.strip_prefix(&begin) {
            current = rest.trim().parse().ok().filter(|i| *i < count);
        } else if let Some(rest) = line.strip_prefix(&end) {
            let mut parts = rest.split_whitespace();
            let idx: Option<usize> = parts.next().and_then(|p| p.parse().ok());
            let status: i32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(-1);
            if let Some(i) = idx.filter(|i| *i < count) {
                answers[i].status = status;
                finished[i] = true;
            }
            current = None;
        } else if let Some(i) = current {
            if let Some(fact) = line.strip_prefix("@f ") {
                if let Some((k, v)) = fact.split_once('=') {
                    answers[i].facts.set(k, v);
                }
            } else if let Some(fact) = line.strip_prefix("@w ") {
                if let Some((k, v)) = fact.split_once('=') {
                    answers[i]
                        .facts
                        .set(k, v.split_whitespace().next().unwrap_or_default());
                }
            } else if !line.trim().is_empty() {
                answers[i].messages.push(line.to_string());
            }
        }
    }
    for (i, done) in finished.iter().enumerate() {
        if !done {
            answers[i].status = -1;
            answers[i].messages.push(format!(
                "probe did not finish (sh exited {}): {}",
                out.status,
                out.tail()
            ));
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalTransport;

    #[tokio::test]
    async fn batch_splits_facts_messages_and_status_per_probe() {
        let mut b = ProbeBatch::default();
        b.push("fact a 1; echo noise; fact b 'x=y'".into());
        b.push("echo broken >&2; exit 3".into());
        b.push("exit 0".into());
        let answers = b.run(&LocalTransport::new("t")).await.unwrap();
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0].facts.get("a"), Some("1"));
        assert_eq!(answers[0].facts.get("b"), Some("x=y"));
        assert_eq!(answers[0].messages, vec!["noise".to_string()]);
        assert_eq!(answers[1].status, 3);
        assert_eq!(answers[1].messages, vec!["broken".to_string()]);
        assert_eq!(answers[2].status, 0);
    }

    #[tokio::test]
    async fn a_probe_that_exits_the_shell_does_not_hide_the_others() {
        let mut b = ProbeBatch::default();
        b.push("exit 7".into());
        b.push("fact here yes".into());
        let answers = b.run(&LocalTransport::new("t")).await.unwrap();
        assert_eq!(answers[0].status, 7);
        assert!(answers[1].facts.is("here", "yes"));
    }

    #[test]
    fn missing_end_marker_is_a_failed_probe() {
        let out = Output {
            status: 137,
            stdout: b"\n@@n begin 0\n@f x=1\n".to_vec(),
            stderr: b"Killed".to_vec(),
        };
        let a = parse_answers(&out, "n", 1);
        assert_eq!(a[0].status, -1);
        assert!(a[0].messages[0].contains("Killed"));
    }
}
