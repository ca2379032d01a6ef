//! T54: panic containment. A request whose handler panics (the test-only
//! `panic_on_path` hook) gets 500; the connection it came on and the proxy keep
//! serving. A panic while loading the configuration (the `panic_on_manifest` hook)
//! is reported and leaves the last good table serving.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::raw::*;
use crate::support::{self, TestResult};

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", "app.test")
        .body(Full::default())
        .expect("request")
}

#[tokio::test]
async fn t54_a_panicking_handler_answers_500_and_the_proxy_serves_on() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| c.panic_on_path = Some("/__panic".into())).await;
    let addr = proxy.http_addr().ok_or("no http")?;

    // HTTP/1.1: 500, then 200 on the same keep-alive connection.
    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let resp = send.send_request(get("/__panic")).await?;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    drop(http_body_util::BodyExt::collect(resp.into_body()).await?);
    send.ready().await?;
    let resp = send.send_request(get("/fine")).await?;
    assert_eq!(resp.status(), StatusCode::OK);

    // HTTP/2: 500 on one stream, 200 on the next, same connection.
    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    let h2get = |p: &str| {
        http::Request::get(format!("http://app.test{p}"))
            .body(Full::<Bytes>::default())
            .expect("request")
    };
    let resp = send.send_request(h2get("/__panic")).await?;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let resp = send.send_request(h2get("/fine")).await?;
    assert_eq!(resp.status(), StatusCode::OK);

    // A new connection, and the upstream never saw the panicking request.
    assert_eq!(h1_status(addr, "/fine").await, Some(200));
    assert!(up.seen().iter().all(|s| s.path != "/__panic"));
    let _ = support::DEADLINE;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn t54_a_panic_in_config_apply_keeps_the_last_good_table() -> TestResult {
    let up = canary().await;
    let (proxy, dir) = proxy_to(up.addr, |c| {
        c.panic_on_manifest = Some("PANIC".into());
    })
    .await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let version = proxy.live().load().version();
    assert!(version > 0);
    // The marker makes loading panic; the next manifest would also move the route.
    support::write(dir.path(), "PANIC", "");
    support::write(
        dir.path(),
        "app.yaml",
        &support::docs(&[
            support::CLASS.to_owned(),
            support::ingress("app", &[("moved.test", "/", "canary")], &[]),
            support::service("canary", &[up.addr]),
        ]),
    );
    let reloaded = proxy.reload().await;
    assert!(
        matches!(reloaded, Err(ingress_proxy::source::LoadError::Task(_))),
        "{reloaded:?}"
    );
    assert_eq!(proxy.live().load().version(), version);
    assert_eq!(h1_status(addr, "/still").await, Some(200));
    // Without the marker the same manifests load.
    std::fs::remove_file(dir.path().join("PANIC"))?;
    assert_eq!(proxy.reload().await?, version + 1);
    assert_eq!(h1_status(addr, "/gone").await, Some(404));
    proxy.shutdown().await;
    Ok(())
}
