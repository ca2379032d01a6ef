use super::*;

// --------------------------------------------------------------- 8. determinism

/// Many objects that interact: conflicts with and without timestamps, default
/// backends, TLS, classes, invalid and foreign Ingresses, missing Services.
fn busy_yaml() -> String {
    let (crt, key) = cert(&["a.example.com"]);
    let mut y = class("gw", DEFAULT_CONTROLLER_NAME, true)
        + &class("other", "k8s.io/ingress-nginx", false)
        + &simple(
            "default",
            "a",
            T2020,
            "a.example.com",
            "Prefix",
            "/foo",
            "s1",
        )
        + &simple("default", "b", "", "a.example.com", "Prefix", "/foo", "s2")
        + &simple("default", "c", "", "a.example.com", "Prefix", "/foo", "s3")
        + &simple(
            "default",
            "c2",
            T2020,
            "a.example.com",
            "Prefix",
            "/foo",
            "s3",
        )
        + &simple(
            "other",
            "d",
            "",
            "a.example.com",
            "ImplementationSpecific",
            "/foo",
            "s1",
        )
        + &simple("default", "x", "", "a.example.com", "Exact", "/foo", "s2")
        + &tls_ingress("t1", T2021, &["a.example.com"], "a-tls")
        + &tls_ingress("t2", "", &["a.example.com"], "b-tls")
        + &ingress(
            "default",
            "e",
            "",
            &format!(
                "{{defaultBackend: {}, rules: [{}]}}",
                to("s1", 80),
                rule("e.example.com", &[path("Exact", "/", "s2")])
            ),
        )
        + &ingress(
            "default",
            "e2",
            "",
            &format!("{{ingressClassName: gw, defaultBackend: {}}}", to("s2", 80)),
        )
        + &ingress(
            "default",
            "f",
            "",
            &format!("{{ingressClassName: other, rules: [{}]}}", ok_rule()),
        )
        + &ingress(
            "default",
            "g",
            "",
            &format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule("Bad..host", &[path("Prefix", "/", "s1")])
            ),
        )
        + &ingress(
            "default",
            "h",
            ", annotations: {kubernetes.io/ingress.class: other}",
            &format!("{{ingressClassName: gw, rules: [{}]}}", ok_rule()),
        )
        + &svc("default", "s1", "10.0.0.1")
        + &svc("default", "s2", "10.0.0.2")
        + &slice(
            "default",
            "s2-b",
            "s2",
            "[{addresses: ['10.0.0.9']}, {addresses: ['10.0.0.2']}]",
        )
        + &svc("default", "s3", "10.0.0.3")
        + &tls_secret("a-tls", &crt, &key)
        + &tls_secret("b-tls", "garbage", "garbage");
    // A duplicate Service with different content.
    y += "---
apiVersion: v1
kind: Service
metadata: {name: s1, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 9999}]}
";
    y
}

#[test]
fn input_order_does_not_matter() {
    let snapshot = load(&busy_yaml());
    for options in [opts(), nginx()] {
        let base = fingerprint(&compile(&snapshot, &options));
        let mut reversed = snapshot.clone();
        reversed.ingresses.reverse();
        reversed.ingress_classes.reverse();
        reversed.services.reverse();
        reversed.endpoint_slices.reverse();
        reversed.secrets.reverse();
        let mut variants = vec![("reversed".to_owned(), reversed)];
        for k in 1..snapshot.ingresses.len() {
            let mut s = snapshot.clone();
            s.ingresses.rotate_left(k);
            variants.push((format!("ingresses rotated by {k}"), s));
        }
        for (what, s) in variants {
            let got = fingerprint(&compile(&s, &options));
            assert_eq!(
                got.0, base.0,
                "{}: diagnostics differ ({what})",
                options.profile
            );
            assert_eq!(got.1, base.1, "{}: routes differ ({what})", options.profile);
            assert_eq!(
                got.2, base.2,
                "{}: backends differ ({what})",
                options.profile
            );
            assert_eq!(
                got.3, base.3,
                "{}: TLS bindings differ ({what})",
                options.profile
            );
        }
    }
}

#[test]
fn duplicate_objects_warn_and_do_not_depend_on_order() {
    let (crt, key) = cert(&["a.example.com"]);
    let site = tls_ingress("site", "", &["a.example.com"], "a-tls");
    let app = svc("default", "app", "10.0.0.1");
    let web = |service: &str| {
        simple(
            "default",
            "web",
            "",
            "a.example.com",
            "Prefix",
            "/web",
            service,
        )
    };
    let service = |port: u16| {
        format!(
            "---
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: 8080}}]}}
"
        )
    };
    let app_slice = |ip: &str| {
        slice(
            "default",
            "app-1",
            "app",
            &format!("[{{addresses: ['{ip}']}}]"),
        )
    };
    // (object, shared objects, copy 1, copy 2)
    let cases: Vec<(ObjectRef, String, String, String)> = vec![
        (
            ing_ref("default", "web"),
            app.clone() + &svc("default", "app2", "10.0.0.2"),
            web("app"),
            web("app2"),
        ),
        (
            ObjectRef::namespaced(ObjectKind::Service, "default", "app"),
            site.clone() + &app_slice("10.0.0.1"),
            service(80),
            service(81),
        ),
        (
            ObjectRef::namespaced(ObjectKind::EndpointSlice, "default", "app-1"),
            site.clone() + &service(80),
            app_slice("10.0.0.1"),
            app_slice("10.0.0.2"),
        ),
        (
            ObjectRef::namespaced(ObjectKind::Secret, "default", "a-tls"),
            site.clone() + &app,
            tls_secret("a-tls", &crt, &key),
            tls_secret("a-tls", "garbage", "garbage"),
        ),
        (
            class_ref("gw"),
            site.clone() + &app,
            class("gw", DEFAULT_CONTROLLER_NAME, false),
            class("gw", "k8s.io/ingress-nginx", false),
        ),
    ];
    let requests = [("a.example.com", "/site"), ("a.example.com", "/web")];
    let mut failures = Vec::new();
    for (object, shared, one, two) in cases {
        // No `ingress_class("gw")`: the IngressClass case must decide ownership.
        let options = CompileOptions::default();
        let with_class = |y: String| {
            if object.kind == ObjectKind::IngressClass {
                y
            } else {
                class("gw", DEFAULT_CONTROLLER_NAME, false) + &y
            }
        };
        let first = run(&with_class(shared.clone() + &one + &two), &options);
        let second = run(&with_class(shared.clone() + &two + &one), &options);
        for (order, c) in [("1,2", &first), ("2,1", &second)] {
            let dups = c
                .diagnostics
                .iter()
                .filter(|d| d.code == Code::DuplicateObject && d.object.as_ref() == Some(&object))
                .collect::<Vec<_>>();
            if dups.len() != 1 || dups[0].severity != Severity::Warning {
                failures.push(format!(
                    "{object} ({order}): want one DuplicateObject warning, got {dups:?}"
                ));
            }
        }
        if fingerprint(&first) != fingerprint(&second) {
            failures.push(format!(
                "{object}: the result depends on which copy comes first"
            ));
        }
        for (host, p) in requests {
            let (a, b) = (endpoints(&first, host, p), endpoints(&second, host, p));
            if a != b {
                failures.push(format!("{object}: {host}{p} gives {a} or {b} by order"));
            }
        }
        if has_cert(&first, "a.example.com") != has_cert(&second, "a.example.com") {
            failures.push(format!("{object}: the certificate depends on order"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
