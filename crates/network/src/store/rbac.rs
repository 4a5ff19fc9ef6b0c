//! SQL for RBAC policies (who else may use a network, and how).

use nubo_common::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::Conn;

#[derive(Debug, Clone, PartialEq)]
pub struct RbacRow {
    pub id: String,
    pub project_id: String,
    pub object_type: String,
    pub object_id: String,
    pub action: String,
    pub target_project: String,
}

const COLUMNS: &str = "id, project_id, object_type, object_id, action, target_project";

fn from_row(row: &SqliteRow) -> Result<RbacRow> {
    Ok(RbacRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        object_type: row.try_get("object_type")?,
        object_id: row.try_get("object_id")?,
        action: row.try_get("action")?,
        target_project: row.try_get("target_project")?,
    })
}

pub async fn insert(conn: &mut Conn, r: &RbacRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO rbac_policies ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
    ))
    .bind(&r.id)
    .bind(&r.project_id)
    .bind(&r.object_type)
    .bind(&r.object_id)
    .bind(&r.action)
    .bind(&r.target_project)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_target(
    conn: &mut Conn,
    id: &str,
    target_project: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE rbac_policies SET target_project = ? WHERE id = ?")
        .bind(target_project)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<RbacRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM rbac_policies WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every policy, oldest first.
pub async fn list(conn: &mut Conn) -> Result<Vec<RbacRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rbac_policies ORDER BY rowid"
    ))
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The policies on one object.
pub async fn of_object(conn: &mut Conn, object_id: &str) -> Result<Vec<RbacRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rbac_policies WHERE object_id = ? ORDER BY rowid"
    ))
    .bind(object_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM rbac_policies WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_of_object(conn: &mut Conn, object_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM rbac_policies WHERE object_id = ?")
        .bind(object_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM rbac_policies WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}
