//! The `retries` family: when a failed try moves on to the next endpoint
//! (`proxy-next-upstream`, `-tries`, `-timeout`), as nginx's `proxy_next_upstream`.
//!
//! A try is retried on a different endpoint when its outcome is one of the listed
//! conditions, the request is idempotent or was not sent yet (unless
//! `non_idempotent`), tries are left and the time budget is not spent. Nothing has
//! been sent to the client yet when a retry is decided; the request body must be
//! replayable (empty or buffered), which the data plane checks.

use std::time::Duration;

use http::StatusCode;

use super::spec::Risk;
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The conditions of `proxy-next-upstream`. [`Default`] is ingress-nginx's default,
/// `error timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RetryOn {
    /// `error`: connecting failed, or sending the request or reading the response
    /// header failed.
    pub error: bool,
    /// `timeout`: the connect timeout, or the send/read timeout before the response
    /// header, expired.
    pub timeout: bool,
    /// `invalid_header`: the response header was empty or malformed.
    pub invalid_header: bool,
    /// `http_500`, `http_502`, `http_503`, `http_504`, `http_403`, `http_404`,
    /// `http_429`: the upstream answered one of these (sorted).
    pub statuses: Vec<StatusCode>,
    /// `non_idempotent`: also retry requests with a non-idempotent method (POST, PATCH,
    /// LOCK...) after they were sent.
    pub non_idempotent: bool,
    /// `off`: never retry.
    pub off: bool,
}

impl Default for RetryOn {
    fn default() -> Self {
        RetryOn {
            error: true,
            timeout: true,
            invalid_header: false,
            statuses: Vec::new(),
            non_idempotent: false,
            off: false,
        }
    }
}

/// How one try ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryOutcome {
    /// Connecting, sending or reading the response header failed.
    Error,
    /// A timeout expired before the response header.
    Timeout,
    /// The response header was empty or malformed.
    InvalidHeader,
    /// The upstream answered with this status.
    Status(StatusCode),
}

/// The retry policy of one Ingress's routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// `proxy-next-upstream` (default `error timeout`).
    pub on: RetryOn,
    /// `proxy-next-upstream-tries`: tries in all, the first included; `Some(0)`: no
    /// limit but the number of endpoints; `None`: the gateway default (3, as
    /// ingress-nginx).
    pub tries: Option<u32>,
    /// `proxy-next-upstream-timeout`: the time budget for all tries;
    /// `Some(Duration::ZERO)`: no limit; `None`: the gateway default (no limit).
    pub timeout: Option<Duration>,
}

/// ingress-nginx's default `proxy-next-upstream-tries`.
pub const DEFAULT_TRIES: u32 = 3;

impl RetryPolicy {
    /// Whether a try that ended with `outcome` may be retried on another endpoint, as
    /// far as the conditions go: `method_idempotent` is the request method's
    /// idempotency (GET, HEAD, PUT, DELETE, OPTIONS, TRACE), `sent` whether the
    /// request had been sent to the upstream. Tries and time are
    /// [`RetryPolicy::budget_left`].
    pub fn should_retry(&self, outcome: TryOutcome, method_idempotent: bool, sent: bool) -> bool {
        let on = &self.on;
        if on.off || (sent && !method_idempotent && !on.non_idempotent) {
            return false;
        }
        match outcome {
            TryOutcome::Error => on.error,
            TryOutcome::Timeout => on.timeout,
            TryOutcome::InvalidHeader => on.invalid_header,
            TryOutcome::Status(s) => on.statuses.contains(&s),
        }
    }

    /// Whether another try is allowed after `tries_made` tries and `elapsed` since
    /// the first one started (`default_tries` applies when `tries` is unset; the
    /// caller also stops when no untried endpoint is left).
    pub fn budget_left(&self, tries_made: u32, elapsed: Duration, default_tries: u32) -> bool {
        if self.on.off {
            return false;
        }
        let tries = self.tries.unwrap_or(default_tries);
        let tries_ok = tries == 0 || tries_made < tries;
        let time_ok = match self.timeout {
            Some(t) if !t.is_zero() => elapsed < t,
            _ => true,
        };
        tries_ok && time_ok
    }
}

const NEXT_UPSTREAM: KeySpec = KeySpec::new("proxy-next-upstream", Family::Retries)
    .grammar("space- or comma-separated: `error`, `timeout`, `invalid_header`, `http_500`, `http_502`, `http_503`, `http_504`, `http_403`, `http_404`, `http_429`, `non_idempotent`; or `off` alone")
    .default("error timeout")
    .doc("When a try moves on to another endpoint: connection or transfer errors, timeouts before the response header, malformed response headers, these statuses. Non-idempotent requests already sent are retried only with `non_idempotent`; `off` never retries. The request body must be replayable.")
    .risk(Risk::Medium);
const TRIES: KeySpec = KeySpec::new("proxy-next-upstream-tries", Family::Retries)
    .grammar("whole number (`0`: no limit)")
    .default("3")
    .doc("Tries in all, the first included, each on a different endpoint; 0: as many as there are endpoints.");
const TIMEOUT: KeySpec = KeySpec::new("proxy-next-upstream-timeout", Family::Retries)
    .grammar("whole seconds or an nginx time (`0`: no limit)")
    .default("0 (no limit)")
    .doc("No new try starts once this much time has passed since the first one (Higress applies it to each try instead).");

static KEYS: &[KeySpec] = &[NEXT_UPSTREAM, TRIES, TIMEOUT];

const STATUSES: [(&str, u16); 7] = [
    ("http_500", 500),
    ("http_502", 502),
    ("http_503", 503),
    ("http_504", 504),
    ("http_403", 403),
    ("http_404", 404),
    ("http_429", 429),
];

/// Parse a `proxy-next-upstream` value.
pub fn retry_on(s: &str) -> Result<RetryOn, Invalid> {
    let mut on = RetryOn {
        error: false,
        timeout: false,
        ..RetryOn::default()
    };
    let mut count = 0;
    for t in s
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
    {
        count += 1;
        match t {
            "error" => on.error = true,
            "timeout" => on.timeout = true,
            "invalid_header" => on.invalid_header = true,
            "non_idempotent" => on.non_idempotent = true,
            "off" => on.off = true,
            _ => {
                let code = STATUSES
                    .iter()
                    .find(|(name, _)| *name == t)
                    .and_then(|(_, c)| StatusCode::from_u16(*c).ok())
                    .ok_or_else(|| format!("`{t}` is not a proxy-next-upstream condition (error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent, off)"))?;
                on.statuses.push(code);
            }
        }
    }
    if count == 0 {
        return Err("expected conditions such as `error timeout`, or `off`".into());
    }
    if on.off && count > 1 {
        return Err("`off` cannot be combined with other conditions".into());
    }
    on.statuses.sort_unstable();
    on.statuses.dedup();
    Ok(on)
}

/// The family.
#[derive(Debug)]
pub(crate) struct Retries;

impl AnnotationFamily for Retries {
    fn family(&self) -> Family {
        Family::Retries
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.retries;
        if let Some(on) = cx.parse(&NEXT_UPSTREAM, retry_on) {
            p.on = on;
        }
        p.tries = cx
            .parse(&TRIES, |s| values::uint_max(s, u64::from(u32::MAX)))
            .map(|n| n as u32);
        p.timeout = cx.parse(&TIMEOUT, values::seconds);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{N, run};

    use crate::diagnostics::Code;

    fn code(n: u16) -> StatusCode {
        StatusCode::from_u16(n).unwrap_or(StatusCode::IM_A_TEAPOT)
    }

    #[test]
    fn conditions_parse() {
        let p = run(&[(
            &format!("{N}proxy-next-upstream"),
            "error http_503 http_502,http_503  non_idempotent",
        )]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let on = &p.policy.retries.on;
        assert!(on.error && !on.timeout && !on.invalid_header && on.non_idempotent && !on.off);
        assert_eq!(on.statuses, vec![code(502), code(503)]);
        let p = run(&[("higress.io/proxy-next-upstream", "off")]);
        assert!(p.policy.retries.on.off);
        let p = run(&[(
            &format!("{N}proxy-next-upstream"),
            "timeout invalid_header http_429 http_404 http_403 http_500 http_504",
        )]);
        assert_eq!(p.policy.retries.on.statuses.len(), 5);
    }

    #[test]
    fn defaults() {
        let p = run(&[(&format!("{N}use-regex"), "true")]);
        let r = &p.policy.retries;
        assert_eq!(*r, RetryPolicy::default());
        assert!(r.on.error && r.on.timeout && r.on.statuses.is_empty());
        assert_eq!((r.tries, r.timeout), (None, None));
        let p = run(&[
            (&format!("{N}proxy-next-upstream-tries"), "0"),
            (&format!("{N}proxy-next-upstream-timeout"), "10"),
        ]);
        assert_eq!(p.policy.retries.tries, Some(0));
        assert_eq!(p.policy.retries.timeout, Some(Duration::from_secs(10)));
        assert_eq!(p.policy.retries.on, RetryOn::default());
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("proxy-next-upstream", "error off"),
            ("proxy-next-upstream", "http_501"),
            ("proxy-next-upstream", "Error"),
            ("proxy-next-upstream", ", ,"),
            ("proxy-next-upstream-tries", "-1"),
            ("proxy-next-upstream-tries", "4294967296"),
            ("proxy-next-upstream-timeout", "1.5"),
        ] {
            let p = run(&[(&format!("{N}{key}"), value)]);
            let codes: Vec<Code> = p.diagnostics.iter().map(|d| d.code).collect();
            assert_eq!(codes, vec![Code::AnnotationInvalidValue], "{key}: {value}");
            assert!(p.policy.fail_closed.is_some(), "{key}: {value}");
            assert_eq!(p.policy.retries, RetryPolicy::default());
        }
    }

    #[test]
    fn retry_decisions() {
        let mut r = RetryPolicy::default();
        let (get, post) = (true, false);
        assert!(r.should_retry(TryOutcome::Error, get, true));
        assert!(r.should_retry(TryOutcome::Timeout, get, false));
        assert!(!r.should_retry(TryOutcome::InvalidHeader, get, true));
        assert!(!r.should_retry(TryOutcome::Status(code(503)), get, true));
        // A POST may be retried only before it was sent, unless non_idempotent.
        assert!(r.should_retry(TryOutcome::Error, post, false));
        assert!(!r.should_retry(TryOutcome::Error, post, true));
        r.on = retry_on("http_503 non_idempotent").unwrap_or_default();
        assert!(r.should_retry(TryOutcome::Status(code(503)), post, true));
        assert!(!r.should_retry(TryOutcome::Error, get, true));
        r.on = retry_on("off").unwrap_or_default();
        assert!(!r.should_retry(TryOutcome::Error, get, false));
        assert!(!r.budget_left(1, Duration::ZERO, DEFAULT_TRIES));
        // Budgets.
        let mut r = RetryPolicy::default();
        assert!(r.budget_left(2, Duration::from_secs(100), DEFAULT_TRIES));
        assert!(!r.budget_left(3, Duration::ZERO, DEFAULT_TRIES));
        r.tries = Some(0);
        assert!(r.budget_left(50, Duration::ZERO, DEFAULT_TRIES));
        r.timeout = Some(Duration::from_secs(2));
        assert!(!r.budget_left(1, Duration::from_secs(2), DEFAULT_TRIES));
        r.timeout = Some(Duration::ZERO);
        assert!(r.budget_left(1, Duration::from_secs(2), DEFAULT_TRIES));
    }
}
