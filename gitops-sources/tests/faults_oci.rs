//! Faults and bad input for the OCI source (see FAULTS.md), against a real Debian
//! `docker-registry` (CNCF distribution 2.8) started per test by gitops-testenv's `OciRegistry`
//! on a free 127.0.0.1 port and killed by PID when the test ends: a layer with symlinks leaving
//! the folder, decompression bombs, a truncated blob, wrong credentials, and a repository with
//! more tags than one page of the tag list.
//!
//! Each refusal is checked for behaviour: error kind and retryability, the message names the
//! repository, no secret in `{e}` or `{e:?}`, the previous artifact is still in the store and
//! verifies, and the store holds no new file.

use gitops_testenv::archive::{TarEntry, raw_tar_gz};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use gitops_core::{Artifact, ArtifactKey, ArtifactStore, ExtractLimits, Fetched, Source, Stage};
use gitops_sources::oci::{
    self, FLUX_CONTENT_MEDIA_TYPE, OciAuth, OciError, OciReference, OciRepositorySpec, OciSource,
};
use gitops_testenv::OciRegistry;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn key() -> ArtifactKey {
    ArtifactKey::new("OCIRepository", "flux-system", "faults").unwrap()
}

fn spec(reg: &OciRegistry, repo: &str, reference: OciReference) -> OciRepositorySpec {
    OciRepositorySpec {
        url: format!("oci://{}/{repo}", reg.host()),
        reference: Some(reference),
        insecure: true,
        timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    }
}

fn tag(t: &str) -> OciReference {
    OciReference {
        tag: Some(t.into()),
        ..Default::default()
    }
}

/// A plain-HTTP oci-client with the ring provider installed.
fn http_client() -> Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

/// Pushes one layer (bytes, media type) as `repo:tag`; returns the manifest.
async fn push_layer(
    reg: &OciRegistry,
    repo: &str,
    tag: &str,
    layer: Vec<u8>,
    auth: &RegistryAuth,
) -> OciImageManifest {
    let client = http_client();
    let layers = vec![ImageLayer::new(
        layer,
        FLUX_CONTENT_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config::new(
        b"{}".to_vec(),
        oci::FLUX_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let manifest = OciImageManifest::build(&layers, &config, None);
    let r = Reference::with_tag(reg.host(), repo.to_string(), tag.to_string());
    client
        .push(&r, &layers, config, auth, Some(manifest.clone()))
        .await
        .unwrap();
    manifest
}

fn tar_gz(entries: &[TarEntry<'_>]) -> Vec<u8> {
    raw_tar_gz(entries).unwrap()
}

const FILE: tar::EntryType = tar::EntryType::Regular;
const LINK: tar::EntryType = tar::EntryType::Symlink;

/// Every file under the store root, relative.
fn store_files(store: &ArtifactStore) -> BTreeSet<String> {
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
    out
}

/// The store holds exactly `last`'s file, and it verifies.
fn only_last_kept(store: &ArtifactStore, last: &Artifact) {
    store.verify(last).unwrap();
    assert_eq!(store_files(store), BTreeSet::from([last.path.clone()]));
}

fn oci_error(e: &gitops_core::Error) -> &OciError {
    e.inner()
        .downcast_ref::<OciError>()
        .unwrap_or_else(|| panic!("not an OciError: {e}"))
}

struct Fx {
    dir: tempfile::TempDir,
    store: ArtifactStore,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().join("store")).unwrap();
        Fx { dir, store }
    }

    /// A good artifact from `repo:good`, fetched with `src_for("good")`.
    async fn good(&self, reg: &OciRegistry, repo: &str) -> Artifact {
        push_layer(
            reg,
            repo,
            "good",
            tar_gz(&[("ok.yaml", FILE, "", b"a: 1\n")]),
            &RegistryAuth::Anonymous,
        )
        .await;
        let src = OciSource::new(key(), spec(reg, repo, tag("good")), OciAuth::Anonymous).unwrap();
        match src.fetch(&self.store, None).await.unwrap() {
            Fetched::New(a) => a,
            other => panic!("expected a new artifact, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_leaving_the_layer_are_refused() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let last = fx.good(&reg, "demo/links").await;
    let outside = fx.dir.path().join("outside.txt");
    std::fs::write(&outside, "outside\n").unwrap();
    let outside_str = outside.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<TarEntry<'_>>)> = vec![
        (
            "relative",
            vec![
                ("ok.yaml", FILE, "", b"a: 1\n"),
                ("deploy/leak.yaml", LINK, "../../../../../outside.txt", b""),
            ],
        ),
        (
            "absolute",
            vec![
                ("ok.yaml", FILE, "", b"a: 1\n"),
                ("leak.yaml", LINK, &outside_str, b""),
            ],
        ),
        (
            // A link to a folder outside, then a file written "through" it.
            "through",
            vec![
                ("dir", LINK, "..", b""),
                ("dir/pwned.txt", FILE, "", b"pwned\n"),
            ],
        ),
    ];
    for (t, entries) in cases {
        push_layer(
            &reg,
            "demo/links",
            t,
            tar_gz(&entries),
            &RegistryAuth::Anonymous,
        )
        .await;
        let src =
            OciSource::new(key(), spec(&reg, "demo/links", tag(t)), OciAuth::Anonymous).unwrap();
        let e = src.fetch(&fx.store, Some(&last)).await.unwrap_err();
        assert_eq!(e.stage(), Stage::Fetch);
        assert!(!e.is_retryable(), "{t}: {e}");
        assert!(
            matches!(oci_error(&e), OciError::UnsafeLayer { .. }),
            "{t}: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("demo/links") && msg.contains("symlink"),
            "{t}: {msg}"
        );
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "outside\n");
        assert!(!fx.dir.path().join("pwned.txt").exists(), "{t}");
        only_last_kept(&fx.store, &last);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_before_anything_is_stored() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let last = fx.good(&reg, "demo/bomb").await;
    let limits = ExtractLimits {
        max_total_bytes: 1 << 20,
        max_files: 1000,
    };

    // 8 MiB of zeros gzip to a few KiB: past the 1 MiB cap.
    let zeros = vec![0u8; 8 << 20];
    let big = tar_gz(&[
        ("ok.yaml", FILE, "", b"a: 1\n"),
        ("zeros.bin", FILE, "", &zeros),
    ]);
    assert!(big.len() < 64 << 10, "{} bytes", big.len());
    // 1,500 empty files: past the 1,000 entry cap.
    let names: Vec<String> = (0..1500).map(|i| format!("f/{i}.yaml")).collect();
    let many: Vec<TarEntry<'_>> = names
        .iter()
        .map(|n| (n.as_str(), FILE, "", &b""[..]))
        .collect();
    let many = tar_gz(&many);

    for (t, layer, what) in [
        ("size", big, "total size in bytes"),
        ("count", many, "file count"),
    ] {
        push_layer(&reg, "demo/bomb", t, layer, &RegistryAuth::Anonymous).await;
        let src = OciSource::new(key(), spec(&reg, "demo/bomb", tag(t)), OciAuth::Anonymous)
            .unwrap()
            .with_limits(limits);
        let e = src.fetch(&fx.store, Some(&last)).await.unwrap_err();
        assert!(!e.is_retryable(), "{t}: {e}");
        assert!(
            matches!(oci_error(&e), OciError::UnsafeLayer { .. }),
            "{t}: {e}"
        );
        assert!(e.to_string().contains(what), "{t}: {e}");
        only_last_kept(&fx.store, &last);
    }

    // pull_artifact (`flux pull artifact`) uses the default limits: the 8 MiB layer is fine
    // there, and lands in its output folder only.
    let out = fx.dir.path().join("pulled");
    oci::pull_artifact(
        &format!("oci://{}/demo/bomb:size", reg.host()),
        &out,
        &OciAuth::Anonymous,
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::metadata(out.join("zeros.bin")).unwrap().len(),
        8 << 20
    );
}

/// The registry's file holding a blob.
fn blob_file(reg: &OciRegistry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_blob_fails_verification_and_the_last_artifact_stays() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let last = fx.good(&reg, "demo/trunc").await;

    // The tag moves to new content whose layer blob is then cut in half in the registry's
    // storage, as an interrupted write or a broken disk leaves it.
    let layer = tar_gz(&[
        ("ok.yaml", FILE, "", b"a: 2\n"),
        ("more.yaml", FILE, "", b"b: 2\n"),
    ]);
    let manifest = push_layer(&reg, "demo/trunc", "good", layer, &RegistryAuth::Anonymous).await;
    let blob = blob_file(&reg, &manifest.layers[0].digest);
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();

    let src = OciSource::new(
        key(),
        spec(&reg, "demo/trunc", tag("good")),
        OciAuth::Anonymous,
    )
    .unwrap();
    let e = src.fetch(&fx.store, Some(&last)).await.unwrap_err();
    eprintln!("truncated blob: {e}");
    assert_eq!(e.stage(), Stage::Fetch);
    assert!(
        matches!(oci_error(&e), OciError::DigestMismatch { .. }),
        "{e}"
    );
    assert!(!e.is_retryable(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("demo/trunc") && msg.contains(&manifest.layers[0].digest),
        "{msg}"
    );
    only_last_kept(&fx.store, &last);

    // pull_artifact refuses it too and writes nothing.
    let out = fx.dir.path().join("pulled");
    let e = oci::pull_artifact(
        &format!("oci://{}/demo/trunc:good", reg.host()),
        &out,
        &OciAuth::Anonymous,
        true,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, OciError::DigestMismatch { .. }), "{e}");
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_named_never_printed_and_keep_the_last_artifact() {
    let fx = Fx::new();
    let password = "s3cret-registry-pw";
    let reg = OciRegistry::start_with_basic_auth("alice", password).unwrap();
    let right = RegistryAuth::Basic("alice".into(), password.into());
    push_layer(
        &reg,
        "private/app",
        "v1",
        tar_gz(&[("ok.yaml", FILE, "", b"a: 1\n")]),
        &right,
    )
    .await;
    let good = OciAuth::Basic {
        username: "alice".into(),
        password: password.into(),
    };
    let src = OciSource::new(key(), spec(&reg, "private/app", tag("v1")), good).unwrap();
    let last = src.fetch(&fx.store, None).await.unwrap().artifact().clone();

    let wrong_pw = "wr0ng-registry-pw";
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{wrong_pw}"))
    };
    for (what, auth) in [
        (
            "wrong password",
            OciAuth::Basic {
                username: "alice".into(),
                password: wrong_pw.into(),
            },
        ),
        ("bearer token", OciAuth::Bearer(wrong_pw.into())),
        ("anonymous", OciAuth::Anonymous),
    ] {
        let src = OciSource::new(key(), spec(&reg, "private/app", tag("v1")), auth).unwrap();
        let e = src.fetch(&fx.store, Some(&last)).await.unwrap_err();
        let shown = format!("{e} | {e:?} | {src:?}");
        eprintln!("{what}: {e}");
        assert!(
            matches!(oci_error(&e), OciError::Authentication { .. }),
            "{what}: {e}"
        );
        assert!(e.is_retryable(), "{what}: {e}");
        assert!(shown.contains(&reg.host()), "{what}: {shown}");
        for secret in [wrong_pw, password, b64.as_str()] {
            assert!(!shown.contains(secret), "{what}: {shown}");
        }
        only_last_kept(&fx.store, &last);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_tags_than_a_page_on_a_registry_that_ignores_pagination() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    // One manifest, tagged 1,100 times: more than the 1,000 tags the source asks for per
    // page. distribution 2.8 ignores `n` and `last` and answers every tag, unsorted.
    let manifest = push_layer(
        &reg,
        "demo/many",
        "v1.0.0",
        tar_gz(&[("ok.yaml", FILE, "", b"a: 1\n")]),
        &RegistryAuth::Anonymous,
    )
    .await;
    let client = http_client();
    let manifest = OciManifest::Image(manifest);
    let host = reg.host();
    futures::stream::iter(1..1100)
        .map(|i| {
            let r = Reference::with_tag(host.clone(), "demo/many".into(), format!("v1.{i}.0"));
            let (client, manifest) = (&client, &manifest);
            async move { client.push_manifest(&r, manifest).await.unwrap() }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let listed = client
        .list_tags(
            &Reference::with_tag(host.clone(), "demo/many".into(), "x".into()),
            &RegistryAuth::Anonymous,
            Some(10),
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed.tags.len(), 1100, "the registry paginates now");

    let src = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/many",
            OciReference {
                semver: Some("<1.500.0".into()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    let revision = src.resolve().await.unwrap();
    assert_eq!(revision.pointer(), Some("v1.499.0"));
    let a = src.fetch(&fx.store, None).await.unwrap();
    let Fetched::New(a) = a else {
        panic!("expected a new artifact, got {a:?}")
    };
    assert_eq!(a.revision, revision);
    assert_eq!(
        src.fetch(&fx.store, Some(&a)).await.unwrap(),
        Fetched::Unchanged(a.clone())
    );
    let newest = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/many",
            OciReference {
                semver: Some(">=1.0.0".into()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    assert_eq!(newest.resolve().await.unwrap().pointer(), Some("v1.1099.0"));
    let none = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/many",
            OciReference {
                semver: Some(">=2.0.0".into()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    let e = none.fetch(&fx.store, Some(&a)).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(matches!(oci_error(&e), OciError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("among 1100 tags"), "{e}");
    only_last_kept(&fx.store, &a);
}
