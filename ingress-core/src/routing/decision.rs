//! [`Decision`]: what the gateway does with one request.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use super::table::{Backend, CanaryRoute, Route};
use crate::annotations::canary::CanaryReason;
use crate::annotations::{HeaderPolicy, IngressPolicy};

/// What the gateway does with one request. Borrowed from the table (and the request),
/// so computing one allocates only when a path had to be normalised.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Decision<'a> {
    /// Send it upstream.
    Forward(Forward<'a>),
    /// Answer with a redirect.
    Redirect(Redirect<'a>),
    /// Answer directly (no route, no backend...).
    Respond(Respond<'a>),
}

impl<'a> Decision<'a> {
    /// The route that decided, if a route matched.
    pub fn route(&self) -> Option<&'a Route> {
        match self {
            Decision::Forward(f) => Some(f.route),
            Decision::Redirect(r) => r.route,
            Decision::Respond(r) => r.route,
        }
    }

    /// The backend, if the decision names one (also for a 503 whose backend cannot serve).
    pub fn backend(&self) -> Option<&'a Backend> {
        match self {
            Decision::Forward(f) => Some(f.backend),
            Decision::Redirect(_) => None,
            Decision::Respond(r) => r.backend,
        }
    }

    /// The status the gateway answers with itself; `None` when forwarding.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Decision::Forward(_) => None,
            Decision::Redirect(r) => Some(r.status),
            Decision::Respond(r) => Some(r.status),
        }
    }

    /// `forward`, `redirect` or `respond`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Forward(_) => "forward",
            Decision::Redirect(_) => "redirect",
            Decision::Respond(_) => "respond",
        }
    }

    /// Headers the gateway sets on its own answer or adds to the upstream's answer.
    pub fn response_headers(&self) -> &[(HeaderName, HeaderValue)] {
        match self {
            Decision::Forward(f) => &f.response_headers,
            Decision::Redirect(r) => &r.response_headers,
            Decision::Respond(r) => &r.response_headers,
        }
    }
}

/// Forward the request upstream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Forward<'a> {
    /// The matched route.
    pub route: &'a Route,
    /// The backend and its endpoints (non-empty).
    pub backend: &'a Backend,
    /// Path to send upstream: normalised, then rewritten if the route asks.
    pub upstream_path: Cow<'a, str>,
    /// Query string to send upstream, without `?`: the client's, or the rewrite
    /// target's own.
    pub upstream_query: Option<Cow<'a, str>>,
    /// Host header to send upstream: `upstream-vhost`, else the client's.
    pub upstream_host: &'a str,
    /// Headers to add to the upstream's response (CORS).
    pub response_headers: Cow<'a, [(HeaderName, HeaderValue)]>,
    /// The primary route's policy (timeouts, retries, limits, auth, body, TLS to the
    /// upstream...).
    pub policy: &'a IngressPolicy,
    /// The canary that took the request, if one did, and why.
    pub canary: Option<(&'a CanaryRoute, CanaryReason)>,
    /// The route's backend could not serve, and the `default-backend` annotation's
    /// Service does.
    pub via_default_backend: bool,
    /// The path was rewritten (`rewrite-target` / `rewrite-path`).
    pub rewritten: bool,
    /// `X-Forwarded-Prefix` to send upstream (only when rewritten).
    pub forwarded_prefix: Option<&'a str>,
}

impl<'a> Forward<'a> {
    /// The request target to send upstream: path, then `?query` if any.
    pub fn upstream_target(&self) -> Cow<'a, str> {
        match &self.upstream_query {
            Some(q) => Cow::Owned(format!("{}?{q}", self.upstream_path)),
            None => self.upstream_path.clone(),
        }
    }

    /// The header control to apply: the canary's own when a canary took the request
    /// (as Higress does), else the route's.
    pub fn header_policy(&self) -> &'a HeaderPolicy {
        match self.canary {
            Some((c, _)) => &c.policy().headers,
            None => &self.policy.headers,
        }
    }

    /// The policy for endpoint choice (load balancing and affinity): the canary's own
    /// when a canary took the request, else the route's.
    pub fn balancing_policy(&self) -> &'a IngressPolicy {
        match self.canary {
            Some((c, _)) => c.policy(),
            None => self.policy,
        }
    }
}

/// Answer with a redirect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Redirect<'a> {
    /// The route that asked for it.
    pub route: Option<&'a Route>,
    /// 301, 302, 307 or 308.
    pub status: StatusCode,
    /// The Location header.
    pub location: String,
    /// Why.
    pub reason: RedirectReason,
    /// Headers to set on the answer.
    pub response_headers: Cow<'a, [(HeaderName, HeaderValue)]>,
}

/// Why the gateway redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RedirectReason {
    /// `app-root`: a request for `/`.
    AppRoot,
    /// `ssl-redirect` / `force-ssl-redirect`: plain HTTP to HTTPS.
    Https,
    /// `permanent-redirect`.
    Permanent,
    /// `temporal-redirect`.
    Temporal,
    /// A `rewrite-target` that is an absolute URL (nginx answers 302).
    RewriteToUrl,
    /// `from-to-www-redirect`.
    Www,
}

impl RedirectReason {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectReason::AppRoot => "app-root",
            RedirectReason::Https => "https",
            RedirectReason::Permanent => "permanent",
            RedirectReason::Temporal => "temporal",
            RedirectReason::RewriteToUrl => "rewrite-to-url",
            RedirectReason::Www => "www",
        }
    }
}

/// Answer directly.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Respond<'a> {
    /// The route, if one matched.
    pub route: Option<&'a Route>,
    /// The backend that could not serve, if any.
    pub backend: Option<&'a Backend>,
    /// The status.
    pub status: StatusCode,
    /// Why.
    pub reason: RespondReason,
    /// Headers to set on the answer.
    pub response_headers: Cow<'a, [(HeaderName, HeaderValue)]>,
}

/// Why the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RespondReason {
    /// No host, path or default backend matched: 404.
    NoRoute,
    /// The Host header is not a usable host name: 400.
    BadHost,
    /// The backend Service does not exist: 503.
    ServiceNotFound,
    /// The Service has no such port: 503.
    ServicePortNotFound,
    /// The Service has no usable endpoints: 503.
    NoEndpoints,
    /// The backend kind is not served by this gateway: 503.
    UnsupportedBackend,
    /// An annotation of the route's Ingress is invalid, refused or cannot be
    /// enforced: 503 (fail closed).
    InvalidPolicy,
    /// The client address is denied, or not allowed, by an IP list: 403.
    Forbidden,
    /// A CORS preflight answered by the gateway: 204.
    CorsPreflight,
}

impl RespondReason {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            RespondReason::NoRoute => "no-route",
            RespondReason::BadHost => "bad-host",
            RespondReason::ServiceNotFound => "service-not-found",
            RespondReason::ServicePortNotFound => "service-port-not-found",
            RespondReason::NoEndpoints => "no-endpoints",
            RespondReason::UnsupportedBackend => "unsupported-backend",
            RespondReason::InvalidPolicy => "invalid-policy",
            RespondReason::Forbidden => "forbidden",
            RespondReason::CorsPreflight => "cors-preflight",
        }
    }
}
