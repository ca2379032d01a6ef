//! The access log line and request metrics, written when the response body ends
//! (or is dropped), so bytes and total duration are exact.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Version};
use hyper::body::{Body, Frame, SizeHint};
use ingress_core::Scheme;

use crate::live::RouteLabel;
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
    pub(crate) label: Option<RouteLabel>,
    pub(crate) decision: &'static str,
    pub(crate) upstream: Option<String>,
    pub(crate) upstream_elapsed: Option<Duration>,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    /// Write the access line (`enable-access-log: "false"` turns it off; metrics
    /// still count the request).
    pub(crate) log: bool,
}

impl Access {
    fn finish(&self, complete: bool) {
        let total = self.start.elapsed();
        let (host, route) = self
            .label
            .as_ref()
            .map_or(("", ""), |l| (l.host.as_str(), l.route.as_str()));
        self.metrics.request(host, route, self.status, total);
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
            upstream = self.upstream.as_deref(),
            status = self.status,
            bytes = self.bytes,
            duration_ms = total.as_secs_f64() * 1e3,
            upstream_ms = self.upstream_elapsed.map(|d| d.as_secs_f64() * 1e3),
            complete,
            "request"
        );
    }
}

/// A response body that counts its bytes and writes the access line at its end.
pub(crate) struct LoggedBody {
    inner: ProxyBody,
    access: Option<Access>,
}

impl std::fmt::Debug for LoggedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody").finish_non_exhaustive()
    }
}

impl LoggedBody {
    pub(crate) fn new(inner: ProxyBody, access: Access) -> Self {
        LoggedBody {
            inner,
            access: Some(access),
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(a)) = (frame.data_ref(), self.access.as_mut()) {
                    a.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(a) = self.access.take() {
                    a.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
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

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(a) = self.access.take() {
            let complete = self.inner.is_end_stream();
            a.finish(complete);
        }
    }
}
