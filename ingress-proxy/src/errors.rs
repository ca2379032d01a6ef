//! `custom-http-errors`: an upstream answer with a listed status is replaced by the
//! default backend's answer to `GET /` (with the headers ingress-nginx sends its
//! error pages), or by a small built-in page, always with the ORIGINAL status: an
//! error never turns into a success (CVE-2026-24513).

use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use ingress_core::lb::PickInput;

use crate::balance::now_ns;
use crate::headers::{X_REQUEST_ID, remove_hop_by_hop};
use crate::live::Live;
use crate::service::{Inner, ProxyBody, empty};

/// What the error page request says about the failed request.
pub(crate) struct ErrorContext<'a> {
    pub(crate) live: &'a Live,
    /// The route's index in the table.
    pub(crate) route: usize,
    /// The upstream's status.
    pub(crate) status: StatusCode,
    /// The client's `Accept` (`X-Format`).
    pub(crate) accept: Option<HeaderValue>,
    /// The client's request target (`X-Original-URI`).
    pub(crate) original_uri: &'a str,
    /// The Service that answered: namespace, name, port.
    pub(crate) service: (&'a str, &'a str, Option<u16>),
    pub(crate) request_id: HeaderValue,
    pub(crate) read_timeout: Duration,
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

impl Inner {
    /// The error page for an intercepted upstream answer.
    pub(crate) async fn error_page(&self, cx: ErrorContext<'_>) -> Response<ProxyBody> {
        if let Some(resp) = self.fetch_error_page(&cx).await {
            return resp;
        }
        let mut resp = self.error(cx.status, "");
        if let Ok(v) = HeaderValue::from_str(&cx.status.as_u16().to_string()) {
            resp.headers_mut().insert("x-code", v);
        }
        resp
    }

    /// `GET /` from the route's `default-backend` Service; `None` when there is
    /// none or it did not answer.
    async fn fetch_error_page(&self, cx: &ErrorContext<'_>) -> Option<Response<ProxyBody>> {
        let i = cx.live.balancers.fallback(cx.route)?;
        let (balancer, _) = cx.live.balancers.get(i)?;
        let pick = balancer.pick(&PickInput::new(self.ids.random(), now_ns()))?;
        let endpoint = balancer.endpoint(pick.index)?;
        let route = cx.live.table().routes().get(cx.route)?;
        let ingress = route.ingress();
        let uri: Uri = format!("http://{endpoint}/").parse().ok()?;
        let mut req = Request::new(empty());
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let (ns, svc, port) = cx.service;
        let accept = cx
            .accept
            .clone()
            .unwrap_or(HeaderValue::from_static("text/html"));
        let h = req.headers_mut();
        let pairs: [(&'static str, HeaderValue); 7] = [
            ("x-code", HeaderValue::from(cx.status.as_u16())),
            ("x-format", accept),
            ("x-original-uri", value(cx.original_uri)),
            ("x-namespace", value(ns)),
            ("x-ingress-name", value(&ingress.name)),
            ("x-service-name", value(svc)),
            (
                "x-service-port",
                port.map_or(HeaderValue::from_static(""), HeaderValue::from),
            ),
        ];
        for (n, v) in pairs {
            h.insert(HeaderName::from_static(n), v);
        }
        h.insert(X_REQUEST_ID, cx.request_id.clone());
        if let Ok(host) = HeaderValue::from_str(&endpoint.to_string()) {
            h.insert(header::HOST, host);
        }
        balancer.on_start(pick.index);
        let sent = Instant::now();
        let result = tokio::time::timeout(cx.read_timeout, self.client.request(req)).await;
        balancer.on_end(
            pick.index,
            u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX),
            now_ns(),
        );
        let resp = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(upstream = %endpoint, error = %e, "error page request failed");
                return None;
            }
            Err(_) => return None,
        };
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        // The original status, whatever the error page answered.
        parts.status = cx.status;
        Some(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed_unsync(),
        ))
    }
}
