//! The `namespace:` field: kustomize's builtin `NamespaceTransformer` with its default field
//! specs (`api/filters/namespace`, `builtinpluginconsts/namespace.go`) and those of
//! `configurations`; also configured under `transformers:` (`unsetOnly`,
//! `setRoleBindingSubjects`).
//!
//! - `metadata.namespace` is set (created) on every object whose kind is not cluster-scoped;
//! - a `v1` `Namespace` object is renamed to the namespace;
//! - `spec.service.namespace` of an `APIService` is set (created) and
//!   `spec.conversion.webhook.clientConfig.service.namespace` of a CRD is set when present;
//! - subjects named `default` of `RoleBinding`s and `ClusterRoleBinding`s get the namespace
//!   (the `defaultOnly` mode);
//! - each object's previous id is recorded first, so that name references can be followed.

use std::collections::HashMap;

use std::path::Path;

use serde_json::{Map, Value};

use super::{CreateKind, FieldSpec, apply_field_spec};
use crate::error::RenderError;
use crate::kustomize::resource::ResMap;

fn set_scalar(ns: &str, unset_only: bool) -> impl FnMut(&mut Value) -> Result<(), String> + '_ {
    move |node: &mut Value| match node {
        Value::Object(_) | Value::Array(_) => {
            Err("namespace field specs must target scalar nodes".into())
        }
        Value::String(s) if unset_only && !s.is_empty() => Ok(()),
        Value::Number(_) | Value::Bool(_) if unset_only => Ok(()),
        _ => {
            *node = Value::String(ns.to_owned());
            Ok(())
        }
    }
}

/// How binding subjects get the namespace (`setRoleBindingSubjects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectMode {
    /// `defaultOnly` (the default): subjects named `default`.
    DefaultOnly,
    /// `allServiceAccounts`: subjects of kind `ServiceAccount`.
    AllServiceAccounts,
    /// `none`.
    None,
}

/// kustomize's default `namespace` field specs (`builtinpluginconsts/namespace.go`).
pub(crate) fn default_field_specs() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("", "", "Namespace", "metadata/name", true),
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
    ]
}

/// Applies `namespace` to every resource of `m` with the `namespace` field specs of the
/// accumulated configuration.
pub(crate) fn apply(m: &mut ResMap, ns: &str) -> Result<(), RenderError> {
    let specs = m.config.namespace.clone();
    apply_with(m, ns, &specs, false, SubjectMode::DefaultOnly)
}

/// Reads a `NamespaceTransformer` configuration listed under `transformers:`
/// (`metadata.namespace`, `fieldSpecs`, `unsetOnly`, `setRoleBindingSubjects`).
pub(crate) fn from_config(
    obj: &Map<String, Value>,
    file: &Path,
) -> Result<(String, Vec<FieldSpec>, bool, SubjectMode), RenderError> {
    let ns = match obj.get("metadata").and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(RenderError::field(
                file,
                "metadata.namespace",
                format!("expected a string, found {other}"),
            ));
        }
    };
    let specs = super::labels::field_specs(obj.get("fieldSpecs"), file, "fieldSpecs")?;
    let unset_only = match obj.get("unsetOnly") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(RenderError::field(
                file,
                "unsetOnly",
                format!("expected true or false, found {other}"),
            ));
        }
    };
    let mode = match obj.get("setRoleBindingSubjects") {
        None | Some(Value::Null) => SubjectMode::DefaultOnly,
        Some(Value::String(s)) => match s.as_str() {
            "" | "defaultOnly" => SubjectMode::DefaultOnly,
            "allServiceAccounts" => SubjectMode::AllServiceAccounts,
            "none" => SubjectMode::None,
            other => {
                return Err(RenderError::field(
                    file,
                    "setRoleBindingSubjects",
                    format!(
                        "invalid value \"{other}\" for setRoleBindingSubjects: must be one of \
                         \"defaultOnly\", \"none\" or \"allServiceAccounts\""
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(RenderError::field(
                file,
                "setRoleBindingSubjects",
                format!("expected a string, found {other}"),
            ));
        }
    };
    Ok((ns, specs, unset_only, mode))
}

/// kustomize's `NamespaceTransformer`: `metadata/namespace` of namespaced objects, binding
/// subjects as `mode` says, then the field specs (`metadata/name` only on `v1` objects);
/// with `unset_only`, fields that have a value keep it.
pub(crate) fn apply_with(
    m: &mut ResMap,
    ns: &str,
    field_specs: &[FieldSpec],
    unset_only: bool,
    mode: SubjectMode,
) -> Result<(), RenderError> {
    if ns.is_empty() {
        return Ok(());
    }
    let meta_namespace = FieldSpec::new("", "", "", "metadata/namespace", true);
    for r in &mut m.resources {
        if r.obj.is_empty() {
            continue;
        }
        r.store_previous_id();
        let id = r.cur_id();
        let v1 = r.api_version() == "v1";
        let is_binding = id.kind == "RoleBinding" || id.kind == "ClusterRoleBinding";
        if !id.is_cluster_scoped() {
            apply_field_spec(
                r,
                &meta_namespace,
                Some(CreateKind::Scalar),
                &mut set_scalar(ns, unset_only),
            )?;
        }
        if is_binding
            && mode != SubjectMode::None
            && let Some(Value::Array(subjects)) = r.obj.get_mut("subjects")
        {
            for s in subjects.iter_mut() {
                let Value::Object(s) = s else { continue };
                let selected = match mode {
                    SubjectMode::DefaultOnly => {
                        s.get("name").and_then(Value::as_str) == Some("default")
                    }
                    _ => s.get("kind").and_then(Value::as_str) == Some("ServiceAccount"),
                };
                if selected {
                    let field = s.entry("namespace").or_insert(Value::Null);
                    set_scalar(ns, unset_only)(field).map_err(|message| {
                        RenderError::InvalidObject {
                            file: r.source.as_ref().clone(),
                            object: id.to_string(),
                            field: "subjects.namespace".into(),
                            message,
                        }
                    })?;
                }
            }
        }
        for fs in field_specs {
            if fs.path == "metadata/namespace"
                || (fs.path == "metadata/name" && !v1)
                || (is_binding
                    && (fs.kind == "RoleBinding" || fs.kind == "ClusterRoleBinding")
                    && fs.path == "subjects/namespace")
            {
                continue;
            }
            apply_field_spec(
                r,
                fs,
                Some(CreateKind::Scalar),
                &mut set_scalar(ns, unset_only),
            )?;
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
