//! Folders without a kustomization file render every manifest below them, as Flux's
//! kustomize-controller does (it generates a kustomization.yaml listing the YAML files).
//!
//! The expected outputs under `tests/data/plain` are what `kubectl kustomize` printed for a
//! copy of each folder with the kustomization.yaml Flux generates.

use std::path::{Path, PathBuf};

use gitops_render::KustomizeRenderer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn webapp_folder_renders_all_its_objects_like_flux() {
    let dir = fixtures().join("podinfo/deploy/webapp");
    let want = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plain/podinfo_deploy_webapp.out"),
    )
    .unwrap();
    let renderer = KustomizeRenderer::new();
    assert_eq!(renderer.build_yaml(&dir).unwrap(), want);

    let objects = renderer.build(&dir).unwrap();
    let ids: Vec<String> = objects
        .iter()
        .map(|o| o.id().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 11, "{ids:?}");
    assert_eq!(ids[0], "Namespace/webapp");
    for want in [
        "Deployment/webapp/backend",
        "Deployment/webapp/frontend",
        "Service/webapp/backend",
        "HorizontalPodAutoscaler/webapp/frontend",
    ] {
        assert!(
            ids.iter().any(|id| id == want),
            "{want} missing from {ids:?}"
        );
    }
}

/// Every plain folder of the fixtures, against `kubectl kustomize` of a copy with Flux's
/// generated kustomization.yaml.
#[test]
fn plain_fixture_folders_render_like_flux() {
    for name in [
        "podinfo_deploy_webapp",
        "podinfo_deploy_secure",
        "podinfo-k8s120_deploy_webapp",
        "podinfo-k8s120_deploy_secure",
    ] {
        let dir = fixtures().join(name.replace('_', "/"));
        let want = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/plain")
                .join(format!("{name}.out")),
        )
        .unwrap();
        assert_eq!(
            KustomizeRenderer::new().build_yaml(&dir).unwrap(),
            want,
            "{name}"
        );
    }
}

/// The scan lists files in lexical order, takes `.yaml` and `.yml` only, and uses a
/// sub-folder that has its own kustomization as a base without descending into it.
#[test]
fn generated_kustomization_follows_flux_scanning_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
    };
    std::fs::create_dir_all(root.join("a/deep")).unwrap();
    std::fs::create_dir_all(root.join("based/ignored")).unwrap();
    std::fs::write(root.join("z.yml"), cm("z")).unwrap();
    std::fs::write(root.join("a/deep/one.yaml"), cm("one")).unwrap();
    std::fs::write(root.join("notes.txt"), "not yaml: [").unwrap();
    std::fs::write(root.join("README.md"), "# not a manifest").unwrap();
    std::fs::write(
        root.join("based/kustomization.yaml"),
        "resources:\n- cm.yaml\nnamespace: inner\n",
    )
    .unwrap();
    std::fs::write(root.join("based/cm.yaml"), cm("based")).unwrap();
    // Not listed by the base's kustomization, and not scanned either.
    std::fs::write(root.join("based/ignored/x.yaml"), "{{ template }}").unwrap();

    let objects = KustomizeRenderer::new().build(root).unwrap();
    let ids: Vec<String> = objects
        .iter()
        .map(|o| o.id().unwrap().to_string())
        .collect();
    // Legacy order within a kind: namespace ("inner" before none), then name.
    assert_eq!(
        ids,
        ["ConfigMap/inner/based", "ConfigMap/one", "ConfigMap/z"]
    );

    // The same as an explicit kustomization listing what Flux lists.
    let other = tempfile::tempdir().unwrap();
    let explicit = other.path().join("copy");
    copy_dir(root, &explicit);
    std::fs::write(
        explicit.join("kustomization.yaml"),
        "resources:\n- ./a/deep/one.yaml\n- ./based\n- ./z.yml\n",
    )
    .unwrap();
    let renderer = KustomizeRenderer::new();
    assert_eq!(
        renderer.build_yaml(&explicit).unwrap(),
        renderer.build_yaml(root).unwrap()
    );
}

#[test]
fn empty_folder_renders_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        KustomizeRenderer::new()
            .build(tmp.path())
            .unwrap()
            .is_empty()
    );
    assert_eq!(KustomizeRenderer::new().build_yaml(tmp.path()).unwrap(), "");
}
