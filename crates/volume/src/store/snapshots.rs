//! Snapshots: one row each, metadata as JSON.

use std::collections::BTreeMap;

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

use super::{from_json, marks, sets, to_json, Query};

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    pub status: String,
    pub progress: String,
    pub metadata: BTreeMap<String, String>,
    pub store_name: Option<String>,
    /// `snapshot` (a block store snapshot of the volume) or `image` (a copy of an in-use
    /// volume, stored as an immutable image object).
    pub store_kind: String,
    pub group_snapshot_id: Option<String>,
    pub use_quota: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &[&str] = &[
    "id",
    "project_id",
    "user_id",
    "volume_id",
    "name",
    "description",
    "size",
    "status",
    "progress",
    "metadata",
    "store_name",
    "store_kind",
    "group_snapshot_id",
    "use_quota",
    "created_at",
    "updated_at",
];

fn row(r: &sqlx::sqlite::SqliteRow) -> SnapshotRow {
    SnapshotRow {
        id: r.get("id"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        volume_id: r.get("volume_id"),
        name: r.get("name"),
        description: r.get("description"),
        size: r.get("size"),
        status: r.get("status"),
        progress: r.get("progress"),
        metadata: from_json(&r.get::<String, _>("metadata")),
        store_name: r.get("store_name"),
        store_kind: r.get("store_kind"),
        group_snapshot_id: r.get("group_snapshot_id"),
        use_quota: r.get::<i64, _>("use_quota") != 0,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn bind_all<'q>(q: Query<'q>, s: &'q SnapshotRow) -> Query<'q> {
    q.bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.user_id)
        .bind(&s.volume_id)
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.size)
        .bind(&s.status)
        .bind(&s.progress)
        .bind(to_json(&s.metadata))
        .bind(&s.store_name)
        .bind(&s.store_kind)
        .bind(&s.group_snapshot_id)
        .bind(s.use_quota as i64)
        .bind(&s.created_at)
        .bind(&s.updated_at)
}

pub async fn insert(conn: &mut SqliteConnection, s: &SnapshotRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO volume_snapshots ({}) VALUES ({})",
        COLUMNS.join(", "),
        marks(COLUMNS.len())
    );
    bind_all(sqlx::query(&sql), s).execute(conn).await?;
    Ok(())
}

pub async fn update(conn: &mut SqliteConnection, s: &SnapshotRow) -> Result<()> {
    let sql = format!("UPDATE volume_snapshots SET {} WHERE id = ?", sets(COLUMNS));
    bind_all(sqlx::query(&sql), s)
        .bind(&s.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<SnapshotRow>> {
    let r = sqlx::query("SELECT * FROM volume_snapshots WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

pub async fn list(conn: &mut SqliteConnection, project: Option<&str>) -> Result<Vec<SnapshotRow>> {
    let rows = match project {
        Some(p) => {
            sqlx::query("SELECT * FROM volume_snapshots WHERE project_id = ?")
                .bind(p)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query("SELECT * FROM volume_snapshots")
                .fetch_all(conn)
                .await?
        }
    };
    Ok(rows.iter().map(row).collect())
}

pub async fn of_volume(conn: &mut SqliteConnection, volume: &str) -> Result<Vec<SnapshotRow>> {
    let rows = sqlx::query("SELECT * FROM volume_snapshots WHERE volume_id = ?")
        .bind(volume)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn of_group_snapshot(
    conn: &mut SqliteConnection,
    group_snapshot: &str,
) -> Result<Vec<SnapshotRow>> {
    let rows = sqlx::query("SELECT * FROM volume_snapshots WHERE group_snapshot_id = ?")
        .bind(group_snapshot)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_snapshots WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// (count, GiB) of the quota-consuming snapshots of `project`, of volumes of one type when given.
pub async fn usage(
    conn: &mut SqliteConnection,
    project: &str,
    type_id: Option<&str>,
) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT count(*) AS n, coalesce(sum(s.size), 0) AS gb FROM volume_snapshots s
         LEFT JOIN volume_volumes v ON v.id = s.volume_id
         WHERE s.project_id = ? AND s.use_quota = 1 AND (? IS NULL OR v.type_id = ?)",
    )
    .bind(project)
    .bind(type_id)
    .bind(type_id)
    .fetch_one(conn)
    .await?;
    Ok((r.get("n"), r.get("gb")))
}
