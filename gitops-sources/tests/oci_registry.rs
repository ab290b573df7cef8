//! OciSource, push_artifact and pull_artifact against a real registry: each test starts its own
//! Debian `docker-registry` (CNCF distribution 2.8) on a free 127.0.0.1 port through
//! gitops-testenv's `OciRegistry` (plain HTTP, so specs say `insecure: true`), and the registry
//! process is killed by its PID when the test's `OciRegistry` is stopped or dropped. The one
//! exception, `bearer_token_is_sent_as_is`, uses a minimal mock (no token server in Debian).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Fetched, Source, Stage};
use gitops_sources::oci::{
    self, ANNOTATION_REVISION, ANNOTATION_SOURCE, FLUX_CONTENT_MEDIA_TYPE, LayerOperation,
    LayerSelector, OciAuth, OciReference, OciRepositorySpec, OciSource,
};
use gitops_testenv::OciRegistry;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

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

    /// A folder with `files` (relative path, content).
    fn folder(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.path().join(name);
        for (rel, content) in files {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        root
    }

    fn extract(&self, artifact: &Artifact) -> BTreeMap<String, String> {
        let out = self
            .dir
            .path()
            .join(format!("out-{}", artifact.digest.hex()));
        self.store.extract(artifact, &out).unwrap();
        read_tree(&out)
    }
}

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn key() -> ArtifactKey {
    ArtifactKey::new("OCIRepository", "flux-system", "podinfo").unwrap()
}

fn spec(reg: &OciRegistry, repo: &str, reference: OciReference) -> OciRepositorySpec {
    OciRepositorySpec {
        url: format!("oci://{}/{repo}", reg.host()),
        reference: Some(reference),
        insecure: true,
        ..Default::default()
    }
}

fn tag(t: &str) -> OciReference {
    OciReference {
        tag: Some(t.into()),
        ..Default::default()
    }
}

async fn push(reg: &OciRegistry, repo_tag: &str, dir: &Path, auth: &OciAuth) -> String {
    oci::push_artifact(
        &format!("oci://{}/{repo_tag}", reg.host()),
        dir,
        "https://github.com/example/podinfo",
        "main@sha1:5394cb7f48332b2de7c17dd8b8384bbc84b7e738",
        auth,
        true,
    )
    .await
    .unwrap()
}

/// Pushes a manifest with arbitrary layers (bytes, media type) with oci-client directly.
async fn push_raw(reg: &OciRegistry, repo: &str, tag: &str, layers: Vec<(Vec<u8>, &str)>) {
    let client = http_client();
    let layers: Vec<ImageLayer> = layers
        .into_iter()
        .map(|(data, mt)| ImageLayer::new(data, mt.to_string(), None))
        .collect();
    let config = Config::new(
        b"{}".to_vec(),
        oci::FLUX_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let manifest = OciImageManifest::build(&layers, &config, None);
    let r = Reference::with_tag(reg.host(), repo.to_string(), tag.to_string());
    client
        .push(
            &r,
            &layers,
            config,
            &RegistryAuth::Anonymous,
            Some(manifest),
        )
        .await
        .unwrap();
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

/// The registry's file holding a blob.
fn blob_file(reg: &OciRegistry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

fn tar_gz(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_old();
        // Written raw: tar::Header::set_path refuses `..` and absolute paths.
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

async fn new_artifact(src: &OciSource, store: &ArtifactStore, last: Option<&Artifact>) -> Artifact {
    match src.fetch(store, last).await.unwrap() {
        Fetched::New(a) => a,
        Fetched::Unchanged(a) => panic!("expected a new artifact, got unchanged {}", a.revision),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_fetch_unchanged_without_download_then_new_tag_content() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let v1 = fx.folder(
        "v1",
        &[("deploy/app.yaml", "kind: A\n"), ("README.md", "one\n")],
    );
    let digest = push(&reg, "demo/app:v1.0.0", &v1, &OciAuth::Anonymous).await;
    assert!(digest.starts_with("sha256:"), "{digest}");

    let src = OciSource::new(
        key(),
        spec(&reg, "demo/app", tag("v1.0.0")),
        OciAuth::Anonymous,
    )
    .unwrap();
    let first = new_artifact(&src, &fx.store, None).await;
    assert_eq!(first.revision.to_string(), format!("v1.0.0@{digest}"));
    assert_eq!(
        first.path,
        format!("ocirepository/flux-system/podinfo/{}.tar.gz", &digest[7..])
    );
    assert_eq!(
        first.metadata.get(ANNOTATION_SOURCE).map(String::as_str),
        Some("https://github.com/example/podinfo")
    );
    assert_eq!(
        first.metadata.get(ANNOTATION_REVISION).map(String::as_str),
        Some("main@sha1:5394cb7f48332b2de7c17dd8b8384bbc84b7e738")
    );
    assert_eq!(
        fx.extract(&first),
        tree(&[("deploy/app.yaml", "kind: A\n"), ("README.md", "one\n")])
    );

    // Remove every blob but the manifest from the registry: a fetch that downloaded a layer
    // or the config would fail now.
    let blobs = reg.storage_dir().join("docker/registry/v2/blobs/sha256");
    let saved = fx.dir.path().join("saved-blobs");
    let mut moved = Vec::new();
    for prefix in std::fs::read_dir(&blobs).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap().path();
            if blob.file_name().unwrap() != &digest[7..] {
                let to = saved.join(moved.len().to_string());
                std::fs::create_dir_all(&saved).unwrap();
                std::fs::rename(&blob, &to).unwrap();
                moved.push((blob, to));
            }
        }
    }
    assert_eq!(moved.len(), 2, "config and layer");
    assert_eq!(
        src.fetch(&fx.store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );
    for (blob, to) in moved {
        std::fs::rename(to, blob).unwrap();
    }

    // The tag moves to new content: new revision, new artifact.
    let v2 = fx.folder("v2", &[("deploy/app.yaml", "kind: B\n")]);
    let digest2 = push(&reg, "demo/app:v1.0.0", &v2, &OciAuth::Anonymous).await;
    assert_ne!(digest, digest2);
    let second = new_artifact(&src, &fx.store, Some(&first)).await;
    assert_eq!(second.revision.to_string(), format!("v1.0.0@{digest2}"));
    assert_eq!(
        fx.extract(&second),
        tree(&[("deploy/app.yaml", "kind: B\n")])
    );
    reg.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semver_picks_the_newest_match_and_digest_pins() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let mut digests = BTreeMap::new();
    for t in ["v1.0.0", "v1.2.0", "v1.3.0-rc.1", "v2.0.0", "latest"] {
        let dir = fx.folder(t, &[("version.txt", t)]);
        digests.insert(
            t,
            push(&reg, &format!("demo/app:{t}"), &dir, &OciAuth::Anonymous).await,
        );
    }
    let src = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/app",
            OciReference {
                semver: Some(">=1.0.0 <2.0.0".into()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    let a = new_artifact(&src, &fx.store, None).await;
    assert_eq!(
        a.revision.to_string(),
        format!("v1.2.0@{}", digests["v1.2.0"])
    );
    assert_eq!(fx.extract(&a), tree(&[("version.txt", "v1.2.0")]));

    // A new matching tag wins on the next fetch.
    let dir = fx.folder("v1.4.0", &[("version.txt", "v1.4.0")]);
    let d14 = push(&reg, "demo/app:v1.4.0", &dir, &OciAuth::Anonymous).await;
    let b = new_artifact(&src, &fx.store, Some(&a)).await;
    assert_eq!(b.revision.to_string(), format!("v1.4.0@{d14}"));

    // semverFilter narrows the candidates first; no match is terminal.
    let filtered = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/app",
            OciReference {
                semver: Some(">=1.0.0-0".into()),
                semver_filter: Some(".*-rc.*".into()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    let c = new_artifact(&filtered, &fx.store, None).await;
    assert_eq!(c.revision.pointer(), Some("v1.3.0-rc.1"));
    let none = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/app",
            OciReference {
                semver: Some(">=3.0.0".into()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    let e = none.fetch(&fx.store, None).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("no tag matches"), "{e}");

    // Pinned by digest: the revision is the bare digest; a tag given too is ignored.
    let pinned = OciSource::new(
        key(),
        spec(
            &reg,
            "demo/app",
            OciReference {
                tag: Some("v2.0.0".into()),
                digest: Some(digests["v1.0.0"].clone()),
                ..Default::default()
            },
        ),
        OciAuth::Anonymous,
    )
    .unwrap();
    let d = new_artifact(&pinned, &fx.store, None).await;
    assert_eq!(d.revision.to_string(), digests["v1.0.0"]);
    assert_eq!(fx.extract(&d), tree(&[("version.txt", "v1.0.0")]));
    assert_eq!(
        pinned.fetch(&fx.store, Some(&d)).await.unwrap(),
        Fetched::Unchanged(d.clone())
    );

    // Default tag is `latest`; a missing tag is terminal.
    let latest = OciSource::new(
        key(),
        OciRepositorySpec {
            url: format!("oci://{}/demo/app", reg.host()),
            insecure: true,
            ..Default::default()
        },
        OciAuth::Anonymous,
    )
    .unwrap();
    let l = new_artifact(&latest, &fx.store, None).await;
    assert_eq!(
        l.revision.to_string(),
        format!("latest@{}", digests["latest"])
    );
    let missing =
        OciSource::new(key(), spec(&reg, "demo/app", tag("v9")), OciAuth::Anonymous).unwrap();
    let e = missing.fetch(&fx.store, None).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("not found"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_selector_copy_and_extract() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let content = tar_gz(&[(b"manifests/cm.yaml", b"kind: ConfigMap\n")]);
    push_raw(
        &reg,
        "demo/multi",
        "v1",
        vec![
            (b"just text".to_vec(), "text/plain"),
            (content.clone(), FLUX_CONTENT_MEDIA_TYPE),
        ],
    )
    .await;
    let with = |media_type: &str, op| OciRepositorySpec {
        layer_selector: Some(LayerSelector {
            media_type: Some(media_type.into()),
            operation: op,
        }),
        ..spec(&reg, "demo/multi", tag("v1"))
    };

    // copy: the layer's bytes, unaltered, are the artifact.
    let copy = OciSource::new(
        key(),
        with("text/plain", Some(LayerOperation::Copy)),
        OciAuth::Anonymous,
    )
    .unwrap();
    let a = new_artifact(&copy, &fx.store, None).await;
    assert_eq!(
        std::fs::read(fx.store.local_path(&a)).unwrap(),
        b"just text"
    );
    assert_eq!(a.digest, gitops_core::Digest::sha256_of(b"just text"));
    assert_eq!(a.size, 9);
    fx.store.verify(&a).unwrap();

    // extract (default operation) of the Flux content layer.
    let extract = OciSource::new(
        key(),
        with(FLUX_CONTENT_MEDIA_TYPE, None),
        OciAuth::Anonymous,
    )
    .unwrap();
    // Same manifest, other selector: a new artifact, not Unchanged.
    let b = new_artifact(&extract, &fx.store, Some(&a)).await;
    assert_eq!(b.revision, a.revision);
    assert_eq!(
        fx.extract(&b),
        tree(&[("manifests/cm.yaml", "kind: ConfigMap\n")])
    );

    // copy of the tarball layer stores it as is, extractable.
    let copy_tar = OciSource::new(
        key(),
        with(FLUX_CONTENT_MEDIA_TYPE, Some(LayerOperation::Copy)),
        OciAuth::Anonymous,
    )
    .unwrap();
    let c = new_artifact(&copy_tar, &fx.store, None).await;
    assert_eq!(std::fs::read(fx.store.local_path(&c)).unwrap(), content);
    assert_eq!(
        fx.extract(&c),
        tree(&[("manifests/cm.yaml", "kind: ConfigMap\n")])
    );

    // No selector: the first layer, which is not a tarball: refused, terminal.
    let first = OciSource::new(
        key(),
        spec(&reg, "demo/multi", tag("v1")),
        OciAuth::Anonymous,
    )
    .unwrap();
    let e = first.fetch(&fx.store, None).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    // A media type no layer has: terminal, names the media types present.
    let none = OciSource::new(key(), with("application/x-nope", None), OciAuth::Anonymous).unwrap();
    let e = none.fetch(&fx.store, None).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("text/plain"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_and_tampered_layers_are_refused() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let outside = fx.dir.path().join("evil.txt");
    for (t, name) in [
        ("dotdot", &b"../../../../evil.txt"[..]),
        ("abs", outside.to_str().unwrap().as_bytes()),
    ] {
        push_raw(
            &reg,
            "demo/evil",
            t,
            vec![(
                tar_gz(&[(b"ok.yaml", b"a: 1\n"), (name, b"pwned")]),
                FLUX_CONTENT_MEDIA_TYPE,
            )],
        )
        .await;
        let src =
            OciSource::new(key(), spec(&reg, "demo/evil", tag(t)), OciAuth::Anonymous).unwrap();
        let e = src.fetch(&fx.store, None).await.unwrap_err();
        assert_eq!(e.stage(), Stage::Fetch);
        assert!(!e.is_retryable(), "{e}");
        assert!(e.to_string().contains("unsafe"), "{e}");
        assert!(!outside.exists(), "{t}: wrote outside the destination");
    }

    // A blob altered in the registry's storage (same size) fails the digest check.
    let dir = fx.folder("good", &[("a.yaml", "a: 1\n")]);
    push(&reg, "demo/tampered:v1", &dir, &OciAuth::Anonymous).await;
    let client = http_client();
    let (manifest, _) = client
        .pull_image_manifest(
            &Reference::with_tag(reg.host(), "demo/tampered".into(), "v1".into()),
            &RegistryAuth::Anonymous,
        )
        .await
        .unwrap();
    let blob = blob_file(&reg, &manifest.layers[0].digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let src = OciSource::new(
        key(),
        spec(&reg, "demo/tampered", tag("v1")),
        OciAuth::Anonymous,
    )
    .unwrap();
    let e = src.fetch(&fx.store, None).await.unwrap_err();
    assert!(e.to_string().contains("digest verification failed"), "{e}");
    let e = oci::pull_artifact(
        &format!("oci://{}/demo/tampered:v1", reg.host()),
        &fx.dir.path().join("pulled"),
        &OciAuth::Anonymous,
        true,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("digest verification failed"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_required() {
    let fx = Fx::new();
    let password = "correct-horse-battery";
    let reg = OciRegistry::start_with_basic_auth("alice", password).unwrap();
    let creds = OciAuth::Basic {
        username: "alice".into(),
        password: password.into(),
    };
    let dir = fx.folder("src", &[("a.yaml", "a: 1\n")]);
    let digest = push(&reg, "private/app:v1", &dir, &creds).await;

    let anon = OciSource::new(
        key(),
        spec(&reg, "private/app", tag("v1")),
        OciAuth::Anonymous,
    )
    .unwrap();
    let e = anon.fetch(&fx.store, None).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&reg.host()), "{msg}");
    assert!(msg.contains("authentication"), "{msg}");

    let wrong = OciAuth::Basic {
        username: "alice".into(),
        password: "wrong-password-123".into(),
    };
    let bad = OciSource::new(key(), spec(&reg, "private/app", tag("v1")), wrong).unwrap();
    let msg = bad.fetch(&fx.store, None).await.unwrap_err().to_string();
    assert!(msg.contains(&reg.host()), "{msg}");
    assert!(!msg.contains("wrong-password-123"), "{msg}");
    assert!(!format!("{bad:?}").contains("wrong-password-123"));

    // The right credentials, from a .dockerconfigjson as in an imagePullSecret.
    let docker_config = format!(
        r#"{{"auths":{{"{}":{{"username":"alice","password":"{password}"}}}}}}"#,
        reg.host()
    );
    let auth = OciAuth::from_docker_config(docker_config.as_bytes(), &reg.host()).unwrap();
    assert_eq!(auth, creds);
    let ok = OciSource::new(key(), spec(&reg, "private/app", tag("v1")), auth).unwrap();
    let a = new_artifact(&ok, &fx.store, None).await;
    assert_eq!(a.revision.to_string(), format!("v1@{digest}"));
    assert_eq!(fx.extract(&a), tree(&[("a.yaml", "a: 1\n")]));

    // pull_artifact without credentials fails, with them works.
    let url = format!("oci://{}/private/app:v1", reg.host());
    let e = oci::pull_artifact(&url, &fx.dir.path().join("p0"), &OciAuth::Anonymous, true)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let pulled = oci::pull_artifact(&url, &fx.dir.path().join("p1"), &creds, true)
        .await
        .unwrap();
    assert_eq!(pulled.digest, digest);
    assert_eq!(
        read_tree(&fx.dir.path().join("p1")),
        tree(&[("a.yaml", "a: 1\n")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_is_retryable_and_keeps_the_last_artifact() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let dir = fx.folder("src", &[("a.yaml", "a: 1\n")]);
    push(&reg, "demo/app:v1", &dir, &OciAuth::Anonymous).await;
    let src = OciSource::new(key(), spec(&reg, "demo/app", tag("v1")), OciAuth::Anonymous).unwrap();
    let a = new_artifact(&src, &fx.store, None).await;
    let host = reg.host();
    reg.stop();

    let e = src.fetch(&fx.store, Some(&a)).await.unwrap_err();
    assert_eq!(e.stage(), Stage::Fetch);
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains(&host), "{e}");
    fx.store.verify(&a).unwrap();
    assert_eq!(fx.extract(&a), tree(&[("a.yaml", "a: 1\n")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_round_trip_leaves_vcs_files_out() {
    let fx = Fx::new();
    let reg = OciRegistry::start().unwrap();
    let dir = fx.folder(
        "src",
        &[
            ("apps/a.yaml", "a: 1\n"),
            (".git/HEAD", "ref: x\n"),
            ("b.yaml", "b: 2\n"),
        ],
    );
    let d1 = push(&reg, "demo/rt:v1", &dir, &OciAuth::Anonymous).await;
    let out = fx.dir.path().join("pulled");
    let pulled = oci::pull_artifact(
        &format!("oci://{}/demo/rt:v1", reg.host()),
        &out,
        &OciAuth::Anonymous,
        true,
    )
    .await
    .unwrap();
    assert_eq!(pulled.digest, d1);
    assert_eq!(pulled.media_type, FLUX_CONTENT_MEDIA_TYPE);
    assert_eq!(
        pulled
            .annotations
            .get(ANNOTATION_SOURCE)
            .map(String::as_str),
        Some("https://github.com/example/podinfo")
    );
    // .git is left out, as flux push does.
    assert_eq!(
        read_tree(&out),
        tree(&[("apps/a.yaml", "a: 1\n"), ("b.yaml", "b: 2\n")])
    );
}

/// Bearer tokens: docker-registry 2.8 has no token server in Debian, so this one test runs
/// against a minimal mock on 127.0.0.1 (a thread answering `HEAD` on the manifest only when
/// `Authorization: Bearer <token>` is sent), and checks the token never shows in errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_sent_as_is() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let d = digest.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                request.push(line.trim_end().to_ascii_lowercase());
            }
            let authorized = request
                .iter()
                .any(|l| l == "authorization: bearer t0ken-abc");
            let response = if authorized
                && request[0].starts_with("head /v2/demo/app/manifests/v1 ")
            {
                format!(
                    "HTTP/1.1 200 OK\r\nDocker-Content-Digest: {d}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    let spec = OciRepositorySpec {
        url: format!("oci://{host}/demo/app"),
        reference: Some(tag("v1")),
        insecure: true,
        ..Default::default()
    };
    let ok = OciSource::new(key(), spec.clone(), OciAuth::Bearer("t0ken-abc".into())).unwrap();
    assert_eq!(
        ok.resolve().await.unwrap().to_string(),
        format!("v1@{digest}")
    );
    assert!(!format!("{ok:?}").contains("t0ken-abc"));

    let bad = OciSource::new(key(), spec, OciAuth::Bearer("wrong-t0ken".into())).unwrap();
    let e = bad.resolve().await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&host) && !msg.contains("wrong-t0ken"), "{msg}");
}
