//! `RouteTable::route()` benchmarks on the compiled 10k-Ingress table.
//!
//! Groups (each with a `standard` and an `ingress-nginx` function):
//! - `route/exact`: exact-host hits (Prefix, Exact and ImplementationSpecific paths);
//! - `route/wildcard`: hosts only a `*.wN.example.com` wildcard covers;
//! - `route/miss`: unknown hosts, answered 404;
//! - `route/normalize`: exact-host hits whose path needs normalising (allocates);
//! - `route/query`: exact-host hits with a query string (allocates `path?query`).
//!
//! Each iteration routes the next request of a rotating set of 4096 distinct ones
//! spread over the hosts, so the figure includes realistic cache misses rather than
//! one hot key. Setup checks every request gets the decision its group claims.
//! For comparison, `route/{exact,wildcard,miss}/standard-hot` route one request over
//! and over (everything stays in the CPU caches).

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use ingress_core::model::HostPattern;
use ingress_core::routing::RouteHost;
use ingress_core::{Decision, RequestView, RouteTable, compile};

/// What every request of a set must get.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Forwarded by a route on an exact host.
    ExactHit,
    /// Forwarded by a route on a wildcard host.
    WildcardHit,
    /// 404.
    NotFound,
}

fn check(table: &RouteTable, reqs: &[RequestView<'_>], expect: Expect, what: &str) {
    for r in reqs {
        let d = table.route(r);
        let ok = match (&d, expect) {
            (Decision::Forward(f), Expect::ExactHit) => {
                matches!(f.route.host(), RouteHost::Pattern(HostPattern::Exact(_)))
            }
            (Decision::Forward(f), Expect::WildcardHit) => {
                matches!(f.route.host(), RouteHost::Pattern(HostPattern::Wildcard(_)))
            }
            (d, Expect::NotFound) => d.status().map(|s| s.as_u16()) == Some(404),
            _ => false,
        };
        assert!(ok, "{what}: {} {}: unexpected {d:?}", r.host, r.path);
    }
}

fn route_benches(c: &mut Criterion) {
    let n = common::INGRESSES;
    let snapshot = common::snapshot(n);
    // (group, requests, what each must get, also bench one hot request)
    let sets = [
        (
            "route/exact",
            common::exact_requests(n),
            Expect::ExactHit,
            true,
        ),
        (
            "route/wildcard",
            common::wildcard_requests(n),
            Expect::WildcardHit,
            true,
        ),
        (
            "route/miss",
            common::miss_requests(),
            Expect::NotFound,
            true,
        ),
        (
            "route/normalize",
            common::normalize_requests(n),
            Expect::ExactHit,
            false,
        ),
        (
            "route/query",
            common::query_requests(n),
            Expect::ExactHit,
            false,
        ),
    ];
    let tables: Vec<(&str, RouteTable)> = common::PROFILES
        .iter()
        .map(|&(profile, pname)| {
            let compiled = compile(&snapshot, &common::options(profile));
            assert!(compiled.diagnostics.is_empty());
            assert_eq!(compiled.table.routes().len(), common::expected_routes(n));
            (pname, compiled.table)
        })
        .collect();
    drop(snapshot);

    for (group_name, reqs, expect, hot) in &sets {
        let views = common::views(reqs);
        assert!(views.len().is_power_of_two());
        let mask = views.len() - 1;
        let mut group = c.benchmark_group(*group_name);
        group.sample_size(50);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        for (pname, table) in &tables {
            check(table, &views, *expect, &format!("{group_name}/{pname}"));
            group.bench_function(*pname, |b| {
                let mut k = 0usize;
                b.iter(|| {
                    let req = &views[k & mask];
                    k = k.wrapping_add(1);
                    table.route(black_box(req))
                });
            });
        }
        if *hot {
            // For comparison only: one request over and over, so every lookup hits
            // the CPU caches. The difference to `standard` is the cost of cache misses.
            let (_, table) = &tables[0];
            let req = &views[0];
            group.bench_function("standard-hot", |b| {
                b.iter(|| table.route(black_box(req)));
            });
        }
        group.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    route_benches(&mut c);
    c.final_summary();
}
