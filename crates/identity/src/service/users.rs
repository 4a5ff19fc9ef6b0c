//! Users: CRUD, passwords (set by an admin, or changed by the user with the old one), and the
//! revocations that disabling, deleting or re-passwording a user implies.

use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use crate::password;
use crate::policy;
use crate::service::projects::default_domain;
use crate::service::{check_name, conflict_or, matches_filters, not_found, Body, IdentityService};
use crate::store;
use crate::store::revocations::RevocationRow;
use crate::store::users::UserRow;

impl IdentityService {
    pub async fn create_user(&self, caller: &Caller, body: Value) -> Result<UserRow> {
        policy::require_admin(caller, "create_user")?;
        let mut body = Body::new(body, "user")?;
        let name = body.required_name("name", 255)?;
        let domain_id = match body.string("domain_id")? {
            Some(id) => id,
            None => default_domain(caller),
        };
        self.domain_row(&domain_id).await?;
        let default_project_id = body.string("default_project_id")?;
        if let Some(project_id) = &default_project_id {
            let project = store::projects::get(&self.db, project_id).await?;
            if project.is_some_and(|p| p.is_domain) {
                return Err(Error::bad_request(
                    "The default project must not be a domain.",
                ));
            }
        }
        let password = body.string("password")?;
        if let Some(password) = &password {
            self.check_password_format(password)?;
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
        let mut user = UserRow {
            id: nubo_common::ids::new_hex_id(),
            name: name.clone(),
            domain_id,
            enabled: body.bool("enabled")?.unwrap_or(true),
            default_project_id,
            password_created_at: None,
            password_hash: None,
            password_expires_at: None,
            options,
            created_at: nubo_common::time::now_rfc3339(),
            extra: body.into_extra(),
        };
        store::users::insert(&self.db, &user)
            .await
            .map_err(|e| conflict_or(e, "user", &name))?;
        if let Some(password) = password {
            // The password history refers to the user: set it once the user exists, and undo
            // the insert if that fails.
            let set = self.set_password(&mut user, &password, false).await;
            let stored = match set {
                Ok(()) => store::users::update(&self.db, &user)
                    .await
                    .map_err(Error::from),
                Err(err) => Err(err),
            };
            if let Err(err) = stored {
                store::users::delete(&self.db, &user.id).await?;
                return Err(err);
            }
        }
        self.changed();
        Ok(user)
    }

    pub async fn get_user(&self, caller: &Caller, id: &str) -> Result<UserRow> {
        policy::require_reader_or_self(caller, id, "get_user")?;
        self.user_row(id).await
    }

    pub(crate) async fn user_row(&self, id: &str) -> Result<UserRow> {
        store::users::get(&self.db, id)
            .await?
            .ok_or_else(|| not_found("user", id))
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<UserRow>> {
        policy::require_reader(caller, "list_users")?;
        let users = store::users::list(&self.db).await?;
        Ok(users
            .into_iter()
            .filter(|u| matches_filters(&filterable(u), filters))
            .collect())
    }

    pub async fn update_user(&self, caller: &Caller, id: &str, body: Value) -> Result<UserRow> {
        policy::require_admin(caller, "update_user")?;
        let mut user = self.user_row(id).await?;
        let mut body = Body::new(body, "user")?;
        if let Some(domain_id) = body.string("domain_id")? {
            if domain_id != user.domain_id {
                return Err(Error::bad_request("Cannot change Domain ID."));
            }
        }
        if let Some(name) = body.string("name")? {
            check_name("name", &name, 255)?;
            user.name = name;
        }
        let was_enabled = user.enabled;
        if let Some(enabled) = body.bool("enabled")? {
            user.enabled = enabled;
        }
        if let Some(default_project_id) = body.nullable_string("default_project_id")? {
            user.default_project_id = default_project_id;
        }
        let mut password_changed = false;
        if let Some(password) = body.nullable_string("password")? {
            match password {
                Some(password) => self.set_password(&mut user, &password, false).await?,
                None => {
                    user.password_hash = None;
                    user.password_expires_at = None;
                }
            }
            password_changed = true;
        }
        if let Some(options) = body.take("options") {
            match options {
                Value::Object(map) => {
                    for (k, v) in map {
                        if v.is_null() {
                            user.options.remove(&k);
                        } else {
                            user.options.insert(k, v);
                        }
                    }
                }
                Value::Null => {}
                _ => {
                    return Err(Error::bad_request(
                        "Invalid input for field 'options': not an object.",
                    ))
                }
            }
        }
        for (k, v) in body.into_extra() {
            user.extra.insert(k, v);
        }
        let name = user.name.clone();
        store::users::update(&self.db, &user)
            .await
            .map_err(|e| conflict_or(e, "user", &name))?;
        if password_changed || (was_enabled && !user.enabled) {
            self.revoke(RevocationRow {
                user_id: Some(id.to_string()),
                ..Default::default()
            })
            .await?;
        }
        self.changed();
        Ok(user)
    }

    /// `POST /v3/users/{id}/password`: whoever knows the original password may set a new one
    /// (Keystone leaves this call unenforced by policy: the original password is the proof).
    pub async fn change_password(&self, id: &str, body: Value) -> Result<()> {
        let mut body = Body::new(body, "user")?;
        let original = body.string("original_password")?.ok_or_else(|| {
            Error::bad_request("Invalid input for field 'original_password': required.")
        })?;
        let new = body
            .string("password")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'password': required."))?;
        self.check_password_format(&new)?;
        let mut user = self.user_row(id).await?;
        self.check_not_locked(&user).await?;
        let matches = match &user.password_hash {
            Some(hash) => password::verify(&original, hash).await,
            None => false,
        };
        if !matches {
            self.after_password_check(&user, false).await?;
            return Err(Error::unauthorized(
                "The request you have made requires authentication.",
            ));
        }
        self.set_password(&mut user, &new, true).await?;
        store::users::update(&self.db, &user).await?;
        self.revoke(RevocationRow {
            user_id: Some(id.to_string()),
            ..Default::default()
        })
        .await?;
        Ok(())
    }

    pub async fn delete_user(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_user")?;
        self.user_row(id).await?;
        store::app_creds::delete_for_user(&self.db, id, None).await?;
        store::users::delete(&self.db, id).await?;
        self.revoke(RevocationRow {
            user_id: Some(id.to_string()),
            ..Default::default()
        })
        .await?;
        self.changed();
        Ok(())
    }

    /// Sets a user's password directly, as an admin reset does (bootstrap and tests).
    pub async fn set_password_unchecked(&self, id: &str, new_password: &str) -> Result<()> {
        let mut user = self.user_row(id).await?;
        self.set_password(&mut user, new_password, false).await?;
        store::users::update(&self.db, &user).await?;
        self.changed();
        Ok(())
    }
}

/// A user's filterable attributes, as a JSON object.
fn filterable(u: &UserRow) -> serde_json::Map<String, Value> {
    let mut map = u.extra.clone();
    map.insert("id".into(), Value::String(u.id.clone()));
    map.insert("name".into(), Value::String(u.name.clone()));
    map.insert("domain_id".into(), Value::String(u.domain_id.clone()));
    map.insert("enabled".into(), Value::Bool(u.enabled));
    if let Some(p) = &u.default_project_id {
        map.insert("default_project_id".into(), Value::String(p.clone()));
    }
    map
}
