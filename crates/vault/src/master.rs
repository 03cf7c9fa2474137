//! The master key: 32 random bytes, hex-encoded, from `THINGSAFE_MASTER_KEY` or the file
//! `master.key` in the data directory (created with mode 0600 on first start).

use std::fs;
use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use crate::VaultError;
use crate::seal::Key;

pub const MASTER_KEY_FILE: &str = "master.key";
/// The next master key while a rotation is under way (see [`rotate_master_key`]).
pub const NEW_MASTER_KEY_FILE: &str = "master.key.new";

pub struct MasterKey(pub(crate) Key);

impl MasterKey {
    /// Parses 64 hexadecimal characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<MasterKey, VaultError> {
        let text = Zeroizing::new(text.trim().to_string());
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.as_bytes(), bytes.as_mut()).map_err(|e| {
            VaultError::MasterKey(format!(
                "a master key is 64 hexadecimal characters (32 bytes): {e}"
            ))
        })?;
        Ok(MasterKey(Key::from_bytes(*bytes)))
    }

    pub fn generate() -> MasterKey {
        MasterKey(Key::random())
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.bytes()))
    }

    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, self.0.bytes())
            .expand(purpose.as_bytes(), &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// Names this master key without revealing it: 16 hex characters, shown by rotation,
    /// key-store backups and errors, so that an operator can tell keys apart.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.key_backup_id()[..8])
    }

    /// The id written into key-store backups (and whose start is the fingerprint).
    pub(crate) fn key_backup_id(&self) -> [u8; 32] {
        self.derive("thingsafe/master-key/fingerprint/v1")
    }

    /// The key that seals key-store backups: derived from the master key (HKDF-SHA256),
    /// since a key stored only inside the key store could not open its own backup.
    pub(crate) fn key_backup_key(&self) -> Key {
        Key::from_bytes(self.derive("thingsafe/key-store-backup/v1"))
    }

    /// The key from `env_value` if given, else from `data_dir/master.key`, created there
    /// (mode 0600) when it does not exist yet. The `bool` says whether it was created.
    pub fn load_or_create(
        data_dir: &Path,
        env_value: Option<&str>,
    ) -> Result<(MasterKey, bool), VaultError> {
        if let Some(text) = env_value {
            return Ok((MasterKey::from_hex(text)?, false));
        }
        finish_interrupted_rotation(data_dir)?;
        let path = data_dir.join(MASTER_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                check_permissions(&path)?;
                MasterKey::from_hex(&text)
                    .map(|k| (k, false))
                    .map_err(|e| VaultError::MasterKey(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                write_private(&path, key.to_hex().as_bytes())?;
                Ok((key, true))
            }
            Err(e) => Err(VaultError::MasterKey(format!("{}: {e}", path.display()))),
        }
    }
}

/// Replaces the master key of the key store in `data_dir`: every data key is re-wrapped
/// under a new random master key (the data keys themselves do not change, so the database
/// and its backups stay readable). Returns the new key and how many keys were re-wrapped.
///
/// Crash-safe in three steps. With `key_file` (the key lives in `master.key`):
/// 1. the new key is written to `master.key.new` (0600, synced); `master.key` is untouched;
/// 2. one SQLite transaction re-wraps every key and records the new key's fingerprint in
///    the key store: the commit point;
/// 3. `master.key.new` is renamed over `master.key` (atomic) and the directory synced.
///
/// A crash before 2 commits leaves the old key in force; one after it leaves a key store
/// whose recorded fingerprint is the new key's, and the next load of the master key
/// ([`MasterKey::load_or_create`]) finishes step 3 (or discards `master.key.new` when the
/// store was not re-wrapped). Without `key_file` (THINGSAFE_MASTER_KEY), `announce` is
/// given the new key before the commit (to print it), so it cannot be lost.
pub fn rotate_master_key(
    data_dir: &Path,
    current: &MasterKey,
    key_file: bool,
    announce: impl FnOnce(&MasterKey) -> std::io::Result<()>,
) -> Result<(MasterKey, usize), VaultError> {
    let keys = data_dir.join(crate::KEYSTORE_FILE);
    if !keys.exists() {
        return Err(VaultError::MasterKey(format!(
            "no key store at {}: nothing to re-wrap",
            keys.display()
        )));
    }
    let store = crate::keystore::KeyStore::open(&keys)?;
    if let Some(recorded) = store.master_fingerprint()?
        && recorded != current.fingerprint()
    {
        return Err(VaultError::WrongMasterKey(format!(
            "{} (its keys are wrapped by the master key with fingerprint {recorded}; the one given has fingerprint {})",
            keys.display(),
            current.fingerprint()
        )));
    }
    let new = MasterKey::generate();
    let staged = data_dir.join(NEW_MASTER_KEY_FILE);
    if key_file {
        let _ = fs::remove_file(&staged);
        write_private(&staged, new.to_hex().as_bytes())?;
    }
    announce(&new)?;
    let rewrapped = store.rewrap_all(current, &new)?;
    if key_file {
        fs::rename(&staged, data_dir.join(MASTER_KEY_FILE))?;
        sync_dir(data_dir)?;
    }
    Ok((new, rewrapped))
}

/// Completes or undoes a rotation a crash interrupted: `master.key.new` becomes the master
/// key if the key store records its fingerprint (the re-wrap committed), else it goes.
fn finish_interrupted_rotation(data_dir: &Path) -> Result<(), VaultError> {
    let staged = data_dir.join(NEW_MASTER_KEY_FILE);
    let Ok(text) = fs::read_to_string(&staged) else {
        return Ok(());
    };
    let committed = match MasterKey::from_hex(&text) {
        Ok(new) => {
            let keys = data_dir.join(crate::KEYSTORE_FILE);
            keys.exists()
                && rusqlite::Connection::open_with_flags(
                    &keys,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .and_then(|c| crate::keystore::read_master_fingerprint(&c))
                .map_err(|e| VaultError::KeyStore {
                    path: keys.display().to_string(),
                    source: e,
                })? == Some(new.fingerprint())
        }
        Err(_) => false,
    };
    if committed {
        fs::rename(&staged, data_dir.join(MASTER_KEY_FILE))?;
        sync_dir(data_dir)?;
    } else {
        fs::remove_file(&staged)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    let _ = dir;
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), VaultError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| VaultError::MasterKey(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(VaultError::MasterKey(format!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), VaultError> {
    Ok(())
}
