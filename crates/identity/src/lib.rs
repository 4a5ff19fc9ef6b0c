//! Identity (Keystone v3) for Nubo: authentication with Fernet-format tokens, the assignment
//! model (domains, projects, users, groups, roles, grants), the service catalog, application
//! credentials, and the token validator every other service authenticates requests with.
//!
//! `http` -> `service` -> `store`; `token` and `keys` hold the token format and key repository,
//! `cache` the in-memory structures that keep validation off the database.

pub mod bootstrap;
pub mod cache;
pub mod http;
pub mod keys;
pub mod password;
pub mod policy;
pub mod service;
pub mod store;
pub mod token;
pub mod types;

pub use service::{IdentityService, IdentitySettings};

use nubo_common::{Caller, Error};

#[async_trait::async_trait]
impl nubo_common::TokenValidator for IdentityService {
    async fn validate(&self, token: &str) -> Result<Caller, Error> {
        Ok(self.authenticate_request(token).await?.caller())
    }
}
