//! The live route table: what requests are routed with, swapped atomically.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ingress_core::chunked::Chunked;
use ingress_core::compile::RouteSplice;
use ingress_core::manifest::Located;
use ingress_core::routing::{Route, RouteMatch};
use ingress_core::{Profile, RouteTable};
use rustls::sign::CertifiedKey;

use crate::balance::Balancers;
use crate::certs::Certs;
use crate::gateway::RuntimeOptions;
use crate::limits::LimitSet;
use crate::mtls::ClientAuthSet;

/// One compiled table as served: the table, its version, the diagnostics it was
/// compiled with, and what the data plane derives from it once (rustls certificates,
/// load balancers, rate limits, metric labels).
#[derive(Debug)]
pub struct Live {
    table: RouteTable,
    version: u64,
    diagnostics: Vec<Located>,
    /// Parallel to `table.tls_bindings()`: the certificate each serves (kept
    /// ones included, see [`crate::certs`]).
    certs: Certs,
    /// One balancer per (backend, balancing policy) the routes use.
    pub(crate) balancers: Balancers,
    /// The routes' rate and connection limits.
    pub(crate) limits: LimitSet,
    /// Parallel to `table.routes().slots()`: metric and log labels.
    labels: Chunked<Arc<RouteStats>>,
    /// The hosts' client-certificate configurations.
    pub(crate) client_auth: ClientAuthSet,
    /// The gateway config's settings served with this table (`--kube` mode);
    /// `None`: the service's own options.
    runtime: Option<Arc<RuntimeOptions>>,
    /// The gateway config's default certificate (`--kube` mode): served when no TLS
    /// host matches, before the listener's own default.
    default_cert: Option<Arc<CertifiedKey>>,
}

/// How a route is named in metrics and access logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLabel {
    /// The route's host (`*.example.com`, `*` for rules without a host).
    pub host: String,
    /// `namespace/ingress path` (or `(default)` for a default backend).
    pub route: String,
}

/// A route's label and its request counters by status, looked up in the metric
/// family once per table rather than once per request.
#[derive(Debug)]
pub(crate) struct RouteStats {
    pub(crate) label: RouteLabel,
    counters: std::sync::Mutex<Vec<(u16, prometheus_client::metrics::counter::Counter)>>,
}

impl RouteStats {
    fn of(r: &Route) -> Self {
        RouteStats {
            label: RouteLabel::of(r),
            counters: std::sync::Mutex::default(),
        }
    }

    /// The counter of this route's requests answered with `status`, made by `make`
    /// the first time.
    pub(crate) fn counter(
        &self,
        status: u16,
        make: impl FnOnce() -> prometheus_client::metrics::counter::Counter,
    ) -> prometheus_client::metrics::counter::Counter {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = counters.iter().find(|(s, _)| *s == status) {
            return c.clone();
        }
        let c = make();
        // A route answers with a handful of statuses; never keep more than 16.
        if counters.len() < 16 {
            counters.push((status, c.clone()));
        }
        c
    }
}

impl RouteLabel {
    fn of(r: &Route) -> Self {
        let path = match r.matcher() {
            RouteMatch::Path(p) => p.as_str(),
            RouteMatch::DefaultBackend(_) => "(default)",
        };
        let ing = r.ingress();
        RouteLabel {
            host: r.host().to_string(),
            route: format!(
                "{}/{} {path}",
                ing.namespace.as_deref().unwrap_or(""),
                ing.name
            ),
        }
    }
}

impl Live {
    /// Prepare a table for serving. Certificates whose key rustls cannot use are left
    /// out (logged); [`LiveTable::store`] then keeps the host's previous certificate
    /// from the same Secret, if it had one, else the default certificate serves.
    pub fn new(table: RouteTable, version: u64, diagnostics: Vec<Located>) -> Self {
        let certs = Certs::of(&table);
        let balancers = Balancers::new(&table);
        let limits = LimitSet::new(&table, None);
        let labels = table
            .routes()
            .slots()
            .iter()
            .map(|r| Arc::new(RouteStats::of(r)))
            .collect();
        let client_auth = ClientAuthSet::new(&table);
        Live {
            table,
            version,
            diagnostics,
            certs,
            balancers,
            limits,
            labels,
            client_auth,
            runtime: None,
            default_cert: None,
        }
    }

    /// `table`, an incremental update of `previous`'s table (`splices` as the
    /// compiler gave them, relative to `previous`'s routes), prepared for serving
    /// with the per-route state of every route outside the splices carried over as
    /// is: its balancers, passive health and circuit breakers are the same objects
    /// (their state goes on without a copy), as are its rate limits and request
    /// counters. Only the spliced routes get theirs made (or found among the
    /// balancers of the same Service port and policy). The per-route state is kept
    /// in shared chunks ([`Chunked`]) parallel to the route slots, which an
    /// incremental update does not move: only the chunks holding the touched
    /// hosts' new slots are copied, whatever the size of the table. The TLS bindings, runtime settings and default certificate are
    /// `previous`'s (an incremental update never changes them; the certificates
    /// kept and the expiry notes come along). Store it with
    /// [`LiveTable::store_patched`].
    pub fn patched(
        previous: &Live,
        table: RouteTable,
        version: u64,
        diagnostics: Vec<Located>,
        splices: &[RouteSplice],
    ) -> Self {
        let certs = previous.certs.clone();
        Live::carried(previous, table, version, diagnostics, splices, certs)
    }

    /// `table`, a Secret update of `previous`'s table (the core's
    /// [`Update::Tls`](ingress_core::compile::Update::Tls): same routes, backends
    /// and TLS hosts; the bindings `changed` may have a new certificate or
    /// problem), prepared for serving: everything but the certificates is
    /// `previous`'s, shared as is (balancers, limits, counters, client
    /// certificates, runtime settings); only the changed bindings' certificates
    /// are loaded again, the others (kept ones included) stay, and a changed
    /// binding whose Secret turned unusable keeps its last good certificate as
    /// after a full update ([`crate::certs`]). Expiry is checked at `now`. Store
    /// it with [`LiveTable::store_patched`].
    pub fn with_certificates(
        previous: &Live,
        table: RouteTable,
        version: u64,
        diagnostics: Vec<Located>,
        changed: &[usize],
        now: ingress_core::model::Timestamp,
    ) -> Self {
        let certs = Certs::refreshed(&previous.certs, &previous.table, &table, changed, now);
        // No route changed: patches without splices share everything.
        Live::carried(previous, table, version, diagnostics, &[], certs)
    }

    /// `table`, an update of `previous`'s table in which the backends `backends`
    /// (ids of `table`) were resolved again (the core's
    /// [`Update::Endpoints`](ingress_core::compile::Update::Endpoints): same
    /// routes, route and backend ids, TLS bindings and diagnostics), and whose
    /// routes changed at `splices` (none for an EndpointSlice-only update; in
    /// `--kube` mode an Ingress change and a slice change may come in one update),
    /// prepared for serving in O(change), not O(table): everything of `previous`
    /// is shared as is (labels and request counters, rate limits, client
    /// certificates, certificates, runtime settings, and every balancer, passive
    /// health, circuit breaker and pool of the other Service ports), the spliced
    /// routes' state is made as [`Live::patched`] does, and the balancers over
    /// the changed backends' Service ports, with their passive health, are
    /// replaced in place: the endpoints that stay keep their in-flight counts,
    /// latency averages, ejections and pooled connections, a removed endpoint is
    /// picked by no request of this table (a request that started on the previous
    /// table finishes, retries included, on that table), a new one starts with the
    /// others' mean latency. Balancers no route uses any
    /// more stay listed until the next full build.
    ///
    /// Should a changed backend that has balancers have no endpoint any more (the
    /// core's endpoint fast path never gives one: losing the last endpoint
    /// changes the diagnostics, a full compile), the balancers alone are built
    /// for the whole table, inheriting `previous`'s state, as after a full
    /// update. Store it with [`LiveTable::store_patched`].
    pub fn with_endpoints(
        previous: &Live,
        table: RouteTable,
        version: u64,
        diagnostics: Vec<Located>,
        splices: &[RouteSplice],
        backends: &[ingress_core::routing::BackendId],
    ) -> Self {
        let certs = previous.certs.clone();
        let mut live = Live::carried(previous, table, version, diagnostics, splices, certs);
        if !live.balancers.refresh_backends(&live.table, backends) {
            tracing::debug!("a changed backend has no endpoint: every balancer built again");
            live.balancers = Balancers::new(&live.table);
            live.balancers.inherit(&previous.balancers);
        }
        live
    }

    /// `previous`'s per-route state patched at `splices` for `table`, serving
    /// `certs` (whose notes join the diagnostics); the runtime settings and the
    /// default certificate are `previous`'s.
    fn carried(
        previous: &Live,
        table: RouteTable,
        version: u64,
        mut diagnostics: Vec<Located>,
        splices: &[RouteSplice],
        certs: Certs,
    ) -> Self {
        let labels = patch(&previous.labels, &table, splices, |r| {
            Arc::new(RouteStats::of(r))
        });
        debug_assert_eq!(labels.len(), table.routes().slot_count());
        let balancers = Balancers::patched(&previous.balancers, &table, splices);
        let limits = LimitSet::patched(&previous.limits, &table, splices);
        let client_auth = ClientAuthSet::patched(&previous.client_auth, &table, splices);
        if !certs.notes.is_empty() {
            diagnostics.extend(certs.notes.iter().cloned());
            diagnostics.sort();
        }
        Live {
            table,
            version,
            diagnostics,
            certs,
            balancers,
            limits,
            labels,
            client_auth,
            runtime: previous.runtime.clone(),
            default_cert: previous.default_cert.clone(),
        }
    }

    /// Serve `cert` when no TLS host of this table matches the SNI name (the
    /// gateway config's `defaultTlsCertificate`), instead of the listener's default.
    pub fn with_default_certificate(mut self, cert: Arc<CertifiedKey>) -> Self {
        self.default_cert = Some(cert);
        self
    }

    /// The default certificate this table brings, if any.
    pub fn default_certificate(&self) -> Option<&Arc<CertifiedKey>> {
        self.default_cert.as_ref()
    }

    /// Serve this table with `runtime` in place of the service's own options
    /// (the gateway config laid over the flags; see [`crate::gateway`]).
    pub fn with_runtime(mut self, runtime: Arc<RuntimeOptions>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The settings this table is served with, when they are not the service's own.
    pub fn runtime(&self) -> Option<&Arc<RuntimeOptions>> {
        self.runtime.as_ref()
    }

    /// The table served before any configuration is loaded (version 0: not ready).
    pub fn empty(profile: Profile) -> Self {
        Live::new(RouteTable::empty(profile), 0, Vec::new())
    }

    /// The route table.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// 1 for the first table applied, then one more per applied change; 0 before any.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The diagnostics of the load and compile that produced this table.
    pub fn diagnostics(&self) -> &[Located] {
        &self.diagnostics
    }

    /// The certificate for an SNI name, if a TLS binding covers it and its
    /// certificate is usable; `None` means the default certificate.
    pub fn certificate_for(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let i = self.table.tls_index_for_sni(sni)?;
        Some(self.certs.served.get(i)?.as_ref()?.key.clone())
    }

    /// Every certificate served, by TLS host: the parsed certificate and whether
    /// it is a previous one kept because its Secret's new content is unusable.
    pub fn served_certificates(
        &self,
    ) -> impl Iterator<
        Item = (
            &ingress_core::model::HostPattern,
            &ingress_core::tls::CertifiedKey,
            bool,
        ),
    > {
        self.table
            .tls_bindings()
            .iter()
            .zip(&self.certs.served)
            .filter_map(|(b, s)| s.as_ref().map(|s| (b.host(), &*s.cert, s.kept)))
    }

    /// Keep the certificates of hosts whose Secret turned unusable from `previous`
    /// and check the expiry of what is served at `now` ([`crate::certs`]): the
    /// notes join this table's diagnostics.
    fn carry_certificates(&mut self, previous: &Live, now: ingress_core::model::Timestamp) {
        self.certs
            .carry_and_check(&self.table, Some((&previous.table, &previous.certs)), now);
        if !self.certs.notes.is_empty() {
            self.diagnostics.extend(self.certs.notes.iter().cloned());
            self.diagnostics.sort();
        }
    }

    /// The labels of a route of this table.
    pub fn label(&self, route: &Route) -> Option<&RouteLabel> {
        self.labels.get(route.id().index()).map(|s| &s.label)
    }

    /// The label and counters of a route of this table.
    pub(crate) fn stats(&self, route: &Route) -> Option<&Arc<RouteStats>> {
        self.labels.get(route.id().index())
    }

    /// Carry over what must outlive a table swap from the table served before:
    /// the balancers' in-flight counts, latency averages and round-robin
    /// positions, and the limits of Ingresses whose rate-limit policy is unchanged.
    pub fn inherit(&mut self, previous: &Live) {
        self.balancers.inherit(&previous.balancers);
        self.limits = LimitSet::new(&self.table, Some(&previous.limits));
    }
}

/// The shared handle to the live table: one atomic load per request, no locks.
/// A request keeps the `Arc<Live>` it loaded, so it finishes on the table it
/// started with even if a new one is stored meanwhile.
#[derive(Debug)]
pub struct LiveTable {
    current: ArcSwap<Live>,
}

impl LiveTable {
    /// A handle serving `live`.
    pub fn new(live: Live) -> Self {
        LiveTable {
            current: ArcSwap::from_pointee(live),
        }
    }

    /// The table to serve one request (or handshake) with.
    pub fn load(&self) -> Arc<Live> {
        self.current.load_full()
    }

    /// Serve `live` from now on, after it inherits the live state of the table
    /// served until now ([`Live::inherit`]) and the certificates kept from it
    /// (hosts whose Secret turned unusable keep their last good one; expiry is
    /// checked against the system clock: [`crate::certs`]).
    pub fn store(&self, mut live: Live) {
        let previous = self.current.load();
        live.inherit(&previous);
        live.carry_certificates(&previous, crate::certs::system_now());
        self.current.store(Arc::new(live));
    }

    /// Serve `live`, made by [`Live::patched`], [`Live::with_certificates`] or
    /// [`Live::with_endpoints`] from the table served until now, from now on: its
    /// carried state is already shared, nothing is inherited.
    pub fn store_patched(&self, live: Live) {
        self.current.store(Arc::new(live));
    }

    /// Whether a configuration has been applied.
    pub fn is_ready(&self) -> bool {
        self.current.load().version > 0
    }
}

/// `previous`, parallel to the previous table's route slots, made parallel to
/// `table`'s slots, an incremental update of it: the entries of each splice's new
/// slots are `make` of their routes (made in slot order); every other entry is
/// `previous`'s, shared. Route ids stay put across incremental updates, so only
/// the chunks holding the touched hosts' new slots are copied (and slots past
/// the end are appended), whatever the size of the table. An old slot that no
/// splice reuses keeps its entry: it is free, no request reaches it.
pub(crate) fn patch<T: Clone>(
    previous: &Chunked<T>,
    table: &RouteTable,
    splices: &[RouteSplice],
    mut make: impl FnMut(&Route) -> T,
) -> Chunked<T> {
    let mut slots: Vec<usize> = splices.iter().flat_map(|s| s.new.clone()).collect();
    slots.sort_unstable();
    let mut v = previous.clone();
    let routes = table.routes().slots();
    for i in slots {
        let Some(r) = routes.get(i) else { continue };
        let x = make(r);
        if i < v.len() {
            v.set(i, x);
        } else {
            debug_assert_eq!(i, v.len(), "new slots follow the previous ones");
            v.push(x);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingress_core::compile::compile;
    use ingress_core::routing::RouteHost;

    fn splice(old: std::ops::Range<usize>, new: std::ops::Range<usize>) -> RouteSplice {
        RouteSplice {
            host: RouteHost::Any,
            old,
            new,
        }
    }

    #[test]
    fn an_endpoint_update_shares_the_per_route_state() {
        let yaml = |ip: &str| {
            format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: a, namespace: t}}\nspec: {{ingressClassName: gw, rules: [{{host: a.test, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}]}}}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: t}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s-0, namespace: t, labels: {{kubernetes.io/service-name: s}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [\"{ip}\"]}}]\n"
            )
        };
        let options = ingress_core::CompileOptions::default().ingress_class("gw");
        let snapshot = |ip| ingress_core::manifest::load_str("a.yaml", &yaml(ip)).snapshot;
        let mut compiler = ingress_core::compile::Compiler::new(snapshot("10.0.0.1"), options);
        let first = Live::new(compiler.table().clone(), 1, Vec::new());
        let slice = snapshot("10.0.0.2").endpoint_slices.pop();
        let update = compiler.apply_endpoint_slices([("t".into(), "s-0".into(), slice)]);
        let ingress_core::compile::Update::Endpoints { backends, .. } = update else {
            panic!("{update:?}")
        };
        let next = Live::with_endpoints(
            &first,
            compiler.table().clone(),
            2,
            Vec::new(),
            &[],
            &backends,
        );
        assert_eq!(next.version(), 2);
        assert_eq!(next.labels.len(), first.labels.len());
        assert!((0..next.labels.len()).all(|i| Arc::ptr_eq(&next.labels[i], &first.labels[i])));
        let route = next.table().routes().iter().next().expect("a route");
        let i = next.balancers.primary(route.id().index());
        let (b, _) = next.balancers.get(i.expect("a balancer")).expect("listed");
        assert_eq!(b.endpoints()[0].to_string(), "10.0.0.2:8080");
    }

    #[test]
    fn patch_follows_splices() {
        // A table of 12 routes (made by compile, only its length and routes matter):
        // `make` gives 100 + the new route's id.
        let mut snapshot = ingress_core::Snapshot::new();
        for (i, host) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            let ing: ingress_core::model::Ingress = serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("i{i}"), "namespace": "n"},
                "spec": {"ingressClassName": "x", "rules": [{"host": format!("{host}.test"), "http": {"paths": [
                    {"path": "/a", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                    {"path": "/b", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}
                ]}}]}
            }))
            .expect("an Ingress");
            snapshot.ingresses.push(ing);
        }
        let mut options = ingress_core::CompileOptions::default();
        options.ingress_class_names = vec!["x".into()];
        let table = compile(&snapshot, &options).table;
        assert_eq!(table.routes().len(), 12);
        let make = |r: &Route| 100 + r.id().index() as u32;
        // 10 slots before; the host of slots 2..4 grew to 3 routes, moved to the
        // end (10..13 is past the 12 slots of this table: only 10 and 11 are made);
        // the host of 7..8 shrank into 7..7; a host of 2 routes took free slots 2..4.
        let previous: Chunked<u32> = (0..10).collect();
        let next = patch(
            &previous,
            &table,
            &[splice(2..4, 10..12), splice(7..8, 7..7), splice(0..0, 2..4)],
            make,
        );
        let got: Vec<u32> = next.iter().copied().collect();
        assert_eq!(got, vec![0, 1, 102, 103, 4, 5, 6, 7, 8, 9, 110, 111]);
        assert_eq!(next.shared_chunks(&previous), 0, "one chunk, copied");
        // An edit in place: same length, the route is made again, the rest shared.
        let previous: Chunked<u32> = (0..600).collect();
        let next = patch(&previous, &table, &[splice(1..2, 1..2)], make);
        let got: Vec<u32> = next.iter().copied().collect();
        assert_eq!(got[..3], [0, 101, 2]);
        assert_eq!(got[3..], (3..600).collect::<Vec<_>>()[..]);
        assert_eq!(
            next.shared_chunks(&previous),
            2,
            "only the first chunk copied"
        );
        assert_eq!(patch(&previous, &table, &[], make), previous);
    }
}
