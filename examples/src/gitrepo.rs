//! A local Git repository for demos and tests: a bare repository plus a working copy, driven with
//! the `git` CLI (gix cannot push).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A bare repository `<root>/repos/<name>.git` and a working copy `<root>/work/<name>`.
#[derive(Debug)]
pub struct LocalRepo {
    /// Folder holding bare repositories (serve it with `GitHttpServer`).
    pub repos_root: PathBuf,
    /// The working copy.
    pub work: PathBuf,
    /// Repository name; its URL path is `/<name>.git`.
    pub name: String,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=gitops-demo",
            "-c",
            "user.email=demo@gitops.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    if !out.status.success() {
        bail!(
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

impl LocalRepo {
    /// Creates the bare repository (branch `main`) under `root` and a working copy whose first
    /// commit holds the files of `content` (copied into `subdir` of the repository).
    pub fn create(root: &Path, name: &str, content: &Path, subdir: &str) -> Result<LocalRepo> {
        let repos_root = root.join("repos");
        let bare = repos_root.join(format!("{name}.git"));
        std::fs::create_dir_all(&bare)?;
        git(&bare, &["init", "--bare", "-q", "-b", "main"])?;
        // http-backend serves anonymous reads only of exported repos; allow shallow fetches.
        git(
            &bare,
            &["config", "uploadpack.allowReachableSHA1InWant", "true"],
        )?;
        let work = root.join("work").join(name);
        std::fs::create_dir_all(&work)?;
        git(&work, &["init", "-q", "-b", "main"])?;
        git(
            &work,
            &[
                "remote",
                "add",
                "origin",
                bare.to_str().context("non-UTF-8 path")?,
            ],
        )?;
        copy_dir(content, &work.join(subdir))?;
        let repo = LocalRepo {
            repos_root,
            work,
            name: name.to_string(),
        };
        repo.commit("initial import")?;
        Ok(repo)
    }

    /// Commits everything in the working copy and pushes `main`; returns the commit id.
    pub fn commit(&self, message: &str) -> Result<String> {
        git(&self.work, &["add", "-A"])?;
        git(&self.work, &["commit", "-q", "-m", message])?;
        git(&self.work, &["push", "-q", "origin", "main"])?;
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Writes a file (relative to the working copy).
    pub fn write(&self, path: &str, content: &str) -> Result<()> {
        let p = self.work.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
    }

    /// Reads a file (relative to the working copy).
    pub fn read(&self, path: &str) -> Result<String> {
        let p = self.work.join(path);
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// Removes a file (relative to the working copy).
    pub fn remove(&self, path: &str) -> Result<()> {
        let p = self.work.join(path);
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))
    }
}
