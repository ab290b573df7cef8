//! `SsaApplier::wait_healthy` against a real kube-apiserver with kube-controller-manager and the
//! simulated node of gitops-testenv (every pod bound to the node reported running and ready;
//! pods pinned to another node stay Pending).

use std::time::Duration;

use gitops_apply::{ApplyError, HealthStatus, SsaApplier};
use gitops_core::{Object, ObjectId};
use gitops_testenv::TestEnv;
use serde_json::{Value, json};

/// Long enough for the controllers on a loaded machine; the waits end on events, not on it.
const LONG: Duration = Duration::from_secs(120);

fn object(v: Value) -> Object {
    serde_json::from_value(v).unwrap()
}

/// A Deployment of `replicas` pods; `node` pins them to a node (one that does not exist keeps
/// them Pending).
fn deployment(name: &str, replicas: i64, node: Option<&str>, deadline: Option<i64>) -> Object {
    let mut pod_spec =
        json!({"containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.5.0"}]});
    if let Some(node) = node {
        pod_spec["nodeName"] = json!(node);
    }
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    });
    if let Some(d) = deadline {
        spec["progressDeadlineSeconds"] = json!(d);
    }
    object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}))
}

fn id(group: &str, kind: &str, name: &str) -> ObjectId {
    ObjectId::new(group, kind, "default", name)
}

fn unhealthy(err: ApplyError) -> (gitops_apply::HealthReport, Option<Duration>) {
    match err {
        ApplyError::Unhealthy { report, timeout } => (report, timeout),
        other => panic!("expected Unhealthy, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_healthy_follows_kstatus_through_the_watch() {
    let env = TestEnv::builder()
        .controller_manager(true)
        .node_simulator(true)
        .start()
        .await
        .unwrap();
    let applier = SsaApplier::new(env.client());

    // A Deployment whose pods run becomes Current; so does a ClusterIP Service.
    let svc = object(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "podinfo", "namespace": "default"},
        "spec": {"selector": {"app": "podinfo"}, "ports": [{"port": 9898, "protocol": "TCP"}]}}));
    applier
        .apply_all_staged(&[deployment("podinfo", 2, None, None), svc])
        .await
        .unwrap();
    let ids = [
        id("apps", "Deployment", "podinfo"),
        id("", "Service", "podinfo"),
    ];
    let report = applier.wait_healthy(&ids, LONG).await.unwrap();
    assert!(report.is_healthy(), "{report}");
    let dep = report.get(&ids[0]).unwrap();
    assert_eq!(dep.status, HealthStatus::Current);
    assert_eq!(dep.message, "Deployment is available. Replicas: 2");
    assert_eq!(report.get(&ids[1]).unwrap().message, "Service is ready");

    // Pods that never start and a 1 s progress deadline: Failed, before the timeout.
    applier
        .apply_all_staged(&[deployment("stuck-deadline", 1, Some("nowhere"), Some(1))])
        .await
        .unwrap();
    let failing = [
        id("apps", "Deployment", "podinfo"),
        id("apps", "Deployment", "stuck-deadline"),
    ];
    let (report, timeout) = unhealthy(applier.wait_healthy(&failing, LONG).await.unwrap_err());
    assert_eq!(timeout, None, "failed early: {report}");
    let h = report.get(&failing[1]).unwrap();
    assert_eq!(h.status, HealthStatus::Failed, "{report}");
    assert!(h.message.starts_with("Progress deadline exceeded"), "{h}");
    // Only the unhealthy object is named.
    let msg = ApplyError::Unhealthy {
        report: report.clone(),
        timeout,
    }
    .to_string();
    assert!(
        msg.starts_with("health check failed: Deployment/default/stuck-deadline: Failed: Progress deadline exceeded"),
        "{msg}"
    );
    assert!(!msg.contains("Deployment/default/podinfo"), "{msg}");

    // A Job that runs past its activeDeadlineSeconds fails.
    let job = object(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "default"},
        "spec": {"activeDeadlineSeconds": 1, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "nodeName": "nowhere",
            "containers": [{"name": "migrate", "image": "busybox"}]}}}}));
    applier.apply_all_staged(&[job]).await.unwrap();
    let job_id = [id("batch", "Job", "migrate")];
    let (report, timeout) = unhealthy(applier.wait_healthy(&job_id, LONG).await.unwrap_err());
    assert_eq!(timeout, None, "{report}");
    let h = report.get(&job_id[0]).unwrap();
    assert_eq!(h.status, HealthStatus::Failed, "{report}");
    assert!(h.message.starts_with("Job Failed."), "{h}");
    assert!(h.message.contains("DeadlineExceeded"), "{h}");

    // A missing object and one that stays InProgress: the timeout names both, and why.
    applier
        .apply_all_staged(&[deployment("stuck", 1, Some("nowhere"), None)])
        .await
        .unwrap();
    let waiting = [
        id("apps", "Deployment", "stuck"),
        id("", "ConfigMap", "missing"),
        id("apps", "Deployment", "podinfo"),
    ];
    let err = applier
        .wait_healthy(&waiting, Duration::from_secs(3))
        .await
        .unwrap_err();
    let text = err.to_string();
    let (report, timeout) = unhealthy(err);
    assert_eq!(timeout, Some(Duration::from_secs(3)));
    assert_eq!(
        report.get(&waiting[0]).unwrap().status,
        HealthStatus::InProgress
    );
    assert_eq!(
        report.get(&waiting[1]).unwrap().status,
        HealthStatus::NotFound
    );
    assert!(
        text.starts_with("health check timed out after 3s: Deployment/default/stuck: InProgress: "),
        "{text}"
    );
    assert!(
        text.contains("ConfigMap/default/missing: NotFound: object not found"),
        "{text}"
    );
    assert!(!text.contains("podinfo"), "{text}");

    // An object of a kind the server does not serve is NotFound, and says so.
    let unknown = [ObjectId::new("example.com", "Widget", "default", "w")];
    let (report, _) = unhealthy(
        applier
            .wait_healthy(&unknown, Duration::from_secs(1))
            .await
            .unwrap_err(),
    );
    let h = report.get(&unknown[0]).unwrap();
    assert_eq!(h.status, HealthStatus::NotFound);
    assert_eq!(
        h.message,
        "kind example.com/Widget is not served by the API server"
    );

    env.stop();
}
