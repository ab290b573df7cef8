//! Real components for tests, like controller-runtime's envtest: a local Kubernetes control plane
//! ([`TestEnv`]), a Git smart-HTTP server ([`GitHttpServer`]) and an OCI registry
//! ([`OciRegistry`], see [`registry`]); HTTPS variants of the HTTP servers use a throwaway
//! [`TestCa`] (see [`tls`]).
//!
//! # The control plane
//!
//! [`TestEnv::start`] runs etcd, kube-apiserver and kube-controller-manager (Kubernetes 1.20.2)
//! as child processes on free loopback ports, in a temporary folder that also holds their logs,
//! and waits until the API server's `/readyz` answers `ok` and the `default` namespace exists.
//! Clients authenticate with a random static bearer token as a member of `system:masters`, and
//! verify the API server's self-signed certificate (no `insecure-skip-tls-verify`).
//!
//! kube-controller-manager gives Deployments their ReplicaSets and Pods and runs garbage
//! collection and namespace deletion. Nothing runs containers: a node simulator (what kwok does)
//! registers a Ready Node named [`NODE_NAME`], binds every unscheduled Pod to it, reports it
//! running and ready (phase `Running`, Ready conditions, running container statuses, a pod IP),
//! and finishes the deletion of terminating Pods. So a Deployment becomes Available.
//! Both can be turned off with [`TestEnvBuilder::controller_manager`] and
//! [`TestEnvBuilder::node_simulator`], which makes the start faster.
//!
//! Everything stops when the [`TestEnv`] is dropped (also while a failing test unwinds): the
//! processes get SIGTERM, then SIGKILL after a grace period, and are waited for. When a process
//! dies while the environment runs, a watchdog prints why (the start of a Go crash, or the end
//! of the log) to stderr, and [`TestEnv::check`] returns it as [`Error::ProcessExited`].
//!
//! For fault tests, [`TestEnv::stop_apiserver`] (SIGTERM) or [`TestEnv::kill_apiserver`]
//! (SIGKILL) end only kube-apiserver while etcd keeps every object, and
//! [`TestEnv::start_apiserver`] starts it again on the same address with the same certificate
//! and token, so existing clients keep working.
//!
//! ## Where the binaries come from
//!
//! 1. `KUBEBUILDER_ASSETS`, a folder holding `etcd`, `kube-apiserver` and (needed for the
//!    controller-manager) `kube-controller-manager`, when it holds them;
//! 2. else [`default_assets_dir`]: `$XDG_CACHE_HOME/gitops-testenv/k8s-1.20.2`, or
//!    `$HOME/.cache/gitops-testenv/k8s-1.20.2`;
//! 3. else [`Error::AssetsNotFound`], which says to run `cargo xtask testenv` (it installs them).
//!
//! [`TestEnvBuilder::assets`] names the folder explicitly. `openssl` must be on `PATH` (it makes
//! the service-account key pair).
//!
//! Kubernetes 1.20 built with Go 1.18 or newer needs its vendored `github.com/modern-go/reflect2`
//! replaced by v1.0.2: with v1.0.1 the API server crashes (`unexpected fault address`) on the
//! first write of a custom resource.
//!
//! ```no_run
//! use gitops_testenv::TestEnv;
//! use k8s_openapi::api::core::v1::Namespace;
//! use kube::api::{Api, ListParams};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let env = TestEnv::start().await?;
//! let namespaces: Api<Namespace> = Api::all(env.client());
//! assert!(namespaces.list(&ListParams::default()).await?.items.len() >= 3);
//!
//! // For kubectl, or a program that calls `kube::Config::infer()`:
//! env.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! # Ok(()) }
//! ```
//!
//! For impersonation tests, [`TestEnv::grant`] gives a user or ServiceAccount a Role
//! ([`rbac::Grant`]) and [`TestEnv::impersonating_client`] acts as it; [`requests::RequestLog`]
//! records the requests a `kube::Client` sends, to count or assert them.
//!
//! # The S3 server
//!
//! [`S3Server`] runs moto's `moto_server` on a free loopback port for Bucket sources.
//! [`AzuriteServer`] runs Azurite's Blob service the same way for the `azure` provider;
//! [`gcs`] explains how the `gcp` provider is tested (against moto, with a throw-away
//! service-account key from [`gcs::service_account_key`]).
//!
//! # The Git server
//!
//! [`GitHttpServer`] serves the bare repositories under a folder over smart HTTP on
//! `127.0.0.1`, running `git http-backend` as a CGI program for each request (so it needs `git`
//! on `PATH`), anonymously or behind basic or bearer authentication:
//!
//! ```no_run
//! use gitops_testenv::GitHttpServer;
//!
//! # async fn example() -> Result<(), gitops_testenv::Error> {
//! // /srv/repos/demo.git is a bare repository.
//! let git = GitHttpServer::start(std::path::Path::new("/srv/repos")).await?;
//! let url = format!("{}/demo.git", git.url()); // git clone works on it
//! # Ok(()) }
//! ```

pub mod archive;
mod assets;
pub mod azurite;
pub mod charts;
mod env;
mod error;
pub mod gcs;
pub mod git_http;
mod http1;
mod node_sim;
mod process;
pub mod rbac;
pub mod registry;
pub mod requests;
pub mod s3;
pub mod sshd;
pub mod static_http;
pub mod tls;

pub use assets::{KUBERNETES_VERSION, assets_dir, default_assets_dir};
pub use azurite::{AZURITE_START_TIMEOUT, AzuriteServer};
pub use charts::package_chart;
pub use env::{DEFAULT_START_TIMEOUT, TestEnv, TestEnvBuilder};
pub use error::Error;
pub use git_http::GitHttpServer;
pub use node_sim::NODE_NAME;
pub use registry::OciRegistry;
pub use s3::{S3_START_TIMEOUT, S3AccessKey, S3Server};
pub use sshd::SshGitServer;
pub use static_http::StaticHttpServer;
pub use tls::TestCa;
