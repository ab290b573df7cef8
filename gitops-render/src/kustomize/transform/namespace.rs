//! The `namespace:` field: kustomize's builtin `NamespaceTransformer` with its default field
//! specs (`api/filters/namespace`, `builtinpluginconsts/namespace.go`).
//!
//! - `metadata.namespace` is set (created) on every object whose kind is not cluster-scoped;
//! - a `v1` `Namespace` object is renamed to the namespace;
//! - `spec.service.namespace` of an `APIService` is set (created) and
//!   `spec.conversion.webhook.clientConfig.service.namespace` of a CRD is set when present;
//! - subjects named `default` of `RoleBinding`s and `ClusterRoleBinding`s get the namespace
//!   (the `defaultOnly` mode);
//! - each object's previous id is recorded first, so that name references can be followed.

use std::collections::HashMap;

use serde_json::Value;

use super::{CreateKind, FieldSpec, apply_field_spec};
use crate::error::RenderError;
use crate::kustomize::resource::ResMap;

fn set_scalar(ns: &str) -> impl FnMut(&mut Value) -> Result<(), String> + '_ {
    move |node: &mut Value| match node {
        Value::Object(_) | Value::Array(_) => {
            Err("namespace field specs must target scalar nodes".into())
        }
        _ => {
            *node = Value::String(ns.to_owned());
            Ok(())
        }
    }
}

/// Applies `namespace` to every resource of `m`.
pub(crate) fn apply(m: &mut ResMap, ns: &str) -> Result<(), RenderError> {
    let defaults = [
        FieldSpec::new(
            "apiregistration.k8s.io",
            "",
            "APIService",
            "spec/service/namespace",
            true,
        ),
        FieldSpec::new(
            "apiextensions.k8s.io",
            "",
            "CustomResourceDefinition",
            "spec/conversion/webhook/clientConfig/service/namespace",
            false,
        ),
    ];
    let namespace_name = FieldSpec::new("", "", "Namespace", "metadata/name", true);
    let meta_namespace = FieldSpec::new("", "", "", "metadata/namespace", true);
    for r in &mut m.resources {
        if r.obj.is_empty() {
            continue;
        }
        r.store_previous_id();
        let id = r.cur_id();
        if !id.is_cluster_scoped() {
            apply_field_spec(
                r,
                &meta_namespace,
                Some(CreateKind::Scalar),
                &mut set_scalar(ns),
            )?;
        }
        if (id.kind == "RoleBinding" || id.kind == "ClusterRoleBinding")
            && let Some(Value::Array(subjects)) = r.obj.get_mut("subjects")
        {
            for s in subjects.iter_mut() {
                if let Value::Object(s) = s
                    && s.get("name").and_then(Value::as_str) == Some("default")
                {
                    s.insert("namespace".into(), Value::String(ns.to_owned()));
                }
            }
        }
        if r.api_version() == "v1" {
            apply_field_spec(
                r,
                &namespace_name,
                Some(CreateKind::Scalar),
                &mut set_scalar(ns),
            )?;
        }
        for fs in &defaults {
            apply_field_spec(r, fs, Some(CreateKind::Scalar), &mut set_scalar(ns))?;
        }
    }
    // kustomize checks each object right after moving it; a conflict it finds then is still
    // there once all objects are moved, so checking at the end finds the same ones.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in m.resources.iter().enumerate() {
        let id = r.cur_id();
        if let Some(&j) = seen.get(&id.key()) {
            return Err(RenderError::Conflict {
                file: r.source.as_ref().clone(),
                object: format!("{id} (after setting namespace {ns})"),
                other: m.resources[j].source.as_ref().clone(),
            });
        }
        seen.insert(id.key(), i);
    }
    Ok(())
}
