//! Stored credentials (`/v3/credentials`) and legacy policy blobs (`/v3/policies`).
//!
//! A credential belongs to a user; its owner and admins may manage it. Keystone encrypts blobs at
//! rest with its credential keys; Nubo stores them in the database as given (the database file is
//! readable only by the operator) — noted as a known difference.

use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use crate::policy;
use crate::service::{matches_filters, not_found, Body, IdentityService};
use crate::store;
use crate::store::credentials::{CredentialRow, PolicyRow};

impl IdentityService {
    pub async fn create_credential(&self, caller: &Caller, body: Value) -> Result<CredentialRow> {
        let mut body = Body::new(body, "credential")?;
        let user_id = body
            .string("user_id")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'user_id': required."))?;
        policy::require_admin_or_self(caller, &user_id, "create_credential")?;
        let credential_type = body
            .string("type")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'type': required."))?;
        let blob = body
            .string("blob")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'blob': required."))?;
        let project_id = body.string("project_id")?;
        if credential_type == "ec2" && project_id.is_none() {
            return Err(Error::bad_request(
                "Invalid blob in credential: an ec2 credential needs a project_id.",
            ));
        }
        // EC2 credentials are addressed by the hash of their access key, as in Keystone.
        let id = if credential_type == "ec2" {
            let access = serde_json::from_str::<Value>(&blob)
                .ok()
                .and_then(|b| b.get("access").and_then(Value::as_str).map(str::to_string))
                .ok_or_else(|| Error::bad_request("Invalid blob in credential: no access key."))?;
            use sha2::Digest;
            sha2::Sha256::digest(access.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        } else {
            nubo_common::ids::new_hex_id()
        };
        let credential = CredentialRow {
            id,
            user_id,
            project_id,
            credential_type,
            blob,
            extra: body.into_extra(),
        };
        store::credentials::insert(&self.db, &credential)
            .await
            .map_err(|e| {
                if nubo_common::db::is_unique_violation(&e) {
                    Error::conflict(
                        "Conflict occurred attempting to store credential - Duplicate entry.",
                    )
                } else {
                    Error::from(e)
                }
            })?;
        Ok(credential)
    }

    async fn credential_row(
        &self,
        caller: &Caller,
        id: &str,
        action: &str,
    ) -> Result<CredentialRow> {
        let credential = store::credentials::get(&self.db, id)
            .await?
            .ok_or_else(|| not_found("credential", id))?;
        if credential.user_id != caller.user_id {
            policy::require_reader(caller, action).map_err(|_| not_found("credential", id))?;
        }
        Ok(credential)
    }

    pub async fn get_credential(&self, caller: &Caller, id: &str) -> Result<CredentialRow> {
        self.credential_row(caller, id, "get_credential").await
    }

    /// Admins and system readers see every credential; anyone else only their own.
    pub async fn list_credentials(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<CredentialRow>> {
        let everyone = policy::require_reader(caller, "list_credentials").is_ok();
        let rows = store::credentials::list(&self.db).await?;
        Ok(rows
            .into_iter()
            .filter(|c| everyone || c.user_id == caller.user_id)
            .filter(|c| {
                let mut map = serde_json::Map::new();
                map.insert("user_id".into(), Value::String(c.user_id.clone()));
                map.insert("type".into(), Value::String(c.credential_type.clone()));
                matches_filters(&map, filters)
            })
            .collect())
    }

    pub async fn update_credential(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<CredentialRow> {
        let mut credential = self.credential_row(caller, id, "update_credential").await?;
        if credential.user_id != caller.user_id {
            policy::require_admin(caller, "update_credential")?;
        }
        let mut body = Body::new(body, "credential")?;
        if let Some(user_id) = body.string("user_id")? {
            credential.user_id = user_id;
        }
        if let Some(project_id) = body.nullable_string("project_id")? {
            credential.project_id = project_id;
        }
        if let Some(t) = body.string("type")? {
            credential.credential_type = t;
        }
        if let Some(blob) = body.string("blob")? {
            credential.blob = blob;
        }
        credential.extra.extend(body.into_extra());
        store::credentials::update(&self.db, &credential).await?;
        Ok(credential)
    }

    pub async fn delete_credential(&self, caller: &Caller, id: &str) -> Result<()> {
        let credential = self.credential_row(caller, id, "delete_credential").await?;
        if credential.user_id != caller.user_id {
            policy::require_admin(caller, "delete_credential")?;
        }
        store::credentials::delete(&self.db, id).await?;
        Ok(())
    }

    // ---------------------------------------------------------------- policies

    pub async fn create_policy(&self, caller: &Caller, body: Value) -> Result<PolicyRow> {
        policy::require_admin(caller, "create_policy")?;
        let mut body = Body::new(body, "policy")?;
        let policy_type = body
            .string("type")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'type': required."))?;
        let blob = body
            .string("blob")?
            .ok_or_else(|| Error::bad_request("Invalid input for field 'blob': required."))?;
        let row = PolicyRow {
            id: nubo_common::ids::new_hex_id(),
            policy_type,
            blob,
            extra: body.into_extra(),
        };
        store::credentials::insert_policy(&self.db, &row).await?;
        Ok(row)
    }

    async fn policy_row(&self, id: &str) -> Result<PolicyRow> {
        store::credentials::list_policies(&self.db)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| not_found("policy", id))
    }

    pub async fn get_policy(&self, caller: &Caller, id: &str) -> Result<PolicyRow> {
        policy::require_reader(caller, "get_policy")?;
        self.policy_row(id).await
    }

    pub async fn list_policies(
        &self,
        caller: &Caller,
        filters: &[(String, String)],
    ) -> Result<Vec<PolicyRow>> {
        policy::require_reader(caller, "list_policies")?;
        let rows = store::credentials::list_policies(&self.db).await?;
        Ok(rows
            .into_iter()
            .filter(|p| {
                let mut map = p.extra.clone();
                map.insert("type".into(), Value::String(p.policy_type.clone()));
                matches_filters(&map, filters)
            })
            .collect())
    }

    pub async fn update_policy(&self, caller: &Caller, id: &str, body: Value) -> Result<PolicyRow> {
        policy::require_admin(caller, "update_policy")?;
        let mut row = self.policy_row(id).await?;
        let mut body = Body::new(body, "policy")?;
        if let Some(t) = body.string("type")? {
            row.policy_type = t;
        }
        if let Some(blob) = body.string("blob")? {
            row.blob = blob;
        }
        row.extra.extend(body.into_extra());
        store::credentials::update_policy(&self.db, &row).await?;
        Ok(row)
    }

    pub async fn delete_policy(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_policy")?;
        self.policy_row(id).await?;
        store::credentials::delete_policy(&self.db, id).await?;
        Ok(())
    }
}

/// An EC2 credential: an access/secret pair for a user on a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Credential {
    pub user_id: String,
    pub project_id: String,
    pub access: String,
    pub secret: String,
}

fn ec2_from_row(row: &CredentialRow) -> Option<Ec2Credential> {
    let blob: Value = serde_json::from_str(&row.blob).ok()?;
    Some(Ec2Credential {
        user_id: row.user_id.clone(),
        project_id: row.project_id.clone().unwrap_or_default(),
        access: blob.get("access")?.as_str()?.to_string(),
        secret: blob.get("secret")?.as_str()?.to_string(),
    })
}

impl IdentityService {
    /// `POST /v3/users/{id}/credentials/OS-EC2`: a new access/secret pair for `tenant_id`.
    pub async fn create_ec2_credential(
        &self,
        caller: &Caller,
        user_id: &str,
        body: Value,
    ) -> Result<Ec2Credential> {
        policy::require_admin_or_self(caller, user_id, "ec2_create_credential")?;
        self.user_row(user_id).await?;
        let project_id = body
            .get("tenant_id")
            .or_else(|| body.get("project_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Expecting to find tenant_id in request body."))?
            .to_string();
        self.project_row(&project_id).await?;
        let access = nubo_common::ids::new_hex_id();
        let secret = nubo_common::ids::new_hex_id();
        let blob =
            serde_json::json!({"access": access, "secret": secret, "trust_id": null}).to_string();
        let row = self
            .create_credential(
                caller,
                serde_json::json!({"user_id": user_id, "project_id": project_id, "type": "ec2", "blob": blob}),
            )
            .await?;
        ec2_from_row(&row).ok_or_else(|| Error::internal("an ec2 credential without keys"))
    }

    pub async fn list_ec2_credentials(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<Vec<Ec2Credential>> {
        policy::require_reader_or_self(caller, user_id, "ec2_list_credentials")?;
        self.user_row(user_id).await?;
        let rows = store::credentials::list(&self.db).await?;
        Ok(rows
            .iter()
            .filter(|c| c.user_id == user_id && c.credential_type == "ec2")
            .filter_map(ec2_from_row)
            .collect())
    }

    pub async fn get_ec2_credential(
        &self,
        caller: &Caller,
        user_id: &str,
        access: &str,
    ) -> Result<Ec2Credential> {
        self.list_ec2_credentials(caller, user_id)
            .await?
            .into_iter()
            .find(|c| c.access == access)
            .ok_or_else(|| not_found("credential", access))
    }

    pub async fn delete_ec2_credential(
        &self,
        caller: &Caller,
        user_id: &str,
        access: &str,
    ) -> Result<()> {
        policy::require_admin_or_self(caller, user_id, "ec2_delete_credential")?;
        self.get_ec2_credential(caller, user_id, access).await?;
        use sha2::Digest;
        let id: String = sha2::Sha256::digest(access.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        store::credentials::delete(&self.db, &id).await?;
        Ok(())
    }
}
