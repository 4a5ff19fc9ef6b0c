//! Questions for agents (console output) and their answers.

use nubo_common::{Db, Result};
use sqlx::Row;

use crate::agent_api::HostRequest;

pub async fn insert(db: &Db, host: &str, r: &HostRequest, now: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO compute_host_requests (id, host, server_id, kind, length, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.id)
    .bind(host)
    .bind(&r.server_id)
    .bind(&r.kind)
    .bind(r.length.map(|l| l as i64))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Open requests of a host.
pub async fn open_for(db: &Db, host: &str) -> Result<Vec<HostRequest>> {
    let rows = sqlx::query(
        "SELECT id, server_id, kind, length FROM compute_host_requests
         WHERE host = ? AND result IS NULL AND error IS NULL ORDER BY created_at",
    )
    .bind(host)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| HostRequest {
            id: r.get("id"),
            server_id: r.get("server_id"),
            kind: r.get("kind"),
            length: r.get::<Option<i64>, _>("length").map(|l| l as u64),
        })
        .collect())
}

/// Records an answer; returns the host the request was for.
pub async fn answer(
    db: &Db,
    id: &str,
    result: Option<&str>,
    error: Option<&str>,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE compute_host_requests SET result = coalesce(?, ''), error = ? WHERE id = ? RETURNING host",
    )
    .bind(if error.is_some() { None } else { result })
    .bind(error)
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// (result, error) once answered.
pub async fn outcome(db: &Db, id: &str) -> Result<Option<(Option<String>, Option<String>)>> {
    let r = sqlx::query(
        "SELECT result, error FROM compute_host_requests WHERE id = ? AND (result IS NOT NULL OR error IS NOT NULL)",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(r.map(|r| (r.get("result"), r.get("error"))))
}

pub async fn delete(db: &Db, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_host_requests WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}
