//! Prune: delete stale inventory entries, as Flux's ssa `DeleteAll` with owner-label inclusions.

use gitops_core::{Action, ChangeSet, InventoryEntry, ObjectId};
use kube::api::{DeleteParams, DynamicObject, PropagationPolicy};

use crate::error::ApplyError;
use crate::order::sort_key;
use crate::ssa::SsaApplier;

/// Flux's per-object prune switch: `kustomize.toolkit.fluxcd.io/prune: disabled` (label or
/// annotation, any case) keeps the object.
pub const PRUNE_SWITCH: &str = "kustomize.toolkit.fluxcd.io/prune";
/// Flux's per-object reconcile switch: `kustomize.toolkit.fluxcd.io/reconcile: disabled` keeps it
/// from being applied (on the desired or the live object) and from being pruned.
pub const RECONCILE_SWITCH: &str = "kustomize.toolkit.fluxcd.io/reconcile";
/// Flux's apply policy (label or annotation, value case-insensitive): `Override` (default),
/// `Merge`, `IfNotPresent` (create only, never patch) or `Ignore` (never apply, never prune).
pub const SSA_POLICY: &str = "kustomize.toolkit.fluxcd.io/ssa";
/// [`SSA_POLICY`] value: create the object when missing, never patch it.
pub const SSA_IF_NOT_PRESENT: &str = "IfNotPresent";
/// [`SSA_POLICY`] value: apply without taking over fields of other managers (Flux skips the
/// managed-fields cleanup), so their fields are kept.
pub const SSA_MERGE: &str = "Merge";
/// Flux's per-object force switch: `kustomize.toolkit.fluxcd.io/force: enabled` (label or
/// annotation, any case, on the desired or the live object) recreates the object when an apply
/// fails on an immutable field.
pub const FORCE_SWITCH: &str = "kustomize.toolkit.fluxcd.io/force";
/// [`SSA_POLICY`] value: never apply, never prune.
pub const SSA_IGNORE: &str = "Ignore";

impl SsaApplier {
    /// Deletes the `stale` entries in reverse apply order (background propagation). An object is
    /// deleted only if it still carries every `owner` label with the same value and is not
    /// annotated or labelled `kustomize.toolkit.fluxcd.io/prune: disabled` (or `reconcile:
    /// disabled`, or `ssa: Ignore`); otherwise it is reported `skipped`. Objects already gone are reported `deleted`.
    /// Every entry is tried; failures are returned together at the end.
    pub async fn delete_all(
        &self,
        stale: &[InventoryEntry],
        owner: &[(String, String)],
    ) -> Result<ChangeSet, ApplyError> {
        let mut entries: Vec<(ObjectId, &InventoryEntry)> = stale
            .iter()
            .filter_map(|e| e.object_id().map(|id| (id, e)))
            .collect();
        entries.sort_by_cached_key(|(id, _)| {
            std::cmp::Reverse(sort_key(&id.group, &id.kind, &id.namespace, &id.name))
        });
        let mut cs = ChangeSet::default();
        let mut failures = Vec::new();
        for (id, entry) in entries {
            match self.delete_one(&id, entry, owner).await {
                Ok(action) => cs.push(id, entry.v.clone(), action),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(cs)
        } else {
            Err(ApplyError::Prune { failures })
        }
    }

    async fn delete_one(
        &self,
        id: &ObjectId,
        entry: &InventoryEntry,
        owner: &[(String, String)],
    ) -> Result<Action, ApplyError> {
        let api_version = entry.api_version().unwrap_or_else(|| entry.v.clone());
        let ns = (!id.namespace.is_empty()).then_some(id.namespace.as_str());
        let api = match self
            .api_for(&api_version, &id.kind, ns, &id.to_string())
            .await
        {
            Ok((api, _)) => api,
            // The recorded version is no longer served: the object may still be there under
            // another version of its group; only when the kind is gone (its CRD was removed)
            // is the object gone too.
            Err(ApplyError::UnknownKind { .. }) => {
                match self
                    .discovery
                    .resolve_any_version(&self.client, &id.group, &id.kind)
                    .await?
                {
                    Some(resolved) => self.api_from(&resolved, ns),
                    None => return Ok(Action::Deleted),
                }
            }
            Err(e) => return Err(e),
        };
        let live: Option<DynamicObject> =
            api.get_opt(&id.name)
                .await
                .map_err(|source| ApplyError::Api {
                    object: id.to_string(),
                    op: "get",
                    source,
                })?;
        let Some(live) = live else {
            return Ok(Action::Deleted);
        };
        if !is_owned(&live, owner)
            || has_switch(&live, PRUNE_SWITCH, "disabled")
            || has_switch(&live, RECONCILE_SWITCH, "disabled")
            || has_switch(&live, SSA_POLICY, SSA_IGNORE)
        {
            return Ok(Action::Skipped);
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => Ok(Action::Deleted),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::Deleted),
            Err(source) => Err(ApplyError::Api {
                object: id.to_string(),
                op: "delete",
                source,
            }),
        }
    }
}

fn is_owned(live: &DynamicObject, owner: &[(String, String)]) -> bool {
    let labels = live.metadata.labels.as_ref();
    owner
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the live object has the label or annotation `key` equal to `value` (any case), as
/// fluxcd/pkg's `AnyInMetadata`.
pub(crate) fn has_switch(live: &DynamicObject, key: &str, value: &str) -> bool {
    let md = &live.metadata;
    [md.labels.as_ref(), md.annotations.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|m| m.get(key))
        .any(|v| v.eq_ignore_ascii_case(value))
}
