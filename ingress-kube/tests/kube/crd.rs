//! The checked-in CRD matches the Rust type.

use ingress_kube::crd::crd_yaml;

#[test]
fn deploy_crd_yaml_is_generated_from_the_type() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crd.yaml");
    let want = crd_yaml();
    if std::env::var_os("UPDATE_CRD").is_some() {
        std::fs::write(path, &want).expect("write deploy/crd.yaml");
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "deploy/crd.yaml is stale: run UPDATE_CRD=1 cargo test -p ingress-kube crd"
    );
}

#[test]
fn the_yaml_reads_back_as_the_crd() {
    let docs = ingress_core::manifest::parse_documents(&crd_yaml()).expect("valid YAML");
    let crd = serde_json::to_value(
        <ingress_kube::IngressGatewayConfig as kube::CustomResourceExt>::crd(),
    )
    .expect("json");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].value, crd);
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(
        crd["metadata"]["name"],
        "ingressgatewayconfigs.gateway.ingress-rs.io"
    );
}

#[test]
fn deploy_manifests_parse_and_rbac_is_least_privilege() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let mut kinds = Vec::new();
    for file in [
        "crd.yaml",
        "namespace.yaml",
        "rbac.yaml",
        "service.yaml",
        "deployment.yaml",
        "ingressclass.yaml",
        "gateway-config.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("read");
        for doc in ingress_core::manifest::parse_documents(&text).expect(file) {
            kinds.push(doc.value["kind"].as_str().unwrap_or("").to_owned());
            if doc.value["kind"] == "ClusterRole" || doc.value["kind"] == "Role" {
                for rule in doc.value["rules"].as_array().expect("rules") {
                    let verbs: Vec<&str> = rule["verbs"]
                        .as_array()
                        .expect("verbs")
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect();
                    let resources: Vec<&str> = rule["resources"]
                        .as_array()
                        .expect("resources")
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect();
                    assert!(!verbs.contains(&"*") && !resources.contains(&"*"), "{rule}");
                    for v in &verbs {
                        let writes = ["create", "update", "patch"].contains(v);
                        let allowed = !writes
                            || resources.iter().all(|r| {
                                r.ends_with("/status") || *r == "events" || *r == "leases"
                            });
                        assert!(allowed, "{v} on {resources:?}");
                    }
                }
            }
        }
    }
    for kind in [
        "CustomResourceDefinition",
        "ClusterRole",
        "ServiceAccount",
        "ClusterRoleBinding",
        "Deployment",
        "IngressClass",
        "IngressGatewayConfig",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in deploy/");
    }
    // The sample gateway config is valid.
    let text = std::fs::read_to_string(format!("{dir}/gateway-config.yaml")).expect("read");
    let doc = &ingress_core::manifest::parse_documents(&text).expect("yaml")[0];
    let cfg: ingress_kube::IngressGatewayConfig =
        serde_json::from_value(doc.value.clone()).expect("config");
    ingress_kube::gateway::validate(&cfg.spec).expect("valid sample config");
}
