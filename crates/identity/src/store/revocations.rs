//! SQL for token revocation events.

use nubo_common::{Db, Result};
use sqlx::Row;

/// A revocation event: every `Some` field must match a token, and the token must have been
/// issued at or before `issued_before_us`, for the token to be revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationRow {
    pub id: i64,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub audit_id: Option<String>,
    pub audit_chain_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub issued_before_us: i64,
    pub revoked_at_us: i64,
}

/// Stores the event and returns its id.
pub async fn insert(db: &Db, e: &RevocationRow) -> Result<i64> {
    let done = sqlx::query(
        "INSERT INTO revocation_events (user_id, project_id, domain_id, audit_id, audit_chain_id,
         application_credential_id, issued_before, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&e.user_id)
    .bind(&e.project_id)
    .bind(&e.domain_id)
    .bind(&e.audit_id)
    .bind(&e.audit_chain_id)
    .bind(&e.application_credential_id)
    .bind(e.issued_before_us)
    .bind(e.revoked_at_us)
    .execute(db.pool())
    .await?;
    Ok(done.last_insert_rowid())
}

/// Events with an id above `after_id`, oldest first.
pub async fn list_after(db: &Db, after_id: i64) -> Result<Vec<RevocationRow>> {
    let rows = sqlx::query(
        "SELECT id, user_id, project_id, domain_id, audit_id, audit_chain_id, application_credential_id,
         issued_before, revoked_at FROM revocation_events WHERE id > ? ORDER BY id",
    )
    .bind(after_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RevocationRow {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                project_id: row.try_get("project_id")?,
                domain_id: row.try_get("domain_id")?,
                audit_id: row.try_get("audit_id")?,
                audit_chain_id: row.try_get("audit_chain_id")?,
                application_credential_id: row.try_get("application_credential_id")?,
                issued_before_us: row.try_get("issued_before")?,
                revoked_at_us: row.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Removes events revoked before `cutoff_us` (no token they could match is still valid).
pub async fn prune(db: &Db, cutoff_us: i64) -> Result<u64> {
    let done = sqlx::query("DELETE FROM revocation_events WHERE revoked_at < ?")
        .bind(cutoff_us)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
