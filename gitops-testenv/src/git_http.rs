//! [`GitHttpServer`]: Git repositories over smart HTTP (or HTTPS with a [`TestCa`]),
//! `git http-backend` run as a CGI program per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::process::run;
use crate::tls::serve_connection;
use crate::{Error, TestCa};

/// Who may read (and, when authenticated, push).
#[derive(Debug, Clone)]
enum Auth {
    Anonymous,
    Basic { user: String, pass: String },
    Bearer { token: String },
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    backend: PathBuf,
    auth: Auth,
}

/// A Git smart-HTTP server on `127.0.0.1` serving the bare repositories under a folder: the
/// repository `root/demo.git` is `{url()}/demo.git`. Each request runs `git http-backend`.
///
/// Clones and fetches (protocol v0 and v2, shallow ones included) work anonymously or with the
/// configured credentials; pushes work when credentials are configured (git enables
/// receive-pack for authenticated users). Stops when dropped.
///
/// The `start_tls*` variants serve HTTPS with the server certificate of a [`TestCa`] (valid for
/// `127.0.0.1` and `localhost`); clients must trust [`TestCa::ca_pem`].
#[derive(Debug)]
pub struct GitHttpServer {
    addr: SocketAddr,
    https: bool,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl GitHttpServer {
    /// Serves `repos_root` to anyone.
    pub async fn start(repos_root: &Path) -> Result<GitHttpServer, Error> {
        GitHttpServer::serve(repos_root, Auth::Anonymous, None).await
    }

    /// Serves `repos_root` to anyone over HTTPS, with the server certificate of `ca`.
    /// [`GitHttpServer::url`] is then `https://127.0.0.1:PORT`.
    ///
    /// Errors: as [`GitHttpServer::start`], and [`Error::Tls`] when the TLS configuration
    /// cannot be made.
    pub async fn start_tls(repos_root: &Path, ca: &TestCa) -> Result<GitHttpServer, Error> {
        GitHttpServer::serve(repos_root, Auth::Anonymous, Some(ca.acceptor()?)).await
    }

    /// [`GitHttpServer::start_with_basic_auth`] over HTTPS, with the server certificate of `ca`.
    pub async fn start_tls_with_basic_auth(
        repos_root: &Path,
        ca: &TestCa,
        user: &str,
        pass: &str,
    ) -> Result<GitHttpServer, Error> {
        let auth = Auth::Basic {
            user: user.to_string(),
            pass: pass.to_string(),
        };
        GitHttpServer::serve(repos_root, auth, Some(ca.acceptor()?)).await
    }

    /// Serves `repos_root` to requests with HTTP basic credentials `user`/`pass`; others get
    /// `401` with `WWW-Authenticate: Basic realm="git"`.
    pub async fn start_with_basic_auth(
        repos_root: &Path,
        user: &str,
        pass: &str,
    ) -> Result<GitHttpServer, Error> {
        let auth = Auth::Basic {
            user: user.to_string(),
            pass: pass.to_string(),
        };
        GitHttpServer::serve(repos_root, auth, None).await
    }

    /// Serves `repos_root` to requests with `Authorization: Bearer <token>`; others get `401`
    /// with `WWW-Authenticate: Bearer realm="git"`.
    pub async fn start_with_bearer_token(
        repos_root: &Path,
        token: &str,
    ) -> Result<GitHttpServer, Error> {
        let auth = Auth::Bearer {
            token: token.to_string(),
        };
        GitHttpServer::serve(repos_root, auth, None).await
    }

    /// The server's base URL, `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` for the
    /// `start_tls*` variants (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops serving (dropping does the same). The listening socket closes once the runtime
    /// has cancelled the accept task; use [`GitHttpServer::shutdown`] to wait for that.
    pub fn stop(self) {
        drop(self);
    }

    /// Stops serving and waits until the port is closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn serve(
        repos_root: &Path,
        auth: Auth,
        tls: Option<TlsAcceptor>,
    ) -> Result<GitHttpServer, Error> {
        let root = std::fs::canonicalize(repos_root)
            .map_err(|e| Error::io(format!("repositories folder {}", repos_root.display()), e))?;
        if !root.is_dir() {
            return Err(Error::io(
                format!("repositories folder {}", root.display()),
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let exec_path = run(std::process::Command::new("git").arg("--exec-path"))?;
        let backend =
            PathBuf::from(String::from_utf8_lossy(&exec_path).trim()).join("git-http-backend");
        if !backend.is_file() {
            return Err(Error::io(
                format!("looking for {}", backend.display()),
                std::io::Error::new(std::io::ErrorKind::NotFound, "git-http-backend not found"),
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("binding 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let shared = Arc::new(Shared {
            root,
            backend,
            auth,
        });
        let (shutdown, stopped) = watch::channel(false);
        let https = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, shared, tls, stopped));
        tracing::debug!(%addr, https, "git smart-HTTP server listening");
        Ok(GitHttpServer {
            addr,
            https,
            shutdown,
            task: Some(task),
        })
    }
}

impl Drop for GitHttpServer {
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
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "accept");
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let shared = shared.clone();
        let tls = tls.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, peer, req).await) }
            });
            let conn = serve_connection(stream, tls.as_ref(), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "git http connection");
                },
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

/// `Ok(Some(user))` / `Ok(None)` (anonymous) when the request may go on, else
/// `Err(challenge)`, the `WWW-Authenticate` value of the 401 answer.
fn authorize(auth: &Auth, given: Option<&str>) -> Result<Option<String>, &'static str> {
    match auth {
        Auth::Anonymous => Ok(None),
        Auth::Basic { user, pass } => {
            let ok = given
                .and_then(|v| strip_scheme(v, "Basic"))
                .and_then(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .ok()
                })
                .is_some_and(|creds| creds == format!("{user}:{pass}").as_bytes());
            if ok {
                Ok(Some(user.clone()))
            } else {
                Err("Basic realm=\"git\"")
            }
        }
        Auth::Bearer { token } => {
            let ok = given
                .and_then(|v| strip_scheme(v, "Bearer"))
                .is_some_and(|t| t.trim() == token);
            if ok {
                Ok(Some("bearer".to_string()))
            } else {
                Err("Bearer realm=\"git\"")
            }
        }
    }
}

/// The credentials after `scheme ` (scheme compared case-insensitively).
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match authorize(&shared.auth, given) {
        Ok(user) => user,
        Err(challenge) => {
            let mut resp = simple(StatusCode::UNAUTHORIZED, "authentication required");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            return resp;
        }
    };
    let header = |name: HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(header::CONTENT_TYPE);
    let content_encoding = header(header::CONTENT_ENCODING);
    let git_protocol = header(HeaderName::from_static("git-protocol"));
    let method = req.method().to_string();
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return simple(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body: {e}"),
            );
        }
    };

    let mut cmd = tokio::process::Command::new(&shared.backend);
    cmd.env_clear();
    for keep in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", peer.ip().to_string())
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*");
    if let Some(v) = &content_type {
        cmd.env("CONTENT_TYPE", v);
    }
    if let Some(v) = &content_encoding {
        cmd.env("HTTP_CONTENT_ENCODING", v);
    }
    if let Some(v) = &git_protocol {
        cmd.env("GIT_PROTOCOL", v);
    }
    if let Some(u) = &user {
        cmd.env("REMOTE_USER", u);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return simple(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("starting {}: {e}", shared.backend.display()),
            );
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            // The backend may answer without reading everything (errors): ignore a broken pipe.
            let _ = stdin.write_all(&body).await;
        });
    }
    let out = match child.wait_with_output().await {
        Ok(out) => out,
        Err(e) => {
            return simple(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("running git http-backend: {e}"),
            );
        }
    };
    if !out.stderr.is_empty() {
        tracing::debug!(
            %method, %path,
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "git http-backend"
        );
    }
    match cgi_response(&out.stdout) {
        Some(resp) => resp,
        None => simple(
            StatusCode::BAD_GATEWAY,
            &format!(
                "git http-backend gave no CGI headers ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
    }
}

/// Decodes `%XX` escapes in a URL path (invalid escapes stay as they are).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Turns a CGI program's output (headers, blank line, body) into a response: `Status:` gives
/// the status (200 without it), the other headers are copied. `None` without a header block.
fn cgi_response(output: &[u8]) -> Option<Response<Full<Bytes>>> {
    let (head_len, sep_len) = find_header_end(output)?;
    let head = std::str::from_utf8(&output[..head_len]).ok()?;
    let body = Bytes::copy_from_slice(&output[head_len + sep_len..]);
    let mut resp = Response::new(Full::new(body));
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            *resp.status_mut() = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())?;
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Some(resp)
}

/// Where the header block ends: (its length, the length of the blank-line separator).
fn find_header_end(output: &[u8]) -> Option<(usize, usize)> {
    let crlf = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_status_headers_and_body() {
        let out = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\r\nnope\n";
        let resp = cgi_response(out).unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.headers()["expires"], "Fri, 01 Jan 1980 00:00:00 GMT");

        let resp = cgi_response(
            b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e# service",
        )
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-git-upload-pack-advertisement"
        );
    }

    #[test]
    fn cgi_output_without_headers_or_with_a_bad_status_is_rejected() {
        assert!(cgi_response(b"no blank line").is_none());
        assert!(cgi_response(b"Status: abc\r\n\r\n").is_none());
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(
            percent_decode("/my%20repo.git/info/refs"),
            "/my repo.git/info/refs"
        );
        assert_eq!(percent_decode("/bad%zz%2"), "/bad%zz%2");
    }

    #[test]
    fn credentials_are_checked() {
        let basic = Auth::Basic {
            user: "u".into(),
            pass: "p".into(),
        };
        // "u:p" and "u:x" in base64.
        assert_eq!(authorize(&basic, Some("Basic dTpw")), Ok(Some("u".into())));
        assert_eq!(
            authorize(&basic, Some("Basic dTp4")),
            Err("Basic realm=\"git\"")
        );
        assert_eq!(
            authorize(&basic, Some("Basic !!")),
            Err("Basic realm=\"git\"")
        );
        assert_eq!(authorize(&basic, None), Err("Basic realm=\"git\""));
        let bearer = Auth::Bearer { token: "t".into() };
        assert_eq!(
            authorize(&bearer, Some("Bearer t")),
            Ok(Some("bearer".into()))
        );
        assert_eq!(
            authorize(&bearer, Some("Basic dTpw")),
            Err("Bearer realm=\"git\"")
        );
        assert_eq!(authorize(&Auth::Anonymous, None), Ok(None));
    }

    #[test]
    fn auth_schemes_are_case_insensitive() {
        assert_eq!(strip_scheme("basic abc", "Basic"), Some("abc"));
        assert_eq!(strip_scheme("Bearer t", "Basic"), None);
        assert_eq!(strip_scheme("Bearer", "Bearer"), None);
    }
}
