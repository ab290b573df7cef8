//! Shared test fixtures: repositories built with the `git` CLI, a `git daemon` on 127.0.0.1, and
//! helpers to look at artifacts.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitops_core::{Artifact, ArtifactKey, ArtifactStore};
use gitops_sources::git::{GitAuth, GitReference, GitRepositorySpec, GitSource};

/// Runs `git` in `dir` without user or system configuration; returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// A bare repository `root/demo.git` made from a working repository `work`:
///
/// | commit | on | content | tags |
/// | --- | --- | --- | --- |
/// | c0 "init" | master | README.md, deploy/app.yaml `version: 0` | |
/// | c1 "first release" | master | + media, CI, ignore files, run.sh; `version: 1` | v1.0.0 (lightweight) |
/// | c2 "second release" | master | `version: 2` | v1.1.0 (annotated) |
/// | c3 "third release" | master | `version: 3` | v2.0.0, v2.1.0-rc.1, latest |
/// | c4 "feature work" | feature (from c2), refs/pull/1/head | `version: feature` | |
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub work: PathBuf,
    pub root: PathBuf,
    pub bare: PathBuf,
    pub commits: BTreeMap<&'static str, String>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let root = dir.path().join("repos");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(&root).unwrap();
        git(&work, &["init", "-q", "-b", "master"]);
        let mut commits = BTreeMap::new();

        write(&work, "README.md", "# demo\n");
        write(&work, "deploy/app.yaml", "version: 0\n");
        commits.insert("c0", commit(&work, "init"));

        write(&work, "deploy/app.yaml", "version: 1\n");
        write(&work, "logo.png", "not really a png\n");
        write(&work, ".github/workflows/ci.yml", "on: push\n");
        write(&work, ".gitignore", "*.tmp\n");
        write(&work, ".sourceignore", "secret/\n");
        write(&work, "secret/key.txt", "shh\n");
        write(&work, "docs/.sourceignore", "*.md\n");
        write(&work, "docs/guide.md", "guide\n");
        write(&work, "docs/app.yaml", "kind: Doc\n");
        write(&work, "sub/.goreleaser.yml", "builds: []\n");
        write(&work, "run.sh", "#!/bin/sh\necho hi\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(work.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        }
        commits.insert("c1", commit(&work, "first release"));
        git(&work, &["tag", "v1.0.0"]);

        write(&work, "deploy/app.yaml", "version: 2\n");
        commits.insert("c2", commit(&work, "second release"));
        git(&work, &["tag", "-a", "v1.1.0", "-m", "release 1.1.0"]);

        write(&work, "deploy/app.yaml", "version: 3\n");
        commits.insert("c3", commit(&work, "third release\n\nwith a body"));
        git(&work, &["tag", "v2.0.0"]);
        git(&work, &["tag", "v2.1.0-rc.1"]);
        git(&work, &["tag", "latest"]);

        git(&work, &["checkout", "-q", "-b", "feature", "v1.1.0"]);
        write(&work, "deploy/app.yaml", "version: feature\n");
        commits.insert("c4", commit(&work, "feature work"));
        git(&work, &["checkout", "-q", "master"]);

        let bare = root.join("demo.git");
        git(
            dir.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        git(&bare, &["update-ref", "refs/pull/1/head", &commits["c4"]]);
        Fixture {
            dir,
            work,
            root,
            bare,
            commits,
        }
    }

    /// `file://` URL of the bare repository.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commits `deploy/app.yaml` = `content` on master and pushes it to the bare repository.
    pub fn push_commit(&mut self, name: &'static str, content: &str) -> String {
        write(&self.work, "deploy/app.yaml", content);
        let id = commit(&self.work, name);
        git(
            &self.work,
            &["push", "-q", self.bare.to_str().unwrap(), "master"],
        );
        self.commits.insert(name, id.clone());
        id
    }
}

fn commit(work: &Path, message: &str) -> String {
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["rev-parse", "HEAD"])
}

/// The files (not folders) under `dir`, relative, `/`-separated, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The files of master's tree minus `.git`, VCS files and Flux's default exclusions.
pub const MASTER_FILES: &[&str] = &[
    ".sourceignore",
    "README.md",
    "deploy/app.yaml",
    "docs/.sourceignore",
    "docs/app.yaml",
    "run.sh",
];

pub fn key(name: &str) -> ArtifactKey {
    ArtifactKey::new("GitRepository", "default", name).unwrap()
}

pub fn reference() -> GitReference {
    GitReference::default()
}

pub fn source(url: &str, reference: Option<GitReference>, auth: GitAuth) -> GitSource {
    let spec = GitRepositorySpec {
        url: url.to_string(),
        reference,
        timeout: Some(Duration::from_secs(30)),
        ignore: None,
        ..Default::default()
    };
    GitSource::new(key("demo"), spec, auth).unwrap()
}

/// Extracts `artifact` into a new temp folder.
pub fn extract(store: &ArtifactStore, artifact: &Artifact) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    store.extract(artifact, dir.path()).unwrap();
    dir
}

/// Whether `git_dir` is shallow according to the git CLI, and how many commits it holds.
pub fn git_cli_shallow(git_dir: &Path) -> (bool, usize) {
    let shallow = git(git_dir, &["rev-parse", "--is-shallow-repository"]) == "true";
    let count = git(git_dir, &["rev-list", "--all", "--count"])
        .parse()
        .unwrap();
    (shallow, count)
}

/// `git daemon` serving the bare repositories under a folder on 127.0.0.1, with `--verbose`
/// logging to a file. Killed by PID when dropped.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub pid_file: PathBuf,
}

impl GitDaemon {
    pub fn start(base: &Path, scratch: &Path) -> GitDaemon {
        let log = scratch.join("daemon.log");
        let pid_file = scratch.join("daemon.pid");
        for _attempt in 0..5 {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            // Run git-daemon itself rather than the `git` wrapper, which would leave the daemon
            // running as an orphan when killed.
            let exec_path = git(base, &["--exec-path"]);
            let child = Command::new(Path::new(&exec_path).join("git-daemon"))
                .arg("--reuseaddr")
                .arg("--verbose")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--base-path={}", base.display()))
                .arg(format!("--pid-file={}", pid_file.display()))
                .arg("--export-all")
                .arg(base)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .expect("starting git daemon");
            let mut daemon = GitDaemon {
                child,
                port,
                log: log.clone(),
                pid_file: pid_file.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let recorded = fs::read_to_string(&daemon.pid_file).unwrap_or_default();
                    assert_eq!(recorded.trim(), daemon.child.id().to_string());
                    return daemon;
                }
                if let Ok(Some(_)) = daemon.child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
        }
        panic!("git daemon did not start");
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }

    /// How many upload-pack requests the daemon has logged so far.
    pub fn upload_pack_requests(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Request upload-pack"))
            .count()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // The child is the daemon itself (no --detach, no wrapper), the PID its --pid-file
        // records: kill it by that PID and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
