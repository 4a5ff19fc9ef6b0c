//! Volumes: one row each; metadata, image metadata and replaced block store objects are JSON.

use std::collections::BTreeMap;

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

use super::{from_json, marks, sets, to_json, Query};

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRow {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// GiB.
    pub size: i64,
    pub status: String,
    pub previous_status: Option<String>,
    /// `detached` or `attached`.
    pub attach_status: String,
    pub migration_status: Option<String>,
    pub availability_zone: String,
    pub type_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub image_id: Option<String>,
    pub group_id: Option<String>,
    pub bootable: bool,
    pub readonly: bool,
    pub multiattach: bool,
    pub metadata: BTreeMap<String, String>,
    pub image_metadata: BTreeMap<String, String>,
    /// The block store object with the data (None until made, or when making it failed).
    pub store_name: Option<String>,
    /// Objects a revert or reimage replaced, kept while snapshots of them exist.
    pub old_store_names: Vec<String>,
    pub use_quota: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub launched_at: Option<String>,
}

const COLUMNS: &[&str] = &[
    "id",
    "project_id",
    "user_id",
    "name",
    "description",
    "size",
    "status",
    "previous_status",
    "attach_status",
    "migration_status",
    "availability_zone",
    "type_id",
    "snapshot_id",
    "source_volid",
    "image_id",
    "group_id",
    "bootable",
    "readonly",
    "multiattach",
    "metadata",
    "image_metadata",
    "store_name",
    "old_store_names",
    "use_quota",
    "created_at",
    "updated_at",
    "launched_at",
];

fn row(r: &sqlx::sqlite::SqliteRow) -> VolumeRow {
    VolumeRow {
        id: r.get("id"),
        project_id: r.get("project_id"),
        user_id: r.get("user_id"),
        name: r.get("name"),
        description: r.get("description"),
        size: r.get("size"),
        status: r.get("status"),
        previous_status: r.get("previous_status"),
        attach_status: r.get("attach_status"),
        migration_status: r.get("migration_status"),
        availability_zone: r.get("availability_zone"),
        type_id: r.get("type_id"),
        snapshot_id: r.get("snapshot_id"),
        source_volid: r.get("source_volid"),
        image_id: r.get("image_id"),
        group_id: r.get("group_id"),
        bootable: r.get::<i64, _>("bootable") != 0,
        readonly: r.get::<i64, _>("readonly") != 0,
        multiattach: r.get::<i64, _>("multiattach") != 0,
        metadata: from_json(&r.get::<String, _>("metadata")),
        image_metadata: from_json(&r.get::<String, _>("image_metadata")),
        store_name: r.get("store_name"),
        old_store_names: from_json(&r.get::<String, _>("old_store_names")),
        use_quota: r.get::<i64, _>("use_quota") != 0,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        launched_at: r.get("launched_at"),
    }
}

fn bind_all<'q>(q: Query<'q>, v: &'q VolumeRow) -> Query<'q> {
    q.bind(&v.id)
        .bind(&v.project_id)
        .bind(&v.user_id)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.size)
        .bind(&v.status)
        .bind(&v.previous_status)
        .bind(&v.attach_status)
        .bind(&v.migration_status)
        .bind(&v.availability_zone)
        .bind(&v.type_id)
        .bind(&v.snapshot_id)
        .bind(&v.source_volid)
        .bind(&v.image_id)
        .bind(&v.group_id)
        .bind(v.bootable as i64)
        .bind(v.readonly as i64)
        .bind(v.multiattach as i64)
        .bind(to_json(&v.metadata))
        .bind(to_json(&v.image_metadata))
        .bind(&v.store_name)
        .bind(to_json(&v.old_store_names))
        .bind(v.use_quota as i64)
        .bind(&v.created_at)
        .bind(&v.updated_at)
        .bind(&v.launched_at)
}

pub async fn insert(conn: &mut SqliteConnection, v: &VolumeRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO volume_volumes ({}) VALUES ({})",
        COLUMNS.join(", "),
        marks(COLUMNS.len())
    );
    bind_all(sqlx::query(&sql), v).execute(conn).await?;
    Ok(())
}

/// Writes every column of `v` (the row must exist).
pub async fn update(conn: &mut SqliteConnection, v: &VolumeRow) -> Result<()> {
    let sql = format!("UPDATE volume_volumes SET {} WHERE id = ?", sets(COLUMNS));
    bind_all(sqlx::query(&sql), v)
        .bind(&v.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<VolumeRow>> {
    let r = sqlx::query("SELECT * FROM volume_volumes WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

/// Every volume of `project` (every volume when `None`).
pub async fn list(conn: &mut SqliteConnection, project: Option<&str>) -> Result<Vec<VolumeRow>> {
    let rows = match project {
        Some(p) => {
            sqlx::query("SELECT * FROM volume_volumes WHERE project_id = ?")
                .bind(p)
                .fetch_all(conn)
                .await?
        }
        None => {
            sqlx::query("SELECT * FROM volume_volumes")
                .fetch_all(conn)
                .await?
        }
    };
    Ok(rows.iter().map(row).collect())
}

/// The volumes of a group.
pub async fn in_group(conn: &mut SqliteConnection, group: &str) -> Result<Vec<VolumeRow>> {
    let rows = sqlx::query("SELECT * FROM volume_volumes WHERE group_id = ?")
        .bind(group)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_volumes WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// (count, GiB) of the quota-consuming volumes of `project`, of one type when given.
pub async fn usage(
    conn: &mut SqliteConnection,
    project: &str,
    type_id: Option<&str>,
) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT count(*) AS n, coalesce(sum(size), 0) AS gb FROM volume_volumes
         WHERE project_id = ? AND use_quota = 1 AND (? IS NULL OR type_id = ?)",
    )
    .bind(project)
    .bind(type_id)
    .bind(type_id)
    .fetch_one(conn)
    .await?;
    Ok((r.get("n"), r.get("gb")))
}

/// How many volumes use a type.
pub async fn count_of_type(conn: &mut SqliteConnection, type_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM volume_volumes WHERE type_id = ?")
            .bind(type_id)
            .fetch_one(conn)
            .await?,
    )
}
