//! Untyped Kubernetes objects and their identity.
//!
//! [`Object`] is a JSON object (field order preserved) with accessors for the fields every
//! Kubernetes object has. [`ObjectId`] is what cli-utils' `ObjMetadata` is for Flux: group, kind,
//! namespace and name, without the version.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a value is not a usable Kubernetes object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    /// The value is not a JSON/YAML mapping.
    #[error("object is not a mapping")]
    NotAMapping,
    /// A required field (`apiVersion`, `kind`, `metadata.name`) is missing or not a string.
    #[error("object {object} has no {field}")]
    MissingField {
        /// What is known of the object, e.g. `Deployment/podinfo` or `<unknown>`.
        object: String,
        /// The missing field path, e.g. `metadata.name`.
        field: &'static str,
    },
}

/// The identity of an object: API group, kind, namespace (empty when cluster-scoped) and name.
///
/// Displayed as Flux's change-set subject `Kind/namespace/name` (or `Kind/name`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// API group, empty for the core group (`""` for Service, `apps` for Deployment).
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectId {
    /// Builds an id; `namespace` may be empty for cluster-scoped objects.
    pub fn new(
        group: impl Into<String>,
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ObjectId {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The cli-utils / Flux inventory id: `<namespace>_<name>_<group>_<kind>`, with `:` in the
    /// name written as `__` (RBAC names such as `system:foo`), e.g. `default_podinfo__Service`.
    pub fn inventory_id(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.namespace,
            self.name.replace(':', "__"),
            self.group,
            self.kind
        )
    }

    /// Parses an inventory id written by [`ObjectId::inventory_id`] (or by Flux).
    pub fn from_inventory_id(id: &str) -> Option<Self> {
        // The name may contain `__` (escaped `:`); namespace, group and kind never contain `_`.
        let (namespace, rest) = id.split_once('_')?;
        let (rest, kind) = rest.rsplit_once('_')?;
        let (name, group) = rest.rsplit_once('_')?;
        if name.is_empty() || kind.is_empty() {
            return None;
        }
        Some(ObjectId::new(
            group,
            kind,
            namespace,
            name.replace("__", ":"),
        ))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Splits an `apiVersion` into group and version: `apps/v1` -> (`apps`, `v1`), `v1` -> (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// An untyped Kubernetes object: a JSON mapping whose field order is kept (as rendered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Object(Map<String, Value>);

impl TryFrom<Value> for Object {
    type Error = ObjectError;
    fn try_from(v: Value) -> Result<Self, Self::Error> {
        match v {
            Value::Object(m) => Ok(Object(m)),
            _ => Err(ObjectError::NotAMapping),
        }
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(o.0)
    }
}

impl Object {
    /// Wraps a JSON mapping.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Object(map)
    }

    /// The fields, in order.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The fields, mutable.
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }

    /// Consumes the object into a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    fn str_at(&self, path: &[&str]) -> Option<&str> {
        let mut v = self.0.get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        v.as_str()
    }

    /// `apiVersion`, empty when missing.
    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"]).unwrap_or("")
    }

    /// `kind`, empty when missing.
    pub fn kind(&self) -> &str {
        self.str_at(&["kind"]).unwrap_or("")
    }

    /// `metadata.name`, empty when missing.
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"]).unwrap_or("")
    }

    /// `metadata.namespace`, if set and not empty.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at(&["metadata", "namespace"])
            .filter(|s| !s.is_empty())
    }

    /// API group from `apiVersion` (empty for the core group).
    pub fn group(&self) -> &str {
        split_api_version(self.api_version()).0
    }

    /// API version from `apiVersion` without the group (`v1`).
    pub fn version(&self) -> &str {
        split_api_version(self.api_version()).1
    }

    /// The object's identity; errors when `apiVersion`, `kind` or `metadata.name` is missing.
    pub fn id(&self) -> Result<ObjectId, ObjectError> {
        let describe = || {
            let k = if self.kind().is_empty() {
                "<unknown kind>"
            } else {
                self.kind()
            };
            let n = if self.name().is_empty() {
                "<unnamed>"
            } else {
                self.name()
            };
            format!("{k}/{n}")
        };
        if self.api_version().is_empty() {
            return Err(ObjectError::MissingField {
                object: describe(),
                field: "apiVersion",
            });
        }
        if self.kind().is_empty() {
            return Err(ObjectError::MissingField {
                object: describe(),
                field: "kind",
            });
        }
        if self.name().is_empty() {
            return Err(ObjectError::MissingField {
                object: describe(),
                field: "metadata.name",
            });
        }
        Ok(ObjectId::new(
            self.group(),
            self.kind(),
            self.namespace().unwrap_or(""),
            self.name(),
        ))
    }

    fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let md = self
            .0
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !md.is_object() {
            *md = Value::Object(Map::new());
        }
        md.as_object_mut()
            .expect("metadata was just made a mapping")
    }

    fn string_map_mut(&mut self, field: &str) -> &mut Map<String, Value> {
        let md = self.metadata_mut();
        let m = md.entry(field).or_insert_with(|| Value::Object(Map::new()));
        if !m.is_object() {
            *m = Value::Object(Map::new());
        }
        m.as_object_mut().expect("field was just made a mapping")
    }

    /// Sets `metadata.namespace`.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(namespace.into()));
    }

    /// A label value, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.str_at(&["metadata", "labels", key])
    }

    /// An annotation value, if set.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.str_at(&["metadata", "annotations", key])
    }

    /// Sets a label, creating `metadata.labels` when needed.
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.string_map_mut("labels")
            .insert(key.into(), Value::String(value.into()));
    }

    /// Sets an annotation, creating `metadata.annotations` when needed.
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.string_map_mut("annotations")
            .insert(key.into(), Value::String(value.into()));
    }

    /// Whether a label or an annotation `key` has `value`, compared case-insensitively — how
    /// Flux reads per-object switches such as `kustomize.toolkit.fluxcd.io/prune: disabled`.
    pub fn has_switch(&self, key: &str, value: &str) -> bool {
        [self.label(key), self.annotation(key)]
            .into_iter()
            .flatten()
            .any(|v| v.eq_ignore_ascii_case(value))
    }
}

/// Whether a built-in kind is cluster-scoped (the list kustomize and kubectl carry for kinds of
/// the core Kubernetes API). Custom kinds are assumed namespaced; an applier with discovery knows
/// better and should be asked where it matters.
pub fn is_cluster_scoped_kind(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ) | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | (
                "rbac.authorization.k8s.io",
                "ClusterRole" | "ClusterRoleBinding"
            )
            | (
                "storage.k8s.io",
                "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
            )
            | ("scheduling.k8s.io", "PriorityClass")
            | ("networking.k8s.io", "IngressClass")
            | ("node.k8s.io", "RuntimeClass")
            | ("policy", "PodSecurityPolicy")
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration"
                    | "ValidatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
            | (
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema" | "PriorityLevelConfiguration"
            )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inventory_ids_match_flux() {
        let svc = ObjectId::new("", "Service", "default", "podinfo");
        assert_eq!(svc.inventory_id(), "default_podinfo__Service");
        let crole = ObjectId::new("rbac.authorization.k8s.io", "ClusterRole", "", "system:foo");
        assert_eq!(
            crole.inventory_id(),
            "_system__foo_rbac.authorization.k8s.io_ClusterRole"
        );
        for id in [svc, crole] {
            assert_eq!(ObjectId::from_inventory_id(&id.inventory_id()), Some(id));
        }
        let dep = ObjectId::from_inventory_id("apps_podinfo_apps_Deployment").unwrap();
        assert_eq!(dep.namespace, "apps");
        assert_eq!(dep.to_string(), "Deployment/apps/podinfo");
    }

    #[test]
    fn object_accessors_and_labels() {
        let mut o: Object = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "annotations": {"kustomize.toolkit.fluxcd.io/prune": "Disabled"}}
        }))
        .unwrap();
        assert_eq!(o.group(), "apps");
        assert_eq!(o.version(), "v1");
        assert_eq!(o.namespace(), None);
        o.set_label("a", "b");
        assert_eq!(o.label("a"), Some("b"));
        assert!(o.has_switch("kustomize.toolkit.fluxcd.io/prune", "disabled"));
        o.set_namespace("apps");
        assert_eq!(
            o.id().unwrap(),
            ObjectId::new("apps", "Deployment", "apps", "podinfo")
        );
    }

    #[test]
    fn missing_name_is_named_in_the_error() {
        let o: Object =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service"})).unwrap();
        assert_eq!(
            o.id().unwrap_err().to_string(),
            "object Service/<unnamed> has no metadata.name"
        );
    }
}
