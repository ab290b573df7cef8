//! GitSource with `spec.verify` (OpenPGP) against a repository whose commits and tags are signed
//! by the real `gpg` (GnuPG, keys made in a temporary GNUPGHOME) through `git commit -S` and
//! `git tag -s`, fetched over file://.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use gitops_core::{ArtifactKey, ArtifactStore, Fetched, Source};
use gitops_sources::git::{
    GitAuth, GitError, GitReference, GitRepositorySpec, GitSource, METADATA_VERIFIED_FINGERPRINT,
    METADATA_VERIFIED_MODE, METADATA_VERIFIED_TAG_FINGERPRINT, METADATA_VERIFY,
};
use gitops_sources::git_verify::{GitVerification, VerificationMode, VerifyError};

/// A GnuPG home with two signing keys, and a bare repository:
///
/// | ref | commit | signed by |
/// | --- | --- | --- |
/// | master | c1 "signed" | alice |
/// | unsigned | c2 "unsigned" (child of c1) | nobody |
/// | mallory | c3 "forged" (child of c1) | mallory |
/// | tag v1.0.0 (annotated) | c1 | alice |
/// | tag v1.1.0 (lightweight) | c1 | - |
/// | tag v1.2.0 (annotated) | c1 | nobody |
/// | tag v0.9.0 (annotated) | c1 | mallory |
struct Fixture {
    dir: tempfile::TempDir,
    gnupg: PathBuf,
    bare: PathBuf,
    commits: BTreeMap<&'static str, String>,
    alice: Key,
    mallory: Key,
}

struct Key {
    fingerprint: String,
    armored: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // gpg started an agent for this GNUPGHOME: stop it with the home.
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.gnupg)
            .status();
    }
}

fn run(dir: &Path, gnupg: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("GNUPGHOME", gnupg)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let gnupg = dir.path().join("gnupg");
        fs::create_dir(&gnupg).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
        }
        let gpg = |args: &[&str]| run(dir.path(), &gnupg, "gpg", args);
        let new_key = |uid: &str, algo: &str| {
            gpg(&[
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                uid,
                algo,
                "sign",
                "never",
            ]);
            let listing = gpg(&["--with-colons", "--list-keys", uid]);
            let fingerprint = listing
                .lines()
                .find_map(|l| l.strip_prefix("fpr:"))
                .and_then(|l| l.split(':').find(|f| !f.is_empty()))
                .expect("fingerprint")
                .to_string();
            let armored = gpg(&["--armor", "--export", &fingerprint]);
            Key {
                fingerprint,
                armored,
            }
        };
        let alice = new_key("Alice <alice@example.invalid>", "ed25519");
        let mallory = new_key("Mallory <mallory@example.invalid>", "rsa2048");

        let work = dir.path().join("work");
        fs::create_dir(&work).unwrap();
        let git = |args: &[&str]| run(&work, &gnupg, "git", args);
        let signed = |key: &Key, args: &[&str]| {
            let signing_key = format!("user.signingkey={}", key.fingerprint);
            let mut all = vec!["-c", "gpg.program=gpg", "-c", signing_key.as_str()];
            all.extend_from_slice(args);
            run(&work, &gnupg, "git", &all)
        };
        let mut commits = BTreeMap::new();
        git(&["init", "-q", "-b", "master"]);
        fs::write(work.join("app.yaml"), "version: 1\n").unwrap();
        git(&["add", "-A"]);
        signed(&alice, &["commit", "-q", "-S", "-m", "signed"]);
        commits.insert("c1", git(&["rev-parse", "HEAD"]));
        signed(&alice, &["tag", "-s", "v1.0.0", "-m", "release 1.0.0"]);
        git(&["tag", "v1.1.0"]);
        git(&["tag", "-a", "v1.2.0", "-m", "unsigned release"]);
        signed(&mallory, &["tag", "-s", "v0.9.0", "-m", "forged release"]);

        git(&["checkout", "-q", "-b", "unsigned"]);
        fs::write(work.join("app.yaml"), "version: 2\n").unwrap();
        git(&["commit", "-q", "-a", "-m", "unsigned"]);
        commits.insert("c2", git(&["rev-parse", "HEAD"]));

        git(&["checkout", "-q", "-b", "mallory", "master"]);
        fs::write(work.join("app.yaml"), "version: 3\n").unwrap();
        signed(&mallory, &["commit", "-q", "-a", "-S", "-m", "forged"]);
        commits.insert("c3", git(&["rev-parse", "HEAD"]));
        git(&["checkout", "-q", "master"]);

        let bare = dir.path().join("demo.git");
        git(&[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ]);
        Fixture {
            dir,
            gnupg,
            bare,
            commits,
            alice,
            mallory,
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn store(&self) -> ArtifactStore {
        ArtifactStore::new(self.dir.path().join("store")).unwrap()
    }

    fn source(&self, reference: GitReference) -> GitSource {
        let spec = GitRepositorySpec {
            url: self.url(),
            reference: Some(reference),
            ..Default::default()
        };
        let key = ArtifactKey::new("GitRepository", "default", "signed").unwrap();
        GitSource::new(key, spec, GitAuth::None).unwrap()
    }

    fn verified(&self, reference: GitReference, mode: VerificationMode) -> GitSource {
        self.source(reference)
            .with_verification(GitVerification {
                mode,
                public_keys: vec![
                    ("alice.asc".into(), self.alice.armored.clone()),
                    ("unrelated.asc".into(), BOB.into()),
                ],
            })
            .unwrap()
    }
}

/// A key that signs nothing here (the unit tests' RSA fixture): keys that do not match are skipped.
const BOB: &str = include_str!("../testdata/git_verify/bob.asc");

fn branch(b: &str) -> GitReference {
    GitReference {
        branch: Some(b.into()),
        ..Default::default()
    }
}

fn tag(t: &str) -> GitReference {
    GitReference {
        tag: Some(t.into()),
        ..Default::default()
    }
}

/// The `VerifyError` inside a failed fetch.
fn verify_error(err: &gitops_core::Error) -> &VerifyError {
    match err.inner().downcast_ref::<GitError>() {
        Some(GitError::Verification { error, .. }) => error,
        other => panic!("expected a verification error, got {other:?}: {err}"),
    }
}

/// The artifact files in the store (none after a refused fetch).
fn stored_files(store_root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![store_root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".tar.gz") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn signed_head_verifies_and_the_fingerprint_is_recorded() {
    let fx = Fixture::new();
    let store = fx.store();
    let src = fx.verified(branch("master"), VerificationMode::Head);
    let fetched = src.fetch(&store, None).await.unwrap();
    let Fetched::New(artifact) = &fetched else {
        panic!("expected a new artifact, got {fetched:?}");
    };
    assert_eq!(
        artifact.revision.to_string(),
        format!("master@sha1:{}", fx.commits["c1"])
    );
    let meta = &artifact.metadata;
    assert_eq!(
        meta.get(METADATA_VERIFIED_FINGERPRINT),
        Some(&fx.alice.fingerprint)
    );
    assert_eq!(
        meta.get(METADATA_VERIFIED_MODE).map(String::as_str),
        Some("HEAD")
    );
    assert!(meta.contains_key(METADATA_VERIFY), "{meta:?}");
    assert!(!meta.contains_key(METADATA_VERIFIED_TAG_FINGERPRINT));
    store.verify(artifact).unwrap();

    // Same commit, same verification: Flux's no-op clone.
    let again = src.fetch(&store, Some(artifact)).await.unwrap();
    assert!(matches!(again, Fetched::Unchanged(_)), "{again:?}");
}

#[tokio::test]
async fn an_unverified_artifact_is_not_reused_once_verification_is_on() {
    let fx = Fixture::new();
    let store = fx.store();
    let plain = fx
        .source(branch("unsigned"))
        .fetch(&store, None)
        .await
        .unwrap();
    let plain = plain.artifact().clone();
    assert!(!plain.metadata.contains_key(METADATA_VERIFY));

    // Same revision upstream, but now it must be verified: fetched again, and refused.
    let src = fx.verified(branch("unsigned"), VerificationMode::Head);
    let err = src.fetch(&store, Some(&plain)).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        matches!(verify_error(&err), VerifyError::NotSigned { .. }),
        "{err}"
    );

    // On master (signed) the unverified artifact gives way to a verified one.
    let plain = fx
        .source(branch("master"))
        .fetch(&store, None)
        .await
        .unwrap()
        .artifact()
        .clone();
    let src = fx.verified(branch("master"), VerificationMode::Head);
    let fetched = src.fetch(&store, Some(&plain)).await.unwrap();
    assert!(matches!(fetched, Fetched::New(_)), "{fetched:?}");
    assert_eq!(
        fetched
            .artifact()
            .metadata
            .get(METADATA_VERIFIED_FINGERPRINT),
        Some(&fx.alice.fingerprint)
    );
}

#[tokio::test]
async fn unsigned_head_is_refused_and_nothing_is_stored() {
    let fx = Fixture::new();
    let store = fx.store();
    let src = fx.verified(branch("unsigned"), VerificationMode::Head);
    let err = src.fetch(&store, None).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&fx.commits["c2"]), "{msg}");
    assert!(msg.contains("is not signed"), "{msg}");
    assert!(msg.contains("InvalidCommitSignature"), "{msg}");
    assert_eq!(
        stored_files(&fx.dir.path().join("store")),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn head_signed_by_another_key_is_refused() {
    let fx = Fixture::new();
    let store = fx.store();
    let src = fx.verified(branch("mallory"), VerificationMode::Head);
    let err = src.fetch(&store, None).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let VerifyError::NoMatchingKey { issuers, count, .. } = verify_error(&err) else {
        panic!("{err}");
    };
    assert_eq!(issuers, &fx.mallory.fingerprint);
    assert_eq!(*count, 2);
    assert!(err.to_string().contains(&fx.commits["c3"]), "{err}");
    assert_eq!(
        stored_files(&fx.dir.path().join("store")),
        Vec::<String>::new()
    );

    // With mallory's key in the secret, the same commit verifies.
    let src = fx
        .source(branch("mallory"))
        .with_verification(GitVerification {
            mode: VerificationMode::Head,
            public_keys: vec![("mallory.asc".into(), fx.mallory.armored.clone())],
        })
        .unwrap();
    let fetched = src.fetch(&store, None).await.unwrap();
    assert_eq!(
        fetched
            .artifact()
            .metadata
            .get(METADATA_VERIFIED_FINGERPRINT),
        Some(&fx.mallory.fingerprint)
    );
}

#[tokio::test]
async fn mode_tag_verifies_a_signed_annotated_tag() {
    let fx = Fixture::new();
    let store = fx.store();
    let src = fx.verified(tag("v1.0.0"), VerificationMode::Tag);
    let fetched = src.fetch(&store, None).await.unwrap();
    let artifact = fetched.artifact();
    assert_eq!(
        artifact.revision.to_string(),
        format!("v1.0.0@sha1:{}", fx.commits["c1"])
    );
    assert_eq!(
        artifact.metadata.get(METADATA_VERIFIED_TAG_FINGERPRINT),
        Some(&fx.alice.fingerprint)
    );
    assert!(
        !artifact
            .metadata
            .contains_key(METADATA_VERIFIED_FINGERPRINT)
    );

    // TagAndHEAD: the tag and its (signed) commit; semver selects the tag.
    let semver = GitReference {
        semver: Some("~1.0".into()),
        ..Default::default()
    };
    let src = fx.verified(semver, VerificationMode::TagAndHead);
    let fetched = src.fetch(&store, None).await.unwrap();
    let meta = &fetched.artifact().metadata;
    assert_eq!(
        meta.get(METADATA_VERIFIED_TAG_FINGERPRINT),
        Some(&fx.alice.fingerprint)
    );
    assert_eq!(
        meta.get(METADATA_VERIFIED_FINGERPRINT),
        Some(&fx.alice.fingerprint)
    );
    assert_eq!(
        meta.get(METADATA_VERIFIED_MODE).map(String::as_str),
        Some("TagAndHEAD")
    );

    // A refs/tags/ name is a tag reference too.
    let name = GitReference {
        name: Some("refs/tags/v1.0.0".into()),
        ..Default::default()
    };
    let src = fx.verified(name, VerificationMode::Tag);
    src.fetch(&store, None).await.unwrap();
}

#[tokio::test]
async fn mode_tag_refuses_unsigned_lightweight_and_foreign_tags_and_branches() {
    let fx = Fixture::new();
    let store = fx.store();
    let refused = |reference: GitReference| {
        let src = fx.verified(reference, VerificationMode::Tag);
        let store = store.clone();
        async move { src.fetch(&store, None).await.unwrap_err() }
    };

    let err = refused(tag("v1.1.0")).await;
    assert!(
        matches!(verify_error(&err), VerifyError::LightweightTag { tag } if tag == "v1.1.0"),
        "{err}"
    );
    let err = refused(tag("v1.2.0")).await;
    assert!(
        matches!(verify_error(&err), VerifyError::NotSigned { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("tag 'v1.2.0' is not signed"),
        "{err}"
    );
    let err = refused(tag("v0.9.0")).await;
    assert!(
        matches!(verify_error(&err), VerifyError::NoMatchingKey { .. }),
        "{err}"
    );
    let err = refused(branch("master")).await;
    assert!(
        matches!(verify_error(&err), VerifyError::NoTagReference { .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        stored_files(&fx.dir.path().join("store")),
        Vec::<String>::new()
    );

    // TagAndHEAD needs a tag reference as well.
    let err = fx
        .verified(branch("unsigned"), VerificationMode::TagAndHead)
        .fetch(&store, None)
        .await
        .unwrap_err();
    assert!(
        matches!(verify_error(&err), VerifyError::NoTagReference { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_armored_key_is_an_error_naming_it() {
    let fx = Fixture::new();
    let truncated: String = fx
        .alice
        .armored
        .lines()
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    for (name, value) in [
        ("broken.asc", "this is not a key".to_string()),
        ("truncated.asc", truncated),
    ] {
        let err = fx
            .source(branch("master"))
            .with_verification(GitVerification {
                mode: VerificationMode::Head,
                public_keys: vec![
                    ("alice.asc".into(), fx.alice.armored.clone()),
                    (name.into(), value),
                ],
            })
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        let GitError::Verification { error, .. } = &err else {
            panic!("{err}");
        };
        assert!(
            matches!(&**error, VerifyError::InvalidPublicKey { key, .. } if key == name),
            "{err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn fetch_into_blocking_verifies_too() {
    let fx = Fixture::new();
    let git_dir = fx.dir.path().join("checked.git");
    let fetched = fx
        .verified(branch("master"), VerificationMode::Head)
        .fetch_into_blocking(&git_dir)
        .unwrap();
    assert_eq!(fetched.commit, fx.commits["c1"]);

    let err = fx
        .verified(branch("mallory"), VerificationMode::Head)
        .fetch_into_blocking(&fx.dir.path().join("refused.git"))
        .unwrap_err();
    let GitError::Verification { error, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        matches!(&**error, VerifyError::NoMatchingKey { .. }),
        "{err}"
    );
}
