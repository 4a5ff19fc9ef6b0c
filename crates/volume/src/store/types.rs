//! Volume types, their access lists, per-project default types and QoS specs.

use std::collections::BTreeMap;

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

use super::{from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct TypeRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: BTreeMap<String, String>,
    pub qos_specs_id: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

fn type_row(r: &sqlx::sqlite::SqliteRow) -> TypeRow {
    TypeRow {
        id: r.get("id"),
        name: r.get("name"),
        description: r.get("description"),
        is_public: r.get::<i64, _>("is_public") != 0,
        extra_specs: from_json(&r.get::<String, _>("extra_specs")),
        qos_specs_id: r.get("qos_specs_id"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// Inserts; `Err` with a unique violation when the name is taken.
pub async fn insert(conn: &mut SqliteConnection, t: &TypeRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO volume_types (id, name, description, is_public, extra_specs, qos_specs_id, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.is_public as i64)
    .bind(to_json(&t.extra_specs))
    .bind(&t.qos_specs_id)
    .bind(&t.created_at)
    .bind(&t.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut SqliteConnection, t: &TypeRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE volume_types SET name = ?, description = ?, is_public = ?, extra_specs = ?,
         qos_specs_id = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.is_public as i64)
    .bind(to_json(&t.extra_specs))
    .bind(&t.qos_specs_id)
    .bind(&t.updated_at)
    .bind(&t.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<TypeRow>> {
    let r = sqlx::query("SELECT * FROM volume_types WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(type_row))
}

pub async fn by_name(conn: &mut SqliteConnection, name: &str) -> Result<Option<TypeRow>> {
    let r = sqlx::query("SELECT * FROM volume_types WHERE name = ?")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(type_row))
}

pub async fn list(conn: &mut SqliteConnection) -> Result<Vec<TypeRow>> {
    let rows = sqlx::query("SELECT * FROM volume_types ORDER BY created_at, id")
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(type_row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_types WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn access_list(conn: &mut SqliteConnection, type_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT project_id FROM volume_type_access WHERE type_id = ? ORDER BY project_id",
    )
    .bind(type_id)
    .fetch_all(conn)
    .await?)
}

/// Types a project was given access to.
pub async fn accessible_to(conn: &mut SqliteConnection, project: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT type_id FROM volume_type_access WHERE project_id = ?")
            .bind(project)
            .fetch_all(conn)
            .await?,
    )
}

/// Adds access; false when the project had it already.
pub async fn add_access(conn: &mut SqliteConnection, type_id: &str, project: &str) -> Result<bool> {
    let done =
        sqlx::query("INSERT OR IGNORE INTO volume_type_access (type_id, project_id) VALUES (?, ?)")
            .bind(type_id)
            .bind(project)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes access; false when the project did not have it.
pub async fn remove_access(
    conn: &mut SqliteConnection,
    type_id: &str,
    project: &str,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM volume_type_access WHERE type_id = ? AND project_id = ?")
        .bind(type_id)
        .bind(project)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn default_of(conn: &mut SqliteConnection, project: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT type_id FROM volume_default_types WHERE project_id = ?")
            .bind(project)
            .fetch_optional(conn)
            .await?,
    )
}

/// (project, type) of every per-project default.
pub async fn defaults(conn: &mut SqliteConnection) -> Result<Vec<(String, String)>> {
    let rows =
        sqlx::query("SELECT project_id, type_id FROM volume_default_types ORDER BY project_id")
            .fetch_all(conn)
            .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("project_id"), r.get("type_id")))
        .collect())
}

pub async fn set_default(conn: &mut SqliteConnection, project: &str, type_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_default_types (project_id, type_id) VALUES (?, ?)
         ON CONFLICT(project_id) DO UPDATE SET type_id = excluded.type_id",
    )
    .bind(project)
    .bind(type_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn unset_default(conn: &mut SqliteConnection, project: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM volume_default_types WHERE project_id = ?")
        .bind(project)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether some project has the type as its default.
pub async fn is_someones_default(conn: &mut SqliteConnection, type_id: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM volume_default_types WHERE type_id = ?")
        .bind(type_id)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct QosRow {
    pub id: String,
    pub name: String,
    pub consumer: String,
    pub specs: BTreeMap<String, String>,
    pub created_at: String,
}

fn qos_row(r: &sqlx::sqlite::SqliteRow) -> QosRow {
    QosRow {
        id: r.get("id"),
        name: r.get("name"),
        consumer: r.get("consumer"),
        specs: from_json(&r.get::<String, _>("specs")),
        created_at: r.get("created_at"),
    }
}

pub async fn insert_qos(conn: &mut SqliteConnection, q: &QosRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO volume_qos_specs (id, name, consumer, specs, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&q.id)
    .bind(&q.name)
    .bind(&q.consumer)
    .bind(to_json(&q.specs))
    .bind(&q.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_qos(conn: &mut SqliteConnection, q: &QosRow, now: &str) -> Result<()> {
    sqlx::query("UPDATE volume_qos_specs SET consumer = ?, specs = ?, updated_at = ? WHERE id = ?")
        .bind(&q.consumer)
        .bind(to_json(&q.specs))
        .bind(now)
        .bind(&q.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get_qos(conn: &mut SqliteConnection, id: &str) -> Result<Option<QosRow>> {
    let r = sqlx::query("SELECT * FROM volume_qos_specs WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(qos_row))
}

pub async fn list_qos(conn: &mut SqliteConnection) -> Result<Vec<QosRow>> {
    let rows = sqlx::query("SELECT * FROM volume_qos_specs ORDER BY created_at, id")
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(qos_row).collect())
}

pub async fn delete_qos(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("UPDATE volume_types SET qos_specs_id = NULL WHERE qos_specs_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM volume_qos_specs WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct EncryptionRow {
    pub type_id: String,
    pub encryption_id: String,
    pub provider: String,
    pub cipher: Option<String>,
    pub key_size: Option<i64>,
    pub control_location: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

pub async fn encryption_of(
    conn: &mut SqliteConnection,
    type_id: &str,
) -> Result<Option<EncryptionRow>> {
    let r = sqlx::query("SELECT * FROM volume_type_encryption WHERE type_id = ?")
        .bind(type_id)
        .fetch_optional(conn)
        .await?;
    Ok(r.map(|r| EncryptionRow {
        type_id: r.get("type_id"),
        encryption_id: r.get("encryption_id"),
        provider: r.get("provider"),
        cipher: r.get("cipher"),
        key_size: r.get("key_size"),
        control_location: r.get("control_location"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }))
}

pub async fn upsert_encryption(conn: &mut SqliteConnection, e: &EncryptionRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_type_encryption (type_id, encryption_id, provider, cipher, key_size,
            control_location, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(type_id) DO UPDATE SET provider = excluded.provider, cipher = excluded.cipher,
            key_size = excluded.key_size, control_location = excluded.control_location,
            updated_at = excluded.updated_at",
    )
    .bind(&e.type_id)
    .bind(&e.encryption_id)
    .bind(&e.provider)
    .bind(&e.cipher)
    .bind(e.key_size)
    .bind(&e.control_location)
    .bind(&e.created_at)
    .bind(&e.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_encryption(conn: &mut SqliteConnection, type_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_type_encryption WHERE type_id = ?")
        .bind(type_id)
        .execute(conn)
        .await?;
    Ok(())
}
