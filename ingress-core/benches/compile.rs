//! `compile()` benchmarks, and a one-shot mode for peak-memory measurement.
//!
//! `cargo bench -p ingress-core --bench compile` runs the criterion groups
//! `compile/20k`, `compile/10k` and `compile/1k` (both profiles; the output table is
//! dropped outside the timed region, `BatchSize::PerIteration`, so the figure is the
//! compile alone), and `incremental/20k` and `incremental/1k`: one changed Ingress
//! applied by a [`Compiler`] holding the compiled table (`edit`: an annotation
//! changes, the routes keep their places; `reshape`: a path is added or removed, so
//! every later route id moves), plus `clone-table` (what publishing an owned copy of
//! the 20k table costs) and `edit-publish` / `reshape-publish` (a change applied,
//! then a copy published while the previous copy is still held, as the proxy does).
//!
//! Run directly with `--memory MODE [PROFILE]` (what `bench/compile-memory.sh` does
//! under `/usr/bin/time -v`), it does one thing and exits, so the process's peak RSS
//! is that thing's:
//! - `--memory baseline`: nothing (the binary's own footprint);
//! - `--memory snapshot`: build the 10k snapshot;
//! - `--memory compile`: build the 10k snapshot, then compile it once.
//!
//! PROFILE is `standard` (default) or `ingress-nginx`. It prints wall times and the
//! kernel's VmHWM/VmRSS after each step to stderr.

#![allow(clippy::unwrap_used, missing_docs)]
// The harness is not the pure core: it reads its arguments, the clock and
// /proc/self/status. The library itself stays under clippy.toml's bans.
#![allow(clippy::disallowed_methods)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use ingress_core::compile::{Compiler, Update};
use ingress_core::model::{HttpIngressPath, Ingress};
use ingress_core::{Profile, compile};

fn compile_benches(c: &mut Criterion) {
    for (n, name, samples, secs) in [
        (20_000, "compile/20k", 10, 10),
        (common::INGRESSES, "compile/10k", 20, 8),
        (1_000, "compile/1k", 30, 3),
    ] {
        let snapshot = common::snapshot(n);
        let mut group = c.benchmark_group(name);
        group.sample_size(samples);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(secs));
        for (profile, pname) in common::PROFILES {
            let options = common::options(profile);
            let check = compile(&snapshot, &options);
            assert!(
                check.diagnostics.is_empty(),
                "synthetic snapshot must compile clean: {:?}",
                &check.diagnostics[..check.diagnostics.len().min(3)]
            );
            assert_eq!(check.table.routes().len(), common::expected_routes(n));
            drop(check);
            group.bench_function(pname, |b| {
                b.iter_batched(
                    || (),
                    |()| compile(black_box(&snapshot), black_box(&options)),
                    BatchSize::PerIteration,
                );
            });
        }
        group.finish();
    }
}

/// `VmHWM` (peak) and `VmRSS` (current) of this process, from /proc/self/status.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map_or("?".to_owned(), |v| v.trim().to_owned())
    };
    format!("VmHWM {} VmRSS {}", field("VmHWM:"), field("VmRSS:"))
}

fn memory(mode: &str, profile: Profile) {
    eprintln!("[memory] start: {}", rss());
    if mode == "baseline" {
        return;
    }
    let t = Instant::now();
    let snapshot = common::snapshot(common::INGRESSES);
    eprintln!(
        "[memory] snapshot: {} objects in {:.1} ms; {}",
        snapshot.len(),
        t.elapsed().as_secs_f64() * 1e3,
        rss()
    );
    if mode == "snapshot" {
        black_box(&snapshot);
        return;
    }
    let options = common::options(profile);
    let t = Instant::now();
    let compiled = compile(&snapshot, &options);
    eprintln!(
        "[memory] compile ({profile}): {} routes, {} backends, {} diagnostics in {:.1} ms; {}",
        compiled.table.routes().len(),
        compiled.table.backends().len(),
        compiled.diagnostics.len(),
        t.elapsed().as_secs_f64() * 1e3,
        rss()
    );
    let t = Instant::now();
    drop(black_box(compiled));
    eprintln!(
        "[memory] drop of the compiled table: {:.1} ms; {}",
        t.elapsed().as_secs_f64() * 1e3,
        rss()
    );
    black_box(&snapshot);
}

/// Two versions of the Ingress in the middle of `snapshot`: `(a, b)` differ by an
/// annotation (`edit`) or by one more path (`reshape`).
fn versions(snapshot: &ingress_core::Snapshot, reshape: bool) -> (Ingress, Ingress) {
    let a = snapshot.ingresses[snapshot.ingresses.len() / 2 + 1].clone();
    let mut b = a.clone();
    if reshape {
        let paths = &mut b.spec.rules[0].http.as_mut().unwrap().paths;
        let extra = HttpIngressPath {
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
    (a, b)
}

fn incremental_benches(c: &mut Criterion) {
    for (n, name) in [(20_000, "incremental/20k"), (1_000, "incremental/1k")] {
        let snapshot = common::snapshot(n);
        let mut group = c.benchmark_group(name);
        group.sample_size(50);
        for (profile, pname) in common::PROFILES {
            let options = common::options(profile);
            let mut compiler = Compiler::new(snapshot.clone(), options.clone());
            for (kind, reshape) in [("edit", false), ("reshape", true)] {
                let (a, b) = versions(&snapshot, reshape);
                // Both directions are incremental and give what compile() gives.
                for v in [&b, &a] {
                    let u = compiler.upsert_ingress(v.clone());
                    assert!(matches!(u, Update::Incremental { .. }), "{u:?}");
                    let full = compile(compiler.snapshot(), &options);
                    assert_eq!(compiler.diagnostics(), &full.diagnostics[..]);
                    // Route ids are slots that stay put across updates: compare
                    // the routes by content, in (host, path) order.
                    let key = |t: &ingress_core::RouteTable| {
                        let mut v: Vec<String> = t
                            .routes()
                            .iter()
                            .map(|r| {
                                let b = t.backend(r.backend_id());
                                format!(
                                    "{} {:?} {:?} {} {}/{}",
                                    r.host(),
                                    r.matcher(),
                                    r.ingress(),
                                    r.field(),
                                    b.namespace(),
                                    b.service()
                                )
                            })
                            .collect();
                        v.sort();
                        v
                    };
                    assert_eq!(key(compiler.table()), key(&full.table));
                }
                let mut flip = false;
                group.bench_function(format!("{kind}/{pname}"), |bench| {
                    bench.iter_batched(
                        || {
                            flip = !flip;
                            if flip { b.clone() } else { a.clone() }
                        },
                        |v| compiler.upsert_ingress(black_box(v)),
                        BatchSize::SmallInput,
                    );
                });
            }
            if n == 20_000 && profile == Profile::Standard {
                group.bench_function("clone-table/standard", |bench| {
                    bench.iter_batched(
                        || (),
                        |()| compiler.table().clone(),
                        BatchSize::PerIteration,
                    );
                });
                // What the proxy does per change: apply it, then publish a copy of
                // the table while the copy published before is still served (so the
                // compiler's update copies whatever it shares with that copy).
                for (kind, reshape) in [("edit", false), ("reshape", true)] {
                    let (a, b) = versions(&snapshot, reshape);
                    let mut served = compiler.table().clone();
                    let mut flip = false;
                    group.bench_function(format!("{kind}-publish/{pname}"), |bench| {
                        bench.iter_batched(
                            || {
                                flip = !flip;
                                if flip { b.clone() } else { a.clone() }
                            },
                            |v| {
                                compiler.upsert_ingress(black_box(v));
                                std::mem::replace(&mut served, compiler.table().clone())
                            },
                            BatchSize::SmallInput,
                        );
                    });
                }
            }
        }
        group.finish();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--memory") {
        let mode = args.get(pos + 1).map_or("compile", String::as_str);
        let profile = args
            .get(pos + 2)
            .map_or(Ok(Profile::Standard), |p| p.parse::<Profile>())
            .unwrap();
        assert!(
            matches!(mode, "baseline" | "snapshot" | "compile"),
            "--memory takes baseline, snapshot or compile, not {mode:?}"
        );
        memory(mode, profile);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    compile_benches(&mut c);
    incremental_benches(&mut c);
    c.final_summary();
}
