//! The allocator's statistics on `/metrics`, with jemalloc as the global
//! allocator as in the `ingress-proxy` binary (feature `jemalloc`, the default).
//! The proxy runs in-process on loopback.

#![cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]

mod support;

use std::hint::black_box;

use support::{TestResult, admin, metric};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One allocator gauge from `/metrics`, in bytes.
async fn gauge(proxy: &ingress_proxy::Proxy, name: &str) -> f64 {
    let text = admin(proxy, "/metrics").await.text();
    metric(&text, &format!("ingress_proxy_allocator_{name}_bytes "))
        .unwrap_or_else(|| panic!("no ingress_proxy_allocator_{name}_bytes in /metrics"))
}

/// With `allocator_stats`, `/metrics` carries jemalloc's figures, consistent with
/// one another and live: 64 MiB allocated in this process shows in `allocated`
/// and `resident`, and leaves `allocated` once freed.
#[tokio::test]
async fn allocator_gauges_follow_the_heap() -> TestResult {
    let dir = tempfile::tempdir()?;
    let proxy = support::proxy(dir.path(), |c| c.allocator_stats = true).await;
    let before = gauge(&proxy, "allocated").await;
    let active = gauge(&proxy, "active").await;
    let resident = gauge(&proxy, "resident").await;
    let mapped = gauge(&proxy, "mapped").await;
    assert!(before > 0.0, "allocated {before}");
    assert!(gauge(&proxy, "metadata").await > 0.0);
    assert!(gauge(&proxy, "retained").await >= 0.0);
    // Each read is its own snapshot (the proxy allocates and frees meanwhile),
    // so compare loosely: pages hold the
    // allocations, and resident and mapped cover the active pages.
    assert!(
        active >= before * 0.9,
        "active {active} < allocated {before}"
    );
    assert!(
        resident >= active * 0.9,
        "resident {resident} < active {active}"
    );
    assert!(mapped >= active * 0.9, "mapped {mapped} < active {active}");

    const BIG: usize = 64 << 20;
    let block = black_box(vec![1u8; BIG]);
    let held = gauge(&proxy, "allocated").await;
    assert!(
        held >= before + BIG as f64 * 0.9,
        "allocated {held} with 64 MiB held, {before} before"
    );
    assert!(gauge(&proxy, "resident").await >= BIG as f64);
    drop(block);
    let after = gauge(&proxy, "allocated").await;
    assert!(
        after < held - (BIG / 2) as f64,
        "allocated {after} after freeing 64 MiB, {held} while held"
    );
    proxy.shutdown().await;
    Ok(())
}

/// Without `allocator_stats` (the library's default) there are no allocator
/// gauges: a process using another allocator shows none rather than zeros.
#[tokio::test]
async fn no_allocator_gauges_unless_asked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let proxy = support::proxy(dir.path(), |_| {}).await;
    let text = admin(&proxy, "/metrics").await.text();
    assert!(text.contains("ingress_proxy_table_version"));
    assert!(!text.contains("ingress_proxy_allocator_"), "{text}");
    proxy.shutdown().await;
    Ok(())
}

/// The dirty decay the binary sets at start is applied and reads back.
#[test]
fn dirty_decay_is_set() {
    use ingress_proxy::allocator::{DIRTY_DECAY, dirty_decay, set_dirty_decay};
    assert!(set_dirty_decay(DIRTY_DECAY));
    assert_eq!(dirty_decay(), Some(DIRTY_DECAY));
    assert!(set_dirty_decay(std::time::Duration::from_millis(2500)));
    assert_eq!(dirty_decay(), Some(std::time::Duration::from_millis(2500)));
}

/// A connection that has sent nothing yet costs its task and its socket's
/// registration, about 2 KB, not hyper's connection state: 400 idle
/// connections add under 3,000 bytes each to `allocated` (hyper's state built
/// for each, as when the wait for the first bytes took tokio's guess that an
/// accepted socket is readable, made it 5.6 KB each). The hardening checklist's
/// T52 holds 10,000 such connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cost_their_task_and_no_more() -> TestResult {
    const IDLE: usize = 400;
    let dir = tempfile::tempdir()?;
    let proxy = support::proxy(dir.path(), |c| c.allocator_stats = true).await;
    let addr = proxy.http_addr().expect("http listener");
    // One request first, so what the first request builds once is in `before`.
    let warm = support::h1(addr, support::get("warm.test", "/").body(support::empty())?).await;
    assert_eq!(warm.status, 404);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = gauge(&proxy, "allocated").await;
    // Plain std sockets: the client side allocates nothing in this process.
    let idle = tokio::task::spawn_blocking(move || {
        (0..IDLE)
            .map(|_| std::net::TcpStream::connect(addr))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    // The listener accepts in order: once a later connection is answered, every
    // idle one has been accepted and its task started.
    let after_all = support::h1(addr, support::get("warm.test", "/").body(support::empty())?).await;
    assert_eq!(after_all.status, 404);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let held = gauge(&proxy, "allocated").await;
    let each = (held - before) / IDLE as f64;
    assert!(
        each < 3000.0,
        "{each:.0} bytes per idle connection ({before} allocated before, {held} with {IDLE} idle)"
    );
    // Still connections: one of them is served once it speaks.
    let mut first = idle.into_iter().next().expect("one idle connection");
    let reply = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        first.write_all(b"GET / HTTP/1.1\r\nHost: warm.test\r\nConnection: close\r\n\r\n")?;
        let mut out = Vec::new();
        first.read_to_end(&mut out)?;
        std::io::Result::Ok(out)
    })
    .await??;
    assert!(
        reply.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    proxy.shutdown().await;
    Ok(())
}

/// With the thread cache limited (`limit_thread_cache`, as the binary does on
/// each thread), it keeps at most 2 freed objects of 2 KiB and of 16 KiB, where
/// it kept 8 or more; objects of 512 bytes and 8 KiB are cached as before.
#[test]
fn the_thread_cache_keeps_few_objects_of_a_connections_sizes() {
    use ingress_proxy::allocator::{limit_thread_cache, thread_cache_bytes};
    // Threads of their own, each with a fresh cache, and nothing else in them.
    let cached_after_freeing = |size: usize, limited: bool| {
        std::thread::spawn(move || {
            if limited {
                assert!(limit_thread_cache());
            }
            // Warm: the cache takes a batch of objects of a size on its first
            // use; and the list is allocated before the count.
            drop(black_box(vec![1u8; size]));
            let mut blocks = Vec::with_capacity(16);
            let before = thread_cache_bytes().expect("tcache_bytes");
            // 16: within what the cache keeps of one size by default (20 at least).
            for i in 0..16u8 {
                blocks.push(black_box(vec![i; size]));
            }
            blocks.clear();
            let after = thread_cache_bytes().expect("tcache_bytes");
            after.saturating_sub(before) / size as u64
        })
        .join()
        .expect("the test thread")
    };
    for size in [2048, 16384] {
        let default = cached_after_freeing(size, false);
        assert!(
            default >= 8,
            "{default} objects of {size} bytes cached by default"
        );
        let limited = cached_after_freeing(size, true);
        assert!(
            limited <= 2,
            "{limited} objects of {size} bytes cached, limited"
        );
    }
    for size in [512, 8192] {
        let limited = cached_after_freeing(size, true);
        assert!(
            limited >= 4,
            "{limited} objects of {size} bytes cached, limited"
        );
    }
}
