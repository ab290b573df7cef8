//! Reading manifests as kustomize (kyaml) reads them.
//!
//! - A file is cut into documents as kyaml's `kio.ByteReader` does (`\r\n` becomes `\n`, a
//!   separator is a line starting with `---` that has nothing but a comment after it, and
//!   only the first document of each piece is read).
//! - Scalars are typed by yaml.v3's rules ([`super::scalar::resolve_v3`]) and then take the
//!   value kustomize's JSON round trip gives them (`1.0` -> `1`, timestamps -> RFC 3339
//!   strings), so the tree holds exactly what `kubectl kustomize` prints.
//! - Keys must be strings (a non-string key makes kustomize's `json.Marshal` fail), aliases
//!   are expanded and `<<` merge keys merged, as kyaml's `DeAnchor` and yaml.v3 do.
//! - Values under the root's `metadata.annotations` keep their source text (kustomize reads
//!   annotations back as `map[string]string` of the scalars' text before printing).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Value};

use super::scalar::{Resolved, resolve_v2, resolve_v3, resolved_to_value};

/// A YAML syntax or typing error at a 1-based line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// The 1-based line in the file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl YamlError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        YamlError {
            line,
            message: message.into(),
        }
    }
}

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// One document of a file, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    /// The document's root.
    pub value: Value,
    /// The 1-based line of the file where the document's text starts.
    pub line: usize,
    /// The mapping fields whose value is written empty (`paused:`): they read as null like
    /// `null` and `~`, but kustomize's strategic merge drops them where `null` is kept.
    pub empty_nulls: Vec<Vec<Seg>>,
}

/// Cuts a file into documents as kyaml's `splitDocuments` does: on `\n---...\n` where the
/// rest of the separator line is empty or a comment. Returns each piece with its first line.
fn split_documents(s: &str) -> Result<Vec<(String, usize)>, YamlError> {
    let mut docs = Vec::new();
    if s.is_empty() {
        return Ok(docs);
    }
    let mut prev = 0;
    let mut search = 0;
    let line_at = |pos: usize| 1 + s[..pos].bytes().filter(|&b| b == b'\n').count();
    while let Some(off) = s[search..].find("\n---") {
        let p = search + off;
        let Some(nl) = s[p + 4..].find('\n') else {
            break;
        };
        let q = p + 4 + nl;
        let rest = s[p + 4..q].trim();
        if !rest.is_empty() && !rest.starts_with('#') {
            return Err(YamlError::new(
                line_at(p + 1),
                format!("invalid document separator: {}", s[p + 1..q].trim()),
            ));
        }
        docs.push((format!("{}\n", &s[prev..p]), line_at(prev)));
        prev = q + 1;
        search = q + 1;
    }
    docs.push((s[prev..].to_owned(), line_at(prev)));
    Ok(docs)
}

/// Reads every non-empty document of a manifest file, in order.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let normalized: Cow<'_, str> = if text.contains("\r\n") {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    };
    let mut out = Vec::new();
    for (chunk, line) in split_documents(&normalized)? {
        let (value, empty_nulls) = parse_first_recording(&chunk, line, false)?;
        if let Some(value) = value
            && !value.is_null()
        {
            out.push(Document {
                value,
                line,
                empty_nulls,
            });
        }
    }
    Ok(out)
}

/// Reads the first document of a kustomization (or transformer configuration) file as
/// kustomize does, through `sigs.k8s.io/yaml`: plain scalars typed by yaml.v2's YAML 1.1
/// rules, so that `yes`, `no`, `on`, `off`, `y`, `n` are booleans.
pub(crate) fn parse_kustomization_document(text: &str) -> Result<Option<Value>, YamlError> {
    parse_first(text, 1, true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Metadata,
    Annotations,
    Items,
    Other,
}

enum Key {
    Str(String),
    Merge,
}

enum Frame {
    Map {
        map: Map<String, Value>,
        key: Option<Key>,
        merges: Vec<Value>,
        anchor: usize,
        role: Role,
        indent: usize,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
        role: Role,
        indent: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    base_line: usize,
    line: usize,
    /// Whether plain scalars are typed by yaml.v2's YAML 1.1 rules (`yes`, `on`... are
    /// booleans), as `sigs.k8s.io/yaml` reads kustomization files.
    v2: bool,
    /// The paths of mapping fields written with an empty value.
    empty_nulls: Vec<Vec<Seg>>,
}

fn is_core(tag: &Tag) -> bool {
    tag.handle == "tag:yaml.org,2002:"
}

impl Builder {
    fn err(&self, message: impl Into<String>) -> YamlError {
        YamlError::new(self.line, message)
    }

    /// The role of a node that starts now, from its parent and key.
    fn child_role(&self) -> Role {
        match self.stack.last() {
            None => Role::Root,
            Some(Frame::Map {
                key: Some(Key::Str(k)),
                role,
                ..
            }) => match (role, k.as_str()) {
                (Role::Root, "metadata") => Role::Metadata,
                (Role::Metadata, "annotations") => Role::Annotations,
                (Role::Root, "items") => Role::Items,
                _ => Role::Other,
            },
            Some(Frame::Seq {
                role: Role::Items, ..
            }) => Role::Root,
            _ => Role::Other,
        }
    }

    /// The indentation yaml.v3 (indent 2, compact sequences, as kyaml prints) gives the
    /// content of a collection starting now: a mapping in a mapping or sequence is indented,
    /// a sequence in a mapping is not.
    fn child_indent(&self, is_seq: bool) -> usize {
        match self.stack.last() {
            None => 0,
            Some(Frame::Map { indent, .. }) => {
                if is_seq {
                    *indent
                } else {
                    indent + 2
                }
            }
            Some(Frame::Seq { indent, role, .. }) => {
                if *role == Role::Items && !is_seq {
                    // A List's items are printed as documents of their own.
                    0
                } else {
                    indent + 2
                }
            }
        }
    }

    /// The indentation of a block scalar's content starting now.
    fn scalar_indent(&self) -> usize {
        match self.stack.last() {
            None => 2,
            Some(Frame::Map { indent, .. } | Frame::Seq { indent, .. }) => indent + 2,
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn in_annotations(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                role: Role::Annotations,
                ..
            })
        )
    }

    /// Adds a finished node to its parent (or makes it the root).
    fn push_value(&mut self, value: Value, anchor: usize) -> Result<(), YamlError> {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        let line = self.line;
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, key, merges, ..
            }) => match key.take() {
                None => {
                    return Err(YamlError::new(line, "mapping keys must be strings"));
                }
                Some(Key::Merge) => match value {
                    Value::Object(_) => merges.push(value),
                    Value::Array(list) => {
                        for v in list {
                            if !v.is_object() {
                                return Err(YamlError::new(
                                    line,
                                    "map merge requires map or sequence of maps as the value",
                                ));
                            }
                            merges.push(v);
                        }
                    }
                    _ => {
                        return Err(YamlError::new(
                            line,
                            "map merge requires map or sequence of maps as the value",
                        ));
                    }
                },
                Some(Key::Str(k)) => {
                    if map.contains_key(&k) {
                        return Err(YamlError::new(
                            line,
                            format!("mapping key {k:?} already defined"),
                        ));
                    }
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }

    fn set_key(&mut self, key: Key) {
        if let Some(Frame::Map { key: slot, .. }) = self.stack.last_mut() {
            *slot = Some(key);
        }
    }

    fn key_from_scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
    ) -> Result<Key, YamlError> {
        let plain = style == ScalarStyle::Plain;
        if self.in_annotations() {
            // Written back by kustomize as a plain key, and checked then (see `finalize`).
            return Ok(Key::Str(text.to_owned()));
        }
        if plain && tag.is_none() && text == "<<" {
            return Ok(Key::Merge);
        }
        match self.scalar_value(text, style, tag)? {
            Value::String(s) => Ok(Key::Str(s)),
            other => Err(self.err(format!(
                "mapping key {other} is not a string (kustomize's JSON conversion fails on it)"
            ))),
        }
    }

    fn scalar_value(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
    ) -> Result<Value, YamlError> {
        if let Some(tag) = tag {
            if !is_core(tag) {
                // Non-specific `!` and application tags: the text as a string (yaml.v3).
                return Ok(Value::String(text.to_owned()));
            }
            let suffix = tag.suffix.as_str();
            let resolved = match suffix {
                "str" => return Ok(Value::String(text.to_owned())),
                "binary" => {
                    let bytes = crate::base64::decode(text)
                        .ok_or_else(|| self.err("!!binary value contains invalid base64 data"))?;
                    return String::from_utf8(bytes)
                        .map(Value::String)
                        .map_err(|_| self.err("!!binary value is not UTF-8 text"));
                }
                _ => resolve_v3(text),
            };
            let ok = matches!(
                (suffix, &resolved),
                ("null", Resolved::Null)
                    | ("bool", Resolved::Bool(_))
                    | ("int", Resolved::Int(_) | Resolved::Uint(_))
                    | (
                        "float",
                        Resolved::Float(_) | Resolved::Int(_) | Resolved::Uint(_)
                    )
                    | ("timestamp", Resolved::Timestamp(_))
            );
            if !ok {
                return Err(self.err(format!("cannot decode `{text}` as a !!{suffix}")));
            }
            let resolved = match (suffix, resolved) {
                ("float", Resolved::Int(i)) => Resolved::Float(i as f64),
                ("float", Resolved::Uint(u)) => Resolved::Float(u as f64),
                (_, r) => r,
            };
            return resolved_to_value(resolved, text)
                .ok_or_else(|| self.err(format!("unsupported value {text} (NaN or infinity)")));
        }
        if style != ScalarStyle::Plain {
            return Ok(Value::String(text.to_owned()));
        }
        let resolved = if self.v2 {
            // yaml.v2 decodes timestamps into `interface{}` as their text.
            match resolve_v2(text) {
                Resolved::Timestamp(_) => return Ok(Value::String(text.to_owned())),
                r => r,
            }
        } else {
            resolve_v3(text)
        };
        resolved_to_value(resolved, text)
            .ok_or_else(|| self.err(format!("unsupported value {text} (NaN or infinity)")))
    }

    /// The path of the node that starts now, if every step is a plain key or an index.
    fn current_path(&self) -> Option<Vec<Seg>> {
        self.stack
            .iter()
            .map(|f| match f {
                Frame::Map {
                    key: Some(Key::Str(k)),
                    ..
                } => Some(Seg::Key(k.clone())),
                Frame::Seq { items, .. } => Some(Seg::Index(items.len())),
                _ => None,
            })
            .collect()
    }

    fn event(&mut self, ev: Event<'_>) -> Result<(), YamlError> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if self.expecting_key() {
                    let key = self.key_from_scalar(&text, style, tag.as_deref())?;
                    self.set_key(key);
                    return Ok(());
                }
                if text.is_empty()
                    && style == ScalarStyle::Plain
                    && tag.is_none()
                    && matches!(self.stack.last(), Some(Frame::Map { .. }))
                    && let Some(path) = self.current_path()
                {
                    self.empty_nulls.push(path);
                }
                let value = if self.in_annotations() {
                    // Read back by kustomize from the node itself: no round trip.
                    Value::String(text.into_owned())
                } else if style == ScalarStyle::Folded && tag.is_none() {
                    let indent = self.scalar_indent();
                    match super::folded::v3_round_trip(&text, indent) {
                        Some(changed) => Value::String(changed),
                        None => Value::String(text.into_owned()),
                    }
                } else {
                    self.scalar_value(&text, style, tag.as_deref())?
                };
                self.push_value(value, anchor)
            }
            Event::Alias(id) => {
                let value = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.err("unknown anchor"))?;
                if self.expecting_key() {
                    return match value {
                        Value::String(s) => {
                            self.set_key(Key::Str(s));
                            Ok(())
                        }
                        _ => Err(self.err("mapping keys must be strings")),
                    };
                }
                self.push_value(value, 0)
            }
            Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    return Err(self.err("mapping keys must be strings, not mappings"));
                }
                let role = self.child_role();
                let indent = self.child_indent(false);
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    merges: Vec::new(),
                    anchor,
                    role,
                    indent,
                });
                Ok(())
            }
            Event::SequenceStart(anchor, _) => {
                if self.expecting_key() {
                    return Err(self.err("mapping keys must be strings, not sequences"));
                }
                let role = self.child_role();
                let indent = self.child_indent(true);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    role,
                    indent,
                });
                Ok(())
            }
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map {
                    mut map,
                    merges,
                    anchor,
                    ..
                }) => {
                    for m in merges {
                        if let Value::Object(fields) = m {
                            for (k, v) in fields {
                                map.entry(k).or_insert(v);
                            }
                        }
                    }
                    self.push_value(Value::Object(map), anchor)
                }
                _ => Err(self.err("unbalanced mapping end")),
            },
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq { items, anchor, .. }) => {
                    self.push_value(Value::Array(items), anchor)
                }
                _ => Err(self.err("unbalanced sequence end")),
            },
            _ => Ok(()),
        }
    }
}

/// Reads the first document of a text as `sigs.k8s.io/yaml`'s `YAMLToJSON` does (yaml.v2:
/// YAML 1.1 booleans such as `yes` and `on`), as kustomize reads JSON patches written in YAML.
pub(crate) fn parse_first_document_v2(text: &str) -> Result<Option<Value>, YamlError> {
    parse_first(text, 1, true)
}

/// Reads the first document of a text as kustomize reads resources (yaml.v3 via kyaml).
pub(crate) fn parse_first_document(text: &str) -> Result<Option<Value>, YamlError> {
    parse_first(text, 1, false)
}

/// Reads the first document of `text` (whose first line is line `base_line` of the file).
fn parse_first(text: &str, base_line: usize, v2: bool) -> Result<Option<Value>, YamlError> {
    parse_first_recording(text, base_line, v2).map(|(v, _)| v)
}

/// [`parse_first`], with the paths of the mapping fields written with an empty value.
fn parse_first_recording(
    text: &str,
    base_line: usize,
    v2: bool,
) -> Result<(Option<Value>, Vec<Vec<Seg>>), YamlError> {
    let mut b = Builder {
        empty_nulls: Vec::new(),
        v2,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        base_line,
        line: base_line,
    };
    let mut in_document = false;
    // Where a block scalar would end if its last line has no line break (the file's end).
    let trimmed = text.trim_end_matches([' ', '\t']);
    let unterminated_end =
        (!trimmed.is_empty() && !trimmed.ends_with('\n')).then(|| trimmed.chars().count());
    for item in Parser::new_from_str(text) {
        let (ev, span) = item.map_err(|e| {
            YamlError::new(base_line + e.marker().line().saturating_sub(1), e.info())
        })?;
        b.line = b.base_line + span.start.line().saturating_sub(1);
        match ev {
            Event::DocumentStart(_) => in_document = true,
            Event::DocumentEnd => {
                if in_document {
                    break;
                }
            }
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing => {}
            // A block scalar whose last line ends the file without a line break has no final
            // line break (yaml.v3), where saphyr adds one.
            Event::Scalar(s, style @ (ScalarStyle::Literal | ScalarStyle::Folded), anchor, tag)
                if unterminated_end.is_some_and(|end| span.end.index() >= end)
                    && s.ends_with('\n') =>
            {
                let kept = s[..s.len() - 1].to_owned();
                b.event(Event::Scalar(Cow::Owned(kept), style, anchor, tag))?
            }
            ev => b.event(ev)?,
        }
    }
    Ok((b.root, b.empty_nulls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_scalars_at_the_end_without_a_line_break() {
        let v = parse_first_document("a: |\n  x\n  y").unwrap().unwrap();
        assert_eq!(v, json!({"a": "x\ny"}));
        let v = parse_first_document("a: |\n  x\n  y\n").unwrap().unwrap();
        assert_eq!(v, json!({"a": "x\ny\n"}));
        let v = parse_first_document("a: |\n  x\nb: c").unwrap().unwrap();
        assert_eq!(v, json!({"a": "x\n", "b": "c"}));
        let v = parse_first_document("a: >\n  x\n  y").unwrap().unwrap();
        assert_eq!(v, json!({"a": "x y"}));
    }

    #[test]
    fn fields_written_empty_are_recorded() {
        let docs = parse_documents(
            "a:
b: null
c: ~
d:
- x:
  y: ''
-
e: {f: }
",
        )
        .unwrap();
        let key = |k: &str| Seg::Key(k.into());
        assert_eq!(
            docs[0].empty_nulls,
            vec![
                vec![key("a")],
                vec![key("d"), Seg::Index(0), key("x")],
                vec![key("e"), key("f")],
            ]
        );
        assert_eq!(docs[0].value["a"], Value::Null);
        assert_eq!(docs[0].value["b"], Value::Null);
    }

    #[test]
    fn documents_are_split_as_kyaml_does() {
        let docs = parse_documents("---\n# only a comment\n---\na: 1\n--- # note\nb: '2'\n---\n\n")
            .unwrap();
        let values: Vec<_> = docs.iter().map(|d| d.value.clone()).collect();
        assert_eq!(values, vec![json!({"a": 1}), json!({"b": "2"})]);
        assert_eq!(docs[1].line, 6);
        assert!(parse_documents("a: 1\n--- x\nb: 2\n").is_err());
    }

    #[test]
    fn scalars_take_kustomize_values() {
        let v = &parse_documents(
            "a: 0755\nb: \"80\"\nc: 1.0\nd: 2024-01-01\ne: yes\nf: ~\ng: !!str 12\nh: &x {k: v}\ni: *x\nj:\n  <<: *x\n  l: m\n",
        )
        .unwrap()[0]
            .value;
        assert_eq!(
            v,
            &json!({"a": 493, "b": "80", "c": 1, "d": "2024-01-01T00:00:00Z", "e": "yes",
                    "f": null, "g": "12", "h": {"k": "v"}, "i": {"k": "v"},
                    "j": {"l": "m", "k": "v"}})
        );
    }

    #[test]
    fn annotations_keep_their_text() {
        let v = &parse_documents("metadata:\n  annotations:\n    a: 0755\n    b: null\n").unwrap()
            [0]
        .value;
        assert_eq!(
            v,
            &json!({"metadata": {"annotations": {"a": "0755", "b": "null"}}})
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_documents("a: 1\n---\nb: [1\nc: 2\n").unwrap_err();
        assert!(e.line >= 3, "{e:?}");
        assert!(parse_documents("a: 1\na: 2\n").is_err());
        assert!(parse_documents("80: x\n").is_err());
    }
}
