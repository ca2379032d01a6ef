//! A fake Kubernetes API server for tests (feature `testing`).
//!
//! It speaks the real wire format over HTTP/1.1 on loopback, so kube-rs's real
//! [`kube::Client`] and watchers run against it unchanged:
//!
//! - `GET` a collection: a `…List` with `metadata.resourceVersion`;
//! - `GET …?watch=true&resourceVersion=N`: a chunked stream of JSON watch events
//!   (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` on request), replaying what happened
//!   after `N`, or one `ERROR` event with a `410 Expired` Status when `N` is older than
//!   the last [`FakeApiServer::compact`] (the client must re-list);
//! - `GET`/`POST`/`PUT`/`PATCH`/`DELETE` of one object, with `409 Conflict` on a stale
//!   `resourceVersion` in a `PUT` (what Lease elections rely on), and `PATCH` of the
//!   `status` subresource (merge patch); every write is recorded for assertions.
//!
//! Faults it can script: watch streams closed cleanly ([`FakeApiServer::drop_watches`])
//! or every connection cut by a TCP reset ([`FakeApiServer::reset_connections`]);
//! history compacted (`410` on watches, [`FakeApiServer::compact`]); `410 Expired` on
//! lists ([`FakeApiServer::expire_lists`]); lists and watches failing with 503, or
//! with any status and a `Retry-After` ([`FakeApiServer::fail_with`]).
//!
//! Kinds served: Ingress, IngressClass, Service, EndpointSlice, Secret,
//! IngressGatewayConfig, Lease, Event (events.k8s.io/v1). Field and label selectors
//! and pagination are not implemented (lists return everything).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use ingress_kube::testing::FakeApiServer;
//! let server = FakeApiServer::start().await?;
//! server.apply(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Service",
//!     "metadata": {"name": "api", "namespace": "shop"},
//!     "spec": {"ports": [{"port": 80}]}
//! }));
//! let client = server.client()?;
//! # Ok(()) }
//! ```

mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use state::Write;
use state::{Path, State, status};

type Body = BoxBody<Bytes, Infallible>;

/// The fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    conns: Arc<Mutex<Vec<Conn>>>,
}

/// An open connection: a duplicate of its socket (to set `SO_LINGER` 0 on it) and
/// its task (to drop the connection).
#[derive(Debug)]
struct Conn {
    socket: std::net::TcpStream,
    task: tokio::task::AbortHandle,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
        self.lock().drop_watches();
    }
}

/// Why the fake server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// Binding the loopback listener failed.
    #[error("binding the fake API server: {0}")]
    Bind(#[from] std::io::Error),
    /// Building the client failed.
    #[error("building a client for the fake API server: {0}")]
    Client(#[from] kube::Error),
    /// The address did not make a URL.
    #[error("bad URL: {0}")]
    Url(#[from] http::uri::InvalidUri),
}

impl FakeApiServer {
    /// Start on a free loopback port.
    pub async fn start() -> Result<Self, TestingError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let registry = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // Keep a duplicate of the socket, for `reset_connections`.
                let Some((stream, socket)) = stream
                    .into_std()
                    .and_then(|s| Ok((s.try_clone()?, s)))
                    .ok()
                    .and_then(|(dup, s)| Some((tokio::net::TcpStream::from_std(s).ok()?, dup)))
                else {
                    continue;
                };
                let state = shared.clone();
                let conn = tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                let mut open = registry.lock().unwrap_or_else(|e| e.into_inner());
                open.retain(|c| !c.task.is_finished());
                open.push(Conn {
                    socket,
                    task: conn.abort_handle(),
                });
            }
        });
        Ok(FakeApiServer {
            addr,
            state,
            task,
            conns,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server (no auth, default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, TestingError> {
        let url: http::Uri = format!("http://{}", self.addr).parse()?;
        let config = kube::Config::new(url);
        Ok(kube::Client::try_from(config)?)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create or replace an object (it must carry `apiVersion`, `kind` and
    /// `metadata.name`); watchers see `ADDED` or `MODIFIED`. An object without
    /// `status` keeps the one stored. Returns the stored object.
    ///
    /// # Panics
    /// On an object of a kind the server does not serve (a test bug).
    pub fn apply(&self, object: Value) -> Value {
        match self.lock().apply(object) {
            Ok(v) => v,
            Err(e) => panic!("FakeApiServer::apply: {e}"),
        }
    }

    /// Delete an object; watchers see `DELETED`. Returns whether it existed.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.lock().delete_by_kind(kind, namespace, name)
    }

    /// Get an object.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock().get_by_kind(kind, namespace, name)
    }

    /// Close every open watch stream (a dropped connection); clients re-watch from
    /// the last resourceVersion they saw.
    pub fn drop_watches(&self) {
        self.lock().drop_watches();
    }

    /// Cut every open connection (watch streams and idle pooled ones) with a TCP
    /// reset (`SO_LINGER` 0, then close), as a crashed API server or a middlebox
    /// does: clients see a connection-reset error, not a clean end of stream.
    /// Returns how many connections were reset.
    pub fn reset_connections(&self) -> usize {
        let open: Vec<Conn> =
            std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        let mut n = 0;
        for c in open {
            if c.task.is_finished() {
                continue;
            }
            // The option is the socket's, shared by both descriptors; the last
            // one closed sends the RST.
            if let Ok(dup) = tokio::net::TcpStream::from_std(c.socket) {
                let _ = dup.set_zero_linger();
                n += 1;
            }
            c.task.abort();
        }
        self.lock().drop_watches();
        n
    }

    /// Forget history: a watch from a resourceVersion older than now gets `410`,
    /// and the open watch streams are closed.
    pub fn compact(&self) {
        self.lock().compact();
    }

    /// Make lists of `plural` (e.g. `secrets`) fail with 503 (`true`) or work again.
    pub fn fail_lists(&self, plural: &str, fail: bool) {
        self.lock().fail_lists(plural, fail);
    }

    /// Serve `plural` no more: every request for it gets 404, as when its CRD is
    /// not installed.
    pub fn fail_kind(&self, plural: &str) {
        self.lock()
            .fail_lists(&format!("{}{plural}", state::GONE), true);
    }

    /// Answer the next `n` list requests of `plural` with `410 Gone` (reason
    /// `Expired`), as the API server does when a list's `resourceVersion` or
    /// `continue` token is older than its history: the client must list again.
    pub fn expire_lists(&self, plural: &str, n: usize) {
        self.lock().expire_lists(plural, n);
    }

    /// How many `410` answers [`FakeApiServer::expire_lists`] still has to give.
    pub fn expiring_lists(&self, plural: &str) -> usize {
        self.lock().expiring_lists(plural)
    }

    /// The status failing lists and watches answer ([`FakeApiServer::fail_lists`],
    /// [`FakeApiServer::fail_watches`]): `503` by default; `500`, or `429` with
    /// `Retry-After: retry_after` seconds, as an overloaded API server answers.
    pub fn fail_with(&self, status: u16, retry_after: Option<u32>) {
        self.lock().fail_with(status, retry_after);
    }

    /// Make every watch request fail with 503 (`true`), as when the API server is
    /// unreachable, and close the open streams; or let watches work again.
    pub fn fail_watches(&self, fail: bool) {
        let mut s = self.lock();
        s.fail_lists(state::WATCHES, fail);
        if fail {
            s.drop_watches();
        }
    }

    /// Send a `BOOKMARK` event on every open watch.
    pub fn bookmark(&self) {
        self.lock().bookmark();
    }

    /// Every write made by clients (not through [`FakeApiServer::apply`]), in order.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// How many list requests `plural` got.
    pub fn list_count(&self, plural: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|(m, p, watch)| m == "GET" && p == plural && !watch)
            .count()
    }

    /// How many watch requests `plural` got (answered or refused).
    pub fn watch_count(&self, plural: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|(m, p, watch)| m == "GET" && p == plural && *watch)
            .count()
    }
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = Path::parse(parts.uri.path()).filter(|p| {
        !state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .kind_gone(&p.plural)
    });
    let Some(path) = path else {
        return json_response(
            StatusCode::NOT_FOUND,
            &status(404, "NotFound", "no such resource"),
        );
    };
    let query = parts.uri.query().unwrap_or("");
    let param = |key: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_owned())
        })
    };
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body: Option<Value> = serde_json::from_slice(&body).ok();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let watch = param("watch").is_some_and(|v| v == "true" || v == "1");
    lock()
        .requests
        .push((parts.method.to_string(), path.plural.clone(), watch));
    let result = match (&parts.method, &path.name) {
        (&Method::GET, None) if watch && lock().watches_failing() => {
            let (code, reason) = lock().failure();
            Err((code, reason, "watches are failing (test)".to_owned()))
        }
        (&Method::GET, None) if watch => {
            let since = param("resourceVersion")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
            lock().watch(&path, since, tx);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            return resp;
        }
        (&Method::GET, None) => lock().list(&path),
        (&Method::GET, Some(_)) => lock().get(&path),
        (&Method::POST, None) => lock().create(&path, body),
        (&Method::PUT, Some(_)) => lock().replace(&path, body),
        (&Method::PATCH, Some(_)) => lock().patch(&path, body),
        (&Method::DELETE, Some(_)) => lock().delete(&path),
        _ => Err((405, "MethodNotAllowed", "method not allowed".to_owned())),
    };
    match result {
        Ok((code, v)) => json_response(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), &v),
        Err((code, reason, message)) => {
            let mut resp = json_response(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &status(code, reason, &message),
            );
            if let Some(secs) = lock().retry_after().filter(|_| code == 429 || code >= 500) {
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
            }
            resp
        }
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::from(bytes))));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON object with `apiVersion`, `kind`, `metadata` and the rest of `fields`.
pub fn object(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    fields: Value,
) -> Value {
    let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = namespace {
        o["metadata"]["namespace"] = json!(ns);
    }
    if let (Some(dst), Value::Object(src)) = (o.as_object_mut(), fields) {
        for (k, v) in src {
            if k == "metadata" {
                if let (Some(m), Value::Object(extra)) =
                    (dst.get_mut("metadata").and_then(Value::as_object_mut), v)
                {
                    m.extend(extra);
                }
            } else {
                dst.insert(k, v);
            }
        }
    }
    o
}
