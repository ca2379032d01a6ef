//! Section H, connections: the per-listener cap (T52, scaled from 10 000 to 20),
//! accept errors (EMFILE) with back-off and recovery, the keep-alive idle
//! timeout, and `spec.limits` of the gateway config applied at runtime.

use std::sync::Arc;
use std::time::Duration;

use ingress_kube::GatewayConfig;
use ingress_proxy::Live;
use ingress_proxy::gateway::RuntimeOptions;
use tokio::net::TcpStream;

use crate::raw::*;
use crate::support::{self, TestResult};

/// Open `n` connections and make sure the proxy has accepted each (one request
/// answered on every one).
async fn open(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(h1_status_on(&mut tcp, "/held").await, Some(200));
        held.push(tcp);
    }
    held
}

/// Whether a connection opened now is served (a request answered 200).
async fn served(addr: std::net::SocketAddr) -> bool {
    h1_status(addr, "/probe").await == Some(200)
}

/// T52: with the cap at 20, the 21st connection is closed at once; the 20 open
/// ones keep being served; once some close, new ones are served again.
#[tokio::test]
async fn t52_connections_past_the_cap_are_closed_and_the_cap_recovers() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| c.limits.max_connections = 20).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut held = open(addr, 20).await;
    for _ in 0..5 {
        let mut extra = TcpStream::connect(addr).await?;
        assert!(
            closed_within(&mut extra, Duration::from_secs(2)).await,
            "a connection past the cap was kept"
        );
    }
    for tcp in held.iter_mut().take(3) {
        assert_eq!(h1_status_on(tcp, "/still").await, Some(200));
    }
    held.truncate(10);
    support::eventually("new connections are served again", || served(addr)).await;
    proxy.shutdown().await;
    Ok(())
}

/// `spec.limits` of the gateway config applies to connections accepted after the
/// table carrying it is live: the flags allow 20, the config 3.
#[tokio::test]
async fn gateway_limits_apply_to_new_connections() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| c.limits.max_connections = 20).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut config = GatewayConfig::default();
    config.limits.max_connections = Some(3);
    let runtime = RuntimeOptions::merge(proxy.service().options(), &config, None);
    let current = proxy.live().load();
    let table = Live::new(current.table().clone(), current.version() + 1, Vec::new())
        .with_runtime(Arc::new(runtime));
    proxy.live().store(table);
    let _held = open(addr, 3).await;
    let mut extra = TcpStream::connect(addr).await?;
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await);
    proxy.shutdown().await;
    Ok(())
}

/// The keep-alive idle timeout: a connection with no request in flight for 1 s
/// is closed (the header read timeout, which also bounds HTTP/1.1 idle time, is
/// longer here); one with a request in flight is not.
#[tokio::test]
async fn idle_connections_are_closed_after_the_keep_alive_timeout() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| {
        c.limits.keep_alive_timeout = Duration::from_secs(1);
        c.limits.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut tcp = TcpStream::connect(addr).await?;
    assert_eq!(h1_status_on(&mut tcp, "/once").await, Some(200));
    let started = std::time::Instant::now();
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    assert!(started.elapsed() >= Duration::from_millis(800));
    // HTTP/2: GOAWAY after the idle time.
    let mut c = RawH2::connect(addr, &[]).await;
    assert_eq!(c.goaway(Duration::from_secs(5)).await, Some(0));
    proxy.shutdown().await;
    Ok(())
}

/// A connection that sends nothing waits in a small future (T52 at full size:
/// 10,000 idle ones) and is closed after the keep-alive timeout, TLS after the
/// handshake timeout; one whose first bytes come before that is served.
#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_their_timeout() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| {
        c.limits.keep_alive_timeout = Duration::from_secs(1);
        c.limits.handshake_timeout = Duration::from_secs(1);
        c.limits.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let tls = proxy.https_addr().ok_or("no https")?;
    for to in [addr, tls] {
        let mut silent = TcpStream::connect(to).await?;
        let started = std::time::Instant::now();
        assert!(
            closed_within(&mut silent, Duration::from_secs(5)).await,
            "a silent connection to {to} was kept"
        );
        assert!(started.elapsed() >= Duration::from_millis(800));
    }
    let mut late = TcpStream::connect(addr).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h1_status_on(&mut late, "/late").await, Some(200));
    proxy.shutdown().await;
    Ok(())
}

/// T52, EMFILE: in a child process whose descriptor limit is 256, connections are
/// opened until descriptors run out, so the proxy's `accept` fails with EMFILE.
/// It logs, backs off (a handful of failures a second, no spin), and serves again
/// once descriptors are freed.
#[tokio::test]
async fn t52_accept_errors_back_off_and_recover() -> TestResult {
    let exe = std::env::current_exe()?;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 256 && exec "$0" --exact conns::emfile_child --ignored --nocapture --test-threads 1"#)
            .arg(exe)
            .output()
    })
    .await??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "child ran no test:\n{text}");
    Ok(())
}

/// The body of [`t52_accept_errors_back_off_and_recover`]; needs a low descriptor
/// limit, so it only runs there.
#[tokio::test]
#[ignore = "run by t52_accept_errors_back_off_and_recover with `ulimit -n 256`"]
async fn emfile_child() -> TestResult {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .ok_or("no fd limit")?;
    assert!(
        soft <= 4096,
        "run with a low descriptor limit (ulimit -n 256)"
    );
    let log = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LogSink(sink.clone()))
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    // Open connections until this process has no descriptor left.
    let mut held = Vec::new();
    let mut exhausted = false;
    for _ in 0..1000 {
        match TcpStream::connect(addr).await {
            Ok(t) => held.push(t),
            Err(_) => {
                exhausted = true;
                break;
            }
        }
    }
    assert!(exhausted, "descriptors never ran out");
    let count = |log: &std::sync::Mutex<Vec<u8>>| {
        let text = String::from_utf8_lossy(&log.lock().map(|l| l.clone()).unwrap_or_default())
            .into_owned();
        text.matches("accept failed").count()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failures = count(&log);
    assert!(failures >= 1, "accept never failed");
    assert!(failures < 40, "{failures} accept failures in 2 s: spinning");
    held.truncate(held.len() / 2);
    support::eventually("served again once descriptors are free", || served(addr)).await;
    drop(held);
    proxy.shutdown().await;
    Ok(())
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut l) = self.0.lock() {
            l.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A burst of new connections waits in the listen backlog of
/// `ingress_proxy::server::listen` (the binary's listeners) until accepted,
/// rather than overflowing it: 300 connections to a listener that accepts none
/// all complete their handshakes (the standard library's backlog of 128 makes
/// the kernel drop the SYNs past it, and those clients wait a second to retry).
#[tokio::test]
async fn a_burst_of_connections_waits_in_the_listen_backlog() -> TestResult {
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map_or(4096, |s| s.trim().parse().unwrap_or(4096));
    // The kernel caps the backlog at somaxconn; stay under it.
    let burst = 300.min(somaxconn.saturating_sub(8));
    let listener = ingress_proxy::server::listen("127.0.0.1:0".parse()?)?;
    let addr = listener.local_addr()?;
    let held = tokio::task::spawn_blocking(move || {
        (0..burst)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    assert_eq!(held.len(), burst);
    // And they are there to accept, in order.
    for _ in 0..burst {
        tokio::time::timeout(Duration::from_secs(1), listener.accept()).await??;
    }
    Ok(())
}
