use super::*;

// ----------------------------------------------------------------- 5. conflicts

/// Which Ingress's backend answers `a.example.com/foo`, and who got DuplicateRoute.
fn conflict(yaml: &str, options: &CompileOptions) -> (String, Vec<String>) {
    let c = run(yaml, options);
    let winner = match c
        .table
        .route(&RequestView::get(Scheme::Http, "a.example.com", "/foo"))
        .backend()
    {
        Some(b) => format!("{}/{}", b.namespace(), b.service()),
        None => "none".into(),
    };
    let losers = c
        .diagnostics
        .iter()
        .filter(|d| d.code == Code::DuplicateRoute)
        .map(|d| {
            let o = d.object.as_ref().map(|o| o.to_string()).unwrap_or_default();
            format!("{o} {}", d.field.as_deref().unwrap_or(""))
        })
        .collect();
    (winner, losers)
}

#[test]
fn duplicate_routes_resolve_by_age_then_name() {
    const F: &str = "spec.rules[0].http.paths[0].path";
    let std = opts();
    let ngx = nginx();
    let one = |ns: &str, name: &str, meta: &str| {
        simple(
            ns,
            name,
            meta,
            "a.example.com",
            "Prefix",
            "/foo",
            &format!("svc-{name}"),
        )
    };
    let cases: Vec<(&str, String, &CompileOptions, &str, &str)> = vec![
        (
            "older wins regardless of names (standard)",
            one("default", "zz", T2020) + &one("default", "aa", T2021),
            &std,
            "default/svc-zz",
            "Ingress default/aa",
        ),
        (
            "older wins regardless of names (ingress-nginx)",
            one("default", "aa", T2020) + &one("default", "zz", T2021),
            &ngx,
            "default/svc-aa",
            "Ingress default/zz",
        ),
        (
            "no timestamps: name ascending (standard)",
            one("default", "b", "") + &one("default", "a", ""),
            &std,
            "default/svc-a",
            "Ingress default/b",
        ),
        (
            "no timestamps: namespace before name (standard)",
            one("beta", "a", "") + &one("alpha", "z", ""),
            &std,
            "alpha/svc-z",
            "Ingress beta/a",
        ),
        (
            "no timestamps: name descending (ingress-nginx)",
            one("default", "a", "") + &one("default", "b", ""),
            &ngx,
            "default/svc-b",
            "Ingress default/a",
        ),
        (
            "equal timestamps: name ascending (standard)",
            one("default", "b", T2020) + &one("default", "a", T2020),
            &std,
            "default/svc-a",
            "Ingress default/b",
        ),
        (
            "equal timestamps: name descending (ingress-nginx)",
            one("default", "a", T2020) + &one("default", "b", T2020),
            &ngx,
            "default/svc-b",
            "Ingress default/a",
        ),
        (
            "with a timestamp is older than without (standard)",
            one("default", "a", "") + &one("default", "z", T2024),
            &std,
            "default/svc-z",
            "Ingress default/a",
        ),
        (
            "with a timestamp is older than without (ingress-nginx)",
            one("default", "z", "") + &one("default", "a", T2024),
            &ngx,
            "default/svc-a",
            "Ingress default/z",
        ),
    ];
    let mut failures = Vec::new();
    for (what, yaml, options, want_winner, want_loser) in cases {
        let (winner, losers) = conflict(&yaml, options);
        let want_losers = vec![format!("{want_loser} {F}")];
        if winner != want_winner || losers != want_losers {
            failures.push(format!(
                "{what}: winner {winner} losers {losers:?}; want {want_winner} {want_losers:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_routes_for_every_path_type_and_host_form() {
    let mut failures = Vec::new();
    for options in [opts(), nginx()] {
        for ty in ["Exact", "Prefix", "ImplementationSpecific"] {
            for (host, request_host) in [
                ("a.example.com", "a.example.com"),
                ("*.example.com", "x.example.com"),
                ("", "any.example.org"),
            ] {
                let yaml = simple("default", "aa", T2021, host, ty, "/foo", "newer")
                    + &simple("default", "zz", T2020, host, ty, "/foo", "older");
                let c = run(&yaml, &options);
                let what = format!("{} {ty} {host:?}", options.profile);
                let got = c
                    .table
                    .route(&RequestView::get(Scheme::Http, request_host, "/foo"))
                    .backend()
                    .map(|b| b.service().to_owned());
                if got.as_deref() != Some("older") {
                    failures.push(format!("{what}: served by {got:?}, want older"));
                }
                let losers: Vec<String> = c
                    .diagnostics
                    .iter()
                    .filter(|d| d.code == Code::DuplicateRoute)
                    .map(|d| format!("{:?} {:?}", d.object, d.field))
                    .collect();
                let want = vec![format!(
                    "{:?} {:?}",
                    Some(ing_ref("default", "aa")),
                    Some("spec.rules[0].http.paths[0].path")
                )];
                if losers != want {
                    failures.push(format!("{what}: DuplicateRoute {losers:?}, want {want:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn duplicate_route_names_the_losing_path_and_keeps_its_other_paths() {
    let older = simple(
        "default",
        "old",
        T2020,
        "a.example.com",
        "Prefix",
        "/foo",
        "one",
    );
    let newer = ingress(
        "default",
        "new",
        T2021,
        &format!(
            "{{ingressClassName: gw, rules: [{}]}}",
            rule(
                "a.example.com",
                &[
                    path("Prefix", "/other", "two"),
                    path("Prefix", "/foo", "two")
                ]
            )
        ),
    );
    let yaml =
        newer + &older + &svc("default", "one", "10.0.0.1") + &svc("default", "two", "10.0.0.2");
    let c = run(&yaml, &opts());
    let d = find(&c, Code::DuplicateRoute, &ing_ref("default", "new"));
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert_eq!(
        d[0].field.as_deref(),
        Some("spec.rules[0].http.paths[1].path")
    );
    assert!(find(&c, Code::DuplicateRoute, &ing_ref("default", "old")).is_empty());
    assert_eq!(outcome(&c, "a.example.com", "/foo/x"), "one");
    assert_eq!(outcome(&c, "a.example.com", "/other"), "two");
}

#[test]
fn exact_and_prefix_of_the_same_path_do_not_conflict() {
    for (options, (exact_meta, prefix_meta)) in [opts(), nginx()]
        .into_iter()
        .flat_map(|o| [(T2020, T2021), (T2021, T2020), ("", "")].map(|m| (o.clone(), m)))
    {
        let yaml = simple(
            "default",
            "e",
            exact_meta,
            "a.example.com",
            "Exact",
            "/foo",
            "exact",
        ) + &simple(
            "default",
            "p",
            prefix_meta,
            "a.example.com",
            "Prefix",
            "/foo",
            "prefix",
        ) + &svc("default", "exact", "10.0.0.1")
            + &svc("default", "prefix", "10.0.0.2");
        let c = run(&yaml, &options);
        let ctx = format!("{} exact{exact_meta} prefix{prefix_meta}", options.profile);
        assert!(
            c.diagnostics.iter().all(|d| d.code != Code::DuplicateRoute),
            "{ctx}\n{}",
            dump(&c)
        );
        assert_eq!(outcome(&c, "a.example.com", "/foo"), "exact", "{ctx}");
        assert_eq!(outcome(&c, "a.example.com", "/foo/bar"), "prefix", "{ctx}");
        assert_eq!(
            outcome(&c, "a.example.com", "/foobar"),
            "404 NoRoute",
            "{ctx}"
        );
    }
}

#[test]
fn prefix_beats_implementation_specific_of_the_same_path_in_standard_profile() {
    for (prefix_meta, impl_meta) in [(T2020, T2021), (T2021, T2020), ("", ""), (T2021, "")] {
        let yaml = simple(
            "default",
            "impl",
            impl_meta,
            "a.example.com",
            "ImplementationSpecific",
            "/foo",
            "impl",
        ) + &simple(
            "default",
            "pre",
            prefix_meta,
            "a.example.com",
            "Prefix",
            "/foo",
            "prefix",
        ) + &svc("default", "impl", "10.0.0.1")
            + &svc("default", "prefix", "10.0.0.2");
        let c = run(&yaml, &opts());
        let ctx = format!("prefix{prefix_meta} impl{impl_meta}\n{}", dump(&c));
        assert_eq!(outcome(&c, "a.example.com", "/foo"), "prefix", "{ctx}");
        assert_eq!(outcome(&c, "a.example.com", "/foo/x"), "prefix", "{ctx}");
        let d = find(&c, Code::DuplicateRoute, &ing_ref("default", "impl"));
        assert_eq!(d.len(), 1, "{ctx}");
        assert_eq!(
            d[0].field.as_deref(),
            Some("spec.rules[0].http.paths[0].path"),
            "{ctx}"
        );
        assert!(
            find(&c, Code::DuplicateRoute, &ing_ref("default", "pre")).is_empty(),
            "{ctx}"
        );
    }
}

// ----------------------------------------------------------- 6. default backends

#[test]
fn standard_default_backend_is_the_oldest_and_answers_every_host() {
    let rules = rule("a.example.com", &[path("Prefix", "/app", "app")]);
    // The older one has the later name.
    let older = ingress(
        "default",
        "zz",
        T2020,
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}, rules: [{rules}]}}",
            to("old-default", 80)
        ),
    );
    let newer = ingress(
        "default",
        "aa",
        T2021,
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}}}",
            to("new-default", 80)
        ),
    );
    let yaml = newer
        + &older
        + &svc("default", "app", "10.0.0.1")
        + &svc("default", "old-default", "10.0.0.2")
        + &svc("default", "new-default", "10.0.0.3");
    let c = run(&yaml, &opts());
    for (host, p, want) in [
        ("a.example.com", "/app/x", "app"),
        ("a.example.com", "/other", "old-default"),
        ("unknown.example.org", "/", "old-default"),
        ("unknown.example.org", "/app", "old-default"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "{host}{p}\n{}", dump(&c));
    }
    let d = find(&c, Code::DefaultBackendConflict, &ing_ref("default", "aa"));
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert!(find(&c, Code::DefaultBackendConflict, &ing_ref("default", "zz")).is_empty());
}

#[test]
fn nginx_default_backend_with_rules_is_per_host_and_without_rules_is_catch_all() {
    let with_rules = ingress(
        "default",
        "site",
        "",
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}, rules: [{}]}}",
            to("site-default", 80),
            rule("a.example.com", &[path("Prefix", "/app", "app")])
        ),
    );
    let catch_all = ingress(
        "default",
        "catch",
        "",
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}}}",
            to("catch-all", 80)
        ),
    );
    let services = svc("default", "app", "10.0.0.1")
        + &svc("default", "site-default", "10.0.0.2")
        + &svc("default", "catch-all", "10.0.0.3");

    let c = run(&(with_rules.clone() + &services), &nginx());
    for (host, p, want) in [
        ("a.example.com", "/app", "app"),
        ("a.example.com", "/other", "site-default"),
        ("b.example.com", "/", "404 NoRoute"),
        ("b.example.com", "/app", "404 NoRoute"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "rules only: {host}{p}");
    }

    let c = run(&(with_rules + &catch_all + &services), &nginx());
    for (host, p, want) in [
        ("a.example.com", "/app", "app"),
        ("a.example.com", "/other", "site-default"),
        ("b.example.com", "/", "catch-all"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "with catch-all: {host}{p}");
    }
}
