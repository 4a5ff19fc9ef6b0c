//! SQL for ports, their fixed IPs (`ip_allocations`, where IPAM's uniqueness lives) and their
//! security-group bindings.

use std::collections::HashMap;

use nubo_common::Result;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, placeholders, to_json, Conn};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOpt {
    pub opt_name: String,
    pub opt_value: String,
    pub ip_version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortRow {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub status: String,
    pub mac_address: String,
    pub device_id: String,
    pub device_owner: String,
    pub port_security_enabled: bool,
    pub host_id: String,
    pub vnic_type: String,
    pub vif_type: String,
    pub vif_details: Map<String, Value>,
    pub binding_profile: Map<String, Value>,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub extra_dhcp_opts: Vec<DhcpOpt>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

/// One address of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    pub port_id: String,
    pub network_id: String,
    pub subnet_id: String,
    pub ip_address: String,
}

const COLUMNS: &str = "id, project_id, network_id, name, description, admin_state_up, status, \
    mac_address, device_id, device_owner, port_security_enabled, host_id, vnic_type, vif_type, \
    vif_details, binding_profile, allowed_address_pairs, extra_dhcp_opts, created_at, \
    updated_at, revision_number";

fn from_row(row: &SqliteRow) -> Result<PortRow> {
    Ok(PortRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        network_id: row.try_get("network_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        admin_state_up: row.try_get("admin_state_up")?,
        status: row.try_get("status")?,
        mac_address: row.try_get("mac_address")?,
        device_id: row.try_get("device_id")?,
        device_owner: row.try_get("device_owner")?,
        port_security_enabled: row.try_get("port_security_enabled")?,
        host_id: row.try_get("host_id")?,
        vnic_type: row.try_get("vnic_type")?,
        vif_type: row.try_get("vif_type")?,
        vif_details: from_json(row.try_get("vif_details")?),
        binding_profile: from_json(row.try_get("binding_profile")?),
        allowed_address_pairs: from_json(row.try_get("allowed_address_pairs")?),
        extra_dhcp_opts: from_json(row.try_get("extra_dhcp_opts")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub async fn insert(conn: &mut Conn, p: &PortRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO ports ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&p.id)
    .bind(&p.project_id)
    .bind(&p.network_id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.admin_state_up)
    .bind(&p.status)
    .bind(&p.mac_address)
    .bind(&p.device_id)
    .bind(&p.device_owner)
    .bind(p.port_security_enabled)
    .bind(&p.host_id)
    .bind(&p.vnic_type)
    .bind(&p.vif_type)
    .bind(to_json(&p.vif_details))
    .bind(to_json(&p.binding_profile))
    .bind(to_json(&p.allowed_address_pairs))
    .bind(to_json(&p.extra_dhcp_opts))
    .bind(&p.created_at)
    .bind(&p.updated_at)
    .bind(p.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut Conn, p: &PortRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ports SET project_id = ?, name = ?, description = ?, admin_state_up = ?, status = ?,
         mac_address = ?, device_id = ?, device_owner = ?, port_security_enabled = ?, host_id = ?,
         vnic_type = ?, vif_type = ?, vif_details = ?, binding_profile = ?,
         allowed_address_pairs = ?, extra_dhcp_opts = ?, updated_at = ?, revision_number = ?
         WHERE id = ?",
    )
    .bind(&p.project_id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.admin_state_up)
    .bind(&p.status)
    .bind(&p.mac_address)
    .bind(&p.device_id)
    .bind(&p.device_owner)
    .bind(p.port_security_enabled)
    .bind(&p.host_id)
    .bind(&p.vnic_type)
    .bind(&p.vif_type)
    .bind(to_json(&p.vif_details))
    .bind(to_json(&p.binding_profile))
    .bind(to_json(&p.allowed_address_pairs))
    .bind(to_json(&p.extra_dhcp_opts))
    .bind(&p.updated_at)
    .bind(p.revision_number)
    .bind(&p.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<PortRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM ports WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM ports WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Selective conditions pushed into SQL; `None` means "any".
#[derive(Debug, Default, Clone)]
pub struct PortFilter {
    pub ids: Option<Vec<String>>,
    pub network_id: Option<String>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub mac_address: Option<String>,
    pub host_id: Option<String>,
    /// Ports a non-admin project may see: its own, and any on a network it owns.
    pub visible_to: Option<String>,
}

/// Ports matching `filter`, oldest first.
pub async fn list(conn: &mut Conn, filter: &PortFilter) -> Result<Vec<PortRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM ports WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    if let Some(ids) = &filter.ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sql.push_str(&format!(" AND id IN ({})", placeholders(ids.len())));
        binds.extend(ids.iter().cloned());
    }
    for (column, value) in [
        ("network_id", &filter.network_id),
        ("device_id", &filter.device_id),
        ("device_owner", &filter.device_owner),
        ("mac_address", &filter.mac_address),
        ("host_id", &filter.host_id),
    ] {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            binds.push(v.clone());
        }
    }
    if let Some(project) = &filter.visible_to {
        sql.push_str(
            " AND (project_id = ? OR network_id IN (SELECT id FROM networks WHERE project_id = ?))",
        );
        binds.push(project.clone());
        binds.push(project.clone());
    }
    sql.push_str(" ORDER BY rowid");
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM ports WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

fn fixed_ip_from_row(row: &SqliteRow) -> Result<FixedIp> {
    Ok(FixedIp {
        port_id: row.try_get("port_id")?,
        network_id: row.try_get("network_id")?,
        subnet_id: row.try_get("subnet_id")?,
        ip_address: row.try_get("ip_address")?,
    })
}

/// Runs `sql` (which ends in `IN (`) over `ids` in chunks SQLite accepts.
async fn chunked(
    conn: &mut Conn,
    prefix: &str,
    suffix: &str,
    ids: &[String],
) -> Result<Vec<SqliteRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!("{prefix}{}){suffix}", placeholders(chunk.len()));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        out.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// The fixed IPs of `port_ids`, in allocation order, keyed by port.
pub async fn fixed_ips_of(
    conn: &mut Conn,
    port_ids: &[String],
) -> Result<HashMap<String, Vec<FixedIp>>> {
    let rows = chunked(
        conn,
        "SELECT port_id, network_id, subnet_id, ip_address FROM ip_allocations WHERE port_id IN (",
        " ORDER BY rowid",
        port_ids,
    )
    .await?;
    let mut out: HashMap<String, Vec<FixedIp>> = HashMap::new();
    for row in &rows {
        let ip = fixed_ip_from_row(row)?;
        out.entry(ip.port_id.clone()).or_default().push(ip);
    }
    Ok(out)
}

/// Every fixed IP on `subnet_id`.
pub async fn fixed_ips_on_subnet(conn: &mut Conn, subnet_id: &str) -> Result<Vec<FixedIp>> {
    let rows = sqlx::query(
        "SELECT port_id, network_id, subnet_id, ip_address FROM ip_allocations WHERE subnet_id = ?
         ORDER BY rowid",
    )
    .bind(subnet_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(fixed_ip_from_row).collect()
}

/// Records an allocation; a duplicate address on the network is a unique violation.
pub async fn insert_fixed_ip(conn: &mut Conn, ip: &FixedIp, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ip_allocations (network_id, ip_address, subnet_id, port_id, ip_key)
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&ip.network_id)
    .bind(&ip.ip_address)
    .bind(&ip.subnet_id)
    .bind(&ip.port_id)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_fixed_ip(conn: &mut Conn, network_id: &str, ip_address: &str) -> Result<()> {
    sqlx::query("DELETE FROM ip_allocations WHERE network_id = ? AND ip_address = ?")
        .bind(network_id)
        .bind(ip_address)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_fixed_ips_on_subnet(conn: &mut Conn, subnet_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM ip_allocations WHERE subnet_id = ?")
        .bind(subnet_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The port holding `ip_address` on `network_id`, if any.
pub async fn ip_owner(
    conn: &mut Conn,
    network_id: &str,
    ip_address: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT port_id FROM ip_allocations WHERE network_id = ? AND ip_address = ?",
    )
    .bind(network_id)
    .bind(ip_address)
    .fetch_optional(conn)
    .await?)
}

/// The highest allocated address key on a subnet.
pub async fn max_ip_key(conn: &mut Conn, subnet_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT max(ip_key) FROM ip_allocations WHERE subnet_id = ?")
            .bind(subnet_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Every allocated address key on a subnet, ascending.
pub async fn used_ip_keys(conn: &mut Conn, subnet_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT ip_key FROM ip_allocations WHERE subnet_id = ? ORDER BY ip_key")
            .bind(subnet_id)
            .fetch_all(conn)
            .await?,
    )
}

pub async fn count_ips_on_subnet(conn: &mut Conn, subnet_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM ip_allocations WHERE subnet_id = ?")
            .bind(subnet_id)
            .fetch_one(conn)
            .await?,
    )
}

pub async fn mac_in_use(conn: &mut Conn, network_id: &str, mac: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM ports WHERE network_id = ? AND mac_address = ?")
            .bind(network_id)
            .bind(mac)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// The security groups of `port_ids`, keyed by port.
pub async fn security_groups_of(
    conn: &mut Conn,
    port_ids: &[String],
) -> Result<HashMap<String, Vec<String>>> {
    let rows = chunked(
        conn,
        "SELECT port_id, security_group_id FROM port_security_groups WHERE port_id IN (",
        " ORDER BY rowid",
        port_ids,
    )
    .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for row in &rows {
        out.entry(row.try_get("port_id")?)
            .or_default()
            .push(row.try_get("security_group_id")?);
    }
    Ok(out)
}

/// Replaces the security groups of a port.
pub async fn set_security_groups(conn: &mut Conn, port_id: &str, groups: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM port_security_groups WHERE port_id = ?")
        .bind(port_id)
        .execute(&mut *conn)
        .await?;
    for group in groups {
        sqlx::query(
            "INSERT OR IGNORE INTO port_security_groups (port_id, security_group_id) VALUES (?, ?)",
        )
        .bind(port_id)
        .bind(group)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The ports bound to a security group.
pub async fn ports_in_security_group(conn: &mut Conn, group_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT port_id FROM port_security_groups WHERE security_group_id = ? ORDER BY rowid",
    )
    .bind(group_id)
    .fetch_all(conn)
    .await?)
}

/// Sets a port's status (the data plane reports it).
pub async fn set_status(conn: &mut Conn, id: &str, status: &str, now: &str) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE ports SET status = ?, updated_at = ?, revision_number = revision_number + 1
         WHERE id = ? AND status != ?",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .bind(status)
    .execute(conn)
    .await?
    .rows_affected())
}
