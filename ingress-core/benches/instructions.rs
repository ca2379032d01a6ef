//! Fixed workloads for the instruction-count regression check
//! (`bench/instructions-check.sh`, run in CI under callgrind).
//!
//! Wall-clock benches are useless as a CI gate on shared machines; instruction counts
//! are repeatable. Each mode builds its input, then does the measured work `N` times;
//! the script runs every mode twice (`N` = 0 and `N` > 0) and divides the difference,
//! so set-up cost drops out.
//!
//! - `route KIND N [INGRESSES]`: route the first request of set KIND (`exact`,
//!   `wildcard`, `miss`) N times on a table of INGRESSES Ingresses (default 2,000;
//!   `bench/route-instructions.sh` uses the 10,000 of the route benches);
//! - `compile INGRESSES N`: compile the INGRESSES-Ingress snapshot N times;
//! - `edit INGRESSES N`: apply N annotation edits to one Ingress through the
//!   incremental `Compiler` (alternating two versions);
//! - `reshape INGRESSES N`: the same with a path added and removed (the host's
//!   route count changes);
//! - `route-cycle KIND N [INGRESSES]`: as `route`, but each call takes the next of
//!   the 4,096 requests of set KIND (for cache-miss counts: `valgrind
//!   --tool=cachegrind`).
//!
//! Every mode checks its result, so a broken build cannot pass for a fast one. With no
//! arguments (as `cargo bench` runs it) each mode runs once on a small input.
#![allow(missing_docs)]
// A benchmark binary, not the library: it reads its command line.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;

use ingress_core::compile::{Compiler, Update};
use ingress_core::{Decision, Profile, compile};

mod common;

/// Ingresses in the table `route` runs against unless told otherwise.
const ROUTE_INGRESSES: u64 = 2_000;

fn route(kind: &str, n: u64, ingresses: usize) {
    let snapshot = common::snapshot(ingresses);
    let table = compile(&snapshot, &common::options(Profile::Standard)).table;
    let reqs = match kind {
        "exact" => common::exact_requests(ingresses),
        "wildcard" => common::wildcard_requests(ingresses),
        "miss" => common::miss_requests(),
        other => panic!("route takes exact, wildcard or miss, not {other:?}"),
    };
    let views = common::views(&reqs);
    let req = &views[0];
    let forwarded = matches!(table.route(req), Decision::Forward(_));
    assert_eq!(forwarded, kind != "miss", "{kind}: unexpected decision");
    for _ in 0..n {
        black_box(table.route(black_box(req)));
    }
}

fn compile_n(ingresses: usize, n: u64) {
    let snapshot = common::snapshot(ingresses);
    let options = common::options(Profile::Standard);
    let want = common::expected_routes(ingresses);
    for _ in 0..n {
        let compiled = compile(black_box(&snapshot), &options);
        assert_eq!(compiled.table.routes().len(), want);
        black_box(compiled);
    }
}

fn route_cycle(kind: &str, n: u64, ingresses: usize) {
    let snapshot = common::snapshot(ingresses);
    let table = compile(&snapshot, &common::options(Profile::Standard)).table;
    let reqs = match kind {
        "exact" => common::exact_requests(ingresses),
        "wildcard" => common::wildcard_requests(ingresses),
        "miss" => common::miss_requests(),
        other => panic!("route-cycle takes exact, wildcard or miss, not {other:?}"),
    };
    let views = common::views(&reqs);
    for req in &views {
        let forwarded = matches!(table.route(req), Decision::Forward(_));
        assert_eq!(forwarded, kind != "miss", "{kind}: unexpected decision");
    }
    for i in 0..n as usize {
        black_box(table.route(black_box(&views[i % views.len()])));
    }
}

fn edit(ingresses: usize, n: u64, reshape: bool) {
    let snapshot = common::snapshot(ingresses);
    let options = common::options(Profile::Standard);
    let a = snapshot.ingresses[snapshot.ingresses.len() / 2 + 1].clone();
    let mut b = a.clone();
    if reshape {
        let paths = &mut b.spec.rules[0].http.as_mut().expect("paths").paths;
        let extra = ingress_core::model::HttpIngressPath {
            path: Some("/extra".to_owned()),
            ..paths[0].clone()
        };
        paths.push(extra);
    } else {
        b.metadata.annotations.insert(
            "nginx.ingress.kubernetes.io/proxy-read-timeout".to_owned(),
            "60".to_owned(),
        );
    }
    let mut compiler = Compiler::new(snapshot, options);
    for i in 0..n {
        let v = if i % 2 == 0 { b.clone() } else { a.clone() };
        let update = compiler.upsert_ingress(black_box(v));
        assert!(
            matches!(update, Update::Incremental { .. }),
            "edit {i}: {update:?}"
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("route") => route(
            args.get(1).map_or("exact", String::as_str),
            num(2, 1),
            num(3, ROUTE_INGRESSES) as usize,
        ),
        Some("compile") => compile_n(num(1, 1_000) as usize, num(2, 1)),
        Some("route-cycle") => route_cycle(
            args.get(1).map_or("exact", String::as_str),
            num(2, 1),
            num(3, ROUTE_INGRESSES) as usize,
        ),
        Some("edit") => edit(num(1, 1_000) as usize, num(2, 1), false),
        Some("reshape") => edit(num(1, 1_000) as usize, num(2, 1), true),
        Some(other) => {
            panic!("unknown mode {other:?} (route, route-cycle, compile, edit, reshape)")
        }
        None => {
            for kind in ["exact", "wildcard", "miss"] {
                route(kind, 1, 100);
            }
            route_cycle("exact", 1, 100);
            compile_n(100, 1);
            edit(100, 2, false);
            edit(100, 2, true);
        }
    }
}
