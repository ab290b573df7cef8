//! `replicas`: kustomize's builtin `ReplicaCountTransformer` (`api/filters/replicacount`),
//! also configured under `transformers:` (`replica`, `fieldSpecs`).
//!
//! For each field spec, the objects whose current or previous id has the entry's name and a
//! kind the spec selects get the count (an integer, created where missing; replacing a quoted
//! value, it stays a string, as kyaml keeps the node's style). An entry that
//! matches no object with any field spec is an error, as in kustomize.

use std::path::Path;

use serde_json::{Map, Value};

use super::{CreateKind, FieldSpec, apply_field_spec};
use crate::error::RenderError;
use crate::kustomize::load::{ReplicaArgs, int64_value};
use crate::kustomize::resource::ResMap;

/// kustomize's `Gvk.String()` of a field spec's selector.
fn gvk_string(fs: &FieldSpec) -> String {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_owned()
        } else {
            s.to_owned()
        }
    };
    format!(
        "{}.{}.{}",
        or(&fs.kind, "[noKind]"),
        or(&fs.version, "[noVer]"),
        or(&fs.group, "[noGrp]")
    )
}

/// Sets the replica count of `args` through `field_specs`; `file` names the kustomization (or
/// configuration) on errors.
pub(crate) fn apply(
    m: &mut ResMap,
    args: &ReplicaArgs,
    field_specs: &[FieldSpec],
    file: &Path,
) -> Result<(), RenderError> {
    let mut found = false;
    for fs in field_specs {
        for r in &mut m.resources {
            let selected = r.any_id(|id| {
                id.name == args.name && id.selected_by(&fs.group, &fs.version, &fs.kind)
            });
            if !selected {
                continue;
            }
            found = true;
            apply_field_spec(r, fs, Some(CreateKind::Scalar), &mut |node: &mut Value| {
                if node.is_object() || node.is_array() {
                    return Err("expected a scalar node".into());
                }
                // kyaml keeps the style of the node it replaces: a quoted count stays a string.
                *node = match node {
                    Value::String(_) => Value::String(args.count.to_string()),
                    _ => Value::Number(args.count.into()),
                };
                Ok(())
            })?;
        }
    }
    if !found {
        let gvks: Vec<String> = field_specs.iter().map(gvk_string).collect();
        return Err(RenderError::field(
            file,
            format!("{}.name", args.field),
            format!(
                "resource with name {} does not match a config with the following GVK [{}]",
                args.name,
                gvks.join(" ")
            ),
        ));
    }
    Ok(())
}

/// Reads a `ReplicaCountTransformer` configuration (`replica`, `fieldSpecs`).
pub(crate) fn from_config(
    obj: &Map<String, Value>,
    file: &Path,
) -> Result<(ReplicaArgs, Vec<FieldSpec>), RenderError> {
    let mut args = ReplicaArgs {
        field: "replica".into(),
        ..ReplicaArgs::default()
    };
    match obj.get("replica") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match k.as_str() {
                    "name" => {
                        args.name = match v {
                            Value::String(s) => s.clone(),
                            Value::Null => String::new(),
                            other => {
                                return Err(RenderError::field(
                                    file,
                                    "replica.name",
                                    format!("expected a string, found {other}"),
                                ));
                            }
                        }
                    }
                    "count" => {
                        args.count = int64_value(v)
                            .map_err(|e| RenderError::field(file, "replica.count", e))?;
                    }
                    _ => {}
                }
            }
        }
        Some(other) => {
            return Err(RenderError::field(
                file,
                "replica",
                format!("expected a mapping, found {other}"),
            ));
        }
    }
    let specs = super::labels::field_specs(obj.get("fieldSpecs"), file, "fieldSpecs")?;
    Ok((args, specs))
}
