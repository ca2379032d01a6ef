//! The gateway config CRD, `IngressGatewayConfig` (`gateway.ingress-rs.io/v1alpha1`),
//! our counterpart of MSE's `MseIngressConfig`.
//!
//! A cluster-scoped object that an IngressClass of this controller references through
//! `spec.parameters` (`apiGroup: gateway.ingress-rs.io`, `kind: IngressGatewayConfig`).
//! It holds what is global to the gateway. The spec keeps the wire values as written
//! (strings stay strings, so one bad value never breaks the watch); [`validate`] turns
//! it into a typed [`GatewayConfig`] or a list of [`ConfigError`]s, and the leader
//! reports the outcome in `status` (`accepted`, `reason`, `message`).

use std::net::IpAddr;
use std::time::Duration;

use ingress_core::Profile;
use ingress_core::model::{ObjectKind, ObjectRef};
use ipnet::IpNet;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[path = "gateway_limits.rs"]
mod limits;
pub use limits::{GatewayLimits, LimitsSpec, limit_ranges};

/// The API group of the gateway config.
pub const GROUP: &str = "gateway.ingress-rs.io";
/// The kind of the gateway config.
pub const KIND: &str = "IngressGatewayConfig";

/// `IngressGatewayConfig.spec`: everything global to one gateway (one IngressClass).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.ingress-rs.io",
    version = "v1alpha1",
    kind = "IngressGatewayConfig",
    shortname = "igc",
    status = "IngressGatewayConfigStatus",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.accepted"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason"}"#,
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct IngressGatewayConfigSpec {
    /// Behaviour profile: `standard` (default) or `ingress-nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The data plane's listeners (default: HTTP on 8080, HTTPS on 8443).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerSpec>,
    /// Peers (CIDRs or addresses) whose X-Forwarded-For and X-Forwarded-Proto are believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// The certificate served when no Ingress TLS host matches (a `kubernetes.io/tls` Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_tls_certificate: Option<SecretReference>,
    /// Global IP access lists, applied before any route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_access: Option<IpAccessSpec>,
    /// The shared store for global rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_rate_limit: Option<GlobalRateLimitSpec>,
    /// Circuit breaker defaults for every backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Upstream timeout defaults for routes without timeout annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsSpec>,
    /// Access log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSpec>,
    /// A custom annotation prefix (e.g. `example.com/`), read before the standard ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// The highest annotation risk level allowed (ingress-nginx's
    /// `annotations-risk-level`): `low`, `medium`, `high` (default) or `critical`. An
    /// Ingress using a key above it gets an error and its routes answer 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations_risk_level: Option<String>,
    /// Bounds on client connections (sizes, counts, timeouts, HTTP/2 settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
}

/// One listener.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// A name, unique among the listeners.
    pub name: String,
    /// The port, 1 to 65535.
    pub port: i64,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
}

/// A reference to a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

/// Global IP access lists.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpAccessSpec {
    /// When not empty, only these CIDRs are served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// These CIDRs are refused (403), whatever `allow` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// The Redis store for global rate limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalRateLimitSpec {
    /// `host:port` of the Redis server.
    pub redis_address: String,
    /// What happens when Redis cannot be reached: `Open` (serve, default) or `Closed` (refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<String>,
    /// How long one Redis call may take (default `50ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Circuit breaker defaults.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerSpec {
    /// Consecutive 5xx or connect failures that eject an endpoint (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i64>,
    /// How long an ejected endpoint stays out (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// At most this share of a backend's endpoints is ejected, 0 to 100 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i64>,
}

/// Upstream timeout defaults (`500ms`, `5s`, `2m`, `1h`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsSpec {
    /// TCP connect timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// Response head and body read timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// Request write timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
}

/// Access log settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSpec {
    /// Whether requests are logged (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `text` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `IngressGatewayConfig.status`, written by the leader.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressGatewayConfigStatus {
    /// Whether the spec was valid and is in effect.
    pub accepted: bool,
    /// `Accepted` or `Invalid`.
    pub reason: String,
    /// What is wrong, one problem per line; empty when accepted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `metadata.generation` the status is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A listener protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerProtocol {
    /// Plain HTTP (HTTP/1.1, h2c).
    Http,
    /// TLS (HTTP/1.1, HTTP/2 by ALPN).
    Https,
}

/// A validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// Its port.
    pub port: u16,
    /// Its protocol.
    pub protocol: ListenerProtocol,
}

/// What the gateway does when the global limit store cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Serve the request (no limit is applied).
    #[default]
    Open,
    /// Refuse the request (503).
    Closed,
}

/// The validated global rate-limit store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRateLimit {
    /// `host:port` of the Redis server.
    pub redis_address: String,
    /// What happens when it cannot be reached.
    pub failure_mode: FailureMode,
    /// Time allowed for one call.
    pub timeout: Duration,
}

/// Validated circuit breaker defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Consecutive errors that eject an endpoint.
    pub consecutive_errors: u32,
    /// How long an ejected endpoint stays out.
    pub base_ejection_time: Duration,
    /// The largest share of endpoints ejected at once, in percent.
    pub max_ejection_percent: u8,
}

/// Validated timeout defaults (`None`: the data plane's own default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    /// Connect timeout.
    pub connect: Option<Duration>,
    /// Read timeout.
    pub read: Option<Duration>,
    /// Send timeout.
    pub send: Option<Duration>,
}

/// Access log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// One human-readable line.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated access log settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLog {
    /// Whether requests are logged.
    pub enabled: bool,
    /// The format.
    pub format: AccessLogFormat,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            enabled: true,
            format: AccessLogFormat::Text,
        }
    }
}

/// A gateway config, validated: every value typed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The behaviour profile.
    pub profile: Profile,
    /// The listeners (empty: the data plane's flags decide).
    pub listeners: Vec<Listener>,
    /// Trusted proxies for X-Forwarded-For.
    pub trusted_proxies: Vec<IpNet>,
    /// The default certificate's Secret.
    pub default_tls_certificate: Option<ObjectRef>,
    /// Global allow list (empty: everyone).
    pub allow: Vec<IpNet>,
    /// Global deny list.
    pub deny: Vec<IpNet>,
    /// The global rate-limit store.
    pub global_rate_limit: Option<GlobalRateLimit>,
    /// Circuit breaker defaults.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Timeout defaults.
    pub timeouts: Timeouts,
    /// Access log settings.
    pub access_log: AccessLog,
    /// The custom annotation prefix, ending in `/`.
    pub annotation_prefix: Option<String>,
    /// The highest annotation risk level allowed (`None`: the data plane's flag).
    pub annotations_risk_level: Option<ingress_core::annotations::Risk>,
    /// Client connection limits (`None` fields keep the data plane's flags).
    pub limits: GatewayLimits,
}

/// One invalid field of a gateway config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The field path, e.g. `spec.listeners[1].port`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Validate a spec into a [`GatewayConfig`]; every problem is reported, not just the first.
pub fn validate(spec: &IngressGatewayConfigSpec) -> Result<GatewayConfig, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let mut err = |field: String, message: String| errs.push(ConfigError { field, message });
    let mut cfg = GatewayConfig::default();
    if let Some(p) = &spec.profile {
        match p.parse() {
            Ok(p) => cfg.profile = p,
            Err(e) => err("spec.profile".into(), format!("{e}")),
        }
    }
    for (i, l) in spec.listeners.iter().enumerate() {
        let at = format!("spec.listeners[{i}]");
        if l.name.is_empty() {
            err(format!("{at}.name"), "must not be empty".into());
        } else if spec.listeners[..i].iter().any(|o| o.name == l.name) {
            err(format!("{at}.name"), format!("{:?} is used twice", l.name));
        }
        let port = u16::try_from(l.port).ok().filter(|p| *p != 0);
        if port.is_none() {
            err(
                format!("{at}.port"),
                format!("{} is not a port (1-65535)", l.port),
            );
        } else if spec.listeners[..i].iter().any(|o| o.port == l.port) {
            err(format!("{at}.port"), format!("{} is used twice", l.port));
        }
        let protocol = match l.protocol.as_str() {
            "HTTP" => Some(ListenerProtocol::Http),
            "HTTPS" => Some(ListenerProtocol::Https),
            other => {
                err(
                    format!("{at}.protocol"),
                    format!("{other:?}: expected \"HTTP\" or \"HTTPS\""),
                );
                None
            }
        };
        if let (Some(port), Some(protocol)) = (port, protocol) {
            cfg.listeners.push(Listener {
                name: l.name.clone(),
                port,
                protocol,
            });
        }
    }
    cfg.trusted_proxies = cidrs(&spec.trusted_proxies, "spec.trustedProxies", &mut err);
    if let Some(s) = &spec.default_tls_certificate {
        if s.name.is_empty() || s.namespace.is_empty() {
            err(
                "spec.defaultTlsCertificate".into(),
                "namespace and name are required".into(),
            );
        } else {
            cfg.default_tls_certificate = Some(ObjectRef::namespaced(
                ObjectKind::Secret,
                &s.namespace,
                &s.name,
            ));
        }
    }
    if let Some(a) = &spec.ip_access {
        cfg.allow = cidrs(&a.allow, "spec.ipAccess.allow", &mut err);
        cfg.deny = cidrs(&a.deny, "spec.ipAccess.deny", &mut err);
    }
    if let Some(g) = &spec.global_rate_limit {
        let address_ok = g
            .redis_address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !address_ok {
            err(
                "spec.globalRateLimit.redisAddress".into(),
                format!("{:?} is not host:port", g.redis_address),
            );
        }
        let failure_mode = match g.failure_mode.as_deref() {
            None | Some("Open") => FailureMode::Open,
            Some("Closed") => FailureMode::Closed,
            Some(other) => {
                err(
                    "spec.globalRateLimit.failureMode".into(),
                    format!("{other:?}: expected \"Open\" or \"Closed\""),
                );
                FailureMode::Open
            }
        };
        let timeout = duration(
            g.timeout.as_deref(),
            "spec.globalRateLimit.timeout",
            &mut err,
        )
        .unwrap_or(Duration::from_millis(50));
        if address_ok {
            cfg.global_rate_limit = Some(GlobalRateLimit {
                redis_address: g.redis_address.clone(),
                failure_mode,
                timeout,
            });
        }
    }
    if let Some(b) = &spec.circuit_breaker {
        let consecutive_errors = match b.consecutive_errors.map(u32::try_from) {
            None => 5,
            Some(Ok(n)) if n > 0 => n,
            Some(_) => {
                err(
                    "spec.circuitBreaker.consecutiveErrors".into(),
                    "must be a positive number".into(),
                );
                5
            }
        };
        let max_ejection_percent = match b.max_ejection_percent.map(u8::try_from) {
            None => 50,
            Some(Ok(n)) if n <= 100 => n,
            Some(_) => {
                err(
                    "spec.circuitBreaker.maxEjectionPercent".into(),
                    "must be 0 to 100".into(),
                );
                50
            }
        };
        let base_ejection_time = duration(
            b.base_ejection_time.as_deref(),
            "spec.circuitBreaker.baseEjectionTime",
            &mut err,
        )
        .unwrap_or(Duration::from_secs(30));
        cfg.circuit_breaker = Some(CircuitBreaker {
            consecutive_errors,
            base_ejection_time,
            max_ejection_percent,
        });
    }
    if let Some(t) = &spec.timeouts {
        cfg.timeouts = Timeouts {
            connect: duration(t.connect.as_deref(), "spec.timeouts.connect", &mut err),
            read: duration(t.read.as_deref(), "spec.timeouts.read", &mut err),
            send: duration(t.send.as_deref(), "spec.timeouts.send", &mut err),
        };
    }
    if let Some(a) = &spec.access_log {
        cfg.access_log.enabled = a.enabled.unwrap_or(true);
        cfg.access_log.format = match a.format.as_deref() {
            None | Some("text") => AccessLogFormat::Text,
            Some("json") => AccessLogFormat::Json,
            Some(other) => {
                err(
                    "spec.accessLog.format".into(),
                    format!("{other:?}: expected \"text\" or \"json\""),
                );
                AccessLogFormat::Text
            }
        };
    }
    if let Some(level) = &spec.annotations_risk_level {
        match level.parse::<ingress_core::annotations::Risk>() {
            Ok(r) => cfg.annotations_risk_level = Some(r),
            Err(e) => err("spec.annotationsRiskLevel".into(), e.to_string()),
        }
    }
    if let Some(p) = &spec.annotation_prefix {
        let name = p.strip_suffix('/').unwrap_or(p);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if valid {
            cfg.annotation_prefix = Some(format!("{name}/"));
        } else {
            err(
                "spec.annotationPrefix".into(),
                format!("{p:?} is not a DNS subdomain prefix such as \"example.com/\""),
            );
        }
    }
    if let Some(l) = &spec.limits {
        cfg.limits = limits::validate_limits(l, &mut err);
    }
    if errs.is_empty() { Ok(cfg) } else { Err(errs) }
}

fn cidrs(values: &[String], field: &str, err: &mut impl FnMut(String, String)) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let v = v.trim();
        match v
            .parse::<IpNet>()
            .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => out.push(n),
            Err(_) => err(
                format!("{field}[{i}]"),
                format!("{v:?} is not a CIDR (10.0.0.0/8) or an IP address"),
            ),
        }
    }
    out
}

fn duration(
    value: Option<&str>,
    field: &str,
    err: &mut impl FnMut(String, String),
) -> Option<Duration> {
    let v = value?;
    match parse_duration(v) {
        Some(d) => Some(d),
        None => {
            err(
                field.to_owned(),
                format!("{v:?} is not a duration (500ms, 5s, 2m, 1h)"),
            );
            None
        }
    }
}

/// `500ms`, `5s`, `2m`, `1h` (a whole number and one unit).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

impl IngressGatewayConfigStatus {
    /// The status for a validation outcome.
    pub fn of(result: &Result<GatewayConfig, Vec<ConfigError>>, generation: Option<i64>) -> Self {
        match result {
            Ok(_) => IngressGatewayConfigStatus {
                accepted: true,
                reason: "Accepted".into(),
                message: String::new(),
                observed_generation: generation,
            },
            Err(errs) => IngressGatewayConfigStatus {
                accepted: false,
                reason: "Invalid".into(),
                message: errs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                observed_generation: generation,
            },
        }
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;
