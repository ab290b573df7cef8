//! The health stage of `Reconcile::run` with in-process doubles for Renderer and Applier (the
//! real `SsaApplier::wait_healthy` is tested against kube-apiserver in gitops-apply): which
//! objects are checked, and that a failed check fails with stage Health, retryable, and still
//! records the new inventory.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitops_core::pipeline::{ApplySpec, OwnerLabels, Reconcile};
use gitops_core::*;

/// Renders two ConfigMaps.
struct TwoConfigMaps;

impl Renderer for TwoConfigMaps {
    fn render(&self, _dir: &Path) -> Result<Vec<Object>, Error> {
        Ok(["a", "b"]
            .iter()
            .map(|n| {
                serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": n, "namespace": "apps"}}))
                .unwrap()
            })
            .collect())
    }
}

/// Applies everything; records what it was asked to wait for; fails the wait when `unhealthy`.
#[derive(Default)]
struct HealthApplier {
    waited: Mutex<Vec<Vec<String>>>,
    unhealthy: bool,
}

impl Applier for HealthApplier {
    fn apply<'a>(&'a self, objects: &'a [Object]) -> BoxFuture<'a, Result<ChangeSet, Error>> {
        async move {
            let mut cs = ChangeSet::default();
            for o in objects {
                cs.push(o.id().unwrap(), "v1", Action::Created);
            }
            Ok(cs)
        }
        .boxed()
    }

    fn prune<'a>(
        &'a self,
        _stale: &'a [InventoryEntry],
        _owner: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<ChangeSet, Error>> {
        async { Ok(ChangeSet::default()) }.boxed()
    }

    fn wait_healthy<'a>(
        &'a self,
        ids: &'a [ObjectId],
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            self.waited
                .lock()
                .unwrap()
                .push(ids.iter().map(ToString::to_string).collect());
            if self.unhealthy {
                // As an applier that classifies its own error as terminal would.
                return Err(Error::terminal(
                    Stage::Apply,
                    "ConfigMap/apps/b: InProgress: waiting",
                ));
            }
            Ok(())
        }
        .boxed()
    }
}

async fn run(spec: &ApplySpec, applier: &HealthApplier) -> Result<Inventory, pipeline::Failure> {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(dir.path().join("store")).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("x.yaml"), "x").unwrap();
    let revision = Revision::named(
        "main",
        Digest::new(Algorithm::Sha1, "1".repeat(40)).unwrap(),
    );
    let artifact = store
        .archive_dir(
            &ArtifactKey::new("GitRepository", "ns", "repo").unwrap(),
            revision,
            src.path(),
            &|_, _| true,
        )
        .unwrap();
    Reconcile {
        store: &store,
        artifact: &artifact,
        spec,
        owner: &OwnerLabels::flux("ns", "app"),
        renderer: Arc::new(TwoConfigMaps),
        applier,
        previous: &Inventory::default(),
        timeout: Duration::from_secs(30),
    }
    .run()
    .await
    .map(|o| o.inventory)
}

#[tokio::test]
async fn health_checks_follow_wait_and_health_checks() {
    // Neither wait nor healthChecks: no wait at all.
    let applier = HealthApplier::default();
    run(&ApplySpec::default(), &applier).await.unwrap();
    assert!(applier.waited.lock().unwrap().is_empty());

    // wait: every applied object.
    let applier = HealthApplier::default();
    let spec = ApplySpec {
        wait: true,
        ..Default::default()
    };
    run(&spec, &applier).await.unwrap();
    assert_eq!(
        *applier.waited.lock().unwrap(),
        [vec![
            "ConfigMap/apps/a".to_string(),
            "ConfigMap/apps/b".into()
        ]]
    );

    // healthChecks: only the listed objects, applied here or not.
    let applier = HealthApplier::default();
    let release = ObjectId::new("helm.toolkit.fluxcd.io", "HelmRelease", "apps", "podinfo");
    let spec = ApplySpec {
        health_checks: vec![release],
        ..Default::default()
    };
    run(&spec, &applier).await.unwrap();
    assert_eq!(
        *applier.waited.lock().unwrap(),
        [vec!["HelmRelease/apps/podinfo".to_string()]]
    );
}

#[tokio::test]
async fn failed_health_check_is_retryable_and_keeps_the_new_inventory() {
    let applier = HealthApplier {
        unhealthy: true,
        ..Default::default()
    };
    let spec = ApplySpec {
        wait: true,
        ..Default::default()
    };
    let failure = run(&spec, &applier).await.unwrap_err();
    assert_eq!(failure.error.stage(), Stage::Health);
    assert!(failure.error.is_retryable());
    assert!(
        failure
            .error
            .to_string()
            .contains("ConfigMap/apps/b: InProgress"),
        "{}",
        failure.error
    );
    let inventory = failure.inventory.expect("inventory recorded");
    assert_eq!(inventory.len(), 2);
}
