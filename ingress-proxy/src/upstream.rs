//! How a request reaches its upstream: the protocol (`backend-protocol`) and TLS to
//! the upstream (`proxy-ssl-*`).
//!
//! | backend-protocol | to the upstream |
//! |---|---|
//! | `HTTP` (default) | HTTP/1.1 in clear text |
//! | `HTTPS` | HTTP/1.1 over TLS (ALPN `http/1.1`, as nginx's `proxy_pass https://`) |
//! | `AUTO_HTTP` | `HTTPS` for clients that came over TLS, else `HTTP` |
//! | `GRPC`, `HTTP2` | HTTP/2 in clear text, prior knowledge (h2c) |
//! | `GRPCS` | HTTP/2 over TLS (ALPN `h2`) |
//!
//! TLS follows ingress-nginx: the upstream certificate is **not** verified unless
//! `proxy-ssl-verify: on`, which verifies it against `proxy-ssl-secret`'s `ca.crt`
//! for the name `proxy-ssl-name` (default: the Service's DNS name
//! `service.namespace.svc`). Without a `ca.crt` no root is trusted, so verification
//! fails (502), as nginx without `proxy_ssl_trusted_certificate`. SNI is sent only
//! with `proxy-ssl-server-name: on`. `proxy-ssl-protocols` and `proxy-ssl-ciphers`
//! restrict the versions and TLS 1.2 suites offered; `tls.crt`/`tls.key` of the
//! secret are presented when the upstream asks for a client certificate.
//!
//! Each distinct (timeouts, protocol, TLS settings) gets its own pooled client, so
//! connections are pooled per endpoint and TLS settings. HTTP/2 clients are also
//! bound to one endpoint each: the pooled client keys connections by the URI's
//! authority, which over HTTP/2 is the request's host (`:authority`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ingress_core::annotations::backend::{BackendProtocol, UpstreamTls};
use ingress_core::annotations::client_tls::{CipherSuite, TlsVersion};
use ingress_core::routing::EndpointAddr;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::connect::TimedConnector;
use crate::service::ProxyBody;

/// A pooled upstream client.
pub(crate) type UpstreamClient = Client<TimedConnector, ProxyBody>;

/// How one request is carried to its upstream: HTTP/1.1 or HTTP/2, clear or TLS.
/// Borrowed from the route table: working it out allocates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Wire<'a> {
    /// HTTP/2 (prior knowledge in clear text, ALPN `h2` over TLS).
    pub(crate) h2: bool,
    /// TLS to the upstream.
    pub(crate) tls: Option<TlsRef<'a>>,
    /// The endpoint an HTTP/2 client is bound to (see [`Wire::at`]).
    pub(crate) endpoint: Option<&'a EndpointAddr>,
}

/// TLS to one upstream: the name verified (and sent as SNI when asked) and the
/// route's `proxy-ssl-*` (`None`: the defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsRef<'a> {
    pub(crate) name: Name<'a>,
    pub(crate) settings: Option<&'a UpstreamTls>,
}

/// The name an upstream's certificate is verified for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Name<'a> {
    /// `proxy-ssl-name` (or a mirror URL's host).
    Given(&'a str),
    /// The Service's DNS name, `name.namespace.svc`.
    Service { namespace: &'a str, name: &'a str },
}

impl Name<'_> {
    fn pieces(&self) -> [&str; 4] {
        match *self {
            Name::Given(n) => [n, "", "", ""],
            Name::Service { namespace, name } => [name, ".", namespace, ".svc"],
        }
    }

    fn render(&self) -> String {
        self.pieces().concat()
    }

    fn is(&self, s: &str) -> bool {
        let mut rest = s;
        for p in self.pieces() {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }
}

impl<'a> Wire<'a> {
    /// The wire for a route's backend policy, for a client that came over TLS when
    /// `client_https`; `service` is (namespace, name) of the backend, for the default
    /// name to verify.
    pub(crate) fn for_backend(
        protocol: BackendProtocol,
        tls: Option<&'a UpstreamTls>,
        client_https: bool,
        (namespace, name): (&'a str, &'a str),
    ) -> Wire<'a> {
        let h2 = matches!(
            protocol,
            BackendProtocol::Grpc | BackendProtocol::Grpcs | BackendProtocol::Http2
        );
        let tls = protocol.uses_tls(client_https).then(|| TlsRef {
            name: match tls.and_then(|t| t.name.as_deref()) {
                Some(n) => Name::Given(n),
                None => Name::Service { namespace, name },
            },
            settings: tls,
        });
        Wire {
            h2,
            tls,
            endpoint: None,
        }
    }

    /// This wire bound to `endpoint`. HTTP/2 clients are made per endpoint: the
    /// pooled client keys its connections by the URI's authority, which for HTTP/2
    /// must be the request's host (`:authority`), not the endpoint's address.
    pub(crate) fn at(self, endpoint: &'a EndpointAddr) -> Wire<'a> {
        Wire {
            endpoint: Some(endpoint),
            ..self
        }
    }

    /// Whether this is plain HTTP/1.1 (the default client).
    pub(crate) fn is_default(&self) -> bool {
        !self.h2 && self.tls.is_none()
    }

    /// The scheme of the URI the client is given.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// A hash of the cheap parts (not the certificates), to find the client.
    fn fingerprint(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        self.h2.hash(&mut h);
        self.endpoint.hash(&mut h);
        if let Some(t) = &self.tls {
            for p in t.name.pieces() {
                h.write(p.as_bytes());
            }
            if let Some(s) = t.settings {
                (s.verify, s.server_name, &s.protocols, &s.ciphers, &s.secret).hash(&mut h);
            }
        }
        h.finish()
    }
}

/// A [`Wire`], owned, as a cache key.
#[derive(Debug)]
pub(crate) struct OwnedWire {
    h2: bool,
    endpoint: Option<EndpointAddr>,
    tls: Option<(String, Option<UpstreamTls>)>,
}

impl OwnedWire {
    fn of(w: &Wire<'_>) -> Self {
        OwnedWire {
            h2: w.h2,
            endpoint: w.endpoint.cloned(),
            tls: w.tls.map(|t| (t.name.render(), t.settings.cloned())),
        }
    }

    /// Whether `w` describes this wire (the certificates compared byte for byte).
    fn matches(&self, w: &Wire<'_>) -> bool {
        self.h2 == w.h2
            && self.endpoint.as_ref() == w.endpoint
            && match (&self.tls, &w.tls) {
                (None, None) => true,
                (Some((name, settings)), Some(t)) => {
                    t.name.is(name) && settings.as_ref() == t.settings
                }
                _ => false,
            }
    }
}

/// Why a client for a wire could not be made (the request answers 502).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// `proxy-ssl-name` (or the Service name) is not a valid TLS server name.
    #[error("`{0}` is not a valid TLS server name")]
    Name(String),
    /// `proxy-ssl-verify: on` without a `ca.crt` to verify with.
    #[error("proxy-ssl-verify is on but proxy-ssl-secret has no ca.crt")]
    NoTrust,
    /// rustls refused the configuration (a key it cannot use, no common version...).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The CA certificates could not be used.
    #[error("ca.crt cannot verify: {0}")]
    Verifier(String),
}

/// TLS to one upstream, ready to connect.
pub(crate) struct TlsTarget {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The rustls suite for a `proxy-ssl-ciphers` entry.
fn rustls_suite(c: CipherSuite) -> rustls::CipherSuite {
    use rustls::CipherSuite as R;
    match c {
        CipherSuite::EcdheEcdsaAes128GcmSha256 => R::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::EcdheEcdsaAes256GcmSha384 => R::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::EcdheEcdsaChacha20Poly1305 => R::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite::EcdheRsaAes128GcmSha256 => R::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        CipherSuite::EcdheRsaAes256GcmSha384 => R::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        CipherSuite::EcdheRsaChacha20Poly1305 => R::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    }
}

/// The ring provider, with the TLS 1.2 suites limited to `ciphers` (in that order)
/// when any are given; the TLS 1.3 suites are kept.
fn provider(ciphers: &[CipherSuite]) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if !ciphers.is_empty() {
        let all = std::mem::take(&mut p.cipher_suites);
        let tls13 = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied();
        let tls12 = ciphers
            .iter()
            .filter_map(|c| all.iter().find(|s| s.suite() == rustls_suite(*c)).copied());
        p.cipher_suites = tls13.chain(tls12).collect();
    }
    p
}

/// The rustls client configuration and server name for `tls`, offering `h2` or
/// `http/1.1` by ALPN.
pub(crate) fn tls_target(tls: &TlsRef<'_>, h2: bool) -> Result<TlsTarget, WireError> {
    let defaults = UpstreamTls::default();
    let s = tls.settings.unwrap_or(&defaults);
    let provider = Arc::new(provider(&s.ciphers));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = if s.protocols.is_empty() {
        vec![&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        s.protocols
            .iter()
            .rev()
            .filter_map(|v| match v {
                TlsVersion::Tls13 => Some(&rustls::version::TLS13),
                TlsVersion::Tls12 => Some(&rustls::version::TLS12),
                _ => None,
            })
            .collect()
    };
    let verifier: Arc<dyn ServerCertVerifier> = if s.verify {
        let ca = s.resolved.as_ref().map_or(&[][..], |r| r.ca.as_slice());
        if ca.is_empty() {
            return Err(WireError::NoTrust);
        }
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots.add(c.clone())?;
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| WireError::Verifier(e.to_string()))?
    } else {
        Arc::new(NoVerify(provider.clone()))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = s.resolved.as_ref().and_then(|r| r.client.as_deref());
    let mut config = match client {
        Some(c) => builder.with_client_auth_cert(c.chain.clone(), c.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = s.server_name;
    config.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let name = tls.name.render();
    let name = ServerName::try_from(name.clone()).map_err(|_| WireError::Name(name))?;
    Ok(TlsTarget {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        name,
    })
}

/// A pooled client for `wire` whose connects (TCP, then TLS) time out after
/// `connect` and whose writes may stay blocked for `send`.
pub(crate) fn client_for_wire(
    connect: Duration,
    send: Duration,
    idle: Duration,
    wire: &Wire<'_>,
) -> Result<UpstreamClient, WireError> {
    let tls = match &wire.tls {
        Some(t) => Some(Arc::new(tls_target(t, wire.h2)?)),
        None => None,
    };
    let fixed = wire
        .endpoint
        .and_then(|e| format!("http://{e}").parse::<http::Uri>().ok());
    Ok(client(connect, send, idle, wire.h2, tls, fixed))
}

/// A pooled client speaking HTTP/2 (prior knowledge or ALPN) when `h2`, else
/// HTTP/1.1, over TLS when `tls` is given.
pub(crate) fn client(
    connect: Duration,
    send: Duration,
    idle: Duration,
    h2: bool,
    tls: Option<Arc<TlsTarget>>,
    fixed: Option<http::Uri>,
) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(idle)
        .pool_timer(TokioTimer::new())
        .http2_only(h2)
        .http1_max_buf_size(crate::pool::UPSTREAM_MAX_BUF)
        .timer(TokioTimer::new());
    builder.build(TimedConnector {
        inner: connector,
        send,
        connect,
        tls,
        fixed,
    })
}

/// How many clients (pools) are kept beside the default one (HTTP/2 ones are per
/// endpoint); past it the cache starts over (clients in use live on until their
/// requests end).
pub(crate) const MAX_CLIENTS: usize = 1024;

/// (connect timeout, send timeout, wire fingerprint).
type ClientKey = (Duration, Duration, u64);

/// The clients beside the default one, by [`ClientKey`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Clients {
    by_key: HashMap<ClientKey, Vec<(Arc<OwnedWire>, UpstreamClient)>>,
    len: usize,
}

impl Clients {
    /// The client for these timeouts and wire, if made already (no allocation).
    pub(crate) fn get(
        &self,
        connect: Duration,
        send: Duration,
        wire: &Wire<'_>,
    ) -> Option<UpstreamClient> {
        self.by_key
            .get(&(connect, send, wire.fingerprint()))?
            .iter()
            .find(|(w, _)| w.matches(wire))
            .map(|(_, c)| c.clone())
    }

    /// This cache with `client` added for the timeouts and wire (unless one is
    /// there already); starts over past [`MAX_CLIENTS`].
    pub(crate) fn with(
        &self,
        connect: Duration,
        send: Duration,
        wire: &Wire<'_>,
        client: &UpstreamClient,
    ) -> Clients {
        if self.get(connect, send, wire).is_some() {
            return self.clone();
        }
        let mut next = if self.len >= MAX_CLIENTS {
            Clients::default()
        } else {
            self.clone()
        };
        next.by_key
            .entry((connect, send, wire.fingerprint()))
            .or_default()
            .push((Arc::new(OwnedWire::of(wire)), client.clone()));
        next.len += 1;
        next
    }
}

/// Accepts the upstream's certificate without verifying it (`proxy-ssl-verify:
/// off`, nginx's default), but still checks the handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_map_to_wires() {
        let svc = ("ns", "api");
        let w = Wire::for_backend(BackendProtocol::Http, None, true, svc);
        assert!(w.is_default());
        let w = Wire::for_backend(BackendProtocol::AutoHttp, None, false, svc);
        assert!(w.is_default());
        let w = Wire::for_backend(BackendProtocol::AutoHttp, None, true, svc);
        assert_eq!(
            w.tls.map(|t| t.name.render()).as_deref(),
            Some("api.ns.svc")
        );
        assert!(
            w.tls
                .is_some_and(|t| t.name.is("api.ns.svc") && !t.name.is("api.ns.svc.x"))
        );
        let w = Wire::for_backend(BackendProtocol::Grpc, None, true, svc);
        assert!(w.h2 && w.tls.is_none());
        let w = Wire::for_backend(BackendProtocol::Grpcs, None, false, svc);
        assert!(w.h2 && w.tls.is_some() && w.scheme() == "https");
    }

    #[test]
    fn clients_are_found_by_wire() {
        let settings = UpstreamTls::default();
        let a = Wire::for_backend(BackendProtocol::Https, Some(&settings), false, ("ns", "a"));
        let b = Wire::for_backend(BackendProtocol::Https, Some(&settings), false, ("ns", "b"));
        let d = Duration::from_secs(1);
        let client = client(d, d, d, false, None, None);
        let cache = Clients::default().with(d, d, &a, &client);
        assert!(cache.get(d, d, &a).is_some());
        assert!(cache.get(d, d, &b).is_none());
        assert!(cache.get(d, d * 2, &a).is_none());
        let mut cache = cache;
        for i in 0..MAX_CLIENTS {
            let name = format!("s{i}");
            let w = Wire::for_backend(BackendProtocol::Https, None, false, ("ns", &name));
            cache = cache.with(d, d, &w, &client);
        }
        assert!(cache.len <= MAX_CLIENTS, "the cache is bounded");
    }

    #[test]
    fn verify_without_a_ca_is_refused() {
        let mut settings = UpstreamTls::default();
        settings.verify = true;
        let tls = TlsRef {
            name: Name::Given("api.ns.svc"),
            settings: Some(&settings),
        };
        assert!(matches!(tls_target(&tls, false), Err(WireError::NoTrust)));
        let tls = TlsRef {
            name: Name::Given("not a name"),
            settings: None,
        };
        assert!(matches!(tls_target(&tls, false), Err(WireError::Name(_))));
    }
}
