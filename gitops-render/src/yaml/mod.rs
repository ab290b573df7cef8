//! YAML in and out, with the semantics of the Go libraries under `kubectl kustomize`:
//! yaml.v3 (via kyaml) for reading, `encoding/json` plus yaml.v2 (via `sigs.k8s.io/yaml`)
//! for writing.

mod analyze;
mod emit;
mod folded;
mod parse;
pub(crate) mod scalar;

use std::cmp::Ordering;

use serde_json::{Map, Value};

pub(crate) use emit::Emitter;
pub(crate) use parse::{
    Document, Seg, YamlError, parse_documents, parse_first_document, parse_first_document_v2,
    parse_kustomization_document,
};

/// Whether yaml.v3 reads `s`, written as a plain scalar, as a string (and not a number,
/// boolean, null or timestamp).
pub(crate) fn plain_key_is_string(s: &str) -> bool {
    scalar::resolve_v3(s) == scalar::Resolved::Str
}

/// yaml.v2's order of map keys (`sorter.go`, `keyList.Less`) for string keys: runs of digits
/// compare as numbers, letters after non-letters, otherwise by code point.
pub(crate) fn key_cmp(a: &str, b: &str) -> Ordering {
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let n = ar.len().min(br.len());
    for i in 0..n {
        if ar[i] == br[i] {
            continue;
        }
        let al = is_letter(ar[i]);
        let bl = is_letter(br[i]);
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let mut an: i64 = 0;
        let mut bn: i64 = 0;
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && is_digit(ar[j - 1]) {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && is_digit(ar[ai]) {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(br[bi]) {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// Puts the keys of every map in `value` in yaml.v2's order, the order `kubectl kustomize`
/// prints them in.
pub(crate) fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let needs_sort = map
                .keys()
                .zip(map.keys().skip(1))
                .any(|(a, b)| key_cmp(a, b) != Ordering::Less);
            if needs_sort {
                let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                entries.sort_by(|(a, _), (b, _)| key_cmp(a, b));
                *map = entries.into_iter().collect::<Map<String, Value>>();
            }
            for v in map.values_mut() {
                sort_keys(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_yaml_v2() {
        let mut keys = vec![
            "a10", "a9", "A", "b.c/d", "a", "a.b", "a-b", "ab", "x1", "x01",
        ];
        keys.sort_by(|a, b| key_cmp(a, b));
        assert_eq!(
            keys,
            vec![
                "A", "a", "a-b", "a.b", "a9", "a10", "ab", "b.c/d", "x1", "x01"
            ]
        );
    }
}
