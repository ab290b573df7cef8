//! Transformers and the field specs they act through (kustomize's `api/filters/fieldspec`).

pub(crate) mod builtin;
pub(crate) mod config;
pub(crate) mod images;
pub(crate) mod labels;
pub(crate) mod nameref;
pub(crate) mod namespace;
pub(crate) mod prefix;
pub(crate) mod replacement;
pub(crate) mod replicas;

use serde_json::{Map, Value};

use super::resource::Resource;
use crate::error::RenderError;

/// kustomize's `types.FieldSpec`: a path in objects of the selected group, version and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSpec {
    /// API group selector (empty: any).
    pub group: String,
    /// API version selector (empty: any).
    pub version: String,
    /// Kind selector (empty: any).
    pub kind: String,
    /// `/`-separated path; `\/` escapes a slash inside a field name; a field name ending in
    /// `[]` is a sequence that is never created.
    pub path: String,
    /// Whether missing fields on the path are created.
    pub create: bool,
}

impl FieldSpec {
    /// A field spec of the built-in configuration.
    pub(crate) fn new(group: &str, version: &str, kind: &str, path: &str, create: bool) -> Self {
        FieldSpec {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            path: path.into(),
            create,
        }
    }

    /// kustomize's `isMatchGVK` on the object's current `apiVersion` and `kind`.
    pub(crate) fn matches(&self, r: &Resource) -> bool {
        let id = r.cur_id();
        id.selected_by(&self.group, &self.version, &self.kind)
    }

    /// kyaml's `PathSplitter(path, "/")`.
    pub(crate) fn segments(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for part in self.path.split('/') {
            match out.last_mut() {
                Some(last) if last.ends_with('\\') => {
                    last.pop();
                    last.push('/');
                    last.push_str(part);
                }
                _ => out.push(part.to_owned()),
            }
        }
        out
    }
}

/// The kind of node a field spec creates at the end of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateKind {
    /// A scalar (namespaces, names).
    Scalar,
    /// A mapping (labels, annotations).
    Mapping,
}

/// The callback run on the node a path leads to.
pub(crate) type SetFn<'a> = dyn FnMut(&mut Value) -> Result<(), String> + 'a;

/// kustomize's `fieldspec.Filter`: follows `path` in `node`, visiting every element of the
/// sequences met on the way, creating missing mappings (and the leaf, of kind `create`) when
/// asked, and calls `set` on each node found.
pub(crate) fn walk(
    node: &mut Value,
    path: &[String],
    create: Option<CreateKind>,
    set: &mut SetFn<'_>,
) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        return set(node);
    };
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                walk(item, path, create, set)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let (name, is_seq) = match head.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (head.as_str(), false),
            };
            if name.is_empty() {
                return Err("cannot set or create an empty field name".into());
            }
            let kind = match create {
                Some(_) if is_seq => None,
                Some(k) if rest.is_empty() => Some(k),
                Some(_) => Some(CreateKind::Mapping),
                None => None,
            };
            if !map.contains_key(name) {
                match kind {
                    None => return Ok(()),
                    Some(CreateKind::Mapping) => {
                        map.insert(name.to_owned(), Value::Object(Map::new()));
                    }
                    // A created scalar stays null until the callback sets it, so that
                    // callbacks can tell it from an empty string.
                    Some(CreateKind::Scalar) => {
                        map.insert(name.to_owned(), Value::Null);
                    }
                }
            }
            let Some(field) = map.get_mut(name) else {
                return Ok(());
            };
            if field.is_null() {
                if is_seq {
                    *field = Value::Array(Vec::new());
                } else {
                    match kind {
                        Some(CreateKind::Mapping) => *field = Value::Object(Map::new()),
                        Some(CreateKind::Scalar) | None => {}
                    }
                }
            }
            walk(field, rest, create, set)
        }
        _ => Err("expected sequence or mapping node".into()),
    }
}

/// Runs [`walk`] for one field spec on a resource, naming the resource and path on errors.
pub(crate) fn apply_field_spec(
    r: &mut Resource,
    fs: &FieldSpec,
    create: Option<CreateKind>,
    set: &mut SetFn<'_>,
) -> Result<(), RenderError> {
    if !fs.matches(r) {
        return Ok(());
    }
    let segments = fs.segments();
    let create = if fs.create { create } else { None };
    let mut root = Value::Object(std::mem::take(&mut r.obj));
    let result = walk(&mut root, &segments, create, set);
    if let Value::Object(m) = root {
        r.obj = m;
    }
    result.map_err(|message| RenderError::InvalidObject {
        file: r.source.as_ref().clone(),
        object: r.describe(),
        field: fs.path.replace('/', "."),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_sequences_and_creates_mappings() {
        let mut v = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let path: Vec<String> = ["spec", "containers", "name"].map(String::from).to_vec();
        let mut seen = Vec::new();
        walk(&mut v, &path, None, &mut |n: &mut Value| {
            seen.push(n.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![json!("a"), json!("b")]);

        let mut v = json!({"metadata": {"name": "x"}});
        let path: Vec<String> = ["metadata", "labels"].map(String::from).to_vec();
        walk(
            &mut v,
            &path,
            Some(CreateKind::Mapping),
            &mut |n: &mut Value| {
                n.as_object_mut().unwrap().insert("k".into(), json!("v"));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(v, json!({"metadata": {"name": "x", "labels": {"k": "v"}}}));
    }

    #[test]
    fn escaped_slashes_stay_in_field_names() {
        let fs = FieldSpec::new("", "", "", r"metadata/annotations/a.io\/b", false);
        assert_eq!(fs.segments(), vec!["metadata", "annotations", "a.io/b"]);
    }
}
