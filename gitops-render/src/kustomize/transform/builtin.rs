//! The builtin transformers a kustomization's own fields configure, in kustomize's order
//! (`configureBuiltinTransformers`): `namePrefix`, `nameSuffix`, `labels` and `commonLabels`,
//! `commonAnnotations` ([`names_and_metadata`]), then `replicas` and `images`
//! ([`replicas_and_images`]), with the field specs of the accumulated configuration.

use super::prefix::{self, End};
use super::{images::ImageUpdate, labels, replicas};
use crate::error::RenderError;
use crate::kustomize::load::Kustomization;
use crate::kustomize::resource::ResMap;

/// `namePrefix`, `nameSuffix`, `labels`, `commonLabels` and `commonAnnotations`.
/// `note(m, kind)` is called after each transformer kustomize would configure (for
/// `buildMetadata: [transformerAnnotations]`).
pub(crate) fn names_and_metadata(
    k: &Kustomization,
    m: &mut ResMap,
    note: &mut dyn FnMut(&mut ResMap, &str),
) -> Result<(), RenderError> {
    if !k.name_prefix.is_empty() {
        let specs = m.config.name_prefix.clone();
        prefix::apply(m, End::Prefix, &k.name_prefix, &specs)?;
        note(m, "PrefixTransformer");
    }
    if !k.name_suffix.is_empty() {
        let specs = m.config.name_suffix.clone();
        prefix::apply(m, End::Suffix, &k.name_suffix, &specs)?;
        note(m, "SuffixTransformer");
    }
    if !k.labels.is_empty() || !k.common_labels.is_empty() {
        labels::apply_kustomization_labels(m, k)?;
        // One transformer per `labels` entry and one for `commonLabels`.
        for _ in 0..=k.labels.len() {
            note(m, "LabelTransformer");
        }
    }
    if !k.common_annotations.is_empty() {
        let specs = m.config.common_annotations.clone();
        labels::set_entries(m, &k.common_annotations, &specs, "annotations")?;
        note(m, "AnnotationsTransformer");
    }
    Ok(())
}

/// `replicas` then `images`.
pub(crate) fn replicas_and_images(
    k: &Kustomization,
    m: &mut ResMap,
    note: &mut dyn FnMut(&mut ResMap, &str),
) -> Result<(), RenderError> {
    let specs = m.config.replicas.clone();
    for r in &k.replicas {
        replicas::apply(m, r, &specs, &k.file)?;
        note(m, "ReplicaCountTransformer");
    }
    let specs = m.config.images.clone();
    for img in &k.images {
        ImageUpdate::new(img, &k.file)?.apply(m, &specs)?;
        note(m, "ImageTagTransformer");
    }
    Ok(())
}
