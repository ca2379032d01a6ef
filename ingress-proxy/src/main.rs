//! `ingress-proxy`: serve a folder of Kubernetes manifests as an Ingress gateway.
//!
//! ```text
//! ingress-proxy --manifests DIR --listen-http ADDR --listen-https ADDR --listen-admin ADDR
//!               [--controller-name NAME] [--profile standard|ingress-nginx]
//!               [--trust-forwarded-for CIDR[,CIDR...]]
//! ```
//!
//! Every flag can also be set through its environment variable (`--help` lists them).
//! SIGTERM or SIGINT stops accepting, lets in-flight requests finish for up to
//! `--shutdown-grace`, and exits 0. See docs/proxy.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ingress_core::lb::circuit::CircuitLimits;
use ingress_core::lb::outlier::OutlierConfig;
use ingress_core::limits::FailMode;
use ingress_core::{CompileOptions, DEFAULT_CONTROLLER_NAME, Profile};
use ingress_proxy::global::GlobalConfig;
use ingress_proxy::headers::TrustedProxies;
use ingress_proxy::redis::RedisAddr;
use ingress_proxy::{Listeners, Proxy, ProxyConfig, ServiceOptions};
use ipnet::IpNet;
use tokio::net::TcpListener;

/// Serve a folder of Kubernetes manifests (Ingress, IngressClass, Service,
/// EndpointSlice, Secret) as an Ingress gateway; changes apply within milliseconds.
#[derive(Debug, Parser)]
#[command(name = "ingress-proxy", version, about, long_about = None)]
struct Args {
    /// Manifests folder (recursed; .yaml, .yml, .json), watched for changes.
    #[arg(long, env = "INGRESS_PROXY_MANIFESTS", value_name = "DIR")]
    manifests: PathBuf,
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
    /// Log format.
    #[arg(long, env = "INGRESS_PROXY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR (10.0.0.0/8) or an IP address"))
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
    TcpListener::bind(addr)
        .await
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

async fn run(args: Args) -> anyhow::Result<()> {
    let meta = std::fs::metadata(&args.manifests)
        .with_context(|| format!("--manifests {}", args.manifests.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "--manifests {}: not a folder",
        args.manifests.display()
    );
    let default_certificate = match (&args.default_certificate, &args.default_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("reading {}", c.display()))?,
            std::fs::read(k).with_context(|| format!("reading {}", k.display()))?,
        )),
        _ => None,
    };
    let mut config = ProxyConfig::new(args.manifests.clone());
    config.compile =
        CompileOptions::with_profile(args.profile).controller_name(args.controller_name);
    let mut service = ServiceOptions::default();
    service.trusted = TrustedProxies::new(args.trust_forwarded_for);
    service.connect_timeout = args.upstream_connect_timeout;
    service.read_timeout = args.upstream_read_timeout;
    service.send_timeout = args.upstream_send_timeout;
    service.global_limits = args.redis.map(|addr| {
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
    let listeners = Listeners {
        http: Some(bind(args.listen_http, "HTTP").await?),
        https: Some(bind(args.listen_https, "HTTPS").await?),
        admin: Some(bind(args.listen_admin, "admin").await?),
    };
    let proxy = Proxy::start(config, listeners).await?;
    let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        http = addr(proxy.http_addr()),
        https = addr(proxy.https_addr()),
        admin = addr(proxy.admin_addr()),
        manifests = %args.manifests.display(),
        "listening"
    );
    let signal = shutdown_signal().await?;
    tracing::info!(signal, grace = ?args.shutdown_grace, "shutting down: draining connections");
    proxy.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(args))
}
