//! Identity's SQL, and nothing else: one file per resource, plain statements over [`Db`], rows
//! returned as the structs below. Authorization and validation live in `service`.

pub mod app_creds;
pub mod assignments;
pub mod catalog;
pub mod consumers;
pub mod credentials;
pub mod domain_configs;
pub mod endpoint_filters;
pub mod groups;
pub mod projects;
pub mod revocations;
pub mod roles;
pub mod users;

use nubo_common::Migration;
use serde_json::{Map, Value};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sql: include_str!("../../migrations/0001_identity.sql"),
    },
    Migration {
        version: 2,
        name: "extensions",
        sql: include_str!("../../migrations/0002_extensions.sql"),
    },
    Migration {
        version: 3,
        name: "security compliance",
        sql: include_str!("../../migrations/0003_security_compliance.sql"),
    },
];

/// The stored spelling of "no domain" (domains themselves, global roles).
pub const ROOT_DOMAIN: &str = "<<root>>";
pub const NULL_DOMAIN: &str = "<<null>>";

/// Free-form attributes as stored in a JSON text column.
pub fn json_map(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}
