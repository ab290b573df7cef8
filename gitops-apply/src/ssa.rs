//! Staged server-side apply with a dry-run diff, as Flux's ssa `ResourceManager.ApplyAllStaged`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use gitops_core::{Action, ChangeSet, InventoryEntry, Object, ObjectId};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy, TypeMeta,
};
use serde_json::Value;

use crate::discovery::{DiscoveryCache, Resolved};
use crate::error::ApplyError;
use crate::order::{ApplyStage, staged};

/// A stage's objects of one resource (apiVersion, plural) in one namespace (empty for
/// cluster-scoped kinds).
type GroupKey = (String, String, String);

/// Above this many objects of one resource in one namespace, a stage reads the live objects with
/// one paged LIST instead of one GET each. A LIST returns every object of the namespace, ours
/// or not, so for a few objects in a busy namespace the GETs cost less; from 9 objects on, one
/// or two LIST pages are cheaper than the GETs.
pub const LIST_THRESHOLD: usize = 8;

/// Items per page of those LISTs (`limit`; the next page follows the continue token).
pub const LIST_PAGE_SIZE: u32 = 500;

/// The default field manager.
pub const DEFAULT_FIELD_MANAGER: &str = "gitops";

/// How many requests [`SsaApplier::new`] sends at once within a stage (measured with
/// `cargo xtask bench apply`: 16 re-applies 1,000 unchanged ConfigMaps about 1.3 times faster
/// than 4 against a local kube-apiserver).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Applies objects with server-side apply and prunes stale ones.
///
/// - Objects go in stages: CRDs, Namespaces and ClusterRoles first (then it waits until CRDs are
///   Established and Namespaces Active), kinds ending in `Class` next, the rest last; within a stage
///   in Flux's kind order.
/// - The live objects of a stage are read with one paged LIST per resource and namespace when
///   more than [`LIST_THRESHOLD`] objects share them, with one GET each otherwise.
/// - An existing object whose live state still holds exactly what the field manager applied
///   last (judged from its `managedFields`, see the no-op fast path below) is reported
///   `unchanged` without any request.
/// - Any other object is first applied as a server-side dry run and compared with the live
///   object (labels, annotations, everything outside `metadata` and `status`); when they are
///   equal it is reported `unchanged` and not written. Otherwise it is applied for real with the field manager
///   (default `gitops`), forcing ownership of conflicting fields, and reported `created` or
///   `configured`; a `configured` entry carries the drifted field paths ([`drift_paths`]), so
///   objects changed in the cluster (`kubectl edit`, another field manager) are reported and
///   corrected on every apply, and objects deleted by hand are created again.
/// - Before that, as Flux's metadata cleanup, the fields owned by kubectl's managers and
///   `before-first-apply` ([`TAKEN_OVER_MANAGERS`]) are taken over by the field manager and
///   kubectl's last-applied annotation removed, so fields removed from Git are removed from the
///   cluster; objects with `kustomize.toolkit.fluxcd.io/ssa: Merge` are left out of it.
/// - When the dry run fails on an immutable field, the object is deleted, waited for and created
///   again (reported `created`) if the applier is forced ([`SsaApplier::with_force`]) or the
///   object has `kustomize.toolkit.fluxcd.io/force: enabled`; otherwise
///   [`ApplyError::Immutable`] names the object and the fields.
/// - Namespaced objects without a namespace go to the client's default namespace, as kubectl does.
///
/// The no-op fast path replaces fluxcd/pkg ssa's per-object dry run and `hasDrifted`
/// comparison for objects nobody changed: when the live object exists, is not excluded, not
/// `ssa: IfNotPresent`, has nothing to take over from kubectl or
/// `before-first-apply` (unless `ssa: Merge`), the live object holds every value the desired
/// object sets (resource quantities of built-in kinds by amount in one format, `2000m` = `2`; a left-out
/// `protocol` list key as its default `TCP`), and no field our `Apply` entry in
/// `managedFields` owns is left out of the desired object but still live, the apply could
/// change nothing, so the dry run could only say `unchanged`. Anything else (a changed value,
/// a field we still own but no longer send, list order, list items we do not own, values the
/// server normalises otherwise) goes through the dry run as before; the reasoning is in the
/// source of `gitops_apply::managed`. A no-op reconcile of a stage of many objects thus costs
/// one LIST per resource and namespace.
pub struct SsaApplier {
    pub(crate) client: kube::Client,
    pub(crate) field_manager: String,
    pub(crate) discovery: DiscoveryCache,
    pub(crate) wait_timeout: Duration,
    pub(crate) wait_interval: Duration,
    pub(crate) concurrency: usize,
    pub(crate) force: bool,
    pub(crate) dry_run_creates: bool,
}

/// A failed staged apply: the error, and the inventory entries of the objects written or
/// possibly written before it (see [`gitops_core::Error::with_written`]).
pub(crate) type StagedFailure = (ApplyError, Vec<InventoryEntry>);

impl std::fmt::Debug for SsaApplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsaApplier")
            .field("field_manager", &self.field_manager)
            .field("wait_timeout", &self.wait_timeout)
            .field("concurrency", &self.concurrency)
            .field("force", &self.force)
            .field("dry_run_creates", &self.dry_run_creates)
            .finish_non_exhaustive()
    }
}

impl SsaApplier {
    /// An applier with field manager `gitops`, a 60 s wait for CRDs/Namespaces, and
    /// [`DEFAULT_CONCURRENCY`] requests at once.
    pub fn new(client: kube::Client) -> Self {
        SsaApplier {
            client,
            field_manager: DEFAULT_FIELD_MANAGER.into(),
            discovery: DiscoveryCache::default(),
            wait_timeout: Duration::from_secs(60),
            wait_interval: Duration::from_millis(250),
            concurrency: DEFAULT_CONCURRENCY,
            force: false,
            dry_run_creates: true,
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

    /// Sets how many plans (GET and/or dry run) and applies go to the API server at once
    /// (Flux's `--concurrent-ssa`); at least 1.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Recreates objects whose apply fails on an immutable field (Flux's Kustomization
    /// `spec.force`); without it only objects with `kustomize.toolkit.fluxcd.io/force: enabled`
    /// are recreated. Default `false`.
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Whether objects that do not exist yet get a server-side dry run before any object of
    /// their stage is written. Default `true`, Flux's order: every object of a stage is
    /// dry-run first, so an object the API server rejects (schema, admission, RBAC) fails the
    /// stage with nothing of it written.
    ///
    /// `false` creates new objects without the dry run: one request per new object instead
    /// of two, so a first apply of many objects takes about half the API server's time
    /// (`cargo xtask bench apply` prints both). Existing objects still get their dry run,
    /// which is also the drift check. The cost: when a new object is rejected, the objects
    /// of its stage applied before it or at the same time stay written. The reconcile still
    /// fails naming the rejected object, nothing is pruned, and the objects written are kept
    /// in the inventory ([`gitops_core::Error::written`]), so a later revision without them
    /// prunes them.
    pub fn with_dry_run_creates(mut self, dry_run: bool) -> Self {
        self.dry_run_creates = dry_run;
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
        self.apply_staged(objects).await.map_err(|(e, _)| e)
    }

    /// [`SsaApplier::apply_all_staged`], and on failure the inventory entries of the objects
    /// written or possibly written before it: the created and configured objects of the
    /// stages done, and, when the failure came while writing a stage, the objects of that
    /// stage whose apply was sent (including the one that failed: harmless to list).
    pub(crate) async fn apply_staged(
        &self,
        objects: &[Object],
    ) -> Result<ChangeSet, StagedFailure> {
        let mut change_set = ChangeSet::default();
        for (stage, objs) in staged(objects) {
            let entries = match self.apply_all(&objs).await {
                Ok(entries) => entries,
                Err((e, mut writing)) => {
                    let mut written = written_entries(&change_set);
                    written.append(&mut writing);
                    return Err((e, written));
                }
            };
            change_set.extend(entries);
            if stage == ApplyStage::ClusterDefinitions {
                for o in &objs {
                    if let Err(e) = self.wait_ready(o).await {
                        return Err((e, written_entries(&change_set)));
                    }
                }
            }
        }
        Ok(change_set)
    }

    /// Applies one stage: the live objects of large groups are listed, then every object is
    /// planned (GET unless listed, then the no-op fast path or a dry run, [`SsaApplier::
    /// with_concurrency`] at once), so an object the API server rejects fails the stage before
    /// anything of it is written; then the changed objects are applied, as many at once. The
    /// change set keeps the stage's order. When a real apply fails, the applies already in flight
    /// may still land; the error names the first failing object.
    async fn apply_all(&self, objs: &[&Object]) -> Result<ChangeSet, StagedFailure> {
        // Resolve each kind once up front: concurrent plans would otherwise all miss the
        // discovery cache at the same time and each ask the server.
        let mut kinds: Vec<(&str, &str)> =
            objs.iter().map(|o| (o.api_version(), o.kind())).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for (api_version, kind) in kinds {
            // A kind that cannot be resolved is reported by its first object's plan below.
            let _ = self
                .discovery
                .resolve(&self.client, api_version, kind, kind)
                .await;
        }
        let listed = self.list_groups(objs).await.map_err(|e| (e, Vec::new()))?;
        let plans: Vec<_> = objs
            .iter()
            .map(|o| {
                let live = self
                    .group_of(o)
                    .and_then(|(key, _)| listed.get(&key))
                    .map(|items| items.get(o.name()).cloned());
                self.plan(o, live)
            })
            .collect();
        let planned: Vec<Planned> = in_order(plans, self.concurrency)
            .await
            .map_err(|e| (e, Vec::new()))?;
        // The objects whose apply was sent: on a failure, these may have been written.
        let sent = std::sync::Mutex::new(Vec::<InventoryEntry>::new());
        let sent = &sent;
        let applies = planned.into_iter().map(|p| async move {
            let action = match p.action {
                Action::Unchanged => Action::Unchanged,
                Action::Skipped => Action::Skipped,
                action => {
                    if let Ok(mut sent) = sent.lock() {
                        sent.push(InventoryEntry::new(&p.id, p.version.clone()));
                    }
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
            Ok::<_, ApplyError>((p.id, p.version, action, p.drift))
        });
        let applied = in_order(applies.collect(), self.concurrency).await;
        let applied: Vec<_> = applied.map_err(|e| {
            let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
            (e, sent)
        })?;
        let mut cs = ChangeSet::default();
        for (id, version, action, drift) in applied {
            cs.push_with_drift(id, version, action, drift);
        }
        Ok(cs)
    }

    /// The LIST group of `object`: its resolved resource (apiVersion and plural) and the
    /// namespace it goes to (empty for cluster-scoped kinds), with the resolved kind. `None`
    /// when the kind is not in the discovery cache (the object's plan reports why).
    fn group_of(&self, object: &Object) -> Option<(GroupKey, Resolved)> {
        let resolved = self.discovery.cached(object.api_version(), object.kind())?;
        let namespace = if resolved.namespaced {
            object
                .namespace()
                .unwrap_or_else(|| self.client.default_namespace())
                .to_string()
        } else {
            String::new()
        };
        let key = (
            resolved.resource.api_version.clone(),
            resolved.resource.plural.clone(),
            namespace,
        );
        Some((key, resolved))
    }

    /// Reads the live objects of each group of more than [`LIST_THRESHOLD`] objects of the
    /// stage (same resource, same namespace) with one paged LIST ([`LIST_PAGE_SIZE`] items a
    /// page, following continue tokens) instead of one GET per object; returns them by group
    /// and name (only the objects the stage names are kept, so a busy namespace costs the
    /// transfer, not the memory). An object of such a group missing from the LIST does not
    /// exist. A group whose LIST the server forbids (403, an identity allowed to get and patch
    /// but not to list), does not serve (405), or whose continue token expired between pages
    /// (410) is left out, so its objects are read with GETs as before.
    async fn list_groups(
        &self,
        objs: &[&Object],
    ) -> Result<HashMap<GroupKey, HashMap<String, DynamicObject>>, ApplyError> {
        // Sorted, so that of two failing LISTs the same one is reported every time.
        let mut groups: BTreeMap<GroupKey, (Resolved, HashSet<&str>)> = BTreeMap::new();
        for o in objs {
            if let Some((key, resolved)) = self.group_of(o) {
                groups
                    .entry(key)
                    .or_insert_with(|| (resolved, HashSet::new()))
                    .1
                    .insert(o.name());
            }
        }
        let lists = groups
            .into_iter()
            .filter(|(_, (_, names))| names.len() > LIST_THRESHOLD)
            .map(|(key, (resolved, names))| async move {
                let namespace = (!key.2.is_empty()).then_some(key.2.as_str());
                let api = self.api_from(&resolved, namespace);
                let items = self.list_all(&api, &resolved, &key, &names).await?;
                Ok::<_, ApplyError>(items.map(|items| (key, items)))
            });
        let listed = in_order(lists.collect(), self.concurrency).await?;
        Ok(listed.into_iter().flatten().collect())
    }

    /// One paged LIST of `api`, keeping the objects named in `names`; `Ok(None)` when the
    /// server forbids or does not serve it, or the continue token expired.
    async fn list_all(
        &self,
        api: &Api<DynamicObject>,
        resolved: &Resolved,
        key: &GroupKey,
        names: &HashSet<&str>,
    ) -> Result<Option<HashMap<String, DynamicObject>>, ApplyError> {
        let mut items = HashMap::new();
        let mut params = ListParams::default().limit(LIST_PAGE_SIZE);
        loop {
            let page = match retry_transport(|| api.list(&params)).await {
                Ok(page) => page,
                Err(kube::Error::Api(s)) if [403, 405, 410].contains(&s.code) => {
                    tracing::debug!(
                        resource = %resolved.resource.plural,
                        namespace = %key.2,
                        "LIST refused ({}), reading objects one by one", s.code
                    );
                    return Ok(None);
                }
                Err(source) => {
                    let object = if key.2.is_empty() {
                        resolved.resource.kind.clone()
                    } else {
                        format!("{}/{}", resolved.resource.kind, key.2)
                    };
                    return Err(ApplyError::Api {
                        object,
                        op: "list",
                        source,
                    });
                }
            };
            for mut item in page.items {
                let Some(name) = item.metadata.name.clone() else {
                    continue;
                };
                if !names.contains(name.as_str()) {
                    continue;
                }
                // List items carry no apiVersion and kind; a GET would.
                item.types = Some(TypeMeta {
                    api_version: resolved.resource.api_version.clone(),
                    kind: resolved.resource.kind.clone(),
                });
                items.insert(name, item);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(Some(items)),
            }
        }
    }

    /// Reads the live object (`listed` when its group was listed: `Some(None)` means absent,
    /// otherwise a GET) and, unless the no-op fast path ([`crate::managed`]) shows the apply
    /// would change nothing, dry-runs the apply; recreates it on an immutable-field error when
    /// forced; takes over fields of kubectl managers; decides created / configured / unchanged
    /// and which fields drifted.
    async fn plan(
        &self,
        object: &Object,
        listed: Option<Option<DynamicObject>>,
    ) -> Result<Planned, ApplyError> {
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
        let mut live = match listed {
            Some(listed) => listed,
            None => api.get_opt(&name).await.map_err(|source| ApplyError::Api {
                object: id.to_string(),
                op: "get",
                source,
            })?,
        };
        // Flux's exclusion and if-not-present selectors (fluxcd/pkg ssa `shouldSkipApply`):
        // `reconcile: disabled` or `ssa: Ignore` on the desired or the live object skips it;
        // `ssa: IfNotPresent` on the desired object skips it once it exists.
        let excluded = is_excluded(|k, v| object.has_switch(k, v))
            || live
                .as_ref()
                .is_some_and(|l| is_excluded(|k, v| crate::prune::has_switch(l, k, v)));
        let if_not_present = live.is_some()
            && object.has_switch(crate::prune::SSA_POLICY, crate::prune::SSA_IF_NOT_PRESENT);
        let planned = |action, drift| Planned {
            id: id.clone(),
            version: object.version().to_string(),
            name: name.clone(),
            api: api.clone(),
            payload: payload.clone(),
            action,
            drift,
        };
        if excluded || if_not_present {
            return Ok(planned(Action::Skipped, Vec::new()));
        }
        let switch = |key: &str, value: &str| {
            object.has_switch(key, value)
                || live
                    .as_ref()
                    .is_some_and(|l| crate::prune::has_switch(l, key, value))
        };
        let force = self.force || switch(crate::prune::FORCE_SWITCH, "enabled");
        let merge = switch(crate::prune::SSA_POLICY, crate::prune::SSA_MERGE);
        // The no-op fast path (see `crate::managed`): the live object still holds exactly what
        // we applied and nothing is to be taken over, so the dry run could only come back equal
        // to it. Force does not matter here: an apply that changes nothing cannot hit an
        // immutable field.
        if let Some(current) = live.as_ref()
            && (merge || self.cleanup_patch(current).is_none())
            && crate::managed::applied_unchanged(current, &payload, &self.field_manager)
        {
            return Ok(planned(Action::Unchanged, Vec::new()));
        }
        // With `with_dry_run_creates(false)`, a new object's first request is its apply.
        if live.is_none() && !self.dry_run_creates {
            return Ok(planned(Action::Created, Vec::new()));
        }
        let mut dry = match self.dry_run(&api, &name, &payload).await {
            Ok(dry) => dry,
            // As fluxcd/pkg ssa: an invalid or conflicting dry run of an existing object may be
            // an immutable field; with force, delete the object, wait until it is gone, and
            // create it again.
            Err(source) if live.is_some() && is_immutable_error(&source) => {
                if !force {
                    return Err(immutable_or_api(id.to_string(), source));
                }
                tracing::info!(object = %id, "immutable field changed, recreating the object");
                self.delete_and_wait(&api, &id).await?;
                live = None;
                self.dry_run(&api, &name, &payload)
                    .await
                    .map_err(|source| ApplyError::Api {
                        object: id.to_string(),
                        op: "dry-run apply",
                        source,
                    })?
            }
            Err(source) => {
                return Err(ApplyError::Api {
                    object: id.to_string(),
                    op: "dry-run apply",
                    source,
                });
            }
        };
        // Flux's metadata cleanup (fluxcd/pkg ssa `cleanupMetadata`), skipped for `ssa: Merge`:
        // the fields of kubectl and `before-first-apply` become ours, so that fields removed
        // from Git are removed from the cluster. The dry run is repeated to see the effect.
        let mut taken_over = false;
        if let Some(current) = live.as_ref().filter(|_| !merge)
            && let Some(cleaned) = self.cleanup_metadata(&api, &id, current).await?
        {
            live = Some(cleaned);
            taken_over = true;
            dry = self
                .dry_run(&api, &name, &payload)
                .await
                .map_err(|source| ApplyError::Api {
                    object: id.to_string(),
                    op: "dry-run apply",
                    source,
                })?;
        }
        Ok(match live {
            None => planned(Action::Created, Vec::new()),
            Some(live) => {
                let drift = drift_paths(&live, &dry);
                if drift.is_empty() && !taken_over {
                    planned(Action::Unchanged, drift)
                } else {
                    planned(Action::Configured, drift)
                }
            }
        })
    }

    /// A server-side dry-run apply of `payload`, forcing conflicts.
    async fn dry_run(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        payload: &Value,
    ) -> Result<DynamicObject, kube::Error> {
        api.patch(
            name,
            &PatchParams::apply(&self.field_manager).force().dry_run(),
            &Patch::Apply(payload),
        )
        .await
    }

    /// Deletes the object (background propagation) and waits until it is gone (finalizers
    /// done), polling every wait interval up to the wait timeout, as fluxcd/pkg ssa does before
    /// recreating an object.
    async fn delete_and_wait(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
    ) -> Result<(), ApplyError> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(source) => {
                return Err(ApplyError::Api {
                    object: id.to_string(),
                    op: "delete",
                    source,
                });
            }
        }
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        loop {
            let live = retry_transport(|| api.get_opt(&id.name))
                .await
                .map_err(|source| ApplyError::Api {
                    object: id.to_string(),
                    op: "get",
                    source,
                })?;
            if live.is_none() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::WaitTimeout {
                    object: id.to_string(),
                    condition: "deleted",
                    seconds: self.wait_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.wait_interval).await;
        }
    }

    /// Flux's metadata cleanup: removes kubectl's last-applied annotation and gives the fields
    /// of the [`TAKEN_OVER_MANAGERS`] (and our own `Update` entries) to our field manager as
    /// an `Apply` entry, merging them into the one we have. Returns the patched object, or
    /// `None` when there was nothing to clean.
    async fn cleanup_metadata(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        live: &DynamicObject,
    ) -> Result<Option<DynamicObject>, ApplyError> {
        let Some(patch) = self.cleanup_patch(live) else {
            return Ok(None);
        };
        let params = PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        };
        api.patch(&id.name, &params, &Patch::Merge(&patch))
            .await
            .map(Some)
            .map_err(|source| ApplyError::Api {
                object: id.to_string(),
                op: "managed fields cleanup",
                source,
            })
    }

    /// The merge patch of the metadata cleanup, `None` when there is nothing to clean: no
    /// managedFields entry to take over and no last-applied annotation.
    fn cleanup_patch(&self, live: &DynamicObject) -> Option<Value> {
        let managed = serde_json::to_value(&live.metadata.managed_fields).unwrap_or(Value::Null);
        let managed = managed.as_array().cloned().unwrap_or_default();
        let fields = take_over_managed_fields(&managed, &self.field_manager);
        let has_last_applied = live
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(LAST_APPLIED_ANNOTATION));
        if fields.is_none() && !has_last_applied {
            return None;
        }
        let mut metadata = serde_json::Map::new();
        if let Some(fields) = fields {
            metadata.insert("managedFields".into(), Value::Array(fields));
        }
        if has_last_applied {
            metadata.insert(
                "annotations".into(),
                serde_json::json!({ LAST_APPLIED_ANNOTATION: null }),
            );
        }
        Some(serde_json::json!({ "metadata": metadata }))
    }
}

/// kubectl's client-side apply annotation, removed by the metadata cleanup as Flux does.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Field managers whose fields our field manager takes over (name prefix, operation), as
/// kustomize-controller configures fluxcd/pkg ssa: `kubectl` (`kubectl apply --server-side`,
/// `kubectl-client-side-apply`, `kubectl-edit`...) both `Apply` and `Update`, and
/// `before-first-apply` `Update`. Our own manager's `Update` entries are taken over too.
pub const TAKEN_OVER_MANAGERS: &[(&str, &str)] = &[
    ("kubectl", "Apply"),
    ("kubectl", "Update"),
    ("before-first-apply", "Update"),
];

/// The managedFields after the takeover, or `None` when no entry matches. Matching entries
/// (not of a subresource) are merged into our `Apply` entry (the first match is renamed when
/// we have none), as fluxcd/pkg's `PatchReplaceFieldsManagers`.
/// Inventory entries of the created and configured objects of `cs`.
fn written_entries(cs: &ChangeSet) -> Vec<InventoryEntry> {
    cs.changes()
        .filter(|e| matches!(e.action, Action::Created | Action::Configured))
        .map(|e| InventoryEntry::new(&e.id, e.version.clone()))
        .collect()
}

fn take_over_managed_fields(entries: &[Value], ours: &str) -> Option<Vec<Value>> {
    let field = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let matches = |e: &Value| {
        let (manager, op) = (field(e, "manager"), field(e, "operation"));
        if !field(e, "subresource").is_empty() {
            return false;
        }
        (manager == ours && op == "Update")
            || TAKEN_OVER_MANAGERS
                .iter()
                .any(|(prefix, o)| manager.starts_with(prefix) && op == *o)
    };
    if !entries.iter().any(matches) {
        return None;
    }
    let is_ours = |e: &Value| {
        field(e, "manager") == ours
            && field(e, "operation") == "Apply"
            && field(e, "subresource").is_empty()
    };
    let mut ours_entry: Option<Value> = entries.iter().find(|e| is_ours(e)).cloned();
    let mut kept = Vec::with_capacity(entries.len());
    for e in entries {
        if is_ours(e) {
            continue;
        }
        if !matches(e) {
            kept.push(e.clone());
            continue;
        }
        match ours_entry.as_mut() {
            None => {
                let mut renamed = e.clone();
                renamed["manager"] = Value::from(ours);
                renamed["operation"] = Value::from("Apply");
                ours_entry = Some(renamed);
            }
            Some(o) => {
                let theirs = e.get("fieldsV1").cloned().unwrap_or(Value::Null);
                match o.get_mut("fieldsV1") {
                    Some(mine) if mine.is_object() => merge_fields(mine, &theirs),
                    _ => o["fieldsV1"] = theirs,
                }
            }
        }
    }
    kept.extend(ours_entry);
    Some(kept)
}

/// Union of two `FieldsV1` sets (nested objects keyed `f:`, `k:`, `v:`, `i:` and `.`).
fn merge_fields(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            match into.get_mut(k) {
                Some(existing) => merge_fields(existing, v),
                None => {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Whether an API error may come from an immutable field, as fluxcd/pkg ssa's
/// `IsImmutableError` (and kubectl) decide: 409 Conflict, 422 Invalid, or a message saying a
/// field is immutable (admission webhooks, CEL rules).
fn is_immutable_error(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            s.code == 409 || s.code == 422 || s.reason == "Invalid" || says_immutable(&s.message)
        }
        _ => false,
    }
}

fn says_immutable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("is immutable")
        || m.contains("immutable field")
        || m.contains("may not change once set")
}

/// The error for a refused change without force: [`ApplyError::Immutable`] with the fields
/// the API server named when its message is about immutability, the plain API error otherwise.
fn immutable_or_api(object: String, source: kube::Error) -> ApplyError {
    match &source {
        kube::Error::Api(s) if says_immutable(&s.message) => ApplyError::Immutable {
            object,
            fields: invalid_fields(&s.message),
            message: s.message.clone(),
        },
        _ => ApplyError::Api {
            object,
            op: "dry-run apply",
            source,
        },
    }
}

/// The field paths in a Kubernetes validation message (`Job.batch "x" is invalid:
/// spec.template: Invalid value: ...: field is immutable`), in order, without duplicates.
fn invalid_fields(message: &str) -> Vec<String> {
    const MARKERS: &[&str] = &[
        ": Invalid value",
        ": Forbidden",
        ": Required value",
        ": Unsupported value",
        ": Duplicate value",
        ": Too long",
        ": Too many",
        ": Not found",
    ];
    let mut fields: Vec<String> = Vec::new();
    for marker in MARKERS {
        for (at, _) in message.match_indices(marker) {
            let before = &message[..at];
            // The path runs back to a space; the first of a list of errors opens with `[`.
            let start = before.rfind(' ').map_or(0, |i| i + 1);
            let f = before[start..]
                .strip_prefix('[')
                .unwrap_or(&before[start..]);
            if !f.is_empty() && !fields.iter().any(|x| x == f) {
                fields.push(f.to_string());
            }
        }
    }
    // Report in the order the server wrote them.
    fields.sort_by_key(|f| message.find(f.as_str()));
    fields
}

/// Whether metadata (through `matches(key, value)`, case-insensitive on values) carries one of
/// Flux's exclusion markers: `kustomize.toolkit.fluxcd.io/reconcile: disabled` or
/// `kustomize.toolkit.fluxcd.io/ssa: Ignore`.
fn is_excluded(matches: impl Fn(&str, &str) -> bool) -> bool {
    matches(crate::prune::RECONCILE_SWITCH, "disabled")
        || matches(crate::prune::SSA_POLICY, crate::prune::SSA_IGNORE)
}

/// Runs `futures` with at most `limit` at once, starting them in order and a new one as soon
/// as any finishes (so one slow request does not hold the others back, as an ordered buffer
/// would), and returns their outputs in order. After the first error no new future starts;
/// the ones already running finish, and the error of the first failing future in order is
/// returned (every future before it was started, so this is the same error as running them
/// one by one would give).
async fn in_order<T, F>(futures: Vec<F>, limit: usize) -> Result<Vec<T>, ApplyError>
where
    F: std::future::Future<Output = Result<T, ApplyError>>,
{
    let total = futures.len();
    let mut pending = futures.into_iter().enumerate();
    let mut running = stream::FuturesUnordered::new();
    let mut done: Vec<Option<T>> = (0..total).map(|_| None).collect();
    let mut failed: Option<(usize, ApplyError)> = None;
    let start = |running: &mut stream::FuturesUnordered<_>, (i, f): (usize, F)| {
        running.push(async move { (i, f.await) });
    };
    for next in pending.by_ref().take(limit.max(1)) {
        start(&mut running, next);
    }
    while let Some((i, result)) = running.next().await {
        match result {
            Ok(v) => done[i] = Some(v),
            Err(e) => {
                if failed.as_ref().is_none_or(|(at, _)| i < *at) {
                    failed = Some((i, e));
                }
            }
        }
        if failed.is_none()
            && let Some(next) = pending.next()
        {
            start(&mut running, next);
        }
    }
    match failed {
        Some((_, e)) => Err(e),
        None => Ok(done.into_iter().flatten().collect()),
    }
}

struct Planned {
    id: ObjectId,
    version: String,
    name: String,
    api: Api<DynamicObject>,
    payload: Value,
    action: Action,
    drift: Vec<String>,
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

/// The field paths where the dry-run result differs from the live object (what Flux compares):
/// `metadata.labels` and `metadata.annotations` entries and everything outside `metadata` and
/// `status`; server-managed metadata (managedFields, resourceVersion, generation...) is ignored.
/// Paths are dotted, with `[i]` for list items and `["key"]` for keys holding a dot
/// (`spec.template.spec.containers[0].image`, `metadata.labels["app.kubernetes.io/name"]`);
/// a list whose length changed is reported as a whole. Sorted as found, depth first.
pub fn drift_paths(live: &DynamicObject, dry: &DynamicObject) -> Vec<String> {
    let comparable = |o: &DynamicObject| {
        let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("status");
            let mut md = serde_json::Map::new();
            for (k, map) in [
                ("labels", &o.metadata.labels),
                ("annotations", &o.metadata.annotations),
            ] {
                if let Some(map) = map.as_ref().filter(|m| !m.is_empty()) {
                    md.insert(k.into(), serde_json::to_value(map).unwrap_or(Value::Null));
                }
            }
            m.insert("metadata".into(), Value::Object(md));
        }
        v
    };
    let mut out = Vec::new();
    diff_values(&comparable(live), &comparable(dry), "", &mut out);
    out
}

fn child_path(parent: &str, key: &str) -> String {
    if key.contains(['.', '[', ']', '"']) || key.is_empty() {
        format!("{parent}[{}]", Value::from(key))
    } else if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn diff_values(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = child_path(path, k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_values(va, vb, &p, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff_values(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_fields_are_read_from_validation_messages() {
        let msg = r#"Job.batch "migrate" is invalid: spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"#;
        assert_eq!(invalid_fields(msg), ["spec.template"]);
        let msg = r#"Service "web" is invalid: [spec.clusterIPs[0]: Invalid value: []string{"10.0.0.9"}: may not change once set, spec.ipFamilies: Forbidden: x]"#;
        assert_eq!(
            invalid_fields(msg),
            ["spec.clusterIPs[0]", "spec.ipFamilies"]
        );
        assert!(invalid_fields("something else").is_empty());
    }

    #[test]
    fn drift_paths_name_fields_and_ignore_server_metadata() {
        let obj = |v: Value| -> DynamicObject { serde_json::from_value(v).unwrap() };
        let live = obj(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "7", "generation": 3,
                         "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"image": "a"}]}},
                     "extra": true},
            "status": {"replicas": 5}
        }));
        let dry = obj(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "8", "generation": 4,
                         "labels": {"app.kubernetes.io/name": "api"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "b"}]}}},
            "status": {"replicas": 2}
        }));
        assert_eq!(
            drift_paths(&live, &dry),
            [
                r#"metadata.labels["app.kubernetes.io/name"]"#,
                "spec.extra",
                "spec.replicas",
                "spec.template.spec.containers[0].image"
            ]
        );
        assert!(drift_paths(&live, &live).is_empty());
    }

    #[tokio::test]
    async fn in_order_keeps_order_and_reports_the_first_failure_in_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fail = |i: usize| ApplyError::WaitTimeout {
            object: format!("o{i}"),
            condition: "deleted",
            seconds: 0,
        };
        // Later futures finish first; the outputs stay in order.
        let futures: Vec<_> = (0..10u64)
            .map(|i| async move {
                tokio::time::sleep(Duration::from_millis(10 - i)).await;
                Ok::<_, ApplyError>(i)
            })
            .collect();
        assert_eq!(
            in_order(futures, 4).await.unwrap(),
            (0..10).collect::<Vec<_>>()
        );
        // o9 fails at once, o5 later: o5 is reported, as in a run one by one.
        let futures: Vec<_> = (0..10usize)
            .map(|i| async move {
                match i {
                    9 => Err(fail(9)),
                    5 => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Err(fail(5))
                    }
                    _ => Ok(i),
                }
            })
            .collect();
        let err = in_order(futures, 16).await.unwrap_err();
        assert!(err.to_string().starts_with("o5:"), "{err}");
        // After a failure nothing new starts.
        let started = AtomicUsize::new(0);
        let futures: Vec<_> = (0..10usize)
            .map(|i| {
                let started = &started;
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    if i == 0 { Err(fail(0)) } else { Ok(i) }
                }
            })
            .collect();
        assert!(in_order(futures, 2).await.is_err());
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn takeover_merges_kubectl_fields_into_our_apply_entry() {
        let entries = serde_json::json!([
            {"manager": "gitops", "operation": "Apply", "fieldsV1": {"f:data": {"f:a": {}}}},
            {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsV1": {"f:data": {"f:b": {}}}},
            {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:c": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:x": {}}},
            {"manager": "kubectl", "operation": "Update", "subresource": "status", "fieldsV1": {}}
        ]);
        let out = take_over_managed_fields(entries.as_array().unwrap(), "gitops").unwrap();
        let managers: Vec<_> = out.iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(managers, ["kube-controller-manager", "kubectl", "gitops"]);
        assert_eq!(
            out[2]["fieldsV1"],
            serde_json::json!({"f:data": {"f:a": {}, "f:b": {}, "f:c": {}}})
        );
        let none = serde_json::json!([{"manager": "helm", "operation": "Update"}]);
        assert!(take_over_managed_fields(none.as_array().unwrap(), "gitops").is_none());
    }
}
