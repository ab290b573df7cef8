//! `images`: kustomize's builtin `ImageTagTransformer` (`api/filters/imagetag`), also
//! configured under `transformers:` (`imageTag`, `fieldSpecs`).
//!
//! Each entry runs two passes over every object except CustomResourceDefinitions:
//!
//! 1. the legacy pass: anywhere in the object, each element of a `containers` or
//!    `initContainers` sequence has its `image` updated;
//! 2. the field specs (`spec/containers[]/image`... by default) are updated again.
//!
//! An image matches when it is the entry's `name` (read as a regular expression, as kustomize
//! does) followed by an optional `:tag` and an optional `@sha256:digest`. The new value keeps
//! the parts the entry does not replace: `newName` replaces the name; `newTag` and `digest`
//! replace the tag and digest (setting one alone drops the other); `tagSuffix` (when neither
//! is set) is appended to the tag.

use std::path::Path;

use regex::Regex;
use serde_json::{Map, Value};

use super::{FieldSpec, apply_field_spec};
use crate::error::RenderError;
use crate::kustomize::load::ImageArgs;
use crate::kustomize::resource::ResMap;

/// One configured image update.
pub(crate) struct ImageUpdate<'a> {
    args: &'a ImageArgs,
    pattern: Regex,
}

/// kustomize's `image.Split`: name, tag and digest of an image reference.
pub(crate) fn split(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|&i| i > 0).unwrap_or(0);
    let search = &image[slash..];
    let at = search.find('@').map(|i| i + slash);
    let colon = search.find(':').map(|i| i + slash);
    match (colon, at) {
        (None, None) => (image.to_owned(), String::new(), String::new()),
        (Some(c), Some(a)) if c < a => (
            image[..c].to_owned(),
            image[c + 1..a].to_owned(),
            image[a + 1..].to_owned(),
        ),
        (_, Some(a)) => (
            image[..a].to_owned(),
            String::new(),
            image[a + 1..].to_owned(),
        ),
        (Some(c), None) => (
            image[..c].to_owned(),
            image[c + 1..].to_owned(),
            String::new(),
        ),
    }
}

impl<'a> ImageUpdate<'a> {
    /// Compiles the entry's name pattern; `file` names the kustomization on errors.
    pub(crate) fn new(args: &'a ImageArgs, file: &Path) -> Result<Self, RenderError> {
        let pattern = Regex::new(&format!(
            "^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$",
            args.name
        ))
        .map_err(|e| {
            RenderError::field(
                file,
                format!("{}.name", args.field),
                format!(
                    "not a valid pattern (kustomize matches names as regular expressions): {e}"
                ),
            )
        })?;
        Ok(ImageUpdate { args, pattern })
    }

    /// The updated image, if `image` matches.
    fn update(&self, image: &str) -> Option<String> {
        if !self.pattern.is_match(image) {
            return None;
        }
        let a = self.args;
        let (mut name, mut tag, mut digest) = split(image);
        if !a.new_name.is_empty() {
            name = a.new_name.clone();
        }
        if !a.new_tag.is_empty() && !a.digest.is_empty() {
            tag = a.new_tag.clone();
            digest = a.digest.clone();
        } else if !a.new_tag.is_empty() {
            tag = a.new_tag.clone();
            digest.clear();
        } else if !a.digest.is_empty() {
            tag.clear();
            digest = a.digest.clone();
        } else if !a.tag_suffix.is_empty() {
            tag.push_str(&a.tag_suffix);
            digest.clear();
        }
        if !tag.is_empty() {
            name = format!("{name}:{tag}");
        }
        if !digest.is_empty() {
            name = format!("{name}@{digest}");
        }
        Some(name)
    }

    fn set(&self, node: &mut Value) -> Result<(), String> {
        let text = match node {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            _ => return Err("wrong node kind: expected ScalarNode".into()),
        };
        if let Some(new) = self.update(&text) {
            *node = Value::String(new);
        }
        Ok(())
    }

    /// The legacy pass: children first, then `containers`/`initContainers` sequences.
    fn legacy(&self, node: &mut Value) -> Result<(), String> {
        match node {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    self.legacy(value)?;
                    if (key == "containers" || key == "initContainers")
                        && let Value::Array(items) = value
                    {
                        for item in items {
                            match item {
                                Value::Object(c) => {
                                    if let Some(image) = c.get_mut("image") {
                                        self.set(image)?;
                                    }
                                }
                                Value::Null => {}
                                _ => {
                                    return Err(format!(
                                        "an element of {key} is not a mapping (wrong node kind)"
                                    ));
                                }
                            }
                        }
                    }
                }
                Ok(())
            }
            Value::Array(items) => items.iter_mut().try_for_each(|i| self.legacy(i)),
            _ => Ok(()),
        }
    }

    /// Updates the images in every resource of `m`.
    pub(crate) fn apply(
        &self,
        m: &mut ResMap,
        field_specs: &[FieldSpec],
    ) -> Result<(), RenderError> {
        for r in &mut m.resources {
            if r.kind() == "CustomResourceDefinition" {
                continue;
            }
            let mut root = Value::Object(std::mem::take(&mut r.obj));
            let result = self.legacy(&mut root);
            if let Value::Object(obj) = root {
                r.obj = obj;
            }
            result.map_err(|message| RenderError::InvalidObject {
                file: r.source.as_ref().clone(),
                object: r.describe(),
                field: "image".into(),
                message,
            })?;
        }
        for r in &mut m.resources {
            if r.kind() == "CustomResourceDefinition" {
                continue;
            }
            for fs in field_specs {
                // Sequences are never created, so nothing on these paths is either.
                apply_field_spec(r, fs, None, &mut |node: &mut Value| self.set(node))?;
            }
        }
        Ok(())
    }
}

/// Reads an `ImageTagTransformer` configuration (`imageTag`, `fieldSpecs`).
pub(crate) fn from_config(
    obj: &Map<String, Value>,
    file: &Path,
) -> Result<(ImageArgs, Vec<FieldSpec>), RenderError> {
    let mut args = ImageArgs {
        field: "imageTag".into(),
        ..ImageArgs::default()
    };
    match obj.get("imageTag") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => {
                        return Err(RenderError::field(
                            file,
                            format!("imageTag.{k}"),
                            format!("expected a string, found {other}"),
                        ));
                    }
                };
                match k.as_str() {
                    "name" => args.name = s,
                    "newName" => args.new_name = s,
                    "newTag" => args.new_tag = s,
                    "digest" => args.digest = s,
                    "tagSuffix" => args.tag_suffix = s,
                    _ => {}
                }
            }
        }
        Some(other) => {
            return Err(RenderError::field(
                file,
                "imageTag",
                format!("expected a mapping, found {other}"),
            ));
        }
    }
    let specs = super::labels::field_specs(obj.get("fieldSpecs"), file, "fieldSpecs")?;
    Ok((args, specs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_kustomize() {
        let s = |i: &str| {
            let (n, t, d) = split(i);
            (n, t, d)
        };
        assert_eq!(s("nginx"), ("nginx".into(), "".into(), "".into()));
        assert_eq!(s("nginx:1.2"), ("nginx".into(), "1.2".into(), "".into()));
        assert_eq!(
            s("localhost:5000/app:v1@sha256:ab"),
            ("localhost:5000/app".into(), "v1".into(), "sha256:ab".into())
        );
        assert_eq!(
            s("gcr.io/x/app@sha256:ab"),
            ("gcr.io/x/app".into(), "".into(), "sha256:ab".into())
        );
    }
}
