//! Retention of telemetry: the policy's retention for `user.device.telemetry`, or a
//! tenant's own shorter one, whichever ends first; a key the tenant classified under a
//! category kept for less time goes by that category's. The sweeper deletes what is older
//! and records each run. A sweep of every tenant also applies the retention of the
//! records the policy lists under `[records]` (sessions, visitors' consents, closed
//! requests, audit events, disclosures).

use std::collections::BTreeMap;

use thingsafe_core::policy::{self, Policy, Retention};
use thingsafe_core::{TenantId, TimestampMs, now_ms};
use thingsafe_store::{RecordCuts, Store, Sweep};

/// The policy category whose retention applies to telemetry.
pub const TELEMETRY_CATEGORY: &str = "user.device.telemetry";

const HOUR_MS: i64 = 60 * 60 * 1000;

/// The policy's telemetry retention in hours; `None`: kept for the account's lifetime.
pub fn policy_hours(policy: &Policy) -> Option<u64> {
    match policy
        .categories
        .get(TELEMETRY_CATEGORY)
        .map(|c| c.retention)
    {
        Some(Retention::For(period)) => Some(period.hours()),
        _ => None,
    }
}

/// Whether the category's expired telemetry is folded into anonymised hourly aggregates
/// before it is deleted (`aggregate = "hourly"`).
pub fn keeps_aggregates(policy: &Policy, category: &str) -> bool {
    policy
        .categories
        .get(category)
        .is_some_and(|c| c.aggregate.is_some())
}

/// A tenant may keep telemetry for less time than the policy says, never more.
pub fn check_tenant_days(policy: &Policy, days: u32) -> Result<(), String> {
    if days == 0 {
        return Err("telemetryDays must be at least 1".into());
    }
    if let Some(hours) = policy_hours(policy)
        && u64::from(days) * 24 > hours
    {
        return Err(format!(
            "telemetryDays {days} is longer than the privacy policy allows ({}): a tenant may keep telemetry for less time, never more",
            policy.categories[TELEMETRY_CATEGORY].retention.human()
        ));
    }
    Ok(())
}

/// Telemetry before this time is expired for a tenant with `tenant_days` (if any).
pub fn telemetry_cutoff(
    policy: &Policy,
    tenant_days: Option<u32>,
    now: TimestampMs,
) -> Option<TimestampMs> {
    let policy_ms = policy_hours(policy).map(|h| h as i64 * HOUR_MS);
    let tenant_ms = tenant_days.map(|d| i64::from(d) * 24 * HOUR_MS);
    let keep = match (policy_ms, tenant_ms) {
        (Some(p), Some(t)) => p.min(t),
        (Some(p), None) => p,
        (None, Some(t)) => t,
        (None, None) => return None,
    };
    Some(now - keep)
}

/// The time before which each record the policy gives a retention goes, at `now`.
pub fn record_cuts(policy: &Policy, now: TimestampMs) -> RecordCuts {
    let cut = |name: &str| match policy.records.get(name).map(|r| r.retention) {
        Some(Retention::For(period)) => Some(now - period.hours() as i64 * HOUR_MS),
        _ => None,
    };
    RecordCuts {
        login_history: cut(policy::LOGIN_HISTORY),
        visitor_consents: cut(policy::VISITOR_CONSENTS),
        closed_requests: cut(policy::CLOSED_REQUESTS),
        audit_events: cut(policy::AUDIT_EVENTS),
        disclosures: cut(policy::DISCLOSURES),
        rpc_calls: cut(policy::RPC_CALLS),
    }
}

/// Deletes expired telemetry of every tenant (or of `only`) and records the run; a sweep
/// of every tenant also deletes expired records.
pub async fn sweep(store: &dyn Store, policy: &Policy, only: Option<TenantId>) -> Sweep {
    let started_ms = now_ms();
    let mut points = 0u64;
    let mut records = BTreeMap::new();
    let mut error = None;
    match store.retention_settings().await {
        Ok(settings) => {
            // Keys kept for less time go first, by their own category's rule: folded into
            // aggregates only if that category keeps them.
            match sweep_classified(store, policy, &settings, only, started_ms).await {
                Ok(n) => points += n,
                Err(e) => error = Some(e),
            }
            for &(tenant, days) in &settings {
                if only.is_some_and(|t| t != tenant) {
                    continue;
                }
                let Some(cutoff) = telemetry_cutoff(policy, days, started_ms) else {
                    continue;
                };
                match store
                    .expire_telemetry(tenant, cutoff, keeps_aggregates(policy, TELEMETRY_CATEGORY))
                    .await
                {
                    Ok(n) => points += n,
                    Err(e) => error = Some(format!("tenant {tenant}: {e}")),
                }
            }
        }
        Err(e) => error = Some(e.to_string()),
    }
    // Records are the installation's (the audit chain is one for all tenants): only a
    // sweep of every tenant touches them.
    if only.is_none() {
        match store.expire_records(&record_cuts(policy, started_ms)).await {
            Ok(counts) => records = counts,
            Err(e) => error = Some(format!("records: {e}")),
        }
    }
    let sweep = Sweep {
        started_ms,
        finished_ms: now_ms(),
        tenant: only,
        telemetry_points: points,
        records,
        error,
    };
    if let Err(e) = store.record_sweep(&sweep).await {
        // The sweep's own record failing does not undo the deletions; say so.
        return Sweep {
            error: Some(format!("the sweep ran but could not be recorded: {e}")),
            ..sweep
        };
    }
    sweep
}

/// Deletes the points of classified keys whose category is kept for less time than
/// telemetry (see [`crate::classification::key_cutoffs`]).
async fn sweep_classified(
    store: &dyn Store,
    policy: &Policy,
    settings: &[(TenantId, Option<u32>)],
    only: Option<TenantId>,
    now: TimestampMs,
) -> Result<u64, String> {
    let mut points = 0;
    let classifications = store
        .telemetry_classifications()
        .await
        .map_err(|e| e.to_string())?;
    for (tenant, classification) in classifications {
        if only.is_some_and(|t| t != tenant) {
            continue;
        }
        let days = settings
            .iter()
            .find(|(t, _)| *t == tenant)
            .and_then(|(_, d)| *d);
        let cutoff = telemetry_cutoff(policy, days, now);
        for (key, before) in
            crate::classification::key_cutoffs(policy, &classification, cutoff, now)
        {
            let aggregate = keeps_aggregates(policy, &classification[&key]);
            points += store
                .expire_telemetry_key(tenant, &key, before, aggregate)
                .await
                .map_err(|e| format!("tenant {tenant}, classified keys: {e}"))?;
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_retention_wins_and_a_tenant_cannot_keep_longer() {
        let lifetime = Policy::builtin();
        assert_eq!(policy_hours(&lifetime), None);
        assert_eq!(telemetry_cutoff(&lifetime, None, 1_000), None);
        assert_eq!(
            telemetry_cutoff(&lifetime, Some(1), 100 * HOUR_MS),
            Some(76 * HOUR_MS)
        );
        assert!(check_tenant_days(&lifetime, 3650).is_ok());
        assert!(check_tenant_days(&lifetime, 0).is_err());

        let text = thingsafe_core::policy::DEFAULT_POLICY.replace(
            "purposes = { essential = \"contract\" }\nretention = \"account_lifetime\"\n\n[categories.\"user.location.precise\"]",
            "purposes = { essential = \"contract\" }\nretention = \"30d\"\n\n[categories.\"user.location.precise\"]",
        );
        let month = thingsafe_core::policy::parse(&text).unwrap();
        assert_eq!(policy_hours(&month), Some(30 * 24));
        assert_eq!(
            check_tenant_days(&month, 31).unwrap_err(),
            "telemetryDays 31 is longer than the privacy policy allows (30 days): a tenant may keep telemetry for less time, never more"
        );
        assert!(check_tenant_days(&month, 7).is_ok());
        assert_eq!(
            telemetry_cutoff(&month, Some(40), 100 * 24 * HOUR_MS),
            Some(70 * 24 * HOUR_MS)
        );
    }
}
