//! Protocols to the upstream: `backend-protocol: HTTPS` with `proxy-ssl-*` (verify,
//! name and SNI, client certificates), `GRPC`/`GRPCS` with trailers both ways.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::support::*;

/// A test certificate authority.
pub(crate) struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    pub(crate) fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca"))
    }

    pub(crate) fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate for `names` signed by this CA: (cert PEM, key PEM).
    pub(crate) fn issue(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &self.0).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// An Opaque Secret `name` in namespace t with these PEM entries.
pub(crate) fn pem_secret(name: &str, entries: &[(&str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: t}}\ntype: Opaque\nstringData:\n"
    );
    for (k, pem) in entries {
        out += &format!("  {k}: |\n");
        for l in pem.lines() {
            out += &format!("    {l}\n");
        }
    }
    out
}

/// What a TLS upstream saw of one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Handshake {
    pub(crate) sni: Option<String>,
    pub(crate) client_cert: Option<Vec<u8>>,
    pub(crate) alpn: Option<Vec<u8>>,
}

/// A TLS upstream on loopback serving `(cert, key)`; requires a client certificate
/// signed by `client_ca` when given. HTTP/1.1 connections get the echo service,
/// HTTP/2 ones (ALPN h2) the gRPC-shaped one.
pub(crate) async fn tls_upstream(
    name: &'static str,
    (cert, key): &(String, String),
    client_ca: Option<&str>,
) -> (SocketAddr, Arc<Mutex<Vec<Handshake>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(pem.as_bytes()).expect("ca pem"))
                .expect("root");
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                let h = Handshake {
                    sni: conn.server_name().map(str::to_owned),
                    client_cert: conn
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec()),
                    alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                };
                let h2 = h.alpn.as_deref() == Some(b"h2");
                log.lock().expect("log").push(h);
                let io = TokioIo::new(tls);
                if h2 {
                    let svc = service_fn(grpc_handle);
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                } else {
                    let svc = service_fn(move |req| echo_handle(name, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

/// A gRPC-shaped handler: echoes the length-prefixed request message back, with
/// `grpc-status` 0 in the trailers and the request's `te`, path and request
/// trailers reported in response headers. `/fail` answers grpc-status 5 (NOT_FOUND)
/// with a grpc-message.
pub(crate) async fn grpc_handle(
    req: Request<Incoming>,
) -> Result<
    Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>,
    std::convert::Infallible,
> {
    let path = req.uri().path().to_owned();
    let te = req
        .headers()
        .get("te")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let ctype = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let version = format!("{:?}", req.version());
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let host_headers = req.headers().get_all("host").iter().count();
    let collected = req.into_body().collect().await.ok();
    let req_trailer = collected
        .as_ref()
        .and_then(|c| c.trailers())
        .and_then(|t| t.get("x-client-trailer"))
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = collected.map(|c| c.to_bytes()).unwrap_or_default();
    let mut trailers = http::HeaderMap::new();
    let status = if path == "/fail" { "5" } else { "0" };
    trailers.insert("grpc-status", status.parse().expect("status"));
    if path == "/fail" {
        trailers.insert("grpc-message", "no such thing".parse().expect("message"));
    }
    let frames = Frames(
        [
            hyper::body::Frame::data(body),
            hyper::body::Frame::trailers(trailers),
        ]
        .into(),
    );
    let mut resp = Response::new(frames.boxed());
    let h = resp.headers_mut();
    h.insert("content-type", "application/grpc".parse().expect("ctype"));
    h.insert("x-seen-te", te.parse().expect("te"));
    h.insert("x-seen-path", path.parse().expect("path"));
    h.insert("x-seen-content-type", ctype.parse().expect("ctype"));
    h.insert("x-seen-version", version.parse().expect("version"));
    h.insert("x-seen-trailer", req_trailer.parse().expect("trailer"));
    h.insert("x-seen-authority", authority.parse().expect("authority"));
    h.insert("x-seen-host-headers", host_headers.into());
    Ok(resp)
}

/// A body made of the given frames, in order.
pub(crate) struct Frames(pub(crate) std::collections::VecDeque<hyper::body::Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// One Service `api` in namespace t with one endpoint at `addr`, and an Ingress
/// for `api.test` with `annotations`, plus `extra` documents.
fn api_folder(
    addr: SocketAddr,
    annotations: &[(&str, &str)],
    extra: &[String],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut parts = vec![
        CLASS.to_owned(),
        ingress_with("api", annotations, &[("api.test", "/", "api")], &[]),
        service("api", &[addr]),
    ];
    parts.extend(extra.iter().cloned());
    write(dir.path(), "api.yaml", &docs(&parts));
    dir
}

const PROTO: &str = "nginx.ingress.kubernetes.io/backend-protocol";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_not_verified_by_default_and_send_no_sni() -> TestResult {
    let ca = Ca::new();
    let (addr, seen) = tls_upstream("tls", &ca.issue(&["elsewhere.example"]), None).await;
    let dir = api_folder(addr, &[(PROTO, "HTTPS")], &[]);
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    for _ in 0..3 {
        let r = h1(http, get("api.test", "/x?y=1").body(empty())?).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["server"], "tls");
        assert_eq!(r.json()["uri"], "/x?y=1");
        assert_eq!(r.seen("host").as_deref(), Some("api.test"));
    }
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1, "one pooled TLS connection: {seen:?}");
    assert_eq!(seen[0].sni, None, "proxy-ssl-server-name is off by default");
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(seen[0].client_cert.is_none());
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_ssl_verify_checks_the_ca_and_name_and_sends_sni() -> TestResult {
    let (ca, other) = (Ca::new(), Ca::new());
    let (addr, seen) = tls_upstream("tls", &ca.issue(&["api.internal"]), None).await;
    let verify = |secret: &'static str, name: &'static str| {
        vec![
            (PROTO, "HTTPS"),
            ("nginx.ingress.kubernetes.io/proxy-ssl-secret", secret),
            ("nginx.ingress.kubernetes.io/proxy-ssl-verify", "on"),
            ("nginx.ingress.kubernetes.io/proxy-ssl-name", name),
            ("nginx.ingress.kubernetes.io/proxy-ssl-server-name", "on"),
        ]
    };
    let secrets = [
        pem_secret("right", &[("ca.crt", &ca.pem())]),
        pem_secret("wrong", &[("ca.crt", &other.pem())]),
    ];
    // The right CA and name: served, with SNI.
    let dir = api_folder(addr, &verify("right", "api.internal"), &secrets);
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    let r = h1(http, get("api.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        seen.lock()
            .expect("seen")
            .last()
            .and_then(|h| h.sni.clone()),
        Some("api.internal".to_owned())
    );
    // The wrong CA: 502.
    write(
        dir.path(),
        "api.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "api",
                &verify("wrong", "api.internal"),
                &[("api.test", "/", "api")],
                &[],
            ),
            service("api", &[addr]),
            secrets[0].clone(),
            secrets[1].clone(),
        ]),
    );
    p.reload().await?;
    let r = h1(http, get("api.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(r.text().contains("upstream-tls-handshake"), "{}", r.text());
    // The right CA, a name the certificate does not cover: 502.
    write(
        dir.path(),
        "api.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with(
                "api",
                &verify("right", "other.internal"),
                &[("api.test", "/", "api")],
                &[],
            ),
            service("api", &[addr]),
            secrets[0].clone(),
        ]),
    );
    p.reload().await?;
    let r = h1(http, get("api.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_ssl_secret_presents_the_client_certificate_to_an_mtls_upstream() -> TestResult {
    let (server_ca, client_ca) = (Ca::new(), Ca::new());
    let client = client_ca.issue(&["gateway.t.svc"]);
    let (addr, seen) = tls_upstream(
        "mtls",
        &server_ca.issue(&["api.t.svc"]),
        Some(&client_ca.pem()),
    )
    .await;
    let secret = pem_secret(
        "client",
        &[
            ("tls.crt", &client.0),
            ("tls.key", &client.1),
            ("ca.crt", &server_ca.pem()),
        ],
    );
    let annotations = [
        (PROTO, "HTTPS"),
        ("nginx.ingress.kubernetes.io/proxy-ssl-secret", "client"),
        ("nginx.ingress.kubernetes.io/proxy-ssl-verify", "on"),
        ("nginx.ingress.kubernetes.io/proxy-ssl-protocols", "TLSv1.3"),
    ];
    // Verified against the default name, api.t.svc (the Service's DNS name).
    let dir = api_folder(addr, &annotations, std::slice::from_ref(&secret));
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    let r = h1(http, get("api.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["server"], "mtls");
    let presented = seen
        .lock()
        .expect("seen")
        .last()
        .and_then(|h| h.client_cert.clone());
    assert_eq!(presented, Some(der(&client.0)), "the secret's tls.crt");

    // Without the client certificate the upstream refuses the handshake: 502.
    write(
        dir.path(),
        "api.yaml",
        &docs(&[
            CLASS.to_owned(),
            ingress_with("api", &[(PROTO, "HTTPS")], &[("api.test", "/", "api")], &[]),
            service("api", &[addr]),
        ]),
    );
    p.reload().await?;
    let r = h1(http, get("api.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_ssl_secret_without_usable_content_fails_closed() -> TestResult {
    let ca = Ca::new();
    let (addr, _) = tls_upstream("tls", &ca.issue(&["api.t.svc"]), None).await;
    let secret = pem_secret("broken", &[("tls.crt", &ca.pem())]);
    let dir = api_folder(
        addr,
        &[
            (PROTO, "HTTPS"),
            ("nginx.ingress.kubernetes.io/proxy-ssl-secret", "broken"),
        ],
        &[secret],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let r = h1(
        p.http_addr().expect("http"),
        get("api.test", "/").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    p.shutdown().await;
    Ok(())
}

/// A clear-text HTTP/2 (h2c) gRPC-shaped upstream on loopback.
async fn h2c_grpc_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = conns.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service_fn(grpc_handle))
                    .await;
            });
        }
    });
    (addr, conns)
}

/// One gRPC call's answer.
#[derive(Debug)]
struct Call {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl Call {
    /// `grpc-status` from the trailers, else from the headers (trailers-only).
    fn grpc_status(&self) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap_or("").to_owned())
    }
}

/// A length-prefixed gRPC message.
fn message(payload: &[u8]) -> Bytes {
    let mut m = vec![0u8];
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    m.extend_from_slice(payload);
    Bytes::from(m)
}

/// Make one unary gRPC call over HTTP/2 on `io` (a new connection), with a
/// request trailer.
async fn grpc_call<I>(io: I, host: &str, path: &str, payload: &[u8]) -> Call
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let mut trailer = http::HeaderMap::new();
    trailer.insert("x-client-trailer", "sent".parse().expect("trailer"));
    let body = Frames(
        [
            hyper::body::Frame::data(message(payload)),
            hyper::body::Frame::trailers(trailer),
        ]
        .into(),
    );
    let req = Request::post(format!("http://{host}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("request");
    let resp = send.send_request(req).await.expect("h2 request");
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    Call {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

fn assert_echoed(c: &Call, payload: &[u8]) {
    assert_eq!(c.status, StatusCode::OK, "{c:?}");
    assert_eq!(c.grpc_status().as_deref(), Some("0"), "{c:?}");
    assert_eq!(c.body, message(payload));
    assert_eq!(c.headers["content-type"], "application/grpc");
    assert_eq!(c.headers["x-seen-te"], "trailers");
    assert_eq!(c.headers["x-seen-version"], "HTTP/2.0");
    assert_eq!(c.headers["x-seen-path"], "/pkg.Echo/Say");
    assert_eq!(
        c.headers["x-seen-authority"], "api.test",
        "the request's host"
    );
    assert_eq!(c.headers["x-seen-host-headers"], "0");
    assert_eq!(
        c.headers["x-seen-trailer"], "sent",
        "request trailers reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_h2c_keeps_trailers_both_ways() -> TestResult {
    let (upstream, conns) = h2c_grpc_upstream().await;
    let dir = api_folder(upstream, &[(PROTO, "GRPC")], &[]);
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    let c = grpc_call(
        tokio::net::TcpStream::connect(http).await?,
        "api.test",
        "/pkg.Echo/Say",
        b"hello",
    )
    .await;
    assert_echoed(&c, b"hello");
    let c = grpc_call(
        tokio::net::TcpStream::connect(http).await?,
        "api.test",
        "/fail",
        b"x",
    )
    .await;
    assert_eq!(c.grpc_status().as_deref(), Some("5"), "{c:?}");
    let t = c.trailers.expect("trailers");
    assert_eq!(t["grpc-message"], "no such thing");

    // Over a TLS client listener (ALPN h2) too.
    let tls = tls(p.https_addr().expect("https"), "api.test", &[b"h2"], false).await;
    assert_eq!(tls.alpn.as_deref(), Some(&b"h2"[..]));
    let c = grpc_call(tls.stream, "api.test", "/pkg.Echo/Say", b"over tls").await;
    assert_echoed(&c, b"over tls");
    assert_eq!(
        conns.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one pooled HTTP/2 connection to the upstream"
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcs_speaks_http2_over_tls_to_the_upstream() -> TestResult {
    let ca = Ca::new();
    let (upstream, seen) = tls_upstream("grpcs", &ca.issue(&["api.t.svc"]), None).await;
    let dir = api_folder(upstream, &[(PROTO, "GRPCS")], &[]);
    let p = proxy(dir.path(), |_| {}).await;
    let tls = tls(p.https_addr().expect("https"), "api.test", &[b"h2"], false).await;
    let c = grpc_call(tls.stream, "api.test", "/pkg.Echo/Say", b"secure").await;
    assert_echoed(&c, b"secure");
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(
        seen.last().and_then(|h| h.alpn.clone()),
        Some(b"h2".to_vec())
    );
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_errors_answer_grpc_clients_in_grpc() -> TestResult {
    let dead = closed_port().await;
    let dir = api_folder(
        SocketAddr::from(([127, 0, 0, 1], dead)),
        &[(PROTO, "GRPC")],
        &[],
    );
    let p = proxy(dir.path(), |_| {}).await;
    let http = p.http_addr().expect("http");
    // No route: UNIMPLEMENTED.
    let c = grpc_call(
        tokio::net::TcpStream::connect(http).await?,
        "nowhere.test",
        "/pkg.Echo/Say",
        b"x",
    )
    .await;
    assert_eq!(c.status, StatusCode::OK, "{c:?}");
    assert_eq!(c.headers["content-type"], "application/grpc");
    assert_eq!(c.grpc_status().as_deref(), Some("12"), "{c:?}");
    assert!(c.body.is_empty());
    // The upstream cannot be reached: UNAVAILABLE, with the reason.
    let c = grpc_call(
        tokio::net::TcpStream::connect(http).await?,
        "api.test",
        "/pkg.Echo/Say",
        b"x",
    )
    .await;
    assert_eq!(c.grpc_status().as_deref(), Some("14"), "{c:?}");
    let msg = c.headers["grpc-message"].to_str()?.to_owned();
    assert!(
        msg.contains("502") && msg.contains("upstream-unreachable"),
        "{msg}"
    );
    // Plain HTTP clients still get the HTTP status.
    let r = h2(http, get("nowhere.test", "/").body(empty())?).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http2_extended_connect_reaches_an_http1_upstream() -> TestResult {
    let (a, b) = (echo("a").await, echo("b").await);
    let dir = basic(&a, &b);
    let p = proxy(dir.path(), |_| {}).await;
    let io = TokioIo::new(tokio::net::TcpStream::connect(p.http_addr().expect("http")).await?);
    let (mut send, conn) =
        hyper::client::conn::http2::handshake::<_, _, Frames>(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    // A first request lets the server's SETTINGS (ENABLE_CONNECT_PROTOCOL) arrive.
    let r = send
        .send_request(Request::get("http://app.test/").body(Frames(Default::default()))?)
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let mut req = Request::connect("http://app.test/chat")
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(Frames(Default::default()))?;
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = send.send_request(req).await?;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "RFC 8441: 200 opens the tunnel"
    );
    assert!(!resp.headers().contains_key("upgrade"));
    let upgraded = hyper::upgrade::on(resp).await?;
    let mut io = TokioIo::new(upgraded);
    assert_eq!(round_trip(&mut io, b"ping over h2").await, b"ping over h2");
    assert_eq!(p.service().open_tunnels(), 1);
    // The tunnel survives a table swap, as HTTP/1.1 ones do.
    p.reload().await?;
    assert_eq!(round_trip(&mut io, b"still there").await, b"still there");
    drop(io);
    eventually("the tunnel closes", || async {
        p.service().open_tunnels() == 0
    })
    .await;
    p.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_http_follows_the_clients_scheme() -> TestResult {
    let ca = Ca::new();
    let (addr, seen) = tls_upstream("tls", &ca.issue(&["api.t.svc"]), None).await;
    let dir = api_folder(addr, &[(PROTO, "AUTO_HTTP")], &[]);
    let p = proxy(dir.path(), |_| {}).await;
    // HTTPS client: TLS to the upstream.
    let tls = tls(
        p.https_addr().expect("https"),
        "api.test",
        &[b"http/1.1"],
        false,
    )
    .await;
    let r = h1_on(
        TokioIo::new(tls.stream),
        get("api.test", "/").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["server"], "tls");
    assert_eq!(seen.lock().expect("seen").len(), 1);
    // Plain client: clear text, which this TLS-only upstream cannot answer.
    let r = h1(
        p.http_addr().expect("http"),
        get("api.test", "/").body(empty())?,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    p.shutdown().await;
    Ok(())
}
