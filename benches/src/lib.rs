//! Criterion benchmarks of the gitops toolkit live in `benches/`; this library only holds the
//! helpers they share.

use std::path::{Path, PathBuf};

/// The shared fixtures folder (`../shared/fixtures` beside the project root).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// Writes a large kustomize overlay into `dir` and returns the folder to build
/// (`dir/overlays/production`): `apps` bases of ten objects each (Deployment, Service,
/// ServiceAccount, Role, RoleBinding, Ingress, PodDisruptionBudget, HorizontalPodAutoscaler,
/// NetworkPolicy and a ConfigMap holding a ~16 KB dashboard), each base with a
/// `configMapGenerator` and a `secretGenerator`; a shared `common` base; and an overlay with
/// `namespace`, `namePrefix`, `commonLabels`, `commonAnnotations`, `images`, `replicas`,
/// strategic-merge and JSON 6902 `patches` (with target selectors) and a merging generator.
///
/// The same folder is built by `kubectl kustomize` and by `gitops build` in
/// `benches/scripts/kustomize-large.sh`, and in process by the `kustomize_large` bench.
pub fn generate_overlay(dir: &Path, apps: usize) -> std::io::Result<PathBuf> {
    use std::fmt::Write as _;
    let write = |path: PathBuf, text: &str| -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        std::fs::write(path, text)
    };
    let common = dir.join("bases/common");
    write(
        common.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- limits.yaml\nconfigMapGenerator:\n- name: shared-settings\n  literals:\n  - LOG_FORMAT=json\n  - REGION=eu-west-1\n",
    )?;
    write(
        common.join("limits.yaml"),
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: defaults\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 500m\n      memory: 256Mi\n    defaultRequest:\n      cpu: 100m\n      memory: 64Mi\n",
    )?;
    let mut dashboard = String::from("{\n");
    for i in 0..180 {
        let _ = writeln!(
            dashboard,
            "  \"panel{i}\": {{\"title\": \"Requests {i}\", \"expr\": \"sum(rate(http_requests_total{{job=\\\"app\\\",code=~\\\"5..\\\"}}[5m])) by (pod)\"}},"
        );
    }
    dashboard.push_str("  \"version\": 1\n}\n");
    for a in 0..apps {
        let name = format!("app{a:03}");
        let base = dir.join(format!("bases/{name}"));
        write(
            base.join("kustomization.yaml"),
            &format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- workload.yaml\n- access.yaml\n- dashboard.yaml\nconfigMapGenerator:\n- name: {name}-config\n  files:\n  - app.properties\n  literals:\n  - APP_NAME={name}\nsecretGenerator:\n- name: {name}-credentials\n  literals:\n  - username={name}\n  - password=not-a-real-password-{a}\n"
            ),
        )?;
        write(
            base.join("app.properties"),
            &format!(
                "server.port=8080\nserver.name={name}\nfeature.flags=a,b,c\ncache.size={}\n",
                a * 10
            ),
        )?;
        write(
            base.join("workload.yaml"),
            &format!(
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9090"
    spec:
      serviceAccountName: {name}
      initContainers:
      - name: migrate
        image: ghcr.io/acme/migrate:1.0.0
        envFrom:
        - configMapRef:
            name: {name}-config
      containers:
      - name: app
        image: ghcr.io/acme/{name}:1.0.0
        ports:
        - name: http
          containerPort: 8080
        - name: metrics
          containerPort: 9090
        env:
        - name: PASSWORD
          valueFrom:
            secretKeyRef:
              name: {name}-credentials
              key: password
        - name: LOG_FORMAT
          valueFrom:
            configMapKeyRef:
              name: shared-settings
              key: LOG_FORMAT
        resources:
          requests:
            cpu: 100m
            memory: 64Mi
        readinessProbe:
          httpGet:
            path: /readyz
            port: http
        volumeMounts:
        - name: config
          mountPath: /etc/app
      - name: sidecar
        image: docker.io/envoyproxy/envoy:v1.30.1
        ports:
        - containerPort: 15000
      volumes:
      - name: config
        configMap:
          name: {name}-config
      - name: dashboards
        configMap:
          name: {name}-dashboard
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: {name}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
---
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
spec:
  rules:
  - host: {name}.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {name}
            port:
              name: http
  tls:
  - hosts:
    - {name}.example.com
    secretName: {name}-tls
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {name}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: ingress
"#
            ),
        )?;
        write(
            base.join("access.yaml"),
            &format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  resourceNames: [{name}-config]\n  verbs: [get, watch]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {name}\nsubjects:\n- kind: ServiceAccount\n  name: {name}\n"
            ),
        )?;
        let mut cm = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-dashboard\n  labels:\n    grafana_dashboard: \"1\"\ndata:\n  dashboard.json: |\n"
        );
        for line in dashboard.lines() {
            let _ = writeln!(cm, "    {line}");
        }
        write(base.join("dashboard.yaml"), &cm)?;
    }
    let overlay = dir.join("overlays/production");
    let mut k = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: production\nnamePrefix: prod-\ncommonLabels:\n  env: production\ncommonAnnotations:\n  team: platform\nresources:\n- ../../bases/common\n",
    );
    for a in 0..apps {
        let _ = writeln!(k, "- ../../bases/app{a:03}");
    }
    k.push_str("images:\n- name: ghcr.io/acme/migrate\n  newTag: 1.2.0\n- name: docker.io/envoyproxy/envoy\n  newName: registry.example.com/envoy\n  digest: sha256:0b2d3c1a9f8e7d6c5b4a3928170f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5\n");
    k.push_str("replicas:\n");
    for a in (0..apps).step_by(3) {
        let _ = writeln!(k, "- name: app{a:03}\n  count: 3");
    }
    k.push_str("configMapGenerator:\n- name: shared-settings\n  behavior: merge\n  literals:\n  - LOG_FORMAT=logfmt\n");
    k.push_str("patches:\n- path: resources.yaml\n  target:\n    kind: Deployment\n    labelSelector: app.kubernetes.io/name\n- target:\n    kind: Ingress\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value:\n        cert-manager.io/cluster-issuer: letsencrypt\n");
    for a in (0..apps).step_by(4) {
        let _ = writeln!(
            k,
            "- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: app{a:03}\n    spec:\n      template:\n        spec:\n          containers:\n          - name: app\n            env:\n            - name: EXTRA_{a}\n              value: \"on\""
        );
    }
    write(overlay.join("kustomization.yaml"), &k)?;
    write(
        overlay.join("resources.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: any\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        resources:\n          limits:\n            cpu: \"1\"\n            memory: 512Mi\n",
    )?;
    Ok(overlay)
}

/// SplitMix64 (Steele, Lea and Flood): a tiny seeded generator, so that generated trees are the
/// same bytes on every machine and in every version (no dependency on a crate's stream).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the slight modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `out` filled with random (incompressible) bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The shape of the generated source repository of `sources-bench`: many small text files
/// (Kubernetes YAML, Markdown, JSON: compressible) and a few incompressible binary blobs, written
/// commit by commit so that a repository has history a shallow clone skips.
///
/// Commit 0 writes every file; each later commit rewrites about a tenth of the text files and a
/// quarter of the binary blobs. The content of a file depends only on its index and on the
/// commit that last wrote it, so the same [`SourceTree`] gives the same bytes everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceTree {
    /// Number of text files (1 KB to 12 KB each, 6.5 KB on average).
    pub text_files: usize,
    /// Number of binary blobs (512 KB to 1.5 MB each, 1 MB on average).
    pub binaries: usize,
}

/// Average size of a generated text file, in bytes.
const TEXT_MEAN: u64 = 6_656;
/// Average size of a generated binary blob, in bytes.
const BINARY_MEAN: u64 = 1 << 20;

impl SourceTree {
    /// A tree of about `bytes` bytes at any commit: a fifth in binary blobs, the rest text.
    pub fn for_size(bytes: u64) -> SourceTree {
        let binaries = (bytes / 5 / BINARY_MEAN).max(1);
        let text = bytes.saturating_sub(binaries * BINARY_MEAN);
        SourceTree {
            text_files: (text / TEXT_MEAN).max(1) as usize,
            binaries: binaries as usize,
        }
    }

    /// Writes into `dir` the files that commit number `commit` changes (all of them for commit 0)
    /// and returns how many it wrote. Paths look like a GitOps repository:
    /// `apps/<team>/<app>/<name>.yaml`, `clusters/…`, `docs/….md`, `dashboards/….json`,
    /// `assets/blob-NNN.bin`.
    pub fn write_commit(&self, dir: &Path, commit: u32) -> std::io::Result<usize> {
        let mut written = 0;
        for i in 0..self.text_files {
            if commit == 0 || mix(i as u64, u64::from(commit)).is_multiple_of(10) {
                let (path, text) = text_file(i, commit);
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
                std::fs::write(path, text)?;
                written += 1;
            }
        }
        let replaced = self.binaries.div_ceil(4);
        for j in 0..self.binaries {
            let turn = (j + commit as usize * replaced) % self.binaries;
            if commit == 0 || turn < replaced {
                let mut rng = SplitMix64::new(mix(0xB10B + j as u64, u64::from(commit)));
                let size = BINARY_MEAN / 2 + rng.below(BINARY_MEAN);
                let mut data = vec![0u8; size as usize];
                rng.fill(&mut data);
                let path = dir.join(format!("assets/blob-{j:03}.bin"));
                std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
                std::fs::write(path, data)?;
                written += 1;
            }
        }
        Ok(written)
    }
}

/// A seed from two numbers (one SplitMix64 step over both).
fn mix(a: u64, b: u64) -> u64 {
    SplitMix64::new(a.wrapping_mul(0x100_0000_01B3) ^ b.rotate_left(32)).next_u64()
}

const WORDS: &[&str] = &[
    "api",
    "app",
    "backend",
    "cache",
    "canary",
    "cluster",
    "config",
    "controller",
    "cron",
    "database",
    "default",
    "deploy",
    "edge",
    "events",
    "frontend",
    "gateway",
    "global",
    "grafana",
    "health",
    "ingress",
    "internal",
    "job",
    "kafka",
    "metrics",
    "monitoring",
    "nginx",
    "node",
    "operator",
    "payments",
    "platform",
    "policy",
    "postgres",
    "prometheus",
    "proxy",
    "queue",
    "redis",
    "registry",
    "release",
    "search",
    "secret",
    "service",
    "shard",
    "staging",
    "storage",
    "stream",
    "tenant",
    "traces",
    "user",
    "web",
    "worker",
    "the",
    "is",
    "when",
    "for",
    "with",
    "replicas",
    "rollout",
    "scales",
    "restarts",
    "requests",
    "limits",
    "timeout",
    "retry",
];

/// The path and content of text file `i` as commit `commit` writes it.
fn text_file(i: usize, commit: u32) -> (String, String) {
    use std::fmt::Write as _;
    let mut rng = SplitMix64::new(mix(i as u64, 0x7E47 + u64::from(commit)));
    let word = |rng: &mut SplitMix64| WORDS[rng.below(WORDS.len() as u64) as usize];
    let team = WORDS[(i / 400) % WORDS.len()];
    let app = format!("{}-{}", WORDS[(i / 20) % WORDS.len()], i / 20);
    let size = 1_024 + rng.below(11 * 1_024) as usize;
    let mut s = String::with_capacity(size + 256);
    let path = match i % 10 {
        0 => {
            let _ = writeln!(s, "# {} {}\n", word(&mut rng), word(&mut rng));
            while s.len() < size {
                for _ in 0..12 + rng.below(12) {
                    s.push_str(word(&mut rng));
                    s.push(' ');
                }
                s.push_str(".\n");
                if rng.below(4) == 0 {
                    s.push('\n');
                }
            }
            format!("docs/{team}/{app}-{i}.md")
        }
        1 => {
            s.push_str("{\n  \"panels\": [\n");
            while s.len() < size {
                let _ = writeln!(
                    s,
                    "    {{\"id\": {}, \"title\": \"{} {}\", \"expr\": \"sum(rate({}_{}_total{{job=\\\"{}\\\"}}[5m]))\"}},",
                    rng.below(10_000),
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    app
                );
            }
            s.push_str("    {}\n  ]\n}\n");
            format!("dashboards/{team}/{app}-{i}.json")
        }
        k => {
            let kind = ["Deployment", "Service", "ConfigMap", "Ingress"][k % 4];
            let _ = write!(
                s,
                "apiVersion: v1\nkind: {kind}\nmetadata:\n  name: {app}-{i}\n  namespace: {team}\n  labels:\n    app.kubernetes.io/name: {app}\n    app.kubernetes.io/part-of: {team}\n  annotations:\n    checksum/config: sha256:{:016x}{:016x}{:016x}{:016x}\nspec:\n",
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64()
            );
            while s.len() < size {
                let _ = writeln!(
                    s,
                    "  {}_{}:\n    {}: {}\n    {}: \"{}-{}\"\n    image: ghcr.io/acme/{}:1.{}.{}",
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    rng.below(1_000),
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    word(&mut rng),
                    rng.below(30),
                    rng.below(10)
                );
            }
            let top = if k < 6 { "apps" } else { "clusters" };
            format!("{top}/{team}/{app}/{}-{i}.yaml", kind.to_ascii_lowercase())
        }
    };
    (path, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // The first outputs of the reference C implementation seeded with 0.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    fn read_all(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                    out.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn source_tree_is_deterministic_and_later_commits_change_a_part() {
        let shape = SourceTree::for_size(8_000_000);
        assert_eq!(shape.binaries, 1);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let written = shape.write_commit(a.path(), 0).unwrap();
        assert_eq!(written, shape.text_files + shape.binaries);
        shape.write_commit(b.path(), 0).unwrap();
        let first = read_all(a.path());
        assert_eq!(first, read_all(b.path()), "same shape, different bytes");
        assert_eq!(first.len(), written);
        let bytes: usize = first.values().map(Vec::len).sum();
        assert!((6_000_000..10_000_000).contains(&bytes), "{bytes} bytes");
        assert!(
            first
                .keys()
                .any(|p| p.extension().is_some_and(|e| e == "yaml"))
        );

        let changed = shape.write_commit(a.path(), 1).unwrap();
        let second = read_all(a.path());
        assert_eq!(second.len(), first.len(), "commit 1 adds or removes files");
        let differing = first
            .iter()
            .filter(|(p, data)| second[*p] != **data)
            .count();
        assert_eq!(differing, changed);
        assert!(
            changed > shape.text_files / 20 && changed < shape.text_files / 5,
            "{changed} of {} files changed",
            first.len()
        );
    }
}
