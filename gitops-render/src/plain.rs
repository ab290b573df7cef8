//! Folders without a kustomization file, rendered as Flux's kustomize-controller renders them:
//! it generates a `kustomization.yaml` whose `resources` list the folder's manifests
//! (fluxcd/pkg `kustomize/kustomize_generator.go`, `scanManifests`) and builds that.
//!
//! The scan walks the folder recursively in lexical order (Go's `filepath.Walk`, which does
//! not follow symlinked folders); a sub-folder holding a kustomization file is listed as a
//! base and not descended into; every other file ending in `.yaml` or `.yml` is listed. Hidden
//! files are not skipped (source-controller's `.sourceignore` rules apply before, when the
//! artifact is made).

use std::path::Path;

use crate::error::RenderError;
use crate::kustomize::load::{Kustomization, find_kustomization};

/// The kustomization Flux generates for `dir` (which has no kustomization file).
pub(crate) fn generated_kustomization(dir: &Path) -> Result<Kustomization, RenderError> {
    let mut resources = Vec::new();
    scan(dir, ".", &mut resources)?;
    Ok(Kustomization {
        file: dir.join("kustomization.yaml"),
        resources,
        ..Kustomization::default()
    })
}

fn scan(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), RenderError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| RenderError::io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| RenderError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let child_rel = format!("{rel}/{name}");
        let file_type = entry.file_type().map_err(|e| RenderError::io(&path, e))?;
        if file_type.is_dir() {
            if find_kustomization(&path)?.is_some() {
                out.push(child_rel);
            } else {
                scan(&path, &child_rel, out)?;
            }
            continue;
        }
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(child_rel);
        }
    }
    Ok(())
}
