//! SQL for stored credentials (`/v3/credentials`: EC2 keys, TOTP secrets ...) and the legacy
//! policy blobs (`/v3/policies`).

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{json_map, json_text};

#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRow {
    pub id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub credential_type: String,
    pub blob: String,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub id: String,
    pub policy_type: String,
    pub blob: String,
    pub extra: Map<String, Value>,
}

pub async fn insert(db: &Db, c: &CredentialRow) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO credentials (id, user_id, project_id, type, blob, extra) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&c.id)
        .bind(&c.user_id)
        .bind(&c.project_id)
        .bind(&c.credential_type)
        .bind(&c.blob)
        .bind(json_text(&c.extra))
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn update(db: &Db, c: &CredentialRow) -> Result<()> {
    sqlx::query("UPDATE credentials SET user_id = ?, project_id = ?, type = ?, blob = ?, extra = ? WHERE id = ?")
        .bind(&c.user_id)
        .bind(&c.project_id)
        .bind(&c.credential_type)
        .bind(&c.blob)
        .bind(json_text(&c.extra))
        .bind(&c.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn list(db: &Db) -> Result<Vec<CredentialRow>> {
    let rows = sqlx::query(
        "SELECT id, user_id, project_id, type, blob, extra FROM credentials ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CredentialRow {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                project_id: row.try_get("project_id")?,
                credential_type: row.try_get("type")?,
                blob: row.try_get("blob")?,
                extra: json_map(row.try_get("extra")?),
            })
        })
        .collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Option<CredentialRow>> {
    Ok(list(db).await?.into_iter().find(|c| c.id == id))
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM credentials WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert_policy(db: &Db, p: &PolicyRow) -> Result<()> {
    sqlx::query("INSERT INTO policies (id, type, blob, extra) VALUES (?, ?, ?, ?)")
        .bind(&p.id)
        .bind(&p.policy_type)
        .bind(&p.blob)
        .bind(json_text(&p.extra))
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn update_policy(db: &Db, p: &PolicyRow) -> Result<()> {
    sqlx::query("UPDATE policies SET type = ?, blob = ?, extra = ? WHERE id = ?")
        .bind(&p.policy_type)
        .bind(&p.blob)
        .bind(json_text(&p.extra))
        .bind(&p.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn list_policies(db: &Db) -> Result<Vec<PolicyRow>> {
    let rows = sqlx::query("SELECT id, type, blob, extra FROM policies ORDER BY id")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| {
            Ok(PolicyRow {
                id: row.try_get("id")?,
                policy_type: row.try_get("type")?,
                blob: row.try_get("blob")?,
                extra: json_map(row.try_get("extra")?),
            })
        })
        .collect()
}

pub async fn delete_policy(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM policies WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
