//! Name references: after generated names got their hash suffix (and namespaces changed),
//! kustomize rewrites every field that refers to a renamed object
//! (`api/filters/nameref`, `accumulator/namereferencetransformer.go`, the `nameReference`
//! configuration in `builtinpluginconsts/namereference.go`).
//!
//! The whole default table is here: ConfigMaps and Secrets (pod volumes, projected sources,
//! `env[].valueFrom`, `envFrom`, `imagePullSecrets` in every workload kind, Ingress TLS and
//! annotations, RBAC `resourceNames`, StorageClass parameters...), ServiceAccounts (RBAC
//! binding subjects follow a service account into the namespace kustomize moved it to),
//! Services (webhook `clientConfig.service` likewise), Roles, workloads scaled by HPAs,
//! persistent volumes and claims, storage and priority classes.

use serde_json::Value;

use super::config::BackReference;
use super::{FieldSpec, walk};
use crate::error::RenderError;
use crate::kustomize::resource::{ResId, ResMap, Resource};

/// Container paths under a pod spec that name a ConfigMap.
const CONFIGMAP_POD_PATHS: &[&str] = &[
    "volumes/configMap/name",
    "containers/env/valueFrom/configMapKeyRef/name",
    "initContainers/env/valueFrom/configMapKeyRef/name",
    "containers/envFrom/configMapRef/name",
    "initContainers/envFrom/configMapRef/name",
    "volumes/projected/sources/configMap/name",
];

/// Container paths under a pod spec that name a Secret.
const SECRET_POD_PATHS: &[&str] = &[
    "volumes/secret/secretName",
    "containers/env/valueFrom/secretKeyRef/name",
    "initContainers/env/valueFrom/secretKeyRef/name",
    "containers/envFrom/secretRef/name",
    "initContainers/envFrom/secretRef/name",
    "imagePullSecrets/name",
    "volumes/projected/sources/secret/name",
];

/// Where each workload kind keeps its pod spec: (version selector, kind, prefix).
const POD_SPECS: &[(&str, &str, &str)] = &[
    ("v1", "Pod", "spec/"),
    ("", "PodTemplate", "template/spec/"),
    ("", "Deployment", "spec/template/spec/"),
    ("", "ReplicaSet", "spec/template/spec/"),
    ("", "DaemonSet", "spec/template/spec/"),
    ("", "StatefulSet", "spec/template/spec/"),
    ("", "Job", "spec/template/spec/"),
    ("", "CronJob", "spec/jobTemplate/spec/template/spec/"),
];

/// Workload kinds and where they keep their pod spec, for the simple per-pod references
/// (`serviceAccountName`, `priorityClassName`, persistent volume claims).
const WORKLOADS: &[(&str, &str)] = &[
    ("Pod", "spec/"),
    ("StatefulSet", "spec/template/spec/"),
    ("Deployment", "spec/template/spec/"),
    ("ReplicationController", "spec/template/spec/"),
    ("CronJob", "spec/jobTemplate/spec/template/spec/"),
    ("Job", "spec/template/spec/"),
    ("DaemonSet", "spec/template/spec/"),
];

/// kustomize's default `nameReference` configuration.
pub(crate) fn default_back_references() -> Vec<BackReference> {
    let spec = |group: &str, version: &str, kind: &str, path: &str| {
        FieldSpec::new(group, version, kind, path, false)
    };
    let pod = |paths: &[&str]| -> Vec<FieldSpec> {
        POD_SPECS
            .iter()
            .flat_map(|(version, kind, prefix)| {
                paths
                    .iter()
                    .map(move |p| FieldSpec::new("", version, kind, &format!("{prefix}{p}"), false))
            })
            .collect()
    };
    let workloads = |suffix: &str| -> Vec<FieldSpec> {
        WORKLOADS
            .iter()
            .map(|(kind, prefix)| FieldSpec::new("", "", kind, &format!("{prefix}{suffix}"), false))
            .collect()
    };
    let entry = |group: &str, version: &str, kind: &str, referrers| BackReference {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        referrers,
    };
    let hpa = || {
        vec![spec(
            "",
            "",
            "HorizontalPodAutoscaler",
            "spec/scaleTargetRef/name",
        )]
    };
    let mut configmap = pod(CONFIGMAP_POD_PATHS);
    configmap.extend([
        spec("", "", "Node", "spec/configSource/configMap"),
        spec("", "", "Role", "rules/resourceNames"),
        spec("", "", "ClusterRole", "rules/resourceNames"),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/nginx.ingress.kubernetes.io\/fastcgi-params-configmap",
        ),
    ]);
    let mut secret = pod(SECRET_POD_PATHS);
    secret.extend([
        spec("", "", "Ingress", "spec/tls/secretName"),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/ingress.kubernetes.io\/auth-secret",
        ),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/nginx.ingress.kubernetes.io\/auth-secret",
        ),
        spec(
            "",
            "",
            "Ingress",
            r"metadata/annotations/nginx.ingress.kubernetes.io\/auth-tls-secret",
        ),
        spec("", "", "ServiceAccount", "imagePullSecrets/name"),
        spec("", "", "StorageClass", "parameters/secretName"),
        spec("", "", "StorageClass", "parameters/adminSecretName"),
        spec("", "", "StorageClass", "parameters/userSecretName"),
        spec("", "", "StorageClass", "parameters/secretRef"),
        spec("", "", "Role", "rules/resourceNames"),
        spec("", "", "ClusterRole", "rules/resourceNames"),
        spec(
            "serving.knative.dev",
            "v1",
            "Service",
            "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
        ),
        spec("", "", "PersistentVolume", "spec/azureFile/secretName"),
    ]);
    let rbac = "rbac.authorization.k8s.io";
    let admission = "admissionregistration.k8s.io";
    let service = vec![
        spec("apps", "", "StatefulSet", "spec/serviceName"),
        spec(
            "",
            "",
            "Ingress",
            "spec/rules/http/paths/backend/serviceName",
        ),
        spec("", "", "Ingress", "spec/backend/serviceName"),
        spec(
            "",
            "",
            "Ingress",
            "spec/rules/http/paths/backend/service/name",
        ),
        spec("", "", "Ingress", "spec/defaultBackend/service/name"),
        spec(
            "apiregistration.k8s.io",
            "",
            "APIService",
            "spec/service/name",
        ),
        spec(
            admission,
            "",
            "ValidatingWebhookConfiguration",
            "webhooks/clientConfig/service",
        ),
        spec(
            admission,
            "",
            "MutatingWebhookConfiguration",
            "webhooks/clientConfig/service",
        ),
    ];
    let mut service_account = vec![
        spec(rbac, "", "RoleBinding", "subjects"),
        spec(rbac, "", "ClusterRoleBinding", "subjects"),
    ];
    service_account.extend(workloads("serviceAccountName"));
    let mut storage_class = vec![
        spec("", "", "PersistentVolume", "spec/storageClassName"),
        spec("", "", "PersistentVolumeClaim", "spec/storageClassName"),
    ];
    storage_class.push(spec(
        "",
        "",
        "StatefulSet",
        "spec/volumeClaimTemplates/spec/storageClassName",
    ));
    vec![
        entry("", "", "Deployment", hpa()),
        entry("", "", "ReplicationController", hpa()),
        entry("", "", "ReplicaSet", hpa()),
        entry("", "", "StatefulSet", hpa()),
        entry("", "v1", "ConfigMap", configmap),
        entry("", "v1", "Secret", secret),
        entry("", "v1", "Service", service),
        entry(
            rbac,
            "",
            "Role",
            vec![spec(rbac, "", "RoleBinding", "roleRef/name")],
        ),
        entry(
            rbac,
            "",
            "ClusterRole",
            vec![
                spec(rbac, "", "RoleBinding", "roleRef/name"),
                spec(rbac, "", "ClusterRoleBinding", "roleRef/name"),
            ],
        ),
        entry("", "v1", "ServiceAccount", service_account),
        entry(
            "",
            "v1",
            "PersistentVolumeClaim",
            workloads("volumes/persistentVolumeClaim/claimName"),
        ),
        entry(
            "",
            "v1",
            "PersistentVolume",
            vec![
                spec("", "", "PersistentVolumeClaim", "spec/volumeName"),
                spec("", "", "ClusterRole", "rules/resourceNames"),
            ],
        ),
        entry("storage.k8s.io", "v1", "StorageClass", storage_class),
        entry(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            workloads("priorityClassName"),
        ),
        // kustomize's configuration names the group "networking.k8s.io/v1", which matches no
        // object: kept as is, so IngressClass references are never rewritten, as in kustomize.
        entry(
            "networking.k8s.io/v1",
            "v1",
            "IngressClass",
            vec![spec("", "", "Ingress", "spec/ingressClassName")],
        ),
        entry(
            admission,
            "",
            "ValidatingAdmissionPolicy",
            vec![spec(
                admission,
                "",
                "ValidatingAdmissionPolicyBinding",
                "spec/policyName",
            )],
        ),
    ]
}

/// What is known of a possible referral target.
#[derive(Clone)]
struct Target {
    cur: ResId,
    prev: Vec<ResId>,
    org_ns: String,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

/// kustomize's `SameEndingSubSlice`: the shorter list ends the longer one.
fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return long.is_empty();
    }
    long.ends_with(short)
}

/// kustomize's `PrefixesSuffixesEquals`; with `allow_empty`, an empty list on either side
/// matches anything.
fn prefixes_suffixes_equal(
    t: &Target,
    prefixes: &[String],
    suffixes: &[String],
    allow_empty: bool,
) -> bool {
    let ok = |a: &[String], b: &[String]| {
        (allow_empty && (a.is_empty() || b.is_empty())) || same_ending(a, b)
    };
    ok(&t.prefixes, prefixes) && ok(&t.suffixes, suffixes)
}

/// kustomize's `SubsetThatCouldBeReferencedByResource`.
fn could_be_referenced(referrer: &Resource, targets: &[Target]) -> Vec<usize> {
    let rid = referrer.cur_id();
    if rid.is_cluster_scoped() {
        return (0..targets.len()).collect();
    }
    let mut binding_namespaces = Vec::new();
    if rid.kind == "RoleBinding"
        && let Some(Value::Array(subjects)) = referrer.obj.get("subjects")
    {
        for s in subjects {
            if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                && let Some(ns) = s.get("namespace").and_then(Value::as_str)
            {
                binding_namespaces.push(ns.to_owned());
            }
        }
    }
    (0..targets.len())
        .filter(|&i| {
            let t = &targets[i].cur;
            t.is_cluster_scoped()
                || t.effective_namespace() == rid.effective_namespace()
                || binding_namespaces.contains(&t.namespace)
        })
        .collect()
}

/// One filter run: a referrer field and the kind it refers to.
struct Lookup<'a> {
    target: &'a BackReference,
    referrer: ResId,
    /// The referrer's name prefixes and suffixes.
    affixes: (&'a [String], &'a [String]),
    /// For `roleRef/name` fields: the group and kind named in `roleRef`.
    role_ref: Option<(String, String)>,
    candidates: &'a [usize],
    targets: &'a [Target],
}

impl Lookup<'_> {
    /// kustomize's `selectReferral`.
    fn select(
        &self,
        old_name: &str,
        candidates: &[usize],
        with_namespace: bool,
    ) -> Result<Option<usize>, String> {
        let targets = self.targets;
        let t = self.target;
        let c: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| targets[i].prev.iter().any(|id| id.name == old_name))
            .filter(|&i| {
                targets[i]
                    .prev
                    .iter()
                    .any(|id| id.selected_by(&t.group, &t.version, &t.kind))
            })
            .filter(|&i| match &self.role_ref {
                None => true,
                Some((group, kind)) => targets[i]
                    .prev
                    .iter()
                    .any(|id| id.selected_by(group, "", kind)),
            })
            .filter(|&i| {
                let c = &targets[i].cur;
                self.referrer.is_cluster_scoped()
                    || c.is_cluster_scoped()
                    || c.kind == "ServiceAccount"
                    || c.effective_namespace() == self.referrer.effective_namespace()
            })
            .collect();
        if c.len() == 1 {
            return Ok(Some(c[0]));
        }
        let (prefixes, suffixes) = self.affixes;
        let mut c: Vec<usize> = c
            .into_iter()
            .filter(|&i| prefixes_suffixes_equal(&targets[i], prefixes, suffixes, true))
            .collect();
        if c.len() > 1 {
            c.retain(|&i| prefixes_suffixes_equal(&targets[i], prefixes, suffixes, false));
        }
        match c.len() {
            0 => Ok(None),
            1 => Ok(Some(c[0])),
            _ => {
                let first = &targets[c[0]].cur;
                let identical = c.iter().all(|&i| {
                    let t = &targets[i].cur;
                    t.name == first.name && (!with_namespace || t.namespace == first.namespace)
                });
                if identical {
                    Ok(Some(c[0]))
                } else {
                    let ids: Vec<String> = c.iter().map(|&i| targets[i].cur.to_string()).collect();
                    Err(format!(
                        "found multiple possible referrals: {}",
                        ids.join(", ")
                    ))
                }
            }
        }
    }

    fn set(&self, node: &mut Value) -> Result<(), String> {
        match node {
            Value::Null => Ok(()),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(_) => self.set_mapping(item)?,
                        Value::Array(_) => {
                            return Err("expected a scalar or mapping element".into());
                        }
                        _ => self.set_scalar(item)?,
                    }
                }
                Ok(())
            }
            Value::Object(_) => self.set_mapping(node),
            _ => self.set_scalar(node),
        }
    }

    fn set_scalar(&self, node: &mut Value) -> Result<(), String> {
        let Value::String(old) = node else {
            return Ok(());
        };
        if let Some(i) = self.select(old, self.candidates, false)?
            && self.targets[i].cur.name != *old
        {
            *node = Value::String(self.targets[i].cur.name.clone());
        }
        Ok(())
    }

    fn set_mapping(&self, node: &mut Value) -> Result<(), String> {
        let Value::Object(map) = node else {
            return Ok(());
        };
        let old = match map.get("name") {
            None => return Err("path config error; no 'name' field in node".into()),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Ok(()),
        };
        let targets = self.targets;
        let filtered: Vec<usize> = match map.get("namespace") {
            None => self.candidates.to_vec(),
            Some(ns) => {
                let ns = crate::kustomize::resource::scalar_text(Some(ns));
                let by_org: Vec<usize> = self
                    .candidates
                    .iter()
                    .copied()
                    .filter(|&i| targets[i].org_ns == ns)
                    .collect();
                if !by_org.is_empty() {
                    by_org
                } else {
                    self.candidates
                        .iter()
                        .copied()
                        .filter(|&i| targets[i].cur.effective_namespace() == ns)
                        .collect()
                }
            }
        };
        let Some(i) = self.select(&old, &filtered, true)? else {
            return Ok(());
        };
        let t = &targets[i].cur;
        if t.name == old && t.namespace.is_empty() {
            return Ok(());
        }
        map.insert("name".into(), Value::String(t.name.clone()));
        if !t.namespace.is_empty() {
            map.insert("namespace".into(), Value::String(t.namespace.clone()));
        }
        Ok(())
    }
}

/// The group and kind in a binding's `roleRef`, when both are there.
fn role_ref(r: &Resource) -> Option<(String, String)> {
    let rr = r.obj.get("roleRef")?;
    let group = rr.get("apiGroup")?;
    let kind = rr.get("kind")?;
    Some((
        crate::kustomize::resource::scalar_text(Some(group)),
        crate::kustomize::resource::scalar_text(Some(kind)),
    ))
}

/// Rewrites the references to renamed (or moved) objects in `m`, following the accumulated
/// `nameReference` configuration.
pub(crate) fn fix_references(m: &mut ResMap) -> Result<(), RenderError> {
    let targets: Vec<Target> = m
        .resources
        .iter()
        .map(|r| Target {
            cur: r.cur_id(),
            prev: r.prev_ids.clone(),
            org_ns: r.org_id().effective_namespace().to_owned(),
            prefixes: r.prefixes.clone(),
            suffixes: r.suffixes.clone(),
        })
        .collect();
    let backrefs = std::mem::take(&mut m.config.name_reference);
    for r in &mut m.resources {
        let org = r.org_id();
        let filters: Vec<(&FieldSpec, &BackReference)> = backrefs
            .iter()
            .flat_map(|b| b.referrers.iter().map(move |fs| (fs, b)))
            .filter(|(fs, _)| org.selected_by(&fs.group, &fs.version, &fs.kind))
            .collect();
        if filters.is_empty() {
            continue;
        }
        let candidates = could_be_referenced(r, &targets);
        let referrer = r.cur_id();
        let (prefixes, suffixes) = (r.prefixes.clone(), r.suffixes.clone());
        for (fs, target) in filters {
            let lookup = Lookup {
                target,
                referrer: referrer.clone(),
                affixes: (&prefixes, &suffixes),
                role_ref: if fs.path.ends_with("roleRef/name") {
                    role_ref(r)
                } else {
                    None
                },
                candidates: &candidates,
                targets: &targets,
            };
            let segments = fs.segments();
            let mut root = Value::Object(std::mem::take(&mut r.obj));
            let result = walk(&mut root, &segments, None, &mut |node: &mut Value| {
                lookup.set(node)
            });
            if let Value::Object(obj) = root {
                r.obj = obj;
            }
            result.map_err(|message| RenderError::InvalidObject {
                file: r.source.as_ref().clone(),
                object: r.describe(),
                field: fs.path.replace('/', "."),
                message: format!("updating name reference to a {}: {message}", target.kind),
            })?;
        }
    }
    m.config.name_reference = backrefs;
    Ok(())
}
