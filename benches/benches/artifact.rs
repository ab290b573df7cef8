//! Artifact store throughput: archive podinfo's `deploy/` tree into a deterministic tar.gz
//! (digest computed while writing), and verify + safely extract it again.

use criterion::{Criterion, criterion_group, criterion_main};
use gitops_core::{Algorithm, ArtifactKey, ArtifactStore, Digest, Revision};

fn artifact(c: &mut Criterion) {
    let tree = gitops_benches::fixtures().join("podinfo-k8s120/deploy");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ArtifactStore::new(dir.path()).expect("store");
    let key = ArtifactKey::new("GitRepository", "bench", "podinfo").expect("key");
    let revision = Revision::named(
        "main",
        Digest::new(Algorithm::Sha1, "a".repeat(40)).expect("digest"),
    );

    c.bench_function("artifact_archive_podinfo_deploy", |b| {
        b.iter(|| {
            store
                .archive_dir(&key, revision.clone(), &tree, &|_, _| true)
                .expect("archive")
        })
    });
    let art = store
        .archive_dir(&key, revision.clone(), &tree, &|_, _| true)
        .expect("archive");
    c.bench_function("artifact_verify_extract_podinfo_deploy", |b| {
        b.iter(|| {
            let out = tempfile::tempdir().expect("temp dir");
            store.extract(&art, out.path()).expect("extract");
        })
    });
}

criterion_group!(benches, artifact);
criterion_main!(benches);
