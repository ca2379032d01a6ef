//! k8s-openapi objects into ingress-core's model.
//!
//! Both sides speak the Kubernetes wire format, so the conversion goes through JSON:
//! the k8s-openapi object is serialized and read back by ingress-core's serde types
//! (which keep only the fields routing needs). One object that does not convert
//! becomes a diagnostic and is left out alone.

use ingress_core::model::{ObjectKind, ObjectRef};
use ingress_core::{Code, Diagnostic};
use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Convert one object of kind `kind` (`T` is the ingress-core type).
///
/// Errors become a [`Code::ManifestInvalidObject`] diagnostic naming the object.
pub fn convert<K, T>(kind: ObjectKind, object: &K) -> Result<T, Diagnostic>
where
    K: Resource + kube::Resource + Serialize,
    T: DeserializeOwned,
{
    let r = object_ref(kind, object);
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|e| {
            Diagnostic::new(
                Code::ManifestInvalidObject,
                Some(r),
                None,
                format!("{e}; the {kind} is skipped"),
            )
        })
}

/// The ingress-core reference of a kube object.
pub fn object_ref<K: kube::Resource>(kind: ObjectKind, object: &K) -> ObjectRef {
    let meta = object.meta();
    let name = meta.name.as_deref().unwrap_or("");
    if kind.is_namespaced() {
        let ns = meta
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default");
        ObjectRef::namespaced(kind, ns, name)
    } else {
        ObjectRef::cluster(kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::networking::v1::Ingress;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn an_ingress_converts_with_its_fields() {
        let ing: Ingress = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2024-05-01T10:00:00Z",
                         "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
            "spec": {"ingressClassName": "gw", "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {}}
        }))
        .expect("valid ingress");
        let core: ingress_core::model::Ingress =
            convert(ObjectKind::Ingress, &ing).expect("converts");
        assert_eq!(core.metadata.name, "web");
        assert_eq!(core.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(core.spec.ingress_class_name.as_deref(), Some("gw"));
        assert_eq!(
            core.metadata.creation_timestamp.map(|t| t.unix()),
            Some(1_714_557_600)
        );
        assert_eq!(core.spec.rules[0].host.as_deref(), Some("a.example.com"));
    }

    #[test]
    fn secret_bytes_survive() {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some("tls".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some([("tls.crt".to_owned(), ByteString(b"\x00\xffpem".to_vec()))].into()),
            ..Secret::default()
        };
        let core: ingress_core::model::Secret = convert(ObjectKind::Secret, &s).expect("converts");
        assert_eq!(core.get("tls.crt"), Some(&b"\x00\xffpem"[..]));
        assert_eq!(
            object_ref(ObjectKind::Secret, &s).to_string(),
            ObjectRef::namespaced(ObjectKind::Secret, "shop", "tls").to_string()
        );
    }
}
