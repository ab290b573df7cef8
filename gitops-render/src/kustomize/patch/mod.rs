//! kustomize's patch transformers (`api/internal/builtins/Patch*Transformer.go`):
//! `patchesStrategicMerge`, `patches` and `patchesJson6902`, and their builtin configurations
//! under `transformers:`.

pub(crate) mod json6902;
pub(crate) mod schema;
mod schema_table;
pub(crate) mod smp;

use std::path::Path;

use serde_json::{Map, Value};

use super::load::Loader;
use super::resource::{ResMap, Resource, objects_from_bytes, scalar_text};
use crate::error::RenderError;
use crate::yaml;

/// kustomize's `types.Selector`: which objects a patch applies to.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selector {
    /// Group regex.
    pub group: String,
    /// Version regex.
    pub version: String,
    /// Kind regex.
    pub kind: String,
    /// Name regex.
    pub name: String,
    /// Namespace regex.
    pub namespace: String,
    /// A label selector.
    pub label_selector: String,
    /// An annotation selector.
    pub annotation_selector: String,
}

/// One patch: a `patches` entry, one `patchesJson6902` entry, or all of
/// `patchesStrategicMerge`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PatchArgs {
    /// The field of the entry, for errors (`patches[1]`).
    pub field: String,
    /// `path`.
    pub path: String,
    /// `patch` (inline).
    pub patch: String,
    /// `target`.
    pub target: Option<Selector>,
    /// `options.allowNameChange`.
    pub allow_name_change: bool,
    /// `options.allowKindChange`.
    pub allow_kind_change: bool,
}

fn err(file: &Path, field: &str, message: impl Into<String>) -> RenderError {
    RenderError::field(file, field, message)
}

fn anchored(field: &str, file: &Path, re: &str) -> Result<Option<regex::Regex>, RenderError> {
    if re.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{re})$"))
        .map(Some)
        .map_err(|e| err(file, field, format!("invalid regex {re:?}: {e}")))
}

/// Parses a Kubernetes label selector (`a=b,c!=d,e in (f,g),!h`) and tests `labels`.
pub(crate) fn selector_matches(
    sel: &str,
    labels: Option<&Value>,
    file: &Path,
    field: &str,
) -> Result<bool, RenderError> {
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(|v| scalar_text(Some(v)));
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let set_op = |op: &str| -> Option<(String, Vec<String>)> {
            let idx = part.find(op)?;
            let key = part[..idx].trim();
            let rest = part[idx + op.len()..].trim();
            let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
            Some((
                key.to_owned(),
                inner.split(',').map(|s| s.trim().to_owned()).collect(),
            ))
        };
        let ok = if let Some((k, vals)) = set_op(" notin ") {
            get(&k).is_none_or(|v| !vals.contains(&v))
        } else if let Some((k, vals)) = set_op(" in ") {
            get(&k).is_some_and(|v| vals.contains(&v))
        } else if let Some((k, v)) = part.split_once("!=") {
            get(k.trim()) != Some(v.trim().to_owned())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            get(k.trim()) == Some(v.trim().to_owned())
        } else if let Some(k) = part.strip_prefix('!') {
            get(k.trim()).is_none()
        } else if part
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./".contains(c))
        {
            get(part).is_some()
        } else {
            return Err(err(file, field, format!("invalid selector {sel:?}")));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// kustomize's `ResMap.Select`: the indices of the objects a selector matches (by original or
/// current name and namespace, current group, version and kind, labels, annotations).
pub(crate) fn select(
    m: &ResMap,
    s: &Selector,
    file: &Path,
    field: &str,
) -> Result<Vec<usize>, RenderError> {
    let f = format!("{field}.target");
    let group = anchored(&f, file, &s.group)?;
    let version = anchored(&f, file, &s.version)?;
    let kind = anchored(&f, file, &s.kind)?;
    let name = anchored(&f, file, &s.name)?;
    let namespace = anchored(&f, file, &s.namespace)?;
    let is = |re: &Option<regex::Regex>, v: &str| re.as_ref().is_none_or(|r| r.is_match(v));
    let mut out = Vec::new();
    for (i, r) in m.resources.iter().enumerate() {
        let cur = r.cur_id();
        let org = r.org_id();
        if !is(&namespace, org.effective_namespace()) && !is(&namespace, cur.effective_namespace())
        {
            continue;
        }
        if !is(&name, &org.name) && !is(&name, &cur.name) {
            continue;
        }
        if !is(&group, &cur.group) || !is(&version, &cur.version) || !is(&kind, &cur.kind) {
            continue;
        }
        let md = r.obj.get("metadata");
        if !s.label_selector.is_empty()
            && !selector_matches(
                &s.label_selector,
                md.and_then(|m| m.get("labels")),
                file,
                &f,
            )?
        {
            continue;
        }
        if !s.annotation_selector.is_empty()
            && !selector_matches(
                &s.annotation_selector,
                md.and_then(|m| m.get("annotations")),
                file,
                &f,
            )?
        {
            continue;
        }
        out.push(i);
    }
    Ok(out)
}

/// Reads a `target` mapping.
pub(crate) fn selector_from(v: &Value, file: &Path, field: &str) -> Result<Selector, RenderError> {
    let Value::Object(m) = v else {
        return Err(err(file, field, "expected a mapping"));
    };
    let mut s = Selector::default();
    for (k, v) in m {
        let text = match v {
            Value::Null => String::new(),
            Value::Object(_) | Value::Array(_) => {
                return Err(err(file, &format!("{field}.{k}"), "expected a string"));
            }
            other => scalar_text(Some(other)),
        };
        match k.as_str() {
            "group" => s.group = text,
            "version" => s.version = text,
            "kind" => s.kind = text,
            "name" => s.name = text,
            "namespace" => s.namespace = text,
            "labelSelector" => s.label_selector = text,
            "annotationSelector" => s.annotation_selector = text,
            _ => return Err(err(file, &format!("{field}.{k}"), "unknown field")),
        }
    }
    Ok(s)
}

/// The id a strategic merge patch names (kustomize's `OrgId` of the patch).
fn patch_id(p: &Map<String, Value>) -> super::resource::ResId {
    let r = Resource::new(p.clone(), std::sync::Arc::new(Default::default()));
    r.cur_id()
}

/// kustomize's `Resource.ApplySmPatch` on the object at `i`; removes it when deleted.
fn apply_sm(
    m: &mut ResMap,
    i: usize,
    patch: &Map<String, Value>,
    args: &PatchArgs,
    file: &Path,
) -> Result<bool, RenderError> {
    let r = &mut m.resources[i];
    let (name, namespace, kind) = (
        r.name(),
        r.obj
            .get("metadata")
            .and_then(|md| md.get("namespace"))
            .cloned(),
        r.kind(),
    );
    if args.allow_name_change || args.allow_kind_change {
        r.store_previous_id();
    }
    let describe = r.describe();
    let mut obj = Value::Object(std::mem::take(&mut r.obj));
    let empty_nulls = std::mem::take(&mut r.empty_nulls);
    r.empty_nulls = smp::drop_empty_nulls(&mut obj, &empty_nulls);
    let merged = smp::merge(obj, Value::Object(patch.clone())).map_err(|e| {
        err(
            file,
            &args.field,
            format!("applying the patch to {describe}: {e}"),
        )
    })?;
    let r = &mut m.resources[i];
    match merged {
        Some(Value::Object(o)) if !o.is_empty() => {
            r.obj = o;
            if !args.allow_kind_change {
                r.obj.insert("kind".into(), Value::String(kind));
            }
            if !args.allow_name_change {
                r.set_name(name);
            }
            let md = r.metadata_mut();
            match namespace {
                Some(ns) if !scalar_text(Some(&ns)).is_empty() => {
                    md.insert("namespace".into(), ns);
                }
                _ => {
                    md.shift_remove("namespace");
                }
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Applies one strategic merge patch to the objects at `targets` (patch kind kept, the
/// object's apiVersion used), dropping objects it deletes.
fn apply_sm_to(
    m: &mut ResMap,
    targets: &[usize],
    patch: &Map<String, Value>,
    args: &PatchArgs,
    file: &Path,
    keep_gvk: bool,
) -> Result<(), RenderError> {
    let mut deleted = Vec::new();
    for &i in targets {
        let mut p = patch.clone();
        if keep_gvk {
            p.insert(
                "apiVersion".into(),
                Value::String(m.resources[i].api_version()),
            );
            stringify_metadata_maps(&mut p);
        }
        if !apply_sm(m, i, &p, args, file)? {
            deleted.push(i);
        }
    }
    if !deleted.is_empty() || args.allow_name_change || args.allow_kind_change || keep_gvk {
        let old = std::mem::take(&mut m.resources);
        // The transformer configuration and vars accumulated so far stay with the map.
        let mut fresh = ResMap::default();
        fresh.config = std::mem::take(&mut m.config);
        fresh.vars = std::mem::take(&mut m.vars);
        for (i, r) in old.into_iter().enumerate() {
            if !deleted.contains(&i) {
                fresh.append(r)?;
            }
        }
        *m = fresh;
    }
    Ok(())
}

/// kustomize's `CopyMergeMetaDataFieldsFrom` on the patch copy it applies to selected objects:
/// labels and annotations are read as `map[string]string` (a `null` becomes the string
/// `"null"`, a collection an empty string) and written back; an empty or non-map field is
/// removed.
fn stringify_metadata_maps(p: &mut Map<String, Value>) {
    let Some(Value::Object(md)) = p.get_mut("metadata") else {
        return;
    };
    for field in ["labels", "annotations"] {
        let strings: Map<String, Value> = match md.get(field) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::Null => "null".to_owned(),
                        Value::Object(_) | Value::Array(_) => String::new(),
                        other => scalar_text(Some(other)),
                    };
                    (k.clone(), Value::String(text))
                })
                .collect(),
            _ => Map::new(),
        };
        if strings.is_empty() {
            md.shift_remove(field);
        } else {
            md.insert(field.into(), Value::Object(strings));
        }
    }
}

/// Loads the text of a patch (`path` or inline `patch`).
fn patch_text(args: &PatchArgs, loader: &Loader, file: &Path) -> Result<String, RenderError> {
    let inline = args.patch.trim();
    match (inline.is_empty(), args.path.is_empty()) {
        (true, true) => Err(err(file, &args.field, "must specify one of patch and path")),
        (false, false) => Err(err(
            file,
            &args.field,
            "patch and path can't be set at the same time",
        )),
        (false, true) => Ok(inline.to_owned()),
        (true, false) => {
            let (_, bytes) = loader.read(&args.path, file).map_err(|e| {
                err(
                    file,
                    &args.field,
                    format!("failed to get the patch file from path({}): {e}", args.path),
                )
            })?;
            String::from_utf8(bytes)
                .map_err(|_| err(file, &args.field, format!("{}: not UTF-8 text", args.path)))
        }
    }
}

/// Decodes JSON 6902 operations from JSON or YAML text.
fn json_ops(text: &str) -> Result<Vec<json6902::Op>, String> {
    let value = if text.starts_with('[') {
        serde_json::from_str::<Value>(text).map_err(|e| e.to_string())?
    } else {
        yaml::parse_first_document_v2(text)
            .map_err(|e| format!("line {}: {}", e.line, e.message))?
            .unwrap_or(Value::Null)
    };
    json6902::decode(value)
}

/// Applies JSON 6902 operations to the objects a selector picks.
fn apply_json(
    m: &mut ResMap,
    ops: &[json6902::Op],
    target: &Selector,
    file: &Path,
    field: &str,
    store_previous: bool,
) -> Result<(), RenderError> {
    for i in select(m, target, file, field)? {
        let r = &mut m.resources[i];
        if store_previous {
            r.store_previous_id();
        }
        let mut v = Value::Object(std::mem::take(&mut r.obj));
        let result = json6902::apply(&mut v, ops);
        if let Value::Object(o) = v {
            r.obj = o;
        }
        result.map_err(|e| {
            err(
                file,
                field,
                format!("applying the JSON patch to {}: {e}", r.describe()),
            )
        })?;
    }
    Ok(())
}

/// kustomize's `PatchTransformer` (one `patches` entry).
pub(crate) fn apply_patch(
    m: &mut ResMap,
    args: &PatchArgs,
    loader: &Loader,
    file: &Path,
) -> Result<(), RenderError> {
    let text = patch_text(args, loader, file)?;
    let source = format!(
        "{} ({})",
        args.field,
        if args.path.is_empty() {
            "inline patch"
        } else {
            &args.path
        }
    );
    let sm = objects_from_bytes(text.as_bytes(), file);
    let json = json_ops(&text);
    let patches = match (sm, json) {
        (Ok(p), Ok(j)) if !p.is_empty() && !j.is_empty() => {
            return Err(err(
                file,
                &args.field,
                format!("illegally qualifies as both an SM and JSON patch: {source}"),
            ));
        }
        (Ok(p), _) => p,
        (Err(_), Ok(ops)) => {
            let Some(target) = &args.target else {
                return Err(err(
                    file,
                    &args.field,
                    format!("must specify a target for JSON patch {source}"),
                ));
            };
            return apply_json(m, &ops, target, file, &args.field, true);
        }
        (Err(_), Err(_)) => {
            return Err(err(
                file,
                &args.field,
                format!("unable to parse SM or JSON patch from {source}"),
            ));
        }
    };
    if let Some(target) = &args.target {
        if patches.len() > 1 {
            return Err(err(
                file,
                &args.field,
                format!(
                    "Multiple Strategic-Merge Patches in one `patches` entry is not allowed to set `patches.target` field: {source}"
                ),
            ));
        }
        let Some(patch) = patches.first() else {
            return Ok(());
        };
        let selected = select(m, target, file, &args.field)?;
        return apply_sm_to(m, &selected, patch, args, file, true);
    }
    for patch in &patches {
        let id = patch_id(patch);
        let i = find_by_any_id(m, &id).map_err(|e| {
            err(
                file,
                &args.field,
                format!("no resource matches strategic merge patch \"{id}\": {e}"),
            )
        })?;
        apply_sm_to(m, &[i], patch, args, file, false)?;
    }
    Ok(())
}

/// kustomize's `ResMap.GetById`: the one object with this id among its current and previous ids.
fn find_by_any_id(m: &ResMap, id: &super::resource::ResId) -> Result<usize, String> {
    let found: Vec<usize> = m
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.prev_ids
                .iter()
                .chain(std::iter::once(&r.cur_id()))
                .any(|x| x.key() == id.key())
        })
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!(
            "no matches for Id {id}; failed to find unique target for patch {id}"
        )),
        _ => Err(format!(
            "multiple matches for Id {id}; failed to find unique target for patch {id}"
        )),
    }
}

/// kustomize's `PatchStrategicMergeTransformer`: each entry is inline YAML or a file of
/// patches; each patch applies to the object it names.
pub(crate) fn apply_strategic_merge(
    m: &mut ResMap,
    entries: &[String],
    loader: &Loader,
    file: &Path,
) -> Result<(), RenderError> {
    let mut patches = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let field = format!("patchesStrategicMerge[{n}]");
        let loaded = match objects_from_bytes(entry.as_bytes(), file) {
            Ok(p) if entry.contains('\n') || entry.contains(':') => p,
            _ => {
                let (path, bytes) = loader.read(entry, file)?;
                objects_from_bytes(&bytes, &path)?
            }
        };
        for p in loaded {
            patches.push((field.clone(), p));
        }
    }
    for (field, patch) in patches {
        let id = patch_id(&patch);
        let i = find_by_any_id(m, &id).map_err(|e| err(file, &field, e))?;
        let args = PatchArgs {
            field,
            ..PatchArgs::default()
        };
        apply_sm_to(m, &[i], &patch, &args, file, true)?;
    }
    Ok(())
}

/// kustomize's `PatchJson6902Transformer` (one `patchesJson6902` entry).
pub(crate) fn apply_json6902(
    m: &mut ResMap,
    args: &PatchArgs,
    loader: &Loader,
    file: &Path,
) -> Result<(), RenderError> {
    let Some(target) = &args.target else {
        return Err(err(file, &args.field, "must specify a target"));
    };
    if target.name.is_empty() {
        return Err(err(
            file,
            &format!("{}.target.name", args.field),
            "must specify the target name",
        ));
    }
    let text = patch_text(args, loader, file)?;
    let ops = json_ops(&text)
        .map_err(|e| err(file, &args.field, format!("decoding the JSON patch: {e}")))?;
    if ops.is_empty() {
        return Err(err(file, &args.field, "patch appears to be empty"));
    }
    apply_json(m, &ops, target, file, &args.field, false)
}

/// Reads a list of `patches` or `patchesJson6902` entries.
pub(crate) fn entries_from(
    v: &Value,
    file: &Path,
    field: &str,
) -> Result<Vec<PatchArgs>, RenderError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(err(file, field, "expected a list")),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Value::Object(m) = item else {
            return Err(err(file, &f, "expected a mapping"));
        };
        let mut a = PatchArgs {
            field: f.clone(),
            ..PatchArgs::default()
        };
        for (k, v) in m {
            let kf = format!("{f}.{k}");
            let string = |v: &Value| match v {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                _ => Err(err(file, &kf, "expected a string")),
            };
            match k.as_str() {
                "path" => a.path = string(v)?,
                "patch" => a.patch = string(v)?,
                "target" if !v.is_null() => a.target = Some(selector_from(v, file, &kf)?),
                "target" => {}
                "options" => {
                    let Value::Object(o) = v else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(err(file, &kf, "expected a mapping"));
                    };
                    for (ok, ov) in o {
                        let b = match ov {
                            Value::Bool(b) => *b,
                            Value::Null => false,
                            _ => {
                                return Err(err(
                                    file,
                                    &format!("{kf}.{ok}"),
                                    "expected true or false",
                                ));
                            }
                        };
                        match ok.as_str() {
                            "allowNameChange" => a.allow_name_change = b,
                            "allowKindChange" => a.allow_kind_change = b,
                            _ => return Err(err(file, &format!("{kf}.{ok}"), "unknown field")),
                        }
                    }
                }
                _ => return Err(err(file, &kf, "unknown field")),
            }
        }
        out.push(a);
    }
    Ok(out)
}

/// Runs a builtin `PatchTransformer`, `PatchStrategicMergeTransformer` or
/// `PatchJson6902Transformer` configuration listed under `transformers:`; paths in it are
/// relative to the kustomization's folder.
pub(crate) fn run_builtin(
    obj: &Map<String, Value>,
    file: &Path,
    loader: &Loader,
    m: &mut ResMap,
) -> Result<(), RenderError> {
    let kind = scalar_text(obj.get("kind"));
    let name = scalar_text(obj.get("metadata").and_then(|md| md.get("name")));
    let field = format!("{kind} {name}");
    let string = |k: &str| -> Result<String, RenderError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(file, &format!("{field}: {k}"), "expected a string")),
        }
    };
    let known: &[&str] = match kind.as_str() {
        "PatchTransformer" => &["path", "patch", "target", "options"],
        "PatchStrategicMergeTransformer" => &["paths", "patches"],
        _ => &["path", "jsonOp", "target"],
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") && !known.contains(&k.as_str())
        {
            return Err(err(file, &format!("{field}: {k}"), "unknown field"));
        }
    }
    match kind.as_str() {
        "PatchTransformer" => {
            let mut entry = Map::new();
            for k in ["path", "patch", "target", "options"] {
                if let Some(v) = obj.get(k) {
                    entry.insert(k.into(), v.clone());
                }
            }
            let mut args = entries_from(&Value::Array(vec![Value::Object(entry)]), file, &field)?;
            let Some(mut a) = args.pop() else {
                return Ok(());
            };
            a.field = field;
            apply_patch(m, &a, loader, file)
        }
        "PatchStrategicMergeTransformer" => {
            let mut entries = match obj.get("paths") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(err(file, &format!("{field}: paths"), "expected a string")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(err(file, &format!("{field}: paths"), "expected a list")),
            };
            let inline = string("patches")?;
            if entries.is_empty() && inline.is_empty() {
                return Err(err(file, &field, "empty file path and empty patch content"));
            }
            if !inline.is_empty() {
                entries.push(inline);
            }
            apply_strategic_merge(m, &entries, loader, file)
        }
        _ => {
            let target = match obj.get("target") {
                None | Some(Value::Null) => None,
                Some(v) => Some(selector_from(v, file, &format!("{field}: target"))?),
            };
            let a = PatchArgs {
                field: field.clone(),
                path: string("path")?,
                patch: string("jsonOp")?,
                target,
                ..PatchArgs::default()
            };
            if !a.path.is_empty() && !a.patch.is_empty() {
                return Err(err(
                    file,
                    &a.field,
                    "must specify a file path or jsonOp, not both",
                ));
            }
            apply_json6902(m, &a, loader, file)
        }
    }
}
