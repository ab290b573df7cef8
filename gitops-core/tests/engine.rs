//! Engine semantics with in-process test doubles for Source, Renderer and Applier: the real ones
//! (Git, Kustomize, kube-apiserver) are tested in their crates and end to end in `examples`; here
//! the doubles let the tests control success and failure exactly.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitops_core::condition::{find_condition, kind, reason};
use gitops_core::engine::{Engine, Unit};
use gitops_core::pipeline::{ApplySpec, OwnerLabels};
use gitops_core::schedule::{Backoff, Timing};
use gitops_core::*;

/// Archives a folder holding one file whose content is the "commit".
struct DirSource {
    key: ArtifactKey,
    commit: Mutex<String>,
    fail: AtomicBool,
    fetches: AtomicUsize,
    /// Milliseconds each fetch takes.
    delay_ms: AtomicUsize,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

impl DirSource {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(DirSource {
            key: ArtifactKey::new("GitRepository", "ns", name).unwrap(),
            commit: Mutex::new("1".repeat(40)),
            fail: AtomicBool::new(false),
            fetches: AtomicUsize::new(0),
            delay_ms: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
        })
    }
}

impl Source for DirSource {
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, Error>> {
        async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_active.fetch_max(active, Ordering::SeqCst);
            let delay = self.delay_ms.load(Ordering::SeqCst) as u64;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            self.active.fetch_sub(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(Error::retryable(Stage::Fetch, "connection refused"));
            }
            let commit = self.commit.lock().unwrap().clone();
            let revision = Revision::named(
                "main",
                Digest::new(Algorithm::Sha1, commit.clone()).unwrap(),
            );
            if let Some(last) = last.filter(|l| l.revision == revision) {
                return Ok(Fetched::Unchanged(last.clone()));
            }
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("objects.txt"), &commit).unwrap();
            let a = store
                .archive_dir(&self.key, revision, dir.path(), &|_, _| true)
                .map_err(|e| Error::retryable(Stage::Fetch, e))?;
            Ok(Fetched::New(a))
        }
        .boxed()
    }
}

/// Renders one ConfigMap per whitespace-separated word of objects.txt; "bad" is a build error.
struct WordRenderer;

impl Renderer for WordRenderer {
    fn render(&self, dir: &Path) -> Result<Vec<Object>, Error> {
        let text = std::fs::read_to_string(dir.join("objects.txt"))
            .map_err(|e| Error::terminal(Stage::Render, e))?;
        if text.contains("bad") {
            return Err(Error::terminal(Stage::Render, "objects.txt: malformed"));
        }
        Ok(text
            .split_whitespace()
            .map(|w| serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{}", &w[..1])}})).unwrap())
            .collect())
    }
}

#[derive(Default)]
struct RecordingApplier {
    pruned: Mutex<Vec<String>>,
    applies: AtomicUsize,
}

impl Applier for RecordingApplier {
    fn apply<'a>(&'a self, objects: &'a [Object]) -> BoxFuture<'a, Result<ChangeSet, Error>> {
        async move {
            self.applies.fetch_add(1, Ordering::SeqCst);
            let mut cs = ChangeSet::default();
            for o in objects {
                assert_eq!(
                    o.label("kustomize.toolkit.fluxcd.io/name"),
                    Some("app"),
                    "owner labels are stamped"
                );
                cs.push(o.id().unwrap(), "v1", Action::Created);
            }
            Ok(cs)
        }
        .boxed()
    }

    fn prune<'a>(
        &'a self,
        stale: &'a [InventoryEntry],
        _owner: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<ChangeSet, Error>> {
        async move {
            let mut cs = ChangeSet::default();
            for e in stale {
                self.pruned.lock().unwrap().push(e.id.clone());
                cs.push(e.object_id().unwrap(), e.v.clone(), Action::Deleted);
            }
            Ok(cs)
        }
        .boxed()
    }
}

fn unit(
    name: &str,
    source: Arc<DirSource>,
    applier: Arc<RecordingApplier>,
    depends_on: &[&str],
) -> Unit {
    Unit {
        name: name.into(),
        source,
        renderer: Arc::new(WordRenderer),
        applier,
        spec: ApplySpec {
            path: String::new(),
            prune: true,
            target_namespace: Some("apps".into()),
            ..Default::default()
        },
        timing: Timing {
            interval: Duration::from_secs(3600),
            retry_interval: Some(Duration::from_secs(2)),
            timeout: Some(Duration::from_secs(10)),
        },
        owner: OwnerLabels::flux("ns", "app"),
        depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
        suspend: false,
    }
}

fn engine() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(dir.path()).unwrap();
    let engine = Engine::builder(store)
        .backoff(Backoff {
            base: Duration::from_millis(50),
            jitter: 0.0,
        })
        .dependency_requeue(Duration::from_millis(50))
        .build();
    (engine, dir)
}

#[tokio::test]
async fn success_records_revision_inventory_and_prunes_what_left() {
    let (engine, _dir) = engine();
    let source = DirSource::new("a");
    let applier = Arc::new(RecordingApplier::default());
    engine.add(unit("app", source.clone(), applier.clone(), &[]));

    let st = engine.reconcile("app").await.unwrap();
    assert!(st.is_ready());
    let ready = st.ready().unwrap();
    assert_eq!(ready.reason, reason::RECONCILIATION_SUCCEEDED);
    assert_eq!(
        ready.message,
        format!("Applied revision: main@sha1:{}", "1".repeat(40))
    );
    assert_eq!(st.inventory.entries[0].id, "apps_cm-1__ConfigMap");

    // New "commit" renders a different object: the old one is pruned.
    *source.commit.lock().unwrap() = "2".repeat(40);
    let st = engine.reconcile("app").await.unwrap();
    assert!(st.is_ready());
    assert_eq!(
        applier.pruned.lock().unwrap().as_slice(),
        ["apps_cm-1__ConfigMap"]
    );
    assert_eq!(st.inventory.entries.len(), 1);
    assert_eq!(st.inventory.entries[0].id, "apps_cm-2__ConfigMap");
    assert!(
        st.last_change_set
            .entries
            .iter()
            .any(|e| e.action == Action::Deleted)
    );
}

#[tokio::test]
async fn failures_never_prune_and_set_conditions() {
    let (engine, _dir) = engine();
    let source = DirSource::new("a");
    let applier = Arc::new(RecordingApplier::default());
    engine.add(unit("app", source.clone(), applier.clone(), &[]));
    assert!(engine.reconcile("app").await.unwrap().is_ready());

    // Fetch failure: retryable, Reconciling=True ProgressingWithRetry, inventory kept.
    source.fail.store(true, Ordering::SeqCst);
    let st = engine.reconcile("app").await.unwrap();
    assert!(!st.is_ready());
    assert_eq!(st.ready().unwrap().reason, reason::ARTIFACT_FAILED);
    assert_eq!(
        find_condition(&st.conditions, kind::RECONCILING)
            .unwrap()
            .reason,
        reason::PROGRESSING_WITH_RETRY
    );
    assert_eq!(st.inventory.len(), 1);
    assert_eq!(st.failures, 1);
    assert!(
        applier.pruned.lock().unwrap().is_empty(),
        "no prune after a failed fetch"
    );

    // Recovery resets the failure count.
    source.fail.store(false, Ordering::SeqCst);
    let st = engine.reconcile("app").await.unwrap();
    assert!(st.is_ready());
    assert_eq!(st.failures, 0);
    assert!(find_condition(&st.conditions, kind::RECONCILING).is_none());
}

#[tokio::test]
async fn build_failure_is_stalled_and_prunes_nothing() {
    let (engine, _dir) = engine();
    let source = DirSource::new("a");
    let applier = Arc::new(RecordingApplier::default());
    engine.add(unit("app", source.clone(), applier.clone(), &[]));
    let good = engine.reconcile("app").await.unwrap();
    // The renderer fails on any artifact whose objects.txt holds "bad"; make the source write it.
    struct BadSource(Arc<DirSource>);
    impl Source for BadSource {
        fn fetch<'a>(
            &'a self,
            store: &'a ArtifactStore,
            _last: Option<&'a Artifact>,
        ) -> BoxFuture<'a, Result<Fetched, Error>> {
            async move {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("objects.txt"), "bad").unwrap();
                let rev = Revision::named(
                    "main",
                    Digest::new(Algorithm::Sha1, "4".repeat(40)).unwrap(),
                );
                Ok(Fetched::New(
                    store
                        .archive_dir(&self.0.key, rev, dir.path(), &|_, _| true)
                        .unwrap(),
                ))
            }
            .boxed()
        }
    }
    let mut bad = unit("app", source.clone(), applier.clone(), &[]);
    bad.source = Arc::new(BadSource(source));
    engine.add(bad);
    let st = engine.reconcile("app").await.unwrap();
    assert_eq!(st.ready().unwrap().reason, reason::BUILD_FAILED);
    assert!(st.ready().unwrap().message.contains("objects.txt"));
    assert!(st.is_stalled());
    assert!(
        applier.pruned.lock().unwrap().is_empty(),
        "no prune after a failed render"
    );
    assert_eq!(st.inventory, good.inventory);
    assert_eq!(st.last_applied_revision, good.last_applied_revision);
    assert_eq!(
        st.last_attempted_revision.unwrap().to_string(),
        format!("main@sha1:{}", "4".repeat(40))
    );
}

#[tokio::test]
async fn depends_on_waits_for_ready_and_suspend_skips() {
    let (engine, _dir) = engine();
    let infra_source = DirSource::new("infra");
    infra_source.fail.store(true, Ordering::SeqCst);
    let applier = Arc::new(RecordingApplier::default());
    engine.add(unit("infra", infra_source.clone(), applier.clone(), &[]));
    let apps_source = DirSource::new("apps");
    engine.add(unit(
        "apps",
        apps_source.clone(),
        applier.clone(),
        &["infra"],
    ));

    let st = engine.reconcile("apps").await.unwrap();
    assert_eq!(st.ready().unwrap().reason, reason::DEPENDENCY_NOT_READY);
    assert_eq!(
        st.ready().unwrap().message,
        "dependency 'infra' is not ready"
    );
    assert_eq!(
        apps_source.fetches.load(Ordering::SeqCst),
        0,
        "nothing fetched before dependencies are Ready"
    );
    // A dependency the engine does not know is named as missing, as kustomize-controller does.
    let orphan_source = DirSource::new("orphan");
    engine.add(unit(
        "orphan",
        orphan_source.clone(),
        applier.clone(),
        &["nowhere"],
    ));
    let st = engine.reconcile("orphan").await.unwrap();
    assert_eq!(st.ready().unwrap().reason, reason::DEPENDENCY_NOT_READY);
    assert_eq!(
        st.ready().unwrap().message,
        "dependency 'nowhere' not found"
    );
    assert_eq!(orphan_source.fetches.load(Ordering::SeqCst), 0);

    // The scheduler runs infra (failing, backing off) until it recovers, then apps.
    let runner = engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        infra_source.fetches.load(Ordering::SeqCst) >= 2,
        "retried with backoff"
    );
    assert!(!engine.status("apps").unwrap().is_ready());
    infra_source.fail.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !engine.status("apps").unwrap().is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "apps became Ready after infra"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Suspended units are not run by the scheduler; "reconcile now" still runs them once.
    engine.set_suspend("apps", true).unwrap();
    let before = apps_source.fetches.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(apps_source.fetches.load(Ordering::SeqCst), before);
    engine.request_reconcile("apps").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while apps_source.fetches.load(Ordering::SeqCst) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requested reconcile ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
}

async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn replacing_a_running_unit_never_runs_it_twice_at_once() {
    let (engine, _dir) = engine();
    let source = DirSource::new("app");
    source.delay_ms.store(300, Ordering::SeqCst);
    let applier = Arc::new(RecordingApplier::default());
    engine.add(unit("app", source.clone(), applier.clone(), &[]));
    let runner = engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    wait_for("the first run started", || {
        source.active.load(Ordering::SeqCst) == 1
    })
    .await;
    // A new spec arrives mid-run (the operator saw a new generation).
    engine.add(unit("app", source.clone(), applier.clone(), &[]));
    wait_for("the new spec ran after the first run", || {
        source.fetches.load(Ordering::SeqCst) == 2 && source.active.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(source.max_active.load(Ordering::SeqCst), 1);
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test]
async fn a_cancelled_reconcile_does_not_leave_the_unit_running() {
    let (engine, _dir) = engine();
    let source = DirSource::new("app");
    source.delay_ms.store(5_000, Ordering::SeqCst);
    let applier = Arc::new(RecordingApplier::default());
    engine.add(unit("app", source.clone(), applier.clone(), &[]));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), engine.reconcile("app")).await;
    assert!(cancelled.is_err(), "the slow reconcile was cancelled");
    source.delay_ms.store(0, Ordering::SeqCst);
    let st = engine.reconcile("app").await.expect("not AlreadyRunning");
    assert!(st.is_ready(), "{st:?}");
}

#[tokio::test]
async fn extreme_intervals_neither_panic_nor_spin() {
    let (engine, _dir) = engine();
    let source = DirSource::new("app");
    let applier = Arc::new(RecordingApplier::default());
    let mut u = unit("app", source.clone(), applier.clone(), &[]);
    u.timing.interval = Duration::MAX;
    u.timing.retry_interval = Some(Duration::MAX);
    engine.add(u);
    assert!(engine.reconcile("app").await.unwrap().is_ready());

    // A zero interval runs at most about once a second, not in a tight loop.
    let mut u = unit("app", source.clone(), applier.clone(), &[]);
    u.timing.interval = Duration::ZERO;
    engine.add(u);
    let runner = engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let before = source.fetches.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = source.fetches.load(Ordering::SeqCst) - before;
    assert!((1..=3).contains(&runs), "{runs} runs in 1.5 s");
    let _ = stop.send(());
    task.await.unwrap();
}
