//! Networking's SQL, and nothing else: one file per resource, plain statements over one
//! connection (`&mut Conn`) so that a service can run several of them in one transaction.
//! Rows come back as the structs each file defines; JSON text columns are decoded here.
//! Authorization, validation and IPAM decisions live in `service`.

pub mod floatingips;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod rbac;
pub mod routers;
pub mod security_groups;
pub mod subnetpools;
pub mod subnets;
pub mod tags;

use nubo_common::Migration;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One database connection (pooled, or inside a transaction).
pub type Conn = sqlx::SqliteConnection;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "network",
    sql: include_str!("../../migrations/0001_network.sql"),
}];

/// Decodes a JSON text column, falling back to the type's default on garbage.
pub fn from_json<T: DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// `?, ?, ?` for an `IN (...)` of `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Now, as Neutron prints resource times (`2026-11-25T18:51:37Z`).
pub fn now() -> String {
    nubo_common::time::seconds_format(nubo_common::time::now())
}
