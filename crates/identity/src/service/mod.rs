//! The Identity service: every Keystone operation as a method on [`IdentityService`], with its
//! authorization (see `policy`), validation and orchestration. One file per resource; `auth`
//! holds token issue and validation, the hot path.
//!
//! Every write goes through [`IdentityService::changed`], which invalidates the cached scope
//! resolutions, and through [`IdentityService::revoke`] when it must end existing tokens
//! (disabling a user or project, removing a role, changing a password).

pub mod app_creds;
pub mod assignments;
pub mod auth;
pub mod catalog;
pub mod compliance;
pub mod consumers;
pub mod credentials;
pub mod domain_configs;
pub mod endpoint_filters;
pub mod groups;
pub mod projects;
pub mod roles;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use nubo_common::config::IdentityConfig;
use nubo_common::{Db, Error, Result};
use serde_json::{Map, Value};

use crate::cache::{RevocationIndex, ScopeCache};
use crate::keys::KeyRing;
use crate::store;
use crate::store::revocations::RevocationRow;

/// The settings Identity runs with.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub token_expiration: Duration,
    pub allow_expired_window: Duration,
    pub password_hash_cost: u32,
    pub cache_ttl: Duration,
    pub max_active_keys: usize,
    /// Base URL of the whole API (`http://host:port`), for links.
    pub public_url: String,
    /// Security compliance rules (all off by default).
    pub password_rules: compliance::PasswordRules,
}

impl IdentitySettings {
    /// Reads the settings; fails on an invalid `password_regex`.
    pub fn from_config(config: &IdentityConfig, public_url: &str) -> Result<IdentitySettings> {
        Ok(IdentitySettings {
            token_expiration: Duration::from_secs(config.token_expiration.max(1)),
            allow_expired_window: Duration::from_secs(config.allow_expired_window),
            password_hash_cost: config.password_hash_cost,
            cache_ttl: Duration::from_secs(config.cache_ttl),
            max_active_keys: config.max_active_keys,
            public_url: public_url.trim_end_matches('/').to_string(),
            password_rules: compliance::PasswordRules::from_config(config)?,
        })
    }

    /// Settings for tests: cheap hashing, short-lived nothing.
    pub fn for_tests() -> IdentitySettings {
        IdentitySettings {
            token_expiration: Duration::from_secs(3600),
            allow_expired_window: Duration::from_secs(172_800),
            password_hash_cost: 4,
            cache_ttl: Duration::from_secs(5),
            max_active_keys: 3,
            public_url: "http://localhost".into(),
            password_rules: compliance::PasswordRules::default(),
        }
    }
}

pub struct IdentityService {
    pub(crate) db: Db,
    pub(crate) settings: IdentitySettings,
    pub(crate) keys: KeyRing,
    pub(crate) revocations: RevocationIndex,
    pub(crate) scopes: ScopeCache,
    /// A hash verified in place of a missing user's (see `auth`).
    pub(crate) dummy_hash: tokio::sync::OnceCell<String>,
    /// Services and endpoints as last read, with the cache generation and when.
    pub(crate) catalog_cache:
        parking_lot::RwLock<Option<(u64, std::time::Instant, Arc<catalog::CatalogRows>)>>,
}

impl IdentityService {
    /// Applies Identity's migrations and loads the revocation events.
    pub async fn new(
        db: Db,
        settings: IdentitySettings,
        keys: KeyRing,
    ) -> Result<Arc<IdentityService>> {
        db.migrate("identity", store::MIGRATIONS).await?;
        let service = Arc::new(IdentityService {
            scopes: ScopeCache::new(settings.cache_ttl),
            db,
            settings,
            keys,
            revocations: RevocationIndex::default(),
            dummy_hash: tokio::sync::OnceCell::new(),
            catalog_cache: parking_lot::RwLock::new(None),
        });
        service.refresh_revocations().await?;
        Ok(service)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    /// The URL of the identity API root: `<public>/identity`.
    pub fn identity_url(&self) -> String {
        format!("{}/identity", self.settings.public_url)
    }

    /// Called after every write: cached scope resolutions are stale.
    pub(crate) fn changed(&self) {
        self.scopes.invalidate();
    }

    /// Records a revocation event (stamped now) and applies it at once on this node.
    pub(crate) async fn revoke(&self, mut event: RevocationRow) -> Result<()> {
        let now = nubo_common::time::now().timestamp_micros();
        event.issued_before_us = now;
        event.revoked_at_us = now;
        event.id = store::revocations::insert(&self.db, &event).await?;
        self.revocations.add(&[event]);
        self.changed();
        Ok(())
    }

    /// Pulls revocation events written by other API nodes.
    pub async fn refresh_revocations(&self) -> Result<()> {
        let events = store::revocations::list_after(&self.db, self.revocations.last_id()).await?;
        if !events.is_empty() {
            self.revocations.add(&events);
        }
        Ok(())
    }

    /// Drops events that can no longer match a token still valid (even with `allow_expired`).
    pub async fn prune_revocations(&self) -> Result<()> {
        let horizon = self.settings.token_expiration + self.settings.allow_expired_window;
        let cutoff = nubo_common::time::now().timestamp_micros() - horizon.as_micros() as i64;
        if store::revocations::prune(&self.db, cutoff).await? > 0 {
            let events = store::revocations::list_after(&self.db, 0).await?;
            self.revocations.reset(&events);
        }
        Ok(())
    }

    /// Records `count` revocation events for tokens that do not exist (random audit ids, users
    /// and projects), as a benchmark's background load.
    pub async fn load_random_revocations(&self, count: usize) -> Result<()> {
        for i in 0..count {
            let random = nubo_common::ids::new_hex_id();
            let event = match i % 3 {
                0 => RevocationRow {
                    audit_id: Some(crate::token::audit_id_text(&crate::token::new_audit_id())),
                    ..Default::default()
                },
                1 => RevocationRow {
                    user_id: Some(random),
                    ..Default::default()
                },
                _ => RevocationRow {
                    project_id: Some(random),
                    ..Default::default()
                },
            };
            self.revoke(event).await?;
        }
        Ok(())
    }

    /// Keeps revocations in step with other nodes (every second) and pruned (every hour), for as
    /// long as the service lives.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                if let Err(err) = service.refresh_revocations().await {
                    tracing::warn!(error = %err, "cannot refresh revocation events");
                }
                if ticks.is_multiple_of(3600) {
                    if let Err(err) = service.prune_revocations().await {
                        tracing::warn!(error = %err, "cannot prune revocation events");
                    }
                }
                ticks += 1;
            }
        })
    }
}

/// Fields common to every create/update body, pulled out of a JSON object: the known ones by
/// name, everything else kept as Keystone's free-form `extra`.
pub(crate) struct Body {
    map: Map<String, Value>,
}

impl Body {
    pub fn new(value: Value, what: &str) -> Result<Body> {
        match value {
            Value::Object(map) => Ok(Body { map }),
            _ => Err(Error::bad_request(format!(
                "Invalid input for field '{what}': not an object."
            ))),
        }
    }

    /// A string field; `null` counts as absent.
    pub fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Error::bad_request(format!(
                "Invalid input for field '{key}': {other} is not of type 'string'."
            ))),
        }
    }

    /// A required, non-empty string of at most `max` characters.
    pub fn required_name(&mut self, key: &str, max: usize) -> Result<String> {
        let value = self.string(key)?.ok_or_else(|| {
            Error::bad_request(format!(
                "Invalid input for field '{key}': '{key}' is a required property."
            ))
        })?;
        check_name(key, &value, max)?;
        Ok(value)
    }

    /// A string that may also be explicitly `null` (`Some(None)`).
    pub fn nullable_string(&mut self, key: &str) -> Result<Option<Option<String>>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s))),
            Some(other) => Err(Error::bad_request(format!(
                "Invalid input for field '{key}': {other} is not of type 'string', 'null'."
            ))),
        }
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(Error::bad_request(format!(
                "Invalid input for field '{key}': {other} is not of type 'boolean'."
            ))),
        }
    }

    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// What is left: Keystone's free-form extra attributes. `id` and `links` are never stored.
    pub fn into_extra(mut self) -> Map<String, Value> {
        self.map.remove("id");
        self.map.remove("links");
        self.map
    }
}

/// Keystone's name rule: 1..=max characters, not only whitespace.
pub(crate) fn check_name(key: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::bad_request(format!(
            "Invalid input for field '{key}': '{value}' is too short."
        )));
    }
    if value.chars().count() > max {
        return Err(Error::bad_request(format!(
            "Invalid input for field '{key}': '{value}' is too long."
        )));
    }
    Ok(())
}

/// Maps a UNIQUE violation to Keystone's 409 "Conflict occurred attempting to store ...".
pub(crate) fn conflict_or(err: sqlx::Error, what: &str, name: &str) -> Error {
    if nubo_common::db::is_unique_violation(&err) {
        Error::conflict(format!("Conflict occurred attempting to store {what} - Duplicate entry found with name {name}."))
    } else {
        Error::from(err)
    }
}

pub(crate) fn not_found(what: &str, id: &str) -> Error {
    Error::not_found(format!("Could not find {what}: {id}."))
}

/// Applies Keystone's list filters: exact `key=value` on top-level string/bool fields, and the
/// inexact `key__contains`, `__icontains`, `__startswith`, `__istartswith`, `__endswith`,
/// `__iendswith` variants.
pub(crate) fn matches_filters(resource: &Map<String, Value>, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(key, wanted)| {
        let (field, op) = match key.split_once("__") {
            Some((field, op)) => (field, op),
            None => (key.as_str(), "eq"),
        };
        let actual = match resource.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Null) | None => return wanted.is_empty() && op == "eq",
            Some(other) => other.to_string(),
        };
        match op {
            "eq" => {
                if let Some(Value::Bool(b)) = resource.get(field) {
                    parse_bool(wanted) == Some(*b)
                } else {
                    actual == *wanted
                }
            }
            "contains" => actual.contains(wanted.as_str()),
            "icontains" => actual.to_lowercase().contains(&wanted.to_lowercase()),
            "startswith" => actual.starts_with(wanted.as_str()),
            "istartswith" => actual.to_lowercase().starts_with(&wanted.to_lowercase()),
            "endswith" => actual.ends_with(wanted.as_str()),
            "iendswith" => actual.to_lowercase().ends_with(&wanted.to_lowercase()),
            _ => true,
        }
    })
}

/// Keystone's boolean query values: `true/false`, `1/0`, `yes/no`, `on/off`; a bare `?enabled` is true.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_exact_and_inexact() {
        let resource = json!({"name": "Alpha", "enabled": true, "domain_id": "default"});
        let resource = resource.as_object().unwrap();
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(matches_filters(resource, &f(&[("name", "Alpha")])));
        assert!(!matches_filters(resource, &f(&[("name", "alpha")])));
        assert!(matches_filters(resource, &f(&[("name__icontains", "LPH")])));
        assert!(matches_filters(
            resource,
            &f(&[("name__startswith", "Al"), ("enabled", "True")])
        ));
        assert!(!matches_filters(resource, &f(&[("enabled", "false")])));
        assert!(!matches_filters(resource, &f(&[("name__endswith", "x")])));
    }
}
