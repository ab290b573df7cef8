//! The Bucket source's `azure` provider against a real Azure Blob emulator: each test starts its
//! own Azurite (`azurite-blob`, npm `azurite`, on a free loopback port, through
//! `gitops_testenv::AzuriteServer`) and stops it by PID when it ends. Requests are signed with
//! the development account's key (Shared Key), which Azurite checks. The endpoint is the emulator
//! form `http://127.0.0.1:PORT/devstoreaccount1`: the account is the first path segment.

mod bucket_common;
use bucket_common::files;

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_core::{ArtifactKey, ArtifactStore, Fetched, Source};
use gitops_sources::bucket::{
    BucketAuth, BucketProvider, BucketSource, BucketSpec, index_revision,
};
use gitops_testenv::AzuriteServer;
use gitops_testenv::azurite::ACCOUNT_KEY;

const CONTAINER: &str = "flux-bucket";

fn spec(az: &AzuriteServer) -> BucketSpec {
    BucketSpec {
        provider: BucketProvider::Azure,
        bucket_name: CONTAINER.into(),
        endpoint: az.endpoint(),
        insecure: true,
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

fn account_key() -> BucketAuth {
    BucketAuth::AccessKey {
        id: String::new(),
        secret: ACCOUNT_KEY.into(),
    }
}

fn source(spec: BucketSpec, auth: BucketAuth) -> BucketSource {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = ArtifactKey::new("Bucket", "default", "azure").unwrap();
    BucketSource::new(key, spec, auth).unwrap()
}

async fn server_with(objects: &[(&str, &str)]) -> AzuriteServer {
    let az = AzuriteServer::start().await.expect("starting azurite-blob");
    az.create_container(CONTAINER).await.unwrap();
    for (k, v) in objects {
        az.put_blob(CONTAINER, k, v.as_bytes()).await.unwrap();
    }
    az
}

/// The revision Flux gives the blobs: `<name> <ETag header>` lines (quotes kept), see the module
/// documentation of `gitops_sources::bucket`.
async fn revision(az: &AzuriteServer, names: &[&str]) -> gitops_core::Revision {
    let mut etags = Vec::new();
    for n in names {
        etags.push((n.to_string(), az.blob_etag(CONTAINER, n).await.unwrap()));
    }
    assert!(etags.iter().all(|(_, e)| e.starts_with('"')), "{etags:?}");
    index_revision(etags.iter().map(|(k, e)| (k.as_str(), e.as_str())))
}

#[tokio::test]
async fn azure_fetches_then_is_unchanged_then_downloads_only_what_changed() {
    let az = server_with(&[("a.yaml", "a: 1\n"), ("dir/b.yaml", "b: 1\n")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(&az), account_key());

    let first = src.fetch(&store, None).await.unwrap();
    let Fetched::New(first) = first else {
        panic!("expected a new artifact, got {first:?}")
    };
    assert_eq!(
        first.revision,
        revision(&az, &["a.yaml", "dir/b.yaml"]).await
    );
    assert_eq!(
        files(&store, &first),
        BTreeMap::from([
            ("a.yaml".to_string(), "a: 1\n".to_string()),
            ("dir/b.yaml".to_string(), "b: 1\n".to_string()),
        ])
    );
    assert_eq!(src.downloads(), 2);

    // Same listing: unchanged, nothing downloaded.
    let again = src.fetch(&store, Some(&first)).await.unwrap();
    assert_eq!(again, Fetched::Unchanged(first.clone()));
    assert_eq!(src.downloads(), 2);

    // A rewritten blob gets a new ETag: a new revision, only it downloaded.
    az.put_blob(CONTAINER, "dir/b.yaml", b"b: 2\n")
        .await
        .unwrap();
    let Fetched::New(second) = src.fetch(&store, Some(&first)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        second.revision,
        revision(&az, &["a.yaml", "dir/b.yaml"]).await
    );
    assert_ne!(second.revision, first.revision);
    assert_eq!(src.downloads(), 3);
    assert_eq!(files(&store, &second)["dir/b.yaml"], "b: 2\n");

    // A deleted blob leaves the artifact.
    az.delete_blob(CONTAINER, "a.yaml").await.unwrap();
    let Fetched::New(third) = src.fetch(&store, Some(&second)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        files(&store, &third).keys().collect::<Vec<_>>(),
        ["dir/b.yaml"]
    );
    assert_eq!(third.revision, revision(&az, &["dir/b.yaml"]).await);
    assert_eq!(src.downloads(), 3);
}

#[tokio::test]
async fn azure_prefix_and_sourceignore_filter_blobs() {
    let az = server_with(&[
        (".sourceignore", "*.md\n"),
        ("apps/a.yaml", "a\n"),
        ("apps/readme.md", "docs\n"),
        ("apples/b.yaml", "b\n"),
        ("other/o.yaml", "o\n"),
    ])
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let mut with_prefix = spec(&az);
    with_prefix.prefix = Some("apps/".into());
    let src = source(with_prefix, account_key());
    let Fetched::New(art) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        files(&store, &art).keys().collect::<Vec<_>>(),
        ["apps/a.yaml"]
    );
    assert_eq!(art.revision, revision(&az, &["apps/a.yaml"]).await);

    let mut partial = spec(&az);
    partial.prefix = Some("app".into());
    let src = source(partial, account_key()).with_cache_dir(tmp.path().join("cache-partial"));
    let Fetched::New(art) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        files(&store, &art).keys().collect::<Vec<_>>(),
        ["apples/b.yaml", "apps/a.yaml"]
    );
}

#[tokio::test]
async fn azure_wrong_account_key_is_refused_without_showing_it() {
    let az = server_with(&[("a.yaml", "a\n")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    // A well-formed key (base64 of 64 bytes) that is not the account's.
    let wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc=";
    let src = source(
        spec(&az),
        BucketAuth::AccessKey {
            id: String::new(),
            secret: wrong.into(),
        },
    );
    let err = src.fetch(&store, None).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("wrong key: {msg}");
    assert!(msg.contains(CONTAINER), "{msg}");
    assert!(msg.contains("listing objects"), "{msg}");
    assert!(msg.contains("AuthorizationFailure"), "{msg}");
    assert!(!msg.contains(wrong), "{msg}");
    assert!(!msg.contains(ACCOUNT_KEY), "{msg}");
    assert!(err.is_retryable());
    assert_eq!(src.downloads(), 0);

    // Unsigned requests to a private container are refused too.
    let anonymous = source(spec(&az), BucketAuth::Anonymous);
    let err = anonymous.fetch(&store, None).await.unwrap_err();
    eprintln!("anonymous: {err}");
    assert!(err.to_string().contains(CONTAINER), "{err}");
}

#[tokio::test]
async fn azure_missing_container_is_named() {
    let az = server_with(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let mut missing = spec(&az);
    missing.bucket_name = "no-such-container".into();
    let src = source(missing, account_key());
    let err = src.fetch(&store, None).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("missing container: {msg}");
    assert!(msg.contains("\"no-such-container\" not found"), "{msg}");
    assert!(err.is_retryable());
}
