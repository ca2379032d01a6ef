//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT (`:method CONNECT`,
//! `:protocol websocket`) from an HTTP/2 client is sent to the HTTP/1.1 upstream as
//! the classic upgrade (`GET` with `Connection: upgrade`, `Upgrade: websocket` and a
//! fresh `Sec-WebSocket-Key`); the upstream's `101` becomes the `200` that opens
//! the HTTP/2 stream as a tunnel, and both sides are spliced as for HTTP/1.1
//! upgrades ([`crate::upgrade`]). Other `:protocol` values are carried the same way
//! (`Upgrade: <protocol>`), without a key.

use base64::Engine as _;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode, Version};

/// `Sec-WebSocket-Key`.
const SEC_WEBSOCKET_KEY: &str = "sec-websocket-key";
/// `Sec-WebSocket-Accept`.
const SEC_WEBSOCKET_ACCEPT: &str = "sec-websocket-accept";

/// The protocol of an extended CONNECT request (HTTP/2 with `:protocol`), as the
/// `Upgrade` value to send upstream.
pub(crate) fn extended_connect<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.method() != Method::CONNECT || req.version() != Version::HTTP_2 {
        return None;
    }
    let p = req.extensions().get::<hyper::ext::Protocol>()?;
    HeaderValue::from_str(p.as_str()).ok()
}

/// Rewrite an extended CONNECT's head into an HTTP/1.1 upgrade request (the
/// `Connection` and `Upgrade` headers are set by the caller, as for HTTP/1.1
/// upgrades). `nonce` makes the WebSocket key.
pub(crate) fn to_http1_upgrade(
    parts: &mut http::request::Parts,
    protocol: &HeaderValue,
    nonce: [u64; 2],
) {
    parts.method = Method::GET;
    if protocol.as_bytes().eq_ignore_ascii_case(b"websocket")
        && !parts.headers.contains_key(SEC_WEBSOCKET_KEY)
    {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&nonce[0].to_be_bytes());
        raw[8..].copy_from_slice(&nonce[1].to_be_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        if let Ok(v) = HeaderValue::from_str(&key) {
            parts.headers.insert(SEC_WEBSOCKET_KEY, v);
        }
    }
}

/// The upstream's `101` head, as the `200` that opens the HTTP/2 tunnel.
pub(crate) fn to_http2_tunnel(parts: &mut http::response::Parts) {
    parts.status = StatusCode::OK;
    parts.version = Version::HTTP_2;
    for h in [header::CONNECTION, header::UPGRADE, header::CONTENT_LENGTH] {
        parts.headers.remove(h);
    }
    parts.headers.remove(SEC_WEBSOCKET_ACCEPT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http2_connect_with_a_protocol_is_extended() {
        let req = |method: Method, version, protocol: Option<&'static str>| {
            let mut r = Request::builder()
                .method(method)
                .version(version)
                .uri("http://a.test/chat")
                .body(())
                .expect("request");
            if let Some(p) = protocol {
                r.extensions_mut()
                    .insert(hyper::ext::Protocol::from_static(p));
            }
            r
        };
        let ws = extended_connect(&req(Method::CONNECT, Version::HTTP_2, Some("websocket")));
        assert_eq!(
            ws.as_ref().map(HeaderValue::as_bytes),
            Some(&b"websocket"[..])
        );
        assert!(extended_connect(&req(Method::CONNECT, Version::HTTP_2, None)).is_none());
        assert!(extended_connect(&req(Method::GET, Version::HTTP_2, Some("websocket"))).is_none());
        assert!(
            extended_connect(&req(Method::CONNECT, Version::HTTP_11, Some("websocket"))).is_none()
        );
    }

    #[test]
    fn the_upgrade_gets_get_and_a_16_byte_key() {
        let (mut parts, ()) = Request::connect("http://a.test/chat")
            .body(())
            .expect("request")
            .into_parts();
        to_http1_upgrade(&mut parts, &HeaderValue::from_static("websocket"), [1, 2]);
        assert_eq!(parts.method, Method::GET);
        let key = parts.headers[SEC_WEBSOCKET_KEY].to_str().expect("ascii");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key)
            .expect("base64");
        assert_eq!(raw.len(), 16);
    }
}
