//! Resources and their ids, as kustomize's `resource.Resource`, `resid.ResId` and `ResMap`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gitops_core::object::{is_cluster_scoped_kind, split_api_version};
use serde_json::{Map, Value};

use super::transform::config::TransformerConfig;
use crate::error::RenderError;
use crate::yaml::{self, Document, Seg};

/// kustomize's `ResId`: group, version, kind, name and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResId {
    /// API group (empty for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace as written (may be empty).
    pub namespace: String,
}

impl ResId {
    /// Whether kustomize treats the kind as cluster-scoped.
    pub(crate) fn is_cluster_scoped(&self) -> bool {
        is_cluster_scoped_kind(&self.group, &self.kind)
    }

    /// kustomize's `EffectiveNamespace`: cluster-scoped kinds have none, empty means `default`.
    pub(crate) fn effective_namespace(&self) -> &str {
        if self.is_cluster_scoped() {
            "_non_namespaceable_"
        } else if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    /// A key equal for ids that kustomize's `ResId.Equals` finds equal.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            self.group,
            self.version,
            self.kind,
            self.name,
            self.effective_namespace()
        )
    }

    /// kustomize's `Gvk.IsSelected`: empty selector fields match anything.
    pub(crate) fn selected_by(&self, group: &str, version: &str, kind: &str) -> bool {
        (group.is_empty() || group == self.group)
            && (version.is_empty() || version == self.version)
            && (kind.is_empty() || kind == self.kind)
    }
}

impl std::fmt::Display for ResId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.kind.is_empty() {
            "<unknown kind>"
        } else {
            &self.kind
        };
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        if self.namespace.is_empty() {
            write!(f, "{kind}/{name}")
        } else {
            write!(f, "{kind}/{}/{name}", self.namespace)
        }
    }
}

/// The text kustomize reads for a scalar field (`GetValue`): strings as they are, other
/// scalars as printed.
pub(crate) fn scalar_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// Where an object or a transformation comes from (kustomize's `resource.Origin`), tracked
/// with `buildMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The manifest file, from the top kustomization's folder.
    pub path: String,
    /// The kustomization or configuration file of the generator or transformer.
    pub configured_in: String,
    /// The generator or transformer: apiVersion, kind, name, namespace.
    pub configured_by: [String; 4],
}

impl Origin {
    /// The origin of a builtin generator or transformer configured by a kustomization field.
    pub(crate) fn builtin(configured_in: String, kind: &str) -> Self {
        Origin {
            path: String::new(),
            configured_in,
            configured_by: ["builtin".into(), kind.into(), String::new(), String::new()],
        }
    }

    /// The value kustomize marshals (fields in its struct's order, empty ones left out).
    pub(crate) fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.path.is_empty() {
            m.insert("path".into(), Value::String(self.path.clone()));
        }
        if !self.configured_in.is_empty() {
            m.insert(
                "configuredIn".into(),
                Value::String(self.configured_in.clone()),
            );
        }
        let mut by = Map::new();
        for (k, v) in ["apiVersion", "kind", "name", "namespace"]
            .iter()
            .zip(&self.configured_by)
        {
            if !v.is_empty() {
                by.insert((*k).into(), Value::String(v.clone()));
            }
        }
        if !by.is_empty() {
            m.insert("configuredBy".into(), Value::Object(by));
        }
        Value::Object(m)
    }
}

/// One object being built, with what kustomize tracks about it in build annotations.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    /// The object.
    pub obj: Map<String, Value>,
    /// Previous ids (`internal.config.kubernetes.io/previousNames` ...), oldest first.
    pub prev_ids: Vec<ResId>,
    /// Whether a content-hash suffix is to be added (`needsHashSuffix`).
    pub needs_hash: bool,
    /// The generator behavior (`create`, `merge`, `replace`), for generated objects.
    pub behavior: Option<String>,
    /// The file it was read from, or the kustomization that generated it.
    pub source: Arc<PathBuf>,
    /// Name prefixes added, innermost first (`internal.config.kubernetes.io/prefixes`).
    pub prefixes: Vec<String>,
    /// Name suffixes added, innermost first (`internal.config.kubernetes.io/suffixes`).
    pub suffixes: Vec<String>,
    /// With `buildMetadata`: where it comes from (`config.kubernetes.io/origin`).
    pub origin: Option<Origin>,
    /// With `buildMetadata`: the transformers run on it, in order
    /// (`alpha.config.kubernetes.io/transformations`).
    pub transformations: Vec<Origin>,
    /// The names of the `vars` whose `objref` is this object (kustomize's `refVarNames`).
    pub ref_var_names: Vec<String>,
    /// The mapping fields written with an empty value (`paused:`) in the file, which the
    /// first strategic merge patch applied to the object drops.
    pub empty_nulls: Vec<Vec<Seg>>,
}

impl Resource {
    /// A resource for an object read from or generated by `source`.
    pub(crate) fn new(obj: Map<String, Value>, source: Arc<PathBuf>) -> Self {
        Resource {
            obj,
            prev_ids: Vec::new(),
            needs_hash: false,
            behavior: None,
            source,
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            origin: None,
            transformations: Vec::new(),
            ref_var_names: Vec::new(),
            empty_nulls: Vec::new(),
        }
    }

    fn str_at(&self, path: &[&str]) -> String {
        let mut v = self.obj.get(path[0]);
        for p in &path[1..] {
            v = v.and_then(|v| v.get(p));
        }
        scalar_text(v)
    }

    /// `kind`.
    pub(crate) fn kind(&self) -> String {
        self.str_at(&["kind"])
    }

    /// `apiVersion`.
    pub(crate) fn api_version(&self) -> String {
        self.str_at(&["apiVersion"])
    }

    /// `metadata.name`.
    pub(crate) fn name(&self) -> String {
        self.str_at(&["metadata", "name"])
    }

    /// `metadata.namespace`.
    pub(crate) fn namespace(&self) -> String {
        self.str_at(&["metadata", "namespace"])
    }

    /// kustomize's `CurId`.
    pub(crate) fn cur_id(&self) -> ResId {
        let api_version = self.api_version();
        let (group, version) = split_api_version(&api_version);
        ResId {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: self.kind(),
            name: self.name(),
            namespace: self.namespace(),
        }
    }

    /// kustomize's `OrgId`: the first previous id, or the current one.
    pub(crate) fn org_id(&self) -> ResId {
        self.prev_ids
            .first()
            .cloned()
            .unwrap_or_else(|| self.cur_id())
    }

    /// kustomize's `StorePreviousId`: records the current id (with its effective namespace).
    pub(crate) fn store_previous_id(&mut self) {
        let mut id = self.cur_id();
        id.namespace = id.effective_namespace().to_owned();
        self.prev_ids.push(id);
    }

    /// The `metadata` mapping, created when missing.
    pub(crate) fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let md = self
            .obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !md.is_object() {
            *md = Value::Object(Map::new());
        }
        md.as_object_mut()
            .expect("metadata was just made a mapping")
    }

    /// Sets `metadata.name`.
    pub(crate) fn set_name(&mut self, name: String) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name));
    }

    /// kustomize's `AnyId` matching: the current id or one of the previous ids.
    pub(crate) fn any_id(&self, mut f: impl FnMut(&ResId) -> bool) -> bool {
        f(&self.cur_id()) || self.prev_ids.iter().any(f)
    }

    /// kustomize's `CopyMergeMetaDataFieldsFrom`: labels and annotations of `old` merged under
    /// this object's, the name, namespace and build metadata of `old` (the hash suffix only
    /// when both want it).
    pub(crate) fn copy_merge_metadata_from(&mut self, old: &Resource) {
        for field in ["labels", "annotations"] {
            let old_md = old.obj.get("metadata").cloned().unwrap_or(Value::Null);
            let md = self.metadata_mut();
            let mut merged = string_map(old_md.get(field));
            merged.extend(string_map(md.get(field)));
            if merged.is_empty() {
                md.remove(field);
            } else {
                let m = merged.into_iter().map(|(k, v)| (k, Value::String(v)));
                md.insert(field.into(), Value::Object(m.collect()));
            }
        }
        let (name, namespace) = (old.name(), old.namespace());
        let md = self.metadata_mut();
        md.insert("name".into(), Value::String(name));
        if namespace.is_empty() {
            md.remove("namespace");
        } else {
            md.insert("namespace".into(), Value::String(namespace));
        }
        self.prev_ids = old.prev_ids.clone();
        self.prefixes = old.prefixes.clone();
        self.suffixes = old.suffixes.clone();
        self.needs_hash = self.needs_hash && old.needs_hash;
        self.behavior = old.behavior.clone();
        if self.origin.is_none() {
            self.origin = old.origin.clone();
        }
        if self.transformations.is_empty() {
            self.transformations = old.transformations.clone();
        }
    }

    /// `Kind/namespace/name` for messages.
    pub(crate) fn describe(&self) -> String {
        self.cur_id().to_string()
    }
}

/// A field read as kustomize's `map[string]string` (values as `GetValue` reads them).
fn string_map(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), scalar_text(Some(v))))
            .collect(),
        _ => Default::default(),
    }
}

/// kustomize's `MergeDataMapFrom`: the string map `field` of `old` merged under that of `obj`
/// (an empty result removes the field).
fn merge_string_map(obj: &mut Map<String, Value>, old: &Map<String, Value>, field: &str) {
    let mut merged = string_map(old.get(field));
    merged.extend(string_map(obj.get(field)));
    if merged.is_empty() {
        obj.remove(field);
    } else {
        let m = merged.into_iter().map(|(k, v)| (k, Value::String(v)));
        obj.insert(field.into(), Value::Object(m.collect()));
    }
}

/// Checks what kustomize's `GetValidatedMetadata` checks: a kind, and a name unless the kind is
/// a list.
fn validate(obj: &Map<String, Value>, file: &Path) -> Result<(), RenderError> {
    let kind = scalar_text(obj.get("kind"));
    let metadata = obj.get("metadata");
    let name = scalar_text(metadata.and_then(|m| m.get("name")));
    let invalid = |field: &str, message: &str| {
        let api_version = scalar_text(obj.get("apiVersion"));
        let (group, version) = split_api_version(&api_version);
        let id = ResId {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.clone(),
            name: name.clone(),
            namespace: scalar_text(metadata.and_then(|m| m.get("namespace"))),
        };
        RenderError::InvalidObject {
            file: file.to_path_buf(),
            object: id.to_string(),
            field: field.into(),
            message: message.into(),
        }
    };
    if !matches!(obj.get("kind"), Some(Value::String(_))) || kind.is_empty() {
        return Err(invalid("kind", "missing kind"));
    }
    if !metadata.is_none_or(Value::is_object) {
        return Err(invalid("metadata", "metadata is not a mapping"));
    }
    if !kind.ends_with("List") && name.is_empty() {
        return Err(invalid("metadata.name", "missing metadata.name"));
    }
    Ok(())
}

/// Reads the objects of a manifest file as kustomize's resource factory does: documents in
/// order, a single `List`-like document unwrapped into its items, and `FooList` kinds with
/// `items` inlined.
pub(crate) fn objects_from_bytes(
    bytes: &[u8],
    file: &Path,
) -> Result<Vec<Map<String, Value>>, RenderError> {
    Ok(objects_with_empty_nulls(bytes, file)?
        .into_iter()
        .map(|(o, _)| o)
        .collect())
}

/// The paths (from `paths`) below `prefix`, without it.
fn below(paths: &[Vec<Seg>], prefix: &[Seg]) -> Vec<Vec<Seg>> {
    paths
        .iter()
        .filter_map(|p| p.strip_prefix(prefix).map(<[Seg]>::to_vec))
        .filter(|p| !p.is_empty())
        .collect()
}

/// An object read from a file, with the paths of its fields written with an empty value.
pub(crate) type ObjectWithEmptyNulls = (Map<String, Value>, Vec<Vec<Seg>>);

/// [`objects_from_bytes`], with the paths of each object's fields written with an empty value.
pub(crate) fn objects_with_empty_nulls(
    bytes: &[u8],
    file: &Path,
) -> Result<Vec<ObjectWithEmptyNulls>, RenderError> {
    let text = std::str::from_utf8(bytes).map_err(|e| RenderError::Yaml {
        file: file.to_path_buf(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        message: "the file is not UTF-8 text".into(),
    })?;
    let docs = yaml::parse_documents(text).map_err(|e| RenderError::yaml(file, e))?;
    let single = docs.len() == 1;
    let mut queue: std::collections::VecDeque<(Value, Vec<Vec<Seg>>)> = Default::default();
    for Document {
        value,
        line,
        empty_nulls,
    } in docs
    {
        let Value::Object(map) = value else {
            return Err(RenderError::Yaml {
                file: file.to_path_buf(),
                line,
                message: "missing Resource metadata (the document is not a mapping)".into(),
            });
        };
        let kind = scalar_text(map.get("kind"));
        if single && (kind == "List" || kind == "ResourceList") && map.contains_key("items") {
            if let Some(Value::Array(items)) = map.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let prefix = [Seg::Key("items".into()), Seg::Index(i)];
                    queue.push_back((item.clone(), below(&empty_nulls, &prefix)));
                }
            }
            continue;
        }
        queue.push_back((Value::Object(map), empty_nulls));
    }
    let mut out = Vec::new();
    while let Some((v, empty_nulls)) = queue.pop_front() {
        let Value::Object(map) = v else {
            return Err(RenderError::InvalidObject {
                file: file.to_path_buf(),
                object: "<list item>".into(),
                field: "items".into(),
                message: "a list item is not a mapping".into(),
            });
        };
        validate(&map, file)?;
        let kind = scalar_text(map.get("kind"));
        if kind.ends_with("List") {
            match map.get("items") {
                None => {}
                Some(Value::Null) => continue,
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate().rev() {
                        let prefix = [Seg::Key("items".into()), Seg::Index(i)];
                        queue.push_front((item.clone(), below(&empty_nulls, &prefix)));
                    }
                    continue;
                }
                Some(_) => {
                    return Err(RenderError::InvalidObject {
                        file: file.to_path_buf(),
                        object: kind,
                        field: "items".into(),
                        message: "expected a list".into(),
                    });
                }
            }
        }
        out.push((map, empty_nulls));
    }
    Ok(out)
}

/// kustomize's `ResMap`: resources in order, with unique current ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResMap {
    /// The resources, in order.
    pub resources: Vec<Resource>,
    /// The ids of `resources` when they were appended, to find conflicts.
    index: HashMap<String, usize>,
    /// The transformer configuration accumulated with the resources (kustomize's
    /// `ResAccumulator.tConfig`): the defaults and the `configurations` of the kustomization and
    /// its bases.
    pub config: TransformerConfig,
    /// The `vars` declared by the kustomization and its bases, by name.
    pub vars: std::collections::BTreeMap<String, super::vars::Var>,
}

impl ResMap {
    /// Appends a resource, failing on an id already present (`AppendAll`). Ids are taken
    /// when appending: transformers that change ids run on a map after its appends.
    pub(crate) fn append(&mut self, r: Resource) -> Result<(), RenderError> {
        let id = r.cur_id();
        match self.index.entry(id.key()) {
            Entry::Occupied(e) => Err(RenderError::Conflict {
                file: r.source.as_ref().clone(),
                object: id.to_string(),
                other: self.resources[*e.get()].source.as_ref().clone(),
            }),
            Entry::Vacant(e) => {
                e.insert(self.resources.len());
                self.resources.push(r);
                Ok(())
            }
        }
    }

    /// Rebuilds the index of current ids (after transformers renamed objects).
    pub(crate) fn reindex(&mut self) {
        self.index = self
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.cur_id().key(), i))
            .collect();
    }

    /// kustomize's `appendReplaceOrMerge` for a generated object: appended when no object has
    /// its id (as current or previous id); with `behavior: merge` or `replace`, it takes the
    /// place of the one object that has, keeping that object's name, namespace and build
    /// metadata, merging its labels and annotations under its own (and, for `merge`, its
    /// `data` and `binaryData`).
    pub(crate) fn absorb(&mut self, mut r: Resource, kfile: &Path) -> Result<(), RenderError> {
        let id = r.cur_id();
        let key = id.key();
        let matches: Vec<usize> = (0..self.resources.len())
            .filter(|&i| self.resources[i].any_id(|x| x.key() == key))
            .collect();
        let behavior = r.behavior.clone().unwrap_or_default();
        let err = |message: String| RenderError::InvalidObject {
            file: kfile.to_path_buf(),
            object: id.to_string(),
            field: "behavior".into(),
            message,
        };
        match matches.as_slice() {
            [] => {
                if matches!(behavior.as_str(), "merge" | "replace") {
                    return Err(err(format!(
                        "behavior: {behavior}: the object does not exist; cannot merge or \
                         replace"
                    )));
                }
                self.append(r)
            }
            [i] => {
                let old = &self.resources[*i];
                match behavior.as_str() {
                    "replace" => r.copy_merge_metadata_from(old),
                    "merge" => {
                        // The object merged into keeps its origin.
                        let origin = old.origin.clone();
                        r.copy_merge_metadata_from(old);
                        if origin.is_some() {
                            r.origin = origin;
                        }
                        for field in ["data", "binaryData"] {
                            merge_string_map(&mut r.obj, &old.obj, field);
                        }
                    }
                    _ => {
                        return Err(err(format!(
                            "the object exists (from {}); behavior must be merge or replace",
                            old.source.display()
                        )));
                    }
                }
                self.resources[*i] = r;
                self.reindex();
                Ok(())
            }
            _ => Err(err(
                "found multiple objects that could accept the merge".into()
            )),
        }
    }

    /// kustomize's `AddTransformerAnnotation`: records that the transformer of `origin` ran
    /// on every object (as the origin of those that have none).
    pub(crate) fn note_transformer(&mut self, origin: &Origin) {
        for r in &mut self.resources {
            if r.origin.is_none() {
                r.origin = Some(origin.clone());
            } else {
                r.transformations.push(origin.clone());
            }
        }
    }

    /// Appends all resources of another map.
    pub(crate) fn append_all(&mut self, other: ResMap) -> Result<(), RenderError> {
        for r in other.resources {
            self.append(r)?;
        }
        Ok(())
    }
}
