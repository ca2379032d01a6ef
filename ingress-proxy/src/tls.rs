//! TLS: certificates picked by SNI from the live table, a default certificate, and
//! the rustls server configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1, ring).

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::live::LiveTable;

/// Errors setting TLS up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// The default certificate could not be generated.
    #[error("generating the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file holds no usable certificate or key.
    #[error("{what}: {message}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// rustls refused the key or the configuration.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The certificate served when no TLS binding covers the SNI name (or there is no
/// SNI): the given PEM chain and key, or a fresh self-signed one.
pub fn default_certificate(
    pem: Option<(&[u8], &[u8])>,
) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    let (chain, key) = match pem {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsSetupError::Pem {
                    what: "default certificate",
                    message: e.to_string(),
                })?;
            if chain.is_empty() {
                return Err(TlsSetupError::Pem {
                    what: "default certificate",
                    message: "no CERTIFICATE block".into(),
                });
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsSetupError::Pem {
                what: "default key",
                message: e.to_string(),
            })?;
            (chain, key)
        }
        None => {
            let generated =
                rcgen::generate_simple_self_signed(vec!["ingress-proxy.invalid".to_owned()])?;
            let key =
                PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(|e| {
                    TlsSetupError::Pem {
                        what: "generated key",
                        message: e.to_owned(),
                    }
                })?;
            (vec![generated.cert.der().clone()], key)
        }
    };
    let provider = rustls::crypto::ring::default_provider();
    let key = provider.key_provider.load_private_key(key)?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

/// Picks the certificate for each handshake from the live table (one atomic load):
/// the exact SNI host, then a one-label wildcard, else the table's default
/// certificate (the gateway config's), else the listener's default.
/// Certificates rotate with the table: a changed Secret file means a new table.
#[derive(Debug)]
pub struct SniResolver {
    live: Arc<LiveTable>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// A resolver over `live`, falling back to `default`.
    pub fn new(live: Arc<LiveTable>, default: Arc<CertifiedKey>) -> Self {
        SniResolver { live, default }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let live = self.live.load();
        let found = hello
            .server_name()
            .and_then(|sni| live.certificate_for(sni))
            .or_else(|| live.default_certificate().cloned());
        Some(found.unwrap_or_else(|| self.default.clone()))
    }
}

/// The server configuration: TLS 1.3 and 1.2 with the ring provider, ALPN `h2` then
/// `http/1.1`, certificates from `resolver`.
pub fn server_config(resolver: Arc<SniResolver>) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The rustls form of a certificate the core parsed (chain and private key); `Err`
/// when rustls cannot use the key.
pub(crate) fn rustls_key(
    c: &ingress_core::tls::CertifiedKey,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    let key = provider.key_provider.load_private_key(c.key.clone_key())?;
    Ok(Arc::new(CertifiedKey::new(c.chain.clone(), key)))
}
