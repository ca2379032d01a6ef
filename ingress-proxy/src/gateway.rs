//! The gateway config (`IngressGatewayConfig`) at runtime, in `--kube` mode.
//!
//! The flags build the [`ServiceOptions`] the proxy starts with; each table the
//! cluster publishes carries the gateway config applied to it
//! (`ingress_kube::Published::applied_gateway`). [`RuntimeOptions::merge`] lays
//! that config over the flags: **a field the config sets wins; a field it leaves
//! out keeps the flag's value**. The result travels with the table in
//! [`Live`](crate::Live), so a request reads the table and its settings with the
//! same single atomic load, and finishes with the settings it started with.
//!
//! What changes at runtime: trusted proxies, the global IP allow/deny lists, the
//! Redis store of global limits (a new connection when its address or settings
//! change), outlier detection (`circuitBreaker`), the upstream timeouts, whether
//! requests are logged, and the client connection limits (`limits`, laid over the
//! flags' [`Limits`](crate::Limits) for each connection accepted after the table is
//! live; open connections keep theirs). What does not: listeners (bound at start; a
//! config naming them is logged), the access log format (`--log-format` at start)
//! and the timeouts of external auth and mirror copies (the flags').

use std::net::IpAddr;
use std::sync::Arc;

use ingress_core::limits::FailMode;
use ingress_kube::GatewayConfig;
use ingress_kube::gateway::{AccessLogFormat, FailureMode};
use ipnet::IpNet;

use crate::global::{GlobalConfig, GlobalLimits};
use crate::headers::TrustedProxies;
use crate::service::ServiceOptions;

/// Global IP access control, applied to the client address (after
/// `X-Forwarded-For` from trusted proxies) before any route: a denied client gets
/// 403.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAccess {
    /// When not empty, only these networks are served.
    pub allow: Vec<IpNet>,
    /// These networks are refused, whatever `allow` says.
    pub deny: Vec<IpNet>,
}

impl IpAccess {
    /// Whether `ip` may be served.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// The settings a table served from the cluster carries: the flags' options with
/// the gateway config laid over them.
#[derive(Debug)]
pub struct RuntimeOptions {
    /// The merged options.
    pub(crate) service: ServiceOptions,
    /// The Redis store the config names (`None`: the flags' store, if any).
    pub(crate) global: Option<Arc<GlobalLimits>>,
    /// The config these were made from.
    config: GatewayConfig,
}

impl RuntimeOptions {
    /// Lay `config` over `base` (the flags' options). `previous` lends its Redis
    /// connection when the Redis settings are unchanged. Starts a Redis connection
    /// task when the config names a new store: call it within a Tokio runtime.
    pub fn merge(
        base: &ServiceOptions,
        config: &GatewayConfig,
        previous: Option<&RuntimeOptions>,
    ) -> RuntimeOptions {
        let mut service = base.clone();
        if !config.trusted_proxies.is_empty() {
            service.trusted = TrustedProxies::new(config.trusted_proxies.clone());
        }
        if !config.allow.is_empty() || !config.deny.is_empty() {
            service.ip_access = IpAccess {
                allow: config.allow.clone(),
                deny: config.deny.clone(),
            };
        }
        if let Some(t) = config.timeouts.connect {
            service.connect_timeout = t;
        }
        if let Some(t) = config.timeouts.read {
            service.read_timeout = t;
        }
        if let Some(t) = config.timeouts.send {
            service.send_timeout = t;
        }
        if let Some(cb) = &config.circuit_breaker {
            service.outlier.consecutive_5xx = cb.consecutive_errors;
            service.outlier.consecutive_gateway_failure = cb.consecutive_errors;
            service.outlier.base_ejection = cb.base_ejection_time;
            service.outlier.max_ejection = service.outlier.max_ejection.max(cb.base_ejection_time);
            service.outlier.max_ejection_percent = cb.max_ejection_percent;
        }
        service.access_log = config.access_log.enabled;
        if config.access_log.format == AccessLogFormat::Json {
            tracing::info!(
                "gateway config: accessLog.format is set at start by --log-format; not changed at runtime"
            );
        }
        if !config.listeners.is_empty() {
            tracing::warn!(
                listeners = config.listeners.len(),
                "gateway config: listeners take effect only at start (--listen-*); restart to change them"
            );
        }
        let global = config.global_rate_limit.as_ref().and_then(|g| {
            let redis = match g.redis_address.parse() {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway config: globalRateLimit.redisAddress not usable; the flags' store stays");
                    return None;
                }
            };
            let mut c = GlobalConfig::new(redis);
            c.fail = match g.failure_mode {
                FailureMode::Open => FailMode::Open,
                FailureMode::Closed => FailMode::Closed,
            };
            c.timeout = g.timeout;
            Some(c)
        });
        let global = global.map(|c| {
            let reuse = previous
                .and_then(|p| p.global.as_ref())
                .filter(|p| p.config() == &c);
            match reuse {
                Some(g) => g.clone(),
                None => Arc::new(GlobalLimits::start(c)),
            }
        });
        if let Some(g) = &global {
            service.global_limits = Some(g.config().clone());
        }
        RuntimeOptions {
            service,
            global,
            config: config.clone(),
        }
    }

    /// The gateway config these options were made from.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The merged options requests are served with.
    pub fn service(&self) -> &ServiceOptions {
        &self.service
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_and_allow_restricts() {
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let open = IpAccess::default();
        assert!(open.allows(ip("192.0.2.1")));
        let a = IpAccess {
            allow: vec![net("10.0.0.0/8")],
            deny: vec![net("10.1.0.0/16")],
        };
        assert!(a.allows(ip("10.2.3.4")));
        assert!(!a.allows(ip("10.1.3.4")));
        assert!(!a.allows(ip("192.0.2.1")));
        assert!(a.allows(ip("::ffff:10.2.3.4")));
    }

    #[test]
    fn config_fields_win_and_absent_ones_keep_the_flags() {
        let base = ServiceOptions {
            read_timeout: std::time::Duration::from_secs(7),
            ..ServiceOptions::default()
        };
        let mut config = GatewayConfig::default();
        config.trusted_proxies = vec!["10.0.0.0/8".parse().expect("net")];
        config.timeouts.connect = Some(std::time::Duration::from_millis(250));
        let r = RuntimeOptions::merge(&base, &config, None);
        assert!(r.service.trusted.contains("10.1.2.3".parse().expect("ip")));
        assert_eq!(r.service.connect_timeout.as_millis(), 250);
        assert_eq!(r.service.read_timeout.as_secs(), 7);
        assert!(r.global.is_none());
        assert!(r.service.access_log);
    }

    #[tokio::test]
    async fn the_redis_store_is_kept_while_its_settings_are() {
        use ingress_kube::gateway::GlobalRateLimit;
        let base = ServiceOptions::default();
        let mut config = GatewayConfig::default();
        config.global_rate_limit = Some(GlobalRateLimit {
            redis_address: "127.0.0.1:1".into(),
            failure_mode: FailureMode::Closed,
            timeout: std::time::Duration::from_millis(20),
        });
        let first = RuntimeOptions::merge(&base, &config, None);
        let g1 = first.global.clone().expect("a store");
        assert_eq!(g1.config().fail, FailMode::Closed);
        assert_eq!(
            first.service.global_limits.as_ref().map(|g| g.timeout),
            Some(std::time::Duration::from_millis(20))
        );
        // Another field changes: same connection.
        config.trusted_proxies = vec!["10.0.0.0/8".parse().expect("net")];
        let second = RuntimeOptions::merge(&base, &config, Some(&first));
        assert!(Arc::ptr_eq(&g1, second.global.as_ref().expect("a store")));
        // The address changes: a new one.
        if let Some(g) = config.global_rate_limit.as_mut() {
            g.redis_address = "127.0.0.1:2".into();
        }
        let third = RuntimeOptions::merge(&base, &config, Some(&second));
        assert!(!Arc::ptr_eq(&g1, third.global.as_ref().expect("a store")));
        // Not usable here (TLS): the flags' store (none here) stays.
        if let Some(g) = config.global_rate_limit.as_mut() {
            g.redis_address = "rediss://cache:6380".into();
        }
        let fourth = RuntimeOptions::merge(&base, &config, Some(&third));
        assert!(fourth.global.is_none() && fourth.service.global_limits.is_none());
    }
}
