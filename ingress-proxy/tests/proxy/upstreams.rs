//! The upstream side: pooled keep-alive connections, streamed bodies, and tunnels
//! at shutdown.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_kept_alive() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    for _ in 0..6 {
        // A new client connection each time: only the upstream side is pooled.
        let r = h1(
            p.http_addr().expect("http"),
            get("app.test", "/").body(empty())?,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // Six sequential requests to `a`, all on one kept-alive connection.
    let conns = a.conns.load(Ordering::SeqCst);
    assert_eq!(conns, 1, "6 requests opened {conns} upstream connections");
    assert_eq!(b.conns.load(Ordering::SeqCst), 0);
    p.shutdown().await;
    Ok(())
}

/// A response body fed by a channel.
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
async fn response_bodies_stream_without_buffering() -> TestResult {
    // An upstream that sends "first", then waits for the test before "second".
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    let release: Arc<Mutex<Option<oneshot::Receiver<()>>>> = Arc::default();
    let (go, wait) = oneshot::channel();
    *release.lock().map_err(|_| "lock")? = Some(wait);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let release = release.clone();
            let svc = service_fn(move |_req| {
                let wait = release.lock().ok().and_then(|mut r| r.take());
                async move {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let _ = tx.send(Bytes::from_static(b"first"));
                    tokio::spawn(async move {
                        if let Some(wait) = wait {
                            let _ = wait.await;
                        }
                        let _ = tx.send(Bytes::from_static(b"second"));
                    });
                    Ok::<_, Infallible>(Response::new(Chan(rx)))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "stream.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("stream", &[("stream.test", "/", "s")], &[]),
            service("s", &[upstream]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let io = TokioIo::new(tokio::net::TcpStream::connect(p.http_addr().expect("http")).await?);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let req = origin_form(get("stream.test", "/events").body(empty())?);
    let resp = send.send_request(req).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(DEADLINE, body.frame())
        .await
        .expect("the first chunk arrives while the upstream is still sending")
        .ok_or("body ended")??;
    assert_eq!(first.into_data().ok().as_deref(), Some(&b"first"[..]));
    let _ = go.send(());
    let rest = tokio::time::timeout(DEADLINE, body.collect())
        .await??
        .to_bytes();
    assert_eq!(&rest[..], b"second");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_tunnels_run_for_the_grace_period_then_cuts_them() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |c| {
        c.shutdown_grace = std::time::Duration::from_secs(3)
    })
    .await;
    let mut io = TokioIo::new(upgrade(p.http_addr().expect("http")).await);
    assert_eq!(round_trip(&mut io, b"before").await, b"before");
    assert_eq!(p.service().open_tunnels(), 1);
    let m = admin(&p, "/metrics").await.text();
    assert_eq!(metric(&m, "ingress_proxy_open_tunnels"), Some(1.0), "{m}");
    let started = std::time::Instant::now();
    let shutdown = tokio::spawn(p.shutdown());
    // The listener closes at once, but the tunnel keeps working during the grace.
    assert_eq!(round_trip(&mut io, b"during").await, b"during");
    tokio::time::timeout(DEADLINE, shutdown).await??;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "waited for the tunnel"
    );
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(DEADLINE, io.read(&mut buf)).await?;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the tunnel was cut: {read:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connect_moves_a_request_without_body_to_the_next_endpoint() -> TestResult {
    let a = echo("a").await;
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], closed_port().await));
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "half.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("half", &[("half.test", "/", "half")], &[]),
            service("half", &[a.addr, closed]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    for _ in 0..4 {
        let r = h1(addr, get("half.test", "/").body(empty())?).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["server"], "a");
    }
    // A request with a body moves on too: a refused connect never read its body,
    // which goes whole to the next endpoint (hardening T36).
    for _ in 0..2 {
        let req = http::Request::post("http://half.test/")
            .body(http_body_util::Full::new(Bytes::from_static(b"payload")))?;
        let r = h1(addr, req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["body"], "payload");
    }
    let m = admin(&p, "/metrics").await.text();
    let sample = format!("ingress_proxy_upstream_connect_errors_total{{upstream=\"{closed}\"}}");
    assert!(metric(&m, &sample).unwrap_or(0.0) >= 3.0, "{m}");
    p.shutdown().await;
    Ok(())
}

/// An upgraded upstream connection belongs to its tunnel: it never goes back to
/// the pool, so a plain request while the tunnel is open (and after a request
/// on a kept-alive connection) uses another connection, and the tunnel still
/// carries its own bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_is_not_pooled() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let r = h1(addr, get("app.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut tunnel = TokioIo::new(upgrade(addr).await);
    assert_eq!(round_trip(&mut tunnel, b"ping").await, b"ping");
    for _ in 0..3 {
        let r = h1(addr, get("app.test", "/").body(empty())?).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(round_trip(&mut tunnel, b"pong").await, b"pong");
    // The first connection served the upgrade (taken from the pool), the
    // plain requests after it one new connection.
    let conns = a.conns.load(Ordering::SeqCst);
    assert_eq!(conns, 2, "{conns} upstream connections");
    p.shutdown().await;
    Ok(())
}

/// The HTTP/1.1 upstream buffer is bounded (`pool::UPSTREAM_MAX_BUF`, 32 KiB): a
/// response head within it is forwarded whole, a much longer one answers 502
/// (nginx's "upstream sent too big header", with a 4-8 KiB `proxy_buffer_size`),
/// and the proxy serves on. (hyper checks the bound when a head is still
/// incomplete after a read, so a head of up to about twice the bound can pass
/// when it arrives in one read; 80 KB never does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_response_heads_are_bounded_at_32_kib() -> TestResult {
    use tokio::io::AsyncWriteExt;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                // One request per connection: read its head, answer with an
                // `x-big` field as long as the path asks, then close.
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let n: usize = text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.trim_start_matches('/').parse().ok())
                    .unwrap_or(0);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    "a".repeat(n)
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "big.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("big", &[("big.test", "/", "s")], &[]),
            service("s", &[upstream]),
        ]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let within = h1(addr, get("big.test", "/24000").body(empty())?).await;
    assert_eq!(within.status, StatusCode::OK);
    assert_eq!(within.headers["x-big"].len(), 24_000);
    assert_eq!(&within.body[..], b"ok");
    let beyond = h1(addr, get("big.test", "/80000").body(empty())?).await;
    assert_eq!(beyond.status, StatusCode::BAD_GATEWAY);
    assert!(beyond.headers.get("x-big").is_none());
    let again = h1(addr, get("big.test", "/10").body(empty())?).await;
    assert_eq!(again.status, StatusCode::OK);
    p.shutdown().await;
    Ok(())
}
