//! The Bucket source's `aws` provider against a real S3 server that checks signatures: moto
//! (`gitops_testenv::S3Server::start_with_auth`, on a free loopback port, stopped by PID) with an
//! IAM user whose access key is the only one accepted.
//!
//! The `aws` provider with a custom `endpoint` sends path-style requests, as Flux's minio-go
//! client does for any host that is not Amazon's, and takes credentials from the Bucket's
//! access key or, without one, from AWS's ambient chain. The ambient chain is tested through
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`: environment variables are process-wide, so
//! this file is its own test binary holding a single test that sets them before any client
//! exists.

mod bucket_common;
use bucket_common::{files, md5_hex};

use std::collections::BTreeMap;
use std::time::Duration;

use gitops_core::{ArtifactKey, ArtifactStore, Fetched, Source};
use gitops_sources::bucket::{
    BucketAuth, BucketProvider, BucketSource, BucketSpec, index_revision,
};
use gitops_testenv::S3Server;

const BUCKET: &str = "flux-aws";

fn spec(s3: &S3Server) -> BucketSpec {
    BucketSpec {
        provider: BucketProvider::Aws,
        bucket_name: BUCKET.into(),
        endpoint: s3.url().into(),
        insecure: true,
        region: Some("us-east-1".into()),
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

fn source(name: &str, spec: BucketSpec, auth: BucketAuth) -> BucketSource {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = ArtifactKey::new("Bucket", "default", name).unwrap();
    BucketSource::new(key, spec, auth).unwrap()
}

#[tokio::test]
#[allow(unsafe_code)]
async fn aws_provider_with_ambient_and_explicit_credentials_against_signature_checking_s3() {
    let objects = [("a.yaml", "a: 1\n"), ("dir/b.yaml", "b: 1\n")];
    // 1 bucket + the objects may be created unsigned; then signatures are checked.
    let (s3, key) = S3Server::start_with_auth(1 + objects.len() as u32)
        .await
        .expect("starting moto_server");
    s3.create_bucket(BUCKET).await.unwrap();
    for (k, v) in objects {
        s3.put_object(BUCKET, k, v.as_bytes()).await.unwrap();
    }
    // From now on moto checks signatures: the helper's fake-signed calls are refused.
    assert!(s3.put_object(BUCKET, "c.yaml", b"c\n").await.is_err());

    // SAFETY: this is the only test of this binary (its own file), so no other thread reads or
    // writes the environment; it is set before any client of this test exists.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", &key.id);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", &key.secret);
        std::env::remove_var("AWS_SESSION_TOKEN");
    }

    let tmp = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let expected = index_revision([
        ("a.yaml", md5_hex("a: 1\n").as_str()),
        ("dir/b.yaml", md5_hex("b: 1\n").as_str()),
    ]);

    // Ambient credentials (no secretRef): fetch, then an unchanged poll.
    let ambient = source("ambient", spec(&s3), BucketAuth::Anonymous);
    let first = ambient.fetch(&store, None).await.unwrap();
    let Fetched::New(first) = first else {
        panic!("expected a new artifact, got {first:?}")
    };
    assert_eq!(first.revision, expected);
    assert_eq!(
        files(&store, &first),
        BTreeMap::from([
            ("a.yaml".to_string(), "a: 1\n".to_string()),
            ("dir/b.yaml".to_string(), "b: 1\n".to_string()),
        ])
    );
    assert_eq!(ambient.downloads(), 2);
    let again = ambient.fetch(&store, Some(&first)).await.unwrap();
    assert_eq!(again, Fetched::Unchanged(first.clone()));
    assert_eq!(ambient.downloads(), 2);

    // Path-style requests to the custom endpoint: `/<bucket>?list-type=2...`, `/<bucket>/<key>`.
    let requests = s3.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /{BUCKET}?list-type=2"))),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /{BUCKET}/dir/b.yaml "))),
        "{requests:?}"
    );

    // The Bucket's own access key, with a prefix. (Not `dir/`: a listing with a `prefix=dir%2F`
    // query fails moto 5's signature check although AWS accepts it, moto canonicalizes the
    // encoded `/` differently; `dir` lists the whole bucket and filters the keys here.)
    let mut with_prefix = spec(&s3);
    with_prefix.prefix = Some("dir".into());
    let explicit = source(
        "explicit",
        with_prefix,
        BucketAuth::AccessKey {
            id: key.id.clone(),
            secret: key.secret.clone(),
        },
    );
    let Fetched::New(art) = explicit.fetch(&store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        files(&store, &art).keys().collect::<Vec<_>>(),
        ["dir/b.yaml"]
    );
    assert_eq!(
        art.revision,
        index_revision([("dir/b.yaml", md5_hex("b: 1\n").as_str())])
    );

    // A wrong secret: refused by the server, named, retryable, the secret not shown.
    let wrong_secret = "wrongWRONGwrongWRONGwrongWRONGwrong00000";
    let wrong = source(
        "wrong",
        spec(&s3),
        BucketAuth::AccessKey {
            id: key.id.clone(),
            secret: wrong_secret.into(),
        },
    );
    let err = wrong.fetch(&store, None).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("wrong secret: {msg}");
    assert!(msg.contains(BUCKET), "{msg}");
    assert!(msg.contains("SignatureDoesNotMatch"), "{msg}");
    assert!(!msg.contains(wrong_secret), "{msg}");
    assert!(!msg.contains(&key.secret), "{msg}");
    assert!(err.is_retryable());
    assert_eq!(wrong.downloads(), 0);

    // An unknown key id.
    let unknown = source(
        "unknown",
        spec(&s3),
        BucketAuth::AccessKey {
            id: "AKIAUNKNOWNUNKNOWN00".into(),
            secret: key.secret.clone(),
        },
    );
    let err = unknown.fetch(&store, None).await.unwrap_err();
    let msg = err.to_string();
    eprintln!("unknown key: {msg}");
    assert!(msg.contains("InvalidAccessKeyId"), "{msg}");
    assert!(!msg.contains(&key.secret), "{msg}");
}
