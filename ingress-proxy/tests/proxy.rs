//! End-to-end tests of the proxy on loopback: real sockets, real HTTP/1.1, HTTP/2
//! and TLS clients, echo upstreams that report what they received.

#[path = "proxy/balancing.rs"]
mod balancing;
#[path = "proxy/faults.rs"]
mod faults;
#[path = "proxy/framing.rs"]
mod framing;
#[path = "proxy/governance.rs"]
mod governance;
#[path = "proxy/mirror.rs"]
mod mirror;
#[path = "proxy/protocols.rs"]
mod protocols;
#[path = "proxy/reload.rs"]
mod reload;
#[path = "proxy/resilience.rs"]
mod resilience;
#[path = "proxy/security.rs"]
mod security;
mod support;
#[path = "proxy/upstreams.rs"]
mod upstreams;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ingress_proxy::headers::TrustedProxies;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_forwards_path_query_host_and_forwarded_headers() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");

    let r = h1(addr, get("App.Test", "/b/x/../y?q=1&r=%20").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["server"], "b");
    assert_eq!(seen["method"], "GET");
    assert_eq!(
        seen["uri"], "/b/y?q=1&r=%20",
        "normalised path, query unchanged"
    );
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_eq!(r.seen("host").as_deref(), Some("App.Test"));
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(r.seen("x-forwarded-host").as_deref(), Some("App.Test"));
    assert_eq!(r.seen("x-forwarded-port"), Some(addr.port().to_string()));
    assert_eq!(r.seen("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(r.seen("x-real-ip").as_deref(), Some("127.0.0.1"));
    let id = r.seen("x-request-id").expect("request id generated");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
    // The upstream's own hop-by-hop headers do not reach the client.
    assert!(!r.headers.contains_key("x-upstream-private"));

    let r = h1(addr, get("app.test", "/other").body(empty())?).await;
    assert_eq!(r.json()["server"], "a");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_upstream() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    // 1 MiB: the default `proxy-body-size`, so the whole body is allowed.
    let body = Bytes::from(vec![b'x'; 1024 * 1024]);
    let req = http::Request::post("http://app.test/upload").body(Full::new(body.clone()))?;
    let r = h1(p.http_addr().expect("http"), req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.json()["body_len"], body.len());
    let req = http::Request::post("http://app.test/upload").body(Full::new(body.clone()))?;
    let r = h2(p.http_addr().expect("http"), req).await;
    assert_eq!(r.json()["body_len"], body.len());
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_on_the_plain_listener() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let r = h2(
        p.http_addr().expect("http"),
        get("app.test", "/b?x=1").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = r.json();
    assert_eq!(seen["server"], "b");
    assert_eq!(seen["uri"], "/b?x=1");
    assert_eq!(
        seen["version"], "HTTP/1.1",
        "upstreams are spoken to in HTTP/1.1"
    );
    assert_eq!(r.seen("host").as_deref(), Some("app.test"));
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_picks_the_certificate_by_sni_and_serves_the_default_otherwise() -> TestResult {
    let a = echo("a").await;
    let (ca, cb) = (cert(&["a.test"]), cert(&["*.b.test"]));
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "tls.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress(
                "app",
                &[("a.test", "/", "a"), ("x.b.test", "/", "a")],
                &[("a.test", "a-tls"), ("*.b.test", "b-tls")],
            ),
            service("a", &[a.addr]),
            tls_secret("a-tls", &ca),
            tls_secret("b-tls", &cb),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.https_addr().expect("https");

    let t = tls(addr, "a.test", &[b"h2", b"http/1.1"], false).await;
    assert_eq!(t.leaf, der(&ca.0), "a.test gets its own certificate");
    assert_eq!(t.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(t.version, Some(rustls::ProtocolVersion::TLSv1_3));
    let r = h2_on(
        TokioIo::new(t.stream),
        get("a.test", "/hello").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("https"));

    let t = tls(addr, "x.b.test", &[b"http/1.1"], true).await;
    assert_eq!(t.leaf, der(&cb.0), "a wildcard binding covers one label");
    assert_eq!(t.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(t.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let r = h1_on(TokioIo::new(t.stream), get("x.b.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);

    let t = tls(addr, "unknown.test", &[], false).await;
    assert!(!t.leaf.is_empty());
    assert_ne!(t.leaf, der(&ca.0));
    assert_ne!(t.leaf, der(&cb.0));

    // Rotation: a new Secret in the folder means a new certificate, no restart.
    let ca2 = cert(&["a.test"]);
    write(dir.path(), "rotated.yaml", &tls_secret("a-tls", &ca2));
    std::fs::remove_file(dir.path().join("tls.yaml"))?;
    write(
        dir.path(),
        "tls.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("a.test", "/", "a")], &[("a.test", "a-tls")]),
            service("a", &[a.addr]),
        ]),
    );
    let want = der(&ca2.0);
    eventually("the rotated certificate is served", || {
        let want = want.clone();
        async move { tls(addr, "a.test", &[], false).await.leaf == want }
    })
    .await;
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_spliced_and_survives_a_table_swap() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let mut io = TokioIo::new(upgrade(p.http_addr().expect("http")).await);
    assert_eq!(
        round_trip(&mut io, b"hello over the tunnel").await,
        b"hello over the tunnel"
    );

    let before = p.live().load().version();
    write(
        dir.path(),
        "more.yaml",
        &ingress("more", &[("more.test", "/", "a")], &[]),
    );
    eventually("the new table is live", || async {
        p.live().load().version() > before
    })
    .await;
    assert_eq!(round_trip(&mut io, b"still here").await, b"still here");
    drop(io);
    eventually("the tunnel closes with its client", || async {
        p.service().open_tunnels() == 0
    })
    .await;
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_only_from_trusted_peers() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let spoof = |path: &str| {
        get("app.test", path)
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.test")
            .body(empty())
            .expect("request")
    };

    let untrusted = proxy(dir.path(), |_| {}).await;
    let r = h1(untrusted.http_addr().expect("http"), spoof("/")).await;
    assert_eq!(r.seen("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        r.seen("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(r.seen("x-forwarded-host").as_deref(), Some("app.test"));
    untrusted.shutdown().await;

    let trusted = proxy(dir.path(), |c| {
        c.service.trusted = TrustedProxies::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
    })
    .await;
    let r = h1(trusted.http_addr().expect("http"), spoof("/")).await;
    assert_eq!(r.seen("x-real-ip").as_deref(), Some("203.0.113.7"));
    assert_eq!(
        r.seen("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(r.seen("x-forwarded-host").as_deref(), Some("evil.test"));
    trusted.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_and_underscored_headers_are_removed_and_request_ids_kept_when_valid()
-> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let req = get("app.test", "/")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("x-request-id", "order-42.retry_1")
        .header("x-kept", "yes")
        .header("transfer_encoding", "chunked")
        .header("x_user", "admin")
        .body(empty())?;
    let r = h1(addr, req).await;
    let headers = r.json()["headers"].clone();
    for gone in [
        "transfer_encoding",
        "x_user",
        "x-private",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            headers.get(gone).is_none(),
            "{gone} reached the upstream: {headers}"
        );
    }
    assert_eq!(r.seen("te").as_deref(), Some("trailers"));
    assert_eq!(r.seen("x-kept").as_deref(), Some("yes"));
    assert_eq!(r.seen("x-request-id").as_deref(), Some("order-42.retry_1"));

    let bad_id = get("app.test", "/")
        .header("x-request-id", "a b\"c")
        .body(empty())?;
    let r = h1(addr, bad_id).await;
    assert_eq!(r.seen("x-request-id").map(|s| s.len()), Some(32));
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_404_503_502_504_and_400() -> TestResult {
    let slow = echo("slow").await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir()?;
    let closed_addr = std::net::SocketAddr::from(([127, 0, 0, 1], closed));
    write(
        dir.path(),
        "all.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress(
                "app",
                &[
                    ("app.test", "/api", "slow"),
                    ("app.test", "/down", "down"),
                    ("app.test", "/missing", "missing"),
                ],
                &[],
            ),
            service("slow", &[slow.addr]),
            service("down", &[closed_addr]),
        ]),
    );
    let p = proxy(dir.path(), |c| {
        c.service.read_timeout = Duration::from_millis(300)
    })
    .await;
    let addr = p.http_addr().expect("http");
    let status = |host: &'static str, path: &'static str| async move {
        h1(addr, get(host, path).body(empty()).expect("request")).await
    };
    let r = status("app.test", "/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("no-route"), "{}", r.text());
    assert_eq!(
        status("other.test", "/api").await.status,
        StatusCode::NOT_FOUND
    );
    let r = status("app.test", "/missing").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("service-not-found"), "{}", r.text());
    assert_eq!(
        status("app.test", "/down").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(status("app.test", "/api/fast").await.status, StatusCode::OK);
    let r = h1(addr, get("app.test", "/slow?ms=3000").body(empty())?).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "/slow is not routed: {}",
        r.text()
    );

    // 504: the route is /api; send the slow request there with the echo's /slow
    // behaviour reached through a second Ingress path.
    write(
        dir.path(),
        "slow.yaml",
        &ingress("slow", &[("slow.test", "/slow", "slow")], &[]),
    );
    eventually("slow.test is routed", || async {
        h1(
            addr,
            get("slow.test", "/slow?ms=0")
                .body(empty())
                .expect("request"),
        )
        .await
        .status
            == StatusCode::OK
    })
    .await;
    let r = h1(addr, get("slow.test", "/slow?ms=3000").body(empty())?).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);

    // Two Host headers: 400, nothing forwarded.
    let req = http::Request::get("/api")
        .header("host", "app.test")
        .header("host", "other.test")
        .body(empty())?;
    assert_eq!(h1(addr, req).await.status, StatusCode::BAD_REQUEST);

    let metrics = admin(&p, "/metrics").await.text();
    let errors =
        format!("ingress_proxy_upstream_connect_errors_total{{upstream=\"{closed_addr}\"}}");
    assert_eq!(metric(&metrics, &errors), Some(1.0), "{metrics}");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_over_endpoints() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "rr.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("app.test", "/", "both")], &[]),
            service("both", &[a.addr, b.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let mut servers = Vec::new();
    for _ in 0..4 {
        let r = h1(
            p.http_addr().expect("http"),
            get("app.test", "/").body(empty())?,
        )
        .await;
        servers.push(r.json()["server"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(
        servers.iter().filter(|s| *s == "a").count(),
        2,
        "{servers:?}"
    );
    assert_eq!(
        servers.iter().filter(|s| *s == "b").count(),
        2,
        "{servers:?}"
    );
    assert_ne!(servers[0], servers[1]);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    assert_eq!(admin(&p, "/healthz").await.status, StatusCode::OK);
    assert_eq!(admin(&p, "/readyz").await.status, StatusCode::OK);
    assert_eq!(admin(&p, "/nope").await.status, StatusCode::NOT_FOUND);

    let r = h1(
        p.http_addr().expect("http"),
        get("app.test", "/b").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let m = admin(&p, "/metrics").await.text();
    let sample =
        "ingress_proxy_requests_total{host=\"app.test\",route=\"t/app /b\",status=\"200\"}";
    // The access line (and its count) is written when the response body ends.
    eventually("the request is counted", || async {
        metric(&admin(&p, "/metrics").await.text(), sample) == Some(1.0)
    })
    .await;
    assert_eq!(metric(&m, "ingress_proxy_table_version"), Some(1.0), "{m}");
    assert_eq!(
        metric(
            &m,
            "ingress_proxy_config_applies_total{outcome=\"applied\"}"
        ),
        Some(1.0)
    );
    assert!(m.contains("ingress_proxy_request_duration_seconds_bucket"));

    // /routes: the same document as `ingressctl routes -o json`, plus the version.
    let mut doc = admin(&p, "/routes").await.json();
    assert_eq!(doc["version"], 1);
    if let Some(m) = doc.as_object_mut() {
        m.remove("version");
    }
    let (table, diagnostics) =
        ingress_proxy::source::load(dir.path(), &ingress_core::CompileOptions::default())?;
    assert_eq!(doc, ingress_core::report::routes(&table, &diagnostics));
    assert_eq!(doc["schema"], "ingressctl.routes/v1");
    assert_eq!(doc["routes"].as_array().map(Vec::len), Some(2));
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() -> TestResult {
    let slow = echo("slow").await;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "slow.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("slow", &[("slow.test", "/slow", "slow")], &[]),
            service("slow", &[slow.addr]),
        ]),
    );
    let p = proxy(dir.path(), |c| c.shutdown_grace = Duration::from_secs(10)).await;
    let addr = p.http_addr().expect("http");
    let in_flight = tokio::spawn(async move {
        h1(
            addr,
            get("slow.test", "/slow?ms=700")
                .body(empty())
                .expect("request"),
        )
        .await
    });
    eventually("the request reached the upstream", || async {
        slow.hits.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let started = std::time::Instant::now();
    p.shutdown().await;
    let r = in_flight.await?;
    assert_eq!(r.status, StatusCode::OK, "the in-flight request finished");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "no need to wait out the grace"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_rewrites_and_upstream_host_from_annotations() -> TestResult {
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    let nginx = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    write(
        dir.path(),
        "annotated.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "moved",
                &[(&nginx("permanent-redirect"), "https://example.org/new")],
                &[("moved.test", "/", "a")],
                &[],
            ),
            ingress_with(
                "rw",
                &[
                    (&nginx("rewrite-target"), "/"),
                    (&nginx("x-forwarded-prefix"), "/app"),
                    (&nginx("upstream-vhost"), "internal.svc"),
                ],
                &[("rw.test", "/app", "a")],
                &[],
            ),
            service("a", &[a.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let routes = admin(&p, "/routes").await.json();
    assert_eq!(
        routes["diagnostics"].as_array().map(Vec::len),
        Some(0),
        "{routes}"
    );

    let r = h1(addr, get("moved.test", "/old").body(empty())?).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers["location"], "https://example.org/new");
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing forwarded"
    );

    let r = h1(addr, get("rw.test", "/app/items?id=3").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["uri"], "/items?id=3");
    assert_eq!(r.seen("x-forwarded-prefix").as_deref(), Some("/app"));
    assert_eq!(r.seen("host").as_deref(), Some("internal.svc"));
    assert_eq!(r.seen("x-forwarded-host").as_deref(), Some("rw.test"));
    p.shutdown().await;
    Ok(())
}

/// The binary itself: flags from the environment, JSON logs with one access line per
/// request, and SIGTERM ends it with exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_logs_json_and_exits_0_on_sigterm() -> TestResult {
    use std::io::BufRead;
    let exited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ingress-proxy"))
        .env("INGRESS_PROXY_MANIFESTS", dir.path())
        .env("INGRESS_PROXY_LISTEN_HTTP", "127.0.0.1:0")
        .env("INGRESS_PROXY_LISTEN_HTTPS", "127.0.0.1:0")
        .env("INGRESS_PROXY_LISTEN_ADMIN", "127.0.0.1:0")
        .env("INGRESS_PROXY_LOG_FORMAT", "json")
        .env("INGRESS_PROXY_SHUTDOWN_GRACE", "5s")
        .env_remove("INGRESS_PROXY_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let _reap = Reap(child.id(), exited.clone());
    let stderr = child.stderr.take().ok_or("stderr")?;
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut next_line = async |want: &dyn Fn(&serde_json::Value) -> bool| {
        loop {
            let line = tokio::time::timeout(DEADLINE, lines.recv())
                .await
                .expect("a log line in time")
                .expect("the log goes on");
            if want(&line) {
                return line;
            }
        }
    };
    let listening = next_line(&|l| l["message"] == "listening").await;
    let http: std::net::SocketAddr = listening["http"].as_str().ok_or("http addr")?.parse()?;
    let req = get("app.test", "/b/x")
        .header("x-request-id", "binary-1")
        .body(empty())?;
    let r = h1(http, req).await;
    assert_eq!(r.status, StatusCode::OK);
    let access = next_line(&|l| l["request_id"] == "binary-1").await;
    assert_eq!(access["target"], "ingress_proxy::access");
    assert_eq!(access["route"], "t/app /b");
    assert_eq!(access["protocol"], "HTTP/1.1");
    assert_eq!(access["scheme"], "http");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/b/x");
    assert_eq!(access["upstream"], b.addr.to_string());
    assert_eq!(access["status"], 200);
    assert_eq!(access["bytes"], r.body.len());
    assert!(
        access["duration_ms"].as_f64().is_some_and(|d| d > 0.0),
        "{access}"
    );
    assert!(access["upstream_ms"].as_f64().is_some(), "{access}");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("the proxy exits in time")??;
    exited.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(status.success(), "exit status {status}");
    Ok(())
}

/// Kills a child process that a failed test left running.
struct Reap(u32, std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Reap {
    fn drop(&mut self) {
        if !self.1.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_default_certificate_is_served_for_unknown_names() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let fallback = cert(&["fallback.invalid"]);
    let pem = (
        fallback.0.clone().into_bytes(),
        fallback.1.clone().into_bytes(),
    );
    let p = proxy(dir.path(), |c| c.default_certificate = Some(pem)).await;
    let t = tls(
        p.https_addr().expect("https"),
        "app.test",
        &[b"http/1.1"],
        false,
    )
    .await;
    assert_eq!(t.leaf, der(&fallback.0));
    let r = h1_on(TokioIo::new(t.stream), get("app.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.seen("x-forwarded-proto").as_deref(), Some("https"));
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_asking_for_controls_not_carried_out_yet_fail_closed() -> TestResult {
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "limited.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "limited",
                &[("nginx.ingress.kubernetes.io/backend-protocol", "FCGI")],
                &[("limited.test", "/", "a")],
                &[],
            ),
            ingress("open", &[("open.test", "/", "a")], &[]),
            service("a", &[a.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let r = h1(addr, get("limited.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("invalid-policy"), "{}", r.text());
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing forwarded"
    );
    let r = h1(addr, get("open.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK, "other routes keep serving");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decisions_response_headers_reach_the_client() -> TestResult {
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    let nginx = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
    write(
        dir.path(),
        "cors.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "cors",
                &[
                    (&nginx("enable-cors"), "true"),
                    (&nginx("cors-allow-origin"), "https://app.example"),
                ],
                &[("cors.test", "/", "a")],
                &[],
            ),
            service("a", &[a.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let origin = "https://app.example";
    // Forwarded: added to the upstream's answer.
    let r = h1(
        addr,
        get("cors.test", "/x")
            .header("origin", origin)
            .body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["access-control-allow-origin"], origin);
    assert_eq!(r.json()["server"], "a");
    // Preflight: answered by the gateway with the same headers.
    let preflight = http::Request::options("http://cors.test/x")
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .body(empty())?;
    let r = h1(addr, preflight).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-origin"], origin);
    assert_eq!(
        a.hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "preflight not forwarded"
    );
    p.shutdown().await;
    Ok(())
}
