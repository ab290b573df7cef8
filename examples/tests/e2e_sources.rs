//! End to end with the OCI and Bucket sources: a kube-apiserver + etcd + kube-controller-manager
//! from `KUBEBUILDER_ASSETS`, a real registry (`docker-registry` with basic auth, through
//! `gitops_testenv::OciRegistry`) or a real S3 server (`moto_server`, through
//! `gitops_testenv::S3Server`), and the operator reconciling an `OCIRepository` or a `Bucket`
//! plus a Kustomization whose `sourceRef` points at it. Credentials come from Secrets, as Flux
//! reads them (`.dockerconfigjson`; `accesskey`/`secretkey`). The OCI artifact is pushed with the
//! `gitops push artifact` CLI, as a Flux user's CI pushes with `flux push artifact`; the test also downloads
//! `status.artifact.url` from the operator's artifact server, as a consumer would.
//!
//! The HelmChart test packages the real podinfo chart (`/work/shared/fixtures/podinfo/charts/
//! podinfo`, or `$PODINFO_CHART`) at several versions as `helm package` lays them out, writes a
//! Helm `index.yaml`, serves the folder with `StaticHttpServer` over HTTPS (a throwaway
//! `TestCa`) behind basic authentication, and has the operator resolve `version: ">=6.0.0"`
//! through a HelmRepository whose `secretRef` holds the credentials and the CA (`ca.crt`).
//!
//! The GitRepository test builds repositories with the `git` CLI (`file://` URLs) and checks
//! `include` (waiting with `IncludeUnavailable`, `status.includedArtifacts`) and
//! `recurseSubmodules`.
//! The other Helm tests check the HelmRepository's index artifact, a HelmChart packaged from a
//! Bucket's artifact (Ready=False until the Bucket exists; `reconcileStrategy: Revision`), and a
//! HelmChart from a `type: oci` HelmRepository on the real registry (charts pushed with
//! oci-client as `helm push` does).

use std::path::{Path, PathBuf};

use anyhow::Result;
use gitops_core::condition::{find_condition, is_ready, kind};
use gitops_examples::crds::{Bucket, GitRepository, HelmChart, Kustomization, OCIRepository};
use gitops_examples::operator;
use gitops_examples::wait;
use gitops_sources::server::{FetchLimits, fetch_artifact};
use gitops_testenv::{OciRegistry, S3Server, StaticHttpServer, TestCa};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

mod common;
use common::{NS, TIMEOUT, World, last_applied, podinfo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_repository_with_credentials_feeds_a_kustomization() -> Result<()> {
    let w = World::start().await?;
    let reg = OciRegistry::start_with_basic_auth("flux", "s3cret")?;
    // Pushed the way a Flux user's CI does it: `gitops push artifact` (the flux CLI's verb).
    let pushed = std::process::Command::new(env!("CARGO_BIN_EXE_gitops"))
        .args(["push", "artifact"])
        .arg(format!("oci://{}/manifests/podinfo:6.0.0", reg.host()))
        .arg("--path")
        .arg(podinfo())
        .args([
            "--source",
            "https://github.com/stefanprodan/podinfo",
            "--revision",
            "6.0.0@sha1:0000000000000000000000000000000000000000",
            "--creds",
            "flux:s3cret",
            "--insecure",
        ])
        .output()?;
    anyhow::ensure!(
        pushed.status.success(),
        "gitops push artifact: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let digest = String::from_utf8(pushed.stdout)?.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let mut auths = serde_json::Map::new();
    auths.insert(
        reg.host(),
        serde_json::json!({"username": "flux", "password": "s3cret"}),
    );
    let docker_config = serde_json::json!({ "auths": auths });
    w.create::<Secret>(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "registry-auth", "namespace": NS},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": docker_config.to_string()}
    }))
    .await?;
    w.create::<OCIRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"url": format!("oci://{}/manifests/podinfo", reg.host()), "ref": {"tag": "6.0.0"},
                 "insecure": true, "interval": "10m", "timeout": "20s",
                 "secretRef": {"name": "registry-auth"}}
    }))
    .await?;
    w.create_kustomization("app", "OCIRepository", "podinfo", "10m")
        .await?;
    // A kind this operator does not serve: Ready=False saying so, instead of waiting silently.
    w.create_kustomization("other", "HelmChart", "podinfo", "10m")
        .await?;

    let ks = w.ready_kustomization("app").await?;
    assert_eq!(last_applied(&ks), format!("6.0.0@{digest}"));
    w.assert_podinfo_applied().await?;

    let repos: Api<OCIRepository> = Api::namespaced(w.client(), NS);
    let repo = repos.get("podinfo").await?;
    let status = repo.status.unwrap_or_default();
    let artifact = status.artifact.expect("status.artifact");
    assert_eq!(artifact.revision.to_string(), format!("6.0.0@{digest}"));
    let ready = find_condition(&status.conditions, kind::READY).expect("Ready");
    assert_eq!(ready.reason, "Succeeded");
    // status.artifact.url is the operator's artifact server: download it and verify the digest.
    assert!(
        artifact.url.starts_with("http://127.0.0.1:"),
        "{}",
        artifact.url
    );
    let out = tempfile::tempdir()?;
    let fetched = fetch_artifact(
        &artifact.url,
        &artifact.digest,
        out.path(),
        FetchLimits::default(),
    )
    .await?;
    assert_eq!(fetched.digest, artifact.digest);
    assert!(out.path().join("deployment.yaml").is_file());

    let kss: Api<Kustomization> = Api::namespaced(w.client(), NS);
    let other = wait::until(&kss, "other", TIMEOUT, "Ready=False for HelmChart", |k| {
        k.status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, kind::READY))
            .is_some_and(|c| c.status.as_str() == "False")
    })
    .await?;
    let cond = find_condition(&other.status.unwrap_or_default().conditions, kind::READY)
        .cloned()
        .expect("Ready");
    assert_eq!(cond.reason, "ArtifactFailed");
    assert!(
        cond.message.contains("'HelmChart' is not supported"),
        "{}",
        cond.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_with_access_key_feeds_a_kustomization() -> Result<()> {
    let w = World::start().await?;
    let s3 = S3Server::start().await?;
    w.create_podinfo_bucket(&s3, "10m", "20s").await?;
    w.create_kustomization("app", "Bucket", "podinfo", "10m")
        .await?;

    let ks = w.ready_kustomization("app").await?;
    let revision = last_applied(&ks);
    assert!(revision.starts_with("sha256:"), "{revision}");
    w.assert_podinfo_applied().await?;

    let buckets: Api<Bucket> = Api::namespaced(w.client(), NS);
    let status = buckets.get("podinfo").await?.status.unwrap_or_default();
    assert_eq!(
        status.artifact.map(|a| a.revision.to_string()),
        Some(revision)
    );
    assert!(is_ready(&status.conditions));
    Ok(())
}

fn podinfo_chart() -> PathBuf {
    std::env::var_os("PODINFO_CHART")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/podinfo/charts/podinfo")
        })
}

/// The podinfo chart as `helm package` lays it out, with `version` (and `appVersion`) replaced.
fn package_chart(version: &str) -> Vec<u8> {
    gitops_testenv::package_chart(&podinfo_chart(), "podinfo", version).unwrap()
}

/// Writes `podinfo-<v>.tgz` for each version and an `index.yaml` listing them with digests.
fn write_chart_repo(dir: &Path, versions: &[&str]) -> Result<()> {
    let mut y = String::from("apiVersion: v1\nentries:\n  podinfo:\n");
    for version in versions {
        let tgz = package_chart(version);
        let file = format!("podinfo-{version}.tgz");
        std::fs::write(dir.join(&file), &tgz)?;
        let digest = gitops_core::Digest::sha256_of(&tgz).hex().to_string();
        y.push_str(&format!(
            "  - apiVersion: v1\n    name: podinfo\n    version: {version}\n    appVersion: {version}\n    created: \"2024-01-01T00:00:00Z\"\n    urls:\n    - {file}\n    digest: {digest}\n"
        ));
    }
    y.push_str("generated: \"2024-01-01T00:00:00Z\"\n");
    std::fs::write(dir.join("index.yaml"), y)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_chart_from_a_helm_repository_with_credentials() -> Result<()> {
    let w = World::start().await?;
    let repo_dir = tempfile::tempdir()?;
    write_chart_repo(repo_dir.path(), &["5.2.0", "6.0.0", "6.1.3", "7.0.0-rc.1"])?;
    let ca = TestCa::new()?;
    let http =
        StaticHttpServer::start_tls_with_basic_auth(repo_dir.path(), &ca, "helm", "s3cret").await?;
    assert!(http.url().starts_with("https://"));

    w.create::<Secret>(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "helm-auth", "namespace": NS},
        "stringData": {"username": "helm", "password": "s3cret", "ca.crt": ca.ca_pem()}
    }))
    .await?;
    w.create::<gitops_examples::crds::HelmRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"url": http.url(), "interval": "10m", "timeout": "20s",
                 "secretRef": {"name": "helm-auth"}}
    }))
    .await?;
    w.create::<HelmChart>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"chart": "podinfo", "version": ">=6.0.0", "interval": "10m",
                 "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}
    }))
    .await?;
    // A chart whose repository does not exist: Ready=False, ChartPullFailed.
    w.create::<HelmChart>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "orphan", "namespace": NS},
        "spec": {"chart": "podinfo", "interval": "10m",
                 "sourceRef": {"kind": "HelmRepository", "name": "missing"}}
    }))
    .await?;

    let charts: Api<HelmChart> = Api::namespaced(w.client(), NS);
    let chart = wait::until(&charts, "podinfo", TIMEOUT, "HelmChart Ready", |c| {
        c.status.as_ref().is_some_and(|s| {
            is_ready(&s.conditions) && s.observed_generation == c.metadata.generation
        })
    })
    .await?;
    let artifact = chart
        .status
        .and_then(|s| s.artifact)
        .expect("status.artifact");
    assert_eq!(artifact.revision.pointer(), Some("6.1.3"));
    assert!(
        artifact.revision.to_string().starts_with("6.1.3@sha256:"),
        "{}",
        artifact.revision
    );
    // The chart is served by the operator's artifact server.
    let out = tempfile::tempdir()?;
    fetch_artifact(
        &artifact.url,
        &artifact.digest,
        out.path(),
        FetchLimits::default(),
    )
    .await?;
    let chart_yaml = std::fs::read_to_string(out.path().join("podinfo/Chart.yaml"))?;
    assert!(chart_yaml.contains("version: 6.1.3"), "{chart_yaml}");

    let orphan = wait::until(&charts, "orphan", TIMEOUT, "Ready=False", |c| {
        c.status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, kind::READY))
            .is_some_and(|c| c.status.as_str() == "False")
    })
    .await?;
    let cond = find_condition(&orphan.status.unwrap_or_default().conditions, kind::READY)
        .cloned()
        .expect("Ready");
    assert_eq!(cond.reason, "ChartPullFailed");
    assert!(
        cond.message.contains("'flux-system/missing' not found"),
        "{}",
        cond.message
    );
    Ok(())
}

/// Runs `git` in `dir` without user or system configuration; returns trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A repository with one commit of `files` (path, content); returns its folder.
fn repo_with(dir: &Path, name: &str, files: &[(&str, &str)]) -> Result<PathBuf> {
    let work = dir.join(name);
    std::fs::create_dir_all(&work)?;
    git(&work, &["init", "-q", "-b", "master"])?;
    commit_files(&work, files, "initial")?;
    Ok(work)
}

fn commit_files(work: &Path, files: &[(&str, &str)], message: &str) -> Result<String> {
    for (path, content) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().unwrap())?;
        std::fs::write(p, content)?;
    }
    git(work, &["add", "--ignore-removal", "."])?;
    git(work, &["commit", "-q", "-m", message])?;
    git(work, &["rev-parse", "HEAD"])
}

/// GitRepository `include` and `recurseSubmodules` through the operator: the including repository
/// waits (Ready=False, `IncludeUnavailable`) until the included one is Ready, then its artifact
/// has the included folder and the submodule's files, `status.includedArtifacts` records the
/// included artifact, and a new commit of the included repository alone yields a new artifact
/// with the same revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_repository_include_and_submodules() -> Result<()> {
    let world = World::start().await?;
    let repos = world.tmp.path().join("repos");
    let lib = repo_with(&repos, "lib", &[("lib.yaml", "kind: Lib\n")])?;
    let lib_commit = git(&lib, &["rev-parse", "HEAD"])?;
    let shared = repo_with(&repos, "shared", &[("deploy/cm.yaml", "v: 1\n")])?;
    let app = repo_with(&repos, "app", &[("app.yaml", "kind: App\n")])?;
    let lib_url = format!("file://{}", lib.display());
    git(
        &app,
        &["config", "-f", ".gitmodules", "submodule.lib.path", "lib"],
    )?;
    git(
        &app,
        &["config", "-f", ".gitmodules", "submodule.lib.url", &lib_url],
    )?;
    git(
        &app,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{lib_commit},lib"),
        ],
    )?;
    let app_commit = commit_files(&app, &[], "add the lib submodule")?;

    world
        .create::<GitRepository>(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "app", "namespace": NS},
            "spec": {"interval": "10m", "url": format!("file://{}", app.display()),
                     "recurseSubmodules": true,
                     "include": [{"repository": {"name": "shared"},
                                  "fromPath": "deploy", "toPath": "vendor/shared"}]}
        }))
        .await?;
    let api: Api<GitRepository> = Api::namespaced(world.client(), NS);
    let waiting = wait::until(&api, "app", TIMEOUT, "IncludeUnavailable", |r| {
        r.status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, kind::READY))
            .is_some_and(|c| c.reason == operator::INCLUDE_UNAVAILABLE)
    })
    .await?;
    let status = waiting.status.unwrap();
    assert!(status.artifact.is_none());
    assert_eq!(
        find_condition(&status.conditions, operator::INCLUDE_UNAVAILABLE)
            .map(|c| c.reason.as_str()),
        Some("NotFound")
    );

    world
        .create::<GitRepository>(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "shared", "namespace": NS},
            "spec": {"interval": "1s", "url": format!("file://{}", shared.display())}
        }))
        .await?;
    let ready = wait::until(&api, "app", TIMEOUT, "GitRepository Ready", |r| {
        r.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
    })
    .await?;
    let status = ready.status.unwrap();
    let artifact = status.artifact.clone().unwrap();
    assert_eq!(
        artifact.revision.to_string(),
        format!("master@sha1:{app_commit}")
    );
    assert!(find_condition(&status.conditions, operator::INCLUDE_UNAVAILABLE).is_none());
    assert_eq!(status.included_artifacts.len(), 1);
    let store = world.store()?;
    let out = tempfile::tempdir()?;
    store.extract(&artifact, out.path())?;
    assert_eq!(
        std::fs::read_to_string(out.path().join("vendor/shared/cm.yaml"))?,
        "v: 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("lib/lib.yaml"))?,
        "kind: Lib\n"
    );

    // A new commit of the included repository alone: a new artifact, same revision string. (The
    // including repository's interval is 10m: the included one's new artifact triggers it.)
    let shared_commit = commit_files(&shared, &[("deploy/cm.yaml", "v: 2\n")], "v2")?;
    let updated = wait::until(&api, "app", TIMEOUT, "new included artifact", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.included_artifacts
                .first()
                .is_some_and(|a| a.revision.to_string().ends_with(&shared_commit))
        })
    })
    .await?;
    let new_artifact = updated.status.unwrap().artifact.unwrap();
    assert_eq!(new_artifact.revision, artifact.revision);
    assert_ne!(new_artifact.digest, artifact.digest);
    let out = tempfile::tempdir()?;
    store.extract(&new_artifact, out.path())?;
    assert_eq!(
        std::fs::read_to_string(out.path().join("vendor/shared/cm.yaml"))?,
        "v: 2\n"
    );
    Ok(())
}

/// Uploads every file under `dir` to `bucket` as `<prefix>/<relative path>`.
async fn upload_tree(s3: &S3Server, bucket: &str, dir: &Path, prefix: &str) -> Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                s3.put_object(bucket, &format!("{prefix}/{rel}"), &std::fs::read(&path)?)
                    .await?;
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_repository_index_artifact_and_chart_from_a_bucket() -> Result<()> {
    let w = World::start().await?;

    // A type: default HelmRepository: Ready, its index.yaml as artifact (revision sha256 of it).
    let repo_dir = tempfile::tempdir()?;
    write_chart_repo(repo_dir.path(), &["6.0.0"])?;
    let http = StaticHttpServer::start(repo_dir.path()).await?;
    w.create::<gitops_examples::crds::HelmRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"url": http.url(), "interval": "10m"}
    }))
    .await?;
    let repos: Api<gitops_examples::crds::HelmRepository> = Api::namespaced(w.client(), NS);
    let repo = wait::until(&repos, "podinfo", TIMEOUT, "HelmRepository Ready", |r| {
        r.status.as_ref().is_some_and(|s| {
            is_ready(&s.conditions) && s.observed_generation == r.metadata.generation
        })
    })
    .await?;
    let index = std::fs::read(repo_dir.path().join("index.yaml"))?;
    let artifact = repo
        .status
        .and_then(|s| s.artifact)
        .expect("status.artifact");
    assert_eq!(
        artifact.revision.to_string(),
        gitops_core::Digest::sha256_of(&index).to_string()
    );

    // A HelmChart from a Bucket that does not exist yet: Ready=False, no artifact available.
    w.create::<HelmChart>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "from-bucket", "namespace": NS},
        "spec": {"chart": "./charts/podinfo", "interval": "10m",
                 "reconcileStrategy": "Revision",
                 "sourceRef": {"kind": "Bucket", "name": "charts"}}
    }))
    .await?;
    let charts: Api<HelmChart> = Api::namespaced(w.client(), NS);
    let waiting = wait::until(&charts, "from-bucket", TIMEOUT, "Ready=False", |c| {
        c.status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, kind::READY))
            .is_some_and(|c| c.status.as_str() == "False")
    })
    .await?;
    let cond = find_condition(&waiting.status.unwrap_or_default().conditions, kind::READY)
        .cloned()
        .expect("Ready");
    assert!(
        cond.message
            .contains("no artifact available for Bucket source 'charts'"),
        "{}",
        cond.message
    );

    // The Bucket appears: the chart is packaged from its artifact.
    let s3 = S3Server::start().await?;
    s3.create_bucket("charts").await?;
    upload_tree(&s3, "charts", &podinfo_chart(), "charts/podinfo").await?;
    w.create::<Secret>(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bucket-auth", "namespace": NS},
        "stringData": {"accesskey": "test", "secretkey": "test-secret"}
    }))
    .await?;
    w.create::<Bucket>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket",
        "metadata": {"name": "charts", "namespace": NS},
        "spec": {"provider": "generic", "bucketName": "charts", "endpoint": s3.url(),
                 "insecure": true, "interval": "10m", "timeout": "20s",
                 "secretRef": {"name": "bucket-auth"}}
    }))
    .await?;
    let chart = wait::until(&charts, "from-bucket", TIMEOUT, "HelmChart Ready", |c| {
        c.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
    })
    .await?;
    let buckets: Api<Bucket> = Api::namespaced(w.client(), NS);
    let bucket_rev = buckets
        .get("charts")
        .await?
        .status
        .and_then(|s| s.artifact)
        .expect("bucket artifact")
        .revision;
    let artifact = chart
        .status
        .and_then(|s| s.artifact)
        .expect("status.artifact");
    let chart_yaml = std::fs::read_to_string(podinfo_chart().join("Chart.yaml"))?;
    let version = chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("version:"))
        .expect("version")
        .trim()
        .to_string();
    // reconcileStrategy: Revision: the version plus the first 12 hex of the Bucket's revision.
    let want = format!("{version}+{}", &bucket_rev.digest().hex()[..12]);
    assert_eq!(artifact.revision.pointer(), Some(want.as_str()));
    let out = tempfile::tempdir()?;
    fetch_artifact(
        &artifact.url,
        &artifact.digest,
        out.path(),
        FetchLimits::default(),
    )
    .await?;
    let packaged = std::fs::read_to_string(out.path().join("podinfo/Chart.yaml"))?;
    assert!(packaged.contains(&format!("version: {want}")), "{packaged}");
    assert!(
        out.path()
            .join("podinfo/templates/deployment.yaml")
            .is_file()
    );
    Ok(())
}

/// Pushes podinfo at `version` to `<registry>/charts/podinfo:<version>` as `helm push` does
/// (Helm's config and chart layer media types), with basic authentication.
async fn helm_push(reg: &OciRegistry, version: &str, user: &str, pass: &str) -> Result<()> {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::manifest::OciImageManifest;
    let layers = vec![ImageLayer::new(
        package_chart(version),
        gitops_sources::helm::HELM_CHART_CONTENT_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config::new(
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "name": "podinfo", "version": version, "appVersion": version
        }))?,
        gitops_sources::helm::HELM_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let manifest = OciImageManifest::build(&layers, &config, None);
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let r = oci_client::Reference::with_tag(
        reg.host(),
        "charts/podinfo".to_string(),
        version.replace('+', "_"),
    );
    let auth = oci_client::secrets::RegistryAuth::Basic(user.to_string(), pass.to_string());
    client
        .push(&r, &layers, config, &auth, Some(manifest))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_chart_from_an_oci_helm_repository() -> Result<()> {
    let w = World::start().await?;
    let reg = OciRegistry::start_with_basic_auth("helm", "oci-s3cret")?;
    for v in ["6.0.0", "6.1.3", "7.0.0"] {
        helm_push(&reg, v, "helm", "oci-s3cret").await?;
    }
    w.create::<Secret>(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "oci-auth", "namespace": NS},
        "stringData": {"username": "helm", "password": "oci-s3cret"}
    }))
    .await?;
    w.create::<gitops_examples::crds::HelmRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "podinfo-oci", "namespace": NS},
        "spec": {"type": "oci", "url": format!("oci://{}/charts", reg.host()),
                 "insecure": true, "interval": "10m", "secretRef": {"name": "oci-auth"}}
    }))
    .await?;
    w.create::<HelmChart>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "podinfo-oci", "namespace": NS},
        "spec": {"chart": "podinfo", "version": "6.x", "interval": "10m",
                 "sourceRef": {"kind": "HelmRepository", "name": "podinfo-oci"}}
    }))
    .await?;
    let charts: Api<HelmChart> = Api::namespaced(w.client(), NS);
    let chart = wait::until(&charts, "podinfo-oci", TIMEOUT, "HelmChart Ready", |c| {
        c.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
    })
    .await?;
    let artifact = chart
        .status
        .and_then(|s| s.artifact)
        .expect("status.artifact");
    assert_eq!(artifact.revision.pointer(), Some("6.1.3"));
    let out = tempfile::tempdir()?;
    fetch_artifact(
        &artifact.url,
        &artifact.digest,
        out.path(),
        FetchLimits::default(),
    )
    .await?;
    let chart_yaml = std::fs::read_to_string(out.path().join("podinfo/Chart.yaml"))?;
    assert!(chart_yaml.contains("version: 6.1.3"), "{chart_yaml}");
    // A type: oci HelmRepository is static, as in Flux: no artifact, no conditions.
    let repos: Api<gitops_examples::crds::HelmRepository> = Api::namespaced(w.client(), NS);
    let status = repos.get("podinfo-oci").await?.status.unwrap_or_default();
    assert_eq!(status.artifact, None);
    assert!(status.conditions.is_empty(), "{:?}", status.conditions);
    Ok(())
}
