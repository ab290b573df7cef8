//! `namePrefix` and `nameSuffix`: kustomize's builtin `PrefixTransformer` and
//! `SuffixTransformer` (`plugin/builtin/prefixtransformer`, `api/filters/prefix`), also
//! configured under `transformers:` as `PrefixTransformer`, `SuffixTransformer` and
//! `PrefixSuffixTransformer` (the prefix then the suffix).
//!
//! - CustomResourceDefinitions, `apiregistration.k8s.io` APIServices and Namespaces are never
//!   renamed (selected on the object's original id);
//! - for the `metadata/name` field spec, the prefix (suffix) is recorded on the object and its
//!   id stored as a previous id, so that references can follow it (`nameref`);
//! - every field spec selecting the object's original id gets the prefix (suffix) on its value.

use std::path::Path;

use serde_json::{Map, Value};

use super::{CreateKind, FieldSpec, apply_field_spec};
use crate::error::RenderError;
use crate::kustomize::resource::{ResMap, scalar_text};

/// Which end of names a transformer changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// `namePrefix`.
    Prefix,
    /// `nameSuffix`.
    Suffix,
}

/// Kinds never renamed: (group, kind) selectors.
const SKIPPED: &[(&str, &str)] = &[
    ("", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("", "Namespace"),
];

/// Adds `affix` at the `end` of the names `field_specs` select, in every resource of `m`.
pub(crate) fn apply(
    m: &mut ResMap,
    end: End,
    affix: &str,
    field_specs: &[FieldSpec],
) -> Result<(), RenderError> {
    for r in &mut m.resources {
        let org = r.org_id();
        if SKIPPED
            .iter()
            .any(|(group, kind)| org.selected_by(group, "", kind))
        {
            continue;
        }
        for fs in field_specs {
            if !org.selected_by(&fs.group, &fs.version, &fs.kind) {
                continue;
            }
            if fs.path == "metadata/name" && !affix.is_empty() {
                match end {
                    End::Prefix => r.prefixes.push(affix.to_owned()),
                    End::Suffix => r.suffixes.push(affix.to_owned()),
                }
                r.store_previous_id();
            }
            apply_field_spec(r, fs, Some(CreateKind::Scalar), &mut |node: &mut Value| {
                if node.is_object() || node.is_array() {
                    return Err("expected a scalar node".into());
                }
                let old = scalar_text(Some(node));
                *node = Value::String(match end {
                    End::Prefix => format!("{affix}{old}"),
                    End::Suffix => format!("{old}{affix}"),
                });
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// A `PrefixTransformer`, `SuffixTransformer` or `PrefixSuffixTransformer` configuration
/// listed under `transformers:`.
pub(crate) fn from_config(
    obj: &Map<String, Value>,
    file: &Path,
    kind: &str,
) -> Result<Vec<(End, String, Vec<FieldSpec>)>, RenderError> {
    let text = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(RenderError::field(
            file,
            key,
            format!("expected a string, found {other}"),
        )),
    };
    let specs = match obj.get("fieldSpecs") {
        None | Some(Value::Null) => {
            return Err(RenderError::field(
                file,
                "fieldSpecs",
                format!("{kind}: fieldSpecs is not expected to be nil"),
            ));
        }
        v => super::labels::field_specs(v, file, "fieldSpecs")?,
    };
    let mut out = Vec::new();
    if kind != "SuffixTransformer" {
        out.push((End::Prefix, text("prefix")?, specs.clone()));
    }
    if kind != "PrefixTransformer" {
        out.push((End::Suffix, text("suffix")?, specs));
    }
    Ok(out)
}
