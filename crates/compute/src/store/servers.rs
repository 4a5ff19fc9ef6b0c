//! Servers (Nova's instances). One row per server; metadata, tags, security groups, requested
//! networks, allocated ports, the flavor snapshot and the fault are JSON columns.

use std::collections::BTreeMap;

use nubo_common::Result;
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqliteConnection};

use super::{from_json, to_json};

/// The flavor a server was built with, as it was then (Nova's `instance.flavor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavorSnapshot {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap: i64,
    pub extra_specs: BTreeMap<String, String>,
}

/// One port a server uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPort {
    pub port_id: String,
    /// Nova made it (deleted with the server) or the user handed it over (unbound and kept).
    pub created: bool,
    pub mac: String,
    pub network_id: String,
    #[serde(default)]
    pub network_name: String,
    /// Fixed IPs (cached from Networking at allocation, as Nova's info cache).
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// A fault (`fault` of an ERROR server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    pub details: Option<String>,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerRow {
    pub id: String,
    pub seq: i64,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub reservation_id: String,
    pub launch_index: i64,
    pub hostname: String,
    pub description: Option<String>,
    pub vm_state: String,
    pub task_state: Option<String>,
    pub power_state: i64,
    pub host: Option<String>,
    pub availability_zone: Option<String>,
    pub requested_az: Option<String>,
    pub flavor: FlavorSnapshot,
    pub image_ref: String,
    pub disk_name: Option<String>,
    pub old_disk: Option<String>,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    pub user_data: Option<String>,
    pub config_drive: bool,
    pub access_ipv4: String,
    pub access_ipv6: String,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub security_groups: Vec<String>,
    /// The requested networks as sent (`"auto"`, `"none"`, or a list), for rescheduling.
    pub networks: serde_json::Value,
    pub ports: Vec<ServerPort>,
    pub locked: bool,
    pub locked_by: Option<String>,
    pub locked_reason: Option<String>,
    pub fault: Option<Fault>,
    pub desired_power: String,
    pub hard_stop: bool,
    pub reboot_seq: i64,
    pub reboot_hard: bool,
    pub respawn_seq: i64,
    pub applied_reboot_seq: i64,
    pub applied_respawn_seq: i64,
    pub deleting: bool,
    pub attempts: i64,
    pub observed_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub launched_at: Option<String>,
    pub disk_config: String,
}

const COLUMNS: &[&str] = &[
    "id",
    "seq",
    "name",
    "project_id",
    "user_id",
    "reservation_id",
    "launch_index",
    "hostname",
    "description",
    "vm_state",
    "task_state",
    "power_state",
    "host",
    "availability_zone",
    "requested_az",
    "flavor",
    "image_ref",
    "disk_name",
    "old_disk",
    "key_name",
    "key_data",
    "user_data",
    "config_drive",
    "access_ipv4",
    "access_ipv6",
    "metadata",
    "tags",
    "security_groups",
    "networks",
    "ports",
    "locked",
    "locked_by",
    "locked_reason",
    "fault",
    "desired_power",
    "hard_stop",
    "reboot_seq",
    "reboot_hard",
    "respawn_seq",
    "applied_reboot_seq",
    "applied_respawn_seq",
    "deleting",
    "attempts",
    "observed_reason",
    "created_at",
    "updated_at",
    "launched_at",
    "disk_config",
];

fn row(r: &sqlx::sqlite::SqliteRow) -> ServerRow {
    let fault: Option<String> = r.get("fault");
    ServerRow {
        id: r.get("id"),
        seq: r.get("seq"),
        name: r.get("name"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        reservation_id: r.get("reservation_id"),
        launch_index: r.get("launch_index"),
        hostname: r.get("hostname"),
        description: r.get("description"),
        vm_state: r.get("vm_state"),
        task_state: r.get("task_state"),
        power_state: r.get("power_state"),
        host: r.get("host"),
        availability_zone: r.get("availability_zone"),
        requested_az: r.get("requested_az"),
        flavor: from_json(&r.get::<String, _>("flavor")),
        image_ref: r.get("image_ref"),
        disk_name: r.get("disk_name"),
        old_disk: r.get("old_disk"),
        key_name: r.get("key_name"),
        key_data: r.get("key_data"),
        user_data: r.get("user_data"),
        config_drive: r.get::<i64, _>("config_drive") != 0,
        access_ipv4: r.get("access_ipv4"),
        access_ipv6: r.get("access_ipv6"),
        metadata: from_json(&r.get::<String, _>("metadata")),
        tags: from_json(&r.get::<String, _>("tags")),
        security_groups: from_json(&r.get::<String, _>("security_groups")),
        networks: serde_json::from_str(&r.get::<String, _>("networks"))
            .unwrap_or(serde_json::Value::Null),
        ports: from_json(&r.get::<String, _>("ports")),
        locked: r.get::<i64, _>("locked") != 0,
        locked_by: r.get("locked_by"),
        locked_reason: r.get("locked_reason"),
        fault: fault.and_then(|f| serde_json::from_str(&f).ok()),
        desired_power: r.get("desired_power"),
        hard_stop: r.get::<i64, _>("hard_stop") != 0,
        reboot_seq: r.get("reboot_seq"),
        reboot_hard: r.get::<i64, _>("reboot_hard") != 0,
        respawn_seq: r.get("respawn_seq"),
        applied_reboot_seq: r.get("applied_reboot_seq"),
        applied_respawn_seq: r.get("applied_respawn_seq"),
        deleting: r.get::<i64, _>("deleting") != 0,
        attempts: r.get("attempts"),
        observed_reason: r.get("observed_reason"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        launched_at: r.get("launched_at"),
        disk_config: r.get("disk_config"),
    }
}

fn bind_all<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    s: &'q ServerRow,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    q.bind(&s.id)
        .bind(s.seq)
        .bind(&s.name)
        .bind(&s.project_id)
        .bind(&s.user_id)
        .bind(&s.reservation_id)
        .bind(s.launch_index)
        .bind(&s.hostname)
        .bind(&s.description)
        .bind(&s.vm_state)
        .bind(&s.task_state)
        .bind(s.power_state)
        .bind(&s.host)
        .bind(&s.availability_zone)
        .bind(&s.requested_az)
        .bind(to_json(&s.flavor))
        .bind(&s.image_ref)
        .bind(&s.disk_name)
        .bind(&s.old_disk)
        .bind(&s.key_name)
        .bind(&s.key_data)
        .bind(&s.user_data)
        .bind(s.config_drive as i64)
        .bind(&s.access_ipv4)
        .bind(&s.access_ipv6)
        .bind(to_json(&s.metadata))
        .bind(to_json(&s.tags))
        .bind(to_json(&s.security_groups))
        .bind(to_json(&s.networks))
        .bind(to_json(&s.ports))
        .bind(s.locked as i64)
        .bind(&s.locked_by)
        .bind(&s.locked_reason)
        .bind(s.fault.as_ref().map(to_json))
        .bind(&s.desired_power)
        .bind(s.hard_stop as i64)
        .bind(s.reboot_seq)
        .bind(s.reboot_hard as i64)
        .bind(s.respawn_seq)
        .bind(s.applied_reboot_seq)
        .bind(s.applied_respawn_seq)
        .bind(s.deleting as i64)
        .bind(s.attempts)
        .bind(&s.observed_reason)
        .bind(&s.created_at)
        .bind(&s.updated_at)
        .bind(&s.launched_at)
        .bind(&s.disk_config)
}

/// The next free `seq` (instance names are `instance-%08x` of it).
pub async fn next_seq(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) + 1 FROM compute_servers")
            .fetch_one(conn)
            .await?,
    )
}

pub async fn insert(conn: &mut SqliteConnection, s: &ServerRow) -> Result<()> {
    let marks = vec!["?"; COLUMNS.len()].join(", ");
    let sql = format!(
        "INSERT INTO compute_servers ({}) VALUES ({marks})",
        COLUMNS.join(", ")
    );
    bind_all(sqlx::query(&sql), s).execute(conn).await?;
    Ok(())
}

/// Writes every column of `s` (the row must exist).
pub async fn update(conn: &mut SqliteConnection, s: &ServerRow) -> Result<()> {
    let sets: Vec<String> = COLUMNS.iter().map(|c| format!("{c} = ?")).collect();
    let sql = format!(
        "UPDATE compute_servers SET {} WHERE id = ?",
        sets.join(", ")
    );
    bind_all(sqlx::query(&sql), s)
        .bind(&s.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<ServerRow>> {
    let r = sqlx::query("SELECT * FROM compute_servers WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

/// The columns holding JSON: [`list`] embeds them as JSON, not as text.
const JSON_COLUMNS: &[&str] = &[
    "flavor",
    "metadata",
    "tags",
    "security_groups",
    "networks",
    "ports",
    "fault",
];

/// A row as SQLite's `json_object` writes it (booleans are integers there).
#[derive(Deserialize)]
struct JsonRow {
    id: String,
    seq: i64,
    name: String,
    project_id: String,
    user_id: String,
    reservation_id: String,
    launch_index: i64,
    hostname: String,
    description: Option<String>,
    vm_state: String,
    task_state: Option<String>,
    power_state: i64,
    host: Option<String>,
    availability_zone: Option<String>,
    requested_az: Option<String>,
    flavor: FlavorSnapshot,
    image_ref: String,
    disk_name: Option<String>,
    old_disk: Option<String>,
    key_name: Option<String>,
    key_data: Option<String>,
    user_data: Option<String>,
    config_drive: i64,
    access_ipv4: String,
    access_ipv6: String,
    metadata: BTreeMap<String, String>,
    tags: Vec<String>,
    security_groups: Vec<String>,
    networks: serde_json::Value,
    ports: Vec<ServerPort>,
    locked: i64,
    locked_by: Option<String>,
    locked_reason: Option<String>,
    fault: Option<Fault>,
    desired_power: String,
    hard_stop: i64,
    reboot_seq: i64,
    reboot_hard: i64,
    respawn_seq: i64,
    applied_reboot_seq: i64,
    applied_respawn_seq: i64,
    deleting: i64,
    attempts: i64,
    observed_reason: Option<String>,
    created_at: String,
    updated_at: String,
    launched_at: Option<String>,
    disk_config: String,
}

impl From<JsonRow> for ServerRow {
    fn from(r: JsonRow) -> ServerRow {
        ServerRow {
            id: r.id,
            seq: r.seq,
            name: r.name,
            project_id: r.project_id,
            user_id: r.user_id,
            reservation_id: r.reservation_id,
            launch_index: r.launch_index,
            hostname: r.hostname,
            description: r.description,
            vm_state: r.vm_state,
            task_state: r.task_state,
            power_state: r.power_state,
            host: r.host,
            availability_zone: r.availability_zone,
            requested_az: r.requested_az,
            flavor: r.flavor,
            image_ref: r.image_ref,
            disk_name: r.disk_name,
            old_disk: r.old_disk,
            key_name: r.key_name,
            key_data: r.key_data,
            user_data: r.user_data,
            config_drive: r.config_drive != 0,
            access_ipv4: r.access_ipv4,
            access_ipv6: r.access_ipv6,
            metadata: r.metadata,
            tags: r.tags,
            security_groups: r.security_groups,
            networks: r.networks,
            ports: r.ports,
            locked: r.locked != 0,
            locked_by: r.locked_by,
            locked_reason: r.locked_reason,
            fault: r.fault,
            desired_power: r.desired_power,
            hard_stop: r.hard_stop != 0,
            reboot_seq: r.reboot_seq,
            reboot_hard: r.reboot_hard != 0,
            respawn_seq: r.respawn_seq,
            applied_reboot_seq: r.applied_reboot_seq,
            applied_respawn_seq: r.applied_respawn_seq,
            deleting: r.deleting != 0,
            attempts: r.attempts,
            observed_reason: r.observed_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
            launched_at: r.launched_at,
            disk_config: r.disk_config,
        }
    }
}

/// `SELECT json_group_array(json_object(...)) FROM compute_servers`: every row as one JSON
/// array built inside SQLite.
fn json_select() -> String {
    let fields: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            if JSON_COLUMNS.contains(c) {
                format!("'{c}', json({c})")
            } else {
                format!("'{c}', {c}")
            }
        })
        .collect();
    format!(
        "SELECT json_group_array(json_object({})) FROM compute_servers",
        fields.join(", ")
    )
}

/// Every server of `project` (all when `None`).
///
/// SQLite returns them as one JSON array (one value through sqlx instead of 48 per row; a list
/// of 1,000 servers costs a few milliseconds, not tens). Should a row not read that way (a
/// JSON column that does not parse as its type), the rows are read one by one as [`get`] does,
/// which tolerates it.
pub async fn list(conn: &mut SqliteConnection, project: Option<&str>) -> Result<Vec<ServerRow>> {
    let text: String = match project {
        Some(p) => {
            sqlx::query_scalar(&format!("{} WHERE project_id = ?", json_select()))
                .bind(p)
                .fetch_one(&mut *conn)
                .await?
        }
        None => {
            sqlx::query_scalar(&json_select())
                .fetch_one(&mut *conn)
                .await?
        }
    };
    if let Ok(rows) = serde_json::from_str::<Vec<JsonRow>>(&text) {
        return Ok(rows.into_iter().map(ServerRow::from).collect());
    }
    list_by_rows(conn, project).await
}

/// [`list`] one row at a time.
async fn list_by_rows(
    conn: &mut SqliteConnection,
    project: Option<&str>,
) -> Result<Vec<ServerRow>> {
    let rows = match project {
        Some(p) => {
            sqlx::query("SELECT * FROM compute_servers WHERE project_id = ?")
                .bind(p)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query("SELECT * FROM compute_servers")
                .fetch_all(conn)
                .await?
        }
    };
    Ok(rows.iter().map(row).collect())
}

/// Servers placed on `host`.
pub async fn on_host(conn: &mut SqliteConnection, host: &str) -> Result<Vec<ServerRow>> {
    let rows = sqlx::query("SELECT * FROM compute_servers WHERE host = ?")
        .bind(host)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_servers WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Per-host usage: (host, vcpus, memory_mb, disk_gb, servers) of every placed server.
pub async fn usage_by_host(
    conn: &mut SqliteConnection,
) -> Result<Vec<(String, i64, i64, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT host,
                sum(json_extract(flavor, '$.vcpus')) AS vcpus,
                sum(json_extract(flavor, '$.memory_mb')) AS ram,
                sum(json_extract(flavor, '$.root_gb') + json_extract(flavor, '$.ephemeral_gb')) AS disk,
                count(*) AS n
         FROM compute_servers WHERE host IS NOT NULL GROUP BY host",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get("host"),
                r.get::<Option<i64>, _>("vcpus").unwrap_or(0),
                r.get::<Option<i64>, _>("ram").unwrap_or(0),
                r.get::<Option<i64>, _>("disk").unwrap_or(0),
                r.get("n"),
            )
        })
        .collect())
}

/// (instances, cores, ram) used by `project`.
pub async fn project_usage(conn: &mut SqliteConnection, project: &str) -> Result<(i64, i64, i64)> {
    let r = sqlx::query(
        "SELECT count(*) AS n,
                coalesce(sum(json_extract(flavor, '$.vcpus')), 0) AS vcpus,
                coalesce(sum(json_extract(flavor, '$.memory_mb')), 0) AS ram
         FROM compute_servers WHERE project_id = ?",
    )
    .bind(project)
    .fetch_one(conn)
    .await?;
    Ok((r.get("n"), r.get("vcpus"), r.get("ram")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str, project: &str) -> ServerRow {
        ServerRow {
            id: id.into(),
            seq: 7,
            name: "vm \"one\" é".into(),
            project_id: project.into(),
            user_id: "u".into(),
            reservation_id: "r-1".into(),
            hostname: "vm-one".into(),
            vm_state: "error".into(),
            task_state: Some("spawning".into()),
            power_state: 1,
            host: Some("h1".into()),
            flavor: FlavorSnapshot {
                id: "1".into(),
                name: "m1.nano".into(),
                vcpus: 1,
                memory_mb: 128,
                extra_specs: BTreeMap::from([("hw:x".into(), "y".into())]),
                ..FlavorSnapshot::default()
            },
            user_data: Some("aGVsbG8=".into()),
            config_drive: true,
            metadata: BTreeMap::from([("k".into(), "v\nw".into())]),
            tags: vec!["a".into(), "b".into()],
            security_groups: vec!["default".into()],
            networks: serde_json::json!([{"uuid": "n"}]),
            ports: vec![ServerPort {
                port_id: "p".into(),
                created: true,
                mac: "fa:16:3e:00:00:01".into(),
                network_id: "n".into(),
                network_name: "private".into(),
                ips: vec!["10.0.0.3".into(), "fd00::3".into()],
                tag: Some("t".into()),
            }],
            locked: true,
            fault: Some(Fault {
                code: 500,
                message: "boom".into(),
                details: None,
                created: "2026-11-25T18:51:37.123456Z".into(),
            }),
            desired_power: "running".into(),
            hard_stop: true,
            reboot_hard: true,
            deleting: false,
            created_at: "2026-11-25T18:51:37.123456Z".into(),
            updated_at: "2026-11-25T18:51:38.123456Z".into(),
            disk_config: "MANUAL".into(),
            ..ServerRow::default_for_tests()
        }
    }

    impl ServerRow {
        fn default_for_tests() -> ServerRow {
            ServerRow {
                id: String::new(),
                seq: 0,
                name: String::new(),
                project_id: String::new(),
                user_id: String::new(),
                reservation_id: String::new(),
                launch_index: 0,
                hostname: String::new(),
                description: None,
                vm_state: String::new(),
                task_state: None,
                power_state: 0,
                host: None,
                availability_zone: None,
                requested_az: None,
                flavor: FlavorSnapshot::default(),
                image_ref: String::new(),
                disk_name: None,
                old_disk: None,
                key_name: None,
                key_data: None,
                user_data: None,
                config_drive: false,
                access_ipv4: String::new(),
                access_ipv6: String::new(),
                metadata: BTreeMap::new(),
                tags: Vec::new(),
                security_groups: Vec::new(),
                networks: serde_json::Value::Null,
                ports: Vec::new(),
                locked: false,
                locked_by: None,
                locked_reason: None,
                fault: None,
                desired_power: String::new(),
                hard_stop: false,
                reboot_seq: 0,
                reboot_hard: false,
                respawn_seq: 0,
                applied_reboot_seq: 0,
                applied_respawn_seq: 0,
                deleting: false,
                attempts: 0,
                observed_reason: None,
                created_at: String::new(),
                updated_at: String::new(),
                launched_at: None,
                disk_config: String::new(),
            }
        }
    }

    #[tokio::test]
    async fn listing_as_json_reads_what_rows_read() {
        let db = nubo_common::Db::in_memory().await;
        db.migrate("compute", crate::store::MIGRATIONS)
            .await
            .unwrap();
        let mut conn = db.pool().acquire().await.unwrap();
        let mut plain = sample("b", "p1");
        plain.fault = None;
        plain.task_state = None;
        plain.host = None;
        plain.user_data = None;
        plain.networks = serde_json::json!("auto");
        for (seq, mut s) in [sample("a", "p1"), plain, sample("c", "p2")]
            .into_iter()
            .enumerate()
        {
            s.seq = seq as i64 + 1;
            insert(&mut conn, &s).await.unwrap();
        }
        for project in [Some("p1"), Some("p2"), Some("none"), None] {
            let mut fast = list(&mut conn, project).await.unwrap();
            let mut slow = list_by_rows(&mut conn, project).await.unwrap();
            fast.sort_by(|a, b| a.id.cmp(&b.id));
            slow.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(fast, slow, "project {project:?}");
        }
        assert_eq!(list(&mut conn, Some("p1")).await.unwrap().len(), 2);
        // A JSON column that does not parse as its type: the row-by-row path reads it.
        sqlx::query("UPDATE compute_servers SET tags = '{\"not\": \"a list\"}' WHERE id = 'a'")
            .execute(&mut *conn)
            .await
            .unwrap();
        let rows = list(&mut conn, Some("p1")).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().find(|r| r.id == "a").unwrap().tags.is_empty());
    }
}
