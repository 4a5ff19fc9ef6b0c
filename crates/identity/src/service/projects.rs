//! Projects and domains (a domain is a project with `is_domain`), their hierarchy and tags.

use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use crate::policy;
use crate::service::{check_name, conflict_or, matches_filters, not_found, Body, IdentityService};
use crate::store;
use crate::store::projects::ProjectRow;
use crate::store::revocations::RevocationRow;

pub const DEFAULT_DOMAIN_ID: &str = "default";
const MAX_TAGS: usize = 80;

/// The domain a new project, user or group lands in when the request names none: the domain of
/// the caller's scope, else the default domain (as Keystone does).
pub(crate) fn default_domain(caller: &Caller) -> String {
    match &caller.scope {
        nubo_common::Scope::Project { domain_id, .. } => domain_id.clone(),
        nubo_common::Scope::Domain { id, .. } => id.clone(),
        _ => DEFAULT_DOMAIN_ID.to_string(),
    }
}
const MAX_DEPTH: usize = 5;

/// Tag filters of `GET /v3/projects`.
#[derive(Debug, Default, Clone)]
pub struct TagFilters {
    pub tags: Vec<String>,
    pub tags_any: Vec<String>,
    pub not_tags: Vec<String>,
    pub not_tags_any: Vec<String>,
}

impl TagFilters {
    fn keep(&self, tags: &[String]) -> bool {
        let has = |t: &String| tags.contains(t);
        (self.tags.is_empty() || self.tags.iter().all(has))
            && (self.tags_any.is_empty() || self.tags_any.iter().any(has))
            && (self.not_tags.is_empty() || !self.not_tags.iter().all(has))
            && (self.not_tags_any.is_empty() || !self.not_tags_any.iter().any(has))
    }
}

fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.chars().count() > 255 || tag.contains('/') || tag.contains(',') {
        return Err(Error::bad_request(format!(
            "Invalid input for field 'tags': '{tag}' must be 1 to 255 characters without '/' or ','."
        )));
    }
    Ok(())
}

fn parse_tags(value: Option<Value>) -> Result<Option<Vec<String>>> {
    let Some(value) = value else { return Ok(None) };
    let tags: Vec<String> = serde_json::from_value(value).map_err(|_| {
        Error::bad_request("Invalid input for field 'tags': must be a list of strings.")
    })?;
    if tags.len() > MAX_TAGS {
        return Err(Error::bad_request(format!(
            "Invalid input for field 'tags': at most {MAX_TAGS} tags."
        )));
    }
    for tag in &tags {
        check_tag(tag)?;
    }
    let mut unique = Vec::new();
    for tag in tags {
        if !unique.contains(&tag) {
            unique.push(tag);
        }
    }
    Ok(Some(unique))
}

fn parse_options(value: Option<Value>) -> Result<serde_json::Map<String, Value>> {
    match value {
        None | Some(Value::Null) => Ok(Default::default()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(Error::bad_request(
            "Invalid input for field 'options': not an object.",
        )),
    }
}

impl IdentityService {
    // ---------------------------------------------------------------- domains

    pub async fn create_domain(&self, caller: &Caller, body: Value) -> Result<ProjectRow> {
        policy::require_admin(caller, "create_domain")?;
        self.insert_domain(body, None).await
    }

    /// Creates a domain from a request body (also used by bootstrap, with a fixed id).
    pub(crate) async fn insert_domain(
        &self,
        body: Value,
        fixed_id: Option<&str>,
    ) -> Result<ProjectRow> {
        let mut body = Body::new(body, "domain")?;
        let name = body.required_name("name", 64)?;
        let explicit_id = body.string("explicit_domain_id")?;
        let domain = ProjectRow {
            id: fixed_id
                .map(str::to_string)
                .or(explicit_id)
                .unwrap_or_else(nubo_common::ids::new_hex_id),
            name: name.clone(),
            domain_id: None,
            parent_id: None,
            description: body.string("description")?.unwrap_or_default(),
            enabled: body.bool("enabled")?.unwrap_or(true),
            is_domain: true,
            tags: parse_tags(body.take("tags"))?.unwrap_or_default(),
            options: parse_options(body.take("options"))?,
            extra: {
                body.take("domain_id");
                body.take("parent_id");
                body.take("is_domain");
                body.into_extra()
            },
        };
        store::projects::insert(&self.db, &domain)
            .await
            .map_err(|e| conflict_or(e, "domain", &name))?;
        self.changed();
        Ok(domain)
    }

    pub async fn get_domain(&self, caller: &Caller, id: &str) -> Result<ProjectRow> {
        let domain = self.domain_row(id).await?;
        let own = caller.domain_id() == Some(id)
            || matches!(&caller.scope, nubo_common::Scope::Project { domain_id, .. } if domain_id == id)
            || caller.user_domain_id == id;
        if !own {
            policy::require_reader(caller, "get_domain")?;
        }
        Ok(domain)
    }

    pub(crate) async fn domain_row(&self, id: &str) -> Result<ProjectRow> {
        store::projects::get(&self.db, id)
            .await?
            .filter(|d| d.is_domain)
            .ok_or_else(|| not_found("domain", id))
    }

    pub async fn list_domains(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<ProjectRow>> {
        policy::require_reader(caller, "list_domains")?;
        let domains = store::projects::list(&self.db, true).await?;
        Ok(domains
            .into_iter()
            .filter(|d| matches_filters(&filterable(d), filters))
            .collect())
    }

    pub async fn update_domain(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<ProjectRow> {
        policy::require_admin(caller, "update_domain")?;
        let mut domain = self.domain_row(id).await?;
        let mut body = Body::new(body, "domain")?;
        if let Some(name) = body.string("name")? {
            check_name("name", &name, 64)?;
            domain.name = name;
        }
        if let Some(description) = body.nullable_string("description")? {
            domain.description = description.unwrap_or_default();
        }
        let was_enabled = domain.enabled;
        if let Some(enabled) = body.bool("enabled")? {
            domain.enabled = enabled;
        }
        if let Some(tags) = parse_tags(body.take("tags"))? {
            domain.tags = tags;
        }
        if let Some(options) = body.take("options") {
            domain.options.extend(parse_options(Some(options))?);
        }
        domain.extra.extend(body.into_extra());
        let name = domain.name.clone();
        store::projects::update(&self.db, &domain)
            .await
            .map_err(|e| conflict_or(e, "domain", &name))?;
        if was_enabled && !domain.enabled {
            self.revoke(RevocationRow {
                domain_id: Some(id.to_string()),
                ..Default::default()
            })
            .await?;
        }
        self.changed();
        Ok(domain)
    }

    /// Deletes a disabled domain and everything in it.
    pub async fn delete_domain(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_domain")?;
        let domain = self.domain_row(id).await?;
        if domain.enabled {
            return Err(Error::forbidden(
                "Cannot delete a domain that is enabled, please disable it first.",
            ));
        }
        store::projects::delete_domain_cascade(&self.db, id).await?;
        self.revoke(RevocationRow {
            domain_id: Some(id.to_string()),
            ..Default::default()
        })
        .await?;
        self.changed();
        Ok(())
    }

    // ---------------------------------------------------------------- projects

    pub async fn create_project(&self, caller: &Caller, body: Value) -> Result<ProjectRow> {
        policy::require_admin(caller, "create_project")?;
        let mut body = Body::new(body, "project")?;
        if body.bool("is_domain")? == Some(true) {
            body.take("domain_id");
            body.take("parent_id");
            return self
                .insert_domain(Value::Object(body.into_extra()), None)
                .await;
        }
        let name = body.required_name("name", 64)?;
        let requested_domain = body.string("domain_id")?;
        let requested_parent = body.string("parent_id")?;
        let (domain_id, parent_id) = match (&requested_parent, &requested_domain) {
            (Some(parent_id), _) => {
                let parent = store::projects::get(&self.db, parent_id)
                    .await?
                    .ok_or_else(|| {
                        Error::not_found(format!("Could not find project: {parent_id}."))
                    })?;
                let parent_domain = if parent.is_domain {
                    parent.id.clone()
                } else {
                    parent.domain_id.clone().unwrap_or_default()
                };
                if let Some(domain_id) = &requested_domain {
                    if *domain_id != parent_domain {
                        return Err(Error::bad_request(
                            "Cannot create project, the parent and the project must be in the same domain.",
                        ));
                    }
                }
                if !parent.is_domain && self.ancestors(&parent.id).await?.len() >= MAX_DEPTH {
                    return Err(Error::forbidden(format!(
                        "Max hierarchy depth reached for {parent_id} branch."
                    )));
                }
                (parent_domain, parent.id)
            }
            (None, Some(domain_id)) => (domain_id.clone(), domain_id.clone()),
            (None, None) => {
                let domain = default_domain(caller);
                (domain.clone(), domain)
            }
        };
        let domain = store::projects::get(&self.db, &domain_id)
            .await?
            .filter(|d| d.is_domain)
            .ok_or_else(|| Error::not_found(format!("Could not find domain: {domain_id}.")))?;
        let project = ProjectRow {
            id: nubo_common::ids::new_hex_id(),
            name: name.clone(),
            domain_id: Some(domain.id),
            parent_id: Some(parent_id),
            description: body.string("description")?.unwrap_or_default(),
            enabled: body.bool("enabled")?.unwrap_or(true),
            is_domain: false,
            tags: parse_tags(body.take("tags"))?.unwrap_or_default(),
            options: parse_options(body.take("options"))?,
            extra: body.into_extra(),
        };
        store::projects::insert(&self.db, &project)
            .await
            .map_err(|e| conflict_or(e, "project", &name))?;
        self.changed();
        Ok(project)
    }

    /// A project by id, readable by admins, system readers, and tokens scoped to it.
    pub async fn get_project(&self, caller: &Caller, id: &str) -> Result<ProjectRow> {
        if caller.project_id() != Some(id) {
            policy::require_reader(caller, "get_project")?;
        }
        self.project_row(id).await
    }

    pub(crate) async fn project_row(&self, id: &str) -> Result<ProjectRow> {
        store::projects::get(&self.db, id)
            .await?
            .ok_or_else(|| not_found("project", id))
    }

    pub async fn list_projects(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
        tags: &TagFilters,
    ) -> Result<Vec<ProjectRow>> {
        policy::require_reader(caller, "list_projects")?;
        let want_domains = filters
            .iter()
            .any(|(k, v)| k == "is_domain" && super::parse_bool(v) == Some(true));
        let rows = store::projects::list(&self.db, want_domains).await?;
        let filters: Vec<(String, String)> = filters
            .iter()
            .filter(|(k, _)| k != "is_domain")
            .cloned()
            .collect();
        Ok(rows
            .into_iter()
            .filter(|p| matches_filters(&filterable(p), &filters) && tags.keep(&p.tags))
            .collect())
    }

    /// `GET /v3/users/{user_id}/projects`.
    pub async fn list_user_projects(
        &self,
        caller: &Caller,
        user_id: &str,
        filters: &[(String, String)],
    ) -> Result<Vec<ProjectRow>> {
        policy::require_reader_or_self(caller, user_id, "list_user_projects")?;
        self.user_row(user_id).await?;
        let ids = self.projects_with_roles(user_id).await?;
        let rows = store::projects::list(&self.db, false).await?;
        Ok(rows
            .into_iter()
            .filter(|p| ids.contains(&p.id) && matches_filters(&filterable(p), filters))
            .collect())
    }

    pub async fn update_project(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<ProjectRow> {
        policy::require_admin(caller, "update_project")?;
        let mut project = self.project_row(id).await?;
        if project.is_domain {
            return self.update_domain(caller, id, body).await;
        }
        let mut body = Body::new(body, "project")?;
        if let Some(domain_id) = body.string("domain_id")? {
            if project.domain_id.as_deref() != Some(domain_id.as_str()) {
                return Err(Error::bad_request("Cannot change Domain ID."));
            }
        }
        if let Some(parent_id) = body.string("parent_id")? {
            if project.parent_id.as_deref() != Some(parent_id.as_str()) {
                return Err(Error::forbidden("Cannot change the parent of a project."));
            }
        }
        if let Some(is_domain) = body.bool("is_domain")? {
            if is_domain != project.is_domain {
                return Err(Error::bad_request("Cannot change is_domain of a project."));
            }
        }
        if let Some(name) = body.string("name")? {
            check_name("name", &name, 64)?;
            project.name = name;
        }
        if let Some(description) = body.nullable_string("description")? {
            project.description = description.unwrap_or_default();
        }
        let was_enabled = project.enabled;
        if let Some(enabled) = body.bool("enabled")? {
            if enabled && !was_enabled {
                if let Some(parent) = &project.parent_id {
                    if let Some(parent) = store::projects::get(&self.db, parent).await? {
                        if !parent.is_domain && !parent.enabled {
                            return Err(Error::forbidden(format!(
                                "Cannot enable project {id} since it has disabled parents."
                            )));
                        }
                    }
                }
            }
            if !enabled
                && was_enabled
                && store::projects::children(&self.db, id)
                    .await?
                    .iter()
                    .any(|c| c.enabled)
            {
                return Err(Error::forbidden(format!(
                    "Cannot disable project {id} since its subtree contains enabled projects."
                )));
            }
            project.enabled = enabled;
        }
        if let Some(tags) = parse_tags(body.take("tags"))? {
            project.tags = tags;
        }
        if let Some(options) = body.take("options") {
            project.options.extend(parse_options(Some(options))?);
        }
        project.extra.extend(body.into_extra());
        let name = project.name.clone();
        store::projects::update(&self.db, &project)
            .await
            .map_err(|e| conflict_or(e, "project", &name))?;
        if was_enabled && !project.enabled {
            self.revoke(RevocationRow {
                project_id: Some(id.to_string()),
                ..Default::default()
            })
            .await?;
        }
        self.changed();
        Ok(project)
    }

    pub async fn delete_project(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_project")?;
        let project = self.project_row(id).await?;
        if project.is_domain {
            return self.delete_domain(caller, id).await;
        }
        if !store::projects::children(&self.db, id).await?.is_empty() {
            return Err(Error::forbidden(format!(
                "Cannot delete the project {id} since it is not a leaf in the hierarchy."
            )));
        }
        store::projects::delete(&self.db, id).await?;
        self.revoke(RevocationRow {
            project_id: Some(id.to_string()),
            ..Default::default()
        })
        .await?;
        self.changed();
        Ok(())
    }

    /// The chain of parents of a project (nearest first, stopping below its domain), for
    /// `parents_as_list` / `parents_as_ids`.
    pub async fn project_parents(&self, id: &str) -> Result<Vec<ProjectRow>> {
        let mut out = Vec::new();
        for ancestor in self.ancestors(id).await? {
            if let Some(p) = store::projects::get(&self.db, &ancestor).await? {
                if p.is_domain {
                    break;
                }
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Every project below `id`, for `subtree_as_list` / `subtree_as_ids`.
    pub async fn project_subtree(&self, id: &str) -> Result<Vec<ProjectRow>> {
        let mut out: Vec<ProjectRow> = Vec::new();
        let mut frontier = vec![id.to_string()];
        while let Some(parent) = frontier.pop() {
            for child in store::projects::children(&self.db, &parent).await? {
                if out.iter().all(|p| p.id != child.id) {
                    frontier.push(child.id.clone());
                    out.push(child);
                }
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- tags

    pub async fn list_project_tags(&self, caller: &Caller, id: &str) -> Result<Vec<String>> {
        Ok(self.get_project(caller, id).await?.tags)
    }

    pub async fn check_project_tag(&self, caller: &Caller, id: &str, tag: &str) -> Result<()> {
        if self
            .get_project(caller, id)
            .await?
            .tags
            .iter()
            .any(|t| t == tag)
        {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "Tag {tag} not found for project {id}."
            )))
        }
    }

    pub async fn add_project_tag(&self, caller: &Caller, id: &str, tag: &str) -> Result<()> {
        policy::require_admin(caller, "create_project_tag")?;
        check_tag(tag)?;
        let mut project = self.project_row(id).await?;
        if !project.tags.iter().any(|t| t == tag) {
            if project.tags.len() >= MAX_TAGS {
                return Err(Error::bad_request(format!(
                    "A project may have at most {MAX_TAGS} tags."
                )));
            }
            project.tags.push(tag.to_string());
            store::projects::update(&self.db, &project).await?;
        }
        Ok(())
    }

    pub async fn replace_project_tags(
        &self,
        caller: &Caller,
        id: &str,
        tags: Value,
    ) -> Result<Vec<String>> {
        policy::require_admin(caller, "update_project_tags")?;
        let tags = parse_tags(Some(tags))?.unwrap_or_default();
        let mut project = self.project_row(id).await?;
        project.tags = tags.clone();
        store::projects::update(&self.db, &project).await?;
        Ok(tags)
    }

    pub async fn delete_project_tag(
        &self,
        caller: &Caller,
        id: &str,
        tag: Option<&str>,
    ) -> Result<()> {
        policy::require_admin(caller, "delete_project_tag")?;
        let mut project = self.project_row(id).await?;
        match tag {
            Some(tag) => {
                if !project.tags.iter().any(|t| t == tag) {
                    return Err(Error::not_found(format!(
                        "Tag {tag} not found for project {id}."
                    )));
                }
                project.tags.retain(|t| t != tag);
            }
            None => project.tags.clear(),
        }
        store::projects::update(&self.db, &project).await?;
        Ok(())
    }
}

/// A project's filterable attributes, as a JSON object.
fn filterable(p: &ProjectRow) -> serde_json::Map<String, Value> {
    let mut map = p.extra.clone();
    map.insert("id".into(), Value::String(p.id.clone()));
    map.insert("name".into(), Value::String(p.name.clone()));
    map.insert("enabled".into(), Value::Bool(p.enabled));
    map.insert("description".into(), Value::String(p.description.clone()));
    map.insert("is_domain".into(), Value::Bool(p.is_domain));
    if let Some(d) = &p.domain_id {
        map.insert("domain_id".into(), Value::String(d.clone()));
    }
    if let Some(parent) = &p.parent_id {
        map.insert("parent_id".into(), Value::String(parent.clone()));
    }
    map
}
