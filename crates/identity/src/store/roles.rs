//! SQL for roles and role inference rules (prior role implies implied role).

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{json_map, json_text, NULL_DOMAIN};

#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    /// `None` for a global role; `Some` for a domain-specific role.
    pub domain_id: Option<String>,
    pub description: String,
    pub options: Map<String, Value>,
    pub extra: Map<String, Value>,
}

const COLUMNS: &str = "id, name, domain_id, description, options, extra";

fn from_row(row: &SqliteRow) -> Result<RoleRow> {
    let domain_id: String = row.try_get("domain_id")?;
    Ok(RoleRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: (domain_id != NULL_DOMAIN).then_some(domain_id),
        description: row.try_get("description")?,
        options: json_map(row.try_get("options")?),
        extra: json_map(row.try_get("extra")?),
    })
}

pub async fn insert(db: &Db, r: &RoleRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO roles ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    ))
    .bind(&r.id)
    .bind(&r.name)
    .bind(r.domain_id.as_deref().unwrap_or(NULL_DOMAIN))
    .bind(&r.description)
    .bind(json_text(&r.options))
    .bind(json_text(&r.extra))
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update(db: &Db, r: &RoleRow) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE roles SET name = ?, description = ?, options = ?, extra = ? WHERE id = ?")
        .bind(&r.name)
        .bind(&r.description)
        .bind(json_text(&r.options))
        .bind(json_text(&r.extra))
        .bind(&r.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<RoleRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM roles WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get_by_name(db: &Db, domain_id: Option<&str>, name: &str) -> Result<Option<RoleRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM roles WHERE domain_id = ? AND name = ?"
    ))
    .bind(domain_id.unwrap_or(NULL_DOMAIN))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<RoleRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM roles ORDER BY name, id"))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM roles WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Every inference rule as (prior, implied).
pub async fn list_implications(db: &Db) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT prior_role_id, implied_role_id FROM implied_roles ORDER BY prior_role_id",
    )
    .fetch_all(db.pool())
    .await?)
}

pub async fn add_implication(db: &Db, prior: &str, implied: &str) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO implied_roles (prior_role_id, implied_role_id) VALUES (?, ?)",
    )
    .bind(prior)
    .bind(implied)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn remove_implication(db: &Db, prior: &str, implied: &str) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM implied_roles WHERE prior_role_id = ? AND implied_role_id = ?")
            .bind(prior)
            .bind(implied)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}
