//! gRPC requests answered by the gateway itself (no route, no endpoint, upstream
//! unreachable or timed out, limits...): a gRPC client reads the status from
//! `grpc-status`, not from the HTTP status, so such answers are turned into gRPC
//! "trailers-only" responses as Envoy does: HTTP 200, `content-type:
//! application/grpc`, `grpc-status` mapped from the HTTP status by the table of
//! gRPC's `http-grpc-status-mapping.md` (404 → 12 UNIMPLEMENTED; 429, 502, 503,
//! 504 → 14 UNAVAILABLE; ...) and `grpc-message` with the reason. Answers from the
//! upstream pass through unchanged, and so do redirects.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::service::{ProxyBody, empty};

/// Marks a response the gateway made itself, with its reason.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalReply(pub(crate) &'static str);

/// Whether a request is gRPC (`content-type: application/grpc`, `+proto`...).
pub(crate) fn is_grpc(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start();
            v.len() >= 16
                && v.as_bytes()[..16].eq_ignore_ascii_case(b"application/grpc")
                && v[16..].chars().next().is_none_or(|c| c == '+' || c == ';')
        })
}

/// The gRPC status code for an HTTP status the gateway answered with.
pub(crate) fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// Turn the gateway's own error answer into a trailers-only gRPC response; other
/// responses are returned as they are.
pub(crate) fn local_reply(resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let Some(LocalReply(why)) = resp.extensions().get::<LocalReply>().copied() else {
        return resp;
    };
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.status = StatusCode::OK;
    let h = &mut parts.headers;
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::CONNECTION);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        "grpc-status",
        HeaderValue::from(u16::from(grpc_status(status))),
    );
    let reason = status.canonical_reason().unwrap_or("");
    let message = format!("{} {reason} ({why})", status.as_u16());
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert("grpc-message", v);
    }
    Response::from_parts(parts, empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(v).expect("value"),
            );
            is_grpc(&h)
        };
        assert!(h("application/grpc"));
        assert!(h("application/grpc+proto"));
        assert!(h("Application/GRPC; charset=utf-8"));
        assert!(!h("application/grpc-web"));
        assert!(!h("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn statuses_map_as_grpc_documents() {
        assert_eq!(grpc_status(StatusCode::NOT_FOUND), 12);
        assert_eq!(grpc_status(StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(grpc_status(StatusCode::GATEWAY_TIMEOUT), 14);
        assert_eq!(grpc_status(StatusCode::TOO_MANY_REQUESTS), 14);
        assert_eq!(grpc_status(StatusCode::PAYLOAD_TOO_LARGE), 2);
    }
}
