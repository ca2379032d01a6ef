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
    y + &ingresses_yaml()
}

/// The Ingresses of [`base_yaml`]: `s0` by port name, `s1` by number, `ext`, a
/// missing Service, and `s2` as a `default-backend` annotation.
pub(super) fn ingresses_yaml() -> String {
    let mut y = ingress(
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
    t.backends.assert_ready_bits();
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
    assert_eq!(r.backends.len(), 1);
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

/// The changes from `before` to `after`, by namespace and name, as
/// `Compiler::apply_endpoint_slices` takes them.
fn slice_changes(
    before: &Snapshot,
    after: &Snapshot,
) -> Vec<(String, String, Option<crate::model::EndpointSlice>)> {
    let key = |s: &crate::model::EndpointSlice| {
        (
            s.metadata.namespace_or_default().to_owned(),
            s.metadata.name.clone(),
        )
    };
    let mut out: Vec<_> = before
        .endpoint_slices
        .iter()
        .filter(|s| !after.endpoint_slices.iter().any(|a| key(a) == key(s)))
        .map(|s| {
            let (ns, name) = key(s);
            (ns, name, None)
        })
        .collect();
    for s in &after.endpoint_slices {
        let (ns, name) = key(s);
        out.push((ns, name, Some(s.clone())));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// Two rounds of slice changes through the compiler (slices added, changed,
    /// removed, moved between Services): after each, the table and diagnostics of a
    /// full compile of the same objects.
    #[test]
    fn compiler_slice_changes_equal_a_full_compile(
        a in slices(), b in slices(), c in slices()
    ) {
        use crate::compile::{Compiler, FullReason, Update};
        let base = base_yaml();
        let first = load(&(base.clone() + &a));
        let mut compiler = Compiler::new(first.clone(), opts());
        let mut previous = first;
        for step in [b, c] {
            let next = load(&(base.clone() + &step));
            let update = compiler.apply_endpoint_slices(slice_changes(&previous, &next));
            let full = compile(&next, &opts());
            match &update {
                Update::Endpoints { .. } | Update::Unchanged => {}
                Update::Full(FullReason::Endpoints(FullCompileNeeded::DiagnosticsChange(_))) => {}
                other => prop_assert!(false, "unexpected {other:?}"),
            }
            prop_assert_eq!(view(compiler.table()), view(&full.table));
            prop_assert_eq!(compiler.diagnostics(), &full.diagnostics[..]);
            previous = next;
        }
    }
}

#[test]
fn a_compiler_slice_change_resolves_only_that_service() {
    use crate::compile::{Compiler, Update};
    let base = base_yaml();
    let s0 = |ip: &str| {
        slice(
            "default",
            "s0-0",
            "s0",
            &format!("[{{addresses: ['{ip}']}}]"),
        )
    };
    let s1 = slice("default", "s1-0", "s1", "[{addresses: ['10.0.1.1']}]");
    let mut compiler = Compiler::new(load(&(base.clone() + &s0("10.0.0.1") + &s1)), opts());
    let next = load(&(base + &s0("10.0.0.2") + &s1));
    let changed = next
        .endpoint_slices
        .iter()
        .find(|s| s.metadata.name == "s0-0")
        .cloned();
    let update = compiler.apply_endpoint_slices([("default".into(), "s0-0".into(), changed)]);
    let Update::Endpoints { backends, services } = update else {
        panic!("{update:?}")
    };
    assert_eq!(backends.len(), 1);
    assert_eq!(services, ["default/s0"]);
    let c = compiler.compiled();
    assert_eq!(c.table.backend(backends[0]).service(), "s0");
    assert_eq!(endpoints(c, "a.example.com", "/"), "10.0.0.2:8080");
    assert_eq!(view(compiler.table()), view(&compile(&next, &opts()).table));
    // The same slice again: nothing to do.
    let same = next
        .endpoint_slices
        .iter()
        .find(|s| s.metadata.name == "s0-0")
        .cloned();
    assert_eq!(
        compiler.apply_endpoint_slices([("default".into(), "s0-0".into(), same)]),
        Update::Unchanged
    );
}
