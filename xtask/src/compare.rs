//! `cargo xtask kustomize-compare DIR...`: builds every kustomization folder under the given
//! folders with `kubectl kustomize` (the reference) and with `gitops build`, and reports how many
//! are byte-identical, which differ (first differing line) and which fail on one side only,
//! with the total time each tool took. The measure of the renderer on real repositories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    if KUSTOMIZATION_FILES.iter().any(|f| dir.join(f).is_file()) {
        out.push(dir.to_path_buf());
    }
    for c in children {
        let is_dir = std::fs::symlink_metadata(&c).is_ok_and(|m| m.is_dir());
        if is_dir && c.file_name().is_some_and(|n| n != ".git") {
            find(&c, out);
        }
    }
}

fn run(cmd: &mut Command) -> Result<(bool, String, String, Duration)> {
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    ))
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}: kubectl {w:?} / ours {g:?}", i + 1);
        }
    }
    format!(
        "kubectl printed {} lines, ours {}",
        want.lines().count(),
        got.lines().count()
    )
}

/// The message of an error output: kubectl's last line, or everything after our `Error:`.
fn error_text(s: &str) -> String {
    let text = match s.find("Error: ") {
        Some(i) => s[i + "Error: ".len()..].replace('\n', " "),
        None => s
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string(),
    };
    text.chars().take(400).collect()
}

/// Compares the two tools on every kustomization under `roots`; `gitops` is the CLI binary.
pub fn compare(gitops: &Path, roots: &[PathBuf]) -> Result<()> {
    let mut dirs = Vec::new();
    for r in roots {
        if !r.is_dir() {
            bail!("{} is not a folder", r.display());
        }
        find(r, &mut dirs);
    }
    let (mut identical, mut differ, mut both_fail, mut we_fail, mut we_pass) = (0, 0, 0, 0, 0);
    let (mut kubectl_time, mut our_time) = (Duration::ZERO, Duration::ZERO);
    let mut report = Vec::new();
    for d in &dirs {
        let (k_ok, k_out, k_err, k_t) = run(Command::new("kubectl").arg("kustomize").arg(d))?;
        let (o_ok, o_out, o_err, o_t) = run(Command::new(gitops)
            .arg("build")
            .arg(d)
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0"))?;
        kubectl_time += k_t;
        our_time += o_t;
        let name = d.display();
        match (k_ok, o_ok) {
            (true, true) if k_out == o_out => identical += 1,
            (true, true) => {
                differ += 1;
                report.push(format!(
                    "DIFFER   {name}: {}",
                    first_difference(&k_out, &o_out)
                ));
            }
            (false, false) => both_fail += 1,
            (true, false) => {
                we_fail += 1;
                report.push(format!("WE FAIL  {name}: {}", error_text(&o_err)));
            }
            (false, true) => {
                we_pass += 1;
                report.push(format!("WE PASS  {name}: kubectl: {}", error_text(&k_err)));
            }
        }
    }
    for line in &report {
        println!("{line}");
    }
    let built = identical + differ + we_fail;
    println!(
        "{} kustomizations: {identical} identical, {differ} differ, {we_fail} fail only here, \
         {we_pass} fail only in kubectl, {both_fail} fail in both",
        dirs.len()
    );
    if built > 0 {
        println!(
            "byte-identical: {:.1}% of the {built} folders kubectl kustomize builds",
            100.0 * identical as f64 / built as f64
        );
    }
    println!(
        "total time: kubectl kustomize {:.2} s, gitops build {:.2} s (processes included)",
        kubectl_time.as_secs_f64(),
        our_time.as_secs_f64()
    );
    Ok(())
}
