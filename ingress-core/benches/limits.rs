//! Rate-limit checks: the per-request cost of `ingress_core::limits`.
//!
//! Groups:
//! - `limits/bucket`: one `LeakyBucket::check` / `TokenBucket::check` (no map, no lock);
//! - `limits/keyed`: `KeyedLimiter::check` (limit-rps and limit-rpm, one shard lock)
//!   with 1 client, and with 10,000 clients taken in turn (the store holds them all);
//! - `limits/keyed-evicting`: 200,000 clients in turn through a store of 65,536 keys,
//!   so nearly every check replaces a key (CLOCK eviction);
//! - `limits/facade`: `Limits::check` with limit-connections, limit-rps, limit-rpm
//!   and a route-limit-rps bucket, 10,000 clients, the guard dropped each time.
//!
//! Time moves on 1 µs per check (it is an argument); the rates are high enough that
//! most checks pass, as on a healthy gateway.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::Criterion;
use http::StatusCode;
use ingress_core::annotations::rate_limit::{LimitAlgorithm, RateLimit, RateLimitPolicy};
use ingress_core::limits::{KeyedLimiter, LeakyBucket, Limits, Rate, StoreConfig, TokenBucket};

fn limit(rate: u32, per: Duration, algorithm: LimitAlgorithm) -> RateLimit {
    RateLimit {
        rate,
        per,
        burst: rate * 5,
        algorithm,
        status: StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn clients(n: u32) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect()
}

fn limits_benches(c: &mut Criterion) {
    let s = Duration::from_secs(1);
    let m = Duration::from_secs(60);
    let rps = limit(1_000_000, s, LimitAlgorithm::LeakyBucketNoDelay);
    let rpm = limit(60_000_000, m, LimitAlgorithm::LeakyBucketNoDelay);

    let mut group = c.benchmark_group("limits/bucket");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let rate = Rate::from(&rps);
    let mut leaky = LeakyBucket::new();
    let mut t = 0u64;
    group.bench_function("leaky", |b| {
        b.iter(|| {
            t += 1_000;
            leaky.check(&rate, black_box(Duration::from_nanos(t)))
        });
    });
    let mut token = TokenBucket::new();
    group.bench_function("token", |b| {
        b.iter(|| {
            t += 1_000;
            token.check(&rate, black_box(Duration::from_nanos(t)))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("limits/keyed");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in [1u32, 10_000] {
        let keys = clients(n);
        let limiter = KeyedLimiter::new(&[rps, rpm], StoreConfig::default()).unwrap();
        let mut i = 0usize;
        let mut ran = false;
        group.bench_function(n.to_string(), |b| {
            ran = true;
            b.iter(|| {
                t += 1_000;
                i = (i + 1) % keys.len();
                limiter.check(black_box(&keys[i]), Duration::from_nanos(t))
            });
        });
        // Only when the filter selected this bench (otherwise nothing ran).
        if ran {
            assert_eq!(limiter.len(), n as usize);
        }
    }
    group.finish();

    let mut group = c.benchmark_group("limits/keyed-evicting");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let keys = clients(200_000);
    let limiter = KeyedLimiter::new(&[rps, rpm], StoreConfig::default()).unwrap();
    let mut i = 0usize;
    group.bench_function("200000", |b| {
        b.iter(|| {
            t += 1_000;
            i = (i + 1) % keys.len();
            limiter.check(black_box(&keys[i]), Duration::from_nanos(t))
        });
    });
    assert_eq!(limiter.len(), StoreConfig::default().capacity());
    group.finish();

    let mut group = c.benchmark_group("limits/facade");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let mut policy = RateLimitPolicy::default();
    policy.per_client = vec![rps, rpm];
    policy.connections = Some(100);
    policy.route = Some(limit(10_000_000, s, LimitAlgorithm::TokenBucket));
    let limits = Limits::new(&policy, StoreConfig::default()).unwrap();
    let keys = clients(10_000);
    let mut i = 0usize;
    group.bench_function("10000", |b| {
        b.iter(|| {
            t += 1_000;
            i = (i + 1) % keys.len();
            limits
                .check(black_box(keys[i]), Duration::from_nanos(t))
                .is_ok()
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    limits_benches(&mut c);
    c.final_summary();
}
