//! The master key: 32 random bytes, hex-encoded, from `THINGSAFE_MASTER_KEY` or the file
//! `master.key` in the data directory (created with mode 0600 on first start).

use std::fs;
use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use crate::VaultError;
use crate::seal::Key;

pub const MASTER_KEY_FILE: &str = "master.key";

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

    /// The key from `env_value` if given, else from `data_dir/master.key`, created there
    /// (mode 0600) when it does not exist yet. The `bool` says whether it was created.
    pub fn load_or_create(
        data_dir: &Path,
        env_value: Option<&str>,
    ) -> Result<(MasterKey, bool), VaultError> {
        if let Some(text) = env_value {
            return Ok((MasterKey::from_hex(text)?, false));
        }
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
