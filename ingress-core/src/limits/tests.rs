//! Property tests of the limiters: bounds that hold for any rates and any times.

use std::hash::{BuildHasherDefault, DefaultHasher};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use proptest::prelude::*;

use super::*;
use crate::annotations::rate_limit::{LimitAlgorithm, RateLimit, RateLimitPolicy};

type Fixed = BuildHasherDefault<DefaultHasher>;

fn limit(rate: u32, per: Duration, burst: u32, algorithm: LimitAlgorithm) -> RateLimit {
    RateLimit {
        rate,
        per,
        burst,
        algorithm,
        status: StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Request times: sorted offsets in nanoseconds from gaps of up to `max_gap_ms`,
/// several requests often at the same instant.
fn times(max_gap_ms: u64) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![Just(0u64), 0..max_gap_ms * 1_000_000, 0..1_000_000u64],
        1..200,
    )
    .prop_map(|gaps| {
        gaps.iter()
            .scan(1_000_000_000u64, |t, g| {
                *t += g;
                Some(*t)
            })
            .collect()
    })
}

fn per() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(60)),
        (1u64..5_000).prop_map(Duration::from_millis),
    ]
}

/// No more than `rate * elapsed / per + burst + slack` accepted between any two
/// accepted requests (inclusive).
fn assert_bound(accepted: &[u64], rate: u32, per: Duration, burst: u32, slack: u64) {
    let per = per.as_nanos();
    for (i, &ti) in accepted.iter().enumerate() {
        for (j, &tj) in accepted.iter().enumerate().skip(i) {
            let count = (j - i + 1) as u128;
            let over = count.saturating_sub(u128::from(burst) + u128::from(slack));
            assert!(
                over * per <= u128::from(rate) * u128::from(tj - ti),
                "{count} accepted in {} ns at {rate}/{per} ns, burst {burst}",
                tj - ti
            );
        }
    }
}

/// nginx's own arithmetic (`ngx_http_limit_req_lookup`): milliseconds, signed excess,
/// `r/s` rates.
struct NginxNode {
    excess: i64,
    last: Option<i64>,
}

impl NginxNode {
    fn lookup(&mut self, rate_rps: i64, burst: i64, now_ms: i64) -> bool {
        let Some(last) = self.last else {
            self.excess = 0;
            self.last = Some(now_ms);
            return true;
        };
        let ms = (now_ms - last).max(0);
        let excess = (self.excess - rate_rps * 1000 * ms / 1000 + 1000).max(0);
        if excess > burst * 1000 {
            return false;
        }
        self.excess = excess;
        if ms != 0 {
            self.last = Some(now_ms);
        }
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn leaky_bucket_is_nginx_for_whole_milliseconds(
        rate in 1u32..50,
        burst in 0u32..20,
        gaps in prop::collection::vec(0u64..300, 1..300),
    ) {
        let r = Rate::new(rate, Duration::from_secs(1), burst);
        let mut ours = LeakyBucket::new();
        let mut nginx = NginxNode { excess: 0, last: None };
        let mut now = 5_000u64;
        for g in gaps {
            now += g;
            let a = ours.check(&r, Duration::from_millis(now)).allowed;
            let b = nginx.lookup(i64::from(rate), i64::from(burst), now as i64);
            prop_assert_eq!(a, b, "at {} ms", now);
            prop_assert_eq!(ours.excess() as i64, nginx.excess);
        }
    }

    #[test]
    fn leaky_bucket_never_exceeds_rate_plus_burst_plus_one(
        rate in 1u32..100, per in per(), burst in 0u32..30, times in times(400),
    ) {
        let r = Rate::new(rate, per, burst);
        let mut b = LeakyBucket::new();
        let accepted: Vec<u64> = times
            .iter()
            .copied()
            .filter(|&t| b.check(&r, Duration::from_nanos(t)).allowed)
            .collect();
        prop_assert!(!accepted.is_empty());
        prop_assert!(b.excess() <= u64::from(burst) * 1000);
        assert_bound(&accepted, rate, per, burst, 1);
    }

    #[test]
    fn token_bucket_never_exceeds_rate_plus_burst(
        rate in 1u32..100, per in per(), burst in 0u32..30, times in times(400),
    ) {
        let r = Rate::new(rate, per, burst);
        let mut b = TokenBucket::new();
        let mut accepted = Vec::new();
        for &t in &times {
            let now = Duration::from_nanos(t);
            let v = b.check(&r, now);
            if v.allowed {
                accepted.push(t);
            } else if burst > 0 {
                prop_assert!(v.retry_after.is_some_and(|w| w > Duration::ZERO));
            }
            // Never negative, never above the burst.
            prop_assert!(b.tokens(&r, now) <= burst);
            prop_assert_eq!(v.remaining, if v.allowed { b.tokens(&r, now) } else { 0 });
        }
        if burst == 0 {
            prop_assert!(accepted.is_empty());
        }
        assert_bound(&accepted, rate, per, burst, 0);
    }

    #[test]
    fn keyed_store_memory_bound_holds(
        shards in 1usize..8,
        per_shard in 1usize..32,
        keys in prop::collection::vec(0u32..5_000, 1..2_000),
    ) {
        let config = StoreConfig { shards, max_keys_per_shard: per_shard };
        let l = KeyedLimiter::<u32, Fixed>::with_hasher(
            &[limit(1, Duration::from_secs(1), 2, LimitAlgorithm::LeakyBucketNoDelay)],
            config,
            Fixed::default(),
        ).expect("limiter");
        for (i, k) in keys.iter().enumerate() {
            l.check(k, Duration::from_millis(i as u64));
            prop_assert!(l.len() <= config.capacity());
        }
        prop_assert_eq!(l.capacity(), config.capacity());
        let (idle, busy) = l.evictions();
        prop_assert!(l.len() as u64 + idle + busy >= 1);
    }

    #[test]
    fn keyed_limiter_bounds_each_key(
        rps in 1u32..20, rpm in 1u32..600, mult in 0u32..6,
        requests in prop::collection::vec((0u32..4, 0u64..200), 1..300),
    ) {
        let limits = [
            limit(rps, Duration::from_secs(1), rps * mult, LimitAlgorithm::LeakyBucketNoDelay),
            limit(rpm, Duration::from_secs(60), rpm * mult, LimitAlgorithm::LeakyBucketNoDelay),
        ];
        let l = KeyedLimiter::<u32, Fixed>::with_hasher(&limits, StoreConfig::default(), Fixed::default())
            .expect("limiter");
        let mut now = 0u64;
        let mut accepted: [Vec<u64>; 4] = Default::default();
        for (key, gap_ms) in requests {
            now += gap_ms * 1_000_000;
            if l.check(&key, Duration::from_nanos(now)).allowed {
                accepted[key as usize].push(now);
            }
        }
        for a in &accepted {
            for lim in &limits {
                assert_bound(a, lim.rate, lim.per, lim.burst, 1);
            }
        }
    }

    #[test]
    fn connection_counts_return_to_zero(
        limit_n in 0u32..4,
        ops in prop::collection::vec((any::<bool>(), 0u8..5, any::<prop::sample::Index>()), 1..200),
    ) {
        let config = StoreConfig { shards: 2, max_keys_per_shard: 3 };
        let c = Arc::new(ConnectionLimiter::<u8, Fixed>::with_hasher(limit_n, config, Fixed::default()));
        let mut held: Vec<ConnectionGuard<u8, Fixed>> = Vec::new();
        for (acquire, key, which) in ops {
            if acquire || held.is_empty() {
                if let Ok(g) = c.acquire(key) {
                    held.push(g);
                }
            } else {
                held.swap_remove(which.index(held.len()));
            }
            for k in 0..5u8 {
                let n = held.iter().filter(|g| g.key() == Some(&k)).count() as u32;
                prop_assert_eq!(c.in_flight(&k), n);
                prop_assert!(n <= limit_n);
            }
            prop_assert!(c.keys() <= config.capacity());
        }
        drop(held);
        prop_assert_eq!(c.keys(), 0);
    }

    #[test]
    fn limits_facade_bounds_clients_and_route(
        rps in 1u32..10, route_rps in 1u32..30,
        requests in prop::collection::vec((0u8..3, 0u64..300), 1..200),
    ) {
        let mut p = RateLimitPolicy::default();
        p.per_client.push(limit(rps, Duration::from_secs(1), rps * 5, LimitAlgorithm::LeakyBucketNoDelay));
        p.route = Some(RateLimit {
            status: StatusCode::TOO_MANY_REQUESTS,
            ..limit(route_rps, Duration::from_secs(1), route_rps * 5, LimitAlgorithm::TokenBucket)
        });
        let limits = Limits::new(&p, StoreConfig::default()).expect("limits");
        let mut now = 0u64;
        let mut per_client: [Vec<u64>; 3] = Default::default();
        let mut all = Vec::new();
        for (client, gap_ms) in requests {
            now += gap_ms * 1_000_000;
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, client));
            match limits.check(ip, Duration::from_nanos(now)) {
                Ok(_) => {
                    per_client[client as usize].push(now);
                    all.push(now);
                }
                Err(r) => {
                    let expected = matches!(
                        (r.by, r.status.as_u16()),
                        (LimitKind::ClientRate { .. }, 503) | (LimitKind::RouteRate(_), 429)
                    );
                    prop_assert!(expected, "{:?}", r);
                }
            }
        }
        for a in &per_client {
            assert_bound(a, rps, Duration::from_secs(1), rps * 5, 1);
        }
        assert_bound(&all, route_rps, Duration::from_secs(1), route_rps * 5, 0);
    }
}
