//! Data owners: the units that hold a data key of their own. Destroying an owner's key
//! makes everything sealed with it unreadable (crypto-shredding).

use std::fmt;

use crate::ids::{CustomerId, TenantId, UserId};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Owner {
    /// A person: profile, consents, login history.
    User(UserId),
    /// A customer of a tenant: its devices' data while they are assigned to it.
    Customer(CustomerId),
    /// A tenant: its devices and their telemetry.
    Tenant(TenantId),
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
        }
    }
}
