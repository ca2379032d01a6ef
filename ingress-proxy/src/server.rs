//! The listeners: plain HTTP (HTTP/1.1 and h2c prior knowledge), TLS (ALPN h2 and
//! http/1.1) and admin; the configuration source; graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use ingress_core::{CompileOptions, Scheme};
use ingress_kube::gateway::GatewayLimits;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::conn::{
    Activity, CatchPanic, ConnCount, ConnSlot, IdleBody, SendLimit, StallGuard, Tracked,
};
use crate::live::{Live, LiveTable};
use crate::metrics::Metrics;
use crate::mtls::{ClientAuth, Handshaker};
use crate::server_limits::Limits;
use crate::service::{ConnInfo, ProxyBody, ProxyService, ServiceOptions};
use crate::source::{FileSource, WatchError};
use crate::tls::{SniResolver, TlsSetupError, default_certificate, server_config};

/// Everything the proxy is configured with, besides its listeners.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The manifests folder (or file).
    pub manifests: PathBuf,
    /// Controller name, profile and the other compile options.
    pub compile: CompileOptions,
    /// Forwarding options (trusted proxies, upstream timeouts).
    pub service: ServiceOptions,
    /// PEM certificate chain and key served when no TLS host matches; `None`
    /// generates a self-signed one at start.
    pub default_certificate: Option<(Vec<u8>, Vec<u8>)>,
    /// Quiet time after a file change before reloading.
    pub debounce: Duration,
    /// Watch the folder for changes.
    pub watch: bool,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Bounds on client connections (sizes, counts, timeouts, HTTP/2 settings).
    /// In `--kube` mode the gateway config's `spec.limits` is laid over them for
    /// each new connection.
    pub limits: Limits,
    /// Test hook: a request for exactly this path panics inside the request
    /// handler (panic containment tests). Set only by code; no flag, header or
    /// config field reaches it.
    #[doc(hidden)]
    pub panic_on_path: Option<String>,
    /// Test hook: loading the manifests panics while a file of this name is in the
    /// folder ([`FileSource::with_panic_marker`]). Set only by code.
    #[doc(hidden)]
    pub panic_on_manifest: Option<String>,
    /// Expose the allocator's statistics on `/metrics`
    /// ([`Metrics::with_allocator_stats`]): for a process whose global allocator
    /// is jemalloc, as the `ingress-proxy` binary's. Off by default.
    pub allocator_stats: bool,
}

impl ProxyConfig {
    /// Defaults for serving `manifests`.
    pub fn new(manifests: impl Into<PathBuf>) -> Self {
        ProxyConfig {
            manifests: manifests.into(),
            compile: CompileOptions::default(),
            service: ServiceOptions::default(),
            default_certificate: None,
            debounce: Duration::from_millis(30),
            watch: true,
            shutdown_grace: Duration::from_secs(10),
            limits: Limits::default(),
            panic_on_path: None,
            panic_on_manifest: None,
            allocator_stats: false,
        }
    }
}

/// Already-bound listeners (bind port 0 in tests). Any may be left out.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain HTTP/1.1 and h2c.
    pub http: Option<TcpListener>,
    /// TLS.
    pub https: Option<TcpListener>,
    /// Admin endpoints.
    pub admin: Option<TcpListener>,
}

/// The listen backlog [`listen`] asks for when the kernel's limit cannot be
/// read: Linux's `net.core.somaxconn` default since 5.4.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Bind a listener for [`Listeners`] the way the `ingress-proxy` binary does:
/// `SO_REUSEADDR`, and a listen backlog of the kernel's `net.core.somaxconn`
/// (ingress-nginx's choice; [`DEFAULT_BACKLOG`] where it cannot be read), not
/// the standard library's 128, which a burst of new connections overflows: the
/// kernel then drops their SYNs and each client waits a second to retry.
/// Call it inside a tokio runtime.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog())
}

/// `net.core.somaxconn`, else [`DEFAULT_BACKLOG`] (the kernel caps the backlog at
/// somaxconn in any case).
fn backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_BACKLOG)
}

/// Errors starting the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The manifests folder cannot be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// A listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// A running proxy. Dropping it does not stop it; call [`Proxy::shutdown`].
#[derive(Debug)]
pub struct Proxy {
    live: Arc<LiveTable>,
    metrics: Arc<Metrics>,
    source: FileSource,
    service: ProxyService,
    addrs: [Option<SocketAddr>; 3],
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
    grace: Duration,
}

impl Proxy {
    /// Load the manifests (a failed first load leaves the proxy up but not ready,
    /// answering 503, until a good one), start watching them and serve on
    /// `listeners`.
    pub async fn start(config: ProxyConfig, listeners: Listeners) -> Result<Proxy, ProxyError> {
        let metrics = Arc::new(if config.allocator_stats {
            Metrics::with_allocator_stats()
        } else {
            Metrics::new()
        });
        let live = Arc::new(LiveTable::new(Live::empty(config.compile.profile)));
        let mut source = FileSource::new(
            config.manifests.clone(),
            config.compile.clone(),
            live.clone(),
            metrics.clone(),
        );
        if let Some(marker) = &config.panic_on_manifest {
            source = source.with_panic_marker(marker.clone());
        }
        let pem = config
            .default_certificate
            .as_ref()
            .map(|(c, k)| (c.as_slice(), k.as_slice()));
        let resolver = Arc::new(SniResolver::new(live.clone(), default_certificate(pem)?));
        let handshaker = Handshaker {
            live: live.clone(),
            resolver: resolver.clone(),
            default: server_config(resolver)?,
        };
        // Watch before the first load, so a change made meanwhile is not missed.
        let watcher = if config.watch {
            Some(source.watch(config.debounce)?)
        } else {
            None
        };
        let _ = source.apply().await;
        let service = ProxyService::new(live.clone(), metrics.clone(), config.service.clone());

        let (stop, _) = watch::channel(false);
        let mut addrs = [None; 3];
        let mut servers = Vec::new();
        let kinds = [
            (listeners.http, Kind::Http),
            (listeners.https, Kind::Https(handshaker)),
            (
                listeners.admin,
                Kind::Admin(Admin::new(live.clone(), metrics.clone())),
            ),
        ];
        for (i, (listener, kind)) in kinds.into_iter().enumerate() {
            let Some(listener) = listener else { continue };
            addrs[i] = Some(listener.local_addr()?);
            let server = Server {
                base: Base::new(config.limits),
                live: live.clone(),
                service: service.clone(),
                kind,
                grace: config.shutdown_grace,
                panic_on_path: config.panic_on_path.clone(),
                conns: Arc::new(ConnCount::default()),
                send_queued: metrics.response_queued_gauge(),
            };
            servers.push(tokio::spawn(server.run(listener, stop.subscribe())));
        }
        Ok(Proxy {
            live,
            metrics,
            source,
            service,
            addrs,
            stop,
            servers,
            watcher,
            grace: config.shutdown_grace,
        })
    }

    /// The plain HTTP listener's address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addrs[0]
    }

    /// The TLS listener's address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.addrs[1]
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.addrs[2]
    }

    /// The live table.
    pub fn live(&self) -> &Arc<LiveTable> {
        &self.live
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The service the listeners run (for embedding in another server too).
    pub fn service(&self) -> &ProxyService {
        &self.service
    }

    /// Reload the manifests now (the watcher does this on every change).
    pub async fn reload(&self) -> Result<u64, crate::source::LoadError> {
        self.source.apply().await
    }

    /// Stop accepting, let in-flight requests and open tunnels finish (up to the
    /// grace period, then cut what is left), and return once every listener is closed.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + self.grace;
        let _ = self.stop.send(true);
        for s in self.servers {
            let _ = s.await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.service.close_tunnels(left).await;
        if let Some(w) = self.watcher {
            w.abort();
        }
    }
}

enum Kind {
    Http,
    Https(Handshaker),
    Admin(Admin),
}

/// The limits a listener was started with, and the hyper builder they make.
struct Base {
    limits: Limits,
    builder: auto::Builder<TokioExecutor>,
}

impl Base {
    fn new(limits: Limits) -> Self {
        Base {
            builder: limits.builder(),
            limits,
        }
    }
}

struct Server {
    base: Base,
    live: Arc<LiveTable>,
    service: ProxyService,
    kind: Kind,
    grace: Duration,
    panic_on_path: Option<String>,
    conns: Arc<ConnCount>,
    /// The `response_bytes_queued` gauge.
    send_queued: prometheus_client::metrics::gauge::Gauge,
}

/// Drive a hyper connection to its end; on shutdown, or once no request has been
/// in flight for the keep-alive timeout, close it gracefully (HTTP/1.1: after the
/// response in flight; HTTP/2: GOAWAY, open streams finish).
macro_rules! drive {
    ($conn:expr, $stop:expr, $activity:expr, $idle:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let mut stop = $stop;
        let activity = $activity;
        let idle = activity.idle_for($idle);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => break r,
                _ = stop.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = idle.as_mut(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }};
}

impl Server {
    /// The limits for a connection accepted now: the listener's, with the gateway
    /// config's `spec.limits` laid over them when the live table carries one.
    fn limits(&self) -> Limits {
        let live = self.live.load();
        let gateway = live
            .runtime()
            .map(|r| r.config().limits)
            .filter(|g| *g != GatewayLimits::default());
        match gateway {
            Some(g) => self.base.limits.with_gateway(&g),
            None => self.base.limits,
        }
    }

    /// The hyper builder for a connection's `limits`: the listener's own when
    /// they are the listener's, else one made for them.
    fn builder(&self, limits: &Limits) -> auto::Builder<TokioExecutor> {
        if *limits == self.base.limits {
            self.base.builder.clone()
        } else {
            limits.builder()
        }
    }

    async fn run(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut backoff = Duration::ZERO;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => {
                            backoff = Duration::ZERO;
                            a
                        }
                        Err(e) => {
                            // Out of file descriptors (EMFILE, ENFILE) and the like:
                            // back off, doubling up to 1 s, so a full table never
                            // spins; accepting resumes once descriptors free up.
                            backoff = (backoff * 2)
                                .clamp(Duration::from_millis(10), Duration::from_secs(1));
                            tracing::warn!(error = %e, ?backoff, "accept failed; backing off");
                            tokio::select! {
                                () = tokio::time::sleep(backoff) => {}
                                _ = stop.changed() => break,
                            }
                            continue;
                        }
                    };
                    let limits = this.limits();
                    let Some(slot) = this.conns.try_open(limits.max_connections) else {
                        // At the cap: closed at once, so the client learns it now
                        // rather than waiting in the backlog.
                        tracing::debug!(%peer, max = limits.max_connections, "connection limit reached; closed");
                        drop(tcp);
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let Ok(local) = tcp.local_addr() else { continue };
                    let stop = stop.clone();
                    let conn = Conn { peer, local, limits, stop, _slot: slot };
                    tokio::spawn(Server::connection(this.clone(), tcp, conn));
                }
                _ = stop.changed() => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(this.grace, this.conns.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = this.conns.open(),
                "shutdown grace period over; closing remaining connections"
            );
        }
    }

    /// Serve one accepted connection. Until its first bytes arrive it waits in a
    /// small future (this one: the task tokio allocates for it is about 1 KB);
    /// hyper's connection state and the TLS handshake (several KiB) are built,
    /// boxed, only then ([`Server::first_bytes_in`]), so connections that send
    /// nothing cost little (the hardening checklist's T52: 10,000 idle ones). A
    /// connection that sends nothing is closed after the keep-alive timeout (TLS:
    /// the handshake timeout), as hyper's own wait for its first bytes did before.
    async fn connection(self: Arc<Self>, tcp: tokio::net::TcpStream, mut conn: Conn) {
        let wait = match self.kind {
            Kind::Https(_) => conn.limits.handshake_timeout,
            Kind::Http | Kind::Admin(_) => conn.limits.keep_alive_timeout,
        };
        let deadline = tokio::time::Instant::now() + wait;
        // Peek, not `readable()`: tokio marks an accepted socket readable before
        // any event (its first bytes are usually there already), so `readable()`
        // would return at once and every idle connection would carry hyper's
        // state. A peek that finds nothing clears that guess and waits for the
        // first real event; one that finds the end (the client closed without a
        // byte) closes here.
        let mut first = [0u8; 1];
        tokio::select! {
            peeked = tcp.peek(&mut first) => {
                if !matches!(peeked, Ok(n) if n > 0) {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!(peer = %conn.peer, "nothing received within {wait:?}; closed");
                return;
            }
            _ = conn.stop.changed() => return,
        }
        self.first_bytes_in(tcp, conn, deadline).await;
    }

    /// The rest of a connection once its first bytes are in, boxed. A plain
    /// function, so that nothing of it is laid out in [`Server::connection`]'s
    /// future (the compiler keeps room there for values that were moved out
    /// before an await): that future holds only the box.
    fn first_bytes_in(
        self: Arc<Self>,
        tcp: tokio::net::TcpStream,
        conn: Conn,
        deadline: tokio::time::Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        match &self.kind {
            Kind::Http => {
                let info = ConnInfo {
                    peer: conn.peer,
                    local: conn.local,
                    scheme: Scheme::Http,
                };
                let io = StallGuard::new(tcp, conn.limits.send_timeout);
                Box::pin(async move { self.serve(io, info, None, conn).await })
            }
            Kind::Https(_) => Box::pin(async move {
                let Kind::Https(handshaker) = &self.kind else {
                    return;
                };
                let tls = tokio::time::timeout_at(deadline, handshaker.accept(tcp)).await;
                let peer = conn.peer;
                match tls {
                    Ok(Ok((stream, client_auth))) => {
                        let info = ConnInfo {
                            peer,
                            local: conn.local,
                            scheme: Scheme::Https,
                        };
                        let io = StallGuard::new(stream, conn.limits.send_timeout);
                        self.serve(io, info, client_auth, conn).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }),
            Kind::Admin(admin) => {
                let admin = admin.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = admin.handle(&req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let io = StallGuard::new(tcp, conn.limits.send_timeout);
                let served = self
                    .builder(&conn.limits)
                    .serve_connection(TokioIo::new(io), svc)
                    .into_owned();
                Box::pin(async move {
                    let _ = drive!(
                        served,
                        conn.stop,
                        Activity::new(SendLimit {
                            ahead: usize::MAX,
                            queued: Default::default(),
                        }),
                        conn.limits.keep_alive_timeout
                    );
                })
            }
        }
    }

    async fn serve<I>(
        &self,
        io: I,
        info: ConnInfo,
        client_auth: Option<Arc<ClientAuth>>,
        conn: Conn,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = self.service.clone();
        let activity = Activity::new(SendLimit {
            ahead: crate::conn::SEND_AHEAD,
            queued: self.send_queued.clone(),
        });
        let tracker = activity.clone();
        let body_idle = conn.limits.body_idle_timeout;
        let panic_on_path = self.panic_on_path.clone();
        // HTTP/1 head size checks from `--max-request-head`; carried only when they
        // differ from the defaults the service assumes.
        let head_limits =
            crate::framing::HeadLimits::for_max_request_head(conn.limits.max_request_head);
        let head_limits =
            (head_limits != crate::framing::HeadLimits::DEFAULT).then_some(head_limits);
        let svc = service_fn(move |mut req: Request<Incoming>| {
            // The connection's `ConnInfo` goes to the service as an argument (an
            // extension would allocate a map per request).
            if let Some(h) = head_limits {
                req.extensions_mut().insert(h);
            }
            if let Some(a) = &client_auth {
                req.extensions_mut().insert(a.clone());
            }
            let service = service.clone();
            let in_flight = tracker.begin();
            let panic_here = panic_on_path
                .as_deref()
                .is_some_and(|p| req.uri().path() == p);
            // Boxed: hyper keeps room for one service future per connection for
            // the connection's whole life, and the handler's future is several
            // KiB; boxed, that room is a pointer and the handler's state is freed
            // as soon as the response head is out.
            Box::pin(async move {
                // A request without a body (most) has nothing to time, and gets
                // the empty body (a zero-sized box: no allocation).
                let req = req.map(|b| {
                    if hyper::body::Body::is_end_stream(&b) {
                        crate::service::empty()
                    } else {
                        IdleBody::new(b.map_err(Into::into).boxed_unsync(), body_idle)
                            .boxed_unsync()
                    }
                });
                let handled = std::pin::pin!(async move {
                    assert!(!panic_here, "test hook: panic_on_path");
                    service.handle_on(req, info).await
                });
                let handled = CatchPanic(handled).await;
                let resp = handled.unwrap_or_else(|()| internal_error());
                Ok::<_, Infallible>(resp.map(|inner| Tracked::new(inner, in_flight)))
            })
        });
        let served = self
            .builder(&conn.limits)
            .serve_connection_with_upgrades(TokioIo::new(io), svc)
            .into_owned();
        let ended = drive!(served, conn.stop, activity, conn.limits.keep_alive_timeout);
        if let Err(e) = ended {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
    }
}

/// One accepted connection: where it came from and what it may take.
struct Conn {
    peer: SocketAddr,
    local: SocketAddr,
    limits: Limits,
    stop: watch::Receiver<bool>,
    _slot: ConnSlot,
}

/// The answer to a request whose handler panicked.
fn internal_error() -> Response<ProxyBody> {
    let body = Full::new(Bytes::from_static(b"500 Internal Server Error\n"))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
