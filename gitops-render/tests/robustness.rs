//! Bad input never panics: every YAML file of the conformance suite, truncated and mutated at
//! many positions (a deterministic stand-in for the cargo-fuzz targets in `fuzz/`, cheap enough
//! for CI), is built as a kustomization's resource; the build may fail, with an error naming the
//! file, but must not panic.

use std::path::{Path, PathBuf};

use gitops_render::KustomizeRenderer;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
}

/// A small deterministic generator (64-bit LCG), so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

const SPECIAL: &[&str] = &[
    ":",
    "-",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!binary ",
    "|",
    ">",
    "\t",
    "\n",
    "#",
    "%",
    "? ",
    "---\n",
    "...\n",
    "<<: *a\n",
    "\u{feff}",
    "\\",
    "~",
    "0x",
    "é",
    "\r\n",
];

#[test]
fn mutated_inputs_fail_cleanly_or_build() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.retain(|f| !f.ends_with("kustomization.yaml"));
    assert!(!files.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("kustomization.yaml"),
        "resources:\n- input.yaml\n",
    )
    .unwrap();
    let renderer = KustomizeRenderer::new();
    let mut rng = Lcg(0x5eed);
    let (mut built, mut failed) = (0, 0);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let chars: Vec<char> = text.chars().collect();
        for _ in 0..16 {
            let at = rng.next(chars.len() + 1);
            let mut mutated: String = chars[..at].iter().collect();
            if rng.next(3) > 0 {
                mutated.push_str(SPECIAL[rng.next(SPECIAL.len())]);
                let skip = rng.next(3);
                mutated.extend(chars.iter().skip(at + skip));
            }
            std::fs::write(tmp.path().join("input.yaml"), &mutated).unwrap();
            let result = std::panic::catch_unwind(|| renderer.build(tmp.path()));
            match result {
                Ok(Ok(_)) => built += 1,
                Ok(Err(e)) => {
                    failed += 1;
                    assert!(
                        e.to_string().contains("input.yaml")
                            || e.to_string().contains("kustomization.yaml"),
                        "the error names no file: {e}"
                    );
                }
                Err(_) => panic!("panicked on a mutation of {}:\n{mutated}", file.display()),
            }
        }
    }
    eprintln!("{built} mutated inputs built, {failed} failed with an error");
    assert!(failed > 0 && built > 0);
}
