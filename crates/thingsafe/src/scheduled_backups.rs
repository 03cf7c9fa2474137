//! Backups made by `thingsafe serve` itself (`backup.schedule`, `backup.time` in UTC):
//! each run makes a data backup and a key-store backup, records both in the database
//! (`GET /api/admin/backups`), and tries again (`ATTEMPTS` in all) when one fails. Old data
//! backups are deleted only after a new one succeeded, so a failing run never leaves fewer
//! good backups than before. Expired key-store backups are deleted after every run and
//! hourly, whatever the schedule: the erasure window does not depend on backups running.

use std::path::PathBuf;

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

use thingsafe_store::{BackupOutcome, Store};
use thingsafe_vault::Vault;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::backup;
use crate::config::{BackupSchedule, Config};

/// Attempts of one scheduled run before it is given up until the next one.
pub const ATTEMPTS: u32 = 3;
/// Expired key-store backups are looked for at least this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The next time at or after `now` a `schedule` at `hour:minute` UTC is due; weekly runs
/// are on Sundays. `None` when off.
pub fn next_run(
    schedule: BackupSchedule,
    (hour, minute): (u8, u8),
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let at = time::Time::from_hms(hour, minute, 0).expect("checked when the config loaded");
    let mut day = now.date();
    loop {
        let candidate = day.with_time(at).assume_utc();
        let day_ok = match schedule {
            BackupSchedule::Off => return None,
            BackupSchedule::Daily => true,
            BackupSchedule::Weekly => day.weekday() == time::Weekday::Sunday,
        };
        if day_ok && candidate > now {
            return Some(candidate);
        }
        day = day.next_day()?;
    }
}

/// Runs the schedule until `stop` turns true.
pub async fn run(
    config: Config,
    vault: Arc<Vault>,
    store: Arc<dyn Store>,
    mut stop: watch::Receiver<bool>,
) {
    match store.interrupt_backup_runs().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            runs = n,
            "backup runs were interrupted when the server last stopped; their partial files are not backups"
        ),
        Err(e) => tracing::error!(error = %e, "cannot update the record of backup runs"),
    }
    let backup = &config.backup;
    let time_of_day = backup
        .time_of_day()
        .expect("checked when the config loaded");
    if backup.interval_seconds > 0 {
        tracing::warn!(
            seconds = backup.interval_seconds,
            dir = %backup.dir.display(),
            "backups every backup.interval_seconds (meant for tests)"
        );
    } else if backup.schedule != BackupSchedule::Off {
        tracing::info!(schedule = ?backup.schedule, time = %backup.time, dir = %backup.dir.display(), "scheduled backups (UTC)");
    }
    loop {
        let due_in = if backup.interval_seconds > 0 {
            Some(Duration::from_secs(backup.interval_seconds.into()))
        } else {
            let now = OffsetDateTime::now_utc();
            next_run(backup.schedule, time_of_day, now)
                .map(|at| Duration::try_from(at - now).unwrap_or_default())
        };
        let wait = due_in.map_or(PRUNE_EVERY, |d| d.min(PRUNE_EVERY));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if due_in.is_some_and(|d| d <= wait)
            && !run_with_retries(&config, &vault, &store, &mut stop).await
        {
            return;
        }
        let prune_config = config.clone();
        match tokio::task::spawn_blocking(move || backup::prune_key_backups(&prune_config)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = format!("{e:#}"), "cannot prune key-store backups")
            }
            Err(e) => tracing::error!(error = %e, "key-store backup pruning panicked"),
        }
    }
}

/// One scheduled run with its retries; false when the server is stopping.
async fn run_with_retries(
    config: &Config,
    vault: &Arc<Vault>,
    store: &Arc<dyn Store>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let (mut data_done, mut keys_done) = (false, false);
    for attempt in 1..=ATTEMPTS {
        if !data_done {
            data_done = attempt_one(config, vault, store, attempt, Kind::Data).await;
        }
        if !keys_done {
            keys_done = attempt_one(config, vault, store, attempt, Kind::Keys).await;
        }
        if data_done && keys_done {
            return true;
        }
        if attempt == ATTEMPTS {
            tracing::error!(
                attempts = ATTEMPTS,
                "scheduled backup failed; the previous backups are kept; the next run is at the next scheduled time"
            );
            return true;
        }
        let delay = Duration::from_secs(config.backup.retry_delay_secs.into());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
    }
    true
}

#[derive(Clone, Copy)]
enum Kind {
    Data,
    Keys,
}

/// Makes and records one backup; true when it succeeded.
async fn attempt_one(
    config: &Config,
    vault: &Arc<Vault>,
    store: &Arc<dyn Store>,
    attempt: u32,
    kind: Kind,
) -> bool {
    let name = match kind {
        Kind::Data => "data",
        Kind::Keys => "keys",
    };
    let run = match store
        .start_backup_run(name, attempt, thingsafe_core::now_ms())
        .await
    {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::error!(error = %e, "cannot record the start of a backup run");
            None
        }
    };
    let (config_for_job, vault_for_job) = (config.clone(), vault.clone());
    let made =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(PathBuf, u64, Vec<PathBuf>)> {
            let backup = &config_for_job.backup;
            match kind {
                Kind::Data => {
                    std::fs::create_dir_all(&backup.dir).with_context(|| {
                        format!(
                            "cannot create the backup directory {} (backup.dir)",
                            backup.dir.display()
                        )
                    })?;
                    let out = backup::fresh_name(
                        &backup.dir,
                        "thingsafe",
                        thingsafe_vault::backup::DATA_EXTENSION,
                    );
                    let made = backup::make_data_backup(
                        &config_for_job.data_dir,
                        &vault_for_job,
                        &out,
                        false,
                    )?;
                    // Only now, with a new good backup in place, may old ones go.
                    let pruned =
                        backup::prune_data_backups(&backup.dir, &vault_for_job, backup.keep)?;
                    Ok((made.path, made.bytes, pruned))
                }
                Kind::Keys => {
                    let made = backup::make_key_backup(&vault_for_job, &backup.dir)?;
                    let pruned = backup::prune_key_backups(&config_for_job)?;
                    Ok((made.path, made.bytes, pruned))
                }
            }
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the backup task panicked: {e}")));
    let result = match &made {
        Ok((path, bytes, pruned)) => {
            tracing::info!(kind = name, file = %path.display(), bytes, attempt, "backup made");
            for old in pruned {
                tracing::info!(kind = name, file = %old.display(), "deleted an old backup");
            }
            Ok((path.display().to_string(), *bytes))
        }
        Err(e) => {
            tracing::error!(
                kind = name,
                attempt,
                of = ATTEMPTS,
                error = format!("{e:#}"),
                "backup failed"
            );
            Err(format!("{e:#}"))
        }
    };
    thingsafe_privacy::audit::Audit::new(thingsafe_privacy::audit::action::BACKUP)
        .details(match &result {
            Ok((file, bytes)) => serde_json::json!({"kind": name, "attempt": attempt, "ok": true, "file": file, "bytes": bytes}),
            Err(error) => serde_json::json!({"kind": name, "attempt": attempt, "ok": false, "error": error}),
        })
        .record(store.as_ref())
        .await;
    if let Some(id) = run {
        let outcome = BackupOutcome {
            finished_ms: thingsafe_core::now_ms(),
            result,
        };
        if let Err(e) = store.finish_backup_run(id, outcome).await {
            tracing::error!(error = %e, "cannot record the end of a backup run");
        }
    }
    made.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn runs_fall_on_the_next_time_of_day_or_sunday_in_utc() {
        let now = datetime!(2026-11-25 10:00 UTC); // a Wednesday
        assert_eq!(next_run(BackupSchedule::Off, (3, 0), now), None);
        assert_eq!(
            next_run(BackupSchedule::Daily, (3, 0), now),
            Some(datetime!(2026-11-26 03:00 UTC))
        );
        assert_eq!(
            next_run(BackupSchedule::Daily, (10, 30), now),
            Some(datetime!(2026-11-25 10:30 UTC))
        );
        assert_eq!(
            next_run(BackupSchedule::Daily, (10, 0), now),
            Some(datetime!(2026-11-26 10:00 UTC)),
            "the time just passed is tomorrow's"
        );
        assert_eq!(
            next_run(BackupSchedule::Weekly, (3, 0), now),
            Some(datetime!(2026-11-29 03:00 UTC))
        );
        assert_eq!(
            next_run(
                BackupSchedule::Weekly,
                (3, 0),
                datetime!(2026-11-29 02:00 UTC)
            ),
            Some(datetime!(2026-11-29 03:00 UTC))
        );
    }
}
