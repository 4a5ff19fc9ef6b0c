//! Per-project quota overrides (defaults come from the configuration).

use std::collections::BTreeMap;

use nubo_common::{Db, Result};
use sqlx::Row;

pub async fn of_project(db: &Db, project: &str) -> Result<BTreeMap<String, i64>> {
    let rows = sqlx::query("SELECT resource, hard_limit FROM compute_quotas WHERE project_id = ?")
        .bind(project)
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("resource"), r.get("hard_limit")))
        .collect())
}

pub async fn set(db: &Db, project: &str, resource: &str, limit: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO compute_quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
         ON CONFLICT(project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(project)
    .bind(resource)
    .bind(limit)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn clear(db: &Db, project: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_quotas WHERE project_id = ?")
        .bind(project)
        .execute(db.pool())
        .await?;
    Ok(())
}
