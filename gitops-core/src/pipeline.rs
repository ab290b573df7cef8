//! One reconcile of a unit, fetch excluded: extract the artifact, render the unit's path, stamp
//! owner labels, apply, compute the new inventory and prune what left it — the line Flux's
//! kustomize-controller runs, with nothing destructive after a failure.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::object::is_cluster_scoped_kind;
use crate::{
    Applier, Artifact, ArtifactStore, ChangeSet, Error, Inventory, Object, Renderer, Stage,
};

/// Flux's owner label for the owning Kustomization's name.
pub const OWNER_NAME_LABEL: &str = "kustomize.toolkit.fluxcd.io/name";
/// Flux's owner label for the owning Kustomization's namespace.
pub const OWNER_NAMESPACE_LABEL: &str = "kustomize.toolkit.fluxcd.io/namespace";

/// The labels that mark objects as owned by one unit. Defaults to Flux's
/// `kustomize.toolkit.fluxcd.io/name` and `kustomize.toolkit.fluxcd.io/namespace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerLabels {
    /// Label key carrying the owner's name.
    pub name_key: String,
    /// Label key carrying the owner's namespace.
    pub namespace_key: String,
    /// The owner's name.
    pub name: String,
    /// The owner's namespace.
    pub namespace: String,
}

impl OwnerLabels {
    /// Flux's owner labels for a Kustomization `namespace/name`.
    pub fn flux(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        OwnerLabels {
            name_key: OWNER_NAME_LABEL.into(),
            namespace_key: OWNER_NAMESPACE_LABEL.into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// The labels as (key, value) pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        vec![
            (self.name_key.clone(), self.name.clone()),
            (self.namespace_key.clone(), self.namespace.clone()),
        ]
    }
}

/// What a unit does with an artifact; the fields of Flux's Kustomization spec that this covers.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplySpec {
    /// Folder inside the artifact to render (Flux's `spec.path`); empty or `./` for the root.
    #[serde(default)]
    pub path: String,
    /// Delete objects that left the inventory (Flux's `spec.prune`).
    #[serde(default)]
    pub prune: bool,
    /// Namespace set on every namespaced object (Flux's `spec.targetNamespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Wait for every applied object to be healthy after apply and prune (Flux's `spec.wait`).
    #[serde(default)]
    pub wait: bool,
    /// Objects to wait for after apply and prune, applied here or not, e.g. a HelmRelease
    /// (Flux's `spec.healthChecks`); ignored when `wait` is set, which checks all applied objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<crate::ObjectId>,
}

/// The result of a successful [`reconcile_artifact`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Apply entries followed by prune entries.
    pub change_set: ChangeSet,
    /// The new inventory (what was applied, in apply order).
    pub inventory: Inventory,
}

/// Path errors of the pipeline itself.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// `spec.path` is absolute or climbs out of the artifact.
    #[error("path {0:?} must be relative and stay inside the artifact")]
    UnsafePath(String),
    /// `spec.path` does not exist in the artifact.
    #[error("path {0:?} not found in artifact {1}")]
    PathNotFound(String, String),
    /// A rendered object lacks its identity.
    #[error("rendered object: {0}")]
    Object(#[from] crate::object::ObjectError),
    /// Two rendered objects have the same identity.
    #[error("rendered objects: {0} appears twice")]
    Duplicate(String),
    /// Temp folder or extraction failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The blocking render task was lost.
    #[error("render task failed: {0}")]
    Join(String),
    /// A stage took longer than the unit's timeout.
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
}

/// A failed [`reconcile_artifact`]: the error, and the inventory to record when objects were
/// applied before the failure (a failed prune keeps the survivors in the inventory, as Flux does
/// since kustomize-controller#1664, so they are pruned on a later run instead of orphaned; a
/// failed apply adds what it may have written, [`Error::written`], to the previous inventory).
#[derive(Debug)]
pub struct Failure {
    /// What failed.
    pub error: Error,
    /// The inventory to record instead of the previous one, if any.
    pub inventory: Option<Inventory>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            inventory: None,
        }
    }
}

/// Joins `path` under `root` refusing absolute paths and `..` (Flux's secure join, stricter).
pub fn secure_join(root: &Path, path: &str) -> Result<PathBuf, PipelineError> {
    let mut out = root.to_path_buf();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return Err(PipelineError::UnsafePath(path.to_string())),
        }
    }
    Ok(out)
}

/// Stamps owner labels and the target namespace onto rendered objects and checks identities.
pub fn prepare_objects(
    objects: &mut [Object],
    owner: &OwnerLabels,
    target_namespace: Option<&str>,
) -> Result<(), PipelineError> {
    let mut seen = std::collections::HashSet::new();
    for o in objects.iter_mut() {
        if let Some(ns) = target_namespace.filter(|n| !n.is_empty())
            && !is_cluster_scoped_kind(o.group(), o.kind())
        {
            o.set_namespace(ns);
        }
        for (k, v) in owner.pairs() {
            o.set_label(&k, &v);
        }
        let id = o.id()?;
        if !seen.insert(id.clone()) {
            return Err(PipelineError::Duplicate(id.to_string()));
        }
    }
    Ok(())
}

/// How long past `timeout` the pipeline lets [`Applier::wait_healthy`] run before cutting it
/// off, so the applier's own timeout (which names the unhealthy objects) fires first.
const HEALTH_GRACE: Duration = Duration::from_secs(5);

/// One reconcile of an artifact, fetch excluded. Build it with the unit's pieces and call
/// [`Reconcile::run`].
pub struct Reconcile<'a> {
    /// The store holding `artifact`.
    pub store: &'a ArtifactStore,
    /// The artifact to reconcile.
    pub artifact: &'a Artifact,
    /// Path, prune, target namespace.
    pub spec: &'a ApplySpec,
    /// Owner labels to stamp.
    pub owner: &'a OwnerLabels,
    /// Renders the folder (run on a blocking thread).
    pub renderer: std::sync::Arc<dyn Renderer>,
    /// Applies and prunes.
    pub applier: &'a dyn Applier,
    /// The inventory of the last successful reconcile.
    pub previous: &'a Inventory,
    /// Budget of render, apply, prune and the health check each (Flux's `spec.timeout`).
    pub timeout: Duration,
}

impl Reconcile<'_> {
    /// Extracts the artifact (digest verified), renders `spec.path`, stamps owner labels,
    /// applies, then — only if all of that succeeded and `spec.prune` is set — prunes the entries
    /// of `previous` that are not in the new inventory; then, when `spec.wait` is set (all
    /// applied objects) or `spec.health_checks` is not empty, waits up to `timeout` for those
    /// objects to be healthy. A failed health check fails with stage `Health` (retryable) and
    /// still returns the new inventory, as the objects were applied and pruned. A failed apply
    /// prunes nothing and returns `previous` plus the objects the applier says it may have
    /// written ([`Error::written`]), when it says any.
    pub async fn run(self) -> Result<Outcome, Failure> {
        let Reconcile {
            store,
            artifact,
            spec,
            owner,
            renderer,
            applier,
            previous,
            timeout,
        } = self;
        let tmp = tempfile::Builder::new()
            .prefix("gitops-build-")
            .tempdir()
            .map_err(|e| Error::retryable(Stage::Fetch, e))?;
        store
            .extract(artifact, tmp.path())
            .map_err(|e| Error::retryable(Stage::Fetch, PipelineError::from(e)))?;
        let dir =
            secure_join(tmp.path(), &spec.path).map_err(|e| Error::terminal(Stage::Render, e))?;
        if !dir.is_dir() {
            return Err(Error::terminal(
                Stage::Render,
                PipelineError::PathNotFound(spec.path.clone(), artifact.revision.to_string()),
            )
            .into());
        }

        let root = tmp.path().to_path_buf();
        let render = tokio::task::spawn_blocking(move || renderer.render_in(&root, &dir));
        let mut objects = match tokio::time::timeout(timeout, render).await {
            Err(_) => {
                return Err(Error::retryable(
                    Stage::Render,
                    PipelineError::Timeout("render", timeout),
                )
                .into());
            }
            Ok(Err(join)) => {
                return Err(
                    Error::retryable(Stage::Render, PipelineError::Join(join.to_string())).into(),
                );
            }
            Ok(Ok(r)) => r?,
        };
        drop(tmp);
        prepare_objects(&mut objects, owner, spec.target_namespace.as_deref())
            .map_err(|e| Error::terminal(Stage::Render, e))?;

        let applied = tokio::time::timeout(timeout, applier.apply(&objects))
            .await
            .map_err(|_| {
                Error::retryable(Stage::Apply, PipelineError::Timeout("apply", timeout))
            })?;
        let mut change_set = match applied {
            Ok(cs) => cs,
            // Nothing is pruned; what the failed apply may have written joins the previous
            // inventory, so a later revision without it still prunes it.
            Err(error) if !error.written().is_empty() => {
                let inventory = previous.clone().union(error.written());
                return Err(Failure {
                    error,
                    inventory: Some(inventory),
                });
            }
            Err(error) => return Err(error.into()),
        };
        let inventory = change_set.to_inventory();

        if spec.prune {
            let stale = previous.stale_since(&inventory);
            if !stale.is_empty() {
                let pruned = tokio::time::timeout(timeout, applier.prune(&stale, &owner.pairs()))
                    .await
                    .map_err(|_| {
                        Error::retryable(Stage::Prune, PipelineError::Timeout("prune", timeout))
                    })
                    .and_then(|r| r);
                match pruned {
                    Ok(pruned) => change_set.extend(pruned),
                    Err(error) => {
                        let mut kept = inventory;
                        kept.entries.extend(stale);
                        return Err(Failure {
                            error,
                            inventory: Some(kept),
                        });
                    }
                }
            }
        }
        let checks: Vec<crate::ObjectId> = if spec.wait {
            change_set
                .entries
                .iter()
                .filter(|e| inventory.contains(&e.id))
                .map(|e| e.id.clone())
                .collect()
        } else {
            spec.health_checks.clone()
        };
        if !checks.is_empty() {
            let checked = tokio::time::timeout(
                timeout + HEALTH_GRACE,
                applier.wait_healthy(&checks, timeout),
            )
            .await
            .map_err(|_| {
                Error::retryable(
                    Stage::Health,
                    PipelineError::Timeout("health check", timeout),
                )
            })
            .and_then(|r| r);
            if let Err(error) = checked {
                let error = if error.is_retryable() && error.stage() == Stage::Health {
                    error
                } else {
                    Error::retryable(Stage::Health, error)
                };
                return Err(Failure {
                    error,
                    inventory: Some(inventory),
                });
            }
        }
        Ok(Outcome {
            change_set,
            inventory,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_refuses_escapes() {
        let root = Path::new("/tmp/a");
        assert_eq!(
            secure_join(root, "./deploy/prod").unwrap(),
            Path::new("/tmp/a/deploy/prod")
        );
        assert_eq!(secure_join(root, "").unwrap(), Path::new("/tmp/a"));
        assert!(secure_join(root, "../etc").is_err());
        assert!(secure_join(root, "/etc").is_err());
    }
}
