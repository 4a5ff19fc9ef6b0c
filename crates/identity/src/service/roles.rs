//! Roles (global and domain-specific) and role inference rules.

use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use crate::policy;
use crate::service::{check_name, conflict_or, matches_filters, not_found, Body, IdentityService};
use crate::store;
use crate::store::roles::RoleRow;

/// Roles no rule may imply (Keystone's `[assignment] prohibited_implied_role`).
const PROHIBITED_IMPLIED: &[&str] = &["admin"];

fn is_immutable(role: &RoleRow) -> bool {
    role.options.get("immutable").and_then(Value::as_bool) == Some(true)
}

impl IdentityService {
    pub async fn create_role(&self, caller: &Caller, body: Value) -> Result<RoleRow> {
        policy::require_admin(caller, "create_role")?;
        let mut body = Body::new(body, "role")?;
        let name = body.required_name("name", 255)?;
        let domain_id = body.string("domain_id")?;
        if let Some(domain_id) = &domain_id {
            self.domain_row(domain_id).await?;
        }
        let options = match body.take("options") {
            None | Some(Value::Null) => Default::default(),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field 'options': not an object.",
                ))
            }
        };
        let role = RoleRow {
            id: nubo_common::ids::new_hex_id(),
            name: name.clone(),
            domain_id,
            description: body.string("description")?.unwrap_or_default(),
            options,
            extra: body.into_extra(),
        };
        store::roles::insert(&self.db, &role)
            .await
            .map_err(|e| conflict_or(e, "role", &name))?;
        self.changed();
        Ok(role)
    }

    pub async fn get_role(&self, caller: &Caller, id: &str) -> Result<RoleRow> {
        policy::require_reader(caller, "get_role")?;
        self.role_row(id).await
    }

    pub(crate) async fn role_row(&self, id: &str) -> Result<RoleRow> {
        store::roles::get(&self.db, id)
            .await?
            .ok_or_else(|| not_found("role", id))
    }

    /// Global roles, or with a `domain_id` filter that domain's roles.
    pub async fn list_roles(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<RoleRow>> {
        policy::require_reader(caller, "list_roles")?;
        let domain = filters
            .iter()
            .find(|(k, _)| k == "domain_id")
            .map(|(_, v)| v.clone());
        let rest: Vec<(String, String)> = filters
            .iter()
            .filter(|(k, _)| k != "domain_id")
            .cloned()
            .collect();
        let roles = store::roles::list(&self.db).await?;
        Ok(roles
            .into_iter()
            .filter(|r| r.domain_id == domain)
            .filter(|r| {
                let mut map = r.extra.clone();
                map.insert("name".into(), Value::String(r.name.clone()));
                map.insert("id".into(), Value::String(r.id.clone()));
                matches_filters(&map, &rest)
            })
            .collect())
    }

    pub async fn update_role(&self, caller: &Caller, id: &str, body: Value) -> Result<RoleRow> {
        policy::require_admin(caller, "update_role")?;
        let mut role = self.role_row(id).await?;
        let mut body = Body::new(body, "role")?;
        let options = body.take("options");
        if is_immutable(&role) {
            let unlocking = options
                .as_ref()
                .and_then(|o| o.get("immutable"))
                .is_some_and(|v| v.as_bool() == Some(false) || v.is_null());
            if !unlocking {
                return Err(Error::forbidden(format!("Role {id} is immutable.")));
            }
        }
        if let Some(domain_id) = body.nullable_string("domain_id")? {
            if domain_id != role.domain_id {
                return Err(Error::bad_request("Cannot change the domain of a role."));
            }
        }
        if let Some(name) = body.string("name")? {
            check_name("name", &name, 255)?;
            role.name = name;
        }
        if let Some(description) = body.nullable_string("description")? {
            role.description = description.unwrap_or_default();
        }
        if let Some(Value::Object(options)) = options {
            for (k, v) in options {
                if v.is_null() {
                    role.options.remove(&k);
                } else {
                    role.options.insert(k, v);
                }
            }
        }
        role.extra.extend(body.into_extra());
        let name = role.name.clone();
        store::roles::update(&self.db, &role)
            .await
            .map_err(|e| conflict_or(e, "role", &name))?;
        self.changed();
        Ok(role)
    }

    pub async fn delete_role(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_role")?;
        let role = self.role_row(id).await?;
        if is_immutable(&role) {
            return Err(Error::forbidden(format!("Role {id} is immutable.")));
        }
        store::roles::delete(&self.db, id).await?;
        self.changed();
        Ok(())
    }

    // ---------------------------------------------------------------- inference rules

    /// `PUT /v3/roles/{prior}/implies/{implied}`.
    pub async fn create_implied_role(
        &self,
        caller: &Caller,
        prior: &str,
        implied: &str,
    ) -> Result<(RoleRow, RoleRow)> {
        policy::require_admin(caller, "create_implied_role")?;
        let prior_role = self.role_row(prior).await?;
        let implied_role = self.role_row(implied).await?;
        if PROHIBITED_IMPLIED.contains(&implied_role.name.as_str())
            && implied_role.domain_id.is_none()
        {
            return Err(Error::forbidden(format!(
                "{} may not be an implied role.",
                implied_role.name
            )));
        }
        if prior_role.domain_id.is_none() && implied_role.domain_id.is_some() {
            return Err(Error::forbidden(
                "A global role may not imply a domain-specific role.",
            ));
        }
        if prior == implied {
            return Err(Error::forbidden("A role may not imply itself."));
        }
        store::roles::add_implication(&self.db, prior, implied).await?;
        self.changed();
        Ok((prior_role, implied_role))
    }

    /// `GET|HEAD /v3/roles/{prior}/implies/{implied}`.
    pub async fn get_implied_role(
        &self,
        caller: &Caller,
        prior: &str,
        implied: &str,
    ) -> Result<(RoleRow, RoleRow)> {
        policy::require_reader(caller, "get_implied_role")?;
        let prior_role = self.role_row(prior).await?;
        let implied_role = self.role_row(implied).await?;
        let exists = store::roles::list_implications(&self.db)
            .await?
            .iter()
            .any(|(p, i)| p == prior && i == implied);
        if !exists {
            return Err(Error::not_found(format!(
                "{prior} does not imply {implied}."
            )));
        }
        Ok((prior_role, implied_role))
    }

    pub async fn delete_implied_role(
        &self,
        caller: &Caller,
        prior: &str,
        implied: &str,
    ) -> Result<()> {
        policy::require_admin(caller, "delete_implied_role")?;
        self.role_row(prior).await?;
        self.role_row(implied).await?;
        if !store::roles::remove_implication(&self.db, prior, implied).await? {
            return Err(Error::not_found(format!(
                "{prior} does not imply {implied}."
            )));
        }
        self.changed();
        Ok(())
    }

    /// The rules, grouped by prior role: all of them, or only `prior`'s direct ones.
    pub async fn list_implied_roles(
        &self,
        caller: &Caller,
        prior: Option<&str>,
    ) -> Result<Vec<(RoleRow, Vec<RoleRow>)>> {
        policy::require_reader(caller, "list_implied_roles")?;
        if let Some(prior) = prior {
            self.role_row(prior).await?;
        }
        let roles = store::roles::list(&self.db).await?;
        let find = |id: &str| roles.iter().find(|r| r.id == id).cloned();
        let mut grouped: Vec<(RoleRow, Vec<RoleRow>)> = Vec::new();
        for (p, i) in store::roles::list_implications(&self.db).await? {
            if prior.is_some_and(|wanted| wanted != p) {
                continue;
            }
            let (Some(prior_role), Some(implied_role)) = (find(&p), find(&i)) else {
                continue;
            };
            match grouped.iter_mut().find(|(r, _)| r.id == p) {
                Some((_, implied)) => implied.push(implied_role),
                None => grouped.push((prior_role, vec![implied_role])),
            }
        }
        if let Some(prior) = prior {
            if grouped.is_empty() {
                grouped.push((self.role_row(prior).await?, Vec::new()));
            }
        }
        Ok(grouped)
    }
}
