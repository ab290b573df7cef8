//! Google Cloud Storage for tests: throw-away service-account keys
//! ([`service_account_key`]) that point a GCS client at a local server.
//!
//! # Which server
//!
//! object_store (the Bucket source's client) speaks GCS's **XML API**: listings are
//! `GET /<bucket>?list-type=2&prefix=...` (the S3 `ListObjectsV2` request GCS's XML API
//! accepts), downloads `GET /<bucket>/<object>`. No GCS emulator that installs here serves that
//! listing: PyPI `gcp-storage-emulator` answers it `501 Not Implemented` (it only has the JSON
//! API and XML object GET/PUT), and `fake-gcs-server` has no XML listing upstream (its issue
//! #331; object_store's own CI runs a fork) and needs the Go module proxy to install. So the
//! tests run object_store's GCS client against moto ([`S3Server`](crate::S3Server)), which
//! serves the same XML requests; what is GCS-specific on the client side (the service-account
//! key, its self-signed JWT bearer token, `gcs_base_url`) is exercised for real, what is
//! GCS-specific on the server side (checking the token, JSON-API etags) is not.

use std::process::Command;

use crate::Error;

/// A service-account key document like the ones Google issues (`"type": "service_account"`,
/// `project_id`, `private_key_id`, `private_key`, `client_email`, ...), with a fresh 2048-bit RSA
/// private key made by `openssl genpkey` (PKCS#8 PEM). With `base_url`, the document also holds
/// object_store's `"gcs_base_url"` so a client built from it talks to that server instead of
/// `https://storage.googleapis.com`. The client signs its own JWT bearer tokens with the key; no
/// token server is contacted.
///
/// Errors: [`Error::Io`] when `openssl` cannot be run, [`Error::Command`] when it fails.
pub fn service_account_key(base_url: Option<&str>) -> Result<String, Error> {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .map_err(|e| Error::io("running openssl genpkey (is openssl on PATH?)", e))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: "openssl genpkey -algorithm RSA".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut key = serde_json::json!({
        "type": "service_account",
        "project_id": "gitops-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "flux@gitops-test.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    if let Some(url) = base_url {
        key["gcs_base_url"] = serde_json::Value::String(url.to_string());
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_documents_hold_a_pem_key_and_the_base_url() {
        let key = service_account_key(Some("http://127.0.0.1:1")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&key).unwrap();
        assert!(
            v["private_key"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert_eq!(v["gcs_base_url"], "http://127.0.0.1:1");
        let plain = service_account_key(None).unwrap();
        assert!(!plain.contains("gcs_base_url"));
    }
}
