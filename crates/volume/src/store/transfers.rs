//! Volume transfers between projects.

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

#[derive(Debug, Clone, PartialEq)]
pub struct TransferRow {
    pub id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub salt: String,
    /// sha256(salt + auth key), hex.
    pub crypt_hash: String,
    pub source_project_id: String,
    pub destination_project_id: Option<String>,
    pub accepted: bool,
    pub no_snapshots: bool,
    pub created_at: String,
}

fn row(r: &sqlx::sqlite::SqliteRow) -> TransferRow {
    TransferRow {
        id: r.get("id"),
        volume_id: r.get("volume_id"),
        name: r.get("name"),
        salt: r.get("salt"),
        crypt_hash: r.get("crypt_hash"),
        source_project_id: r.get("source_project_id"),
        destination_project_id: r.get("destination_project_id"),
        accepted: r.get::<i64, _>("accepted") != 0,
        no_snapshots: r.get::<i64, _>("no_snapshots") != 0,
        created_at: r.get("created_at"),
    }
}

pub async fn insert(conn: &mut SqliteConnection, t: &TransferRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_transfers (id, volume_id, name, salt, crypt_hash, source_project_id,
            destination_project_id, accepted, no_snapshots, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.volume_id)
    .bind(&t.name)
    .bind(&t.salt)
    .bind(&t.crypt_hash)
    .bind(&t.source_project_id)
    .bind(&t.destination_project_id)
    .bind(t.accepted as i64)
    .bind(t.no_snapshots as i64)
    .bind(&t.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<TransferRow>> {
    let r = sqlx::query("SELECT * FROM volume_transfers WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

pub async fn of_volume(conn: &mut SqliteConnection, volume: &str) -> Result<Vec<TransferRow>> {
    let rows = sqlx::query("SELECT * FROM volume_transfers WHERE volume_id = ?")
        .bind(volume)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn list(conn: &mut SqliteConnection, project: Option<&str>) -> Result<Vec<TransferRow>> {
    let rows = sqlx::query(
        "SELECT * FROM volume_transfers WHERE (? IS NULL OR source_project_id = ?)
         ORDER BY created_at DESC, id DESC",
    )
    .bind(project)
    .bind(project)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_transfers WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
