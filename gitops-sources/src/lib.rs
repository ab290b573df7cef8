//! Sources of desired state for the gitops toolkit: implementations of
//! [`gitops_core::Source`] that fetch upstream content and write it into an
//! [`ArtifactStore`](gitops_core::ArtifactStore) as Flux's source-controller does.
//!
//! | module | what | cargo feature |
//! | --- | --- | --- |
//! | [`git`] | [`GitSource`]: Flux's GitRepository over `file://`, `git://` and smart HTTP(S), via gix | `git` (default) |
//! | [`git_verify`] | OpenPGP signature verification of commits and tags (Flux's GitRepository `spec.verify`) for [`GitSource`], via rpgp | `git-verify` |
//! | [`bucket`] | [`BucketSource`]: Flux's Bucket over S3-compatible stores, AWS, GCS and Azure Blob, via object_store | `bucket` |
//! | [`helm`] | `HelmChartSource`: Flux's HelmChart from an HTTP(S) or OCI HelmRepository; `build_chart_from_artifact`: from a GitRepository/Bucket artifact | `helm` (enables `oci`) |
//! | [`oci`] | `OciSource`: Flux's OCIRepository, plus `flux push/pull artifact`, via oci-client | `oci` |
//! | [`server`] | `ArtifactServer` (source-controller's artifact HTTP server) and `fetch_artifact` (the consumer's download, verify, untar), via axum and reqwest | `server` |
//! | [`sourceignore`] | Flux's `.sourceignore` / `spec.ignore` / default exclusions, for any source | always |
//! | [`semver_range`] | Masterminds/semver v3 ranges (Flux's `ref.semver`) on top of the `semver` crate | always |
//!
//! Build with `default-features = false` to leave gix (and its HTTP stack) out when only other
//! backends are needed. The workspace dependency is declared that way, so crates of this
//! workspace that want the Git source write
//! `gitops-sources = { workspace = true, features = ["git"] }`.
//!
//! HTTPS uses rustls with the ring provider: the Git source installs it as the process default
//! crypto provider on first HTTP use unless the application installed one.

#[cfg(feature = "bucket")]
pub mod bucket;
#[cfg(feature = "git")]
pub mod git;
#[cfg(feature = "git-verify")]
pub mod git_verify;
#[cfg(feature = "helm")]
pub mod helm;
#[cfg(feature = "oci")]
pub mod oci;
pub mod semver_range;
#[cfg(feature = "server")]
pub mod server;
pub mod sourceignore;
mod util;

#[cfg(feature = "bucket")]
pub use bucket::{BucketAuth, BucketError, BucketProvider, BucketSource, BucketSpec};
#[cfg(feature = "git")]
pub use git::{GitAuth, GitError, GitReference, GitRepositorySpec, GitSource};
#[cfg(feature = "helm")]
pub use helm::{
    HelmAuth, HelmChartSource, HelmChartSpec, HelmError, HelmRepositorySpec, HelmRepositoryType,
};
#[cfg(feature = "oci")]
pub use oci::{OciAuth, OciError, OciRepositorySpec, OciSource};
pub use sourceignore::SourceIgnore;
