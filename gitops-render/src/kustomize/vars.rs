//! kustomize's deprecated `vars` (`api/types/var.go`, `api/internal/accumulator`,
//! `api/filters/refvar`).
//!
//! - At the end of each kustomization's build (after its transformers), each var declared
//!   there is tied to the object its `objref` names (by any of its ids: group, version, kind
//!   and name equal, and the namespace too when the objref gives one or the kind is
//!   cluster-scoped); more than one such object is an error, none is not (yet). Vars merge
//!   with those of the bases; a name declared twice is an error.
//! - At the top, after the hash suffixes and the name references, each var (by name order)
//!   takes the value of its `fieldref.fieldPath` (default `metadata.name`) in the first object
//!   tied to it, and `$(NAME)` is replaced in the string fields of the `varReference` field
//!   specs (kustomize's defaults and the `configurations`). A string that is exactly
//!   `$(NAME)` takes the value with its type; unknown names are left as written, `$$` is
//!   `$`. Nothing is rewritten when no var is declared.

use std::collections::BTreeMap;
use std::path::Path;

use gitops_core::object::is_cluster_scoped_kind;
use serde_json::Value;

use super::resource::{ResId, ResMap, scalar_text};
use super::transform::{FieldSpec, walk};
use crate::error::RenderError;
use crate::yaml::Seg;

/// One var: its name, the object it reads and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Var {
    /// `name`.
    pub name: String,
    /// `objref` group (from `apiVersion` when given).
    pub group: String,
    /// `objref` version (from `apiVersion` when given).
    pub version: String,
    /// `objref.kind`.
    pub kind: String,
    /// `objref.name`.
    pub obj_name: String,
    /// `objref.namespace`.
    pub namespace: String,
    /// `fieldref.fieldPath` as written.
    pub field_path: String,
}

impl Var {
    /// `fieldref.fieldPath`, defaulted.
    fn path(&self) -> &str {
        if self.field_path.is_empty() {
            "metadata.name"
        } else {
            &self.field_path
        }
    }

    /// Go's `%v` of kustomize's `Var` (whose objref prints as its group, version and kind),
    /// with the field path given.
    fn describe(&self, field_path: &str) -> String {
        let or = |s: &str, d: &'static str| {
            if s.is_empty() {
                d.to_owned()
            } else {
                s.to_owned()
            }
        };
        format!(
            "{{{} {}.{}.{} {{{field_path}}}}}",
            self.name,
            or(&self.kind, "[noKind]"),
            or(&self.version, "[noVer]"),
            or(&self.group, "[noGrp]"),
        )
    }
}

fn err(file: &Path, field: &str, message: impl Into<String>) -> RenderError {
    RenderError::field(file, field, message)
}

/// A string field, decoded as Go's `encoding/json` does: other scalars are errors.
fn text(file: &Path, field: &str, v: &Value) -> Result<String, RenderError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        other => Err(err(
            file,
            field,
            format!("expected a string, found {other}"),
        )),
    }
}

/// Reads a kustomization's `vars`.
pub(crate) fn vars_from(v: &Value, file: &Path, field: &str) -> Result<Vec<Var>, RenderError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(err(file, field, "expected a list")),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let mut var = Var {
            name: String::new(),
            group: String::new(),
            version: String::new(),
            kind: String::new(),
            obj_name: String::new(),
            namespace: String::new(),
            field_path: String::new(),
        };
        let Value::Object(m) = item else {
            return Err(err(file, &f, "expected a mapping"));
        };
        let mut api_version = String::new();
        for (k, v) in m {
            let kf = format!("{f}.{k}");
            match k.to_lowercase().as_str() {
                "name" => var.name = text(file, &kf, v)?,
                "objref" => {
                    let Value::Object(o) = v else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(err(file, &kf, "expected a mapping"));
                    };
                    for (ok, ov) in o {
                        let of = format!("{kf}.{ok}");
                        match ok.to_lowercase().as_str() {
                            "apiversion" => api_version = text(file, &of, ov)?,
                            "group" => var.group = text(file, &of, ov)?,
                            "version" => var.version = text(file, &of, ov)?,
                            "kind" => var.kind = text(file, &of, ov)?,
                            "name" => var.obj_name = text(file, &of, ov)?,
                            "namespace" => var.namespace = text(file, &of, ov)?,
                            _ => return Err(err(file, &of, "unknown field")),
                        }
                    }
                }
                "fieldref" => {
                    let Value::Object(o) = v else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(err(file, &kf, "expected a mapping"));
                    };
                    for (ok, ov) in o {
                        match ok.to_lowercase().as_str() {
                            "fieldpath" => var.field_path = text(file, &format!("{kf}.{ok}"), ov)?,
                            _ => return Err(err(file, &format!("{kf}.{ok}"), "unknown field")),
                        }
                    }
                }
                _ => return Err(err(file, &kf, "unknown field")),
            }
        }
        // kustomize's `Target.GVK()`: an apiVersion overrides group and version.
        if !api_version.is_empty() {
            match api_version.split('/').collect::<Vec<_>>()[..] {
                [g, v] => {
                    var.group = g.to_owned();
                    var.version = v.to_owned();
                }
                [v] => var.version = v.to_owned(),
                _ => {}
            }
        }
        out.push(var);
    }
    Ok(out)
}

/// kustomize's `ResAccumulator.MergeVars`: ties each var to the object its objref names and
/// adds it to the map's vars.
pub(crate) fn merge_vars(m: &mut ResMap, vars: &[Var], file: &Path) -> Result<(), RenderError> {
    for v in vars {
        let cluster = is_cluster_scoped_kind(&v.group, &v.kind);
        let target = ResId {
            group: v.group.clone(),
            version: v.version.clone(),
            kind: v.kind.clone(),
            name: v.obj_name.clone(),
            namespace: v.namespace.clone(),
        };
        let with_ns = !v.namespace.is_empty() || cluster;
        let matches = |id: &ResId| {
            id.group == target.group
                && id.version == target.version
                && id.kind == target.kind
                && id.name == target.name
                && (!with_ns || id.effective_namespace() == target.effective_namespace())
        };
        let matched: Vec<usize> = m
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.any_id(matches))
            .map(|(i, _)| i)
            .collect();
        if matched.len() > 1 {
            return Err(err(
                file,
                "vars",
                format!(
                    "found {} resId matches for var {} (unable to disambiguate)",
                    matched.len(),
                    v.describe(&v.field_path)
                ),
            ));
        }
        if let Some(&i) = matched.first() {
            m.resources[i].ref_var_names.push(v.name.clone());
        }
    }
    for v in vars {
        merge_one(&mut m.vars, v.clone()).map_err(|e| err(file, "vars", e))?;
    }
    Ok(())
}

/// kustomize's `VarSet.Merge`.
pub(crate) fn merge_one(set: &mut BTreeMap<String, Var>, v: Var) -> Result<(), String> {
    if set.contains_key(&v.name) {
        return Err(format!("var '{}' already encountered", v.name));
    }
    set.insert(v.name.clone(), v);
    Ok(())
}

/// The value of a var: kyaml's `GetFieldValue` on the object.
fn field_value(obj: &Value, path: &str) -> Option<(Value, Vec<Seg>)> {
    let mut cur = obj;
    let mut at = Vec::new();
    let parts = super::transform::replacement::smarter_split(path);
    let mut fields = Vec::new();
    let re = regex::Regex::new(r"^(.*)\[(\d+)\]$").expect("valid regex");
    for p in parts {
        match re.captures(&p) {
            Some(c) if p.ends_with(']') => {
                if !c[1].is_empty() {
                    fields.push(c[1].to_owned());
                }
                fields.push(c[2].to_owned());
            }
            _ => fields.push(p),
        }
    }
    for f in fields.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        cur = match cur {
            Value::Object(m) => {
                at.push(Seg::Key(f.to_owned()));
                m.get(f)?
            }
            Value::Array(items) => {
                let (name, value) = f
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .and_then(|x| x.split_once('='))
                    .unwrap_or(("", ""));
                let i = if let Ok(i) = f.parse::<usize>() {
                    i
                } else if f == "-" {
                    items.len().checked_sub(1)?
                } else if !value.is_empty() || !name.is_empty() {
                    items.iter().position(|it| {
                        if name.is_empty() {
                            scalar_text(Some(it)) == value
                        } else {
                            it.get(name).is_some_and(|x| scalar_text(Some(x)) == value)
                        }
                    })?
                } else {
                    return None;
                };
                at.push(Seg::Index(i));
                items.get(i)?
            }
            _ => return None,
        };
    }
    Some((cur.clone(), at))
}

/// kustomize's `ResolveVars`, run at the top.
pub(crate) fn resolve(m: &mut ResMap, file: &Path) -> Result<(), RenderError> {
    if m.vars.is_empty() {
        return Ok(());
    }
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (name, v) in &m.vars {
        let Some(r) = m.resources.iter().find(|r| r.ref_var_names.contains(name)) else {
            return Err(err(
                file,
                "vars",
                format!(
                    "var '{}' cannot be mapped to a field in the set of known resources",
                    v.describe(v.path())
                ),
            ));
        };
        let (value, at) =
            field_value(&Value::Object(r.obj.clone()), v.path()).ok_or_else(|| {
                err(
                    file,
                    "vars",
                    format!(
                        "field specified in var '{}' not found in corresponding resource",
                        v.describe(v.path())
                    ),
                )
            })?;
        // kyaml reads a null as its text: empty when written empty, else (most often) `null`.
        let value = match value {
            Value::Null if r.empty_nulls.contains(&at) => Value::String(String::new()),
            Value::Null => Value::String("null".into()),
            other => other,
        };
        values.insert(name.clone(), value);
    }
    let specs: Vec<FieldSpec> = m.config.var_reference.clone();
    for r in &mut m.resources {
        let describe = r.describe();
        let source = r.source.clone();
        for fs in &specs {
            if !fs.matches(r) {
                continue;
            }
            let segments = fs.segments();
            let mut root = Value::Object(std::mem::take(&mut r.obj));
            let result = walk(&mut root, &segments, None, &mut |node: &mut Value| {
                substitute_node(node, &values)
            });
            if let Value::Object(o) = root {
                r.obj = o;
            }
            result.map_err(|message| RenderError::InvalidObject {
                file: source.as_ref().clone(),
                object: describe.clone(),
                field: fs.path.replace('/', "."),
                message,
            })?;
        }
    }
    Ok(())
}

/// kustomize's `refvar.Filter.set` on one node.
fn substitute_node(node: &mut Value, values: &BTreeMap<String, Value>) -> Result<(), String> {
    match node {
        Value::Null => Ok(()),
        Value::String(s) => {
            *node = replace(s, values);
            Ok(())
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                if let Value::String(s) = v {
                    *v = replace(s, values);
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                let Value::String(s) = item else {
                    return Err("invalid value type expect a string".into());
                };
                *item = replace(s, values);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The text Go's `%v` prints for a var's value.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// kustomize's `DoReplacements`.
fn replace(input: &str, values: &BTreeMap<String, Value>) -> Value {
    let mapped = |name: &str| -> Option<&Value> {
        values
            .get(name)
            .filter(|v| matches!(v, Value::String(_) | Value::Bool(_) | Value::Number(_)))
    };
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance;
            match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    advance = 1;
                }
                b'(' => match rest[1..].find(')') {
                    Some(end) => {
                        let name = &rest[1..1 + end];
                        advance = end + 2;
                        let whole = input == format!("$({name})");
                        match mapped(name) {
                            Some(v) if whole => return v.clone(),
                            Some(v) => out.push_str(&value_text(v).unwrap_or_default()),
                            None if whole => return Value::String(input.to_owned()),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                    }
                    None => {
                        out.push_str("$(");
                        advance = 1;
                    }
                },
                _ => {
                    let c = rest.chars().next().expect("not empty");
                    out.push('$');
                    out.push(c);
                    advance = c.len_utf8();
                }
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint <= input.len() {
        out.push_str(&input[checkpoint..]);
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_as_kustomize() {
        let mut values = BTreeMap::new();
        values.insert("A".to_owned(), json!("x"));
        values.insert("N".to_owned(), json!(5));
        assert_eq!(replace("$(A)-$(N)", &values), json!("x-5"));
        assert_eq!(replace("$(N)", &values), json!(5));
        assert_eq!(replace("$(B)", &values), json!("$(B)"));
        assert_eq!(replace("$$(A) $x $(", &values), json!("$(A) $x $("));
        assert_eq!(replace("a$", &values), json!("a$"));
    }
}
