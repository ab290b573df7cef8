//! Change sets as Flux reports them: one entry per object, `Kind/namespace/name action`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::inventory::{Inventory, InventoryEntry};
use crate::object::ObjectId;

/// What happened to one object, with Flux's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The object did not exist and was created.
    Created,
    /// The object existed and differed; it was patched.
    Configured,
    /// The object existed and the dry run showed no difference; nothing was written.
    Unchanged,
    /// The object was deleted (prune).
    Deleted,
    /// The object was left alone (e.g. prune disabled, or no longer ours).
    Skipped,
}

impl Action {
    /// The lowercase word Flux prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSetEntry {
    /// The object.
    pub id: ObjectId,
    /// API version without group (what the inventory records as `v`).
    pub version: String,
    /// What happened.
    pub action: Action,
    /// For a `configured` object, the fields that differed between the live object and the
    /// desired state (e.g. `spec.replicas`, `data.key`), found by comparing the server-side dry
    /// run with the live object; empty otherwise. Not part of the `Display` output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}

impl fmt::Display for ChangeSetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.action)
    }
}

/// The entries of one apply or prune, in the order the work was done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// Entries in order.
    pub entries: Vec<ChangeSetEntry>,
}

impl ChangeSet {
    /// Adds an entry.
    pub fn push(&mut self, id: ObjectId, version: impl Into<String>, action: Action) {
        self.entries.push(ChangeSetEntry {
            id,
            version: version.into(),
            action,
            drift: Vec::new(),
        });
    }

    /// Adds an entry with the field paths that drifted (see [`ChangeSetEntry::drift`]).
    pub fn push_with_drift(
        &mut self,
        id: ObjectId,
        version: impl Into<String>,
        action: Action,
        drift: Vec<String>,
    ) {
        self.entries.push(ChangeSetEntry {
            id,
            version: version.into(),
            action,
            drift,
        });
    }

    /// Appends all entries of `other`.
    pub fn extend(&mut self, other: ChangeSet) {
        self.entries.extend(other.entries);
    }

    /// Entries whose action is not `unchanged` (what Flux puts into events).
    pub fn changes(&self) -> impl Iterator<Item = &ChangeSetEntry> {
        self.entries
            .iter()
            .filter(|e| e.action != Action::Unchanged)
    }

    /// The inventory of an apply: every entry that is on the cluster because of us, in order
    /// (created, configured, unchanged and skipped; not deleted).
    pub fn to_inventory(&self) -> Inventory {
        Inventory {
            entries: self
                .entries
                .iter()
                .filter(|e| e.action != Action::Deleted)
                .map(|e| InventoryEntry::new(&e.id, e.version.clone()))
                .collect(),
        }
    }

    /// Whether nothing is in the set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Display for ChangeSet {
    /// One `Kind/namespace/name action` per line, like Flux's logs and `flux diff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}
