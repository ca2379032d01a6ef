//! Upgraded connections (WebSocket and other `Upgrade` protocols): once the upstream
//! has answered 101, both sides are spliced byte for byte. A tunnel holds no route
//! table, so it survives table swaps; it ends when either side closes, or when the
//! proxy shuts down and the grace period is over.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The open tunnels: how many, and the switch that cuts them all.
#[derive(Debug)]
pub(crate) struct Tunnels {
    open: watch::Sender<usize>,
    cut: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// Counts one open tunnel for as long as it lives.
struct Open(Arc<Tunnels>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.send_modify(|n| *n = n.saturating_sub(1));
        self.0.metrics.open_tunnels(self.0.open());
    }
}

impl Tunnels {
    /// No tunnels yet; the count is also kept in `metrics`.
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Tunnels {
            open: watch::Sender::new(0),
            cut: watch::Sender::new(false),
            metrics,
        }
    }

    /// Wait for both upgrades, then copy bytes both ways until either side closes
    /// (or the tunnels are cut).
    pub(crate) fn spawn(self: &Arc<Self>, client: OnUpgrade, upstream: OnUpgrade) {
        self.open.send_modify(|n| *n += 1);
        self.metrics.open_tunnels(self.open());
        let open = Open(self.clone());
        let mut cut = self.cut.subscribe();
        tokio::spawn(async move {
            let _open = open;
            tokio::select! {
                _ = tunnel(client, upstream) => {}
                _ = cut.wait_for(|cut| *cut) => tracing::debug!("tunnel cut at shutdown"),
            }
        });
    }

    /// How many tunnels are open.
    pub(crate) fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Wait until every tunnel has closed, up to `grace`; then cut the rest.
    pub(crate) async fn close(&self, grace: Duration) {
        let mut open = self.open.subscribe();
        let closed = tokio::time::timeout(grace, open.wait_for(|n| *n == 0))
            .await
            .is_ok();
        if !closed {
            tracing::info!(open = self.open(), "cutting the tunnels still open");
            self.cut.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_secs(1), open.wait_for(|n| *n == 0)).await;
        }
    }
}

async fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = tokio::join!(client, upstream);
    match (client, upstream) {
        (Ok(client), Ok(upstream)) => {
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
                Err(e) => tracing::debug!(error = %e, "tunnel ended"),
            }
        }
        (Err(e), _) | (_, Err(e)) => tracing::debug!(error = %e, "upgrade failed"),
    }
}
