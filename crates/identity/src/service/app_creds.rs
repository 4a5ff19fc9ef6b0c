//! Application credentials (a user delegates some of their roles on one project to a secret an
//! application holds) and the access rules that can restrict them.

use nubo_common::{Caller, Error, Result};
use rand::RngCore;
use serde_json::Value;

use crate::password;
use crate::policy;
use crate::service::{check_name, not_found, Body, IdentityService};
use crate::store;
use crate::store::app_creds::{AccessRuleRow, AppCredRow};
use crate::store::revocations::RevocationRow;

/// A created credential together with its secret, which is shown only once.
pub struct CreatedAppCred {
    pub row: AppCredRow,
    pub secret: String,
}

fn generate_secret() -> String {
    use base64::Engine;
    let mut raw = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl IdentityService {
    pub async fn create_app_cred(
        &self,
        caller: &Caller,
        user_id: &str,
        body: Value,
    ) -> Result<CreatedAppCred> {
        if caller.user_id != user_id {
            return Err(policy::denied("create_application_credential"));
        }
        if caller.application_credential_id.is_some() {
            return Err(Error::forbidden(
                "Using a token created from an application credential to create another one is not allowed.",
            ));
        }
        let project_id = caller
            .project_id()
            .ok_or_else(|| {
                Error::forbidden("An application credential needs a project-scoped token.")
            })?
            .to_string();
        let mut body = Body::new(body, "application_credential")?;
        let name = body.required_name("name", 255)?;
        let secret = match body.string("secret")? {
            Some(secret) if !secret.is_empty() => secret,
            _ => generate_secret(),
        };
        let expires_at = match body.nullable_string("expires_at")?.flatten() {
            Some(text) => {
                let t = nubo_common::time::parse(&text).ok_or_else(|| {
                    Error::bad_request(format!("Invalid input for field 'expires_at': '{text}'."))
                })?;
                if t <= nubo_common::time::now() {
                    return Err(Error::bad_request(
                        "The expiration date must be in the future.",
                    ));
                }
                Some(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            }
            None => None,
        };
        let held = self.resolve_scope_roles(caller).await?;
        let role_ids = match body.take("roles") {
            // No roles named (absent, null or empty): all the roles of the token.
            None | Some(Value::Null) => held.iter().map(|r| r.id.clone()).collect(),
            Some(Value::Array(wanted)) if wanted.is_empty() => {
                held.iter().map(|r| r.id.clone()).collect()
            }
            Some(Value::Array(wanted)) => {
                let mut ids = Vec::new();
                for want in wanted {
                    let found = held.iter().find(|r| {
                        want.get("id").and_then(Value::as_str) == Some(r.id.as_str())
                            || want.get("name").and_then(Value::as_str) == Some(r.name.as_str())
                    });
                    match found {
                        Some(r) if !ids.contains(&r.id) => ids.push(r.id.clone()),
                        Some(_) => {}
                        None => {
                            return Err(Error::forbidden(format!(
                                "The caller does not hold the role {want} on project {project_id}."
                            )))
                        }
                    }
                }
                ids
            }
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field 'roles': must be a list.",
                ))
            }
        };
        let existing_rules = store::app_creds::list_access_rules(&self.db, user_id).await?;
        let mut new_rules = Vec::new();
        let mut access_rule_ids = Vec::new();
        if let Some(rules) = body.take("access_rules") {
            let rules = rules.as_array().ok_or_else(|| {
                Error::bad_request("Invalid input for field 'access_rules': must be a list.")
            })?;
            for rule in rules {
                if let Some(id) = rule.get("id").and_then(Value::as_str) {
                    if !existing_rules.iter().any(|r| r.id == id) {
                        return Err(not_found("access rule", id));
                    }
                    access_rule_ids.push(id.to_string());
                    continue;
                }
                let field = |key: &str| {
                    rule.get(key)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            Error::bad_request(format!(
                                "Invalid input for field 'access_rules': '{key}' is required."
                            ))
                        })
                };
                let (service, path, method) = (field("service")?, field("path")?, field("method")?);
                let same = |r: &AccessRuleRow| {
                    r.service == service && r.path == path && r.method == method
                };
                let id = match existing_rules
                    .iter()
                    .chain(new_rules.iter())
                    .find(|r| same(r))
                {
                    Some(r) => r.id.clone(),
                    None => {
                        let row = AccessRuleRow {
                            id: nubo_common::ids::new_hex_id(),
                            user_id: user_id.to_string(),
                            service,
                            path,
                            method,
                        };
                        let id = row.id.clone();
                        new_rules.push(row);
                        id
                    }
                };
                if !access_rule_ids.contains(&id) {
                    access_rule_ids.push(id);
                }
            }
        }
        let row = AppCredRow {
            id: nubo_common::ids::new_hex_id(),
            name: name.clone(),
            user_id: user_id.to_string(),
            project_id: Some(project_id),
            secret_hash: password::hash(&secret, self.settings.password_hash_cost).await?,
            description: body.string("description")?,
            expires_at,
            unrestricted: body.bool("unrestricted")?.unwrap_or(false),
            system: None,
            role_ids,
            access_rule_ids,
        };
        check_name("name", &name, 255)?;
        store::app_creds::insert(&self.db, &row, &new_rules).await.map_err(|e| {
            if nubo_common::db::is_unique_violation(&e) {
                Error::conflict(format!(
                    "Conflict occurred attempting to store application_credential - Duplicate entry found with name {name}."
                ))
            } else {
                Error::from(e)
            }
        })?;
        Ok(CreatedAppCred { row, secret })
    }

    /// The roles the caller's token carries (what it may delegate).
    async fn resolve_scope_roles(&self, caller: &Caller) -> Result<Vec<crate::cache::RoleRef>> {
        let project_id = caller.project_id().unwrap_or_default();
        self.effective_roles(
            &caller.user_id,
            &crate::service::assignments::Target::Project(project_id.to_string()),
        )
        .await
    }

    pub async fn get_app_cred(
        &self,
        caller: &Caller,
        user_id: &str,
        id: &str,
    ) -> Result<AppCredRow> {
        policy::require_reader_or_self(caller, user_id, "get_application_credential")?;
        store::app_creds::get(&self.db, id)
            .await?
            .filter(|a| a.user_id == user_id)
            .ok_or_else(|| not_found("application credential", id))
    }

    pub async fn list_app_creds(
        &self,
        caller: &Caller,
        user_id: &str,
        name: Option<&str>,
    ) -> Result<Vec<AppCredRow>> {
        policy::require_reader_or_self(caller, user_id, "list_application_credentials")?;
        let rows = store::app_creds::list_for_user(&self.db, user_id).await?;
        Ok(rows
            .into_iter()
            .filter(|a| name.is_none_or(|n| a.name == n))
            .collect())
    }

    pub async fn delete_app_cred(&self, caller: &Caller, user_id: &str, id: &str) -> Result<()> {
        policy::require_admin_or_self(caller, user_id, "delete_application_credential")?;
        if caller.application_credential_id.is_some()
            && caller.application_credential_id.as_deref() != Some(id)
        {
            return Err(Error::forbidden(
                "A restricted application credential cannot delete another one.",
            ));
        }
        store::app_creds::get(&self.db, id)
            .await?
            .filter(|a| a.user_id == user_id)
            .ok_or_else(|| not_found("application credential", id))?;
        store::app_creds::delete(&self.db, id).await?;
        self.revoke(RevocationRow {
            application_credential_id: Some(id.to_string()),
            ..Default::default()
        })
        .await
    }

    /// The roles and the user's access rules an application credential's rendering refers to.
    pub async fn app_cred_lookups(
        &self,
        user_id: &str,
    ) -> Result<(Vec<store::roles::RoleRow>, Vec<AccessRuleRow>)> {
        Ok((
            store::roles::list(&self.db).await?,
            store::app_creds::list_access_rules(&self.db, user_id).await?,
        ))
    }

    pub async fn list_access_rules(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<Vec<AccessRuleRow>> {
        policy::require_reader_or_self(caller, user_id, "list_access_rules")?;
        self.user_row(user_id).await?;
        store::app_creds::list_access_rules(&self.db, user_id).await
    }

    pub async fn get_access_rule(
        &self,
        caller: &Caller,
        user_id: &str,
        id: &str,
    ) -> Result<AccessRuleRow> {
        self.list_access_rules(caller, user_id)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| not_found("access rule", id))
    }

    /// Deletes an access rule no application credential uses any more (403 otherwise).
    pub async fn delete_access_rule(&self, caller: &Caller, user_id: &str, id: &str) -> Result<()> {
        policy::require_admin_or_self(caller, user_id, "delete_access_rule")?;
        self.get_access_rule(caller, user_id, id).await?;
        if store::app_creds::access_rule_in_use(&self.db, id).await? {
            return Err(Error::forbidden(format!(
                "Cannot delete access rule {id}: an application credential still uses it."
            )));
        }
        store::app_creds::delete_access_rule(&self.db, id).await?;
        Ok(())
    }
}
