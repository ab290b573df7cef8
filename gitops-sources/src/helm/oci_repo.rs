//! `type: oci` HelmRepositories: charts stored in an OCI registry as `helm push` stores them.

use std::time::Duration;

use gitops_core::Digest;
use oci_client::manifest::OciDescriptor;
use reqwest::Url;

use super::{ChartVersion, HelmAuth, HelmError, MAX_CHART_SIZE};
use crate::oci::{OciAuth, Registry, RepoUrl};
use crate::semver_range::{Range, parse_version};

/// Media type of the chart layer (the chart `.tgz`) of a Helm chart in an OCI registry, as
/// `helm push` writes it.
pub const HELM_CHART_CONTENT_MEDIA_TYPE: &str =
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Media type of the config blob (the Chart.yaml metadata as JSON) of a Helm chart in an OCI
/// registry, as `helm push` writes it.
pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
/// The chart layer media type of charts pushed by Helm before 3.7, which Helm still pulls.
const LEGACY_CHART_LAYER_MEDIA_TYPE: &str = "application/tar+gzip";

/// The chart's OCI repository, `<HelmRepository url>/<chart>`.
pub(super) struct OciChartRepo {
    /// `oci://host/path/<chart>`, for messages and metadata.
    pub(super) url: String,
    repo: RepoUrl,
    chart: String,
    insecure: bool,
    /// The version when `spec.version` is one exact version: its tag is pulled without listing
    /// tags, as source-controller does.
    exact: Option<String>,
}

/// The selected chart layer.
pub(super) struct OciChartLayer {
    tag: String,
    descriptor: OciDescriptor,
}

impl OciChartRepo {
    /// `url` is the HelmRepository's `oci://host/path`; errors are the reason, for
    /// [`HelmError::InvalidSpec`].
    pub(super) fn new(
        url: &str,
        chart: &str,
        version: &str,
        insecure: bool,
    ) -> Result<OciChartRepo, String> {
        let joined = format!("{}/{chart}", url.trim_end_matches('/'));
        let (repo, _) = RepoUrl::parse(&joined, false).map_err(|e| match e {
            crate::oci::OciError::InvalidUrl { reason, .. } => reason,
            e => e.to_string(),
        })?;
        let exact = semver::Version::parse(version.trim())
            .ok()
            .map(|_| version.trim().to_string());
        Ok(OciChartRepo {
            url: repo.url.clone(),
            repo,
            chart: chart.to_string(),
            insecure,
            exact,
        })
    }

    /// Selects the tag (newest version in `range`, tags with `_` read as `+` as Helm does),
    /// reads its manifest and finds the chart layer.
    pub(super) async fn resolve(
        &self,
        auth: &HelmAuth,
        timeout: Duration,
        range: &Range,
    ) -> Result<(ChartVersion, OciChartLayer, Registry), HelmError> {
        let oci_auth = match auth {
            HelmAuth::None => OciAuth::Anonymous,
            HelmAuth::Basic { user, pass } => OciAuth::Basic {
                username: user.clone(),
                password: pass.clone(),
            },
        };
        let registry = Registry::new(self.repo.clone(), &oci_auth, self.insecure, timeout);
        let version = match &self.exact {
            Some(v) => v.clone(),
            None => self.select(&registry, range).await?,
        };
        // OCI tags cannot hold `+`: Helm writes it as `_`.
        let tag = version.replace('+', "_");
        let reference = format!("tag {tag:?}");
        let (manifest, _) = registry
            .client
            .pull_image_manifest(&self.repo.with_tag(&tag), &registry.auth)
            .await
            .map_err(|e| registry.error(&reference, "pulling the manifest", e))?;
        let shown = format!("{}:{tag}", self.url);
        let invalid = |reason: String| HelmError::InvalidChart {
            url: shown.clone(),
            reason,
        };
        if manifest.config.media_type != HELM_CONFIG_MEDIA_TYPE {
            return Err(invalid(format!(
                "not a Helm chart: the config media type is {:?}, Helm's is {HELM_CONFIG_MEDIA_TYPE:?}",
                manifest.config.media_type
            )));
        }
        let descriptor = manifest
            .layers
            .iter()
            .find(|l| l.media_type == HELM_CHART_CONTENT_MEDIA_TYPE)
            .or_else(|| {
                manifest
                    .layers
                    .iter()
                    .find(|l| l.media_type == LEGACY_CHART_LAYER_MEDIA_TYPE)
            })
            .cloned()
            .ok_or_else(|| {
                invalid(format!(
                    "no layer with media type {HELM_CHART_CONTENT_MEDIA_TYPE:?} (the manifest has {:?})",
                    manifest
                        .layers
                        .iter()
                        .map(|l| l.media_type.as_str())
                        .collect::<Vec<_>>()
                ))
            })?;
        let hex = descriptor
            .digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                invalid(format!(
                    "chart layer digest {:?} is not sha256:<hex>",
                    descriptor.digest
                ))
            })?;
        let url = Url::parse(&shown).map_err(|e| invalid(format!("URL {shown:?}: {e}")))?;
        Ok((
            ChartVersion {
                chart: self.chart.clone(),
                version,
                url,
                digest: Some(hex),
            },
            OciChartLayer { tag, descriptor },
            registry,
        ))
    }

    /// The newest version among the tags that satisfies `range`, Helm's tag spelling (`_` for
    /// `+`) undone.
    async fn select(&self, registry: &Registry, range: &Range) -> Result<String, HelmError> {
        let tags = registry.tags("tags").await?;
        let mut versions: Vec<(semver::Version, String)> = tags
            .iter()
            .map(|t| t.replace('_', "+"))
            .filter_map(|t| parse_version(&t).map(|v| (v, t)))
            .collect();
        versions.sort_by(|(a, _), (b, _)| b.cmp_precedence(a).then_with(|| b.cmp(a)));
        if let Some((_, v)) = versions.iter().find(|(v, _)| range.matches(v)) {
            return Ok(v.clone());
        }
        let mut seen: Vec<String> = versions.into_iter().map(|(_, t)| t).collect();
        seen.extend(
            tags.iter()
                .filter(|t| parse_version(&t.replace('_', "+")).is_none())
                .cloned(),
        );
        Err(HelmError::NoMatchingVersion {
            url: self.url.clone(),
            chart: self.chart.clone(),
            range: range.to_string(),
            seen,
        })
    }

    /// Downloads the chart layer (at most [`MAX_CHART_SIZE`] bytes) and checks its sha256
    /// against the manifest's descriptor.
    pub(super) async fn pull_chart(
        &self,
        registry: &Registry,
        chosen: &ChartVersion,
        layer: &OciChartLayer,
    ) -> Result<Vec<u8>, HelmError> {
        let shown = format!("{}:{}", self.url, layer.tag);
        let operation = "pulling the chart";
        if u64::try_from(layer.descriptor.size).map_or(true, |n| n > MAX_CHART_SIZE) {
            return Err(HelmError::TooLarge {
                url: shown,
                operation,
                limit: MAX_CHART_SIZE,
            });
        }
        let mut bytes = Vec::new();
        registry
            .client
            .pull_blob(
                &self.repo.with_tag(&layer.tag),
                &layer.descriptor,
                &mut bytes,
            )
            .await
            .map_err(|e| {
                registry.error(
                    &format!("tag {:?}", layer.tag),
                    &format!("pulling layer {}", layer.descriptor.digest),
                    e,
                )
            })?;
        let actual = Digest::sha256_of(&bytes);
        let expected = chosen.digest.clone().unwrap_or_default();
        if actual.hex() != expected {
            return Err(HelmError::DigestMismatch {
                url: shown,
                expected,
                actual: actual.hex().to_string(),
            });
        }
        Ok(bytes)
    }
}
