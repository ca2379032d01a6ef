//! Route policies that choose the endpoint: load balancing and cookie affinity.

use std::collections::BTreeSet;

use http::StatusCode;

use crate::support::*;

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// A folder with Ingress `lb` (host lb.test, `/`) over Service `s` whose endpoints
/// are `ups`, with these nginx annotations (keys without the prefix).
pub(crate) fn over(ups: &[&Upstream], annotations: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<(String, &str)> = annotations
        .iter()
        .map(|(k, v)| (format!("{NGINX}{k}"), *v))
        .collect();
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut parts = vec![
        CLASS.to_owned(),
        ingress_with("lb", &keys, &[("lb.test", "/", "s")], &[]),
    ];
    // One Service with one EndpointSlice per upstream (each its own port).
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    parts.push(service("s", &addrs));
    write(dir.path(), "lb.yaml", &docs(&parts));
    dir
}

async fn server(addr: std::net::SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = get("lb.test", path);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    h1(addr, req.body(empty()).expect("request")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_still_cycles_through_the_endpoints() -> TestResult {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let dir = over(&[&a, &b, &c], &[]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let mut seen = Vec::new();
    for _ in 0..6 {
        let r = server(addr, "/", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        seen.push(r.json()["server"].as_str().unwrap_or("").to_owned());
    }
    // Each window of three visits every endpoint once, and the cycle repeats.
    let first: BTreeSet<_> = seen[..3].iter().collect();
    assert_eq!(first.len(), 3, "{seen:?}");
    assert_eq!(seen[..3], seen[3..], "{seen:?}");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_hash_by_request_uri_keeps_each_uri_on_one_endpoint() -> TestResult {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let dir = over(&[&a, &b, &c], &[("upstream-hash-by", "$request_uri")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let mut used = BTreeSet::new();
    for i in 0..20 {
        let uri = format!("/item?id={i}");
        let mut servers = BTreeSet::new();
        for _ in 0..3 {
            let r = server(addr, &uri, None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            servers.insert(r.json()["server"].as_str().unwrap_or("").to_owned());
        }
        assert_eq!(servers.len(), 1, "{uri} went to {servers:?}");
        used.extend(servers);
    }
    assert!(used.len() >= 2, "20 URIs all hashed to {used:?}");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_the_endpoint_with_a_request_in_flight() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = over(&[&a, &b], &[("load-balance", "least_request")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let slow = tokio::spawn(server(addr, "/slow?ms=3000", None));
    let hits = || {
        a.hits.load(std::sync::atomic::Ordering::SeqCst)
            + b.hits.load(std::sync::atomic::Ordering::SeqCst)
    };
    eventually("the slow request reaches an upstream", || async {
        hits() == 1
    })
    .await;
    let busy = if a.hits.load(std::sync::atomic::Ordering::SeqCst) == 1 {
        "a"
    } else {
        "b"
    };
    // Of two endpoints both are drawn: the idle one always wins.
    for _ in 0..6 {
        let r = server(addr, "/", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_ne!(r.json()["server"], busy);
    }
    let r = tokio::time::timeout(DEADLINE, slow).await??;
    assert_eq!(r.json()["server"], busy);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_serves_and_reaches_every_endpoint() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = over(&[&a, &b], &[("load-balance", "ewma")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    // Endpoints without a latency sample score lowest: both are tried first.
    let mut used = BTreeSet::new();
    for _ in 0..10 {
        let r = server(addr, "/", None).await;
        assert_eq!(r.status, StatusCode::OK);
        used.insert(r.json()["server"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(used.len(), 2, "{used:?}");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_pins_a_client_to_its_endpoint() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = over(
        &[&a, &b],
        &[
            ("affinity", "cookie"),
            ("session-cookie-name", "route"),
            ("session-cookie-max-age", "100"),
            ("session-cookie-samesite", "Strict"),
        ],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let r = server(addr, "/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let first = r.json()["server"].as_str().unwrap_or("").to_owned();
    let set = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .ok_or("a Set-Cookie")?
        .to_owned();
    let pair = set.split(';').next().unwrap_or("").to_owned();
    assert!(pair.starts_with("route="), "{set}");
    assert!(set.contains("; Max-Age=100"), "{set}");
    assert!(set.contains("; Path=/"), "{set}");
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(set.contains("; SameSite=Strict"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    for _ in 0..20 {
        let r = server(addr, "/", Some(&pair)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["server"], first.as_str(), "stuck to its endpoint");
        assert!(!r.headers.contains_key("set-cookie"), "no new cookie");
    }
    // Without the cookie, round robin spreads new sessions, each told its endpoint.
    let mut used = BTreeSet::new();
    for _ in 0..4 {
        let r = server(addr, "/", None).await;
        assert!(r.headers.contains_key("set-cookie"));
        used.insert(r.json()["server"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(used.len(), 2, "{used:?}");
    // A cookie naming no endpoint of the backend is replaced.
    let r = server(addr, "/", Some("route=nonsense")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.contains_key("set-cookie"));
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_continues_across_a_table_swap() -> TestResult {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let manifests = |extra: &str| {
        docs(&[
            CLASS.to_owned(),
            ingress("lb", &[("lb.test", "/", "s")], &[]),
            ingress(extra, &[(&format!("{extra}.test"), "/", "s")], &[]),
            service("s", &[a.addr, b.addr, c.addr]),
        ])
    };
    async fn version(p: &ingress_proxy::Proxy) -> f64 {
        let m = admin(p, "/metrics").await.text();
        metric(&m, "ingress_proxy_table_version").unwrap_or(0.0)
    }
    let dir = tempfile::tempdir()?;
    write(dir.path(), "lb.yaml", &manifests("x0"));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    for round in 1..=3 {
        let mut seen = BTreeSet::new();
        for _ in 0..2 {
            let r = server(addr, "/", None).await;
            seen.insert(r.json()["server"].as_str().unwrap_or("").to_owned());
        }
        let before = version(&p).await;
        write(dir.path(), "lb.yaml", &manifests(&format!("x{round}")));
        eventually("the new table is live", || async {
            version(&p).await > before
        })
        .await;
        // The new table's balancer continues the cycle: the third endpoint is next.
        let r = server(addr, "/", None).await;
        let third = r.json()["server"].as_str().unwrap_or("").to_owned();
        assert!(
            !seen.contains(&third),
            "round {round}: {seen:?} then {third}"
        );
        assert_eq!(seen.len(), 2);
    }
    p.shutdown().await;
    Ok(())
}
