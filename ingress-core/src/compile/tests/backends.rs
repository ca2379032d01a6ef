use super::*;

// ----------------------------------------------------------------- 4. backends

#[test]
fn backend_resolution() {
    let services = "---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: web}, {name: admin, port: 81, targetPort: 9090}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: admin, port: 9090}, {name: http, port: 8080}]
endpoints: [{addresses: ['10.0.0.1']}]
---
apiVersion: v1
kind: Service
metadata: {name: noslices, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: db.example.net, ports: [{name: pg, port: 5432, targetPort: 15432}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext2, namespace: default}
spec: {type: ExternalName, externalName: api.example.org, ports: [{name: https, port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: single, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: single-1, namespace: default, labels: {kubernetes.io/service-name: single}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: ['10.0.6.1']}]
---
apiVersion: v1
kind: Service
metadata: {name: wrongname, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: wrongname-1, namespace: default, labels: {kubernetes.io/service-name: wrongname}}
addressType: IPv4
ports: [{name: metrics, port: 9100}]
endpoints: [{addresses: ['10.0.7.1']}]
"
    .to_owned()
        + &svc_eps(
            "default",
            "mixed",
            "[{addresses: ['10.0.1.1'], conditions: {ready: true}},
              {addresses: ['10.0.1.2']},
              {addresses: ['10.0.1.3'], conditions: {ready: false, serving: true, terminating: false}},
              {addresses: ['10.0.1.4'], conditions: {ready: false, serving: true, terminating: true}}]",
        )
        + &svc_eps(
            "default",
            "serving",
            "[{addresses: ['10.0.2.1'], conditions: {ready: false, serving: true, terminating: false}},
              {addresses: ['10.0.2.2'], conditions: {ready: false, serving: true, terminating: true}},
              {addresses: ['10.0.2.3'], conditions: {ready: false, terminating: true}}]",
        )
        + &svc_eps(
            "default",
            "dead",
            "[{addresses: ['10.0.3.1'], conditions: {ready: false, terminating: true}},
              {addresses: ['10.0.3.2'], conditions: {ready: false, serving: false}},
              {addresses: ['10.0.3.3'], conditions: {ready: false, serving: true, terminating: true}}]",
        )
        // Another namespace's slice for `iso`, and a slice of another Service.
        + &svc("default", "iso", "10.0.4.1")
        + &slice("other", "iso-x", "iso", "[{addresses: ['10.9.9.9']}]")
        + &svc("other", "iso", "10.9.9.8")
        + &slice("default", "iso-other-1", "iso-other", "[{addresses: ['10.8.8.8']}]")
        // Two slices for `multi`, overlapping and unsorted.
        + &svc_eps(
            "default",
            "multi",
            "[{addresses: ['10.0.5.3']}, {addresses: ['10.0.5.1']}]",
        )
        + &slice(
            "default",
            "multi-2",
            "multi",
            "[{addresses: ['10.0.5.2']}, {addresses: ['10.0.5.1']}]",
        );
    // (case, backend, request outcome, every diagnostic code on its Ingress)
    let cases: [(&str, String, &str, &[Code]); 17] = [
        ("single", to("single", 80), "10.0.6.1:8080", &[]),
        (
            "wrongname",
            to("wrongname", 80),
            "503 NoEndpoints",
            &[Code::NoEndpoints],
        ),
        ("num", to("web", 80), "10.0.0.1:8080", &[]),
        (
            "name",
            "{service: {name: web, port: {name: http}}}".into(),
            "10.0.0.1:8080",
            &[],
        ),
        (
            "admin",
            "{service: {name: web, port: {name: admin}}}".into(),
            "10.0.0.1:9090",
            &[],
        ),
        (
            "nonport",
            to("web", 8080),
            "503 ServicePortNotFound",
            &[Code::ServicePortNotFound],
        ),
        (
            "nonportname",
            "{service: {name: web, port: {name: grpc}}}".into(),
            "503 ServicePortNotFound",
            &[Code::ServicePortNotFound],
        ),
        (
            "nosvc",
            to("nosuch", 80),
            "503 ServiceNotFound",
            &[Code::ServiceNotFound],
        ),
        ("mixed", to("mixed", 80), "10.0.1.1:8080,10.0.1.2:8080", &[]),
        (
            "serving",
            to("serving", 80),
            "10.0.2.1:8080",
            &[Code::NoReadyEndpoints],
        ),
        (
            "dead",
            to("dead", 80),
            "503 NoEndpoints",
            &[Code::NoEndpoints],
        ),
        (
            "noslices",
            to("noslices", 80),
            "503 NoEndpoints",
            &[Code::NoEndpoints],
        ),
        ("iso", to("iso", 80), "10.0.4.1:8080", &[]),
        (
            "multi",
            to("multi", 80),
            "10.0.5.1:8080,10.0.5.2:8080,10.0.5.3:8080",
            &[],
        ),
        ("ext", to("ext", 5432), "db.example.net:15432", &[]),
        ("ext2", to("ext2", 443), "api.example.org:443", &[]),
        (
            "extname",
            "{service: {name: ext, port: {name: pg}}}".into(),
            "db.example.net:15432",
            &[],
        ),
    ];
    let mut yaml = services;
    for (name, backend, _, _) in &cases {
        let spec = format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule(
                &format!("{name}.example.com"),
                &[path_to("Prefix", "/", backend)]
            )
        );
        yaml += &ingress("default", name, "", &spec);
    }
    let c = run(&yaml, &opts());
    let mut failures = Vec::new();
    for (name, _, want, want_codes) in &cases {
        let got = endpoints(&c, &format!("{name}.example.com"), "/");
        if got != *want {
            failures.push(format!("{name}: got {got}, want {want}"));
        }
        let codes = codes_of(&c, &ing_ref("default", name));
        if codes != *want_codes {
            failures.push(format!("{name}: codes {codes:?}, want {want_codes:?}"));
        }
    }
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), dump(&c));

    // Severities the spec fixes.
    for (name, code, sev) in [
        ("serving", Code::NoReadyEndpoints, Severity::Info),
        ("dead", Code::NoEndpoints, Severity::Warning),
        ("nosvc", Code::ServiceNotFound, Severity::Warning),
    ] {
        let d = find(&c, code, &ing_ref("default", name));
        assert!(d.iter().all(|d| d.severity == sev), "{name}: {d:?}");
    }
    // The named targetPort example: endpoints on the slice port, service_port the Service's.
    match c
        .table
        .route(&RequestView::get(Scheme::Http, "num.example.com", "/"))
    {
        Decision::Forward(f) => {
            assert_eq!(f.backend.service(), "web");
            assert_eq!(f.backend.service_port(), Some(80));
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

#[test]
fn resource_backend_answers_503_without_dropping_the_ingress() {
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}]}}",
        rule(
            "a.example.com",
            &[
                path_to(
                    "Prefix",
                    "/assets",
                    "{resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: assets}}"
                ),
                path("Prefix", "/", "app"),
            ]
        )
    );
    let yaml = ingress("default", "res", "", &spec) + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    let r = ing_ref("default", "res");
    match c.table.route(&RequestView::get(
        Scheme::Http,
        "a.example.com",
        "/assets/x.png",
    )) {
        Decision::Respond(resp) => {
            assert_eq!(resp.status.as_u16(), 503);
            assert_eq!(resp.reason, RespondReason::UnsupportedBackend);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(outcome(&c, "a.example.com", "/index.html"), "app");
    let d = find(&c, Code::ResourceBackendUnsupported, &r);
    assert!(!d.is_empty(), "{}", dump(&c));
    assert!(d.iter().all(|d| d.severity == Severity::Error));
    assert!(
        find(&c, Code::IngressDropped, &r).is_empty(),
        "{}",
        dump(&c)
    );
}
