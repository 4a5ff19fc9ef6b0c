//! What remains of a deleted server: whose it was (its instance actions stay in
//! `compute_actions`, visible with `os-instance-actions` from 2.21 on).

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

#[derive(Debug, Clone, PartialEq)]
pub struct DeletedRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: String,
    pub deleted_at: String,
}

pub async fn insert(conn: &mut SqliteConnection, d: &DeletedRow) -> Result<()> {
    sqlx::query(
        "INSERT OR REPLACE INTO compute_deleted_servers (id, project_id, user_id, name, created_at, deleted_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&d.id)
    .bind(&d.project_id)
    .bind(&d.user_id)
    .bind(&d.name)
    .bind(&d.created_at)
    .bind(&d.deleted_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<DeletedRow>> {
    let r = sqlx::query("SELECT * FROM compute_deleted_servers WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.map(|r| DeletedRow {
        id: r.get("id"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        name: r.get("name"),
        created_at: r.get("created_at"),
        deleted_at: r.get("deleted_at"),
    }))
}
