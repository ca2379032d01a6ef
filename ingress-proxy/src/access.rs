//! The access log line and request metrics, written when the response body ends
//! (or is dropped), so bytes and total duration are exact; and the one wrapper
//! every response body gets ([`ResponseBody`]): it counts the bytes, writes the
//! line, holds the request's limits and circuit-breaker slots until the body ends, and
//! cuts an upstream body that stalls for longer than `proxy-read-timeout`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Version};
use hyper::body::{Body, Frame, SizeHint};
use ingress_core::Scheme;
use ingress_core::lb::circuit::Slot;
use ingress_core::limits::Admitted;

use crate::conn::IdleTimer;
use crate::live::RouteStats;
use crate::metrics::Metrics;
use crate::service::{BoxError, ProxyBody};

/// What one request's access log line says.
#[derive(Debug)]
pub(crate) struct Access {
    pub(crate) start: Instant,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) method: Method,
    pub(crate) version: Version,
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) client: Option<std::net::IpAddr>,
    pub(crate) request_id: HeaderValue,
    pub(crate) label: Option<Arc<RouteStats>>,
    pub(crate) decision: &'static str,
    pub(crate) upstream: Option<http::uri::Authority>,
    pub(crate) upstream_elapsed: Option<Duration>,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    /// Write the access line (`enable-access-log: "false"` turns it off; metrics
    /// still count the request).
    pub(crate) log: bool,
    /// The request's limits slot and circuit-breaker slot, released when the
    /// response body ends.
    pub(crate) held: (Option<Admitted>, Option<Slot>),
    /// `proxy-read-timeout` between two reads of an upstream body still to come.
    pub(crate) read_idle: Option<Duration>,
}

impl Access {
    fn finish(&self, complete: bool) {
        let total = self.start.elapsed();
        let (host, route) = self.label.as_ref().map_or(("", ""), |l| {
            (l.label.host.as_str(), l.label.route.as_str())
        });
        match &self.label {
            Some(stats) => self.metrics.route_request(stats, self.status, total),
            None => self.metrics.request(host, route, self.status, total),
        }
        if !self.log {
            return;
        }
        tracing::info!(
            target: "ingress_proxy::access",
            request_id = %String::from_utf8_lossy(self.request_id.as_bytes()),
            client = self.client.map(tracing::field::display),
            method = %self.method,
            protocol = ?self.version,
            scheme = match self.scheme {
                Scheme::Https => "https",
                _ => "http",
            },
            host = %self.host,
            path = %self.path,
            route = route,
            decision = self.decision,
            upstream = self.upstream.as_ref().map(http::uri::Authority::as_str),
            status = self.status,
            bytes = self.bytes,
            duration_ms = total.as_secs_f64() * 1e3,
            upstream_ms = self.upstream_elapsed.map(|d| d.as_secs_f64() * 1e3),
            complete,
            "request"
        );
    }
}

/// Every response body, wrapped once: counts its bytes and writes the access line
/// at its end (or drop), holds the limits slot until then, and fails when an
/// upstream body sends nothing for `proxy-read-timeout` (as nginx, between two
/// reads).
pub(crate) struct ResponseBody {
    inner: ProxyBody,
    access: Option<Access>,
    /// The read timeout, for bodies still to come.
    idle: Option<IdleTimer>,
}

/// The error a stalled upstream body ends with.
#[derive(Debug, thiserror::Error)]
#[error("upstream read timeout")]
struct ReadTimeout;

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: ProxyBody, mut access: Access) -> Self {
        let idle = access
            .read_idle
            .take()
            .filter(|_| !inner.is_end_stream())
            .map(IdleTimer::new);
        ResponseBody {
            inner,
            access: Some(access),
            idle,
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(mut a) = self.access.take() {
            a.held = (None, None);
            a.finish(complete);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(a)) = (frame.data_ref(), this.access.as_mut()) {
                    a.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(_))) => {}
            Poll::Pending => {
                if let Some(idle) = this.idle.as_mut()
                    && idle.expired(cx)
                {
                    this.idle = None;
                    return Poll::Ready(Some(Err(Box::new(ReadTimeout))));
                }
                return Poll::Pending;
            }
        }
        if let Some(idle) = this.idle.as_mut() {
            idle.progress();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
