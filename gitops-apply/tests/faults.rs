//! Faults while applying (see `FAULTS.md` next to this file): the reconcile engine of gitops-core
//! with the real [`SsaApplier`], an inventory and prune, against a real kube-apiserver
//! (gitops-testenv, from `KUBEBUILDER_ASSETS`).
//!
//! Objects the API server rejects (schema errors, an unknown kind, RBAC) fail the reconcile with
//! the object's `Kind/namespace/name` and the server's message, and nothing is pruned: the
//! previous inventory is kept and its objects stay. An API server killed in the middle of an
//! apply fails the reconcile retryably without pruning, and the next reconcile after it is back
//! converges. Objects a failed apply wrote before failing join the kept inventory, so they are
//! pruned once they leave the desired state.
//!
//! The source and the renderer are minimal in-process pieces: the source archives the desired
//! objects as JSON into a real artifact (a new revision each time the test changes them) and the
//! renderer reads them back, so the engine runs its whole line (store, extract, render, owner
//! labels, apply, inventory, prune) on what the test chose.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use gitops_apply::SsaApplier;
use gitops_core::condition::{find_condition, kind, reason};
use gitops_core::engine::{Engine, Unit};
use gitops_core::pipeline::{ApplySpec, OwnerLabels};
use gitops_core::schedule::Timing;
use gitops_core::status::UnitStatus;
use gitops_core::{
    Algorithm, Artifact, ArtifactKey, ArtifactStore, Digest, Error, Fetched, Object, Renderer,
    Revision, Source, Stage,
};
use gitops_testenv::TestEnv;
use gitops_testenv::rbac::{Grant, RbacSubject};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

/// The file of the artifact that holds the desired objects.
const OBJECTS: &str = "objects.json";

/// A source whose artifact holds the objects the test wants applied; [`DesiredSource::set`]
/// makes a new revision.
struct DesiredSource {
    key: ArtifactKey,
    /// Generation (the revision) and the objects.
    desired: Mutex<(u64, Vec<Value>)>,
}

impl DesiredSource {
    fn new(objects: Vec<Value>) -> Arc<Self> {
        Arc::new(DesiredSource {
            key: ArtifactKey::new("GitRepository", "flux-system", "faults").unwrap(),
            desired: Mutex::new((1, objects)),
        })
    }

    fn set(&self, objects: Vec<Value>) {
        let mut d = self.desired.lock().unwrap();
        d.0 += 1;
        d.1 = objects;
    }
}

impl Source for DesiredSource {
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, Error>> {
        async move {
            let (generation, objects) = self.desired.lock().unwrap().clone();
            let revision = Revision::named(
                "main",
                Digest::new(Algorithm::Sha1, format!("{generation:040x}")).unwrap(),
            );
            if let Some(last) = last.filter(|l| l.revision == revision) {
                return Ok(Fetched::Unchanged(last.clone()));
            }
            let dir = tempfile::tempdir().map_err(|e| Error::retryable(Stage::Fetch, e))?;
            std::fs::write(
                dir.path().join(OBJECTS),
                serde_json::to_vec(&objects).unwrap(),
            )
            .map_err(|e| Error::retryable(Stage::Fetch, e))?;
            let artifact = store
                .archive_dir(&self.key, revision, dir.path(), &|_, _| true)
                .map_err(|e| Error::retryable(Stage::Fetch, e))?;
            Ok(Fetched::New(artifact))
        }
        .boxed()
    }
}

/// Reads the objects back from the artifact.
struct JsonRenderer;

impl Renderer for JsonRenderer {
    fn render(&self, dir: &Path) -> Result<Vec<Object>, Error> {
        let text =
            std::fs::read(dir.join(OBJECTS)).map_err(|e| Error::terminal(Stage::Render, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::terminal(Stage::Render, e))
    }
}

/// An engine with one pruning unit `faults` applying what `source` holds through `applier`.
fn engine(store: &Path, source: Arc<DesiredSource>, applier: SsaApplier) -> Engine {
    let engine = Engine::new(ArtifactStore::new(store).unwrap());
    engine.add(Unit {
        name: "faults".into(),
        source,
        renderer: Arc::new(JsonRenderer),
        applier: Arc::new(applier),
        spec: ApplySpec {
            prune: true,
            ..Default::default()
        },
        timing: Timing {
            interval: Duration::from_secs(3600),
            retry_interval: Some(Duration::from_secs(3600)),
            // Generous: 500 objects on a 2-core machine.
            timeout: Some(Duration::from_secs(300)),
        },
        owner: OwnerLabels::flux("flux-system", "faults"),
        depends_on: vec![],
        suspend: false,
    });
    engine
}

async fn start_env() -> TestEnv {
    TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap()
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn config_map(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns}, "data": {"value": value}})
}

/// A valid Deployment, with `spec` entries replaced by `spec_patch`'s.
fn deployment(ns: &str, name: &str, spec_patch: Value) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}}}});
    for (k, v) in spec_patch.as_object().unwrap() {
        d["spec"][k] = v.clone();
    }
    d
}

/// The inventory's object ids (`Kind/namespace/name`), sorted.
fn inventory_ids(st: &UnitStatus) -> Vec<String> {
    let mut ids: Vec<String> = st
        .inventory
        .entries
        .iter()
        .map(|e| e.object_id().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The names of the ConfigMaps in `ns`, sorted.
async fn config_maps(client: &kube::Client, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    names
}

/// Asserts the unit failed in the apply stage (Ready=False `ReconciliationFailed`) with a
/// message holding every `fragment` exactly once; returns the message.
fn assert_apply_failed(st: &UnitStatus, fragments: &[&str]) -> String {
    let ready = st.ready().expect("a Ready condition");
    assert!(!st.is_ready(), "{ready:?}");
    assert_eq!(ready.reason, reason::RECONCILIATION_FAILED, "{ready:?}");
    for f in fragments {
        assert_eq!(
            ready.message.matches(f).count(),
            1,
            "{f:?} not once in {:?}",
            ready.message
        );
    }
    // The server's words, not the client's dump of them.
    assert!(!ready.message.contains("Status {"), "{:?}", ready.message);
    ready.message.clone()
}

/// A schema error (wrong type, a value the server refuses) and a kind the server does not know
/// fail the reconcile naming the object and the server's message; the object dropped from the
/// desired state in the same revision is not pruned and stays in the inventory. Once the bad
/// object is gone, the next reconcile prunes it, so it was still tracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_objects_fail_the_reconcile_by_name_and_prune_nothing() {
    let env = start_env().await;
    let admin = env.client();
    let ns = "faults";
    create_namespace(&admin, ns).await;
    let store = tempfile::tempdir().unwrap();
    let source = DesiredSource::new(vec![config_map(ns, "a", "1"), config_map(ns, "b", "1")]);
    let engine = engine(store.path(), source.clone(), SsaApplier::new(admin.clone()));

    let st = engine.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    let both = ["ConfigMap/faults/a", "ConfigMap/faults/b"];
    assert_eq!(inventory_ids(&st), both);

    // (case, the rejected object, what the message says once); all are bad input, which only
    // a new revision can fix: the unit is Stalled, as Flux marks it.
    let cases: [(&str, Value, &[&str]); 3] = [
        (
            "a field of the wrong type",
            deployment(ns, "web", json!({"replicas": "abc"})),
            &[
                "Deployment/faults/web: dry-run apply failed: ",
                "failed to create typed patch object: .spec.replicas: expected numeric",
            ],
        ),
        (
            "a value the server does not support",
            deployment(ns, "web", json!({"strategy": {"type": "Sometimes"}})),
            &[
                "Deployment/faults/web: dry-run apply failed: ",
                r#"Deployment.apps "web" is invalid: spec.strategy: Unsupported value"#,
                r#"supported values: "Recreate", "RollingUpdate""#,
            ],
        ),
        (
            "a custom resource without its CRD",
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}}),
            &["Widget/faults/w1: no kind Widget is registered for apiVersion example.com/v1"],
        ),
    ];
    for (case, bad, fragments) in cases {
        // `a` leaves the desired state, `b` changes, the rejected object is new.
        source.set(vec![config_map(ns, "b", "2"), bad]);
        let st = engine.reconcile("faults").await.unwrap();
        let message = assert_apply_failed(&st, fragments);
        eprintln!("{case}: {message}");
        assert!(st.is_stalled(), "{case}: {:?}", st.conditions);
        assert_eq!(inventory_ids(&st), both, "{case}: the inventory is kept");
        assert_eq!(
            config_maps(&admin, ns).await,
            ["a", "b"],
            "{case}: nothing pruned"
        );
        let b_live = Api::<ConfigMap>::namespaced(admin.clone(), ns)
            .get("b")
            .await
            .unwrap();
        assert_eq!(
            b_live.data.unwrap()["value"],
            "1",
            "{case}: the stage with the rejected object wrote nothing"
        );
    }

    // Without the bad object: applied, and `a`, still in the inventory, is pruned now.
    source.set(vec![config_map(ns, "b", "2")]);
    let st = engine.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    assert_eq!(inventory_ids(&st), ["ConfigMap/faults/b"]);
    assert_eq!(config_maps(&admin, ns).await, ["b"]);
}

/// An object the applier's identity may not touch (RBAC) fails the reconcile with the object
/// and the server's "forbidden" message; nothing is pruned. The applier's client impersonates a
/// ServiceAccount bound to a Role that allows only ConfigMaps, as a Kustomization's
/// `spec.serviceAccountName` makes kustomize-controller do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_forbidden_by_rbac_fails_the_reconcile_by_name_and_prunes_nothing() {
    let env = start_env().await;
    let admin = env.client();
    let ns = "team";
    let sa = RbacSubject::service_account(ns, "deployer");
    let grant = Grant::new(ns, "configmaps-only", sa.clone())
        .rule(&[""], &["configmaps"], &["*"])
        .create_namespace()
        .create_service_account();
    env.grant(&grant).await.unwrap();
    let deployer = env.impersonating_client(&sa.username()).unwrap();

    let store = tempfile::tempdir().unwrap();
    let source = DesiredSource::new(vec![config_map(ns, "a", "1"), config_map(ns, "b", "1")]);
    let engine = engine(store.path(), source.clone(), SsaApplier::new(deployer));
    let st = engine.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    let both = ["ConfigMap/team/a", "ConfigMap/team/b"];
    assert_eq!(inventory_ids(&st), both);

    source.set(vec![
        config_map(ns, "b", "2"),
        deployment(ns, "web", json!({})),
    ]);
    let st = engine.reconcile("faults").await.unwrap();
    let message = assert_apply_failed(
        &st,
        &[
            "Deployment/team/web",
            "forbidden",
            r#"User "system:serviceaccount:team:deployer" cannot"#,
            r#"resource "deployments""#,
        ],
    );
    eprintln!("forbidden: {message}");
    // An administrator may grant the permission without a new revision: retried, not Stalled.
    assert!(!st.is_stalled(), "{:?}", st.conditions);
    assert_eq!(
        find_condition(&st.conditions, kind::RECONCILING)
            .unwrap()
            .reason,
        reason::PROGRESSING_WITH_RETRY
    );
    assert_eq!(inventory_ids(&st), both, "the inventory is kept");
    assert_eq!(config_maps(&admin, ns).await, ["a", "b"], "nothing pruned");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(admin.clone(), ns);
    assert!(deployments.get_opt("web").await.unwrap().is_none());
}

/// kube-apiserver killed (SIGKILL) while a reconcile applies 500 ConfigMaps: the reconcile
/// fails retryably with the transport error and prunes nothing; once the API server is back on
/// the same address, the next reconcile converges: every object exactly once with the desired
/// data, the inventory listing each exactly once, and only what left the desired state pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_killed_mid_apply_prunes_nothing_and_the_next_reconcile_converges() {
    const BULK: usize = 500;
    let env = start_env().await;
    let admin = env.client();
    let ns = "bulk";
    create_namespace(&admin, ns).await;
    let store = tempfile::tempdir().unwrap();

    // 1. Before: ten objects to keep and one that will leave the desired state.
    let keep: Vec<String> = (0..10).map(|i| format!("keep-{i}")).collect();
    let mut first: Vec<Value> = keep.iter().map(|n| config_map(ns, n, "1")).collect();
    first.push(config_map(ns, "dropped", "1"));
    let source = DesiredSource::new(first);
    let engine = engine(store.path(), source.clone(), SsaApplier::new(admin.clone()));
    let st = engine.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    let before = inventory_ids(&st);
    assert_eq!(before.len(), 11);

    // 2. The kept ones change, `dropped` leaves, 500 new ones (labelled to be found) come.
    let bulk: Vec<String> = (0..BULK).map(|i| format!("cm-{i:03}")).collect();
    let mut second: Vec<Value> = keep.iter().map(|n| config_map(ns, n, "2")).collect();
    for n in &bulk {
        let mut cm = config_map(ns, n, "2");
        cm["metadata"]["labels"] = json!({"batch": "second"});
        second.push(cm);
    }
    source.set(second);
    let running = tokio::spawn({
        let engine = engine.clone();
        async move { engine.reconcile("faults").await.unwrap() }
    });
    // Kill the API server as soon as the first new ConfigMap exists.
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), ns);
    let first_new = ListParams::default().labels("batch=second").limit(1);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            !running.is_finished(),
            "the reconcile ended before any of its {BULK} ConfigMaps was created"
        );
        if let Ok(list) = cms.list(&first_new).await
            && !list.items.is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no ConfigMap was ever created");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.kill_apiserver().await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(300), running)
        .await
        .expect("the reconcile ends once the API server is gone")
        .unwrap();
    let message = assert_apply_failed(&st, &["ConfigMap/bulk/", "failed"]);
    eprintln!("API server killed mid-apply: {message}");
    assert_eq!(
        find_condition(&st.conditions, kind::RECONCILING)
            .unwrap()
            .reason,
        reason::PROGRESSING_WITH_RETRY,
        "a lost API server is retryable"
    );
    assert!(!st.is_stalled());
    // The previous inventory is kept, plus the objects whose apply was sent, each once.
    let failed_inventory = inventory_ids(&st);
    let unique: BTreeSet<&String> = failed_inventory.iter().collect();
    assert_eq!(
        unique.len(),
        failed_inventory.len(),
        "each object listed once"
    );
    for id in &before {
        assert!(unique.contains(id), "{id} left the inventory");
    }

    // 3. The API server is back on the same address; the old objects are all there.
    env.start_apiserver().await.unwrap();
    let live: BTreeSet<String> = config_maps(&admin, ns).await.into_iter().collect();
    for n in keep.iter().chain([&"dropped".to_string()]) {
        assert!(live.contains(n), "{n} was lost: nothing may be pruned");
    }
    let created = live.iter().filter(|n| n.starts_with("cm-")).count();
    eprintln!("{created} of {BULK} ConfigMaps were created before the API server died");
    assert!(created < BULK, "the apply was cut short");
    // Nothing the failed reconcile wrote is forgotten: a later revision without it prunes it.
    for n in live.iter().filter(|n| n.starts_with("cm-")) {
        let id = format!("ConfigMap/{ns}/{n}");
        assert!(
            unique.contains(&id),
            "{id} was created but is not in the inventory"
        );
    }

    // 4. The next reconcile converges.
    let st = engine.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    let expected: BTreeSet<String> = keep.iter().chain(&bulk).cloned().collect();
    let ids: Vec<String> = st
        .inventory
        .entries
        .iter()
        .map(|e| e.object_id().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "each object listed once");
    assert_eq!(
        ids.iter()
            .map(|i| i.rsplit('/').next().unwrap().to_string())
            .collect::<BTreeSet<_>>(),
        expected
    );
    let all = cms.list(&ListParams::default()).await.unwrap().items;
    let names: Vec<&str> = all
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names.len(),
        expected.len(),
        "each object exists once: {names:?}"
    );
    assert_eq!(
        names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>(),
        expected,
        "`dropped` pruned now, everything else there"
    );
    for c in &all {
        let data = c.data.as_ref().unwrap();
        assert_eq!(
            data["value"], "2",
            "{:?} has the desired data",
            c.metadata.name
        );
    }
}

/// Objects a failed apply wrote before failing are recorded in the inventory beside the previous
/// one, so that once they leave the desired state they are pruned, not left behind (Flux
/// forgets them). Two ways to get there: a ClusterRole of the first stage applied before the
/// second stage is rejected by its dry run, and, with `with_dry_run_creates(false)`, new
/// ConfigMaps created beside a new Deployment the API server rejects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_by_a_failed_apply_are_pruned_once_they_leave_the_desired_state() {
    let env = start_env().await;
    let admin = env.client();
    let ns = "faults";
    create_namespace(&admin, ns).await;
    let bad = deployment(ns, "web", json!({"replicas": "abc"}));
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());

    // 1. Flux's order: the first stage (a ClusterRole) is written, the second is rejected.
    let store = tempfile::tempdir().unwrap();
    let source = DesiredSource::new(vec![config_map(ns, "a", "1")]);
    let engine1 = engine(store.path(), source.clone(), SsaApplier::new(admin.clone()));
    assert!(engine1.reconcile("faults").await.unwrap().is_ready());
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "faults-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
    source.set(vec![role, config_map(ns, "a", "1"), bad.clone()]);
    let st = engine1.reconcile("faults").await.unwrap();
    assert_apply_failed(&st, &["Deployment/faults/web: dry-run apply failed: "]);
    assert!(roles.get_opt("faults-reader").await.unwrap().is_some());
    let ids = inventory_ids(&st);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"ConfigMap/faults/a".to_string()), "{ids:?}");
    assert!(
        ids.iter()
            .any(|i| i.starts_with("ClusterRole/") && i.ends_with("/faults-reader")),
        "the ClusterRole written by the failed apply is in the inventory: {ids:?}"
    );
    source.set(vec![config_map(ns, "a", "1")]);
    let st = engine1.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    assert_eq!(inventory_ids(&st), ["ConfigMap/faults/a"]);
    assert!(
        roles.get_opt("faults-reader").await.unwrap().is_none(),
        "the ClusterRole is pruned once it left the desired state"
    );

    // 2. Without the dry run of new objects: the new ConfigMaps are created beside the rejected
    // Deployment, the reconcile fails naming it, and the ConfigMaps are tracked.
    let store = tempfile::tempdir().unwrap();
    let source = DesiredSource::new(vec![config_map(ns, "a", "1")]);
    let applier = SsaApplier::new(admin.clone()).with_dry_run_creates(false);
    let engine2 = engine(store.path(), source.clone(), applier);
    assert!(engine2.reconcile("faults").await.unwrap().is_ready());
    source.set(vec![
        config_map(ns, "a", "1"),
        config_map(ns, "n1", "1"),
        config_map(ns, "n2", "1"),
        bad,
    ]);
    let st = engine2.reconcile("faults").await.unwrap();
    assert_apply_failed(
        &st,
        &[
            "Deployment/faults/web: apply failed: ",
            "failed to create typed patch object: .spec.replicas: expected numeric",
        ],
    );
    assert!(st.is_stalled(), "bad input: {:?}", st.conditions);
    assert_eq!(
        config_maps(&admin, ns).await,
        ["a", "n1", "n2"],
        "the new ConfigMaps were created without a dry run"
    );
    let ids = inventory_ids(&st);
    for id in [
        "ConfigMap/faults/a",
        "ConfigMap/faults/n1",
        "ConfigMap/faults/n2",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} not in {ids:?}");
    }
    source.set(vec![config_map(ns, "a", "1")]);
    let st = engine2.reconcile("faults").await.unwrap();
    assert!(st.is_ready(), "{:?}", st.ready());
    assert_eq!(inventory_ids(&st), ["ConfigMap/faults/a"]);
    assert_eq!(
        config_maps(&admin, ns).await,
        ["a"],
        "n1 and n2 are pruned once they left the desired state"
    );
}
