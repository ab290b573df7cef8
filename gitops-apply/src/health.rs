//! Health of a live object, with the rules of kstatus (sigs.k8s.io/cli-utils `pkg/kstatus/status`),
//! which Flux's kustomize-controller uses for `spec.wait` and `spec.healthChecks`.
//!
//! [`compute`] looks, in this order, at:
//! 1. `metadata.deletionTimestamp` set: [`HealthStatus::Terminating`];
//! 2. `status.observedGeneration` present and not equal to `metadata.generation`: InProgress;
//! 3. the first `Reconciling=True` (InProgress) or `Stalled=True` (Failed) condition;
//! 4. the rules of the well-known kinds (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod,
//!    PersistentVolumeClaim, Service, CustomResourceDefinition, Namespace; ConfigMap, Secret,
//!    CronJob and PodDisruptionBudget are always Current);
//! 5. otherwise the `Ready` condition: True is Current, False or Unknown InProgress with the
//!    condition's message; objects without one are Current.
//!
//! Differences from kstatus: a Job is Current only once `Complete=True`, as Flux's own Job
//! status reader (fluxcd/pkg `runtime/statusreaders`) has it; a Namespace is InProgress until `status.phase: Active` and
//! Terminating in phase `Terminating`; a Service of type LoadBalancer is InProgress until
//! `status.loadBalancer.ingress` is set (kstatus only checks `spec.clusterIP`).

use std::fmt;

use serde_json::Value;

/// The kstatus status of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthStatus {
    /// The object reached its desired state.
    Current,
    /// The object is still being reconciled.
    InProgress,
    /// The object failed to reach its desired state and will not without a change.
    Failed,
    /// The object is being deleted.
    Terminating,
    /// The object does not exist.
    NotFound,
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthStatus::Current => "Current",
            HealthStatus::InProgress => "InProgress",
            HealthStatus::Failed => "Failed",
            HealthStatus::Terminating => "Terminating",
            HealthStatus::NotFound => "NotFound",
        })
    }
}

/// A status and the human-readable reason for it, e.g. `InProgress: Available: 0/2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why, in kstatus's words (`Deployment is available. Replicas: 2`).
    pub message: String,
}

impl Health {
    fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Health {
            status,
            message: message.into(),
        }
    }

    fn current(message: impl Into<String>) -> Self {
        Health::new(HealthStatus::Current, message)
    }

    fn in_progress(message: impl Into<String>) -> Self {
        Health::new(HealthStatus::InProgress, message)
    }

    fn failed(message: impl Into<String>) -> Self {
        Health::new(HealthStatus::Failed, message)
    }

    /// The health of an object that does not exist.
    pub fn not_found() -> Self {
        Health::new(HealthStatus::NotFound, "object not found")
    }

    /// Whether the status is [`HealthStatus::Current`].
    pub fn is_current(&self) -> bool {
        self.status == HealthStatus::Current
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

/// Computes the health of a live object (JSON as the API server returns it, with `apiVersion`
/// and `kind`), with kstatus's rules (see the module docs). Never fails: missing fields take
/// the defaults the controllers use (`spec.replicas` 1, counts 0).
pub fn compute(obj: &Value) -> Health {
    if let Some(h) = generic(obj) {
        return h;
    }
    let api_version = str_at(obj, &["apiVersion"]).unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = str_at(obj, &["kind"]).unwrap_or_default();
    match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => stateful_set(obj),
        ("apps" | "extensions", "DaemonSet") => daemon_set(obj),
        ("apps" | "extensions", "ReplicaSet") => replica_set(obj),
        ("batch", "Job") => job(obj),
        ("", "Pod") => pod(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Service") => service(obj),
        ("", "Namespace") => namespace(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        ("", "ConfigMap" | "Secret") | ("batch", "CronJob") | ("policy", "PodDisruptionBudget") => {
            Health::current("Resource is always ready")
        }
        _ => ready_condition(obj).unwrap_or_else(|| Health::current("Resource is current")),
    }
}

fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(obj, path).and_then(Value::as_str)
}

fn int_at(obj: &Value, path: &[&str], default: i64) -> i64 {
    at(obj, path).and_then(Value::as_i64).unwrap_or(default)
}

/// One entry of `status.conditions`.
struct Condition<'a> {
    type_: &'a str,
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn conditions(obj: &Value) -> impl Iterator<Item = Condition<'_>> {
    at(obj, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| Condition {
            type_: c.get("type").and_then(Value::as_str).unwrap_or_default(),
            status: c.get("status").and_then(Value::as_str).unwrap_or_default(),
            reason: c.get("reason").and_then(Value::as_str).unwrap_or_default(),
            message: c.get("message").and_then(Value::as_str).unwrap_or_default(),
        })
}

fn has_condition(obj: &Value, type_: &str, status: &str) -> bool {
    conditions(obj).any(|c| c.type_ == type_ && c.status == status)
}

/// The message of a condition, or its reason when it has none.
fn condition_text(c: &Condition<'_>) -> String {
    if c.message.is_empty() {
        c.reason.to_string()
    } else {
        c.message.to_string()
    }
}

/// Rules for every kind: deletion, generation, `Reconciling`, `Stalled`.
fn generic(obj: &Value) -> Option<Health> {
    if str_at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_empty()) {
        return Some(Health::new(
            HealthStatus::Terminating,
            "Resource scheduled for deletion",
        ));
    }
    if let Some(generation) = at(obj, &["metadata", "generation"]).and_then(Value::as_i64)
        && let Some(observed) = at(obj, &["status", "observedGeneration"]).and_then(Value::as_i64)
        && observed != generation
    {
        let kind = str_at(obj, &["kind"]).unwrap_or("Resource");
        return Some(Health::in_progress(format!(
            "{kind} generation is {generation}, but latest observed generation is {observed}"
        )));
    }
    for c in conditions(obj) {
        if c.type_ == "Reconciling" && c.status == "True" {
            return Some(Health::in_progress(condition_text(&c)));
        }
        if c.type_ == "Stalled" && c.status == "True" {
            return Some(Health::failed(condition_text(&c)));
        }
    }
    None
}

fn ready_condition(obj: &Value) -> Option<Health> {
    let c = conditions(obj).find(|c| c.type_ == "Ready")?;
    match c.status {
        "True" => Some(Health::current("Resource is Ready")),
        "False" | "Unknown" => Some(Health::in_progress(condition_text(&c))),
        _ => None,
    }
}

fn deployment(obj: &Value) -> Health {
    // Without a progress deadline the controller never reports NewReplicaSetAvailable.
    let mut progressing = at(obj, &["spec", "progressDeadlineSeconds"]).is_none();
    let mut available = false;
    for c in conditions(obj) {
        match c.type_ {
            "Progressing" => {
                if c.reason == "ProgressDeadlineExceeded" {
                    let why = if c.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.message)
                    };
                    return Health::failed(format!("Progress deadline exceeded{why}"));
                }
                if c.status == "True" && c.reason == "NewReplicaSetAvailable" {
                    progressing = true;
                }
            }
            "Available" if c.status == "True" => available = true,
            _ => {}
        }
    }
    let spec = int_at(obj, &["spec", "replicas"], 1);
    let replicas = int_at(obj, &["status", "replicas"], 0);
    let updated = int_at(obj, &["status", "updatedReplicas"], 0);
    let ready = int_at(obj, &["status", "readyReplicas"], 0);
    let avail = int_at(obj, &["status", "availableReplicas"], 0);
    if spec > replicas {
        return Health::in_progress(format!("Replicas: {replicas}/{spec}"));
    }
    if spec > updated {
        return Health::in_progress(format!("Updated: {updated}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    if updated > avail {
        return Health::in_progress(format!("Available: {avail}/{updated}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if !progressing {
        return Health::in_progress("ReplicaSet not Available");
    }
    if !available {
        return Health::in_progress("Deployment not Available");
    }
    Health::current(format!("Deployment is available. Replicas: {replicas}"))
}

fn stateful_set(obj: &Value) -> Health {
    if str_at(obj, &["spec", "updateStrategy", "type"]) == Some("OnDelete") {
        return Health::current("StatefulSet is using the ondelete update strategy");
    }
    let spec = int_at(obj, &["spec", "replicas"], 1);
    let ready = int_at(obj, &["status", "readyReplicas"], 0);
    let current = int_at(obj, &["status", "currentReplicas"], 0);
    let updated = int_at(obj, &["status", "updatedReplicas"], 0);
    let replicas = int_at(obj, &["status", "replicas"], 0);
    let partition = at(
        obj,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    )
    .and_then(Value::as_i64);
    if spec > replicas {
        return Health::in_progress(format!("Replicas: {replicas}/{spec}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    if let Some(partition) = partition {
        let want = spec - partition;
        if updated < want {
            return Health::in_progress(format!("updated: {updated}/{want}"));
        }
        return Health::current(format!("Partition rollout complete. updated: {updated}"));
    }
    if spec > current {
        return Health::in_progress(format!("current: {current}/{spec}"));
    }
    if str_at(obj, &["status", "currentRevision"]).unwrap_or_default()
        != str_at(obj, &["status", "updateRevision"]).unwrap_or_default()
    {
        return Health::in_progress("Waiting for updated revision to match current");
    }
    Health::current(format!(
        "All replicas scheduled as expected. Replicas: {replicas}"
    ))
}

fn daemon_set(obj: &Value) -> Health {
    if at(obj, &["metadata", "generation"]).is_none() {
        return Health::in_progress("DaemonSet metadata.generation not found");
    }
    if at(obj, &["status", "observedGeneration"]).is_none() {
        return Health::in_progress("DaemonSet status.observedGeneration not found");
    }
    let Some(desired) = at(obj, &["status", "desiredNumberScheduled"]).and_then(Value::as_i64)
    else {
        return Health::in_progress("Missing .status.desiredNumberScheduled");
    };
    let current = int_at(obj, &["status", "currentNumberScheduled"], 0);
    let updated = int_at(obj, &["status", "updatedNumberScheduled"], 0);
    let available = int_at(obj, &["status", "numberAvailable"], 0);
    let ready = int_at(obj, &["status", "numberReady"], 0);
    if desired > current {
        return Health::in_progress(format!("Current: {current}/{desired}"));
    }
    if desired > updated {
        return Health::in_progress(format!("Updated: {updated}/{desired}"));
    }
    if desired > available {
        return Health::in_progress(format!("Available: {available}/{desired}"));
    }
    if desired > ready {
        return Health::in_progress(format!("Ready: {ready}/{desired}"));
    }
    Health::current(format!(
        "All replicas scheduled as expected. Replicas: {desired}"
    ))
}

fn replica_set(obj: &Value) -> Health {
    if has_condition(obj, "ReplicaFailure", "True") {
        return Health::in_progress("Replica Failure condition. Check Pods");
    }
    let spec = int_at(obj, &["spec", "replicas"], 1);
    let replicas = int_at(obj, &["status", "replicas"], 0);
    let ready = int_at(obj, &["status", "readyReplicas"], 0);
    let available = int_at(obj, &["status", "availableReplicas"], 0);
    let labeled = int_at(obj, &["status", "fullyLabeledReplicas"], 0);
    if spec > labeled {
        return Health::in_progress(format!("Labelled: {labeled}/{spec}"));
    }
    if spec > available {
        return Health::in_progress(format!("Available: {available}/{spec}"));
    }
    if spec > ready {
        return Health::in_progress(format!("Ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return Health::in_progress(format!("Pending termination: {}", replicas - spec));
    }
    Health::current(format!("ReplicaSet is available. Replicas: {replicas}"))
}

fn job(obj: &Value) -> Health {
    let parallelism = int_at(obj, &["spec", "parallelism"], 1);
    let completions = int_at(obj, &["spec", "completions"], parallelism);
    let succeeded = int_at(obj, &["status", "succeeded"], 0);
    let active = int_at(obj, &["status", "active"], 0);
    let failed = int_at(obj, &["status", "failed"], 0);
    let suspended = at(obj, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true);
    for c in conditions(obj) {
        match (c.type_, c.status) {
            ("Complete", "True") => {
                return Health::current(format!(
                    "Job Completed. succeeded: {succeeded}/{completions}"
                ));
            }
            ("Failed", "True") => {
                let why = if c.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({}: {})", c.reason, c.message)
                };
                return Health::failed(format!("Job Failed. failed: {failed}/{completions}{why}"));
            }
            ("Suspended", "True") if suspended => return Health::current("Job is suspended"),
            _ => {}
        }
    }
    // As Flux's custom Job status reader (fluxcd/pkg runtime/statusreaders), not kstatus: a
    // Job is Current only once Complete, so `wait` runs migrations to their end.
    if str_at(obj, &["status", "startTime"]).is_none_or(str::is_empty) {
        return Health::in_progress("Job not started");
    }
    Health::in_progress(format!(
        "Job in progress. success: {succeeded}, active: {active}, failed: {failed}"
    ))
}

fn pod(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]).unwrap_or_default() {
        "Succeeded" => Health::current("Pod has completed successfully"),
        "Failed" => Health::current("Pod has completed, but not successfully"),
        "Running" => {
            if has_condition(obj, "Ready", "True") {
                return Health::current("Pod is Ready");
            }
            let crashing: Vec<&str> = at(obj, &["status", "containerStatuses"])
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|cs| {
                    str_at(cs, &["state", "waiting", "reason"]) == Some("CrashLoopBackOff")
                })
                .filter_map(|cs| str_at(cs, &["name"]))
                .collect();
            if !crashing.is_empty() {
                return Health::failed(format!(
                    "Containers in CrashLoop state: {}",
                    crashing.join(",")
                ));
            }
            Health::in_progress("Pod is running but is not Ready")
        }
        "Pending" => {
            if conditions(obj).any(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason == "Unschedulable"
            }) {
                // kstatus turns this Failed after 15 s; a pure function cannot tell the time,
                // so it stays InProgress with the scheduler's message.
                let msg = conditions(obj)
                    .find(|c| c.type_ == "PodScheduled")
                    .map(|c| condition_text(&c))
                    .unwrap_or_default();
                return Health::in_progress(format!("Pod has not been scheduled: {msg}"));
            }
            Health::in_progress("Pod is in the Pending phase")
        }
        "" => Health::in_progress("Pod phase not available"),
        other => Health::in_progress(format!("Pod is in unknown phase {other}")),
    }
}

fn pvc(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        Some("Bound") => Health::current("PVC is Bound"),
        phase => Health::in_progress(format!(
            "PVC is not Bound. phase: {}",
            phase.unwrap_or("unknown")
        )),
    }
}

fn service(obj: &Value) -> Health {
    if str_at(obj, &["spec", "type"]) == Some("LoadBalancer") {
        if str_at(obj, &["spec", "clusterIP"]).is_none_or(str::is_empty) {
            return Health::in_progress("ClusterIP not set. Service type: LoadBalancer");
        }
        let ingress = at(obj, &["status", "loadBalancer", "ingress"])
            .and_then(Value::as_array)
            .is_some_and(|i| !i.is_empty());
        if !ingress {
            return Health::in_progress("LoadBalancer ingress not set. Service type: LoadBalancer");
        }
    }
    Health::current("Service is ready")
}

fn namespace(obj: &Value) -> Health {
    match str_at(obj, &["status", "phase"]) {
        Some("Active") => Health::current("Namespace is Active"),
        Some("Terminating") => Health::new(HealthStatus::Terminating, "Namespace is Terminating"),
        phase => Health::in_progress(format!(
            "Namespace is not Active. phase: {}",
            phase.unwrap_or("unknown")
        )),
    }
}

fn crd(obj: &Value) -> Health {
    for c in conditions(obj) {
        if c.type_ == "NamesAccepted" && c.status == "False" {
            return Health::failed(format!(
                "CRD names have not been accepted: {}",
                condition_text(&c)
            ));
        }
        if c.type_ == "Established" {
            if c.status == "False" && c.reason != "Installing" {
                return Health::failed(condition_text(&c));
            }
            if c.status == "True" {
                return Health::current("CRD is established");
            }
        }
    }
    Health::in_progress("Install in progress")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use HealthStatus::*;

    fn deploy(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "generation": 2},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600},
            "status": status})
    }

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message})
    }

    fn with_conditions(api_version: &str, kind: &str, conds: Vec<Value>) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"},
            "status": {"conditions": conds}})
    }

    #[test]
    fn kstatus_table() {
        let available = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
            "readyReplicas": 2, "availableReplicas": 2, "conditions": [
                cond("Progressing", "True", "NewReplicaSetAvailable", ""),
                cond("Available", "True", "MinimumReplicasAvailable", "")]});
        let cases: Vec<(&str, Value, HealthStatus, &str)> = vec![
            // Generic rules.
            (
                "terminating",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "x", "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
                Terminating,
                "Resource scheduled for deletion",
            ),
            (
                "generation not observed",
                deploy(json!({"observedGeneration": 1})),
                InProgress,
                "Deployment generation is 2, but latest observed generation is 1",
            ),
            (
                "stalled",
                with_conditions(
                    "helm.toolkit.fluxcd.io/v2",
                    "HelmRelease",
                    vec![
                        cond(
                            "Stalled",
                            "True",
                            "InstallFailed",
                            "install retries exhausted",
                        ),
                        cond("Ready", "False", "InstallFailed", "boom"),
                    ],
                ),
                Failed,
                "install retries exhausted",
            ),
            (
                "reconciling",
                with_conditions(
                    "helm.toolkit.fluxcd.io/v2",
                    "HelmRelease",
                    vec![cond(
                        "Reconciling",
                        "True",
                        "Progressing",
                        "installing release",
                    )],
                ),
                InProgress,
                "installing release",
            ),
            (
                "ready true",
                with_conditions(
                    "example.com/v1",
                    "Widget",
                    vec![cond("Ready", "True", "Succeeded", "ok")],
                ),
                Current,
                "Resource is Ready",
            ),
            (
                "ready false",
                with_conditions(
                    "example.com/v1",
                    "Widget",
                    vec![cond("Ready", "False", "Waiting", "waiting for db")],
                ),
                InProgress,
                "waiting for db",
            ),
            (
                "ready unknown",
                with_conditions(
                    "example.com/v1",
                    "Widget",
                    vec![cond("Ready", "Unknown", "Progressing", "")],
                ),
                InProgress,
                "Progressing",
            ),
            (
                "no conditions",
                json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "x"}}),
                Current,
                "Resource is current",
            ),
            (
                "configmap",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
                Current,
                "Resource is always ready",
            ),
            // Deployment.
            (
                "deployment available",
                deploy(available.clone()),
                Current,
                "Deployment is available. Replicas: 2",
            ),
            (
                "deployment no status",
                deploy(json!({})),
                InProgress,
                "Replicas: 0/2",
            ),
            (
                "deployment not updated",
                deploy(json!({"replicas": 2, "updatedReplicas": 1})),
                InProgress,
                "Updated: 1/2",
            ),
            (
                "deployment extra pods",
                deploy(json!({"replicas": 3, "updatedReplicas": 2})),
                InProgress,
                "Pending termination: 1",
            ),
            (
                "deployment not available",
                deploy(json!({"replicas": 2, "updatedReplicas": 2,
                "availableReplicas": 0})),
                InProgress,
                "Available: 0/2",
            ),
            (
                "deployment not ready",
                deploy(json!({"replicas": 2, "updatedReplicas": 2,
                "availableReplicas": 2, "readyReplicas": 1})),
                InProgress,
                "Ready: 1/2",
            ),
            (
                "deployment rs not available",
                deploy(json!({"replicas": 2, "updatedReplicas": 2,
                "availableReplicas": 2, "readyReplicas": 2})),
                InProgress,
                "ReplicaSet not Available",
            ),
            (
                "deployment deadline",
                deploy(json!({"conditions": [cond("Progressing", "False",
                "ProgressDeadlineExceeded", "ReplicaSet \"podinfo-1\" has timed out progressing.")]})),
                Failed,
                "Progress deadline exceeded: ReplicaSet \"podinfo-1\" has timed out progressing.",
            ),
            // StatefulSet.
            (
                "sts current",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "x"}, "spec": {"replicas": 1}, "status": {"replicas": 1,
                "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1,
                "currentRevision": "a", "updateRevision": "a"}}),
                Current,
                "All replicas scheduled as expected. Replicas: 1",
            ),
            (
                "sts revision",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "x"}, "spec": {"replicas": 1}, "status": {"replicas": 1,
                "readyReplicas": 1, "currentReplicas": 1, "currentRevision": "a",
                "updateRevision": "b"}}),
                InProgress,
                "Waiting for updated revision to match current",
            ),
            (
                "sts not ready",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "x"}, "spec": {"replicas": 3}, "status": {"replicas": 3,
                "readyReplicas": 1}}),
                InProgress,
                "Ready: 1/3",
            ),
            (
                "sts ondelete",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "x"}, "spec": {"updateStrategy": {"type": "OnDelete"}}}),
                Current,
                "StatefulSet is using the ondelete update strategy",
            ),
            (
                "sts partition",
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "x"}, "spec": {"replicas": 3, "updateStrategy":
                {"rollingUpdate": {"partition": 1}}}, "status": {"replicas": 3,
                "readyReplicas": 3, "updatedReplicas": 1}}),
                InProgress,
                "updated: 1/2",
            ),
            // DaemonSet.
            (
                "ds current",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "x", "generation": 1}, "status": {"observedGeneration": 1,
                "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2}}),
                Current,
                "All replicas scheduled as expected. Replicas: 2",
            ),
            (
                "ds unobserved",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "x", "generation": 1}, "status": {}}),
                InProgress,
                "DaemonSet status.observedGeneration not found",
            ),
            (
                "ds not available",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "x", "generation": 1}, "status": {"observedGeneration": 1,
                "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2, "numberAvailable": 1}}),
                InProgress,
                "Available: 1/2",
            ),
            // ReplicaSet.
            (
                "rs current",
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "x"}, "spec": {"replicas": 1}, "status": {"replicas": 1,
                "fullyLabeledReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}}),
                Current,
                "ReplicaSet is available. Replicas: 1",
            ),
            (
                "rs failure",
                with_conditions(
                    "apps/v1",
                    "ReplicaSet",
                    vec![cond("ReplicaFailure", "True", "FailedCreate", "quota")],
                ),
                InProgress,
                "Replica Failure condition. Check Pods",
            ),
            // Job.
            (
                "job complete",
                json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "x"}, "status": {"succeeded": 1, "conditions": [
                cond("Complete", "True", "", "")]}}),
                Current,
                "Job Completed. succeeded: 1/1",
            ),
            (
                "job failed",
                json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "x"}, "status": {"failed": 1, "conditions": [
                cond("Failed", "True", "DeadlineExceeded", "Job was active longer than specified deadline")]}}),
                Failed,
                "Job Failed. failed: 1/1 (DeadlineExceeded: Job was active longer than specified deadline)",
            ),
            (
                "job not started",
                json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "x"}}),
                InProgress,
                "Job not started",
            ),
            (
                "job running",
                json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "x"}, "status": {"startTime": "2024-01-01T00:00:00Z",
                "active": 1}}),
                InProgress,
                "Job in progress. success: 0, active: 1, failed: 0",
            ),
            // Pod.
            (
                "pod ready",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "status": {"phase": "Running", "conditions": [cond("Ready", "True", "", "")]}}),
                Current,
                "Pod is Ready",
            ),
            (
                "pod not ready",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "status": {"phase": "Running"}}),
                InProgress,
                "Pod is running but is not Ready",
            ),
            (
                "pod crashloop",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                Failed,
                "Containers in CrashLoop state: app",
            ),
            (
                "pod pending",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "status": {"phase": "Pending"}}),
                InProgress,
                "Pod is in the Pending phase",
            ),
            (
                "pod succeeded",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                "status": {"phase": "Succeeded"}}),
                Current,
                "Pod has completed successfully",
            ),
            // PVC.
            (
                "pvc bound",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "x"}, "status": {"phase": "Bound"}}),
                Current,
                "PVC is Bound",
            ),
            (
                "pvc pending",
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "x"}, "status": {"phase": "Pending"}}),
                InProgress,
                "PVC is not Bound. phase: Pending",
            ),
            // Service.
            (
                "svc clusterip",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"clusterIP": "10.0.0.1"}}),
                Current,
                "Service is ready",
            ),
            (
                "svc lb pending",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1"}, "status": {"loadBalancer": {}}}),
                InProgress,
                "LoadBalancer ingress not set. Service type: LoadBalancer",
            ),
            (
                "svc lb ready",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1"},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
                Current,
                "Service is ready",
            ),
            // CRD.
            (
                "crd established",
                with_conditions(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    vec![
                        cond("NamesAccepted", "True", "", ""),
                        cond("Established", "True", "", ""),
                    ],
                ),
                Current,
                "CRD is established",
            ),
            (
                "crd installing",
                with_conditions(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    vec![cond("Established", "False", "Installing", "")],
                ),
                InProgress,
                "Install in progress",
            ),
            (
                "crd names",
                with_conditions(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    vec![cond(
                        "NamesAccepted",
                        "False",
                        "MultipleNamesNotAllowed",
                        "plural taken",
                    )],
                ),
                Failed,
                "CRD names have not been accepted: plural taken",
            ),
            // Namespace.
            (
                "ns active",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"},
                "status": {"phase": "Active"}}),
                Current,
                "Namespace is Active",
            ),
            (
                "ns terminating",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"},
                "status": {"phase": "Terminating"}}),
                Terminating,
                "Namespace is Terminating",
            ),
        ];
        for (name, obj, status, message) in cases {
            let h = compute(&obj);
            assert_eq!(
                h,
                Health {
                    status,
                    message: message.to_string()
                },
                "case {name}"
            );
        }
    }

    #[test]
    fn display_names_status_and_message() {
        let h = compute(&deploy(json!({"replicas": 2, "updatedReplicas": 2})));
        assert_eq!(h.to_string(), "InProgress: Available: 0/2");
        assert_eq!(
            Health::not_found().to_string(),
            "NotFound: object not found"
        );
    }
}
