//! The `access` family: client IP allow and deny lists.
//!
//! Deny is checked first, then allow (ingress-nginx emits deny entries before allow
//! entries, first match wins). An annotation replaces, never merges with, a global
//! list. Route-level lists (ingress-nginx and MSE spellings) take precedence over
//! MSE's domain-level lists. A request whose client address is unknown is denied
//! whenever an allow list exists.

use std::net::IpAddr;

use ipnet::IpNet;

use super::spec::{Prefixes, Risk, Scope};
use super::values;
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// IP allow and deny lists of one Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessPolicy {
    /// Route-level allow list.
    pub allow: Option<Vec<IpNet>>,
    /// Route-level deny list.
    pub deny: Option<Vec<IpNet>>,
    /// MSE domain-level allow list (host scope).
    pub domain_allow: Option<Vec<IpNet>>,
    /// MSE domain-level deny list (host scope).
    pub domain_deny: Option<Vec<IpNet>>,
}

/// Which list decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessVerdict {
    /// No list applies, or the address passed.
    Allowed,
    /// The deny list holds the address.
    Denied,
    /// An allow list exists and does not hold the address (or it is unknown).
    NotAllowed,
}

impl AccessPolicy {
    /// Whether any list is set.
    pub fn is_set(&self) -> bool {
        self.allow.is_some()
            || self.deny.is_some()
            || self.domain_allow.is_some()
            || self.domain_deny.is_some()
    }

    /// Whether an allow list (route-level, else domain-level) names the address and
    /// no deny list does: what grants access under `satisfy: any` (an address that
    /// no list names still has to authenticate, as with nginx's access module).
    pub fn explicitly_allowed(
        &self,
        client: Option<IpAddr>,
        domain: Option<&AccessPolicy>,
    ) -> bool {
        let allow = if self.allow.is_some() || self.deny.is_some() {
            self.allow.as_deref()
        } else {
            domain.and_then(|d| d.domain_allow.as_deref())
        };
        allow.is_some() && self.check(client, domain) == AccessVerdict::Allowed
    }

    /// Check a client address: route-level lists if any is set, else domain-level.
    pub fn check(&self, client: Option<IpAddr>, domain: Option<&AccessPolicy>) -> AccessVerdict {
        let (allow, deny) = if self.allow.is_some() || self.deny.is_some() {
            (self.allow.as_deref(), self.deny.as_deref())
        } else if let Some(d) = domain {
            (d.domain_allow.as_deref(), d.domain_deny.as_deref())
        } else {
            (None, None)
        };
        if let (Some(deny), Some(ip)) = (deny, client)
            && values::ip_in(deny, ip)
        {
            return AccessVerdict::Denied;
        }
        match (allow, client) {
            (Some(allow), Some(ip)) if values::ip_in(allow, ip) => AccessVerdict::Allowed,
            (Some(_), _) => AccessVerdict::NotAllowed,
            (None, _) => AccessVerdict::Allowed,
        }
    }
}

const ALLOW: KeySpec = KeySpec::new("whitelist-source-range", Family::Access)
    .grammar("comma-separated IP addresses and CIDRs")
    .doc("Only these client addresses may use the routes; others get 403. Also read as `allowlist-source-range` and MSE `whitelist-source-range`. An invalid list fails closed.")
    .risk(Risk::Medium)
    .security();
const ALLOW_ALIAS: KeySpec = KeySpec::new("allowlist-source-range", Family::Access)
    .grammar("comma-separated IP addresses and CIDRs")
    .doc("The newer ingress-nginx spelling of whitelist-source-range; wins when both are set.")
    .risk(Risk::Medium)
    .security();
const DENY: KeySpec = KeySpec::new("denylist-source-range", Family::Access)
    .grammar("comma-separated IP addresses and CIDRs")
    .doc("These client addresses get 403; checked before the allow list.")
    .risk(Risk::Medium)
    .security();
const BLACKLIST: KeySpec = KeySpec::new("blacklist-source-range", Family::Access)
    .grammar("comma-separated IP addresses and CIDRs")
    .doc("MSE: route-level deny list (same as denylist-source-range).")
    .prefixes(Prefixes::Mse)
    .risk(Risk::Medium)
    .security();
const DOMAIN_ALLOW: KeySpec = KeySpec::new("domain-whitelist-source-range", Family::Access)
    .grammar("comma-separated IP addresses and CIDRs")
    .doc("MSE: host-level allow list; route-level lists take precedence.")
    .prefixes(Prefixes::Mse)
    .scope(Scope::Host)
    .risk(Risk::Medium)
    .security();
const DOMAIN_DENY: KeySpec = KeySpec::new("domain-blacklist-source-range", Family::Access)
    .grammar("comma-separated IP addresses and CIDRs")
    .doc("MSE: host-level deny list; route-level lists take precedence.")
    .prefixes(Prefixes::Mse)
    .scope(Scope::Host)
    .risk(Risk::Medium)
    .security();

static KEYS: &[KeySpec] = &[
    ALLOW,
    ALLOW_ALIAS,
    DENY,
    BLACKLIST,
    DOMAIN_ALLOW,
    DOMAIN_DENY,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Access;

impl AnnotationFamily for Access {
    fn family(&self) -> Family {
        Family::Access
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.access;
        let legacy = cx.parse(&KEYS[0], values::cidrs);
        let alias = cx.parse(&KEYS[1], values::cidrs);
        p.allow = alias.or(legacy);
        let deny = cx.parse(&KEYS[2], values::cidrs);
        let black = cx.parse(&KEYS[3], values::cidrs);
        p.deny = match (deny, black) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                Some(a)
            }
            (a, b) => a.or(b),
        };
        p.domain_allow = cx.parse(&KEYS[4], values::cidrs);
        p.domain_deny = cx.parse(&KEYS[5], values::cidrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &str) -> Option<Vec<IpNet>> {
        values::cidrs(s).ok()
    }

    #[test]
    fn deny_first_then_allow_then_domain() {
        let p = AccessPolicy {
            allow: nets("10.0.0.0/8"),
            deny: nets("10.0.0.9"),
            ..Default::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(p.check(ip("10.0.0.9"), None), AccessVerdict::Denied);
        assert_eq!(p.check(ip("10.0.0.8"), None), AccessVerdict::Allowed);
        assert_eq!(p.check(ip("11.0.0.8"), None), AccessVerdict::NotAllowed);
        assert_eq!(p.check(None, None), AccessVerdict::NotAllowed);
        let host = AccessPolicy {
            domain_deny: nets("192.168.0.0/16"),
            ..Default::default()
        };
        let open = AccessPolicy::default();
        assert_eq!(
            open.check(ip("192.168.1.1"), Some(&host)),
            AccessVerdict::Denied
        );
        assert_eq!(
            open.check(ip("10.1.1.1"), Some(&host)),
            AccessVerdict::Allowed
        );
        // Route-level lists take precedence over domain-level ones.
        assert_eq!(p.check(ip("10.0.0.8"), Some(&host)), AccessVerdict::Allowed);
    }
}
