//! End to end, a source's server going down after a first successful reconcile (see
//! `gitops-sources/tests/FAULTS.md`): a kube-apiserver + etcd + kube-controller-manager from
//! `KUBEBUILDER_ASSETS`, the operator, and a GitRepository served by `GitHttpServer`, an
//! OCIRepository on a real `docker-registry` (`OciRegistry`) or a Bucket on `moto_server`
//! (`S3Server`), feeding a pruning Kustomization; or a HelmChart from a HelmRepository served by
//! `StaticHttpServer`.
//!
//! Once the Kustomization has applied podinfo (or the HelmChart has its artifact), the server
//! stops. Flux's behaviour is expected: the source turns Ready=False with its failure reason
//! (`GitOperationFailed`, `OCIArtifactPullFailed`, `BucketOperationFailed`, `IndexationFailed`
//! for the HelmRepository and `ChartPullFailed` for the HelmChart) and a message naming the URL
//! (the Bucket's: the bucket name and the endpoint), `status.artifact` stays the last good one
//! and its file in the store still verifies, and the Kustomization, which keeps reconciling
//! every 2 s from that artifact, stays Ready at the same revision with its objects in place:
//! nothing is pruned. The HelmChart's artifact (what a HelmRelease would install) is still
//! served by the operator's artifact server.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use gitops_core::condition::{Condition, find_condition, is_ready, kind};
use gitops_examples::crds::{
    Bucket, GitRepository, HelmChart, HelmRepository, Kustomization, OCIRepository, SourceStatus,
};
use gitops_examples::operator::SourceKind;
use gitops_examples::wait;
use gitops_sources::oci::{OciAuth, push_artifact};
use gitops_sources::server::{FetchLimits, fetch_artifact};
use gitops_testenv::{GitHttpServer, OciRegistry, S3Server, StaticHttpServer};
use kube::api::Api;

mod common;
use common::{NS, TIMEOUT, World, podinfo};

impl World {
    /// After the source's server went down: the source `name` of kind `K` turns Ready=False
    /// with `reason` and a message naming `url`, keeps `artifact`, and the Kustomization keeps
    /// its objects and revision over several of its reconciles.
    async fn assert_outage_handled<K>(
        &self,
        before: &SourceStatus,
        reason: &str,
        url: &str,
    ) -> Result<()>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + SourceKind,
        K::DynamicType: Default,
    {
        self.assert_source_failed::<K>(before, reason, url).await?;
        let api: Api<K> = Api::namespaced(self.client(), NS);

        let ks_api: Api<Kustomization> = Api::namespaced(self.client(), NS);
        let applied = ks_api.get("app").await?;
        let revision = applied
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.clone());
        // Several Kustomization intervals (2 s) pass with the source down.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let ks = ks_api.get("app").await?;
        let ks_status = ks.status.clone().unwrap_or_default();
        assert!(
            is_ready(&ks_status.conditions),
            "{:?}",
            ks_status.conditions
        );
        assert_eq!(ks_status.last_applied_revision, revision);
        self.assert_podinfo_applied().await?;
        let still = api.get("podinfo").await?;
        assert_eq!(
            SourceKind::status(&still).and_then(|s| s.artifact.clone()),
            before.artifact
        );
        self.assert_artifact_verifies(before)?;
        Ok(())
    }

    /// After the source's server went down: the source `podinfo` of kind `K` turns Ready=False
    /// with `reason` and a message containing `needle` (its URL), and keeps `before.artifact`,
    /// whose file in the operator's store still verifies.
    async fn assert_source_failed<K>(
        &self,
        before: &SourceStatus,
        reason: &str,
        needle: &str,
    ) -> Result<()>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + SourceKind,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client(), NS);
        let failed = wait::until(&api, "podinfo", TIMEOUT, "source Ready=False", |s| {
            ready_condition(SourceKind::status(s)).is_some_and(|c| c.status.as_str() == "False")
        })
        .await?;
        let status = SourceKind::status(&failed).cloned().unwrap_or_default();
        let ready = ready_condition(Some(&status)).cloned().expect("Ready");
        eprintln!("{}: {ready:?}", K::kind(&K::DynamicType::default()));
        assert_eq!(ready.reason, reason, "{ready:?}");
        assert!(ready.message.contains(needle), "{}", ready.message);
        assert_eq!(status.artifact, before.artifact, "status.artifact changed");
        self.assert_artifact_verifies(before)?;
        Ok(())
    }

    /// The file of `status.artifact` is in the operator's store and matches its digest.
    fn assert_artifact_verifies(&self, status: &SourceStatus) -> Result<()> {
        let artifact = status.artifact.as_ref().expect("status.artifact");
        self.store()?.verify(artifact)?;
        Ok(())
    }
}

fn ready_condition(status: Option<&SourceStatus>) -> Option<&Condition> {
    status.and_then(|s| find_condition(&s.conditions, kind::READY))
}

async fn ready_source<K>(w: &World) -> Result<SourceStatus>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + SourceKind,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(w.client(), NS);
    let s = wait::until(&api, "podinfo", TIMEOUT, "source Ready", |s| {
        SourceKind::status(s).is_some_and(|st| is_ready(&st.conditions) && st.artifact.is_some())
    })
    .await?;
    Ok(SourceKind::status(&s).cloned().unwrap_or_default())
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_down_keeps_the_artifact_and_the_applied_objects() -> Result<()> {
    let w = World::start().await?;
    // A bare repository `repos/podinfo.git` holding the podinfo kustomize folder on master.
    let work = w.tmp.path().join("work");
    let repos = w.tmp.path().join("repos");
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&repos)?;
    for entry in std::fs::read_dir(podinfo())? {
        let path = entry?.path();
        std::fs::copy(&path, work.join(path.file_name().unwrap_or_default()))?;
    }
    git(&work, &["init", "-q", "-b", "master"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "podinfo"]);
    let bare = repos.join("podinfo.git");
    git(
        w.tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let server = GitHttpServer::start(&repos).await?;
    let url = format!("{}/podinfo.git", server.url());
    w.create::<GitRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"url": url, "ref": {"branch": "master"}, "interval": "1s", "timeout": "10s"}
    }))
    .await?;
    w.create_kustomization("app", "GitRepository", "podinfo", "2s")
        .await?;
    w.ready_kustomization("app").await?;
    w.assert_podinfo_applied().await?;
    let before = ready_source::<GitRepository>(&w).await?;

    // A commit that deletes the Service is pushed, then the server goes down before the source
    // can fetch it: nothing may be pruned.
    std::fs::write(
        work.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n",
    )?;
    server.shutdown().await;
    git(&work, &["commit", "-q", "-am", "drop the service"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "master"]);
    w.assert_outage_handled::<GitRepository>(&before, "GitOperationFailed", &url)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_registry_down_keeps_the_artifact_and_the_applied_objects() -> Result<()> {
    let w = World::start().await?;
    let reg = OciRegistry::start()?;
    let url = format!("oci://{}/manifests/podinfo", reg.host());
    push_artifact(
        &format!("{url}:6.0.0"),
        &podinfo(),
        "https://github.com/stefanprodan/podinfo",
        "6.0.0@sha1:0000000000000000000000000000000000000000",
        &OciAuth::Anonymous,
        true,
    )
    .await?;
    w.create::<OCIRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"url": url, "ref": {"tag": "6.0.0"}, "insecure": true, "interval": "1s",
                 "timeout": "10s"}
    }))
    .await?;
    w.create_kustomization("app", "OCIRepository", "podinfo", "2s")
        .await?;
    w.ready_kustomization("app").await?;
    w.assert_podinfo_applied().await?;
    let before = ready_source::<OCIRepository>(&w).await?;

    reg.stop();
    w.assert_outage_handled::<OCIRepository>(&before, "OCIArtifactPullFailed", &url)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_server_down_keeps_the_artifact_and_the_applied_objects() -> Result<()> {
    let w = World::start().await?;
    let mut s3 = S3Server::start().await?;
    w.create_podinfo_bucket(&s3, "2s", "5s").await?;
    w.create_kustomization("app", "Bucket", "podinfo", "2s")
        .await?;
    w.ready_kustomization("app").await?;
    w.assert_podinfo_applied().await?;
    let before = ready_source::<Bucket>(&w).await?;

    let endpoint = s3.url().trim_end_matches('/').to_string();
    s3.stop();
    // The error names the bucket; object_store's message carries the request's URL.
    w.assert_outage_handled::<Bucket>(&before, "BucketOperationFailed", "\"podinfo\"")
        .await?;
    let buckets: Api<Bucket> = Api::namespaced(w.client(), NS);
    let status = buckets.get("podinfo").await?.status.unwrap_or_default();
    let ready = ready_condition(Some(&status)).cloned().expect("Ready");
    assert!(ready.message.contains(&endpoint), "{}", ready.message);
    let ks: Api<Kustomization> = Api::namespaced(w.client(), NS);
    let revision = ks
        .get("app")
        .await?
        .status
        .and_then(|s| s.last_applied_revision);
    assert_eq!(
        revision,
        before.artifact.map(|a| a.revision.to_string()),
        "the Kustomization's lastAppliedRevision is the Bucket's last artifact"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_repository_down_keeps_the_index_and_the_chart_artifacts() -> Result<()> {
    let w = World::start().await?;
    // A chart repository: podinfo 6.0.0 and an index.yaml listing it with its digest.
    let repo_dir = w.tmp.path().join("charts");
    std::fs::create_dir_all(&repo_dir)?;
    let chart =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/podinfo/charts/podinfo");
    let tgz = gitops_testenv::package_chart(&chart, "podinfo", "6.0.0")?;
    std::fs::write(repo_dir.join("podinfo-6.0.0.tgz"), &tgz)?;
    let digest = gitops_core::Digest::sha256_of(&tgz).hex().to_string();
    std::fs::write(
        repo_dir.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  podinfo:\n  - apiVersion: v1\n    name: podinfo\n    version: 6.0.0\n    created: \"2024-01-01T00:00:00Z\"\n    urls:\n    - podinfo-6.0.0.tgz\n    digest: {digest}\ngenerated: \"2024-01-01T00:00:00Z\"\n"
        ),
    )?;
    let http = StaticHttpServer::start(&repo_dir).await?;
    let url = http.url();
    w.create::<HelmRepository>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"url": url, "interval": "2s", "timeout": "5s"}
    }))
    .await?;
    w.create::<HelmChart>(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {"chart": "podinfo", "version": ">=6.0.0", "interval": "2s",
                 "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}
    }))
    .await?;
    let repo_before = ready_source::<HelmRepository>(&w).await?;
    let chart_before = ready_source::<HelmChart>(&w).await?;
    let chart_artifact = chart_before.artifact.clone().expect("chart artifact");
    assert_eq!(chart_artifact.revision.pointer(), Some("6.0.0"));

    http.shutdown().await;
    w.assert_source_failed::<HelmRepository>(&repo_before, "IndexationFailed", &url)
        .await?;
    w.assert_source_failed::<HelmChart>(&chart_before, "ChartPullFailed", &url)
        .await?;

    // Several intervals (2 s) later, both still fail and keep their artifacts, and the chart is
    // still served by the operator's artifact server: it is what a HelmRelease would install.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let repos: Api<HelmRepository> = Api::namespaced(w.client(), NS);
    let charts: Api<HelmChart> = Api::namespaced(w.client(), NS);
    for status in [
        repos.get("podinfo").await?.status.unwrap_or_default(),
        charts.get("podinfo").await?.status.unwrap_or_default(),
    ] {
        let ready = ready_condition(Some(&status)).cloned().expect("Ready");
        assert_eq!(ready.status.as_str(), "False", "{ready:?}");
    }
    let repo_now = repos.get("podinfo").await?.status.unwrap_or_default();
    let chart_now = charts.get("podinfo").await?.status.unwrap_or_default();
    assert_eq!(repo_now.artifact, repo_before.artifact);
    assert_eq!(chart_now.artifact, chart_before.artifact);
    w.assert_artifact_verifies(&repo_now)?;
    w.assert_artifact_verifies(&chart_now)?;
    let out = tempfile::tempdir()?;
    fetch_artifact(
        &chart_artifact.url,
        &chart_artifact.digest,
        out.path(),
        FetchLimits::default(),
    )
    .await?;
    let chart_yaml = std::fs::read_to_string(out.path().join("podinfo/Chart.yaml"))?;
    assert!(chart_yaml.contains("version: 6.0.0"), "{chart_yaml}");
    Ok(())
}
