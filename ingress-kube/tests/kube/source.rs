//! Watch, build and publish.

use std::time::{Duration, Instant};

use ingress_core::Profile;
use ingress_core::model::ObjectKind;
use ingress_kube::testing::object;
use serde_json::json;

use crate::common::*;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn nothing_is_published_until_every_kind_is_listed() {
    let server = cluster().await;
    server.fail_lists("secrets", true);
    let source = start(&server).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(server.list_count("ingresses") >= 1 && server.list_count("secrets") >= 1);
    assert!(
        source.current().is_none(),
        "published before Secrets were listed"
    );
    server.fail_lists("secrets", false);
    let p = wait_for(&source, 10 * SECOND, |_| true).await;
    assert_eq!(p.version, 1);
    assert_eq!(
        endpoint(&p, "a.example.com").as_deref(),
        Some("10.0.0.7:8080")
    );
}

#[tokio::test]
async fn an_added_ingress_serves_within_a_second() {
    let server = cluster().await;
    let source = start(&server).await;
    let first = wait_for(&source, 5 * SECOND, |_| true).await;
    assert_eq!(endpoint(&first, "b.example.com"), None);
    let added = Instant::now();
    server.apply(ingress("shop", "second", "gw", "b.example.com", "api"));
    let p = wait_for(&source, SECOND, |p| endpoint(p, "b.example.com").is_some()).await;
    assert!(added.elapsed() < SECOND);
    assert!(p.version > first.version);
    assert!(endpoint(&p, "a.example.com").is_some());
}

#[tokio::test]
async fn a_bad_ingress_is_diagnosed_and_the_others_keep_serving() {
    let server = cluster().await;
    let source = start(&server).await;
    wait_for(&source, 5 * SECOND, |_| true).await;
    server.apply(ingress("shop", "bad", "gw", "Not a host!", "api"));
    let p = wait_for(&source, 2 * SECOND, |p| {
        p.diagnostics
            .iter()
            .any(|d| d.object.as_ref().is_some_and(|o| o.name == "bad"))
    })
    .await;
    assert!(
        endpoint(&p, "a.example.com").is_some(),
        "the good Ingress was dropped"
    );
    let d = p
        .diagnostics
        .iter()
        .find(|d| d.object.as_ref().is_some_and(|o| o.name == "bad"))
        .expect("diag");
    assert_eq!(d.object.as_ref().map(|o| o.kind), Some(ObjectKind::Ingress));
}

#[tokio::test]
async fn a_deleted_ingress_loses_its_routes() {
    let server = cluster().await;
    let source = start(&server).await;
    wait_for(&source, 5 * SECOND, |p| {
        endpoint(p, "a.example.com").is_some()
    })
    .await;
    assert!(server.delete("Ingress", "shop", "web"));
    let p = wait_for(&source, 2 * SECOND, |p| p.table.routes().is_empty()).await;
    assert_eq!(endpoint(&p, "a.example.com"), None);
}

#[tokio::test]
async fn endpoint_churn_follows_the_slices() {
    let server = cluster().await;
    let source = start(&server).await;
    wait_for(&source, 5 * SECOND, |_| true).await;
    for ip in ["10.0.0.8", "10.0.0.9", "10.0.0.10"] {
        server.apply(slice("shop", "api", ip));
        let want = format!("{ip}:8080");
        wait_for(&source, 2 * SECOND, |p| {
            endpoint(p, "a.example.com").as_deref() == Some(&want)
        })
        .await;
    }
}

#[tokio::test]
async fn an_endpoint_change_takes_the_fast_path() {
    let server = cluster().await;
    let source = start(&server).await;
    let first = wait_for(&source, 5 * SECOND, |_| true).await;
    assert_eq!(first.path, ingress_kube::BuildPath::Full);
    server.apply(slice("shop", "api", "10.0.0.42"));
    let p = wait_for(&source, 2 * SECOND, |p| {
        endpoint(p, "a.example.com").as_deref() == Some("10.0.0.42:8080")
    })
    .await;
    assert_eq!(p.path, ingress_kube::BuildPath::Endpoints);
    // The same table and diagnostics a full compile gives.
    let full = ingress_core::compile(
        &source.stores().snapshot(),
        &ingress_core::CompileOptions::default(),
    );
    assert_eq!(
        format!("{:?}", p.table.backends()),
        format!("{:?}", full.table.backends())
    );
    assert_eq!(p.diagnostics, first.diagnostics);
    // An Ingress change after it: incremental (the compiler took the endpoints).
    server.apply(ingress("shop", "more", "gw", "m.example.com", "api"));
    let p = wait_for(&source, 2 * SECOND, |p| {
        endpoint(p, "m.example.com").is_some()
    })
    .await;
    assert_eq!(p.path, ingress_kube::BuildPath::Incremental);
    // A new Service no route uses: the Service path, nothing resolved again.
    server.apply(service("shop", "other"));
    let p = wait_for(&source, 2 * SECOND, |p| p.version > 3).await;
    assert_eq!(p.path, ingress_kube::BuildPath::Endpoints);
    assert_eq!(p.endpoints.as_deref(), Some(&[][..]));
    // Anything else (here an IngressClass): a full compile.
    server.apply(class("other", "k8s.io/ingress-nginx"));
    let p = wait_for(&source, 2 * SECOND, |p| p.version > 4).await;
    assert_eq!(p.path, ingress_kube::BuildPath::Full);
}

#[tokio::test]
async fn an_ingress_change_is_compiled_incrementally() {
    let server = cluster().await;
    let source = start(&server).await;
    let first = wait_for(&source, 5 * SECOND, |_| true).await;
    assert_eq!(first.path, ingress_kube::BuildPath::Full);
    assert_eq!(first.splices, None);
    server.apply(ingress("shop", "second", "gw", "b.example.com", "api"));
    let p = wait_for(&source, 2 * SECOND, |p| {
        endpoint(p, "b.example.com").is_some()
    })
    .await;
    assert_eq!(p.path, ingress_kube::BuildPath::Incremental);
    let splices = p
        .splices
        .as_ref()
        .expect("splices of an incremental update");
    assert_eq!(splices.len(), 1, "one host touched: {splices:?}");
    assert_eq!(splices[0].host.to_string(), "b.example.com");
    assert!(splices[0].old.is_empty() && !splices[0].new.is_empty());
    assert!(
        endpoint(&p, "a.example.com").is_some(),
        "the other host serves"
    );
    // Removing it again is incremental too.
    assert!(server.delete("Ingress", "shop", "second"));
    let p = wait_for(&source, 2 * SECOND, |p| {
        endpoint(p, "b.example.com").is_none()
    })
    .await;
    assert_eq!(p.path, ingress_kube::BuildPath::Incremental);
    assert!(endpoint(&p, "a.example.com").is_some());
}

#[tokio::test]
async fn only_our_classes_are_served() {
    let server = cluster().await;
    server.apply(class("nginx", "k8s.io/ingress-nginx"));
    server.apply(ingress("shop", "theirs", "nginx", "n.example.com", "api"));
    let source = start(&server).await;
    let p = wait_for(&source, 5 * SECOND, |_| true).await;
    assert!(endpoint(&p, "a.example.com").is_some());
    assert_eq!(endpoint(&p, "n.example.com"), None);
    // The nginx class handed over to us (a migration): now served.
    server.apply(class("nginx", CONTROLLER));
    wait_for(&source, 2 * SECOND, |p| {
        endpoint(p, "n.example.com").is_some()
    })
    .await;
}

#[tokio::test]
async fn a_dropped_watch_resumes_and_a_compacted_history_relists() {
    let server = cluster().await;
    let source = start(&server).await;
    wait_for(&source, 5 * SECOND, |_| true).await;
    let lists = server.list_count("ingresses");

    server.drop_watches();
    server.apply(ingress("shop", "after-drop", "gw", "d.example.com", "api"));
    let p = wait_for(&source, 5 * SECOND, |p| {
        endpoint(p, "d.example.com").is_some()
    })
    .await;
    assert!(endpoint(&p, "a.example.com").is_some());

    // A change while disconnected, then history lost: the watch resumes with 410
    // Gone and must re-list; the last good table serves meanwhile.
    server.fail_watches(true);
    server.apply(ingress(
        "shop",
        "after-compaction",
        "gw",
        "c.example.com",
        "api",
    ));
    server.compact();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        source
            .current()
            .is_some_and(|p| endpoint(&p, "a.example.com").is_some())
    );
    server.fail_watches(false);
    let p = wait_for(&source, 10 * SECOND, |p| {
        endpoint(p, "c.example.com").is_some()
    })
    .await;
    assert!(endpoint(&p, "d.example.com").is_some());
    assert!(
        server.list_count("ingresses") > lists,
        "no re-list after 410"
    );
}

#[tokio::test]
async fn a_rotated_tls_secret_is_served() {
    let server = cluster().await;
    let mut ing = ingress("shop", "web", "gw", "a.example.com", "api");
    ing["spec"]["tls"] = json!([{"hosts": ["a.example.com"], "secretName": "a-tls"}]);
    server.apply(ing);
    server.apply(tls_secret("a-tls", "a.example.com"));
    // A Secret nobody references is not read into the snapshot.
    server.apply(tls_secret("unused", "u.example.com"));
    let source = start(&server).await;
    let p = wait_for(&source, 5 * SECOND, |p| !p.table.tls_bindings().is_empty()).await;
    assert_eq!(p.secrets.len(), 1);
    let first = cert_der(&p);
    server.apply(tls_secret("a-tls", "a.example.com"));
    wait_for(&source, 2 * SECOND, |p| cert_der(p) != first).await;
}

fn tls_secret(name: &str, host: &str) -> serde_json::Value {
    use base64::Engine as _;
    let ck = rcgen::generate_simple_self_signed(vec![host.to_owned()]).expect("certificate");
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    object(
        "v1",
        "Secret",
        Some("shop"),
        name,
        json!({"type": "kubernetes.io/tls", "data": {
        "tls.crt": b64(ck.cert.pem()), "tls.key": b64(ck.signing_key.serialize_pem())}}),
    )
}

fn cert_der(p: &ingress_kube::Published) -> Vec<u8> {
    p.table
        .tls_bindings()
        .first()
        .and_then(|b| b.certificate())
        .map(|c| c.chain[0].to_vec())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_gateway_config_sets_the_profile_and_reports_errors() {
    let server = cluster().await;
    let mut gw = class("gw", CONTROLLER);
    gw["spec"]["parameters"] = json!({"apiGroup": "gateway.ingress-rs.io", "kind": "IngressGatewayConfig", "name": "main"});
    server.apply(gw);
    let config = |spec: serde_json::Value| {
        object(
            "gateway.ingress-rs.io/v1alpha1",
            "IngressGatewayConfig",
            None,
            "main",
            json!({"spec": spec}),
        )
    };
    server.apply(config(
        json!({"profile": "ingress-nginx", "trustedProxies": ["10.0.0.0/8"]}),
    ));
    let source = start(&server).await;
    let p = wait_for(&source, 5 * SECOND, |_| true).await;
    assert_eq!(p.table.profile(), Profile::IngressNginx);
    let applied = p.applied_gateway.as_ref().expect("applied");
    assert_eq!(applied.trusted_proxies.len(), 1);

    // An invalid update is reported and not applied: the last valid config stays.
    server.apply(config(json!({"profile": "nope"})));
    let p = wait_for(&source, 2 * SECOND, |p| {
        p.gateway.as_ref().is_some_and(|g| g.result.is_err())
    })
    .await;
    assert_eq!(p.table.profile(), Profile::IngressNginx);
    server.apply(config(json!({})));
    let p = wait_for(&source, 2 * SECOND, |p| {
        p.table.profile() == Profile::Standard
    })
    .await;
    assert!(p.gateway.as_ref().is_some_and(|g| g.result.is_ok()));

    // A deleted config: the defaults apply.
    server.apply(config(json!({"profile": "ingress-nginx"})));
    wait_for(&source, 2 * SECOND, |p| {
        p.table.profile() == Profile::IngressNginx
    })
    .await;
    assert!(server.delete("IngressGatewayConfig", "", "main"));
    let p = wait_for(&source, 2 * SECOND, |p| {
        p.table.profile() == Profile::Standard
    })
    .await;
    assert!(p.gateway.as_ref().is_some_and(|g| !g.exists) && p.applied_gateway.is_none());
}

#[tokio::test]
async fn bookmarks_change_nothing() {
    let server = cluster().await;
    let source = start(&server).await;
    let first = wait_for(&source, 5 * SECOND, |_| true).await;
    server.bookmark();
    server.apply(ingress(
        "shop",
        "after-bookmark",
        "gw",
        "e.example.com",
        "api",
    ));
    let p = wait_for(&source, 2 * SECOND, |p| {
        endpoint(p, "e.example.com").is_some()
    })
    .await;
    assert_eq!(p.version, first.version + 1);
}

/// Lists and watches a real cluster (read-only) and waits for a first table.
#[tokio::test]
#[ignore = "needs a cluster: set INGRESS_KUBE_TEST_KUBECONFIG"]
async fn real_cluster_lists_and_publishes() {
    let Some(path) = std::env::var_os("INGRESS_KUBE_TEST_KUBECONFIG") else {
        eprintln!("INGRESS_KUBE_TEST_KUBECONFIG is not set; skipped");
        return;
    };
    let file = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let source = ingress_kube::KubeSource::start(client, options())
        .await
        .expect("start");
    let p = wait_for(&source, 60 * SECOND, |_| true).await;
    eprintln!(
        "v{}: {} objects, {} routes, {} diagnostics",
        p.version,
        source.stores().snapshot().len(),
        p.table.routes().len(),
        p.diagnostics.len()
    );
}

#[tokio::test]
async fn without_the_crd_the_source_still_runs() {
    let server = cluster().await;
    server.fail_kind("ingressgatewayconfigs");
    let source = start(&server).await;
    let p = wait_for(&source, 5 * SECOND, |_| true).await;
    assert!(source.stores().gateway_configs.is_none());
    assert!(endpoint(&p, "a.example.com").is_some());
}

/// Deletions missed while the watch was down (history compacted: the watch gets
/// `410 Gone` and lists again) leave the table: the re-listed kind is compared
/// whole with the compiler's objects.
#[tokio::test]
async fn a_relist_after_410_converges_deletions_included() {
    let server = cluster().await;
    server.apply(ingress("shop", "other", "gw", "o.example.com", "api"));
    let source = start(&server).await;
    let first = wait_for(&source, 5 * SECOND, |p| {
        endpoint(p, "o.example.com").is_some()
    })
    .await;
    server.fail_watches(true);
    assert!(server.delete("Ingress", "shop", "web"));
    server.apply(ingress("shop", "two", "gw", "b.example.com", "api"));
    server.apply(slice("shop", "api", "10.0.0.99"));
    server.compact();
    server.fail_watches(false);
    let p = wait_for(&source, 10 * SECOND, |p| {
        endpoint(p, "a.example.com").is_none()
            && endpoint(p, "b.example.com").as_deref() == Some("10.0.0.99:8080")
    })
    .await;
    assert!(p.version > first.version);
    assert_eq!(
        endpoint(&p, "o.example.com").as_deref(),
        Some("10.0.0.99:8080")
    );
    let full = ingress_core::compile(
        &source.stores().snapshot(),
        &ingress_core::CompileOptions::default(),
    );
    assert_eq!(p.table.routes().len(), full.table.routes().len());
    assert_eq!(p.diagnostics, full.diagnostics);
}
