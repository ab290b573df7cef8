//! Cached discovery of kinds: apiVersion + kind -> API resource and scope.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use crate::error::ApplyError;

/// A resolved kind.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The API resource (plural, group, version).
    pub resource: ApiResource,
    /// Whether objects of the kind live in a namespace.
    pub namespaced: bool,
}

/// Caches discovery per (group, version, kind). Only hits are cached, so kinds added by a CRD
/// applied a moment ago are found on the next lookup.
#[derive(Debug, Default)]
pub struct DiscoveryCache {
    cache: Mutex<HashMap<(String, String, String), Resolved>>,
}

impl DiscoveryCache {
    /// Resolves `api_version` + `kind`; `object` names the object in errors.
    pub async fn resolve(
        &self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
        object: &str,
    ) -> Result<Resolved, ApplyError> {
        let (group, version) = gitops_core::object::split_api_version(api_version);
        let key = (group.to_string(), version.to_string(), kind.to_string());
        if let Some(r) = self.lock().get(&key) {
            return Ok(r.clone());
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps): (ApiResource, ApiCapabilities) = match crate::ssa::retry_transport(
            || kube::discovery::pinned_kind(client, &gvk),
        )
        .await
        {
            Ok(found) => found,
            Err(e) if is_not_found(&e) => {
                return Err(ApplyError::UnknownKind {
                    object: object.to_string(),
                    kind: kind.to_string(),
                    api_version: api_version.to_string(),
                });
            }
            Err(source) => {
                return Err(ApplyError::Discovery {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    source,
                });
            }
        };
        let resolved = Resolved {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.lock().insert(key, resolved.clone());
        Ok(resolved)
    }

    /// `api_version` + `kind` if it was resolved before, without asking the server.
    pub fn cached(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        let (group, version) = gitops_core::object::split_api_version(api_version);
        let key = (group.to_string(), version.to_string(), kind.to_string());
        self.lock().get(&key).cloned()
    }

    /// Resolves `kind` in `group` at any version the server serves, its preferred version
    /// first: an inventory may record a version the server no longer serves (a CRD moved from
    /// `v1beta1` to `v1`) while the object still exists. `Ok(None)` when neither the group nor
    /// the kind is served any more. Not cached.
    pub async fn resolve_any_version(
        &self,
        client: &kube::Client,
        group: &str,
        kind: &str,
    ) -> Result<Option<Resolved>, ApplyError> {
        let found = crate::ssa::retry_transport(|| kube::discovery::group(client, group)).await;
        let api_group = match found {
            Ok(g) => g,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(source) => {
                return Err(ApplyError::Discovery {
                    api_version: group.to_string(),
                    kind: kind.to_string(),
                    source,
                });
            }
        };
        let preferred = api_group.preferred_version_or_latest().to_string();
        let mut versions: Vec<String> = vec![preferred.clone()];
        versions.extend(
            api_group
                .versions()
                .filter(|v| **v != preferred)
                .map(String::from),
        );
        for v in &versions {
            if let Some((resource, caps)) = api_group
                .versioned_resources(v)
                .into_iter()
                .find(|(r, _)| r.kind == kind)
            {
                return Ok(Some(Resolved {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                }));
            }
        }
        Ok(None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), Resolved>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}
