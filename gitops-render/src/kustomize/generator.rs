//! `configMapGenerator` and `secretGenerator`, and the content hash of generated names, as
//! kustomize v5.5 does them (`api/kv`, `api/internal/generators`, `api/hasher`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::load::{GeneratorArgs, GeneratorOptions, Kustomization, Loader};
use super::resource::Resource;
use crate::error::RenderError;

/// Which object a generator makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// The objects of a kustomization's generators: config maps first, then secrets, each in the
/// order listed.
pub(crate) fn generate(k: &Kustomization, loader: &Loader) -> Result<Vec<Resource>, RenderError> {
    let source = Arc::new(k.file.clone());
    let mut out = Vec::new();
    for (kind, list) in [
        (Kind::ConfigMap, &k.config_map_generator),
        (Kind::Secret, &k.secret_generator),
    ] {
        for args in list {
            let options =
                GeneratorOptions::merged(args.options.as_ref(), k.generator_options.as_ref());
            out.push(make(kind, args, options, &k.file, loader, &source)?);
        }
    }
    Ok(out)
}

/// The object of a builtin `ConfigMapGenerator` or `SecretGenerator` configuration read from
/// `config_file` (an entry of `generators:` in `k`): files are loaded relative to `k`, and the
/// kustomization's `generatorOptions` do not apply.
pub(crate) fn generate_from_config(
    obj: &Map<String, Value>,
    config_file: &Path,
    kind: &str,
    k: &Kustomization,
    loader: &Loader,
) -> Result<Resource, RenderError> {
    let (kind, secret) = match kind {
        "SecretGenerator" => (Kind::Secret, true),
        _ => (Kind::ConfigMap, false),
    };
    let args = super::load::generator_args_from_config(obj, config_file, secret)?;
    let source = Arc::new(config_file.to_path_buf());
    make(kind, &args, args.options.clone(), &k.file, loader, &source)
}

/// kubernetes' `IsConfigMapKey`.
fn valid_configmap_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
        && !key.starts_with("..")
}

/// kubernetes' `IsEnvVarName`.
fn valid_env_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(c) if c.is_ascii_alphabetic() || matches!(c, b'-' | b'_' | b'.'))
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// kustomize's `removeQuotes`: strips one pair of matching `"` or `'`.
fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// kustomize's `ParseFileSource`: `path` (key = base name) or `key=path`.
fn parse_file_source(source: &str) -> Result<(String, String), String> {
    match source.matches('=').count() {
        0 => {
            let trimmed = source.trim_end_matches('/');
            let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
            let base = if base.is_empty() { "/" } else { base };
            Ok((base.to_owned(), source.to_owned()))
        }
        1 if source.starts_with('=') => Err(format!(
            "missing key name for file path {:?} in source {source:?}",
            &source[1..]
        )),
        1 if source.ends_with('=') => Err(format!(
            "missing file path for key name {:?} in source {source:?}",
            &source[..source.len() - 1]
        )),
        1 => {
            let (k, p) = source.split_once('=').unwrap_or((source, ""));
            Ok((k.to_owned(), p.to_owned()))
        }
        _ => Err(format!(
            "source {source:?} key name or file path contains '='"
        )),
    }
}

/// Data values: text, or raw bytes that are not UTF-8 (`binaryData` in a ConfigMap).
enum Data {
    Text(String),
    Bytes(Vec<u8>),
}

/// Key/value pairs from env files, then literals, then files (kustomize's `kv.Load`).
fn load_pairs(
    args: &GeneratorArgs,
    file: &Path,
    loader: &Loader,
) -> Result<Vec<(String, Data)>, RenderError> {
    let mut pairs = Vec::new();
    for (i, env) in args.envs.iter().enumerate() {
        let field = format!("{}.envs[{i}]", args.field);
        let (path, bytes) = loader.read(env, file)?;
        // bufio.Scanner's lines: split on \n, a trailing \r dropped, no empty last line.
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for (n, raw) in lines.into_iter().enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = std::str::from_utf8(raw).map_err(|_| {
                RenderError::field(&path, format!("line {}", n + 1), "invalid UTF-8")
            })?;
            let line = if n == 0 {
                line.trim_start_matches('\u{FEFF}')
            } else {
                line
            };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            if !valid_env_name(key) {
                return Err(RenderError::field(
                    &path,
                    format!("line {}", n + 1),
                    format!("{key:?} is not a valid environment variable name (from {field})"),
                ));
            }
            pairs.push((key.to_owned(), Data::Text(value.to_owned())));
        }
    }
    for (i, lit) in args.literals.iter().enumerate() {
        let field = format!("{}.literals[{i}]", args.field);
        match lit.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                pairs.push((key.to_owned(), Data::Text(remove_quotes(value).to_owned())));
            }
            _ => {
                return Err(RenderError::field(
                    file,
                    field,
                    format!("invalid literal source {lit}, expected key=value"),
                ));
            }
        }
    }
    for (i, src) in args.files.iter().enumerate() {
        let field = format!("{}.files[{i}]", args.field);
        let (key, path) =
            parse_file_source(src).map_err(|m| RenderError::field(file, &field, m))?;
        let (_, bytes) = loader.read(&path, file)?;
        let data = match String::from_utf8(bytes) {
            Ok(s) => Data::Text(s),
            Err(e) => Data::Bytes(e.into_bytes()),
        };
        pairs.push((key, data));
    }
    Ok(pairs)
}

/// kyaml's `encodeBase64`: base64 in lines of 70 characters, each ending with a line break
/// when there is more than one line.
fn encode_base64_lines(data: &[u8]) -> String {
    let enc = crate::base64::encode(data);
    let lines = enc.len() / 70 + 1;
    if lines <= 1 {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + lines);
    for chunk in enc.as_bytes().chunks(70) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn make(
    kind: Kind,
    args: &GeneratorArgs,
    options: Option<GeneratorOptions>,
    file: &Path,
    loader: &Loader,
    source: &Arc<PathBuf>,
) -> Result<Resource, RenderError> {
    if args.name.is_empty() {
        return Err(RenderError::field(
            file,
            format!("{}.name", args.field),
            "a configmap must have a name",
        ));
    }
    // kustomize reads any other behavior (`add`...) as unspecified, which creates the object.
    let pairs = load_pairs(args, file, loader)?;
    let mut data = std::collections::BTreeMap::new();
    let mut binary = std::collections::BTreeMap::new();
    for (key, value) in pairs {
        if !valid_configmap_key(&key) {
            return Err(RenderError::field(
                file,
                &args.field,
                format!(
                    "{key:?} is not a valid key name: a valid config key must consist of \
                     alphanumeric characters, '-', '_' or '.'"
                ),
            ));
        }
        if data.contains_key(&key) || binary.contains_key(&key) {
            return Err(RenderError::field(
                file,
                &args.field,
                format!("configmap {} illegally repeats the key `{key}`", args.name),
            ));
        }
        match (kind, value) {
            (Kind::Secret, Data::Text(s)) => {
                data.insert(key, encode_base64_lines(s.as_bytes()));
            }
            (Kind::Secret, Data::Bytes(b)) => {
                data.insert(key, encode_base64_lines(&b));
            }
            (Kind::ConfigMap, Data::Text(s)) => {
                data.insert(key, s);
            }
            (Kind::ConfigMap, Data::Bytes(b)) => {
                binary.insert(key, encode_base64_lines(&b));
            }
        }
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(args.name.clone()));
    if !args.namespace.is_empty() {
        metadata.insert("namespace".into(), Value::String(args.namespace.clone()));
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String("v1".into()));
    obj.insert("kind".into(), Value::String(kind.name().into()));
    obj.insert("metadata".into(), Value::Object(metadata));
    if kind == Kind::Secret {
        let t = if args.secret_type.is_empty() {
            "Opaque"
        } else {
            &args.secret_type
        };
        obj.insert("type".into(), Value::String(t.to_owned()));
    }
    let to_map = |m: std::collections::BTreeMap<String, String>| {
        Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    };
    if !data.is_empty() || kind == Kind::Secret {
        obj.insert("data".into(), to_map(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), to_map(binary));
    }
    let mut r = Resource::new(obj, source.clone());
    if let Some(o) = &options {
        let md = r.metadata_mut();
        for (field, values) in [("labels", &o.labels), ("annotations", &o.annotations)] {
            if values.is_empty() {
                continue;
            }
            let m = md.entry(field).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = m {
                for (k, v) in values {
                    m.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        if o.immutable {
            r.obj.insert("immutable".into(), Value::Bool(true));
        }
    }
    r.needs_hash = !options.as_ref().is_some_and(|o| o.disable_name_suffix_hash);
    r.behavior = Some(args.behavior.clone());
    Ok(r)
}

/// Writes `s` as Go's `encoding/json` does (HTML characters escaped, `\b` and `\f` short).
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `v` as Go's `json.Marshal` of the decoded value does (map keys sorted).
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) if f != 0.0 && (f.abs() < 1e-6 || f.abs() >= 1e21) => {
                let s = format!("{f:e}");
                match s.split_once('e') {
                    Some((m, e)) if !e.starts_with('-') => out.push_str(&format!("{m}e+{e}")),
                    _ => out.push_str(&s),
                }
            }
            Some(f) => out.push_str(&f.to_string()),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(&m[k], out);
            }
            out.push('}');
        }
    }
}

/// kustomize's `encode(hex256(...))`: the first ten hex digits of the SHA-256, with `0 1 3 a e`
/// replaced by `g h k m t` (no vowels, no look-alikes).
fn encode_hash(data: &str) -> String {
    let hex = hex::encode(Sha256::digest(data.as_bytes()));
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// kustomize's `Hasher.Hash` for a ConfigMap or Secret: the hash of the JSON of kind, name
/// (as kustomize reads it: empty), data (and binaryData / type and stringData).
pub(crate) fn content_hash(r: &Resource) -> String {
    let kind = r.kind();
    let mut m = Map::new();
    m.insert("kind".into(), Value::String(kind.clone()));
    // kustomize looks the name up with `yaml.Lookup("metadata/name")`, a single path element
    // that matches no field: the name it hashes is always empty.
    m.insert("name".into(), Value::String(String::new()));
    let field = |name: &str| match r.obj.get(name) {
        None => Value::String(String::new()),
        Some(v @ (Value::Object(_) | Value::Array(_))) => v.clone(),
        Some(v) => Value::String(super::resource::scalar_text(Some(v))),
    };
    m.insert("data".into(), field("data"));
    if kind == "Secret" {
        m.insert("type".into(), field("type"));
        if let Some(v @ Value::Object(_)) = r.obj.get("stringData") {
            m.insert("stringData".into(), v.clone());
        }
    } else if kind == "ConfigMap" {
        if let Some(v @ Value::Object(_)) = r.obj.get("binaryData") {
            m.insert("binaryData".into(), v.clone());
        }
    } else {
        // kustomize hashes other kinds as their whole node; only generators set needsHash here.
        let mut out = String::new();
        go_json(&Value::Object(r.obj.clone()), &mut out);
        return encode_hash(&out);
    }
    let mut out = String::new();
    go_json(&Value::Object(m), &mut out);
    encode_hash(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_kustomize() {
        // `kubectl kustomize` of a secretGenerator with literals password=s3cr3t and a long one.
        let mut obj = Map::new();
        obj.insert("apiVersion".into(), "v1".into());
        obj.insert("kind".into(), "Secret".into());
        obj.insert("metadata".into(), serde_json::json!({"name": "sec"}));
        obj.insert("type".into(), "Opaque".into());
        let long = "a".repeat(86);
        obj.insert(
            "data".into(),
            serde_json::json!({"long": encode_base64_lines(long.as_bytes()), "password": "czNjcjN0"}),
        );
        let r = Resource::new(obj, Arc::new(PathBuf::new()));
        assert_eq!(content_hash(&r), "4k4k6mhf85");
    }

    #[test]
    fn file_sources_parse_like_kustomize() {
        assert_eq!(
            parse_file_source("scripts/a.sh").unwrap(),
            ("a.sh".into(), "scripts/a.sh".into())
        );
        assert_eq!(parse_file_source("k=p").unwrap(), ("k".into(), "p".into()));
        assert!(parse_file_source("=p").is_err());
        assert!(parse_file_source("a=b=c").is_err());
        assert_eq!(remove_quotes("\"q v\""), "q v");
        assert_eq!(remove_quotes("'x\""), "'x\"");
    }
}
