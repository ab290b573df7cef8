//! kustomize's `replacements` (`api/filters/replacement`, the builtin `ReplacementTransformer`):
//! copy a field of one object (the source) into fields of others (the targets).
//!
//! - The source is the one object any of whose ids (current or previous) is selected by the
//!   source's group, version, kind, name and namespace (exact values, namespaces compared as
//!   effective namespaces); none or several is an error. Its `fieldPath` (default
//!   `metadata.name`) is read with kyaml's `PathGetter` and must not be missing, null or empty.
//!   `options.delimiter` and `options.index` pick one part of a scalar.
//! - Targets are selected as sources are (exact values, any id; kustomize v5.5 does not read
//!   these as regular expressions), and by label and annotation selectors; `reject` entries
//!   remove objects (by id, and separately by their label and annotation selectors). Each `fieldPaths` entry (default `metadata.name`) is followed with kyaml's
//!   `PathMatcher`: `[name=value]` matches sequence elements whose field matches the
//!   (unanchored) regular expression `value`, `*` every element, a number one element; with
//!   `options.create` missing fields (and elements) are created. A path that matches nothing is
//!   an error.
//! - A scalar target keeps its type and takes the source's text (a string stays a string, an
//!   integer must receive an integer); a created field is typed from the text as yaml.v3 types
//!   plain scalars; other targets are replaced by the source's value. With a target delimiter
//!   the text replaces one part of the target's text (a negative index prepends, an index past
//!   the end appends).

use std::path::Path;

use serde_json::{Map, Value};

use super::super::load::Loader;
use super::super::patch::{Selector, selector_from, selector_matches};
use super::super::resource::{ResId, ResMap, Resource, scalar_text};
use crate::error::RenderError;
use crate::yaml;
use crate::yaml::scalar::{Resolved, resolve_v3, resolved_to_value};

/// kustomize's `FieldOptions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldOptions {
    /// `delimiter`.
    pub delimiter: String,
    /// `index`.
    pub index: i64,
    /// `create`.
    pub create: bool,
}

impl FieldOptions {
    fn describe(&self) -> String {
        if self.delimiter.is_empty() && !self.create {
            return String::new();
        }
        format!("{}({}), create={}", self.delimiter, self.index, self.create)
    }
}

/// kustomize's `SourceSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Source {
    /// `group`.
    pub group: String,
    /// `version`.
    pub version: String,
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
    /// `fieldPath`.
    pub field_path: String,
    /// `options`.
    pub options: Option<FieldOptions>,
}

fn or(s: &str, d: &'static str) -> String {
    if s.is_empty() {
        d.to_owned()
    } else {
        s.to_owned()
    }
}

impl Source {
    fn as_selector(&self) -> Selector {
        Selector {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            ..Selector::default()
        }
    }

    /// kustomize's `ResId.String()` of the selector.
    fn id_string(&self) -> String {
        format!(
            "{}.{}.{}/{}.{}",
            or(&self.kind, "[noKind]"),
            or(&self.version, "[noVer]"),
            or(&self.group, "[noGrp]"),
            or(&self.name, "[noName]"),
            or(&self.namespace, "[noNs]")
        )
    }

    /// kustomize's `SourceSelector.String()`.
    fn describe(&self) -> String {
        let mut parts = vec![self.id_string()];
        if !self.field_path.is_empty() {
            parts.push(self.field_path.clone());
        }
        if let Some(o) = &self.options {
            let d = o.describe();
            if !d.is_empty() {
                parts.push(d);
            }
        }
        parts.join(":")
    }

    /// kustomize's `ResId.IsSelectedBy`.
    fn selects(&self, id: &ResId) -> bool {
        is_selected_by(id, &self.as_selector())
    }
}

/// kustomize's `TargetSelector`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Target {
    /// `select`.
    pub select: Option<Selector>,
    /// `reject`.
    pub reject: Vec<Selector>,
    /// `fieldPaths`.
    pub field_paths: Vec<String>,
    /// `options`.
    pub options: Option<FieldOptions>,
}

/// kustomize's `Replacement`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Replacement {
    /// The field of the entry, for errors (`replacements[0]`).
    pub field: String,
    /// `source`.
    pub source: Option<Source>,
    /// `targets` (`None` when absent).
    pub targets: Option<Vec<Target>>,
}

/// One entry of `replacements`: inline, or a file of one replacement or a list of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplacementEntry {
    /// An inline replacement.
    Inline(Replacement),
    /// `path:` a file.
    Path {
        /// The field of the entry, for errors.
        field: String,
        /// The path.
        path: String,
    },
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

fn mapping<'v>(
    file: &Path,
    field: &str,
    v: &'v Value,
) -> Result<Option<&'v Map<String, Value>>, RenderError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        _ => Err(err(file, field, "expected a mapping")),
    }
}

fn options_from(file: &Path, field: &str, v: &Value) -> Result<Option<FieldOptions>, RenderError> {
    let Some(m) = mapping(file, field, v)? else {
        return Ok(None);
    };
    let mut o = FieldOptions::default();
    for (k, v) in m {
        let f = format!("{field}.{k}");
        match k.to_lowercase().as_str() {
            "delimiter" => o.delimiter = text(file, &f, v)?,
            "index" => {
                o.index = super::super::load::int64_value(v).map_err(|e| err(file, &f, e))?;
            }
            "encoding" => {
                text(file, &f, v)?;
            }
            "create" => {
                o.create = match v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    _ => return Err(err(file, &f, "expected true or false")),
                }
            }
            _ => return Err(err(file, &f, "unknown field")),
        }
    }
    Ok(Some(o))
}

fn strings(file: &Path, field: &str, v: &Value) -> Result<Vec<String>, RenderError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| text(file, &format!("{field}[{i}]"), x))
            .collect(),
        _ => Err(err(file, field, "expected a list of strings")),
    }
}

fn source_from(file: &Path, field: &str, v: &Value) -> Result<Option<Source>, RenderError> {
    let Some(m) = mapping(file, field, v)? else {
        return Ok(None);
    };
    let mut s = Source::default();
    for (k, v) in m {
        let f = format!("{field}.{k}");
        match k.to_lowercase().as_str() {
            "group" => s.group = text(file, &f, v)?,
            "version" => s.version = text(file, &f, v)?,
            "kind" => s.kind = text(file, &f, v)?,
            "name" => s.name = text(file, &f, v)?,
            "namespace" => s.namespace = text(file, &f, v)?,
            "fieldpath" => s.field_path = text(file, &f, v)?,
            "options" => s.options = options_from(file, &f, v)?,
            _ => return Err(err(file, &f, "unknown field")),
        }
    }
    Ok(Some(s))
}

fn targets_from(file: &Path, field: &str, v: &Value) -> Result<Option<Vec<Target>>, RenderError> {
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(err(file, field, "expected a list")),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let tf = format!("{field}[{i}]");
        let mut t = Target::default();
        if let Some(m) = mapping(file, &tf, item)? {
            for (k, v) in m {
                let f = format!("{tf}.{k}");
                match k.to_lowercase().as_str() {
                    "select" if v.is_null() => {}
                    "select" => t.select = Some(selector_from(v, file, &f)?),
                    "reject" => match v {
                        Value::Null => {}
                        Value::Array(items) => {
                            for (j, r) in items.iter().enumerate() {
                                if !r.is_null() {
                                    t.reject.push(selector_from(r, file, &format!("{f}[{j}]"))?);
                                }
                            }
                        }
                        _ => return Err(err(file, &f, "expected a list")),
                    },
                    "fieldpaths" => t.field_paths = strings(file, &f, v)?,
                    "options" => t.options = options_from(file, &f, v)?,
                    _ => return Err(err(file, &f, "unknown field")),
                }
            }
        }
        out.push(t);
    }
    Ok(Some(out))
}

fn replacement_from(file: &Path, field: &str, v: &Value) -> Result<Replacement, RenderError> {
    let mut r = Replacement {
        field: field.to_owned(),
        ..Replacement::default()
    };
    if let Some(m) = mapping(file, field, v)? {
        for (k, v) in m {
            let f = format!("{field}.{k}");
            match k.to_lowercase().as_str() {
                "source" => r.source = source_from(file, &f, v)?,
                "targets" => r.targets = targets_from(file, &f, v)?,
                _ => return Err(err(file, &f, "unknown field")),
            }
        }
    }
    Ok(r)
}

/// Reads a `replacements` list (of a kustomization or a `ReplacementTransformer`).
pub(crate) fn entries_from(
    v: &Value,
    file: &Path,
    field: &str,
) -> Result<Vec<ReplacementEntry>, RenderError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(err(file, field, "expected a list")),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let mut inline = Map::new();
        let mut path = String::new();
        if let Some(m) = mapping(file, &f, item)? {
            for (k, v) in m {
                if k.eq_ignore_ascii_case("path") {
                    path = text(file, &format!("{f}.path"), v)?;
                } else {
                    inline.insert(k.clone(), v.clone());
                }
            }
        }
        let r = replacement_from(file, &f, &Value::Object(inline))?;
        if path.is_empty() {
            out.push(ReplacementEntry::Inline(r));
        } else if r.source.is_some() || r.targets.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(err(
                file,
                &f,
                "cannot specify both path and inline replacement",
            ));
        } else {
            out.push(ReplacementEntry::Path { field: f, path });
        }
    }
    Ok(out)
}

/// Loads the files of `path:` entries: each holds one replacement or a list of them.
pub(crate) fn resolve_entries(
    entries: &[ReplacementEntry],
    loader: &Loader,
    file: &Path,
) -> Result<Vec<Replacement>, RenderError> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            ReplacementEntry::Inline(r) => out.push(r.clone()),
            ReplacementEntry::Path { field, path } => {
                let (real, bytes) = loader.read(path, file)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| err(file, field, "the file is not UTF-8 text"))?;
                let v = yaml::parse_kustomization_document(&text)
                    .map_err(|e| RenderError::yaml(&real, e))?
                    .unwrap_or(Value::Null);
                match &v {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            out.push(replacement_from(&real, &format!("[{i}]"), item)?);
                        }
                    }
                    Value::Object(_) => out.push(replacement_from(&real, "(root)", &v)?),
                    _ => {
                        return Err(err(
                            file,
                            field,
                            "unsupported replacement type encountered within replacement path",
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Runs the replacements on the objects, in order.
pub(crate) fn apply(
    m: &mut ResMap,
    replacements: &[Replacement],
    file: &Path,
) -> Result<(), RenderError> {
    for r in replacements {
        let fail = |message: String| err(file, &r.field, message);
        let (Some(source), Some(targets)) = (&r.source, &r.targets) else {
            return Err(fail(
                "replacements must specify a source and at least one target".into(),
            ));
        };
        let value = source_value(m, source).map_err(&fail)?;
        for (ti, t) in targets.iter().enumerate() {
            apply_target(m, &value, t)
                .map_err(|e| err(file, &format!("{}.targets[{ti}]", r.field), e))?;
        }
    }
    Ok(())
}

/// The ids kustomize's `MakeResIds` gives an object: its current id, then its previous ids.
fn ids(r: &Resource) -> Vec<ResId> {
    let mut out = vec![r.cur_id()];
    out.extend(r.prev_ids.iter().cloned());
    out
}

/// The value to copy: the node found and its text.
struct SourceValue {
    value: Value,
    text: String,
}

fn source_value(m: &ResMap, s: &Source) -> Result<SourceValue, String> {
    let mut found: Option<&Resource> = None;
    for r in &m.resources {
        if ids(r).iter().any(|id| s.selects(id)) {
            if found.is_some() {
                return Err(format!("multiple matches for selector {}", s.describe()));
            }
            found = Some(r);
        }
    }
    let Some(r) = found else {
        return Err(format!("nothing selected by {}", s.describe()));
    };
    let fp = if s.field_path.is_empty() {
        "metadata.name"
    } else {
        &s.field_path
    };
    let root = Value::Object(r.obj.clone());
    let node = lookup(&root, &smarter_split(fp))
        .map_err(|e| format!("error looking up replacement source: {e}"))?;
    let node = match node {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) if o.is_empty() => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(v) => Some(v),
    };
    let Some(node) = node else {
        return Err(format!(
            "fieldPath `{fp}` is missing for replacement source {}",
            s.id_string()
        ));
    };
    let mut out = SourceValue {
        text: node_text(node),
        value: node.clone(),
    };
    if let Some(o) = &s.options
        && !o.delimiter.is_empty()
    {
        if !is_scalar(node) {
            return Err("delimiter option can only be used with scalar nodes".into());
        }
        let parts: Vec<&str> = out.text.split(o.delimiter.as_str()).collect();
        let Some(part) = usize::try_from(o.index).ok().and_then(|i| parts.get(i)) else {
            return Err(format!(
                "options.index {} is out of bounds for value {}",
                o.index, out.text
            ));
        };
        let part = (*part).to_owned();
        out.value = match node {
            Value::String(_) => Value::String(part.clone()),
            _ => resolved_to_value(resolve_v3(&part), &part).unwrap_or(Value::Null),
        };
        out.text = part;
    }
    Ok(out)
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Object(_) | Value::Array(_))
}

/// The `Value` of a yaml node: the text of scalars, empty for others.
fn node_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        other => scalar_text(Some(other)),
    }
}

/// kyaml's `PathSplitter`: splits on `delim`, a trailing `\` escaping it.
fn path_split(path: &str, delim: char) -> Vec<String> {
    let mut ps: Vec<&str> = path.split(delim).collect();
    if ps.len() > 1 && ps[0].is_empty() {
        ps.remove(0);
    }
    let mut out: Vec<String> = Vec::new();
    for p in ps {
        match out.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push(delim);
                last.push_str(p);
            }
            _ => out.push(p.to_owned()),
        }
    }
    out
}

/// kyaml's `SmarterPathSplitter`: like [`path_split`] on `.`, keeping `[a.b=c]` and `[a.b]`
/// together (the latter without brackets: a field name with dots).
pub(crate) fn smarter_split(path: &str) -> Vec<String> {
    let split = path_split(path, '.');
    let mut out = Vec::new();
    let mut i = 0;
    while i < split.len() {
        let elem = &split[i];
        if elem.starts_with('[') && !elem.ends_with(']') {
            let mut bracketed = vec![elem.clone()];
            while i < split.len() - 1 {
                i += 1;
                bracketed.push(split[i].clone());
                if split[i].ends_with(']') {
                    break;
                }
            }
            let joined = bracketed.join(".");
            if joined.contains('=') {
                out.push(joined);
            } else {
                out.push(joined.trim_matches(|c| c == '[' || c == ']').to_owned());
            }
        } else {
            out.push(elem.clone());
        }
        i += 1;
    }
    out
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn wrong_kind(expected: &str, v: &Value) -> String {
    format!(
        "wrong node kind: expected {expected} but got {}",
        kind_name(v)
    )
}

fn is_list_index(p: &str) -> bool {
    p.starts_with('[') && p.ends_with(']')
}

fn split_index_name_value(p: &str) -> Result<(&str, &str), String> {
    let elem = p.strip_suffix(']').unwrap_or(p);
    let elem = elem.strip_prefix('[').unwrap_or(elem);
    elem.split_once('=').ok_or_else(|| {
        "list path element must contain fieldName=fieldValue for element to match".to_owned()
    })
}

fn index_number(p: &str) -> Option<usize> {
    // Go's strconv.Atoi accepts a sign.
    let n: i64 = p.strip_prefix('+').unwrap_or(p).parse().ok()?;
    if p.starts_with("+-") {
        return None;
    }
    usize::try_from(n).ok()
}

/// kyaml's `PathGetter` without creation (`yaml.Lookup`): `None` when a field is missing.
fn lookup<'v>(root: &'v Value, path: &[String]) -> Result<Option<&'v Value>, String> {
    let mut cur = root;
    for part in path.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if cur.is_null() {
            return Ok(None);
        }
        let next = if let Ok(i) = part.parse::<i64>() {
            if i < 0 {
                return Err(format!("array index {i} cannot be negative"));
            }
            match cur {
                Value::Array(items) => usize::try_from(i).ok().and_then(|i| items.get(i)),
                other => return Err(wrong_kind("SequenceNode", other)),
            }
        } else if part == "-" {
            match cur {
                Value::Array(items) => items.last(),
                other => return Err(wrong_kind("SequenceNode", other)),
            }
        } else if part == "*" {
            return Err("wildcard is not supported in PathGetter".into());
        } else if is_list_index(part) {
            let (name, value) = split_index_name_value(part)?;
            let Value::Array(items) = cur else {
                return Err(wrong_kind("SequenceNode", cur));
            };
            items.iter().find(|item| {
                if name.is_empty() {
                    is_scalar(item) && scalar_text(Some(item)) == value
                } else {
                    item.get(name)
                        .is_some_and(|f| is_scalar(f) && scalar_text(Some(f)) == value)
                }
            })
        } else {
            match cur {
                Value::Object(m) => m.get(part),
                other => return Err(wrong_kind("MappingNode", other)),
            }
        };
        match next {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// What a `PathMatcher` creates for a missing node, given the next part of the path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Make {
    Scalar,
    Mapping,
    Sequence,
}

fn part_kind(next: Option<&String>, leaf: Make) -> Make {
    match next {
        Some(p) if is_list_index(p) || index_number(p).is_some() => Make::Sequence,
        None => leaf,
        Some(_) => Make::Mapping,
    }
}

fn new_node(k: Make) -> Value {
    match k {
        Make::Scalar => Value::Null,
        Make::Mapping => Value::Object(Map::new()),
        Make::Sequence => Value::Array(Vec::new()),
    }
}

/// A node matched by a `PathMatcher`, and whether it was just created.
type Visit<'a> = dyn FnMut(&mut Value, bool) -> Result<(), String> + 'a;

/// kyaml's `PathMatcher`: calls `visit` on each node `path` matches in `node`; returns how
/// many. `create` is the kind of the leaf to create, when creating.
fn match_path(
    node: &mut Value,
    path: &[String],
    create: Option<Make>,
    created: bool,
    visit: &mut Visit<'_>,
) -> Result<usize, String> {
    let Some((head, rest)) = path.split_first() else {
        visit(node, created)?;
        return Ok(1);
    };
    if let Some(idx) = index_number(head) {
        let items = match node {
            Value::Null => &mut Vec::new(),
            Value::Array(items) => items,
            other => return Err(wrong_kind("SequenceNode", other)),
        };
        let mut fresh = false;
        if let Some(leaf) = create
            && items.len() == idx
        {
            items.push(new_node(part_kind(rest.first(), leaf)));
            fresh = true;
        }
        if items.len() < idx + 1 {
            return Err(format!(
                "index {idx} specified but only {} elements found",
                items.len()
            ));
        }
        return match_path(&mut items[idx], rest, create, fresh, visit);
    }
    if is_list_index(head) {
        let (field, pattern) = split_index_name_value(head)?;
        let re = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
        if node.is_null() && create.is_some() {
            *node = Value::Array(Vec::new());
        }
        let items = match node {
            Value::Null => return Ok(0),
            Value::Array(items) => items,
            other => return Err(wrong_kind("SequenceNode", other)),
        };
        let matches = |item: &Value| -> bool {
            if field.is_empty() {
                is_scalar(item) && re.is_match(node_text(item).trim())
            } else {
                item.get(field)
                    .is_some_and(|f| !f.is_null() && re.is_match(yaml_text(f).trim()))
            }
        };
        let any = items.iter().any(&matches);
        if !any {
            if create.is_none() {
                return Ok(0);
            }
            let v = resolved_to_value(resolve_v3(pattern), pattern)
                .unwrap_or_else(|| Value::String(pattern.to_owned()));
            if field.is_empty() {
                items.push(v);
            } else {
                let mut m = Map::new();
                m.insert(field.to_owned(), v);
                items.push(Value::Object(m));
            }
        }
        let mut n = 0;
        let last = items.len() - 1;
        for (i, item) in items.iter_mut().enumerate() {
            if matches(item) {
                n += if field.is_empty() {
                    visit(item, !any && i == last).map(|_| 1)?
                } else {
                    match_path(item, rest, create, false, visit)?
                };
            }
        }
        return Ok(n);
    }
    if head == "*" {
        let items = match node {
            Value::Null => return Ok(0),
            Value::Array(items) => items,
            other => return Err(wrong_kind("SequenceNode", other)),
        };
        let mut n = 0;
        for item in items.iter_mut() {
            n += match_path(item, rest, create, false, visit)?;
        }
        return Ok(n);
    }
    if node.is_null() {
        if create.is_none() {
            return Ok(0);
        }
        *node = Value::Object(Map::new());
    }
    let Value::Object(map) = node else {
        return Err(wrong_kind("MappingNode", node));
    };
    let mut fresh = false;
    if !map.contains_key(head.as_str()) {
        let Some(leaf) = create else {
            return Ok(0);
        };
        map.insert(head.clone(), new_node(part_kind(rest.first(), leaf)));
        fresh = true;
    }
    let field = map.get_mut(head.as_str()).expect("the field is present");
    match_path(field, rest, create, fresh, visit)
}

/// The text yaml.v3 prints for a scalar (what kyaml matches `[name=value]` against).
fn yaml_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Object(_) | Value::Array(_) => String::new(),
        other => scalar_text(Some(other)),
    }
}

/// kustomize's `ResId.IsSelectedBy` with the id part of a selector: exact values, namespaces
/// compared as effective namespaces.
fn is_selected_by(id: &ResId, s: &Selector) -> bool {
    let ns = if s.namespace.is_empty() || s.namespace == "default" {
        "default"
    } else {
        &s.namespace
    };
    (s.name.is_empty() || s.name == id.name)
        && (s.namespace.is_empty() || ns == id.effective_namespace())
        && id.selected_by(&s.group, &s.version, &s.kind)
}

fn apply_target(m: &mut ResMap, value: &SourceValue, t: &Target) -> Result<(), String> {
    let Some(select) = &t.select else {
        return Err("target must specify resources to select".into());
    };
    let default_paths = ["metadata.name".to_owned()];
    let paths: &[String] = if t.field_paths.is_empty() {
        &default_paths
    } else {
        &t.field_paths
    };
    let opts = t.options.clone().unwrap_or_default();
    for r in &mut m.resources {
        if !meta_selected(r, select)? {
            continue;
        }
        let mut rejected = false;
        for rj in &t.reject {
            if (!rj.label_selector.is_empty() || !rj.annotation_selector.is_empty())
                && meta_selected(r, rj)?
            {
                rejected = true;
            }
        }
        if rejected {
            continue;
        }
        let ids = ids(r);
        let id_empty = |s: &Selector| {
            s.group.is_empty()
                && s.version.is_empty()
                && s.kind.is_empty()
                && s.name.is_empty()
                && s.namespace.is_empty()
        };
        let reject_id = t
            .reject
            .iter()
            .any(|rj| !id_empty(rj) && ids.iter().any(|id| is_selected_by(id, rj)));
        if reject_id || !ids.iter().any(|id| is_selected_by(id, select)) {
            continue;
        }
        let describe = r.describe();
        for fp in paths {
            copy_to(r, value, fp, &opts).map_err(|e| format!("object {describe}: {e}"))?;
        }
    }
    Ok(())
}

fn meta_selected(r: &Resource, s: &Selector) -> Result<bool, String> {
    let md = r.obj.get("metadata");
    let file = Path::new("");
    for (sel, key) in [
        (&s.label_selector, "labels"),
        (&s.annotation_selector, "annotations"),
    ] {
        if !sel.is_empty()
            && !selector_matches(sel, md.and_then(|m| m.get(key)), file, "")
                .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn copy_to(
    r: &mut Resource,
    value: &SourceValue,
    fp: &str,
    opts: &FieldOptions,
) -> Result<(), String> {
    let create = opts.create.then_some(match &value.value {
        Value::Object(_) => Make::Mapping,
        Value::Array(_) => Make::Sequence,
        _ => Make::Scalar,
    });
    let retrieval = if create.is_some() {
        format!("unable to find or create field {fp:?} in replacement target")
    } else {
        format!("unable to find field {fp:?} in replacement target")
    };
    let path = smarter_split(fp);
    let mut root = Value::Object(std::mem::take(&mut r.obj));
    let result = match_path(&mut root, &path, create, false, &mut |node, created| {
        set_field(node, created, value, opts)
    });
    if let Value::Object(o) = root {
        r.obj = o;
    }
    match result {
        Ok(0) => Err(retrieval),
        Ok(_) => Ok(()),
        Err(e) if e.starts_with("wrong node kind") || e.starts_with("index ") => {
            Err(format!("{retrieval}: {e}"))
        }
        Err(e) => Err(e),
    }
}

/// kustomize's `setFieldValue` on one target node.
fn set_field(
    node: &mut Value,
    created: bool,
    value: &SourceValue,
    opts: &FieldOptions,
) -> Result<(), String> {
    // Nodes kustomize creates have no tag: the text is typed again when printed.
    let created_scalar = created && is_scalar(node);
    let mut text = value.text.clone();
    if !opts.delimiter.is_empty() {
        if !is_scalar(node) {
            return Err("delimiter option can only be used with scalar nodes".into());
        }
        let cur = scalar_text(Some(node));
        let mut parts: Vec<String> = cur
            .split(opts.delimiter.as_str())
            .map(str::to_owned)
            .collect();
        match usize::try_from(opts.index) {
            Err(_) => parts.insert(0, text),
            Ok(i) if i >= parts.len() => parts.push(text),
            Ok(i) => parts[i] = text,
        }
        text = parts.join(&opts.delimiter);
    }
    if created_scalar {
        *node = resolved_to_value(resolve_v3(&text), &text).unwrap_or(Value::String(text));
        return Ok(());
    }
    let typed = |want: &str, text: &str| -> Result<Value, String> {
        let r = resolve_v3(text);
        let v = resolved_to_value(r.clone(), text);
        match v {
            Some(v) if ok_kind(&r, want) => Ok(v),
            _ => Err(format!(
                "yaml: cannot decode {} `{text}` as a {want}",
                tag_of(&r)
            )),
        }
    };
    match node {
        Value::String(_) => *node = Value::String(text),
        Value::Number(n) => {
            let want = if n.is_f64() { "!!float" } else { "!!int" };
            *node = typed(want, &text)?;
        }
        Value::Bool(_) => *node = typed("!!bool", &text)?,
        Value::Null => *node = typed("!!null", &text)?,
        _ => *node = value.value.clone(),
    }
    Ok(())
}

fn tag_of(r: &Resolved) -> &'static str {
    match r {
        Resolved::Null => "!!null",
        Resolved::Bool(_) => "!!bool",
        Resolved::Int(_) | Resolved::Uint(_) => "!!int",
        Resolved::Float(_) => "!!float",
        Resolved::Timestamp(_) => "!!timestamp",
        Resolved::Str => "!!str",
    }
}

fn ok_kind(r: &Resolved, want: &str) -> bool {
    match want {
        "!!int" => matches!(r, Resolved::Int(_) | Resolved::Uint(_)),
        "!!float" => matches!(r, Resolved::Int(_) | Resolved::Uint(_) | Resolved::Float(_)),
        "!!bool" => matches!(r, Resolved::Bool(_)),
        "!!null" => matches!(r, Resolved::Null),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_as_kyaml() {
        assert_eq!(
            smarter_split("spec.containers.[name=app].image"),
            ["spec", "containers", "[name=app]", "image"]
        );
        assert_eq!(
            smarter_split("metadata.annotations.[a.b/c]"),
            ["metadata", "annotations", "a.b/c"]
        );
        assert_eq!(smarter_split("a.[x.y=1.2].b"), ["a", "[x.y=1.2]", "b"]);
        assert_eq!(smarter_split(r"a\.b.c"), ["a.b", "c"]);
    }
}
