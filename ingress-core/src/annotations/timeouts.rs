//! The `timeouts` family: upstream connect, send and read timeouts (ingress-nginx)
//! and the whole-request route timeout (Higress `timeout`).
//!
//! An expired connect timeout answers 504 (or tries the next endpoint, per
//! `proxy-next-upstream`); so does a read timeout before the response header. The
//! send and read timeouts are idle timeouts, as nginx's: they bound the time between
//! two successive writes or reads, not the whole transfer.

use std::time::Duration;

use super::spec::Prefixes;
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The timeouts of one Ingress's routes. `None` is the gateway's default.
///
/// The defaults are ingress-nginx's ([`TimeoutPolicy::NGINX_CONNECT`] 5 s,
/// [`TimeoutPolicy::NGINX_SEND`] 60 s, [`TimeoutPolicy::NGINX_READ`] 60 s, no total
/// limit) unless the gateway is configured otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TimeoutPolicy {
    /// `proxy-connect-timeout`: establishing the upstream connection (TCP and TLS).
    pub connect: Option<Duration>,
    /// `proxy-send-timeout`: the longest pause between two writes of the request to
    /// the upstream.
    pub send: Option<Duration>,
    /// `proxy-read-timeout`: the longest pause between two reads from the upstream
    /// (the response header included).
    pub read: Option<Duration>,
    /// Higress `timeout` (Envoy's route timeout): from the end of the request to the
    /// end of the response, retries included; 504 on expiry. `Some(Duration::ZERO)`:
    /// no limit (`0`).
    pub total: Option<Duration>,
}

impl TimeoutPolicy {
    /// ingress-nginx's default `proxy-connect-timeout`.
    pub const NGINX_CONNECT: Duration = Duration::from_secs(5);
    /// ingress-nginx's default `proxy-send-timeout`.
    pub const NGINX_SEND: Duration = Duration::from_secs(60);
    /// ingress-nginx's default `proxy-read-timeout`.
    pub const NGINX_READ: Duration = Duration::from_secs(60);

    /// The connect timeout, or `default` when not set.
    pub fn connect_or(&self, default: Duration) -> Duration {
        self.connect.unwrap_or(default)
    }

    /// The send timeout, or `default` when not set.
    pub fn send_or(&self, default: Duration) -> Duration {
        self.send.unwrap_or(default)
    }

    /// The read timeout, or `default` when not set.
    pub fn read_or(&self, default: Duration) -> Duration {
        self.read.unwrap_or(default)
    }

    /// The whole-request limit, if any (`timeout: 0` and unset both mean none,
    /// unless `default` gives one for unset).
    pub fn total_or(&self, default: Option<Duration>) -> Option<Duration> {
        match self.total {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => default,
        }
    }
}

const CONNECT: KeySpec = KeySpec::new("proxy-connect-timeout", Family::Timeouts)
    .grammar("whole seconds (`5`) or an nginx time (`500ms`, `1m`), above 0")
    .default("5 (seconds)")
    .doc("Time to establish the upstream connection; on expiry the next endpoint is tried (proxy-next-upstream `timeout`) or the answer is 504.");
const SEND: KeySpec = KeySpec::new("proxy-send-timeout", Family::Timeouts)
    .grammar("whole seconds or an nginx time, above 0")
    .default("60 (seconds)")
    .doc("The longest pause between two successive writes of the request body to the upstream; on expiry the request fails.");
const READ: KeySpec = KeySpec::new("proxy-read-timeout", Family::Timeouts)
    .grammar("whole seconds or an nginx time, above 0")
    .default("60 (seconds)")
    .doc("The longest pause between two successive reads from the upstream (an idle timeout, not a total): before the response header it answers 504 or tries the next endpoint; later it ends the response.");
const TOTAL: KeySpec = KeySpec::new("timeout", Family::Timeouts)
    .grammar("whole seconds (`0`: no limit)")
    .default("no limit")
    .doc("Higress: the whole exchange, from the end of the request to the end of the response and retries included, must finish within this time, else 504 (or the response is cut if it already started).")
    .prefixes(Prefixes::Extension);

static KEYS: &[KeySpec] = &[CONNECT, SEND, READ, TOTAL];

/// An nginx timeout: above zero (nginx would time out at once).
fn timeout(s: &str) -> Result<Duration, Invalid> {
    let d = values::seconds(s)?;
    if d.is_zero() {
        return Err("a timeout of 0 would fail every request; expected at least 1ms".into());
    }
    Ok(d)
}

/// Higress `timeout`: whole seconds, `0` for none.
fn total(s: &str) -> Result<Duration, Invalid> {
    let n = values::uint(s).map_err(|_| "expected whole seconds (0: no limit)".to_string())?;
    Ok(Duration::from_secs(n))
}

/// The family.
#[derive(Debug)]
pub(crate) struct Timeouts;

impl AnnotationFamily for Timeouts {
    fn family(&self) -> Family {
        Family::Timeouts
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        policy.timeouts = TimeoutPolicy {
            connect: cx.parse(&CONNECT, timeout),
            send: cx.parse(&SEND, timeout),
            read: cx.parse(&READ, timeout),
            total: cx.parse(&TOTAL, total),
        };
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{N, codes, run};

    use crate::diagnostics::Code;

    const S: fn(u64) -> Option<Duration> = |n| Some(Duration::from_secs(n));

    #[test]
    fn values_and_defaults() {
        let p = run(&[(&format!("{N}use-regex"), "true")]);
        let t = p.policy.timeouts;
        assert_eq!(t, TimeoutPolicy::default());
        assert_eq!(
            t.connect_or(TimeoutPolicy::NGINX_CONNECT),
            Duration::from_secs(5)
        );
        assert_eq!(
            t.send_or(TimeoutPolicy::NGINX_SEND),
            Duration::from_secs(60)
        );
        assert_eq!(
            t.read_or(TimeoutPolicy::NGINX_READ),
            Duration::from_secs(60)
        );
        assert_eq!(t.total_or(None), None);
        for (key, value, want) in [
            (
                "proxy-connect-timeout",
                "10",
                TimeoutPolicy {
                    connect: S(10),
                    ..Default::default()
                },
            ),
            (
                "proxy-send-timeout",
                "2m",
                TimeoutPolicy {
                    send: S(120),
                    ..Default::default()
                },
            ),
            (
                "proxy-read-timeout",
                "500ms",
                TimeoutPolicy {
                    read: Some(Duration::from_millis(500)),
                    ..Default::default()
                },
            ),
        ] {
            let p = run(&[(&format!("{N}{key}"), value)]);
            assert_eq!(p.policy.timeouts, want, "{key}");
            assert!(p.diagnostics.is_empty());
            // Higress reads the nginx keys under its own prefix too.
            let p = run(&[(&format!("higress.io/{key}"), value)]);
            assert_eq!(p.policy.timeouts, want, "{key}");
        }
    }

    #[test]
    fn higress_total() {
        let p = run(&[("higress.io/timeout", "30")]);
        assert_eq!(p.policy.timeouts.total, S(30));
        assert_eq!(p.policy.timeouts.total_or(S(5)), S(30));
        let p = run(&[("mse.ingress.kubernetes.io/timeout", "0")]);
        assert_eq!(p.policy.timeouts.total, Some(Duration::ZERO));
        assert_eq!(p.policy.timeouts.total_or(S(5)), None);
        // Not an nginx key.
        let p = run(&[(&format!("{N}timeout"), "30")]);
        assert_eq!(p.policy.timeouts.total, None);
        assert_eq!(codes(&p), vec![Code::AnnotationUnknown]);
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("nginx.ingress.kubernetes.io/proxy-connect-timeout", "0"),
            ("nginx.ingress.kubernetes.io/proxy-connect-timeout", "-1"),
            ("nginx.ingress.kubernetes.io/proxy-send-timeout", "1.5"),
            ("nginx.ingress.kubernetes.io/proxy-read-timeout", "60 s"),
            ("nginx.ingress.kubernetes.io/proxy-read-timeout", "2d"),
            ("higress.io/timeout", "5s"),
            ("higress.io/timeout", "-3"),
            ("higress.io/timeout", "1e3"),
        ] {
            let p = run(&[(key, value)]);
            assert_eq!(
                codes(&p),
                vec![Code::AnnotationInvalidValue],
                "{key}: {value}"
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value}");
            assert_eq!(p.policy.timeouts, TimeoutPolicy::default());
        }
    }
}
