//! Example programs of the gitops toolkit, and the pieces they share:
//!
//! - `gitops` (src/bin/gitops.rs): `gitops build <dir>` prints what `kubectl kustomize <dir>`
//!   prints; `gitops reconcile --url ... --path ... [--prune]` does one reconcile against the current
//!   kubeconfig and prints the change set.
//! - `gitops-operator` (src/bin/gitops-operator.rs): serves Flux's `GitRepository`,
//!   `OCIRepository`, `Bucket` and `Kustomization` CRDs on kube-runtime ([`operator`]).
//! - `demo` (src/bin/demo.rs, `cargo xtask demo`): a local control plane, a Git server and the
//!   operator reconciling podinfo, then a prune.

pub mod crds;
pub mod gitrepo;
pub mod operator;
pub mod wait;

/// Installs the process-wide rustls crypto provider (ring). kube's rustls client panics when
/// several providers are linked and none is chosen, so every binary calls this first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
