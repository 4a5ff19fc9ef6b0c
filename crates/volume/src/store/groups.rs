//! Group types (with their group specs), groups and group snapshots.

use std::collections::BTreeMap;

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

use super::{from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct GroupTypeRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub group_specs: BTreeMap<String, String>,
    pub created_at: String,
}

fn group_type_row(r: &sqlx::sqlite::SqliteRow) -> GroupTypeRow {
    GroupTypeRow {
        id: r.get("id"),
        name: r.get("name"),
        description: r.get("description"),
        is_public: r.get::<i64, _>("is_public") != 0,
        group_specs: from_json(&r.get::<String, _>("group_specs")),
        created_at: r.get("created_at"),
    }
}

pub async fn insert_type(conn: &mut SqliteConnection, t: &GroupTypeRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO volume_group_types (id, name, description, is_public, group_specs, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.is_public as i64)
    .bind(to_json(&t.group_specs))
    .bind(&t.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update_type(
    conn: &mut SqliteConnection,
    t: &GroupTypeRow,
    now: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE volume_group_types SET name = ?, description = ?, is_public = ?, group_specs = ?,
         updated_at = ? WHERE id = ?",
    )
    .bind(&t.name)
    .bind(&t.description)
    .bind(t.is_public as i64)
    .bind(to_json(&t.group_specs))
    .bind(now)
    .bind(&t.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_type(conn: &mut SqliteConnection, id: &str) -> Result<Option<GroupTypeRow>> {
    let r = sqlx::query("SELECT * FROM volume_group_types WHERE id = ? OR name = ?")
        .bind(id)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(group_type_row))
}

pub async fn list_types(conn: &mut SqliteConnection) -> Result<Vec<GroupTypeRow>> {
    let rows = sqlx::query("SELECT * FROM volume_group_types ORDER BY created_at, id")
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(group_type_row).collect())
}

pub async fn delete_type(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_group_types WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub availability_zone: String,
    pub group_type_id: String,
    pub volume_types: Vec<String>,
    pub group_snapshot_id: Option<String>,
    pub source_group_id: Option<String>,
    pub replication_status: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

fn group_row(r: &sqlx::sqlite::SqliteRow) -> GroupRow {
    GroupRow {
        id: r.get("id"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        name: r.get("name"),
        description: r.get("description"),
        status: r.get("status"),
        availability_zone: r.get("availability_zone"),
        group_type_id: r.get("group_type_id"),
        volume_types: from_json(&r.get::<String, _>("volume_types")),
        group_snapshot_id: r.get("group_snapshot_id"),
        source_group_id: r.get("source_group_id"),
        replication_status: r.get("replication_status"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

pub async fn upsert_group(conn: &mut SqliteConnection, g: &GroupRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_groups (id, project_id, user_id, name, description, status,
            availability_zone, group_type_id, volume_types, group_snapshot_id, source_group_id,
            replication_status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description,
            status = excluded.status, volume_types = excluded.volume_types,
            replication_status = excluded.replication_status, updated_at = excluded.updated_at",
    )
    .bind(&g.id)
    .bind(&g.project_id)
    .bind(&g.user_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(&g.status)
    .bind(&g.availability_zone)
    .bind(&g.group_type_id)
    .bind(to_json(&g.volume_types))
    .bind(&g.group_snapshot_id)
    .bind(&g.source_group_id)
    .bind(&g.replication_status)
    .bind(&g.created_at)
    .bind(&g.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_group(conn: &mut SqliteConnection, id: &str) -> Result<Option<GroupRow>> {
    let r = sqlx::query("SELECT * FROM volume_groups WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(group_row))
}

pub async fn list_groups(
    conn: &mut SqliteConnection,
    project: Option<&str>,
) -> Result<Vec<GroupRow>> {
    let rows = sqlx::query(
        "SELECT * FROM volume_groups WHERE (? IS NULL OR project_id = ?) ORDER BY created_at DESC, id DESC",
    )
    .bind(project)
    .bind(project)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(group_row).collect())
}

pub async fn delete_group(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_groups WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn groups_of_type(conn: &mut SqliteConnection, type_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM volume_groups WHERE group_type_id = ?")
            .bind(type_id)
            .fetch_one(conn)
            .await?,
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshotRow {
    pub id: String,
    pub project_id: String,
    pub group_id: String,
    pub group_type_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub created_at: String,
}

fn group_snapshot_row(r: &sqlx::sqlite::SqliteRow) -> GroupSnapshotRow {
    GroupSnapshotRow {
        id: r.get("id"),
        project_id: r.get("project_id"),
        group_id: r.get("group_id"),
        group_type_id: r.get("group_type_id"),
        name: r.get("name"),
        description: r.get("description"),
        status: r.get("status"),
        created_at: r.get("created_at"),
    }
}

pub async fn upsert_group_snapshot(
    conn: &mut SqliteConnection,
    g: &GroupSnapshotRow,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO volume_group_snapshots (id, project_id, group_id, group_type_id, name,
            description, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, description = excluded.description,
            status = excluded.status, updated_at = excluded.updated_at",
    )
    .bind(&g.id)
    .bind(&g.project_id)
    .bind(&g.group_id)
    .bind(&g.group_type_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(&g.status)
    .bind(&g.created_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_group_snapshot(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<GroupSnapshotRow>> {
    let r = sqlx::query("SELECT * FROM volume_group_snapshots WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(group_snapshot_row))
}

pub async fn list_group_snapshots(
    conn: &mut SqliteConnection,
    project: Option<&str>,
) -> Result<Vec<GroupSnapshotRow>> {
    let rows = sqlx::query(
        "SELECT * FROM volume_group_snapshots WHERE (? IS NULL OR project_id = ?)
         ORDER BY created_at DESC, id DESC",
    )
    .bind(project)
    .bind(project)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(group_snapshot_row).collect())
}

pub async fn group_snapshots_of(conn: &mut SqliteConnection, group: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM volume_group_snapshots WHERE group_id = ?")
            .bind(group)
            .fetch_one(conn)
            .await?,
    )
}

pub async fn delete_group_snapshot(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_group_snapshots WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
