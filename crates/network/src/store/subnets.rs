//! SQL for subnets (allocation pools, DNS servers and host routes ride along as JSON).

use nubo_common::Result;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{from_json, to_json, Conn};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubnetRow {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: i64,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub subnetpool_id: Option<String>,
    pub allocation_pools: Vec<Pool>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub service_types: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

impl SubnetRow {
    /// SLAAC or DHCPv6-stateless: hosts pick their own address (EUI-64).
    pub fn is_auto_address(&self) -> bool {
        self.ip_version == 6
            && matches!(
                self.ipv6_address_mode.as_deref(),
                Some("slaac") | Some("dhcpv6-stateless")
            )
    }
}

const COLUMNS: &str = "id, project_id, network_id, name, description, ip_version, cidr, \
    gateway_ip, enable_dhcp, ipv6_ra_mode, ipv6_address_mode, subnetpool_id, allocation_pools, \
    dns_nameservers, host_routes, service_types, created_at, updated_at, revision_number";

fn from_row(row: &SqliteRow) -> Result<SubnetRow> {
    Ok(SubnetRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        network_id: row.try_get("network_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        ip_version: row.try_get("ip_version")?,
        cidr: row.try_get("cidr")?,
        gateway_ip: row.try_get("gateway_ip")?,
        enable_dhcp: row.try_get("enable_dhcp")?,
        ipv6_ra_mode: row.try_get("ipv6_ra_mode")?,
        ipv6_address_mode: row.try_get("ipv6_address_mode")?,
        subnetpool_id: row.try_get("subnetpool_id")?,
        allocation_pools: from_json(row.try_get("allocation_pools")?),
        dns_nameservers: from_json(row.try_get("dns_nameservers")?),
        host_routes: from_json(row.try_get("host_routes")?),
        service_types: from_json(row.try_get("service_types")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub async fn insert(conn: &mut Conn, s: &SubnetRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO subnets ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&s.id)
    .bind(&s.project_id)
    .bind(&s.network_id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(s.ip_version)
    .bind(&s.cidr)
    .bind(&s.gateway_ip)
    .bind(s.enable_dhcp)
    .bind(&s.ipv6_ra_mode)
    .bind(&s.ipv6_address_mode)
    .bind(&s.subnetpool_id)
    .bind(to_json(&s.allocation_pools))
    .bind(to_json(&s.dns_nameservers))
    .bind(to_json(&s.host_routes))
    .bind(to_json(&s.service_types))
    .bind(&s.created_at)
    .bind(&s.updated_at)
    .bind(s.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut Conn, s: &SubnetRow) -> Result<()> {
    sqlx::query(
        "UPDATE subnets SET name = ?, description = ?, gateway_ip = ?, enable_dhcp = ?,
         allocation_pools = ?, dns_nameservers = ?, host_routes = ?, service_types = ?,
         updated_at = ?, revision_number = ? WHERE id = ?",
    )
    .bind(&s.name)
    .bind(&s.description)
    .bind(&s.gateway_ip)
    .bind(s.enable_dhcp)
    .bind(to_json(&s.allocation_pools))
    .bind(to_json(&s.dns_nameservers))
    .bind(to_json(&s.host_routes))
    .bind(to_json(&s.service_types))
    .bind(&s.updated_at)
    .bind(s.revision_number)
    .bind(&s.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<SubnetRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM subnets WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(conn: &mut Conn) -> Result<Vec<SubnetRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM subnets ORDER BY rowid"))
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The subnets of a network, oldest first.
pub async fn of_network(conn: &mut Conn, network_id: &str) -> Result<Vec<SubnetRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subnets WHERE network_id = ? ORDER BY rowid"
    ))
    .bind(network_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The subnets allocated from a subnet pool.
pub async fn of_pool(conn: &mut Conn, subnetpool_id: &str) -> Result<Vec<SubnetRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subnets WHERE subnetpool_id = ? ORDER BY rowid"
    ))
    .bind(subnetpool_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM subnets WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM subnets WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Bumps a subnet's revision (its ports or pools changed).
pub async fn touch(conn: &mut Conn, id: &str, now: &str) -> Result<()> {
    sqlx::query(
        "UPDATE subnets SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
