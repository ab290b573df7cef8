//! GitSource over smart HTTP against gitops-testenv's `GitHttpServer` (git http-backend) on
//! 127.0.0.1: anonymous, basic auth and bearer token.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gitops_core::{ArtifactStore, Fetched, Source, Stage};
use gitops_sources::git::{GitAuth, GitRepositorySpec, GitSource};
use gitops_testenv::GitHttpServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clone_is_shallow() {
    let fx = Fixture::new();
    let server = GitHttpServer::start(&fx.root).await.unwrap();
    let url = format!("{}/demo.git", server.url());
    let src = source(&url, None, GitAuth::None);

    let git_dir = fx.dir.path().join("shallow.git");
    let fetched = tokio::task::spawn_blocking({
        let src = src.clone();
        let git_dir = git_dir.clone();
        move || src.fetch_into_blocking(&git_dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(fetched.shallow, "gix reports a full clone over HTTP");
    assert_eq!(git_cli_shallow(&git_dir), (true, 1));
    assert_eq!(
        fetched.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );

    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let Fetched::New(first) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact");
    };
    let out = extract(&store, &first);
    assert_eq!(files(out.path()), MASTER_FILES);
    assert_eq!(
        src.fetch(&store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let fx = Fixture::new();
    let password = "correct-horse-battery";
    let server = GitHttpServer::start_with_basic_auth(&fx.root, "alice", password)
        .await
        .unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();

    let ok = source(
        &url,
        None,
        GitAuth::Basic {
            username: "alice".into(),
            password: password.into(),
        },
    );
    let a = ok.fetch(&store, None).await.unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );
    assert!(
        !format!("{ok:?}").contains(password),
        "Debug leaks the password"
    );

    let wrong_password = "wrong-password-123";
    let start = Instant::now();
    let err = source(
        &url,
        None,
        GitAuth::Basic {
            username: "alice".into(),
            password: wrong_password.into(),
        },
    )
    .fetch(&store, None)
    .await
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20));
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(wrong_password), "{msg}");
    assert!(!msg.contains(password), "{msg}");
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(msg.contains(&url), "{msg}");
    assert!(err.is_retryable());
    assert_eq!(err.stage(), Stage::Fetch);

    let err = source(&url, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("requires credentials"), "{err}");

    // Credentials in the URL act as basic auth and are redacted from errors.
    let with_userinfo = url.replace("http://", &format!("http://alice:{password}@"));
    source(&with_userinfo, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap();
    let wrong_userinfo = url.replace("http://", &format!("http://alice:{wrong_password}@"));
    let err = source(&wrong_userinfo, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(wrong_password), "{msg}");
    assert!(msg.contains("http://***@127.0.0.1"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token() {
    let fx = Fixture::new();
    let token = "tok-0123456789abcdef";
    let server = GitHttpServer::start_with_bearer_token(&fx.root, token)
        .await
        .unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();

    let src = source(
        &url,
        None,
        GitAuth::Bearer {
            token: token.into(),
        },
    );
    let git_dir = fx.dir.path().join("bearer.git");
    let fetched = tokio::task::spawn_blocking({
        let src = src.clone();
        let git_dir = git_dir.clone();
        move || src.fetch_into_blocking(&git_dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(fetched.shallow);
    let a = src.fetch(&store, None).await.unwrap();
    assert_eq!(a.artifact().revision, fetched.revision);

    let wrong = "tok-not-the-right-one";
    let err = source(
        &url,
        None,
        GitAuth::Bearer {
            token: wrong.into(),
        },
    )
    .fetch(&store, None)
    .await
    .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(wrong) && !msg.contains(token), "{msg}");
    assert!(msg.contains("authentication failed"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_retryably() {
    // Accepts connections (kernel backlog) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/demo.git", listener.local_addr().unwrap());
    let spec = GitRepositorySpec {
        url: url.clone(),
        timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let src = GitSource::new(key("silent"), spec, GitAuth::None).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(store_dir.path()).unwrap();
    let start = Instant::now();
    let err = src.fetch(&store, None).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("timed out after 1s"), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    // Closing the listener resets the pending connection, so the abandoned blocking task ends.
    drop(listener);
}
