//! The kustomize conformance suite: every folder under `tests/conformance` that holds an
//! `expected.out` is built, and the output must equal that file byte for byte. Each
//! `expected.out` is what `kubectl kustomize` (Kustomize v5.5.0) printed for its folder;
//! `tests/conformance/regen.sh` rewrites them (it needs kubectl, this test does not).
//!
//! A folder with an `expected.err` instead is a case where `kubectl kustomize` fails: the build
//! must fail too, and each non-empty line of `expected.err` must appear in our error message
//! (our wording, which names the kustomization file and the entry).

use std::path::{Path, PathBuf};

use gitops_render::KustomizeRenderer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.join("expected.out").is_file() || p.join("expected.err").is_file() {
                out.push(p.clone());
            }
            collect(&p, out);
        }
    }
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n    want: {w:?}\n    got:  {g:?}", i + 1);
        }
    }
    format!(
        "lengths differ: want {} lines, got {} lines",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn every_case_matches_kubectl_kustomize() {
    let mut cases = Vec::new();
    collect(&root(), &mut cases);
    assert!(!cases.is_empty(), "no conformance cases found");
    let renderer = KustomizeRenderer::new();
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.strip_prefix(root()).unwrap().display().to_string();
        let result = renderer.build_yaml(dir);
        if let Ok(want) = std::fs::read_to_string(dir.join("expected.out")) {
            match result {
                Ok(got) if got == want => {}
                Ok(got) => failures.push(format!("{name}: {}", first_difference(&want, &got))),
                Err(e) => failures.push(format!("{name}: unexpected error: {e}")),
            }
        } else {
            let want = std::fs::read_to_string(dir.join("expected.err")).unwrap();
            match result {
                Ok(_) => failures.push(format!("{name}: built, but kubectl kustomize fails")),
                Err(e) => {
                    let message = e.to_string();
                    for line in want.lines().filter(|l| !l.trim().is_empty()) {
                        if !message.contains(line.trim()) {
                            failures.push(format!(
                                "{name}: error {message:?} does not contain {:?}",
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!("{} conformance cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
