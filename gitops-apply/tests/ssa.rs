//! SsaApplier against a real kube-apiserver (gitops-testenv, from `KUBEBUILDER_ASSETS`).

use std::path::Path;

use gitops_apply::{ApplyError, SsaApplier};
use gitops_core::pipeline::{OwnerLabels, prepare_objects};
use gitops_core::{Action, ChangeSet, Inventory, Object};
use gitops_testenv::TestEnv;
use gitops_testenv::rbac::{Grant, RbacSubject};
use gitops_testenv::requests::RequestLog;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

fn objects_from_yaml(yaml: &str) -> Vec<Object> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            let v: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn podinfo() -> Vec<Object> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/expected/podinfo-k8s120_kustomize.yaml");
    let mut objs = objects_from_yaml(&std::fs::read_to_string(file).unwrap());
    prepare_objects(
        &mut objs,
        &OwnerLabels::flux("flux-system", "podinfo"),
        Some("default"),
    )
    .unwrap();
    objs
}

fn actions(cs: &ChangeSet) -> Vec<String> {
    cs.entries.iter().map(|e| e.to_string()).collect()
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), ns, &ar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reports_created_unchanged_configured_and_prunes_only_owned_objects() {
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let requests = RequestLog::new();
    let applier = SsaApplier::new(requests.client(env.kube_config()).unwrap());

    let objs = podinfo();
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "Service/default/podinfo created",
            "Deployment/default/podinfo created",
            "HorizontalPodAutoscaler/default/podinfo created"
        ]
    );
    let deployments = api(&env.client(), "apps", "v1", "Deployment", "default");
    let rv = deployments
        .get("podinfo")
        .await
        .unwrap()
        .metadata
        .resource_version;

    // Same objects again: nothing is written, and not even a dry run is sent: each live
    // object holds what we applied (the Deployment's `cpu: 2000m` stored as `2`, its
    // `emptyDir: {}` recorded for no manager).
    requests.clear();
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );
    let sent: Vec<String> = requests.take().iter().map(|r| r.verb()).collect();
    assert!(
        sent.iter().all(|v| v == "GET"),
        "only the GETs of the three objects: {sent:?}"
    );
    assert_eq!(
        deployments
            .get("podinfo")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv,
        "not re-applied"
    );

    // A changed field: only that object is configured.
    let mut changed = objs.clone();
    let dep = changed
        .iter_mut()
        .find(|o| o.kind() == "Deployment")
        .unwrap();
    dep.as_map_mut()["spec"]["minReadySeconds"] = serde_json::json!(7);
    let cs = applier.apply_all_staged(&changed).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "Service/default/podinfo unchanged",
            "Deployment/default/podinfo configured",
            "HorizontalPodAutoscaler/default/podinfo unchanged"
        ]
    );

    // Prune: the HPA is deleted, the Service is kept because pruning is disabled on it, and the
    // Deployment is kept because another owner took it over.
    let inventory = cs.to_inventory();
    let services = api(&env.client(), "", "v1", "Service", "default");
    let patch = serde_json::json!({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"}}});
    services
        .patch(
            "podinfo",
            &Default::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .unwrap();
    let patch = serde_json::json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "someone-else"}}});
    deployments
        .patch(
            "podinfo",
            &Default::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .unwrap();
    let stale = inventory.stale_since(&Inventory::default());
    let owner = OwnerLabels::flux("flux-system", "podinfo").pairs();
    let cs = applier.delete_all(&stale, &owner).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "HorizontalPodAutoscaler/default/podinfo deleted",
            "Deployment/default/podinfo skipped",
            "Service/default/podinfo skipped"
        ],
        "reverse apply order"
    );
    assert!(
        api(
            &env.client(),
            "autoscaling",
            "v2beta2",
            "HorizontalPodAutoscaler",
            "default"
        )
        .get_opt("podinfo")
        .await
        .unwrap()
        .is_none()
    );
    assert!(services.get_opt("podinfo").await.unwrap().is_some());
    assert!(deployments.get_opt("podinfo").await.unwrap().is_some());
    // Already gone counts as deleted.
    let cs = applier.delete_all(&stale[2..], &owner).await.unwrap();
    assert_eq!(
        actions(&cs),
        ["HorizontalPodAutoscaler/default/podinfo deleted"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_and_namespaces_are_applied_first_and_unknown_kinds_are_named() {
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let applier = SsaApplier::new(env.client()).with_field_manager("kustomize-controller");
    // A custom resource listed before its CRD and its Namespace: staging makes it work.
    let objs = objects_from_yaml(
        r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: shop}
spec: {size: 3}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#,
    );
    let cs = applier.apply_all_staged(&objs).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "CustomResourceDefinition/widgets.example.com created",
            "Namespace/shop created",
            "Widget/shop/w1 created"
        ]
    );
    let widget = api(&env.client(), "example.com", "v1", "Widget", "shop")
        .get("w1")
        .await
        .unwrap();
    assert_eq!(widget.data["spec"]["size"], 3);
    assert!(
        widget
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some("kustomize-controller")),
        "applied with the configured field manager"
    );

    let unknown = objects_from_yaml(
        "apiVersion: example.com/v9\nkind: Gadget\nmetadata: {name: g1, namespace: shop}\n",
    );
    let err = applier.apply_all_staged(&unknown).await.unwrap_err();
    assert!(matches!(err, ApplyError::UnknownKind { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("Gadget/shop/g1") && msg.contains("example.com/v9"),
        "{msg}"
    );
    assert!(!err.is_retryable());

    // An inventory recorded at a version the server no longer serves still finds the object
    // through its group's served versions; a kind that is gone altogether counts as deleted.
    let stale = [
        gitops_core::InventoryEntry {
            id: "shop_w1_example.com_Widget".into(),
            v: "v1beta1".into(),
        },
        gitops_core::InventoryEntry {
            id: "shop_g1_gone.example.com_Gadget".into(),
            v: "v1".into(),
        },
    ];
    let cs = applier.delete_all(&stale, &[]).await.unwrap();
    assert_eq!(
        actions(&cs),
        ["Gadget/shop/g1 deleted", "Widget/shop/w1 deleted"]
    );
    let widgets = api(&env.client(), "example.com", "v1", "Widget", "shop");
    assert!(
        widgets.get_opt("w1").await.unwrap().is_none(),
        "w1 was deleted"
    );
}

/// Flux's per-object apply policies on a real API server: `reconcile: disabled` and `ssa:
/// Ignore` (on the desired or the live object) skip the apply, `ssa: IfNotPresent` creates but
/// never patches, and prune leaves `ssa: Ignore` objects alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_disabled_and_ssa_policies_skip_as_flux_does() {
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let applier = SsaApplier::new(env.client());
    let cm = |name: &str, value: &str, meta: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n{meta}data:\n  k: {value}\n"
        )
    };
    let first = objects_from_yaml(
        &[
            cm("edited-live", "git", ""),
            cm(
                "create-once",
                "git",
                "  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\n",
            ),
            cm(
                "ignored",
                "git",
                "  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: ignore\n",
            ),
        ]
        .join("---\n"),
    );
    let cs = applier.apply_all_staged(&first).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "ConfigMap/default/create-once created",
            "ConfigMap/default/edited-live created",
            "ConfigMap/default/ignored skipped"
        ]
    );
    let cms = api(&env.client(), "", "v1", "ConfigMap", "default");
    assert!(
        cms.get_opt("ignored").await.unwrap().is_none(),
        "ssa: Ignore is never applied"
    );

    // Someone edits the live objects and marks one `reconcile: disabled` in the cluster.
    for (name, meta) in [
        (
            "edited-live",
            serde_json::json!({"labels": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}),
        ),
        ("create-once", serde_json::json!({})),
    ] {
        cms.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": meta, "data": {"k": "hand-edited"}}),
            ),
        )
        .await
        .unwrap();
    }
    let second = objects_from_yaml(
        &[
            cm("edited-live", "git-v2", ""),
            cm(
                "create-once",
                "git-v2",
                "  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\n",
            ),
        ]
        .join("---\n"),
    );
    let cs = applier.apply_all_staged(&second).await.unwrap();
    assert_eq!(
        actions(&cs),
        [
            "ConfigMap/default/create-once skipped",
            "ConfigMap/default/edited-live skipped"
        ]
    );
    for name in ["edited-live", "create-once"] {
        let live = cms.get(name).await.unwrap();
        assert_eq!(
            live.data["data"]["k"], "hand-edited",
            "{name} was not patched"
        );
    }

    // Prune keeps an object that is `ssa: Ignore` in the cluster.
    cms.patch(
        "create-once",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}}})),
    )
    .await
    .unwrap();
    let stale = [gitops_core::InventoryEntry {
        id: "default_create-once__ConfigMap".into(),
        v: "v1".into(),
    }];
    let cs = applier.delete_all(&stale, &[]).await.unwrap();
    assert_eq!(actions(&cs), ["ConfigMap/default/create-once skipped"]);
    assert!(cms.get_opt("create-once").await.unwrap().is_some());
}

/// A stage of many objects is read with one LIST, and a no-op re-apply sends neither dry runs
/// nor applies (the managedFields fast path); objects changed in the cluster by another field
/// manager (a controller's patch, `kubectl edit`) and a field removed from Git still go through
/// the dry run, are reported `configured` with their drift and are corrected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_reapply_sends_no_dry_run_and_edits_are_still_corrected() {
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let requests = RequestLog::new();
    let client = requests.client(env.kube_config()).unwrap();
    let applier = SsaApplier::new(client);
    let cm = |i: usize, data: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:02}\n  namespace: default\n  labels: {{app: fast}}\ndata: {data}\n"
        )
    };
    let n = gitops_apply::ssa::LIST_THRESHOLD + 4;
    let yaml = |i_data: &dyn Fn(usize) -> String| {
        (0..n)
            .map(|i| cm(i, &i_data(i)))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    let desired = objects_from_yaml(&yaml(&|i| format!("{{key: git, index: \"{i}\"}}")));
    let names: Vec<String> = (0..n).map(|i| format!("cm-{i:02}")).collect();

    let cs = applier.apply_all_staged(&desired).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Created),
        "{cs}"
    );
    let mut expected: Vec<String> = vec!["LIST".into()];
    for name in &names {
        expected.push(format!("PATCH dry-run {name}"));
        expected.push(format!("PATCH {name}"));
    }
    expected.sort();
    assert_eq!(
        requests.take_object_requests("configmaps"),
        expected,
        "one LIST instead of a GET each; every object validated by a dry run, then applied"
    );

    // Nothing changed: one LIST and nothing else.
    let cs = applier.apply_all_staged(&desired).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );
    assert_eq!(requests.take_object_requests("configmaps"), ["LIST"]);

    // Another controller and `kubectl edit` change our fields with plain patches.
    let cms = api(&env.client(), "", "v1", "ConfigMap", "default");
    for (name, manager) in [("cm-03", "other-controller"), ("cm-07", "kubectl-edit")] {
        let params = kube::api::PatchParams {
            field_manager: Some(manager.into()),
            ..Default::default()
        };
        let patch = serde_json::json!({"data": {"key": "edited"}});
        cms.patch(name, &params, &kube::api::Patch::Merge(patch))
            .await
            .unwrap();
    }
    // And Git drops `index` from cm-05.
    let mut changed = desired.clone();
    changed[5].as_map_mut()["data"]
        .as_object_mut()
        .unwrap()
        .remove("index");
    requests.clear();
    let cs = applier.apply_all_staged(&changed).await.unwrap();
    let configured: Vec<(String, Vec<String>)> = cs
        .entries
        .iter()
        .filter(|e| e.action != Action::Unchanged)
        .map(|e| (e.to_string(), e.drift.clone()))
        .collect();
    assert_eq!(
        configured,
        [
            (
                "ConfigMap/default/cm-03 configured".to_string(),
                vec!["data.key".to_string()]
            ),
            (
                "ConfigMap/default/cm-05 configured".to_string(),
                vec!["data.index".to_string()]
            ),
            (
                "ConfigMap/default/cm-07 configured".to_string(),
                vec!["data.key".to_string()]
            ),
        ]
    );
    let dry_runs: std::collections::BTreeSet<String> = requests
        .take_object_requests("configmaps")
        .into_iter()
        .filter_map(|r| r.strip_prefix("PATCH dry-run ").map(String::from))
        .collect();
    assert_eq!(
        dry_runs.into_iter().collect::<Vec<_>>(),
        ["cm-03", "cm-05", "cm-07"],
        "only the changed objects are dry-run"
    );
    for name in ["cm-03", "cm-07"] {
        assert_eq!(cms.get(name).await.unwrap().data["data"]["key"], "git");
    }
    assert_eq!(
        cms.get("cm-05").await.unwrap().data["data"],
        serde_json::json!({"key": "git"}),
        "the field removed from Git is removed"
    );

    // Corrected: the next reconcile is a no-op again.
    let cs = applier.apply_all_staged(&changed).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );
    assert_eq!(requests.take_object_requests("configmaps"), ["LIST"]);
}

/// An identity allowed to get, create and patch ConfigMaps but not to list them: the LIST of a
/// large group is refused (403) and the applier reads the objects one by one, with the same
/// results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_list_falls_back_to_gets() {
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let no_list = RbacSubject::user("no-list");
    let grant = Grant::new("default", "no-list", no_list.clone()).rule(
        &[""],
        &["configmaps"],
        &["get", "create", "patch"],
    );
    env.grant(&grant).await.unwrap();

    let requests = RequestLog::new();
    let client = requests
        .client(env.impersonating_config(&no_list.username()))
        .unwrap();
    let applier = SsaApplier::new(client);
    let n = gitops_apply::ssa::LIST_THRESHOLD + 2;
    let desired = objects_from_yaml(
        &(0..n)
            .map(|i| {
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:02}, namespace: default}}\ndata: {{k: v}}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n"),
    );
    let cs = applier.apply_all_staged(&desired).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Created),
        "{cs}"
    );
    let cs = applier.apply_all_staged(&desired).await.unwrap();
    assert!(
        cs.entries.iter().all(|e| e.action == Action::Unchanged),
        "{cs}"
    );
    let reads = requests.take_object_requests("configmaps");
    let gets = reads.iter().filter(|r| r.starts_with("GET ")).count();
    assert_eq!(gets, 2 * n, "one GET per object and reconcile: {reads:?}");
    assert_eq!(
        reads.iter().filter(|r| *r == "LIST").count(),
        2,
        "{reads:?}"
    );
}
