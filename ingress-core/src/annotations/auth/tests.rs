//! Table-driven tests of the auth family through the annotation engine.

use super::*;
use crate::annotations::test_util::{codes, run};

#[test]
fn defaults() {
    let a = run(&[]).policy.auth;
    assert_eq!(a, AuthPolicy::default());
    assert!(a.global_auth && !a.satisfy_any && a.basic.is_none() && a.external.is_none());
}

#[test]
fn basic_auth() {
    let p = run(&[
        ("auth-type", "basic"),
        ("auth-secret", "other/users"),
        ("auth-secret-type", "auth-map"),
        ("auth-realm", "Authentication Required - foo"),
    ]);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let b = p.policy.auth.basic.expect("basic");
    assert_eq!(
        b.secret,
        ObjectName {
            namespace: Some("other".into()),
            name: "users".into()
        }
    );
    assert_eq!(b.secret_type, SecretType::AuthMap);
    assert_eq!(b.realm.as_deref(), Some("Authentication Required - foo"));
    let p = run(&[("auth-type", "basic"), ("auth-secret", "users")]);
    let b = p.policy.auth.basic.expect("basic");
    assert_eq!((b.secret_type, b.realm), (SecretType::AuthFile, None));
}

#[test]
fn basic_auth_combinations() {
    // No secret: the routes fail closed, as ingress-nginx denies the location.
    let p = run(&[("auth-type", "basic")]);
    assert_eq!(codes(&p), vec![Code::AnnotationInvalidValue]);
    assert!(p.policy.fail_closed.is_some() && p.policy.auth.basic.is_none());
    // Digest: the same keys, its own policy.
    let p = run(&[
        ("auth-type", "digest"),
        ("auth-secret", "users"),
        ("auth-secret-type", "auth-map"),
        ("auth-realm", "Staff"),
    ]);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    assert!(p.policy.fail_closed.is_none() && p.policy.auth.basic.is_none());
    let d = p.policy.auth.digest.expect("digest");
    assert_eq!(d.secret.name, "users");
    assert_eq!(
        (d.secret_type, d.realm.as_deref()),
        (SecretType::AuthMap, Some("Staff"))
    );
    let p = run(&[("auth-type", "digest")]);
    assert_eq!(codes(&p), vec![Code::AnnotationInvalidValue]);
    assert!(p.policy.fail_closed.is_some() && p.policy.auth.digest.is_none());
    // A secret without auth-type has no effect.
    let p = run(&[("auth-secret", "users"), ("auth-realm", "x")]);
    assert_eq!(
        codes(&p),
        vec![Code::AnnotationIgnored, Code::AnnotationIgnored]
    );
    assert!(p.policy.fail_closed.is_none() && p.policy.auth.basic.is_none());
}

#[test]
fn external_auth() {
    let p = run(&[
        ("auth-url", "https://$host/oauth2/auth"),
        ("auth-method", "POST"),
        (
            "auth-signin",
            "https://$host/oauth2/start?rd=$escaped_request_uri",
        ),
        ("auth-signin-redirect-param", "return_to"),
        (
            "auth-response-headers",
            "X-Auth-Request-User, X-Auth-Request-Email",
        ),
        ("auth-request-redirect", "$request_uri"),
        ("auth-always-set-cookie", "true"),
    ]);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let e = p.policy.auth.external.expect("external");
    assert_eq!(e.url.to_string(), "https://$host/oauth2/auth");
    assert_eq!(e.method.as_method(), http::Method::POST);
    assert_eq!(
        e.signin.map(|t| t.to_string()).as_deref(),
        Some("https://$host/oauth2/start?rd=$escaped_request_uri")
    );
    assert_eq!(e.signin_redirect_param, "return_to");
    assert_eq!(e.response_headers.len(), 2);
    assert!(e.request_redirect.is_some() && e.always_set_cookie);

    let p = run(&[(
        "auth-url",
        "http://auth.auth.svc.cluster.local:8080/verify?x=1",
    )]);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let e = p.policy.auth.external.expect("external");
    assert_eq!(
        (e.method, e.signin_redirect_param.as_str()),
        (AuthMethod::Get, "rd")
    );
    assert_eq!(e.keepalive, AuthKeepalive::default());
    assert!(e.response_headers.is_empty() && e.cache_duration.is_empty());
}

#[test]
fn external_auth_knobs_not_enforced() {
    let p = run(&[
        ("auth-url", "https://auth.example.com/check"),
        ("auth-proxy-set-headers", "ns/auth-headers"),
        ("auth-cache-key", "$remote_user$http_authorization"),
        ("auth-cache-duration", "200 202 10m, 401 5m, any 1h 30m"),
        ("auth-keepalive", "10"),
        ("auth-keepalive-share-vars", "true"),
        ("auth-keepalive-requests", "100"),
        ("auth-keepalive-timeout", "30"),
    ]);
    // auth-cache-key and -duration are carried out; the others are not.
    assert_eq!(codes(&p), vec![Code::AnnotationNotEnforced; 5]);
    assert!(p.policy.fail_closed.is_none());
    let e = p.policy.auth.external.expect("external");
    assert_eq!(
        e.proxy_set_headers.map(|c| c.name),
        Some("auth-headers".into())
    );
    assert_eq!(
        e.cache_key.as_deref(),
        Some("$remote_user$http_authorization")
    );
    assert_eq!(e.cache_duration.len(), 3);
    assert_eq!(e.cache_duration[0].statuses.len(), 2);
    assert_eq!(e.cache_duration[0].ttl, Duration::from_secs(600));
    assert!(e.cache_duration[2].any);
    assert_eq!(e.cache_duration[2].ttl, Duration::from_secs(5400));
    assert_eq!(
        e.keepalive,
        AuthKeepalive {
            connections: 10,
            requests: 100,
            timeout: Duration::from_secs(30),
            share_vars: true
        }
    );
    // Without auth-url the knobs have no effect.
    let p = run(&[
        ("auth-method", "POST"),
        ("auth-signin", "https://a.example/"),
    ]);
    assert_eq!(
        codes(&p),
        vec![Code::AnnotationIgnored, Code::AnnotationIgnored]
    );
    assert!(p.policy.auth.external.is_none() && p.policy.fail_closed.is_none());
    let p = run(&[
        ("auth-url", "https://a.example/"),
        ("auth-signin-redirect-param", "r"),
    ]);
    assert_eq!(codes(&p), vec![Code::AnnotationIgnored]);
}

#[test]
fn satisfy_and_global_auth() {
    let p = run(&[
        ("whitelist-source-range", "10.0.0.0/8"),
        ("auth-type", "basic"),
        ("auth-secret", "users"),
        ("satisfy", "any"),
        ("enable-global-auth", "false"),
    ]);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    assert!(p.policy.auth.satisfy_any && !p.policy.auth.global_auth);
    let p = run(&[("satisfy", "any")]);
    assert_eq!(codes(&p), vec![Code::AnnotationIgnored]);
    let p = run(&[("satisfy", "all")]);
    assert!(p.diagnostics.is_empty() && !p.policy.auth.satisfy_any);
}

#[test]
fn invalid_values_fail_closed() {
    for (key, value) in [
        ("auth-type", "Basic"),
        ("auth-type", "ntlm"),
        ("auth-secret", "Bad_Name"),
        ("auth-secret-type", "file"),
        ("auth-realm", "say \"hi\""),
        ("auth-url", "ftp://auth.example.com/x"),
        ("auth-url", "//auth.example.com/x"),
        ("auth-url", "https://$http_x_auth_host/check"),
        ("auth-url", "https://auth.example.com/$document_root"),
        ("auth-url", "https://user@auth.example.com/"),
        ("auth-url", "https://auth.example.com/a b"),
        ("auth-url", "https://auth.example.com/a;b"),
        ("auth-method", "get"),
        ("auth-method", "PROPFIND"),
        ("auth-method", "GET;"),
        ("auth-signin", "/oauth2/start"),
        ("auth-signin-redirect-param", "a&b"),
        ("auth-response-headers", "X-User, Content-Length"),
        ("auth-response-headers", "bad header"),
        ("auth-request-redirect", "a b"),
        ("auth-cache-key", "$a;b"),
        ("auth-cache-duration", "200 5x"),
        ("auth-cache-duration", "999 5m"),
        ("auth-cache-duration", "200 202"),
        ("auth-cache-duration", "5m 200"),
        ("auth-keepalive", "-1"),
        ("auth-keepalive-timeout", "1m"),
        ("auth-always-set-cookie", "yes"),
        ("enable-global-auth", "no"),
        ("satisfy", "either"),
    ] {
        let p = run(&[("auth-url", "https://auth.example.com/"), (key, value)]);
        assert!(
            codes(&p).contains(&Code::AnnotationInvalidValue),
            "{key}: {value:?} {:?}",
            p.diagnostics
        );
        assert!(p.policy.fail_closed.is_some(), "{key}: {value:?}");
    }
}

#[test]
fn satisfy_any_defers_the_ip_lists_to_authentication() {
    let p = run(&[
        ("auth-type", "basic"),
        ("auth-secret", "users"),
        ("whitelist-source-range", "10.0.0.0/8"),
        ("denylist-source-range", "10.9.0.0/16"),
        ("satisfy", "any"),
    ]);
    assert!(p.policy.auth.defers_access());
    let access = &p.policy.access;
    let ip = |s: &str| Some(s.parse().expect("ip"));
    assert!(access.explicitly_allowed(ip("10.1.2.3"), None));
    assert!(!access.explicitly_allowed(ip("10.9.2.3"), None), "denied");
    assert!(
        !access.explicitly_allowed(ip("192.0.2.1"), None),
        "not listed"
    );
    assert!(!access.explicitly_allowed(None, None));
    let p = run(&[
        ("auth-type", "basic"),
        ("auth-secret", "users"),
        ("satisfy", "all"),
    ]);
    assert!(!p.policy.auth.defers_access());
    let p = run(&[("denylist-source-range", "10.9.0.0/16")]);
    assert!(
        !p.policy.access.explicitly_allowed(ip("10.1.2.3"), None),
        "no allow list"
    );
}
