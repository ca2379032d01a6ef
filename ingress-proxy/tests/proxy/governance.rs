//! Governance policies end to end: rate and connection limits, timeouts, retries,
//! the request body limit, custom error pages and the default backend.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::balancing::over;
use crate::support::*;

/// An upstream that answers every request with `status` and `{"server": name}`.
pub(crate) async fn fixed(name: &'static str, status: u16) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counter = counter.clone();
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let body = format!("{{\"server\":\"{name}\"}}");
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    Upstream {
        addr,
        name,
        hits,
        conns: Arc::default(),
    }
}

async fn send(addr: std::net::SocketAddr, method: &str, path: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://lb.test{path}"))
        .body(empty())
        .expect("request");
    h1(addr, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_rps_serves_the_burst_at_once_then_503() -> TestResult {
    let a = echo("a").await;
    let dir = over(
        &[&a],
        &[("limit-rps", "1"), ("limit-burst-multiplier", "2")],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let start = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(send(addr, "GET", "/").await.status);
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3], "burst 2 + 1 at once");
    // The bucket drains one request a second: only check the rejection when the
    // four requests were quicker than that.
    if start.elapsed() < Duration::from_millis(900) {
        assert_eq!(statuses[3], StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            a.hits.load(Ordering::SeqCst),
            3,
            "rejected without upstream contact"
        );
    }
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlisted_client_is_not_limited() -> TestResult {
    let a = echo("a").await;
    let dir = over(
        &[&a],
        &[("limit-rps", "1"), ("limit-allowlist", "127.0.0.0/8")],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    for _ in 0..10 {
        assert_eq!(send(addr, "GET", "/").await.status, StatusCode::OK);
    }
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_connections_rejects_a_second_concurrent_request() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[("limit-connections", "1")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let slow = tokio::spawn(send(addr, "GET", "/slow?ms=2000"));
    eventually("the slow request is upstream", || async {
        a.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    let r = send(addr, "GET", "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(
        tokio::time::timeout(DEADLINE, slow).await??.status,
        StatusCode::OK
    );
    // The slot is free again once the first response is done.
    eventually("the slot is released", || async {
        send(addr, "GET", "/").await.status == StatusCode::OK
    })
    .await;
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_502_is_retried_on_the_other_endpoint_but_not_for_post() -> TestResult {
    let (good, bad) = (echo("good").await, fixed("bad", 502).await);
    let dir = over(&[&good, &bad], &[("proxy-next-upstream", "error http_502")]);
    // Outlier detection off: it would eject `bad` after five 502s in a row, and
    // this test is about what retries do when it keeps being picked.
    let p = proxy(dir.path(), |c| {
        c.service.outlier = ingress_core::lb::outlier::OutlierConfig::OFF;
    })
    .await;
    let addr = p.http_addr().expect("http");
    for _ in 0..6 {
        let r = send(addr, "GET", "/").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["server"], "good");
    }
    assert!(bad.hits.load(Ordering::SeqCst) >= 1, "round robin tried it");
    let m = admin(&p, "/metrics").await.text();
    let sample = format!(
        "ingress_proxy_upstream_retries_total{{upstream=\"{}\"}}",
        bad.addr
    );
    assert!(metric(&m, &sample).unwrap_or(0.0) >= 1.0, "{m}");
    // POST is not idempotent: its 502 reaches the client.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(send(addr, "POST", "/").await.status);
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_read_timeout_answers_504() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[("proxy-read-timeout", "1")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let start = Instant::now();
    let r = send(addr, "GET", "/slow?ms=6000").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        send(addr, "GET", "/slow?ms=10").await.status,
        StatusCode::OK
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_proxy_body_size_gets_413_without_upstream_contact() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[("proxy-body-size", "10")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let post = |n: usize| {
        Request::post("http://lb.test/up")
            .body(Full::new(Bytes::from(vec![b'x'; n])))
            .expect("request")
    };
    let r = h1(addr, post(11)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.hits.load(Ordering::SeqCst), 0);
    let r = h1(addr, post(10)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["body_len"], 10);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_body_size_zero_means_no_limit() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[("proxy-body-size", "0")]);
    let p = proxy(dir.path(), |_| {}).await;
    let req =
        Request::post("http://lb.test/up").body(Full::new(Bytes::from(vec![b'x'; 2 << 20])))?;
    let r = h1(p.http_addr().expect("http"), req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["body_len"], 2 << 20);
    p.shutdown().await;
    Ok(())
}

/// A request body fed by a channel, with no declared length (chunked).
struct Chan(mpsc::UnboundedReceiver<Bytes>);

impl Body for Chan {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_growing_past_proxy_body_size_is_cut_with_413() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[("proxy-body-size", "1k")]);
    let p = proxy(dir.path(), |_| {}).await;
    let io = TokioIo::new(tokio::net::TcpStream::connect(p.http_addr().expect("http")).await?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::unbounded_channel();
    let req = Request::post("/up")
        .header("host", "lb.test")
        .body(Chan(rx))?;
    tokio::spawn(async move {
        for _ in 0..8 {
            if tx.send(Bytes::from(vec![b'x'; 512])).is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let _ = resp.into_body().collect().await;
    p.shutdown().await;
    Ok(())
}

/// Ingress `lb` (lb.test `/` to Service `s`, endpoints `main`) with
/// `default-backend: fb` (endpoints `fb`) and more nginx annotations.
fn with_default_backend(
    main: &[&Upstream],
    fb: &Upstream,
    annotations: &[(&str, &str)],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut keys: Vec<(String, &str)> = vec![(
        "nginx.ingress.kubernetes.io/default-backend".to_owned(),
        "fb",
    )];
    for (k, v) in annotations {
        keys.push((format!("nginx.ingress.kubernetes.io/{k}"), v));
    }
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let main: Vec<_> = main.iter().map(|u| u.addr).collect();
    write(
        dir.path(),
        "lb.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with("lb", &keys, &[("lb.test", "/", "s")], &[]),
            service("s", &main),
            service("fb", &[fb.addr]),
        ]),
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_http_errors_are_answered_by_the_default_backend_with_the_original_status()
-> TestResult {
    let (a, fb) = (echo("a").await, echo("fb").await);
    let dir = with_default_backend(&[&a], &fb, &[("custom-http-errors", "404,401")]);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let req = get("lb.test", "/status/404?x=1")
        .header("accept", "application/json")
        .header("x-request-id", "req-1")
        .body(empty())?;
    let r = h1(addr, req).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "the original status");
    assert_eq!(r.json()["server"], "fb", "{}", r.text());
    assert_eq!(r.json()["uri"], "/");
    assert_eq!(r.seen("x-code").as_deref(), Some("404"));
    assert_eq!(r.seen("x-format").as_deref(), Some("application/json"));
    assert_eq!(r.seen("x-original-uri").as_deref(), Some("/status/404?x=1"));
    assert_eq!(r.seen("x-namespace").as_deref(), Some("t"));
    assert_eq!(r.seen("x-ingress-name").as_deref(), Some("lb"));
    assert_eq!(r.seen("x-service-name").as_deref(), Some("s"));
    assert_eq!(r.seen("x-service-port").as_deref(), Some("80"));
    assert_eq!(r.seen("x-request-id").as_deref(), Some("req-1"));
    // The error page answers 200, but a 401 stays a 401 (CVE-2026-24513).
    let r = send(addr, "GET", "/status/401").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["server"], "fb");
    // Codes not listed pass through.
    let r = send(addr, "GET", "/status/500").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["server"], "a");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_http_errors_without_a_default_backend_answer_a_built_in_page() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[("custom-http-errors", "403")]);
    let p = proxy(dir.path(), |_| {}).await;
    let r = send(p.http_addr().expect("http"), "GET", "/status/403").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().starts_with("403 Forbidden"), "{}", r.text());
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_backend_serves_when_the_service_has_no_endpoints() -> TestResult {
    let fb = echo("fb").await;
    let dir = with_default_backend(&[], &fb, &[]);
    let p = proxy(dir.path(), |_| {}).await;
    let r = send(p.http_addr().expect("http"), "GET", "/x?y=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["server"], "fb");
    assert_eq!(r.json()["uri"], "/x?y=1");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_send_timeout_answers_504_when_the_upstream_stops_reading() -> TestResult {
    // An upstream that accepts connections and never reads from them.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let deaf = Upstream {
        addr: listener.local_addr()?,
        name: "deaf",
        hits: Arc::default(),
        conns: Arc::default(),
    };
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let dir = over(
        &[&deaf],
        &[
            ("proxy-send-timeout", "1"),
            ("proxy-read-timeout", "60"),
            ("proxy-body-size", "0"),
        ],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let io = TokioIo::new(tokio::net::TcpStream::connect(p.http_addr().expect("http")).await?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    // Far more than the socket buffers on both sides hold.
    let req = Request::post("/up")
        .header("host", "lb.test")
        .body(Full::new(Bytes::from(vec![b'x'; 64 << 20])))?;
    let start = Instant::now();
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let text = resp.into_body().collect().await?.to_bytes();
    assert!(
        String::from_utf8_lossy(&text).contains("upstream-send-timeout"),
        "{text:?}"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higress_route_limits_answer_429() -> TestResult {
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "lb.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "lb",
                &[("higress.io/route-limit-rps", "1")],
                &[("lb.test", "/", "s")],
                &[],
            ),
            service("s", &[a.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(send(addr, "GET", "/").await.status);
    }
    assert_eq!(statuses[0], StatusCode::OK);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_next_upstream_tries_bounds_the_retries() -> TestResult {
    let (good, bad) = (echo("good").await, fixed("bad", 502).await);
    let dir = over(
        &[&good, &bad],
        &[
            ("proxy-next-upstream", "http_502"),
            ("proxy-next-upstream-tries", "1"),
        ],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(send(addr, "GET", "/").await.status);
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::BAD_GATEWAY],
        "one try each"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_survive_a_table_swap_until_their_policy_changes() -> TestResult {
    let a = echo("a").await;
    let manifests = |extra: &str, rpm: &str| {
        docs(&[
            CLASS.to_owned(),
            ingress_with(
                "lb",
                &[
                    ("nginx.ingress.kubernetes.io/limit-rpm", rpm),
                    ("nginx.ingress.kubernetes.io/limit-burst-multiplier", "1"),
                ],
                &[("lb.test", "/", "s")],
                &[],
            ),
            ingress(extra, &[(&format!("{extra}.test"), "/", "s")], &[]),
            service("s", &[a.addr]),
        ])
    };
    async fn version(p: &ingress_proxy::Proxy) -> f64 {
        let m = admin(p, "/metrics").await.text();
        metric(&m, "ingress_proxy_table_version").unwrap_or(0.0)
    }
    let dir = tempfile::tempdir()?;
    write(dir.path(), "lb.yaml", &manifests("one", "1"));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    // 1 a minute, burst 1: two pass, the third is refused.
    assert_eq!(send(addr, "GET", "/").await.status, StatusCode::OK);
    assert_eq!(send(addr, "GET", "/").await.status, StatusCode::OK);
    assert_eq!(
        send(addr, "GET", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let before = version(&p).await;
    // Another Ingress changes; this one's policy does not: no fresh burst.
    write(dir.path(), "lb.yaml", &manifests("two", "1"));
    eventually("the new table is live", || async {
        version(&p).await > before
    })
    .await;
    let r = send(addr, "GET", "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    // A changed policy starts afresh.
    let before = version(&p).await;
    write(dir.path(), "lb.yaml", &manifests("two", "2"));
    eventually("the new table is live", || async {
        version(&p).await > before
    })
    .await;
    assert_eq!(send(addr, "GET", "/").await.status, StatusCode::OK);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_stalled_past_proxy_read_timeout_is_cut() -> TestResult {
    // An upstream that sends its head and "first", then nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let stall = Upstream {
        addr: listener.local_addr()?,
        name: "stall",
        hits: Arc::default(),
        conns: Arc::default(),
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(Bytes::from_static(b"first"));
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(tx);
                });
                Ok::<_, Infallible>(Response::new(Chan(rx)))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    let dir = over(&[&stall], &[("proxy-read-timeout", "1")]);
    let p = proxy(dir.path(), |_| {}).await;
    let io = TokioIo::new(tokio::net::TcpStream::connect(p.http_addr().expect("http")).await?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let req = Request::get("/").header("host", "lb.test").body(empty())?;
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
    assert_eq!(resp.status(), StatusCode::OK);
    let start = Instant::now();
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect()).await?;
    assert!(body.is_err(), "the stalled body is cut, not ended cleanly");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    p.shutdown().await;
    Ok(())
}
