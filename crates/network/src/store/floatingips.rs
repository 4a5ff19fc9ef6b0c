//! SQL for floating IPs and their port forwardings. A floating IP's address is held by a port
//! on the external network (`device_owner` `network:floatingip`), so IPAM keeps it unique.

use nubo_common::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::Conn;

#[derive(Debug, Clone, PartialEq)]
pub struct FloatingIpRow {
    pub id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub floating_port_id: String,
    pub floating_ip_address: String,
    pub fixed_port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub status: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortForwardingRow {
    pub id: String,
    pub floatingip_id: String,
    pub internal_port_id: String,
    pub internal_ip_address: String,
    pub internal_port_start: i64,
    pub internal_port_end: i64,
    pub external_port_start: i64,
    pub external_port_end: i64,
    pub protocol: String,
    pub description: String,
}

const COLUMNS: &str = "id, project_id, floating_network_id, floating_port_id, \
    floating_ip_address, fixed_port_id, fixed_ip_address, router_id, status, description, \
    created_at, updated_at, revision_number";

const PF_COLUMNS: &str = "id, floatingip_id, internal_port_id, internal_ip_address, \
    internal_port_start, internal_port_end, external_port_start, external_port_end, protocol, \
    description";

fn from_row(row: &SqliteRow) -> Result<FloatingIpRow> {
    Ok(FloatingIpRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        floating_network_id: row.try_get("floating_network_id")?,
        floating_port_id: row.try_get("floating_port_id")?,
        floating_ip_address: row.try_get("floating_ip_address")?,
        fixed_port_id: row.try_get("fixed_port_id")?,
        fixed_ip_address: row.try_get("fixed_ip_address")?,
        router_id: row.try_get("router_id")?,
        status: row.try_get("status")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

fn pf_from_row(row: &SqliteRow) -> Result<PortForwardingRow> {
    Ok(PortForwardingRow {
        id: row.try_get("id")?,
        floatingip_id: row.try_get("floatingip_id")?,
        internal_port_id: row.try_get("internal_port_id")?,
        internal_ip_address: row.try_get("internal_ip_address")?,
        internal_port_start: row.try_get("internal_port_start")?,
        internal_port_end: row.try_get("internal_port_end")?,
        external_port_start: row.try_get("external_port_start")?,
        external_port_end: row.try_get("external_port_end")?,
        protocol: row.try_get("protocol")?,
        description: row.try_get("description")?,
    })
}

pub async fn insert(conn: &mut Conn, f: &FloatingIpRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO floatingips ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&f.id)
    .bind(&f.project_id)
    .bind(&f.floating_network_id)
    .bind(&f.floating_port_id)
    .bind(&f.floating_ip_address)
    .bind(&f.fixed_port_id)
    .bind(&f.fixed_ip_address)
    .bind(&f.router_id)
    .bind(&f.status)
    .bind(&f.description)
    .bind(&f.created_at)
    .bind(&f.updated_at)
    .bind(f.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut Conn, f: &FloatingIpRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE floatingips SET fixed_port_id = ?, fixed_ip_address = ?, router_id = ?, status = ?,
         description = ?, updated_at = ?, revision_number = ? WHERE id = ?",
    )
    .bind(&f.fixed_port_id)
    .bind(&f.fixed_ip_address)
    .bind(&f.router_id)
    .bind(&f.status)
    .bind(&f.description)
    .bind(&f.updated_at)
    .bind(f.revision_number)
    .bind(&f.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<FloatingIpRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM floatingips WHERE id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every floating IP, or those of one project; oldest first.
pub async fn list(conn: &mut Conn, project_id: Option<&str>) -> Result<Vec<FloatingIpRow>> {
    let rows = match project_id {
        Some(p) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM floatingips WHERE project_id = ? ORDER BY rowid"
            ))
            .bind(p)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!("SELECT {COLUMNS} FROM floatingips ORDER BY rowid"))
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Floating IPs on an external network.
pub async fn on_network(conn: &mut Conn, network_id: &str) -> Result<Vec<FloatingIpRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM floatingips WHERE floating_network_id = ? ORDER BY rowid"
    ))
    .bind(network_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Floating IPs associated with a (fixed) port.
pub async fn of_fixed_port(conn: &mut Conn, port_id: &str) -> Result<Vec<FloatingIpRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM floatingips WHERE fixed_port_id = ? ORDER BY rowid"
    ))
    .bind(port_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Floating IPs routed through a router.
pub async fn of_router(conn: &mut Conn, router_id: &str) -> Result<Vec<FloatingIpRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM floatingips WHERE router_id = ? ORDER BY rowid"
    ))
    .bind(router_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM floatingips WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_for_project(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM floatingips WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

pub async fn insert_forwarding(conn: &mut Conn, p: &PortForwardingRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO port_forwardings ({PF_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&p.id)
    .bind(&p.floatingip_id)
    .bind(&p.internal_port_id)
    .bind(&p.internal_ip_address)
    .bind(p.internal_port_start)
    .bind(p.internal_port_end)
    .bind(p.external_port_start)
    .bind(p.external_port_end)
    .bind(&p.protocol)
    .bind(&p.description)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_forwarding(conn: &mut Conn, p: &PortForwardingRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE port_forwardings SET internal_port_id = ?, internal_ip_address = ?,
         internal_port_start = ?, internal_port_end = ?, external_port_start = ?,
         external_port_end = ?, protocol = ?, description = ? WHERE id = ?",
    )
    .bind(&p.internal_port_id)
    .bind(&p.internal_ip_address)
    .bind(p.internal_port_start)
    .bind(p.internal_port_end)
    .bind(p.external_port_start)
    .bind(p.external_port_end)
    .bind(&p.protocol)
    .bind(&p.description)
    .bind(&p.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The port forwardings of one floating IP, or of all (`None`).
pub async fn list_forwardings(
    conn: &mut Conn,
    floatingip_id: Option<&str>,
) -> Result<Vec<PortForwardingRow>> {
    let rows = match floatingip_id {
        Some(f) => {
            sqlx::query(&format!(
                "SELECT {PF_COLUMNS} FROM port_forwardings WHERE floatingip_id = ? ORDER BY rowid"
            ))
            .bind(f)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {PF_COLUMNS} FROM port_forwardings ORDER BY rowid"
            ))
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(pf_from_row).collect()
}

pub async fn forwardings_of_port(conn: &mut Conn, port_id: &str) -> Result<Vec<PortForwardingRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {PF_COLUMNS} FROM port_forwardings WHERE internal_port_id = ? ORDER BY rowid"
    ))
    .bind(port_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(pf_from_row).collect()
}

pub async fn delete_forwarding(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM port_forwardings WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
