//! # ingress-proxy
//!
//! The reference data plane: serves the route table that `ingress_core::compile`
//! builds from a folder of manifests, over HTTP/1.1, HTTP/2 (h2c prior knowledge on
//! the plain listener, ALPN on TLS) and TLS with the certificate picked by SNI.
//!
//! **Contract.** Every request is routed by [`ingress_core::RouteTable::route`] on
//! the table that was live when it arrived (one atomic load; tables are swapped,
//! never changed), and its [`Decision`](ingress_core::Decision) is carried out:
//! forwarded to an endpoint (chosen by the route's load balancing and affinity,
//! within its rate and connection limits, body limit, authentication — basic,
//! external, client certificates, denials never reaching the upstream — timeouts
//! and retries; pooled
//! keep-alive connections, bodies streamed), redirected, or answered. A change to the folder is applied within
//! about 100 ms; a change with syntax or schema errors is rejected and the last
//! good table keeps serving. Upgraded connections (WebSocket, also over HTTP/2 by
//! extended CONNECT) are spliced once the upstream answers 101 and survive table
//! swaps. `backend-protocol` picks HTTP/1.1, HTTP/2 (gRPC, trailers intact) and TLS
//! to the upstream (`proxy-ssl-*`, client certificates); mirrors get fire-and-forget
//! copies.
//!
//! Parts, usable alone:
//! - [`ProxyService`]: a tower `Service` carrying out decisions, for embedding in
//!   another server;
//! - [`LiveTable`]: the atomically swapped table; [`source::FileSource`] fills it
//!   from a watched folder;
//! - [`tls::SniResolver`]: rustls certificate selection from the live table;
//! - [`Proxy`]: all of it on real listeners, with the admin endpoints
//!   ([`admin::Admin`]), metrics and graceful shutdown.
//!
//! ```no_run
//! use ingress_proxy::{Listeners, Proxy, ProxyConfig};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listeners = Listeners {
//!     http: Some(tokio::net::TcpListener::bind("127.0.0.1:8080").await?),
//!     ..Listeners::default()
//! };
//! let proxy = Proxy::start(ProxyConfig::new("examples/manifests/shop"), listeners).await?;
//! tokio::signal::ctrl_c().await?;
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```

mod access;
pub mod admin;
pub mod allocator;
mod auth;
mod balance;
pub mod certs;
mod conn;
mod connect;
mod errors;
mod folder;
mod forward;
pub mod framing;
pub mod gateway;
pub mod global;
mod grpc;
pub mod headers;
mod limits;
pub mod live;
pub mod metrics;
mod mirror;
mod mtls;
mod pool;
pub mod redis;
mod request_body;
pub mod server;
pub mod server_limits;
pub mod service;
pub mod source;
pub mod tls;
mod upgrade;
mod upstream;
mod websocket;

pub use live::{Live, LiveTable};
pub use metrics::Metrics;
pub use server::{Listeners, Proxy, ProxyConfig, ProxyError};
pub use server_limits::{Limits, LimitsError};
pub use service::{BoxError, ConnInfo, ProxyBody, ProxyService, ServiceOptions};
