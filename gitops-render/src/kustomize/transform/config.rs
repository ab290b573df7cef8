//! kustomize's transformer configuration (`api/internal/plugins/builtinconfig`): the field
//! specs the builtin transformers act through, by default (`builtinpluginconsts`) and as
//! extended by a kustomization's `configurations:` files.
//!
//! Each kustomization merges the defaults and its own `configurations` into the configuration
//! accumulated from its bases; `namePrefix`, `commonLabels`, `images`... of that kustomization
//! then use the merged field specs, and the name references are fixed at the top with the
//! `nameReference` entries accumulated from the whole tree.

use std::path::Path;

use serde_json::{Map, Value};

use super::FieldSpec;
use super::labels::field_specs;
use crate::error::RenderError;

/// One `nameReference` entry: the referral target's group, version and kind (empty: any) and
/// the fields of other objects that refer to it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackReference {
    /// Target group.
    pub group: String,
    /// Target version.
    pub version: String,
    /// Target kind.
    pub kind: String,
    /// The referring fields.
    pub referrers: Vec<FieldSpec>,
}

/// kustomize's `TransformerConfig`, reduced to the lists this renderer uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TransformerConfig {
    /// `namePrefix` field specs.
    pub name_prefix: Vec<FieldSpec>,
    /// `nameSuffix` field specs.
    pub name_suffix: Vec<FieldSpec>,
    /// `commonLabels` field specs (metadata, selectors and templates).
    pub common_labels: Vec<FieldSpec>,
    /// `labels` field specs (added to every `labels:` entry; empty by default).
    pub labels: Vec<FieldSpec>,
    /// `templateLabels` field specs (metadata and templates).
    pub template_labels: Vec<FieldSpec>,
    /// `commonAnnotations` field specs.
    pub common_annotations: Vec<FieldSpec>,
    /// `images` field specs.
    pub images: Vec<FieldSpec>,
    /// `replicas` field specs.
    pub replicas: Vec<FieldSpec>,
    /// `namespace` field specs.
    pub namespace: Vec<FieldSpec>,
    /// `nameReference` entries.
    pub name_reference: Vec<BackReference>,
    /// `varReference` field specs: where `vars` are substituted.
    pub var_reference: Vec<FieldSpec>,
}

/// kustomize's default `varReference` field specs (`builtinpluginconsts/varreference.go`).
const VAR_REFERENCE: &[(&str, &str, &str, &str)] = &[
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/args",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/command",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/env/value",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/args",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/command",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/env/value",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/volumes/nfs/server",
    ),
    ("", "", "DaemonSet", "spec/template/spec/containers/args"),
    ("", "", "DaemonSet", "spec/template/spec/containers/command"),
    (
        "",
        "",
        "DaemonSet",
        "spec/template/spec/containers/env/value",
    ),
    (
        "",
        "",
        "DaemonSet",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "DaemonSet",
        "spec/template/spec/initContainers/args",
    ),
    (
        "",
        "",
        "DaemonSet",
        "spec/template/spec/initContainers/command",
    ),
    (
        "",
        "",
        "DaemonSet",
        "spec/template/spec/initContainers/env/value",
    ),
    (
        "",
        "",
        "DaemonSet",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("", "", "DaemonSet", "spec/template/spec/volumes/nfs/server"),
    ("", "", "Deployment", "spec/template/spec/containers/args"),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/containers/command",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/containers/env/value",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/initContainers/args",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/initContainers/command",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/initContainers/env/value",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "Deployment",
        "spec/template/spec/volumes/nfs/server",
    ),
    ("", "", "Deployment", "spec/template/metadata/annotations"),
    ("", "", "Ingress", "spec/rules/host"),
    ("", "", "Ingress", "spec/tls/hosts"),
    ("", "", "Ingress", "spec/tls/secretName"),
    ("", "", "Job", "spec/template/spec/containers/args"),
    ("", "", "Job", "spec/template/spec/containers/command"),
    ("", "", "Job", "spec/template/spec/containers/env/value"),
    (
        "",
        "",
        "Job",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    ("", "", "Job", "spec/template/spec/initContainers/args"),
    ("", "", "Job", "spec/template/spec/initContainers/command"),
    ("", "", "Job", "spec/template/spec/initContainers/env/value"),
    (
        "",
        "",
        "Job",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("", "", "Job", "spec/template/spec/volumes/nfs/server"),
    ("", "", "Pod", "spec/containers/args"),
    ("", "", "Pod", "spec/containers/command"),
    ("", "", "Pod", "spec/containers/env/value"),
    ("", "", "Pod", "spec/containers/volumeMounts/mountPath"),
    ("", "", "Pod", "spec/initContainers/args"),
    ("", "", "Pod", "spec/initContainers/command"),
    ("", "", "Pod", "spec/initContainers/env/value"),
    ("", "", "Pod", "spec/initContainers/volumeMounts/mountPath"),
    ("", "", "Pod", "spec/volumes/nfs/server"),
    ("", "", "ReplicaSet", "spec/template/spec/containers/args"),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/containers/command",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/containers/env/value",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/initContainers/args",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/initContainers/command",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/initContainers/env/value",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "ReplicaSet",
        "spec/template/spec/volumes/nfs/server",
    ),
    ("", "", "Service", "spec/ports/port"),
    ("", "", "Service", "spec/ports/targetPort"),
    ("", "", "StatefulSet", "spec/template/spec/containers/args"),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/containers/command",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/containers/env/value",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/initContainers/args",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/initContainers/command",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/initContainers/env/value",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    (
        "",
        "",
        "StatefulSet",
        "spec/volumeClaimTemplates/spec/nfs/server",
    ),
    ("", "", "PersistentVolume", "spec/nfs/server"),
    ("", "", "", "metadata/labels"),
    ("", "", "", "metadata/annotations"),
];

fn specs(list: &[(&str, &str, &str, &str, bool)]) -> Vec<FieldSpec> {
    list.iter()
        .map(|(g, v, k, p, c)| FieldSpec::new(g, v, k, p, *c))
        .collect()
}

/// Labels on object metadata and pod (and job, claim) templates.
const METADATA_LABELS: &[(&str, &str, &str, &str, bool)] = &[
    ("", "", "", "metadata/labels", true),
    (
        "",
        "v1",
        "ReplicationController",
        "spec/template/metadata/labels",
        true,
    ),
    ("", "", "Deployment", "spec/template/metadata/labels", true),
    ("", "", "ReplicaSet", "spec/template/metadata/labels", true),
    ("", "", "DaemonSet", "spec/template/metadata/labels", true),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/template/metadata/labels",
        true,
    ),
    (
        "apps",
        "",
        "StatefulSet",
        "spec/volumeClaimTemplates[]/metadata/labels",
        true,
    ),
    ("batch", "", "Job", "spec/template/metadata/labels", true),
    (
        "batch",
        "",
        "CronJob",
        "spec/jobTemplate/metadata/labels",
        true,
    ),
    (
        "batch",
        "",
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

const AFFINITY: &[&str] = &[
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
];

fn common_labels() -> Vec<FieldSpec> {
    let mut out = specs(&[
        ("", "v1", "Service", "spec/selector", true),
        ("", "v1", "ReplicationController", "spec/selector", true),
        ("", "", "Deployment", "spec/selector/matchLabels", true),
    ]);
    out.extend(
        AFFINITY
            .iter()
            .map(|p| FieldSpec::new("apps", "", "Deployment", p, false)),
    );
    out.extend(specs(&[
        ("", "", "ReplicaSet", "spec/selector/matchLabels", true),
        ("", "", "DaemonSet", "spec/selector/matchLabels", true),
        ("apps", "", "StatefulSet", "spec/selector/matchLabels", true),
    ]));
    out.extend(
        AFFINITY
            .iter()
            .map(|p| FieldSpec::new("apps", "", "StatefulSet", p, false)),
    );
    out.extend(specs(&[
        ("batch", "", "Job", "spec/selector/matchLabels", false),
        (
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/selector/matchLabels",
            false,
        ),
        (
            "policy",
            "",
            "PodDisruptionBudget",
            "spec/selector/matchLabels",
            false,
        ),
        (
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/podSelector/matchLabels",
            false,
        ),
        (
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/ingress/from/podSelector/matchLabels",
            false,
        ),
        (
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/egress/to/podSelector/matchLabels",
            false,
        ),
    ]));
    out.extend(specs(METADATA_LABELS));
    out
}

fn common_annotations() -> Vec<FieldSpec> {
    specs(&[
        ("", "", "", "metadata/annotations", true),
        (
            "",
            "v1",
            "ReplicationController",
            "spec/template/metadata/annotations",
            true,
        ),
        (
            "",
            "",
            "Deployment",
            "spec/template/metadata/annotations",
            true,
        ),
        (
            "",
            "",
            "ReplicaSet",
            "spec/template/metadata/annotations",
            true,
        ),
        (
            "",
            "",
            "DaemonSet",
            "spec/template/metadata/annotations",
            true,
        ),
        (
            "",
            "",
            "StatefulSet",
            "spec/template/metadata/annotations",
            true,
        ),
        (
            "batch",
            "",
            "Job",
            "spec/template/metadata/annotations",
            true,
        ),
        (
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/metadata/annotations",
            true,
        ),
        (
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/template/metadata/annotations",
            true,
        ),
    ])
}

impl TransformerConfig {
    /// kustomize's default configuration (`MakeDefaultConfig`).
    pub(crate) fn defaults() -> Self {
        TransformerConfig {
            name_prefix: specs(&[("", "", "", "metadata/name", false)]),
            name_suffix: specs(&[("", "", "", "metadata/name", false)]),
            common_labels: common_labels(),
            labels: Vec::new(),
            template_labels: specs(METADATA_LABELS),
            common_annotations: common_annotations(),
            images: specs(&[
                ("", "", "", "spec/containers[]/image", true),
                ("", "", "", "spec/initContainers[]/image", true),
                ("", "", "", "spec/template/spec/containers[]/image", true),
                (
                    "",
                    "",
                    "",
                    "spec/template/spec/initContainers[]/image",
                    true,
                ),
            ]),
            replicas: specs(&[
                ("", "", "Deployment", "spec/replicas", true),
                ("", "", "ReplicationController", "spec/replicas", true),
                ("", "", "ReplicaSet", "spec/replicas", true),
                ("", "", "StatefulSet", "spec/replicas", true),
            ]),
            namespace: super::namespace::default_field_specs(),
            name_reference: super::nameref::default_back_references(),
            var_reference: VAR_REFERENCE
                .iter()
                .map(|(g, v, k, p)| FieldSpec::new(g, v, k, p, false))
                .collect(),
        }
    }

    /// kustomize's `TransformerConfig.Merge`: field specs already present (same path, selected
    /// by the same group, version and kind) are kept once; name references to the same kind
    /// merge their referrers.
    pub(crate) fn merge(&mut self, other: &TransformerConfig) -> Result<(), String> {
        let pairs: [(&mut Vec<FieldSpec>, &Vec<FieldSpec>, &str); 10] = [
            (&mut self.namespace, &other.namespace, "NameSpace"),
            (&mut self.name_prefix, &other.name_prefix, "NamePrefix"),
            (&mut self.name_suffix, &other.name_suffix, "NameSuffix"),
            (
                &mut self.common_labels,
                &other.common_labels,
                "CommonLabels",
            ),
            (&mut self.labels, &other.labels, "Labels"),
            (
                &mut self.template_labels,
                &other.template_labels,
                "TemplateLabels",
            ),
            (
                &mut self.common_annotations,
                &other.common_annotations,
                "CommonAnnotations",
            ),
            (&mut self.images, &other.images, "Images"),
            (&mut self.replicas, &other.replicas, "Replicas"),
            (
                &mut self.var_reference,
                &other.var_reference,
                "VarReference",
            ),
        ];
        for (mine, theirs, name) in pairs {
            merge_all(mine, theirs)
                .map_err(|e| format!("failed to merge {name} fieldSpec: {e}"))?;
            mine.sort_by_cached_key(|fs| gvk_sort_key(&fs.group, &fs.version, &fs.kind));
        }
        for b in &other.name_reference {
            match self
                .name_reference
                .iter_mut()
                .find(|x| x.group == b.group && x.version == b.version && x.kind == b.kind)
            {
                Some(x) => merge_all(&mut x.referrers, &b.referrers)
                    .map_err(|e| format!("failed to merge NameReference fieldSpec: {e}"))?,
                None => self.name_reference.push(b.clone()),
            }
        }
        self.name_reference
            .sort_by_cached_key(|b| gvk_sort_key(&b.group, &b.version, &b.kind));
        Ok(())
    }

    /// Reads a `configurations:` file.
    pub(crate) fn from_file(text: &str, file: &Path) -> Result<Self, RenderError> {
        let value = crate::yaml::parse_kustomization_document(text)
            .map_err(|e| RenderError::yaml(file, e))?
            .unwrap_or(Value::Null);
        let map = match value {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => {
                return Err(RenderError::field(
                    file,
                    "(root)",
                    format!("expected a mapping, found {other}"),
                ));
            }
        };
        let mut c = TransformerConfig::default();
        for (k, v) in &map {
            let v = Some(v);
            match k.as_str() {
                "namePrefix" => c.name_prefix = field_specs(v, file, k)?,
                "nameSuffix" => c.name_suffix = field_specs(v, file, k)?,
                "commonLabels" => c.common_labels = field_specs(v, file, k)?,
                "labels" => c.labels = field_specs(v, file, k)?,
                "templateLabels" => c.template_labels = field_specs(v, file, k)?,
                "commonAnnotations" => c.common_annotations = field_specs(v, file, k)?,
                "images" => c.images = field_specs(v, file, k)?,
                "replicas" => c.replicas = field_specs(v, file, k)?,
                "nameReference" => c.name_reference = back_references(v, file, k)?,
                "namespace" => c.namespace = field_specs(v, file, k)?,
                "varReference" => c.var_reference = field_specs(v, file, k)?,
                _ => {
                    return Err(RenderError::field(
                        file,
                        k,
                        "unknown field (invalid transformer configuration)",
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// The key kustomize sorts merged configurations by (`Gvk.IsLessThan`): the kind's rank in
/// the legacy order, then `group_version_kind` with `~G`, `~V`, `~K` for empty parts.
fn gvk_sort_key(group: &str, version: &str, kind: &str) -> (i64, String) {
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_owned()
        } else {
            s.to_owned()
        }
    };
    (
        crate::kustomize::order::rank(kind),
        format!(
            "{}_{}_{}",
            or(group, "~G"),
            or(version, "~V"),
            or(kind, "~K")
        ),
    )
}

/// kustomize's `FsSlice.MergeAll`.
pub(crate) fn merge_all(mine: &mut Vec<FieldSpec>, theirs: &[FieldSpec]) -> Result<(), String> {
    for fs in theirs {
        merge_one(mine, fs.clone())?;
    }
    Ok(())
}

/// kustomize's `FsSlice.MergeOne`: a field spec equal in effect to one present is dropped (an
/// error if they disagree on `create`).
pub(crate) fn merge_one(mine: &mut Vec<FieldSpec>, fs: FieldSpec) -> Result<(), String> {
    let existing = mine.iter().find(|x| {
        x.path == fs.path
            && (fs.group.is_empty() || fs.group == x.group)
            && (fs.version.is_empty() || fs.version == x.version)
            && (fs.kind.is_empty() || fs.kind == x.kind)
    });
    match existing {
        Some(x) if x.create != fs.create => Err("conflicting fieldspecs".into()),
        Some(_) => Ok(()),
        None => {
            mine.push(fs);
            Ok(())
        }
    }
}

fn back_references(
    v: Option<&Value>,
    file: &Path,
    field: &str,
) -> Result<Vec<BackReference>, RenderError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(RenderError::field(
                file,
                field,
                format!("expected a list, found {other}"),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Value::Object(m) = item else {
            return Err(RenderError::field(file, f, "expected a mapping"));
        };
        let text = |k: &str| match m.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(RenderError::field(
                file,
                format!("{f}.{k}"),
                format!("expected a string, found {other}"),
            )),
        };
        out.push(BackReference {
            group: text("group")?,
            version: text("version")?,
            kind: text("kind")?,
            referrers: field_specs(m.get("fieldSpecs"), file, &format!("{f}.fieldSpecs"))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_the_defaults_again_changes_nothing() {
        let mut c = TransformerConfig::default();
        c.merge(&TransformerConfig::defaults()).unwrap();
        let once = c.clone();
        c.merge(&TransformerConfig::defaults()).unwrap();
        assert_eq!(c, once);
        assert_eq!(
            c.common_labels.len(),
            TransformerConfig::defaults().common_labels.len()
        );
        let kinds: Vec<&str> = c.replicas.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Deployment",
                "StatefulSet",
                "ReplicaSet",
                "ReplicationController"
            ]
        );
    }

    #[test]
    fn conflicting_create_flags_fail() {
        let mut v = vec![FieldSpec::new("", "", "", "metadata/labels", true)];
        let err =
            merge_one(&mut v, FieldSpec::new("", "", "", "metadata/labels", false)).unwrap_err();
        assert!(err.contains("conflicting"), "{err}");
    }
}
