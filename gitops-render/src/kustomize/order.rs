//! kustomize's legacy output order (`SortOrderTransformer` with `legacy` order, the default of
//! `kubectl kustomize` v5.5): kinds listed first in a fixed order, webhook configurations last,
//! other kinds in between; ties broken by group, version, kind, then namespace and name.

use std::cmp::Ordering;

use super::resource::{ResId, Resource};

/// Kinds placed first, in this order (kustomize's `defaultOrderFirst`).
const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// Kinds placed last, in this order (kustomize's `defaultOrderLast`).
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// kustomize's `typeOrders`: the rank of a kind in the legacy order.
pub(crate) fn rank(kind: &str) -> i64 {
    if let Some(i) = ORDER_FIRST.iter().position(|k| *k == kind) {
        return i as i64 - ORDER_FIRST.len() as i64;
    }
    if let Some(i) = ORDER_LAST.iter().position(|k| *k == kind) {
        return 1 + i as i64;
    }
    0
}

fn or(s: &str, placeholder: &'static str) -> String {
    if s.is_empty() {
        placeholder.to_owned()
    } else {
        s.to_owned()
    }
}

/// `legacyGVKSortString`.
fn gvk_string(id: &ResId) -> String {
    format!(
        "{}_{}_{}",
        or(&id.group, "~G"),
        or(&id.version, "~V"),
        or(&id.kind, "~K")
    )
}

/// `legacyResIDSortString`: `Gvk.String()` (kind.version.group), namespace and name.
fn id_string(id: &ResId) -> String {
    format!(
        "{}.{}.{}|{}|{}",
        or(&id.kind, "[noKind]"),
        or(&id.version, "[noVer]"),
        or(&id.group, "[noGrp]"),
        or(&id.namespace, "~X"),
        or(&id.name, "~N")
    )
}

fn compare(a: &ResId, b: &ResId, rank: &dyn Fn(&str) -> i64) -> Ordering {
    let same_gvk = a.group == b.group && a.version == b.version && a.kind == b.kind;
    if !same_gvk {
        let (ra, rb) = (rank(&a.kind), rank(&b.kind));
        if ra != rb {
            return ra.cmp(&rb);
        }
        let (ga, gb) = (gvk_string(a), gvk_string(b));
        if a.kind == "Namespace"
            && b.kind == "Namespace"
            && (a.group.is_empty() || b.group.is_empty())
        {
            return gb.cmp(&ga);
        }
        return ga.cmp(&gb);
    }
    id_string(a).cmp(&id_string(b))
}

/// Sorts resources in kustomize's legacy order.
pub(crate) fn legacy_sort(resources: Vec<Resource>) -> Vec<Resource> {
    let mut keyed: Vec<(ResId, Resource)> =
        resources.into_iter().map(|r| (r.cur_id(), r)).collect();
    // Current ids are unique, so the order is total (kustomize's unstable sort gives the same).
    keyed.sort_by(|(a, _), (b, _)| compare(a, b, &rank));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Sorts resources in the legacy order with the kinds of `first` placed first and those of
/// `last` placed last (`sortOptions.legacySortOptions`; a kind in both lists counts as last).
pub(crate) fn legacy_sort_with(
    resources: Vec<Resource>,
    first: &[String],
    last: &[String],
) -> Vec<Resource> {
    let mut orders = std::collections::HashMap::new();
    for (i, k) in first.iter().enumerate() {
        orders.insert(k.as_str(), i as i64 - first.len() as i64);
    }
    for (i, k) in last.iter().enumerate() {
        orders.insert(k.as_str(), 1 + i as i64);
    }
    let rank = |kind: &str| orders.get(kind).copied().unwrap_or(0);
    let mut keyed: Vec<(ResId, Resource)> =
        resources.into_iter().map(|r| (r.cur_id(), r)).collect();
    keyed.sort_by(|(a, _), (b, _)| compare(a, b, &rank));
    keyed.into_iter().map(|(_, r)| r).collect()
}
