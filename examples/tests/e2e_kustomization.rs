//! End to end, the Kustomization's own fields against a real kube-apiserver + etcd (from
//! `KUBEBUILDER_ASSETS`) and the operator: post-build substitution from `substitute`, a
//! ConfigMap and a Secret; `images`, `patches`, `components` (`ignoreMissingComponents`),
//! `namePrefix` and `nameSuffix` merged into the build as kustomize-controller's generator
//! does; `targetNamespace` moving the binding subjects of its service accounts too;
//! `commonMetadata`; `dependsOn` on a dependency of the same source that has not applied
//! its new revision yet; Events on the Kustomization; and the finalizer that prunes the
//! inventory when a Kustomization with `prune: true` is deleted. The source is a GitRepository
//! of a local bare repository (`file://`).

use std::time::Duration;

use anyhow::Result;
use gitops_core::ArtifactStore;
use gitops_core::condition::{find_condition, is_ready, kind};
use gitops_examples::crds::{GitRepository, Kustomization};
use gitops_examples::gitrepo::LocalRepo;
use gitops_examples::operator::{self, FINALIZER, OperatorConfig, REQUESTED_AT};
use gitops_examples::wait;
use gitops_testenv::TestEnv;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

mod common;

const TIMEOUT: Duration = Duration::from_secs(120);
const NS: &str = "flux-system";

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
data:
  inline: ${inline}
  from_cm: ${from_cm}
  from_secret: ${from_secret}
  overridden: ${overridden}
  later_wins: ${later_wins}
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
";

const COMPONENT: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
commonAnnotations:
  example.com/component: added
";

const PRUNE_DISABLED: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: prune-disabled
  namespace: default
  annotations:
    kustomize.toolkit.fluxcd.io/prune: disabled
";

const ALWAYS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: always
  namespace: default
data:
  v: ${unset:=fallback}
";

struct World {
    env: TestEnv,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    repo: LocalRepo,
    _tmp: tempfile::TempDir,
}

impl World {
    /// Control plane, operator, the `flux-system` namespace and the GitRepository `fleet` of a
    /// repository holding `files` (path, content).
    async fn start(files: &[(&str, &str)]) -> Result<World> {
        World::start_with(files, false, true).await
    }

    /// [`World::start`], the operator refusing cross-namespace references or not, and the
    /// control plane with kube-controller-manager and the node simulator (so Deployments
    /// become available by themselves) or without them (so nothing but the test writes an
    /// object's status).
    async fn start_with(
        files: &[(&str, &str)],
        no_cross_namespace_refs: bool,
        controllers: bool,
    ) -> Result<World> {
        gitops_examples::install_crypto_provider();
        let env = TestEnv::builder()
            .controller_manager(controllers)
            .node_simulator(controllers)
            .start()
            .await?;
        let tmp = tempfile::tempdir()?;
        let content = tmp.path().join("content");
        for (path, text) in files {
            let p = content.join(path);
            std::fs::create_dir_all(p.parent().expect("a file has a parent"))?;
            std::fs::write(p, text)?;
        }
        let repo = LocalRepo::create(tmp.path(), "fleet", &content, ".")?;
        let url = format!("file://{}", repo.repos_root.join("fleet.git").display());
        gitops_examples::crds::install_crds(&env.client()).await?;
        let store = ArtifactStore::new(tmp.path().join("artifacts"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = OperatorConfig {
            dependency_requeue: Duration::from_secs(1),
            no_cross_namespace_refs,
            ..OperatorConfig::default()
        };
        tokio::spawn(operator::run(env.client(), store, config, async move {
            let _ = stopped.await;
        }));
        let w = World {
            env,
            stop: Some(stop),
            repo,
            _tmp: tmp,
        };
        let namespaces: Api<Namespace> = Api::all(w.client());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": NS}}))?,
            )
            .await?;
        let repos: Api<GitRepository> = Api::namespaced(w.client(), NS);
        repos
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "fleet", "namespace": NS},
                    "spec": {"url": url, "ref": {"branch": "main"}, "interval": "10m"}
                }))?,
            )
            .await?;
        Ok(w)
    }

    fn client(&self) -> kube::Client {
        self.env.client()
    }

    fn kustomizations(&self) -> Api<Kustomization> {
        Api::namespaced(self.client(), NS)
    }

    /// A Kustomization of `fleet` with `spec` merged over the defaults.
    async fn create_kustomization(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        let mut full = serde_json::json!({"interval": "10m", "prune": true,
                                          "sourceRef": {"kind": "GitRepository", "name": "fleet"}});
        for (k, v) in spec.as_object().cloned().unwrap_or_default() {
            full[k] = v;
        }
        let ks = serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": NS}, "spec": full
        });
        self.kustomizations()
            .create(&PostParams::default(), &serde_json::from_value(ks)?)
            .await?;
        Ok(())
    }

    async fn until_ks(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Kustomization) -> bool,
    ) -> Result<Kustomization> {
        wait::until(&self.kustomizations(), name, TIMEOUT, what, done).await
    }

    async fn ready(&self, name: &str) -> Result<Kustomization> {
        self.until_ks(name, "Kustomization Ready", |k| {
            k.status.as_ref().is_some_and(|s| {
                is_ready(&s.conditions) && s.observed_generation == k.metadata.generation
            })
        })
        .await
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn ready_message(k: &Kustomization) -> String {
    k.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, kind::READY))
        .map(|c| format!("{} {}", c.reason, c.message))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_build_substitutes_from_substitute_configmaps_and_secrets() -> Result<()> {
    let w = World::start(&[
        ("app/settings.yaml", CONFIGMAP),
        ("always/settings.yaml", ALWAYS),
    ])
    .await?;
    // `substituteStrategy: Always` substitutes without any variable: the default applies.
    w.create_kustomization(
        "always",
        serde_json::json!({"path": "./always", "postBuild": {"substituteStrategy": "Always"}}),
    )
    .await?;
    w.ready("always").await?;
    let always = Api::<ConfigMap>::namespaced(w.client(), "default")
        .get("always")
        .await?;
    assert_eq!(
        always.data.unwrap_or_default().get("v").map(String::as_str),
        Some("fallback")
    );
    let secret_value = "s3cr3t-value";
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app", "postBuild": {
            "substitute": {"inline": "from-substitute", "overridden": "by-substitute"},
            "substituteFrom": [
                {"kind": "ConfigMap", "name": "vars"},
                {"kind": "Secret", "name": "secret-vars"},
                {"kind": "ConfigMap", "name": "absent", "optional": true}
            ]
        }}),
    )
    .await?;

    // The ConfigMap `vars` does not exist and is not optional: Ready=False naming it.
    let ks = w
        .until_ks("app", "Ready=False naming the ConfigMap", |k| {
            ready_message(k).contains("ConfigMap 'flux-system/vars' not found")
        })
        .await?;
    assert!(
        ready_message(&ks).starts_with("BuildFailed "),
        "{}",
        ready_message(&ks)
    );

    let cms: Api<ConfigMap> = Api::namespaced(w.client(), NS);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "vars", "namespace": NS},
            "data": {"from_cm": "cm-value", "overridden": "cm", "later_wins": "cm"}
        }))?,
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(w.client(), NS);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "secret-vars", "namespace": NS},
                "stringData": {"from_secret": secret_value, "overridden": "secret",
                               "later_wins": "secret"}
            }))?,
        )
        .await?;
    // Ask for a reconcile now rather than after the retry interval.
    let now = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: now}}});
    w.kustomizations()
        .patch("app", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let ks = w.ready("app").await?;
    let st = ks.status.clone().unwrap_or_default();
    assert_eq!(st.last_handled_reconcile_at.as_deref(), Some(now.as_str()));
    assert_eq!(st.last_attempted_revision, st.last_applied_revision);

    let applied = Api::<ConfigMap>::namespaced(w.client(), "default")
        .get("settings")
        .await?;
    let data = applied.data.unwrap_or_default();
    let get = |k: &str| data.get(k).map(String::as_str);
    assert_eq!(get("inline"), Some("from-substitute"));
    assert_eq!(get("from_cm"), Some("cm-value"));
    assert_eq!(get("from_secret"), Some(secret_value));
    // `substitute` overrides every `substituteFrom`; among those a later one wins.
    assert_eq!(get("overridden"), Some("by-substitute"));
    assert_eq!(get("later_wins"), Some("secret"));

    // No Event of the Kustomization carries the Secret's value.
    let events: Api<Event> = Api::namespaced(w.client(), NS);
    for e in events.list(&ListParams::default()).await? {
        let message = e.message.unwrap_or_default();
        assert!(!message.contains(secret_value), "{message}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_patches_and_components_are_merged_into_the_build() -> Result<()> {
    let w = World::start(&[
        ("app/deployment.yaml", DEPLOYMENT),
        ("app/kustomization.yaml", "resources: [deployment.yaml]\n"),
        ("components/annotate/kustomization.yaml", COMPONENT),
    ])
    .await?;
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app",
            "images": [{"name": "nginx", "newName": "registry.example.com/nginx", "newTag": "1.27"}],
            "patches": [{"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
                         "target": {"kind": "Deployment", "name": "web"}}],
            "components": ["../components/annotate"]}),
    )
    .await?;
    w.ready("app").await?;
    let dep = Api::<Deployment>::namespaced(w.client(), "default")
        .get("web")
        .await?;
    let spec = dep.spec.clone().unwrap_or_default();
    let image = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    assert_eq!(image.as_deref(), Some("registry.example.com/nginx:1.27"));
    assert_eq!(spec.replicas, Some(3));
    let annotations = dep.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/component").map(String::as_str),
        Some("added")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_finalizer_and_deletion_with_and_without_prune() -> Result<()> {
    let w = World::start(&[
        (
            "pruned/settings.yaml",
            &CONFIGMAP.replace("settings", "pruned"),
        ),
        ("pruned/kept-by-annotation.yaml", PRUNE_DISABLED),
        ("kept/settings.yaml", &CONFIGMAP.replace("settings", "kept")),
    ])
    .await?;
    w.create_kustomization("pruned", serde_json::json!({"path": "./pruned"}))
        .await?;
    w.create_kustomization(
        "kept",
        serde_json::json!({"path": "./kept", "prune": false}),
    )
    .await?;
    for name in ["pruned", "kept"] {
        let ks = w.ready(name).await?;
        assert!(ks.finalizers().iter().any(|f| f == FINALIZER), "{name}");
    }

    // The applied change set is an Event of the Kustomization, as Flux records it.
    let events: Api<Event> = Api::namespaced(w.client(), NS);
    let selector = "involvedObject.kind=Kustomization,involvedObject.name=pruned";
    let listed = events
        .list(&ListParams::default().fields(selector))
        .await?
        .items;
    let applied = listed
        .iter()
        .find(|e| e.reason.as_deref() == Some("Progressing"))
        .unwrap_or_else(|| panic!("no Progressing event in {listed:#?}"));
    assert_eq!(applied.type_.as_deref(), Some("Normal"));
    assert_eq!(
        applied.message.as_deref(),
        Some("ConfigMap/default/prune-disabled created\nConfigMap/default/pruned created")
    );

    let cms: Api<ConfigMap> = Api::namespaced(w.client(), "default");

    // `prune: true`: deleting the Kustomization deletes its objects, then the Kustomization goes.
    w.kustomizations()
        .delete("pruned", &DeleteParams::default())
        .await?;
    common::wait_gone(&w.kustomizations(), "pruned", TIMEOUT).await?;
    assert!(cms.get_opt("pruned").await?.is_none());
    // An object annotated `kustomize.toolkit.fluxcd.io/prune: disabled` is left in place.
    assert!(cms.get_opt("prune-disabled").await?.is_some());
    let listed = events
        .list(&ListParams::default().fields(selector))
        .await?
        .items;
    assert!(
        listed.iter().any(|e| e.message.as_deref()
            == Some("ConfigMap/default/pruned deleted\nConfigMap/default/prune-disabled skipped")),
        "{listed:#?}"
    );

    // `prune: false`: the Kustomization goes, its objects stay.
    w.kustomizations()
        .delete("kept", &DeleteParams::default())
        .await?;
    common::wait_gone(&w.kustomizations(), "kept", TIMEOUT).await?;
    assert!(cms.get_opt("kept").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_a_warning_event() -> Result<()> {
    let w = World::start(&[("app/settings.yaml", CONFIGMAP)]).await?;
    // Strict substitution: `${from_cm}` and the others have no value.
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app", "postBuild": {"substitute": {"inline": "x"}}}),
    )
    .await?;
    w.until_ks("app", "Ready=False", |k| {
        ready_message(k).starts_with("BuildFailed ")
    })
    .await?;
    let events: Api<Event> = Api::namespaced(w.client(), NS);
    let selector = "involvedObject.kind=Kustomization,involvedObject.name=app";
    let listed = events
        .list(&ListParams::default().fields(selector))
        .await?
        .items;
    let warning = listed
        .iter()
        .find(|e| e.type_.as_deref() == Some("Warning"))
        .unwrap_or_else(|| panic!("no Warning event in {listed:#?}"));
    assert_eq!(warning.reason.as_deref(), Some("BuildFailed"));
    assert!(
        warning
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("variable not set"),
        "{warning:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cross_namespace_refs_refuses_a_source_of_another_namespace() -> Result<()> {
    let w = World::start_with(&[("app/settings.yaml", CONFIGMAP)], true, true).await?;
    let namespaces: Api<Namespace> = Api::all(w.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "tenant"}}))?,
        )
        .await?;
    let tenant: Api<Kustomization> = Api::namespaced(w.client(), "tenant");
    tenant
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "app", "namespace": "tenant"},
                "spec": {"interval": "10m", "prune": true, "path": "./app",
                         "sourceRef": {"kind": "GitRepository", "name": "fleet", "namespace": NS}}
            }))?,
        )
        .await?;
    let ks = wait::until(&tenant, "app", TIMEOUT, "Ready=False AccessDenied", |k| {
        ready_message(k).starts_with("AccessDenied ")
    })
    .await?;
    assert_eq!(
        ready_message(&ks),
        "AccessDenied can't access 'GitRepository/flux-system/fleet', cross-namespace references have been blocked"
    );
    // A reference naming its own namespace is allowed.
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app",
            "sourceRef": {"kind": "GitRepository", "name": "fleet", "namespace": NS}}),
    )
    .await?;
    w.ready("app").await?;
    Ok(())
}

/// Flux's `healthChecks` and `wait`: a health check naming an object that never appears fails
/// the reconcile with `HealthCheckFailed` naming it once `timeout` has passed; `wait: true` over
/// objects that are Current (kstatus) makes the Kustomization Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_wait() -> Result<()> {
    const PLAIN: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
  namespace: default
data:
  a: b
";
    let w = World::start(&[("app/plain.yaml", PLAIN)]).await?;
    w.create_kustomization(
        "checked",
        serde_json::json!({"path": "./app", "timeout": "3s",
            "healthChecks": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "missing",
                              "namespace": "default"}]}),
    )
    .await?;
    let failed = w
        .until_ks("checked", "Ready=False HealthCheckFailed", |k| {
            ready_message(k).starts_with("HealthCheckFailed ")
        })
        .await?;
    let message = ready_message(&failed);
    assert!(message.contains("ConfigMap/default/missing"), "{message}");
    assert!(message.contains("NotFound"), "{message}");
    assert!(!message.contains("ConfigMap/default/plain"), "{message}");

    w.create_kustomization(
        "waited",
        serde_json::json!({"path": "./app", "timeout": "30s", "wait": true}),
    )
    .await?;
    w.until_ks("waited", "Ready", |k| {
        k.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
    })
    .await?;
    Ok(())
}

/// Flux's `spec.force`: a change the API server refuses as immutable (the data of a ConfigMap
/// with `immutable: true`) is applied by deleting and recreating the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_recreates_an_object_with_an_immutable_field() -> Result<()> {
    let frozen = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n  namespace: default\nimmutable: true\ndata:\n  a: {value}\n"
        )
    };
    let w = World::start(&[("app/frozen.yaml", &frozen("one"))]).await?;
    w.create_kustomization(
        "forced",
        serde_json::json!({"path": "./app", "force": true}),
    )
    .await?;
    w.until_ks("forced", "Ready", |k| {
        k.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
    })
    .await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(w.client(), "default");
    let before = configmaps.get("frozen").await?;

    w.repo.write("app/frozen.yaml", &frozen("two"))?;
    let commit = w.repo.commit("change an immutable ConfigMap")?;
    let repos: Api<GitRepository> = Api::namespaced(w.client(), NS);
    let now = "2026-11-23T00:00:00Z";
    repos
        .patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: now}}})),
        )
        .await?;
    let ks = w
        .until_ks("forced", "Ready at the new commit", |k| {
            k.status.as_ref().is_some_and(|s| {
                is_ready(&s.conditions)
                    && s.last_applied_revision
                        .as_deref()
                        .is_some_and(|r| r.ends_with(&commit))
            })
        })
        .await?;
    let after = configmaps.get("frozen").await?;
    assert_eq!(
        after
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("two"),
        "{ks:?}"
    );
    assert_ne!(after.metadata.uid, before.metadata.uid, "recreated");
    Ok(())
}

/// A ConfigMap `name` in `default` with `v: value`.
fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  v: {value}\n"
    )
}

async fn configmap_value(w: &World, name: &str) -> Result<Option<String>> {
    let cm = Api::<ConfigMap>::namespaced(w.client(), "default")
        .get(name)
        .await?;
    Ok(cm.data.unwrap_or_default().get("v").cloned())
}

/// Flux's `dependsOn` with a shared source: a dependant waits (`DependencyNotReady`, "revision
/// is not up to date") while its dependency, Ready, has not applied the source's new revision
/// yet, and applies that revision once the dependency has. The dependency is held at the old
/// revision by `wait: true` on a Deployment that only becomes available when this test writes
/// its status (no kube-controller-manager runs here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_waits_until_the_dependency_applied_the_sources_revision() -> Result<()> {
    // Without kube-controller-manager: otherwise the Deployment could become available on its
    // own before the test looks, and infra would already be at the new revision.
    let w = World::start_with(
        &[
            ("infra/settings.yaml", &configmap("infra-settings", "one")),
            ("app/settings.yaml", &configmap("app-settings", "one")),
        ],
        false,
        false,
    )
    .await?;
    w.create_kustomization(
        "infra",
        serde_json::json!({"path": "./infra", "wait": true, "timeout": "5m"}),
    )
    .await?;
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app", "dependsOn": [{"name": "infra"}]}),
    )
    .await?;
    let first = w.ready("infra").await?;
    let first_revision = first
        .status
        .and_then(|s| s.last_applied_revision)
        .expect("infra applied a revision");
    w.ready("app").await?;

    // The new revision adds a Deployment to infra and changes app's ConfigMap.
    w.repo.write("infra/slow.yaml", DEPLOYMENT)?;
    w.repo
        .write("app/settings.yaml", &configmap("app-settings", "two"))?;
    let commit = w.repo.commit("infra: a Deployment; app: v two")?;
    let repos: Api<GitRepository> = Api::namespaced(w.client(), NS);
    repos
        .patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                REQUESTED_AT: "2026-11-23T00:00:00Z"}}})),
        )
        .await?;
    let waiting = w
        .until_ks("app", "DependencyNotReady at the new revision", |k| {
            ready_message(k).starts_with("DependencyNotReady ")
        })
        .await?;
    assert_eq!(
        ready_message(&waiting),
        "DependencyNotReady dependency 'flux-system/infra' revision is not up to date"
    );
    // infra is still Ready at the old revision (waiting on its Deployment); app applied nothing.
    let infra = w.kustomizations().get("infra").await?;
    let st = infra.status.unwrap_or_default();
    assert!(is_ready(&st.conditions), "{:?}", st.conditions);
    assert_eq!(
        st.last_applied_revision.as_deref(),
        Some(first_revision.as_str())
    );
    assert_eq!(
        configmap_value(&w, "app-settings").await?.as_deref(),
        Some("one")
    );

    // Make the Deployment available as kube-controller-manager would.
    let deployments: Api<Deployment> = Api::namespaced(w.client(), "default");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let generation = loop {
        if let Some(d) = deployments.get_opt("web").await? {
            break d.metadata.generation.unwrap_or(1);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "infra never applied the Deployment"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let now = jiff::Timestamp::now().to_string();
    let status = serde_json::json!({"status": {
    "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
    "readyReplicas": 1, "availableReplicas": 1,
    "conditions": [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
         "lastUpdateTime": now, "lastTransitionTime": now},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
         "lastUpdateTime": now, "lastTransitionTime": now}
    ]}});
    deployments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(status))
        .await?;

    let at_commit = |k: &Kustomization| {
        k.status.as_ref().is_some_and(|s| {
            is_ready(&s.conditions)
                && s.last_applied_revision
                    .as_deref()
                    .is_some_and(|r| r.ends_with(&commit))
        })
    };
    w.until_ks("infra", "infra Ready at the new commit", at_commit)
        .await?;
    w.until_ks("app", "app Ready at the new commit", at_commit)
        .await?;
    assert_eq!(
        configmap_value(&w, "app-settings").await?.as_deref(),
        Some("two")
    );
    Ok(())
}

/// Flux's `namePrefix` / `nameSuffix` (merged into the build, so kustomize renames references
/// too) and `commonMetadata` (set on every object's metadata after the build, overriding its
/// own values, selectors and pod templates untouched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_prefix_suffix_and_common_metadata_shape_the_applied_objects() -> Result<()> {
    const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {team: dev}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        envFrom:
        - configMapRef: {name: web-config}
";
    let w = World::start(&[
        ("app/deployment.yaml", WEB),
        ("app/config.yaml", &configmap("web-config", "one")),
        (
            "app/kustomization.yaml",
            "resources: [deployment.yaml, config.yaml]\n",
        ),
    ])
    .await?;
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app", "namePrefix": "pre-", "nameSuffix": "-suf",
            "commonMetadata": {"labels": {"team": "platform"},
                               "annotations": {"example.com/owner": "ops"}}}),
    )
    .await?;
    let ks = w.ready("app").await?;
    let mut ids: Vec<String> = ks
        .status
        .and_then(|s| s.inventory)
        .map(|i| i.entries.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    ids.sort();
    assert_eq!(
        ids,
        [
            "default_pre-web-config-suf__ConfigMap",
            "default_pre-web-suf_apps_Deployment"
        ],
    );

    let dep = Api::<Deployment>::namespaced(w.client(), "default")
        .get("pre-web-suf")
        .await?;
    let labels = dep.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("platform"));
    assert_eq!(
        labels
            .get("kustomize.toolkit.fluxcd.io/name")
            .map(String::as_str),
        Some("app")
    );
    let annotations = dep.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/owner").map(String::as_str),
        Some("ops")
    );
    let spec = dep.spec.unwrap_or_default();
    let selector = spec.selector.match_labels.unwrap_or_default();
    assert_eq!(selector.len(), 1, "{selector:?}");
    let template = spec.template.metadata.unwrap_or_default();
    assert_eq!(
        template
            .labels
            .unwrap_or_default()
            .keys()
            .collect::<Vec<_>>(),
        ["app"]
    );
    assert!(template.annotations.unwrap_or_default().is_empty());
    // kustomize's nameReference: the reference follows the renamed ConfigMap.
    let env_from = spec
        .template
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.env_from)
        .unwrap_or_default();
    let referenced = env_from
        .first()
        .and_then(|e| e.config_map_ref.as_ref())
        .map(|r| r.name.clone());
    assert_eq!(referenced.as_deref(), Some("pre-web-config-suf"));

    let cm = Api::<ConfigMap>::namespaced(w.client(), "default")
        .get("pre-web-config-suf")
        .await?;
    assert_eq!(
        cm.labels().get("team").map(String::as_str),
        Some("platform")
    );
    assert_eq!(
        cm.annotations()
            .get("example.com/owner")
            .map(String::as_str),
        Some("ops")
    );
    Ok(())
}

/// Flux's `ignoreMissingComponents`: without it a component missing from the artifact fails
/// the build naming its path; with it the component is dropped and the others still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_component_fails_unless_ignore_missing_components() -> Result<()> {
    let w = World::start(&[
        ("app/config.yaml", &configmap("with-components", "one")),
        ("components/annotate/kustomization.yaml", COMPONENT),
    ])
    .await?;
    w.create_kustomization(
        "app",
        serde_json::json!({"path": "./app",
            "components": ["../components/annotate", "../components/absent"]}),
    )
    .await?;
    let failed = w
        .until_ks("app", "Ready=False BuildFailed", |k| {
            ready_message(k).starts_with("BuildFailed ")
        })
        .await?;
    let message = ready_message(&failed);
    assert!(
        message.contains("component '../components/absent': no such file or folder"),
        "{message}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(w.client(), "default");
    assert!(cms.get_opt("with-components").await?.is_none());

    w.kustomizations()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"ignoreMissingComponents": true}})),
        )
        .await?;
    w.ready("app").await?;
    let cm = cms.get("with-components").await?;
    assert_eq!(
        cm.annotations()
            .get("example.com/component")
            .map(String::as_str),
        Some("added")
    );
    Ok(())
}

const RBAC: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  namespace: git-ns
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: app
rules:
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: app
  namespace: git-ns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: app
subjects:
- kind: ServiceAccount
  name: app
  namespace: git-ns
- kind: ServiceAccount
  name: other
  namespace: elsewhere
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: app-reader
rules:
- apiGroups: ['']
  resources: [namespaces]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: app-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: app-reader
subjects:
- kind: ServiceAccount
  name: app
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_namespace_also_moves_the_binding_subjects_of_its_service_accounts() -> Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    let w = World::start(&[
        ("rbac/rbac.yaml", RBAC),
        ("rbac/kustomization.yaml", "resources: [rbac.yaml]\n"),
    ])
    .await?;
    let namespaces: Api<Namespace> = Api::all(w.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "apps"}}))?,
        )
        .await?;
    w.create_kustomization(
        "rbac",
        serde_json::json!({"path": "./rbac", "targetNamespace": "apps"}),
    )
    .await?;
    w.ready("rbac").await?;
    assert!(
        Api::<ServiceAccount>::namespaced(w.client(), "apps")
            .get_opt("app")
            .await?
            .is_some()
    );
    // As `kubectl kustomize` prints this folder with `namespace: apps` (kustomize v5): the
    // subjects naming the build's service account follow it (with a namespace in Git or
    // none), another namespace's account is left alone.
    let subjects = |s: Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| -> Vec<(String, String)> {
        s.unwrap_or_default()
            .into_iter()
            .map(|s| (s.name, s.namespace.unwrap_or_default()))
            .collect()
    };
    let rb = Api::<RoleBinding>::namespaced(w.client(), "apps")
        .get("app")
        .await?;
    assert_eq!(
        subjects(rb.subjects),
        [
            ("app".to_string(), "apps".to_string()),
            ("other".to_string(), "elsewhere".to_string())
        ]
    );
    let crb = Api::<ClusterRoleBinding>::all(w.client())
        .get("app-reader")
        .await?;
    assert_eq!(
        subjects(crb.subjects),
        [("app".to_string(), "apps".to_string())]
    );
    Ok(())
}
