//! Renderers of the gitops toolkit: folders of manifests into Kubernetes objects.
//!
//! [`KustomizeRenderer`] implements [`gitops_core::Renderer`] with an in-process kustomize
//! build whose output is byte-identical with `kubectl kustomize` (Kustomize v5.5.0):
//!
//! | kustomize feature | module |
//! | --- | --- |
//! | `resources` (files, folders, nested bases), load restrictions | `kustomize::load` |
//! | `components` (`kind: Component`, nested), applied to the including kustomization's objects | `kustomize` |
//! | `configMapGenerator`, `secretGenerator` (`behavior: create`, `merge`, `replace`), `generatorOptions`, builtin generator configurations under `generators:`, content-hash names | `kustomize::generator` |
//! | `crds` (OpenAPI definitions whose `x-kubernetes-*` extensions add field specs) | `kustomize::crds` |
//! | `buildMetadata` (origin and transformations annotations, managed-by label) | `kustomize` |
//! | `namespace` (and `NamespaceTransformer` under `transformers:`) | `kustomize::transform::namespace` |
//! | `namePrefix`, `nameSuffix` (and `PrefixTransformer`, `SuffixTransformer`, `PrefixSuffixTransformer`) | `kustomize::transform::prefix` |
//! | `commonLabels`, `labels`, `commonAnnotations` (and `LabelTransformer`, `AnnotationsTransformer`) | `kustomize::transform::labels` |
//! | `images` (and `ImageTagTransformer`) | `kustomize::transform::images` |
//! | `replicas` (and `ReplicaCountTransformer`) | `kustomize::transform::replicas` |
//! | `configurations` (custom field specs, `nameReference`) | `kustomize::transform::config` |
//! | `patches`, `patchesStrategicMerge`, `patchesJson6902` and their builtin transformers (strategic merge as kyaml's `merge2`, schema from kustomize's embedded Kubernetes v1.21.2 OpenAPI) | `kustomize::patch` |
//! | `replacements` (inline and `path:` files, and `ReplacementTransformer`) | `kustomize::transform::replacement` |
//! | `vars` (deprecated; `$(VAR)` in the `varReference` field specs) | `kustomize::vars` |
//! | name references to renamed or moved objects (kustomize's default `nameReference` table) | `kustomize::transform::nameref` |
//! | `config.kubernetes.io/local-config` objects dropped, build annotations removed | `kustomize` |
//! | output order (`sortOptions`: legacy, with `legacySortOptions`, or fifo); `openapi` with the builtin version | `kustomize::order` |
//! | YAML reading (yaml.v3 via kyaml) and printing (`encoding/json` + yaml.v2) | `yaml` |
//!
//! After the build, [`PostBuild`] runs Flux's post-build variable substitution
//! (`spec.postBuild.substitute` / `substituteFrom`) on the objects.
//!
//! [`Overlay`] adds a Flux Kustomization's `patches`, `images`, `components` (with
//! `ignoreMissingComponents`), `namePrefix` and `nameSuffix` to the kustomization being built,
//! as kustomize-controller's generator does
//! ([`KustomizeRenderer::with_overlay`]).
//!
//! A folder without a kustomization file is rendered as Flux's kustomize-controller renders it:
//! as if it had a `kustomization.yaml` listing every `.yaml`/`.yml` file below it (`plain`).
//!
//! Kustomize features beyond these (Helm charts, a custom `openapi` schema,
//! remote bases...) are reported as [`RenderError::Unsupported`], never silently ignored.

mod base64;
mod error;
mod kustomize;
mod overlay;
mod plain;
mod renderer;
mod substitute;
mod yaml;

pub use error::RenderError;

/// The largest file the renderer reads, in bytes (32 MiB): a kustomization, manifest, patch or
/// generator source over this fails with [`RenderError::TooLarge`] instead of exhausting memory.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Entry points for the fuzz targets in `gitops-render/fuzz` (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// Applies a strategic merge patch as kustomize does; `Ok(None)` when it deletes the object.
    pub fn strategic_merge(
        object: serde_json::Value,
        patch: serde_json::Value,
    ) -> Result<Option<serde_json::Value>, String> {
        crate::kustomize::patch::smp::merge(object, patch)
    }

    /// Reads a YAML stream as kustomize reads resource files, prints each document as
    /// `kubectl kustomize` would and reads the printed text again; both reads may fail with an
    /// error, never panic, and a printed document must read back.
    pub fn yaml_round_trip(text: &str) -> Result<(), String> {
        let docs = crate::yaml::parse_documents(text).map_err(|e| e.message)?;
        for doc in docs {
            if let serde_json::Value::Object(map) = doc.value {
                let mut out = String::new();
                crate::yaml::Emitter::new(&mut out).document_map(&map);
                crate::yaml::parse_documents(&out)
                    .map_err(|e| format!("printed YAML does not read back: {}", e.message))?;
            }
        }
        Ok(())
    }
}
pub use overlay::Overlay;
pub use renderer::KustomizeRenderer;
pub use substitute::{PostBuild, SUBSTITUTE_SWITCH, Strategy, SubstituteError, WithPostBuild};
