//! Server-side apply for the gitops toolkit, with Flux's semantics (fluxcd/pkg `ssa`):
//!
//! - [`SsaApplier::apply_all_staged`]: CRDs and Namespaces first (waited for), `*Class` kinds next,
//!   the rest last, each object dry-run first so unchanged objects are reported and not written
//!   (objects whose `managedFields` show they still hold what was applied skip the dry run, and
//!   large groups are read with one LIST instead of a GET each);
//! - Flux's per-object policies (label or annotation): `kustomize.toolkit.fluxcd.io/reconcile:
//!   disabled` or `ssa: Ignore` on the desired or live object skips it, `ssa: IfNotPresent` creates
//!   but never patches (reported `skipped`), `ssa: Merge` keeps fields of other managers;
//! - drift correction: every apply reports `configured` objects with the drifted field paths and
//!   corrects them; fields of kubectl managers are taken over; objects are recreated on
//!   immutable-field errors with `force` ([`SsaApplier::with_force`] or
//!   `kustomize.toolkit.fluxcd.io/force: enabled`);
//! - [`SsaApplier::delete_all`]: prune stale inventory entries in reverse order, only when they still
//!   carry the owner labels and are not marked `kustomize.toolkit.fluxcd.io/prune: disabled`
//!   (nor `reconcile: disabled`, `ssa: Ignore`);
//! - [`SsaApplier::wait_healthy`]: watch objects until all are Current by kstatus's rules
//!   ([`health::compute`]), fail early when one is Failed, name every unhealthy object on timeout;
//! - kinds resolved through cached discovery, so the applier works against any Kubernetes version
//!   with untyped objects.
//!
//! [`SsaApplier`] implements [`gitops_core::Applier`].
//!
//! ```no_run
//! # async fn demo(objects: Vec<gitops_core::Object>) -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let applier = gitops_apply::SsaApplier::new(client).with_field_manager("my-controller");
//! let change_set = applier.apply_all_staged(&objects).await?;
//! print!("{change_set}"); // e.g. "Deployment/default/podinfo created"
//! # Ok(()) }
//! ```

pub mod discovery;
pub mod error;
pub mod health;
pub mod managed;
pub mod order;
pub mod prune;
pub mod ssa;
pub mod wait;

pub use error::ApplyError;
pub use health::{Health, HealthStatus};
pub use ssa::{DEFAULT_CONCURRENCY, DEFAULT_FIELD_MANAGER, SsaApplier, drift_paths};
pub use wait::HealthReport;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitops_core::{ChangeSet, InventoryEntry, Object, ObjectId, Stage};

impl gitops_core::Applier for SsaApplier {
    fn apply<'a>(
        &'a self,
        objects: &'a [Object],
    ) -> BoxFuture<'a, Result<ChangeSet, gitops_core::Error>> {
        async move {
            self.apply_staged(objects)
                .await
                .map_err(|(e, written)| e.into_core(Stage::Apply).with_written(written))
        }
        .boxed()
    }

    fn prune<'a>(
        &'a self,
        stale: &'a [InventoryEntry],
        owner: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<ChangeSet, gitops_core::Error>> {
        async move {
            self.delete_all(stale, owner)
                .await
                .map_err(|e| e.into_core(Stage::Prune))
        }
        .boxed()
    }

    fn wait_healthy<'a>(
        &'a self,
        ids: &'a [ObjectId],
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), gitops_core::Error>> {
        async move {
            SsaApplier::wait_healthy(self, ids, timeout)
                .await
                .map(|_| ())
                .map_err(|e| e.into_core(Stage::Health))
        }
        .boxed()
    }
}
