//! The `body` family: the request body size limit and nginx's buffering knobs.
//!
//! `proxy-body-size` is enforced: a larger request body answers 413. Bodies are
//! streamed in both directions, never spooled to memory or disk, so nginx's buffer
//! sizes and buffering switches have no counterpart; they are validated, kept in the
//! policy for `ingressctl explain`, and reported as having no effect.

use super::spec::{Risk, Support};
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// Body size and buffering of one Ingress's routes. `None` is the gateway default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BodyPolicy {
    /// `proxy-body-size`, bytes; `Some(0)`: no limit; `None`: the gateway default
    /// ([`DEFAULT_MAX_REQUEST_BODY`], 1 MiB, as ingress-nginx). Enforced.
    pub max_request_body: Option<u64>,
    /// `client-body-buffer-size`, bytes (not enforced).
    pub client_body_buffer_size: Option<u64>,
    /// `proxy-request-buffering` (`on` = true; not enforced: request bodies stream).
    pub request_buffering: Option<bool>,
    /// `proxy-buffering` (`on` = true; not enforced: responses stream).
    pub response_buffering: Option<bool>,
    /// `proxy-buffer-size`, bytes (not enforced).
    pub response_buffer_size: Option<u64>,
    /// `proxy-buffers-number` (not enforced).
    pub response_buffers_number: Option<u32>,
    /// `proxy-busy-buffers-size`, bytes (not enforced).
    pub busy_buffers_size: Option<u64>,
    /// `proxy-max-temp-file-size`, bytes; `Some(0)` disables temp files (not enforced).
    pub max_temp_file_size: Option<u64>,
}

/// ingress-nginx's default `proxy-body-size` (ConfigMap `proxy-body-size: 1m`).
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 1 << 20;

impl BodyPolicy {
    /// The request body limit in bytes, `None` for no limit: the annotation, else
    /// `default` (the gateway's setting, normally `Some(DEFAULT_MAX_REQUEST_BODY)`).
    pub fn request_body_limit(&self, default: Option<u64>) -> Option<u64> {
        match self.max_request_body {
            Some(0) => None,
            Some(n) => Some(n),
            None => default,
        }
    }
}

const STREAMED: &str = "bodies are streamed, never buffered to memory or disk";

const BODY_SIZE: KeySpec = KeySpec::new("proxy-body-size", Family::Body)
    .grammar("nginx size: digits and an optional unit k, m or g (`8m`); `0`: no limit")
    .default("1m")
    .doc("The largest request body: a larger Content-Length answers 413 before the upstream is contacted; a streamed body that grows past it is cut and answers 413 if no response has started. MSE has no limit here.")
    .risk(Risk::Medium);
const CLIENT_BUFFER: KeySpec = KeySpec::new("client-body-buffer-size", Family::Body)
    .grammar("nginx size")
    .default("8k")
    .doc("nginx's in-memory buffer for the request body.")
    .support(Support::NotEnforced(STREAMED));
const REQUEST_BUFFERING: KeySpec = KeySpec::new("proxy-request-buffering", Family::Body)
    .grammar("`on` or `off`")
    .default("on")
    .doc("nginx reads the whole request body before proxying; here request bodies always stream to the upstream (as `off`).")
    .support(Support::NotEnforced(STREAMED));
const BUFFERING: KeySpec = KeySpec::new("proxy-buffering", Family::Body)
    .grammar("`on` or `off`")
    .default("off")
    .doc("nginx buffers upstream responses; here responses always stream to the client (as `off`).")
    .support(Support::NotEnforced(STREAMED));
const BUFFER_SIZE: KeySpec = KeySpec::new("proxy-buffer-size", Family::Body)
    .grammar("nginx size")
    .default("4k")
    .doc(
        "nginx's buffer for the response header; here the gateway's own header size limit applies.",
    )
    .support(Support::NotEnforced(STREAMED));
const BUFFERS_NUMBER: KeySpec = KeySpec::new("proxy-buffers-number", Family::Body)
    .grammar("whole number")
    .default("4")
    .doc("The number of nginx response buffers.")
    .support(Support::NotEnforced(STREAMED));
const BUSY_BUFFERS: KeySpec = KeySpec::new("proxy-busy-buffers-size", Family::Body)
    .grammar("nginx size")
    .default("twice proxy-buffer-size")
    .doc("nginx's limit of response buffers busy sending to the client.")
    .support(Support::NotEnforced(STREAMED));
const MAX_TEMP_FILE: KeySpec = KeySpec::new("proxy-max-temp-file-size", Family::Body)
    .grammar("nginx size (`0`: no temp files)")
    .default("1024m")
    .doc("nginx's largest temp file for buffered responses.")
    .support(Support::NotEnforced(STREAMED));

static KEYS: &[KeySpec] = &[
    BODY_SIZE,
    CLIENT_BUFFER,
    REQUEST_BUFFERING,
    BUFFERING,
    BUFFER_SIZE,
    BUFFERS_NUMBER,
    BUSY_BUFFERS,
    MAX_TEMP_FILE,
];

fn on_off(s: &str) -> Result<bool, Invalid> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected `on` or `off`".into()),
    }
}

/// The family.
#[derive(Debug)]
pub(crate) struct Body;

impl AnnotationFamily for Body {
    fn family(&self) -> Family {
        Family::Body
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        policy.body = BodyPolicy {
            max_request_body: cx.parse(&BODY_SIZE, values::size),
            client_body_buffer_size: cx.parse(&CLIENT_BUFFER, values::size),
            request_buffering: cx.parse(&REQUEST_BUFFERING, on_off),
            response_buffering: cx.parse(&BUFFERING, on_off),
            response_buffer_size: cx.parse(&BUFFER_SIZE, values::size),
            response_buffers_number: cx
                .parse(&BUFFERS_NUMBER, |s| {
                    values::uint_max(s, u64::from(u32::MAX))
                })
                .map(|n| n as u32),
            busy_buffers_size: cx.parse(&BUSY_BUFFERS, values::size),
            max_temp_file_size: cx.parse(&MAX_TEMP_FILE, values::size),
        };
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{N, codes, run};

    use crate::diagnostics::Code;

    #[test]
    fn body_size_is_enforced() {
        for (value, want, limit) in [
            ("8m", Some(8 << 20), Some(8 << 20)),
            ("0", Some(0), None),
            ("100", Some(100), Some(100)),
            ("2G", Some(2 << 30), Some(2 << 30)),
        ] {
            let p = run(&[(&format!("{N}proxy-body-size"), value)]);
            assert_eq!(p.policy.body.max_request_body, want, "{value}");
            assert_eq!(
                p.policy
                    .body
                    .request_body_limit(Some(DEFAULT_MAX_REQUEST_BODY)),
                limit
            );
            assert!(p.diagnostics.is_empty(), "{value}");
        }
        let p = run(&[(&format!("{N}use-regex"), "true")]);
        assert_eq!(p.policy.body, BodyPolicy::default());
        assert_eq!(
            p.policy
                .body
                .request_body_limit(Some(DEFAULT_MAX_REQUEST_BODY)),
            Some(1 << 20)
        );
    }

    #[test]
    fn buffering_knobs_are_parsed_and_not_enforced() {
        let p = run(&[
            (&format!("{N}client-body-buffer-size"), "16k"),
            (&format!("{N}proxy-request-buffering"), "off"),
            (&format!("{N}proxy-buffering"), "on"),
            (&format!("{N}proxy-buffer-size"), "8k"),
            (&format!("{N}proxy-buffers-number"), "8"),
            (&format!("{N}proxy-busy-buffers-size"), "16k"),
            (&format!("{N}proxy-max-temp-file-size"), "0"),
        ]);
        assert_eq!(codes(&p), vec![Code::AnnotationNotEnforced; 7]);
        assert!(p.policy.fail_closed.is_none());
        let b = p.policy.body;
        assert_eq!(b.client_body_buffer_size, Some(16 << 10));
        assert_eq!(
            (b.request_buffering, b.response_buffering),
            (Some(false), Some(true))
        );
        assert_eq!(
            (b.response_buffer_size, b.response_buffers_number),
            (Some(8 << 10), Some(8))
        );
        assert_eq!(
            (b.busy_buffers_size, b.max_temp_file_size),
            (Some(16 << 10), Some(0))
        );
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("proxy-body-size", "1.5m"),
            ("proxy-body-size", "-1"),
            ("proxy-body-size", "10 m"),
            ("proxy-body-size", "1t"),
            ("client-body-buffer-size", "big"),
            ("proxy-request-buffering", "true"),
            ("proxy-buffering", "On"),
            ("proxy-buffers-number", "4k"),
            ("proxy-max-temp-file-size", ""),
        ] {
            let p = run(&[(&format!("{N}{key}"), value)]);
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value}"
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value}");
        }
    }
}
