//! Strategic merge patches as kustomize v5.5 applies them: kyaml's `merge2` walker (with lists
//! growing towards the front, `MergeOptionsListPrepend`), not apimachinery's implementation.
//!
//! - Maps merge recursively (fields in byte order of their names); a `null` in the patch
//!   removes the field; a `null` already in the object is kept when written `null` or `~`,
//!   dropped when written empty (`paused:`; see [`drop_empty_nulls`]).
//! - `$patch: delete | replace | merge` on a map; in a list, an element holding only
//!   `$patch` applies to the whole list. An element `{name: x, $patch: delete}` removes that
//!   element; `$patch: replace` on an element leaves the original element (kyaml quirk).
//! - Lists are merged by key only where the built-in schema says `patchStrategy: merge`
//!   ([`super::schema`]); other lists, and every list of kinds not in the schema (custom
//!   resources), are replaced. Merged lists put the patch's elements first, then the rest of
//!   the original ones, in their order; lists with several keys (`containerPort`,
//!   `protocol`) follow kyaml's matching rules, with their quirks.
//! - Primitive lists with strategy merge (`finalizers`) are the union, patch values first.
//! - kyaml implements none of `$setElementOrder/…`, `$retainKeys`, `$deleteFromPrimitiveList/…`:
//!   like kustomize, such keys are merged in as ordinary fields.

use serde_json::{Map, Value};

use super::schema::{self, Node};
use crate::kustomize::resource::scalar_text;
use crate::yaml::Seg;

/// The directive key.
const PATCH: &str = "$patch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

/// Removes from `object` the fields written with an empty value (`paused:`, at `paths`) that
/// kyaml's merge walker visits: it drops such a null where it keeps one written `null` or `~`
/// (`merge2.VisitMap` keeps a null only when it has text). The walker visits every map and
/// the elements of lists merged by key, not other lists. Returns the paths left in place.
pub(crate) fn drop_empty_nulls(object: &mut Value, paths: &[Vec<Seg>]) -> Vec<Vec<Seg>> {
    let top = schema_of([&Some(object.clone()), &None]);
    let mut kept = Vec::new();
    'paths: for path in paths {
        let Some((Seg::Key(last), parents)) = path.split_last() else {
            kept.push(path.clone());
            continue;
        };
        let mut cur = &mut *object;
        let mut node = top;
        for seg in parents {
            match (seg, cur) {
                (Seg::Key(k), Value::Object(m)) => {
                    node = node.and_then(|n| n.field(k));
                    match m.get_mut(k) {
                        Some(v) => cur = v,
                        None => continue 'paths,
                    }
                }
                (Seg::Index(i), Value::Array(items)) => {
                    match node {
                        Some(n) if n.assoc && !n.keys.is_empty() => {}
                        _ => {
                            kept.push(path.clone());
                            continue 'paths;
                        }
                    }
                    node = node.and_then(Node::elements);
                    match items.get_mut(*i) {
                        Some(v) => cur = v,
                        None => continue 'paths,
                    }
                }
                _ => continue 'paths,
            }
        }
        // Annotation values are kept as their text: an empty one is the empty string.
        if let Value::Object(m) = cur
            && m.get(last)
                .is_some_and(|v| v.is_null() || v.as_str() == Some(""))
        {
            m.shift_remove(last);
        }
    }
    kept
}

/// Applies the strategic merge patch `patch` to `object`. `None` means the patch deleted the
/// object (`$patch: delete` at the top).
pub(crate) fn merge(object: Value, patch: Value) -> Result<Option<Value>, String> {
    let mut path = Vec::new();
    walk(Some(object), Some(patch), None, &mut path)
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "(root)".into()
    } else {
        path.join(".")
    }
}

/// The text of a scalar as a YAML node holds it (`Node.Value`): empty for collections.
fn text(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) | Value::Null => String::new(),
        other => scalar_text(Some(other)),
    }
}

fn present(v: &Option<Value>) -> Option<&Value> {
    v.as_ref().filter(|v| !v.is_null())
}

/// kyaml's `Walker.GetSchema` without a parent schema: the type of a resource-like map.
fn schema_of(sources: [&Option<Value>; 2]) -> Option<&'static Node> {
    for s in sources {
        if let Some(Value::Object(m)) = s {
            let kind = match m.get("kind") {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            let api = match m.get("apiVersion") {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            if kind.is_empty() || api.is_empty() {
                continue;
            }
            if let Some(n) = schema::for_type(api, kind) {
                return Some(n);
            }
        }
    }
    None
}

fn walk(
    dest: Option<Value>,
    patch: Option<Value>,
    schema: Option<&'static Node>,
    path: &mut Vec<String>,
) -> Result<Option<Value>, String> {
    let schema = schema.or_else(|| schema_of([&dest, &patch]));
    let first = present(&dest).or(present(&patch)).cloned();
    let check = |want: fn(&Value) -> bool, name: &str| -> Result<(), String> {
        for s in [&dest, &patch] {
            if let Some(v) = present(s)
                && !want(v)
            {
                return Err(format!(
                    "{}: wrong node kind: expected {name} but got {}",
                    at(path),
                    describe(v)
                ));
            }
        }
        Ok(())
    };
    match first {
        None | Some(Value::Object(_)) => {
            check(Value::is_object, "MappingNode")?;
            walk_map(dest, patch, schema, path)
        }
        Some(Value::Array(_)) => {
            check(Value::is_array, "SequenceNode")?;
            match schema {
                Some(s) if s.assoc => walk_assoc(dest, patch, s, path),
                // A non-associative list: the patch's value wins.
                _ => Ok(match patch {
                    Some(Value::Null) => None,
                    Some(p) => Some(p),
                    None => dest,
                }),
            }
        }
        Some(_) => {
            check(|v| !v.is_object() && !v.is_array(), "ScalarNode")?;
            Ok(match patch {
                Some(Value::Null) => None,
                Some(p) => Some(p),
                None => dest,
            })
        }
    }
}

/// Reads and removes a map's `$patch` directive.
fn map_directive(m: &mut Map<String, Value>) -> Result<Directive, String> {
    let Some(v) = m.get(PATCH) else {
        return Ok(Directive::Merge);
    };
    let d = match text(v).as_str() {
        "delete" => Directive::Delete,
        "replace" => Directive::Replace,
        "merge" => Directive::Merge,
        other => return Err(format!("unknown patch strategy '{other}'")),
    };
    m.shift_remove(PATCH);
    Ok(d)
}

/// Reads and removes a list's `$patch` directive (an element holding only `$patch`).
fn list_directive(items: &mut Vec<Value>) -> Result<Directive, String> {
    let found = items.iter().find_map(|e| match e {
        Value::Object(m) if m.contains_key(PATCH) => Some(m),
        _ => None,
    });
    let Some(m) = found else {
        return Ok(Directive::Merge);
    };
    if m.len() > 1 {
        return Ok(Directive::Merge);
    }
    let value = m.get(PATCH).map(text).unwrap_or_default();
    let d = match value.as_str() {
        "delete" => Directive::Delete,
        "replace" => Directive::Replace,
        "merge" => Directive::Merge,
        other => return Err(format!("unknown patch strategy '{other}'")),
    };
    element_setter(items, None, &[PATCH.into()], &[value])?;
    Ok(d)
}

fn walk_map(
    dest: Option<Value>,
    patch: Option<Value>,
    schema: Option<&'static Node>,
    path: &mut Vec<String>,
) -> Result<Option<Value>, String> {
    let (mut d, p) = match dest {
        None | Some(Value::Null) => {
            let dest_is_null = dest.is_some();
            match patch {
                Some(Value::Object(mut pm)) => {
                    if map_directive(&mut pm) == Ok(Directive::Delete) {
                        return Ok(None);
                    }
                    (pm.clone(), Some(pm))
                }
                None if dest_is_null => return Ok(Some(Value::Null)),
                _ => return Ok(None),
            }
        }
        Some(Value::Object(dm)) => match patch {
            Some(Value::Null) => return Ok(None),
            None => (dm, None),
            Some(Value::Object(mut pm)) => match map_directive(&mut pm)? {
                Directive::Delete => return Ok(None),
                Directive::Replace => (pm.clone(), Some(pm)),
                Directive::Merge => (dm, Some(pm)),
            },
            Some(other) => return Err(format!("{}: cannot merge {other} into a map", at(path))),
        },
        Some(other) => return Err(format!("{}: cannot merge into {other}", at(path))),
    };
    let mut keys: Vec<String> = d.keys().cloned().collect();
    if let Some(p) = &p {
        keys.extend(p.keys().cloned());
    }
    keys.sort();
    keys.dedup();
    for key in keys {
        let child = schema.and_then(|s| s.field(&key));
        let dv = d.get(&key).cloned();
        let pv = p.as_ref().and_then(|p| p.get(&key)).cloned();
        path.push(key.clone());
        let val = walk(dv, pv, child, path)?;
        path.pop();
        match val {
            None => {
                d.shift_remove(&key);
            }
            Some(v) => {
                d.insert(key, v);
            }
        }
    }
    Ok(Some(Value::Object(d)))
}

fn walk_assoc(
    dest: Option<Value>,
    patch: Option<Value>,
    schema: &'static Node,
    path: &mut Vec<String>,
) -> Result<Option<Value>, String> {
    let (mut d, p) = match dest {
        None | Some(Value::Null) => match patch {
            Some(Value::Array(pl)) => (pl.clone(), Some(pl)),
            _ => return Ok(None),
        },
        Some(Value::Array(dl)) => match patch {
            Some(Value::Null) => return Ok(None),
            None => (dl, None),
            Some(Value::Array(mut pl)) => match list_directive(&mut pl)? {
                Directive::Delete => return Ok(None),
                Directive::Replace => (pl.clone(), Some(pl)),
                Directive::Merge => (dl, Some(pl)),
            },
            Some(other) => return Err(format!("{}: cannot merge {other} into a list", at(path))),
        },
        Some(other) => return Err(format!("{}: cannot merge into {other}", at(path))),
    };
    let keys: Vec<String> = schema.keys.iter().map(|k| (*k).to_owned()).collect();
    let elem_schema = schema.elements();
    // kyaml's elementValues: the key values of each element, patch first, without repeats.
    let mut values: Vec<Vec<String>> = Vec::new();
    let sources: [Option<&Vec<Value>>; 2] = [p.as_ref(), Some(&d)];
    for src in sources.into_iter().flatten() {
        for e in src {
            let v: Vec<String> = keys
                .iter()
                .map(|k| match e {
                    Value::Object(m) => m.get(k).map(text).unwrap_or_default(),
                    _ => String::new(),
                })
                .collect();
            if !v.is_empty() && !values.contains(&v) {
                values.push(v);
            }
        }
    }
    let result = if !values.is_empty() || !keys.is_empty() {
        set_elements(values, &keys, &mut d, p.as_ref(), elem_schema, path)?
    } else {
        let mut prim: Vec<Vec<String>> = Vec::new();
        for src in sources.into_iter().flatten() {
            for e in src {
                let v = vec![text(e)];
                if !prim.contains(&v) {
                    prim.push(v);
                }
            }
        }
        set_elements(
            prim,
            &[String::new()],
            &mut d,
            p.as_ref(),
            elem_schema,
            path,
        )?
    };
    Ok(Some(Value::Array(result)))
}

/// kyaml's `validateKeys`: the keys some element has a value for, with their values.
fn validate_keys(
    all: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let valid: Vec<bool> = (0..keys.len())
        .map(|i| {
            all.iter()
                .any(|vs| vs.get(i).is_some_and(|v| !v.is_empty()))
        })
        .collect();
    if !valid.iter().any(|b| *b) {
        return (keys.to_vec(), values.to_vec());
    }
    let vk = keys
        .iter()
        .zip(&valid)
        .filter(|(_, ok)| **ok)
        .map(|(k, _)| k.clone())
        .collect();
    let vv = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || valid.get(*i).copied().unwrap_or(false))
        .map(|(_, v)| v.clone())
        .collect();
    (vk, vv)
}

/// kyaml's `mergeValues` for lists with several keys: key tuples that agree where both have
/// a value are unified.
fn merge_values(mut list: Vec<Vec<String>>) -> Vec<Vec<String>> {
    for i in 0..list.len() {
        for j in 0..list.len() {
            if let Some(m) = match_values(&list[i], &list[j]) {
                list[i] = m.clone();
                list[j] = m;
            }
        }
    }
    list
}

fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            out.push(x.clone());
            continue;
        }
        if !x.is_empty() && !y.is_empty() {
            return None;
        }
        out.push(if x.is_empty() { y.clone() } else { x.clone() });
    }
    common.then_some(out)
}

/// kyaml's `MatchElementList`: the index of the first element matching every key and value.
fn find_element(list: &[Value], keys: &[String], values: &[String]) -> Option<usize> {
    let first = keys.first().map(String::as_str).unwrap_or("");
    if first.is_empty() {
        let want = values.first().map(String::as_str).unwrap_or("");
        return list.iter().position(|e| text(e) == want);
    }
    if keys.len() != values.len() {
        return None;
    }
    list.iter().position(|e| match e {
        Value::Object(m) => keys
            .iter()
            .zip(values)
            .all(|(k, v)| m.get(k).is_some_and(|f| text(f) == *v)),
        _ => false,
    })
}

/// kyaml's `FieldMatcher` on one element.
fn field_matches(elem: &Value, name: &str, value: &str) -> Result<bool, String> {
    if elem.is_null() {
        return Ok(false);
    }
    if name.is_empty() {
        if elem.is_object() || elem.is_array() {
            return Err(format!(
                "wrong node kind: expected ScalarNode but got {}",
                describe(elem)
            ));
        }
        return Ok(text(elem) == value);
    }
    let Value::Object(m) = elem else {
        return Err(format!(
            "wrong node kind: expected MappingNode but got {}",
            describe(elem)
        ));
    };
    Ok(m.get(name)
        .is_some_and(|f| value.is_empty() || text(f) == value))
}

fn is_empty_map(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// kyaml's `ElementSetter`: replaces the elements matching `keys`/`values` by `element`
/// (removes them without one), appending it when none matched. Null elements and empty maps
/// are dropped on the way.
fn element_setter(
    list: &mut Vec<Value>,
    element: Option<Value>,
    keys: &[String],
    values: &[String],
) -> Result<(), String> {
    let default_keys = [String::new()];
    let keys = if keys.is_empty() {
        &default_keys[..]
    } else {
        keys
    };
    let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
    let mut out = Vec::new();
    let mut matched = false;
    for elem in std::mem::take(list) {
        if elem.is_null() || is_empty_map(&elem) {
            continue;
        }
        if !elem.is_object() && mapping_setter {
            out.push(elem);
            continue;
        }
        let mut last = false;
        let mut found = true;
        for (j, key) in keys.iter().enumerate() {
            if let Some(v) = values.get(j) {
                last = field_matches(&elem, key, v)?;
            }
            if !last {
                found = false;
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                out.push(elem);
            }
            continue;
        }
        matched = true;
        if let Some(e) = &element {
            out.push(e.clone());
        }
    }
    *list = out;
    match element {
        None | Some(Value::Null) => {}
        Some(e) => {
            if !matched {
                list.push(e);
            }
        }
    }
    Ok(())
}

/// Whether kyaml's map walk of these two elements returns (and so modifies in place) the
/// original element.
fn merges_into_dest(d: &Value, p: Option<&Value>) -> bool {
    if !d.is_object() {
        return false;
    }
    match p {
        None => true,
        Some(Value::Object(m)) => m.get(PATCH).is_none_or(|v| text(v) == "merge"),
        Some(_) => false,
    }
}

/// kyaml's `setAssociativeSequenceElements` followed by `appendListNode`, with lists growing
/// towards the front.
fn set_elements(
    values_list: Vec<Vec<String>>,
    keys: &[String],
    dest: &mut Vec<Value>,
    patch: Option<&Vec<Value>>,
    elem_schema: Option<&'static Node>,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, String> {
    let values_list = if keys.len() > 1 {
        merge_values(values_list)
    } else {
        values_list
    };
    let mut items: Vec<Value> = Vec::new();
    let mut valid_keys: Vec<String> = Vec::new();
    for values in &values_list {
        if values.is_empty() {
            continue;
        }
        let (vk, vv) = validate_keys(&values_list, values, keys);
        let (lk, lv) = validate_keys(std::slice::from_ref(&vv), &vv, &vk);
        let di = find_element(dest, &lk, &lv);
        let pe = patch.and_then(|p| find_element(p, &lk, &lv).map(|i| p[i].clone()));
        let de = di.map(|i| dest[i].clone());
        let into_dest = de
            .as_ref()
            .is_some_and(|d| merges_into_dest(d, pe.as_ref()));
        let mut val = walk(de, pe, elem_schema, path)?;
        let mut exit = false;
        for (i, key) in vk.iter().enumerate() {
            match &mut val {
                None | Some(Value::Null) => {
                    element_setter(dest, None, &vk, &vv)?;
                    exit = true;
                }
                Some(v) if is_empty_map(v) => {
                    element_setter(dest, None, &vk, &vv)?;
                    exit = true;
                }
                Some(Value::Object(m)) => {
                    if !m.contains_key(key) && vv.get(i).is_some_and(|x| !x.is_empty()) {
                        m.insert(key.clone(), Value::String(vv[i].clone()));
                    }
                }
                Some(_) => {}
            }
        }
        // kyaml merged the original element in place.
        if let (true, Some(i), Some(v)) = (into_dest, di, &val)
            && !exit
            && i < dest.len()
        {
            dest[i] = v.clone();
        }
        valid_keys = vk.clone();
        if exit {
            continue;
        }
        element_setter(&mut items, val, &vk, &vv)?;
    }
    if values_list.is_empty() {
        return Ok(std::mem::take(dest));
    }
    // appendListNode(items, dest, keys): the original elements (merged in place) replace
    // their matches among the items, or are appended.
    let keys = if valid_keys.is_empty() {
        vec![String::new()]
    } else {
        valid_keys
    };
    for elem in dest.iter() {
        if keys[0].is_empty() {
            element_setter(
                &mut items,
                Some(elem.clone()),
                &[String::new()],
                &[text(elem)],
            )?;
            continue;
        }
        let mut v = Vec::new();
        for key in &keys {
            let Value::Object(m) = elem else {
                return Err(format!(
                    "{}: wrong node kind: expected MappingNode but got {}",
                    at(path),
                    describe(elem)
                ));
            };
            match m.get(key) {
                None => items.push(elem.clone()),
                Some(f) => v.push(text(f)),
            }
        }
        if keys.len() > 1 {
            element_setter(&mut items, None, &keys, &v)?;
        }
        element_setter(&mut items, Some(elem.clone()), &keys, &v)?;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": spec}}})
    }

    fn m(o: Value, p: Value) -> Value {
        merge(o, p).unwrap().unwrap()
    }

    #[test]
    fn empty_nulls_go_where_the_walker_visits() {
        let key = |k: &str| Seg::Key(k.into());
        let mut o = deploy(json!({"containers": [{"name": "c", "image": null}],
                                  "tolerations": [{"key": null}], "x": null}));
        let spec = [key("spec"), key("template"), key("spec")];
        let path = |rest: &[Seg]| [&spec[..], rest].concat();
        let kept = drop_empty_nulls(
            &mut o,
            &[
                path(&[key("containers"), Seg::Index(0), key("image")]),
                path(&[key("tolerations"), Seg::Index(0), key("key")]),
                path(&[key("x")]),
            ],
        );
        assert_eq!(
            o["spec"]["template"]["spec"],
            json!({"containers": [{"name": "c"}], "tolerations": [{"key": null}]})
        );
        assert_eq!(
            kept,
            vec![path(&[key("tolerations"), Seg::Index(0), key("key")])]
        );
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let o = json!({"kind": "X", "a": {"b": 1, "c": 2}, "d": null});
        let p = json!({"a": {"b": null, "e": 3}});
        assert_eq!(
            m(o, p),
            json!({"kind": "X", "a": {"c": 2, "e": 3}, "d": null})
        );
    }

    #[test]
    fn containers_merge_by_name_patch_first() {
        let o = deploy(
            json!({"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}),
        );
        let p = deploy(
            json!({"containers": [{"name": "b", "image": "b2"}, {"name": "c", "image": "c"}]}),
        );
        let got = m(o, p);
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "b2"}, {"name": "c", "image": "c"}, {"name": "a", "image": "a"}])
        );
    }

    #[test]
    fn element_and_list_directives() {
        let o = deploy(
            json!({"containers": [{"name": "a"}, {"name": "b"}], "volumes": [{"name": "v"}]}),
        );
        let p = deploy(json!({"containers": [{"name": "a", "$patch": "delete"}],
                              "volumes": [{"$patch": "replace"}, {"name": "w"}]}));
        let got = m(o, p);
        let spec = &got["spec"]["template"]["spec"];
        assert_eq!(spec["containers"], json!([{"name": "b"}]));
        assert_eq!(spec["volumes"], json!([{"name": "w"}]));
    }

    #[test]
    fn map_directives() {
        let o = json!({"kind": "X", "a": {"b": 1}, "c": {"d": 1}});
        let p = json!({"a": {"$patch": "replace", "e": 2}, "c": {"$patch": "delete"}});
        assert_eq!(m(o, p), json!({"kind": "X", "a": {"e": 2}}));
        assert!(
            merge(json!({"a": 1}), json!({"$patch": "delete"}))
                .unwrap()
                .is_none()
        );
        assert!(merge(json!({"a": {}}), json!({"a": {"$patch": "bogus"}})).is_err());
    }

    #[test]
    fn lists_of_unknown_kinds_are_replaced() {
        let o = json!({"apiVersion": "x/v1", "kind": "Y", "spec": {"l": [{"name": "a"}]}});
        let p = json!({"spec": {"l": [{"name": "b"}]}});
        assert_eq!(m(o, p)["spec"]["l"], json!([{"name": "b"}]));
    }

    #[test]
    fn primitive_merge_lists_are_unions() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["a", "b"]}});
        let p = json!({"metadata": {"finalizers": ["c", "a"]}});
        assert_eq!(m(o, p)["metadata"]["finalizers"], json!(["c", "a", "b"]));
    }

    #[test]
    fn multi_key_ports() {
        let o = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                       "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "protocol": "TCP"}]}});
        let p = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 8443}]}});
        assert_eq!(
            m(o, p)["spec"]["ports"],
            json!([{"port": 8443}, {"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443, "protocol": "TCP"}])
        );
    }

    #[test]
    fn kind_mismatch_is_an_error() {
        assert!(merge(json!({"a": {"b": 1}}), json!({"a": "x"})).is_err());
    }

    /// A small deterministic generator of values made of the keys and directives the merge
    /// looks at.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }

        fn value(&mut self, depth: u32) -> Value {
            const KEYS: &[&str] = &[
                "name",
                "containers",
                "$patch",
                "ports",
                "containerPort",
                "protocol",
                "finalizers",
                "metadata",
                "spec",
                "template",
                "env",
                "image",
            ];
            const STRS: &[&str] = &["delete", "replace", "merge", "a", "b", "", "TCP", "80"];
            match self.next(if depth == 0 { 4 } else { 7 }) {
                0 => Value::Null,
                1 => json!(self.next(3)),
                2 | 3 => json!(STRS[self.next(STRS.len() as u64) as usize]),
                4 | 5 => {
                    let mut m = Map::new();
                    for _ in 0..self.next(4) {
                        let k = KEYS[self.next(KEYS.len() as u64) as usize];
                        let v = self.value(depth - 1);
                        m.insert(k.into(), v);
                    }
                    Value::Object(m)
                }
                _ => Value::Array((0..self.next(4)).map(|_| self.value(depth - 1)).collect()),
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        let mut g = Gen(42);
        for _ in 0..3000 {
            let mut object = g.value(5);
            let patch = g.value(5);
            if let Value::Object(m) = &mut object
                && g.next(2) == 0
            {
                m.insert("apiVersion".into(), json!("apps/v1"));
                m.insert("kind".into(), json!("Deployment"));
            }
            let _ = merge(object, patch);
        }
    }
}
