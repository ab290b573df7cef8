//! ArtifactServer and fetch_artifact over real HTTP on 127.0.0.1: a folder is archived into a
//! store, served on a free port, fetched by its advertised URL, verified and extracted. Also the
//! refusals: tampered files, traversal (plain, percent-encoded, absolute, backslash), temp files,
//! folders, symlinks out of the root, oversized bodies, a stopped server.

use std::fs;
use std::path::Path;

use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Digest, Revision};
use gitops_sources::server::{
    ArtifactFetcher, ArtifactServer, FetchError, FetchLimits, fetch_artifact,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "top-secret-beside-the-store";

struct Fx {
    dir: tempfile::TempDir,
    store: ArtifactStore,
    artifact: Artifact,
}

/// `<tmp>/secret.txt` beside `<tmp>/store`, and one GitRepository artifact of `<tmp>/src`.
fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("deploy")).unwrap();
    fs::write(
        src.join("kustomization.yaml"),
        "resources: [deploy/cm.yaml]\n",
    )
    .unwrap();
    fs::write(
        src.join("deploy/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n",
    )
    .unwrap();
    let store = ArtifactStore::new(dir.path().join("store")).unwrap();
    let key = ArtifactKey::new("GitRepository", "default", "podinfo").unwrap();
    let commit = Digest::new(gitops_core::Algorithm::Sha1, "a".repeat(40)).unwrap();
    let artifact = store
        .archive_dir(&key, Revision::named("main", commit), &src, &|_, _| true)
        .unwrap();
    Fx {
        dir,
        store,
        artifact,
    }
}

/// Sends `GET <target>` (or another method) as raw HTTP/1.1, so the target is not normalised by
/// a URL parser; returns the status code and the body.
async fn raw(server: &ArtifactServer, method: &str, target: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test]
async fn fetch_by_advertised_url_verifies_and_extracts() {
    let mut fx = fixture();
    let server = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    fx.artifact.url = server.url_for(&fx.artifact);
    assert_eq!(
        fx.artifact.url,
        format!("http://{}/{}", server.local_addr(), fx.artifact.path)
    );
    assert!(fx.artifact.url.contains("/gitrepository/default/podinfo/"));

    let dest = fx.dir.path().join("out");
    let fetcher = ArtifactFetcher::new(FetchLimits::default()).unwrap();
    let got = fetcher.fetch_artifact(&fx.artifact, &dest).await.unwrap();
    assert_eq!(got.digest, fx.artifact.digest);
    assert_eq!(got.size, fx.artifact.size);
    assert_eq!(
        fs::read_to_string(dest.join("kustomization.yaml")).unwrap(),
        "resources: [deploy/cm.yaml]\n"
    );
    assert!(
        fs::read_to_string(dest.join("deploy/cm.yaml"))
            .unwrap()
            .contains("kind: ConfigMap")
    );

    // The free function does the same with a one-shot client.
    let dest2 = fx.dir.path().join("out2");
    fetch_artifact(
        &fx.artifact.url,
        &fx.artifact.digest,
        &dest2,
        FetchLimits::default(),
    )
    .await
    .unwrap();
    assert!(dest2.join("deploy/cm.yaml").is_file());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn advertised_base_url_is_used_and_bad_one_refused() {
    let fx = fixture();
    let server = ArtifactServer::bind(
        fx.store.clone(),
        "127.0.0.1:0",
        Some("http://source-controller.flux-system.svc.cluster.local./"),
    )
    .await
    .unwrap();
    assert_eq!(
        server.url_for(&fx.artifact),
        format!(
            "http://source-controller.flux-system.svc.cluster.local./{}",
            fx.artifact.path
        )
    );
    server.shutdown().await.unwrap();
    let err = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", Some("ftp://x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ftp://x"), "{err}");
}

#[tokio::test]
async fn head_get_headers_and_method_not_allowed() {
    let fx = fixture();
    let server = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    let url = server.url_for(&fx.artifact);
    // Installs the rustls provider reqwest needs to build a client.
    ArtifactFetcher::new(FetchLimits::default()).unwrap();
    let client = reqwest::Client::new();

    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let h = head.headers().clone();
    assert_eq!(h["content-type"], "application/gzip");
    assert_eq!(
        h["content-length"].to_str().unwrap(),
        fx.artifact.size.to_string()
    );
    assert!(h.contains_key("last-modified"));
    let etag = h["etag"].clone();
    assert!(head.bytes().await.unwrap().is_empty());

    let get = client.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["etag"], etag);
    let body = get.bytes().await.unwrap();
    assert_eq!(body.len() as u64, fx.artifact.size);
    assert_eq!(Digest::sha256_of(&body), fx.artifact.digest);

    let cached = client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    let post = client.post(&url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tampered_artifact_is_refused_and_nothing_extracted() {
    let mut fx = fixture();
    let server = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    fx.artifact.url = server.url_for(&fx.artifact);
    let stored = fx.store.local_path(&fx.artifact);
    let mut bytes = fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&stored, &bytes).unwrap();

    let dest = fx.dir.path().join("out");
    let fetcher = ArtifactFetcher::new(FetchLimits::default()).unwrap();
    let err = fetcher
        .fetch_artifact(&fx.artifact, &dest)
        .await
        .unwrap_err();
    match &err {
        FetchError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &fx.artifact.digest.to_string());
            assert_eq!(actual, &Digest::sha256_of(&bytes).to_string());
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!dest.exists(), "nothing may be extracted on a mismatch");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn traversal_temp_files_folders_and_symlinks_are_not_served() {
    let fx = fixture();
    let root = fx.store.root().to_path_buf();
    let art_dir = fx.store.local_path(&fx.artifact);
    let art_dir = art_dir.parent().unwrap();
    // A temp file as archive_dir leaves mid-write, and links out of the root.
    fs::write(art_dir.join(".tmp-123abc"), SECRET).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            fx.dir.path().join("secret.txt"),
            art_dir.join("leak.tar.gz"),
        )
        .unwrap();
        std::os::unix::fs::symlink(fx.dir.path(), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(art_dir.join(".tmp-123abc"), root.join("tmp-link")).unwrap();
    }
    let server = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    let secret_abs = fx.dir.path().join("secret.txt");
    let secret_abs = secret_abs.to_str().unwrap();
    let rel_dir = Path::new(&fx.artifact.path)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let targets = [
        "/../secret.txt".to_string(),
        "/%2e%2e/secret.txt".to_string(),
        "/%2E%2E%2Fsecret.txt".to_string(),
        "/..%2fsecret.txt".to_string(),
        "/..%5csecret.txt".to_string(),
        format!("/{rel_dir}/../../../../secret.txt"),
        format!("/{rel_dir}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt"),
        format!("/{}", secret_abs),
        format!("/{}", secret_abs.replace('/', "%2F")),
        format!("/%2F{}", &secret_abs[1..]),
        "http://localhost/../secret.txt".to_string(),
        "/".to_string(),
        format!("/{rel_dir}"),
        format!("/{rel_dir}/"),
        "/gitrepository".to_string(),
        format!("/{rel_dir}/.tmp-123abc"),
        format!("/{rel_dir}/%2etmp-123abc"),
        format!("/{rel_dir}/leak.tar.gz"),
        "/escape/secret.txt".to_string(),
        "/tmp-link".to_string(),
        "/bad%zzescape".to_string(),
        "/%ff%fe".to_string(),
    ];
    for target in &targets {
        for method in ["GET", "HEAD"] {
            let (code, body) = raw(&server, method, target).await;
            assert!(
                code == 400 || code == 404,
                "{method} {target}: expected 400 or 404, got {code} ({body:?})"
            );
            assert!(
                !body.contains(SECRET),
                "{method} {target} leaked the secret"
            );
        }
    }
    // The real artifact is still served through the same raw path.
    let (code, _) = raw(&server, "HEAD", &format!("/{}", fx.artifact.path)).await;
    assert_eq!(code, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn missing_oversized_and_stopped_server_errors() {
    let mut fx = fixture();
    let server = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    fx.artifact.url = server.url_for(&fx.artifact);
    let dest = fx.dir.path().join("out");

    // Garbage-collected artifact: 404, retryable (the source will publish a new URL).
    let fetcher = ArtifactFetcher::new(FetchLimits::default()).unwrap();
    let gone = fx.artifact.url.replace(".tar.gz", "0.tar.gz");
    let err = fetcher
        .fetch(&gone, &fx.artifact.digest, &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());

    // Over the download cap: terminal, nothing extracted.
    let small = ArtifactFetcher::new(FetchLimits {
        max_download_bytes: 16,
        ..FetchLimits::default()
    })
    .unwrap();
    let err = small.fetch_artifact(&fx.artifact, &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 16, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // Not an http(s) URL: terminal.
    let err = fetcher
        .fetch("file:///etc/passwd", &fx.artifact.digest, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(!dest.exists());

    // Server stopped: connection refused, retryable.
    server.shutdown().await.unwrap();
    let err = fetcher
        .fetch_artifact(&fx.artifact, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Network { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!dest.exists());
}

#[tokio::test]
async fn host_override_reaches_an_in_cluster_advertised_url() {
    let mut fx = fixture();
    let server = ArtifactServer::bind(
        fx.store.clone(),
        "127.0.0.1:0",
        Some("http://source-controller.flux-system.svc.cluster.local."),
    )
    .await
    .unwrap();
    fx.artifact.url = server.url_for(&fx.artifact);
    let dest = fx.dir.path().join("out");
    let fetcher = ArtifactFetcher::new(FetchLimits::default())
        .unwrap()
        .with_host_override(server.local_addr().to_string());
    fetcher.fetch_artifact(&fx.artifact, &dest).await.unwrap();
    assert!(dest.join("deploy/cm.yaml").is_file());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_cuts_a_stalled_download_after_the_grace_period() {
    let fx = fixture();
    // Larger than the socket buffers, so the response cannot be written out in full.
    let big = fx
        .store
        .root()
        .join("gitrepository/default/podinfo/big.tar.gz");
    fs::write(&big, vec![0u8; 32 << 20]).unwrap();
    let server = ArtifactServer::bind(fx.store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    // A client that sends a request and never reads nor closes: a download in flight.
    let mut s = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let req = "GET /gitrepository/default/podinfo/big.tar.gz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server
        .shutdown_within(std::time::Duration::from_millis(300))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(300),
        "shutdown should wait for the download in flight, took {took:?}"
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    drop(s);
}

/// A one-connection HTTP server answering with `head` then `body_chunks` (chunked encoding when
/// `head` says so); returns its URL.
async fn mock_once(head: &'static str, body_chunks: Vec<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(head.as_bytes()).await;
        for chunk in body_chunks {
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            if s.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
    });
    format!("http://{addr}/a.tar.gz")
}

#[tokio::test]
async fn streamed_body_over_the_cap_and_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    let any = Digest::sha256_of(b"whatever");
    let fetcher = ArtifactFetcher::new(FetchLimits {
        max_download_bytes: 1000,
        ..FetchLimits::default()
    })
    .unwrap();

    // No Content-Length: the cap applies while streaming.
    let url = mock_once(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        vec![vec![0u8; 600], vec![0u8; 600]],
    )
    .await;
    let err = fetcher.fetch(&url, &any, &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // 503 is retryable, 403 is not.
    let url = mock_once(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        vec![],
    )
    .await;
    let err = fetcher.fetch(&url, &any, &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    let url = mock_once(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        vec![],
    )
    .await;
    let err = fetcher.fetch(&url, &any, &dest).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 403, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!dest.exists());
}
