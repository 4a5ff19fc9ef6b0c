//! The `images` table: one row per image that exists (deleted images are removed).
//!
//! Status changes that race with other requests (an upload starting, an upload finishing, a
//! delete) are compare-and-set updates: `WHERE id = ? AND status = ?`.

use std::collections::BTreeMap;

use nubo_common::{Db, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::types::{ImageId, ImageStatus, Visibility};

/// An image as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub id: ImageId,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: Visibility,
    /// The owning project (None only for images made by old tooling; nobody may change those).
    pub owner: Option<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub protected: bool,
    pub os_hidden: bool,
    /// Free-form properties (Glance's "extra properties"), always strings.
    pub properties: BTreeMap<String, String>,
    /// Distinct tags, in the order they were added.
    pub tags: Vec<String>,
    /// The block store object with the data, once the image is active.
    pub store_name: Option<String>,
    /// `image` or `snapshot`: the kind of the block store object.
    pub store_kind: Option<String>,
    /// RFC 3339 with microseconds.
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, name, status, visibility, owner, disk_format, container_format, size, \
    virtual_size, checksum, os_hash_algo, os_hash_value, min_disk, min_ram, protected, os_hidden, \
    properties, tags, store_name, store_kind, created_at, updated_at";

fn from_row(row: &SqliteRow) -> Result<ImageRow> {
    let status: String = row.try_get("status")?;
    let visibility: String = row.try_get("visibility")?;
    let properties: String = row.try_get("properties")?;
    let tags: String = row.try_get("tags")?;
    Ok(ImageRow {
        id: ImageId(row.try_get("id")?),
        name: row.try_get("name")?,
        status: ImageStatus::parse(&status).unwrap_or(ImageStatus::Killed),
        visibility: Visibility::parse(&visibility).unwrap_or(Visibility::Private),
        owner: row.try_get("owner")?,
        disk_format: row.try_get("disk_format")?,
        container_format: row.try_get("container_format")?,
        size: row.try_get("size")?,
        virtual_size: row.try_get("virtual_size")?,
        checksum: row.try_get("checksum")?,
        os_hash_algo: row.try_get("os_hash_algo")?,
        os_hash_value: row.try_get("os_hash_value")?,
        min_disk: row.try_get("min_disk")?,
        min_ram: row.try_get("min_ram")?,
        protected: row.try_get("protected")?,
        os_hidden: row.try_get("os_hidden")?,
        properties: serde_json::from_str(&properties).unwrap_or_default(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        store_name: row.try_get("store_name")?,
        store_kind: row.try_get("store_kind")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub async fn insert(db: &Db, image: &ImageRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO images ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(image.id.as_str())
    .bind(&image.name)
    .bind(image.status.as_str())
    .bind(image.visibility.as_str())
    .bind(&image.owner)
    .bind(&image.disk_format)
    .bind(&image.container_format)
    .bind(image.size)
    .bind(image.virtual_size)
    .bind(&image.checksum)
    .bind(&image.os_hash_algo)
    .bind(&image.os_hash_value)
    .bind(image.min_disk)
    .bind(image.min_ram)
    .bind(image.protected)
    .bind(image.os_hidden)
    .bind(json(&image.properties))
    .bind(json(&image.tags))
    .bind(&image.store_name)
    .bind(&image.store_kind)
    .bind(&image.created_at)
    .bind(&image.updated_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<ImageRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM images WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Saves the user-changeable attributes of `image` (everything but status, sizes, hashes and
/// the data location), provided the row is still in `image.status`. False when it is not
/// (gone, or its status changed under us).
pub async fn update_attributes(db: &Db, image: &ImageRow) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE images SET name = ?, visibility = ?, owner = ?, disk_format = ?, container_format = ?,
            min_disk = ?, min_ram = ?, protected = ?, os_hidden = ?, properties = ?, tags = ?, updated_at = ?
         WHERE id = ? AND status = ?",
    )
    .bind(&image.name)
    .bind(image.visibility.as_str())
    .bind(&image.owner)
    .bind(&image.disk_format)
    .bind(&image.container_format)
    .bind(image.min_disk)
    .bind(image.min_ram)
    .bind(image.protected)
    .bind(image.os_hidden)
    .bind(json(&image.properties))
    .bind(json(&image.tags))
    .bind(&image.updated_at)
    .bind(image.id.as_str())
    .bind(image.status.as_str())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves an image from status `from` to `to` (clearing sizes and hashes when `to` is queued).
/// False when the image is gone or not in `from`.
pub async fn set_status(db: &Db, id: &str, from: ImageStatus, to: ImageStatus) -> Result<bool> {
    let clear = if to == ImageStatus::Queued {
        ", size = NULL, virtual_size = NULL, checksum = NULL, os_hash_algo = NULL, os_hash_value = NULL"
    } else {
        ""
    };
    let done = sqlx::query(&format!(
        "UPDATE images SET status = ?, updated_at = ?{clear} WHERE id = ? AND status = ?"
    ))
    .bind(to.as_str())
    .bind(nubo_common::time::now_rfc3339())
    .bind(id)
    .bind(from.as_str())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a finished upload (or a snapshot) fills in.
#[derive(Debug, Clone)]
pub struct DataRecord {
    pub size: i64,
    pub virtual_size: Option<i64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub store_name: String,
    pub store_kind: &'static str,
}

/// Marks an image `active` with its data, provided it is still in `from`.
pub async fn activate(db: &Db, id: &str, from: ImageStatus, data: &DataRecord) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?, os_hash_algo = ?,
            os_hash_value = ?, store_name = ?, store_kind = ?, updated_at = ?
         WHERE id = ? AND status = ?",
    )
    .bind(data.size)
    .bind(data.virtual_size)
    .bind(&data.checksum)
    .bind(&data.os_hash_algo)
    .bind(&data.os_hash_value)
    .bind(&data.store_name)
    .bind(data.store_kind)
    .bind(nubo_common::time::now_rfc3339())
    .bind(id)
    .bind(from.as_str())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Fills in the hashes of an image whose data was hashed after it became active (snapshots).
pub async fn set_hashes(db: &Db, id: &str, checksum: &str, algo: &str, value: &str) -> Result<()> {
    sqlx::query(
        "UPDATE images SET checksum = ?, os_hash_algo = ?, os_hash_value = ? WHERE id = ? AND checksum IS NULL",
    )
    .bind(checksum)
    .bind(algo)
    .bind(value)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes the row; returns it as it was (None when already gone).
pub async fn delete(db: &Db, id: &str) -> Result<Option<ImageRow>> {
    let row = sqlx::query(&format!(
        "DELETE FROM images WHERE id = ? RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Who may see what in a listing.
#[derive(Debug, Clone)]
pub enum ListScope {
    /// Every image (an admin).
    All,
    /// Public and community images, the project's own, and shared images it is a member of
    /// (with the membership status given, or any when None).
    Project {
        project_id: String,
        member_status: Option<String>,
    },
    /// A caller without a project: public and community images only.
    PublicOnly,
}

/// Every image the scope may see (killed images excepted, as Glance lists them).
pub async fn list(db: &Db, scope: &ListScope) -> Result<Vec<ImageRow>> {
    let base = format!("SELECT {COLUMNS} FROM images WHERE status != 'killed'");
    let rows = match scope {
        ListScope::All => sqlx::query(&base).fetch_all(db.pool()).await?,
        ListScope::PublicOnly => {
            sqlx::query(&format!("{base} AND visibility IN ('public', 'community')"))
                .fetch_all(db.pool())
                .await?
        }
        ListScope::Project {
            project_id,
            member_status,
        } => {
            let member_clause = if member_status.is_some() {
                "SELECT image_id FROM image_members WHERE member_id = ? AND status = ?"
            } else {
                "SELECT image_id FROM image_members WHERE member_id = ? AND status != ?"
            };
            sqlx::query(&format!(
                "{base} AND (visibility IN ('public', 'community') OR owner = ?
                   OR (visibility = 'shared' AND id IN ({member_clause})))"
            ))
            .bind(project_id)
            .bind(project_id)
            .bind(member_status.as_deref().unwrap_or(""))
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Images with a given name (any owner): for bootstrap.
pub async fn find_by_name(db: &Db, name: &str) -> Result<Vec<ImageRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM images WHERE name = ?"))
        .bind(name)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// (number of images, bytes of image data) a project owns.
pub async fn usage(db: &Db, owner: &str) -> Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM images WHERE owner = ?",
    )
    .bind(owner)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get("n")?, row.try_get("bytes")?))
}

/// Starts an upload: `queued -> saving` with a fresh heartbeat. False when not queued.
pub async fn begin_upload(db: &Db, id: &str) -> Result<bool> {
    let now = nubo_common::time::now_rfc3339();
    let done = sqlx::query(
        "UPDATE images SET status = 'saving', updated_at = ?, heartbeat = ? WHERE id = ? AND status = 'queued'",
    )
    .bind(&now)
    .bind(&now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The uploading node is alive and still streaming.
pub async fn touch_upload(db: &Db, id: &str) -> Result<()> {
    sqlx::query("UPDATE images SET heartbeat = ? WHERE id = ? AND status = 'saving'")
        .bind(nubo_common::time::now_rfc3339())
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Images left in `saving` whose uploader stopped beating before `cutoff` (its API node died)
/// go back to `queued`, so the upload can be retried.
pub async fn reset_stale_uploads(db: &Db, cutoff: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE images SET status = 'queued', size = NULL, virtual_size = NULL, checksum = NULL,
            os_hash_algo = NULL, os_hash_value = NULL
         WHERE status = 'saving' AND (heartbeat IS NULL OR heartbeat < ?)",
    )
    .bind(cutoff)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Uploads in progress for a project.
pub async fn uploading(db: &Db, owner: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM images WHERE owner = ? AND status = 'saving'")
            .bind(owner)
            .fetch_one(db.pool())
            .await?,
    )
}
