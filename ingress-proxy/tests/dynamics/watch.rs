//! T45: API-server disconnects, 410 Gone and an outage, in `--kube` mode against the
//! fake API server (the real kube-rs client and watchers over loopback).

use std::time::Duration;

use http::{Method, StatusCode};
use ingress_core::CompileOptions;
use ingress_kube::testing::FakeApiServer;
use ingress_kube::{KubeOptions, KubeSource};
use ingress_proxy::source::feed_kube;

use crate::load::{Load, Via};
use crate::support::*;

const PLURALS: [&str; 6] = [
    "ingresses",
    "ingressclasses",
    "services",
    "endpointslices",
    "secrets",
    "ingressgatewayconfigs",
];

async fn status(addr: std::net::SocketAddr, host: &str) -> StatusCode {
    h1(addr, get(host, "/").body(empty()).expect("request"))
        .await
        .status
}

/// T45 (scaled): while HTTP/1.1 and HTTP/2 clients loop GETs on a.example.com, the
/// fake API server closes every watch stream, then forgets its history behind a
/// change the watchers missed (their next watches get `410 Gone`; they must re-list), then goes down for 3 s
/// (every list and watch answers 503) while an Ingress is deleted and another added
/// behind it. Expected: each change made after a fault is served; during the
/// outage the last good table keeps serving (the deleted host too) and the proxy
/// stays ready; the watchers back off (at most 15 lists and watches of Ingresses
/// in the 3 s, where a loop without backoff makes hundreds; 9 measured);
/// after it the table converges to exactly the server's objects (the deletion made
/// during the gap included); no GET fails. Full size (the checklist): a 120 s
/// outage. Not scripted: a TCP RST mid-watch (the fake server closes streams
/// cleanly; kube-rs takes both through the same error-and-retry path), 500/429 with
/// Retry-After (the outage answers 503), a 410 on the list call itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t45_api_server_disconnects_keep_the_last_good_table_and_converge() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let api = FakeApiServer::start().await?;
    api.apply(kube_class());
    for o in kube_backend("web", a.addr)
        .into_iter()
        .chain(kube_backend("other", b.addr))
    {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    api.apply(kube_ingress("other", "b.example.com", "other"));
    let p = proxy(std::path::Path::new(""), |c| c.watch = false).await;
    let source = KubeSource::start(
        api.client()?,
        KubeOptions::new(CompileOptions::default()).debounce(Duration::from_millis(20)),
    )
    .await?;
    let _feed = feed_kube(
        source.subscribe(),
        p.live().clone(),
        p.metrics().clone(),
        p.service().options().clone(),
    );
    let addr = p.http_addr().expect("http");
    eventually("a.example.com served", || async {
        status(addr, "a.example.com").await == StatusCode::OK
    })
    .await;
    let pace = Duration::from_millis(5);
    let h1_load = Load::start(Via::H1(addr), "a.example.com", Method::GET, "k1", 2, pace);
    let h2_load = Load::start(Via::H2(addr), "a.example.com", Method::GET, "k2", 1, pace);

    // Watch streams closed: the watchers re-watch and see the next change.
    api.drop_watches();
    api.apply(kube_ingress("c1", "c1.example.com", "web"));
    eventually("c1 served after the watches closed", || async {
        status(addr, "c1.example.com").await == StatusCode::OK
    })
    .await;

    // History forgotten while the watchers are away (a change they did not see,
    // then compaction): their next watches get 410 Gone and they must re-list.
    let lists = api.list_count("ingresses");
    api.fail_watches(true);
    api.apply(kube_ingress("c2", "c2.example.com", "web"));
    api.compact();
    api.fail_watches(false);
    eventually("c2 served after 410 Gone", || async {
        status(addr, "c2.example.com").await == StatusCode::OK
    })
    .await;
    assert!(
        api.list_count("ingresses") > lists,
        "410 Gone made the watcher re-list"
    );

    // The API server down for 3 s; objects change behind it.
    api.fail_watches(true);
    for plural in PLURALS {
        api.fail_lists(plural, true);
    }
    let tries = api.list_count("ingresses") + api.watch_count("ingresses");
    api.delete("Ingress", "shop", "other");
    api.apply(kube_ingress("d", "d.example.com", "web"));
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            admin(&p, "/readyz").await.status,
            StatusCode::OK,
            "ready during the outage"
        );
        assert_eq!(
            status(addr, "b.example.com").await,
            StatusCode::OK,
            "the last good table serves during the outage"
        );
    }
    let during = api.list_count("ingresses") + api.watch_count("ingresses") - tries;
    eprintln!("T45: {during} lists and watches of Ingresses during the 3 s outage");
    assert!(during <= 15, "{during} tries in 3 s: no backoff");
    for plural in PLURALS {
        api.fail_lists(plural, false);
    }
    api.fail_watches(false);
    eventually("converged: b gone, d served", || async {
        status(addr, "b.example.com").await == StatusCode::NOT_FOUND
            && status(addr, "d.example.com").await == StatusCode::OK
    })
    .await;
    for (host, want) in [
        ("a.example.com", StatusCode::OK),
        ("c1.example.com", StatusCode::OK),
        ("c2.example.com", StatusCode::OK),
    ] {
        assert_eq!(status(addr, host).await, want, "{host}");
    }
    let (g1, g2) = (h1_load.finish().await, h2_load.finish().await);
    eprintln!("T45: GETs h1 {} ok, h2 {} ok", g1.ok(), g2.ok());
    assert_eq!(g1.failed(), 0, "failed GETs: {:?}", g1.errors());
    assert_eq!(g2.failed(), 0, "failed GETs: {:?}", g2.errors());
    assert!(g1.ok() >= 100 && g2.ok() >= 50);
    drop(source);
    p.shutdown().await;
    Ok(())
}
