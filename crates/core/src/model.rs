//! Entities as the rest of the platform sees them: opened (plaintext) and typed.
//! How they are sealed at rest is the store's business; how they look on the wire is the
//! HTTP crate's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TimestampMs;
use crate::ids::{CustomerId, DeviceId, TenantId, UserId};

/// ThingsBoard's roles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Authority {
    SysAdmin,
    TenantAdmin,
    CustomerUser,
}

impl Authority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Authority::SysAdmin => "SYS_ADMIN",
            Authority::TenantAdmin => "TENANT_ADMIN",
            Authority::CustomerUser => "CUSTOMER_USER",
        }
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Authority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SYS_ADMIN" => Ok(Authority::SysAdmin),
            "TENANT_ADMIN" => Ok(Authority::TenantAdmin),
            "CUSTOMER_USER" => Ok(Authority::CustomerUser),
            other => Err(format!(
                "unknown authority {other:?}: expected SYS_ADMIN, TENANT_ADMIN or CUSTOMER_USER"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: TenantId,
    pub title: String,
    pub created_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: CustomerId,
    pub tenant_id: TenantId,
    pub title: String,
    pub created_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    /// `None` only for system administrators.
    pub tenant_id: Option<TenantId>,
    /// `Some` only for customer users.
    pub customer_id: Option<CustomerId>,
    pub authority: Authority,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<time::Date>,
    /// False until the user has set a password (activation).
    pub activated: bool,
    pub created_ms: TimestampMs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub customer_id: Option<CustomerId>,
    pub name: String,
    pub device_type: String,
    pub label: Option<String>,
    pub created_ms: TimestampMs,
    /// A gateway speaks for its sub-devices over ThingsBoard's gateway API
    /// (`additionalInfo.gateway` in ThingsBoard's JSON).
    pub gateway: bool,
    /// The gateway that created this sub-device, the only one that may reach it.
    pub gateway_id: Option<DeviceId>,
}

impl Device {
    /// Whose key seals the device's data: the customer it is assigned to, else its tenant.
    pub fn data_owner(&self) -> crate::Owner {
        match self.customer_id {
            Some(c) => crate::Owner::Customer(c),
            None => crate::Owner::Tenant(self.tenant_id),
        }
    }
}

/// ThingsBoard's attribute scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AttributeScope {
    /// Reported by the device.
    Client,
    /// Set by users, delivered to the device.
    Shared,
    /// Set by users, never seen by the device.
    Server,
}

impl AttributeScope {
    pub const ALL: [AttributeScope; 3] = [Self::Client, Self::Shared, Self::Server];

    pub fn as_str(&self) -> &'static str {
        match self {
            AttributeScope::Client => "CLIENT_SCOPE",
            AttributeScope::Shared => "SHARED_SCOPE",
            AttributeScope::Server => "SERVER_SCOPE",
        }
    }
}

impl FromStr for AttributeScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttributeScope::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown attribute scope {s:?}: expected CLIENT_SCOPE, SHARED_SCOPE or SERVER_SCOPE")
            })
    }
}

/// One attribute of a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub scope: AttributeScope,
    pub key: String,
    pub value: crate::payload::Value,
    pub last_update_ms: TimestampMs,
}

/// A device's credentials as its owner sees them.
#[derive(Clone, PartialEq)]
pub enum DeviceCredentials {
    /// ThingsBoard's `ACCESS_TOKEN`: the token is the MQTT username / HTTP path segment.
    AccessToken(String),
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceCredentials::AccessToken(_) => f.write_str("AccessToken(<redacted>)"),
        }
    }
}

/// A page request in ThingsBoard's terms: `page` counts from 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub page_size: usize,
    pub page: usize,
    /// Case-insensitive substring of the entity's name or title.
    pub text_search: Option<String>,
}

impl PageRequest {
    pub const MAX_PAGE_SIZE: usize = 1000;

    /// Cuts `items` (already filtered and sorted) into the requested page.
    pub fn apply<T>(&self, items: Vec<T>) -> Page<T> {
        let total = items.len();
        let size = self.page_size.max(1);
        let total_pages = total.div_ceil(size);
        let start = self.page.saturating_mul(size).min(total);
        let data: Vec<T> = items.into_iter().skip(start).take(size).collect();
        let has_next = start + data.len() < total;
        Page {
            data,
            total_pages,
            total_elements: total,
            has_next,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match &self.text_search {
            None => true,
            Some(needle) => text.to_lowercase().contains(&needle.to_lowercase()),
        }
    }
}

/// ThingsBoard's page shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub total_pages: usize,
    pub total_elements: usize,
    pub has_next: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            total_pages: self.total_pages,
            total_elements: self.total_elements,
            has_next: self.has_next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(page_size: usize, page: usize) -> PageRequest {
        PageRequest {
            page_size,
            page,
            text_search: None,
        }
    }

    #[test]
    fn pages_cut_like_thingsboard() {
        let p = req(2, 0).apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!((p.total_pages, p.total_elements, p.has_next), (3, 5, true));
        let p = req(2, 2).apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(p.data, vec![5]);
        assert!(!p.has_next);
        let p = req(2, 9).apply(vec![1, 2, 3]);
        assert!(p.data.is_empty());
        assert!(!p.has_next);
        let p = req(10, 0).apply(Vec::<u8>::new());
        assert_eq!((p.total_pages, p.total_elements), (0, 0));
    }

    #[test]
    fn text_search_is_case_insensitive_substring() {
        let r = PageRequest {
            page_size: 10,
            page: 0,
            text_search: Some("THERM".into()),
        };
        assert!(r.matches("Kitchen thermostat"));
        assert!(!r.matches("Door sensor"));
    }

    #[test]
    fn authority_round_trips() {
        for a in [
            Authority::SysAdmin,
            Authority::TenantAdmin,
            Authority::CustomerUser,
        ] {
            assert_eq!(a.as_str().parse::<Authority>().unwrap(), a);
        }
        assert!("ROOT".parse::<Authority>().unwrap_err().contains("ROOT"));
    }
}
