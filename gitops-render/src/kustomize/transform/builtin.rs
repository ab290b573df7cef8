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
pub(crate) fn names_and_metadata(k: &Kustomization, m: &mut ResMap) -> Result<(), RenderError> {
    if !k.name_prefix.is_empty() {
        let specs = m.config.name_prefix.clone();
        prefix::apply(m, End::Prefix, &k.name_prefix, &specs)?;
    }
    if !k.name_suffix.is_empty() {
        let specs = m.config.name_suffix.clone();
        prefix::apply(m, End::Suffix, &k.name_suffix, &specs)?;
    }
    labels::apply_kustomization_labels(m, k)?;
    let specs = m.config.common_annotations.clone();
    labels::set_entries(m, &k.common_annotations, &specs, "annotations")
}

/// `replicas` then `images`.
pub(crate) fn replicas_and_images(k: &Kustomization, m: &mut ResMap) -> Result<(), RenderError> {
    let specs = m.config.replicas.clone();
    for r in &k.replicas {
        replicas::apply(m, r, &specs, &k.file)?;
    }
    let specs = m.config.images.clone();
    for img in &k.images {
        ImageUpdate::new(img, &k.file)?.apply(m, &specs)?;
    }
    Ok(())
}
