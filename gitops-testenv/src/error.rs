//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong starting or using a [`TestEnv`](crate::TestEnv) or a
/// [`GitHttpServer`](crate::GitHttpServer).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No folder with the control-plane binaries was found.
    #[error(
        "no test control-plane binaries (etcd, kube-apiserver) found; looked in {}; run `cargo xtask testenv` to install them, or point KUBEBUILDER_ASSETS at a folder holding them",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    AssetsNotFound {
        /// The folders that were searched, in order.
        searched: Vec<PathBuf>,
    },
    /// A binary the configuration asks for is not in the assets folder.
    #[error("{} not found (run `cargo xtask testenv` to install the test control plane)", path.display())]
    MissingBinary {
        /// Where the binary was expected.
        path: PathBuf,
    },
    /// A file-system or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (openssl, git) ran but failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// Making the test CA or the TLS configuration of an HTTPS test server failed.
    #[error("{context}: {message}")]
    Tls {
        /// What was being done.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// A control-plane process exited while it was expected to run.
    #[error("{name} exited ({status}); last lines of {}:\n{log_tail}", log.display())]
    ProcessExited {
        /// The process (etcd, kube-apiserver, kube-controller-manager).
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        log_tail: String,
    },
    /// A control-plane process did not become ready in time.
    #[error("{name} not ready within {timeout:?} ({waiting_for}); last lines of {}:\n{log_tail}", log.display())]
    NotReady {
        /// The process.
        name: String,
        /// How long was waited.
        timeout: Duration,
        /// What was still missing.
        waiting_for: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        log_tail: String,
    },
    /// The API server's authorizer did not allow what [`TestEnv::grant`](crate::TestEnv::grant)
    /// granted within the timeout.
    #[error(
        "{user} was not allowed to {request} within {timeout:?} after the grant of Role {role}"
    )]
    NotGranted {
        /// The subject's user name.
        user: String,
        /// What was not allowed: `VERB RESOURCE in namespace NS`.
        request: String,
        /// The Role, `namespace/name`.
        role: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The generated kubeconfig could not be turned into a client configuration.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// A request to the API server failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
