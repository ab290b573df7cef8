//! A throwaway OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on a
//! free `127.0.0.1` port, plain HTTP, filesystem storage in a temporary folder, optionally behind
//! htpasswd basic authentication.
//!
//! ```no_run
//! use gitops_testenv::OciRegistry;
//!
//! # fn example() -> Result<(), gitops_testenv::Error> {
//! let registry = OciRegistry::start()?;
//! let url = format!("oci://{}/demo/manifests", registry.host()); // e.g. oci://127.0.0.1:40123/...
//! registry.stop(); // or drop it: the process is killed by PID either way
//! # Ok(()) }
//! ```
//!
//! Needs `docker-registry` on `PATH` (or named by `GITOPS_DOCKER_REGISTRY`), and `htpasswd`
//! (apache2-utils) for [`OciRegistry::start_with_basic_auth`]; `cargo xtask ci` installs both.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How long [`OciRegistry::start`] waits for `GET /v2/` to answer (the registry starts in
/// ~40 ms here).
pub const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `docker-registry` process. Killed (by PID) and reaped on [`OciRegistry::stop`] or
/// drop; its temporary folder (config, htpasswd, storage, log) is removed with it.
#[derive(Debug)]
pub struct OciRegistry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts an anonymous registry: every request is allowed.
    pub fn start() -> Result<OciRegistry, Error> {
        Self::start_inner(None)
    }

    /// Starts a registry that requires HTTP basic authentication as `user`/`pass` (a bcrypt
    /// htpasswd entry, realm `test-realm`): `GET /v2/` without them answers 401.
    pub fn start_with_basic_auth(user: &str, pass: &str) -> Result<OciRegistry, Error> {
        Self::start_inner(Some((user, pass)))
    }

    fn start_inner(auth: Option<(&str, &str)>) -> Result<OciRegistry, Error> {
        let mut dir = tempfile::Builder::new()
            .prefix("gitops-registry-")
            .tempdir()
            .map_err(io("creating the registry's temporary folder"))?;
        let mut auth_yaml = String::new();
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .map_err(io("running htpasswd (apache2-utils)"))?;
            if !out.status.success() {
                return Err(Error::Command {
                    command: format!("htpasswd -Bbn {user} ***"),
                    status: out.status.to_string(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, &out.stdout).map_err(io("writing htpasswd"))?;
            auth_yaml = format!(
                "auth: {{htpasswd: {{realm: test-realm, path: {}}}}}\n",
                htpasswd.display()
            );
        }
        let binary =
            std::env::var("GITOPS_DOCKER_REGISTRY").unwrap_or_else(|_| "docker-registry".into());
        // A freshly probed port may be taken by someone else before the registry binds it:
        // try a few times.
        let mut last_err = None;
        for _ in 0..3 {
            let port = free_port()?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log: {{level: warn, accesslog: {{disabled: true}}}}\n\
                     storage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
                     http: {{addr: '{addr}', secret: throwaway-test-secret}}\n{auth_yaml}",
                    dir.path().join("data").display()
                ),
            )
            .map_err(io("writing the registry config"))?;
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).map_err(io("creating the registry log"))?;
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(io("opening the registry log"))?)
                .stderr(log)
                .spawn()
                .map_err(io(&format!(
                    "starting {binary} (install Debian's docker-registry)"
                )))?;
            let mut registry = OciRegistry {
                child: Some(child),
                addr,
                dir,
            };
            match registry.wait_ready(&log_path) {
                Ok(()) => return Ok(registry),
                Err(e) => {
                    registry.kill();
                    last_err = Some(e);
                    dir = std::mem::replace(
                        &mut registry.dir,
                        tempfile::TempDir::new().map_err(io("creating a temporary folder"))?,
                    );
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// Polls `GET /v2/` until it answers 200 or 401, the process exits, or the timeout passes.
    fn wait_ready(&mut self, log: &Path) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(Error::ProcessExited {
                    name: "docker-registry".into(),
                    status: status.to_string(),
                    log: log.to_path_buf(),
                    log_tail: tail(log),
                });
            }
            if matches!(self.v2_status(), Some(200 | 401)) {
                return Ok(());
            }
            if started.elapsed() > REGISTRY_START_TIMEOUT {
                return Err(Error::NotReady {
                    name: "docker-registry".into(),
                    timeout: REGISTRY_START_TIMEOUT,
                    waiting_for: "GET /v2/ answering 200 or 401".into(),
                    log: log.to_path_buf(),
                    log_tail: tail(log),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The HTTP status of an anonymous `GET /v2/` (200 open, 401 with basic auth), or `None`
    /// when the registry does not answer.
    pub fn v2_status(&self) -> Option<u16> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(
            s,
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    /// `127.0.0.1:PORT`, the registry host as it goes into `oci://` references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, the registry's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id of the registry.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The registry's storage folder (`<temp>/data`), e.g. to tamper with a stored blob.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the process (by its PID) and waits for it; the temporary folder goes when `self` does.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("probing a free port"))?;
    Ok(l.local_addr().map_err(io("probing a free port"))?.port())
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: context.to_string(),
        source,
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let r = OciRegistry::start().unwrap();
        assert_eq!(r.v2_status(), Some(200));
        assert!(r.host().starts_with("127.0.0.1:"));
        let probe = OciRegistry {
            child: None,
            addr: r.addr,
            dir: tempfile::TempDir::new().unwrap(),
        };
        r.stop();
        assert_eq!(probe.v2_status(), None, "stopped registry still answers");
    }

    #[test]
    fn basic_auth_is_required() {
        let r = OciRegistry::start_with_basic_auth("user", "s3cret").unwrap();
        assert_eq!(r.v2_status(), Some(401));
    }
}
