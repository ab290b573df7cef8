//! `spec.recurseSubmodules`: the submodules of the fetched commit, checked out at the commits the
//! superproject records, recursively, as source-controller does (go-git's recursive clone).
//!
//! The superproject's tree is written by [`write_commit_tree`], which leaves gitlink entries
//! out. For each gitlink this module looks up the submodule's URL in the `.gitmodules` of the same
//! commit (relative URLs such as `../lib.git` are resolved against the URL of the repository that
//! records them, as `git submodule` does), fetches exactly the recorded commit with depth 1 into a
//! temporary bare repository — through a [`GitSource`] with `ref.commit`, so the transports,
//! timeouts and secret scrubbing are the superproject's — and writes its tree at the gitlink's
//! path. Submodules of submodules follow, up to [`MAX_DEPTH`] levels.
//!
//! Credentials: the GitRepository's credentials are passed to submodules with the same scheme,
//! host and port as the GitRepository's URL (nested submodules are compared with that URL too,
//! never with their parent's, so a submodule elsewhere cannot forward them) when they fit the submodule's transport (HTTP credentials for
//! `http(s)://`, the SSH identity for `ssh://`); other submodules are fetched anonymously (or
//! with the user info of their own URL). HTTP credentials travel as an `Authorization` header,
//! never in a URL or argv.
//!
//! `file://` submodules are only followed when the superproject itself is a `file://` URL: a
//! remote repository must not be able to copy folders of the machine running the fetch into its
//! artifact. A submodule marked `update = none` in `.gitmodules` is left out, as `git submodule
//! update` does.
//!
//! The artifact's revision stays the superproject's (`<branch>@sha1:<commit>`): a moved submodule
//! pointer is a new superproject commit anyway, so the "unchanged" check on the listing still
//! holds. [`METADATA_RECURSE_SUBMODULES`] records the setting so that toggling it builds a new
//! artifact (Flux's `status.observedRecurseSubmodules`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use gix::bstr::ByteSlice;

use super::{
    GitAuth, GitError, GitReference, GitRepositorySpec, GitSource, redact_url, safe_file_name,
    scrub, write_commit_tree,
};

/// Artifact metadata key present (value `true`) when the artifact was built with
/// `recurseSubmodules`, Flux's `status.observedRecurseSubmodules`.
pub const METADATA_RECURSE_SUBMODULES: &str = "submodules.recurse";

/// How deep submodules of submodules are followed.
pub const MAX_DEPTH: usize = 8;

/// A gitlink of a tree: where the submodule goes and which commit it records.
struct Gitlink {
    /// `/`-separated path relative to the repository root.
    path: String,
    commit: ObjectId,
}

/// One `[submodule "name"]` section of `.gitmodules`.
struct Declared {
    name: String,
    url: Option<String>,
    update: Option<String>,
}

impl GitSource {
    /// Checks out the submodules of `commit` (read from `repo`, its tree already written to
    /// `tree_dir`) recursively. Temporary repositories go under `scratch`.
    pub(super) fn checkout_submodules(
        &self,
        repo: &gix::Repository,
        commit: ObjectId,
        tree_dir: &Path,
        scratch: &Path,
        interrupt: &AtomicBool,
    ) -> Result<(), GitError> {
        let mut count = 0usize;
        self.checkout_submodules_of(
            repo,
            commit,
            &self.fetch_url,
            tree_dir,
            "",
            scratch,
            interrupt,
            0,
            &mut count,
        )?;
        if count > 0 {
            tracing::debug!(url = %self.redacted_url, submodules = count, "checked out submodules");
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn checkout_submodules_of(
        &self,
        repo: &gix::Repository,
        commit: ObjectId,
        base_url: &str,
        dir: &Path,
        prefix: &str,
        scratch: &Path,
        interrupt: &AtomicBool,
        depth: usize,
        count: &mut usize,
    ) -> Result<(), GitError> {
        let here = |path: &str| {
            if prefix.is_empty() {
                path.to_string()
            } else {
                format!("{prefix}/{path}")
            }
        };
        let checkout_error = |message: String| GitError::Checkout {
            url: self.redacted_url.clone(),
            reference: self.reference.clone(),
            commit: commit.to_string(),
            message: if prefix.is_empty() {
                message
            } else {
                format!("submodule {prefix}: {message}")
            },
        };
        let (links, gitmodules) = gitlinks(repo, commit).map_err(&checkout_error)?;
        if links.is_empty() {
            return Ok(());
        }
        let declared = match gitmodules {
            Some(bytes) => parse_gitmodules(&bytes)
                .map_err(|e| checkout_error(format!("reading .gitmodules: {e}")))?,
            None => BTreeMap::new(),
        };
        for link in links {
            let path = here(&link.path);
            let fail =
                |submodule_url: &str, message: String, retryable: bool| GitError::Submodule {
                    url: self.redacted_url.clone(),
                    path: path.clone(),
                    submodule_url: redact_url(submodule_url),
                    message: scrub(&message, &self.spec.url, &self.redacted_url, &self.secrets),
                    retryable,
                };
            let Some(decl) = declared.get(&link.path) else {
                return Err(fail(
                    "(none)",
                    "no submodule with this path in .gitmodules".into(),
                    false,
                ));
            };
            if decl.update.as_deref() == Some("none") {
                tracing::debug!(
                    url = %self.redacted_url,
                    path = %path,
                    "submodule has update = none: skipped"
                );
                continue;
            }
            let Some(raw_url) = decl.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
                return Err(fail(
                    "(none)",
                    format!("submodule {:?} has no url in .gitmodules", decl.name),
                    false,
                ));
            };
            if depth >= MAX_DEPTH {
                return Err(fail(
                    raw_url,
                    format!("submodules nested deeper than {MAX_DEPTH} levels"),
                    false,
                ));
            }
            let url = resolve_submodule_url(base_url, raw_url).ok_or_else(|| {
                fail(
                    raw_url,
                    format!(
                        "cannot resolve the relative URL against {}",
                        redact_url(base_url)
                    ),
                    false,
                )
            })?;
            if url.starts_with('-') {
                return Err(fail(&url, "URL starts with '-'".into(), false));
            }
            let is_file = |u: &str| u.to_ascii_lowercase().starts_with("file://");
            if is_file(&url) && !is_file(&self.fetch_url) {
                return Err(fail(
                    &url,
                    "file:// submodules are only followed for file:// repositories".into(),
                    false,
                ));
            }
            let auth = self.auth_for(&url);
            let spec = GitRepositorySpec {
                url: url.clone(),
                reference: Some(GitReference {
                    commit: Some(link.commit.to_string()),
                    ..Default::default()
                }),
                timeout: Some(self.timeout),
                ..Default::default()
            };
            let mut sub = GitSource::new(self.key.clone(), spec, auth)
                .map_err(|e| fail(&url, e.to_string(), e.is_retryable()))?;
            // The secret's CA (`ca.crt`) is trusted for submodules too, as Flux passes the same
            // TLS options to them.
            sub.ca_certificates = self.ca_certificates.clone();
            let git_dir = tempfile::Builder::new()
                .prefix("submodule-")
                .tempdir_in(scratch)
                .map_err(|e| fail(&url, format!("creating a temporary folder: {e}"), true))?;
            let sub_repo = sub
                .fetch_commit(git_dir.path(), interrupt)
                .map_err(|e| fail(&url, e.to_string(), e.is_retryable()))?;
            let target = link_dir(dir, &link.path);
            write_commit_tree(&sub_repo, link.commit, &target, interrupt)
                .map_err(|m| fail(&url, format!("checking out {}: {m}", link.commit), true))?;
            *count += 1;
            self.checkout_submodules_of(
                &sub_repo,
                link.commit,
                &sub.fetch_url,
                &target,
                &path,
                scratch,
                interrupt,
                depth + 1,
                count,
            )?;
        }
        Ok(())
    }

    /// Fetches this source's selected commit (the spec's `ref.commit` for submodules) with depth
    /// 1 into a new bare repository at `git_dir`, honouring `interrupt`.
    fn fetch_commit(
        &self,
        git_dir: &Path,
        interrupt: &AtomicBool,
    ) -> Result<gix::Repository, GitError> {
        let ssh = self.ssh_session()?;
        let repo = self.init_repo(git_dir, ssh.as_ref())?;
        let target = self.ssh_checked(ssh.as_ref(), self.resolve(&repo))?;
        self.ssh_checked(ssh.as_ref(), self.download(&repo, &target, interrupt))?;
        Ok(repo)
    }

    /// The credentials for a submodule at `url`: this source's when the host and port are the
    /// same and they fit the transport, else none.
    fn auth_for(&self, url: &str) -> GitAuth {
        let lower = url.to_ascii_lowercase();
        let http = lower.starts_with("http://") || lower.starts_with("https://");
        let fits = match &self.auth {
            GitAuth::None => return GitAuth::None,
            GitAuth::Basic { .. } | GitAuth::Bearer { .. } => http,
            GitAuth::Ssh { .. } => !http && !lower.starts_with("file://"),
        };
        if fits && same_host(&self.fetch_url, url) {
            self.auth.clone()
        } else {
            GitAuth::None
        }
    }
}

/// Whether two URLs have the same scheme, host and port (scheme defaults applied): credentials
/// never follow a submodule to another server, nor from `https` down to `http`.
fn same_host(a: &str, b: &str) -> bool {
    let parse = |u: &str| {
        let (stripped, _) = super::split_userinfo(u);
        gix::url::parse(stripped.as_bytes().as_bstr()).ok()
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => {
            a.scheme == b.scheme
                && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
                && a.host().is_some()
                && a.port_or_default() == b.port_or_default()
        }
        _ => false,
    }
}

/// `dir` joined with the `/`-separated `path` (its components were checked by [`gitlinks`]).
fn link_dir(dir: &Path, path: &str) -> PathBuf {
    path.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
}

/// The gitlinks in the tree of `commit` (paths made of safe components only) and the content of
/// its top-level `.gitmodules`.
#[allow(clippy::type_complexity)]
fn gitlinks(
    repo: &gix::Repository,
    commit: ObjectId,
) -> Result<(Vec<Gitlink>, Option<Vec<u8>>), String> {
    use gix::objs::tree::EntryKind;
    let commit = repo.find_commit(commit).map_err(|e| e.to_string())?;
    let root = commit.tree_id().map_err(|e| e.to_string())?.detach();
    let mut links = Vec::new();
    let mut gitmodules = None;
    let mut pending = vec![(String::new(), root)];
    while let Some((prefix, tree)) = pending.pop() {
        let tree = repo.find_tree(tree).map_err(|e| e.to_string())?;
        let decoded = tree.decode().map_err(|e| e.to_string())?;
        for entry in &decoded.entries {
            let Some(name) = safe_file_name(entry.filename) else {
                continue;
            };
            let Some(name) = name.to_str() else {
                continue;
            };
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            match entry.mode.kind() {
                EntryKind::Tree => pending.push((path, entry.oid.to_owned())),
                EntryKind::Commit => links.push(Gitlink {
                    path,
                    commit: entry.oid.to_owned(),
                }),
                EntryKind::Blob | EntryKind::BlobExecutable
                    if prefix.is_empty() && name == ".gitmodules" =>
                {
                    let blob = repo.find_blob(entry.oid).map_err(|e| e.to_string())?;
                    gitmodules = Some(blob.data.clone());
                }
                _ => {}
            }
        }
    }
    links.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((links, gitmodules))
}

/// The `[submodule "name"]` sections of a `.gitmodules` file, by their `path`.
fn parse_gitmodules(bytes: &[u8]) -> Result<BTreeMap<String, Declared>, String> {
    let file = gix::config::File::from_bytes_no_includes(
        bytes,
        gix::config::file::Metadata::api(),
        Default::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    let Some(sections) = file.sections_by_name("submodule") else {
        return Ok(out);
    };
    for section in sections {
        let Some(name) = section.header().subsection_name() else {
            continue;
        };
        let value = |key: &str| section.value(key).map(|v| v.to_str_lossy().into_owned());
        let Some(path) = value("path") else {
            continue;
        };
        let path = path.trim().trim_matches('/').to_string();
        out.insert(
            path,
            Declared {
                name: name.to_str_lossy().into_owned(),
                url: value("url"),
                update: value("update").map(|u| u.trim().to_ascii_lowercase()),
            },
        );
    }
    Ok(out)
}

/// Resolves a submodule URL from `.gitmodules` against the URL of the repository recording it, as
/// `git submodule` does: `./x` is below that URL, each leading `../` removes one path component.
/// Absolute URLs are returned as they are. `None` when the `../` climb past the host.
fn resolve_submodule_url(base: &str, url: &str) -> Option<String> {
    if !(url.starts_with("./") || url.starts_with("../") || url == "." || url == "..") {
        return Some(url.to_string());
    }
    let mut base = base.trim_end_matches('/').to_string();
    // The part of the base that `../` may not remove: scheme and authority, or `host:` of an
    // scp-like URL.
    let floor = match base.find("://") {
        Some(i) => {
            let after = i + 3;
            after + base[after..].find('/').unwrap_or(base.len() - after)
        }
        None => base.find(':').map_or(0, |i| i + 1),
    };
    let mut rest = url;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if rest == "." {
            rest = "";
        } else if let Some(r) = rest.strip_prefix("../").or((rest == "..").then_some("")) {
            let cut = base.rfind('/').filter(|&c| c >= floor)?;
            base.truncate(cut);
            rest = r;
        } else {
            break;
        }
    }
    if rest.is_empty() {
        Some(base)
    } else {
        Some(format!("{base}/{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_as_git_does() {
        let base = "https://example.com/org/super.git";
        assert_eq!(
            resolve_submodule_url(base, "../lib.git").as_deref(),
            Some("https://example.com/org/lib.git")
        );
        assert_eq!(
            resolve_submodule_url(base, "../../other/lib.git").as_deref(),
            Some("https://example.com/other/lib.git")
        );
        assert_eq!(
            resolve_submodule_url(base, "./lib.git").as_deref(),
            Some("https://example.com/org/super.git/lib.git")
        );
        assert_eq!(resolve_submodule_url(base, "../../../x.git"), None);
        assert_eq!(
            resolve_submodule_url(base, "https://other.example/x.git").as_deref(),
            Some("https://other.example/x.git")
        );
        assert_eq!(
            resolve_submodule_url("file:///srv/git/super.git", "../lib.git").as_deref(),
            Some("file:///srv/git/lib.git")
        );
        assert_eq!(
            resolve_submodule_url("ssh://git@host:2222/a/b.git/", "../c.git").as_deref(),
            Some("ssh://git@host:2222/a/c.git")
        );
    }

    #[test]
    fn same_host_compares_host_and_port() {
        assert!(same_host(
            "http://127.0.0.1:8080/a.git",
            "http://u:p@127.0.0.1:8080/b.git"
        ));
        assert!(!same_host(
            "http://127.0.0.1:8080/a.git",
            "http://127.0.0.1:8081/a.git"
        ));
        assert!(!same_host(
            "https://example.com/a.git",
            "https://example.org/a.git"
        ));
        assert!(same_host(
            "https://example.com/a.git",
            "https://example.com:443/b.git"
        ));
        assert!(!same_host(
            "https://example.com/a.git",
            "http://example.com/a.git"
        ));
    }

    #[test]
    fn gitmodules_by_path() {
        let text = b"[submodule \"lib\"]\n\tpath = vendor/lib\n\turl = ../lib.git\n[submodule \"docs\"]\n\tpath = docs\n\turl = https://example.com/docs.git\n\tupdate = none\n";
        let parsed = parse_gitmodules(text).unwrap();
        assert_eq!(parsed["vendor/lib"].name, "lib");
        assert_eq!(parsed["vendor/lib"].url.as_deref(), Some("../lib.git"));
        assert_eq!(parsed["docs"].update.as_deref(), Some("none"));
    }
}
