//! The compiled, immutable route table and its parts.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use serde::{Serialize, Serializer};

use super::hosts::HostMap;
use crate::annotations::IngressPolicy;
use crate::annotations::values::Pattern;
use crate::chunked::Chunked;
use crate::compile::Profile;
use crate::model::{HostPattern, IngressPath, ObjectRef, PathType};
use crate::tls::CertifiedKey;

/// A [`Route`]'s slot in its table ([`Routes`]).
///
/// A full compile numbers the routes in order (by host, then path); an
/// incremental update ([`Compiler`](crate::compile::Compiler)) keeps every
/// untouched route's id and gives a touched host's routes free slots, so ids are
/// stable across incremental updates but not across full compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RouteId(pub(crate) u32);

impl RouteId {
    /// The slot as a number (an index into [`Routes::slots`]).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The routes of a table by id: a vector of slots in shared chunks ([`Chunked`]),
/// where a slot is either a live route or free.
///
/// A full compile leaves no free slot and the routes sorted by host, then path.
/// An incremental update rewrites only the slots of the hosts it touched: a host
/// that keeps or lowers its number of routes keeps its first slots (the rest are
/// freed); one that gains routes moves to free slots or to the end. A free slot
/// still holds the route it last held (so that state kept parallel to the slots
/// can be built for every slot) but [`get`](Self::get) and the iterators skip it.
#[derive(Clone, Default)]
pub struct Routes {
    slots: Chunked<Route>,
    /// Bit `i % 64` of word `i / 64` set: slot `i` is free.
    free: Vec<u64>,
    free_count: usize,
}

impl Routes {
    /// The number of live routes.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free_count
    }

    /// Whether there is no live route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots (live and free): every route id is below it.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Every slot, free ones included (each holds the route it last held): for
    /// state kept parallel to the ids.
    pub fn slots(&self) -> &Chunked<Route> {
        &self.slots
    }

    /// Whether slot `i` holds no live route (out of range counts as free).
    #[inline]
    pub fn is_free(&self, i: usize) -> bool {
        i >= self.slots.len()
            || (self.free_count != 0
                && self
                    .free
                    .get(i / 64)
                    .is_some_and(|w| w & (1 << (i % 64)) != 0))
    }

    /// The live route in slot `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Route> {
        if self.free_count != 0 && self.is_free(i) {
            return None;
        }
        self.slots.get(i)
    }

    /// The live routes by id.
    pub fn iter(&self) -> RoutesIter<'_> {
        RoutesIter {
            routes: self,
            inner: self.slots.iter().enumerate(),
        }
    }

    /// Slot `i`, free or not.
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &Route {
        &self.slots[i]
    }

    /// Put `route` in slot `i` (the next slot when `i` is the slot count) and
    /// mark it live; its chunk is copied first when shared.
    pub(crate) fn put(&mut self, i: usize, route: Route) {
        if i == self.slots.len() {
            self.slots.push(route);
            if self.free.len() * 64 < self.slots.len() {
                self.free.push(0);
            }
            return;
        }
        self.slots.set(i, route);
        if let Some(w) = self.free.get_mut(i / 64)
            && *w & (1 << (i % 64)) != 0
        {
            *w &= !(1 << (i % 64));
            self.free_count -= 1;
        }
    }

    /// Mark slot `i` free (it keeps its route).
    pub(crate) fn release(&mut self, i: usize) {
        if let Some(w) = self.free.get_mut(i / 64)
            && *w & (1 << (i % 64)) == 0
            && i < self.slots.len()
        {
            *w |= 1 << (i % 64);
            self.free_count += 1;
        }
    }
}

impl From<Vec<Route>> for Routes {
    fn from(v: Vec<Route>) -> Self {
        Routes {
            free: vec![0; v.len().div_ceil(64)],
            slots: v.into(),
            free_count: 0,
        }
    }
}

impl fmt::Debug for Routes {
    /// The live routes, as a slice's: `[a, b, ...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Routes {
    /// The same live routes in the same slots.
    fn eq(&self, other: &Self) -> bool {
        self.slots.len() == other.slots.len()
            && self.len() == other.len()
            && self.iter().eq(other.iter())
            && self.iter().all(|r| !other.is_free(r.id.index()))
    }
}

impl<'a> IntoIterator for &'a Routes {
    type Item = &'a Route;
    type IntoIter = RoutesIter<'a>;
    fn into_iter(self) -> RoutesIter<'a> {
        self.iter()
    }
}

/// The live routes of a [`Routes`] by id.
#[derive(Debug, Clone)]
pub struct RoutesIter<'a> {
    routes: &'a Routes,
    inner: std::iter::Enumerate<crate::chunked::Iter<'a, Route>>,
}

impl<'a> Iterator for RoutesIter<'a> {
    type Item = &'a Route;
    #[inline]
    fn next(&mut self) -> Option<&'a Route> {
        if self.routes.free_count == 0 {
            return self.inner.next().map(|(_, r)| r);
        }
        self.inner
            .find(|(i, _)| !self.routes.is_free(*i))
            .map(|(_, r)| r)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.inner.size_hint();
        if self.routes.free_count == 0 {
            (lo, hi)
        } else {
            (lo.saturating_sub(self.routes.free_count), hi)
        }
    }
}

/// Index of a [`Backend`] in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct BackendId(pub(crate) u32);

/// Which requests a route's host part accepts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteHost {
    /// One host or one wildcard pattern.
    Pattern(HostPattern),
    /// A rule without a host: every host.
    Any,
}

impl fmt::Display for RouteHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteHost::Pattern(p) => p.fmt(f),
            RouteHost::Any => f.write_str("*"),
        }
    }
}

impl Serialize for RouteHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a route matches on the path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteMatch {
    /// A rule path.
    Path(IngressPath),
    /// An Ingress's `spec.defaultBackend`: whatever nothing else matched.
    DefaultBackend(DefaultScope),
}

/// Where a `spec.defaultBackend` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultScope {
    /// Every request that no rule of any host matched.
    CatchAll,
    /// Requests to one host whose paths did not match (ingress-nginx profile).
    Host,
}

/// One compiled route: a host, a path (or default-backend slot), its backend, the
/// policy its Ingress's annotations ask for, and the canaries attached to it.
///
/// Laid out for [`RouteTable::route`]: what deciding a request reads (the
/// policies, backends and canaries) comes first, and a route starts a cache line
/// (`align(64)`), so a decision reads one line of it, not the two or three an
/// unaligned 144-byte route spans.
#[derive(Debug, Clone, PartialEq)]
#[repr(C, align(64))]
pub struct Route {
    pub(crate) policy: Arc<IngressPolicy>,
    pub(crate) host_policy: Arc<HostPolicy>,
    pub(crate) backend: BackendId,
    pub(crate) id: RouteId,
    /// The `default-backend` annotation's Service, resolved.
    pub(crate) fallback: Option<BackendId>,
    pub(crate) canaries: Vec<CanaryRoute>,
    pub(crate) host: Arc<RouteHost>,
    pub(crate) matcher: RouteMatch,
    pub(crate) ingress: Arc<ObjectRef>,
    pub(crate) field: Arc<str>,
    /// The compiled regex when the path matches as a regex.
    pub(crate) regex: Option<Pattern>,
}

/// A canary Ingress attached to a route: same host, path and path type.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryRoute {
    pub(crate) ingress: Arc<ObjectRef>,
    pub(crate) field: Arc<str>,
    pub(crate) backend: BackendId,
    pub(crate) policy: Arc<IngressPolicy>,
}

impl CanaryRoute {
    /// The canary Ingress.
    pub fn ingress(&self) -> &ObjectRef {
        &self.ingress
    }
    /// The field path of its rule path.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// Its backend.
    pub fn backend_id(&self) -> BackendId {
        self.backend
    }
    /// Its annotations' policy (its canary rules, and the load-balancing, affinity and
    /// header-control keys it may set for itself; everything else comes from the
    /// primary).
    pub fn policy(&self) -> &IngressPolicy {
        &self.policy
    }
}

/// What host-scoped annotations decide for one host: the oldest Ingress that sets a
/// key wins (conflicts are diagnosed).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct HostPolicy {
    /// `app-root`.
    pub app_root: Option<String>,
    /// `from-to-www-redirect`.
    pub from_to_www: bool,
    /// MSE domain-level IP lists (in `domain_allow` / `domain_deny`).
    pub access: crate::annotations::AccessPolicy,
    /// Client certificates and downstream TLS settings.
    pub client_tls: crate::annotations::ClientTlsPolicy,
    /// A TLS section of some Ingress names this host (ssl-redirect's condition).
    pub has_tls: bool,
    /// ingress-nginx profile: every path of the host matches as a case-insensitive
    /// regex because an Ingress of the host uses regex or rewrite.
    pub regex: bool,
}

impl Route {
    /// This route's id in its table.
    pub fn id(&self) -> RouteId {
        self.id
    }
    /// The host part.
    pub fn host(&self) -> &RouteHost {
        &self.host
    }
    /// The path part.
    pub fn matcher(&self) -> &RouteMatch {
        &self.matcher
    }
    /// The rule path, if this is a path route.
    pub fn path(&self) -> Option<&IngressPath> {
        match &self.matcher {
            RouteMatch::Path(p) => Some(p),
            RouteMatch::DefaultBackend(_) => None,
        }
    }
    /// The Ingress it came from.
    pub fn ingress(&self) -> &ObjectRef {
        &self.ingress
    }
    /// The field path of the rule path (or `spec.defaultBackend`) in that Ingress.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// The backend.
    pub fn backend_id(&self) -> BackendId {
        self.backend
    }
    /// The typed policy of the Ingress's annotations.
    pub fn policy(&self) -> &IngressPolicy {
        &self.policy
    }
    /// What host-scoped annotations decide for this route's host.
    pub fn host_policy(&self) -> &HostPolicy {
        &self.host_policy
    }
    /// The path regex, when the path matches as a regex.
    pub fn regex(&self) -> Option<&str> {
        self.regex.as_ref().map(Pattern::as_str)
    }
    /// The backend of the `default-backend` annotation: it serves when this route's
    /// backend cannot, and answers `custom-http-errors`.
    pub fn fallback_backend(&self) -> Option<BackendId> {
        self.fallback
    }
    /// Canary Ingresses attached to this route, in precedence order.
    pub fn canaries(&self) -> &[CanaryRoute] {
        &self.canaries
    }
}

/// A Service port as an Ingress references it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum PortRef {
    /// By number.
    Number(u16),
    /// By name.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => n.fmt(f),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// The host part of an upstream address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointHost {
    /// An IP address (EndpointSlice IPv4/IPv6).
    Ip(IpAddr),
    /// A DNS name (ExternalName Services, FQDN slices); the proxy resolves it.
    Dns(String),
}

impl fmt::Display for EndpointHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            EndpointHost::Ip(ip) => ip.fmt(f),
            EndpointHost::Dns(d) => f.write_str(d),
        }
    }
}

/// One upstream address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointAddr {
    /// Address.
    pub host: EndpointHost,
    /// Port.
    pub port: u16,
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Serialize for EndpointAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether a backend can serve, and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BackendStatus {
    /// Endpoints are known.
    Ready,
    /// The Service does not exist.
    ServiceNotFound,
    /// The Service has no such port.
    PortNotFound,
    /// The Service has no usable endpoints.
    NoEndpoints,
    /// A `resource` backend, which this gateway does not serve.
    Unsupported,
}

/// A resolved backend: Service, port and the endpoints to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub(crate) id: BackendId,
    pub(crate) namespace: String,
    pub(crate) service: String,
    pub(crate) port: PortRef,
    pub(crate) service_port: Option<u16>,
    pub(crate) endpoints: Vec<EndpointAddr>,
    pub(crate) status: BackendStatus,
}

impl Backend {
    /// This backend's id in its table.
    pub fn id(&self) -> BackendId {
        self.id
    }
    /// The Service's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The Service name (for a resource backend: `Kind/name`).
    pub fn service(&self) -> &str {
        &self.service
    }
    /// The port as the Ingress references it.
    pub fn port_ref(&self) -> &PortRef {
        &self.port
    }
    /// The Service port number, when the Service is known and has the port.
    pub fn service_port(&self) -> Option<u16> {
        self.service_port
    }
    /// Endpoints to forward to, sorted; empty unless [`BackendStatus::Ready`].
    pub fn endpoints(&self) -> &[EndpointAddr] {
        &self.endpoints
    }
    /// Whether and why not it can serve.
    pub fn status(&self) -> BackendStatus {
        self.status
    }
}

/// The backends of a table by id, with a bit per backend that says whether it
/// is [`BackendStatus::Ready`]: a decision tests it there (a few KiB for the
/// whole table, in cache) rather than in the backend (a cache line per
/// backend). Reads go to the [`Chunked`] list (`Deref`); every write goes
/// through `set`, `push` or `From<Vec<Backend>>`, which keep the bits.
#[derive(Clone, Default)]
pub(crate) struct Backends {
    list: Chunked<Backend>,
    /// Bit `i % 64` of word `i / 64` set: backend `i` is ready.
    ready: Vec<u64>,
}

impl Backends {
    /// Whether backend `i` is ready (out of range: not).
    #[inline]
    pub(crate) fn is_ready(&self, i: usize) -> bool {
        self.ready
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn mark(&mut self, i: usize, ready: bool) {
        if self.ready.len() <= i / 64 {
            self.ready.resize(i / 64 + 1, 0);
        }
        if ready {
            self.ready[i / 64] |= 1 << (i % 64);
        } else {
            self.ready[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Replace backend `i`; the old one back.
    pub(crate) fn set(&mut self, i: usize, b: Backend) -> Backend {
        self.mark(i, b.status == BackendStatus::Ready);
        self.list.set(i, b)
    }

    /// Panics unless every backend's ready bit is its status (and no bit is set
    /// past the last backend).
    #[cfg(test)]
    pub(crate) fn assert_ready_bits(&self) {
        for (i, b) in self.list.iter().enumerate() {
            assert_eq!(
                self.is_ready(i),
                b.status == BackendStatus::Ready,
                "backend {i}"
            );
        }
        for i in self.list.len()..self.ready.len() * 64 {
            assert!(!self.is_ready(i), "bit {i} past the end");
        }
    }

    /// The backends as a vector (for a table being taken apart).
    pub(crate) fn into_vec(self) -> Vec<Backend> {
        self.list.into_vec()
    }

    /// Add a backend after the last.
    pub(crate) fn push(&mut self, b: Backend) {
        self.mark(self.list.len(), b.status == BackendStatus::Ready);
        self.list.push(b);
    }
}

impl From<Vec<Backend>> for Backends {
    fn from(v: Vec<Backend>) -> Self {
        let mut ready = vec![0u64; v.len().div_ceil(64)];
        for (i, b) in v.iter().enumerate() {
            if b.status == BackendStatus::Ready {
                ready[i / 64] |= 1 << (i % 64);
            }
        }
        Backends {
            list: v.into(),
            ready,
        }
    }
}

impl<'a> IntoIterator for &'a Backends {
    type Item = &'a Backend;
    type IntoIter = crate::chunked::Iter<'a, Backend>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl std::ops::Deref for Backends {
    type Target = Chunked<Backend>;
    fn deref(&self) -> &Chunked<Backend> {
        &self.list
    }
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.list.fmt(f)
    }
}

/// The certificate to serve for one TLS host.
#[derive(Debug, Clone)]
pub struct TlsBinding {
    pub(crate) host: HostPattern,
    pub(crate) secret: Option<ObjectRef>,
    pub(crate) ingress: ObjectRef,
    pub(crate) certificate: Option<Arc<CertifiedKey>>,
    pub(crate) problem: Option<TlsProblem>,
}

/// Why a [`TlsBinding`] has no certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsProblem {
    /// The Secret is not in the input (`tls-secret-not-found`).
    SecretNotFound,
    /// The Secret is not a usable certificate and key (`tls-secret-invalid`).
    SecretInvalid,
    /// The Secret's certificate does not cover the host (`tls-host-not-covered`).
    HostNotCovered,
}

impl TlsProblem {
    /// Whether a running gateway keeps serving the last good certificate of the
    /// same Secret for the host (as ingress-nginx does): the Secret is there but
    /// its new content is unusable for the host. A missing Secret is not such a
    /// case (it was deleted or not yet created): the default certificate serves.
    pub fn keeps_previous(self) -> bool {
        matches!(self, TlsProblem::SecretInvalid | TlsProblem::HostNotCovered)
    }
}

impl TlsBinding {
    /// The host (or wildcard) from `spec.tls[].hosts`.
    pub fn host(&self) -> &HostPattern {
        &self.host
    }
    /// The Secret named by `spec.tls[].secretName`, if any.
    pub fn secret(&self) -> Option<&ObjectRef> {
        self.secret.as_ref()
    }
    /// The Ingress that set it.
    pub fn ingress(&self) -> &ObjectRef {
        &self.ingress
    }
    /// The parsed certificate, or `None` when the proxy must serve its default one.
    pub fn certificate(&self) -> Option<&Arc<CertifiedKey>> {
        self.certificate.as_ref()
    }
    /// Why there is no certificate (`None` when there is one, or when the TLS
    /// entry names no Secret).
    pub fn problem(&self) -> Option<TlsProblem> {
        self.problem
    }
}

/// One path of a small host: its key is `small_keys[start..start + len]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SmallEntry {
    pub(crate) start: u32,
    pub(crate) len: u32,
    pub(crate) kind: super::MatchKind,
    pub(crate) id: RouteId,
    pub(crate) path_type: PathType,
}

/// Up to this many paths, a host's paths are scanned rather than hashed.
pub(crate) const SMALL_HOST: usize = 8;

/// The routes of one host (or of the host-less rules), ready for lookup.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostRoutes {
    /// Hosts with at most [`SMALL_HOST`] paths keep them all here, scanned in
    /// [`HostRoutes::lookup`]; the maps below are then empty.
    pub(crate) small: Vec<SmallEntry>,
    /// The host's name (its first `name_len` bytes: the key in [`HostMap`]), then
    /// the keys of `small`, back to back in one allocation (one or two cache lines
    /// for a typical host, instead of one allocation per key; the name compared
    /// on lookup is in the line the path scan reads next).
    pub(crate) small_keys: String,
    /// The length of the name at the start of `small_keys`.
    pub(crate) name_len: u32,
    /// Exact paths.
    pub(crate) exact: HashMap<Box<str>, RouteId>,
    /// Prefix paths by element; key without trailing `/` (root is `/`).
    pub(crate) prefix: HashMap<Box<str>, (RouteId, PathType)>,
    /// ImplementationSpecific as plain string prefixes (ingress-nginx), longest first.
    pub(crate) string_prefix: Vec<(Box<str>, RouteId, PathType)>,
    /// Regex paths in match order (longest path string first, then precedence): the
    /// first that matches wins.
    pub(crate) regex: Vec<(Pattern, RouteId)>,
    /// ingress-nginx regex contagion: only `regex` is consulted.
    pub(crate) regex_only: bool,
    /// The root prefix route (`/`), which regex paths outrank in the standard profile.
    pub(crate) root: Option<RouteId>,
    /// Host-scoped policy (shared with the host's routes).
    pub(crate) policy: Option<Arc<HostPolicy>>,
    /// What answers when no path of this host matches (ingress-nginx profile: the
    /// `spec.defaultBackend` of the first Ingress that defined the host).
    pub(crate) fallback: Option<RouteId>,
    /// Every route of this host, for `explain` and listings.
    pub(crate) all: Vec<RouteId>,
}

/// The immutable result of compile: look up a request with [`RouteTable::route`].
///
/// `Send + Sync`; share it as `Arc<RouteTable>` and swap it atomically on change.
/// A clone is cheap: routes and backends are kept in shared chunks
/// ([`Chunked`]) and the hosts' lookup structures behind `Arc`s, so a copy of the
/// table made after an incremental update shares everything the update did not
/// touch with the table before it.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub(crate) profile: Profile,
    pub(crate) routes: Routes,
    pub(crate) backends: Backends,
    /// Exact hosts' lookup structures. Each is shared (`Arc`), and so are the
    /// map's shards: a clone of the table (publishing it after an incremental
    /// update) copies pointers, and the update copies only its hosts' shards.
    pub(crate) exact_hosts: HostMap,
    /// Wildcard hosts by suffix (`example.com` of `*.example.com`), shared likewise.
    pub(crate) wildcard_hosts: HostMap,
    pub(crate) any_host: Option<HostRoutes>,
    pub(crate) catch_all: Option<RouteId>,
    pub(crate) tls: Vec<TlsBinding>,
    /// Lower-case exact TLS host -> its first binding in `tls`.
    pub(crate) tls_exact: HashMap<Box<str>, usize>,
    /// Lower-case wildcard suffix (`example.com` of `*.example.com`) -> its first
    /// binding in `tls`.
    pub(crate) tls_wildcard: HashMap<Box<str>, usize>,
    /// Some host has `from-to-www-redirect`: only then does a miss look for the
    /// other name.
    pub(crate) www_redirects: bool,
}

impl RouteTable {
    /// An empty table: every request gets 404.
    pub fn empty(profile: Profile) -> Self {
        RouteTable {
            profile,
            routes: Routes::default(),
            backends: Backends::default(),
            exact_hosts: HostMap::default(),
            wildcard_hosts: HostMap::default(),
            any_host: None,
            catch_all: None,
            tls: Vec::new(),
            tls_exact: HashMap::default(),
            tls_wildcard: HashMap::default(),
            www_redirects: false,
        }
    }

    /// The profile it was compiled with.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Every route by id: after a full compile sorted by host, then path, then
    /// path type; an incremental update may move a host's routes to other slots.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// One route.
    ///
    /// # Panics
    ///
    /// If `id` comes from another table (ids are slots in their own table); a
    /// free slot gives the route it last held.
    pub fn route_by_id(&self, id: RouteId) -> &Route {
        self.routes.slot(id.index())
    }

    /// Every backend.
    pub fn backends(&self) -> &Chunked<Backend> {
        &self.backends
    }

    /// One backend.
    ///
    /// # Panics
    ///
    /// If `id` comes from another table.
    pub fn backend(&self, id: BackendId) -> &Backend {
        &self.backends[id.0 as usize]
    }

    /// The catch-all default backend route, if any.
    pub fn catch_all(&self) -> Option<&Route> {
        self.catch_all.map(|id| self.route_by_id(id))
    }

    /// TLS hosts and their certificates, sorted by host.
    pub fn tls_bindings(&self) -> &[TlsBinding] {
        &self.tls
    }

    /// The TLS binding for an SNI name: the exact host first, then a wildcard that
    /// covers it (one label). `None` means: serve the default certificate.
    pub fn tls_for_sni(&self, sni: &str) -> Option<&TlsBinding> {
        self.tls.get(self.tls_index_for_sni(sni)?)
    }

    /// [`tls_for_sni`](Self::tls_for_sni) as an index into
    /// [`tls_bindings`](Self::tls_bindings): two hash lookups, whatever the number
    /// of TLS hosts (it runs on every handshake).
    pub fn tls_index_for_sni(&self, sni: &str) -> Option<usize> {
        let sni = sni.trim_end_matches('.');
        let mut buf = [0u8; 256];
        let sni = lower(sni, &mut buf)?;
        if let Some(&i) = self.tls_exact.get(sni) {
            return Some(i);
        }
        let (first, suffix) = sni.split_once('.')?;
        if first.is_empty() {
            return None;
        }
        self.tls_wildcard.get(suffix).copied()
    }

    /// Sets the TLS bindings and their SNI indexes.
    pub(crate) fn set_tls(&mut self, tls: Vec<TlsBinding>) {
        self.tls_exact.clear();
        self.tls_wildcard.clear();
        for (i, b) in tls.iter().enumerate() {
            let (map, name) = match &b.host {
                HostPattern::Exact(e) => (&mut self.tls_exact, e.to_ascii_lowercase()),
                HostPattern::Wildcard(s) => (&mut self.tls_wildcard, s.to_ascii_lowercase()),
            };
            map.entry(name.into_boxed_str()).or_insert(i);
        }
        self.tls = tls;
    }
}

/// `s` in lower case, in `buf` when it has upper-case letters (no allocation);
/// `None` when longer than `buf`.
fn lower<'b>(s: &'b str, buf: &'b mut [u8; 256]) -> Option<&'b str> {
    if !s.bytes().any(|c| c.is_ascii_uppercase()) {
        return Some(s);
    }
    let out = buf.get_mut(..s.len())?;
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}
