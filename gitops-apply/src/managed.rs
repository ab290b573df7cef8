//! The no-op fast path of [`crate::SsaApplier`]: decides from the live object's
//! `managedFields` alone that a server-side apply would change nothing, so neither the dry run
//! nor the apply is sent.
//!
//! fluxcd/pkg ssa (`ResourceManager.Apply`/`ApplyAll`) dry-runs every object and compares the
//! result with the live object (`hasDrifted`). The dry run is needed when the desired object
//! differs from what we applied last, or when someone else changed our fields; but when the
//! live object still carries exactly what we sent last time, the dry run can only come back
//! equal to the live object. This module recognises that case conservatively:
//!
//! - the field manager's `Apply` entry (no subresource, the desired object's apiVersion, and no
//!   other entry of that manager) names the set of fields we own ([`FieldsV1`](https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management));
//! - the live object projected onto that set ([`project`]) must equal the desired object
//!   without `apiVersion`, `kind`, `metadata.name` and `metadata.namespace`.
//!
//! Why that is safe: applying the desired object sets the fields it names (each already has
//! that value, since the projection equals it) and removes the fields we own but no longer
//! send (none: every owned field present in the live object is in the projection, hence in the
//! desired object). So the apply would leave the object as it is, which is exactly what the dry
//! run would have shown. When another manager changed one of our fields (`kubectl edit`, a
//! plain patch with another field manager), the Update took that field from our set, so the
//! projection lacks it and differs; a field we stopped sending but still own makes the
//! projection bigger; values the server normalises (quantities such as `1000m` stored as `1`,
//! `stringData` stored in `data`), list items in another order, defaulted key fields, `null`s
//! or empty maps in the desired object make them differ too. Every "differ" means the caller
//! falls back to the dry run, which decides as before; unknown shapes in the field set (`i:`
//! keys, malformed keys, a key matching two list items) give up the same way. The one thing
//! a projection cannot see is a mutating admission webhook that would change the object again
//! on every apply; such an object would flap between managers anyway.

use kube::api::DynamicObject;
use serde_json::{Map, Value};

/// Whether applying `desired` (the payload sent, with apiVersion, kind, metadata.name and,
/// for namespaced kinds, metadata.namespace) with field manager `manager` would leave `live`
/// unchanged, judged from `live`'s `managedFields` without asking the server. `false` means
/// "don't know": the caller dry-runs. See the module documentation.
pub(crate) fn applied_unchanged(live: &DynamicObject, desired: &Value, manager: &str) -> bool {
    let Some(api_version) = desired.get("apiVersion").and_then(Value::as_str) else {
        return false;
    };
    let Some(fields) = owned_fields(live, manager, api_version) else {
        return false;
    };
    let Ok(live) = serde_json::to_value(live) else {
        return false;
    };
    let Some(projected) = fields
        .as_object()
        .and_then(|set| project(&live, set))
        .map(without_identity)
    else {
        return false;
    };
    projected == without_identity(desired.clone())
}

/// The `fieldsV1` of `manager`'s `Apply` entry on the main resource (no subresource) at
/// `api_version`, when it is the manager's only entry on the main resource.
fn owned_fields<'a>(
    live: &'a DynamicObject,
    manager: &str,
    api_version: &str,
) -> Option<&'a Value> {
    let entries = live.metadata.managed_fields.as_ref()?;
    let mut ours = entries.iter().filter(|e| {
        e.manager.as_deref() == Some(manager) && e.subresource.as_deref().unwrap_or("").is_empty()
    });
    let entry = ours.next()?;
    if ours.next().is_some()
        || entry.operation.as_deref() != Some("Apply")
        || entry.api_version.as_deref() != Some(api_version)
        || entry
            .fields_type
            .as_deref()
            .is_some_and(|t| t != "FieldsV1")
    {
        return None;
    }
    entry.fields_v1.as_ref().map(|f| &f.0)
}

/// `object` without `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` (what
/// managedFields never name), and without `metadata` when nothing else is left in it.
fn without_identity(mut object: Value) -> Value {
    if let Some(m) = object.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("name");
            md.remove("namespace");
            if md.is_empty() {
                m.remove("metadata");
            }
        }
    }
    object
}

/// `value` keeping only the fields a FieldsV1 `set` names: `f:NAME` keys of a map, list items
/// by `k:{...}` (the item whose key fields have those values) or `v:VALUE` (the item equal to
/// it), in the live list's order; `.` (the item or map itself) is implied. A set with no
/// child keys (`{}` or `{".": {}}`) names the whole value. Owned fields missing from `value`
/// are left out. `None` when the set does not fit the value's shape or cannot be read (`i:`
/// keys, unparsable keys, a key matching more than one item), so the caller gives up.
pub(crate) fn project(value: &Value, set: &Map<String, Value>) -> Option<Value> {
    let children: Vec<(&String, &Value)> = set.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        return Some(value.clone());
    }
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in children {
                let name = key.strip_prefix("f:")?;
                if let Some(v) = map.get(name) {
                    out.insert(name.to_string(), project(v, child.as_object()?)?);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => {
            let mut picked: Vec<(usize, Value)> = Vec::new();
            for (key, child) in children {
                let matches: Vec<usize> = if let Some(k) = key.strip_prefix("k:") {
                    let Value::Object(wanted) = serde_json::from_str::<Value>(k).ok()? else {
                        return None;
                    };
                    indices(items, |item| {
                        item.as_object()
                            .is_some_and(|o| wanted.iter().all(|(f, v)| o.get(f) == Some(v)))
                    })
                } else if let Some(v) = key.strip_prefix("v:") {
                    let wanted: Value = serde_json::from_str(v).ok()?;
                    indices(items, |item| *item == wanted)
                } else {
                    return None;
                };
                match matches[..] {
                    [] => {}
                    [i] => picked.push((i, project(&items[i], child.as_object()?)?)),
                    _ => return None,
                }
            }
            picked.sort_by_key(|(i, _)| *i);
            Some(Value::Array(picked.into_iter().map(|(_, v)| v).collect()))
        }
        _ => None,
    }
}

fn indices(items: &[Value], matches: impl Fn(&Value) -> bool) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| matches(item))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(object: Value, managed: Value) -> DynamicObject {
        let mut object = object;
        object["metadata"]["managedFields"] = managed;
        serde_json::from_value(object).unwrap()
    }

    fn entry(manager: &str, operation: &str, api_version: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": api_version,
               "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    fn config_map(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cm", "namespace": "default",
                            "labels": {"app": "web"}},
               "data": data})
    }

    /// What the API server records for an apply of [`config_map`] with keys `keys`.
    fn cm_fields(keys: &[&str]) -> Value {
        let mut data = Map::new();
        data.insert(".".into(), json!({}));
        for k in keys {
            data.insert(format!("f:{k}"), json!({}));
        }
        json!({"f:data": data, "f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    }

    fn deployment(ports: Value, resources: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx", "ports": ports, "resources": resources}
        ]}}}})
    }

    fn deployment_fields() -> Value {
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {},
                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":
                    {".": {}, "f:containerPort": {}, "f:protocol": {}}},
                "f:resources": {"f:limits": {"f:cpu": {}}}}
        }}}}})
    }

    #[test]
    fn projection_decides_when_the_dry_run_can_be_skipped() {
        let applied = config_map(json!({"a": "1", "b": "2"}));
        let ours = |fields| json!([entry("gitops", "Apply", "v1", fields)]);
        let cases: Vec<(&str, DynamicObject, Value, bool)> = vec![
            (
                "equal: skipped",
                live(applied.clone(), ours(cm_fields(&["a", "b"]))),
                applied.clone(),
                true,
            ),
            (
                "a value changed in Git",
                live(applied.clone(), ours(cm_fields(&["a", "b"]))),
                config_map(json!({"a": "1", "b": "3"})),
                false,
            ),
            (
                "a field edited by another manager (kubectl edit's Update takes it from us)",
                live(
                    config_map(json!({"a": "1", "b": "edited"})),
                    json!([
                        entry("gitops", "Apply", "v1", cm_fields(&["a"])),
                        entry(
                            "kubectl-edit",
                            "Update",
                            "v1",
                            json!({"f:data": {"f:b": {}}})
                        ),
                    ]),
                ),
                applied.clone(),
                false,
            ),
            (
                "a field another manager added is not ours: still skipped",
                live(
                    config_map(json!({"a": "1", "b": "2", "c": "theirs"})),
                    json!([
                        entry("gitops", "Apply", "v1", cm_fields(&["a", "b"])),
                        entry("other", "Update", "v1", json!({"f:data": {"f:c": {}}})),
                    ]),
                ),
                applied.clone(),
                true,
            ),
            (
                "a field removed from Git that we still own",
                live(applied.clone(), ours(cm_fields(&["a", "b"]))),
                config_map(json!({"a": "1"})),
                false,
            ),
            (
                "our entry at another apiVersion",
                live(
                    applied.clone(),
                    json!([entry("gitops", "Apply", "v2", cm_fields(&["a", "b"]))]),
                ),
                applied.clone(),
                false,
            ),
            (
                "our own Update entry besides the Apply",
                live(
                    applied.clone(),
                    json!([
                        entry("gitops", "Apply", "v1", cm_fields(&["a"])),
                        entry("gitops", "Update", "v1", json!({"f:data": {"f:b": {}}})),
                    ]),
                ),
                applied.clone(),
                false,
            ),
            (
                "no entry of ours (applied by someone else)",
                live(
                    applied.clone(),
                    json!([entry("kubectl", "Apply", "v1", cm_fields(&["a", "b"]))]),
                ),
                applied.clone(),
                false,
            ),
            (
                "stringData is stored as data",
                live(
                    json!({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": "s", "namespace": "default"},
                           "data": {"k": "dg=="}}),
                    ours(json!({"f:data": {".": {}, "f:k": {}}})),
                ),
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "s", "namespace": "default"},
                       "stringData": {"k": "v"}}),
                false,
            ),
        ];
        let dep_ours = |fields| json!([entry("gitops", "Apply", "apps/v1", fields)]);
        let port = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let cpu = |q: &str| json!({"limits": {"cpu": q}});
        let dep_cases: Vec<(&str, DynamicObject, Value, bool)> = vec![
            (
                "list items keyed by k: equal: skipped",
                live(
                    deployment(port.clone(), cpu("500m")),
                    dep_ours(deployment_fields()),
                ),
                deployment(port.clone(), cpu("500m")),
                true,
            ),
            (
                "list item keyed by k: with a changed field",
                live(
                    deployment(
                        json!([{"containerPort": 8080, "protocol": "TCP"}]),
                        cpu("500m"),
                    ),
                    dep_ours(deployment_fields()),
                ),
                deployment(port.clone(), cpu("500m")),
                false,
            ),
            (
                "a quantity the server normalised",
                live(
                    deployment(port.clone(), cpu("1")),
                    dep_ours(deployment_fields()),
                ),
                deployment(port.clone(), cpu("1000m")),
                false,
            ),
            (
                "a defaulted key field the desired object leaves out",
                live(
                    deployment(port.clone(), cpu("1")),
                    dep_ours(deployment_fields()),
                ),
                deployment(json!([{"containerPort": 80}]), cpu("1")),
                false,
            ),
        ];
        for (name, live, desired, skip) in cases.into_iter().chain(dep_cases) {
            assert_eq!(applied_unchanged(&live, &desired, "gitops"), skip, "{name}");
        }
    }

    #[test]
    fn projection_keeps_owned_fields_and_list_order() {
        let value = json!({"a": 1, "b": {"c": 2, "d": 3},
                           "l": [{"k": "x", "v": 1, "o": 0}, {"k": "y", "v": 2}],
                           "s": ["p", "q", "r"], "atomic": [3, 1, 2]});
        let set = json!({"f:b": {".": {}, "f:c": {}},
                         "f:l": {"k:{\"k\":\"y\"}": {".": {}, "f:k": {}},
                                 "k:{\"k\":\"x\"}": {".": {}, "f:k": {}, "f:v": {}}},
                         "f:s": {"v:\"r\"": {}, "v:\"p\"": {}},
                         "f:atomic": {}, "f:missing": {}});
        assert_eq!(
            project(&value, set.as_object().unwrap()),
            Some(json!({"b": {"c": 2}, "l": [{"k": "x", "v": 1}, {"k": "y"}],
                        "s": ["p", "r"], "atomic": [3, 1, 2]}))
        );
        // Shapes the projection cannot read: the caller dry-runs.
        for set in [
            json!({"f:l": {"i:0": {}}}),
            json!({"f:l": {"k:not json": {}}}),
            json!({"f:a": {"f:x": {}}}),
            json!({"x:a": {}}),
            json!({"f:s": {"f:x": {}}}),
        ] {
            assert_eq!(project(&value, set.as_object().unwrap()), None, "{set}");
        }
        let twice = json!([{"k": 1}, {"k": 1}]);
        let set = json!({"k:{\"k\":1}": {"f:k": {}}});
        assert_eq!(project(&twice, set.as_object().unwrap()), None);
    }
}
