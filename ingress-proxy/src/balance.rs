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
use ingress_core::chunked::{Chunked, ShardedMap};
use ingress_core::compile::RouteSplice;
use ingress_core::lb::Balancer;
use ingress_core::lb::circuit::CircuitBreaker;
use ingress_core::lb::outlier::Outliers;
use ingress_core::routing::{Backend, EndpointAddr, EndpointHost, Forward};

use crate::pool::EndpointPool;

/// Monotonic time since the first call (the epoch of every `now` the proxy gives
/// the core's state machines).
pub(crate) fn now() -> Duration {
    start().elapsed()
}

/// The epoch of [`now`].
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// [`now`] in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    u64::try_from(now().as_nanos()).unwrap_or(u64::MAX)
}

/// [`now_ns`] at `t`, an instant the caller read already (one clock read
/// serves several figures).
pub(crate) fn ns_at(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(start()).as_nanos()).unwrap_or(u64::MAX)
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
#[derive(Debug, Default, Clone)]
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
    pools: &mut ShardedMap<SocketAddr, Arc<EndpointPool>>,
    endpoint: &EndpointAddr,
) -> Option<Arc<EndpointPool>> {
    let EndpointHost::Ip(ip) = endpoint.host else {
        return None;
    };
    let addr = SocketAddr::new(ip, endpoint.port);
    Some(
        pools
            .get_or_insert_with(addr, || EndpointPool::new(addr))
            .clone(),
    )
}

/// Every balancer of one table.
///
/// The balancers, health states and breakers are shared (`Arc`) so that a table
/// made by an incremental update ([`Balancers::patched`]) keeps the very objects
/// of the routes it did not touch: no copy, no state lost between copy and swap.
#[derive(Debug, Default)]
pub(crate) struct Balancers {
    /// Append-only (a patched table adds to its copy): in shared chunks, so that a
    /// patched table copies one chunk, not the list.
    list: Chunked<Arc<(Key, Balancer)>>,
    /// Parallel to `list`: the indexes of the balancer's health and breaker.
    cluster_of: Chunked<(usize, usize)>,
    health: Chunked<Arc<Health>>,
    breakers: Chunked<Arc<Breaker>>,
    /// Parallel to `table.routes().slots()`.
    routes: Chunked<RouteBalancers>,
    /// A hash of each balancer's key -> its index in `list` (a collision, checked
    /// against the key, just makes another balancer). The maps below are in
    /// shared shards: a patched table copies only the shards it adds to.
    index: ShardedMap<u64, usize>,
    /// Hash of (cluster name, outlier values) -> index in `health`.
    health_index: ShardedMap<u64, usize>,
    /// Hash of (cluster name, circuit values) -> index in `breakers`.
    breaker_index: ShardedMap<u64, usize>,
    /// Every IP endpoint's connection pool, by address (one per endpoint, whatever
    /// the number of clusters over it).
    pools: ShardedMap<SocketAddr, Arc<EndpointPool>>,
}

/// A hash that is the same in every table (the index maps outlive one table).
fn stable_hash(v: &impl std::hash::Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    std::hash::Hasher::finish(&h)
}

impl Balancers {
    /// One balancer per (backend, policy) the table's routes use, each starting its
    /// round-robin cycle at a random endpoint.
    pub(crate) fn new(table: &RouteTable) -> Balancers {
        let mut b = Balancers::default();
        let seeds = std::collections::hash_map::RandomState::new();
        b.routes = table
            .routes()
            .slots()
            .iter()
            .map(|r| b.route(table, r, &seeds))
            .collect();
        b
    }

    /// The balancers of `table`, an incremental update of `previous`'s table
    /// (`splices` as the compiler gave them): the routes outside the splices keep
    /// their balancers (shared chunks, no copy); new ones reuse a balancer of the same
    /// key when there is one, else get a new one. Balancers no route uses any more
    /// stay listed (a few per update) until the next full build.
    pub(crate) fn patched(
        previous: &Balancers,
        table: &RouteTable,
        splices: &[RouteSplice],
    ) -> Balancers {
        let mut b = Balancers {
            list: previous.list.clone(),
            cluster_of: previous.cluster_of.clone(),
            health: previous.health.clone(),
            breakers: previous.breakers.clone(),
            routes: Chunked::new(),
            index: previous.index.clone(),
            health_index: previous.health_index.clone(),
            breaker_index: previous.breaker_index.clone(),
            pools: previous.pools.clone(),
        };
        let seeds = std::collections::hash_map::RandomState::new();
        b.routes = crate::live::patch(&previous.routes, table, splices, |r| {
            b.route(table, r, &seeds)
        });
        b
    }

    fn route(
        &mut self,
        table: &RouteTable,
        r: &ingress_core::routing::Route,
        seeds: &std::collections::hash_map::RandomState,
    ) -> RouteBalancers {
        RouteBalancers {
            primary: self.add(table.backend(r.backend_id()), r.policy(), seeds),
            fallback: r
                .fallback_backend()
                .and_then(|id| self.add(table.backend(id), r.policy(), seeds)),
            canaries: r
                .canaries()
                .iter()
                .map(|c| self.add(table.backend(c.backend_id()), c.policy(), seeds))
                .collect(),
        }
    }

    /// The balancer for `backend` under `policy`: an existing one of the same key,
    /// or a new one.
    fn add(
        &mut self,
        backend: &Backend,
        policy: &IngressPolicy,
        seeds: &std::collections::hash_map::RandomState,
    ) -> Option<usize> {
        if backend.endpoints().is_empty() {
            return None;
        }
        let key = Key::of(backend, policy);
        let hash = stable_hash(&key);
        if let Some(&i) = self.index.get(&hash)
            && self.list.get(i).is_some_and(|e| e.0 == key)
        {
            return Some(i);
        }
        let b = Balancer::for_policy(backend.endpoints(), policy);
        b.start_at_random(seeds.hash_one(self.list.len()));
        let name = key.cluster_name();
        let (outlier, circuit) = (key.resilience.outlier, key.resilience.circuit);
        let hh = stable_hash(&(&name, &outlier));
        let h = match self.health_index.get(&hh) {
            Some(&i)
                if self
                    .health
                    .get(i)
                    .is_some_and(|h| h.name == name && h.overrides == outlier) =>
            {
                i
            }
            _ => {
                self.health.push(Arc::new(Health {
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
                        .map(|e| pool_for(&mut self.pools, e))
                        .collect(),
                }));
                let i = self.health.len() - 1;
                self.health_index.get_or_insert_with(hh, || i);
                self.health.len() - 1
            }
        };
        let bh = stable_hash(&(&name, &circuit));
        let c = match self.breaker_index.get(&bh) {
            Some(&i)
                if self
                    .breakers
                    .get(i)
                    .is_some_and(|b| b.name == name && b.overrides == circuit) =>
            {
                i
            }
            _ => {
                self.breakers.push(Arc::new(Breaker {
                    name,
                    overrides: circuit,
                    breaker: CircuitBreaker::new(),
                }));
                let i = self.breakers.len() - 1;
                self.breaker_index.get_or_insert_with(bh, || i);
                self.breakers.len() - 1
            }
        };
        self.cluster_of.push((h, c));
        let i = self.list.len();
        self.index.get_or_insert_with(hash, || i);
        self.list.push(Arc::new((key, b)));
        Some(self.list.len() - 1)
    }

    /// Take over the state of `previous`'s balancers with the same key (a table
    /// built by [`Balancers::new`], whose objects nothing else holds yet).
    pub(crate) fn inherit(&mut self, previous: &Balancers) {
        let old: HashMap<&Key, &Balancer> = previous.list.iter().map(|e| (&e.0, &e.1)).collect();
        let now = now_ns();
        for e in self.list.iter_mut() {
            let Some((key, b)) = Arc::get_mut(e).map(|e| (&e.0, &mut e.1)) else {
                continue;
            };
            if let Some(p) = old.get(key) {
                b.inherit(p, now);
            }
        }
        let old: HashMap<(&str, &OutlierOverrides), &Outliers> = previous
            .health
            .iter()
            .map(|h| ((h.name.as_str(), &h.overrides), &h.outliers))
            .collect();
        for h in self.health.iter_mut() {
            let Some(h) = Arc::get_mut(h) else { continue };
            if let Some(p) = old.get(&(h.name.as_str(), &h.overrides)) {
                h.outliers = Outliers::new(h.outliers.endpoints(), Some(p));
            }
        }
        // Endpoints kept keep their pools (and idle connections).
        self.pools.update_where(
            |addr, pool| {
                previous
                    .pools
                    .get(addr)
                    .is_some_and(|old| !Arc::ptr_eq(old, pool))
            },
            |addr, pool| {
                if let Some(old) = previous.pools.get(addr) {
                    *pool = old.clone();
                }
            },
        );
        for h in self.health.iter_mut() {
            let Some(h) = Arc::get_mut(h) else { continue };
            for p in h.pools.iter_mut().flatten() {
                if let Some(old) = previous.pools.get(&p.addr()) {
                    *p = old.clone();
                }
            }
        }
        let old: HashMap<(&str, &CircuitOverrides), &CircuitBreaker> = previous
            .breakers
            .iter()
            .map(|b| ((b.name.as_str(), &b.overrides), &b.breaker))
            .collect();
        for b in self.breakers.iter_mut() {
            let Some(b) = Arc::get_mut(b) else { continue };
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
        self.list.get(i).map(|e| (&e.1, e.0.affinity.as_ref()))
    }

    /// The load-balancing policy of balancer `i`.
    pub(crate) fn load_balance(&self, i: usize) -> Option<&LoadBalancePolicy> {
        self.list.get(i).map(|e| &e.0.load_balance)
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
