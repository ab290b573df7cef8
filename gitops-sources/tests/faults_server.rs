//! Faults and bad input for the consumer side of the artifact server, `fetch_artifact` (see
//! FAULTS.md): a truncated artifact served by a real `ArtifactServer`, and archives whose digest
//! matches what the status says but whose content is hostile (`..`, absolute paths, symlinks out
//! of the destination, decompression bombs), served by gitops-testenv's `StaticHttpServer` on
//! 127.0.0.1, as a compromised or buggy source could publish them.

use gitops_testenv::archive::{TarEntry, raw_tar_gz};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use gitops_core::{ArtifactKey, ArtifactStore, Digest, ExtractLimits, Revision, StoreError};
use gitops_sources::server::{ArtifactFetcher, ArtifactServer, FetchError, FetchLimits};
use gitops_testenv::StaticHttpServer;

/// Every entry (file, folder or link) under `root`, relative.
fn entries_under(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

/// Total size of the regular files under `root`.
fn bytes_under(root: &Path) -> u64 {
    entries_under(root)
        .iter()
        .filter_map(|rel| fs::symlink_metadata(root.join(rel)).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn tar_gz(entries: &[TarEntry<'_>]) -> Vec<u8> {
    raw_tar_gz(entries).unwrap()
}

const FILE: tar::EntryType = tar::EntryType::Regular;
const LINK: tar::EntryType = tar::EntryType::Symlink;

#[tokio::test]
async fn a_truncated_artifact_is_a_digest_mismatch_and_nothing_is_extracted() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("deploy")).unwrap();
    for i in 0..20 {
        fs::write(
            src.join(format!("deploy/cm-{i}.yaml")),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\n"),
        )
        .unwrap();
    }
    let store = ArtifactStore::new(tmp.path().join("store")).unwrap();
    let key = ArtifactKey::new("GitRepository", "default", "podinfo").unwrap();
    let commit = Digest::new(gitops_core::Algorithm::Sha1, "b".repeat(40)).unwrap();
    let mut artifact = store
        .archive_dir(&key, Revision::named("main", commit), &src, &|_, _| true)
        .unwrap();
    let server = ArtifactServer::bind(store.clone(), "127.0.0.1:0", None)
        .await
        .unwrap();
    artifact.url = server.url_for(&artifact);

    // A good fetch first, into the folder a consumer keeps.
    let fetcher = ArtifactFetcher::new(FetchLimits::default()).unwrap();
    let good = tmp.path().join("good");
    fetcher.fetch_artifact(&artifact, &good).await.unwrap();
    let good_entries = entries_under(&good);

    // The stored file is cut in half (a crash mid-copy, a full disk).
    let stored = store.local_path(&artifact);
    let bytes = fs::read(&stored).unwrap();
    let half = bytes.len() / 2;
    fs::write(&stored, &bytes[..half]).unwrap();
    let dest = tmp.path().join("out");
    let err = fetcher.fetch_artifact(&artifact, &dest).await.unwrap_err();
    eprintln!("truncated: {err}");
    match &err {
        FetchError::DigestMismatch {
            url,
            expected,
            size,
            ..
        } => {
            assert_eq!(url, &artifact.url);
            assert_eq!(expected, &artifact.digest.to_string());
            assert_eq!(*size, half as u64);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!dest.exists(), "nothing may be extracted on a mismatch");
    assert_eq!(
        entries_under(&good),
        good_entries,
        "the earlier copy is untouched"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_archives_with_a_matching_digest_are_refused_inside_the_destination() {
    let served = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside.txt");
    let outside_str = outside.to_str().unwrap().to_string();
    let zeros = vec![0u8; 8 << 20];
    let names: Vec<String> = (0..1500).map(|i| format!("many/{i}.yaml")).collect();
    let mut many: Vec<(&str, tar::EntryType, &str, &[u8])> = Vec::new();
    many.extend(names.iter().map(|n| (n.as_str(), FILE, "", &b""[..])));

    type Case<'a> = (
        &'a str,
        Vec<(&'a str, tar::EntryType, &'a str, &'a [u8])>,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "dotdot",
            vec![
                ("ok.yaml", FILE, "", b"a: 1\n"),
                ("../outside.txt", FILE, "", b"pwned\n"),
            ],
            "absolute path or `..`",
        ),
        (
            "absolute",
            vec![
                ("ok.yaml", FILE, "", b"a: 1\n"),
                (&outside_str, FILE, "", b"pwned\n"),
            ],
            "absolute path or `..`",
        ),
        (
            "symlink",
            vec![
                ("ok.yaml", FILE, "", b"a: 1\n"),
                ("deploy/leak.yaml", LINK, "../../outside.txt", b""),
            ],
            "symlink leaves the destination",
        ),
        (
            "absolute-symlink",
            vec![("leak", LINK, &outside_str, b"")],
            "symlink leaves the destination",
        ),
        (
            "bomb",
            vec![
                ("ok.yaml", FILE, "", b"a: 1\n"),
                ("zeros.bin", FILE, "", &zeros),
            ],
            "total size in bytes",
        ),
        ("many", many, "file count"),
    ];
    let limits = FetchLimits {
        extract: ExtractLimits {
            max_total_bytes: 1 << 20,
            max_files: 1000,
        },
        ..FetchLimits::default()
    };
    let fetcher = ArtifactFetcher::new(limits).unwrap();
    let server = StaticHttpServer::start(served.path()).await.unwrap();
    for (t, entries, why) in cases {
        let archive = tar_gz(&entries);
        assert!(archive.len() < 64 << 10, "{t}: {} bytes", archive.len());
        fs::write(served.path().join(format!("{t}.tar.gz")), &archive).unwrap();
        let url = format!("{}/{t}.tar.gz", server.url());
        let dest = work.path().join(format!("dest-{t}"));
        let err = fetcher
            .fetch(&url, &Digest::sha256_of(&archive), &dest)
            .await
            .unwrap_err();
        eprintln!("{t}: {err}");
        assert!(!err.is_retryable(), "{t}: {err}");
        match &err {
            FetchError::Extract { url: u, source } => {
                assert_eq!(u, &url);
                assert!(
                    matches!(
                        source,
                        StoreError::UnsafeEntry { .. } | StoreError::TooLarge { .. }
                    ),
                    "{t}: {source:?}"
                );
            }
            other => panic!("{t}: expected an extraction error, got {other:?}"),
        }
        assert!(err.to_string().contains(why), "{t}: {err}");
        // Nothing outside the destination: the work folder holds only the destinations.
        assert!(!outside.exists(), "{t}: wrote outside the destination");
        let top: BTreeSet<String> = fs::read_dir(work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(top.iter().all(|n| n.starts_with("dest-")), "{t}: {top:?}");
        // What an extraction refused half-way leaves stays under the cap, and holds no link.
        assert!(bytes_under(&dest) <= (1 << 20) + 1, "{t}");
        for rel in entries_under(&dest) {
            let m = fs::symlink_metadata(dest.join(&rel)).unwrap();
            assert!(!m.file_type().is_symlink(), "{t}: link {rel} left behind");
        }
    }
}

/// A GNU long-name entry or a PAX header of 16 MiB (a few KiB gzipped): the tar reader reads
/// those into memory whole, so without a cap a small archive could make it allocate gigabytes
/// before the first entry is even seen. The store caps what is read between entries (1 MiB and a
/// bit).
#[tokio::test]
async fn a_long_name_bomb_is_refused_before_it_is_read_into_memory() {
    const N: usize = 16 << 20;
    let served = tempfile::tempdir().unwrap();
    let server = StaticHttpServer::start(served.path()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    for (t, kind) in [
        ("gnu-long-name", tar::EntryType::GNULongName),
        ("pax-header", tar::EntryType::XHeader),
    ] {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_size(N as u64);
        h.set_entry_type(kind);
        h.set_cksum();
        let mut data = format!("{N} path=").into_bytes();
        data.resize(N, b'a');
        b.append(&h, &data[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("x").unwrap();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let archive = b.into_inner().unwrap().finish().unwrap();
        assert!(archive.len() < 64 << 10, "{t}: {} bytes", archive.len());

        fs::write(served.path().join(format!("{t}.tar.gz")), &archive).unwrap();
        let url = format!("{}/{t}.tar.gz", server.url());
        let dest = work.path().join(t);
        let err = ArtifactFetcher::new(FetchLimits::default())
            .unwrap()
            .fetch(&url, &Digest::sha256_of(&archive), &dest)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 1000, "{t}: {} bytes: {:.300}", msg.len(), msg);
        eprintln!("{t}: {msg}");
        assert!(
            matches!(
                &err,
                FetchError::Extract {
                    source: StoreError::TooLarge {
                        what: "tar header size in bytes",
                        ..
                    },
                    ..
                }
            ),
            "{t}: {msg:.300}"
        );
        assert!(!err.is_retryable());
        assert!(entries_under(&dest).is_empty(), "{t}");
    }
}
