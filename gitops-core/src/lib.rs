//! Types, traits and the reconcile engine of the gitops toolkit.
//!
//! The data path, and where each piece lives:
//!
//! ```text
//! spec (GitRepository, ...)
//!   -> Source::fetch ............ gitops-sources   (network, credentials, revision selection)
//!   -> Artifact in ArtifactStore  gitops-core      (tar.gz, sha256 digest, Flux revision, GC, safe extract)
//!   -> Renderer::render ......... gitops-render    (kustomize | plain folder)
//!   -> Vec<Object>                gitops-core      (untyped Kubernetes objects with ObjectId)
//!   -> Applier::apply / prune ... gitops-apply     (staged server-side apply, inventory, prune)
//!   -> ChangeSet + Inventory -> conditions on the unit (engine)
//! ```
//!
//! | module | concept |
//! | --- | --- |
//! | [`digest`] | `sha256:<hex>` digests |
//! | [`revision`] | Flux revisions (`main@sha1:<hex>`) |
//! | [`artifact`] | [`Artifact`], Flux's `meta.Artifact` |
//! | [`store`] | [`ArtifactStore`]: atomic writes, verification, safe extraction, GC |
//! | [`object`] | [`Object`] and [`ObjectId`] |
//! | [`inventory`] | [`Inventory`] in Flux's `{id, v}` format |
//! | [`changeset`] | [`ChangeSet`]: created / configured / unchanged / deleted / skipped |
//! | [`condition`] | kstatus conditions with Flux's types and reasons |
//! | [`traits`] | [`Source`], [`Renderer`], [`Applier`] |
//! | [`pipeline`] | one reconcile: extract, render, label, apply, prune |
//! | [`schedule`] | interval, jitter, backoff |
//! | [`status`] | [`UnitStatus`](status::UnitStatus): conditions, revisions, inventory |
//! | [`engine`] | the reconcile engine: intervals, jitter, backoff, suspend, `dependsOn` |

pub mod artifact;
pub mod changeset;
pub mod condition;
pub mod digest;
pub mod engine;
pub mod error;
pub mod inventory;
pub mod object;
pub mod pipeline;
pub mod revision;
pub mod schedule;
pub mod status;
pub mod store;
pub mod traits;

pub use artifact::Artifact;
pub use changeset::{Action, ChangeSet, ChangeSetEntry};
pub use condition::{Condition, Status};
pub use digest::{Algorithm, Digest};
pub use error::{BoxError, Error, Stage};
pub use inventory::{Inventory, InventoryEntry};
pub use object::{Object, ObjectId};
pub use revision::Revision;
pub use store::{ArtifactKey, ArtifactStore, ExtractLimits, StoreError};
pub use traits::{Applier, Fetched, Renderer, Source};
