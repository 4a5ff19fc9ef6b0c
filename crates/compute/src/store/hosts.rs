//! Hypervisor hosts: what each agent registered, its heartbeat, whether operators enabled it,
//! and the generation of its desired state.

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub name: String,
    pub id: String,
    pub seq: i64,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub host_ip: String,
    pub availability_zone: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub generation: i64,
    pub last_heartbeat: String,
    pub created_at: String,
    pub updated_at: String,
}

fn row(r: &sqlx::sqlite::SqliteRow) -> HostRow {
    HostRow {
        name: r.get("name"),
        id: r.get("id"),
        seq: r.get("seq"),
        vcpus: r.get("vcpus"),
        memory_mb: r.get("memory_mb"),
        disk_gb: r.get("disk_gb"),
        hypervisor_type: r.get("hypervisor_type"),
        hypervisor_version: r.get("hypervisor_version"),
        host_ip: r.get("host_ip"),
        availability_zone: r.get("availability_zone"),
        enabled: r.get::<i64, _>("enabled") != 0,
        disabled_reason: r.get("disabled_reason"),
        forced_down: r.get::<i64, _>("forced_down") != 0,
        generation: r.get("generation"),
        last_heartbeat: r.get("last_heartbeat"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// Every column, with the availability zone a host gets from an aggregate (`os-aggregates`
/// with an `availability_zone`) in place of the one it registered with.
const SELECT: &str =
    "SELECT h.name, h.id, h.seq, h.vcpus, h.memory_mb, h.disk_gb, h.hypervisor_type,
        h.hypervisor_version, h.host_ip,
        coalesce((SELECT a.availability_zone FROM compute_aggregate_hosts ah
                  JOIN compute_aggregates a ON a.id = ah.aggregate_id
                  WHERE ah.host = h.name AND a.availability_zone IS NOT NULL
                  ORDER BY a.id LIMIT 1), h.availability_zone) AS availability_zone,
        h.enabled, h.disabled_reason, h.forced_down, h.generation, h.last_heartbeat,
        h.created_at, h.updated_at
    FROM compute_hosts h";

pub async fn get(conn: &mut SqliteConnection, name: &str) -> Result<Option<HostRow>> {
    let r = sqlx::query(&format!("{SELECT} WHERE h.name = ?"))
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

pub async fn list(conn: &mut SqliteConnection) -> Result<Vec<HostRow>> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY h.seq"))
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

/// Creates the host or refreshes what it offers (keeping its id, state and generation).
pub async fn upsert(conn: &mut SqliteConnection, h: &HostRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO compute_hosts (name, id, seq, vcpus, memory_mb, disk_gb, hypervisor_type,
             hypervisor_version, host_ip, availability_zone, enabled, disabled_reason, forced_down,
             generation, last_heartbeat, created_at, updated_at)
         VALUES (?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM compute_hosts), ?, ?, ?, ?, ?, ?, ?, 1, NULL, 0, 1, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET vcpus = excluded.vcpus, memory_mb = excluded.memory_mb,
             disk_gb = excluded.disk_gb, hypervisor_type = excluded.hypervisor_type,
             hypervisor_version = excluded.hypervisor_version, host_ip = excluded.host_ip,
             availability_zone = excluded.availability_zone, last_heartbeat = excluded.last_heartbeat,
             generation = generation + 1, updated_at = excluded.updated_at",
    )
    .bind(&h.name)
    .bind(&h.id)
    .bind(h.vcpus)
    .bind(h.memory_mb)
    .bind(h.disk_gb)
    .bind(&h.hypervisor_type)
    .bind(h.hypervisor_version)
    .bind(&h.host_ip)
    .bind(&h.availability_zone)
    .bind(&h.last_heartbeat)
    .bind(&h.created_at)
    .bind(&h.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn heartbeat(conn: &mut SqliteConnection, name: &str, now: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE compute_hosts SET last_heartbeat = ? WHERE name = ?")
        .bind(now)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Bumps the generation of the desired state of `name`; returns the new one.
pub async fn bump(conn: &mut SqliteConnection, name: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "UPDATE compute_hosts SET generation = generation + 1 WHERE name = ? RETURNING generation",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?
    .unwrap_or(0))
}

pub async fn generation(conn: &mut SqliteConnection, name: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT generation FROM compute_hosts WHERE name = ?")
            .bind(name)
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}

pub async fn set_status(
    conn: &mut SqliteConnection,
    name: &str,
    enabled: bool,
    reason: Option<&str>,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE compute_hosts SET enabled = ?, disabled_reason = ?, updated_at = ? WHERE name = ?",
    )
    .bind(enabled as i64)
    .bind(reason)
    .bind(now)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_forced_down(
    conn: &mut SqliteConnection,
    name: &str,
    down: bool,
    now: &str,
) -> Result<()> {
    sqlx::query("UPDATE compute_hosts SET forced_down = ?, updated_at = ? WHERE name = ?")
        .bind(down as i64)
        .bind(now)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_hosts WHERE name = ?")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}
