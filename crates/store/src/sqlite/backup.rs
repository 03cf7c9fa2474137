//! Consistent copies of the database, taken while the server runs (SQLite's online backup
//! API), and the checks a restored copy must pass before it replaces anything.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{DATA_FILE, MIGRATIONS};
use crate::{Result, StoreError};

/// Pages copied per step: small enough to let the server's writer in between.
const PAGES_PER_STEP: i32 = 256;

/// Copies the database in `data_dir` to `dest`, a consistent snapshot even while a server
/// writes. `progress(done, total)` is told the pages copied.
pub fn snapshot(data_dir: &Path, dest: &Path, mut progress: impl FnMut(u64, u64)) -> Result<()> {
    let source = data_dir.join(DATA_FILE);
    if !source.exists() {
        return Err(StoreError::NotFound("database"));
    }
    let src = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut dst = Connection::open(dest)?;
    let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
    loop {
        let step = backup.step(PAGES_PER_STEP)?;
        let p = backup.progress();
        let total = p.pagecount.max(0) as u64;
        progress(total - p.remaining.max(0) as u64, total);
        match step {
            rusqlite::backup::StepResult::Done => break,
            rusqlite::backup::StepResult::More => {}
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    drop(backup);
    dst.execute_batch("PRAGMA journal_mode = DELETE")?;
    Ok(())
}

/// Checks that `path` is an intact Thingsafe database this build can open.
pub fn check_restorable(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Invalid(format!("the restored file is not a database: {e}")))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| StoreError::Invalid(format!("the restored file is not a database: {e}")))?;
    if check != "ok" {
        return Err(StoreError::Invalid(format!(
            "the restored database fails its integrity check: {check}"
        )));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 || version as usize > MIGRATIONS.len() {
        return Err(StoreError::Invalid(format!(
            "the restored database is at schema version {version}; this build knows 1 to {}",
            MIGRATIONS.len()
        )));
    }
    Ok(())
}
