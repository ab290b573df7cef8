//! Flux's post-build variable substitution (`spec.postBuild` of a Kustomization), as
//! kustomize-controller runs it after the kustomize build: each object is written as YAML, the
//! `${var}` expressions in that text are replaced (bash-style string functions of Flux's
//! `pkg/envsubst`, a fork of drone/envsubst), and the text is read back, so `replicas:
//! ${REPLICAS}` becomes the number `replicas: 3`.
//!
//! - Variables come from `substituteFrom` ConfigMaps and Secrets in list order (a later one
//!   wins), then from the inline `substitute` map (which wins over all); newlines are removed
//!   from values; names must match `^[_[:alpha:]][_[:alpha:][:digit:]]*$`. Building that map is
//!   the caller's job ([`PostBuild::vars`] in the right order).
//! - Objects labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` are left
//!   alone.
//! - Nothing is substituted when there are no variables, unless the strategy is
//!   [`Strategy::Always`] (Flux's `substituteStrategy: Always`).
//! - Supported: `${v}`, `${#v}`, `${v^}`, `${v^^}`, `${v,}`, `${v,,}`, `${v:n}`, `${v:n:len}`,
//!   `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v-d}`, `${v:-d}`, `${v=d}`, `${v:=d}`,
//!   `${v/p/r}`, `${v//p/r}`, `${v/#p/r}`, `${v/%p/r}` (`p` of `#`/`%` is a glob with `*` and `?`).
//!   A bare `$v` is left as it is; `$${v}` writes a literal `${v}`.
//! - An unset variable without a default is an error in strict mode (Flux's default since
//!   kustomize-controller v1.9), the empty string otherwise.

use std::collections::BTreeMap;

use gitops_core::Object;
use serde_json::{Map, Value};

use crate::yaml;

/// kustomize-controller's per-object switch: `disabled` (label or annotation) skips substitution.
pub const SUBSTITUTE_SWITCH: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// When substitution runs (Flux's `spec.postBuild.substituteStrategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Only when at least one variable is defined (Flux's default, `WithVariables`).
    #[default]
    WithVariables,
    /// Always, so that `${v:=default}` works without any variable and strict mode catches
    /// every unset variable.
    Always,
}

/// Why substitution failed. Values of variables never appear in these messages (they may come
/// from Secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    /// A variable name is not a shell identifier.
    #[error(
        "variable name {name:?} is invalid: it must match ^[_[:alpha:]][_[:alpha:][:digit:]]*$"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// An expression could not be parsed (an unclosed `${`, an unsupported operator...).
    #[error("{object}: {message}")]
    Syntax {
        /// The object, as `Kind/namespace/name`.
        object: String,
        /// What is wrong, with the expression.
        message: String,
    },
    /// Strict mode: a variable is used without a value or a default.
    #[error("{object}: variable not set (strict mode): {name:?}")]
    Unset {
        /// The object, as `Kind/namespace/name`.
        object: String,
        /// The variable.
        name: String,
    },
    /// The text after substitution is no longer a YAML object.
    #[error("{object}: the manifest is not valid YAML after substitution: {message}")]
    Yaml {
        /// The object, as `Kind/namespace/name`.
        object: String,
        /// What is wrong.
        message: String,
    },
}

/// Post-build substitution settings: the variables, strict mode and strategy.
#[derive(Debug, Clone, Default)]
pub struct PostBuild {
    vars: BTreeMap<String, String>,
    strict: bool,
    strategy: Strategy,
}

impl PostBuild {
    /// No variables, not strict, [`Strategy::WithVariables`].
    pub fn new() -> Self {
        PostBuild::default()
    }

    /// Adds variables; a name given again replaces the earlier value, so call this in Flux's
    /// order: each `substituteFrom` source in list order, then `substitute`. Newlines are
    /// removed from values. Errors on a name that is not a shell identifier.
    pub fn vars<K, V>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, SubstituteError>
    where
        K: Into<String>,
        V: AsRef<str>,
    {
        for (k, v) in vars {
            let name = k.into();
            if !is_valid_name(&name) {
                return Err(SubstituteError::InvalidName { name });
            }
            self.vars.insert(name, v.as_ref().replace('\n', ""));
        }
        Ok(self)
    }

    /// Strict mode: an unset variable without a default fails the substitution.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// When substitution runs.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Substitutes in every object, in place. Objects switched off with
    /// [`SUBSTITUTE_SWITCH`] and objects without `${` in their YAML are not touched. On error
    /// no object is changed.
    pub fn apply(&self, objects: &mut [Object]) -> Result<(), SubstituteError> {
        if self.vars.is_empty() && self.strategy == Strategy::WithVariables {
            return Ok(());
        }
        let mut replaced = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            if obj.has_switch(SUBSTITUTE_SWITCH, "disabled") {
                continue;
            }
            if let Some(map) = self.substitute_map(obj.as_map(), &describe(obj))? {
                replaced.push((i, map));
            }
        }
        for (i, map) in replaced {
            objects[i] = Object::from_map(map);
        }
        Ok(())
    }

    /// The object after substitution, or `None` when its YAML holds no `${`.
    fn substitute_map(
        &self,
        map: &Map<String, Value>,
        object: &str,
    ) -> Result<Option<Map<String, Value>>, SubstituteError> {
        let mut text = String::new();
        yaml::Emitter::new(&mut text).document_map(map);
        if !text.contains("${") {
            return Ok(None);
        }
        let out = envsubst(
            &text,
            &|name| self.vars.get(name).map(String::as_str),
            self.strict,
        )
        .map_err(|e| match e {
            EvalError::Syntax(message) => SubstituteError::Syntax {
                object: object.to_string(),
                message,
            },
            EvalError::Unset(name) => SubstituteError::Unset {
                object: object.to_string(),
                name,
            },
        })?;
        let yaml_err = |message: String| SubstituteError::Yaml {
            object: object.to_string(),
            message,
        };
        match yaml::parse_first_document(&out)
            .map_err(|e| yaml_err(format!("line {}: {}", e.line, e.message)))?
        {
            Some(Value::Object(m)) => Ok(Some(m)),
            _ => Err(yaml_err("it is not a mapping".into())),
        }
    }
}

fn describe(obj: &Object) -> String {
    match obj.namespace() {
        Some(ns) if !ns.is_empty() => format!("{}/{ns}/{}", obj.kind(), obj.name()),
        _ => format!("{}/{}", obj.kind(), obj.name()),
    }
}

/// Whether `name` matches `^[_[:alpha:]][_[:alpha:][:digit:]]*$` (ASCII, as Go's regexp).
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Why [`envsubst`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EvalError {
    /// A malformed or unsupported expression.
    Syntax(String),
    /// Strict mode: this variable has no value and no default.
    Unset(String),
}

/// Replaces the `${...}` expressions of `text`; `lookup` gives a variable's value.
pub(crate) fn envsubst<'a>(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
    strict: bool,
) -> Result<String, EvalError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            // `$${v}`: a literal `${`, the rest is copied as it is.
            out.push_str("${");
            rest = escaped;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = closing_brace(body_start).ok_or_else(|| {
                EvalError::Syntax(format!("unclosed expression ${{{}", preview(body_start)))
            })?;
            out.push_str(&eval(&body_start[..end], lookup, strict)?);
            rest = &body_start[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn preview(s: &str) -> String {
    s.chars().take(30).collect()
}

/// The index of the `}` closing an expression body, counting nested `${...}`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Evaluates the body of one `${...}`.
fn eval<'a>(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
    strict: bool,
) -> Result<String, EvalError> {
    let syntax = |what: &str| EvalError::Syntax(format!("{what} in ${{{body}}}"));
    if let Some(name) = body.strip_prefix('#') {
        if !is_valid_name(name) {
            return Err(syntax("bad variable name"));
        }
        let v = value(name, lookup, strict)?;
        return Ok(v.chars().count().to_string());
    }
    let name_len = body
        .char_indices()
        .find(|(_, c)| !(*c == '_' || c.is_ascii_alphanumeric()))
        .map_or(body.len(), |(i, _)| i);
    let (name, op) = body.split_at(name_len);
    if !is_valid_name(name) {
        return Err(syntax("bad variable name"));
    }
    let set = lookup(name);
    // Defaults: `-`/`=` when unset, `:-`/`:=` when unset or empty; nested expressions in the
    // default are expanded.
    for (prefix, when_empty) in [(":-", true), (":=", true), ("-", false), ("=", false)] {
        if let Some(default) = op.strip_prefix(prefix) {
            return match set {
                Some(v) if !(when_empty && v.is_empty()) => Ok(v.to_string()),
                _ => envsubst(default, lookup, strict),
            };
        }
    }
    if op.starts_with(":?") || op.starts_with(":+") || op.starts_with('+') || op.starts_with('?') {
        return Err(syntax("unsupported operator"));
    }
    let v = value(name, lookup, strict)?;
    let chars: Vec<char> = v.chars().collect();
    let out = match op {
        "" => v,
        "^" => upper_first(&chars),
        "^^" => v.to_uppercase(),
        "," => lower_first(&chars),
        ",," => v.to_lowercase(),
        _ if op.starts_with("##") => trim_prefix(&v, &op[2..], true),
        _ if op.starts_with('#') => trim_prefix(&v, &op[1..], false),
        _ if op.starts_with("%%") => trim_suffix(&v, &op[2..], true),
        _ if op.starts_with('%') => trim_suffix(&v, &op[1..], false),
        _ if op.starts_with("//") => {
            let (p, r) = split_pattern(&op[2..]);
            if p.is_empty() { v } else { v.replace(p, r) }
        }
        _ if op.starts_with("/#") => {
            let (p, r) = split_pattern(&op[2..]);
            match v.strip_prefix(p) {
                Some(rest) => format!("{r}{rest}"),
                None => v,
            }
        }
        _ if op.starts_with("/%") => {
            let (p, r) = split_pattern(&op[2..]);
            match v.strip_suffix(p) {
                Some(rest) => format!("{rest}{r}"),
                None => v,
            }
        }
        _ if op.starts_with('/') => {
            let (p, r) = split_pattern(&op[1..]);
            if p.is_empty() { v } else { v.replacen(p, r, 1) }
        }
        _ if op.starts_with(':') => {
            let mut parts = op[1..].splitn(2, ':');
            let start: i64 = parse_int(parts.next().unwrap_or(""), body)?;
            let n = chars.len() as i64;
            let start = if start < 0 {
                (n + start).max(0)
            } else {
                start.min(n)
            };
            let end = match parts.next() {
                Some(len) => {
                    let len = parse_int(len, body)?;
                    if len < 0 {
                        (n + len).max(start)
                    } else {
                        (start + len).min(n)
                    }
                }
                None => n,
            };
            chars[start as usize..end as usize].iter().collect()
        }
        _ => return Err(syntax("unsupported operator")),
    };
    Ok(out)
}

fn parse_int(s: &str, body: &str) -> Result<i64, EvalError> {
    s.trim()
        .parse()
        .map_err(|_| EvalError::Syntax(format!("bad substring offset {s:?} in ${{{body}}}")))
}

/// A variable's value: unset is the empty string, or an error in strict mode.
fn value<'a>(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
    strict: bool,
) -> Result<String, EvalError> {
    match lookup(name) {
        Some(v) => Ok(v.to_string()),
        None if strict => Err(EvalError::Unset(name.to_string())),
        None => Ok(String::new()),
    }
}

fn upper_first(chars: &[char]) -> String {
    let mut out: String = chars
        .iter()
        .take(1)
        .flat_map(|c| c.to_uppercase())
        .collect();
    out.extend(chars.iter().skip(1));
    out
}

fn lower_first(chars: &[char]) -> String {
    let mut out: String = chars
        .iter()
        .take(1)
        .flat_map(|c| c.to_lowercase())
        .collect();
    out.extend(chars.iter().skip(1));
    out
}

/// `pattern/replacement` (the replacement may be absent).
fn split_pattern(s: &str) -> (&str, &str) {
    match s.split_once('/') {
        Some((p, r)) => (p, r),
        None => (s, ""),
    }
}

/// Removes the shortest (or longest) prefix of `v` matching the glob `pattern`.
fn trim_prefix(v: &str, pattern: &str, longest: bool) -> String {
    let ends: Vec<usize> = v
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(v.len()))
        .collect();
    let mut candidates: Box<dyn Iterator<Item = &usize>> = if longest {
        Box::new(ends.iter().rev())
    } else {
        Box::new(ends.iter())
    };
    candidates
        .find(|&&i| glob(pattern, &v[..i]))
        .map_or_else(|| v.to_string(), |&i| v[i..].to_string())
}

/// Removes the shortest (or longest) suffix of `v` matching the glob `pattern`.
fn trim_suffix(v: &str, pattern: &str, longest: bool) -> String {
    let starts: Vec<usize> = v
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(v.len()))
        .collect();
    let mut candidates: Box<dyn Iterator<Item = &usize>> = if longest {
        Box::new(starts.iter())
    } else {
        Box::new(starts.iter().rev())
    };
    candidates
        .find(|&&i| glob(pattern, &v[i..]))
        .map_or_else(|| v.to_string(), |&i| v[..i].to_string())
}

/// Whether `s` matches the glob `pattern` (`*` any run, `?` one character).
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(text: &str, strict: bool) -> Result<String, EvalError> {
        let vars: BTreeMap<&str, &str> = [
            ("NAME", "podinfo"),
            ("EMPTY", ""),
            ("PATH_V", "/usr/local/bin"),
            ("FILE", "archive.tar.gz"),
            ("MIXED", "hello World"),
        ]
        .into_iter()
        .collect();
        envsubst(text, &|n| vars.get(n).copied(), strict)
    }

    #[test]
    fn flux_envsubst_functions() {
        let cases = [
            ("${NAME}", "podinfo"),
            ("a-${NAME}-b", "a-podinfo-b"),
            ("${#NAME}", "7"),
            ("${MIXED^}", "Hello World"),
            ("${MIXED^^}", "HELLO WORLD"),
            ("${NAME,}", "podinfo"),
            ("${MIXED,,}", "hello world"),
            ("${NAME:3}", "info"),
            ("${NAME:0:3}", "pod"),
            ("${FILE#*.}", "tar.gz"),
            ("${FILE##*.}", "gz"),
            ("${FILE%.*}", "archive.tar"),
            ("${FILE%%.*}", "archive"),
            ("${UNSET-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${EMPTY:-dflt}", "dflt"),
            ("${UNSET:=dflt}", "dflt"),
            ("${UNSET=dflt}", "dflt"),
            ("${UNSET:-${NAME}}", "podinfo"),
            ("${PATH_V/local/opt}", "/usr/opt/bin"),
            ("${FILE//a/A}", "Archive.tAr.gz"),
            ("${FILE/#arch/ARCH}", "ARCHive.tar.gz"),
            ("${FILE/%gz/bz2}", "archive.tar.bz2"),
            ("$NAME stays", "$NAME stays"),
            ("$${NAME} is literal", "${NAME} is literal"),
            ("cost: $5 and ${NAME}", "cost: $5 and podinfo"),
            ("${UNSET}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(sub(input, false).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn strict_mode_and_syntax_errors() {
        assert_eq!(
            sub("x: ${UNSET}", true),
            Err(EvalError::Unset("UNSET".into()))
        );
        assert_eq!(sub("x: ${UNSET:=ok}", true).unwrap(), "x: ok");
        assert!(matches!(sub("x: ${NAME", false), Err(EvalError::Syntax(_))));
        assert!(matches!(
            sub("${NAME:+x}", false),
            Err(EvalError::Syntax(_))
        ));
        assert!(matches!(sub("${1BAD}", false), Err(EvalError::Syntax(_))));
    }

    #[test]
    fn variable_names_are_checked() {
        assert!(PostBuild::new().vars([("ok_1", "v")]).is_ok());
        let err = PostBuild::new().vars([("bad-name", "v")]).unwrap_err();
        assert!(matches!(err, SubstituteError::InvalidName { .. }), "{err}");
    }
}

/// A [`gitops_core::Renderer`] that runs Flux's post-build substitution after another
/// renderer, as kustomize-controller does after its kustomize build: e.g.
/// `WithPostBuild::new(KustomizeRenderer::new(), PostBuild::new().vars([("CLUSTER", "prod")])?)`.
/// Substitution errors are terminal render errors (bad input until a new revision or new vars).
#[derive(Debug, Clone)]
pub struct WithPostBuild<R> {
    inner: R,
    post_build: PostBuild,
}

impl<R: gitops_core::Renderer> WithPostBuild<R> {
    /// `inner`, followed by `post_build`.
    pub fn new(inner: R, post_build: PostBuild) -> Self {
        WithPostBuild { inner, post_build }
    }

    fn substitute(
        &self,
        objects: Result<Vec<Object>, gitops_core::Error>,
    ) -> Result<Vec<Object>, gitops_core::Error> {
        let mut objects = objects?;
        self.post_build
            .apply(&mut objects)
            .map_err(|e| gitops_core::Error::terminal(gitops_core::Stage::Render, e))?;
        Ok(objects)
    }
}

impl<R: gitops_core::Renderer> gitops_core::Renderer for WithPostBuild<R> {
    fn render(&self, dir: &std::path::Path) -> Result<Vec<Object>, gitops_core::Error> {
        self.substitute(self.inner.render(dir))
    }

    fn render_in(
        &self,
        root: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<Vec<Object>, gitops_core::Error> {
        self.substitute(self.inner.render_in(root, dir))
    }
}
