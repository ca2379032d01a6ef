//! Rate and connection limits: one [`Limits`] per Ingress and rate-limit policy,
//! kept across table swaps (a config push does not hand every client a fresh
//! burst), and a response body that holds the request's [`Admitted`](ingress_core::limits::Admitted) slot until
//! it ends.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use ingress_core::RouteTable;
use ingress_core::annotations::RateLimitPolicy;
use ingress_core::limits::{Limits, StoreConfig};
use ingress_core::model::ObjectRef;

use crate::service::{BoxError, ProxyBody};

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
    by_key: HashMap<Key, Option<Arc<Limits>>>,
    /// Parallel to `table.routes()`.
    routes: Vec<RouteLimits>,
}

impl LimitSet {
    /// The limits of `table`'s routes, reusing `previous`'s for an unchanged
    /// Ingress and policy.
    pub(crate) fn new(table: &RouteTable, previous: Option<&LimitSet>) -> LimitSet {
        let mut by_key: HashMap<Key, Option<Arc<Limits>>> = HashMap::new();
        let routes = table
            .routes()
            .iter()
            .map(|r| {
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
            })
            .collect();
        LimitSet { by_key, routes }
    }

    /// The limits of route `index`.
    pub(crate) fn route(&self, index: usize) -> RouteLimits {
        self.routes.get(index).cloned().unwrap_or(RouteLimits::None)
    }
}

/// A response body that keeps a value (the request's [`Admitted`](ingress_core::limits::Admitted) slot, its
/// circuit-breaker slot) until the body ends or is dropped.
pub(crate) struct Holding<T> {
    inner: ProxyBody,
    held: Option<T>,
}

impl<T> Holding<T> {
    pub(crate) fn new(inner: ProxyBody, held: T) -> Self {
        Holding {
            inner,
            held: Some(held),
        }
    }
}

impl<T: Unpin> Body for Holding<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
