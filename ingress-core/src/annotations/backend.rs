//! The `backend` family: the protocol spoken to the upstream, TLS to the upstream
//! (`proxy-ssl-*`), HTTP version, `Connection` header, Set-Cookie rewriting and
//! `service-upstream`; `ssl-passthrough` is recognised and not enforced.
//!
//! Scope: ingress-nginx applies these to the paths of the Ingress that carries them,
//! and so does this gateway. Higress applies `backend-protocol` and `proxy-ssl-*` per
//! Service (an Istio DestinationRule), so two Ingresses pointing at one Service with
//! different values affect each other there; here they do not.
//!
//! `proxy-ssl-*` without `proxy-ssl-secret`: ingress-nginx ignores every one of them;
//! this gateway applies them (reported), and `proxy-ssl-verify: on` then verifies
//! against the gateway's default trust roots.
//!
//! `FCGI` upstreams cannot be served: an Ingress asking for one fails closed
//! (`annotation-unenforceable`) rather than talk HTTP to a FastCGI server.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::diagnostics::Code;
use crate::tls::CertifiedKey;

use super::client_tls::{self, CipherSuite, TlsVersion};
use super::spec::{Risk, Scope, Support};
use super::values::{self, ObjectName};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// `backend-protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum BackendProtocol {
    /// HTTP/1.1 in clear text.
    #[default]
    Http,
    /// HTTP/1.1 over TLS (as ingress-nginx's `proxy_pass https://`).
    Https,
    /// The client's scheme: HTTPS to the upstream for HTTPS clients, else HTTP.
    AutoHttp,
    /// gRPC over clear-text HTTP/2 (prior knowledge).
    Grpc,
    /// gRPC over TLS (HTTP/2 by ALPN).
    Grpcs,
    /// Higress `HTTP2`: clear-text HTTP/2 (prior knowledge).
    Http2,
}

impl BackendProtocol {
    /// Whether the upstream connection uses TLS for a client that came over
    /// `client_https`.
    pub fn uses_tls(self, client_https: bool) -> bool {
        match self {
            BackendProtocol::Https | BackendProtocol::Grpcs => true,
            BackendProtocol::AutoHttp => client_https,
            BackendProtocol::Http | BackendProtocol::Grpc | BackendProtocol::Http2 => false,
        }
    }
}

/// TLS to the upstream (`proxy-ssl-*`), used when the protocol uses TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct UpstreamTls {
    /// `proxy-ssl-secret`: `tls.crt`/`tls.key` presented to the upstream and `ca.crt`
    /// that verifies it. The compile step resolves it (same namespace unless allowed).
    pub secret: Option<ObjectName>,
    /// `proxy-ssl-verify`: verify the upstream certificate (against the secret's
    /// `ca.crt`, or the gateway's default roots without a secret).
    pub verify: bool,
    /// `proxy-ssl-verify-depth` (parsed; not applied).
    pub verify_depth: u8,
    /// `proxy-ssl-name`: the name verified and sent as SNI. `None`: the upstream
    /// host (the Service's DNS name).
    pub name: Option<String>,
    /// `proxy-ssl-server-name`: send SNI.
    pub server_name: bool,
    /// `proxy-ssl-protocols`: TLS 1.2 and/or 1.3. Empty: both.
    pub protocols: Vec<TlsVersion>,
    /// `proxy-ssl-ciphers`: TLS 1.2 suites in order. Empty: the default list.
    pub ciphers: Vec<CipherSuite>,
    /// The content of `proxy-ssl-secret`, filled in by compile once the Secret is
    /// found and readable (`None` when parsing alone, or without a secret).
    pub resolved: Option<UpstreamTlsSecret>,
}

/// The content of a `proxy-ssl-secret`, parsed: what the data plane presents to the
/// upstream and what it verifies the upstream with. `Debug` never prints key
/// material.
#[derive(Clone)]
#[non_exhaustive]
pub struct UpstreamTlsSecret {
    /// `tls.crt` and `tls.key`: the client certificate (upstream mTLS).
    pub client: Option<Arc<CertifiedKey>>,
    /// `ca.crt`: the certificates trusted to verify the upstream's.
    pub ca: Vec<CertificateDer<'static>>,
}

impl UpstreamTlsSecret {
    /// Parse a Secret's `tls.crt`, `tls.key` and `ca.crt` (each optional, but the
    /// first two go together and at least one part must be there).
    pub fn from_parts(
        crt: Option<&[u8]>,
        key: Option<&[u8]>,
        ca: Option<&[u8]>,
    ) -> Result<Self, values::Invalid> {
        let client = match (crt, key) {
            (Some(c), Some(k)) => Some(Arc::new(
                CertifiedKey::from_pem(c, k).map_err(|e| e.to_string())?,
            )),
            (None, None) => None,
            (Some(_), None) => return Err("it has tls.crt but no tls.key".to_owned()),
            (None, Some(_)) => return Err("it has tls.key but no tls.crt".to_owned()),
        };
        let ca = match ca {
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("ca.crt is not valid PEM: {e}"))?;
                if certs.is_empty() {
                    return Err("ca.crt holds no PEM CERTIFICATE block".to_owned());
                }
                certs
            }
            None => Vec::new(),
        };
        if client.is_none() && ca.is_empty() {
            return Err("it has none of tls.crt/tls.key and ca.crt".to_owned());
        }
        Ok(UpstreamTlsSecret { client, ca })
    }

    fn key_bytes(&self) -> Option<(&[CertificateDer<'static>], &[u8])> {
        self.client
            .as_deref()
            .map(|c| (c.chain.as_slice(), c.key.secret_der()))
    }
}

impl PartialEq for UpstreamTlsSecret {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca && self.key_bytes() == other.key_bytes()
    }
}

impl Eq for UpstreamTlsSecret {}

impl Hash for UpstreamTlsSecret {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ca.hash(state);
        self.key_bytes().hash(state);
    }
}

impl std::fmt::Debug for UpstreamTlsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTlsSecret")
            .field("client", &self.client)
            .field("ca", &self.ca.len())
            .finish()
    }
}

impl Default for UpstreamTls {
    fn default() -> Self {
        UpstreamTls {
            secret: None,
            verify: false,
            verify_depth: 1,
            name: None,
            server_name: false,
            protocols: Vec::new(),
            ciphers: Vec::new(),
            resolved: None,
        }
    }
}

/// `proxy-http-version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0 (no connection reuse).
    Http10,
    /// HTTP/1.1.
    #[default]
    Http11,
}

/// `connection-proxy-header`: the `Connection` value sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionHeader {
    /// `close`: the upstream connection is not reused.
    Close,
    /// `keep-alive`.
    KeepAlive,
}

/// A `proxy-cookie-domain` / `proxy-cookie-path` rewrite of upstream `Set-Cookie`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CookieRewrite {
    /// The value matched: a domain (ASCII case-insensitive, a leading `.` of the
    /// cookie's attribute ignored) or a path prefix.
    pub from: String,
    /// The replacement.
    pub to: String,
}

impl CookieRewrite {
    /// The new `Domain` attribute for `domain`, if this rewrite matches it.
    pub fn rewrite_domain(&self, domain: &str) -> Option<String> {
        let d = domain.strip_prefix('.').unwrap_or(domain);
        d.eq_ignore_ascii_case(&self.from).then(|| self.to.clone())
    }

    /// The new `Path` attribute for `path`, if this rewrite's prefix matches it.
    pub fn rewrite_path(&self, path: &str) -> Option<String> {
        path.strip_prefix(self.from.as_str())
            .map(|rest| format!("{}{rest}", self.to))
    }
}

/// Upstream protocol and TLS of one Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BackendPolicy {
    /// `backend-protocol` (default HTTP).
    pub protocol: BackendProtocol,
    /// `proxy-ssl-*`, when any is set.
    pub upstream_tls: Option<UpstreamTls>,
    /// `service-upstream`: connect to the Service's cluster IP and port instead of
    /// its endpoints (no per-endpoint balancing, affinity or next-upstream retries).
    pub service_upstream: bool,
    /// `proxy-http-version` (default 1.1).
    pub http_version: HttpVersion,
    /// `connection-proxy-header`. `None`: the gateway manages `Connection` itself
    /// (upgrade requests keep theirs).
    pub connection_header: Option<ConnectionHeader>,
    /// `proxy-cookie-domain`, unless `off`.
    pub cookie_domain: Option<CookieRewrite>,
    /// `proxy-cookie-path`, unless `off`.
    pub cookie_path: Option<CookieRewrite>,
}

fn on_off(s: &str) -> Result<bool, values::Invalid> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected `on` or `off`".into()),
    }
}

/// `off` or `<from> <to>`, each checked by `item`.
fn cookie_rewrite(
    s: &str,
    item: fn(&str) -> Result<String, values::Invalid>,
) -> Result<Option<CookieRewrite>, values::Invalid> {
    if s == "off" {
        return Ok(None);
    }
    if s.contains(['~', '$']) {
        return Err(
            "regexes (`~`) and nginx variables are not supported; write literal values".into(),
        );
    }
    let mut parts = s.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(from), Some(to), None) => Ok(Some(CookieRewrite {
            from: item(from)?,
            to: item(to)?,
        })),
        _ => Err("expected `off` or `<from> <to>`".into()),
    }
}

fn cookie_domain(s: &str) -> Result<String, values::Invalid> {
    values::host(s.strip_prefix('.').unwrap_or(s), false)
}

fn cookie_path(s: &str) -> Result<String, values::Invalid> {
    values::path(s, false)
}

/// Parse `proxy-ssl-protocols`: space-separated `TLSv1`..`TLSv1.3`. Returns the
/// offered versions (sorted) and whether lower ones were dropped.
fn protocols(s: &str) -> Result<(Vec<TlsVersion>, bool), values::Invalid> {
    let mut out = Vec::new();
    let mut dropped = false;
    for item in s.split_whitespace() {
        if item == "SSLv2" || item == "SSLv3" {
            dropped = true;
            continue;
        }
        let v = client_tls::tls_version(item)?;
        if v < TlsVersion::MIN_OFFERED {
            dropped = true;
        } else {
            out.push(v);
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err("the gateway offers only TLSv1.2 and TLSv1.3; the list names neither".into());
    }
    Ok((out, dropped))
}

const PROTOCOL: KeySpec = KeySpec::new("backend-protocol", Family::Backend)
    .grammar("`HTTP`, `HTTPS`, `AUTO_HTTP`, `GRPC`, `GRPCS`, `HTTP2` (Higress) or `FCGI` (case-insensitive)")
    .default("HTTP")
    .doc("Protocol to the upstream: HTTPS/GRPCS over TLS, GRPC/HTTP2 clear-text HTTP/2, AUTO_HTTP the client's scheme. FCGI cannot be served: the routes fail closed. Per Ingress (Higress: per Service).");
const SERVICE_UPSTREAM: KeySpec = KeySpec::new("service-upstream", Family::Backend)
    .grammar("boolean")
    .default("false")
    .doc("Connect to the Service's cluster IP and port instead of its endpoints (no affinity, no next-upstream retries).");
const SSL_SECRET: KeySpec = KeySpec::new("proxy-ssl-secret", Family::Backend)
    .grammar("`namespace/name` or `name` of a Secret")
    .doc("Client certificate (`tls.crt`, `tls.key`) presented to the upstream and `ca.crt` that verifies it (needs an HTTPS or GRPCS backend-protocol).")
    .risk(Risk::Medium);
const SSL_VERIFY: KeySpec = KeySpec::new("proxy-ssl-verify", Family::Backend)
    .grammar("`on` or `off`")
    .default("off")
    .doc("Verify the upstream certificate against proxy-ssl-secret's `ca.crt` (without a secret: the gateway's default roots).");
const SSL_VERIFY_DEPTH: KeySpec = KeySpec::new("proxy-ssl-verify-depth", Family::Backend)
    .grammar("whole number 0..255")
    .default("1")
    .doc("Upstream chain depth.")
    .support(Support::NotEnforced(
        "webpki builds the upstream chain itself and has no depth limit",
    ));
const SSL_CIPHERS: KeySpec = KeySpec::new("proxy-ssl-ciphers", Family::Backend)
    .grammar("OpenSSL cipher list")
    .default("DEFAULT (the gateway's list)")
    .doc("TLS 1.2 cipher suites offered to the upstream, in order.")
    .support(Support::Partial("only the ECDHE AEAD suites the gateway offers count; OpenSSL aliases and other suites are dropped"));
const SSL_PROTOCOLS: KeySpec = KeySpec::new("proxy-ssl-protocols", Family::Backend)
    .grammar("space-separated `TLSv1.2`, `TLSv1.3` (`SSLv2`, `SSLv3`, `TLSv1`, `TLSv1.1` are dropped, reported)")
    .default("TLSv1.2 TLSv1.3")
    .doc("TLS versions offered to the upstream.");
const SSL_NAME: KeySpec = KeySpec::new("proxy-ssl-name", Family::Backend)
    .grammar("host name (no variables)")
    .default("the upstream host")
    .doc("Name the upstream certificate is verified against, and sent as SNI with proxy-ssl-server-name.")
    .risk(Risk::High);
const SSL_SERVER_NAME: KeySpec = KeySpec::new("proxy-ssl-server-name", Family::Backend)
    .grammar("`on` or `off`")
    .default("off")
    .doc("Send SNI (proxy-ssl-name, else the upstream host) to the upstream.");
const HTTP_VERSION: KeySpec = KeySpec::new("proxy-http-version", Family::Backend)
    .grammar("`1.0` or `1.1`")
    .default("1.1")
    .doc("HTTP version to HTTP/1 upstreams (1.0: no connection reuse).");
const CONNECTION: KeySpec = KeySpec::new("connection-proxy-header", Family::Backend)
    .grammar("`close` or `keep-alive`")
    .default("derived from the request's Upgrade")
    .doc("`Connection` value sent upstream; `close` disables reuse of upstream connections.");
const COOKIE_DOMAIN: KeySpec = KeySpec::new("proxy-cookie-domain", Family::Backend)
    .grammar("`off` or `<from> <to>` (literal domains)")
    .default("off")
    .doc("Rewrite the Domain of upstream Set-Cookie headers equal to `from` (case-insensitive) to `to`.")
    .risk(Risk::Medium)
    .support(Support::Partial("literal domains only: no regex (`~`) and no variables"));
const COOKIE_PATH: KeySpec = KeySpec::new("proxy-cookie-path", Family::Backend)
    .grammar("`off` or `<from> <to>` (literal paths)")
    .default("off")
    .doc("Rewrite the Path of upstream Set-Cookie headers starting with `from`: that prefix becomes `to`.")
    .risk(Risk::Medium)
    .support(Support::Partial("literal path prefixes only: no regex (`~`) and no variables"));

const SSL_PASSTHROUGH: KeySpec = KeySpec::new("ssl-passthrough", Family::Backend)
    .grammar("boolean")
    .default("false")
    .doc("ingress-nginx (with --enable-ssl-passthrough): hand the client's TLS connection to the backend unopened, by SNI.")
    .scope(Scope::Host)
    .support(Support::NotEnforced(
        "TLS passthrough is not offered: TLS ends at the gateway, as in ingress-nginx without --enable-ssl-passthrough; use backend-protocol: HTTPS to re-encrypt",
    ));

static KEYS: &[KeySpec] = &[
    PROTOCOL,
    SERVICE_UPSTREAM,
    SSL_SECRET,
    SSL_VERIFY,
    SSL_VERIFY_DEPTH,
    SSL_CIPHERS,
    SSL_PROTOCOLS,
    SSL_NAME,
    SSL_SERVER_NAME,
    HTTP_VERSION,
    CONNECTION,
    COOKIE_DOMAIN,
    COOKIE_PATH,
    SSL_PASSTHROUGH,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Backend;

const PROTOCOLS: [&str; 7] = [
    "HTTP",
    "HTTPS",
    "AUTO_HTTP",
    "GRPC",
    "GRPCS",
    "HTTP2",
    "FCGI",
];

impl AnnotationFamily for Backend {
    fn family(&self) -> Family {
        Family::Backend
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.backend;
        if let Some(raw) = cx.take(&KEYS[0]) {
            match values::one_of(raw.value, &PROTOCOLS) {
                Ok(6) => {
                    cx.report(
                        Code::AnnotationUnenforceable,
                        raw.key,
                        format!("`{}`: FastCGI upstreams are not supported; the routes answer 503 rather than speak HTTP to a FastCGI server", raw.key),
                    );
                    cx.fail_closed(raw.key);
                }
                Ok(i) => {
                    p.protocol = [
                        BackendProtocol::Http,
                        BackendProtocol::Https,
                        BackendProtocol::AutoHttp,
                        BackendProtocol::Grpc,
                        BackendProtocol::Grpcs,
                        BackendProtocol::Http2,
                    ][i.min(5)];
                }
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        p.service_upstream = cx.boolean(&KEYS[1]).unwrap_or(false);

        let tls_present = cx.any_present(&KEYS[2..9]);
        let mut tls = UpstreamTls {
            secret: cx.parse(&KEYS[2], values::object_ref),
            ..UpstreamTls::default()
        };
        let verify = cx.take(&KEYS[3]);
        if let Some(raw) = verify {
            match on_off(raw.value) {
                Ok(v) => tls.verify = v,
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        // ingress-nginx reads 0 as the default 1.
        tls.verify_depth = cx
            .parse(&KEYS[4], |s| values::uint_max(s, 255))
            .map_or(1, |n| (n as u8).max(1));
        if let Some(raw) = cx.take(&KEYS[5]) {
            match client_tls::cipher_list(raw.value) {
                Ok(list) if list.suites.is_empty() && raw.value != "DEFAULT" => cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!(
                        "`{}` names no cipher suite the gateway offers; the default list is used",
                        raw.key
                    ),
                ),
                Ok(list) => tls.ciphers = list.suites,
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        if let Some(raw) = cx.take(&KEYS[6]) {
            match protocols(raw.value) {
                Ok((list, dropped)) => {
                    if dropped {
                        cx.report(
                            Code::AnnotationPartial,
                            raw.key,
                            format!(
                                "`{}`: TLS versions below 1.2 are not offered and are dropped",
                                raw.key
                            ),
                        );
                    }
                    tls.protocols = list;
                }
                Err(why) => cx.invalid(&raw, &why),
            }
        }
        tls.name = cx.parse(&KEYS[7], |s| values::host(s, false));
        tls.server_name = cx.parse(&KEYS[8], on_off).unwrap_or(false);
        if tls_present {
            if !cx.any_present(&KEYS[2..3]) {
                let k = KEYS[3..9]
                    .iter()
                    .find(|k| cx.any_present(std::slice::from_ref(*k)))
                    .map_or("proxy-ssl-*", |k| k.name);
                cx.report(
                    Code::AnnotationPartial,
                    k,
                    "proxy-ssl-* without proxy-ssl-secret: ingress-nginx ignores them all; here they apply, and proxy-ssl-verify checks against the gateway's default roots",
                );
            }
            if matches!(
                p.protocol,
                BackendProtocol::Http | BackendProtocol::Grpc | BackendProtocol::Http2
            ) {
                for k in &KEYS[2..9] {
                    if cx.any_present(std::slice::from_ref(k)) {
                        cx.report(
                            Code::AnnotationIgnored,
                            k.name,
                            format!("`{}` has no effect unless backend-protocol is HTTPS, GRPCS or AUTO_HTTP", k.name),
                        );
                    }
                }
            }
            p.upstream_tls = Some(tls);
        }

        p.http_version = match cx.parse(&KEYS[9], |s| values::one_of(s, &["1.0", "1.1"])) {
            Some(0) => HttpVersion::Http10,
            _ => HttpVersion::Http11,
        };
        p.connection_header = cx
            .parse(&KEYS[10], |s| values::one_of(s, &["close", "keep-alive"]))
            .map(|i| {
                if i == 0 {
                    ConnectionHeader::Close
                } else {
                    ConnectionHeader::KeepAlive
                }
            });
        p.cookie_domain = cx
            .parse(&KEYS[11], |s| cookie_rewrite(s, cookie_domain))
            .flatten();
        p.cookie_path = cx
            .parse(&KEYS[12], |s| cookie_rewrite(s, cookie_path))
            .flatten();
        cx.boolean(&KEYS[13]);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{codes, run};

    #[test]
    fn proxy_ssl_secret_parts() {
        let c = rcgen::generate_simple_self_signed(vec!["api.ns.svc".to_owned()]).expect("rcgen");
        let (crt, key) = (c.cert.pem(), c.signing_key.serialize_pem());
        let (crt, key) = (crt.as_bytes(), key.as_bytes());
        let full = UpstreamTlsSecret::from_parts(Some(crt), Some(key), Some(crt)).expect("full");
        assert!(full.client.is_some() && full.ca.len() == 1);
        assert_eq!(full, full.clone());
        let ca_only = UpstreamTlsSecret::from_parts(None, None, Some(crt)).expect("ca only");
        assert!(ca_only.client.is_none() && ca_only != full);
        assert!(!format!("{full:?}").contains("PRIVATE"));
        for (crt, key, ca) in [
            (Some(crt), None, None),
            (None, Some(key), Some(crt)),
            (None, None, None),
            (None, None, Some(&b"not pem"[..])),
            (Some(key), Some(key), None),
        ] {
            assert!(UpstreamTlsSecret::from_parts(crt, key, ca).is_err());
        }
    }

    #[test]
    fn defaults() {
        let b = run(&[]).policy.backend;
        assert_eq!(b, BackendPolicy::default());
        assert_eq!(
            (b.protocol, b.http_version),
            (BackendProtocol::Http, HttpVersion::Http11)
        );
        assert!(b.upstream_tls.is_none() && !b.service_upstream);
        assert_eq!(UpstreamTls::default().verify_depth, 1);
    }

    #[test]
    fn protocols_case_insensitive_and_fcgi_fails_closed() {
        for (v, want) in [
            ("HTTP", BackendProtocol::Http),
            ("https", BackendProtocol::Https),
            ("AUTO_HTTP", BackendProtocol::AutoHttp),
            ("grpc", BackendProtocol::Grpc),
            ("GRPCS", BackendProtocol::Grpcs),
            ("HTTP2", BackendProtocol::Http2),
        ] {
            let p = run(&[("backend-protocol", v)]);
            assert!(p.diagnostics.is_empty(), "{v}: {:?}", p.diagnostics);
            assert_eq!(p.policy.backend.protocol, want);
        }
        let p = run(&[("higress.io/backend-protocol", "GRPC")]);
        assert_eq!(p.policy.backend.protocol, BackendProtocol::Grpc);
        let p = run(&[("backend-protocol", "FCGI")]);
        assert_eq!(codes(&p), vec![Code::AnnotationUnenforceable]);
        assert!(p.policy.fail_closed.is_some());
        assert!(
            BackendProtocol::AutoHttp.uses_tls(true) && !BackendProtocol::AutoHttp.uses_tls(false)
        );
        assert!(BackendProtocol::Grpcs.uses_tls(false) && !BackendProtocol::Grpc.uses_tls(true));
    }

    #[test]
    fn upstream_tls() {
        let p = run(&[
            ("backend-protocol", "HTTPS"),
            ("proxy-ssl-secret", "ns/upstream-mtls"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "api.internal"),
            ("proxy-ssl-server-name", "on"),
            ("proxy-ssl-protocols", "TLSv1.3 TLSv1.2"),
            (
                "proxy-ssl-ciphers",
                "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
            ),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial],
            "proxy-ssl-ciphers is partial"
        );
        let t = p.policy.backend.upstream_tls.expect("tls");
        assert_eq!(t.secret.map(|s| s.name), Some("upstream-mtls".into()));
        assert!(t.verify && t.server_name);
        assert_eq!(t.name.as_deref(), Some("api.internal"));
        assert_eq!(t.protocols, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        assert_eq!(
            t.ciphers,
            vec![
                CipherSuite::EcdheRsaAes256GcmSha384,
                CipherSuite::EcdheRsaAes128GcmSha256
            ]
        );

        // Verify without a secret: the default roots, reported; old versions dropped.
        let p = run(&[
            ("backend-protocol", "GRPCS"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-protocols", "TLSv1 TLSv1.2"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial, Code::AnnotationPartial]
        );
        let t = p.policy.backend.upstream_tls.expect("tls");
        assert_eq!((t.verify, t.protocols), (true, vec![TlsVersion::Tls12]));
        let p = run(&[
            ("proxy-ssl-verify-depth", "0"),
            ("backend-protocol", "HTTPS"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationNotEnforced, Code::AnnotationPartial]
        );
        assert_eq!(
            p.policy.backend.upstream_tls.map(|t| t.verify_depth),
            Some(1)
        );
        let p = run(&[
            ("proxy-ssl-verify-depth", "2"),
            ("proxy-ssl-secret", "ca"),
            ("backend-protocol", "HTTPS"),
        ]);
        assert_eq!(codes(&p), vec![Code::AnnotationNotEnforced]);
        assert_eq!(
            p.policy.backend.upstream_tls.map(|t| t.verify_depth),
            Some(2)
        );
        // proxy-ssl-* on a clear-text backend has no effect.
        let p = run(&[("proxy-ssl-secret", "mtls"), ("proxy-ssl-verify", "on")]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationIgnored, Code::AnnotationIgnored]
        );
        assert!(p.policy.fail_closed.is_none());
    }

    #[test]
    fn http_details() {
        let p = run(&[
            ("service-upstream", "true"),
            ("proxy-http-version", "1.0"),
            ("connection-proxy-header", "keep-alive"),
            ("proxy-cookie-domain", ".Internal.local example.com"),
            ("proxy-cookie-path", "/two/ /"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationPartial, Code::AnnotationPartial]
        );
        let b = p.policy.backend;
        assert!(b.service_upstream);
        assert_eq!(b.http_version, HttpVersion::Http10);
        assert_eq!(b.connection_header, Some(ConnectionHeader::KeepAlive));
        let d = b.cookie_domain.expect("domain");
        assert_eq!(
            d.rewrite_domain(".INTERNAL.local"),
            Some("example.com".into())
        );
        assert_eq!(d.rewrite_domain("other.local"), None);
        let path = b.cookie_path.expect("path");
        assert_eq!(
            path.rewrite_path("/two/some/uri/"),
            Some("/some/uri/".into())
        );
        assert_eq!(path.rewrite_path("/one/"), None);
        let p = run(&[
            ("proxy-cookie-domain", "off"),
            ("proxy-cookie-path", "off"),
            ("connection-proxy-header", "close"),
        ]);
        assert_eq!(p.policy.backend.cookie_domain, None);
        assert_eq!(p.policy.backend.cookie_path, None);
        assert_eq!(
            p.policy.backend.connection_header,
            Some(ConnectionHeader::Close)
        );
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("backend-protocol", "h2c"),
            ("backend-protocol", ""),
            ("service-upstream", "yes"),
            ("proxy-ssl-secret", "a/b/c"),
            ("proxy-ssl-verify", "true"),
            ("proxy-ssl-verify-depth", "x"),
            ("proxy-ssl-ciphers", "A;B"),
            ("proxy-ssl-protocols", "SSLv3"),
            ("proxy-ssl-protocols", "TLSv1.4"),
            ("proxy-ssl-protocols", "TLSv1 TLSv1.1"),
            ("proxy-ssl-name", "$host"),
            ("proxy-ssl-name", "a b"),
            ("proxy-ssl-server-name", "1"),
            ("proxy-http-version", "2"),
            ("connection-proxy-header", "upgrade"),
            ("proxy-cookie-domain", "~^(.*)$ example.com"),
            ("proxy-cookie-domain", "a.com"),
            ("proxy-cookie-domain", "a.com b.com c.com"),
            ("proxy-cookie-path", "two /"),
            ("proxy-cookie-path", "/a $uri"),
            ("ssl-passthrough", "on"),
        ] {
            let p = run(&[("backend-protocol", "HTTPS"), (key, value)]);
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value:?} {:?}",
                p.diagnostics
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value:?}");
        }
    }
}
