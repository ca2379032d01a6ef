//! `spec.limits` of the gateway config: the bounds on one client connection
//! (ingress-proxy's `Limits`), each optional; a field left out keeps the data
//! plane's flag.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `IngressGatewayConfig.spec.limits`: bounds on client connections. Every field is
/// optional; one left out keeps the data plane's own setting (its flag). They apply
/// to connections accepted after the config is applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Connections open at once per listener (0: no limit); one more is closed at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// HTTP/1.1: request line and headers, in bytes, 8192 to 1048576 (431 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_head_bytes: Option<i64>,
    /// HTTP/1.1: headers per request, 1 to 10000 (431 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_headers: Option<i64>,
    /// HTTP/1.1: time for a request head to arrive (`30s`); the connection closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// Longest wait for the next piece of a request body (`60s`); 408.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_idle_timeout: Option<String>,
    /// How long a write to a client that does not read may stay blocked (`60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_timeout: Option<String>,
    /// A connection with no request in flight for this long is closed (`60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_timeout: Option<String>,
    /// Time allowed for a TLS handshake (`10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_timeout: Option<String>,
    /// HTTP/2: concurrent streams per connection, 1 to 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_max_concurrent_streams: Option<i64>,
    /// HTTP/2: initial stream window in bytes, 1 to 2147483647.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_stream_window: Option<i64>,
    /// HTTP/2: connection window in bytes, 65535 to 2147483647.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_connection_window: Option<i64>,
    /// HTTP/2: decoded header list of one request in bytes, 1024 to 16777216.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_max_header_list_size: Option<i64>,
    /// HTTP/2: streams reset by the client before being accepted (rapid reset), 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_max_pending_accept_resets: Option<i64>,
    /// HTTP/2: streams the gateway reset for protocol errors, 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_max_local_error_resets: Option<i64>,
}

/// `spec.limits`, validated: `None` keeps the data plane's own setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GatewayLimits {
    /// Connections per listener (0: no limit).
    pub max_connections: Option<u64>,
    /// HTTP/1.1 request head bytes.
    pub max_request_head_bytes: Option<u64>,
    /// HTTP/1.1 headers per request.
    pub max_headers: Option<u64>,
    /// HTTP/1.1 header read timeout.
    pub header_read_timeout: Option<Duration>,
    /// Request body idle timeout.
    pub body_idle_timeout: Option<Duration>,
    /// Client write stall timeout.
    pub send_timeout: Option<Duration>,
    /// Idle connection timeout.
    pub keep_alive_timeout: Option<Duration>,
    /// TLS handshake timeout.
    pub tls_handshake_timeout: Option<Duration>,
    /// HTTP/2 concurrent streams.
    pub h2_max_concurrent_streams: Option<u32>,
    /// HTTP/2 stream window.
    pub h2_stream_window: Option<u32>,
    /// HTTP/2 connection window.
    pub h2_connection_window: Option<u32>,
    /// HTTP/2 header list size.
    pub h2_max_header_list_size: Option<u32>,
    /// HTTP/2 pending accept resets.
    pub h2_max_pending_accept_resets: Option<u64>,
    /// HTTP/2 local error resets.
    pub h2_max_local_error_resets: Option<u64>,
}

/// The accepted range (inclusive) of each numeric limit, shared by the CRD's
/// validation and the data plane's flags. hyper and h2 panic on some values
/// outside them (a head buffer under 8 KiB, a window over 2^31-1).
pub mod limit_ranges {
    /// Connections per listener (0: no limit).
    pub const MAX_CONNECTIONS: (u64, u64) = (0, 10_000_000);
    /// HTTP/1.1 request head bytes.
    pub const REQUEST_HEAD: (u64, u64) = (8 * 1024, 1024 * 1024);
    /// HTTP/1.1 headers.
    pub const HEADERS: (u64, u64) = (1, 10_000);
    /// HTTP/2 concurrent streams.
    pub const H2_STREAMS: (u64, u64) = (1, 10_000);
    /// HTTP/2 stream window.
    pub const H2_STREAM_WINDOW: (u64, u64) = (1, (1 << 31) - 1);
    /// HTTP/2 connection window.
    pub const H2_CONNECTION_WINDOW: (u64, u64) = (65_535, (1 << 31) - 1);
    /// HTTP/2 header list bytes.
    pub const H2_HEADER_LIST: (u64, u64) = (1024, 16 * 1024 * 1024);
    /// HTTP/2 reset counts.
    pub const H2_RESETS: (u64, u64) = (1, 100_000);
    /// HTTP/2 send buffer per stream.
    pub const H2_SEND_BUFFER: (u64, u64) = (1024, 16 * 1024 * 1024);
}

/// Validate `spec.limits`, reporting each bad field by its path.
pub(crate) fn validate_limits(
    spec: &LimitsSpec,
    err: &mut impl FnMut(String, String),
) -> GatewayLimits {
    use limit_ranges as r;
    let mut int = |v: Option<i64>, name: &str, (lo, hi): (u64, u64)| -> Option<u64> {
        let v = v?;
        match u64::try_from(v) {
            Ok(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                err(
                    format!("spec.limits.{name}"),
                    format!("{v} is not in {lo}..={hi}"),
                );
                None
            }
        }
    };
    let mut out = GatewayLimits {
        max_connections: int(spec.max_connections, "maxConnections", r::MAX_CONNECTIONS),
        max_request_head_bytes: int(
            spec.max_request_head_bytes,
            "maxRequestHeadBytes",
            r::REQUEST_HEAD,
        ),
        max_headers: int(spec.max_headers, "maxHeaders", r::HEADERS),
        h2_max_pending_accept_resets: int(
            spec.h2_max_pending_accept_resets,
            "h2MaxPendingAcceptResets",
            r::H2_RESETS,
        ),
        h2_max_local_error_resets: int(
            spec.h2_max_local_error_resets,
            "h2MaxLocalErrorResets",
            r::H2_RESETS,
        ),
        ..GatewayLimits::default()
    };
    let to32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
    out.h2_max_concurrent_streams = to32(int(
        spec.h2_max_concurrent_streams,
        "h2MaxConcurrentStreams",
        r::H2_STREAMS,
    ));
    out.h2_stream_window = to32(int(
        spec.h2_stream_window,
        "h2StreamWindow",
        r::H2_STREAM_WINDOW,
    ));
    out.h2_connection_window = to32(int(
        spec.h2_connection_window,
        "h2ConnectionWindow",
        r::H2_CONNECTION_WINDOW,
    ));
    out.h2_max_header_list_size = to32(int(
        spec.h2_max_header_list_size,
        "h2MaxHeaderListSize",
        r::H2_HEADER_LIST,
    ));
    let mut time = |v: &Option<String>, name: &str| -> Option<Duration> {
        let v = v.as_deref()?;
        match super::parse_duration(v) {
            Some(d) if !d.is_zero() => Some(d),
            Some(_) => {
                err(
                    format!("spec.limits.{name}"),
                    "must be longer than zero".into(),
                );
                None
            }
            None => {
                err(
                    format!("spec.limits.{name}"),
                    format!("{v:?} is not a duration (500ms, 5s, 2m, 1h)"),
                );
                None
            }
        }
    };
    out.header_read_timeout = time(&spec.header_read_timeout, "headerReadTimeout");
    out.body_idle_timeout = time(&spec.body_idle_timeout, "bodyIdleTimeout");
    out.send_timeout = time(&spec.send_timeout, "sendTimeout");
    out.keep_alive_timeout = time(&spec.keep_alive_timeout, "keepAliveTimeout");
    out.tls_handshake_timeout = time(&spec.tls_handshake_timeout, "tlsHandshakeTimeout");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_typed_and_bad_ones_named() {
        let spec: LimitsSpec = serde_json::from_value(serde_json::json!({
            "maxConnections": 500,
            "maxRequestHeadBytes": 100,
            "maxHeaders": 50,
            "headerReadTimeout": "5s",
            "bodyIdleTimeout": "0s",
            "sendTimeout": "soon",
            "h2MaxConcurrentStreams": 20,
            "h2StreamWindow": 4294967296i64,
            "h2MaxPendingAcceptResets": -1
        }))
        .expect("spec");
        let mut errs = Vec::new();
        let l = validate_limits(&spec, &mut |f, m| errs.push((f, m)));
        assert_eq!(l.max_connections, Some(500));
        assert_eq!(l.max_headers, Some(50));
        assert_eq!(l.header_read_timeout, Some(Duration::from_secs(5)));
        assert_eq!(l.h2_max_concurrent_streams, Some(20));
        assert_eq!(l.max_request_head_bytes, None);
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.limits.maxRequestHeadBytes",
                "spec.limits.h2MaxPendingAcceptResets",
                "spec.limits.h2StreamWindow",
                "spec.limits.bodyIdleTimeout",
                "spec.limits.sendTimeout",
            ]
        );
    }
}
