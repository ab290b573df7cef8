//! [`StaticHttpServer`]: the files under a folder over HTTP/1.1 (plain, or HTTPS with a
//! [`TestCa`]) on `127.0.0.1`, for sources that download files (a Helm chart repository:
//! `index.yaml` and chart `.tgz` files).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::tls::serve_connection;
use crate::{Error, TestCa};

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    /// `user:pass` when basic authentication is required.
    basic: Option<String>,
    /// `GET`/`HEAD` requests answered `200`, for tests that check what was downloaded.
    served: AtomicU64,
}

/// A static-file HTTP server on `127.0.0.1`: `GET`/`HEAD {url()}/a/b.txt` answers the file
/// `root/a/b.txt` (read on each request, so tests may change files while it runs), `404` when
/// missing, `400` for paths with `..`, `405` for other methods. Optionally behind HTTP basic
/// authentication (`401` with `WWW-Authenticate: Basic realm="static"` otherwise).
/// Stops when dropped.
///
/// The `start_tls*` variants serve HTTPS with the server certificate of a [`TestCa`] (valid for
/// `127.0.0.1` and `localhost`); clients must trust [`TestCa::ca_pem`].
#[derive(Debug)]
pub struct StaticHttpServer {
    addr: SocketAddr,
    https: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl StaticHttpServer {
    /// Serves `root` to anyone.
    pub async fn start(root: &Path) -> Result<StaticHttpServer, Error> {
        StaticHttpServer::serve(root, None, None).await
    }

    /// Serves `root` to anyone over HTTPS, with the server certificate of `ca`.
    /// [`StaticHttpServer::url`] is then `https://127.0.0.1:PORT`.
    ///
    /// Errors: as [`StaticHttpServer::start`], and [`Error::Tls`] when the TLS configuration
    /// cannot be made.
    pub async fn start_tls(root: &Path, ca: &TestCa) -> Result<StaticHttpServer, Error> {
        StaticHttpServer::serve(root, None, Some(ca.acceptor()?)).await
    }

    /// [`StaticHttpServer::start_with_basic_auth`] over HTTPS, with the server certificate of
    /// `ca`.
    pub async fn start_tls_with_basic_auth(
        root: &Path,
        ca: &TestCa,
        user: &str,
        pass: &str,
    ) -> Result<StaticHttpServer, Error> {
        let basic = Some(format!("{user}:{pass}"));
        StaticHttpServer::serve(root, basic, Some(ca.acceptor()?)).await
    }

    /// Serves `root` to requests with HTTP basic credentials `user`/`pass` only.
    pub async fn start_with_basic_auth(
        root: &Path,
        user: &str,
        pass: &str,
    ) -> Result<StaticHttpServer, Error> {
        StaticHttpServer::serve(root, Some(format!("{user}:{pass}")), None).await
    }

    /// The base URL, `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` for the `start_tls*`
    /// variants (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// How many requests were answered with a file (`200`) so far.
    pub fn files_served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
    }

    /// Stops serving (dropping does the same).
    pub fn stop(self) {
        drop(self);
    }

    /// Stops serving and waits until the listening socket is closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn serve(
        root: &Path,
        basic: Option<String>,
        tls: Option<TlsAcceptor>,
    ) -> Result<StaticHttpServer, Error> {
        let root = std::fs::canonicalize(root)
            .map_err(|e| Error::io(format!("static folder {}", root.display()), e))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("binding 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let shared = Arc::new(Shared {
            root,
            basic,
            served: AtomicU64::new(0),
        });
        let (shutdown, stopped) = watch::channel(false);
        let https = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), tls, stopped));
        Ok(StaticHttpServer {
            addr,
            https,
            shared,
            shutdown,
            task: Some(task),
        })
    }
}

impl Drop for StaticHttpServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = stopped.changed() => return,
        };
        let shared = shared.clone();
        let tls = tls.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let conn = serve_connection(stream, tls.as_ref(), service);
            tokio::select! {
                _ = conn => {},
                _ = stopped.changed() => {}
            }
        });
    }
}

fn simple(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(expected) = &shared.basic else {
        return true;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .is_some_and(|creds| creds == expected.as_bytes())
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !authorized(shared, &req) {
        let mut resp = simple(StatusCode::UNAUTHORIZED, "authentication required");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"static\""),
        );
        return resp;
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return simple(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    }
    let Some(rel) = percent_decode(req.uri().path()) else {
        return simple(StatusCode::BAD_REQUEST, "bad percent-encoding");
    };
    let rel = PathBuf::from(rel.trim_start_matches('/'));
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return simple(StatusCode::BAD_REQUEST, "path leaves the served folder");
    }
    let path = shared.root.join(&rel);
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(_) => return simple(StatusCode::NOT_FOUND, "not found"),
    };
    shared.served.fetch_add(1, Ordering::SeqCst);
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "application/x-yaml",
        Some("tgz" | "gz") => "application/gzip",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let len = data.len();
    let mut resp = Response::new(Full::new(if head {
        Bytes::new()
    } else {
        Bytes::from(data)
    }));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// `%XX` decoding of a URL path; `None` for bad escapes or non-UTF-8 results.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
