//! End to end in `--kube` mode: the proxy fed by `ingress_kube::KubeSource` watching a
//! fake Kubernetes API server (the real kube-rs client and watchers over loopback),
//! with echo upstreams; requests follow the cluster's objects as they change.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use ingress_core::CompileOptions;
use ingress_kube::testing::{FakeApiServer, object};
use ingress_kube::{KubeOptions, KubeSource};
use ingress_proxy::source::feed_kube;
use serde_json::{Value, json};
use support::*;

async fn server_of(p: &ingress_proxy::Proxy, host: &str) -> Option<String> {
    let addr = p.http_addr().expect("http");
    let reply = h1(
        addr,
        get(host, "/")
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await;
    (reply.status == StatusCode::OK)
        .then(|| reply.json()["server"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_follow_the_cluster() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let api = FakeApiServer::start().await?;
    api.apply(object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        "gw",
        json!({"spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME}}),
    ));
    for o in kube_backend("web", a.addr) {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    api.fail_lists("secrets", true);

    // As main.rs does in --kube mode: no folder, the cluster feeds the live table.
    let p = proxy(std::path::Path::new(""), |c| c.watch = false).await;
    let _feed = kube_feed(&api, &p, Duration::from_millis(20)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        admin(&p, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    api.fail_lists("secrets", false);
    eventually("ready", || async {
        admin(&p, "/readyz").await.status == StatusCode::OK
    })
    .await;
    assert_eq!(server_of(&p, "a.example.com").await.as_deref(), Some("a"));

    // A new Ingress and backend.
    for o in kube_backend("other", b.addr) {
        api.apply(o);
    }
    api.apply(kube_ingress("other", "b.example.com", "other"));
    eventually("b.example.com served", || async {
        server_of(&p, "b.example.com").await.as_deref() == Some("b")
    })
    .await;

    // Endpoint churn: web's endpoints move to upstream b.
    api.apply(kube_backend("web", b.addr)[1].clone());
    eventually("web moved to b", || async {
        server_of(&p, "a.example.com").await.as_deref() == Some("b")
    })
    .await;

    // A deleted Ingress stops serving.
    api.delete("Ingress", "shop", "other");
    eventually("b.example.com gone", || async {
        server_of(&p, "b.example.com").await.is_none()
    })
    .await;
    p.shutdown().await;
    Ok(())
}

/// The binary itself: `ingress-proxy --kube --kubeconfig FILE` against the fake API
/// server; it serves the Ingress, elects itself and writes the Ingress status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_in_kube_mode_serves_and_writes_status() -> TestResult {
    let a = echo("a").await;
    let api = FakeApiServer::start().await?;
    api.apply(object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        "gw",
        json!({"spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME}}),
    ));
    for o in kube_backend("web", a.addr) {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u, namespace: ingress}}}}]\ncurrent-context: c\n",
            api.addr()
        ),
    )?;
    let port = || -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (http, https, admin_port) = (port()?, port()?, port()?);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ingress-proxy"))
        .args(["--kube", "--kubeconfig"])
        .arg(&kubeconfig)
        .args([
            format!("--listen-http=127.0.0.1:{http}"),
            format!("--listen-https=127.0.0.1:{https}"),
            format!("--listen-admin=127.0.0.1:{admin_port}"),
            "--publish-status-address=192.0.2.10".to_owned(),
            "--pod-name=replica-1".to_owned(),
        ])
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut child = KillOnDrop(child);
    let http_addr: SocketAddr = format!("127.0.0.1:{http}").parse()?;
    let served = || async move {
        let Ok(io) = tokio::net::TcpStream::connect(http_addr).await else {
            return None;
        };
        let reply = h1_on(
            hyper_util::rt::TokioIo::new(io),
            get("a.example.com", "/")
                .body(Full::new(Bytes::new()))
                .ok()?,
        )
        .await;
        (reply.status == StatusCode::OK)
            .then(|| reply.json()["server"].as_str().unwrap_or("").to_owned())
    };
    eventually("the binary serves a.example.com", || async {
        served().await.as_deref() == Some("a")
    })
    .await;
    eventually("the leader wrote the status", || async {
        api.get("Ingress", "shop", "web").is_some_and(|i| {
            i["status"]["loadBalancer"]["ingress"] == json!([{"ip": "192.0.2.10"}])
        })
    })
    .await;
    let lease = api
        .get("Lease", "ingress", "ingress-rs-leader")
        .ok_or("no Lease")?;
    assert_eq!(lease["spec"]["holderIdentity"], "replica-1");
    child.0.kill()?;
    let _ = child.0.wait();
    Ok(())
}

/// Stops the spawned proxy however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status_of(p: &ingress_proxy::Proxy, host: &str, xff: Option<&str>) -> StatusCode {
    let addr = p.http_addr().expect("http");
    let mut req = get(host, "/");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    h1(addr, req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .status
}

/// The gateway config's global settings take effect without a restart: its IP
/// lists answer 403 before routing, its trusted proxies decide whose
/// `X-Forwarded-For` counts, and an invalid config keeps the last valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_config_changes_the_proxy_at_runtime() -> TestResult {
    let a = echo("a").await;
    let api = FakeApiServer::start().await?;
    api.apply(object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        "gw",
        json!({"spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME,
            "parameters": {"apiGroup": "gateway.ingress-rs.io", "kind": "IngressGatewayConfig", "name": "main"}}}),
    ));
    let config = |spec: Value| {
        object(
            "gateway.ingress-rs.io/v1alpha1",
            "IngressGatewayConfig",
            None,
            "main",
            json!({ "spec": spec }),
        )
    };
    for o in kube_backend("web", a.addr) {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    let p = proxy(std::path::Path::new(""), |c| c.watch = false).await;
    let (source, _feed) = kube_feed(&api, &p, Duration::from_millis(20)).await?;
    eventually("served without a config", || async {
        status_of(&p, "a.example.com", None).await == StatusCode::OK
    })
    .await;

    // Loopback denied: 403 before any route (even for hosts no route serves).
    api.apply(config(json!({"ipAccess": {"deny": ["127.0.0.0/8"]}})));
    eventually("loopback denied", || async {
        status_of(&p, "a.example.com", None).await == StatusCode::FORBIDDEN
    })
    .await;
    assert_eq!(
        status_of(&p, "nowhere.example.com", None).await,
        StatusCode::FORBIDDEN
    );

    // Only 192.0.2.0/24, as told by a trusted loopback proxy.
    api.apply(config(json!({
        "trustedProxies": ["127.0.0.1/32"],
        "ipAccess": {"allow": ["192.0.2.0/24"]}})));
    eventually("X-Forwarded-For from a trusted proxy counts", || async {
        status_of(&p, "a.example.com", Some("192.0.2.7")).await == StatusCode::OK
    })
    .await;
    assert_eq!(
        status_of(&p, "a.example.com", None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of(&p, "a.example.com", Some("198.51.100.1")).await,
        StatusCode::FORBIDDEN
    );

    // An invalid config is not applied: the last valid one stays.
    api.apply(config(json!({"trustedProxies": ["not-a-network"]})));
    eventually("the invalid config is reported", || async {
        source
            .current()
            .is_some_and(|p| p.gateway.as_ref().is_some_and(|g| g.result.is_err()))
    })
    .await;
    assert_eq!(
        status_of(&p, "a.example.com", Some("192.0.2.7")).await,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&p, "a.example.com", None).await,
        StatusCode::FORBIDDEN
    );

    // Trusted proxies turned back to the flags' (none): X-Forwarded-For no longer
    // counts, and the config without IP lists lets loopback in.
    api.apply(config(json!({})));
    eventually("back to the flags", || async {
        status_of(&p, "a.example.com", None).await == StatusCode::OK
    })
    .await;
    p.shutdown().await;
    Ok(())
}

/// The gateway config's `defaultTlsCertificate` is served for names no TLS host
/// covers, instead of the listener's generated default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_config_default_certificate_is_served() -> TestResult {
    let a = echo("a").await;
    let api = FakeApiServer::start().await?;
    api.apply(object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        "gw",
        json!({"spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME,
            "parameters": {"apiGroup": "gateway.ingress-rs.io", "kind": "IngressGatewayConfig", "name": "main"}}}),
    ));
    for o in kube_backend("web", a.addr) {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    let (crt, key) = cert(&["fallback.example.net"]);
    api.apply(object(
        "v1",
        "Secret",
        Some("ingress"),
        "default-cert",
        json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": crt, "tls.key": key}}),
    ));
    let p = proxy(std::path::Path::new(""), |c| c.watch = false).await;
    let https = p.https_addr().expect("https");
    let before = tls(https, "unknown.example.org", &[], false).await.leaf;
    assert_ne!(before, der(&crt));
    let _feed = kube_feed(&api, &p, Duration::from_millis(20)).await?;
    api.apply(object(
        "gateway.ingress-rs.io/v1alpha1",
        "IngressGatewayConfig",
        None,
        "main",
        json!({"spec": {"defaultTlsCertificate": {"namespace": "ingress", "name": "default-cert"}}}),
    ));
    eventually("the config's default certificate is served", || async {
        tls(https, "unknown.example.org", &[], false).await.leaf == der(&crt)
    })
    .await;
    p.shutdown().await;
    Ok(())
}

/// T54 in `--kube` mode: a panic while building a config from the cluster (a test
/// hook: the build panics while an Ingress named `panic` exists) leaves the last
/// good table serving; once the object is gone, the next build reads the stores
/// again and serves everything else that changed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t54_a_panic_in_the_kube_config_build_keeps_the_last_good_table() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let api = FakeApiServer::start().await?;
    api.apply(object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        "gw",
        json!({"spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME}}),
    ));
    for o in kube_backend("web", a.addr)
        .into_iter()
        .chain(kube_backend("other", b.addr))
    {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    let p = proxy(std::path::Path::new(""), |c| c.watch = false).await;
    let mut options =
        KubeOptions::new(CompileOptions::default()).debounce(Duration::from_millis(20));
    options.panic_on_ingress = Some("panic".into());
    let source = KubeSource::start(api.client()?, options).await?;
    let _feed = feed_kube(
        source.subscribe(),
        p.live().clone(),
        p.metrics().clone(),
        p.service().options().clone(),
    );
    eventually("a.example.com served", || async {
        server_of(&p, "a.example.com").await.as_deref() == Some("a")
    })
    .await;
    let version = p.live().load().version();

    // The marker and a real change in one burst: the build panics.
    api.apply(kube_ingress("panic", "p.example.com", "other"));
    api.apply(kube_ingress("second", "b.example.com", "other"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.live().load().version(), version, "nothing published");
    assert_eq!(server_of(&p, "a.example.com").await.as_deref(), Some("a"));
    assert_eq!(server_of(&p, "b.example.com").await, None);
    // Still panicking on the next change while the marker exists.
    api.apply(kube_ingress("third", "c.example.com", "other"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.live().load().version(), version);

    // The marker gone: everything else that changed is served.
    api.delete("Ingress", "shop", "panic");
    eventually("b and c served", || async {
        server_of(&p, "b.example.com").await.as_deref() == Some("b")
            && server_of(&p, "c.example.com").await.as_deref() == Some("b")
    })
    .await;
    assert_eq!(server_of(&p, "p.example.com").await, None);
    assert_eq!(server_of(&p, "a.example.com").await.as_deref(), Some("a"));
    p.shutdown().await;
    Ok(())
}

/// For `--kube` mode: an EndpointSlice `slice` of Service `service` (namespace
/// `shop`) with one endpoint, `upstream`.
fn kube_slice(service: &str, slice: &str, upstream: SocketAddr) -> Value {
    object(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        Some("shop"),
        slice,
        json!({
        "metadata": {"labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": upstream.port()}],
        "endpoints": [{"addresses": [upstream.ip().to_string()]}]}),
    )
}

fn updates(text: &str, kind: &str) -> f64 {
    metric(
        text,
        &format!("ingress_proxy_config_updates_total{{kind=\"{kind}\"}}"),
    )
    .unwrap_or(0.0)
}

/// `config_updates_total` for full, incremental and endpoints.
async fn counts(p: &ingress_proxy::Proxy) -> [f64; 3] {
    let t = admin(p, "/metrics").await.text();
    ["full", "incremental", "endpoints"].map(|k| updates(&t, k))
}

/// The servers of `n` GETs to `host` (`!STATUS` for an answer other than 200).
async fn servers(p: &ingress_proxy::Proxy, host: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let addr = p.http_addr().expect("http");
        let r = h1(
            addr,
            get(host, "/")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await;
        out.push(if r.status == StatusCode::OK {
            r.json()["server"].as_str().unwrap_or("").to_owned()
        } else {
            format!("!{}", r.status.as_u16())
        });
    }
    out
}

/// In `--kube` mode an EndpointSlice change takes the endpoint fast path
/// (`config_updates_total{kind="endpoints"}`, no full build): the changed
/// Service's requests go to its new endpoint and none to the removed one, and
/// another Service keeps the ejection of its failing endpoint. An Ingress change
/// and a slice change of another Service applied together (one build: an
/// incremental update that carries the slice's backend) serve both: the new
/// host, and the other host's new endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_take_the_fast_path_in_kube_mode() -> TestResult {
    use std::sync::atomic::Ordering;
    let (a, b, c) = (echo("a").await, echo("b").await, echo("c").await);
    let bad = failing("bad").await;
    let api = FakeApiServer::start().await?;
    api.apply(kube_class());
    for o in kube_backend("web", a.addr) {
        api.apply(o);
    }
    api.apply(kube_ingress("web", "a.example.com", "web"));
    for o in kube_backend("other", bad.addr) {
        api.apply(o);
    }
    api.apply(kube_slice("other", "other-2", b.addr));
    api.apply(kube_ingress("other", "o.example.com", "other"));

    let p = proxy(std::path::Path::new(""), |c| {
        c.watch = false;
        c.service.outlier = ingress_core::lb::outlier::OutlierConfig {
            consecutive_5xx: 3,
            ..Default::default()
        };
    })
    .await;
    // A debounce long enough for two changes applied back to back to make one
    // build.
    let _feed = kube_feed(&api, &p, Duration::from_millis(200)).await?;
    eventually("both hosts served", || async {
        server_of(&p, "a.example.com").await.as_deref() == Some("a")
            && servers(&p, "o.example.com", 2)
                .await
                .contains(&"b".to_owned())
    })
    .await;
    // `bad` ejected at its third 500 in a row (round robin over bad and b).
    let seen = servers(&p, "o.example.com", 8).await;
    assert_eq!(bad.hits.load(Ordering::SeqCst), 3, "{seen:?}");
    let before = counts(&p).await;

    // web's endpoint moves from a to c.
    api.apply(kube_slice("web", "web-1", c.addr));
    eventually("web moved to c", || async {
        server_of(&p, "a.example.com").await.as_deref() == Some("c")
    })
    .await;
    let after = counts(&p).await;
    assert_eq!(after[2], before[2] + 1.0, "the endpoint path: {after:?}");
    assert_eq!(after[0], before[0], "no full build");
    let a_hits = a.hits.load(Ordering::SeqCst);
    assert_eq!(servers(&p, "a.example.com", 6).await, vec!["c"; 6]);
    assert_eq!(
        a.hits.load(Ordering::SeqCst),
        a_hits,
        "the removed endpoint"
    );
    assert_eq!(servers(&p, "o.example.com", 6).await, vec!["b"; 6]);
    assert_eq!(bad.hits.load(Ordering::SeqCst), 3, "other's ejection kept");

    // A new Ingress to the other Service and web's endpoint back to a, in one
    // build: the new host serves, and so does web's new endpoint.
    api.apply(kube_ingress("more", "m.example.com", "other"));
    api.apply(kube_slice("web", "web-1", a.addr));
    eventually("m.example.com served", || async {
        server_of(&p, "m.example.com").await.as_deref() == Some("b")
    })
    .await;
    eventually("web back on a", || async {
        server_of(&p, "a.example.com").await.as_deref() == Some("a")
    })
    .await;
    assert_eq!(servers(&p, "a.example.com", 4).await, vec!["a"; 4]);
    assert_eq!(servers(&p, "m.example.com", 4).await, vec!["b"; 4]);
    assert_eq!(counts(&p).await[0], before[0], "no full build");
    p.shutdown().await;
    Ok(())
}
