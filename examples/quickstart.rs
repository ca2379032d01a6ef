//! Quickstart: three echo upstreams on loopback plus the proxy on the bundled
//! `manifests/quickstart` folder (routing, a canary split by header and weight, a
//! regex rewrite), then curl commands to try.
//!
//!     cargo run --release -p examples --example quickstart
//!
//! The upstreams listen where the folder's EndpointSlices point (127.0.0.1:9181,
//! :9182 and :9183). The proxy listens on 127.0.0.1:8080 (HTTP/1.1 and h2c), 8443
//! (TLS) and 9090 (admin); set QUICKSTART_HTTP, QUICKSTART_HTTPS, QUICKSTART_ADMIN to
//! other addresses if those are taken. Edit the manifests while it runs: changes
//! apply within milliseconds. Ctrl-C stops it gracefully.
//!
//! `--smoke` binds the proxy to free ports, sends a few requests through it, checks
//! the answers and exits (CI runs this).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ingress_proxy::{Listeners, Proxy, ProxyConfig};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The folder the quickstart serves.
fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/quickstart")
}

/// An upstream that answers with what it received.
async fn echo(name: &'static str, addr: &str) -> Result<(), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("upstream {name} cannot listen on {addr}: {e}"))?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let mut text = format!(
                        "{name} got {} {} {:?}\n",
                        req.method(),
                        req.uri(),
                        req.version()
                    );
                    for (k, v) in req.headers() {
                        text += &format!("  {k}: {}\n", String::from_utf8_lossy(v.as_bytes()));
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(())
}

async fn bind(var: &str, default: &str) -> Result<TcpListener, Error> {
    let addr = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({var}): {e}").into())
}

/// One request through the proxy: status and body.
async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    header: Option<(&str, &str)>,
) -> Result<(StatusCode, String), Error> {
    let io = TokioIo::new(TcpStream::connect(addr).await?);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", host);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let req = req.body(Full::<Bytes>::default())?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn smoke(proxy: &Proxy) -> Result<(), Error> {
    let addr = proxy.http_addr().ok_or("no HTTP listener")?;
    let never = Some(("x-canary", "never"));
    let checks = [
        (
            "demo.localhost",
            "/",
            never,
            StatusCode::OK,
            "web got GET /",
        ),
        (
            "demo.localhost",
            "/",
            Some(("x-canary", "always")),
            StatusCode::OK,
            "web-v2 got GET /",
        ),
        (
            "demo.localhost",
            "/api/items?page=2",
            never,
            StatusCode::OK,
            "api got GET /api/items?page=2",
        ),
        (
            "demo.localhost",
            "/v1/items?page=2",
            never,
            StatusCode::OK,
            "api got GET /items?page=2",
        ),
        (
            "other.localhost",
            "/",
            None,
            StatusCode::NOT_FOUND,
            "no-route",
        ),
    ];
    for (host, path, header, want, contains) in checks {
        let (status, body) = get(addr, host, path, header).await?;
        if status != want || !body.contains(contains) {
            return Err(format!(
                "{host}{path}: got {status} {body:?}, want {want} with {contains:?}"
            )
            .into());
        }
        println!("ok  {host}{path} -> {status}");
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let smoke_only = std::env::args().any(|a| a == "--smoke");
    if !smoke_only {
        // The proxy's log, access lines included, on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .init();
    }
    echo("web", "127.0.0.1:9181").await?;
    echo("api", "127.0.0.1:9182").await?;
    echo("web-v2", "127.0.0.1:9183").await?;
    let listeners = if smoke_only {
        Listeners {
            http: Some(TcpListener::bind("127.0.0.1:0").await?),
            https: None,
            admin: None,
        }
    } else {
        Listeners {
            http: Some(bind("QUICKSTART_HTTP", "127.0.0.1:8080").await?),
            https: Some(bind("QUICKSTART_HTTPS", "127.0.0.1:8443").await?),
            admin: Some(bind("QUICKSTART_ADMIN", "127.0.0.1:9090").await?),
        }
    };
    let mut config = ProxyConfig::new(manifests());
    config.watch = !smoke_only;
    config.shutdown_grace = Duration::from_secs(2);
    let proxy = Proxy::start(config, listeners).await?;
    if !proxy.live().is_ready() {
        return Err(format!("{} did not load; see the log", manifests().display()).into());
    }
    if smoke_only {
        smoke(&proxy).await?;
        proxy.shutdown().await;
        return Ok(());
    }
    let (http, https, admin) = (
        proxy.http_addr().ok_or("no HTTP listener")?,
        proxy.https_addr().ok_or("no HTTPS listener")?,
        proxy.admin_addr().ok_or("no admin listener")?,
    );
    println!(
        "ingress-proxy is serving {} (upstreams web on 127.0.0.1:9181, api on 127.0.0.1:9182, web-v2 on 127.0.0.1:9183)\n\n\
         Try:\n  \
         curl -i http://{http}/ -H 'Host: demo.localhost'                       # web, or web-v2 one time in four (canary weight)\n  \
         curl -i http://{http}/ -H 'Host: demo.localhost' -H 'X-Canary: always' # the canary, by header\n  \
         curl -i http://{http}/v1/items -H 'Host: demo.localhost'               # rewritten: api gets /items\n  \
         curl -i http://{http}/api/items?page=2 -H 'Host: demo.localhost'\n  \
         curl -i --http2-prior-knowledge http://{http}/api -H 'Host: demo.localhost'\n  \
         curl -ik https://demo.localhost:{}/api --resolve demo.localhost:{}:{}\n  \
         curl -i http://{http}/ -H 'Host: unknown.localhost'          # 404\n  \
         curl http://{admin}/routes                                  # the live table\n  \
         curl http://{admin}/metrics\n\n\
         Edit {} and watch the routes change. Ctrl-C stops.",
        manifests().display(),
        https.port(),
        https.port(),
        https.ip(),
        manifests().join("quickstart.yaml").display(),
    );
    tokio::signal::ctrl_c().await?;
    proxy.shutdown().await;
    Ok(())
}
