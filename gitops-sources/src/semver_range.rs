//! Semantic version ranges as Flux's GitRepository `ref.semver` (and OCIRepository, HelmChart)
//! reads them: the constraint syntax of Masterminds/semver v3, which Flux uses, evaluated on top of
//! [`semver::Version`].
//!
//! Syntax (see the Masterminds/semver README, "Checking Version Constraints"):
//!
//! | constraint | means |
//! | --- | --- |
//! | `1.2.3`, `=1.2.3` | exactly 1.2.3 |
//! | `!=1.2.3` | anything but 1.2.3 |
//! | `>1.2.3` `>=1.2.3` `<1.2.3` `<=1.2.3` (also `=>`, `=<`) | comparisons |
//! | `>=1.0.0 <2.0.0`, `>=1.0.0, <2.0.0` | AND (space or comma) |
//! | `<1.0.0 \|\| >=2.0.0` | OR |
//! | `1.2.x`, `1.2.*`, `1.2`, `1.x`, `1` | wildcards; missing parts are wildcards: `>=1.2.0 <1.3.0`, `>=1.0.0 <2.0.0` |
//! | `*`, `x` | any release |
//! | `~1.2.3` (also `~>`) | `>=1.2.3 <1.3.0`; `~1.2` is `>=1.2.0 <1.3.0`; `~1` is `>=1.0.0 <2.0.0` |
//! | `^1.2.3` | `>=1.2.3 <2.0.0`; `^0.2.3` is `>=0.2.3 <0.3.0`; `^0.0.3` is `>=0.0.3 <0.0.4` |
//! | `1.2 - 1.4.5` | `>=1.2 <=1.4.5` (hyphen range, spaces required around `-`) |
//!
//! Pre-releases: as in Masterminds, a version with a pre-release part (`1.2.0-rc.1`) only satisfies
//! a constraint whose own version has a pre-release part (`>=1.2.0-0`); `*` and `>=1.0.0` skip it.
//! Build metadata is ignored when comparing.
//!
//! Versions (tags) parse leniently, like Masterminds' `NewVersion`: an optional `v` prefix and
//! missing minor/patch parts are accepted (`v1.2` is 1.2.0).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::{BuildMetadata, Prerelease, Version};

/// Why a constraint string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver range {range:?}: {reason}")]
pub struct RangeError {
    /// The whole range as given.
    pub range: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `=` or no operator: equal, or a tilde range when the version has wildcards.
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

/// One comparison such as `>=1.2.x`, with Masterminds' "dirty" flags for wildcard parts.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Constraint {
    op: Op,
    /// The version with wildcard parts set to 0.
    con: Version,
    /// Some part is a wildcard (or missing).
    dirty: bool,
    /// The minor part (and so the patch part) is a wildcard.
    minor_dirty: bool,
    /// The patch part is a wildcard.
    patch_dirty: bool,
}

/// A parsed semver range: alternatives (`||`) of conjunctions (space or comma separated).
///
/// ```
/// use gitops_sources::semver_range::{Range, parse_version};
/// let r: Range = ">=1.0.0 <2.0.0".parse().unwrap();
/// assert!(r.matches(&parse_version("v1.4.2").unwrap()));
/// assert!(!r.matches(&parse_version("2.0.0").unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    source: String,
    any_of: Vec<Vec<Constraint>>,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Range {
    type Err = RangeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Range::parse(s)
    }
}

impl Range {
    /// Parses a Masterminds/semver v3 constraint string.
    pub fn parse(range: &str) -> Result<Range, RangeError> {
        let err = |reason: String| RangeError {
            range: range.to_string(),
            reason,
        };
        if range.trim().is_empty() {
            return Err(err("empty range".into()));
        }
        let mut any_of = Vec::new();
        for group in range.split("||") {
            let tokens = tokenize(group);
            if tokens.is_empty() {
                return Err(err("empty alternative around `||`".into()));
            }
            let mut all_of = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                // Hyphen range: `A - B` with bare versions.
                if i + 2 < tokens.len()
                    && tokens[i + 1] == "-"
                    && !starts_with_op(&tokens[i])
                    && !starts_with_op(&tokens[i + 2])
                {
                    all_of.push(parse_constraint(&format!(">={}", tokens[i])).map_err(err)?);
                    all_of.push(parse_constraint(&format!("<={}", tokens[i + 2])).map_err(err)?);
                    i += 3;
                    continue;
                }
                all_of.push(parse_constraint(&tokens[i]).map_err(err)?);
                i += 1;
            }
            any_of.push(all_of);
        }
        Ok(Range {
            source: range.trim().to_string(),
            any_of,
        })
    }

    /// Whether `version` satisfies the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.matches(version)))
    }

    /// The highest version among `tags` (names such as `v1.2.3`; names that are not versions are
    /// skipped) that satisfies the range, with its tag name — Flux's semver tag selection.
    /// Equal versions (`v1.0.0` and `1.0.0`) are broken by the greater tag name.
    pub fn best_match<'a, I>(&self, tags: I) -> Option<(&'a str, Version)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut best: Option<(&'a str, Version)> = None;
        for tag in tags {
            let Some(v) = parse_version(tag) else {
                continue;
            };
            if !self.matches(&v) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((best_tag, best_v)) => match v.cmp_precedence(best_v) {
                    Ordering::Greater => true,
                    Ordering::Equal => tag > *best_tag,
                    Ordering::Less => false,
                },
            };
            if better {
                best = Some((tag, v));
            }
        }
        best
    }
}

/// Splits an alternative into constraint tokens: separators are whitespace and commas; an
/// operator written apart from its version (`>= 1.0`) is joined to it.
fn tokenize(group: &str) -> Vec<String> {
    let raw: Vec<&str> = group
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut pending_op: Option<String> = None;
    for t in raw {
        let is_op_only = !t.is_empty() && t.chars().all(|c| "=<>!~^".contains(c));
        if is_op_only {
            // Two operators in a row: keep the first as its own (invalid) token.
            if let Some(op) = pending_op.replace(t.to_string()) {
                out.push(op);
            }
            continue;
        }
        match pending_op.take() {
            Some(op) => out.push(format!("{op}{t}")),
            None => out.push(t.to_string()),
        }
    }
    if let Some(op) = pending_op {
        out.push(op);
    }
    out
}

fn starts_with_op(token: &str) -> bool {
    token.starts_with(['=', '<', '>', '!', '~', '^'])
}

fn parse_constraint(token: &str) -> Result<Constraint, String> {
    let (op, rest) = split_op(token);
    let op = op.ok_or_else(|| format!("unknown operator in {token:?}"))?;
    if rest.is_empty() {
        return Err(format!("operator without a version in {token:?}"));
    }
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let not_version = || format!("{token:?} is not a version");
    let (core, pre, build) = split_pre_build(rest).ok_or_else(not_version)?;
    let is_x = |p: &str| matches!(p, "x" | "X" | "*");
    let parts: Vec<&str> = core.split('.').collect();
    let valid_part = |p: &&str| is_x(p) || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if parts.len() > 3 || !parts.iter().all(valid_part) {
        return Err(not_version());
    }
    let num = |p: &str| p.parse::<u64>().map_err(|_| not_version());
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let (major, minor, patch);
    if is_x(parts[0]) {
        dirty = true;
        (major, minor, patch) = (0, 0, 0);
    } else if parts.len() < 2 || is_x(parts[1]) {
        dirty = true;
        minor_dirty = true;
        (major, minor, patch) = (num(parts[0])?, 0, 0);
    } else if parts.len() < 3 || is_x(parts[2]) {
        dirty = true;
        patch_dirty = true;
        (major, minor, patch) = (num(parts[0])?, num(parts[1])?, 0);
    } else {
        (major, minor, patch) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
    }
    let con = build_version(major, minor, patch, pre, build)
        .ok_or_else(|| format!("{token:?} has an invalid pre-release or build part"))?;
    Ok(Constraint {
        op,
        con,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

/// Splits a leading operator off; `None` for an unknown operator.
fn split_op(token: &str) -> (Option<Op>, &str) {
    let end = token
        .find(|c: char| !"=<>!~^".contains(c))
        .unwrap_or(token.len());
    let (op, rest) = token.split_at(end);
    let op = match op {
        "" | "=" => Some(Op::Eq),
        "!=" => Some(Op::Ne),
        ">" => Some(Op::Gt),
        ">=" | "=>" => Some(Op::Ge),
        "<" => Some(Op::Lt),
        "<=" | "=<" => Some(Op::Le),
        "~" | "~>" => Some(Op::Tilde),
        "^" => Some(Op::Caret),
        _ => None,
    };
    (op, rest.trim())
}

/// `1.2.3-rc.1+b5` -> (`1.2.3`, `rc.1`, `b5`); `None` when a `-` or `+` is followed by nothing.
fn split_pre_build(s: &str) -> Option<(&str, &str, &str)> {
    let (rest, build) = match s.split_once('+') {
        Some((_, "")) => return None,
        Some((rest, build)) => (rest, build),
        None => (s, ""),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((_, "")) => return None,
        Some((core, pre)) => (core, pre),
        None => (rest, ""),
    };
    Some((core, pre, build))
}

fn build_version(major: u64, minor: u64, patch: u64, pre: &str, build: &str) -> Option<Version> {
    let mut v = Version::new(major, minor, patch);
    if !pre.is_empty() {
        v.pre = Prerelease::new(pre).ok()?;
    }
    if !build.is_empty() {
        v.build = BuildMetadata::new(build).ok()?;
    }
    Some(v)
}

/// Parses a tag as a version the way Masterminds' `NewVersion` does: optional `v` prefix, one to
/// three numeric parts (missing ones are 0), optional `-prerelease` and `+build`. `None` when the
/// tag is not a version.
pub fn parse_version(tag: &str) -> Option<Version> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre, build) = split_pre_build(s)?;
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut nums = [0u64; 3];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nums[i] = p.parse().ok()?;
    }
    build_version(nums[0], nums[1], nums[2], pre, build)
}

impl Constraint {
    fn matches(&self, v: &Version) -> bool {
        // Masterminds: a pre-release only matches constraints that name a pre-release.
        let pre_blocked = !v.pre.is_empty() && self.con.pre.is_empty();
        let cmp = v.cmp_precedence(&self.con);
        match self.op {
            Op::Eq => {
                if pre_blocked {
                    false
                } else if self.dirty {
                    self.tilde(v, cmp)
                } else {
                    cmp == Ordering::Equal
                }
            }
            Op::Ne => {
                if !self.dirty {
                    return cmp != Ordering::Equal;
                }
                if pre_blocked {
                    return false;
                }
                if v.major != self.con.major {
                    return true;
                }
                if self.minor_dirty {
                    return false;
                }
                if v.minor != self.con.minor {
                    return true;
                }
                if self.patch_dirty {
                    return false;
                }
                cmp != Ordering::Equal
            }
            Op::Gt => {
                if pre_blocked {
                    return false;
                }
                if !self.dirty {
                    return cmp == Ordering::Greater;
                }
                if v.major != self.con.major {
                    return v.major > self.con.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > self.con.minor;
                }
                cmp == Ordering::Greater
            }
            Op::Ge => !pre_blocked && cmp != Ordering::Less,
            Op::Lt => !pre_blocked && cmp == Ordering::Less,
            Op::Le => {
                if pre_blocked {
                    return false;
                }
                if !self.dirty {
                    return cmp != Ordering::Greater;
                }
                if v.major > self.con.major {
                    return false;
                }
                if v.major == self.con.major && v.minor > self.con.minor && !self.minor_dirty {
                    return false;
                }
                true
            }
            Op::Tilde => !pre_blocked && self.tilde(v, cmp),
            Op::Caret => !pre_blocked && self.caret(v, cmp),
        }
    }

    fn tilde(&self, v: &Version, cmp: Ordering) -> bool {
        if cmp == Ordering::Less {
            return false;
        }
        let c = &self.con;
        // `~0.0.0` / `*`: anything.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        if v.minor != c.minor && !self.minor_dirty {
            return false;
        }
        true
    }

    fn caret(&self, v: &Version, cmp: Ordering) -> bool {
        if cmp == Ordering::Less {
            return false;
        }
        let c = &self.con;
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        v.patch == c.patch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(range: &str, yes: &[&str], no: &[&str]) {
        let r = Range::parse(range).unwrap_or_else(|e| panic!("{e}"));
        for v in yes {
            let ver = parse_version(v).unwrap_or_else(|| panic!("version {v}"));
            assert!(r.matches(&ver), "{range} should match {v}");
        }
        for v in no {
            let ver = parse_version(v).unwrap_or_else(|| panic!("version {v}"));
            assert!(!r.matches(&ver), "{range} should not match {v}");
        }
    }

    #[test]
    fn exact_and_comparisons() {
        check(
            "1.2.3",
            &["1.2.3", "v1.2.3", "1.2.3+build.5"],
            &["1.2.4", "1.2.2"],
        );
        check("=1.2.3", &["1.2.3"], &["1.2.4"]);
        check("!=1.2.3", &["1.2.4", "0.1.0"], &["1.2.3"]);
        check(">1.2.3", &["1.2.4", "2.0.0"], &["1.2.3", "1.0.0"]);
        check(">=1.2.3", &["1.2.3", "3.0.0"], &["1.2.2"]);
        check("=>1.2.3", &["1.2.3"], &["1.2.2"]);
        check("<1.2.3", &["1.2.2", "0.9.0"], &["1.2.3"]);
        check("<=1.2.3", &["1.2.3", "1.0.0"], &["1.2.4"]);
        check("=<1.2.3", &["1.2.3"], &["1.2.4"]);
    }

    #[test]
    fn and_or() {
        check(
            ">=1.0.0 <2.0.0",
            &["1.0.0", "1.9.9", "v1.1.0"],
            &["2.0.0", "0.9.0"],
        );
        check(">= 1.0.0, < 2.0.0", &["1.5.0"], &["2.0.0", "0.1.0"]);
        check(
            "<1.0.0 || >=2.0.0",
            &["0.5.0", "2.0.0", "3.1.0"],
            &["1.0.0", "1.9.0"],
        );
        check(
            ">=1.0.0 <1.1.0 || >=3.0.0",
            &["1.0.5", "3.0.0"],
            &["1.1.0", "2.0.0"],
        );
    }

    #[test]
    fn wildcards_and_partial_versions() {
        check("1.2.x", &["1.2.0", "1.2.9"], &["1.3.0", "1.1.9"]);
        check("1.2.*", &["1.2.5"], &["1.3.0"]);
        check("1.2", &["1.2.0", "1.2.7"], &["1.3.0"]);
        check("1.x", &["1.0.0", "1.9.0"], &["2.0.0", "0.9.0"]);
        check("1", &["1.0.0", "1.9.0"], &["2.0.0"]);
        check("*", &["0.0.0", "1.0.0", "99.1.2"], &[]);
        check("x", &["3.2.1"], &[]);
        check(">=1.2.x", &["1.2.0", "2.0.0"], &["1.1.9"]);
        check("<=2.x", &["2.9.9", "1.0.0"], &["3.0.0"]);
        check("<=1.2.x", &["1.2.9", "0.5.0"], &["1.3.0"]);
        check(">1", &["2.0.0"], &["1.9.9", "1.0.0"]);
        check(">1.1", &["1.2.0", "2.0.0"], &["1.1.9"]);
        check("<1.2.x", &["1.1.9"], &["1.2.0"]);
        check("!=1.2.x", &["1.3.0", "2.2.0"], &["1.2.0", "1.2.5"]);
    }

    #[test]
    fn tilde() {
        check("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]);
        check("~>1.2.3", &["1.2.4"], &["1.3.0"]);
        check("~1.2", &["1.2.0", "1.2.9"], &["1.3.0"]);
        check("~1", &["1.0.0", "1.9.0"], &["2.0.0"]);
        check("~1.x", &["1.5.0"], &["2.0.0"]);
        check("~0.0.0", &["0.0.0", "5.0.0"], &[]);
    }

    #[test]
    fn caret() {
        check("^1.2.3", &["1.2.3", "1.9.0"], &["2.0.0", "1.2.2"]);
        check("^1.2", &["1.2.0", "1.99.0"], &["2.0.0", "1.1.0"]);
        check("^1", &["1.0.0", "1.5.0"], &["2.0.0"]);
        check("^2.x", &["2.0.0", "2.9.0"], &["3.0.0"]);
        check("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "1.0.0"]);
        check("^0.2", &["0.2.0", "0.2.9"], &["0.3.0"]);
        check("^0.0.3", &["0.0.3"], &["0.0.4", "0.1.0"]);
        check("^0.0", &["0.0.0", "0.0.9"], &["0.1.0"]);
        check("^0", &["0.0.0", "0.9.0"], &["1.0.0"]);
    }

    #[test]
    fn hyphen_range() {
        check(
            "1.2 - 1.4.5",
            &["1.2.0", "1.4.5", "1.3.0"],
            &["1.4.6", "1.1.9"],
        );
        check("1.2.3 - 2", &["1.2.3", "2.9.0"], &["3.0.0", "1.2.2"]);
    }

    #[test]
    fn prereleases_need_a_prerelease_constraint() {
        check(
            ">=1.0.0",
            &["1.0.0", "2.0.0"],
            &["2.1.0-rc.1", "1.0.0-alpha"],
        );
        check("*", &["1.0.0"], &["1.0.0-rc.1"]);
        check(
            ">=1.0.0-0",
            &["1.0.0-rc.1", "1.0.0", "2.0.0-beta"],
            &["0.9.0"],
        );
        check("1.0.0-rc.1", &["1.0.0-rc.1"], &["1.0.0-rc.2"]);
    }

    #[test]
    fn leading_v_in_constraint() {
        check(">=v1.0.0", &["1.0.0"], &["0.1.0"]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "  ", "abc", ">=", "1.2.3.4", ">>1.0.0", "1.0 ||", "1.0.0-", "~x.y",
        ] {
            assert!(Range::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn parses_tags_leniently() {
        assert_eq!(parse_version("v1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(parse_version("1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(parse_version("v2"), Some(Version::new(2, 0, 0)));
        assert_eq!(
            parse_version("1.0.0-rc.1").map(|v| v.pre.to_string()),
            Some("rc.1".to_string())
        );
        for bad in [
            "latest",
            "v",
            "1.2.3.4",
            "1..2",
            "release-1.0",
            "1.0.0-",
            "V1.0.0",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn best_match_picks_the_newest() {
        let tags = [
            "v1.0.0",
            "v1.1.0",
            "v2.0.0",
            "v2.1.0-rc.1",
            "latest",
            "1.1.0",
        ];
        let r = Range::parse(">=1.0.0 <2.0.0").unwrap();
        let (tag, v) = r.best_match(tags.iter().copied()).unwrap();
        assert_eq!((tag, v), ("v1.1.0", Version::new(1, 1, 0)));
        let r = Range::parse("*").unwrap();
        assert_eq!(r.best_match(tags.iter().copied()).unwrap().0, "v2.0.0");
        let r = Range::parse(">=3.0.0").unwrap();
        assert!(r.best_match(tags.iter().copied()).is_none());
    }
    /// The expansions Masterminds/semver (Helm's and Flux's range library) documents in its
    /// README, each checked at the bounds: `(range, matching, not matching)`.
    #[test]
    fn masterminds_documented_expansions() {
        let table: &[(&str, &[&str], &[&str])] = &[
            // Hyphen ranges: `1.2 - 1.4.5` is `>= 1.2 <= 1.4.5`; `2.3.4 - 4.5` is `>= 2.3.4 <= 4.5`.
            ("1.2 - 1.4.5", &["1.2.0", "1.4.5"], &["1.1.9", "1.4.6"]),
            ("2.3.4 - 4.5", &["2.3.4", "4.5.0"], &["2.3.3", "4.6.0"]),
            // Wildcards: `1.2.x` is `>= 1.2.0 < 1.3.0`; `>= 1.2.x` is `>= 1.2.0`; `*` any.
            ("1.2.x", &["1.2.0", "1.2.99"], &["1.3.0", "1.1.9"]),
            (">= 1.2.x", &["1.2.0", "9.0.0"], &["1.1.9"]),
            ("*", &["0.0.1", "10.0.0"], &[]),
            // Tilde: `~1.2.3` is `>= 1.2.3 < 1.3.0`; `~1` is `>= 1 < 2`; `~2.3` is `>= 2.3 < 2.4`;
            // `~1.x` is `>= 1 < 2`.
            ("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]),
            ("~1", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.9"]),
            ("~2.3", &["2.3.0", "2.3.9"], &["2.4.0"]),
            ("~1.x", &["1.0.0", "1.9.0"], &["2.0.0"]),
            // Caret: `^1.2.3` is `>= 1.2.3 < 2.0.0`; `^1.2.x` is `>= 1.2.0 < 2.0.0`;
            // `^0.2.3` is `>= 0.2.3 < 0.3.0`; `^0.0.3` is `>= 0.0.3 < 0.0.4`; `^0` is `>= 0.0.0 < 1.0.0`.
            ("^1.2.3", &["1.2.3", "1.99.0"], &["2.0.0", "1.2.2"]),
            ("^1.2.x", &["1.2.0", "1.9.0"], &["2.0.0", "1.1.9"]),
            ("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2"]),
            ("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2"]),
            ("^0", &["0.0.0", "0.9.9"], &["1.0.0"]),
            // AND with spaces or commas, OR with `||`.
            (
                ">= 1.2, < 3.0.0 || >= 4.2.3",
                &["1.2.0", "2.9.9", "4.2.3"],
                &["3.0.0", "4.2.2"],
            ),
            // Flux's documentation example for OCIRepository/GitRepository `semver`.
            (">=1.0.0 <2.0.0", &["1.0.0", "1.99.99"], &["2.0.0", "0.9.0"]),
        ];
        for (range, yes, no) in table {
            check(range, yes, no);
        }
    }
}
