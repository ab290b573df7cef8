//! The control plane against the real binaries (from `KUBEBUILDER_ASSETS` or the cache folder
//! `cargo xtask testenv` fills).

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gitops_testenv::{NODE_NAME, TestEnv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` with `what`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn port_open(url: &str) -> bool {
    let hostport = url.rsplit("//").next().unwrap_or(url);
    TcpStream::connect(hostport).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_serves_clients_and_kubectl_and_runs_deployments() {
    let started = Instant::now();
    let env = TestEnv::start().await.unwrap();
    eprintln!(
        "control plane with controller-manager and node simulator started in {:?}",
        started.elapsed()
    );
    assert!(env.server_url().starts_with("https://127.0.0.1:"));
    let client = env.client();

    // Namespaces from the API server's bootstrap.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for ns in ["default", "kube-system", "kube-public"] {
        assert!(names.iter().any(|n| n == ns), "{ns} missing in {names:?}");
    }

    // Writes are stored.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"}, "data": {"color": "blue"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let got = cms.get("settings").await.unwrap();
    assert_eq!(got.data.unwrap()["color"], "blue");

    // The kubeconfig works for kubectl and for kube::Config::infer.
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig).unwrap();
    let out = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args([
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.color}",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "blue");
    let out = tokio::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["get", "ns"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("kube-system"));
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    assert!(!config.accept_invalid_certs);
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        env.server_url()
    );
    let other: Api<ConfigMap> = Api::default_namespaced(kube::Client::try_from(config).unwrap());
    assert!(other.get("settings").await.is_ok());

    // The simulated node is Ready.
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get(NODE_NAME).await.unwrap();
    let conditions = node.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );

    // A Deployment in its own namespace: ReplicaSet and Pods from the controller-manager, the
    // Pods run on the simulated node, the Deployment becomes Available.
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
        )
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }))
    .unwrap();
    let created = Instant::now();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "Deployment shop/web Available",
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("web").await.ok()?;
                let status = d.status?;
                let available = status
                    .conditions
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Available" && c.status == "True");
                (available && status.available_replicas == Some(2)).then_some(())
            }
        },
    )
    .await;
    eprintln!("Deployment Available after {:?}", created.elapsed());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let pods = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(NODE_NAME)
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.as_deref().unwrap().starts_with("10.244."));
    }

    // Namespace deletion: the namespace controller deletes the Deployment, garbage collection its
    // ReplicaSet, the simulator finishes the Pods' deletion.
    let deleted = Instant::now();
    namespaces
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "namespace shop gone", || {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .get_opt("shop")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    eprintln!("namespace deleted after {:?}", deleted.elapsed());

    // Stopping ends every process.
    let pids = env.pids();
    assert_eq!(
        pids.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["etcd", "kube-apiserver", "kube-controller-manager"]
    );
    assert!(pids.iter().all(|(_, pid)| alive(*pid)));
    assert!(format!("{env:?}").contains(env.server_url()));
    let (url, etcd, dir) = (
        env.server_url().to_string(),
        env.etcd_url().to_string(),
        env.dir().to_path_buf(),
    );
    assert!(dir.join("kube-apiserver.log").is_file());
    assert!(port_open(&url) && port_open(&etcd));

    // A process that dies is reported by check(), with its log.
    env.check().unwrap();
    let (_, cm_pid) = pids[2];
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &cm_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let err = eventually(Duration::from_secs(10), "check() to fail", || {
        let result = env.check();
        async move { result.err() }
    })
    .await;
    assert!(
        matches!(&err, gitops_testenv::Error::ProcessExited { name, .. } if name == "kube-controller-manager"),
        "{err}"
    );
    let stopping = Instant::now();
    env.stop();
    eprintln!("stopped in {:?}", stopping.elapsed());
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) still runs");
    }
    // The ports are not probed after stopping: once freed, the kernel may give them to a
    // control plane that a parallel test starts. The processes that held them are gone.
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_processes_behind() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let env = TestEnv::builder()
            .controller_manager(false)
            .node_simulator(false)
            .start()
            .await
            .unwrap();
        eprintln!("bare control plane started in {:?}", started.elapsed());
        let namespaces: Api<Namespace> = Api::all(env.client());
        assert!(namespaces.get_opt("default").await.unwrap().is_some());
        tx.send((env.pids(), env.dir().to_path_buf())).unwrap();
        panic!("the test fails while the control plane runs");
    });
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    let (pids, dir) = rx.await.unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) still runs");
    }
    assert!(!dir.exists());
}

/// Custom resources are what the toolkit's operator serves: creating one must work. (The
/// apiserver crashes here when built with Go >= 1.18 against the vendored reflect2 v1.0.1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_can_be_created_and_read() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(env.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "listKind": "WidgetList", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}},
            }],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    eventually(Duration::from_secs(30), "CRD Established", || {
        let crds = crds.clone();
        async move {
            let crd = crds.get("widgets.example.com").await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;

    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client(), "default", &ar);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "labels": {"team": "a"}}, "spec": {"size": 3},
    }))
    .unwrap();
    let created = widgets.create(&PostParams::default(), &widget).await;
    if let Err(e) = env.check() {
        panic!("creating a custom resource killed the control plane: {e}");
    }
    created.unwrap();
    let got = widgets.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 3);
    env.check().unwrap();
}

/// `stop_apiserver`/`kill_apiserver` end only kube-apiserver (etcd keeps every object);
/// `start_apiserver` brings it back on the same address with the same certificate and token,
/// so clients made before keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_stops_and_starts_again_on_the_same_address_and_credentials() {
    let env = TestEnv::builder()
        .controller_manager(false)
        .node_simulator(false)
        .start()
        .await
        .unwrap();
    let client = env.client();
    // A second client with its own connection pool, from the configuration.
    let other = kube::Client::try_from(env.kube_config()).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "kept"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pid_of = |env: &TestEnv, name: &str| {
        env.pids()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, pid)| pid)
    };
    let etcd = pid_of(&env, "etcd").unwrap();

    for (round, crash) in [(1, false), (2, true)] {
        let before = pid_of(&env, "kube-apiserver").unwrap();
        if crash {
            env.kill_apiserver().await.unwrap();
        } else {
            env.stop_apiserver().await.unwrap();
        }
        assert!(!alive(before), "kube-apiserver ({before}) still runs");
        assert!(alive(etcd), "etcd keeps running");
        assert!(!port_open(env.server_url()), "nothing listens meanwhile");
        assert_eq!(pid_of(&env, "kube-apiserver"), None);
        let err = cms.get("kept").await.unwrap_err();
        assert!(
            !matches!(err, kube::Error::Api(_)),
            "a transport error, not an API answer: {err}"
        );
        // Stopping twice is a no-op.
        env.stop_apiserver().await.unwrap();
        env.check().unwrap();

        env.start_apiserver().await.unwrap();
        let after = pid_of(&env, "kube-apiserver").unwrap();
        assert_ne!(before, after, "round {round}: a new process");
        assert!(
            env.dir()
                .join(format!("kube-apiserver.{}.log", round + 1))
                .is_file()
        );
        for c in [&client, &other] {
            let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
            let got = cms.get("kept").await.unwrap();
            assert_eq!(got.data.unwrap()["k"], "v", "round {round}: etcd kept it");
        }
        // Starting a running API server only waits for it.
        env.start_apiserver().await.unwrap();
        assert_eq!(pid_of(&env, "kube-apiserver"), Some(after));
        env.check().unwrap();
    }
    let pids = env.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["etcd", "kube-apiserver"]);
    drop(env);
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) still runs after drop");
    }
}
