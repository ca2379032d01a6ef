//! Forwarding one request: limits, the body limit, endpoint choice through the
//! route's balancer, timeouts and retries on other endpoints, affinity cookies.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Body;
use ingress_core::Scheme;
use ingress_core::annotations::HeaderPolicy;
use ingress_core::annotations::retries::{DEFAULT_TRIES, TryOutcome};
use ingress_core::lb::outlier::Outcome;
use ingress_core::lb::{EndpointSet, PickInput};
use ingress_core::routing::{BackendId, EndpointAddr};

use crate::access::Access;
use crate::balance::{now, now_ns, ns_at};
use crate::errors::ErrorContext;
use crate::headers::{
    RequestNames, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PORT, X_FORWARDED_PREFIX,
    X_FORWARDED_PROTO, X_REAL_IP, clean_request, ip_value, remove_hop_by_hop,
};
use crate::limits::RouteLimits;
use crate::live::Live;
use crate::pool::{PoolSettings, PooledBody, SendError};
use crate::request_body::{Limited, Recoverable};
use crate::service::{ConnInfo, Inner, ProxyBody, empty, is_upgrade};
use crate::upstream::{UpstreamClient, Wire, WireError};

/// What forwarding one request needs.
pub(crate) struct Forwarding<'a> {
    pub(crate) live: &'a Live,
    /// The route's index in the table.
    pub(crate) route: usize,
    /// The balancer's index in the table's balancers.
    pub(crate) balancer: usize,
    pub(crate) hash_key: Option<&'a str>,
    pub(crate) cookie: Option<&'a str>,
    /// The backend the balancer picks in.
    pub(crate) backend: BackendId,
    /// The client's request target, for error pages.
    pub(crate) original_uri: &'a str,
    pub(crate) target: &'a str,
    pub(crate) upstream_host: &'a str,
    pub(crate) client_host: &'a str,
    pub(crate) scheme: Scheme,
    pub(crate) conn: Option<ConnInfo>,
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) request_id: HeaderValue,
    pub(crate) forwarded_prefix: Option<&'a str>,
    pub(crate) headers: Option<&'a HeaderPolicy>,
    /// A copy of the request to send to the route's mirror.
    pub(crate) mirror: Option<Box<crate::mirror::Shadow>>,
    /// Where external auth leaves the cookies for the client's response.
    pub(crate) auth_cookies: &'a crate::auth::CookieCell,
}

/// The absolute URI the pooled client sends to: `http(s)://endpoint/target`
/// (built from parts: no formatting and parsing of the whole URI per request).
fn upstream_uri(scheme: &str, authority: Authority, target: &str) -> Option<Uri> {
    if !target.starts_with('/') {
        return None;
    }
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match scheme {
        "https" => http::uri::Scheme::HTTPS,
        _ => http::uri::Scheme::HTTP,
    });
    parts.authority = Some(authority);
    parts.path_and_query = Some(PathAndQuery::try_from(target).ok()?);
    Uri::from_parts(parts).ok()
}

/// A port as a header value (`X-Forwarded-Port`): the listener's port is the
/// same request after request, so the last value written is kept per thread and
/// shared rather than formatted again.
fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((p, v)) if *p == port => v.clone(),
            _ => {
                let v = HeaderValue::from(port);
                *last = Some((port, v.clone()));
                v
            }
        }
    })
}

/// An IP address as a header value, the last one written kept per thread: the
/// peer of a keep-alive connection is the same request after request.
fn cached_ip_value(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((p, v)) if *p == ip => v.clone(),
            _ => {
                let v = ip_value(ip);
                *last = Some((ip, v.clone()));
                v
            }
        }
    })
}

/// The fields the gateway writes into the head it sends upstream, over the
/// client's own: kept so that a retry writes them again onto a copy of the
/// client's fields (cheaper to keep than a copy of the whole head).
struct GatewayFields<'a> {
    /// The route's header control (applied first: the gateway's fields win).
    policy: Option<&'a HeaderPolicy>,
    /// The `Upgrade` protocol of an upgrade.
    protocol: Option<HeaderValue>,
    /// The connection's peer (appended to `X-Forwarded-For`).
    peer: Option<IpAddr>,
    client_ip: Option<IpAddr>,
    /// A trusted peer's `X-Forwarded-*` fields are kept.
    trusted_peer: bool,
    https: bool,
    forwarded_host: Option<HeaderValue>,
    port: Option<HeaderValue>,
    request_id: &'a HeaderValue,
    forwarded_prefix: Option<&'a str>,
    upstream_host: &'a str,
    /// The client's field names (scanned before the gateway writes its own):
    /// `X-Forwarded-For` and `X-Forwarded-Prefix` are looked for only when the
    /// client sent them (or header control may have written them).
    client: RequestNames,
}

impl GatewayFields<'_> {
    /// Write the fields onto `headers` (the client's, hop-by-hop and
    /// underscored fields removed); `Err` when the upstream host is no valid
    /// header value.
    fn write(&self, headers: &mut HeaderMap) -> Result<(), ()> {
        // The route's header control first, so the gateway's own headers below win.
        if let Some(h) = self.policy {
            h.request.apply(headers);
        }
        if let Some(p) = &self.protocol {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, p.clone());
        }
        // Header control may write any field.
        let policy = self.policy.is_some();
        let mut peer_value = None;
        if let Some(peer) = self.peer {
            // Append the peer; several incoming lines are joined into one.
            let value = cached_ip_value(peer);
            let xff = if (policy || self.client.forwarded_for)
                && headers.contains_key(&X_FORWARDED_FOR)
            {
                let mut xff: Vec<&str> = headers
                    .get_all(&X_FORWARDED_FOR)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .collect();
                xff.push(value.to_str().unwrap_or_default());
                HeaderValue::from_str(&xff.join(", ")).ok()
            } else {
                Some(value.clone())
            };
            if let Some(v) = xff {
                headers.insert(X_FORWARDED_FOR, v);
            }
            peer_value = Some((peer, value));
        }
        if let Some(ip) = self.client_ip {
            let v = match peer_value {
                Some((peer, v)) if peer == ip => v,
                _ => ip_value(ip),
            };
            headers.insert(X_REAL_IP, v);
        }
        let trusted_peer = self.trusted_peer;
        let mut set_forwarded = |name: HeaderName, value: Option<HeaderValue>| {
            if trusted_peer && headers.contains_key(&name) {
                return;
            }
            match value {
                Some(v) => {
                    headers.insert(name, v);
                }
                None => {
                    headers.remove(name);
                }
            }
        };
        let proto = if self.https { "https" } else { "http" };
        set_forwarded(X_FORWARDED_PROTO, Some(HeaderValue::from_static(proto)));
        set_forwarded(X_FORWARDED_HOST, self.forwarded_host.clone());
        set_forwarded(X_FORWARDED_PORT, self.port.clone());
        headers.insert(crate::headers::X_REQUEST_ID, self.request_id.clone());
        match self.forwarded_prefix.map(HeaderValue::from_str) {
            Some(Ok(v)) => {
                headers.insert(X_FORWARDED_PREFIX, v);
            }
            _ if policy || self.client.forwarded_prefix => {
                headers.remove(X_FORWARDED_PREFIX);
            }
            _ => {}
        }
        // The client's own `Host` line is kept as it is when it is the upstream
        // host (no copy); else the upstream host is written.
        let same_host = headers
            .get(header::HOST)
            .is_some_and(|h| h.as_bytes() == self.upstream_host.as_bytes());
        if !same_host {
            let h = HeaderValue::from_str(self.upstream_host).map_err(|_| ())?;
            headers.insert(header::HOST, h);
        }
        Ok(())
    }
}

/// The origin-form URI (`/path?query`) the pool's connections send.
fn origin_uri(target: &str) -> Option<Uri> {
    if !target.starts_with('/') {
        return None;
    }
    Some(Uri::from(PathAndQuery::try_from(target).ok()?))
}

/// An endpoint as a URI authority (`10.0.0.1:8080`, `[fd00::1]:80`).
pub(crate) fn authority_of(endpoint: &EndpointAddr) -> Option<Authority> {
    Authority::try_from(endpoint.to_string()).ok()
}

/// The URI of a request to an HTTP/2 upstream: `:authority` is the request's
/// upstream host (the client's, or `upstream-vhost`), when it is a valid one.
fn h2_uri(scheme: &str, host: &str, target: &str) -> Option<Uri> {
    if host.is_empty() {
        return None;
    }
    format!("{scheme}://{host}{target}").parse().ok()
}

/// Whether an upstream error is a timeout (connect timeout): 504, else 502.
pub(crate) fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether an upstream error is a failed TLS handshake (certificate refused...).
fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|i| i.is::<rustls::Error>())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether an upstream error is a malformed response head.
fn is_parse_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether a failed try ran on a pooled keep-alive connection, one opened before
/// the try started (which the upstream may have closed just as the request went
/// out), rather than on a connection made for it.
fn on_pooled_connection(e: &SendError, started: Instant) -> bool {
    let SendError::Client(e) = e else {
        return e.on_reused();
    };
    e.connect_info().is_some_and(|c| {
        let mut extras = http::Extensions::new();
        c.get_extras(&mut extras);
        extras
            .get::<crate::connect::Opened>()
            .is_some_and(|o| o.0 < started)
    })
}

/// GET, HEAD, PUT, DELETE, OPTIONS, TRACE (RFC 9110 §9.2.2).
fn idempotent(m: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ]
    .contains(m)
}

impl Inner {
    /// The client for these timeouts and wire: the default one, or one per
    /// distinct (timeouts, wire) (copy-on-write map, no lock and no allocation on
    /// the request path once made).
    pub(crate) fn client_for(
        &self,
        connect: Duration,
        send: Duration,
        wire: &Wire<'_>,
    ) -> Result<UpstreamClient, WireError> {
        if wire.is_default()
            && (connect, send) == (self.options.connect_timeout, self.options.send_timeout)
        {
            return Ok(self.client.clone());
        }
        if let Some(c) = self.clients.load().get(connect, send, wire) {
            return Ok(c);
        }
        let made =
            crate::upstream::client_for_wire(connect, send, self.options.pool_idle_timeout, wire)?;
        self.clients
            .rcu(|m| Arc::new(m.with(connect, send, wire, &made)));
        Ok(self.clients.load().get(connect, send, wire).unwrap_or(made))
    }

    pub(crate) async fn forward(
        &self,
        mut req: Request<ProxyBody>,
        f: Forwarding<'_>,
        access: &mut Access,
    ) -> Response<ProxyBody> {
        let Some(route) = f.live.table().routes().get(f.route) else {
            return self.error(StatusCode::SERVICE_UNAVAILABLE, "no-route");
        };
        let policy = route.policy();
        let https = f.scheme == Scheme::Https;
        let backend = f.live.table().backend(f.backend);
        let wire = Wire::for_backend(
            policy.backend.protocol,
            policy.backend.upstream_tls.as_ref(),
            https,
            (backend.namespace(), backend.service()),
        );
        let Some((balancer, affinity)) = f.live.balancers.get(f.balancer) else {
            return self.error(StatusCode::SERVICE_UNAVAILABLE, "no-endpoints");
        };
        // Limits first: a rejected request costs no upstream contact.
        let admitted = match f.live.limits.route(f.route) {
            RouteLimits::None => None,
            RouteLimits::Broken => {
                return self.error(StatusCode::SERVICE_UNAVAILABLE, "unenforced-policy");
            }
            RouteLimits::Some(limits) => {
                let client = f.client_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                // With Redis the rates are counted cluster-wide; connections stay
                // per replica.
                let checked = match self.global_for(f.live) {
                    None => limits.check(client, now()),
                    // Boxed: a cold path whose state would otherwise sit in every
                    // request's future (copied with it).
                    Some(global) => match limits.admit_connection(client) {
                        Ok(a) => Box::pin(global.check(
                            route.ingress(),
                            limits.policy(),
                            client,
                            &self.metrics,
                        ))
                        .await
                        .map(|()| a),
                        Err(r) => Err(r),
                    },
                };
                match checked {
                    Ok(a) => Some(a),
                    Err(r) => {
                        let mut resp = self.error(r.status, "limited");
                        if let Some(after) = r.retry_after {
                            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
                            resp.headers_mut()
                                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                        }
                        return resp;
                    }
                }
            }
        };
        // The body limit: a declared length is checked before any upstream contact;
        // a streamed body is cut when it grows past it.
        let body_limit = policy
            .body
            .request_body_limit(self.options.max_request_body);
        if let Some(max) = body_limit {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) || req.body().size_hint().lower() > max {
                return self.error(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");
            }
        }
        // Authentication (nginx's access phase, after limits): a denial is answered
        // without upstream contact.
        if let Err(resp) = self.authorize(&mut req, &f, route).await {
            return resp;
        }
        let accept = req.headers().get(header::ACCEPT).cloned();
        // An HTTP/1.1 upgrade, or an HTTP/2 extended CONNECT (RFC 8441) sent
        // upstream as one.
        let connect_protocol = crate::websocket::extended_connect(&req);
        let upgrade = is_upgrade(&req) || connect_protocol.is_some();
        let protocol = match &connect_protocol {
            Some(p) => Some(p.clone()),
            None => upgrade
                .then(|| req.headers().get(header::UPGRADE).cloned())
                .flatten(),
        };
        if connect_protocol.is_some() && wire.h2 {
            return self.error(
                StatusCode::BAD_GATEWAY,
                "extended-connect-to-http2-upstream",
            );
        }
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let retries = &policy.retries;
        let (mut parts, body) = req.into_parts();
        if let Some(p) = &connect_protocol {
            crate::websocket::to_http1_upgrade(
                &mut parts,
                p,
                [self.ids.random(), self.ids.random()],
            );
        }
        let trusted_peer = f
            .conn
            .is_some_and(|c| self.options_for(f.live).trusted.contains(c.peer.ip()));
        parts.extensions = http::Extensions::new();
        // Refusals close HTTP/1 connections; an HTTP/1 chunked body (framing
        // checked in `service`) has its first chunk read ahead.
        let http1 = parts.version <= Version::HTTP_11;
        let chunked = http1 && parts.headers.contains_key(header::TRANSFER_ENCODING) && !upgrade;
        let headers = &mut parts.headers;
        // The client's `Host` value, shared (not copied) for `X-Forwarded-Host`
        // when it is the client host.
        let client_host_value = headers
            .get(header::HOST)
            .filter(|h| h.as_bytes() == f.client_host.as_bytes())
            .cloned();
        let client_names = RequestNames::scan(headers);
        clean_request(headers, &client_names);
        // The gateway's own fields, written onto the client's (again for a retry:
        // the copy kept for one holds the client's fields only).
        let gateway = GatewayFields {
            policy: f.headers,
            protocol,
            peer: f.conn.map(|c| c.peer.ip().to_canonical()),
            client_ip: f.client_ip,
            trusted_peer,
            https,
            forwarded_host: client_host_value.or_else(|| HeaderValue::from_str(f.client_host).ok()),
            port: f.conn.map(|c| port_value(c.local.port())),
            request_id: &f.request_id,
            forwarded_prefix: f.forwarded_prefix,
            upstream_host: f.upstream_host,
            client: client_names,
        };
        // A request without a body is replayed; one with a body (streamed, never
        // buffered) only while the body is untouched (a failed connect), so a
        // new try needs the head again either way.
        // The copy is kept only when a retry is possible at all
        // (`proxy-next-upstream: off` never retries, not even a stale connection).
        let head = (!retries.on.off).then(|| (parts.method.clone(), headers.clone()));
        if gateway.write(headers).is_err() {
            return self.error(StatusCode::BAD_REQUEST, "bad-host");
        }
        let version = if wire.h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        parts.version = version;

        let timeouts = &policy.timeouts;
        let (connect, send) = (
            timeouts.connect_or(self.options_for(f.live).connect_timeout),
            timeouts.send_or(self.options_for(f.live).send_timeout),
        );
        // HTTP/2 clients are per endpoint (see `upstream`), so made per try;
        // plain HTTP/1.1 to an IP endpoint goes through the endpoint's own pool
        // (`crate::pool`), the rest through hyper-util's client.
        let shared = if wire.h2 || wire.is_default() {
            None
        } else {
            match self.client_for(connect, send, &wire) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "no TLS configuration for the upstream");
                    return self.error(StatusCode::BAD_GATEWAY, "upstream-tls-config");
                }
            }
        };
        let read_timeout = timeouts.read_or(self.options_for(f.live).read_timeout);
        let first = Instant::now();
        let deadline = timeouts.total_or(None).map(|t| first + t);
        let may_retry_method = idempotent(&parts.method);
        // The client's body, watched, so that a body the client breaks (a bad
        // chunk) is answered 400 + close, not blamed on the upstream; a chunked
        // body's first chunk is read before any upstream contact, so one broken
        // from its first size line reaches no upstream at all.
        // Requests without a body (most) are not wrapped.
        let (body, client_failed) = if body.is_end_stream() {
            (body, None)
        } else {
            let (mut watched, failed) = crate::framing::Watched::new(body);
            if chunked {
                let read = tokio::time::timeout(read_timeout, watched.read_ahead()).await;
                let refused = match read {
                    Ok(Ok(())) => None,
                    Ok(Err(_)) => Some((StatusCode::BAD_REQUEST, "bad-request-body")),
                    Err(_) => Some((StatusCode::REQUEST_TIMEOUT, "request-body-timeout")),
                };
                if let Some((status, why)) = refused {
                    return self.refuse(status, why, http1);
                }
            }
            (watched.boxed_unsync(), Some(failed))
        };
        let replay = body.is_end_stream();
        // Set when the body grows past the limit (only bodies are wrapped).
        let mut tripped = None;
        let body = match body_limit {
            Some(max) if !body.is_end_stream() => {
                let flag = Arc::new(AtomicBool::new(false));
                tripped = Some(flag.clone());
                Limited {
                    inner: body,
                    left: max,
                    tripped: flag,
                }
                .boxed_unsync()
            }
            _ => body,
        };
        // Upgrades are not copied: their bytes belong to one tunnel.
        let body = match f.mirror {
            Some(copy) if !upgrade => self.mirror(*copy, &parts, body, read_timeout),
            _ => body,
        };
        let (body, waiting) = if replay {
            (body, None)
        } else {
            let slot = Arc::new(Mutex::new(None));
            (Recoverable::wrap(body, &slot), Some(slot))
        };
        let mut next = Some((parts, body));
        let mut tried = EndpointSet::new();
        let mut tries = 0u32;
        let mut stale_retried = false;
        // The cluster's circuit breaker: a full cluster refuses at once.
        let cluster = f.live.balancers.cluster(f.balancer);
        // The route's own outlier values and ceilings over the gateway's defaults.
        let defaults = self.options_for(f.live);
        let outlier_config = cluster.map(|c| c.outlier.apply(&defaults.outlier));
        let circuit = cluster.map(|c| c.circuit.apply(&defaults.circuit));
        let pool_settings = PoolSettings {
            idle_timeout: defaults.pool_idle_timeout,
            max_idle: defaults.pool_max_idle_per_endpoint,
            connect,
            send,
            read_size: defaults.upstream_read_size,
        };
        let slot = match (cluster, &circuit) {
            (Some(c), Some(circuit)) => match c.breaker.try_request(circuit) {
                Some(s) => Some(s),
                None => {
                    self.metrics.circuit_overflow(c.name);
                    return self.error(StatusCode::SERVICE_UNAVAILABLE, "upstream-overflow");
                }
            },
            _ => None,
        };
        let mut _retry_slot = None;
        let (resp, pick) = loop {
            let now = now_ns();
            // Ejected endpoints are avoided, unless nothing else is left (panic mode).
            let mut avoid = tried.clone();
            let ejected = cluster.map_or(0, |c| c.outliers.add_ejected(now, &mut avoid));
            let pick_with = |avoid: &EndpointSet| {
                let mut input = PickInput::new(self.ids.random(), now).avoiding(avoid);
                if let Some(k) = f.hash_key {
                    input = input.with_hash_key(k);
                }
                if let Some(c) = f.cookie {
                    input = input.with_cookie(c);
                }
                if tries > 0 {
                    input = input.retrying();
                }
                balancer.pick(&input)
            };
            let picked = match pick_with(&avoid) {
                None if ejected > 0 => pick_with(&tried),
                p => p,
            };
            let Some((pick, endpoint)) =
                picked.and_then(|p| Some((p, balancer.endpoint(p.index)?)))
            else {
                return self.error(StatusCode::SERVICE_UNAVAILABLE, "no-endpoints");
            };
            let (mut parts, body) = match next.take() {
                Some(p) => p,
                None => {
                    let Some(head) = &head else {
                        return self.error(StatusCode::BAD_GATEWAY, "upstream-error");
                    };
                    let body = match &waiting {
                        None => empty(),
                        Some(slot) => match Recoverable::take(slot) {
                            Some(b) => Recoverable::wrap(b, slot),
                            None => {
                                return self.error(StatusCode::BAD_GATEWAY, "upstream-unreachable");
                            }
                        },
                    };
                    let mut again = Request::new(body);
                    *again.method_mut() = head.0.clone();
                    *again.version_mut() = version;
                    let mut headers = head.1.clone();
                    if gateway.write(&mut headers).is_err() {
                        return self.error(StatusCode::BAD_REQUEST, "bad-host");
                    }
                    *again.headers_mut() = headers;
                    again.into_parts()
                }
            };
            let pool = if wire.is_default() {
                cluster.and_then(|c| c.pool(pick.index, endpoint))
            } else {
                None
            };
            let client = match (pool, &shared) {
                (Some(_), _) => None,
                (None, Some(c)) => Some(c.clone()),
                (None, None) => {
                    let w = if wire.h2 { wire.at(endpoint) } else { wire };
                    match self.client_for(connect, send, &w) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "no TLS configuration for the upstream");
                            return self.error(StatusCode::BAD_GATEWAY, "upstream-tls-config");
                        }
                    }
                }
            };
            // The endpoint's address, written once per table (see `Cluster`).
            let upstream = cluster
                .and_then(|c| c.authority(pick.index, endpoint))
                .or_else(|| authority_of(endpoint));
            // Over HTTP/2 the request's host is the `:authority` (the client is
            // bound to the endpoint), and no `Host` header goes with it.
            let authority = match wire
                .h2
                .then(|| h2_uri(wire.scheme(), f.upstream_host, f.target))
            {
                Some(Some(u)) => {
                    parts.headers.remove(header::HOST);
                    Some(u)
                }
                // The pool's connections take the origin form: the client's own
                // URI when it is that target already (no copy, no parse).
                _ if pool.is_some()
                    && parts.uri.scheme().is_none()
                    && parts.uri.path_and_query().map(PathAndQuery::as_str) == Some(f.target) =>
                {
                    Some(std::mem::take(&mut parts.uri))
                }
                _ if pool.is_some() => origin_uri(f.target),
                _ => upstream
                    .clone()
                    .and_then(|a| upstream_uri(wire.scheme(), a, f.target)),
            };
            parts.uri = match authority {
                Some(u) => u,
                None => return self.error(StatusCode::BAD_REQUEST, "bad-target"),
            };
            tried.insert(pick.index);
            tries += 1;
            access.upstream.clone_from(&upstream);
            let upstream = upstream.as_ref().map_or("", Authority::as_str);
            let sent = Instant::now();
            let wait = match deadline {
                Some(d) => read_timeout.min(d.saturating_duration_since(sent)),
                None => read_timeout,
            };
            balancer.on_start(pick.index);
            let req = Request::from_parts(parts, body);
            let call = async {
                match (pool, client) {
                    (Some(p), _) => p.send(req, &pool_settings).await,
                    (None, Some(c)) => c
                        .request(req)
                        .await
                        .map(|r| r.map(PooledBody::plain))
                        .map_err(SendError::Client),
                    (None, None) => unreachable!("a client is chosen when there is no pool"),
                }
            };
            let result = tokio::time::timeout(wait, call).await;
            // One clock read for the try's latency, the balancer, the access
            // line and outlier detection.
            let ended = Instant::now();
            let ended_ns = ns_at(ended);
            let latency = ended.saturating_duration_since(sent);
            balancer.on_end(
                pick.index,
                u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
                ended_ns,
            );
            access.upstream_elapsed = Some(ended.saturating_duration_since(first));
            let mut stale = false;
            let (outcome, sent_upstream, status, why) = match result {
                Ok(Ok(resp)) => (TryOutcome::Status(resp.status()), true, None, Ok(resp)),
                Err(_) => (
                    TryOutcome::Timeout,
                    true,
                    Some(StatusCode::GATEWAY_TIMEOUT),
                    Err("upstream-timeout"),
                ),
                Ok(Err(_)) if tripped.as_ref().is_some_and(|t| t.load(Ordering::Relaxed)) => {
                    return self.error(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large");
                }
                // Before the client-body check: a stalled body also marks it failed.
                Ok(Err(e)) if crate::conn::is_body_idle_timeout(&e) => {
                    // The client stopped sending its body (nginx's client_body_timeout).
                    let mut resp = self.error(StatusCode::REQUEST_TIMEOUT, "client-body-timeout");
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    return resp;
                }
                Ok(Err(_))
                    if client_failed
                        .as_ref()
                        .is_some_and(|f| f.load(Ordering::Relaxed)) =>
                {
                    return self.refuse(StatusCode::BAD_REQUEST, "bad-request-body", http1);
                }
                Ok(Err(e)) if e.is_connect() => {
                    self.metrics.upstream_connect_error(upstream);
                    tracing::debug!(upstream, tries, error = %e, "upstream connect failed");
                    if is_timeout(&e) {
                        let why = Err("upstream-connect-timeout");
                        (
                            TryOutcome::Timeout,
                            false,
                            Some(StatusCode::GATEWAY_TIMEOUT),
                            why,
                        )
                    } else if is_tls_error(&e) {
                        let why = Err("upstream-tls-handshake");
                        (TryOutcome::Error, false, Some(StatusCode::BAD_GATEWAY), why)
                    } else {
                        let why = Err("upstream-unreachable");
                        (TryOutcome::Error, false, Some(StatusCode::BAD_GATEWAY), why)
                    }
                }
                Ok(Err(e)) if is_timeout(&e) => {
                    tracing::debug!(upstream, tries, error = %e, "upstream send timed out");
                    let why = Err("upstream-send-timeout");
                    (
                        TryOutcome::Timeout,
                        true,
                        Some(StatusCode::GATEWAY_TIMEOUT),
                        why,
                    )
                }
                Ok(Err(e)) => {
                    tracing::debug!(upstream, tries, error = %e, "upstream request failed");
                    let outcome = if is_parse_error(&e) {
                        TryOutcome::InvalidHeader
                    } else {
                        stale = on_pooled_connection(&e, sent);
                        TryOutcome::Error
                    };
                    let why = Err("upstream-error");
                    (outcome, true, Some(StatusCode::BAD_GATEWAY), why)
                }
            };
            let in_time = deadline.is_none_or(|d| Instant::now() < d);
            // A try that failed on a pooled keep-alive connection (the upstream
            // closed it as the request went out) gets one more, which may go to the
            // same endpoint, as nginx gives a failed cached connection an extra
            // try; it counts against neither the tries nor the endpoint's health.
            let stale_retry = stale
                && !stale_retried
                && replay
                && retries.should_retry(outcome, may_retry_method, sent_upstream)
                && in_time;
            if stale_retry {
                stale_retried = true;
                tried.remove(pick.index);
                tries -= 1;
            }
            if let (Some(c), Some(config), false) = (cluster, &outlier_config, stale_retry) {
                let health = match &why {
                    Ok(resp) => Outcome::of_status(resp.status()),
                    Err(_) => Outcome::GatewayFailure,
                };
                if let Some(e) = c.outliers.record(pick.index, health, ended_ns, config) {
                    self.metrics.ejection(c.name);
                    tracing::warn!(
                        cluster = %c.name,
                        upstream,
                        duration = ?e.duration,
                        ejections = e.ejections,
                        "endpoint ejected by outlier detection"
                    );
                }
            }
            // A body is replayable only while untouched: the try never got a
            // connection.
            let replayable =
                replay || (!sent_upstream && waiting.as_ref().is_some_and(Recoverable::waiting));
            let again = stale_retry
                || (replayable
                    && retries.should_retry(outcome, may_retry_method, sent_upstream)
                    && retries.budget_left(tries, first.elapsed(), DEFAULT_TRIES)
                    && tried.len() < balancer.len()
                    && in_time);
            // A retry needs a retry slot of the cluster (no retry storms).
            let again = again
                && match (cluster, &circuit) {
                    (Some(c), Some(circuit)) => match c.breaker.try_retry(circuit) {
                        Some(s) => {
                            _retry_slot = Some(s);
                            true
                        }
                        None => {
                            self.metrics.circuit_overflow(c.name);
                            false
                        }
                    },
                    _ => true,
                };
            match why {
                Ok(resp) if !again => break (resp, pick),
                Err(why) if !again => {
                    return self.error(status.unwrap_or(StatusCode::BAD_GATEWAY), why);
                }
                _ => {
                    self.metrics.upstream_retry(upstream);
                    tracing::debug!(upstream, tries, ?outcome, "retrying on another endpoint");
                }
            }
        };
        if policy.fallback.intercepts(resp.status(), &[]) {
            // Boxed, as the other cold paths (see the global limits above).
            let page = Box::pin(self.error_page(ErrorContext {
                live: f.live,
                route: f.route,
                status: resp.status(),
                accept,
                original_uri: f.original_uri,
                service: (
                    backend.namespace(),
                    backend.service(),
                    backend.service_port(),
                ),
                request_id: f.request_id,
                read_timeout,
            }))
            .await;
            // The limits and circuit slots are held until the response body ends.
            access.held = (admitted, slot);
            return page;
        }
        let mut resp = resp;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return self.error(StatusCode::BAD_GATEWAY, "unexpected-upgrade");
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            self.tunnels.spawn(client_upgrade, upstream_upgrade);
            let (mut parts, _) = resp.into_parts();
            if connect_protocol.is_some() {
                crate::websocket::to_http2_tunnel(&mut parts);
            }
            return Response::from_parts(parts, empty());
        }
        // A 2xx to an extended CONNECT would open the client's tunnel onto nothing.
        if connect_protocol.is_some() && resp.status().is_success() {
            return self.error(StatusCode::BAD_GATEWAY, "upgrade-refused");
        }
        let (mut parts, body) = resp.into_parts();
        // Never re-frame an ambiguous response: 502, and the upstream connection
        // goes with the unread body.
        if let Err(why) = crate::framing::check_response(parts.version, &mut parts.headers) {
            tracing::debug!(why, "upstream response refused");
            return self.error(StatusCode::BAD_GATEWAY, why);
        }
        remove_hop_by_hop(&mut parts.headers);
        if let Some(h) = f.headers {
            h.response.apply(&mut parts.headers);
        }
        if pick.set_cookie
            && let Some(a) = affinity
            && let Some(value) = balancer.cookie_value(pick.index)
        {
            let unix = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let path = route.path().map_or("/", |p| p.as_str());
            parts
                .headers
                .append(header::SET_COOKIE, a.set_cookie(value, https, unix, path));
        }
        let body = body.map_err(Into::into).boxed_unsync();
        // The response body is wrapped once, by the caller (`ResponseBody`): it
        // holds the limits and circuit slots until the body ends and, when a body
        // is still to come, watches the time between two reads.
        access.held = (admitted, slot);
        if !body.is_end_stream() {
            access.read_idle = Some(read_timeout);
        }
        Response::from_parts(parts, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connect error")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn timeouts_are_found_in_the_source_chain() {
        let timed_out = Wrapped(std::io::Error::new(std::io::ErrorKind::TimedOut, "t"));
        let refused = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_timeout(&timed_out));
        assert!(!is_timeout(&refused));
    }

    #[test]
    fn port_values_are_kept_per_port() {
        assert_eq!(port_value(80), "80");
        assert_eq!(port_value(80), "80");
        assert_eq!(port_value(8443), "8443");
        assert_eq!(port_value(80), "80");
    }

    #[test]
    fn peer_values_are_kept_per_address() {
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "::1".parse().expect("ip");
        assert_eq!(cached_ip_value(a), "10.0.0.1");
        assert_eq!(cached_ip_value(a), "10.0.0.1");
        assert_eq!(cached_ip_value(b), "::1");
        assert_eq!(cached_ip_value(a), "10.0.0.1");
    }

    #[test]
    fn origin_form_targets() {
        assert_eq!(
            origin_uri("/a?b=1").map(|u| u.to_string()).as_deref(),
            Some("/a?b=1")
        );
        assert!(origin_uri("a").is_none());
    }

    #[test]
    fn a_retry_head_is_the_first_head() {
        // The client's fields, as `forward` keeps them for a retry.
        let mut client = HeaderMap::new();
        client.insert(header::HOST, HeaderValue::from_static("app.example"));
        client.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.9"));
        client.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        let kept = client.clone();
        let id = HeaderValue::from_static("0123abcd");
        let gateway = GatewayFields {
            policy: None,
            protocol: None,
            peer: Some("10.0.0.1".parse().expect("ip")),
            client_ip: Some("192.0.2.9".parse().expect("ip")),
            trusted_peer: false,
            https: false,
            forwarded_host: Some(HeaderValue::from_static("app.example")),
            port: Some(port_value(80)),
            request_id: &id,
            forwarded_prefix: None,
            upstream_host: "svc.internal",
            client: RequestNames::scan(&client),
        };
        let mut first = client;
        gateway.write(&mut first).expect("first head");
        assert_eq!(first[X_FORWARDED_FOR], "192.0.2.9, 10.0.0.1");
        assert_eq!(first[X_FORWARDED_PROTO], "http");
        assert_eq!(first[X_REAL_IP], "192.0.2.9");
        assert_eq!(first[crate::headers::X_REQUEST_ID], "0123abcd");
        assert_eq!(first[header::HOST], "svc.internal");
        // A retry writes the fields again onto the kept copy: the same head, the
        // peer appended once.
        let mut again = kept;
        gateway.write(&mut again).expect("retry head");
        assert_eq!(again, first);
        // An upstream host that is no header value is refused.
        let bad = GatewayFields {
            upstream_host: "a\nb",
            ..gateway
        };
        assert!(bad.write(&mut HeaderMap::new()).is_err());
    }

    #[test]
    fn forwarded_for_and_prefix_are_looked_for_only_when_sent() {
        let id = HeaderValue::from_static("id");
        let fields = |client: &HeaderMap, prefix: Option<&'static str>| GatewayFields {
            policy: None,
            protocol: None,
            peer: Some("10.0.0.1".parse().expect("ip")),
            client_ip: None,
            trusted_peer: false,
            https: false,
            forwarded_host: None,
            port: None,
            request_id: &id,
            forwarded_prefix: prefix,
            upstream_host: "svc",
            client: RequestNames::scan(client),
        };
        // Sent by the client: appended to, and removed when the route sets none.
        let mut sent = HeaderMap::new();
        sent.insert(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.9"));
        sent.insert(X_FORWARDED_PREFIX, HeaderValue::from_static("/evil"));
        let names = RequestNames::scan(&sent);
        assert!(names.forwarded_for && names.forwarded_prefix);
        let mut first = sent.clone();
        fields(&sent, None).write(&mut first).expect("head");
        assert_eq!(first[X_FORWARDED_FOR], "192.0.2.9, 10.0.0.1");
        assert!(!first.contains_key(X_FORWARDED_PREFIX));
        let mut routed = sent.clone();
        fields(&sent, Some("/app"))
            .write(&mut routed)
            .expect("head");
        assert_eq!(routed[X_FORWARDED_PREFIX], "/app");
        // Not sent: the peer alone, no prefix.
        let none = HeaderMap::new();
        assert_eq!(RequestNames::scan(&none), RequestNames::default());
        let mut first = none.clone();
        fields(&none, None).write(&mut first).expect("head");
        assert_eq!(first[X_FORWARDED_FOR], "10.0.0.1");
        assert!(!first.contains_key(X_FORWARDED_PREFIX));
    }

    #[test]
    fn idempotent_methods() {
        assert!(idempotent(&Method::GET));
        assert!(idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST));
        assert!(!idempotent(&Method::PATCH));
    }
}
