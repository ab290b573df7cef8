//! The three seams of the data path. Each trait has the one method (or two) its callers need;
//! retry, timeouts and caching wrap them instead of widening them (think tower's `Service`).
//!
//! All three are object safe: a controller holds `Arc<dyn Source>` for whichever kind a spec names.

use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{Artifact, ArtifactStore, ChangeSet, Error, InventoryEntry, Object, ObjectId};

/// What a [`Source::fetch`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetched {
    /// The upstream revision equals the last artifact's: nothing was downloaded.
    Unchanged(Artifact),
    /// A new artifact was written into the store.
    New(Artifact),
}

impl Fetched {
    /// The artifact, new or unchanged.
    pub fn artifact(&self) -> &Artifact {
        match self {
            Fetched::Unchanged(a) | Fetched::New(a) => a,
        }
    }
}

/// Fetches desired state and turns it into an [`Artifact`] in an [`ArtifactStore`].
pub trait Source: Send + Sync {
    /// Fetches the selected revision. When `last` is given and upstream still points at its
    /// revision, implementations should return [`Fetched::Unchanged`] without downloading.
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, Error>>;
}

/// Turns a folder (an extracted artifact, at the unit's `path`) into Kubernetes objects, in the
/// order the renderer defines (kustomize's output order for Kustomize).
///
/// Rendering is CPU-bound and synchronous; async callers move it to a blocking thread.
pub trait Renderer: Send + Sync {
    /// Renders the folder `dir`. Errors name the file and, where known, the object and field.
    fn render(&self, dir: &Path) -> Result<Vec<Object>, Error>;

    /// Renders `dir`, a folder inside the extracted artifact `root`. A renderer that follows
    /// references to other folders (kustomize bases) must not read outside `root`, as Flux's
    /// kustomize-controller builds on a file system rooted at the artifact. The reconcile
    /// pipeline calls this; the default ignores `root` and calls [`Renderer::render`].
    fn render_in(&self, root: &Path, dir: &Path) -> Result<Vec<Object>, Error> {
        let _ = root;
        self.render(dir)
    }
}

/// Puts objects into a cluster and removes stale ones.
pub trait Applier: Send + Sync {
    /// Applies `objects` (owner labels already set), returning one change-set entry per object.
    fn apply<'a>(&'a self, objects: &'a [Object]) -> BoxFuture<'a, Result<ChangeSet, Error>>;

    /// Deletes the `stale` inventory entries that still carry the owner labels `owner`
    /// (label key -> value) and are not annotated `kustomize.toolkit.fluxcd.io/prune: disabled`,
    /// in reverse apply order.
    fn prune<'a>(
        &'a self,
        stale: &'a [InventoryEntry],
        owner: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<ChangeSet, Error>>;

    /// Waits until the objects `ids` are healthy (kstatus Current), as kustomize-controller does
    /// for `spec.wait` and `spec.healthChecks`, for at most `timeout`. The error (stage
    /// [`crate::Stage::Health`]) names every object that is not healthy and why. The default
    /// does not wait and returns `Ok`.
    fn wait_healthy<'a>(
        &'a self,
        ids: &'a [ObjectId],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let _ = (ids, timeout);
        Box::pin(std::future::ready(Ok(())))
    }
}
