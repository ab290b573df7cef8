//! The main job end to end (`cargo xtask demo`): a local Kubernetes control plane, a Git
//! repository of podinfo's manifests served over smart HTTP, and the operator reconciling a Flux
//! `GitRepository` + `Kustomization` for it; then a commit deletes `hpa.yaml` and the prune shows.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use gitops_core::ArtifactStore;
use gitops_core::condition::is_ready;
use gitops_examples::crds::{GitRepository, Kustomization};
use gitops_examples::gitrepo::LocalRepo;
use gitops_examples::operator::{self, OperatorConfig, REQUESTED_AT, kustomization_rows, table};
use gitops_examples::wait;
use gitops_testenv::{GitHttpServer, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};

#[tokio::main]
async fn main() -> Result<()> {
    gitops_examples::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "warn,kube_client::client::builder=off,gitops_examples=info".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();

    println!(
        "==> starting a local control plane (etcd, kube-apiserver, kube-controller-manager, node simulator)"
    );
    let env = TestEnv::start()
        .await
        .context("starting the test control plane (run `cargo xtask testenv`)")?;
    let client = env.client();
    println!("    API server at {}", env.server_url());

    let tmp = tempfile::tempdir()?;
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/podinfo");
    let repo = LocalRepo::create(tmp.path(), "podinfo", &manifests, "kustomize")?;
    let git = GitHttpServer::start(&repo.repos_root).await?;
    let url = format!("{}/podinfo.git", git.url());
    println!("==> serving podinfo's manifests over smart HTTP at {url}");

    gitops_examples::crds::install_crds(&client).await?;
    let store = ArtifactStore::new(tmp.path().join("artifacts"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = OperatorConfig {
        dependency_requeue: Duration::from_secs(2),
        ..OperatorConfig::default()
    };
    let op = tokio::spawn(operator::run(client.clone(), store, config, async move {
        let _ = stopped.await;
    }));

    let ns = "flux-system";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), ns);
    let kss: Api<Kustomization> = Api::namespaced(client.clone(), ns);
    let gitrepo: GitRepository = serde_json::from_value(serde_json::json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "podinfo", "namespace": ns},
        "spec": {"url": url, "ref": {"branch": "main"}, "interval": "1m"}
    }))?;
    let ks: Kustomization = serde_json::from_value(serde_json::json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "podinfo", "namespace": ns},
        "spec": {"interval": "5m", "path": "./kustomize", "prune": true, "targetNamespace": "default",
                 "sourceRef": {"kind": "GitRepository", "name": "podinfo"}}
    }))?;
    repos.create(&PostParams::default(), &gitrepo).await?;
    kss.create(&PostParams::default(), &ks).await?;
    println!("==> created GitRepository and Kustomization flux-system/podinfo");

    let ready = wait::until(
        &kss,
        "podinfo",
        Duration::from_secs(120),
        "Kustomization podinfo Ready",
        |k| k.status.as_ref().is_some_and(|s| is_ready(&s.conditions)),
    )
    .await?;
    print_kustomizations(&kss).await?;
    print_inventory(&ready);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    wait::until(
        &deployments,
        "podinfo",
        Duration::from_secs(120),
        "Deployment podinfo Available",
        |d| {
            d.status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                >= 1
        },
    )
    .await?;
    println!("==> Deployment default/podinfo is Available (pods run on the simulated node)");

    let first = ready
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.clone())
        .unwrap_or_default();
    repo.remove("kustomize/hpa.yaml")?;
    let kustomization = repo
        .read("kustomize/kustomization.yaml")?
        .replace("  - hpa.yaml\n", "");
    repo.write("kustomize/kustomization.yaml", &kustomization)?;
    let commit = repo.commit("Remove the HorizontalPodAutoscaler")?;
    println!("==> pushed commit {commit}: deletes kustomize/hpa.yaml");
    let now = jiff::Timestamp::now().to_string();
    repos
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: now}}})),
        )
        .await?;
    let pruned = wait::until(
        &kss,
        "podinfo",
        Duration::from_secs(120),
        "the new revision to be applied",
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_applied_revision.as_deref())
                .is_some_and(|r| r != first && r.contains(&commit))
        },
    )
    .await?;
    print_kustomizations(&kss).await?;
    print_inventory(&pruned);
    let hpa = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "autoscaling",
        "v2beta2",
        "HorizontalPodAutoscaler",
    ));
    let hpas: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "default", &hpa);
    match hpas.get_opt("podinfo").await? {
        None => println!("==> HorizontalPodAutoscaler/default/podinfo was pruned"),
        Some(_) => anyhow::bail!("HorizontalPodAutoscaler/default/podinfo is still there"),
    }

    let _ = stop.send(());
    let _ = op.await;
    git.stop();
    env.stop();
    println!("==> done");
    Ok(())
}

async fn print_kustomizations(kss: &Api<Kustomization>) -> Result<()> {
    let items = kss.list(&Default::default()).await?.items;
    println!();
    print!(
        "{}",
        table(
            ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"],
            &kustomization_rows(&items)
        )
    );
    println!();
    Ok(())
}

fn print_inventory(ks: &Kustomization) {
    let entries = ks
        .status
        .as_ref()
        .and_then(|s| s.inventory.as_ref())
        .map(|i| i.entries.clone())
        .unwrap_or_default();
    println!("    inventory ({} objects):", entries.len());
    for e in entries {
        if let Some(id) = e.object_id() {
            println!("      {id} ({})", e.api_version().unwrap_or_default());
        }
    }
}
