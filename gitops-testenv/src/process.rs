//! Child processes with their output in a log file, stopped by PID.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How long a process gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// A running control-plane process.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args…` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Proc, Error> {
        Proc::spawn_with_env(name, program, args, &[], log)
    }

    /// [`Proc::spawn_with_env`], adding `install_hint` (e.g. `pip install 'moto[server]'`) to the
    /// error when the program cannot be started.
    pub(crate) fn spawn_or_hint(
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
        install_hint: &str,
    ) -> Result<Proc, Error> {
        Proc::spawn_with_env(name, Path::new(name), args, env, log).map_err(|e| match e {
            Error::Io { context, source } => Error::Io {
                context: format!("{context} (install it with `{install_hint}`)"),
                source,
            },
            other => other,
        })
    }

    /// [`Proc::spawn`] with extra environment variables for the child.
    pub(crate) fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Result<Proc, Error> {
        let out =
            File::create(&log).map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", program.display()), e))?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The part of the log that explains a failure: from a Go crash (`panic:`, `fatal error:`)
    /// when there is one (its goroutine dump would push it out of the tail), else the last lines.
    pub(crate) fn log_tail(&self) -> String {
        log_excerpt(&self.log, 40)
    }

    /// `Err(ProcessExited)` when the process is no longer running.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::ProcessExited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log.clone(),
                log_tail: self.log_tail(),
            }),
            Err(e) => Err(Error::io(format!("waiting for {}", self.name), e)),
        }
    }

    /// The error for a process that did not get ready within `timeout`.
    pub(crate) fn not_ready(&self, timeout: Duration, waiting_for: impl Into<String>) -> Error {
        Error::NotReady {
            name: self.name.clone(),
            timeout,
            waiting_for: waiting_for.into(),
            log: self.log.clone(),
            log_tail: self.log_tail(),
        }
    }

    /// Polls the process's log every 25 ms until `find` extracts what it waits for (e.g. the
    /// URL a server prints once it listens), for at most until `deadline`.
    ///
    /// Errors: [`Error::ProcessExited`] when it exits, [`Error::NotReady`] (naming
    /// `waiting_for`, with `timeout` as the budget) when `deadline` passes.
    pub(crate) async fn wait_for_log<T>(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        waiting_for: &str,
        find: impl Fn(&str) -> Option<T>,
    ) -> Result<T, Error> {
        loop {
            self.check_running()?;
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(found) = find(&text) {
                return Ok(found);
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(timeout, waiting_for));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Calls `probe` every 25 ms until it answers `true` (e.g. an HTTP request succeeding), for
    /// at most until `deadline`. Errors as [`Proc::wait_for_log`].
    pub(crate) async fn wait_until<F, Fut>(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        waiting_for: &str,
        mut probe: F,
    ) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            self.check_running()?;
            if probe().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(timeout, waiting_for));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether the log mentions a port that was taken between probing and binding.
    pub(crate) fn lost_port_race(&self) -> bool {
        log_tail(&self.log, 200).contains("address already in use")
    }

    /// SIGKILL at once (a crash, no graceful shutdown); waits for the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL after a grace period; waits for the process in both cases.
    pub(crate) fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let termed = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if termed {
            let deadline = Instant::now() + GRACE;
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Ok(Some(_)) | Err(_) => return,
                }
            }
            tracing::warn!(name = %self.name, pid, "did not stop after SIGTERM, killing");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a file (at most its last 64 KiB), or a note why it can't be read.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Lines that start a Go program's crash report.
const CRASH_MARKERS: [&str; 3] = ["panic: ", "fatal error: ", "unexpected fault address"];

/// `lines` lines from the first Go crash marker in the log, or its last `lines` lines.
pub(crate) fn log_excerpt(path: &Path, lines: usize) -> String {
    let Ok(text) = std::fs::read(path) else {
        return log_tail(path, lines);
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    match all
        .iter()
        .position(|l| CRASH_MARKERS.iter().any(|m| l.starts_with(m)))
    {
        Some(start) => all[start..(start + lines).min(all.len())].join("\n"),
        None => all[all.len().saturating_sub(lines)..].join("\n"),
    }
}

/// Runs a helper command to completion; `Err(Command)` with its stderr when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<Vec<u8>, Error> {
    let line = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("starting {line}"), e))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("log");
        std::fs::write(&f, "1\n2\n3\n4\n").unwrap();
        assert_eq!(log_tail(&f, 2), "3\n4");
        assert_eq!(log_tail(&f, 10), "1\n2\n3\n4");
        assert!(log_tail(&tmp.path().join("nope"), 2).starts_with("(cannot read"));
    }

    #[test]
    fn a_go_crash_is_shown_from_its_start() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("log");
        let mut log =
            String::from("I0101 starting\nunexpected fault address 0x0\nfatal error: fault\n");
        for i in 0..100 {
            log.push_str(&format!("goroutine {i}\n"));
        }
        std::fs::write(&f, &log).unwrap();
        let excerpt = log_excerpt(&f, 5);
        assert!(excerpt.starts_with("unexpected fault address"), "{excerpt}");
        assert_eq!(excerpt.lines().count(), 5);
        std::fs::write(&f, "a\nb\nc\n").unwrap();
        assert_eq!(log_excerpt(&f, 2), "b\nc");
    }

    #[test]
    fn a_process_that_exits_is_reported_with_its_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = Proc::spawn(
            "sh",
            Path::new("sh"),
            &["-c".into(), "echo boom; exit 3".into()],
            tmp.path().join("sh.log"),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            match p.check_running() {
                Err(e) => break e,
                Ok(()) if Instant::now() > deadline => panic!("sh did not exit"),
                Ok(()) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let msg = err.to_string();
        assert!(msg.contains("sh exited"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn stop_ends_a_plain_process_quickly_and_kills_one_that_ignores_sigterm() {
        let tmp = tempfile::tempdir().unwrap();
        let mut plain = Proc::spawn(
            "sleep",
            Path::new("sleep"),
            &["60".into()],
            tmp.path().join("a.log"),
        )
        .unwrap();
        let started = Instant::now();
        plain.stop();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(plain.child.try_wait().unwrap().is_some());

        let mut stubborn = Proc::spawn(
            "stubborn",
            Path::new("sh"),
            &[
                "-c".into(),
                "trap '' TERM; echo up; while :; do sleep 0.1; done".into(),
            ],
            tmp.path().join("b.log"),
        )
        .unwrap();
        // Let the shell install its trap before signalling it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log_tail(&tmp.path().join("b.log"), 1).contains("up") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let started = Instant::now();
        stubborn.stop();
        assert!(started.elapsed() >= GRACE);
        assert!(stubborn.child.try_wait().unwrap().is_some());
    }

    #[test]
    fn a_failing_helper_command_reports_its_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo nope >&2; exit 1"])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert_eq!(
            run(Command::new("sh").args(["-c", "printf ok"])).unwrap(),
            b"ok"
        );
    }
}
