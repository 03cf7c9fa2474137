//! The embedded backend: SQLite in the data directory (`thingsafe.db`, WAL mode).

mod aggregates;
mod audit;
pub mod backup;
mod backup_runs;
mod breaches;
mod classification;
mod consent;
mod disclosures;
mod erasure;
mod flush;
mod oauth2;
mod password_reset;
mod persistent_rpc;
mod pool;
mod privacy;
mod provisioning;
mod record_retention;
mod requests;
mod retention;
mod rows;
mod suspensions;
mod telemetry;
mod tenant_exports;
mod totp;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use thingsafe_core::{
    Authority, Customer, CustomerId, Device, DeviceCredentials, DeviceId, Owner, Page, PageRequest,
    SessionId, Tenant, TenantId, TimestampMs, User, UserId, now_ms,
};
use thingsafe_vault::Vault;

use crate::{
    Change, LoginFailure, LoginRecord, NewDevice, NewUser, Result, Scope, Store, StoreError,
    TelemetryQuery,
};
use pool::{Readers, Writer};
use rows::{CustomerRow, DeviceRow, TenantRow, UserRow, conflict, id_text};
use thingsafe_core::payload::{Point, Value};
use thingsafe_core::{Attribute, AttributeScope};

/// File name of the database inside the data directory.
pub const DATA_FILE: &str = "thingsafe.db";

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_gateways.sql"),
    include_str!("../../migrations/sqlite/0003_privacy.sql"),
    include_str!("../../migrations/sqlite/0004_provisioning.sql"),
    include_str!("../../migrations/sqlite/0005_consent_erasure.sql"),
    include_str!("../../migrations/sqlite/0006_backup_runs.sql"),
    include_str!("../../migrations/sqlite/0007_x509_credentials.sql"),
    include_str!("../../migrations/sqlite/0008_tenant_exports.sql"),
    include_str!("../../migrations/sqlite/0009_suspensions.sql"),
    include_str!("../../migrations/sqlite/0010_privacy_requests.sql"),
    include_str!("../../migrations/sqlite/0011_password_reset.sql"),
    include_str!("../../migrations/sqlite/0012_oauth2.sql"),
    include_str!("../../migrations/sqlite/0013_accountability.sql"),
    include_str!("../../migrations/sqlite/0014_totp.sql"),
    include_str!("../../migrations/sqlite/0015_retention_records.sql"),
    include_str!("../../migrations/sqlite/0016_x509_provisioning.sql"),
    include_str!("../../migrations/sqlite/0017_persistent_rpc.sql"),
];

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    vault: Arc<Vault>,
    changes: Arc<crate::feed::ChangeFeed>,
    rpc: Arc<crate::rpc::Mailboxes>,
    /// Persistent RPC status changes, stored in order by `rpc_task`.
    rpc_updates: tokio::sync::mpsc::UnboundedSender<Vec<crate::rpc::Update>>,
    rpc_task: Option<tokio::task::JoinHandle<()>>,
    claims: provisioning::Claims,
    flusher: flush::LogFlusher,
    suspensions: suspensions::Suspensions,
    /// The first audit event whose link must be keyed (recorded in the key store).
    audit_keyed_from: i64,
    /// The policy version in force (0: none published yet), stamped on telemetry batches.
    policy_version: std::sync::atomic::AtomicU32,
    /// The background flush, stopped when the store is dropped.
    flush_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = self.flush_task.take() {
            task.abort();
        }
        if let Some(task) = self.rpc_task.take() {
            task.abort();
        }
    }
}

/// Length of the access tokens of sub-devices created by gateways (ThingsBoard's 20).
const GENERATED_TOKEN_LEN: usize = 20;

/// Changes buffered for slow live subscribers before they are told they lagged.
const CHANGE_BUFFER: usize = 4096;

impl SqliteStore {
    /// Opens (creating and migrating as needed) the database in `data_dir`.
    pub fn open(data_dir: &Path, vault: Arc<Vault>) -> Result<SqliteStore> {
        Self::open_limited(data_dir, vault, None)
    }

    /// [`SqliteStore::open`], refusing writes that would grow the database beyond
    /// `max_bytes` as a full disk is refused ([`StoreError::Full`]).
    pub fn open_limited(
        data_dir: &Path,
        vault: Arc<Vault>,
        max_bytes: Option<u64>,
    ) -> Result<SqliteStore> {
        let path = data_dir.join(DATA_FILE);
        // SQLite gives its -wal and -shm files the mode of the database file.
        thingsafe_vault::create_private_file(&path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let mut conn = Connection::open(&path)?;
        pool::configure(&conn)?;
        migrate(&mut conn)?;
        if let Some(max) = max_bytes {
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page_size.max(1) as u64).max(1);
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        }
        let suspensions = suspensions::Suspensions::load(&conn)?;
        let audit_keyed_from = audit::key_the_chain(&conn, &vault)?;
        let policy_version: Option<u32> =
            conn.query_row("SELECT MAX(version) FROM policy_version", [], |r| r.get(0))?;
        let rpc = Arc::new(crate::rpc::Mailboxes::default());
        persistent_rpc::restore(&conn, &vault, &rpc)?;
        let readers = Readers::open(&path)?;
        let writer = Writer::start(conn);
        let changes = Arc::new(crate::feed::ChangeFeed::new(CHANGE_BUFFER));
        let (rpc_updates, rpc_task) =
            persistent_rpc::start(writer.clone(), vault.clone(), rpc.clone(), changes.clone());
        let flusher = flush::LogFlusher {
            writer: writer.clone(),
            readers: readers.clone(),
            vault: vault.clone(),
            unflushed: Default::default(),
        };
        // Without a runtime (a one-off command) the log is flushed before deletions only.
        let flush_task = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let flusher = flusher.clone();
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(flush::FLUSH_EVERY).await;
                    if let Err(e) = flusher.flush_once().await {
                        tracing::error!(error = %e, "telemetry flush failed; the log keeps the data, retrying");
                    }
                }
            })
        });
        Ok(SqliteStore {
            writer,
            readers,
            vault,
            changes,
            rpc,
            rpc_updates,
            rpc_task,
            claims: provisioning::Claims::default(),
            flusher,
            suspensions,
            audit_keyed_from,
            policy_version: policy_version.unwrap_or(0).into(),
            flush_task,
        })
    }

    fn seal(&self, owner: Owner, field: &str, row: &str, value: &str) -> Result<Vec<u8>> {
        Ok(self
            .vault
            .seal(owner, rows::aad(field, row).as_bytes(), value.as_bytes())?)
    }

    fn seal_opt(
        &self,
        owner: Owner,
        field: &str,
        row: &str,
        value: Option<&str>,
    ) -> Result<Option<Vec<u8>>> {
        value.map(|v| self.seal(owner, field, row, v)).transpose()
    }

    /// Takes up to `limit` commands: announces each as handed over (`RpcDelivered`, what
    /// lightweight callers wait for) and stores persistent ones as SENT.
    fn rpc_take_up_to(&self, device: DeviceId, limit: usize) -> Vec<crate::RpcRequest> {
        let (taken, updates) = self.rpc.take(device, now_ms(), limit);
        self.store_rpc_updates(updates);
        for r in &taken {
            self.changes.send(Change::RpcDelivered { device, id: r.id });
        }
        taken
    }

    fn email_index(&self, email: &str) -> Vec<u8> {
        self.vault
            .blind_index("user.email", email.trim().to_lowercase().as_bytes())
            .to_vec()
    }

    fn token_index(&self, token: &str) -> Vec<u8> {
        self.vault
            .blind_index("device.token", token.as_bytes())
            .to_vec()
    }

    /// The lookup key of a device certificate: its own hash domain, apart from tokens.
    fn certificate_index(&self, fingerprint: &str) -> Vec<u8> {
        self.vault
            .blind_index("device.x509", fingerprint.as_bytes())
            .to_vec()
    }

    /// The device whose credentials have this lookup key.
    async fn device_by_credentials_index(&self, index: Vec<u8>) -> Result<Option<Device>> {
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM device d JOIN device_credentials k ON k.device_id = d.id
                         WHERE k.token_index = ?1",
                        DeviceRow::qualified("d")
                    ),
                    [index],
                    DeviceRow::read,
                )
                .optional()?)
            })
            .await?;
        match row {
            None => Ok(None),
            Some(row) => skip_shredded(row.open(&self.vault)).transpose(),
        }
    }

    /// What `device_credentials` holds for `credentials`: kind, lookup key, secret text.
    fn credentials_row<'a>(
        &self,
        credentials: &'a DeviceCredentials,
    ) -> (&'static str, Vec<u8>, &'a str) {
        match credentials {
            DeviceCredentials::AccessToken(token) => {
                ("ACCESS_TOKEN", self.token_index(token), token)
            }
            DeviceCredentials::X509Certificate { fingerprint, pem } => {
                ("X509_CERTIFICATE", self.certificate_index(fingerprint), pem)
            }
        }
    }

    fn refresh_index(&self, token: &str) -> Vec<u8> {
        self.vault
            .blind_index("session.refresh", token.as_bytes())
            .to_vec()
    }

    fn activation_index(&self, token: &str) -> Vec<u8> {
        self.vault
            .blind_index("user.activation", token.as_bytes())
            .to_vec()
    }

    fn device_name_index(&self, tenant: TenantId, name: &str) -> Vec<u8> {
        let mut value = tenant.as_uuid().as_bytes().to_vec();
        value.extend_from_slice(name.as_bytes());
        self.vault.blind_index("device.name", &value).to_vec()
    }

    /// Seals a new user's fields and returns the row's values in column order.
    fn sealed_user(&self, id: UserId, user: &NewUser) -> Result<SealedUser> {
        let owner = Owner::User(id);
        self.vault.ensure_key(owner)?;
        let row = id.to_string();
        let birth = user.birth_date.map(|d| d.to_string());
        Ok(SealedUser {
            email_index: self.email_index(&user.email),
            email: self.seal(owner, "user.email", &row, user.email.trim())?,
            first_name: self.seal_opt(
                owner,
                "user.first_name",
                &row,
                user.first_name.as_deref(),
            )?,
            last_name: self.seal_opt(owner, "user.last_name", &row, user.last_name.as_deref())?,
            birth_date: self.seal_opt(owner, "user.birth_date", &row, birth.as_deref())?,
            password: self.seal_opt(owner, "user.password", &row, user.password_hash.as_deref())?,
        })
    }

    /// Creates a tenant and its first administrator in one transaction; `also` runs in the
    /// same transaction after the inserts (a failure there undoes them).
    pub(super) async fn sign_up_with(
        &self,
        tenant_title: &str,
        admin: NewUser,
        also: impl FnOnce(&Connection, UserId) -> Result<()> + Send + 'static,
    ) -> Result<(Tenant, User)> {
        let tenant_id = TenantId::random();
        let user_id = UserId::random();
        self.vault.ensure_key(Owner::Tenant(tenant_id))?;
        let title = self.seal(
            Owner::Tenant(tenant_id),
            "tenant.title",
            &tenant_id.to_string(),
            tenant_title,
        )?;
        let sealed = self.sealed_user(user_id, &admin)?;
        let created = now_ms();
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO tenant (id, title, created_ms) VALUES (?1, ?2, ?3)",
                    params![tenant_id.to_string(), title, created],
                )?;
                insert_user(
                    c,
                    user_id,
                    Some(tenant_id),
                    None,
                    Authority::TenantAdmin,
                    &sealed,
                    created,
                )?;
                also(c, user_id)
            })
            .await?;
        let tenant = Tenant {
            id: tenant_id,
            title: tenant_title.to_string(),
            created_ms: created,
        };
        Ok((tenant, self.user_by_id(user_id).await?))
    }

    fn open_users(&self, rows: Vec<UserRow>) -> Result<Vec<User>> {
        rows.into_iter()
            .filter_map(|r| skip_shredded(r.open(&self.vault)))
            .collect()
    }

    async fn user_by_id(&self, id: UserId) -> Result<User> {
        let row = self
            .readers
            .read(move |c| {
                c.query_row(
                    &format!("SELECT {} FROM app_user WHERE id = ?1", UserRow::COLUMNS),
                    [id.to_string()],
                    UserRow::read,
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        row.open(&self.vault)
    }

    /// Shreds data keys after the rows that used them are deleted.
    fn shred_all(&self, owners: impl IntoIterator<Item = Owner>) -> Result<()> {
        for owner in owners {
            self.vault.shred(owner)?;
        }
        Ok(())
    }

    /// Seals a new device's fields (with its tenant's key) for [`insert_device`].
    fn sealed_device(&self, tenant: TenantId, device: &NewDevice) -> Result<SealedDevice> {
        let id = DeviceId::random();
        let owner = Owner::Tenant(tenant);
        let row = id.to_string();
        let (credentials_type, token_index, secret) = self.credentials_row(&device.credentials);
        Ok(SealedDevice {
            id,
            tenant,
            name_index: self.device_name_index(tenant, &device.name),
            name: self.seal(owner, "device.name", &row, &device.name)?,
            device_type: device.device_type.clone(),
            label: self.seal_opt(owner, "device.label", &row, device.label.as_deref())?,
            credentials_type,
            token_index,
            credentials: self.seal(owner, "device.credentials", &row, secret)?,
            created_ms: now_ms(),
        })
    }

    /// Creates a device of `tenant`, flagged as a gateway or not.
    async fn new_device(
        &self,
        tenant: TenantId,
        device: NewDevice,
        gateway: bool,
    ) -> Result<Device> {
        let sealed = self.sealed_device(tenant, &device)?;
        let (id, created) = (sealed.id, sealed.created_ms);
        self.writer
            .write(move |c| insert_device(c, &sealed, None, gateway, None))
            .await?;
        Ok(Device {
            id,
            tenant_id: tenant,
            customer_id: None,
            name: device.name,
            device_type: device.device_type,
            label: device.label,
            created_ms: created,
            gateway,
            gateway_id: None,
            device_profile_id: None,
        })
    }

    /// A device found by name for `gateway`: its sub-device, or a refusal.
    fn open_child(&self, gateway: &Device, row: DeviceRow) -> Result<Device> {
        let device =
            skip_shredded(row.open(&self.vault)).unwrap_or(Err(StoreError::NotFound("device")))?;
        if device.gateway_id != Some(gateway.id) {
            return Err(StoreError::Conflict(
                "a device with this name already exists in the tenant and is not a sub-device of this gateway"
                    .into(),
            ));
        }
        Ok(device)
    }
}

/// A new device's row, its personal fields sealed.
struct SealedDevice {
    id: DeviceId,
    tenant: TenantId,
    name_index: Vec<u8>,
    name: Vec<u8>,
    device_type: String,
    label: Option<Vec<u8>>,
    credentials_type: &'static str,
    token_index: Vec<u8>,
    credentials: Vec<u8>,
    created_ms: TimestampMs,
}

fn insert_device(
    c: &Connection,
    s: &SealedDevice,
    customer: Option<CustomerId>,
    gateway: bool,
    gateway_id: Option<DeviceId>,
) -> Result<()> {
    let row = s.id.to_string();
    c.execute(
        "INSERT INTO device (id, tenant_id, customer_id, name_index, name, device_type, label,
             created_ms, gateway, gateway_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            row,
            s.tenant.to_string(),
            id_text(customer),
            s.name_index,
            s.name,
            s.device_type,
            s.label,
            s.created_ms,
            gateway,
            id_text(gateway_id)
        ],
    )
    .map_err(|e| conflict(e, "a device with this name already exists"))?;
    c.execute(
        "INSERT INTO device_credentials (device_id, credentials_type, token_index, credentials)
         VALUES (?1, ?2, ?3, ?4)",
        params![row, s.credentials_type, s.token_index, s.credentials],
    )
    .map_err(|e| conflict(e, "this access token is already used by another device"))?;
    Ok(())
}

struct SealedUser {
    email_index: Vec<u8>,
    email: Vec<u8>,
    first_name: Option<Vec<u8>>,
    last_name: Option<Vec<u8>>,
    birth_date: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
}

fn insert_user(
    c: &Connection,
    id: UserId,
    tenant: Option<TenantId>,
    customer: Option<CustomerId>,
    authority: Authority,
    s: &SealedUser,
    created_ms: TimestampMs,
) -> Result<()> {
    c.execute(
        "INSERT INTO app_user (id, tenant_id, customer_id, authority, email_index, email,
             first_name, last_name, birth_date, password, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id.to_string(),
            tenant.map(|t| t.to_string()),
            customer.map(|c| c.to_string()),
            authority.as_str(),
            s.email_index,
            s.email,
            s.first_name,
            s.last_name,
            s.birth_date,
            s.password,
            created_ms
        ],
    )
    .map_err(|e| conflict(e, "an account with this email address already exists"))?;
    Ok(())
}

/// Rows whose owner was erased (key destroyed, purge pending) are invisible, not errors.
fn skip_shredded<T>(r: Result<T>) -> Option<Result<T>> {
    match r {
        Err(StoreError::Vault(thingsafe_vault::VaultError::KeyDestroyed(..))) => None,
        other => Some(other),
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {current}, newer than this build knows ({}): use a newer thingsafe",
            MIGRATIONS.len()
        )));
    }
    if current == MIGRATIONS.len() {
        return Ok(());
    }
    // SQLite's way to remake a table (a changed CHECK constraint): foreign keys off while
    // the old table is dropped (else its rows' ON DELETE actions fire), checked before
    // each migration commits. The pragma has no effect inside a transaction.
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = (|| {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(StoreError::Backend(format!(
                    "schema migration {} leaves rows of {table} pointing at nothing",
                    i + 1
                )));
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    })();
    conn.pragma_update(None, "foreign_keys", true)?;
    migrated
}

/// The tenant whose tenant-level rows this scope may change: only a tenant scope may.
fn whole_tenant(scope: &Scope) -> Result<TenantId> {
    match scope {
        Scope::Tenant(t) => Ok(*t),
        Scope::Customer { .. } => Err(StoreError::Forbidden(
            "customer users cannot change what belongs to the tenant".into(),
        )),
        Scope::System => scope.tenant(),
    }
}

/// The customer a listing is confined to: a customer user's own (asking for another is
/// `NotFound`), else the one asked for, if any.
fn narrowed_customer(scope: &Scope, asked: Option<CustomerId>) -> Result<Option<CustomerId>> {
    match (scope.customer(), asked) {
        (Some(own), Some(asked)) if own != asked => Err(StoreError::NotFound("customer")),
        (Some(own), _) => Ok(Some(own)),
        (None, asked) => Ok(asked),
    }
}

fn sort_newest_first<T>(items: &mut [T], key: impl Fn(&T) -> (TimestampMs, String)) {
    items.sort_by_key(|item| std::cmp::Reverse(key(item)));
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.readers
            .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .map(|_| ())
    }

    async fn sysadmin_exists(&self) -> Result<bool> {
        self.readers
            .read(|c| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM app_user WHERE authority = 'SYS_ADMIN')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    async fn create_sysadmin(&self, user: NewUser) -> Result<User> {
        let id = UserId::random();
        let sealed = self.sealed_user(id, &user)?;
        let created = now_ms();
        self.writer
            .write(move |c| insert_user(c, id, None, None, Authority::SysAdmin, &sealed, created))
            .await?;
        self.user_by_id(id).await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.readers
            .read(move |c| {
                Ok(
                    c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                        .optional()?,
                )
            })
            .await
    }

    async fn set_meta(&self, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        let key = key.to_string();
        self.writer
            .write(move |c| {
                match value {
                    Some(v) => c.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        params![key, v],
                    )?,
                    None => c.execute("DELETE FROM meta WHERE key = ?1", [key])?,
                };
                Ok(())
            })
            .await
    }

    async fn tenants(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Tenant>> {
        if *scope != Scope::System {
            return Err(StoreError::Forbidden(
                "only the system administrator lists tenants".into(),
            ));
        }
        let rows = self
            .readers
            .read(|c| {
                let mut stmt = c.prepare(&format!("SELECT {} FROM tenant", TenantRow::COLUMNS))?;
                let rows = stmt
                    .query_map([], TenantRow::read)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut tenants = rows
            .into_iter()
            .filter_map(|r| skip_shredded(r.open(&self.vault)))
            .collect::<Result<Vec<_>>>()?;
        tenants.retain(|t| page.matches(&t.title));
        sort_newest_first(&mut tenants, |t| (t.created_ms, t.id.to_string()));
        Ok(page.apply(tenants))
    }

    async fn sign_up(&self, tenant_title: &str, admin: NewUser) -> Result<(Tenant, User)> {
        self.sign_up_with(tenant_title, admin, |_, _| Ok(())).await
    }

    async fn login_record(&self, email: &str) -> Result<Option<LoginRecord>> {
        let index = self.email_index(email);
        let found = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {}, password, failed_logins, locked_until_ms FROM app_user WHERE email_index = ?1",
                        UserRow::COLUMNS
                    ),
                    [index],
                    |r| {
                        let n = UserRow::COLUMN_COUNT;
                        Ok((
                            UserRow::read(r)?,
                            r.get::<_, Option<Vec<u8>>>(n)?,
                            r.get::<_, u32>(n + 1)?,
                            r.get::<_, Option<i64>>(n + 2)?,
                        ))
                    },
                )
                .optional()?)
            })
            .await?;
        let Some((row, password, failed_logins, locked_until_ms)) = found else {
            return Ok(None);
        };
        let user = match skip_shredded(row.open(&self.vault)) {
            None => return Ok(None),
            Some(user) => user?,
        };
        let password_hash = password
            .map(|p| {
                rows::open_text(
                    &self.vault,
                    Owner::User(user.id),
                    "user.password",
                    &user.id.to_string(),
                    &p,
                )
            })
            .transpose()?;
        Ok(Some(LoginRecord {
            user,
            password_hash,
            failed_logins,
            locked_until_ms,
        }))
    }

    async fn record_login_failure(
        &self,
        user: UserId,
        max_failures: u32,
        lock_ms: i64,
    ) -> Result<LoginFailure> {
        self.writer
            .write(move |c| {
                let id = user.to_string();
                let failures: u32 = c.query_row(
                    "UPDATE app_user SET failed_logins = failed_logins + 1 WHERE id = ?1
                     RETURNING failed_logins",
                    [&id],
                    |r| r.get(0),
                )?;
                if failures >= max_failures {
                    let until_ms = now_ms() + lock_ms;
                    c.execute(
                        "UPDATE app_user SET failed_logins = 0, locked_until_ms = ?2 WHERE id = ?1",
                        params![id, until_ms],
                    )?;
                    Ok(LoginFailure::Locked { until_ms })
                } else {
                    Ok(LoginFailure::Counted { failures })
                }
            })
            .await
    }

    async fn record_login_success(&self, user: UserId) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE app_user SET failed_logins = 0, locked_until_ms = NULL WHERE id = ?1",
                    [user.to_string()],
                )?;
                Ok(())
            })
            .await
    }

    async fn create_session(
        &self,
        user: UserId,
        refresh_token: &str,
        expires_ms: TimestampMs,
    ) -> Result<SessionId> {
        let id = SessionId::random();
        let index = self.refresh_index(refresh_token);
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO session (id, user_id, refresh_index, created_ms, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        id.to_string(),
                        user.to_string(),
                        index,
                        now_ms(),
                        expires_ms
                    ],
                )?;
                Ok(id)
            })
            .await
    }

    async fn session_user(&self, session: SessionId) -> Result<Option<User>> {
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM session s JOIN app_user u ON u.id = s.user_id
                         WHERE s.id = ?1 AND s.revoked_ms IS NULL AND s.expires_ms > ?2",
                        UserRow::qualified("u")
                    ),
                    params![session.to_string(), now_ms()],
                    UserRow::read,
                )
                .optional()?)
            })
            .await?;
        match row {
            None => Ok(None),
            Some(row) => skip_shredded(row.open(&self.vault)).transpose(),
        }
    }

    async fn rotate_refresh_token(
        &self,
        old: &str,
        new: &str,
        expires_ms: TimestampMs,
    ) -> Result<Option<(SessionId, User)>> {
        let old = self.refresh_index(old);
        let new = self.refresh_index(new);
        let found = self
            .writer
            .write(move |c| {
                Ok(c.query_row(
                    "UPDATE session SET refresh_index = ?2, expires_ms = ?3
                     WHERE refresh_index = ?1 AND revoked_ms IS NULL AND expires_ms > ?4
                     RETURNING id, user_id",
                    params![old, new, expires_ms, now_ms()],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?)
            })
            .await?;
        let Some((session, user)) = found else {
            return Ok(None);
        };
        let session: SessionId = rows::parse_id(&session)?;
        match self.user_by_id(rows::parse_id(&user)?).await {
            Ok(user) => Ok(Some((session, user))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(StoreError::Vault(thingsafe_vault::VaultError::KeyDestroyed(..))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn revoke_session(&self, session: SessionId) -> Result<()> {
        self.writer
            .write(move |c| {
                c.execute(
                    "UPDATE session SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                    params![session.to_string(), now_ms()],
                )?;
                Ok(())
            })
            .await
    }

    async fn user_by_activation_token(&self, activation_token: &str) -> Result<Option<User>> {
        let index = self.activation_index(activation_token);
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM app_user WHERE activation_index = ?1 AND password IS NULL",
                        UserRow::COLUMNS
                    ),
                    [index],
                    UserRow::read,
                )
                .optional()?)
            })
            .await?;
        match row {
            None => Ok(None),
            Some(row) => skip_shredded(row.open(&self.vault)).transpose(),
        }
    }

    async fn activate_user(&self, activation_token: &str, password_hash: &str) -> Result<User> {
        let index = self.activation_index(activation_token);
        let id = self
            .user_by_activation_token(activation_token)
            .await?
            .ok_or(StoreError::NotFound("activation token"))?
            .id;
        let password = self.seal(
            Owner::User(id),
            "user.password",
            &id.to_string(),
            password_hash,
        )?;
        let changed = self
            .writer
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE app_user SET password = ?2, activation_index = NULL
                     WHERE id = ?1 AND activation_index = ?3 AND password IS NULL",
                    params![id.to_string(), password, index],
                )?)
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound("activation token"));
        }
        self.user_by_id(id).await
    }

    async fn start_password_reset(
        &self,
        email: &str,
        token: &str,
        expires_ms: TimestampMs,
    ) -> Result<Option<User>> {
        password_reset::start(self, email, token, expires_ms).await
    }

    async fn password_reset_user(&self, token: &str) -> Result<Option<User>> {
        password_reset::user(self, token).await
    }

    async fn reset_password(&self, token: &str, password_hash: &str) -> Result<User> {
        password_reset::complete(self, token, password_hash).await
    }

    async fn set_totp(&self, user: UserId, secret: Option<&[u8]>, enabled: bool) -> Result<()> {
        totp::set(self, user, secret, enabled).await
    }

    async fn totp(&self, user: UserId) -> Result<Option<crate::TotpState>> {
        totp::state(self, user).await
    }

    async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool> {
        totp::use_step(self, user, step).await
    }

    async fn create_customer(&self, scope: &Scope, title: &str) -> Result<Customer> {
        let tenant = whole_tenant(scope)?;
        let id = CustomerId::random();
        self.vault.ensure_key(Owner::Customer(id))?;
        let sealed = self.seal(
            Owner::Customer(id),
            "customer.title",
            &id.to_string(),
            title,
        )?;
        let created = now_ms();
        self.writer
            .write(move |c| {
                c.execute(
                    "INSERT INTO customer (id, tenant_id, title, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![id.to_string(), tenant.to_string(), sealed, created],
                )?;
                Ok(())
            })
            .await?;
        Ok(Customer {
            id,
            tenant_id: tenant,
            title: title.to_string(),
            created_ms: created,
        })
    }

    async fn customer(&self, scope: &Scope, id: CustomerId) -> Result<Customer> {
        let tenant = scope.tenant()?;
        let only = scope.customer();
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM customer WHERE id = ?1 AND tenant_id = ?2 AND (?3 IS NULL OR id = ?3)",
                        CustomerRow::COLUMNS
                    ),
                    params![id.to_string(), tenant.to_string(), id_text(only)],
                    CustomerRow::read,
                )
                .optional()?)
            })
            .await?
            .ok_or(StoreError::NotFound("customer"))?;
        skip_shredded(row.open(&self.vault)).unwrap_or(Err(StoreError::NotFound("customer")))
    }

    async fn customers(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Customer>> {
        let tenant = scope.tenant()?;
        let only = scope.customer();
        let rows = self
            .readers
            .read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {} FROM customer WHERE tenant_id = ?1 AND (?2 IS NULL OR id = ?2)",
                    CustomerRow::COLUMNS
                ))?;
                let rows = stmt
                    .query_map(
                        params![tenant.to_string(), id_text(only)],
                        CustomerRow::read,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut customers = rows
            .into_iter()
            .filter_map(|r| skip_shredded(r.open(&self.vault)))
            .collect::<Result<Vec<_>>>()?;
        customers.retain(|c| page.matches(&c.title));
        sort_newest_first(&mut customers, |c| (c.created_ms, c.id.to_string()));
        Ok(page.apply(customers))
    }

    async fn rename_customer(
        &self,
        scope: &Scope,
        id: CustomerId,
        title: &str,
    ) -> Result<Customer> {
        let tenant = whole_tenant(scope)?;
        // Sealing needs the customer's key, which only exists for a customer of some tenant;
        // the update below checks that it is this tenant's.
        let sealed = self
            .seal(
                Owner::Customer(id),
                "customer.title",
                &id.to_string(),
                title,
            )
            .map_err(|e| match e {
                StoreError::Vault(_) => StoreError::NotFound("customer"),
                other => other,
            })?;
        self.writer
            .write(move |c| {
                let changed = c.execute(
                    "UPDATE customer SET title = ?3 WHERE id = ?1 AND tenant_id = ?2",
                    params![id.to_string(), tenant.to_string(), sealed],
                )?;
                if changed == 0 {
                    return Err(StoreError::NotFound("customer"));
                }
                Ok(())
            })
            .await?;
        self.customer(scope, id).await
    }

    async fn delete_customer(&self, scope: &Scope, id: CustomerId) -> Result<()> {
        let tenant = whole_tenant(scope)?;
        let users = self
            .writer
            .write(move |c| {
                let mut stmt = c.prepare(
                    "SELECT u.id FROM app_user u JOIN customer k ON k.id = u.customer_id
                     WHERE k.id = ?1 AND k.tenant_id = ?2",
                )?;
                let users = stmt
                    .query_map(params![id.to_string(), tenant.to_string()], |r| {
                        r.get::<_, String>(0)
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let deleted = c.execute(
                    "DELETE FROM customer WHERE id = ?1 AND tenant_id = ?2",
                    params![id.to_string(), tenant.to_string()],
                )?;
                if deleted == 0 {
                    return Err(StoreError::NotFound("customer"));
                }
                users
                    .iter()
                    .map(|u| rows::parse_id::<UserId>(u))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        self.shred_all(
            users
                .into_iter()
                .map(Owner::User)
                .chain([Owner::Customer(id)]),
        )
    }

    async fn create_user(&self, scope: &Scope, user: NewUser) -> Result<User> {
        let tenant = whole_tenant(scope)?;
        let customer = match (user.authority, user.customer_id) {
            (Authority::TenantAdmin, None) => None,
            (Authority::CustomerUser, Some(c)) => Some(c),
            (Authority::CustomerUser, None) => {
                return Err(StoreError::Invalid(
                    "a CUSTOMER_USER needs the customerId of its customer".into(),
                ));
            }
            (Authority::TenantAdmin, Some(_)) => {
                return Err(StoreError::Invalid(
                    "a TENANT_ADMIN belongs to the tenant, not to a customer: leave customerId out"
                        .into(),
                ));
            }
            (Authority::SysAdmin, _) => {
                return Err(StoreError::Forbidden(
                    "a tenant cannot create system administrators".into(),
                ));
            }
        };
        let id = UserId::random();
        let sealed = self.sealed_user(id, &user)?;
        let authority = user.authority;
        let created = now_ms();
        self.writer
            .write(move |c| {
                if let Some(customer) = customer {
                    let known: bool = c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM customer WHERE id = ?1 AND tenant_id = ?2)",
                        params![customer.to_string(), tenant.to_string()],
                        |r| r.get(0),
                    )?;
                    if !known {
                        return Err(StoreError::NotFound("customer"));
                    }
                }
                insert_user(c, id, Some(tenant), customer, authority, &sealed, created)
            })
            .await?;
        self.user_by_id(id).await
    }

    async fn user(&self, scope: &Scope, id: UserId) -> Result<User> {
        let tenant = scope.tenant()?;
        let only = scope.customer();
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM app_user
                         WHERE id = ?1 AND tenant_id = ?2 AND (?3 IS NULL OR customer_id = ?3)",
                        UserRow::COLUMNS
                    ),
                    params![id.to_string(), tenant.to_string(), id_text(only)],
                    UserRow::read,
                )
                .optional()?)
            })
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        skip_shredded(row.open(&self.vault)).unwrap_or(Err(StoreError::NotFound("user")))
    }

    async fn users(
        &self,
        scope: &Scope,
        customer: Option<CustomerId>,
        page: &PageRequest,
    ) -> Result<Page<User>> {
        let tenant = scope.tenant()?;
        let customer = narrowed_customer(scope, customer)?;
        let rows = self
            .readers
            .read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {} FROM app_user WHERE tenant_id = ?1 AND (?2 IS NULL OR customer_id = ?2)",
                    UserRow::COLUMNS
                ))?;
                let rows = stmt
                    .query_map(params![tenant.to_string(), id_text(customer)], UserRow::read)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut users = self.open_users(rows)?;
        users.retain(|u| page.matches(&u.email));
        sort_newest_first(&mut users, |u| (u.created_ms, u.id.to_string()));
        Ok(page.apply(users))
    }

    async fn delete_user(&self, scope: &Scope, id: UserId) -> Result<()> {
        let tenant = whole_tenant(scope)?;
        self.writer
            .write(move |c| {
                let deleted = c.execute(
                    "DELETE FROM app_user WHERE id = ?1 AND tenant_id = ?2",
                    params![id.to_string(), tenant.to_string()],
                )?;
                if deleted == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            })
            .await?;
        self.shred_all([Owner::User(id)])
    }

    async fn set_activation_token(&self, scope: &Scope, id: UserId, token: &str) -> Result<()> {
        let tenant = whole_tenant(scope)?;
        let index = self.activation_index(token);
        self.writer
            .write(move |c| {
                let has_password: Option<bool> = c
                    .query_row(
                        "SELECT password IS NOT NULL FROM app_user WHERE id = ?1 AND tenant_id = ?2",
                        params![id.to_string(), tenant.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?;
                match has_password {
                    None => Err(StoreError::NotFound("user")),
                    Some(true) => Err(StoreError::Conflict(
                        "this user is already active (has set a password)".into(),
                    )),
                    Some(false) => {
                        c.execute(
                            "UPDATE app_user SET activation_index = ?2 WHERE id = ?1",
                            params![id.to_string(), index],
                        )?;
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn create_device(&self, scope: &Scope, device: NewDevice) -> Result<Device> {
        self.new_device(whole_tenant(scope)?, device, false).await
    }

    async fn device(&self, scope: &Scope, id: DeviceId) -> Result<Device> {
        let tenant = scope.tenant()?;
        let only = scope.customer();
        let row = self
            .readers
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {} FROM device
                         WHERE id = ?1 AND tenant_id = ?2 AND (?3 IS NULL OR customer_id = ?3)",
                        DeviceRow::COLUMNS
                    ),
                    params![id.to_string(), tenant.to_string(), id_text(only)],
                    DeviceRow::read,
                )
                .optional()?)
            })
            .await?
            .ok_or(StoreError::NotFound("device"))?;
        skip_shredded(row.open(&self.vault)).unwrap_or(Err(StoreError::NotFound("device")))
    }

    async fn devices(
        &self,
        scope: &Scope,
        customer: Option<CustomerId>,
        page: &PageRequest,
    ) -> Result<Page<Device>> {
        let tenant = scope.tenant()?;
        let customer = narrowed_customer(scope, customer)?;
        let rows = self
            .readers
            .read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {} FROM device WHERE tenant_id = ?1 AND (?2 IS NULL OR customer_id = ?2)",
                    DeviceRow::COLUMNS
                ))?;
                let rows = stmt
                    .query_map(params![tenant.to_string(), id_text(customer)], DeviceRow::read)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let mut devices = rows
            .into_iter()
            .filter_map(|r| skip_shredded(r.open(&self.vault)))
            .collect::<Result<Vec<_>>>()?;
        devices.retain(|d| page.matches(&d.name));
        sort_newest_first(&mut devices, |d| (d.created_ms, d.id.to_string()));
        Ok(page.apply(devices))
    }

    async fn devices_last_activity(
        &self,
        scope: &Scope,
    ) -> Result<std::collections::HashMap<DeviceId, TimestampMs>> {
        let tenant = scope.tenant()?;
        let customer = scope.customer();
        let rows = self
            .readers
            .read(move |c| {
                // The log has no device index; it holds only what the last flush left.
                let mut stmt = c.prepare(
                    "SELECT d.id, MAX(t.ts) FROM device d
                     JOIN (SELECT device_id, ts FROM telemetry_latest
                           UNION ALL SELECT device_id, ts_max FROM telemetry_log) t
                       ON t.device_id = d.id
                     WHERE d.tenant_id = ?1 AND (?2 IS NULL OR d.customer_id = ?2)
                     GROUP BY d.id",
                )?;
                let rows = stmt
                    .query_map(params![tenant.to_string(), id_text(customer)], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, ts)| Some((DeviceId(id.parse().ok()?), ts)))
            .collect())
    }

    async fn update_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        name: &str,
        device_type: &str,
        label: Option<&str>,
    ) -> Result<Device> {
        let tenant = whole_tenant(scope)?;
        let owner = Owner::Tenant(tenant);
        let row = id.to_string();
        let name_index = self.device_name_index(tenant, name);
        let sealed_name = self.seal(owner, "device.name", &row, name)?;
        let sealed_label = self.seal_opt(owner, "device.label", &row, label)?;
        let device_type = device_type.to_string();
        self.writer
            .write(move |c| {
                let changed = c
                    .execute(
                        "UPDATE device SET name_index = ?3, name = ?4, device_type = ?5, label = ?6
                         WHERE id = ?1 AND tenant_id = ?2",
                        params![
                            row,
                            tenant.to_string(),
                            name_index,
                            sealed_name,
                            device_type,
                            sealed_label
                        ],
                    )
                    .map_err(|e| conflict(e, "a device with this name already exists"))?;
                if changed == 0 {
                    return Err(StoreError::NotFound("device"));
                }
                Ok(())
            })
            .await?;
        self.device(scope, id).await
    }

    async fn delete_device(&self, scope: &Scope, id: DeviceId) -> Result<()> {
        let tenant = whole_tenant(scope)?;
        self.writer
            .write(move |c| {
                let deleted = c.execute(
                    "DELETE FROM device WHERE id = ?1 AND tenant_id = ?2",
                    params![id.to_string(), tenant.to_string()],
                )?;
                if deleted == 0 {
                    return Err(StoreError::NotFound("device"));
                }
                c.execute(
                    "DELETE FROM suspension WHERE kind = 'device' AND target = ?1",
                    [id.to_string()],
                )?;
                Ok(())
            })
            .await?;
        suspensions::forget_device(self, id);
        self.rpc.forget_device(id);
        Ok(())
    }

    async fn device_credentials(&self, scope: &Scope, id: DeviceId) -> Result<DeviceCredentials> {
        let tenant = scope.tenant()?;
        let only = scope.customer();
        let (kind, sealed): (String, Vec<u8>) = self
            .readers
            .read(move |c| {
                c.query_row(
                    "SELECT k.credentials_type, k.credentials
                     FROM device_credentials k JOIN device d ON d.id = k.device_id
                     WHERE d.id = ?1 AND d.tenant_id = ?2 AND (?3 IS NULL OR d.customer_id = ?3)",
                    params![id.to_string(), tenant.to_string(), id_text(only)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or(StoreError::NotFound("device"))
            })
            .await?;
        let secret = rows::open_text(
            &self.vault,
            Owner::Tenant(tenant),
            "device.credentials",
            &id.to_string(),
            &sealed,
        )?;
        match kind.as_str() {
            "X509_CERTIFICATE" => DeviceCredentials::x509_certificate(&secret).map_err(|e| {
                StoreError::Backend(format!("stored certificate of device {id}: {e}"))
            }),
            _ => Ok(DeviceCredentials::AccessToken(secret)),
        }
    }

    async fn set_device_credentials(
        &self,
        scope: &Scope,
        id: DeviceId,
        credentials: DeviceCredentials,
    ) -> Result<()> {
        let tenant = whole_tenant(scope)?;
        let (kind, token_index, secret) = self.credentials_row(&credentials);
        let sealed = self.seal(
            Owner::Tenant(tenant),
            "device.credentials",
            &id.to_string(),
            secret,
        )?;
        let taken = match credentials {
            DeviceCredentials::AccessToken(_) => {
                "this access token is already used by another device"
            }
            DeviceCredentials::X509Certificate { .. } => {
                "this certificate is already the credentials of another device"
            }
        };
        self.writer
            .write(move |c| {
                let changed = c
                    .execute(
                        "UPDATE device_credentials
                         SET credentials_type = ?3, token_index = ?4, credentials = ?5
                         WHERE device_id = (SELECT id FROM device WHERE id = ?1 AND tenant_id = ?2)",
                        params![id.to_string(), tenant.to_string(), kind, token_index, sealed],
                    )
                    .map_err(|e| conflict(e, taken))?;
                if changed == 0 {
                    return Err(StoreError::NotFound("device"));
                }
                Ok(())
            })
            .await
    }

    async fn assign_device(
        &self,
        scope: &Scope,
        id: DeviceId,
        customer: Option<CustomerId>,
    ) -> Result<Device> {
        let tenant = whole_tenant(scope)?;
        self.writer
            .write(move |c| {
                if let Some(customer) = customer {
                    let known: bool = c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM customer WHERE id = ?1 AND tenant_id = ?2)",
                        params![customer.to_string(), tenant.to_string()],
                        |r| r.get(0),
                    )?;
                    if !known {
                        return Err(StoreError::NotFound("customer"));
                    }
                }
                let changed = c.execute(
                    "UPDATE device SET customer_id = ?3 WHERE id = ?1 AND tenant_id = ?2",
                    params![id.to_string(), tenant.to_string(), id_text(customer)],
                )?;
                if changed == 0 {
                    return Err(StoreError::NotFound("device"));
                }
                Ok(())
            })
            .await?;
        self.device(scope, id).await
    }

    async fn device_by_token(&self, token: &str) -> Result<Option<Device>> {
        self.device_by_credentials_index(self.token_index(token))
            .await
    }

    async fn device_by_certificate(&self, fingerprint: &str) -> Result<Option<Device>> {
        self.device_by_credentials_index(self.certificate_index(fingerprint))
            .await
    }

    async fn append_telemetry(&self, device: &Device, points: Vec<Point>) -> Result<()> {
        self.insert_telemetry(device, points).await
    }

    async fn save_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        attributes: Vec<(String, Value)>,
    ) -> Result<()> {
        self.upsert_attributes(device, scope, attributes).await
    }

    async fn remove_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        keys: Vec<String>,
    ) -> Result<()> {
        self.delete_attributes(device, scope, keys).await
    }

    async fn device_attributes(
        &self,
        device: &Device,
        scope: AttributeScope,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Attribute>> {
        self.read_attributes(device, scope, keys).await
    }

    async fn device_latest(
        &self,
        device: &Device,
        keys: Option<Vec<String>>,
    ) -> Result<Vec<Point>> {
        self.read_latest(device, keys).await
    }

    async fn device_telemetry(&self, device: &Device, query: TelemetryQuery) -> Result<Vec<Point>> {
        let stamped = self.read_telemetry(device, query).await?;
        Ok(stamped.into_iter().map(|(p, _)| p).collect())
    }

    async fn device_telemetry_stamped(
        &self,
        device: &Device,
        query: TelemetryQuery,
    ) -> Result<Vec<(Point, Option<u32>)>> {
        self.read_telemetry(device, query).await
    }

    async fn delete_telemetry(
        &self,
        device: &Device,
        keys: Vec<String>,
        start_ms: TimestampMs,
        end_ms: TimestampMs,
        rewrite_latest: bool,
    ) -> Result<usize> {
        self.remove_telemetry(device, keys, start_ms, end_ms, rewrite_latest)
            .await
    }

    fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    fn device_changes(&self, device: DeviceId) -> tokio::sync::broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe_device(device)
    }

    fn rpc_submit(
        &self,
        device: &Device,
        method: String,
        params: serde_json::Value,
        oneway: bool,
        expires_ms: TimestampMs,
    ) -> crate::RpcRequest {
        let request = self
            .rpc
            .submit(device.id, method, params, oneway, expires_ms);
        self.changes.send(Change::RpcWaiting { device: device.id });
        request
    }

    fn rpc_take(&self, device: DeviceId) -> Vec<crate::RpcRequest> {
        self.rpc_take_up_to(device, usize::MAX)
    }

    fn rpc_take_one(&self, device: DeviceId) -> Option<crate::RpcRequest> {
        self.rpc_take_up_to(device, 1).into_iter().next()
    }

    fn rpc_delivered(&self, device: DeviceId, id: u32) {
        if let Some(update) = self.rpc.delivered(device, id) {
            self.store_rpc_updates(vec![update]);
        }
    }

    fn rpc_respond(&self, device: DeviceId, id: u32, response: serde_json::Value) {
        if let Some(update) = self.rpc.respond(device, id, &response) {
            self.store_rpc_updates(vec![update]);
        }
        self.changes.send(Change::RpcResponse {
            device,
            id,
            response,
        });
    }

    async fn rpc_persist(
        &self,
        device: &Device,
        rpc: crate::NewPersistentRpc,
    ) -> Result<crate::PersistentRpc> {
        persistent_rpc::persist(self, device, rpc).await
    }

    async fn persistent_rpc(
        &self,
        scope: &Scope,
        id: thingsafe_core::RpcId,
    ) -> Result<crate::PersistentRpc> {
        persistent_rpc::get(self, scope, id).await
    }

    async fn persistent_rpcs(
        &self,
        scope: &Scope,
        device: DeviceId,
        status: Option<crate::RpcStatus>,
        sort: crate::RpcSort,
        descending: bool,
        page: &PageRequest,
    ) -> Result<Page<crate::PersistentRpc>> {
        persistent_rpc::list(self, scope, device, status, sort, descending, page).await
    }

    async fn delete_persistent_rpc(&self, scope: &Scope, id: thingsafe_core::RpcId) -> Result<()> {
        persistent_rpc::delete(self, scope, id).await
    }

    // --- gateways ---

    async fn create_gateway(&self, scope: &Scope, device: NewDevice) -> Result<Device> {
        self.new_device(whole_tenant(scope)?, device, true).await
    }

    async fn gateway_child(
        &self,
        gateway: &Device,
        name: &str,
        device_type: &str,
    ) -> Result<Device> {
        let tenant = gateway.tenant_id;
        let name_index = self.device_name_index(tenant, name);
        let by_name = format!(
            "SELECT {} FROM device WHERE tenant_id = ?1 AND name_index = ?2",
            DeviceRow::COLUMNS
        );
        // Most of the time the sub-device is there already: one read.
        let (query, index) = (by_name.clone(), name_index.clone());
        let found = self
            .readers
            .read(move |c| {
                Ok(
                    c.query_row(&query, params![tenant.to_string(), index], DeviceRow::read)
                        .optional()?,
                )
            })
            .await?;
        if let Some(row) = found {
            return self.open_child(gateway, row);
        }
        let new = NewDevice {
            name: name.to_string(),
            device_type: device_type.to_string(),
            label: None,
            credentials: DeviceCredentials::AccessToken(thingsafe_vault::random_alphanumeric(
                GENERATED_TOKEN_LEN,
            )),
        };
        let sealed = self.sealed_device(tenant, &new)?;
        let (id, created, gateway_id) = (sealed.id, sealed.created_ms, gateway.id);
        // Looked up again in the writer: another message may have created it meanwhile.
        let outcome = self
            .writer
            .write(move |c| {
                let current: Option<(bool, Option<String>)> = c
                    .query_row(
                        "SELECT gateway, customer_id FROM device WHERE id = ?1 AND tenant_id = ?2",
                        params![gateway_id.to_string(), tenant.to_string()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let customer: Option<CustomerId> = match current {
                    Some((true, customer)) => {
                        customer.as_deref().map(rows::parse_id).transpose()?
                    }
                    _ => {
                        return Err(StoreError::Forbidden(
                            "only a device flagged as a gateway may create sub-devices".into(),
                        ));
                    }
                };
                let existing = c
                    .query_row(
                        &by_name,
                        params![tenant.to_string(), sealed.name_index],
                        DeviceRow::read,
                    )
                    .optional()?;
                if existing.is_none() {
                    insert_device(c, &sealed, customer, false, Some(gateway_id))?;
                }
                Ok((existing, customer))
            })
            .await?;
        match outcome {
            (Some(row), _) => self.open_child(gateway, row),
            (None, customer) => {
                tracing::info!(device = %id, gateway = %gateway_id, tenant = %tenant, "sub-device created by its gateway");
                Ok(Device {
                    id,
                    tenant_id: tenant,
                    customer_id: customer,
                    name: new.name,
                    device_type: new.device_type,
                    label: None,
                    created_ms: created,
                    gateway: false,
                    gateway_id: Some(gateway_id),
                    device_profile_id: None,
                })
            }
        }
    }

    // --- privacy policy ---

    async fn publish_policy(
        &self,
        policy: &thingsafe_core::policy::Canonical,
    ) -> Result<(thingsafe_core::policy::PolicyVersion, bool)> {
        let published = privacy::publish(self, policy).await?;
        self.policy_version
            .store(published.0.version, std::sync::atomic::Ordering::Relaxed);
        Ok(published)
    }

    async fn policy_versions(&self) -> Result<Vec<thingsafe_core::policy::PolicyVersion>> {
        privacy::versions(self).await
    }

    async fn policy_content(&self, version: u32) -> Result<Option<String>> {
        privacy::content(self, version).await
    }

    async fn sign_up_accepting_policy(
        &self,
        tenant_title: &str,
        admin: NewUser,
        policy_version: u32,
    ) -> Result<(Tenant, User)> {
        privacy::sign_up_accepting(self, tenant_title, admin, policy_version, Vec::new()).await
    }

    async fn accepted_policy_version(&self, user: UserId) -> Result<Option<u32>> {
        privacy::accepted_version(self, user).await
    }

    async fn accept_policy_version(
        &self,
        user: UserId,
        version: u32,
        entry: crate::ConsentRecord,
    ) -> Result<()> {
        privacy::accept_version(self, user, version, entry).await
    }

    // --- consent ledger and erasure ---

    async fn sign_up_with_consents(
        &self,
        tenant_title: &str,
        admin: NewUser,
        policy_version: u32,
        consents: Vec<crate::ConsentRecord>,
    ) -> Result<(Tenant, User)> {
        privacy::sign_up_accepting(self, tenant_title, admin, policy_version, consents).await
    }

    async fn record_consents(
        &self,
        subject: crate::ConsentSubject,
        consents: Vec<crate::ConsentRecord>,
    ) -> Result<()> {
        consent::record(self, subject, consents).await
    }

    async fn consent_history(
        &self,
        subject: crate::ConsentSubject,
    ) -> Result<Vec<crate::ConsentRecord>> {
        consent::history(self, subject).await
    }

    async fn sessions_of(&self, user: UserId) -> Result<Vec<crate::SessionRecord>> {
        consent::sessions_of(self, user).await
    }

    async fn erase_account(&self, user: UserId) -> Result<crate::Erasure> {
        erasure::erase(self, user).await
    }

    async fn save_erasure_receipt(&self, erasure: &str, receipt: &str) -> Result<()> {
        erasure::save_receipt(self, erasure, receipt).await
    }

    async fn erasure_receipt(&self, erasure: &str) -> Result<Option<String>> {
        erasure::receipt(self, erasure).await
    }

    async fn expire_telemetry(
        &self,
        tenant: TenantId,
        before_ms: TimestampMs,
        aggregate: bool,
    ) -> Result<u64> {
        retention::expire_telemetry(self, tenant, before_ms, aggregate).await
    }

    async fn telemetry_aggregates(
        &self,
        key: &str,
        from_ms: TimestampMs,
        to_ms: TimestampMs,
    ) -> Result<Vec<crate::HourlyAggregate>> {
        aggregates::read(self, key.to_string(), from_ms, to_ms).await
    }

    async fn tenant_retention(&self, scope: &Scope) -> Result<Option<u32>> {
        retention::tenant_retention(self, scope).await
    }

    async fn set_tenant_retention(&self, scope: &Scope, telemetry_days: Option<u32>) -> Result<()> {
        retention::set_tenant_retention(self, scope, telemetry_days).await
    }

    async fn retention_settings(&self) -> Result<Vec<(TenantId, Option<u32>)>> {
        retention::settings(self).await
    }

    async fn record_sweep(&self, sweep: &crate::Sweep) -> Result<()> {
        retention::record(self, sweep).await
    }

    async fn sweeps(&self, tenant: Option<TenantId>, limit: usize) -> Result<Vec<crate::Sweep>> {
        retention::sweeps(self, tenant, limit).await
    }

    async fn expire_records(
        &self,
        cuts: &crate::RecordCuts,
    ) -> Result<std::collections::BTreeMap<String, u64>> {
        record_retention::expire(self, cuts).await
    }

    async fn purge_erased(&self, max_rows: usize) -> Result<usize> {
        erasure::purge(self, max_rows).await
    }

    async fn reapply_erasures(&self) -> Result<crate::Reapplied> {
        erasure::reapply(self).await
    }

    async fn tenant_export_schedule(
        &self,
        scope: &Scope,
    ) -> Result<Option<crate::TenantExportSchedule>> {
        tenant_exports::schedule(self, scope).await
    }

    async fn set_tenant_export_schedule(
        &self,
        scope: &Scope,
        schedule: Option<crate::TenantExportSchedule>,
    ) -> Result<()> {
        tenant_exports::set_schedule(self, scope, schedule).await
    }

    async fn due_tenant_exports(
        &self,
        now_ms: TimestampMs,
        every_ms: Option<i64>,
    ) -> Result<Vec<(TenantId, crate::TenantExportSchedule)>> {
        tenant_exports::due(self, now_ms, every_ms).await
    }

    async fn start_tenant_export(&self, tenant: TenantId, id: &str) -> Result<()> {
        tenant_exports::start(self, tenant, id).await
    }

    async fn finish_tenant_export(
        &self,
        id: &str,
        outcome: std::result::Result<u64, String>,
    ) -> Result<()> {
        tenant_exports::finish(self, id, outcome).await
    }

    async fn interrupt_tenant_exports(&self) -> Result<u64> {
        tenant_exports::interrupt(self).await
    }

    async fn tenant_exports(&self, tenant: Option<TenantId>) -> Result<Vec<crate::TenantExport>> {
        tenant_exports::list(self, tenant).await
    }

    async fn delete_tenant_export(&self, id: &str) -> Result<()> {
        tenant_exports::delete(self, id).await
    }

    async fn suspend(
        &self,
        scope: &Scope,
        target: crate::SuspensionTarget,
        tenant: Option<TenantId>,
        reason: String,
    ) -> Result<crate::Suspension> {
        suspensions::suspend(self, scope, target, tenant, reason).await
    }

    async fn lift_suspension(
        &self,
        scope: &Scope,
        target: crate::SuspensionTarget,
        tenant: Option<TenantId>,
    ) -> Result<()> {
        suspensions::lift(self, scope, target, tenant).await
    }

    async fn suspensions(&self, scope: &Scope) -> Result<Vec<crate::Suspension>> {
        suspensions::list(self, scope)
    }

    fn suspension_of(&self, device: &Device) -> Option<crate::Suspension> {
        self.suspensions.of(device)
    }

    fn suspension_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.suspensions.watch()
    }

    // --- provisioning and claiming ---

    async fn create_device_profile(
        &self,
        scope: &Scope,
        profile: crate::NewDeviceProfile,
    ) -> Result<thingsafe_core::model::DeviceProfile> {
        provisioning::create_profile(self, scope, profile).await
    }

    async fn device_profile(
        &self,
        scope: &Scope,
        id: thingsafe_core::model::DeviceProfileId,
    ) -> Result<thingsafe_core::model::DeviceProfile> {
        provisioning::profile(self, scope, id).await
    }

    async fn device_profiles(
        &self,
        scope: &Scope,
        page: &PageRequest,
    ) -> Result<Page<thingsafe_core::model::DeviceProfile>> {
        provisioning::profiles(self, scope, page).await
    }

    async fn delete_device_profile(
        &self,
        scope: &Scope,
        id: thingsafe_core::model::DeviceProfileId,
    ) -> Result<()> {
        provisioning::delete_profile(self, scope, id).await
    }

    async fn set_device_profile(
        &self,
        scope: &Scope,
        device: DeviceId,
        profile: Option<thingsafe_core::model::DeviceProfileId>,
    ) -> Result<()> {
        provisioning::set_profile(self, scope, device, profile).await
    }

    async fn device_profile_of(
        &self,
        scope: &Scope,
        device: DeviceId,
    ) -> Result<Option<thingsafe_core::model::DeviceProfileId>> {
        provisioning::profile_of(self, scope, device).await
    }

    async fn provision_device(
        &self,
        request: &thingsafe_core::model::provisioning::ProvisionRequest,
    ) -> Result<thingsafe_core::model::provisioning::ProvisionOutcome> {
        provisioning::provision(self, request).await
    }

    async fn certificate_chain_profile(
        &self,
        fingerprints: &[String],
    ) -> Result<Option<thingsafe_core::model::DeviceProfile>> {
        provisioning::certificate_chain_profile(self, fingerprints).await
    }

    async fn provision_by_certificate(
        &self,
        profile: &thingsafe_core::model::DeviceProfile,
        name: &str,
        certificate: DeviceCredentials,
    ) -> Result<crate::CertificateProvisioning> {
        provisioning::provision_by_certificate(self, profile, name, certificate).await
    }

    async fn open_claim(
        &self,
        device: &Device,
        request: &thingsafe_core::model::provisioning::ClaimRequest,
    ) -> Result<bool> {
        provisioning::open_claim(self, device, request).await
    }

    async fn claim_device(
        &self,
        scope: &Scope,
        name: &str,
        secret_key: &str,
    ) -> Result<crate::ClaimOutcome> {
        provisioning::claim(self, scope, name, secret_key).await
    }

    async fn reclaim_device(&self, scope: &Scope, name: &str) -> Result<Device> {
        provisioning::reclaim(self, scope, name).await
    }

    async fn create_privacy_request(
        &self,
        request: crate::NewPrivacyRequest,
    ) -> Result<crate::PrivacyRequest> {
        requests::create(self, request).await
    }

    async fn privacy_request(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
    ) -> Result<crate::PrivacyRequest> {
        requests::one(self, scope, id).await
    }

    async fn privacy_requests(
        &self,
        scope: &Scope,
        filter: &crate::RequestFilter,
    ) -> Result<Vec<crate::PrivacyRequest>> {
        requests::queue(self, scope, filter).await
    }

    async fn requests_of(&self, user: UserId) -> Result<Vec<crate::PrivacyRequest>> {
        requests::of_user(self, user).await
    }

    async fn update_privacy_request(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
        update: crate::RequestUpdate,
    ) -> Result<crate::PrivacyRequest> {
        requests::update(self, scope, id, update).await
    }

    async fn check_request_code(
        &self,
        id: uuid::Uuid,
        code: &str,
        max_attempts: u32,
        now_ms: TimestampMs,
    ) -> Result<crate::CodeCheck> {
        requests::check_code(self, id, code, max_attempts, now_ms).await
    }

    async fn update_profile(&self, user: UserId, change: crate::ProfileChange) -> Result<User> {
        requests::update_profile(self, user, change).await
    }

    async fn set_restricted(&self, user: UserId, restricted: bool) -> Result<bool> {
        requests::set_restricted(self, user, restricted).await
    }

    async fn restricted_since(&self, user: UserId) -> Result<Option<TimestampMs>> {
        requests::restricted_since(self, user).await
    }

    async fn enqueue_notices(&self, notices: Vec<crate::NewNotice>) -> Result<()> {
        requests::enqueue_notices(self, notices).await
    }

    async fn due_notices(
        &self,
        now_ms: TimestampMs,
        limit: usize,
    ) -> Result<Vec<crate::RecipientNotice>> {
        requests::due_notices(self, now_ms, limit).await
    }

    async fn record_notice_attempt(
        &self,
        id: i64,
        now_ms: TimestampMs,
        result: std::result::Result<(), (String, TimestampMs)>,
    ) -> Result<()> {
        requests::record_attempt(self, id, now_ms, result).await
    }

    async fn notices_of(&self, user: UserId) -> Result<Vec<crate::RecipientNotice>> {
        requests::notices_of(self, user).await
    }

    async fn shred_closed_requests(&self, closed_before_ms: TimestampMs) -> Result<usize> {
        requests::shred_closed(self, closed_before_ms).await
    }

    async fn start_backup_run(&self, kind: &str, attempt: u32, started_ms: i64) -> Result<i64> {
        backup_runs::start(self, kind, attempt, started_ms).await
    }

    async fn finish_backup_run(&self, id: i64, outcome: crate::BackupOutcome) -> Result<()> {
        backup_runs::finish(self, id, outcome).await
    }

    async fn interrupt_backup_runs(&self) -> Result<u64> {
        backup_runs::interrupt(self).await
    }

    async fn backup_runs(&self, limit: u32) -> Result<Vec<crate::BackupRun>> {
        backup_runs::list(self, limit).await
    }

    async fn create_oauth_client(
        &self,
        scope: &Scope,
        client: crate::oauth2::NewOAuthClient,
    ) -> Result<crate::oauth2::OAuthClient> {
        oauth2::create_client(self, scope, client).await
    }

    async fn oauth_clients(&self, scope: &Scope) -> Result<Vec<crate::oauth2::OAuthClient>> {
        oauth2::clients(self, scope).await
    }

    async fn delete_oauth_client(&self, scope: &Scope, id: &str) -> Result<()> {
        oauth2::delete_client(self, scope, id).await
    }

    async fn oauth_client(&self, id: &str) -> Result<Option<crate::oauth2::OAuthClient>> {
        oauth2::client(self, id).await
    }

    async fn oauth_client_secret_matches(&self, id: &str, secret: &str) -> Result<bool> {
        oauth2::secret_matches(self, id, secret).await
    }

    async fn create_oauth_code(&self, code: crate::oauth2::NewOAuthCode) -> Result<()> {
        oauth2::create_code(self, code).await
    }

    async fn redeem_oauth_code(
        &self,
        code: &str,
        client_id: &str,
    ) -> Result<crate::oauth2::CodeRedemption> {
        oauth2::redeem_code(self, code, client_id).await
    }

    async fn issue_oauth_tokens(&self, issue: crate::oauth2::TokenIssue) -> Result<()> {
        oauth2::issue_tokens(self, issue).await
    }

    async fn oauth_token(&self, token: &str) -> Result<Option<(crate::oauth2::OAuthToken, User)>> {
        oauth2::token(self, token).await
    }

    async fn rotate_oauth_refresh(
        &self,
        client_id: &str,
        old: &str,
        narrow: Option<thingsafe_core::oauth2::Scopes>,
        access: (String, TimestampMs),
        refresh: (String, TimestampMs),
    ) -> Result<crate::oauth2::RefreshRotation> {
        oauth2::rotate_refresh(self, client_id, old, narrow, access, refresh).await
    }

    async fn revoke_oauth_token(&self, client_id: &str, token: &str) -> Result<()> {
        oauth2::revoke_token(self, client_id, token).await
    }

    async fn oauth_grants(&self, user: UserId) -> Result<Vec<crate::oauth2::OAuthGrant>> {
        oauth2::grants(self, user).await
    }

    async fn revoke_oauth_grant(&self, user: UserId, client_id: &str) -> Result<bool> {
        oauth2::revoke_grant(self, user, client_id).await
    }

    async fn append_audit(&self, event: crate::records::NewAuditEvent) -> Result<i64> {
        audit::append(self, event).await
    }

    async fn audit_events(
        &self,
        scope: &Scope,
        filter: &crate::records::AuditFilter,
    ) -> Result<Vec<crate::records::AuditEvent>> {
        audit::events(self, scope, filter).await
    }

    async fn audit_chain(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<crate::records::SealedAuditEvent>> {
        audit::chain(self, after_seq, limit).await
    }

    fn audit_link(&self, event: &crate::records::SealedAuditEvent, prev: &[u8]) -> [u8; 32] {
        audit::link(self, event, prev)
    }

    async fn audit_anchor(&self) -> Result<Option<crate::records::AuditAnchor>> {
        record_retention::audit_anchor(self).await
    }

    async fn record_disclosure(&self, disclosure: crate::records::Disclosure) -> Result<()> {
        disclosures::record(self, disclosure).await
    }

    async fn disclosures(
        &self,
        scope: &Scope,
        filter: crate::records::DisclosureFilter,
    ) -> Result<Vec<crate::records::Disclosure>> {
        disclosures::list(self, scope, filter).await
    }

    async fn record_breach(
        &self,
        scope: &Scope,
        breach: crate::records::NewBreach,
    ) -> Result<crate::records::Breach> {
        breaches::record(self, scope, breach).await
    }

    async fn breaches(&self, scope: &Scope) -> Result<Vec<crate::records::Breach>> {
        breaches::list(self, scope).await
    }

    async fn breach(&self, scope: &Scope, id: uuid::Uuid) -> Result<crate::records::Breach> {
        breaches::get(self, scope, id).await
    }

    async fn breach_authority_notified(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
        at_ms: TimestampMs,
        reference: Option<String>,
    ) -> Result<crate::records::Breach> {
        breaches::authority_notified(self, scope, id, at_ms, reference).await
    }

    async fn record_breach_notifications(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
        users: Vec<UserId>,
        at_ms: TimestampMs,
    ) -> Result<Vec<crate::records::BreachNotification>> {
        breaches::notify(self, scope, id, users, at_ms).await
    }

    async fn breach_notifications(
        &self,
        scope: &Scope,
        id: uuid::Uuid,
    ) -> Result<Vec<crate::records::BreachNotification>> {
        breaches::notifications(self, scope, id).await
    }

    async fn telemetry_classification(
        &self,
        scope: &Scope,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        classification::get(self, scope).await
    }

    async fn set_telemetry_classification(
        &self,
        scope: &Scope,
        map: std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        classification::set(self, scope, map).await
    }

    async fn telemetry_classifications(
        &self,
    ) -> Result<Vec<(TenantId, std::collections::BTreeMap<String, String>)>> {
        classification::all(self).await
    }

    async fn expire_telemetry_key(
        &self,
        tenant: TenantId,
        key: &str,
        before_ms: TimestampMs,
        aggregate: bool,
    ) -> Result<u64> {
        classification::expire_key(self, tenant, key.to_string(), before_ms, aggregate).await
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use thingsafe_vault::MasterKey;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
        let vault = Arc::new(Vault::open(dir.path(), master).unwrap());
        let store = SqliteStore::open(dir.path(), vault).unwrap();
        (dir, store)
    }

    async fn tenant(store: &SqliteStore, email: &str) -> Scope {
        let admin = NewUser {
            email: email.into(),
            password_hash: None,
            authority: Authority::TenantAdmin,
            customer_id: None,
            first_name: None,
            last_name: None,
            birth_date: None,
        };
        Scope::Tenant(store.sign_up("Acme", admin).await.unwrap().0.id)
    }

    fn device(name: &str, token: &str) -> NewDevice {
        NewDevice {
            name: name.into(),
            device_type: "gateway".into(),
            label: None,
            credentials: DeviceCredentials::AccessToken(token.into()),
        }
    }

    #[tokio::test]
    async fn gateways_create_their_sub_devices_once_in_their_tenant_and_customer() {
        let (_dir, store) = store();
        let a = tenant(&store, "a@acme.test").await;
        let gw = store
            .create_gateway(&a, device("GW", "GWTOKEN"))
            .await
            .unwrap();
        assert!(gw.gateway);
        assert_eq!(store.device(&a, gw.id).await.unwrap(), gw);
        let customer = store.create_customer(&a, "Home").await.unwrap();
        let gw = store
            .assign_device(&a, gw.id, Some(customer.id))
            .await
            .unwrap();

        let child = store
            .gateway_child(&gw, "Device A", "sensor")
            .await
            .unwrap();
        assert_eq!(
            (child.tenant_id, child.customer_id, child.gateway_id),
            (gw.tenant_id, Some(customer.id), Some(gw.id))
        );
        assert_eq!(
            (child.name.as_str(), child.device_type.as_str()),
            ("Device A", "sensor")
        );
        assert!(!child.gateway);
        assert_eq!(store.device(&a, child.id).await.unwrap(), child);
        let Ok(DeviceCredentials::AccessToken(token)) =
            store.device_credentials(&a, child.id).await
        else {
            panic!("a generated access token");
        };
        assert_eq!(token.len(), GENERATED_TOKEN_LEN);
        assert_eq!(
            store.device_by_token(&token).await.unwrap(),
            Some(child.clone())
        );

        // Found again, however many ask at once; the type of the first sight stays.
        let again = futures_join(&store, &gw, "Device A").await;
        assert!(
            again
                .iter()
                .all(|d| d.id == child.id && d.device_type == "sensor")
        );
        let b = futures_join(&store, &gw, "Device B").await;
        assert!(b.iter().all(|d| d.id == b[0].id && d.id != child.id));
    }

    async fn futures_join(store: &SqliteStore, gw: &Device, name: &str) -> Vec<Device> {
        let (x, y, z) = tokio::join!(
            store.gateway_child(gw, name, "default"),
            store.gateway_child(gw, name, "other"),
            store.gateway_child(gw, name, "default"),
        );
        vec![x.unwrap(), y.unwrap(), z.unwrap()]
    }

    #[tokio::test]
    async fn a_gateway_reaches_only_its_own_sub_devices() {
        let (_dir, store) = store();
        let a = tenant(&store, "a@acme.test").await;
        let b = tenant(&store, "b@bravo.test").await;
        let gw = store.create_gateway(&a, device("GW", "GW1")).await.unwrap();
        let gw2 = store
            .create_gateway(&a, device("GW2", "GW2"))
            .await
            .unwrap();
        let plain = store
            .create_device(&a, device("Pump", "PUMP"))
            .await
            .unwrap();
        assert!(!plain.gateway);
        let theirs = store
            .create_device(&b, device("Device A", "THEIRS"))
            .await
            .unwrap();

        // Another tenant's device of the same name is another device.
        let child = store
            .gateway_child(&gw, "Device A", "default")
            .await
            .unwrap();
        assert_ne!(child.id, theirs.id);
        assert_eq!(store.device(&b, theirs.id).await.unwrap(), theirs);
        // A device of the tenant that is not its child, the gateway itself, another
        // gateway's child: refused.
        for (gateway, name) in [(&gw, "Pump"), (&gw, "GW"), (&gw, "GW2"), (&gw2, "Device A")] {
            match store.gateway_child(gateway, name, "default").await {
                Err(StoreError::Conflict(m)) => assert!(!m.contains(name), "{m}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // A device that is not a gateway creates nothing.
        assert!(matches!(
            store.gateway_child(&plain, "Device Z", "default").await,
            Err(StoreError::Forbidden(_))
        ));
        // Deleting the gateway keeps its sub-devices, orphaned.
        store.delete_device(&a, gw.id).await.unwrap();
        assert_eq!(store.device(&a, child.id).await.unwrap().gateway_id, None);
        assert!(matches!(
            store.gateway_child(&gw, "Device Q", "default").await,
            Err(StoreError::Forbidden(_))
        ));
    }
}
