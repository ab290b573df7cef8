//! GitSource over file:// against repositories built with the git CLI.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use gitops_core::{ArtifactStore, Fetched, Source, Stage};
use gitops_sources::git::{
    GitAuth, GitError, GitReference, GitRepositorySpec, GitSource, METADATA_COMMIT_SUBJECT,
};

fn branch(b: &str) -> GitReference {
    GitReference {
        branch: Some(b.into()),
        ..reference()
    }
}

#[tokio::test]
async fn branch_fetch_stores_the_tree_minus_vcs_and_ignored_files() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let src = source(&fx.file_url(), Some(branch("master")), GitAuth::None);

    let fetched = src.fetch(&store, None).await.unwrap();
    let Fetched::New(artifact) = fetched else {
        panic!("expected a new artifact, got {fetched:?}");
    };
    assert_eq!(
        artifact.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c3"])
    );
    assert_eq!(
        artifact.path,
        format!("gitrepository/default/demo/{}.tar.gz", fx.commits["c3"])
    );
    assert_eq!(
        artifact
            .metadata
            .get(METADATA_COMMIT_SUBJECT)
            .map(String::as_str),
        Some("third release")
    );
    store.verify(&artifact).unwrap();

    let out = extract(&store, &artifact);
    assert_eq!(files(out.path()), MASTER_FILES);
    assert_eq!(
        fs::read_to_string(out.path().join("deploy/app.yaml")).unwrap(),
        "version: 3\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(out.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert!(
            mode & 0o100 != 0,
            "run.sh keeps its executable bit: {mode:o}"
        );
    }
}

#[tokio::test]
async fn default_reference_is_master() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    for r in [None, Some(reference())] {
        let src = source(&fx.file_url(), r, GitAuth::None);
        let a = src.fetch(&store, None).await.unwrap();
        assert_eq!(
            a.artifact().revision.to_string(),
            format!("master@sha1:{}", fx.commits["c3"])
        );
    }
}

#[tokio::test]
async fn without_master_the_remote_head_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fs::write(work.join("a.yaml"), "a: 1\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    fs::write(work.join("a.yaml"), "a: 2\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let head = git(&work, &["rev-parse", "HEAD"]);

    let store = ArtifactStore::new(dir.path().join("store")).unwrap();
    let url = format!("file://{}", work.display());
    let a = source(&url, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("main@sha1:{head}")
    );

    // An explicit `master` is not silently replaced.
    let err = source(&url, Some(branch("master")), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.stage(), Stage::Fetch);
    assert!(
        err.to_string().contains("branch \"master\" not found"),
        "{err}"
    );
}

#[tokio::test]
async fn other_branch_tag_annotated_tag_and_ref_name() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let cases = [
        (
            branch("feature"),
            format!("feature@sha1:{}", fx.commits["c4"]),
            "version: feature\n",
        ),
        (
            GitReference {
                tag: Some("v1.0.0".into()),
                ..reference()
            },
            format!("v1.0.0@sha1:{}", fx.commits["c1"]),
            "version: 1\n",
        ),
        (
            // Annotated: the revision names the commit, not the tag object.
            GitReference {
                tag: Some("v1.1.0".into()),
                ..reference()
            },
            format!("v1.1.0@sha1:{}", fx.commits["c2"]),
            "version: 2\n",
        ),
        (
            GitReference {
                name: Some("refs/pull/1/head".into()),
                ..reference()
            },
            format!("refs/pull/1/head@sha1:{}", fx.commits["c4"]),
            "version: feature\n",
        ),
        (
            // tag beats branch
            GitReference {
                branch: Some("feature".into()),
                tag: Some("v1.0.0".into()),
                ..reference()
            },
            format!("v1.0.0@sha1:{}", fx.commits["c1"]),
            "version: 1\n",
        ),
    ];
    for (r, revision, content) in cases {
        let a = source(&fx.file_url(), Some(r.clone()), GitAuth::None)
            .fetch(&store, None)
            .await
            .unwrap_or_else(|e| panic!("{r:?}: {e}"));
        let a = a.artifact();
        assert_eq!(a.revision.to_string(), revision, "{r:?}");
        let out = extract(&store, a);
        assert_eq!(
            fs::read_to_string(out.path().join("deploy/app.yaml")).unwrap(),
            content,
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn semver_picks_the_newest_matching_tag() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let cases = [
        (">=1.0.0 <2.0.0", "v1.1.0", "c2"),
        ("1.0.x", "v1.0.0", "c1"),
        ("~1.0", "v1.0.0", "c1"),
        ("^1.0", "v1.1.0", "c2"),
        ("*", "v2.0.0", "c3"),
        ("<1.1.0 || >=2.0.0", "v2.0.0", "c3"),
        ("1.1.0", "v1.1.0", "c2"),
        (">=2.1.0-0", "v2.1.0-rc.1", "c3"),
    ];
    for (range, tag, commit) in cases {
        let r = GitReference {
            branch: Some("feature".into()),
            tag: Some("v1.0.0".into()),
            semver: Some(range.into()),
            ..reference()
        };
        let a = source(&fx.file_url(), Some(r), GitAuth::None)
            .fetch(&store, None)
            .await
            .unwrap_or_else(|e| panic!("{range}: {e}"));
        assert_eq!(
            a.artifact().revision.to_string(),
            format!("{tag}@sha1:{}", fx.commits[commit]),
            "{range}"
        );
    }

    let r = GitReference {
        semver: Some(">=3.0.0".into()),
        ..reference()
    };
    let err = source(&fx.file_url(), Some(r), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "no matching tag is terminal: {err}");
    let msg = err.to_string();
    assert!(msg.contains("semver \">=3.0.0\""), "{msg}");
    assert!(msg.contains(&fx.file_url()), "{msg}");
}

#[tokio::test]
async fn exact_commit_alone_and_on_a_branch() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();

    let r = GitReference {
        commit: Some(fx.commits["c2"].clone()),
        tag: Some("v2.0.0".into()),
        ..reference()
    };
    let a = source(&fx.file_url(), Some(r), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("sha1:{}", fx.commits["c2"])
    );
    let out = extract(&store, a.artifact());
    assert_eq!(
        fs::read_to_string(out.path().join("deploy/app.yaml")).unwrap(),
        "version: 2\n"
    );

    // Upper-case hex is accepted and normalised.
    let r = GitReference {
        commit: Some(fx.commits["c1"].to_ascii_uppercase()),
        branch: Some("master".into()),
        ..reference()
    };
    let a = source(&fx.file_url(), Some(r), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap();
    assert_eq!(
        a.artifact().revision.to_string(),
        format!("master@sha1:{}", fx.commits["c1"])
    );

    // c4 exists, but not on master.
    let r = GitReference {
        commit: Some(fx.commits["c4"].clone()),
        branch: Some("master".into()),
        ..reference()
    };
    let err = source(&fx.file_url(), Some(r), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("is not on branch"), "{err}");

    // A commit the remote does not have (yet): retryable, as in Flux.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let r = GitReference {
        commit: Some(missing.into()),
        ..reference()
    };
    let err = source(&fx.file_url(), Some(r), GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("commit {missing:?}: fetching")),
        "{msg}"
    );
}

#[test]
fn depth_one_fetches_are_shallow() {
    let fx = Fixture::new();
    let refs = [
        None,
        Some(GitReference {
            tag: Some("v1.1.0".into()),
            ..reference()
        }),
        Some(GitReference {
            semver: Some("1.x".into()),
            ..reference()
        }),
        Some(GitReference {
            commit: Some(fx.commits["c2"].clone()),
            ..reference()
        }),
    ];
    for (i, r) in refs.into_iter().enumerate() {
        let git_dir = fx.dir.path().join(format!("shallow-{i}.git"));
        let fetched = source(&fx.file_url(), r.clone(), GitAuth::None)
            .fetch_into_blocking(&git_dir)
            .unwrap();
        assert!(fetched.shallow, "{r:?}: gix reports a full clone");
        assert_eq!(git_cli_shallow(&git_dir), (true, 1), "{r:?}");
    }

    // Commit on a branch needs the branch history: not shallow, by design.
    let r = GitReference {
        commit: Some(fx.commits["c1"].clone()),
        branch: Some("master".into()),
        ..reference()
    };
    let git_dir = fx.dir.path().join("full.git");
    let fetched = source(&fx.file_url(), Some(r), GitAuth::None)
        .fetch_into_blocking(&git_dir)
        .unwrap();
    assert!(!fetched.shallow);
    assert_eq!(fetched.subject, "first release");
}

#[test]
fn resolve_lists_without_downloading() {
    let fx = Fixture::new();
    let rev = source(&fx.file_url(), Some(branch("feature")), GitAuth::None)
        .resolve_blocking()
        .unwrap();
    assert_eq!(
        rev.to_string(),
        format!("feature@sha1:{}", fx.commits["c4"])
    );
}

#[tokio::test]
async fn spec_ignore_replaces_the_defaults_and_overrules_sourceignore() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let spec = GitRepositorySpec {
        url: fx.file_url(),
        reference: None,
        timeout: None,
        ignore: Some("!secret/\n*.md\n".into()),
        ..Default::default()
    };
    let src = GitSource::new(key("demo"), spec, GitAuth::None).unwrap();
    let a = src.fetch(&store, None).await.unwrap();
    let out = extract(&store, a.artifact());
    assert_eq!(
        files(out.path()),
        [
            ".github/workflows/ci.yml",
            ".sourceignore",
            "deploy/app.yaml",
            "docs/.sourceignore",
            "docs/app.yaml",
            "logo.png",
            "run.sh",
            "secret/key.txt",
            "sub/.goreleaser.yml",
        ]
    );
}

#[tokio::test]
async fn unchanged_upstream_returns_the_last_artifact() {
    let mut fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let src = source(&fx.file_url(), Some(branch("master")), GitAuth::None);
    let first = src.fetch(&store, None).await.unwrap();
    let Fetched::New(first) = first else {
        panic!("first fetch must be new");
    };

    let again = src.fetch(&store, Some(&first)).await.unwrap();
    assert_eq!(again, Fetched::Unchanged(first.clone()));

    // A changed ignore spec rebuilds the artifact for the same commit.
    let spec = GitRepositorySpec {
        ignore: Some("*.png\n".into()),
        ..src.spec().clone()
    };
    let other = GitSource::new(key("demo"), spec, GitAuth::None).unwrap();
    let rebuilt = other.fetch(&store, Some(&first)).await.unwrap();
    assert!(matches!(&rebuilt, Fetched::New(a) if a.revision == first.revision));

    // A new commit gives a new revision.
    let c5 = fx.push_commit("c5", "version: 5\n");
    let next = src.fetch(&store, Some(&first)).await.unwrap();
    let Fetched::New(next) = next else {
        panic!("a new commit must give a new artifact");
    };
    assert_eq!(next.revision.to_string(), format!("master@sha1:{c5}"));
    assert_ne!(next.digest, first.digest);
    let out = extract(&store, &next);
    assert_eq!(
        fs::read_to_string(out.path().join("deploy/app.yaml")).unwrap(),
        "version: 5\n"
    );

    // Exact commits are always fetched.
    let r = GitReference {
        commit: Some(c5.clone()),
        ..reference()
    };
    let by_commit = source(&fx.file_url(), Some(r), GitAuth::None);
    let a = by_commit.fetch(&store, None).await.unwrap();
    let b = by_commit.fetch(&store, Some(a.artifact())).await.unwrap();
    assert!(matches!(b, Fetched::New(_)));
}

#[tokio::test]
async fn missing_repository_and_bad_specs() {
    let fx = Fixture::new();
    let store = ArtifactStore::new(fx.dir.path().join("store")).unwrap();
    let url = format!("file://{}/nope.git", fx.root.display());
    let err = source(&url, None, GitAuth::None)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope.git"), "{err}");

    let bad = GitRepositorySpec {
        url: fx.file_url(),
        reference: Some(GitReference {
            semver: Some(">= one".into()),
            ..reference()
        }),
        ..Default::default()
    };
    let e = GitSource::new(key("demo"), bad, GitAuth::None).unwrap_err();
    assert!(matches!(e, GitError::InvalidReference { .. }), "{e}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn unreachable_http_url_fails_fast_and_retryable() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(store_dir.path()).unwrap();
    let src = source("http://127.0.0.1:1/x.git", None, GitAuth::None);
    let start = Instant::now();
    let err = src.fetch(&store, None).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.stage(), Stage::Fetch);
    assert!(
        err.to_string().contains("http://127.0.0.1:1/x.git"),
        "{err}"
    );
}
