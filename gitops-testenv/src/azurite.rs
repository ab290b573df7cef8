//! [`AzuriteServer`]: an Azure Blob Storage emulator for tests, Microsoft's Azurite
//! (`azurite-blob`, npm `azurite`) run as a child process on a free loopback port.
//!
//! Azurite serves the well-known development account [`ACCOUNT`] with the key [`ACCOUNT_KEY`]
//! in the path-style emulator form: the account is the first path segment
//! (`http://127.0.0.1:PORT/devstoreaccount1/<container>/<blob>`). It checks Shared Key
//! signatures, so a wrong key is refused with `403 AuthorizationFailure`. Its data lives in a
//! temporary folder removed with the server. The container and blob helpers here sign their
//! requests with the account key themselves (Shared Key, HMAC-SHA256), so the client under test
//! is not used to prepare its own fixtures.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Error;
use crate::http1::request;
use crate::process::{Proc, log_tail};

/// How long [`AzuriteServer::start`] waits for Azurite to answer.
pub const AZURITE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Azurite's well-known development storage account.
pub const ACCOUNT: &str = "devstoreaccount1";

/// The key of [`ACCOUNT`] (public, documented by Microsoft for the emulator).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The REST API version the helpers speak.
const API_VERSION: &str = "2021-08-06";

/// A running `azurite-blob` on `127.0.0.1`, in a temporary folder holding its data and log.
/// Stopped (SIGTERM, then SIGKILL, by PID) by [`AzuriteServer::stop`] or when dropped.
///
/// `azurite-blob` must be on `PATH` (`npm install -g azurite@3.37.0`; `cargo xtask ci`
/// installs it).
///
/// ```no_run
/// # async fn example() -> Result<(), gitops_testenv::Error> {
/// let az = gitops_testenv::AzuriteServer::start().await?;
/// az.create_container("flux").await?;
/// az.put_blob("flux", "deploy/app.yaml", b"kind: ConfigMap\n").await?;
/// let endpoint = az.endpoint(); // http://127.0.0.1:PORT/devstoreaccount1
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AzuriteServer {
    proc: Option<Proc>,
    url: String,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl AzuriteServer {
    /// Starts `azurite-blob --blobHost 127.0.0.1 --blobPort 0` (data in a temporary folder,
    /// `--skipApiVersionCheck --loose --disableTelemetry`), reads the port it chose from its log
    /// (`successfully listens on http://127.0.0.1:NNNNN`) and waits until it answers HTTP, for
    /// at most [`AZURITE_START_TIMEOUT`].
    ///
    /// Errors: [`Error::Io`] when `azurite-blob` cannot be started (not installed; the message
    /// says how to install it), [`Error::ProcessExited`] when it exits, [`Error::NotReady`] on
    /// timeout.
    pub async fn start() -> Result<AzuriteServer, Error> {
        let dir = tempfile::Builder::new()
            .prefix("gitops-azurite-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary folder for azurite-blob", e))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)
            .map_err(|e| Error::io(format!("creating {}", data.display()), e))?;
        let log = dir.path().join("azurite.log");
        let args: Vec<String> = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--location",
            &data.to_string_lossy(),
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut proc = Proc::spawn_or_hint(
            "azurite-blob",
            &args,
            &[],
            log.clone(),
            "npm install -g azurite@3.37.0",
        )?;
        let deadline = Instant::now() + AZURITE_START_TIMEOUT;
        let url = proc
            .wait_for_log(
                deadline,
                AZURITE_START_TIMEOUT,
                "the `listens on` line",
                listening_url,
            )
            .await?;
        let addr = url.trim_start_matches("http://").to_string();
        // Any HTTP answer (an unsigned listing gets 403) means it serves requests.
        let list = format!("/{ACCOUNT}?comp=list");
        proc.wait_until(
            deadline,
            AZURITE_START_TIMEOUT,
            "an HTTP answer",
            || async { request(&addr, "GET", &list, &[], &[]).await.is_ok() },
        )
        .await?;
        tracing::debug!(pid = proc.pid(), %url, "azurite-blob ready");
        Ok(AzuriteServer {
            proc: Some(proc),
            url,
            addr,
            log,
            _dir: dir,
        })
    }

    /// The server, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The account's Blob service endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("{}/{ACCOUNT}", self.url)
    }

    /// The process id of `azurite-blob`, `None` once stopped.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Creates the container `name` (3-63 lowercase letters, digits and dashes).
    /// Errors: [`Error::Io`] naming the container and the HTTP status when Azurite refuses.
    pub async fn create_container(&self, name: &str) -> Result<(), Error> {
        self.call(
            "PUT",
            &format!("/{ACCOUNT}/{}", encode_path(name)),
            &[("restype", "container")],
            &[],
            &[],
            &format!("creating container {name}"),
        )
        .await
    }

    /// Uploads `bytes` as the block blob `container`/`name` (replacing it; a new ETag).
    pub async fn put_blob(&self, container: &str, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.call(
            "PUT",
            &blob_path(container, name),
            &[],
            &[("x-ms-blob-type", "BlockBlob")],
            bytes,
            &format!("putting {container}/{name}"),
        )
        .await
    }

    /// Deletes the blob `container`/`name`.
    pub async fn delete_blob(&self, container: &str, name: &str) -> Result<(), Error> {
        self.call(
            "DELETE",
            &blob_path(container, name),
            &[],
            &[],
            &[],
            &format!("deleting {container}/{name}"),
        )
        .await
    }

    /// The `ETag` header of the blob `container`/`name` (quoted, `"0x8D..."`), from a HEAD
    /// request. Errors: [`Error::Io`] when the blob does not exist or the request fails.
    pub async fn blob_etag(&self, container: &str, name: &str) -> Result<String, Error> {
        let what = format!("reading the ETag of {container}/{name}");
        let head = self
            .send("HEAD", &blob_path(container, name), &[], &[], &[], &what)
            .await?;
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("etag")
                    .then(|| v.trim().to_string())
            })
            .ok_or_else(|| Error::io(what, std::io::Error::other("no ETag header")))
    }

    /// The end of Azurite's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and waits for it.
    /// Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: &[u8],
        what: &str,
    ) -> Result<(), Error> {
        self.send(method, path, query, extra, body, what)
            .await
            .map(|_| ())
    }

    /// One request signed with the account key (Shared Key); the response head on success.
    async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: &[u8],
        what: &str,
    ) -> Result<String, Error> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut ms_headers: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        ms_headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ms_headers.sort();
        let content_type = if body.is_empty() {
            ""
        } else {
            "application/octet-stream"
        };
        let signature = sign(method, path, query, &ms_headers, body.len(), content_type)
            .map_err(|e| Error::io(what.to_string(), e))?;
        let mut headers = ms_headers;
        headers.push((
            "Authorization".into(),
            format!("SharedKey {ACCOUNT}:{signature}"),
        ));
        if !content_type.is_empty() {
            headers.push(("Content-Type".into(), content_type.into()));
        }
        let mut target = path.to_string();
        for (i, (k, v)) in query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(&format!("{k}={}", encode_path(v)));
        }
        let (status, head, text) = request(&self.addr, method, &target, &headers, body)
            .await
            .map_err(|e| Error::io(what.to_string(), e))?;
        if (200..300).contains(&status) {
            Ok(head)
        } else {
            Err(Error::io(
                what.to_string(),
                std::io::Error::other(format!("HTTP {status}: {}", text.trim())),
            ))
        }
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Shared Key signature of a request (Blob service, versions 2015-02-21 and later): the
/// base64 HMAC-SHA256, keyed with the decoded account key, of the string to sign.
fn sign(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    ms_headers: &[(String, String)],
    content_length: usize,
    content_type: &str,
) -> std::io::Result<String> {
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut to_sign = format!("{method}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n");
    for (k, v) in ms_headers {
        to_sign.push_str(&format!("{}:{}\n", k.to_ascii_lowercase(), v.trim()));
    }
    // The path as sent (already percent-encoded) after the account, as Azurite canonicalizes
    // path-style requests: `/<account>/<account>/<container>...`.
    to_sign.push_str(&format!("/{ACCOUNT}{path}"));
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    params.sort();
    for (k, v) in params {
        to_sign.push_str(&format!("\n{k}:{v}"));
    }
    let key = BASE64
        .decode(ACCOUNT_KEY)
        .map_err(|e| std::io::Error::other(format!("decoding the account key: {e}")))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    Ok(BASE64.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref()))
}

/// The URL in Azurite's `successfully listens on http://127.0.0.1:NNNNN` line.
fn listening_url(log: &str) -> Option<String> {
    let at = log.find("listens on http://")? + "listens on ".len();
    let rest = &log[at..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let url = rest[..end].trim_end_matches('/');
    url.rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok_and(|p| p != 0))
        .then(|| url.to_string())
}

fn blob_path(container: &str, name: &str) -> String {
    let segments: Vec<String> = name.split('/').map(encode_path).collect();
    format!(
        "/{ACCOUNT}/{}/{}",
        encode_path(container),
        segments.join("/")
    )
}

/// Percent-encodes everything but unreserved characters.
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_azurite_chose() {
        let log = "Azurite Blob service is starting on 127.0.0.1:0\nAzurite Blob service successfully listens on http://127.0.0.1:41473\n";
        assert_eq!(
            listening_url(log).as_deref(),
            Some("http://127.0.0.1:41473")
        );
        assert_eq!(listening_url("is starting on 127.0.0.1:0"), None);
    }

    #[test]
    fn blob_names_keep_their_slashes() {
        assert_eq!(
            blob_path("c", "dir/a b.yaml"),
            "/devstoreaccount1/c/dir/a%20b.yaml"
        );
    }
}
