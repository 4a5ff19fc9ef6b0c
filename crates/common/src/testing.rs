//! Test support for service crates: a [`StaticValidator`] that knows a fixed set of tokens, so a
//! service's router can be exercised with `Router::oneshot` and no Identity service, and the
//! [`HANG_LIMIT`] every test's wait ends at. Never used outside tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::context::{Caller, Scope, SharedValidator, TokenValidator};
use crate::error::Error;

/// How long a test waits for something to converge before it calls it hung. Generous on
/// purpose: CI machines are shared and slow, and no test may fail on timing.
pub const HANG_LIMIT: Duration = Duration::from_secs(600);

/// Tokens known in advance, each standing for a caller.
#[derive(Default)]
pub struct StaticValidator {
    tokens: HashMap<String, Caller>,
}

impl StaticValidator {
    pub fn new() -> StaticValidator {
        StaticValidator::default()
    }

    /// Adds `token`, standing for `caller`.
    pub fn with(mut self, token: &str, caller: Caller) -> StaticValidator {
        self.tokens.insert(token.to_string(), caller);
        self
    }

    pub fn shared(self) -> SharedValidator {
        Arc::new(self)
    }
}

#[async_trait::async_trait]
impl TokenValidator for StaticValidator {
    async fn validate(&self, token: &str) -> Result<Caller, Error> {
        self.tokens.get(token).cloned().ok_or_else(|| {
            Error::unauthorized("The request you have made requires authentication.")
        })
    }
}

/// A caller scoped to project `project_id` with `roles` (e.g. `&["member", "reader"]`).
pub fn project_caller(user_id: &str, project_id: &str, roles: &[&str]) -> Caller {
    Caller {
        user_id: user_id.to_string(),
        user_name: user_id.to_string(),
        user_domain_id: "default".into(),
        user_domain_name: "Default".into(),
        scope: Scope::Project {
            id: project_id.to_string(),
            name: project_id.to_string(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
        },
        roles: roles.iter().map(|r| r.to_string()).collect(),
        audit_id: format!("audit-{user_id}"),
        application_credential_id: None,
    }
}
