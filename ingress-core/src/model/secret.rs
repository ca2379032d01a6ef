use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::meta::{ObjectMeta, null_as_default};

/// A `v1` Secret (TLS certificates, auth files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `type`, e.g. `kubernetes.io/tls` or `Opaque`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `data`: base64 on the wire, bytes here.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: BTreeMap<String, SecretData>,
    /// `stringData`: plain strings, merged over `data` as the API server does.
    #[serde(default, deserialize_with = "null_as_default")]
    pub string_data: BTreeMap<String, String>,
}

impl Secret {
    /// The bytes of one key, `stringData` first (it overrides `data`, as on write).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.string_data
            .get(key)
            .map(String::as_bytes)
            .or_else(|| self.data.get(key).map(|d| d.0.as_slice()))
    }
}

/// Secret bytes; (de)serialized as base64. `Debug` never prints the content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(pub Vec<u8>);

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretData({} bytes)", self.0.len())
    }
}

impl Serialize for SecretData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map(SecretData)
            .map_err(|e| serde::de::Error::custom(format!("not valid base64: {e}")))
    }
}
