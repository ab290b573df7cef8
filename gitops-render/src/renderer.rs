//! The public renderer.

use std::path::Path;

use gitops_core::Object;

use crate::error::RenderError;
use crate::kustomize;
use crate::overlay::Overlay;

/// Renders a folder as `kubectl kustomize` (Kustomize v5.5.0) does, in process; a folder
/// without a kustomization file is rendered as Flux's kustomize-controller does (every
/// manifest below it).
#[derive(Debug, Clone, Default)]
pub struct KustomizeRenderer {
    overlay: Overlay,
}

impl KustomizeRenderer {
    /// A renderer with kustomize's defaults (legacy sort order, files restricted to the
    /// kustomization's folder).
    pub fn new() -> Self {
        KustomizeRenderer::default()
    }

    /// This renderer, merging `overlay` (a Flux Kustomization's `patches`, `images`,
    /// `components`, `namePrefix` and `nameSuffix`) into the kustomization of every folder it
    /// builds, as kustomize-controller's generator does. The folder on disk is not changed.
    pub fn with_overlay(mut self, overlay: Overlay) -> Self {
        self.overlay = overlay;
        self
    }

    /// Builds `dir` into objects, in kustomize's output order. Each object holds exactly the
    /// values `kubectl kustomize` prints (keys in its order, `"80"` a string, `80` a number).
    pub fn build(&self, dir: &Path) -> Result<Vec<Object>, RenderError> {
        let objects = kustomize::build_overlaid(dir, &self.overlay)?;
        tracing::debug!(dir = %dir.display(), objects = objects.len(), "rendered");
        Ok(objects.into_iter().map(Object::from_map).collect())
    }

    /// [`KustomizeRenderer::build`], refusing bases outside `root` (the artifact's root, as
    /// Flux's kustomize-controller builds on a file system rooted there): a base named
    /// `../../../etc` fails with [`RenderError::Restricted`] naming the kustomization.
    pub fn build_within(&self, root: &Path, dir: &Path) -> Result<Vec<Object>, RenderError> {
        let objects = kustomize::build_within_overlaid(root, dir, &self.overlay)?;
        Ok(objects.into_iter().map(Object::from_map).collect())
    }

    /// Builds `dir` into the YAML stream `kubectl kustomize dir` prints, byte for byte.
    pub fn build_yaml(&self, dir: &Path) -> Result<String, RenderError> {
        let objects = kustomize::build_overlaid(dir, &self.overlay)?;
        Ok(kustomize::to_yaml(&objects))
    }
}

impl gitops_core::Renderer for KustomizeRenderer {
    fn render(&self, dir: &Path) -> Result<Vec<Object>, gitops_core::Error> {
        self.build(dir).map_err(Into::into)
    }

    fn render_in(&self, root: &Path, dir: &Path) -> Result<Vec<Object>, gitops_core::Error> {
        self.build_within(root, dir).map_err(Into::into)
    }
}
