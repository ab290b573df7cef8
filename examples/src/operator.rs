//! A Flux-compatible operator on kube-runtime: serves `GitRepository` and `Kustomization` with
//! the toolkit's `GitSource`, `KustomizeRenderer` and `SsaApplier`, writing Flux's status
//! (conditions, artifact, lastAppliedRevision, inventory).
//!
//! Reconciles are triggered by spec changes (generation), by `reconcile.fluxcd.io/requestedAt`,
//! by a new artifact of the referenced GitRepository, and by the interval (± jitter) or the
//! backoff after a failure.

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
use gitops_core::{ArtifactKey, ArtifactStore, Fetched, Renderer, Source, Status};
use gitops_render::KustomizeRenderer;
use gitops_sources::git::{GitAuth, GitSource};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use crate::crds::{GitRepository, GitRepositoryStatus, Kustomization};

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
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            dependency_requeue: Duration::from_secs(30),
            backoff: Backoff::default(),
        }
    }
}

/// Shared state of both controllers.
struct Ctx {
    client: kube::Client,
    store: ArtifactStore,
    renderer: Arc<dyn Renderer>,
    applier: SsaApplier,
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
}

/// Runs the GitRepository and Kustomization controllers until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    store: ArtifactStore,
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let ctx = Arc::new(Ctx {
        applier: SsaApplier::new(client.clone()).with_field_manager(FIELD_MANAGER),
        client: client.clone(),
        store,
        renderer: Arc::new(KustomizeRenderer::new()),
        config,
        failures: Mutex::new(HashMap::new()),
    });
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let repos: Api<GitRepository> = Api::all(client.clone());
    let (repo_reader, repo_writer) = reflector::store();
    let repo_stream = watcher(repos.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(repo_writer)
        .applied_objects()
        .predicate_filter(spec_or_request, Default::default());
    let repo_ctrl = Controller::for_stream(repo_stream, repo_reader)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_repository, error_policy, ctx.clone())
        .for_each(|_| async {});

    let kss: Api<Kustomization> = Api::all(client.clone());
    let (ks_reader, ks_writer) = reflector::store();
    let ks_stream = watcher(kss, watcher::Config::default())
        .default_backoff()
        .reflect(ks_writer)
        .applied_objects()
        .predicate_filter(spec_or_request, Default::default());
    let artifacts = watcher(repos, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(artifact_revision, Default::default());
    let mapper_reader = ks_reader.clone();
    let ks_ctrl = Controller::for_stream(ks_stream, ks_reader)
        .watches_stream(artifacts, move |repo: GitRepository| {
            let ns = repo.namespace().unwrap_or_default();
            let name = repo.name_any();
            mapper_reader
                .state()
                .iter()
                .filter(|k| {
                    k.spec.source_ref.name == name
                        && k.spec
                            .source_ref
                            .namespace
                            .clone()
                            .or_else(|| k.namespace())
                            .unwrap_or_default()
                            == ns
                })
                .map(|k| ObjectRef::from_obj(k.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile_kustomization, error_policy, ctx)
        .for_each(|_| async {});
    futures::join!(repo_ctrl, ks_ctrl);
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

fn artifact_revision(repo: &GitRepository) -> Option<u64> {
    let mut h = DefaultHasher::new();
    repo.status
        .as_ref()
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

async fn git_auth(
    client: &kube::Client,
    ns: &str,
    repo: &GitRepository,
) -> Result<GitAuth, String> {
    let Some(secret_ref) = &repo.spec.secret_ref else {
        return Ok(GitAuth::None);
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get(&secret_ref.name)
        .await
        .map_err(|e| format!("secret '{ns}/{}': {e}", secret_ref.name))?;
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    if let Some(token) = get("bearerToken") {
        return Ok(GitAuth::Bearer { token });
    }
    match (get("username"), get("password")) {
        (Some(username), Some(password)) => Ok(GitAuth::Basic { username, password }),
        _ => Err(format!(
            "secret '{ns}/{}' has neither bearerToken nor username and password",
            secret_ref.name
        )),
    }
}

async fn reconcile_repository(
    repo: Arc<GitRepository>,
    ctx: Arc<Ctx>,
) -> Result<Action, OperatorError> {
    let ns = repo
        .namespace()
        .ok_or_else(|| OperatorError::NoNamespace(repo.name_any()))?;
    let name = repo.name_any();
    if repo.spec.suspend {
        return Ok(Action::await_change());
    }
    let api: Api<GitRepository> = Api::namespaced(ctx.client.clone(), &ns);
    let old = repo.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = repo.metadata.generation;
    let key = key_of(repo.as_ref());
    let interval = parse_duration(&repo.spec.interval).unwrap_or(Duration::from_secs(60));

    let result = fetch_repository(&repo, &ns, &name, &ctx, &old).await;
    let mut conds = UnitStatus {
        conditions: status.conditions.clone(),
        ..UnitStatus::default()
    };
    let next = match result {
        Ok(fetched) => {
            let artifact = fetched.artifact().clone();
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
                tracing::info!(gitrepository = %key, revision = %a.revision, "new artifact");
                if let Err(e) = ctx.store.gc(a) {
                    tracing::warn!(gitrepository = %key, "artifact garbage collection: {e}");
                }
            }
            status.artifact = Some(artifact);
            status.observed_ignore = repo.spec.source.ignore.clone();
            ctx.succeeded(&key);
            ctx.config.backoff.jittered(interval)
        }
        Err((message, retryable)) => {
            tracing::warn!(gitrepository = %key, "{message}");
            condition::set_condition(
                &mut conds.conditions,
                kind::READY,
                Status::False,
                reason::GIT_OPERATION_FAILED,
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

async fn fetch_repository(
    repo: &GitRepository,
    ns: &str,
    name: &str,
    ctx: &Ctx,
    old: &GitRepositoryStatus,
) -> Result<Fetched, (String, bool)> {
    let auth = git_auth(&ctx.client, ns, repo)
        .await
        .map_err(|m| (m, true))?;
    let key = ArtifactKey::new("GitRepository", ns, name).map_err(|e| (e.to_string(), false))?;
    let spec = repo.spec.source.clone();
    let source = GitSource::new(key, spec, auth).map_err(|e| (e.to_string(), false))?;
    // GitSource compares the ignore rules recorded in the last artifact itself.
    let last = old.artifact.as_ref();
    source
        .fetch(&ctx.store, last)
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
    if ks.spec.suspend {
        return Ok(Action::await_change());
    }
    let key = key_of(ks.as_ref());
    let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &ns);
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
            unit.mark_waiting(reason, message);
            ctx.config.dependency_requeue
        }
        Ok(artifact) => {
            let spec = ApplySpec {
                path: ks.spec.path.clone().unwrap_or_default(),
                prune: ks.spec.prune,
                target_namespace: ks.spec.target_namespace.clone(),
            };
            let owner = OwnerLabels::flux(&ns, &name);
            let result = Reconcile {
                store: &ctx.store,
                artifact: &artifact,
                spec: &spec,
                owner: &owner,
                renderer: ctx.renderer.clone(),
                applier: &ctx.applier,
                previous: &unit.inventory.clone(),
                timeout,
            }
            .run()
            .await;
            match result {
                Ok(outcome) => {
                    for e in outcome.change_set.changes() {
                        tracing::info!(kustomization = %key, "{e}");
                    }
                    unit.mark_succeeded(&artifact.revision, outcome.inventory, outcome.change_set);
                    ctx.succeeded(&key);
                    ctx.config.backoff.jittered(interval)
                }
                Err(failure) => {
                    tracing::warn!(kustomization = %key, "{}", failure.error);
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

/// Why a Kustomization must wait: Flux's reason and message.
type Wait = (&'static str, String);

/// Checks `dependsOn` and the source; returns the artifact, or why the Kustomization must wait
/// (`DependencyNotReady`, or `ArtifactFailed` while the source has no artifact, as Flux says).
async fn preflight(
    ks: &Kustomization,
    ns: &str,
    ctx: &Ctx,
) -> Result<Result<gitops_core::Artifact, Wait>, OperatorError> {
    for dep in &ks.spec.depends_on {
        let dep_ns = dep.namespace.clone().unwrap_or_else(|| ns.to_string());
        let api: Api<Kustomization> = Api::namespaced(ctx.client.clone(), &dep_ns);
        let ready = match api.get_opt(&dep.name).await? {
            Some(d) => {
                let st = d.status.clone().unwrap_or_default();
                condition::is_ready(&st.conditions)
                    && st.observed_generation == d.metadata.generation
            }
            None => false,
        };
        if !ready {
            let message = format!("dependency '{dep_ns}/{}' is not ready", dep.name);
            return Ok(Err((reason::DEPENDENCY_NOT_READY, message)));
        }
    }
    let src = &ks.spec.source_ref;
    if src.kind != "GitRepository" {
        let message = format!(
            "source kind {} is not supported (only GitRepository)",
            src.kind
        );
        return Ok(Err((reason::ARTIFACT_FAILED, message)));
    }
    let src_ns = src.namespace.clone().unwrap_or_else(|| ns.to_string());
    let repos: Api<GitRepository> = Api::namespaced(ctx.client.clone(), &src_ns);
    let artifact = repos
        .get_opt(&src.name)
        .await?
        .and_then(|r| r.status)
        .and_then(|s| s.artifact);
    Ok(artifact.ok_or_else(|| {
        let message = format!(
            "Source artifact of GitRepository '{src_ns}/{}' not found",
            src.name
        );
        (reason::ARTIFACT_FAILED, message)
    }))
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
