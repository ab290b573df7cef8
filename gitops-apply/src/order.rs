//! Apply order and stages, as Flux's ssa `ReconcileOrder` and `ApplyAllStaged` define them.

use gitops_core::Object;

/// Kinds applied first, in this order (Flux's `ReconcileOrder.First`).
const FIRST: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterClass",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "VolumeSnapshotClass",
    "IngressClass",
    "GatewayClass",
    "ClusterRoleBinding",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// Kinds applied last (Flux's `ReconcileOrder.Last`).
const LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The rank of a kind: FIRST kinds by position, unknown kinds after them, LAST kinds at the end.
pub fn kind_rank(kind: &str) -> usize {
    if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        return i;
    }
    if let Some(i) = LAST.iter().position(|k| *k == kind) {
        return FIRST.len() + 1 + i;
    }
    FIRST.len()
}

/// The sort key of an object: kind rank, then group, kind, namespace, name (Flux's tie-break).
pub fn sort_key(
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> (usize, String, String, String, String) {
    (
        kind_rank(kind),
        group.to_string(),
        kind.to_string(),
        namespace.to_string(),
        name.to_string(),
    )
}

/// The stages of a staged apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApplyStage {
    /// CustomResourceDefinitions and Namespaces (and ClusterRoles), waited for.
    ClusterDefinitions,
    /// Kinds whose name ends in `Class` (StorageClass, IngressClass, ...).
    Classes,
    /// Everything else.
    Rest,
}

/// The stage of an object.
pub fn stage_of(object: &Object) -> ApplyStage {
    match object.kind() {
        "CustomResourceDefinition" | "Namespace" | "ClusterRole" => ApplyStage::ClusterDefinitions,
        k if k.ends_with("Class") => ApplyStage::Classes,
        _ => ApplyStage::Rest,
    }
}

/// Splits objects into stages, each sorted in apply order.
pub fn staged(objects: &[Object]) -> Vec<(ApplyStage, Vec<&Object>)> {
    let mut stages: Vec<(ApplyStage, Vec<&Object>)> = Vec::new();
    for stage in [
        ApplyStage::ClusterDefinitions,
        ApplyStage::Classes,
        ApplyStage::Rest,
    ] {
        let mut objs: Vec<&Object> = objects.iter().filter(|o| stage_of(o) == stage).collect();
        if objs.is_empty() {
            continue;
        }
        objs.sort_by_cached_key(|o| {
            sort_key(o.group(), o.kind(), o.namespace().unwrap_or(""), o.name())
        });
        stages.push((stage, objs));
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(api: &str, kind: &str, name: &str) -> Object {
        serde_json::from_value(
            serde_json::json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}}),
        )
        .unwrap()
    }

    #[test]
    fn stages_and_order_follow_flux() {
        let objs = vec![
            obj("apps/v1", "Deployment", "a"),
            obj("v1", "Service", "a"),
            obj("networking.k8s.io/v1", "IngressClass", "nginx"),
            obj("v1", "Namespace", "apps"),
            obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "x.example.com",
            ),
            obj("autoscaling/v2beta2", "HorizontalPodAutoscaler", "a"),
            obj(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "w",
            ),
        ];
        let staged = staged(&objs);
        let kinds: Vec<Vec<&str>> = staged
            .iter()
            .map(|(_, o)| o.iter().map(|o| o.kind()).collect())
            .collect();
        assert_eq!(
            kinds,
            vec![
                vec!["CustomResourceDefinition", "Namespace"],
                vec!["IngressClass"],
                vec![
                    "Service",
                    "Deployment",
                    "HorizontalPodAutoscaler",
                    "ValidatingWebhookConfiguration"
                ],
            ]
        );
    }
}
