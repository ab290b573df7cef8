//! Project workflows, so nobody memorises commands:
//!
//! - `cargo xtask testenv`: installs the test control plane (etcd, kube-apiserver,
//!   kube-controller-manager v1.20.2 built from Debian's `kubernetes` source package) into a cache
//!   folder when missing, and prints the folder (use it as `KUBEBUILDER_ASSETS`).
//! - `cargo xtask ci`: installs what is missing, then runs fmt, clippy and the whole test suite
//!   against the test control plane.
//! - `cargo xtask bench`: the criterion benches, then `kubectl kustomize` on the same overlay in
//!   the same run, printed as a ratio; then `bench sources` and `bench apply`.
//! - `cargo xtask bench sources`: only `sources-bench`: the Git source against `git clone --depth
//!   1` and the artifact store against `tar czf | sha256sum` on a generated 50 MB repository,
//!   printed as ratios.
//! - `cargo xtask bench apply`: only `apply-bench`: on a control plane it starts, server-side apply
//!   of 1,000 ConfigMaps by `gitops-apply` against `kubectl apply --server-side` (create, no-op
//!   reconcile, 10% changed), printed as ratios with our API requests per reconcile.
//! - `cargo xtask kustomize-compare DIR...`: every kustomization under the folders, built by
//!   `kubectl kustomize` and by `gitops build`: how many are byte-identical, and what differs.
//! - `cargo xtask demo`: the main job end to end: a local control plane, a Git server over smart
//!   HTTP, the operator reconciling podinfo, then a prune.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod compare;

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "testenv" => {
            let dir = ensure_testenv()?;
            println!("{}", dir.display());
            Ok(())
        }
        "ci" => ci(),
        "demo" => demo(),
        "bench" => match std::env::args().nth(2).as_deref() {
            None => bench(),
            Some("sources") => bench_sources(),
            Some("apply") => bench_apply(),
            Some(other) => {
                bail!("unknown bench {other:?}: expected `cargo xtask bench [sources|apply]`")
            }
        },
        "kustomize-compare" => {
            let roots: Vec<PathBuf> = std::env::args().skip(2).map(PathBuf::from).collect();
            if roots.is_empty() {
                bail!("usage: cargo xtask kustomize-compare DIR...");
            }
            run(cargo().args([
                "build",
                "--release",
                "-q",
                "-p",
                "gitops-examples",
                "--bin",
                "gitops",
            ]))?;
            compare::compare(&target_dir().join("release/gitops"), &roots)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <testenv|ci|demo|bench [sources|apply]|kustomize-compare DIR...>"
            );
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The assets folder: `KUBEBUILDER_ASSETS` when it holds the binaries, else the cache folder
/// (`$XDG_CACHE_HOME` or `~/.cache`)/gitops-testenv/k8s-1.20.2, built there when missing.
fn ensure_testenv() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from)
        && dir.join("kube-apiserver").is_file()
        && dir.join("etcd").exists()
    {
        return Ok(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    let dir = cache.join("gitops-testenv").join("k8s-1.20.2");
    run(Command::new("bash")
        .arg(root().join("xtask/scripts/install-testenv.sh"))
        .arg(&dir))?;
    Ok(dir)
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// `CARGO_TARGET_DIR`, or the workspace's `target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Debian packages the tests use besides the control plane: git (with git-http-backend and
/// git-daemon), gpg (signed commits and tags), openssl (service-account keys), docker-registry (the OCI registry of the OCI
/// source tests) and apache2-utils (`htpasswd` for its basic auth); PyPI's moto
/// (`moto_server`, the S3 API of the Bucket source tests, also serving the GCS XML API requests
/// of the `gcp` provider tests); and npm's Azurite (`azurite-blob`, the Azure Blob emulator of
/// the `azure` provider tests; npm from Debian when missing).
fn ensure_packages() -> Result<()> {
    ensure_apt_packages()?;
    if !has_command("moto_server") {
        run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "moto[server]==5.2.5",
        ]))?;
    }
    if !has_command("azurite-blob") {
        let mut npm = sudo();
        npm.extend([
            "npm",
            "install",
            "-g",
            "--no-fund",
            "--no-audit",
            "azurite@3.37.0",
        ]);
        run(Command::new(npm[0]).args(&npm[1..]))?;
    }
    Ok(())
}

/// `["sudo"]` unless running as root.
fn sudo() -> Vec<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root { vec![] } else { vec!["sudo"] }
}

fn has_command(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin} >/dev/null"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn ensure_apt_packages() -> Result<()> {
    let missing: Vec<&str> = [
        ("git", "git"),
        ("openssl", "openssl"),
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        // GnuPG signs the commits and tags of the git-verify tests (keys live in its agent).
        ("gpg", "gpg"),
        ("gpg-agent", "gpg-agent"),
        // An absolute path: /usr/sbin is not on every user's PATH.
        ("/usr/sbin/sshd", "openssh-server"),
        // For Azurite (installed with npm below).
        ("npm", "npm"),
    ]
    .into_iter()
    .filter(|(bin, _)| !has_command(bin))
    .map(|(_, pkg)| pkg)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = sudo();
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.clone();
        all.push("apt-get");
        all.extend_from_slice(args);
        run(Command::new(all[0])
            .args(&all[1..])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing);
    apt(&args)
}

fn ci() -> Result<()> {
    ensure_packages()?;
    let assets = ensure_testenv()?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "-j",
        "2",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args([
            "test",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
            "-j",
            "2",
        ])
        .env("KUBEBUILDER_ASSETS", &assets)
        // Each integration test starts its own control plane; two at a time fit 2 cores.
        .env("RUST_TEST_THREADS", "2"))?;
    Ok(())
}

fn demo() -> Result<()> {
    ensure_packages()?;
    let assets = ensure_testenv()?;
    run(cargo()
        .args([
            "run",
            "--quiet",
            "-j",
            "2",
            "-p",
            "gitops-examples",
            "--bin",
            "demo",
        ])
        .env("KUBEBUILDER_ASSETS", &assets))
}

/// Runs the criterion benches, then times `kubectl kustomize` on the overlay the kustomize bench
/// builds and prints how many times faster the in-process build is; then runs
/// `benches/scripts/kustomize-large.sh` (`gitops build` against `kubectl kustomize` on a large
/// generated overlay, with peak memory); then [`bench_sources`] and [`bench_apply`].
fn bench() -> Result<()> {
    run(cargo().args(["bench", "-p", "gitops-benches"]))?;
    let overlay = root().join("../shared/fixtures/podinfo-k8s120/deploy/overlays/production");
    let runs = 20;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&overlay)
            .output()
            .context("running kubectl kustomize")?;
        if !out.status.success() {
            bail!(
                "kubectl kustomize failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let kubectl_ns = start.elapsed().as_nanos() as f64 / f64::from(runs);
    let target = target_dir();
    let estimates =
        target.join("criterion/kustomize_build_yaml_podinfo_production/new/estimates.json");
    let json = std::fs::read_to_string(&estimates)
        .with_context(|| format!("reading {}", estimates.display()))?;
    let ours_ns = mean_ns(&json).context("no mean in criterion's estimates.json")?;
    println!(
        "kustomize build of podinfo production: gitops-render {:.2} ms, kubectl kustomize {:.2} ms (process included): {:.1}x",
        ours_ns / 1e6,
        kubectl_ns / 1e6,
        kubectl_ns / ours_ns
    );
    // Whole processes on a large generated overlay: time and peak memory, with the ratios.
    let script = root().join("benches/scripts/kustomize-large.sh");
    run(Command::new("bash").arg(script).current_dir(root()))?;
    bench_sources()?;
    bench_apply()
}

/// Builds `sources-bench` in release mode and runs it: on a generated ~50 MB repository served by
/// `git http-backend`, `GitSource::fetch` against `git clone --depth 1` and
/// `ArtifactStore::archive_dir` against `tar czf - | sha256sum`, printed as ratios (above 1 is
/// faster). Needs `git` and GNU `tar`.
fn bench_sources() -> Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-q",
        "-p",
        "gitops-benches",
        "--bin",
        "sources-bench",
    ]))?;
    run(Command::new(target_dir().join("release/sources-bench")).current_dir(root()))
}

/// Builds `apply-bench` in release mode and runs it with the test control plane installed
/// (`KUBEBUILDER_ASSETS`): it starts its own control plane, then times `SsaApplier` against
/// `kubectl apply --server-side -f` on 1,000 ConfigMaps (create, no-op reconcile, 10% changed)
/// and ends with the lines `create ratio: X`, `noop ratio: Y`, `changed ratio: Z` (kubectl's
/// time over ours), with our API requests per reconcile. Needs `kubectl`.
fn bench_apply() -> Result<()> {
    let assets = ensure_testenv()?;
    run(cargo().args([
        "build",
        "--release",
        "-q",
        "-p",
        "gitops-benches",
        "--bin",
        "apply-bench",
    ]))?;
    run(Command::new(target_dir().join("release/apply-bench"))
        .current_dir(root())
        .env("KUBEBUILDER_ASSETS", &assets))
}

/// `mean.point_estimate` from criterion's estimates.json, without a JSON dependency in xtask.
fn mean_ns(json: &str) -> Option<f64> {
    let after = &json[json.find("\"mean\"")?..];
    let after = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = after.find([',', '}'])?;
    after[..end].trim().parse().ok()
}
