//! Criterion benchmarks of the gitops toolkit live in `benches/`; this library only holds the
//! helpers they share.

use std::path::{Path, PathBuf};

/// The shared fixtures folder (`../shared/fixtures` beside the project root).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}
