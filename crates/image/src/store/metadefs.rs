//! The `metadef_namespaces` table. A namespace's content (properties, objects, tags, resource
//! type associations) is one JSON document; writes are compare-and-set on `updated_at`.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceRow {
    pub namespace: String,
    pub owner: Option<String>,
    pub visibility: String,
    pub protected: bool,
    /// `display_name`, `description`, `properties`, `objects`, `tags`,
    /// `resource_type_associations`.
    pub doc: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

fn from_row(row: &SqliteRow) -> Result<NamespaceRow> {
    let doc: String = row.try_get("doc")?;
    Ok(NamespaceRow {
        namespace: row.try_get("namespace")?,
        owner: row.try_get("owner")?,
        visibility: row.try_get("visibility")?,
        protected: row.try_get("protected")?,
        doc: serde_json::from_str(&doc).unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "namespace, owner, visibility, protected, doc, created_at, updated_at";

pub async fn insert(db: &Db, ns: &NamespaceRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO metadef_namespaces ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&ns.namespace)
    .bind(&ns.owner)
    .bind(&ns.visibility)
    .bind(ns.protected)
    .bind(Value::Object(ns.doc.clone()).to_string())
    .bind(&ns.created_at)
    .bind(&ns.updated_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, namespace: &str) -> Result<Option<NamespaceRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM metadef_namespaces WHERE namespace = ?"
    ))
    .bind(namespace)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: &Db) -> Result<Vec<NamespaceRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM metadef_namespaces ORDER BY created_at, namespace"
    ))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Saves `ns` (possibly renamed from `old_name`) if the stored row still has `old_updated_at`.
pub async fn save(
    db: &Db,
    old_name: &str,
    old_updated_at: &str,
    ns: &NamespaceRow,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE metadef_namespaces SET namespace = ?, owner = ?, visibility = ?, protected = ?, doc = ?,
            updated_at = ? WHERE namespace = ? AND updated_at = ?",
    )
    .bind(&ns.namespace)
    .bind(&ns.owner)
    .bind(&ns.visibility)
    .bind(ns.protected)
    .bind(Value::Object(ns.doc.clone()).to_string())
    .bind(&ns.updated_at)
    .bind(old_name)
    .bind(old_updated_at)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(db: &Db, namespace: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM metadef_namespaces WHERE namespace = ?")
        .bind(namespace)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}
