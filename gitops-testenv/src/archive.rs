//! Hostile archives for extraction tests: tar.gz files whose entry names and link targets are
//! written into the header as given, so `..`, absolute paths and escaping symlinks reach the
//! archive (`tar::Header::set_path` refuses them).

/// One tar entry: path, type, link target (empty for none), data.
pub type TarEntry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

/// A tar.gz of `entries`, in order, in the old (v7) header format with mode 0644. Names and
/// link targets go into the header raw. Errors: a name or link target longer than the header's
/// 100 bytes (`InvalidInput`), or a write error.
pub fn raw_tar_gz(entries: &[TarEntry<'_>]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_old();
        let old = h.as_old_mut();
        if name.len() > old.name.len() || link.len() > old.linkname.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("tar entry {name:?}: name or link target longer than 100 bytes"),
            ));
        }
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(*kind);
        h.set_cksum();
        b.append(&h, *data)?;
    }
    b.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_links_are_written_as_given() {
        let bytes = raw_tar_gz(&[
            ("../escape", tar::EntryType::Regular, "", b"x"),
            ("link", tar::EntryType::Symlink, "/etc/passwd", b""),
        ])
        .unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let got: Vec<(String, Option<String>)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (name, link)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("../escape".to_string(), None),
                ("link".to_string(), Some("/etc/passwd".to_string()))
            ]
        );
        assert!(raw_tar_gz(&[(&"a".repeat(101), tar::EntryType::Regular, "", b"")]).is_err());
    }
}
