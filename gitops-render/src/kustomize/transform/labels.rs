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

/// Reads a `map[string]string` field of a transformer configuration.
fn string_map(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    file: &Path,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut out = BTreeMap::new();
    match obj.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => {
                        return Err(RenderError::field(
                            file,
                            format!("{key}.{k}"),
                            format!("expected a string, found {other} (quote it)"),
                        ));
                    }
                };
                out.insert(k.clone(), v);
            }
        }
        Some(other) => {
            return Err(RenderError::field(
                file,
                key,
                format!("expected a mapping, found {}", scalar_text(Some(other))),
            ));
        }
    }
    Ok(out)
}

/// Sets the `entries` (labels or annotations, named by `what` in errors) in the mappings
/// `field_specs` select, on every resource of `m` (kustomize's `labels` and `annotations`
/// filters: values are strings, missing mappings are created where the spec says so).
pub(crate) fn set_entries(
    m: &mut ResMap,
    entries: &BTreeMap<String, String>,
    field_specs: &[FieldSpec],
    what: &str,
) -> Result<(), RenderError> {
    if entries.is_empty() {
        return Ok(());
    }
    for r in &mut m.resources {
        for fs in field_specs {
            apply_field_spec(
                r,
                fs,
                Some(CreateKind::Mapping),
                &mut |node: &mut Value| match node {
                    Value::Object(map) => {
                        for (k, v) in entries {
                            map.insert(k.clone(), Value::String(v.clone()));
                        }
                        Ok(())
                    }
                    _ => Err(format!("cannot set {what}: the field is not a mapping")),
                },
            )?;
        }
    }
    Ok(())
}

impl LabelTransformer {
    /// Reads the configuration object (from `file`).
    pub(crate) fn from_config(
        obj: &serde_json::Map<String, Value>,
        file: &Path,
    ) -> Result<Self, RenderError> {
        let labels = string_map(obj, "labels", file)?;
        let field_specs = field_specs(obj.get("fieldSpecs"), file, "fieldSpecs")?;
        Ok(LabelTransformer {
            labels,
            field_specs,
        })
    }

    /// Reads an `AnnotationsTransformer` configuration (`annotations`, `fieldSpecs`); the
    /// result sets annotations where the field specs point.
    pub(crate) fn annotations_from_config(
        obj: &serde_json::Map<String, Value>,
        file: &Path,
    ) -> Result<Self, RenderError> {
        let labels = string_map(obj, "annotations", file)?;
        let field_specs = field_specs(obj.get("fieldSpecs"), file, "fieldSpecs")?;
        Ok(LabelTransformer {
            labels,
            field_specs,
        })
    }

    /// Sets the labels on every resource of `m`.
    pub(crate) fn apply(&self, m: &mut ResMap) -> Result<(), RenderError> {
        set_entries(m, &self.labels, &self.field_specs, "labels")
    }
}

/// The `labels:` and `commonLabels:` of a kustomization, as kustomize configures its
/// `LabelTransformer`s: one per `labels` entry (its `fields`, the configuration's `labels`
/// specs, then selectors and templates (`includeSelectors`), or templates only
/// (`includeTemplates`), or `metadata/labels` alone), then one for `commonLabels` with the
/// `commonLabels` specs.
pub(crate) fn apply_kustomization_labels(
    m: &mut ResMap,
    k: &crate::kustomize::load::Kustomization,
) -> Result<(), RenderError> {
    let tc = m.config.clone();
    for l in &k.labels {
        let mut fss = l.fields.clone();
        let merged = (|| {
            super::config::merge_all(&mut fss, &tc.labels)?;
            if l.include_selectors {
                super::config::merge_all(&mut fss, &tc.common_labels)?;
            } else {
                if l.include_templates {
                    super::config::merge_all(&mut fss, &tc.template_labels)?;
                }
                super::config::merge_one(
                    &mut fss,
                    FieldSpec::new("", "", "", "metadata/labels", true),
                )?;
            }
            Ok::<(), String>(())
        })();
        merged.map_err(|e| {
            RenderError::field(&k.file, &l.field, format!("failed to merge labels: {e}"))
        })?;
        set_entries(m, &l.pairs, &fss, "labels")?;
    }
    set_entries(m, &k.common_labels, &tc.common_labels, "labels")
}
