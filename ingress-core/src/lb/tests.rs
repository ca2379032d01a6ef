//! Table-driven tests of each algorithm (properties are in `proptests`).

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::annotations::load_balance::{HashKey, hash_template};
use crate::routing::EndpointHost;

mod proptests;

pub(super) fn eps(n: usize) -> Vec<EndpointAddr> {
    (0..n).map(|i| ep(i, 8080)).collect()
}

pub(super) fn ep(i: usize, port: u16) -> EndpointAddr {
    let [_, _, hi, lo] = (i as u32).to_be_bytes();
    EndpointAddr {
        host: EndpointHost::Ip(IpAddr::V4(Ipv4Addr::new(10, 1, hi, lo))),
        port,
    }
}

pub(super) fn algo(a: Option<LoadBalance>) -> LoadBalancePolicy {
    LoadBalancePolicy {
        algorithm: a,
        hash: None,
    }
}

pub(super) fn hashed(subset: Option<usize>) -> LoadBalancePolicy {
    LoadBalancePolicy {
        algorithm: Some(LoadBalance::ConsistentHash),
        hash: Some(HashKey {
            template: hash_template("$request_uri").expect("valid template"),
            subset,
        }),
    }
}

pub(super) fn sticky(change_on_failure: bool) -> AffinityPolicy {
    AffinityPolicy {
        change_on_failure,
        ..AffinityPolicy::default()
    }
}

fn set(items: &[usize]) -> EndpointSet {
    items.iter().copied().collect()
}

fn index(b: &Balancer, input: &PickInput<'_>) -> Option<usize> {
    b.pick(input).map(|p| p.index)
}

#[test]
fn balancers_are_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Balancer>();
    shareable::<EndpointSet>();
}

#[test]
fn endpoint_sets() {
    let mut s = EndpointSet::new();
    assert!(s.is_empty());
    assert_eq!(s.len(), 0);
    assert!(s.insert(3) && !s.insert(3) && s.insert(64) && s.insert(300));
    assert_eq!(s.iter().collect::<Vec<_>>(), [3, 64, 300]);
    assert_eq!((s.len(), s.contains(64), s.contains(65)), (3, true, false));
    // Free indexes below n, and the rank-th of them.
    assert_eq!(s.free_below(5), 4);
    assert_eq!(s.free_below(70), 68);
    for (n, rank, want) in [
        (5, 0, Some(0)),
        (5, 3, Some(4)),
        (5, 4, None),
        (70, 62, Some(63)),
        (70, 63, Some(65)),
        (302, 297, Some(299)),
        (302, 298, Some(301)),
        (302, 299, None),
    ] {
        assert_eq!(s.nth_free(n, rank), want, "n={n} rank={rank}");
    }
    assert!(s.remove(300) && !s.remove(300));
    assert_eq!(s, set(&[3, 64]), "spilled zero words do not count");
    s.clear();
    assert_eq!(s, EndpointSet::new());
    assert_eq!(EndpointSet::new().nth_free(3, 2), Some(2));
}

#[test]
fn hash64_is_stable() {
    // Pinned values: ring points and key positions must never change.
    for (input, want) in [
        // Checked against an independent implementation (Python, FNV-1a 64 then
        // MurmurHash3 fmix64).
        ("", 0xefd0_1f60_ba99_2926_u64),
        ("a", 0x82a2_a958_a9be_ce5b),
        ("10.1.0.0:8080#0", 0x13fa_30ed_5b15_49b4),
        ("/cart?id=7", 0xe5da_690c_aa93_91fc),
    ] {
        assert_eq!(hash64(input.as_bytes()), want, "{input:?}");
    }
}

#[test]
fn the_policy_decides_the_algorithm() {
    let e = eps(4);
    let aff = sticky(false);
    for (policy, affinity, algorithm, subset, hashing) in [
        (algo(None), None, LoadBalance::RoundRobin, None, false),
        (
            algo(Some(LoadBalance::RoundRobin)),
            None,
            LoadBalance::RoundRobin,
            None,
            false,
        ),
        (
            algo(Some(LoadBalance::Ewma)),
            None,
            LoadBalance::Ewma,
            None,
            false,
        ),
        (
            algo(Some(LoadBalance::LeastRequest)),
            None,
            LoadBalance::LeastRequest,
            None,
            false,
        ),
        (
            algo(Some(LoadBalance::Random)),
            None,
            LoadBalance::Random,
            None,
            false,
        ),
        // Hashing without a key (the parser never builds it): the default.
        (
            algo(Some(LoadBalance::ConsistentHash)),
            None,
            LoadBalance::RoundRobin,
            None,
            false,
        ),
        (hashed(None), None, LoadBalance::ConsistentHash, None, true),
        (
            hashed(Some(3)),
            None,
            LoadBalance::ConsistentHash,
            Some(3),
            true,
        ),
        // Affinity wins over the hash key; other algorithms are its fallback.
        (
            hashed(None),
            Some(&aff),
            LoadBalance::RoundRobin,
            None,
            false,
        ),
        (
            algo(Some(LoadBalance::Ewma)),
            Some(&aff),
            LoadBalance::Ewma,
            None,
            false,
        ),
    ] {
        let b = Balancer::new(&e, &policy, affinity);
        let what = format!("{policy:?} {affinity:?}");
        assert_eq!(b.algorithm(), algorithm, "{what}");
        assert_eq!(b.subset_size(), subset, "{what}");
        assert_eq!(b.needs_hash_key(), hashing, "{what}");
        assert_eq!(b.is_sticky(), affinity.is_some(), "{what}");
        assert_eq!(b.cookie_value(0).is_some(), affinity.is_some(), "{what}");
    }
    let ip = IngressPolicy {
        load_balance: algo(Some(LoadBalance::Random)),
        affinity: Some(aff),
        ..IngressPolicy::default()
    };
    let b = Balancer::for_policy(&e, &ip);
    assert_eq!((b.algorithm(), b.is_sticky()), (LoadBalance::Random, true));
    assert_eq!(b.affinity_mode(), Some(AffinityMode::Balanced));
    assert!(format!("{b:?}").contains("Random"));
}

#[test]
fn no_endpoints_no_pick() {
    for policy in [algo(None), algo(Some(LoadBalance::Ewma)), hashed(Some(2))] {
        let b = Balancer::new(&[], &policy, Some(&sticky(true)));
        let input = PickInput::new(1, 2).with_hash_key("k").with_cookie("x");
        assert_eq!(b.pick(&input), None);
        assert!(b.is_empty() && b.endpoint(0).is_none());
        b.on_start(0);
        b.on_end(0, 1, 1);
        b.start_at_random(9);
    }
}

#[test]
fn round_robin_takes_turns_and_skips_avoided_endpoints() {
    for (n, avoid, want) in [
        (1, vec![], vec![0, 0, 0]),
        (3, vec![], vec![0, 1, 2, 0, 1, 2, 0]),
        (3, vec![1], vec![0, 2, 2, 0, 2, 2]),
        (4, vec![0, 3], vec![1, 1, 2, 1, 1, 1, 2, 1]),
        (3, vec![0, 1, 2], vec![]),
        (3, vec![7], vec![0, 1, 2]),
    ] {
        let b = Balancer::new(&eps(n), &algo(None), None);
        let avoid = set(&avoid);
        let got: Vec<usize> = (0..want.len().max(2))
            .filter_map(|r| index(&b, &PickInput::new(r as u64, 0).avoiding(&avoid)))
            .collect();
        assert_eq!(got, want, "n={n} avoid={avoid:?}");
    }
    // start_at_random moves the cycle's start; the cycle stays the same.
    let b = Balancer::new(&eps(5), &algo(None), None);
    b.start_at_random(12_345);
    let first = index(&b, &PickInput::new(0, 0)).expect("pick");
    let next: Vec<usize> = (0..4)
        .filter_map(|_| index(&b, &PickInput::new(0, 0)))
        .collect();
    assert_eq!(next, (1..5).map(|k| (first + k) % 5).collect::<Vec<_>>());
}

#[test]
fn random_picks_spread_and_obey_the_avoid_set() {
    let b = Balancer::new(&eps(4), &algo(Some(LoadBalance::Random)), None);
    let mut counts = [0usize; 4];
    for r in 0..4000u64 {
        counts[index(&b, &PickInput::new(r, 0)).expect("pick")] += 1;
    }
    // Sequential inputs are mixed first, so they spread.
    assert!(
        counts.iter().all(|&c| (800..1200).contains(&c)),
        "{counts:?}"
    );
    let avoid = set(&[0, 2]);
    for r in 0..100 {
        let i = index(&b, &PickInput::new(r, 0).avoiding(&avoid));
        assert!(matches!(i, Some(1 | 3)), "{i:?}");
    }
    assert_eq!(
        index(&b, &PickInput::new(5, 0).avoiding(&set(&[0, 1, 3]))),
        Some(2)
    );
}

/// The two candidates `pick` draws for `random` (same mixing as `Balancer`).
pub(super) fn candidates(b: &Balancer, random: u64, avoid: &EndpointSet) -> (usize, usize) {
    let n = b.len();
    let avail = avoid.free_below(n);
    p2c::candidates(ring::fmix64(random), n, avail, avoid).expect("available")
}

#[test]
fn least_request_takes_the_candidate_with_fewer_in_flight() {
    // in-flight per endpoint -> the index each candidate pair resolves to.
    for loads in [vec![0, 3, 1], vec![5, 5, 0, 2], vec![1, 1, 1], vec![9, 0]] {
        let b = Balancer::new(
            &eps(loads.len()),
            &algo(Some(LoadBalance::LeastRequest)),
            None,
        );
        for (i, &l) in loads.iter().enumerate() {
            (0..l).for_each(|_| b.on_start(i));
        }
        for r in 0..200u64 {
            let (x, y) = candidates(&b, r, &set(&[]));
            assert_ne!(x, y);
            let want = if loads[y] < loads[x] { y } else { x };
            assert_eq!(
                index(&b, &PickInput::new(r, 0)),
                Some(want),
                "{loads:?} r={r}"
            );
        }
    }
}

#[test]
fn ewma_is_a_time_weighted_average() {
    let b = Balancer::new(&eps(2), &algo(Some(LoadBalance::Ewma)), None);
    let s = 1_000_000_000u64;
    assert_eq!(b.latency_ewma_ns(0, 0), None);
    b.on_start(0);
    b.on_start(0);
    assert_eq!(b.in_flight(0), 2);
    // The first sample is the average.
    b.on_end(0, 100_000_000, 5 * s);
    assert_eq!(b.latency_ewma_ns(0, 5 * s), Some(100_000_000.0));
    assert_eq!(b.in_flight(0), 1);
    // One decay constant later a sample weighs 1 - 1/e.
    b.on_end(0, 10_000_000, 15 * s);
    let w = (-1.0f64).exp();
    let want = 100_000_000.0 * w + 10_000_000.0 * (1.0 - w);
    let got = b.latency_ewma_ns(0, 15 * s).expect("sampled");
    assert!((got - want).abs() < 1.0, "{got} vs {want}");
    // Read later, it has decayed toward 0 by exp(-dt/10 s).
    let later = b.latency_ewma_ns(0, 35 * s).expect("sampled");
    assert!((later - want * (-2.0f64).exp()).abs() < 1.0);
    // A sample with no time since the last one carries no weight; the count
    // never goes below zero; out-of-range indexes are ignored.
    b.on_end(0, 1, 15 * s);
    assert_eq!(b.latency_ewma_ns(0, 15 * s), Some(got));
    assert_eq!(b.in_flight(0), 0);
    b.on_end(9, 1, 1);
    assert_eq!((b.in_flight(9), b.latency_ewma_ns(9, 0)), (0, None));
}

#[test]
fn ewma_prefers_fast_and_idle_endpoints() {
    let now = 60_000_000_000u64;
    // (latency ms, in flight) per endpoint; the endpoint P2C must favour.
    for (setup, best) in [
        // Latency decides between idle endpoints.
        (vec![(50, 0), (5, 0), (20, 0)], 1),
        // 6 ms with nothing in flight beats 2 ms with 4 in flight (6 < 2 x 5).
        (vec![(2, 4), (6, 0), (30, 0)], 1),
        // Unmeasured endpoints cost 1 ns: tried before measured ones.
        (vec![(3, 0), (3, 0), (0, 0)], 2),
    ] {
        let b = Balancer::new(&eps(setup.len()), &algo(Some(LoadBalance::Ewma)), None);
        for (i, &(ms, inflight)) in setup.iter().enumerate() {
            if ms > 0 {
                b.on_start(i);
                b.on_end(i, ms * 1_000_000, now);
            }
            (0..inflight).for_each(|_| b.on_start(i));
        }
        let score = |i: usize| p2c::score(&b.stats[i], Score::Ewma, now);
        for r in 0..200u64 {
            let (x, y) = candidates(&b, r, &set(&[]));
            let got = index(&b, &PickInput::new(r, now)).expect("pick");
            if x == best || y == best {
                assert_eq!(got, best, "{setup:?}");
            }
            assert!(score(got) <= score(if got == x { y } else { x }));
        }
    }
}

#[test]
fn ring_is_even_deterministic_and_falls_back_clockwise() {
    let e = eps(10);
    let b = Balancer::new(&e, &hashed(None), None);
    let ring = b.ring.as_ref().expect("ring");
    assert_eq!(ring.len(), 10 * VNODES_PER_ENDPOINT);
    let keys: Vec<String> = (0..10_000).map(|k| format!("/item/{k}")).collect();
    let again = Balancer::new(&e, &hashed(None), None);
    let mut counts = [0usize; 10];
    for (r, k) in keys.iter().enumerate() {
        let i = index(&b, &PickInput::new(r as u64, 0).with_hash_key(k)).expect("pick");
        counts[i] += 1;
        // The random input does not matter, nor does a rebuild.
        assert_eq!(
            index(&again, &PickInput::new(!0, 0).with_hash_key(k)),
            Some(i)
        );
    }
    // 160 points each: every endpoint within ±25% of its share.
    assert!(
        counts.iter().all(|&c| (750..1250).contains(&c)),
        "{counts:?}"
    );
    // Avoiding a key's endpoint moves it to the next owner clockwise, the same
    // endpoint every time, never to an avoided one.
    for k in keys.iter().take(200) {
        let first = index(&b, &PickInput::new(0, 0).with_hash_key(k)).expect("pick");
        let tried = set(&[first]);
        let second = index(&b, &PickInput::new(1, 0).with_hash_key(k).avoiding(&tried));
        let again = index(&b, &PickInput::new(2, 0).with_hash_key(k).avoiding(&tried));
        assert!(second.is_some_and(|s| s != first));
        assert_eq!(second, again);
    }
    // Without a key, a hashing balancer picks at random (still in range).
    assert!(index(&b, &PickInput::new(3, 0)).is_some_and(|i| i < 10));
}

#[test]
fn ring_buckets_find_what_a_full_binary_search_finds() {
    for n in [1, 2, 3, 7, 100, 300] {
        let b = Balancer::new(&eps(n), &hashed(None), None);
        let ring = b.ring.as_ref().expect("ring");
        let mut probes = vec![0, 1, u64::MAX - 1, u64::MAX, 1 << 63, (1 << 63) - 1];
        for &p in ring.points().iter().step_by(7) {
            probes.extend([p.wrapping_sub(1), p, p.wrapping_add(1)]);
        }
        probes.extend((0..2_000u64).map(|k| hash64(&k.to_le_bytes())));
        for h in probes {
            assert_eq!(ring.start_fast(h), ring.start_slow(h), "n={n} h={h:#x}");
        }
    }
}

#[test]
fn ring_moves_only_the_keys_it_must() {
    let keys: Vec<String> = (0..10_000).map(|k| format!("user-{k}")).collect();
    let all = eps(9);
    let small = Balancer::new(&all[..8], &hashed(None), None);
    let big = Balancer::new(&all, &hashed(None), None);
    let mut moved = 0;
    for k in &keys {
        let before = index(&small, &PickInput::new(0, 0).with_hash_key(k)).expect("pick");
        let after = index(&big, &PickInput::new(0, 0).with_hash_key(k)).expect("pick");
        if before != after {
            // Indexes of the first 8 are the same in both lists.
            assert_eq!(after, 8, "{k} moved between old endpoints");
            moved += 1;
        }
    }
    // About 1/9 of the keys move to the new endpoint.
    assert!((700..1600).contains(&moved), "{moved}");
}

#[test]
fn subsets_pick_within_the_keys_subset() {
    let e = eps(12);
    let b = Balancer::new(&e, &hashed(Some(3)), None);
    let ring = b.ring.as_ref().expect("ring");
    for k in ["/a", "/b", "/cart?id=7"] {
        let subset = ring.subset(hash64(k.as_bytes()), 3, &set(&[]));
        assert_eq!(subset.len(), 3);
        let mut seen = EndpointSet::new();
        for r in 0..300u64 {
            let input = PickInput::new(r, 0).with_hash_key(k);
            let i = index(&b, &input).expect("pick");
            assert!(subset.contains(&i), "{k}: {i} not in {subset:?}");
            assert_eq!(index(&b, &input), Some(i), "deterministic");
            seen.insert(i);
        }
        assert_eq!(seen.len(), 3, "{k}: the random input reaches every member");
        // Avoiding a member replaces it by the next distinct endpoint clockwise.
        let avoid = set(&subset[..1]);
        let replaced = ring.subset(hash64(k.as_bytes()), 3, &avoid);
        assert_eq!(&replaced[..2], &subset[1..]);
        for r in 0..100u64 {
            let i = index(&b, &PickInput::new(r, 0).with_hash_key(k).avoiding(&avoid));
            assert!(i.is_some_and(|i| replaced.contains(&i)));
        }
    }
    // A subset as large as the list is the whole list.
    let whole = Balancer::new(&eps(3), &hashed(Some(5)), None);
    let mut seen = EndpointSet::new();
    for r in 0..100u64 {
        seen.extend(index(&whole, &PickInput::new(r, 0).with_hash_key("/k")));
    }
    assert_eq!(seen, set(&[0, 1, 2]));
}

#[test]
fn affinity_pins_while_the_endpoint_is_available() {
    let e = eps(4);
    let cookie = crate::annotations::affinity::cookie_value(&e[2].to_string());
    let other = crate::annotations::affinity::cookie_value("10.9.9.9:80");
    let upper = cookie.to_ascii_uppercase();
    // (cookie, avoid, retry, change_on_failure) -> (pinned to 2?, set_cookie)
    for (value, avoid, retry, change, pinned, set_cookie) in [
        (Some(cookie.as_str()), vec![], false, false, true, false),
        (Some(cookie.as_str()), vec![0, 1], true, true, true, false),
        (None, vec![], false, false, false, true),
        (Some(other.as_str()), vec![], false, false, false, true),
        (Some(upper.as_str()), vec![], false, false, false, true),
        (Some("garbage"), vec![], false, false, false, true),
        // The pinned endpoint is avoided: ejected, or failed on this request.
        (Some(cookie.as_str()), vec![2], false, false, false, true),
        (Some(cookie.as_str()), vec![2], true, false, false, false),
        (Some(cookie.as_str()), vec![2], true, true, false, true),
    ] {
        let b = Balancer::new(&e, &algo(None), Some(&sticky(change)));
        assert_eq!(b.cookie_value(2), Some(cookie.as_str()));
        let avoid = set(&avoid);
        let mut input = PickInput::new(0, 0).avoiding(&avoid);
        input.cookie = value;
        input.retry = retry;
        for _ in 0..8 {
            let p = b.pick(&input).expect("pick");
            let what = format!("{value:?} {avoid:?} retry={retry} change={change}");
            if pinned {
                assert_eq!(p.index, 2, "{what}");
            }
            assert_eq!(p.set_cookie, set_cookie, "{what}");
            assert!(!avoid.contains(p.index));
        }
    }
    // Everything avoided: no pick even with a cookie.
    let b = Balancer::new(&e, &algo(None), Some(&sticky(false)));
    let all = set(&[0, 1, 2, 3]);
    assert_eq!(
        b.pick(&PickInput::new(0, 0).with_cookie(&cookie).avoiding(&all)),
        None
    );
}

#[test]
fn inherit_shares_counters_and_seeds_new_endpoints() {
    let s = 1_000_000_000u64;
    let old_eps = eps(3);
    let mut new_eps = eps(4)[1..].to_vec(); // drops 10.1.0.0, adds 10.1.0.3
    new_eps.insert(0, ep(0, 9090)); // same IP, other port: a new endpoint
    let old = Balancer::new(&old_eps, &algo(Some(LoadBalance::Ewma)), None);
    old.on_start(1);
    old.on_start(1);
    old.on_end(1, 10_000_000, 10 * s);
    old.on_end(2, 30_000_000, 10 * s);
    let mut new = Balancer::new(&new_eps, &algo(Some(LoadBalance::Ewma)), None);
    new.inherit(&old, 10 * s);
    // new[1] = old[1], new[2] = old[2]; new[0] and new[3] are new.
    assert_eq!(new.in_flight(1), 1);
    old.on_end(1, 10_000_000, 10 * s);
    assert_eq!(
        new.in_flight(1),
        0,
        "a request started on the old table ends there"
    );
    let mean = 20_000_000.0;
    for i in [0, 3] {
        assert_eq!(new.latency_ewma_ns(i, 10 * s), Some(mean), "slow start {i}");
    }
    assert_eq!(new.latency_ewma_ns(2, 10 * s), Some(30_000_000.0));
    // Round robin continues where the old balancer was.
    let rr_old = Balancer::new(&old_eps, &algo(None), None);
    for _ in 0..4 {
        let _ = rr_old.pick(&PickInput::new(0, 0));
    }
    let mut rr_new = Balancer::new(&new_eps, &algo(None), None);
    rr_new.inherit(&rr_old, 0);
    assert_eq!(index(&rr_new, &PickInput::new(0, 0)), Some(0));
    assert_eq!(index(&rr_new, &PickInput::new(0, 0)), Some(1));
}

#[test]
fn counters_are_exact_under_concurrency() {
    // Test only: the data plane's threads share one balancer.
    let b = Balancer::new(&eps(3), &algo(Some(LoadBalance::Ewma)), None);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let b = &b;
            scope.spawn(move || {
                for r in 0..2_000u64 {
                    let p = b.pick(&PickInput::new((t << 32) | r, r)).expect("pick");
                    b.on_start(p.index);
                    b.on_end(p.index, 1_000 + r, r + 1);
                }
            });
        }
    });
    assert!((0..3).all(|i| b.in_flight(i) == 0));
    assert!((0..3).all(|i| b.latency_ewma_ns(i, 2_001).is_some()));
}
