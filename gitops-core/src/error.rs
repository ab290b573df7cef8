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
}

impl Error {
    /// A failure of `stage`, retryable or terminal as its source says (crates map their own
    /// error's `is_retryable()` through this).
    pub fn new(stage: Stage, retryable: bool, source: impl Into<BoxError>) -> Self {
        Error {
            stage,
            retryable,
            source: source.into(),
        }
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
        // The whole chain on one line, as it goes into a condition message.
        write!(f, "{}", self.source)?;
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
