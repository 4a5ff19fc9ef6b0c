//! SQL for tags on any resource (`resource_type` is the collection name: `networks`, `ports` ...).

use std::collections::HashMap;

use nubo_common::Result;
use sqlx::Row;

use super::{placeholders, Conn};

/// The tags of one resource, sorted.
pub async fn of(conn: &mut Conn, resource_type: &str, resource_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT tag FROM tags WHERE resource_type = ? AND resource_id = ? ORDER BY tag",
    )
    .bind(resource_type)
    .bind(resource_id)
    .fetch_all(conn)
    .await?)
}

/// The tags of many resources of one type, keyed by resource id (all of them when the list is
/// long: one scan beats thousands of parameters).
pub async fn of_many(
    conn: &mut Conn,
    resource_type: &str,
    ids: &[String],
) -> Result<HashMap<String, Vec<String>>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = if ids.len() > 500 {
        sqlx::query("SELECT resource_id, tag FROM tags WHERE resource_type = ? ORDER BY tag")
            .bind(resource_type)
            .fetch_all(conn)
            .await?
    } else {
        let sql = format!(
            "SELECT resource_id, tag FROM tags WHERE resource_type = ? AND resource_id IN ({}) ORDER BY tag",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(&sql).bind(resource_type);
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(conn).await?
    };
    for row in rows {
        out.entry(row.try_get("resource_id")?)
            .or_default()
            .push(row.try_get("tag")?);
    }
    Ok(out)
}

pub async fn add(conn: &mut Conn, resource_type: &str, resource_id: &str, tag: &str) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO tags (resource_type, resource_id, tag) VALUES (?, ?, ?)")
        .bind(resource_type)
        .bind(resource_id)
        .bind(tag)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes one tag; false when it was not there.
pub async fn remove(
    conn: &mut Conn,
    resource_type: &str,
    resource_id: &str,
    tag: &str,
) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM tags WHERE resource_type = ? AND resource_id = ? AND tag = ?")
            .bind(resource_type)
            .bind(resource_id)
            .bind(tag)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn clear(conn: &mut Conn, resource_type: &str, resource_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM tags WHERE resource_type = ? AND resource_id = ?")
        .bind(resource_type)
        .bind(resource_id)
        .execute(conn)
        .await?;
    Ok(())
}
