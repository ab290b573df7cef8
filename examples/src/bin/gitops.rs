//! `gitops`: build and reconcile from a terminal.
//!
//! ```text
//! gitops build <dir>                      # prints what `kubectl kustomize <dir>` prints
//! gitops reconcile --url <git url> [--branch B|--tag T|--semver R|--commit C] [--path P] [--prune]
//! gitops push artifact oci://HOST/REPO:TAG --path DIR --source URL --revision REV [--insecure] [--creds user:pass]
//! gitops pull artifact oci://HOST/REPO:TAG --output DIR [--insecure] [--creds user:pass]
//! ```
//! `push artifact` / `pull artifact` work as `flux push artifact` / `flux pull artifact`: the
//! folder becomes one Flux content layer with the source and revision annotations; `push` prints
//! the manifest digest, `pull` extracts the verified layer and prints the digest.
//! `reconcile` does one reconcile against the current kubeconfig and prints the change set. The
//! inventory is kept in the ConfigMap `gitops-inventory-<name>` (namespace `--namespace`), so a
//! later `--prune` run deletes what left Git.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gitops_apply::SsaApplier;
use gitops_core::pipeline::{ApplySpec, OwnerLabels, Reconcile};
use gitops_core::{ArtifactKey, ArtifactStore, Inventory, Source};
use gitops_render::KustomizeRenderer;
use gitops_sources::git::{GitAuth, GitReference, GitRepositorySpec, GitSource};
use gitops_sources::oci::{self, OciAuth};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

#[derive(Parser)]
#[command(
    name = "gitops",
    version,
    about = "Build and reconcile GitOps repositories the way Flux does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a folder and print the YAML exactly as `kubectl kustomize` does.
    Build {
        /// The folder (with or without kustomization.yaml).
        dir: PathBuf,
    },
    /// One reconcile of a Git repository path against the current kubeconfig.
    Reconcile(Box<ReconcileArgs>),
    /// Push to an OCI registry (as `flux push`).
    #[command(subcommand)]
    Push(PushCommand),
    /// Pull from an OCI registry (as `flux pull`).
    #[command(subcommand)]
    Pull(PullCommand),
}

#[derive(Subcommand)]
enum PushCommand {
    /// Pack a folder and push it as a Flux artifact; prints the manifest digest.
    Artifact(PushArtifactArgs),
}

#[derive(Subcommand)]
enum PullCommand {
    /// Pull a Flux artifact and extract it into a folder; prints the manifest digest.
    Artifact(PullArtifactArgs),
}

#[derive(clap::Args)]
struct PushArtifactArgs {
    /// `oci://HOST/REPO:TAG` (tag `latest` when omitted).
    url: String,
    /// The folder to pack.
    #[arg(long)]
    path: PathBuf,
    /// Where the content comes from (annotation `org.opencontainers.image.source`).
    #[arg(long)]
    source: String,
    /// Its revision, e.g. `main@sha1:<hex>` (annotation `org.opencontainers.image.revision`).
    #[arg(long)]
    revision: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
struct PullArtifactArgs {
    /// `oci://HOST/REPO:TAG` (tag `latest` when omitted).
    url: String,
    /// The folder to extract into (created when missing).
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
struct RegistryArgs {
    /// Use plain HTTP instead of HTTPS.
    #[arg(long)]
    insecure: bool,
    /// Basic auth credentials, `user:password`.
    #[arg(long)]
    creds: Option<String>,
}

impl RegistryArgs {
    fn auth(&self) -> Result<OciAuth> {
        match &self.creds {
            None => Ok(OciAuth::Anonymous),
            Some(c) => {
                let (username, password) =
                    c.split_once(':').context("--creds must be user:password")?;
                Ok(OciAuth::Basic {
                    username: username.to_string(),
                    password: password.to_string(),
                })
            }
        }
    }
}

#[derive(clap::Args)]
struct ReconcileArgs {
    /// Repository URL (http(s)://, git://, file://).
    #[arg(long)]
    url: String,
    /// Branch to follow.
    #[arg(long, group = "reference")]
    branch: Option<String>,
    /// Tag to check out.
    #[arg(long, group = "reference")]
    tag: Option<String>,
    /// Semver range over tags (newest match).
    #[arg(long, group = "reference")]
    semver: Option<String>,
    /// Exact commit.
    #[arg(long, group = "reference")]
    commit: Option<String>,
    /// Folder inside the repository.
    #[arg(long, default_value = "./")]
    path: String,
    /// Delete objects that left the repository since the last run.
    #[arg(long)]
    prune: bool,
    /// Name of this reconcile unit (owner label value, inventory name).
    #[arg(long, default_value = "gitops")]
    name: String,
    /// Namespace of the inventory ConfigMap and owner label value.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Namespace set on every namespaced object.
    #[arg(long)]
    target_namespace: Option<String>,
    /// HTTP basic auth user name (password from GITOPS_GIT_PASSWORD).
    #[arg(long)]
    username: Option<String>,
    /// Artifact store folder.
    #[arg(long, default_value = "/tmp/gitops-cli-artifacts")]
    store: PathBuf,
    /// Field manager of server-side apply.
    #[arg(long, default_value = "gitops")]
    field_manager: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    gitops_examples::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Build { dir } => {
            let yaml = KustomizeRenderer::new()
                .build_yaml(&dir)
                .with_context(|| format!("building {}", dir.display()))?;
            print!("{yaml}");
            Ok(())
        }
        Command::Reconcile(args) => reconcile(*args).await,
        Command::Push(PushCommand::Artifact(args)) => {
            let digest = oci::push_artifact(
                &args.url,
                &args.path,
                &args.source,
                &args.revision,
                &args.registry.auth()?,
                args.registry.insecure,
            )
            .await?;
            eprintln!("pushed {} to {}", args.path.display(), args.url);
            println!("{digest}");
            Ok(())
        }
        Command::Pull(PullCommand::Artifact(args)) => {
            let pulled = oci::pull_artifact(
                &args.url,
                &args.output,
                &args.registry.auth()?,
                args.registry.insecure,
            )
            .await?;
            for (k, v) in &pulled.annotations {
                eprintln!("{k}: {v}");
            }
            eprintln!("extracted {} to {}", args.url, args.output.display());
            println!("{}", pulled.digest);
            Ok(())
        }
    }
}

async fn reconcile(args: ReconcileArgs) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("loading kubeconfig")?;
    let store = ArtifactStore::new(&args.store)?;
    let auth = match args.username.clone() {
        Some(username) => GitAuth::Basic {
            username,
            password: std::env::var("GITOPS_GIT_PASSWORD").unwrap_or_default(),
        },
        None => GitAuth::None,
    };
    let spec = GitRepositorySpec {
        url: args.url.clone(),
        reference: Some(GitReference {
            branch: args.branch,
            tag: args.tag,
            semver: args.semver,
            name: None,
            commit: args.commit,
        }),
        timeout: Some(Duration::from_secs(60)),
        ignore: None,
        ..Default::default()
    };
    let source = GitSource::new(
        ArtifactKey::new("GitRepository", &args.namespace, &args.name)?,
        spec,
        auth,
    )?;
    let fetched = source.fetch(&store, None).await?;
    let artifact = fetched.artifact().clone();
    eprintln!("fetched revision {}", artifact.revision);

    let inventories: Api<ConfigMap> = Api::namespaced(client.clone(), &args.namespace);
    let cm_name = format!("gitops-inventory-{}", args.name);
    let previous: Inventory = match inventories.get_opt(&cm_name).await? {
        Some(cm) => cm
            .data
            .and_then(|d| d.get("inventory.json").cloned())
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .with_context(|| format!("ConfigMap {}/{cm_name}: inventory.json", args.namespace))?
            .unwrap_or_default(),
        None => Inventory::default(),
    };
    let applier = SsaApplier::new(client.clone()).with_field_manager(&args.field_manager);
    let outcome = Reconcile {
        store: &store,
        artifact: &artifact,
        spec: &ApplySpec {
            path: args.path.clone(),
            prune: args.prune,
            target_namespace: args.target_namespace.clone(),
            ..Default::default()
        },
        owner: &OwnerLabels::flux(&args.namespace, &args.name),
        renderer: Arc::new(KustomizeRenderer::new()),
        applier: &applier,
        previous: &previous,
        timeout: Duration::from_secs(300),
    }
    .run()
    .await;
    let save = async |inventory: &Inventory| -> anyhow::Result<()> {
        let cm = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": cm_name, "namespace": args.namespace},
            "data": {"inventory.json": serde_json::to_string(inventory)?, "revision": artifact.revision.to_string()},
        });
        inventories
            .patch(
                &cm_name,
                &PatchParams::apply(&args.field_manager).force(),
                &Patch::Apply(&cm),
            )
            .await?;
        Ok(())
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(failure) => {
            // Applied but not fully pruned: record what is on the cluster now (the applied
            // objects and the stale ones still there), so nothing is orphaned.
            if let Some(inventory) = &failure.inventory {
                save(inventory).await?;
            }
            return Err(failure.error.into());
        }
    };
    save(&outcome.inventory).await?;
    print!("{}", outcome.change_set);
    eprintln!("applied revision {}", artifact.revision);
    Ok(())
}
