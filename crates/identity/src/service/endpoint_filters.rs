//! OS-EP-FILTER: endpoint groups, and associating endpoints or endpoint groups with projects.
//! A project with associations sees only those endpoints in its catalog.

use nubo_common::{Caller, Error, Result};
use serde_json::{Map, Value};

use crate::policy;
use crate::service::{not_found, Body, IdentityService};
use crate::store;
use crate::store::catalog::EndpointRow;
use crate::store::endpoint_filters::EndpointGroupRow;

const FILTER_KEYS: [&str; 3] = ["service_id", "interface", "region_id"];

fn parse_filters(value: Option<Value>) -> Result<Map<String, Value>> {
    let filters = match value {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => {
            return Err(Error::bad_request(
                "Invalid input for field 'filters': required.",
            ))
        }
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field 'filters': not an object.",
            ))
        }
    };
    if let Some(bad) = filters.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
        return Err(Error::bad_request(format!(
            "Invalid input for field 'filters': unknown key {bad}."
        )));
    }
    Ok(filters)
}

/// True when `endpoint` matches every filter of `group`.
pub(crate) fn group_matches(group: &EndpointGroupRow, endpoint: &EndpointRow) -> bool {
    group.filters.iter().all(|(key, want)| {
        let actual = match key.as_str() {
            "service_id" => Some(endpoint.service_id.as_str()),
            "interface" => Some(endpoint.interface.as_str()),
            "region_id" => endpoint.region_id.as_deref(),
            _ => None,
        };
        want.as_str() == actual
    })
}

impl IdentityService {
    pub async fn create_endpoint_group(
        &self,
        caller: &Caller,
        body: Value,
    ) -> Result<EndpointGroupRow> {
        policy::require_admin(caller, "create_endpoint_group")?;
        let mut body = Body::new(body, "endpoint_group")?;
        let group = EndpointGroupRow {
            id: nubo_common::ids::new_hex_id(),
            name: body.required_name("name", 255)?,
            description: body.string("description")?,
            filters: parse_filters(body.take("filters"))?,
        };
        store::endpoint_filters::insert_group(&self.db, &group).await?;
        self.changed();
        Ok(group)
    }

    pub async fn get_endpoint_group(&self, caller: &Caller, id: &str) -> Result<EndpointGroupRow> {
        policy::require_reader(caller, "get_endpoint_group")?;
        self.endpoint_group_row(id).await
    }

    async fn endpoint_group_row(&self, id: &str) -> Result<EndpointGroupRow> {
        store::endpoint_filters::list_groups(&self.db)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| not_found("endpoint group", id))
    }

    pub async fn list_endpoint_groups(
        &self,
        caller: &Caller,
        name: Option<&str>,
    ) -> Result<Vec<EndpointGroupRow>> {
        policy::require_reader(caller, "list_endpoint_groups")?;
        let groups = store::endpoint_filters::list_groups(&self.db).await?;
        Ok(groups
            .into_iter()
            .filter(|g| name.is_none_or(|n| g.name == n))
            .collect())
    }

    pub async fn update_endpoint_group(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<EndpointGroupRow> {
        policy::require_admin(caller, "update_endpoint_group")?;
        let mut group = self.endpoint_group_row(id).await?;
        let mut body = Body::new(body, "endpoint_group")?;
        if let Some(name) = body.string("name")? {
            crate::service::check_name("name", &name, 255)?;
            group.name = name;
        }
        if let Some(description) = body.nullable_string("description")? {
            group.description = description;
        }
        if let Some(filters) = body.take("filters") {
            group.filters = parse_filters(Some(filters))?;
        }
        store::endpoint_filters::update_group(&self.db, &group).await?;
        self.changed();
        Ok(group)
    }

    pub async fn delete_endpoint_group(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_endpoint_group")?;
        self.endpoint_group_row(id).await?;
        store::endpoint_filters::delete_group(&self.db, id).await?;
        self.changed();
        Ok(())
    }

    /// The endpoints an endpoint group selects.
    pub async fn endpoint_group_endpoints(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<EndpointRow>> {
        let group = self.get_endpoint_group(caller, id).await?;
        let endpoints = store::catalog::list_endpoints(&self.db).await?;
        Ok(endpoints
            .into_iter()
            .filter(|e| group_matches(&group, e))
            .collect())
    }

    /// Associate (`add`), check, or remove an endpoint group and a project.
    pub async fn endpoint_group_project(
        &self,
        caller: &Caller,
        group_id: &str,
        project_id: &str,
        action: Association,
    ) -> Result<()> {
        match action {
            Association::Check => {
                policy::require_reader(caller, "check_endpoint_group_in_project")?
            }
            _ => policy::require_admin(caller, "add_endpoint_group_to_project")?,
        }
        self.endpoint_group_row(group_id).await?;
        self.project_row(project_id).await?;
        let exists = store::endpoint_filters::list_group_projects(&self.db)
            .await?
            .iter()
            .any(|(g, p)| g == group_id && p == project_id);
        match action {
            Association::Add => {
                store::endpoint_filters::add_group_project(&self.db, group_id, project_id).await?
            }
            Association::Check if !exists => {
                return Err(Error::not_found(
                    "The endpoint group is not associated with the project.",
                ))
            }
            Association::Check => {}
            Association::Remove => {
                if !store::endpoint_filters::remove_group_project(&self.db, group_id, project_id)
                    .await?
                {
                    return Err(Error::not_found(
                        "The endpoint group is not associated with the project.",
                    ));
                }
            }
        }
        self.changed();
        Ok(())
    }

    /// Associate, check, or remove an endpoint and a project.
    pub async fn endpoint_project(
        &self,
        caller: &Caller,
        endpoint_id: &str,
        project_id: &str,
        action: Association,
    ) -> Result<()> {
        match action {
            Association::Check => policy::require_reader(caller, "check_endpoint_in_project")?,
            _ => policy::require_admin(caller, "add_endpoint_to_project")?,
        }
        self.get_endpoint(caller, endpoint_id).await?;
        self.project_row(project_id).await?;
        let exists = store::endpoint_filters::list_project_endpoints(&self.db)
            .await?
            .iter()
            .any(|(e, p)| e == endpoint_id && p == project_id);
        match action {
            Association::Add => {
                store::endpoint_filters::add_project_endpoint(&self.db, endpoint_id, project_id)
                    .await?
            }
            Association::Check if !exists => {
                return Err(Error::not_found(
                    "The endpoint is not associated with the project.",
                ))
            }
            Association::Check => {}
            Association::Remove => {
                if !store::endpoint_filters::remove_project_endpoint(
                    &self.db,
                    endpoint_id,
                    project_id,
                )
                .await?
                {
                    return Err(Error::not_found(
                        "The endpoint is not associated with the project.",
                    ));
                }
            }
        }
        self.changed();
        Ok(())
    }

    /// `GET /v3/OS-EP-FILTER/projects/{id}/endpoints`.
    pub async fn project_endpoints(
        &self,
        caller: &Caller,
        project_id: &str,
    ) -> Result<Vec<EndpointRow>> {
        policy::require_reader(caller, "list_endpoints_for_project")?;
        self.project_row(project_id).await?;
        let rows = self.catalog_rows().await?;
        let allowed = rows.allowed_endpoints(project_id).unwrap_or_default();
        Ok(rows
            .endpoints
            .iter()
            .filter(|e| allowed.contains(&e.id))
            .cloned()
            .collect())
    }

    /// `GET /v3/OS-EP-FILTER/endpoints/{id}/projects` and `.../endpoint_groups/{id}/projects`.
    pub async fn projects_for_endpoint_filter(
        &self,
        caller: &Caller,
        endpoint_id: Option<&str>,
        group_id: Option<&str>,
    ) -> Result<Vec<store::projects::ProjectRow>> {
        policy::require_reader(caller, "list_projects_for_endpoint")?;
        let ids: Vec<String> = if let Some(endpoint_id) = endpoint_id {
            self.get_endpoint(caller, endpoint_id).await?;
            store::endpoint_filters::list_project_endpoints(&self.db)
                .await?
                .into_iter()
                .filter(|(e, _)| e == endpoint_id)
                .map(|(_, p)| p)
                .collect()
        } else {
            let group_id = group_id.unwrap_or_default();
            self.endpoint_group_row(group_id).await?;
            store::endpoint_filters::list_group_projects(&self.db)
                .await?
                .into_iter()
                .filter(|(g, _)| g == group_id)
                .map(|(_, p)| p)
                .collect()
        };
        let projects = store::projects::list(&self.db, false).await?;
        Ok(projects
            .into_iter()
            .filter(|p| ids.contains(&p.id))
            .collect())
    }
}

/// What to do with an association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Association {
    Add,
    Check,
    Remove,
}
