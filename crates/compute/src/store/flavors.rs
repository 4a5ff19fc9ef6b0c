//! Flavors, their extra specs (a JSON column) and their access lists.

use std::collections::BTreeMap;

use nubo_common::{Db, Result};
use sqlx::Row;

use super::{from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct FlavorRow {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap: i64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    pub created_at: String,
}

const COLUMNS: &str = "id, name, vcpus, memory_mb, root_gb, ephemeral_gb, swap, rxtx_factor, \
    is_public, disabled, description, extra_specs, created_at";

fn row(r: &sqlx::sqlite::SqliteRow) -> FlavorRow {
    FlavorRow {
        id: r.get("id"),
        name: r.get("name"),
        vcpus: r.get("vcpus"),
        memory_mb: r.get("memory_mb"),
        root_gb: r.get("root_gb"),
        ephemeral_gb: r.get("ephemeral_gb"),
        swap: r.get("swap"),
        rxtx_factor: r.get("rxtx_factor"),
        is_public: r.get::<i64, _>("is_public") != 0,
        disabled: r.get::<i64, _>("disabled") != 0,
        description: r.get("description"),
        extra_specs: from_json(&r.get::<String, _>("extra_specs")),
        created_at: r.get("created_at"),
    }
}

pub async fn insert(db: &Db, f: &FlavorRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO compute_flavors ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&f.id)
    .bind(&f.name)
    .bind(f.vcpus)
    .bind(f.memory_mb)
    .bind(f.root_gb)
    .bind(f.ephemeral_gb)
    .bind(f.swap)
    .bind(f.rxtx_factor)
    .bind(f.is_public as i64)
    .bind(f.disabled as i64)
    .bind(&f.description)
    .bind(to_json(&f.extra_specs))
    .bind(&f.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<FlavorRow>> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM compute_flavors WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.as_ref().map(row))
}

pub async fn list(db: &Db) -> Result<Vec<FlavorRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM compute_flavors"))
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn count(db: &Db) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM compute_flavors")
        .fetch_one(db.pool())
        .await?)
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM compute_flavors WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn set_description(db: &Db, id: &str, description: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE compute_flavors SET description = ?, updated_at = ? WHERE id = ?")
        .bind(description)
        .bind(nubo_common::time::now_rfc3339())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn set_extra_specs(db: &Db, id: &str, specs: &BTreeMap<String, String>) -> Result<()> {
    sqlx::query("UPDATE compute_flavors SET extra_specs = ?, updated_at = ? WHERE id = ?")
        .bind(to_json(specs))
        .bind(nubo_common::time::now_rfc3339())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn access_list(db: &Db, id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT project_id FROM compute_flavor_access WHERE flavor_id = ? ORDER BY project_id",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?)
}

/// Flavor ids `project` was given access to.
pub async fn accessible(db: &Db, project: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT flavor_id FROM compute_flavor_access WHERE project_id = ?")
            .bind(project)
            .fetch_all(db.pool())
            .await?,
    )
}

/// Adds access; false when it was there already.
pub async fn add_access(db: &Db, id: &str, project: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO compute_flavor_access (flavor_id, project_id) VALUES (?, ?)",
    )
    .bind(id)
    .bind(project)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn remove_access(db: &Db, id: &str, project: &str) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM compute_flavor_access WHERE flavor_id = ? AND project_id = ?")
            .bind(id)
            .bind(project)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}
