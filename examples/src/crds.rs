//! Flux's `GitRepository`, `OCIRepository`, `Bucket`, `HelmRepository` and `HelmChart`
//! (source.toolkit.fluxcd.io/v1) and
//! `Kustomization` (kustomize.toolkit.fluxcd.io/v1), for the fields this toolkit implements. Field names are
//! Flux's, so a Flux user's manifests apply unchanged; unknown fields are kept by the CRDs.

use gitops_core::{Artifact, Condition, Inventory};
use kube::CustomResource;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

/// The CRD manifests this operator serves.
pub const CRD_MANIFESTS: [&str; 6] = [
    include_str!("../crds/gitrepositories.yaml"),
    include_str!("../crds/ocirepositories.yaml"),
    include_str!("../crds/buckets.yaml"),
    include_str!("../crds/helmrepositories.yaml"),
    include_str!("../crds/helmcharts.yaml"),
    include_str!("../crds/kustomizations.yaml"),
];

/// `GitRepository.spec`: the source fields are [`gitops_sources::GitRepositorySpec`] (url, ref,
/// timeout, ignore, recurseSubmodules — the same plain data a program builds by hand), plus what
/// the operator reads.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "GitRepository",
    namespaced,
    schema = "disabled"
)]
#[kube(status = "GitRepositoryStatus", shortname = "gitrepo")]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// url, ref, timeout, ignore, recurseSubmodules.
    #[serde(flatten)]
    pub source: gitops_sources::GitRepositorySpec,
    /// Secret with `username`/`password` or `bearerToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// OpenPGP signature verification of the commit and/or tag (Flux's `spec.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<GitRepositoryVerification>,
    /// Poll period (Go duration).
    pub interval: String,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
    /// Flux's `spec.include`: artifacts of other GitRepositories (same namespace) copied into
    /// this one's (`fromPath` of theirs into `toPath` of this one). The including repository
    /// waits (Ready=False, `IncludeUnavailable`) until each is Ready with an artifact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<gitops_sources::git::GitRepositoryInclude>,
}

/// `GitRepository.spec.verify`, Flux's `GitRepositoryVerification`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryVerification {
    /// `HEAD` (the default; also `head`), `Tag` or `TagAndHEAD`. Kept as text so that a bad value
    /// is a reconcile error on the object rather than an object the watch cannot read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Secret whose values are ASCII-armored OpenPGP public keys (Flux: keys ending in `.asc`;
    /// `.sshpub` SSH keys are skipped, SSH signatures are not supported).
    pub secret_ref: LocalObjectReference,
}

/// A reference to an object in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalObjectReference {
    /// Name.
    pub name: String,
}

/// `OCIRepository.spec`: the source fields are [`gitops_sources::OciRepositorySpec`] (url, ref,
/// layerSelector, insecure, timeout, ignore), plus what the operator reads.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "OCIRepository",
    namespaced,
    schema = "disabled"
)]
#[kube(status = "SourceStatus", shortname = "ocirepo")]
#[serde(rename_all = "camelCase")]
pub struct OCIRepositorySpec {
    /// url, ref, layerSelector, insecure, timeout, ignore.
    #[serde(flatten)]
    pub source: gitops_sources::OciRepositorySpec,
    /// A `kubernetes.io/dockerconfigjson` Secret (key `.dockerconfigjson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Poll period (Go duration).
    pub interval: String,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
}

/// `Bucket.spec`: the source fields are [`gitops_sources::BucketSpec`] (provider, bucketName,
/// endpoint, insecure, region, prefix, ignore, timeout), plus what the operator reads.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "Bucket",
    namespaced,
    schema = "disabled"
)]
#[kube(status = "SourceStatus")]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// provider, bucketName, endpoint, insecure, region, prefix, ignore, timeout.
    #[serde(flatten)]
    pub source: gitops_sources::BucketSpec,
    /// A Secret with the keys `accesskey` and `secretkey` (S3), `serviceaccount` (gcp: a
    /// service-account key JSON) or `accountKey` (azure), as Flux reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Poll period (Go duration).
    pub interval: String,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
}

/// `HelmRepository.spec`: the source fields are [`gitops_sources::helm::HelmRepositorySpec`]
/// (url, type, insecure, passCredentials, timeout), plus what the operator reads. A
/// `type: default` repository is reconciled as source-controller does: its `index.yaml` becomes
/// the artifact (revision `sha256:<hex>` of the index) and `Ready` says whether it could be
/// fetched. A `type: oci` repository is static, as in Flux: no artifact and an empty status; the
/// HelmCharts that reference it read the registry when they fetch.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "HelmRepository",
    namespaced,
    schema = "disabled"
)]
#[kube(status = "SourceStatus", shortname = "helmrepo")]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositorySpec {
    /// url, type, insecure, passCredentials, timeout.
    #[serde(flatten)]
    pub source: gitops_sources::helm::HelmRepositorySpec,
    /// A Secret with the keys `username` and `password` (HTTP basic authentication; for
    /// `type: oci`, the registry's basic authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Poll period (Go duration; Flux's default is 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Stop reconciling (the HelmCharts of a suspended repository are not fetched).
    #[serde(default)]
    pub suspend: bool,
}

/// `HelmChart.spec`: the source fields are [`gitops_sources::helm::HelmChartSpec`] (chart,
/// version, sourceRef, reconcileStrategy), plus what the operator reads. `sourceRef.kind` is
/// `HelmRepository` (`chart` is a chart name) or `GitRepository` / `Bucket` (`chart` is the chart
/// folder's path in the source's artifact).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "HelmChart",
    namespaced,
    schema = "disabled"
)]
#[kube(status = "SourceStatus", shortname = "hc")]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    /// chart, version, sourceRef, reconcileStrategy.
    #[serde(flatten)]
    pub source: gitops_sources::helm::HelmChartSpec,
    /// Poll period (Go duration).
    pub interval: String,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
}

/// `GitRepository.status`: the common source status.
pub type GitRepositoryStatus = SourceStatus;

/// The status of a source (`GitRepository`, `OCIRepository`, `Bucket`, `HelmRepository`,
/// `HelmChart`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready / Reconciling / Stalled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The stored artifact. Read leniently: an artifact this version cannot read (written by
    /// another controller version) is `None`, and the next reconcile writes a new one.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact: Option<Artifact>,
    /// The ignore rules of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_ignore: Option<String>,
    /// GitRepository: the artifacts of `spec.include` the artifact was built with, in
    /// `spec.include` order (Flux's `status.includedArtifacts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_artifacts: Vec<Artifact>,
}

/// `Kustomization.spec`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "kustomize.toolkit.fluxcd.io",
    version = "v1",
    kind = "Kustomization",
    namespaced,
    schema = "disabled"
)]
#[kube(status = "KustomizationStatus", shortname = "ks")]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    /// Reconcile period (Go duration); also the drift-correction period.
    pub interval: String,
    /// Retry cap after failures (default: interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_interval: Option<String>,
    /// Budget per stage (default: interval − 30s, at least 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Folder inside the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Delete objects that left the source.
    pub prune: bool,
    /// The source.
    pub source_ref: SourceReference,
    /// Namespace for every namespaced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Stop reconciling.
    #[serde(default)]
    pub suspend: bool,
    /// Kustomizations that must be Ready first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,
    /// Variable substitution after the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuild>,
    /// Kustomize patches (`{patch, target}`) appended to the built kustomization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<serde_json::Value>,
    /// Image overrides (`{name, newName, newTag, digest}`) appended to the built kustomization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<serde_json::Value>,
    /// Kustomize components (folders relative to `path`) appended to the built kustomization.
    /// A component that is not a local relative path fails the build; so does one whose folder
    /// is missing from the artifact, unless `ignoreMissingComponents`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Drop the `components` whose folder does not exist in the artifact instead of failing
    /// (Flux >= 2.5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_missing_components: bool,
    /// Prefix of the names of every built object: the `namePrefix` of the built kustomization
    /// (replacing the file's own), so kustomize's nameReference rules rename references too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Suffix of the names of every built object, as `namePrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Labels and annotations set on the metadata of every built object after the build
    /// (selectors and templates untouched), overriding the object's own values of the same
    /// keys, as kustomize-controller does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,
    /// Recreate objects whose apply fails on an immutable field (Flux's `force`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Wait for every applied object to be healthy (kstatus), within `timeout`; when set,
    /// `healthChecks` is ignored, as Flux does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait: bool,
    /// Objects that must be healthy after the apply (any kind, e.g. a HelmRelease).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckReference>,
    /// The ServiceAccount (in the Kustomization's namespace) whose identity applies, prunes and
    /// health-checks the objects: the operator impersonates
    /// `system:serviceaccount:<namespace>:<name>` and the API server's RBAC decides, as
    /// kustomize-controller does. Unset: the operator's `--default-service-account`, else the
    /// operator's own identity. With `kubeConfig`, the impersonation happens on the remote
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// A remote cluster to apply to instead of the operator's own (Flux's `spec.kubeConfig`):
    /// the kubeconfig is read from a Secret in the Kustomization's namespace. Sources are still
    /// read on the operator's cluster and the inventory stays in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config: Option<KubeConfigReference>,
}

/// `Kustomization.spec.commonMetadata` (Flux's `CommonMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommonMetadata {
    /// Labels (key -> value) set on every built object.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Annotations (key -> value) set on every built object.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// `Kustomization.spec.kubeConfig` (Flux's `meta.KubeConfigReference`, `secretRef` form).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfigReference {
    /// The Secret holding the kubeconfig.
    pub secret_ref: SecretKeyReference,
}

/// A key of a Secret in the same namespace (Flux's `meta.SecretKeyReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretKeyReference {
    /// The Secret's name.
    pub name: String,
    /// The key; unset: `value`, else `value.yaml`, as Flux reads a kubeconfig Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// An entry of `Kustomization.spec.healthChecks` (Flux's `NamespacedObjectKindReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckReference {
    /// `group/version` or `version` of the object; only the group is used.
    #[serde(default)]
    pub api_version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; the Kustomization's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl HealthCheckReference {
    /// The object id, in `default_namespace` when the reference names none.
    pub fn id(&self, default_namespace: &str) -> gitops_core::ObjectId {
        let (group, _) = gitops_core::object::split_api_version(&self.api_version);
        gitops_core::ObjectId::new(
            group,
            &self.kind,
            self.namespace.as_deref().unwrap_or(default_namespace),
            &self.name,
        )
    }
}

/// `Kustomization.spec.postBuild`: Flux's post-build variable substitution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostBuild {
    /// Variables (name -> value); they override those of `substituteFrom`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub substitute: std::collections::BTreeMap<String, String>,
    /// ConfigMaps and Secrets in the Kustomization's namespace whose data are variables; a
    /// later one overrides an earlier one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitute_from: Vec<SubstituteReference>,
    /// `WithVariables` (default: substitute only when a variable is defined) or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute_strategy: Option<String>,
}

/// `Kustomization.spec.postBuild.substituteFrom[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// Name, in the Kustomization's namespace.
    pub name: String,
    /// A missing object is an empty set of variables instead of a failure.
    #[serde(default)]
    pub optional: bool,
}

/// `Kustomization.spec.sourceRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceReference {
    /// `GitRepository`, `OCIRepository` or `Bucket`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (default: the Kustomization's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `Kustomization.spec.dependsOn[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DependencyReference {
    /// Name.
    pub name: String,
    /// Namespace (default: the Kustomization's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `Kustomization.status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationStatus {
    /// The generation last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready / Reconciling / Stalled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Revision last applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Revision last attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The objects applied, in Flux's `{entries: [{id, v}]}` format. Read leniently, as
    /// `artifact` is: an unreadable inventory must not stop the watch of every Kustomization.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub inventory: Option<Inventory>,
    /// The last `reconcile.fluxcd.io/requestedAt` handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Reads an optional status field as `None` when it does not have the expected shape, so that
/// one object with an odd status does not fail the typed watch of the whole kind.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    match serde_json::from_value(value) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable status field");
            Ok(None)
        }
    }
}

/// Server-side applies the CRDs and waits until they are Established.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for manifest in CRD_MANIFESTS {
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(manifest)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("gitops-operator").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let cond = kube::runtime::wait::conditions::is_crd_established();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            kube::runtime::wait::await_condition(api.clone(), &name, cond),
        )
        .await??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_manifests_parse_and_serve_flux_versions() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let served: Vec<String> = CRD_MANIFESTS
            .iter()
            .flat_map(|m| {
                let crd: CustomResourceDefinition = serde_yaml_ng::from_str(m).unwrap();
                crd.spec
                    .versions
                    .iter()
                    .filter(|v| v.served && v.schema.is_some())
                    .map(|v| format!("{}/{}", crd.spec.names.kind, v.name))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            served,
            [
                "GitRepository/v1",
                "OCIRepository/v1",
                "OCIRepository/v1beta2",
                "Bucket/v1",
                "HelmRepository/v1",
                "HelmChart/v1",
                "Kustomization/v1"
            ]
        );
    }

    #[test]
    fn oci_and_bucket_specs_read_flux_manifests() {
        let oci: OCIRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"url": "oci://ghcr.io/stefanprodan/manifests/podinfo",
                     "ref": {"semver": ">=6.0.0"}, "interval": "5m", "timeout": "30s",
                     "secretRef": {"name": "ghcr"}}
        }))
        .unwrap();
        assert_eq!(
            oci.spec.source.timeout,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            oci.spec.source.reference.and_then(|r| r.semver).as_deref(),
            Some(">=6.0.0")
        );
        assert_eq!(oci.spec.secret_ref.map(|r| r.name).as_deref(), Some("ghcr"));
        let bucket: Bucket = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "Bucket",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"bucketName": "podinfo", "endpoint": "minio.minio.svc:9000",
                     "insecure": true, "interval": "1m", "suspend": true}
        }))
        .unwrap();
        assert_eq!(bucket.spec.source.bucket_name, "podinfo");
        assert!(bucket.spec.source.insecure && bucket.spec.suspend);
    }

    #[test]
    fn helm_specs_read_flux_manifests() {
        let repo: HelmRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"url": "https://stefanprodan.github.io/podinfo", "interval": "5m",
                     "timeout": "30s", "passCredentials": true, "secretRef": {"name": "auth"}}
        }))
        .unwrap();
        assert_eq!(
            repo.spec.source.timeout,
            Some(std::time::Duration::from_secs(30))
        );
        assert!(repo.spec.source.pass_credentials);
        assert_eq!(
            repo.spec.secret_ref.map(|r| r.name).as_deref(),
            Some("auth")
        );
        let chart: HelmChart = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"chart": "podinfo", "version": ">=6.0.0", "interval": "1m",
                     "sourceRef": {"kind": "HelmRepository", "name": "podinfo"},
                     "reconcileStrategy": "ChartVersion"}
        }))
        .unwrap();
        assert_eq!(chart.spec.source.chart, "podinfo");
        assert_eq!(chart.spec.source.version, ">=6.0.0");
        let r = chart.spec.source.source_ref.unwrap();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str()),
            ("HelmRepository", "podinfo")
        );
    }

    #[test]
    fn helm_oci_repository_and_chart_from_git_read_flux_manifests() {
        use gitops_sources::helm::{HelmRepositoryType, ReconcileStrategy};
        let repo: HelmRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"type": "oci", "url": "oci://ghcr.io/stefanprodan/charts",
                     "insecure": true, "interval": "5m"}
        }))
        .unwrap();
        assert_eq!(repo.spec.source.repository_type, HelmRepositoryType::Oci);
        assert!(repo.spec.source.insecure);
        let chart: HelmChart = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"chart": "./charts/podinfo", "interval": "1m",
                     "sourceRef": {"kind": "GitRepository", "name": "podinfo"},
                     "reconcileStrategy": "Revision"}
        }))
        .unwrap();
        assert_eq!(
            chart.spec.source.reconcile_strategy,
            ReconcileStrategy::Revision
        );
        assert_eq!(chart.spec.source.source_ref.unwrap().kind, "GitRepository");
    }

    #[test]
    fn kustomization_reads_flux_tenancy_fields() {
        let ks: Kustomization = serde_json::from_value(serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "team-a"},
            "spec": {"interval": "10m", "prune": true, "serviceAccountName": "team-a",
                     "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                     "kubeConfig": {"secretRef": {"name": "prod-kubeconfig", "key": "value.yaml"}}}
        }))
        .unwrap();
        assert_eq!(ks.spec.service_account_name.as_deref(), Some("team-a"));
        let r = ks.spec.kube_config.unwrap().secret_ref;
        assert_eq!(
            (r.name.as_str(), r.key.as_deref()),
            ("prod-kubeconfig", Some("value.yaml"))
        );
    }

    #[test]
    fn unreadable_status_fields_do_not_fail_the_object() {
        // A Flux v1beta1-era artifact (checksum, no digest) and an inventory of the wrong shape.
        let repo: GitRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "podinfo", "namespace": "flux-system"},
            "spec": {"url": "https://example.com/podinfo", "interval": "1m"},
            "status": {"artifact": {"checksum": "abc", "revision": "main/abc"},
                       "conditions": []}
        }))
        .unwrap();
        assert_eq!(repo.status.unwrap().artifact, None);
        let ks: Kustomization = serde_json::from_value(serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"interval": "10m", "prune": true,
                     "sourceRef": {"kind": "GitRepository", "name": "podinfo"}},
            "status": {"inventory": {"entries": "not a list"}, "lastAppliedRevision": "main@sha1:1"}
        }))
        .unwrap();
        let st = ks.status.unwrap();
        assert_eq!(st.inventory, None);
        assert_eq!(st.last_applied_revision.as_deref(), Some("main@sha1:1"));
    }
}
