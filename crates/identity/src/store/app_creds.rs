//! SQL for application credentials, their roles and access rules.

use nubo_common::{Db, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct AppCredRow {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub secret_hash: String,
    pub description: Option<String>,
    pub expires_at: Option<String>,
    pub unrestricted: bool,
    pub system: Option<String>,
    pub role_ids: Vec<String>,
    pub access_rule_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessRuleRow {
    pub id: String,
    pub user_id: String,
    pub service: String,
    pub path: String,
    pub method: String,
}

const COLUMNS: &str =
    "id, name, user_id, project_id, secret_hash, description, expires_at, unrestricted, system";

fn from_row(row: &SqliteRow) -> Result<AppCredRow> {
    Ok(AppCredRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        user_id: row.try_get("user_id")?,
        project_id: row.try_get("project_id")?,
        secret_hash: row.try_get("secret_hash")?,
        description: row.try_get("description")?,
        expires_at: row.try_get("expires_at")?,
        unrestricted: row.try_get("unrestricted")?,
        system: row.try_get("system")?,
        role_ids: Vec::new(),
        access_rule_ids: Vec::new(),
    })
}

async fn with_links(db: &Db, mut a: AppCredRow) -> Result<AppCredRow> {
    a.role_ids = sqlx::query_scalar(
        "SELECT role_id FROM application_credential_roles WHERE application_credential_id = ?",
    )
    .bind(&a.id)
    .fetch_all(db.pool())
    .await?;
    a.access_rule_ids = sqlx::query_scalar(
        "SELECT access_rule_id FROM application_credential_access_rules WHERE application_credential_id = ?",
    )
    .bind(&a.id)
    .fetch_all(db.pool())
    .await?;
    Ok(a)
}

/// Stores the credential, its roles, and its access rules (reusing the user's identical rules).
pub async fn insert(
    db: &Db,
    a: &AppCredRow,
    new_rules: &[AccessRuleRow],
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(&format!(
        "INSERT INTO application_credentials ({COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&a.id)
    .bind(&a.name)
    .bind(&a.user_id)
    .bind(&a.project_id)
    .bind(&a.secret_hash)
    .bind(&a.description)
    .bind(&a.expires_at)
    .bind(a.unrestricted)
    .bind(&a.system)
    .bind(nubo_common::time::now_rfc3339())
    .execute(&mut *tx)
    .await?;
    for role_id in &a.role_ids {
        sqlx::query("INSERT INTO application_credential_roles (application_credential_id, role_id) VALUES (?, ?)")
            .bind(&a.id)
            .bind(role_id)
            .execute(&mut *tx)
            .await?;
    }
    for rule in new_rules {
        sqlx::query("INSERT OR IGNORE INTO access_rules (id, user_id, service, path, method) VALUES (?, ?, ?, ?, ?)")
            .bind(&rule.id)
            .bind(&rule.user_id)
            .bind(&rule.service)
            .bind(&rule.path)
            .bind(&rule.method)
            .execute(&mut *tx)
            .await?;
    }
    for rule_id in &a.access_rule_ids {
        sqlx::query(
            "INSERT INTO application_credential_access_rules (application_credential_id, access_rule_id) VALUES (?, ?)",
        )
        .bind(&a.id)
        .bind(rule_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

pub async fn get(db: &Db, id: &str) -> Result<Option<AppCredRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM application_credentials WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(row) => Ok(Some(with_links(db, from_row(&row)?).await?)),
        None => Ok(None),
    }
}

pub async fn get_by_name(db: &Db, user_id: &str, name: &str) -> Result<Option<AppCredRow>> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM application_credentials WHERE user_id = ? AND name = ?")
            .bind(user_id)
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    match id {
        Some(id) => get(db, &id).await,
        None => Ok(None),
    }
}

pub async fn list_for_user(db: &Db, user_id: &str) -> Result<Vec<AppCredRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM application_credentials WHERE user_id = ? ORDER BY name"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(with_links(db, from_row(row)?).await?);
    }
    Ok(out)
}

pub async fn delete(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM application_credentials WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes `user_id`'s credentials scoped to `project_id` (all of them when `None`); returns their ids.
pub async fn delete_for_user(
    db: &Db,
    user_id: &str,
    project_id: Option<&str>,
) -> Result<Vec<String>> {
    let ids: Vec<String> = match project_id {
        Some(p) => {
            sqlx::query_scalar(
                "SELECT id FROM application_credentials WHERE user_id = ? AND project_id = ?",
            )
            .bind(user_id)
            .bind(p)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query_scalar("SELECT id FROM application_credentials WHERE user_id = ?")
                .bind(user_id)
                .fetch_all(db.pool())
                .await?
        }
    };
    for id in &ids {
        delete(db, id).await?;
    }
    Ok(ids)
}

pub async fn list_access_rules(db: &Db, user_id: &str) -> Result<Vec<AccessRuleRow>> {
    let rows = sqlx::query(
        "SELECT id, user_id, service, path, method FROM access_rules WHERE user_id = ? ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AccessRuleRow {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                service: row.try_get("service")?,
                path: row.try_get("path")?,
                method: row.try_get("method")?,
            })
        })
        .collect()
}

/// True when an application credential still uses the rule.
pub async fn access_rule_in_use(db: &Db, rule_id: &str) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM application_credential_access_rules WHERE access_rule_id = ? LIMIT 1",
    )
    .bind(rule_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(found.is_some())
}

pub async fn delete_access_rule(db: &Db, rule_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM access_rules WHERE id = ?")
        .bind(rule_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
