//! Checklist section B: header handling, limits and trust (T13-T17), raw bytes
//! against the recording canary.

use ingress_proxy::headers::TrustedProxies;

use crate::canary::{Canary, Message, gateway, send};
use crate::support::TestResult;

const ALLOW: &str = "nginx.ingress.kubernetes.io/whitelist-source-range";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_request_line_and_header_size_limits() -> TestResult {
    let u = Canary::start("u1").await;
    let (_dir, p) = gateway(&[("app.test", "/", &u)], &[], |_| {}).await;
    let addr = p.http_addr().expect("http");
    let target = |len: usize| format!("/{}", "a".repeat(len - 1));
    let field = |len: usize| format!("X-Big: {}\r\n", "v".repeat(len - "X-Big: ".len()));
    let kib_headers: String = (0..61)
        .map(|i| format!("X-K{i:02}: {}\r\n", "k".repeat(1024 - 7)))
        .collect();
    let many_headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (case, req, status) in [
        (
            "request target of 8 KiB + 1",
            format!("GET {} HTTP/1.1\r\nHost: app.test\r\n\r\n", target(8193)),
            414,
        ),
        (
            "one header of 8 KiB + 1",
            format!("GET / HTTP/1.1\r\nHost: app.test\r\n{}\r\n", field(8193)),
            431,
        ),
        (
            "61 KiB of 1 KiB headers",
            format!("GET / HTTP/1.1\r\nHost: app.test\r\n{kib_headers}\r\n"),
            431,
        ),
        (
            "101 headers",
            format!("GET / HTTP/1.1\r\nHost: app.test\r\n{many_headers}\r\n"),
            431,
        ),
        (
            "a head over hyper's 64 KiB buffer",
            format!(
                "GET / HTTP/1.1\r\nHost: app.test\r\nX: {}\r\n\r\n",
                "x".repeat(70 * 1024)
            ),
            431,
        ),
    ] {
        send(addr, req.as_bytes(), false)
            .await
            .assert_rejected(status, case);
        assert!(u.bytes().is_empty(), "{case}: forwarded");
    }
    // At the limits exactly: served.
    for (case, req) in [
        (
            "request target of 8 KiB",
            format!(
                "GET {} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
                target(8192)
            ),
        ),
        (
            "one header of 8 KiB",
            format!(
                "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n{}\r\n",
                field(8192)
            ),
        ),
    ] {
        let a = send(addr, req.as_bytes(), false).await;
        assert_eq!(a.status(), 200, "{case}: {}", a.text());
    }
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_request_body_size_limits() -> TestResult {
    let (u, small) = (Canary::start("u1").await, Canary::start("small").await);
    let (_dir, p) = gateway(&[("app.test", "/", &u)], &[], |_| {}).await;
    let (_dir2, p2) = gateway(
        &[("small.test", "/", &small)],
        &[("nginx.ingress.kubernetes.io/proxy-body-size", "10k")],
        |_| {},
    )
    .await;
    let mib = 1024 * 1024;
    // A declared length over the limit: 413 before any upstream contact.
    let body = vec![b'x'; mib + 1];
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n",
        mib + 1
    )
    .into_bytes();
    req.extend(&body);
    let a = send(p.http_addr().expect("http"), &req, false).await;
    assert_eq!(a.status(), 413, "{}", a.text());
    assert!(u.bytes().is_empty(), "declared length: forwarded");
    // A chunked body growing past the limit: 413, and the upstream request is
    // cut (the streamed prefix may have gone out, a complete request never).
    let mut req =
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(64 * 1024) {
        req.extend(format!("{:x}\r\n", part.len()).bytes());
        req.extend(part);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let a = send(p.http_addr().expect("http"), &req, false).await;
    assert_eq!(a.status(), 413, "{}", a.text());
    assert!(
        u.requests().is_empty(),
        "chunked: a complete request upstream"
    );
    // `proxy-body-size: 10k` and 11k.
    let small_addr = p2.http_addr().expect("http");
    let mut req = b"POST / HTTP/1.1\r\nHost: small.test\r\nContent-Length: 11264\r\n\r\n".to_vec();
    req.extend(vec![b'y'; 11 * 1024]);
    let a = send(small_addr, &req, false).await;
    assert_eq!(a.status(), 413, "{}", a.text());
    // Under it: served.
    let mut req =
        b"POST / HTTP/1.1\r\nHost: small.test\r\nContent-Length: 9216\r\nConnection: close\r\n\r\n"
            .to_vec();
    req.extend(vec![b'y'; 9 * 1024]);
    let a = send(small_addr, &req, false).await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert_eq!(small.requests().len(), 1);
    // Expect: 100-continue with an oversized length: 413, no 100 Continue.
    let req = "POST / HTTP/1.1\r\nHost: small.test\r\nContent-Length: 11264\r\nExpect: 100-continue\r\n\r\n";
    let a = send(small_addr, req.as_bytes(), false).await;
    assert_eq!(a.status(), 413, "{}", a.text());
    assert!(!a.text().contains("100 Continue"), "{}", a.text());
    assert_eq!(small.requests().len(), 1, "nothing more forwarded");
    p.shutdown().await;
    p2.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_underscored_headers_are_dropped() -> TestResult {
    let u = Canary::start("u1").await;
    let (_dir, p) = gateway(&[("app.test", "/", &u)], &[], |_| {}).await;
    let req = "GET / HTTP/1.1\r\nHost: app.test\r\nX_Forwarded_For: 1.2.3.4\r\nX-Auth_User: admin\r\nX-Auth-User: bob\r\nConnection: close\r\n\r\n";
    let a = send(p.http_addr().expect("http"), req.as_bytes(), false).await;
    assert_eq!(a.status(), 200, "{}", a.text());
    let seen = &u.requests()[0];
    assert!(
        seen.headers.iter().all(|(n, _)| !n.contains('_')),
        "{seen:?}"
    );
    assert_eq!(seen.all("x-auth-user"), ["bob"]);
    assert!(!u.text().contains("1.2.3.4") && !u.text().contains("admin"));
    p.shutdown().await;
    Ok(())
}

/// One request with spoofed client headers; what the canary received.
async fn spoofed(addr: std::net::SocketAddr, u: &Canary, xff: &str) -> (u16, Option<Message>) {
    let before = u.requests().len();
    let req = format!(
        "GET /t HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: {xff}\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=6.6.6.6\r\nConnection: close\r\n\r\n"
    );
    let a = send(addr, req.as_bytes(), false).await;
    (a.status(), u.requests().get(before).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t16_forwarded_headers_trust_boundary() -> TestResult {
    let u = Canary::start("u1").await;
    // Only 6.6.6.6 may use the route.
    let allow = [(ALLOW, "6.6.6.6/32")];
    // No trusted hops: the peer (127.0.0.1) is the client, whatever it says.
    let (_d0, p0) = gateway(&[("app.test", "/", &u)], &allow, |_| {}).await;
    let (status, seen) = spoofed(p0.http_addr().expect("http"), &u, "6.6.6.6").await;
    assert_eq!(status, 403, "the allow list sees 127.0.0.1");
    assert!(seen.is_none(), "denied: nothing forwarded");
    let (_d1, p1) = gateway(&[("app.test", "/", &u)], &[], |_| {}).await;
    let (status, seen) = spoofed(p1.http_addr().expect("http"), &u, "6.6.6.6").await;
    assert_eq!(status, 200);
    let seen = seen.expect("forwarded");
    let xff = seen.header("x-forwarded-for").unwrap_or("");
    assert!(xff.ends_with("127.0.0.1"), "{xff}");
    assert_eq!(seen.all("x-forwarded-for").len(), 1);
    assert_eq!(seen.all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.all("x-forwarded-host"), ["app.test"]);
    // One trusted hop (the loopback peer): the client is the right-most address
    // that is not itself trusted.
    let trust = |c: &mut ingress_proxy::ProxyConfig| {
        c.service.trusted = TrustedProxies::new(vec!["127.0.0.0/8".parse().expect("net")]);
    };
    let (_d2, p2) = gateway(&[("app.test", "/", &u)], &allow, trust).await;
    let addr = p2.http_addr().expect("http");
    let (status, seen) = spoofed(addr, &u, "1.1.1.1, 6.6.6.6").await;
    assert_eq!(status, 200, "right-most untrusted is 6.6.6.6");
    let seen = seen.expect("forwarded");
    assert_eq!(seen.all("x-real-ip"), ["6.6.6.6"]);
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("1.1.1.1, 6.6.6.6, 127.0.0.1")
    );
    let (status, seen) = spoofed(addr, &u, "6.6.6.6, 1.1.1.1").await;
    assert_eq!(status, 403, "right-most untrusted is 1.1.1.1");
    assert!(seen.is_none());
    for p in [p0, p1, p2] {
        p.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t17_gateway_internal_headers_are_not_taken_from_clients() -> TestResult {
    let (u, c) = (Canary::start("u1").await, Canary::start("canary").await);
    let (dir, p) = gateway(&[("app.test", "/", &u)], &[], |_| {}).await;
    // A canary Ingress chosen by a configured header only.
    let canary = crate::support::ingress_with(
        "app-canary",
        &[
            ("nginx.ingress.kubernetes.io/canary", "true"),
            ("nginx.ingress.kubernetes.io/canary-by-header", "X-Canary"),
        ],
        &[("app.test", "/", "canary")],
        &[],
    );
    let yaml = crate::support::docs(&[canary, crate::support::service("canary", &[c.addr])]);
    crate::canary::add_ingress(dir.path(), &p, "canary", yaml).await;
    let addr = p.http_addr().expect("http");
    let req = "GET /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Port: 1\r\nX-Request-ID: has space\r\nX-Canary-By: always\r\nCanary: always\r\nConnection: close\r\n\r\n";
    let a = send(addr, req.as_bytes(), false).await;
    assert_eq!(a.status(), 200, "{}", a.text());
    assert!(
        c.bytes().is_empty(),
        "the canary needs its configured header"
    );
    let seen = &u.requests()[0];
    assert!(seen.header("x-forwarded-prefix").is_none(), "{seen:?}");
    assert_eq!(seen.all("x-forwarded-port"), [addr.port().to_string()]);
    let id = seen.header("x-request-id").unwrap_or("");
    assert_eq!(id.len(), 32, "an invalid id is replaced: {id}");
    // The configured header does pick the canary.
    let req = "GET /x HTTP/1.1\r\nHost: app.test\r\nX-Canary: always\r\nConnection: close\r\n\r\n";
    let a = send(addr, req.as_bytes(), false).await;
    assert_eq!(a.responses()[0].text(), "canary GET /x 0", "{}", a.text());
    p.shutdown().await;
    Ok(())
}
