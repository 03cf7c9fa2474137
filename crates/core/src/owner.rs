//! Data owners: the units that hold a data key of their own. Destroying an owner's key
//! makes everything sealed with it unreadable (crypto-shredding).

use std::fmt;
use std::str::FromStr;

use crate::ids::{CustomerId, TenantId, UserId};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Owner {
    /// A person: profile, consents, login history.
    User(UserId),
    /// A customer of a tenant: its devices' data while they are assigned to it.
    Customer(CustomerId),
    /// A tenant: its devices and their telemetry.
    Tenant(TenantId),
    /// A data-subject request from someone without an account: their email and what they
    /// asked, shredded when the request is closed and kept no longer.
    Request(uuid::Uuid),
}

impl Owner {
    /// The stable name of the owner's key in the key store, e.g. `user:6f1c...`.
    pub fn key_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::User(id) => write!(f, "user:{id}"),
            Owner::Customer(id) => write!(f, "customer:{id}"),
            Owner::Tenant(id) => write!(f, "tenant:{id}"),
            Owner::Request(id) => write!(f, "request:{id}"),
        }
    }
}

impl FromStr for Owner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{s:?} is not an owner key name (user:, customer:, tenant: or request: and a UUID)"
            )
        };
        let (kind, id) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "user" => id.parse().map(Owner::User).map_err(|_| bad()),
            "customer" => id.parse().map(Owner::Customer).map_err(|_| bad()),
            "tenant" => id.parse().map(Owner::Tenant).map_err(|_| bad()),
            "request" => id.parse().map(Owner::Request).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_round_trip() {
        for owner in [
            Owner::User(UserId::random()),
            Owner::Customer(CustomerId::random()),
            Owner::Tenant(TenantId::random()),
            Owner::Request(uuid::Uuid::new_v4()),
        ] {
            assert_eq!(owner.key_name().parse::<Owner>().unwrap(), owner);
        }
        assert!("device:1".parse::<Owner>().is_err());
        assert!("user:not-a-uuid".parse::<Owner>().is_err());
    }
}
