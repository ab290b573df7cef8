//! End to end, Flux's tenancy fields of the Kustomization against real kube-apiservers (from
//! `KUBEBUILDER_ASSETS`, RBAC on) and the operator: `spec.serviceAccountName` applies, prunes
//! and health-checks as the impersonated ServiceAccount, so the API server's RBAC decides; and
//! `spec.kubeConfig.secretRef` applies to a second control plane whose kubeconfig is in a Secret,
//! while sources and the inventory stay on the operator's cluster. The source is a GitRepository
//! of a local bare repository (`file://`).

mod common;

use std::time::Duration;

use anyhow::Result;
use common::{NS, TIMEOUT, World};
use gitops_core::condition::{find_condition, is_ready, kind, reason};
use gitops_examples::crds::{GitRepository, Kustomization};
use gitops_examples::gitrepo::LocalRepo;
use gitops_examples::operator::{FIELD_MANAGER, OperatorConfig, REQUESTED_AT};
use gitops_examples::wait;
use gitops_testenv::TestEnv;
use gitops_testenv::rbac::{Grant, RbacSubject};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

/// The namespace the tenant may write to.
const TENANT: &str = "tenant";
/// The tenant's ServiceAccount, in the Kustomizations' namespace.
const SA: &str = "tenant-reconciler";
/// The operator's `--default-service-account` in the impersonation test: it has no rights.
const DEFAULT_SA: &str = "nobody";

fn configmap(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  a: b\n"
    )
}

fn secret(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\nstringData:\n  token: not-really-secret\n"
    )
}

/// The Ready condition as `REASON message`.
fn ready_message(k: &Kustomization) -> String {
    k.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, kind::READY))
        .map(|c| format!("{} {}", c.reason, c.message))
        .unwrap_or_default()
}

/// The ids of the Kustomization's inventory.
fn inventory(k: &Kustomization) -> Vec<String> {
    let mut ids: Vec<String> = k
        .status
        .as_ref()
        .and_then(|s| s.inventory.as_ref())
        .map(|i| i.entries.iter().map(|e| e.id.clone()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Whether `manager` manages fields of the object.
fn managed_by(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// The operator's world plus a Git repository `fleet` (files under `files`) served to the
/// GitRepository `fleet` in [`NS`].
struct Tenancy {
    w: World,
    repo: LocalRepo,
}

impl Tenancy {
    async fn start(files: &[(&str, &str)]) -> Result<Tenancy> {
        Tenancy::start_with(files, None).await
    }

    /// [`Tenancy::start`], the operator impersonating `default_service_account` for
    /// Kustomizations without `serviceAccountName`.
    async fn start_with(
        files: &[(&str, &str)],
        default_service_account: Option<&str>,
    ) -> Result<Tenancy> {
        Tenancy::start_config(
            files,
            OperatorConfig {
                default_service_account: default_service_account.map(str::to_string),
                ..OperatorConfig::default()
            },
        )
        .await
    }

    /// [`Tenancy::start`] with the operator configured by `config` (its
    /// `dependency_requeue` set to 1 s).
    async fn start_config(files: &[(&str, &str)], config: OperatorConfig) -> Result<Tenancy> {
        let w = World::start_with(OperatorConfig {
            dependency_requeue: Duration::from_secs(1),
            ..config
        })
        .await?;
        let content = w.tmp.path().join("content");
        for (path, text) in files {
            let p = content.join(path);
            std::fs::create_dir_all(p.parent().expect("a file has a parent"))?;
            std::fs::write(p, text)?;
        }
        let repo = LocalRepo::create(w.tmp.path(), "fleet", &content, ".")?;
        let url = format!("file://{}", repo.repos_root.join("fleet.git").display());
        w.create::<GitRepository>(serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "fleet", "namespace": NS},
            "spec": {"url": url, "ref": {"branch": "main"}, "interval": "10m"}
        }))
        .await?;
        Ok(Tenancy { w, repo })
    }

    /// A second control plane standing for a remote cluster, and its kubeconfig (token and CA
    /// inline), parsed.
    async fn remote_cluster(&self) -> Result<(TestEnv, serde_json::Value)> {
        let remote = TestEnv::builder()
            .controller_manager(false)
            .node_simulator(false)
            .start()
            .await?;
        let path = self.w.tmp.path().join("remote.kubeconfig");
        remote.write_kubeconfig(&path)?;
        let kubeconfig = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)?;
        Ok((remote, kubeconfig))
    }

    /// Waits until the Kustomization `name` is Ready.
    async fn until_ready(&self, name: &str) -> Result<Kustomization> {
        self.until_ks(name, "Ready", |k| {
            k.status.as_ref().is_some_and(|s| is_ready(&s.conditions))
        })
        .await
    }

    fn kustomizations(&self) -> Api<Kustomization> {
        Api::namespaced(self.w.client(), NS)
    }

    /// A pruning Kustomization of `fleet` with `spec` merged over the defaults.
    async fn create_kustomization(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        let mut full = serde_json::json!({"interval": "10m", "prune": true,
                                          "sourceRef": {"kind": "GitRepository", "name": "fleet"}});
        for (k, v) in spec.as_object().cloned().unwrap_or_default() {
            full[k] = v;
        }
        self.w
            .create::<Kustomization>(serde_json::json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "namespace": NS}, "spec": full
            }))
            .await
    }

    async fn until_ks(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Kustomization) -> bool,
    ) -> Result<Kustomization> {
        wait::until(&self.kustomizations(), name, TIMEOUT, what, done).await
    }

    /// Annotates `reconcile.fluxcd.io/requestedAt` (value `at`) on an object of [`NS`].
    async fn request<K>(&self, name: &str, at: &str) -> Result<()>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.w.client(), NS);
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {REQUESTED_AT: at}}})),
        )
        .await?;
        Ok(())
    }

    /// Commits the working copy and has the GitRepository fetch it now; returns the commit.
    async fn push(&self, message: &str) -> Result<String> {
        let commit = self.repo.commit(message)?;
        self.request::<GitRepository>("fleet", &commit).await?;
        Ok(commit)
    }
}

/// The revision of the last apply ends with `commit` and Ready=True at the generation.
fn ready_at(k: &Kustomization, commit: &str) -> bool {
    k.status.as_ref().is_some_and(|s| {
        is_ready(&s.conditions)
            && s.observed_generation == k.metadata.generation
            && s.last_applied_revision
                .as_deref()
                .is_some_and(|r| r.ends_with(commit))
    })
}

/// `spec.serviceAccountName`: a Role allowing only ConfigMaps makes the apply of a Secret fail
/// with the API server's `forbidden` naming the Secret, without pruning the objects applied
/// before; granting Secrets too makes it Ready, the objects applied by the operator's field
/// manager and the stale one pruned. Health checks read as the ServiceAccount too, a
/// Kustomization without `serviceAccountName` impersonates `--default-service-account`, and
/// once the ServiceAccount is gone a deletion skips pruning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_impersonation_is_decided_by_rbac() -> Result<()> {
    let t = Tenancy::start_with(
        &[
            ("app/old.yaml", &configmap("old", TENANT)),
            ("health/probe.yaml", &configmap("probe", TENANT)),
        ],
        Some(DEFAULT_SA),
    )
    .await?;
    let client = t.w.client();
    // The ServiceAccount (in the Kustomizations' namespace) may write ConfigMaps in TENANT.
    let grant = Grant::new(TENANT, "tenant-apply", RbacSubject::service_account(NS, SA))
        .create_namespace()
        .create_service_account();
    t.w.env
        .grant(&grant.clone().rule(&[""], &["configmaps"], &["*"]))
        .await?;

    // The ConfigMap is allowed: Ready, applied by the operator's field manager.
    t.create_kustomization(
        "tenant-apps",
        serde_json::json!({"path": "./app", "serviceAccountName": SA}),
    )
    .await?;
    let ks = t.until_ready("tenant-apps").await?;
    assert_eq!(inventory(&ks), ["tenant_old__ConfigMap"]);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), TENANT);
    let old = configmaps.get("old").await?;
    assert!(
        managed_by(&old.metadata).contains(&FIELD_MANAGER.to_string()),
        "{:?}",
        old.metadata.managed_fields
    );

    // A ConfigMap and a Secret replace it; the Secret is forbidden to the ServiceAccount.
    t.repo.remove("app/old.yaml")?;
    t.repo
        .write("app/settings.yaml", &configmap("settings", TENANT))?;
    t.repo.write("app/token.yaml", &secret("token", TENANT))?;
    let commit = t.push("a ConfigMap and a Secret").await?;
    let ks = t
        .until_ks("tenant-apps", "Ready=False naming the Secret", |k| {
            let m = ready_message(k);
            m.contains("Secret/tenant/token") && m.contains("forbidden")
        })
        .await?;
    let message = ready_message(&ks);
    assert!(
        message.starts_with(reason::RECONCILIATION_FAILED),
        "{message}"
    );
    assert!(
        message.contains(&format!("system:serviceaccount:{NS}:{SA}")),
        "the server's message names the impersonated user: {message}"
    );
    assert!(!ready_at(&ks, &commit), "{message}");
    // Nothing pruned while failing: the old object and the old inventory stay.
    assert_eq!(inventory(&ks), ["tenant_old__ConfigMap"]);
    let old = configmaps.get_opt("old").await?;
    assert!(
        old.is_some_and(|o| o.metadata.deletion_timestamp.is_none()),
        "the ConfigMap of the last successful apply was pruned"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), TENANT);
    assert!(secrets.get_opt("token").await?.is_none());

    // Granting Secrets: Ready at the commit, both objects applied, the old one pruned.
    t.w.env
        .grant(&grant.rule(&[""], &["configmaps", "secrets"], &["*"]))
        .await?;
    t.request::<Kustomization>("tenant-apps", "granted").await?;
    let ks = t
        .until_ks("tenant-apps", "Ready at the commit", |k| {
            ready_at(k, &commit)
        })
        .await?;
    assert_eq!(
        inventory(&ks),
        ["tenant_settings__ConfigMap", "tenant_token__Secret"]
    );
    let settings = configmaps.get("settings").await?;
    let token = secrets.get("token").await?;
    for meta in [&settings.metadata, &token.metadata] {
        assert!(
            managed_by(meta).contains(&FIELD_MANAGER.to_string()),
            "{:?}",
            meta.managed_fields
        );
    }
    let old = configmaps.get_opt("old").await?;
    assert!(
        old.is_none_or(|o| o.metadata.deletion_timestamp.is_some()),
        "the ConfigMap that left Git was not pruned"
    );

    // Health checks go through the same identity: an object outside the Role's namespace
    // cannot be read by the ServiceAccount, although the operator could.
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "outside"}}))?,
        )
        .await?;
    t.create_kustomization(
        "tenant-health",
        serde_json::json!({"path": "./health", "serviceAccountName": SA, "timeout": "3s",
                           "healthChecks": [{"apiVersion": "v1", "kind": "ConfigMap",
                                             "name": "outside", "namespace": "default"}]}),
    )
    .await?;
    let ks = t
        .until_ks("tenant-health", "Ready=False HealthCheckFailed", |k| {
            ready_message(k).starts_with(reason::HEALTH_CHECK_FAILED)
        })
        .await?;
    let message = ready_message(&ks);
    assert!(message.contains("ConfigMap/default/outside"), "{message}");
    assert!(message.contains("forbidden"), "{message}");
    assert!(configmaps.get_opt("probe").await?.is_some(), "applied");

    // Without serviceAccountName: the operator's default ServiceAccount, which may not write.
    t.create_kustomization("defaulted", serde_json::json!({"path": "./health"}))
        .await?;
    let ks = t
        .until_ks("defaulted", "Ready=False forbidden", |k| {
            ready_message(k).contains("forbidden")
        })
        .await?;
    let message = ready_message(&ks);
    assert!(message.contains("ConfigMap/tenant/probe"), "{message}");
    assert!(
        message.contains(&format!("system:serviceaccount:{NS}:{DEFAULT_SA}")),
        "{message}"
    );

    // The ServiceAccount gone, deleting a Kustomization skips pruning (a Warning event lists
    // the objects left) instead of blocking the deletion, as kustomize-controller does.
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .delete(SA, &Default::default())
        .await?;
    t.kustomizations()
        .delete("tenant-apps", &Default::default())
        .await?;
    common::wait_gone(&t.kustomizations(), "tenant-apps", TIMEOUT).await?;
    assert!(configmaps.get_opt("settings").await?.is_some(), "pruned");
    let events = Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?;
    let skipped = events.items.iter().find_map(|e| {
        let m = e.message.clone().unwrap_or_default();
        (e.involved_object.name.as_deref() == Some("tenant-apps")
            && e.type_.as_deref() == Some("Warning")
            && m.starts_with("skipping pruning"))
        .then_some(m)
    });
    let skipped = skipped.expect("a Warning event saying that pruning was skipped");
    assert!(
        skipped.contains(&format!("ServiceAccount '{NS}/{SA}'"))
            && skipped.contains("tenant_settings__ConfigMap"),
        "{skipped}"
    );
    Ok(())
}

/// `spec.kubeConfig.secretRef`: the objects go to the cluster of the kubeconfig in the Secret
/// (key `value`), never to the operator's; the inventory is in the status on the operator's
/// cluster; an object removed from Git is pruned on the remote cluster. Impersonation happens
/// on the remote cluster; deleting the Kustomization prunes there. A wrong key, a missing
/// Secret or a value that is no kubeconfig give Ready=False naming the Secret and key, without
/// the kubeconfig's contents (in conditions and Events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_config_secret_applies_to_the_remote_cluster() -> Result<()> {
    let t = Tenancy::start(&[
        ("remote/a.yaml", &configmap("remote-a", "default")),
        ("remote/b.yaml", &configmap("remote-b", "default")),
    ])
    .await?;
    let (remote, kubeconfig) = t.remote_cluster().await?;
    let token = kubeconfig["users"][0]["user"]["token"]
        .as_str()
        .expect("the test kubeconfig has a token")
        .to_string();
    let kubeconfig = serde_yaml_ng::to_string(&kubeconfig)?;
    t.w.create::<Secret>(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "remote-kubeconfig", "namespace": NS},
        "stringData": {"value": kubeconfig, "garbage": format!("not: [a kubeconfig {token}")}
    }))
    .await?;

    t.create_kustomization(
        "remote",
        serde_json::json!({"path": "./remote", "targetNamespace": "default",
                           "kubeConfig": {"secretRef": {"name": "remote-kubeconfig"}}}),
    )
    .await?;
    let ks = t.until_ready("remote").await?;
    assert_eq!(
        inventory(&ks),
        ["default_remote-a__ConfigMap", "default_remote-b__ConfigMap"]
    );
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote.client(), "default");
    let local_cms: Api<ConfigMap> = Api::namespaced(t.w.client(), "default");
    for name in ["remote-a", "remote-b"] {
        let cm = remote_cms.get(name).await?;
        assert!(
            managed_by(&cm.metadata).contains(&FIELD_MANAGER.to_string()),
            "{:?}",
            cm.metadata.managed_fields
        );
        assert!(
            local_cms.get_opt(name).await?.is_none(),
            "{name} was applied to the operator's cluster"
        );
    }

    // Removed from Git: pruned on the remote cluster.
    t.repo.remove("remote/b.yaml")?;
    let commit = t.push("drop remote-b").await?;
    let ks = t
        .until_ks("remote", "Ready at the commit", |k| ready_at(k, &commit))
        .await?;
    assert_eq!(inventory(&ks), ["default_remote-a__ConfigMap"]);
    assert!(remote_cms.get_opt("remote-a").await?.is_some());
    let b = remote_cms.get_opt("remote-b").await?;
    assert!(
        b.is_none_or(|o| o.metadata.deletion_timestamp.is_some()),
        "remote-b was not pruned on the remote cluster"
    );

    // Impersonation on the remote cluster: the ServiceAccount has no rights there.
    t.create_kustomization(
        "remote-as-sa",
        serde_json::json!({"path": "./remote", "targetNamespace": "default",
                           "serviceAccountName": SA,
                           "kubeConfig": {"secretRef": {"name": "remote-kubeconfig"}}}),
    )
    .await?;
    let ks = t
        .until_ks("remote-as-sa", "Ready=False forbidden", |k| {
            ready_message(k).contains("forbidden")
        })
        .await?;
    let message = ready_message(&ks);
    assert!(message.contains("ConfigMap/default/remote-a"), "{message}");
    assert!(
        message.contains(&format!("system:serviceaccount:{NS}:{SA}")),
        "{message}"
    );

    // Bad references: Ready=False naming the Secret and key, never the contents.
    let bad = [
        (
            "wrong-key",
            serde_json::json!({"name": "remote-kubeconfig", "key": "kubeconfig"}),
            "KubeConfig secret 'flux-system/remote-kubeconfig' does not contain a 'kubeconfig' key",
        ),
        (
            "no-secret",
            serde_json::json!({"name": "absent"}),
            "unable to read KubeConfig secret 'flux-system/absent': not found",
        ),
        (
            "garbage",
            serde_json::json!({"name": "remote-kubeconfig", "key": "garbage"}),
            "KubeConfig secret 'flux-system/remote-kubeconfig' key 'garbage': not a kubeconfig",
        ),
    ];
    for (name, secret_ref, _) in &bad {
        t.create_kustomization(
            name,
            serde_json::json!({"path": "./remote", "kubeConfig": {"secretRef": secret_ref}}),
        )
        .await?;
    }
    for (name, _, expected) in &bad {
        let ks = t
            .until_ks(name, "Ready=False naming the Secret", |k| {
                ready_message(k).contains(expected)
            })
            .await?;
        let message = ready_message(&ks);
        assert!(
            message.starts_with(reason::RECONCILIATION_FAILED),
            "{message}"
        );
        assert!(!message.contains(&token), "{message}");
    }

    // Deleting the Kustomization prunes its inventory on the remote cluster (the finalizer
    // goes through the same target).
    t.kustomizations()
        .delete("remote", &Default::default())
        .await?;
    common::wait_gone(&t.kustomizations(), "remote", TIMEOUT).await?;
    let a = remote_cms.get_opt("remote-a").await?;
    assert!(
        a.is_none_or(|o| o.metadata.deletion_timestamp.is_some()),
        "remote-a was not pruned on the remote cluster"
    );

    let events: Api<Event> = Api::namespaced(t.w.client(), NS);
    for e in events.list(&ListParams::default()).await? {
        let message = e.message.unwrap_or_default();
        assert!(!message.contains(&token), "an event carries the token");
    }
    Ok(())
}

/// Flux's opt-ins for kubeconfigs a Secret may not carry by default: with
/// `--insecure-kubeconfig-tls` a kubeconfig that skips certificate verification, and with
/// `--insecure-kubeconfig-exec` one whose user runs a command for its token, both apply to the
/// remote cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_kubeconfigs_apply_with_flux_opt_ins() -> Result<()> {
    let t = Tenancy::start_config(
        &[("remote/a.yaml", &configmap("remote-a", "default"))],
        OperatorConfig {
            insecure_kubeconfig_tls: true,
            insecure_kubeconfig_exec: true,
            ..OperatorConfig::default()
        },
    )
    .await?;
    let (remote, mut kubeconfig) = t.remote_cluster().await?;
    // No CA: certificates are not verified. The token comes from a command.
    let cluster = &mut kubeconfig["clusters"][0]["cluster"];
    cluster
        .as_object_mut()
        .expect("a cluster")
        .remove("certificate-authority-data");
    cluster["insecure-skip-tls-verify"] = serde_json::json!(true);
    let user = &mut kubeconfig["users"][0]["user"];
    let token = user["token"].as_str().expect("a token").to_string();
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
        "status": {"token": token}});
    *user = serde_json::json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "/bin/sh", "args": ["-c", format!("echo '{credential}'")]}});
    t.w.create::<Secret>(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "insecure-kubeconfig", "namespace": NS},
        "stringData": {"value": serde_yaml_ng::to_string(&kubeconfig)?}
    }))
    .await?;
    t.create_kustomization(
        "remote",
        serde_json::json!({"path": "./remote", "targetNamespace": "default",
                           "kubeConfig": {"secretRef": {"name": "insecure-kubeconfig"}}}),
    )
    .await?;
    let ks = t.until_ready("remote").await?;
    assert_eq!(inventory(&ks), ["default_remote-a__ConfigMap"]);
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote.client(), "default");
    assert!(remote_cms.get_opt("remote-a").await?.is_some());
    Ok(())
}
