//! Golden tests: the renderer's output equals `kubectl kustomize` (Kustomize v5.5.0) byte for
//! byte on the shared real-world fixtures (`expected/<path with / as _>.yaml`) and on this
//! crate's own cases under `tests/data` (each folder's `expected.out` is what
//! `kubectl kustomize` printed for it).

use std::path::PathBuf;

use gitops_render::KustomizeRenderer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// The expected files whose name starts with `prefix`, with the folder each was built from.
fn cases(prefix: &str) -> Vec<(PathBuf, PathBuf)> {
    let expected = fixtures().join("expected");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&expected).expect("fixtures/expected exists") {
        let path = entry.expect("readable entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || !name.ends_with(".yaml") {
            continue;
        }
        let dir = fixtures().join(name.trim_end_matches(".yaml").replace('_', "/"));
        out.push((path, dir));
    }
    out.sort();
    out
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n  want: {w:?}\n  got:  {g:?}", i + 1);
        }
    }
    format!(
        "lengths differ: want {} lines, got {} lines",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn podinfo_fixtures_match_kubectl_kustomize_byte_for_byte() {
    let cases = cases("podinfo");
    assert_eq!(cases.len(), 8, "the 8 podinfo expectations are present");
    let renderer = KustomizeRenderer::new();
    let mut failures = Vec::new();
    for (expected, dir) in &cases {
        let want = std::fs::read_to_string(expected).unwrap();
        match renderer.build_yaml(dir) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "{}: {}",
                expected.display(),
                first_difference(&want, &got)
            )),
            Err(e) => failures.push(format!("{}: {e}", expected.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn check_dir(dir: &std::path::Path, expected: &std::path::Path) {
    let want = std::fs::read_to_string(expected).unwrap();
    let got = KustomizeRenderer::new()
        .build_yaml(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(
        got == want,
        "{}: {}",
        dir.display(),
        first_difference(&want, &got)
    );
}

/// Scalars of every kind: quoting, block scalars, folding at 80 columns, YAML 1.1 words,
/// octal and hex numbers, floats, timestamps, comments, key order.
#[test]
fn scalar_styles_and_values_match_kubectl_kustomize() {
    check_dir(
        &data().join("edge-values"),
        &data().join("edge-values/expected.out"),
    );
}

/// configMapGenerator and secretGenerator from files, literals and env files, with
/// generatorOptions (labels, annotations) and the namespace.
#[test]
fn generators_match_kubectl_kustomize() {
    check_dir(
        &data().join("generators"),
        &data().join("generators/expected.out"),
    );
}

/// Hash-suffixed names followed into volumes, projected sources, env, envFrom,
/// imagePullSecrets, Ingress TLS and RBAC resourceNames; the namespace moved onto
/// RoleBinding subjects, Namespace objects and APIServices; CRLF input; legacy order.
#[test]
fn name_references_and_namespace_match_kubectl_kustomize() {
    for d in ["references/base", "references/overlay"] {
        check_dir(&data().join(d), &data().join(d).join("expected.out"));
    }
}

/// Literal and folded block scalars (with yaml.v3's folded round trip inside kustomize),
/// flow collections, multi-line plain and quoted scalars.
#[test]
fn block_scalars_match_kubectl_kustomize() {
    check_dir(
        &data().join("block-scalars"),
        &data().join("block-scalars/expected.out"),
    );
}

/// `List` kinds, merge keys, keys longer than 128 characters, unusual key order, escapes,
/// a LabelTransformer with several field specs, generatorOptions.disableNameSuffixHash.
#[test]
fn lists_keys_and_labels_match_kubectl_kustomize() {
    check_dir(
        &data().join("lists-and-keys"),
        &data().join("lists-and-keys/expected.out"),
    );
}

/// Objects annotated `config.kubernetes.io/local-config` are dropped; kustomize's own
/// build annotations are removed from the output.
#[test]
fn local_config_and_build_annotations_match_kubectl_kustomize() {
    check_dir(
        &data().join("local-config"),
        &data().join("local-config/expected.out"),
    );
}

/// `namespace:` moves references that name a namespace: webhook `clientConfig.service`,
/// binding subjects; roleRef, HPA targets, claims and Ingress backends are followed.
#[test]
fn namespace_references_match_kubectl_kustomize() {
    let dir = data().join("namespace-references/overlay");
    check_dir(&dir, &dir.join("expected.out"));
}

#[test]
fn flux2_helm_example_patches_match_kubectl_kustomize() {
    let expected = fixtures().join("expected");
    for env in ["staging", "production"] {
        let dir = fixtures().join(format!("flux2-kustomize-helm-example/apps/{env}"));
        check_dir(
            &dir,
            &expected.join(format!("flux2-kustomize-helm-example_apps_{env}.yaml")),
        );
    }
}

fn kustomization_dirs(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() && p.file_name().is_some_and(|n| n != "expected") {
            if p.join("kustomization.yaml").is_file() {
                out.push(p.clone());
            }
            kustomization_dirs(&p, out);
        }
    }
}

/// Every folder of the shared fixtures that has a kustomization, bases included: the expected
/// output is the fixtures' own `expected/` file, or else the one this crate keeps in
/// `tests/fixtures-expected` (what `kubectl kustomize` printed for that folder).
#[test]
fn every_fixture_kustomization_matches_kubectl_kustomize() {
    let mut dirs = Vec::new();
    kustomization_dirs(&fixtures(), &mut dirs);
    assert!(dirs.len() >= 23, "{} kustomizations found", dirs.len());
    let ours = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures-expected");
    let renderer = KustomizeRenderer::new();
    let mut failures = Vec::new();
    for dir in &dirs {
        let rel = dir.strip_prefix(fixtures()).unwrap();
        let name = format!("{}.yaml", rel.to_string_lossy().replace('/', "_"));
        let expected = [fixtures().join("expected").join(&name), ours.join(&name)]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no expected output for {}", rel.display()));
        let want = std::fs::read_to_string(&expected).unwrap();
        match renderer.build_yaml(dir) {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!(
                "{}: {}",
                rel.display(),
                first_difference(&want, &got)
            )),
            Err(e) => failures.push(format!("{}: {e}", rel.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
