//! `build_chart_from_artifact`: HelmCharts from a GitRepository or Bucket artifact. Each test
//! copies the real podinfo repository fixture (`/work/shared/fixtures/podinfo`, with
//! `charts/podinfo`; or `$PODINFO_REPO`) into a temporary folder, archives it into an
//! `ArtifactStore` as a GitRepository (revision `main@sha1:<commit>`) or Bucket
//! (`sha256:<index digest>`) artifact would be, and builds the chart from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gitops_core::digest::Algorithm;
use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Digest, Fetched, Revision};
use gitops_sources::helm::{
    HelmChartSpec, HelmError, METADATA_CHART_PATH, METADATA_SOURCE_REVISION, METADATA_VERSION,
    ReconcileStrategy, build_chart_from_artifact,
};

const COMMIT_A: &str = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738";
const COMMIT_B: &str = "aa0c1d9e2f3a4b5c6d7e8f90a1b2c3d4e5f60718";

fn podinfo_repo() -> PathBuf {
    std::env::var_os("PODINFO_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/podinfo")
        })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let t = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::write(&t, std::fs::read(&p).unwrap()).unwrap();
        }
    }
}

/// Writes `content` to `rel` in `root`, replacing a file that may be read-only.
fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&p);
    std::fs::write(p, content).unwrap();
}

struct Fx {
    dir: tempfile::TempDir,
    store: ArtifactStore,
    /// The working copy the source artifacts are archived from.
    tree: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().join("store")).unwrap();
        let tree = dir.path().join("tree");
        copy_dir(&podinfo_repo(), &tree);
        Fx { dir, store, tree }
    }

    /// A GitRepository artifact of the working copy at `commit`.
    fn git_artifact(&self, commit: &str) -> Artifact {
        let key = ArtifactKey::new("GitRepository", "flux-system", "podinfo").unwrap();
        let rev = Revision::named("main", Digest::new(Algorithm::Sha1, commit).unwrap());
        self.store
            .archive_dir(&key, rev, &self.tree, &|_, _| true)
            .unwrap()
    }

    fn extract(&self, a: &Artifact) -> BTreeMap<String, String> {
        let out = self.dir.path().join(format!("out-{}", a.digest.hex()));
        self.store.extract(a, &out).unwrap();
        let mut files = BTreeMap::new();
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(
                        rel,
                        String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into(),
                    );
                }
            }
        }
        walk(&out, &out, &mut files);
        files
    }

    fn build(
        &self,
        spec: &HelmChartSpec,
        source: &Artifact,
        last: Option<&Artifact>,
    ) -> Result<Fetched, HelmError> {
        build_chart_from_artifact(&self.store, &key(), spec, source, last)
    }
}

fn key() -> ArtifactKey {
    ArtifactKey::new("HelmChart", "flux-system", "flux-system-podinfo").unwrap()
}

fn spec(chart: &str, strategy: ReconcileStrategy) -> HelmChartSpec {
    HelmChartSpec {
        chart: chart.into(),
        reconcile_strategy: strategy,
        ..Default::default()
    }
}

fn chart_version(tree: &Path) -> String {
    let y = std::fs::read_to_string(tree.join("charts/podinfo/Chart.yaml")).unwrap();
    y.lines()
        .find_map(|l| l.strip_prefix("version:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn chart_version_strategy_packages_once_per_version() {
    let fx = Fx::new();
    // .helmignore rules (the fixture's plus one more) and Helm's default `templates/.?*`.
    let mut ignore = std::fs::read_to_string(fx.tree.join("charts/podinfo/.helmignore")).unwrap();
    ignore.push_str("notes/\n");
    write(&fx.tree, "charts/podinfo/.helmignore", &ignore);
    write(&fx.tree, "charts/podinfo/values.yaml.bak", "old: true\n");
    write(&fx.tree, "charts/podinfo/notes/todo.md", "todo\n");
    write(&fx.tree, "charts/podinfo/templates/.scratch.yaml", "x: 1\n");
    let version = chart_version(&fx.tree);

    let a_src = fx.git_artifact(COMMIT_A);
    let s = spec("./charts/podinfo", ReconcileStrategy::ChartVersion);
    let Fetched::New(a) = fx.build(&s, &a_src, None).unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(a.revision.pointer(), Some(version.as_str()));
    assert_eq!(a.metadata[METADATA_VERSION], version);
    assert_eq!(a.metadata[METADATA_CHART_PATH], "charts/podinfo");
    assert_eq!(
        a.metadata[METADATA_SOURCE_REVISION],
        format!("main@sha1:{COMMIT_A}")
    );
    fx.store.verify(&a).unwrap();
    let files = fx.extract(&a);
    // `helm package` layout: everything under `<name>/`.
    assert!(
        files.keys().all(|k| k.starts_with("podinfo/")),
        "{:?}",
        files.keys()
    );
    assert!(files["podinfo/Chart.yaml"].contains(&format!("version: {version}")));
    assert!(files.contains_key("podinfo/templates/deployment.yaml"));
    assert!(files.contains_key("podinfo/values.yaml"));
    assert!(files.contains_key("podinfo/.helmignore"));
    assert!(
        !files.contains_key("podinfo/values.yaml.bak"),
        "*.bak is ignored"
    );
    assert!(
        !files.contains_key("podinfo/notes/todo.md"),
        "notes/ is ignored"
    );
    assert!(
        !files.contains_key("podinfo/templates/.scratch.yaml"),
        "Helm's default rule"
    );
    assert!(
        !files.keys().any(|k| k.contains("kustomize")),
        "only the chart"
    );

    // A new commit that does not change the chart version: unchanged (ChartVersion strategy).
    write(&fx.tree, "kustomize/extra.yaml", "a: 1\n");
    let b_src = fx.git_artifact(COMMIT_B);
    assert_eq!(
        fx.build(&s, &b_src, Some(&a)).unwrap(),
        Fetched::Unchanged(a.clone())
    );

    // A version bump: new artifact.
    let y = std::fs::read_to_string(fx.tree.join("charts/podinfo/Chart.yaml")).unwrap();
    write(
        &fx.tree,
        "charts/podinfo/Chart.yaml",
        &y.replace(&format!("version: {version}"), "version: 7.0.0"),
    );
    let c_src = fx.git_artifact(COMMIT_A);
    let Fetched::New(c) = fx.build(&s, &c_src, Some(&a)).unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(c.revision.pointer(), Some("7.0.0"));
    assert_ne!(c.path, a.path);
}

#[test]
fn revision_strategy_appends_the_source_digest() {
    let fx = Fx::new();
    let version = chart_version(&fx.tree);
    let s = spec("charts/podinfo/", ReconcileStrategy::Revision);
    let a_src = fx.git_artifact(COMMIT_A);
    let a = fx.build(&s, &a_src, None).unwrap().artifact().clone();
    let want = format!("{version}+{}", &COMMIT_A[..12]);
    assert_eq!(a.revision.pointer(), Some(want.as_str()));
    let files = fx.extract(&a);
    assert!(
        files["podinfo/Chart.yaml"].contains(&format!("\nversion: {want}\n")),
        "{}",
        files["podinfo/Chart.yaml"]
    );
    assert!(
        files["podinfo/Chart.yaml"].contains("appVersion: "),
        "the rest is kept"
    );

    // Same commit: unchanged; another commit: new, with its digest.
    assert!(matches!(
        fx.build(&s, &a_src, Some(&a)).unwrap(),
        Fetched::Unchanged(_)
    ));
    let b_src = fx.git_artifact(COMMIT_B);
    let Fetched::New(b) = fx.build(&s, &b_src, Some(&a)).unwrap() else {
        panic!("expected a new artifact")
    };
    assert_eq!(
        b.revision.pointer(),
        Some(format!("{version}+{}", &COMMIT_B[..12]).as_str())
    );

    // A Bucket artifact: revision `sha256:<hex>`, the first 12 hex characters.
    let bucket_key = ArtifactKey::new("Bucket", "flux-system", "podinfo").unwrap();
    let digest = Digest::sha256_of(b"bucket index");
    let bucket = fx
        .store
        .archive_dir(
            &bucket_key,
            Revision::digest_only(digest.clone()),
            &fx.tree,
            &|_, _| true,
        )
        .unwrap();
    let c = fx.build(&s, &bucket, None).unwrap().artifact().clone();
    assert_eq!(
        c.revision.pointer(),
        Some(format!("{version}+{}", &digest.hex()[..12]).as_str())
    );
}

#[test]
fn bad_chart_paths_are_terminal_and_name_spec_chart() {
    let fx = Fx::new();
    write(
        &fx.tree,
        "charts/broken/Chart.yaml",
        "apiVersion: v2\nname: broken\nversion: not-semver\n",
    );
    write(&fx.tree, "releases/broken.tgz", "not a tar.gz");
    let src = fx.git_artifact(COMMIT_A);
    for (path, why) in [
        ("../outside", "leaves the source artifact"),
        ("./charts/../../etc", "leaves the source artifact"),
        ("/etc", "relative path"),
        ("", "chart folder"),
        ("./charts/missing", "no such folder"),
        ("./kustomize", "Chart.yaml"),
        (
            "./charts/podinfo/Chart.yaml",
            "neither a chart folder nor a packaged chart",
        ),
        ("./releases/broken.tgz", "not a safe chart archive"),
        ("./charts/broken", "not-semver"),
    ] {
        let e = fx
            .build(&spec(path, ReconcileStrategy::ChartVersion), &src, None)
            .unwrap_err();
        assert!(matches!(e, HelmError::ChartPath { .. }), "{path}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("spec.chart {path:?}")), "{msg}");
        assert!(msg.contains(why), "{path}: {msg}");
        assert!(msg.contains(COMMIT_A), "{msg}");
        let core: gitops_core::Error = e.into();
        assert!(!core.is_retryable());
    }
    assert!(
        !fx.store.root().join("helmchart").exists(),
        "nothing stored"
    );
}

#[test]
fn a_link_out_of_the_artifact_is_not_followed() {
    let fx = Fx::new();
    // A link to a folder outside the working copy would leave the artifact: the archiver skips
    // symlinks, so the chart path is simply missing.
    std::os::unix::fs::symlink(fx.dir.path(), fx.tree.join("charts/escape")).unwrap();
    let src = fx.git_artifact(COMMIT_A);
    let e = fx
        .build(
            &spec("charts/escape", ReconcileStrategy::ChartVersion),
            &src,
            None,
        )
        .unwrap_err();
    assert!(matches!(e, HelmError::ChartPath { .. }), "{e}");
}

#[test]
fn a_packaged_chart_in_the_source_is_used() {
    let fx = Fx::new();
    let chart_dir = podinfo_repo().join("charts/podinfo");
    let tgz = gitops_testenv::package_chart(&chart_dir, "podinfo", "6.5.0").unwrap();
    std::fs::create_dir_all(fx.tree.join("releases")).unwrap();
    std::fs::write(fx.tree.join("releases/podinfo-6.5.0.tgz"), tgz).unwrap();
    let src = fx.git_artifact(COMMIT_A);
    let s = spec(
        "./releases/podinfo-6.5.0.tgz",
        ReconcileStrategy::ChartVersion,
    );
    let a = fx.build(&s, &src, None).unwrap().artifact().clone();
    assert_eq!(a.revision.pointer(), Some("6.5.0"));
    let files = fx.extract(&a);
    assert!(files["podinfo/Chart.yaml"].contains("version: 6.5.0"));
    assert!(files.contains_key("podinfo/templates/deployment.yaml"));
}
