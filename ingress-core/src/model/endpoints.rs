use serde::{Deserialize, Serialize};

use super::meta::{ObjectMeta, null_as_default};

/// A `discovery.k8s.io/v1` EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Standard object metadata; the label `kubernetes.io/service-name` names the Service.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// The endpoints.
    #[serde(default, deserialize_with = "null_as_default")]
    pub endpoints: Vec<Endpoint>,
    /// The ports every endpoint of the slice serves.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<EndpointPort>,
}

impl EndpointSlice {
    /// The label that ties a slice to its Service.
    pub const SERVICE_NAME_LABEL: &'static str = "kubernetes.io/service-name";

    /// The Service this slice belongs to.
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(Self::SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

/// `EndpointSlice.endpoints[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Addresses of this endpoint (consumers use the first).
    #[serde(default, deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
    /// Readiness conditions.
    #[serde(default)]
    pub conditions: EndpointConditions,
}

/// `EndpointSlice.endpoints[].conditions`. Unset `ready`/`serving` mean true; unset
/// `terminating` means false (the API's documented defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConditions {
    /// Ready to receive traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Serving (may be true while terminating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

/// `EndpointSlice.ports[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// The Service port name this port serves (empty for a single unnamed port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port number on the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}
