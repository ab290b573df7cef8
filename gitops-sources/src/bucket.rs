//! The Bucket source: Flux's Bucket (`source.toolkit.fluxcd.io/v1`) on top of object_store.
//!
//! [`BucketSource`] implements [`gitops_core::Source`]. One fetch, as Flux's source-controller
//! `BucketReconciler` does:
//!
//! 1. lists the objects under [`BucketSpec::prefix`] (a plain string prefix of the key) and keeps
//!    each key with its ETag (quotes removed, as minio-go reports it);
//! 2. drops keys ending in `/` (folder markers), the root `.sourceignore` object itself and the keys
//!    the ignore rules exclude: the bucket's root `.sourceignore` object, then `spec.ignore`
//!    (gitignore syntax, matched against the whole key; nested `.sourceignore` objects are ordinary
//!    files, as in Flux). Unlike a GitRepository, no default exclusion set applies (Flux archives
//!    a bucket without one); only the VCS patterns of [`sourceignore`](crate::sourceignore)
//!    (`.git/`, `.gitignore`, ...) are always left out;
//! 3. computes the revision `sha256:<hex>`: the SHA-256 of the index written as one
//!    `<key> <etag>\n` line per object, keys sorted byte-wise (Flux's `internal/index` Digester);
//! 4. returns [`Fetched::Unchanged`] when the last artifact has that revision (and is still in the
//!    store) without downloading any object;
//! 5. otherwise brings a per-source cache folder up to date — objects whose ETag and size are
//!    unchanged since the last download are reused, new or changed ones downloaded (at most
//!    [`MAX_CONCURRENT_DOWNLOADS`] at a time, Flux's bound), removed ones deleted — verifies each
//!    download (size, and MD5 when the ETag is the MD5 of a single-part upload) and archives the
//!    folder with [`ArtifactStore::archive_dir`] as `<hex>.tar.gz`. An object whose ETag changed
//!    between listing and download is stored with its new ETag and the revision recomputed; one
//!    that disappeared is dropped from the index, as Flux does.
//!
//! The `.sourceignore` object is read with a HEAD request on every fetch (Flux downloads it every
//! time); its content is cached and downloaded again only when its ETag changes.
//!
//! # Keys
//!
//! Keys become paths inside the artifact. Keys with `.` or `..` segments, empty segments (`a//b`)
//! or control characters are refused with [`BucketError::UnsafeKey`] naming the key (Flux clamps
//! them into the folder instead; refusing is stricter). A leading `/` is dropped by object_store
//! (the object then reads as not found and is skipped). A zero-byte object `dir` next to keys
//! `dir/...` is taken for a folder marker and skipped.
//!
//! # Providers and TLS
//!
//! | provider | client | credentials ([`BucketAuth`]) |
//! | --- | --- | --- |
//! | `generic` | S3 API, path-style requests to `endpoint` | `AccessKey`, or unsigned requests |
//! | `aws` | S3 API: path style to a custom `endpoint` (as minio-go, Flux's client, does for hosts that are not Amazon's), virtual-hosted style to Amazon when `endpoint` is empty | `AccessKey`, or AWS's ambient chain (env, web identity, instance metadata) |
//! | `gcp` | Google Cloud Storage through its XML API | `ServiceAccount` (the Secret's `serviceaccount`), or ambient application-default credentials |
//! | `azure` | Azure Blob | `AccessKey` whose secret is the account key (Flux's `accountKey`), or unsigned |
//!
//! `endpoint` is `host[:port]` as in Flux (`https://` is added, `http://` when `insecure`); a
//! URL with a scheme is accepted, but `http://` needs `insecure: true`.
//!
//! - **azure**: `endpoint` is the account's Blob service URL. The account is the first label of
//!   the host (`https://<account>.blob.core.windows.net`, Flux's rule), or — when the URL has a
//!   path — its first path segment, the emulator form (`http://127.0.0.1:10000/devstoreaccount1`,
//!   as Azurite and Azure's emulator connection strings address accounts; Flux cannot sign for
//!   it, as it only takes the account from the host). An IP or two-label host without a path is
//!   refused with [`BucketError::InvalidSpec`]. Index values are the Blob service's quoted
//!   `ETag` header (`"0x8D..."`): source-controller lists `%x` of the ETag but replaces each entry
//!   with the download's `ETag` before computing the revision, so that is what Flux's Azure
//!   revisions are made of (as its code reads, Flux then downloads everything on every poll, its
//!   listing never matching the revision; here an unchanged listing downloads nothing).
//! - **gcp**: object_store speaks GCS's XML API, whose ETag is the object's MD5 for non-composite
//!   objects; Flux lists the JSON API's `etag`, so the same bucket gets a different revision
//!   under Flux. A service-account key may carry object_store's `gcs_base_url` (and
//!   `disable_oauth`) to reach an emulator; a non-empty `endpoint` overrides the base URL (Flux
//!   ignores `endpoint` for `gcp`).
//! - **aws**: tested against moto with signature checking, both with the access key and with
//!   `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from the environment; Amazon itself is not
//!   reachable from the tests.
//!
//! HTTPS uses rustls with the ring provider (object_store built with its `ring` feature, no
//! aws-lc-rs). **Installing a process-wide default rustls `CryptoProvider` is the caller's job**
//! (e.g. `rustls::crypto::ring::default_provider().install_default()` at start-up); this source
//! does not install one, and [`BucketSource::new`] returns [`BucketError::NoCryptoProvider`]
//! when none is installed (the HTTP client would panic).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use gitops_core::{
    Artifact, ArtifactKey, ArtifactStore, Digest, Fetched, Revision, Source, Stage, StoreError,
};
use md5::Digest as _;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::sourceignore::{IGNORE_FILE, SourceIgnore};
use crate::util::{error_chain, go_duration};

/// Flux's default `spec.timeout` for a Bucket: the whole fetch (listing and downloads).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this many objects are downloaded at once (Flux's `maxConcurrentBucketFetches`).
pub const MAX_CONCURRENT_DOWNLOADS: usize = 100;

/// Which API the bucket speaks, Flux's `spec.provider` (`generic` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketProvider {
    /// Any S3-compatible server (MinIO, moto, ...), path-style requests.
    #[default]
    Generic,
    /// Amazon S3.
    Aws,
    /// Google Cloud Storage.
    Gcp,
    /// Azure Blob Storage (the bucket is the container).
    Azure,
}

/// The desired state of a Bucket source, with the field names of Flux's `BucketSpec` (camelCase;
/// `timeout` as a Go duration string such as `60s`). Credentials are given separately as
/// [`BucketAuth`], as Flux reads them from `secretRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// The API to use.
    #[serde(default)]
    pub provider: BucketProvider,
    /// The bucket (S3, GCS) or container (Azure) name.
    pub bucket_name: String,
    /// `host[:port]` of the service (a URL with scheme is accepted too); may be empty for `aws`
    /// and `gcp`.
    #[serde(default)]
    pub endpoint: String,
    /// Use plain HTTP to reach `endpoint` (Flux's `insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Region (S3); `us-east-1` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only keys starting with this string are fetched (the listing filter, as Flux's `prefix`);
    /// the keys keep their full path in the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Exclusions in gitignore syntax, applied after the bucket's root `.sourceignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Limit for one fetch, listing and downloads ([`DEFAULT_TIMEOUT`] when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "go_duration")]
    pub timeout: Option<Duration>,
}

/// Credentials for the bucket, from a Bucket's `secretRef`: `accesskey` / `secretkey` (S3),
/// `accountKey` (Azure), `serviceaccount` (GCS), as Flux reads them.
/// `Debug` prints `***` instead of the secret; errors never contain it.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum BucketAuth {
    /// Unsigned requests (`generic`, `azure`), or the provider's ambient credentials (`aws`,
    /// `gcp`).
    #[default]
    Anonymous,
    /// An access key (S3), or account key (Azure: `id` is ignored, the account comes from the
    /// endpoint).
    AccessKey {
        /// The access key id.
        id: String,
        /// The secret access key.
        secret: String,
    },
    /// A Google service-account key, the JSON document of the Secret's `serviceaccount` key
    /// (Flux's `gcp` provider). Only for `gcp`. Requests carry a JWT self-signed with its
    /// `private_key`. Two non-Google fields object_store understands point the client at an
    /// emulator: `"gcs_base_url"` (the XML API's base URL) and `"disable_oauth": true` (no
    /// token); `spec.endpoint`, when set, overrides `gcs_base_url`.
    ServiceAccount(String),
}

impl fmt::Debug for BucketAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketAuth::Anonymous => f.write_str("Anonymous"),
            BucketAuth::AccessKey { id, .. } => f
                .debug_struct("AccessKey")
                .field("id", id)
                .field("secret", &"***")
                .finish(),
            BucketAuth::ServiceAccount(_) => f.write_str("ServiceAccount(***)"),
        }
    }
}

/// Errors of the Bucket source. Each names the bucket; messages from the client are scrubbed of
/// the secret key.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The spec cannot be used (empty bucket name, bad endpoint, unsupported credentials).
    /// Terminal.
    #[error("bucket {bucket:?}: invalid spec: {reason}")]
    InvalidSpec {
        /// The bucket name.
        bucket: String,
        /// What is wrong.
        reason: String,
    },
    /// No process-wide default rustls `CryptoProvider` is installed; the application installs one
    /// (ring) before creating bucket sources. Terminal.
    #[error(
        "bucket {bucket:?}: no default rustls CryptoProvider installed; call rustls::crypto::ring::default_provider().install_default() at start-up"
    )]
    NoCryptoProvider {
        /// The bucket name.
        bucket: String,
    },
    /// The bucket does not exist at the endpoint. Retryable (it may be created later).
    #[error("bucket {bucket:?} not found at {endpoint}: {message}")]
    BucketNotFound {
        /// The bucket name.
        bucket: String,
        /// The endpoint (or the provider's default).
        endpoint: String,
        /// What the server said.
        message: String,
    },
    /// A key cannot be a path inside the artifact (`..`, `.` or empty segments, control
    /// characters). Terminal until the object is renamed.
    #[error("bucket {bucket:?}: refusing object key {key:?}: {reason}")]
    UnsafeKey {
        /// The bucket name.
        bucket: String,
        /// The key as listed.
        key: String,
        /// Why.
        reason: String,
    },
    /// A key is both an object and the folder of other objects (`a` and `a/b`). Terminal.
    #[error("bucket {bucket:?}: object key {key:?} is also a folder of {other:?}")]
    KeyConflict {
        /// The bucket name.
        bucket: String,
        /// The object that is also a folder.
        key: String,
        /// An object below it.
        other: String,
    },
    /// The listing has no ETag for an object, so no revision can be computed. Terminal.
    #[error("bucket {bucket:?}: object {key:?} has no ETag in the listing")]
    MissingEtag {
        /// The bucket name.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A request failed (network, authentication, server error) while `operation`. Retryable.
    #[error("bucket {bucket:?}: {operation}: {message}")]
    Request {
        /// The bucket name.
        bucket: String,
        /// `listing objects`, `reading .sourceignore`, `downloading <key>`.
        operation: String,
        /// The client's error chain, secrets removed.
        message: String,
    },
    /// A download does not match the listing (size, MD5). Retryable.
    #[error("bucket {bucket:?}: object {key:?}: verification failed: {reason}")]
    Verify {
        /// The bucket name.
        bucket: String,
        /// The key.
        key: String,
        /// Expected and actual value.
        reason: String,
    },
    /// Reading or writing the local cache folder failed. Retryable.
    #[error("bucket {bucket:?}: cache {}: {message}", path.display())]
    Cache {
        /// The bucket name.
        bucket: String,
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Writing the artifact failed. Retryable.
    #[error("bucket {bucket:?}: storing the artifact: {source}")]
    Store {
        /// The bucket name.
        bucket: String,
        /// The store's error.
        source: StoreError,
    },
    /// The fetch took longer than the spec's timeout. Retryable.
    #[error("bucket {bucket:?}: timed out after {timeout:?}")]
    Timeout {
        /// The bucket name.
        bucket: String,
        /// The limit.
        timeout: Duration,
    },
}

impl BucketError {
    /// Whether trying again later can help (network, missing bucket, local I/O), as opposed to a
    /// spec or object key that has to change.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            BucketError::InvalidSpec { .. }
                | BucketError::NoCryptoProvider { .. }
                | BucketError::UnsafeKey { .. }
                | BucketError::KeyConflict { .. }
                | BucketError::MissingEtag { .. }
        )
    }
}

impl From<BucketError> for gitops_core::Error {
    fn from(e: BucketError) -> Self {
        let retryable = e.is_retryable();
        gitops_core::Error::new(Stage::Fetch, retryable, e)
    }
}

/// One listed object.
#[derive(Clone, Debug)]
struct Entry {
    location: ObjectPath,
    /// ETag without quotes.
    etag: String,
    size: u64,
}

/// What the cache folder holds: `files/<key>` for each object, and this manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    /// key -> (etag, size) of `files/<key>`.
    objects: BTreeMap<String, CachedObject>,
    /// The root `.sourceignore` last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ignore_file: Option<CachedIgnoreFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CachedObject {
    etag: String,
    size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CachedIgnoreFile {
    etag: String,
    text: String,
}

const MANIFEST: &str = "manifest.json";
const FILES: &str = "files";

/// Fetches a bucket into artifacts, as Flux's Bucket reconciler does. See the
/// [module documentation](self).
///
/// `Debug` shows no secrets.
pub struct BucketSource {
    key: ArtifactKey,
    spec: BucketSpec,
    client: Arc<dyn ObjectStore>,
    endpoint: String,
    secrets: Vec<String>,
    timeout: Duration,
    cache_dir: Option<PathBuf>,
    downloads: Arc<AtomicU64>,
    lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for BucketSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketSource")
            .field("key", &self.key)
            .field("spec", &self.spec)
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl BucketSource {
    /// A source writing artifacts under `key`. Builds the provider's client (no network yet).
    ///
    /// Errors: [`BucketError::NoCryptoProvider`] when no default rustls provider is installed;
    /// [`BucketError::InvalidSpec`] for an empty bucket name, an `http://` endpoint
    /// without `insecure`, an endpoint `generic`/`azure` cannot do without (or an `azure`
    /// endpoint naming no account), credentials the provider does not take (an access key for
    /// `gcp`, a service-account key for the others), or a service-account key that is not a
    /// JSON object with `private_key`, `private_key_id` and `client_email` or whose private key
    /// is not an RSA key. No message quotes a secret.
    pub fn new(
        key: ArtifactKey,
        spec: BucketSpec,
        auth: BucketAuth,
    ) -> Result<BucketSource, BucketError> {
        let bucket = spec.bucket_name.clone();
        let invalid = |reason: &str| BucketError::InvalidSpec {
            bucket: bucket.clone(),
            reason: reason.to_string(),
        };
        if bucket.trim().is_empty() {
            return Err(invalid("bucketName is empty"));
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(BucketError::NoCryptoProvider { bucket });
        }
        let timeout = spec.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let endpoint = endpoint_url(&spec.endpoint, spec.insecure).map_err(|r| invalid(&r))?;
        let options = ClientOptions::new()
            .with_allow_http(spec.insecure)
            .with_timeout(timeout)
            .with_connect_timeout(timeout.min(Duration::from_secs(10)));
        // Retries inside one fetch stay short; the engine backs off between fetches.
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: timeout,
            ..RetryConfig::default()
        };
        let region = spec.region.clone().unwrap_or_else(|| "us-east-1".into());
        let client: Arc<dyn ObjectStore> = match spec.provider {
            BucketProvider::Generic | BucketProvider::Aws => {
                let mut b = if spec.provider == BucketProvider::Aws && auth == BucketAuth::Anonymous
                {
                    object_store::aws::AmazonS3Builder::from_env()
                } else {
                    object_store::aws::AmazonS3Builder::new()
                };
                b = b
                    .with_bucket_name(&bucket)
                    .with_region(region)
                    .with_client_options(options)
                    .with_retry(retry);
                match &endpoint {
                    // A custom endpoint gets path-style requests, as minio-go (Flux's S3 client)
                    // does for any host that is not Amazon's.
                    Some(url) => {
                        b = b
                            .with_endpoint(url)
                            .with_virtual_hosted_style_request(false)
                    }
                    None if spec.provider == BucketProvider::Generic => {
                        return Err(invalid("the generic provider needs an endpoint"));
                    }
                    // Amazon S3 itself: `https://<bucket>.s3.<region>.amazonaws.com`, as
                    // minio-go addresses Amazon (path style for names with dots).
                    None => {
                        b = b.with_virtual_hosted_style_request(!bucket.contains('.'));
                    }
                }
                match &auth {
                    BucketAuth::AccessKey { id, secret } => {
                        b = b.with_access_key_id(id).with_secret_access_key(secret);
                    }
                    BucketAuth::Anonymous if spec.provider == BucketProvider::Generic => {
                        b = b.with_skip_signature(true);
                    }
                    BucketAuth::Anonymous => {}
                    BucketAuth::ServiceAccount(_) => {
                        return Err(invalid(
                            "a service account key is only for the gcp provider; S3 takes accesskey and secretkey",
                        ));
                    }
                }
                Arc::new(b.build().map_err(|e| invalid(&e.to_string()))?)
            }
            BucketProvider::Gcp => {
                let mut b = match &auth {
                    BucketAuth::AccessKey { .. } => {
                        return Err(invalid(
                            "the gcp provider takes no access key (use the generic provider with GCS HMAC keys)",
                        ));
                    }
                    BucketAuth::Anonymous => {
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    }
                    BucketAuth::ServiceAccount(json) => {
                        check_service_account(json).map_err(|r| invalid(&r))?;
                        object_store::gcp::GoogleCloudStorageBuilder::new()
                            .with_service_account_key(json)
                    }
                };
                b = b
                    .with_bucket_name(&bucket)
                    .with_client_options(options)
                    .with_retry(retry);
                if let Some(url) = &endpoint {
                    b = b.with_config(object_store::gcp::GoogleConfigKey::BaseUrl, url);
                }
                let scrub = |t: String| scrub_secrets(&t, &secrets_of(&auth));
                Arc::new(b.build().map_err(|e| {
                    invalid(&scrub(format!(
                        "building the GCS client: {}",
                        error_chain(&e)
                    )))
                })?)
            }
            BucketProvider::Azure => {
                let Some(url) = &endpoint else {
                    return Err(invalid(
                        "the azure provider needs an endpoint (https://<account>.blob.core.windows.net)",
                    ));
                };
                let account = azure_account(url).map_err(|r| invalid(&r))?;
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(&bucket)
                    .with_endpoint(url.clone())
                    .with_allow_http(spec.insecure)
                    .with_client_options(options)
                    .with_retry(retry);
                b = match &auth {
                    BucketAuth::AccessKey { secret, .. } => b.with_access_key(secret),
                    BucketAuth::Anonymous => b.with_skip_signature(true),
                    BucketAuth::ServiceAccount(_) => {
                        return Err(invalid(
                            "a service account key is only for the gcp provider; azure takes an account key",
                        ));
                    }
                };
                let scrub = |t: String| scrub_secrets(&t, &secrets_of(&auth));
                Arc::new(b.build().map_err(|e| {
                    invalid(&scrub(format!(
                        "building the Azure client: {}",
                        error_chain(&e)
                    )))
                })?)
            }
        };
        let secrets = secrets_of(&auth);
        Ok(BucketSource {
            key,
            endpoint: endpoint.unwrap_or_else(|| format!("the {:?} default", spec.provider)),
            spec,
            client,
            secrets,
            timeout,
            cache_dir: None,
            downloads: Arc::new(AtomicU64::new(0)),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Keeps the last download in `dir` (created when missing) instead of the default
    /// `<store root>/.cache/bucket/<first 16 hex of sha256 of the artifact key>`. One folder per
    /// source: two sources sharing one would evict each other's files.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// How many objects (including `.sourceignore`) this source has downloaded since it was
    /// created: a counter for tests and metrics.
    pub fn downloads(&self) -> u64 {
        self.downloads.load(Ordering::Relaxed)
    }

    /// The spec.
    pub fn spec(&self) -> &BucketSpec {
        &self.spec
    }

    fn cache_dir(&self, store: &ArtifactStore) -> PathBuf {
        match &self.cache_dir {
            Some(d) => d.clone(),
            None => {
                let id = Digest::sha256_of(format!("{:?}", self.key).as_bytes());
                store
                    .root()
                    .join(".cache")
                    .join("bucket")
                    .join(&id.hex()[..16])
            }
        }
    }

    fn bucket(&self) -> String {
        self.spec.bucket_name.clone()
    }

    fn scrub(&self, text: &str) -> String {
        scrub_secrets(text, &self.secrets)
    }

    /// The ETag as it goes into the index: without quotes, as minio-go reports S3's and as
    /// the GCS listing has it; for `azure` with quotes, as the Blob service's `ETag` header has
    /// it: source-controller's Azure client lists `%x` of the ETag (its hex) but replaces it
    /// with the download's `ETag` header before computing the artifact revision, so the quoted
    /// form is what Flux's Azure revisions are made of.
    fn index_etag(&self, raw: &str) -> String {
        let bare = raw.trim_matches('"');
        match self.spec.provider {
            BucketProvider::Azure => format!("\"{bare}\""),
            _ => bare.to_string(),
        }
    }

    /// Maps a client error of `operation` to a [`BucketError`].
    fn client_error(&self, operation: &str, e: object_store::Error) -> BucketError {
        if let object_store::Error::InvalidPath { source } = &e {
            return match source {
                object_store::path::Error::BadSegment { path, source } => BucketError::UnsafeKey {
                    bucket: self.bucket(),
                    key: path.clone(),
                    reason: source.to_string(),
                },
                object_store::path::Error::EmptySegment { path } => BucketError::UnsafeKey {
                    bucket: self.bucket(),
                    key: path.clone(),
                    reason: "empty path segment".into(),
                },
                other => BucketError::UnsafeKey {
                    bucket: self.bucket(),
                    key: String::new(),
                    reason: other.to_string(),
                },
            };
        }
        // One line, as it goes into a condition message (S3 error bodies are multi-line XML).
        let message = self
            .scrub(&error_chain(&e))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if message.contains("NoSuchBucket")
            || message.contains("ContainerNotFound")
            || (operation == "listing objects" && matches!(e, object_store::Error::NotFound { .. }))
        {
            return BucketError::BucketNotFound {
                bucket: self.bucket(),
                endpoint: self.endpoint.clone(),
                message,
            };
        }
        BucketError::Request {
            bucket: self.bucket(),
            operation: operation.to_string(),
            message,
        }
    }

    fn cache_error(&self, path: &Path, message: impl fmt::Display) -> BucketError {
        BucketError::Cache {
            bucket: self.bucket(),
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// Lists the objects under the prefix: every key with its entry, the root `.sourceignore`'s
    /// ETag when it was listed.
    async fn list(&self) -> Result<(BTreeMap<String, Entry>, Option<String>), BucketError> {
        let prefix = self.spec.prefix.clone().unwrap_or_default();
        // object_store lists below a folder (`<folder>/`); the rest of the prefix is filtered here.
        let folder = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let folder = (!folder.is_empty()).then(|| ObjectPath::from_iter(folder.split('/')));
        let mut listing = self.client.list(folder.as_ref());
        let mut all = BTreeMap::new();
        let mut ignore_etag = None;
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|e| self.client_error("listing objects", e))?;
            let key = meta.location.to_string();
            let Some(etag) = meta.e_tag.as_deref().map(|t| self.index_etag(t)) else {
                return Err(BucketError::MissingEtag {
                    bucket: self.bucket(),
                    key,
                });
            };
            if key == IGNORE_FILE {
                ignore_etag = Some(etag);
                continue;
            }
            if !key.starts_with(&prefix) {
                continue;
            }
            all.insert(
                key,
                Entry {
                    location: meta.location,
                    etag,
                    size: meta.size,
                },
            );
        }
        // Folder markers (`dir/`, listed by object_store as `dir`): empty objects with objects
        // below them.
        let keys: Vec<String> = all.keys().cloned().collect();
        for (i, key) in keys.iter().enumerate() {
            let folder = format!("{key}/");
            let below = keys[i + 1..]
                .iter()
                .take_while(|k| k.starts_with(key.as_str()))
                .find(|k| k.starts_with(&folder));
            if let Some(other) = below {
                if all[key].size == 0 {
                    all.remove(key);
                } else {
                    return Err(BucketError::KeyConflict {
                        bucket: self.bucket(),
                        key: key.clone(),
                        other: other.clone(),
                    });
                }
            }
        }
        for key in all.keys() {
            check_key(key).map_err(|reason| BucketError::UnsafeKey {
                bucket: self.bucket(),
                key: key.clone(),
                reason,
            })?;
        }
        Ok((all, ignore_etag))
    }

    /// The text of the root `.sourceignore` (empty when there is none), from the cache when its
    /// ETag is unchanged. `listed_etag` is its ETag when the listing included it.
    async fn ignore_file(
        &self,
        manifest: &Manifest,
        listed_etag: Option<String>,
    ) -> Result<Option<CachedIgnoreFile>, BucketError> {
        const OP: &str = "reading .sourceignore";
        let location = ObjectPath::from(IGNORE_FILE);
        let etag = match listed_etag {
            Some(t) => t,
            None => match self.client.head(&location).await {
                Ok(meta) => meta.e_tag.map(|t| self.index_etag(&t)).unwrap_or_default(),
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.client_error(OP, e)),
            },
        };
        if let Some(cached) = &manifest.ignore_file
            && !etag.is_empty()
            && cached.etag == etag
        {
            return Ok(Some(cached.clone()));
        }
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let bytes = match self.client.get(&location).await {
            Ok(r) => r.bytes().await.map_err(|e| self.client_error(OP, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.client_error(OP, e)),
        };
        Ok(Some(CachedIgnoreFile {
            etag,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    }

    async fn run(
        &self,
        store: &ArtifactStore,
        last: Option<&Artifact>,
    ) -> Result<Fetched, BucketError> {
        let _guard = self.lock.lock().await;
        let cache = self.cache_dir(store);
        let files = cache.join(FILES);
        let manifest_path = cache.join(MANIFEST);
        let mut manifest = read_manifest(&manifest_path);

        let (listed, ignore_etag) = self.list().await?;
        let ignore_file = self.ignore_file(&manifest, ignore_etag).await?;
        let mut patterns = ignore_file
            .as_ref()
            .map(|f| f.text.clone())
            .unwrap_or_default();
        if let Some(spec_ignore) = &self.spec.ignore {
            patterns.push('\n');
            patterns.push_str(spec_ignore);
        }
        let rules = SourceIgnore::new(Some(&patterns));
        let mut index: BTreeMap<String, Entry> = listed
            .into_iter()
            .filter(|(k, _)| !rules.is_excluded(Path::new(k), false))
            .collect();

        let revision = revision_of(&index);
        if let Some(last) = last
            && last.has_revision(&revision)
            && store.local_path(last).is_file()
        {
            return Ok(Fetched::Unchanged(last.clone()));
        }

        // Bring the cache folder up to date. The manifest is removed while files change, so an
        // interrupted update is not trusted by the next fetch.
        if !files.is_dir() {
            manifest.objects.clear();
        }
        let _ = std::fs::remove_file(&manifest_path);
        if manifest.objects.is_empty() {
            remove_dir_all(&files).map_err(|e| self.cache_error(&files, e))?;
        }
        std::fs::create_dir_all(&files).map_err(|e| self.cache_error(&files, e))?;
        let stale: Vec<String> = manifest
            .objects
            .iter()
            .filter(|(k, c)| {
                index
                    .get(*k)
                    .is_none_or(|e| e.etag != c.etag || e.size != c.size)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            manifest.objects.remove(key);
            let path = files.join(key);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.cache_error(&path, e)),
            }
            prune_empty_parents(&files, &path);
        }
        // Files reused from the cache must still be there with their size.
        manifest.objects.retain(|k, c| {
            std::fs::metadata(files.join(k)).is_ok_and(|m| m.is_file() && m.len() == c.size)
        });
        let wanted: Vec<(String, Entry)> = index
            .iter()
            .filter(|(k, _)| !manifest.objects.contains_key(*k))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        let results: Vec<(String, Option<CachedObject>)> = futures::stream::iter(wanted)
            .map(|(key, entry)| {
                let files = files.clone();
                async move {
                    let got = self.download(&files, &key, &entry).await?;
                    Ok::<_, BucketError>((key, got))
                }
            })
            .buffer_unordered(MAX_CONCURRENT_DOWNLOADS)
            .try_collect()
            .await?;
        for (key, got) in results {
            match got {
                Some(cached) => {
                    if let Some(e) = index.get_mut(&key) {
                        e.etag = cached.etag.clone();
                    }
                    manifest.objects.insert(key, cached);
                }
                None => {
                    tracing::info!(bucket = %self.spec.bucket_name, key, "indexed object disappeared from the bucket");
                    index.remove(&key);
                }
            }
        }
        manifest.objects.retain(|k, _| index.contains_key(k));
        manifest.ignore_file = ignore_file;
        write_manifest(&manifest_path, &manifest)
            .map_err(|e| self.cache_error(&manifest_path, e))?;

        // The ETags may have moved while downloading: the revision is the index as stored.
        let revision = revision_of(&index);
        let mut allowed: HashSet<PathBuf> = HashSet::new();
        for key in index.keys() {
            let mut p = PathBuf::from(key);
            allowed.insert(p.clone());
            while p.pop() && !p.as_os_str().is_empty() {
                allowed.insert(p.clone());
            }
        }
        let artifact = store
            .archive_dir(&self.key, revision, &files, &|rel, _| allowed.contains(rel))
            .map_err(|source| BucketError::Store {
                bucket: self.bucket(),
                source,
            })?;
        Ok(Fetched::New(artifact))
    }

    /// Downloads one object into `files/<key>` (via a temp file, verified, renamed into place).
    /// `None` when the object disappeared since the listing.
    async fn download(
        &self,
        files: &Path,
        key: &str,
        entry: &Entry,
    ) -> Result<Option<CachedObject>, BucketError> {
        let op = || format!("downloading {key:?}");
        let target = files.join(key);
        let parent = target.parent().unwrap_or(files);
        std::fs::create_dir_all(parent).map_err(|e| self.cache_error(parent, e))?;
        self.downloads.fetch_add(1, Ordering::Relaxed);
        let result = match self.client.get(&entry.location).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.client_error(&op(), e)),
        };
        let etag = result
            .meta
            .e_tag
            .as_deref()
            .map(|t| self.index_etag(t))
            .unwrap_or_else(|| entry.etag.clone());
        let expected_size = result.meta.size;
        let mut tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(parent)
            .map_err(|e| self.cache_error(parent, e))?;
        let mut md5 = md5::Md5::new();
        let mut size = 0u64;
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.client_error(&op(), e))?;
            md5.update(&chunk);
            size += chunk.len() as u64;
            tmp.write_all(&chunk)
                .map_err(|e| self.cache_error(tmp.path(), e))?;
        }
        let verify = |reason: String| BucketError::Verify {
            bucket: self.bucket(),
            key: key.to_string(),
            reason,
        };
        if size != expected_size {
            return Err(verify(format!(
                "expected {expected_size} bytes, got {size}"
            )));
        }
        if is_md5_etag(&etag) {
            let actual = hex(&md5.finalize());
            if !actual.eq_ignore_ascii_case(&etag) {
                return Err(verify(format!("ETag {etag} but content MD5 {actual}")));
            }
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.cache_error(tmp.path(), e))?;
        tmp.persist(&target)
            .map_err(|e| self.cache_error(&target, e.error))?;
        Ok(Some(CachedObject { etag, size }))
    }
}

impl Source for BucketSource {
    /// Lists the bucket, returns [`Fetched::Unchanged`] when `last` already has the listing's
    /// revision (no object downloaded), else syncs the cache folder and stores a new artifact;
    /// bounded by the spec's timeout. Fetches of one source run one at a time.
    fn fetch<'a>(
        &'a self,
        store: &'a ArtifactStore,
        last: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<Fetched, gitops_core::Error>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.run(store, last)).await {
                Ok(result) => result.map_err(gitops_core::Error::from),
                Err(_elapsed) => Err(BucketError::Timeout {
                    bucket: self.bucket(),
                    timeout: self.timeout,
                }
                .into()),
            }
        })
    }
}

/// Flux's Bucket revision: `sha256:` of one `<key> <etag>\n` line per object, keys sorted.
pub fn index_revision<'a>(index: impl IntoIterator<Item = (&'a str, &'a str)>) -> Revision {
    let mut lines: Vec<(&str, &str)> = index.into_iter().collect();
    lines.sort();
    let mut text = String::new();
    for (k, v) in lines {
        text.push_str(k);
        text.push(' ');
        text.push_str(v);
        text.push('\n');
    }
    Revision::digest_only(Digest::sha256_of(text.as_bytes()))
}

fn revision_of(index: &BTreeMap<String, Entry>) -> Revision {
    index_revision(index.iter().map(|(k, e)| (k.as_str(), e.etag.as_str())))
}

/// Whether `key` is a plain relative path (normal segments only).
fn check_key(key: &str) -> Result<(), String> {
    if key.starts_with('/') {
        return Err("absolute key".into());
    }
    if key.contains(['\\', '\0']) {
        return Err("contains a backslash or NUL".into());
    }
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "segment {segment:?} would leave or alias the folder"
            ));
        }
    }
    if !Path::new(key)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err("not a relative path".into());
    }
    Ok(())
}

/// An ETag that is the MD5 of the content: 32 hex characters (multipart ETags end in `-<n>`).
fn is_md5_etag(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The endpoint as a URL: `None` when empty; `https://` (or `http://` when `insecure`) added to
/// a bare `host[:port]`.
fn endpoint_url(endpoint: &str, insecure: bool) -> Result<Option<String>, String> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() {
        return Ok(None);
    }
    let lower = e.to_ascii_lowercase();
    if lower.starts_with("http://") {
        if !insecure {
            return Err(format!(
                "endpoint {e} is plain HTTP; set insecure: true to allow it"
            ));
        }
        return Ok(Some(e.to_string()));
    }
    if lower.starts_with("https://") {
        return Ok(Some(e.to_string()));
    }
    if e.contains("://") {
        return Err(format!("endpoint {e}: only http and https are supported"));
    }
    let scheme = if insecure { "http" } else { "https" };
    Ok(Some(format!("{scheme}://{e}")))
}

/// The strings that must not appear in errors: the secret key, or the service-account key (the
/// whole document, its private key and each line of the key's PEM body).
fn secrets_of(auth: &BucketAuth) -> Vec<String> {
    let mut out = Vec::new();
    match auth {
        BucketAuth::Anonymous => {}
        BucketAuth::AccessKey { secret, .. } => out.push(secret.clone()),
        BucketAuth::ServiceAccount(json) => {
            out.push(json.clone());
            if let Some(key) = serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v.get("private_key")?.as_str().map(str::to_string))
            {
                out.extend(
                    key.lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                        .map(str::to_string),
                );
                out.push(key.replace('\n', "\\n"));
                out.push(key);
            }
        }
    }
    out.retain(|s| !s.is_empty());
    // Longest first, so a part does not break the replacement of the whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn scrub_secrets(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// Checks a service-account key document: a JSON object with the string fields object_store
/// needs (`private_key`, `private_key_id`, `client_email`). The reason never quotes the document.
fn check_service_account(json: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "the service account key is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err("the service account key is not a JSON object".into());
    };
    for field in ["private_key", "private_key_id", "client_email"] {
        if !object.get(field).is_some_and(serde_json::Value::is_string) {
            return Err(format!(
                "the service account key has no string field {field:?}"
            ));
        }
    }
    Ok(())
}

/// The storage account of an Azure Blob endpoint URL: the first segment of its path when it has
/// one (the emulator form `http://127.0.0.1:10000/devstoreaccount1`, as Azurite and Azure's
/// emulator connection strings address accounts), else the first label of the host
/// (`https://<account>.blob.core.windows.net`, Flux's rule, which wants a subdomain).
fn azure_account(url: &str) -> Result<String, String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(first) = path.split('/').next().filter(|s| !s.is_empty()) {
        return Ok(first.to_string());
    }
    let host = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    // Without the port (an IPv6 literal `[..]` keeps its colons and is refused below).
    let host = if host.starts_with('[') {
        host
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let labels: Vec<&str> = host.split('.').collect();
    if host.parse::<std::net::IpAddr>().is_ok()
        || host.starts_with('[')
        || labels.len() <= 2
        || labels[0].is_empty()
    {
        return Err(format!(
            "no storage account in endpoint {url}: use https://<account>.blob.core.windows.net, or http(s)://host:port/<account> for an emulator such as Azurite"
        ));
    }
    Ok(labels[0].to_string())
}

fn read_manifest(path: &Path) -> Manifest {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_manifest(path: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".manifest-")
        .tempfile_in(dir)?;
    serde_json::to_writer(&mut tmp, manifest)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn remove_dir_all(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the empty folders between `path`'s parent and `root` (exclusive).
fn prune_empty_parents(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_is_sha256_of_sorted_key_etag_lines() {
        // Flux's Digester writes "<key> <value>\n" per key, keys sorted.
        let r = index_revision([("foo", "bar"), ("bar", "baz")]);
        assert_eq!(
            r,
            Revision::digest_only(Digest::sha256_of(b"bar baz\nfoo bar\n"))
        );
        assert_eq!(
            index_revision([]).to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn keys_must_be_plain_relative_paths() {
        for ok in ["a", "dir/a.yaml", "a..b/c", ".hidden/x"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in ["../x", "a/../../x", "/abs", "a//b", "./a", "a/.", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(endpoint_url("", false).unwrap(), None);
        assert_eq!(
            endpoint_url("minio:9000", false).unwrap().as_deref(),
            Some("https://minio:9000")
        );
        assert_eq!(
            endpoint_url("minio:9000", true).unwrap().as_deref(),
            Some("http://minio:9000")
        );
        assert!(endpoint_url("http://minio:9000", false).is_err());
        assert!(endpoint_url("ftp://x", true).is_err());
    }

    #[test]
    fn azure_accounts_come_from_the_path_or_the_first_host_label() {
        assert_eq!(
            azure_account("https://flux.blob.core.windows.net").unwrap(),
            "flux"
        );
        assert_eq!(
            azure_account("https://flux.blob.core.windows.net:443").unwrap(),
            "flux"
        );
        assert_eq!(
            azure_account("http://127.0.0.1:10000/devstoreaccount1").unwrap(),
            "devstoreaccount1"
        );
        assert_eq!(azure_account("http://azurite:10000/acct/").unwrap(), "acct");
        for bad in [
            "http://127.0.0.1:10000",
            "https://localhost",
            "https://example.com",
            "http://[::1]:10000",
        ] {
            let err = azure_account(bad).unwrap_err();
            assert!(err.contains("/<account>"), "{bad}: {err}");
        }
    }

    #[test]
    fn service_account_secrets_are_scrubbed_in_every_form() {
        let json = r#"{"private_key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n","private_key_id":"k","client_email":"e"}"#;
        let secrets = secrets_of(&BucketAuth::ServiceAccount(json.into()));
        let text = format!(
            "a {json} b MIIEvQIBADANBgkqhkiG9w0BAQEFAASC c {}",
            "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
        );
        let out = scrub_secrets(&text, &secrets);
        assert!(!out.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "{out}");
        assert!(out.starts_with("a *** b *** c"), "{out}");
        assert!(check_service_account(json).is_ok());
        assert!(check_service_account("{").unwrap_err().contains("not JSON"));
        assert!(
            check_service_account(r#"{"private_key":1}"#)
                .unwrap_err()
                .contains("\"private_key\"")
        );
    }

    #[test]
    fn md5_etags_are_recognised() {
        assert!(is_md5_etag("5d41402abc4b2a76b9719d911017c592"));
        assert!(!is_md5_etag("5d41402abc4b2a76b9719d911017c592-2"));
        assert!(!is_md5_etag(""));
    }

    #[test]
    fn spec_serde_uses_flux_names_and_auth_debug_hides_the_secret() {
        let json = r#"{"provider":"aws","bucketName":"b","endpoint":"s3.amazonaws.com","region":"eu-west-1","prefix":"apps/","ignore":"*.md","timeout":"30s"}"#;
        let spec: BucketSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.provider, BucketProvider::Aws);
        assert_eq!(spec.bucket_name, "b");
        assert_eq!(spec.timeout, Some(Duration::from_secs(30)));
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(back["bucketName"], "b");
        assert!(back.get("insecure").is_none());
        let spec: BucketSpec = serde_json::from_str(r#"{"bucketName":"b"}"#).unwrap();
        assert_eq!(spec.provider, BucketProvider::Generic);

        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = BucketAuth::AccessKey {
            id: "AKID".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let key = ArtifactKey::new("Bucket", "default", "b").unwrap();
        let spec = BucketSpec {
            bucket_name: "b".into(),
            endpoint: "127.0.0.1:9".into(),
            insecure: true,
            ..Default::default()
        };
        let src = BucketSource::new(key.clone(), spec, auth).unwrap();
        assert!(!format!("{src:?}").contains("hunter2"));
        assert_eq!(src.scrub("x hunter2 y"), "x *** y");

        let err = BucketSource::new(
            key,
            BucketSpec {
                bucket_name: "b".into(),
                endpoint: "http://127.0.0.1:9".into(),
                ..Default::default()
            },
            BucketAuth::Anonymous,
        )
        .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("insecure"), "{err}");
    }
}
