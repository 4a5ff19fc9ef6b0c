//! SQL for subnet pools.

use nubo_common::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, to_json, Conn};

#[derive(Debug, Clone, PartialEq)]
pub struct SubnetPoolRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: i64,
    pub prefixes: Vec<String>,
    pub min_prefixlen: i64,
    pub max_prefixlen: i64,
    pub default_prefixlen: i64,
    pub shared: bool,
    pub is_default: bool,
    pub default_quota: Option<i64>,
    pub address_scope_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

const COLUMNS: &str = "id, project_id, name, description, ip_version, prefixes, min_prefixlen, \
    max_prefixlen, default_prefixlen, shared, is_default, default_quota, address_scope_id, \
    created_at, updated_at, revision_number";

fn from_row(row: &SqliteRow) -> Result<SubnetPoolRow> {
    Ok(SubnetPoolRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        ip_version: row.try_get("ip_version")?,
        prefixes: from_json(row.try_get("prefixes")?),
        min_prefixlen: row.try_get("min_prefixlen")?,
        max_prefixlen: row.try_get("max_prefixlen")?,
        default_prefixlen: row.try_get("default_prefixlen")?,
        shared: row.try_get("shared")?,
        is_default: row.try_get("is_default")?,
        default_quota: row.try_get("default_quota")?,
        address_scope_id: row.try_get("address_scope_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub async fn insert(conn: &mut Conn, p: &SubnetPoolRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO subnetpools ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&p.id)
    .bind(&p.project_id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.ip_version)
    .bind(to_json(&p.prefixes))
    .bind(p.min_prefixlen)
    .bind(p.max_prefixlen)
    .bind(p.default_prefixlen)
    .bind(p.shared)
    .bind(p.is_default)
    .bind(p.default_quota)
    .bind(&p.address_scope_id)
    .bind(&p.created_at)
    .bind(&p.updated_at)
    .bind(p.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut Conn, p: &SubnetPoolRow) -> Result<()> {
    sqlx::query(
        "UPDATE subnetpools SET name = ?, description = ?, prefixes = ?, min_prefixlen = ?,
         max_prefixlen = ?, default_prefixlen = ?, shared = ?, is_default = ?, default_quota = ?,
         updated_at = ?, revision_number = ? WHERE id = ?",
    )
    .bind(&p.name)
    .bind(&p.description)
    .bind(to_json(&p.prefixes))
    .bind(p.min_prefixlen)
    .bind(p.max_prefixlen)
    .bind(p.default_prefixlen)
    .bind(p.shared)
    .bind(p.is_default)
    .bind(p.default_quota)
    .bind(&p.updated_at)
    .bind(p.revision_number)
    .bind(&p.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<SubnetPoolRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM subnetpools WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(conn: &mut Conn) -> Result<Vec<SubnetPoolRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM subnetpools ORDER BY rowid"))
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The default pool of an IP version.
pub async fn default_for(conn: &mut Conn, ip_version: i64) -> Result<Option<SubnetPoolRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subnetpools WHERE is_default = 1 AND ip_version = ? LIMIT 1"
    ))
    .bind(ip_version)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM subnetpools WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM subnetpools WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}
