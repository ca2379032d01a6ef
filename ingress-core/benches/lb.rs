//! `Balancer::pick()` benchmarks: every algorithm with 3 and 100 endpoints.
//!
//! Groups `lb/<algorithm>`, functions `3` and `100` (endpoints):
//! - `round_robin`, `random`, `least_request`, `ewma`: plain picks (EWMA and least
//!   request over endpoints with recorded latencies and in-flight requests);
//! - `ewma_cycle`: pick + `on_start` + `on_end`, what the proxy does per attempt;
//! - `retry_avoid`: round robin with the previous pick avoided (a retry);
//! - `chash`, `chash_subset3`: consistent hashing of the next of 1,024 keys
//!   (`/api/items/<k>?page=<k>`: 20-odd bytes, hashed per pick);
//! - `cookie_hit`: affinity with a cookie naming an endpoint (the next of all of
//!   them); `cookie_miss`: affinity without a cookie (round robin, cookie asked).
//!
//! Each iteration draws a fresh random number with xorshift64* (counted in the
//! figure, about 1 ns).

#![allow(missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::Criterion;
use ingress_core::annotations::AffinityPolicy;
use ingress_core::annotations::LoadBalancePolicy;
use ingress_core::annotations::load_balance::{HashKey, LoadBalance, hash_template};
use ingress_core::lb::{Balancer, EndpointSet, PickInput};
use ingress_core::routing::{EndpointAddr, EndpointHost};

fn endpoints(n: usize) -> Vec<EndpointAddr> {
    (0..n)
        .map(|i| EndpointAddr {
            host: EndpointHost::Ip(IpAddr::V4(Ipv4Addr::new(10, 2, (i / 256) as u8, i as u8))),
            port: 8080,
        })
        .collect()
}

fn policy(algorithm: LoadBalance) -> LoadBalancePolicy {
    let mut p = LoadBalancePolicy::default();
    p.algorithm = Some(algorithm);
    p
}

fn hashed(subset: Option<usize>) -> LoadBalancePolicy {
    let mut p = policy(LoadBalance::ConsistentHash);
    p.hash = Some(HashKey {
        template: hash_template("$request_uri").expect("valid"),
        subset,
    });
    p
}

/// xorshift64*: the benchmark's RNG (the core takes randomness as input).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// How a group builds its balancer.
type Build = fn(&[EndpointAddr], &AffinityPolicy) -> Balancer;

const NOW: u64 = 60_000_000_000;

/// A balancer whose endpoints have latency averages and some requests in flight.
fn loaded(b: Balancer) -> Balancer {
    for i in 0..b.len() {
        b.on_start(i);
        b.on_end(i, 1_000_000 + (i as u64 % 7) * 300_000, NOW);
        (0..i % 4).for_each(|_| b.on_start(i));
    }
    b
}

fn lb_benches(c: &mut Criterion) {
    let keys: Vec<String> = (0..1024)
        .map(|k| format!("/api/items/{k}?page={k}"))
        .collect();
    let affinity = AffinityPolicy::default();
    let groups: [(&str, Build); 10] = [
        ("round_robin", |e, _| {
            Balancer::new(e, &LoadBalancePolicy::default(), None)
        }),
        ("random", |e, _| {
            Balancer::new(e, &policy(LoadBalance::Random), None)
        }),
        ("least_request", |e, _| {
            loaded(Balancer::new(e, &policy(LoadBalance::LeastRequest), None))
        }),
        ("ewma", |e, _| {
            loaded(Balancer::new(e, &policy(LoadBalance::Ewma), None))
        }),
        ("ewma_cycle", |e, _| {
            loaded(Balancer::new(e, &policy(LoadBalance::Ewma), None))
        }),
        ("retry_avoid", |e, _| {
            Balancer::new(e, &LoadBalancePolicy::default(), None)
        }),
        ("chash", |e, _| Balancer::new(e, &hashed(None), None)),
        ("chash_subset3", |e, _| {
            Balancer::new(e, &hashed(Some(3)), None)
        }),
        ("cookie_hit", |e, a| {
            Balancer::new(e, &LoadBalancePolicy::default(), Some(a))
        }),
        ("cookie_miss", |e, a| {
            Balancer::new(e, &LoadBalancePolicy::default(), Some(a))
        }),
    ];
    for (name, build) in groups {
        let mut group = c.benchmark_group(format!("lb/{name}"));
        group.sample_size(50);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for n in [3usize, 100] {
            let eps = endpoints(n);
            let b = build(&eps, &affinity);
            let cookies: Vec<String> = (0..n)
                .filter_map(|i| b.cookie_value(i).map(str::to_owned))
                .collect();
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut k = 0usize;
            group.bench_function(n.to_string(), |bench| match name {
                "chash" | "chash_subset3" => bench.iter(|| {
                    k = k.wrapping_add(1);
                    let input = PickInput::new(next(&mut rng), NOW).with_hash_key(&keys[k & 1023]);
                    b.pick(black_box(&input))
                }),
                "cookie_hit" => bench.iter(|| {
                    k = (k + 1) % n;
                    let input = PickInput::new(next(&mut rng), NOW).with_cookie(&cookies[k]);
                    let p = b.pick(black_box(&input));
                    debug_assert!(p.is_some_and(|p| p.index == k && !p.set_cookie));
                    p
                }),
                "ewma_cycle" => bench.iter(|| {
                    let r = next(&mut rng);
                    let p = b.pick(black_box(&PickInput::new(r, NOW)));
                    if let Some(p) = p {
                        b.on_start(p.index);
                        b.on_end(p.index, 1_000_000 + (r & 0xf_ffff), NOW + (r & 0xffff));
                    }
                    p
                }),
                "retry_avoid" => {
                    let mut avoid = EndpointSet::new();
                    bench.iter(|| {
                        k = (k + 1) % n;
                        avoid.clear();
                        avoid.insert(k);
                        let input = PickInput::new(next(&mut rng), NOW)
                            .avoiding(&avoid)
                            .retrying();
                        b.pick(black_box(&input))
                    })
                }
                _ => bench.iter(|| b.pick(black_box(&PickInput::new(next(&mut rng), NOW)))),
            });
        }
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lb_benches(&mut c);
    c.final_summary();
}
