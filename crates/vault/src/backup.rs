//! Backup files. A header, then the content compressed (deflate) and sealed as a stream
//! of 64 KiB chunks (XChaCha20-Poly1305 in the STREAM construction: each chunk is
//! authenticated, and their order and the end of the stream are fixed, so a truncated,
//! reordered or altered file is refused, never half-restored).
//!
//! ```text
//! "THINGSAFE-BACKUP" ‖ version (1 byte) ‖ key id (32) ‖ nonce prefix (19) ‖ sealed chunks
//! ```
//! The key is the installation's backup key, a system key in the key store wrapped by the
//! master key: rotating the master key re-wraps it, so older backups stay readable. The key
//! id (a keyed hash) tells a backup of another installation apart from a damaged one.

use std::io::{self, BufRead, BufReader, Read, Write};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, OsRng, rand_core::RngCore};
use thiserror::Error;

use crate::Vault;

const MAGIC: &[u8; 16] = b"THINGSAFE-BACKUP";
const VERSION: u8 = 1;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const NONCE_PREFIX: usize = 19;
const HEADER: usize = MAGIC.len() + 1 + 32 + NONCE_PREFIX;

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
    #[error("the backup is damaged: {0}")]
    Damaged(&'static str),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Vault {
    fn backup_key_id(&self) -> [u8; 32] {
        self.blind_index("backup.key-id", b"thingsafe")
    }

    /// Compresses and seals `input` into `output` (header first). `progress` is told the
    /// number of input bytes consumed so far.
    pub fn seal_backup(
        &self,
        mut input: impl Read,
        output: impl Write,
        mut progress: impl FnMut(u64),
    ) -> Result<(), BackupError> {
        let mut prefix = [0u8; NONCE_PREFIX];
        OsRng.fill_bytes(&mut prefix);
        let mut sealer = Sealer {
            out: output,
            encryptor: Some(EncryptorBE32::from_aead(
                XChaCha20Poly1305::new(self.backup_key.bytes().into()),
                prefix.as_slice().into(),
            )),
            buffer: Vec::with_capacity(CHUNK + TAG),
        };
        sealer.out.write_all(MAGIC)?;
        sealer.out.write_all(&[VERSION])?;
        sealer.out.write_all(&self.backup_key_id())?;
        sealer.out.write_all(&prefix)?;
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

    /// Checks and opens a backup made by [`Vault::seal_backup`], writing the content to
    /// `output`. Nothing is trusted until its chunk is authenticated.
    pub fn open_backup(
        &self,
        input: impl Read,
        mut output: impl Write,
    ) -> Result<u64, BackupError> {
        let mut input = BufReader::with_capacity(CHUNK + TAG + 1, input);
        let mut header = [0u8; HEADER];
        input
            .read_exact(&mut header)
            .map_err(|_| BackupError::NotABackup)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let version = header[MAGIC.len()];
        if version != VERSION {
            return Err(BackupError::UnsupportedVersion(version));
        }
        let key_id = &header[MAGIC.len() + 1..MAGIC.len() + 33];
        if key_id != self.backup_key_id() {
            return Err(BackupError::ForeignKey);
        }
        let prefix = &header[MAGIC.len() + 33..];
        let opener = Opener {
            input,
            decryptor: Some(DecryptorBE32::from_aead(
                XChaCha20Poly1305::new(self.backup_key.bytes().into()),
                prefix.into(),
            )),
            plain: Vec::new(),
            at: 0,
        };
        let mut inflate = flate2::read::DeflateDecoder::new(opener);
        let copied = io::copy(&mut inflate, &mut output).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => {
                BackupError::Damaged("a chunk failed authentication, or the stream was cut")
            }
            _ => BackupError::Io(e),
        })?;
        Ok(copied)
    }
}

struct Sealer<W: Write> {
    out: W,
    encryptor: Option<EncryptorBE32<XChaCha20Poly1305>>,
    buffer: Vec<u8>,
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
                .encrypt_next_in_place(&[], &mut chunk)
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
    fn finish(mut self) -> Result<(), BackupError> {
        let mut last = std::mem::take(&mut self.buffer);
        self.encryptor
            .take()
            .expect("finished once")
            .encrypt_last_in_place(&[], &mut last)
            .map_err(|_| io::Error::other("sealing the last backup chunk failed"))?;
        self.out.write_all(&last)?;
        self.out.flush()?;
        Ok(())
    }
}

struct Opener<R: Read> {
    input: BufReader<R>,
    decryptor: Option<DecryptorBE32<XChaCha20Poly1305>>,
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
                    .decrypt_last_in_place(&[], &mut sealed)
                    .map_err(|_| damaged())?;
            } else {
                decryptor
                    .decrypt_next_in_place(&[], &mut sealed)
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
        newer[MAGIC.len()] = 9;
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
}
