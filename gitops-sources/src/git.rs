//! The Git source: Flux's GitRepository (`source.toolkit.fluxcd.io/v1`) on top of gix.
//!
//! [`GitSource`] implements [`gitops_core::Source`]. One fetch:
//!
//! 1. lists the remote's refs (`ls-refs`, protocol v2) and picks the commit the
//!    [`GitReference`] selects, with Flux's precedence `branch` < `tag` < `semver` < `name` <
//!    `commit` (later wins; `commit` may be combined with `branch`);
//! 2. when the previous artifact has the same revision (and was built with the same ignore
//!    rules), returns [`Fetched::Unchanged`] without downloading anything — Flux's "no-op clone";
//! 3. otherwise fetches that one commit with depth 1 into a temporary bare repository (a shallow
//!    clone, as Flux's every reconcile does), writes its tree to a temporary folder and archives it,
//!    minus the [`sourceignore`](crate::sourceignore) exclusions, with
//!    [`ArtifactStore::archive_dir`].
//!
//! With the `git-verify` feature, `GitSource::with_verification` checks the OpenPGP signature
//! of the fetched commit and/or annotated tag after step 3's fetch, before the tree is written
//! (Flux's `spec.verify`, see `crate::git_verify`); a failure stores nothing.
//!
//! Transports: `file://`, `git://`, `http://`, `https://` and `ssh://` (also scp-like
//! `user@host:path`). SSH runs the system `ssh` program (OpenSSH) with the identity and
//! `known_hosts` of [`GitAuth::Ssh`], written to a private temporary folder for the duration of
//! one fetch; the host key is always verified (`StrictHostKeyChecking=yes`), nothing of the
//! user's or system's SSH configuration is read, and nothing prompts.
//! HTTPS remotes are verified against the system's roots plus, when given, the CA certificates
//! of [`GitSource::with_ca_certificate`] (Flux's `ca.crt` secret key), on rustls with ring.
//! Protocol v2 is requested explicitly (`protocol.version=2`): with v0/v1 servers gix may fetch
//! more than asked, so after a depth-1 fetch the repository is checked with `is_shallow()` and a
//! warning is logged when it is not.
//!
//! Revisions follow Flux (RFC-0005): `<branch>@sha1:<hex>`, `<tag>@sha1:<hex>` (also for
//! semver), the full ref for `name` (`refs/pull/1/head@sha1:<hex>`), `sha1:<hex>` for a commit
//! alone and `<branch>@sha1:<hex>` for a commit with a branch.
//!
//! Submodules (`spec.recurseSubmodules`): after the superproject's tree is written, each gitlink
//! is looked up in the commit's `.gitmodules` (relative URLs resolved against the repository that
//! records them), the recorded commit is fetched with depth 1 (through gix, like the superproject)
//! and its tree written at the gitlink's path, recursively. The GitRepository's credentials go to
//! submodules with the same scheme, host and port only; `file://` submodules are followed only
//! when the superproject is a `file://` URL. The revision stays the superproject's; a failing
//! submodule fails the fetch with [`GitError::Submodule`], naming its path and redacted URL.
//!
//! Includes (`spec.include`, [`GitSource::with_includes`]): the artifacts of other
//! GitRepositories are copied into this one's before archiving, as source-controller's
//! `reconcileInclude`; their revisions and digests are recorded in the metadata
//! ([`METADATA_INCLUDES`]) and take part in the "unchanged" check.
//!
//! gix is blocking: [`Source::fetch`] runs it on tokio's blocking pool and gives up after the
//! spec's `timeout` (Flux's default 60s), interrupting the pack download.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use gitops_core::{
    Algorithm, Artifact, ArtifactKey, ArtifactStore, Digest, Fetched, Revision, Source, Stage,
    StoreError,
};
use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::protocol::handshake::Ref;
use gix::remote::Direction;
use serde::{Deserialize, Serialize};

use crate::semver_range::Range;
use crate::sourceignore::SourceIgnore;
use crate::util::{certificate_problem, go_duration, install_crypto_provider};

mod include;
mod submodules;

pub use include::{
    GitRepositoryInclude, Include, IncludedRepository, METADATA_INCLUDE_PREFIX, METADATA_INCLUDES,
};
pub use submodules::METADATA_RECURSE_SUBMODULES;

/// The branch used when the spec names no ref, as Flux's GitRepository (`master`). When the remote
/// has no `master` branch and no ref was given at all, the remote's `HEAD` (its default branch)
/// is used instead.
pub const DEFAULT_BRANCH: &str = "master";

/// Flux's default `spec.timeout` for Git operations.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Artifact metadata key holding the commit subject (first line of the message), which Flux puts
/// into its `NewArtifact` event.
pub const METADATA_COMMIT_SUBJECT: &str = "commit.subject";

/// Artifact metadata key holding a fingerprint of the ignore rules the artifact was built with
/// (`default` or the sha256 of `spec.ignore`), Flux's `status.observedIgnore`: a changed value
/// forces a new artifact even when the commit is the same.
pub const METADATA_IGNORE: &str = "ignore.digest";

/// Artifact metadata key holding a fingerprint of the signature verification the artifact was
/// built with (sha256 of `spec.verify.mode` and the public keys); absent without verification. Like
/// [`METADATA_IGNORE`], a changed value forces a new fetch even when the commit is the same, so an
/// artifact of an unverified spec is never reused once verification is turned on (Flux's
/// `status.sourceVerificationMode` check).
pub const METADATA_VERIFY: &str = "verify.digest";

/// Artifact metadata key holding the verification mode that passed (`HEAD`, `Tag`, `TagAndHEAD`).
pub const METADATA_VERIFIED_MODE: &str = "verified.mode";

/// Artifact metadata key holding the fingerprint (uppercase hex) of the primary key whose
/// signature on the commit verified (modes `HEAD` and `TagAndHEAD`).
pub const METADATA_VERIFIED_FINGERPRINT: &str = "verified.fingerprint";

/// Artifact metadata key holding the fingerprint of the primary key whose signature on the tag
/// object verified (modes `Tag` and `TagAndHEAD`).
pub const METADATA_VERIFIED_TAG_FINGERPRINT: &str = "verified.tag.fingerprint";

/// The local ref a fetched commit is stored under in the temporary repository.
const FETCH_REF: &str = "refs/heads/gitops-fetch";

/// The desired state of a Git source, with the field names of Flux's `GitRepositorySpec`
/// (serialised in camelCase, `ref` for [`GitRepositorySpec::reference`], `timeout` as a Go
/// duration string such as `60s`). `Debug` redacts user info in the URL.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// Repository URL: `file://`, `git://`, `http://` or `https://`.
    pub url: String,
    /// Which commit to fetch; `None` means the default branch ([`DEFAULT_BRANCH`]).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitReference>,
    /// Limit for the Git operations of one fetch ([`DEFAULT_TIMEOUT`] when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "go_duration")]
    pub timeout: Option<Duration>,
    /// Exclusions in gitignore syntax; replaces the default set (see
    /// [`sourceignore`](crate::sourceignore)), as Flux's `spec.ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Check out the submodules too, recursively, at the commits the superproject records
    /// (Flux's `spec.recurseSubmodules`; see the [module documentation](self)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recurse_submodules: bool,
}

impl fmt::Debug for GitRepositorySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitRepositorySpec")
            .field("url", &redact_url(&self.url))
            .field("reference", &self.reference)
            .field("timeout", &self.timeout)
            .field("ignore", &self.ignore)
            .field("recurse_submodules", &self.recurse_submodules)
            .finish()
    }
}

/// Flux's `GitRepositoryRef`: which commit to check out. Precedence, lowest first: `branch`,
/// `tag`, `semver`, `name`, `commit`; `commit` together with `branch` fetches the branch and
/// requires the commit to be on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitReference {
    /// Branch name, e.g. `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag name, e.g. `v1.2.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Masterminds/semver range over the tags, e.g. `>=1.0.0 <2.0.0`; the newest match wins (see
    /// [`semver_range`](crate::semver_range)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Full reference name, e.g. `refs/pull/420/head` or `refs/merge-requests/1/head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Full SHA-1 commit id (40 hex characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Credentials from a GitRepository's `secretRef`. For HTTP(S) remotes (`username`/`password`
/// or `bearerToken`) they are sent as an `Authorization` header with every request (redirects are
/// then refused, so they never reach another host); ignored for `file://` and `git://`. SSH
/// remotes need [`GitAuth::Ssh`] (`identity` + `known_hosts`), and it is refused for other URLs.
///
/// `Debug` prints `***` instead of secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum GitAuth {
    /// Anonymous access.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// SSH public-key authentication, with the server's host key checked against `known_hosts`
    /// (Flux's `identity` and `known_hosts` secret keys).
    Ssh {
        /// The private key, in OpenSSH or PEM format, without a passphrase.
        identity: String,
        /// `known_hosts` lines for the server, e.g. `[host]:2222 ssh-ed25519 AAAA…` for a port
        /// other than 22. Required: unknown host keys are refused.
        known_hosts: String,
        /// The login user; `None` takes the URL's user, else `git`.
        user: Option<String>,
    },
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            GitAuth::Bearer { .. } => f.debug_struct("Bearer").field("token", &"***").finish(),
            GitAuth::Ssh {
                known_hosts, user, ..
            } => f
                .debug_struct("Ssh")
                .field("identity", &"***")
                .field("known_hosts_lines", &known_hosts.lines().count())
                .field("user", user)
                .finish(),
        }
    }
}

impl GitAuth {
    /// The `Authorization` header line, if any.
    fn header(&self) -> Option<String> {
        match self {
            GitAuth::None | GitAuth::Ssh { .. } => None,
            GitAuth::Basic { username, password } => Some(format!(
                "Authorization: Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            )),
            GitAuth::Bearer { token } => Some(format!("Authorization: Bearer {token}")),
        }
    }

    /// Strings that must never appear in logs or errors.
    fn secrets(&self) -> Vec<String> {
        match self {
            GitAuth::None => Vec::new(),
            GitAuth::Basic { username, password } => vec![
                password.clone(),
                base64(format!("{username}:{password}").as_bytes()),
            ],
            GitAuth::Bearer { token } => vec![token.clone()],
            // The whole key, and each line of its body (in case a tool prints one).
            GitAuth::Ssh { identity, .. } => std::iter::once(identity.trim().to_string())
                .chain(
                    identity
                        .lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                        .map(str::to_string),
                )
                .collect(),
        }
    }
}

/// Errors of the Git source. Each names the repository URL (user info replaced by `***`) and the
/// reference being fetched; messages from gix are scrubbed of the configured secrets.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL cannot be used (bad syntax, unsupported scheme). Terminal.
    #[error("git repository {url}: invalid URL: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The reference in the spec is malformed (bad commit id, semver range or ref name). Terminal.
    #[error("git repository {url}: invalid {reference}: {reason}")]
    InvalidReference {
        /// The URL, redacted.
        url: String,
        /// The reference, e.g. `semver ">=1.0"`.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The remote has no ref the spec selects (no such branch, tag, name, or no tag in the semver
    /// range). Terminal until the spec changes.
    #[error("git repository {url}: {reference} not found: {reason}")]
    ReferenceNotFound {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// Details, e.g. which tags were considered.
        reason: String,
    },
    /// The commit is not on the given branch (Flux requires it to be). Terminal.
    #[error("git repository {url}: commit {commit} is not on branch {branch:?}")]
    CommitNotOnBranch {
        /// The URL, redacted.
        url: String,
        /// The commit id.
        commit: String,
        /// The branch.
        branch: String,
    },
    /// The remote asked for credentials or refused the given ones. Retryable (the secret may be
    /// fixed without changing the spec).
    #[error("git repository {url}: {reference}: authentication failed: {message}")]
    Authentication {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// What gix reported, secrets removed.
        message: String,
    },
    /// The SSH server's host key is not in the configured `known_hosts` (or differs from it).
    /// Terminal: the `known_hosts` of the secret has to change.
    #[error("git repository {url}: SSH host key verification failed: {message}")]
    HostKeyVerification {
        /// The URL, redacted.
        url: String,
        /// What ssh reported (which host, which key type).
        message: String,
    },
    /// The CA certificate given with [`GitSource::with_ca_certificate`] (Flux's `ca.crt`) is not
    /// PEM, holds no certificate, or a certificate in it cannot be parsed. Terminal: the secret
    /// has to change.
    #[error("git repository {url}: invalid CA certificate (ca.crt): {reason}")]
    InvalidCaCertificate {
        /// The URL, redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTPS server's certificate was not accepted: it is not signed by a trusted CA (the
    /// system's roots and the configured `ca.crt`), is for another host, or has expired.
    /// Retryable, like every fetch failure Flux retries at the next interval: the server's
    /// certificate may be renewed, or the secret fixed, without a change of the spec.
    #[error(
        "git repository {url}: {reference}: TLS certificate verification failed: {message} (is the server's CA in the secret's ca.crt?)"
    )]
    Certificate {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// What the TLS library reported, secrets removed.
        message: String,
    },
    /// A network or protocol failure while `operation` (listing refs, fetching). Retryable.
    #[error("git repository {url}: {reference}: {operation}: {message}")]
    Remote {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// `listing remote refs` or `fetching`.
        operation: &'static str,
        /// The error chain, secrets removed.
        message: String,
    },
    /// The fetch took longer than the spec's timeout. Retryable.
    #[error("git repository {url}: {reference}: timed out after {timeout:?}")]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// The limit.
        timeout: Duration,
    },
    /// Reading the fetched objects or writing the tree locally failed. Retryable.
    #[error("git repository {url}: {reference}: checking out {commit}: {message}")]
    Checkout {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// The commit being written out.
        commit: String,
        /// What failed.
        message: String,
    },
    /// Writing the artifact failed. Retryable.
    #[error("git repository {url}: {reference}: storing the artifact: {source}")]
    Store {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// The store's error.
        source: StoreError,
    },
    /// Signature verification (`spec.verify`) failed: no artifact was written. Terminal until
    /// the keys, the spec or the upstream object change. The message carries the
    /// [`reason`](crate::git_verify::VerifyError::reason) Flux gives `SourceVerified=False`.
    #[cfg(feature = "git-verify")]
    #[error("git repository {url}: {reference}: {}: {error}", error.reason())]
    Verification {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// What failed (part of the message, not a separate `source()`, so that error chains
        /// print it once).
        error: Box<crate::git_verify::VerifyError>,
    },
    /// The blocking task running gix failed unexpectedly. Retryable.
    #[error("git repository {url}: {reference}: fetch task failed: {message}")]
    Task {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// What happened.
        message: String,
    },
    /// A submodule (with `recurseSubmodules`) could not be resolved, fetched or checked out.
    /// Retryable when the cause is (network, credentials), terminal when `.gitmodules` is wrong.
    #[error("git repository {url}: submodule {path} ({submodule_url}): {message}")]
    Submodule {
        /// The superproject's URL, redacted.
        url: String,
        /// The submodule's path from the superproject's root, `/`-separated.
        path: String,
        /// The submodule's URL (resolved when relative), redacted.
        submodule_url: String,
        /// What failed, secrets removed.
        message: String,
        /// Whether trying again can help.
        retryable: bool,
    },
    /// A `spec.include` entry has an invalid path or name. Terminal.
    #[error("git repository {url}: invalid {field} {path:?}: {reason}")]
    InvalidInclude {
        /// The URL, redacted.
        url: String,
        /// The field, e.g. `spec.include[0].toPath`.
        field: String,
        /// The value.
        path: String,
        /// What is wrong, and which repository the include names.
        reason: String,
    },
    /// An included artifact could not be read or copied (missing from the store, digest
    /// mismatch, `fromPath` not in it). Retryable: the included repository may produce a new one.
    #[error("git repository {url}: {reference}: include {name:?}: {message}")]
    Include {
        /// The URL, redacted.
        url: String,
        /// The reference.
        reference: String,
        /// The included repository's name.
        name: String,
        /// What failed.
        message: String,
    },
}

impl GitError {
    /// Whether trying again later can help (network, authentication, local I/O), as opposed to
    /// a spec that has to change (URL, reference).
    pub fn is_retryable(&self) -> bool {
        if let GitError::Submodule { retryable, .. } = self {
            return *retryable;
        }
        #[cfg(feature = "git-verify")]
        if matches!(self, GitError::Verification { .. }) {
            return false;
        }
        !matches!(
            self,
            GitError::InvalidUrl { .. }
                | GitError::InvalidReference { .. }
                | GitError::ReferenceNotFound { .. }
                | GitError::CommitNotOnBranch { .. }
                | GitError::HostKeyVerification { .. }
                | GitError::InvalidInclude { .. }
                | GitError::InvalidCaCertificate { .. }
        )
    }
}

impl From<GitError> for gitops_core::Error {
    fn from(e: GitError) -> Self {
        let retryable = e.is_retryable();
        gitops_core::Error::new(Stage::Fetch, retryable, e)
    }
}

/// What the spec's reference resolves to before looking at the remote.
#[derive(Clone, Debug)]
enum Selector {
    /// No reference: `master`, else the remote HEAD.
    Default,
    Branch(String),
    Tag(String),
    Semver(Range),
    Name(String),
    Commit {
        id: ObjectId,
        branch: Option<String>,
    },
}

/// The commit a selector picked on the remote.
#[derive(Clone, Debug)]
struct Target {
    /// Revision pointer (`main`, `v1.0.0`, `refs/pull/1/head`), `None` for a bare commit.
    pointer: Option<String>,
    /// What to ask the remote for: a full ref name, or a hex commit id.
    want: String,
    /// The commit: from the listing, or the spec's exact commit.
    commit: ObjectId,
    /// Fetch with depth 1 (everything but commit-with-branch, which needs the branch history).
    shallow: bool,
}

/// A commit fetched by [`GitSource::fetch_into_blocking`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedCommit {
    /// The Flux revision, e.g. `main@sha1:<hex>`.
    pub revision: Revision,
    /// The commit id, 40 lowercase hex characters.
    pub commit: String,
    /// The first line of the commit message.
    pub subject: String,
    /// Whether the repository holding it is shallow (it should be, unless the spec combines
    /// `commit` with `branch`, the commit has no parents, or the server does not speak protocol v2).
    pub shallow: bool,
}

/// Fetches a Git repository into artifacts, as Flux's GitRepository reconciler does.
/// See the [module documentation](self).
///
/// `Debug` shows the redacted URL and no secrets.
#[derive(Clone)]
pub struct GitSource {
    key: ArtifactKey,
    spec: GitRepositorySpec,
    /// The credentials in use: the given ones, else those of the URL's user info.
    auth: GitAuth,
    /// The URL gix connects to: the spec's, without user info.
    fetch_url: String,
    /// Strings scrubbed from every message: credentials and the URL's user info.
    secrets: Vec<String>,
    selector: Selector,
    redacted_url: String,
    reference: String,
    timeout: Duration,
    /// `spec.include`, validated ([`GitSource::with_includes`]).
    includes: Vec<include::CheckedInclude>,
    /// Extra trusted roots for HTTPS (Flux's `ca.crt`), DER; empty for none.
    ca_certificates: Vec<reqwest::Certificate>,
    /// Signature verification, see [`GitSource::with_verification`].
    #[cfg(feature = "git-verify")]
    verification: Option<Verifier>,
}

impl fmt::Debug for GitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSource")
            .field("key", &self.key)
            .field("url", &self.redacted_url)
            .field("reference", &self.reference)
            .field("ignore", &self.spec.ignore)
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .field("recurse_submodules", &self.spec.recurse_submodules)
            .field(
                "includes",
                &self.includes().map(|i| &i.name).collect::<Vec<_>>(),
            )
            .field("ca_certificates", &self.ca_certificates.len())
            .finish()
    }
}

impl GitSource {
    /// Validates `spec` (URL scheme, commit id, semver range, ref names) and builds the source.
    /// Artifacts are stored under `key`.
    pub fn new(
        key: ArtifactKey,
        spec: GitRepositorySpec,
        auth: GitAuth,
    ) -> Result<GitSource, GitError> {
        let redacted_url = redact_url(&spec.url);
        let invalid_url = |reason: &str| GitError::InvalidUrl {
            url: redacted_url.clone(),
            reason: reason.to_string(),
        };
        let lower = spec.url.to_ascii_lowercase();
        let is_ssh = lower.starts_with("ssh://")
            || (!lower.contains("://") && spec.url.contains('@') && spec.url.contains(':'));
        if is_ssh {
            return GitSource::new_ssh(key, spec, auth, redacted_url);
        }
        if !["file://", "git://", "http://", "https://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(invalid_url(
                "expected a file://, git://, http://, https:// or ssh:// URL",
            ));
        }
        if matches!(auth, GitAuth::Ssh { .. }) {
            return Err(invalid_url(
                "SSH credentials (identity, known_hosts) need an ssh:// URL",
            ));
        }
        let (fetch_url, userinfo) = split_userinfo(&spec.url);
        let mut secrets = auth.secrets();
        if let Some((user, password)) = &userinfo {
            secrets.push(user.clone());
            secrets.extend(password.clone());
            if let Some(raw) = spec.url.split("://").nth(1).and_then(|r| r.split_once('@')) {
                secrets.push(raw.0.to_string());
            }
        }
        // User info in the URL stands for basic credentials when none are given, so that gix
        // does not refuse it over plain http and it follows the same header path.
        let auth = match (auth, userinfo) {
            (GitAuth::None, Some((username, password))) => GitAuth::Basic {
                username,
                password: password.unwrap_or_default(),
            },
            (auth, _) => auth,
        };
        secrets.extend(auth.secrets());
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        if let Err(e) = gix::url::parse(fetch_url.as_bytes().as_bstr()) {
            let message = scrub(&e.to_string(), &spec.url, &redacted_url, &secrets);
            return Err(invalid_url(&message));
        }
        let (selector, reference) = selector(spec.reference.as_ref()).map_err(|(r, reason)| {
            GitError::InvalidReference {
                url: redacted_url.clone(),
                reference: r,
                reason,
            }
        })?;
        if auth != GitAuth::None && lower.starts_with("http://") {
            tracing::warn!(
                url = %redacted_url,
                "sending credentials over plain http"
            );
        }
        let timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Ok(GitSource {
            key,
            spec,
            auth,
            fetch_url,
            secrets,
            selector,
            redacted_url,
            reference,
            timeout,
            includes: Vec::new(),
            ca_certificates: Vec::new(),
            #[cfg(feature = "git-verify")]
            verification: None,
        })
    }

    /// [`GitSource::new`] for `ssh://` and scp-like URLs: requires [`GitAuth::Ssh`] and puts its
    /// user (else the URL's, else `git`) into the URL gix connects to.
    fn new_ssh(
        key: ArtifactKey,
        spec: GitRepositorySpec,
        auth: GitAuth,
        redacted_url: String,
    ) -> Result<GitSource, GitError> {
        let invalid_url = |reason: &str| GitError::InvalidUrl {
            url: redacted_url.clone(),
            reason: reason.to_string(),
        };
        let GitAuth::Ssh {
            identity,
            known_hosts,
            user,
        } = &auth
        else {
            return Err(invalid_url(
                "ssh URLs need SSH credentials (a secret with identity and known_hosts)",
            ));
        };
        if identity.trim().is_empty() {
            return Err(invalid_url("the SSH identity (private key) is empty"));
        }
        if known_hosts.trim().is_empty() {
            return Err(invalid_url(
                "known_hosts is empty: the server's host key must be given",
            ));
        }
        let mut secrets = auth.secrets();
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let mut url = gix::url::parse(spec.url.as_bytes().as_bstr())
            .map_err(|e| invalid_url(&scrub(&e.to_string(), &spec.url, &redacted_url, &secrets)))?;
        if url.scheme != gix::url::Scheme::Ssh || url.host().is_none() {
            return Err(invalid_url("expected ssh://[user@]host[:port]/path"));
        }
        if url.password().is_some() {
            return Err(invalid_url(
                "ssh URLs must not contain a password; use an SSH identity",
            ));
        }
        let user = user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .or(url.user())
            .unwrap_or("git")
            .to_string();
        if user.starts_with('-') || user.contains(char::is_whitespace) {
            return Err(invalid_url("invalid SSH user name"));
        }
        url.set_user(Some(user));
        let fetch_url = url.to_bstring().to_str_lossy().into_owned();
        let (selector, reference) = selector(spec.reference.as_ref()).map_err(|(r, reason)| {
            GitError::InvalidReference {
                url: redacted_url.clone(),
                reference: r,
                reason,
            }
        })?;
        let timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Ok(GitSource {
            key,
            spec,
            auth,
            fetch_url,
            secrets,
            selector,
            redacted_url,
            reference,
            timeout,
            includes: Vec::new(),
            ca_certificates: Vec::new(),
            #[cfg(feature = "git-verify")]
            verification: None,
        })
    }

    /// Trusts the PEM certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----` blocks:
    /// the `ca.crt` key of a GitRepository's `secretRef`, or the deprecated `caFile`) for HTTPS
    /// remotes, besides the system's roots, as Flux's Git client appends them to the system pool.
    /// Ignored for other transports. Calling it again replaces the previous certificates.
    ///
    /// Errors: [`GitError::InvalidCaCertificate`] (terminal, names the repository) when `pem`
    /// holds no certificate, is not valid PEM, or a certificate cannot be parsed.
    pub fn with_ca_certificate(mut self, pem: &[u8]) -> Result<GitSource, GitError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let invalid = |reason: String| GitError::InvalidCaCertificate {
            url: self.redacted_url.clone(),
            reason,
        };
        let mut certificates = Vec::new();
        for (i, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let der = der.map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
            // Parsed as a trust anchor here, so that a bad certificate is reported now and not
            // as a failure to build the HTTP client in the middle of a fetch.
            rustls::RootCertStore::empty()
                .add(der.clone())
                .map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
            let certificate = reqwest::Certificate::from_der(&der)
                .map_err(|e| invalid(format!("certificate {}: {e}", i + 1)))?;
            certificates.push(certificate);
        }
        if certificates.is_empty() {
            return Err(invalid(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_string(),
            ));
        }
        self.ca_certificates = certificates;
        Ok(self)
    }

    /// How many CA certificates [`GitSource::with_ca_certificate`] added (0 without).
    pub fn ca_certificate_count(&self) -> usize {
        self.ca_certificates.len()
    }

    /// The store key artifacts are written under.
    pub fn key(&self) -> &ArtifactKey {
        &self.key
    }

    /// The spec this source was built from.
    pub fn spec(&self) -> &GitRepositorySpec {
        &self.spec
    }

    /// The URL with user info replaced by `***`, as it appears in errors and logs.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The effective timeout of one fetch.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Lists the remote's refs and returns the revision the spec selects, downloading no objects.
    /// For a commit without a branch that is `sha1:<commit>`, without contacting the remote.
    ///
    /// Blocking: call it from a blocking thread. Not bound by the timeout.
    pub fn resolve_blocking(&self) -> Result<Revision, GitError> {
        let ssh = self.ssh_session()?;
        let dir = self.scratch_dir()?;
        let repo = self.init_repo(dir.path(), ssh.as_ref())?;
        let target = self.ssh_checked(ssh.as_ref(), self.resolve(&repo))?;
        Ok(self.revision(target.pointer.as_deref(), target.commit))
    }

    /// Fetches the selected commit into a new bare repository at `git_dir` (created; it must not
    /// exist or be empty) with depth 1 and reports it. This is the first half of
    /// [`Source::fetch`], without the artifact (signatures are verified when the source has
    /// verification, feature `git-verify`).
    ///
    /// Blocking: call it from a blocking thread. Not bound by the timeout.
    pub fn fetch_into_blocking(&self, git_dir: &Path) -> Result<FetchedCommit, GitError> {
        let ssh = self.ssh_session()?;
        let repo = self.init_repo(git_dir, ssh.as_ref())?;
        let target = self.ssh_checked(ssh.as_ref(), self.resolve(&repo))?;
        let fetched = self.download(&repo, &target, &AtomicBool::new(false));
        let fetched = self.ssh_checked(ssh.as_ref(), fetched)?;
        self.verify_fetched(&repo, &target, &fetched)?;
        Ok(fetched)
    }

    /// The whole fetch, on a blocking thread.
    fn run(
        &self,
        store: &ArtifactStore,
        last: Option<&Artifact>,
        interrupt: &AtomicBool,
    ) -> Result<Fetched, GitError> {
        let ssh = self.ssh_session()?;
        let dir = self.scratch_dir()?;
        let git_dir = dir.path().join("repo.git");
        let repo = self.init_repo(&git_dir, ssh.as_ref())?;
        let target = self.ssh_checked(ssh.as_ref(), self.resolve(&repo))?;
        let ignore_fingerprint = ignore_fingerprint(self.spec.ignore.as_deref());
        // Submodule setting and included artifacts: a change builds a new artifact.
        let content_metadata = self.content_metadata();

        // Flux's no-op clone: the listing already tells the revision. Exact commits are always
        // fetched (their revision is known without the remote, so the check would prove nothing).
        if let (Some(last), false) = (last, matches!(self.selector, Selector::Commit { .. })) {
            let revision = self.revision(target.pointer.as_deref(), target.commit);
            let same_ignore =
                last.metadata.get(METADATA_IGNORE).map(String::as_str) == Some(&ignore_fingerprint);
            let same_verify =
                last.metadata.get(METADATA_VERIFY).map(String::as_str) == self.verify_digest();
            if last.has_revision(&revision)
                && same_ignore
                && same_verify
                && include::same_content_config(last, &content_metadata)
                && store.has(last)
            {
                tracing::debug!(url = %self.redacted_url, %revision, "git revision unchanged");
                return Ok(Fetched::Unchanged(last.clone()));
            }
        }

        if interrupt.load(Ordering::Relaxed) {
            return Err(self.timeout_error());
        }
        let fetched = self.ssh_checked(ssh.as_ref(), self.download(&repo, &target, interrupt))?;
        // The key leaves the disk as soon as the network part is done.
        drop(ssh);
        // Before anything is written: a failed verification leaves no artifact.
        let verified = self.verify_fetched(&repo, &target, &fetched)?;
        let tree_dir = dir.path().join("tree");
        let commit_id = ObjectId::from_hex(fetched.commit.as_bytes())
            .map_err(|e| self.task_error(&e.to_string()))?;
        write_commit_tree(&repo, commit_id, &tree_dir, interrupt).map_err(|message| {
            GitError::Checkout {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                commit: fetched.commit.clone(),
                message,
            }
        })?;
        if self.spec.recurse_submodules {
            self.checkout_submodules(&repo, commit_id, &tree_dir, dir.path(), interrupt)?;
        }
        if interrupt.load(Ordering::Relaxed) {
            return Err(self.timeout_error());
        }
        self.apply_includes(store, &tree_dir, dir.path())?;
        let rules = SourceIgnore::load(&tree_dir, self.spec.ignore.as_deref()).map_err(|e| {
            GitError::Checkout {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                commit: fetched.commit.clone(),
                message: format!("reading .sourceignore files: {e}"),
            }
        })?;
        let include = |rel: &Path, is_dir: bool| !rules.is_excluded(rel, is_dir);
        let mut artifact = store
            .archive_dir(&self.key, fetched.revision.clone(), &tree_dir, &include)
            .map_err(|source| GitError::Store {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                source,
            })?;
        artifact.metadata = BTreeMap::from([
            (METADATA_COMMIT_SUBJECT.to_string(), fetched.subject.clone()),
            (METADATA_IGNORE.to_string(), ignore_fingerprint),
        ]);
        artifact.metadata.extend(content_metadata);
        artifact.metadata.extend(verified);
        tracing::info!(
            url = %self.redacted_url,
            revision = %artifact.revision,
            digest = %artifact.digest,
            "stored git artifact"
        );
        Ok(Fetched::New(artifact))
    }

    /// Metadata recording the submodule setting and the included artifacts.
    fn content_metadata(&self) -> BTreeMap<String, String> {
        let mut out = self.include_metadata();
        if self.spec.recurse_submodules {
            out.insert(METADATA_RECURSE_SUBMODULES.to_string(), "true".to_string());
        }
        out
    }

    fn scratch_dir(&self) -> Result<tempfile::TempDir, GitError> {
        tempfile::Builder::new()
            .prefix("gitops-git-")
            .tempdir()
            .map_err(|e| self.task_error(&format!("creating a temporary folder: {e}")))
    }

    /// A bare repository that reads no user or system configuration, speaking protocol v2, and
    /// running `ssh` with the session's files when there is one.
    fn init_repo(
        &self,
        git_dir: &Path,
        ssh: Option<&SshSession>,
    ) -> Result<gix::Repository, GitError> {
        let mut overrides = vec![
            "protocol.version=2".to_string(),
            "core.askPass=".to_string(),
            "credential.helper=".to_string(),
        ];
        if let Some(ssh) = ssh {
            overrides.push(format!("core.sshCommand={}", ssh.command));
            overrides.push("ssh.variant=ssh".to_string());
        }
        let open = gix::open::Options::isolated().config_overrides(overrides);
        gix::ThreadSafeRepository::init_opts(
            git_dir,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            open,
        )
        .map(gix::Repository::from)
        .map_err(|e| self.task_error(&format!("creating a repository: {}", self.chain(&e))))
    }

    /// Lists the remote refs the selector needs and picks the target. Commit-only selectors need
    /// no listing.
    fn resolve(&self, repo: &gix::Repository) -> Result<Target, GitError> {
        let specs: Vec<String> = match &self.selector {
            Selector::Commit { id, branch: None } => {
                return Ok(Target {
                    pointer: None,
                    want: id.to_hex().to_string(),
                    commit: *id,
                    shallow: true,
                });
            }
            Selector::Default => vec![format!("refs/heads/{DEFAULT_BRANCH}"), "HEAD".into()],
            Selector::Branch(b)
            | Selector::Commit {
                branch: Some(b), ..
            } => {
                vec![format!("refs/heads/{b}")]
            }
            Selector::Tag(t) => vec![format!("refs/tags/{t}")],
            Selector::Semver(_) => vec!["refs/tags/*:refs/tags/*".into()],
            Selector::Name(n) => vec![n.clone()],
        };
        let refs = self.list_refs(repo, &specs)?;
        let find = |full: &str| {
            refs.iter()
                .find(|r| r.unpack().0 == full.as_bytes().as_bstr())
                .and_then(peeled)
        };
        let not_found = |reason: String| GitError::ReferenceNotFound {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            reason,
        };
        let target = |pointer: &str, want: String, commit: ObjectId| Target {
            pointer: Some(pointer.to_string()),
            want,
            commit,
            shallow: true,
        };
        match &self.selector {
            Selector::Default => {
                let master = format!("refs/heads/{DEFAULT_BRANCH}");
                if let Some(id) = find(&master) {
                    return Ok(target(DEFAULT_BRANCH, master, id));
                }
                let head = refs.iter().find(|r| r.unpack().0 == "HEAD");
                match head {
                    Some(Ref::Symbolic {
                        target: t, object, ..
                    }) => {
                        let t = t.to_str_lossy().into_owned();
                        let pointer = t.strip_prefix("refs/heads/").unwrap_or(&t).to_string();
                        tracing::debug!(url = %self.redacted_url, branch = %pointer, "no master branch: using the remote HEAD");
                        Ok(target(&pointer, t.clone(), *object))
                    }
                    Some(Ref::Direct { object, .. }) => Ok(target("HEAD", "HEAD".into(), *object)),
                    _ => Err(not_found(format!(
                        "the remote has neither a {DEFAULT_BRANCH} branch nor a HEAD"
                    ))),
                }
            }
            Selector::Branch(b) => {
                let full = format!("refs/heads/{b}");
                let id = find(&full).ok_or_else(|| not_found("no such branch".into()))?;
                Ok(target(b, full, id))
            }
            Selector::Tag(t) => {
                let full = format!("refs/tags/{t}");
                let id = find(&full).ok_or_else(|| not_found("no such tag".into()))?;
                Ok(target(t, full, id))
            }
            Selector::Semver(range) => {
                let names: Vec<&str> = refs
                    .iter()
                    .filter_map(|r| r.unpack().0.to_str().ok())
                    .filter_map(|n| n.strip_prefix("refs/tags/"))
                    .collect();
                let (tag, _) = range.best_match(names.iter().copied()).ok_or_else(|| {
                    not_found(format!("no tag matches among {} tags", names.len()))
                })?;
                let full = format!("refs/tags/{tag}");
                let id = find(&full).ok_or_else(|| not_found("tag without a commit".into()))?;
                Ok(target(tag, full, id))
            }
            Selector::Name(n) => {
                let id = find(n).ok_or_else(|| not_found("no such ref".into()))?;
                Ok(target(n, n.clone(), id))
            }
            Selector::Commit {
                id,
                branch: Some(b),
            } => {
                let full = format!("refs/heads/{b}");
                if find(&full).is_none() {
                    return Err(not_found(format!(
                        "no branch {b:?} to look for the commit in"
                    )));
                }
                Ok(Target {
                    pointer: Some(b.clone()),
                    want: full,
                    commit: *id,
                    shallow: false,
                })
            }
            Selector::Commit { branch: None, .. } => {
                Err(self.task_error("commit selector without listing"))
            }
        }
    }

    /// `ls-refs` restricted to the prefixes of `specs`.
    fn list_refs(&self, repo: &gix::Repository, specs: &[String]) -> Result<Vec<Ref>, GitError> {
        const OP: &str = "listing remote refs";
        let remote = self.remote(repo, specs, OP)?;
        let auth_asked = AtomicBool::new(false);
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| self.remote_error(OP, &e, &auth_asked))?;
        let connection = self.configure(connection, &auth_asked);
        let (ref_map, handshake) = connection
            .ref_map(gix::progress::Discard, Default::default())
            .map_err(|e| self.remote_error(OP, &e, &auth_asked))?;
        if handshake.server_protocol_version != gix::protocol::transport::Protocol::V2 {
            tracing::warn!(
                url = %self.redacted_url,
                version = ?handshake.server_protocol_version,
                "git server does not speak protocol v2: shallow fetches may download full history"
            );
        }
        Ok(ref_map.remote_refs)
    }

    /// Fetches `target` (depth 1 unless it needs history) and checks the result.
    fn download(
        &self,
        repo: &gix::Repository,
        target: &Target,
        interrupt: &AtomicBool,
    ) -> Result<FetchedCommit, GitError> {
        const OP: &str = "fetching";
        let spec = format!("+{}:{FETCH_REF}", target.want);
        let remote = self.remote(repo, std::slice::from_ref(&spec), OP)?;
        let auth_asked = AtomicBool::new(false);
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| self.remote_error(OP, &e, &auth_asked))?;
        let connection = self.configure(connection, &auth_asked);
        let shallow = if target.shallow {
            gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN)
        } else {
            gix::remote::fetch::Shallow::NoChange
        };
        let outcome = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.remote_error(OP, &e, &auth_asked))?
            .with_shallow(shallow)
            .receive(gix::progress::Discard, interrupt)
            .map_err(|e| {
                if interrupt.load(Ordering::Relaxed) {
                    return self.timeout_error();
                }
                // A commit the remote lacks ("not our ref", or a broken pipe when upload-pack
                // hangs up first) stays retryable, as in Flux: it may be pushed later.
                self.remote_error(OP, &e, &auth_asked)
            })?;

        // The commit the fetched ref points at (the ref may have moved since the listing).
        let tip = outcome
            .ref_map
            .mappings
            .iter()
            .find_map(|m| match &m.remote {
                gix::remote::fetch::refmap::Source::Ref(r) => peeled(r),
                gix::remote::fetch::refmap::Source::ObjectId(id) => Some(*id),
            })
            .ok_or_else(|| GitError::ReferenceNotFound {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                reason: "the remote returned nothing for it".into(),
            })?;
        let checkout_error = |commit: &ObjectId, message: String| GitError::Checkout {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            commit: commit.to_string(),
            message,
        };
        let commit_id = match &self.selector {
            Selector::Commit {
                id,
                branch: Some(b),
            } => {
                if !is_ancestor(repo, *id, tip).map_err(|m| checkout_error(&tip, m))? {
                    return Err(GitError::CommitNotOnBranch {
                        url: self.redacted_url.clone(),
                        commit: id.to_string(),
                        branch: b.clone(),
                    });
                }
                *id
            }
            _ => tip,
        };
        let commit = repo
            .find_commit(commit_id)
            .map_err(|e| checkout_error(&commit_id, self.chain(&e)))?;
        let subject = commit
            .message()
            .map(|m| m.summary().to_str_lossy().into_owned())
            .unwrap_or_default();
        let has_parents = commit.parent_ids().next().is_some();
        let shallow = repo.is_shallow().unwrap_or(false);
        if target.shallow && has_parents && !shallow {
            tracing::warn!(
                url = %self.redacted_url,
                commit = %commit_id,
                "asked for a depth-1 fetch but got a complete history (protocol v0/v1 server?)"
            );
        }
        Ok(FetchedCommit {
            revision: self.revision(target.pointer.as_deref(), commit_id),
            commit: commit_id.to_string(),
            subject,
            shallow,
        })
    }

    fn remote<'r>(
        &self,
        repo: &'r gix::Repository,
        specs: &[String],
        op: &'static str,
    ) -> Result<gix::Remote<'r>, GitError> {
        let no_auth = AtomicBool::new(false);
        repo.remote_at(self.fetch_url.as_str())
            .and_then(|r| {
                r.with_fetch_tags(gix::remote::fetch::Tags::None)
                    .with_refspecs(specs.iter().map(String::as_str), Direction::Fetch)
            })
            .map_err(|e| self.remote_error(op, &e, &no_auth))
    }

    /// Credentials: our header for HTTP, and a credentials callback that never prompts and
    /// records that the server asked.
    fn configure<'a, 'r, T>(
        &self,
        connection: gix::remote::Connection<'a, 'static, 'r, T>,
        auth_asked: &'a AtomicBool,
    ) -> gix::remote::Connection<'a, 'a, 'r, T>
    where
        T: gix::protocol::transport::client::blocking_io::Transport,
    {
        let lower = self.fetch_url.to_ascii_lowercase();
        let is_http = lower.starts_with("http://") || lower.starts_with("https://");
        let mut connection = connection.with_credentials(move |_action| {
            auth_asked.store(true, Ordering::Relaxed);
            Ok(None)
        });
        if is_http {
            install_crypto_provider();
            let mut options = gix::protocol::transport::client::blocking_io::http::Options {
                connect_timeout: Some(self.timeout.min(Duration::from_secs(30))),
                user_agent: Some(concat!("gitops-rs/", env!("CARGO_PKG_VERSION")).to_string()),
                ..Default::default()
            };
            if let Some(h) = self.auth.header() {
                options.extra_headers.push(h);
            }
            if !self.ca_certificates.is_empty() && lower.starts_with("https://") {
                use gix::protocol::transport::client::blocking_io::http::reqwest::Options as Backend;
                let certificates = self.ca_certificates.clone();
                let backend = Backend {
                    configure_client: Some(Box::new(move |builder| {
                        Ok(builder.tls_certs_merge(certificates.iter().cloned()))
                    })),
                    configure_request: None,
                };
                options.backend = Some(Arc::new(Mutex::new(backend)));
            }
            connection = connection.with_transport_options(Box::new(options));
        }
        connection
    }

    /// For SSH remotes: the private folder with the identity and `known_hosts` ssh is run with.
    fn ssh_session(&self) -> Result<Option<SshSession>, GitError> {
        let GitAuth::Ssh {
            identity,
            known_hosts,
            ..
        } = &self.auth
        else {
            return Ok(None);
        };
        let connect_timeout = self
            .timeout
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        SshSession::new(identity, known_hosts, connect_timeout)
            .map(Some)
            .map_err(|e| self.task_error(&format!("preparing the SSH identity: {e}")))
    }

    /// Turns a failed network step into what ssh reported (its log is not shown to gix): host key
    /// verification failures become [`GitError::HostKeyVerification`], refused keys
    /// [`GitError::Authentication`], and other ssh errors are added to the message.
    fn ssh_checked<T>(
        &self,
        ssh: Option<&SshSession>,
        result: Result<T, GitError>,
    ) -> Result<T, GitError> {
        let (Some(ssh), Err(e)) = (ssh, &result) else {
            return result;
        };
        if !matches!(e, GitError::Remote { .. } | GitError::Authentication { .. }) {
            return result;
        }
        let log = std::fs::read_to_string(&ssh.log).unwrap_or_default();
        let dir = ssh.dir.path().to_string_lossy().into_owned();
        let log = scrub(&log, &self.spec.url, &self.redacted_url, &self.secrets).replace(&dir, "…");
        let lines: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines
            .iter()
            .any(|l| l.contains("Host key verification failed"))
        {
            let mut reported: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.starts_with("host key for")
                        || l.contains("host key is known for")
                        || l.contains("key sent by the remote host")
                        || l.starts_with("sha256:")
                })
                .collect();
            if reported.is_empty() {
                reported.push("the server's host key is not in known_hosts");
            }
            return Err(GitError::HostKeyVerification {
                url: self.redacted_url.clone(),
                message: format!(
                    "{} (check the known_hosts of the secret)",
                    reported.join(" ")
                ),
            });
        }
        if let Some(line) = lines.iter().find(|l| l.contains("Permission denied")) {
            return Err(GitError::Authentication {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                message: format!("the SSH server refused the configured identity: {line}"),
            });
        }
        match result {
            Err(GitError::Remote {
                url,
                reference,
                operation,
                message,
            }) if !lines.is_empty() => {
                let tail = lines[lines.len().saturating_sub(3)..].join("; ");
                Err(GitError::Remote {
                    url,
                    reference,
                    operation,
                    message: format!("{message}; ssh: {tail}"),
                })
            }
            other => other,
        }
    }

    fn revision(&self, pointer: Option<&str>, commit: ObjectId) -> Revision {
        let hex = commit.to_hex().to_string();
        match Digest::new(Algorithm::Sha1, hex) {
            Ok(d) => match pointer {
                Some(p) => Revision::named(p, d),
                None => Revision::digest_only(d),
            },
            // Unreachable with the sha1-only gix build: object ids are 40 hex characters.
            Err(_) => Revision::digest_only(Digest::sha256_of(commit.as_bytes())),
        }
    }

    /// The error chain of a gix error, secrets removed.
    fn chain(&self, e: &(dyn std::error::Error + 'static)) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let s = c.to_string();
            if !text.contains(&s) {
                text.push_str(": ");
                text.push_str(&s);
            }
            cause = c.source();
        }
        scrub(&text, &self.spec.url, &self.redacted_url, &self.secrets)
    }

    fn remote_error(
        &self,
        operation: &'static str,
        e: &gix::Error,
        auth_asked: &AtomicBool,
    ) -> GitError {
        let message = self.chain(e);
        if let Some(problem) = certificate_problem(e, &message) {
            return GitError::Certificate {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                message: problem,
            };
        }
        if auth_asked.load(Ordering::Relaxed) || e.is_unauthenticated() {
            // gix's own text here is about credential helpers, which this source does not use.
            let message = if self.auth == GitAuth::None {
                "the server requires credentials and none are configured".to_string()
            } else {
                "the server rejected the configured credentials".to_string()
            };
            return GitError::Authentication {
                url: self.redacted_url.clone(),
                reference: self.reference.clone(),
                message,
            };
        }
        GitError::Remote {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            operation,
            message,
        }
    }

    fn timeout_error(&self) -> GitError {
        GitError::Timeout {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            timeout: self.timeout,
        }
    }

    fn task_error(&self, message: &str) -> GitError {
        GitError::Task {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            message: scrub(message, &self.spec.url, &self.redacted_url, &self.secrets),
        }
    }
}

// Signature verification (feature `git-verify`): the options, the shortcut's digest, and the
// check between the fetch and the artifact. The verification itself is in `crate::git_verify`.

/// The parsed verification options of a [`GitSource`].
#[cfg(feature = "git-verify")]
#[derive(Clone, Debug)]
struct Verifier {
    mode: crate::git_verify::VerificationMode,
    keyring: crate::git_verify::Keyring,
    /// [`METADATA_VERIFY`] of artifacts built with it.
    digest: String,
}

impl GitSource {
    /// Requires valid OpenPGP signatures on what is fetched, as Flux's `spec.verify`: the commit
    /// (`HEAD`), the annotated tag object (`Tag`) or both, signed by any of `public_keys`. Parses
    /// the keys now: a value that is not an armored public key is a
    /// [`GitError::Verification`] naming its Secret data key.
    ///
    /// After a verified fetch the artifact's metadata holds [`METADATA_VERIFY`],
    /// [`METADATA_VERIFIED_MODE`] and [`METADATA_VERIFIED_FINGERPRINT`] and/or
    /// [`METADATA_VERIFIED_TAG_FINGERPRINT`]; a failed verification stores nothing and is
    /// terminal.
    #[cfg(feature = "git-verify")]
    pub fn with_verification(
        mut self,
        verification: crate::git_verify::GitVerification,
    ) -> Result<GitSource, GitError> {
        let keyring = crate::git_verify::Keyring::parse(
            verification
                .public_keys
                .iter()
                .map(|(name, armored)| (name.as_str(), armored.as_str())),
        )
        .map_err(|e| self.verification_error(e))?;
        let mut text = format!("mode={}\n", verification.mode);
        let mut keys: Vec<&(String, String)> = verification.public_keys.iter().collect();
        keys.sort();
        for (name, armored) in keys {
            text.push_str(&format!(
                "{name}={}\n",
                Digest::sha256_of(armored.as_bytes())
            ));
        }
        self.verification = Some(Verifier {
            mode: verification.mode,
            keyring,
            digest: Digest::sha256_of(text.as_bytes()).to_string(),
        });
        Ok(self)
    }

    /// [`METADATA_VERIFY`] for this source's artifacts, `None` without verification.
    fn verify_digest(&self) -> Option<&str> {
        #[cfg(feature = "git-verify")]
        if let Some(v) = &self.verification {
            return Some(v.digest.as_str());
        }
        None
    }

    #[cfg(feature = "git-verify")]
    fn verification_error(&self, error: crate::git_verify::VerifyError) -> GitError {
        GitError::Verification {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            error: Box::new(error),
        }
    }

    /// Verifies the fetched commit and/or tag object; returns the artifact metadata to add
    /// (nothing without verification).
    #[cfg_attr(not(feature = "git-verify"), allow(unused_variables))]
    fn verify_fetched(
        &self,
        repo: &gix::Repository,
        target: &Target,
        fetched: &FetchedCommit,
    ) -> Result<BTreeMap<String, String>, GitError> {
        #[allow(unused_mut)]
        let mut metadata = BTreeMap::new();
        #[cfg(feature = "git-verify")]
        if let Some(v) = &self.verification {
            use crate::git_verify::{SignedObject, VerifyError};
            let err = |e: VerifyError| self.verification_error(e);
            let read = |id: ObjectId, object: &SignedObject| {
                repo.find_object(id)
                    .map(|o| (o.kind, o.data.clone()))
                    .map_err(|e| {
                        err(VerifyError::Object {
                            object: object.clone(),
                            reason: self.chain(&e),
                        })
                    })
            };
            if v.mode.verifies_tag() {
                // The tag the reference names (semver picks one; a `refs/tags/` name is one).
                let tag = match &self.selector {
                    Selector::Tag(_) | Selector::Semver(_) => target.pointer.clone(),
                    Selector::Name(n) => n.strip_prefix("refs/tags/").map(str::to_string),
                    _ => None,
                }
                .ok_or_else(|| {
                    err(VerifyError::NoTagReference {
                        mode: v.mode,
                        reference: self.reference.clone(),
                    })
                })?;
                let object = SignedObject::Tag(tag.clone());
                // The fetch stored the ref's own target: the tag object for an annotated tag,
                // the commit for a lightweight one.
                let id = repo
                    .find_reference(FETCH_REF)
                    .map_err(|e| {
                        err(VerifyError::Object {
                            object: object.clone(),
                            reason: self.chain(&e),
                        })
                    })?
                    .target()
                    .try_id()
                    .map(ToOwned::to_owned)
                    .ok_or_else(|| {
                        err(VerifyError::Object {
                            object: object.clone(),
                            reason: "the fetched ref is symbolic".into(),
                        })
                    })?;
                let (kind, data) = read(id, &object)?;
                if kind != gix::object::Kind::Tag {
                    return Err(err(VerifyError::LightweightTag { tag }));
                }
                let verified = v.keyring.verify_tag(&tag, &data).map_err(err)?;
                tracing::info!(url = %self.redacted_url, %tag, key = %verified.fingerprint, "verified tag signature");
                metadata.insert(
                    METADATA_VERIFIED_TAG_FINGERPRINT.to_string(),
                    verified.fingerprint,
                );
            }
            if v.mode.verifies_head() {
                let object = SignedObject::Commit(fetched.commit.clone());
                let id = ObjectId::from_hex(fetched.commit.as_bytes())
                    .map_err(|e| self.task_error(&e.to_string()))?;
                let (_, data) = read(id, &object)?;
                let verified = v
                    .keyring
                    .verify_commit(&fetched.commit, &data)
                    .map_err(err)?;
                tracing::info!(url = %self.redacted_url, commit = %fetched.commit, key = %verified.fingerprint, "verified commit signature");
                metadata.insert(
                    METADATA_VERIFIED_FINGERPRINT.to_string(),
                    verified.fingerprint,
                );
            }
            metadata.insert(METADATA_VERIFY.to_string(), v.digest.clone());
            metadata.insert(METADATA_VERIFIED_MODE.to_string(), v.mode.to_string());
        }
        Ok(metadata)
    }
}

impl Source for GitSource {
    /// Lists refs, returns [`Fetched::Unchanged`] when `last` already has the selected revision
    /// (same ignore rules, file still in the store), else fetches and stores a new artifact. Runs
    /// gix on tokio's blocking pool, bounded by the spec's timeout.
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, gitops_core::Error>> {
        Box::pin(async move {
            let interrupt = Arc::new(AtomicBool::new(false));
            let job = {
                let source = self.clone();
                let store = store.clone();
                let last = last.cloned();
                let interrupt = interrupt.clone();
                tokio::task::spawn_blocking(move || source.run(&store, last.as_ref(), &interrupt))
            };
            let result = match tokio::time::timeout(self.timeout, job).await {
                Ok(Ok(result)) => result,
                Ok(Err(join)) => Err(self.task_error(&join.to_string())),
                Err(_elapsed) => {
                    interrupt.store(true, Ordering::Relaxed);
                    Err(self.timeout_error())
                }
            };
            result.map_err(gitops_core::Error::from)
        })
    }
}

/// The private temporary folder (mode 0700) holding the SSH identity (0600), `known_hosts` and
/// ssh's log for one fetch, and the `core.sshCommand` using them. Removed when dropped.
struct SshSession {
    dir: tempfile::TempDir,
    command: String,
    log: std::path::PathBuf,
}

impl SshSession {
    fn new(
        identity: &str,
        known_hosts: &str,
        connect_timeout: Duration,
    ) -> std::io::Result<SshSession> {
        let dir = tempfile::Builder::new().prefix("gitops-ssh-").tempdir()?;
        let key = dir.path().join("identity");
        let known = dir.path().join("known_hosts");
        let log = dir.path().join("ssh.log");
        // ssh refuses a key without its final newline; secrets edited on Windows have CRLF.
        let mut identity = identity.replace("\r\n", "\n").trim().to_string();
        identity.push('\n');
        write_private(&key, identity.as_bytes())?;
        let mut known_hosts = known_hosts.replace("\r\n", "\n");
        known_hosts.push('\n');
        write_private(&known, known_hosts.as_bytes())?;
        write_private(&log, b"")?;
        // The command goes through a shell (gix appends "$@") and git's config syntax: only
        // plain paths. ssh's own messages (-E) and the remote's stderr (`fatal: …` from
        // git-upload-pack) both go to the log, read when something fails.
        let plain = |p: &Path| {
            let s = p.to_string_lossy().into_owned();
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
            {
                Ok(s)
            } else {
                Err(std::io::Error::other(format!(
                    "the temporary folder {s:?} has characters that cannot be passed to ssh"
                )))
            }
        };
        let command = format!(
            "ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
             -o UserKnownHostsFile={known} -o GlobalKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes \
             -o ConnectTimeout={timeout} -E {log} 2>>{log}",
            key = plain(&key)?,
            known = plain(&known)?,
            log = plain(&log)?,
            timeout = connect_timeout.as_secs().max(1),
        );
        Ok(SshSession { dir, command, log })
    }
}

/// Creates `path` readable and writable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

/// Validates the reference and turns it into a selector and its description for errors.
fn selector(reference: Option<&GitReference>) -> Result<(Selector, String), (String, String)> {
    fn nonempty(s: &Option<String>) -> Option<&str> {
        s.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let Some(r) = reference else {
        return Ok((Selector::Default, default_description()));
    };
    let branch = nonempty(&r.branch);
    if let Some(b) = branch {
        check_ref_name(&format!("refs/heads/{b}")).map_err(|e| (format!("branch {b:?}"), e))?;
    }
    if let Some(c) = nonempty(&r.commit) {
        let description = match branch {
            Some(b) => format!("commit {c:?} on branch {b:?}"),
            None => format!("commit {c:?}"),
        };
        let valid = c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit());
        let id = valid
            .then(|| ObjectId::from_hex(c.to_ascii_lowercase().as_bytes()).ok())
            .flatten()
            .ok_or_else(|| {
                (
                    description.clone(),
                    "expected a full SHA-1 commit id (40 hex characters)".to_string(),
                )
            })?;
        return Ok((
            Selector::Commit {
                id,
                branch: branch.map(str::to_string),
            },
            description,
        ));
    }
    if let Some(n) = nonempty(&r.name) {
        let description = format!("ref {n:?}");
        if !n.starts_with("refs/") && n != "HEAD" {
            return Err((
                description,
                "expected a full ref name such as refs/pull/1/head".into(),
            ));
        }
        check_ref_name(n).map_err(|e| (description.clone(), e))?;
        return Ok((Selector::Name(n.to_string()), description));
    }
    if let Some(s) = nonempty(&r.semver) {
        let description = format!("semver {s:?}");
        let range = Range::parse(s).map_err(|e| (description.clone(), e.reason))?;
        return Ok((Selector::Semver(range), description));
    }
    if let Some(t) = nonempty(&r.tag) {
        let description = format!("tag {t:?}");
        check_ref_name(&format!("refs/tags/{t}")).map_err(|e| (description.clone(), e))?;
        return Ok((Selector::Tag(t.to_string()), description));
    }
    if let Some(b) = branch {
        return Ok((Selector::Branch(b.to_string()), format!("branch {b:?}")));
    }
    Ok((Selector::Default, default_description()))
}

fn default_description() -> String {
    format!("default branch ({DEFAULT_BRANCH:?}, else the remote HEAD)")
}

fn check_ref_name(full: &str) -> Result<(), String> {
    gix::validate::reference::name(full.as_bytes().as_bstr())
        .map(|_| ())
        .map_err(|e| format!("not a valid ref name: {e}"))
}

/// The commit a listed ref ends at (annotated tags peeled).
fn peeled(r: &Ref) -> Option<ObjectId> {
    let (_, target, peeled) = r.unpack();
    peeled.or(target).map(ToOwned::to_owned)
}

/// Whether `commit` is `tip` or one of its ancestors.
fn is_ancestor(repo: &gix::Repository, commit: ObjectId, tip: ObjectId) -> Result<bool, String> {
    if commit == tip {
        return Ok(true);
    }
    let walk = repo.rev_walk([tip]).all().map_err(|e| e.to_string())?;
    for info in walk {
        let info = info.map_err(|e| e.to_string())?;
        if info.id == commit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes the tree of `commit` into `dir` (created): regular and executable files and folders.
/// Symlinks and submodules are skipped (Flux's archiver leaves symlinks out too); entries named
/// `.git`, `.`, `..` or containing a separator are refused.
fn write_commit_tree(
    repo: &gix::Repository,
    commit: ObjectId,
    dir: &Path,
    interrupt: &AtomicBool,
) -> Result<(), String> {
    let commit = repo.find_commit(commit).map_err(|e| e.to_string())?;
    let tree = commit.tree_id().map_err(|e| e.to_string())?.detach();
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    write_tree(repo, tree, dir, interrupt)
}

fn write_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    dir: &Path,
    interrupt: &AtomicBool,
) -> Result<(), String> {
    use gix::objs::tree::EntryKind;
    if interrupt.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    let tree = repo.find_tree(tree).map_err(|e| e.to_string())?;
    let entries: Vec<(EntryKind, Vec<u8>, ObjectId)> = tree
        .decode()
        .map_err(|e| e.to_string())?
        .entries
        .iter()
        .map(|e| (e.mode.kind(), e.filename.to_vec(), e.oid.to_owned()))
        .collect();
    for (kind, name, oid) in entries {
        let Some(name) = safe_file_name(&name) else {
            tracing::warn!(name = %BStr::new(&name), "skipping unsafe tree entry");
            continue;
        };
        let path = dir.join(name);
        match kind {
            EntryKind::Tree => {
                std::fs::create_dir(&path)
                    .map_err(|e| format!("creating {}: {e}", path.display()))?;
                write_tree(repo, oid, &path, interrupt)?;
            }
            EntryKind::Blob | EntryKind::BlobExecutable => {
                let blob = repo.find_blob(oid).map_err(|e| e.to_string())?;
                std::fs::write(&path, &blob.data)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                #[cfg(unix)]
                if kind == EntryKind::BlobExecutable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
                }
            }
            EntryKind::Link | EntryKind::Commit => {}
        }
    }
    Ok(())
}

/// A tree entry name as a single, harmless path component.
fn safe_file_name(name: &[u8]) -> Option<&std::ffi::OsStr> {
    if name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&b'\\')
        || name.contains(&0)
    {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Some(std::ffi::OsStr::from_bytes(name))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(name).ok().map(std::ffi::OsStr::new)
    }
}

fn ignore_fingerprint(spec_ignore: Option<&str>) -> String {
    match spec_ignore {
        None => "default".to_string(),
        Some(text) => Digest::sha256_of(text.as_bytes()).to_string(),
    }
}

/// Replaces the user info of a URL (`user:password@`) by `***@`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Removes the raw URL (replaced by its redacted form) and `secrets` from `text`.
fn scrub(text: &str, raw_url: &str, redacted_url: &str, secrets: &[String]) -> String {
    let mut out = if raw_url.is_empty() {
        text.to_string()
    } else {
        text.replace(raw_url, redacted_url)
    };
    let mut all: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    // Longest first, so a secret containing another is removed whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in all {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// Splits `scheme://user:password@host/path` into the URL without user info and the
/// percent-decoded user name and password.
fn split_userinfo(url: &str) -> (String, Option<(String, Option<String>)>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_string(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None);
    };
    let userinfo = &rest[..at];
    let stripped = format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]);
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
        None => (percent_decode(userinfo), None),
    };
    (stripped, Some((user, password)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (for the basic-auth header).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_info() {
        assert_eq!(
            redact_url("https://user:s3cret@example.com/x.git"),
            "https://***@example.com/x.git"
        );
        assert_eq!(
            redact_url("https://token@example.com/x.git?a=b@c"),
            "https://***@example.com/x.git?a=b@c"
        );
        assert_eq!(
            redact_url("https://example.com/x.git"),
            "https://example.com/x.git"
        );
        assert_eq!(redact_url("file:///tmp/x"), "file:///tmp/x");
    }

    #[test]
    fn url_user_info_becomes_basic_auth() {
        assert_eq!(
            split_userinfo("https://me:p%40ss@example.com/r.git"),
            (
                "https://example.com/r.git".to_string(),
                Some(("me".to_string(), Some("p@ss".to_string())))
            )
        );
        assert_eq!(
            split_userinfo("https://tok@example.com/r.git").1,
            Some(("tok".to_string(), None))
        );
        assert_eq!(split_userinfo("file:///a@b/r.git").1, None);
        let key = ArtifactKey::new("GitRepository", "default", "x").unwrap();
        let spec = GitRepositorySpec {
            url: "http://me:hunter2@127.0.0.1/r.git".into(),
            ..Default::default()
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
        let src = GitSource::new(key, spec, GitAuth::None).unwrap();
        assert_eq!(src.fetch_url, "http://127.0.0.1/r.git");
        assert_eq!(
            src.auth,
            GitAuth::Basic {
                username: "me".into(),
                password: "hunter2".into()
            }
        );
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn scrubs_secrets() {
        let url = "https://me:pw123@example.com/r.git";
        let text = format!("failed for {url}: pw123 and bWU6cHcxMjM=");
        let out = scrub(
            &text,
            url,
            &redact_url(url),
            &GitAuth::Basic {
                username: "me".into(),
                password: "pw123".into(),
            }
            .secrets(),
        );
        assert!(!out.contains("pw123"), "{out}");
        assert!(!out.contains("bWU6cHcxMjM="), "{out}");
        assert!(out.contains("https://***@example.com/r.git"), "{out}");
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let basic = GitAuth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let bearer = GitAuth::Bearer {
            token: "tok-123".into(),
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert!(!format!("{bearer:?}").contains("tok-123"));
        let body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ";
        let ssh = GitAuth::Ssh {
            identity: format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
            ),
            known_hosts: "example.com ssh-ed25519 AAAA\n".into(),
            user: Some("git".into()),
        };
        let shown = format!("{ssh:?}");
        assert!(!shown.contains(body), "{shown}");
        assert!(ssh.secrets().iter().any(|s| s == body));
        assert_eq!(ssh.header(), None);
    }

    #[test]
    fn reference_precedence() {
        let r = |branch: Option<&str>,
                 tag: Option<&str>,
                 semver: Option<&str>,
                 name: Option<&str>,
                 commit: Option<&str>| GitReference {
            branch: branch.map(Into::into),
            tag: tag.map(Into::into),
            semver: semver.map(Into::into),
            name: name.map(Into::into),
            commit: commit.map(Into::into),
        };
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let pick = |g: GitReference| selector(Some(&g)).unwrap().0;
        assert!(
            matches!(pick(r(Some("main"), None, None, None, None)), Selector::Branch(b) if b == "main")
        );
        assert!(
            matches!(pick(r(Some("main"), Some("v1"), None, None, None)), Selector::Tag(t) if t == "v1")
        );
        assert!(matches!(
            pick(r(Some("main"), Some("v1"), Some("1.x"), None, None)),
            Selector::Semver(_)
        ));
        assert!(matches!(
            pick(r(None, Some("v1"), Some("1.x"), Some("refs/pull/1/head"), None)),
            Selector::Name(n) if n == "refs/pull/1/head"
        ));
        assert!(matches!(
            pick(r(Some("main"), Some("v1"), None, Some("refs/x"), Some(sha))),
            Selector::Commit { branch: Some(b), .. } if b == "main"
        ));
        assert!(matches!(
            pick(r(None, None, None, None, Some(sha))),
            Selector::Commit { branch: None, .. }
        ));
        assert!(matches!(
            pick(r(None, None, None, None, None)),
            Selector::Default
        ));
        assert!(matches!(selector(None).unwrap().0, Selector::Default));

        assert!(selector(Some(&r(None, None, None, None, Some("abc")))).is_err());
        assert!(selector(Some(&r(None, None, Some(">=x.y"), None, None))).is_err());
        assert!(selector(Some(&r(None, None, None, Some("main"), None))).is_err());
        assert!(selector(Some(&r(Some("bad..name"), None, None, None, None))).is_err());
    }

    #[test]
    fn spec_serde_uses_flux_names() {
        let json = r#"{"url":"https://example.com/r.git","ref":{"branch":"main","semver":">=1.0.0"},"timeout":"1m30s","ignore":"*.md"}"#;
        let spec: GitRepositorySpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.timeout, Some(Duration::from_secs(90)));
        assert_eq!(
            spec.reference.as_ref().and_then(|r| r.branch.as_deref()),
            Some("main")
        );
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["ref"]["semver"], ">=1.0.0");
        assert_eq!(back["timeout"], "90s");
        assert!(back["ref"].get("tag").is_none());
    }

    #[test]
    fn rejects_unsupported_urls() {
        let key = ArtifactKey::new("GitRepository", "default", "x").unwrap();
        for url in [
            "ssh://git@example.com/r.git",
            "git@example.com:r.git",
            "ftp://example.com/r",
            "",
            "relative/path",
        ] {
            let spec = GitRepositorySpec {
                url: url.into(),
                ..Default::default()
            };
            let err = GitSource::new(key.clone(), spec, GitAuth::None).unwrap_err();
            assert!(matches!(err, GitError::InvalidUrl { .. }), "{url}: {err}");
            assert!(!err.is_retryable());
        }
    }
}
