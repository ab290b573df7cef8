//! `gitops push artifact` and `gitops pull artifact` against a real registry: the test starts
//! Debian's `docker-registry` on a free 127.0.0.1 port through gitops-testenv's `OciRegistry`
//! (plain HTTP, hence `--insecure`; basic auth for the second test) and the registry process is
//! killed by its PID when the `OciRegistry` is dropped.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use gitops_testenv::OciRegistry;

fn gitops(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitops"))
        .args(args)
        .output()
        .expect("run gitops");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write_folder(root: &Path) {
    std::fs::create_dir_all(root.join("apps")).unwrap();
    std::fs::write(root.join("apps/cm.yaml"), "kind: ConfigMap\n").unwrap();
    std::fs::write(
        root.join("kustomization.yaml"),
        "resources: [apps/cm.yaml]\n",
    )
    .unwrap();
}

#[test]
fn push_then_pull_round_trip() {
    let reg = OciRegistry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_folder(&src);
    let url = format!("oci://{}/demo/manifests:v1.0.0", reg.host());

    let (ok, stdout, stderr) = gitops(&[
        "push",
        "artifact",
        &url,
        "--path",
        src.to_str().unwrap(),
        "--source",
        "https://github.com/example/repo",
        "--revision",
        "main@sha1:5394cb7f48332b2de7c17dd8b8384bbc84b7e738",
        "--insecure",
    ]);
    assert!(ok, "push failed: {stderr}");
    let digest = stdout.trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{stdout}"
    );

    let out = dir.path().join("out");
    let (ok, stdout, stderr) = gitops(&[
        "pull",
        "artifact",
        &url,
        "--output",
        out.to_str().unwrap(),
        "--insecure",
    ]);
    assert!(ok, "pull failed: {stderr}");
    assert_eq!(stdout.trim(), digest);
    assert!(
        stderr.contains("org.opencontainers.image.source: https://github.com/example/repo"),
        "{stderr}"
    );
    assert_eq!(read_tree(&out), read_tree(&src));
}

#[test]
fn credentials_are_required_and_not_printed() {
    let reg = OciRegistry::start_with_basic_auth("ci", "hunter2-secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_folder(&src);
    let url = format!("oci://{}/private/manifests:v1", reg.host());
    let push = |creds: Option<&str>| {
        let mut args = vec![
            "push",
            "artifact",
            &url,
            "--path",
            src.to_str().unwrap(),
            "--source",
            "s",
            "--revision",
            "r",
            "--insecure",
        ];
        if let Some(c) = creds {
            args.extend(["--creds", c]);
        }
        gitops(&args)
    };
    let (ok, _, stderr) = push(None);
    assert!(!ok);
    assert!(stderr.contains(&reg.host()), "{stderr}");
    let (ok, _, stderr) = push(Some("ci:wrong-pass-xyz"));
    assert!(!ok);
    assert!(!stderr.contains("wrong-pass-xyz"), "{stderr}");
    let (ok, stdout, stderr) = push(Some("ci:hunter2-secret"));
    assert!(ok, "{stderr}");
    let out = dir.path().join("out");
    let (ok, pulled, stderr) = gitops(&[
        "pull",
        "artifact",
        &url,
        "-o",
        out.to_str().unwrap(),
        "--insecure",
        "--creds",
        "ci:hunter2-secret",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(pulled.trim(), stdout.trim());
    assert_eq!(read_tree(&out), read_tree(&src));
}
