//! The fake API server's scripted faults, checked on the wire: a TCP reset, a
//! status with `Retry-After`, `410 Gone` on a list.

use std::time::Duration;

use ingress_kube::testing::FakeApiServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Send one GET for `target` on a fresh connection; return the connection and
/// what it read until the head (and, for a complete answer, the body) arrived.
async fn get(server: &FakeApiServer, target: &str) -> Result<(TcpStream, String), std::io::Error> {
    let mut tcp = TcpStream::connect(server.addr()).await?;
    tcp.write_all(format!("GET {target} HTTP/1.1\r\nHost: api\r\n\r\n").as_bytes())
        .await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok((tcp, String::from_utf8_lossy(&got).into_owned()))
}

#[tokio::test]
async fn reset_connections_cuts_a_watch_with_a_tcp_reset() -> TestResult {
    let server = FakeApiServer::start().await?;
    let (mut watch, head) = get(&server, "/api/v1/services?watch=true&resourceVersion=0").await?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(server.reset_connections() >= 1);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), watch.read(&mut buf)).await?;
    match read {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("a clean end of stream ({n} bytes), not a reset"),
    }
    // The server still answers new connections.
    let (_, head) = get(&server, "/api/v1/services").await?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(())
}

#[tokio::test]
async fn failing_requests_answer_the_chosen_status_and_retry_after() -> TestResult {
    let server = FakeApiServer::start().await?;
    server.fail_lists("services", true);
    let (_, head) = get(&server, "/api/v1/services").await?;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("retry-after"), "{head}");
    server.fail_with(429, Some(1));
    let (_, head) = get(&server, "/api/v1/services").await?;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{head}"
    );
    server.fail_watches(true);
    server.fail_with(500, None);
    let (_, head) = get(&server, "/api/v1/services?watch=true").await?;
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    Ok(())
}

#[tokio::test]
async fn expired_lists_answer_410_then_serve() -> TestResult {
    let server = FakeApiServer::start().await?;
    server.expire_lists("services", 2);
    for _ in 0..2 {
        let (_, head) = get(&server, "/api/v1/services").await?;
        assert!(head.starts_with("HTTP/1.1 410"), "{head}");
    }
    assert_eq!(server.expiring_lists("services"), 0);
    let (_, head) = get(&server, "/api/v1/services").await?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Other kinds were not touched.
    server.expire_lists("secrets", 1);
    let (_, head) = get(&server, "/api/v1/services").await?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(())
}
