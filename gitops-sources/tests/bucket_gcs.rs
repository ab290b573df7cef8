//! The Bucket source's `gcp` provider: object_store's Google Cloud Storage client, configured by
//! a service-account key (the Bucket Secret's `serviceaccount`, as Flux reads it), against a real
//! server started by each test on a free loopback port and stopped by PID.
//!
//! The server is moto (`gitops_testenv::S3Server`), not a GCS emulator: object_store talks GCS's
//! XML API (`GET /<bucket>?list-type=2`, `GET /<bucket>/<object>`), the S3-compatible API, and no
//! GCS emulator that installs here serves its listing (see `gitops_testenv::gcs`). The key's
//! `gcs_base_url` points the client at moto; requests carry a real JWT self-signed with the key's
//! RSA private key, which moto does not check. So what is tested is the client side of `gcp`:
//! key handling, base URL, listing, downloads, revision over the XML API's ETags (an object's MD5
//! for single-part uploads, as on GCS).

mod bucket_common;
use bucket_common::{files, md5_hex};

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_core::{ArtifactKey, ArtifactStore, Fetched, Source};
use gitops_sources::bucket::{
    BucketAuth, BucketError, BucketProvider, BucketSource, BucketSpec, index_revision,
};
use gitops_testenv::S3Server;
use gitops_testenv::gcs::service_account_key;

const BUCKET: &str = "flux-gcs";

fn spec() -> BucketSpec {
    BucketSpec {
        provider: BucketProvider::Gcp,
        bucket_name: BUCKET.into(),
        // The base URL comes from the key; it is plain HTTP, which needs `insecure`.
        insecure: true,
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

fn new_source(spec: BucketSpec, auth: BucketAuth) -> Result<BucketSource, BucketError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = ArtifactKey::new("Bucket", "default", "gcs").unwrap();
    BucketSource::new(key, spec, auth)
}

fn source(spec: BucketSpec, key: &str) -> BucketSource {
    new_source(spec, BucketAuth::ServiceAccount(key.to_string())).unwrap()
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
fn object_gets(s3: &S3Server) -> usize {
    s3.requests()
        .iter()
        .filter(|r| r.starts_with(&format!("GET /{BUCKET}/")))
        .count()
}

#[tokio::test]
async fn gcp_fetches_with_a_service_account_key_then_is_unchanged() {
    let s3 = server_with(&[("a.yaml", "a: 1\n"), ("dir/b.yaml", "b: 1\n")]).await;
    let key = service_account_key(Some(s3.url())).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(), &key);

    let first = src.fetch(&store, None).await.unwrap();
    let Fetched::New(first) = first else {
        panic!("expected a new artifact, got {first:?}")
    };
    assert_eq!(
        first.revision,
        index_revision([
            ("a.yaml", md5_hex("a: 1\n").as_str()),
            ("dir/b.yaml", md5_hex("b: 1\n").as_str()),
        ])
    );
    assert_eq!(
        files(&store, &first),
        BTreeMap::from([
            ("a.yaml".to_string(), "a: 1\n".to_string()),
            ("dir/b.yaml".to_string(), "b: 1\n".to_string()),
        ])
    );
    assert_eq!(src.downloads(), 2);
    assert_eq!(object_gets(&s3), 2, "{:?}", s3.requests());

    let again = src.fetch(&store, Some(&first)).await.unwrap();
    assert_eq!(again, Fetched::Unchanged(first.clone()));
    assert_eq!(src.downloads(), 2);
    assert_eq!(object_gets(&s3), 2, "{:?}", s3.requests());

    s3.put_object(BUCKET, "a.yaml", b"a: 2\n").await.unwrap();
    let Fetched::New(second) = src.fetch(&store, Some(&first)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        second.revision,
        index_revision([
            ("a.yaml", md5_hex("a: 2\n").as_str()),
            ("dir/b.yaml", md5_hex("b: 1\n").as_str()),
        ])
    );
    assert_eq!(src.downloads(), 3);
    assert_eq!(files(&store, &second)["a.yaml"], "a: 2\n");
}

#[tokio::test]
async fn gcp_endpoint_overrides_the_key_base_url_and_prefix_filters() {
    let s3 = server_with(&[
        (".sourceignore", "*.md\n"),
        ("apps/a.yaml", "a\n"),
        ("apps/readme.md", "docs\n"),
        ("other/o.yaml", "o\n"),
    ])
    .await;
    // A key without gcs_base_url: the spec's endpoint says where the server is.
    let key = service_account_key(None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let mut with_prefix = spec();
    with_prefix.endpoint = s3.url().into();
    with_prefix.prefix = Some("apps/".into());
    let src = source(with_prefix, &key);
    let Fetched::New(art) = src.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        files(&store, &art).keys().collect::<Vec<_>>(),
        ["apps/a.yaml"]
    );
    assert_eq!(
        art.revision,
        index_revision([("apps/a.yaml", md5_hex("a\n").as_str())])
    );
}

#[tokio::test]
async fn gcp_bad_service_account_keys_are_refused_without_showing_them() {
    let s3 = server_with(&[]).await;
    let good = service_account_key(Some(s3.url())).unwrap();
    let good_value: serde_json::Value = serde_json::from_str(&good).unwrap();
    let private_key = good_value["private_key"].as_str().unwrap().to_string();
    // A line from the middle of the PEM body: it must not leak either.
    let key_line = private_key.lines().nth(3).unwrap().to_string();

    // Not JSON at all (a PEM pasted instead of the JSON document).
    let err = new_source(spec(), BucketAuth::ServiceAccount(private_key.clone())).unwrap_err();
    let msg = err.to_string();
    eprintln!("not JSON: {msg}");
    assert!(msg.contains("service account key is not JSON"), "{msg}");
    assert!(!msg.contains(&key_line), "{msg}");
    assert!(!err.is_retryable());

    // A field missing.
    let mut no_email = good_value.clone();
    no_email.as_object_mut().unwrap().remove("client_email");
    let err = new_source(spec(), BucketAuth::ServiceAccount(no_email.to_string())).unwrap_err();
    let msg = err.to_string();
    eprintln!("no client_email: {msg}");
    assert!(msg.contains("\"client_email\""), "{msg}");
    assert!(!msg.contains(&key_line), "{msg}");

    // A private key that is not an RSA key: refused when the client is built.
    let mut broken = good_value.clone();
    let mangled = private_key.replace(&key_line, &"A".repeat(key_line.len()));
    broken["private_key"] = serde_json::Value::String(mangled.clone());
    let err = new_source(spec(), BucketAuth::ServiceAccount(broken.to_string())).unwrap_err();
    let msg = err.to_string();
    eprintln!("broken private key: {msg}");
    assert!(msg.contains(BUCKET), "{msg}");
    assert!(msg.contains("GCS client"), "{msg}");
    for line in mangled.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!msg.contains(line), "{msg}");
    }
    assert!(!err.is_retryable());

    // An S3 access key is not a GCS credential.
    let err = new_source(
        spec(),
        BucketAuth::AccessKey {
            id: "id".into(),
            secret: "s3cr3t".into(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("takes no access key"), "{err}");
    assert!(!err.to_string().contains("s3cr3t"), "{err}");

    // Debug shows no key material.
    let auth = BucketAuth::ServiceAccount(good.clone());
    assert_eq!(format!("{auth:?}"), "ServiceAccount(***)");
    let src = source(spec(), &good);
    assert!(!format!("{src:?}").contains(&key_line));
}

#[tokio::test]
async fn gcp_server_down_is_retryable_and_hides_the_key() {
    let mut s3 = server_with(&[("a.yaml", "a\n")]).await;
    let key = service_account_key(Some(s3.url())).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let src = source(spec(), &key);
    let last = src.fetch(&store, None).await.unwrap().artifact().clone();
    s3.stop();
    let err = src.fetch(&store, Some(&last)).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("server down: {msg}");
    assert!(err.is_retryable(), "{msg}");
    assert!(msg.contains(BUCKET), "{msg}");
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
}
