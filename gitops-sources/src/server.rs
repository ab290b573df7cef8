//! Source-controller's artifact HTTP server and the consumer's download of an artifact.
//!
//! Semantics from Flux (source-controller `--storage-addr` / `--storage-adv-addr`, and
//! `fluxcd/pkg/http/fetch` `ArchiveFetcher` as used by kustomize-controller):
//!
//! * [`ArtifactServer`] serves the files of an [`ArtifactStore`] read-only over HTTP/1.1 at
//!   `<advertised base URL>/<kind>/<namespace>/<name>/<file>`, the layout of the store. A
//!   controller writes [`ArtifactServer::url_for`] into `status.artifact.url`. Flux uses a plain
//!   `http.FileServer`; this server is stricter: GET and HEAD only, no directory listings, no
//!   hidden files (temp files `.tmp-*`, lock files), no `..` or absolute paths, no symlinks that
//!   resolve outside the store root. There is no authentication (as in Flux): consumers must verify
//!   the digest.
//! * [`fetch_artifact`] / [`ArtifactFetcher`] download an artifact URL to a temp file while
//!   hashing it, refuse an oversized body or a digest mismatch, and only then extract it with
//!   [`extract_tar_gz`] and its limits. Errors say whether a retry can help
//!   ([`FetchError::is_retryable`]); retrying is left to the caller's requeue, where Flux's
//!   fetcher retries 5xx in place (`--http-retry`, default 9).

use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use gitops_core::digest::DigestWriter;
use gitops_core::store::extract_tar_gz;
use gitops_core::{Artifact, ArtifactStore, Digest, ExtractLimits, StoreError};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Errors of [`ArtifactServer`].
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listening socket failed (address in use, permission, ...).
    #[error("artifact server: bind: {0}")]
    Bind(#[source] io::Error),
    /// The advertised base URL is not an `http://` or `https://` URL.
    #[error("artifact server: advertised base URL {0:?} is not an http(s) URL")]
    BadBaseUrl(String),
    /// The server task ended with an I/O error, or panicked.
    #[error("artifact server: {0}")]
    Serve(#[source] io::Error),
}

/// A running artifact server over an [`ArtifactStore`] (source-controller's storage server).
///
/// Stop it with [`ArtifactServer::shutdown`], which waits for requests in flight; dropping it
/// signals the same graceful shutdown without waiting.
#[derive(Debug)]
pub struct ArtifactServer {
    local_addr: SocketAddr,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl ArtifactServer {
    /// Binds `addr` (e.g. `127.0.0.1:0`, Flux's default is `:9090`) and serves the store's files.
    ///
    /// `advertised_base_url` is what consumers reach the server at (Flux's `--storage-adv-addr`,
    /// e.g. `http://source-controller.flux-system.svc.cluster.local.`); `None` advertises
    /// `http://<local_addr>`. A trailing `/` is dropped. Must be called inside a tokio runtime;
    /// the server runs as a task of it.
    ///
    /// Errors: [`ServerError::BadBaseUrl`], [`ServerError::Bind`].
    pub async fn bind(
        store: ArtifactStore,
        addr: impl ToSocketAddrs,
        advertised_base_url: Option<&str>,
    ) -> Result<Self, ServerError> {
        if let Some(base) = advertised_base_url
            && !(base.starts_with("http://") || base.starts_with("https://"))
        {
            return Err(ServerError::BadBaseUrl(base.to_string()));
        }
        let listener = TcpListener::bind(addr).await.map_err(ServerError::Bind)?;
        let local_addr = listener.local_addr().map_err(ServerError::Bind)?;
        let base_url = advertised_base_url
            .map(|b| b.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let root: Arc<PathBuf> = Arc::new(store.root().to_path_buf());
        let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
            let root = Arc::clone(&root);
            async move { serve_file(&root, &method, &uri, &headers).await }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%local_addr, %base_url, "artifact server listening");
        Ok(ArtifactServer {
            local_addr,
            base_url,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the server listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The advertised base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL consumers download `artifact` from: `<base URL>/<artifact.path>`, each path
    /// segment percent-encoded (Flux: `http://<adv-addr>/<kind>/<ns>/<name>/<file>`). This is
    /// what a controller writes into `status.artifact.url`.
    pub fn url_for(&self, artifact: &Artifact) -> String {
        let mut url = self.base_url.clone();
        for seg in artifact.path.split('/').filter(|s| !s.is_empty()) {
            url.push('/');
            url.push_str(&percent_encode(seg));
        }
        url
    }

    /// Stops accepting connections, lets requests in flight finish for up to 5 seconds (Flux's
    /// graceful shutdown of the storage server), then aborts what is left (a slow download is
    /// cut). Errors: [`ServerError::Serve`] if the server had failed or panicked.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown_within(Duration::from_secs(5)).await
    }

    /// [`ArtifactServer::shutdown`] with another grace period.
    pub async fn shutdown_within(mut self, grace: Duration) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(grace, &mut task).await {
            Ok(Ok(r)) => r.map_err(ServerError::Serve),
            Ok(Err(e)) => Err(ServerError::Serve(io::Error::other(e))),
            Err(_) => {
                tracing::warn!(addr = %self.local_addr, "artifact server: grace period over, aborting open connections");
                task.abort();
                let _ = task.await;
                Ok(())
            }
        }
    }
}

impl Drop for ArtifactServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// RFC 3986 unreserved characters stay, every other byte becomes `%XX`.
fn percent_encode(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The request path as a relative path of plain, non-hidden segments, or the status to answer.
/// `..`, `.`, empty segments (`//`, absolute paths after decoding), `\` and NUL give 400; a
/// hidden segment (`.tmp-*`, lock files) gives 404.
fn request_rel_path(uri: &Uri) -> Result<PathBuf, StatusCode> {
    let decoded = percent_decode(uri.path()).ok_or(StatusCode::BAD_REQUEST)?;
    let rest = decoded.strip_prefix('/').ok_or(StatusCode::BAD_REQUEST)?;
    if rest.is_empty() {
        return Err(StatusCode::NOT_FOUND);
    }
    let mut rel = PathBuf::new();
    for seg in rest.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains(['\\', '\0', ':']) {
            return Err(StatusCode::BAD_REQUEST);
        }
        if seg.starts_with('.') {
            return Err(StatusCode::NOT_FOUND);
        }
        rel.push(seg);
    }
    Ok(rel)
}

fn status(code: StatusCode) -> Response {
    (code, code.canonical_reason().unwrap_or("")).into_response()
}

async fn serve_file(root: &Path, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let rel = match request_rel_path(uri) {
        Ok(rel) => rel,
        Err(code) => return status(code),
    };
    // Resolve symlinks and require the result to stay below the root, with no hidden segment
    // (a link inside the root to a temp file), then open the resolved path, which has no links.
    let resolved = match tokio::fs::canonicalize(root.join(&rel)).await {
        Ok(p) => p,
        Err(_) => return status(StatusCode::NOT_FOUND),
    };
    let inside = resolved.strip_prefix(root).is_ok_and(|r| {
        r.components()
            .all(|c| matches!(c, Component::Normal(s) if !s.to_string_lossy().starts_with('.')))
    });
    if !inside {
        tracing::warn!(path = %uri.path(), "artifact server: refused a path resolving outside the store");
        return status(StatusCode::NOT_FOUND);
    }
    let file = match tokio::fs::File::open(&resolved).await {
        Ok(f) => f,
        Err(_) => return status(StatusCode::NOT_FOUND),
    };
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        // Folders (no listings), devices, fifos.
        _ => return status(StatusCode::NOT_FOUND),
    };
    let len = meta.len();
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    resp_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(modified) = meta.modified() {
        let nanos = modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        if let Ok(v) = HeaderValue::from_str(&format!("\"{len:x}-{nanos:x}\"")) {
            if headers.get(header::IF_NONE_MATCH) == Some(&v) {
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                r.headers_mut().insert(header::ETAG, v);
                return r;
            }
            resp_headers.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            resp_headers.insert(header::LAST_MODIFIED, v);
        }
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(tokio_util::io::ReaderStream::new(file))
    };
    (StatusCode::OK, resp_headers, body).into_response()
}

/// Limits and timeouts of [`ArtifactFetcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// Largest body accepted, in bytes (default 100 MiB; Flux's fetcher takes a max download
    /// size). A `Content-Length` over it is refused before reading, a body growing over it while
    /// streaming is cut.
    pub max_download_bytes: u64,
    /// Limits of the extraction (total uncompressed bytes, entry count).
    pub extract: ExtractLimits,
    /// Timeout of the whole request, body included (default 5 minutes).
    pub timeout: Duration,
    /// Timeout of the TCP (and TLS) connect (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            max_download_bytes: 100 << 20,
            extract: ExtractLimits::default(),
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Errors of [`ArtifactFetcher::fetch`]. [`FetchError::is_retryable`] tells whether trying the
/// same URL again later can succeed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse or is not `http(s)://`. Terminal.
    #[error("artifact URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// Connect, TLS, timeout or a body cut short. Retryable.
    #[error("artifact {url}: request failed: {source}")]
    Network {
        /// The URL.
        url: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// A non-2xx answer. Retryable for 5xx, 408, 429 and 404 (see [`FetchError::is_retryable`]);
    /// terminal for other codes.
    #[error("artifact {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The body is larger than [`FetchLimits::max_download_bytes`]. Terminal.
    #[error("artifact {url}: body exceeds the download limit of {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The downloaded bytes hash to another digest than expected. Terminal: nothing was
    /// extracted.
    #[error(
        "artifact {url}: digest mismatch: expected {expected}, downloaded {actual} ({size} bytes)"
    )]
    DigestMismatch {
        /// The URL.
        url: String,
        /// The expected digest (from `status.artifact.digest`).
        expected: String,
        /// What the body hashes to.
        actual: String,
        /// How many bytes were downloaded.
        size: u64,
    },
    /// The expected digest uses an algorithm this fetcher cannot compute (only `sha256`).
    /// Terminal.
    #[error("artifact {url}: unsupported digest algorithm in {expected}")]
    UnsupportedDigest {
        /// The URL.
        url: String,
        /// The expected digest.
        expected: String,
    },
    /// A local file operation (temp file) failed. Retryable.
    #[error("artifact {url}: {op}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The verified archive could not be extracted (unsafe entry, over the extract limits, bad
    /// gzip/tar, or a write error under the destination). Terminal except for
    /// [`StoreError::Io`].
    #[error("artifact {url}: extract: {source}")]
    Extract {
        /// The URL.
        url: String,
        /// The store's error.
        source: StoreError,
    },
}

impl FetchError {
    /// Whether requeueing and fetching the same URL again can succeed.
    ///
    /// Retryable: network errors and timeouts, HTTP 5xx, 408 and 429, local I/O errors, and 404:
    /// source-controller garbage-collects old artifacts, so a 404 usually means the source
    /// published a new revision whose URL the caller will read on its next attempt
    /// (kustomize-controller requeues on Flux's `ErrFileNotFound` the same way).
    ///
    /// Terminal: a bad URL, other 4xx, an oversized body, an unsupported digest algorithm, a
    /// digest mismatch (the served bytes are not the artifact the status names; only a new
    /// artifact from the source fixes it), and an archive refused by the extractor.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Network { .. } | FetchError::Io { .. } => true,
            FetchError::Status { status, .. } => {
                *status >= 500 || matches!(status, 404 | 408 | 429)
            }
            FetchError::Extract { source, .. } => matches!(source, StoreError::Io { .. }),
            FetchError::InvalidUrl { .. }
            | FetchError::TooLarge { .. }
            | FetchError::DigestMismatch { .. }
            | FetchError::UnsupportedDigest { .. } => false,
        }
    }
}

/// What [`ArtifactFetcher::fetch`] downloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The verified digest of the downloaded tar.gz.
    pub digest: Digest,
    /// Size of the downloaded tar.gz in bytes.
    pub size: u64,
}

/// Downloads, verifies and extracts artifacts (Flux's `fetch.ArchiveFetcher`). Holds one HTTP
/// client: build it once and reuse it.
#[derive(Clone, Debug)]
pub struct ArtifactFetcher {
    client: reqwest::Client,
    limits: FetchLimits,
    host_override: Option<String>,
}

impl ArtifactFetcher {
    /// A fetcher with `limits`. HTTPS uses rustls with the ring provider, installed as the
    /// process default unless the application installed one. Errors: the client cannot be built
    /// (TLS set-up).
    pub fn new(limits: FetchLimits) -> Result<Self, reqwest::Error> {
        crate::util::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.connect_timeout)
            .build()?;
        Ok(ArtifactFetcher {
            client,
            limits,
            host_override: None,
        })
    }

    /// Replaces the host (and port, when given) of every artifact URL with `host_port`, e.g.
    /// `localhost:9090`: Flux's `SOURCE_CONTROLLER_LOCALHOST`, for a consumer running outside
    /// the cluster while sources advertise in-cluster URLs. [`ArtifactFetcher::fetch`] returns
    /// [`FetchError::InvalidUrl`] if the result does not parse.
    pub fn with_host_override(mut self, host_port: impl Into<String>) -> Self {
        self.host_override = Some(host_port.into());
        self
    }

    /// Downloads `url` to an anonymous temp file while hashing it, refuses a body over
    /// [`FetchLimits::max_download_bytes`] or a digest other than `expected` (only `sha256:`
    /// digests, Flux's default), then extracts the archive into `dest` (created when missing)
    /// with [`extract_tar_gz`] and [`FetchLimits::extract`].
    ///
    /// Nothing is written under `dest` before the digest is verified. An extraction refused
    /// half-way leaves what was written so far: extract into a fresh folder, as
    /// kustomize-controller does with a temp dir per reconcile.
    pub async fn fetch(
        &self,
        url: &str,
        expected: &Digest,
        dest: &Path,
    ) -> Result<Fetched, FetchError> {
        let invalid = |reason: &str| FetchError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let mut parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if let Some(host_port) = &self.host_override {
            let swapped = format!("{}://{host_port}", parsed.scheme());
            let base = reqwest::Url::parse(&swapped).map_err(|e| invalid(&e.to_string()))?;
            parsed
                .set_host(base.host_str())
                .map_err(|e| invalid(&e.to_string()))?;
            parsed
                .set_port(base.port())
                .map_err(|()| invalid("host override: cannot set the port"))?;
        }
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("scheme is not http or https"));
        }
        if expected.algorithm() != gitops_core::Algorithm::Sha256 {
            return Err(FetchError::UnsupportedDigest {
                url: url.to_string(),
                expected: expected.to_string(),
            });
        }
        let net = |source| FetchError::Network {
            url: url.to_string(),
            source,
        };
        let io_err = |op| {
            move |source| FetchError::Io {
                url: url.to_string(),
                op,
                source,
            }
        };
        let limit = self.limits.max_download_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };

        let mut resp = self.client.get(parsed).send().await.map_err(net)?;
        let code = resp.status();
        if !code.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: code.as_u16(),
            });
        }
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let file = tempfile::tempfile().map_err(io_err("create temp file"))?;
        let mut hashing = DigestWriter::new(io::BufWriter::new(file));
        let mut received = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(net)? {
            received += chunk.len() as u64;
            if received > limit {
                return Err(too_large());
            }
            hashing
                .write_all(&chunk)
                .map_err(io_err("write temp file"))?;
        }
        let (buf, actual, size) = hashing.finish();
        if &actual != expected {
            return Err(FetchError::DigestMismatch {
                url: url.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
                size,
            });
        }
        let mut file = buf
            .into_inner()
            .map_err(|e| io_err("write temp file")(e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("rewind temp file"))?;

        let dest = dest.to_path_buf();
        let extract = self.limits.extract;
        let name = PathBuf::from(url);
        tokio::task::spawn_blocking(move || {
            extract_tar_gz(BufReader::new(file), &name, &dest, extract)
        })
        .await
        .map_err(|e| io_err("extract task")(io::Error::other(e)))?
        .map_err(|source| FetchError::Extract {
            url: url.to_string(),
            source,
        })?;
        Ok(Fetched {
            digest: actual,
            size,
        })
    }

    /// [`ArtifactFetcher::fetch`] of `artifact.url`, expecting `artifact.digest`: what a consumer
    /// does with a source's `status.artifact`.
    pub async fn fetch_artifact(
        &self,
        artifact: &Artifact,
        dest: &Path,
    ) -> Result<Fetched, FetchError> {
        self.fetch(&artifact.url, &artifact.digest, dest).await
    }
}

/// One-shot [`ArtifactFetcher::fetch`] with a new client: downloads `url`, verifies it hashes to
/// `expected`, and extracts it into `dest`. Reuse an [`ArtifactFetcher`] for repeated fetches.
pub async fn fetch_artifact(
    url: &str,
    expected: &Digest,
    dest: &Path,
    limits: FetchLimits,
) -> Result<Fetched, FetchError> {
    let fetcher = ArtifactFetcher::new(limits).map_err(|source| FetchError::Network {
        url: url.to_string(),
        source,
    })?;
    fetcher.fetch(url, expected, dest).await
}
