//! Attachments: Cinder's attachment records, with Nova's block device mapping fields for the
//! ones Compute made (`by_compute`).

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

use super::{marks, sets, Query};

#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRow {
    pub id: String,
    pub volume_id: String,
    pub instance_uuid: Option<String>,
    pub attached_host: Option<String>,
    pub mountpoint: Option<String>,
    /// `reserved`, `attaching`, `attached` or `detaching`.
    pub attach_status: String,
    /// `rw` or `ro`.
    pub attach_mode: String,
    /// The connector JSON a client sent (Cinder's attachments API).
    pub connector: Option<String>,
    /// Made by Compute: the server's agent hot-plugs it.
    pub by_compute: bool,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
    pub boot_index: Option<i64>,
    pub attach_time: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

const COLUMNS: &[&str] = &[
    "id",
    "volume_id",
    "instance_uuid",
    "attached_host",
    "mountpoint",
    "attach_status",
    "attach_mode",
    "connector",
    "by_compute",
    "tag",
    "delete_on_termination",
    "boot_index",
    "attach_time",
    "created_at",
    "updated_at",
];

fn row(r: &sqlx::sqlite::SqliteRow) -> AttachmentRow {
    AttachmentRow {
        id: r.get("id"),
        volume_id: r.get("volume_id"),
        instance_uuid: r.get("instance_uuid"),
        attached_host: r.get("attached_host"),
        mountpoint: r.get("mountpoint"),
        attach_status: r.get("attach_status"),
        attach_mode: r.get("attach_mode"),
        connector: r.get("connector"),
        by_compute: r.get::<i64, _>("by_compute") != 0,
        tag: r.get("tag"),
        delete_on_termination: r.get::<i64, _>("delete_on_termination") != 0,
        boot_index: r.get("boot_index"),
        attach_time: r.get("attach_time"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn bind_all<'q>(q: Query<'q>, a: &'q AttachmentRow) -> Query<'q> {
    q.bind(&a.id)
        .bind(&a.volume_id)
        .bind(&a.instance_uuid)
        .bind(&a.attached_host)
        .bind(&a.mountpoint)
        .bind(&a.attach_status)
        .bind(&a.attach_mode)
        .bind(&a.connector)
        .bind(a.by_compute as i64)
        .bind(&a.tag)
        .bind(a.delete_on_termination as i64)
        .bind(a.boot_index)
        .bind(&a.attach_time)
        .bind(&a.created_at)
        .bind(&a.updated_at)
}

pub async fn insert(conn: &mut SqliteConnection, a: &AttachmentRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO volume_attachments ({}) VALUES ({})",
        COLUMNS.join(", "),
        marks(COLUMNS.len())
    );
    bind_all(sqlx::query(&sql), a).execute(conn).await?;
    Ok(())
}

pub async fn update(conn: &mut SqliteConnection, a: &AttachmentRow) -> Result<()> {
    let sql = format!(
        "UPDATE volume_attachments SET {} WHERE id = ?",
        sets(COLUMNS)
    );
    bind_all(sqlx::query(&sql), a)
        .bind(&a.id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get(conn: &mut SqliteConnection, id: &str) -> Result<Option<AttachmentRow>> {
    let r = sqlx::query("SELECT * FROM volume_attachments WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(r.as_ref().map(row))
}

/// Attachments of a volume, oldest first.
pub async fn of_volume(conn: &mut SqliteConnection, volume: &str) -> Result<Vec<AttachmentRow>> {
    let rows =
        sqlx::query("SELECT * FROM volume_attachments WHERE volume_id = ? ORDER BY created_at, id")
            .bind(volume)
            .fetch_all(conn)
            .await?;
    Ok(rows.iter().map(row).collect())
}

/// Attachments to one server, oldest first.
pub async fn of_instance(
    conn: &mut SqliteConnection,
    instance: &str,
) -> Result<Vec<AttachmentRow>> {
    let rows = sqlx::query(
        "SELECT * FROM volume_attachments WHERE instance_uuid = ? ORDER BY created_at, id",
    )
    .bind(instance)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(row).collect())
}

/// Every attachment Compute made (for the desired state of hosts).
pub async fn by_compute(conn: &mut SqliteConnection) -> Result<Vec<AttachmentRow>> {
    let rows = sqlx::query(
        "SELECT * FROM volume_attachments WHERE by_compute = 1 ORDER BY created_at, id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(row).collect())
}

/// Every attachment.
pub async fn all(conn: &mut SqliteConnection) -> Result<Vec<AttachmentRow>> {
    let rows = sqlx::query("SELECT * FROM volume_attachments ORDER BY created_at, id")
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(row).collect())
}

pub async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM volume_attachments WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
