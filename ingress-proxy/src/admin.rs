//! The admin listener: `GET /healthz`, `/readyz`, `/metrics`, `/routes`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::live::LiveTable;
use crate::metrics::Metrics;

/// Answers admin requests.
#[derive(Debug, Clone)]
pub struct Admin {
    live: Arc<LiveTable>,
    metrics: Arc<Metrics>,
}

impl Admin {
    /// Admin endpoints over the live table and the metrics.
    pub fn new(live: Arc<LiveTable>, metrics: Arc<Metrics>) -> Self {
        Admin { live, metrics }
    }

    /// Answer one request:
    /// - `/healthz`: 200 while the process serves;
    /// - `/readyz`: 200 once a table is live, else 503;
    /// - `/metrics`: Prometheus/OpenMetrics text;
    /// - `/routes`: the live table as `ingressctl routes -o json` prints it, plus the
    ///   table `version`.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            );
        }
        match req.uri().path() {
            "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" if self.live.is_ready() => {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            }
            "/readyz" => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "no configuration applied yet\n".into(),
            ),
            "/metrics" => {
                self.metrics
                    .tls_certificates(&self.live.load(), crate::certs::system_now());
                self.metrics.refresh_allocator();
                reply(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    self.metrics.encode(),
                )
            }
            "/routes" => {
                let live = self.live.load();
                let mut doc = ingress_core::report::routes(live.table(), live.diagnostics());
                if let Some(m) = doc.as_object_mut() {
                    m.insert("version".into(), live.version().into());
                }
                let body = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
                reply(StatusCode::OK, "application/json", body)
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
