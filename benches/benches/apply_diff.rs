//! Normalisation and diff of live against desired objects, the CPU side of a reconcile in
//! `gitops-apply` (1, 100 and 1,000 objects of mixed kinds: Deployment, Service, ConfigMap,
//! Secret, ServiceAccount, Role, RoleBinding, Ingress, HorizontalPodAutoscaler, and a Namespace
//! and ClusterRole every 50 objects).
//!
//! `SsaApplier::plan` normalises the desired object inside the apply, so the normalisation is
//! repeated here with the same public calls; the comparison is `gitops_apply::drift_paths`:
//!
//! - `apply_normalise`: `gitops_apply::order::staged` (stages and Flux's kind order), then per
//!   object `Object::id` and `Object::into_value` with cluster-scoped kinds' namespace removed
//!   (kinds known by `gitops_core::object::is_cluster_scoped_kind` here, by discovery there),
//!   which is what the applier sends;
//! - `apply_decode`: decoding the two API answers the applier reads per object (the live object
//!   from the GET, the dry-run result) into `kube::api::DynamicObject`;
//! - `apply_diff_unchanged` / `apply_diff_changed`: `drift_paths` (the object minus `metadata`
//!   and `status`, plus labels and annotations, walked to the differing paths), with live and
//!   dry-run equal (a no-op reconcile: everything compared) or one `data` field changed;
//! - `apply_noop_check`: `gitops_apply::managed::applied_unchanged`, the no-op fast path that
//!   decides from the live object and our `managedFields` entry that the dry run can be
//!   skipped (every object passes: a no-op reconcile).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gitops_core::Object;
use kube::api::DynamicObject;
use serde_json::{Value, json};

const SIZES: [usize; 3] = [1, 100, 1000];

/// The `i`th desired object of a mixed set.
fn desired(i: usize) -> Value {
    let name = format!("app-{i:04}");
    let ns = "bench";
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "bench", "kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"});
    if i % 50 == 48 {
        return json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{i}"), "labels": labels}});
    }
    if i % 50 == 49 {
        return json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}]});
    }
    match i % 9 {
        0 => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}, "annotations": {"prometheus.io/scrape": "true"}},
                    "spec": {"serviceAccountName": name, "containers": [{"name": "app", "image": "ghcr.io/stefanprodan/podinfo:6.5.0",
                        "ports": [{"name": "http", "containerPort": 9898, "protocol": "TCP"}],
                        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "NAME", "value": name}],
                        "resources": {"limits": {"cpu": "1", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9898}, "initialDelaySeconds": 5}}]}}}})
        }
        1 => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"type": "ClusterIP", "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}})
        }
        2 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "data": {"app.properties": "a=1\nb=2\nc=3\n".repeat(20), "revision": "1"}})
        }
        3 => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "type": "Opaque", "data": {"password": "bm90LWEtcmVhbC1wYXNzd29yZA=="}})
        }
        4 => {
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns, "labels": labels}})
        }
        5 => {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
        }
        6 => {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})
        }
        7 => {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"rules": [{"host": format!("{name}.example.com"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}]}})
        }
        _ => {
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": 2, "maxReplicas": 4,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
        }
    }
}

/// What the API server returns for `desired`: server metadata, managed fields of two managers,
/// and a status for the kinds that have one.
fn live(desired: &Value, i: usize) -> Value {
    let mut v = desired.clone();
    let md = v["metadata"].as_object_mut().expect("metadata");
    md.insert(
        "uid".into(),
        json!(format!("6f1c2b0e-0000-4000-8000-{i:012}")),
    );
    md.insert("resourceVersion".into(), json!((1000 + i).to_string()));
    md.insert("generation".into(), json!(1));
    md.insert("creationTimestamp".into(), json!("2026-11-23T15:00:00Z"));
    md.insert(
        "managedFields".into(),
        json!([
            {"manager": "gitops", "operation": "Apply", "apiVersion": desired["apiVersion"], "time": "2026-11-23T15:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": applied_fields(desired)},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": desired["apiVersion"], "time": "2026-11-23T15:00:01Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {".": {}}}, "subresource": "status"}
        ]),
    );
    if desired["kind"] == "Deployment" {
        v["status"] = json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]});
    }
    v
}

/// The FieldsV1 set the API server records for an apply of `desired`: every field it sets,
/// list items by their Kubernetes keys (`containers`, `env`, `volumes` by `name`, `ports` by
/// port and protocol), other lists whole (atomic), without the object's identity.
fn applied_fields(desired: &Value) -> Value {
    fn set(value: &Value, field: &str) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (format!("f:{k}"), set(v, k)))
                    .collect(),
            ),
            Value::Array(items) if ["containers", "env", "volumes", "ports"].contains(&field) => {
                let key = |item: &Value| -> Value {
                    let names: &[&str] = match (field, item.get("containerPort")) {
                        ("ports", Some(_)) => &["containerPort", "protocol"],
                        ("ports", None) => &["port", "protocol"],
                        _ => &["name"],
                    };
                    names
                        .iter()
                        .map(|n| (n.to_string(), item[*n].clone()))
                        .collect()
                };
                Value::Object(
                    items
                        .iter()
                        .map(|item| {
                            let mut child = set(item, "");
                            child["."] = json!({});
                            (format!("k:{}", key(item)), child)
                        })
                        .collect(),
                )
            }
            _ => json!({}),
        }
    }
    let mut fields = set(desired, "");
    let top = fields.as_object_mut().expect("an object");
    top.remove("f:apiVersion");
    top.remove("f:kind");
    if let Some(md) = top.get_mut("f:metadata").and_then(Value::as_object_mut) {
        md.remove("f:name");
        md.remove("f:namespace");
        if md.is_empty() {
            top.remove("f:metadata");
        }
    }
    fields
}

/// The applier's comparison: [`gitops_apply::drift_paths`], the drifted field paths.
fn drifted(live: &DynamicObject, dry: &DynamicObject) -> bool {
    !gitops_apply::drift_paths(live, dry).is_empty()
}

/// What the applier does to desired objects before it sends them.
fn normalise(objects: &[Object]) -> Vec<Value> {
    let mut out = Vec::with_capacity(objects.len());
    for (_, stage) in gitops_apply::order::staged(objects) {
        for o in stage {
            let id = o.id().expect("a valid object");
            let mut payload = o.clone().into_value();
            if gitops_core::object::is_cluster_scoped_kind(&id.group, &id.kind)
                && let Some(md) = payload.get_mut("metadata").and_then(Value::as_object_mut)
            {
                md.remove("namespace");
            }
            out.push(payload);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    for &n in &SIZES {
        let desired_values: Vec<Value> = (0..n).map(desired).collect();
        let objects: Vec<Object> = desired_values
            .iter()
            .map(|v| Object::try_from(v.clone()).expect("a mapping"))
            .collect();
        let live_bytes: Vec<Vec<u8>> = desired_values
            .iter()
            .enumerate()
            .map(|(i, d)| serde_json::to_vec(&live(d, i)).expect("json"))
            .collect();
        let decode = |bytes: &[u8]| -> DynamicObject {
            serde_json::from_slice(bytes).expect("a DynamicObject")
        };
        let lives: Vec<DynamicObject> = live_bytes.iter().map(|b| decode(b)).collect();
        // The dry-run result of a changed object: one field differs.
        let changed: Vec<DynamicObject> = lives
            .iter()
            .map(|l| {
                let mut d = l.clone();
                d.data["changed"] = json!("yes");
                d
            })
            .collect();
        assert!(lives.iter().all(|l| !drifted(l, l)));
        assert!(lives.iter().zip(&changed).all(|(l, d)| drifted(l, d)));
        let payloads = normalise(&objects);
        let by_name = |p: &Value| {
            lives
                .iter()
                .find(|l| l.metadata.name.as_deref() == p["metadata"]["name"].as_str())
                .expect("a live object")
        };
        let pairs: Vec<(&DynamicObject, &Value)> =
            payloads.iter().map(|p| (by_name(p), p)).collect();
        let noop = |pairs: &[(&DynamicObject, &Value)]| {
            pairs
                .iter()
                .filter(|(l, p)| gitops_apply::managed::applied_unchanged(l, p, "gitops"))
                .count()
        };
        assert_eq!(noop(&pairs), n, "every object takes the fast path");

        let mut g = c.benchmark_group("apply_normalise");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &objects, |b, o| {
            b.iter(|| normalise(black_box(o)))
        });
        g.finish();

        let mut g = c.benchmark_group("apply_decode");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &live_bytes, |b, bytes| {
            b.iter(|| {
                for x in bytes {
                    // The GET answer and the dry-run answer.
                    black_box(decode(black_box(x)));
                    black_box(decode(black_box(x)));
                }
            })
        });
        g.finish();

        let mut g = c.benchmark_group("apply_diff_unchanged");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &lives, |b, l| {
            b.iter(|| {
                l.iter()
                    .filter(|o| drifted(black_box(o), black_box(o)))
                    .count()
            })
        });
        g.finish();

        let mut g = c.benchmark_group("apply_noop_check");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &pairs, |b, p| {
            b.iter(|| noop(black_box(p)))
        });
        g.finish();

        let mut g = c.benchmark_group("apply_diff_changed");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(n),
            &(&lives, &changed),
            |b, (l, d)| {
                b.iter(|| {
                    l.iter()
                        .zip(d.iter())
                        .filter(|(l, d)| drifted(black_box(l), black_box(d)))
                        .count()
                })
            },
        );
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
