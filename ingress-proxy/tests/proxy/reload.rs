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

/// One Ingress edited among many in a folder of several files: only the changed
/// file is read and only its host compiled again (the `incremental` update count
/// says so); the edited route serves its new path, the other routes serve without
/// one failure meanwhile, and a round-robin balancer of an untouched route goes on
/// where it was (its state is the same object, not a copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_one_ingress_among_many_is_incremental_and_keeps_route_state() -> TestResult {
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let dir = tempfile::tempdir()?;
    write(
        dir.path(),
        "base.yaml",
        &docs(&[CLASS.to_owned(), service("pool", &[a.addr, b.addr, c.addr])]),
    );
    const FILES: usize = 8;
    const PER_FILE: usize = 25;
    for f in 0..FILES {
        let parts: Vec<String> = (0..PER_FILE)
            .map(|i| {
                let n = f * PER_FILE + i;
                ingress(
                    &format!("app{n}"),
                    &[(&format!("app{n}.test"), "/", "pool")],
                    &[],
                )
            })
            .collect();
        write(dir.path(), &format!("apps-{f}.yaml"), &docs(&parts));
    }
    let round_robin = [("nginx.ingress.kubernetes.io/load-balance", "round_robin")];
    write(
        dir.path(),
        "rr.yaml",
        &ingress_with("rr", &round_robin, &[("rr.test", "/", "pool")], &[]),
    );
    let edited = |path: &str| ingress("edit", &[("edit.test", path, "pool")], &[]);
    write(dir.path(), "edit.yaml", &edited("/v0"));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let status = move |host: String, path: String| async move {
        h1(addr, get(&host, &path).body(empty()).expect("request"))
            .await
            .status
    };
    let server = move || async move {
        let r = h1(addr, get("rr.test", "/").body(empty()).expect("request")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()["server"].as_str().expect("server").to_owned()
    };

    // Load on the untouched routes for the whole run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for t in 0..4 {
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            let mut n = t;
            while !stop.load(Ordering::Relaxed) {
                let host = format!("app{}.test", n % (FILES * PER_FILE));
                match status(host.clone(), "/".into()).await {
                    StatusCode::OK => ok += 1,
                    s => failed.push(format!("{host}: {s}")),
                }
                n += 7;
            }
            (ok, failed)
        }));
    }

    // The round-robin cycle over the three endpoints.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(server().await);
    }
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        3,
        "round robin over three endpoints: {seen:?}"
    );

    let updates = |kind: &'static str| {
        let p = &p;
        async move {
            let m = admin(p, "/metrics").await.text();
            metric(
                &m,
                &format!("ingress_proxy_config_updates_total{{kind=\"{kind}\"}}"),
            )
            .unwrap_or(0.0)
        }
    };
    let incremental_before = updates("incremental").await;
    for k in 1..=5 {
        let version = p.live().load().version();
        write(dir.path(), "edit.yaml", &edited(&format!("/v{k}")));
        eventually("the edited route serves its new path", || async {
            status("edit.test".into(), format!("/v{k}")).await == StatusCode::OK
        })
        .await;
        assert_eq!(
            status("edit.test".into(), format!("/v{}", k - 1)).await,
            StatusCode::NOT_FOUND
        );
        assert!(p.live().load().version() > version);
        // The cycle goes on where it was: the next endpoint is the one after the
        // last one served, as if no table had been swapped.
        let next = server().await;
        let last = seen.last().expect("seen");
        let expected = &seen[seen.len() - 3];
        assert_eq!(
            &next, expected,
            "after edit {k}: the round-robin position survives (last {last}, seen {seen:?})"
        );
        seen.push(next);
    }
    assert!(
        updates("incremental").await - incremental_before >= 5.0,
        "each edit was an incremental update"
    );

    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for l in load {
        let (o, f) = l.await?;
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 0, "the load ran");
    assert!(
        failed.is_empty(),
        "failed requests during the edits: {failed:?}"
    );
    p.shutdown().await;
    Ok(())
}
