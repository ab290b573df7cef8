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
    #[error("discovery of {api_version} {kind}: {}", kube_text(.source))]
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
    #[error("{object}: {op} failed: {}", kube_text(.source))]
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

/// Whether the API server refused an apply patch that does not fit the kind's schema (a field
/// of the wrong type, e.g. `spec.replicas: "abc"`): Kubernetes 1.20 answers that with a 500
/// `failed to create typed patch object: .spec.replicas: expected numeric...`, which a retry
/// cannot fix, unlike other 500s.
fn is_typed_patch_error(status: &kube::core::Status) -> bool {
    status.code == 500
        && status
            .message
            .starts_with("failed to create typed patch object")
}

/// A client error as the API server said it: an API answer as its Status prints
/// (`<message>: <reason>`), without kube's `ApiError:` prefix and debug dump of the Status;
/// other errors (connection refused, timeouts) as they print.
fn kube_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.to_string().trim_end_matches([':', ' ']).to_string(),
        other => other.to_string(),
    }
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
    /// create-only, 422, and the 500 of an apply patch that does not fit the kind's schema)
    /// and timeouts are retryable; unknown kinds and invalid objects are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApplyError::UnknownKind { .. }
            | ApplyError::Object(_)
            | ApplyError::Immutable { .. } => false,
            ApplyError::Api {
                source: kube::Error::Api(status),
                ..
            } => !matches!(status.code, 400 | 422) && !is_typed_patch_error(status),
            _ => true,
        }
    }

    /// Into the toolkit's error, in stage `stage`.
    pub fn into_core(self, stage: Stage) -> gitops_core::Error {
        let retryable = self.is_retryable();
        gitops_core::Error::new(stage, retryable, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str, reason: &str) -> ApplyError {
        ApplyError::Api {
            object: "Deployment/apps/web".into(),
            op: "dry-run apply",
            source: kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: message.into(),
                reason: reason.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn api_errors_print_the_servers_words_and_schema_errors_are_terminal() {
        let typed = api_error(
            500,
            "failed to create typed patch object: .spec.replicas: expected numeric (int or float), got string",
            "",
        );
        assert!(!typed.is_retryable());
        assert_eq!(
            typed.to_string(),
            "Deployment/apps/web: dry-run apply failed: failed to create typed patch object: .spec.replicas: expected numeric (int or float), got string"
        );
        let invalid = api_error(422, r#"Deployment.apps "web" is invalid: x"#, "Invalid");
        assert!(!invalid.is_retryable());
        assert_eq!(
            invalid.to_string(),
            r#"Deployment/apps/web: dry-run apply failed: Deployment.apps "web" is invalid: x: Invalid"#
        );
        assert!(api_error(500, "etcdserver: request timed out", "").is_retryable());
        assert!(api_error(403, "forbidden", "Forbidden").is_retryable());
    }
}
