//! Renderers of the gitops toolkit: folders of manifests into Kubernetes objects.
//!
//! [`KustomizeRenderer`] implements [`gitops_core::Renderer`] with an in-process kustomize
//! build whose output is byte-identical with `kubectl kustomize` (Kustomize v5.5.0):
//!
//! | kustomize feature | module |
//! | --- | --- |
//! | `resources` (files, folders, nested bases), load restrictions | `kustomize::load` |
//! | `configMapGenerator`, `secretGenerator`, `generatorOptions`, content-hash names | `kustomize::generator` |
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
//! | legacy output order | `kustomize::order` |
//! | YAML reading (yaml.v3 via kyaml) and printing (`encoding/json` + yaml.v2) | `yaml` |
//!
//! After the build, [`PostBuild`] runs Flux's post-build variable substitution
//! (`spec.postBuild.substitute` / `substituteFrom`) on the objects.
//!
//! A folder without a kustomization file is rendered as Flux's kustomize-controller renders it:
//! as if it had a `kustomization.yaml` listing every `.yaml`/`.yml` file below it (`plain`).
//!
//! Kustomize features beyond these (components, Helm charts,
//! remote bases...) are reported as [`RenderError::Unsupported`], never silently ignored.

mod base64;
mod error;
mod kustomize;
mod plain;
mod renderer;
mod substitute;
mod yaml;

pub use error::RenderError;

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
}
pub use renderer::KustomizeRenderer;
pub use substitute::{PostBuild, SUBSTITUTE_SWITCH, Strategy, SubstituteError};
