//! User messages: why an asynchronous operation failed (3.3).

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: String,
    pub project_id: String,
    pub request_id: String,
    pub resource_type: Option<String>,
    pub resource_uuid: Option<String>,
    pub event_id: String,
    pub message_level: String,
    pub user_message: String,
    pub created_at: String,
    pub expires_at: String,
}

fn row(r: &sqlx::sqlite::SqliteRow) -> MessageRow {
    MessageRow {
        id: r.get("id"),
        project_id: r.get("project_id"),
        request_id: r.get("request_id"),
        resource_type: r.get("resource_type"),
        resource_uuid: r.get("resource_uuid"),
        event_id: r.get("event_id"),
        message_level: r.get("message_level"),
        user_message: r.get("user_message"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
    }
}

pub async fn insert(conn: &mut SqliteConnection, m: &MessageRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_messages (id, project_id, request_id, resource_type, resource_uuid,
            event_id, message_level, user_message, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&m.id)
    .bind(&m.project_id)
    .bind(&m.request_id)
    .bind(&m.resource_type)
    .bind(&m.resource_uuid)
    .bind(&m.event_id)
    .bind(&m.message_level)
    .bind(&m.user_message)
    .bind(&m.created_at)
    .bind(&m.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<MessageRow>> {
    let r = sqlx::query("SELECT * FROM volume_messages WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

pub async fn list(conn: &mut SqliteConnection, project: Option<&str>) -> Result<Vec<MessageRow>> {
    let rows = sqlx::query(
        "SELECT * FROM volume_messages WHERE (? IS NULL OR project_id = ?)
         ORDER BY created_at DESC, id DESC",
    )
    .bind(project)
    .bind(project)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_messages WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
