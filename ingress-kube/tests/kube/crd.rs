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
