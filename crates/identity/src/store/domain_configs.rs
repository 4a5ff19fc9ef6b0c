//! SQL for domain-specific configuration: (domain, group, option) -> JSON value.

use nubo_common::{Db, Result};
use serde_json::Value;

/// Every (group, option, value) of a domain.
pub async fn list(db: &Db, domain_id: &str) -> Result<Vec<(String, String, Value)>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT grp, option, value FROM domain_configs WHERE domain_id = ? ORDER BY grp, option",
    )
    .bind(domain_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(g, o, v)| (g, o, serde_json::from_str(&v).unwrap_or(Value::Null)))
        .collect())
}

/// Replaces a domain's whole configuration.
pub async fn replace(db: &Db, domain_id: &str, entries: &[(String, String, Value)]) -> Result<()> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM domain_configs WHERE domain_id = ?")
        .bind(domain_id)
        .execute(&mut *tx)
        .await?;
    for (group, option, value) in entries {
        sqlx::query(
            "INSERT INTO domain_configs (domain_id, grp, option, value) VALUES (?, ?, ?, ?)",
        )
        .bind(domain_id)
        .bind(group)
        .bind(option)
        .bind(value.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
