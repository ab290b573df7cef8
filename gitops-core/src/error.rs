//! The error every trait of the toolkit returns: which stage failed, whether a retry can help,
//! and the typed error of the crate that failed underneath.

use std::fmt;

/// A boxed error from an implementation crate (`gitops-sources`, `gitops-render`, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The stage of the reconcile line that failed; maps onto Flux's Ready=False reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Fetching or storing the artifact (Flux reason `ArtifactFailed`).
    Fetch,
    /// Rendering manifests (Flux reason `BuildFailed`).
    Render,
    /// Applying objects (Flux reason `ReconciliationFailed`).
    Apply,
    /// Deleting stale objects (Flux reason `PruneFailed`).
    Prune,
    /// Waiting for health (Flux reason `HealthCheckFailed`).
    Health,
}

impl Stage {
    /// Flux's condition reason for a failure in this stage.
    pub fn reason(self) -> &'static str {
        match self {
            Stage::Fetch => crate::condition::reason::ARTIFACT_FAILED,
            Stage::Render => crate::condition::reason::BUILD_FAILED,
            Stage::Apply => crate::condition::reason::RECONCILIATION_FAILED,
            Stage::Prune => crate::condition::reason::PRUNE_FAILED,
            Stage::Health => crate::condition::reason::HEALTH_CHECK_FAILED,
        }
    }
}

/// A failure in one stage of the reconcile line.
///
/// `retryable` tells the engine to back off and try again (network, API server conflicts);
/// a terminal failure (bad input that only a new revision can fix) marks the unit Stalled until
/// its source or spec changes. The message is the underlying error's, which by the toolkit's rules
/// names the file, object or URL (credentials redacted).
#[derive(Debug)]
pub struct Error {
    stage: Stage,
    retryable: bool,
    source: BoxError,
    written: Vec<crate::InventoryEntry>,
}

impl Error {
    /// A failure of `stage`, retryable or terminal as its source says (crates map their own
    /// error's `is_retryable()` through this).
    pub fn new(stage: Stage, retryable: bool, source: impl Into<BoxError>) -> Self {
        Error {
            stage,
            retryable,
            source: source.into(),
            written: Vec::new(),
        }
    }

    /// Records the objects the failed stage wrote, or may have written, before it failed: an
    /// apply that fails after an earlier stage (Namespaces, CRDs) was applied, or while some
    /// of its writes were in flight. The engine keeps them in the unit's inventory beside the
    /// previous one, so that a later revision without them prunes them; Flux forgets them and
    /// leaves such objects behind. Listing an object that was not written is harmless: prune
    /// skips objects that are gone or do not carry the unit's owner labels.
    pub fn with_written(mut self, written: Vec<crate::InventoryEntry>) -> Self {
        self.written = written;
        self
    }

    /// The objects the failed stage wrote or may have written (see [`Error::with_written`]);
    /// empty when it wrote nothing or did not say.
    pub fn written(&self) -> &[crate::InventoryEntry] {
        &self.written
    }

    /// A failure that may pass on a later try.
    pub fn retryable(stage: Stage, source: impl Into<BoxError>) -> Self {
        Error::new(stage, true, source)
    }

    /// A failure that will repeat until the input changes.
    pub fn terminal(stage: Stage, source: impl Into<BoxError>) -> Self {
        Error::new(stage, false, source)
    }

    /// The stage that failed.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether retrying with backoff can help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The underlying error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole chain on one line, as it goes into a condition message. Many errors
        // (kube's, thiserror's `"{0}"` with `#[source]`) print their source in their own
        // message too: a cause whose text is written already, or that only wraps such a
        // cause (kube's `ApiError: <status> (<status:?>)` around the API server's Status),
        // adds nothing and is left out, so the server's message appears once.
        let mut written = self.source.to_string();
        let mut cause = self.source.source();
        while let Some(c) = cause {
            let shown = |e: &dyn std::error::Error| {
                let text = e.to_string();
                let text = text.trim_end_matches([':', ' ']);
                text.is_empty() || written.contains(text)
            };
            if !shown(c) && !c.source().is_some_and(shown) {
                written.push_str(": ");
                written.push_str(&c.to_string());
            }
            cause = c.source();
        }
        f.write_str(&written)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Leaf(&'static str);

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Wrap {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    }

    fn wrap(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Wrap {
        Wrap {
            what: what.into(),
            source: Box::new(source),
        }
    }

    #[test]
    fn the_chain_is_one_line_without_repeats() {
        // Each layer says only its own part: all of them are joined.
        let e = Error::retryable(
            Stage::Fetch,
            wrap("fetch x", wrap("connect", Leaf("refused"))),
        );
        assert_eq!(e.to_string(), "fetch x: connect: refused");
        // A layer that prints its source too: the source is not repeated.
        let e = Error::retryable(
            Stage::Apply,
            wrap("cm: apply failed: boom: ", Leaf("boom: ")),
        );
        assert_eq!(e.to_string(), "cm: apply failed: boom: ");
        // A wrapper around a cause that is shown already (as kube's `ApiError: <status>
        // (<status:?>)`) is left out with it; what lies below them is still added.
        let e = Error::retryable(
            Stage::Apply,
            wrap(
                "cm: apply failed: denied",
                wrap(
                    "ApiError: denied (Status {..})",
                    wrap("denied", Leaf("because")),
                ),
            ),
        );
        assert_eq!(e.to_string(), "cm: apply failed: denied: because");
    }
}
