//! HTTPS: rustls with the `ring` provider, TLS 1.2 or 1.3 only, certificate verification always
//! on (webpki roots plus an optional extra CA file), optional client certificate.

use super::PushError;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::{self, pki_types, ClientConfig, RootCertStore};

/// Builds the client configuration shared by every https session of a pusher.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<Arc<ClientConfig>, PushError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = read_certs(path)?;
        if certs.is_empty() {
            return Err(tls_err(path, "no certificate found in the CA file"));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| tls_err(path, &format!("unusable CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| PushError::Tls {
            what: format!("TLS setup: {e}"),
        })?
        .with_root_certificates(roots);
    let config = match (client_cert, client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), key) => {
            let chain = read_certs(cert)?;
            if chain.is_empty() {
                return Err(tls_err(
                    cert,
                    "no certificate found in the client certificate file",
                ));
            }
            // The key may sit in the certificate file itself.
            let key_path = key.unwrap_or(cert);
            let key = read_key(key_path)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls_err(cert, &format!("client certificate rejected: {e}")))?
        }
        (None, Some(key)) => {
            return Err(tls_err(key, "a client key needs a client certificate"));
        }
    };
    Ok(Arc::new(config))
}

fn tls_err(path: &Path, what: &str) -> PushError {
    PushError::Tls {
        what: format!("{}: {what}", path.display()),
    }
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, PushError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|e| tls_err(path, &format!("cannot open: {e}")))
}

fn read_certs(path: &Path) -> Result<Vec<pki_types::CertificateDer<'static>>, PushError> {
    let mut r = open(path)?;
    rustls_pemfile::certs(&mut r)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(path, &format!("bad PEM: {e}")))
}

fn read_key(path: &Path) -> Result<pki_types::PrivateKeyDer<'static>, PushError> {
    let mut r = open(path)?;
    rustls_pemfile::private_key(&mut r)
        .map_err(|e| tls_err(path, &format!("bad PEM: {e}")))?
        .ok_or_else(|| tls_err(path, "no private key found"))
}

/// The name the server certificate must match (a DNS name or an IP address).
pub(crate) fn server_name(
    host: &url::Host<String>,
) -> Result<pki_types::ServerName<'static>, String> {
    match host {
        url::Host::Domain(d) => pki_types::ServerName::try_from(d.clone())
            .map_err(|e| format!("invalid TLS server name: {e}")),
        url::Host::Ipv4(a) => Ok(pki_types::ServerName::IpAddress(
            std::net::IpAddr::V4(*a).into(),
        )),
        url::Host::Ipv6(a) => Ok(pki_types::ServerName::IpAddress(
            std::net::IpAddr::V6(*a).into(),
        )),
    }
}
