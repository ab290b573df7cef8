//! The Artifact contract between sources and consumers, as Flux's `meta.Artifact`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, Revision};

/// A tar.gz of desired state, written by a [`Source`](crate::Source) into an
/// [`ArtifactStore`](crate::ArtifactStore).
///
/// Serialises with Flux's field names (`revision`, `digest`, `path`, `url`, `size`,
/// `lastUpdateTime`, `metadata`), so it can be written into a GitRepository's `status.artifact`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Flux revision, e.g. `main@sha1:<hex>`.
    pub revision: Revision,
    /// `sha256:<hex>` of the tar.gz bytes.
    pub digest: Digest,
    /// Path relative to the store root, `/`-separated: `<kind>/<namespace>/<name>/<file>.tar.gz`.
    pub path: String,
    /// Where consumers can read it (`file://` URL of the stored file unless the store says otherwise).
    pub url: String,
    /// Size of the tar.gz in bytes (optional in Flux's API: 0 when absent).
    #[serde(default)]
    pub size: u64,
    /// When the artifact was written (RFC 3339).
    pub last_update_time: jiff::Timestamp,
    /// Free-form metadata (OCI annotations for OCI sources; commit subject for Git).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Artifact {
    /// Whether this artifact has `revision` (string equality, as Flux's `HasRevision`).
    pub fn has_revision(&self, revision: &Revision) -> bool {
        &self.revision == revision
    }
}
