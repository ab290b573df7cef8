//! kstatus-compatible conditions, with Flux's condition types and reasons.

use serde::{Deserialize, Serialize};

/// Condition types Flux uses.
pub mod kind {
    /// The unit reconciled its latest input successfully.
    pub const READY: &str = "Ready";
    /// Work is in progress (abnormal-true: present only when True).
    pub const RECONCILING: &str = "Reconciling";
    /// The unit cannot make progress without a change of input (abnormal-true).
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons Flux uses.
pub mod reason {
    /// Ready=True after a successful reconcile.
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    /// Ready=True on a source with a stored artifact.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Reconciling=True: work under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Reconciling=True after a failure, with a retry scheduled.
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    /// Ready=False: suspended.
    pub const SUSPENDED: &str = "Suspended";
    /// Ready=False: a `dependsOn` unit is not Ready.
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// Ready=False: the artifact could not be fetched or stored.
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    /// Ready=False: rendering failed.
    pub const BUILD_FAILED: &str = "BuildFailed";
    /// Ready=False: apply failed.
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
    /// Ready=False: prune failed.
    pub const PRUNE_FAILED: &str = "PruneFailed";
    /// Ready=False: health checks failed.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// Source Ready=False: fetching from upstream failed.
    pub const GIT_OPERATION_FAILED: &str = "GitOperationFailed";
}

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl Status {
    /// `"True"`, `"False"` or `"Unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// A condition as in `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type (`Ready`, `Reconciling`, `Stalled`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Status.
    pub status: Status,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: jiff::Timestamp,
    /// The spec generation the condition was computed for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Sets or replaces the condition of `type_` in `conditions`, keeping `lastTransitionTime` when the
/// status did not change (as `meta.SetStatusCondition` does).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
) {
    let message = message.into();
    // Kubernetes' metav1.Time has second precision.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or_else(|_| jiff::Timestamp::now());
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status;
            c.reason = reason.to_string();
            c.message = message;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            last_transition_time: now,
            observed_generation: None,
        }),
    }
}

/// Removes the condition of `type_` (for abnormal-true conditions once they are no longer True).
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `Ready` is `True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find_condition(conditions, kind::READY).is_some_and(|c| c.status == Status::True)
}
