//! Section E of the hardening checklist: HTTP/2 on the plain listener (h2c prior
//! knowledge), with frames written by hand.
//!
//! Sizes are scaled down for CI; the full-size versions (hardening.md T34: 10k
//! resets per second for 10 s, 10k CONTINUATION frames, h2load alongside) need an
//! external load driver and run outside the default suite.

use std::time::Duration;

use crate::raw::*;
use crate::support::TestResult;

/// Nothing the malformed requests carried reached the upstream: no injected
/// request line, no `transfer-encoding`, no second `content-length`, no body
/// longer than its declared length, no request for their marker path.
fn nothing_injected(seen: &[Seen]) {
    for s in seen {
        assert_ne!(s.path, "/admin", "an injected request reached the upstream");
        assert!(
            !s.path.starts_with("/t33"),
            "a malformed request reached the upstream whole: {s:?}"
        );
        assert!(
            !s.headers.iter().any(|(k, _)| k == "transfer-encoding"),
            "{s:?}"
        );
        assert!(
            s.headers
                .iter()
                .filter(|(k, _)| k == "content-length")
                .count()
                <= 1,
            "{s:?}"
        );
        assert!(
            s.headers
                .iter()
                .all(|(_, v)| !v.contains('\r') && !v.contains('\n')),
            "{s:?}"
        );
    }
}

/// T33: h2 → h1 downgrade smuggling. Every malformed request gets a stream reset
/// (PROTOCOL_ERROR), a GOAWAY or a 4xx, and nothing of it reaches the HTTP/1.1
/// upstream.
#[tokio::test]
async fn t33_malformed_h2_requests_never_reach_the_upstream() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static [u8], &'static [u8])>,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/t33/te", vec![(b"transfer-encoding", b"chunked")]),
        ("GET", "/t33/conn", vec![(b"connection", b"keep-alive")]),
        ("GET", "/t33/ka", vec![(b"keep-alive", b"timeout=5")]),
        ("GET", "/t33/upgrade", vec![(b"upgrade", b"websocket")]),
        ("GET", "/t33/pc", vec![(b"proxy-connection", b"keep-alive")]),
        ("GET", "/t33/te2", vec![(b"te", b"gzip")]),
        ("GET", "/t33/upper", vec![(b"X-Upper", b"1")]),
        ("GET", "/t33/space", vec![(b"x bad", b"1")]),
        (
            "GET",
            "/t33/crlf",
            vec![(
                b"x-inject",
                b"a\r\n\r\nGET /admin HTTP/1.1\r\nhost: app.test",
            )],
        ),
        ("GET", "/t33/nul", vec![(b"x-nul", b"a\0b")]),
        ("GET", "/t33/path with space", vec![]),
        ("GET", "/t33/path\nGET /admin HTTP/1.1", vec![]),
    ];
    for (method, path, extra) in &cases {
        let mut c = RawH2::connect(addr, &[]).await;
        let block = request(method, path, extra);
        c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await;
        let outcome = c.outcome(1).await;
        let rejected = matches!(
            outcome,
            Outcome::Reset(PROTOCOL_ERROR) | Outcome::GoAway(_) | Outcome::Status(Some(400))
        ) || matches!(outcome, Outcome::Status(None));
        assert!(rejected, "{path:?} {extra:?}: {outcome:?}");
    }
    // content-length: 5 with 20 bytes of DATA.
    let mut c = RawH2::connect(addr, &[]).await;
    let block = request("POST", "/t33-cl", &[(b"content-length", b"5")]);
    let mut bytes = frame(HEADERS, END_HEADERS, 1, &block);
    bytes.extend(frame(DATA, END_STREAM, 1, &[b'x'; 20]));
    c.send(&bytes).await;
    let outcome = c.outcome(1).await;
    assert!(
        matches!(
            outcome,
            Outcome::Reset(PROTOCOL_ERROR) | Outcome::Status(Some(400))
        ),
        "content-length mismatch: {outcome:?}"
    );
    // A well-formed request on the same proxy does reach the upstream (the
    // assertions above are not vacuous).
    let mut c = RawH2::connect(addr, &[]).await;
    c.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request("GET", "/ok", &[(b"x-fine", b"1")]),
    ))
    .await;
    assert_eq!(c.outcome(1).await, Outcome::Status(Some(200)));
    crate::support::eventually("the good request logged", || {
        let seen = up.seen();
        async move { seen.iter().any(|s| s.path == "/ok") }
    })
    .await;
    let seen = up.seen();
    nothing_injected(&seen);
    for s in seen.iter().filter(|s| s.path == "/t33-cl") {
        assert!(
            !matches!(s.body, Ok(n) if n > 5),
            "a body longer than its content-length was forwarded: {s:?}"
        );
    }
    // Closed by the client, so shutdown need not wait out its grace period.
    drop(c);
    proxy.shutdown().await;
    Ok(())
}

/// T33: `host` differing from `:authority`. The request is routed by
/// `:authority` (RFC 9113 §8.3.1) and the upstream sees that same host, never the
/// other one.
#[tokio::test]
async fn t33_host_differing_from_authority_routes_and_forwards_one_host() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut c = RawH2::connect(addr, &[]).await;
    let block = request("GET", "/t33-host", &[(b"host", b"evil.test")]);
    c.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
        .await;
    let outcome = c.outcome(1).await;
    match outcome {
        Outcome::Status(Some(200)) => {
            let seen = up.seen();
            let s = seen
                .iter()
                .find(|s| s.path == "/t33-host")
                .ok_or("forwarded but not logged")?;
            let hosts: Vec<_> = s.headers.iter().filter(|(k, _)| k == "host").collect();
            assert_eq!(hosts.len(), 1, "{s:?}");
            assert_eq!(hosts[0].1, "app.test", "{s:?}");
        }
        Outcome::Status(Some(400)) | Outcome::Reset(PROTOCOL_ERROR) => {}
        other => panic!("host != :authority: {other:?}"),
    }
    // Closed by the client, so shutdown need not wait out its grace period.
    drop(c);
    proxy.shutdown().await;
    Ok(())
}

/// T34 (a): rapid reset (CVE-2023-44487). 2000 streams opened and reset in one
/// burst end the connection with GOAWAY(ENHANCE_YOUR_CALM) after the
/// pending-accept-reset limit (20); the proxy keeps serving others. Full size:
/// 10k resets per second for 10 s against h2load traffic.
#[tokio::test]
async fn t34a_rapid_reset_ends_in_goaway() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut c = RawH2::connect(addr, &[]).await;
    let block = request("GET", "/flood", &[]);
    let mut burst = Vec::new();
    for i in 0..2000u32 {
        let id = 1 + 2 * i;
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        burst.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    c.send(&burst).await;
    assert_eq!(
        c.goaway(crate::support::DEADLINE).await,
        Some(ENHANCE_YOUR_CALM)
    );
    let forwarded = up.seen().iter().filter(|s| s.path == "/flood").count();
    assert!(
        forwarded < 2000,
        "{forwarded} of 2000 reset streams forwarded"
    );
    assert_eq!(h1_status(addr, "/after").await, Some(200));
    proxy.shutdown().await;
    Ok(())
}

/// T34 (b): CONTINUATION flood. A header block that never ends (HEADERS without
/// END_HEADERS, then 5000 CONTINUATION frames) is cut with a GOAWAY long before
/// its end, and nothing reaches the upstream. Full size: 10k frames.
#[tokio::test]
async fn t34b_continuation_flood_ends_in_goaway() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut c = RawH2::connect(addr, &[]).await;
    let mut flood = frame(HEADERS, 0, 1, &request("GET", "/continuation", &[]));
    let filler = hpack(&[(b"x-flood", &[b'a'; 100])]);
    for _ in 0..5000 {
        flood.extend(frame(CONTINUATION, 0, 1, &filler));
    }
    c.send(&flood).await;
    let code = c.goaway(crate::support::DEADLINE).await;
    assert!(
        matches!(code, Some(ENHANCE_YOUR_CALM | PROTOCOL_ERROR | 0x9)),
        "{code:?}"
    );
    assert!(up.seen().iter().all(|s| s.path != "/continuation"));
    assert_eq!(h1_status(addr, "/after").await, Some(200));
    proxy.shutdown().await;
    Ok(())
}

/// T34 (c): SETTINGS and PING flood. 5000 of each, written without reading the
/// acknowledgements: the proxy either ends the connection with GOAWAY or keeps it
/// usable, its memory does not grow with the flood (RSS of this process, proxy
/// included, under 32 MiB more), and other clients are served throughout.
#[tokio::test]
async fn t34c_settings_and_ping_flood_are_bounded() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let before = rss_kib();
    let mut c = RawH2::connect(addr, &[]).await;
    let mut flood = Vec::new();
    for i in 0..5000u64 {
        flood.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
        flood.extend(frame(PING, 0, 0, &i.to_be_bytes()));
    }
    c.send(&flood).await;
    assert_eq!(h1_status(addr, "/benign").await, Some(200));
    c.send(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &request("GET", "/after-flood", &[]),
    ))
    .await;
    let outcome = c.outcome(1).await;
    assert!(
        matches!(outcome, Outcome::Status(Some(200)) | Outcome::GoAway(_)),
        "{outcome:?}"
    );
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    // Closed by the client, so shutdown need not wait out its grace period.
    drop(c);
    proxy.shutdown().await;
    Ok(())
}

/// T34 (d): "MadeYouReset" (CVE-2025-8671). Frames that make the proxy reset the
/// stream (DATA past the declared `content-length`, a connection-specific header)
/// count against the local-error-reset limit (here 10, by default 1024); past it
/// the connection ends with GOAWAY(ENHANCE_YOUR_CALM). (A zero WINDOW_UPDATE ends
/// the connection at once with PROTOCOL_ERROR, so it is not the vector here.)
#[tokio::test]
async fn t34d_made_you_reset_ends_in_goaway() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| c.limits.h2_max_local_error_resets = 10).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut c = RawH2::connect(addr, &[]).await;
    let pseudo: [(&[u8], &[u8]); 4] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        // An unknown host: answered locally (404), the upstream not involved.
        (b":authority", b"nobody.test"),
        (b":path", b"/"),
    ];
    let mut long = pseudo.to_vec();
    long.push((b"content-length", b"1"));
    let long = hpack(&long);
    let mut bad = pseudo.to_vec();
    bad.push((b"connection", b"close"));
    let bad = hpack(&bad);
    let mut burst = Vec::new();
    for i in 0..200u32 {
        let id = 1 + 2 * i;
        if i % 2 == 0 {
            burst.extend(frame(HEADERS, END_HEADERS, id, &long));
            burst.extend(frame(DATA, END_STREAM, id, b"too long"));
        } else {
            burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &bad));
        }
    }
    c.send(&burst).await;
    assert_eq!(
        c.goaway(crate::support::DEADLINE).await,
        Some(ENHANCE_YOUR_CALM)
    );
    assert_eq!(h1_status(addr, "/after").await, Some(200));
    proxy.shutdown().await;
    Ok(())
}

/// T34 (e): more streams than allowed. The proxy advertises its stream limit (here
/// 5, by default 100) and refuses streams past it with
/// RST_STREAM(REFUSED_STREAM), while the open ones stay served.
#[tokio::test]
async fn t34e_streams_past_the_limit_are_refused() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |c| c.limits.h2_max_concurrent_streams = 5).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    let mut c = RawH2::connect(addr, &[]).await;
    assert!(c.settings.contains(&(0x3, 5)), "{:?}", c.settings);
    // Let the proxy read our SETTINGS ACK first: its limit applies from then.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut burst = Vec::new();
    for i in 0..8u32 {
        // POST without END_STREAM: each stream stays open, its body pending.
        burst.extend(frame(
            HEADERS,
            END_HEADERS,
            1 + 2 * i,
            &request("POST", "/open", &[]),
        ));
    }
    c.send(&burst).await;
    let mut refused = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while refused.len() < 3 {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let Some((kind, _, id, payload)) = c.next_frame(left).await else {
            break;
        };
        if kind == RST_STREAM && payload == REFUSED_STREAM.to_be_bytes() {
            refused.push(id);
        }
        assert_ne!(kind, GOAWAY, "the connection was closed");
    }
    refused.sort_unstable();
    assert_eq!(refused, [11, 13, 15]);
    // The five open streams are still served: finish stream 1's body.
    c.send(&frame(DATA, END_STREAM, 1, b"done")).await;
    assert_eq!(c.outcome(1).await, Outcome::Status(Some(200)));
    // Closed by the client, so shutdown need not wait out its grace period.
    drop(c);
    proxy.shutdown().await;
    Ok(())
}

/// T35: flow control bounds memory. Ten streams with a zero receive window ask
/// for 64 MiB each; the proxy applies backpressure, so the upstream produces only
/// what the buffers on the way hold (under 8 MiB per stream, not 64), and lets go
/// of the upstream bodies when the client disconnects. Full size: 100 streams of
/// 10 MiB with RSS measured from outside.
#[tokio::test]
async fn t35_zero_window_streams_apply_backpressure() -> TestResult {
    let up = canary().await;
    let (proxy, _dir) = proxy_to(up.addr, |_| {}).await;
    let addr = proxy.http_addr().ok_or("no http")?;
    // SETTINGS_INITIAL_WINDOW_SIZE = 0.
    let mut c = RawH2::connect(addr, &[(0x4, 0)]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut burst = Vec::new();
    for i in 0..10u32 {
        burst.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1 + 2 * i,
            &request("GET", "/big?mb=64", &[]),
        ));
    }
    c.send(&burst).await;
    assert_eq!(c.outcome(1).await, Outcome::Status(Some(200)));
    // Let the pipes fill, then check production has stopped well short.
    let mut last = u64::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = up.produced.load(std::sync::atomic::Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let produced = up.produced.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        produced < 10 * 8 * 1024 * 1024,
        "upstream produced {produced} bytes for clients that read nothing"
    );
    drop(c);
    crate::support::eventually("upstream bodies released", || {
        let dropped = up.dropped.load(std::sync::atomic::Ordering::Relaxed);
        async move { dropped == 10 }
    })
    .await;
    proxy.shutdown().await;
    Ok(())
}
