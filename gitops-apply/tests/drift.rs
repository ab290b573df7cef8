//! Drift correction, immutable fields and field-manager takeover of SsaApplier against a real
//! kube-apiserver (gitops-testenv, from `KUBEBUILDER_ASSETS`), with Flux's semantics.

use gitops_apply::{ApplyError, SsaApplier};
use gitops_core::{Action, ChangeSet, Object};
use gitops_testenv::TestEnv;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

fn objects_from_yaml(yaml: &str) -> Vec<Object> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn actions(cs: &ChangeSet) -> Vec<String> {
    cs.entries.iter().map(|e| e.to_string()).collect()
}

fn drift_of<'a>(cs: &'a ChangeSet, name: &str) -> &'a [String] {
    &cs.entries
        .iter()
        .find(|e| e.id.name == name)
        .unwrap_or_else(|| panic!("{name} not in {cs}"))
        .drift
}

fn api(client: &kube::Client, group: &str, version: &str, kind: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), "default", &ar)
}

async fn start() -> TestEnv {
    TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap()
}

/// A merge patch sent with another field manager, as `kubectl edit` does.
async fn edit(api: &Api<DynamicObject>, name: &str, manager: &str, patch: serde_json::Value) {
    let params = PatchParams {
        field_manager: Some(manager.into()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(patch))
        .await
        .unwrap();
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {key: git, other: git}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27"}
"#;

/// `kubectl edit` and another controller change live objects: every apply reports the objects
/// `configured` with the drifted fields and puts Git's values back; the next apply is
/// `unchanged` (no flapping between managers); an object deleted by hand is created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_with_its_fields_and_corrected() {
    let env = start().await;
    let applier = SsaApplier::new(env.client()).with_field_manager("kustomize-controller");
    let objs = objects_from_yaml(APP);
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "ConfigMap/default/settings created",
            "Deployment/default/web created"
        ]
    );
    assert!(cs.entries.iter().all(|e| e.drift.is_empty()), "{cs:?}");

    let cms = api(&env.client(), "", "v1", "ConfigMap");
    let deployments = api(&env.client(), "apps", "v1", "Deployment");
    edit(
        &cms,
        "settings",
        "kubectl-edit",
        json!({"data": {"key": "edited"}}),
    )
    .await;
    edit(
        &deployments,
        "web",
        "kubectl-edit",
        json!({"spec": {"replicas": 5}}),
    )
    .await;

    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "ConfigMap/default/settings configured",
            "Deployment/default/web configured"
        ]
    );
    assert_eq!(drift_of(&cs, "settings"), ["data.key"]);
    assert_eq!(drift_of(&cs, "web"), ["spec.replicas"]);
    assert_eq!(
        cms.get("settings").await.unwrap().data["data"]["key"],
        "git"
    );
    assert_eq!(
        deployments.get("web").await.unwrap().data["spec"]["replicas"],
        2
    );
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );

    // Another controller (not kubectl) takes a field; forcing our ownership corrects it, and
    // the apply after is unchanged: the two managers do not flap.
    edit(
        &cms,
        "settings",
        "other-controller",
        json!({"data": {"other": "theirs"}}),
    )
    .await;
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert_eq!(actions(&cs)[0], "ConfigMap/default/settings configured");
    assert_eq!(drift_of(&cs, "settings"), ["data.other"]);
    assert_eq!(
        cms.get("settings").await.unwrap().data["data"]["other"],
        "git"
    );
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );

    // Deleted by hand: created again.
    cms.delete("settings", &Default::default()).await.unwrap();
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "ConfigMap/default/settings created",
            "Deployment/default/web unchanged"
        ]
    );
    assert_eq!(
        cms.get("settings").await.unwrap().data["data"]["key"],
        "git"
    );
}

fn job(image: &str, meta: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: default
{meta}spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {{name: migrate, image: "{image}"}}
"#
    )
}

fn service(extra_spec: &str, meta: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
{meta}spec:
  selector: {{app: web}}
  ports:
  - {{port: 80, protocol: TCP}}
{extra_spec}"#
    )
}

const FORCE_ANNOTATION: &str = "  annotations:\n    kustomize.toolkit.fluxcd.io/force: enabled\n";

/// A Job's template and a Service's clusterIP cannot change: without force the error names the
/// object and the field; with the applier's force or the object's `force: enabled` annotation
/// the object is deleted and created again (reported `created`, as Flux does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_fields_fail_without_force_and_recreate_with_force() {
    let env = start().await;
    let applier = SsaApplier::new(env.client());
    let jobs = api(&env.client(), "batch", "v1", "Job");
    let services = api(&env.client(), "", "v1", "Service");

    let cs = applier
        .apply_all_staged(&objects_from_yaml(&format!(
            "{}---{}",
            job("busybox:1.36", ""),
            service("", "")
        )))
        .await
        .unwrap();
    assert_eq!(
        actions(&cs),
        ["Service/default/web created", "Job/default/migrate created"]
    );
    let job_uid = jobs.get("migrate").await.unwrap().metadata.uid;

    // Job template changed, no force.
    let changed_job = objects_from_yaml(&job("busybox:1.37", ""));
    let err = applier.apply_all_staged(&changed_job).await.unwrap_err();
    let msg = err.to_string();
    match &err {
        ApplyError::Immutable { object, fields, .. } => {
            assert_eq!(object, "Job/default/migrate");
            assert!(fields.iter().any(|f| f == "spec.template"), "{msg}");
        }
        other => panic!("expected an immutable-field error, got {other}"),
    }
    assert!(
        msg.contains("Job/default/migrate") && msg.contains("spec.template"),
        "{msg}"
    );
    assert!(!err.is_retryable());
    assert_eq!(jobs.get("migrate").await.unwrap().metadata.uid, job_uid);

    // The applier's force recreates it.
    let cs = SsaApplier::new(env.client())
        .with_force(true)
        .apply_all_staged(&changed_job)
        .await
        .unwrap();
    assert_eq!(actions(&cs), ["Job/default/migrate created"]);
    let live = jobs.get("migrate").await.unwrap();
    assert_ne!(live.metadata.uid, job_uid, "a new object");
    assert_eq!(
        live.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );

    // Service clusterIP: a headless Service cannot be made from one with an address.
    let headless = |meta: &str| objects_from_yaml(&service("  clusterIP: None\n", meta));
    let err = applier.apply_all_staged(&headless("")).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, ApplyError::Immutable { fields, .. } if fields.iter().any(|f| f.starts_with("spec.clusterIP"))),
        "{msg}"
    );
    assert!(msg.contains("Service/default/web"), "{msg}");
    let svc_uid = services.get("web").await.unwrap().metadata.uid;

    // The object's force annotation recreates it with an applier that is not forced.
    let cs = applier
        .apply_all_staged(&headless(FORCE_ANNOTATION))
        .await
        .unwrap();
    assert_eq!(actions(&cs), ["Service/default/web created"]);
    let live = services.get("web").await.unwrap();
    assert_ne!(live.metadata.uid, svc_uid);
    assert_eq!(live.data["spec"]["clusterIP"], "None");
    let cs = applier
        .apply_all_staged(&headless(FORCE_ANNOTATION))
        .await
        .unwrap();
    assert_eq!(actions(&cs), ["Service/default/web unchanged"]);
}

/// Creates a ConfigMap as `kubectl apply` (client-side) does: manager
/// `kubectl-client-side-apply` and the last-applied annotation.
async fn kubectl_create(cms: &Api<DynamicObject>, name: &str) {
    let data = json!({"keep": "1", "extra": "from-kubectl"});
    let last_applied = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    });
    let cm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string()
            }
        },
        "data": data,
    }))
    .unwrap();
    let params = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    cms.create(&params, &cm).await.unwrap();
}

/// Fields of `kubectl-client-side-apply` are taken over by our field manager (Flux's metadata
/// cleanup), so a field removed from the desired object is removed from the cluster; with
/// `kustomize.toolkit.fluxcd.io/ssa: Merge` the other manager's field is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_fields_are_taken_over_unless_ssa_merge() {
    let env = start().await;
    let applier = SsaApplier::new(env.client());
    let cms = api(&env.client(), "", "v1", "ConfigMap");
    kubectl_create(&cms, "taken").await;
    kubectl_create(&cms, "merged").await;

    let desired = objects_from_yaml(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: taken, namespace: default}
data: {keep: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: merged
  namespace: default
  annotations: {kustomize.toolkit.fluxcd.io/ssa: merge}
data: {keep: "1"}
"#,
    );
    let cs = applier.apply_all_staged(&desired).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "ConfigMap/default/merged configured",
            "ConfigMap/default/taken configured"
        ]
    );
    assert_eq!(drift_of(&cs, "taken"), ["data.extra"]);

    let taken = cms.get("taken").await.unwrap();
    assert_eq!(taken.data["data"], json!({"keep": "1"}), "extra removed");
    assert!(
        !taken
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );
    let managers: Vec<_> = taken
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["gitops"], "sole owner after the takeover");

    let merged = cms.get("merged").await.unwrap();
    assert_eq!(
        merged.data["data"],
        json!({"keep": "1", "extra": "from-kubectl"}),
        "ssa: Merge keeps the other manager's field"
    );
    assert!(
        merged
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some("kubectl-client-side-apply"))
    );

    // Nothing flaps.
    let cs = applier.apply_all_staged(&desired).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );
}
