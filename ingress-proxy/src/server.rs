//! The listeners: plain HTTP (HTTP/1.1 and h2c prior knowledge), TLS (ALPN h2 and
//! http/1.1) and admin; the configuration source; graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use ingress_core::{CompileOptions, Scheme};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::live::{Live, LiveTable};
use crate::metrics::Metrics;
use crate::mtls::{ClientAuth, Handshaker};
use crate::service::{ConnInfo, ProxyService, ServiceOptions};
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
    /// Time allowed for a client to send a request head (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
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
            header_read_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
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
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(LiveTable::new(Live::empty(config.compile.profile)));
        let source = FileSource::new(
            config.manifests.clone(),
            config.compile.clone(),
            live.clone(),
            metrics.clone(),
        );
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

        // Every limit is set here rather than left to hyper's defaults, which hyper
        // documents as unstable (edge values as Envoy's edge guide recommends).
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(64 * 1024)
            // At most 100 headers: hyper's documented default, which it parses on
            // the stack (setting it explicitly moves the parse to an initialised
            // SmallVec per request). Pinned by the framing tests.
            .keep_alive(true)
            .half_close(false);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(100)
            // RFC 8441: WebSocket over HTTP/2 (extended CONNECT).
            .enable_connect_protocol()
            .max_header_list_size(64 * 1024)
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(1024 * 1024)
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(1024)
            .max_send_buf_size(64 * 1024)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
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
                builder: builder.clone(),
                service: service.clone(),
                kind,
                grace: config.shutdown_grace,
                handshake_timeout: config.handshake_timeout,
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

struct Server {
    builder: auto::Builder<TokioExecutor>,
    service: ProxyService,
    kind: Kind,
    grace: Duration,
    handshake_timeout: Duration,
}

impl Server {
    async fn run(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let graceful = GracefulShutdown::new();
        let this = Arc::new(self);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off briefly.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let Ok(local) = tcp.local_addr() else { continue };
                    let watcher = graceful.watcher();
                    let this = this.clone();
                    tokio::spawn(async move {
                        this.connection(tcp, peer, local, watcher).await;
                    });
                }
                _ = stop.changed() => break,
            }
        }
        drop(listener);
        if tokio::time::timeout(this.grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }

    async fn connection(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        match &self.kind {
            Kind::Http => {
                let info = ConnInfo {
                    peer,
                    local,
                    scheme: Scheme::Http,
                };
                self.serve(TokioIo::new(tcp), info, None, watcher).await;
            }
            Kind::Https(handshaker) => {
                let tls =
                    tokio::time::timeout(self.handshake_timeout, handshaker.accept(tcp)).await;
                match tls {
                    Ok(Ok((stream, client_auth))) => {
                        let info = ConnInfo {
                            peer,
                            local,
                            scheme: Scheme::Https,
                        };
                        self.serve(TokioIo::new(stream), info, client_auth, watcher)
                            .await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            Kind::Admin(admin) => {
                let admin = admin.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = admin.handle(&req);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let conn = self.builder.serve_connection(TokioIo::new(tcp), svc);
                let _ = watcher.watch(conn.into_owned()).await;
            }
        }
    }

    async fn serve<I>(
        &self,
        io: TokioIo<I>,
        info: ConnInfo,
        client_auth: Option<Arc<ClientAuth>>,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = self.service.clone();
        let svc = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(info);
            if let Some(a) = &client_auth {
                req.extensions_mut().insert(a.clone());
            }
            let service = service.clone();
            async move {
                let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
                Ok::<_, Infallible>(service.handle(req).await)
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, svc);
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
        }
    }
}
