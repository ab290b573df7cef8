//! Kustomize build in process: podinfo's production overlay (25 objects, bases four levels deep,
//! configMapGenerator, LabelTransformer), to YAML bytes and to objects. Compare with
//! `kubectl kustomize` on the same folder (about 70 ms here, mostly process start and kyaml).

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

criterion_group!(benches, kustomize);
criterion_main!(benches);
