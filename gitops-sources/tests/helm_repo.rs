//! HelmChartSource against a real HTTP server: each test packages the real podinfo chart
//! (`/work/shared/fixtures/podinfo/charts/podinfo`, or `$PODINFO_CHART`) at several versions into
//! `.tgz` files laid out as `helm package` does (`podinfo/Chart.yaml`, `podinfo/templates/...`),
//! writes a Helm `index.yaml` (`apiVersion: v1`, `entries.podinfo[]` with `version`, `urls`,
//! `digest` = sha256 hex of the `.tgz`, `created`), and serves the folder with gitops-testenv's
//! `StaticHttpServer` on 127.0.0.1 (over HTTPS with a throwaway `TestCa` for the custom CA tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Digest, Fetched, Source};
use gitops_sources::helm::{
    HelmAuth, HelmChartSource, HelmChartSpec, HelmError, HelmRepositorySource, HelmRepositorySpec,
    HelmRepositoryType, INDEX_FILE, METADATA_VERSION,
};
use gitops_testenv::{StaticHttpServer, TestCa};

fn podinfo_chart() -> PathBuf {
    std::env::var_os("PODINFO_CHART")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/podinfo/charts/podinfo")
        })
}

/// The podinfo chart as `helm package` lays it out, with `version` (and `appVersion`) replaced.
fn package(version: &str) -> Vec<u8> {
    gitops_testenv::package_chart(&podinfo_chart(), "podinfo", version).unwrap()
}

/// A served chart repository folder.
struct Repo {
    dir: tempfile::TempDir,
    /// (version, file, digest written into the index or None)
    entries: Vec<(String, String, Option<String>)>,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            dir: tempfile::tempdir().unwrap(),
            entries: Vec::new(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Packages `version` into `podinfo-<version>.tgz` and lists it in `index.yaml`.
    fn add(&mut self, version: &str) -> Vec<u8> {
        let tgz = package(version);
        let file = format!("podinfo-{version}.tgz");
        std::fs::write(self.root().join(&file), &tgz).unwrap();
        let digest = Digest::sha256_of(&tgz).hex().to_string();
        self.entries.push((version.to_string(), file, Some(digest)));
        self.write_index();
        tgz
    }

    fn write_index(&self) {
        let mut y = String::from("apiVersion: v1\nentries:\n  podinfo:\n");
        for (version, file, digest) in &self.entries {
            y.push_str(&format!(
                "  - apiVersion: v1\n    name: podinfo\n    version: {version}\n    appVersion: {version}\n    created: \"2024-01-01T00:00:00Z\"\n    urls:\n    - {file}\n"
            ));
            if let Some(d) = digest {
                y.push_str(&format!("    digest: {d}\n"));
            }
        }
        y.push_str("generated: \"2024-01-01T00:00:00Z\"\n");
        std::fs::write(self.root().join("index.yaml"), y).unwrap();
    }
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

    fn extract(&self, artifact: &Artifact) -> BTreeMap<String, String> {
        let out = self
            .dir
            .path()
            .join(format!("out-{}", artifact.digest.hex()));
        self.store.extract(artifact, &out).unwrap();
        let mut files = BTreeMap::new();
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(
                        rel,
                        String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into(),
                    );
                }
            }
        }
        walk(&out, &out, &mut files);
        files
    }
}

fn source(url: &str, range: &str, auth: HelmAuth) -> HelmChartSource {
    HelmChartSource::new(
        ArtifactKey::new("HelmChart", "flux-system", "podinfo").unwrap(),
        HelmRepositorySpec {
            url: url.to_string(),
            ..Default::default()
        },
        HelmChartSpec {
            chart: "podinfo".into(),
            version: range.into(),
            source_ref: None,
            ..Default::default()
        },
        auth,
    )
    .unwrap()
}

fn helm_error(e: &gitops_core::Error) -> &HelmError {
    e.inner()
        .downcast_ref::<HelmError>()
        .unwrap_or_else(|| panic!("not a HelmError: {e}"))
}

#[tokio::test]
async fn newest_version_then_unchanged_then_new_version() {
    let mut repo = Repo::new();
    for v in ["6.0.0", "6.2.1", "6.5.0", "6.6.0-rc.1"] {
        repo.add(v);
    }
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    let src = source(&server.url(), "*", HelmAuth::None);

    let first = src.fetch(&fx.store, None).await.unwrap();
    let Fetched::New(a) = &first else {
        panic!("expected a new artifact, got {first:?}")
    };
    assert_eq!(a.revision.pointer(), Some("6.5.0"));
    assert_eq!(
        a.revision.digest(),
        &Digest::sha256_of(&std::fs::read(repo.root().join("podinfo-6.5.0.tgz")).unwrap())
    );
    assert_eq!(
        a.metadata.get(METADATA_VERSION).map(String::as_str),
        Some("6.5.0")
    );
    fx.store.verify(a).unwrap();
    let files = fx.extract(a);
    assert!(files["podinfo/Chart.yaml"].contains("version: 6.5.0"));
    assert!(files.contains_key("podinfo/templates/deployment.yaml"));
    assert!(files.contains_key("podinfo/values.yaml"));
    assert_eq!(server.files_served(), 2, "index + chart");

    // Next poll: same version and digest, only the index is downloaded.
    let second = src.fetch(&fx.store, Some(a)).await.unwrap();
    assert_eq!(second, Fetched::Unchanged(a.clone()));
    assert_eq!(server.files_served(), 3, "only the index");

    // A new version appears.
    repo.add("6.6.0");
    let third = src.fetch(&fx.store, Some(a)).await.unwrap();
    let Fetched::New(b) = &third else {
        panic!("expected a new artifact, got {third:?}")
    };
    assert_eq!(b.revision.pointer(), Some("6.6.0"));
    assert_ne!(b.path, a.path);
    assert!(fx.extract(b)["podinfo/Chart.yaml"].contains("version: 6.6.0"));
}

#[tokio::test]
async fn range_selects_newest_match() {
    let mut repo = Repo::new();
    for v in ["5.9.0", "6.0.0", "6.2.1", "6.2.3", "6.3.0", "6.5.0"] {
        repo.add(v);
    }
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    for (range, want) in [
        (">=6.0.0 <6.3.0", "6.2.3"),
        ("6.2.x", "6.2.3"),
        ("~6.2.1", "6.2.3"),
        ("^5", "5.9.0"),
        ("6.0.0", "6.0.0"),
        ("<6.0.0 || >=6.5.0", "6.5.0"),
    ] {
        let got = src_fetch(&server, &fx, range).await;
        assert_eq!(got.revision.pointer(), Some(want), "range {range}");
    }
}

async fn src_fetch(server: &StaticHttpServer, fx: &Fx, range: &str) -> Artifact {
    let src = source(&server.url(), range, HelmAuth::None);
    src.fetch(&fx.store, None).await.unwrap().artifact().clone()
}

#[tokio::test]
async fn prereleases_only_when_the_range_asks() {
    let mut repo = Repo::new();
    for v in ["6.5.0", "6.6.0-rc.1", "6.6.0-rc.2"] {
        repo.add(v);
    }
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    assert_eq!(
        src_fetch(&server, &fx, "*").await.revision.pointer(),
        Some("6.5.0")
    );
    assert_eq!(
        src_fetch(&server, &fx, ">=6.0.0").await.revision.pointer(),
        Some("6.5.0")
    );
    assert_eq!(
        src_fetch(&server, &fx, ">=6.0.0-0")
            .await
            .revision
            .pointer(),
        Some("6.6.0-rc.2")
    );
    assert_eq!(
        src_fetch(&server, &fx, "6.6.0-rc.1")
            .await
            .revision
            .pointer(),
        Some("6.6.0-rc.1")
    );
}

#[tokio::test]
async fn no_matching_version_is_terminal_and_names_range_and_versions() {
    let mut repo = Repo::new();
    for v in ["6.0.0", "6.5.0"] {
        repo.add(v);
    }
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    let e = source(&server.url(), ">=7.0.0", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(matches!(
        helm_error(&e),
        HelmError::NoMatchingVersion { .. }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("\">=7.0.0\"") && msg.contains("6.5.0, 6.0.0"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{}/index.yaml", server.url())),
        "{msg}"
    );
}

#[tokio::test]
async fn basic_auth_required() {
    let mut repo = Repo::new();
    repo.add("6.5.0");
    let server = StaticHttpServer::start_with_basic_auth(repo.root(), "flux", "s3cr3t-pw")
        .await
        .unwrap();
    let fx = Fx::new();

    let e = source(&server.url(), "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(
        matches!(helm_error(&e), HelmError::Unauthorized { .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("{}/index.yaml", server.url())),
        "{e}"
    );

    let wrong = HelmAuth::Basic {
        user: "flux".into(),
        pass: "wrong-pw".into(),
    };
    let src = source(&server.url(), "*", wrong);
    let e = src.fetch(&fx.store, None).await.unwrap_err();
    assert!(
        matches!(helm_error(&e), HelmError::Unauthorized { .. }),
        "{e}"
    );
    assert!(e.is_retryable());
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    assert!(!format!("{e:?}").contains("wrong-pw"));
    assert!(!format!("{src:?}").contains("wrong-pw"));

    let right = HelmAuth::Basic {
        user: "flux".into(),
        pass: "s3cr3t-pw".into(),
    };
    let got = source(&server.url(), "*", right)
        .fetch(&fx.store, None)
        .await
        .unwrap();
    assert_eq!(got.artifact().revision.pointer(), Some("6.5.0"));
}

#[tokio::test]
async fn digest_mismatch_is_refused() {
    let mut repo = Repo::new();
    repo.add("6.5.0");
    // The file changes after the index was written.
    std::fs::write(repo.root().join("podinfo-6.5.0.tgz"), package("6.5.1")).unwrap();
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    let e = source(&server.url(), "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(
        matches!(helm_error(&e), HelmError::DigestMismatch { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("podinfo-6.5.0.tgz"), "{e}");
    assert!(
        !fx.store.root().join("helmchart").exists(),
        "nothing stored"
    );
}

#[tokio::test]
async fn index_without_digest_and_absolute_urls_work() {
    let mut repo = Repo::new();
    repo.add("6.5.0");
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    // Rewrite: absolute URL, no digest.
    repo.entries[0].1 = format!("{}/podinfo-6.5.0.tgz", server.url());
    repo.entries[0].2 = None;
    repo.write_index();
    let fx = Fx::new();
    let src = source(&format!("{}/", server.url()), "*", HelmAuth::None);
    let a = src.fetch(&fx.store, None).await.unwrap();
    let Fetched::New(a) = a else { panic!() };
    assert_eq!(a.revision.pointer(), Some("6.5.0"));
    // Without a digest the version alone decides.
    assert!(matches!(
        src.fetch(&fx.store, Some(&a)).await.unwrap(),
        Fetched::Unchanged(_)
    ));
}

#[tokio::test]
async fn bad_index_is_terminal_and_names_the_url() {
    let repo = Repo::new();
    std::fs::write(repo.root().join("index.yaml"), "<html>not yaml: [</html>\n").unwrap();
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    let e = source(&server.url(), "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(matches!(helm_error(&e), HelmError::BadIndex { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("{}/index.yaml", server.url())),
        "{e}"
    );
}

#[tokio::test]
async fn server_down_is_retryable() {
    let repo = Repo::new();
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let url = server.url();
    server.shutdown().await;
    let fx = Fx::new();
    let e = source(&url, "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::Unavailable { .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&url), "{e}");
}

#[tokio::test]
async fn missing_chart_file_is_terminal() {
    let mut repo = Repo::new();
    repo.add("6.5.0");
    std::fs::remove_file(repo.root().join("podinfo-6.5.0.tgz")).unwrap();
    let server = StaticHttpServer::start(repo.root()).await.unwrap();
    let fx = Fx::new();
    let e = source(&server.url(), "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(matches!(helm_error(&e), HelmError::Http { .. }), "{e}");
}

#[tokio::test]
async fn credentials_go_to_other_hosts_only_with_pass_credentials() {
    // The index on one server, the chart on another (another port: another host for Helm).
    let charts = Repo::new();
    std::fs::write(charts.root().join("podinfo-6.5.0.tgz"), package("6.5.0")).unwrap();
    let chart_server = StaticHttpServer::start_with_basic_auth(charts.root(), "flux", "pw")
        .await
        .unwrap();
    let mut repo = Repo::new();
    repo.add("6.5.0");
    repo.entries[0].1 = format!("{}/podinfo-6.5.0.tgz", chart_server.url());
    repo.write_index();
    let server = StaticHttpServer::start_with_basic_auth(repo.root(), "flux", "pw")
        .await
        .unwrap();
    let auth = HelmAuth::Basic {
        user: "flux".into(),
        pass: "pw".into(),
    };
    let fx = Fx::new();
    let e = source(&server.url(), "*", auth.clone())
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(
        matches!(helm_error(&e), HelmError::Unauthorized { .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&chart_server.url()), "{e}");

    let src = HelmChartSource::new(
        ArtifactKey::new("HelmChart", "flux-system", "podinfo").unwrap(),
        HelmRepositorySpec {
            url: server.url(),
            pass_credentials: true,
            ..Default::default()
        },
        HelmChartSpec {
            chart: "podinfo".into(),
            version: "*".into(),
            source_ref: None,
            ..Default::default()
        },
        auth,
    )
    .unwrap();
    let got = src.fetch(&fx.store, None).await.unwrap();
    assert_eq!(got.artifact().revision.pointer(), Some("6.5.0"));
}

#[tokio::test]
async fn https_with_the_ca_bundle_downloads_index_and_chart() {
    let mut repo = Repo::new();
    repo.add("6.2.1");
    let tgz = repo.add("6.5.0");
    let ca = TestCa::new().unwrap();
    let server = StaticHttpServer::start_tls_with_basic_auth(repo.root(), &ca, "flux", "tls-pw")
        .await
        .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let fx = Fx::new();
    let auth = HelmAuth::Basic {
        user: "flux".into(),
        pass: "tls-pw".into(),
    };
    let src = source(&server.url(), "6.x", auth)
        .with_ca_bundle(ca.ca_pem().as_bytes())
        .unwrap();
    let Fetched::New(artifact) = src.fetch(&fx.store, None).await.unwrap() else {
        panic!("expected a new artifact");
    };
    assert_eq!(artifact.revision.pointer(), Some("6.5.0"));
    assert_eq!(
        artifact.revision.digest().hex(),
        Digest::sha256_of(&tgz).hex()
    );
    assert_eq!(artifact.metadata[METADATA_VERSION], "6.5.0");
    let files = fx.extract(&artifact);
    assert!(
        files["podinfo/Chart.yaml"].contains("version: 6.5.0"),
        "{}",
        files["podinfo/Chart.yaml"]
    );
    // index.yaml and the chart, both over HTTPS.
    assert_eq!(server.files_served(), 2);
    assert_eq!(
        src.fetch(&fx.store, Some(&artifact)).await.unwrap(),
        Fetched::Unchanged(artifact.clone())
    );
}

#[tokio::test]
async fn https_without_the_ca_bundle_is_a_clear_certificate_error() {
    let mut repo = Repo::new();
    repo.add("6.5.0");
    let ca = TestCa::new().unwrap();
    let server = StaticHttpServer::start_tls_with_basic_auth(repo.root(), &ca, "flux", "tls-pw")
        .await
        .unwrap();
    let fx = Fx::new();
    let auth = HelmAuth::Basic {
        user: "flux".into(),
        pass: "tls-pw".into(),
    };
    let other = TestCa::new().unwrap();
    for src in [
        source(&server.url(), "*", auth.clone()),
        source(&server.url(), "*", auth.clone())
            .with_ca_bundle(other.ca_pem().as_bytes())
            .unwrap(),
    ] {
        let e = src.fetch(&fx.store, None).await.unwrap_err();
        let msg = format!("{e} {e:?}");
        assert!(
            matches!(helm_error(&e), HelmError::Certificate { .. }),
            "{msg}"
        );
        assert!(msg.contains("TLS certificate verification failed"), "{msg}");
        assert!(msg.contains("invalid peer certificate"), "{msg}");
        assert!(
            msg.contains(&format!("{}/index.yaml", server.url())),
            "{msg}"
        );
        assert!(!msg.contains("tls-pw"), "{msg}");
        // Retried at the next interval, as Flux does: the server's certificate may change.
        assert!(e.is_retryable());
    }
    assert_eq!(server.files_served(), 0);
}

#[test]
fn an_invalid_ca_bundle_is_a_terminal_spec_error() {
    for pem in [
        &b"not a certificate"[..],
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    ] {
        let e = source("https://charts.example.invalid", "*", HelmAuth::None)
            .with_ca_bundle(pem)
            .unwrap_err();
        assert!(matches!(e, HelmError::InvalidSpec { .. }), "{e}");
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(msg.contains("CA bundle"), "{msg}");
        assert!(msg.contains("charts.example.invalid"), "{msg}");
    }
}

#[tokio::test]
async fn repository_index_artifact_as_source_controller_stores_it() {
    let mut repo = Repo::new();
    repo.add("6.5.0");
    let server = StaticHttpServer::start_with_basic_auth(repo.root(), "flux", "idx-pw")
        .await
        .unwrap();
    let fx = Fx::new();
    let key = ArtifactKey::new("HelmRepository", "flux-system", "podinfo").unwrap();
    let spec = HelmRepositorySpec {
        url: server.url(),
        ..Default::default()
    };
    let src = HelmRepositorySource::new(
        key.clone(),
        spec.clone(),
        HelmAuth::Basic {
            user: "flux".into(),
            pass: "idx-pw".into(),
        },
    )
    .unwrap();
    let Fetched::New(a) = src.fetch(&fx.store, None).await.unwrap() else {
        panic!("expected a new artifact")
    };
    // The revision is the sha256 of the index as served; the artifact holds it verbatim.
    let index = std::fs::read(repo.root().join("index.yaml")).unwrap();
    assert_eq!(
        a.revision.to_string(),
        Digest::sha256_of(&index).to_string()
    );
    assert_eq!(a.revision.pointer(), None);
    let files = fx.extract(&a);
    assert_eq!(files.keys().collect::<Vec<_>>(), [INDEX_FILE]);
    assert_eq!(files[INDEX_FILE].as_bytes(), &index[..]);
    assert_eq!(
        src.fetch(&fx.store, Some(&a)).await.unwrap(),
        Fetched::Unchanged(a.clone())
    );
    repo.add("6.6.0");
    let Fetched::New(b) = src.fetch(&fx.store, Some(&a)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_ne!(b.revision, a.revision);

    // Wrong credentials: retryable, no password in the error.
    let wrong = HelmRepositorySource::new(
        key.clone(),
        spec,
        HelmAuth::Basic {
            user: "flux".into(),
            pass: "nope-pw-99".into(),
        },
    )
    .unwrap();
    let e = wrong.fetch(&fx.store, None).await.unwrap_err();
    assert!(e.is_retryable());
    assert!(
        matches!(helm_error(&e), HelmError::Unauthorized { .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("nope-pw-99"));

    // type: oci has no index.
    let e = HelmRepositorySource::new(
        key,
        HelmRepositorySpec {
            url: "oci://ghcr.io/stefanprodan/charts".into(),
            repository_type: HelmRepositoryType::Oci,
            ..Default::default()
        },
        HelmAuth::None,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("helm repository: invalid url"),
        "{e}"
    );
}
