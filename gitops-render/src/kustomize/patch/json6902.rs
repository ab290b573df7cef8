//! JSON patches (RFC 6902) as kustomize applies them with `gopkg.in/evanphx/json-patch.v4`:
//! besides the RFC, negative array indices count from the end (`/containers/-1`), `add`
//! without a `value` adds `null`, and errors read like that library's.

use serde_json::{Map, Value};

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Op {
    /// `op`.
    pub kind: String,
    /// `path`.
    pub path: Option<String>,
    /// `from`.
    pub from: Option<String>,
    /// `value` (absent: `None`).
    pub value: Option<Value>,
}

/// Decodes operations from their JSON value (a list of mappings).
pub(crate) fn decode(v: Value) -> Result<Vec<Op>, String> {
    let Value::Array(items) = v else {
        return Err("a JSON patch is a list of operations".into());
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut m) = item else {
                return Err(format!("operation {i} is not a mapping"));
            };
            let text = |m: &mut Map<String, Value>, k: &str| -> Result<Option<String>, String> {
                match m.remove(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s)),
                    Some(other) => Err(format!("operation {i}: {k} is not a string: {other}")),
                }
            };
            Ok(Op {
                kind: text(&mut m, "op")?.unwrap_or_else(|| "unknown".into()),
                path: text(&mut m, "path")?,
                from: text(&mut m, "from")?,
                value: m.remove("value"),
            })
        })
        .collect()
}

/// Splits a pointer into its parent's tokens and the last token.
fn split(path: &str) -> Option<(Vec<String>, String)> {
    let mut parts: Vec<String> = path
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    if parts.len() < 2 {
        return None;
    }
    let key = parts.pop()?;
    parts.remove(0);
    Some((parts, key))
}

/// An array index as the library reads it: negative counts from the end.
fn index(key: &str, len: usize, allow_end: bool) -> Option<usize> {
    let i: i64 = key.parse().ok()?;
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 {
        if i < -len {
            return None;
        }
        i + len
    } else {
        i
    };
    if i > len || (i == len && !allow_end) {
        return None;
    }
    usize::try_from(i).ok()
}

fn child_mut<'v>(v: &'v mut Value, key: &str) -> Option<&'v mut Value> {
    match v {
        Value::Object(m) => m.get_mut(key),
        Value::Array(a) => {
            let i = index(key, a.len(), false)?;
            a.get_mut(i)
        }
        _ => None,
    }
}

/// The container a pointer's last token applies to.
fn container<'v>(doc: &'v mut Value, parts: &[String]) -> Option<&'v mut Value> {
    let mut cur = doc;
    for p in parts {
        cur = child_mut(cur, p)?;
    }
    matches!(cur, Value::Object(_) | Value::Array(_)).then_some(cur)
}

fn get(doc: &mut Value, path: &str) -> Option<Value> {
    let (parts, key) = split(path)?;
    let c = container(doc, &parts)?;
    child_mut(c, &key).cloned()
}

fn missing(op: &str, path: &str) -> String {
    if op == "replace" {
        format!("{op} operation does not apply: doc is missing path: {path}: missing value")
    } else {
        format!("{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    }
}

fn add(doc: &mut Value, path: &str, value: Value, op: &str) -> Result<(), String> {
    let (parts, key) = split(path).ok_or_else(|| missing(op, path))?;
    match container(doc, &parts).ok_or_else(|| missing(op, path))? {
        Value::Object(m) => {
            m.insert(key, value);
            Ok(())
        }
        Value::Array(a) => {
            if key == "-" {
                a.push(value);
                return Ok(());
            }
            let i = index(&key, a.len(), true)
                .ok_or_else(|| format!("Unable to access invalid index: {key}"))?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing(op, path)),
    }
}

fn remove(doc: &mut Value, path: &str, op: &str) -> Result<Value, String> {
    let (parts, key) = split(path).ok_or_else(|| missing(op, path))?;
    match container(doc, &parts).ok_or_else(|| missing(op, path))? {
        Value::Object(m) => m.shift_remove(&key).ok_or_else(|| {
            format!(
                "error in remove for path: '{path}': Unable to remove nonexistent key: {key}: \
                 missing value"
            )
        }),
        Value::Array(a) => {
            let i = index(&key, a.len(), false)
                .ok_or_else(|| format!("Unable to access invalid index: {key}"))?;
            Ok(a.remove(i))
        }
        _ => Err(missing(op, path)),
    }
}

fn replace(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parts, key) = split(path).ok_or_else(|| missing("replace", path))?;
    let c = container(doc, &parts).ok_or_else(|| missing("replace", path))?;
    // The library sets a missing key of a mapping (as `add` would).
    if let Value::Object(m) = c {
        m.insert(key, value);
        return Ok(());
    }
    match child_mut(c, &key) {
        Some(slot) => {
            *slot = value;
            Ok(())
        }
        None => Err(missing("replace", path)),
    }
}

/// Applies the operations in order; the document is left as it was on error.
pub(crate) fn apply(doc: &mut Value, ops: &[Op]) -> Result<(), String> {
    let mut work = doc.clone();
    for op in ops {
        let path = op.path.as_deref();
        let need = |p: Option<&str>, what: &str| -> Result<String, String> {
            p.map(str::to_owned)
                .ok_or_else(|| format!("{} operation failed to decode {what}", op.kind))
        };
        match op.kind.as_str() {
            "add" => {
                let p = need(path, "path")?;
                add(
                    &mut work,
                    &p,
                    op.value.clone().unwrap_or(Value::Null),
                    "add",
                )?;
            }
            "remove" => {
                let p = need(path, "path")?;
                remove(&mut work, &p, "remove")?;
            }
            "replace" => {
                let p = need(path, "path")?;
                replace(&mut work, &p, op.value.clone().unwrap_or(Value::Null))?;
            }
            "move" => {
                let from = need(op.from.as_deref(), "from")?;
                let p = need(path, "path")?;
                let v = remove(&mut work, &from, "move")?;
                add(&mut work, &p, v, "move")?;
            }
            "copy" => {
                let from = need(op.from.as_deref(), "from")?;
                let p = need(path, "path")?;
                let v = get(&mut work, &from).ok_or_else(|| missing("copy", &from))?;
                add(&mut work, &p, v, "copy")?;
            }
            "test" => {
                let p = need(path, "path")?;
                let got = get(&mut work, &p);
                let want = op.value.clone().unwrap_or(Value::Null);
                let ok = match got {
                    None => want.is_null(),
                    Some(v) => v == want,
                };
                if !ok {
                    return Err(format!("testing value {p} failed: test failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, ops: Value) -> Result<Value, String> {
        let mut d = doc;
        apply(&mut d, &decode(ops)?)?;
        Ok(d)
    }

    #[test]
    fn rfc_operations() {
        let doc = json!({"a": {"b": [1, 2, 3]}, "c": "x"});
        let got = run(
            doc,
            json!([
                {"op": "add", "path": "/a/b/1", "value": 9},
                {"op": "add", "path": "/a/b/-", "value": 4},
                {"op": "remove", "path": "/a/b/0"},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/a/e~1f"},
                {"op": "test", "path": "/a/e~1f", "value": "y"}
            ]),
        )
        .unwrap();
        assert_eq!(got, json!({"a": {"b": [9, 2, 3, 4], "e/f": "y"}, "c": "y"}));
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        let got = run(
            json!({"l": ["a", "b", "c"]}),
            json!([{"op": "replace", "path": "/l/-1", "value": "z"},
                   {"op": "add", "path": "/l/-1", "value": "y"}]),
        )
        .unwrap();
        assert_eq!(got, json!({"l": ["a", "b", "y", "z"]}));
    }

    #[test]
    fn failures() {
        let doc = json!({"a": {"b": 1}, "l": [1]});
        let e = run(
            doc.clone(),
            json!([{"op": "replace", "path": "/x/y", "value": 1}]),
        );
        assert!(
            e.unwrap_err()
                .contains("replace operation does not apply: doc is missing path: /x/y")
        );
        assert!(run(doc.clone(), json!([{"op": "remove", "path": "/a/z"}])).is_err());
        assert!(
            run(
                doc.clone(),
                json!([{"op": "add", "path": "/l/5", "value": 1}])
            )
            .is_err()
        );
        assert!(
            run(
                doc.clone(),
                json!([{"op": "test", "path": "/a/b", "value": 2}])
            )
            .is_err()
        );
        assert!(run(doc.clone(), json!([{"op": "frob", "path": "/a"}])).is_err());
        assert!(run(doc, json!([{"op": "add", "value": 1}])).is_err());
    }
}
