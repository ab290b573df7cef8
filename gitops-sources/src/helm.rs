//! The Helm source: Flux's HelmChart (`source.toolkit.fluxcd.io/v1`) pulled from an HTTP(S)
//! HelmRepository (`type: default`, over reqwest with rustls, ring provider), from an OCI
//! HelmRepository (`type: oci`, over oci-client, see [below](#oci-helm-repositories)), or
//! packaged from a folder of a GitRepository or Bucket artifact ([`build_chart_from_artifact`]).
//!
//! [`HelmChartSource`] implements [`gitops_core::Source`]. One fetch, as Flux's source-controller
//! and Helm's `repo` package do:
//!
//! 1. downloads `<url>/index.yaml` (HTTP basic authentication from [`HelmAuth`], the
//!    repository's `secretRef`; at most [`MAX_INDEX_SIZE`] bytes, Flux's `--helm-index-max-size`)
//!    and parses it as Helm's `IndexFile` (`apiVersion` required, `entries.<chart>[]` with
//!    `version`, `urls`, `digest`, `created`);
//! 2. picks, among the entries of [`HelmChartSpec::chart`] whose `version` parses as semver, the
//!    newest that satisfies [`HelmChartSpec::version`] (a Masterminds range, default `*`, see
//!    [`semver_range`](crate::semver_range)): pre-releases only when the range names one
//!    (`>=1.0.0-0`), as Helm; equal versions are ordered by `created`, newest first (Flux's
//!    `GetChartVersion`);
//! 3. when the last artifact holds that chart, version and index `digest` (and its file is in
//!    the store), returns [`Fetched::Unchanged`] without downloading the chart. Without an index
//!    digest the version alone decides, as Flux does for a cached chart of the same version;
//! 4. otherwise downloads the entry's first URL, resolved against the repository URL when
//!    relative (Helm's `ResolveReferenceURL`), at most [`MAX_CHART_SIZE`] bytes; credentials go
//!    to it only on the repository's host, or everywhere with `passCredentials`;
//! 5. verifies the `.tgz`'s sha256 against the index `digest` when the index has one;
//! 6. stores the chart. The [`ArtifactStore`] only archives folders, so the chart is
//!    **extracted** safely ([`gitops_core::store::extract_tar_gz`]: no absolute paths, no `..`,
//!    no escaping links, size and file-count limits), checked to hold `<chart>/Chart.yaml`, and
//!    archived again with [`ArtifactStore::archive_dir`]. The artifact is a deterministic tar.gz
//!    with the layout of `helm package` (`<chart>/Chart.yaml`, `<chart>/templates/...`), which
//!    Helm's chart loader reads as a chart archive.
//!
//! The revision is [`Revision::named`]`(<chart version>, sha256 of the downloaded .tgz)`: its
//! pointer is Flux's HelmChart revision (the version, e.g. `6.5.0`); the digest is there because
//! [`Revision`] needs one. The artifact's metadata holds [`METADATA_CHART`],
//! [`METADATA_VERSION`], [`METADATA_INDEX_DIGEST`] and [`METADATA_REPOSITORY`].
//!
//! Errors ([`HelmError`]) name the URL they concern (user info stripped) and never the
//! password; [`HelmError::is_retryable`] splits network trouble from content that has to change.
//!
//! # OCI Helm repositories
//!
//! With `type: oci` and `url: oci://host/path`, the chart `podinfo` lives in the OCI repository
//! `host/path/podinfo`, one tag per version, as `helm push` stores it. A fetch, as
//! source-controller's `OCIChartRepository` does:
//!
//! 1. when [`HelmChartSpec::version`] is one exact semver version, that tag is used without
//!    listing tags; otherwise every tag is listed, read as a version with `_` taken for `+`
//!    (OCI tags cannot hold `+`, Helm writes `_`), and the newest that satisfies the range is
//!    selected (pre-releases as for HTTP repositories); none: [`HelmError::NoMatchingVersion`]
//!    naming the range and the tags;
//! 2. the tag's manifest is read: its config must have [`HELM_CONFIG_MEDIA_TYPE`] and it must
//!    have a layer of [`HELM_CHART_CONTENT_MEDIA_TYPE`] (or Helm's legacy
//!    `application/tar+gzip`); the layer's sha256 plays the index `digest`'s part in step 3;
//! 3. the layer (at most [`MAX_CHART_SIZE`] bytes) is downloaded, its sha256 checked against the
//!    manifest's descriptor, and the chart stored as in step 6 above.
//!
//! Credentials: [`HelmAuth::Basic`] (the Secret's `username`/`password`) as registry basic
//! authentication (also for the registry's token flow); `insecure: true` talks plain HTTP.
//! Registry errors are [`HelmError::Oci`] ([`OciError`]), scrubbed of the password. The
//! revision is the chart version, as for HTTP repositories; [`METADATA_REPOSITORY`] is
//! `oci://host/path/<chart>`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use gitops_core::{
    Artifact, ArtifactKey, ArtifactStore, Digest, ExtractLimits, Fetched, Revision, Source, Stage,
    StoreError,
};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::oci::OciError;
use crate::semver_range::{Range, parse_version};
use crate::util::{certificate_problem, error_chain, go_duration, install_crypto_provider};

mod local;
mod oci_repo;

pub use local::{
    MAX_CHART_FILE_SIZE, METADATA_CHART_PATH, METADATA_SOURCE_REVISION, build_chart_from_artifact,
};
pub use oci_repo::{HELM_CHART_CONTENT_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE};

/// Flux's default `spec.timeout` of a HelmRepository: the limit for one fetch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest `index.yaml` accepted, in bytes: Flux's `--helm-index-max-size` default (50 MiB).
pub const MAX_INDEX_SIZE: u64 = 50 << 20;
/// Largest chart `.tgz` accepted, in bytes: Flux's `--helm-chart-max-size` default (10 MiB).
pub const MAX_CHART_SIZE: u64 = 10 << 20;
/// The version range used when [`HelmChartSpec::version`] is empty: any release, as Flux.
pub const DEFAULT_VERSION: &str = "*";
/// Artifact metadata key: the chart name.
pub const METADATA_CHART: &str = "helm.chart";
/// Artifact metadata key: the chart version (Flux's HelmChart revision).
pub const METADATA_VERSION: &str = "helm.chart.version";
/// Artifact metadata key: the index entry's `digest` (sha256 hex of the `.tgz`), empty when the
/// index gave none.
pub const METADATA_INDEX_DIGEST: &str = "helm.chart.digest";
/// Artifact metadata key: the repository URL the chart came from.
pub const METADATA_REPOSITORY: &str = "helm.repository.url";

/// Flux's HelmRepository `spec.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HelmRepositoryType {
    /// `default`: an HTTP(S) chart repository with an `index.yaml`.
    #[default]
    Default,
    /// `oci`: charts stored in an OCI registry (`oci://host/path`), one repository per chart,
    /// one tag per version, as `helm push` stores them.
    Oci,
}

impl HelmRepositoryType {
    fn is_default(&self) -> bool {
        *self == HelmRepositoryType::Default
    }
}

/// A HelmRepository, with the field names of Flux's `HelmRepositorySpec` (camelCase, `timeout`
/// as a Go duration such as `60s`): `type: default` (an HTTP(S) chart repository) or
/// `type: oci` (an OCI registry, see [the module documentation](self#oci-helm-repositories)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepositorySpec {
    /// `http(s)://host[:port]/path`, the folder holding `index.yaml`; for `type: oci`,
    /// `oci://host[:port]/path` (the chart's repository is `<path>/<chart>`). No user info
    /// (credentials go in [`HelmAuth`]).
    pub url: String,
    /// Flux's `type`: `default` (omitted) or `oci`.
    #[serde(
        default,
        rename = "type",
        skip_serializing_if = "HelmRepositoryType::is_default"
    )]
    pub repository_type: HelmRepositoryType,
    /// `type: oci` only: talk plain HTTP to the registry (Flux's `insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Send the credentials also to chart URLs on other hosts than `url`'s (Flux's
    /// `passCredentials`); off: only to `url`'s scheme, host and port.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_credentials: bool,
    /// Limit for one fetch ([`DEFAULT_TIMEOUT`] when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "go_duration")]
    pub timeout: Option<Duration>,
}

/// Flux's `LocalHelmChartSourceReference`: which source object a HelmChart reads. Informational
/// here: [`HelmChartSource`] is given the [`HelmRepositorySpec`] itself, and
/// [`build_chart_from_artifact`] the source's [`Artifact`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSourceRef {
    /// `HelmRepository`, `GitRepository` or `Bucket`.
    pub kind: String,
    /// The object's name, in the HelmChart's namespace.
    pub name: String,
}

/// A HelmChart, with the field names of Flux's `HelmChartSpec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    /// From a HelmRepository: the chart name (a key of the index's `entries`, or the last path
    /// segment of an OCI chart repository). From a GitRepository or Bucket: the chart folder's
    /// path in the source artifact, e.g. `./charts/podinfo`.
    pub chart: String,
    /// Masterminds semver range over the repository's versions, e.g. `>=6.0.0 <6.3.0`, `6.2.x`,
    /// `^6`; empty means [`DEFAULT_VERSION`] (`*`, newest release). Ignored for charts from a
    /// GitRepository or Bucket, as in Flux.
    #[serde(default = "default_version")]
    pub version: String,
    /// The source object this chart comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<HelmChartSourceRef>,
    /// Flux's `reconcileStrategy`, for charts from a GitRepository or Bucket: when a new
    /// artifact is made.
    #[serde(default, skip_serializing_if = "ReconcileStrategy::is_default")]
    pub reconcile_strategy: ReconcileStrategy,
}

/// Flux's HelmChart `reconcileStrategy` (charts from a GitRepository or Bucket only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileStrategy {
    /// `ChartVersion` (default): a new artifact only when the chart's `version` (or name)
    /// changes; new source revisions with the same chart version keep the artifact.
    #[default]
    ChartVersion,
    /// `Revision`: every source revision makes a new artifact; the version gets the build
    /// metadata `+<first 12 hex characters of the source revision's digest>` (replacing any
    /// build metadata it had), as source-controller does.
    Revision,
}

impl ReconcileStrategy {
    fn is_default(&self) -> bool {
        *self == ReconcileStrategy::ChartVersion
    }
}

fn default_version() -> String {
    DEFAULT_VERSION.to_string()
}

/// Repository credentials, from a HelmRepository's `secretRef` (`username`/`password` keys).
/// `Debug` prints `***` for the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum HelmAuth {
    /// No credentials.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
}

impl fmt::Debug for HelmAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelmAuth::None => f.write_str("None"),
            HelmAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("pass", &"***")
                .finish(),
        }
    }
}

/// Errors of the Helm source. URLs are shown without user info; no error holds the password.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// The spec is unusable (URL, version range, CA bundle). Terminal.
    #[error("{}: invalid {what}: {reason}", spec_subject(chart))]
    InvalidSpec {
        /// The chart name (empty for a [`HelmRepositorySource`]).
        chart: String,
        /// e.g. `url "ftp://x"`, `version ">=x"`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The server could not be reached, the connection broke, or it answered a 5xx, 408 or
    /// 429. Retryable.
    #[error("helm repository {url}: {operation}: {message}")]
    Unavailable {
        /// The URL requested.
        url: String,
        /// e.g. `downloading the index`.
        operation: &'static str,
        /// The error chain or the status.
        message: String,
    },
    /// The HTTPS server's certificate was not accepted: not signed by a trusted CA (the system's
    /// roots and the [`HelmChartSource::with_ca_bundle`] certificates), for another host, or
    /// expired. Retryable, like every fetch failure Flux retries at the next interval: the
    /// server's certificate may be renewed, or the secret fixed, without a change of the spec.
    #[error(
        "helm repository {url}: {operation}: TLS certificate verification failed: {message} (is the server's CA in the secret's ca.crt?)"
    )]
    Certificate {
        /// The URL requested.
        url: String,
        /// e.g. `downloading the index`.
        operation: &'static str,
        /// What the TLS library reported.
        message: String,
    },
    /// The server answered 401 or 403. Retryable (the secret may be fixed without changing the
    /// spec).
    #[error("helm repository {url}: {operation}: authentication failed ({status})")]
    Unauthorized {
        /// The URL requested.
        url: String,
        /// e.g. `downloading the index`.
        operation: &'static str,
        /// `401 Unauthorized` or `403 Forbidden`.
        status: StatusCode,
    },
    /// Another 4xx answer, e.g. 404 for a missing index or chart. Terminal.
    #[error("helm repository {url}: {operation}: HTTP {status}")]
    Http {
        /// The URL requested.
        url: String,
        /// e.g. `downloading the chart`.
        operation: &'static str,
        /// The status.
        status: StatusCode,
    },
    /// A download is larger than its limit. Terminal.
    #[error("helm repository {url}: {operation}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// e.g. `downloading the index`.
        operation: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// `index.yaml` does not parse as Helm's index file. Terminal.
    #[error("helm repository index {url}: {reason}")]
    BadIndex {
        /// The index URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The index has no (usable) entry for the chart. Terminal.
    #[error("helm repository index {url}: no chart named {chart:?}")]
    NoChart {
        /// The index URL.
        url: String,
        /// The chart name.
        chart: String,
    },
    /// No version of the chart satisfies the range. Terminal until the repository or spec
    /// changes.
    #[error(
        "helm repository {url}: no {chart:?} chart version matches {range:?}; versions seen: {}",
        seen_list(seen)
    )]
    NoMatchingVersion {
        /// The index URL, or for an OCI repository the chart's `oci://` URL.
        url: String,
        /// The chart name.
        chart: String,
        /// The range as given.
        range: String,
        /// Every version the index lists for the chart (for OCI: every tag), newest first.
        seen: Vec<String>,
    },
    /// The OCI registry of a `type: oci` HelmRepository failed or refused (authentication,
    /// missing tag, network, digest mismatch); retryable as [`OciError::is_retryable`] says.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// `spec.chart` of a chart from a GitRepository or Bucket does not name a usable chart
    /// folder in the source artifact (leaves the artifact, is missing, has no valid
    /// `Chart.yaml`). Terminal until the spec or the source changes.
    #[error("helm chart spec.chart {path:?} in source revision {revision}: {reason}")]
    ChartPath {
        /// `spec.chart` as given.
        path: String,
        /// The source artifact's revision.
        revision: String,
        /// What is wrong.
        reason: String,
    },
    /// The downloaded chart does not hash to the index's `digest` (OCI: the chart layer's
    /// descriptor). Terminal.
    #[error(
        "helm chart {url}: digest mismatch: the repository says sha256:{expected}, downloaded sha256:{actual}"
    )]
    DigestMismatch {
        /// The chart URL.
        url: String,
        /// The index's (or manifest's) digest (hex).
        expected: String,
        /// What was downloaded (hex).
        actual: String,
    },
    /// The chart archive is not a safe tar.gz with `<chart>/Chart.yaml`. Terminal.
    #[error("helm chart {url}: invalid chart archive: {reason}")]
    InvalidChart {
        /// The chart URL.
        url: String,
        /// What is wrong (extraction error or missing Chart.yaml).
        reason: String,
    },
    /// The fetch took longer than the timeout. Retryable.
    #[error("helm repository {url}: timed out after {timeout:?}")]
    Timeout {
        /// The repository URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// Local I/O or the artifact store failed. Retryable.
    #[error("helm chart {chart}: {context}: {message}")]
    Local {
        /// The chart name.
        chart: String,
        /// What was being done.
        context: &'static str,
        /// The error.
        message: String,
    },
}

fn spec_subject(chart: &str) -> String {
    if chart.is_empty() {
        "helm repository".to_string()
    } else {
        format!("helm chart {chart}")
    }
}

fn seen_list(seen: &[String]) -> String {
    const SHOWN: usize = 20;
    if seen.is_empty() {
        return "none".to_string();
    }
    let mut out = seen
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if seen.len() > SHOWN {
        out.push_str(&format!(" and {} more", seen.len() - SHOWN));
    }
    out
}

impl HelmError {
    /// Whether trying again later can help (network, server errors, authentication, local
    /// I/O), as opposed to a spec or repository content that has to change.
    pub fn is_retryable(&self) -> bool {
        if let HelmError::Oci(e) = self {
            return e.is_retryable();
        }
        matches!(
            self,
            HelmError::Unavailable { .. }
                | HelmError::Certificate { .. }
                | HelmError::Unauthorized { .. }
                | HelmError::Timeout { .. }
                | HelmError::Local { .. }
        )
    }
}

impl From<HelmError> for gitops_core::Error {
    fn from(e: HelmError) -> Self {
        let retryable = e.is_retryable();
        gitops_core::Error::new(Stage::Fetch, retryable, e)
    }
}

/// Helm's `IndexFile`, the parts used here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    entries: BTreeMap<String, Option<Vec<IndexEntry>>>,
}

/// Helm's `ChartVersion` (Chart.yaml metadata plus `urls`, `created`, `digest`), the parts used.
#[derive(Clone, Debug, Deserialize)]
struct IndexEntry {
    #[serde(default)]
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    created: Option<String>,
}

/// The index entry a fetch selected: what [`HelmChartSource::resolve`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartVersion {
    /// The chart name.
    pub chart: String,
    /// The version as the index writes it, e.g. `6.5.0`.
    pub version: String,
    /// The chart's download URL, resolved against the repository URL, user info removed.
    pub url: Url,
    /// The index's `digest`: sha256 of the `.tgz` as lowercase hex (a `sha256:` prefix is
    /// dropped); `None` when the index has none.
    pub digest: Option<String>,
}

/// Fetches a chart from a Helm repository into artifacts, as Flux's HelmChart reconciler does.
/// See the [module documentation](self). `Debug` shows no secrets.
pub struct HelmChartSource {
    key: ArtifactKey,
    repo: HelmRepositorySpec,
    chart: HelmChartSpec,
    auth: HelmAuth,
    base: Url,
    range: Range,
    timeout: Duration,
    limits: ExtractLimits,
    client: reqwest::Client,
    /// `Some` for a `type: oci` repository.
    oci: Option<oci_repo::OciChartRepo>,
}

impl fmt::Debug for HelmChartSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelmChartSource")
            .field("key", &self.key)
            .field("url", &self.repo.url)
            .field("chart", &self.chart.chart)
            .field("version", &self.range.to_string())
            .field("pass_credentials", &self.repo.pass_credentials)
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .finish()
    }
}

impl HelmChartSource {
    /// Validates the specs (URL: `http` or `https`, no user info; chart name; version range)
    /// and builds the source; artifacts are stored under `key`. No network access.
    pub fn new(
        key: ArtifactKey,
        repo: HelmRepositorySpec,
        chart: HelmChartSpec,
        auth: HelmAuth,
    ) -> Result<Self, HelmError> {
        let invalid = |what: String, reason: &str| HelmError::InvalidSpec {
            chart: chart.chart.clone(),
            what,
            reason: reason.to_string(),
        };
        if chart.chart.is_empty() || chart.chart.contains(['/', '\\']) || chart.chart == ".." {
            return Err(invalid(
                format!("chart {:?}", chart.chart),
                "expected a chart name from the repository index",
            ));
        }
        let what = || format!("url {:?}", redact_user_info(&repo.url));
        let version = if chart.version.trim().is_empty() {
            DEFAULT_VERSION
        } else {
            chart.version.as_str()
        };
        let range = Range::parse(version)
            .map_err(|e| invalid(format!("version {version:?}"), &e.reason))?;
        let timeout = repo.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let is_oci = repo.url.starts_with("oci://");
        if (repo.repository_type == HelmRepositoryType::Oci) != is_oci {
            return Err(invalid(
                what(),
                "type: oci takes an oci:// URL, type: default an http(s):// one",
            ));
        }
        if is_oci {
            let oci = oci_repo::OciChartRepo::new(&repo.url, &chart.chart, version, repo.insecure)
                .map_err(|reason| invalid(what(), &reason))?;
            let base = Url::parse(&oci.url).map_err(|e| invalid(what(), &e.to_string()))?;
            let client = build_client(timeout, Vec::new()).map_err(|e| invalid(what(), &e))?;
            return Ok(HelmChartSource {
                key,
                repo,
                chart,
                auth,
                base,
                range,
                timeout,
                limits: ExtractLimits::default(),
                client,
                oci: Some(oci),
            });
        }
        let mut base = Url::parse(&repo.url).map_err(|e| invalid(what(), &e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(what(), "expected an http:// or https:// URL"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(invalid(
                what(),
                "the URL must not carry user info (pass credentials separately)",
            ));
        }
        // Helm resolves chart URLs against the repository URL as a folder.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = build_client(timeout, Vec::new()).map_err(|e| invalid(what(), &e))?;
        Ok(HelmChartSource {
            key,
            repo,
            chart,
            auth,
            base,
            range,
            timeout,
            limits: ExtractLimits::default(),
            client,
            oci: None,
        })
    }

    /// Trusts the PEM certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks:
    /// the `ca.crt` key of the HelmRepository's `certSecretRef`, or of its deprecated
    /// `secretRef`, also as `caFile`) for HTTPS, besides the system's roots, as Flux appends
    /// them to the system pool. Calling it again replaces the previous certificates.
    /// HTTP(S) repositories only: a `type: oci` repository uses the built-in roots.
    ///
    /// Errors: [`HelmError::InvalidSpec`] (terminal, naming the repository URL) when `pem` holds
    /// no certificate, is not valid PEM, or a certificate cannot be parsed.
    pub fn with_ca_bundle(mut self, pem: &[u8]) -> Result<Self, HelmError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let invalid = |reason: String| HelmError::InvalidSpec {
            chart: self.chart.chart.clone(),
            what: format!("CA bundle (ca.crt) for {}", redact(&self.base)),
            reason,
        };
        let mut certs = Vec::new();
        for (i, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let der = der.map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
            // Parsed as a trust anchor now, not first when the client is built.
            rustls::RootCertStore::empty()
                .add(der.clone())
                .map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
            certs.push(
                reqwest::Certificate::from_der(&der)
                    .map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?,
            );
        }
        if certs.is_empty() {
            return Err(invalid(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string(),
            ));
        }
        self.client = build_client(self.timeout, certs).map_err(invalid)?;
        Ok(self)
    }

    /// Sets the limits for extracting the chart (default [`ExtractLimits::default`]).
    pub fn with_limits(mut self, limits: ExtractLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The store key artifacts are written under.
    pub fn key(&self) -> &ArtifactKey {
        &self.key
    }

    /// The effective timeout of one fetch.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL of the repository index, `<url>/index.yaml`.
    pub fn index_url(&self) -> Url {
        // `base` ends with `/` and `index.yaml` is a plain relative reference.
        self.base
            .join("index.yaml")
            .unwrap_or_else(|_| self.base.clone())
    }

    /// Downloads the index and selects the chart version (steps 1-2 of the
    /// [module documentation](self)); the chart itself is not downloaded. For a `type: oci`
    /// repository: lists the tags, selects one and reads its manifest (the `url` is
    /// `oci://host/path/<chart>:<tag>`, the `digest` the chart layer's sha256).
    pub async fn resolve(&self) -> Result<ChartVersion, HelmError> {
        if let Some(oci) = &self.oci {
            return Ok(oci.resolve(&self.auth, self.timeout, &self.range).await?.0);
        }
        let index_url = self.index_url();
        let bytes = self
            .get(&index_url, true, MAX_INDEX_SIZE, "downloading the index")
            .await?;
        select(
            &bytes,
            &index_url,
            &self.base,
            &self.chart.chart,
            &self.range,
        )
    }

    /// Whether credentials may go to `url`: same scheme, host and port as the repository, or
    /// `passCredentials`.
    fn may_send_credentials(&self, url: &Url) -> bool {
        self.repo.pass_credentials
            || (url.scheme() == self.base.scheme()
                && url.host_str() == self.base.host_str()
                && url.port_or_known_default() == self.base.port_or_known_default())
    }

    /// GETs `url` (credentials when `credentials` and allowed) into memory, at most `limit` bytes.
    async fn get(
        &self,
        url: &Url,
        credentials: bool,
        limit: u64,
        operation: &'static str,
    ) -> Result<Vec<u8>, HelmError> {
        let shown = redact(url);
        let unavailable = |e: reqwest::Error| {
            let message = error_chain(&e);
            match certificate_problem(&e, &message) {
                Some(problem) => HelmError::Certificate {
                    url: shown.clone(),
                    operation,
                    message: problem,
                },
                None => HelmError::Unavailable {
                    url: shown.clone(),
                    operation,
                    message,
                },
            }
        };
        let mut req = self.client.get(url.clone());
        if let HelmAuth::Basic { user, pass } = &self.auth
            && credentials
            && self.may_send_credentials(url)
        {
            req = req.basic_auth(user, Some(pass));
        }
        let mut resp = req.send().await.map_err(unavailable)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => HelmError::Unauthorized {
                    url: shown,
                    operation,
                    status,
                },
                s if s.is_server_error()
                    || s == StatusCode::REQUEST_TIMEOUT
                    || s == StatusCode::TOO_MANY_REQUESTS =>
                {
                    HelmError::Unavailable {
                        url: shown,
                        operation,
                        message: format!("HTTP {s}"),
                    }
                }
                s => HelmError::Http {
                    url: shown,
                    operation,
                    status: s,
                },
            });
        }
        let too_large = || HelmError::TooLarge {
            url: shown.clone(),
            operation,
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unavailable)? {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn local(&self, context: &'static str, e: impl fmt::Display) -> HelmError {
        HelmError::Local {
            chart: self.chart.chart.clone(),
            context,
            message: e.to_string(),
        }
    }

    async fn run(
        &self,
        store: &ArtifactStore,
        last: Option<&Artifact>,
    ) -> Result<Fetched, HelmError> {
        if let Some(oci) = &self.oci {
            return self.run_oci(oci, store, last).await;
        }
        let chosen = self.resolve().await?;
        let index_digest = chosen.digest.clone().unwrap_or_default();
        let repo_url = redact(&self.base);
        if let Some(last) = last {
            let meta = |k: &str| last.metadata.get(k).map(String::as_str);
            if meta(METADATA_CHART) == Some(chosen.chart.as_str())
                && meta(METADATA_VERSION) == Some(chosen.version.as_str())
                && meta(METADATA_INDEX_DIGEST) == Some(index_digest.as_str())
                && meta(METADATA_REPOSITORY) == Some(repo_url.as_str())
                && last.revision.pointer() == Some(chosen.version.as_str())
                && store.has(last)
            {
                tracing::debug!(chart = %chosen.chart, version = %chosen.version, "helm chart unchanged");
                return Ok(Fetched::Unchanged(last.clone()));
            }
        }
        let bytes = self
            .get(&chosen.url, true, MAX_CHART_SIZE, "downloading the chart")
            .await?;
        let actual = Digest::sha256_of(&bytes);
        if let Some(expected) = &chosen.digest
            && !expected.eq_ignore_ascii_case(actual.hex())
        {
            return Err(HelmError::DigestMismatch {
                url: redact(&chosen.url),
                expected: expected.clone(),
                actual: actual.hex().to_string(),
            });
        }
        self.store(store, chosen, bytes, actual, index_digest, repo_url)
            .await
    }

    /// Steps 3-6 for a `type: oci` repository.
    async fn run_oci(
        &self,
        oci: &oci_repo::OciChartRepo,
        store: &ArtifactStore,
        last: Option<&Artifact>,
    ) -> Result<Fetched, HelmError> {
        let (chosen, layer, registry) = oci.resolve(&self.auth, self.timeout, &self.range).await?;
        let layer_digest = chosen.digest.clone().unwrap_or_default();
        let repo_url = oci.url.clone();
        if let Some(last) = last {
            let meta = |k: &str| last.metadata.get(k).map(String::as_str);
            if meta(METADATA_CHART) == Some(chosen.chart.as_str())
                && meta(METADATA_VERSION) == Some(chosen.version.as_str())
                && meta(METADATA_INDEX_DIGEST) == Some(layer_digest.as_str())
                && meta(METADATA_REPOSITORY) == Some(repo_url.as_str())
                && last.revision.pointer() == Some(chosen.version.as_str())
                && store.has(last)
            {
                tracing::debug!(chart = %chosen.chart, version = %chosen.version, "helm chart unchanged");
                return Ok(Fetched::Unchanged(last.clone()));
            }
        }
        let bytes = oci.pull_chart(&registry, &chosen, &layer).await?;
        let actual = Digest::sha256_of(&bytes);
        self.store(store, chosen, bytes, actual, layer_digest, repo_url)
            .await
    }

    /// Step 6: stores the verified chart `.tgz` as an artifact.
    async fn store(
        &self,
        store: &ArtifactStore,
        chosen: ChartVersion,
        bytes: Vec<u8>,
        actual: Digest,
        index_digest: String,
        repo_url: String,
    ) -> Result<Fetched, HelmError> {
        let revision = Revision::named(chosen.version.clone(), actual);
        let store2 = store.clone();
        let key = self.key.clone();
        let limits = self.limits;
        let chart = chosen.chart.clone();
        let chart_url = redact(&chosen.url);
        let mut artifact = tokio::task::spawn_blocking(move || {
            store_chart(&store2, &key, revision, &bytes, &chart, &chart_url, limits)
        })
        .await
        .map_err(|e| self.local("storing the chart", e))??;
        artifact.metadata = BTreeMap::from([
            (METADATA_CHART.to_string(), chosen.chart.clone()),
            (METADATA_VERSION.to_string(), chosen.version.clone()),
            (METADATA_INDEX_DIGEST.to_string(), index_digest),
            (METADATA_REPOSITORY.to_string(), repo_url),
        ]);
        tracing::info!(
            chart = %chosen.chart,
            version = %chosen.version,
            digest = %artifact.digest,
            "stored helm chart"
        );
        Ok(Fetched::New(artifact))
    }
}

impl Source for HelmChartSource {
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, gitops_core::Error>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.run(store, last)).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(HelmError::Timeout {
                    url: redact(&self.base),
                    timeout: self.timeout,
                }
                .into()),
            }
        })
    }
}

/// The file name of the index in a [`HelmRepositorySource`] artifact.
pub const INDEX_FILE: &str = "index.yaml";

/// Fetches a `type: default` HelmRepository's `index.yaml` into artifacts, as source-controller's
/// HelmRepository reconciler does. `Debug` shows no secrets.
///
/// One fetch downloads `<url>/index.yaml` (credentials from [`HelmAuth`], at most
/// [`MAX_INDEX_SIZE`] bytes), checks that it parses as Helm's index file (`apiVersion`
/// required), and stores it. The revision is `sha256:<hex>` of the downloaded bytes, as Flux's
/// (`ChartRepository.Digest`); when the last artifact has it (and its file is in the store),
/// [`Fetched::Unchanged`]. Flux stores the index verbatim as `index-<hex>.yaml`; the
/// [`ArtifactStore`] holds tar.gz archives only, so here the artifact is a tar.gz holding the
/// verbatim bytes as [`INDEX_FILE`].
///
/// `type: oci` repositories have no index: Flux keeps no artifact (and no status) for them, and
/// [`HelmRepositorySource::new`] refuses them.
pub struct HelmRepositorySource {
    inner: HelmChartSource,
}

impl fmt::Debug for HelmRepositorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelmRepositorySource")
            .field("key", &self.inner.key)
            .field("url", &self.inner.repo.url)
            .field("timeout", &self.inner.timeout)
            .field("auth", &self.inner.auth)
            .finish()
    }
}

impl HelmRepositorySource {
    /// Validates the spec (`type: default`, an `http(s)://` URL without user info) and builds
    /// the source; artifacts are stored under `key`. No network access.
    pub fn new(
        key: ArtifactKey,
        repo: HelmRepositorySpec,
        auth: HelmAuth,
    ) -> Result<Self, HelmError> {
        if repo.repository_type == HelmRepositoryType::Oci || repo.url.starts_with("oci://") {
            return Err(HelmError::InvalidSpec {
                chart: String::new(),
                what: format!("url {:?}", repo.url),
                reason: "type: oci repositories have no index (Flux keeps no artifact for them)"
                    .to_string(),
            });
        }
        let chart = HelmChartSpec {
            // Only to pass the chart-name check: the index source never selects a chart.
            chart: "index".to_string(),
            ..Default::default()
        };
        let inner = HelmChartSource::new(key, repo, chart, auth).map_err(|e| match e {
            HelmError::InvalidSpec { what, reason, .. } => HelmError::InvalidSpec {
                chart: String::new(),
                what,
                reason,
            },
            e => e,
        })?;
        Ok(HelmRepositorySource { inner })
    }

    /// Trusts the PEM certificates in `pem` besides the built-in roots, as
    /// [`HelmChartSource::with_ca_bundle`].
    pub fn with_ca_bundle(self, pem: &[u8]) -> Result<Self, HelmError> {
        Ok(HelmRepositorySource {
            inner: self.inner.with_ca_bundle(pem)?,
        })
    }

    /// The URL of the repository index, `<url>/index.yaml`.
    pub fn index_url(&self) -> Url {
        self.inner.index_url()
    }

    async fn run(
        &self,
        store: &ArtifactStore,
        last: Option<&Artifact>,
    ) -> Result<Fetched, HelmError> {
        let index_url = self.index_url();
        let bytes = self
            .inner
            .get(&index_url, true, MAX_INDEX_SIZE, "downloading the index")
            .await?;
        let shown = redact(&index_url);
        let bad = |reason: String| HelmError::BadIndex {
            url: shown.clone(),
            reason,
        };
        let index: IndexFile = serde_yaml_ng::from_slice(&bytes)
            .map_err(|e| bad(format!("not a Helm index file: {e}")))?;
        if index.api_version.is_empty() {
            return Err(bad("no apiVersion (Helm refuses such an index)".to_string()));
        }
        let revision = Revision::digest_only(Digest::sha256_of(&bytes));
        if let Some(last) = last
            && last.has_revision(&revision)
            && store.has(last)
        {
            return Ok(Fetched::Unchanged(last.clone()));
        }
        let local = |context: &'static str, e: &dyn fmt::Display| HelmError::Local {
            chart: String::new(),
            context,
            message: e.to_string(),
        };
        let store2 = store.clone();
        let key = self.inner.key.clone();
        let repo_url = redact(&self.inner.base);
        let mut artifact = tokio::task::spawn_blocking(move || {
            let tmp = tempfile::Builder::new()
                .prefix("gitops-helm-index-")
                .tempdir()
                .map_err(|e| local("creating a temporary folder", &e))?;
            std::fs::write(tmp.path().join(INDEX_FILE), &bytes)
                .map_err(|e| local("writing the index", &e))?;
            store2
                .archive_dir(&key, revision, tmp.path(), &|_, _| true)
                .map_err(|e| local("storing the artifact", &e))
        })
        .await
        .map_err(|e| self.inner.local("storing the index", e))??;
        artifact.metadata = BTreeMap::from([(METADATA_REPOSITORY.to_string(), repo_url)]);
        tracing::info!(url = %shown, revision = %artifact.revision, "stored helm repository index");
        Ok(Fetched::New(artifact))
    }
}

impl Source for HelmRepositorySource {
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, gitops_core::Error>> {
        Box::pin(async move {
            match tokio::time::timeout(self.inner.timeout, self.run(store, last)).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Err(HelmError::Timeout {
                    url: redact(&self.inner.base),
                    timeout: self.inner.timeout,
                }
                .into()),
            }
        })
    }
}

/// Parses the index and picks the newest entry of `chart` in `range` (Flux's
/// `GetChartVersion`).
fn select(
    bytes: &[u8],
    index_url: &Url,
    base: &Url,
    chart: &str,
    range: &Range,
) -> Result<ChartVersion, HelmError> {
    let shown = redact(index_url);
    let bad = |reason: String| HelmError::BadIndex {
        url: shown.clone(),
        reason,
    };
    let index: IndexFile =
        serde_yaml_ng::from_slice(bytes).map_err(|e| bad(format!("not a Helm index file: {e}")))?;
    if index.api_version.is_empty() {
        return Err(bad("no apiVersion (Helm refuses such an index)".to_string()));
    }
    let entries = index
        .entries
        .get(chart)
        .and_then(Option::as_ref)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| HelmError::NoChart {
            url: shown.clone(),
            chart: chart.to_string(),
        })?;
    let created = |e: &IndexEntry| {
        e.created
            .as_deref()
            .and_then(|c| c.parse::<jiff::Timestamp>().ok())
    };
    let mut candidates: Vec<(semver::Version, &IndexEntry)> = entries
        .iter()
        .filter_map(|e| parse_version(&e.version).map(|v| (v, e)))
        .collect();
    // Newest first; equal versions by `created`, newest first.
    candidates.sort_by(|(va, ea), (vb, eb)| {
        vb.cmp_precedence(va)
            .then_with(|| created(eb).cmp(&created(ea)))
    });
    let Some((_, entry)) = candidates.iter().find(|(v, _)| range.matches(v)) else {
        let mut seen: Vec<String> = candidates.iter().map(|(_, e)| e.version.clone()).collect();
        seen.extend(
            entries
                .iter()
                .filter(|e| parse_version(&e.version).is_none())
                .map(|e| e.version.clone()),
        );
        seen.dedup();
        return Err(HelmError::NoMatchingVersion {
            url: shown,
            chart: chart.to_string(),
            range: range.to_string(),
            seen,
        });
    };
    let first = entry.urls.first().ok_or_else(|| {
        bad(format!(
            "chart {chart:?} version {} has no urls",
            entry.version
        ))
    })?;
    let mut url = base.join(first).map_err(|e| {
        bad(format!(
            "chart {chart:?} version {}: url {first:?}: {e}",
            entry.version
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "chart {chart:?} version {}: url {first:?} is not http(s)",
            entry.version
        )));
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let digest = match entry.digest.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => {
            let lower = d.to_ascii_lowercase();
            let hex = lower.strip_prefix("sha256:").unwrap_or(&lower).to_string();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!(
                    "chart {chart:?} version {}: digest {d:?} is not a sha256 hex",
                    entry.version
                )));
            }
            Some(hex)
        }
    };
    Ok(ChartVersion {
        chart: chart.to_string(),
        version: entry.version.clone(),
        url,
        digest,
    })
}

/// Extracts the chart into a temporary folder, checks `<chart>/Chart.yaml` and archives it.
fn store_chart(
    store: &ArtifactStore,
    key: &ArtifactKey,
    revision: Revision,
    bytes: &[u8],
    chart: &str,
    chart_url: &str,
    limits: ExtractLimits,
) -> Result<Artifact, HelmError> {
    let local = |context: &'static str, e: &dyn fmt::Display| HelmError::Local {
        chart: chart.to_string(),
        context,
        message: e.to_string(),
    };
    let invalid = |reason: String| HelmError::InvalidChart {
        url: chart_url.to_string(),
        reason,
    };
    let tmp = tempfile::Builder::new()
        .prefix("gitops-helm-")
        .tempdir()
        .map_err(|e| local("creating a temporary folder", &e))?;
    let content = tmp.path().join("chart");
    gitops_core::store::extract_tar_gz(bytes, Path::new(chart_url), &content, limits).map_err(
        |e| match e {
            StoreError::Io { .. } if !content.is_dir() => local("extracting the chart", &e),
            e => invalid(e.to_string()),
        },
    )?;
    if !content.join(chart).join("Chart.yaml").is_file() {
        return Err(invalid(format!("no {chart}/Chart.yaml in the archive")));
    }
    store
        .archive_dir(key, revision, &content, &|_, _| true)
        .map_err(|e| local("storing the artifact", &e))
}

/// A reqwest client on rustls (ring) with `extra_roots` trusted besides the built-in ones.
fn build_client(
    timeout: Duration,
    extra_roots: Vec<reqwest::Certificate>,
) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout);
    if !extra_roots.is_empty() {
        builder = builder.tls_certs_merge(extra_roots);
    }
    builder.build().map_err(|e| error_chain(&e))
}

/// `url` as given, with any user info between `://` and the host replaced by `***@`, for
/// messages about URLs that may not parse.
fn redact_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The URL without user info, for messages.
fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(index: &str, range: &str) -> Result<ChartVersion, HelmError> {
        let base = Url::parse("http://example.invalid/charts/").unwrap();
        let index_url = base.join("index.yaml").unwrap();
        select(
            index.as_bytes(),
            &index_url,
            &base,
            "podinfo",
            &Range::parse(range).unwrap(),
        )
    }

    const INDEX: &str = r#"
apiVersion: v1
entries:
  podinfo:
  - version: 6.2.0
    urls: [podinfo-6.2.0.tgz]
  - version: 6.5.0
    urls: [https://cdn.example.invalid/podinfo-6.5.0.tgz]
    digest: SHA256:0000000000000000000000000000000000000000000000000000000000000000
  - version: 6.6.0-rc.1
    urls: [podinfo-6.6.0-rc.1.tgz]
  - version: not-a-version
    urls: [x.tgz]
"#;

    #[test]
    fn picks_newest_release_and_resolves_urls() {
        let v = pick(INDEX, "*").unwrap();
        assert_eq!(v.version, "6.5.0");
        assert_eq!(
            v.url.as_str(),
            "https://cdn.example.invalid/podinfo-6.5.0.tgz"
        );
        assert_eq!(v.digest.as_deref(), Some(&"0".repeat(64)[..]));
        let v = pick(INDEX, "<6.5.0").unwrap();
        assert_eq!(
            v.url.as_str(),
            "http://example.invalid/charts/podinfo-6.2.0.tgz"
        );
        assert_eq!(v.digest, None);
        assert_eq!(pick(INDEX, ">=6.0.0-0").unwrap().version, "6.6.0-rc.1");
    }

    #[test]
    fn no_match_lists_versions_seen() {
        let e = pick(INDEX, ">=7").unwrap_err().to_string();
        assert!(e.contains("\">=7\""), "{e}");
        assert!(e.contains("6.6.0-rc.1, 6.5.0, 6.2.0, not-a-version"), "{e}");
    }

    #[test]
    fn bad_index_names_the_url() {
        let e = pick("entries: {}\n", "*").unwrap_err();
        assert!(matches!(e, HelmError::BadIndex { .. }));
        assert!(
            e.to_string()
                .contains("http://example.invalid/charts/index.yaml")
        );
        let e = pick(":\n- [", "*").unwrap_err();
        assert!(matches!(e, HelmError::BadIndex { .. }), "{e}");
    }

    fn podinfo_source() -> HelmChartSource {
        HelmChartSource::new(
            ArtifactKey::new("HelmChart", "default", "podinfo").unwrap(),
            HelmRepositorySpec {
                url: "https://charts.example.invalid/podinfo".into(),
                ..Default::default()
            },
            HelmChartSpec {
                chart: "podinfo".into(),
                version: String::new(),
                source_ref: None,
                ..Default::default()
            },
            HelmAuth::None,
        )
        .unwrap()
    }

    #[test]
    fn index_url_and_ca_bundle() {
        let src = podinfo_source();
        assert_eq!(
            src.index_url().as_str(),
            "https://charts.example.invalid/podinfo/index.yaml"
        );
        let e = src.with_ca_bundle(b"not a certificate").unwrap_err();
        assert!(matches!(e, HelmError::InvalidSpec { .. }), "{e}");
        // A real PEM certificate, when openssl is there to make one.
        let dir = tempfile::tempdir().unwrap();
        let (key, crt) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=charts.example.invalid", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .is_ok_and(|o| o.status.success());
        if made {
            let pem = std::fs::read(&crt).unwrap();
            podinfo_source().with_ca_bundle(&pem).unwrap();
        }
    }

    #[test]
    fn invalid_specs_are_refused() {
        let key = ArtifactKey::new("HelmChart", "default", "podinfo").unwrap();
        let chart = HelmChartSpec {
            chart: "podinfo".into(),
            version: "*".into(),
            source_ref: None,
            ..Default::default()
        };
        for url in ["ftp://x/charts", "https://user:pw@x/charts", "not a url"] {
            let repo = HelmRepositorySpec {
                url: url.into(),
                ..Default::default()
            };
            let e =
                HelmChartSource::new(key.clone(), repo, chart.clone(), HelmAuth::None).unwrap_err();
            assert!(matches!(e, HelmError::InvalidSpec { .. }), "{url}: {e}");
            assert!(!e.to_string().contains(":pw@"), "{e}");
        }
        let oci = HelmRepositorySpec {
            url: "oci://user:pw@registry.example.invalid/charts".into(),
            repository_type: HelmRepositoryType::Oci,
            ..Default::default()
        };
        let e = HelmChartSource::new(key.clone(), oci, chart.clone(), HelmAuth::None).unwrap_err();
        assert!(
            e.to_string()
                .contains("oci://***@registry.example.invalid/charts"),
            "{e}"
        );
        let repo = HelmRepositorySpec {
            url: "https://x/charts".into(),
            ..Default::default()
        };
        let bad_range = HelmChartSpec {
            version: ">=x.y".into(),
            ..chart
        };
        let e = HelmChartSource::new(key, repo, bad_range, HelmAuth::None).unwrap_err();
        assert!(e.to_string().contains(">=x.y"), "{e}");
    }

    #[test]
    fn auth_debug_is_redacted() {
        let a = HelmAuth::Basic {
            user: "u".into(),
            pass: "s3cr3t".into(),
        };
        assert!(!format!("{a:?}").contains("s3cr3t"));
    }

    #[test]
    fn spec_uses_flux_field_names() {
        let c: HelmChartSpec = serde_json::from_value(serde_json::json!({
            "chart": "podinfo",
            "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}
        }))
        .unwrap();
        assert_eq!(c.version, "*");
        let r: HelmRepositorySpec = serde_json::from_value(serde_json::json!({
            "url": "https://stefanprodan.github.io/podinfo",
            "passCredentials": true,
            "timeout": "1m"
        }))
        .unwrap();
        assert!(r.pass_credentials);
        assert_eq!(r.timeout, Some(Duration::from_secs(60)));
    }
}
