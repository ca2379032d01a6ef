use super::*;

// ----------------------------------------------------------------------- 7. TLS

#[test]
fn tls_secret_gives_the_host_a_certificate() {
    let (crt, key) = cert(&["a.example.com"]);
    let yaml = tls_ingress("site", "", &["a.example.com"], "a-tls")
        + &tls_secret("a-tls", &crt, &key)
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    assert!(has_cert(&c, "a.example.com"), "{}", dump(&c));
    let b = c.table.tls_for_sni("a.example.com").expect("binding");
    assert_eq!(b.secret().map(|s| s.name.as_str()), Some("a-tls"));
    assert!(
        c.diagnostics
            .iter()
            .all(|d| !d.code.as_str().starts_with("tls-")),
        "{}",
        dump(&c)
    );
    assert!(!has_cert(&c, "b.example.com"));
}

#[test]
fn tls_secret_problems() {
    let (crt, key) = cert(&["other.example.com"]);
    let garbage = "---
apiVersion: v1
kind: Secret
metadata: {name: a-tls, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: Z2FyYmFnZQ==, tls.key: Z2FyYmFnZQ==}
";
    let cases = [
        ("missing", String::new(), Code::TlsSecretNotFound),
        ("garbage", garbage.to_owned(), Code::TlsSecretInvalid),
        (
            "not covering",
            tls_secret("a-tls", &crt, &key),
            Code::TlsHostNotCovered,
        ),
    ];
    for (what, secret, code) in cases {
        let yaml = tls_ingress("site", "", &["a.example.com"], "a-tls")
            + &secret
            + &svc("default", "app", "10.0.0.1");
        let c = run(&yaml, &opts());
        assert_diag(&c, code, &ing_ref("default", "site"), None);
        assert!(!has_cert(&c, "a.example.com"), "{what}: certificate used");
        let problem = c.table.tls_bindings().first().and_then(|b| b.problem());
        let keeps = problem.is_some_and(|p| p.keeps_previous());
        assert_eq!(
            keeps,
            code != Code::TlsSecretNotFound,
            "{what}: {problem:?}"
        );
        // The Ingress still routes.
        assert_eq!(outcome(&c, "a.example.com", "/site"), "app", "{what}");
    }
}

#[test]
fn expired_certificate_warns_but_is_used() {
    let mut params =
        rcgen::CertificateParams::new(vec!["a.example.com".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().expect("key");
    let crt = params.self_signed(&key).expect("certificate");
    let yaml = tls_ingress("site", "", &["a.example.com"], "a-tls")
        + &tls_secret("a-tls", &crt.pem(), &key.serialize_pem())
        + &svc("default", "app", "10.0.0.1");
    let site = ing_ref("default", "site");

    // 2024-01-01: expired.
    let c = run(&yaml, &opts().now(Timestamp::from_unix(1_704_067_200)));
    let d = find(&c, Code::TlsCertificateExpired, &site);
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert_eq!(d[0].severity, Severity::Warning);
    assert!(has_cert(&c, "a.example.com"));

    // 2020-06-01: valid.
    let c = run(&yaml, &opts().now(Timestamp::from_unix(1_590_969_600)));
    assert!(
        find(&c, Code::TlsCertificateExpired, &site).is_empty(),
        "{}",
        dump(&c)
    );
    assert!(has_cert(&c, "a.example.com"));

    // 2020-12-22: ten days left, a warning of its own.
    let c = run(&yaml, &opts().now(Timestamp::from_unix(1_608_595_200)));
    let d = find(&c, Code::TlsCertificateExpiresSoon, &site);
    assert_eq!(d.len(), 1, "{}", dump(&c));
    assert!(d[0].message.contains("in 10 days"), "{}", d[0].message);
    assert!(find(&c, Code::TlsCertificateExpired, &site).is_empty());
    assert!(has_cert(&c, "a.example.com"));

    // No time given: no expiry check.
    let c = run(&yaml, &opts());
    assert!(
        find(&c, Code::TlsCertificateExpired, &site).is_empty()
            && find(&c, Code::TlsCertificateExpiresSoon, &site).is_empty(),
        "{}",
        dump(&c)
    );
}

#[test]
fn wildcard_tls_host_covers_one_label() {
    let (crt, key) = cert(&["*.example.com"]);
    let yaml = tls_ingress("site", "", &["*.example.com"], "wild-tls")
        + &tls_secret("wild-tls", &crt, &key)
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    assert!(c.diagnostics.is_empty(), "{}", dump(&c));
    assert!(has_cert(&c, "x.example.com"));
    assert!(has_cert(&c, "X.Example.COM"));
    assert!(c.table.tls_for_sni("example.com").is_none());
    assert!(c.table.tls_for_sni("a.b.example.com").is_none());
}

#[test]
fn tls_host_conflict_older_ingress_wins() {
    let (crt, key) = cert(&["a.example.com"]);
    let (crt2, key2) = cert(&["a.example.com"]);
    // The older one has the later name.
    let yaml = tls_ingress("aa", T2021, &["a.example.com"], "aa-tls")
        + &tls_ingress("zz", T2020, &["a.example.com"], "zz-tls")
        + &tls_secret("aa-tls", &crt, &key)
        + &tls_secret("zz-tls", &crt2, &key2)
        + &svc("default", "app", "10.0.0.1");
    let c = run(&yaml, &opts());
    let b = c.table.tls_for_sni("a.example.com").expect("binding");
    assert_eq!(b.secret().map(|s| s.name.as_str()), Some("zz-tls"));
    assert_eq!(b.ingress(), &ing_ref("default", "zz"));
    assert!(b.certificate().is_some());
    assert_eq!(
        find(&c, Code::TlsHostConflict, &ing_ref("default", "aa")).len(),
        1,
        "{}",
        dump(&c)
    );
    assert!(find(&c, Code::TlsHostConflict, &ing_ref("default", "zz")).is_empty());
}
