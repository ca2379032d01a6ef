//! Routing: the compiled [`RouteTable`] and the per-request [`Decision`].
//!
//! Host precedence: an exact host, then a wildcard (`*.example.com` covers exactly one
//! extra label in both profiles: ingress-nginx renders it as the regex
//! `^[\w-]+\.example\.com$`), then rules without a host, then the default backend. In the standard profile a host
//! whose paths do not match falls through to the next level; in the ingress-nginx
//! profile the first host level that exists decides (then that host's default
//! backend, then 404). Path precedence is [`Rank`].

mod decision;
mod explain;
mod hosts;
mod matching;
mod policy;
mod request;
mod table;

use std::borrow::Cow;

use http::StatusCode;

pub use decision::{Decision, Forward, Redirect, RedirectReason, Respond, RespondReason};
pub use explain::{Explanation, HostLevel, Step, Verdict};
pub(crate) use hosts::HostMap;
pub use matching::Rank;
pub(crate) use matching::{MatchKind, match_key};
pub use policy::RouteInputs;
pub use request::{RequestView, Scheme, normalize_path};
pub use table::{
    Backend, BackendId, BackendStatus, CanaryRoute, DefaultScope, EndpointAddr, EndpointHost,
    HostPolicy, PortRef, Route, RouteHost, RouteId, RouteMatch, RouteTable, Routes, RoutesIter,
    TlsBinding, TlsProblem,
};
pub(crate) use table::{HostRoutes, SMALL_HOST};

use crate::compile::Profile;

/// Which host level answered, and with which route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) route: Option<RouteId>,
    pub(crate) level: HostLevel,
}

impl RouteTable {
    /// Decide what to do with one request, without randomness: weighted canaries are
    /// not chosen (see [`RouteTable::route_with`]). Pure and allocation-free unless
    /// the path needs normalising or a policy rewrites it. "No route" is a decision
    /// (404), not an error.
    pub fn route<'a>(&'a self, req: &RequestView<'a>) -> Decision<'a> {
        self.route_with(req, &RouteInputs::default())
    }

    /// Decide what to do with one request, with caller-supplied randomness for
    /// weighted canaries. A data plane calls this with a fresh random roll.
    pub fn route_with<'a>(&'a self, req: &RequestView<'a>, inputs: &RouteInputs) -> Decision<'a> {
        let mut buf = [0u8; 256];
        let Some(host) = request::host_key(req.host, &mut buf) else {
            return self.respond(None, StatusCode::BAD_REQUEST, RespondReason::BadHost);
        };
        let path = normalize_path(req.path);
        let found = self.find(host, &path);
        if found.route.is_none()
            && self.www_redirects
            && let Some(d) = self.www_redirect_for(host, req)
        {
            return d;
        }
        self.decide(found.route, req, path, inputs)
    }

    /// `from-to-www-redirect`: `www.<host>` to `<host>` (or the reverse) when the
    /// other name is a host with the annotation and the requested name has no route.
    pub(crate) fn www_redirect_for<'a>(
        &'a self,
        host: &str,
        req: &RequestView<'a>,
    ) -> Option<Decision<'a>> {
        if !self.www_redirects {
            return None;
        }
        let other: std::borrow::Cow<'_, str> = match host.strip_prefix("www.") {
            Some(bare) => bare.into(),
            None => format!("www.{host}").into(),
        };
        if self.exact_hosts.contains_key(host) {
            return None;
        }
        let hr = self.exact_hosts.get(other.as_ref())?;
        if !hr.policy.as_ref().is_some_and(|p| p.from_to_www) {
            return None;
        }
        let scheme = match req.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let query = req.query.map(|q| format!("?{q}")).unwrap_or_default();
        Some(Decision::Redirect(Redirect {
            route: None,
            status: StatusCode::PERMANENT_REDIRECT,
            location: format!("{scheme}://{other}{}{query}", req.path),
            reason: RedirectReason::Www,
            response_headers: Cow::Borrowed(&[]),
        }))
    }

    /// The route for a normalised lower-case host and a normalised path: the host
    /// levels in order, then the catch-all. In the ingress-nginx profile a named host
    /// (exact or wildcard) answers alone: its own default backend, else 404.
    pub(crate) fn find(&self, host: &str, path: &str) -> Found {
        let nginx = self.profile == Profile::IngressNginx;
        for level in [HostLevel::Exact, HostLevel::Wildcard, HostLevel::AnyHost] {
            let hr = match level {
                HostLevel::Exact => self.exact_hosts.host(host),
                HostLevel::Wildcard => self.wildcard_host(host),
                _ => self.any_host.as_ref().map(hosts::HostRef::plain),
            };
            let Some(hr) = hr else { continue };
            if let Some(id) = hr.lookup(path, nginx) {
                return Found {
                    route: Some(id),
                    level,
                };
            }
            if nginx && level != HostLevel::AnyHost {
                return Found {
                    route: hr.fallback(),
                    level,
                };
            }
        }
        Found {
            route: self.catch_all,
            level: HostLevel::CatchAll,
        }
    }

    /// The wildcard host covering `host`: one extra, non-empty label.
    pub(crate) fn wildcard(&self, host: &str) -> Option<&HostRoutes> {
        self.wildcard_host(host).map(|h| h.routes())
    }

    #[inline]
    fn wildcard_host(&self, host: &str) -> Option<hosts::HostRef<'_>> {
        if self.wildcard_hosts.is_empty() {
            return None;
        }
        // A byte loop, not `split_once`: the first label is short, and the `str`
        // searcher's set-up cost more than the scan (this runs for every request
        // that no exact host answers).
        let dot = host.bytes().position(|c| c == b'.')?;
        if dot == 0 {
            return None;
        }
        // `dot` is an ASCII byte, so `dot + 1` is a char boundary.
        let suffix = host.get(dot + 1..)?;
        self.wildcard_hosts.host(suffix)
    }

    pub(crate) fn decide<'a>(
        &'a self,
        route: Option<RouteId>,
        req: &RequestView<'a>,
        path: Cow<'a, str>,
        inputs: &RouteInputs,
    ) -> Decision<'a> {
        let Some(id) = route else {
            return self.respond(None, StatusCode::NOT_FOUND, RespondReason::NoRoute);
        };
        self.decide_route(self.routes.slot(id.index()), req, path, inputs)
    }

    fn respond<'a>(
        &'a self,
        route: Option<&'a Route>,
        status: StatusCode,
        reason: RespondReason,
    ) -> Decision<'a> {
        Decision::Respond(Respond {
            route,
            backend: None,
            status,
            reason,
            response_headers: Cow::Borrowed(&[]),
        })
    }
}
