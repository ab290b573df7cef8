//! The `crds` field: OpenAPI definitions of custom types whose `x-kubernetes-*` extensions add
//! field specs to the transformer configuration, as kustomize v5.5's `LoadConfigFromCRDs`
//! does (`api/internal/accumulator/loadconfigfromcrds.go`).
//!
//! - A file maps type names (`example.com/pkg/apis/v1.Bee`) to `{Schema: {properties: ...}}`;
//!   a type whose properties include `kind`, `apiVersion` and `metadata` is a resource type,
//!   its kind the part of the name after the last `.`.
//! - For each property (following `$ref`s to other definitions of the file):
//!   `x-kubernetes-annotation` adds an annotations field spec, `x-kubernetes-label-selector`
//!   a common-labels one, `x-kubernetes-identity` a name-prefix one, and
//!   `x-kubernetes-object-ref-api-version` with `x-kubernetes-object-ref-kind` a name
//!   reference from `<property>/<x-kubernetes-object-ref-name-key or name>` to that kind.
//!   Extensions count only with string values, as kube-openapi reads them.

use serde_json::{Map, Value};

use super::load::{Kustomization, Loader};
use super::transform::FieldSpec;
use super::transform::config::{BackReference, TransformerConfig, merge_one};
use crate::error::RenderError;

/// How deep `$ref`s are followed (kustomize recurses without a limit and overflows its stack
/// on a cycle; this renderer fails instead).
const MAX_DEPTH: usize = 64;

/// The transformer configuration of the kustomization's `crds` files.
pub(crate) fn load(k: &Kustomization, loader: &Loader) -> Result<TransformerConfig, RenderError> {
    let mut config = TransformerConfig::default();
    for (i, rel) in k.crds.iter().enumerate() {
        let field = format!("crds[{i}]");
        let (path, bytes) = loader.read(rel, &k.file)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| RenderError::field(&k.file, &field, "the file is not UTF-8 text"))?;
        let value = crate::yaml::parse_kustomization_document(&text)
            .map_err(|e| RenderError::yaml(&path, e))?
            .unwrap_or(Value::Null);
        let defs = match value {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => {
                return Err(RenderError::field(
                    &k.file,
                    &field,
                    format!(
                        "unable to parse open API definition from '{rel}': expected a mapping \
                         of type names to definitions"
                    ),
                ));
            }
        };
        let err = |m: String| RenderError::field(&k.file, &field, m);
        let mut one = TransformerConfig::default();
        for (name, def) in &defs {
            let props = properties(def);
            if !["kind", "apiVersion", "metadata"]
                .iter()
                .all(|p| props.is_some_and(|m| m.contains_key(*p)))
            {
                continue;
            }
            let kind = name.rsplit('.').next().unwrap_or(name);
            add_type(&mut one, kind, &defs, name, &mut Vec::new(), 0).map_err(err)?;
        }
        config.merge(&one).map_err(err)?;
    }
    Ok(config)
}

/// Looks a field up as Go's `encoding/json` does: exactly, else ignoring case.
fn get_field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The `Schema.properties` of a definition.
fn properties(def: &Value) -> Option<&Map<String, Value>> {
    let schema = get_field(def.as_object()?, "Schema")?.as_object()?;
    get_field(schema, "properties")?.as_object()
}

/// A string-valued extension of a property.
fn extension<'a>(prop: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    prop.iter()
        .find(|(k, _)| k.to_ascii_lowercase() == name)
        .and_then(|(_, v)| v.as_str())
}

fn spec(kind: &str, path: &[String]) -> FieldSpec {
    FieldSpec::new("", "", kind, &path.join("/"), false)
}

/// kustomize's `loadCrdIntoConfig` for the definition `type_name`, its properties at `path`.
fn add_type(
    config: &mut TransformerConfig,
    kind: &str,
    defs: &Map<String, Value>,
    type_name: &str,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the definitions nest deeper than {MAX_DEPTH} levels (a $ref cycle?) at {}",
            path.join("/")
        ));
    }
    let Some(props) = defs.get(type_name).and_then(properties) else {
        return Ok(());
    };
    for (name, prop) in props {
        let Some(prop) = prop.as_object() else {
            continue;
        };
        path.push(name.clone());
        if extension(prop, "x-kubernetes-annotation").is_some() {
            merge_one(&mut config.common_annotations, spec(kind, path))?;
        }
        if extension(prop, "x-kubernetes-label-selector").is_some() {
            merge_one(&mut config.common_labels, spec(kind, path))?;
        }
        if extension(prop, "x-kubernetes-identity").is_some() {
            merge_one(&mut config.name_prefix, spec(kind, path))?;
        }
        if let (Some(version), Some(ref_kind)) = (
            extension(prop, "x-kubernetes-object-ref-api-version"),
            extension(prop, "x-kubernetes-object-ref-kind"),
        ) {
            let key = extension(prop, "x-kubernetes-object-ref-name-key").unwrap_or("name");
            path.push(key.to_owned());
            let referrer = spec(kind, path);
            path.pop();
            let other = TransformerConfig {
                name_reference: vec![BackReference {
                    group: String::new(),
                    version: version.to_owned(),
                    kind: ref_kind.to_owned(),
                    referrers: vec![referrer],
                }],
                ..TransformerConfig::default()
            };
            config.merge(&other)?;
        }
        if let Some(r) = prop.get("$ref").and_then(Value::as_str)
            && !r.is_empty()
        {
            add_type(config, kind, defs, r, path, depth + 1)?;
        }
        path.pop();
    }
    Ok(())
}
