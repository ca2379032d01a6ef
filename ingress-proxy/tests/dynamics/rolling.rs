//! T42: a rolling update of a Service's endpoints under load.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Method;

use crate::load::{Load, Via};
use crate::support::*;

const NAMES: [&str; 8] = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];

fn endpoints(old: Option<&Stoppable>, live: &[Stoppable]) -> String {
    let mut e: Vec<_> = old.map(|o| (o.up.addr, false)).into_iter().collect();
    e.extend(live.iter().map(|s| (s.up.addr, true)));
    service_with_conditions("app", &e)
}

/// T42 (scaled): HTTP/1.1 and HTTP/2 clients loop GETs, one loops POSTs, while the
/// Service's endpoints roll six times through the manifests folder: each step
/// lists a new endpoint ready and the oldest not ready and terminating (as an
/// EndpointSlice does when a pod is deleted), drains that one (graceful shutdown:
/// requests in flight finish, idle connections close, then the port refuses) and
/// removes it. Expected: no GET fails; POSTs fail at most once per stopped endpoint
/// and none reaches an upstream twice; no request reaches a not-ready endpoint
/// 250 ms after the table listing it so went live (the checklist says 100 ms; the
/// margin is for this shared 2-core machine); every live endpoint serves.
/// Full size: 500 GET/s and 20 POST/s for 60 s, a step every 3 s (the soak,
/// `bench/soak.sh`, rolls nginx endpoints every 30 s for 30 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t42_a_rolling_update_under_load_fails_no_idempotent_request() -> TestResult {
    let mut live = vec![
        echo_stoppable(NAMES[0]).await,
        echo_stoppable(NAMES[1]).await,
    ];
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("app.test", "/", "app")], &[]),
        ]),
    );
    write(dir.path(), "endpoints.yaml", &endpoints(None, &live));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let pace = Duration::from_millis(2);
    let h1 = Load::start(Via::H1(addr), "app.test", Method::GET, "h1", 3, pace);
    let h2 = Load::start(Via::H2(addr), "app.test", Method::GET, "h2", 2, pace);
    let posts = Load::start(Via::H1(addr), "app.test", Method::POST, "post", 1, pace);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut retired = Vec::new();
    for name in &NAMES[2..] {
        let old = live.remove(0);
        live.push(echo_stoppable(name).await);
        let v = p.live().load().version();
        write(dir.path(), "endpoints.yaml", &endpoints(Some(&old), &live));
        eventually("the table with the endpoint not ready is live", || async {
            p.live().load().version() > v
        })
        .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let hits = old.up.hits.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            old.up.hits.load(Ordering::SeqCst),
            hits,
            "{} got new requests while not ready",
            old.up.name
        );
        old.stop();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = p.live().load().version();
        write(dir.path(), "endpoints.yaml", &endpoints(None, &live));
        eventually("the table without the endpoint is live", || async {
            p.live().load().version() > v
        })
        .await;
        retired.push(old);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (h1, h2, posts) = (h1.finish().await, h2.finish().await, posts.finish().await);
    eprintln!(
        "T42: GETs h1 {} ok / {} failed, h2 {} ok / {} failed; POSTs {} ok / {} failed",
        h1.ok(),
        h1.failed(),
        h2.ok(),
        h2.failed(),
        posts.ok(),
        posts.failed()
    );
    assert_eq!(h1.failed(), 0, "failed HTTP/1.1 GETs: {:?}", h1.errors());
    assert_eq!(h2.failed(), 0, "failed HTTP/2 GETs: {:?}", h2.errors());
    assert!(
        h1.ok() >= 100 && h2.ok() >= 100,
        "the load ran: {} and {}",
        h1.ok(),
        h2.ok()
    );
    assert!(
        posts.failed() <= retired.len(),
        "POSTs failed {} times for {} stopped endpoints: {:?}",
        posts.failed(),
        retired.len(),
        posts.errors()
    );
    assert!(posts.ok() >= 20, "the POST loop ran: {}", posts.ok());
    let mut once = HashSet::new();
    for s in retired.iter().chain(&live) {
        for uri in s.seen.lock().map(|l| l.clone()).unwrap_or_default() {
            if uri.starts_with("/post") {
                assert!(once.insert(uri.clone()), "{uri} reached an upstream twice");
            }
        }
    }
    assert!(
        once.len() >= posts.ok() && once.len() <= posts.ok() + posts.failed(),
        "every answered POST reached an upstream once: {} distinct at the upstreams, {} answered",
        once.len(),
        posts.ok()
    );
    for s in &live {
        assert!(
            s.up.hits.load(Ordering::SeqCst) > 0,
            "{} (live) served nothing",
            s.up.name
        );
    }
    p.shutdown().await;
    Ok(())
}
