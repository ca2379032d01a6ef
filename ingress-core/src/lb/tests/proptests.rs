//! Properties of every algorithm, on arbitrary endpoint lists, loads and inputs.

use proptest::prelude::*;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};

use super::super::*;
use super::{algo, candidates, ep, eps, hashed, sticky};

/// Run `test` on `cases` values of `strategy`, deterministically (no files).
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRunner::deterministic().new_rng());
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// The six ways a balancer picks (0..6).
fn policy(kind: usize) -> LoadBalancePolicy {
    match kind {
        0 => algo(None),
        1 => algo(Some(LoadBalance::Ewma)),
        2 => algo(Some(LoadBalance::LeastRequest)),
        3 => algo(Some(LoadBalance::Random)),
        4 => hashed(None),
        _ => hashed(Some(1 + kind % 4)),
    }
}

#[test]
fn picks_are_in_range_and_never_avoided() {
    let strategy = (
        0..7usize,
        any::<bool>(),
        0..70usize,
        prop::collection::vec(0..80usize, 0..70),
        prop::collection::vec(any::<u64>(), 1..8),
        prop::option::of("[a-z/]{0,12}"),
        prop::option::of(0..75usize),
    );
    check(
        256,
        strategy,
        |(kind, is_sticky, n, avoid, randoms, key, cookie)| {
            let e = eps(n);
            let aff = sticky(true);
            let b = Balancer::new(&e, &policy(kind), is_sticky.then_some(&aff));
            let avoid: EndpointSet = avoid.into_iter().collect();
            let all_avoided = (0..n).all(|i| avoid.contains(i));
            let cookie = cookie
                .map(|i| crate::annotations::affinity::cookie_value(&ep(i, 8080).to_string()));
            for (t, &r) in randoms.iter().enumerate() {
                let mut input = PickInput::new(r, t as u64 * 1_000_000).avoiding(&avoid);
                input.hash_key = key.as_deref();
                input.cookie = cookie.as_deref();
                input.retry = t % 2 == 1;
                match b.pick(&input) {
                    None => prop_assert!(all_avoided, "no pick with endpoints available"),
                    Some(p) => {
                        prop_assert!(p.index < n);
                        prop_assert!(!avoid.contains(p.index));
                        prop_assert!(is_sticky || !p.set_cookie);
                        b.on_start(p.index);
                        b.on_end(p.index, r % 50_000_000, t as u64 * 1_000_000);
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn round_robin_cycles_evenly() {
    check(
        128,
        (1..64usize, 1..5usize, any::<u64>()),
        |(n, rounds, start)| {
            let b = Balancer::new(&eps(n), &algo(None), None);
            b.start_at_random(start);
            let picks: Vec<usize> = (0..n * rounds)
                .filter_map(|_| b.pick(&PickInput::new(0, 0)).map(|p| p.index))
                .collect();
            prop_assert_eq!(picks.len(), n * rounds);
            for window in picks.chunks(n) {
                let seen: EndpointSet = window.iter().copied().collect();
                prop_assert_eq!(seen.len(), n, "each cycle visits every endpoint once");
            }
            Ok(())
        },
    );
}

#[test]
fn p2c_never_picks_the_strictly_worse_candidate() {
    let strategy = (
        any::<bool>(),
        prop::collection::vec((0..6u64, prop::option::of(1..500u64)), 2..40),
        prop::collection::vec(0..40usize, 0..10),
        prop::collection::vec(any::<u64>(), 1..20),
        0..30_000_000_000u64,
    );
    check(256, strategy, |(ewma, setup, avoid, randoms, later)| {
        let n = setup.len();
        let kind = if ewma {
            Score::Ewma
        } else {
            Score::LeastRequest
        };
        let lb = if ewma {
            LoadBalance::Ewma
        } else {
            LoadBalance::LeastRequest
        };
        let b = Balancer::new(&eps(n), &algo(Some(lb)), None);
        let t0 = 1_000_000_000u64;
        for (i, &(inflight, ms)) in setup.iter().enumerate() {
            if let Some(ms) = ms {
                b.on_start(i);
                b.on_end(i, ms * 1_000_000, t0 + i as u64 * 7_000_000);
            }
            (0..inflight).for_each(|_| b.on_start(i));
        }
        let avoid: EndpointSet = avoid.into_iter().filter(|&i| i + 1 < n).collect();
        let now = t0 + later;
        let score = |i: usize| p2c::score(&b.stats[i], kind, now);
        for r in randoms {
            let (x, y) = candidates(&b, r, &avoid);
            prop_assert!(!avoid.contains(x) && !avoid.contains(y));
            let got = b
                .pick(&PickInput::new(r, now).avoiding(&avoid))
                .map(|p| p.index);
            prop_assert!(got == Some(x) || got == Some(y));
            let other = if got == Some(x) { y } else { x };
            prop_assert!(score(got.unwrap_or(x)) <= score(other));
        }
        Ok(())
    });
}

#[test]
fn adding_an_endpoint_moves_about_one_nth_of_the_keys() {
    let strategy = (
        prop::collection::btree_set(0..5_000usize, 2..41),
        any::<u32>(),
    );
    check(24, strategy, |(ids, salt)| {
        // One id is the endpoint added; it may sort anywhere in the list.
        let mut ids: Vec<usize> = ids.into_iter().collect();
        let added = ids.swap_remove(ids.len() / 2);
        let before: Vec<EndpointAddr> = ids.iter().map(|&i| ep(i, 80)).collect();
        let mut after = before.clone();
        after.push(ep(added, 80));
        after.sort();
        let n = before.len();
        let (old, new) = (
            Balancer::new(&before, &hashed(None), None),
            Balancer::new(&after, &hashed(None), None),
        );
        let mut moved = 0usize;
        for k in 0..10_000u32 {
            let key = format!("{salt}/{k}");
            let input = PickInput::new(0, 0).with_hash_key(&key);
            let a = old.pick(&input).and_then(|p| old.endpoint(p.index));
            let b = new.pick(&input).and_then(|p| new.endpoint(p.index));
            if a != b {
                prop_assert_eq!(
                    b,
                    Some(&ep(added, 80)),
                    "keys move only to the new endpoint"
                );
                moved += 1;
            }
        }
        let bound = 10_000.0 * 2.0 / (n + 1) as f64 + 100.0;
        prop_assert!(
            (moved as f64) < bound,
            "{} of 10000 keys moved with {} endpoints (bound {})",
            moved,
            n + 1,
            bound
        );
        Ok(())
    });
}

#[test]
fn equal_inputs_give_equal_endpoints_whatever_the_list_order() {
    let strategy = (
        prop::collection::btree_set(0..1_000usize, 1..30),
        prop::option::of(1..6usize),
        "[a-z0-9/]{0,16}",
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(0..1_000usize, 0..5),
    );
    check(
        256,
        strategy,
        |(ids, subset, key, random, shuffle, avoid)| {
            let list: Vec<EndpointAddr> = ids.iter().map(|&i| ep(i, 443)).collect();
            // The same endpoints in another order (a rotation and a reversal).
            let mut other = list.clone();
            other.rotate_left(shuffle as usize % list.len());
            if shuffle % 2 == 1 {
                other.reverse();
            }
            let avoided: Vec<&EndpointAddr> = list
                .iter()
                .filter(|e| avoid.iter().any(|&a| ep(a, 443) == **e))
                .collect();
            let avoid_in = |l: &[EndpointAddr]| -> EndpointSet {
                (0..l.len()).filter(|&i| avoided.contains(&&l[i])).collect()
            };
            let (av1, av2) = (avoid_in(&list), avoid_in(&other));
            let b1 = Balancer::new(&list, &hashed(subset), None);
            let b2 = Balancer::new(&other, &hashed(subset), None);
            let pick = |b: &Balancer, av: &EndpointSet| {
                let input = PickInput::new(random, 0).with_hash_key(&key).avoiding(av);
                b.pick(&input).and_then(|p| b.endpoint(p.index)).cloned()
            };
            let first = pick(&b1, &av1);
            prop_assert_eq!(&first, &pick(&b1, &av1), "same balancer, same input");
            prop_assert_eq!(&first, &pick(&b2, &av2), "list order does not matter");
            Ok(())
        },
    );
}

#[test]
fn affinity_keeps_the_pinned_endpoint_while_it_is_available() {
    let strategy = (
        1..40usize,
        0..40usize,
        0..7usize,
        prop::collection::vec(0..40usize, 0..40),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    );
    check(
        256,
        strategy,
        |(n, pinned, kind, avoid, retry, change, random)| {
            let pinned = pinned % n;
            let e = eps(n);
            let b = Balancer::new(&e, &policy(kind), Some(&sticky(change)));
            let avoid: EndpointSet = avoid.into_iter().collect();
            let cookie = b.cookie_value(pinned).map(str::to_owned);
            let mut input = PickInput::new(random, 0)
                .avoiding(&avoid)
                .with_hash_key("/k");
            input.cookie = cookie.as_deref();
            input.retry = retry;
            let got = b.pick(&input);
            if !avoid.contains(pinned) {
                prop_assert_eq!(
                    got,
                    Some(Pick {
                        index: pinned,
                        set_cookie: false
                    })
                );
            } else if let Some(p) = got {
                prop_assert!(p.index != pinned && !avoid.contains(p.index));
                prop_assert_eq!(p.set_cookie, !retry || change);
            } else {
                prop_assert!((0..n).all(|i| avoid.contains(i)));
            }
            // Without the cookie, a new one is always asked for.
            input.cookie = None;
            prop_assert!(b.pick(&input).is_none_or(|p| p.set_cookie));
            Ok(())
        },
    );
}
