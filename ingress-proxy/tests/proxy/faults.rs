//! Upstream faults: the hardening checklist's section F (T36-T41), on loopback,
//! against misbehaving raw-socket upstreams written for these tests. Durations
//! are scaled down; each test's doc comment gives the checklist's full-size figures.
//! T39's missing response head is `governance::proxy_read_timeout_answers_504`,
//! T41's deaf upstream `governance::proxy_send_timeout_answers_504_when_the_upstream_stops_reading`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use ingress_core::lb::outlier::OutlierConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// What a raw upstream saw.
#[derive(Debug, Default)]
struct Log {
    /// Connections accepted.
    conns: AtomicUsize,
    /// Request heads read, as `METHOD /path`.
    requests: Mutex<Vec<String>>,
    /// Request body bytes read (T41).
    body_bytes: AtomicUsize,
    /// Set when the proxy closed a connection under the upstream (EOF or a
    /// failed write).
    peer_closed: AtomicBool,
}

impl Log {
    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A raw HTTP/1.1 upstream: `serve` runs once per accepted connection.
struct Raw {
    addr: SocketAddr,
    log: Arc<Log>,
}

async fn raw<F, Fut>(serve: F) -> Raw
where
    F: Fn(TcpStream, Arc<Log>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Log::default());
    let shared = log.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            shared.conns.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp, shared.clone()));
        }
    });
    Raw { addr, log }
}

/// Read one request head (no body is read); `None` on EOF or error. Logs it.
async fn read_head(tcp: &mut TcpStream, log: &Log) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => {
                if head.is_empty() {
                    log.peer_closed.store(true, Ordering::SeqCst);
                }
                return None;
            }
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line: String = text.split(' ').take(2).collect::<Vec<_>>().join(" ");
    if let Ok(mut r) = log.requests.lock() {
        r.push(line);
    }
    Some(text)
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Reset (SO_LINGER 0, then close: RST) once the request head has been read.
async fn reset(tcp: TcpStream) {
    let _ = tcp.set_zero_linger();
    drop(tcp);
}

/// A Service `name` over `addrs`, and Ingress `name` routing host `<name>.test`
/// to it, with nginx annotations.
fn route_to(name: &str, addrs: &[SocketAddr], annotations: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys: Vec<(String, &str)> = annotations
        .iter()
        .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), *v))
        .collect();
    let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let host = format!("{name}.test");
    write(
        dir.path(),
        "route.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(name, &keys, &[(&host, "/", name)], &[]),
            service(name, addrs),
        ]),
    );
    dir
}

async fn send(addr: SocketAddr, method: &str, host: &str, body: &'static [u8]) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{host}/"))
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    h1(addr, req).await
}

/// T36, connection refused: requests move on to an endpoint that is up, GET and
/// POST alike (a refused connect sent nothing, so even a POST with a body is
/// safe to send elsewhere: its untouched body goes with it); with every
/// endpoint closed, 502 at once after `proxy-next-upstream-tries` connects, no
/// hot loop; 503 when the Service has no endpoints. Full size: 1000 GETs and
/// 100 POSTs; here 6 and 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t36_refused_connects_move_on_and_all_closed_answers_502_at_once() -> TestResult {
    let good = echo("good").await;
    let closed = SocketAddr::from(([127, 0, 0, 1], closed_port().await));
    let dir = route_to("half", &[closed, good.addr], &[]);
    let p = proxy(dir.path(), |c| c.service.outlier = OutlierConfig::OFF).await;
    let addr = p.http_addr().expect("http");
    for _ in 0..6 {
        let r = send(addr, "GET", "half.test", b"").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    for body in [&b""[..], b"order=1", b"", b"order=2"] {
        let r = send(addr, "POST", "half.test", body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["body_len"], body.len(), "the body went whole");
    }
    assert_eq!(good.hits.load(Ordering::SeqCst), 10, "each request once");
    p.shutdown().await;

    let mut dead = Vec::new();
    for _ in 0..5 {
        dead.push(SocketAddr::from(([127, 0, 0, 1], closed_port().await)));
    }
    let dir = route_to("dead", &dead, &[]);
    // And a Service with no endpoints at all.
    write(
        dir.path(),
        "none.yaml",
        &docs(&[
            ingress("none", &[("none.test", "/", "none")], &[]),
            service("none", &[]),
        ]),
    );
    let p = proxy(dir.path(), |c| c.service.outlier = OutlierConfig::OFF).await;
    let addr = p.http_addr().expect("http");
    let start = Instant::now();
    let r = send(addr, "GET", "dead.test", b"").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let m = admin(&p, "/metrics").await.text();
    let connects: f64 = m
        .lines()
        .filter(|l| l.starts_with("ingress_proxy_upstream_connect_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(connects, 3.0, "the default three tries, then 502: {m}");
    let r = send(addr, "GET", "none.test", b"").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("no-endpoints"), "{}", r.text());
    p.shutdown().await;
    Ok(())
}

/// T37, reset before the response head: idempotent requests are retried on the
/// other endpoint; a POST that was sent is not (502), and the other endpoint
/// never sees it twice. Full size as here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t37_a_reset_before_the_head_retries_get_but_not_a_sent_post() -> TestResult {
    let rst = raw(|mut tcp, log| async move {
        if read_head(&mut tcp, &log).await.is_some() {
            reset(tcp).await;
        }
    })
    .await;
    let good = echo("good").await;
    let dir = route_to("rst", &[rst.addr, good.addr], &[]);
    let p = proxy(dir.path(), |c| c.service.outlier = OutlierConfig::OFF).await;
    let addr = p.http_addr().expect("http");
    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        for _ in 0..2 {
            let r = send(addr, method, "rst.test", b"").await;
            assert_eq!(r.status, StatusCode::OK, "{method}: {}", r.text());
        }
    }
    // Round robin sent some there, and each of those was retried.
    let reset = rst.log.requests().len();
    assert!(reset > 0);
    let m = admin(&p, "/metrics").await.text();
    let retried = format!(
        "ingress_proxy_upstream_retries_total{{upstream=\"{}\"}}",
        rst.addr
    );
    assert_eq!(metric(&m, &retried), Some(reset as f64), "{m}");
    let before = good.hits.load(Ordering::SeqCst);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(send(addr, "POST", "rst.test", b"").await.status);
    }
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_GATEWAY]);
    let posts = rst
        .log
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1);
    assert_eq!(
        good.hits.load(Ordering::SeqCst) - before,
        1,
        "no duplicate POST"
    );
    p.shutdown().await;
    Ok(())
}

/// An upstream that sends the head and half the body of `/cut-cl`
/// (Content-Length) or `/cut-chunked` (one chunk of a chunked body), then resets;
/// other paths get a whole `ok`.
async fn cutter() -> Raw {
    raw(|mut tcp, log| async move {
        while let Some(head) = read_head(&mut tcp, &log).await {
            let part: &[u8] = if head.starts_with("GET /cut-cl ") {
                b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nhalf of it"
            } else if head.starts_with("GET /cut-chunked ") {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nhalf of it\r\n"
            } else {
                if tcp.write_all(OK).await.is_err() {
                    return;
                }
                continue;
            };
            let _ = tcp.write_all(part).await;
            let _ = tcp.flush().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            reset(tcp).await;
            return;
        }
    })
    .await
}

/// The response's status and whether its body ended with an error.
async fn body_fails(resp: http::Response<hyper::body::Incoming>) -> (StatusCode, bool) {
    let status = resp.status();
    let body = tokio::time::timeout(DEADLINE, resp.into_body().collect()).await;
    (status, !matches!(body, Ok(Ok(_))))
}

/// T38, reset mid-response: not retried (bytes went to the client); the client
/// sees an error, never a complete message (HTTP/1.1: the connection closes
/// short of Content-Length or of the last chunk; HTTP/2: the stream is reset);
/// the dead upstream connection is not pooled. Full size as here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t38_a_reset_mid_response_is_an_error_for_the_client_and_not_retried() -> TestResult {
    let cut = cutter().await;
    let dir = route_to("cut", &[cut.addr], &[]);
    let p = proxy(dir.path(), |c| c.service.outlier = OutlierConfig::OFF).await;
    let addr = p.http_addr().expect("http");
    for path in ["/cut-cl", "/cut-chunked"] {
        let io = TokioIo::new(TcpStream::connect(addr).await?);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "cut.test")
            .body(empty())?;
        let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
        assert_eq!(body_fails(resp).await, (StatusCode::OK, true), "{path}");
    }
    // HTTP/2 client: the stream is reset, the connection lives on.
    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    for path in ["/cut-cl", "/cut-chunked"] {
        let req = Request::get(format!("http://cut.test{path}")).body(empty())?;
        let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
        assert_eq!(body_fails(resp).await, (StatusCode::OK, true), "h2 {path}");
    }
    let req = Request::get("http://cut.test/ok").body(empty())?;
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
    assert_eq!(resp.status(), StatusCode::OK, "same h2 connection");
    assert_eq!(resp.into_body().collect().await?.to_bytes(), "ok");
    // One try each (no retry after response bytes), and the request after the
    // resets went on a new upstream connection, not a dead pooled one.
    let seen = cut.log.requests();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(cut.log.conns.load(Ordering::SeqCst), 5);
    p.shutdown().await;
    Ok(())
}

/// An upstream that answers with `len` bytes of body, one byte every `every`.
async fn trickler(every: Duration, len: usize) -> Raw {
    raw(move |mut tcp, log| async move {
        if read_head(&mut tcp, &log).await.is_none() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
        let mut ok = tcp.write_all(head.as_bytes()).await.is_ok();
        for _ in 0..len {
            if !ok {
                break;
            }
            tokio::time::sleep(every).await;
            ok = tcp.write_all(b"x").await.is_ok();
        }
        // Wait for the proxy to close (a read of 0) or fail the write.
        let mut rest = [0u8; 64];
        loop {
            match tcp.read(&mut rest).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        log.peer_closed.store(true, Ordering::SeqCst);
    })
    .await
}

/// T39, slow upstream: a body trickling faster than `proxy-read-timeout` (an
/// idle timeout between two reads, as nginx's) is passed through whole; one
/// slower than it is cut when the timeout fires, and the upstream connection is
/// closed; other routes keep serving meanwhile. (A missing response head gets
/// 504: `governance::proxy_read_timeout_answers_504`.) Full size: 1 byte/s with
/// a 1 s read timeout; here 1 byte per 50 ms (whole) and per 800 ms (cut) with 300 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t39_a_trickling_body_is_cut_when_the_read_timeout_fires() -> TestResult {
    let fast = trickler(Duration::from_millis(50), 6).await;
    let slow = trickler(Duration::from_millis(800), 6).await;
    let other = echo("other").await;
    let dir = tempfile::tempdir()?;
    let timeout = [("nginx.ingress.kubernetes.io/proxy-read-timeout", "300ms")];
    write(
        dir.path(),
        "trickle.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with("fast", &timeout, &[("fast.test", "/", "fast")], &[]),
            ingress_with("slow", &timeout, &[("slow.test", "/", "slow")], &[]),
            ingress("other", &[("other.test", "/", "other")], &[]),
            service("fast", &[fast.addr]),
            service("slow", &[slow.addr]),
            service("other", &[other.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let r = h1(addr, get("fast.test", "/").body(empty())?).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "xxxxxx"));

    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "slow.test")
        .body(empty())?;
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await??;
    let start = Instant::now();
    let cut = tokio::spawn(body_fails(resp));
    // Meanwhile another route answers at once.
    let quick = Instant::now();
    let r = h1(addr, get("other.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        quick.elapsed() < Duration::from_millis(500),
        "{:?}",
        quick.elapsed()
    );
    assert_eq!(cut.await?, (StatusCode::OK, true), "cut, not complete");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    eventually("the upstream connection is closed", || async {
        slow.log.peer_closed.load(Ordering::SeqCst)
    })
    .await;
    p.shutdown().await;
    Ok(())
}

/// An upstream that answers the first request of each connection with
/// keep-alive and closes the connection (FIN) after `idle` without a request,
/// or at once when `idle` is zero and a second request arrives (that request is
/// read, never answered: the close crossed it).
async fn closer(idle: Duration) -> Raw {
    raw(move |mut tcp, log| async move {
        let mut served = 0;
        loop {
            let head = if idle.is_zero() {
                read_head(&mut tcp, &log).await
            } else {
                match tokio::time::timeout(idle, read_head(&mut tcp, &log)).await {
                    Ok(h) => h,
                    Err(_) => return,
                }
            };
            if head.is_none() || (idle.is_zero() && served == 1) {
                return;
            }
            if tcp.write_all(OK).await.is_err() {
                return;
            }
            served += 1;
        }
    })
    .await
}

/// T40, stale pooled connections: a request that lands on a pooled connection
/// the upstream has just closed is tried again on a new connection, even to the
/// same (only) endpoint, as nginx does for a failed cached connection; the
/// client sees no error. Deterministic case first (the upstream closes every
/// connection when its second request arrives), then the timed one. Full size:
/// the upstream closes after 0.5 s idle and a GET comes every 0.5 s ± jitter for
/// 60 s; here 100 ms, every 100 ms ± 20 ms, 12 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_a_request_on_a_just_closed_pooled_connection_is_tried_again() -> TestResult {
    let eager = closer(Duration::ZERO).await;
    let idle = closer(Duration::from_millis(100)).await;
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "stale.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("eager", &[("eager.test", "/", "eager")], &[]),
            ingress("idle", &[("idle.test", "/", "idle")], &[]),
            service("eager", &[eager.addr]),
            service("idle", &[idle.addr]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    for i in 0..6 {
        let r = h1(addr, get("eager.test", "/").body(empty())?).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
    }
    // Every second request met a closed connection and went on a new one.
    assert_eq!(eager.log.requests().len(), 11);
    assert_eq!(eager.log.conns.load(Ordering::SeqCst), 6);
    for i in 0..12u64 {
        let r = h1(addr, get("idle.test", "/").body(empty())?).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(80 + (i * 7) % 41)).await;
    }
    p.shutdown().await;
    Ok(())
}

/// A request body of `total` bytes made on the fly, counting what was taken.
struct Counted {
    left: usize,
    taken: Arc<AtomicUsize>,
}

static CHUNK: [u8; 64 * 1024] = [b'u'; 64 * 1024];

impl Body for Counted {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len());
        self.left -= n;
        self.taken.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left as u64)
    }
}

/// T41, slow request body: the upload streams with backpressure (the proxy holds
/// no more than its buffers: what the client got to send stays far below the
/// body's size while the upstream reads slowly), and when the upstream stops
/// reading the upload is cut after `proxy-send-timeout`. Full size: 50 MiB at
/// 100 KiB/s, RSS growth under 2 MiB; here 256 MiB, the upstream reading
/// 64 KiB every 100 ms for 0.5 s, then nothing, with a 1 s send timeout. RSS is
/// not measured (the test binary runs other tests in the same process); the
/// bytes the client got to send are the measure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t41_a_slow_reader_gets_the_upload_with_backpressure_then_it_is_cut() -> TestResult {
    let slow = raw(|mut tcp, log| async move {
        if read_head(&mut tcp, &log).await.is_none() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..5 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => log.body_bytes.fetch_add(n, Ordering::SeqCst),
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Stop reading; hold the connection until the proxy gives up.
        let _ = tokio::time::timeout(Duration::from_secs(20), tcp.writable()).await;
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    let dir = route_to(
        "up",
        &[slow.addr],
        &[("proxy-send-timeout", "1"), ("proxy-body-size", "0")],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let io = TokioIo::new(TcpStream::connect(p.http_addr().expect("http")).await?);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let total = 256 << 20;
    let taken = Arc::new(AtomicUsize::new(0));
    let req = Request::post("/up")
        .header("host", "up.test")
        .body(Counted {
            left: total,
            taken: taken.clone(),
        })?;
    let start = Instant::now();
    let resp = tokio::time::timeout(DEADLINE, sender.send_request(req)).await?;
    let sent = taken.load(Ordering::SeqCst);
    assert!(
        sent < total / 4,
        "the client got {sent} of {total} bytes out to an upstream that read {}",
        slow.log.body_bytes.load(Ordering::SeqCst)
    );
    // Cut after the send timeout: 504 (or the connection closed under it).
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    p.shutdown().await;
    Ok(())
}
