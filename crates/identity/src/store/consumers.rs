//! SQL for OAuth1 consumers.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{json_map, json_text};

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRow {
    pub id: String,
    pub description: Option<String>,
    pub secret_hash: String,
    pub extra: Map<String, Value>,
}

pub async fn insert(db: &Db, c: &ConsumerRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_consumers (id, description, secret_hash, extra) VALUES (?, ?, ?, ?)",
    )
    .bind(&c.id)
    .bind(&c.description)
    .bind(&c.secret_hash)
    .bind(json_text(&c.extra))
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update(db: &Db, c: &ConsumerRow) -> Result<()> {
    sqlx::query("UPDATE oauth_consumers SET description = ?, extra = ? WHERE id = ?")
        .bind(&c.description)
        .bind(json_text(&c.extra))
        .bind(&c.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn list(db: &Db) -> Result<Vec<ConsumerRow>> {
    let rows =
        sqlx::query("SELECT id, description, secret_hash, extra FROM oauth_consumers ORDER BY id")
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|row| {
            Ok(ConsumerRow {
                id: row.try_get("id")?,
                description: row.try_get("description")?,
                secret_hash: row.try_get("secret_hash")?,
                extra: json_map(row.try_get("extra")?),
            })
        })
        .collect()
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM oauth_consumers WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
