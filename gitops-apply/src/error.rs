//! Errors of gitops-apply. Each names the object (`Kind/namespace/name`) and what was being done.

use gitops_core::Stage;

/// What went wrong while applying or pruning.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server does not serve the object's kind at its apiVersion.
    #[error(
        "{object}: no kind {kind} is registered for apiVersion {api_version} on the API server"
    )]
    UnknownKind {
        /// `Kind/namespace/name` of the object.
        object: String,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// Discovery failed for a reason other than "not found".
    #[error("discovery of {api_version} {kind}: {source}")]
    Discovery {
        /// The apiVersion looked up.
        api_version: String,
        /// The kind looked up.
        kind: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An API call on an object failed.
    #[error("{object}: {op} failed: {source}")]
    Api {
        /// `Kind/namespace/name` of the object.
        object: String,
        /// `dry-run apply`, `apply`, `get`, `delete`.
        op: &'static str,
        /// The client error (carries the API server's message).
        #[source]
        source: kube::Error,
    },
    /// An object is not a valid Kubernetes object.
    #[error("invalid object: {0}")]
    Object(#[from] gitops_core::object::ObjectError),
    /// A CRD or Namespace did not become ready in time.
    #[error("{object}: not {condition} after {seconds} s")]
    WaitTimeout {
        /// `Kind/name` of the object.
        object: String,
        /// `Established`, `Active`, `deleted` (an object recreated because of an immutable field).
        condition: &'static str,
        /// The timeout in seconds.
        seconds: u64,
    },
    /// The API server refused to change an immutable field (a Job's `spec.template`, a
    /// Service's `spec.clusterIP`...) and neither the applier's `force` nor the object's
    /// `kustomize.toolkit.fluxcd.io/force: enabled` asked to recreate it, as Flux reports.
    #[error(
        "{object}: immutable field{} {} cannot be changed; set force or annotate the object with kustomize.toolkit.fluxcd.io/force: enabled to recreate it: {message}",
        if .fields.len() == 1 { "" } else { "s" },
        if .fields.is_empty() { "(unknown)".to_string() } else { .fields.join(", ") }
    )]
    Immutable {
        /// `Kind/namespace/name` of the object.
        object: String,
        /// The field paths the API server named (e.g. `spec.template`), possibly empty.
        fields: Vec<String>,
        /// The API server's message.
        message: String,
    },
    /// Objects did not become healthy: one is Failed (`timeout` is `None`), or not all were
    /// Current within `timeout`. The message names every object that is not Current, e.g.
    /// `Deployment/default/podinfo: InProgress: Available: 0/2`.
    #[error("{}", unhealthy_message(.report, .timeout))]
    Unhealthy {
        /// The last health seen of every checked object.
        report: crate::wait::HealthReport,
        /// The timeout that passed, if that is why the wait ended.
        timeout: Option<std::time::Duration>,
    },
    /// Some stale objects could not be deleted.
    #[error("prune failed for {}", .failures.join("; "))]
    Prune {
        /// One message per failed object.
        failures: Vec<String>,
    },
}

fn unhealthy_message(
    report: &crate::wait::HealthReport,
    timeout: &Option<std::time::Duration>,
) -> String {
    match timeout {
        Some(t) => format!("health check timed out after {t:?}: {report}"),
        None => format!("health check failed: {report}"),
    }
}

impl ApplyError {
    /// Whether retrying can help: API errors other than validation (400, 404 on apply, 409 on
    /// create-only, 422) and timeouts are retryable; unknown kinds and invalid objects are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApplyError::UnknownKind { .. }
            | ApplyError::Object(_)
            | ApplyError::Immutable { .. } => false,
            ApplyError::Api {
                source: kube::Error::Api(status),
                ..
            } => !matches!(status.code, 400 | 422),
            _ => true,
        }
    }

    /// Into the toolkit's error, in stage `stage`.
    pub fn into_core(self, stage: Stage) -> gitops_core::Error {
        let retryable = self.is_retryable();
        gitops_core::Error::new(stage, retryable, self)
    }
}
