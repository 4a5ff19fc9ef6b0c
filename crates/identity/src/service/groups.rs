//! Groups and group membership.

use nubo_common::{Caller, Result};
use serde_json::Value;

use crate::policy;
use crate::service::projects::default_domain;
use crate::service::{check_name, conflict_or, matches_filters, not_found, Body, IdentityService};
use crate::store;
use crate::store::groups::GroupRow;
use crate::store::users::UserRow;

impl IdentityService {
    pub async fn create_group(&self, caller: &Caller, body: Value) -> Result<GroupRow> {
        policy::require_admin(caller, "create_group")?;
        let mut body = Body::new(body, "group")?;
        let name = body.required_name("name", 64)?;
        let domain_id = match body.string("domain_id")? {
            Some(id) => id,
            None => default_domain(caller),
        };
        self.domain_row(&domain_id).await?;
        let group = GroupRow {
            id: nubo_common::ids::new_hex_id(),
            name: name.clone(),
            domain_id,
            description: body.string("description")?.unwrap_or_default(),
            extra: body.into_extra(),
        };
        store::groups::insert(&self.db, &group)
            .await
            .map_err(|e| conflict_or(e, "group", &name))?;
        self.changed();
        Ok(group)
    }

    pub async fn get_group(&self, caller: &Caller, id: &str) -> Result<GroupRow> {
        policy::require_reader(caller, "get_group")?;
        self.group_row(id).await
    }

    async fn group_row(&self, id: &str) -> Result<GroupRow> {
        store::groups::get(&self.db, id)
            .await?
            .ok_or_else(|| not_found("group", id))
    }

    pub async fn list_groups(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<GroupRow>> {
        policy::require_reader(caller, "list_groups")?;
        let groups = store::groups::list(&self.db).await?;
        Ok(groups
            .into_iter()
            .filter(|g| matches_filters(&filterable(g), filters))
            .collect())
    }

    pub async fn update_group(&self, caller: &Caller, id: &str, body: Value) -> Result<GroupRow> {
        policy::require_admin(caller, "update_group")?;
        let mut group = self.group_row(id).await?;
        let mut body = Body::new(body, "group")?;
        if let Some(domain_id) = body.string("domain_id")? {
            if domain_id != group.domain_id {
                return Err(nubo_common::Error::bad_request("Cannot change Domain ID."));
            }
        }
        if let Some(name) = body.string("name")? {
            check_name("name", &name, 64)?;
            group.name = name;
        }
        if let Some(description) = body.nullable_string("description")? {
            group.description = description.unwrap_or_default();
        }
        group.extra.extend(body.into_extra());
        let name = group.name.clone();
        store::groups::update(&self.db, &group)
            .await
            .map_err(|e| conflict_or(e, "group", &name))?;
        self.changed();
        Ok(group)
    }

    pub async fn delete_group(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_group")?;
        self.group_row(id).await?;
        store::groups::delete(&self.db, id).await?;
        self.changed();
        Ok(())
    }

    pub async fn list_group_users(
        &self,
        caller: &Caller,
        id: &str,
        filters: &[(String, String)],
    ) -> Result<Vec<UserRow>> {
        policy::require_reader(caller, "list_users_in_group")?;
        self.group_row(id).await?;
        let users = store::users::list_in_group(&self.db, id).await?;
        Ok(users
            .into_iter()
            .filter(|u| {
                let mut map = u.extra.clone();
                map.insert("name".into(), Value::String(u.name.clone()));
                map.insert("enabled".into(), Value::Bool(u.enabled));
                map.insert("domain_id".into(), Value::String(u.domain_id.clone()));
                matches_filters(&map, filters)
            })
            .collect())
    }

    pub async fn list_user_groups(
        &self,
        caller: &Caller,
        user_id: &str,
        filters: &[(String, String)],
    ) -> Result<Vec<GroupRow>> {
        policy::require_reader_or_self(caller, user_id, "list_groups_for_user")?;
        self.user_row(user_id).await?;
        let groups = store::groups::list_for_user(&self.db, user_id).await?;
        Ok(groups
            .into_iter()
            .filter(|g| matches_filters(&filterable(g), filters))
            .collect())
    }

    pub async fn add_user_to_group(
        &self,
        caller: &Caller,
        group_id: &str,
        user_id: &str,
    ) -> Result<()> {
        policy::require_admin(caller, "add_user_to_group")?;
        self.group_row(group_id).await?;
        self.user_row(user_id).await?;
        store::users::add_to_group(&self.db, user_id, group_id).await?;
        self.changed();
        Ok(())
    }

    pub async fn check_user_in_group(
        &self,
        caller: &Caller,
        group_id: &str,
        user_id: &str,
    ) -> Result<()> {
        policy::require_reader(caller, "check_user_in_group")?;
        self.group_row(group_id).await?;
        self.user_row(user_id).await?;
        if store::users::is_in_group(&self.db, user_id, group_id).await? {
            Ok(())
        } else {
            Err(nubo_common::Error::not_found(format!(
                "User '{user_id}' not found in group '{group_id}'."
            )))
        }
    }

    /// Removes a member. Roles held through the group vanish from the user's tokens at once
    /// (they are resolved at validation), so no token needs revoking.
    pub async fn remove_user_from_group(
        &self,
        caller: &Caller,
        group_id: &str,
        user_id: &str,
    ) -> Result<()> {
        policy::require_admin(caller, "remove_user_from_group")?;
        self.group_row(group_id).await?;
        self.user_row(user_id).await?;
        if !store::users::remove_from_group(&self.db, user_id, group_id).await? {
            return Err(nubo_common::Error::not_found(format!(
                "User '{user_id}' not found in group '{group_id}'."
            )));
        }
        self.changed();
        Ok(())
    }
}

fn filterable(g: &GroupRow) -> serde_json::Map<String, Value> {
    let mut map = g.extra.clone();
    map.insert("id".into(), Value::String(g.id.clone()));
    map.insert("name".into(), Value::String(g.name.clone()));
    map.insert("domain_id".into(), Value::String(g.domain_id.clone()));
    map.insert("description".into(), Value::String(g.description.clone()));
    map
}
