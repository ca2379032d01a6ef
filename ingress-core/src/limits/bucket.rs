//! The two single-key rate state machines: nginx's leaky bucket and Envoy's token
//! bucket, both counted in milli-requests as nginx counts.

use std::time::Duration;

use crate::annotations::rate_limit::RateLimit;

use super::{NEVER, Verdict, nanos};

/// One request, in the milli-requests both buckets count in (nginx: "1 corresponds to
/// 0.001 r/s").
const ONE: u64 = 1000;

/// A rate, ready for the buckets: `rate` requests per `per`, and a `burst`.
///
/// Built from a [`RateLimit`] (`Rate::from(&limit)`) or with [`Rate::new`]. A zero
/// `rate` counts as 1 and a zero `per` as one nanosecond, so no division by zero can
/// happen (the annotation parser never produces either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// `rate` x 1000: milli-requests per period.
    milli_per_period: u64,
    /// The period in nanoseconds (at least 1).
    period_ns: u64,
    /// `burst` x 1000.
    burst_milli: u64,
}

impl Rate {
    /// `rate` requests per `per`, with `burst` (see [`LeakyBucket`] and [`TokenBucket`]
    /// for what the burst means to each).
    pub fn new(rate: u32, per: Duration, burst: u32) -> Rate {
        Rate {
            milli_per_period: u64::from(rate.max(1)) * ONE,
            period_ns: u64::try_from(per.as_nanos()).unwrap_or(u64::MAX).max(1),
            burst_milli: u64::from(burst) * ONE,
        }
    }

    /// Requests per period.
    pub fn rate(&self) -> u32 {
        (self.milli_per_period / ONE) as u32
    }

    /// The period.
    pub fn per(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The burst, in requests.
    pub fn burst(&self) -> u32 {
        (self.burst_milli / ONE) as u32
    }

    /// Milli-requests that drain (or refill) in `elapsed_ns`, rounded down.
    fn drained(&self, elapsed_ns: u64) -> u64 {
        match self.milli_per_period.checked_mul(elapsed_ns) {
            Some(p) => p / self.period_ns,
            None => {
                let d = u128::from(self.milli_per_period) * u128::from(elapsed_ns)
                    / u128::from(self.period_ns);
                u64::try_from(d).unwrap_or(u64::MAX)
            }
        }
    }

    /// The least number of nanoseconds in which `milli` milli-requests drain: the
    /// inverse of [`Rate::drained`] (`drained(time_for(m)) >= m`, and one
    /// nanosecond less drains less than `m`).
    fn time_for(&self, milli: u64) -> u64 {
        // 64-bit division when the product fits (it does for any realistic drain):
        // a 128-bit one costs several times more.
        if let Some(n) = milli.checked_mul(self.period_ns) {
            return n.div_ceil(self.milli_per_period);
        }
        let n = u128::from(milli) * u128::from(self.period_ns);
        let d = u128::from(self.milli_per_period);
        u64::try_from(n.div_ceil(d)).unwrap_or(u64::MAX)
    }
}

impl From<&RateLimit> for Rate {
    fn from(limit: &RateLimit) -> Rate {
        Rate::new(limit.rate, limit.per, limit.burst)
    }
}

/// nginx `limit_req zone=... burst=B nodelay` for one key.
///
/// State, as `ngx_http_limit_req_node_t` keeps it: `excess` in milli-requests and the
/// time of the `last` accepted request. A request at `now`, as
/// `ngx_http_limit_req_lookup` computes it:
///
/// ```text
/// excess' = max(0, excess - rate_milli * elapsed / per + 1000)
/// excess' > burst * 1000  =>  reject; the state is not changed (not counted)
/// otherwise               =>  accept at once (nodelay); excess = excess', last = now
/// ```
///
/// The clamp comes after adding the request (nginx computes it signed, then
/// `if (excess < 0) excess = 0`), and a key nginx has not seen starts at `excess = 0`
/// for its first request. So an idle client may send `burst + 1` requests at once:
/// with `rate=1r/s burst=5 nodelay`, six requests at once are accepted, the seventh is
/// rejected, and one more is accepted each second after that.
///
/// Differences from nginx, all in precision: nginx counts time in whole milliseconds
/// and stores the rate as `rate * 1000 / 60` milli-requests per second for `r/m`
/// (so `1r/m` drains 4% slow); here time is in nanoseconds, the rate is exact, and the
/// drain's remainder is carried (`last` moves on by the time the whole milli-requests
/// drained took, rounded up) instead of dropped. For whole-millisecond times and `r/s`
/// rates the results are nginx's exactly. A `now` earlier than `last` counts as no
/// time passing (nginx does the same for clock steps back under a minute).
///
/// ```
/// use std::time::Duration;
/// use ingress_core::limits::{LeakyBucket, Rate};
///
/// let rate = Rate::new(1, Duration::from_secs(1), 5);
/// let mut b = LeakyBucket::new();
/// let t0 = Duration::from_secs(100);
/// let accepted = (0..10).filter(|_| b.check(&rate, t0).allowed).count();
/// assert_eq!(accepted, 6);
/// let v = b.check(&rate, t0 + Duration::from_millis(999));
/// assert!(!v.allowed);
/// assert_eq!(v.retry_after, Some(Duration::from_millis(1)));
/// assert!(b.check(&rate, t0 + Duration::from_secs(1)).allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakyBucket {
    excess: u64,
    /// Nanoseconds; [`NEVER`] for a key that has not been seen.
    last: u64,
}

impl Default for LeakyBucket {
    fn default() -> Self {
        LeakyBucket::new()
    }
}

impl LeakyBucket {
    /// A key not seen before (nginx's new node: its first request is accepted with
    /// `excess = 0`).
    pub const fn new() -> LeakyBucket {
        LeakyBucket {
            excess: 0,
            last: NEVER,
        }
    }

    /// nginx's `excess`, in milli-requests, as of the last accepted request.
    pub fn excess(&self) -> u64 {
        self.excess
    }

    /// When the last accepted request came (with the drain remainder carried, see
    /// above); `None` before the first.
    pub fn last(&self) -> Option<Duration> {
        (self.last != NEVER).then(|| Duration::from_nanos(self.last))
    }

    /// The request at `now`: accept (and count) or reject (and leave the state alone).
    ///
    /// On rejection `retry_after` is the least wait after which a request is
    /// accepted; on acceptance `remaining` is how many more requests would be
    /// accepted at the same instant.
    pub fn check(&mut self, rate: &Rate, now: Duration) -> Verdict {
        let now = nanos(now);
        let (excess, last) = self.next(rate, now);
        if excess > rate.burst_milli {
            // Only a seen key can be over: retry once enough has drained since `last`.
            let elapsed = now.saturating_sub(self.last);
            let needed = self.excess + ONE - rate.burst_milli;
            let wait = rate.time_for(needed).saturating_sub(elapsed).max(1);
            return Verdict::rejected(Some(Duration::from_nanos(wait)));
        }
        self.excess = excess;
        self.last = last;
        Verdict::allowed(((rate.burst_milli - excess) / ONE) as u32)
    }

    /// Whether the bucket has drained so far by `now` that it behaves exactly as a key
    /// never seen (its next request would get `excess = 0`): forgetting it loses
    /// nothing.
    pub fn is_idle(&self, rate: &Rate, now: Duration) -> bool {
        self.last == NEVER
            || rate.drained(nanos(now).saturating_sub(self.last)) >= self.excess + ONE
    }

    /// `excess'` and the `last` to store if the request at `now` is accepted.
    fn next(&self, rate: &Rate, now: u64) -> (u64, u64) {
        if self.last == NEVER {
            return (0, now);
        }
        let elapsed = now.saturating_sub(self.last);
        let drained = rate.drained(elapsed);
        match (self.excess + ONE).checked_sub(drained) {
            Some(excess) if excess > 0 => (excess, self.last + rate.time_for(drained)),
            _ => (0, now.max(self.last)),
        }
    }
}

/// Envoy's local rate limit token bucket, as Higress's `route-limit-*` configures it:
/// `max_tokens = burst`, `tokens_per_fill = rate`, `fill_interval = per`.
///
/// The bucket starts full. Tokens refill continuously at `rate` per `per` (Envoy's
/// timer-free bucket; older Envoy versions added `rate` tokens at once every `per`),
/// never above `burst`. A request takes one whole token or is rejected without
/// taking anything. Tokens are counted in milli-tokens and never go below zero. A
/// bucket with `burst = 0` rejects everything.
///
/// ```
/// use std::time::Duration;
/// use ingress_core::limits::{Rate, TokenBucket};
///
/// let rate = Rate::new(2, Duration::from_secs(1), 3);
/// let mut b = TokenBucket::new();
/// let t0 = Duration::ZERO;
/// let accepted = (0..10).filter(|_| b.check(&rate, t0).allowed).count();
/// assert_eq!(accepted, 3);
/// let v = b.check(&rate, t0);
/// assert_eq!(v.retry_after, Some(Duration::from_millis(500)));
/// assert!(b.check(&rate, t0 + Duration::from_millis(500)).allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Milli-tokens, as of `last`.
    tokens: u64,
    /// Nanoseconds; [`NEVER`] while untouched (full).
    last: u64,
}

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket::new()
    }
}

impl TokenBucket {
    /// A full bucket.
    pub const fn new() -> TokenBucket {
        TokenBucket {
            tokens: 0,
            last: NEVER,
        }
    }

    /// Whole tokens left at `now`.
    pub fn tokens(&self, rate: &Rate, now: Duration) -> u32 {
        (self.refilled(rate, nanos(now)).0 / ONE) as u32
    }

    /// The request at `now`: take a token, or reject without taking one.
    ///
    /// On rejection `retry_after` is the least wait until a whole token is there
    /// (`None` when `burst` is 0: never); on acceptance `remaining` is the whole tokens
    /// left.
    pub fn check(&mut self, rate: &Rate, now: Duration) -> Verdict {
        let now = nanos(now);
        let (tokens, last) = self.refilled(rate, now);
        self.tokens = tokens;
        self.last = last;
        if tokens >= ONE {
            self.tokens -= ONE;
            return Verdict::allowed((self.tokens / ONE) as u32);
        }
        if rate.burst_milli < ONE {
            return Verdict::rejected(None);
        }
        // `last` is at most `now`, and what drained since is below one milli-token.
        let wait = rate
            .time_for(ONE - tokens)
            .saturating_sub(now.saturating_sub(last))
            .max(1);
        Verdict::rejected(Some(Duration::from_nanos(wait)))
    }

    /// Whether the bucket is full at `now`, as a new one: forgetting it loses nothing.
    pub fn is_idle(&self, rate: &Rate, now: Duration) -> bool {
        self.refilled(rate, nanos(now)).0 >= rate.burst_milli
    }

    /// Tokens and `last` after refilling up to `now`.
    fn refilled(&self, rate: &Rate, now: u64) -> (u64, u64) {
        if self.last == NEVER {
            return (rate.burst_milli, now);
        }
        let drained = rate.drained(now.saturating_sub(self.last));
        let tokens = self.tokens.saturating_add(drained);
        if tokens >= rate.burst_milli {
            (rate.burst_milli, now.max(self.last))
        } else {
            (tokens, self.last + rate.time_for(drained))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// (rate, per, burst, [(time in ms, requests at that time, expected accepted)]).
    type Case = (u32, Duration, u32, &'static [(u64, usize, usize)]);

    #[test]
    fn leaky_bucket_follows_nginx() {
        let cases: &[Case] = &[
            // nginx docs: rate=1r/s burst=5 nodelay: 6 at once, then 1 per second.
            (
                1,
                S,
                5,
                &[(0, 10, 6), (999, 1, 0), (1000, 2, 1), (2000, 1, 1)],
            ),
            // ingress-nginx limit-rps=10 (burst 50): 51 at once, then one per 100 ms.
            (
                10,
                S,
                50,
                &[(0, 60, 51), (50, 1, 0), (100, 2, 1), (350, 5, 2)],
            ),
            // burst 0: one request per emission interval.
            (
                2,
                S,
                0,
                &[(0, 3, 1), (499, 1, 0), (500, 1, 1), (1000, 1, 1)],
            ),
            // Long idle: back to burst + 1 (the clamp comes after the +1000).
            (1, S, 5, &[(0, 6, 6), (6000, 10, 6), (60_000, 10, 6)]),
            // Partly drained: 2.5 s drains 2.5 requests, so 2 more fit, then none.
            (1, S, 5, &[(0, 6, 6), (2500, 5, 2), (3000, 1, 1)]),
            // limit-rpm=60 (burst 300): one per second after the burst.
            (
                60,
                Duration::from_secs(60),
                300,
                &[(0, 400, 301), (999, 1, 0), (1000, 1, 1)],
            ),
        ];
        for (i, &(r, per, burst, steps)) in cases.iter().enumerate() {
            let rate = Rate::new(r, per, burst);
            let mut b = LeakyBucket::new();
            for &(t, n, want) in steps {
                let got = (0..n).filter(|_| b.check(&rate, ms(t)).allowed).count();
                assert_eq!(got, want, "case {i} at {t} ms");
            }
        }
    }

    #[test]
    fn leaky_bucket_state_is_nginx_excess() {
        let rate = Rate::new(1, S, 5);
        let mut b = LeakyBucket::new();
        assert_eq!(b.last(), None);
        assert_eq!(b.check(&rate, ms(10)), Verdict::allowed(5));
        assert_eq!((b.excess(), b.last()), (0, Some(ms(10))));
        assert_eq!(b.check(&rate, ms(10)).remaining, 4);
        assert_eq!(b.excess(), 1000);
        // 250 ms drain 250 milli-requests.
        b.check(&rate, ms(260));
        assert_eq!(b.excess(), 1750);
        // Rejections leave the state alone.
        for _ in 0..10 {
            b.check(&rate, ms(260));
        }
        assert_eq!(b.excess(), 5750 - 1000);
        let v = b.check(&rate, ms(260));
        assert!(!v.allowed);
        assert_eq!(v.remaining, 0);
        assert_eq!(b.excess(), 4750);
        // A clock step back counts as no time.
        assert!(!b.check(&rate, ms(0)).allowed);
    }

    #[test]
    fn retry_after_is_exact() {
        for (r, per, burst) in [(1, S, 5), (3, S, 0), (7, Duration::from_secs(60), 2)] {
            let rate = Rate::new(r, per, burst);
            let mut b = LeakyBucket::new();
            let t0 = Duration::from_millis(1234);
            while b.check(&rate, t0).allowed {}
            let wait = b.check(&rate, t0).retry_after.expect("a wait");
            let mut early = b;
            assert!(
                !early
                    .check(&rate, t0 + wait - Duration::from_nanos(1))
                    .allowed
            );
            assert!(b.check(&rate, t0 + wait).allowed, "{r}/{per:?}");

            let mut t = TokenBucket::new();
            while t.check(&rate, t0).allowed {}
            if burst == 0 {
                assert_eq!(t.check(&rate, t0).retry_after, None);
                continue;
            }
            let wait = t.check(&rate, t0).retry_after.expect("a wait");
            let mut early = t;
            assert!(
                !early
                    .check(&rate, t0 + wait - Duration::from_nanos(1))
                    .allowed
            );
            assert!(t.check(&rate, t0 + wait).allowed);
        }
    }

    #[test]
    fn token_bucket_follows_envoy() {
        let cases: &[Case] = &[
            // route-limit-rps=10 (burst 50): 50 at once, then 10 a second.
            (
                10,
                S,
                50,
                &[(0, 60, 50), (99, 1, 0), (100, 1, 1), (1100, 20, 10)],
            ),
            // Refill stops at the burst.
            (1, S, 3, &[(0, 5, 3), (60_000, 5, 3)]),
            // burst 0: nothing, ever.
            (5, S, 0, &[(0, 1, 0), (10_000, 1, 0)]),
            // route-limit-rpm=60 (burst 120).
            (
                60,
                Duration::from_secs(60),
                120,
                &[(0, 200, 120), (500, 1, 0), (1000, 1, 1)],
            ),
        ];
        for (i, &(r, per, burst, steps)) in cases.iter().enumerate() {
            let rate = Rate::new(r, per, burst);
            let mut b = TokenBucket::new();
            for &(t, n, want) in steps {
                let got = (0..n).filter(|_| b.check(&rate, ms(t)).allowed).count();
                assert_eq!(got, want, "case {i} at {t} ms");
            }
        }
    }

    #[test]
    fn idleness() {
        let rate = Rate::new(1, S, 2);
        let mut l = LeakyBucket::new();
        let mut t = TokenBucket::new();
        assert!(l.is_idle(&rate, ms(0)) && t.is_idle(&rate, ms(0)));
        l.check(&rate, ms(0));
        l.check(&rate, ms(0));
        t.check(&rate, ms(0));
        assert!(!l.is_idle(&rate, ms(1999)) && !t.is_idle(&rate, ms(999)));
        assert!(l.is_idle(&rate, ms(2000)) && t.is_idle(&rate, ms(1000)));
        assert_eq!(t.tokens(&rate, ms(500)), 1);
    }

    #[test]
    fn remainders_are_carried() {
        // 3 r/s, a request every 0.5 ms: each gap drains 1.5 milli-requests. Dropping
        // the half (as setting `last = now` would) drains 1999 over the second; carried,
        // the drain is the exact 2998.5, rounded down once.
        let rate = Rate::new(3, S, 5000);
        let mut b = LeakyBucket::new();
        for i in 0..2000u64 {
            assert!(b.check(&rate, Duration::from_micros(500 * i)).allowed);
        }
        assert_eq!(b.excess(), 1999 * 1000 - 2998);
        // Extremes do not overflow.
        let big = Rate::new(u32::MAX, Duration::from_secs(60), u32::MAX);
        let mut b = LeakyBucket::new();
        let mut t = TokenBucket::new();
        for now in [Duration::ZERO, Duration::MAX, Duration::from_secs(1 << 40)] {
            b.check(&big, now);
            t.check(&big, now);
        }
    }

    #[test]
    fn rate_accessors() {
        let limit = RateLimit {
            rate: 300,
            per: Duration::from_secs(60),
            burst: 1500,
            algorithm: crate::annotations::rate_limit::LimitAlgorithm::LeakyBucketNoDelay,
            status: http::StatusCode::SERVICE_UNAVAILABLE,
        };
        let rate = Rate::from(&limit);
        assert_eq!(
            (rate.rate(), rate.per(), rate.burst()),
            (300, limit.per, 1500)
        );
        let zero = Rate::new(0, Duration::ZERO, 0);
        assert_eq!((zero.rate(), zero.per()), (1, Duration::from_nanos(1)));
    }
}
