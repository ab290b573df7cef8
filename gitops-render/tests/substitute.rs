//! Flux's post-build substitution on a rendered folder (`tests/data/postbuild`).

use std::path::PathBuf;

use gitops_render::{KustomizeRenderer, PostBuild, Strategy, SubstituteError};

fn build() -> Vec<gitops_core::Object> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/postbuild");
    KustomizeRenderer::new().build(&dir).unwrap()
}

#[test]
fn variables_are_substituted_and_typed_as_yaml_reads_them() {
    let mut objs = build();
    // substituteFrom (a ConfigMap, then a Secret) and the inline map, later ones winning.
    PostBuild::new()
        .vars([("REPLICAS", "1"), ("CLUSTER_NAME", "dev")])
        .unwrap()
        .vars([("GREETING", "hello"), ("CLUSTER_NAME", "prod-eu")])
        .unwrap()
        .vars([("REPLICAS", "3")])
        .unwrap()
        .strict(true)
        .apply(&mut objs)
        .unwrap();
    let deploy = objs.iter().find(|o| o.kind() == "Deployment").unwrap();
    let v = deploy.as_map();
    assert_eq!(v["spec"]["replicas"], serde_json::json!(3), "a number");
    let c = &v["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/acme/web:latest");
    assert_eq!(c["env"][0]["value"], "Hello, prod-eu");
    assert_eq!(c["env"][1]["value"], "${NOT_A_VAR}");
    // kustomize itself keeps `${NAMESPACE:=apps}` as the namespace text; Flux substitutes it.
    assert_eq!(deploy.namespace(), Some("apps"));
    let script = objs.iter().find(|o| o.kind() == "ConfigMap").unwrap();
    assert_eq!(script.as_map()["data"]["run.sh"], "echo \"${HOME}\"\n");
}

#[test]
fn strict_mode_names_the_object_and_variable_but_no_values() {
    let mut objs = build();
    let before = objs.clone();
    let err = PostBuild::new()
        .vars([("GREETING", "s3cr3t-token")])
        .unwrap()
        .strict(true)
        .apply(&mut objs)
        .unwrap_err();
    assert!(
        matches!(&err, SubstituteError::Unset { name, .. } if name == "REPLICAS"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("Deployment/") && msg.contains("/web"), "{msg}");
    assert!(!msg.contains("s3cr3t"), "{msg}");
    assert_eq!(objs, before, "nothing changed on error");
}

#[test]
fn nothing_happens_without_variables_unless_always() {
    let mut objs = build();
    let before = objs.clone();
    PostBuild::new().strict(true).apply(&mut objs).unwrap();
    assert_eq!(objs, before);
    let err = PostBuild::new()
        .strict(true)
        .strategy(Strategy::Always)
        .apply(&mut objs)
        .unwrap_err();
    assert!(matches!(err, SubstituteError::Unset { .. }), "{err}");
    // Not strict: unset variables become empty, and an empty `replicas:` is null.
    PostBuild::new()
        .vars([("GREETING", "hi"), ("CLUSTER_NAME", "dev")])
        .unwrap()
        .apply(&mut objs)
        .unwrap();
    let deploy = objs.iter().find(|o| o.kind() == "Deployment").unwrap();
    assert_eq!(deploy.as_map()["spec"]["replicas"], serde_json::Value::Null);
}

#[test]
fn substitution_that_breaks_yaml_is_an_error() {
    let mut objs = build();
    let err = PostBuild::new()
        .vars([
            ("REPLICAS", "[1, 2"),
            ("GREETING", "x"),
            ("CLUSTER_NAME", "y"),
        ])
        .unwrap()
        .apply(&mut objs)
        .unwrap_err();
    assert!(matches!(err, SubstituteError::Yaml { .. }), "{err}");
}

#[test]
fn with_post_build_substitutes_after_the_kustomize_build() {
    use gitops_core::Renderer;
    use gitops_render::WithPostBuild;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/postbuild");
    let post = PostBuild::new()
        .vars([
            ("REPLICAS", "2"),
            ("GREETING", "hi"),
            ("CLUSTER_NAME", "dev"),
        ])
        .unwrap()
        .strict(true);
    let objs = WithPostBuild::new(KustomizeRenderer::new(), post)
        .render_in(&dir, &dir)
        .unwrap();
    let deploy = objs.iter().find(|o| o.kind() == "Deployment").unwrap();
    assert_eq!(deploy.as_map()["spec"]["replicas"], serde_json::json!(2));

    let strict = PostBuild::new().vars([("X", "1")]).unwrap().strict(true);
    let err = WithPostBuild::new(KustomizeRenderer::new(), strict)
        .render(&dir)
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("REPLICAS"), "{err}");
}
