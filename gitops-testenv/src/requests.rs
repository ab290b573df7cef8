//! Recording the HTTP requests a [`kube::Client`] sends, to assert or count what a component
//! asks of the API server (one LIST instead of a GET per object, no dry run on a no-op, ...).
//!
//! [`RequestLog::client`] builds a client whose requests pass through a tower layer
//! ([`RequestLogLayer`]) that appends a [`RecordedRequest`] (method, path, query) to the log
//! before sending them on unchanged. The log is shared by every clone, so the test keeps one and
//! gives the client away:
//!
//! ```no_run
//! use gitops_testenv::TestEnv;
//! use gitops_testenv::requests::RequestLog;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let env = TestEnv::start().await?;
//! let log = RequestLog::new();
//! let client = log.client(env.kube_config())?;
//! // ... use `client` ...
//! let per_object = log.take_object_requests("configmaps"); // ["GET cm-1", "LIST", ...]
//! let per_verb = log.counts_by_verb(); // {"GET": 3, "PATCH dry-run": 1, ...}
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The query parameter that makes a write a dry run (`dryRun=All`).
const DRY_RUN: &str = "dryRun=";

/// One request a [`kube::Client`] sent through a [`RequestLogLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method, `GET`, `PATCH`, `POST`, `PUT`, `DELETE`.
    pub method: String,
    /// The URL path, e.g. `/api/v1/namespaces/default/configmaps/cm-1`.
    pub path: String,
    /// The URL query without `?`, empty when there is none.
    pub query: String,
}

impl RecordedRequest {
    /// Whether it is a dry run: `dryRun=` in the query (the API server's `dryRun=All`).
    pub fn is_dry_run(&self) -> bool {
        self.query.split('&').any(|p| p.starts_with(DRY_RUN))
    }

    /// The method, followed by ` dry-run` for a dry run: `GET`, `PATCH`, `PATCH dry-run`; the
    /// keys of [`RequestLog::counts_by_verb`].
    pub fn verb(&self) -> String {
        if self.is_dry_run() {
            format!("{} dry-run", self.method)
        } else {
            self.method.clone()
        }
    }

    /// The resource (plural, e.g. `configmaps`) and the object's name, when the path is a
    /// Kubernetes resource path (`/api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]` or
    /// `/apis/GROUP/VERSION/...`); no name for a collection (a LIST). `None` for discovery and
    /// other paths (`/api`, `/apis/apps/v1`, `/version`, `/readyz`).
    pub fn resource(&self) -> Option<(&str, Option<&str>)> {
        let segments: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let rest = match segments.as_slice() {
            ["api", _version, rest @ ..] => rest,
            ["apis", _group, _version, rest @ ..] => rest,
            _ => return None,
        };
        // `namespaces/NS/...` scopes a namespaced resource; `namespaces[/NS]` alone is the
        // Namespace resource itself.
        let rest = match rest {
            ["namespaces", _ns, scoped @ ..] if !scoped.is_empty() => scoped,
            _ => rest,
        };
        match rest {
            [resource, name, ..] if !name.is_empty() => Some((resource, Some(name))),
            [resource] if !resource.is_empty() => Some((resource, None)),
            _ => None,
        }
    }

    /// The request as `VERB name` for a request on one object (`GET cm-1`, `PATCH cm-1`,
    /// `PATCH dry-run cm-1`, `DELETE cm-1`), `LIST` for a GET of a collection, or the
    /// [`verb`](RecordedRequest::verb) alone for another request on a collection; `None` when it
    /// is not on `resource` (plural, e.g. `configmaps`).
    pub fn on_object(&self, resource: &str) -> Option<String> {
        let (r, name) = self.resource()?;
        if r != resource {
            return None;
        }
        Some(match name {
            Some(name) => format!("{} {name}", self.verb()),
            None if self.method == "GET" => "LIST".to_string(),
            None => self.verb(),
        })
    }
}

/// The requests a [`kube::Client`] sent, in order; cheap to clone, the clones share the log.
/// See the [module](self).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl RequestLog {
    /// An empty log.
    pub fn new() -> RequestLog {
        RequestLog::default()
    }

    /// A client of `config` (e.g. [`TestEnv::kube_config`](crate::TestEnv::kube_config)) that
    /// records each request in this log. Call it within a Tokio runtime (the client spawns its
    /// request buffer there).
    ///
    /// Errors: what [`kube::client::ClientBuilder::try_from`] returns for a bad configuration
    /// (e.g. TLS setup).
    pub fn client(&self, config: kube::Config) -> Result<kube::Client, kube::Error> {
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&self.layer())
            .build())
    }

    /// The tower layer that records into this log, for a client built by hand
    /// ([`kube::client::ClientBuilder::with_layer`]).
    pub fn layer(&self) -> RequestLogLayer {
        RequestLogLayer { log: self.clone() }
    }

    /// The requests recorded so far, in the order they were sent.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// The requests recorded so far, emptying the log.
    pub fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *self.lock())
    }

    /// Empties the log.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many requests were recorded per [`verb`](RecordedRequest::verb) (`GET`, `PATCH`,
    /// `PATCH dry-run`, ...).
    pub fn counts_by_verb(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for r in self.lock().iter() {
            *counts.entry(r.verb()).or_default() += 1;
        }
        counts
    }

    /// Empties the log and returns its requests on `resource` (plural, e.g. `configmaps`) as
    /// [`RecordedRequest::on_object`] gives them (`LIST`, `GET cm-1`, `PATCH dry-run cm-1`,
    /// `PATCH cm-1`), sorted; requests on other resources are dropped.
    pub fn take_object_requests(&self, resource: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .take()
            .iter()
            .filter_map(|r| r.on_object(resource))
            .collect();
        out.sort();
        out
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record<B>(&self, req: &http::Request<B>) {
        self.lock().push(RecordedRequest {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or("").to_string(),
        });
    }
}

/// The tower layer of a [`RequestLog`] ([`RequestLog::layer`]).
#[derive(Debug, Clone)]
pub struct RequestLogLayer {
    log: RequestLog,
}

impl<S> tower::Layer<S> for RequestLogLayer {
    type Service = RequestLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLogService {
            inner,
            log: self.log.clone(),
        }
    }
}

/// The service of a [`RequestLogLayer`]: records each request, then passes it to `S` unchanged.
#[derive(Debug, Clone)]
pub struct RequestLogService<S> {
    inner: S,
    log: RequestLog,
}

impl<S, B> tower::Service<http::Request<B>> for RequestLogService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.log.record(&req);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, query: &str) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
        }
    }

    #[test]
    fn requests_are_classified_by_resource_name_and_dry_run() {
        let cm = "/api/v1/namespaces/default/configmaps";
        let cases = [
            (req("GET", cm, "limit=500"), Some("LIST")),
            (req("GET", &format!("{cm}/cm-1"), ""), Some("GET cm-1")),
            (
                req("PATCH", &format!("{cm}/cm-1"), "dryRun=All&fieldManager=x"),
                Some("PATCH dry-run cm-1"),
            ),
            (
                req("PATCH", &format!("{cm}/cm-1"), "fieldManager=x&force=true"),
                Some("PATCH cm-1"),
            ),
            (req("POST", cm, ""), Some("POST")),
            (req("GET", "/api/v1/configmaps", ""), Some("LIST")),
            (
                req("GET", "/apis/apps/v1/namespaces/a/deployments/web", ""),
                None,
            ),
            (req("GET", "/api/v1/namespaces/configmaps", ""), None),
            (req("GET", "/api/v1", ""), None),
            (req("GET", "/readyz", ""), None),
        ];
        for (r, expected) in cases {
            assert_eq!(r.on_object("configmaps").as_deref(), expected, "{r:?}");
        }
        assert_eq!(
            req(
                "GET",
                "/apis/apps/v1/namespaces/a/deployments/web/status",
                ""
            )
            .resource(),
            Some(("deployments", Some("web")))
        );
        assert_eq!(
            req("DELETE", "/api/v1/namespaces/team", "").resource(),
            Some(("namespaces", Some("team")))
        );
        assert_eq!(
            req("GET", "/api/v1/namespaces", "").resource(),
            Some(("namespaces", None))
        );
    }

    #[test]
    fn the_log_counts_by_verb_and_takes_object_requests() {
        let log = RequestLog::new();
        let cm = "/api/v1/namespaces/default/configmaps";
        for r in [
            http::Request::get(format!("{cm}/b")).body(()).unwrap(),
            http::Request::patch(format!("{cm}/b?dryRun=All"))
                .body(())
                .unwrap(),
            http::Request::patch(format!("{cm}/b")).body(()).unwrap(),
            http::Request::get(format!("{cm}?limit=500"))
                .body(())
                .unwrap(),
            http::Request::get("/apis/apps/v1").body(()).unwrap(),
        ] {
            log.record(&r);
        }
        let counts: Vec<(String, u64)> = log.counts_by_verb().into_iter().collect();
        assert_eq!(
            counts,
            [
                ("GET".to_string(), 3),
                ("PATCH".to_string(), 1),
                ("PATCH dry-run".to_string(), 1)
            ]
        );
        assert_eq!(log.requests().len(), 5);
        assert_eq!(
            log.take_object_requests("configmaps"),
            ["GET b", "LIST", "PATCH b", "PATCH dry-run b"]
        );
        assert!(log.requests().is_empty(), "taken");
    }

    /// A tower service answering with the request's path.
    struct Echo;

    impl tower::Service<http::Request<()>> for Echo {
        type Response = String;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<String, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(req.uri().path().to_string()))
        }
    }

    /// The layer records what goes through a tower service and passes the request on.
    #[tokio::test]
    async fn the_layer_records_and_forwards() {
        use tower::{Layer, Service};
        let log = RequestLog::new();
        let mut svc = log.layer().layer(Echo);
        let path = "/api/v1/namespaces/default/configmaps/x";
        let request = http::Request::delete(format!("{path}?dryRun=All"))
            .body(())
            .unwrap();
        assert_eq!(svc.call(request).await.unwrap(), path);
        assert_eq!(log.requests(), [req("DELETE", path, "dryRun=All")]);
    }
}
