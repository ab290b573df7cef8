//! Bad input gives an error naming the file (and object and field), never a panic, and the
//! `Renderer` trait reports it as a terminal render failure.

use std::path::Path;

use gitops_core::{Renderer, Stage};
use gitops_render::{KustomizeRenderer, RenderError};

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n";

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources:\n- good.yaml\n- bad.yaml\n",
    );
    write(tmp.path(), "good.yaml", CM);
    write(
        tmp.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
    );
    let err = KustomizeRenderer::new().build(tmp.path()).unwrap_err();
    assert!(matches!(err, RenderError::Yaml { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("bad.yaml"), "{msg}");
    assert!(msg.contains("malformed YAML"), "{msg}");

    // The same without a kustomization file (Flux's generated one lists the file).
    std::fs::remove_file(tmp.path().join("kustomization.yaml")).unwrap();
    let msg = KustomizeRenderer::new()
        .build_yaml(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bad.yaml"), "{msg}");
}

#[test]
fn renderer_trait_reports_terminal_render_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "bad.yaml", "kind: [\n");
    let err = KustomizeRenderer::new().render(tmp.path()).unwrap_err();
    assert_eq!(err.stage(), Stage::Render);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("bad.yaml"), "{err}");
}

#[test]
fn invalid_objects_name_object_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "kustomization.yaml", "resources:\n- cm.yaml\n");
    write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n",
    );
    let err = KustomizeRenderer::new().build(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cm.yaml") && msg.contains("metadata.name"),
        "{msg}"
    );

    write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n    80: port\n",
    );
    let msg = KustomizeRenderer::new()
        .build(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("ConfigMap/x") && msg.contains("metadata.annotations.80"),
        "{msg}"
    );

    write(
        tmp.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  n: .nan\n",
    );
    let msg = KustomizeRenderer::new()
        .build(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cm.yaml:6"), "{msg}");
}

#[test]
fn kustomization_problems_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path();
    write(k, "cm.yaml", CM);

    write(
        k,
        "kustomization.yaml",
        "resources:\n- cm.yaml\nhelmCharts:\n- name: x\n",
    );
    let err = KustomizeRenderer::new().build(k).unwrap_err();
    assert!(
        matches!(&err, RenderError::Unsupported { field, .. } if field == "helmCharts"),
        "{err:?}"
    );

    write(
        k,
        "kustomization.yaml",
        "resources:\n- cm.yaml\nresorces:\n- x.yaml\n",
    );
    let msg = KustomizeRenderer::new().build(k).unwrap_err().to_string();
    assert!(
        msg.contains("kustomization.yaml") && msg.contains("resorces"),
        "{msg}"
    );

    write(
        k,
        "kustomization.yaml",
        "configMapGenerator:\n- name: c\n  literals:\n  - novalue\n",
    );
    let msg = KustomizeRenderer::new().build(k).unwrap_err().to_string();
    assert!(msg.contains("configMapGenerator[0].literals[0]"), "{msg}");

    write(k, "kustomization.yaml", "resources:\n- missing.yaml\n");
    let err = KustomizeRenderer::new().build(k).unwrap_err();
    assert!(
        matches!(&err, RenderError::Missing { entry, .. } if entry == "missing.yaml")
            && err
                .to_string()
                .contains("kustomization.yaml: missing.yaml: no such file"),
        "{err}"
    );

    write(
        k,
        "kustomization.yaml",
        "resources:\n- cm.yaml\n- cm.yaml\n",
    );
    let err = KustomizeRenderer::new().build(k).unwrap_err();
    assert!(matches!(err, RenderError::Conflict { .. }), "{err:?}");

    write(k, "kustomization.yaml", "# nothing\n");
    let msg = KustomizeRenderer::new().build(k).unwrap_err().to_string();
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn files_outside_the_kustomization_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "outside.yaml", CM);
    write(
        tmp.path(),
        "app/kustomization.yaml",
        "resources:\n- ../outside.yaml\n",
    );
    let err = KustomizeRenderer::new()
        .build(&tmp.path().join("app"))
        .unwrap_err();
    assert!(matches!(err, RenderError::Restricted { .. }), "{err:?}");

    // A base that contains the folder being built is a cycle.
    write(tmp.path(), "app/kustomization.yaml", "resources:\n- ..\n");
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources:\n- outside.yaml\n",
    );
    let err = KustomizeRenderer::new()
        .build(&tmp.path().join("app"))
        .unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");

    // A base folder needs a kustomization.
    write(tmp.path(), "app/kustomization.yaml", "resources:\n- sub\n");
    write(tmp.path(), "app/sub/cm.yaml", CM);
    let err = KustomizeRenderer::new()
        .build(&tmp.path().join("app"))
        .unwrap_err();
    assert!(
        matches!(err, RenderError::MissingKustomization { .. }),
        "{err:?}"
    );
}

/// Builds a folder with `cm.yaml`, a Deployment and the given kustomization; returns the error.
fn kustomization_error(kustomization: &str) -> RenderError {
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path();
    write(k, "cm.yaml", CM);
    write(
        k,
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: nginx\n",
    );
    write(k, "kustomization.yaml", kustomization);
    KustomizeRenderer::new().build(k).unwrap_err()
}

#[test]
fn name_label_image_and_replica_fields_are_checked() {
    let cases: &[(&str, &[&str])] = &[
        (
            "resources: [cm.yaml]\nnamePrefix: [a]\n",
            &["kustomization.yaml", "field namePrefix"],
        ),
        (
            "resources: [cm.yaml]\ncommonLabels:\n  version: 1\n",
            &["field commonLabels.version"],
        ),
        (
            "resources: [cm.yaml]\ncommonAnnotations: [a]\n",
            &["field commonAnnotations"],
        ),
        (
            "resources: [cm.yaml]\nlabels:\n- pairs: {a: b}\n  includeSelectors: yes please\n",
            &["field labels[0].includeSelectors"],
        ),
        (
            "resources: [cm.yaml]\nlabels:\n- pairs: {a: b}\n  fields:\n  - path: 3\n",
            &["field labels[0].fields[0].path"],
        ),
        (
            "resources: [cm.yaml]\nlabels:\n- pair: {a: b}\n",
            &["field labels[0].pair", "unknown field"],
        ),
        (
            "resources: [cm.yaml]\nimages:\n- name: a\n- name: b\n- name: c\n  newTag: 1.2\n",
            &["field images[2].newTag"],
        ),
        (
            "resources: [cm.yaml]\nimages:\n- name: a\n  newTgs: x\n",
            &["field images[0].newTgs", "unknown field"],
        ),
        (
            "resources: [cm.yaml]\nimages:\n- name: 'nginx(('\n  newTag: x\n",
            &["field images[0].name"],
        ),
        (
            "resources: [deploy.yaml]\nreplicas:\n- name: web\n  count: three\n",
            &["field replicas[0].count", "expected an integer"],
        ),
        (
            "resources: [deploy.yaml]\nreplicas:\n- name: web\n  count: 1.5\n",
            &["field replicas[0].count"],
        ),
        (
            "resources: [deploy.yaml]\nreplicas:\n- name: nope\n  count: 2\n",
            &[
                "field replicas[0].name",
                "resource with name nope does not match a config with the following GVK",
            ],
        ),
        (
            "resources: [cm.yaml]\nconfigurations: [missing.yaml]\n",
            &["kustomization.yaml: missing.yaml: no such file"],
        ),
    ];
    for (kustomization, wanted) in cases {
        let msg = kustomization_error(kustomization).to_string();
        for w in *wanted {
            assert!(msg.contains(w), "{kustomization:?}: {msg:?} lacks {w:?}");
        }
    }
}

#[test]
fn bad_builtin_transformer_configs_name_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let k = tmp.path();
    write(k, "cm.yaml", CM);
    write(
        k,
        "kustomization.yaml",
        "resources: [cm.yaml]\ntransformers: [t.yaml]\n",
    );
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: builtin\nkind: PrefixTransformer\nmetadata: {name: p}\nprefix: a-\n",
            "fieldSpecs",
        ),
        (
            "apiVersion: builtin\nkind: ReplicaCountTransformer\nmetadata: {name: r}\nreplica: {name: ok, count: x}\nfieldSpecs: []\n",
            "replica.count",
        ),
        (
            "apiVersion: builtin\nkind: ImageTagTransformer\nmetadata: {name: i}\nimageTag: {name: a, newTag: 2}\n",
            "imageTag.newTag",
        ),
        (
            "apiVersion: builtin\nkind: AnnotationsTransformer\nmetadata: {name: a}\nannotations: [x]\n",
            "annotations",
        ),
    ];
    for (config, field) in cases {
        write(k, "t.yaml", config);
        let msg = KustomizeRenderer::new().build(k).unwrap_err().to_string();
        assert!(
            msg.contains("t.yaml") && msg.contains(&format!("field {field}")),
            "{config:?}: {msg}"
        );
    }
}

/// Bases may not leave the artifact root (Flux builds on a file system rooted there), even
/// through a symlink; files over the size cap are refused before they are read.
#[test]
fn bases_outside_the_artifact_root_and_huge_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    let artifact = tmp.path().join("artifact");
    write(&outside, "kustomization.yaml", "resources: [cm.yaml]\n");
    write(
        &outside,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: secret-ish}\n",
    );
    let app = artifact.join("apps/web");
    write(
        &app,
        "kustomization.yaml",
        "resources:\n- ../../../outside\n",
    );
    let renderer = KustomizeRenderer::new();
    // kubectl kustomize itself allows it: so does the plain build.
    assert_eq!(renderer.build(&app).unwrap().len(), 1);
    let err = renderer.build_within(&artifact, &app).unwrap_err();
    assert!(
        matches!(&err, RenderError::Restricted { path, .. } if path == "../../../outside"),
        "{err}"
    );
    assert!(
        err.to_string().contains("outside the artifact root"),
        "{err}"
    );
    // The pipeline's entry point applies the same rule.
    assert!(renderer.render_in(&artifact, &app).is_err());

    #[cfg(unix)]
    {
        write(&app, "kustomization.yaml", "resources:\n- linked\n");
        std::os::unix::fs::symlink(&outside, app.join("linked")).unwrap();
        let err = renderer.build_within(&artifact, &app).unwrap_err();
        assert!(matches!(err, RenderError::Restricted { .. }), "{err}");
    }

    write(&app, "kustomization.yaml", "resources:\n- big.yaml\n");
    let big = std::fs::File::create(app.join("big.yaml")).unwrap();
    big.set_len(gitops_render::MAX_FILE_BYTES + 1).unwrap();
    let err = renderer.build_within(&artifact, &app).unwrap_err();
    assert!(matches!(err, RenderError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("big.yaml"), "{err}");
}
