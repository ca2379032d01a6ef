//! Instruction counts of `route()`: a plain loop for `bench/route-instructions.sh`,
//! which runs it under callgrind. Instruction counts are repeatable whatever else
//! the machine is doing, unlike the nanoseconds of the criterion benches.
//!
//! `route_instructions KIND N`: build the 10,000-Ingress table of the route
//! benches, then route the first request of set KIND (`exact`, `wildcard`, `miss`)
//! N times. With no arguments (as `cargo bench` runs it) it routes each kind once
//! and checks the decision, so the binary stays honest.
#![allow(missing_docs)]
// A benchmark binary, not the library: it reads its command line.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;

use ingress_core::{Decision, compile};

mod common;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let kind = args.next();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let ingresses = common::INGRESSES;
    let snapshot = common::snapshot(ingresses);
    let (profile, _) = common::PROFILES[0];
    let table = compile(&snapshot, &common::options(profile)).table;
    let kinds: Vec<&str> = match kind.as_deref() {
        Some(k) => vec![k],
        None => vec!["exact", "wildcard", "miss"],
    };
    for kind in kinds {
        let reqs = match kind {
            "wildcard" => common::wildcard_requests(ingresses),
            "miss" => common::miss_requests(),
            _ => common::exact_requests(ingresses),
        };
        let views = common::views(&reqs);
        let req = &views[0];
        let forwarded = matches!(table.route(req), Decision::Forward(_));
        assert_eq!(forwarded, kind != "miss", "{kind}: unexpected decision");
        for _ in 0..n {
            black_box(table.route(black_box(req)));
        }
    }
}
