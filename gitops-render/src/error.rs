//! The renderer's error type.

use std::path::PathBuf;

/// Why a folder could not be rendered. Every variant names the file (and, where it applies, the
/// object and the field) so that the message alone tells a user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A file or folder could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file or folder named by a kustomization does not exist.
    #[error("{file}: {entry}: no such file or folder ({path})")]
    Missing {
        /// The kustomization naming the entry.
        file: PathBuf,
        /// The entry as written, e.g. `deploy.yaml` or `../base`.
        entry: String,
        /// The path it resolves to.
        path: PathBuf,
    },
    /// A file is larger than the renderer reads ([`crate::MAX_FILE_BYTES`]).
    #[error("{file}: {size} bytes, more than the {limit} bytes a file may have")]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The cap in bytes.
        limit: u64,
    },
    /// A file is not valid YAML (or holds a value kustomize cannot convert to JSON).
    #[error("{file}:{line}: malformed YAML: {message}")]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A folder has no kustomization file where one is required (a base named in `resources`).
    #[error("{dir}: no kustomization.yaml, kustomization.yml or Kustomization in this folder")]
    MissingKustomization {
        /// The folder.
        dir: PathBuf,
    },
    /// A folder has more than one kustomization file.
    #[error("{dir}: found multiple kustomization files")]
    MultipleKustomizations {
        /// The folder.
        dir: PathBuf,
    },
    /// A field of a kustomization or transformer configuration is invalid.
    #[error("{file}: field {field}: {message}")]
    InvalidField {
        /// The kustomization or configuration file.
        file: PathBuf,
        /// The field, e.g. `configMapGenerator[0].files[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A kustomization uses a feature this renderer does not implement yet.
    #[error("{file}: {field} is not supported by this renderer yet")]
    Unsupported {
        /// The kustomization or configuration file.
        file: PathBuf,
        /// The field or kind, e.g. `patches` or `transformers: builtin PrefixTransformer`.
        field: String,
    },
    /// An object is invalid (no kind, no name, a field of the wrong type...).
    #[error("{file}: object {object}: field {field}: {message}")]
    InvalidObject {
        /// The file the object comes from.
        file: PathBuf,
        /// The object, as `Kind/namespace/name` (or what is known of it).
        object: String,
        /// The field, e.g. `metadata.name`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Two objects have the same kind, namespace and name.
    #[error("{file}: object {object} is already defined (by {other})")]
    Conflict {
        /// The file adding the second object.
        file: PathBuf,
        /// The object.
        object: String,
        /// The file that defined it first.
        other: PathBuf,
    },
    /// A path leaves the folder kustomize restricts loading to, or a base includes itself.
    #[error("{file}: {path}: {message}")]
    Restricted {
        /// The kustomization naming the path.
        file: PathBuf,
        /// The offending path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl RenderError {
    /// Whether retrying can help: only I/O failures other than missing files (bad input stays
    /// bad until a new revision).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RenderError::Io { source, .. }
            if !matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidData))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RenderError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RenderError::InvalidField {
            file: file.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(file: impl Into<PathBuf>, field: impl Into<String>) -> Self {
        RenderError::Unsupported {
            file: file.into(),
            field: field.into(),
        }
    }

    pub(crate) fn yaml(file: impl Into<PathBuf>, e: crate::yaml::YamlError) -> Self {
        RenderError::Yaml {
            file: file.into(),
            line: e.line,
            message: e.message,
        }
    }
}

impl From<RenderError> for gitops_core::Error {
    fn from(e: RenderError) -> Self {
        let retryable = e.is_retryable();
        gitops_core::Error::new(gitops_core::Stage::Render, retryable, e)
    }
}
