//! [`TestEnv`]: etcd, kube-apiserver, kube-controller-manager and the node simulator.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::node_sim::NodeSimulator;
use crate::process::{Proc, run};
use crate::{Error, assets_dir};

/// How long [`TestEnvBuilder::start`] waits for the control plane by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The API server's process name in [`TestEnv::pids`].
const APISERVER: &str = "kube-apiserver";

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(100);

/// How often the watchdog looks for processes that died.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(500);

/// How many times a start is retried when a probed free port was taken by someone else before
/// the process bound it.
const PORT_RACE_ATTEMPTS: usize = 3;

/// Installs ring as the process's rustls crypto provider unless one is installed already
/// (kube's rustls client panics when several providers are linked and none is chosen).
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A local Kubernetes control plane for tests: etcd, kube-apiserver and (by default)
/// kube-controller-manager as child processes in a temporary folder, plus (by default) a
/// simulated node that runs every Pod.
///
/// Everything is stopped when the value is dropped, also while a failing test unwinds.
pub struct TestEnv {
    node_simulator: Option<NodeSimulator>,
    watchdog: JoinHandle<()>,
    /// etcd, kube-apiserver, kube-controller-manager: stopped in reverse order.
    procs: Arc<Mutex<Vec<Proc>>>,
    config: kube::Config,
    client: kube::Client,
    server_url: String,
    etcd_url: String,
    kubeconfig: String,
    /// The kube-apiserver binary and its flags, to start it again after a stop.
    apiserver: PathBuf,
    apiserver_args: Vec<String>,
    /// How many times kube-apiserver was started (names the log of each restart).
    apiserver_starts: AtomicUsize,
    /// The builder's start timeout, also the budget of [`TestEnv::start_apiserver`].
    timeout: Duration,
    dir: tempfile::TempDir,
}

/// Options for a [`TestEnv`]; from [`TestEnv::builder`].
#[derive(Debug, Clone)]
pub struct TestEnvBuilder {
    assets: Option<PathBuf>,
    controller_manager: bool,
    node_simulator: bool,
    timeout: Duration,
}

impl Default for TestEnvBuilder {
    fn default() -> Self {
        TestEnvBuilder {
            assets: None,
            controller_manager: true,
            node_simulator: true,
            timeout: DEFAULT_START_TIMEOUT,
        }
    }
}

impl TestEnvBuilder {
    /// Takes the binaries from this folder instead of [`assets_dir`].
    pub fn assets(mut self, dir: PathBuf) -> Self {
        self.assets = Some(dir);
        self
    }

    /// Whether to run kube-controller-manager (default `true`): Deployments get ReplicaSets and
    /// Pods, garbage collection and namespace deletion work. Without it, start is faster.
    pub fn controller_manager(mut self, on: bool) -> Self {
        self.controller_manager = on;
        self
    }

    /// Whether to run the node simulator (default `true`): a Ready Node named
    /// [`NODE_NAME`](crate::NODE_NAME) to which every Pod is bound and on which it is reported
    /// running and ready.
    pub fn node_simulator(mut self, on: bool) -> Self {
        self.node_simulator = on;
        self
    }

    /// How long to wait for the control plane to get ready (default
    /// [`DEFAULT_START_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the control plane and waits until the API server is ready.
    pub async fn start(self) -> Result<TestEnv, Error> {
        install_crypto_provider();
        let assets = match &self.assets {
            Some(dir) => dir.clone(),
            None => assets_dir()?,
        };
        let etcd = assets.join("etcd");
        let apiserver = assets.join("kube-apiserver");
        let controller_manager = assets.join("kube-controller-manager");
        for bin in [&etcd, &apiserver] {
            if !bin.is_file() {
                return Err(Error::MissingBinary { path: bin.clone() });
            }
        }
        if self.controller_manager && !controller_manager.is_file() {
            return Err(Error::MissingBinary {
                path: controller_manager,
            });
        }
        let started = Instant::now();
        let mut attempt = 1;
        let env = loop {
            match self.start_once(&assets).await {
                Ok(env) => break env,
                Err((e, lost_port_race)) if lost_port_race && attempt < PORT_RACE_ATTEMPTS => {
                    tracing::info!(error = %e, "a probed port was taken, retrying with new ports");
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        };
        tracing::info!(
            url = %env.server_url,
            elapsed = ?started.elapsed(),
            "test control plane ready"
        );
        Ok(env)
    }

    /// One start; on failure also says whether a process lost a port to someone else.
    async fn start_once(&self, assets: &Path) -> Result<TestEnv, (Error, bool)> {
        let deadline = Instant::now() + self.timeout;
        let plain = |e: Error| (e, false);
        let dir = tempfile::Builder::new()
            .prefix("gitops-testenv-")
            .tempdir()
            .map_err(|e| plain(Error::io("creating a temporary folder", e)))?;
        let d = dir.path();
        let [etcd_port, peer_port, api_port] = free_ports().map_err(plain)?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let server_url = format!("https://127.0.0.1:{api_port}");
        let mut procs = Vec::new();

        let etcd = Proc::spawn(
            "etcd",
            &assets.join("etcd"),
            &[
                format!("--data-dir={}", d.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            ],
            d.join("etcd.log"),
        )
        .map_err(plain)?;
        procs.push(etcd);

        // While etcd starts: the service-account key pair and the static token.
        let token = random_token();
        let setup = (|| -> Result<(), Error> {
            let certs = d.join("certs");
            std::fs::create_dir_all(&certs)
                .map_err(|e| Error::io(format!("creating {}", certs.display()), e))?;
            write(
                &d.join("tokens.csv"),
                &format!("{token},admin,admin,system:masters\n"),
            )?;
            run(Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(d.join("sa.key"))
                .arg("2048"))?;
            run(Command::new("openssl")
                .args(["rsa", "-pubout", "-in"])
                .arg(d.join("sa.key"))
                .arg("-out")
                .arg(d.join("sa.pub")))?;
            Ok(())
        })();
        setup.map_err(plain)?;

        wait_for_etcd(&mut procs[0], etcd_port, deadline, self.timeout).await?;

        let apiserver_args = apiserver_args(d, &etcd_url, api_port);
        let apiserver = Proc::spawn(
            "kube-apiserver",
            &assets.join("kube-apiserver"),
            &apiserver_args,
            d.join("kube-apiserver.log"),
        )
        .map_err(plain)?;
        procs.push(apiserver);

        let ca = wait_for_serving_cert(&mut procs, &d.join("certs/apiserver.crt"), deadline)
            .await
            .map_err(|e| lost_race(e, &procs))?;
        let kubeconfig = kubeconfig_text(&server_url, &token, &ca);
        let kubeconfig_path = d.join("kubeconfig");
        write(&kubeconfig_path, &kubeconfig).map_err(plain)?;
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::from_yaml(&kubeconfig).map_err(|e| plain(e.into()))?,
            &KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| plain(e.into()))?;
        let client = kube::Client::try_from(config.clone()).map_err(|e| plain(e.into()))?;
        wait_for_apiserver(&mut procs, &client, deadline, self.timeout)
            .await
            .map_err(|e| lost_race(e, &procs))?;

        if self.controller_manager {
            let cm = Proc::spawn(
                "kube-controller-manager",
                &assets.join("kube-controller-manager"),
                &[
                    format!("--kubeconfig={}", kubeconfig_path.display()),
                    "--leader-elect=false".into(),
                    "--controllers=*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-binder,-cloud-node-lifecycle,-route,-service".into(),
                    format!("--service-account-private-key-file={}", d.join("sa.key").display()),
                    format!("--root-ca-file={}", d.join("certs/apiserver.crt").display()),
                    "--bind-address=127.0.0.1".into(),
                    "--secure-port=0".into(),
                    "--port=0".into(),
                ],
                d.join("kube-controller-manager.log"),
            )
            .map_err(plain)?;
            procs.push(cm);
        }
        let node_simulator = if self.node_simulator {
            Some(NodeSimulator::start(client.clone()).await.map_err(plain)?)
        } else {
            None
        };
        // A controller-manager that dies on its flags does so right away: report it now.
        for p in &mut procs {
            p.check_running().map_err(plain)?;
        }
        let procs = Arc::new(Mutex::new(procs));
        let watchdog = tokio::spawn(watchdog(Arc::downgrade(&procs)));
        Ok(TestEnv {
            node_simulator,
            watchdog,
            procs,
            config,
            client,
            server_url,
            etcd_url,
            kubeconfig,
            apiserver: assets.join("kube-apiserver"),
            apiserver_args,
            apiserver_starts: AtomicUsize::new(1),
            timeout: self.timeout,
            dir,
        })
    }
}

/// kube-apiserver's flags: etcd at `etcd_url`, serving on 127.0.0.1:`api_port` with the
/// certificates, token file and service-account keys in `d` (so a restart with the same flags
/// serves the same address, certificate and token).
fn apiserver_args(d: &Path, etcd_url: &str, api_port: u16) -> Vec<String> {
    vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--secure-port={api_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--cert-dir={}", d.join("certs").display()),
        format!("--token-auth-file={}", d.join("tokens.csv").display()),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        format!("--service-account-key-file={}", d.join("sa.pub").display()),
        format!(
            "--service-account-signing-key-file={}",
            d.join("sa.key").display()
        ),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
    ]
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("server_url", &self.server_url)
            .field("etcd_url", &self.etcd_url)
            .field("dir", &self.dir.path())
            .field("pids", &self.pids())
            .field("node_simulator", &self.node_simulator.is_some())
            .finish_non_exhaustive()
    }
}

/// Marks an error as a lost port race when a process's log says so.
fn lost_race(e: Error, procs: &[Proc]) -> (Error, bool) {
    let lost = procs.iter().any(Proc::lost_port_race);
    (e, lost)
}

impl TestEnv {
    /// Options: binaries folder, controller-manager and node simulator on or off.
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder::default()
    }

    /// Starts a control plane with the default options (binaries from [`assets_dir`],
    /// controller-manager and node simulator on).
    pub async fn start() -> Result<TestEnv, Error> {
        TestEnv::builder().start().await
    }

    /// A client authenticated as a cluster admin (group `system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The client configuration: server URL, the API server's CA, the admin bearer token;
    /// default namespace `default`.
    pub fn kube_config(&self) -> kube::Config {
        self.config.clone()
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// etcd's client URL, `http://127.0.0.1:PORT`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The temporary folder holding etcd's data, the certificates, and each process's log
    /// (`etcd.log`, `kube-apiserver.log`, `kube-controller-manager.log`); removed on stop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The name and process id of each running process (etcd, kube-apiserver and
    /// kube-controller-manager when it runs).
    pub fn pids(&self) -> Vec<(String, u32)> {
        lock(&self.procs)
            .iter()
            .map(|p| (p.name.clone(), p.pid()))
            .collect()
    }

    /// `Err(ProcessExited)` with the reason from its log when a process of the control plane
    /// died (a watchdog also prints that to stderr as soon as it happens); `Ok` while all run.
    /// Useful when requests suddenly fail with connection errors.
    pub fn check(&self) -> Result<(), Error> {
        for p in lock(&self.procs).iter_mut() {
            p.check_running()?;
        }
        Ok(())
    }

    /// Stops kube-apiserver gracefully (SIGTERM, SIGKILL after a grace period) and waits until
    /// it exited: an API server going away, for fault tests. etcd keeps running with every
    /// object; kube-controller-manager and the node simulator keep running and reconnect once
    /// [`TestEnv::start_apiserver`] brought it back. Meanwhile requests fail with connection
    /// errors (connection refused). Does nothing when it is stopped already.
    pub async fn stop_apiserver(&self) -> Result<(), Error> {
        self.take_apiserver(Proc::stop).await
    }

    /// Kills kube-apiserver with SIGKILL, as a crash, and waits until it exited: requests in
    /// flight get their connections reset and may or may not have been written to etcd.
    /// Otherwise as [`TestEnv::stop_apiserver`].
    pub async fn kill_apiserver(&self) -> Result<(), Error> {
        self.take_apiserver(Proc::kill).await
    }

    /// Removes kube-apiserver from the running processes (so the watchdog does not report it)
    /// and ends it with `end` on a blocking thread.
    async fn take_apiserver(&self, end: fn(&mut Proc)) -> Result<(), Error> {
        let taken = {
            let mut procs = lock(&self.procs);
            procs
                .iter()
                .position(|p| p.name == APISERVER)
                .map(|i| procs.remove(i))
        };
        let Some(mut apiserver) = taken else {
            return Ok(());
        };
        tracing::info!(pid = apiserver.pid(), "stopping kube-apiserver");
        tokio::task::spawn_blocking(move || end(&mut apiserver))
            .await
            .map_err(|e| Error::io("stopping kube-apiserver", std::io::Error::other(e)))
    }

    /// Starts kube-apiserver again after [`TestEnv::stop_apiserver`] or
    /// [`TestEnv::kill_apiserver`], with the same flags: the same address
    /// ([`TestEnv::server_url`]), serving certificate and CA, admin token and etcd, so
    /// [`TestEnv::client`], clients made from [`TestEnv::kube_config`] and written kubeconfigs
    /// keep working. Waits until `/readyz` answers `ok`, for at most the builder's
    /// [`timeout`](TestEnvBuilder::timeout). The log of the n-th start is
    /// `kube-apiserver.n.log` in [`TestEnv::dir`] (the first is `kube-apiserver.log`). When it
    /// is running already, only waits for `/readyz`.
    ///
    /// Errors: [`Error::ProcessExited`] when it exits while starting (e.g. someone else took its
    /// port meanwhile), [`Error::NotReady`] after the timeout.
    pub async fn start_apiserver(&self) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout;
        {
            let mut procs = lock(&self.procs);
            if !procs.iter().any(|p| p.name == APISERVER) {
                let n = self.apiserver_starts.fetch_add(1, Ordering::SeqCst) + 1;
                let p = Proc::spawn(
                    APISERVER,
                    &self.apiserver,
                    &self.apiserver_args,
                    self.dir().join(format!("kube-apiserver.{n}.log")),
                )?;
                tracing::info!(pid = p.pid(), "started kube-apiserver again");
                // After etcd, so that the processes still stop in reverse order.
                let at = procs
                    .iter()
                    .position(|p| p.name == "etcd")
                    .map_or(0, |i| i + 1);
                procs.insert(at, p);
            }
        }
        let readyz = || async {
            match http::Request::get("/readyz").body(Vec::new()) {
                Ok(req) => self
                    .client
                    .request_text(req)
                    .await
                    .is_ok_and(|body| body.trim() == "ok"),
                Err(_) => false,
            }
        };
        loop {
            {
                let mut procs = lock(&self.procs);
                if let Some(p) = procs.iter_mut().find(|p| p.name == APISERVER) {
                    p.check_running()?;
                }
            }
            if readyz().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let procs = lock(&self.procs);
                let waiting = "GET /readyz after a restart";
                return Err(match procs.iter().find(|p| p.name == APISERVER) {
                    Some(p) => p.not_ready(self.timeout, waiting),
                    None => Error::io(
                        waiting,
                        std::io::Error::other("kube-apiserver was stopped meanwhile"),
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// [`TestEnv::stop_apiserver`] then [`TestEnv::start_apiserver`].
    pub async fn restart_apiserver(&self) -> Result<(), Error> {
        self.stop_apiserver().await?;
        self.start_apiserver().await
    }

    /// Writes a kubeconfig file (server URL, CA data, admin bearer token, namespace `default`)
    /// that kubectl and `kube::Config::infer` (through `KUBECONFIG`) can use.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        write(path, &self.kubeconfig)
    }

    /// Stops everything: the node simulator, then the processes (SIGTERM, SIGKILL after a
    /// grace period), then removes the temporary folder. Dropping does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(sim) = self.node_simulator.take() {
            sim.stop();
        }
        self.watchdog.abort();
        let mut procs = lock(&self.procs);
        while let Some(mut p) = procs.pop() {
            p.stop();
        }
        // `dir` is removed when the fields are dropped, after this.
    }
}

fn lock(procs: &Mutex<Vec<Proc>>) -> MutexGuard<'_, Vec<Proc>> {
    procs
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reports each process that exits while the environment runs, once, on stderr and as a
/// tracing error: otherwise a crashed API server only shows as connection errors.
async fn watchdog(procs: Weak<Mutex<Vec<Proc>>>) {
    let mut reported = HashSet::new();
    loop {
        tokio::time::sleep(WATCHDOG_PERIOD).await;
        let Some(procs) = procs.upgrade() else {
            return;
        };
        let died: Vec<(u32, Error)> = lock(&procs)
            .iter_mut()
            .filter(|p| !reported.contains(&p.pid()))
            .filter_map(|p| p.check_running().err().map(|e| (p.pid(), e)))
            .collect();
        for (pid, e) in died {
            reported.insert(pid);
            tracing::error!(error = %e, "test control plane process died");
            eprintln!("gitops-testenv: {e}");
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Three distinct free loopback ports (all bound at once, then released).
fn free_ports() -> Result<[u16; 3], Error> {
    let bind = || {
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("probing a free loopback port", e))
    };
    let listeners = [bind()?, bind()?, bind()?];
    let mut ports = [0u16; 3];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l
            .local_addr()
            .map_err(|e| Error::io("probing a free loopback port", e))?
            .port();
    }
    Ok(ports)
}

/// A random 32-hex-digit bearer token.
fn random_token() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The kubeconfig (JSON, which is YAML) for `server` with `token` and the CA `ca_pem`.
fn kubeconfig_text(server: &str, token: &str, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let kc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": "admin", "namespace": "default"}}],
        "current-context": "testenv",
    });
    let mut text = serde_json::to_string_pretty(&kc).unwrap_or_default();
    text.push('\n');
    text
}

/// Waits until etcd answers `/health` with `"health":"true"`.
async fn wait_for_etcd(
    etcd: &mut Proc,
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), (Error, bool)> {
    loop {
        if let Err(e) = etcd.check_running() {
            let lost = etcd.lost_port_race();
            return Err((e, lost));
        }
        if etcd_healthy(port).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err((etcd.not_ready(timeout, "GET /health"), false));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn etcd_healthy(port: u16) -> bool {
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&body).contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Ok(true))
    )
}

/// Waits until the API server wrote its self-signed serving certificate (with its CA) and
/// returns the file's PEM text.
async fn wait_for_serving_cert(
    procs: &mut [Proc],
    path: &Path,
    deadline: Instant,
) -> Result<String, Error> {
    let start = Instant::now();
    loop {
        for p in procs.iter_mut() {
            p.check_running()?;
        }
        if let Ok(text) = std::fs::read_to_string(path)
            && text.trim_end().ends_with("-----END CERTIFICATE-----")
        {
            return Ok(text);
        }
        if Instant::now() > deadline {
            let api = &procs[procs.len() - 1];
            return Err(api.not_ready(start.elapsed(), format!("waiting for {}", path.display())));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `/readyz` answers `ok` and the `default` namespace exists.
async fn wait_for_apiserver(
    procs: &mut [Proc],
    client: &kube::Client,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), Error> {
    let mut waiting_for = "GET /readyz";
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    loop {
        for p in procs.iter_mut() {
            p.check_running()?;
        }
        let ready = match http::Request::get("/readyz").body(Vec::new()) {
            Ok(req) => client
                .request_text(req)
                .await
                .is_ok_and(|body| body.trim() == "ok"),
            Err(_) => false,
        };
        if ready {
            waiting_for = "the default namespace";
            if matches!(namespaces.get_opt("default").await, Ok(Some(_))) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(procs[procs.len() - 1].not_ready(timeout, waiting_for));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().unwrap();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_kubeconfig_parses_with_kube() {
        let text = kubeconfig_text("https://127.0.0.1:6443", "t0k3n", "PEM");
        let kc = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("testenv"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(
                base64::engine::general_purpose::STANDARD
                    .encode("PEM")
                    .as_str()
            )
        );
    }

    #[tokio::test]
    async fn a_missing_binary_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = TestEnv::builder()
            .assets(tmp.path().to_path_buf())
            .start()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::MissingBinary { .. }), "{err}");
        assert!(err.to_string().contains("etcd"), "{err}");
        assert!(err.to_string().contains("cargo xtask testenv"), "{err}");
    }
}
