//! Checklist section C end to end (T19-T21): one path, normalised before
//! matching and forwarded as matched, so an access rule on `/admin` cannot be
//! walked around. T24 and T25 are core tests (docs/SECURITY.md).

use crate::canary::{Canary, send};
use crate::support::{self, TestResult};

/// `/public` to u1 (open), `/admin` to u2 (only 10.0.0.0/8: loopback is denied).
async fn setup() -> (Canary, Canary, tempfile::TempDir, ingress_proxy::Proxy) {
    let (u1, u2) = (Canary::start("u1").await, Canary::start("u2").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = support::docs(&[
        support::CLASS.to_owned(),
        support::ingress("public", &[("app.test", "/public", "u1")], &[]),
        support::ingress_with(
            "admin",
            &[(
                "nginx.ingress.kubernetes.io/whitelist-source-range",
                "10.0.0.0/8",
            )],
            &[("app.test", "/admin", "u2")],
            &[],
        ),
        support::service("u1", &[u1.addr]),
        support::service("u2", &[u2.addr]),
    ]);
    support::write(dir.path(), "app.yaml", &yaml);
    let p = support::proxy(dir.path(), |_| {}).await;
    (u1, u2, dir, p)
}

/// Send `GET target` as written (no client-side normalisation).
async fn get(addr: std::net::SocketAddr, target: &str) -> crate::canary::Answer {
    let req = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
    send(addr, req.as_bytes(), false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t19_dot_segments_are_resolved_before_matching() -> TestResult {
    let (u1, u2, _dir, p) = setup().await;
    let addr = p.http_addr().expect("http");
    for target in [
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2e/admin",
        "/public/./../admin",
        "/./admin",
        "/admin/.",
    ] {
        let a = get(addr, target).await;
        assert_eq!(a.status(), 403, "{target}: {}", a.text());
    }
    assert!(u2.bytes().is_empty(), "{}", u2.text());
    // An allowed request is forwarded with the path it was matched on.
    let a = get(addr, "/public/./x/../y/%61").await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert_eq!(u1.requests()[0].target(), "/public/y/a");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_slashes_and_encoded_slashes() -> TestResult {
    let (u1, u2, _dir, p) = setup().await;
    let addr = p.http_addr().expect("http");
    // Repeated slashes are merged before matching.
    assert_eq!(get(addr, "//admin").await.status(), 403);
    assert_eq!(get(addr, "/public//x").await.status(), 200);
    assert_eq!(u1.requests()[0].target(), "/public/x");
    // An encoded slash is never a separator: `admin%2Fsecret` is one segment,
    // which matches no route here.
    assert_eq!(get(addr, "/admin%2Fsecret").await.status(), 404);
    // A dot segment behind an encoded slash or backslash is refused: a backend
    // that decodes them would resolve it past the route matched.
    for target in [
        "/public%2F..%2Fadmin",
        "/public%2f%2e%2e%2fadmin",
        "/public%5C..%5Cadmin",
        "/public/%5c..%5cadmin",
        "/public\\..\\admin",
    ] {
        get(addr, target).await.assert_rejected(400, target);
    }
    assert!(u2.bytes().is_empty(), "{}", u2.text());
    assert_eq!(u1.requests().len(), 1, "{}", u1.text());
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t21_restricted_encoded_bytes() -> TestResult {
    let (u1, u2, _dir, p) = setup().await;
    let addr = p.http_addr().expect("http");
    for target in ["/public/%00", "/public/a%0a", "/public/a%0D", "/admin%00/x"] {
        get(addr, target).await.assert_rejected(400, target);
    }
    // A `%` that starts no escape is refused (as nginx does): one decoding of
    // `%%361dmin` gives `%61dmin`, two give `admin`.
    for target in [
        "/public/%zz",
        "/public/a%",
        "/public/a%4",
        "/public/%%361dmin",
        "/public/%4%31",
    ] {
        get(addr, target).await.assert_rejected(400, target);
    }
    assert!(u1.bytes().is_empty(), "{}", u1.text());
    // `%23` and `%3f` stay encoded, and do not change the match.
    let a = get(addr, "/public/a%23b%3fc?q=%23").await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert_eq!(u1.requests()[0].target(), "/public/a%23b%3fc?q=%23");
    assert_eq!(get(addr, "/admin%23x").await.status(), 404);
    // `;` is an ordinary byte of its segment, for matching and forwarding alike.
    assert_eq!(get(addr, "/admin;x=1").await.status(), 404);
    assert_eq!(get(addr, "/public;/../admin").await.status(), 403);
    let a = get(addr, "/public;v=1/x").await;
    assert_eq!(a.status(), 404, "{}", a.text());
    let a = get(addr, "/public/x;v=1").await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert_eq!(u1.requests()[1].target(), "/public/x;v=1");
    assert!(u2.bytes().is_empty(), "{}", u2.text());
    p.shutdown().await;
    Ok(())
}
