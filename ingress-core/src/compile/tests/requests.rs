use super::*;

// ------------------------------------------------------------------- 9. requests

#[test]
fn request_host_and_path_matching() {
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}]}}",
        rule(
            "shop.example.com",
            &[path("Prefix", "/api", "api"), path("Prefix", "/bar", "bar")]
        )
    );
    let yaml = ingress("default", "shop", "", &spec)
        + &svc("default", "api", "10.0.0.1")
        + &svc("default", "bar", "10.0.0.2");
    let c = run(&yaml, &opts());
    for (host, p, want) in [
        ("shop.example.com", "/api", "api"),
        ("Shop.Example.com:8080", "/api", "api"),
        ("SHOP.EXAMPLE.COM", "/api/x", "api"),
        ("shop.example.com:443", "/bar", "bar"),
        ("shop.example.com", "/API", "404 NoRoute"),
        ("shop.example.com", "/Bar", "404 NoRoute"),
        ("shop.example.com", "/foo/../bar", "bar"),
        ("shop.example.com", "/foo/../bar/baz", "bar"),
        ("shop.example.com", "/api/../foo", "404 NoRoute"),
        ("other.example.com", "/api", "404 NoRoute"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "{host}{p}");
    }
    for (target, want) in [
        ("/api/cart?id=1", "/api/cart?id=1"),
        ("/api?b=2&a=1&c=%2F&d", "/api?b=2&a=1&c=%2F&d"),
        ("/api/x?q=/../y", "/api/x?q=/../y"),
        // Spaces and control characters a lax parser let through are encoded,
        // as in the path; `%` and everything else are sent as received (found by
        // the `compile_route` fuzz target).
        ("/api?a=\u{1}\u{1}&b=x y", "/api?a=%01%01&b=x%20y"),
        ("/api?\r\nHost: evil", "/api?%0D%0AHost:%20evil"),
        ("/api?c=\u{85}&d=%0A", "/api?c=%C2%85&d=%0A"),
    ] {
        match c
            .table
            .route(&RequestView::get(Scheme::Http, "shop.example.com", target))
        {
            Decision::Forward(f) => assert_eq!(f.upstream_target(), want, "{target}"),
            other => panic!("{target}: expected forward, got {other:?}"),
        }
    }
}

#[test]
fn kubernetes_path_type_examples() {
    // The examples table of the Kubernetes Ingress documentation ("Examples" under
    // "Path types"), standard profile. The answer is the index of the matching path.
    // (the rule's paths as (pathType, path), request path, index of the match)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<usize>);
    let cases: &[Case<'_>] = &[
        (&[("Prefix", "/")], "/anything/at/all", Some(0)),
        (&[("Exact", "/foo")], "/foo", Some(0)),
        (&[("Exact", "/foo")], "/bar", None),
        (&[("Exact", "/foo")], "/foo/", None),
        (&[("Exact", "/foo/")], "/foo", None),
        (&[("Prefix", "/foo")], "/foo", Some(0)),
        (&[("Prefix", "/foo")], "/foo/", Some(0)),
        (&[("Prefix", "/foo/")], "/foo", Some(0)),
        (&[("Prefix", "/foo/")], "/foo/", Some(0)),
        (&[("Prefix", "/aaa/bb")], "/aaa/bbb", None),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", Some(0)),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
        (&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", Some(1)),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/aaa/bbb",
            Some(2),
        ),
        (
            &[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")],
            "/ccc",
            Some(0),
        ),
        (&[("Prefix", "/aaa")], "/ccc", None),
        (&[("Prefix", "/foo"), ("Exact", "/foo")], "/foo", Some(1)),
    ];
    let mut failures = Vec::new();
    for (paths, request, want) in cases {
        let entries: Vec<String> = paths.iter().map(|(ty, p)| path(ty, p, "app")).collect();
        let spec = format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule("a.example.com", &entries)
        );
        let c = run(&ingress("default", "docs", "", &spec), &opts());
        let got = c
            .table
            .route(&RequestView::get(Scheme::Http, "a.example.com", request))
            .route()
            .map(|r| r.field().to_owned());
        let want = want.map(|j| format!("spec.rules[0].http.paths[{j}]"));
        if got != want {
            failures.push(format!(
                "{paths:?} {request}: matched {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
