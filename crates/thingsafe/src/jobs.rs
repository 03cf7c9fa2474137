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

/// Destroys the keys of no-account requests closed more than
/// [`thingsafe_privacy::requests::CLOSED_REQUEST_READABLE_MS`] ago, once an hour.
pub async fn shred_closed_requests(store: Arc<dyn Store>) {
    tokio::time::sleep(FIRST_SWEEP_AFTER).await;
    loop {
        let before =
            thingsafe_core::now_ms() - thingsafe_privacy::requests::CLOSED_REQUEST_READABLE_MS;
        match store.shred_closed_requests(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "shredded the requesters of closed requests"),
            Err(e) => tracing::error!(error = %e, "shredding closed requests failed"),
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// How often undelivered notices to recipients are looked at when nobody wakes the job.
const NOTICES_EVERY: Duration = Duration::from_secs(1);
/// How long a processor has to answer a notice.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts the notices to recipients (GDPR Art. 19) to each processor's `notify_url`; a
/// failure (no 2xx answer) is recorded and retried with exponential backoff.
pub async fn deliver_notices(store: Arc<dyn Store>, wanted: Arc<tokio::sync::Notify>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder().timeout(NOTICE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for notices to recipients: none are sent");
            return;
        }
    };
    loop {
        match store.due_notices(thingsafe_core::now_ms(), 100).await {
            Ok(due) => {
                for notice in due {
                    let sent = client
                        .post(&notice.url)
                        .header("content-type", "application/json")
                        .body(notice.payload.clone())
                        .send()
                        .await;
                    let now = thingsafe_core::now_ms();
                    let result = match sent {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("answered {}", r.status())),
                        Err(e) => Err(format!("not reached: {e}")),
                    };
                    let result = result.map_err(|error| {
                        let retry = now + thingsafe_privacy::recipients::retry_after_ms(notice.attempts);
                        tracing::warn!(processor = %notice.processor, event = %notice.event, %error, "a notice to a recipient failed; it will be retried");
                        (error, retry)
                    });
                    if result.is_ok() {
                        tracing::info!(processor = %notice.processor, event = %notice.event, "a recipient was told (Art. 19)");
                    }
                    if let Err(e) = store.record_notice_attempt(notice.id, now, result).await {
                        tracing::error!(error = %e, "cannot record a notice's delivery attempt");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the notices to recipients"),
        }
        let _ = tokio::time::timeout(NOTICES_EVERY, wanted.notified()).await;
    }
}
