//! SQL for networks and their segments (type, physical network, segmentation id).

use nubo_common::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, to_json, Conn};

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub external: bool,
    pub is_default: bool,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
    pub mtu: i64,
    pub port_security_enabled: bool,
    pub availability_zone_hints: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

const COLUMNS: &str = "id, project_id, name, description, admin_state_up, status, external, \
    is_default, network_type, physical_network, segmentation_id, mtu, port_security_enabled, \
    availability_zone_hints, created_at, updated_at, revision_number";

fn from_row(row: &SqliteRow) -> Result<NetworkRow> {
    Ok(NetworkRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        admin_state_up: row.try_get("admin_state_up")?,
        status: row.try_get("status")?,
        external: row.try_get("external")?,
        is_default: row.try_get("is_default")?,
        network_type: row.try_get("network_type")?,
        physical_network: row.try_get("physical_network")?,
        segmentation_id: row.try_get("segmentation_id")?,
        mtu: row.try_get("mtu")?,
        port_security_enabled: row.try_get("port_security_enabled")?,
        availability_zone_hints: from_json(row.try_get("availability_zone_hints")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub async fn insert(conn: &mut Conn, n: &NetworkRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO networks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.name)
    .bind(&n.description)
    .bind(n.admin_state_up)
    .bind(&n.status)
    .bind(n.external)
    .bind(n.is_default)
    .bind(&n.network_type)
    .bind(&n.physical_network)
    .bind(n.segmentation_id)
    .bind(n.mtu)
    .bind(n.port_security_enabled)
    .bind(to_json(&n.availability_zone_hints))
    .bind(&n.created_at)
    .bind(&n.updated_at)
    .bind(n.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes every mutable attribute of `n`.
pub async fn update(conn: &mut Conn, n: &NetworkRow) -> Result<()> {
    sqlx::query(
        "UPDATE networks SET name = ?, description = ?, admin_state_up = ?, status = ?, external = ?,
         is_default = ?, mtu = ?, port_security_enabled = ?, updated_at = ?, revision_number = ?
         WHERE id = ?",
    )
    .bind(&n.name)
    .bind(&n.description)
    .bind(n.admin_state_up)
    .bind(&n.status)
    .bind(n.external)
    .bind(n.is_default)
    .bind(n.mtu)
    .bind(n.port_security_enabled)
    .bind(&n.updated_at)
    .bind(n.revision_number)
    .bind(&n.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<NetworkRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM networks WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every network, oldest first.
pub async fn list(conn: &mut Conn) -> Result<Vec<NetworkRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM networks ORDER BY rowid"))
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM networks WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM networks WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

/// The segmentation ids of `network_type` in use within `[min, max]`, ascending.
pub async fn used_segments(
    conn: &mut Conn,
    network_type: &str,
    min: i64,
    max: i64,
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT segmentation_id FROM networks WHERE network_type = ? AND segmentation_id BETWEEN ? AND ?
         ORDER BY segmentation_id",
    )
    .bind(network_type)
    .bind(min)
    .bind(max)
    .fetch_all(conn)
    .await?)
}

/// The network using segment (`network_type`, `segmentation_id`), if any.
pub async fn segment_owner(
    conn: &mut Conn,
    network_type: &str,
    segmentation_id: i64,
) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar(
            "SELECT id FROM networks WHERE network_type = ? AND segmentation_id = ?",
        )
        .bind(network_type)
        .bind(segmentation_id)
        .fetch_optional(conn)
        .await?,
    )
}

/// The flat network on `physical_network`, if any.
pub async fn flat_owner(conn: &mut Conn, physical_network: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM networks WHERE network_type = 'flat' AND physical_network = ?",
    )
    .bind(physical_network)
    .fetch_optional(conn)
    .await?)
}

pub async fn find_by_name(
    conn: &mut Conn,
    project_id: &str,
    name: &str,
) -> Result<Option<NetworkRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM networks WHERE project_id = ? AND name = ? ORDER BY rowid LIMIT 1"
    ))
    .bind(project_id)
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}
