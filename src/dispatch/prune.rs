//! Deleting delivered events (and the memory of requests) past retention, hourly.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock;
use crate::store::Store;

/// Deletes delivered events older than `retention`, now and then every hour, until
/// `shutdown` turns true.
pub async fn prune_periodically(
    store: Arc<dyn Store>,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    const EVERY: Duration = Duration::from_secs(3600);
    while !*shutdown.borrow() {
        let before = clock::now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX / 2);
        match store.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned delivered events past retention"),
            Err(error) => tracing::warn!(%error, "cannot prune delivered events"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
}
