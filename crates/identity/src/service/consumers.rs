//! OS-OAUTH1 consumers: the registry of OAuth1 clients (create, show, update, delete, list).
//! The OAuth1 delegation flow itself (request and access tokens) is not offered.

use nubo_common::{Caller, Error, Result};
use rand::RngCore;
use serde_json::Value;

use crate::password;
use crate::policy;
use crate::service::{not_found, Body, IdentityService};
use crate::store;
use crate::store::consumers::ConsumerRow;

impl IdentityService {
    /// Creates a consumer; returns it with its secret (shown once).
    pub async fn create_consumer(
        &self,
        caller: &Caller,
        body: Value,
    ) -> Result<(ConsumerRow, String)> {
        policy::require_admin(caller, "create_consumer")?;
        let mut body = Body::new(body, "consumer")?;
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let consumer = ConsumerRow {
            id: nubo_common::ids::new_hex_id(),
            description: body.string("description")?,
            secret_hash: password::hash(&secret, self.settings.password_hash_cost).await?,
            extra: body.into_extra(),
        };
        store::consumers::insert(&self.db, &consumer).await?;
        Ok((consumer, secret))
    }

    pub async fn get_consumer(&self, caller: &Caller, id: &str) -> Result<ConsumerRow> {
        policy::require_reader(caller, "get_consumer")?;
        store::consumers::list(&self.db)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("consumer", id))
    }

    pub async fn list_consumers(&self, caller: &Caller) -> Result<Vec<ConsumerRow>> {
        policy::require_reader(caller, "list_consumers")?;
        store::consumers::list(&self.db).await
    }

    pub async fn update_consumer(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<ConsumerRow> {
        policy::require_admin(caller, "update_consumer")?;
        let mut consumer = self.get_consumer(caller, id).await?;
        let mut body = Body::new(body, "consumer")?;
        if body.string("secret")?.is_some() {
            return Err(Error::bad_request("A consumer's secret cannot be changed."));
        }
        if let Some(description) = body.nullable_string("description")? {
            consumer.description = description;
        }
        consumer.extra.extend(body.into_extra());
        store::consumers::update(&self.db, &consumer).await?;
        Ok(consumer)
    }

    pub async fn delete_consumer(&self, caller: &Caller, id: &str) -> Result<()> {
        policy::require_admin(caller, "delete_consumer")?;
        if !store::consumers::delete(&self.db, id).await? {
            return Err(not_found("consumer", id));
        }
        Ok(())
    }
}
