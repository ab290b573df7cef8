//! Faults and bad input for the Helm source (see FAULTS.md), against gitops-testenv's
//! `StaticHttpServer` on 127.0.0.1 serving a chart repository folder (`index.yaml` and `.tgz`
//! files): the server going down after a good fetch, chart archives with `..`, absolute paths or
//! symlinks leaving the folder, decompression bombs, a truncated chart, and an index listing
//! thousands of versions.
//!
//! Each refusal is checked for behaviour: error kind and retryability, the message names the
//! chart URL, the previous artifact is still in the store and verifies, the store holds no new
//! file, and nothing is written outside.

use gitops_testenv::archive::{TarEntry, raw_tar_gz};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Digest, ExtractLimits, Fetched, Source};
use gitops_sources::helm::{
    HelmAuth, HelmChartSource, HelmChartSpec, HelmError, HelmRepositorySpec,
};
use gitops_testenv::StaticHttpServer;

fn podinfo_chart() -> PathBuf {
    std::env::var_os("PODINFO_CHART")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/podinfo/charts/podinfo")
        })
}

fn package(version: &str) -> Vec<u8> {
    gitops_testenv::package_chart(&podinfo_chart(), "podinfo", version).unwrap()
}

/// `index.yaml` listing `entries` (version, file, digest) for the chart `podinfo`.
fn write_index(root: &Path, entries: &[(String, String, Option<String>)]) {
    let mut y = String::from("apiVersion: v1\nentries:\n  podinfo:\n");
    for (version, file, digest) in entries {
        y.push_str(&format!(
            "  - apiVersion: v2\n    name: podinfo\n    version: {version}\n    created: \"2024-01-01T00:00:00Z\"\n    urls:\n    - {file}\n"
        ));
        if let Some(d) = digest {
            y.push_str(&format!("    digest: {d}\n"));
        }
    }
    y.push_str("generated: \"2024-01-01T00:00:00Z\"\n");
    std::fs::write(root.join("index.yaml"), y).unwrap();
}

/// Writes `tgz` as `podinfo-<version>.tgz` and an index listing only it (with its digest when
/// `with_digest`).
fn serve_one(root: &Path, version: &str, tgz: &[u8], with_digest: bool) {
    let file = format!("podinfo-{version}.tgz");
    std::fs::write(root.join(&file), tgz).unwrap();
    let digest = with_digest.then(|| Digest::sha256_of(tgz).hex().to_string());
    write_index(root, &[(version.to_string(), file, digest)]);
}

fn source(url: &str, range: &str) -> HelmChartSource {
    HelmChartSource::new(
        ArtifactKey::new("HelmChart", "flux-system", "podinfo").unwrap(),
        HelmRepositorySpec {
            url: url.to_string(),
            ..Default::default()
        },
        HelmChartSpec {
            chart: "podinfo".into(),
            version: range.into(),
            ..Default::default()
        },
        HelmAuth::None,
    )
    .unwrap()
}

fn helm_error(e: &gitops_core::Error) -> &HelmError {
    e.inner()
        .downcast_ref::<HelmError>()
        .unwrap_or_else(|| panic!("not a HelmError: {e}"))
}

/// Every file under `root`, relative.
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The store holds exactly `last`'s file, and it verifies.
fn only_last_kept(store: &ArtifactStore, last: &Artifact) {
    store.verify(last).unwrap();
    assert_eq!(
        files_under(store.root()),
        BTreeSet::from([last.path.clone()])
    );
}

/// A chart `.tgz` with the given raw entries; names are written raw into the header, so `..` and
/// absolute paths go in as given.
fn tgz(entries: &[TarEntry<'_>]) -> Vec<u8> {
    raw_tar_gz(entries).unwrap()
}

const FILE: tar::EntryType = tar::EntryType::Regular;
const LINK: tar::EntryType = tar::EntryType::Symlink;
const CHART_YAML: &[u8] = b"apiVersion: v2\nname: podinfo\nversion: 9.9.9\n";

struct Fx {
    repo: tempfile::TempDir,
    dir: tempfile::TempDir,
    store: ArtifactStore,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().join("store")).unwrap();
        Fx {
            repo: tempfile::tempdir().unwrap(),
            dir,
            store,
        }
    }

    /// Serves podinfo 6.5.0 and fetches it: the last good artifact.
    async fn good(&self, url: &str) -> Artifact {
        serve_one(self.repo.path(), "6.5.0", &package("6.5.0"), true);
        match source(url, "*").fetch(&self.store, None).await.unwrap() {
            Fetched::New(a) => a,
            other => panic!("expected a new artifact, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn server_down_after_a_fetch_keeps_the_last_artifact() {
    let fx = Fx::new();
    let server = StaticHttpServer::start(fx.repo.path()).await.unwrap();
    let url = server.url();
    let last = fx.good(&url).await;
    // A newer chart appears, but the server goes down before the next fetch.
    serve_one(fx.repo.path(), "6.6.0", &package("6.6.0"), true);
    server.shutdown().await;

    let e = source(&url, "*")
        .fetch(&fx.store, Some(&last))
        .await
        .unwrap_err();
    eprintln!("server down: {e}");
    assert!(e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::Unavailable { .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("{url}/index.yaml")), "{e}");
    only_last_kept(&fx.store, &last);
    assert_eq!(last.revision.pointer(), Some("6.5.0"));
}

#[tokio::test]
async fn chart_archives_with_escaping_paths_or_links_are_refused() {
    let fx = Fx::new();
    let server = StaticHttpServer::start(fx.repo.path()).await.unwrap();
    let last = fx.good(&server.url()).await;
    let outside = fx.dir.path().join("outside.txt");
    let outside_str = outside.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<TarEntry<'_>>, &str)> = vec![
        (
            "dotdot",
            vec![
                ("podinfo/Chart.yaml", FILE, "", CHART_YAML),
                ("podinfo/../../../../outside.txt", FILE, "", b"pwned\n"),
            ],
            "absolute path or `..`",
        ),
        (
            "absolute",
            vec![
                ("podinfo/Chart.yaml", FILE, "", CHART_YAML),
                (&outside_str, FILE, "", b"pwned\n"),
            ],
            "absolute path or `..`",
        ),
        (
            "symlink",
            vec![
                ("podinfo/Chart.yaml", FILE, "", CHART_YAML),
                ("podinfo/templates", LINK, "../../../..", b""),
            ],
            "symlink leaves the destination",
        ),
        (
            "absolute-symlink",
            vec![
                ("podinfo/Chart.yaml", FILE, "", CHART_YAML),
                ("podinfo/values.yaml", LINK, "/etc/passwd", b""),
            ],
            "symlink leaves the destination",
        ),
    ];
    for (i, (t, entries, why)) in cases.into_iter().enumerate() {
        let version = format!("7.0.{i}");
        serve_one(fx.repo.path(), &version, &tgz(&entries), true);
        let e = source(&server.url(), "*")
            .fetch(&fx.store, Some(&last))
            .await
            .unwrap_err();
        eprintln!("{t}: {e}");
        assert!(!e.is_retryable(), "{t}: {e}");
        assert!(
            matches!(helm_error(&e), HelmError::InvalidChart { .. }),
            "{t}: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("podinfo-{version}.tgz")) && msg.contains(why),
            "{t}: {msg}"
        );
        assert!(!outside.exists(), "{t}: wrote outside");
        only_last_kept(&fx.store, &last);
    }
}

#[tokio::test]
async fn decompression_bombs_are_refused_before_anything_is_stored() {
    let fx = Fx::new();
    let server = StaticHttpServer::start(fx.repo.path()).await.unwrap();
    let last = fx.good(&server.url()).await;
    let limits = ExtractLimits {
        max_total_bytes: 1 << 20,
        max_files: 1000,
    };
    // 8 MiB of zeros: a few KiB compressed, under the 10 MiB download cap, past the 1 MiB
    // extraction cap.
    let zeros = vec![0u8; 8 << 20];
    let big = tgz(&[
        ("podinfo/Chart.yaml", FILE, "", CHART_YAML),
        ("podinfo/templates/zeros.yaml", FILE, "", &zeros),
    ]);
    assert!(big.len() < 64 << 10, "{} bytes", big.len());
    let names: Vec<String> = (0..1500)
        .map(|i| format!("podinfo/templates/{i}.yaml"))
        .collect();
    let mut many: Vec<TarEntry<'_>> = vec![("podinfo/Chart.yaml", FILE, "", CHART_YAML)];
    many.extend(names.iter().map(|n| (n.as_str(), FILE, "", &b""[..])));
    let many = tgz(&many);

    for (t, archive, what) in [
        ("size", big, "total size in bytes"),
        ("count", many, "file count"),
    ] {
        serve_one(fx.repo.path(), "7.0.0", &archive, true);
        let e = source(&server.url(), "*")
            .with_limits(limits)
            .fetch(&fx.store, Some(&last))
            .await
            .unwrap_err();
        eprintln!("{t}: {e}");
        assert!(!e.is_retryable(), "{t}: {e}");
        assert!(
            matches!(helm_error(&e), HelmError::InvalidChart { .. }),
            "{t}: {e}"
        );
        assert!(e.to_string().contains(what), "{t}: {e}");
        only_last_kept(&fx.store, &last);
    }
}

#[tokio::test]
async fn a_truncated_chart_is_refused_with_or_without_an_index_digest() {
    let fx = Fx::new();
    let server = StaticHttpServer::start(fx.repo.path()).await.unwrap();
    let last = fx.good(&server.url()).await;
    let full = package("6.6.0");
    let cut = &full[..full.len() / 2];

    // With the index digest (of the full file): a digest mismatch, before any extraction.
    serve_one(fx.repo.path(), "6.6.0", &full, true);
    std::fs::write(fx.repo.path().join("podinfo-6.6.0.tgz"), cut).unwrap();
    let e = source(&server.url(), "*")
        .fetch(&fx.store, Some(&last))
        .await
        .unwrap_err();
    eprintln!("truncated, digest: {e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::DigestMismatch { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("podinfo-6.6.0.tgz") && msg.contains(Digest::sha256_of(&full).hex()),
        "{msg}"
    );
    only_last_kept(&fx.store, &last);

    // Without one: the gzip stream ends early, an invalid chart.
    serve_one(fx.repo.path(), "6.6.0", cut, false);
    let e = source(&server.url(), "*")
        .fetch(&fx.store, Some(&last))
        .await
        .unwrap_err();
    eprintln!("truncated, no digest: {e}");
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::InvalidChart { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("podinfo-6.6.0.tgz"), "{e}");
    only_last_kept(&fx.store, &last);
}

#[tokio::test]
async fn an_index_with_thousands_of_versions() {
    let fx = Fx::new();
    // 3,000 versions of podinfo; only the one the range selects has a file.
    let chosen = package("6.1234.0");
    std::fs::write(fx.repo.path().join("podinfo-6.1234.0.tgz"), &chosen).unwrap();
    let digest = Digest::sha256_of(&chosen).hex().to_string();
    let entries: Vec<(String, String, Option<String>)> = (0..3000)
        .map(|i| {
            (
                format!("6.{i}.0"),
                format!("podinfo-6.{i}.0.tgz"),
                Some(if i == 1234 {
                    digest.clone()
                } else {
                    "0".repeat(64)
                }),
            )
        })
        .collect();
    write_index(fx.repo.path(), &entries);
    let server = StaticHttpServer::start(fx.repo.path()).await.unwrap();
    let src = source(&server.url(), ">=6.1000.0 <6.1235.0");
    let a = src.fetch(&fx.store, None).await.unwrap();
    let Fetched::New(a) = a else {
        panic!("expected a new artifact, got {a:?}")
    };
    assert_eq!(a.revision.pointer(), Some("6.1234.0"));
    assert_eq!(server.files_served(), 2, "the index and one chart");
    // The next poll reads the index only.
    assert_eq!(
        src.fetch(&fx.store, Some(&a)).await.unwrap(),
        Fetched::Unchanged(a.clone())
    );
    assert_eq!(server.files_served(), 3);

    // No version matches: terminal, the message lists a bounded number of versions.
    let e = source(&server.url(), ">=7.0.0")
        .fetch(&fx.store, Some(&a))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        matches!(helm_error(&e), HelmError::NoMatchingVersion { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("6.2999.0") && msg.contains("and 2980 more"),
        "{msg}"
    );
    assert!(msg.len() < 1000, "{} bytes", msg.len());
    only_last_kept(&fx.store, &a);
}
