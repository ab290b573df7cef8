//! A simulated node, as kwok does it: a Ready Node, and every Pod bound to it and reported
//! running and ready without running anything.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::Error;

/// The name of the simulated node.
pub const NODE_NAME: &str = "testenv-node";

/// The simulated node's InternalIP (also the hostIP of its pods).
const NODE_IP: &str = "10.10.0.1";

/// How often pods are listed.
const PERIOD: Duration = Duration::from_millis(200);

/// The running simulator; aborts its task when dropped.
#[derive(Debug)]
pub(crate) struct NodeSimulator {
    task: JoinHandle<()>,
}

impl NodeSimulator {
    /// Registers the node, then starts the pod loop.
    pub(crate) async fn start(client: kube::Client) -> Result<NodeSimulator, Error> {
        register_node(&client).await?;
        let task = tokio::spawn(run(client));
        Ok(NodeSimulator { task })
    }

    /// Stops the pod loop.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for NodeSimulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// Creates the Node (status included: nodes accept status on create) and sets its status again
/// through the status subresource, so it is Ready whatever the server kept.
async fn register_node(client: &kube::Client) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = node_status();
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "testenv",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": status,
    }))
    .map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    nodes
        .patch_status(
            NODE_NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    Ok(())
}

fn node_status() -> Value {
    let t = now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": t, "lastTransitionTime": t,
        })
    };
    let resources =
        json!({"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"});
    json!({
        "capacity": resources,
        "allocatable": resources,
        "phase": "Running",
        "conditions": [
            condition("Ready", "True", "KubeletReady", "simulated by gitops-testenv"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "simulated"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "simulated"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "simulated"),
            condition("NetworkUnavailable", "False", "RouteCreated", "simulated"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": NODE_IP},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "gitops-testenv", "systemUUID": "gitops-testenv", "bootID": "gitops-testenv",
            "kernelVersion": "simulated", "osImage": "simulated", "containerRuntimeVersion": "testenv://0",
            "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    })
}

/// The pod loop: lists all pods every [`PERIOD`] and moves each one along. Errors are logged
/// and retried on the next round.
async fn run(client: kube::Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut next_ip: u32 = 2;
    loop {
        match pods.list(&ListParams::default()).await {
            Ok(list) => {
                for pod in list.items {
                    if let Err(e) = step(&client, &pod, &mut next_ip).await {
                        tracing::debug!(
                            pod = ?pod.metadata.name,
                            namespace = ?pod.metadata.namespace,
                            error = %e,
                            "node simulator"
                        );
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "node simulator: listing pods"),
        }
        tokio::time::sleep(PERIOD).await;
    }
}

/// What the simulator does to one pod: finish deleting it (what the kubelet does once the
/// containers are gone), bind it, or report it running.
async fn step(client: &kube::Client, pod: &Pod, next_ip: &mut u32) -> Result<(), kube::Error> {
    let (Some(name), Some(ns)) = (&pod.metadata.name, &pod.metadata.namespace) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if pod.metadata.deletion_timestamp.is_some() {
        if node == Some(NODE_NAME) {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            return ignore_not_found(api.delete(name, &dp).await.map(|_| ()));
        }
        return Ok(());
    }
    match node {
        None => {
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(NODE_NAME.into()),
                    ..ObjectReference::default()
                },
            };
            ignore_not_found(
                api.create_subresource::<_, Value>(
                    "binding",
                    name,
                    &PostParams::default(),
                    &binding,
                )
                .await
                .map(|_| ()),
            )?;
            report_running(&api, pod, next_ip).await
        }
        Some(NODE_NAME) if !is_running(pod) => report_running(&api, pod, next_ip).await,
        Some(_) => Ok(()),
    }
}

fn ignore_not_found(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

/// Whether the simulator already reported this pod running.
fn is_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some())
}

/// The pod IP for the `n`th pod: 10.244.x.y.
fn pod_ip(n: u32) -> String {
    let n = n % (1 << 16);
    Ipv4Addr::new(10, 244, (n >> 8) as u8, (n & 0xff) as u8).to_string()
}

async fn report_running(api: &Api<Pod>, pod: &Pod, next_ip: &mut u32) -> Result<(), kube::Error> {
    let Some(name) = &pod.metadata.name else {
        return Ok(());
    };
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let ip = if host_network {
        NODE_IP.to_string()
    } else {
        *next_ip = next_ip.wrapping_add(1);
        pod_ip(*next_ip)
    };
    let patch = running_status(pod, &ip, now());
    ignore_not_found(
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ()),
    )
}

/// The merge patch that reports `pod` running and ready on the simulated node.
fn running_status(pod: &Pod, ip: &str, t: Time) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let container_status =
        |c: &k8s_openapi::api::core::v1::Container, state: Value, started: bool| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": format!("testenv://{}", c.image.clone().unwrap_or_default()),
                "containerID": format!("testenv://{uid}/{}", c.name),
                "ready": true,
                "started": started,
                "restartCount": 0,
                "state": state,
            })
        };
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| container_status(c, json!({"running": {"startedAt": t}}), true))
        .collect();
    let init_containers: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let done = json!({"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t,
                "containerID": format!("testenv://{uid}/{}", c.name),
            }});
            container_status(c, done, false)
        })
        .collect();
    let condition = |type_: &str| json!({"type": type_, "status": "True", "lastProbeTime": null, "lastTransitionTime": t});
    json!({"status": {
        "phase": "Running",
        "conditions": [
            condition("PodScheduled"),
            condition("Initialized"),
            condition("ContainersReady"),
            condition("Ready"),
        ],
        "hostIP": NODE_IP,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": t,
        "containerStatuses": containers,
        "initContainerStatuses": init_containers,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ips_stay_in_the_pod_range() {
        assert_eq!(pod_ip(2), "10.244.0.2");
        assert_eq!(pod_ip(258), "10.244.1.2");
        assert_eq!(pod_ip(65536 + 3), "10.244.0.3");
    }

    #[test]
    fn the_running_status_reports_every_container_ready() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "envoy"}],
            },
        }))
        .unwrap();
        let patch = running_status(&pod, "10.244.0.9", now());
        let status: k8s_openapi::api::core::v1::PodStatus =
            serde_json::from_value(patch["status"].clone()).unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.9"));
        let conditions = status.conditions.unwrap();
        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == t && c.status == "True"),
                "{t}"
            );
        }
        let cs = status.container_statuses.unwrap();
        assert_eq!(
            cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["app", "side"]
        );
        assert!(cs.iter().all(|c| c.ready
            && c.started == Some(true)
            && c.state.as_ref().unwrap().running.is_some()));
        let init = status.init_container_statuses.unwrap();
        assert_eq!(
            init[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            0
        );
    }
}
