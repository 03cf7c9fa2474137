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
use thingsafe_vault::{KEYSTORE_FILE, MasterKey, Vault};

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

fn bar(len: u64, what: &str) -> ProgressBar {
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

pub fn backup(config: &Config, out: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let vault = existing_vault(dir, "a backup")?;
    let stamp = crate::now_stamp();
    let out = out.unwrap_or_else(|| {
        config
            .backup
            .dir
            .join(format!("thingsafe-{stamp}.tsbackup"))
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let started = Instant::now();
    // Partial files never look like backups: a crash mid-way leaves no "good" backup behind.
    let snapshot = out.with_extension("snapshot.partial");
    let partial = out.with_extension("tsbackup.partial");
    let result = (|| -> anyhow::Result<(u64, u64, String)> {
        thingsafe_vault::create_private_file(&snapshot)?;
        let pages = bar(0, "snapshot");
        db_backup::snapshot(dir, &snapshot, |done, total| {
            pages.set_length(total * 4096);
            pages.set_position(done * 4096);
        })
        .context("cannot take a snapshot of the database")?;
        pages.finish_and_clear();
        let size = fs::metadata(&snapshot)?.len();
        thingsafe_vault::create_private_file(&partial)?;
        let mut file = Hashing {
            inner: BufWriter::new(File::create(&partial)?),
            hash: Sha256::new(),
            bytes: 0,
        };
        let sealing = bar(size, "seal");
        vault.seal_backup(BufReader::new(File::open(&snapshot)?), &mut file, |n| {
            sealing.set_position(n)
        })?;
        sealing.finish_and_clear();
        file.flush()?;
        let written = file.bytes;
        let digest = hex_digest(file.hash.finalize().as_slice());
        file.inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        fs::rename(&partial, &out)?;
        Ok((size, written, digest))
    })();
    let _ = fs::remove_file(&snapshot);
    let (size, written, digest) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e.context("the backup failed; no backup file was written"));
        }
    };
    println!(
        "backup {}: {written} bytes (database {size} bytes) in {:.1} s, sha256 {digest}",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let _lock = lock_data_dir(dir)?;
    let vault = existing_vault(dir, "a restore")?;
    let input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let length = input.metadata()?.len();
    let restoring = dir.join(format!("{DATA_FILE}.restoring"));
    let result = (|| -> anyhow::Result<u64> {
        thingsafe_vault::create_private_file(&restoring)?;
        let reading = bar(length, "restore");
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
