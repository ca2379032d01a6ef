//! Authentication before forwarding: basic auth (`auth-type: basic`), external
//! auth (`auth-url`) and the client-certificate headers sent upstream. It runs
//! after the rate and connection limits and the body-size check, as nginx's
//! access phase follows its preaccess phase; a denial never contacts the
//! upstream.
//!
//! Basic auth: bcrypt is slow by design (milliseconds to a quarter second per
//! check), so bcrypt hashes are verified on tokio's blocking pool, at most
//! [`BCRYPT_PARALLEL`] at once (a flood of wrong passwords queues rather than
//! taking every thread). Positive results are not cached: no secret-derived
//! material is kept in memory. The other hashes are verified inline
//! (microseconds). An unknown user is checked against another user's bcrypt hash
//! (result dropped) so that timing does not reveal which users exist.
//!
//! Digest auth: the state machine is [`ingress_core::auth::digest`]; this side
//! supplies the time (a monotonic clock since the service started), the
//! randomness (the nonce key, made at start, and 8 bytes per challenge, from
//! ring's system random) and the one [`NonceStore`] shared by every route and
//! table (at most [`DIGEST_NONCES`] nonces remembered). Nonces do not survive a
//! restart: clients are asked again (`stale=true`).
//!
//! External auth: one sub-request per request, unless `auth-cache-key` is set:
//! then answers are cached (status and headers, in memory, per proxy) under the
//! route, the rendered auth URL and the evaluated key, for `auth-cache-duration`
//! (at most [`AUTH_CACHE_ENTRIES`] entries; a key with an unsupported variable is
//! not cached). `http://` and `https://` auth URLs: over HTTPS the auth
//! service's certificate is verified (rustls, ring) for the URL's host (also the
//! SNI name) against the system's trust anchors (read once at start by
//! `rustls-native-certs`: the OS bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`)
//! plus [`ServiceOptions::auth_roots`]; there is no way to turn verification
//! off. An auth service that refuses, fails the TLS handshake or verification,
//! times out (the route's connect and read timeouts) or answers anything but
//! 2xx, 401 or 403 is answered 500 (fail closed).
//!
//! [`ServiceOptions::auth_roots`]: crate::ServiceOptions::auth_roots

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ingress_core::Scheme;
use ingress_core::annotations::auth::{BasicAuth, DigestAuth, ExternalAuth};
use ingress_core::annotations::template::Var;
use ingress_core::auth::digest::{self, NonceConfig, NonceKey, NonceStore, Outcome};
use ingress_core::auth::external::{self, Original, Verdict};
use ingress_core::routing::{Route, RouteHost};
use tokio::sync::Semaphore;

use crate::balance::Vars;
use crate::connect::UpstreamIo;
use crate::forward::Forwarding;
use crate::mtls::ClientAuth;
use crate::service::{BoxError, Inner, ProxyBody, text};

/// How many bcrypt verifications run at once.
pub(crate) const BCRYPT_PARALLEL: usize = 4;

/// The most digest nonces remembered (for `nc` replay protection).
pub(crate) const DIGEST_NONCES: usize = 65_536;

/// The most auth answers kept in the cache.
pub(crate) const AUTH_CACHE_ENTRIES: usize = 10_000;

/// One cached auth answer.
#[derive(Debug)]
struct Cached {
    expires: Instant,
    status: StatusCode,
    headers: http::HeaderMap,
}

/// The largest auth answer body read (to keep the connection reusable).
const MAX_AUTH_BODY: usize = 64 * 1024;

/// Connections to auth services: TCP, then TLS for `https://` URIs, verified
/// for the URI's host (the SNI name too). The handshake counts against the
/// connect timeout.
#[derive(Clone)]
struct AuthConnector {
    http: HttpConnector,
    tls: Option<tokio_rustls::TlsConnector>,
    connect: Duration,
}

impl std::fmt::Debug for AuthConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConnector")
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

impl tower::Service<Uri> for AuthConnector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let https = dst.scheme_str() == Some("https");
        let host = dst
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let connecting = tower::Service::call(&mut self.http, dst);
        let (tls, connect) = (self.tls.clone(), self.connect);
        Box::pin(async move {
            let tcp = connecting.await.map_err(BoxError::from)?;
            if !https {
                return Ok(UpstreamIo::Plain(tcp));
            }
            let tls = tls.ok_or("no TLS configuration for auth URLs")?;
            let name = rustls::pki_types::ServerName::try_from(host)?;
            let stream = tokio::time::timeout(connect, tls.connect(name, tcp.into_inner()))
                .await
                .map_err(|_| "auth service TLS handshake timed out")??;
            Ok(UpstreamIo::Tls {
                io: TokioIo::new(Box::new(stream)),
                h2: false,
            })
        })
    }
}

/// The trust anchors of `https://` auth URLs: the system's (a file that cannot be
/// read or parsed is skipped with a log line) and `extra`.
fn auth_tls(
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Option<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "reading the system's trust anchors");
    }
    let (_, skipped) = roots.add_parsable_certificates(native.certs);
    let (_, bad) = roots.add_parsable_certificates(extra.iter().cloned());
    if skipped + bad > 0 {
        tracing::warn!(
            skipped,
            bad,
            "some trust anchors for auth URLs were unusable"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let mut config = match config {
        Ok(c) => c,
        // The ring provider supports the default versions; should it not,
        // https auth URLs fail closed.
        Err(e) => {
            tracing::error!(error = %e, "no TLS configuration for auth URLs");
            return None;
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The state authentication shares across requests.
#[derive(Debug)]
pub(crate) struct AuthState {
    client: Client<AuthConnector, Empty<Bytes>>,
    bcrypt: Arc<Semaphore>,
    cache: Mutex<HashMap<String, Cached>>,
    /// The digest nonce key (`None`: no system randomness; digest routes fail
    /// closed).
    digest_key: Option<NonceKey>,
    nonces: Mutex<NonceStore>,
    /// The epoch of digest nonces' times.
    epoch: Instant,
    random: &'static dyn rustls::crypto::SecureRandom,
}

impl AuthState {
    pub(crate) fn new(
        connect_timeout: Duration,
        idle: Duration,
        roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = AuthConnector {
            http,
            tls: auth_tls(roots),
            connect: connect_timeout,
        };
        let random = rustls::crypto::ring::default_provider().secure_random;
        let mut key = [0u8; 32];
        let digest_key = match random.fill(&mut key) {
            Ok(()) => Some(NonceKey::new(key)),
            Err(_) => {
                tracing::error!("no system randomness: digest-auth routes answer 500");
                None
            }
        };
        key.iter_mut().for_each(|b| *b = 0);
        let mut nonce_config = NonceConfig::default();
        nonce_config.capacity = DIGEST_NONCES;
        AuthState {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(idle)
                .pool_timer(TokioTimer::new())
                .build(connector),
            bcrypt: Arc::new(Semaphore::new(BCRYPT_PARALLEL)),
            cache: Mutex::new(HashMap::new()),
            digest_key,
            nonces: Mutex::new(NonceStore::new(nonce_config)),
            epoch: Instant::now(),
            random,
        }
    }

    fn cached(&self, key: &str) -> Option<(StatusCode, http::HeaderMap)> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(key).filter(|c| c.expires > Instant::now())?;
        Some((c.status, c.headers.clone()))
    }

    fn store(&self, key: String, ttl: Duration, status: StatusCode, headers: &http::HeaderMap) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let now = Instant::now();
        if cache.len() >= AUTH_CACHE_ENTRIES {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= AUTH_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                expires: now + ttl,
                status,
                headers: headers.clone(),
            },
        );
    }
}

/// What a passed external auth adds to the client's response: the auth
/// answer's `Set-Cookie` values.
#[derive(Debug, Default)]
pub(crate) struct AuthCookies {
    cookies: Vec<HeaderValue>,
    always: bool,
}

impl AuthCookies {
    /// Add the cookies to the client's response: on 2xx and 3xx answers, or on
    /// every answer with `auth-always-set-cookie` (as ingress-nginx).
    pub(crate) fn apply(self, resp: &mut Response<ProxyBody>) {
        let s = resp.status();
        if self.always || s.is_success() || s.is_redirection() {
            for c in self.cookies {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
        }
    }
}

const SSL_HEADERS: [&str; 4] = [
    "ssl-client-cert",
    "ssl-client-verify",
    "ssl-client-subject-dn",
    "ssl-client-issuer-dn",
];

fn answer(status: StatusCode, why: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(text(status, why));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A variable's value in an auth URL: percent-encoded, but for the request URI
/// variables (already URL text).
fn url_var<'v>(vars: &'v Vars<'_>, v: &Var) -> Option<Cow<'v, str>> {
    let value = vars.get(v)?;
    match v {
        Var::RequestUri | Var::Uri | Var::EscapedRequestUri => Some(value),
        _ => Some(Cow::Owned(external::escape_component(value.as_bytes()))),
    }
}

impl Inner {
    /// Check the route's authentication for `req`; `Err` is the answer to send.
    /// On success the request carries what the upstream should see (auth
    /// response headers, client-certificate headers) and `cookies` what the
    /// client's response gets.
    pub(crate) async fn authorize(
        &self,
        req: &mut Request<ProxyBody>,
        f: &Forwarding<'_>,
        route: &Route,
    ) -> Result<(), Response<ProxyBody>> {
        let tls = &route.host_policy().client_tls;
        if tls.requests_certificate() {
            for h in SSL_HEADERS {
                req.headers_mut().remove(h);
            }
            if let Some(ca) = req.extensions().get::<Arc<ClientAuth>>().cloned() {
                ca.upstream_headers(tls.pass_certificate, req.headers_mut());
            } else {
                req.headers_mut()
                    .insert("ssl-client-verify", HeaderValue::from_static("NONE"));
            }
        }
        let auth = &route.policy().auth;
        // satisfy: any — an address the allow list names needs no authentication.
        if auth.defers_access()
            && route
                .policy()
                .access
                .explicitly_allowed(f.client_ip, Some(&route.host_policy().access))
        {
            return Ok(());
        }
        if let Some(basic) = &auth.basic {
            // Boxed (as below): a cold path whose state would otherwise sit in
            // every request's future, copied with it.
            Box::pin(self.basic(req.headers(), basic)).await?;
        }
        if let Some(d) = &auth.digest
            && let Some(denied) = self.digest(req, f, d)
        {
            return Err(denied);
        }
        if let Some(ext) = &auth.external {
            Box::pin(self.external(req, f, route, ext)).await?;
        }
        Ok(())
    }

    /// Check digest credentials; `Some` is the answer to send (401 with a
    /// challenge, or 500).
    fn digest(
        &self,
        req: &Request<ProxyBody>,
        f: &Forwarding<'_>,
        d: &DigestAuth,
    ) -> Option<Response<ProxyBody>> {
        let state = &self.auth;
        let Some(key) = &state.digest_key else {
            return Some(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "auth-unavailable",
            ));
        };
        let now = state.epoch.elapsed();
        // The store stays safe whatever happened while it was held (an entry
        // is inserted whole, and the floor is raised before entries below it
        // are forgotten), so a poisoned lock is taken over rather than denying
        // every digest request from then on.
        let mut store = state
            .nonces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outcome = d.verify(
            key,
            &mut store,
            req.method().as_str(),
            f.original_uri,
            req.headers(),
            now,
        );
        drop(store);
        let stale = match outcome {
            Outcome::Allow => return None,
            Outcome::Challenge { stale } => stale,
        };
        let mut random = [0u8; 8];
        if state.random.fill(&mut random).is_err() {
            return Some(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "auth-unavailable",
            ));
        }
        let (nonce, opaque) = digest::issue(key, now, random);
        let mut resp = answer(StatusCode::UNAUTHORIZED, "");
        if let Ok(v) = HeaderValue::from_str(&d.challenge(&nonce, &opaque, stale)) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Some(resp)
    }

    async fn basic(
        &self,
        headers: &http::HeaderMap,
        basic: &BasicAuth,
    ) -> Result<(), Response<ProxyBody>> {
        let ok = match ingress_core::auth::basic::credentials(headers) {
            None => false,
            Some(c) => {
                // An unknown user costs as much as a known one (a bcrypt check
                // against another user's hash, result dropped), so the answer's
                // timing does not tell which users exist.
                let (hash, known) = match basic.user_hash(&c.user) {
                    Some(h) => (Some(h), true),
                    None => (
                        basic.users.iter().map(|e| &e.hash).find(|h| h.is_slow()),
                        false,
                    ),
                };
                match hash {
                    None => false,
                    Some(h) if !h.is_slow() => h.verify(&c.password) && known,
                    Some(h) => {
                        let permit = self.auth.bcrypt.clone().acquire_owned().await;
                        let h = h.clone();
                        tokio::task::spawn_blocking(move || {
                            let _permit = permit;
                            h.verify(&c.password)
                        })
                        .await
                        .unwrap_or(false)
                            && known
                    }
                }
            }
        };
        if ok {
            return Ok(());
        }
        let mut resp = answer(StatusCode::UNAUTHORIZED, "");
        if let Ok(v) = HeaderValue::from_str(&basic.challenge()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Err(resp)
    }

    async fn external(
        &self,
        req: &mut Request<ProxyBody>,
        f: &Forwarding<'_>,
        route: &Route,
        ext: &ExternalAuth,
    ) -> Result<(), Response<ProxyBody>> {
        let https = f.scheme == Scheme::Https;
        let scheme = if https { "https" } else { "http" };
        let http_host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(f.client_host)
            .to_owned();
        let vars = Vars {
            path_and_query: f.original_uri,
            host: f.client_host,
            https,
            method: req.method().as_str(),
            client: f.client_ip,
            headers: req.headers(),
        };
        let url = ext.url.render(|v| url_var(&vars, v));
        let redirect = match &ext.request_redirect {
            Some(t) => t.render(|v| vars.get(v)),
            None => f.original_uri.to_owned(),
        };
        let signin = ext.signin.as_ref().map(|t| {
            // The return URL names the Ingress rule's host where it has one: a
            // forged Host cannot steer it.
            let host = match route.host() {
                RouteHost::Pattern(p) if !p.to_string().starts_with('*') => p.to_string(),
                _ => http_host.clone(),
            };
            external::signin_location(
                ext,
                &t.render(|v| url_var(&vars, v)),
                scheme,
                &host,
                f.original_uri,
            )
        });
        let original = Original {
            method: req.method(),
            scheme,
            http_host: &http_host,
            request_uri: f.original_uri,
            remote_addr: f.client_ip,
            request_id: Some(&f.request_id),
        };
        let cache_key = ext.cache_key.as_deref().and_then(|raw| {
            let user =
                ingress_core::auth::basic::credentials(req.headers()).map(|c| c.user.clone());
            let key = external::cache_key(raw, user.as_deref(), |v| vars.get(v))?;
            Some(format!(
                "{}\0{}\0{}\0{url}\0{key}",
                route.host(),
                route.ingress(),
                route.field()
            ))
        });
        let hit = cache_key.as_deref().and_then(|k| self.auth.cached(k));
        let (status, answer_headers) = match hit {
            Some(a) => a,
            None => match self
                .ask(&url, ext, req.headers(), &original, &redirect, route)
                .await
            {
                Ok((status, headers)) => {
                    if let Some(k) = cache_key
                        && let Some(ttl) = external::cache_ttl(&ext.cache_duration, status)
                    {
                        self.auth.store(k, ttl, status, &headers);
                    }
                    (status, headers)
                }
                Err(why) => {
                    tracing::warn!(auth_url = %url, why, "external auth failed; denying");
                    return Err(answer(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "auth-unavailable",
                    ));
                }
            },
        };
        match external::verdict(status, signin) {
            Verdict::Allow => {
                external::copy_response_headers(ext, &answer_headers, req.headers_mut());
                let cookies: Vec<HeaderValue> = answer_headers
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .cloned()
                    .collect();
                if !cookies.is_empty() {
                    let _ = f.auth_cookies.set(AuthCookies {
                        cookies,
                        always: ext.always_set_cookie,
                    });
                }
                Ok(())
            }
            Verdict::Deny(s) => {
                let mut resp = answer(s, "");
                // The auth service's challenge and cookies reach the client.
                for name in [header::WWW_AUTHENTICATE, header::SET_COOKIE] {
                    for v in answer_headers.get_all(&name) {
                        resp.headers_mut().append(name.clone(), v.clone());
                    }
                }
                Err(resp)
            }
            Verdict::SignIn(location) => {
                let mut resp = answer(StatusCode::FOUND, "");
                match HeaderValue::from_str(&location) {
                    Ok(l) => {
                        resp.headers_mut().insert(header::LOCATION, l);
                    }
                    Err(_) => return Err(answer(StatusCode::INTERNAL_SERVER_ERROR, "auth-signin")),
                }
                for v in answer_headers.get_all(header::SET_COOKIE) {
                    resp.headers_mut().append(header::SET_COOKIE, v.clone());
                }
                Err(resp)
            }
            Verdict::Error => {
                tracing::warn!(auth_url = %url, %status, "external auth answered an error; denying");
                Err(answer(StatusCode::INTERNAL_SERVER_ERROR, "auth-error"))
            }
        }
    }

    /// Send the auth sub-request; the answer's status and headers.
    async fn ask(
        &self,
        url: &str,
        ext: &ExternalAuth,
        client: &http::HeaderMap,
        original: &Original<'_>,
        redirect: &str,
        route: &Route,
    ) -> Result<(StatusCode, http::HeaderMap), &'static str> {
        let uri: Uri = url
            .parse()
            .map_err(|_| "auth-url does not render to a URI")?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err("auth-url is neither http:// nor https://");
        }
        let authority = uri.authority().ok_or("auth-url has no host")?.as_str();
        let headers = external::subrequest_headers(client, original, authority, redirect);
        let mut sub = Request::new(Empty::<Bytes>::new());
        *sub.method_mut() = ext.method.as_method();
        *sub.uri_mut() = uri;
        *sub.headers_mut() = headers;
        let t = &route.policy().timeouts;
        let budget =
            t.connect_or(self.options.connect_timeout) + t.read_or(self.options.read_timeout);
        let resp = tokio::time::timeout(budget, self.auth.client.request(sub))
            .await
            .map_err(|_| "auth service timed out")?
            .map_err(|_| "auth service unreachable")?;
        let (parts, body) = resp.into_parts();
        // Read a small body so the connection can be reused; its content is unused.
        let _ = tokio::time::timeout(budget, Limited::new(body, MAX_AUTH_BODY).collect()).await;
        Ok((parts.status, parts.headers))
    }
}

/// A cell for the cookies of one request's external auth.
pub(crate) type CookieCell = OnceLock<AuthCookies>;
