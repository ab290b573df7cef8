//! The `gitops` binary: `build` against `kubectl kustomize`'s recorded output, and `reconcile`
//! against a real API server and a Git repository over smart HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use gitops_examples::gitrepo::LocalRepo;
use gitops_testenv::{GitHttpServer, TestEnv};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

fn gitops(args: &[&str], kubeconfig: Option<&Path>) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitops"));
    cmd.args(args);
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("run gitops");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `gitops` on a blocking thread (the test's runtime also serves the Git server).
async fn gitops_async(args: &[&str], kubeconfig: &Path) -> Result<(bool, String, String)> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let kc = kubeconfig.to_path_buf();
    let run = move || {
        gitops(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            Some(&kc),
        )
    };
    Ok(tokio::task::spawn_blocking(run).await?)
}

#[test]
fn build_prints_what_kubectl_kustomize_prints() {
    let dir = fixtures().join("podinfo-k8s120/deploy/overlays/production");
    let (ok, stdout, stderr) = gitops(&["build", dir.to_str().unwrap()], None);
    assert!(ok, "{stderr}");
    let expected = std::fs::read_to_string(
        fixtures().join("expected/podinfo-k8s120_deploy_overlays_production.yaml"),
    )
    .unwrap();
    assert!(stdout == expected, "output differs from kubectl kustomize");
}

#[test]
fn build_of_a_missing_folder_fails_with_its_name() {
    let (ok, _, stderr) = gitops(&["build", "/nonexistent/overlay"], None);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/overlay"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_applies_then_prunes_what_left_git() -> Result<()> {
    gitops_examples::install_crypto_provider();
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await?;
    let tmp = tempfile::tempdir()?;
    let kubeconfig = tmp.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig)?;
    let repo = LocalRepo::create(
        tmp.path(),
        "podinfo",
        &fixtures().join("podinfo-k8s120/kustomize"),
        "kustomize",
    )?;
    let git = GitHttpServer::start(&repo.repos_root).await?;
    let url = format!("{}/podinfo.git", git.url());
    let store = tmp.path().join("store");
    let args = [
        "reconcile",
        "--url",
        &url,
        "--branch",
        "main",
        "--path",
        "./kustomize",
        "--prune",
        "--target-namespace",
        "default",
        "--store",
        store.to_str().unwrap(),
    ];

    let (ok, stdout, stderr) = gitops_async(&args, &kubeconfig).await?;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "Service/default/podinfo created\nDeployment/default/podinfo created\nHorizontalPodAutoscaler/default/podinfo created\n"
    );

    repo.remove("kustomize/hpa.yaml")?;
    let k = repo
        .read("kustomize/kustomization.yaml")?
        .replace("  - hpa.yaml\n", "");
    repo.write("kustomize/kustomization.yaml", &k)?;
    let commit = repo.commit("drop the HPA")?;
    let (ok, stdout, stderr) = gitops_async(&args, &kubeconfig).await?;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "Service/default/podinfo unchanged\nDeployment/default/podinfo unchanged\nHorizontalPodAutoscaler/default/podinfo deleted\n"
    );
    assert!(stderr.contains(&format!("main@sha1:{commit}")), "{stderr}");
    Ok(())
}
