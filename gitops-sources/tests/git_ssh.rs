//! GitSource over SSH against gitops-testenv's `SshGitServer` (OpenSSH's sshd on 127.0.0.1, the
//! system `ssh` client): key authentication, host key verification, shallow clones and the
//! cheap poll (ref listing) over SSH.

mod common;

use common::*;
use gitops_core::{ArtifactStore, Fetched, Source, Stage};
use gitops_sources::git::{GitAuth, GitError, GitRepositorySpec, GitSource};
use gitops_testenv::SshGitServer;

fn ssh_auth(identity: &str, known_hosts: &str) -> GitAuth {
    GitAuth::Ssh {
        identity: identity.to_string(),
        known_hosts: known_hosts.to_string(),
        user: None,
    }
}

/// The lines of the key's body, none of which may show up in errors or `Debug`.
fn key_lines(key: &str) -> Vec<&str> {
    key.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .collect()
}

fn assert_no_key(text: &str, key: &str) {
    for line in key_lines(key) {
        assert!(!text.contains(line), "the private key leaks into: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_is_shallow_and_polls_list_refs() {
    let mut fx = Fixture::new();
    let server = SshGitServer::start().unwrap();
    let url = server.url_for(&fx.bare);
    assert!(url.starts_with("ssh://"), "{url}");
    let auth = ssh_auth(server.client_key(), &server.known_hosts());
    let src = source(&url, None, auth);
    assert_no_key(&format!("{src:?}"), server.client_key());

    // Depth-1 fetch over SSH (protocol v2 via GIT_PROTOCOL, which sshd accepts by default).
    let git_dir = fx.dir.path().join("shallow.git");
    let fetched = tokio::task::spawn_blocking({
        let src = src.clone();
        let git_dir = git_dir.clone();
        move || src.fetch_into_blocking(&git_dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(fetched.shallow, "gix reports a full clone over SSH");
    assert_eq!(git_cli_shallow(&git_dir), (true, 1));
    assert_eq!(
        fetched.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );

    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let Fetched::New(first) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact");
    };
    assert_eq!(
        first.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );
    let out = extract(&store, &first);
    assert_eq!(files(out.path()), MASTER_FILES);

    // The next poll only lists refs over SSH.
    assert_eq!(
        src.fetch(&store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );

    // A new commit is seen by the listing and fetched.
    let c5 = fx.push_commit("c5", "version: 5\n");
    let resolved = tokio::task::spawn_blocking({
        let src = src.clone();
        move || src.resolve_blocking()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resolved.to_string(), format!("master@sha1:{c5}"));
    let Fetched::New(second) = src.fetch(&store, Some(&first)).await.unwrap() else {
        panic!("expected a new artifact after a push");
    };
    assert_eq!(second.revision.to_string(), format!("master@sha1:{c5}"));

    // No temporary key folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("gitops-ssh-"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("identity"))
                .is_ok_and(|k| k.trim() == server.client_key().trim())
        })
        .collect();
    assert!(leftovers.is_empty(), "identity files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_from_credentials_and_tag() {
    let fx = Fixture::new();
    let server = SshGitServer::start().unwrap();
    // No user in the URL: the credentials' user is used (else it would be `git`).
    let url = format!("ssh://127.0.0.1:{}{}", server.port(), fx.bare.display());
    let auth = GitAuth::Ssh {
        identity: server.client_key().to_string(),
        known_hosts: server.known_hosts(),
        user: Some(server.user().to_string()),
    };
    let reference = gitops_sources::git::GitReference {
        tag: Some("v1.1.0".into()),
        ..Default::default()
    };
    let src = source(&url, Some(reference), auth);
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let fetched = src.fetch(&store, None).await.unwrap();
    assert_eq!(
        fetched.artifact().revision.to_string(),
        format!("v1.1.0@sha1:{}", fx.commits["c2"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_key_is_terminal() {
    let fx = Fixture::new();
    let server = SshGitServer::start().unwrap();
    let url = server.url_for(&fx.bare);
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let (_, other_public) = server.unauthorized_key().unwrap();

    for known_hosts in [
        // The right host with another key.
        format!("[127.0.0.1]:{} {other_public}\n", server.port()),
        // Only another host.
        format!("example.com {other_public}\n"),
    ] {
        let auth = ssh_auth(server.client_key(), &known_hosts);
        let src = source(&url, None, auth);
        let err = src.fetch(&store, None).await.unwrap_err();
        assert_eq!(err.stage(), Stage::Fetch);
        assert!(!err.is_retryable(), "{err}");
        let inner = err.inner().downcast_ref::<GitError>().expect("a GitError");
        assert!(
            matches!(inner, GitError::HostKeyVerification { .. }),
            "{inner:?}"
        );
        let text = err.to_string();
        assert!(text.contains("host key verification failed"), "{text}");
        assert!(text.contains("127.0.0.1"), "{text}");
        assert_no_key(&text, server.client_key());
        assert!(!text.contains("gitops-ssh-"), "temporary paths in: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_client_key_is_an_auth_error() {
    let fx = Fixture::new();
    let server = SshGitServer::start().unwrap();
    let url = server.url_for(&fx.bare);
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let (other_key, _) = server.unauthorized_key().unwrap();
    let src = source(&url, None, ssh_auth(&other_key, &server.known_hosts()));

    let err = src.fetch(&store, None).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let inner = err.inner().downcast_ref::<GitError>().expect("a GitError");
    assert!(
        matches!(inner, GitError::Authentication { .. }),
        "{inner:?}"
    );
    let text = err.to_string();
    assert!(text.contains("authentication failed"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert_no_key(&text, &other_key);
    assert_no_key(&format!("{src:?}"), &other_key);
}

#[test]
fn ssh_urls_need_ssh_credentials() {
    let spec = |url: &str| GitRepositorySpec {
        url: url.into(),
        ..Default::default()
    };
    let ssh = GitAuth::Ssh {
        identity: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n".into(),
        known_hosts: "example.com ssh-ed25519 AAAA\n".into(),
        user: None,
    };
    for (url, auth) in [
        ("ssh://git@example.com/r.git", GitAuth::None),
        ("git@example.com:r.git", GitAuth::None),
        ("https://example.com/r.git", ssh.clone()),
        ("ssh://git:pw@example.com/r.git", ssh.clone()),
        (
            "ssh://git@example.com/r.git",
            GitAuth::Ssh {
                identity: "key".into(),
                known_hosts: " ".into(),
                user: None,
            },
        ),
    ] {
        let err = GitSource::new(key("x"), spec(url), auth).unwrap_err();
        assert!(matches!(err, GitError::InvalidUrl { .. }), "{url}: {err}");
        assert!(!err.is_retryable());
    }
    GitSource::new(key("x"), spec("git@example.com:r.git"), ssh.clone()).unwrap();
    GitSource::new(key("x"), spec("ssh://example.com:2222/r.git"), ssh).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_repository_is_a_remote_error() {
    let fx = Fixture::new();
    let server = SshGitServer::start().unwrap();
    let url = server.url_for(&fx.root.join("missing.git"));
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let src = source(
        &url,
        None,
        ssh_auth(server.client_key(), &server.known_hosts()),
    );
    let err = src.fetch(&store, None).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let inner = err.inner().downcast_ref::<GitError>().expect("a GitError");
    assert!(matches!(inner, GitError::Remote { .. }), "{inner:?}");
    // The remote's stderr is part of the message.
    assert!(
        err.to_string()
            .contains("does not appear to be a git repository"),
        "{err}"
    );
    assert_no_key(&err.to_string(), server.client_key());
}
