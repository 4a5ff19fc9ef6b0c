//! Server groups (`os-server-groups`) and their members.

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub seq: i64,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub policy: String,
    pub max_server_per_host: Option<i64>,
    pub created_at: String,
}

fn row(r: &sqlx::sqlite::SqliteRow) -> GroupRow {
    GroupRow {
        id: r.get("id"),
        seq: r.get("seq"),
        name: r.get("name"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        policy: r.get("policy"),
        max_server_per_host: r.get("max_server_per_host"),
        created_at: r.get("created_at"),
    }
}

pub async fn insert(conn: &mut SqliteConnection, g: &GroupRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO compute_server_groups (id, seq, name, project_id, user_id, policy,
             max_server_per_host, created_at)
         VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM compute_server_groups), ?, ?, ?, ?, ?, ?)",
    )
    .bind(&g.id)
    .bind(&g.name)
    .bind(&g.project_id)
    .bind(&g.user_id)
    .bind(&g.policy)
    .bind(g.max_server_per_host)
    .bind(&g.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<GroupRow>> {
    let r = sqlx::query("SELECT * FROM compute_server_groups WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

/// The groups of `project` (every group when `None`), oldest first.
pub async fn list(conn: &mut SqliteConnection, project: Option<&str>) -> Result<Vec<GroupRow>> {
    let rows = match project {
        Some(p) => {
            sqlx::query("SELECT * FROM compute_server_groups WHERE project_id = ? ORDER BY seq")
                .bind(p)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query("SELECT * FROM compute_server_groups ORDER BY seq")
                .fetch_all(conn)
                .await?
        }
    };
    Ok(rows.iter().map(row).collect())
}

pub async fn count(conn: &mut SqliteConnection, project: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM compute_server_groups WHERE project_id = ?")
            .bind(project)
            .fetch_one(conn)
            .await?,
    )
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_server_group_members WHERE group_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM compute_server_groups WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Member server ids, in the order they joined.
pub async fn members(conn: &mut SqliteConnection, id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT server_id FROM compute_server_group_members WHERE group_id = ? ORDER BY rowid",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// (group id, server id) of every membership of the groups of `project` (all when `None`).
pub async fn all_members(
    conn: &mut SqliteConnection,
    project: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let rows = match project {
        Some(p) => {
            sqlx::query(
                "SELECT m.group_id, m.server_id FROM compute_server_group_members m
                 JOIN compute_server_groups g ON g.id = m.group_id
                 WHERE g.project_id = ? ORDER BY m.rowid",
            )
            .bind(p)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT group_id, server_id FROM compute_server_group_members ORDER BY rowid",
            )
            .fetch_all(conn)
            .await?
        }
    };
    Ok(rows
        .iter()
        .map(|r| (r.get("group_id"), r.get("server_id")))
        .collect())
}

pub async fn add_member(conn: &mut SqliteConnection, group: &str, server: &str) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO compute_server_group_members (group_id, server_id) VALUES (?, ?)",
    )
    .bind(group)
    .bind(server)
    .execute(conn)
    .await?;
    Ok(())
}

/// The groups a server belongs to (one at most, as in Nova).
pub async fn groups_of(conn: &mut SqliteConnection, server: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT group_id FROM compute_server_group_members WHERE server_id = ? ORDER BY rowid",
    )
    .bind(server)
    .fetch_all(conn)
    .await?)
}

pub async fn remove_server(conn: &mut SqliteConnection, server: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_server_group_members WHERE server_id = ?")
        .bind(server)
        .execute(conn)
        .await?;
    Ok(())
}

/// Hosts of the other placed members of `group`: (server id, host).
pub async fn member_hosts(
    conn: &mut SqliteConnection,
    group: &str,
    except: &str,
) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT s.id, s.host FROM compute_server_group_members m
         JOIN compute_servers s ON s.id = m.server_id
         WHERE m.group_id = ? AND s.id != ? AND s.host IS NOT NULL",
    )
    .bind(group)
    .bind(except)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(|r| (r.get("id"), r.get("host"))).collect())
}
