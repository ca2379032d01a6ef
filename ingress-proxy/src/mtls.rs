//! Client certificates (`auth-tls-*`): the handshake asks for a certificate when
//! the SNI host's routes want one, the chain is verified against the host's
//! `auth-tls-secret` CA after the handshake, and each request is let through or
//! answered as nginx does ([`ingress_core::auth::client_cert::gate`]).
//!
//! - The TLS listener reads the ClientHello first (tokio-rustls
//!   `LazyConfigAcceptor`) and picks the configuration of the SNI host (exact,
//!   then one-label wildcard, then a rule without host): one that requests (never
//!   requires) a client certificate, naming the CA's subjects as hints. The
//!   handshake checks the client's signature (proof of the key) but completes
//!   whatever the chain, as nginx does, so that the request can be answered 400
//!   (or redirected to `auth-tls-error-page`) rather than the connection cut.
//! - The chain is then verified with webpki against the CA, for client auth,
//!   with at most `auth-tls-verify-depth - 1` intermediates between the
//!   certificate and the CA (OpenSSL's depth counts the CA).
//! - A request whose host needs a client certificate on a connection that was
//!   set up for another host's (or no) client-certificate configuration is
//!   answered 421 Misdirected Request (as nginx when Host and SNI differ); on the
//!   plain HTTP listener there is no certificate: `on` answers 400, `optional`
//!   passes with `ssl-client-verify: NONE`.
//! - A host whose CA Secret could not be read answers 503 (fail closed).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderValue, StatusCode};
use ingress_core::annotations::ClientTlsPolicy;
use ingress_core::annotations::client_tls::ErrorPage;
use ingress_core::auth::client_cert::{self, Gate, PeerCertificate, Verification};
use ingress_core::routing::RouteHost;
use ingress_core::{Decision, RouteTable, Scheme};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{Acceptor, ResolvesServerCert};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme, version};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::live::LiveTable;

/// The client-certificate configuration of one host, as the handshake and the
/// requests use it.
#[derive(Debug)]
pub(crate) struct HostClientAuth {
    policy: ClientTlsPolicy,
    /// Identifies the configuration (CA, mode, depth) across table swaps.
    fingerprint: u64,
    /// Empty: the CA could not be read; the host fails closed.
    anchors: Vec<TrustAnchor<'static>>,
    verifier: Arc<RequestCertificate>,
    config: OnceLock<Arc<ServerConfig>>,
}

/// What the handshake learnt of a connection's client certificate (a request
/// extension on every request of a connection set up for client certificates).
#[derive(Debug, Clone)]
pub(crate) struct ClientAuth {
    fingerprint: u64,
    /// How the certificate fared.
    pub(crate) verification: Verification,
    /// The certificate, when the client sent one.
    pub(crate) certificate: Option<PeerCertificate>,
}

impl ClientAuth {
    /// Set `ssl-client-verify`, `-subject-dn`, `-issuer-dn` (and `ssl-client-cert`
    /// with `pass`) as ingress-nginx sends them upstream.
    pub(crate) fn upstream_headers(&self, pass: bool, h: &mut HeaderMap) {
        let mut set = |name: &'static str, v: &str| {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(name, v);
            }
        };
        set("ssl-client-verify", &self.verification.header_value());
        if let Some(c) = &self.certificate {
            set("ssl-client-subject-dn", &c.subject_dn);
            set("ssl-client-issuer-dn", &c.issuer_dn);
            if pass {
                set("ssl-client-cert", &c.escaped_pem);
            }
        }
    }
}

/// Every host's client-certificate configuration of one table.
#[derive(Debug, Default)]
pub(crate) struct ClientAuthSet {
    hosts: Vec<(RouteHost, Arc<HostClientAuth>)>,
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

impl ClientAuthSet {
    pub(crate) fn new(table: &RouteTable) -> Self {
        let mut hosts: Vec<(RouteHost, Arc<HostClientAuth>)> = Vec::new();
        for r in table.routes() {
            let p = &r.host_policy().client_tls;
            if !p.requests_certificate() || hosts.iter().any(|(h, _)| h == r.host()) {
                continue;
            }
            let anchors: Vec<TrustAnchor<'static>> = p
                .ca_certificates
                .iter()
                .filter_map(|c| {
                    webpki::anchor_from_trusted_cert(c)
                        .ok()
                        .map(|a| a.to_owned())
                })
                .collect();
            let anchors = if anchors.len() == p.ca_certificates.len() {
                anchors
            } else {
                Vec::new()
            };
            let mut hash = DefaultHasher::new();
            p.ca_certificates.hash(&mut hash);
            p.verify.hash(&mut hash);
            p.verify_depth.hash(&mut hash);
            let hints = anchors
                .iter()
                .map(|a| DistinguishedName::in_sequence(a.subject.as_ref()))
                .collect();
            hosts.push((
                r.host().clone(),
                Arc::new(HostClientAuth {
                    policy: p.clone(),
                    fingerprint: hash.finish() | 1,
                    anchors,
                    verifier: Arc::new(RequestCertificate {
                        hints,
                        algorithms: algorithms(),
                    }),
                    config: OnceLock::new(),
                }),
            ));
        }
        ClientAuthSet { hosts }
    }

    /// The set of `table`, an incremental update of the table of `previous`: the
    /// same set (its objects shared) when no touched host asks for client
    /// certificates, before or after; else made again from `table`.
    pub(crate) fn patched(
        previous: &ClientAuthSet,
        table: &RouteTable,
        splices: &[ingress_core::compile::RouteSplice],
    ) -> Self {
        let touched = splices.iter().any(|s| {
            previous.for_host(&s.host).is_some()
                || s.new.clone().any(|i| {
                    table
                        .routes()
                        .get(i)
                        .is_some_and(|r| r.host_policy().client_tls.requests_certificate())
                })
        });
        if touched {
            return ClientAuthSet::new(table);
        }
        ClientAuthSet {
            hosts: previous.hosts.clone(),
        }
    }

    fn for_host(&self, host: &RouteHost) -> Option<&Arc<HostClientAuth>> {
        self.hosts.iter().find(|(h, _)| h == host).map(|(_, a)| a)
    }

    /// The configuration for an SNI name: exact host, one-label wildcard, then a
    /// rule without host.
    fn for_sni(&self, sni: Option<&str>) -> Option<&Arc<HostClientAuth>> {
        let pattern = |s: &str| s.parse().ok().map(RouteHost::Pattern);
        if let Some(sni) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) {
            if let Some(a) = pattern(&sni).and_then(|h| self.for_host(&h)) {
                return Some(a);
            }
            if let Some((_, suffix)) = sni.split_once('.')
                && let Some(a) = pattern(&format!("*.{suffix}")).and_then(|h| self.for_host(&h))
            {
                return Some(a);
            }
        }
        self.for_host(&RouteHost::Any)
    }
}

impl HostClientAuth {
    fn verify(&self, chain: Option<&[CertificateDer<'static>]>) -> ClientAuth {
        let (verification, certificate) = match chain {
            None | Some([]) => (Verification::NoCertificate, None),
            Some(chain) => (
                self.verify_chain(chain),
                PeerCertificate::from_der(chain[0].as_ref()),
            ),
        };
        ClientAuth {
            fingerprint: self.fingerprint,
            verification,
            certificate,
        }
    }

    fn verify_chain(&self, chain: &[CertificateDer<'static>]) -> Verification {
        let failed = |reason: String, unknown_issuer| Verification::Failed {
            reason,
            unknown_issuer,
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Verification::NoCertificate;
        };
        let ee = match webpki::EndEntityCert::try_from(leaf) {
            Ok(ee) => ee,
            Err(e) => return failed(e.to_string(), false),
        };
        let max = usize::from(self.policy.verify_depth.saturating_sub(1));
        let depth = |p: &webpki::VerifiedPath<'_>| {
            if p.intermediate_certificates().count() > max {
                Err(webpki::Error::MaximumPathDepthExceeded)
            } else {
                Ok(())
            }
        };
        match ee.verify_for_usage(
            algorithms().all,
            &self.anchors,
            intermediates,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            Some(&depth),
        ) {
            Ok(_) => Verification::Verified,
            Err(e) => failed(e.to_string(), e == webpki::Error::UnknownIssuer),
        }
    }

    fn server_config(
        &self,
        resolver: &Arc<dyn ResolvesServerCert>,
    ) -> Result<Arc<ServerConfig>, rustls::Error> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&version::TLS13, &version::TLS12])?
            .with_client_cert_verifier(self.verifier.clone())
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(self.config.get_or_init(|| Arc::new(config)).clone())
    }
}

/// Asks for a client certificate, checks the client's signature with it, and
/// leaves the chain to [`HostClientAuth::verify`] after the handshake.
#[derive(Debug)]
struct RequestCertificate {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS handshake: the SNI host's configuration, then the client
/// certificate's verification.
#[derive(Debug, Clone)]
pub(crate) struct Handshaker {
    pub(crate) live: Arc<LiveTable>,
    pub(crate) resolver: Arc<dyn ResolvesServerCert>,
    pub(crate) default: Arc<ServerConfig>,
}

impl Handshaker {
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> io::Result<(TlsStream<TcpStream>, Option<Arc<ClientAuth>>)> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp).await?;
        let live = self.live.load();
        let host = live
            .client_auth
            .for_sni(start.client_hello().server_name())
            .cloned();
        let config = match &host {
            Some(h) => h.server_config(&self.resolver).map_err(io::Error::other)?,
            None => self.default.clone(),
        };
        let stream = start.into_stream(config).await?;
        let auth = host.map(|h| Arc::new(h.verify(stream.get_ref().1.peer_certificates())));
        Ok((stream, auth))
    }
}

/// The answer a request gets when its host's client-certificate check fails
/// (status, `Location`, reason); `None`: go on.
pub(crate) fn gate(
    live: &crate::live::Live,
    d: &Decision<'_>,
    conn: Option<&Arc<ClientAuth>>,
    scheme: Scheme,
) -> Option<(StatusCode, Option<String>, &'static str)> {
    let route = d.route()?;
    let p = &route.host_policy().client_tls;
    if !p.requests_certificate() {
        return None;
    }
    // The plain listener still redirects to HTTPS (ssl-redirect).
    if scheme == Scheme::Http && matches!(d, Decision::Redirect(_)) {
        return None;
    }
    let Some(host) = live
        .client_auth
        .for_host(route.host())
        .filter(|h| !h.anchors.is_empty())
    else {
        return Some((StatusCode::SERVICE_UNAVAILABLE, None, "unenforced-policy"));
    };
    let none = ClientAuth {
        fingerprint: 0,
        verification: Verification::NoCertificate,
        certificate: None,
    };
    let conn: &ClientAuth = match conn {
        Some(c) if c.fingerprint == host.fingerprint => c,
        // Set up for another host's configuration (or none): 421, as nginx.
        _ if scheme == Scheme::Https => {
            return Some((StatusCode::MISDIRECTED_REQUEST, None, "misdirected-request"));
        }
        _ => &none,
    };
    let cns = conn
        .certificate
        .as_ref()
        .map_or(&[][..], |c| c.common_names.as_slice());
    let why = match client_cert::gate(p, &conn.verification, cns) {
        Gate::Pass => return None,
        Gate::CnMismatch => {
            return Some((
                StatusCode::FORBIDDEN,
                None,
                "client certificate unauthorized",
            ));
        }
        Gate::NoCertificate => "No required SSL certificate was sent",
        Gate::CertificateError => "The SSL certificate error",
    };
    match &p.error_page {
        Some(ErrorPage::Url(u)) => Some((StatusCode::FOUND, Some(u.to_string()), "")),
        Some(ErrorPage::Path(path)) => Some((StatusCode::FOUND, Some(path.clone()), "")),
        None => Some((StatusCode::BAD_REQUEST, None, why)),
    }
}
