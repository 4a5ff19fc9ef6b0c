//! SQL for per-project quota overrides (defaults come from configuration).

use nubo_common::Result;

use super::Conn;

/// The overrides of one project: (resource, limit).
pub async fn of_project(conn: &mut Conn, project_id: &str) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = ? ORDER BY resource",
    )
    .bind(project_id)
    .fetch_all(conn)
    .await?)
}

/// Projects that have any override.
pub async fn projects(conn: &mut Conn) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT project_id FROM quotas ORDER BY project_id")
            .fetch_all(conn)
            .await?,
    )
}

pub async fn set(conn: &mut Conn, project_id: &str, resource: &str, limit: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
         ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(project_id)
    .bind(resource)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn reset(conn: &mut Conn, project_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM quotas WHERE project_id = ?")
        .bind(project_id)
        .execute(conn)
        .await?;
    Ok(())
}
