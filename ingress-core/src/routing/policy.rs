//! Carrying out a route's policy for one request: redirects, access lists, CORS,
//! canary choice and rewrites. Pure: randomness comes in [`RouteInputs`].

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, Method, StatusCode};

use crate::annotations::canary::{CanaryReason, CanaryVerdict};
use crate::annotations::routing::RewriteTarget;
use crate::compile::Profile;

use super::decision::{Decision, Forward, Redirect, RedirectReason, Respond, RespondReason};
use super::request::{RequestView, clean_query};
use super::table::{BackendId, BackendStatus, CanaryRoute, Route, RouteMatch, RouteTable};

/// Per-request inputs that are not part of the request: the caller supplies
/// randomness, so the core stays pure and tests stay deterministic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteInputs {
    /// A uniformly random number for weighted canaries. `None`: weighted canaries are
    /// not chosen (header, cookie and query canaries still are).
    pub roll: Option<u32>,
}

impl RouteInputs {
    /// Inputs with this roll.
    pub fn with_roll(roll: u32) -> Self {
        RouteInputs { roll: Some(roll) }
    }
}

/// Where the ACME HTTP-01 challenge lives: never redirected to HTTPS.
const ACME_PREFIX: &str = "/.well-known/acme-challenge";

impl RouteTable {
    /// The decision for a request that matched `route`, carrying out its policy in
    /// this order: fail closed, app-root, HTTPS redirect, IP lists, fixed redirects,
    /// CORS preflight, canary, backend health, rewrite.
    pub(crate) fn decide_route<'a>(
        &'a self,
        route: &'a Route,
        req: &RequestView<'a>,
        path: Cow<'a, str>,
        inputs: &RouteInputs,
    ) -> Decision<'a> {
        let pol = &*route.policy;
        let hp = &*route.host_policy;
        let respond = |status, reason| {
            Decision::Respond(Respond {
                route: Some(route),
                backend: None,
                status,
                reason,
                response_headers: Cow::Borrowed(&[]),
            })
        };
        let redirect = |status, location, reason| {
            Decision::Redirect(Redirect {
                route: Some(route),
                status,
                location,
                reason,
                response_headers: Cow::Borrowed(&[]),
            })
        };
        if pol.fail_closed.is_some() {
            return respond(
                StatusCode::SERVICE_UNAVAILABLE,
                RespondReason::InvalidPolicy,
            );
        }
        if path == "/"
            && let Some(root) = &hp.app_root
        {
            let scheme = scheme_str(req);
            return redirect(
                StatusCode::FOUND,
                format!("{scheme}://{}{root}", req.host),
                RedirectReason::AppRoot,
            );
        }
        if req.scheme == super::Scheme::Http && !path.starts_with(ACME_PREFIX) {
            let r = &pol.redirect;
            let nginx = self.profile == Profile::IngressNginx;
            if r.force_ssl_redirect || (r.ssl_redirect.unwrap_or(nginx) && hp.has_tls) {
                // ingress-nginx strips one trailing `/` unless asked not to; Envoy
                // (Higress) keeps the path as it is.
                let preserve = r.preserve_trailing_slash || !nginx;
                return redirect(
                    StatusCode::PERMANENT_REDIRECT,
                    https_location(req, preserve),
                    RedirectReason::Https,
                );
            }
        }
        if pol.access.is_set() || hp.access.is_set() {
            use crate::annotations::access::AccessVerdict;
            // `satisfy: any`: authentication may still let the request in; the data
            // plane decides (AuthPolicy::defers_access).
            if pol.access.check(req.client_ip, Some(&hp.access)) != AccessVerdict::Allowed
                && !pol.auth.defers_access()
            {
                return respond(StatusCode::FORBIDDEN, RespondReason::Forbidden);
            }
        }
        if let Some(to) = &pol.redirect.to {
            let reason = if to.temporal {
                RedirectReason::Temporal
            } else {
                RedirectReason::Permanent
            };
            // ingress-nginx answers `return <code> <url>` (the URL as written); Higress
            // keeps the request's path and query when the URL names no path.
            let mut location = to.url.to_string();
            if self.profile == Profile::Standard && to.url.path_and_query.is_empty() {
                location.push_str(req.path);
                if let Some(q) = req.query {
                    location.push('?');
                    location.push_str(q);
                }
            }
            return redirect(to.status, location, reason);
        }
        let cors = pol.cors.as_ref().and_then(|c| {
            c.allow_origin(req.headers.get(http::header::ORIGIN))
                .map(|o| (c, o))
        });
        // A preflight: ingress-nginx answers every OPTIONS of a CORS location; Envoy
        // (Higress) only an OPTIONS with Access-Control-Request-Method.
        let preflight = *req.method == Method::OPTIONS
            && (self.profile == Profile::IngressNginx
                || req
                    .headers
                    .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD));
        if let Some((c, origin)) = &cors
            && preflight
        {
            return Decision::Respond(Respond {
                route: Some(route),
                backend: None,
                status: StatusCode::NO_CONTENT,
                reason: RespondReason::CorsPreflight,
                response_headers: Cow::Owned(c.response_headers(origin.clone(), true)),
            });
        }
        let canary = self.pick_canary(route, req, inputs);
        let backend_id: BackendId = canary.map_or(route.backend, |(c, _)| c.backend);
        let mut backend = &self.backends[backend_id.0 as usize];
        let mut via_default_backend = false;
        // The ready bits, not the backends' own status: a decision that forwards
        // reads no backend (see `Backends`).
        let mut ready = self.backends.is_ready(backend_id.0 as usize);
        // `default-backend`: serves when the route's Service has no endpoints.
        if !ready
            && let Some(fb) = route.fallback
            && self.backends.is_ready(fb.0 as usize)
        {
            backend = &self.backends[fb.0 as usize];
            via_default_backend = true;
            ready = true;
        }
        let reason = match backend.status {
            _ if ready => None,
            BackendStatus::Ready => None,
            BackendStatus::ServiceNotFound => Some(RespondReason::ServiceNotFound),
            BackendStatus::PortNotFound => Some(RespondReason::ServicePortNotFound),
            BackendStatus::NoEndpoints => Some(RespondReason::NoEndpoints),
            BackendStatus::Unsupported => Some(RespondReason::UnsupportedBackend),
        };
        if let Some(reason) = reason {
            return Decision::Respond(Respond {
                route: Some(route),
                backend: Some(backend),
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason,
                response_headers: Cow::Borrowed(&[]),
            });
        }
        let response_headers: Cow<'a, [(HeaderName, HeaderValue)]> = match cors {
            Some((c, origin)) => Cow::Owned(c.response_headers(origin, false)),
            None => Cow::Borrowed(&[]),
        };
        let mut upstream_query = req.query.map(clean_query);
        let mut upstream_path = path;
        let mut rewritten = false;
        if let Some(target) = &pol.routing.rewrite_path {
            upstream_path = Cow::Owned(replace_prefix(route, &upstream_path, target));
            rewritten = true;
        } else if let Some(t) = &pol.routing.rewrite {
            let new = expand(route, t, &upstream_path);
            let (new_path, new_query) = match new.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(clean_query(q).into_owned())),
                None => (new, None),
            };
            if t.redirect {
                let location = match (&new_query, &upstream_query) {
                    (Some(q), _) => format!("{new_path}?{q}"),
                    (None, Some(q)) => format!("{new_path}?{q}"),
                    (None, None) => new_path,
                };
                return Decision::Redirect(Redirect {
                    route: Some(route),
                    status: StatusCode::FOUND,
                    location,
                    reason: RedirectReason::RewriteToUrl,
                    response_headers,
                });
            }
            if t.has_query {
                upstream_query = new_query.map(Cow::Owned);
            }
            upstream_path = Cow::Owned(if new_path.is_empty() {
                "/".into()
            } else {
                new_path
            });
            rewritten = true;
        }
        Decision::Forward(Forward {
            route,
            backend,
            upstream_path,
            upstream_query,
            upstream_host: pol.routing.upstream_vhost.as_deref().unwrap_or(req.host),
            response_headers,
            policy: pol,
            canary,
            via_default_backend,
            rewritten,
            forwarded_prefix: if rewritten {
                pol.routing.x_forwarded_prefix.as_deref()
            } else {
                None
            },
        })
    }

    /// Which canary (if any) takes the request: header, cookie and query rules of each
    /// canary in precedence order, then one weighted roll across all of them.
    fn pick_canary<'a>(
        &'a self,
        route: &'a Route,
        req: &RequestView<'a>,
        inputs: &RouteInputs,
    ) -> Option<(&'a CanaryRoute, CanaryReason)> {
        if route.canaries.is_empty() {
            return None;
        }
        if let Some(sticky) = self.affinity_pin(route, req) {
            return sticky;
        }
        for c in &route.canaries {
            let Some(rules) = &c.policy.canary else {
                continue;
            };
            match rules.decide_by_request(req.headers, req.query) {
                CanaryVerdict::Canary(reason) => return Some((c, reason)),
                CanaryVerdict::Primary(_) => return None,
                CanaryVerdict::FallThrough => {}
            }
        }
        let roll = inputs.roll?;
        let total = route
            .canaries
            .iter()
            .filter_map(|c| c.policy.canary.as_ref().map(|p| p.total(self.profile)))
            .max()?;
        // ingress-nginx: r uniform in 1..=total; canary iff r <= weight.
        let r = roll % total + 1;
        let mut cumulative = 0u32;
        for c in &route.canaries {
            let w = c.policy.canary.as_ref().map_or(0, |p| p.weight);
            cumulative = cumulative.saturating_add(w);
            if w > 0 && r <= cumulative {
                return Some((c, CanaryReason::Weight));
            }
        }
        None
    }

    /// Session affinity pins canary decisions (`affinity-canary-behavior: sticky`,
    /// the default): a cookie naming an endpoint of a canary goes there, one naming
    /// an endpoint of the primary stays. `Some(None)` = pinned to the primary.
    #[allow(clippy::option_option)]
    fn affinity_pin<'a>(
        &'a self,
        route: &'a Route,
        req: &RequestView<'a>,
    ) -> Option<Option<(&'a CanaryRoute, CanaryReason)>> {
        if route.policy.canary_affinity_legacy {
            return None;
        }
        let aff = route.policy.affinity.as_ref()?;
        let value = aff.request_cookie(req.headers)?;
        let holds = |b: BackendId| {
            self.backends[b.0 as usize]
                .endpoints
                .iter()
                .any(|e| crate::annotations::affinity::cookie_value(&e.to_string()) == value)
        };
        for c in &route.canaries {
            if holds(c.backend) {
                return Some(Some((c, CanaryReason::Affinity)));
            }
        }
        holds(route.backend).then_some(None)
    }
}

fn scheme_str(req: &RequestView<'_>) -> &'static str {
    match req.scheme {
        super::Scheme::Http => "http",
        super::Scheme::Https => "https",
    }
}

/// `https://<host without port><request URI>`; one trailing `/` of the whole URI is
/// removed unless `preserve` (only when the URI has no query), as lua_ingress.lua does.
fn https_location(req: &RequestView<'_>, preserve: bool) -> String {
    let host = strip_port(req.host);
    let mut uri = String::from(req.path);
    match req.query {
        Some(q) => {
            uri.push('?');
            uri.push_str(q);
        }
        None if !preserve && uri.ends_with('/') => {
            uri.pop();
        }
        None => {}
    }
    format!("https://{host}{uri}")
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Expand a rewrite target for a matched path: with the path regex's capture groups
/// when the route matches as a regex (the whole path is replaced, as nginx's
/// `rewrite ... break`); otherwise (standard profile, plain paths) the matched
/// prefix is replaced by the target.
fn expand(route: &Route, t: &RewriteTarget, path: &str) -> String {
    if let Some(re) = &route.regex {
        let caps = re.0.captures(path);
        return t.expand(|n| caps.as_ref().and_then(|c| c.get(n)).map(|m| m.as_str()));
    }
    if t.has_groups() || t.redirect {
        return t.expand(|_| None);
    }
    replace_prefix(route, path, &t.raw)
}

/// Replace the route's matched prefix with `target` (Exact: the whole path), joining
/// with exactly one `/`.
fn replace_prefix(route: &Route, path: &str, target: &str) -> String {
    let rest = match &route.matcher {
        RouteMatch::Path(p) if p.path_type() != crate::model::PathType::Exact => {
            let key = p.as_str().trim_end_matches('/');
            path.strip_prefix(key).unwrap_or("")
        }
        _ => "",
    };
    if rest.is_empty() || rest == "/" {
        return if rest == "/" && !target.ends_with('/') {
            format!("{target}/")
        } else {
            target.to_owned()
        };
    }
    let mut out = String::with_capacity(target.len() + rest.len());
    out.push_str(target.trim_end_matches('/'));
    out.push_str(rest);
    out
}
