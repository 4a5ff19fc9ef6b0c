//! Quotas, quota classes and the service records admins may disable.

use std::collections::BTreeMap;

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

/// The limits set for one project (resources without a row use the defaults).
pub async fn quotas_of(
    conn: &mut SqliteConnection,
    project: &str,
) -> Result<BTreeMap<String, i64>> {
    let rows = sqlx::query("SELECT resource, hard_limit FROM volume_quotas WHERE project_id = ?")
        .bind(project)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("resource"), r.get("hard_limit")))
        .collect())
}

pub async fn set_quota(
    conn: &mut SqliteConnection,
    project: &str,
    resource: &str,
    limit: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_quotas (project_id, resource, hard_limit) VALUES (?, ?, ?)
         ON CONFLICT(project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(project)
    .bind(resource)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_quotas(conn: &mut SqliteConnection, project: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_quotas WHERE project_id = ?")
        .bind(project)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn quota_class(
    conn: &mut SqliteConnection,
    class: &str,
) -> Result<BTreeMap<String, i64>> {
    let rows =
        sqlx::query("SELECT resource, hard_limit FROM volume_quota_classes WHERE class_name = ?")
            .bind(class)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get("resource"), r.get("hard_limit")))
        .collect())
}

pub async fn set_quota_class(
    conn: &mut SqliteConnection,
    class: &str,
    resource: &str,
    limit: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_quota_classes (class_name, resource, hard_limit) VALUES (?, ?, ?)
         ON CONFLICT(class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
    )
    .bind(class)
    .bind(resource)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub binary: String,
    pub host: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub frozen: bool,
    pub updated_at: String,
}

pub async fn services(conn: &mut SqliteConnection) -> Result<Vec<ServiceRow>> {
    let rows = sqlx::query("SELECT * FROM volume_services ORDER BY binary, host")
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| ServiceRow {
            binary: r.get("binary"),
            host: r.get("host"),
            disabled: r.get::<i64, _>("disabled") != 0,
            disabled_reason: r.get("disabled_reason"),
            frozen: r.get::<i64, _>("frozen") != 0,
            updated_at: r.get("updated_at"),
        })
        .collect())
}

/// Records a service if it is not known yet.
pub async fn ensure_service(
    conn: &mut SqliteConnection,
    binary: &str,
    host: &str,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO volume_services (binary, host, updated_at) VALUES (?, ?, ?)",
    )
    .bind(binary)
    .bind(host)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_service(conn: &mut SqliteConnection, s: &ServiceRow) -> Result<()> {
    sqlx::query(
        "UPDATE volume_services SET disabled = ?, disabled_reason = ?, frozen = ?, updated_at = ?
         WHERE binary = ? AND host = ?",
    )
    .bind(s.disabled as i64)
    .bind(&s.disabled_reason)
    .bind(s.frozen as i64)
    .bind(&s.updated_at)
    .bind(&s.binary)
    .bind(&s.host)
    .execute(conn)
    .await?;
    Ok(())
}
