//! SQL for OS-EP-FILTER: endpoint groups, and which endpoints / endpoint groups a project sees.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{json_map, json_text};

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointGroupRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Endpoint attributes an endpoint must match: `service_id`, `interface`, `region_id`.
    pub filters: Map<String, Value>,
}

pub async fn insert_group(db: &Db, g: &EndpointGroupRow) -> Result<()> {
    sqlx::query("INSERT INTO endpoint_groups (id, name, description, filters) VALUES (?, ?, ?, ?)")
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(json_text(&g.filters))
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn update_group(db: &Db, g: &EndpointGroupRow) -> Result<()> {
    sqlx::query("UPDATE endpoint_groups SET name = ?, description = ?, filters = ? WHERE id = ?")
        .bind(&g.name)
        .bind(&g.description)
        .bind(json_text(&g.filters))
        .bind(&g.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn list_groups(db: &Db) -> Result<Vec<EndpointGroupRow>> {
    let rows =
        sqlx::query("SELECT id, name, description, filters FROM endpoint_groups ORDER BY name, id")
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|row| {
            Ok(EndpointGroupRow {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                filters: json_map(row.try_get("filters")?),
            })
        })
        .collect()
}

pub async fn delete_group(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM endpoint_groups WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// (endpoint group id, project id) associations.
pub async fn list_group_projects(db: &Db) -> Result<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT endpoint_group_id, project_id FROM project_endpoint_groups")
            .fetch_all(db.pool())
            .await?,
    )
}

pub async fn add_group_project(db: &Db, group_id: &str, project_id: &str) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO project_endpoint_groups (endpoint_group_id, project_id) VALUES (?, ?)")
        .bind(group_id)
        .bind(project_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn remove_group_project(db: &Db, group_id: &str, project_id: &str) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM project_endpoint_groups WHERE endpoint_group_id = ? AND project_id = ?",
    )
    .bind(group_id)
    .bind(project_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// (endpoint id, project id) associations.
pub async fn list_project_endpoints(db: &Db) -> Result<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT endpoint_id, project_id FROM project_endpoints")
            .fetch_all(db.pool())
            .await?,
    )
}

pub async fn add_project_endpoint(db: &Db, endpoint_id: &str, project_id: &str) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO project_endpoints (endpoint_id, project_id) VALUES (?, ?)")
        .bind(endpoint_id)
        .bind(project_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn remove_project_endpoint(db: &Db, endpoint_id: &str, project_id: &str) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM project_endpoints WHERE endpoint_id = ? AND project_id = ?")
            .bind(endpoint_id)
            .bind(project_id)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}
