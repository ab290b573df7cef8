//! Helm chart archives for tests of chart repositories.

use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Packages the chart folder `chart_dir` as `helm package` lays it out (`<name>/Chart.yaml`,
/// `<name>/templates/...`, files sorted, mode 0644, a fixed mtime) into `.tgz` bytes, with the
/// `version:` and `appVersion:` lines of `Chart.yaml` replaced by `version`.
///
/// Errors: reading the folder.
pub fn package_chart(chart_dir: &Path, name: &str, version: &str) -> std::io::Result<Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut children = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?;
        children.sort();
        for p in children {
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(chart_dir, chart_dir, &mut files)?;
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for rel in files {
        let mut data = std::fs::read(chart_dir.join(&rel))?;
        if rel == Path::new("Chart.yaml") {
            data = String::from_utf8_lossy(&data)
                .lines()
                .map(|l| {
                    if l.starts_with("version:") {
                        format!("version: {version}")
                    } else if l.starts_with("appVersion:") {
                        format!("appVersion: {version}")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes();
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, Path::new(name).join(&rel), &data[..])?;
    }
    tar.into_inner()?.finish()
}
