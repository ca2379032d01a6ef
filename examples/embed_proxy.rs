//! Embedding the data plane in your own server: `ProxyService` is a tower `Service`
//! that routes with a `LiveTable` and carries out the decision. Here a gateway answers
//! `/gateway/health` itself and hands everything else to the proxy service; the table
//! is compiled once from text (no folder watch), and swapping in a new one is one
//! `LiveTable::store`.
//!
//!     cargo run -p examples --example embed_proxy

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ingress_core::manifest::load_str;
use ingress_core::{CompileOptions, Scheme, compile};
use ingress_proxy::{ConnInfo, Live, LiveTable, Metrics, ProxyBody, ProxyService, ServiceOptions};
use tokio::net::{TcpListener, TcpStream};
use tower::Service;

type Error = Box<dyn std::error::Error + Send + Sync>;

const MANIFEST: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: demo}
spec:
  ingressClassName: gw
  rules:
  - host: app.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: demo}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app-1, namespace: demo, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{port: UPSTREAM_PORT}]
endpoints: [{addresses: ["127.0.0.1"]}]
"#;

/// A tiny upstream that says which path it got.
async fn upstream() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let svc = service_fn(|req: Request<Incoming>| async move {
                let text = format!("upstream got {}\n", req.uri());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    Ok(port)
}

/// Your gateway: its own endpoint, then the proxy for everything else.
async fn gateway(
    mut proxy: ProxyService,
    info: ConnInfo,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.uri().path() == "/gateway/health" {
        let body = Full::new(Bytes::from("gateway ok\n"))
            .map_err(|never| match never {})
            .boxed_unsync();
        return Ok(Response::new(body));
    }
    req.extensions_mut().insert(info);
    proxy.call(req).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let port = upstream().await?;
    let loaded = load_str(
        "app.yaml",
        &MANIFEST.replace("UPSTREAM_PORT", &port.to_string()),
    );
    let compiled = compile(
        &loaded.snapshot,
        &CompileOptions::default().ingress_class("gw"),
    );
    let diagnostics = loaded.sources.locate_all(compiled.diagnostics);
    let live = Arc::new(LiveTable::new(Live::new(compiled.table, 1, diagnostics)));
    let proxy = ProxyService::new(live, Arc::new(Metrics::new()), ServiceOptions::default());

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            let info = ConnInfo {
                peer,
                local: addr,
                scheme: Scheme::Http,
            };
            let proxy = proxy.clone();
            let svc = service_fn(move |req| gateway(proxy.clone(), info, req));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });

    for path in ["/gateway/health", "/cart?id=7", "/../admin"] {
        let io = TokioIo::new(TcpStream::connect(addr).await?);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "app.example.com")
            .body(Full::<Bytes>::default())?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        print!("GET {path} -> {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
