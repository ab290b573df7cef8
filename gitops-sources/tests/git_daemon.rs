//! GitSource over git:// against `git daemon` on 127.0.0.1 (started and killed by the test).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use gitops_core::{ArtifactStore, Fetched, Source};
use gitops_sources::git::{GitAuth, GitReference};

/// Waits until the daemon has logged `n` upload-pack requests (its children log asynchronously).
fn wait_for_requests(daemon: &GitDaemon, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = daemon.upload_pack_requests();
        if seen >= n || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn clone_over_git_protocol_is_shallow_and_polls_cheaply() {
    let mut fx = Fixture::new();
    let scratch = tempfile::tempdir().unwrap();
    let daemon = GitDaemon::start(&fx.root, scratch.path());
    assert!(daemon.pid_file.exists(), "git daemon writes its pid file");
    let url = daemon.url("demo.git");
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();

    // Shallow, verified by gix and by the git CLI.
    let git_dir = fx.dir.path().join("shallow.git");
    let src = source(&url, None, GitAuth::None);
    let fetched = tokio::task::spawn_blocking({
        let src = src.clone();
        let git_dir = git_dir.clone();
        move || src.fetch_into_blocking(&git_dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        fetched.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );
    assert!(fetched.shallow);
    assert_eq!(git_cli_shallow(&git_dir), (true, 1));
    // One connection to list refs, one to fetch.
    assert_eq!(wait_for_requests(&daemon, 2), 2);

    // A fetch into the store: list + fetch.
    let first = src.fetch(&store, None).await.unwrap();
    let Fetched::New(first) = first else {
        panic!("expected a new artifact");
    };
    assert_eq!(first.revision, fetched.revision);
    let out = extract(&store, &first);
    assert_eq!(files(out.path()), MASTER_FILES);
    assert_eq!(wait_for_requests(&daemon, 4), 4);

    // Unchanged upstream: only the ref listing, no second connection, store untouched.
    let stored = fs::metadata(store.local_path(&first))
        .unwrap()
        .modified()
        .unwrap();
    let again = src.fetch(&store, Some(&first)).await.unwrap();
    assert_eq!(again, Fetched::Unchanged(first.clone()));
    assert_eq!(wait_for_requests(&daemon, 5), 5);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        daemon.upload_pack_requests(),
        5,
        "no fetch after the listing"
    );
    assert_eq!(
        fs::metadata(store.local_path(&first))
            .unwrap()
            .modified()
            .unwrap(),
        stored
    );

    // A new commit upstream: new revision.
    let c5 = fx.push_commit("c5", "version: 5\n");
    let next = src.fetch(&store, Some(&first)).await.unwrap();
    let Fetched::New(next) = next else {
        panic!("expected a new artifact after a push");
    };
    assert_eq!(next.revision.to_string(), format!("master@sha1:{c5}"));

    // Tags and semver over git:// too.
    let r = GitReference {
        semver: Some(">=1.0.0 <2.0.0".into()),
        ..reference()
    };
    let a = source(&url, Some(r), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("v1.1.0@sha1:{}", fx.commits["c2"])
    );

    drop(daemon);
    let err = source(&url, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
