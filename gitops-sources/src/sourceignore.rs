//! Which files of a fetched tree go into an artifact, as Flux's `pkg/sourceignore` decides:
//! gitignore syntax, `.sourceignore` files scoped to their folder, a default exclusion set and the
//! source's `spec.ignore`.
//!
//! Precedence, lowest first (a later matching pattern wins, `!pattern` re-includes, as in
//! gitignore):
//!
//! 1. [`DEFAULT_PATTERNS`] (images, archives, CI configuration) — left out entirely when
//!    `spec.ignore` is set, which *replaces* the default set as Flux documents;
//! 2. every `.sourceignore` file, loaded recursively, its patterns relative to its own folder,
//!    parent folders before child folders;
//! 3. `spec.ignore`, relative to the root, so it can overrule `.sourceignore` files.
//!
//! [`VCS_PATTERNS`] (`.git/`, `.gitignore`, `.gitmodules`, `.gitattributes`) are always excluded
//! and cannot be re-included. As in git, nothing inside an excluded folder can be re-included.
//! Invalid pattern lines are skipped with a warning (go-git's matcher never rejects a line).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Name of the per-folder ignore file, as Flux's `sourceignore.IgnoreFile`.
pub const IGNORE_FILE: &str = ".sourceignore";

/// Version-control files, always excluded (Flux's `sourceignore.VCSPatterns`).
pub const VCS_PATTERNS: &[&str] = &[".git/", ".gitignore", ".gitmodules", ".gitattributes"];

/// The default exclusion set, used when `spec.ignore` is not set (Flux's
/// `sourceignore.DefaultPatterns` without the VCS part): media and archives, CI configuration,
/// release and SOPS configuration files.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-*.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
];

/// One set of patterns and the folder (relative to the root, empty for the root) it applies to.
#[derive(Clone, Debug)]
struct Layer {
    scope: PathBuf,
    patterns: Gitignore,
}

/// The exclusion rules for one tree. Build it with [`SourceIgnore::load`] (reads `.sourceignore`
/// files) or [`SourceIgnore::new`] (patterns only), then ask [`SourceIgnore::is_excluded`] for
/// each entry.
#[derive(Clone, Debug)]
pub struct SourceIgnore {
    vcs: Gitignore,
    /// Lowest precedence first.
    layers: Vec<Layer>,
}

impl SourceIgnore {
    /// Rules without `.sourceignore` files: the VCS patterns, then [`DEFAULT_PATTERNS`] when
    /// `spec_ignore` is `None`, else the `spec_ignore` text (gitignore syntax, one pattern a line).
    pub fn new(spec_ignore: Option<&str>) -> SourceIgnore {
        let mut rules = SourceIgnore {
            vcs: build(VCS_PATTERNS.iter().copied(), "VCS patterns"),
            layers: Vec::new(),
        };
        if spec_ignore.is_none() {
            rules.layers.push(Layer {
                scope: PathBuf::new(),
                patterns: build(DEFAULT_PATTERNS.iter().copied(), "default patterns"),
            });
        }
        if let Some(text) = spec_ignore {
            rules.layers.push(Layer {
                scope: PathBuf::new(),
                patterns: build(text.lines(), "spec.ignore"),
            });
        }
        rules
    }

    /// Rules for the tree at `root`: like [`SourceIgnore::new`], plus every `.sourceignore` file
    /// under `root` (the `.git` folder and symlinks are not followed), ranked between the default
    /// set and `spec_ignore`.
    pub fn load(root: &Path, spec_ignore: Option<&str>) -> io::Result<SourceIgnore> {
        let mut rules = SourceIgnore::new(spec_ignore);
        let mut found = Vec::new();
        collect_ignore_files(root, Path::new(""), &mut found)?;
        // Parents before children, siblings in name order: deeper files take precedence.
        found.sort_by(|a, b| {
            let depth = |p: &Path| p.components().count();
            depth(a).cmp(&depth(b)).then_with(|| a.cmp(b))
        });
        let spec_layer = spec_ignore.and_then(|_| rules.layers.pop());
        for scope in found {
            let file = root.join(&scope).join(IGNORE_FILE);
            let text = fs::read_to_string(&file).map_err(|e| {
                io::Error::new(e.kind(), format!("reading {}: {e}", file.display()))
            })?;
            let what = file.display().to_string();
            rules.layers.push(Layer {
                scope,
                patterns: build(text.lines(), &what),
            });
        }
        rules.layers.extend(spec_layer);
        Ok(rules)
    }

    /// Whether the entry at `rel` (relative to the root, `/`-separated components) is left out:
    /// it matches a VCS pattern, or the last matching pattern for it or for one of its parent
    /// folders excludes it. `is_dir` tells whether `rel` is a folder (patterns ending in `/`).
    pub fn is_excluded(&self, rel: &Path, is_dir: bool) -> bool {
        let mut prefix = PathBuf::new();
        let components: Vec<_> = rel.components().collect();
        for (i, c) in components.iter().enumerate() {
            prefix.push(c);
            let last = i + 1 == components.len();
            let dir = !last || is_dir;
            if self.vcs.matched(&prefix, dir).is_ignore() || self.layers_exclude(&prefix, dir) {
                return true;
            }
        }
        false
    }

    /// Whether the layers alone exclude `path` itself (parents not considered).
    fn layers_exclude(&self, path: &Path, is_dir: bool) -> bool {
        let mut excluded = false;
        for layer in &self.layers {
            let Ok(rel) = path.strip_prefix(&layer.scope) else {
                continue;
            };
            if rel.as_os_str().is_empty() {
                continue;
            }
            match layer.patterns.matched(rel, is_dir) {
                Match::Ignore(_) => excluded = true,
                Match::Whitelist(_) => excluded = false,
                Match::None => {}
            }
        }
        excluded
    }
}

/// Builds a matcher rooted at `.` (paths given to it are already relative to the layer's scope),
/// skipping lines that are not valid patterns.
fn build<'a>(lines: impl Iterator<Item = &'a str>, what: &str) -> Gitignore {
    let mut b = GitignoreBuilder::new(".");
    for line in lines {
        if let Err(e) = b.add_line(None, line) {
            tracing::warn!(source = what, pattern = line, error = %e, "skipping invalid ignore pattern");
        }
    }
    match b.build() {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(source = what, error = %e, "ignoring invalid ignore patterns");
            Gitignore::empty()
        }
    }
}

/// Collects the folders (relative to `root`) that hold a `.sourceignore` file.
fn collect_ignore_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let dir = root.join(rel);
    let entries = fs::read_dir(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("listing {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| io::Error::new(e.kind(), format!("listing {}: {e}", dir.display())))?;
        let name = entry.file_name();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            if name != ".git" {
                collect_ignore_files(root, &rel.join(&name), out)?;
            }
        } else if ft.is_file() && name == IGNORE_FILE {
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &SourceIgnore, path: &str) -> bool {
        let is_dir = path.ends_with('/');
        rules.is_excluded(Path::new(path.trim_end_matches('/')), is_dir)
    }

    #[test]
    fn defaults_and_vcs() {
        let rules = SourceIgnore::new(None);
        for p in [
            ".git/",
            ".git/config",
            ".gitignore",
            "sub/.gitattributes",
            "logo.png",
            "img/a.JPG.jpg",
            "dist/app.tar.gz",
            ".github/",
            ".github/workflows/ci.yml",
            "sub/.github/x",
            ".travis.yml",
            "codeship-steps.yml",
            "a/b/.goreleaser.yml",
            ".sops.yaml",
            "deep/.flux.yaml",
        ] {
            assert!(excluded(&rules, p), "{p} should be excluded");
        }
        for p in [
            "README.md",
            "deploy/app.yaml",
            "github/x",
            ".sourceignore",
            "png",
        ] {
            assert!(!excluded(&rules, p), "{p} should be included");
        }
    }

    #[test]
    fn spec_ignore_replaces_defaults_but_not_vcs() {
        let rules = SourceIgnore::new(Some("*.txt\n# comment\n\n/build/\n"));
        assert!(!excluded(&rules, "logo.png"));
        assert!(!excluded(&rules, ".github/workflows/ci.yml"));
        assert!(excluded(&rules, "notes.txt"));
        assert!(excluded(&rules, "a/notes.txt"));
        assert!(excluded(&rules, "build/out.yaml"));
        assert!(!excluded(&rules, "a/build/out.yaml"));
        assert!(excluded(&rules, ".gitignore"));
        let rules = SourceIgnore::new(Some("!.gitignore\n!.git/"));
        assert!(excluded(&rules, ".gitignore"));
        assert!(excluded(&rules, ".git/HEAD"));
    }

    #[test]
    fn sourceignore_files_are_scoped_and_ranked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("docs/deep")).unwrap();
        fs::create_dir_all(root.join("secret")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(
            root.join(".sourceignore"),
            "secret/\n!keep.png\n/top.yaml\n",
        )
        .unwrap();
        fs::write(root.join("docs/.sourceignore"), "*.md\n/local.yaml\n").unwrap();
        fs::write(root.join("docs/deep/.sourceignore"), "!important.md\n").unwrap();
        // A .sourceignore inside .git is never read.
        fs::write(root.join(".git/.sourceignore"), "*\n").unwrap();

        let rules = SourceIgnore::load(root, None).unwrap();
        assert!(excluded(&rules, "secret/"));
        assert!(excluded(&rules, "secret/key.txt"));
        assert!(
            !excluded(&rules, "keep.png"),
            ".sourceignore overrules the defaults"
        );
        assert!(excluded(&rules, "other.png"));
        assert!(excluded(&rules, "top.yaml"));
        assert!(!excluded(&rules, "docs/top.yaml"));
        assert!(excluded(&rules, "docs/guide.md"));
        assert!(excluded(&rules, "docs/deep/other.md"));
        assert!(!excluded(&rules, "docs/deep/important.md"));
        assert!(excluded(&rules, "docs/local.yaml"));
        assert!(!excluded(&rules, "local.yaml"));
        assert!(
            !excluded(&rules, "README.md"),
            "docs/.sourceignore stays in docs/"
        );
        assert!(!excluded(&rules, "docs/app.yaml"));

        // spec.ignore replaces the defaults and has the last word over .sourceignore.
        let rules = SourceIgnore::load(root, Some("!secret/\n*.yaml\n")).unwrap();
        assert!(!excluded(&rules, "secret/key.txt"));
        assert!(!excluded(&rules, "other.png"));
        assert!(excluded(&rules, "docs/app.yaml"));
        assert!(excluded(&rules, "docs/guide.md"));
    }

    #[test]
    fn nothing_is_reincluded_below_an_excluded_folder() {
        let rules = SourceIgnore::new(Some("vendor/\n!vendor/keep.yaml\n"));
        assert!(excluded(&rules, "vendor/keep.yaml"));
    }

    #[test]
    fn invalid_patterns_are_skipped() {
        let rules = SourceIgnore::new(Some("[unclosed\n*.tmp\n"));
        assert!(excluded(&rules, "a.tmp"));
        assert!(!excluded(&rules, "a.yaml"));
    }
}
