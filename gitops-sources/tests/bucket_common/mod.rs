//! Helpers shared by the Bucket tests (which run without the `git` feature, so apart from
//! `tests/common`).

#![allow(dead_code)] // each test binary uses its own part of it

use std::collections::BTreeMap;
use std::path::Path;

use gitops_core::{Artifact, ArtifactStore};

/// The files of an artifact, path -> content.
pub fn files(store: &ArtifactStore, artifact: &Artifact) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    store.extract(artifact, dir.path()).unwrap();
    let mut out = BTreeMap::new();
    walk(dir.path(), dir.path(), &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// The lowercase hex MD5 of `s`: the ETag S3 and moto give an object uploaded in one part.
pub fn md5_hex(s: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
