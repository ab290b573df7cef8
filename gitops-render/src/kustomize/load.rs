//! Kustomization files and the file loader, as kustomize v5.5 reads them.
//!
//! - A folder's kustomization is `kustomization.yaml`, `kustomization.yml` or `Kustomization`
//!   (exactly one of them).
//! - The file is read as `sigs.k8s.io/yaml` reads it: plain scalars typed by YAML 1.1 rules
//!   (`yes`, `on`... are booleans; timestamps stay text).
//! - Fields are decoded strictly: an unknown field is an error (`invalid Kustomization`); fields
//!   of kustomize that this renderer does not implement yet are reported as unsupported rather
//!   than ignored, so a build never silently differs from `kubectl kustomize`.
//! - Files are loaded with kustomize's default `LoadRestrictionsRootOnly`: a file must be in or
//!   below the folder of the kustomization naming it (after resolving symlinks); a base folder
//!   may be anywhere but must not contain a folder already being built (a cycle).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::transform::FieldSpec;
use super::transform::labels::field_specs;
use crate::error::RenderError;
use crate::yaml;

/// The file names kustomize recognises, in its order.
pub(crate) const KUSTOMIZATION_FILE_NAMES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields of kustomize's `Kustomization` that this renderer does not implement yet.
const UNSUPPORTED_FIELDS: &[&str] = &[
    "helmChartInflationGenerator",
    "helmCharts",
    "helmGlobals",
    "validators",
];

/// The file of a folder's kustomization, if it has one.
pub(crate) fn find_kustomization(dir: &Path) -> Result<Option<PathBuf>, RenderError> {
    let mut found = None;
    for name in KUSTOMIZATION_FILE_NAMES {
        let p = dir.join(name);
        if p.is_file() {
            if found.is_some() {
                return Err(RenderError::MultipleKustomizations {
                    dir: dir.to_path_buf(),
                });
            }
            found = Some(p);
        }
    }
    Ok(found)
}

/// kustomize's `GeneratorOptions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GeneratorOptions {
    /// Labels added to generated objects.
    pub labels: BTreeMap<String, String>,
    /// Annotations added to generated objects.
    pub annotations: BTreeMap<String, String>,
    /// Whether the content-hash suffix is left out.
    pub disable_name_suffix_hash: bool,
    /// Whether `immutable: true` is set.
    pub immutable: bool,
}

impl GeneratorOptions {
    /// kustomize's `MergeGlobalOptionsIntoLocal`: local labels and annotations win, a global
    /// `true` wins over a local `false`.
    pub(crate) fn merged(local: Option<&Self>, global: Option<&Self>) -> Option<Self> {
        let Some(global) = global else {
            return local.cloned();
        };
        let mut out = local.cloned().unwrap_or_default();
        for (k, v) in &global.labels {
            out.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &global.annotations {
            out.annotations
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        out.disable_name_suffix_hash |= global.disable_name_suffix_hash;
        out.immutable |= global.immutable;
        Some(out)
    }
}

/// One entry of `configMapGenerator` or `secretGenerator` (kustomize's `GeneratorArgs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GeneratorArgs {
    /// The field path of the entry, for errors (`configMapGenerator[0]`).
    pub field: String,
    /// `name`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
    /// `behavior`: empty or `create`, `merge`, `replace`.
    pub behavior: String,
    /// `literals`: `key=value`.
    pub literals: Vec<String>,
    /// `files`: `path` or `key=path`.
    pub files: Vec<String>,
    /// `envs` (and the deprecated `env`).
    pub envs: Vec<String>,
    /// `options`.
    pub options: Option<GeneratorOptions>,
    /// `type` (secrets only).
    pub secret_type: String,
}

/// The sort order of the output (`sortOptions.order`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum SortOrder {
    /// kustomize's legacy order by kind, the default.
    #[default]
    Legacy,
    /// The legacy order with the kinds of `legacySortOptions` first and last (in place of
    /// kustomize's default lists).
    LegacyCustom {
        /// `orderFirst`.
        first: Vec<String>,
        /// `orderLast`.
        last: Vec<String>,
    },
    /// The order objects were loaded in.
    Fifo,
}

/// A kustomization file, reduced to what this renderer implements.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Kustomization {
    /// The file it was read from (or the file Flux would generate).
    pub file: PathBuf,
    /// `namespace`.
    pub namespace: String,
    /// `resources` followed by the deprecated `bases`.
    pub resources: Vec<String>,
    /// `components`: folders of `kind: Component` kustomizations applied after the generators.
    pub components: Vec<String>,
    /// Whether the file is a `kind: Component`.
    pub is_component: bool,
    /// `configMapGenerator`.
    pub config_map_generator: Vec<GeneratorArgs>,
    /// `secretGenerator`.
    pub secret_generator: Vec<GeneratorArgs>,
    /// `generatorOptions`.
    pub generator_options: Option<GeneratorOptions>,
    /// `transformers`.
    pub transformers: Vec<String>,
    /// `buildMetadata`: `originAnnotations`, `transformerAnnotations`, `managedByLabel` (only
    /// the top kustomization's count: kustomize gives its list to every base and component).
    pub build_metadata: Vec<String>,
    /// `crds`: files of OpenAPI definitions adding field specs for custom types.
    pub crds: Vec<String>,
    /// `generators`: generator configurations (inline YAML, files or folders).
    pub generators: Vec<String>,
    /// `sortOptions.order`.
    pub sort_order: SortOrder,
    /// `namePrefix`.
    pub name_prefix: String,
    /// `nameSuffix`.
    pub name_suffix: String,
    /// `commonLabels`.
    pub common_labels: BTreeMap<String, String>,
    /// `labels`.
    pub labels: Vec<LabelArgs>,
    /// `commonAnnotations`.
    pub common_annotations: BTreeMap<String, String>,
    /// `images` followed by the deprecated `imageTags`.
    pub images: Vec<ImageArgs>,
    /// `replicas`.
    pub replicas: Vec<ReplicaArgs>,
    /// `configurations`: files of field specs merged into the transformer configuration.
    pub configurations: Vec<String>,
    /// `patchesStrategicMerge`: file paths or inline patches.
    pub patches_strategic_merge: Vec<String>,
    /// `patches`.
    pub patches: Vec<super::patch::PatchArgs>,
    /// `patchesJson6902`.
    pub patches_json6902: Vec<super::patch::PatchArgs>,
    /// `vars`.
    pub vars: Vec<super::vars::Var>,
    /// `replacements`.
    pub replacements: Vec<super::transform::replacement::ReplacementEntry>,
}

/// One entry of `labels` (kustomize's `types.Label`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelArgs {
    /// The field path of the entry, for errors (`labels[0]`).
    pub field: String,
    /// `pairs`.
    pub pairs: BTreeMap<String, String>,
    /// `includeSelectors`.
    pub include_selectors: bool,
    /// `includeTemplates`.
    pub include_templates: bool,
    /// `fields`: extra field specs.
    pub fields: Vec<FieldSpec>,
}

/// One entry of `images` (kustomize's `types.Image`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ImageArgs {
    /// The field path of the entry, for errors (`images[0]`).
    pub field: String,
    /// `name`: matched as a regular expression, as kustomize does.
    pub name: String,
    /// `newName`.
    pub new_name: String,
    /// `newTag`.
    pub new_tag: String,
    /// `digest`.
    pub digest: String,
    /// `tagSuffix`.
    pub tag_suffix: String,
}

/// One entry of `replicas` (kustomize's `types.Replica`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ReplicaArgs {
    /// The field path of the entry, for errors (`replicas[0]`).
    pub field: String,
    /// `name`.
    pub name: String,
    /// `count`.
    pub count: i64,
}

struct Fields<'a> {
    file: &'a Path,
}

impl Fields<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> RenderError {
        RenderError::field(self.file, field, message)
    }

    fn string(&self, field: &str, v: &Value) -> Result<String, RenderError> {
        match v {
            Value::Null => Ok(String::new()),
            Value::String(s) => Ok(s.clone()),
            other => Err(self.err(field, format!("expected a string, found {other}"))),
        }
    }

    fn boolean(&self, field: &str, v: &Value) -> Result<bool, RenderError> {
        match v {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            other => Err(self.err(field, format!("expected true or false, found {other}"))),
        }
    }

    fn strings(&self, field: &str, v: &Value) -> Result<Vec<String>, RenderError> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(
                        &format!("{field}[{i}]"),
                        format!("expected a string, found {other}"),
                    )),
                })
                .collect(),
            other => Err(self.err(field, format!("expected a list of strings, found {other}"))),
        }
    }

    fn string_map(&self, field: &str, v: &Value) -> Result<BTreeMap<String, String>, RenderError> {
        match v {
            Value::Null => Ok(BTreeMap::new()),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.string(&format!("{field}.{k}"), v)?)))
                .collect(),
            other => Err(self.err(field, format!("expected a mapping, found {other}"))),
        }
    }

    fn mapping<'v>(
        &self,
        field: &str,
        v: &'v Value,
    ) -> Result<Option<&'v Map<String, Value>>, RenderError> {
        match v {
            Value::Null => Ok(None),
            Value::Object(m) => Ok(Some(m)),
            other => Err(self.err(field, format!("expected a mapping, found {other}"))),
        }
    }

    fn options(&self, field: &str, v: &Value) -> Result<Option<GeneratorOptions>, RenderError> {
        let Some(m) = self.mapping(field, v)? else {
            return Ok(None);
        };
        let mut o = GeneratorOptions::default();
        for (k, v) in m {
            let f = format!("{field}.{k}");
            match k.as_str() {
                "labels" => o.labels = self.string_map(&f, v)?,
                "annotations" => o.annotations = self.string_map(&f, v)?,
                "disableNameSuffixHash" => o.disable_name_suffix_hash = self.boolean(&f, v)?,
                "immutable" => o.immutable = self.boolean(&f, v)?,
                _ => return Err(self.err(&f, "unknown field")),
            }
        }
        Ok(Some(o))
    }

    fn generators(
        &self,
        field: &str,
        v: &Value,
        secret: bool,
    ) -> Result<Vec<GeneratorArgs>, RenderError> {
        let items = match v {
            Value::Null => return Ok(Vec::new()),
            Value::Array(items) => items,
            other => return Err(self.err(field, format!("expected a list, found {other}"))),
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let gfield = format!("{field}[{i}]");
            let Some(m) = self.mapping(&gfield, item)? else {
                continue;
            };
            let mut g = GeneratorArgs {
                field: gfield.clone(),
                ..GeneratorArgs::default()
            };
            let mut env = String::new();
            for (k, v) in m {
                let f = format!("{gfield}.{k}");
                match k.as_str() {
                    "name" => g.name = self.string(&f, v)?,
                    "namespace" => g.namespace = self.string(&f, v)?,
                    "behavior" => g.behavior = self.string(&f, v)?,
                    "literals" => g.literals = self.strings(&f, v)?,
                    "files" => g.files = self.strings(&f, v)?,
                    "envs" => g.envs = self.strings(&f, v)?,
                    "env" => env = self.string(&f, v)?,
                    "options" => g.options = self.options(&f, v)?,
                    "type" if secret => g.secret_type = self.string(&f, v)?,
                    _ => return Err(self.err(&f, "unknown field")),
                }
            }
            if !env.is_empty() {
                g.envs.push(env);
            }
            out.push(g);
        }
        Ok(out)
    }
}

/// The arguments of a builtin `ConfigMapGenerator` or `SecretGenerator` configuration
/// (listed under `generators:`): its fields as in `configMapGenerator` (unknown fields ignored,
/// as `yaml.Unmarshal` does), the name and namespace defaulting to those of its `metadata`.
pub(crate) fn generator_args_from_config(
    obj: &Map<String, Value>,
    file: &Path,
    secret: bool,
) -> Result<GeneratorArgs, RenderError> {
    const KEYS: [&str; 9] = [
        "name",
        "namespace",
        "behavior",
        "literals",
        "files",
        "envs",
        "env",
        "options",
        "type",
    ];
    let args: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| KEYS.contains(&k.as_str()) && (secret || k.as_str() != "type"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let f = Fields { file };
    let field = if secret {
        "SecretGenerator"
    } else {
        "ConfigMapGenerator"
    };
    let mut list = f.generators(field, &Value::Array(vec![Value::Object(args)]), secret)?;
    let mut g = list.pop().unwrap_or_default();
    g.field = field.to_owned();
    let md = obj.get("metadata");
    let text = |k: &str| super::resource::scalar_text(md.and_then(|m| m.get(k)));
    if g.name.is_empty() {
        g.name = text("name");
    }
    if g.namespace.is_empty() {
        g.namespace = text("namespace");
    }
    Ok(g)
}

impl Fields<'_> {
    fn list<'v>(&self, field: &str, v: &'v Value) -> Result<&'v [Value], RenderError> {
        match v {
            Value::Null => Ok(&[]),
            Value::Array(items) => Ok(items),
            other => Err(self.err(field, format!("expected a list, found {other}"))),
        }
    }

    fn labels(&self, field: &str, v: &Value) -> Result<Vec<LabelArgs>, RenderError> {
        let mut out = Vec::new();
        for (i, item) in self.list(field, v)?.iter().enumerate() {
            let lfield = format!("{field}[{i}]");
            let mut l = LabelArgs {
                field: lfield.clone(),
                ..LabelArgs::default()
            };
            if let Some(m) = self.mapping(&lfield, item)? {
                for (k, v) in m {
                    let f = format!("{lfield}.{k}");
                    match k.as_str() {
                        "pairs" => l.pairs = self.string_map(&f, v)?,
                        "includeSelectors" => l.include_selectors = self.boolean(&f, v)?,
                        "includeTemplates" => l.include_templates = self.boolean(&f, v)?,
                        "fields" => l.fields = field_specs(Some(v), self.file, &f)?,
                        _ => return Err(self.err(&f, "unknown field")),
                    }
                }
            }
            out.push(l);
        }
        Ok(out)
    }

    fn images(&self, field: &str, v: &Value) -> Result<Vec<ImageArgs>, RenderError> {
        let mut out = Vec::new();
        for (i, item) in self.list(field, v)?.iter().enumerate() {
            let ifield = format!("{field}[{i}]");
            let mut img = ImageArgs {
                field: ifield.clone(),
                ..ImageArgs::default()
            };
            if let Some(m) = self.mapping(&ifield, item)? {
                for (k, v) in m {
                    let f = format!("{ifield}.{k}");
                    match k.as_str() {
                        "name" => img.name = self.string(&f, v)?,
                        "newName" => img.new_name = self.string(&f, v)?,
                        "newTag" => img.new_tag = self.string(&f, v)?,
                        "digest" => img.digest = self.string(&f, v)?,
                        "tagSuffix" => img.tag_suffix = self.string(&f, v)?,
                        _ => return Err(self.err(&f, "unknown field")),
                    }
                }
            }
            out.push(img);
        }
        Ok(out)
    }

    fn replicas(&self, field: &str, v: &Value) -> Result<Vec<ReplicaArgs>, RenderError> {
        let mut out = Vec::new();
        for (i, item) in self.list(field, v)?.iter().enumerate() {
            let rfield = format!("{field}[{i}]");
            let mut r = ReplicaArgs {
                field: rfield.clone(),
                ..ReplicaArgs::default()
            };
            if let Some(m) = self.mapping(&rfield, item)? {
                for (k, v) in m {
                    let f = format!("{rfield}.{k}");
                    match k.as_str() {
                        "name" => r.name = self.string(&f, v)?,
                        "count" => r.count = int64(self, &f, v)?,
                        _ => return Err(self.err(&f, "unknown field")),
                    }
                }
            }
            out.push(r);
        }
        Ok(out)
    }
}

/// Decodes an integer as Go's `encoding/json` does into an `int64`.
pub(crate) fn int64_value(v: &Value) -> Result<i64, String> {
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("expected an integer, found {n}")),
        other => Err(format!("expected an integer, found {other}")),
    }
}

fn int64(f: &Fields<'_>, field: &str, v: &Value) -> Result<i64, RenderError> {
    int64_value(v).map_err(|m| f.err(field, m))
}

impl Kustomization {
    /// Reads and decodes a kustomization file.
    pub(crate) fn load(file: &Path) -> Result<Self, RenderError> {
        check_size(file)?;
        let text = std::fs::read_to_string(file).map_err(|e| RenderError::io(file, e))?;
        let value =
            yaml::parse_kustomization_document(&text).map_err(|e| RenderError::yaml(file, e))?;
        Self::from_value(file, value.unwrap_or(Value::Null))
    }

    /// Decodes a kustomization from its YAML value.
    pub(crate) fn from_value(file: &Path, value: Value) -> Result<Self, RenderError> {
        let f = Fields { file };
        let map = match value {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(f.err("(root)", format!("expected a mapping, found {other}")));
            }
        };
        let mut k = Kustomization {
            file: file.to_path_buf(),
            ..Kustomization::default()
        };
        let mut bases = Vec::new();
        let mut image_tags = Vec::new();
        let mut kind = String::new();
        let mut api_version = String::new();
        let mut has_content = false;
        for (key, v) in &map {
            if !matches!(key.as_str(), "apiVersion" | "kind") {
                has_content = true;
            }
            match canonical_field(key) {
                "apiVersion" => api_version = f.string(key, v)?,
                "kind" => kind = f.string(key, v)?,
                "metadata" => {
                    f.mapping(key, v)?;
                }
                "namespace" => k.namespace = f.string(key, v)?,
                "resources" => k.resources = f.strings(key, v)?,
                "components" => k.components = f.strings(key, v)?,
                "bases" => bases = f.strings(key, v)?,
                "configMapGenerator" => k.config_map_generator = f.generators(key, v, false)?,
                "secretGenerator" => k.secret_generator = f.generators(key, v, true)?,
                "generatorOptions" => k.generator_options = f.options(key, v)?,
                "transformers" => k.transformers = f.strings(key, v)?,
                "generators" => k.generators = f.strings(key, v)?,
                "crds" => k.crds = f.strings(key, v)?,
                "openapi" => openapi(&f, v)?,
                "buildMetadata" => k.build_metadata = f.strings(key, v)?,
                "sortOptions" => k.sort_order = sort_order(&f, v)?,
                "namePrefix" => k.name_prefix = f.string(key, v)?,
                "nameSuffix" => k.name_suffix = f.string(key, v)?,
                "commonLabels" => k.common_labels = f.string_map(key, v)?,
                "commonAnnotations" => k.common_annotations = f.string_map(key, v)?,
                "labels" => k.labels = f.labels(key, v)?,
                "images" => k.images = f.images(key, v)?,
                "imageTags" => image_tags = f.images(key, v)?,
                "replicas" => k.replicas = f.replicas(key, v)?,
                "configurations" => k.configurations = f.strings(key, v)?,
                "patchesStrategicMerge" => k.patches_strategic_merge = f.strings(key, v)?,
                "patches" => k.patches = super::patch::entries_from(v, file, key)?,
                "patchesJson6902" => k.patches_json6902 = super::patch::entries_from(v, file, key)?,
                "vars" => k.vars = super::vars::vars_from(v, file, key)?,
                "replacements" => {
                    k.replacements =
                        super::transform::replacement::entries_from(v, file, "replacements")?
                }
                other if UNSUPPORTED_FIELDS.contains(&other) => {
                    if !is_empty(v) {
                        return Err(RenderError::unsupported(file, other));
                    }
                }
                _ => return Err(f.err(key, "unknown field (invalid Kustomization)")),
            }
        }
        if !has_content {
            return Err(f.err("(root)", "kustomization.yaml is empty"));
        }
        match kind.as_str() {
            "" | "Kustomization" => {
                if !api_version.is_empty() && api_version != "kustomize.config.k8s.io/v1beta1" {
                    return Err(f.err(
                        "apiVersion",
                        "apiVersion for Kustomization should be kustomize.config.k8s.io/v1beta1",
                    ));
                }
            }
            "Component" => {
                if !api_version.is_empty() && api_version != "kustomize.config.k8s.io/v1alpha1" {
                    return Err(f.err(
                        "apiVersion",
                        "apiVersion for Component should be kustomize.config.k8s.io/v1alpha1",
                    ));
                }
                k.is_component = true;
            }
            _ => {
                return Err(f.err("kind", "kind should be Kustomization or Component"));
            }
        }
        k.resources.extend(bases);
        k.images.extend(image_tags);
        Ok(k)
    }
}

/// The fields of kustomize's `Kustomization` type.
const ALL_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "openapi",
    "namePrefix",
    "nameSuffix",
    "namespace",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "patches",
    "images",
    "imageTags",
    "replacements",
    "replicas",
    "vars",
    "sortOptions",
    "resources",
    "components",
    "crds",
    "bases",
    "configMapGenerator",
    "secretGenerator",
    "helmGlobals",
    "helmCharts",
    "helmChartInflationGenerator",
    "generatorOptions",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "buildMetadata",
];

/// The field a key names: Go's JSON decoding kustomize uses matches field names exactly,
/// else ignoring case (`patchesJSON6902` is `patchesJson6902`).
fn canonical_field(key: &str) -> &str {
    if ALL_FIELDS.contains(&key) {
        return key;
    }
    ALL_FIELDS
        .iter()
        .find(|f| f.to_lowercase() == key.to_lowercase())
        .copied()
        .unwrap_or(key)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(_) => false,
    }
}

/// The kubernetes version of the OpenAPI schema kustomize v5.5 embeds (the one this renderer's
/// strategic-merge schema comes from).
const BUILTIN_OPENAPI_VERSION: &str = "v1.21.2";

/// Checks `openapi` (a `map[string]string`): no `version` or the builtin one is the schema
/// this renderer has; other versions are not built into kustomize either; a custom schema
/// (`path`) is not supported.
fn openapi(f: &Fields<'_>, v: &Value) -> Result<(), RenderError> {
    let m = f.string_map("openapi", v)?;
    let version = m.get("version");
    if m.contains_key("path") {
        return Err(RenderError::unsupported(
            f.file,
            "openapi.path (a custom OpenAPI schema for strategic merge patches)",
        ));
    }
    match version {
        None => Ok(()),
        Some(ver) if ver.is_empty() || ver == BUILTIN_OPENAPI_VERSION => Ok(()),
        Some(_) => Err(f.err(
            "openapi.version",
            format!(
                "the specified OpenAPI version is not built in (kustomize has only \
                 {BUILTIN_OPENAPI_VERSION})"
            ),
        )),
    }
}

fn sort_order(f: &Fields<'_>, v: &Value) -> Result<SortOrder, RenderError> {
    let Some(m) = f.mapping("sortOptions", v)? else {
        return Ok(SortOrder::Legacy);
    };
    let mut order = String::new();
    let mut legacy: Option<(Vec<String>, Vec<String>)> = None;
    for (k, v) in m {
        let field = format!("sortOptions.{k}");
        match k.as_str() {
            "order" => order = f.string(&field, v)?,
            "legacySortOptions" => {
                let Some(lm) = f.mapping(&field, v)? else {
                    continue;
                };
                let mut lists = (Vec::new(), Vec::new());
                for (k, v) in lm {
                    let lf = format!("{field}.{k}");
                    match k.as_str() {
                        "orderFirst" => lists.0 = f.strings(&lf, v)?,
                        "orderLast" => lists.1 = f.strings(&lf, v)?,
                        _ => return Err(f.err(&lf, "unknown field")),
                    }
                }
                legacy = Some(lists);
            }
            _ => return Err(f.err(&field, "unknown field")),
        }
    }
    match (order.as_str(), legacy) {
        ("legacy", None) => Ok(SortOrder::Legacy),
        ("legacy", Some((first, last))) => Ok(SortOrder::LegacyCustom { first, last }),
        ("fifo", None) => Ok(SortOrder::Fifo),
        ("fifo", Some(_)) => Err(f.err(
            "sortOptions.legacySortOptions",
            "the field 'sortOptions.legacySortOptions' is set but the selected sort order is \
             'fifo', not 'legacy'",
        )),
        _ => Err(f.err(
            "sortOptions.order",
            "the field 'sortOptions.order' must be one of [fifo, legacy]",
        )),
    }
}

/// kustomize's file loader for one kustomization folder (`api/internal/loader`).
#[derive(Debug, Clone)]
pub(crate) struct Loader {
    /// The folder, symlinks resolved.
    pub root: PathBuf,
    /// The folders of the kustomizations that led here, to detect cycles.
    ancestors: Vec<PathBuf>,
    /// With `buildMetadata`, the folder's path from the top kustomization's folder as kustomize
    /// tracks origins (the entries joined and cleaned lexically, `""` at the top).
    pub origin: Option<String>,
    /// The folder no base may leave (the artifact's root), symlinks resolved.
    boundary: Option<std::sync::Arc<PathBuf>>,
}

/// Fails when `file` is larger than [`crate::MAX_FILE_BYTES`].
pub(crate) fn check_size(file: &Path) -> Result<(), RenderError> {
    let size = std::fs::metadata(file)
        .map_err(|e| RenderError::io(file, e))?
        .len();
    if size > crate::MAX_FILE_BYTES {
        return Err(RenderError::TooLarge {
            file: file.to_path_buf(),
            size,
            limit: crate::MAX_FILE_BYTES,
        });
    }
    Ok(())
}

/// Go's `filepath.Join`: the non-empty elements joined with `/` and cleaned lexically.
pub(crate) fn join_clean(a: &str, b: &str) -> String {
    let joined = match (a.is_empty(), b.is_empty()) {
        (true, true) => return String::new(),
        (true, false) => b.to_owned(),
        (false, true) => a.to_owned(),
        (false, false) => format!("{a}/{b}"),
    };
    let rooted = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&p) if p != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

fn is_remote(path: &str) -> bool {
    path.contains("://") || path.starts_with("github.com/") || path.starts_with("git@")
}

impl Loader {
    /// A loader at the folder being built.
    pub(crate) fn new(dir: &Path) -> Result<Self, RenderError> {
        let root = dir.canonicalize().map_err(|e| RenderError::io(dir, e))?;
        if !root.is_dir() {
            return Err(RenderError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        Ok(Loader {
            root,
            ancestors: Vec::new(),
            origin: None,
            boundary: None,
        })
    }

    /// A loader at `dir` whose bases must all stay inside `boundary` (the artifact's root).
    pub(crate) fn new_within(boundary: &Path, dir: &Path) -> Result<Self, RenderError> {
        let mut loader = Loader::new(dir)?;
        let boundary = boundary
            .canonicalize()
            .map_err(|e| RenderError::io(boundary, e))?;
        if !loader.root.starts_with(&boundary) {
            return Err(RenderError::Restricted {
                file: loader.root.clone(),
                path: dir.display().to_string(),
                message: format!("the folder is not inside the root '{}'", boundary.display()),
            });
        }
        loader.boundary = Some(std::sync::Arc::new(boundary));
        Ok(loader)
    }

    /// The loader of a base folder `rel` named in `kfile`.
    pub(crate) fn child(&self, rel: &str, kfile: &Path, dir: PathBuf) -> Result<Self, RenderError> {
        if Path::new(rel).is_absolute() {
            return Err(RenderError::Restricted {
                file: kfile.to_path_buf(),
                path: rel.to_owned(),
                message: "new root cannot be absolute".into(),
            });
        }
        let root = dir.canonicalize().map_err(|e| RenderError::io(&dir, e))?;
        for visited in std::iter::once(&self.root).chain(&self.ancestors) {
            if visited.starts_with(&root) {
                return Err(RenderError::Restricted {
                    file: kfile.to_path_buf(),
                    path: rel.to_owned(),
                    message: format!(
                        "cycle detected: candidate root '{}' contains visited root '{}'",
                        root.display(),
                        visited.display()
                    ),
                });
            }
        }
        if let Some(boundary) = &self.boundary
            && !root.starts_with(boundary.as_path())
        {
            return Err(RenderError::Restricted {
                file: kfile.to_path_buf(),
                path: rel.to_owned(),
                message: format!(
                    "'{}' is outside the artifact root '{}'",
                    root.display(),
                    boundary.display()
                ),
            });
        }
        let mut ancestors = self.ancestors.clone();
        ancestors.push(self.root.clone());
        let origin = self.origin.as_deref().map(|o| join_clean(o, rel));
        Ok(Loader {
            root,
            ancestors,
            origin,
            boundary: self.boundary.clone(),
        })
    }

    /// Resolves `rel` (named in `kfile`) to a path below the root, as `RestrictionRootOnly` does.
    pub(crate) fn resolve(&self, rel: &str, kfile: &Path) -> Result<PathBuf, RenderError> {
        if is_remote(rel) {
            return Err(RenderError::unsupported(
                kfile,
                format!("remote resource {rel}"),
            ));
        }
        let joined = self.root.join(rel);
        let real = joined.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RenderError::Missing {
                    file: kfile.to_path_buf(),
                    entry: rel.to_owned(),
                    path: joined.clone(),
                }
            } else {
                RenderError::io(&joined, e)
            }
        })?;
        let dir_ok = real.parent().is_some_and(|p| p.starts_with(&self.root));
        if !dir_ok {
            return Err(RenderError::Restricted {
                file: kfile.to_path_buf(),
                path: rel.to_owned(),
                message: format!(
                    "security; file '{}' is not in or below '{}'",
                    real.display(),
                    self.root.display()
                ),
            });
        }
        Ok(real)
    }

    /// Reads the file `rel` named in `kfile`.
    pub(crate) fn read(&self, rel: &str, kfile: &Path) -> Result<(PathBuf, Vec<u8>), RenderError> {
        let path = self.resolve(rel, kfile)?;
        check_size(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| RenderError::io(&path, e))?;
        Ok((path, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_paths_join_like_go() {
        assert_eq!(join_clean("", "cm.yaml"), "cm.yaml");
        assert_eq!(join_clean("", "../base"), "../base");
        assert_eq!(join_clean("../base", "./cm.yaml"), "../base/cm.yaml");
        assert_eq!(join_clean("a/b", "../../../c"), "../c");
        assert_eq!(join_clean("a", ".."), ".");
        assert_eq!(join_clean("a//b/", "c/"), "a/b/c");
        assert_eq!(join_clean("", ""), "");
    }

    #[test]
    fn components_and_their_api_version() {
        let file = Path::new("kustomization.yaml");
        let c = serde_json::json!({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "components": ["../x"],
        });
        let k = Kustomization::from_value(file, c).unwrap();
        assert!(k.is_component);
        assert_eq!(k.components, vec!["../x".to_owned()]);
        let bad = serde_json::json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Component",
            "namePrefix": "p-",
        });
        let err = Kustomization::from_value(file, bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("apiVersion for Component should be"), "{err}");
    }
}
