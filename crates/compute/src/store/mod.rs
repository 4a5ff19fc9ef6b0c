//! Compute's SQL, and nothing else: one file per resource, plain statements, rows mapped by
//! hand. JSON text columns are decoded here. Decisions live in `service`.

pub mod actions;
pub mod aggregates;
pub mod deleted;
pub mod flavors;
pub mod hosts;
pub mod keypairs;
pub mod passwords;
pub mod quotas;
pub mod requests;
pub mod server_groups;
pub mod servers;

use nubo_common::Migration;
use serde::de::DeserializeOwned;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "compute",
        sql: include_str!("../../migrations/0001_compute.sql"),
    },
    Migration {
        version: 2,
        name: "disk config",
        sql: include_str!("../../migrations/0002_disk_config.sql"),
    },
    Migration {
        version: 10,
        name: "server groups, aggregates, deleted servers",
        sql: include_str!("../../migrations/0010_groups_aggregates.sql"),
    },
    Migration {
        version: 20,
        name: "server passwords",
        sql: include_str!("../../migrations/0020_server_passwords.sql"),
    },
];

/// Decodes a JSON text column, falling back to the type's default on garbage.
pub(crate) fn from_json<T: DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
