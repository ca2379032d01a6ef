use serde::{Deserialize, Serialize};

use super::meta::{ObjectMeta, null_as_default};

/// A `networking.k8s.io/v1` Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default)]
    pub spec: IngressSpec,
}

/// `Ingress.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// `spec.ingressClassName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    /// `spec.defaultBackend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<IngressBackend>,
    /// `spec.tls`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tls: Vec<IngressTls>,
    /// `spec.rules`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<IngressRule>,
}

/// One entry of `spec.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Hosts the certificate serves.
    #[serde(default, deserialize_with = "null_as_default")]
    pub hosts: Vec<String>,
    /// The Secret (in the Ingress's namespace) holding `tls.crt` and `tls.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// One entry of `spec.rules`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// The host; absent or empty means every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The HTTP paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpIngressRuleValue>,
}

/// `rules[].http`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngressRuleValue {
    /// `rules[].http.paths`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub paths: Vec<HttpIngressPath>,
}

/// `rules[].http.paths[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpIngressPath {
    /// The path; required by the API for Exact and Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Exact`, `Prefix` or `ImplementationSpecific` (required by the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_type: Option<String>,
    /// Where matching requests go.
    #[serde(default)]
    pub backend: IngressBackend,
}

/// An Ingress backend: a Service port or a typed resource reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    /// A Service in the Ingress's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<IngressServiceBackend>,
    /// A resource reference (not supported by this gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<TypedLocalObjectReference>,
}

/// `backend.service`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressServiceBackend {
    /// The Service name.
    #[serde(default)]
    pub name: String,
    /// The Service port, by name or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<ServiceBackendPort>,
}

/// `backend.service.port`: exactly one of `name` or `number`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackendPort {
    /// The Service port's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Service port's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
}

/// `backend.resource` and `IngressClass.spec.parameters` style references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedLocalObjectReference {
    /// API group; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// A `networking.k8s.io/v1` IngressClass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClass {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default)]
    pub spec: IngressClassSpec,
}

/// `IngressClass.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClassSpec {
    /// The controller that implements this class, e.g. `k8s.io/ingress-nginx`.
    #[serde(default)]
    pub controller: String,
    /// Controller-specific parameters (our gateway config object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<IngressClassParameters>,
}

/// `IngressClass.spec.parameters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressClassParameters {
    /// API group of the referenced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// Kind of the referenced object.
    #[serde(default)]
    pub kind: String,
    /// Name of the referenced object.
    #[serde(default)]
    pub name: String,
    /// `Cluster` or `Namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Namespace when scope is `Namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl IngressClass {
    /// Whether the class carries `ingressclass.kubernetes.io/is-default-class: "true"`.
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .get("ingressclass.kubernetes.io/is-default-class")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}
