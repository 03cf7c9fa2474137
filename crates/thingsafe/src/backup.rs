//! `thingsafe backup` and `thingsafe restore`: online, consistent, compressed and sealed
//! copies of the database. The key store (`keys.db`) and the master key are never inside
//! a backup: a restore needs the installation's own, so a person erased after a backup
//! stays unreadable in it (their key is gone from the key store).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use thingsafe_store::sqlite::{DATA_FILE, backup as db_backup};
use thingsafe_vault::backup::{DATA_EXTENSION, KEYS_EXTENSION};
use thingsafe_vault::{BackupFile, BackupKind, KEYSTORE_FILE, MasterKey, Vault, list_backups};

use crate::config::Config;

/// The lock `serve` and `restore` hold on a data directory.
pub const LOCK_FILE: &str = "thingsafe.lock";

/// Holds the data directory for this process: no second server, no restore under a
/// running one. Released when the process ends, however it ends.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock().is_err() {
        bail!(
            "another thingsafe process is using {} ({} is held): stop it first",
            dir.display(),
            LOCK_FILE
        );
    }
    Ok(file)
}

/// The vault of an existing installation; never creates a master key or a key store.
fn existing_vault(dir: &Path, what: &str) -> anyhow::Result<Vault> {
    let env_key = std::env::var("THINGSAFE_MASTER_KEY").ok();
    if !dir.join(KEYSTORE_FILE).exists() || (env_key.is_none() && !dir.join("master.key").exists())
    {
        bail!(
            "{what} needs the installation's key store ({KEYSTORE_FILE}) and master key (master.key or THINGSAFE_MASTER_KEY) in {}: copy them there first (docs/backups.md)",
            dir.display()
        );
    }
    let (master, _) = MasterKey::load_or_create(dir, env_key.as_deref())?;
    Ok(Vault::open(dir, master)?)
}

fn bar(len: u64, what: &str, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {elapsed}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hash.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A backup just written.
pub struct Made {
    pub path: PathBuf,
    /// Bytes of the backup file.
    pub bytes: u64,
    /// Bytes of what it holds (the database, or the key store).
    pub content_bytes: u64,
    pub sha256: String,
    pub seconds: f64,
}

/// `dir/<prefix>-<time>.<extension>`, a name no file has yet.
pub fn fresh_name(dir: &Path, prefix: &str, extension: &str) -> PathBuf {
    let stamp = crate::now_stamp();
    let mut path = dir.join(format!("{prefix}-{stamp}.{extension}"));
    let mut n = 2;
    while path.exists() || partial_of(&path).exists() {
        path = dir.join(format!("{prefix}-{stamp}-{n}.{extension}"));
        n += 1;
    }
    path
}

/// Where a backup is written before it is complete; never listed as a good backup.
fn partial_of(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(thingsafe_vault::backup::PARTIAL_SUFFIX);
    out.with_file_name(name)
}

fn create_parent(out: &Path) -> anyhow::Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(())
}

/// Writes `partial` through `write` (hashing what goes out), syncs it and renames it to
/// `out`; on failure removes it. Returns the file's size and SHA-256.
fn write_then_rename(
    out: &Path,
    write: impl FnOnce(&mut Hashing<BufWriter<File>>) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, String)> {
    let partial = partial_of(out);
    let result = (|| {
        thingsafe_vault::create_private_file(&partial)?;
        let mut file = Hashing {
            inner: BufWriter::new(File::create(&partial)?),
            hash: Sha256::new(),
            bytes: 0,
        };
        write(&mut file)?;
        file.flush()?;
        let written = file.bytes;
        let digest = hex_digest(file.hash.finalize().as_slice());
        file.inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        fs::rename(&partial, out)?;
        Ok((written, digest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Makes a data backup of the database in `data_dir` at `out`: a consistent snapshot
/// (taken while the server writes), compressed and sealed. `show_progress` draws bars.
pub fn make_data_backup(
    data_dir: &Path,
    vault: &Vault,
    out: &Path,
    show_progress: bool,
) -> anyhow::Result<Made> {
    create_parent(out)?;
    let started = Instant::now();
    // Partial files never look like backups: a crash mid-way leaves no "good" backup behind.
    let mut snapshot_name = out.file_name().unwrap_or_default().to_os_string();
    snapshot_name.push(".snapshot.partial");
    let snapshot = out.with_file_name(snapshot_name);
    let result = (|| -> anyhow::Result<(u64, u64, String)> {
        thingsafe_vault::create_private_file(&snapshot)?;
        let pages = bar(0, "snapshot", show_progress);
        db_backup::snapshot(data_dir, &snapshot, |done, total| {
            pages.set_length(total * 4096);
            pages.set_position(done * 4096);
        })
        .context("cannot take a snapshot of the database")?;
        pages.finish_and_clear();
        let size = fs::metadata(&snapshot)?.len();
        let sealing = bar(size, "seal", show_progress);
        let (written, digest) = write_then_rename(out, |file| {
            vault.seal_backup(BufReader::new(File::open(&snapshot)?), file, |n| {
                sealing.set_position(n)
            })?;
            Ok(())
        })?;
        sealing.finish_and_clear();
        Ok((size, written, digest))
    })();
    let _ = fs::remove_file(&snapshot);
    let (size, written, digest) =
        result.map_err(|e| e.context("the backup failed; no backup file was written"))?;
    Ok(Made {
        path: out.to_path_buf(),
        bytes: written,
        content_bytes: size,
        sha256: digest,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Makes a key-store backup in `dir`: a consistent copy of keys.db sealed with a key
/// derived from the master key.
pub fn make_key_backup(vault: &Vault, dir: &Path) -> anyhow::Result<Made> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the backup directory {}", dir.display()))?;
    let out = fresh_name(dir, "thingsafe-keys", KEYS_EXTENSION);
    let started = Instant::now();
    let mut scratch_name = out.file_name().unwrap_or_default().to_os_string();
    scratch_name.push(".copy.partial");
    let scratch = out.with_file_name(scratch_name);
    let (written, digest) = write_then_rename(&out, |file| {
        vault.write_key_backup(&scratch, file, thingsafe_core::now_ms())?;
        Ok(())
    })
    .context("the key-store backup failed; no backup file was written")?;
    Ok(Made {
        path: out,
        bytes: written,
        content_bytes: 0,
        sha256: digest,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Deletes this installation's data backups in `dir` beyond the newest `keep`; call only
/// after a new backup succeeded. Files it cannot open (other installations', partial
/// ones) are left alone.
pub fn prune_data_backups(dir: &Path, vault: &Vault, keep: u32) -> anyhow::Result<Vec<PathBuf>> {
    let mut ours: Vec<BackupFile> = list_backups(dir)?
        .into_iter()
        .filter(|b| b.kind == BackupKind::Data && vault.opens(b))
        .collect();
    // Newest first.
    ours.sort_by(|a, b| (b.created_ms, &b.path).cmp(&(a.created_ms, &a.path)));
    let mut deleted = Vec::new();
    for old in ours.into_iter().skip(keep as usize) {
        fs::remove_file(&old.path)
            .with_context(|| format!("cannot delete {}", old.path.display()))?;
        deleted.push(old.path);
    }
    Ok(deleted)
}

/// Deletes key-store backups older than `backup.keys_keep_days`, saying so.
pub fn prune_key_backups(config: &Config) -> anyhow::Result<Vec<PathBuf>> {
    let deleted = thingsafe_vault::prune_key_backups(
        &config.backup.dir,
        config.backup.keys_keep_days,
        thingsafe_core::now_ms(),
    )
    .with_context(|| {
        format!(
            "cannot prune the key-store backups in {}",
            config.backup.dir.display()
        )
    })?;
    for path in &deleted {
        tracing::info!(file = %path.display(), "deleted an expired key-store backup");
    }
    Ok(deleted)
}

/// What `thingsafe backup` does.
pub enum BackupTask {
    Data { out: Option<PathBuf> },
    Keys,
    List,
}

pub fn backup(config: &Config, task: BackupTask) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    match task {
        BackupTask::List => list(config),
        BackupTask::Data { out } => {
            let vault = existing_vault(dir, "a backup")?;
            let out = match out {
                Some(out) => out,
                None => {
                    fs::create_dir_all(&config.backup.dir).with_context(|| {
                        format!("cannot create {}", config.backup.dir.display())
                    })?;
                    fresh_name(&config.backup.dir, "thingsafe", DATA_EXTENSION)
                }
            };
            let made = make_data_backup(dir, &vault, &out, true)?;
            println!(
                "backup {}: {} bytes (database {} bytes) in {:.1} s, sha256 {}",
                made.path.display(),
                made.bytes,
                made.content_bytes,
                made.seconds,
                made.sha256
            );
            for path in prune_key_backups(config)? {
                println!("deleted the expired key-store backup {}", path.display());
            }
            Ok(())
        }
        BackupTask::Keys => {
            let vault = existing_vault(dir, "a key-store backup")?;
            let made = make_key_backup(&vault, &config.backup.dir)?;
            println!(
                "key-store backup {}: {} bytes in {:.1} s, sha256 {}; sealed under the master key with fingerprint {}; kept {} days",
                made.path.display(),
                made.bytes,
                made.seconds,
                made.sha256,
                vault.master_fingerprint(),
                config.backup.keys_keep_days
            );
            for path in prune_key_backups(config)? {
                println!("deleted the expired key-store backup {}", path.display());
            }
            Ok(())
        }
    }
}

/// `thingsafe backup --list`: what is in backup.dir, and whether this installation opens it.
fn list(config: &Config) -> anyhow::Result<()> {
    let dir = &config.backup.dir;
    let backups = list_backups(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let vault = existing_vault(&config.data_dir, "checking backups").ok();
    println!("backups in {}:", dir.display());
    if backups.is_empty() {
        println!("  (none)");
    }
    let keep = i64::from(config.backup.keys_keep_days) * 24 * 3600 * 1000;
    for b in &backups {
        let opens = match (&vault, b.complete) {
            (_, false) => "INCOMPLETE (interrupted or being written; not a backup)".to_string(),
            (None, true) => "unknown (no key store here)".to_string(),
            (Some(v), true) if v.opens(b) => "opens with this installation's keys".to_string(),
            (Some(_), true) => match b.kind {
                BackupKind::Data => "does not open (another installation's)".to_string(),
                BackupKind::Keys => {
                    "does not open with the current master key (made before a rotation, or another installation's)".to_string()
                }
            },
        };
        let expires = match b.kind {
            BackupKind::Keys => format!("; expires {}", utc(b.created_ms + keep)),
            BackupKind::Data => String::new(),
        };
        println!(
            "  {}  {:>12} bytes  {:<4}  {}  {}{}",
            utc(b.created_ms),
            b.size,
            b.kind.as_str(),
            b.path.file_name().unwrap_or_default().to_string_lossy(),
            opens,
            expires
        );
    }
    Ok(())
}

/// `2026-11-23 10:45:00 UTC`.
pub fn utc(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .expect("a valid format")
        })
        .unwrap_or_else(|_| format!("{ms} ms"))
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn refuse_partial(file: &Path) -> anyhow::Result<()> {
    if file
        .to_string_lossy()
        .ends_with(thingsafe_vault::backup::PARTIAL_SUFFIX)
    {
        bail!(
            "{} is an interrupted or unfinished backup (*.partial), never a good one: restore a complete backup (thingsafe backup --list)",
            file.display()
        );
    }
    Ok(())
}

/// `thingsafe restore --keys FILE`: puts a key-store backup in place of keys.db. The
/// master key (master.key or THINGSAFE_MASTER_KEY) must be the one in force when the
/// backup was made. Keys destroyed in the current keys.db (if any) stay destroyed.
pub fn restore_keys(config: &Config, file: &Path) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    refuse_partial(file)?;
    let _lock = lock_data_dir(dir)?;
    let env_key = std::env::var("THINGSAFE_MASTER_KEY").ok();
    if env_key.is_none() && !dir.join(thingsafe_vault::MASTER_KEY_FILE).exists() {
        bail!(
            "restoring a key-store backup needs the master key that was in force when it was made, as {}/master.key or THINGSAFE_MASTER_KEY (docs/backups.md)",
            dir.display()
        );
    }
    let (master, _) = MasterKey::load_or_create(dir, env_key.as_deref())?;
    let input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let restoring = dir.join(format!("{KEYSTORE_FILE}.restoring"));
    let current = dir.join(KEYSTORE_FILE);
    let result = (|| -> anyhow::Result<(i64, usize, usize)> {
        let _ = fs::remove_file(&restoring);
        thingsafe_vault::create_private_file(&restoring)?;
        let mut out = BufWriter::new(File::create(&restoring)?);
        let (header, _) =
            thingsafe_vault::open_key_backup(&master, BufReader::new(input), &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let live = thingsafe_vault::check_key_store(&restoring, &master)?;
        let erased = if current.exists() {
            thingsafe_vault::carry_over_erasures(&current, &restoring)
                .context("cannot read the erasures recorded in the current keys.db")?
        } else {
            0
        };
        Ok((header.created_ms.unwrap_or(0), live, erased))
    })();
    let (created, live, erased) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&restoring);
            return Err(e.context(format!(
                "{} was not restored; the key store in {} is untouched",
                file.display(),
                dir.display()
            )));
        }
    };
    let mut kept = None;
    if current.exists() {
        let aside = dir.join(format!("{KEYSTORE_FILE}.replaced-{}", crate::now_stamp()));
        fs::rename(&current, &aside)?;
        kept = Some(aside);
    }
    fs::rename(&restoring, &current)?;
    println!(
        "restored the key store from {} (made {}): {live} keys, wrapped by the master key with fingerprint {}{}{}",
        file.display(),
        utc(created),
        master.fingerprint(),
        if erased > 0 {
            format!("; {erased} keys destroyed since the backup stay destroyed")
        } else {
            String::new()
        },
        kept.map(|k| format!("; the previous key store is kept as {}", k.display()))
            .unwrap_or_default()
    );
    Ok(())
}

pub fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    refuse_partial(file)?;
    let _lock = lock_data_dir(dir)?;
    let vault = existing_vault(dir, "a restore")?;
    let input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let length = input.metadata()?.len();
    let restoring = dir.join(format!("{DATA_FILE}.restoring"));
    let result = (|| -> anyhow::Result<u64> {
        thingsafe_vault::create_private_file(&restoring)?;
        let reading = bar(length, "restore", true);
        let mut out = BufWriter::new(File::create(&restoring)?);
        let restored = vault.open_backup(reading.wrap_read(BufReader::new(input)), &mut out)?;
        reading.finish_and_clear();
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        db_backup::check_restorable(&restoring)?;
        Ok(restored)
    })();
    let restored = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = fs::remove_file(&restoring);
            return Err(e.context(format!(
                "{} was not restored; the data in {} is untouched",
                file.display(),
                dir.display()
            )));
        }
    };
    // The current database and its WAL go aside together: a WAL must never meet another
    // database file.
    let stamp = crate::now_stamp();
    let mut kept = None;
    for suffix in ["", "-wal", "-shm"] {
        let current = dir.join(format!("{DATA_FILE}{suffix}"));
        if current.exists() {
            let aside = dir.join(format!("{DATA_FILE}.replaced-{stamp}{suffix}"));
            fs::rename(&current, &aside)?;
            if suffix.is_empty() {
                kept = Some(aside);
            }
        }
    }
    fs::rename(&restoring, dir.join(DATA_FILE))?;
    println!(
        "restored {} into {} ({restored} bytes){}",
        file.display(),
        dir.display(),
        kept.map(|k| format!("; the previous database is kept as {}", k.display()))
            .unwrap_or_default()
    );
    Ok(())
}
