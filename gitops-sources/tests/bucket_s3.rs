//! The Bucket source against a real S3-compatible server: each test starts its own `moto_server`
//! (PyPI `moto[server]`, on a free loopback port, through `gitops_testenv::S3Server`) and stops it
//! by PID when it ends (also when it fails). Downloads are counted twice: by the source's own
//! counter and by the GET requests in moto's request log.

mod bucket_common;
use bucket_common::{files, md5_hex};

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_core::{ArtifactKey, ArtifactStore, Fetched, Source};
use gitops_sources::bucket::{BucketAuth, BucketSource, BucketSpec, index_revision};
use gitops_testenv::S3Server;

const BUCKET: &str = "flux-bucket";

fn spec(s3: &S3Server, bucket: &str) -> BucketSpec {
    BucketSpec {
        bucket_name: bucket.into(),
        endpoint: s3.url().into(),
        insecure: true,
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

fn source(spec: BucketSpec) -> BucketSource {
    // The application's job: the source refuses to start without a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = ArtifactKey::new("Bucket", "default", "demo").unwrap();
    BucketSource::new(
        key,
        spec,
        BucketAuth::AccessKey {
            id: "test".into(),
            secret: "test-secret".into(),
        },
    )
    .unwrap()
}

async fn server_with(objects: &[(&str, &str)]) -> S3Server {
    let s3 = S3Server::start().await.expect("starting moto_server");
    s3.create_bucket(BUCKET).await.unwrap();
    for (k, v) in objects {
        s3.put_object(BUCKET, k, v.as_bytes()).await.unwrap();
    }
    s3
}

/// The object GETs in moto's log (`GET /<bucket>/<key>`; listings are `GET /<bucket>?...`).
fn object_gets(s3: &S3Server) -> Vec<String> {
    s3.requests()
        .into_iter()
        .filter(|r| r.starts_with(&format!("GET /{BUCKET}/")))
        .map(|r| r.split_whitespace().nth(1).unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn fetches_then_is_unchanged_then_downloads_only_what_changed() {
    let s3 = server_with(&[
        ("a.yaml", "a: 1\n"),
        ("dir/b.yaml", "b: 1\n"),
        ("dir/c.yaml", "c: 1\n"),
    ])
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(&s3, BUCKET));

    // First fetch: every object downloaded, revision as Flux computes it.
    let first = src.fetch(&store, None).await.unwrap();
    let Fetched::New(first) = first else {
        panic!("expected a new artifact, got {first:?}")
    };
    let expected = index_revision([
        ("a.yaml", md5_hex("a: 1\n").as_str()),
        ("dir/b.yaml", md5_hex("b: 1\n").as_str()),
        ("dir/c.yaml", md5_hex("c: 1\n").as_str()),
    ]);
    assert_eq!(first.revision, expected);
    assert_eq!(
        first.path,
        format!("bucket/default/demo/{}.tar.gz", expected.digest().hex())
    );
    assert_eq!(
        files(&store, &first),
        BTreeMap::from([
            ("a.yaml".to_string(), "a: 1\n".to_string()),
            ("dir/b.yaml".to_string(), "b: 1\n".to_string()),
            ("dir/c.yaml".to_string(), "c: 1\n".to_string()),
        ])
    );
    assert_eq!(src.downloads(), 3);
    assert_eq!(object_gets(&s3).len(), 3, "{:?}", s3.requests());

    // Second fetch: same listing, nothing downloaded.
    let again = src.fetch(&store, Some(&first)).await.unwrap();
    assert_eq!(again, Fetched::Unchanged(first.clone()));
    assert_eq!(src.downloads(), 3);
    assert_eq!(object_gets(&s3).len(), 3, "{:?}", s3.requests());

    // One object changes: a new revision, only that object downloaded.
    s3.put_object(BUCKET, "dir/b.yaml", b"b: 2\n")
        .await
        .unwrap();
    let Fetched::New(second) = src.fetch(&store, Some(&first)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_ne!(second.revision, first.revision);
    assert_eq!(src.downloads(), 4);
    let gets = object_gets(&s3);
    assert_eq!(gets.len(), 4);
    assert_eq!(gets[3], format!("/{BUCKET}/dir/b.yaml"));
    assert_eq!(files(&store, &second)["dir/b.yaml"], "b: 2\n");
    assert_eq!(files(&store, &second)["a.yaml"], "a: 1\n");

    // One object is deleted: gone from the artifact, nothing downloaded.
    s3.delete_object(BUCKET, "dir/c.yaml").await.unwrap();
    let Fetched::New(third) = src.fetch(&store, Some(&second)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(src.downloads(), 4);
    assert_eq!(
        files(&store, &third).keys().collect::<Vec<_>>(),
        ["a.yaml", "dir/b.yaml"]
    );
    assert_eq!(
        third.revision,
        index_revision([
            ("a.yaml", md5_hex("a: 1\n").as_str()),
            ("dir/b.yaml", md5_hex("b: 2\n").as_str()),
        ])
    );

    // A fresh source with the same cache folder (a restart) reuses the files it finds.
    let restarted = source(spec(&s3, BUCKET));
    let Fetched::New(fourth) = restarted.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(fourth.revision, third.revision);
    assert_eq!(restarted.downloads(), 0);
}

#[tokio::test]
async fn prefix_sourceignore_and_spec_ignore_filter_keys() {
    let s3 = server_with(&[
        (".sourceignore", "apps/skip/\n"),
        // Folder markers, as consoles create them: skipped, like Flux skips keys ending in `/`.
        ("apps/", ""),
        ("apps/sub/", ""),
        ("apps/sub/s.yaml", "s\n"),
        ("apps/a.yaml", "a\n"),
        ("apps/readme.md", "docs\n"),
        ("apps/skip/x.yaml", "x\n"),
        ("apps/logo.png", "png\n"),
        ("apples/b.yaml", "b\n"),
        ("other/o.yaml", "o\n"),
    ])
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();

    let mut with_prefix = spec(&s3, BUCKET);
    with_prefix.prefix = Some("apps/".into());
    with_prefix.ignore = Some("*.md\n/apps/sub/s.yaml\n".into());
    let src = source(with_prefix);
    let Fetched::New(art) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    // No default exclusions for buckets (Flux archives them without): the .png stays.
    assert_eq!(
        files(&store, &art).keys().collect::<Vec<_>>(),
        ["apps/a.yaml", "apps/logo.png"]
    );
    assert_eq!(
        art.revision,
        index_revision([
            ("apps/a.yaml", md5_hex("a\n").as_str()),
            ("apps/logo.png", md5_hex("png\n").as_str()),
        ])
    );
    // 2 objects and the .sourceignore.
    assert_eq!(src.downloads(), 3);

    // A prefix that is not a folder is a plain string prefix of the key.
    let mut partial = spec(&s3, BUCKET);
    partial.prefix = Some("app".into());
    let src = source(partial).with_cache_dir(tmp.path().join("cache-partial"));
    let Fetched::New(art) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        files(&store, &art).keys().collect::<Vec<_>>(),
        [
            "apples/b.yaml",
            "apps/a.yaml",
            "apps/logo.png",
            "apps/readme.md",
            "apps/sub/s.yaml"
        ]
    );

    // A changed .sourceignore changes the index, hence the revision.
    s3.put_object(BUCKET, ".sourceignore", b"apps/skip/\n*.png\n")
        .await
        .unwrap();
    let Fetched::New(next) = src.fetch(&store, Some(&art)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert!(!files(&store, &next).contains_key("apps/logo.png"));
}

#[tokio::test]
async fn server_down_is_a_retryable_error_and_the_last_artifact_stays() {
    let mut s3 = server_with(&[("a.yaml", "a\n")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(&s3, BUCKET));
    let last = src.fetch(&store, None).await.unwrap().artifact().clone();

    s3.stop();
    let err = src.fetch(&store, Some(&last)).await.unwrap_err();
    eprintln!("server down: {err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains(BUCKET), "{err}");
    assert!(!err.to_string().contains("test-secret"), "{err}");
    store.verify(&last).unwrap();
    assert_eq!(files(&store, &last)["a.yaml"], "a\n");
}

#[tokio::test]
async fn a_key_leaving_the_folder_is_refused_by_name() {
    let s3 = server_with(&[("ok.yaml", "ok\n"), ("../x", "escape\n")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(&s3, BUCKET));
    let err = src.fetch(&store, None).await.unwrap_err();
    eprintln!("bad key: {err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("\"../x\""), "{err}");
    assert_eq!(src.downloads(), 0);
    assert!(!tmp.path().join("x").exists());
}

#[tokio::test]
async fn a_missing_bucket_is_named_in_the_error() {
    let s3 = server_with(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(&s3, "no-such-bucket"));
    let err = src.fetch(&store, None).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("missing bucket: {msg}");
    assert!(msg.contains("\"no-such-bucket\" not found"), "{msg}");
    assert!(err.is_retryable());
}
