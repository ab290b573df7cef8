//! [`TestCa`]: a throwaway certificate authority and a server certificate for `127.0.0.1` and
//! `localhost`, for the HTTPS variants of the test servers
//! ([`GitHttpServer::start_tls`](crate::GitHttpServer::start_tls),
//! [`StaticHttpServer::start_tls`](crate::StaticHttpServer::start_tls)).
//!
//! The keys are made in memory (ECDSA P-256, with rcgen on ring) and never written to disk.
//! Clients trust the servers by trusting [`TestCa::ca_pem`], which is what Flux's `ca.crt`
//! secret key holds.
//!
//! ```no_run
//! use gitops_testenv::{StaticHttpServer, TestCa};
//!
//! # async fn example() -> Result<(), gitops_testenv::Error> {
//! let ca = TestCa::new()?;
//! let server = StaticHttpServer::start_tls(std::path::Path::new("/srv/charts"), &ca).await?;
//! assert!(server.url().starts_with("https://127.0.0.1:"));
//! let ca_crt: &str = ca.ca_pem(); // give this to the client as its CA bundle
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hyper::body::{Body, Incoming};
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
#[cfg(test)]
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::Error;

/// A self-signed test CA (`CN=gitops-testenv test CA`) and a server certificate it signed for
/// the names `localhost` and `127.0.0.1` (subject alternative names, server authentication).
/// Each [`TestCa::new`] makes new keys, so two `TestCa`s do not trust each other's servers.
///
/// `Debug` does not print the private key.
#[derive(Clone)]
pub struct TestCa {
    ca_pem: String,
    server_cert_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: Arc<PrivatePkcs8KeyDer<'static>>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem_len", &self.ca_pem.len())
            .field("server_key", &"***")
            .finish()
    }
}

impl TestCa {
    /// Makes a new CA key and certificate, and a server key and certificate signed by it.
    ///
    /// Errors: [`Error::Tls`] when rcgen cannot make or sign them.
    pub fn new() -> Result<TestCa, Error> {
        let tls = |what: &str, e: rcgen::Error| Error::Tls {
            context: format!("making the test CA: {what}"),
            message: e.to_string(),
        };
        let ca_key = KeyPair::generate().map_err(|e| tls("CA key", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| tls("CA parameters", e))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gitops-testenv test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|e| tls("CA certificate", e))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(|e| tls("server key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls("server parameters", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "gitops-testenv server");
        params.subject_alt_names = vec![
            SanType::DnsName(
                "localhost"
                    .to_string()
                    .try_into()
                    .map_err(|e| tls("server name", e))?,
            ),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .map_err(|e| tls("server certificate", e))?;

        Ok(TestCa {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_cert: server_cert.der().clone(),
            server_key: Arc::new(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        })
    }

    /// The CA certificate, PEM-encoded (`-----BEGIN CERTIFICATE-----` …): what a client trusts,
    /// e.g. the `ca.crt` key of a Flux secret.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server's certificate, PEM-encoded (signed by the CA; not a CA itself).
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// A TLS acceptor presenting the server certificate (HTTP/1.1 over TLS 1.2 or 1.3, on the
    /// ring provider).
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![self.server_cert.clone()],
                    PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
                )
            })
            .map_err(|e| Error::Tls {
                context: "configuring the test server's TLS".to_string(),
                message: e.to_string(),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Serves HTTP/1.1 on one accepted connection with `service`, after a TLS handshake when
/// `tls` is given. Errors: the handshake's or hyper's, as text (the servers only log them).
pub(crate) async fn serve_connection<S>(
    stream: TcpStream,
    tls: Option<&TlsAcceptor>,
    service: S,
) -> Result<(), String>
where
    S: HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = hyper::server::conn::http1::Builder::new();
    match tls {
        None => http
            .serve_connection(TokioIo::new(stream), service)
            .await
            .map_err(|e| e.to_string()),
        Some(acceptor) => {
            let stream = acceptor
                .accept(stream)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            http.serve_connection(TokioIo::new(stream), service)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_and_server_certificates_are_pem_and_differ_per_ca() {
        let a = TestCa::new().unwrap();
        let b = TestCa::new().unwrap();
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            a.server_cert_pem()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_ne!(a.ca_pem(), a.server_cert_pem());
        assert_ne!(a.ca_pem(), b.ca_pem());
        assert!(!format!("{a:?}").contains("PRIVATE"));
        a.acceptor().unwrap();
    }

    /// What a client does: the server certificate verifies for `127.0.0.1` and `localhost`
    /// against its own CA, and not against another test CA.
    #[test]
    fn server_certificate_verifies_against_its_ca_only() {
        use rustls::client::WebPkiServerVerifier;
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};

        let verify = |trusted: &TestCa, server: &TestCa, name: &'static str| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(trusted.ca_pem().as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            verifier.verify_server_cert(
                &server.server_cert,
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
        };
        let a = TestCa::new().unwrap();
        let b = TestCa::new().unwrap();
        verify(&a, &a, "127.0.0.1").unwrap();
        verify(&a, &a, "localhost").unwrap();
        assert!(verify(&a, &a, "example.com").is_err());
        assert!(verify(&b, &a, "127.0.0.1").is_err());
    }
}
