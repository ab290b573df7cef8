//! `apply-bench`: server-side apply of 1,000 ConfigMaps by `gitops-apply` against `kubectl apply
//! --server-side -f` of the same objects, on a local control plane started by the tool
//! (`gitops_testenv::TestEnv`, without controller-manager and node simulator, so nothing else
//! talks to the API server).
//!
//! Each run takes a fresh pair of namespaces (one for us, one for kubectl, so neither sees the
//! other's objects) and times three phases, ours and kubectl's in turn:
//!
//! - **create**: the 1,000 ConfigMaps into the empty namespace;
//! - **noop**: the same objects again (a reconcile where nothing changed);
//! - **changed**: the same objects with 10% of them (every tenth) changed.
//!
//! Ours is `SsaApplier::apply_all_staged` of a fresh `SsaApplier::new(client)` (the defaults the
//! CLI and the operator use), checked through its change set (1,000 created, then 1,000
//! unchanged, then 100 configured and 900 unchanged). kubectl's is the whole process
//! (`kubectl apply --server-side --field-manager=gitops-bench-kubectl -f FILE`, discovery cached
//! in a private `--cache-dir`). Run 0 warms up and is not counted; the tool prints the medians of
//! `RUNS` runs, the ratios `kubectl time / our time` (above 1 we are faster) as the lines
//! `create ratio: X`, `noop ratio: Y`, `changed ratio: Z`, and the API requests each of our
//! reconciles sent, per verb (counted by a tower layer on the `kube::Client`), and how long one
//! LIST of the 1,000 live ConfigMaps takes (what reading the whole live state in one request
//! would cost a reconcile).
//!
//! Then, for comparison, the same phases with `SsaApplier::with_dry_run_creates(false)` (new
//! objects created without a dry run first, one request each instead of two), and with
//! `SsaApplier::with_concurrency(N)` for each N in `CONCURRENCY` (comma-separated, default
//! `16,64`; empty to skip). The ratio lines of the defaults come last.
//!
//! Usage: `apply-bench` (env: `OBJECTS=1000`, `RUNS=3`, `CONCURRENCY=16,64`); `cargo xtask bench
//! apply` builds it in release mode and runs it. Needs `kubectl` on `PATH` and the test control
//! plane (`cargo xtask testenv`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use gitops_apply::SsaApplier;
use gitops_core::{Action, ChangeSet, Object};
use gitops_testenv::TestEnv;
use gitops_testenv::requests::RequestLog;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

/// kubectl's field manager (ours is `SsaApplier`'s default, `gitops`).
const KUBECTL_FIELD_MANAGER: &str = "gitops-bench-kubectl";
/// One object in this many is changed in the `changed` phase.
const CHANGED_EVERY: usize = 10;

fn main() -> Result<()> {
    let objects: usize = env_number("OBJECTS", 1000)?;
    let runs: usize = env_number("RUNS", 3)?;
    ensure!(runs > 0, "RUNS must be at least 1");
    ensure!(objects > 0, "OBJECTS must be at least 1");
    let concurrency: Vec<usize> = std::env::var("CONCURRENCY")
        .unwrap_or_else(|_| "16,64".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .context("CONCURRENCY: a comma-separated list of numbers")
        })
        .collect::<Result<_>>()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    let started = Instant::now();
    let env = runtime
        .block_on(
            TestEnv::builder()
                .controller_manager(false)
                .node_simulator(false)
                .start(),
        )
        .context("starting the test control plane")?;
    let work = tempfile::Builder::new()
        .prefix("apply-bench-")
        .tempdir()
        .context("creating a temporary folder")?;
    let kubeconfig = work.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig)
        .context("writing the kubeconfig")?;
    let kubectl = Kubectl {
        kubeconfig,
        cache_dir: work.path().join("kubectl-cache"),
    };
    println!(
        "control plane up in {:.1} s; {}",
        started.elapsed().as_secs_f64(),
        kubectl.version()?
    );

    let requests = RequestLog::new();
    let client = runtime
        .block_on(async { requests.client(env.kube_config()) })
        .context("building the counting client")?;
    let bench = Bench {
        runtime: &runtime,
        client,
        requests,
        kubectl: &kubectl,
        work: work.path(),
        objects,
        runs,
    };

    let default = bench.run(None, true, true)?;
    default.print(
        "SsaApplier::new (defaults: concurrency 16, dry run of every object)",
        true,
    );
    let ratios = |r: &Results| {
        format!(
            "create {:.2}, noop {:.2}, changed {:.2}",
            r.ratio(&default, Phase::Create),
            r.ratio(&default, Phase::Noop),
            r.ratio(&default, Phase::Changed)
        )
    };
    let without = bench.run(None, false, false)?;
    without.print("SsaApplier::new().with_dry_run_creates(false)", false);
    println!(
        "  ratios without the dry run of new objects: {}",
        ratios(&without)
    );
    for n in concurrency {
        let r = bench.run(Some(n), true, false)?;
        r.print(&format!("SsaApplier::with_concurrency({n})"), false);
        println!("  ratios with concurrency {n}: {}", ratios(&r));
    }
    env.check()
        .context("the control plane died during the bench")?;
    // The defaults' ratios, last.
    println!(
        "create ratio: {:.2}",
        default.ratio(&default, Phase::Create)
    );
    println!("noop ratio: {:.2}", default.ratio(&default, Phase::Noop));
    println!(
        "changed ratio: {:.2}",
        default.ratio(&default, Phase::Changed)
    );
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Create,
    Noop,
    Changed,
}

const PHASES: [Phase; 3] = [Phase::Create, Phase::Noop, Phase::Changed];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Noop => "noop",
            Phase::Changed => "changed",
        }
    }
}

struct Bench<'a> {
    runtime: &'a tokio::runtime::Runtime,
    client: kube::Client,
    /// The requests `client` sent, counted per verb (`GET`, `PATCH`, `PATCH dry-run`, ...).
    requests: RequestLog,
    kubectl: &'a Kubectl,
    work: &'a Path,
    objects: usize,
    runs: usize,
}

/// Medians per phase, and the requests of the last counted run.
struct Results {
    ours: [Duration; 3],
    kubectl: Option<[Duration; 3]>,
    requests: [BTreeMap<String, u64>; 3],
    /// One LIST of our namespace's live ConfigMaps after the no-op phase (median).
    list: Duration,
}

impl Results {
    /// kubectl's median over ours for `phase`, kubectl's medians taken from `with_kubectl`.
    fn ratio(&self, with_kubectl: &Results, phase: Phase) -> f64 {
        let i = phase as usize;
        let kubectl = with_kubectl.kubectl.map_or(Duration::ZERO, |k| k[i]);
        kubectl.as_secs_f64() / self.ours[i].as_secs_f64()
    }

    fn print(&self, label: &str, with_kubectl: bool) {
        println!("{label}:");
        for phase in PHASES {
            let i = phase as usize;
            let requests = &self.requests[i];
            let total: u64 = requests.values().sum();
            let by_verb = requests
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let kubectl = match (with_kubectl, self.kubectl) {
                (true, Some(k)) => format!(", kubectl {:>7.1} ms", k[i].as_secs_f64() * 1e3),
                _ => String::new(),
            };
            println!(
                "  {:<8} ours {:>7.1} ms{kubectl}; our API requests per reconcile: {total} ({by_verb})",
                phase.name(),
                self.ours[i].as_secs_f64() * 1e3,
            );
        }
        println!(
            "  list     one LIST of the live ConfigMaps: {:.1} ms (reading all live state in one request)",
            self.list.as_secs_f64() * 1e3
        );
    }
}

impl Bench<'_> {
    /// Runs 0..=runs (run 0 not counted) of the three phases with an applier of `concurrency`
    /// (`None`: the default) and [`SsaApplier::with_dry_run_creates`]`(dry_run_creates)`;
    /// kubectl too when `with_kubectl`.
    fn run(
        &self,
        concurrency: Option<usize>,
        dry_run_creates: bool,
        with_kubectl: bool,
    ) -> Result<Results> {
        let mut tag = concurrency.map_or_else(|| "d".to_string(), |n| format!("c{n}"));
        if !dry_run_creates {
            tag.push_str("-nodry");
        }
        let mut ours: [Vec<Duration>; 3] = Default::default();
        let mut theirs: [Vec<Duration>; 3] = Default::default();
        let mut requests: [BTreeMap<String, u64>; 3] = Default::default();
        let mut lists = Vec::new();
        for run in 0..=self.runs {
            let counted = run > 0;
            let our_ns = format!("ours-{tag}-{run}");
            let kubectl_ns = format!("kubectl-{tag}-{run}");
            self.runtime
                .block_on(create_namespace(&self.client, &our_ns))?;
            if with_kubectl {
                self.runtime
                    .block_on(create_namespace(&self.client, &kubectl_ns))?;
            }
            // A fresh applier per run, as a fresh process would have (discovery not cached).
            let mut applier =
                SsaApplier::new(self.client.clone()).with_dry_run_creates(dry_run_creates);
            if let Some(n) = concurrency {
                applier = applier.with_concurrency(n);
            }
            for phase in PHASES {
                let i = phase as usize;
                let revision = if phase == Phase::Changed { 2 } else { 1 };
                let desired = config_maps(&our_ns, self.objects, revision);
                self.requests.clear();
                let t = Instant::now();
                let cs = self
                    .runtime
                    .block_on(applier.apply_all_staged(&desired))
                    .with_context(|| format!("SsaApplier::apply_all_staged ({})", phase.name()))?;
                let elapsed = t.elapsed();
                check_change_set(&cs, phase, self.objects)?;
                if counted {
                    ours[i].push(elapsed);
                    requests[i] = self.requests.counts_by_verb();
                }
                if phase == Phase::Noop {
                    // What reading the whole live state in one request costs.
                    let t = Instant::now();
                    let live = self
                        .runtime
                        .block_on(count_config_maps(&self.client, &our_ns))?;
                    lists.push(t.elapsed());
                    ensure!(live == self.objects, "{live} ConfigMaps in {our_ns}");
                }
                if with_kubectl {
                    let file = self
                        .work
                        .join(format!("{kubectl_ns}-{}.yaml", phase.name()));
                    write_yaml(&file, &config_maps(&kubectl_ns, self.objects, revision))?;
                    let t = Instant::now();
                    self.kubectl.apply(&file)?;
                    let elapsed = t.elapsed();
                    if counted {
                        theirs[i].push(elapsed);
                    }
                }
            }
            if with_kubectl && run == 0 {
                let live = self
                    .runtime
                    .block_on(count_config_maps(&self.client, &kubectl_ns))?;
                ensure!(
                    live == self.objects,
                    "kubectl left {live} ConfigMaps in {kubectl_ns}, expected {}",
                    self.objects
                );
            }
        }
        Ok(Results {
            ours: ours.map(median),
            kubectl: with_kubectl.then(|| theirs.map(median)),
            requests,
            list: median(lists),
        })
    }
}

/// The change set each phase must give: all created, all unchanged, every tenth configured.
fn check_change_set(cs: &ChangeSet, phase: Phase, objects: usize) -> Result<()> {
    ensure!(
        cs.entries.len() == objects,
        "{} entries in the change set, expected {objects}",
        cs.entries.len()
    );
    let count = |a: Action| cs.entries.iter().filter(|e| e.action == a).count();
    let changed = objects.div_ceil(CHANGED_EVERY);
    let (action, expected) = match phase {
        Phase::Create => (Action::Created, objects),
        Phase::Noop => (Action::Unchanged, objects),
        Phase::Changed => (Action::Configured, changed),
    };
    let got = count(action);
    ensure!(
        got == expected,
        "{}: {got} objects {action:?}, expected {expected}",
        phase.name()
    );
    Ok(())
}

/// `n` ConfigMaps `bench-0000`... in `namespace`, each with labels, an annotation and ~1 KB of
/// data; objects whose index is a multiple of [`CHANGED_EVERY`] carry `revision`, the others 1.
fn config_maps(namespace: &str, n: usize, revision: u32) -> Vec<Object> {
    let settings: String = (0..16)
        .map(|k| format!("setting.{k:02}=value-{k:02}-{}\n", "x".repeat(40)))
        .collect();
    (0..n)
        .map(|i| {
            let rev = if i % CHANGED_EVERY == 0 { revision } else { 1 };
            let v = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": format!("bench-{i:04}"),
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/name": "apply-bench", "app.kubernetes.io/instance": format!("bench-{}", i % 10)},
                    "annotations": {"gitops.example/source": "apply-bench"},
                },
                "data": {
                    "index": i.to_string(),
                    "revision": rev.to_string(),
                    "app.properties": settings,
                },
            });
            Object::try_from(v).expect("a mapping")
        })
        .collect()
}

/// Writes the objects as a multi-document YAML file (JSON documents are YAML).
fn write_yaml(path: &Path, objects: &[Object]) -> Result<()> {
    let mut text = String::new();
    for o in objects {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(o.as_map()).context("serialising an object")?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

async fn count_config_maps(client: &kube::Client, namespace: &str) -> Result<usize> {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&Default::default())
        .await
        .with_context(|| format!("listing ConfigMaps in {namespace}"))?;
    Ok(list.items.len())
}

struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
}

impl Kubectl {
    fn command(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir);
        c
    }

    fn version(&self) -> Result<String> {
        let out = Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .context("running kubectl version (is kubectl installed?)")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("kubectl")
            .trim()
            .to_string())
    }

    fn apply(&self, file: &Path) -> Result<()> {
        let out = self
            .command()
            .args([
                "apply",
                "--server-side",
                &format!("--field-manager={KUBECTL_FIELD_MANAGER}"),
                "-f",
            ])
            .arg(file)
            .output()
            .context("running kubectl apply")?;
        if !out.status.success() {
            bail!(
                "kubectl apply --server-side -f {} failed: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={s:?} is not a number")),
        Err(_) => Ok(default),
    }
}
