//! Endpoint choice: one [`Balancer`] per (backend, balancing policy) of a table,
//! built when the table is published and inheriting the live state (in-flight
//! counts, latency averages, round-robin position) of the previous table's
//! balancer for the same backend and policy.
//!
//! A balancer's key is its Service port and policy, not its endpoints: within one
//! table a Service port has one endpoint list. When the endpoints of a Service port
//! change (an EndpointSlice update, [`Balancers::refresh_backends`]), the entries of
//! every balancer over it, and of their passive health, are replaced in place, at
//! the same index: the routes that use them keep their indexes and are not visited,
//! and the state of the endpoints that stay goes on (their in-flight counts and
//! latency averages, their ejections, their pools and idle connections), while a
//! removed endpoint is in none of the new entries (no request of the new table picks
//! it). The other Service ports' entries are shared as they are.

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
use ingress_core::routing::{Backend, BackendId, EndpointAddr, EndpointHost, Forward};

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

/// The address of an IP endpoint (`None` for a DNS name).
fn socket_addr(endpoint: &EndpointAddr) -> Option<SocketAddr> {
    match endpoint.host {
        EndpointHost::Ip(ip) => Some(SocketAddr::new(ip, endpoint.port)),
        EndpointHost::Dns(_) => None,
    }
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
    /// How many entries of `health` list each address of `pools`: when an endpoint
    /// change leaves none, the pool leaves `pools` (its idle connections close
    /// when the tables still holding it are dropped).
    pool_users: ShardedMap<SocketAddr, usize>,
    /// [`cluster_hash`] of a Service port -> the indexes in `list` of the
    /// balancers over it (every policy): what an endpoint change replaces.
    by_cluster: ShardedMap<u64, Vec<usize>>,
}

/// The [`stable_hash`] of a Service port, as [`Balancers::by_cluster`] is keyed.
fn cluster_hash(namespace: &str, service: &str, port: &str) -> u64 {
    stable_hash(&(namespace, service, port))
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
            .map(|r| b.route(table, r, &seeds, None))
            .collect();
        b
    }

    /// The balancers of `table`, an incremental update of `previous`'s table
    /// (`splices` as the compiler gave them): the routes outside the splices keep
    /// their balancers (shared chunks, no copy); new ones reuse a balancer of the same
    /// key when there is one, else get a new one. A reused balancer whose endpoints
    /// are not the backend's any more (kept while no route used it, over a Service
    /// whose endpoints changed meanwhile) is refreshed first, as
    /// [`Balancers::refresh_backends`] does. Balancers no route uses any more
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
            pool_users: previous.pool_users.clone(),
            by_cluster: previous.by_cluster.clone(),
        };
        let seeds = std::collections::hash_map::RandomState::new();
        let now = now_ns();
        b.routes = crate::live::patch(&previous.routes, table, splices, |r| {
            b.route(table, r, &seeds, Some(now))
        });
        b
    }

    /// Make the balancers of the Service ports of `backends` (ids of `table`,
    /// whose endpoints may differ from those the balancers were made with) pick
    /// among their endpoints in `table`, in O(balancers over those Service ports):
    /// each balancer over a changed endpoint list, and its passive health, is
    /// replaced in place (same index, so every route using it, whatever its
    /// policy, follows without being visited), carrying over the state of the
    /// endpoints that stay: in-flight counts and latency averages, ejections and
    /// failure counts, the round-robin position, and the connection pools (with
    /// their idle connections). Circuit breakers are kept as they are (they count
    /// requests, not endpoints). A pool no entry lists any more leaves `pools`.
    ///
    /// `false` when a backend with balancers has no endpoint any more (its routes
    /// would need none: build in full); the core's endpoint fast path never gives
    /// one (losing the last endpoint changes the diagnostics, a full compile).
    pub(crate) fn refresh_backends(&mut self, table: &RouteTable, backends: &[BackendId]) -> bool {
        let now = now_ns();
        backends
            .iter()
            .all(|&id| self.refresh(table.backend(id), now))
    }

    /// [`Balancers::refresh_backends`] for one backend.
    fn refresh(&mut self, backend: &Backend, now: u64) -> bool {
        let (ns, svc) = (backend.namespace(), backend.service());
        let port = backend.port_ref().to_string();
        let Some(indexes) = self.by_cluster.get(&cluster_hash(ns, svc, &port)) else {
            return true;
        };
        let endpoints = backend.endpoints();
        for i in indexes.clone() {
            let (Some(entry), Some(&(h, _))) = (self.list.get(i), self.cluster_of.get(i)) else {
                continue;
            };
            let key = &entry.0;
            if key.namespace != ns || key.service != svc || key.port != port {
                // Another Service port under the same hash.
                continue;
            }
            if entry.1.endpoints() != endpoints {
                if endpoints.is_empty() {
                    return false;
                }
                let mut b = Balancer::new(endpoints, &key.load_balance, key.affinity.as_ref());
                b.inherit(&entry.1, now);
                let fresh = Arc::new((key.clone(), b));
                self.list.set(i, fresh);
            }
            let Some(health) = self.health.get(h) else {
                continue;
            };
            if health.outliers.endpoints() != endpoints {
                if endpoints.is_empty() {
                    return false;
                }
                let old = health.clone();
                // The new users first: a pool of an endpoint that stays keeps its
                // count above zero and is the same object.
                let pools = endpoints.iter().map(|e| self.pool_for(e)).collect();
                self.release_pools(old.outliers.endpoints());
                self.health.set(
                    h,
                    Arc::new(Health {
                        name: old.name.clone(),
                        overrides: old.overrides,
                        outliers: Outliers::new(endpoints, Some(&old.outliers)),
                        authorities: endpoints.iter().map(crate::forward::authority_of).collect(),
                        pools,
                    }),
                );
            }
        }
        true
    }

    /// The pool of `endpoint` (an IP one), made when missing, with one more user.
    fn pool_for(&mut self, endpoint: &EndpointAddr) -> Option<Arc<EndpointPool>> {
        let addr = socket_addr(endpoint)?;
        *self.pool_users.get_or_insert_with(addr, || 0) += 1;
        Some(
            self.pools
                .get_or_insert_with(addr, || EndpointPool::new(addr))
                .clone(),
        )
    }

    /// One user less for the pools of `endpoints`; those left without any leave.
    fn release_pools(&mut self, endpoints: &[EndpointAddr]) {
        for addr in endpoints.iter().filter_map(socket_addr) {
            match self.pool_users.get(&addr).copied() {
                Some(n) if n > 1 => {
                    self.pool_users.insert(addr, n - 1);
                }
                Some(_) => {
                    self.pool_users.remove(&addr);
                    self.pools.remove(&addr);
                }
                None => {}
            }
        }
    }

    /// `verify`: the time to refresh at, when an existing balancer may have other
    /// endpoints than the table's backend (an incremental update).
    fn route(
        &mut self,
        table: &RouteTable,
        r: &ingress_core::routing::Route,
        seeds: &std::collections::hash_map::RandomState,
        verify: Option<u64>,
    ) -> RouteBalancers {
        RouteBalancers {
            primary: self.add(table.backend(r.backend_id()), r.policy(), seeds, verify),
            fallback: r
                .fallback_backend()
                .and_then(|id| self.add(table.backend(id), r.policy(), seeds, verify)),
            canaries: r
                .canaries()
                .iter()
                .map(|c| self.add(table.backend(c.backend_id()), c.policy(), seeds, verify))
                .collect(),
        }
    }

    /// The balancer for `backend` under `policy`: an existing one of the same key,
    /// or a new one. With `verify`, the existing balancers over `backend`'s
    /// Service port are refreshed first when their endpoints differ.
    fn add(
        &mut self,
        backend: &Backend,
        policy: &IngressPolicy,
        seeds: &std::collections::hash_map::RandomState,
        verify: Option<u64>,
    ) -> Option<usize> {
        if backend.endpoints().is_empty() {
            return None;
        }
        if let Some(now) = verify {
            self.refresh(backend, now);
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
                let pools = backend
                    .endpoints()
                    .iter()
                    .map(|e| self.pool_for(e))
                    .collect();
                self.health.push(Arc::new(Health {
                    name: name.clone(),
                    overrides: outlier,
                    outliers: Outliers::new(backend.endpoints(), None),
                    authorities: backend
                        .endpoints()
                        .iter()
                        .map(crate::forward::authority_of)
                        .collect(),
                    pools,
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
        self.by_cluster
            .get_or_insert_with(
                cluster_hash(&key.namespace, &key.service, &key.port),
                Vec::new,
            )
            .push(i);
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

    /// The balancer of route `index`'s own backend.
    #[cfg(test)]
    pub(crate) fn primary(&self, index: usize) -> Option<usize> {
        self.routes.get(index)?.primary
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
    use ingress_core::compile::{Compiler, RouteSplice, Update};
    use ingress_core::lb::outlier::{Outcome, OutlierConfig};
    use ingress_core::routing::RouteHost;

    /// Services `s` and `x` (namespace t, port 80 -> 8080) over these IPs, one
    /// slice each; Ingresses `a` (a.test -> s), `own` (own.test -> s, with its own
    /// outlier values: another balancer and health over s) and `x` (x.test -> x).
    fn objects(s: &[&str], x: &[&str]) -> ingress_core::Snapshot {
        let ingress = |name: &str, host: &str, svc: &str, annotations: &str| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: t, annotations: {{{annotations}}}}}\nspec: {{ingressClassName: gw, rules: [{{host: {host}, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
            )
        };
        let service = |name: &str, ips: &[&str]| {
            let endpoints: Vec<String> = ips
                .iter()
                .map(|ip| format!("{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}"))
                .collect();
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: t}}\nspec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-0, namespace: t, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{}]\n---\n",
                endpoints.join(", ")
            )
        };
        let text = ingress("a", "a.test", "s", "")
            + &ingress(
                "own",
                "own.test",
                "s",
                "ingress-rs.io/outlier-consecutive-5xx: \"1\"",
            )
            + &ingress("x", "x.test", "x", "")
            + &service("s", s)
            + &service("x", x);
        let loaded = ingress_core::manifest::load_str("test.yaml", &text);
        loaded.snapshot
    }

    fn compiler(s: &[&str], x: &[&str]) -> Compiler {
        let options = ingress_core::CompileOptions::default().ingress_class("gw");
        Compiler::new(objects(s, x), options)
    }

    /// The new slice of `s` over these IPs, as an EndpointSlice change.
    fn slice_change(ips: &[&str]) -> (String, String, Option<ingress_core::model::EndpointSlice>) {
        let slice = objects(ips, &[])
            .endpoint_slices
            .into_iter()
            .find(|s| s.metadata.name == "s-0");
        ("t".into(), "s-0".into(), slice)
    }

    /// The primary balancer of the route for `host`.
    fn balancer_of(b: &Balancers, table: &RouteTable, host: &str) -> usize {
        let r = table
            .routes()
            .iter()
            .find(|r| r.host().to_string() == host)
            .expect("a route");
        b.routes[r.id().index()].primary.expect("a balancer")
    }

    fn ip(e: &str) -> EndpointAddr {
        EndpointAddr {
            host: EndpointHost::Ip(e.parse().expect("an IP")),
            port: 8080,
        }
    }

    fn addr(e: &str) -> SocketAddr {
        SocketAddr::new(e.parse().expect("an IP"), 8080)
    }

    /// Eject `endpoint` in the cluster of balancer `i` (default outlier values).
    fn eject(b: &Balancers, i: usize, endpoint: &str) {
        let c = b.cluster(i).expect("a cluster");
        let at = c
            .outliers
            .endpoints()
            .iter()
            .position(|e| *e == ip(endpoint))
            .expect("the endpoint");
        let config = OutlierConfig::default();
        for _ in 0..config.consecutive_5xx {
            c.outliers
                .record(at, Outcome::ServerError, now_ns(), &config);
        }
        assert!(c.outliers.is_ejected(at, now_ns()));
    }

    fn is_ejected(b: &Balancers, i: usize, endpoint: &str) -> bool {
        let c = b.cluster(i).expect("a cluster");
        let at = c
            .outliers
            .endpoints()
            .iter()
            .position(|e| *e == ip(endpoint));
        at.is_some_and(|at| c.outliers.is_ejected(at, now_ns()))
    }

    #[test]
    fn an_endpoint_change_replaces_only_the_balancers_over_its_service_port() {
        let mut compiler = compiler(&["10.0.0.1", "10.0.0.2"], &["10.0.1.1", "10.0.1.2"]);
        let t1 = compiler.table().clone();
        let b1 = Balancers::new(&t1);
        let (s1, own1, x1) = (
            balancer_of(&b1, &t1, "a.test"),
            balancer_of(&b1, &t1, "own.test"),
            balancer_of(&b1, &t1, "x.test"),
        );
        assert_ne!(s1, own1, "own outlier values: another balancer");
        eject(&b1, s1, "10.0.0.1");
        eject(&b1, x1, "10.0.1.1");
        let pool_kept = b1.pools.get(&addr("10.0.0.1")).expect("a pool").clone();

        // s: 10.0.0.2 leaves, 10.0.0.3 comes; 10.0.0.1 stays.
        let update = compiler.apply_endpoint_slices([slice_change(&["10.0.0.1", "10.0.0.3"])]);
        let Update::Endpoints { backends, .. } = update else {
            panic!("{update:?}")
        };
        let t2 = compiler.table().clone();
        let mut b2 = Balancers::patched(&b1, &t2, &[]);
        assert!(b2.refresh_backends(&t2, &backends));

        // The routes were not visited: their balancer indexes are shared as is.
        assert_eq!(
            b2.routes.shared_chunks(&b1.routes),
            b1.routes.shared_chunks(&b1.routes)
        );
        assert_eq!(balancer_of(&b2, &t2, "a.test"), s1);
        assert_eq!(balancer_of(&b2, &t2, "own.test"), own1);
        // x's balancer, health and breaker are the same objects, its ejection on.
        assert!(Arc::ptr_eq(&b2.list[x1], &b1.list[x1]));
        let (h, c) = b1.cluster_of[x1];
        assert!(Arc::ptr_eq(&b2.health[h], &b1.health[h]));
        assert!(Arc::ptr_eq(&b2.breakers[c], &b1.breakers[c]));
        assert!(is_ejected(&b2, x1, "10.0.1.1"));
        // Both balancers over s (and both healths) pick among the new endpoints;
        // the endpoint that stays keeps its ejection, in the cluster it had it.
        let new = [ip("10.0.0.1"), ip("10.0.0.3")];
        for i in [s1, own1] {
            assert!(!Arc::ptr_eq(&b2.list[i], &b1.list[i]));
            assert_eq!(b2.list[i].1.endpoints(), new);
            let c = b2.cluster(i).expect("a cluster");
            assert_eq!(c.outliers.endpoints(), new);
            assert_eq!(c.authorities.len(), 2);
            let (_, breaker) = b1.cluster_of[i];
            assert!(Arc::ptr_eq(&b2.breakers[breaker], &b1.breakers[breaker]));
        }
        assert!(is_ejected(&b2, s1, "10.0.0.1"));
        assert!(
            !is_ejected(&b2, own1, "10.0.0.1"),
            "own health: never ejected"
        );
        // The pool of the endpoint that stays is the same object; the removed
        // one's left the map, the new one's is there.
        let c = b2.cluster(s1).expect("a cluster");
        assert!(Arc::ptr_eq(c.pool(0, &new[0]).expect("a pool"), &pool_kept));
        assert!(b2.pools.get(&addr("10.0.0.2")).is_none());
        assert!(b2.pools.get(&addr("10.0.0.3")).is_some());
        assert_eq!(b2.pool_users.get(&addr("10.0.0.1")), Some(&2));
        assert_eq!(b2.pools.len(), 4);
        // The previous table's balancers are untouched (requests started on it
        // finish there).
        assert_eq!(b1.list[s1].1.endpoints(), [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert!(b1.pools.get(&addr("10.0.0.2")).is_some());
        // No new request of the new table picks the removed endpoint.
        for _ in 0..20 {
            let input = ingress_core::lb::PickInput::new(7, now_ns());
            let p = b2.list[s1].1.pick(&input).expect("a pick");
            assert_ne!(b2.list[s1].1.endpoint(p.index), Some(&ip("10.0.0.2")));
        }
    }

    #[test]
    fn a_pool_stays_while_another_service_lists_its_endpoint() {
        // 10.0.0.2:8080 is an endpoint of s and of x: s dropping it keeps the
        // pool (the same object, x's), and x dropping it too removes it.
        let mut compiler = compiler(&["10.0.0.1", "10.0.0.2"], &["10.0.0.2"]);
        let t1 = compiler.table().clone();
        let b1 = Balancers::new(&t1);
        let shared = b1.pools.get(&addr("10.0.0.2")).expect("a pool").clone();
        assert_eq!(b1.pool_users.get(&addr("10.0.0.2")), Some(&3), "s twice, x");
        let Update::Endpoints { backends, .. } =
            compiler.apply_endpoint_slices([slice_change(&["10.0.0.1"])])
        else {
            panic!("the endpoint path")
        };
        let t2 = compiler.table().clone();
        let mut b2 = Balancers::patched(&b1, &t2, &[]);
        assert!(b2.refresh_backends(&t2, &backends));
        assert!(Arc::ptr_eq(
            b2.pools.get(&addr("10.0.0.2")).expect("still pooled"),
            &shared
        ));
        assert_eq!(b2.pool_users.get(&addr("10.0.0.2")), Some(&1));
        let x = balancer_of(&b2, &t2, "x.test");
        let c = b2.cluster(x).expect("a cluster");
        assert!(Arc::ptr_eq(
            c.pool(0, &ip("10.0.0.2")).expect("x's pool"),
            &shared
        ));
        // x's endpoint moves too: nothing lists 10.0.0.2 any more.
        let x_slice = objects(&[], &["10.0.0.9"])
            .endpoint_slices
            .into_iter()
            .find(|s| s.metadata.name == "x-0");
        let Update::Endpoints { backends, .. } =
            compiler.apply_endpoint_slices([("t".into(), "x-0".into(), x_slice)])
        else {
            panic!("the endpoint path")
        };
        let t3 = compiler.table().clone();
        let mut b3 = Balancers::patched(&b2, &t3, &[]);
        assert!(b3.refresh_backends(&t3, &backends));
        assert!(b3.pools.get(&addr("10.0.0.2")).is_none());
        assert!(b3.pool_users.get(&addr("10.0.0.2")).is_none());
        assert!(b3.pools.get(&addr("10.0.0.9")).is_some());
    }

    #[test]
    fn an_incremental_update_refreshes_a_stale_balancer_it_reuses() {
        // A table whose balancers over s still have the old endpoints (as a
        // balancer no route used kept them): a spliced route reusing it refreshes
        // it, and the other routes over s follow.
        let mut compiler = compiler(&["10.0.0.1", "10.0.0.2"], &["10.0.1.1"]);
        let t1 = compiler.table().clone();
        let b1 = Balancers::new(&t1);
        compiler.apply_endpoint_slices([slice_change(&["10.0.0.3"])]);
        let t2 = compiler.table().clone();
        let a = t2
            .routes()
            .iter()
            .find(|r| r.host().to_string() == "a.test")
            .expect("a route")
            .id()
            .index();
        let splice = RouteSplice {
            host: RouteHost::Pattern("a.test".parse().expect("a host")),
            old: a..a + 1,
            new: a..a + 1,
        };
        let b2 = Balancers::patched(&b1, &t2, &[splice]);
        for host in ["a.test", "own.test"] {
            let i = balancer_of(&b2, &t2, host);
            assert_eq!(b2.list[i].1.endpoints(), [ip("10.0.0.3")], "{host}");
            assert_eq!(
                b2.cluster(i).expect("a cluster").outliers.endpoints(),
                [ip("10.0.0.3")]
            );
        }
        assert!(b2.pools.get(&addr("10.0.0.1")).is_none());
        assert!(b2.pools.get(&addr("10.0.1.1")).is_some());
    }

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
