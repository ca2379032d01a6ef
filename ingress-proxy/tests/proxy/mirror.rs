//! Mirroring: copies reach the mirror with the original method, target, headers and
//! (small) body; a dead or slow mirror changes nothing for the client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::*;

/// What the mirror received.
#[derive(Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A mirror upstream that reports every request on a channel, after `delay`.
async fn recorder(delay: Duration) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let _ = tx.send(Seen {
                            method: parts.method.to_string(),
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        });
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"mirror"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn folder(a: &Upstream, annotations: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with("app", annotations, &[("app.test", "/", "a")], &[]),
            service("a", &[a.addr]),
        ]),
    );
    dir
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the mirror is called in time")
        .expect("a copy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_gets_a_copy_with_method_target_headers_and_body() -> TestResult {
    let a = echo("a").await;
    let (mirror, mut rx) = recorder(Duration::ZERO).await;
    let target = format!("http://127.0.0.1:{}", mirror.port());
    let dir = folder(
        &a,
        &[("nginx.ingress.kubernetes.io/mirror-target", &target)],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    let req = Request::post("http://app.test/orders?id=1")
        .header("x-custom", "yes")
        .body(Full::new(Bytes::from_static(b"hello mirror")))?;
    let r = h1(http, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["server"],
        "a",
        "the client gets the upstream's answer"
    );
    assert_eq!(r.json()["body"], "hello mirror");
    let seen = next(&mut rx).await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/orders?id=1");
    assert_eq!(seen.headers["x-custom"], "yes");
    assert_eq!(seen.headers["host"], target.trim_start_matches("http://"));
    assert_eq!(seen.headers["x-forwarded-host"], "app.test");
    assert_eq!(
        seen.headers["x-request-id"].to_str()?,
        r.seen("x-request-id").expect("id")
    );
    assert_eq!(seen.body, Bytes::from_static(b"hello mirror"));

    // HTTP/2 clients, whose bodies have no declared length, are copied too.
    let req =
        Request::put("http://app.test/h2").body(Full::new(Bytes::from_static(b"streamed")))?;
    let r = h2(http, req).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = next(&mut rx).await;
    assert_eq!((seen.method.as_str(), seen.uri.as_str()), ("PUT", "/h2"));
    assert_eq!(seen.body, Bytes::from_static(b"streamed"));

    // A body over the bound is not copied at all; the request itself is served.
    let big = Bytes::from(vec![b'x'; 100 * 1024]);
    let r = h1(
        http,
        Request::post("http://app.test/big").body(Full::new(big.clone()))?,
    )
    .await;
    assert_eq!(r.json()["body_len"], big.len());
    let r = h1(http, get("app.test", "/after").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = next(&mut rx).await;
    assert_eq!(seen.uri, "/after", "the big request was not copied");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_host_path_variables_and_no_body() -> TestResult {
    let a = echo("a").await;
    let (mirror, mut rx) = recorder(Duration::ZERO).await;
    let target = format!("http://127.0.0.1:{}/shadow$request_uri", mirror.port());
    let dir = folder(
        &a,
        &[
            ("nginx.ingress.kubernetes.io/mirror-target", &target),
            ("nginx.ingress.kubernetes.io/mirror-host", "shadow.test"),
            ("nginx.ingress.kubernetes.io/mirror-request-body", "off"),
        ],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let req = Request::post("http://app.test/orders?id=2")
        .body(Full::new(Bytes::from_static(b"secret")))?;
    let r = h1(p.http_addr().expect("http"), req).await;
    assert_eq!(r.json()["body"], "secret");
    let seen = next(&mut rx).await;
    assert_eq!(seen.uri, "/shadow/orders?id=2");
    assert_eq!(seen.headers["host"], "shadow.test");
    assert!(seen.body.is_empty());
    assert!(!seen.headers.contains_key("content-length") || seen.headers["content-length"] == "0");
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_slow_mirror_does_not_affect_the_client() -> TestResult {
    let a = echo("a").await;
    let dead = closed_port().await;
    let (slow, mut rx) = recorder(Duration::from_secs(30)).await;
    for target in [
        format!("http://127.0.0.1:{dead}"),
        format!("http://127.0.0.1:{}", slow.port()),
    ] {
        let dir = folder(
            &a,
            &[("nginx.ingress.kubernetes.io/mirror-target", &target)],
        );
        let p = proxy(dir.path(), |_| {}).await;
        let http = p.http_addr().expect("http");
        for i in 0..5 {
            let started = Instant::now();
            let req = Request::post(format!("http://app.test/n/{i}"))
                .body(Full::new(Bytes::from_static(b"payload")))?;
            let r = h1(http, req).await;
            assert_eq!(r.status, StatusCode::OK, "{target}: {}", r.text());
            assert_eq!(r.json()["body"], "payload");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{target}: the mirror delayed the request"
            );
        }
        p.shutdown().await;
    }
    // The slow mirror did receive its copies.
    assert_eq!(next(&mut rx).await.uri, "/n/0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_target_service_and_percentage() -> TestResult {
    let a = echo("a").await;
    let (mirror, mut rx) = recorder(Duration::ZERO).await;
    let dir = tempfile::tempdir()?;
    let app = |annotations: &[(&str, &str)]| {
        docs(&[
            CLASS.to_owned(),
            ingress_with("app", annotations, &[("app.test", "/", "a")], &[]),
            // The shadow Service serves a route of its own, so the table has it.
            ingress("shadow", &[("shadow.test", "/", "shadow")], &[]),
            service("a", &[a.addr]),
            service("shadow", &[mirror]),
        ])
    };
    write(
        dir.path(),
        "app.yaml",
        &app(&[(
            "nginx.ingress.kubernetes.io/mirror-target-service",
            "shadow",
        )]),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    let r = h1(http, get("app.test", "/svc?x=1").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = next(&mut rx).await;
    assert_eq!(seen.uri, "/svc?x=1");
    assert_eq!(
        seen.headers["host"], "app.test",
        "Service targets keep the Host"
    );

    // mirror-percentage 0: nothing is copied.
    write(
        dir.path(),
        "app.yaml",
        &app(&[
            (
                "nginx.ingress.kubernetes.io/mirror-target-service",
                "shadow",
            ),
            ("higress.io/mirror-percentage", "0"),
        ]),
    );
    p.reload().await?;
    for _ in 0..5 {
        let r = h1(http, get("app.test", "/sampled-out").body(empty())?).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = h1(http, get("shadow.test", "/direct").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(next(&mut rx).await.uri, "/direct", "no copy before it");
    p.shutdown().await;
    Ok(())
}
