//! [`Limits`]: what one client connection may take from the proxy — bytes, headers,
//! time, streams — set explicitly rather than left to hyper's defaults (which hyper
//! documents as unstable).
//!
//! The defaults follow the edge values of Envoy's edge guide and nginx (see
//! docs/SECURITY.md, "Limits"). Flags set them at start; in `--kube` mode the
//! gateway config's `spec.limits` is laid over the flags for every connection
//! accepted after the config was applied ([`Limits::with_gateway`]); connections
//! already open keep the limits they were accepted with.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use ingress_kube::gateway::GatewayLimits;

/// hyper's HTTP/1 header count limit when none is set (`max_headers` docs).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Bounds on one client connection. Every field has a safe default
/// ([`Limits::default`]); [`Limits::validate`] checks a hand-built value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections open at once per listener; one more is accepted and closed at
    /// once (`0`: no limit). Default 10 000.
    pub max_connections: usize,
    /// HTTP/1.1: the request line and headers together, in bytes (431 beyond, then
    /// close). At least 8 KiB (hyper's smallest buffer). Default 64 KiB.
    pub max_request_head: usize,
    /// HTTP/1.1: headers per request (431 beyond, then close). Default 100.
    pub max_headers: usize,
    /// HTTP/1.1: time allowed for a request head to arrive, counted from when the
    /// connection waits for one (so it also closes an idle keep-alive connection);
    /// the connection is closed without an answer. Default 30 s.
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body (nginx's
    /// `client_body_timeout`): 408 if no answer was sent yet, and the connection
    /// (HTTP/1.1) or stream (HTTP/2) is closed. Default 60 s.
    pub body_idle_timeout: Duration,
    /// How long a write to the client may stay blocked because the client does not
    /// read (nginx's `send_timeout`); the connection is closed. Default 60 s.
    pub send_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1.1)
    /// or sent GOAWAY (HTTP/2). Default 60 s.
    pub keep_alive_timeout: Duration,
    /// Time allowed for a TLS handshake; the connection is closed. Default 10 s.
    pub handshake_timeout: Duration,
    /// HTTP/2: streams open at once per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`;
    /// more are refused with `RST_STREAM(REFUSED_STREAM)`). Default 100.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: the initial flow-control window of each stream, in bytes. Default 64 KiB.
    pub h2_stream_window: u32,
    /// HTTP/2: the connection's flow-control window, in bytes. Default 1 MiB.
    pub h2_connection_window: u32,
    /// HTTP/2: the decoded header list of one request, in bytes
    /// (`SETTINGS_MAX_HEADER_LIST_SIZE`; 431 beyond). Default 64 KiB.
    pub h2_max_header_list: u32,
    /// HTTP/2: streams the client opened and reset before the proxy accepted them
    /// (rapid reset, CVE-2023-44487); one more ends the connection with
    /// `GOAWAY(ENHANCE_YOUR_CALM)`. Default 20.
    pub h2_max_pending_accept_resets: usize,
    /// HTTP/2: streams the proxy reset because the client broke the protocol
    /// ("MadeYouReset", CVE-2025-8671); one more ends the connection with
    /// `GOAWAY(ENHANCE_YOUR_CALM)`. Default 1024.
    pub h2_max_local_error_resets: usize,
    /// HTTP/2: bytes buffered per stream for a client that does not read. Default 64 KiB.
    pub h2_max_send_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_request_head: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            h2_max_concurrent_streams: 100,
            h2_stream_window: 64 * 1024,
            h2_connection_window: 1024 * 1024,
            h2_max_header_list: 64 * 1024,
            h2_max_pending_accept_resets: 20,
            h2_max_local_error_resets: 1024,
            h2_max_send_buffer: 64 * 1024,
        }
    }
}

/// A limit out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct LimitsError {
    /// The field, as [`Limits`] names it.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Limits {
    /// Check every field against the ranges hyper and h2 accept (they panic on some
    /// values outside them) and that timeouts are not zero; every problem is
    /// reported.
    pub fn validate(&self) -> Result<(), Vec<LimitsError>> {
        use ingress_kube::gateway::limit_ranges as r;
        let mut errs = Vec::new();
        let mut check = |field: &'static str, v: u64, (lo, hi): (u64, u64)| {
            if v < lo || v > hi {
                errs.push(LimitsError {
                    field,
                    message: format!("{v} is not in {lo}..={hi}"),
                });
            }
        };
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        check(
            "max_connections",
            n(self.max_connections),
            r::MAX_CONNECTIONS,
        );
        check(
            "max_request_head",
            n(self.max_request_head),
            r::REQUEST_HEAD,
        );
        check("max_headers", n(self.max_headers), r::HEADERS);
        check(
            "h2_max_concurrent_streams",
            self.h2_max_concurrent_streams.into(),
            r::H2_STREAMS,
        );
        check(
            "h2_stream_window",
            self.h2_stream_window.into(),
            r::H2_STREAM_WINDOW,
        );
        check(
            "h2_connection_window",
            self.h2_connection_window.into(),
            r::H2_CONNECTION_WINDOW,
        );
        check(
            "h2_max_header_list",
            self.h2_max_header_list.into(),
            r::H2_HEADER_LIST,
        );
        check(
            "h2_max_pending_accept_resets",
            n(self.h2_max_pending_accept_resets),
            r::H2_RESETS,
        );
        check(
            "h2_max_local_error_resets",
            n(self.h2_max_local_error_resets),
            r::H2_RESETS,
        );
        check(
            "h2_max_send_buffer",
            n(self.h2_max_send_buffer),
            r::H2_SEND_BUFFER,
        );
        for (field, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_idle_timeout", self.body_idle_timeout),
            ("send_timeout", self.send_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("handshake_timeout", self.handshake_timeout),
        ] {
            if d.is_zero() {
                errs.push(LimitsError {
                    field,
                    message: "must be longer than zero".into(),
                });
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// These limits with the gateway config's `spec.limits` laid over them: a field
    /// the config sets wins, one it leaves out keeps this value. The config was
    /// validated against the same ranges ([`ingress_kube::gateway::validate`]).
    pub fn with_gateway(mut self, g: &GatewayLimits) -> Limits {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(v) = g.max_connections {
            self.max_connections = size(v);
        }
        if let Some(v) = g.max_request_head_bytes {
            self.max_request_head = size(v);
        }
        if let Some(v) = g.max_headers {
            self.max_headers = size(v);
        }
        let times = [
            (g.header_read_timeout, &mut self.header_read_timeout),
            (g.body_idle_timeout, &mut self.body_idle_timeout),
            (g.send_timeout, &mut self.send_timeout),
            (g.keep_alive_timeout, &mut self.keep_alive_timeout),
            (g.tls_handshake_timeout, &mut self.handshake_timeout),
        ];
        for (v, field) in times {
            if let Some(v) = v {
                *field = v;
            }
        }
        let u32s = [
            (
                g.h2_max_concurrent_streams,
                &mut self.h2_max_concurrent_streams,
            ),
            (g.h2_stream_window, &mut self.h2_stream_window),
            (g.h2_connection_window, &mut self.h2_connection_window),
            (g.h2_max_header_list_size, &mut self.h2_max_header_list),
        ];
        for (v, field) in u32s {
            if let Some(v) = v {
                *field = v;
            }
        }
        if let Some(v) = g.h2_max_pending_accept_resets {
            self.h2_max_pending_accept_resets = size(v);
        }
        if let Some(v) = g.h2_max_local_error_resets {
            self.h2_max_local_error_resets = size(v);
        }
        self
    }

    /// The hyper connection builder these limits describe. Values outside the
    /// [`validate`](Limits::validate) ranges are clamped into them first, so this
    /// never panics.
    pub(crate) fn builder(&self) -> auto::Builder<TokioExecutor> {
        use ingress_kube::gateway::limit_ranges as r;
        let clamp = |v: u64, (lo, hi): (u64, u64)| v.clamp(lo, hi);
        let size = |v: usize, range| {
            usize::try_from(clamp(u64::try_from(v).unwrap_or(u64::MAX), range))
                .unwrap_or(usize::MAX)
        };
        let small = |v: u32, range| u32::try_from(clamp(v.into(), range)).unwrap_or(u32::MAX);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        let mut http1 = builder.http1();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(size(self.max_request_head, r::REQUEST_HEAD))
            .keep_alive(true)
            .half_close(false);
        // hyper parses up to its documented default of 100 headers on the stack;
        // any explicit value, even 100, moves every parse to an initialised
        // SmallVec (about 1,700 instructions per request). The limit tests pin
        // that 101 headers are refused with the default.
        let max_headers = size(self.max_headers, r::HEADERS);
        if max_headers != HYPER_DEFAULT_MAX_HEADERS {
            http1.max_headers(max_headers);
        }
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(small(self.h2_max_concurrent_streams, r::H2_STREAMS))
            // RFC 8441: WebSocket over HTTP/2 (extended CONNECT).
            .enable_connect_protocol()
            .max_header_list_size(small(self.h2_max_header_list, r::H2_HEADER_LIST))
            .initial_stream_window_size(small(self.h2_stream_window, r::H2_STREAM_WINDOW))
            .initial_connection_window_size(small(
                self.h2_connection_window,
                r::H2_CONNECTION_WINDOW,
            ))
            .max_pending_accept_reset_streams(size(self.h2_max_pending_accept_resets, r::H2_RESETS))
            .max_local_error_reset_streams(size(self.h2_max_local_error_resets, r::H2_RESETS))
            .max_send_buf_size(size(self.h2_max_send_buffer, r::H2_SEND_BUFFER))
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_are_named() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let bad = Limits {
            max_request_head: 100,
            h2_stream_window: 0,
            send_timeout: Duration::ZERO,
            ..Limits::default()
        };
        let errs = bad.validate().expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["max_request_head", "h2_stream_window", "send_timeout"]
        );
        // Clamped, not a panic in hyper.
        let _ = bad.builder();
    }

    #[test]
    fn the_gateway_config_wins_where_it_speaks() {
        let mut g = GatewayLimits::default();
        g.max_headers = Some(50);
        g.header_read_timeout = Some(Duration::from_secs(5));
        g.h2_max_concurrent_streams = Some(10);
        let l = Limits::default().with_gateway(&g);
        assert_eq!(l.max_headers, 50);
        assert_eq!(l.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.h2_max_concurrent_streams, 10);
        assert_eq!(l.max_request_head, 64 * 1024);
        assert_eq!(l.h2_max_pending_accept_resets, 20);
    }
}
