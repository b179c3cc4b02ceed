//! `get_url`: a file the host downloads itself (product packs, drivers), identified by a mandatory sha256.
//! The checksum is what makes it idempotent without a network round trip (a file with the right checksum is
//! never fetched again) and what keeps a changed or tampered upstream file from ever landing at `dest`.

use super::{
    bad, checksum, parse_args, Action, Attrs, BuildCtx, Change, Effect, Guard, Reads, Resource,
    ResourceError, Step,
};
use crate::transport::{sh_quote, Facts};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

const KIND: &str = "get_url";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    url: String,
    dest: String,
    /// Also accepted as Ansible's `checksum: "sha256:<hex>"`.
    #[serde(alias = "checksum")]
    sha256: String,
    #[serde(default = "default_timeout")]
    timeout: u64,
    #[serde(flatten)]
    attrs: Attrs,
}

fn default_timeout() -> u64 {
    60
}

struct GetUrl {
    url: String,
    dest: String,
    sha256: String,
    timeout: u64,
    attrs: Attrs,
}

/// The `get_url` entry of `TYPES`: checks url, dest, sha256 and timeout before any host is touched.
pub(super) fn build(args: Value, _ctx: &BuildCtx) -> Result<Box<dyn Resource>, ResourceError> {
    let a: Args = parse_args(KIND, args)?;
    let scheme_ok = ["http://", "https://", "ftp://"]
        .iter()
        .any(|s| a.url.starts_with(s));
    if !scheme_ok || a.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            KIND,
            format!(
                "url `{}` must be an http, https or ftp URL without spaces",
                redact(&a.url)
            ),
        ));
    }
    if !a.dest.starts_with('/') || a.dest.ends_with('/') {
        return Err(bad(
            KIND,
            format!("dest `{}` must be an absolute file path", a.dest),
        ));
    }
    let sha256 = checksum::parse(KIND, &a.sha256)?;
    if a.timeout == 0 {
        return Err(bad(KIND, "timeout must be at least 1 second"));
    }
    Ok(Box::new(GetUrl {
        url: a.url,
        dest: a.dest,
        sha256,
        timeout: a.timeout,
        attrs: a.attrs,
    }))
}

/// The URL with any `user:password@` hidden, for plans, reports and errors.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

impl GetUrl {
    /// Downloads into a temp file next to `dest`, checks the checksum, sets attributes and renames into
    /// place, so `dest` only ever holds the verified file. The URL goes to curl/wget on standard input,
    /// never on their command line, because URLs carry credentials and signed tokens.
    fn script(&self) -> String {
        let curl_url = self.url.replace('\\', "\\\\").replace('"', "\\\"");
        format!(
            r#"set -e
dest={dest}
want={want}
shown={shown}
tmp=$(mktemp "$(dirname "$dest")/.apim-provision.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if command -v curl >/dev/null 2>&1; then
curl -fsSL --max-time {timeout} -o "$tmp" -K - <<'__APIM_URL__'
url = "{curl_url}"
__APIM_URL__
elif command -v wget >/dev/null 2>&1; then
wget -q --timeout={timeout} --tries=1 -O "$tmp" -i - <<'__APIM_URL__'
{url}
__APIM_URL__
else
echo "neither curl nor wget is installed on the host" >&2; exit 1
fi
got=$(sha256sum < "$tmp" | cut -c1-64)
if [ "$got" != "$want" ]; then echo "sha256 mismatch for $shown: expected $want, got $got" >&2; exit 1; fi
if [ -e "$dest" ]; then chmod --reference="$dest" "$tmp"; chown --reference="$dest" "$tmp"; else chmod 0644 "$tmp"; fi
{tmp_attrs}sync "$tmp" 2>/dev/null || true
mv -f "$tmp" "$dest"
trap - EXIT
"#,
            dest = sh_quote(&self.dest),
            want = self.sha256,
            timeout = self.timeout,
            url = self.url,
            shown = sh_quote(&redact(&self.url)),
            tmp_attrs = self.attrs.script("\"$tmp\""),
        )
    }
}

#[async_trait]
impl Resource for GetUrl {
    fn describe(&self) -> String {
        format!("get_url {}", self.dest)
    }

    fn probe(&self) -> String {
        let d = sh_quote(&self.dest);
        format!("fact_stat {d}\nfact_sha {d}")
    }

    fn reads(&self) -> Reads {
        Reads::Paths(vec![self.dest.clone()])
    }

    fn effects(&self, _change: &Change) -> Vec<Effect> {
        vec![Effect::Write {
            path: self.dest.clone(),
            content: None,
            attrs: self.attrs.clone(),
        }]
    }

    fn plan(&self, facts: &Facts) -> Result<Change, ResourceError> {
        let download = format!("download {}", redact(&self.url));
        let mut change = match facts.get("type") {
            Some("absent") | None => {
                let mut details = vec![download];
                details.extend(self.attrs.changes(&Facts::default()));
                Change::new(Action::Create, details)
            }
            Some("file") if facts.is("sha256", &self.sha256) => {
                let details = self.attrs.changes(facts);
                let action = if details.is_empty() {
                    Action::None
                } else {
                    Action::Update
                };
                Change::new(action, details)
            }
            Some("file") => {
                let was = facts.get("sha256").unwrap_or("-");
                let mut details = vec![download, format!("sha256 {was} -> {}", self.sha256)];
                details.extend(self.attrs.changes(facts));
                Change::new(Action::Update, details)
            }
            Some("link") => {
                let mut details = vec![download, "replace symlink with the file".to_string()];
                details.extend(self.attrs.changes(&Facts::default()));
                Change::new(Action::Update, details)
            }
            Some(other) => {
                return Err(ResourceError::Failed(format!(
                    "{} exists and is a {other}",
                    self.dest
                )))
            }
        };
        change
            .result
            .insert("dest".into(), self.dest.clone().into());
        change
            .result
            .insert("sha256".into(), self.sha256.clone().into());
        change.result.insert("url".into(), redact(&self.url).into());
        let what = format!("fetching {}", self.dest);
        let current = match facts.get("type") {
            Some("file") => Some(Guard::File {
                path: self.dest.clone(),
                sha256: facts.get("sha256").map(str::to_string),
            }),
            Some("link") => None,
            _ => Some(Guard::File {
                path: self.dest.clone(),
                sha256: None,
            }),
        };
        let step = if !change.is_pending() {
            None
        } else if facts.is("type", "file") && facts.is("sha256", &self.sha256) {
            Some(Step::run(
                what,
                current.into_iter().collect(),
                format!("set -e\n{}", self.attrs.script(&sh_quote(&self.dest))),
            ))
        } else {
            Some(Step::run(
                what,
                current.into_iter().collect(),
                self.script(),
            ))
        };
        change.steps.extend(step);
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{bad_args, converge, plan_now, res, serve_http};
    use super::super::{sha256_hex, Action};
    use super::{redact, KIND};
    use crate::transport::LocalTransport;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    /// A pack served on loopback and a `get_url` of it (with `extra` arguments) into a fresh directory:
    /// the transport, the directory guard, the URL, `dest` and the resource.
    fn served_pack(
        extra: serde_json::Value,
    ) -> (
        LocalTransport,
        tempfile::TempDir,
        String,
        String,
        Box<dyn super::super::Resource>,
    ) {
        let body = b"pack contents\n".to_vec();
        let url = format!("http://127.0.0.1:{}/pack.zip", serve_http(body.clone()));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pack.zip").display().to_string();
        let args = json!({"url": url, "dest": dest, "sha256": sha256_hex(&body)});
        let r = res(KIND, super::super::testkit::merged(args, extra));
        (LocalTransport::new("t"), dir, url, dest, r)
    }

    /// Apply downloads only what plan decided: a file that appeared at `dest` after the probe is the
    /// operator's, not overwritten, and the shell no longer decides by itself.
    #[tokio::test]
    async fn a_file_written_after_the_plan_is_refused_not_replaced() {
        let (t, _dir, _url, dest, r) = served_pack(json!({}));
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        assert_eq!(change.action, Action::Create);
        std::fs::write(&dest, "someone else's\n").unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("{dest} changed on the host since it was probed")),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "someone else's\n");
    }

    #[tokio::test]
    async fn downloads_once_then_plans_nothing() {
        let (t, _dir, url, dest, r) = served_pack(json!({"mode": "0640"}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Create);
        assert_eq!(
            first.details,
            vec![format!("download {url}"), "mode - -> 0640".to_string()]
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(std::fs::read(&dest).unwrap(), b"pack contents\n");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o640);
    }

    #[tokio::test]
    async fn a_right_file_with_a_wrong_mode_is_only_chmodded() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f").display().to_string();
        std::fs::write(&dest, b"x").unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Nothing listens on port 9 of loopback: a download attempt would fail the apply.
        let r = res(
            KIND,
            json!({"url": "http://127.0.0.1:9/f", "dest": dest,
                   "checksum": format!("sha256:{}", sha256_hex(b"x")), "mode": "0600"}),
        );
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.details, vec!["mode 0644 -> 0600"]);
        assert_eq!(second.action, Action::None);
    }

    #[tokio::test]
    async fn a_different_file_is_replaced() {
        let t = LocalTransport::new("t");
        let body = b"v2".to_vec();
        let url = format!("http://127.0.0.1:{}/f", serve_http(body.clone()));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f").display().to_string();
        std::fs::write(&dest, b"v1").unwrap();
        let want = sha256_hex(&body);
        let r = res(KIND, json!({"url": url, "dest": dest, "sha256": want}));
        let (first, second) = converge(r.as_ref(), &t).await;
        assert_eq!(first.action, Action::Update);
        assert_eq!(
            first.details[1],
            format!("sha256 {} -> {want}", sha256_hex(b"v1"))
        );
        assert_eq!(second.action, Action::None);
        assert_eq!(std::fs::read(&dest).unwrap(), body);
    }

    #[tokio::test]
    async fn a_checksum_mismatch_fails_and_leaves_nothing_behind() {
        let t = LocalTransport::new("t");
        let url = format!("http://127.0.0.1:{}/f", serve_http(b"tampered".to_vec()));
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f").display().to_string();
        let want = sha256_hex(b"genuine");
        let r = res(KIND, json!({"url": url, "dest": dest, "sha256": want}));
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        let err = r.apply(&change, &t).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("expected {want}, got {}", sha256_hex(b"tampered"))),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_failed_download_fails_the_apply() {
        let t = LocalTransport::new("t");
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f").display().to_string();
        let r = res(
            KIND,
            json!({"url": "http://127.0.0.1:9/f", "dest": dest, "sha256": sha256_hex(b""),
                   "timeout": 5}),
        );
        let change = plan_now(r.as_ref(), &t).await.unwrap();
        assert!(r.apply(&change, &t).await.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn credentials_in_urls_are_not_shown() {
        assert_eq!(
            redact("https://u:secret@repo.example/x?y=1"),
            "https://***@repo.example/x?y=1"
        );
        assert_eq!(
            redact("https://repo.example/a@b"),
            "https://repo.example/a@b"
        );
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let sha = "a".repeat(64);
        let ok = |k: &str, v: serde_json::Value| {
            let mut a = json!({"url": "https://x/y", "dest": "/opt/y", "sha256": sha});
            a[k] = v;
            a
        };
        bad_args(
            KIND,
            json!({"url": "https://x/y", "dest": "/opt/y"}),
            "sha256",
        );
        bad_args(KIND, ok("sha256", json!("abc")), "sha256");
        bad_args(KIND, ok("sha256", json!("g".repeat(64))), "sha256");
        bad_args(KIND, ok("url", json!("file:///etc/passwd")), "url");
        bad_args(KIND, ok("url", json!("https://x/a b")), "url");
        bad_args(KIND, ok("dest", json!("y")), "dest");
        bad_args(KIND, ok("dest", json!("/opt/")), "dest");
        bad_args(KIND, ok("timeout", json!(0)), "timeout");
        bad_args(KIND, ok("timeout", json!("soon")), "timeout");
        bad_args(KIND, ok("force", json!(true)), "force");
    }
}
