//! SIP over TLS (RFC 3261 §26.3.1, RFC 5630): the rustls client configuration built from the
//! settings, and handshake failures turned into messages that name the cause.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};

use crate::settings::TlsSettings;

/// The TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("CA file {path}: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error("client certificate and key: {0}")]
    BadClientCertificate(String),
    #[error("CRL file {path}: {reason}")]
    BadCrl { path: PathBuf, reason: String },
}

/// The client configuration: webpki roots plus `ca_file`, and the client certificate if any.
pub(crate) fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // The system's store too (where IT installs the company CA; SSL_CERT_FILE/SSL_CERT_DIR
    // override it). A store that cannot be read only costs its certificates.
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "system certificate store");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "system CA certificates");
    if let Some(path) = &settings.ca_file {
        for certificate in read_certificates("CA file", path)? {
            roots
                .add(certificate)
                .map_err(|error| TlsConfigError::BadCa {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        // Invariant: the ring provider supports the default protocol versions.
        .expect("ring supports TLS 1.2 and 1.3");
    let builder = match &settings.crl_file {
        // Revocation: a certificate its CA listed is refused. CAs without a CRL here (the
        // public roots) are not checked.
        Some(path) => {
            let bad = |reason: String| TlsConfigError::BadCrl {
                path: path.clone(),
                reason,
            };
            let crls = CertificateRevocationListDer::pem_file_iter(path)
                .map_err(|error| bad(error.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| bad(error.to_string()))?;
            if crls.is_empty() {
                return Err(bad("no PEM CRL in it".to_owned()));
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls)
                .allow_unknown_revocation_status()
                .build()
                .map_err(|error| bad(error.to_string()))?;
            builder.with_webpki_verifier(verifier)
        }
        None => builder.with_root_certificates(roots),
    };
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certificates("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|error| TlsConfigError::Read {
                what: "client key",
                path: key.clone(),
                reason: error.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| TlsConfigError::BadClientCertificate(error.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let read_error = |reason: String| TlsConfigError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| read_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The name a server's certificate must be valid for: the URI's host (an IP address host is
/// checked against the certificate's IP addresses).
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).ok()
}

/// A failed TLS connection as one line naming the cause, e.g.
/// `TLS: certificate not valid for name "pbx.example.com"`.
pub(crate) fn describe_failure(error: &io::Error, name: &ServerName<'_>) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return format!("TLS: {error}");
    };
    let name = name.to_str();
    match tls {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::NotValidForName => {
                format!("TLS: certificate not valid for name \"{name}\"")
            }
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "TLS: certificate not valid for name \"{name}\" (it is for {})",
                presented.join(", ")
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("TLS: certificate of \"{name}\" expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("TLS: certificate of \"{name}\" not valid yet (check the clock)")
            }
            CertificateError::UnknownIssuer => format!(
                "TLS: certificate of \"{name}\" not trusted (unknown issuer; add its CA with \
                 --ca-file / ca_file)"
            ),
            CertificateError::Revoked => format!("TLS: certificate of \"{name}\" revoked"),
            CertificateError::BadSignature => {
                format!("TLS: certificate of \"{name}\" has a bad signature")
            }
            other => format!("TLS: certificate of \"{name}\" rejected ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "TLS: \"{name}\" refused the handshake ({alert:?}; does it require a client \
             certificate?)"
        ),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_name_their_cause() {
        let name = server_name("pbx.example.com").unwrap();
        let wrap = |error: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, error);
        let wrong_host = wrap(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert_eq!(
            describe_failure(&wrong_host, &name),
            "TLS: certificate not valid for name \"pbx.example.com\""
        );
        let expired = wrap(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert!(describe_failure(&expired, &name).contains("expired"));
        let untrusted = wrap(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert!(describe_failure(&untrusted, &name).contains("not trusted"));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(describe_failure(&refused, &name).starts_with("TLS: "));
    }

    #[test]
    fn ip_hosts_are_ip_names() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("sbc.example.com"),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name").is_none());
    }

    #[test]
    fn unreadable_or_empty_ca_files_are_errors() {
        let missing = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        assert!(matches!(
            client_config(&missing),
            Err(TlsConfigError::Read { .. })
        ));
        let dir = std::env::temp_dir().join(format!("homeagent-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            ca_file: Some(empty),
            ..TlsSettings::default()
        };
        assert!(matches!(
            client_config(&settings),
            Err(TlsConfigError::NoCertificate { .. })
        ));
        assert!(client_config(&TlsSettings::default()).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }
}
