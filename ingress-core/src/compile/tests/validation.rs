use super::*;

// ------------------------------------------------------------- 2. validation

struct Invalid {
    what: &'static str,
    /// The bad Ingress's spec (flow mapping).
    spec: String,
    /// The expected code; `None`: any error.
    code: Option<Code>,
    /// The expected field, or its parent (a sub-field also matches).
    field: Option<&'static str>,
}

/// Each case is an Ingress `default/bad` next to a valid `default/good`: the bad one
/// must get the error and IngressDropped and serve nothing; the good one serves.
fn check_dropped(cases: Vec<Invalid>, options: &CompileOptions) {
    let mut failures = Vec::new();
    let bad = ing_ref("default", "bad");
    for case in cases {
        let yaml = ingress("default", "bad", "", &case.spec)
            + &simple(
                "default",
                "good",
                "",
                "good.example.com",
                "Prefix",
                "/",
                "app",
            )
            + &svc("default", "app", "10.0.0.1");
        let loaded = load_str("t.yaml", &yaml);
        if !loaded.diagnostics.is_empty() {
            let d: Vec<String> = loaded
                .diagnostics
                .iter()
                .map(|l| l.diagnostic.to_string())
                .collect();
            failures.push(format!(
                "{}: the manifest loader refused it instead of compile: {}",
                case.what,
                d.join("; ")
            ));
            continue;
        }
        let c = compile(&loaded.snapshot, options);
        let errors: Vec<&Diagnostic> = c
            .diagnostics
            .iter()
            .filter(|d| {
                d.object.as_ref() == Some(&bad)
                    && d.severity == Severity::Error
                    && d.code != Code::IngressDropped
            })
            .collect();
        let matching = errors.iter().any(|d| {
            case.code.is_none_or(|code| d.code == code)
                && case.field.is_none_or(|f| {
                    d.field.as_deref().is_some_and(|got| {
                        got == f
                            || got.starts_with(&format!("{f}."))
                            || got.starts_with(&format!("{f}["))
                    })
                })
        });
        if !matching {
            let got: Vec<String> = errors
                .iter()
                .map(|d| format!("{:?} at {:?}", d.code, d.field))
                .collect();
            failures.push(format!(
                "{}: want {:?} at {:?}, got errors [{}]",
                case.what,
                case.code,
                case.field,
                got.join(", ")
            ));
        }
        if find(&c, Code::IngressDropped, &bad).is_empty() {
            failures.push(format!("{}: no IngressDropped on default/bad", case.what));
        }
        let rest = outcome(&c, "a.example.com", "/ok");
        if rest != "404 NoRoute" {
            failures.push(format!(
                "{}: the valid part of the invalid Ingress still serves ({rest})",
                case.what
            ));
        }
        let good = outcome(&c, "good.example.com", "/");
        if good != "app" {
            failures.push(format!("{}: the other Ingress got {good}", case.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A 64-character first label (DNS labels are at most 63).
const LONG_LABEL: &str =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com";
/// 254 characters in labels of 63 (DNS-1123 subdomains are at most 253).
const LONG_NAME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com";

#[test]
fn invalid_rule_hosts_drop_the_ingress() {
    assert_eq!(
        (LONG_LABEL.split('.').next().map(str::len), LONG_NAME.len()),
        (Some(64), 254)
    );
    let hosts = [
        ("upper case", "Foo.example.com"),
        ("IPv4 address", "10.0.0.1"),
        ("IPv6 address", "2001:db8::1"),
        ("* inside the first label", "*foo.example.com"),
        ("* in a later label", "foo.*.example.com"),
        ("* as the last label", "example.*"),
        ("* alone", "*"),
        ("empty label in the middle", "a..example.com"),
        ("empty first label", ".example.com"),
        ("trailing dot", "example.com."),
        ("underscore", "a_b.example.com"),
        ("label starting with -", "-a.example.com"),
        ("label ending with -", "a-.example.com"),
        ("two wildcard labels", "*.*.example.com"),
        ("wildcard without suffix", "*."),
        ("label of 64 characters", LONG_LABEL),
        ("name of 254 characters", LONG_NAME),
    ];
    let cases = hosts
        .into_iter()
        .map(|(what, host)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}, {}]}}",
                ok_rule(),
                rule(host, &[path("Prefix", "/", "app")])
            ),
            code: Some(Code::InvalidHost),
            field: Some("spec.rules[1].host"),
        })
        .collect();
    check_dropped(cases, &opts());
}

#[test]
fn invalid_tls_hosts_drop_the_ingress() {
    let hosts = [
        ("upper case", "A.example.com"),
        ("* in a later label", "a.*.example.com"),
        ("empty label", "a..example.com"),
    ];
    let cases = hosts
        .into_iter()
        .map(|(what, host)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, tls: [{{hosts: [a.example.com, '{host}'], secretName: s}}], rules: [{}]}}",
                ok_rule()
            ),
            code: Some(Code::InvalidHost),
            field: Some("spec.tls[0].hosts[1]"),
        })
        .collect();
    check_dropped(cases, &opts());
}

#[test]
fn invalid_paths_drop_the_ingress() {
    let paths = [
        ("Prefix not starting with /", "Prefix", "foo"),
        ("Exact not starting with /", "Exact", "foo/bar"),
        ("Prefix empty", "Prefix", ""),
        ("Exact with //", "Exact", "/a//b"),
        ("Prefix with //", "Prefix", "/a//"),
        ("Prefix with /./", "Prefix", "/a/./b"),
        ("Exact with /../", "Exact", "/a/../b"),
        ("Prefix with %2f", "Prefix", "/a%2fb"),
        ("Exact with %2F", "Exact", "/a%2Fb"),
        ("Prefix ending /..", "Prefix", "/a/.."),
        ("Exact ending /.", "Exact", "/a/."),
        ("Prefix /..", "Prefix", "/.."),
        ("Exact /.", "Exact", "/."),
        ("Prefix starting /../", "Prefix", "/../a"),
        (
            "ImplementationSpecific not starting with /",
            "ImplementationSpecific",
            "foo",
        ),
    ];
    let mut cases: Vec<Invalid> = paths
        .into_iter()
        .map(|(what, ty, p)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule(
                    "a.example.com",
                    &[path("Prefix", "/ok", "app"), path(ty, p, "app")]
                )
            ),
            code: Some(Code::InvalidPath),
            field: Some("spec.rules[0].http.paths[1].path"),
        })
        .collect();
    for (what, entry) in [
        (
            "pathType missing",
            format!("{{path: /x, backend: {}}}", to("app", 80)),
        ),
        ("pathType unknown", path("Regex", "/x", "app")),
    ] {
        cases.push(Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule("a.example.com", &[path("Prefix", "/ok", "app"), entry])
            ),
            code: Some(Code::InvalidPath),
            field: Some("spec.rules[0].http.paths[1].pathType"),
        });
    }
    check_dropped(cases, &opts());
}

#[test]
fn invalid_backends_drop_the_ingress() {
    let backends = [
        (
            "service and resource",
            "{service: {name: app, port: {number: 80}}, resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}}",
        ),
        ("neither service nor resource", "{}"),
        (
            "port with name and number",
            "{service: {name: app, port: {name: http, number: 80}}}",
        ),
        ("port number 0", "{service: {name: app, port: {number: 0}}}"),
        (
            "port number 65536",
            "{service: {name: app, port: {number: 65536}}}",
        ),
        (
            "port number 70000",
            "{service: {name: app, port: {number: 70000}}}",
        ),
        (
            "port with neither name nor number",
            "{service: {name: app, port: {}}}",
        ),
        (
            "service name not a DNS-1035 label",
            "{service: {name: My_Svc, port: {number: 80}}}",
        ),
        (
            "service name starting with a digit",
            "{service: {name: 1svc, port: {number: 80}}}",
        ),
        (
            "service name empty",
            "{service: {name: '', port: {number: 80}}}",
        ),
        (
            "port name not an IANA service name",
            "{service: {name: app, port: {name: HTTP_PORT}}}",
        ),
        ("resource without name", "{resource: {kind: Bucket}}"),
    ];
    let mut cases: Vec<Invalid> = backends
        .into_iter()
        .map(|(what, b)| Invalid {
            what,
            spec: format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule(
                    "a.example.com",
                    &[path("Prefix", "/ok", "app"), path_to("Prefix", "/x", b)]
                )
            ),
            code: Some(Code::InvalidBackend),
            field: Some("spec.rules[0].http.paths[1].backend"),
        })
        .collect();
    cases.push(Invalid {
        what: "defaultBackend with neither service nor resource",
        spec: format!(
            "{{ingressClassName: gw, defaultBackend: {{}}, rules: [{}]}}",
            ok_rule()
        ),
        code: Some(Code::InvalidBackend),
        field: Some("spec.defaultBackend"),
    });
    check_dropped(cases, &opts());
}

#[test]
fn empty_ingress_and_empty_path_list_drop_the_ingress() {
    let cases = vec![
        Invalid {
            what: "neither rules nor defaultBackend",
            spec: "{ingressClassName: gw}".into(),
            code: Some(Code::IngressEmpty),
            field: None,
        },
        Invalid {
            what: "rule with http.paths: []",
            spec: format!(
                "{{ingressClassName: gw, rules: [{}, {{host: b.example.com, http: {{paths: []}}}}]}}",
                ok_rule()
            ),
            code: None,
            field: Some("spec.rules[1]"),
        },
    ];
    check_dropped(cases, &opts());
}

#[test]
fn valid_edge_cases_are_served() {
    // An ImplementationSpecific path with no `path` key at all.
    let no_path = format!(
        "{{pathType: ImplementationSpecific, backend: {}}}",
        to("app", 80)
    );
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}, {}, {}, {}]}}",
        rule(
            "impl.example.com",
            &[path("ImplementationSpecific", "", "app")]
        ),
        rule("impl2.example.com", &[no_path]),
        rule("*.wild.example.com", &[path("Prefix", "/", "app")]),
        rule("dots.example.com", &[path("Prefix", "/file.txt", "app")]),
    );
    let yaml = ingress("default", "edge", "", &spec) + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    assert!(
        c.diagnostics.iter().all(|d| d.severity != Severity::Error),
        "{}",
        dump(&c)
    );
    for (host, p, want) in [
        ("impl.example.com", "/", "app"),
        ("impl.example.com", "/anything/below", "app"),
        ("impl2.example.com", "/x", "app"),
        ("x.wild.example.com", "/", "app"),
        ("dots.example.com", "/file.txt", "app"),
    ] {
        assert_eq!(outcome(&c, host, p), want, "{host}{p}");
    }
}

#[test]
fn standard_profile_warns_on_literal_regex_paths() {
    let spec = format!(
        "{{ingressClassName: gw, rules: [{}]}}",
        rule(
            "a.example.com",
            &[
                path("Prefix", "/plain_path-1", "app"),
                path("Prefix", "/api/(.*)", "app"),
                path("Exact", "/v1/items$", "app"),
            ]
        )
    );
    let yaml = ingress("default", "re", "", &spec) + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    let r = ing_ref("default", "re");
    for j in [1, 2] {
        let field = format!("spec.rules[0].http.paths[{j}].path");
        assert_diag(&c, Code::LiteralRegexPath, &r, Some(&field));
    }
    let warnings = find(&c, Code::LiteralRegexPath, &r);
    assert_eq!(warnings.len(), 2, "{}", dump(&c));
    assert!(warnings.iter().all(|d| d.severity == Severity::Warning));
    assert!(
        find(&c, Code::IngressDropped, &r).is_empty(),
        "{}",
        dump(&c)
    );
    // Matched literally.
    assert_eq!(outcome(&c, "a.example.com", "/api/(.*)"), "app");
    assert_eq!(outcome(&c, "a.example.com", "/api/users"), "404 NoRoute");
    assert_eq!(outcome(&c, "a.example.com", "/v1/items$"), "app");
    assert_eq!(outcome(&c, "a.example.com", "/v1/items"), "404 NoRoute");
}

#[test]
fn nginx_profile_strict_path_validation() {
    // strict-validate-path-type: Exact and Prefix paths may hold only letters,
    // digits, '/', '-' and '_'; ImplementationSpecific is not checked.
    let cases = [
        ("Prefix", "/api/(.*)", false),
        ("Exact", "/file.txt", false),
        ("Prefix", "/a~b", false),
        ("Prefix", "/a:b", false),
        ("Exact", "/", true),
        ("Prefix", "/Api_v-1/X9", true),
        ("ImplementationSpecific", "/api/(.*)", true),
        ("ImplementationSpecific", "/file.txt", true),
    ];
    let mut failures = Vec::new();
    let r = ing_ref("default", "p");
    for (ty, p, ok) in cases {
        let yaml = simple("default", "p", "", "a.example.com", ty, p, "app")
            + &svc("default", "app", "10.0.0.1");
        let c = run(&yaml, &nginx());
        let invalid = find(&c, Code::InvalidPath, &r)
            .iter()
            .any(|d| d.field.as_deref() == Some("spec.rules[0].http.paths[0].path"));
        let dropped = !find(&c, Code::IngressDropped, &r).is_empty();
        if ok == (invalid || dropped) {
            failures.push(format!(
                "{ty} {p:?}: want {}, got InvalidPath={invalid} IngressDropped={dropped}",
                if ok {
                    "valid"
                } else {
                    "InvalidPath + IngressDropped"
                }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ----------------------------------------------------------- 3. fault isolation

#[test]
fn one_invalid_ingress_does_not_affect_the_others() {
    let (crt, key) = cert(&["a.example.com"]);
    let (evil_crt, evil_key) = cert(&["a.example.com"]);
    let valid = tls_ingress("a", T2021, &["a.example.com"], "a-tls")
        + &tls_secret("a-tls", &crt, &key)
        + &tls_secret("evil-tls", &evil_crt, &evil_key)
        + &simple(
            "default",
            "a2",
            T2021,
            "a.example.com",
            "Prefix",
            "/shop",
            "shop",
        )
        + &ingress(
            "default",
            "c",
            "",
            &format!(
                "{{ingressClassName: gw, rules: [{}]}}",
                rule("c.example.com", &[path("Exact", "/", "web")])
            ),
        )
        + &svc("default", "shop", "10.0.0.1")
        + &svc("default", "web", "10.0.0.2")
        + &svc("default", "app", "10.0.0.3")
        + &svc("default", "evil", "10.0.0.66");
    // Older than the others, overlapping their routes and TLS host, with a default
    // backend: invalid because of its third rule's host.
    let invalid = ingress(
        "default",
        "b",
        T2020,
        &format!(
            "{{ingressClassName: gw, defaultBackend: {}, tls: [{{hosts: [a.example.com], secretName: evil-tls}}], rules: [{}, {}, {}]}}",
            to("evil", 80),
            rule("a.example.com", &[path("Prefix", "/shop", "evil")]),
            rule("c.example.com", &[path("Exact", "/", "evil")]),
            rule("Bad_Host", &[path("Prefix", "/", "evil")])
        ),
    );
    let without = run(&valid, &opts());
    let with = run(&(invalid + &valid), &opts());
    assert_diag(&with, Code::IngressDropped, &ing_ref("default", "b"), None);
    assert_eq!(fingerprint(&with).1, fingerprint(&without).1, "routes");
    assert_eq!(fingerprint(&with).2, fingerprint(&without).2, "backends");
    assert_eq!(
        fingerprint(&with).3,
        fingerprint(&without).3,
        "TLS bindings"
    );
    let b = ing_ref("default", "b");
    let others: Vec<&Diagnostic> = with
        .diagnostics
        .iter()
        .filter(|d| d.object.as_ref() != Some(&b))
        .collect();
    let baseline: Vec<&Diagnostic> = without.diagnostics.iter().collect();
    assert_eq!(others, baseline);
    let tls = with.table.tls_for_sni("a.example.com").expect("binding");
    assert_eq!(tls.secret().map(|s| s.name.as_str()), Some("a-tls"));
    for (host, p, want) in [
        ("a.example.com", "/shop/cart", "shop"),
        ("a.example.com", "/a", "app"),
        ("c.example.com", "/", "web"),
        ("c.example.com", "/x", "404 NoRoute"),
        ("z.example.com", "/", "404 NoRoute"),
    ] {
        assert_eq!(outcome(&with, host, p), want, "{host}{p}");
        assert_eq!(outcome(&without, host, p), want, "{host}{p}");
    }
}
