//! Configuration changes while serving: hot reload, rejected edits, readiness, and
//! requests in flight across a table swap.

use std::sync::atomic::Ordering;

use http::StatusCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_applies_changes_and_keeps_the_last_good_table() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let new_route = || async {
        h1(addr, get("new.test", "/").body(empty()).expect("request"))
            .await
            .status
    };
    assert_eq!(new_route().await, StatusCode::NOT_FOUND);

    let written = std::time::Instant::now();
    write(
        dir.path(),
        "new.yaml",
        &ingress("new", &[("new.test", "/", "b")], &[]),
    );
    eventually("the new route serves", || async {
        new_route().await == StatusCode::OK
    })
    .await;
    // Typically tens of milliseconds; the deadline stays loose for loaded machines.
    eprintln!("new route served {:?} after the write", written.elapsed());
    let good = p.live().load().version();

    // A broken edit: rejected, the last good table keeps serving.
    write(
        dir.path(),
        "new.yaml",
        "kind: Ingress\nmetadata: {name: [unclosed\n",
    );
    eventually("the broken edit is rejected", || async {
        let m = admin(&p, "/metrics").await.text();
        metric(
            &m,
            "ingress_proxy_config_applies_total{outcome=\"rejected\"}",
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    assert_eq!(p.live().load().version(), good);
    assert_eq!(new_route().await, StatusCode::OK);
    assert_eq!(admin(&p, "/readyz").await.status, StatusCode::OK);

    // A schema error (valid YAML, wrong shape) is rejected the same way.
    write(
        dir.path(),
        "new.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: new, namespace: t}\nspec: {rules: not-a-list}\n",
    );
    eventually("the schema error is rejected", || async {
        let m = admin(&p, "/metrics").await.text();
        metric(
            &m,
            "ingress_proxy_config_applies_total{outcome=\"rejected\"}",
        )
        .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    assert_eq!(p.live().load().version(), good);
    assert_eq!(new_route().await, StatusCode::OK);

    // Deleting the file is a good change: the route goes.
    std::fs::remove_file(dir.path().join("new.yaml"))?;
    eventually("the route is gone", || async {
        new_route().await == StatusCode::NOT_FOUND
    })
    .await;
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_first_good_load() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = tempfile::tempdir()?;
    write(dir.path(), "app.yaml", "kind: [broken\n");
    let p = proxy(dir.path(), |_| {}).await;
    assert_eq!(
        admin(&p, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(admin(&p, "/healthz").await.status, StatusCode::OK);
    let r = h1(
        p.http_addr().expect("http"),
        get("app.test", "/").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);

    let fixed = basic(&a, &b);
    let text = std::fs::read_to_string(fixed.path().join("app.yaml"))?;
    write(dir.path(), "app.yaml", &text);
    eventually("ready", || async {
        admin(&p, "/readyz").await.status == StatusCode::OK
    })
    .await;
    let r = h1(
        p.http_addr().expect("http"),
        get("app.test", "/").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_finishes_on_the_table_it_started_with() -> TestResult {
    let (one, two) = (echo("one").await, echo("two").await);
    let dir = tempfile::tempdir()?;
    let table = |svc: &str| {
        docs(&[
            CLASS.to_owned(),
            ingress("app", &[("app.test", "/", svc)], &[]),
            service("one", &[one.addr]),
            service("two", &[two.addr]),
        ])
    };
    write(dir.path(), "app.yaml", &table("one"));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let in_flight = tokio::spawn(async move {
        h1(
            addr,
            get("app.test", "/slow?ms=800")
                .body(empty())
                .expect("request"),
        )
        .await
    });
    eventually("the request reached upstream one", || async {
        one.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    let before = p.live().load().version();
    write(dir.path(), "app.yaml", &table("two"));
    eventually("the new table is live", || async {
        p.live().load().version() > before
    })
    .await;
    let r = h1(addr, get("app.test", "/").body(empty())?).await;
    assert_eq!(r.json()["server"], "two", "new requests use the new table");
    let r = in_flight.await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["server"],
        "one",
        "the request in flight finished where it started"
    );
    p.shutdown().await;
    Ok(())
}
