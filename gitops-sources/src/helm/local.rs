//! Charts from a GitRepository or Bucket artifact: a chart folder at `spec.chart` in the source
//! artifact, packaged as `helm package` lays it out, as source-controller's local chart builder
//! does.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Digest, Fetched, Revision, StoreError};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde::Deserialize;

use super::{HelmChartSpec, HelmError, METADATA_CHART, METADATA_VERSION, ReconcileStrategy};
use crate::semver_range::parse_version;

/// Artifact metadata key: `spec.chart`, the chart folder's path in the source artifact, as
/// normalized (`charts/podinfo`); only on charts built from a GitRepository or Bucket.
pub const METADATA_CHART_PATH: &str = "helm.chart.path";
/// Artifact metadata key: the source artifact's revision the chart was packaged from (Flux's
/// `status.observedSourceArtifactRevision`).
pub const METADATA_SOURCE_REVISION: &str = "helm.source.revision";
/// Largest `Chart.yaml` read, in bytes: Flux's `--helm-chart-file-max-size` default (5 MiB).
pub const MAX_CHART_FILE_SIZE: u64 = 5 << 20;

/// Helm's ignore file in a chart folder.
const HELMIGNORE: &str = ".helmignore";
/// The rule Helm adds to every `.helmignore` (`ignore.AddDefaults`): dot files in `templates/`.
const HELM_DEFAULT_IGNORE: &str = "templates/.?*";

/// The parts of `Chart.yaml` used here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChartMetadata {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

/// Builds the chart at `spec.chart` in the `source` artifact (of a GitRepository or Bucket)
/// into an artifact under `key`, as source-controller's HelmChart reconciler does for a local
/// chart source. Blocking (file I/O): call it from `spawn_blocking` in async code.
///
/// 1. `spec.chart` (`./charts/podinfo`, `charts/podinfo/`, or a packaged chart such as
///    `./releases/podinfo-6.5.0.tgz`, extracted safely) is a relative path; one that is empty,
///    absolute or leaves the artifact through `..` is refused ([`HelmError::ChartPath`]);
/// 2. the source artifact is verified and extracted safely ([`ArtifactStore::extract`]: no
///    absolute paths, no `..`, no escaping links, the store's limits) into a temporary folder;
/// 3. `<spec.chart>/Chart.yaml` (at most [`MAX_CHART_FILE_SIZE`] bytes) must have
///    `apiVersion`, `name` and a semver `version`, as Helm's `Metadata.Validate`;
/// 4. the version: `Chart.yaml`'s; with [`ReconcileStrategy::Revision`] its build metadata is
///    set to the first 12 hex characters of the source revision's digest (the commit for Git,
///    the index digest for a Bucket): `6.5.0` at `main@sha1:5394cb7f4833...` is
///    `6.5.0+5394cb7f4833`;
/// 5. when `last` holds the same chart name, version and path (and its file is in the store),
///    returns [`Fetched::Unchanged`]: with the default [`ReconcileStrategy::ChartVersion`] a new
///    source revision alone does not make a new artifact, as in Flux;
/// 6. otherwise copies the chart folder into `<name>/` (the layout of `helm package`), leaving
///    out what the chart's `.helmignore` excludes (gitignore syntax; plus Helm's default
///    `templates/.?*`) and symlinked folders, writes the version into `Chart.yaml` when step 4
///    changed it, and archives it with [`ArtifactStore::archive_dir`].
///
/// The artifact's revision is [`Revision::named`]`(<version>, <digest>)`: the pointer is Flux's
/// HelmChart revision (the version); the digest is a sha256 over the packaged files (each
/// relative path and content, sorted), so the same chart content gives the same file. Metadata:
/// [`METADATA_CHART`], [`METADATA_VERSION`], [`METADATA_CHART_PATH`],
/// [`METADATA_SOURCE_REVISION`]. Dependencies in `charts/` are packaged as they are (no
/// `helm dependency build`), and `valuesFiles` are not merged.
///
/// Errors: [`HelmError::ChartPath`] for a bad `spec.chart` or `Chart.yaml` (terminal);
/// [`HelmError::InvalidChart`] for a source artifact that is unsafe to extract (terminal);
/// [`HelmError::Local`] for I/O and store failures (retryable).
pub fn build_chart_from_artifact(
    store: &ArtifactStore,
    key: &ArtifactKey,
    spec: &HelmChartSpec,
    source: &Artifact,
    last: Option<&Artifact>,
) -> Result<Fetched, HelmError> {
    let source_revision = source.revision.to_string();
    let bad_path = |reason: String| HelmError::ChartPath {
        path: spec.chart.clone(),
        revision: source_revision.clone(),
        reason,
    };
    let local = |context: &'static str, e: &dyn fmt::Display| HelmError::Local {
        chart: spec.chart.clone(),
        context,
        message: e.to_string(),
    };
    let rel = chart_path(&spec.chart).map_err(|r| bad_path(r.to_string()))?;
    let rel_shown = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");

    let tmp = tempfile::Builder::new()
        .prefix("gitops-helm-local-")
        .tempdir()
        .map_err(|e| local("creating a temporary folder", &e))?;
    let src_root = tmp.path().join("source");
    store.extract(source, &src_root).map_err(|e| match e {
        StoreError::Io { .. } => local("extracting the source artifact", &e),
        e => HelmError::InvalidChart {
            url: source.path.clone(),
            reason: e.to_string(),
        },
    })?;
    let mut chart_dir = src_root.join(&rel);
    // The path itself may be a link: it must resolve inside the extracted artifact.
    let real_root = std::fs::canonicalize(&src_root)
        .map_err(|e| local("resolving the extracted artifact", &e))?;
    match std::fs::canonicalize(&chart_dir) {
        Ok(real) if real.starts_with(&real_root) && real.is_dir() => {}
        Ok(real)
            if real.starts_with(&real_root) && real.is_file() && rel_shown.ends_with(".tgz") =>
        {
            chart_dir =
                unpack_packaged_chart(&real, &tmp.path().join("packaged")).map_err(bad_path)?;
        }
        Ok(real) if real.starts_with(&real_root) => {
            return Err(bad_path(
                "neither a chart folder nor a packaged chart (.tgz) in the source artifact"
                    .to_string(),
            ));
        }
        Ok(_) => return Err(bad_path("resolves outside the source artifact".to_string())),
        Err(_) => {
            return Err(bad_path(
                "no such folder in the source artifact".to_string(),
            ));
        }
    }

    let meta = read_chart_yaml(&chart_dir.join("Chart.yaml")).map_err(bad_path)?;
    let version = match spec.reconcile_strategy {
        ReconcileStrategy::ChartVersion => meta.version.clone(),
        ReconcileStrategy::Revision => {
            let mut v = parse_version(&meta.version).ok_or_else(|| {
                bad_path(format!(
                    "Chart.yaml: version {:?} is not semver",
                    meta.version
                ))
            })?;
            let hex = source.revision.digest().hex();
            let short = &hex[..hex.len().min(12)];
            v.build = semver::BuildMetadata::new(short)
                .map_err(|e| bad_path(format!("build metadata {short:?}: {e}")))?;
            v.to_string()
        }
    };

    if let Some(last) = last {
        let m = |k: &str| last.metadata.get(k).map(String::as_str);
        if m(METADATA_CHART) == Some(meta.name.as_str())
            && m(METADATA_VERSION) == Some(version.as_str())
            && m(METADATA_CHART_PATH) == Some(rel_shown.as_str())
            && last.revision.pointer() == Some(version.as_str())
            && store.has(last)
        {
            tracing::debug!(chart = %meta.name, %version, "helm chart unchanged");
            return Ok(Fetched::Unchanged(last.clone()));
        }
    }

    let pkg = tmp.path().join("package");
    let dest = pkg.join(&meta.name);
    let ignore = helmignore(&chart_dir).map_err(bad_path)?;
    let mut files = Vec::new();
    copy_chart(&chart_dir, &chart_dir, &dest, &ignore, &mut files)
        .map_err(|e| local("copying the chart", &e))?;
    if version != meta.version {
        let chart_yaml = dest.join("Chart.yaml");
        let text =
            std::fs::read_to_string(&chart_yaml).map_err(|e| local("rewriting Chart.yaml", &e))?;
        // A new file: the copy may have kept a read-only mode.
        std::fs::remove_file(&chart_yaml).map_err(|e| local("rewriting Chart.yaml", &e))?;
        std::fs::write(&chart_yaml, set_version(&text, &version))
            .map_err(|e| local("rewriting Chart.yaml", &e))?;
    }
    let digest = tree_digest(&pkg, &files).map_err(|e| local("hashing the chart", &e))?;
    let mut artifact = store
        .archive_dir(
            key,
            Revision::named(version.clone(), digest),
            &pkg,
            &|_, _| true,
        )
        .map_err(|e| local("storing the artifact", &e))?;
    artifact.metadata = BTreeMap::from([
        (METADATA_CHART.to_string(), meta.name.clone()),
        (METADATA_VERSION.to_string(), version.clone()),
        (METADATA_CHART_PATH.to_string(), rel_shown),
        (METADATA_SOURCE_REVISION.to_string(), source_revision),
    ]);
    tracing::info!(chart = %meta.name, %version, digest = %artifact.digest, "packaged helm chart");
    Ok(Fetched::New(artifact))
}

/// Extracts a packaged chart (`helm package`'s `.tgz`, one top folder) safely into `dest`
/// ([`gitops_core::store::extract_tar_gz`] with the default limits) and returns its chart folder.
fn unpack_packaged_chart(tgz: &Path, dest: &Path) -> Result<PathBuf, String> {
    let file = std::fs::File::open(tgz).map_err(|e| e.to_string())?;
    gitops_core::store::extract_tar_gz(
        std::io::BufReader::new(file),
        tgz,
        dest,
        gitops_core::ExtractLimits::default(),
    )
    .map_err(|e| format!("not a safe chart archive: {e}"))?;
    let mut tops = std::fs::read_dir(dest)
        .map_err(|e| e.to_string())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    tops.retain(|p| p.join("Chart.yaml").is_file());
    match tops.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err("the chart archive has no single <name>/Chart.yaml folder".to_string()),
    }
}

/// `spec.chart` as a relative path inside the artifact (`.` and empty segments dropped, `..`
/// resolved, never above the root).
fn chart_path(chart: &str) -> Result<PathBuf, &'static str> {
    if chart.starts_with('/') || chart.contains('\\') {
        return Err("expected a relative path with / separators inside the source artifact");
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in chart.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err("the path leaves the source artifact");
                }
            }
            s => out.push(s),
        }
    }
    if out.is_empty() {
        return Err("expected the path of a chart folder, e.g. ./charts/podinfo");
    }
    let p: PathBuf = out.iter().collect();
    debug_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(p)
}

/// Reads and validates `Chart.yaml` (Helm's `Metadata.Validate`, the parts used).
fn read_chart_yaml(path: &Path) -> Result<ChartMetadata, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("Chart.yaml: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_CHART_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("Chart.yaml: {e}"))?;
    if bytes.len() as u64 > MAX_CHART_FILE_SIZE {
        return Err(format!(
            "Chart.yaml is larger than the limit of {MAX_CHART_FILE_SIZE} bytes"
        ));
    }
    let meta: ChartMetadata =
        serde_yaml_ng::from_slice(&bytes).map_err(|e| format!("Chart.yaml: {e}"))?;
    if meta.api_version.is_empty() {
        return Err("Chart.yaml: apiVersion is required".to_string());
    }
    if meta.name.is_empty() || meta.name.contains(['/', '\\']) || meta.name.starts_with('.') {
        return Err(format!("Chart.yaml: invalid name {:?}", meta.name));
    }
    if parse_version(&meta.version).is_none() {
        return Err(format!(
            "Chart.yaml: version {:?} is not semver",
            meta.version
        ));
    }
    Ok(meta)
}

/// The chart's `.helmignore` rules plus Helm's default.
fn helmignore(chart_dir: &Path) -> Result<Gitignore, String> {
    let mut b = GitignoreBuilder::new(chart_dir);
    let file = chart_dir.join(HELMIGNORE);
    if file.is_file() {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{HELMIGNORE}: {e}"))?;
        for line in text.lines() {
            b.add_line(None, line)
                .map_err(|e| format!("{HELMIGNORE}: {e}"))?;
        }
    }
    b.add_line(None, HELM_DEFAULT_IGNORE)
        .map_err(|e| format!("{HELMIGNORE}: {e}"))?;
    b.build().map_err(|e| format!("{HELMIGNORE}: {e}"))
}

/// Copies `dir` (under `root`) into `dest`, minus ignored paths and symlinked folders; records
/// the copied files' paths relative to `dest`'s parent.
fn copy_chart(
    root: &Path,
    dir: &Path,
    dest: &Path,
    ignore: &Gitignore,
    files: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut children = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    children.sort();
    for path in children {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let link = std::fs::symlink_metadata(&path)?.file_type().is_symlink();
        // Links were checked to stay inside the artifact when it was extracted.
        let meta = std::fs::metadata(&path)?;
        if ignore.matched(rel, meta.is_dir()).is_ignore() {
            continue;
        }
        let target = dest.join(path.file_name().unwrap_or_default());
        if meta.is_dir() {
            if !link {
                copy_chart(root, &path, &target, ignore, files)?;
            }
        } else if meta.is_file() {
            std::fs::copy(&path, &target)?;
            files.push(target);
        }
    }
    Ok(())
}

/// Replaces the top-level `version:` of a `Chart.yaml`.
fn set_version(text: &str, version: &str) -> String {
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                format!("version: {version}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !out.iter().any(|l| l.starts_with("version:")) {
        out.push(format!("version: {version}"));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// sha256 over each file's path (relative to `root`, `/`-separated), length and content, in
/// path order.
fn tree_digest(root: &Path, files: &[PathBuf]) -> std::io::Result<Digest> {
    let mut entries: Vec<(String, &PathBuf)> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap_or(f);
            (rel.to_string_lossy().replace('\\', "/"), f)
        })
        .collect();
    entries.sort();
    let mut listing = Vec::new();
    for (rel, abs) in entries {
        let data = std::fs::read(abs)?;
        listing.extend_from_slice(rel.as_bytes());
        listing.push(0);
        listing.extend_from_slice(data.len().to_string().as_bytes());
        listing.push(0);
        listing.extend_from_slice(&data);
    }
    Ok(Digest::sha256_of(&listing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_paths() {
        assert_eq!(
            chart_path("./charts/podinfo/").unwrap(),
            Path::new("charts/podinfo")
        );
        assert_eq!(
            chart_path("charts/../podinfo").unwrap(),
            Path::new("podinfo")
        );
        for bad in ["", ".", "/etc", "../x", "charts/../../x", "a\\b"] {
            assert!(chart_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_is_replaced() {
        let y = "apiVersion: v2\nname: podinfo\nversion: 6.5.0\nappVersion: 6.5.0\n";
        assert_eq!(
            set_version(y, "6.5.0+abc"),
            "apiVersion: v2\nname: podinfo\nversion: 6.5.0+abc\nappVersion: 6.5.0\n"
        );
    }
}
