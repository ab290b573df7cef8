//! Faults and bad input for the Bucket source (see FAULTS.md), against a real `moto_server`
//! started per test by gitops-testenv's `S3Server` on a free 127.0.0.1 port and stopped by PID:
//! wrong credentials (with moto's IAM-like access control switched on) and a bucket listing
//! thousands of keys.
//!
//! moto checks request signatures when started by `S3Server::start_with_auth` (its
//! `INITIAL_NO_AUTH_ACTION_COUNT`): only the IAM access key that helper creates is accepted
//! afterwards (a wrong secret gets `SignatureDoesNotMatch`, an unknown key `InvalidAccessKeyId`).

mod bucket_common;
use bucket_common::md5_hex;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Fetched, Source, Stage};
use gitops_sources::bucket::{BucketAuth, BucketError, BucketSource, BucketSpec, index_revision};
use gitops_testenv::S3Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUCKET: &str = "flux-faults";

fn spec(s3: &S3Server) -> BucketSpec {
    BucketSpec {
        bucket_name: BUCKET.into(),
        endpoint: s3.url().into(),
        insecure: true,
        timeout: Some(Duration::from_secs(120)),
        ..Default::default()
    }
}

fn source(s3: &S3Server, auth: BucketAuth) -> BucketSource {
    // The application's job: the source refuses to start without a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = ArtifactKey::new("Bucket", "default", "faults").unwrap();
    BucketSource::new(key, spec(s3), auth).unwrap()
}

fn bucket_error(e: &gitops_core::Error) -> &BucketError {
    e.inner()
        .downcast_ref::<BucketError>()
        .unwrap_or_else(|| panic!("not a BucketError: {e}"))
}

/// The artifact files of the store (its `.cache` folder left out).
fn artifact_files(store: &ArtifactStore) -> BTreeSet<String> {
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
    out.retain(|p| !p.starts_with(".cache/"));
    out
}

fn only_last_kept(store: &ArtifactStore, last: &Artifact) {
    store.verify(last).unwrap();
    assert_eq!(artifact_files(store), BTreeSet::from([last.path.clone()]));
}

#[tokio::test]
async fn wrong_credentials_are_refused_without_printing_the_secret() {
    // Two unchecked calls left for the set-up below, then every request must be signed.
    let (s3, key) = S3Server::start_with_auth(2)
        .await
        .expect("starting moto_server with auth");
    s3.create_bucket(BUCKET).await.unwrap();
    s3.put_object(BUCKET, "a.yaml", b"a: 1\n").await.unwrap();
    let (id, secret) = (key.id, key.secret);
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();

    let good = source(
        &s3,
        BucketAuth::AccessKey {
            id: id.clone(),
            secret: secret.clone(),
        },
    );
    let last = good.fetch(&store, None).await.unwrap().artifact().clone();

    let wrong_secret = "wr0ng-s3cret-key-for-moto";
    for (what, auth, code) in [
        (
            "wrong secret",
            BucketAuth::AccessKey {
                id: id.clone(),
                secret: wrong_secret.into(),
            },
            "SignatureDoesNotMatch",
        ),
        (
            "unknown key",
            BucketAuth::AccessKey {
                id: "AKIAUNKNOWNKEY000000".into(),
                secret: wrong_secret.into(),
            },
            "InvalidAccessKeyId",
        ),
    ] {
        let src = source(&s3, auth);
        let e = src.fetch(&store, Some(&last)).await.unwrap_err();
        eprintln!("{what}: {e}");
        assert_eq!(e.stage(), Stage::Fetch);
        // Retryable, as source-controller requeues: the secret may be fixed without a spec change.
        assert!(e.is_retryable(), "{what}: {e}");
        assert!(
            matches!(bucket_error(&e), BucketError::Request { .. }),
            "{what}: {e}"
        );
        let shown = format!("{e} | {e:?} | {src:?}");
        assert!(
            shown.contains(BUCKET) && shown.contains(code),
            "{what}: {shown}"
        );
        assert!(!shown.contains(wrong_secret), "{what}: {shown}");
        assert!(!shown.contains(&secret), "{what}: {shown}");
        assert_eq!(src.downloads(), 0);
        only_last_kept(&store, &last);
    }

    // The right key still works, and nothing changed: unchanged, nothing downloaded.
    assert_eq!(
        good.fetch(&store, Some(&last)).await.unwrap(),
        Fetched::Unchanged(last.clone())
    );
}

#[tokio::test]
async fn three_thousand_keys_are_listed_page_by_page_and_polled_without_downloads() {
    const N: usize = 3000;
    let s3 = S3Server::start().await.expect("starting moto_server");
    s3.create_bucket(BUCKET).await.unwrap();
    let objects: Vec<(String, String)> = (0..N)
        .map(|i| {
            (
                format!("apps/{:02}/cm-{i:04}.yaml", i % 50),
                format!("i: {i}\n"),
            )
        })
        .collect();
    futures::stream::iter(&objects)
        .map(|(k, v)| s3.put_object(BUCKET, k, v.as_bytes()))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(
        &s3,
        BucketAuth::AccessKey {
            id: "test".into(),
            secret: "test-secret".into(),
        },
    );
    let before = s3.requests().len();

    let Fetched::New(first) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    let etags: Vec<(String, String)> = objects
        .iter()
        .map(|(k, v)| (k.clone(), md5_hex(v)))
        .collect();
    let expected = index_revision(etags.iter().map(|(k, e)| (k.as_str(), e.as_str())));
    assert_eq!(first.revision, expected);
    let listed = tempfile::tempdir().unwrap();
    store.extract(&first, listed.path()).unwrap();
    let mut count = 0;
    for (k, v) in &objects {
        assert_eq!(&std::fs::read_to_string(listed.path().join(k)).unwrap(), v);
        count += 1;
    }
    assert_eq!(count, N);
    assert_eq!(src.downloads(), N as u64);

    let requests: Vec<String> = s3.requests()[before..].to_vec();
    let lists = requests
        .iter()
        .filter(|r| {
            r.starts_with(&format!("GET /{BUCKET}?")) || r.starts_with(&format!("GET /{BUCKET}/?"))
        })
        .count();
    let gets = requests
        .iter()
        .filter(|r| r.starts_with(&format!("GET /{BUCKET}/apps/")))
        .count();
    // S3 lists at most 1,000 keys per page: 3,000 keys take three pages.
    assert!(lists >= 3, "{lists} listing requests: {:?}", &requests[..5]);
    assert_eq!(gets, N);

    // The next poll lists again (three pages) and downloads nothing.
    let before = s3.requests().len();
    assert_eq!(
        src.fetch(&store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );
    assert_eq!(src.downloads(), N as u64);
    let again: Vec<String> = s3.requests()[before..].to_vec();
    assert!(
        again
            .iter()
            .all(|r| !r.starts_with(&format!("GET /{BUCKET}/apps/"))),
        "{again:?}"
    );
    only_last_kept(&store, &first);

    // One key changes among the 3,000: one download, a new revision.
    s3.put_object(BUCKET, &objects[1234].0, b"i: changed\n")
        .await
        .unwrap();
    let Fetched::New(second) = src.fetch(&store, Some(&first)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_ne!(second.revision, first.revision);
    assert_eq!(src.downloads(), N as u64 + 1);
}

/// What the mock S3 server serves for `a.yaml`: the content listed (its MD5 is the ETag) and
/// the bytes a GET answers, with the `Content-Length` announced.
#[derive(Clone)]
struct MockObject {
    listed: &'static str,
    served: &'static [u8],
    content_length: usize,
}

/// A minimal S3 endpoint on 127.0.0.1 (ListObjectsV2, HEAD and GET of one object, path-style),
/// for what moto cannot do: serve bytes that differ from the listing. One request per
/// connection (`Connection: close`). Returns the endpoint and the switch for the object.
async fn mock_s3(bucket: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<MockObject>>) {
    let object = std::sync::Arc::new(std::sync::Mutex::new(MockObject {
        listed: "a: 1\n",
        served: b"a: 1\n",
        content_length: 5,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = object.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let o = shared.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let mut parts = line.split_whitespace();
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let etag = md5_hex(o.listed);
                let date = "Mon, 01 Jan 2024 00:00:00 GMT";
                let (head, body): (String, Vec<u8>) = if target.starts_with(&format!("/{bucket}?"))
                {
                    let xml = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{bucket}</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>a.yaml</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>&quot;{etag}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>",
                        o.listed.len()
                    );
                    (
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            xml.len()
                        ),
                        xml.into_bytes(),
                    )
                } else if target == format!("/{bucket}/a.yaml") {
                    (
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"{etag}\"\r\nLast-Modified: {date}\r\nConnection: close\r\n\r\n",
                            o.content_length
                        ),
                        if method == "HEAD" {
                            Vec::new()
                        } else {
                            o.served.to_vec()
                        },
                    )
                } else {
                    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>not found</Message></Error>";
                    (
                        format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            xml.len()
                        ),
                        if method == "HEAD" {
                            Vec::new()
                        } else {
                            xml.as_bytes().to_vec()
                        },
                    )
                };
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), object)
}

/// moto computes ETags from the bytes it stores, so it cannot serve an object whose content
/// differs from its listing: this test uses the minimal mock above instead.
#[tokio::test]
async fn a_download_that_does_not_match_the_listing_is_refused() {
    let (endpoint, object) = mock_s3("mocked").await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec = BucketSpec {
        bucket_name: "mocked".into(),
        endpoint,
        insecure: true,
        timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    let key = ArtifactKey::new("Bucket", "default", "mocked").unwrap();
    let src = BucketSource::new(key, spec, BucketAuth::Anonymous).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let last = src.fetch(&store, None).await.unwrap().artifact().clone();
    assert_eq!(
        last.revision,
        index_revision([("a.yaml", md5_hex("a: 1\n").as_str())])
    );

    // Listed as "a: 2\n", served as "a: 3\n" (same size): the MD5 does not match the ETag.
    *object.lock().unwrap() = MockObject {
        listed: "a: 2\n",
        served: b"a: 3\n",
        content_length: 5,
    };
    let e = src.fetch(&store, Some(&last)).await.unwrap_err();
    eprintln!("corrupt: {e}");
    assert!(
        matches!(bucket_error(&e), BucketError::Verify { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("\"a.yaml\""), "{e}");
    assert!(e.to_string().contains(&md5_hex("a: 2\n")), "{e}");
    only_last_kept(&store, &last);

    // Truncated: 5 bytes announced, 3 sent before the connection closes.
    *object.lock().unwrap() = MockObject {
        listed: "a: 2\n",
        served: b"a: ",
        content_length: 5,
    };
    let e = src.fetch(&store, Some(&last)).await.unwrap_err();
    eprintln!("truncated: {e}");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("a.yaml"), "{e}");
    only_last_kept(&store, &last);

    // The cache holds no partial download: the right bytes give the right artifact.
    *object.lock().unwrap() = MockObject {
        listed: "a: 2\n",
        served: b"a: 2\n",
        content_length: 5,
    };
    let Fetched::New(next) = src.fetch(&store, Some(&last)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    let out = tempfile::tempdir().unwrap();
    store.extract(&next, out.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("a.yaml")).unwrap(),
        "a: 2\n"
    );
}
