//! A local folder of artifacts: atomic writes, digest computed while writing and verified on read,
//! safe extraction with limits, and garbage collection of old artifacts, as Flux's source-controller
//! storage does.
//!
//! Layout: `<root>/<kind>/<namespace>/<name>/<file>.tar.gz` (kind lowercased).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::digest::{DigestWriter, sha256_reader};
use crate::{Artifact, Revision};

/// Errors of the artifact store. Each names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on `path`.
    #[error("artifact store: {op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `read`, `rename`, ...).
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The stored file's digest differs from the artifact's.
    #[error("artifact {path}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The stored file.
        path: PathBuf,
        /// The artifact's digest.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// An archive entry was refused during extraction.
    #[error("artifact {archive}: unsafe entry {entry:?}: {why}")]
    UnsafeEntry {
        /// The archive.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// An artifact's `path` is not a relative path inside the store (it may come from an object's
    /// status, which anyone with write access to it can edit).
    #[error("artifact path {path:?} is not a relative path inside the store")]
    InvalidPath {
        /// The path as recorded in the artifact.
        path: String,
    },
    /// The archive is over a limit.
    #[error("artifact {archive}: {what} exceeds the limit of {limit}")]
    TooLarge {
        /// The archive.
        archive: PathBuf,
        /// `total size in bytes`, `file count` or `tar header size in bytes`.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A key part is empty or not a plain path segment.
    #[error("artifact key part {0:?} is not a plain path segment")]
    BadKey(String),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Which source an artifact belongs to: `<kind>/<namespace>/<name>` in the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArtifactKey {
    kind: String,
    namespace: String,
    name: String,
}

impl ArtifactKey {
    /// A key such as (`GitRepository`, `flux-system`, `podinfo`); the kind is lowercased.
    /// Each part must be a plain path segment (no `/`, `..`, or empty).
    pub fn new(kind: &str, namespace: &str, name: &str) -> Result<Self, StoreError> {
        for part in [kind, namespace, name] {
            if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']) {
                return Err(StoreError::BadKey(part.to_string()));
            }
        }
        Ok(ArtifactKey {
            kind: kind.to_ascii_lowercase(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    fn rel_dir(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// Limits applied when extracting an artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Maximum sum of file sizes in bytes (default 100 MiB, Flux's default untar cap).
    pub max_total_bytes: u64,
    /// Maximum number of entries (default 100 000).
    pub max_files: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_total_bytes: 100 << 20,
            max_files: 100_000,
        }
    }
}

/// A local folder of artifacts.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    limits: ExtractLimits,
    retention: usize,
}

impl ArtifactStore {
    /// Opens (creating when missing) a store rooted at `root`. Retention defaults to Flux's 2
    /// artifacts per source.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let root = fs::canonicalize(&root).map_err(io_err("resolve", &root))?;
        Ok(ArtifactStore {
            root,
            limits: ExtractLimits::default(),
            retention: 2,
        })
    }

    /// Sets the extraction limits.
    pub fn with_limits(mut self, limits: ExtractLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps the newest `n` (at least 1) artifacts per source on [`ArtifactStore::gc`].
    pub fn with_retention(mut self, n: usize) -> Self {
        self.retention = n.max(1);
        self
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute path of a stored artifact. The path is not checked: [`ArtifactStore::verify`],
    /// [`ArtifactStore::extract`] and [`ArtifactStore::gc`] refuse an artifact whose `path` is
    /// absolute or has `..` with [`StoreError::InvalidPath`].
    pub fn local_path(&self, artifact: &Artifact) -> PathBuf {
        self.root.join(&artifact.path)
    }

    /// Whether the artifact's file is in the store (its `path` relative and inside the store, and
    /// a file there). Sources use it to decide that a known revision needs no new fetch.
    pub fn has(&self, artifact: &Artifact) -> bool {
        self.checked_path(artifact).is_ok_and(|p| p.is_file())
    }

    /// [`ArtifactStore::local_path`], refusing paths that would leave the store.
    fn checked_path(&self, artifact: &Artifact) -> Result<PathBuf, StoreError> {
        match safe_relative(&artifact.path) {
            Some(rel) if !rel.as_os_str().is_empty() => Ok(self.root.join(rel)),
            _ => Err(StoreError::InvalidPath {
                path: artifact.path.clone(),
            }),
        }
    }

    /// Archives `dir` into a deterministic tar.gz for `key` and records it as an artifact of
    /// `revision`. The file is named after the revision's checksum (`<commit>.tar.gz` for Git).
    ///
    /// `include(relative_path, is_dir)` filters entries (a folder left out drops its content);
    /// symlinks and special files are skipped, as Flux's archiver does. Entries are sorted, owned
    /// by 0:0, mtime 0, modes 0750 (dirs), 0700 (executables), 0600 (files). The write goes to a
    /// temp file in the same folder, is flushed and renamed into place; the digest is computed
    /// over the bytes as they are written.
    pub fn archive_dir(
        &self,
        key: &ArtifactKey,
        revision: Revision,
        dir: &Path,
        include: &dyn Fn(&Path, bool) -> bool,
    ) -> Result<Artifact, StoreError> {
        let rel_dir = key.rel_dir();
        let abs_dir = self.root.join(&rel_dir);
        fs::create_dir_all(&abs_dir).map_err(io_err("create", &abs_dir))?;
        let file_name = format!("{}.tar.gz", revision.digest().hex());
        let final_path = abs_dir.join(&file_name);

        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&abs_dir)
            .map_err(io_err("create temp file in", &abs_dir))?;
        let hashing = DigestWriter::new(BufWriter::new(
            tmp.as_file()
                .try_clone()
                .map_err(io_err("open", tmp.path()))?,
        ));
        let gz = GzEncoder::new(hashing, Compression::default());
        let mut builder = tar::Builder::new(gz);
        let mut entries = Vec::new();
        collect_entries(dir, Path::new(""), include, &mut entries)?;
        for (rel, abs, is_dir) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let name = rel.to_string_lossy().replace('\\', "/");
            if is_dir {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o750);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{name}/"), io::empty())
                    .map_err(io_err("write", &abs))?;
            } else {
                let meta = fs::metadata(&abs).map_err(io_err("stat", &abs))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if is_executable(&meta) { 0o700 } else { 0o600 });
                header.set_size(meta.len());
                let f = File::open(&abs).map_err(io_err("read", &abs))?;
                builder
                    .append_data(&mut header, &name, BufReader::new(f))
                    .map_err(io_err("write", &abs))?;
            }
        }
        let gz = builder.into_inner().map_err(io_err("write", tmp.path()))?;
        let hashing = gz.finish().map_err(io_err("write", tmp.path()))?;
        let (mut buf, digest, size) = hashing.finish();
        buf.flush().map_err(io_err("write", tmp.path()))?;
        drop(buf);
        tmp.as_file()
            .sync_all()
            .map_err(io_err("sync", tmp.path()))?;
        tmp.persist(&final_path).map_err(|e| StoreError::Io {
            op: "rename",
            path: final_path.clone(),
            source: e.error,
        })?;

        Ok(Artifact {
            revision,
            digest,
            path: format!("{rel_dir}/{file_name}"),
            url: format!("file://{}", final_path.display()),
            size,
            last_update_time: jiff::Timestamp::now(),
            metadata: BTreeMap::new(),
        })
    }

    /// Recomputes the stored file's digest and compares it with the artifact's.
    pub fn verify(&self, artifact: &Artifact) -> Result<(), StoreError> {
        let path = self.checked_path(artifact)?;
        let f = File::open(&path).map_err(io_err("read", &path))?;
        let (actual, _) = sha256_reader(BufReader::new(f)).map_err(io_err("read", &path))?;
        if actual != artifact.digest {
            return Err(StoreError::DigestMismatch {
                path,
                expected: artifact.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Verifies the artifact's digest, then extracts it into `dest` (created when missing) safely:
    /// absolute paths, `..`, links that leave `dest`, hard links and devices are refused, and the
    /// store's [`ExtractLimits`] apply.
    pub fn extract(&self, artifact: &Artifact, dest: &Path) -> Result<(), StoreError> {
        self.verify(artifact)?;
        let path = self.checked_path(artifact)?;
        let f = File::open(&path).map_err(io_err("read", &path))?;
        extract_tar_gz(BufReader::new(f), &path, dest, self.limits)
    }

    /// Deletes all but the newest `retention` artifacts of the source `current` belongs to,
    /// never `current` itself. Returns the deleted paths. Run it only after the whole line
    /// succeeded for `current`'s revision.
    pub fn gc(&self, current: &Artifact) -> Result<Vec<PathBuf>, StoreError> {
        let current_path = self.checked_path(current)?;
        let Some(dir) = current_path.parent().map(Path::to_path_buf) else {
            return Ok(Vec::new());
        };
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Io {
                    op: "list",
                    path: dir,
                    source: e,
                });
            }
        };
        let keep_path = Some(current_path);
        let mut files = Vec::new();
        for entry in read {
            let entry = entry.map_err(io_err("list", &dir))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tar.gz") || name.starts_with(".tmp-") {
                continue;
            }
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .map_err(io_err("stat", &p))?;
            files.push((modified, p));
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut deleted = Vec::new();
        let mut kept = 0;
        for (_, p) in files {
            let is_current = keep_path.as_deref() == Some(p.as_path());
            if is_current || kept < self.retention {
                kept += 1;
                continue;
            }
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
            deleted.push(p);
        }
        Ok(deleted)
    }
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

fn collect_entries(
    root: &Path,
    rel: &Path,
    include: &dyn Fn(&Path, bool) -> bool,
    out: &mut Vec<(PathBuf, PathBuf, bool)>,
) -> Result<(), StoreError> {
    let dir = root.join(rel);
    let mut children: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err("list", &dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err("list", &dir))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let ft = child.file_type().map_err(io_err("stat", &child.path()))?;
        let child_rel = rel.join(child.file_name());
        if ft.is_dir() {
            if include(&child_rel, true) {
                out.push((child_rel.clone(), child.path(), true));
                collect_entries(root, &child_rel, include, out)?;
            }
        } else if ft.is_file() && include(&child_rel, false) {
            out.push((child_rel, child.path(), false));
        }
    }
    Ok(())
}

/// Extracts a tar.gz stream into `dest` with the safety rules of [`ArtifactStore::extract`].
/// `archive` only names the source in errors.
pub fn extract_tar_gz(
    reader: impl Read,
    archive: &Path,
    dest: &Path,
    limits: ExtractLimits,
) -> Result<(), StoreError> {
    fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let dest = fs::canonicalize(dest).map_err(io_err("resolve", dest))?;
    // The tar crate reads GNU long names and PAX headers into memory whole, whatever their
    // size: the bytes read while it looks for the next entry are capped (Go's archive/tar,
    // which Flux uses, caps them at 1 MiB too).
    let between = std::rc::Rc::new(std::cell::Cell::new(Budget::Unlimited));
    let mut ar = tar::Archive::new(HeaderCap {
        inner: GzDecoder::new(reader),
        budget: between.clone(),
    });
    let mut total = 0u64;
    let mut count = 0u64;
    // Symlinks are created after every file and folder is written, so no write can go through
    // one; each is then resolved on disk and must land inside `dest`.
    let mut links: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    let unsafe_entry = |entry: &str, why| StoreError::UnsafeEntry {
        archive: archive.to_path_buf(),
        entry: entry.to_string(),
        why,
    };
    let too_large = |what, limit| StoreError::TooLarge {
        archive: archive.into(),
        what,
        limit,
    };
    let mut entries = ar.entries().map_err(io_err("read", archive))?;
    loop {
        between.set(Budget::Left(MAX_HEADER_BYTES));
        let next = entries.next();
        let tripped = between.get() == Budget::Exceeded;
        between.set(Budget::Unlimited);
        if tripped {
            return Err(too_large("tar header size in bytes", MAX_HEADER_BYTES));
        }
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(io_err("read", archive))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        count += 1;
        if count > limits.max_files {
            return Err(too_large("file count", limits.max_files));
        }
        let rel = safe_relative(&raw).ok_or_else(|| unsafe_entry(&raw, "absolute path or `..`"))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            let resolved = fs::canonicalize(parent).map_err(io_err("resolve", parent))?;
            if !resolved.starts_with(&dest) {
                return Err(unsafe_entry(
                    &raw,
                    "parent folder resolves outside the destination",
                ));
            }
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err("create", &target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // `Entry::size` includes a PAX `size` override, unlike the header field.
                let budget = limits.max_total_bytes.saturating_sub(total);
                if entry.size() > budget {
                    return Err(too_large("total size in bytes", limits.max_total_bytes));
                }
                if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_file()) {
                    return Err(unsafe_entry(&raw, "replaces a folder or link"));
                }
                let mut out = File::create(&target).map_err(io_err("create", &target))?;
                // Never copy more than the remaining budget, whatever the headers claim.
                let mut limited = (&mut entry).take(budget.saturating_add(1));
                let written = io::copy(&mut limited, &mut out).map_err(io_err("write", &target))?;
                if written > budget {
                    return Err(too_large("total size in bytes", limits.max_total_bytes));
                }
                total += written;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = entry.header().mode().unwrap_or(0o600) & 0o755 | 0o600;
                    fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                        .map_err(io_err("chmod", &target))?;
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(io_err("read", archive))?
                    .ok_or_else(|| unsafe_entry(&raw, "symlink without target"))?
                    .into_owned();
                let link_dir = rel.parent().unwrap_or(Path::new(""));
                if link.is_absolute() || !stays_inside(&link_dir.join(&link)) {
                    return Err(unsafe_entry(&raw, "symlink leaves the destination"));
                }
                links.push((raw, target, link));
            }
            tar::EntryType::Link => return Err(unsafe_entry(&raw, "hard links are not allowed")),
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            _ => {
                return Err(unsafe_entry(
                    &raw,
                    "devices, fifos and other special files are not allowed",
                ));
            }
        }
    }
    for (raw, target, link) in &links {
        if fs::symlink_metadata(target).is_ok() {
            return Err(unsafe_entry(
                raw,
                "a link and another entry share this path",
            ));
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(link, target).map_err(io_err("symlink", target))?;
        #[cfg(not(unix))]
        return Err(unsafe_entry(
            raw,
            "symlinks are not supported on this platform",
        ));
        let _ = (raw, link);
    }
    // Checked once all links exist: a chain of links, each harmless alone (`a -> .`,
    // `b -> a/a/..`), must not resolve outside. A dangling link is removed: it holds no
    // content, and could only point outside once something appeared there.
    for (raw, target, _) in &links {
        match fs::canonicalize(target) {
            Ok(resolved) if resolved.starts_with(&dest) => {}
            Ok(_) => {
                return Err(unsafe_entry(
                    raw,
                    "symlink resolves outside the destination",
                ));
            }
            Err(_) => fs::remove_file(target).map_err(io_err("remove", target))?,
        }
    }
    Ok(())
}

/// Most bytes read from the decompressed stream between two entries: headers, GNU long names,
/// PAX records and skipped data (1 MiB and a bit, as Go's archive/tar limits special headers).
const MAX_HEADER_BYTES: u64 = (1 << 20) + (64 << 10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    Unlimited,
    Left(u64),
    Exceeded,
}

/// The decompressed stream, failing reads past the budget the extractor sets while the tar
/// reader looks for the next entry.
struct HeaderCap<R> {
    inner: R,
    budget: std::rc::Rc<std::cell::Cell<Budget>>,
}

impl<R: Read> Read for HeaderCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.budget.get() {
            Budget::Unlimited => self.inner.read(buf),
            Budget::Left(left) => {
                if left == 0 {
                    self.budget.set(Budget::Exceeded);
                    return Err(io::Error::other("tar headers exceed the limit"));
                }
                let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..max])?;
                self.budget.set(Budget::Left(left - n as u64));
                Ok(n)
            }
            Budget::Exceeded => Err(io::Error::other("tar headers exceed the limit")),
        }
    }
}

/// A path made of normal components only (leading `./` allowed), or `None`.
fn safe_relative(raw: &str) -> Option<PathBuf> {
    let p = Path::new(raw);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Whether a relative path with possible `..` stays inside its root when resolved lexically.
fn stays_inside(p: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}
