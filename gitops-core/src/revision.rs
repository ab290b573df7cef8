//! Flux's artifact revision strings (RFC-0005): `<named pointer>@<algorithm>:<checksum>`, or a bare
//! digest when there is no pointer.
//!
//! | source | example |
//! | --- | --- |
//! | Git branch / tag / semver | `main@sha1:<40 hex>`, `v1.2.3@sha1:<40 hex>` |
//! | Git full ref name | `refs/pull/420/head@sha1:<40 hex>` |
//! | Git commit only | `sha1:<40 hex>` |
//! | OCI tag, Bucket | `latest@sha256:<64 hex>`, `sha256:<64 hex>` |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};

/// A Flux revision: an optional named pointer (branch, tag, ref) and a digest.
///
/// The digest is the text after the **last** `@`, as Flux parses it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Revision {
    pointer: Option<String>,
    digest: Digest,
}

impl Revision {
    /// A revision with a named pointer, e.g. `main` and a commit digest.
    pub fn named(pointer: impl Into<String>, digest: Digest) -> Self {
        let pointer = pointer.into();
        Revision {
            pointer: (!pointer.is_empty()).then_some(pointer),
            digest,
        }
    }

    /// A revision that is only a digest (`sha1:<hex>`, `sha256:<hex>`).
    pub fn digest_only(digest: Digest) -> Self {
        Revision {
            pointer: None,
            digest,
        }
    }

    /// The named pointer (branch, tag, ref name), if any.
    pub fn pointer(&self) -> Option<&str> {
        self.pointer.as_deref()
    }

    /// The digest (for Git, the commit id as `sha1:<hex>`).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// A short form for tables: pointer plus the checksum cut to `n` (at least 7) characters.
    pub fn short(&self, n: usize) -> String {
        match &self.pointer {
            Some(p) => format!("{p}@{}", self.digest.short(n)),
            None => self.digest.short(n),
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pointer {
            Some(p) => write!(f, "{p}@{}", self.digest),
            None => write!(f, "{}", self.digest),
        }
    }
}

impl FromStr for Revision {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once('@') {
            Some((pointer, digest)) => Ok(Revision::named(pointer, digest.parse()?)),
            None => Ok(Revision::digest_only(s.parse()?)),
        }
    }
}

impl Serialize for Revision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Revision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738";

    #[test]
    fn round_trips_flux_formats() {
        for s in [
            format!("main@sha1:{SHA1}"),
            format!("v1.2.3@sha1:{SHA1}"),
            format!("refs/pull/420/head@sha1:{SHA1}"),
            format!("sha1:{SHA1}"),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".to_string(),
        ] {
            let r: Revision = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        let r: Revision = format!("main@sha1:{SHA1}").parse().unwrap();
        assert_eq!(r.pointer(), Some("main"));
        assert_eq!(r.digest().hex(), SHA1);
        assert_eq!(r.short(7), "main@sha1:5394cb7");
    }

    #[test]
    fn digest_is_after_the_last_at() {
        let r: Revision = format!("feature@x@sha1:{SHA1}").parse().unwrap();
        assert_eq!(r.pointer(), Some("feature@x"));
    }

    #[test]
    fn rejects_garbage() {
        assert!("main@".parse::<Revision>().is_err());
        assert!("main".parse::<Revision>().is_err());
    }
}
