//! Table-driven tests of the annotation engine: prefixes, value hygiene, unknown,
//! retired and refused keys, and the registry's own consistency.

use super::test_util::{N, run, run_with};
use super::*;

fn code_names(p: &Parsed) -> Vec<&'static str> {
    p.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

const H: &str = "higress.io/";
const M: &str = "mse.ingress.kubernetes.io/";

fn k(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

#[test]
fn no_annotations_of_ours_cost_nothing() {
    let p = run(&[
        ("kubernetes.io/ingress.class", "x"),
        ("example.org/team", "a"),
    ]);
    assert!(p.diagnostics.is_empty());
    assert_eq!(p.policy, IngressPolicy::default());
}

#[test]
fn nginx_prefix_wins_and_a_different_value_elsewhere_is_reported() {
    let (a, b) = (k(N, "upstream-vhost"), k(H, "upstream-vhost"));
    let p = run(&[(&a, "one.example"), (&b, "two.example")]);
    assert_eq!(
        p.policy.routing.upstream_vhost.as_deref(),
        Some("one.example")
    );
    assert_eq!(code_names(&p), ["annotation-shadowed"]);
    let d = &p.diagnostics[0];
    assert_eq!(
        d.field.as_deref(),
        Some("metadata.annotations[\"higress.io/upstream-vhost\"]")
    );
    // The same value under two prefixes is fine.
    let p = run(&[(&a, "one.example"), (&b, "one.example")]);
    assert!(p.diagnostics.is_empty());
}

#[test]
fn extension_keys_are_read_under_extension_prefixes_only() {
    let p = run(&[(&k(H, "rewrite-path"), "/v2")]);
    assert_eq!(p.policy.routing.rewrite_path.as_deref(), Some("/v2"));
    let p = run(&[(&k(M, "rewrite-path"), "/v2")]);
    assert_eq!(p.policy.routing.rewrite_path.as_deref(), Some("/v2"));
    let p = run(&[(&k(N, "rewrite-path"), "/v2")]);
    assert_eq!(p.policy.routing.rewrite_path, None);
    assert_eq!(code_names(&p), ["annotation-unknown"]);
    assert!(
        p.diagnostics[0]
            .message
            .contains("not read under this prefix")
    );
    // MSE-only keys: only under mse.
    let p = run(&[(&k(H, "canary-by-query"), "v")]);
    assert_eq!(code_names(&p), ["annotation-unknown"]);
}

#[test]
fn custom_prefix_is_read_first() {
    let options = AnnotationOptions {
        custom_prefix: Some("example.com/".into()),
        ..AnnotationOptions::default()
    };
    let p = run_with(
        &[
            ("example.com/use-regex", "true"),
            (&k(N, "use-regex"), "false"),
        ],
        &options,
    );
    assert!(p.policy.routing.use_regex);
    assert_eq!(code_names(&p), ["annotation-shadowed"]);
}

#[test]
fn invalid_values_fail_closed_and_name_the_key() {
    for (name, value) in [
        ("use-regex", "yes"),
        ("rewrite-target", "no-slash"),
        ("rewrite-target", "/$request_uri"),
        ("permanent-redirect", "ftp://x/"),
        ("permanent-redirect-code", "399"),
        ("whitelist-source-range", "10.0.0.0/8, bogus"),
        ("cors-allow-origin", "example.com"),
        ("canary-by-header-pattern", "(?!x)"),
        ("upstream-vhost", "a b"),
        ("app-root", "http://elsewhere/"),
    ] {
        let key = k(N, name);
        let mut pairs = vec![(key.as_str(), value)];
        if name.starts_with("canary") {
            pairs.push(("nginx.ingress.kubernetes.io/canary", "true"));
        }
        if name.starts_with("cors") {
            pairs.push(("nginx.ingress.kubernetes.io/enable-cors", "true"));
        }
        if name == "permanent-redirect-code" {
            pairs.push((
                "nginx.ingress.kubernetes.io/permanent-redirect",
                "https://e.com/",
            ));
        }
        let p = run(&pairs);
        assert!(
            code_names(&p).contains(&"annotation-invalid-value"),
            "{name}={value:?}: {:?}",
            p.diagnostics
        );
        let fc = p.policy.fail_closed.as_ref().expect("fails closed");
        assert!(fc.keys.contains(&key), "{name}: {fc:?}");
        let d = p
            .diagnostics
            .iter()
            .find(|d| d.code == Code::AnnotationInvalidValue)
            .expect("diagnostic");
        assert!(d.message.contains(&key), "{}", d.message);
        assert_eq!(d.field, Some(annotation_field(&key)));
    }
}

#[test]
fn control_characters_and_huge_values_are_rejected() {
    let key = k(N, "upstream-vhost");
    for value in [
        "a.example\nproxy_pass x",
        "a.example\r",
        "a\u{0}b",
        "a\u{2028}b",
    ] {
        let p = run(&[(&key, value)]);
        assert_eq!(code_names(&p), ["annotation-invalid-value"], "{value:?}");
        assert!(p.policy.routing.upstream_vhost.is_none());
    }
    let long = "a".repeat(MAX_VALUE_LEN + 1);
    let p = run(&[(&key, &long)]);
    assert_eq!(code_names(&p), ["annotation-invalid-value"]);
    assert!(p.diagnostics[0].message.contains("longer than"));
}

#[test]
fn snippets_are_refused_and_fail_closed() {
    for name in [
        "configuration-snippet",
        "server-snippet",
        "auth-snippet",
        "stream-snippet",
        "modsecurity-snippet",
    ] {
        let key = k(N, name);
        let p = run(&[(&key, "more_set_headers \"X: y\";\nreturn 200;")]);
        assert_eq!(code_names(&p), ["annotation-refused"], "{name}");
        assert!(p.policy.fail_closed.is_some());
    }
}

#[test]
fn unknown_keys_get_a_suggestion_and_retired_keys_a_replacement() {
    let p = run(&[(&k(N, "rewrite-targt"), "/")]);
    assert_eq!(code_names(&p), ["annotation-unknown"]);
    assert!(
        p.diagnostics[0]
            .message
            .contains("did you mean `rewrite-target`")
    );
    assert!(p.policy.fail_closed.is_none());
    let p = run(&[(&k(N, "no-such-thing-at-all"), "1")]);
    assert!(p.diagnostics[0].message.contains("has no effect"));
    let p = run(&[(&k(N, "secure-backends"), "true")]);
    assert_eq!(code_names(&p), ["annotation-retired"]);
    assert!(p.diagnostics[0].message.contains("backend-protocol"));
}

#[test]
fn canary_keys_need_canary_true() {
    let p = run(&[(&k(N, "canary-weight"), "10")]);
    assert_eq!(code_names(&p), ["canary-not-enabled"]);
    assert!(p.policy.fail_closed.is_some());
    assert!(p.policy.canary.is_none());
    let p = run(&[(&k(N, "canary"), "true"), (&k(N, "canary-weight"), "10")]);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let c = p.policy.canary.expect("canary");
    assert_eq!((c.weight, c.weight_total), (10, 100));
    // affinity-canary-behavior belongs on the primary too: not a stray canary key.
    let p = run(&[(&k(N, "affinity-canary-behavior"), "legacy")]);
    assert!(p.policy.canary_affinity_legacy);
    assert!(p.policy.fail_closed.is_none());
}

#[test]
fn header_value_beats_pattern_and_needs_a_header() {
    let p = run(&[
        (&k(N, "canary"), "true"),
        (&k(N, "canary-by-header"), "X-Canary"),
        (&k(N, "canary-by-header-value"), "v2"),
        (&k(N, "canary-by-header-pattern"), "^v"),
    ]);
    assert_eq!(code_names(&p), ["annotation-ignored"]);
    let rule = p.policy.canary.and_then(|c| c.header).expect("header rule");
    assert_eq!(rule.matcher, canary::HeaderMatch::Value("v2".into()));
}

#[test]
fn temporal_beats_permanent_and_codes_apply() {
    let p = run(&[
        (&k(N, "permanent-redirect"), "https://p.example/"),
        (&k(N, "permanent-redirect-code"), "308"),
        (&k(N, "temporal-redirect"), "https://t.example/x"),
    ]);
    let to = p.policy.redirect.to.expect("redirect");
    assert_eq!(to.url.to_string(), "https://t.example/x");
    assert_eq!(to.status.as_u16(), 302);
    assert!(to.temporal);
    let p = run(&[
        (&k(N, "permanent-redirect"), "https://p.example/"),
        (&k(N, "permanent-redirect-code"), "308"),
    ]);
    assert_eq!(p.policy.redirect.to.map(|t| t.status.as_u16()), Some(308));
}

#[test]
fn x_forwarded_prefix_needs_a_rewrite() {
    let p = run(&[(&k(N, "x-forwarded-prefix"), "/api")]);
    assert_eq!(code_names(&p), ["annotation-ignored"]);
    assert!(p.policy.routing.x_forwarded_prefix.is_none());
    let p = run(&[
        (&k(N, "x-forwarded-prefix"), "/api"),
        (&k(N, "rewrite-target"), "/"),
    ]);
    assert_eq!(p.policy.routing.x_forwarded_prefix.as_deref(), Some("/api"));
}

#[test]
fn higress_match_conditions_are_refused_not_ignored() {
    let p = run(&[(&k(H, "exact-match-header-x-user"), "a")]);
    assert_eq!(code_names(&p), ["annotation-refused"]);
    assert!(p.policy.fail_closed.is_some());
}

#[test]
fn host_scoped_values_are_recorded_for_conflict_checks() {
    let p = run(&[(&k(N, "app-root"), "/app")]);
    assert_eq!(p.policy.scoped.len(), 1);
    assert_eq!(p.policy.scoped[0].scope, Scope::Host);
    assert_eq!(p.policy.scoped[0].value, "/app");
}

#[test]
fn registry_is_consistent() {
    let mut names: Vec<&str> = all_keys().map(|k| k.name).collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total, "duplicate key names");
    for spec in all_keys() {
        assert!(!spec.doc.is_empty(), "{} has no doc", spec.name);
        assert!(!spec.grammar.is_empty(), "{} has no grammar", spec.name);
        assert!(
            spec.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*'),
            "{}",
            spec.name
        );
        assert!(
            RETIRED.iter().all(|r| r.name != spec.name),
            "{} is retired",
            spec.name
        );
    }
    for f in REGISTRY {
        assert!(
            f.keys().iter().all(|k| k.family == f.family()),
            "{:?}",
            f.family()
        );
    }
}

#[test]
fn glob_names() {
    assert!(name_matches("exact-match-header-x-a", "*-match-header-*"));
    assert!(name_matches("regex-match-header-x", "*-match-header-*"));
    assert!(!name_matches("-match-header-x", "*-match-header-*"));
    assert!(!name_matches("exact-match-header-", "*-match-header-*"));
    assert!(!name_matches(
        "exact-match-pseudo-header-x",
        "*-match-header-*"
    ));
    assert!(name_matches("use-regex", "use-regex"));
}

/// Found by the `annotation_value` fuzz target: a family reporting by registry name
/// must still point at the key as written (here under `higress.io/`).
#[test]
fn reports_by_name_point_at_the_written_key() {
    let key = k(H, "auth-method");
    let p = run(&[(&key, "GET")]);
    assert!(!p.diagnostics.is_empty());
    for d in &p.diagnostics {
        assert_eq!(d.field, Some(annotation_field(&key)), "{d:?}");
    }
}

/// ingress-nginx's `annotations-risk-level`: every registered key, at every level,
/// is refused (and fails its routes closed) exactly when its risk is above the level.
#[test]
fn the_risk_level_refuses_exactly_the_keys_above_it() {
    let levels = [Risk::Low, Risk::Medium, Risk::High, Risk::Critical];
    let mut checked = 0;
    for spec in super::all_keys() {
        if spec.name.contains('*') || matches!(spec.support, Support::Refused(_)) {
            continue;
        }
        let Some((_, prefix)) = Prefix::FIXED.iter().find(|(p, _)| p.accepts(spec.prefixes)) else {
            continue;
        };
        let key = format!("{prefix}{}", spec.name);
        for level in levels {
            let options = AnnotationOptions {
                max_risk: level,
                ..AnnotationOptions::default()
            };
            let p = run_with(&[(&key, "1")], &options);
            let refused = p.diagnostics.iter().any(|d| {
                d.message
                    .contains("above the allowed annotations risk level")
            });
            assert_eq!(
                refused,
                spec.risk > level,
                "{key} at {level:?}: {:?}",
                p.diagnostics
            );
            if refused {
                assert!(p.policy.fail_closed.is_some(), "{key} at {level:?}");
            }
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} keys checked");
    // The default is ingress-nginx's: High.
    assert_eq!(AnnotationOptions::default().max_risk, Risk::High);
    assert_eq!("Medium".parse::<Risk>(), Ok(Risk::Medium));
    assert!("severe".parse::<Risk>().is_err());
}
