//! SQL for security groups, their rules, and each project's `default` group.

use nubo_common::Result;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::Conn;

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    pub id: String,
    pub project_id: String,
    pub security_group_id: String,
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
    pub revision_number: i64,
}

const GROUP_COLUMNS: &str =
    "id, project_id, name, description, stateful, created_at, updated_at, revision_number";
const RULE_COLUMNS: &str = "id, project_id, security_group_id, direction, ethertype, protocol, \
    port_range_min, port_range_max, remote_ip_prefix, remote_group_id, description, created_at, \
    updated_at, revision_number";

fn group_from_row(row: &SqliteRow) -> Result<GroupRow> {
    Ok(GroupRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        stateful: row.try_get("stateful")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

fn rule_from_row(row: &SqliteRow) -> Result<RuleRow> {
    Ok(RuleRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        security_group_id: row.try_get("security_group_id")?,
        direction: row.try_get("direction")?,
        ethertype: row.try_get("ethertype")?,
        protocol: row.try_get("protocol")?,
        port_range_min: row.try_get("port_range_min")?,
        port_range_max: row.try_get("port_range_max")?,
        remote_ip_prefix: row.try_get("remote_ip_prefix")?,
        remote_group_id: row.try_get("remote_group_id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision_number: row.try_get("revision_number")?,
    })
}

pub async fn insert_group(conn: &mut Conn, g: &GroupRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO security_groups ({GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&g.id)
    .bind(&g.project_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.stateful)
    .bind(&g.created_at)
    .bind(&g.updated_at)
    .bind(g.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_group(conn: &mut Conn, g: &GroupRow) -> Result<()> {
    sqlx::query(
        "UPDATE security_groups SET name = ?, description = ?, stateful = ?, updated_at = ?,
         revision_number = ? WHERE id = ?",
    )
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.stateful)
    .bind(&g.updated_at)
    .bind(g.revision_number)
    .bind(&g.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_group(conn: &mut Conn, id: &str) -> Result<Option<GroupRow>> {
    let row = sqlx::query(&format!(
        "SELECT {GROUP_COLUMNS} FROM security_groups WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(group_from_row).transpose()
}

/// Every group, or those of one project; oldest first.
pub async fn list_groups(conn: &mut Conn, project_id: Option<&str>) -> Result<Vec<GroupRow>> {
    let rows = match project_id {
        Some(p) => {
            sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM security_groups WHERE project_id = ? ORDER BY rowid"
            ))
            .bind(p)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {GROUP_COLUMNS} FROM security_groups ORDER BY rowid"
            ))
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(group_from_row).collect()
}

pub async fn delete_group(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM security_groups WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_groups(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM security_groups WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

/// The id of a project's `default` group, if it has been made.
pub async fn default_group(conn: &mut Conn, project_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT security_group_id FROM default_security_groups WHERE project_id = ?",
    )
    .bind(project_id)
    .fetch_optional(conn)
    .await?)
}

/// Every project's default group id.
pub async fn default_group_ids(conn: &mut Conn) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT security_group_id FROM default_security_groups")
            .fetch_all(conn)
            .await?,
    )
}

pub async fn set_default_group(
    conn: &mut Conn,
    project_id: &str,
    group_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO default_security_groups (project_id, security_group_id) VALUES (?, ?)",
    )
    .bind(project_id)
    .bind(group_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_rule(conn: &mut Conn, r: &RuleRow) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO security_group_rules ({RULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&r.id)
    .bind(&r.project_id)
    .bind(&r.security_group_id)
    .bind(&r.direction)
    .bind(&r.ethertype)
    .bind(&r.protocol)
    .bind(r.port_range_min)
    .bind(r.port_range_max)
    .bind(&r.remote_ip_prefix)
    .bind(&r.remote_group_id)
    .bind(&r.description)
    .bind(&r.created_at)
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_rule(conn: &mut Conn, r: &RuleRow) -> Result<()> {
    sqlx::query(
        "UPDATE security_group_rules SET description = ?, updated_at = ?, revision_number = ? WHERE id = ?",
    )
    .bind(&r.description)
    .bind(&r.updated_at)
    .bind(r.revision_number)
    .bind(&r.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_rule(conn: &mut Conn, id: &str) -> Result<Option<RuleRow>> {
    let row = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(rule_from_row).transpose()
}

/// Every rule, or those of one group; oldest first.
pub async fn list_rules(conn: &mut Conn, group_id: Option<&str>) -> Result<Vec<RuleRow>> {
    let rows = match group_id {
        Some(g) => {
            sqlx::query(&format!(
                "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE security_group_id = ? ORDER BY rowid"
            ))
            .bind(g)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {RULE_COLUMNS} FROM security_group_rules ORDER BY rowid"
            ))
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(rule_from_row).collect()
}

pub async fn delete_rule(conn: &mut Conn, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM security_group_rules WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_rules(conn: &mut Conn, project_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM security_group_rules WHERE project_id = ?")
            .bind(project_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Bumps a group's revision (its rules changed).
pub async fn touch_group(conn: &mut Conn, id: &str, now: &str) -> Result<()> {
    sqlx::query(
        "UPDATE security_groups SET revision_number = revision_number + 1, updated_at = ? WHERE id = ?",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
