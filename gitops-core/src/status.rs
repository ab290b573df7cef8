//! The observed state of a unit and its transitions, with Flux's conditions and reasons:
//! Ready (True/False/Unknown), abnormal-true Reconciling and Stalled.

use serde::{Deserialize, Serialize};

use crate::condition::{self, kind, reason};
use crate::{Artifact, ChangeSet, Condition, Error, Inventory, Revision, Status};

/// What a unit last did: conditions, revisions, inventory and the last change set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitStatus {
    /// Ready / Reconciling / Stalled.
    pub conditions: Vec<Condition>,
    /// The last artifact fetched (new or unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Artifact>,
    /// Revision of the last successful apply (Flux's `lastAppliedRevision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<Revision>,
    /// Revision of the last attempt (Flux's `lastAttemptedRevision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<Revision>,
    /// What the unit owns.
    #[serde(default)]
    pub inventory: Inventory,
    /// The change set of the last successful reconcile.
    #[serde(default)]
    pub last_change_set: ChangeSet,
    /// Consecutive failures (drives the backoff).
    #[serde(default)]
    pub failures: u32,
}

impl UnitStatus {
    /// Whether Ready is True.
    pub fn is_ready(&self) -> bool {
        condition::is_ready(&self.conditions)
    }

    /// The Ready condition, if any.
    pub fn ready(&self) -> Option<&Condition> {
        condition::find_condition(&self.conditions, kind::READY)
    }

    /// Whether Stalled is True.
    pub fn is_stalled(&self) -> bool {
        condition::find_condition(&self.conditions, kind::STALLED)
            .is_some_and(|c| c.status == Status::True)
    }

    /// Marks the start of a reconcile as kustomize-controller does: Reconciling=True and
    /// Ready=Unknown, both `Progressing` with `message`; Stalled is cleared (a new attempt is
    /// under way).
    pub fn mark_reconciling(&mut self, message: impl Into<String>) {
        let message = message.into();
        condition::set_condition(
            &mut self.conditions,
            kind::RECONCILING,
            Status::True,
            reason::PROGRESSING,
            message.clone(),
        );
        condition::set_condition(
            &mut self.conditions,
            kind::READY,
            Status::Unknown,
            reason::PROGRESSING,
            message,
        );
        condition::remove_condition(&mut self.conditions, kind::STALLED);
    }

    /// Records a success: Ready=True `ReconciliationSucceeded` "Applied revision: X".
    pub fn mark_succeeded(
        &mut self,
        revision: &Revision,
        inventory: Inventory,
        change_set: ChangeSet,
    ) {
        let message = format!("Applied revision: {revision}");
        condition::set_condition(
            &mut self.conditions,
            kind::READY,
            Status::True,
            reason::RECONCILIATION_SUCCEEDED,
            message,
        );
        condition::remove_condition(&mut self.conditions, kind::RECONCILING);
        condition::remove_condition(&mut self.conditions, kind::STALLED);
        self.last_applied_revision = Some(revision.clone());
        self.last_attempted_revision = Some(revision.clone());
        self.inventory = inventory;
        self.last_change_set = change_set;
        self.failures = 0;
    }

    /// Records a failure: Ready=False with the stage's reason; a retryable failure keeps
    /// Reconciling=True (`ProgressingWithRetry`), a terminal one sets Stalled=True.
    pub fn mark_failed(&mut self, error: &Error, attempted: Option<&Revision>) {
        let reason = error.stage().reason();
        let message = error.to_string();
        condition::set_condition(
            &mut self.conditions,
            kind::READY,
            Status::False,
            reason,
            message.clone(),
        );
        if error.is_retryable() {
            condition::set_condition(
                &mut self.conditions,
                kind::RECONCILING,
                Status::True,
                reason::PROGRESSING_WITH_RETRY,
                message,
            );
            condition::remove_condition(&mut self.conditions, kind::STALLED);
        } else {
            condition::set_condition(
                &mut self.conditions,
                kind::STALLED,
                Status::True,
                reason,
                message,
            );
            condition::remove_condition(&mut self.conditions, kind::RECONCILING);
        }
        if let Some(r) = attempted {
            self.last_attempted_revision = Some(r.clone());
        }
        self.failures = self.failures.saturating_add(1);
    }

    /// Records that a dependency is not ready: Ready=False `DependencyNotReady`.
    pub fn mark_dependency_not_ready(&mut self, message: impl Into<String>) {
        self.mark_waiting(reason::DEPENDENCY_NOT_READY, message);
    }

    /// Records that the unit cannot start yet and will be retried without counting a failure
    /// (a dependency not Ready, the source has no artifact yet): Ready=False with `reason`,
    /// Reconciling and Stalled removed.
    pub fn mark_waiting(&mut self, reason: &str, message: impl Into<String>) {
        condition::set_condition(
            &mut self.conditions,
            kind::READY,
            Status::False,
            reason,
            message,
        );
        condition::remove_condition(&mut self.conditions, kind::RECONCILING);
        condition::remove_condition(&mut self.conditions, kind::STALLED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Stage, condition::reason};

    #[test]
    fn a_new_attempt_makes_ready_unknown_and_clears_stalled() {
        let mut st = UnitStatus::default();
        st.mark_failed(&Error::terminal(Stage::Render, "bad kustomization"), None);
        assert!(st.is_stalled());
        st.mark_reconciling("Fetching manifests");
        let ready = st.ready().unwrap();
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (Status::Unknown, reason::PROGRESSING)
        );
        assert!(!st.is_stalled());

        st.mark_failed(&Error::terminal(Stage::Render, "bad kustomization"), None);
        st.mark_dependency_not_ready("infra is not ready");
        assert!(!st.is_stalled());
        assert_eq!(st.ready().unwrap().reason, reason::DEPENDENCY_NOT_READY);
    }
}
