//! `build()` returns exactly what `build_yaml()` prints: the same objects, in the same order,
//! with the same key order and value types (numbers stay numbers, `"80"` stays a string).

use std::path::{Path, PathBuf};

use gitops_render::KustomizeRenderer;
use serde_json::Value;

fn dirs() -> Vec<PathBuf> {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for p in ["podinfo", "podinfo-k8s120"] {
        for d in [
            "kustomize",
            "deploy/overlays/dev",
            "deploy/overlays/staging",
            "deploy/overlays/production",
            "deploy/webapp",
            "deploy/secure",
        ] {
            out.push(fixtures.join(p).join(d));
        }
    }
    for d in [
        "edge-values",
        "generators",
        "references/base",
        "references/overlay",
    ] {
        out.push(data.join(d));
    }
    out
}

#[test]
fn build_objects_equal_the_parsed_yaml_output() {
    let renderer = KustomizeRenderer::new();
    for dir in dirs() {
        let objects = renderer.build(&dir).unwrap();
        let yaml = renderer.build_yaml(&dir).unwrap();
        let parsed: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        assert_eq!(objects.len(), parsed.len(), "{}", dir.display());
        for (o, p) in objects.iter().zip(&parsed) {
            let o = serde_json::to_value(o).unwrap();
            assert_eq!(&o, p, "{}", dir.display());
            // Same key order too.
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                serde_json::to_string(p).unwrap()
            );
        }
    }
}

#[test]
fn values_keep_their_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/edge-values");
    let objects = KustomizeRenderer::new().build(&dir).unwrap();
    let data = objects[0].as_map()["data"].as_object().unwrap();
    assert_eq!(data["q80"], Value::from("80"));
    assert_eq!(data["octal"], Value::from(493));
    assert_eq!(data["float"], Value::from(1));
    assert_eq!(data["f2"], Value::from(1.5));
    assert_eq!(data["bool"], Value::from(true));
    assert_eq!(data["boolq"], Value::from("true"));
    assert_eq!(data["yes"], Value::from("yes"));
    assert_eq!(data["nul"], Value::Null);
    assert_eq!(data["date"], Value::from("2024-01-01T00:00:00Z"));
    let prod = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/podinfo/deploy/overlays/production");
    let objects = KustomizeRenderer::new().build(&prod).unwrap();
    let backend = objects
        .iter()
        .find(|o| o.kind() == "Deployment" && o.name() == "backend")
        .unwrap();
    let annotations = &backend.as_map()["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], Value::from("9797"));
    assert_eq!(backend.as_map()["spec"]["minReadySeconds"], Value::from(3));
    assert_eq!(backend.namespace(), Some("production"));
}
