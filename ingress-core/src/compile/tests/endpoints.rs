//! The endpoint fast path (`refresh_endpoints`) against a full compile.

use proptest::prelude::*;

use super::*;
use crate::compile::{FullCompileNeeded, refresh_endpoints};

/// Ingresses over four Services: by port name, by port number, a default backend
/// annotation, an ExternalName Service and a missing one.
pub(super) fn base_yaml() -> String {
    let mut y = class("gw", DEFAULT_CONTROLLER_NAME, true);
    for (i, s) in ["s0", "s1", "s2"].iter().enumerate() {
        y += &format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: {s}, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}, {{name: admin, port: 90, targetPort: {}}}]}}
",
            9000 + i
        );
    }
    y += "---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: ext.example.com, ports: [{name: http, port: 80}]}
";
    y += &ingress(
        "default",
        "a",
        "",
        &format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule(
                "a.example.com",
                &[
                    path("Prefix", "/", "s0"),
                    path_to("Prefix", "/admin", &to("s1", 90)),
                    path("Exact", "/ext", "ext"),
                    path("Exact", "/gone", "missing"),
                ]
            )
        ),
    );
    y += &ingress(
        "default",
        "b",
        ", annotations: {nginx.ingress.kubernetes.io/default-backend: s2}",
        &format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule("b.example.com", &[path("Prefix", "/", "s1")])
        ),
    );
    y
}

/// One endpoint: an address and its conditions.
fn endpoint() -> impl Strategy<Value = String> {
    let cond = prop_oneof![Just(None), Just(Some(true)), Just(Some(false))];
    (0u8..6, cond.clone(), cond.clone(), cond).prop_map(|(ip, ready, serving, term)| {
        let mut c = Vec::new();
        for (k, v) in [
            ("ready", ready),
            ("serving", serving),
            ("terminating", term),
        ] {
            if let Some(v) = v {
                c.push(format!("{k}: {v}"));
            }
        }
        format!(
            "{{addresses: ['10.0.0.{ip}'], conditions: {{{}}}}}",
            c.join(", ")
        )
    })
}

/// The EndpointSlices: per Service, zero to two slices of zero to three
/// endpoints, on port `http` (and sometimes `admin`).
fn slices() -> impl Strategy<Value = String> {
    let one = (
        prop::collection::vec(endpoint(), 0..3),
        any::<bool>(),
        any::<bool>(),
    );
    prop::collection::vec(prop::collection::vec(one, 0..2), 3).prop_map(|per_service| {
        let mut y = String::new();
        for (si, slices) in per_service.iter().enumerate() {
            for (k, (eps, admin, present)) in slices.iter().enumerate() {
                if !present {
                    continue;
                }
                let ports = if *admin {
                    "[{name: http, port: 8080}, {name: admin, port: 9001}]"
                } else {
                    "[{name: http, port: 8080}]"
                };
                y += &format!(
                    "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: s{si}-{k}, namespace: default, labels: {{kubernetes.io/service-name: s{si}}}}}
addressType: IPv4
ports: {ports}
endpoints: [{}]
",
                    eps.join(", ")
                );
            }
        }
        y
    })
}

/// The parts of a table the fast path may touch, as text.
fn view(t: &crate::RouteTable) -> String {
    format!("{:?}\n{:?}", t.routes(), t.backends())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn the_fast_path_equals_a_full_compile(before in slices(), after in slices()) {
        let base = base_yaml();
        let previous = load(&(base.clone() + &before));
        let next = load(&(base + &after));
        let old = compile(&previous, &opts());
        let full = compile(&next, &opts());
        match refresh_endpoints(&old.table, &previous, &next) {
            Ok(r) => {
                prop_assert_eq!(view(&r.table), view(&full.table));
                prop_assert_eq!(&old.diagnostics, &full.diagnostics);
            }
            Err(FullCompileNeeded::DiagnosticsChange(_)) => {}
            Err(e) => prop_assert!(false, "declined: {e}"),
        }
    }
}

#[test]
fn an_endpoint_change_replaces_only_that_services_endpoints() {
    let base = base_yaml();
    let before = slice("default", "s0-0", "s0", "[{addresses: ['10.0.0.1']}]")
        + &slice("default", "s1-0", "s1", "[{addresses: ['10.0.1.1']}]");
    let after = slice(
        "default",
        "s0-0",
        "s0",
        "[{addresses: ['10.0.0.2']}, {addresses: ['10.0.0.3']}]",
    ) + &slice("default", "s1-0", "s1", "[{addresses: ['10.0.1.1']}]");
    let previous = load(&(base.clone() + &before));
    let next = load(&(base + &after));
    let old = compile(&previous, &opts());
    assert_eq!(endpoints(&old, "a.example.com", "/"), "10.0.0.1:8080");
    let r = refresh_endpoints(&old.table, &previous, &next).expect("fast path");
    assert_eq!(r.backends, 1);
    assert_eq!(r.services.iter().collect::<Vec<_>>(), ["default/s0"]);
    let fast = Compiled {
        table: r.table,
        diagnostics: old.diagnostics.clone(),
    };
    assert_eq!(
        endpoints(&fast, "a.example.com", "/"),
        "10.0.0.2:8080,10.0.0.3:8080"
    );
    assert_eq!(view(&fast.table), view(&compile(&next, &opts()).table));
}

#[test]
fn it_declines_what_it_cannot_do() {
    let base = base_yaml();
    let one = slice("default", "s0-0", "s0", "[{addresses: ['10.0.0.1']}]");
    let previous = load(&(base.clone() + &one));
    let old = compile(&previous, &opts());
    // The last endpoint gone: a new diagnostic.
    let none = load(&base);
    assert!(matches!(
        refresh_endpoints(&old.table, &previous, &none),
        Err(FullCompileNeeded::DiagnosticsChange(_))
    ));
    // Another kind changed.
    let more = load(&(base + &one + &svc("default", "s9", "10.9.9.9")));
    assert_eq!(
        refresh_endpoints(&old.table, &previous, &more).err(),
        Some(FullCompileNeeded::NotOnlyEndpoints)
    );
}
