//! [`ProxyService`]: a tower `Service` that routes each request with the live table
//! and carries out the [`Decision`]: forward upstream, redirect, or answer.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Body;
use ingress_core::annotations::HeaderPolicy;
use ingress_core::lb::circuit::CircuitLimits;
use ingress_core::lb::outlier::OutlierConfig;
use ingress_core::routing::RouteInputs;
use ingress_core::{Decision, RequestView, Scheme};

use crate::access::{Access, ResponseBody};
use crate::balance::Vars;
use crate::forward::Forwarding;
use crate::gateway::IpAccess;
use crate::global::{GlobalConfig, GlobalLimits};
use crate::grpc::LocalReply;
use crate::headers::{RequestIds, TrustedProxies, X_REQUEST_ID, valid_request_id};
use crate::live::{Live, LiveTable, RouteStats};
use crate::metrics::Metrics;
use crate::upgrade::Tunnels;
use crate::upstream::{Clients, UpstreamClient};

/// The error type of bodies the proxy passes on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request and response bodies as the proxy streams them (never buffered).
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the proxy knows about the connection a request came on. The server inserts
/// it into each request's extensions; an embedding gateway should do the same
/// (without it the request counts as plain HTTP from an unknown peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The local address the connection was accepted on.
    pub local: SocketAddr,
    /// Plain HTTP or TLS.
    pub scheme: Scheme,
}

/// How [`ProxyService`] talks to clients and upstreams.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceOptions {
    /// Peers allowed to set `X-Forwarded-For` and `X-Forwarded-Proto/-Host/-Port`.
    pub trusted: TrustedProxies,
    /// Upstream TCP connect timeout (504 when it expires).
    pub connect_timeout: Duration,
    /// Time allowed from sending the request upstream to its response head (504),
    /// then between two reads of the response body.
    pub read_timeout: Duration,
    /// How long a write to the upstream may stay blocked (504).
    pub send_timeout: Duration,
    /// How long an idle upstream connection stays in the pool.
    pub pool_idle_timeout: Duration,
    /// How many idle connections the pool keeps per endpoint (plain HTTP/1.1
    /// upstreams; see `docs/proxy.md`); 320, ingress-nginx's
    /// `upstream-keepalive-connections`.
    pub pool_max_idle_per_endpoint: usize,
    /// The most one read of a plain HTTP/1.1 upstream connection takes in, in
    /// bytes (1 KiB to 32 KiB; 8 KiB by default): a response body arrives in
    /// frames of at most this, and a client connection that does not read holds
    /// about two of them until the send timeout. Larger reads cost fewer system
    /// calls per large body (`--upstream-read-size`).
    pub upstream_read_size: usize,
    /// The request body limit of routes without `proxy-body-size` (`None`: no
    /// limit); ingress-nginx's 1 MiB by default.
    pub max_request_body: Option<u64>,
    /// Count rates cluster-wide in Redis instead of per replica (`None`: local
    /// limits, as ingress-nginx). See [`crate::global`].
    pub global_limits: Option<GlobalConfig>,
    /// When an endpoint is ejected for failing (passive health checking).
    pub outlier: OutlierConfig,
    /// Per-cluster ceilings on requests and retries in flight.
    pub circuit: CircuitLimits,
    /// Global IP allow/deny lists, checked before routing (403).
    pub ip_access: IpAccess,
    /// Whether requests are logged at all (routes may still turn it off).
    pub access_log: bool,
    /// Trust anchors for `https://` auth URLs (`auth-url`) besides the system's
    /// (empty by default): the CA of an in-cluster auth service, say.
    pub auth_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            trusted: TrustedProxies::default(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_endpoint: 320,
            upstream_read_size: crate::connect::UPSTREAM_READ_SIZE,
            max_request_body: Some(ingress_core::annotations::body::DEFAULT_MAX_REQUEST_BODY),
            global_limits: None,
            outlier: OutlierConfig::default(),
            circuit: CircuitLimits::default(),
            ip_access: IpAccess::default(),
            access_log: true,
            auth_roots: Vec::new(),
        }
    }
}

/// Routes each request with the live table and carries out the decision. Cheap to
/// clone (one shared state); upstream connections are pooled and kept alive per
/// endpoint across requests and table swaps.
#[derive(Debug, Clone)]
pub struct ProxyService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    live: Arc<LiveTable>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: ServiceOptions,
    pub(crate) client: UpstreamClient,
    /// Clients for routes with their own `proxy-connect-timeout` or
    /// `proxy-send-timeout`, or another protocol or TLS to the upstream.
    pub(crate) clients: ArcSwap<Clients>,
    pub(crate) ids: RequestIds,
    pub(crate) tunnels: Arc<Tunnels>,
    /// The bound on mirror copies in flight.
    pub(crate) mirrors: crate::mirror::Mirrors,
    /// The Redis-backed rate limits, when configured.
    pub(crate) global: Option<GlobalLimits>,
    pub(crate) auth: crate::auth::AuthState,
}

/// What a decision asks for, owned, so the request can be taken apart after routing.
enum Plan {
    Forward {
        /// The route's index in the table.
        route: usize,
        /// The balancer that picks the endpoint (see [`crate::balance::Balancers`]).
        balancer: usize,
        /// The backend it picks in.
        backend: ingress_core::routing::BackendId,
        /// `upstream-hash-by`'s key for this request.
        hash_key: Option<String>,
        /// The affinity cookie's value in the request.
        cookie: Option<String>,
        target: String,
        upstream_host: String,
        response_headers: Vec<(HeaderName, HeaderValue)>,
        label: Option<Arc<RouteStats>>,
        /// `X-Forwarded-Prefix` (the path was rewritten).
        forwarded_prefix: Option<String>,
        /// The route's header control, when it has any.
        headers: Option<Box<HeaderPolicy>>,
        access_log: bool,
        /// A copy to send to the route's mirror.
        mirror: Option<Box<crate::mirror::Shadow>>,
    },
    Answer {
        status: StatusCode,
        location: Option<String>,
        why: &'static str,
        response_headers: Vec<(HeaderName, HeaderValue)>,
        label: Option<Arc<RouteStats>>,
    },
}

impl ProxyService {
    /// A service routing with `live`, counting into `metrics`. Call it within a
    /// Tokio runtime when [`ServiceOptions::global_limits`] is set (it starts the
    /// Redis connection task; outside one, Redis counts as unavailable).
    pub fn new(live: Arc<LiveTable>, metrics: Arc<Metrics>, options: ServiceOptions) -> Self {
        let client = crate::upstream::client(
            options.connect_timeout,
            options.send_timeout,
            options.pool_idle_timeout,
            false,
            None,
            None,
        );
        let tunnels = Arc::new(Tunnels::new(metrics.clone()));
        let global = options.global_limits.clone().map(GlobalLimits::start);
        let auth = crate::auth::AuthState::new(
            options.connect_timeout,
            options.pool_idle_timeout,
            &options.auth_roots,
        );
        ProxyService {
            inner: Arc::new(Inner {
                live,
                metrics,
                options,
                client,
                clients: ArcSwap::default(),
                ids: RequestIds::default(),
                tunnels,
                mirrors: crate::mirror::Mirrors::default(),
                global,
                auth,
            }),
        }
    }

    /// The options the service was built with (in `--kube` mode, each table may
    /// carry the gateway config's in their place: [`crate::gateway`]).
    pub fn options(&self) -> &ServiceOptions {
        &self.inner.options
    }

    /// How many upgraded connections (WebSocket tunnels) are open.
    pub fn open_tunnels(&self) -> usize {
        self.inner.tunnels.open()
    }

    /// Wait for the open tunnels to close, up to `grace`; then cut the rest. New
    /// tunnels should no longer be accepted (stop the listeners first).
    pub async fn close_tunnels(&self, grace: Duration) {
        self.inner.tunnels.close(grace).await;
    }

    /// Handle one request (what `Service::call` does, without the boxing).
    pub async fn handle(&self, req: Request<ProxyBody>) -> Response<ProxyBody> {
        let conn = req.extensions().get::<ConnInfo>().copied();
        self.inner
            .handle(req, conn)
            .await
            .map(BodyExt::boxed_unsync)
    }

    /// [`ProxyService::handle`] for the listener, which knows the connection (no
    /// [`ConnInfo`] inserted into each request's extensions: that allocates a map
    /// per request).
    pub(crate) fn handle_on(
        &self,
        req: Request<ProxyBody>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<ProxyBody>> + '_ {
        self.inner.handle(req, Some(conn))
    }
}

impl<B> tower::Service<Request<B>> for ProxyService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
        Box::pin(async move {
            let conn = req.extensions().get::<ConnInfo>().copied();
            Ok(inner.handle(req, conn).await)
        })
    }
}

/// The host a request is for: the URI authority (HTTP/2 `:authority`, HTTP/1.1
/// absolute form), else the Host header. `Err` when Host appears more than once.
fn request_host<B>(req: &Request<B>) -> Result<&str, &'static str> {
    let host = if let Some(a) = req.uri().authority() {
        a.as_str()
    } else {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let first = hosts.next();
        if hosts.next().is_some() {
            return Err("duplicate-host");
        }
        match first {
            Some(h) => h.to_str().map_err(|_| "bad-host")?,
            // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
            None if req.version() == Version::HTTP_11 => return Err("missing-host"),
            None => "",
        }
    };
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b))
    {
        return Err("bad-host");
    }
    Ok(host)
}

pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Add a decision's response headers. Framing and connection headers are the
/// server's to set (hyper frames the body it is given), so they are skipped.
pub(crate) fn append_headers(h: &mut http::HeaderMap, extra: Vec<(HeaderName, HeaderValue)>) {
    for (n, v) in extra {
        if !ingress_core::annotations::headers::is_protected(&n) {
            h.append(n, v);
        }
    }
}

/// The gateway's own answer: a one-line text body, none for statuses that have no
/// content (1xx, 204, 304).
pub(crate) fn text(status: StatusCode, why: &str) -> ProxyBody {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return empty();
    }
    let reason = status.canonical_reason().unwrap_or("");
    let body = if why.is_empty() {
        format!("{} {reason}\n", status.as_u16())
    } else {
        format!("{} {reason} ({why})\n", status.as_u16())
    };
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

impl Inner {
    /// The options a request on `live` is served with: the table's gateway
    /// settings when it carries some, else the service's own.
    pub(crate) fn options_for<'a>(&'a self, live: &'a Live) -> &'a ServiceOptions {
        live.runtime().map_or(&self.options, |r| &r.service)
    }

    /// The Redis store of global limits for a request on `live`.
    pub(crate) fn global_for<'a>(&'a self, live: &'a Live) -> Option<&'a GlobalLimits> {
        live.runtime()
            .and_then(|r| r.global.as_deref())
            .or(self.global.as_ref())
    }

    /// Handle one request that came on `conn` (`None`: plain HTTP from an unknown
    /// peer).
    async fn handle(&self, req: Request<ProxyBody>, conn: Option<ConnInfo>) -> Response<ProxyBody> {
        let start = Instant::now();
        // Framing, size limits and the path, checked before anything else reads
        // the head (crate::framing).
        let (mut parts, body) = req.into_parts();
        // The listener puts the connection's limits (from `--max-request-head`) in
        // the extensions; an embedder that does not gets the defaults.
        let head_limits = parts
            .extensions
            .get::<crate::framing::HeadLimits>()
            .copied()
            .unwrap_or_default();
        let refused = crate::framing::check_request(
            parts.version,
            &parts.method,
            &parts.uri,
            &mut parts.headers,
            head_limits,
        )
        .and_then(|()| crate::framing::check_path(parts.uri.path()))
        .err();
        let req = Request::from_parts(parts, body);
        let live = self.live.load();
        let scheme = conn.map_or(Scheme::Http, |c| c.scheme);
        let peer = conn.map(|c| c.peer.ip().to_canonical());
        let options = self.options_for(&live);
        let client_ip = peer.map(|p| options.trusted.client_ip(p, req.headers()));
        let request_id = match req.headers().get(X_REQUEST_ID) {
            Some(v) if valid_request_id(v) => v.clone(),
            _ => self.ids.next(),
        };
        let host = request_host(&req);
        let http1 = req.version() <= Version::HTTP_11;
        let grpc = crate::grpc::is_grpc(req.headers());
        let mut access = Access {
            start,
            metrics: self.metrics.clone(),
            method: req.method().clone(),
            version: req.version(),
            scheme,
            host: host.unwrap_or("").to_owned(),
            // Only the access line reads it (routes can turn logging off, not on).
            path: if options.access_log {
                req.uri().path().to_owned()
            } else {
                String::new()
            },
            client: client_ip,
            request_id: request_id.clone(),
            label: None,
            decision: "respond",
            upstream: None,
            upstream_elapsed: None,
            status: 0,
            bytes: 0,
            log: options.access_log,
            held: (None, None),
            read_idle: None,
        };
        let plan = match (refused, host) {
            (Some(r), _) => Plan::Answer {
                status: r.status,
                location: None,
                why: r.why,
                response_headers: Vec::new(),
                label: None,
            },
            (None, Err(why)) => Plan::Answer {
                status: StatusCode::BAD_REQUEST,
                location: None,
                why,
                response_headers: Vec::new(),
                label: None,
            },
            (None, Ok(_)) if live.version() == 0 => Plan::Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                location: None,
                why: "no-configuration",
                response_headers: Vec::new(),
                label: None,
            },
            // The gateway config's IP lists, before any route.
            (None, Ok(_)) if client_ip.is_some_and(|ip| !options.ip_access.allows(ip)) => {
                Plan::Answer {
                    status: StatusCode::FORBIDDEN,
                    location: None,
                    why: "ip-denied",
                    response_headers: Vec::new(),
                    label: None,
                }
            }
            (None, Ok(host)) => {
                let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let mut view = RequestView::get(scheme, host, path_and_query);
                view.method = req.method();
                view.headers = req.headers();
                view.client_ip = client_ip;
                let inputs = RouteInputs::with_roll(self.ids.roll());
                let vars = Vars {
                    path_and_query,
                    host,
                    https: scheme == Scheme::Https,
                    method: req.method().as_str(),
                    client: client_ip,
                    headers: req.headers(),
                };
                let d = live.table().route_with(&view, &inputs);
                let client_auth = req.extensions().get::<Arc<crate::mtls::ClientAuth>>();
                match crate::mtls::gate(&live, &d, client_auth, scheme) {
                    Some((status, location, why)) => Plan::Answer {
                        status,
                        location,
                        why,
                        response_headers: Vec::new(),
                        label: d.route().and_then(|r| live.stats(r)).cloned(),
                    },
                    None => plan(&live, d, &vars, self.ids.roll()),
                }
            }
        };
        let response = match plan {
            Plan::Answer {
                status,
                location,
                why,
                response_headers,
                label,
            } => {
                access.label = label;
                let body = text(status, why);
                let has_body = !body.is_end_stream();
                let mut resp = Response::new(body);
                *resp.status_mut() = status;
                resp.extensions_mut().insert(LocalReply(why));
                let h = resp.headers_mut();
                if has_body {
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                }
                if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
                    access.decision = "redirect";
                    h.insert(header::LOCATION, loc);
                }
                append_headers(h, response_headers);
                // A malformed HTTP/1 request ends its connection (400 + close).
                if (status == StatusCode::BAD_REQUEST || refused.is_some()) && http1 {
                    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            }
            Plan::Forward {
                route,
                balancer,
                backend,
                hash_key,
                cookie,
                target,
                upstream_host,
                response_headers,
                label,
                forwarded_prefix,
                headers,
                access_log,
                mirror,
            } => {
                access.label = label;
                access.decision = "forward";
                access.log = access_log && options.access_log;
                // Lent to the forwarding and given back for the access line.
                let client_host = std::mem::take(&mut access.host);
                let original_uri = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let auth_cookies = crate::auth::CookieCell::new();
                let fwd = Forwarding {
                    live: &live,
                    route,
                    balancer,
                    backend,
                    original_uri: &original_uri,
                    hash_key: hash_key.as_deref(),
                    cookie: cookie.as_deref(),
                    target: &target,
                    upstream_host: &upstream_host,
                    client_host: &client_host,
                    scheme,
                    conn,
                    client_ip,
                    request_id,
                    forwarded_prefix: forwarded_prefix.as_deref(),
                    headers: headers.as_deref(),
                    mirror,
                    auth_cookies: &auth_cookies,
                };
                let mut resp = self.forward(req, fwd, &mut access).await;
                access.host = client_host;
                if let Some(c) = auth_cookies.into_inner() {
                    c.apply(&mut resp);
                }
                append_headers(resp.headers_mut(), response_headers);
                resp
            }
        };
        let response = if grpc {
            crate::grpc::local_reply(response)
        } else {
            response
        };
        access.status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, ResponseBody::new(body, access).boxed_unsync())
    }

    /// [`Inner::error`] for a request the client got wrong: an HTTP/1
    /// connection (`http1`) is closed after the answer.
    pub(crate) fn refuse(
        &self,
        status: StatusCode,
        why: &'static str,
        http1: bool,
    ) -> Response<ProxyBody> {
        let mut resp = self.error(status, why);
        if http1 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    pub(crate) fn error(&self, status: StatusCode, why: &'static str) -> Response<ProxyBody> {
        let mut resp = Response::new(text(status, why));
        *resp.status_mut() = status;
        resp.extensions_mut().insert(LocalReply(why));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    }
}

/// The security controls (`IngressPolicy::requirements`) this proxy carries out. A
/// route that asks for any other answers 503.
pub const SUPPORTED_REQUIREMENTS: &[ingress_core::annotations::Requirement] = &[
    ingress_core::annotations::Requirement::BasicAuth,
    ingress_core::annotations::Requirement::DigestAuth,
    ingress_core::annotations::Requirement::ExternalAuth,
    ingress_core::annotations::Requirement::ClientCertificate,
    ingress_core::annotations::Requirement::RateLimit,
    ingress_core::annotations::Requirement::ConnectionLimit,
];

fn plan(live: &crate::live::Live, d: Decision<'_>, vars: &Vars<'_>, roll: u32) -> Plan {
    let label = d.route().and_then(|r| live.stats(r)).cloned();
    let response_headers = d.response_headers().to_vec();
    match d {
        // Security controls this data plane does not carry out yet: answer 503 rather
        // than serve without them (fail closed).
        Decision::Forward(f)
            if f.policy.unmet(SUPPORTED_REQUIREMENTS).is_some()
                || f.canary
                    .is_some_and(|(c, _)| c.policy().unmet(SUPPORTED_REQUIREMENTS).is_some()) =>
        {
            Plan::Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                location: None,
                why: "unenforced-policy",
                response_headers: Vec::new(),
                label,
            }
        }
        Decision::Forward(f) => match live.balancers.for_forward(&f) {
            Some(balancer) => Plan::Forward {
                route: f.route.id().index(),
                balancer,
                backend: f.backend.id(),
                hash_key: live
                    .balancers
                    .get(balancer)
                    .filter(|(b, _)| b.needs_hash_key())
                    .and_then(|_| live.balancers.load_balance(balancer))
                    .and_then(|lb| lb.key_for(|v| vars.get(v))),
                cookie: live
                    .balancers
                    .get(balancer)
                    .and_then(|(b, a)| a.filter(|_| b.is_sticky()))
                    .and_then(|a| a.request_cookie(vars.headers))
                    .map(str::to_owned),
                target: f.upstream_target().into_owned(),
                upstream_host: f.upstream_host.to_owned(),
                response_headers,
                label,
                forwarded_prefix: f.forwarded_prefix.map(str::to_owned),
                headers: Some(f.header_policy())
                    .filter(|h| !h.is_empty())
                    .map(|h| Box::new(h.clone())),
                access_log: f.policy.access_log,
                mirror: f
                    .policy
                    .mirror
                    .as_ref()
                    .filter(|m| m.sampled((roll % 100) as u8))
                    .and_then(|m| {
                        let ns = f.route.ingress().namespace.as_deref().unwrap_or("");
                        crate::mirror::Shadow::new(m, ns, vars, live, roll / 100)
                    })
                    .map(Box::new),
            },
            None => Plan::Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                location: None,
                why: "no-endpoints",
                response_headers,
                label,
            },
        },
        Decision::Redirect(r) => Plan::Answer {
            status: r.status,
            location: Some(r.location),
            why: "",
            response_headers,
            label,
        },
        Decision::Respond(r) => Plan::Answer {
            status: r.status,
            location: None,
            why: r.reason.as_str(),
            response_headers,
            label,
        },
        _ => Plan::Answer {
            status: StatusCode::NOT_IMPLEMENTED,
            location: None,
            why: "unsupported-decision",
            response_headers,
            label,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_needs_http11_connection_upgrade_and_upgrade() {
        let req = |version, connection: &str| {
            Request::builder()
                .version(version)
                .header(header::CONNECTION, connection)
                .header(header::UPGRADE, "websocket")
                .body(())
                .expect("request")
        };
        assert!(is_upgrade(&req(Version::HTTP_11, "keep-alive, Upgrade")));
        assert!(!is_upgrade(&req(Version::HTTP_11, "keep-alive")));
        assert!(!is_upgrade(&req(Version::HTTP_10, "upgrade")));
    }
}
