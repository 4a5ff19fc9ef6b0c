//! SQL for projects and domains (a domain is a project row with `is_domain = 1`) and project tags.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{json_map, json_text, ROOT_DOMAIN};

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    /// `None` for a domain.
    pub domain_id: Option<String>,
    /// A top-level project's parent is its domain; a domain has none.
    pub parent_id: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub is_domain: bool,
    pub extra: Map<String, Value>,
    pub options: Map<String, Value>,
    pub tags: Vec<String>,
}

const COLUMNS: &str =
    "id, name, domain_id, parent_id, description, enabled, is_domain, extra, options";

fn from_row(row: &SqliteRow) -> Result<ProjectRow> {
    let domain_id: String = row.try_get("domain_id")?;
    Ok(ProjectRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: (domain_id != ROOT_DOMAIN).then_some(domain_id),
        parent_id: row.try_get("parent_id")?,
        description: row.try_get("description")?,
        enabled: row.try_get("enabled")?,
        is_domain: row.try_get("is_domain")?,
        extra: json_map(row.try_get("extra")?),
        options: json_map(row.try_get("options")?),
        tags: Vec::new(),
    })
}

async fn with_tags(db: &Db, mut rows: Vec<ProjectRow>) -> Result<Vec<ProjectRow>> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let tags: Vec<(String, String)> =
        sqlx::query_as("SELECT project_id, name FROM project_tags ORDER BY name")
            .fetch_all(db.pool())
            .await?;
    for row in &mut rows {
        row.tags = tags
            .iter()
            .filter(|(p, _)| *p == row.id)
            .map(|(_, t)| t.clone())
            .collect();
    }
    Ok(rows)
}

pub async fn insert(db: &Db, p: &ProjectRow) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO projects (id, name, domain_id, parent_id, description, enabled, is_domain, extra, options, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(p.domain_id.as_deref().unwrap_or(ROOT_DOMAIN))
    .bind(&p.parent_id)
    .bind(&p.description)
    .bind(p.enabled)
    .bind(p.is_domain)
    .bind(json_text(&p.extra))
    .bind(json_text(&p.options))
    .bind(nubo_common::time::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    for tag in &p.tags {
        sqlx::query("INSERT OR IGNORE INTO project_tags (project_id, name) VALUES (?, ?)")
            .bind(&p.id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

pub async fn update(db: &Db, p: &ProjectRow) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "UPDATE projects SET name = ?, parent_id = ?, description = ?, enabled = ?, extra = ?, options = ?
         WHERE id = ?",
    )
    .bind(&p.name)
    .bind(&p.parent_id)
    .bind(&p.description)
    .bind(p.enabled)
    .bind(json_text(&p.extra))
    .bind(json_text(&p.options))
    .bind(&p.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM project_tags WHERE project_id = ?")
        .bind(&p.id)
        .execute(&mut *tx)
        .await?;
    for tag in &p.tags {
        sqlx::query("INSERT OR IGNORE INTO project_tags (project_id, name) VALUES (?, ?)")
            .bind(&p.id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<ProjectRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM projects WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut project = from_row(&row)?;
    project.tags =
        sqlx::query_scalar("SELECT name FROM project_tags WHERE project_id = ? ORDER BY name")
            .bind(id)
            .fetch_all(db.pool())
            .await?;
    Ok(Some(project))
}

/// A project (or, with `domain_id = None`, a domain) by name.
pub async fn get_by_name(
    db: &Db,
    domain_id: Option<&str>,
    name: &str,
) -> Result<Option<ProjectRow>> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM projects WHERE domain_id = ? AND name = ?")
            .bind(domain_id.unwrap_or(ROOT_DOMAIN))
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    match id {
        Some(id) => get(db, &id).await,
        None => Ok(None),
    }
}

/// Every project (`is_domain = false`) or every domain (`true`).
pub async fn list(db: &Db, is_domain: bool) -> Result<Vec<ProjectRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM projects WHERE is_domain = ? ORDER BY name, id"
    ))
    .bind(is_domain)
    .fetch_all(db.pool())
    .await?;
    let rows = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    with_tags(db, rows).await
}

/// The direct children of `parent_id` (projects only).
pub async fn children(db: &Db, parent_id: &str) -> Result<Vec<ProjectRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM projects WHERE parent_id = ? AND is_domain = 0 ORDER BY name, id"
    ))
    .bind(parent_id)
    .fetch_all(db.pool())
    .await?;
    let rows = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    with_tags(db, rows).await
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM assignments WHERE target_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM projects WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

/// True when any project, user or group still lives in domain `id`.
pub async fn domain_has_members(db: &Db, id: &str) -> Result<bool> {
    let count: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM projects WHERE domain_id = ?1)
              + (SELECT count(*) FROM users WHERE domain_id = ?1)
              + (SELECT count(*) FROM groups WHERE domain_id = ?1)",
    )
    .bind(id)
    .fetch_one(db.pool())
    .await?;
    Ok(count > 0)
}

/// Deletes a domain and everything that lives in it, in one transaction.
pub async fn delete_domain_cascade(db: &Db, id: &str) -> Result<()> {
    let mut tx = db.pool().begin().await?;
    for sql in [
        "DELETE FROM assignments WHERE target_id IN (SELECT id FROM projects WHERE domain_id = ?1)",
        "DELETE FROM assignments WHERE actor_id IN (SELECT id FROM users WHERE domain_id = ?1)",
        "DELETE FROM assignments WHERE actor_id IN (SELECT id FROM groups WHERE domain_id = ?1)",
        "DELETE FROM assignments WHERE target_id = ?1",
        "DELETE FROM users WHERE domain_id = ?1",
        "DELETE FROM groups WHERE domain_id = ?1",
        "DELETE FROM roles WHERE domain_id = ?1",
        "DELETE FROM projects WHERE domain_id = ?1",
        "DELETE FROM projects WHERE id = ?1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
