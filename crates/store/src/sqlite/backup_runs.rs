//! The record of backup runs (table `backup_run`).

use rusqlite::params;

use super::SqliteStore;
use crate::{BackupOutcome, BackupRun, Result};

pub(super) async fn start(
    store: &SqliteStore,
    kind: &str,
    attempt: u32,
    started_ms: i64,
) -> Result<i64> {
    let kind = kind.to_string();
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO backup_run (kind, attempt, started_ms, status) VALUES (?1, ?2, ?3, 'running')",
                params![kind, attempt, started_ms],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

pub(super) async fn finish(store: &SqliteStore, id: i64, outcome: BackupOutcome) -> Result<()> {
    store
        .writer
        .write(move |c| {
            let (status, file, bytes, error) = match outcome.result {
                Ok((file, bytes)) => ("ok", Some(file), Some(bytes as i64), None),
                Err(error) => ("failed", None, None, Some(error)),
            };
            c.execute(
                "UPDATE backup_run SET finished_ms = ?2, status = ?3, file = ?4, bytes = ?5, error = ?6
                 WHERE id = ?1",
                params![id, outcome.finished_ms, status, file, bytes, error],
            )?;
            Ok(())
        })
        .await
}

pub(super) async fn interrupt(store: &SqliteStore) -> Result<u64> {
    store
        .writer
        .write(|c| {
            Ok(c.execute(
                "UPDATE backup_run SET status = 'interrupted', error = 'the server stopped during this backup'
                 WHERE status = 'running'",
                [],
            )? as u64)
        })
        .await
}

pub(super) async fn list(store: &SqliteStore, limit: u32) -> Result<Vec<BackupRun>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, kind, attempt, started_ms, finished_ms, status, bytes, file, error
                 FROM backup_run ORDER BY started_ms DESC, id DESC LIMIT ?1",
            )?;
            let rows = stmt
                .query_map([limit], |r| {
                    Ok(BackupRun {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        attempt: r.get(2)?,
                        started_ms: r.get(3)?,
                        finished_ms: r.get(4)?,
                        status: r.get(5)?,
                        bytes: r.get::<_, Option<i64>>(6)?.map(|b| b as u64),
                        file: r.get(7)?,
                        error: r.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
}
