//! `gitops-operator`: serves Flux's `GitRepository`, `OCIRepository`, `Bucket` and `HelmChart`
//! (from `HelmRepository`, source.toolkit.fluxcd.io/v1) and `Kustomization` (kustomize.toolkit.fluxcd.io/v1) against the
//! current kubeconfig, until ctrl-c.
//!
//! ```text
//! gitops-operator [--storage-path DIR] [--storage-addr ADDR] [--storage-adv-addr ADDR] [--install-crds]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use gitops_core::ArtifactStore;
use gitops_examples::operator::{self, OperatorConfig};

#[derive(Parser)]
#[command(
    name = "gitops-operator",
    version,
    about = "Flux's GitRepository, OCIRepository, Bucket, HelmChart and Kustomization, served by the gitops toolkit"
)]
struct Args {
    /// Where artifacts are stored (Flux's `--storage-path`).
    #[arg(long, default_value = "/tmp/gitops-operator/artifacts")]
    storage_path: PathBuf,
    /// Where the artifact server listens (Flux's `--storage-addr`; `:PORT` is every interface).
    #[arg(long, default_value = ":9090")]
    storage_addr: String,
    /// The address written into `status.artifact.url` (Flux's `--storage-adv-addr`):
    /// `host[:port]` or an `http(s)://` base URL; default: the bound address.
    #[arg(long)]
    storage_adv_addr: Option<String>,
    /// Apply the GitRepository, OCIRepository, Bucket, HelmRepository, HelmChart and
    /// Kustomization CRDs first.
    #[arg(long)]
    install_crds: bool,
    /// Requeue delay while a dependency or source is not ready (Flux's `--requeue-dependency`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    requeue_dependency: Duration,
    /// Refuse Kustomizations whose `sourceRef` or `dependsOn` names another namespace (Flux's
    /// `--no-cross-namespace-refs`).
    #[arg(long)]
    no_cross_namespace_refs: bool,
    /// The ServiceAccount impersonated for Kustomizations without `spec.serviceAccountName`
    /// (Flux's `--default-service-account`).
    #[arg(long)]
    default_service_account: Option<String>,
    /// Allow `exec` users in the kubeconfigs of `spec.kubeConfig.secretRef`: the operator runs
    /// the command the Secret names (Flux's `--insecure-kubeconfig-exec`).
    #[arg(long)]
    insecure_kubeconfig_exec: bool,
    /// Allow `insecure-skip-tls-verify` in the kubeconfigs of `spec.kubeConfig.secretRef`
    /// (Flux's `--insecure-kubeconfig-tls`).
    #[arg(long)]
    insecure_kubeconfig_tls: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    gitops_core::schedule::parse_duration(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    gitops_examples::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let kube_config = kube::Config::infer().await.context("loading kubeconfig")?;
    let client = kube::Client::try_from(kube_config.clone()).context("building the client")?;
    if args.install_crds {
        gitops_examples::crds::install_crds(&client).await?;
    }
    let store = ArtifactStore::new(&args.storage_path)?;
    let config = OperatorConfig {
        dependency_requeue: args.requeue_dependency,
        storage_addr: args.storage_addr,
        storage_adv_addr: args.storage_adv_addr,
        no_cross_namespace_refs: args.no_cross_namespace_refs,
        default_service_account: args.default_service_account,
        kube_config: Some(kube_config),
        insecure_kubeconfig_exec: args.insecure_kubeconfig_exec,
        insecure_kubeconfig_tls: args.insecure_kubeconfig_tls,
        ..OperatorConfig::default()
    };
    tracing::info!(storage = %args.storage_path.display(), "serving GitRepository, OCIRepository, Bucket, HelmChart and Kustomization");
    operator::run(client, store, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
