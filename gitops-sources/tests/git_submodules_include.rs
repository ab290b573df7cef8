//! GitRepository `recurseSubmodules` over smart HTTP with basic auth (gitops-testenv's
//! `GitHttpServer`, git http-backend on 127.0.0.1) and `include` between two repositories
//! (`file://`). Repositories are built with the `git` CLI; gitlinks are written with
//! `git update-index --cacheinfo 160000,…` so that building them needs no submodule clone.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{extract, files, git};
use gitops_core::{Artifact, ArtifactKey, ArtifactStore, Fetched, Source};
use gitops_sources::git::{
    GitAuth, GitError, GitRepositorySpec, GitSource, Include, METADATA_INCLUDES,
    METADATA_RECURSE_SUBMODULES,
};
use gitops_testenv::GitHttpServer;

const USER: &str = "alice";
const PASSWORD: &str = "sub-module-secret-42";

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// A working repository `work/<name>` pushed to the bare `repos/<name>.git`.
struct Repo {
    work: PathBuf,
    bare: PathBuf,
}

impl Repo {
    fn new(base: &Path, name: &str) -> Repo {
        let work = base.join("work").join(name);
        let bare = base.join("repos").join(format!("{name}.git"));
        fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "master"]);
        git(
            base,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "master",
                bare.to_str().unwrap(),
            ],
        );
        Repo { work, bare }
    }

    fn write(&self, rel: &str, content: &str) {
        write(&self.work, rel, content);
    }

    /// Records the submodule `path` at `commit` with URL `url` (gitlink + `.gitmodules`).
    fn gitlink(&self, name: &str, path: &str, url: &str, commit: &str) {
        git(
            &self.work,
            &[
                "config",
                "-f",
                ".gitmodules",
                &format!("submodule.{name}.path"),
                path,
            ],
        );
        git(
            &self.work,
            &[
                "config",
                "-f",
                ".gitmodules",
                &format!("submodule.{name}.url"),
                url,
            ],
        );
        git(
            &self.work,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{commit},{path}"),
            ],
        );
    }

    /// Commits everything and pushes master; returns the commit id. (`--ignore-removal`: the
    /// gitlinks have no folder in the work tree.)
    fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "--ignore-removal", "."]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(
            &self.work,
            &["push", "-q", self.bare.to_str().unwrap(), "master"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

fn spec(url: &str, recurse_submodules: bool) -> GitRepositorySpec {
    GitRepositorySpec {
        url: url.to_string(),
        timeout: Some(Duration::from_secs(30)),
        recurse_submodules,
        ..Default::default()
    }
}

fn key(name: &str) -> ArtifactKey {
    ArtifactKey::new("GitRepository", "default", name).unwrap()
}

fn basic() -> GitAuth {
    GitAuth::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    }
}

fn new_artifact(fetched: Fetched) -> Artifact {
    match fetched {
        Fetched::New(a) => a,
        other => panic!("expected a new artifact, got {other:?}"),
    }
}

/// superproject `app` → submodule `modules/mid` (URL `../mid.git`, relative) → submodule
/// `vendor/lib` of `mid` (absolute URL on the same server), all behind basic auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submodules_recursively_with_credentials_on_the_same_host() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("repos")).unwrap();
    let server = GitHttpServer::start_with_basic_auth(&dir.path().join("repos"), USER, PASSWORD)
        .await
        .unwrap();
    let base = server.url();

    let lib = Repo::new(dir.path(), "lib");
    lib.write("lib.txt", "lib v1\n");
    lib.write("deep/lib.yaml", "kind: Lib\n");
    let lib_c1 = lib.commit("lib 1");

    let mid = Repo::new(dir.path(), "mid");
    mid.write("mid.txt", "mid\n");
    mid.gitlink("lib", "vendor/lib", &format!("{base}/lib.git"), &lib_c1);
    let mid_c1 = mid.commit("mid 1");

    let app = Repo::new(dir.path(), "app");
    app.write("app.yaml", "kind: App\n");
    app.gitlink("mid", "modules/mid", "../mid.git", &mid_c1);
    let app_c1 = app.commit("app 1");

    let url = format!("{base}/app.git");
    let store = ArtifactStore::new(dir.path().join("store")).unwrap();
    let src = GitSource::new(key("app"), spec(&url, true), basic()).unwrap();

    let first = new_artifact(src.fetch(&store, None).await.unwrap());
    assert_eq!(first.revision.to_string(), format!("master@sha1:{app_c1}"));
    assert_eq!(
        first
            .metadata
            .get(METADATA_RECURSE_SUBMODULES)
            .map(String::as_str),
        Some("true")
    );
    let out = extract(&store, &first);
    assert_eq!(
        files(out.path()),
        // `.gitmodules` files are among Flux's default exclusions.
        [
            "app.yaml",
            "modules/mid/mid.txt",
            "modules/mid/vendor/lib/deep/lib.yaml",
            "modules/mid/vendor/lib/lib.txt",
        ]
    );
    assert_eq!(
        fs::read_to_string(out.path().join("modules/mid/vendor/lib/lib.txt")).unwrap(),
        "lib v1\n"
    );

    // The cheap poll: the listing shows the same superproject commit.
    assert_eq!(
        src.fetch(&store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );

    // Without recurseSubmodules the gitlinks are left out, and the changed setting builds a new
    // artifact for the same commit.
    let flat = GitSource::new(key("app"), spec(&url, false), basic()).unwrap();
    let flat_artifact = new_artifact(flat.fetch(&store, Some(&first)).await.unwrap());
    assert_eq!(flat_artifact.revision, first.revision);
    assert!(
        !flat_artifact
            .metadata
            .contains_key(METADATA_RECURSE_SUBMODULES)
    );
    assert_eq!(files(extract(&store, &flat_artifact).path()), ["app.yaml"]);
    let again = new_artifact(src.fetch(&store, Some(&flat_artifact)).await.unwrap());
    assert_eq!(again.digest, first.digest, "the archive is deterministic");

    // Bumping the innermost submodule through both levels: a new superproject commit.
    lib.write("lib.txt", "lib v2\n");
    let lib_c2 = lib.commit("lib 2");
    mid.gitlink("lib", "vendor/lib", &format!("{base}/lib.git"), &lib_c2);
    let mid_c2 = mid.commit("mid 2");
    app.gitlink("mid", "modules/mid", "../mid.git", &mid_c2);
    let app_c2 = app.commit("app 2");
    let bumped = new_artifact(src.fetch(&store, Some(&again)).await.unwrap());
    assert_eq!(bumped.revision.to_string(), format!("master@sha1:{app_c2}"));
    assert_ne!(bumped.digest, first.digest);
    let out = extract(&store, &bumped);
    assert_eq!(
        fs::read_to_string(out.path().join("modules/mid/vendor/lib/lib.txt")).unwrap(),
        "lib v2\n"
    );

    // A submodule that cannot be fetched fails the fetch, naming its path and redacted URL; the
    // password (also present as user info in the URL) appears nowhere.
    app.gitlink(
        "gone",
        "modules/gone",
        &format!(
            "http://{USER}:{PASSWORD}@{}/missing.git",
            &base["http://".len()..]
        ),
        &lib_c2,
    );
    app.commit("app 3: broken submodule");
    let err = src.fetch(&store, Some(&bumped)).await.unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("submodule modules/gone"), "{msg}");
    assert!(msg.contains("http://***@127.0.0.1"), "{msg}");
    assert!(msg.contains("missing.git"), "{msg}");
    assert!(!msg.contains(PASSWORD), "{msg}");

    server.shutdown().await;
}

/// Credentials are not sent to a submodule on another host (here: another port), and `file://`
/// submodules of a remote repository are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_stay_on_their_host_and_file_submodules_stay_local() {
    let dir = tempfile::tempdir().unwrap();
    let repos = dir.path().join("repos");
    fs::create_dir_all(&repos).unwrap();
    let server = GitHttpServer::start_with_basic_auth(&repos, USER, PASSWORD)
        .await
        .unwrap();
    let other = GitHttpServer::start_with_basic_auth(&repos, USER, PASSWORD)
        .await
        .unwrap();

    let lib = Repo::new(dir.path(), "lib");
    lib.write("lib.txt", "lib\n");
    let lib_c1 = lib.commit("lib 1");
    let app = Repo::new(dir.path(), "app");
    app.write("app.yaml", "kind: App\n");
    app.gitlink("lib", "lib", &format!("{}/lib.git", other.url()), &lib_c1);
    app.commit("app 1");

    let store = ArtifactStore::new(dir.path().join("store")).unwrap();
    let url = format!("{}/app.git", server.url());
    let err = GitSource::new(key("app"), spec(&url, true), basic())
        .unwrap()
        .fetch(&store, None)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("submodule lib"), "{msg}");
    assert!(msg.contains("requires credentials"), "{msg}");

    app.gitlink("lib", "lib", &lib.file_url(), &lib_c1);
    app.commit("app 2: file submodule");
    let err = GitSource::new(key("app"), spec(&url, true), basic())
        .unwrap()
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("file:// submodules"), "{err}");
    assert!(!err.is_retryable());

    // From a file:// superproject, file:// submodules are followed.
    let local = GitSource::new(key("local"), spec(&app.file_url(), true), GitAuth::None).unwrap();
    let a = new_artifact(local.fetch(&store, None).await.unwrap());
    assert_eq!(
        files(extract(&store, &a).path()),
        ["app.yaml", "lib/lib.txt"]
    );

    server.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn include_copies_another_artifact_and_tracks_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(dir.path().join("store")).unwrap();

    let shared = Repo::new(dir.path(), "shared");
    shared.write("deploy/a.yaml", "a: 1\n");
    shared.write("deploy/sub/b.yaml", "b: 1\n");
    shared.write("other.txt", "not copied\n");
    shared.commit("shared 1");
    let app = Repo::new(dir.path(), "app");
    app.write("app.yaml", "kind: App\n");
    app.write("vendor/shared/a.yaml", "from the app\n");
    app.write("vendor/shared/keep.yaml", "kept\n");
    let app_c1 = app.commit("app 1");

    let shared_src = GitSource::new(
        key("shared"),
        spec(&shared.file_url(), false),
        GitAuth::None,
    )
    .unwrap();
    let shared_a1 = new_artifact(shared_src.fetch(&store, None).await.unwrap());

    let app_src = |shared_artifact: &Artifact| {
        GitSource::new(key("app"), spec(&app.file_url(), false), GitAuth::None)
            .unwrap()
            .with_includes(vec![
                Include::new("shared", shared_artifact.clone())
                    .with_from_path("deploy")
                    .with_to_path("vendor/shared"),
            ])
            .unwrap()
    };
    let src = app_src(&shared_a1);
    let first = new_artifact(src.fetch(&store, None).await.unwrap());
    assert_eq!(first.revision.to_string(), format!("master@sha1:{app_c1}"));
    assert_eq!(
        first.metadata.get("include.0.revision"),
        Some(&shared_a1.revision.to_string())
    );
    assert!(first.metadata.contains_key(METADATA_INCLUDES));
    let out = extract(&store, &first);
    assert_eq!(
        files(out.path()),
        [
            "app.yaml",
            "vendor/shared/a.yaml",
            "vendor/shared/keep.yaml",
            "vendor/shared/sub/b.yaml",
        ]
    );
    // The include's file replaces the app's file at the same path.
    assert_eq!(
        fs::read_to_string(out.path().join("vendor/shared/a.yaml")).unwrap(),
        "a: 1\n"
    );
    assert_eq!(
        src.fetch(&store, Some(&first)).await.unwrap(),
        Fetched::Unchanged(first.clone())
    );

    // Only the included repository changes: a new artifact with the same revision string.
    shared.write("deploy/a.yaml", "a: 2\n");
    shared.commit("shared 2");
    let shared_a2 = new_artifact(shared_src.fetch(&store, Some(&shared_a1)).await.unwrap());
    let src = app_src(&shared_a2);
    let second = new_artifact(src.fetch(&store, Some(&first)).await.unwrap());
    assert_eq!(second.revision, first.revision);
    assert_ne!(second.digest, first.digest);
    assert_eq!(
        second.metadata.get("include.0.revision"),
        Some(&shared_a2.revision.to_string())
    );
    let out = extract(&store, &second);
    assert_eq!(
        fs::read_to_string(out.path().join("vendor/shared/a.yaml")).unwrap(),
        "a: 2\n"
    );
    assert_eq!(
        src.fetch(&store, Some(&second)).await.unwrap(),
        Fetched::Unchanged(second.clone())
    );

    // Defaults: the whole artifact into a folder named after the repository.
    let whole = GitSource::new(key("app2"), spec(&app.file_url(), false), GitAuth::None)
        .unwrap()
        .with_includes(vec![Include::new("shared", shared_a2.clone())])
        .unwrap();
    let a = new_artifact(whole.fetch(&store, None).await.unwrap());
    let listed = files(extract(&store, &a).path());
    assert!(
        listed.contains(&"shared/other.txt".to_string()),
        "{listed:?}"
    );
    assert!(
        listed.contains(&"shared/deploy/sub/b.yaml".to_string()),
        "{listed:?}"
    );

    // A fromPath missing from the included artifact fails the fetch, naming the include.
    let missing = GitSource::new(key("app3"), spec(&app.file_url(), false), GitAuth::None)
        .unwrap()
        .with_includes(vec![
            Include::new("shared", shared_a2.clone()).with_from_path("nope"),
        ])
        .unwrap();
    let err = missing.fetch(&store, None).await.unwrap_err();
    assert!(err.to_string().contains("include \"shared\""), "{err}");
    assert!(err.to_string().contains("\"nope\""), "{err}");
}

#[test]
fn include_paths_that_escape_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let artifact: Artifact = serde_json::from_value(serde_json::json!({
        "revision": "master@sha1:0123456789abcdef0123456789abcdef01234567",
        "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "path": "gitrepository/default/shared/x.tar.gz",
        "url": "",
        "lastUpdateTime": "2024-01-01T00:00:00Z",
    }))
    .unwrap();
    let url = format!("file://{}", dir.path().display());
    let src = || GitSource::new(key("app"), spec(&url, false), GitAuth::None).unwrap();
    for (include, field, value) in [
        (
            Include::new("shared", artifact.clone()).with_to_path("../x"),
            "spec.include[0].toPath",
            "../x",
        ),
        (
            Include::new("shared", artifact.clone()).with_to_path("/abs"),
            "spec.include[0].toPath",
            "/abs",
        ),
        (
            Include::new("shared", artifact.clone()).with_to_path("a/../../x"),
            "spec.include[0].toPath",
            "a/../../x",
        ),
        (
            Include::new("shared", artifact.clone()).with_from_path("../../etc"),
            "spec.include[0].fromPath",
            "../../etc",
        ),
    ] {
        let err = src().with_includes(vec![include]).unwrap_err();
        assert!(matches!(err, GitError::InvalidInclude { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(field), "{msg}");
        assert!(msg.contains(&format!("{value:?}")), "{msg}");
        assert!(!err.is_retryable());
    }
}
