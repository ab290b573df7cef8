//! The reconcile engine: runs units on an interval with jitter, retries failures with exponential
//! backoff capped by the retry interval, honours suspend, "reconcile now" and `dependsOn`, and keeps
//! per-unit conditions — in process, without CRDs.
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use gitops_core::{engine::{Engine, Unit}, pipeline::{ApplySpec, OwnerLabels}, schedule::Timing, *};
//! # async fn demo(store: ArtifactStore, source: Arc<dyn Source>, renderer: Arc<dyn Renderer>, applier: Arc<dyn Applier>) {
//! let engine = Engine::new(store);
//! engine.add(Unit {
//!     name: "podinfo".into(),
//!     source, renderer, applier,
//!     spec: ApplySpec { path: "./kustomize".into(), prune: true, ..Default::default() },
//!     timing: Timing::every(Duration::from_secs(60)),
//!     owner: OwnerLabels::flux("flux-system", "podinfo"),
//!     depends_on: vec![],
//!     suspend: false,
//! });
//! let status = engine.reconcile("podinfo").await.unwrap();
//! println!("{}", status.ready().unwrap().message);
//! // or run every unit on its schedule until ctrl-c:
//! engine.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::pipeline::{ApplySpec, Failure, OwnerLabels, Reconcile};
use crate::schedule::{Backoff, Timing};
use crate::status::UnitStatus;
use crate::{Applier, ArtifactStore, Error, Fetched, Renderer, Revision, Source, Stage};

/// A unit of reconciliation: one source, one path rendered and applied (a Flux Kustomization
/// with its GitRepository).
#[derive(Clone)]
pub struct Unit {
    /// Unique name; `depends_on` refers to it.
    pub name: String,
    /// Where the artifact comes from.
    pub source: Arc<dyn Source>,
    /// How the artifact's folder becomes objects.
    pub renderer: Arc<dyn Renderer>,
    /// Where the objects go.
    pub applier: Arc<dyn Applier>,
    /// Path, prune, target namespace.
    pub spec: ApplySpec,
    /// Interval, retry interval, timeout.
    pub timing: Timing,
    /// Owner labels stamped on every object.
    pub owner: OwnerLabels,
    /// Units that must be Ready before this one runs (Flux's `dependsOn`).
    pub depends_on: Vec<String>,
    /// Skip scheduled runs (Flux's `suspend`).
    pub suspend: bool,
}

impl std::fmt::Debug for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unit")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("timing", &self.timing)
            .field("depends_on", &self.depends_on)
            .field("suspend", &self.suspend)
            .finish_non_exhaustive()
    }
}

/// Severity of an [`Event`], as Flux's event severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Normal progress.
    Info,
    /// A failure.
    Error,
}

/// Something that happened to a unit, as Flux's events carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The unit's name.
    pub unit: String,
    /// Info or error.
    pub severity: Severity,
    /// CamelCase reason (`ReconciliationSucceeded`, `BuildFailed`, ...).
    pub reason: String,
    /// Message; for successes, the changed objects one per line.
    pub message: String,
    /// The revision concerned, if known.
    pub revision: Option<Revision>,
}

/// Receives the engine's events.
pub trait EventSink: Send + Sync {
    /// Called once per event.
    fn emit(&self, event: &Event);
}

/// The default sink: events become `tracing` records (info or error).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn emit(&self, e: &Event) {
        let revision = e
            .revision
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        match e.severity {
            Severity::Info => {
                tracing::info!(unit = %e.unit, reason = %e.reason, %revision, "{}", e.message)
            }
            Severity::Error => {
                tracing::error!(unit = %e.unit, reason = %e.reason, %revision, "{}", e.message)
            }
        }
    }
}

/// Errors of the engine's own API (not of a reconcile: those land in the unit's conditions).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// No unit has that name.
    #[error("no unit named {0:?}")]
    UnknownUnit(String),
    /// The unit is reconciling right now (a unit never runs twice at once).
    #[error("unit {0:?} is already reconciling")]
    AlreadyRunning(String),
}

struct Slot {
    unit: Arc<Unit>,
    status: UnitStatus,
    next_run: Instant,
    running: bool,
    requested: bool,
}

/// The shortest period between successful runs of a unit, whatever its interval says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Marks a unit's run as finished when dropped, so that a cancelled (dropped) or panicking
/// run does not leave the unit "running" forever; such a run makes the unit due at once.
struct RunGuard<'a> {
    engine: &'a Engine,
    name: &'a str,
    next: Option<Duration>,
}

impl<'a> RunGuard<'a> {
    fn new(engine: &'a Engine, name: &'a str) -> Self {
        RunGuard {
            engine,
            name,
            next: None,
        }
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.engine
            .finish(self.name, self.next.unwrap_or(Duration::ZERO));
    }
}

struct Inner {
    store: ArtifactStore,
    events: Arc<dyn EventSink>,
    backoff: Backoff,
    dependency_requeue: Duration,
    concurrency: usize,
    slots: Mutex<HashMap<String, Slot>>,
    wake: Notify,
}

/// Runs units. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.inner.store.root())
            .finish_non_exhaustive()
    }
}

/// Builder for an [`Engine`].
pub struct EngineBuilder {
    store: ArtifactStore,
    events: Arc<dyn EventSink>,
    backoff: Backoff,
    dependency_requeue: Duration,
    concurrency: usize,
}

impl EngineBuilder {
    /// Where events go (default [`TracingEvents`]).
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }

    /// Backoff and jitter (default: 750 ms doubling, 5 % jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long to wait before checking a not-ready dependency again (Flux default 30 s).
    pub fn dependency_requeue(mut self, d: Duration) -> Self {
        self.dependency_requeue = d;
        self
    }

    /// How many units may reconcile at once (default 4, Flux's `--concurrent`).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                events: self.events,
                backoff: self.backoff,
                dependency_requeue: self.dependency_requeue,
                concurrency: self.concurrency,
                slots: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
        }
    }
}

impl Engine {
    /// An engine with default settings over `store`.
    pub fn new(store: ArtifactStore) -> Engine {
        Engine::builder(store).build()
    }

    /// A builder over `store`.
    pub fn builder(store: ArtifactStore) -> EngineBuilder {
        EngineBuilder {
            store,
            events: Arc::new(TracingEvents),
            backoff: Backoff::default(),
            dependency_requeue: Duration::from_secs(30),
            concurrency: 4,
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.inner.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a unit; it is due at once. Replacing keeps the unit's status (inventory!).
    pub fn add(&self, unit: Unit) {
        let name = unit.name.clone();
        let mut slots = self.slots();
        let old = slots.remove(&name);
        // A unit replaced while it runs keeps its run (no second concurrent run of the same
        // unit) and runs again with the new spec as soon as that run finishes.
        let running = old.as_ref().is_some_and(|s| s.running);
        let requested = old.as_ref().is_some_and(|s| s.requested || s.running);
        let status = old.map(|s| s.status).unwrap_or_default();
        slots.insert(
            name,
            Slot {
                unit: Arc::new(unit),
                status,
                next_run: Instant::now(),
                running,
                requested,
            },
        );
        drop(slots);
        self.inner.wake.notify_one();
    }

    /// Removes a unit and returns its last status. Objects it applied stay on the cluster.
    pub fn remove(&self, name: &str) -> Option<UnitStatus> {
        self.slots().remove(name).map(|s| s.status)
    }

    /// The unit's status.
    pub fn status(&self, name: &str) -> Option<UnitStatus> {
        self.slots().get(name).map(|s| s.status.clone())
    }

    /// Every unit's name and status, sorted by name.
    pub fn statuses(&self) -> Vec<(String, UnitStatus)> {
        let mut v: Vec<_> = self
            .slots()
            .iter()
            .map(|(n, s)| (n.clone(), s.status.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Suspends or resumes a unit (Flux's `spec.suspend`).
    pub fn set_suspend(&self, name: &str, suspend: bool) -> Result<(), EngineError> {
        let mut slots = self.slots();
        let slot = slots
            .get_mut(name)
            .ok_or_else(|| EngineError::UnknownUnit(name.into()))?;
        let mut unit = (*slot.unit).clone();
        unit.suspend = suspend;
        slot.unit = Arc::new(unit);
        drop(slots);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// "Reconcile now" (Flux's `reconcile.fluxcd.io/requestedAt`): the unit is due at once, even
    /// while suspended, as `flux reconcile` is refused only by the CLI, not the controller.
    pub fn request_reconcile(&self, name: &str) -> Result<(), EngineError> {
        let mut slots = self.slots();
        let slot = slots
            .get_mut(name)
            .ok_or_else(|| EngineError::UnknownUnit(name.into()))?;
        slot.next_run = Instant::now();
        slot.requested = true;
        drop(slots);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Runs one reconcile of `name` now and returns its status afterwards. A suspended unit is
    /// not run; its status is returned as it is. Errors with [`EngineError::AlreadyRunning`] when
    /// the scheduler is reconciling the unit at this moment (use
    /// [`Engine::request_reconcile`] to queue one instead).
    pub async fn reconcile(&self, name: &str) -> Result<UnitStatus, EngineError> {
        let unit = {
            let mut slots = self.slots();
            let slot = slots
                .get_mut(name)
                .ok_or_else(|| EngineError::UnknownUnit(name.into()))?;
            if slot.unit.suspend {
                return Ok(slot.status.clone());
            }
            if slot.running {
                return Err(EngineError::AlreadyRunning(name.into()));
            }
            slot.running = true;
            slot.unit.clone()
        };
        let mut guard = RunGuard::new(self, name);
        let (status, next) = self.run_unit(&unit).await;
        guard.next = Some(next);
        Ok(status)
    }

    /// Runs every unit on its schedule until `shutdown` completes. Units run concurrently up to
    /// the engine's concurrency; a unit never runs twice at once.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(self.inner.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let now = Instant::now();
            let mut next_wake = now + Duration::from_secs(3600);
            let mut due = Vec::new();
            {
                let mut slots = self.slots();
                for slot in slots.values_mut() {
                    let runnable = !slot.running && (!slot.unit.suspend || slot.requested);
                    if !runnable {
                        continue;
                    }
                    if slot.next_run <= now {
                        slot.running = true;
                        slot.requested = false;
                        due.push(slot.unit.clone());
                    } else {
                        next_wake = next_wake.min(slot.next_run);
                    }
                }
            }
            for unit in due {
                let engine = self.clone();
                let permits = permits.clone();
                tasks.spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    let mut guard = RunGuard::new(&engine, &unit.name);
                    let (_, next) = engine.run_unit(&unit).await;
                    guard.next = Some(next);
                });
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(next_wake) => {},
                _ = self.inner.wake.notified() => {},
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {},
            }
        }
        tasks.abort_all();
    }

    /// Marks a run of `name` finished and schedules the next one after `next`, or at once when
    /// a reconcile was requested while it ran.
    /// Ends a run: the unit is no longer running and is due again after `next` (at once when a
    /// reconcile was requested meanwhile).
    fn finish(&self, name: &str, next: Duration) {
        if let Some(slot) = self.slots().get_mut(name) {
            slot.running = false;
            let now = Instant::now();
            slot.next_run = if slot.requested {
                now
            } else {
                // An interval too large for the clock (`100000000h`) means "in a year".
                now.checked_add(next)
                    .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
                    .unwrap_or(now)
            };
        }
        self.inner.wake.notify_one();
    }

    fn update_status(&self, name: &str, f: impl FnOnce(&mut UnitStatus)) -> UnitStatus {
        let mut slots = self.slots();
        match slots.get_mut(name) {
            Some(slot) => {
                f(&mut slot.status);
                slot.status.clone()
            }
            None => UnitStatus::default(),
        }
    }

    fn emit(
        &self,
        unit: &str,
        severity: crate::engine::Severity,
        reason: &str,
        message: String,
        revision: Option<Revision>,
    ) {
        self.inner.events.emit(&Event {
            unit: unit.into(),
            severity,
            reason: reason.into(),
            message,
            revision,
        });
    }

    /// `None` when every dependency of `unit` is Ready; otherwise why the first one is not, as
    /// kustomize-controller words it: `dependency '<name>' not found` for a unit the engine
    /// does not know, `dependency '<name>' is not ready` for one that is not Ready.
    fn unready_dependency(&self, unit: &Unit) -> Option<String> {
        let slots = self.slots();
        unit.depends_on
            .iter()
            .find_map(|d| match slots.get(d.as_str()) {
                None => Some(format!("dependency '{d}' not found")),
                Some(s) if !s.status.is_ready() => Some(format!("dependency '{d}' is not ready")),
                Some(_) => None,
            })
    }

    /// One reconcile; returns the new status and the delay until the next run.
    async fn run_unit(&self, unit: &Unit) -> (UnitStatus, Duration) {
        if let Some(message) = self.unready_dependency(unit) {
            let status =
                self.update_status(&unit.name, |s| s.mark_dependency_not_ready(message.clone()));
            self.emit(
                &unit.name,
                Severity::Info,
                crate::condition::reason::DEPENDENCY_NOT_READY,
                message,
                None,
            );
            return (status, self.inner.dependency_requeue);
        }
        let previous = self.update_status(&unit.name, |s| s.mark_reconciling("Fetching manifests"));
        let timeout = unit.timing.timeout();

        let fetched = match tokio::time::timeout(
            timeout,
            unit.source
                .fetch(&self.inner.store, previous.artifact.as_ref()),
        )
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return self.fail(unit, e.into(), None),
            Err(_) => {
                return self.fail(
                    unit,
                    Error::retryable(Stage::Fetch, format!("fetch timed out after {timeout:?}"))
                        .into(),
                    None,
                );
            }
        };
        let artifact = fetched.artifact().clone();
        if let Fetched::New(a) = &fetched {
            self.emit(
                &unit.name,
                Severity::Info,
                "NewArtifact",
                format!("stored artifact for revision '{}'", a.revision),
                Some(a.revision.clone()),
            );
        }
        self.update_status(&unit.name, |s| {
            s.artifact = Some(artifact.clone());
            s.mark_reconciling(format!(
                "Building manifests for revision {}",
                artifact.revision
            ));
        });

        let result = Reconcile {
            store: &self.inner.store,
            artifact: &artifact,
            spec: &unit.spec,
            owner: &unit.owner,
            renderer: unit.renderer.clone(),
            applier: unit.applier.as_ref(),
            previous: &previous.inventory,
            timeout,
        }
        .run()
        .await;
        match result {
            Ok(outcome) => {
                let changes: Vec<String> = outcome
                    .change_set
                    .changes()
                    .map(|e| e.to_string())
                    .collect();
                let status = self.update_status(&unit.name, |s| {
                    s.mark_succeeded(&artifact.revision, outcome.inventory, outcome.change_set)
                });
                if let Err(e) = self.inner.store.gc(&artifact) {
                    tracing::warn!(unit = %unit.name, "artifact garbage collection failed: {e}");
                }
                let message = if changes.is_empty() {
                    format!("Applied revision: {}", artifact.revision)
                } else {
                    changes.join("\n")
                };
                self.emit(
                    &unit.name,
                    Severity::Info,
                    crate::condition::reason::RECONCILIATION_SUCCEEDED,
                    message,
                    Some(artifact.revision.clone()),
                );
                // A zero interval would spin: at least one second between runs.
                let interval = unit.timing.interval.max(MIN_INTERVAL);
                (status, self.inner.backoff.jittered(interval))
            }
            Err(failure) => self.fail(unit, failure, Some(&artifact.revision)),
        }
    }

    fn fail(
        &self,
        unit: &Unit,
        failure: Failure,
        revision: Option<&Revision>,
    ) -> (UnitStatus, Duration) {
        let Failure { error, inventory } = failure;
        let status = self.update_status(&unit.name, |s| {
            s.mark_failed(&error, revision);
            if let Some(inv) = inventory {
                s.inventory = inv;
            }
        });
        self.emit(
            &unit.name,
            Severity::Error,
            error.stage().reason(),
            error.to_string(),
            revision.cloned(),
        );
        let cap = unit.timing.retry_interval();
        let delay = if error.is_retryable() {
            self.inner.backoff.retry_after(status.failures, cap)
        } else {
            cap
        };
        // A zero retry interval would spin: never sooner than the backoff's base delay.
        (status, delay.max(self.inner.backoff.base))
    }
}
