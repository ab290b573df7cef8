//! A Flux-compatible operator on kube-runtime: serves `GitRepository`, `OCIRepository`, `Bucket`,
//! `HelmRepository`, `HelmChart` and `Kustomization` with the toolkit's `GitSource`,
//! `OciSource`, `BucketSource`, `HelmRepositorySource`, `HelmChartSource`,
//! `build_chart_from_artifact`, `KustomizeRenderer` and `SsaApplier`, writing Flux's status
//! (conditions, artifact, lastAppliedRevision, inventory).
//!
//! The source kinds share one generic controller ([`SourceKind`]): only how the `Source`
//! is built (spec and credentials) and the failure reason differ. A `type: default`
//! `HelmRepository` gets its `index.yaml` as artifact; a `type: oci` one is static (empty status),
//! as in Flux. A `HelmChart` whose `sourceRef` is a `HelmRepository` reads the repository and
//! its `secretRef` when it fetches; one whose `sourceRef` is a `GitRepository` or `Bucket`
//! packages the chart folder `spec.chart` from that source's artifact (Ready=False
//! `no artifact available ...` while the source has none), and is reconciled again when the
//! source's artifact changes.
//!
//! The operator serves its artifact store over HTTP ([`ArtifactServer`], Flux's
//! `--storage-addr`); every `status.artifact.url` is the server's URL of the artifact.
//!
//! A Kustomization is built with its `targetNamespace`, `patches`, `images` (an entry replacing
//! the file's entry of the same name), `components` (a missing one dropped under
//! `ignoreMissingComponents`, else a build failure naming it), `namePrefix` and `nameSuffix`
//! merged into the kustomization, `postBuild` substitution (variables from
//! `substituteFrom` ConfigMaps and Secrets, then `substitute`), then `commonMetadata` set on
//! every object, as kustomize-controller does. It waits for its `dependsOn` to be Ready at
//! their generation and, for those of the same source, to have applied the source's current
//! revision (`DependencyNotReady`; a missing one is `dependency '<ns>/<name>' not found: ...`).
//! Each applied change set and each
//! failure is a Kubernetes Event on it; the finalizer `finalizers.fluxcd.io` lets the deletion
//! of a Kustomization with `prune: true` delete its inventory first.
//!
//! A Kustomization applies, prunes and health-checks through the applier of its target, as
//! kustomize-controller's impersonator picks it: the cluster of the kubeconfig in
//! `spec.kubeConfig.secretRef` or the operator's own, as the ServiceAccount
//! `spec.serviceAccountName` (else [`OperatorConfig::default_service_account`]) impersonated,
//! so the API server's RBAC decides. Sources and the inventory stay on the operator's cluster.
//! Appliers (and their discovery) are cached per target until the kubeconfig Secret changes.
//!
//! Reconciles are triggered by spec changes (generation), by `reconcile.fluxcd.io/requestedAt`,
//! by a new artifact of the referenced source (for a GitRepository also of a GitRepository it
//! includes), and by the interval (± jitter) or the backoff after a failure.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gitops_apply::SsaApplier;
use gitops_core::condition::{self, kind, reason};
use gitops_core::pipeline::{ApplySpec, OwnerLabels, Reconcile};
use gitops_core::schedule::{Backoff, parse_duration};
use gitops_core::status::UnitStatus;
use gitops_core::{Applier, ArtifactKey, ArtifactStore, Fetched, Renderer, Source, Status};
use gitops_render::KustomizeRenderer;
use gitops_sources::bucket::{BucketAuth, BucketSource};
use gitops_sources::git::{GitAuth, GitRepositoryInclude, GitSource, Include};
use gitops_sources::helm::{
    HelmAuth, HelmChartSource, HelmChartSourceRef, HelmRepositorySource, HelmRepositoryType,
    build_chart_from_artifact,
};
use gitops_sources::oci::{OciAuth, OciSource};
use gitops_sources::server::{ArtifactServer, ServerError};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use crate::crds::{
    Bucket, GitRepository, HelmChart, HelmRepository, Kustomization, OCIRepository, SourceStatus,
};

/// Flux's annotation that asks for a reconcile now.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
/// The field manager of status patches and applies.
pub const FIELD_MANAGER: &str = "gitops-operator";

/// Settings of the operator.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Requeue delay while a dependency or the source is not ready (Flux: 30 s).
    pub dependency_requeue: Duration,
    /// Backoff and jitter.
    pub backoff: Backoff,
    /// Where the artifact server listens (Flux's `--storage-addr`, default `:9090`; `:PORT`
    /// means every interface). [`OperatorConfig::default`] uses `127.0.0.1:0`.
    pub storage_addr: String,
    /// The address consumers reach the artifact server at (Flux's `--storage-adv-addr`):
    /// `host[:port]` or an `http(s)://` base URL; `None` advertises the bound address.
    pub storage_adv_addr: Option<String>,
    /// Refuse a Kustomization whose `sourceRef` or `dependsOn` names another namespace: Ready=False
    /// `AccessDenied` (Flux's `--no-cross-namespace-refs`). Default: allowed, as in Flux.
    pub no_cross_namespace_refs: bool,
    /// The ServiceAccount impersonated for Kustomizations without `spec.serviceAccountName`
    /// (Flux's `--default-service-account`); `None`: those apply with the operator's identity.
    pub default_service_account: Option<String>,
    /// The configuration the operator's client was built from. Impersonating a ServiceAccount
    /// on the operator's cluster (`spec.serviceAccountName`, `default_service_account`) builds
    /// a client from it; `None`: such a Kustomization is Ready=False saying so.
    pub kube_config: Option<kube::Config>,
    /// Allow `exec` users in the kubeconfigs of `spec.kubeConfig.secretRef` (Flux's
    /// `--insecure-kubeconfig-exec`): the operator then runs the command the Secret names to
    /// get credentials. Default: refused, as in Flux.
    pub insecure_kubeconfig_exec: bool,
    /// Allow `insecure-skip-tls-verify` in those kubeconfigs (Flux's
    /// `--insecure-kubeconfig-tls`). Default: refused, as in Flux.
    pub insecure_kubeconfig_tls: bool,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            dependency_requeue: Duration::from_secs(30),
            backoff: Backoff::default(),
            storage_addr: "127.0.0.1:0".to_string(),
            storage_adv_addr: None,
            no_cross_namespace_refs: false,
            default_service_account: None,
            kube_config: None,
            insecure_kubeconfig_exec: false,
            insecure_kubeconfig_tls: false,
        }
    }
}

impl OperatorConfig {
    /// The socket address to bind: `:PORT` becomes `0.0.0.0:PORT`.
    pub fn listen_addr(&self) -> String {
        if self.storage_addr.starts_with(':') {
            format!("0.0.0.0{}", self.storage_addr)
        } else {
            self.storage_addr.clone()
        }
    }

    /// The advertised base URL: `storage_adv_addr` with `http://` prepended when it has no
    /// scheme.
    pub fn advertised_base_url(&self) -> Option<String> {
        self.storage_adv_addr.as_ref().map(|a| {
            if a.starts_with("http://") || a.starts_with("https://") {
                a.clone()
            } else {
                format!("http://{a}")
            }
        })
    }
}

/// Shared state of both controllers.
struct Ctx {
    client: kube::Client,
    store: ArtifactStore,
    server: ArtifactServer,
    /// The appliers of the Kustomizations' targets (cluster, identity, force), each with its
    /// own discovery cache, so that a reconcile reuses the last one's.
    appliers: Mutex<HashMap<TargetKey, Arc<SsaApplier>>>,
    config: OperatorConfig,
    failures: Mutex<HashMap<String, u32>>,
}

/// Errors that abort a reconcile (everything else lands in status conditions).
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Writing status or reading a referenced object failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A status could not be serialised.
    #[error("status: {0}")]
    Json(#[from] serde_json::Error),
    /// The object has no namespace.
    #[error("{0} has no namespace")]
    NoNamespace(String),
    /// The artifact server could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Starts the artifact server, then runs the GitRepository, OCIRepository, Bucket, HelmChart and
/// Kustomization controllers until `shutdown` resolves. Errors: the artifact server could not
/// bind ([`OperatorError::Server`]).
pub async fn run(
    client: kube::Client,
    store: ArtifactStore,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), OperatorError> {
    let advertised = config.advertised_base_url();
    let server =
        ArtifactServer::bind(store.clone(), config.listen_addr(), advertised.as_deref()).await?;
    let ctx = Arc::new(Ctx {
        appliers: Mutex::new(HashMap::new()),
        client: client.clone(),
        store,
        server,
        config,
        failures: Mutex::new(HashMap::new()),
    });
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let git_ctrl = source_controller::<GitRepository>(&client, &ctx, shutdown.clone());
    let oci_ctrl = source_controller::<OCIRepository>(&client, &ctx, shutdown.clone());
    let bucket_ctrl = source_controller::<Bucket>(&client, &ctx, shutdown.clone());
    let helm_repo_ctrl = helm_repository_controller(&client, &ctx, shutdown.clone());
    let helm_ctrl = helm_chart_controller(&client, &ctx, shutdown.clone());

    let (ks_reader, ks_stream) = reconcile_triggers::<Kustomization>(&client);
    let ks_ctrl = Controller::for_stream(ks_stream, ks_reader.clone())
        .watches_stream(
            artifacts::<GitRepository>(&client),
            referrers::<GitRepository>(ks_reader.clone()),
        )
        .watches_stream(
            artifacts::<OCIRepository>(&client),
            referrers::<OCIRepository>(ks_reader.clone()),
        )
        .watches_stream(artifacts::<Bucket>(&client), referrers::<Bucket>(ks_reader))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_kustomization, error_policy, ctx.clone())
        .for_each(|_| async {});
    futures::join!(
        git_ctrl,
        oci_ctrl,
        bucket_ctrl,
        helm_repo_ctrl,
        helm_ctrl,
        ks_ctrl
    );
    // The last reference to the context (and the artifact server) goes with `ctx`.
    Ok(())
}

/// The controller of one source kind.
async fn source_controller<K: SourceKind>(
    client: &kube::Client,
    ctx: &Arc<Ctx>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, stream) = reconcile_triggers::<K>(client);
    let mut controller = Controller::for_stream(stream, reader.clone());
    if K::kind(&()) == "GitRepository" {
        // A new artifact of an included GitRepository rebuilds the ones including it.
        controller = controller.watches_stream(artifacts::<K>(client), includers::<K>(reader));
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile_source::<K>, error_policy, ctx.clone())
        .for_each(|_| async {})
        .await
}

/// Maps a source to the sources of the same kind and namespace whose `spec.include` names it
/// (GitRepository includes).
fn includers<K: SourceKind>(
    sources: reflector::Store<K>,
) -> impl Fn(K) -> Vec<ObjectRef<K>> + Send + Sync + 'static {
    move |src: K| {
        let ns = src.namespace();
        let name = src.name_any();
        sources
            .state()
            .iter()
            .filter(|s| {
                s.namespace() == ns && s.includes().iter().any(|i| i.repository.name == name)
            })
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    }
}

/// The HelmRepository controller: `type: default` through [`reconcile_source`], `type: oci`
/// through [`reconcile_oci_helm_repository`].
async fn helm_repository_controller(
    client: &kube::Client,
    ctx: &Arc<Ctx>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, stream) = reconcile_triggers::<HelmRepository>(client);
    Controller::for_stream(stream, reader)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_helm_repository, error_policy, ctx.clone())
        .for_each(|_| async {})
        .await
}

async fn reconcile_helm_repository(
    repo: Arc<HelmRepository>,
    ctx: Arc<Ctx>,
) -> Result<Action, OperatorError> {
    if repo.spec.source.repository_type == HelmRepositoryType::Oci {
        reconcile_oci_helm_repository(&repo, &ctx).await
    } else {
        reconcile_source(repo, ctx).await
    }
}

/// A `type: oci` HelmRepository is static in Flux (source-controller's `migrationToStatic`):
/// no artifact, no conditions, the status emptied; the HelmCharts read the registry themselves.
async fn reconcile_oci_helm_repository(
    repo: &HelmRepository,
    ctx: &Ctx,
) -> Result<Action, OperatorError> {
    let ns = repo
        .namespace()
        .ok_or_else(|| OperatorError::NoNamespace(repo.name_any()))?;
    if repo.spec.suspend {
        return Ok(Action::await_change());
    }
    let old = repo.status.clone().unwrap_or_default();
    if old != SourceStatus::default() {
        let api: Api<HelmRepository> = Api::namespaced(ctx.client.clone(), &ns);
        // A merge patch keeps fields it does not name: name each to remove it.
        let patch = serde_json::json!({ "status": {
            "observedGeneration": null,
            "conditions": null,
            "artifact": null,
            "observedIgnore": null,
        }});
        api.patch_status(
            &repo.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        if let Some(a) = &old.artifact {
            tracing::info!(source = %key_of(repo), revision = %a.revision, "type: oci, artifact dropped");
        }
    }
    Ok(Action::await_change())
}

/// The HelmChart controller: [`reconcile_source`], also triggered by a new artifact of the
/// HelmRepository, GitRepository or Bucket its `sourceRef` names.
async fn helm_chart_controller(
    client: &kube::Client,
    ctx: &Arc<Ctx>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, stream) = reconcile_triggers::<HelmChart>(client);
    Controller::for_stream(stream, reader.clone())
        .watches_stream(
            artifacts::<HelmRepository>(client),
            chart_referrers::<HelmRepository>(reader.clone()),
        )
        .watches_stream(
            artifacts::<GitRepository>(client),
            chart_referrers::<GitRepository>(reader.clone()),
        )
        .watches_stream(
            artifacts::<Bucket>(client),
            chart_referrers::<Bucket>(reader),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile_source::<HelmChart>, error_policy, ctx.clone())
        .for_each(|_| async {})
        .await
}

/// Maps a source of kind `K` to the HelmCharts (same namespace) whose `sourceRef` names it.
fn chart_referrers<K: SourceKind>(
    charts: reflector::Store<HelmChart>,
) -> impl Fn(K) -> Vec<ObjectRef<HelmChart>> + Send + Sync + 'static {
    move |src: K| {
        let ns = src.namespace();
        let name = src.name_any();
        charts
            .state()
            .iter()
            .filter(|c| {
                c.namespace() == ns
                    && c.spec
                        .source
                        .source_ref
                        .as_ref()
                        .is_some_and(|r| r.kind == K::kind(&()) && r.name == name)
            })
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect()
    }
}

/// The sources of kind `K` whose artifact revision changed.
fn artifacts<K: SourceKind>(
    client: &kube::Client,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(artifact_revision::<K>, Default::default())
}

/// Maps a source of kind `K` to the Kustomizations whose `sourceRef` names it.
fn referrers<K: SourceKind>(
    kustomizations: reflector::Store<Kustomization>,
) -> impl Fn(K) -> Vec<ObjectRef<Kustomization>> + Send + Sync + 'static {
    move |src: K| {
        let ns = src.namespace().unwrap_or_default();
        let name = src.name_any();
        kustomizations
            .state()
            .iter()
            .filter(|k| {
                let r = &k.spec.source_ref;
                r.kind == K::kind(&())
                    && r.name == name
                    && r.namespace
                        .clone()
                        .or_else(|| k.namespace())
                        .unwrap_or_default()
                        == ns
            })
            .map(|k| ObjectRef::from_obj(k.as_ref()))
            .collect()
    }
}

/// The objects of kind `K` in every namespace, cached in a reflector store, and the stream of
/// their changes that trigger a reconcile: a new generation (spec) or a new
/// `reconcile.fluxcd.io/requestedAt` ([`spec_or_request`]); status writes do not.
fn reconcile_triggers<K>(
    client: &kube::Client,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_request, Default::default());
    (reader, stream)
}

/// Changes of spec (generation) or of the requestedAt annotation trigger a reconcile; status
/// writes do not.
fn spec_or_request<K: Resource>(obj: &K) -> Option<u64> {
    let mut h = DefaultHasher::new();
    predicates::generation(obj).hash(&mut h);
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_AT))
        .hash(&mut h);
    Some(h.finish())
}

fn artifact_revision<K: SourceKind>(src: &K) -> Option<u64> {
    let mut h = DefaultHasher::new();
    src.status()
        .and_then(|s| s.artifact.as_ref())
        .map(|a| a.revision.to_string())
        .hash(&mut h);
    Some(h.finish())
}

fn error_policy<K>(_obj: Arc<K>, err: &OperatorError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!("reconcile failed: {err}");
    Action::requeue(Duration::from_secs(5))
}

fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.clone().unwrap_or_default(),
        obj.meta().name.clone().unwrap_or_default()
    )
}

impl Ctx {
    /// Counts consecutive failures of `key`; returns the delay before the next try.
    fn failed(&self, key: &str, retryable: bool, cap: Duration) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        if retryable {
            self.config.backoff.retry_after(*n, cap)
        } else {
            cap
        }
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

fn requested_at<K: Resource>(obj: &K) -> Option<String> {
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_AT))
        .cloned()
}

/// Writes `new` as the object's status with a merge patch, unless it equals `old` (status writes
/// would otherwise trigger watches for nothing).
async fn patch_status_if_changed<K, S>(
    api: &Api<K>,
    name: &str,
    old: &S,
    new: &S,
) -> Result<(), OperatorError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize + PartialEq,
{
    if old == new {
        return Ok(());
    }
    let patch = serde_json::json!({ "status": serde_json::to_value(new)? });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// What the source controller reads for a source before building it with
/// [`SourceKind::source`].
#[derive(Default)]
pub struct SourceInputs<'a> {
    /// The Secret of `spec.secretRef` (of the HelmRepository for a HelmChart); `None` without.
    pub secret: Option<&'a Secret>,
    /// The HelmRepository of [`SourceKind::helm_repository`].
    pub repository: Option<&'a HelmRepository>,
    /// The Secret of [`SourceKind::verification_secret_name`].
    pub verification: Option<&'a Secret>,
    /// The resolved artifacts of [`SourceKind::includes`], in the same order.
    pub includes: Vec<Include>,
}

/// What the generic source controller needs from a source kind: its schedule, status, the
/// reason of a failed fetch, and how to build its [`Source`] (spec plus the referenced Secret).
pub trait SourceKind:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Flux's Ready=False reason when a fetch fails.
    const FAILURE_REASON: &'static str;
    /// `spec.interval`.
    fn interval(&self) -> &str;
    /// `spec.suspend`.
    fn suspended(&self) -> bool;
    /// `spec.ignore`, recorded as `status.observedIgnore`.
    fn ignore(&self) -> Option<String>;
    /// The name of the Secret in `spec.secretRef`.
    fn secret_name(&self) -> Option<&str>;
    /// `status`.
    fn status(&self) -> Option<&SourceStatus>;
    /// The HelmRepository this source reads (`spec.sourceRef` of a HelmChart); its `secretRef`
    /// then replaces [`SourceKind::secret_name`].
    fn helm_repository(&self) -> Option<&HelmChartSourceRef> {
        None
    }
    /// The Secret of `spec.verify.secretRef` (GitRepository's public keys), read before
    /// [`SourceKind::source`] and handed to it; `None` without signature verification.
    fn verification_secret_name(&self) -> Option<&str> {
        None
    }
    /// The HelmChart spec, for charts built from a GitRepository or Bucket artifact.
    fn helm_chart(&self) -> Option<&gitops_sources::helm::HelmChartSpec> {
        None
    }
    /// Builds the source from the spec and what the controller read for it ([`SourceInputs`]).
    /// Errors are a message and whether retrying may help.
    fn source(
        &self,
        key: ArtifactKey,
        inputs: SourceInputs<'_>,
    ) -> Result<Box<dyn Source>, (String, bool)>;
    /// GitRepository's `spec.include` (empty for other kinds).
    fn includes(&self) -> &[GitRepositoryInclude] {
        &[]
    }
}

/// The value of `key` in a Secret's data.
fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.clone().into_bytes())
        })
}

/// The CA certificate(s) trusted for HTTPS, as Flux reads them from a source's Secret: `ca.crt`,
/// else the deprecated `caFile`.
fn secret_ca(secret: Option<&Secret>) -> Option<Vec<u8>> {
    let secret = secret?;
    secret_value(secret, "ca.crt").or_else(|| secret_value(secret, "caFile"))
}

fn secret_name_of(secret: &Secret) -> String {
    format!(
        "{}/{}",
        secret.metadata.namespace.clone().unwrap_or_default(),
        secret.metadata.name.clone().unwrap_or_default()
    )
}

impl SourceKind for GitRepository {
    const FAILURE_REASON: &'static str = reason::GIT_OPERATION_FAILED;
    fn interval(&self) -> &str {
        &self.spec.interval
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn ignore(&self) -> Option<String> {
        self.spec.source.ignore.clone()
    }
    fn secret_name(&self) -> Option<&str> {
        self.spec.secret_ref.as_ref().map(|r| r.name.as_str())
    }
    fn verification_secret_name(&self) -> Option<&str> {
        self.spec
            .verify
            .as_ref()
            .map(|v| v.secret_ref.name.as_str())
    }
    fn status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }
    fn source(
        &self,
        key: ArtifactKey,
        inputs: SourceInputs<'_>,
    ) -> Result<Box<dyn Source>, (String, bool)> {
        let source = self
            .git_source(key, inputs.secret, inputs.verification)?
            .with_includes(inputs.includes)
            .map_err(|e| (e.to_string(), e.is_retryable()))?;
        Ok(Box::new(source))
    }
    fn includes(&self) -> &[GitRepositoryInclude] {
        &self.spec.include
    }
}

impl GitRepository {
    /// The GitSource of the spec, the credentials of the Secret and the public keys of the
    /// verification Secret.
    fn git_source(
        &self,
        key: ArtifactKey,
        secret: Option<&Secret>,
        verification: Option<&Secret>,
    ) -> Result<GitSource, (String, bool)> {
        let auth = match secret {
            None => GitAuth::None,
            Some(secret) => {
                let get = |k: &str| {
                    secret_value(secret, k).map(|v| String::from_utf8_lossy(&v).into_owned())
                };
                // Flux's keys: `identity` + `known_hosts` for ssh:// URLs, else `bearerToken`,
                // else `username` + `password`; `ca.crt` (or `caFile`) adds a CA for HTTPS.
                match (get("identity"), get("known_hosts")) {
                    (Some(identity), Some(known_hosts)) => GitAuth::Ssh {
                        identity,
                        known_hosts,
                        user: None,
                    },
                    _ => match (get("bearerToken"), get("username"), get("password")) {
                        (Some(token), _, _) => GitAuth::Bearer { token },
                        (None, Some(username), Some(password)) => {
                            GitAuth::Basic { username, password }
                        }
                        // A secret with only a CA certificate: anonymous HTTPS.
                        _ if secret_ca(Some(secret)).is_some() => GitAuth::None,
                        _ => {
                            return Err((
                                format!(
                                    "secret '{}' has neither identity and known_hosts, nor \
                                     bearerToken, nor username and password",
                                    secret_name_of(secret)
                                ),
                                true,
                            ));
                        }
                    },
                }
            }
        };
        // GitSource compares the ignore rules (and the submodule setting and included
        // artifacts) recorded in the last artifact itself.
        let mut source = GitSource::new(key, self.spec.source.clone(), auth)
            .map_err(|e| (e.to_string(), false))?;
        if let Some(ca) = secret_ca(secret) {
            source = source
                .with_ca_certificate(&ca)
                .map_err(|e| (e.to_string(), e.is_retryable()))?;
        }
        let source = match (&self.spec.verify, verification) {
            (Some(verify), Some(secret)) => source
                .with_verification(git_verification(verify, secret)?)
                .map_err(|e| (format!("secret '{}': {e}", secret_name_of(secret)), false))?,
            _ => source,
        };
        Ok(source)
    }
}

impl SourceKind for OCIRepository {
    /// Flux's `OCIArtifactPullFailed`.
    const FAILURE_REASON: &'static str = "OCIArtifactPullFailed";
    fn interval(&self) -> &str {
        &self.spec.interval
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn ignore(&self) -> Option<String> {
        self.spec.source.ignore.clone()
    }
    fn secret_name(&self) -> Option<&str> {
        self.spec.secret_ref.as_ref().map(|r| r.name.as_str())
    }
    fn status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }
    fn source(
        &self,
        key: ArtifactKey,
        inputs: SourceInputs<'_>,
    ) -> Result<Box<dyn Source>, (String, bool)> {
        let secret = inputs.secret;
        let auth = match secret {
            None => OciAuth::Anonymous,
            Some(secret) => {
                let json = secret_value(secret, ".dockerconfigjson").ok_or_else(|| {
                    (
                        format!(
                            "secret '{}' has no .dockerconfigjson",
                            secret_name_of(secret)
                        ),
                        true,
                    )
                })?;
                let url = &self.spec.source.url;
                let host = url
                    .strip_prefix("oci://")
                    .unwrap_or(url)
                    .split('/')
                    .next()
                    .unwrap_or_default();
                OciAuth::from_docker_config(&json, host).map_err(|e| (e.to_string(), true))?
            }
        };
        let source = OciSource::new(key, self.spec.source.clone(), auth)
            .map_err(|e| (e.to_string(), false))?;
        Ok(Box::new(source))
    }
}

impl SourceKind for Bucket {
    /// Flux's `BucketOperationFailed`.
    const FAILURE_REASON: &'static str = "BucketOperationFailed";
    fn interval(&self) -> &str {
        &self.spec.interval
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn ignore(&self) -> Option<String> {
        self.spec.source.ignore.clone()
    }
    fn secret_name(&self) -> Option<&str> {
        self.spec.secret_ref.as_ref().map(|r| r.name.as_str())
    }
    fn status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }
    fn source(
        &self,
        key: ArtifactKey,
        inputs: SourceInputs<'_>,
    ) -> Result<Box<dyn Source>, (String, bool)> {
        let secret = inputs.secret;
        let auth = match secret {
            None => BucketAuth::Anonymous,
            Some(secret) => {
                let get = |k: &str| {
                    secret_value(secret, k).map(|v| String::from_utf8_lossy(&v).into_owned())
                };
                // Flux's keys: `accesskey`/`secretkey` (S3), `serviceaccount` (gcp),
                // `accountKey` (azure).
                match (
                    get("accesskey"),
                    get("secretkey"),
                    get("serviceaccount"),
                    get("accountKey"),
                ) {
                    (Some(id), Some(secret), _, _) => BucketAuth::AccessKey { id, secret },
                    (_, _, Some(key), _) => BucketAuth::ServiceAccount(key),
                    (_, _, _, Some(secret)) => BucketAuth::AccessKey {
                        id: String::new(),
                        secret,
                    },
                    _ => {
                        return Err((
                            format!(
                                "secret '{}' has none of accesskey and secretkey, serviceaccount, accountKey",
                                secret_name_of(secret)
                            ),
                            true,
                        ));
                    }
                }
            }
        };
        let source = BucketSource::new(key, self.spec.source.clone(), auth)
            .map_err(|e| (e.to_string(), false))?;
        Ok(Box::new(source))
    }
}

impl SourceKind for HelmChart {
    /// Flux's `ChartPullFailed`.
    const FAILURE_REASON: &'static str = "ChartPullFailed";
    fn interval(&self) -> &str {
        &self.spec.interval
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn ignore(&self) -> Option<String> {
        None
    }
    fn secret_name(&self) -> Option<&str> {
        None
    }
    fn status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }
    fn helm_repository(&self) -> Option<&HelmChartSourceRef> {
        self.spec.source.source_ref.as_ref()
    }
    fn helm_chart(&self) -> Option<&gitops_sources::helm::HelmChartSpec> {
        Some(&self.spec.source)
    }
    fn source(
        &self,
        key: ArtifactKey,
        inputs: SourceInputs<'_>,
    ) -> Result<Box<dyn Source>, (String, bool)> {
        let secret = inputs.secret;
        let repository = inputs.repository.ok_or_else(|| {
            (
                "spec.sourceRef must name a HelmRepository".to_string(),
                false,
            )
        })?;
        let auth = helm_auth(secret)?;
        let mut source = HelmChartSource::new(
            key,
            repository.spec.source.clone(),
            self.spec.source.clone(),
            auth,
        )
        .map_err(|e| (e.to_string(), false))?;
        if let Some(ca) = secret_ca(secret) {
            source = source
                .with_ca_bundle(&ca)
                .map_err(|e| (e.to_string(), e.is_retryable()))?;
        }
        Ok(Box::new(source))
    }
}

/// A HelmRepository Secret's `username` and `password` (HTTP or registry basic authentication);
/// anonymous when the Secret holds only a CA (`ca.crt`/`caFile`).
fn helm_auth(secret: Option<&Secret>) -> Result<HelmAuth, (String, bool)> {
    let Some(secret) = secret else {
        return Ok(HelmAuth::None);
    };
    let get = |k: &str| secret_value(secret, k).map(|v| String::from_utf8_lossy(&v).into_owned());
    match (get("username"), get("password")) {
        (Some(user), Some(pass)) => Ok(HelmAuth::Basic { user, pass }),
        // A secret with only a CA certificate: anonymous HTTPS.
        _ if secret_ca(Some(secret)).is_some() => Ok(HelmAuth::None),
        _ => Err((
            format!(
                "secret '{}' has no username and password",
                secret_name_of(secret)
            ),
            true,
        )),
    }
}

impl SourceKind for HelmRepository {
    /// Flux's `IndexationFailed`.
    const FAILURE_REASON: &'static str = "IndexationFailed";
    fn interval(&self) -> &str {
        // Flux's default interval of a HelmRepository.
        self.spec.interval.as_deref().unwrap_or("1m")
    }
    fn suspended(&self) -> bool {
        self.spec.suspend
    }
    fn ignore(&self) -> Option<String> {
        None
    }
    fn secret_name(&self) -> Option<&str> {
        self.spec.secret_ref.as_ref().map(|r| r.name.as_str())
    }
    fn status(&self) -> Option<&SourceStatus> {
        self.status.as_ref()
    }
    fn source(
        &self,
        key: ArtifactKey,
        inputs: SourceInputs<'_>,
    ) -> Result<Box<dyn Source>, (String, bool)> {
        let secret = inputs.secret;
        let auth = helm_auth(secret)?;
        let mut source = HelmRepositorySource::new(key, self.spec.source.clone(), auth)
            .map_err(|e| (e.to_string(), false))?;
        if let Some(ca) = secret_ca(secret) {
            source = source
                .with_ca_bundle(&ca)
                .map_err(|e| (e.to_string(), e.is_retryable()))?;
        }
        Ok(Box::new(source))
    }
}

/// Builds the chart `spec.chart` from the artifact of the GitRepository or Bucket `r`
/// ([`build_chart_from_artifact`]); retryable `no artifact available ...` (Flux's
/// `NoSourceArtifact`) while the source has none.
async fn chart_from_source_artifact<K: SourceKind>(
    src: &K,
    r: &HelmChartSourceRef,
    kind_name: &str,
    ns: &str,
    name: &str,
    ctx: &Ctx,
    old: &SourceStatus,
) -> Result<Fetched, (String, bool)> {
    let spec = src
        .helm_chart()
        .ok_or_else(|| ("not a HelmChart".to_string(), false))?
        .clone();
    let status = match r.kind.as_str() {
        "GitRepository" => source_status::<GitRepository>(ctx, ns, &r.name).await,
        _ => source_status::<Bucket>(ctx, ns, &r.name).await,
    }
    .map_err(|e| (format!("{} '{ns}/{}': {e}", r.kind, r.name), true))?;
    let artifact = status.and_then(|s| s.artifact).ok_or_else(|| {
        (
            format!("no artifact available for {} source '{}'", r.kind, r.name),
            true,
        )
    })?;
    let key = ArtifactKey::new(kind_name, ns, name).map_err(|e| (e.to_string(), false))?;
    let store = ctx.store.clone();
    let last = old.artifact.clone();
    tokio::task::spawn_blocking(move || {
        build_chart_from_artifact(&store, &key, &spec, &artifact, last.as_ref())
    })
    .await
    .map_err(|e| (format!("building the chart: {e}"), true))?
    .map_err(|e| {
        let retryable = e.is_retryable();
        (e.to_string(), retryable)
    })
}

async fn reconcile_source<K: SourceKind>(
    src: Arc<K>,
    ctx: Arc<Ctx>,
) -> Result<Action, OperatorError> {
    let ns = src
        .namespace()
        .ok_or_else(|| OperatorError::NoNamespace(src.name_any()))?;
    let name = src.name_any();
    if src.suspended() {
        return Ok(Action::await_change());
    }
    let kind_name = K::kind(&()).to_string();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let old = src.status().cloned().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = src.meta().generation;
    let key = key_of(src.as_ref());
    let interval = parse_duration(src.interval()).unwrap_or(Duration::from_secs(60));

    let mut conds = UnitStatus {
        conditions: status.conditions.clone(),
        ..UnitStatus::default()
    };
    // GitRepository includes: wait until each included repository is Ready with an artifact.
    let includes = match resolve_includes(src.as_ref(), &ns, &ctx).await? {
        Ok(includes) => includes,
        Err((why, message)) => {
            tracing::info!(source = %key, "{message}");
            condition::set_condition(
                &mut conds.conditions,
                INCLUDE_UNAVAILABLE,
                Status::True,
                why,
                message.clone(),
            );
            condition::set_condition(
                &mut conds.conditions,
                kind::READY,
                Status::False,
                INCLUDE_UNAVAILABLE,
                message,
            );
            status.conditions = conds.conditions;
            patch_status_if_changed(&api, &name, &old, &status).await?;
            return Ok(Action::requeue(ctx.config.dependency_requeue));
        }
    };
    condition::remove_condition(&mut conds.conditions, INCLUDE_UNAVAILABLE);
    let included_artifacts: Vec<_> = includes.iter().map(|i| i.artifact.clone()).collect();
    let result = fetch_source(src.as_ref(), &kind_name, &ns, &name, &ctx, &old, includes).await;
    source_verified(
        &mut conds.conditions,
        src.verification_secret_name().is_some(),
        result
            .as_ref()
            .map(Fetched::artifact)
            .map_err(|(m, _)| m.as_str()),
    );
    let next = match result {
        Ok(fetched) => {
            let mut artifact = fetched.artifact().clone();
            artifact.url = ctx.server.url_for(&artifact);
            let message = format!("stored artifact for revision '{}'", artifact.revision);
            condition::set_condition(
                &mut conds.conditions,
                kind::READY,
                Status::True,
                reason::SUCCEEDED,
                message,
            );
            condition::remove_condition(&mut conds.conditions, kind::RECONCILING);
            condition::remove_condition(&mut conds.conditions, kind::STALLED);
            if let Fetched::New(a) = &fetched {
                tracing::info!(source = %key, revision = %a.revision, "new artifact");
                if let Err(e) = ctx.store.gc(a) {
                    tracing::warn!(source = %key, "artifact garbage collection: {e}");
                }
            }
            status.artifact = Some(artifact);
            status.observed_ignore = src.ignore();
            status.included_artifacts = included_artifacts;
            ctx.succeeded(&key);
            ctx.config.backoff.jittered(interval)
        }
        Err((message, retryable)) => {
            tracing::warn!(source = %key, "{message}");
            condition::set_condition(
                &mut conds.conditions,
                kind::READY,
                Status::False,
                K::FAILURE_REASON,
                message.clone(),
            );
            condition::set_condition(
                &mut conds.conditions,
                kind::RECONCILING,
                Status::True,
                reason::PROGRESSING_WITH_RETRY,
                message,
            );
            ctx.failed(&key, retryable, interval)
        }
    };
    status.conditions = conds.conditions;
    patch_status_if_changed(&api, &name, &old, &status).await?;
    Ok(Action::requeue(next))
}

/// Flux's `IncludeUnavailable`: the condition type (True while an included GitRepository is
/// missing or has no artifact) and the Ready=False reason meanwhile.
pub const INCLUDE_UNAVAILABLE: &str = "IncludeUnavailable";

/// The artifacts of a GitRepository's `spec.include`, in order, as source-controller's
/// `fetchIncludes`: each included GitRepository (same namespace) must exist and be Ready with an
/// artifact. `Ok(Err((reason, message)))` when one is not (reasons `NotFound`, `NoArtifact`,
/// Flux's); `Err` when the API fails.
async fn resolve_includes<K: SourceKind>(
    src: &K,
    ns: &str,
    ctx: &Ctx,
) -> Result<Result<Vec<Include>, (&'static str, String)>, OperatorError> {
    let mut out = Vec::new();
    if src.includes().is_empty() {
        return Ok(Ok(out));
    }
    let repos: Api<GitRepository> = Api::namespaced(ctx.client.clone(), ns);
    for incl in src.includes() {
        let name = &incl.repository.name;
        let Some(repo) = repos.get_opt(name).await? else {
            let message = format!("could not get resource for include '{name}': not found");
            return Ok(Err(("NotFound", message)));
        };
        let status = repo.status.as_ref();
        let ready = status
            .and_then(|s| condition::find_condition(&s.conditions, kind::READY))
            .is_some_and(|c| c.status == Status::True);
        match status.and_then(|s| s.artifact.clone()) {
            Some(artifact) if ready => out.push(Include::from_spec(incl, artifact)),
            _ => {
                let message = format!("no artifact available for include '{name}' (not Ready)");
                return Ok(Err(("NoArtifact", message)));
            }
        }
    }
    Ok(Ok(out))
}

/// Flux's `SourceVerified` condition type.
const SOURCE_VERIFIED: &str = "SourceVerified";

/// Sets Flux's `SourceVerified` condition from a fetch: True with the verified objects and keys
/// (from the artifact's metadata), False with the failure's reason when verification failed,
/// unchanged after other failures, removed without `spec.verify`.
fn source_verified(
    conditions: &mut Vec<gitops_core::Condition>,
    configured: bool,
    outcome: Result<&gitops_core::Artifact, &str>,
) {
    use gitops_sources::git::{METADATA_VERIFIED_FINGERPRINT, METADATA_VERIFIED_TAG_FINGERPRINT};
    if !configured {
        condition::remove_condition(conditions, SOURCE_VERIFIED);
        return;
    }
    match outcome {
        Ok(artifact) => {
            let meta = &artifact.metadata;
            let mut lines = Vec::new();
            if let Some(key) = meta.get(METADATA_VERIFIED_TAG_FINGERPRINT) {
                let tag = artifact.revision.pointer().unwrap_or_default();
                lines.push(format!("tag '{tag}' with key '{key}'"));
            }
            if let Some(key) = meta.get(METADATA_VERIFIED_FINGERPRINT) {
                let commit = artifact.revision.digest().hex();
                lines.push(format!("commit '{commit}' with key '{key}'"));
            }
            if !lines.is_empty() {
                let message = format!("verified signature of\n\t- {}", lines.join("\n\t- "));
                condition::set_condition(
                    conditions,
                    SOURCE_VERIFIED,
                    Status::True,
                    reason::SUCCEEDED,
                    message,
                );
            }
        }
        Err(message) => {
            // GitError::Verification messages carry the reason as `…: <Reason>: …`.
            let reason = gitops_sources::git_verify::REASONS
                .into_iter()
                .find(|r| message.contains(&format!(": {r}: ")));
            if let Some(reason) = reason {
                condition::set_condition(
                    conditions,
                    SOURCE_VERIFIED,
                    Status::False,
                    reason,
                    message.to_string(),
                );
            }
        }
    }
}

/// The verification options of a GitRepository: the mode and the public keys of its Secret
/// (every value but `*.sshpub` ones, as Flux reads PGP keys).
fn git_verification(
    verify: &crate::crds::GitRepositoryVerification,
    secret: &Secret,
) -> Result<gitops_sources::git_verify::GitVerification, (String, bool)> {
    use gitops_sources::git_verify::{GitVerification, VerificationMode};
    let mode = VerificationMode::parse(verify.mode.as_deref().unwrap_or_default())
        .map_err(|e| (format!("spec.verify.mode: {e}"), false))?;
    let mut names: Vec<String> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
        .filter(|k| !k.ends_with(".sshpub"))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    let public_keys = names
        .into_iter()
        .filter_map(|k| {
            secret_value(secret, &k).map(|v| (k, String::from_utf8_lossy(&v).into_owned()))
        })
        .collect();
    Ok(GitVerification { mode, public_keys })
}

async fn fetch_source<K: SourceKind>(
    src: &K,
    kind_name: &str,
    ns: &str,
    name: &str,
    ctx: &Ctx,
    old: &SourceStatus,
    includes: Vec<Include>,
) -> Result<Fetched, (String, bool)> {
    let repository = match src.helm_repository() {
        None => None,
        Some(r) if r.kind == "GitRepository" || r.kind == "Bucket" => {
            return chart_from_source_artifact(src, r, kind_name, ns, name, ctx, old).await;
        }
        Some(r) if r.kind != "HelmRepository" => {
            let message = format!(
                "spec.sourceRef.kind '{}' is not supported (HelmRepository, GitRepository or Bucket)",
                r.kind
            );
            return Err((message, false));
        }
        Some(r) => {
            let repos: Api<HelmRepository> = Api::namespaced(ctx.client.clone(), ns);
            let repo = repos
                .get_opt(&r.name)
                .await
                .map_err(|e| (format!("HelmRepository '{ns}/{}': {e}", r.name), true))?
                .ok_or_else(|| (format!("HelmRepository '{ns}/{}' not found", r.name), true))?;
            if repo.spec.suspend {
                return Err((
                    format!("HelmRepository '{ns}/{}' is suspended", r.name),
                    true,
                ));
            }
            Some(repo)
        }
    };
    let secret_name = match &repository {
        Some(repo) => repo.spec.secret_ref.as_ref().map(|r| r.name.as_str()),
        None => src.secret_name(),
    };
    let secret = match secret_name {
        None => None,
        Some(secret_name) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let secret = secrets
                .get(secret_name)
                .await
                .map_err(|e| (format!("secret '{ns}/{secret_name}': {e}"), true))?;
            Some(secret)
        }
    };
    let verification = match src.verification_secret_name() {
        None => None,
        Some(secret_name) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let secret = secrets.get(secret_name).await.map_err(|e| {
                (
                    format!("verification secret '{ns}/{secret_name}': {e}"),
                    true,
                )
            })?;
            Some(secret)
        }
    };
    let key = ArtifactKey::new(kind_name, ns, name).map_err(|e| (e.to_string(), false))?;
    let inputs = SourceInputs {
        secret: secret.as_ref(),
        repository: repository.as_ref(),
        verification: verification.as_ref(),
        includes,
    };
    let source = src.source(key, inputs)?;
    source
        .fetch(&ctx.store, old.artifact.as_ref())
        .await
        .map_err(|e| (e.to_string(), e.is_retryable()))
}

async fn reconcile_kustomization(
    ks: Arc<Kustomization>,
    ctx: Arc<Ctx>,
) -> Result<Action, OperatorError> {
    let ns = ks
        .namespace()
        .ok_or_else(|| OperatorError::NoNamespace(ks.name_any()))?;
    let name = ks.name_any();
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ns);
    if ks.metadata.deletion_timestamp.is_some() {
        return finalize_kustomization(&ks, &ns, &ctx, &api).await;
    }
    if !ks.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = ks.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        patch_finalizers(&api, &ks, finalizers).await?;
    }
    if ks.spec.suspend {
        return Ok(Action::await_change());
    }
    let key = key_of(ks.as_ref());
    let old = ks.status.clone().unwrap_or_default();
    let mut unit = UnitStatus {
        conditions: old.conditions.clone(),
        inventory: old.inventory.clone().unwrap_or_default(),
        ..UnitStatus::default()
    };
    let interval = parse_duration(&ks.spec.interval).unwrap_or(Duration::from_secs(600));
    let retry_interval = ks
        .spec
        .retry_interval
        .as_deref()
        .and_then(|d| parse_duration(d).ok())
        .unwrap_or(interval);
    let timeout = ks
        .spec
        .timeout
        .as_deref()
        .and_then(|d| parse_duration(d).ok())
        .unwrap_or_else(|| gitops_core::schedule::Timing::every(interval).timeout());
    let mut status = old.clone();
    status.observed_generation = ks.metadata.generation;
    status.last_handled_reconcile_at =
        requested_at(ks.as_ref()).or(old.last_handled_reconcile_at.clone());

    let next = match preflight(&ks, &ns, &ctx).await? {
        Err((reason, message)) => {
            if reason == ACCESS_DENIED {
                record_event(&ctx.client, &ks, true, reason, &message).await;
                unit.mark_waiting(reason, message);
                interval
            } else {
                unit.mark_waiting(reason, message);
                ctx.config.dependency_requeue
            }
        }
        Ok(artifact) => {
            let result = match reconcile_target(&ks, &ns, &ctx).await? {
                Err(error) => Err(gitops_core::pipeline::Failure {
                    error,
                    inventory: None,
                }),
                Ok((applier, renderer)) => {
                    let spec = ApplySpec {
                        path: ks.spec.path.clone().unwrap_or_default(),
                        prune: ks.spec.prune,
                        target_namespace: ks.spec.target_namespace.clone(),
                        wait: ks.spec.wait,
                        health_checks: ks.spec.health_checks.iter().map(|h| h.id(&ns)).collect(),
                    };
                    let owner = OwnerLabels::flux(&ns, &name);
                    Reconcile {
                        store: &ctx.store,
                        artifact: &artifact,
                        spec: &spec,
                        owner: &owner,
                        renderer,
                        applier: applier.as_ref(),
                        previous: &unit.inventory.clone(),
                        timeout,
                    }
                    .run()
                    .await
                }
            };
            match result {
                Ok(outcome) => {
                    let changes: Vec<String> = outcome
                        .change_set
                        .changes()
                        .map(|e| e.to_string())
                        .collect();
                    for e in &changes {
                        tracing::info!(kustomization = %key, "{e}");
                    }
                    if !changes.is_empty() {
                        // Flux's event of an applied change set: the changed entries, one a
                        // line, with the reason of the Ready condition while applying.
                        record_event(
                            &ctx.client,
                            &ks,
                            false,
                            reason::PROGRESSING,
                            &changes.join("\n"),
                        )
                        .await;
                    }
                    unit.mark_succeeded(&artifact.revision, outcome.inventory, outcome.change_set);
                    ctx.succeeded(&key);
                    ctx.config.backoff.jittered(interval)
                }
                Err(failure) => {
                    tracing::warn!(kustomization = %key, "{}", failure.error);
                    record_event(
                        &ctx.client,
                        &ks,
                        true,
                        failure.error.stage().reason(),
                        &failure.error.to_string(),
                    )
                    .await;
                    unit.mark_failed(&failure.error, Some(&artifact.revision));
                    if let Some(inv) = failure.inventory {
                        unit.inventory = inv;
                    }
                    ctx.failed(&key, failure.error.is_retryable(), retry_interval)
                }
            }
        }
    };
    status.conditions = unit.conditions;
    status.inventory = Some(unit.inventory);
    if let Some(r) = unit.last_applied_revision {
        status.last_applied_revision = Some(r.to_string());
    }
    if let Some(r) = unit.last_attempted_revision {
        status.last_attempted_revision = Some(r.to_string());
    }
    patch_status_if_changed(&api, &name, &old, &status).await?;
    Ok(Action::requeue(next))
}

/// Flux's finalizer: set on every Kustomization, so that deleting one with `prune: true`
/// first deletes the objects of its inventory.
pub const FINALIZER: &str = "finalizers.fluxcd.io";

/// Writes `finalizers` as the object's finalizers, failing on a concurrent change (the patch
/// carries the resourceVersion read).
async fn patch_finalizers(
    api: &Api<Kustomization>,
    ks: &Kustomization,
    finalizers: Vec<String>,
) -> Result<(), OperatorError> {
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": ks.resource_version(),
        }
    });
    api.patch(
        &ks.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// A Kustomization being deleted, as kustomize-controller finalizes one: with `prune: true`
/// (and not suspended) the objects of its inventory that still carry its owner labels and are
/// not annotated `kustomize.toolkit.fluxcd.io/prune: disabled` are deleted, then the finalizer
/// is removed. A failed deletion keeps the finalizer and is retried (Warning event
/// `PruneFailed`).
async fn finalize_kustomization(
    ks: &Kustomization,
    ns: &str,
    ctx: &Ctx,
    api: &Api<Kustomization>,
) -> Result<Action, OperatorError> {
    if !ks.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ks.name_any();
    let inventory = ks
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .unwrap_or_default();
    let applier = if ks.spec.prune && !ks.spec.suspend && !inventory.is_empty() {
        finalizer_applier(ks, ns, ctx).await?
    } else {
        FinalizerApplier::Skip(None)
    };
    match applier {
        FinalizerApplier::Skip(None) => {}
        FinalizerApplier::Skip(Some(why)) => {
            // As kustomize-controller does when the account to impersonate is gone: the
            // objects are left in place, said in a Warning event, and the deletion goes on.
            let objects: Vec<String> = inventory.entries.iter().map(|e| e.id.to_string()).collect();
            let message = format!(
                "skipping pruning, {why}; unable to prune objects:\n{}",
                objects.join("\n")
            );
            tracing::warn!(kustomization = %key_of(ks), "{message}");
            record_event(&ctx.client, ks, true, reason::PRUNE_FAILED, &message).await;
        }
        FinalizerApplier::Retry(e) => {
            let message = e.to_string();
            tracing::warn!(kustomization = %key_of(ks), "{message}");
            record_event(&ctx.client, ks, true, reason::PRUNE_FAILED, &message).await;
            return Ok(Action::requeue(ctx.config.dependency_requeue));
        }
        FinalizerApplier::Prune(applier) => {
            let owner = OwnerLabels::flux(ns, &name).pairs();
            match applier.prune(&inventory.entries, &owner).await {
                Ok(pruned) => {
                    let changes: Vec<String> = pruned.changes().map(|e| e.to_string()).collect();
                    for e in &changes {
                        tracing::info!(kustomization = %key_of(ks), "{e}");
                    }
                    if !changes.is_empty() {
                        record_event(
                            &ctx.client,
                            ks,
                            false,
                            reason::PROGRESSING,
                            &changes.join("\n"),
                        )
                        .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(kustomization = %key_of(ks), "{e}");
                    record_event(&ctx.client, ks, true, reason::PRUNE_FAILED, &e.to_string()).await;
                    return Ok(Action::requeue(ctx.config.dependency_requeue));
                }
            }
        }
    }
    let rest = ks
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(api, ks, rest).await?;
    Ok(Action::await_change())
}

/// What the finalizer prunes with.
enum FinalizerApplier {
    /// Nothing to prune (`None`), or the account to impersonate is gone (why).
    Skip(Option<String>),
    /// The target cannot be reached for another reason: retried.
    Retry(TargetError),
    /// The applier of the Kustomization's target.
    Prune(Arc<SsaApplier>),
}

/// The applier the finalizer prunes with, as kustomize-controller's finalizer decides: when the
/// ServiceAccount to impersonate (on the operator's cluster) or the kubeconfig Secret is gone,
/// pruning is skipped rather than blocking the deletion forever.
async fn finalizer_applier(
    ks: &Kustomization,
    ns: &str,
    ctx: &Ctx,
) -> Result<FinalizerApplier, OperatorError> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    if ks.spec.kube_config.is_none()
        && let Some(sa) = service_account(ks, &ctx.config)
    {
        let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), ns);
        if accounts.get_opt(sa).await?.is_none() {
            return Ok(FinalizerApplier::Skip(Some(format!(
                "ServiceAccount '{ns}/{sa}' to impersonate not found"
            ))));
        }
    }
    Ok(match target_applier(ks, ns, ctx).await? {
        Ok(applier) => FinalizerApplier::Prune(applier),
        Err(e @ TargetError::SecretNotFound { .. }) => FinalizerApplier::Skip(Some(e.to_string())),
        Err(e) => FinalizerApplier::Retry(e),
    })
}

/// The most appliers [`target_applier`] keeps; past it the cache is emptied (each target then
/// rebuilds its discovery once).
const MAX_APPLIERS: usize = 256;

/// What an applier is built for: the cluster (the operator's, or a kubeconfig Secret at a
/// resourceVersion), the identity impersonated on it, and `spec.force`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TargetKey {
    /// The kubeconfig Secret `namespace/name`, its key and its resourceVersion; `None`: the
    /// operator's cluster.
    kubeconfig: Option<(String, String, String)>,
    /// The user impersonated (`system:serviceaccount:<namespace>:<name>`), if any.
    impersonate: Option<String>,
    /// Recreate objects on immutable-field errors.
    force: bool,
}

impl TargetKey {
    /// The same target but for the Secret's resourceVersion: an entry it replaces.
    fn same_but_version(&self, other: &TargetKey) -> bool {
        self.impersonate == other.impersonate
            && self.force == other.force
            && match (&self.kubeconfig, &other.kubeconfig) {
                (Some((s1, k1, _)), Some((s2, k2, _))) => s1 == s2 && k1 == k2,
                _ => false,
            }
    }
}

/// Why the client of a Kustomization's target cluster cannot be built (Ready=False
/// `ReconciliationFailed`, retried). The messages name the Secret and key and never carry the
/// kubeconfig's contents.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The `spec.kubeConfig.secretRef` Secret does not exist.
    #[error("unable to read KubeConfig secret '{secret}': not found")]
    SecretNotFound {
        /// `namespace/name` of the Secret.
        secret: String,
    },
    /// The Secret has no such key (or no `value` / `value.yaml` when no key is given).
    #[error("KubeConfig secret '{secret}' does not contain a '{key}' key with a kubeconfig")]
    KeyMissing {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The key looked for (`value` or `value.yaml` without `secretRef.key`).
        key: String,
    },
    /// The value is no usable kubeconfig.
    #[error("KubeConfig secret '{secret}' key '{key}': {reason}")]
    Invalid {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The key read.
        key: String,
        /// What is wrong, without the contents.
        reason: String,
    },
    /// Impersonation on the operator's cluster without [`OperatorConfig::kube_config`].
    #[error(
        "impersonating '{user}' needs the operator's client configuration (OperatorConfig::kube_config)"
    )]
    NoOperatorConfig {
        /// The user to impersonate.
        user: String,
    },
    /// The client could not be built (TLS settings...).
    #[error("building the client of {target} failed")]
    Client {
        /// `the operator's cluster` or `KubeConfig secret 'ns/name' key 'k'`.
        target: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// The ServiceAccount a Kustomization impersonates: `spec.serviceAccountName`, else the
/// operator's `--default-service-account`, as kustomize-controller picks it.
fn service_account<'a>(ks: &'a Kustomization, config: &'a OperatorConfig) -> Option<&'a str> {
    ks.spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(config.default_service_account.as_deref())
        .filter(|s| !s.is_empty())
}

/// The kubeconfig in the Secret: `key`, or without one `value`, else `value.yaml`, as Flux
/// reads it; returns the key read and the value.
fn kubeconfig_value(
    secret: &Secret,
    key: Option<&str>,
    id: &str,
) -> Result<(String, Vec<u8>), TargetError> {
    let missing = |key: &str| TargetError::KeyMissing {
        secret: id.to_string(),
        key: key.to_string(),
    };
    match key.filter(|k| !k.is_empty()) {
        Some(k) => secret_value(secret, k)
            .map(|v| (k.to_string(), v))
            .ok_or_else(|| missing(k)),
        None => ["value", "value.yaml"]
            .into_iter()
            .find_map(|k| secret_value(secret, k).map(|v| (k.to_string(), v)))
            .ok_or_else(|| missing("value")),
    }
}

/// The client configuration of a kubeconfig from a Secret. The kubeconfig must be
/// self-contained: `exec` users (which would run a command in the operator; allowed with
/// [`OperatorConfig::insecure_kubeconfig_exec`], Flux's `--insecure-kubeconfig-exec`),
/// `auth-provider` users (plugins, always refused), file references (`tokenFile`,
/// `client-certificate`, `client-key`, `certificate-authority`, which would read the operator's
/// files; always refused) and `insecure-skip-tls-verify` (allowed with
/// [`OperatorConfig::insecure_kubeconfig_tls`], Flux's `--insecure-kubeconfig-tls`) are refused.
async fn remote_config(
    bytes: &[u8],
    secret: &str,
    key: &str,
    config: &OperatorConfig,
) -> Result<kube::Config, TargetError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let invalid = |reason: String| TargetError::Invalid {
        secret: secret.to_string(),
        key: key.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    // The parser's message may quote the text: only say that it failed.
    let kc = Kubeconfig::from_yaml(text)
        .map_err(|_| invalid("not a kubeconfig (the YAML does not parse as one)".into()))?;
    for user in &kc.auth_infos {
        let Some(a) = &user.auth_info else { continue };
        let refused = [
            ("exec", a.exec.is_some() && !config.insecure_kubeconfig_exec),
            ("auth-provider", a.auth_provider.is_some()),
            ("tokenFile", a.token_file.is_some()),
            ("client-certificate", a.client_certificate.is_some()),
            ("client-key", a.client_key.is_some()),
        ];
        if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
            return Err(invalid(format!(
                "user '{}' sets '{field}', which is not allowed (the kubeconfig must carry its credentials as data{})",
                user.name,
                if *field == "exec" {
                    "; the operator's --insecure-kubeconfig-exec allows exec"
                } else {
                    ""
                }
            )));
        }
    }
    for cluster in &kc.clusters {
        let Some(c) = &cluster.cluster else { continue };
        if c.certificate_authority.is_some() {
            return Err(invalid(format!(
                "cluster '{}' sets 'certificate-authority', which is not allowed (use certificate-authority-data)",
                cluster.name
            )));
        }
        if c.insecure_skip_tls_verify == Some(true) && !config.insecure_kubeconfig_tls {
            return Err(invalid(format!(
                "cluster '{}' sets 'insecure-skip-tls-verify', which is not allowed (the operator's --insecure-kubeconfig-tls allows it)",
                cluster.name
            )));
        }
    }
    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(e.to_string()))
}

/// The applier of a Kustomization's target, as kustomize-controller's impersonator builds its
/// client: the remote cluster of `spec.kubeConfig.secretRef` (Secret in the Kustomization's
/// namespace) or the operator's cluster, impersonating the ServiceAccount of
/// [`service_account`] when there is one (the API server adds the ServiceAccount's groups), with
/// the operator's field manager and `spec.force`. Appliers are cached per [`TargetKey`], so the
/// discovery of a target is reused until the kubeconfig Secret changes.
async fn target_applier(
    ks: &Kustomization,
    ns: &str,
    ctx: &Ctx,
) -> Result<Result<Arc<SsaApplier>, TargetError>, OperatorError> {
    let impersonate =
        service_account(ks, &ctx.config).map(|sa| format!("system:serviceaccount:{ns}:{sa}"));
    let mut kubeconfig = None;
    let remote = match &ks.spec.kube_config {
        None => None,
        Some(r) => {
            let id = format!("{ns}/{}", r.secret_ref.name);
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let Some(secret) = secrets.get_opt(&r.secret_ref.name).await? else {
                return Ok(Err(TargetError::SecretNotFound { secret: id }));
            };
            let (key, value) = match kubeconfig_value(&secret, r.secret_ref.key.as_deref(), &id) {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            kubeconfig = Some(value);
            Some((id, key, secret.resource_version().unwrap_or_default()))
        }
    };
    let key = TargetKey {
        kubeconfig: remote,
        impersonate,
        force: ks.spec.force,
    };
    if let Some(applier) = lock(&ctx.appliers).get(&key) {
        return Ok(Ok(applier.clone()));
    }
    let client = match (&key.kubeconfig, kubeconfig) {
        (Some((secret, k, _)), Some(bytes)) => {
            let mut config = match remote_config(&bytes, secret, k, &ctx.config).await {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            impersonate_in(&mut config, key.impersonate.as_deref());
            kube::Client::try_from(config).map_err(|source| TargetError::Client {
                target: format!("KubeConfig secret '{secret}' key '{k}'"),
                source,
            })
        }
        _ => match (&key.impersonate, &ctx.config.kube_config) {
            (None, _) => Ok(ctx.client.clone()),
            (Some(user), None) => Err(TargetError::NoOperatorConfig { user: user.clone() }),
            (Some(user), Some(config)) => {
                let mut config = config.clone();
                impersonate_in(&mut config, Some(user));
                kube::Client::try_from(config).map_err(|source| TargetError::Client {
                    target: "the operator's cluster".into(),
                    source,
                })
            }
        },
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let applier = Arc::new(
        SsaApplier::new(client)
            .with_field_manager(FIELD_MANAGER)
            .with_force(key.force),
    );
    let mut appliers = lock(&ctx.appliers);
    appliers.retain(|k, _| !k.same_but_version(&key));
    if appliers.len() >= MAX_APPLIERS {
        appliers.clear();
    }
    appliers.insert(key, applier.clone());
    Ok(Ok(applier))
}

/// Makes `config` impersonate `user` (no groups: the API server adds a ServiceAccount's own);
/// `None` leaves the configuration as it is.
fn impersonate_in(config: &mut kube::Config, user: Option<&str>) {
    if let Some(user) = user {
        config.auth_info.impersonate = Some(user.to_string());
        config.auth_info.impersonate_groups = None;
        config.auth_info.impersonate_uid = None;
        config.auth_info.impersonate_user_extra = None;
    }
}

/// Locks a mutex, taking over a poisoned one (the maps it guards stay consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The applier of the Kustomization's target ([`target_applier`]), then its renderer
/// ([`kustomization_renderer`]), in kustomize-controller's order; a target that cannot be
/// reached fails the reconcile (`ReconciliationFailed`, retried).
async fn reconcile_target(
    ks: &Kustomization,
    ns: &str,
    ctx: &Ctx,
) -> Result<Result<(Arc<SsaApplier>, Arc<dyn Renderer>), gitops_core::Error>, OperatorError> {
    let applier = match target_applier(ks, ns, ctx).await? {
        Ok(a) => a,
        Err(e) => {
            return Ok(Err(gitops_core::Error::retryable(
                gitops_core::Stage::Apply,
                e,
            )));
        }
    };
    Ok(kustomization_renderer(ks, ns, &ctx.client)
        .await?
        .map(|r| (applier, r)))
}

/// The renderer of one Kustomization, as kustomize-controller builds: kustomize with the
/// spec's `targetNamespace` (so binding subjects follow it too), `patches`, `images`, `components` (`ignoreMissingComponents`), `namePrefix` and
/// `nameSuffix` merged into the kustomization, then post-build substitution with the variables
/// of `postBuild.substituteFrom` (in list order, a later source winning) overridden by
/// `postBuild.substitute`, in strict mode (Flux's default since 2.9), with
/// `postBuild.substituteStrategy`; then `commonMetadata` ([`set_common_metadata`]).
/// A missing ConfigMap or Secret that is not `optional` is a retryable build failure naming it;
/// values never appear in errors or logs.
async fn kustomization_renderer(
    ks: &Kustomization,
    ns: &str,
    client: &kube::Client,
) -> Result<Result<Arc<dyn Renderer>, gitops_core::Error>, OperatorError> {
    let built = match post_built_renderer(ks, ns, client).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(match &ks.spec.common_metadata {
        Some(meta) if !(meta.labels.is_empty() && meta.annotations.is_empty()) => {
            Arc::new(WithCommonMetadata {
                inner: built,
                meta: meta.clone(),
            })
        }
        _ => built,
    }))
}

/// [`kustomization_renderer`] without `commonMetadata`: the kustomize build with the overlay
/// of the spec, then post-build substitution.
async fn post_built_renderer(
    ks: &Kustomization,
    ns: &str,
    client: &kube::Client,
) -> Result<Result<Arc<dyn Renderer>, gitops_core::Error>, OperatorError> {
    use gitops_core::Stage;
    use k8s_openapi::api::core::v1::ConfigMap;
    let spec = &ks.spec;
    let overlay = gitops_render::Overlay::new()
        .target_namespace(spec.target_namespace.clone().unwrap_or_default())
        .patches(spec.patches.iter().cloned())
        .images(spec.images.iter().cloned())
        .components(spec.components.iter().cloned())
        .ignore_missing_components(spec.ignore_missing_components)
        .name_prefix(spec.name_prefix.clone().unwrap_or_default())
        .name_suffix(spec.name_suffix.clone().unwrap_or_default());
    let kustomize = KustomizeRenderer::new().with_overlay(overlay);
    let Some(post) = &spec.post_build else {
        return Ok(Ok(Arc::new(kustomize)));
    };
    let strategy = match post.substitute_strategy.as_deref() {
        None | Some("WithVariables") => gitops_render::Strategy::WithVariables,
        Some("Always") => gitops_render::Strategy::Always,
        Some(other) => {
            let message = format!(
                "postBuild.substituteStrategy '{other}' is not supported (WithVariables or Always)"
            );
            return Ok(Err(gitops_core::Error::terminal(Stage::Render, message)));
        }
    };
    let mut post_build = gitops_render::PostBuild::new()
        .strict(true)
        .strategy(strategy);
    for r in &post.substitute_from {
        let vars: Option<Vec<(String, String)>> = match r.kind.as_str() {
            "ConfigMap" => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
                api.get_opt(&r.name)
                    .await?
                    .map(|cm| cm.data.unwrap_or_default().into_iter().collect())
            }
            "Secret" => {
                let api: Api<Secret> = Api::namespaced(client.clone(), ns);
                api.get_opt(&r.name).await?.map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect()
                })
            }
            other => {
                let message = format!(
                    "postBuild.substituteFrom: kind '{other}' of '{}' is not supported (ConfigMap or Secret)",
                    r.name
                );
                return Ok(Err(gitops_core::Error::terminal(Stage::Render, message)));
            }
        };
        match vars {
            Some(vars) => match post_build.vars(vars) {
                Ok(p) => post_build = p,
                Err(e) => {
                    let message =
                        format!("postBuild.substituteFrom {} '{ns}/{}': {e}", r.kind, r.name);
                    return Ok(Err(gitops_core::Error::terminal(Stage::Render, message)));
                }
            },
            None if r.optional => {}
            None => {
                let message = format!(
                    "postBuild.substituteFrom: {} '{ns}/{}' not found",
                    r.kind, r.name
                );
                return Ok(Err(gitops_core::Error::retryable(Stage::Render, message)));
            }
        }
    }
    post_build = match post_build.vars(post.substitute.iter().map(|(k, v)| (k.clone(), v))) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("postBuild.substitute: {e}");
            return Ok(Err(gitops_core::Error::terminal(Stage::Render, message)));
        }
    };
    Ok(Ok(Arc::new(gitops_render::WithPostBuild::new(
        kustomize, post_build,
    ))))
}

/// Sets `spec.commonMetadata` on objects, as kustomize-controller does after the build (fluxcd/pkg
/// `ssa/utils.SetCommonMetadata`): every label and annotation is set on each object's own
/// metadata, overriding the object's value of the same key; selectors and pod templates are not
/// touched. Substitution does not reach these values (it runs before).
fn set_common_metadata(objects: &mut [gitops_core::Object], meta: &crate::crds::CommonMetadata) {
    for o in objects {
        for (k, v) in &meta.labels {
            o.set_label(k, v);
        }
        for (k, v) in &meta.annotations {
            o.set_annotation(k, v);
        }
    }
}

/// A renderer applying [`set_common_metadata`] to what `inner` builds. The reconcile pipeline
/// stamps the owner labels (`kustomize.toolkit.fluxcd.io/name`, `/namespace`) afterwards, so
/// those keep their values even when `commonMetadata` names them (Flux would let
/// `commonMetadata` override them, which breaks pruning).
struct WithCommonMetadata {
    inner: Arc<dyn Renderer>,
    meta: crate::crds::CommonMetadata,
}

impl Renderer for WithCommonMetadata {
    fn render(
        &self,
        dir: &std::path::Path,
    ) -> Result<Vec<gitops_core::Object>, gitops_core::Error> {
        let mut objects = self.inner.render(dir)?;
        set_common_metadata(&mut objects, &self.meta);
        Ok(objects)
    }

    fn render_in(
        &self,
        root: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<Vec<gitops_core::Object>, gitops_core::Error> {
        let mut objects = self.inner.render_in(root, dir)?;
        set_common_metadata(&mut objects, &self.meta);
        Ok(objects)
    }
}

/// Records a Kubernetes Event (core/v1) on the Kustomization, as kustomize-controller's event
/// recorder does: `Warning` for failures, `Normal` otherwise; the message is cut to 1 KiB.
/// A failure to record is logged, never fails the reconcile.
async fn record_event(
    client: &kube::Client,
    ks: &Kustomization,
    warning: bool,
    reason: &str,
    message: &str,
) {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
    let Some(ns) = ks.namespace() else {
        return;
    };
    let mut message = message.to_string();
    if message.len() > 1024 {
        let mut end = 1021;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", ks.name_any(), now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("kustomize.toolkit.fluxcd.io/v1".into()),
            kind: Some("Kustomization".into()),
            name: Some(ks.name_any()),
            namespace: Some(ns.clone()),
            uid: ks.uid(),
            resource_version: ks.resource_version(),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: Some("Reconcile".into()),
        reporting_component: Some(FIELD_MANAGER.into()),
        reporting_instance: Some(FIELD_MANAGER.into()),
        source: Some(EventSource {
            component: Some(FIELD_MANAGER.into()),
            host: None,
        }),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
        tracing::warn!(kustomization = %key_of(ks), "recording an event failed: {e}");
    }
}

/// Flux's Ready=False reason of a reference refused by `--no-cross-namespace-refs`.
pub const ACCESS_DENIED: &str = "AccessDenied";

/// Why a Kustomization must wait: Flux's reason and message.
type Wait = (&'static str, String);

/// Checks the source, then `dependsOn` ([`dependency_not_ready`]), in kustomize-controller's
/// order; returns the artifact, or why the Kustomization must wait (`ArtifactFailed` while the
/// source has no artifact, `DependencyNotReady`, as Flux says; `AccessDenied` for a reference
/// to another namespace under `--no-cross-namespace-refs`).
async fn preflight(
    ks: &Kustomization,
    ns: &str,
    ctx: &Ctx,
) -> Result<Result<gitops_core::Artifact, Wait>, OperatorError> {
    if ctx.config.no_cross_namespace_refs {
        let src = &ks.spec.source_ref;
        let refs = std::iter::once((src.kind.as_str(), &src.namespace, &src.name)).chain(
            ks.spec
                .depends_on
                .iter()
                .map(|d| ("Kustomization", &d.namespace, &d.name)),
        );
        for (kind, other_ns, other) in refs {
            if let Some(other_ns) = other_ns.as_deref().filter(|o| *o != ns) {
                let message = format!(
                    "can't access '{kind}/{other_ns}/{other}', cross-namespace references have been blocked"
                );
                return Ok(Err((ACCESS_DENIED, message)));
            }
        }
    }
    let src = &ks.spec.source_ref;
    let src_ns = src.namespace.clone().unwrap_or_else(|| ns.to_string());
    let status = match src.kind.as_str() {
        "GitRepository" => source_status::<GitRepository>(ctx, &src_ns, &src.name).await?,
        "OCIRepository" => source_status::<OCIRepository>(ctx, &src_ns, &src.name).await?,
        "Bucket" => source_status::<Bucket>(ctx, &src_ns, &src.name).await?,
        other => {
            let message = format!(
                "source kind '{other}' is not supported (GitRepository, OCIRepository or Bucket)"
            );
            return Ok(Err((reason::ARTIFACT_FAILED, message)));
        }
    };
    let Some(artifact) = status.and_then(|s| s.artifact) else {
        let message = format!(
            "Source artifact of {} '{src_ns}/{}' not found",
            src.kind, src.name
        );
        return Ok(Err((reason::ARTIFACT_FAILED, message)));
    };
    for dep in &ks.spec.depends_on {
        let dep_ns = dep.namespace.clone().unwrap_or_else(|| ns.to_string());
        let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &dep_ns);
        let found = match api.get(&dep.name).await {
            Ok(found) => found,
            // kustomize-controller reports the API server's answer after its own words.
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                let message = format!(
                    "dependency '{dep_ns}/{}' not found: {}",
                    dep.name, status.message
                );
                return Ok(Err((reason::DEPENDENCY_NOT_READY, message)));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(why) = dependency_not_ready(ks, ns, &found, &artifact) {
            let message = format!("dependency '{dep_ns}/{}' {why}", dep.name);
            return Ok(Err((reason::DEPENDENCY_NOT_READY, message)));
        }
    }
    Ok(Ok(artifact))
}

/// Why the dependency `dep` of `ks` (in `ns`) is not ready, as kustomize-controller's
/// `checkDependencies` decides, `None` when it is (a missing one is reported by
/// [`preflight`] as `not found`): it must have observed its generation
/// and be Ready=True; and when it reconciles the same source as `ks` (same kind, name and
/// namespace, a missing namespace being the object's own), its `status.lastAppliedRevision`
/// must be the revision of `artifact`, the source's current one: a dependant never applies a
/// revision its dependency has not applied yet.
fn dependency_not_ready(
    ks: &Kustomization,
    ns: &str,
    dep: &Kustomization,
    artifact: &gitops_core::Artifact,
) -> Option<&'static str> {
    let st = dep.status.clone().unwrap_or_default();
    if st.conditions.is_empty()
        || st.observed_generation != dep.metadata.generation
        || !condition::is_ready(&st.conditions)
    {
        return Some("is not ready");
    }
    let (theirs, ours) = (&dep.spec.source_ref, &ks.spec.source_ref);
    let dep_ns = dep.namespace().unwrap_or_default();
    let same_source = theirs.kind == ours.kind
        && theirs.name == ours.name
        && theirs.namespace.as_deref().unwrap_or(&dep_ns)
            == ours.namespace.as_deref().unwrap_or(ns);
    let revision = artifact.revision.to_string();
    if same_source && st.last_applied_revision.as_deref() != Some(revision.as_str()) {
        return Some("revision is not up to date");
    }
    None
}

/// The status of the source `ns/name` of kind `K`, `None` when it does not exist.
async fn source_status<K: SourceKind>(
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Option<SourceStatus>, OperatorError> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api.get_opt(name).await?.and_then(|s| s.status().cloned()))
}

/// Summaries of Kustomizations as `flux get kustomizations` prints them: name, revision,
/// suspended, ready, message.
pub fn kustomization_rows(items: &[Kustomization]) -> Vec<[String; 5]> {
    items
        .iter()
        .map(|k| {
            let st = k.status.clone().unwrap_or_default();
            let ready = condition::find_condition(&st.conditions, kind::READY);
            [
                k.name_any(),
                st.last_applied_revision.unwrap_or_default(),
                if k.spec.suspend { "True" } else { "False" }.to_string(),
                ready
                    .map(|c| c.status.as_str().to_string())
                    .unwrap_or_else(|| "Unknown".into()),
                ready.map(|c| c.message.clone()).unwrap_or_default(),
            ]
        })
        .collect()
}

/// Formats rows under headers with columns padded like kubectl's tables.
pub fn table<const N: usize>(headers: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = headers.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, (c, w)) in cells.into_iter().zip(widths).enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn artifact(revision: &str, metadata: serde_json::Value) -> gitops_core::Artifact {
        serde_json::from_value(serde_json::json!({
            "revision": revision,
            "digest": format!("sha256:{}", "0".repeat(64)),
            "path": "gitrepository/default/x/a.tar.gz",
            "url": "http://127.0.0.1/a.tar.gz",
            "lastUpdateTime": "2024-01-01T00:00:00Z",
            "metadata": metadata,
        }))
        .unwrap()
    }

    fn kustomization(
        name: &str,
        source: serde_json::Value,
        status: serde_json::Value,
    ) -> Kustomization {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system", "generation": 2},
            "spec": {"interval": "10m", "prune": true, "sourceRef": source},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_dependency_on_the_same_source_must_have_applied_its_revision() {
        let fleet = serde_json::json!({"kind": "GitRepository", "name": "fleet"});
        let ready_at = |revision: &str| {
            serde_json::json!({"observedGeneration": 2, "lastAppliedRevision": revision,
                "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                                "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]})
        };
        let new = artifact(
            "main@sha1:2222222222222222222222222222222222222222",
            serde_json::json!({}),
        );
        let old_rev = "main@sha1:1111111111111111111111111111111111111111";
        let app = kustomization("app", fleet.clone(), serde_json::json!({}));

        let behind = kustomization("infra", fleet.clone(), ready_at(old_rev));
        assert_eq!(
            dependency_not_ready(&app, "flux-system", &behind, &new),
            Some("revision is not up to date")
        );
        let current = kustomization("infra", fleet.clone(), ready_at(&new.revision.to_string()));
        assert_eq!(
            dependency_not_ready(&app, "flux-system", &current, &new),
            None
        );
        // The same source named with its namespace spelled out is still the same source.
        let spelled = serde_json::json!({"kind": "GitRepository", "name": "fleet", "namespace": "flux-system"});
        let behind_spelled = kustomization("infra", spelled, ready_at(old_rev));
        assert_eq!(
            dependency_not_ready(&app, "flux-system", &behind_spelled, &new),
            Some("revision is not up to date")
        );
        // Another source (name, kind or namespace): its revision is not compared.
        for other in [
            serde_json::json!({"kind": "GitRepository", "name": "infra-repo"}),
            serde_json::json!({"kind": "OCIRepository", "name": "fleet"}),
            serde_json::json!({"kind": "GitRepository", "name": "fleet", "namespace": "other"}),
        ] {
            let dep = kustomization("infra", other, ready_at(old_rev));
            assert_eq!(dependency_not_ready(&app, "flux-system", &dep, &new), None);
        }
        // Not Ready, or not at its generation.
        let mut stale = current.clone();
        stale.metadata.generation = Some(3);
        assert_eq!(
            dependency_not_ready(&app, "flux-system", &stale, &new),
            Some("is not ready")
        );
        let mut failed = current;
        failed.status.as_mut().unwrap().conditions[0].status = condition::Status::False;
        assert_eq!(
            dependency_not_ready(&app, "flux-system", &failed, &new),
            Some("is not ready")
        );
    }

    #[test]
    fn common_metadata_overrides_object_metadata_only() {
        let mut objects = vec![
            gitops_core::Object::from_map(
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "labels": {"team": "old", "app": "web"}},
                    "spec": {"selector": {"matchLabels": {"app": "web"}},
                             "template": {"metadata": {"labels": {"app": "web"}}}}
                }))
                .unwrap(),
            ),
            gitops_core::Object::from_map(
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bare"}
                }))
                .unwrap(),
            ),
        ];
        let meta: crate::crds::CommonMetadata = serde_json::from_value(serde_json::json!({
            "labels": {"team": "platform"}, "annotations": {"example.com/owner": "ops"}
        }))
        .unwrap();
        set_common_metadata(&mut objects, &meta);
        let d = objects[0].as_map();
        assert_eq!(
            d["metadata"]["labels"],
            serde_json::json!({"team": "platform", "app": "web"})
        );
        assert_eq!(d["metadata"]["annotations"]["example.com/owner"], "ops");
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            serde_json::json!({"app": "web"})
        );
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"],
            serde_json::json!({"app": "web"})
        );
        assert_eq!(objects[1].label("team"), Some("platform"));
        assert_eq!(objects[1].annotation("example.com/owner"), Some("ops"));
    }

    #[test]
    fn git_repository_reads_flux_verify() {
        let repo: GitRepository = serde_json::from_value(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": "app", "namespace": "default"},
            "spec": {"url": "https://example.invalid/app.git", "interval": "1m",
                     "ref": {"tag": "v1.0.0"},
                     "verify": {"mode": "TagAndHEAD", "secretRef": {"name": "pgp-keys"}}}
        }))
        .unwrap();
        assert_eq!(repo.verification_secret_name(), Some("pgp-keys"));
        let verify = repo.spec.verify.clone().unwrap();
        assert_eq!(verify.mode.as_deref(), Some("TagAndHEAD"));

        let secret = Secret {
            data: Some(
                [
                    ("b.asc", "B"),
                    ("a.asc", "A"),
                    ("legacy", "L"),
                    ("author.sshpub", "ssh-ed25519 AAAA"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
            ),
            ..Default::default()
        };
        let v = git_verification(&verify, &secret).unwrap();
        assert_eq!(
            v.mode,
            gitops_sources::git_verify::VerificationMode::TagAndHead
        );
        let names: Vec<&str> = v.public_keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a.asc", "b.asc", "legacy"]);

        let bad = crate::crds::GitRepositoryVerification {
            mode: Some("tag".into()),
            ..verify
        };
        let (message, retryable) = git_verification(&bad, &secret).unwrap_err();
        assert!(message.contains("spec.verify.mode"), "{message}");
        assert!(!retryable);

        // The keys are parsed when the source is built: a bad one names its Secret key.
        let inputs = SourceInputs {
            verification: Some(&secret),
            ..SourceInputs::default()
        };
        let err = match repo.source(
            ArtifactKey::new("GitRepository", "default", "app").unwrap(),
            inputs,
        ) {
            Ok(_) => panic!("keys that are no keys were accepted"),
            Err(e) => e,
        };
        assert!(err.0.contains("\"a.asc\""), "{}", err.0);
        assert!(!err.1);
    }

    fn kubeconfig_secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn kubeconfig_keys_are_read_as_flux_reads_them() {
        let both = kubeconfig_secret(&[("value", "A"), ("value.yaml", "B"), ("other", "C")]);
        let yaml_only = kubeconfig_secret(&[("value.yaml", "B")]);
        let read = |s: &Secret, key: Option<&str>| {
            kubeconfig_value(s, key, "ns/kc").map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        };
        assert_eq!(read(&both, None).unwrap(), ("value".into(), "A".into()));
        assert_eq!(read(&both, Some("")).unwrap(), ("value".into(), "A".into()));
        assert_eq!(
            read(&yaml_only, None).unwrap(),
            ("value.yaml".into(), "B".into())
        );
        assert_eq!(
            read(&both, Some("other")).unwrap(),
            ("other".into(), "C".into())
        );
        let err = read(&yaml_only, Some("value")).unwrap_err().to_string();
        assert_eq!(
            err,
            "KubeConfig secret 'ns/kc' does not contain a 'value' key with a kubeconfig"
        );
        let err = read(&kubeconfig_secret(&[]), None).unwrap_err().to_string();
        assert!(err.contains("'ns/kc'") && err.contains("'value'"), "{err}");
    }

    #[tokio::test]
    async fn kubeconfigs_that_run_commands_or_read_files_are_refused() {
        let strict = OperatorConfig::default();
        let kubeconfig = |user: serde_json::Value| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{"name": "remote", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "c", "context": {"cluster": "remote", "user": "u"}}],
            })
            .to_string()
        };
        let ok = kubeconfig(serde_json::json!({"token": "t0k3n-value"}));
        let config = remote_config(ok.as_bytes(), "ns/kc", "value", &strict)
            .await
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        for (user, field) in [
            (
                serde_json::json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                            "command": "/bin/sh", "args": ["-c", "id"]}}),
                "exec",
            ),
            (
                serde_json::json!({"tokenFile": "/var/run/secrets/token"}),
                "tokenFile",
            ),
            (
                serde_json::json!({"client-key": "/etc/key.pem", "client-certificate": "/etc/c.pem"}),
                "client-certificate",
            ),
        ] {
            let err = remote_config(kubeconfig(user).as_bytes(), "ns/kc", "value", &strict)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("KubeConfig secret 'ns/kc' key 'value': user 'u' sets")
                    && err.contains(&format!("'{field}'")),
                "{err}"
            );
        }
        let insecure = ok.replace(
            "\"server\":\"https://127.0.0.1:6443\"",
            "\"server\":\"https://127.0.0.1:6443\",\"insecure-skip-tls-verify\":true",
        );
        assert_ne!(insecure, ok);
        let err = remote_config(insecure.as_bytes(), "ns/kc", "value", &strict)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("'insecure-skip-tls-verify'"), "{err}");
        // Flux's opt-ins: --insecure-kubeconfig-tls and --insecure-kubeconfig-exec.
        let lax = OperatorConfig {
            insecure_kubeconfig_tls: true,
            insecure_kubeconfig_exec: true,
            ..OperatorConfig::default()
        };
        let config = remote_config(insecure.as_bytes(), "ns/kc", "value", &lax)
            .await
            .unwrap();
        assert!(config.accept_invalid_certs);
        let exec = kubeconfig(
            serde_json::json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": "/bin/sh", "args": ["-c", "id"]}}),
        );
        let config = remote_config(exec.as_bytes(), "ns/kc", "value", &lax)
            .await
            .unwrap();
        assert!(config.auth_info.exec.is_some());
        // Files and plugins stay refused with both opt-ins.
        for (user, field) in [
            (
                serde_json::json!({"tokenFile": "/var/run/secrets/token"}),
                "tokenFile",
            ),
            (
                serde_json::json!({"auth-provider": {"name": "oidc", "config": {}}}),
                "auth-provider",
            ),
        ] {
            let err = remote_config(kubeconfig(user).as_bytes(), "ns/kc", "value", &lax)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("'{field}'")), "{err}");
        }
        // A value that is no kubeconfig: named, never quoted.
        let err = remote_config(b"users: [t0k3n-value", "ns/kc", "value", &strict)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a kubeconfig"), "{err}");
        assert!(!err.contains("t0k3n-value"), "{err}");
    }

    #[test]
    fn a_new_secret_version_replaces_the_cached_applier_of_its_target() {
        let key = |rv: &str, sa: Option<&str>, force: bool| TargetKey {
            kubeconfig: Some(("ns/kc".into(), "value".into(), rv.into())),
            impersonate: sa.map(str::to_string),
            force,
        };
        assert!(key("2", None, false).same_but_version(&key("1", None, false)));
        assert!(!key("2", Some("sa"), false).same_but_version(&key("1", None, false)));
        assert!(!key("2", None, true).same_but_version(&key("1", None, false)));
        let local = TargetKey {
            kubeconfig: None,
            impersonate: None,
            force: false,
        };
        assert!(!local.same_but_version(&local.clone()));
    }

    #[test]
    fn the_default_service_account_applies_when_the_field_is_unset() {
        let ks = |sa: Option<&str>| -> Kustomization {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": "team"},
                "spec": {"interval": "10m", "prune": true, "serviceAccountName": sa,
                         "sourceRef": {"kind": "GitRepository", "name": "fleet"}}
            }))
            .unwrap()
        };
        let plain = OperatorConfig::default();
        let defaulted = OperatorConfig {
            default_service_account: Some("reconciler".into()),
            ..OperatorConfig::default()
        };
        assert_eq!(service_account(&ks(None), &plain), None);
        assert_eq!(service_account(&ks(None), &defaulted), Some("reconciler"));
        assert_eq!(service_account(&ks(Some("own")), &defaulted), Some("own"));
        assert_eq!(service_account(&ks(Some("")), &plain), None);
    }

    #[test]
    fn source_verified_condition_follows_the_fetch() {
        let commit = "c9a3701755081960c4a1172c7b66c4ed209fe911";
        let mut conditions = Vec::new();
        let verified = artifact(
            &format!("v1@sha1:{commit}"),
            serde_json::json!({
                "verified.mode": "TagAndHEAD",
                "verified.fingerprint": "AAAA",
                "verified.tag.fingerprint": "BBBB",
            }),
        );
        source_verified(&mut conditions, true, Ok(&verified));
        let c = condition::find_condition(&conditions, SOURCE_VERIFIED).unwrap();
        assert_eq!(c.status, Status::True);
        assert_eq!(
            c.message,
            format!(
                "verified signature of\n\t- tag 'v1' with key 'BBBB'\n\t- commit '{commit}' with key 'AAAA'"
            )
        );

        // A network failure leaves it; a verification failure turns it False with its reason.
        source_verified(&mut conditions, true, Err("git repository x: timed out"));
        let c = condition::find_condition(&conditions, SOURCE_VERIFIED).unwrap();
        assert_eq!(c.status, Status::True);
        let failure = "git repository file:///r: branch \"main\": InvalidCommitSignature: commit 'abc' is not signed";
        source_verified(&mut conditions, true, Err(failure));
        let c = condition::find_condition(&conditions, SOURCE_VERIFIED).unwrap();
        assert_eq!(c.status, Status::False);
        assert_eq!(c.reason, "InvalidCommitSignature");
        assert_eq!(c.message, failure);

        // Without spec.verify the condition goes away.
        source_verified(&mut conditions, false, Ok(&verified));
        assert!(condition::find_condition(&conditions, SOURCE_VERIFIED).is_none());
    }
}
