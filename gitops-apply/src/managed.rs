//! The no-op fast path of [`crate::SsaApplier`]: decides from the live object and its
//! `managedFields` alone that a server-side apply would change nothing, so neither the dry run
//! nor the apply is sent.
//!
//! fluxcd/pkg ssa (`ResourceManager.Apply`/`ApplyAll`) dry-runs every object and compares the
//! result with the live object (`hasDrifted`, values only, server metadata left out). The dry
//! run is needed when the desired object differs from the live one, or when someone else
//! changed our fields; but when the live object already holds every value the desired object
//! sets, and we own no field the desired object leaves out, the dry run can only come back
//! equal to the live object. This module recognises that case conservatively, walking the
//! desired object beside the live one and the field manager's set of owned fields
//! ([`FieldsV1`](https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management)):
//!
//! - the field manager's `Apply` entry (no subresource, the desired object's apiVersion, and no
//!   other entry of that manager) names the set of fields we own;
//! - every field the desired object sets must hold the same value in the live object, whether
//!   we own it or not (a field someone else owns with the same value: the apply would only
//!   share its ownership, and the dry-run comparison says "unchanged" too); values compare
//!   exactly, except resource quantities of built-in kinds (`resources.limits`/`requests` of
//!   containers, pods and PersistentVolumeClaims, `emptyDir.sizeLimit`), which compare by
//!   amount within one format, as the server keeps the format and canonicalises the number
//!   (`2000m` is stored as `2`, `1024Mi` as `1Gi`, but `1073741824` never as `1Gi`);
//! - list items are matched through our set's `k:{...}` and `v:...` keys; a key field the
//!   desired item leaves out matches the API server's default (`protocol: TCP`, the one key
//!   field Kubernetes defaults), and the items must keep the live list's order;
//! - a field we own that the desired object leaves out must be absent from the live object
//!   (else the apply would remove it);
//! - of `metadata`, the walk reads labels, annotations, finalizers and ownerReferences (from
//!   the typed `ObjectMeta`, so the live object is never serialised whole); any other metadata
//!   field the desired object sets (but `name`, `namespace` and a `null` `creationTimestamp`)
//!   or we own gives up.
//!
//! Why that is safe: applying the desired object sets the fields it names (each already has
//! that value) and removes the fields we own but no longer send (none is present). So the apply
//! would leave the object's values as they are, which is exactly what the dry run would have
//! shown. When another manager changed one of our fields (`kubectl edit`, a plain patch with
//! another field manager), the live value differs from the desired one; a field we stopped
//! sending but still own is still in the live object; values the server normalises other than
//! quantities (`stringData` stored in `data`, pruned unknown fields of custom resources), list
//! items in another order, list items we do not own, `null`s in the desired object make the
//! walk fail too. Every failure means the caller falls back to the dry run, which decides as
//! before; unknown shapes in the field set (`i:` keys, malformed keys, a key matching two list
//! items) give up the same way. The one thing the walk cannot see is a mutating admission
//! webhook that would change the object again on every apply; such an object would flap
//! between managers anyway.

use kube::api::DynamicObject;
use serde_json::{Map, Value};

/// Key fields of associative lists that the API server defaults when an applied item leaves
/// them out, with the default (`ports[].protocol` of containers, Services, EndpointSlices...).
const DEFAULTED_KEY_FIELDS: &[(&str, &str)] = &[("protocol", "TCP")];

/// API groups whose resource quantities the API server stores in canonical form (`2000m` as
/// `2`): the built-in groups with pod templates, PersistentVolumeClaims and quotas. Custom
/// resources are stored as sent.
const QUANTITY_GROUPS: &[&str] = &["", "apps", "batch", "extensions"];

/// Whether applying `desired` (the payload sent, with apiVersion, kind, metadata.name and,
/// for namespaced kinds, metadata.namespace) with field manager `manager` would leave `live`
/// unchanged, judged from `live` and its `managedFields` without asking the server, as
/// [`crate::SsaApplier`] decides before its dry run. `false` means "don't know": dry-run to
/// find out. See the module documentation for the rules and why they are safe.
pub fn applied_unchanged(live: &DynamicObject, desired: &Value, manager: &str) -> bool {
    let Some(api_version) = desired.get("apiVersion").and_then(Value::as_str) else {
        return false;
    };
    let Some(Value::Object(owned)) = owned_fields(live, manager, api_version) else {
        return false;
    };
    let (Value::Object(desired), Value::Object(data)) = (desired, &live.data) else {
        return false;
    };
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let walk = Walk {
        // ControllerRevisions store whatever `data` they are given, pod templates included.
        quantities: QUANTITY_GROUPS.contains(&group)
            && desired.get("kind").and_then(Value::as_str) != Some("ControllerRevision"),
    };
    // `metadata` is read from the typed ObjectMeta (without serialising its managedFields),
    // everything else from the object's data, without copies.
    let owned_meta = match owned.get("f:metadata") {
        None => None,
        Some(Value::Object(c)) => Some(c),
        Some(_) => return false,
    };
    metadata_unchanged(&walk, desired.get("metadata"), live, owned_meta)
        && walk.fields_unchanged(
            desired,
            data,
            owned,
            &["apiVersion", "kind", "metadata"],
            &mut Vec::new(),
        )
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

/// The walk of `metadata`: the desired metadata without `name`, `namespace` and a `null`
/// `creationTimestamp` (as generated manifests carry; the server ignores it) against the live
/// labels, annotations, finalizers and ownerReferences; any other metadata field the desired
/// object sets or we own gives up.
fn metadata_unchanged(
    walk: &Walk,
    desired: Option<&Value>,
    live: &DynamicObject,
    owned: Option<&Map<String, Value>>,
) -> bool {
    let empty = Map::new();
    let desired = match desired {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return false,
    };
    let desired: Map<String, Value> = desired
        .iter()
        .filter(|(k, v)| match k.as_str() {
            "name" | "namespace" => false,
            "creationTimestamp" => !v.is_null(),
            _ => true,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let owned_keys = owned
        .into_iter()
        .flat_map(|o| o.keys())
        .filter_map(|k| k.strip_prefix("f:"));
    let mut view = Map::new();
    let m = &live.metadata;
    for key in desired.keys().map(String::as_str).chain(owned_keys) {
        let value = match key {
            "labels" => serde_json::to_value(&m.labels),
            "annotations" => serde_json::to_value(&m.annotations),
            "finalizers" => serde_json::to_value(&m.finalizers),
            "ownerReferences" => serde_json::to_value(&m.owner_references),
            _ => return false,
        };
        match value {
            Ok(Value::Null) => {}
            Ok(v) => {
                view.insert(key.to_string(), v);
            }
            Err(_) => return false,
        }
    }
    if desired.is_empty() && owned.is_none() {
        return true;
    }
    walk.unchanged(
        &Value::Object(desired),
        &Value::Object(view),
        Some(owned.unwrap_or(&empty)),
        &mut vec!["metadata".to_string()],
    )
}

/// The walk of a desired object beside the live one and our owned fields.
struct Walk {
    /// Whether resource quantities compare by amount (a built-in kind).
    quantities: bool,
}

impl Walk {
    /// Whether applying `desired` over `live`, where we own `owned` (`None`: nothing here),
    /// changes no value. `path` holds the map keys walked so far (list items add nothing).
    fn unchanged(
        &self,
        desired: &Value,
        live: &Value,
        owned: Option<&Map<String, Value>>,
        path: &mut Vec<String>,
    ) -> bool {
        // A set with no child keys (`{}` or `{".": {}}`) owns the value whole; a value we do
        // not own must simply be equal.
        let children = owned.filter(|set| set.keys().any(|k| k != "."));
        let Some(set) = children else {
            return self.equal(desired, live, path);
        };
        match (desired, live) {
            (Value::Object(d), Value::Object(l)) => self.fields_unchanged(d, l, set, &[], path),
            (Value::Array(d), Value::Array(l)) => self.list_unchanged(d, l, set, path),
            _ => false,
        }
    }

    /// A map's fields, the fields named in `skip` left out: each desired field must be live and
    /// unchanged, and a field we own (`f:` keys only) but no longer send must be gone already.
    fn fields_unchanged(
        &self,
        desired: &Map<String, Value>,
        live: &Map<String, Value>,
        set: &Map<String, Value>,
        skip: &[&str],
        path: &mut Vec<String>,
    ) -> bool {
        for key in set.keys().filter(|k| *k != ".") {
            let Some(name) = key.strip_prefix("f:") else {
                return false;
            };
            if !skip.contains(&name) && !desired.contains_key(name) && live.contains_key(name) {
                return false;
            }
        }
        desired
            .iter()
            .filter(|(name, _)| !skip.contains(&name.as_str()))
            .all(|(name, dv)| {
                let Some(lv) = live.get(name) else {
                    return false;
                };
                let child = match set.get(&format!("f:{name}")) {
                    None => None,
                    Some(Value::Object(c)) => Some(c),
                    Some(_) => return false,
                };
                path.push(name.clone());
                let same = self.unchanged(dv, lv, child, path);
                path.pop();
                same
            })
    }

    /// An associative or set list: each desired item must match exactly one of our keys and
    /// exactly one live item, in the live order; our keys that no desired item matches must
    /// have no live item.
    fn list_unchanged(
        &self,
        desired: &[Value],
        live: &[Value],
        set: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> bool {
        let mut keys: Vec<(Key, &Map<String, Value>, bool)> = Vec::new();
        for (key, child) in set.iter().filter(|(k, _)| *k != ".") {
            let (Some(key), Value::Object(child)) = (Key::parse(key), child) else {
                return false;
            };
            keys.push((key, child, false));
        }
        let mut last: Option<usize> = None;
        for item in desired {
            let mut matching = keys.iter_mut().filter(|(k, _, _)| k.matches_desired(item));
            let (Some((key, child, used)), None) = (matching.next(), matching.next()) else {
                return false;
            };
            let mut at = live.iter().enumerate().filter(|(_, l)| key.matches_live(l));
            let (Some((i, live_item)), None) = (at.next(), at.next()) else {
                return false;
            };
            if *used || last.is_some_and(|j| i <= j) {
                return false;
            }
            *used = true;
            last = Some(i);
            if !self.unchanged(item, live_item, Some(child), path) {
                return false;
            }
        }
        keys.iter()
            .filter(|(_, _, used)| !used)
            .all(|(key, _, _)| !live.iter().any(|l| key.matches_live(l)))
    }

    /// Value equality, resource quantities of built-in kinds by amount.
    fn equal(&self, desired: &Value, live: &Value, path: &[String]) -> bool {
        if desired == live {
            return true;
        }
        match (desired, live) {
            (Value::Object(d), Value::Object(l)) => {
                d.len() == l.len()
                    && d.iter().all(|(k, dv)| {
                        l.get(k).is_some_and(|lv| {
                            let mut p = path.to_vec();
                            p.push(k.clone());
                            self.equal(dv, lv, &p)
                        })
                    })
            }
            (Value::Array(d), Value::Array(l)) => {
                d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| self.equal(dv, lv, path))
            }
            _ => {
                self.quantities
                    && is_quantity_path(path)
                    && quantity(desired).is_some_and(|a| quantity(live) == Some(a))
            }
        }
    }
}

/// A list item key of a field set: `k:{"name":"web"}` (the key fields' values) or `v:VALUE`.
enum Key {
    Fields(Map<String, Value>),
    Value(Value),
}

impl Key {
    fn parse(key: &str) -> Option<Key> {
        if let Some(k) = key.strip_prefix("k:") {
            match serde_json::from_str(k).ok()? {
                Value::Object(fields) if !fields.is_empty() => Some(Key::Fields(fields)),
                _ => None,
            }
        } else {
            key.strip_prefix("v:")
                .and_then(|v| serde_json::from_str(v).ok())
                .map(Key::Value)
        }
    }

    /// Whether a desired item is the item of this key: equal key fields, or a key field it
    /// leaves out whose key value is the server's default.
    fn matches_desired(&self, item: &Value) -> bool {
        match self {
            Key::Value(v) => item == v,
            Key::Fields(fields) => item.as_object().is_some_and(|o| {
                fields.iter().all(|(f, v)| match o.get(f) {
                    Some(given) => given == v,
                    None => DEFAULTED_KEY_FIELDS
                        .iter()
                        .any(|(name, default)| name == f && v.as_str() == Some(default)),
                })
            }),
        }
    }

    fn matches_live(&self, item: &Value) -> bool {
        match self {
            Key::Value(v) => item == v,
            Key::Fields(fields) => item
                .as_object()
                .is_some_and(|o| fields.iter().all(|(f, v)| o.get(f) == Some(v))),
        }
    }
}

/// Whether the map keys `path` lead to a resource quantity: `resources.limits.<name>` or
/// `resources.requests.<name>` of a container (`containers`, `initContainers`,
/// `ephemeralContainers`; list items add no key) or of a pod or PersistentVolumeClaim `spec`,
/// or `emptyDir.sizeLimit`.
fn is_quantity_path(path: &[String]) -> bool {
    const OWNERS: &[&str] = &[
        "containers",
        "initContainers",
        "ephemeralContainers",
        "spec",
    ];
    match path {
        [.., owner, r, kind, _]
            if OWNERS.contains(&owner.as_str())
                && r == "resources"
                && (kind == "limits" || kind == "requests") =>
        {
            true
        }
        [.., parent, last] => parent == "emptyDir" && last == "sizeLimit",
        _ => false,
    }
}

/// How a quantity is written; the API server keeps it when it canonicalises the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// A binary suffix (`Ki`, `Mi`, ...).
    Binary,
    /// An exponent (`1e3`).
    Exponent,
    /// A decimal suffix (`m`, `k`, `M`, ...) or none.
    Decimal,
}

/// A Kubernetes resource quantity (`500m`, `2`, `1Gi`, `1.5e3`, `100k`): its format and its
/// exact amount in nano-units, or `None` when it does not parse or is finer than a nano-unit.
/// Two quantities the server stores alike have the same format and amount.
fn quantity(value: &Value) -> Option<(Format, i128)> {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Number(n) => return quantity(&Value::String(n.to_string())),
        _ => return None,
    };
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // The number as mantissa × 10^exp10.
    let mantissa: i128 = format!("{whole}{fraction}").parse().ok()?;
    let mut exp10 = -i32::try_from(fraction.len()).ok()?;
    let mut factor: i128 = 1;
    let mut format = Format::Decimal;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            format = Format::Binary;
            let power = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .position(|b| *b == suffix)?;
            factor = 1 << (10 * (power + 1));
        }
        e if e.starts_with(['e', 'E']) => {
            format = Format::Exponent;
            exp10 = exp10.checked_add(e[1..].parse::<i32>().ok()?)?;
        }
        _ => return None,
    }
    // In nano-units: mantissa × factor × 10^(exp10 + 9), exact or None.
    let mut amount = mantissa.checked_mul(factor)?;
    let scale = exp10.checked_add(9)?;
    if scale >= 0 {
        amount = amount.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(scale.checked_neg()?).ok()?)?;
        if amount % divisor != 0 {
            return None;
        }
        amount /= divisor;
    }
    Some((format, if negative { -amount } else { amount }))
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
                "a label of another manager beside ours: skipped",
                live(
                    {
                        let mut l = applied.clone();
                        l["metadata"]["labels"]["team"] = json!("theirs");
                        l
                    },
                    ours(cm_fields(&["a", "b"])),
                ),
                applied.clone(),
                true,
            ),
            (
                "an annotation we own, removed from Git, still live",
                live(
                    {
                        let mut l = applied.clone();
                        l["metadata"]["annotations"] = json!({"note": "x"});
                        l
                    },
                    ours({
                        let mut f = cm_fields(&["a", "b"]);
                        f["f:metadata"]["f:annotations"] = json!({".": {}, "f:note": {}});
                        f
                    }),
                ),
                applied.clone(),
                false,
            ),
            (
                "a null creationTimestamp in the desired object: skipped",
                live(applied.clone(), ours(cm_fields(&["a", "b"]))),
                {
                    let mut d = applied.clone();
                    d["metadata"]["creationTimestamp"] = Value::Null;
                    d
                },
                true,
            ),
            (
                "a metadata field the walk does not read",
                live(applied.clone(), ours(cm_fields(&["a", "b"]))),
                {
                    let mut d = applied.clone();
                    d["metadata"]["generateName"] = json!("cm-");
                    d
                },
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
        // What Kubernetes 1.20 records for a port applied without `protocol`: the key holds
        // the default, `f:protocol` is not ours.
        let mut defaulted_fields = deployment_fields();
        defaulted_fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
            ["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"] =
            json!({".": {}, "f:containerPort": {}});
        let two_ports = json!([{"containerPort": 80, "protocol": "TCP"},
                               {"containerPort": 81, "protocol": "TCP"}]);
        let mut two_port_fields = deployment_fields();
        two_port_fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]
            ["f:ports"]["k:{\"containerPort\":81,\"protocol\":\"TCP\"}"] =
            json!({".": {}, "f:containerPort": {}, "f:protocol": {}});
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
                "a quantity the server normalised (2000m stored as 2): skipped",
                live(
                    deployment(port.clone(), cpu("2")),
                    dep_ours(deployment_fields()),
                ),
                deployment(port.clone(), cpu("2000m")),
                true,
            ),
            (
                "a quantity of another amount",
                live(
                    deployment(port.clone(), cpu("2")),
                    dep_ours(deployment_fields()),
                ),
                deployment(port.clone(), cpu("200m")),
                false,
            ),
            (
                "a key field the desired object leaves out, defaulted by the server: skipped",
                live(
                    deployment(port.clone(), cpu("1")),
                    dep_ours(defaulted_fields.clone()),
                ),
                deployment(json!([{"containerPort": 80}]), cpu("1")),
                true,
            ),
            (
                "a defaulted key field we own from an earlier apply that sent it",
                live(
                    deployment(port.clone(), cpu("1")),
                    dep_ours(deployment_fields()),
                ),
                deployment(json!([{"containerPort": 80}]), cpu("1")),
                false,
            ),
            (
                "a left-out key field whose live value is not the default",
                live(
                    deployment(json!([{"containerPort": 80, "protocol": "UDP"}]), cpu("1")),
                    dep_ours(
                        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"UDP\"}":
                                {".": {}, "f:containerPort": {}, "f:protocol": {}}},
                            "f:resources": {"f:limits": {"f:cpu": {}}}}}}}}}),
                    ),
                ),
                deployment(json!([{"containerPort": 80}]), cpu("1")),
                false,
            ),
            (
                "list items in another order than the live list",
                live(
                    deployment(two_ports.clone(), cpu("1")),
                    dep_ours(two_port_fields.clone()),
                ),
                deployment(
                    json!([{"containerPort": 81, "protocol": "TCP"},
                           {"containerPort": 80, "protocol": "TCP"}]),
                    cpu("1"),
                ),
                false,
            ),
            (
                "a list item we own, left out of Git, still live",
                live(
                    deployment(two_ports.clone(), cpu("1")),
                    dep_ours(two_port_fields),
                ),
                deployment(port.clone(), cpu("1")),
                false,
            ),
            (
                "a new list item",
                live(
                    deployment(port.clone(), cpu("1")),
                    dep_ours(deployment_fields()),
                ),
                deployment(two_ports, cpu("1")),
                false,
            ),
        ];
        // Fields no manager records (`emptyDir: {}`, `securityContext: {}`) and fields of
        // others holding the desired value compare with the live object.
        let mut with_empty = deployment(port.clone(), cpu("1"));
        with_empty["spec"]["template"]["spec"]["volumes"] = json!([{"name": "d", "emptyDir": {}}]);
        with_empty["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({});
        let mut empty_fields = deployment_fields();
        empty_fields["f:spec"]["f:template"]["f:spec"]["f:volumes"] =
            json!({"k:{\"name\":\"d\"}": {".": {}, "f:name": {}}});
        let mut with_host_path = with_empty.clone();
        with_host_path["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "d", "hostPath": {"path": "/tmp"}}]);
        let dep_cases = dep_cases.into_iter().chain([
            (
                "empty maps the server records no owner for: skipped",
                live(with_empty.clone(), dep_ours(empty_fields.clone())),
                with_empty.clone(),
                true,
            ),
            (
                "an empty map the live object does not hold",
                live(with_host_path, dep_ours(empty_fields)),
                with_empty,
                false,
            ),
        ]);
        // Custom resources are stored as sent: quantities compare as text.
        let widget = |q: &str| {
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "w", "namespace": "default"},
                   "spec": {"resources": {"limits": {"cpu": q}}}})
        };
        let widget_fields = json!([entry(
            "gitops",
            "Apply",
            "example.com/v1",
            json!({"f:spec": {"f:resources": {"f:limits": {"f:cpu": {}}}}})
        )]);
        let dep_cases = dep_cases.chain([
            (
                "a custom resource's quantity in another form",
                live(widget("2"), widget_fields.clone()),
                widget("2000m"),
                false,
            ),
            (
                "a custom resource unchanged: skipped",
                live(widget("2"), widget_fields),
                widget("2"),
                true,
            ),
        ]);
        for (name, live, desired, skip) in cases.into_iter().chain(dep_cases) {
            assert_eq!(applied_unchanged(&live, &desired, "gitops"), skip, "{name}");
        }
    }

    #[test]
    fn set_lists_and_unreadable_field_sets() {
        let obj = |s: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "x", "namespace": "default", "finalizers": s}})
        };
        let fields = |set: Value| {
            json!([entry(
                "gitops",
                "Apply",
                "v1",
                json!({"f:metadata": {"f:finalizers": set}})
            )])
        };
        let both = json!({".": {}, "v:\"a\"": {}, "v:\"b\"": {}});
        let ok = |live_list: Value, set: Value, desired: Value| {
            applied_unchanged(&live(obj(live_list), fields(set)), &obj(desired), "gitops")
        };
        assert!(ok(json!(["a", "b"]), both.clone(), json!(["a", "b"])));
        assert!(
            ok(json!(["a", "x", "b"]), both.clone(), json!(["a", "b"])),
            "others' items stay"
        );
        assert!(
            !ok(json!(["b", "a"]), both.clone(), json!(["a", "b"])),
            "order"
        );
        assert!(
            !ok(json!(["a", "b"]), both.clone(), json!(["a"])),
            "b is ours, still live"
        );
        assert!(
            !ok(json!(["a", "b"]), both, json!(["a", "b", "c"])),
            "c is new"
        );
        // Field sets the walk cannot read: the caller dry-runs.
        for set in [
            json!({"i:0": {}}),
            json!({"k:not json": {}}),
            json!({"k:{}": {}}),
            json!({"x:a": {}}),
        ] {
            assert!(!ok(json!(["a"]), set.clone(), json!(["a"])), "{set}");
        }
        // A key matching two live items.
        assert!(!ok(json!(["a", "a"]), json!({"v:\"a\"": {}}), json!(["a"])));
    }

    #[test]
    fn quantities_compare_by_amount() {
        let q = |s: &str| quantity(&json!(s));
        // Stored alike by the API server: same format, same amount.
        let same = [
            ("2", "2000m"),
            ("1Gi", "1024Mi"),
            ("0.5", "500m"),
            ("1k", "1000"),
            ("1e3", "1000e0"),
            ("1.5Gi", "1536Mi"),
            ("100n", "0.0000001"),
            ("-1", "-1000m"),
        ];
        for (a, b) in same {
            assert!(q(a).is_some() && q(a) == q(b), "{a} = {b}");
        }
        assert_eq!(quantity(&json!(2)), q("2"));
        // The same amount in another format is stored differently: not equal.
        for (a, b) in [
            ("1Gi", "1073741824"),
            ("1e3", "1k"),
            ("1Ki", "1024"),
            ("1G", "1Gi"),
        ] {
            assert_ne!(q(a), q(b), "{a} vs {b}");
        }
        assert_ne!(q("100m"), q("1"));
        for bad in [
            "",
            "m",
            "1x",
            "1.2.3",
            "1Q",
            "0.1n",
            "abc",
            "1e",
            "1.5e-2147483648",
            "1e2147483647",
        ] {
            assert_eq!(q(bad), None, "{bad}");
        }
        let path =
            |p: &[&str]| is_quantity_path(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(path(&["spec", "resources", "requests", "storage"]));
        assert!(path(&[
            "spec",
            "template",
            "spec",
            "containers",
            "resources",
            "limits",
            "cpu"
        ]));
        assert!(path(&["spec", "volumes", "emptyDir", "sizeLimit"]));
        assert!(!path(&["spec", "limits", "cpu"]));
        assert!(!path(&["data", "sizeLimit"]));
        assert!(!path(&["data", "x", "resources", "limits", "cpu"]));
    }
}
