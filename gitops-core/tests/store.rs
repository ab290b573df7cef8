//! The artifact store on a real folder: determinism, digest verification, safe extraction, GC.

use std::io::Write;
use std::path::Path;

use gitops_core::store::extract_tar_gz;
use gitops_core::*;

fn rev(c: char) -> Revision {
    Revision::named(
        "main",
        Digest::new(Algorithm::Sha1, c.to_string().repeat(40)).unwrap(),
    )
}

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("deploy/sub")).unwrap();
    std::fs::write(d.path().join("deploy/a.yaml"), "a: 1\n").unwrap();
    std::fs::write(d.path().join("deploy/sub/b.yaml"), "b: 2\n").unwrap();
    std::fs::write(d.path().join("skip.png"), "x").unwrap();
    d
}

#[test]
fn archives_are_reproducible_and_verified() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(store_dir.path()).unwrap();
    let key = ArtifactKey::new("GitRepository", "flux-system", "podinfo").unwrap();
    let filter = |p: &Path, _dir: bool| p.extension().is_none_or(|e| e != "png");
    let a1 = store
        .archive_dir(&key, rev('a'), tree().path(), &filter)
        .unwrap();
    let a2 = store
        .archive_dir(&key, rev('b'), tree().path(), &filter)
        .unwrap();
    assert_eq!(
        a1.digest, a2.digest,
        "same tree, same bytes, whatever the mtimes"
    );
    assert_eq!(
        a1.path,
        format!(
            "gitrepository/flux-system/podinfo/{}.tar.gz",
            "a".repeat(40)
        )
    );
    assert_eq!(
        a1.size,
        std::fs::metadata(store.local_path(&a1)).unwrap().len()
    );

    let out = tempfile::tempdir().unwrap();
    store.extract(&a1, out.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("deploy/sub/b.yaml")).unwrap(),
        "b: 2\n"
    );
    assert!(!out.path().join("skip.png").exists(), "filtered out");

    // Tampering is detected before anything is extracted.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(store.local_path(&a1))
        .unwrap();
    f.write_all(b"junk").unwrap();
    let err = store
        .extract(&a1, tempfile::tempdir().unwrap().path())
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
}

#[test]
fn gc_keeps_the_newest_and_the_current() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(store_dir.path())
        .unwrap()
        .with_retention(2);
    let key = ArtifactKey::new("GitRepository", "ns", "repo").unwrap();
    let t = tree();
    let mut arts = Vec::new();
    for c in ['a', 'b', 'c', 'd'] {
        arts.push(
            store
                .archive_dir(&key, rev(c), t.path(), &|_, _| true)
                .unwrap(),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let deleted = store.gc(&arts[3]).unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(store.local_path(&arts[3]).exists() && store.local_path(&arts[2]).exists());
    assert!(!store.local_path(&arts[0]).exists());
}

fn tar_gz(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, ty, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        // Write the raw name so that `..` and absolute paths reach the archive.
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*ty);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn extract(bytes: &[u8], limits: ExtractLimits) -> Result<tempfile::TempDir, StoreError> {
    let d = tempfile::tempdir().unwrap();
    extract_tar_gz(bytes, Path::new("test.tar.gz"), d.path(), limits).map(|_| d)
}

#[test]
fn extraction_refuses_escapes_links_devices_and_oversize() {
    use tar::EntryType::*;
    let l = ExtractLimits::default();
    for (case, bytes) in [
        ("dotdot", tar_gz(&[("../evil", Regular, None, b"x")])),
        ("absolute", tar_gz(&[("/tmp/evil", Regular, None, b"x")])),
        (
            "symlink out",
            tar_gz(&[("link", Symlink, Some("../../etc"), b"")]),
        ),
        (
            "absolute symlink",
            tar_gz(&[("link", Symlink, Some("/etc/passwd"), b"")]),
        ),
        (
            "hard link",
            tar_gz(&[("a", Regular, None, b"x"), ("b", Link, Some("a"), b"")]),
        ),
        ("device", tar_gz(&[("dev", Char, None, b"")])),
        (
            // Each link stays inside when read alone; together they reach the parent folder.
            "symlink chain out",
            tar_gz(&[
                ("a", Symlink, Some("."), b""),
                ("b", Symlink, Some("a/a/a/.."), b""),
            ]),
        ),
        (
            // A file written through a link to a folder outside.
            "write through a link",
            tar_gz(&[
                ("a", Symlink, Some("."), b""),
                ("b", Symlink, Some("a/a/.."), b""),
                ("b/evil", Regular, None, b"x"),
            ]),
        ),
    ] {
        let err = extract(&bytes, l)
            .err()
            .unwrap_or_else(|| panic!("{case} was extracted"));
        assert!(
            matches!(err, StoreError::UnsafeEntry { .. }),
            "{case}: {err}"
        );
    }
    let ok = tar_gz(&[
        ("dir/a", Regular, None, b"hello"),
        ("dir/link", Symlink, Some("a"), b""),
    ]);
    let d = extract(&ok, l).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.path().join("dir/link")).unwrap(),
        "hello",
        "links inside stay"
    );
    let dangling = tar_gz(&[("dir/gone", Symlink, Some("missing"), b"")]);
    let d = extract(&dangling, l).unwrap();
    assert!(
        std::fs::symlink_metadata(d.path().join("dir/gone")).is_err(),
        "dangling links are dropped"
    );

    let big = tar_gz(&[("a", Regular, None, &[0u8; 2048])]);
    let err = extract(
        &big,
        ExtractLimits {
            max_total_bytes: 1024,
            max_files: 10,
        },
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");

    // A PAX `size` record overrides the header's size: the cap follows the real size.
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    b.append_pax_extensions([("size", b"2048".as_slice())])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("small").unwrap();
    h.set_mode(0o644);
    h.set_size(10);
    h.set_cksum();
    b.append(&h, &[7u8; 2048][..]).unwrap();
    let pax = b.into_inner().unwrap().finish().unwrap();
    let err = extract(
        &pax,
        ExtractLimits {
            max_total_bytes: 1024,
            max_files: 10,
        },
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");

    let many = tar_gz(&[
        ("a", Regular, None, b""),
        ("b", Regular, None, b""),
        ("c", Regular, None, b""),
    ]);
    let err = extract(
        &many,
        ExtractLimits {
            max_total_bytes: 1024,
            max_files: 2,
        },
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
}

#[test]
fn artifact_paths_leaving_the_store_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::new(dir.path().join("store")).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.yaml"), "a: 1\n").unwrap();
    let key = ArtifactKey::new("GitRepository", "ns", "app").unwrap();
    let rev = Revision::named(
        "main",
        Digest::new(Algorithm::Sha1, "1".repeat(40)).unwrap(),
    );
    let good = store
        .archive_dir(&key, rev, src.path(), &|_, _| true)
        .unwrap();
    store.verify(&good).unwrap();
    assert!(store.has(&good));
    for bad in ["../../etc/passwd", "/etc/passwd", ""] {
        let mut a = good.clone();
        a.path = bad.into();
        let out = tempfile::tempdir().unwrap();
        assert!(!store.has(&a), "{bad}");
        for err in [
            store.verify(&a).unwrap_err(),
            store.extract(&a, out.path()).unwrap_err(),
            store.gc(&a).unwrap_err(),
        ] {
            assert!(
                matches!(err, StoreError::InvalidPath { .. }),
                "{bad}: {err}"
            );
        }
    }
}
