//! Keeping the snapshot current: a task woken by any watch event rebuilds the table, at
//! most once per `COALESCE` (or twice the last build time, if longer) while events keep coming, so settling thousands of objects costs
//! a rebuild per interval instead of one per event, and a weight change still reaches
//! requests within `COALESCE` plus one build.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Snapshots;
use crate::gateway::cache::Caches;
use crate::serve::Readiness;

/// The shortest time between two rebuilds.
pub const COALESCE: Duration = Duration::from_millis(25);

/// Builds the first snapshot once the caches hold a full list and marks the gateway ready,
/// then rebuilds after watch events (`events` is notified by every watch).
pub async fn run(snapshots: Arc<Snapshots>, caches: Caches, events: Arc<Notify>, ready: Readiness) {
    let synced = futures::future::join5(
        caches.routes.wait_until_ready(),
        caches.backends.wait_until_ready(),
        caches.secrets.wait_until_ready(),
        caches.slices.wait_until_ready(),
        caches.tenants.wait_until_ready(),
    )
    .await;
    if synced.0.is_err()
        || synced.1.is_err()
        || synced.2.is_err()
        || synced.3.is_err()
        || synced.4.is_err()
    {
        return;
    }
    let generation = rebuild(&snapshots, &caches).await;
    tracing::info!(generation, "caches synced, routing table built; ready");
    ready.set(true);
    loop {
        // A notification while building or sleeping is kept as a permit: the next loop
        // rebuilds at once, covering every event since.
        events.notified().await;
        let started = tokio::time::Instant::now();
        rebuild(&snapshots, &caches).await;
        // A full rebuild at 10,000 routes takes a few hundred milliseconds: while events keep
        // coming (a cluster settling), rebuilding back to back would take a whole core from
        // the requests. Waiting twice the build time caps rebuilds at a third of a core and
        // still shows a change within three build times.
        tokio::time::sleep(COALESCE.max(started.elapsed() * 2)).await;
    }
}

/// One rebuild, off the request workers.
async fn rebuild(snapshots: &Arc<Snapshots>, caches: &Caches) -> u64 {
    let (s, c) = (snapshots.clone(), caches.clone());
    tokio::task::spawn_blocking(move || s.rebuild(&c))
        .await
        .unwrap_or_default()
}
