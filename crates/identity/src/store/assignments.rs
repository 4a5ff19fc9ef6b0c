//! SQL for role assignments: (actor, target, role, inherited) tuples of six kinds.

use nubo_common::{Db, Result};
use sqlx::Row;

/// The six assignment kinds, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentKind {
    UserProject,
    GroupProject,
    UserDomain,
    GroupDomain,
    UserSystem,
    GroupSystem,
}

impl AssignmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentKind::UserProject => "UserProject",
            AssignmentKind::GroupProject => "GroupProject",
            AssignmentKind::UserDomain => "UserDomain",
            AssignmentKind::GroupDomain => "GroupDomain",
            AssignmentKind::UserSystem => "UserSystem",
            AssignmentKind::GroupSystem => "GroupSystem",
        }
    }

    fn parse(text: &str) -> Option<AssignmentKind> {
        Some(match text {
            "UserProject" => AssignmentKind::UserProject,
            "GroupProject" => AssignmentKind::GroupProject,
            "UserDomain" => AssignmentKind::UserDomain,
            "GroupDomain" => AssignmentKind::GroupDomain,
            "UserSystem" => AssignmentKind::UserSystem,
            "GroupSystem" => AssignmentKind::GroupSystem,
            _ => return None,
        })
    }

    pub fn is_group(self) -> bool {
        matches!(
            self,
            AssignmentKind::GroupProject
                | AssignmentKind::GroupDomain
                | AssignmentKind::GroupSystem
        )
    }
}

/// The target id stored for system assignments.
pub const SYSTEM_TARGET: &str = "system";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssignmentRow {
    pub kind: AssignmentKind,
    pub actor_id: String,
    pub target_id: String,
    pub role_id: String,
    /// OS-INHERIT: applies to the target's sub-projects, not to the target itself.
    pub inherited: bool,
}

pub async fn grant(db: &Db, a: &AssignmentRow) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO assignments (kind, actor_id, target_id, role_id, inherited) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(a.kind.as_str())
    .bind(&a.actor_id)
    .bind(&a.target_id)
    .bind(&a.role_id)
    .bind(a.inherited)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn revoke(db: &Db, a: &AssignmentRow) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM assignments WHERE kind = ? AND actor_id = ? AND target_id = ? AND role_id = ? AND inherited = ?",
    )
    .bind(a.kind.as_str())
    .bind(&a.actor_id)
    .bind(&a.target_id)
    .bind(&a.role_id)
    .bind(a.inherited)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn exists(db: &Db, a: &AssignmentRow) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM assignments WHERE kind = ? AND actor_id = ? AND target_id = ? AND role_id = ? AND inherited = ?",
    )
    .bind(a.kind.as_str())
    .bind(&a.actor_id)
    .bind(&a.target_id)
    .bind(&a.role_id)
    .bind(a.inherited)
    .fetch_optional(db.pool())
    .await?;
    Ok(found.is_some())
}

/// Every assignment whose actor is one of `actor_ids` (a user and its groups).
pub async fn list_for_actors(db: &Db, actor_ids: &[String]) -> Result<Vec<AssignmentRow>> {
    if actor_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; actor_ids.len()].join(", ");
    let sql = format!(
        "SELECT kind, actor_id, target_id, role_id, inherited FROM assignments WHERE actor_id IN ({placeholders})"
    );
    let mut query = sqlx::query(&sql);
    for id in actor_ids {
        query = query.bind(id);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_all(db: &Db) -> Result<Vec<AssignmentRow>> {
    let rows = sqlx::query("SELECT kind, actor_id, target_id, role_id, inherited FROM assignments")
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AssignmentRow> {
    let kind: String = row.try_get("kind")?;
    Ok(AssignmentRow {
        kind: AssignmentKind::parse(&kind).ok_or_else(|| {
            nubo_common::Error::internal(format!("unknown assignment kind {kind}"))
        })?,
        actor_id: row.try_get("actor_id")?,
        target_id: row.try_get("target_id")?,
        role_id: row.try_get("role_id")?,
        inherited: row.try_get("inherited")?,
    })
}
