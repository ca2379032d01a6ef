//! Manifest text in, decisions out: `load_str` → `compile` (both profiles) → `route`.
//!
//! Checks: nothing panics; compiling the same snapshot twice gives identical
//! diagnostics; compiling the snapshot with every object list reversed gives the same
//! diagnostics too (compile documents order independence); `route` and
//! `explain(..).decision` agree, the explanation's `Chosen` step is the deciding route
//! and no step is chosen when no route decided; locating diagnostics in the source
//! never panics.

#![no_main]

use ingress_core::manifest::load_str;
use ingress_core::{CompileOptions, Profile, RequestView, Scheme, compile};
use ingress_core_fuzz::check_route;
use libfuzzer_sys::fuzz_target;

/// Requests routed against every compiled table, whatever the input.
const FIXED: &[(Scheme, &str, &str)] = &[
    (Scheme::Http, "shop.example.com", "/api/cart?id=1"),
    (Scheme::Https, "foo.bar.com", "/"),
    (Scheme::Http, "Foo.Example.COM:8080", "/foo/bar/"),
    (Scheme::Http, "a.example.org.", "/a/../b/./c//d"),
    (Scheme::Http, "x.y.example.com", "/%2e%2e/%61dmin%2Fx"),
    (Scheme::Http, "[::1]:80", "/testpath"),
    (Scheme::Http, "", ""),
    (Scheme::Http, "[broken", "/"),
    (Scheme::Https, "10.0.0.1", "/?q"),
];

/// How many extra requests are built from the hosts and paths of the input.
const MAX_DERIVED: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = load_str("fuzz.yaml", text);

    // Requests built from the input itself hit real routes, not just 404s.
    let mut derived: Vec<(String, String)> = Vec::new();
    'outer: for ing in &loaded.snapshot.ingresses {
        for rule in &ing.spec.rules {
            let host = rule.host.clone().unwrap_or_default();
            let host = host
                .strip_prefix("*.")
                .map_or(host.clone(), |h| format!("w.{h}"));
            let paths = rule
                .http
                .as_ref()
                .map(|h| h.paths.as_slice())
                .unwrap_or(&[]);
            for p in paths {
                let path = p.path.clone().unwrap_or_default();
                derived.push((host.clone(), format!("{path}/x?y=1")));
                derived.push((host.clone(), path));
                if derived.len() >= MAX_DERIVED {
                    break 'outer;
                }
            }
        }
    }

    let mut reversed = loaded.snapshot.clone();
    reversed.ingresses.reverse();
    reversed.ingress_classes.reverse();
    reversed.services.reverse();
    reversed.endpoint_slices.reverse();
    reversed.secrets.reverse();

    for profile in [Profile::Standard, Profile::IngressNginx] {
        for options in [
            CompileOptions::with_profile(profile),
            CompileOptions::with_profile(profile)
                .ingress_class("gw")
                .watch_ingress_without_class(true),
        ] {
            let first = compile(&loaded.snapshot, &options);
            let second = compile(&loaded.snapshot, &options);
            assert_eq!(
                first.diagnostics, second.diagnostics,
                "compile is not deterministic ({profile})"
            );
            let third = compile(&reversed, &options);
            assert_eq!(
                first.diagnostics, third.diagnostics,
                "compile depends on input order ({profile})"
            );

            let _ = loaded.sources.locate_all(first.diagnostics.iter().cloned());

            for &(scheme, host, path) in FIXED {
                check_route(
                    &first.table,
                    &RequestView::get(scheme, host, path),
                    "manifest",
                );
            }
            for (host, path) in &derived {
                check_route(
                    &first.table,
                    &RequestView::get(Scheme::Http, host, path),
                    "manifest",
                );
            }
        }
    }
});
