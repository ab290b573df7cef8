//! kustomize's builtin `LabelTransformer` (`api/filters/labels`), configured by an object
//! `apiVersion: builtin, kind: LabelTransformer` with `labels` and `fieldSpecs`, as listed
//! under a kustomization's `transformers:`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{CreateKind, FieldSpec, apply_field_spec};
use crate::error::RenderError;
use crate::kustomize::resource::{ResMap, scalar_text};

/// A configured `LabelTransformer`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelTransformer {
    /// Labels to set, applied in key order.
    pub labels: BTreeMap<String, String>,
    /// Where to set them.
    pub field_specs: Vec<FieldSpec>,
}

/// Decodes `fieldSpecs` entries (kustomize's `types.FieldSpec`: group, version, kind, path,
/// create).
pub(crate) fn field_specs(
    v: Option<&Value>,
    file: &Path,
    field: &str,
) -> Result<Vec<FieldSpec>, RenderError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(RenderError::field(
                file,
                field,
                format!("expected a list, found {other}"),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Value::Object(m) = item else {
            return Err(RenderError::field(file, f, "expected a mapping"));
        };
        let mut fs = FieldSpec::default();
        for (k, v) in m {
            let text = || match v {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                other => Err(RenderError::field(
                    file,
                    format!("{f}.{k}"),
                    format!("expected a string, found {other}"),
                )),
            };
            match k.as_str() {
                "group" => fs.group = text()?,
                "version" => fs.version = text()?,
                "kind" => fs.kind = text()?,
                "path" => fs.path = text()?,
                "create" => {
                    fs.create = match v {
                        Value::Bool(b) => *b,
                        Value::Null => false,
                        other => {
                            return Err(RenderError::field(
                                file,
                                format!("{f}.create"),
                                format!("expected true or false, found {other}"),
                            ));
                        }
                    }
                }
                // kustomize reads plugin configs without strictness.
                _ => {}
            }
        }
        out.push(fs);
    }
    Ok(out)
}

impl LabelTransformer {
    /// Reads the configuration object (from `file`).
    pub(crate) fn from_config(
        obj: &serde_json::Map<String, Value>,
        file: &Path,
    ) -> Result<Self, RenderError> {
        let mut labels = BTreeMap::new();
        match obj.get("labels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => {
                            return Err(RenderError::field(
                                file,
                                format!("labels.{k}"),
                                format!("expected a string, found {other} (quote it)"),
                            ));
                        }
                    };
                    labels.insert(k.clone(), v);
                }
            }
            Some(other) => {
                return Err(RenderError::field(
                    file,
                    "labels",
                    format!("expected a mapping, found {}", scalar_text(Some(other))),
                ));
            }
        }
        let field_specs = field_specs(obj.get("fieldSpecs"), file, "fieldSpecs")?;
        Ok(LabelTransformer {
            labels,
            field_specs,
        })
    }

    /// Sets the labels on every resource of `m`.
    pub(crate) fn apply(&self, m: &mut ResMap) -> Result<(), RenderError> {
        if self.labels.is_empty() {
            return Ok(());
        }
        for r in &mut m.resources {
            for (k, v) in &self.labels {
                for fs in &self.field_specs {
                    apply_field_spec(r, fs, Some(CreateKind::Mapping), &mut |node: &mut Value| {
                        match node {
                            Value::Object(map) => {
                                map.insert(k.clone(), Value::String(v.clone()));
                                Ok(())
                            }
                            _ => Err(format!("cannot set label {k}: the field is not a mapping")),
                        }
                    })?;
                }
            }
        }
        Ok(())
    }
}
