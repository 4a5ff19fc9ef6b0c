//! The `image_members` table: which projects a shared image is shared with, and whether each
//! accepted it.

use nubo_common::{Db, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// One membership.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub image_id: String,
    pub member_id: String,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

fn from_row(row: &SqliteRow) -> Result<MemberRow> {
    Ok(MemberRow {
        image_id: row.try_get("image_id")?,
        member_id: row.try_get("member_id")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub async fn insert(db: &Db, member: &MemberRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO image_members (image_id, member_id, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&member.image_id)
    .bind(&member.member_id)
    .bind(&member.status)
    .bind(&member.created_at)
    .bind(&member.updated_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, image_id: &str, member_id: &str) -> Result<Option<MemberRow>> {
    let row = sqlx::query(
        "SELECT image_id, member_id, status, created_at, updated_at FROM image_members
         WHERE image_id = ? AND member_id = ?",
    )
    .bind(image_id)
    .bind(member_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db, image_id: &str) -> Result<Vec<MemberRow>> {
    let rows = sqlx::query(
        "SELECT image_id, member_id, status, created_at, updated_at FROM image_members
         WHERE image_id = ? ORDER BY created_at, member_id",
    )
    .bind(image_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn count(db: &Db, image_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM image_members WHERE image_id = ?")
            .bind(image_id)
            .fetch_one(db.pool())
            .await?,
    )
}

pub async fn set_status(db: &Db, image_id: &str, member_id: &str, status: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member_id = ?",
    )
    .bind(status)
    .bind(nubo_common::time::now_rfc3339())
    .bind(image_id)
    .bind(member_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(db: &Db, image_id: &str, member_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM image_members WHERE image_id = ? AND member_id = ?")
        .bind(image_id)
        .bind(member_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}
