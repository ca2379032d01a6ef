//! Rate and connection limits: one [`Limits`] per Ingress and rate-limit policy,
//! kept across table swaps (a config push does not hand every client a fresh
//! burst). The response body holds the request's admitted slot until it ends
//! (`access::ResponseBody`).

use std::sync::Arc;

use ingress_core::RouteTable;
use ingress_core::annotations::RateLimitPolicy;
use ingress_core::chunked::{Chunked, ShardedMap};
use ingress_core::compile::RouteSplice;
use ingress_core::limits::{Limits, StoreConfig};
use ingress_core::model::ObjectRef;

type Key = (ObjectRef, RateLimitPolicy);

/// A route's limits.
#[derive(Debug, Clone)]
pub(crate) enum RouteLimits {
    /// No limit applies.
    None,
    /// Checked per request.
    Some(Arc<Limits>),
    /// The policy could not be built: the route fails closed.
    Broken,
}

/// The limits of one table's routes.
#[derive(Debug, Default)]
pub(crate) struct LimitSet {
    /// Shared shards: a patched set copies only the shards it adds to.
    by_key: ShardedMap<Key, Option<Arc<Limits>>>,
    /// Parallel to `table.routes().slots()` (shared chunks: a patched table copies only
    /// the chunks of the routes it changed).
    routes: Chunked<RouteLimits>,
}

impl LimitSet {
    /// The limits of `table`'s routes, reusing `previous`'s for an unchanged
    /// Ingress and policy.
    pub(crate) fn new(table: &RouteTable, previous: Option<&LimitSet>) -> LimitSet {
        let mut by_key: ShardedMap<Key, Option<Arc<Limits>>> = ShardedMap::new();
        let routes = table
            .routes()
            .slots()
            .iter()
            .map(|r| limits_of(r, &mut by_key, previous))
            .collect();
        LimitSet { by_key, routes }
    }

    /// The limits of `table`, an incremental update of `previous`'s table
    /// (`splices` as in [`crate::live::Live::patched`]): the routes outside the
    /// splices keep theirs, new ones reuse those of an unchanged Ingress and policy.
    /// Limits no route uses any more stay in the index until the next full build.
    pub(crate) fn patched(
        previous: &LimitSet,
        table: &RouteTable,
        splices: &[RouteSplice],
    ) -> LimitSet {
        let mut by_key = previous.by_key.clone();
        let routes = crate::live::patch(&previous.routes, table, splices, |r| {
            limits_of(r, &mut by_key, Some(previous))
        });
        LimitSet { by_key, routes }
    }

    /// The limits of route `index`.
    pub(crate) fn route(&self, index: usize) -> RouteLimits {
        self.routes.get(index).cloned().unwrap_or(RouteLimits::None)
    }
}

/// Route `r`'s limits: those of its Ingress and policy in `by_key` or `previous`,
/// else new ones (recorded in `by_key`).
fn limits_of(
    r: &ingress_core::routing::Route,
    by_key: &mut ShardedMap<Key, Option<Arc<Limits>>>,
    previous: Option<&LimitSet>,
) -> RouteLimits {
    let policy = &r.policy().rate_limit;
    if !policy.is_set() {
        return RouteLimits::None;
    }
    let key = (r.ingress().clone(), policy.clone());
    let limits = match by_key.get(&key) {
        Some(l) => l.clone(),
        None => {
            let l = previous
                .and_then(|p| p.by_key.get(&key).cloned())
                .unwrap_or_else(|| match Limits::new(policy, StoreConfig::default()) {
                    Ok(l) => Some(Arc::new(l)),
                    Err(e) => {
                        tracing::warn!(ingress = %key.0.name, error = %e, "rate limits not usable; the routes answer 503");
                        None
                    }
                });
            by_key.insert(key, l.clone());
            l
        }
    };
    match limits {
        Some(l) => RouteLimits::Some(l),
        None => RouteLimits::Broken,
    }
}
