//! Annotations through compile and route: canaries attach to primaries, regex and
//! rewrite per profile, host-scoped conflicts, fail closed, default-backend.

use super::*;
use crate::routing::{Decision, RedirectReason, RouteInputs};

fn ann(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("'nginx.ingress.kubernetes.io/{k}': '{v}'"))
        .collect();
    format!(", annotations: {{{}}}", body.join(", "))
}

fn with_roll(c: &Compiled, req: &RequestView<'_>, roll: u32) -> String {
    match c.table.route_with(req, &RouteInputs::with_roll(roll)) {
        Decision::Forward(f) => f.backend.service().to_owned(),
        other => format!("{:?}", other.status()),
    }
}

#[test]
fn canary_attaches_to_the_same_host_and_path_only() {
    let yaml = [
        simple("default", "main", T2020, "a.com", "Prefix", "/", "main"),
        simple(
            "default",
            "canary",
            &format!(
                "{T2021}{}",
                ann(&[("canary", "true"), ("canary-by-header", "X-C")])
            ),
            "a.com",
            "Prefix",
            "/",
            "beta",
        ),
        simple(
            "default",
            "lost",
            &format!(
                "{T2021}{}",
                ann(&[("canary", "true"), ("canary-weight", "100")])
            ),
            "a.com",
            "Prefix",
            "/other",
            "beta",
        ),
        svc("default", "main", "10.0.0.1"),
        svc("default", "beta", "10.0.0.2"),
    ]
    .concat();
    let c = run(&yaml, &opts());
    let mut h = http::HeaderMap::new();
    h.insert("x-c", "always".parse().expect("value"));
    let mut req = RequestView::get(Scheme::Http, "a.com", "/x");
    assert_eq!(with_roll(&c, &req, 0), "main");
    req.headers = &h;
    assert_eq!(with_roll(&c, &req, 0), "beta");
    // A canary without a primary adds no route and says so.
    assert_eq!(outcome(&c, "a.com", "/other"), "main");
    assert_diag(
        &c,
        Code::CanaryWithoutPrimary,
        &ing_ref("default", "lost"),
        Some("spec.rules[0].http.paths[0].path"),
    );
    // The canary's Ingress routes nothing by itself.
    assert_eq!(
        c.table
            .routes()
            .iter()
            .filter(|r| r.ingress().name == "canary")
            .count(),
        0
    );
}

#[test]
fn weights_one_canary_in_nginx_several_summed_in_standard() {
    let canary = |name: &str, t: &str, w: &str, svc_name: &str| {
        simple(
            "default",
            name,
            &format!("{t}{}", ann(&[("canary", "true"), ("canary-weight", w)])),
            "a.com",
            "Prefix",
            "/",
            svc_name,
        )
    };
    let yaml = [
        simple("default", "main", T2020, "a.com", "Prefix", "/", "main"),
        canary("c1", T2021, "30", "one"),
        canary("c2", T2024, "20", "two"),
        svc("default", "main", "10.0.0.1"),
        svc("default", "one", "10.0.0.2"),
        svc("default", "two", "10.0.0.3"),
    ]
    .concat();
    let req = RequestView::get(Scheme::Http, "a.com", "/");
    // roll % 100 + 1 = r; canary iff r <= cumulative weight.
    let s = run(&yaml, &opts());
    assert_eq!(with_roll(&s, &req, 0), "one");
    assert_eq!(with_roll(&s, &req, 29), "one");
    assert_eq!(with_roll(&s, &req, 30), "two");
    assert_eq!(with_roll(&s, &req, 49), "two");
    assert_eq!(with_roll(&s, &req, 50), "main");
    let n = run(&yaml, &nginx());
    assert_eq!(with_roll(&n, &req, 29), "one");
    assert_eq!(with_roll(&n, &req, 30), "main");
    assert_diag(
        &n,
        Code::CanaryConflict,
        &ing_ref("default", "c2"),
        Some("spec.rules[0].http.paths[0].path"),
    );
    // Without a roll, weighted canaries are not chosen.
    assert_eq!(outcome(&s, "a.com", "/"), "main");
}

#[test]
fn regex_contagion_in_nginx_only() {
    let yaml = [
        simple(
            "default",
            "api",
            &format!("{T2020}{}", ann(&[("use-regex", "true")])),
            "a.com",
            "ImplementationSpecific",
            "/api/[0-9]+",
            "api",
        ),
        simple("default", "docs", T2021, "a.com", "Exact", "/docs", "docs"),
        svc("default", "api", "10.0.0.1"),
        svc("default", "docs", "10.0.0.2"),
    ]
    .concat();
    let s = run(&yaml, &opts());
    assert_eq!(outcome(&s, "a.com", "/api/12"), "api");
    assert_eq!(outcome(&s, "a.com", "/API/12"), "404 NoRoute");
    assert_eq!(outcome(&s, "a.com", "/docs"), "docs");
    assert_eq!(outcome(&s, "a.com", "/docs/x"), "404 NoRoute");
    let n = run(&yaml, &nginx());
    assert_eq!(outcome(&n, "a.com", "/API/12"), "api");
    // The other team's Exact path became a case-insensitive regex prefix.
    assert_eq!(outcome(&n, "a.com", "/DOCS/x"), "docs");
    assert_diag(
        &n,
        Code::RegexHostContagion,
        &ing_ref("default", "api"),
        Some("metadata.annotations[\"nginx.ingress.kubernetes.io/use-regex\"]"),
    );
    assert!(find(&s, Code::RegexHostContagion, &ing_ref("default", "api")).is_empty());
}

#[test]
fn rewrite_whole_path_in_nginx_prefix_in_standard() {
    let yaml = [
        simple(
            "default",
            "api",
            &format!("{T2020}{}", ann(&[("rewrite-target", "/")])),
            "a.com",
            "Prefix",
            "/api",
            "api",
        ),
        svc("default", "api", "10.0.0.1"),
    ]
    .concat();
    let target =
        |c: &Compiled, p: &str| match c.table.route(&RequestView::get(Scheme::Http, "a.com", p)) {
            Decision::Forward(f) => f.upstream_target().into_owned(),
            other => format!("{other:?}"),
        };
    let s = run(&yaml, &opts());
    assert_eq!(target(&s, "/api/users?x=1"), "/users?x=1");
    assert_eq!(target(&s, "/api"), "/");
    let n = run(&yaml, &nginx());
    assert_eq!(target(&n, "/api/users?x=1"), "/?x=1");
}

#[test]
fn invalid_annotation_fails_closed_without_falling_through() {
    let yaml = [
        simple("default", "root", T2020, "a.com", "Prefix", "/", "open"),
        simple(
            "default",
            "admin",
            &format!(
                "{T2021}{}",
                ann(&[("whitelist-source-range", "10.0.0.0/8,oops")])
            ),
            "a.com",
            "Prefix",
            "/admin",
            "admin",
        ),
        svc("default", "open", "10.0.0.1"),
        svc("default", "admin", "10.0.0.2"),
    ]
    .concat();
    let c = run(&yaml, &opts());
    // The admin path answers 503: it never falls through to the open root route.
    assert_eq!(outcome(&c, "a.com", "/admin/users"), "503 InvalidPolicy");
    assert_eq!(outcome(&c, "a.com", "/"), "open");
    assert_diag(
        &c,
        Code::AnnotationInvalidValue,
        &ing_ref("default", "admin"),
        Some("metadata.annotations[\"nginx.ingress.kubernetes.io/whitelist-source-range\"]"),
    );
}

#[test]
fn host_scoped_app_root_conflict_oldest_wins() {
    let yaml = [
        simple(
            "default",
            "old",
            &format!("{T2020}{}", ann(&[("app-root", "/old")])),
            "a.com",
            "Prefix",
            "/",
            "web",
        ),
        simple(
            "default",
            "new",
            &format!("{T2021}{}", ann(&[("app-root", "/new")])),
            "a.com",
            "Prefix",
            "/new",
            "web",
        ),
        svc("default", "web", "10.0.0.1"),
    ]
    .concat();
    let c = run(&yaml, &opts());
    match c.table.route(&RequestView::get(Scheme::Http, "a.com", "/")) {
        Decision::Redirect(r) => {
            assert_eq!(r.status.as_u16(), 302);
            assert_eq!(r.location, "http://a.com/old");
            assert_eq!(r.reason, RedirectReason::AppRoot);
        }
        other => panic!("{other:?}"),
    }
    assert_diag(
        &c,
        Code::AnnotationConflict,
        &ing_ref("default", "new"),
        Some("metadata.annotations[\"nginx.ingress.kubernetes.io/app-root\"]"),
    );
}

#[test]
fn ssl_redirect_defaults_per_profile() {
    let spec = format!(
        "{{ingressClassName: gw, tls: [{{hosts: [a.com]}}], rules: [{}]}}",
        rule("a.com", &[path("Prefix", "/", "web")])
    );
    let yaml = [
        ingress("default", "web", T2020, &spec),
        svc("default", "web", "10.0.0.1"),
    ]
    .concat();
    assert_eq!(outcome(&run(&yaml, &opts()), "a.com", "/x/"), "web");
    match run(&yaml, &nginx())
        .table
        .route(&RequestView::get(Scheme::Http, "a.com:8080", "/x/"))
    {
        Decision::Redirect(r) => {
            assert_eq!(r.status.as_u16(), 308);
            assert_eq!(r.location, "https://a.com/x");
        }
        other => panic!("{other:?}"),
    }
    // ACME challenges are never redirected.
    assert_eq!(
        outcome(
            &run(&yaml, &nginx()),
            "a.com",
            "/.well-known/acme-challenge/t"
        ),
        "web"
    );
}

#[test]
fn default_backend_annotation_serves_when_the_service_cannot() {
    let yaml = [
        simple(
            "default",
            "web",
            &format!("{T2020}{}", ann(&[("default-backend", "sorry")])),
            "a.com",
            "Prefix",
            "/",
            "web",
        ),
        svc_eps("default", "web", "[]"),
        svc("default", "sorry", "10.0.0.9"),
    ]
    .concat();
    let c = run(&yaml, &opts());
    match c
        .table
        .route(&RequestView::get(Scheme::Http, "a.com", "/x"))
    {
        Decision::Forward(f) => {
            assert_eq!(f.backend.service(), "sorry");
            assert!(f.via_default_backend);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn auth_secrets_are_resolved_or_fail_closed() {
    let secret = "---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
type: Opaque
stringData: {auth: 'admin:{SHA}0DPiKuNIrrVmD8IUCuw1hQxNqZc='}
";
    let ing = |name: &str, host: &str, secret_name: &str| {
        simple(
            "default",
            name,
            &format!(
                "{T2020}{}",
                ann(&[("auth-type", "basic"), ("auth-secret", secret_name)])
            ),
            host,
            "Prefix",
            "/",
            "web",
        )
    };
    let yaml = [
        ing("good", "a.com", "users"),
        ing("missing", "b.com", "nobody"),
        ing("foreign", "c.com", "other/users"),
        secret.to_owned(),
        svc("default", "web", "10.0.0.1"),
    ]
    .concat();
    let c = run(&yaml, &opts());
    let route = |host: &str| {
        c.table
            .routes()
            .iter()
            .find(|r| r.host().to_string() == host)
            .expect("route")
    };
    let basic = route("a.com")
        .policy()
        .auth
        .basic
        .as_ref()
        .expect("basic auth");
    assert_eq!(basic.users.len(), 1);
    assert_eq!(basic.users[0].user, "admin");
    assert_eq!(outcome(&c, "a.com", "/"), "web");
    assert_eq!(
        route("a.com").policy().requirements(),
        [crate::annotations::Requirement::BasicAuth]
    );
    for (host, name) in [("b.com", "missing"), ("c.com", "foreign")] {
        assert_eq!(outcome(&c, host, "/"), "503 InvalidPolicy", "{host}");
        assert_diag(
            &c,
            Code::AnnotationReferenceInvalid,
            &ing_ref("default", name),
            Some("metadata.annotations[\"nginx.ingress.kubernetes.io/auth-secret\"]"),
        );
    }
}

#[test]
fn digest_secrets_keep_the_users_of_the_realm_or_fail_closed() {
    let ha1 = "939e7578ed9e3c518a452acee763bce9";
    let secrets = format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: file, namespace: default}}
stringData: {{auth: \"Mufasa:testrealm@host.com:{ha1}\\nscar:other:{ha1}\"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: map, namespace: default}}
stringData: {{Mufasa: 'testrealm@host.com:{ha1}'}}
---
apiVersion: v1
kind: Secret
metadata: {{name: htpasswd, namespace: default}}
stringData: {{auth: 'admin:{{SHA}}0DPiKuNIrrVmD8IUCuw1hQxNqZc='}}
"
    );
    let ing = |name: &str, host: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![("auth-type", "digest")];
        pairs.extend_from_slice(extra);
        simple(
            "default",
            name,
            &format!("{T2020}{}", ann(&pairs)),
            host,
            "Prefix",
            "/",
            "web",
        )
    };
    let realm = ("auth-realm", "testrealm@host.com");
    let yaml = [
        ing("file", "a.com", &[("auth-secret", "file"), realm]),
        ing(
            "map",
            "b.com",
            &[
                ("auth-secret", "map"),
                ("auth-secret-type", "auth-map"),
                realm,
            ],
        ),
        ing("norealm", "c.com", &[("auth-secret", "file")]),
        ing("htpasswd", "d.com", &[("auth-secret", "htpasswd"), realm]),
        secrets,
        svc("default", "web", "10.0.0.1"),
    ]
    .concat();
    let c = run(&yaml, &opts());
    let digest = |host: &str| {
        c.table
            .routes()
            .iter()
            .find(|r| r.host().to_string() == host)
            .and_then(|r| r.policy().auth.digest.clone())
    };
    for host in ["a.com", "b.com"] {
        let d = digest(host).expect("digest auth");
        let users: Vec<&str> = d.users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(users, ["Mufasa"], "{host}: only the realm's users");
        assert_eq!(outcome(&c, host, "/"), "web");
    }
    for (host, name) in [("c.com", "norealm"), ("d.com", "htpasswd")] {
        assert_eq!(outcome(&c, host, "/"), "503 InvalidPolicy", "{host}");
        assert_diag(
            &c,
            Code::AnnotationReferenceInvalid,
            &ing_ref("default", name),
            Some("metadata.annotations[\"nginx.ingress.kubernetes.io/auth-secret\"]"),
        );
    }
}

/// Checklist T25: regex paths run in linear time (the `regex` crate does not
/// backtrack: a backtracking engine would not finish these matches against 64 KiB
/// of `a`), and a pattern over the size limit is a typed error that leaves that
/// path out, the others serving.
#[test]
fn catastrophic_regex_paths_are_linear_and_oversized_ones_refused() {
    let regex = |name: &str, t: &str, host: &str, p: &str| {
        simple(
            "default",
            name,
            &format!("{t}{}", ann(&[("use-regex", "true")])),
            host,
            "ImplementationSpecific",
            p,
            "api",
        )
    };
    let yaml = [
        regex("nested", T2020, "a.com", "/(a+)+$"),
        regex("alternation", T2020, "b.com", "/(a|aa)*b"),
        regex("huge", T2021, "c.com", "/(\\w{1000}){1000}"),
        simple("default", "plain", T2021, "c.com", "Prefix", "/ok", "api"),
        svc("default", "api", "10.0.0.1"),
    ]
    .concat();
    for options in [opts(), nginx()] {
        let c = run(&yaml, &options);
        let long = format!("/{}", "a".repeat(64 * 1024));
        assert_eq!(outcome(&c, "a.com", &long), "api");
        assert_eq!(outcome(&c, "a.com", &format!("{long}!")), "404 NoRoute");
        assert_eq!(outcome(&c, "b.com", &format!("{long}b")), "api");
        assert_eq!(outcome(&c, "b.com", &format!("{long}!")), "404 NoRoute");
        let huge = ing_ref("default", "huge");
        assert!(
            !find(&c, Code::InvalidRegexPath, &huge).is_empty(),
            "{:?}",
            codes_of(&c, &huge)
        );
        assert_eq!(outcome(&c, "c.com", "/ok"), "api", "the others still serve");
        assert_eq!(
            outcome(&c, "c.com", &format!("/{}", "a".repeat(1000))),
            "404 NoRoute"
        );
    }
}
