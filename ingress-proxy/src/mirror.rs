//! Mirroring (`mirror-target`, `mirror-target-fqdn`, `mirror-target-service`,
//! `mirror-host`, `mirror-request-body`, `mirror-percentage`): a copy of the
//! request goes to the mirror, fire and forget. Its answer is read and dropped;
//! it never delays or fails the request itself (unlike nginx, where a slow mirror
//! slows the main request).
//!
//! The copy has the method, the request target (the original one, or the
//! `mirror-target` path with its variables) and the headers sent upstream (with the
//! gateway's `X-Forwarded-*` and `X-Request-ID`); its `Host` is `mirror-host`, else
//! the target URL's host, else (Service and FQDN targets) the original `Host`.
//! HTTPS targets are not verified (as nginx's `proxy_ssl_verify off`) and get no
//! SNI.
//!
//! Bounds: at most [`MAX_IN_FLIGHT`] copies are in flight across the gateway (past
//! that, requests are not copied); a copy gets the route's read timeout, as a
//! whole. A request body is copied (`mirror-request-body: on`, the default) only up
//! to [`MAX_BODY`]: the bytes are kept while the request streams upstream, and the
//! copy leaves when the body is complete; a larger body (declared or streamed) means
//! no copy at all, rather than a copy with a truncated body. With
//! `mirror-request-body: off` the copy has no body and no `Content-Length`.
//!
//! `mirror-target-service` is sent to an endpoint of that Service when the table
//! has it as the backend of some route (the table carries no other Services'
//! endpoints); otherwise the request is not copied.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use ingress_core::annotations::mirror::{MirrorPolicy, MirrorTarget};
use tokio::sync::{Semaphore, oneshot};

use crate::balance::Vars;
use crate::live::Live;
use crate::service::{BoxError, Inner, ProxyBody, empty};
use crate::upstream::{Name, TlsRef, Wire};

/// How many copies may be in flight at once, across the gateway.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// The largest request body that is copied (64 KiB).
pub(crate) const MAX_BODY: u64 = 64 * 1024;

/// Where one request's copy goes.
#[derive(Debug)]
pub(crate) struct Shadow {
    uri: Uri,
    /// The copy's `Host`; `None`: the original request's.
    host: Option<HeaderValue>,
    body: bool,
    tls: Option<String>,
}

impl Shadow {
    /// The copy that `m` (of an Ingress in `ingress_namespace`) asks for of a request
    /// described by `vars`, if one can be made; `roll` picks a Service endpoint.
    pub(crate) fn new(
        m: &MirrorPolicy,
        ingress_namespace: &str,
        vars: &Vars<'_>,
        live: &Live,
        roll: u32,
    ) -> Option<Shadow> {
        let (scheme, authority, target, is_url) = match &m.target {
            MirrorTarget::Url(u) => {
                let target = match &u.path {
                    Some(t) => t.render(|v| vars.get(v)),
                    None => vars.path_and_query.to_owned(),
                };
                let https = u.scheme == http::uri::Scheme::HTTPS;
                (https, u.authority.to_string(), target, true)
            }
            MirrorTarget::Fqdn { host, port } => (
                false,
                format!("{host}:{port}"),
                vars.path_and_query.to_owned(),
                false,
            ),
            MirrorTarget::Service {
                namespace,
                name,
                port,
            } => {
                let ns = namespace.as_deref().unwrap_or(ingress_namespace);
                let backend = live.table().backends().iter().find(|b| {
                    b.namespace() == ns
                        && b.service() == name
                        && port.is_none_or(|p| b.service_port() == Some(p))
                        && !b.endpoints().is_empty()
                })?;
                let endpoints = backend.endpoints();
                let pick = endpoints.get(roll as usize % endpoints.len())?;
                (
                    false,
                    pick.to_string(),
                    vars.path_and_query.to_owned(),
                    false,
                )
            }
            _ => return None,
        };
        let target = if target.starts_with('/') {
            target
        } else {
            format!("/{target}")
        };
        let scheme_str = if scheme { "https" } else { "http" };
        let uri: Uri = format!("{scheme_str}://{authority}{target}").parse().ok()?;
        let host = match &m.host {
            Some(h) => HeaderValue::from_str(h).ok(),
            None if is_url => HeaderValue::from_str(&authority).ok(),
            None => None,
        };
        let tls = scheme.then(|| {
            uri.host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        Some(Shadow {
            uri,
            host,
            body: m.request_body,
            tls,
        })
    }
}

/// The bound on copies in flight.
#[derive(Debug)]
pub(crate) struct Mirrors {
    permits: Arc<Semaphore>,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }
}

impl Inner {
    /// Start the copy of a request whose head (as sent upstream) is `parts` and
    /// whose body is `body`; returns the body to send upstream (the same, or one
    /// that keeps a copy of its bytes for the mirror).
    pub(crate) fn mirror(
        &self,
        copy: Shadow,
        parts: &http::request::Parts,
        body: ProxyBody,
        timeout: Duration,
    ) -> ProxyBody {
        let Ok(permit) = self.mirrors.permits.clone().try_acquire_owned() else {
            tracing::debug!("mirror: {MAX_IN_FLIGHT} copies in flight; this request is not copied");
            return body;
        };
        let client = match &copy.tls {
            None => self.client.clone(),
            Some(name) => {
                let wire = Wire {
                    h2: false,
                    tls: Some(TlsRef {
                        name: Name::Given(name),
                        settings: None,
                    }),
                    endpoint: None,
                };
                match self.client_for(
                    self.options.connect_timeout,
                    self.options.send_timeout,
                    &wire,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "mirror: no TLS client");
                        return body;
                    }
                }
            }
        };
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = copy.uri.clone();
        *head.version_mut() = Version::HTTP_11;
        *head.headers_mut() = parts.headers.clone();
        if let Some(h) = copy.host {
            head.headers_mut().insert(header::HOST, h);
        }
        let send = move |head: Request<()>, bytes: Option<Bytes>| {
            let (parts, ()) = head.into_parts();
            let body = match bytes {
                Some(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
                None => empty(),
            };
            let uri = parts.uri.to_string();
            let req = Request::from_parts(parts, body);
            async move {
                let sent = tokio::time::timeout(timeout, async {
                    let resp = client.request(req).await?;
                    let status = resp.status();
                    resp.into_body().collect().await?;
                    Ok::<_, BoxError>(status)
                })
                .await;
                match sent {
                    Ok(Ok(status)) => tracing::debug!(uri, %status, "mirror answered"),
                    Ok(Err(e)) => tracing::debug!(uri, error = %e, "mirror failed"),
                    Err(_) => tracing::debug!(uri, "mirror timed out"),
                }
            }
        };
        if !copy.body || body.is_end_stream() {
            if !copy.body {
                head.headers_mut().remove(header::CONTENT_LENGTH);
                head.headers_mut().remove(header::TRANSFER_ENCODING);
            }
            let task = send(head, None);
            tokio::spawn(async move {
                task.await;
                drop(permit);
            });
            return body;
        }
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) || body.size_hint().lower() > MAX_BODY {
            tracing::debug!("mirror: request body over {MAX_BODY} bytes; not copied");
            return body;
        }
        let (tx, rx) = oneshot::channel::<Option<Bytes>>();
        tokio::spawn(async move {
            let _permit = permit;
            // The copy leaves once the request body is complete (or not at all).
            if let Ok(Ok(Some(bytes))) = tokio::time::timeout(timeout, rx).await {
                let mut head = head;
                head.headers_mut().remove(header::TRANSFER_ENCODING);
                head.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                send(head, Some(bytes)).await;
            }
        });
        Tee {
            inner: body,
            kept: BytesMut::new(),
            done: Some(tx),
        }
        .boxed_unsync()
    }
}

/// A request body that keeps a copy of its bytes (up to [`MAX_BODY`]) and hands
/// it over at its end; `None` when it grew past the bound or failed.
struct Tee {
    inner: ProxyBody,
    kept: BytesMut,
    done: Option<oneshot::Sender<Option<Bytes>>>,
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let this = &mut *self;
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref()
                    && this.done.is_some()
                {
                    if this.kept.len() as u64 + d.len() as u64 > MAX_BODY {
                        this.kept = BytesMut::new();
                        if let Some(tx) = this.done.take() {
                            let _ = tx.send(None);
                        }
                    } else {
                        this.kept.extend_from_slice(d);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(tx) = this.done.take() {
                    let _ = tx.send(Some(std::mem::take(&mut this.kept).freeze()));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(tx) = this.done.take() {
                    let _ = tx.send(None);
                }
            }
            Poll::Pending => {}
        }
        // The last data frame may end the stream without a `None` poll.
        if this.inner.is_end_stream()
            && let Some(tx) = this.done.take()
        {
            let _ = tx.send(Some(std::mem::take(&mut this.kept).freeze()));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
