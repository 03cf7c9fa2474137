//! Backup files. A header, then the content compressed (deflate) and sealed as a stream
//! of 64 KiB chunks (XChaCha20-Poly1305 in the STREAM construction: each chunk is
//! authenticated, and their order and the end of the stream are fixed, so a truncated,
//! reordered or altered file is refused, never half-restored).
//!
//! Two kinds, told apart by their magic:
//! ```text
//! data: "THINGSAFE-BACKUP" ‖ version (1) ‖ key id (32) ‖ nonce prefix (19) ‖ sealed chunks
//! keys: "THINGSAFE-KEYBAK" ‖ version (1) ‖ key id (32) ‖ created ms (8, big-endian)
//!       ‖ nonce prefix (19) ‖ sealed chunks (each authenticated with the header before
//!       the prefix as associated data, so the creation time cannot be altered unseen)
//! ```
//! A data backup is sealed with the installation's backup key, a system key in the key
//! store wrapped by the master key: rotating the master key re-wraps it, so older data
//! backups stay readable. A key-store backup cannot be sealed with a key that lives only
//! inside the key store (restoring it needs the key), so it is sealed with a key derived
//! from the master key (HKDF-SHA256): it opens with the master key that was in force when
//! it was made, and nothing else. The key id (a keyed hash) tells a backup of another
//! installation, or of another master key, apart from a damaged one.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, OsRng, rand_core::RngCore};
use thiserror::Error;

use crate::{MasterKey, Vault};

const DATA_MAGIC: &[u8; 16] = b"THINGSAFE-BACKUP";
const KEYS_MAGIC: &[u8; 16] = b"THINGSAFE-KEYBAK";
const VERSION: u8 = 1;
pub(crate) const CHUNK: usize = 64 * 1024;
pub(crate) const TAG: usize = 16;
pub(crate) const NONCE_PREFIX: usize = 19;
/// Magic, version and key id: what both kinds start with.
const COMMON: usize = 16 + 1 + 32;
const HEADER: usize = COMMON + NONCE_PREFIX;
const KEYS_HEADER: usize = COMMON + 8 + NONCE_PREFIX;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// File name endings: data backups, key-store backups, and files still being written
/// (or left by an interrupted run), which are never good backups.
pub const DATA_EXTENSION: &str = "tsbackup";
pub const KEYS_EXTENSION: &str = "tskeys";
pub const PARTIAL_SUFFIX: &str = ".partial";

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("this is not a Thingsafe backup file")]
    NotABackup,
    #[error(
        "this backup was written by a newer Thingsafe (format version {0}); use a newer thingsafe to restore it"
    )]
    UnsupportedVersion(u8),
    #[error(
        "this backup was made by another installation (its backup key is not in this key store): restore it with that installation's keys.db and master key"
    )]
    ForeignKey,
    #[error(
        "this key-store backup was sealed under the master key with fingerprint {made_under}, and the master key given has fingerprint {given}: use the master key that was in force when it was made (docs/backups.md, after a rotation)"
    )]
    OtherMasterKey { made_under: String, given: String },
    #[error("this is a {found} backup, not a {expected} backup{hint}")]
    WrongKind {
        found: BackupKind,
        expected: BackupKind,
        hint: &'static str,
    },
    #[error("the backup is damaged: {0}")]
    Damaged(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What a backup file holds: the database, or the key store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackupKind {
    Data,
    Keys,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Data => "data",
            BackupKind::Keys => "keys",
        }
    }
}

impl std::fmt::Display for BackupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The readable start of a backup file; nothing in it is trusted until the chunks open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupHeader {
    pub kind: BackupKind,
    pub key_id: [u8; 32],
    /// Key-store backups only: when the key store was copied.
    pub created_ms: Option<i64>,
}

/// Reads and checks a header; returns it with its bytes (the associated data of key-store
/// backups' chunks) and the nonce prefix.
fn read_header(
    input: &mut impl Read,
) -> Result<(BackupHeader, Vec<u8>, [u8; NONCE_PREFIX]), BackupError> {
    let mut common = [0u8; COMMON];
    input
        .read_exact(&mut common)
        .map_err(|_| BackupError::NotABackup)?;
    let kind = match &common[..16] {
        m if m == DATA_MAGIC => BackupKind::Data,
        m if m == KEYS_MAGIC => BackupKind::Keys,
        _ => return Err(BackupError::NotABackup),
    };
    if common[16] != VERSION {
        return Err(BackupError::UnsupportedVersion(common[16]));
    }
    let key_id: [u8; 32] = common[17..COMMON].try_into().expect("32 bytes");
    let mut header_bytes = common.to_vec();
    let damaged = |_| BackupError::Damaged("the file ends inside its header");
    let created_ms = match kind {
        BackupKind::Data => None,
        BackupKind::Keys => {
            let mut created = [0u8; 8];
            input.read_exact(&mut created).map_err(damaged)?;
            header_bytes.extend_from_slice(&created);
            Some(i64::from_be_bytes(created))
        }
    };
    let mut prefix = [0u8; NONCE_PREFIX];
    input.read_exact(&mut prefix).map_err(damaged)?;
    Ok((
        BackupHeader {
            kind,
            key_id,
            created_ms,
        },
        header_bytes,
        prefix,
    ))
}

/// The header of the backup file at `path`.
pub fn read_backup_header(path: &Path) -> Result<BackupHeader, BackupError> {
    let mut file = std::fs::File::open(path)?;
    Ok(read_header(&mut file)?.0)
}

fn expect_kind(header: &BackupHeader, expected: BackupKind) -> Result<(), BackupError> {
    if header.kind == expected {
        return Ok(());
    }
    Err(BackupError::WrongKind {
        found: header.kind,
        expected,
        hint: match header.kind {
            BackupKind::Keys => ": restore it with `thingsafe restore --keys`",
            BackupKind::Data => ": restore it with `thingsafe restore` (without --keys)",
        },
    })
}

/// Compresses `input` and writes it sealed with `key` after `header` (whose bytes before
/// the nonce prefix are `aad`).
fn seal_stream(
    key: &[u8; 32],
    header: &[u8],
    aad: &[u8],
    mut input: impl Read,
    output: impl Write,
    mut progress: impl FnMut(u64),
) -> Result<(), BackupError> {
    let prefix = &header[header.len() - NONCE_PREFIX..];
    let mut sealer = Sealer {
        out: output,
        encryptor: Some(EncryptorBE32::from_aead(
            XChaCha20Poly1305::new(key.into()),
            prefix.into(),
        )),
        aad: aad.to_vec(),
        buffer: Vec::with_capacity(CHUNK + TAG),
    };
    sealer.out.write_all(header)?;
    let mut deflate = flate2::write::DeflateEncoder::new(sealer, flate2::Compression::fast());
    let mut buf = vec![0u8; CHUNK];
    let mut consumed = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        deflate.write_all(&buf[..n])?;
        consumed += n as u64;
        progress(consumed);
    }
    deflate.finish()?.finish()
}

pub(crate) fn open_stream(
    key: &[u8; 32],
    aad: Vec<u8>,
    prefix: &[u8; NONCE_PREFIX],
    input: BufReader<impl Read>,
    mut output: impl Write,
) -> Result<u64, BackupError> {
    let opener = Opener {
        input,
        decryptor: Some(DecryptorBE32::from_aead(
            XChaCha20Poly1305::new(key.into()),
            prefix.as_slice().into(),
        )),
        aad,
        plain: Vec::new(),
        at: 0,
    };
    let mut inflate = flate2::read::DeflateDecoder::new(opener);
    io::copy(&mut inflate, &mut output).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => {
            BackupError::Damaged("a chunk failed authentication, or the stream was cut")
        }
        _ => BackupError::Io(e),
    })
}

pub(crate) fn nonce_prefix() -> [u8; NONCE_PREFIX] {
    let mut prefix = [0u8; NONCE_PREFIX];
    OsRng.fill_bytes(&mut prefix);
    prefix
}

impl Vault {
    fn backup_key_id(&self) -> [u8; 32] {
        self.blind_index("backup.key-id", b"thingsafe")
    }

    /// Compresses and seals `input` (a database snapshot) into `output` (header first).
    /// `progress` is told the number of input bytes consumed so far.
    pub fn seal_backup(
        &self,
        input: impl Read,
        output: impl Write,
        progress: impl FnMut(u64),
    ) -> Result<(), BackupError> {
        let mut header = DATA_MAGIC.to_vec();
        header.push(VERSION);
        header.extend_from_slice(&self.backup_key_id());
        header.extend_from_slice(&nonce_prefix());
        debug_assert_eq!(header.len(), HEADER);
        seal_stream(
            self.backup_key.bytes(),
            &header,
            &[],
            input,
            output,
            progress,
        )
    }

    /// Checks and opens a data backup made by [`Vault::seal_backup`], writing the content
    /// to `output`. Nothing is trusted until its chunk is authenticated.
    pub fn open_backup(&self, input: impl Read, output: impl Write) -> Result<u64, BackupError> {
        let mut input = BufReader::with_capacity(CHUNK + TAG + 1, input);
        let (header, _, prefix) = read_header(&mut input)?;
        expect_kind(&header, BackupKind::Data)?;
        if header.key_id != self.backup_key_id() {
            return Err(BackupError::ForeignKey);
        }
        open_stream(self.backup_key.bytes(), Vec::new(), &prefix, input, output)
    }

    /// Writes a key-store backup to `output`: a consistent copy of `keys.db` (taken into
    /// `scratch`, removed afterwards), compressed and sealed with a key derived from the
    /// master key; stamped with `now_ms` as its creation time.
    pub fn write_key_backup(
        &self,
        scratch: &Path,
        output: impl Write,
        now_ms: i64,
    ) -> Result<(), BackupError> {
        let result = (|| {
            self.keystore
                .snapshot(scratch)
                .map_err(|e| io::Error::other(e.to_string()))?;
            seal_key_backup(
                &self.master,
                now_ms,
                BufReader::new(std::fs::File::open(scratch)?),
                output,
            )
        })();
        let _ = std::fs::remove_file(scratch);
        result
    }

    /// Whether this installation's keys open `backup` (a header check; complete files only).
    pub fn opens(&self, backup: &BackupFile) -> bool {
        backup.complete
            && match (backup.kind, backup.key_id) {
                (BackupKind::Data, Some(id)) => id == self.backup_key_id(),
                (BackupKind::Keys, Some(id)) => id == self.master.key_backup_id(),
                _ => false,
            }
    }
}

/// Seals a copy of a key store (`input`, a SQLite file) for a key-store backup.
pub fn seal_key_backup(
    master: &MasterKey,
    created_ms: i64,
    input: impl Read,
    output: impl Write,
) -> Result<(), BackupError> {
    let mut header = KEYS_MAGIC.to_vec();
    header.push(VERSION);
    header.extend_from_slice(&master.key_backup_id());
    header.extend_from_slice(&created_ms.to_be_bytes());
    let aad = header.clone();
    header.extend_from_slice(&nonce_prefix());
    debug_assert_eq!(header.len(), KEYS_HEADER);
    seal_stream(
        master.key_backup_key().bytes(),
        &header,
        &aad,
        input,
        output,
        |_| {},
    )
}

/// Checks and opens a key-store backup with `master` (the master key in force when it was
/// made), writing the key store's SQLite file to `output`. Returns the header (its creation
/// time) and the bytes written.
pub fn open_key_backup(
    master: &MasterKey,
    input: impl Read,
    output: impl Write,
) -> Result<(BackupHeader, u64), BackupError> {
    let mut input = BufReader::with_capacity(CHUNK + TAG + 1, input);
    let (header, aad, prefix) = read_header(&mut input)?;
    expect_kind(&header, BackupKind::Keys)?;
    if header.key_id != master.key_backup_id() {
        return Err(BackupError::OtherMasterKey {
            made_under: hex::encode(&header.key_id[..8]),
            given: master.fingerprint(),
        });
    }
    let written = open_stream(master.key_backup_key().bytes(), aad, &prefix, input, output)?;
    Ok((header, written))
}

/// A file in a backup directory that is (or was becoming) a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    pub path: PathBuf,
    pub kind: BackupKind,
    /// False for `*.partial` files: being written, or left by an interrupted run. Never a
    /// good backup; an interrupted key-store copy may still hold keys until pruned.
    pub complete: bool,
    pub size: u64,
    /// Key-store backups: the time in their header (when the key store was copied); else
    /// the file's modification time. In ms since the epoch.
    pub created_ms: i64,
    pub key_id: Option<[u8; 32]>,
}

/// The backups in `dir` (data and key-store, complete and partial), oldest first. Files
/// that are not backups are left out; a missing directory has none.
pub fn list_backups(dir: &Path) -> io::Result<Vec<BackupFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let complete = !name.ends_with(PARTIAL_SUFFIX);
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let header = std::fs::File::open(&path)
            .ok()
            .and_then(|mut f| read_header(&mut f).ok().map(|h| h.0));
        let kind = match (&header, complete) {
            (Some(h), _) => h.kind,
            // A partial file cut before its header, or a scratch copy: its name tells.
            (None, false) if name.contains(&format!(".{KEYS_EXTENSION}")) => BackupKind::Keys,
            (None, false) if name.contains(&format!(".{DATA_EXTENSION}")) => BackupKind::Data,
            (None, _) => continue,
        };
        out.push(BackupFile {
            path,
            kind,
            complete,
            size: meta.len(),
            created_ms: header
                .as_ref()
                .and_then(|h| h.created_ms)
                .unwrap_or(modified_ms),
            key_id: header.map(|h| h.key_id),
        });
    }
    out.sort_by(|a, b| (a.created_ms, &a.path).cmp(&(b.created_ms, &b.path)));
    Ok(out)
}

/// The time (ms since the epoch) by which every key-store backup that may still hold a
/// data key destroyed at `now_ms` has expired: after it, an erasure made now is complete
/// everywhere Thingsafe keeps copies. `key_backups` is the listing of the backup directory
/// ([`list_backups`]; other kinds are ignored), `keys_keep_days` the retention
/// (`backup.keys_keep_days`).
///
/// Each key-store backup expires `keys_keep_days` after its creation; a partial one
/// counts too (an interrupted copy still holds keys). One already past its expiry but not
/// yet pruned counts as expiring now (the next prune, at the latest within the hour in
/// `thingsafe serve`, deletes it). With no key-store backup at all, nothing holds the key
/// and the answer is `now_ms`. Copies taken out of the backup directory by the operator are
/// beyond this count (docs/backups.md).
pub fn key_backups_expire_at(keys_keep_days: u32, key_backups: &[BackupFile], now_ms: i64) -> i64 {
    let keep = i64::from(keys_keep_days) * DAY_MS;
    key_backups
        .iter()
        .filter(|b| b.kind == BackupKind::Keys)
        .map(|b| b.created_ms.saturating_add(keep).max(now_ms))
        .max()
        .unwrap_or(now_ms)
}

/// Deletes the key-store backups in `dir` (complete or partial) older than
/// `keys_keep_days` at `now_ms`; returns the files deleted.
pub fn prune_key_backups(dir: &Path, keys_keep_days: u32, now_ms: i64) -> io::Result<Vec<PathBuf>> {
    let keep = i64::from(keys_keep_days) * DAY_MS;
    let mut deleted = Vec::new();
    for backup in list_backups(dir)? {
        if backup.kind == BackupKind::Keys && backup.created_ms.saturating_add(keep) <= now_ms {
            std::fs::remove_file(&backup.path)?;
            deleted.push(backup.path);
        }
    }
    Ok(deleted)
}

pub(crate) struct Sealer<W: Write> {
    pub(crate) out: W,
    pub(crate) encryptor: Option<EncryptorBE32<XChaCha20Poly1305>>,
    pub(crate) aad: Vec<u8>,
    pub(crate) buffer: Vec<u8>,
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        // A full chunk is sealed only once more data follows: the last chunk (sealed by
        // `finish`) is never a full non-final one.
        while self.buffer.len() > CHUNK {
            let rest = self.buffer.split_off(CHUNK);
            let mut chunk = std::mem::replace(&mut self.buffer, rest);
            self.encryptor
                .as_mut()
                .expect("not finished")
                .encrypt_next_in_place(&self.aad, &mut chunk)
                .map_err(|_| io::Error::other("sealing a backup chunk failed"))?;
            self.out.write_all(&chunk)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Sealer<W> {
    pub(crate) fn finish(mut self) -> Result<(), BackupError> {
        let mut last = std::mem::take(&mut self.buffer);
        self.encryptor
            .take()
            .expect("finished once")
            .encrypt_last_in_place(&self.aad, &mut last)
            .map_err(|_| io::Error::other("sealing the last backup chunk failed"))?;
        self.out.write_all(&last)?;
        self.out.flush()?;
        Ok(())
    }
}

struct Opener<R: Read> {
    input: BufReader<R>,
    decryptor: Option<DecryptorBE32<XChaCha20Poly1305>>,
    aad: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
}

fn damaged() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "backup chunk failed authentication",
    )
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            let Some(decryptor) = self.decryptor.as_mut() else {
                return Ok(0);
            };
            let mut sealed = Vec::with_capacity(CHUNK + TAG);
            (&mut self.input)
                .take((CHUNK + TAG) as u64)
                .read_to_end(&mut sealed)?;
            let last = sealed.len() < CHUNK + TAG || self.input.fill_buf()?.is_empty();
            if last {
                let decryptor = self.decryptor.take().expect("present");
                decryptor
                    .decrypt_last_in_place(&self.aad, &mut sealed)
                    .map_err(|_| damaged())?;
            } else {
                decryptor
                    .decrypt_next_in_place(&self.aad, &mut sealed)
                    .map_err(|_| damaged())?;
            }
            self.plain = sealed;
            self.at = 0;
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    fn vault(dir: &std::path::Path) -> Vault {
        let (master, _) = MasterKey::load_or_create(dir, None).unwrap();
        Vault::open(dir, master).unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    fn seal(v: &Vault, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        v.seal_backup(data, &mut out, |_| {}).unwrap();
        out
    }

    #[test]
    fn backups_round_trip_at_every_size_around_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        for len in [
            0,
            1,
            1000,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK,
            1_000_000,
        ] {
            let data = sample(len);
            let sealed = seal(&v, &data);
            let mut opened = Vec::new();
            assert_eq!(
                v.open_backup(sealed.as_slice(), &mut opened).unwrap(),
                len as u64,
                "len {len}"
            );
            assert_eq!(opened, data, "len {len}");
        }
    }

    #[test]
    fn truncated_altered_foreign_and_alien_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        // Random bytes do not compress: several chunks of sealed data.
        let mut data = vec![0u8; 300_000];
        OsRng.fill_bytes(&mut data);
        let sealed = seal(&v, &data);
        let open = |bytes: &[u8]| v.open_backup(bytes, io::sink());
        for cut in [HEADER + 10, HEADER + CHUNK + TAG, sealed.len() - 1] {
            assert!(
                matches!(open(&sealed[..cut]), Err(BackupError::Damaged(_))),
                "cut at {cut}"
            );
        }
        for at in [HEADER + 5, HEADER + CHUNK + TAG + 3, sealed.len() - 3] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x10;
            assert!(
                matches!(open(&flipped), Err(BackupError::Damaged(_))),
                "flip at {at}"
            );
        }
        let mut extra = sealed.clone();
        extra.extend_from_slice(b"more");
        assert!(open(&extra).is_err());
        assert!(matches!(
            open(b"SQLite format 3\0 not a backup at all, not at all"),
            Err(BackupError::NotABackup)
        ));
        let mut newer = sealed.clone();
        newer[16] = 9;
        assert!(matches!(
            open(&newer),
            Err(BackupError::UnsupportedVersion(9))
        ));
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            vault(other.path()).open_backup(sealed.as_slice(), io::sink()),
            Err(BackupError::ForeignKey)
        ));
    }

    fn key_backup(v: &Vault, dir: &std::path::Path, created_ms: i64) -> Vec<u8> {
        let mut out = Vec::new();
        v.write_key_backup(&dir.join("scratch.partial"), &mut out, created_ms)
            .unwrap();
        assert!(
            !dir.join("scratch.partial").exists(),
            "scratch copy removed"
        );
        out
    }

    #[test]
    fn key_backups_open_with_the_master_key_only_and_hold_the_key_store() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let owner = thingsafe_core::Owner::User(thingsafe_core::UserId::random());
        v.ensure_key(owner).unwrap();
        let sealed_value = v.seal(owner, b"aad", b"hello").unwrap();
        let sealed = key_backup(&v, dir.path(), 1_234);
        let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();

        let restored = tempfile::tempdir().unwrap();
        let mut file = Vec::new();
        let (header, _) = open_key_backup(&master, sealed.as_slice(), &mut file).unwrap();
        assert_eq!(header.created_ms, Some(1_234));
        std::fs::write(restored.path().join(crate::KEYSTORE_FILE), &file).unwrap();
        let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
        let back = Vault::open(restored.path(), master).unwrap();
        assert_eq!(back.unseal(owner, b"aad", &sealed_value).unwrap(), b"hello");

        // Another master key is told apart from damage, and names both fingerprints.
        let other = MasterKey::generate();
        match open_key_backup(&other, sealed.as_slice(), io::sink()) {
            Err(BackupError::OtherMasterKey { made_under, given }) => {
                assert_eq!(given, other.fingerprint());
                assert_ne!(made_under, given);
            }
            other => panic!("{other:?}"),
        }
        // The creation time is authenticated: altering it breaks the file.
        let mut altered = sealed.clone();
        altered[COMMON + 7] ^= 1;
        assert!(matches!(
            open_key_backup(&master_of(dir.path()), altered.as_slice(), io::sink()),
            Err(BackupError::Damaged(_))
        ));
        let mut cut = sealed.clone();
        cut.truncate(sealed.len() - 5);
        assert!(matches!(
            open_key_backup(&master_of(dir.path()), cut.as_slice(), io::sink()),
            Err(BackupError::Damaged(_))
        ));
        // Each kind refuses to be restored as the other.
        assert!(matches!(
            v.open_backup(sealed.as_slice(), io::sink()),
            Err(BackupError::WrongKind {
                found: BackupKind::Keys,
                ..
            })
        ));
        let data = seal(&v, b"data");
        assert!(matches!(
            open_key_backup(&master_of(dir.path()), data.as_slice(), io::sink()),
            Err(BackupError::WrongKind {
                found: BackupKind::Data,
                ..
            })
        ));
    }

    fn master_of(dir: &std::path::Path) -> MasterKey {
        MasterKey::load_or_create(dir, None).unwrap().0
    }

    #[test]
    fn listing_expiry_and_pruning_follow_the_key_backups() {
        let dir = tempfile::tempdir().unwrap();
        let v = vault(dir.path());
        let backups = dir.path().join("backups");
        std::fs::create_dir_all(&backups).unwrap();
        let day = DAY_MS;
        let now = 100 * day;
        for (name, created) in [("old.tskeys", now - 8 * day), ("new.tskeys", now - day)] {
            std::fs::write(backups.join(name), key_backup(&v, dir.path(), created)).unwrap();
        }
        std::fs::write(backups.join("d.tsbackup"), seal(&v, b"db")).unwrap();
        std::fs::write(backups.join("e.tsbackup.partial"), b"").unwrap();
        std::fs::write(backups.join("notes.txt"), b"not a backup").unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            backups.join("foreign.tsbackup"),
            seal(&vault(other.path()), b"x"),
        )
        .unwrap();

        let list = list_backups(&backups).unwrap();
        let names: Vec<String> = list
            .iter()
            .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(!names.contains(&"notes.txt".to_string()));
        let find = |n: &str| list.iter().find(|b| b.path.ends_with(n)).unwrap();
        assert!(v.opens(find("old.tskeys")) && v.opens(find("d.tsbackup")));
        assert!(!v.opens(find("foreign.tsbackup")));
        assert!(!find("e.tsbackup.partial").complete);
        assert!(!v.opens(find("e.tsbackup.partial")));
        assert_eq!(find("old.tskeys").created_ms, now - 8 * day);

        // A key destroyed now lives in "new" until it expires; "old" is overdue (now).
        assert_eq!(key_backups_expire_at(7, &list, now), now + 6 * day);
        assert_eq!(key_backups_expire_at(7, &[], now), now);
        // An interrupted key-store copy counts as holding keys.
        let mut partial = find("new.tskeys").clone();
        partial.complete = false;
        partial.created_ms = now;
        assert_eq!(key_backups_expire_at(7, &[partial], now), now + 7 * day);

        let deleted = prune_key_backups(&backups, 7, now).unwrap();
        assert_eq!(deleted, vec![backups.join("old.tskeys")]);
        assert!(backups.join("new.tskeys").exists() && backups.join("d.tsbackup").exists());
        assert_eq!(
            key_backups_expire_at(7, &list_backups(&backups).unwrap(), now),
            now + 6 * day
        );
    }
}
