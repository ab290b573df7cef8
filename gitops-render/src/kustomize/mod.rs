//! The kustomize build, in the order kustomize v5.5 runs it (`api/krusty`, `api/internal/target`):
//!
//! 1. accumulate the kustomization's `resources` (files, and base folders built recursively),
//!    then its generators (`configMapGenerator`, `secretGenerator`), then run its transformers
//!    (`patchesStrategicMerge`, `patches`, `namespace`, `namePrefix`/`nameSuffix`,
//!    `labels`/`commonLabels`, `commonAnnotations`, `patchesJson6902`, `replicas`, `images`,
//!    `replacements`,
//!    then the configurations listed under `transformers:`), with the field specs of the
//!    defaults, its `configurations` and those of its bases;
//! 2. at the top only: add the content-hash suffix to generated names and rewrite the
//!    references to renamed objects;
//! 3. sort (legacy order unless `sortOptions` says `fifo`);
//! 4. rewrite annotations as kustomize does when it drops its build annotations, and put keys
//!    in the order `kubectl kustomize` prints them.

pub(crate) mod generator;
pub(crate) mod load;
pub(crate) mod order;
pub(crate) mod patch;
pub(crate) mod resource;
pub(crate) mod transform;
pub(crate) mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::RenderError;
use crate::yaml;
use load::{Kustomization, Loader, SortOrder, find_kustomization};
use resource::{ResMap, Resource, objects_from_bytes, scalar_text};
use transform::config::TransformerConfig;
use transform::labels::LabelTransformer;

/// kustomize's annotation marking objects that are not output (`konfig.IgnoredByKustomizeAnnotation`).
const LOCAL_CONFIG: &str = "config.kubernetes.io/local-config";

/// Annotations kustomize removes before printing: its build annotations
/// (`resource.BuildAnnotations`), the origin and the transformations annotations.
const BUILD_ANNOTATIONS: &[&str] = &[
    "internal.config.kubernetes.io/previousKinds",
    "internal.config.kubernetes.io/previousNames",
    "internal.config.kubernetes.io/prefixes",
    "internal.config.kubernetes.io/suffixes",
    "internal.config.kubernetes.io/previousNamespaces",
    "internal.config.kubernetes.io/allowNameChange",
    "internal.config.kubernetes.io/allowKindChange",
    "internal.config.kubernetes.io/refBy",
    "internal.config.kubernetes.io/generatorBehavior",
    "internal.config.kubernetes.io/needsHashSuffix",
    "internal.config.kubernetes.io/path",
    "internal.config.kubernetes.io/index",
    "internal.config.kubernetes.io/seqindent",
    "internal.config.kubernetes.io/id",
    "internal.config.kubernetes.io/annotations-migration-resource-id",
    "config.kubernetes.io/path",
    "config.kubernetes.io/index",
    "config.k8s.io/id",
    "config.kubernetes.io/origin",
    "alpha.config.kubernetes.io/transformations",
];

/// Builds the folder `dir`: its kustomization, or (without one) the kustomization Flux's
/// kustomize-controller generates. Returns the objects in output order, keys sorted.
pub(crate) fn build(dir: &Path) -> Result<Vec<Map<String, Value>>, RenderError> {
    let loader = Loader::new(dir)?;
    let kustomization = match find_kustomization(&loader.root)? {
        Some(file) => Kustomization::load(&file)?,
        None => crate::plain::generated_kustomization(&loader.root)?,
    };
    let mut m = accumulate(&kustomization, &loader)?;
    for r in &mut m.resources {
        if r.needs_hash {
            let hash = generator::content_hash(r);
            r.store_previous_id();
            let name = format!("{}-{hash}", r.name());
            r.set_name(name);
        }
    }
    transform::nameref::fix_references(&mut m)?;
    vars::resolve(&mut m, &kustomization.file)?;
    // kustomize's `IgnoreLocal`: objects annotated as local configuration are not output.
    let resources: Vec<Resource> = m
        .resources
        .into_iter()
        .filter(|r| {
            let md = r.obj.get("metadata");
            let local = md
                .and_then(|m| m.get("annotations"))
                .and_then(|a| a.get(LOCAL_CONFIG));
            local.is_none_or(|v| scalar_text(Some(v)) == "false")
        })
        .collect();
    let resources = match kustomization.sort_order {
        SortOrder::Legacy => order::legacy_sort(resources),
        SortOrder::Fifo => resources,
    };
    resources.into_iter().map(finalize).collect()
}

/// kustomize's `accumulateTarget` for one kustomization.
fn accumulate(k: &Kustomization, loader: &Loader) -> Result<ResMap, RenderError> {
    let mut m = accumulate_resources(&k.resources, k, loader)?;
    let config = load_configurations(k, loader)?;
    m.config
        .merge(&config)
        .map_err(|e| RenderError::field(&k.file, "configurations", e))?;
    for r in generator::generate(k, loader)? {
        m.append(r)?;
    }
    if !k.patches_strategic_merge.is_empty() {
        patch::apply_strategic_merge(&mut m, &k.patches_strategic_merge, loader, &k.file)?;
    }
    for p in &k.patches {
        patch::apply_patch(&mut m, p, loader, &k.file)?;
    }
    if !k.namespace.is_empty() {
        transform::namespace::apply(&mut m, &k.namespace)?;
    }
    transform::builtin::names_and_metadata(k, &mut m)?;
    for p in &k.patches_json6902 {
        patch::apply_json6902(&mut m, p, loader, &k.file)?;
    }
    transform::builtin::replicas_and_images(k, &mut m)?;
    if !k.replacements.is_empty() {
        let list = transform::replacement::resolve_entries(&k.replacements, loader, &k.file)?;
        transform::replacement::apply(&mut m, &list, &k.file)?;
    }
    run_transformers(k, loader, &mut m)?;
    vars::merge_vars(&mut m, &k.vars, &k.file)?;
    Ok(m)
}

/// kustomize's `MakeTransformerConfig`: the defaults merged with the `configurations` files.
fn load_configurations(
    k: &Kustomization,
    loader: &Loader,
) -> Result<TransformerConfig, RenderError> {
    let mut config = TransformerConfig::defaults();
    for (i, rel) in k.configurations.iter().enumerate() {
        let (path, bytes) = loader.read(rel, &k.file)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            RenderError::field(
                &k.file,
                format!("configurations[{i}]"),
                "the file is not UTF-8 text",
            )
        })?;
        let c = TransformerConfig::from_file(&text, &path)?;
        config
            .merge(&c)
            .map_err(|e| RenderError::field(&k.file, format!("configurations[{i}]"), e))?;
    }
    Ok(config)
}

/// kustomize's `accumulateResources`: each entry is a file of manifests or a base folder.
fn accumulate_resources(
    paths: &[String],
    k: &Kustomization,
    loader: &Loader,
) -> Result<ResMap, RenderError> {
    let mut m = ResMap::default();
    for rel in paths {
        let joined = loader.root.join(rel);
        if joined.is_dir() {
            let child = loader.child(rel, &k.file, joined)?;
            let file = find_kustomization(&child.root)?.ok_or_else(|| {
                RenderError::MissingKustomization {
                    dir: child.root.clone(),
                }
            })?;
            let sub = Kustomization::load(&file)?;
            let mut sub_m = accumulate(&sub, &child)?;
            m.config
                .merge(&sub_m.config)
                .map_err(|e| RenderError::field(&sub.file, "configurations", e))?;
            let sub_vars = std::mem::take(&mut sub_m.vars);
            m.append_all(sub_m)?;
            for v in sub_vars.into_values() {
                vars::merge_one(&mut m.vars, v)
                    .map_err(|e| RenderError::field(&sub.file, "vars", e))?;
            }
        } else {
            let (path, bytes) = loader.read(rel, &k.file)?;
            let source = Arc::new(path);
            for (obj, empty_nulls) in resource::objects_with_empty_nulls(&bytes, &source)? {
                let mut r = Resource::new(obj, source.clone());
                r.empty_nulls = empty_nulls;
                m.append(r)?;
            }
        }
    }
    Ok(m)
}

/// Loads the configurations listed under `transformers:` (inline YAML, files or folders) and
/// applies them: the inline ones in order, then those of files and folders in order.
fn run_transformers(k: &Kustomization, loader: &Loader, m: &mut ResMap) -> Result<(), RenderError> {
    // kustomize takes the inline configurations first, then loads the files and folders.
    let mut configs: Vec<(Map<String, Value>, PathBuf)> = Vec::new();
    let (inline, paths): (Vec<&String>, Vec<&String>) =
        k.transformers.iter().partition(|e| e.contains('\n'));
    for entry in inline {
        for obj in objects_from_bytes(entry.as_bytes(), &k.file)? {
            configs.push((obj, k.file.clone()));
        }
    }
    for entry in paths {
        let loaded = accumulate_resources(std::slice::from_ref(entry), k, loader)?;
        for r in loaded.resources {
            configs.push((r.obj, r.source.as_ref().clone()));
        }
    }
    for (obj, file) in configs {
        let api_version = scalar_text(obj.get("apiVersion"));
        let kind = scalar_text(obj.get("kind"));
        if api_version != "builtin" {
            return Err(RenderError::unsupported(
                &file,
                format!("transformers: {api_version} {kind} (transformer plugins)"),
            ));
        }
        match kind.as_str() {
            "LabelTransformer" => LabelTransformer::from_config(&obj, &file)?.apply(m)?,
            "AnnotationsTransformer" => {
                let t = LabelTransformer::annotations_from_config(&obj, &file)?;
                transform::labels::set_entries(m, &t.labels, &t.field_specs, "annotations")?;
            }
            "PrefixTransformer" | "SuffixTransformer" | "PrefixSuffixTransformer" => {
                for (end, affix, specs) in transform::prefix::from_config(&obj, &file, &kind)? {
                    transform::prefix::apply(m, end, &affix, &specs)?;
                }
            }
            "ImageTagTransformer" => {
                let (args, specs) = transform::images::from_config(&obj, &file)?;
                transform::images::ImageUpdate::new(&args, &file)?.apply(m, &specs)?;
            }
            "NamespaceTransformer" => {
                let (ns, specs, unset_only, mode) = transform::namespace::from_config(&obj, &file)?;
                transform::namespace::apply_with(m, &ns, &specs, unset_only, mode)?;
            }
            "ReplicaCountTransformer" => {
                let (args, specs) = transform::replicas::from_config(&obj, &file)?;
                transform::replicas::apply(m, &args, &specs, &file)?;
            }
            "ReplacementTransformer" => {
                let entries = match obj.get("replacements") {
                    Some(v) => transform::replacement::entries_from(v, &file, "replacements")?,
                    None => Vec::new(),
                };
                let list = transform::replacement::resolve_entries(&entries, loader, &file)?;
                transform::replacement::apply(m, &list, &file)?;
            }
            "PatchTransformer" | "PatchStrategicMergeTransformer" | "PatchJson6902Transformer" => {
                patch::run_builtin(&obj, &file, loader, m)?
            }
            other => {
                return Err(RenderError::unsupported(
                    &file,
                    format!("transformers: builtin {other}"),
                ));
            }
        }
    }
    Ok(())
}

/// The text kustomize keeps for an annotation value (`GetValue` of the node).
fn annotation_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => scalar_text(Some(v)),
        _ => String::new(),
    }
}

/// What kustomize does to each object before printing it: annotations are read as a
/// `map[string]string`, stripped of kustomize's build annotations and written back (keys typed
/// again as plain scalars, values as strings, an empty map removed), and keys are put in
/// yaml.v2's order.
fn finalize(r: Resource) -> Result<Map<String, Value>, RenderError> {
    let source = r.source.clone();
    let describe = r.describe();
    let mut obj = r.obj;
    if let Some(Value::Object(md)) = obj.get_mut("metadata") {
        let keep = match md.get_mut("annotations") {
            None => true,
            Some(Value::Object(a)) if !a.is_empty() => {
                for key in BUILD_ANNOTATIONS {
                    a.remove(*key);
                }
                for (k, v) in a.iter_mut() {
                    if !yaml::plain_key_is_string(k) {
                        return Err(RenderError::InvalidObject {
                            file: source.as_ref().clone(),
                            object: describe,
                            field: format!("metadata.annotations.{k}"),
                            message: "the key is not a string once written plain \
                                      (kustomize's JSON conversion fails on it)"
                                .into(),
                        });
                    }
                    if !v.is_string() {
                        *v = Value::String(annotation_text(v));
                    }
                }
                !a.is_empty()
            }
            Some(_) => false,
        };
        if !keep {
            md.remove("annotations");
        }
    }
    let mut v = Value::Object(obj);
    yaml::sort_keys(&mut v);
    match v {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

/// Prints objects as `kubectl kustomize` does: each as a YAML document, separated by `---`.
pub(crate) fn to_yaml<'a>(objects: impl IntoIterator<Item = &'a Map<String, Value>>) -> String {
    let mut out = String::new();
    for (i, obj) in objects.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        yaml::Emitter::new(&mut out).document_map(obj);
    }
    out
}
