//! Block Storage's SQL, and nothing else: one file per resource, plain statements, rows mapped
//! by hand; JSON text columns are decoded here. Decisions live in `service`.

pub mod attachments;
pub mod groups;
pub mod messages;
pub mod misc;
pub mod snapshots;
pub mod transfers;
pub mod types;
pub mod volumes;

use nubo_common::Migration;
use serde::de::DeserializeOwned;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "volume",
    sql: include_str!("../../migrations/0001_volume.sql"),
}];

/// Decodes a JSON text column, falling back to the type's default on garbage.
pub(crate) fn from_json<T: DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// `?, ?, ...` for `n` columns.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `a = ?, b = ?, ...`.
pub(crate) fn sets(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{c} = ?"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
