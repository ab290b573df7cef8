//! Staged server-side apply with a dry-run diff, as Flux's ssa `ResourceManager.ApplyAllStaged`.

use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use gitops_core::{Action, ChangeSet, Object, ObjectId};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::discovery::{DiscoveryCache, Resolved};
use crate::error::ApplyError;
use crate::order::{ApplyStage, staged};

/// The default field manager.
pub const DEFAULT_FIELD_MANAGER: &str = "gitops";

/// Applies objects with server-side apply and prunes stale ones.
///
/// - Objects go in stages: CRDs, Namespaces and ClusterRoles first (then it waits until CRDs are
///   Established and Namespaces Active), kinds ending in `Class` next, the rest last; within a stage
///   in Flux's kind order.
/// - Each object is first applied as a server-side dry run and compared with the live object
///   (labels, annotations, everything outside `metadata` and `status`); when they are equal it is
///   reported `unchanged` and not written. Otherwise it is applied for real with the field manager
///   (default `gitops`), forcing ownership of conflicting fields, and reported `created` or
///   `configured`.
/// - Namespaced objects without a namespace go to the client's default namespace, as kubectl does.
pub struct SsaApplier {
    pub(crate) client: kube::Client,
    pub(crate) field_manager: String,
    pub(crate) discovery: DiscoveryCache,
    pub(crate) wait_timeout: Duration,
    pub(crate) wait_interval: Duration,
    pub(crate) concurrency: usize,
}

impl std::fmt::Debug for SsaApplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsaApplier")
            .field("field_manager", &self.field_manager)
            .field("wait_timeout", &self.wait_timeout)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl SsaApplier {
    /// An applier with field manager `gitops`, a 60 s wait for CRDs/Namespaces, 4 dry runs at once.
    pub fn new(client: kube::Client) -> Self {
        SsaApplier {
            client,
            field_manager: DEFAULT_FIELD_MANAGER.into(),
            discovery: DiscoveryCache::default(),
            wait_timeout: Duration::from_secs(60),
            wait_interval: Duration::from_millis(250),
            concurrency: 4,
        }
    }

    /// Sets the field manager (Flux uses `kustomize-controller`).
    pub fn with_field_manager(mut self, name: impl Into<String>) -> Self {
        self.field_manager = name.into();
        self
    }

    /// Sets how long to wait for CRDs to be Established and Namespaces Active.
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Sets how many dry runs go to the API server at once (Flux's `--concurrent-ssa`).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The field manager.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub(crate) async fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        object: &str,
    ) -> Result<(Api<DynamicObject>, Resolved), ApplyError> {
        let resolved = self
            .discovery
            .resolve(&self.client, api_version, kind, object)
            .await?;
        let api = self.api_from(&resolved, namespace);
        Ok((api, resolved))
    }

    /// The dynamic API of a resolved kind, in `namespace` (or the client's default namespace)
    /// when the kind is namespaced.
    pub(crate) fn api_from(
        &self,
        resolved: &Resolved,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        if resolved.namespaced {
            let ns = namespace.unwrap_or_else(|| self.client.default_namespace());
            Api::namespaced_with(self.client.clone(), ns, &resolved.resource)
        } else {
            Api::all_with(self.client.clone(), &resolved.resource)
        }
    }

    /// Applies all objects in stages and returns one entry per object, in apply order.
    /// On error, nothing after the failing object is applied.
    pub async fn apply_all_staged(&self, objects: &[Object]) -> Result<ChangeSet, ApplyError> {
        let mut change_set = ChangeSet::default();
        for (stage, objs) in staged(objects) {
            let entries = self.apply_all(&objs).await?;
            if stage == ApplyStage::ClusterDefinitions {
                for (o, _) in objs.iter().zip(&entries.entries) {
                    self.wait_ready(o).await?;
                }
            }
            change_set.extend(entries);
        }
        Ok(change_set)
    }

    /// Applies one stage: dry runs in parallel, then the real applies in order.
    async fn apply_all(&self, objs: &[&Object]) -> Result<ChangeSet, ApplyError> {
        let plans: Vec<_> = objs.iter().map(|o| self.plan(o)).collect();
        let planned: Vec<Planned> = stream::iter(plans)
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        let mut cs = ChangeSet::default();
        for p in planned {
            let action = match p.action {
                Action::Unchanged => Action::Unchanged,
                Action::Skipped => Action::Skipped,
                action => {
                    p.api
                        .patch(
                            &p.name,
                            &PatchParams::apply(&self.field_manager).force(),
                            &Patch::Apply(&p.payload),
                        )
                        .await
                        .map_err(|source| ApplyError::Api {
                            object: p.id.to_string(),
                            op: "apply",
                            source,
                        })?;
                    action
                }
            };
            cs.push(p.id, p.version, action);
        }
        Ok(cs)
    }

    /// GET the live object and dry-run the apply; decide created / configured / unchanged.
    async fn plan(&self, object: &Object) -> Result<Planned, ApplyError> {
        let mut id = object.id()?;
        let (api, resolved) = self
            .api_for(
                object.api_version(),
                object.kind(),
                object.namespace(),
                &id.to_string(),
            )
            .await?;
        let mut payload = object.clone().into_value();
        if resolved.namespaced {
            if object.namespace().is_none() {
                id.namespace = self.client.default_namespace().to_string();
            }
        } else if let Some(md) = payload.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("namespace");
            id.namespace.clear();
        }
        let name = id.name.clone();
        let live = api.get_opt(&name).await.map_err(|source| ApplyError::Api {
            object: id.to_string(),
            op: "get",
            source,
        })?;
        // Flux's exclusion and if-not-present selectors (fluxcd/pkg ssa `shouldSkipApply`):
        // `reconcile: disabled` or `ssa: Ignore` on the desired or the live object skips it;
        // `ssa: IfNotPresent` on the desired object skips it once it exists.
        let excluded = is_excluded(|k, v| object.has_switch(k, v))
            || live
                .as_ref()
                .is_some_and(|l| is_excluded(|k, v| crate::prune::has_switch(l, k, v)));
        let if_not_present = live.is_some()
            && object.has_switch(crate::prune::SSA_POLICY, crate::prune::SSA_IF_NOT_PRESENT);
        if excluded || if_not_present {
            return Ok(Planned {
                id,
                version: object.version().to_string(),
                name,
                api,
                payload,
                action: Action::Skipped,
            });
        }
        let dry = api
            .patch(
                &name,
                &PatchParams::apply(&self.field_manager).force().dry_run(),
                &Patch::Apply(&payload),
            )
            .await
            .map_err(|source| ApplyError::Api {
                object: id.to_string(),
                op: "dry-run apply",
                source,
            })?;
        let action = match live {
            None => Action::Created,
            Some(live) if !drifted(&live, &dry) => Action::Unchanged,
            Some(_) => Action::Configured,
        };
        Ok(Planned {
            id,
            version: object.version().to_string(),
            name,
            api,
            payload,
            action,
        })
    }
}

/// Whether metadata (through `matches(key, value)`, case-insensitive on values) carries one of
/// Flux's exclusion markers: `kustomize.toolkit.fluxcd.io/reconcile: disabled` or
/// `kustomize.toolkit.fluxcd.io/ssa: Ignore`.
fn is_excluded(matches: impl Fn(&str, &str) -> bool) -> bool {
    matches(crate::prune::RECONCILE_SWITCH, "disabled")
        || matches(crate::prune::SSA_POLICY, crate::prune::SSA_IGNORE)
}

struct Planned {
    id: ObjectId,
    version: String,
    name: String,
    api: Api<DynamicObject>,
    payload: Value,
    action: Action,
}

/// Runs an idempotent API call, retrying transport failures (connection reset or closed, as
/// kube-apiserver does to keep-alive connections when it reloads its handlers after a CRD
/// change) up to 3 times with 200 ms, 400 ms pauses. API answers (4xx/5xx) are not retried here.
pub(crate) async fn retry_transport<T, F, Fut>(mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < 3 && is_transport(&e) => {
                tracing::debug!("retrying after transport error: {e}");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_transport(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// Whether the dry-run result differs from the live object: labels, annotations, and everything
/// outside `metadata` and `status` (what Flux compares).
pub(crate) fn drifted(live: &DynamicObject, dry: &DynamicObject) -> bool {
    let comparable = |o: &DynamicObject| {
        let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
            m.remove("metadata");
        }
        (v, o.metadata.labels.clone(), o.metadata.annotations.clone())
    };
    comparable(live) != comparable(dry)
}
