//! The `gitops-operator` binary as a process, against a real API server through a kubeconfig.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use gitops_core::condition::is_ready;
use gitops_examples::crds::Kustomization;
use gitops_examples::gitrepo::LocalRepo;
use gitops_examples::wait;
use gitops_testenv::{GitHttpServer, TestEnv};
use kube::api::{Api, PostParams};

/// Kills the child on drop, so a failed assertion does not leave the operator running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_installs_crds_and_reconciles() -> Result<()> {
    gitops_examples::install_crypto_provider();
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await?;
    let tmp = tempfile::tempdir()?;
    let kubeconfig = tmp.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig)?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/podinfo-k8s120/kustomize");
    let repo = LocalRepo::create(tmp.path(), "podinfo", &fixtures, "kustomize")?;
    let git = GitHttpServer::start(&repo.repos_root).await?;

    let _operator = Child(
        Command::new(env!("CARGO_BIN_EXE_gitops-operator"))
            .args([
                "--install-crds",
                "--requeue-dependency",
                "1s",
                "--storage-addr",
                "127.0.0.1:0",
                "--storage-path",
            ])
            .arg(tmp.path().join("artifacts"))
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // The CRDs appear once the operator has installed them; create the objects then.
    let manifests = [
        serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "podinfo", "namespace": "default"},
            "spec": {"url": format!("{}/podinfo.git", git.url()), "ref": {"branch": "main"}, "interval": "1m"}
        }),
        serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "podinfo", "namespace": "default"},
            "spec": {"interval": "5m", "path": "./kustomize", "prune": true,
                     "sourceRef": {"kind": "GitRepository", "name": "podinfo"}}
        }),
    ];
    let kss: Api<Kustomization> = Api::namespaced(env.client(), "default");
    let repos: Api<gitops_examples::crds::GitRepository> = Api::namespaced(env.client(), "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    create_when_served(&repos, manifests[0].clone(), deadline).await?;
    create_when_served(&kss, manifests[1].clone(), deadline).await?;
    let ks = wait::until(
        &kss,
        "podinfo",
        Duration::from_secs(120),
        "Kustomization Ready",
        |k| k.status.as_ref().is_some_and(|s| is_ready(&s.conditions)),
    )
    .await?;
    let inventory = ks.status.and_then(|s| s.inventory).unwrap_or_default();
    assert_eq!(inventory.len(), 3);
    Ok(())
}

/// Creates the object once its CRD is served (the operator installs the CRDs one after the
/// other, so each kind may appear later than the previous one), retrying until `deadline`.
async fn create_when_served<K>(
    api: &Api<K>,
    manifest: serde_json::Value,
    deadline: tokio::time::Instant,
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(manifest)?;
    loop {
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("CRD not served yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
