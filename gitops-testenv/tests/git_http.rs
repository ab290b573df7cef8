//! GitHttpServer with the real `git` CLI as the client (over HTTPS: git's own TLS stack checks
//! the `TestCa` certificates).

use std::path::Path;
use std::process::Output;

use gitops_testenv::{GitHttpServer, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs git in `dir`, isolated from the user's and the system's configuration, never prompting.
async fn git(dir: &Path, args: &[&str]) -> Output {
    git_env(dir, args, &[]).await
}

async fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new("git")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .await
        .unwrap()
}

async fn git_ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args).await;
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `root/repos/demo.git` with two commits on `main`; returns the head commit.
async fn demo_repo(root: &Path) -> String {
    let repos = root.join("repos");
    let work = root.join("work");
    std::fs::create_dir_all(&repos).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    git_ok(&repos, &["init", "--bare", "-q", "-b", "main", "demo.git"]).await;
    git_ok(&work, &["init", "-q", "-b", "main"]).await;
    std::fs::write(work.join("a.yaml"), "kind: ConfigMap\n").unwrap();
    git_ok(&work, &["add", "."]).await;
    git_ok(&work, &["commit", "-q", "-m", "first"]).await;
    std::fs::write(work.join("b.yaml"), "kind: Secret\n").unwrap();
    git_ok(&work, &["add", "."]).await;
    git_ok(&work, &["commit", "-q", "-m", "second"]).await;
    let bare = repos.join("demo.git");
    git_ok(&work, &["push", "-q", bare.to_str().unwrap(), "main"]).await;
    git_ok(&work, &["rev-parse", "HEAD"]).await
}

/// A raw `GET` of `path`: the status line and the response headers.
async fn raw_get(base: &str, path: &str, extra_header: &str) -> String {
    let hostport = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(hostport).await.unwrap();
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {hostport}\r\n{extra_header}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clone_shallow_clone_and_ls_remote() {
    let tmp = tempfile::tempdir().unwrap();
    let head = demo_repo(tmp.path()).await;
    let server = GitHttpServer::start(&tmp.path().join("repos"))
        .await
        .unwrap();
    let url = format!("{}/demo.git", server.url());
    assert!(url.starts_with("http://127.0.0.1:"));

    // ls-remote with protocol v2 (git's default) and with the original protocol.
    for version in ["protocol.version=2", "protocol.version=0"] {
        let refs = git_ok(tmp.path(), &["-c", version, "ls-remote", &url]).await;
        assert!(
            refs.contains(&format!("{head}\trefs/heads/main")),
            "{version}: {refs}"
        );
    }
    // The Git-Protocol header reaches the backend: the server answers with protocol v2.
    let traced = git_env(
        tmp.path(),
        &["-c", "protocol.version=2", "ls-remote", &url],
        &[("GIT_TRACE_PACKET", "1")],
    )
    .await;
    assert!(traced.status.success());
    let trace = String::from_utf8_lossy(&traced.stderr);
    assert!(trace.contains("git< version 2"), "{trace}");

    let full = tmp.path().join("full");
    git_ok(tmp.path(), &["clone", "-q", &url, full.to_str().unwrap()]).await;
    assert_eq!(git_ok(&full, &["rev-parse", "HEAD"]).await, head);
    assert_eq!(git_ok(&full, &["rev-list", "--count", "HEAD"]).await, "2");
    assert_eq!(
        std::fs::read_to_string(full.join("b.yaml")).unwrap(),
        "kind: Secret\n"
    );

    let shallow = tmp.path().join("shallow");
    git_ok(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            shallow.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(git_ok(&shallow, &["rev-parse", "HEAD"]).await, head);
    assert_eq!(
        git_ok(&shallow, &["rev-list", "--count", "HEAD"]).await,
        "1"
    );
    assert!(shallow.join(".git/shallow").is_file());

    // A repository that isn't there is a 404, and anonymous pushes are refused.
    let missing = git(
        tmp.path(),
        &["ls-remote", &format!("{}/nope.git", server.url())],
    )
    .await;
    assert!(!missing.status.success());
    let head_line = raw_get(
        &server.url(),
        "/nope.git/info/refs?service=git-upload-pack",
        "",
    )
    .await;
    assert!(head_line.starts_with("HTTP/1.1 404"), "{head_line}");
    let push = git(&full, &["push", &url, "HEAD:refs/heads/other"]).await;
    assert!(!push.status.success());

    // Stopped: the repository is no longer served. (Asserting that the port refuses
    // connections would be racy: once closed, the kernel may hand the port to another socket,
    // even to the probe's own outgoing connection.)
    server.shutdown().await;
    let after = git(tmp.path(), &["ls-remote", &url]).await;
    assert!(!after.status.success(), "still served after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_refuses_missing_and_wrong_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let head = demo_repo(tmp.path()).await;
    let server = GitHttpServer::start_with_basic_auth(&tmp.path().join("repos"), "flux", "s3cret")
        .await
        .unwrap();
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let anonymous = format!("{}/demo.git", server.url());

    let head_lines = raw_get(
        &server.url(),
        "/demo.git/info/refs?service=git-upload-pack",
        "",
    )
    .await;
    assert!(head_lines.starts_with("HTTP/1.1 401"), "{head_lines}");
    assert!(
        head_lines
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"git\""),
        "{head_lines}"
    );
    let out = git(tmp.path(), &["ls-remote", &anonymous]).await;
    assert!(!out.status.success());
    let wrong = format!("http://flux:wrong@127.0.0.1:{port}/demo.git");
    let out = git(tmp.path(), &["ls-remote", &wrong]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let right = format!("http://flux:s3cret@127.0.0.1:{port}/demo.git");
    let refs = git_ok(tmp.path(), &["ls-remote", &right]).await;
    assert!(refs.contains(&format!("{head}\trefs/heads/main")), "{refs}");
    let clone = tmp.path().join("clone");
    git_ok(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &right,
            clone.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(git_ok(&clone, &["rev-parse", "HEAD"]).await, head);

    // Authenticated users may push.
    std::fs::write(clone.join("c.yaml"), "kind: Service\n").unwrap();
    git_ok(&clone, &["add", "."]).await;
    git_ok(&clone, &["commit", "-q", "-m", "third"]).await;
    git_ok(&clone, &["push", "-q", &right, "HEAD:refs/heads/main"]).await;
    let pushed = git_ok(&clone, &["rev-parse", "HEAD"]).await;
    let refs = git_ok(tmp.path(), &["ls-remote", &right, "refs/heads/main"]).await;
    assert_eq!(refs, format!("{pushed}\trefs/heads/main"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let head = demo_repo(tmp.path()).await;
    let server = GitHttpServer::start_with_bearer_token(&tmp.path().join("repos"), "tok-123")
        .await
        .unwrap();
    let url = format!("{}/demo.git", server.url());

    let out = git(tmp.path(), &["ls-remote", &url]).await;
    assert!(!out.status.success());
    let head_lines = raw_get(
        &server.url(),
        "/demo.git/info/refs?service=git-upload-pack",
        "Authorization: Bearer wrong\r\n",
    )
    .await;
    assert!(head_lines.starts_with("HTTP/1.1 401"), "{head_lines}");
    assert!(
        head_lines
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"git\""),
        "{head_lines}"
    );

    let header = "http.extraHeader=Authorization: Bearer tok-123";
    let refs = git_ok(tmp.path(), &["-c", header, "ls-remote", &url]).await;
    assert!(refs.contains(&format!("{head}\trefs/heads/main")), "{refs}");
    let clone = tmp.path().join("clone");
    git_ok(
        tmp.path(),
        &["-c", header, "clone", "-q", &url, clone.to_str().unwrap()],
    )
    .await;
    assert_eq!(git_ok(&clone, &["rev-list", "--count", "HEAD"]).await, "2");
}

#[tokio::test]
async fn a_missing_repositories_folder_is_an_error() {
    let err = GitHttpServer::start(Path::new("/nonexistent/repos"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/repos"), "{err}");
}

#[tokio::test]
async fn https_with_the_test_ca_and_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let head = demo_repo(tmp.path()).await;
    let ca = TestCa::new().unwrap();
    let ca_file = tmp.path().join("ca.crt");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let other_file = tmp.path().join("other.crt");
    std::fs::write(&other_file, TestCa::new().unwrap().ca_pem()).unwrap();
    let server =
        GitHttpServer::start_tls_with_basic_auth(&tmp.path().join("repos"), &ca, "alice", "pw")
            .await
            .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let url = format!("{}/demo.git", server.url());
    let with_creds = url.replace("https://", "https://alice:pw@");
    // git (libcurl) trusts only the given bundle with GIT_SSL_CAINFO.
    let trusting = |file: &Path| [("GIT_SSL_CAINFO", file.to_str().unwrap().to_string())];
    let run = |args: Vec<String>, file: &Path| {
        let env = trusting(file);
        let dir = tmp.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            git_env(&dir, &args, &env).await
        }
    };

    // Trusting the test CA, with credentials: a shallow clone works.
    let shallow = tmp.path().join("shallow");
    let out = run(
        vec![
            "clone".into(),
            "-q".into(),
            "--depth".into(),
            "1".into(),
            with_creds.clone(),
            shallow.to_str().unwrap().into(),
        ],
        &ca_file,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git_ok(&shallow, &["rev-parse", "HEAD"]).await, head);
    assert_eq!(
        git_ok(&shallow, &["rev-list", "--count", "HEAD"]).await,
        "1"
    );

    // Also by the name `localhost`.
    let by_name = with_creds.replace("127.0.0.1", "localhost");
    let out = run(vec!["ls-remote".into(), by_name], &ca_file).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refs = String::from_utf8_lossy(&out.stdout);
    assert!(refs.contains(&format!("{head}\trefs/heads/main")), "{refs}");

    // Trusting the CA, without credentials: refused (401).
    let out = run(vec!["ls-remote".into(), url.clone()], &ca_file).await;
    assert!(!out.status.success());

    // Trusting only another test CA: the server's certificate is refused.
    let out = run(vec!["ls-remote".into(), with_creds], &other_file).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // GnuTLS: "server certificate verification failed"; OpenSSL: "SSL certificate problem".
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
