//! The `resilience` family: per-route outlier detection and circuit breaking, read
//! under this project's own prefix `ingress-rs.io/` (neither ingress-nginx nor
//! Higress has keys for them).
//!
//! The names follow Envoy's `outlier_detection` (`consecutive_5xx`,
//! `consecutive_gateway_failure`, `base_ejection_time`, `max_ejection_time`,
//! `max_ejection_percent`) and `circuit_breakers.thresholds` (`max_requests`,
//! `max_retries`), kebab-cased and grouped under `outlier-` and `circuit-`; the
//! gateway-wide defaults are the proxy's `--outlier-*` and `--circuit-*` flags (or
//! the gateway config's `circuitBreaker`), and each key overrides one of them for
//! the routes of the Ingress that carries it. The state machines they tune are
//! [`crate::lb::outlier`] and [`crate::lb::circuit`].
//!
//! Scope: these settings belong to an upstream cluster. A data plane keeps one
//! cluster (passive health, in-flight counts) per Service port *and* distinct set
//! of values: routes to the same Service port with the same overrides (or none)
//! share one; a route with its own values gets its own, so its ejections and its
//! ceilings neither affect nor are affected by the other routes' traffic.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ingress_core::annotations::{parse, AnnotationOptions};
//! use ingress_core::lb::circuit::CircuitLimits;
//! use ingress_core::model::{ObjectKind, ObjectRef};
//!
//! let mut a = BTreeMap::new();
//! a.insert("ingress-rs.io/circuit-max-requests".to_owned(), "10".to_owned());
//! let obj = ObjectRef::namespaced(ObjectKind::Ingress, "shop", "cart");
//! let p = parse(&a, &obj, &AnnotationOptions::default());
//! assert!(p.diagnostics.is_empty());
//! let limits = p.policy.resilience.circuit.apply(&CircuitLimits::default());
//! assert_eq!((limits.max_requests, limits.max_retries), (10, 3));
//! ```

use std::time::Duration;

use super::spec::Prefixes;
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};
use crate::lb::circuit::CircuitLimits;
use crate::lb::outlier::OutlierConfig;

/// A route's own outlier detection values; `None` keeps the gateway's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OutlierOverrides {
    /// `outlier-consecutive-5xx` (0: this check off).
    pub consecutive_5xx: Option<u32>,
    /// `outlier-consecutive-gateway-failures` (0: this check off).
    pub consecutive_gateway_failure: Option<u32>,
    /// `outlier-base-ejection-time`.
    pub base_ejection: Option<Duration>,
    /// `outlier-max-ejection-time`.
    pub max_ejection: Option<Duration>,
    /// `outlier-max-ejection-percent` (0: never eject).
    pub max_ejection_percent: Option<u8>,
}

impl OutlierOverrides {
    /// Whether no value is overridden.
    pub fn is_empty(&self) -> bool {
        *self == OutlierOverrides::default()
    }

    /// `defaults` with these values in place of theirs.
    pub fn apply(&self, defaults: &OutlierConfig) -> OutlierConfig {
        OutlierConfig {
            consecutive_5xx: self.consecutive_5xx.unwrap_or(defaults.consecutive_5xx),
            consecutive_gateway_failure: self
                .consecutive_gateway_failure
                .unwrap_or(defaults.consecutive_gateway_failure),
            base_ejection: self.base_ejection.unwrap_or(defaults.base_ejection),
            max_ejection: self.max_ejection.unwrap_or(defaults.max_ejection),
            max_ejection_percent: self
                .max_ejection_percent
                .unwrap_or(defaults.max_ejection_percent),
        }
    }
}

/// A route's own circuit-breaker ceilings; `None` keeps the gateway's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CircuitOverrides {
    /// `circuit-max-requests` (0: no limit).
    pub max_requests: Option<u32>,
    /// `circuit-max-retries` (0: no limit).
    pub max_retries: Option<u32>,
}

impl CircuitOverrides {
    /// Whether no value is overridden.
    pub fn is_empty(&self) -> bool {
        *self == CircuitOverrides::default()
    }

    /// `defaults` with these values in place of theirs.
    pub fn apply(&self, defaults: &CircuitLimits) -> CircuitLimits {
        CircuitLimits {
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            max_retries: self.max_retries.unwrap_or(defaults.max_retries),
        }
    }
}

/// The outlier detection and circuit breaking values of one Ingress's routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ResiliencePolicy {
    /// Outlier detection.
    pub outlier: OutlierOverrides,
    /// Circuit breaking.
    pub circuit: CircuitOverrides,
}

impl ResiliencePolicy {
    /// Whether no value is overridden.
    pub fn is_empty(&self) -> bool {
        self.outlier.is_empty() && self.circuit.is_empty()
    }
}

const fn key(name: &'static str) -> KeySpec {
    KeySpec::new(name, Family::Resilience).prefixes(Prefixes::Project)
}

const CONSECUTIVE_5XX: KeySpec = key("outlier-consecutive-5xx")
    .grammar("whole number (`0`: this check off)")
    .default("the gateway's (`--outlier-consecutive-5xx`, 5)")
    .doc("Eject an endpoint after this many 5xx answers in a row (gateway failures included) on these routes' traffic. Envoy `consecutive_5xx`.");
const CONSECUTIVE_GATEWAY: KeySpec = key("outlier-consecutive-gateway-failures")
    .grammar("whole number (`0`: this check off)")
    .default("the gateway's (`--outlier-consecutive-gateway-failures`, 5)")
    .doc("Eject an endpoint after this many gateway failures in a row (connect error, reset, timeout, 502, 503, 504). Envoy `consecutive_gateway_failure`.");
const BASE_EJECTION: KeySpec = key("outlier-base-ejection-time")
    .grammar("whole seconds or a time (`500ms`, `30s`, `5m`, `1h`), above 0")
    .default("the gateway's (`--outlier-base-ejection`, 30s)")
    .doc("The first ejection's length; the n-th in a row lasts n times it. Envoy `base_ejection_time`.");
const MAX_EJECTION: KeySpec = key("outlier-max-ejection-time")
    .grammar("whole seconds or a time, above 0 and not below outlier-base-ejection-time when both are set")
    .default("the gateway's (`--outlier-max-ejection`, 300s)")
    .doc("The longest ejection. Envoy `max_ejection_time`.");
const MAX_EJECTION_PERCENT: KeySpec = key("outlier-max-ejection-percent")
    .grammar("whole number 0 to 100 (`0`: never eject)")
    .default("the gateway's (`--outlier-max-ejection-percent`, 50)")
    .doc("The most endpoints of the cluster ejected at once, a ceiling that holds after the ejection (a single endpoint is never ejected below 100). Envoy `max_ejection_percent`.");
const MAX_REQUESTS: KeySpec = key("circuit-max-requests")
    .grammar("whole number (`0`: no limit)")
    .default("the gateway's (`--circuit-max-requests`, 1024)")
    .doc("Requests of these routes in flight to the Service port at once; beyond, 503 at once without upstream contact. Envoy `max_requests`.");
const MAX_RETRIES: KeySpec = key("circuit-max-retries")
    .grammar("whole number (`0`: no limit)")
    .default("the gateway's (`--circuit-max-retries`, 3)")
    .doc("Retries of these routes in flight at once; beyond, a failed try is answered instead of retried. Envoy `max_retries`.");

static KEYS: &[KeySpec] = &[
    CONSECUTIVE_5XX,
    CONSECUTIVE_GATEWAY,
    BASE_EJECTION,
    MAX_EJECTION,
    MAX_EJECTION_PERCENT,
    MAX_REQUESTS,
    MAX_RETRIES,
];

/// A count: a whole number that fits `u32`.
fn count(s: &str) -> Result<u32, Invalid> {
    let n = values::uint_max(s, u64::from(u32::MAX))?;
    u32::try_from(n).map_err(|_| "the number is too large".to_string())
}

/// An ejection time: above zero.
fn ejection_time(s: &str) -> Result<Duration, Invalid> {
    let d = values::seconds(s)?;
    if d.is_zero() {
        return Err("an ejection time of 0 ejects nothing; to turn ejection off set outlier-max-ejection-percent to 0".into());
    }
    Ok(d)
}

/// A percentage, 0 to 100.
fn percent(s: &str) -> Result<u8, Invalid> {
    let n = values::uint_max(s, 100)?;
    u8::try_from(n).map_err(|_| "expected a whole number from 0 to 100".to_string())
}

/// The family.
#[derive(Debug)]
pub(crate) struct Resilience;

impl AnnotationFamily for Resilience {
    fn family(&self) -> Family {
        Family::Resilience
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let base = cx.parse(&BASE_EJECTION, ejection_time);
        let max = cx.take(&MAX_EJECTION).and_then(|raw| {
            let checked = ejection_time(raw.value).and_then(|max| match base {
                Some(b) if max < b => Err(format!(
                    "the longest ejection is shorter than outlier-base-ejection-time ({}ms)",
                    b.as_millis()
                )),
                _ => Ok(max),
            });
            match checked {
                Ok(max) => Some(max),
                Err(why) => {
                    cx.invalid(&raw, &why);
                    None
                }
            }
        });
        policy.resilience = ResiliencePolicy {
            outlier: OutlierOverrides {
                consecutive_5xx: cx.parse(&CONSECUTIVE_5XX, count),
                consecutive_gateway_failure: cx.parse(&CONSECUTIVE_GATEWAY, count),
                base_ejection: base,
                max_ejection: max,
                max_ejection_percent: cx.parse(&MAX_EJECTION_PERCENT, percent),
            },
            circuit: CircuitOverrides {
                max_requests: cx.parse(&MAX_REQUESTS, count),
                max_retries: cx.parse(&MAX_RETRIES, count),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::test_util::{N, codes, run, run_with};
    use crate::annotations::{AnnotationOptions, IngressPolicy};
    use crate::diagnostics::Code;

    const P: &str = "ingress-rs.io/";

    fn k(name: &str) -> String {
        format!("{P}{name}")
    }

    #[test]
    fn every_key_parses_into_its_override() {
        let p = run(&[
            (&k("outlier-consecutive-5xx"), "2"),
            (&k("outlier-consecutive-gateway-failures"), "0"),
            (&k("outlier-base-ejection-time"), "500ms"),
            (&k("outlier-max-ejection-time"), "10"),
            (&k("outlier-max-ejection-percent"), "100"),
            (&k("circuit-max-requests"), "64"),
            (&k("circuit-max-retries"), " 0 "),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let r = p.policy.resilience;
        assert_eq!(
            r.outlier,
            OutlierOverrides {
                consecutive_5xx: Some(2),
                consecutive_gateway_failure: Some(0),
                base_ejection: Some(Duration::from_millis(500)),
                max_ejection: Some(Duration::from_secs(10)),
                max_ejection_percent: Some(100),
            }
        );
        assert_eq!(
            r.circuit,
            CircuitOverrides {
                max_requests: Some(64),
                max_retries: Some(0),
            }
        );
        assert!(p.policy.fail_closed.is_none());
    }

    #[test]
    fn overrides_replace_only_their_own_defaults() {
        let p = run(&[
            (&k("outlier-consecutive-5xx"), "1"),
            (&k("circuit-max-retries"), "7"),
        ]);
        let defaults = OutlierConfig::default();
        let o = p.policy.resilience.outlier.apply(&defaults);
        assert_eq!(
            o,
            OutlierConfig {
                consecutive_5xx: 1,
                ..defaults
            }
        );
        let c = p.policy.resilience.circuit.apply(&CircuitLimits::default());
        assert_eq!((c.max_requests, c.max_retries), (1024, 7));
        // Nothing set: the defaults as they are, whatever they are.
        let none = ResiliencePolicy::default();
        assert!(none.is_empty());
        assert_eq!(none.outlier.apply(&OutlierConfig::OFF), OutlierConfig::OFF);
    }

    #[test]
    fn without_annotations_of_ours_the_policy_is_the_default() {
        let p = run(&[(&format!("{N}proxy-next-upstream-tries"), "2")]);
        assert!(p.policy.resilience.is_empty());
    }

    #[test]
    fn invalid_values_name_the_key_and_fail_closed() {
        for (name, value) in [
            ("outlier-consecutive-5xx", "-1"),
            ("outlier-consecutive-5xx", "five"),
            ("outlier-consecutive-gateway-failures", "4294967296"),
            ("outlier-base-ejection-time", "0"),
            ("outlier-base-ejection-time", "1.5s"),
            ("outlier-base-ejection-time", "30 s"),
            ("outlier-max-ejection-time", "0ms"),
            ("outlier-max-ejection-time", "1d"),
            ("outlier-max-ejection-percent", "101"),
            ("outlier-max-ejection-percent", "50%"),
            ("circuit-max-requests", ""),
            ("circuit-max-requests", "1e3"),
            ("circuit-max-retries", "+3"),
            ("circuit-max-retries", "3\n4"),
        ] {
            let key = k(name);
            let p = run(&[(&key, value)]);
            assert_eq!(
                codes(&p),
                vec![Code::AnnotationInvalidValue],
                "{name}: {value:?}"
            );
            let field = format!("metadata.annotations[\"{key}\"]");
            assert_eq!(p.diagnostics[0].field.as_deref(), Some(field.as_str()));
            assert!(p.diagnostics[0].message.contains(&key), "{name}");
            assert_eq!(
                p.policy.fail_closed.as_ref().map(|f| f.keys.clone()),
                Some(vec![key.clone()]),
                "{name}: {value:?}"
            );
            assert!(p.policy.resilience.is_empty(), "{name}: {value:?}");
        }
    }

    #[test]
    fn the_longest_ejection_may_not_be_shorter_than_the_first() {
        let key = k("outlier-max-ejection-time");
        let p = run(&[(&k("outlier-base-ejection-time"), "1m"), (&key, "30s")]);
        assert_eq!(codes(&p), vec![Code::AnnotationInvalidValue]);
        assert!(p.diagnostics[0].message.contains("shorter"), "{:?}", p);
        assert_eq!(
            p.policy.fail_closed.map(|f| f.keys),
            Some(vec![key.clone()])
        );
        // Equal is fine; alone, it is checked only against zero.
        let p = run(&[(&k("outlier-base-ejection-time"), "30"), (&key, "30s")]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let p = run(&[(&key, "1s")]);
        assert_eq!(
            p.policy.resilience.outlier.max_ejection,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn read_under_the_project_and_custom_prefixes_only() {
        for prefix in [
            N,
            "higress.io/",
            "mse.ingress.kubernetes.io/",
            "higress.ingress.kubernetes.io/",
        ] {
            let key = format!("{prefix}circuit-max-requests");
            let p = run(&[(&key, "5")]);
            assert!(p.policy.resilience.is_empty(), "{prefix}");
            assert_eq!(codes(&p), vec![Code::AnnotationUnknown], "{prefix}");
            assert!(
                p.diagnostics[0].message.contains("ingress-rs.io/"),
                "{}",
                p.diagnostics[0].message
            );
            assert!(p.policy.fail_closed.is_none());
        }
        let options = AnnotationOptions {
            custom_prefix: Some("example.com/".into()),
            ..AnnotationOptions::default()
        };
        let p = run_with(
            &[
                ("example.com/circuit-max-requests", "5"),
                (&k("circuit-max-requests"), "6"),
            ],
            &options,
        );
        assert_eq!(p.policy.resilience.circuit.max_requests, Some(5));
        assert_eq!(codes(&p), vec![Code::AnnotationShadowed]);
        // An nginx key is not read under the project prefix.
        let p = run(&[(&k("proxy-next-upstream-tries"), "1")]);
        assert_eq!(p.policy.retries, IngressPolicy::default().retries);
        assert_eq!(codes(&p), vec![Code::AnnotationUnknown]);
    }

    #[test]
    fn a_typo_under_the_project_prefix_gets_a_suggestion() {
        let p = run(&[(&k("circuit-max-request"), "5")]);
        assert_eq!(codes(&p), vec![Code::AnnotationUnknown]);
        assert!(
            p.diagnostics[0].message.contains("circuit-max-requests"),
            "{}",
            p.diagnostics[0].message
        );
    }
}
