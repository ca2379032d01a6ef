//! `ingress-proxy`: serve a folder of Kubernetes manifests, or a cluster's Ingresses,
//! as an Ingress gateway.
//!
//! ```text
//! ingress-proxy --manifests DIR --listen-http ADDR --listen-https ADDR --listen-admin ADDR
//!               [--controller-name NAME] [--profile standard|ingress-nginx]
//!               [--trust-forwarded-for CIDR[,CIDR...]] [--worker-threads N]
//! ingress-proxy --kube [--kubeconfig PATH] [--watch-namespace NS]
//!               [--publish-service NS/NAME | --publish-status-address ADDR[,ADDR...]]
//!               [--update-status false] --listen-http ADDR ... (see docs/kube.md)
//! ```
//!
//! Every flag can also be set through its environment variable (`--help` lists them).
//! SIGTERM or SIGINT stops accepting, lets in-flight requests finish for up to
//! `--shutdown-grace`, and exits 0. See docs/proxy.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The binary's allocator (feature `jemalloc`, on by default): jemalloc with its
/// background thread, which purges freed memory after a decay (set to 1 s at
/// start, [`ingress_proxy::allocator::DIRTY_DECAY`]), so that memory freed after a
/// burst (10,000 connections closing) goes back to the system even when the
/// proxy is idle; glibc's malloc returns memory only from the top of a heap.
#[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ingress_core::lb::circuit::CircuitLimits;
use ingress_core::lb::outlier::OutlierConfig;
use ingress_core::limits::FailMode;
use ingress_core::{CompileOptions, DEFAULT_CONTROLLER_NAME, Profile};
use ingress_kube::gateway::limit_ranges as r;
use ingress_proxy::global::GlobalConfig;
use ingress_proxy::headers::TrustedProxies;
use ingress_proxy::redis::RedisAddr;
use ingress_proxy::{Limits, Listeners, Proxy, ProxyConfig, ServiceOptions};
use ipnet::IpNet;
use tokio::net::TcpListener;

/// Serve a folder of Kubernetes manifests (Ingress, IngressClass, Service,
/// EndpointSlice, Secret) as an Ingress gateway; changes apply within milliseconds.
#[derive(Debug, Parser)]
#[command(name = "ingress-proxy", version, about, long_about = None)]
struct Args {
    /// Manifests folder (recursed; .yaml, .yml, .json), watched for changes.
    #[arg(
        long,
        env = "INGRESS_PROXY_MANIFESTS",
        value_name = "DIR",
        required_unless_present = "kube",
        conflicts_with = "kube"
    )]
    manifests: Option<PathBuf>,
    /// Serve the cluster's Ingresses (watched through the Kubernetes API) instead of a folder.
    #[arg(long, env = "INGRESS_PROXY_KUBE")]
    kube: bool,
    /// Kubeconfig file (default: in-cluster config, else $KUBECONFIG or ~/.kube/config).
    #[arg(
        long,
        env = "INGRESS_PROXY_KUBECONFIG",
        value_name = "PATH",
        requires = "kube"
    )]
    kubeconfig: Option<PathBuf>,
    /// Watch Ingresses, Services, EndpointSlices and Secrets of this namespace only.
    #[arg(
        long,
        env = "INGRESS_PROXY_WATCH_NAMESPACE",
        value_name = "NS",
        requires = "kube"
    )]
    watch_namespace: Option<String>,
    /// Class names served even without an IngressClass object (ingress-nginx's --ingress-class).
    #[arg(
        long,
        env = "INGRESS_PROXY_INGRESS_CLASS",
        value_name = "NAME[,NAME...]",
        value_delimiter = ','
    )]
    ingress_class: Vec<String>,
    /// Serve Ingresses that name no class.
    #[arg(long, env = "INGRESS_PROXY_WATCH_INGRESS_WITHOUT_CLASS")]
    watch_ingress_without_class: bool,
    /// Write Ingress status from this Service's addresses (NAMESPACE/NAME).
    #[arg(
        long,
        env = "INGRESS_PROXY_PUBLISH_SERVICE",
        value_name = "NS/NAME",
        requires = "kube",
        conflicts_with = "publish_status_address"
    )]
    publish_service: Option<ingress_kube::status::PublishAddress>,
    /// Write Ingress status with these IPs or hostnames.
    #[arg(
        long,
        env = "INGRESS_PROXY_PUBLISH_STATUS_ADDRESS",
        value_name = "ADDR[,ADDR...]",
        value_delimiter = ',',
        requires = "kube"
    )]
    publish_status_address: Vec<String>,
    /// Write Ingress status at all (false to run side by side with another controller).
    #[arg(long, env = "INGRESS_PROXY_UPDATE_STATUS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    update_status: bool,
    /// Name of the coordination.k8s.io Lease that elects the replica writing status and Events.
    #[arg(
        long,
        env = "INGRESS_PROXY_ELECTION_ID",
        default_value = "ingress-rs-leader"
    )]
    election_id: String,
    /// This replica's name, for the Lease and Events (set from the pod name).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// The namespace of the Lease (set from the pod's namespace; default: the client's).
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    /// Plain HTTP listener (HTTP/1.1 and h2c prior knowledge).
    #[arg(long, env = "INGRESS_PROXY_LISTEN_HTTP", value_name = "ADDR")]
    listen_http: SocketAddr,
    /// TLS listener (ALPN h2 and http/1.1; certificate by SNI).
    #[arg(long, env = "INGRESS_PROXY_LISTEN_HTTPS", value_name = "ADDR")]
    listen_https: SocketAddr,
    /// Admin listener: /healthz, /readyz, /metrics, /routes.
    #[arg(long, env = "INGRESS_PROXY_LISTEN_ADMIN", value_name = "ADDR")]
    listen_admin: SocketAddr,
    /// Our IngressClass controller name.
    #[arg(long, env = "INGRESS_PROXY_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    controller_name: String,
    /// Behaviour profile: the Kubernetes spec (standard) or ingress-nginx's quirks.
    #[arg(long, env = "INGRESS_PROXY_PROFILE", default_value = "standard", value_parser = parse_profile)]
    profile: Profile,
    /// The highest annotation risk level allowed (ingress-nginx's
    /// `annotations-risk-level`): low, medium, high or critical. An Ingress using a
    /// key above it gets an error and its routes answer 503.
    #[arg(long, env = "INGRESS_PROXY_ANNOTATIONS_RISK_LEVEL", value_name = "LEVEL", default_value = "high", value_parser = parse_risk)]
    annotations_risk_level: ingress_core::annotations::Risk,
    /// Peers whose X-Forwarded-For (and X-Forwarded-Proto/-Host/-Port) are believed.
    #[arg(long, env = "INGRESS_PROXY_TRUST_FORWARDED_FOR", value_name = "CIDR[,CIDR...]", value_delimiter = ',', value_parser = parse_cidr)]
    trust_forwarded_for: Vec<IpNet>,
    /// PEM certificate chain served when no TLS host matches (default: self-signed, made at start).
    #[arg(
        long,
        env = "INGRESS_PROXY_DEFAULT_CERTIFICATE",
        value_name = "FILE",
        requires = "default_key"
    )]
    default_certificate: Option<PathBuf>,
    /// PEM private key of --default-certificate.
    #[arg(
        long,
        env = "INGRESS_PROXY_DEFAULT_KEY",
        value_name = "FILE",
        requires = "default_certificate"
    )]
    default_key: Option<PathBuf>,
    /// How long in-flight requests may take to finish on SIGTERM/SIGINT.
    #[arg(long, env = "INGRESS_PROXY_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// For routes without `proxy-connect-timeout`: upstream TCP connect timeout
    /// (504 when it expires).
    #[arg(long, env = "INGRESS_PROXY_UPSTREAM_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    upstream_connect_timeout: Duration,
    /// For routes without `proxy-read-timeout`: time allowed for the upstream's
    /// response head (504 when it expires), then between two reads of its body.
    #[arg(long, env = "INGRESS_PROXY_UPSTREAM_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    upstream_read_timeout: Duration,
    /// For routes without `proxy-send-timeout`: how long a write of the request to
    /// an upstream may stay blocked (the upstream not reading); 504 when it expires.
    #[arg(long, env = "INGRESS_PROXY_UPSTREAM_SEND_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    upstream_send_timeout: Duration,
    /// How long an idle upstream keep-alive connection is kept (ingress-nginx's
    /// `upstream-keepalive-timeout`).
    #[arg(long, env = "INGRESS_PROXY_UPSTREAM_KEEPALIVE_TIMEOUT", default_value = "90s", value_parser = parse_duration)]
    upstream_keepalive_timeout: Duration,
    /// How many idle keep-alive connections are kept per upstream endpoint
    /// (ingress-nginx's `upstream-keepalive-connections`; 0: none, every
    /// request on a new connection).
    #[arg(
        long,
        env = "INGRESS_PROXY_UPSTREAM_KEEPALIVE_CONNECTIONS",
        default_value_t = 320
    )]
    upstream_keepalive_connections: usize,
    /// The most one read of a plain HTTP/1.1 upstream connection takes in
    /// (`8k`; 1k to 32k): a response body arrives in pieces of at most this, and
    /// a client that does not read holds about two of them until the send
    /// timeout. Larger: fewer system calls per large body, more memory per slow
    /// client.
    #[arg(long, env = "INGRESS_PROXY_UPSTREAM_READ_SIZE", default_value = "8k", value_parser = parse_size((1024, 32 * 1024)))]
    upstream_read_size: u64,
    /// Count `limit-rps`, `limit-rpm` and `route-limit-*` cluster-wide in this Redis
    /// server (`redis://[[user]:password@]host[:port][/db]`), shared by every
    /// replica; without it the limits are per replica.
    #[arg(long, env = "INGRESS_PROXY_REDIS", value_name = "URL")]
    redis: Option<RedisAddr>,
    /// What a rate-limited request gets when Redis cannot answer: `open` (served)
    /// or `closed` (refused with the limit's status).
    #[arg(long, env = "INGRESS_PROXY_REDIS_FAIL", value_enum, default_value_t = Fail::Open)]
    redis_fail: Fail,
    /// How long a global rate-limit check may wait for Redis.
    #[arg(long, env = "INGRESS_PROXY_REDIS_TIMEOUT", default_value = "100ms", value_parser = parse_duration)]
    redis_timeout: Duration,
    /// Eject an endpoint after this many 5xx answers in a row (0: off).
    #[arg(
        long,
        env = "INGRESS_PROXY_OUTLIER_CONSECUTIVE_5XX",
        default_value_t = 5
    )]
    outlier_consecutive_5xx: u32,
    /// Eject an endpoint after this many gateway failures in a row (connect error,
    /// reset, timeout, 502, 503, 504; 0: off).
    #[arg(
        long,
        env = "INGRESS_PROXY_OUTLIER_CONSECUTIVE_GATEWAY_FAILURES",
        default_value_t = 5
    )]
    outlier_consecutive_gateway_failures: u32,
    /// The first ejection's length; the n-th in a row lasts n times it.
    #[arg(long, env = "INGRESS_PROXY_OUTLIER_BASE_EJECTION", default_value = "30s", value_parser = parse_duration)]
    outlier_base_ejection: Duration,
    /// The longest ejection.
    #[arg(long, env = "INGRESS_PROXY_OUTLIER_MAX_EJECTION", default_value = "300s", value_parser = parse_duration)]
    outlier_max_ejection: Duration,
    /// The most endpoints of a Service port ejected at once, in percent (0: never).
    #[arg(long, env = "INGRESS_PROXY_OUTLIER_MAX_EJECTION_PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    outlier_max_ejection_percent: u8,
    /// Requests in flight per Service port before more are refused with 503 (0: no limit).
    #[arg(
        long,
        env = "INGRESS_PROXY_CIRCUIT_MAX_REQUESTS",
        default_value_t = 1024
    )]
    circuit_max_requests: u32,
    /// Retries in flight per Service port before more are not made (0: no limit).
    #[arg(long, env = "INGRESS_PROXY_CIRCUIT_MAX_RETRIES", default_value_t = 3)]
    circuit_max_retries: u32,
    /// Client connections open at once per listener; one more is accepted and
    /// closed at once (0: no limit).
    #[arg(long, env = "INGRESS_PROXY_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(range(r::MAX_CONNECTIONS)))]
    max_connections: u64,
    /// HTTP/1.1: request line and headers together, in bytes (`64k`; 431 beyond).
    #[arg(long, env = "INGRESS_PROXY_MAX_REQUEST_HEAD", default_value = "64k", value_parser = parse_size(r::REQUEST_HEAD))]
    max_request_head: u64,
    /// HTTP/1.1: headers per request (431 beyond).
    #[arg(long, env = "INGRESS_PROXY_MAX_HEADERS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(range(r::HEADERS)))]
    max_headers: u64,
    /// HTTP/1.1: time for a request head to arrive, also the longest idle time
    /// between two requests; the connection is closed.
    #[arg(long, env = "INGRESS_PROXY_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body (408, connection closed).
    #[arg(long, env = "INGRESS_PROXY_BODY_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    body_idle_timeout: Duration,
    /// How long a write to a client that does not read may stay blocked before the
    /// connection is closed.
    #[arg(long, env = "INGRESS_PROXY_SEND_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    send_timeout: Duration,
    /// A client connection with no request in flight for this long is closed
    /// (HTTP/2: GOAWAY).
    #[arg(long, env = "INGRESS_PROXY_KEEP_ALIVE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    keep_alive_timeout: Duration,
    /// Time allowed for a TLS handshake.
    #[arg(long, env = "INGRESS_PROXY_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    tls_handshake_timeout: Duration,
    /// HTTP/2: concurrent streams per connection.
    #[arg(long, env = "INGRESS_PROXY_H2_MAX_CONCURRENT_STREAMS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(range(r::H2_STREAMS)))]
    h2_max_concurrent_streams: u64,
    /// HTTP/2: initial stream flow-control window, in bytes.
    #[arg(long, env = "INGRESS_PROXY_H2_STREAM_WINDOW", default_value = "64k", value_parser = parse_size(r::H2_STREAM_WINDOW))]
    h2_stream_window: u64,
    /// HTTP/2: connection flow-control window, in bytes.
    #[arg(long, env = "INGRESS_PROXY_H2_CONNECTION_WINDOW", default_value = "1m", value_parser = parse_size(r::H2_CONNECTION_WINDOW))]
    h2_connection_window: u64,
    /// HTTP/2: decoded header list of one request, in bytes (431 beyond).
    #[arg(long, env = "INGRESS_PROXY_H2_MAX_HEADER_LIST", default_value = "64k", value_parser = parse_size(r::H2_HEADER_LIST))]
    h2_max_header_list: u64,
    /// HTTP/2: streams a client may reset before the proxy accepted them (rapid
    /// reset); one more ends the connection with GOAWAY.
    #[arg(long, env = "INGRESS_PROXY_H2_MAX_PENDING_ACCEPT_RESETS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(range(r::H2_RESETS)))]
    h2_max_pending_accept_resets: u64,
    /// HTTP/2: streams the proxy may reset for client protocol errors
    /// ("MadeYouReset"); one more ends the connection with GOAWAY.
    #[arg(long, env = "INGRESS_PROXY_H2_MAX_LOCAL_ERROR_RESETS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(range(r::H2_RESETS)))]
    h2_max_local_error_resets: u64,
    /// Log format.
    #[arg(long, env = "INGRESS_PROXY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Threads that run requests (default: $TOKIO_WORKER_THREADS, else one per CPU the process
    /// may use). With one, Tokio's current-thread scheduler runs them (less CPU per request).
    #[arg(long, env = "INGRESS_PROXY_WORKER_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
}

/// Redis failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fail {
    /// Serve the request.
    Open,
    /// Refuse it.
    Closed,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    s.parse()
        .map_err(|e: ingress_core::compile::UnknownProfile| e.to_string())
}

fn parse_risk(s: &str) -> Result<ingress_core::annotations::Risk, String> {
    s.parse()
        .map_err(|e: ingress_core::annotations::UnknownRisk| e.to_string())
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR (10.0.0.0/8) or an IP address"))
}

/// An inclusive range of the shared limit ranges, for clap.
const fn range((lo, hi): (u64, u64)) -> std::ops::RangeInclusive<u64> {
    lo..=hi
}

/// A byte count: `65536`, `64k`, `1m` (KiB, MiB), within `lo..=hi`.
fn parse_size((lo, hi): (u64, u64)) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s: &str| {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .strip_suffix("ib")
            .or_else(|| t.strip_suffix('b'))
            .unwrap_or(&t);
        let (num, unit) = match t.strip_suffix('k') {
            Some(n) => (n, 1024),
            None => match t.strip_suffix('m') {
                Some(n) => (n, 1024 * 1024),
                None => (t, 1),
            },
        };
        let n = num
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .ok_or_else(|| format!("{s:?} is not a size (65536, 64k, 1m)"))?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{s:?} ({n} bytes) is not in {lo}..={hi}"))
        }
    }
}

/// A duration longer than zero.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

/// `500ms`, `5s`, `2m`, or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (500ms, 5s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INGRESS_PROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    ingress_proxy::server::listen(addr)
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT").context("waiting for SIGINT"),
    }
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster config and no kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Watch the cluster and feed the proxy's live table; the Lease holder writes
/// Ingress status and Events. The tasks run until the process exits.
async fn start_kube(
    args: &Args,
    compile: CompileOptions,
    proxy: &Proxy,
) -> anyhow::Result<KubeMode> {
    use ingress_kube::lease::{LeaderElector, LeaseOptions};
    use ingress_kube::status::{PublishAddress, StatusOptions, StatusWriter};
    let client = kube_client(args.kubeconfig.as_ref()).await?;
    let mut options = ingress_kube::KubeOptions::new(compile);
    if let Some(ns) = &args.watch_namespace {
        options = options.namespace(ns);
    }
    let source = ingress_kube::KubeSource::start(client.clone(), options).await?;
    let mut tasks = vec![ingress_proxy::source::feed_kube(
        source.subscribe(),
        proxy.live().clone(),
        proxy.metrics().clone(),
        proxy.service().options().clone(),
    )];
    let identity = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("ingress-proxy-{}", std::process::id()));
    let lease_ns = args
        .pod_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let elector = LeaderElector::new(
        client.clone(),
        LeaseOptions::new(lease_ns, &args.election_id, &identity),
    );
    let (leader, t) = elector.clone().spawn();
    tasks.push(t);
    let publish = match (&args.publish_service, &args.publish_status_address) {
        (Some(s), _) => Some(s.clone()),
        (None, a) if !a.is_empty() => Some(PublishAddress::Addresses(a.clone())),
        _ => None,
    };
    let mut status = StatusOptions::new(publish, "ingress-rs");
    status.write_status = args.update_status;
    status.instance = Some(identity);
    tasks.push(StatusWriter::new(client, status).spawn(
        source.stores().clone(),
        source.subscribe(),
        leader,
    ));
    Ok(KubeMode {
        _source: source,
        tasks,
        elector,
    })
}

/// What `--kube` runs besides the proxy.
struct KubeMode {
    _source: ingress_kube::KubeSource,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    elector: ingress_kube::lease::LeaderElector,
}

impl KubeMode {
    /// Stop watching and writing, and hand the Lease over at once.
    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.elector.release().await {
            tracing::warn!(error = %e, "releasing the Lease failed; it expires by itself");
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(manifests) = &args.manifests {
        let meta = std::fs::metadata(manifests)
            .with_context(|| format!("--manifests {}", manifests.display()))?;
        anyhow::ensure!(
            meta.is_dir(),
            "--manifests {}: not a folder",
            manifests.display()
        );
    }
    let default_certificate = match (&args.default_certificate, &args.default_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("reading {}", c.display()))?,
            std::fs::read(k).with_context(|| format!("reading {}", k.display()))?,
        )),
        _ => None,
    };
    // In --kube mode the folder source gets no path (it loads nothing); the proxy
    // stays unready (503) until the cluster's first table.
    let mut config = ProxyConfig::new(args.manifests.clone().unwrap_or_default());
    config.watch = args.manifests.is_some();
    config.allocator_stats = cfg!(all(feature = "jemalloc", unix, not(target_env = "musl")));
    let mut compile = CompileOptions::with_profile(args.profile)
        .controller_name(args.controller_name.clone())
        .watch_ingress_without_class(args.watch_ingress_without_class)
        .annotations_risk_level(args.annotations_risk_level);
    for class in &args.ingress_class {
        compile = compile.ingress_class(class);
    }
    config.compile = compile.clone();
    let mut service = ServiceOptions::default();
    service.trusted = TrustedProxies::new(args.trust_forwarded_for.clone());
    service.connect_timeout = args.upstream_connect_timeout;
    service.read_timeout = args.upstream_read_timeout;
    service.send_timeout = args.upstream_send_timeout;
    service.pool_idle_timeout = args.upstream_keepalive_timeout;
    service.pool_max_idle_per_endpoint = args.upstream_keepalive_connections;
    service.upstream_read_size = usize::try_from(args.upstream_read_size).unwrap_or(32 * 1024);
    service.global_limits = args.redis.clone().map(|addr| {
        let mut g = GlobalConfig::new(addr);
        g.fail = match args.redis_fail {
            Fail::Open => FailMode::Open,
            Fail::Closed => FailMode::Closed,
        };
        g.timeout = args.redis_timeout;
        g
    });
    service.outlier = OutlierConfig {
        consecutive_5xx: args.outlier_consecutive_5xx,
        consecutive_gateway_failure: args.outlier_consecutive_gateway_failures,
        base_ejection: args.outlier_base_ejection,
        max_ejection: args.outlier_max_ejection,
        max_ejection_percent: args.outlier_max_ejection_percent,
    };
    service.circuit = CircuitLimits {
        max_requests: args.circuit_max_requests,
        max_retries: args.circuit_max_retries,
    };
    config.service = service;
    config.default_certificate = default_certificate;
    config.shutdown_grace = args.shutdown_grace;
    config.limits = limits(&args)?;
    let listeners = Listeners {
        http: Some(bind(args.listen_http, "HTTP").await?),
        https: Some(bind(args.listen_https, "HTTPS").await?),
        admin: Some(bind(args.listen_admin, "admin").await?),
    };
    let proxy = Proxy::start(config, listeners).await?;
    let kube = if args.kube {
        Some(start_kube(&args, compile, &proxy).await?)
    } else {
        None
    };
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let source = match &args.manifests {
        Some(m) => m.display().to_string(),
        None => "kubernetes".to_owned(),
    };
    tracing::info!(
        http = addr(proxy.http_addr()),
        https = addr(proxy.https_addr()),
        admin = addr(proxy.admin_addr()),
        source,
        "listening"
    );
    let signal = shutdown_signal().await?;
    if let Some(kube) = kube {
        kube.stop().await;
    }
    tracing::info!(signal, grace = ?args.shutdown_grace, "shutting down: draining connections");
    proxy.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The connection limits the flags set (ranges were checked when parsing).
fn limits(args: &Args) -> anyhow::Result<Limits> {
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    let mut l = Limits::default();
    l.max_connections = size(args.max_connections);
    l.max_request_head = size(args.max_request_head);
    l.max_headers = size(args.max_headers);
    l.header_read_timeout = args.header_read_timeout;
    l.body_idle_timeout = args.body_idle_timeout;
    l.send_timeout = args.send_timeout;
    l.keep_alive_timeout = args.keep_alive_timeout;
    l.handshake_timeout = args.tls_handshake_timeout;
    l.h2_max_concurrent_streams = small(args.h2_max_concurrent_streams);
    l.h2_stream_window = small(args.h2_stream_window);
    l.h2_connection_window = small(args.h2_connection_window);
    l.h2_max_header_list = small(args.h2_max_header_list);
    l.h2_max_pending_accept_resets = size(args.h2_max_pending_accept_resets);
    l.h2_max_local_error_resets = size(args.h2_max_local_error_resets);
    if let Err(errs) = l.validate() {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        anyhow::bail!("invalid limits: {}", lines.join("; "));
    }
    Ok(l)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    // jemalloc returns freed memory within about 1 s (its default: 10 s), unless
    // `_RJEM_MALLOC_CONF` sets a dirty decay of its own.
    #[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
    if !std::env::var("_RJEM_MALLOC_CONF").is_ok_and(|c| c.contains("dirty_decay_ms"))
        && !ingress_proxy::allocator::set_dirty_decay(ingress_proxy::allocator::DIRTY_DECAY)
    {
        tracing::warn!("could not set the allocator's dirty decay; keeping its default");
    }
    let mut runtime = runtime_builder(
        worker_threads(
            args.worker_threads,
            std::env::var("TOKIO_WORKER_THREADS").ok().as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    // Each thread's allocator cache keeps few objects of a connection's sizes,
    // here and in the runtime's threads (see `allocator::limit_thread_cache`).
    #[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
    {
        use ingress_proxy::allocator::limit_thread_cache;
        if !limit_thread_cache() {
            tracing::warn!("could not limit the allocator's thread caches; keeping its defaults");
        }
        runtime.on_thread_start(|| {
            limit_thread_cache();
        });
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}

/// How many threads run requests: `--worker-threads`, else `$TOKIO_WORKER_THREADS`
/// (`env`; Tokio's own variable, which it refuses unless a positive number), else
/// one per CPU the process may use (its cgroup's quota included).
fn worker_threads(flag: Option<u16>, env: Option<&str>) -> Result<usize, String> {
    if let Some(n) = flag {
        return Ok(usize::from(n));
    }
    match env {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "TOKIO_WORKER_THREADS: {v:?} is not a positive number of threads"
            )),
        },
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The runtime for `threads` request threads. One thread gets Tokio's
/// current-thread scheduler, which runs every task on the thread that drives it
/// (here, the main thread) with no work-stealing queues and no cross-thread
/// wakes: in the side-by-side benchmark, 6-9 % less CPU per request than the
/// multi-thread scheduler with one worker, at the same work per request (a
/// 1-CPU pod, or `--worker-threads 1`). Blocking work still goes to Tokio's
/// blocking pool in either case.
fn runtime_builder(threads: usize) -> tokio::runtime::Builder {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec![
            "ingress-proxy",
            "--manifests",
            "m",
            "--listen-http",
            "127.0.0.1:1",
            "--listen-https",
            "127.0.0.1:2",
            "--listen-admin",
            "127.0.0.1:3",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn the_limit_flags_default_to_the_library_defaults() {
        let a = args(&[]).expect("parses");
        assert_eq!(limits(&a).expect("valid"), Limits::default());
    }

    #[test]
    fn limit_flags_parse_sizes_and_refuse_out_of_range_values() {
        let a = args(&[
            "--max-request-head",
            "16k",
            "--h2-connection-window",
            "2m",
            "--header-read-timeout",
            "2s",
        ])
        .expect("parses");
        let l = limits(&a).expect("valid");
        assert_eq!(l.max_request_head, 16 * 1024);
        assert_eq!(l.h2_connection_window, 2 * 1024 * 1024);
        assert_eq!(l.header_read_timeout, Duration::from_secs(2));
        assert!(args(&["--max-request-head", "4k"]).is_err());
        assert!(args(&["--max-headers", "0"]).is_err());
        assert!(args(&["--h2-stream-window", "4294967296"]).is_err());
        assert!(args(&["--body-idle-timeout", "0s"]).is_err());
        assert!(args(&["--max-request-head", "lots"]).is_err());
    }

    #[test]
    fn one_request_thread_runs_the_current_thread_scheduler() {
        assert_eq!(worker_threads(Some(1), Some("4")), Ok(1));
        assert_eq!(worker_threads(Some(2), Some("many")), Ok(2));
        assert_eq!(worker_threads(None, Some("1")), Ok(1));
        assert_eq!(worker_threads(None, Some(" 3 ")), Ok(3));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads(None, None), Ok(cpus));
        for bad in ["0", "many", ""] {
            let e = worker_threads(None, Some(bad)).expect_err(bad);
            assert!(e.starts_with("TOKIO_WORKER_THREADS: "), "{e}");
        }

        let flavor = |threads| {
            let rt = runtime_builder(threads)
                .enable_all()
                .build()
                .expect("runtime");
            let flavor = rt.handle().runtime_flavor();
            // Both run a spawned task to its end.
            assert_eq!(
                rt.block_on(async { tokio::spawn(async { 7 }).await.ok() }),
                Some(7)
            );
            flavor
        };
        assert_eq!(flavor(1), tokio::runtime::RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(2), tokio::runtime::RuntimeFlavor::MultiThread);
    }

    #[test]
    fn the_upstream_read_size_defaults_to_the_library_default_within_1k_to_32k() {
        let a = args(&[]).expect("parses");
        assert_eq!(
            usize::try_from(a.upstream_read_size).ok(),
            Some(ingress_proxy::ServiceOptions::default().upstream_read_size)
        );
        let a = args(&["--upstream-read-size", "32k"]).expect("parses");
        assert_eq!(a.upstream_read_size, 32 * 1024);
        assert!(args(&["--upstream-read-size", "512"]).is_err());
        assert!(args(&["--upstream-read-size", "64k"]).is_err());
    }
}
