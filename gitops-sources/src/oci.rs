//! The OCI source: Flux's OCIRepository (`source.toolkit.fluxcd.io/v1`) on top of oci-client,
//! plus the `flux push artifact` / `flux pull artifact` library calls.
//!
//! [`OciSource`] implements [`gitops_core::Source`]. One fetch, as Flux's source-controller does:
//!
//! 1. picks the tag the [`OciReference`] selects, with Flux's precedence `tag` (default
//!    [`DEFAULT_TAG`]) < `semver` (newest tag in the Masterminds range, after the optional
//!    `semverFilter` regex, see [`semver_range`](crate::semver_range)) < `digest`;
//! 2. resolves the manifest digest with a `HEAD` on the manifest (no blob is downloaded) and forms
//!    the revision `<tag>@sha256:<manifest digest>`, or `sha256:<digest>` when pinned by digest;
//! 3. when the last artifact has that revision (and the same layer selector and ignore rules),
//!    returns [`Fetched::Unchanged`];
//! 4. otherwise pulls the manifest by digest, selects a layer ([`LayerSelector`]: the first layer
//!    with `mediaType`, or the first layer at all), downloads it to a temporary file and checks
//!    its sha256 against the manifest's descriptor (oci-client checks too);
//! 5. `extract` (default): untars it safely with [`gitops_core::store::extract_tar_gz`] (no
//!    absolute paths, no `..`, no links leaving the folder, size and file-count limits) and
//!    archives the folder into the store minus the [`sourceignore`](crate::sourceignore)
//!    exclusions; `copy`: stores the layer's bytes unaltered as the artifact file.
//!
//! The artifact file is `<manifest digest hex>.tar.gz`; its metadata holds the manifest's
//! annotations (Flux's `artifact.metadata`, e.g. [`ANNOTATION_SOURCE`], [`ANNOTATION_REVISION`])
//! plus [`METADATA_LAYER_SELECTOR`] and [`METADATA_IGNORE`].
//!
//! Plain HTTP is used only when the spec says `insecure: true` (Flux's `spec.insecure`); HTTPS
//! uses rustls with the ring provider, installed as the process default when none is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use gitops_core::{
    Artifact, ArtifactKey, ArtifactStore, Digest, ExtractLimits, Fetched, Revision, Source, Stage,
    StoreError,
};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};

use crate::semver_range::Range;
use crate::sourceignore::SourceIgnore;
use crate::util::{go_duration, install_crypto_provider};

/// Flux's OCI config media type, set on artifacts pushed by `flux push artifact`.
pub const FLUX_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
/// Flux's OCI content layer media type: a tar.gz of the pushed folder.
pub const FLUX_CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// OCI annotation with the source the artifact was built from (e.g. a Git URL), as Flux sets it.
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// OCI annotation with the source revision (e.g. `main@sha1:<hex>`), as Flux sets it; Flux's
/// kustomize-controller reports it as `lastAppliedOriginRevision`.
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// OCI annotation with the creation time (RFC 3339, UTC), as Flux sets it.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The tag used when the spec selects none, as Flux's OCIRepository.
pub const DEFAULT_TAG: &str = "latest";
/// Flux's default `spec.timeout` for OCI operations.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Artifact metadata key: the layer selector the artifact was built with
/// (`<mediaType or *>|<extract|copy>`, Flux's `status.observedLayerSelector`); a changed value
/// forces a new artifact even when the manifest is the same.
pub const METADATA_LAYER_SELECTOR: &str = "gitops.layer-selector";
/// Artifact metadata key: fingerprint of `spec.ignore` (`default` or its sha256), Flux's
/// `status.observedIgnore`.
pub const METADATA_IGNORE: &str = "ignore.digest";

/// The desired state of an OCI source, with the field names of Flux's `OCIRepositorySpec`
/// (camelCase, `ref` for [`OciRepositorySpec::reference`], `timeout` as a Go duration such as
/// `60s`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciRepositorySpec {
    /// `oci://<host>[:port]/<repository>`, without tag or digest (Flux refuses those).
    pub url: String,
    /// Which manifest to pull; `None` means tag [`DEFAULT_TAG`].
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<OciReference>,
    /// Which layer to take and how; `None` means the first layer, extracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_selector: Option<LayerSelector>,
    /// Talk plain HTTP to the registry (Flux's `insecure`); HTTPS otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Limit for one fetch ([`DEFAULT_TIMEOUT`] when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "go_duration")]
    pub timeout: Option<Duration>,
    /// Exclusions in gitignore syntax applied to extracted content; replaces the default set (see
    /// [`sourceignore`](crate::sourceignore)), as Flux's `spec.ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
}

/// Flux's `OCIRepositoryRef`. Precedence, lowest first: `tag`, `semver`, `digest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciReference {
    /// A tag, e.g. `v1.2.3` or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Masterminds/semver range over the tags, e.g. `>=1.0.0 <2.0.0`; the newest match wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Regular expression the tags must match before the semver range is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver_filter: Option<String>,
    /// A manifest digest, `sha256:<64 hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Flux's `OCILayerSelector`: which layer becomes the artifact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerSelector {
    /// The first layer with this media type is taken; `None` takes the first layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// What to do with it; `None` means [`LayerOperation::Extract`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<LayerOperation>,
}

/// Flux's layer operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerOperation {
    /// Untar the layer (it must be a tar.gz) and archive the content.
    #[default]
    Extract,
    /// Store the layer's bytes unaltered.
    Copy,
}

/// Registry credentials, from an OCIRepository's `secretRef` (a `.dockerconfigjson` Secret, see
/// [`OciAuth::from_docker_config`]). `Debug` prints `***` for secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum OciAuth {
    /// No credentials.
    #[default]
    Anonymous,
    /// HTTP basic authentication (also used by the registry's token flow).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A bearer token sent as is.
    Bearer(String),
}

impl fmt::Debug for OciAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OciAuth::Anonymous => f.write_str("Anonymous"),
            OciAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            OciAuth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

impl OciAuth {
    /// The credentials for `host` (`registry.example.com` or `127.0.0.1:5000`) in a docker config
    /// JSON, the data of a `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson` key, as
    /// Flux's source-controller reads `secretRef`: `auths.<host>.auth` (base64 of `user:pass`),
    /// else `username`/`password`, else `registrytoken` (bearer). Keys may carry a scheme and path
    /// (`https://host/v1/`). `Anonymous` when the host has no entry.
    ///
    /// Errors (which never contain the secret): invalid JSON, `auth` not base64 or without `:`.
    pub fn from_docker_config(json: &[u8], host: &str) -> Result<OciAuth, OciError> {
        let bad = |reason: &str| OciError::InvalidAuth {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        let config: DockerConfig = serde_json::from_slice(json)
            .map_err(|e| bad(&format!("not a docker config JSON (line {})", e.line())))?;
        let normalize = |k: &str| {
            let k = k.split_once("://").map_or(k, |(_, rest)| rest);
            k.split('/').next().unwrap_or(k).to_ascii_lowercase()
        };
        let wanted = normalize(host);
        let Some(entry) = config.auths.iter().find(|(k, _)| normalize(k) == wanted) else {
            return Ok(OciAuth::Anonymous);
        };
        let entry = entry.1;
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("auths.<host>.auth is not base64"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| bad("auths.<host>.auth is not UTF-8 once decoded"))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| bad("auths.<host>.auth is not <user>:<password>"))?;
            return Ok(OciAuth::Basic {
                username: u.to_string(),
                password: p.to_string(),
            });
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(OciAuth::Basic {
                username: u.clone(),
                password: p.clone(),
            });
        }
        if let Some(t) = &entry.registry_token {
            return Ok(OciAuth::Bearer(t.clone()));
        }
        Err(bad(
            "the entry has neither auth, username/password nor registrytoken",
        ))
    }

    fn registry_auth(&self) -> RegistryAuth {
        match self {
            OciAuth::Anonymous => RegistryAuth::Anonymous,
            OciAuth::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            OciAuth::Bearer(t) => RegistryAuth::Bearer(t.clone()),
        }
    }

    /// Strings that must never appear in errors.
    fn secrets(&self) -> Vec<String> {
        let mut out = match self {
            OciAuth::Anonymous => Vec::new(),
            OciAuth::Basic { username, password } => vec![
                password.clone(),
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")),
            ],
            OciAuth::Bearer(t) => vec![t.clone()],
        };
        out.retain(|s| !s.is_empty());
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out
    }
}

/// Errors of the OCI source, push and pull. Each names the `oci://` URL (which never holds
/// credentials) and, where known, the reference; registry messages are scrubbed of the secrets.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The URL is not `oci://host/repository` or carries a tag/digest. Terminal.
    #[error("oci repository {url}: invalid URL: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The reference is malformed (digest, semver range, filter regex). Terminal.
    #[error("oci repository {url}: invalid {reference}: {reason}")]
    InvalidReference {
        /// The URL.
        url: String,
        /// The reference, e.g. `semver ">=1.0"`.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The docker config holding the credentials is unusable. Terminal.
    #[error("registry {host}: invalid docker config credentials: {reason}")]
    InvalidAuth {
        /// The registry host looked up.
        host: String,
        /// What is wrong (never the secret).
        reason: String,
    },
    /// The registry has no such tag/manifest, or no tag matches the range. Terminal until the
    /// spec or the registry changes.
    #[error("oci repository {url}: {reference} not found: {reason}")]
    NotFound {
        /// The URL.
        url: String,
        /// The reference.
        reference: String,
        /// Details.
        reason: String,
    },
    /// The registry asked for credentials or refused the given ones. Retryable (the secret may
    /// be fixed without changing the spec).
    #[error(
        "oci repository {url}: {reference}: authentication to registry {host} failed: {message}"
    )]
    Authentication {
        /// The URL.
        url: String,
        /// The registry host.
        host: String,
        /// The reference.
        reference: String,
        /// What the registry said, secrets removed.
        message: String,
    },
    /// A network or protocol failure while `operation`. Retryable.
    #[error("oci repository {url}: {reference}: {operation}: {message}")]
    Registry {
        /// The URL.
        url: String,
        /// The reference.
        reference: String,
        /// e.g. `resolving the manifest digest`, `pulling layer sha256:...`.
        operation: String,
        /// The error chain, secrets removed.
        message: String,
    },
    /// The manifest has no layer the selector accepts. Terminal.
    #[error("oci repository {url}: {reference}: {reason}")]
    Layer {
        /// The URL.
        url: String,
        /// The reference.
        reference: String,
        /// Why no layer fits.
        reason: String,
    },
    /// A downloaded manifest or blob does not hash to the digest it was asked for (or has
    /// another size). Terminal: the registry content is wrong.
    #[error("oci repository {url}: {what}: digest verification failed: {message}")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// What was being downloaded, e.g. `pulling layer sha256:<hex>`.
        what: String,
        /// Expected and actual digest.
        message: String,
    },
    /// The layer's tarball was refused (unsafe entry, over a limit, not a tar.gz). Terminal.
    #[error("oci repository {url}: {reference}: unsafe or invalid layer: {source}")]
    UnsafeLayer {
        /// The URL.
        url: String,
        /// The reference.
        reference: String,
        /// The extraction error.
        source: StoreError,
    },
    /// The fetch took longer than the timeout. Retryable.
    #[error("oci repository {url}: {reference}: timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The reference.
        reference: String,
        /// The limit.
        timeout: Duration,
    },
    /// Local I/O or the artifact store failed. Retryable.
    #[error("oci repository {url}: {context}: {message}")]
    Local {
        /// The URL.
        url: String,
        /// What was being done.
        context: String,
        /// The error.
        message: String,
    },
}

impl OciError {
    /// Whether trying again later can help (network, authentication, local I/O), as opposed to
    /// a spec or upstream content that has to change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            OciError::Authentication { .. }
                | OciError::Registry { .. }
                | OciError::Timeout { .. }
                | OciError::Local { .. }
        )
    }
}

impl From<OciError> for gitops_core::Error {
    fn from(e: OciError) -> Self {
        let retryable = e.is_retryable();
        gitops_core::Error::new(Stage::Fetch, retryable, e)
    }
}

/// What the reference selects before looking at the registry.
#[derive(Clone, Debug)]
enum Selector {
    Tag(String),
    Semver {
        range: Range,
        filter: Option<regex::Regex>,
    },
    Digest(String),
}

/// `oci://host/repo` split, validated.
#[derive(Clone, Debug)]
pub(crate) struct RepoUrl {
    pub(crate) url: String,
    pub(crate) host: String,
    pub(crate) repository: String,
}

impl RepoUrl {
    /// Parses `oci://host/repo`; with `allow_tag`, also `oci://host/repo:tag` (returned).
    pub(crate) fn parse(url: &str, allow_tag: bool) -> Result<(RepoUrl, Option<String>), OciError> {
        let invalid = |reason: &str| OciError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("oci://")
            .ok_or_else(|| invalid("expected oci://<host>/<repository>"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("expected oci://<host>/<repository>"))?;
        if host.is_empty() || host.contains('@') {
            return Err(invalid(
                "the host is empty or carries user info (pass credentials separately)",
            ));
        }
        if path.contains('@') {
            return Err(invalid("the URL must not carry a digest (use ref.digest)"));
        }
        let last = path.rsplit('/').next().unwrap_or(path);
        let (repository, tag) = match last.split_once(':') {
            Some((_, tag)) if allow_tag => (
                path[..path.len() - tag.len() - 1].to_string(),
                Some(tag.to_string()),
            ),
            Some(_) => return Err(invalid("the URL must not carry a tag (use ref.tag)")),
            None => (path.to_string(), None),
        };
        if repository.is_empty()
            || repository
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            || repository
                .chars()
                .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)))
        {
            return Err(invalid(
                "the repository must be lowercase path segments of [a-z0-9._-]",
            ));
        }
        let base = format!("oci://{host}/{repository}");
        Ok((
            RepoUrl {
                url: base,
                host: host.to_string(),
                repository,
            },
            tag,
        ))
    }

    pub(crate) fn with_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), self.repository.clone(), tag.to_string())
    }

    fn with_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.host.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }
}

/// A layer downloaded to a temporary file and verified.
struct PulledLayer {
    manifest: OciImageManifest,
    manifest_digest: String,
    layer: OciDescriptor,
    /// Holds the blob file.
    dir: tempfile::TempDir,
    file: PathBuf,
}

/// A registry connection: client, credentials and the strings to scrub.
pub(crate) struct Registry {
    pub(crate) client: Client,
    pub(crate) auth: RegistryAuth,
    secrets: Vec<String>,
    pub(crate) repo: RepoUrl,
}

impl Registry {
    pub(crate) fn new(
        repo: RepoUrl,
        auth: &OciAuth,
        insecure: bool,
        timeout: Duration,
    ) -> Registry {
        install_crypto_provider();
        let config = ClientConfig {
            protocol: if insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10).min(timeout)),
            read_timeout: Some(timeout),
            ..Default::default()
        };
        Registry {
            client: Client::new(config),
            auth: auth.registry_auth(),
            secrets: auth.secrets(),
            repo,
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// Maps an oci-client error onto [`OciError`], by what the registry said.
    pub(crate) fn error(
        &self,
        reference: &str,
        operation: &str,
        e: OciDistributionError,
    ) -> OciError {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        let message = self.scrub(&message);
        let lower = message.to_ascii_lowercase();
        let url = self.repo.url.clone();
        let reference = reference.to_string();
        match &e {
            OciDistributionError::DigestError(_) => {
                return OciError::DigestMismatch {
                    url,
                    what: operation.to_string(),
                    message,
                };
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                return OciError::Authentication {
                    url,
                    host: self.repo.host.clone(),
                    reference,
                    message,
                };
            }
            OciDistributionError::ImageManifestNotFoundError(_) => {
                return OciError::NotFound {
                    url,
                    reference,
                    reason: message,
                };
            }
            _ => {}
        }
        if lower.contains("unauthorized")
            || lower.contains("denied")
            || lower.contains("code: 401")
            || lower.contains("code: 403")
        {
            OciError::Authentication {
                url,
                host: self.repo.host.clone(),
                reference,
                message,
            }
        } else if lower.contains("manifest unknown")
            || lower.contains("manifest_unknown")
            || lower.contains("name unknown")
            || lower.contains("name_unknown")
            || lower.contains("code: 404")
        {
            OciError::NotFound {
                url,
                reference,
                reason: message,
            }
        } else {
            OciError::Registry {
                url,
                reference,
                operation: operation.to_string(),
                message,
            }
        }
    }

    fn local(&self, context: &str, e: impl fmt::Display) -> OciError {
        OciError::Local {
            url: self.repo.url.clone(),
            context: context.to_string(),
            message: self.scrub(&e.to_string()),
        }
    }

    /// `HEAD` on the manifest: its digest, nothing downloaded.
    async fn manifest_digest(&self, r: &Reference, reference: &str) -> Result<String, OciError> {
        self.client
            .fetch_manifest_digest(r, &self.auth)
            .await
            .map_err(|e| self.error(reference, "resolving the manifest digest", e))
    }

    /// Every tag of the repository, page by page (`n`, `last`). Registries that ignore the
    /// pagination parameters (CNCF distribution 2.8 answers every tag, unsorted, to each page
    /// request) end the loop too: it stops at the first page that brings no new tag.
    pub(crate) async fn tags(&self, reference: &str) -> Result<Vec<String>, OciError> {
        const PAGE: usize = 1000;
        let r = self.repo.with_tag(DEFAULT_TAG);
        let mut all: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self
                .client
                .list_tags(&r, &self.auth, Some(PAGE), all.last().map(String::as_str))
                .await
                .map_err(|e| self.error(reference, "listing tags", e))?;
            let n = page.tags.len();
            let before = all.len();
            for tag in page.tags {
                if seen.insert(tag.clone()) {
                    all.push(tag);
                }
            }
            if n < PAGE || all.len() == before {
                return Ok(all);
            }
        }
    }

    /// Pulls the manifest `digest`, selects a layer and downloads it into a temporary file,
    /// verifying its digest and size.
    async fn pull_layer(
        &self,
        digest: &str,
        reference: &str,
        media_type: Option<&str>,
    ) -> Result<PulledLayer, OciError> {
        let r = self.repo.with_digest(digest);
        let (manifest, manifest_digest) = self
            .client
            .pull_image_manifest(&r, &self.auth)
            .await
            .map_err(|e| self.error(reference, "pulling the manifest", e))?;
        if manifest_digest != digest {
            return Err(OciError::DigestMismatch {
                url: self.repo.url.clone(),
                what: "pulling the manifest".into(),
                message: format!("expected {digest}, got {manifest_digest}"),
            });
        }
        let layer = match media_type {
            Some(mt) => manifest.layers.iter().find(|l| l.media_type == mt),
            None => manifest.layers.first(),
        }
        .cloned()
        .ok_or_else(|| OciError::Layer {
            url: self.repo.url.clone(),
            reference: reference.to_string(),
            reason: match media_type {
                Some(mt) => format!(
                    "no layer with media type {mt:?} (the manifest has {:?})",
                    manifest
                        .layers
                        .iter()
                        .map(|l| l.media_type.as_str())
                        .collect::<Vec<_>>()
                ),
                None => "the manifest has no layers".to_string(),
            },
        })?;
        let expected: Digest = layer.digest.parse().map_err(|e| OciError::Layer {
            url: self.repo.url.clone(),
            reference: reference.to_string(),
            reason: format!("layer digest {:?}: {e}", layer.digest),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("gitops-oci-")
            .tempdir()
            .map_err(|e| self.local("creating a temporary folder", e))?;
        let file = dir.path().join("layer.blob");
        let out = tokio::fs::File::create(&file)
            .await
            .map_err(|e| self.local("creating the layer file", e))?;
        let operation = format!("pulling layer {}", layer.digest);
        self.client
            .pull_blob(&r, &layer, out)
            .await
            .map_err(|e| self.error(reference, &operation, e))?;
        // Verified by oci-client while streaming; checked again on the bytes as written.
        let path = file.clone();
        let (actual, size) = tokio::task::spawn_blocking(move || {
            gitops_core::digest::sha256_reader(std::io::BufReader::new(std::fs::File::open(&path)?))
        })
        .await
        .map_err(|e| self.local("hashing the layer", e))?
        .map_err(|e| self.local("hashing the layer", e))?;
        if actual != expected || i64::try_from(size).ok() != Some(layer.size) {
            return Err(OciError::DigestMismatch {
                url: self.repo.url.clone(),
                what: operation,
                message: format!(
                    "expected {expected} ({} bytes), got {actual} ({size} bytes)",
                    layer.size
                ),
            });
        }
        Ok(PulledLayer {
            manifest,
            manifest_digest,
            layer,
            dir,
            file,
        })
    }
}

/// Fetches an OCI artifact into artifacts, as Flux's OCIRepository reconciler does. See the
/// [module documentation](self). `Debug` shows no secrets.
pub struct OciSource {
    key: ArtifactKey,
    spec: OciRepositorySpec,
    auth: OciAuth,
    registry: Registry,
    selector: Selector,
    reference: String,
    timeout: Duration,
    limits: ExtractLimits,
}

impl fmt::Debug for OciSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciSource")
            .field("key", &self.key)
            .field("url", &self.registry.repo.url)
            .field("reference", &self.reference)
            .field("layer_selector", &self.spec.layer_selector)
            .field("insecure", &self.spec.insecure)
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .finish()
    }
}

impl OciSource {
    /// Validates `spec` (URL, digest, semver range, filter regex) and builds the source;
    /// artifacts are stored under `key`. No network access.
    pub fn new(key: ArtifactKey, spec: OciRepositorySpec, auth: OciAuth) -> Result<Self, OciError> {
        let (repo, _) = RepoUrl::parse(&spec.url, false)?;
        let url = repo.url.clone();
        let invalid = |reference: String, reason: String| OciError::InvalidReference {
            url: url.clone(),
            reference,
            reason,
        };
        let r = spec.reference.clone().unwrap_or_default();
        let (selector, reference) = if let Some(d) = &r.digest {
            let reference = format!("digest {d:?}");
            let parsed: Digest = d
                .parse()
                .map_err(|e| invalid(reference.clone(), format!("{e}")))?;
            if parsed.algorithm() != gitops_core::Algorithm::Sha256 {
                return Err(invalid(
                    reference,
                    "only sha256 digests are supported".into(),
                ));
            }
            (Selector::Digest(parsed.to_string()), reference)
        } else if let Some(s) = &r.semver {
            let reference = format!("semver {s:?}");
            let range = Range::parse(s).map_err(|e| invalid(reference.clone(), e.to_string()))?;
            let filter = r
                .semver_filter
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| {
                    invalid(format!("semverFilter {:?}", r.semver_filter), e.to_string())
                })?;
            (Selector::Semver { range, filter }, reference)
        } else {
            let tag = r.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string());
            (Selector::Tag(tag.clone()), format!("tag {tag:?}"))
        };
        if auth != OciAuth::Anonymous && spec.insecure {
            tracing::warn!(url = %repo.url, "sending registry credentials over plain http");
        }
        let timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let registry = Registry::new(repo, &auth, spec.insecure, timeout);
        Ok(OciSource {
            key,
            spec,
            auth,
            registry,
            selector,
            reference,
            timeout,
            limits: ExtractLimits::default(),
        })
    }

    /// Sets the limits for extracting a layer (default [`ExtractLimits::default`], 100 MiB as
    /// Flux's untar cap).
    pub fn with_limits(mut self, limits: ExtractLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The store key artifacts are written under.
    pub fn key(&self) -> &ArtifactKey {
        &self.key
    }

    /// The spec this source was built from.
    pub fn spec(&self) -> &OciRepositorySpec {
        &self.spec
    }

    /// The effective timeout of one fetch.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Resolves the revision the spec selects (`<tag>@sha256:<hex>` or `sha256:<hex>`): lists
    /// tags for semver, then a `HEAD` on the manifest. No blob is downloaded.
    pub async fn resolve(&self) -> Result<Revision, OciError> {
        let reg = &self.registry;
        let (tag, digest) = match &self.selector {
            Selector::Digest(d) => {
                let got = reg
                    .manifest_digest(&reg.repo.with_digest(d), &self.reference)
                    .await?;
                (None, got)
            }
            Selector::Tag(t) => {
                let d = reg
                    .manifest_digest(&reg.repo.with_tag(t), &self.reference)
                    .await?;
                (Some(t.clone()), d)
            }
            Selector::Semver { range, filter } => {
                let tags = reg.tags(&self.reference).await?;
                let candidates: Vec<&str> = tags
                    .iter()
                    .map(String::as_str)
                    .filter(|t| filter.as_ref().is_none_or(|f| f.is_match(t)))
                    .collect();
                let (tag, _) = range
                    .best_match(candidates.iter().copied())
                    .ok_or_else(|| OciError::NotFound {
                        url: reg.repo.url.clone(),
                        reference: self.reference.clone(),
                        reason: format!(
                            "no tag matches among {} tags ({} after the filter)",
                            tags.len(),
                            candidates.len()
                        ),
                    })?;
                let d = reg
                    .manifest_digest(&reg.repo.with_tag(tag), &self.reference)
                    .await?;
                (Some(tag.to_string()), d)
            }
        };
        let digest: Digest = digest.parse().map_err(|e| OciError::Registry {
            url: reg.repo.url.clone(),
            reference: self.reference.clone(),
            operation: "resolving the manifest digest".into(),
            message: format!("the registry returned digest {digest:?}: {e}"),
        })?;
        Ok(match tag {
            Some(t) => Revision::named(t, digest),
            None => Revision::digest_only(digest),
        })
    }

    fn selector_fingerprint(&self) -> String {
        let ls = self.spec.layer_selector.clone().unwrap_or_default();
        let op = match ls.operation.unwrap_or_default() {
            LayerOperation::Extract => "extract",
            LayerOperation::Copy => "copy",
        };
        format!("{}|{op}", ls.media_type.as_deref().unwrap_or("*"))
    }

    async fn run(
        &self,
        store: &ArtifactStore,
        last: Option<&Artifact>,
    ) -> Result<Fetched, OciError> {
        let revision = self.resolve().await?;
        let selector = self.selector_fingerprint();
        let ignore = ignore_fingerprint(self.spec.ignore.as_deref());
        if let Some(last) = last {
            let meta = |k: &str| last.metadata.get(k).map(String::as_str);
            if last.has_revision(&revision)
                && meta(METADATA_LAYER_SELECTOR) == Some(selector.as_str())
                && meta(METADATA_IGNORE) == Some(ignore.as_str())
                && store.local_path(last).is_file()
            {
                tracing::debug!(url = %self.registry.repo.url, %revision, "oci revision unchanged");
                return Ok(Fetched::Unchanged(last.clone()));
            }
        }
        let ls = self.spec.layer_selector.clone().unwrap_or_default();
        let pulled = self
            .registry
            .pull_layer(
                &revision.digest().to_string(),
                &self.reference,
                ls.media_type.as_deref(),
            )
            .await?;
        let url = self.registry.repo.url.clone();
        let reference = self.reference.clone();
        let store2 = store.clone();
        let key = self.key.clone();
        let limits = self.limits;
        let spec_ignore = self.spec.ignore.clone();
        let op = ls.operation.unwrap_or_default();
        let rev = revision.clone();
        let PulledLayer {
            manifest,
            manifest_digest,
            layer,
            dir,
            file,
        } = pulled;
        let mut artifact = tokio::task::spawn_blocking(move || {
            let local = |context: &str, e: &dyn fmt::Display| OciError::Local {
                url: url.clone(),
                context: context.to_string(),
                message: e.to_string(),
            };
            match op {
                LayerOperation::Extract => {
                    let content = dir.path().join("content");
                    let f =
                        std::fs::File::open(&file).map_err(|e| local("reading the layer", &e))?;
                    gitops_core::store::extract_tar_gz(
                        std::io::BufReader::new(f),
                        Path::new(&layer.digest),
                        &content,
                        limits,
                    )
                    .map_err(|source| OciError::UnsafeLayer {
                        url: url.clone(),
                        reference: reference.clone(),
                        source,
                    })?;
                    let rules = SourceIgnore::load(&content, spec_ignore.as_deref())
                        .map_err(|e| local("reading .sourceignore files", &e))?;
                    let include = |rel: &Path, is_dir: bool| !rules.is_excluded(rel, is_dir);
                    store2
                        .archive_dir(&key, rev, &content, &include)
                        .map_err(|e| local("storing the artifact", &e))
                }
                LayerOperation::Copy => {
                    // The store names and places the file: archive an empty folder to learn the
                    // path, then replace its bytes atomically with the layer's.
                    let empty = dir.path().join("empty");
                    std::fs::create_dir_all(&empty)
                        .map_err(|e| local("creating a temporary folder", &e))?;
                    let mut artifact = store2
                        .archive_dir(&key, rev, &empty, &|_, _| true)
                        .map_err(|e| local("storing the artifact", &e))?;
                    let target = store2.local_path(&artifact);
                    let folder = target.parent().unwrap_or(Path::new("."));
                    let tmp = tempfile::Builder::new()
                        .prefix(".tmp-")
                        .tempfile_in(folder)
                        .map_err(|e| local("storing the artifact", &e))?;
                    std::fs::copy(&file, tmp.path())
                        .map_err(|e| local("storing the artifact", &e))?;
                    tmp.as_file()
                        .sync_all()
                        .map_err(|e| local("storing the artifact", &e))?;
                    tmp.persist(&target)
                        .map_err(|e| local("storing the artifact", &e.error))?;
                    artifact.digest = layer
                        .digest
                        .parse()
                        .map_err(|e| local("storing the artifact", &e))?;
                    artifact.size = u64::try_from(layer.size).unwrap_or(0);
                    Ok(artifact)
                }
            }
        })
        .await
        .map_err(|e| self.registry.local("extract task", e))??;
        let mut metadata = manifest.annotations.clone().unwrap_or_default();
        metadata.insert(METADATA_LAYER_SELECTOR.to_string(), selector);
        metadata.insert(METADATA_IGNORE.to_string(), ignore);
        artifact.metadata = metadata;
        tracing::info!(
            url = %self.registry.repo.url,
            revision = %artifact.revision,
            manifest = %manifest_digest,
            digest = %artifact.digest,
            "stored oci artifact"
        );
        Ok(Fetched::New(artifact))
    }
}

impl Source for OciSource {
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, gitops_core::Error>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.run(store, last)).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(OciError::Timeout {
                    url: self.registry.repo.url.clone(),
                    reference: self.reference.clone(),
                    timeout: self.timeout,
                }
                .into()),
            }
        })
    }
}

fn ignore_fingerprint(ignore: Option<&str>) -> String {
    match ignore {
        None => "default".to_string(),
        Some(text) => Digest::sha256_of(text.as_bytes()).to_string(),
    }
}

/// Packs `dir` and pushes it as a Flux artifact, as `flux push artifact` does: `url` is
/// `oci://host/repo:tag` (tag [`DEFAULT_TAG`] when absent); the content is a deterministic
/// tar.gz of `dir` (the store's archiver: sorted entries, uid/gid 0, mtime 0, normalised modes,
/// symlinks dropped; `.git/` and the other VCS files and `.sourceignore` exclusions left out),
/// pushed as one [`FLUX_CONTENT_MEDIA_TYPE`] layer with a `{}` [`FLUX_CONFIG_MEDIA_TYPE`] config
/// and the manifest annotations [`ANNOTATION_SOURCE`] = `source`, [`ANNOTATION_REVISION`] =
/// `revision` and [`ANNOTATION_CREATED`] = now.
///
/// Returns the manifest digest, `sha256:<hex>`. `insecure` talks plain HTTP.
pub async fn push_artifact(
    url: &str,
    dir: &Path,
    source: &str,
    revision: &str,
    auth: &OciAuth,
    insecure: bool,
) -> Result<String, OciError> {
    let (repo, tag) = RepoUrl::parse(url, true)?;
    let tag = tag.unwrap_or_else(|| DEFAULT_TAG.to_string());
    let reference = format!("tag {tag:?}");
    let reg = Registry::new(repo, auth, insecure, DEFAULT_TIMEOUT);
    let dir = dir.to_path_buf();
    let data = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = ArtifactStore::new(scratch.path()).map_err(|e| e.to_string())?;
        let key =
            ArtifactKey::new("OCIRepository", "push", "artifact").map_err(|e| e.to_string())?;
        // Only the always-on VCS exclusions and .sourceignore files, as `flux push artifact`.
        let rules = SourceIgnore::load(&dir, Some("")).map_err(|e| e.to_string())?;
        let include = |rel: &Path, is_dir: bool| !rules.is_excluded(rel, is_dir);
        let artifact = store
            .archive_dir(
                &key,
                Revision::digest_only(Digest::sha256_of(b"push")),
                &dir,
                &include,
            )
            .map_err(|e| e.to_string())?;
        std::fs::read(store.local_path(&artifact)).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| reg.local("packing the folder", e))?
    .map_err(|e| reg.local("packing the folder", e))?;
    let layer = ImageLayer::new(data, FLUX_CONTENT_MEDIA_TYPE.to_string(), None);
    let config = Config::new(b"{}".to_vec(), FLUX_CONFIG_MEDIA_TYPE.to_string(), None);
    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let annotations = BTreeMap::from([
        (ANNOTATION_CREATED.to_string(), created.to_string()),
        (ANNOTATION_SOURCE.to_string(), source.to_string()),
        (ANNOTATION_REVISION.to_string(), revision.to_string()),
    ]);
    let layers = [layer];
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    let r = reg.repo.with_tag(&tag);
    reg.client
        .push(&r, &layers, config, &reg.auth, Some(manifest))
        .await
        .map_err(|e| reg.error(&reference, "pushing", e))?;
    reg.manifest_digest(&r, &reference).await
}

/// What [`pull_artifact`] pulled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledArtifact {
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// The manifest annotations (source, revision, created for Flux artifacts).
    pub annotations: BTreeMap<String, String>,
    /// The media type of the layer that was extracted.
    pub media_type: String,
}

/// Pulls a Flux artifact and extracts it into `out_dir` (created when missing), as
/// `flux pull artifact` does: `url` is `oci://host/repo:tag` (tag [`DEFAULT_TAG`] when absent);
/// the first layer with [`FLUX_CONTENT_MEDIA_TYPE`] is taken, else the first layer; its digest is
/// verified and it is untarred with the safety checks and default limits of
/// [`gitops_core::store::extract_tar_gz`].
pub async fn pull_artifact(
    url: &str,
    out_dir: &Path,
    auth: &OciAuth,
    insecure: bool,
) -> Result<PulledArtifact, OciError> {
    let (repo, tag) = RepoUrl::parse(url, true)?;
    let tag = tag.unwrap_or_else(|| DEFAULT_TAG.to_string());
    let reference = format!("tag {tag:?}");
    let reg = Registry::new(repo, auth, insecure, DEFAULT_TIMEOUT);
    let digest = reg
        .manifest_digest(&reg.repo.with_tag(&tag), &reference)
        .await?;
    let pulled = match reg
        .pull_layer(&digest, &reference, Some(FLUX_CONTENT_MEDIA_TYPE))
        .await
    {
        Err(OciError::Layer { .. }) => reg.pull_layer(&digest, &reference, None).await?,
        other => other?,
    };
    let out = out_dir.to_path_buf();
    let file = pulled.file.clone();
    let name = PathBuf::from(&pulled.layer.digest);
    let url = reg.repo.url.clone();
    let reference2 = reference.clone();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&file).map_err(|e| OciError::Local {
            url: url.clone(),
            context: "reading the layer".into(),
            message: e.to_string(),
        })?;
        gitops_core::store::extract_tar_gz(
            std::io::BufReader::new(f),
            &name,
            &out,
            ExtractLimits::default(),
        )
        .map_err(|source| OciError::UnsafeLayer {
            url,
            reference: reference2,
            source,
        })
    })
    .await
    .map_err(|e| reg.local("extract task", e))??;
    drop(pulled.dir);
    Ok(PulledArtifact {
        digest: pulled.manifest_digest,
        annotations: pulled.manifest.annotations.unwrap_or_default(),
        media_type: pulled.layer.media_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_as_flux() {
        let (r, tag) = RepoUrl::parse("oci://127.0.0.1:5000/demo/app", false).unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), tag),
            ("127.0.0.1:5000", "demo/app", None)
        );
        let (r, tag) = RepoUrl::parse("oci://ghcr.io/org/app:v1.0.0", true).unwrap();
        assert_eq!(
            (r.repository.as_str(), tag.as_deref()),
            ("org/app", Some("v1.0.0"))
        );
        for bad in [
            "https://ghcr.io/org/app",
            "oci://ghcr.io",
            "oci://ghcr.io/org/app:v1",
            "oci://ghcr.io/org/app@sha256:00",
            "oci://user:pw@ghcr.io/org/app",
            "oci://ghcr.io/Org/App",
            "oci://ghcr.io/org/../app",
        ] {
            assert!(RepoUrl::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_uses_flux_field_names() {
        let spec: OciRepositorySpec = serde_json::from_value(serde_json::json!({
            "url": "oci://ghcr.io/org/app",
            "ref": {"semver": ">=1.0.0", "semverFilter": ".*-rc.*"},
            "layerSelector": {"mediaType": FLUX_CONTENT_MEDIA_TYPE, "operation": "copy"},
            "insecure": true,
            "timeout": "30s",
        }))
        .unwrap();
        assert_eq!(
            spec.reference.as_ref().unwrap().semver.as_deref(),
            Some(">=1.0.0")
        );
        assert_eq!(
            spec.layer_selector.as_ref().unwrap().operation,
            Some(LayerOperation::Copy)
        );
        assert_eq!(spec.timeout, Some(Duration::from_secs(30)));
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["ref"]["semverFilter"], ".*-rc.*");
        assert_eq!(back["layerSelector"]["operation"], "copy");
    }

    #[test]
    fn docker_config_credentials() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
        let json = format!(
            r#"{{"auths":{{"https://reg.example.com/v1/":{{"auth":"{b64}"}},"other:5000":{{"username":"u","password":"p"}},"tok.io":{{"registrytoken":"t0k"}}}}}}"#
        );
        let basic = |u: &str, p: &str| OciAuth::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            OciAuth::from_docker_config(json.as_bytes(), "reg.example.com").unwrap(),
            basic("bob", "s3cret")
        );
        assert_eq!(
            OciAuth::from_docker_config(json.as_bytes(), "other:5000").unwrap(),
            basic("u", "p")
        );
        assert_eq!(
            OciAuth::from_docker_config(json.as_bytes(), "tok.io").unwrap(),
            OciAuth::Bearer("t0k".into())
        );
        assert_eq!(
            OciAuth::from_docker_config(json.as_bytes(), "nope.io").unwrap(),
            OciAuth::Anonymous
        );
        let dbg = format!("{:?}", basic("bob", "s3cret"));
        assert!(!dbg.contains("s3cret"), "{dbg}");
        let err = OciAuth::from_docker_config(br#"{"auths":{"h":{"auth":"!!s3cret"}}}"#, "h")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn validates_references() {
        let key = ArtifactKey::new("OCIRepository", "ns", "n").unwrap();
        let spec = |r: OciReference| OciRepositorySpec {
            url: "oci://127.0.0.1:1/x".into(),
            reference: Some(r),
            ..Default::default()
        };
        for r in [
            OciReference {
                digest: Some("sha256:123".into()),
                ..Default::default()
            },
            OciReference {
                semver: Some("1.0 || not-a-version".into()),
                ..Default::default()
            },
            OciReference {
                semver: Some(">=1".into()),
                semver_filter: Some("(".into()),
                ..Default::default()
            },
        ] {
            let e = OciSource::new(key.clone(), spec(r), OciAuth::Anonymous).unwrap_err();
            assert!(!e.is_retryable(), "{e}");
        }
    }
}
