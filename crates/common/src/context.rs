//! Who is calling: the [`Caller`] every authenticated request carries, the [`TokenValidator`]
//! trait through which services turn an `X-Auth-Token` into a caller (Identity implements it), and
//! the middleware that does so for a router.
//!
//! `require_token` validates the token and puts the `Caller` into the request's extensions;
//! handlers take `Caller` as an extractor. Without a valid token the request ends in a 401 before
//! any handler runs.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::error::Error;

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Unscoped,
    Project {
        id: String,
        name: String,
        domain_id: String,
        domain_name: String,
    },
    Domain {
        id: String,
        name: String,
    },
    System,
}

/// The authenticated identity behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub user_name: String,
    pub user_domain_id: String,
    pub user_domain_name: String,
    pub scope: Scope,
    /// Effective role names on the scope, implied roles included.
    pub roles: Vec<String>,
    /// The token's audit id (first of `audit_ids`).
    pub audit_id: String,
    /// Set when the token came from an application credential.
    pub application_credential_id: Option<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// OpenStack's legacy "admin anywhere is cloud admin" rule, which every service's default
    /// policy still honours.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    /// A member may change things in its project; a reader may only look.
    pub fn is_member(&self) -> bool {
        self.has_role("member") || self.is_admin()
    }

    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Project { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn domain_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Domain { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn is_system_scoped(&self) -> bool {
        self.scope == Scope::System
    }

    /// The project a project-scoped API (compute, network ...) acts in, or 401 when the token
    /// carries none.
    pub fn require_project(&self) -> Result<&str, Error> {
        self.project_id().ok_or_else(|| {
            Error::unauthorized("A project-scoped token is required for this service.")
        })
    }
}

/// Turns a token into a caller. Implemented by the Identity service; faked in tests.
#[async_trait::async_trait]
pub trait TokenValidator: Send + Sync + 'static {
    /// Validates `token` (signature, expiry, revocation, the user and scope still enabled) and
    /// returns who it speaks for, or a 401.
    async fn validate(&self, token: &str) -> Result<Caller, Error>;
}

pub type SharedValidator = Arc<dyn TokenValidator>;

/// Middleware: requires a valid `X-Auth-Token`, and hands the [`Caller`] to the handlers.
pub async fn require_token(
    State(validator): State<SharedValidator>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
    else {
        return Error::unauthorized("The request you have made requires authentication.")
            .into_response();
    };
    match validator.validate(token).await {
        Ok(caller) => {
            tracing::Span::current().record("user_id", caller.user_id.as_str());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Error> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Error::unauthorized("The request you have made requires authentication.")
        })
    }
}
