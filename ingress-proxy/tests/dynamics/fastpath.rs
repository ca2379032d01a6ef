//! The folder's fast paths (T47's 1 s and T48's updates at scale): a Secret-only
//! change checks again only the TLS bindings naming it, an EndpointSlice-only
//! change resolves again only its Service's backends; the `config_updates_total`
//! counter says which path each apply took.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use hyper_util::rt::TokioIo;

use crate::support::*;

fn updates(text: &str, kind: &str) -> f64 {
    metric(
        text,
        &format!("ingress_proxy_config_updates_total{{kind=\"{kind}\"}}"),
    )
    .unwrap_or(0.0)
}

async fn counts(p: &ingress_proxy::Proxy) -> [f64; 4] {
    let t = admin(p, "/metrics").await.text();
    ["full", "incremental", "secrets", "endpoints"].map(|k| updates(&t, k))
}

/// A new TLS handshake for `sni` (a GET `/` through it must answer 200): the
/// leaf certificate it presented.
async fn handshake_for(https: std::net::SocketAddr, sni: &str) -> Result<Vec<u8>, String> {
    let t = tls(https, sni, &[b"http/1.1"], false).await;
    let r = h1_on(
        TokioIo::new(t.stream),
        get(sni, "/").body(empty()).map_err(|e| e.to_string())?,
    )
    .await;
    if r.status != StatusCode::OK {
        return Err(format!("GET over a new handshake: {}", r.status));
    }
    Ok(t.leaf)
}

/// Write `secret` into `file` and wait until a new handshake for `sni` presents
/// it; the time from the write (must be under 1 s).
async fn rotate(
    p: &ingress_proxy::Proxy,
    dir: &std::path::Path,
    file: &str,
    name: &str,
    sni: &str,
    secret: &(String, String),
) -> Duration {
    let https = p.https_addr().expect("https");
    let want = der(&secret.0);
    let written = Instant::now();
    write(dir, file, &tls_secret(name, secret));
    loop {
        if handshake_for(https, sni).await.ok().as_ref() == Some(&want) {
            return written.elapsed();
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "the new certificate for {sni} was not served within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `n` Ingresses `big{i}` for `app{i}.big.test` (two paths each to Service `a`),
/// all terminating TLS with Secret `big-tls`.
fn big(n: usize) -> String {
    let mut out = String::with_capacity(n * 500);
    for i in 0..n {
        let host = format!("app{i}.big.test");
        out += "---\n";
        out += &ingress(
            &format!("big{i}"),
            &[(&host, "/", "a"), (&host, "/api", "a")],
            &[(&host, "big-tls")],
        );
    }
    out
}

/// T47 at scale: 2,000 TLS Ingresses and a.test, each Secret in a file of its
/// own. Rotating a.test's Secret three times and the Secret of the 2,000 hosts
/// once: every new certificate served to new handshakes within 1 s of the write,
/// each apply through the Secret fast path (`config_updates_total{kind="secrets"}`
/// up by 4, no full compile); then a key that does not match: the last good
/// certificate stays (`tls-previous-certificate-kept`), through the fast path too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t47_rotation_at_scale_takes_the_secret_fast_path() -> TestResult {
    const N: usize = 2000;
    let a = echo("a").await;
    let dir = tempfile::tempdir()?;
    let certs: Vec<_> = (0..4).map(|_| cert(&["a.test"])).collect();
    let wild: Vec<_> = (0..2).map(|_| cert(&["*.big.test"])).collect();
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("a.test", "/", "a")], &[("a.test", "a-tls")]),
            service("a", &[a.addr]),
        ]),
    );
    write(dir.path(), "big.yaml", &big(N));
    write(dir.path(), "secret.yaml", &tls_secret("a-tls", &certs[0]));
    write(dir.path(), "big-tls.yaml", &tls_secret("big-tls", &wild[0]));
    let started = Instant::now();
    let p = proxy(dir.path(), |_| {}).await;
    let https = p.https_addr().expect("https");
    eventually("the first table", || async {
        p.live().load().version() > 0
    })
    .await;
    eprintln!(
        "T47 at scale: {N} TLS Ingresses ready after {:?}",
        started.elapsed()
    );
    assert_eq!(handshake_for(https, "a.test").await?, der(&certs[0].0));
    assert_eq!(
        handshake_for(https, "app1234.big.test").await?,
        der(&wild[0].0)
    );
    let before = counts(&p).await;

    for c in &certs[1..] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let took = rotate(&p, dir.path(), "secret.yaml", "a-tls", "a.test", c).await;
        eprintln!("T47 at scale: a.test rotated, served after {took:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = rotate(
        &p,
        dir.path(),
        "big-tls.yaml",
        "big-tls",
        "app1999.big.test",
        &wild[1],
    )
    .await;
    eprintln!("T47 at scale: the Secret of {N} hosts rotated, served after {took:?}");
    assert_eq!(
        handshake_for(https, "app0.big.test").await?,
        der(&wild[1].0)
    );
    eventually("the apply is counted", || async {
        counts(&p).await[2] >= before[2] + 4.0
    })
    .await;
    let after = counts(&p).await;
    assert_eq!(
        after[2],
        before[2] + 4.0,
        "each rotation took the fast path"
    );
    assert_eq!(after[0], before[0], "no full compile");

    // A key that does not match its certificate, through the fast path: refused,
    // named, and the last good certificate stays.
    let v = p.live().load().version();
    let mismatched = (certs[0].0.clone(), certs[1].1.clone());
    write(dir.path(), "secret.yaml", &tls_secret("a-tls", &mismatched));
    eventually("the bad Secret is applied", || async {
        p.live().load().version() > v
    })
    .await;
    assert_eq!(handshake_for(https, "a.test").await?, der(&certs[3].0));
    let routes = admin(&p, "/routes").await.text();
    for code in ["tls-secret-invalid", "tls-previous-certificate-kept"] {
        assert!(routes.contains(code), "{code}: {routes}");
    }
    let after = counts(&p).await;
    assert_eq!(
        after[2],
        before[2] + 5.0,
        "the bad Secret took the fast path"
    );
    assert_eq!(after[0], before[0], "no full compile");
    Ok(())
}

/// An EndpointSlice in a file of its own: a change to it takes the endpoint path
/// (`config_updates_total{kind="endpoints"}`), and requests follow it; a file
/// whose object changes kind (a Secret, then an EndpointSlice) is a full reload
/// and the result is right; a removed slice file is the endpoint path again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slice_changes_take_the_endpoint_path() -> TestResult {
    let a = echo("a").await;
    let b = echo("b").await;
    let dir = tempfile::tempdir()?;
    let slice = |name: &str, up: &Upstream| {
        // `service` makes the Service and one slice: keep the slice, renamed.
        let all = service("s", &[up.addr]);
        let doc = all.split("---\n").nth(1).expect("a slice").to_owned();
        doc.replace("name: s-0,", &format!("name: {name},"))
    };
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("a.test", "/", "s")], &[]),
        ]),
    );
    write(dir.path(), "svc.yaml", service("s", &[]).trim_end());
    write(dir.path(), "slice.yaml", &slice("s-0", &a));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let server = || served_by(addr, "a.test");
    eventually("a serves", || async { server().await == "a" }).await;
    let before = counts(&p).await;

    let written = Instant::now();
    write(dir.path(), "slice.yaml", &slice("s-0", &b));
    eventually("b serves", || async { server().await == "b" }).await;
    eprintln!("endpoint change served after {:?}", written.elapsed());
    let after = counts(&p).await;
    assert_eq!(after[3], before[3] + 1.0, "the endpoint path");
    assert_eq!(after[0], before[0], "no full compile");

    // A file holding a Secret (the Secret path), then an EndpointSlice: a full
    // reload, after which both endpoints serve.
    let v = p.live().load().version();
    write(
        dir.path(),
        "x.yaml",
        &tls_secret("x-tls", &cert(&["x.test"])),
    );
    eventually("the Secret is applied", || async {
        p.live().load().version() > v
    })
    .await;
    let now = counts(&p).await;
    assert_eq!(
        now[2],
        before[2] + 1.0,
        "the Secret path: {before:?} -> {now:?}"
    );
    write(dir.path(), "x.yaml", &slice("s-1", &a));
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while !(seen.contains("a") && seen.contains("b")) {
        assert!(Instant::now() < deadline, "a and b never both served");
        seen.insert(server().await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(counts(&p).await[0], before[0] + 1.0, "a full reload");

    // The slice file removed: the endpoint path, only a serves.
    let before = counts(&p).await;
    std::fs::remove_file(dir.path().join("slice.yaml"))?;
    eventually("only a serves", || serves_only(addr, "a.test", "a", 8)).await;
    let after = counts(&p).await;
    assert_eq!(after[3], before[3] + 1.0, "the endpoint path");
    assert_eq!(after[0], before[0], "no full compile");
    Ok(())
}

/// The name of the upstream that answered a GET of `host` `/`.
async fn served_by(addr: std::net::SocketAddr, host: &str) -> String {
    h1(addr, get(host, "/").body(empty()).expect("request"))
        .await
        .json()["server"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Whether `n` GETs of `host` `/` in a row were all answered by `want`.
async fn serves_only(addr: std::net::SocketAddr, host: &str, want: &str, n: usize) -> bool {
    for _ in 0..n {
        if served_by(addr, host).await != want {
            return false;
        }
    }
    true
}

/// A file of Services alone takes the Service path: the backends of the changed
/// Service are resolved again (here its port is renamed to the slice's other
/// port, so traffic moves to the other upstream) without a full compile, and
/// answered through the endpoint patch of the data plane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_changes_take_the_service_path() -> TestResult {
    let a = echo("a").await;
    let b = echo("b").await;
    let dir = tempfile::tempdir()?;
    let svc = |port_name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: t}}\nspec: {{ports: [{{name: {port_name}, port: 80}}]}}\n"
        )
    };
    // One slice, two named ports: `http` on a's port, `alt` on b's.
    let slice = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s-0, namespace: t, labels: {{kubernetes.io/service-name: s}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}, {{name: alt, port: {}}}]\nendpoints: [{{addresses: [\"{}\"], conditions: {{ready: true}}}}]\n",
        a.addr.port(),
        b.addr.port(),
        a.addr.ip()
    );
    assert_eq!(a.addr.ip(), b.addr.ip(), "both upstreams on one address");
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("app", &[("a.test", "/", "s")], &[]),
            slice,
        ]),
    );
    write(dir.path(), "svc.yaml", &svc("http"));
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    let server = || served_by(addr, "a.test");
    eventually("a serves", || async { server().await == "a" }).await;
    let before = counts(&p).await;
    write(dir.path(), "svc.yaml", &svc("alt"));
    eventually("b serves", || serves_only(addr, "a.test", "b", 4)).await;
    let after = counts(&p).await;
    assert_eq!(
        after[3],
        before[3] + 1.0,
        "the endpoint path: {before:?} -> {after:?}"
    );
    assert_eq!(after[0], before[0], "no full compile");
    // The Service deleted: the route's backend has no Service any more (the
    // diagnostics change), a full compile that answers 503.
    std::fs::remove_file(dir.path().join("svc.yaml"))?;
    eventually("503 without the Service", || async {
        h1(addr, get("a.test", "/").body(empty()).expect("request"))
            .await
            .status
            == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(counts(&p).await[0], after[0] + 1.0, "a full compile");
    Ok(())
}

/// An app's Ingress, Service and EndpointSlice in one file, the Ingress and the
/// Service edited in one write (a path added; the Service's port renamed to the
/// slice's other port): applied as one incremental update (the Ingress's host
/// compiled again, then the Service's backends resolved again), with no full
/// compile; the new path serves, and the old and new paths both go to the
/// upstream the renamed port names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_and_its_service_changed_in_one_file_take_the_incremental_path() -> TestResult {
    let a = echo("a").await;
    let b = echo("b").await;
    assert_eq!(a.addr.ip(), b.addr.ip(), "both upstreams on one address");
    let dir = tempfile::tempdir()?;
    let app = |paths: &[(&str, &str, &str)], port_name: &str| {
        docs(&[
            ingress("app", paths, &[]),
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: t}}\nspec: {{ports: [{{name: {port_name}, port: 80}}]}}\n"
            ),
            format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s-0, namespace: t, labels: {{kubernetes.io/service-name: s}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}, {{name: alt, port: {}}}]\nendpoints: [{{addresses: [\"{}\"], conditions: {{ready: true}}}}]\n",
                a.addr.port(),
                b.addr.port(),
                a.addr.ip()
            ),
        ])
    };
    write(dir.path(), "class.yaml", CLASS);
    write(
        dir.path(),
        "app.yaml",
        &app(&[("a.test", "/", "s")], "http"),
    );
    let p = proxy(dir.path(), |_| {}).await;
    let addr = p.http_addr().expect("http");
    eventually("a serves", || serves_only(addr, "a.test", "a", 1)).await;
    let before = counts(&p).await;
    write(
        dir.path(),
        "app.yaml",
        &app(&[("a.test", "/", "s"), ("a.test", "/new", "s")], "alt"),
    );
    let new_path = || async {
        let r = h1(
            addr,
            get("a.test", "/new/x").body(empty()).expect("request"),
        )
        .await;
        (
            r.status,
            r.json()["server"].as_str().unwrap_or("").to_owned(),
        )
    };
    eventually("/new serves, from b", || async {
        new_path().await == (StatusCode::OK, "b".to_owned())
    })
    .await;
    assert!(serves_only(addr, "a.test", "b", 4).await, "/ moved to b");
    let after = counts(&p).await;
    assert_eq!(
        after[1],
        before[1] + 1.0,
        "one incremental update: {before:?} -> {after:?}"
    );
    assert_eq!(
        after[0], before[0],
        "no full compile: {before:?} -> {after:?}"
    );
    assert_eq!(after[3], before[3], "not a separate endpoint update");
    Ok(())
}

/// The EndpointSlices of Service `name` (one per endpoint, all ready), without the
/// Service: a file that changes through the endpoint fast path alone.
fn slices_of(name: &str, ups: &[&Upstream]) -> String {
    let endpoints: Vec<_> = ups.iter().map(|u| (u.addr, true)).collect();
    let all = service_with_conditions(name, &endpoints);
    all.split("---\n").skip(1).collect::<Vec<_>>().join("---\n")
}

/// The `server` of `n` GETs to `host`, with their status.
async fn serve(addr: std::net::SocketAddr, host: &str, n: usize) -> Vec<(StatusCode, String)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = h1(addr, get(host, "/").body(empty()).expect("request")).await;
        let server = r.json()["server"].as_str().unwrap_or("").to_owned();
        out.push((r.status, server));
    }
    out
}

/// An EndpointSlice change patches the served state in place of rebuilding it
/// (`config_updates_total{kind="endpoints"}`, no full build): Service `s` over
/// `bad` (always 500), `a` and `b` rolls to `bad`, `b` and `c`. After the swap
/// every request to `s` goes to the new set (`a`, removed, gets none; `c`, new,
/// serves); `bad`, which stays, stays ejected (its passive health is carried), and
/// `b`'s idle pooled connection is reused (no new connection); Service `x`, whose
/// endpoints did not change, keeps its own ejection of `bad-x`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_change_keeps_the_state_of_the_endpoints_it_does_not_remove() -> TestResult {
    let (bad, a, b, c) = (
        failing("bad").await,
        echo("a").await,
        echo("b").await,
        echo("c").await,
    );
    let (bad_x, x) = (failing("bad-x").await, echo("x").await);
    let dir = tempfile::tempdir()?;
    let first_doc = |text: String| text.split("---\n").next().unwrap_or("").to_owned();
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress("s", &[("s.test", "/", "s")], &[]),
            ingress("x", &[("x.test", "/", "x")], &[]),
            first_doc(service("s", &[])),
            first_doc(service("x", &[])),
        ]),
    );
    write(dir.path(), "s.yaml", &slices_of("s", &[&bad, &a, &b]));
    write(dir.path(), "x.yaml", &slices_of("x", &[&bad_x, &x]));
    let p = proxy(dir.path(), |c| {
        c.service.outlier = ingress_core::lb::outlier::OutlierConfig {
            consecutive_5xx: 3,
            ..Default::default()
        };
    })
    .await;
    let addr = p.http_addr().expect("http");
    eventually("s serves", || async {
        serve(addr, "s.test", 1).await[0].0 == StatusCode::OK
    })
    .await;
    // Round robin reaches each failing endpoint until its third 500 in a row:
    // then it is ejected (for 30 s) and every request succeeds.
    for (host, failing, n) in [("s.test", &bad, 12), ("x.test", &bad_x, 8)] {
        let replies = serve(addr, host, n).await;
        assert_eq!(
            failing.hits.load(Ordering::SeqCst),
            3,
            "{host}: {replies:?}"
        );
        let replies = serve(addr, host, 6).await;
        assert!(
            replies.iter().all(|(s, _)| *s == StatusCode::OK),
            "{replies:?}"
        );
    }
    let (a_hits, b_conns) = (
        a.hits.load(Ordering::SeqCst),
        b.conns.load(Ordering::SeqCst),
    );
    assert!(b.hits.load(Ordering::SeqCst) > 0);
    let before = counts(&p).await;
    let v = p.live().load().version();

    write(dir.path(), "s.yaml", &slices_of("s", &[&bad, &b, &c]));
    eventually("the slice change is applied", || async {
        p.live().load().version() > v
    })
    .await;
    let after = counts(&p).await;
    assert_eq!(after[3], before[3] + 1.0, "the endpoint path");
    assert_eq!(after[0], before[0], "no full build");

    let replies = serve(addr, "s.test", 12).await;
    let servers: std::collections::BTreeSet<&str> =
        replies.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        servers,
        ["b", "c"].into(),
        "the new set, without the ejected endpoint: {replies:?}"
    );
    assert_eq!(
        a.hits.load(Ordering::SeqCst),
        a_hits,
        "the removed endpoint"
    );
    assert_eq!(bad.hits.load(Ordering::SeqCst), 3, "still ejected");
    assert_eq!(
        b.conns.load(Ordering::SeqCst),
        b_conns,
        "b's pooled connection reused"
    );
    let replies = serve(addr, "x.test", 8).await;
    assert!(
        replies.iter().all(|(s, _)| *s == StatusCode::OK),
        "{replies:?}"
    );
    assert_eq!(bad_x.hits.load(Ordering::SeqCst), 3, "x's ejection kept");
    Ok(())
}
