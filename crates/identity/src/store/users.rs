//! SQL for users, their password hashes and group membership.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{json_map, json_text};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    pub default_project_id: Option<String>,
    pub password_hash: Option<String>,
    pub password_created_at: Option<String>,
    pub password_expires_at: Option<String>,
    pub extra: Map<String, Value>,
    pub options: Map<String, Value>,
    pub created_at: String,
}

const COLUMNS: &str = "id, name, domain_id, enabled, default_project_id, password_hash, \
    password_created_at, password_expires_at, extra, options, created_at";

fn from_row(row: &SqliteRow) -> Result<UserRow> {
    Ok(UserRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        domain_id: row.try_get("domain_id")?,
        enabled: row.try_get("enabled")?,
        default_project_id: row.try_get("default_project_id")?,
        password_hash: row.try_get("password_hash")?,
        password_created_at: row.try_get("password_created_at")?,
        password_expires_at: row.try_get("password_expires_at")?,
        extra: json_map(row.try_get("extra")?),
        options: json_map(row.try_get("options")?),
        created_at: row.try_get("created_at")?,
    })
}

pub async fn insert(db: &Db, u: &UserRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO users ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&u.id)
    .bind(&u.name)
    .bind(&u.domain_id)
    .bind(u.enabled)
    .bind(&u.default_project_id)
    .bind(&u.password_hash)
    .bind(&u.password_created_at)
    .bind(&u.password_expires_at)
    .bind(json_text(&u.extra))
    .bind(json_text(&u.options))
    .bind(&u.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update(db: &Db, u: &UserRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET name = ?, enabled = ?, default_project_id = ?, password_hash = ?,
         password_created_at = ?, password_expires_at = ?, extra = ?, options = ? WHERE id = ?",
    )
    .bind(&u.name)
    .bind(u.enabled)
    .bind(&u.default_project_id)
    .bind(&u.password_hash)
    .bind(&u.password_created_at)
    .bind(&u.password_expires_at)
    .bind(json_text(&u.extra))
    .bind(json_text(&u.options))
    .bind(&u.id)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<UserRow>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get_by_name(db: &Db, domain_id: &str, name: &str) -> Result<Option<UserRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE domain_id = ? AND name = ?"
    ))
    .bind(domain_id)
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<UserRow>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY name, id"))
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_in_group(db: &Db, group_id: &str) -> Result<Vec<UserRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE id IN (SELECT user_id FROM user_groups WHERE group_id = ?)
         ORDER BY name, id"
    ))
    .bind(group_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM assignments WHERE actor_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM credentials WHERE user_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

pub async fn add_to_group(db: &Db, user_id: &str, group_id: &str) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?, ?)")
        .bind(user_id)
        .bind(group_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn remove_from_group(db: &Db, user_id: &str, group_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM user_groups WHERE user_id = ? AND group_id = ?")
        .bind(user_id)
        .bind(group_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn is_in_group(db: &Db, user_id: &str, group_id: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM user_groups WHERE user_id = ? AND group_id = ?")
            .bind(user_id)
            .bind(group_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(found.is_some())
}

/// The ids of the groups `user_id` belongs to.
pub async fn group_ids(db: &Db, user_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT group_id FROM user_groups WHERE user_id = ?")
            .bind(user_id)
            .fetch_all(db.pool())
            .await?,
    )
}

pub async fn touch_last_active(db: &Db, user_id: &str, at: &str) -> Result<()> {
    sqlx::query("UPDATE users SET last_active_at = ? WHERE id = ?")
        .bind(at)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The user's last `count` password hashes, newest first.
pub async fn password_history(db: &Db, user_id: &str, count: u32) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT password_hash FROM password_history WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(count as i64)
    .fetch_all(db.pool())
    .await?)
}

/// Records a password hash the user has had, keeping the newest `keep` (at least one).
pub async fn remember_password(
    db: &Db,
    user_id: &str,
    hash: &str,
    at: &str,
    keep: u32,
) -> Result<()> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, created_at) VALUES (?, ?, ?)",
    )
    .bind(user_id)
    .bind(hash)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM password_history WHERE user_id = ?1 AND rowid NOT IN
         (SELECT rowid FROM password_history WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
    )
    .bind(user_id)
    .bind(keep.max(1) as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Failed password logins since the last success: (count, time of the last failure).
pub async fn failed_logins(db: &Db, user_id: &str) -> Result<(i64, Option<String>)> {
    Ok(
        sqlx::query_as("SELECT failed_auth_count, failed_auth_at FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?
            .unwrap_or((0, None)),
    )
}

pub async fn record_failed_login(db: &Db, user_id: &str, at: &str) -> Result<()> {
    sqlx::query("UPDATE users SET failed_auth_count = failed_auth_count + 1, failed_auth_at = ? WHERE id = ?")
        .bind(at)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn clear_failed_logins(db: &Db, user_id: &str) -> Result<()> {
    sqlx::query("UPDATE users SET failed_auth_count = 0, failed_auth_at = NULL WHERE id = ? AND failed_auth_count > 0")
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}
