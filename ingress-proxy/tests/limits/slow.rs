//! Section H, slow clients: slowloris (T50), slow body and slow read (T51), with
//! the timeouts shrunk to a second. Full size (hardening.md): 4000 slowloris
//! connections from slowhttptest with oha alongside, 1000 slow readers of 10 MiB.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::raw::*;
use crate::support::TestResult;

/// T50: 200 connections each sending one header line every 300 ms are closed
/// within the header read timeout (1 s here, 30 s by default) plus slack, while
/// a benign client keeps getting 200, and none of them reaches the upstream.
#[tokio::test]
async fn t50_slowloris_connections_are_closed_at_the_header_timeout() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..200 {
        slow.push(tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return None;
            };
            let _ = tcp
                .write_all(b"GET /slowloris HTTP/1.1\r\nhost: app.test\r\n")
                .await;
            let opened = Instant::now();
            for n in 0..30 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let line = format!("x-slow-{i}-{n}: 1\r\n");
                if tcp.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            // Written until refused (or 9 s); now wait for the close.
            closed_within(&mut tcp, Duration::from_secs(5))
                .await
                .then(|| opened.elapsed())
        }));
    }
    // A benign client meanwhile.
    for _ in 0..10 {
        assert_eq!(h1_status(addr, "/benign").await, Some(200));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in slow {
        let lived = s.await?.ok_or("a slowloris connection was never closed")?;
        assert!(lived < Duration::from_secs(4), "closed after {lived:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(up.seen().iter().all(|s| s.path != "/slowloris"));
    proxy.shutdown().await;
    Ok(())
}

/// T51, slow body (R-U-Dead-Yet): a body that stops arriving gets 408 after the
/// body idle timeout (1 s here, 60 s by default) and the connection is closed; the
/// upstream never gets a complete request.
#[tokio::test]
async fn t51_stalled_request_body_gets_408_and_close() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| {
        c.limits.body_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(
        b"POST /upload HTTP/1.1\r\nhost: app.test\r\ncontent-length: 1000\r\n\r\n0123456789",
    )
    .await?;
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            match tokio::io::AsyncReadExt::read(&mut tcp, &mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await?;
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    crate::support::eventually("the upstream saw the aborted upload", || {
        let seen = up.seen();
        async move { seen.iter().any(|s| s.path == "/upload") }
    })
    .await;
    for s in up.seen().iter().filter(|s| s.path == "/upload") {
        assert!(
            s.body.is_err(),
            "the upstream got a complete request: {s:?}"
        );
    }
    proxy.shutdown().await;
    Ok(())
}

/// T51, slow read: a client that asks for 256 MiB and reads nothing is cut off
/// after the send timeout (1 s here, 60 s by default). What the upstream produced
/// meanwhile is bounded by the socket buffers on the way (under 32 MiB), not the
/// response size, and the upstream body is released. What the proxy itself holds
/// of the response meanwhile (the `response_bytes_queued` gauge, sampled every
/// 2 ms) stays within its send limit: 4 KiB plus one upstream read of at most
/// 8 KiB (hyper alone would queue 64 KiB plus a 32 KiB read), is not zero while
/// the client stalls, and is back to zero once the connection is cut.
#[tokio::test]
async fn t51_client_that_does_not_read_is_cut_off() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| {
        c.limits.send_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut tcp = socket.connect(addr).await?;
    let metrics = proxy.metrics().clone();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let mut most = 0;
            while sampling.load(Ordering::Relaxed) {
                most = most.max(metrics.response_bytes_queued());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        }
    });
    tcp.write_all(b"GET /big?mb=256 HTTP/1.1\r\nhost: app.test\r\n\r\n")
        .await?;
    crate::support::eventually("the upstream body released", || {
        let dropped = up.dropped.load(Ordering::Relaxed);
        async move { dropped == 1 }
    })
    .await;
    sampling.store(false, Ordering::Relaxed);
    let most_queued = sampler.await?;
    assert!(
        most_queued > 0 && most_queued < 12 * 1024,
        "the proxy held up to {most_queued} bytes of the response for the client"
    );
    let metrics = proxy.metrics().clone();
    crate::support::eventually("nothing queued once the connection is cut", || {
        let queued = metrics.response_bytes_queued();
        async move { queued == 0 }
    })
    .await;
    let produced = up.produced.load(Ordering::Relaxed);
    assert!(produced < 32 * 1024 * 1024, "produced {produced} bytes");
    // What the client can still read ends well short of the body.
    let mut total = 0usize;
    let mut chunk = vec![0u8; 65536];
    let drain = async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut tcp, &mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drain).await?;
    assert!(total < 256 * 1024 * 1024, "the whole body arrived");
    proxy.shutdown().await;
    Ok(())
}
