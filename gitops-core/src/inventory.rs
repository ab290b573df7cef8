//! Flux's inventory: the list of objects a unit applied, as `status.inventory.entries[] {id, v}`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::object::ObjectId;

/// One inventory entry in Flux's format: `id` is [`ObjectId::inventory_id`], `v` the API version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// `<namespace>_<name>_<group>_<kind>`.
    pub id: String,
    /// API version without the group, e.g. `v1`.
    pub v: String,
}

impl InventoryEntry {
    /// The entry for an object of `id` at API version `version` (without group).
    pub fn new(id: &ObjectId, version: impl Into<String>) -> Self {
        InventoryEntry {
            id: id.inventory_id(),
            v: version.into(),
        }
    }

    /// Parses the id back; `None` when it is not a valid inventory id.
    pub fn object_id(&self) -> Option<ObjectId> {
        ObjectId::from_inventory_id(&self.id)
    }

    /// `apiVersion` of the entry: `group/v` or `v` for the core group.
    pub fn api_version(&self) -> Option<String> {
        let id = self.object_id()?;
        Some(if id.group.is_empty() {
            self.v.clone()
        } else {
            format!("{}/{}", id.group, self.v)
        })
    }
}

/// The objects a unit owns, in apply order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Entries in apply order.
    pub entries: Vec<InventoryEntry>,
}

impl Inventory {
    /// Entries of `self` whose id is not in `newer`: what a prune deletes. Set difference on the
    /// id only (a version change is not a removal), in `self`'s order.
    pub fn stale_since(&self, newer: &Inventory) -> Vec<InventoryEntry> {
        let keep: HashSet<&str> = newer.entries.iter().map(|e| e.id.as_str()).collect();
        self.entries
            .iter()
            .filter(|e| !keep.contains(e.id.as_str()))
            .cloned()
            .collect()
    }

    /// `self` followed by the entries of `more` whose id it does not hold yet (each id once,
    /// in order): the inventory a failed apply records, so nothing it may have written is
    /// forgotten.
    pub fn union(mut self, more: &[InventoryEntry]) -> Inventory {
        let mut seen: HashSet<String> = self.entries.iter().map(|e| e.id.clone()).collect();
        for e in more {
            if seen.insert(e.id.clone()) {
                self.entries.push(e.clone());
            }
        }
        self
    }

    /// Whether an object is in the inventory.
    pub fn contains(&self, id: &ObjectId) -> bool {
        let id = id.inventory_id();
        self.entries.iter().any(|e| e.id == id)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_is_a_set_difference_on_ids() {
        let dep = ObjectId::new("apps", "Deployment", "default", "podinfo");
        let hpa = ObjectId::new(
            "autoscaling",
            "HorizontalPodAutoscaler",
            "default",
            "podinfo",
        );
        let old = Inventory {
            entries: vec![
                InventoryEntry::new(&dep, "v1"),
                InventoryEntry::new(&hpa, "v2beta2"),
            ],
        };
        let new = Inventory {
            entries: vec![InventoryEntry::new(&dep, "v2")],
        };
        let stale = old.stale_since(&new);
        assert_eq!(stale, vec![InventoryEntry::new(&hpa, "v2beta2")]);
        assert_eq!(stale[0].api_version().unwrap(), "autoscaling/v2beta2");
    }

    #[test]
    fn union_appends_new_ids_once_and_keeps_order() {
        let a = ObjectId::new("", "ConfigMap", "default", "a");
        let b = ObjectId::new("", "ConfigMap", "default", "b");
        let ns = ObjectId::new("", "Namespace", "", "team");
        let old = Inventory {
            entries: vec![InventoryEntry::new(&a, "v1"), InventoryEntry::new(&b, "v1")],
        };
        let more = [
            InventoryEntry::new(&ns, "v1"),
            InventoryEntry::new(&b, "v1"),
            InventoryEntry::new(&ns, "v1"),
        ];
        let ids: Vec<_> = old.union(&more).entries.into_iter().map(|e| e.id).collect();
        assert_eq!(ids, [a.inventory_id(), b.inventory_id(), ns.inventory_id()]);
    }
}
