//! Background jobs of `thingsafe serve`.

use std::sync::Arc;
use std::time::Duration;

use thingsafe_store::Store;

/// Rows one purge step deletes at most: small enough that ingest never waits long for the
/// writer.
const PURGE_BATCH: usize = 5_000;
/// How often the purge looks for work when nobody wakes it (e.g. after a restart cut one
/// short).
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// How often the retention sweeper runs, and how long after start it runs first.
const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);
const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(60);

/// Deletes expired telemetry of every tenant once an hour (the first run a minute after
/// start), recording each run.
pub async fn sweep_retention(
    store: Arc<dyn Store>,
    policy: Arc<thingsafe_core::policy::PublishedPolicy>,
) {
    tokio::time::sleep(FIRST_SWEEP_AFTER).await;
    loop {
        let sweep = thingsafe_privacy::retention::sweep(store.as_ref(), &policy.policy, None).await;
        match &sweep.error {
            None => tracing::info!(points = sweep.telemetry_points, "retention sweep"),
            Some(e) => tracing::error!(error = %e, "retention sweep failed in part"),
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// Deletes the rows of erased people and tenants (already unreadable: their keys are gone),
/// in batches, whenever an erasure wakes it and once a minute.
pub async fn purge_erasures(store: Arc<dyn Store>, wanted: Arc<tokio::sync::Notify>) {
    loop {
        let mut total = 0usize;
        loop {
            match store.purge_erased(PURGE_BATCH).await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    tracing::error!(error = %e, "purging erased data failed; retrying in a minute");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(rows = total, "purged the rows of erased accounts");
        }
        let _ = tokio::time::timeout(PURGE_EVERY, wanted.notified()).await;
    }
}
