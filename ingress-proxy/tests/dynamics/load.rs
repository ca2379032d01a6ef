//! A load driver for the section G tests: workers that loop requests on kept-alive
//! connections (HTTP/1.1 or HTTP/2, plain or TLS) and count every failure, plus a
//! streamed request body.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::support::{DEADLINE, origin_form, tls};

/// How the workers reach the proxy.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    /// HTTP/1.1 keep-alive, plain.
    H1(SocketAddr),
    /// HTTP/2 prior knowledge (h2c).
    H2(SocketAddr),
    /// HTTP/1.1 over TLS with this SNI.
    TlsH1(SocketAddr, &'static str),
    /// HTTP/2 over TLS (ALPN h2) with this SNI.
    TlsH2(SocketAddr, &'static str),
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(via: Via) -> Result<Sender, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match via {
        Via::H1(addr) => {
            let io = TokioIo::new(TcpStream::connect(addr).await.map_err(|x| e(&x))?);
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|x| e(&x))?;
            tokio::spawn(conn);
            Sender::H1(send)
        }
        Via::H2(addr) => {
            let io = TokioIo::new(TcpStream::connect(addr).await.map_err(|x| e(&x))?);
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|x| e(&x))?;
            tokio::spawn(conn);
            Sender::H2(send)
        }
        Via::TlsH1(addr, sni) => {
            let t = tls(addr, sni, &[b"http/1.1"], false).await;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(t.stream))
                .await
                .map_err(|x| e(&x))?;
            tokio::spawn(conn);
            Sender::H1(send)
        }
        Via::TlsH2(addr, sni) => {
            let t = tls(addr, sni, &[b"h2"], false).await;
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(t.stream))
                    .await
                    .map_err(|x| e(&x))?;
            tokio::spawn(conn);
            Sender::H2(send)
        }
    })
}

impl Sender {
    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let resp = match self {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(origin_form(req)).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = tokio::time::timeout(DEADLINE, resp.into_body().collect())
            .await
            .map_err(|_| "body timed out".to_owned())?
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    }
}

/// What the workers saw.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) ok: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    /// The first failures, for the assertion message.
    pub(crate) errors: std::sync::Mutex<Vec<String>>,
}

impl Stats {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut e) = self.errors.lock()
            && e.len() < 20
        {
            e.push(what);
        }
    }
    pub(crate) fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }
    pub(crate) fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
    pub(crate) fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// Workers looping requests until [`Load::finish`].
#[derive(Debug)]
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    pub(crate) stats: Arc<Stats>,
}

impl Load {
    /// `workers` connections, each looping `method` requests for `host` at
    /// `/{label}?id=W-N` (a POST carries 16 bytes), one every `pace`. A request
    /// counts as failed unless it gets 200 with its whole body; after a failure the
    /// worker opens a new connection.
    pub(crate) fn start(
        via: Via,
        host: &'static str,
        method: Method,
        label: &'static str,
        workers: usize,
        pace: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let tasks = (0..workers)
            .map(|w| {
                let (stop, stats, method) = (stop.clone(), stats.clone(), method.clone());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let mut sender = match connect(via).await {
                            Ok(s) => s,
                            Err(e) => {
                                stats.fail(format!("connect: {e}"));
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            }
                        };
                        while !stop.load(Ordering::SeqCst) {
                            n += 1;
                            let body = if method == Method::POST {
                                Full::new(Bytes::from_static(b"0123456789abcdef"))
                            } else {
                                Full::default()
                            };
                            let req = Request::builder()
                                .method(method.clone())
                                .uri(format!("http://{host}/{label}?id={w}-{n}"))
                                .body(body)
                                .expect("request");
                            match sender.send(req).await {
                                Ok((StatusCode::OK, _)) => {
                                    stats.ok.fetch_add(1, Ordering::SeqCst);
                                }
                                Ok((status, body)) => stats.fail(format!(
                                    "{method} {label} {w}-{n}: {status} {}",
                                    String::from_utf8_lossy(&body[..body.len().min(200)])
                                )),
                                Err(e) => {
                                    stats.fail(format!("{method} {label} {w}-{n}: {e}"));
                                    break;
                                }
                            }
                            tokio::time::sleep(pace).await;
                        }
                    }
                })
            })
            .collect();
        Load { stop, tasks, stats }
    }

    /// Stop the workers (each finishes its request in flight) and return the counts.
    pub(crate) async fn finish(self) -> Arc<Stats> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            match tokio::time::timeout(DEADLINE, t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.stats.fail(format!("a worker failed: {e}")),
                Err(_) => self.stats.fail("a worker did not stop".to_owned()),
            }
        }
        self.stats
    }
}

/// A body fed from a channel: a request upload or a response stream sent a piece
/// at a time.
#[derive(Debug)]
pub(crate) struct ChanBody(pub(crate) mpsc::Receiver<Bytes>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}
