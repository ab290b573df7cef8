//! HelmChartSource with `type: oci` HelmRepositories against a real registry: each test starts
//! its own Debian `docker-registry` (CNCF distribution) on 127.0.0.1 through gitops-testenv's
//! `OciRegistry` (plain HTTP, so specs say `insecure: true`; killed by PID when dropped), and
//! pushes the real podinfo chart (`/work/shared/fixtures/podinfo/charts/podinfo`, or
//! `$PODINFO_CHART`), packaged at several versions, with oci-client the way `helm push` stores
//! a chart: config blob `application/vnd.cncf.helm.config.v1+json` (the Chart.yaml metadata as
//! JSON), one layer `application/vnd.cncf.helm.chart.content.v1.tar+gzip` (the `.tgz`), tag =
//! version with `+` written as `_`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Digest, Fetched, Source};
use gitops_sources::helm::{
    HELM_CHART_CONTENT_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, HelmAuth, HelmChartSource,
    HelmChartSpec, HelmError, HelmRepositorySpec, HelmRepositoryType, METADATA_VERSION,
};
use gitops_sources::oci::OciError;
use gitops_testenv::OciRegistry;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

fn podinfo_chart() -> PathBuf {
    std::env::var_os("PODINFO_CHART")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/podinfo/charts/podinfo")
        })
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

/// Pushes podinfo at `version` to `<host>/<path>/podinfo:<version with _ for +>` as `helm push`
/// does; returns the `.tgz` bytes.
async fn helm_push(reg: &OciRegistry, path: &str, version: &str, auth: &RegistryAuth) -> Vec<u8> {
    let tgz = gitops_testenv::package_chart(&podinfo_chart(), "podinfo", version).unwrap();
    let config = serde_json::json!({
        "apiVersion": "v1",
        "name": "podinfo",
        "version": version,
        "appVersion": version,
        "description": "Podinfo Helm chart for Kubernetes",
    });
    let layers = vec![ImageLayer::new(
        tgz.clone(),
        HELM_CHART_CONTENT_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config::new(
        serde_json::to_vec(&config).unwrap(),
        HELM_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            "podinfo".to_string(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            version.to_string(),
        ),
    ]);
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    let r = Reference::with_tag(
        reg.host(),
        format!("{path}/podinfo"),
        version.replace('+', "_"),
    );
    http_client()
        .push(&r, &layers, config, auth, Some(manifest))
        .await
        .unwrap();
    tgz
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

    fn chart_yaml(&self, a: &Artifact) -> String {
        let out = self.dir.path().join(format!("out-{}", a.digest.hex()));
        self.store.extract(a, &out).unwrap();
        assert!(out.join("podinfo/templates/deployment.yaml").is_file());
        std::fs::read_to_string(out.join("podinfo/Chart.yaml")).unwrap()
    }
}

fn source(reg: &OciRegistry, path: &str, range: &str, auth: HelmAuth) -> HelmChartSource {
    HelmChartSource::new(
        ArtifactKey::new("HelmChart", "flux-system", "podinfo").unwrap(),
        HelmRepositorySpec {
            url: format!("oci://{}/{path}", reg.host()),
            repository_type: HelmRepositoryType::Oci,
            insecure: true,
            ..Default::default()
        },
        HelmChartSpec {
            chart: "podinfo".into(),
            version: range.into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_range_selects_newest_tag_then_unchanged_then_new() {
    let reg = OciRegistry::start().unwrap();
    let anon = RegistryAuth::Anonymous;
    let mut tgz = BTreeMap::new();
    for v in [
        "5.9.0",
        "6.0.0",
        "6.2.1",
        "6.2.3",
        "6.5.0",
        "6.5.1+build.7",
        "6.6.0-rc.1",
    ] {
        tgz.insert(v, helm_push(&reg, "charts", v, &anon).await);
    }
    let fx = Fx::new();
    for (range, want) in [
        ("*", "6.5.1+build.7"),
        ("", "6.5.1+build.7"),
        (">=6.0.0 <6.3.0", "6.2.3"),
        ("6.2.x", "6.2.3"),
        ("^5", "5.9.0"),
        ("6.0.0", "6.0.0"),
        (">=6.6.0-0", "6.6.0-rc.1"),
    ] {
        let got = source(&reg, "charts", range, HelmAuth::None)
            .fetch(&fx.store, None)
            .await
            .unwrap();
        let Fetched::New(a) = &got else {
            panic!("expected a new artifact, got {got:?}")
        };
        assert_eq!(a.revision.pointer(), Some(want), "range {range:?}");
        assert_eq!(
            a.revision.digest(),
            &Digest::sha256_of(&tgz[want]),
            "range {range:?}"
        );
        assert_eq!(
            a.metadata.get(METADATA_VERSION).map(String::as_str),
            Some(want)
        );
        fx.store.verify(a).unwrap();
        assert!(
            fx.chart_yaml(a).contains(&format!("version: {want}")),
            "range {range:?}"
        );
    }

    // Same tag and layer: unchanged; a newer tag: new.
    let src = source(&reg, "charts", "6.x", HelmAuth::None);
    let first = src.fetch(&fx.store, None).await.unwrap().artifact().clone();
    assert_eq!(first.revision.pointer(), Some("6.5.1+build.7"));
    assert_eq!(
        src.fetch(&fx.store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );
    let chosen = src.resolve().await.unwrap();
    assert_eq!(
        chosen.url.as_str(),
        format!("oci://{}/charts/podinfo:6.5.1_build.7", reg.host())
    );
    helm_push(&reg, "charts", "6.7.0", &anon).await;
    let Fetched::New(b) = src.fetch(&fx.store, Some(&first)).await.unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(b.revision.pointer(), Some("6.7.0"));
    assert_ne!(b.path, first.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_no_match_is_terminal_and_names_range_and_tags() {
    let reg = OciRegistry::start().unwrap();
    for v in ["6.0.0", "6.5.0"] {
        helm_push(&reg, "charts", v, &RegistryAuth::Anonymous).await;
    }
    let fx = Fx::new();
    let e = source(&reg, "charts", ">=7.0.0", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::NoMatchingVersion { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("\">=7.0.0\""), "{msg}");
    assert!(msg.contains("6.5.0, 6.0.0"), "{msg}");
    assert!(
        msg.contains(&format!("oci://{}/charts/podinfo", reg.host())),
        "{msg}"
    );

    // An exact version that is not there: the registry's answer, terminal.
    let e = source(&reg, "charts", "6.1.0", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::Oci(OciError::NotFound { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("6.1.0"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_basic_auth() {
    let password = "s3cr3t-helm-pw";
    let reg = OciRegistry::start_with_basic_auth("flux", password).unwrap();
    let creds = RegistryAuth::Basic("flux".into(), password.into());
    helm_push(&reg, "private", "6.5.0", &creds).await;
    let fx = Fx::new();

    let e = source(&reg, "private", "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        matches!(
            helm_error(&e),
            HelmError::Oci(OciError::Authentication { .. })
        ),
        "{e}"
    );

    let wrong = HelmAuth::Basic {
        user: "flux".into(),
        pass: "wrong-pw-4711".into(),
    };
    let src = source(&reg, "private", "*", wrong);
    let e = src.fetch(&fx.store, None).await.unwrap_err();
    assert!(
        matches!(
            helm_error(&e),
            HelmError::Oci(OciError::Authentication { .. })
        ),
        "{e}"
    );
    assert!(e.is_retryable());
    assert!(e.to_string().contains(&reg.host()), "{e}");
    assert!(!e.to_string().contains("wrong-pw-4711"), "{e}");
    assert!(!format!("{e:?}").contains("wrong-pw-4711"));
    assert!(!format!("{src:?}").contains("wrong-pw-4711"));

    let right = HelmAuth::Basic {
        user: "flux".into(),
        pass: password.into(),
    };
    let got = source(&reg, "private", "*", right)
        .fetch(&fx.store, None)
        .await
        .unwrap();
    assert_eq!(got.artifact().revision.pointer(), Some("6.5.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_corrupt_layer_is_refused() {
    let reg = OciRegistry::start().unwrap();
    let tgz = helm_push(&reg, "charts", "6.5.0", &RegistryAuth::Anonymous).await;
    // Replace the blob's bytes in the registry's storage (same length, other content).
    let hex = Digest::sha256_of(&tgz).hex().to_string();
    let blob = reg
        .storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let fx = Fx::new();
    let e = source(&reg, "charts", "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("digest"), "{e}");
    assert!(
        !fx.store.root().join("helmchart").exists(),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_artifact_that_is_not_a_chart_is_refused() {
    let reg = OciRegistry::start().unwrap();
    // A Flux artifact (flux config media type) where a chart is expected.
    let layers = vec![ImageLayer::new(
        gitops_testenv::package_chart(&podinfo_chart(), "podinfo", "6.5.0").unwrap(),
        "application/vnd.cncf.flux.content.v1.tar+gzip".to_string(),
        None,
    )];
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.cncf.flux.config.v1+json".to_string(),
        None,
    );
    let manifest = OciImageManifest::build(&layers, &config, None);
    let r = Reference::with_tag(reg.host(), "charts/podinfo".into(), "6.5.0".into());
    http_client()
        .push(
            &r,
            &layers,
            config,
            &RegistryAuth::Anonymous,
            Some(manifest),
        )
        .await
        .unwrap();
    let fx = Fx::new();
    let e = source(&reg, "charts", "*", HelmAuth::None)
        .fetch(&fx.store, None)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::InvalidChart { .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("application/vnd.cncf.flux.config.v1+json"),
        "{e}"
    );
}

#[test]
fn oci_specs_are_checked() {
    let key = ArtifactKey::new("HelmChart", "flux-system", "podinfo").unwrap();
    let chart = HelmChartSpec {
        chart: "podinfo".into(),
        version: "*".into(),
        ..Default::default()
    };
    for (url, ty) in [
        (
            "oci://registry.example.invalid/charts",
            HelmRepositoryType::Default,
        ),
        ("https://charts.example.invalid", HelmRepositoryType::Oci),
        (
            "oci://user:pw@registry.example.invalid/charts",
            HelmRepositoryType::Oci,
        ),
        (
            "oci://registry.example.invalid/Charts",
            HelmRepositoryType::Oci,
        ),
    ] {
        let repo = HelmRepositorySpec {
            url: url.into(),
            repository_type: ty,
            ..Default::default()
        };
        let e = HelmChartSource::new(key.clone(), repo, chart.clone(), HelmAuth::None).unwrap_err();
        assert!(matches!(e, HelmError::InvalidSpec { .. }), "{url}: {e}");
        assert!(e.to_string().contains("invalid url"), "{e}");
    }
    let repo: HelmRepositorySpec = serde_json::from_value(serde_json::json!({
        "type": "oci",
        "url": "oci://ghcr.io/stefanprodan/charts",
        "insecure": true
    }))
    .unwrap();
    assert_eq!(repo.repository_type, HelmRepositoryType::Oci);
    assert!(repo.insecure);
}
