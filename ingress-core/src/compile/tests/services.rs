//! The Service fast path (`Compiler::apply_services`) against a full compile.

use proptest::prelude::*;

use super::*;
use crate::compile::{Compiler, FullCompileNeeded, FullReason, Update};

/// The IngressClass and the Ingresses of the endpoint tests (by port name, by
/// port number, an ExternalName Service, a missing one, a `default-backend`
/// annotation), with EndpointSlices for `s0`..`s2` on ports `http` and `admin`.
fn without_services() -> String {
    let mut y = class("gw", DEFAULT_CONTROLLER_NAME, true) + &super::endpoints::ingresses_yaml();
    for s in ["s0", "s1", "s2"] {
        y += &format!(
            "---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {s}-0, namespace: default, labels: {{kubernetes.io/service-name: {s}}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}, {{name: admin, port: 9001}}]
endpoints: [{{addresses: ['10.0.0.1']}}, {{addresses: ['10.0.0.2'], conditions: {{ready: false}}}}]
"
        );
    }
    y
}

/// Service `name` in one of several shapes: target ports moved, ports reordered
/// (the first port moves), a port dropped or renamed, an ExternalName and its
/// target changed.
fn service(name: &str, shape: u8) -> String {
    let spec = match shape {
        0 => {
            "{ports: [{name: http, port: 80, targetPort: 8080}, {name: admin, port: 90, targetPort: 9001}]}"
        }
        1 => {
            "{ports: [{name: http, port: 80, targetPort: 8081}, {name: admin, port: 90, targetPort: 9001}]}"
        }
        2 => {
            "{ports: [{name: admin, port: 90, targetPort: 9001}, {name: http, port: 80, targetPort: 8080}]}"
        }
        3 => "{ports: [{name: http, port: 80, targetPort: 8080}]}",
        4 => "{ports: [{name: web, port: 80, targetPort: 8080}, {name: admin, port: 90}]}",
        5 => "{type: ExternalName, externalName: ext.example.com, ports: [{name: http, port: 80}]}",
        _ => {
            "{type: ExternalName, externalName: other.example.com, ports: [{name: http, port: 80}, {name: admin, port: 90}]}"
        }
    };
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {spec}
"
    )
}

/// Each of `s0`, `s1`, `s2`, `ext` and `missing` absent or in some shape.
fn services() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::option::of(0u8..7), 5).prop_map(|shapes| {
        ["s0", "s1", "s2", "ext", "missing"]
            .iter()
            .zip(shapes)
            .filter_map(|(name, shape)| shape.map(|s| service(name, s)))
            .collect()
    })
}

/// The changes from `before` to `after`, by namespace and name, as
/// `Compiler::apply_services` takes them.
fn service_changes(
    before: &Snapshot,
    after: &Snapshot,
) -> Vec<(String, String, Option<crate::model::Service>)> {
    let key = |s: &crate::model::Service| {
        (
            s.metadata.namespace_or_default().to_owned(),
            s.metadata.name.clone(),
        )
    };
    let mut out: Vec<_> = before
        .services
        .iter()
        .filter(|s| !after.services.iter().any(|a| key(a) == key(s)))
        .map(|s| {
            let (ns, name) = key(s);
            (ns, name, None)
        })
        .collect();
    for s in &after.services {
        let (ns, name) = key(s);
        out.push((ns, name, Some(s.clone())));
    }
    out
}

/// Routes and backends as text, ready bits checked.
fn view(t: &crate::RouteTable) -> String {
    t.backends.assert_ready_bits();
    format!("{:?}\n{:?}", t.routes(), t.backends())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    /// Two rounds of Service changes through the compiler (added, changed,
    /// removed): after each, the table and diagnostics of a full compile of the
    /// same objects, whether the fast path took it or declined.
    #[test]
    fn compiler_service_changes_equal_a_full_compile(
        a in services(), b in services(), c in services()
    ) {
        let base = without_services();
        let first = load(&(base.clone() + &a));
        let mut compiler = Compiler::new(first.clone(), opts());
        let mut previous = first;
        for step in [b, c] {
            let next = load(&(base.clone() + &step));
            let update = compiler.apply_services(service_changes(&previous, &next));
            let full = compile(&next, &opts());
            match &update {
                Update::Endpoints { .. } | Update::Unchanged => {}
                Update::Full(FullReason::Services(
                    FullCompileNeeded::DiagnosticsChange(_)
                    | FullCompileNeeded::DefaultBackendPort(_),
                )) => {}
                other => prop_assert!(false, "unexpected {other:?}"),
            }
            prop_assert_eq!(view(compiler.table()), view(&full.table));
            prop_assert_eq!(compiler.diagnostics(), &full.diagnostics[..]);
            previous = next;
        }
    }
}

#[test]
fn a_service_change_resolves_only_that_services_backends() {
    let base = without_services();
    let all = |ext: u8, s0: u8| {
        load(&format!(
            "{base}{}{}{}{}",
            service("s0", s0),
            service("s1", 0),
            service("s2", 0),
            service("ext", ext)
        ))
    };
    let mut compiler = Compiler::new(all(5, 0), opts());
    assert_eq!(
        endpoints(compiler.compiled(), "a.example.com", "/ext"),
        "ext.example.com:80"
    );
    // The ExternalName's target moves: its one backend is resolved again.
    let next = all(6, 0);
    let update = compiler.apply_services(service_changes(&all(5, 0), &next));
    let Update::Endpoints { backends, services } = &update else {
        panic!("not the fast path: {update:?}");
    };
    assert_eq!(services, &["default/ext".to_owned()]);
    assert_eq!(backends.len(), 1, "{update:?}");
    assert_eq!(
        endpoints(compiler.compiled(), "a.example.com", "/ext"),
        "other.example.com:80"
    );
    assert_eq!(view(compiler.table()), view(&compile(&next, &opts()).table));
    // The same Service again: nothing to do.
    assert_eq!(
        compiler.apply_services(service_changes(&next, &next)),
        Update::Unchanged
    );
    // s0 renames its port away: the route's backend loses its port, which changes
    // the diagnostics: a full compile, and it says why.
    let renamed = all(6, 4);
    assert_eq!(
        compiler.apply_services(service_changes(&next, &renamed)),
        Update::Full(FullReason::Services(FullCompileNeeded::DiagnosticsChange(
            "default/s0".into()
        )))
    );
    assert_eq!(
        view(compiler.table()),
        view(&compile(&renamed, &opts()).table)
    );
    // s2's ports reorder: the default-backend annotation resolves to its first port.
    let reordered = format!(
        "{base}{}{}{}{}",
        service("s0", 4),
        service("s1", 0),
        service("s2", 2),
        service("ext", 6)
    );
    let reordered = load(&reordered);
    assert_eq!(
        compiler.apply_services(service_changes(&renamed, &reordered)),
        Update::Full(FullReason::Services(FullCompileNeeded::DefaultBackendPort(
            "default/s2".into()
        )))
    );
    assert_eq!(
        view(compiler.table()),
        view(&compile(&reordered, &opts()).table)
    );
}
