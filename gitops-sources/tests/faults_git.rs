//! Faults and bad input for the Git source over smart HTTP (see FAULTS.md), against
//! gitops-testenv's `GitHttpServer` (`git http-backend` per request) on 127.0.0.1: the server
//! going down after a good fetch, references that match nothing, an object whose content does
//! not hash to its id, symlinks leaving the repository, and thousands of tags.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use common::*;
use gitops_core::{Artifact, ArtifactStore, Fetched, Source, Stage};
use gitops_sources::git::{GitAuth, GitError, GitReference};
use gitops_testenv::GitHttpServer;

fn git_error(e: &gitops_core::Error) -> &GitError {
    e.inner()
        .downcast_ref::<GitError>()
        .unwrap_or_else(|| panic!("not a GitError: {e}"))
}

/// Every file under the store root, relative.
fn store_files(store: &ArtifactStore) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(store.root(), store.root(), &mut out);
    out
}

fn only_last_kept(store: &ArtifactStore, last: &Artifact) {
    store.verify(last).unwrap();
    assert_eq!(store_files(store), BTreeSet::from([last.path.clone()]));
}

async fn first_fetch(url: &str, store: &ArtifactStore) -> Artifact {
    match source(url, None, GitAuth::None)
        .fetch(store, None)
        .await
        .unwrap()
    {
        Fetched::New(a) => a,
        other => panic!("expected a new artifact, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_after_a_fetch_keeps_the_last_artifact() {
    let mut fx = Fixture::new();
    let server = GitHttpServer::start(&fx.root).await.unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let last = first_fetch(&url, &store).await;

    // A new commit is pushed, but the server goes down before the next poll.
    fx.push_commit("c5", "version: 5\n");
    server.shutdown().await;
    let e = source(&url, None, GitAuth::None)
        .fetch(&store, Some(&last))
        .await
        .unwrap_err();
    eprintln!("server down: {e}");
    assert_eq!(e.stage(), Stage::Fetch);
    assert!(e.is_retryable(), "{e}");
    assert!(matches!(git_error(&e), GitError::Remote { .. }), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    only_last_kept(&store, &last);
    assert_eq!(
        last.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_that_match_nothing_are_named_and_keep_the_last_artifact() {
    let fx = Fixture::new();
    let server = GitHttpServer::start(&fx.root).await.unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let last = first_fetch(&url, &store).await;
    let r = |f: fn(&mut GitReference)| {
        let mut r = GitReference::default();
        f(&mut r);
        r
    };
    let missing_commit = "0123456789abcdef0123456789abcdef01234567";
    // (reference, text the message must hold, retryable)
    let cases = [
        (
            r(|r| r.branch = Some("no-such-branch".into())),
            "no-such-branch",
            false,
        ),
        (r(|r| r.tag = Some("v9.9.9".into())), "v9.9.9", false),
        (r(|r| r.semver = Some(">=9.0.0".into())), ">=9.0.0", false),
        (
            r(|r| r.name = Some("refs/pull/99/head".into())),
            "refs/pull/99/head",
            false,
        ),
        (
            r(|r| {
                r.branch = Some("feature".into());
                r.commit = Some(String::new());
            }),
            "feature",
            false,
        ),
        // A commit alone is fetched by id: the remote may get it later (Flux retries too).
        (r(|r| r.commit = Some(String::new())), missing_commit, true),
    ];
    for (mut reference, needle, retryable) in cases {
        if reference.commit.is_some() {
            // c3 is on master, not on feature; the bare commit exists nowhere.
            reference.commit = Some(if reference.branch.is_some() {
                fx.commits["c3"].clone()
            } else {
                missing_commit.to_string()
            });
        }
        let what = format!("{reference:?}");
        let e = source(&url, Some(reference), GitAuth::None)
            .fetch(&store, Some(&last))
            .await
            .unwrap_err();
        eprintln!("{what}: {e}");
        assert_eq!(e.is_retryable(), retryable, "{what}: {e}");
        if !retryable {
            assert!(
                matches!(
                    git_error(&e),
                    GitError::ReferenceNotFound { .. } | GitError::CommitNotOnBranch { .. }
                ),
                "{what}: {e}"
            );
        }
        let msg = e.to_string();
        assert!(msg.contains(needle) && msg.contains(&url), "{what}: {msg}");
        only_last_kept(&store, &last);
    }
}

/// The path of a loose object in a bare repository.
fn loose_object(bare: &Path, id: &str) -> std::path::PathBuf {
    bare.join("objects").join(&id[..2]).join(&id[2..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_does_not_hash_to_its_id_is_refused() {
    let mut fx = Fixture::new();
    let server = GitHttpServer::start(&fx.root).await.unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let last = first_fetch(&url, &store).await;

    // A new commit whose blob is replaced, on the server's disk, by another valid loose object:
    // the served content no longer hashes to the id the tree names (a corrupt download).
    fx.push_commit("c5", "version: 5\n");
    let blob = git(&fx.bare, &["rev-parse", "master:deploy/app.yaml"]);
    let path = loose_object(&fx.bare, &blob);
    assert!(
        path.is_file(),
        "pushed objects are loose in the bare repository"
    );
    let content = b"version: evil\n";
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(format!("blob {}\0", content.len()).as_bytes())
        .unwrap();
    z.write_all(content).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, z.finish().unwrap()).unwrap();

    let e = source(&url, None, GitAuth::None)
        .fetch(&store, Some(&last))
        .await
        .unwrap_err();
    eprintln!("corrupt object: {e}");
    assert_eq!(e.stage(), Stage::Fetch);
    // gix indexes the pack by content: the blob the tree names is missing.
    assert!(matches!(git_error(&e), GitError::Checkout { .. }), "{e}");
    assert!(e.to_string().contains(&url), "{e}");
    assert!(!e.to_string().contains("evil"), "{e}");
    only_last_kept(&store, &last);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_leaving_the_repository_are_left_out() {
    let fx = Fixture::new();
    let outside = fx.dir.path().join("outside.txt");
    std::fs::write(&outside, "outside\n").unwrap();
    std::os::unix::fs::symlink(&outside, fx.work.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../../../..", fx.work.join("deploy/up")).unwrap();
    std::os::unix::fs::symlink("../README.md", fx.work.join("deploy/inside")).unwrap();
    git(&fx.work, &["add", "-A"]);
    git(&fx.work, &["commit", "-q", "-m", "links"]);
    git(
        &fx.work,
        &["push", "-q", fx.bare.to_str().unwrap(), "master"],
    );
    let server = GitHttpServer::start(&fx.root).await.unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let a = first_fetch(&url, &store).await;

    // Symlinks are left out of the artifact (as Flux's archiver does), whatever they point at.
    let out = extract(&store, &a);
    assert_eq!(files(out.path()), MASTER_FILES);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "outside\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_tags_semver_picks_the_newest_match() {
    let fx = Fixture::new();
    // 3,000 more tags on c1, in one ref transaction.
    let mut stdin = String::new();
    for i in 0..3000 {
        stdin.push_str(&format!("create refs/tags/v3.{i}.0 {}\n", fx.commits["c1"]));
    }
    let mut child = std::process::Command::new("git")
        .current_dir(&fx.bare)
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let server = GitHttpServer::start(&fx.root).await.unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();

    let semver = |range: &str| {
        source(
            &url,
            Some(GitReference {
                semver: Some(range.into()),
                ..GitReference::default()
            }),
            GitAuth::None,
        )
    };
    let src = semver(">=3.0.0 <3.1500.0");
    let Fetched::New(a) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        a.revision.to_string(),
        format!("v3.1499.0@sha1:{}", fx.commits["c1"])
    );
    assert_eq!(
        src.fetch(&store, Some(&a)).await.unwrap(),
        Fetched::Unchanged(a.clone())
    );
    let newest = semver(">=3.0.0");
    let resolved = tokio::task::spawn_blocking(move || newest.resolve_blocking())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.pointer(), Some("v3.2999.0"));
    let e = semver(">=4.0.0").fetch(&store, Some(&a)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(git_error(&e), GitError::ReferenceNotFound { .. }),
        "{e}"
    );
    assert!(e.to_string().len() < 2000, "{e}");
    only_last_kept(&store, &a);
}
