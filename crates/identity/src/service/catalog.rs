//! The service catalog: regions, services, endpoints, and the catalog a token carries.

use std::sync::Arc;
use std::time::Instant;

use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use crate::policy;
use crate::service::{check_name, matches_filters, not_found, Body, IdentityService};
use crate::store;
use crate::store::catalog::{EndpointRow, RegionRow, ServiceRow};

const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

fn check_interface(interface: &str) -> Result<()> {
    if INTERFACES.contains(&interface) {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "Invalid input for field 'interface': '{interface}' is not one of public, internal, admin."
        )))
    }
}

fn check_url(url: &str) -> Result<()> {
    if url.trim().is_empty() || url.len() > 225 {
        return Err(Error::bad_request("Invalid input for field 'url'."));
    }
    Ok(())
}

impl IdentityService {
    // ---------------------------------------------------------------- regions

    pub async fn create_region(
        &self,
        caller: &Caller,
        id: Option<&str>,
        body: Value,
    ) -> Result<RegionRow> {
        policy::require_admin(caller, "create_region")?;
        let mut body = Body::new(body, "region")?;
        let body_id = body.string("id")?;
        if let (Some(path_id), Some(body_id)) = (id, &body_id) {
            if path_id != body_id {
                return Err(Error::bad_request(
                    "The region id in the body does not match the URL.",
                ));
            }
        }
        let id = id
            .map(str::to_string)
            .or(body_id)
            .unwrap_or_else(nubo_common::ids::new_hex_id);
        check_name("id", &id, 255)?;
        let parent_region_id = body.string("parent_region_id")?;
        if let Some(parent) = &parent_region_id {
            if store::catalog::get_region(&self.db, parent)
                .await?
                .is_none()
            {
                return Err(Error::bad_request(format!(
                    "Could not find region: {parent}."
                )));
            }
        }
        let region = RegionRow {
            id: id.clone(),
            description: body.string("description")?.unwrap_or_default(),
            parent_region_id,
            extra: body.into_extra(),
        };
        store::catalog::insert_region(&self.db, &region)
            .await
            .map_err(|e| {
                if nubo_common::db::is_unique_violation(&e) {
                    Error::conflict(format!(
                        "Conflict occurred attempting to store region - Duplicate ID, {id}."
                    ))
                } else {
                    Error::from(e)
                }
            })?;
        self.changed();
        Ok(region)
    }

    /// Regions are public to every authenticated user, as in Keystone.
    pub async fn get_region(&self, _caller: &Caller, id: &str) -> Result<RegionRow> {
        store::catalog::get_region(&self.db, id)
            .await?
            .ok_or_else(|| not_found("region", id))
    }

    pub async fn list_regions(
        &self,
        _caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<RegionRow>> {
        let regions = store::catalog::list_regions(&self.db).await?;
        Ok(regions
            .into_iter()
            .filter(|r| {
                let mut map = r.extra.clone();
                map.insert("id".into(), Value::String(r.id.clone()));
                if let Some(p) = &r.parent_region_id {
                    map.insert("parent_region_id".into(), Value::String(p.clone()));
                }
                matches_filters(&map, filters)
            })
            .collect())
    }

    pub async fn update_region(&self, caller: &Caller, id: &str, body: Value) -> Result<RegionRow> {
        policy::require_admin(caller, "update_region")?;
        let mut region = store::catalog::get_region(&self.db, id)
            .await?
            .ok_or_else(|| not_found("region", id))?;
        let mut body = Body::new(body, "region")?;
        if let Some(description) = body.nullable_string("description")? {
            region.description = description.unwrap_or_default();
        }
        if let Some(parent) = body.nullable_string("parent_region_id")? {
            if let Some(parent_id) = &parent {
                self.check_region_parent(id, parent_id).await?;
            }
            region.parent_region_id = parent;
        }
        region.extra.extend(body.into_extra());
        store::catalog::update_region(&self.db, &region).await?;
        self.changed();
        Ok(region)
    }

    /// A region's new parent must exist and must not make a cycle.
    async fn check_region_parent(&self, id: &str, parent_id: &str) -> Result<()> {
        let regions = store::catalog::list_regions(&self.db).await?;
        let mut current = Some(parent_id.to_string());
        let mut hops = 0;
        while let Some(region_id) = current {
            if region_id == id {
                return Err(Error::forbidden(
                    "Circular reference or a repeated entry found in region tree.",
                ));
            }
            let region = regions.iter().find(|r| r.id == region_id).ok_or_else(|| {
                Error::bad_request(format!("Could not find region: {region_id}."))
            })?;
            current = region.parent_region_id.clone();
            hops += 1;
            if hops > 64 {
                break;
            }
        }
        Ok(())
    }

    pub async fn delete_region(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_region")?;
        let regions = store::catalog::list_regions(&self.db).await?;
        if !regions.iter().any(|r| r.id == id) {
            return Err(not_found("region", id));
        }
        if regions
            .iter()
            .any(|r| r.parent_region_id.as_deref() == Some(id))
        {
            return Err(Error::forbidden(format!(
                "Unable to delete region {id} because it has child regions."
            )));
        }
        store::catalog::delete_region(&self.db, id).await?;
        self.changed();
        Ok(())
    }

    // ---------------------------------------------------------------- services

    pub async fn create_service(&self, caller: &Caller, body: Value) -> Result<ServiceRow> {
        policy::require_admin(caller, "create_service")?;
        let mut body = Body::new(body, "service")?;
        let service_type = body.required_name("type", 255)?;
        let enabled = body.bool("enabled")?.unwrap_or(true);
        let service = ServiceRow {
            id: nubo_common::ids::new_hex_id(),
            service_type,
            enabled,
            extra: body.into_extra(),
        };
        store::catalog::insert_service(&self.db, &service).await?;
        self.changed();
        Ok(service)
    }

    pub async fn get_service(&self, caller: &Caller, id: &str) -> Result<ServiceRow> {
        policy::require_reader(caller, "get_service")?;
        self.service_row(id).await
    }

    async fn service_row(&self, id: &str) -> Result<ServiceRow> {
        store::catalog::list_services(&self.db)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| not_found("service", id))
    }

    pub async fn list_services(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<ServiceRow>> {
        policy::require_reader(caller, "list_services")?;
        let services = store::catalog::list_services(&self.db).await?;
        Ok(services
            .into_iter()
            .filter(|s| {
                let mut map = s.extra.clone();
                map.insert("type".into(), Value::String(s.service_type.clone()));
                map.insert("enabled".into(), Value::Bool(s.enabled));
                matches_filters(&map, filters)
            })
            .collect())
    }

    pub async fn update_service(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<ServiceRow> {
        policy::require_admin(caller, "update_service")?;
        let mut service = self.service_row(id).await?;
        let mut body = Body::new(body, "service")?;
        if let Some(service_type) = body.string("type")? {
            check_name("type", &service_type, 255)?;
            service.service_type = service_type;
        }
        if let Some(enabled) = body.bool("enabled")? {
            service.enabled = enabled;
        }
        service.extra.extend(body.into_extra());
        store::catalog::update_service(&self.db, &service).await?;
        self.changed();
        Ok(service)
    }

    pub async fn delete_service(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_service")?;
        self.service_row(id).await?;
        store::catalog::delete_service(&self.db, id).await?;
        self.changed();
        Ok(())
    }

    // ---------------------------------------------------------------- endpoints

    /// Resolves `region_id` (or the legacy `region`, which is created when missing, as
    /// Keystone does).
    async fn endpoint_region(&self, body: &mut Body) -> Result<Option<Option<String>>> {
        let region_id = body.nullable_string("region_id")?;
        let legacy = body.nullable_string("region")?;
        let region = match (region_id, legacy) {
            (Some(id), _) => Some(id),
            (None, Some(legacy)) => Some(legacy),
            (None, None) => None,
        };
        if let Some(Some(id)) = &region {
            if store::catalog::get_region(&self.db, id).await?.is_none() {
                let row = RegionRow {
                    id: id.clone(),
                    description: String::new(),
                    parent_region_id: None,
                    extra: Default::default(),
                };
                store::catalog::insert_region(&self.db, &row).await?;
            }
        }
        Ok(region)
    }

    pub async fn create_endpoint(&self, caller: &Caller, body: Value) -> Result<EndpointRow> {
        policy::require_admin(caller, "create_endpoint")?;
        let mut body = Body::new(body, "endpoint")?;
        let service_id = body
            .string("service_id")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'service_id': required."))?;
        let interface = body
            .string("interface")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'interface': required."))?;
        check_interface(&interface)?;
        let url = body
            .string("url")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'url': required."))?;
        check_url(&url)?;
        let enabled = body.bool("enabled")?.unwrap_or(true);
        if self.service_row(&service_id).await.is_err() {
            return Err(Error::bad_request(format!(
                "Could not find service: {service_id}."
            )));
        }
        let region_id = self.endpoint_region(&mut body).await?.flatten();
        let endpoint = EndpointRow {
            id: nubo_common::ids::new_hex_id(),
            service_id,
            interface,
            region_id,
            url,
            enabled,
            extra: body.into_extra(),
        };
        store::catalog::insert_endpoint(&self.db, &endpoint).await?;
        self.changed();
        Ok(endpoint)
    }

    pub async fn get_endpoint(&self, caller: &Caller, id: &str) -> Result<EndpointRow> {
        policy::require_reader(caller, "get_endpoint")?;
        self.endpoint_row(id).await
    }

    async fn endpoint_row(&self, id: &str) -> Result<EndpointRow> {
        store::catalog::list_endpoints(&self.db)
            .await?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| not_found("endpoint", id))
    }

    pub async fn list_endpoints(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<EndpointRow>> {
        policy::require_reader(caller, "list_endpoints")?;
        let endpoints = store::catalog::list_endpoints(&self.db).await?;
        Ok(endpoints
            .into_iter()
            .filter(|e| {
                let mut map = e.extra.clone();
                map.insert("service_id".into(), Value::String(e.service_id.clone()));
                map.insert("interface".into(), Value::String(e.interface.clone()));
                map.insert("enabled".into(), Value::Bool(e.enabled));
                if let Some(r) = &e.region_id {
                    map.insert("region_id".into(), Value::String(r.clone()));
                }
                matches_filters(&map, filters)
            })
            .collect())
    }

    pub async fn update_endpoint(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<EndpointRow> {
        policy::require_admin(caller, "update_endpoint")?;
        let mut endpoint = self.endpoint_row(id).await?;
        let mut body = Body::new(body, "endpoint")?;
        if let Some(service_id) = body.string("service_id")? {
            if self.service_row(&service_id).await.is_err() {
                return Err(Error::bad_request(format!(
                    "Could not find service: {service_id}."
                )));
            }
            endpoint.service_id = service_id;
        }
        if let Some(interface) = body.string("interface")? {
            check_interface(&interface)?;
            endpoint.interface = interface;
        }
        if let Some(url) = body.string("url")? {
            check_url(&url)?;
            endpoint.url = url;
        }
        if let Some(enabled) = body.bool("enabled")? {
            endpoint.enabled = enabled;
        }
        if let Some(region) = self.endpoint_region(&mut body).await? {
            endpoint.region_id = region;
        }
        endpoint.extra.extend(body.into_extra());
        store::catalog::update_endpoint(&self.db, &endpoint).await?;
        self.changed();
        Ok(endpoint)
    }

    pub async fn delete_endpoint(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_endpoint")?;
        self.endpoint_row(id).await?;
        store::catalog::delete_endpoint(&self.db, id).await?;
        self.changed();
        Ok(())
    }

    // ---------------------------------------------------------------- the catalog

    /// The catalog as a token shows it: every enabled service with its enabled endpoints, URLs
    /// with `$(project_id)s` / `%(project_id)s` filled in (endpoints that need a project are left
    /// out when there is none).
    pub async fn catalog(&self, project_id: Option<&str>) -> Result<Value> {
        let rows = self.catalog_rows().await?;
        let allowed = project_id.and_then(|p| rows.allowed_endpoints(p));
        let mut catalog = Vec::new();
        for service in rows.services.iter().filter(|s| s.enabled) {
            let mut entries = Vec::new();
            for endpoint in rows
                .endpoints
                .iter()
                .filter(|e| e.enabled && e.service_id == service.id)
            {
                if allowed
                    .as_ref()
                    .is_some_and(|ids| !ids.contains(&endpoint.id))
                {
                    continue;
                }
                let Some(url) = substitute(&endpoint.url, project_id) else {
                    continue;
                };
                entries.push(json!({
                    "id": endpoint.id,
                    "interface": endpoint.interface,
                    "region": endpoint.region_id,
                    "region_id": endpoint.region_id,
                    "url": url,
                }));
            }
            catalog.push(json!({
                "endpoints": entries,
                "id": service.id,
                "type": service.service_type,
                "name": service.extra.get("name").cloned().unwrap_or(Value::String(String::new())),
            }));
        }
        Ok(Value::Array(catalog))
    }
}

impl IdentityService {
    /// The catalog tables, cached like scope resolutions (until a local write or `cache_ttl`).
    pub(crate) async fn catalog_rows(&self) -> Result<Arc<CatalogRows>> {
        let generation = self.scopes.generation();
        if let Some((cached_generation, made, rows)) = self.catalog_cache.read().as_ref() {
            if *cached_generation == generation && made.elapsed() < self.settings.cache_ttl {
                return Ok(rows.clone());
            }
        }
        let rows = Arc::new(CatalogRows {
            services: store::catalog::list_services(&self.db).await?,
            endpoints: store::catalog::list_endpoints(&self.db).await?,
            groups: store::endpoint_filters::list_groups(&self.db).await?,
            group_projects: store::endpoint_filters::list_group_projects(&self.db).await?,
            project_endpoints: store::endpoint_filters::list_project_endpoints(&self.db).await?,
        });
        *self.catalog_cache.write() = Some((generation, Instant::now(), rows.clone()));
        Ok(rows)
    }
}

/// Services, endpoints and the OS-EP-FILTER associations, as last read.
pub(crate) struct CatalogRows {
    pub(crate) services: Vec<ServiceRow>,
    pub(crate) endpoints: Vec<EndpointRow>,
    groups: Vec<store::endpoint_filters::EndpointGroupRow>,
    group_projects: Vec<(String, String)>,
    project_endpoints: Vec<(String, String)>,
}

impl CatalogRows {
    /// The endpoints `project_id` is restricted to, or `None` when it sees the whole catalog.
    pub(crate) fn allowed_endpoints(&self, project_id: &str) -> Option<Vec<String>> {
        let mut allowed: Vec<String> = self
            .project_endpoints
            .iter()
            .filter(|(_, p)| p == project_id)
            .map(|(e, _)| e.clone())
            .collect();
        let group_ids: Vec<&String> = self
            .group_projects
            .iter()
            .filter(|(_, p)| p == project_id)
            .map(|(g, _)| g)
            .collect();
        if allowed.is_empty() && group_ids.is_empty() {
            return None;
        }
        for group in self.groups.iter().filter(|g| group_ids.contains(&&g.id)) {
            for endpoint in self
                .endpoints
                .iter()
                .filter(|e| super::endpoint_filters::group_matches(group, e))
            {
                allowed.push(endpoint.id.clone());
            }
        }
        Some(allowed)
    }
}

/// Fills in the project id; `None` when the URL needs one and there is none.
fn substitute(url: &str, project_id: Option<&str>) -> Option<String> {
    let templated = url.contains("$(project_id)s")
        || url.contains("%(project_id)s")
        || url.contains("$(tenant_id)s")
        || url.contains("%(tenant_id)s");
    if !templated {
        return Some(url.to_string());
    }
    let project_id = project_id?;
    Some(
        url.replace("$(project_id)s", project_id)
            .replace("%(project_id)s", project_id)
            .replace("$(tenant_id)s", project_id)
            .replace("%(tenant_id)s", project_id),
    )
}
