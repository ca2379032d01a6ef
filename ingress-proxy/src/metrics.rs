//! Prometheus metrics (OpenMetrics text on the admin listener's `GET /metrics`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a served request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    host: String,
    route: String,
    status: u16,
}

/// Labels of an upstream error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

/// Labels of a configuration apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApplyLabels {
    outcome: &'static str,
}

/// Labels of an applied table: how it was made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpdateLabels {
    kind: &'static str,
}

/// Labels of a global rate-limit check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Labels of an outlier ejection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

/// Labels of a served TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TlsHostLabels {
    host: String,
}

/// Every metric the proxy keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    upstream_connect_errors: Family<UpstreamLabels, Counter>,
    upstream_retries: Family<UpstreamLabels, Counter>,
    applies: Family<ApplyLabels, Counter>,
    updates: Family<UpdateLabels, Counter>,
    version: Gauge,
    tunnels: Gauge,
    response_queued: Gauge,
    global_limit_checks: Family<OutcomeLabels, Counter>,
    ejections: Family<ClusterLabels, Counter>,
    circuit_overflows: Family<ClusterLabels, Counter>,
    tls_expiry: Family<TlsHostLabels, Gauge>,
    tls_kept: Family<TlsHostLabels, Gauge>,
    allocator: Option<AllocatorGauges>,
}

/// jemalloc's statistics as gauges, read at each scrape.
#[derive(Debug, Default)]
struct AllocatorGauges {
    allocated: Gauge,
    active: Gauge,
    resident: Gauge,
    mapped: Gauge,
    metadata: Gauge,
    retained: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `ingress_proxy` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ingress_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let upstream_connect_errors = Family::<UpstreamLabels, Counter>::default();
        let upstream_retries = Family::<UpstreamLabels, Counter>::default();
        let applies = Family::<ApplyLabels, Counter>::default();
        let version = Gauge::default();
        let tunnels = Gauge::default();
        let response_queued = Gauge::default();
        registry.register(
            "requests",
            "Requests served, by route host, route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to the end of the response body",
            duration.clone(),
        );
        registry.register(
            "upstream_connect_errors",
            "Upstream requests that failed to connect, by endpoint",
            upstream_connect_errors.clone(),
        );
        registry.register(
            "upstream_retries",
            "Upstream tries followed by a try on another endpoint, by the endpoint that failed",
            upstream_retries.clone(),
        );
        registry.register(
            "config_applies",
            "Configuration loads, by outcome (applied or rejected)",
            applies.clone(),
        );
        let updates = Family::<UpdateLabels, Counter>::default();
        registry.register(
            "config_updates",
            "Applied tables, by how they were made: full (the whole configuration compiled), incremental (only the hosts of the changed Ingresses), secrets (only the TLS bindings of the changed Secrets) or endpoints (only the backends of the changed EndpointSlices' Services)",
            updates.clone(),
        );
        registry.register(
            "table_version",
            "Version of the live route table (0: none yet)",
            version.clone(),
        );
        registry.register(
            "open_tunnels",
            "Upgraded connections (WebSocket) being spliced",
            tunnels.clone(),
        );
        registry.register(
            "response_bytes_queued",
            "Bytes of response bodies handed to the client connections and not yet written to their sockets (each response holds back at most 4 KiB plus one upstream read of at most 8 KiB)",
            response_queued.clone(),
        );
        let global_limit_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "global_limit_checks",
            "Cluster-wide rate-limit checks in Redis, by outcome (allowed, limited, error)",
            global_limit_checks.clone(),
        );
        let ejections = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "outlier_ejections",
            "Endpoints ejected by outlier detection, by cluster (namespace/service:port)",
            ejections.clone(),
        );
        let circuit_overflows = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "circuit_overflows",
            "Requests or retries refused because the cluster's circuit breaker was full",
            circuit_overflows.clone(),
        );
        let tls_expiry = Family::<TlsHostLabels, Gauge>::default();
        registry.register(
            "tls_certificate_expiry_seconds",
            "Seconds until the notAfter of the certificate served for each TLS host, at the scrape (negative once expired)",
            tls_expiry.clone(),
        );
        let tls_kept = Family::<TlsHostLabels, Gauge>::default();
        registry.register(
            "tls_previous_certificate_kept",
            "1 for each TLS host served its last good certificate because its Secret's new content is unusable",
            tls_kept.clone(),
        );
        Metrics {
            tls_expiry,
            tls_kept,
            global_limit_checks,
            ejections,
            circuit_overflows,
            registry,
            requests,
            duration,
            upstream_connect_errors,
            upstream_retries,
            applies,
            updates,
            version,
            tunnels,
            allocator: None,
            response_queued,
        }
    }

    /// [`Metrics::new`] plus the allocator's statistics
    /// ([`crate::allocator::stats`]) as gauges read at each scrape
    /// (`ingress_proxy_allocator_{allocated,active,resident,mapped,metadata,retained}_bytes`).
    /// For a process whose global allocator is jemalloc (the `ingress-proxy`
    /// binary); where the statistics cannot be read, the gauges stay at 0.
    pub fn with_allocator_stats() -> Self {
        let mut m = Metrics::new();
        let g = AllocatorGauges::default();
        let gauges: [(&str, &str, &Gauge); 6] = [
            (
                "allocator_allocated_bytes",
                "Bytes the proxy has allocated and not freed (jemalloc stats.allocated)",
                &g.allocated,
            ),
            (
                "allocator_active_bytes",
                "Bytes in the allocator's pages holding allocations (jemalloc stats.active)",
                &g.active,
            ),
            (
                "allocator_resident_bytes",
                "Bytes in pages the allocator holds in memory: active pages, its metadata and freed pages not yet returned to the system (jemalloc stats.resident)",
                &g.resident,
            ),
            (
                "allocator_mapped_bytes",
                "Bytes in extents the allocator has mapped for allocations (jemalloc stats.mapped)",
                &g.mapped,
            ),
            (
                "allocator_metadata_bytes",
                "Bytes of the allocator's own metadata (jemalloc stats.metadata)",
                &g.metadata,
            ),
            (
                "allocator_retained_bytes",
                "Bytes of address space the allocator keeps mapped after returning its pages to the system; not in RSS (jemalloc stats.retained)",
                &g.retained,
            ),
        ];
        for (name, help, gauge) in gauges {
            m.registry.register(name, help, gauge.clone());
        }
        m.allocator = Some(g);
        m
    }

    /// Read the allocator's statistics into their gauges (when registered and
    /// readable); the admin listener calls this before each `/metrics` answer.
    pub fn refresh_allocator(&self) {
        let (Some(g), Some(s)) = (&self.allocator, crate::allocator::stats()) else {
            return;
        };
        let set = |gauge: &Gauge, v: u64| gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
        set(&g.allocated, s.allocated);
        set(&g.active, s.active);
        set(&g.resident, s.resident);
        set(&g.mapped, s.mapped);
        set(&g.metadata, s.metadata);
        set(&g.retained, s.retained);
    }

    /// Count one finished request.
    pub fn request(&self, host: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                host: host.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Count one finished request of a route (its counter looked up once per
    /// table and status).
    pub(crate) fn route_request(
        &self,
        stats: &crate::live::RouteStats,
        status: u16,
        elapsed: Duration,
    ) {
        stats
            .counter(status, || {
                self.requests
                    .get_or_create(&RequestLabels {
                        host: stats.label.host.clone(),
                        route: stats.label.route.clone(),
                        status,
                    })
                    .clone()
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Count a failed upstream connect.
    pub fn upstream_connect_error(&self, upstream: &str) {
        self.upstream_connect_errors
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// Count a try on `upstream` that is retried on another endpoint.
    pub fn upstream_retry(&self, upstream: &str) {
        self.upstream_retries
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc();
    }

    /// Count a configuration load; `version` is the table served after it.
    pub fn config_applied(&self, applied: bool, version: u64) {
        let outcome = if applied { "applied" } else { "rejected" };
        self.applies.get_or_create(&ApplyLabels { outcome }).inc();
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// Count one applied table by how it was made (`full`, `incremental`,
    /// `secrets` or `endpoints`).
    pub fn config_update(&self, kind: &'static str) {
        self.updates.get_or_create(&UpdateLabels { kind }).inc();
    }

    /// Count one global rate-limit check by `outcome`.
    pub fn global_limit_check(&self, outcome: &'static str) {
        self.global_limit_checks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Count an outlier ejection in `cluster`.
    pub fn ejection(&self, cluster: &str) {
        self.ejections
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_owned(),
            })
            .inc();
    }

    /// Count a request or retry refused by `cluster`'s circuit breaker.
    pub fn circuit_overflow(&self, cluster: &str) {
        self.circuit_overflows
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_owned(),
            })
            .inc();
    }

    /// Bytes of response bodies queued on client connections, not yet written
    /// (the `response_bytes_queued` gauge).
    pub fn response_bytes_queued(&self) -> i64 {
        self.response_queued.get()
    }

    /// The gauge behind [`Metrics::response_bytes_queued`], for the response bodies
    /// to count into.
    pub(crate) fn response_queued_gauge(&self) -> Gauge {
        self.response_queued.clone()
    }

    /// Set the number of open tunnels.
    pub fn open_tunnels(&self, n: usize) {
        self.tunnels.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Set the TLS gauges from the certificates `live` serves, at `now`.
    pub fn tls_certificates(&self, live: &crate::live::Live, now: ingress_core::model::Timestamp) {
        self.tls_expiry.clear();
        self.tls_kept.clear();
        for (host, cert, kept) in live.served_certificates() {
            let labels = TlsHostLabels {
                host: host.to_string(),
            };
            self.tls_expiry
                .get_or_create(&labels)
                .set(cert.not_after.saturating_sub(now.unix()));
            if kept {
                self.tls_kept.get_or_create(&labels).set(1);
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
