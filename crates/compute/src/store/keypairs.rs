//! Keypairs, per user.

use nubo_common::{Db, Result};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct KeypairRow {
    pub user_id: String,
    pub name: String,
    pub id: i64,
    pub kind: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: String,
}

fn row(r: &sqlx::sqlite::SqliteRow) -> KeypairRow {
    KeypairRow {
        user_id: r.get("user_id"),
        name: r.get("name"),
        id: r.get("id"),
        kind: r.get("type"),
        public_key: r.get("public_key"),
        fingerprint: r.get("fingerprint"),
        created_at: r.get("created_at"),
    }
}

/// Inserts; a duplicate name is a unique violation (the caller maps it to 409).
pub async fn insert(db: &Db, k: &KeypairRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO compute_keypairs (user_id, name, id, type, public_key, fingerprint, created_at)
         VALUES (?, ?, (SELECT coalesce(max(id), 0) + 1 FROM compute_keypairs), ?, ?, ?, ?)",
    )
    .bind(&k.user_id)
    .bind(&k.name)
    .bind(&k.kind)
    .bind(&k.public_key)
    .bind(&k.fingerprint)
    .bind(&k.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, user_id: &str, name: &str) -> Result<Option<KeypairRow>> {
    let r = sqlx::query("SELECT * FROM compute_keypairs WHERE user_id = ? AND name = ?")
        .bind(user_id)
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(r.as_ref().map(row))
}

pub async fn list(db: &Db, user_id: &str) -> Result<Vec<KeypairRow>> {
    let rows = sqlx::query("SELECT * FROM compute_keypairs WHERE user_id = ? ORDER BY name")
        .bind(user_id)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn count(db: &Db, user_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM compute_keypairs WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?,
    )
}

pub async fn delete(db: &Db, user_id: &str, name: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM compute_keypairs WHERE user_id = ? AND name = ?")
        .bind(user_id)
        .bind(name)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
