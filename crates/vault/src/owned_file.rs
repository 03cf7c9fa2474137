//! Files sealed for a data owner, such as a tenant's scheduled exports kept for download.
//! A fresh file key, sealed with the owner's data key, heads the file; the content follows
//! as in backups (deflate, then 64 KiB XChaCha20-Poly1305 STREAM chunks). Destroying the
//! owner's key (erasure) makes every such file unreadable, wherever it was copied.
//!
//! ```text
//! "THINGSAFE-OWNED1" ‖ version (1) ‖ sealed file key length (2, big-endian)
//!   ‖ sealed file key ‖ nonce prefix (19) ‖ sealed chunks (authenticated with the header
//!   before the prefix as associated data)
//! ```

use std::io::{self, BufReader, Read, Write};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::EncryptorBE32;
use chacha20poly1305::aead::{KeyInit, OsRng, rand_core::RngCore};
use thingsafe_core::Owner;

use crate::Vault;
use crate::backup::{BackupError, CHUNK, NONCE_PREFIX, Sealer, TAG, nonce_prefix, open_stream};

const MAGIC: &[u8; 16] = b"THINGSAFE-OWNED1";
const VERSION: u8 = 1;

/// Writes a file sealed for its owner; [`OwnedFileWriter::finish`] seals the last chunk
/// (a file not finished is refused when opened).
pub struct OwnedFileWriter<W: Write> {
    deflate: flate2::write::DeflateEncoder<Sealer<W>>,
}

impl<W: Write> Write for OwnedFileWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.deflate.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.deflate.flush()
    }
}

impl<W: Write> OwnedFileWriter<W> {
    pub fn finish(self) -> Result<(), BackupError> {
        self.deflate.finish()?.finish()
    }
}

fn key_aad(owner: Owner, purpose: &str) -> Vec<u8> {
    format!("owned-file/{purpose}/{owner}").into_bytes()
}

fn owner_key_error(e: crate::VaultError) -> BackupError {
    BackupError::Io(io::Error::other(format!(
        "the file's owner key cannot be used: {e}"
    )))
}

impl Vault {
    /// Starts a file sealed for `owner`; `purpose` (e.g. `tenant-export`) binds it to its
    /// use: a file made for one purpose does not open as another.
    pub fn create_owned_file<W: Write>(
        &self,
        owner: Owner,
        purpose: &str,
        mut output: W,
    ) -> Result<OwnedFileWriter<W>, BackupError> {
        let mut file_key = [0u8; 32];
        OsRng.fill_bytes(&mut file_key);
        let sealed_key = self
            .seal(owner, &key_aad(owner, purpose), &file_key)
            .map_err(owner_key_error)?;
        let mut header = MAGIC.to_vec();
        header.push(VERSION);
        header.extend_from_slice(&(sealed_key.len() as u16).to_be_bytes());
        header.extend_from_slice(&sealed_key);
        let aad = header.clone();
        let prefix = nonce_prefix();
        header.extend_from_slice(&prefix);
        output.write_all(&header)?;
        let sealer = Sealer {
            out: output,
            encryptor: Some(EncryptorBE32::from_aead(
                XChaCha20Poly1305::new((&file_key).into()),
                prefix.as_slice().into(),
            )),
            aad,
            buffer: Vec::with_capacity(CHUNK + TAG),
        };
        Ok(OwnedFileWriter {
            deflate: flate2::write::DeflateEncoder::new(sealer, flate2::Compression::fast()),
        })
    }

    /// Opens a file made by [`Vault::create_owned_file`] for the same owner and purpose,
    /// writing its content to `output`; returns the content's length. Refused when the
    /// owner's key is destroyed, or the file is damaged, cut short or someone else's.
    pub fn open_owned_file(
        &self,
        owner: Owner,
        purpose: &str,
        input: impl Read,
        output: impl Write,
    ) -> Result<u64, BackupError> {
        let mut input = BufReader::with_capacity(CHUNK + TAG + 1, input);
        let mut start = [0u8; 19];
        input
            .read_exact(&mut start)
            .map_err(|_| BackupError::Damaged("the file ends inside its header"))?;
        if &start[..16] != MAGIC {
            return Err(BackupError::Damaged(
                "this is not a file sealed by Thingsafe",
            ));
        }
        if start[16] != VERSION {
            return Err(BackupError::UnsupportedVersion(start[16]));
        }
        let len = u16::from_be_bytes([start[17], start[18]]) as usize;
        let mut sealed_key = vec![0u8; len];
        input
            .read_exact(&mut sealed_key)
            .map_err(|_| BackupError::Damaged("the file ends inside its header"))?;
        let file_key: [u8; 32] = self
            .unseal(owner, &key_aad(owner, purpose), &sealed_key)
            .map_err(owner_key_error)?
            .try_into()
            .map_err(|_| BackupError::Damaged("the file key has the wrong length"))?;
        let mut prefix = [0u8; NONCE_PREFIX];
        input
            .read_exact(&mut prefix)
            .map_err(|_| BackupError::Damaged("the file ends inside its header"))?;
        let mut aad = start.to_vec();
        aad.extend_from_slice(&sealed_key);
        open_stream(&file_key, aad, &prefix, input, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thingsafe_core::TenantId;

    fn vault() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(dir.path(), crate::MasterKey::generate()).unwrap();
        (dir, vault)
    }

    fn sealed(vault: &Vault, owner: Owner, content: &[u8]) -> Vec<u8> {
        let mut file = Vec::new();
        let mut writer = vault.create_owned_file(owner, "test", &mut file).unwrap();
        writer.write_all(content).unwrap();
        writer.finish().unwrap();
        file
    }

    #[test]
    fn an_owned_file_opens_for_its_owner_and_purpose_and_never_after_erasure() {
        let (_dir, vault) = vault();
        let owner = Owner::Tenant(TenantId::random());
        let other = Owner::Tenant(TenantId::random());
        vault.ensure_key(owner).unwrap();
        vault.ensure_key(other).unwrap();
        let content: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let file = sealed(&vault, owner, &content);
        assert!(
            !file.windows(16).any(|w| w == &content[4000..4016]),
            "the content is not in the file in the clear"
        );
        let mut out = Vec::new();
        vault
            .open_owned_file(owner, "test", file.as_slice(), &mut out)
            .unwrap();
        assert_eq!(out, content);

        let open = |owner, purpose, bytes: &[u8]| {
            vault
                .open_owned_file(owner, purpose, bytes, &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        assert!(open(other, "test", &file).contains("owner key"));
        assert!(open(owner, "backup", &file).contains("owner key"));
        assert!(open(owner, "test", &file[..file.len() - 10]).contains("damaged"));
        let mut flipped = file.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 1;
        assert!(open(owner, "test", &flipped).contains("damaged"));
        assert!(open(owner, "test", b"not a sealed file at all").contains("damaged"));

        vault.shred(owner).unwrap();
        assert!(
            open(owner, "test", &file).contains("destroyed"),
            "{}",
            open(owner, "test", &file)
        );
    }
}
