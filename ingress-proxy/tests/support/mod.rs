//! Test helpers: echo upstreams that report what they received, real HTTP/1.1,
//! HTTP/2 and TLS clients, manifests on disk, and polling with generous deadlines.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingress_proxy::{Listeners, Proxy, ProxyConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A `KubeSource` watching `api` (changes gathered for `debounce`) that feeds
/// `p`'s live table, as main.rs does in `--kube` mode. Keep both alive for the
/// test: dropping them stops the watch.
pub async fn kube_feed(
    api: &ingress_kube::testing::FakeApiServer,
    p: &Proxy,
    debounce: Duration,
) -> Result<
    (ingress_kube::KubeSource, tokio::task::JoinHandle<()>),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let options =
        ingress_kube::KubeOptions::new(ingress_core::CompileOptions::default()).debounce(debounce);
    let source = ingress_kube::KubeSource::start(api.client()?, options).await?;
    let feed = ingress_proxy::source::feed_kube(
        source.subscribe(),
        p.live().clone(),
        p.metrics().clone(),
        p.service().options().clone(),
    );
    Ok((source, feed))
}

/// Generous: the machine is small and shared.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Poll `check` until it returns true, or fail after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An echo upstream on loopback.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: &'static str,
    /// Requests received so far (counted when their head arrives).
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted so far.
    pub conns: Arc<AtomicUsize>,
}

/// Start an echo upstream. It answers every request with JSON describing it
/// (`server`, `method`, `uri`, `version`, `headers` as name -> [values], `body`).
/// `/slow?ms=N` waits N ms first; `/status/N` answers with status N (same body). A request with `Upgrade` gets 101 and then every
/// byte it sends is echoed back.
pub async fn echo(name: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let conns = Arc::new(AtomicUsize::new(0));
    let accepted = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    echo_handle(name, req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Upstream {
        addr,
        name,
        hits,
        conns,
    }
}

/// An upstream answering every request with 500 and `{"server": name}` (an
/// endpoint that passive health checks eject), counting requests and connections.
pub async fn failing(name: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let (hits, conns) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (counter, accepted) = (hits.clone(), conns.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            let svc = service_fn(move |_req: Request<Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let body = format!("{{\"server\":\"{name}\"}}");
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    Upstream {
        addr,
        name,
        hits,
        conns,
    }
}

pub async fn echo_handle(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(proto) = req.headers().get(header::UPGRADE).cloned() {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        resp.headers_mut().insert(header::UPGRADE, proto);
        return Ok(resp);
    }
    if req.uri().path() == "/slow" {
        let ms = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut headers = BTreeMap::<String, Vec<String>>::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let (method, uri, version) = (
        req.method().to_string(),
        req.uri().to_string(),
        format!("{:?}", req.version()),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let doc = json!({
        "server": name, "method": method, "uri": uri, "version": version,
        "headers": headers, "body_len": body.len(),
        "body": String::from_utf8_lossy(&body[..body.len().min(1024)]),
    });
    let mut resp = Response::new(Full::new(Bytes::from(doc.to_string())));
    if let Some(code) = uri
        .strip_prefix("/status/")
        .and_then(|c| c.split('?').next())
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        *resp.status_mut() = code;
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "connection",
        HeaderValue::from_static("keep-alive, x-upstream-private"),
    );
    resp.headers_mut()
        .insert("x-upstream-private", HeaderValue::from_static("1"));
    Ok(resp)
}

/// A port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

/// A self-signed certificate and key (PEM) for `names`.
pub fn cert(names: &[&str]) -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("rcgen");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// A TLS Secret manifest.
pub fn tls_secret(name: &str, (cert, key): &(String, String)) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: t}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(cert),
        indent(key)
    )
}

/// A Service `name` (port 80) with one EndpointSlice listing `ports` on 127.0.0.1
/// (one endpoint per distinct address: ports share a slice port, so give one port;
/// use several names for several upstreams).
pub fn service(name: &str, addrs: &[SocketAddr]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: t}}\nspec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n"
    );
    for (i, a) in addrs.iter().enumerate() {
        out += &format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{i}, namespace: t, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"], conditions: {{ready: true}}}}]\n",
            a.port(),
            a.ip()
        );
    }
    out
}

/// An IngressClass `gw` of our controller.
pub const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: gw}\nspec: {controller: ingress-rs.dev/gateway}\n";

/// An Ingress `name` with `rules` as (host, path, service) and TLS hosts with their secret.
pub fn ingress(name: &str, rules: &[(&str, &str, &str)], tls: &[(&str, &str)]) -> String {
    ingress_with(name, &[], rules, tls)
}

/// [`ingress`] with annotations.
pub fn ingress_with(
    name: &str,
    annotations: &[(&str, &str)],
    rules: &[(&str, &str, &str)],
    tls: &[(&str, &str)],
) -> String {
    let mut out = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: t\n  annotations:\n"
    );
    for (k, v) in annotations {
        out += &format!(
            "    {k}: {}\n",
            serde_json::to_string(v).expect("json string")
        );
    }
    if annotations.is_empty() {
        out = out.replace("  annotations:\n", "");
    }
    out += "spec:\n  ingressClassName: gw\n";
    if !tls.is_empty() {
        out += "  tls:\n";
        for (host, secret) in tls {
            out += &format!("  - {{hosts: [\"{host}\"], secretName: {secret}}}\n");
        }
    }
    out += "  rules:\n";
    for (host, path, svc) in rules {
        out += &format!(
            "  - host: \"{host}\"\n    http:\n      paths:\n      - {{path: \"{path}\", pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        );
    }
    out
}

/// Join documents into one YAML stream.
pub fn docs(parts: &[String]) -> String {
    parts.join("---\n")
}

/// Write a file atomically (write a hidden temporary, then rename), as editors and
/// Kubernetes volume updates do, so the watcher never reads half a file.
pub fn write(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("rename manifest");
}

/// Start a proxy on port 0 listeners serving `dir`.
pub async fn proxy(dir: &Path, tweak: impl FnOnce(&mut ProxyConfig)) -> Proxy {
    let mut config = ProxyConfig::new(dir);
    config.debounce = Duration::from_millis(20);
    tweak(&mut config);
    let bind = || async { Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")) };
    let listeners = Listeners {
        http: bind().await,
        https: bind().await,
        admin: bind().await,
    };
    Proxy::start(config, listeners).await.expect("proxy starts")
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// One request header the upstream saw (first value).
    pub fn seen(&self, name: &str) -> Option<String> {
        self.json()["headers"][name][0].as_str().map(str::to_owned)
    }
}

/// A request for `host` and `path_and_query` (absolute URI, so it works for both
/// HTTP/1.1, where the Host header is set from it, and HTTP/2).
pub fn get(host: &str, path: &str) -> http::request::Builder {
    Request::get(format!("http://{host}{path}"))
}

async fn read(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Send one HTTP/1.1 request on a new connection (origin form, Host header set).
pub async fn h1(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    h1_on(io, req).await
}

pub async fn h1_on<I>(io: TokioIo<I>, req: Request<Full<Bytes>>) -> Reply
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = origin_form(req);
    read(send.send_request(req).await.expect("h1 request")).await
}

/// Absolute URI to origin form plus a Host header (unless one is set).
pub fn origin_form<B>(mut req: Request<B>) -> Request<B> {
    if let Some(a) = req.uri().authority().cloned()
        && !req.headers().contains_key(header::HOST)
    {
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(a.as_str()).expect("host"),
        );
    }
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *req.uri_mut() = pq.parse().expect("path");
    req
}

/// Send one HTTP/2 request with prior knowledge (h2c) on a new connection.
pub async fn h2(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
    h2_on(io, req).await
}

pub async fn h2_on<I>(io: TokioIo<I>, req: Request<Full<Bytes>>) -> Reply
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    read(send.send_request(req).await.expect("h2 request")).await
}

/// Accepts any server certificate: the tests look at which one was served.
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a TLS connection negotiated.
#[derive(Debug)]
pub struct Tls {
    pub stream: tokio_rustls::client::TlsStream<TcpStream>,
    pub leaf: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
}

/// Connect with TLS, SNI `sni`, offering `alpn`; `tls12_only` restricts to TLS 1.2.
pub async fn tls(addr: SocketAddr, sni: &str, alpn: &[&[u8]], tls12_only: bool) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_owned()).expect("sni");
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let (_, conn) = stream.get_ref();
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let version = conn.protocol_version();
    Tls {
        stream,
        leaf,
        alpn,
        version,
    }
}

/// The DER of a PEM certificate.
pub fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .as_ref()
        .to_vec()
}

/// GET a path on the admin listener.
pub async fn admin(proxy: &Proxy, path: &str) -> Reply {
    let addr = proxy.admin_addr().expect("admin listener");
    h1(
        addr,
        get("admin", path).body(Full::default()).expect("request"),
    )
    .await
}

/// The value of one metric sample line (`name{labels}`), if present.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

pub fn empty() -> Full<Bytes> {
    Full::default()
}

/// A folder with one Ingress: app.test `/` to `a`, `/b` to `b`.
pub fn basic(a: &Upstream, b: &Upstream) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "app.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress(
                "app",
                &[("app.test", "/", "a"), ("app.test", "/b", "b")],
                &[],
            ),
            service("a", &[a.addr]),
            service("b", &[b.addr]),
        ]),
    );
    dir
}

/// Open a WebSocket-style upgrade through the proxy at `addr` (host app.test).
pub async fn upgrade(addr: std::net::SocketAddr) -> hyper::upgrade::Upgraded {
    let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::get("/chat")
        .header("host", "app.test")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::<Bytes>::default())
        .expect("request");
    let resp = send.send_request(req).await.expect("upgrade request");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(resp.headers()["upgrade"], "websocket");
    hyper::upgrade::on(resp).await.expect("upgraded")
}

pub async fn round_trip(io: &mut TokioIo<hyper::upgrade::Upgraded>, msg: &[u8]) -> Vec<u8> {
    io.write_all(msg).await.expect("write");
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(DEADLINE, io.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("read");
    buf
}

/// An echo upstream that can be stopped the way a terminating pod stops: see
/// [`echo_stoppable`].
#[derive(Debug)]
pub struct Stoppable {
    pub up: Upstream,
    /// Every request target received, in order (to find duplicates across upstreams).
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Stoppable {
    /// Stop accepting, finish the requests in flight, close idle keep-alive
    /// connections (hyper's graceful shutdown), as a pod drained by SIGTERM does.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// [`echo`], plus a log of request targets and a graceful [`Stoppable::stop`]: after
/// it the port refuses connections.
pub async fn echo_stoppable(name: &'static str) -> Stoppable {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (counter, accepted, log) = (hits.clone(), conns.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                r = listener.accept() => match r { Ok((tcp, _)) => tcp, Err(_) => continue },
                _ = stopped.changed() => break,
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let (counter, log) = (counter.clone(), log.clone());
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut l) = log.lock() {
                        l.push(req.uri().to_string());
                    }
                    echo_handle(name, req)
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = async { let _ = stopped.wait_for(|s| *s).await; } => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    });
    Stoppable {
        up: Upstream {
            addr,
            name,
            hits,
            conns,
        },
        seen,
        stop,
    }
}

/// EndpointSlices for Service `name` in namespace `t`: one slice per endpoint (slice
/// ports are per slice), each with its `ready` condition (`ready: false` also says
/// `terminating: true`, as a pod being deleted shows), plus the Service.
pub fn service_with_conditions(name: &str, endpoints: &[(SocketAddr, bool)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: t}}\nspec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n"
    );
    for (a, ready) in endpoints {
        let cond = if *ready {
            "{ready: true, serving: true, terminating: false}"
        } else {
            "{ready: false, serving: true, terminating: true}"
        };
        out += &format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-{}, namespace: t, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"{}\"], conditions: {cond}}}]\n",
            a.port(),
            a.port(),
            a.ip()
        );
    }
    out
}

/// For `--kube` mode tests: a Service `name` in namespace `shop` and its
/// EndpointSlice with one endpoint, `upstream`, as the fake API server serves them.
pub fn kube_backend(name: &str, upstream: SocketAddr) -> [Value; 2] {
    use ingress_kube::testing::object;
    [
        object(
            "v1",
            "Service",
            Some("shop"),
            name,
            json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": upstream.port()}]}}),
        ),
        object(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some("shop"),
            &format!("{name}-1"),
            json!({
            "metadata": {"labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": upstream.port()}],
            "endpoints": [{"addresses": [upstream.ip().to_string()]}]}),
        ),
    ]
}

/// For `--kube` mode tests: an Ingress `name` (namespace `shop`, class `gw`) routing
/// `host` `/` to Service `service` port 80.
pub fn kube_ingress(name: &str, host: &str, service: &str) -> Value {
    ingress_kube::testing::object(
        "networking.k8s.io/v1",
        "Ingress",
        Some("shop"),
        name,
        json!({"spec": {
        "ingressClassName": "gw", "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}),
    )
}

/// For `--kube` mode tests: the IngressClass `gw` of our controller.
pub fn kube_class() -> Value {
    ingress_kube::testing::object(
        "networking.k8s.io/v1",
        "IngressClass",
        None,
        "gw",
        json!({"spec": {"controller": ingress_core::DEFAULT_CONTROLLER_NAME}}),
    )
}
