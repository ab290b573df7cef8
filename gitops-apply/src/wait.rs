//! Waiting: for cluster definitions during staged apply (CRDs Established, Namespaces Active),
//! and for the health of applied objects ([`SsaApplier::wait_healthy`], Flux's `spec.wait` and
//! `spec.healthChecks`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use gitops_core::{Object, ObjectId};
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use crate::discovery::Resolved;
use crate::error::ApplyError;
use crate::health::{self, Health, HealthStatus};
use crate::ssa::SsaApplier;

impl SsaApplier {
    /// Waits until a CRD has `Established=True` or a Namespace `phase: Active`; other kinds
    /// return at once. Polls every 250 ms up to the applier's wait timeout.
    pub async fn wait_ready(&self, object: &Object) -> Result<(), ApplyError> {
        let condition = match object.kind() {
            "CustomResourceDefinition" => "Established",
            "Namespace" => "Active",
            _ => return Ok(()),
        };
        let id = object.id()?;
        let (api, _) = self
            .api_for(object.api_version(), object.kind(), None, &id.to_string())
            .await?;
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        loop {
            let live = crate::ssa::retry_transport(|| api.get_opt(object.name()))
                .await
                .map_err(|source| ApplyError::Api {
                    object: id.to_string(),
                    op: "get",
                    source,
                })?;
            if let Some(live) = live {
                let status = live.data.get("status");
                let ready = match condition {
                    "Established" => status
                        .and_then(|s| s.get("conditions"))
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c.get("type") == Some(&"Established".into())
                                    && c.get("status") == Some(&"True".into())
                            })
                        }),
                    _ => status.and_then(|s| s.get("phase")) == Some(&Value::from("Active")),
                };
                if ready {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::WaitTimeout {
                    object: id.to_string(),
                    condition,
                    seconds: self.wait_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.wait_interval).await;
        }
    }
}

/// The health of each checked object, in the order asked, as [`SsaApplier::wait_healthy`]
/// last saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthReport {
    /// One entry per object.
    pub entries: Vec<(ObjectId, Health)>,
}

impl HealthReport {
    /// Whether every object is [`HealthStatus::Current`].
    pub fn is_healthy(&self) -> bool {
        self.entries.iter().all(|(_, h)| h.is_current())
    }

    /// The objects that are not Current.
    pub fn unhealthy(&self) -> impl Iterator<Item = &(ObjectId, Health)> {
        self.entries.iter().filter(|(_, h)| !h.is_current())
    }

    /// The health of `id`, if it was checked.
    pub fn get(&self, id: &ObjectId) -> Option<&Health> {
        self.entries.iter().find(|(i, _)| i == id).map(|(_, h)| h)
    }
}

/// Lists the objects that are not Current, `Kind/namespace/name: Status: message` joined by
/// `; `, or says that all are Current.
impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (id, h) in self.unhealthy() {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{id}: {h}")?;
        }
        if first {
            write!(f, "all {} objects are Current", self.entries.len())?;
        }
        Ok(())
    }
}

/// The objects of one kind in one namespace ("" for cluster-scoped kinds or all namespaces),
/// watched by one watch.
struct Group {
    /// Index into the report of each watched name.
    names: HashMap<String, usize>,
    /// Names seen since the last (re)list began.
    seen: HashSet<String>,
}

impl SsaApplier {
    /// Waits until every object of `ids` is Current by kstatus's rules ([`crate::health`]), as
    /// kustomize-controller does for `spec.wait` and `spec.healthChecks`.
    ///
    /// Watch-based: one watch (list, then watch events) per kind and namespace, on the version
    /// the API server prefers; objects of a namespaced kind with an empty namespace are looked
    /// for in the client's default namespace. Returns the report as soon as all are Current;
    /// fails early with [`ApplyError::Unhealthy`] as soon as one is Failed, or when `timeout`
    /// passes; the error names every object that is not Current with its status and message
    /// (an object that does not exist, or whose kind is not served, is `NotFound`).
    pub async fn wait_healthy(
        &self,
        ids: &[ObjectId],
        timeout: Duration,
    ) -> Result<HealthReport, ApplyError> {
        let mut report = HealthReport {
            entries: Vec::with_capacity(ids.len()),
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut streams = Vec::new();
        let mut by_key: HashMap<(String, String, String), usize> = HashMap::new();
        let mut resolved_kinds: HashMap<(String, String), Option<Resolved>> = HashMap::new();
        for id in ids {
            if report.entries.iter().any(|(i, _)| i == id) {
                continue;
            }
            let index = report.entries.len();
            report.entries.push((id.clone(), Health::not_found()));
            let kind_key = (id.group.clone(), id.kind.clone());
            let resolved = match resolved_kinds.get(&kind_key) {
                Some(r) => r.clone(),
                None => {
                    let r = self
                        .discovery
                        .resolve_any_version(&self.client, &id.group, &id.kind)
                        .await?;
                    resolved_kinds.insert(kind_key, r.clone());
                    r
                }
            };
            let Some(resolved) = resolved else {
                report.entries[index].1.message = format!(
                    "kind {} is not served by the API server",
                    if id.group.is_empty() {
                        id.kind.clone()
                    } else {
                        format!("{}/{}", id.group, id.kind)
                    }
                );
                continue;
            };
            let namespace = if resolved.namespaced {
                if id.namespace.is_empty() {
                    self.client.default_namespace().to_string()
                } else {
                    id.namespace.clone()
                }
            } else {
                String::new()
            };
            let key = (id.group.clone(), id.kind.clone(), namespace.clone());
            let g = match by_key.get(&key) {
                Some(g) => *g,
                None => {
                    let api = self.api_from(&resolved, Some(&namespace));
                    let g = groups.len();
                    groups.push(Group {
                        names: HashMap::new(),
                        seen: HashSet::new(),
                    });
                    by_key.insert(key, g);
                    streams.push((g, api, resolved));
                    g
                }
            };
            groups[g].names.insert(id.name.clone(), index);
        }
        if report.is_healthy() {
            return Ok(report);
        }

        // One watch per group; a group of one object watches only that name.
        let watches = streams.into_iter().map(|(g, api, resolved)| {
            let mut config = watcher::Config::default();
            if groups[g].names.len() == 1
                && let Some(name) = groups[g].names.keys().next()
            {
                config = config.fields(&format!("metadata.name={name}"));
            }
            let api_version = resolved.resource.api_version.clone();
            let kind = resolved.resource.kind.clone();
            watcher(api, config)
                .default_backoff()
                .map(move |ev| (g, api_version.clone(), kind.clone(), ev))
                .boxed()
        });
        let mut events = futures::stream::select_all(watches);

        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, events.next()).await;
            let (g, api_version, kind, ev) = match next {
                Err(_) | Ok(None) => {
                    return Err(ApplyError::Unhealthy {
                        report,
                        timeout: Some(timeout),
                    });
                }
                Ok(Some(item)) => item,
            };
            let group = &mut groups[g];
            match ev {
                Ok(watcher::Event::Init) => group.seen.clear(),
                Ok(watcher::Event::InitApply(obj) | watcher::Event::Apply(obj)) => {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    group.seen.insert(name.clone());
                    if let Some(&i) = group.names.get(&name) {
                        report.entries[i].1 = health_of(obj, &api_version, &kind);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    group.seen.remove(&name);
                    if let Some(&i) = group.names.get(&name) {
                        report.entries[i].1 = Health::not_found();
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    for (name, &i) in &group.names {
                        if !group.seen.contains(name) {
                            report.entries[i].1 = Health::not_found();
                        }
                    }
                }
                Err(e) => {
                    // The watcher retries with backoff; keep the reason for the report.
                    tracing::debug!(kind = %kind, error = %e, "health watch failed; retrying");
                    for &i in group.names.values() {
                        if report.entries[i].1.status == HealthStatus::NotFound {
                            report.entries[i].1.message = format!("watch failed: {e}");
                        }
                    }
                }
            }
            if report.is_healthy() {
                return Ok(report);
            }
            if report
                .entries
                .iter()
                .any(|(_, h)| h.status == HealthStatus::Failed)
            {
                return Err(ApplyError::Unhealthy {
                    report,
                    timeout: None,
                });
            }
        }
    }
}

/// The kstatus health of a watched object; list items carry no `apiVersion`/`kind`, so they
/// are set from the watched kind.
fn health_of(obj: DynamicObject, api_version: &str, kind: &str) -> Health {
    let mut value = match serde_json::to_value(&obj) {
        Ok(v) => v,
        Err(e) => {
            return Health {
                status: HealthStatus::InProgress,
                message: format!("unreadable object: {e}"),
            };
        }
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    health::compute(&value)
}
