//! The world the operator end-to-end tests share: a control plane from `KUBEBUILDER_ASSETS` with
//! the CRDs installed, the `flux-system` namespace, and the operator running in the test process
//! with its artifact store in a temporary folder.

#![allow(dead_code)] // each test binary uses its own part of it

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use gitops_core::ArtifactStore;
use gitops_core::condition::is_ready;
use gitops_examples::crds::{Bucket, Kustomization};
use gitops_examples::operator::{self, OperatorConfig};
use gitops_examples::wait;
use gitops_testenv::{S3Server, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{Api, PostParams};

/// How long the tests wait for a condition.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The namespace of the Flux objects.
pub const NS: &str = "flux-system";

/// podinfo's manifests for Kubernetes 1.20, from the shared fixtures beside the project.
pub fn podinfo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/podinfo-k8s120/kustomize")
}

/// A control plane with the CRDs installed, the `flux-system` namespace, and the operator.
/// Dropping it stops the operator (the control plane stops with `env`).
pub struct World {
    pub env: TestEnv,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Scratch space; the operator's artifact store is `tmp/artifacts`.
    pub tmp: tempfile::TempDir,
}

impl World {
    pub async fn start() -> Result<World> {
        World::start_with(OperatorConfig {
            dependency_requeue: Duration::from_secs(1),
            ..OperatorConfig::default()
        })
        .await
    }

    /// [`World::start`] with the operator's settings; `kube_config` is set to the control
    /// plane's when `None`.
    pub async fn start_with(mut config: OperatorConfig) -> Result<World> {
        gitops_examples::install_crypto_provider();
        let env = TestEnv::start().await?;
        let tmp = tempfile::tempdir()?;
        gitops_examples::crds::install_crds(&env.client()).await?;
        let namespaces: Api<Namespace> = Api::all(env.client());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": NS}}))?,
            )
            .await?;
        let store = ArtifactStore::new(tmp.path().join("artifacts"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let env_client = env.client();
        config.kube_config.get_or_insert_with(|| env.kube_config());
        tokio::spawn(async move {
            if let Err(e) = operator::run(env_client, store, config, async move {
                let _ = stopped.await;
            })
            .await
            {
                panic!("operator: {e}");
            }
        });
        Ok(World {
            env,
            stop: Some(stop),
            tmp,
        })
    }

    pub fn client(&self) -> kube::Client {
        self.env.client()
    }

    /// The operator's artifact store (the same folder, opened again).
    pub fn store(&self) -> Result<ArtifactStore> {
        Ok(ArtifactStore::new(self.tmp.path().join("artifacts"))?)
    }

    /// Creates a namespaced object in [`NS`] from JSON.
    pub async fn create<K>(&self, value: serde_json::Value) -> Result<()>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client(), NS);
        api.create(&PostParams::default(), &serde_json::from_value(value)?)
            .await?;
        Ok(())
    }

    /// A pruning Kustomization `name` of the source `kind`/`source`, reconciled every
    /// `interval`, applying the artifact's root into `default`.
    pub async fn create_kustomization(
        &self,
        name: &str,
        kind: &str,
        source: &str,
        interval: &str,
    ) -> Result<()> {
        self.create::<Kustomization>(serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"interval": interval, "path": "./", "prune": true, "targetNamespace": "default",
                     "sourceRef": {"kind": kind, "name": source}}
        }))
        .await
    }

    /// Serves podinfo's manifests from the bucket `podinfo` of `s3` and creates the Bucket
    /// `podinfo` reading it with an access key Secret (`bucket-auth`), polled every `interval`
    /// with `timeout`.
    pub async fn create_podinfo_bucket(
        &self,
        s3: &S3Server,
        interval: &str,
        timeout: &str,
    ) -> Result<()> {
        s3.create_bucket("podinfo").await?;
        for entry in std::fs::read_dir(podinfo())? {
            let path = entry?.path();
            let key = path.file_name().unwrap_or_default().to_string_lossy();
            s3.put_object("podinfo", &key, &std::fs::read(&path)?)
                .await?;
        }
        self.create::<Secret>(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bucket-auth", "namespace": NS},
            "stringData": {"accesskey": "test", "secretkey": "test-secret"}
        }))
        .await?;
        self.create::<Bucket>(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket",
            "metadata": {"name": "podinfo", "namespace": NS},
            "spec": {"provider": "generic", "bucketName": "podinfo", "endpoint": s3.url(),
                     "insecure": true, "interval": interval, "timeout": timeout,
                     "secretRef": {"name": "bucket-auth"}}
        }))
        .await
    }

    /// Waits until the Kustomization `name` is Ready at its generation; returns it.
    pub async fn ready_kustomization(&self, name: &str) -> Result<Kustomization> {
        let api: Api<Kustomization> = Api::namespaced(self.client(), NS);
        wait::until(&api, name, TIMEOUT, "Kustomization Ready", |k| {
            k.status.as_ref().is_some_and(|s| {
                is_ready(&s.conditions) && s.observed_generation == k.metadata.generation
            })
        })
        .await
    }

    /// The podinfo Deployment and Service exist in `default` and are not being deleted.
    pub async fn assert_podinfo_applied(&self) -> Result<()> {
        let deployments: Api<Deployment> = Api::namespaced(self.client(), "default");
        let services: Api<Service> = Api::namespaced(self.client(), "default");
        let d = deployments.get_opt("podinfo").await?;
        assert!(
            d.is_some_and(|d| d.metadata.deletion_timestamp.is_none()),
            "Deployment podinfo"
        );
        let s = services.get_opt("podinfo").await?;
        assert!(
            s.is_some_and(|s| s.metadata.deletion_timestamp.is_none()),
            "Service podinfo"
        );
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The Kustomization's `status.lastAppliedRevision` (empty when unset).
pub fn last_applied(k: &Kustomization) -> String {
    k.status
        .as_ref()
        .and_then(|s| s.last_applied_revision.clone())
        .unwrap_or_default()
}

/// Waits until the Kustomization `name` is gone (its finalizer has run), polling every 250 ms;
/// an error once `timeout` has passed.
pub async fn wait_gone(api: &Api<Kustomization>, name: &str, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while api.get_opt(name).await?.is_some() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "Kustomization {name} still exists after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
