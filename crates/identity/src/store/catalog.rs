//! SQL for the service catalog: regions, services and endpoints.

use nubo_common::{Db, Result};
use serde_json::{Map, Value};
use sqlx::Row;

use super::{json_map, json_text};

#[derive(Debug, Clone, PartialEq)]
pub struct RegionRow {
    pub id: String,
    pub description: String,
    pub parent_region_id: Option<String>,
    pub extra: Map<String, Value>,
}

/// A service; `name`, `description` and anything else a client sent live in `extra`, as in
/// Keystone.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub id: String,
    pub service_type: String,
    pub enabled: bool,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRow {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    pub region_id: Option<String>,
    pub url: String,
    pub enabled: bool,
    pub extra: Map<String, Value>,
}

pub async fn insert_region(db: &Db, r: &RegionRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO regions (id, description, parent_region_id, extra) VALUES (?, ?, ?, ?)",
    )
    .bind(&r.id)
    .bind(&r.description)
    .bind(&r.parent_region_id)
    .bind(json_text(&r.extra))
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update_region(db: &Db, r: &RegionRow) -> Result<()> {
    sqlx::query("UPDATE regions SET description = ?, parent_region_id = ?, extra = ? WHERE id = ?")
        .bind(&r.description)
        .bind(&r.parent_region_id)
        .bind(json_text(&r.extra))
        .bind(&r.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn list_regions(db: &Db) -> Result<Vec<RegionRow>> {
    let rows =
        sqlx::query("SELECT id, description, parent_region_id, extra FROM regions ORDER BY id")
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|row| {
            Ok(RegionRow {
                id: row.try_get("id")?,
                description: row.try_get("description")?,
                parent_region_id: row.try_get("parent_region_id")?,
                extra: json_map(row.try_get("extra")?),
            })
        })
        .collect()
}

pub async fn get_region(db: &Db, id: &str) -> Result<Option<RegionRow>> {
    Ok(list_regions(db).await?.into_iter().find(|r| r.id == id))
}

pub async fn delete_region(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM regions WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert_service(db: &Db, s: &ServiceRow) -> Result<()> {
    sqlx::query("INSERT INTO services (id, type, enabled, extra) VALUES (?, ?, ?, ?)")
        .bind(&s.id)
        .bind(&s.service_type)
        .bind(s.enabled)
        .bind(json_text(&s.extra))
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn update_service(db: &Db, s: &ServiceRow) -> Result<()> {
    sqlx::query("UPDATE services SET type = ?, enabled = ?, extra = ? WHERE id = ?")
        .bind(&s.service_type)
        .bind(s.enabled)
        .bind(json_text(&s.extra))
        .bind(&s.id)
        .execute(db.pool())
        .await?;
    Ok(())
}

pub async fn list_services(db: &Db) -> Result<Vec<ServiceRow>> {
    let rows = sqlx::query("SELECT id, type, enabled, extra FROM services ORDER BY type, id")
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ServiceRow {
                id: row.try_get("id")?,
                service_type: row.try_get("type")?,
                enabled: row.try_get("enabled")?,
                extra: json_map(row.try_get("extra")?),
            })
        })
        .collect()
}

pub async fn delete_service(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM services WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn insert_endpoint(db: &Db, e: &EndpointRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO endpoints (id, service_id, interface, region_id, url, enabled, extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&e.id)
    .bind(&e.service_id)
    .bind(&e.interface)
    .bind(&e.region_id)
    .bind(&e.url)
    .bind(e.enabled)
    .bind(json_text(&e.extra))
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn update_endpoint(db: &Db, e: &EndpointRow) -> Result<()> {
    sqlx::query(
        "UPDATE endpoints SET service_id = ?, interface = ?, region_id = ?, url = ?, enabled = ?, extra = ? WHERE id = ?",
    )
    .bind(&e.service_id)
    .bind(&e.interface)
    .bind(&e.region_id)
    .bind(&e.url)
    .bind(e.enabled)
    .bind(json_text(&e.extra))
    .bind(&e.id)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn list_endpoints(db: &Db) -> Result<Vec<EndpointRow>> {
    let rows = sqlx::query(
        "SELECT id, service_id, interface, region_id, url, enabled, extra FROM endpoints ORDER BY service_id, interface, id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(EndpointRow {
                id: row.try_get("id")?,
                service_id: row.try_get("service_id")?,
                interface: row.try_get("interface")?,
                region_id: row.try_get("region_id")?,
                url: row.try_get("url")?,
                enabled: row.try_get("enabled")?,
                extra: json_map(row.try_get("extra")?),
            })
        })
        .collect()
}

pub async fn delete_endpoint(db: &Db, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM endpoints WHERE id = ?")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
