//! The key store: a SQLite file of its own (`keys.db`), apart from the data and its backups.
//! Each row holds one data key wrapped (sealed) by the master key. Destroying a key
//! overwrites it in place (`secure_delete`) and keeps a tombstone with the time, so that
//! "erased" can be told apart from "never existed".

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::master::MasterKey;
use crate::seal::Key;
use crate::{Result, VaultError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Live,
    Destroyed { at_ms: i64 },
    Absent,
}

pub(crate) struct KeyStore {
    conn: Mutex<Connection>,
    path: String,
}

fn wrap_aad(name: &str) -> Vec<u8> {
    format!("thingsafe/data-key/v1/{name}").into_bytes()
}

impl KeyStore {
    pub(crate) fn open(path: &Path) -> Result<KeyStore> {
        let display = path.display().to_string();
        let err = |source| VaultError::KeyStore {
            path: display.clone(),
            source,
        };
        crate::create_private_file(path)?;
        let conn = Connection::open(path).map_err(err)?;
        // Rollback journal rather than WAL: a destroyed key must not linger in a WAL file;
        // secure_delete zeroes the bytes a destroyed key occupied.
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = FULL;
             PRAGMA secure_delete = ON;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS data_key (
                 name TEXT PRIMARY KEY,
                 wrapped BLOB,
                 created_ms INTEGER NOT NULL,
                 destroyed_ms INTEGER
             );
             CREATE TABLE IF NOT EXISTS keystore_meta (
                 name TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             );",
        )
        .map_err(err)?;
        Ok(KeyStore {
            conn: Mutex::new(conn),
            path: display,
        })
    }

    fn err(&self, source: rusqlite::Error) -> VaultError {
        VaultError::KeyStore {
            path: self.path.clone(),
            source,
        }
    }

    /// Loads a system key, creating it on first use.
    pub(crate) fn system_key(&self, name: &str, master: &MasterKey) -> Result<Key> {
        if let Some(key) = self.load(name, master)? {
            return Ok(key);
        }
        if let KeyState::Destroyed { .. } = self.state(name)? {
            return Err(VaultError::KeyDestroyed(name.to_string(), 0));
        }
        let key = Key::random();
        self.insert(name, &key, master)?;
        Ok(key)
    }

    pub(crate) fn insert(&self, name: &str, key: &Key, master: &MasterKey) -> Result<()> {
        let wrapped = master.0.seal(&wrap_aad(name), key.bytes());
        let conn = self.conn.lock().expect("key store lock");
        conn.execute(
            "INSERT INTO data_key (name, wrapped, created_ms) VALUES (?1, ?2, ?3)",
            params![name, wrapped, thingsafe_core::now_ms()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The opened key, or `None` when there is none (absent or destroyed).
    pub(crate) fn load(&self, name: &str, master: &MasterKey) -> Result<Option<Key>> {
        let conn = self.conn.lock().expect("key store lock");
        let wrapped: Option<Option<Vec<u8>>> = conn
            .query_row(
                "SELECT wrapped FROM data_key WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(Some(wrapped)) = wrapped else {
            return Ok(None);
        };
        let bytes = master
            .0
            .open(&wrap_aad(name), &wrapped)
            .map_err(|_| VaultError::WrongMasterKey(self.path.clone()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| VaultError::Malformed("a data key is 32 bytes"))?;
        Ok(Some(Key::from_bytes(bytes)))
    }

    pub(crate) fn state(&self, name: &str) -> Result<KeyState> {
        let conn = self.conn.lock().expect("key store lock");
        let row: Option<(bool, Option<i64>)> = conn
            .query_row(
                "SELECT wrapped IS NOT NULL, destroyed_ms FROM data_key WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(match row {
            None => KeyState::Absent,
            Some((true, _)) => KeyState::Live,
            Some((false, at)) => KeyState::Destroyed {
                at_ms: at.unwrap_or(0),
            },
        })
    }

    /// The fingerprint of the master key that wraps this store's keys, once recorded.
    pub(crate) fn master_fingerprint(&self) -> Result<Option<String>> {
        let conn = self.conn.lock().expect("key store lock");
        read_master_fingerprint(&conn).map_err(|e| self.err(e))
    }

    pub(crate) fn record_master_fingerprint(&self, master: &MasterKey) -> Result<()> {
        let conn = self.conn.lock().expect("key store lock");
        conn.execute(
            "INSERT OR REPLACE INTO keystore_meta (name, value) VALUES ('master_fingerprint', ?1)",
            [master.fingerprint()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records `value` under `name` unless a value is recorded already; returns the value
    /// in force.
    pub(crate) fn meta_once(&self, name: &str, value: &str) -> Result<String> {
        let conn = self.conn.lock().expect("key store lock");
        conn.execute(
            "INSERT OR IGNORE INTO keystore_meta (name, value) VALUES (?1, ?2)",
            [name, value],
        )
        .map_err(|e| self.err(e))?;
        conn.query_row(
            "SELECT value FROM keystore_meta WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .map_err(|e| self.err(e))
    }

    /// Re-wraps every live key from `old` to `new` and records `new`'s fingerprint, in one
    /// transaction: either all keys are wrapped by `new` (and the store says so) or none
    /// is. Returns how many keys were re-wrapped.
    pub(crate) fn rewrap_all(&self, old: &MasterKey, new: &MasterKey) -> Result<usize> {
        let mut conn = self.conn.lock().expect("key store lock");
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let rows: Vec<(String, Vec<u8>)> = {
            let mut stmt = tx
                .prepare("SELECT name, wrapped FROM data_key WHERE wrapped IS NOT NULL")
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        for (name, wrapped) in &rows {
            let key = old
                .0
                .open(&wrap_aad(name), wrapped)
                .map_err(|_| VaultError::WrongMasterKey(self.path.clone()))?;
            let rewrapped = new.0.seal(&wrap_aad(name), &key);
            tx.execute(
                "UPDATE data_key SET wrapped = ?2 WHERE name = ?1",
                params![name, rewrapped],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO keystore_meta (name, value) VALUES ('master_fingerprint', ?1)",
            [new.fingerprint()],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(rows.len())
    }

    /// A consistent copy of the key store at `dest` (mode 0600), compacted.
    pub(crate) fn snapshot(&self, dest: &Path) -> Result<()> {
        crate::create_private_file(dest)?;
        let conn = self.conn.lock().expect("key store lock");
        conn.backup(rusqlite::MAIN_DB, dest, None)
            .map_err(|e| self.err(e))?;
        drop(conn);
        let copy = Connection::open(dest).map_err(|e| self.err(e))?;
        copy.execute_batch("PRAGMA journal_mode = DELETE; VACUUM;")
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub(crate) fn live_keys(&self) -> Result<usize> {
        let conn = self.conn.lock().expect("key store lock");
        conn.query_row(
            "SELECT count(*) FROM data_key WHERE wrapped IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as usize)
        .map_err(|e| self.err(e))
    }

    /// Every destroyed key's name and time of destruction.
    pub(crate) fn tombstones(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.conn.lock().expect("key store lock");
        let mut stmt = conn
            .prepare("SELECT name, destroyed_ms FROM data_key WHERE destroyed_ms IS NOT NULL")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    pub(crate) fn destroy(&self, name: &str) -> Result<i64> {
        self.destroy_at(name, thingsafe_core::now_ms())
    }

    pub(crate) fn destroy_at(&self, name: &str, now: i64) -> Result<i64> {
        let conn = self.conn.lock().expect("key store lock");
        conn.execute(
            "INSERT INTO data_key (name, wrapped, created_ms, destroyed_ms) VALUES (?1, NULL, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET wrapped = NULL,
                 destroyed_ms = COALESCE(data_key.destroyed_ms, excluded.destroyed_ms)",
            params![name, now],
        )
        .map_err(|e| self.err(e))?;
        let at: i64 = conn
            .query_row(
                "SELECT destroyed_ms FROM data_key WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(at)
    }
}

pub(crate) fn read_master_fingerprint(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'keystore_meta'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    conn.query_row(
        "SELECT value FROM keystore_meta WHERE name = 'master_fingerprint'",
        [],
        |r| r.get(0),
    )
    .optional()
}
