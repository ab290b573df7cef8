//! Where the control-plane binaries are.

use std::path::{Path, PathBuf};

use crate::Error;

/// The Kubernetes version of the binaries this crate expects (and `cargo xtask testenv` installs).
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// The cache folder `cargo xtask testenv` installs the binaries into:
/// `$XDG_CACHE_HOME/gitops-testenv/k8s-1.20.2`, or `$HOME/.cache/gitops-testenv/k8s-1.20.2` when
/// `XDG_CACHE_HOME` is unset (a relative `.cache/…` when neither is set).
pub fn default_assets_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let cache = non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache
        .join("gitops-testenv")
        .join(format!("k8s-{KUBERNETES_VERSION}"))
}

/// Whether `dir` holds the binaries a control plane needs (`etcd` and `kube-apiserver`).
fn has_binaries(dir: &Path) -> bool {
    dir.join("etcd").is_file() && dir.join("kube-apiserver").is_file()
}

/// The folder holding `etcd`, `kube-apiserver` and (optionally) `kube-controller-manager`:
/// `KUBEBUILDER_ASSETS` when it is set and holds them, else [`default_assets_dir`] when it holds
/// them, else [`Error::AssetsNotFound`], which says to run `cargo xtask testenv`.
pub fn assets_dir() -> Result<PathBuf, Error> {
    let mut searched = Vec::new();
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_binaries(&dir) {
            return Ok(dir);
        }
        searched.push(dir);
    }
    let dir = default_assets_dir();
    if has_binaries(&dir) {
        return Ok(dir);
    }
    searched.push(dir);
    Err(Error::AssetsNotFound { searched })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_binaries_is_not_an_assets_folder() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!has_binaries(tmp.path()));
        std::fs::write(tmp.path().join("etcd"), "").unwrap();
        assert!(!has_binaries(tmp.path()));
        std::fs::write(tmp.path().join("kube-apiserver"), "").unwrap();
        assert!(has_binaries(tmp.path()));
    }

    #[test]
    fn the_missing_assets_error_names_the_folders_and_the_install_command() {
        let err = Error::AssetsNotFound {
            searched: vec![PathBuf::from("/a"), PathBuf::from("/b")],
        };
        let msg = err.to_string();
        assert!(msg.contains("/a, /b"), "{msg}");
        assert!(msg.contains("cargo xtask testenv"), "{msg}");
    }

    #[test]
    fn the_default_folder_ends_with_the_version() {
        assert!(default_assets_dir().ends_with("gitops-testenv/k8s-1.20.2"));
    }
}
