//! Rows as SQLite returns them (sealed) and their opening into domain types.

use std::str::FromStr;

use rusqlite::Row;
use thingsafe_core::{Authority, Customer, Device, Owner, Tenant, TenantId, User, UserId};
use thingsafe_vault::Vault;

use crate::{Result, StoreError};

/// Binds sealed bytes to their place: `field/row id`.
pub(crate) fn aad(field: &str, row: &str) -> String {
    format!("{field}/{row}")
}

pub(crate) fn open_text(
    vault: &Vault,
    owner: Owner,
    field: &str,
    row: &str,
    sealed: &[u8],
) -> Result<String> {
    let bytes = vault.unseal(owner, aad(field, row).as_bytes(), sealed)?;
    String::from_utf8(bytes)
        .map_err(|_| StoreError::Backend(format!("{field} of {row} is not UTF-8")))
}

fn open_opt(
    vault: &Vault,
    owner: Owner,
    field: &str,
    row: &str,
    sealed: Option<&[u8]>,
) -> Result<Option<String>> {
    sealed
        .map(|s| open_text(vault, owner, field, row, s))
        .transpose()
}

pub(crate) fn parse_id<T: FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Backend(format!("malformed id in the database: {s:?}")))
}

fn parse_opt_id<T: FromStr>(s: Option<&str>) -> Result<Option<T>> {
    s.map(parse_id).transpose()
}

pub(crate) fn id_text<T: ToString>(id: Option<T>) -> Option<String> {
    id.map(|i| i.to_string())
}

/// A unique-constraint violation becomes a conflict with `message`; anything else stays.
pub(crate) fn conflict(e: rusqlite::Error, message: &str) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(message.to_string()),
        _ => StoreError::from(e),
    }
}

pub(crate) fn qualify(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) struct UserRow {
    id: String,
    tenant_id: Option<String>,
    customer_id: Option<String>,
    authority: String,
    email: Vec<u8>,
    first_name: Option<Vec<u8>>,
    last_name: Option<Vec<u8>>,
    birth_date: Option<Vec<u8>>,
    activated: bool,
    created_ms: i64,
}

impl UserRow {
    pub(crate) const COLUMNS: &'static str = "id, tenant_id, customer_id, authority, email, first_name, last_name, birth_date, password IS NOT NULL, created_ms";
    pub(crate) const COLUMN_COUNT: usize = 10;

    pub(crate) fn qualified(alias: &str) -> String {
        qualify(Self::COLUMNS, alias)
    }

    pub(crate) fn read(r: &Row) -> rusqlite::Result<UserRow> {
        Ok(UserRow {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            customer_id: r.get(2)?,
            authority: r.get(3)?,
            email: r.get(4)?,
            first_name: r.get(5)?,
            last_name: r.get(6)?,
            birth_date: r.get(7)?,
            activated: r.get(8)?,
            created_ms: r.get(9)?,
        })
    }

    pub(crate) fn open(self, vault: &Vault) -> Result<User> {
        let id: UserId = parse_id(&self.id)?;
        let owner = Owner::User(id);
        let row = &self.id;
        let birth_date = open_opt(
            vault,
            owner,
            "user.birth_date",
            row,
            self.birth_date.as_deref(),
        )?
        .map(|s| {
            time::Date::parse(
                &s,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| StoreError::Backend(format!("birth date of {row} is malformed")))
        })
        .transpose()?;
        Ok(User {
            id,
            tenant_id: parse_opt_id(self.tenant_id.as_deref())?,
            customer_id: parse_opt_id(self.customer_id.as_deref())?,
            authority: Authority::from_str(&self.authority).map_err(StoreError::Backend)?,
            email: open_text(vault, owner, "user.email", row, &self.email)?,
            first_name: open_opt(
                vault,
                owner,
                "user.first_name",
                row,
                self.first_name.as_deref(),
            )?,
            last_name: open_opt(
                vault,
                owner,
                "user.last_name",
                row,
                self.last_name.as_deref(),
            )?,
            birth_date,
            activated: self.activated,
            created_ms: self.created_ms,
        })
    }
}

pub(crate) struct DeviceRow {
    id: String,
    tenant_id: String,
    customer_id: Option<String>,
    name: Vec<u8>,
    device_type: String,
    label: Option<Vec<u8>>,
    created_ms: i64,
    gateway: bool,
    gateway_id: Option<String>,
    device_profile_id: Option<String>,
}

impl DeviceRow {
    pub(crate) const COLUMNS: &'static str = "id, tenant_id, customer_id, name, device_type, label, created_ms, gateway, gateway_id, device_profile_id";

    pub(crate) fn qualified(alias: &str) -> String {
        qualify(Self::COLUMNS, alias)
    }

    pub(crate) fn read(r: &Row) -> rusqlite::Result<DeviceRow> {
        Ok(DeviceRow {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            customer_id: r.get(2)?,
            name: r.get(3)?,
            device_type: r.get(4)?,
            label: r.get(5)?,
            created_ms: r.get(6)?,
            gateway: r.get(7)?,
            gateway_id: r.get(8)?,
            device_profile_id: r.get(9)?,
        })
    }

    pub(crate) fn open(self, vault: &Vault) -> Result<Device> {
        let tenant: TenantId = parse_id(&self.tenant_id)?;
        let owner = Owner::Tenant(tenant);
        Ok(Device {
            id: parse_id(&self.id)?,
            tenant_id: tenant,
            customer_id: parse_opt_id(self.customer_id.as_deref())?,
            name: open_text(vault, owner, "device.name", &self.id, &self.name)?,
            device_type: self.device_type,
            label: open_opt(
                vault,
                owner,
                "device.label",
                &self.id,
                self.label.as_deref(),
            )?,
            created_ms: self.created_ms,
            gateway: self.gateway,
            gateway_id: parse_opt_id(self.gateway_id.as_deref())?,
            device_profile_id: parse_opt_id(self.device_profile_id.as_deref())?,
        })
    }
}

pub(crate) struct CustomerRow {
    id: String,
    tenant_id: String,
    title: Vec<u8>,
    created_ms: i64,
}

impl CustomerRow {
    pub(crate) const COLUMNS: &'static str = "id, tenant_id, title, created_ms";

    pub(crate) fn read(r: &Row) -> rusqlite::Result<CustomerRow> {
        Ok(CustomerRow {
            id: r.get(0)?,
            tenant_id: r.get(1)?,
            title: r.get(2)?,
            created_ms: r.get(3)?,
        })
    }

    pub(crate) fn open(self, vault: &Vault) -> Result<Customer> {
        let id = parse_id(&self.id)?;
        Ok(Customer {
            id,
            tenant_id: parse_id(&self.tenant_id)?,
            title: open_text(
                vault,
                Owner::Customer(id),
                "customer.title",
                &self.id,
                &self.title,
            )?,
            created_ms: self.created_ms,
        })
    }
}

pub(crate) struct TenantRow {
    id: String,
    title: Vec<u8>,
    created_ms: i64,
}

impl TenantRow {
    pub(crate) const COLUMNS: &'static str = "id, title, created_ms";

    pub(crate) fn read(r: &Row) -> rusqlite::Result<TenantRow> {
        Ok(TenantRow {
            id: r.get(0)?,
            title: r.get(1)?,
            created_ms: r.get(2)?,
        })
    }

    pub(crate) fn open(self, vault: &Vault) -> Result<Tenant> {
        let id = parse_id(&self.id)?;
        Ok(Tenant {
            id,
            title: open_text(
                vault,
                Owner::Tenant(id),
                "tenant.title",
                &self.id,
                &self.title,
            )?,
            created_ms: self.created_ms,
        })
    }
}
