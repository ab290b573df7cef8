//! The kustomize build, in the order kustomize v5.5 runs it (`api/krusty`, `api/internal/target`):
//!
//! 1. accumulate the kustomization's `resources` (files, and base folders built recursively),
//!    then its generators (`configMapGenerator`, `secretGenerator`; `behavior: merge` or
//!    `replace` folds an object into the one of that id), then its `components` (each a
//!    `kind: Component` accumulated onto the same objects, recursively), then run its transformers
//!    (`patchesStrategicMerge`, `patches`, `namespace`, `namePrefix`/`nameSuffix`,
//!    `labels`/`commonLabels`, `commonAnnotations`, `patchesJson6902`, `replicas`, `images`,
//!    `replacements`,
//!    then the configurations listed under `transformers:`), with the field specs of the
//!    defaults, its `configurations` and those of its bases;
//! 2. at the top only: add the content-hash suffix to generated names and rewrite the
//!    references to renamed objects;
//! 3. sort (legacy order unless `sortOptions` says `fifo`);
//! 4. rewrite annotations as kustomize does when it drops its build annotations (adding the
//!    origin and transformations annotations and the managed-by label the top kustomization's
//!    `buildMetadata` asks for), and put keys in the order `kubectl kustomize` prints them.

pub(crate) mod crds;
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
use crate::overlay::Overlay;
use crate::yaml;
use load::{Kustomization, Loader, SortOrder, find_kustomization, join_clean};
use resource::{Origin, ResMap, Resource, objects_from_bytes, scalar_text};
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
/// kustomize-controller generates, with `overlay` merged into it. Returns the objects in output
/// order, keys sorted.
pub(crate) fn build_overlaid(
    dir: &Path,
    overlay: &Overlay,
) -> Result<Vec<Map<String, Value>>, RenderError> {
    build_with(Loader::new(dir)?, overlay)
}

/// [`build_overlaid`], with every base inside `root` (the artifact's root).
pub(crate) fn build_within_overlaid(
    root: &Path,
    dir: &Path,
    overlay: &Overlay,
) -> Result<Vec<Map<String, Value>>, RenderError> {
    build_with(Loader::new_within(root, dir)?, overlay)
}

fn build_with(loader: Loader, overlay: &Overlay) -> Result<Vec<Map<String, Value>>, RenderError> {
    let mut loader = loader;
    let mut kustomization = match find_kustomization(&loader.root)? {
        Some(file) => Kustomization::load(&file)?,
        None => crate::plain::generated_kustomization(&loader.root)?,
    };
    if !overlay.is_empty() {
        // kustomize-controller's generator merges the Kustomization's fields into the
        // kustomization file (or the one it generates) before the build.
        overlay.merge_into(&mut kustomization, &loader.root)?;
    }
    let build_metadata = &kustomization.build_metadata;
    if !build_metadata.is_empty() {
        loader.origin = Some(String::new());
    }
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
    let resources = match &kustomization.sort_order {
        SortOrder::Legacy => order::legacy_sort(resources),
        SortOrder::LegacyCustom { first, last } => order::legacy_sort_with(resources, first, last),
        SortOrder::Fifo => resources,
    };
    let wants = |option: &str| build_metadata.iter().any(|o| o == option);
    let (origins, transformations) = (wants("originAnnotations"), wants("transformerAnnotations"));
    let managed_by = wants("managedByLabel");
    resources
        .into_iter()
        .map(|mut r| {
            let mut extra = Vec::new();
            if origins && let Some(o) = &r.origin {
                extra.push((ORIGIN_ANNOTATION, yaml_text(&o.to_value())));
            }
            if transformations && !r.transformations.is_empty() {
                let list = r.transformations.iter().map(Origin::to_value).collect();
                extra.push((TRANSFORMATIONS_ANNOTATION, yaml_text(&Value::Array(list))));
            }
            if managed_by {
                add_managed_by_label(&mut r)?;
            }
            finalize(r, extra)
        })
        .collect()
}

/// The annotation of an object's origin (`buildMetadata: [originAnnotations]`).
const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
/// The annotation listing the transformers run (`buildMetadata: [transformerAnnotations]`).
const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";
/// The label `buildMetadata: [managedByLabel]` adds, and its value in `kubectl kustomize`
/// (whose kustomize has no release version: `kustomize-(devel)`).
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kustomize-(devel)");

/// A value as kyaml's `Marshal` prints it.
fn yaml_text(v: &Value) -> String {
    let mut out = String::new();
    yaml::Emitter::new(&mut out).document(v);
    out
}

/// kustomize's `managedByLabel`: a `LabelTransformer` on `metadata/labels`.
fn add_managed_by_label(r: &mut Resource) -> Result<(), RenderError> {
    let describe = r.describe();
    let source = r.source.as_ref().clone();
    let md = r.metadata_mut();
    let labels = md
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if labels.is_null() {
        *labels = Value::Object(Map::new());
    }
    match labels {
        Value::Object(l) => {
            l.insert(MANAGED_BY.0.into(), Value::String(MANAGED_BY.1.into()));
            Ok(())
        }
        _ => Err(RenderError::InvalidObject {
            file: source,
            object: describe,
            field: "metadata.labels".into(),
            message: "cannot add the managed-by label: the field is not a mapping".into(),
        }),
    }
}

/// The origin of the builtin generator or transformer `kind` configured by `k` (with
/// `buildMetadata`).
fn builtin_origin(k: &Kustomization, loader: &Loader, kind: &str) -> Option<Origin> {
    let o = loader.origin.as_deref()?;
    let name = k
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(Origin::builtin(join_clean(o, &name), kind))
}

/// kustomize's `accumulateTarget` for one kustomization.
fn accumulate(k: &Kustomization, loader: &Loader) -> Result<ResMap, RenderError> {
    accumulate_into(ResMap::default(), k, loader)
}

/// kustomize's `accumulateTarget` on the map `m`: empty for a kustomization, the accumulated
/// resources of the including kustomization for a component (whose resources, generators and
/// transformers then apply to those too).
fn accumulate_into(
    mut m: ResMap,
    k: &Kustomization,
    loader: &Loader,
) -> Result<ResMap, RenderError> {
    // A component's includer may have renamed objects since its last append.
    m.reindex();
    accumulate_resources(&mut m, &k.resources, k, loader)?;
    let config = load_configurations(k, loader)?;
    m.config
        .merge(&config)
        .map_err(|e| RenderError::field(&k.file, "configurations", e))?;
    let crd_config = crds::load(k, loader)?;
    m.config
        .merge(&crd_config)
        .map_err(|e| RenderError::field(&k.file, "crds", e))?;
    for mut r in generator::generate(k, loader)? {
        if r.origin.is_none() {
            r.origin = builtin_origin(k, loader, &format!("{}Generator", r.kind()));
        }
        m.absorb(r, &k.file)?;
    }
    run_generators(k, loader, &mut m)?;
    for (i, rel) in k.components.iter().enumerate() {
        m = accumulate_component(m, rel, i, k, loader)?;
    }
    let mut note = |m: &mut ResMap, kind: &str| {
        if let Some(o) = builtin_origin(k, loader, kind) {
            m.note_transformer(&o);
        }
    };
    if !k.patches_strategic_merge.is_empty() {
        patch::apply_strategic_merge(&mut m, &k.patches_strategic_merge, loader, &k.file)?;
        note(&mut m, "PatchStrategicMergeTransformer");
    }
    for p in &k.patches {
        patch::apply_patch(&mut m, p, loader, &k.file)?;
        note(&mut m, "PatchTransformer");
    }
    if !k.namespace.is_empty() {
        transform::namespace::apply(&mut m, &k.namespace)?;
        note(&mut m, "NamespaceTransformer");
    }
    transform::builtin::names_and_metadata(k, &mut m, &mut note)?;
    for p in &k.patches_json6902 {
        patch::apply_json6902(&mut m, p, loader, &k.file)?;
        note(&mut m, "PatchJson6902Transformer");
    }
    transform::builtin::replicas_and_images(k, &mut m, &mut note)?;
    if !k.replacements.is_empty() {
        let list = transform::replacement::resolve_entries(&k.replacements, loader, &k.file)?;
        transform::replacement::apply(&mut m, &list, &k.file)?;
        note(&mut m, "ReplacementTransformer");
    }
    run_transformers(k, loader, &mut m)?;
    vars::merge_vars(&mut m, &k.vars, &k.file)?;
    Ok(m)
}

/// kustomize's `accumulateComponents` for the entry `rel` (`components[i]`): the folder must
/// hold a `kind: Component`, which is accumulated onto `m`.
fn accumulate_component(
    m: ResMap,
    rel: &str,
    i: usize,
    k: &Kustomization,
    loader: &Loader,
) -> Result<ResMap, RenderError> {
    let joined = loader.root.join(rel);
    if !joined.is_dir() {
        // kustomize's loader accepts only folders here.
        loader.resolve(rel, &k.file)?;
        return Err(RenderError::field(
            &k.file,
            format!("components[{i}]"),
            format!("'{}' must be a directory (a component)", joined.display()),
        ));
    }
    let child = loader.child(rel, &k.file, joined)?;
    let file =
        find_kustomization(&child.root)?.ok_or_else(|| RenderError::MissingKustomization {
            dir: child.root.clone(),
        })?;
    let sub = Kustomization::load(&file)?;
    if !sub.is_component {
        return Err(RenderError::field(
            &k.file,
            format!("components[{i}]"),
            format!(
                "expected kind 'Component' for path '{}' but got 'Kustomization'",
                child.root.display()
            ),
        ));
    }
    accumulate_into(m, &sub, &child)
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

/// kustomize's `accumulateResources`: each entry is a file of manifests or a base folder,
/// appended to `m`.
fn accumulate_resources(
    m: &mut ResMap,
    paths: &[String],
    k: &Kustomization,
    loader: &Loader,
) -> Result<(), RenderError> {
    for (i, rel) in paths.iter().enumerate() {
        let joined = loader.root.join(rel);
        if joined.is_dir() {
            let child = loader.child(rel, &k.file, joined)?;
            let file = find_kustomization(&child.root)?.ok_or_else(|| {
                RenderError::MissingKustomization {
                    dir: child.root.clone(),
                }
            })?;
            let sub = Kustomization::load(&file)?;
            if sub.is_component {
                return Err(RenderError::field(
                    &k.file,
                    format!("resources[{i}]"),
                    format!(
                        "expected kind != 'Component' for path '{}' (list components under \
                         `components`)",
                        child.root.display()
                    ),
                ));
            }
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
                r.origin = loader.origin.as_deref().map(|o| Origin {
                    path: join_clean(o, rel),
                    ..Origin::default()
                });
                m.append(r)?;
            }
        }
    }
    Ok(())
}

/// A plugin configuration object, the file it was read from and (with `buildMetadata`) the
/// origin of the generator or transformer it configures (kustomize's `OriginFromCustomPlugin`).
type PluginConfig = (Map<String, Value>, PathBuf, Option<Origin>);

/// kustomize's `OriginFromCustomPlugin`: configured in the config's file, by the config.
fn plugin_origin(obj: &Map<String, Value>, path: Option<String>) -> Option<Origin> {
    let md = obj.get("metadata");
    let text = |k: &str| scalar_text(md.and_then(|m| m.get(k)));
    Some(Origin {
        path: String::new(),
        configured_in: path?,
        configured_by: [
            scalar_text(obj.get("apiVersion")),
            scalar_text(obj.get("kind")),
            text("name"),
            text("namespace"),
        ],
    })
}

/// Loads plugin configurations (entries of `generators:` or `transformers:`: inline YAML, files
/// or folders) as kustomize does: the inline ones in order, then those of files and folders.
fn load_plugin_configs(
    entries: &[String],
    k: &Kustomization,
    loader: &Loader,
) -> Result<Vec<PluginConfig>, RenderError> {
    let mut configs: Vec<PluginConfig> = Vec::new();
    let (inline, paths): (Vec<&String>, Vec<&String>) =
        entries.iter().partition(|e| e.contains('\n'));
    let kfile_origin = builtin_origin(k, loader, "").map(|o| o.configured_in);
    for entry in inline {
        for obj in objects_from_bytes(entry.as_bytes(), &k.file)? {
            let origin = plugin_origin(&obj, kfile_origin.clone());
            configs.push((obj, k.file.clone(), origin));
        }
    }
    for entry in paths {
        let mut loaded = ResMap::default();
        accumulate_resources(&mut loaded, std::slice::from_ref(entry), k, loader)?;
        for r in loaded.resources {
            let origin = plugin_origin(&r.obj, r.origin.map(|o| o.path));
            configs.push((r.obj, r.source.as_ref().clone(), origin));
        }
    }
    Ok(configs)
}

/// Runs the generators configured under `generators:` (builtin `ConfigMapGenerator` and
/// `SecretGenerator`), absorbing their objects as those of `configMapGenerator` are.
fn run_generators(k: &Kustomization, loader: &Loader, m: &mut ResMap) -> Result<(), RenderError> {
    for (obj, file, origin) in load_plugin_configs(&k.generators, k, loader)? {
        let api_version = scalar_text(obj.get("apiVersion"));
        let kind = scalar_text(obj.get("kind"));
        if api_version != "builtin" {
            return Err(RenderError::unsupported(
                &file,
                format!(
                    "generators: {api_version} {kind} (generator plugins; kubectl kustomize \
                     refuses them too: external plugins disabled)"
                ),
            ));
        }
        match kind.as_str() {
            "ConfigMapGenerator" | "SecretGenerator" => {
                let mut r = generator::generate_from_config(&obj, &file, &kind, k, loader)?;
                r.origin = origin;
                m.absorb(r, &file)?;
            }
            other => {
                return Err(RenderError::unsupported(
                    &file,
                    format!("generators: builtin {other}"),
                ));
            }
        }
    }
    Ok(())
}

/// Loads the configurations listed under `transformers:` and applies them in order.
fn run_transformers(k: &Kustomization, loader: &Loader, m: &mut ResMap) -> Result<(), RenderError> {
    for (obj, file, origin) in load_plugin_configs(&k.transformers, k, loader)? {
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
        if let Some(o) = &origin {
            m.note_transformer(o);
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
/// `extra` annotations (kustomize's origin and transformations annotations) are added after
/// the build annotations are removed.
fn finalize(r: Resource, extra: Vec<(&str, String)>) -> Result<Map<String, Value>, RenderError> {
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
        if !extra.is_empty() {
            let a = md
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(a) = a {
                for (k, v) in extra {
                    a.insert(k.into(), Value::String(v));
                }
            }
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
