//! Host aggregates (`os-aggregates`): a name, an optional availability zone (which becomes the
//! zone of its hosts), metadata, and hosts.

use std::collections::BTreeMap;

use nubo_common::Result;
use sqlx::{Row, SqliteConnection};

use super::{from_json, to_json};

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub hosts: Vec<String>,
}

fn row(r: &sqlx::sqlite::SqliteRow) -> AggregateRow {
    AggregateRow {
        id: r.get("id"),
        uuid: r.get("uuid"),
        name: r.get("name"),
        availability_zone: r.get("availability_zone"),
        metadata: from_json(&r.get::<String, _>("metadata")),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        hosts: Vec::new(),
    }
}

async fn with_hosts(conn: &mut SqliteConnection, mut a: AggregateRow) -> Result<AggregateRow> {
    a.hosts = sqlx::query_scalar(
        "SELECT host FROM compute_aggregate_hosts WHERE aggregate_id = ? ORDER BY rowid",
    )
    .bind(a.id)
    .fetch_all(conn)
    .await?;
    Ok(a)
}

pub async fn get(conn: &mut SqliteConnection, id: i64) -> Result<Option<AggregateRow>> {
    let r = sqlx::query("SELECT * FROM compute_aggregates WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match r.as_ref().map(row) {
        Some(a) => Ok(Some(with_hosts(conn, a).await?)),
        None => Ok(None),
    }
}

pub async fn get_by_name(conn: &mut SqliteConnection, name: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM compute_aggregates WHERE name = ?")
            .bind(name)
            .fetch_optional(conn)
            .await?,
    )
}

pub async fn list(conn: &mut SqliteConnection) -> Result<Vec<AggregateRow>> {
    let rows = sqlx::query("SELECT * FROM compute_aggregates ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    let hosts =
        sqlx::query("SELECT aggregate_id, host FROM compute_aggregate_hosts ORDER BY rowid")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut a = row(r);
            a.hosts = hosts
                .iter()
                .filter(|h| h.get::<i64, _>("aggregate_id") == a.id)
                .map(|h| h.get("host"))
                .collect();
            a
        })
        .collect())
}

/// Inserts `a` (its `id` is assigned); returns the id.
pub async fn insert(conn: &mut SqliteConnection, a: &AggregateRow) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO compute_aggregates (uuid, name, availability_zone, metadata, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&a.uuid)
    .bind(&a.name)
    .bind(&a.availability_zone)
    .bind(to_json(&a.metadata))
    .bind(&a.created_at)
    .bind(&a.updated_at)
    .fetch_one(conn)
    .await?)
}

/// Writes name, zone, metadata and updated_at.
pub async fn update(conn: &mut SqliteConnection, a: &AggregateRow) -> Result<()> {
    sqlx::query(
        "UPDATE compute_aggregates SET name = ?, availability_zone = ?, metadata = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(&a.name)
    .bind(&a.availability_zone)
    .bind(to_json(&a.metadata))
    .bind(&a.updated_at)
    .bind(a.id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut SqliteConnection, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM compute_aggregate_hosts WHERE aggregate_id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM compute_aggregates WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn add_host(conn: &mut SqliteConnection, id: i64, host: &str) -> Result<()> {
    sqlx::query("INSERT INTO compute_aggregate_hosts (aggregate_id, host) VALUES (?, ?)")
        .bind(id)
        .bind(host)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn remove_host(conn: &mut SqliteConnection, id: i64, host: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_aggregate_hosts WHERE aggregate_id = ? AND host = ?")
        .bind(id)
        .bind(host)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets a host that left the cloud (os-services delete).
pub async fn forget_host(conn: &mut SqliteConnection, host: &str) -> Result<()> {
    sqlx::query("DELETE FROM compute_aggregate_hosts WHERE host = ?")
        .bind(host)
        .execute(conn)
        .await?;
    Ok(())
}
