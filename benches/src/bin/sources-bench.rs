//! `sources-bench`: the Git source and the artifact store against the reference tools, in one
//! run, on a generated repository of about 50 MB ([`gitops_benches::SourceTree`]: ~6,000
//! YAML/Markdown/JSON files and ~10 incompressible 1 MB blobs, 5 commits of history).
//!
//! The repository is served over smart HTTP by `gitops_testenv::GitHttpServer` (`git
//! http-backend`), the same server for both clients, and the tool prints, medians of `RUNS` runs:
//!
//! - `GitSource::fetch` (depth 1, checkout, archive and digest into a fresh `ArtifactStore`)
//!   against `git clone --depth 1 URL` (fetch and checkout): the **clone ratio**;
//! - `GitSource::fetch_into_blocking` (depth 1 into a bare repository) against
//!   `git clone --bare --depth 1 URL`: the fetch-only ratio;
//! - `ArtifactStore::archive_dir` of the checked-out tree (tar, gzip level 6, SHA-256, fsync)
//!   against `tar czf - -C DIR . | sha256sum`: the **pack ratio**, with both throughputs in MB/s
//!   of tree bytes (1 MB = 10^6 bytes).
//!
//! Ratios are the reference's time over ours: above 1 we are faster. Usage:
//! `sources-bench` (env: `SIZE_MB=50`, `RUNS=5`); `cargo xtask bench sources` builds it in release
//! mode and runs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use gitops_benches::SourceTree;
use gitops_core::{Algorithm, ArtifactKey, ArtifactStore, Digest, Fetched, Revision, Source};
use gitops_sources::git::{GitAuth, GitReference, GitRepositorySpec, GitSource};
use gitops_testenv::GitHttpServer;

/// Commits in the generated history (commit 0 writes everything).
const COMMITS: u32 = 5;
/// The branch the repository is served on.
const BRANCH: &str = "main";

fn main() -> Result<()> {
    let size_mb: u64 = env_number("SIZE_MB", 50)?;
    let runs: usize = env_number("RUNS", 5)?;
    ensure!(runs > 0, "RUNS must be at least 1");
    let work = tempfile::Builder::new()
        .prefix("sources-bench-")
        .tempdir()
        .context("creating a temporary folder")?;
    let tree = work.path().join("tree");
    let repos = work.path().join("repos");
    let git_dir = repos.join("bench.git");

    let started = Instant::now();
    let shape = SourceTree::for_size(size_mb * 1_000_000);
    let head = generate_repository(&shape, &tree, &git_dir)?;
    let (tree_files, tree_bytes) = tree_size(&tree)?;
    let pack_bytes = dir_bytes(&git_dir.join("objects/pack"))?;
    println!(
        "repository: {tree_files} files, {} of tree at HEAD ({} text files, {} binary blobs), {COMMITS} commits, {} packed on the server; generated in {:.1} s",
        mb(tree_bytes),
        shape.text_files,
        shape.binaries,
        mb(pack_bytes),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}; {}",
        version("git", &["--version"])?,
        version("tar", &["--version"])?
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    let server = runtime
        .block_on(GitHttpServer::start(&repos))
        .context("starting the Git smart-HTTP server")?;
    let url = format!("{}/bench.git", server.url());
    let source = GitSource::new(
        ArtifactKey::new("GitRepository", "bench", "sources")?,
        GitRepositorySpec {
            url: url.clone(),
            reference: Some(GitReference {
                branch: Some(BRANCH.into()),
                ..GitReference::default()
            }),
            timeout: Some(Duration::from_secs(600)),
            ..GitRepositorySpec::default()
        },
        GitAuth::None,
    )?;
    let revision = format!("{BRANCH}@sha1:{head}");
    let scratch = work.path().join("scratch");

    // Clone: a fresh store (ours) and a fresh folder (git) every run, ours and git's in turn.
    let mut ours_clone = Vec::new();
    let mut git_clone = Vec::new();
    let mut ours_fetch = Vec::new();
    let mut git_bare = Vec::new();
    let mut shallow_pack = 0;
    for run in 0..=runs {
        // Run 0 warms the caches and checks the results; it is not counted.
        let counted = run > 0;

        let store_dir = fresh(&scratch)?;
        let store = ArtifactStore::new(&store_dir)?;
        settle();
        let t = Instant::now();
        let fetched = runtime
            .block_on(source.fetch(&store, None))
            .context("GitSource::fetch")?;
        let elapsed = t.elapsed();
        let Fetched::New(artifact) = fetched else {
            bail!("GitSource::fetch into an empty store did not produce a new artifact");
        };
        ensure!(
            artifact.revision.to_string() == revision,
            "GitSource::fetch got {}, expected {revision}",
            artifact.revision
        );
        if counted {
            ours_clone.push(elapsed);
        }

        let dest = fresh(&scratch)?;
        settle();
        let t = Instant::now();
        git(Command::new("git")
            .args(["clone", "-q", "--depth", "1", &url])
            .arg(&dest))?;
        let elapsed = t.elapsed();
        check_git_clone(&dest.join(".git"), &head)?;
        if counted {
            git_clone.push(elapsed);
        } else {
            shallow_pack = dir_bytes(&dest.join(".git/objects/pack"))?;
        }

        let dest = fresh(&scratch)?;
        let bare = dest.join("repo.git");
        settle();
        let t = Instant::now();
        let commit = source
            .fetch_into_blocking(&bare)
            .context("GitSource::fetch_into_blocking")?;
        let elapsed = t.elapsed();
        ensure!(
            commit.commit == head,
            "fetched {}, expected {head}",
            commit.commit
        );
        ensure!(
            commit.shallow,
            "GitSource fetched the whole history: the depth-1 fetch was not shallow"
        );
        if counted {
            ours_fetch.push(elapsed);
        }

        let dest = fresh(&scratch)?;
        settle();
        let t = Instant::now();
        git(Command::new("git")
            .args(["clone", "-q", "--bare", "--depth", "1", &url])
            .arg(&dest))?;
        let elapsed = t.elapsed();
        check_git_clone(&dest, &head)?;
        if counted {
            git_bare.push(elapsed);
        }
        std::fs::remove_dir_all(&scratch).context("removing the scratch folder")?;
    }
    runtime.block_on(server.shutdown());
    drop(runtime);

    // Pack: the tree at HEAD (the generator's work tree, no .git inside).
    let store_dir = fresh(&scratch)?;
    let store = ArtifactStore::new(&store_dir)?;
    let key = ArtifactKey::new("GitRepository", "bench", "pack")?;
    let pack_revision = Revision::named(BRANCH, Digest::new(Algorithm::Sha1, head.clone())?);
    let mut ours_pack = Vec::new();
    let mut tar_pack = Vec::new();
    let mut ours_size = 0;
    for run in 0..=runs {
        let counted = run > 0;
        settle();
        let t = Instant::now();
        let artifact = store
            .archive_dir(&key, pack_revision.clone(), &tree, &|_, _| true)
            .context("ArtifactStore::archive_dir")?;
        let elapsed = t.elapsed();
        ours_size = artifact.size;
        if counted {
            ours_pack.push(elapsed);
        }
        settle();
        let t = Instant::now();
        let out = Command::new("bash")
            .args([
                "-c",
                "set -o pipefail; tar czf - -C \"$1\" . | sha256sum",
                "tar-czf",
            ])
            .arg(&tree)
            .output()
            .context("running bash")?;
        let elapsed = t.elapsed();
        ensure!(
            out.status.success(),
            "tar czf | sha256sum failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if counted {
            tar_pack.push(elapsed);
        }
    }
    let tar_size = {
        let out = Command::new("bash")
            .args([
                "-c",
                "set -o pipefail; tar czf - -C \"$1\" . | wc -c",
                "tar-czf",
            ])
            .arg(&tree)
            .output()
            .context("running bash")?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .context("tar czf | wc -c")?
    };

    let ours_clone = median(ours_clone);
    let git_clone = median(git_clone);
    let ours_fetch = median(ours_fetch);
    let git_bare = median(git_bare);
    let ours_pack = median(ours_pack);
    let tar_pack = median(tar_pack);
    println!(
        "shallow clone (medians of {runs}, server {url}; git's depth-1 pack {}):",
        mb(shallow_pack)
    );
    println!(
        "  GitSource::fetch (depth 1 + checkout + archive into a fresh store): {:.3} s",
        ours_clone.as_secs_f64()
    );
    println!(
        "  git clone --depth 1 (fetch + checkout):                             {:.3} s",
        git_clone.as_secs_f64()
    );
    println!(
        "  GitSource::fetch_into_blocking (depth 1, bare, no checkout):        {:.3} s",
        ours_fetch.as_secs_f64()
    );
    println!(
        "  git clone --bare --depth 1:                                         {:.3} s",
        git_bare.as_secs_f64()
    );
    println!(
        "  fetch-only ratio: {}",
        ratio(git_bare.as_secs_f64() / ours_fetch.as_secs_f64())
    );
    println!(
        "artifact packing of the {} tree (medians of {runs}):",
        mb(tree_bytes)
    );
    println!(
        "  ArtifactStore::archive_dir (tar + gzip 6 + sha256 + fsync): {:.3} s, {:.1} MB/s, {} archive",
        ours_pack.as_secs_f64(),
        tree_bytes as f64 / 1e6 / ours_pack.as_secs_f64(),
        mb(ours_size)
    );
    println!(
        "  tar czf - -C DIR . | sha256sum:                             {:.3} s, {:.1} MB/s, {} archive",
        tar_pack.as_secs_f64(),
        tree_bytes as f64 / 1e6 / tar_pack.as_secs_f64(),
        mb(tar_size)
    );
    println!(
        "end to end, git clone --depth 1 then tar czf | sha256sum (sum of medians): {:.3} s; ratio to GitSource::fetch: {}",
        (git_clone + tar_pack).as_secs_f64(),
        ratio((git_clone + tar_pack).as_secs_f64() / ours_clone.as_secs_f64())
    );
    println!(
        "clone ratio: {}",
        ratio(git_clone.as_secs_f64() / ours_clone.as_secs_f64())
    );
    println!(
        "pack ratio: {}",
        ratio(tar_pack.as_secs_f64() / ours_pack.as_secs_f64())
    );
    Ok(())
}

/// Writes [`COMMITS`] commits of `shape` into a bare repository at `git_dir` (work tree `tree`,
/// which ends up holding HEAD's files and no `.git`), packs it as a served repository would be,
/// and returns the HEAD commit id.
fn generate_repository(shape: &SourceTree, tree: &Path, git_dir: &Path) -> Result<String> {
    std::fs::create_dir_all(tree).context("creating the work tree")?;
    git(Command::new("git")
        .args(["init", "-q", "--bare", "-b", BRANCH])
        .arg(git_dir))?;
    let repo = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(git_dir)
            .arg("--work-tree")
            .arg(tree)
            .args(args);
        cmd
    };
    for commit in 0..COMMITS {
        let changed = shape
            .write_commit(tree, commit)
            .context("writing the generated files")?;
        git(&mut repo(&["add", "-A"]))?;
        let date = format!("{} +0000", 1_700_000_000 + u64::from(commit) * 86_400);
        git(repo(&[
            "commit",
            "-q",
            "-m",
            &format!("commit {commit}: {changed} files"),
        ])
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date))?;
    }
    git(&mut repo(&["repack", "-a", "-d", "-q"]))?;
    let out = git(&mut repo(&["rev-parse", "HEAD"]))?;
    Ok(out.trim().to_string())
}

/// Flushes what earlier runs wrote or deleted (`sync`), so that their write-back does not land
/// in the next measurement.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Checks that the repository at `git_dir` is shallow and holds `head` as HEAD.
fn check_git_clone(git_dir: &Path, head: &str) -> Result<()> {
    let out = git(Command::new("git").arg("--git-dir").arg(git_dir).args([
        "rev-parse",
        "--is-shallow-repository",
        "HEAD",
    ]))?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines == ["true", head],
        "git clone --depth 1 gave {lines:?}, expected a shallow clone at {head}"
    );
    Ok(())
}

/// Runs a git command with fixed identity and no user or system configuration; returns stdout.
fn git(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first line of `PROGRAM ARGS`' output.
fn version(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// A new empty folder under `scratch`.
fn fresh(scratch: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(scratch).context("creating the scratch folder")?;
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(scratch)
        .context("creating a folder")?;
    Ok(dir.keep())
}

/// Number of files and their total size under `dir`.
fn tree_size(dir: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Total size of the files under `dir`.
fn dir_bytes(dir: &Path) -> Result<u64> {
    Ok(tree_size(dir)?.1)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `1.84 (faster)` or `0.61 (slower: 1.64x the time)`.
fn ratio(r: f64) -> String {
    if r >= 1.0 {
        format!("{r:.2} (faster)")
    } else {
        format!("{r:.2} (slower: {:.2}x the time)", 1.0 / r)
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v}")),
        Err(_) => Ok(default),
    }
}
