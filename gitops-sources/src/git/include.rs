//! Flux's GitRepository `spec.include`: the artifact of another GitRepository (its `fromPath`,
//! default the root) copied into `toPath` (default: the included repository's name) of this
//! one's artifact, as source-controller's `reconcileInclude` does.
//!
//! The included artifacts are given with [`GitSource::with_includes`], read from the
//! [`ArtifactStore`] (digest verified, extracted with the store's safety rules) and copied over
//! the checked-out tree before the `.sourceignore` rules apply and the archive is written. Files
//! of an include replace files at the same path; other files at `toPath` stay.
//!
//! The artifact's revision stays the main commit's. The included artifacts' revisions and
//! digests are recorded in the artifact's metadata (Flux's `status.includedArtifacts`:
//! [`METADATA_INCLUDES`] and [`METADATA_INCLUDE_PREFIX`]), and the "unchanged" check compares
//! them, so a new artifact of an included repository produces a new artifact here with the same
//! revision string.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use gitops_core::{Artifact, ArtifactStore, Digest};
use serde::{Deserialize, Serialize};

use super::{GitError, GitSource};

/// Artifact metadata key holding a fingerprint (sha256) of the includes an artifact was built
/// with: each include's name, `fromPath`, `toPath`, and its artifact's revision and digest.
/// Absent when there are no includes.
pub const METADATA_INCLUDES: &str = "include.digest";

/// Prefix of the per-include metadata keys: `include.<index>.name`, `include.<index>.revision`,
/// `include.<index>.digest` (index in `spec.include` order), Flux's `status.includedArtifacts`.
pub const METADATA_INCLUDE_PREFIX: &str = "include.";

/// One entry of Flux's GitRepository `spec.include`, as written in manifests:
/// `{repository: {name}, fromPath, toPath}`. The operator resolves `repository` to the included
/// GitRepository's artifact and hands it to the source as an [`Include`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryInclude {
    /// The included GitRepository, in the same namespace.
    pub repository: IncludedRepository,
    /// Folder of the included artifact to copy; the root when `None` or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,
    /// Folder of this artifact to copy to; the repository's name when `None` or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_path: Option<String>,
}

/// The `repository` of a [`GitRepositoryInclude`]: a GitRepository's name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncludedRepository {
    /// Name of the GitRepository.
    pub name: String,
}

/// An include with its artifact resolved: what [`GitSource::with_includes`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    /// The included GitRepository's name: the default `toPath`, and named in errors.
    pub name: String,
    /// Its current artifact, which must be in the store the source writes to.
    pub artifact: Artifact,
    /// Folder of the artifact to copy (`/`-separated, relative); the root when `None` or empty.
    pub from_path: Option<String>,
    /// Where to copy it in this artifact (`/`-separated, relative); `name` when `None` or empty.
    pub to_path: Option<String>,
}

impl Include {
    /// The whole artifact of repository `name` into the folder `name`.
    pub fn new(name: impl Into<String>, artifact: Artifact) -> Include {
        Include {
            name: name.into(),
            artifact,
            from_path: None,
            to_path: None,
        }
    }

    /// Builds an include from a spec entry and the artifact of its repository.
    pub fn from_spec(spec: &GitRepositoryInclude, artifact: Artifact) -> Include {
        Include {
            name: spec.repository.name.clone(),
            artifact,
            from_path: spec.from_path.clone(),
            to_path: spec.to_path.clone(),
        }
    }

    /// Sets `fromPath`.
    pub fn with_from_path(mut self, path: impl Into<String>) -> Include {
        self.from_path = Some(path.into());
        self
    }

    /// Sets `toPath`.
    pub fn with_to_path(mut self, path: impl Into<String>) -> Include {
        self.to_path = Some(path.into());
        self
    }

    /// `toPath` as Flux reads it: the repository name when empty.
    pub fn effective_to_path(&self) -> &str {
        match self.to_path.as_deref() {
            Some(p) if !p.trim().is_empty() => p,
            _ => &self.name,
        }
    }
}

/// A validated include: relative, normalised paths.
#[derive(Clone, Debug)]
pub(super) struct CheckedInclude {
    include: Include,
    from: PathBuf,
    to: PathBuf,
}

/// Checks a `fromPath`/`toPath`: relative, no `..`, no `.git` component, no NUL. Returns the path
/// without `.` components (empty for the root).
fn relative_path(value: &str) -> Result<PathBuf, String> {
    if value.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if value.starts_with('/') || value.starts_with('\\') || Path::new(value).is_absolute() {
        return Err("must be a relative path".into());
    }
    let mut out = PathBuf::new();
    for part in value.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err("must not contain `..`".into()),
            p if p.eq_ignore_ascii_case(".git") => return Err("must not contain `.git`".into()),
            p => {
                // Windows drive prefixes and the like.
                if !matches!(Path::new(p).components().next(), Some(Component::Normal(_))) {
                    return Err("must be a relative path".into());
                }
                out.push(p);
            }
        }
    }
    Ok(out)
}

impl GitSource {
    /// Adds Flux's `spec.include`: each include's artifact (its `from_path`) is copied into
    /// `to_path` of the artifacts this source builds, in order (a later include overwrites an
    /// earlier one's files). See the [module documentation](self).
    ///
    /// Errors: [`GitError::InvalidInclude`] naming `spec.include[<index>].fromPath`/`toPath` when
    /// a path is absolute, has `..` or `.git`, or when a name is empty.
    pub fn with_includes(mut self, includes: Vec<Include>) -> Result<GitSource, GitError> {
        let mut checked = Vec::with_capacity(includes.len());
        for (index, include) in includes.into_iter().enumerate() {
            let invalid = |field: &str, path: &str, reason: String| GitError::InvalidInclude {
                url: self.redacted_url.clone(),
                field: format!("spec.include[{index}].{field}"),
                path: path.to_string(),
                reason: format!("{reason} (include of repository {:?})", include.name),
            };
            if include.name.trim().is_empty() {
                return Err(invalid(
                    "repository.name",
                    "",
                    "the included repository has no name".into(),
                ));
            }
            let from_raw = include.from_path.as_deref().unwrap_or("");
            let from = relative_path(from_raw).map_err(|r| invalid("fromPath", from_raw, r))?;
            let field = if include
                .to_path
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty())
            {
                "toPath"
            } else {
                "repository.name"
            };
            let to_raw = include.effective_to_path().to_string();
            let to = relative_path(&to_raw).map_err(|r| invalid(field, &to_raw, r))?;
            checked.push(CheckedInclude { include, from, to });
        }
        self.includes = checked;
        Ok(self)
    }

    /// The includes given with [`GitSource::with_includes`].
    pub fn includes(&self) -> impl Iterator<Item = &Include> {
        self.includes.iter().map(|c| &c.include)
    }

    /// The include metadata of the artifacts this source builds now: empty without includes.
    pub(super) fn include_metadata(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.includes.is_empty() {
            return out;
        }
        let mut fingerprint = String::new();
        for (i, c) in self.includes.iter().enumerate() {
            let a = &c.include.artifact;
            fingerprint.push_str(&format!(
                "{}\0{}\0{}\0{}\0{}\n",
                c.include.name,
                c.from.display(),
                c.to.display(),
                a.revision,
                a.digest
            ));
            out.insert(
                format!("{METADATA_INCLUDE_PREFIX}{i}.name"),
                c.include.name.clone(),
            );
            out.insert(
                format!("{METADATA_INCLUDE_PREFIX}{i}.revision"),
                a.revision.to_string(),
            );
            out.insert(
                format!("{METADATA_INCLUDE_PREFIX}{i}.digest"),
                a.digest.to_string(),
            );
        }
        out.insert(
            METADATA_INCLUDES.to_string(),
            Digest::sha256_of(fingerprint.as_bytes()).to_string(),
        );
        out
    }

    /// Copies every include into `tree_dir`; artifacts are extracted under `scratch`.
    pub(super) fn apply_includes(
        &self,
        store: &ArtifactStore,
        tree_dir: &Path,
        scratch: &Path,
    ) -> Result<(), GitError> {
        for (index, c) in self.includes.iter().enumerate() {
            let name = &c.include.name;
            let fail = |message: String| GitError::Include {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                name: name.clone(),
                message,
            };
            let unpacked = scratch.join(format!("include-{index}"));
            store
                .extract(&c.include.artifact, &unpacked)
                .map_err(|e| fail(format!("reading its artifact: {e}")))?;
            let from = unpacked.join(&c.from);
            let meta = std::fs::symlink_metadata(&from).map_err(|_| {
                fail(format!(
                    "fromPath {:?} is not in its artifact ({})",
                    c.include.from_path.as_deref().unwrap_or(""),
                    c.include.artifact.revision
                ))
            })?;
            let to = tree_dir.join(&c.to);
            if meta.is_dir() {
                copy_dir_over(&from, &to).map_err(&fail)?;
            } else if meta.is_file() {
                if let Some(parent) = to.parent() {
                    make_dirs(parent).map_err(&fail)?;
                }
                copy_file_over(&from, &to).map_err(&fail)?;
            } else {
                return Err(fail(format!(
                    "fromPath {:?} is neither a file nor a folder",
                    c.include.from_path.as_deref().unwrap_or("")
                )));
            }
            tracing::debug!(
                url = %self.redacted_url,
                include = %name,
                revision = %c.include.artifact.revision,
                to = %c.to.display(),
                "copied include"
            );
        }
        Ok(())
    }
}

/// Whether the last artifact was built with the same includes and submodule setting as `current`
/// (the keys of [`METADATA_INCLUDES`], [`METADATA_INCLUDE_PREFIX`] and
/// [`METADATA_RECURSE_SUBMODULES`](super::METADATA_RECURSE_SUBMODULES)).
pub(super) fn same_content_config(last: &Artifact, current: &BTreeMap<String, String>) -> bool {
    let ours = |k: &&String| {
        k.starts_with(METADATA_INCLUDE_PREFIX) || k.as_str() == super::METADATA_RECURSE_SUBMODULES
    };
    let a: Vec<_> = last.metadata.iter().filter(|(k, _)| ours(k)).collect();
    let b: Vec<_> = current.iter().filter(|(k, _)| ours(k)).collect();
    a == b
}

/// `create_dir_all` that replaces a file standing where a folder has to be.
fn make_dirs(dir: &Path) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(dir)
        && !meta.is_dir()
    {
        std::fs::remove_file(dir).map_err(|e| format!("replacing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// Copies a regular file over `to` (a folder there is removed), keeping the executable bit.
fn copy_file_over(from: &Path, to: &Path) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(to) {
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(to)
        } else {
            std::fs::remove_file(to)
        };
        removed.map_err(|e| format!("replacing {}: {e}", to.display()))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying to {}: {e}", to.display()))
}

/// Merges the folder `from` into `to`: files of `from` replace those of `to`. Symlinks are left
/// out (the archive skips them anyway).
fn copy_dir_over(from: &Path, to: &Path) -> Result<(), String> {
    make_dirs(to)?;
    let entries =
        std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", from.display()))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir_over(&entry.path(), &target)?;
        } else if kind.is_file() {
            copy_file_over(&entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_paths_are_checked() {
        assert_eq!(relative_path("").unwrap(), PathBuf::new());
        assert_eq!(relative_path("./").unwrap(), PathBuf::new());
        assert_eq!(
            relative_path("./deploy//base/").unwrap(),
            Path::new("deploy").join("base")
        );
        for bad in [
            "../x",
            "a/../../x",
            "/abs",
            "\\abs",
            "a/.git/x",
            "a\0b",
            "..",
        ] {
            assert!(relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spec_serde_uses_flux_names() {
        let json =
            r#"{"repository":{"name":"shared"},"fromPath":"deploy","toPath":"vendor/shared"}"#;
        let spec: GitRepositoryInclude = serde_json::from_str(json).unwrap();
        assert_eq!(spec.repository.name, "shared");
        assert_eq!(spec.from_path.as_deref(), Some("deploy"));
        assert_eq!(serde_json::to_string(&spec).unwrap(), json);
    }
}
