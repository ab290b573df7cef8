//! [`SshGitServer`]: Git repositories over SSH, served by OpenSSH's `sshd` on `127.0.0.1`.
//!
//! The server runs `/usr/sbin/sshd` (Debian's `openssh-server`) in the foreground with a
//! throwaway ed25519 host key and one authorized client key, both generated with `ssh-keygen`.
//! Clients log in as the user running the tests (`sshd` has to run as root for that to work for
//! any user but its own; tests here run as root) and reach repositories by absolute path:
//! `ssh://root@127.0.0.1:PORT/abs/path/demo.git`. `git-upload-pack` is found on `sshd`'s
//! default `PATH`. `AcceptEnv GIT_PROTOCOL` lets clients ask for protocol v2 (as on GitHub).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Proc, run};

/// Where Debian's `openssh-server` installs `sshd` (it must be started by absolute path).
pub const SSHD: &str = "/usr/sbin/sshd";

/// How long [`SshGitServer::start`] waits for `sshd` to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// An `sshd` on a free loopback port serving Git over SSH to one client key pair. Stops (SIGTERM
/// to its PID, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct SshGitServer {
    port: u16,
    user: String,
    host_public_key: String,
    client_key: String,
    dir: tempfile::TempDir,
    proc: Proc,
}

impl SshGitServer {
    /// Generates a host key and a client key pair, and starts `sshd` on a free port of
    /// `127.0.0.1`; returns once it accepts TCP connections.
    pub fn start() -> Result<SshGitServer, Error> {
        let sshd = Path::new(SSHD);
        if !sshd.exists() {
            return Err(Error::MissingBinary {
                path: sshd.to_path_buf(),
            });
        }
        // Privilege separation directory, needed when sshd runs as root.
        if is_root() {
            std::fs::create_dir_all("/run/sshd").map_err(|e| Error::io("creating /run/sshd", e))?;
        }
        let dir = tempfile::Builder::new()
            .prefix("gitops-sshd-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary folder", e))?;
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&host_key)?;
        keygen(&client_key)?;
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized)
            .map_err(|e| Error::io("writing authorized_keys", e))?;
        let user = current_user();

        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        let text = format!(
            "ListenAddress 127.0.0.1\n\
             HostKey {host}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized}\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             UsePAM no\n\
             StrictModes no\n\
             AcceptEnv GIT_PROTOCOL\n\
             LogLevel VERBOSE\n",
            host = host_key.display(),
            pid = dir.path().join("sshd.pid").display(),
            authorized = authorized.display(),
        );
        std::fs::write(&config, text).map_err(|e| Error::io("writing sshd_config", e))?;
        let args = [
            "-D".to_string(),
            "-e".to_string(),
            "-f".to_string(),
            config.display().to_string(),
            "-p".to_string(),
            port.to_string(),
        ];
        let mut proc = Proc::spawn("sshd", sshd, &args, dir.path().join("sshd.log"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            proc.check_running()?;
            if Instant::now() > deadline {
                return Err(proc.not_ready(START_TIMEOUT, format!("port {port}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }

        let host_public_key = read_public_key(&host_key.with_extension("pub"))?;
        let client_key = std::fs::read_to_string(&client_key)
            .map_err(|e| Error::io("reading the client key", e))?;
        Ok(SshGitServer {
            port,
            user,
            host_public_key,
            client_key,
            dir,
            proc,
        })
    }

    /// The port `sshd` listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user clients log in as (the one running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `ssh://USER@127.0.0.1:PORT/ABSOLUTE/PATH` for a repository at `repo_path` (made absolute).
    pub fn url_for(&self, repo_path: &Path) -> String {
        let path = std::path::absolute(repo_path).unwrap_or_else(|_| repo_path.to_path_buf());
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// The authorized client's private key, in OpenSSH format.
    pub fn client_key(&self) -> &str {
        &self.client_key
    }

    /// The `known_hosts` line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key)
    }

    /// A new ed25519 key pair that is not authorized: `(private key, public key line)`.
    pub fn unauthorized_key(&self) -> Result<(String, String), Error> {
        let path = self.dir.path().join(format!(
            "other_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        keygen(&path)?;
        let private = std::fs::read_to_string(&path)
            .map_err(|e| Error::io("reading the generated key", e))?;
        let public = read_public_key(&path.with_extension("pub"))?;
        Ok((private, public))
    }

    /// `sshd`'s log file (`-e`: its messages, one line per connection and authentication).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    /// The process id of `sshd`.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops `sshd` (also done on drop).
    pub fn stop(mut self) {
        self.proc.stop();
    }
}

/// `ssh-keygen -q -t ed25519 -N '' -f path`.
fn keygen(path: &Path) -> Result<(), Error> {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "gitops-testenv",
            "-f",
        ])
        .arg(path))
    .map(drop)
}

/// `ssh-ed25519 AAAA…` from a `.pub` file (without the comment).
fn read_public_key(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("probing a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("probing a free port", e))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".to_string())
}
