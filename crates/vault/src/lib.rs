//! The vault: where Thingsafe's keys live and how data is sealed with them.
//!
//! ```text
//! master key (data/master.key or THINGSAFE_MASTER_KEY; never stored elsewhere)
//!   └─ wraps every data key in the key store (data/keys.db, a file apart from the data)
//!        ├─ one data key per owner (user, customer, tenant): seals that owner's data
//!        └─ system keys: blind-index key (keyed hashes for lookups), session-signing key,
//!           audit-chain key (the links of the audit log)
//! ```
//!
//! Erasing an owner destroys its data key ([`Vault::shred`]): every sealed copy of its data,
//! wherever it is (database pages, WAL, backups), is unreadable from that moment.

pub mod backup;
mod keystore;
mod master;
mod owned_file;
pub mod password;
mod seal;
pub mod totp;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thingsafe_core::Owner;
use thiserror::Error;

pub use backup::BackupError;
pub use backup::{
    BackupFile, BackupHeader, BackupKind, key_backups_expire_at, list_backups, open_key_backup,
    prune_key_backups,
};
pub use keystore::KeyState;
pub use master::{MASTER_KEY_FILE, MasterKey, NEW_MASTER_KEY_FILE, rotate_master_key};
pub use owned_file::OwnedFileWriter;
use seal::Key;

/// File name of the key store inside the data directory.
pub const KEYSTORE_FILE: &str = "keys.db";

#[derive(Debug, Error)]
pub enum VaultError {
    #[error("the data key of {0} was destroyed (erased at {1} ms): its data can no longer be read")]
    KeyDestroyed(String, i64),
    #[error("no data key exists for {0}")]
    UnknownKey(String),
    #[error("sealed data failed authentication: it was altered, or sealed for another record")]
    Tampered,
    #[error("sealed data is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the master key does not open the key store {0}: is THINGSAFE_MASTER_KEY (or data/master.key) the key this data directory was created with?"
    )]
    WrongMasterKey(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("key store {path}: {source}")]
    KeyStore {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

pub struct Vault {
    keystore: keystore::KeyStore,
    master: MasterKey,
    /// Opened data keys; `None` marks a key known to be destroyed.
    cache: RwLock<HashMap<String, Option<Arc<Key>>>>,
    index_key: Key,
    signing_key: Key,
    backup_key: Key,
    audit_key: Key,
    create_lock: Mutex<()>,
}

impl Vault {
    /// Opens (or creates) the key store in `data_dir` with `master`.
    pub fn open(data_dir: &Path, master: MasterKey) -> Result<Vault> {
        let keystore = keystore::KeyStore::open(&data_dir.join(KEYSTORE_FILE))?;
        let recorded = keystore.master_fingerprint()?;
        if let Some(recorded) = &recorded
            && *recorded != master.fingerprint()
        {
            return Err(VaultError::WrongMasterKey(format!(
                "{} (its keys are wrapped by the master key with fingerprint {recorded}; the one given has fingerprint {})",
                data_dir.join(KEYSTORE_FILE).display(),
                master.fingerprint()
            )));
        }
        let index_key = keystore.system_key("system:blind-index", &master)?;
        let signing_key = keystore.system_key("system:session-signing", &master)?;
        let backup_key = keystore.system_key("system:backup", &master)?;
        let audit_key = keystore.system_key("system:audit-chain", &master)?;
        if recorded.is_none() {
            keystore.record_master_fingerprint(&master)?;
        }
        Ok(Vault {
            keystore,
            master,
            cache: RwLock::new(HashMap::new()),
            index_key,
            signing_key,
            backup_key,
            audit_key,
            create_lock: Mutex::new(()),
        })
    }

    /// Creates the data key of `owner` unless it exists. A destroyed key is never
    /// recreated: an erased owner stays erased.
    pub fn ensure_key(&self, owner: Owner) -> Result<()> {
        let _guard = self.create_lock.lock().expect("vault create lock");
        match self.keystore.state(&owner.key_name())? {
            KeyState::Live => Ok(()),
            KeyState::Destroyed { at_ms } => Err(VaultError::KeyDestroyed(owner.key_name(), at_ms)),
            KeyState::Absent => {
                let key = Key::random();
                self.keystore
                    .insert(&owner.key_name(), &key, &self.master)?;
                self.cache
                    .write()
                    .expect("vault cache")
                    .insert(owner.key_name(), Some(Arc::new(key)));
                Ok(())
            }
        }
    }

    /// Seals `plaintext` for `owner`. `aad` binds the sealed bytes to their place (table,
    /// column, row id): moving them elsewhere makes them fail to open.
    pub fn seal(&self, owner: Owner, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        Ok(self.key(owner)?.seal(aad, plaintext))
    }

    pub fn unseal(&self, owner: Owner, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        self.key(owner)?.open(aad, sealed)
    }

    /// Destroys the data key of `owner` (crypto-shredding). Returns when the key is gone
    /// from the key store file; idempotent.
    pub fn shred(&self, owner: Owner) -> Result<i64> {
        let _guard = self.create_lock.lock().expect("vault create lock");
        let at = self.keystore.destroy(&owner.key_name())?;
        self.cache
            .write()
            .expect("vault cache")
            .insert(owner.key_name(), None);
        Ok(at)
    }

    pub fn key_state(&self, owner: Owner) -> Result<KeyState> {
        self.keystore.state(&owner.key_name())
    }

    /// A keyed hash of `value` for lookups without plaintext (emails, device tokens).
    /// `domain` separates uses, so equal values in two domains hash differently.
    pub fn blind_index(&self, domain: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.index_key.bytes())
            .expect("HMAC takes any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// The fingerprint of the master key in use.
    pub fn master_fingerprint(&self) -> String {
        self.master.fingerprint()
    }

    /// The key of the audit log's links (HMAC): with it in the key store, someone holding
    /// only the database cannot re-compute the chain after changing an event.
    pub fn audit_chain_key(&self) -> &[u8] {
        self.audit_key.bytes()
    }

    /// The first audit event whose link must be keyed: recorded in the key store once, at
    /// the first start with a keyed chain (`since`: the next event's seq then), so that
    /// someone holding only the database cannot pass keyed events off as older plain ones.
    pub fn audit_chain_keyed_from(&self, since: i64) -> Result<i64> {
        let value = self
            .keystore
            .meta_once("audit_chain_keyed_from", &since.to_string())?;
        value.parse().map_err(|_| {
            VaultError::UnknownKey(format!(
                "audit_chain_keyed_from in the key store is not a number: {value:?}"
            ))
        })
    }

    /// The key that signs session (access) tokens.
    pub fn session_signing_key(&self) -> &[u8] {
        self.signing_key.bytes()
    }

    fn key(&self, owner: Owner) -> Result<Arc<Key>> {
        let name = owner.key_name();
        if let Some(entry) = self.cache.read().expect("vault cache").get(&name) {
            return match entry {
                Some(key) => Ok(key.clone()),
                None => Err(self.destroyed_error(&name)),
            };
        }
        let loaded = self.keystore.load(&name, &self.master)?;
        let mut cache = self.cache.write().expect("vault cache");
        match loaded {
            Some(key) => {
                let key = Arc::new(key);
                cache.insert(name, Some(key.clone()));
                Ok(key)
            }
            None => {
                let err = self.destroyed_error(&name);
                if matches!(err, VaultError::KeyDestroyed(..)) {
                    cache.insert(name, None);
                }
                Err(err)
            }
        }
    }

    fn destroyed_error(&self, name: &str) -> VaultError {
        match self.keystore.state(name) {
            Ok(KeyState::Destroyed { at_ms }) => VaultError::KeyDestroyed(name.to_string(), at_ms),
            Ok(_) => VaultError::UnknownKey(name.to_string()),
            Err(e) => e,
        }
    }
}

/// Checks that the key store file at `path` (e.g. one just taken out of a key-store
/// backup) opens with `master`: its recorded fingerprint matches and its system keys
/// unwrap. Returns how many live keys it holds.
pub fn check_key_store(path: &Path, master: &MasterKey) -> Result<usize> {
    let store = keystore::KeyStore::open(path)?;
    if let Some(recorded) = store.master_fingerprint()?
        && recorded != master.fingerprint()
    {
        return Err(VaultError::WrongMasterKey(format!(
            "{} (its keys are wrapped by the master key with fingerprint {recorded}; the one given has fingerprint {})",
            path.display(),
            master.fingerprint()
        )));
    }
    for name in [
        "system:blind-index",
        "system:session-signing",
        "system:backup",
    ] {
        if store.load(name, master)?.is_none() {
            return Err(VaultError::UnknownKey(format!(
                "{name} in {}: not a Thingsafe key store",
                path.display()
            )));
        }
    }
    store.live_keys()
}

/// Destroys in the key store `into` every key that is destroyed in the key store `from`
/// (an erasure made after a key-store backup survives its restore when the current key
/// store is still there to say so). Returns how many live keys of `into` it destroyed.
pub fn carry_over_erasures(from: &Path, into: &Path) -> Result<usize> {
    let tombstones = keystore::KeyStore::open(from)?.tombstones()?;
    let target = keystore::KeyStore::open(into)?;
    let mut destroyed = 0;
    for (name, at_ms) in tombstones {
        match target.state(&name)? {
            KeyState::Destroyed { .. } => {}
            KeyState::Live => {
                destroyed += 1;
                target.destroy_at(&name, at_ms)?;
            }
            KeyState::Absent => {
                target.destroy_at(&name, at_ms)?;
            }
        }
    }
    Ok(destroyed)
}

/// Creates `path` empty with mode 0600 unless it exists, and makes an existing one 0600.
/// Files that hold sealed data or keys are for the server's user alone.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    options.open(path)?;
    Ok(())
}

/// A random secret of `bytes` bytes, URL-safe base64 without padding (tokens, codes).
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A random token from an alphabet that survives copy-paste into shells and firmware
/// (letters and digits only), like ThingsBoard's generated access tokens.
pub fn random_alphanumeric(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
