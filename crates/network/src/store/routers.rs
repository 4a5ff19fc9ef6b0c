//! SQL for routers. A router's interfaces are ports (`device_owner` `network:router_interface`,
//! `device_id` the router); its gateway is the port named by `gw_port_id`.

use nubo_common::Result;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, to_json, Conn};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouterRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub gw_port_id: Option<String>,
    pub gw_network_id: Option<String>,
    pub enable_snat: bool,
    pub routes: Vec<Route>,
    pub availability_zone_hints: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

const COLUMNS: &str = "id, project_id, name, description, admin_state_up, status, gw_port_id, \
    gw_network_id, enable_snat, routes, availability_zone_hints, created_at, updated_at, \
    revision_number";

fn from_row(row: &SqliteRow) -> Result<RouterRow> {
    Ok(RouterRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        admin_state_up: row.try_get("admin_state_up")?,
        status: row.try_get("status")?,
        gw_port_id: row.try_get("gw_port_id")?,
        gw_network_id: row.try_get("gw_network_id")?,
        enable_snat: row.try_get("enable_snat")?,
        routes: from_json(row.try_get("routes")?),
        availability_zone_hints: from_json(row.try_get("availability_zone_hints")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub async fn insert(conn: &mut Conn, r: &RouterRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO routers ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&r.id)
    .bind(&r.project_id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(r.admin_state_up)
    .bind(&r.status)
    .bind(&r.gw_port_id)
    .bind(&r.gw_network_id)
    .bind(r.enable_snat)
    .bind(to_json(&r.routes))
    .bind(to_json(&r.availability_zone_hints))
    .bind(&r.created_at)
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut Conn, r: &RouterRow) -> Result<()> {
    sqlx::query(
        "UPDATE routers SET name = ?, description = ?, admin_state_up = ?, status = ?, gw_port_id = ?,
         gw_network_id = ?, enable_snat = ?, routes = ?, updated_at = ?, revision_number = ?
         WHERE id = ?",
    )
    .bind(&r.name)
    .bind(&r.description)
    .bind(r.admin_state_up)
    .bind(&r.status)
    .bind(&r.gw_port_id)
    .bind(&r.gw_network_id)
    .bind(r.enable_snat)
    .bind(to_json(&r.routes))
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .bind(&r.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<RouterRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM routers WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every router, or those of one project; oldest first.
pub async fn list(conn: &mut Conn, project_id: Option<&str>) -> Result<Vec<RouterRow>> {
    let rows = match project_id {
        Some(p) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM routers WHERE project_id = ? ORDER BY rowid"
            ))
            .bind(p)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!("SELECT {COLUMNS} FROM routers ORDER BY rowid"))
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Routers with their gateway on `network_id`.
pub async fn with_gateway_on(conn: &mut Conn, network_id: &str) -> Result<Vec<RouterRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM routers WHERE gw_network_id = ? ORDER BY rowid"
    ))
    .bind(network_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM routers WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM routers WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

pub async fn find_by_name(
    conn: &mut Conn,
    project_id: &str,
    name: &str,
) -> Result<Option<RouterRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM routers WHERE project_id = ? AND name = ? ORDER BY rowid LIMIT 1"
    ))
    .bind(project_id)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}
