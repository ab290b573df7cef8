//! GitSource over HTTPS with a custom CA (Flux's `ca.crt`) against gitops-testenv's
//! `GitHttpServer::start_tls*` (git http-backend behind rustls, with a throwaway `TestCa`) on
//! 127.0.0.1: with the CA, with the CA and basic auth, and without the CA or with another one.

mod common;

use common::*;
use gitops_core::{ArtifactStore, Fetched, Source, Stage};
use gitops_sources::git::{GitAuth, GitError, GitReference, GitSource};
use gitops_testenv::{GitHttpServer, TestCa};

fn git_error(e: &gitops_core::Error) -> &GitError {
    e.inner()
        .downcast_ref::<GitError>()
        .expect("a GitError inside")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_with_the_ca_is_shallow_and_has_the_right_revision() {
    let fx = Fixture::new();
    let ca = TestCa::new().unwrap();
    let server = GitHttpServer::start_tls(&fx.root, &ca).await.unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let url = format!("{}/demo.git", server.url());
    let src = source(&url, None, GitAuth::None)
        .with_ca_certificate(ca.ca_pem().as_bytes())
        .unwrap();
    assert_eq!(src.ca_certificate_count(), 1);

    let git_dir = fx.dir.path().join("shallow.git");
    let fetched = tokio::task::spawn_blocking({
        let src = src.clone();
        let git_dir = git_dir.clone();
        move || src.fetch_into_blocking(&git_dir)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(fetched.shallow);
    assert_eq!(git_cli_shallow(&git_dir), (true, 1));
    assert_eq!(
        fetched.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );

    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let Fetched::New(first) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact");
    };
    assert_eq!(first.revision, fetched.revision);
    let out = extract(&store, &first);
    assert_eq!(files(out.path()), MASTER_FILES);
    assert_eq!(
        src.fetch(&store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );

    // A tag, and the `localhost` name of the server certificate.
    let by_name = url.replace("127.0.0.1", "localhost");
    let tagged = source(
        &by_name,
        Some(GitReference {
            tag: Some("v1.0.0".into()),
            ..Default::default()
        }),
        GitAuth::None,
    )
    .with_ca_certificate(ca.ca_pem().as_bytes())
    .unwrap();
    let a = tagged.fetch(&store, None).await.unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("v1.0.0@sha1:{}", fx.commits["c1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_and_basic_auth() {
    let fx = Fixture::new();
    let ca = TestCa::new().unwrap();
    let password = "tls-horse-battery-staple";
    let server = GitHttpServer::start_tls_with_basic_auth(&fx.root, &ca, "alice", password)
        .await
        .unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let basic = |password: &str| GitAuth::Basic {
        username: "alice".into(),
        password: password.into(),
    };

    let ok = source(&url, None, basic(password))
        .with_ca_certificate(ca.ca_pem().as_bytes())
        .unwrap();
    let a = ok.fetch(&store, None).await.unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );
    assert!(!format!("{ok:?}").contains(password));

    // TLS is fine, the credentials are not: an authentication error, not a certificate one.
    let wrong = "wrong-password-456";
    let err = source(&url, None, basic(wrong))
        .with_ca_certificate(ca.ca_pem().as_bytes())
        .unwrap()
        .fetch(&store, None)
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains(wrong) && !msg.contains(password), "{msg}");
    assert!(
        matches!(git_error(&err), GitError::Authentication { .. }),
        "{msg}"
    );

    let err = source(&url, None, GitAuth::None)
        .with_ca_certificate(ca.ca_pem().as_bytes())
        .unwrap()
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("requires credentials"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_the_certificate_is_refused_and_no_credentials_leak() {
    let fx = Fixture::new();
    let ca = TestCa::new().unwrap();
    let password = "never-print-this-pw";
    let server = GitHttpServer::start_tls_with_basic_auth(&fx.root, &ca, "alice", password)
        .await
        .unwrap();
    let url = format!("{}/demo.git", server.url());
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let auth = GitAuth::Basic {
        username: "alice".into(),
        password: password.into(),
    };

    let check = |err: gitops_core::Error, shown_url: &str| {
        let msg = format!("{err} {err:?}");
        assert!(
            matches!(git_error(&err), GitError::Certificate { .. }),
            "{msg}"
        );
        assert!(msg.contains("TLS certificate verification failed"), "{msg}");
        assert!(msg.contains("ca.crt"), "{msg}");
        assert!(msg.contains(shown_url), "{msg}");
        assert!(!msg.contains(password), "{msg}");
        // Also not the base64 of `alice:password` sent in the Authorization header.
        assert!(!msg.contains("YWxpY2U6"), "{msg}");
        // Retried at the next interval, as Flux does: the server's certificate may change.
        assert!(err.is_retryable());
        assert_eq!(err.stage(), Stage::Fetch);
    };

    // No CA at all: the system roots do not know the test CA.
    let err = source(&url, None, auth.clone())
        .fetch(&store, None)
        .await
        .unwrap_err();
    check(err, &url);

    // Another CA than the one that signed the server's certificate.
    let other = TestCa::new().unwrap();
    let err = source(&url, None, auth.clone())
        .with_ca_certificate(other.ca_pem().as_bytes())
        .unwrap()
        .fetch(&store, None)
        .await
        .unwrap_err();
    check(err, &url);

    // Credentials in the URL: redacted from the error.
    let with_userinfo = url.replace("https://", &format!("https://alice:{password}@"));
    let err = source(&with_userinfo, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    check(err, "https://***@127.0.0.1");

    // The server's certificate is not a CA: trusting it alone does not verify the chain.
    let err = source(&url, None, auth)
        .with_ca_certificate(ca.server_cert_pem().as_bytes())
        .unwrap()
        .fetch(&store, None)
        .await
        .unwrap_err();
    check(err, &url);
}

#[test]
fn an_invalid_ca_certificate_is_a_terminal_error_naming_the_repository() {
    let url = "https://alice:pw-in-url@git.example.invalid/demo.git";
    let cases: [&[u8]; 4] = [
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
        // Valid base64, but not DER.
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    ];
    for pem in cases {
        let err = source(url, None, GitAuth::None)
            .with_ca_certificate(pem)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, GitError::InvalidCaCertificate { .. }),
            "{msg}"
        );
        assert!(
            msg.starts_with(
                "git repository https://***@git.example.invalid/demo.git: invalid CA certificate (ca.crt): "
            ),
            "{msg}"
        );
        assert!(!msg.contains("pw-in-url"), "{msg}");
        assert!(!err.is_retryable());
        assert!(!gitops_core::Error::from(err).is_retryable());
    }

    // Two valid certificates in one bundle are both trusted.
    let (a, b) = (TestCa::new().unwrap(), TestCa::new().unwrap());
    let bundle = format!("{}\n{}", a.ca_pem(), b.ca_pem());
    let src: GitSource = source(url, None, GitAuth::None)
        .with_ca_certificate(bundle.as_bytes())
        .unwrap();
    assert_eq!(src.ca_certificate_count(), 2);
    assert!(!format!("{src:?}").contains("BEGIN"));
}
