//! [`Decision`]: what the gateway does with one request.

use std::borrow::Cow;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use super::table::{Backend, Route};

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
            Decision::Forward(f) => f.response_headers,
            Decision::Redirect(r) => r.response_headers,
            Decision::Respond(r) => r.response_headers,
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
    /// Path to send upstream (normalised; later, rewritten).
    pub upstream_path: Cow<'a, str>,
    /// Query string to send upstream, without `?`, unchanged.
    pub upstream_query: Option<&'a str>,
    /// Host header to send upstream (the client's, unchanged).
    pub upstream_host: &'a str,
    /// Headers to add to the upstream's response.
    pub response_headers: &'a [(HeaderName, HeaderValue)],
}

impl<'a> Forward<'a> {
    /// The request target to send upstream: path, then `?query` if any.
    pub fn upstream_target(&self) -> Cow<'a, str> {
        match self.upstream_query {
            Some(q) => Cow::Owned(format!("{}?{q}", self.upstream_path)),
            None => self.upstream_path.clone(),
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
    /// Headers to set on the answer.
    pub response_headers: &'a [(HeaderName, HeaderValue)],
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
    pub response_headers: &'a [(HeaderName, HeaderValue)],
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
        }
    }
}
