//! Cluster-wide rate limits in a real Redis server, outlier detection and the
//! circuit breaker, end to end.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use ingress_core::lb::circuit::CircuitLimits;
use ingress_core::lb::outlier::OutlierConfig;
use ingress_core::limits::FailMode;
use ingress_proxy::global::GlobalConfig;
use ingress_proxy::{Proxy, ProxyConfig};

use crate::balancing::over;
use crate::governance::fixed;
use crate::support::*;

/// A redis-server of the machine's (`.ci/run` installs it) on a free loopback
/// port, with nothing persisted; killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    async fn start_on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server; .ci/run does)");
        let server = RedisServer { child, port };
        eventually("redis-server accepts connections", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        server
    }

    async fn start() -> RedisServer {
        RedisServer::start_on(closed_port().await).await
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn global(url: &str, fail: FailMode) -> impl FnOnce(&mut ProxyConfig) {
    let mut g = GlobalConfig::new(url.parse().expect("redis url"));
    g.fail = fail;
    g.timeout = Duration::from_millis(500);
    move |c: &mut ProxyConfig| c.service.global_limits = Some(g)
}

async fn status(addr: SocketAddr, path: &str) -> StatusCode {
    h1(addr, get("lb.test", path).body(empty()).expect("request"))
        .await
        .status
}

/// Per-minute windows: wait out the last seconds of a minute so a test's requests
/// all fall in one window.
async fn not_near_a_minute_edge() {
    let into = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 60);
    if into >= 50 {
        tokio::time::sleep(Duration::from_secs(61 - into)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_share_one_budget_in_redis() -> TestResult {
    let redis = RedisServer::start().await;
    let a = echo("a").await;
    let dir = over(&[&a], &[("limit-rpm", "6")]);
    let p1 = proxy(dir.path(), global(&redis.url(), FailMode::Open)).await;
    let p2 = proxy(dir.path(), global(&redis.url(), FailMode::Open)).await;
    let (x, y) = (p1.http_addr().expect("http"), p2.http_addr().expect("http"));
    not_near_a_minute_edge().await;
    let mut seen = Vec::new();
    for i in 0..10 {
        seen.push(status(if i % 2 == 0 { x } else { y }, "/").await);
    }
    // Six per minute in all, whichever replica serves them; local limits would
    // have let each replica serve six (and a burst on top).
    assert_eq!(seen[..6], [StatusCode::OK; 6], "{seen:?}");
    assert_eq!(seen[6..], [StatusCode::SERVICE_UNAVAILABLE; 4], "{seen:?}");
    assert_eq!(
        a.hits.load(Ordering::SeqCst),
        6,
        "refused without upstream contact"
    );
    let m = admin(&p1, "/metrics").await.text();
    assert_eq!(
        metric(
            &m,
            "ingress_proxy_global_limit_checks_total{outcome=\"allowed\"}"
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "ingress_proxy_global_limit_checks_total{outcome=\"limited\"}"
        ),
        Some(2.0)
    );
    p1.shutdown().await;
    p2.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_and_route_wide_limits_apply_together_in_redis() -> TestResult {
    // limit-rpm 3 per client, and Higress's route-wide 2 per minute: the route
    // limit refuses the third; the per-client window must not have counted it.
    let redis = RedisServer::start().await;
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    let keys = [
        ("nginx.ingress.kubernetes.io/limit-rpm", "3"),
        ("higress.io/route-limit-rpm", "2"),
    ];
    write(
        dir.path(),
        "lb.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with("lb", &keys, &[("lb.test", "/", "s")], &[]),
            service("s", &[a.addr]),
        ]),
    );
    let p = proxy(dir.path(), global(&redis.url(), FailMode::Open)).await;
    let addr = p.http_addr().expect("http");
    not_near_a_minute_edge().await;
    let seen = [
        status(addr, "/").await,
        status(addr, "/").await,
        status(addr, "/").await,
    ];
    assert_eq!(
        seen,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the route-wide limit answers Higress's 429"
    );
    assert_eq!(a.hits.load(Ordering::SeqCst), 2);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_by_default_and_closed_when_asked() -> TestResult {
    let dead = format!("redis://127.0.0.1:{}", closed_port().await);
    let a = echo("a").await;
    let dir = over(&[&a], &[("limit-rpm", "1")]);
    let open = proxy(dir.path(), global(&dead, FailMode::Open)).await;
    let closed = proxy(dir.path(), global(&dead, FailMode::Closed)).await;
    for _ in 0..3 {
        assert_eq!(
            status(open.http_addr().expect("http"), "/").await,
            StatusCode::OK
        );
        assert_eq!(
            status(closed.http_addr().expect("http"), "/").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let m = admin(&open, "/metrics").await.text();
    assert_eq!(
        metric(
            &m,
            "ingress_proxy_global_limit_checks_total{outcome=\"error\"}"
        ),
        Some(3.0),
        "{m}"
    );
    open.shutdown().await;
    closed.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_used_again_and_gets_the_script_back() -> TestResult {
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let a = echo("a").await;
    let dir = over(&[&a], &[("limit-rpm", "2")]);
    let p = proxy(dir.path(), global(&redis.url(), FailMode::Closed)).await;
    let addr = p.http_addr().expect("http");
    not_near_a_minute_edge().await;
    assert_eq!(status(addr, "/").await, StatusCode::OK);
    redis.stop();
    // Down: closed means refused, and the proxy keeps answering.
    assert_eq!(status(addr, "/").await, StatusCode::SERVICE_UNAVAILABLE);
    // A new server on the same port knows neither the counts nor the script
    // (NOSCRIPT: the proxy sends it again).
    let _redis = RedisServer::start_on(port).await;
    not_near_a_minute_edge().await;
    eventually("the proxy reconnects and counts again", || async {
        status(addr, "/a").await == StatusCode::OK
    })
    .await;
    assert_eq!(status(addr, "/").await, StatusCode::OK);
    assert_eq!(status(addr, "/").await, StatusCode::SERVICE_UNAVAILABLE);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_in_a_row_is_ejected_and_traffic_goes_elsewhere() -> TestResult {
    let bad = fixed("bad", 500).await;
    let good = echo("good").await;
    let dir = over(&[&bad, &good], &[]);
    let p: Proxy = proxy(dir.path(), |c| {
        c.service.outlier = OutlierConfig {
            consecutive_5xx: 3,
            ..OutlierConfig::default()
        };
    })
    .await;
    let addr = p.http_addr().expect("http");
    let mut failed = 0;
    for _ in 0..30 {
        if status(addr, "/").await == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        }
    }
    // Round robin sends every other request to `bad` until its third 500 in a row.
    assert_eq!(failed, 3);
    assert_eq!(bad.hits.load(Ordering::SeqCst), 3);
    let m = admin(&p, "/metrics").await.text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("ingress_proxy_outlier_ejections_total{") && l.ends_with(" 1")),
        "{m}"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejection_never_leaves_a_cluster_without_endpoints() -> TestResult {
    // A single failing endpoint is never ejected (share ceiling); even with every
    // endpoint ejected the requests would still be tried (panic mode).
    let bad = fixed("bad", 503).await;
    let dir = over(&[&bad], &[]);
    let p = proxy(dir.path(), |c| {
        c.service.outlier = OutlierConfig {
            consecutive_gateway_failure: 1,
            max_ejection_percent: 100,
            ..OutlierConfig::default()
        };
    })
    .await;
    let addr = p.http_addr().expect("http");
    for _ in 0..5 {
        assert_eq!(status(addr, "/").await, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        bad.hits.load(Ordering::SeqCst),
        5,
        "panic mode: still tried"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_circuit_refuses_at_once_without_upstream_contact() -> TestResult {
    let a = echo("a").await;
    let dir = over(&[&a], &[]);
    let p = proxy(dir.path(), |c| {
        c.service.circuit = CircuitLimits {
            max_requests: 1,
            max_retries: 0,
        };
    })
    .await;
    let addr = p.http_addr().expect("http");
    let slow = tokio::spawn(async move { status(addr, "/slow?ms=1500").await });
    eventually("the slow request is upstream", || async {
        a.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(status(addr, "/").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.hits.load(Ordering::SeqCst), 1);
    assert_eq!(tokio::time::timeout(DEADLINE, slow).await??, StatusCode::OK);
    eventually("the slot is free again", || async {
        status(addr, "/").await == StatusCode::OK
    })
    .await;
    let m = admin(&p, "/metrics").await.text();
    assert!(
        m.contains("ingress_proxy_circuit_overflows_total{cluster=\"t/s:"),
        "{m}"
    );
    p.shutdown().await;
    Ok(())
}

/// Ingresses `plain` (host plain.test) and `own` (host own.test, with these
/// `ingress-rs.io/` annotations) both routing `/` to Service `s` over `ups`.
fn two_routes_to_one_service(ups: &[&Upstream], own: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<(String, &str)> = own
        .iter()
        .map(|(k, v)| (format!("ingress-rs.io/{k}"), *v))
        .collect();
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let addrs: Vec<_> = ups.iter().map(|u| u.addr).collect();
    write(
        dir.path(),
        "two.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("plain", &[("plain.test", "/", "s")], &[]),
            ingress_with("own", &keys, &[("own.test", "/", "s")], &[]),
            service("s", &addrs),
        ]),
    );
    dir
}

async fn status_of(addr: SocketAddr, host: &str, path: &str) -> StatusCode {
    h1(addr, get(host, path).body(empty()).expect("request"))
        .await
        .status
}

/// How many of `n` requests to `host` got a 500.
async fn failures(addr: SocketAddr, host: &str, n: usize) -> usize {
    let mut failed = 0;
    for _ in 0..n {
        if status_of(addr, host, "/").await == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_own_outlier_values_eject_sooner_and_only_for_its_traffic() -> TestResult {
    let bad = fixed("bad", 500).await;
    let good = echo("good").await;
    let dir = two_routes_to_one_service(
        &[&bad, &good],
        &[
            ("outlier-consecutive-5xx", "1"),
            ("outlier-base-ejection-time", "300ms"),
        ],
    );
    let p = proxy(dir.path(), |c| {
        c.service.outlier = OutlierConfig {
            consecutive_5xx: 3,
            ..OutlierConfig::default()
        };
    })
    .await;
    let addr = p.http_addr().expect("http");
    // own.test: ejected at its first 500 (the default would take three).
    assert_eq!(failures(addr, "own.test", 10).await, 1);
    // plain.test keeps the gateway's values and its own view of the endpoints:
    // the ejection above does not spare it its three 500s.
    assert_eq!(failures(addr, "plain.test", 10).await, 3);
    assert_eq!(bad.hits.load(Ordering::SeqCst), 4);
    // own.test's ejection lasts 300 ms, not the default 30 s: `bad` is tried
    // again once, and ejected again at once (for 600 ms this time).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(failures(addr, "own.test", 4).await, 1);
    assert_eq!(failures(addr, "plain.test", 4).await, 0, "still ejected");
    let m = admin(&p, "/metrics").await.text();
    assert_eq!(
        metric(
            &m,
            "ingress_proxy_outlier_ejections_total{cluster=\"t/s:80\"}"
        ),
        Some(3.0),
        "the clusters of one Service port add up under its name: {m}"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_own_circuit_ceiling_refuses_while_the_default_admits() -> TestResult {
    let a = echo("a").await;
    let dir = two_routes_to_one_service(&[&a], &[("circuit-max-requests", "1")]);
    // A third Ingress whose value is invalid: its routes fail closed.
    write(
        dir.path(),
        "broken.yaml",
        &ingress_with(
            "broken",
            &[("ingress-rs.io/circuit-max-requests", "lots")],
            &[("broken.test", "/", "s")],
            &[],
        ),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    eventually("broken.test is in the table", || async {
        status_of(addr, "broken.test", "/").await == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let r = h1(addr, get("broken.test", "/").body(empty())?).await;
    assert!(r.text().contains("invalid-policy"), "{}", r.text());
    assert_eq!(a.hits.load(Ordering::SeqCst), 0, "nothing forwarded");

    let slow = tokio::spawn(async move { status_of(addr, "own.test", "/slow?ms=1500").await });
    eventually("the slow request is upstream", || async {
        a.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    // own.test allows one request in flight: the next is refused at once.
    let r = h1(addr, get("own.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("upstream-overflow"), "{}", r.text());
    assert_eq!(a.hits.load(Ordering::SeqCst), 1);
    // The same Service through plain.test has the gateway's ceiling (1024) and
    // its own count: served.
    assert_eq!(status_of(addr, "plain.test", "/").await, StatusCode::OK);
    assert_eq!(a.hits.load(Ordering::SeqCst), 2);
    assert_eq!(tokio::time::timeout(DEADLINE, slow).await??, StatusCode::OK);
    eventually("own.test's slot is free again", || async {
        status_of(addr, "own.test", "/").await == StatusCode::OK
    })
    .await;
    p.shutdown().await;
    Ok(())
}
