//! Endpoint choice: one [`Balancer`] per (backend, balancing policy) of a table,
//! built when the table is published and inheriting the live state (in-flight
//! counts, latency averages, round-robin position) of the previous table's
//! balancer for the same backend and policy.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::HeaderMap;
use ingress_core::RouteTable;
use ingress_core::annotations::resilience::{CircuitOverrides, OutlierOverrides};
use ingress_core::annotations::template::Var;
use ingress_core::annotations::{
    AffinityPolicy, IngressPolicy, LoadBalancePolicy, ResiliencePolicy,
};
use ingress_core::lb::Balancer;
use ingress_core::lb::circuit::CircuitBreaker;
use ingress_core::lb::outlier::Outliers;
use ingress_core::routing::{Backend, EndpointAddr, EndpointHost, Forward};

use crate::pool::EndpointPool;

/// Monotonic time since the first call (the epoch of every `now` the proxy gives
/// the core's state machines).
pub(crate) fn now() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// [`now`] in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    u64::try_from(now().as_nanos()).unwrap_or(u64::MAX)
}

/// What makes two balancers the same across tables: the Service port, the policy
/// that picks among its endpoints, and the route's own outlier and circuit values
/// (routes with other values pick within another cluster).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    service: String,
    port: String,
    load_balance: LoadBalancePolicy,
    affinity: Option<AffinityPolicy>,
    resilience: ResiliencePolicy,
}

impl Key {
    fn of(backend: &Backend, policy: &IngressPolicy) -> Key {
        Key {
            namespace: backend.namespace().to_owned(),
            service: backend.service().to_owned(),
            port: backend.port_ref().to_string(),
            load_balance: policy.load_balance.clone(),
            affinity: policy.affinity.clone(),
            resilience: policy.resilience,
        }
    }

    /// `namespace/service:port`.
    fn cluster_name(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.service, self.port)
    }
}

/// The balancers a route uses (indexes into [`Balancers::list`]).
#[derive(Debug, Default)]
struct RouteBalancers {
    primary: Option<usize>,
    /// The `default-backend` Service, under the route's policy.
    fallback: Option<usize>,
    /// Parallel to `route.canaries()`.
    canaries: Vec<Option<usize>>,
}

/// The passive health of the endpoints of one Service port under one set of
/// outlier values: shared by every balancer over them with those values, and
/// carried across tables.
#[derive(Debug)]
struct Health {
    /// `namespace/service:port`.
    name: String,
    /// The routes' own values (none: the gateway's defaults).
    overrides: OutlierOverrides,
    /// Indexes as in each of the cluster's balancers (the same endpoint list).
    outliers: Outliers,
    /// Parallel to the endpoints: each as a URI authority, written once per table.
    authorities: Vec<Option<http::uri::Authority>>,
    /// Parallel to the endpoints: the connection pool of each IP endpoint (shared
    /// by every cluster over it, and carried across tables).
    pools: Vec<Option<Arc<EndpointPool>>>,
}

/// The circuit breaker of one Service port under one set of ceilings.
#[derive(Debug)]
struct Breaker {
    /// `namespace/service:port`.
    name: String,
    /// The routes' own ceilings (none: the gateway's defaults).
    overrides: CircuitOverrides,
    breaker: CircuitBreaker,
}

/// The cluster a balancer picks in: the endpoints of one Service port, their
/// passive health and the circuit breaker, under the route's own values.
///
/// Choice: a route whose annotations (`ingress-rs.io/outlier-*`, `circuit-*`) give
/// other values than another route's to the same Service port gets its own health
/// state and its own in-flight counts: its ejections and ceilings apply to its
/// traffic only. Routes with the same values (or none) share them. Health and
/// breaker are keyed apart, so a route that only changes a circuit ceiling still
/// shares the Service's passive health with the others.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cluster<'a> {
    /// `namespace/service:port`, for metrics and logs (the same for every set of
    /// values over one Service port: their counts add up).
    pub(crate) name: &'a str,
    /// Indexes as in each of the cluster's balancers (the same endpoint list).
    pub(crate) outliers: &'a Outliers,
    pub(crate) breaker: &'a CircuitBreaker,
    /// The routes' own outlier values, applied over the gateway's defaults.
    pub(crate) outlier: &'a OutlierOverrides,
    /// The routes' own ceilings, applied over the gateway's defaults.
    pub(crate) circuit: &'a CircuitOverrides,
    /// Parallel to the endpoints: each as a URI authority.
    authorities: &'a [Option<http::uri::Authority>],
    /// Parallel to the endpoints: each IP endpoint's connection pool.
    pools: &'a [Option<Arc<EndpointPool>>],
}

impl<'a> Cluster<'a> {
    /// Endpoint `index` (which must be `endpoint`) as a URI authority.
    pub(crate) fn authority(
        &self,
        index: usize,
        endpoint: &EndpointAddr,
    ) -> Option<http::uri::Authority> {
        if self.outliers.endpoints().get(index) != Some(endpoint) {
            return None;
        }
        self.authorities.get(index).cloned().flatten()
    }

    /// The connection pool of endpoint `index` (which must be `endpoint`), for
    /// plain HTTP/1.1 to an IP endpoint.
    pub(crate) fn pool(
        &self,
        index: usize,
        endpoint: &EndpointAddr,
    ) -> Option<&'a Arc<EndpointPool>> {
        if self.outliers.endpoints().get(index) != Some(endpoint) {
            return None;
        }
        self.pools.get(index)?.as_ref()
    }
}

/// The pool of `endpoint` (an IP one) in `pools`, made when missing.
fn pool_for(
    pools: &mut HashMap<SocketAddr, Arc<EndpointPool>>,
    endpoint: &EndpointAddr,
) -> Option<Arc<EndpointPool>> {
    let EndpointHost::Ip(ip) = endpoint.host else {
        return None;
    };
    let addr = SocketAddr::new(ip, endpoint.port);
    Some(
        pools
            .entry(addr)
            .or_insert_with(|| EndpointPool::new(addr))
            .clone(),
    )
}

/// Every balancer of one table.
#[derive(Debug, Default)]
pub(crate) struct Balancers {
    list: Vec<(Key, Balancer)>,
    /// Parallel to `list`: the indexes of the balancer's health and breaker.
    cluster_of: Vec<(usize, usize)>,
    health: Vec<Health>,
    breakers: Vec<Breaker>,
    /// Parallel to `table.routes()`.
    routes: Vec<RouteBalancers>,
}

impl Balancers {
    /// One balancer per (backend, policy) the table's routes use, each starting its
    /// round-robin cycle at a random endpoint.
    pub(crate) fn new(table: &RouteTable) -> Balancers {
        let mut list: Vec<(Key, Balancer)> = Vec::new();
        let mut index: HashMap<Key, usize> = HashMap::new();
        let mut cluster_of: Vec<(usize, usize)> = Vec::new();
        let mut health: Vec<Health> = Vec::new();
        let mut breakers: Vec<Breaker> = Vec::new();
        let mut health_index: HashMap<(String, OutlierOverrides), usize> = HashMap::new();
        let mut breaker_index: HashMap<(String, CircuitOverrides), usize> = HashMap::new();
        let seeds = std::collections::hash_map::RandomState::new();
        let mut pools: HashMap<SocketAddr, Arc<EndpointPool>> = HashMap::new();
        let mut add = |backend: &Backend, policy: &IngressPolicy| -> Option<usize> {
            if backend.endpoints().is_empty() {
                return None;
            }
            let key = Key::of(backend, policy);
            if let Some(&i) = index.get(&key) {
                return Some(i);
            }
            let b = Balancer::for_policy(backend.endpoints(), policy);
            b.start_at_random(seeds.hash_one(list.len()));
            let name = key.cluster_name();
            let (outlier, circuit) = (key.resilience.outlier, key.resilience.circuit);
            let h = *health_index
                .entry((name.clone(), outlier))
                .or_insert_with(|| {
                    health.push(Health {
                        name: name.clone(),
                        overrides: outlier,
                        outliers: Outliers::new(backend.endpoints(), None),
                        authorities: backend
                            .endpoints()
                            .iter()
                            .map(crate::forward::authority_of)
                            .collect(),
                        pools: backend
                            .endpoints()
                            .iter()
                            .map(|e| pool_for(&mut pools, e))
                            .collect(),
                    });
                    health.len() - 1
                });
            let c = *breaker_index
                .entry((name.clone(), circuit))
                .or_insert_with(|| {
                    breakers.push(Breaker {
                        name,
                        overrides: circuit,
                        breaker: CircuitBreaker::new(),
                    });
                    breakers.len() - 1
                });
            cluster_of.push((h, c));
            index.insert(key.clone(), list.len());
            list.push((key, b));
            Some(list.len() - 1)
        };
        let routes = table
            .routes()
            .iter()
            .map(|r| RouteBalancers {
                primary: add(table.backend(r.backend_id()), r.policy()),
                fallback: r
                    .fallback_backend()
                    .and_then(|id| add(table.backend(id), r.policy())),
                canaries: r
                    .canaries()
                    .iter()
                    .map(|c| add(table.backend(c.backend_id()), c.policy()))
                    .collect(),
            })
            .collect();
        Balancers {
            list,
            cluster_of,
            health,
            breakers,
            routes,
        }
    }

    /// Take over the state of `previous`'s balancers with the same key.
    pub(crate) fn inherit(&mut self, previous: &Balancers) {
        let old: HashMap<&Key, &Balancer> = previous.list.iter().map(|(k, b)| (k, b)).collect();
        let now = now_ns();
        for (key, b) in &mut self.list {
            if let Some(p) = old.get(&*key) {
                b.inherit(p, now);
            }
        }
        let old: HashMap<(&str, &OutlierOverrides), &Outliers> = previous
            .health
            .iter()
            .map(|h| ((h.name.as_str(), &h.overrides), &h.outliers))
            .collect();
        for h in &mut self.health {
            if let Some(p) = old.get(&(h.name.as_str(), &h.overrides)) {
                h.outliers = Outliers::new(h.outliers.endpoints(), Some(p));
            }
        }
        // Endpoints kept keep their pools (and idle connections).
        let old_pools: HashMap<SocketAddr, Arc<EndpointPool>> = previous
            .health
            .iter()
            .flat_map(|h| h.pools.iter().flatten())
            .map(|p| (p.addr(), p.clone()))
            .collect();
        for h in &mut self.health {
            for p in h.pools.iter_mut().flatten() {
                if let Some(old) = old_pools.get(&p.addr()) {
                    *p = old.clone();
                }
            }
        }
        let old: HashMap<(&str, &CircuitOverrides), &CircuitBreaker> = previous
            .breakers
            .iter()
            .map(|b| ((b.name.as_str(), &b.overrides), &b.breaker))
            .collect();
        for b in &mut self.breakers {
            if let Some(p) = old.get(&(b.name.as_str(), &b.overrides)) {
                b.breaker = (*p).clone();
            }
        }
    }

    /// The cluster of balancer `i`.
    pub(crate) fn cluster(&self, i: usize) -> Option<Cluster<'_>> {
        let &(h, b) = self.cluster_of.get(i)?;
        let (h, b) = (self.health.get(h)?, self.breakers.get(b)?);
        Some(Cluster {
            name: &h.name,
            outliers: &h.outliers,
            breaker: &b.breaker,
            outlier: &h.overrides,
            circuit: &b.overrides,
            authorities: &h.authorities,
            pools: &h.pools,
        })
    }

    /// The balancer for a forward decision: the canary's, the default backend's, or
    /// the route's, with its affinity policy.
    pub(crate) fn for_forward(&self, f: &Forward<'_>) -> Option<usize> {
        let r = self.routes.get(f.route.id().index())?;
        if f.via_default_backend {
            return r.fallback;
        }
        if let Some((c, _)) = f.canary {
            let i = f.route.canaries().iter().position(|x| std::ptr::eq(x, c))?;
            return r.canaries.get(i).copied().flatten();
        }
        r.primary
    }

    /// The balancer of route `index`'s `default-backend` Service.
    pub(crate) fn fallback(&self, index: usize) -> Option<usize> {
        self.routes.get(index)?.fallback
    }

    /// Balancer `i` and the affinity policy it was built with.
    pub(crate) fn get(&self, i: usize) -> Option<(&Balancer, Option<&AffinityPolicy>)> {
        self.list.get(i).map(|(k, b)| (b, k.affinity.as_ref()))
    }

    /// The load-balancing policy of balancer `i`.
    pub(crate) fn load_balance(&self, i: usize) -> Option<&LoadBalancePolicy> {
        self.list.get(i).map(|(k, _)| &k.load_balance)
    }
}

/// The request variables a hash key (`upstream-hash-by`) may use.
pub(crate) struct Vars<'r> {
    pub(crate) path_and_query: &'r str,
    pub(crate) host: &'r str,
    pub(crate) https: bool,
    pub(crate) method: &'r str,
    pub(crate) client: Option<IpAddr>,
    pub(crate) headers: &'r HeaderMap,
}

impl Vars<'_> {
    /// The value of one variable (`None`: empty).
    pub(crate) fn get(&self, var: &Var) -> Option<Cow<'_, str>> {
        let (path, query) = match self.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.path_and_query, None),
        };
        Some(match var {
            Var::RequestUri => Cow::Borrowed(self.path_and_query),
            Var::EscapedRequestUri => Cow::Owned(escape(self.path_and_query)),
            Var::Uri => Cow::Borrowed(path),
            Var::Host => Cow::Borrowed(strip_port(self.host)),
            Var::Scheme => Cow::Borrowed(if self.https { "https" } else { "http" }),
            Var::Method => Cow::Borrowed(self.method),
            Var::RemoteAddr => Cow::Owned(self.client?.to_string()),
            Var::Header(h) => Cow::Borrowed(self.headers.get(h)?.to_str().ok()?),
            Var::Arg(a) => Cow::Borrowed(query?.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == a).then_some(v)
            })?),
            Var::Cookie(c) => {
                Cow::Borrowed(ingress_core::annotations::canary::cookie(self.headers, c)?)
            }
        })
    }
}

/// A host without its port (`[v6]:port` keeps the brackets).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// Percent-encode everything but unreserved characters (nginx's `$escaped_request_uri`
/// for a query argument).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_the_request() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", http::HeaderValue::from_static("u1"));
        headers.insert("cookie", http::HeaderValue::from_static("a=1; sid=s9"));
        let v = Vars {
            path_and_query: "/p/x?id=7&k",
            host: "shop.test:8080",
            https: false,
            method: "GET",
            client: Some([10, 0, 0, 1].into()),
            headers: &headers,
        };
        let get = |var: Var| v.get(&var).map(Cow::into_owned);
        assert_eq!(get(Var::RequestUri).as_deref(), Some("/p/x?id=7&k"));
        assert_eq!(get(Var::Uri).as_deref(), Some("/p/x"));
        assert_eq!(get(Var::Host).as_deref(), Some("shop.test"));
        assert_eq!(get(Var::Arg("id".into())).as_deref(), Some("7"));
        assert_eq!(get(Var::Arg("k".into())).as_deref(), Some(""));
        assert_eq!(get(Var::Arg("z".into())), None);
        assert_eq!(get(Var::Cookie("sid".into())).as_deref(), Some("s9"));
        assert_eq!(
            get(Var::Header(http::HeaderName::from_static("x-user"))).as_deref(),
            Some("u1")
        );
        assert_eq!(get(Var::RemoteAddr).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            get(Var::EscapedRequestUri).as_deref(),
            Some("%2Fp%2Fx%3Fid%3D7%26k")
        );
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
