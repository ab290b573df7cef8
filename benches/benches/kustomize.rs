//! Kustomize build in process: podinfo's production overlay (25 objects, bases four levels deep,
//! configMapGenerator, LabelTransformer), to YAML bytes and to objects. Compare with
//! `kubectl kustomize` on the same folder (about 70 ms here, mostly process start and kyaml);
//! and a large generated overlay.

use criterion::{Criterion, criterion_group, criterion_main};
use gitops_render::KustomizeRenderer;

fn kustomize(c: &mut Criterion) {
    let dir = gitops_benches::fixtures().join("podinfo-k8s120/deploy/overlays/production");
    let renderer = KustomizeRenderer::new();
    c.bench_function("kustomize_build_yaml_podinfo_production", |b| {
        b.iter(|| renderer.build_yaml(&dir).expect("build"))
    });
    c.bench_function("kustomize_build_objects_podinfo_production", |b| {
        b.iter(|| renderer.build(&dir).expect("build"))
    });
}

/// The large generated overlay of `gitops_benches::generate_overlay` (40 bases, ~480 objects,
/// ~1.1 MB of YAML; `kubectl kustomize` takes about 1.7 s on it here, see
/// `benches/scripts/kustomize-large.sh`).
fn kustomize_large(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let overlay = gitops_benches::generate_overlay(dir.path(), 40).expect("overlay written");
    let renderer = KustomizeRenderer::new();
    let mut group = c.benchmark_group("kustomize_large");
    group.sample_size(20);
    group.bench_function("build_yaml_40_bases", |b| {
        b.iter(|| renderer.build_yaml(&overlay).expect("build"))
    });
    group.finish();
}

criterion_group!(benches, kustomize, kustomize_large);
criterion_main!(benches);
