//! End to end, against real components: a kube-apiserver + etcd + kube-controller-manager from
//! `KUBEBUILDER_ASSETS` with the node simulator, a Git repository served by `git http-backend`
//! over smart HTTPS (a throwaway `TestCa`, given to the GitRepository as the deprecated `caFile`
//! key of its `secretRef`), and the operator reconciling Flux's GitRepository and Kustomization.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use gitops_core::ArtifactStore;
use gitops_core::condition::{find_condition, is_ready, kind};
use gitops_examples::crds::{GitRepository, Kustomization};
use gitops_examples::gitrepo::LocalRepo;
use gitops_examples::operator::{self, OperatorConfig, REQUESTED_AT};
use gitops_examples::wait;
use gitops_testenv::{GitHttpServer, TestCa, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};

const TIMEOUT: Duration = Duration::from_secs(120);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/podinfo-k8s120")
}

struct World {
    env: TestEnv,
    _git: GitHttpServer,
    ca: TestCa,
    repo: LocalRepo,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _tmp: tempfile::TempDir,
}

impl World {
    /// Control plane, operator, and a repository whose content is `content` under `subdir`.
    async fn start(content: &Path, subdir: &str) -> Result<World> {
        gitops_examples::install_crypto_provider();
        let env = TestEnv::start().await?;
        let tmp = tempfile::tempdir()?;
        let repo = LocalRepo::create(tmp.path(), "fleet", content, subdir)?;
        let ca = TestCa::new()?;
        let git = GitHttpServer::start_tls(&repo.repos_root, &ca).await?;
        let url = format!("{}/fleet.git", git.url());
        gitops_examples::crds::install_crds(&env.client()).await?;
        let store = ArtifactStore::new(tmp.path().join("artifacts"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = OperatorConfig {
            dependency_requeue: Duration::from_secs(1),
            ..OperatorConfig::default()
        };
        tokio::spawn(operator::run(env.client(), store, config, async move {
            let _ = stopped.await;
        }));
        Ok(World {
            env,
            _git: git,
            ca,
            repo,
            url,
            stop: Some(stop),
            _tmp: tmp,
        })
    }

    fn client(&self) -> kube::Client {
        self.env.client()
    }

    /// The `flux-system` namespace and the GitRepository `fleet` for the test repository.
    async fn create_source(&self) -> Result<()> {
        let ns = "flux-system";
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        // Only a CA: anonymous access over HTTPS.
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(self.client(), ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "fleet-ca", "namespace": ns},
                    "stringData": {"caFile": self.ca.ca_pem()}
                }))?,
            )
            .await?;
        let repos: Api<GitRepository> = Api::namespaced(self.client(), ns);
        repos
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "fleet", "namespace": ns},
                    "spec": {"url": self.url, "ref": {"branch": "main"}, "interval": "10m", "timeout": "20s",
                             "secretRef": {"name": "fleet-ca"}}
                }))?,
            )
            .await?;
        Ok(())
    }

    /// A Kustomization of the GitRepository `fleet` in `flux-system`.
    async fn create_kustomization(
        &self,
        name: &str,
        path: &str,
        target_namespace: Option<&str>,
        depends_on: &[&str],
    ) -> Result<()> {
        let deps: Vec<_> = depends_on
            .iter()
            .map(|d| serde_json::json!({"name": d}))
            .collect();
        let mut spec = serde_json::json!({"interval": "10m", "path": path, "prune": true, "dependsOn": deps,
                                          "sourceRef": {"kind": "GitRepository", "name": "fleet"}});
        if let Some(tns) = target_namespace {
            spec["targetNamespace"] = tns.into();
        }
        let kss: Api<Kustomization> = Api::namespaced(self.client(), "flux-system");
        let ks = serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"}, "spec": spec
        });
        kss.create(&PostParams::default(), &serde_json::from_value(ks)?)
            .await?;
        Ok(())
    }

    /// The source and the Kustomization `app`.
    async fn create(&self, path: &str, target_namespace: Option<&str>) -> Result<()> {
        self.create_source().await?;
        self.create_kustomization("app", path, target_namespace, &[])
            .await
    }

    fn kustomizations(&self) -> Api<Kustomization> {
        Api::namespaced(self.client(), "flux-system")
    }

    fn repositories(&self) -> Api<GitRepository> {
        Api::namespaced(self.client(), "flux-system")
    }

    /// Asks the GitRepository to fetch now (Flux's `reconcile.fluxcd.io/requestedAt`).
    async fn request_fetch(&self) -> Result<()> {
        let now = jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: now}}});
        self.repositories()
            .patch("fleet", &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    async fn ready_kustomization(&self) -> Result<Kustomization> {
        wait::until(
            &self.kustomizations(),
            "app",
            TIMEOUT,
            "Kustomization Ready",
            |k| {
                k.status.as_ref().is_some_and(|s| {
                    is_ready(&s.conditions) && s.observed_generation == k.metadata.generation
                })
            },
        )
        .await
    }

    fn hpas(&self, ns: &str) -> Api<DynamicObject> {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "autoscaling",
            "v2beta2",
            "HorizontalPodAutoscaler",
        ));
        Api::namespaced_with(self.client(), ns, &ar)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn inventory_ids(k: &Kustomization) -> BTreeSet<String> {
    k.status
        .as_ref()
        .and_then(|s| s.inventory.as_ref())
        .map(|i| i.entries.iter().map(|e| e.id.clone()).collect())
        .unwrap_or_default()
}

fn owner_labels_ok(labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    labels.is_some_and(|l| {
        l.get("kustomize.toolkit.fluxcd.io/name")
            .map(String::as_str)
            == Some("app")
            && l.get("kustomize.toolkit.fluxcd.io/namespace")
                .map(String::as_str)
                == Some("flux-system")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podinfo_reconciles_prunes_and_survives_bad_commits() -> Result<()> {
    let w = World::start(&fixtures().join("kustomize"), "kustomize").await?;
    w.create("./kustomize", Some("default")).await?;

    // 1. First reconcile: Deployment, Service, HPA with owner labels; the inventory lists exactly them.
    let ks = w.ready_kustomization().await?;
    let first_revision = ks
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.clone())
        .unwrap_or_default();
    assert!(first_revision.starts_with("main@sha1:"), "{first_revision}");
    let expected: BTreeSet<String> = [
        "default_podinfo_apps_Deployment",
        "default_podinfo__Service",
        "default_podinfo_autoscaling_HorizontalPodAutoscaler",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(inventory_ids(&ks), expected);
    let deployments: Api<Deployment> = Api::namespaced(w.client(), "default");
    let services: Api<Service> = Api::namespaced(w.client(), "default");
    let dep = deployments.get("podinfo").await?;
    assert!(owner_labels_ok(dep.metadata.labels.as_ref()));
    assert!(owner_labels_ok(
        services.get("podinfo").await?.metadata.labels.as_ref()
    ));
    let hpa = w.hpas("default").get("podinfo").await?;
    assert!(owner_labels_ok(hpa.metadata.labels.as_ref()));
    // The Deployment becomes Available through kube-controller-manager and the node simulator.
    wait::until(
        &deployments,
        "podinfo",
        TIMEOUT,
        "Deployment Available",
        |d| {
            d.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                })
        },
    )
    .await?;

    // 2. A commit deletes hpa.yaml: the next reconcile prunes the HPA and reports the new revision.
    w.repo.remove("kustomize/hpa.yaml")?;
    let k = w
        .repo
        .read("kustomize/kustomization.yaml")?
        .replace("  - hpa.yaml\n", "");
    w.repo.write("kustomize/kustomization.yaml", &k)?;
    let commit = w.repo.commit("drop the HPA")?;
    w.request_fetch().await?;
    let ks = wait::until(
        &w.kustomizations(),
        "app",
        TIMEOUT,
        "revision with the HPA removed",
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_applied_revision.as_deref())
                == Some(&format!("main@sha1:{commit}"))
        },
    )
    .await?;
    assert!(
        w.hpas("default").get_opt("podinfo").await?.is_none(),
        "the HPA was pruned"
    );
    assert_eq!(
        inventory_ids(&ks),
        [
            "default_podinfo_apps_Deployment",
            "default_podinfo__Service"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    let good_revision = format!("main@sha1:{commit}");

    // 3. A commit with malformed YAML: Ready=False naming the file, nothing pruned or changed.
    let svc_before = services.get("podinfo").await?;
    let dep_before = deployments.get("podinfo").await?;
    w.repo.write(
        "kustomize/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n  labels: [unclosed\n",
    )?;
    let bad = w.repo.commit("break service.yaml")?;
    w.request_fetch().await?;
    let ks = wait::until(
        &w.kustomizations(),
        "app",
        TIMEOUT,
        "Ready=False after the malformed commit",
        |k| {
            k.status.as_ref().is_some_and(|s| {
                s.last_attempted_revision.as_deref() == Some(&format!("main@sha1:{bad}"))
                    && !is_ready(&s.conditions)
            })
        },
    )
    .await?;
    let status = ks.status.clone().unwrap_or_default();
    let ready = find_condition(&status.conditions, kind::READY).expect("Ready condition");
    assert_eq!(ready.reason, "BuildFailed");
    assert!(
        ready.message.contains("service.yaml"),
        "message names the file: {}",
        ready.message
    );
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(good_revision.as_str())
    );
    assert_eq!(inventory_ids(&ks).len(), 2, "inventory unchanged");
    let svc_after = services.get("podinfo").await?;
    assert_eq!(
        svc_after.metadata.resource_version, svc_before.metadata.resource_version,
        "Service untouched"
    );
    let dep_after = deployments.get("podinfo").await?;
    assert_eq!(
        dep_after.metadata.generation, dep_before.metadata.generation,
        "Deployment spec untouched"
    );

    // 4. An unreachable Git URL: the GitRepository is Ready=False, nothing is deleted.
    let patch = serde_json::json!({"spec": {"url": "http://127.0.0.1:1/fleet.git"}});
    w.repositories()
        .patch("fleet", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    wait::until(
        &w.repositories(),
        "fleet",
        TIMEOUT,
        "GitRepository Ready=False",
        |r| {
            r.status.as_ref().is_some_and(|s| {
                !is_ready(&s.conditions) && s.observed_generation == r.metadata.generation
            })
        },
    )
    .await?;
    let now = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: now}}});
    w.kustomizations()
        .patch("app", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    wait::until(
        &w.kustomizations(),
        "app",
        TIMEOUT,
        "the requested reconcile to be handled",
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(now.as_str())
        },
    )
    .await?;
    assert!(
        deployments.get_opt("podinfo").await?.is_some(),
        "Deployment kept"
    );
    assert!(services.get_opt("podinfo").await?.is_some(), "Service kept");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_overlay_reconciles_to_ready() -> Result<()> {
    let w = World::start(&fixtures().join("deploy"), "deploy").await?;
    w.create("./deploy/overlays/production", None).await?;
    let ks = w.ready_kustomization().await?;
    let ids = inventory_ids(&ks);
    assert_eq!(ids.len(), 25, "{ids:#?}");
    assert!(ids.contains("_production__Namespace"), "{ids:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_waits_until_the_dependency_is_ready() -> Result<()> {
    let w = World::start(&fixtures().join("kustomize"), "kustomize").await?;
    w.repo.write(
        "infra/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n",
    )?;
    w.repo.commit("add infra")?;
    // `app` needs `infra`, which does not exist yet: DependencyNotReady, nothing applied.
    w.create_source().await?;
    w.create_kustomization("app", "./kustomize", Some("apps"), &["infra"])
        .await?;
    let ks = wait::until(
        &w.kustomizations(),
        "app",
        TIMEOUT,
        "DependencyNotReady",
        |k| {
            k.status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, kind::READY))
                .is_some_and(|c| c.reason == "DependencyNotReady")
        },
    )
    .await?;
    let message = find_condition(&ks.status.unwrap_or_default().conditions, kind::READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    // kustomize-controller's words, then the API server's answer to the get.
    assert_eq!(
        message,
        "dependency 'flux-system/infra' not found: \
         kustomizations.kustomize.toolkit.fluxcd.io \"infra\" not found"
    );
    let deployments: Api<Deployment> = Api::namespaced(w.client(), "apps");
    assert!(
        deployments.get_opt("podinfo").await?.is_none(),
        "nothing applied before the dependency is Ready"
    );

    // Once `infra` (which creates the namespace) is Ready, `app` reconciles into it.
    w.create_kustomization("infra", "./infra", None, &[])
        .await?;
    w.ready_kustomization().await?;
    assert!(deployments.get_opt("podinfo").await?.is_some());
    Ok(())
}
