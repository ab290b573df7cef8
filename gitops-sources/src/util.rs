//! Small pieces the sources share: Flux's `timeout` as a Go duration string, the rustls crypto
//! provider, error chains for messages, telling TLS certificate failures apart.

/// Serde for `Option<Duration>` as a Go duration string (`60s`, `1m30s`), as Kubernetes objects
/// carry Flux's `timeout`.
#[cfg(any(feature = "git", feature = "bucket", feature = "helm", feature = "oci"))]
pub(crate) mod go_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            None => s.serialize_none(),
            Some(d) if d.subsec_nanos() == 0 => s.serialize_str(&format!("{}s", d.as_secs())),
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| gitops_core::schedule::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The HTTP clients here (gix's and oci-client's reqwest, our own reqwest) are built without a
/// rustls crypto provider of their own (reqwest's default would add aws-lc-rs): install ring,
/// which the rest of the workspace uses, unless the application installed one.
#[cfg(any(feature = "git", feature = "helm", feature = "oci", feature = "server"))]
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// An error and its causes, `: `-separated, each cause once (reqwest and object_store repeat
/// their causes' text).
#[cfg(any(feature = "bucket", feature = "helm"))]
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// When `e` is (caused by) rustls refusing the server's certificate: what rustls said
/// (`invalid peer certificate: UnknownIssuer`). The rustls error is looked for in the chain, also
/// inside `io::Error`s (whose `source()` skips their inner error), else its text in `message`
/// (the already scrubbed chain).
#[cfg(any(feature = "git", feature = "helm"))]
pub(crate) fn certificate_problem(
    e: &(dyn std::error::Error + 'static),
    message: &str,
) -> Option<String> {
    const MARKER: &str = "invalid peer certificate";
    let mut cause = Some(e);
    while let Some(c) = cause {
        let rustls_error = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r @ rustls::Error::InvalidCertificate(_)) = rustls_error {
            return Some(r.to_string());
        }
        cause = c.source();
    }
    message.find(MARKER).map(|i| message[i..].to_string())
}
