//! [`S3Server`]: an S3-compatible server for tests, moto's `moto_server` (PyPI `moto[server]`)
//! run as a child process on a free loopback port.
//!
//! moto keeps buckets in memory, answers with path-style addressing
//! (`http://127.0.0.1:PORT/<bucket>/<key>`), accepts any credentials (it does not check request
//! signatures unless auth enforcement is set up) and returns ETags in `ListObjectsV2` (the quoted
//! MD5 of single-part uploads). Its log holds one line per request (`"GET /b/k HTTP/1.1" 200`),
//! which [`S3Server::requests`] exposes so tests can count downloads.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Proc, log_tail};

/// How long [`S3Server::start`] waits for moto to answer `GET /moto-api/`.
pub const S3_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A throw-away `Authorization` header: moto wants one on some calls (DELETE answers 403
/// without it) but does not verify the signature.
const FAKE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// Like [`FAKE_AUTH`], with the credential scope of IAM (moto picks the service from it).
const IAM_AUTH: &str = "AWS4-HMAC-SHA256 Credential=test/20200101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";

/// An access key moto checks signatures against (from [`S3Server::start_with_auth`]).
#[derive(Clone, PartialEq, Eq)]
pub struct S3AccessKey {
    /// The access key id (`AKIA...`).
    pub id: String,
    /// The secret access key.
    pub secret: String,
}

impl std::fmt::Debug for S3AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3AccessKey")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

/// A running `moto_server` on `127.0.0.1`, in a temporary folder holding its log. Stopped (SIGTERM,
/// then SIGKILL, by PID) by [`S3Server::stop`] or when dropped.
///
/// `moto_server` must be on `PATH` (`pip install 'moto[server]'`; `cargo xtask ci` installs it).
///
/// ```no_run
/// # async fn example() -> Result<(), gitops_testenv::Error> {
/// let s3 = gitops_testenv::S3Server::start().await?;
/// s3.create_bucket("flux").await?;
/// s3.put_object("flux", "deploy/app.yaml", b"kind: ConfigMap\n").await?;
/// let endpoint = s3.url(); // http://127.0.0.1:PORT, path-style
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct S3Server {
    proc: Option<Proc>,
    url: String,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts `moto_server -H 127.0.0.1 -p 0`, reads the port it chose from its log
    /// (`Running on http://127.0.0.1:NNNNN`) and polls `GET /moto-api/` until it answers 200,
    /// for at most [`S3_START_TIMEOUT`].
    ///
    /// Errors: [`Error::Io`] when `moto_server` cannot be started (not installed),
    /// [`Error::ProcessExited`] when it exits, [`Error::NotReady`] on timeout.
    pub async fn start() -> Result<S3Server, Error> {
        S3Server::start_with_env(&[]).await
    }

    /// Starts moto like [`S3Server::start`] but checking request signatures, as AWS does, and
    /// returns the access key of an IAM user allowed `s3:*`.
    ///
    /// moto lets the first `3 + setup_calls` requests through unchecked (its
    /// `INITIAL_NO_AUTH_ACTION_COUNT`): this function spends 3 on creating the user, its inline
    /// policy and its access key; the caller has `setup_calls` left for
    /// [`S3Server::create_bucket`] / [`S3Server::put_object`] /
    /// [`S3Server::delete_object`] (whose signatures are fake). After that, every request needs
    /// a valid SigV4 signature of the returned key: a wrong secret gets
    /// `SignatureDoesNotMatch`, an unknown key id `InvalidAccessKeyId`, and this helper's own
    /// calls are refused.
    ///
    /// Errors: those of [`S3Server::start`], and [`Error::Io`] when an IAM call fails.
    pub async fn start_with_auth(setup_calls: u32) -> Result<(S3Server, S3AccessKey), Error> {
        let count = (3 + setup_calls).to_string();
        let s3 = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", &count)]).await?;
        let iam = |action: &str, params: &[(&str, &str)]| {
            let mut body = format!("Action={action}&Version=2010-05-08&UserName=flux");
            for (k, v) in params {
                body.push_str(&format!("&{k}={}", encode(v)));
            }
            body
        };
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        for (what, body) in [
            ("creating IAM user flux", iam("CreateUser", &[])),
            (
                "putting the s3:* policy of IAM user flux",
                iam(
                    "PutUserPolicy",
                    &[("PolicyName", "s3"), ("PolicyDocument", policy)],
                ),
            ),
        ] {
            s3.iam_call(&body, what).await?;
        }
        let text = s3
            .iam_call(
                &iam("CreateAccessKey", &[]),
                "creating an access key for IAM user flux",
            )
            .await?;
        let field = |name: &str| {
            let open = format!("<{name}>");
            let start = text.find(&open)? + open.len();
            let end = start + text[start..].find('<')?;
            Some(text[start..end].to_string())
        };
        let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
            return Err(Error::io(
                "creating an access key for IAM user flux",
                std::io::Error::other(format!("unexpected answer: {text:.300}")),
            ));
        };
        Ok((s3, S3AccessKey { id, secret }))
    }

    async fn start_with_env(env: &[(&str, &str)]) -> Result<S3Server, Error> {
        let dir = tempfile::Builder::new()
            .prefix("gitops-s3-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary folder for moto_server", e))?;
        let log = dir.path().join("moto.log");
        let mut proc = Proc::spawn_or_hint(
            "moto_server",
            &["-H".into(), "127.0.0.1".into(), "-p".into(), "0".into()],
            env,
            log.clone(),
            "pip install 'moto[server]'",
        )?;
        let deadline = Instant::now() + S3_START_TIMEOUT;
        let url = proc
            .wait_for_log(
                deadline,
                S3_START_TIMEOUT,
                "the `Running on` line",
                running_url,
            )
            .await?;
        let addr = url.trim_start_matches("http://").to_string();
        proc.wait_until(
            deadline,
            S3_START_TIMEOUT,
            "GET /moto-api/ answering 200",
            || async { matches!(request(&addr, "GET", "/moto-api/", &[]).await, Ok((200, _))) },
        )
        .await?;
        tracing::debug!(pid = proc.pid(), %url, "moto_server ready");
        Ok(S3Server {
            proc: Some(proc),
            url,
            addr,
            log,
            _dir: dir,
        })
    }

    /// The endpoint, `http://127.0.0.1:PORT` (use path-style addressing).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The process id of `moto_server`, `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Creates the bucket `name` (at least 3 characters, S3 naming rules).
    /// Errors: [`Error::Io`] naming the bucket and the HTTP status when moto refuses.
    pub async fn create_bucket(&self, name: &str) -> Result<(), Error> {
        self.call(
            "PUT",
            &format!("/{}", encode(name)),
            &[],
            &format!("creating bucket {name}"),
        )
        .await
    }

    /// Uploads `bytes` as `bucket`/`key` in one part (so its ETag is the quoted MD5 of `bytes`).
    /// Any key S3 allows works, including `../x` (segments are percent-encoded).
    pub async fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Error> {
        self.call(
            "PUT",
            &object_path(bucket, key),
            bytes,
            &format!("putting {bucket}/{key}"),
        )
        .await
    }

    /// Deletes `bucket`/`key` (S3 answers success for a missing key too).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), Error> {
        self.call(
            "DELETE",
            &object_path(bucket, key),
            &[],
            &format!("deleting {bucket}/{key}"),
        )
        .await
    }

    /// The request lines moto logged so far, in order, e.g. `GET /flux/deploy/app.yaml HTTP/1.1`
    /// (paths as sent, percent-encoded). Reads the log file, so it includes this helper's calls.
    pub fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let start = l.find('"')? + 1;
                let end = start + l[start..].find('"')?;
                Some(l[start..end].to_string())
            })
            .collect()
    }

    /// The end of moto's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and waits for it. Later
    /// requests to [`S3Server::url`] are refused. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// One IAM query-API call (form body, an `iam` credential scope so moto routes it to IAM);
    /// the response body.
    async fn iam_call(&self, body: &str, what: &str) -> Result<String, Error> {
        let (status, text) = request_as(&self.addr, "POST", "/", body.as_bytes(), IAM_AUTH)
            .await
            .map_err(|e| Error::io(what.to_string(), e))?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(Error::io(
                what.to_string(),
                std::io::Error::other(format!("HTTP {status}: {}", text.trim())),
            ))
        }
    }

    async fn call(&self, method: &str, path: &str, body: &[u8], what: &str) -> Result<(), Error> {
        let (status, text) = request(&self.addr, method, path, body)
            .await
            .map_err(|e| Error::io(what.to_string(), e))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(Error::io(
                what.to_string(),
                std::io::Error::other(format!("HTTP {status}: {}", text.trim())),
            ))
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URL in werkzeug's `Running on http://127.0.0.1:NNNNN` line.
fn running_url(log: &str) -> Option<String> {
    let at = log.find("Running on http://")? + "Running on ".len();
    let rest = &log[at..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let url = rest[..end].trim_end_matches('/');
    url.rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok_and(|p| p != 0))
        .then(|| url.to_string())
}

fn object_path(bucket: &str, key: &str) -> String {
    format!("/{}/{}", encode(bucket), encode(key))
}

/// Percent-encodes everything but unreserved characters, so that neither `/` nor `.` segments
/// are interpreted on the way (moto decodes the key).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body as text.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    request_as(addr, method, path, body, FAKE_AUTH).await
}

/// [`request`] with the `Authorization` header `auth` (and the content type moto expects for
/// it: a form for IAM calls, bytes for S3).
async fn request_as(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    auth: &str,
) -> std::io::Result<(u16, String)> {
    let content_type = if auth == IAM_AUTH {
        "application/x-www-form-urlencoded"
    } else {
        "application/octet-stream"
    };
    let headers = [
        ("Authorization".to_string(), auth.to_string()),
        ("Content-Type".to_string(), content_type.to_string()),
    ];
    let (status, _head, body) = crate::http1::request(addr, method, path, &headers, body).await?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_moto_chose() {
        let log = "WARNING: dev server\n * Running on http://127.0.0.1:41133\nPress CTRL+C\n";
        assert_eq!(running_url(log).as_deref(), Some("http://127.0.0.1:41133"));
        assert_eq!(running_url(" * Running on http://127.0.0.1:0\n"), None);
        assert_eq!(running_url("starting"), None);
    }

    #[test]
    fn keys_are_encoded_segment_safe() {
        assert_eq!(object_path("b", "../x"), "/b/%2E%2E%2Fx");
        assert_eq!(object_path("b", "dir/a b.yaml"), "/b/dir%2Fa%20b%2Eyaml");
    }
}
