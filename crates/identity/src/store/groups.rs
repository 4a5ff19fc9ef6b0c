//! SQL for groups.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{json_map, json_text};

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
    pub extra: Map<String, Value>,
}

const COLUMNS: &str = "id, name, domain_id, description, extra";

fn from_row(row: &SqliteRow) -> Result<GroupRow> {
    Ok(GroupRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        description: row.try_get("description")?,
        extra: json_map(row.try_get("extra")?),
    })
}

pub async fn insert(db: &Db, g: &GroupRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO groups ({COLUMNS}) VALUES (?, ?, ?, ?, ?)"
    ))
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.domain_id)
    .bind(&g.description)
    .bind(json_text(&g.extra))
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update(db: &Db, g: &GroupRow) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE groups SET name = ?, description = ?, extra = ? WHERE id = ?")
        .bind(&g.name)
        .bind(&g.description)
        .bind(json_text(&g.extra))
        .bind(&g.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<GroupRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM groups WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get_by_name(db: &Db, domain_id: &str, name: &str) -> Result<Option<GroupRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM groups WHERE domain_id = ? AND name = ?"
    ))
    .bind(domain_id)
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<GroupRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM groups ORDER BY name, id"))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_for_user(db: &Db, user_id: &str) -> Result<Vec<GroupRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM groups WHERE id IN (SELECT group_id FROM user_groups WHERE user_id = ?)
         ORDER BY name, id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM assignments WHERE actor_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM groups WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}
