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
