//! Instance actions and their events (`os-instance-actions`).

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub id: i64,
    pub server_id: String,
    pub action: String,
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub message: Option<String>,
    pub start_time: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub event: String,
    pub start_time: String,
    pub finish_time: Option<String>,
    pub result: Option<String>,
    pub traceback: Option<String>,
    pub host: Option<String>,
}

fn action(r: &sqlx::sqlite::SqliteRow) -> ActionRow {
    ActionRow {
        id: r.get("id"),
        server_id: r.get("server_id"),
        action: r.get("action"),
        request_id: r.get("request_id"),
        user_id: r.get("user_id"),
        project_id: r.get("project_id"),
        message: r.get("message"),
        start_time: r.get("start_time"),
        updated_at: r.get("updated_at"),
    }
}

/// Records an action with one event `event` (finished at once when `result` is given).
#[allow(clippy::too_many_arguments)]
pub async fn record(
    conn: &mut SqliteConnection,
    server_id: &str,
    name: &str,
    request_id: &str,
    user_id: &str,
    project_id: &str,
    event: &str,
    host: Option<&str>,
    now: &str,
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO compute_actions (server_id, action, request_id, user_id, project_id, message,
             start_time, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?) RETURNING id",
    )
    .bind(server_id)
    .bind(name)
    .bind(request_id)
    .bind(user_id)
    .bind(project_id)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO compute_action_events (action_id, event, start_time, host) VALUES (?, ?, ?, ?)",
    )
    .bind(id)
    .bind(event)
    .bind(now)
    .bind(host)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Finishes the open events of the latest action `name` of a server.
pub async fn finish(
    conn: &mut SqliteConnection,
    server_id: &str,
    result: &str,
    message: Option<&str>,
    traceback: Option<&str>,
    now: &str,
) -> Result<()> {
    let Some(id): Option<i64> = sqlx::query_scalar(
        "SELECT id FROM compute_actions WHERE server_id = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(server_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE compute_action_events SET finish_time = ?, result = ?, traceback = ?
         WHERE action_id = ? AND finish_time IS NULL",
    )
    .bind(now)
    .bind(result)
    .bind(traceback)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE compute_actions SET updated_at = ?, message = coalesce(?, message) WHERE id = ?",
    )
    .bind(now)
    .bind(message)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list(conn: &mut SqliteConnection, server_id: &str) -> Result<Vec<ActionRow>> {
    let rows = sqlx::query("SELECT * FROM compute_actions WHERE server_id = ? ORDER BY id DESC")
        .bind(server_id)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(action).collect())
}

pub async fn events(conn: &mut SqliteConnection, action_id: i64) -> Result<Vec<EventRow>> {
    let rows = sqlx::query("SELECT * FROM compute_action_events WHERE action_id = ? ORDER BY id")
        .bind(action_id)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| EventRow {
            event: r.get("event"),
            start_time: r.get("start_time"),
            finish_time: r.get("finish_time"),
            result: r.get("result"),
            traceback: r.get("traceback"),
            host: r.get("host"),
        })
        .collect())
}

pub async fn delete_of(conn: &mut SqliteConnection, server_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_actions WHERE server_id = ?")
        .bind(server_id)
        .execute(conn)
        .await?;
    Ok(())
}
