//! Authentication and tokens: `POST /v3/auth/tokens` (password, token and application credential
//! methods; project, domain, system or no scope), validation (the hot path every API request
//! takes), revocation, and what a token may see (`/v3/auth/projects|domains|system`).
//!
//! Validation never touches the database when the caches are warm: decrypting the Fernet token,
//! a few hash lookups in the revocation index, and a cached scope resolution.

use std::sync::Arc;

use nubo_common::{Caller, Error, Result, Scope};
use serde_json::Value;

use crate::cache::{scope_key, RoleRef, ScopeContext, TokenFacts};
use crate::password;
use crate::policy;
use crate::service::assignments::Target;
use crate::service::{not_found, IdentityService};
use crate::store;
use crate::store::revocations::RevocationRow;
use crate::token::{
    audit_id_text, decode_token, new_audit_id, AuthMethod, TokenPayload, TokenScope,
};

/// A token and what it resolves to.
#[derive(Debug, Clone)]
pub struct ValidatedToken {
    pub id: String,
    pub payload: TokenPayload,
    pub context: Arc<ScopeContext>,
}

impl ValidatedToken {
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.context.user_id.clone(),
            user_name: self.context.user_name.clone(),
            user_domain_id: self.context.user_domain_id.clone(),
            user_domain_name: self.context.user_domain_name.clone(),
            scope: self.context.scope.clone(),
            roles: self.context.roles.iter().map(|r| r.name.clone()).collect(),
            audit_id: self
                .payload
                .audit_ids
                .first()
                .map(audit_id_text)
                .unwrap_or_default(),
            application_credential_id: self.payload.application_credential_id.clone(),
        }
    }

    pub fn project_id(&self) -> Option<&str> {
        match &self.payload.scope {
            TokenScope::Project(id) => Some(id),
            _ => None,
        }
    }
}

const UNAUTHENTICATED: &str = "The request you have made requires authentication.";

fn unauthorized() -> Error {
    Error::unauthorized(UNAUTHENTICATED)
}

/// Who authenticated, and how.
struct Authenticated {
    user_id: String,
    methods: Vec<AuthMethod>,
    /// Audit ids inherited from a parent token (its chain id).
    parent_chain: Option<[u8; 16]>,
    /// A token made from a token keeps its parent's expiry.
    expires_at_us: Option<i64>,
    /// A parent token's scope (used when the request names none).
    parent_scope: Option<TokenScope>,
    application_credential: Option<store::app_creds::AppCredRow>,
}

/// A requested scope, by id or by name.
enum RequestedScope {
    None,
    ExplicitlyUnscoped,
    Project(TokenScope),
    Domain(TokenScope),
    System,
}

impl IdentityService {
    /// `POST /v3/auth/tokens`.
    pub async fn issue_token(&self, body: Value) -> Result<ValidatedToken> {
        let auth = body
            .get("auth")
            .filter(|a| a.is_object())
            .ok_or_else(|| Error::bad_request("Expecting to find auth in request body."))?;
        let identity = auth
            .get("identity")
            .filter(|i| i.is_object())
            .ok_or_else(|| Error::bad_request("Expecting to find identity in auth."))?;
        let methods: Vec<String> = identity
            .get("methods")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .ok_or_else(|| Error::bad_request("Expecting to find methods in identity."))?;
        if methods.is_empty() {
            return Err(Error::bad_request("Expecting to find methods in identity."));
        }
        let requested = self.parse_scope(auth.get("scope")).await?;

        let mut authenticated: Option<Authenticated> = None;
        for method in &methods {
            let params = identity.get(method.as_str()).ok_or_else(|| {
                Error::bad_request(format!("Expecting to find {method} in identity."))
            })?;
            let result = match method.as_str() {
                "password" => self.authenticate_password(params).await?,
                "token" => self.authenticate_token(params).await?,
                "application_credential" => self.authenticate_app_cred(params).await?,
                _ => {
                    return Err(Error::unauthorized(format!(
                        "Attempted to authenticate with an unsupported method: {method}."
                    )))
                }
            };
            authenticated = Some(match authenticated {
                None => result,
                Some(prior) if prior.user_id == result.user_id => Authenticated {
                    methods: [prior.methods, result.methods].concat(),
                    ..prior
                },
                Some(_) => return Err(unauthorized()),
            });
        }
        let authenticated = authenticated.ok_or_else(unauthorized)?;

        let user = store::users::get(&self.db, &authenticated.user_id)
            .await?
            .ok_or_else(unauthorized)?;
        let scope = match (&authenticated.application_credential, requested) {
            (Some(app_cred), RequestedScope::None) => match &app_cred.project_id {
                Some(p) => TokenScope::Project(p.clone()),
                None => TokenScope::System,
            },
            (Some(_), _) => {
                return Err(Error::unauthorized(
                    "Application credentials cannot request a scope.",
                ))
            }
            (None, RequestedScope::ExplicitlyUnscoped) => TokenScope::Unscoped,
            (None, RequestedScope::Project(s) | RequestedScope::Domain(s)) => s,
            (None, RequestedScope::System) => TokenScope::System,
            (None, RequestedScope::None) => match authenticated.parent_scope.clone() {
                Some(parent) => parent,
                None => self.default_scope(&user).await?,
            },
        };

        let now_us = nubo_common::time::now().timestamp_micros();
        let lifetime_us = self.settings.token_expiration.as_micros() as i64;
        // Keystone's expiry has whole seconds.
        let expires_at_us = authenticated
            .expires_at_us
            .unwrap_or_else(|| (now_us + lifetime_us) / 1_000_000 * 1_000_000);
        let mut audit_ids = vec![new_audit_id()];
        audit_ids.extend(authenticated.parent_chain);
        let mut methods = authenticated.methods.clone();
        methods.dedup();
        let payload = TokenPayload {
            user_id: user.id.clone(),
            methods,
            scope,
            issued_at_us: now_us,
            expires_at_us,
            audit_ids,
            application_credential_id: authenticated
                .application_credential
                .as_ref()
                .map(|a| a.id.clone()),
        };
        let context = self.resolve_scope(&payload).await.map_err(|err| {
            if err.status == http::StatusCode::INTERNAL_SERVER_ERROR {
                err
            } else {
                Error::unauthorized(err.message)
            }
        })?;
        let id = self
            .keys
            .encrypt(&payload.encode(), (now_us / 1_000_000) as u64);
        Ok(ValidatedToken {
            id,
            payload,
            context,
        })
    }

    /// Validates a token: signature, expiry (unless `allow_expired` and within the window),
    /// revocation, and that its user and scope still stand. Any failure is a 404 "Could not find
    /// token" (the caller turns it into a 401 for `X-Auth-Token`).
    pub async fn validate_token(&self, token: &str, allow_expired: bool) -> Result<ValidatedToken> {
        let missing = || Error::not_found(format!("Could not find token: {}.", shorten(token)));
        let raw = decode_token(token).ok_or_else(missing)?;
        let plaintext = self.keys.decrypt(&raw).ok_or_else(missing)?;
        let payload = TokenPayload::decode(&plaintext).ok_or_else(missing)?;
        let now_us = nubo_common::time::now().timestamp_micros();
        let window_us = if allow_expired {
            self.settings.allow_expired_window.as_micros() as i64
        } else {
            0
        };
        if now_us >= payload.expires_at_us + window_us {
            return Err(missing());
        }
        let context = self.resolve_scope(&payload).await.map_err(|err| {
            if err.status == http::StatusCode::INTERNAL_SERVER_ERROR {
                err
            } else {
                missing()
            }
        })?;
        let audit_id = payload
            .audit_ids
            .first()
            .map(audit_id_text)
            .unwrap_or_default();
        let audit_chain_id = payload
            .audit_ids
            .last()
            .map(audit_id_text)
            .unwrap_or_default();
        let project_domain = match &context.scope {
            Scope::Project { domain_id, .. } => Some(domain_id.as_str()),
            Scope::Domain { id, .. } => Some(id.as_str()),
            _ => None,
        };
        let facts = TokenFacts {
            user_id: &payload.user_id,
            project_id: match &payload.scope {
                TokenScope::Project(p) => Some(p.as_str()),
                _ => None,
            },
            domain_ids: [Some(context.user_domain_id.as_str()), project_domain],
            audit_id: &audit_id,
            audit_chain_id: &audit_chain_id,
            application_credential_id: payload.application_credential_id.as_deref(),
            issued_at_us: payload.issued_at_us,
        };
        if self.revocations.is_revoked(&facts) {
            return Err(missing());
        }
        Ok(ValidatedToken {
            id: token.to_string(),
            payload,
            context,
        })
    }

    /// Validates the `X-Auth-Token` of a request: any failure is a 401.
    pub async fn authenticate_request(&self, token: &str) -> Result<ValidatedToken> {
        self.validate_token(token, false).await.map_err(|err| {
            if err.status == http::StatusCode::INTERNAL_SERVER_ERROR {
                err
            } else {
                unauthorized()
            }
        })
    }

    /// `GET|HEAD /v3/auth/tokens`: `caller` asks about `subject`.
    pub async fn check_token(
        &self,
        caller: &Caller,
        subject: &str,
        allow_expired: bool,
    ) -> Result<ValidatedToken> {
        let token = self.validate_token(subject, allow_expired).await?;
        policy::require_token_subject(caller, &token.payload.user_id, "validate_token")?;
        Ok(token)
    }

    /// `DELETE /v3/auth/tokens`: revokes `subject` (and nothing else) by its audit id.
    pub async fn revoke_token(&self, caller: &Caller, subject: &str) -> Result<()> {
        let token = self.validate_token(subject, false).await?;
        policy::require_token_subject(caller, &token.payload.user_id, "revoke_token")?;
        let audit_id = token.payload.audit_ids.first().map(audit_id_text);
        self.revoke(RevocationRow {
            audit_id,
            ..Default::default()
        })
        .await
    }

    /// What `payload` resolves to now (cached): user, scope names, effective roles. An error
    /// means the token can no longer be used.
    pub(crate) async fn resolve_scope(&self, payload: &TokenPayload) -> Result<Arc<ScopeContext>> {
        let key = scope_key(
            &payload.user_id,
            &payload.scope,
            payload.application_credential_id.as_deref(),
        );
        if let Some(context) = self.scopes.get(&key) {
            return Ok(context);
        }
        let generation = self.scopes.generation();
        let context = Arc::new(self.resolve_scope_uncached(payload).await?);
        self.scopes.put(key, context.clone(), generation);
        Ok(context)
    }

    async fn resolve_scope_uncached(&self, payload: &TokenPayload) -> Result<ScopeContext> {
        let user = store::users::get(&self.db, &payload.user_id)
            .await?
            .ok_or_else(|| not_found("user", &payload.user_id))?;
        if !user.enabled {
            return Err(Error::unauthorized(format!(
                "The account is disabled for user: {}.",
                user.id
            )));
        }
        let user_domain = self.enabled_domain(&user.domain_id).await?;
        let (scope, target) = match &payload.scope {
            TokenScope::Unscoped => (Scope::Unscoped, None),
            TokenScope::System => (Scope::System, Some(Target::System)),
            TokenScope::Domain(id) => {
                let domain = self.enabled_domain(id).await?;
                (
                    Scope::Domain {
                        id: domain.id.clone(),
                        name: domain.name,
                    },
                    Some(Target::Domain(domain.id)),
                )
            }
            TokenScope::Project(id) => {
                let project = store::projects::get(&self.db, id)
                    .await?
                    .filter(|p| !p.is_domain)
                    .ok_or_else(|| not_found("project", id))?;
                if !project.enabled {
                    return Err(Error::unauthorized(format!("Project {id} is disabled.")));
                }
                let domain_id = project.domain_id.clone().unwrap_or_default();
                let domain = self.enabled_domain(&domain_id).await?;
                (
                    Scope::Project {
                        id: project.id.clone(),
                        name: project.name,
                        domain_id: domain.id,
                        domain_name: domain.name,
                    },
                    Some(Target::Project(project.id)),
                )
            }
        };
        let mut roles: Vec<RoleRef> = match &target {
            Some(target) => self.effective_roles(&user.id, target).await?,
            None => Vec::new(),
        };
        if target.is_some() && roles.is_empty() {
            return Err(Error::unauthorized(format!(
                "User {} has no access to the requested scope.",
                user.id
            )));
        }
        let mut application_credential = None;
        if let Some(app_cred_id) = &payload.application_credential_id {
            let app_cred = store::app_creds::get(&self.db, app_cred_id)
                .await?
                .filter(|a| a.user_id == user.id)
                .ok_or_else(|| not_found("application credential", app_cred_id))?;
            if app_cred
                .expires_at
                .as_deref()
                .and_then(nubo_common::time::parse)
                .is_some_and(|t| t <= nubo_common::time::now())
            {
                return Err(Error::unauthorized(
                    "The application credential has expired.",
                ));
            }
            // Every delegated role must still be held by the user.
            if !app_cred
                .role_ids
                .iter()
                .all(|id| roles.iter().any(|r| &r.id == id))
            {
                return Err(Error::unauthorized(
                    "The application credential's roles are no longer held.",
                ));
            }
            roles.retain(|r| app_cred.role_ids.contains(&r.id));
            application_credential = Some((app_cred.id, app_cred.name, !app_cred.unrestricted));
        }
        Ok(ScopeContext {
            user_id: user.id,
            user_name: user.name,
            user_domain_id: user_domain.id,
            user_domain_name: user_domain.name,
            password_expires_at: user.password_expires_at,
            scope,
            roles,
            application_credential,
        })
    }

    async fn enabled_domain(&self, id: &str) -> Result<store::projects::ProjectRow> {
        let domain = store::projects::get(&self.db, id)
            .await?
            .filter(|d| d.is_domain)
            .ok_or_else(|| not_found("domain", id))?;
        if !domain.enabled {
            return Err(Error::unauthorized(format!("Domain {id} is disabled.")));
        }
        Ok(domain)
    }

    /// With no scope requested, a user with a usable default project gets a token scoped to it.
    async fn default_scope(&self, user: &store::users::UserRow) -> Result<TokenScope> {
        let Some(project_id) = &user.default_project_id else {
            return Ok(TokenScope::Unscoped);
        };
        let usable = match store::projects::get(&self.db, project_id).await? {
            Some(p) if p.enabled && !p.is_domain => !self
                .effective_roles(&user.id, &Target::Project(p.id.clone()))
                .await?
                .is_empty(),
            _ => false,
        };
        Ok(if usable {
            TokenScope::Project(project_id.clone())
        } else {
            TokenScope::Unscoped
        })
    }

    async fn parse_scope(&self, scope: Option<&Value>) -> Result<RequestedScope> {
        let Some(scope) = scope else {
            return Ok(RequestedScope::None);
        };
        if scope.as_str() == Some("unscoped") {
            return Ok(RequestedScope::ExplicitlyUnscoped);
        }
        let scope = scope
            .as_object()
            .ok_or_else(|| Error::bad_request("Invalid input for field 'scope'."))?;
        if let Some(project) = scope.get("project") {
            if let Some(id) = project.get("id").and_then(Value::as_str) {
                return Ok(RequestedScope::Project(TokenScope::Project(id.to_string())));
            }
            let name = project
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad_request("Expecting to find id or name in project."))?;
            let domain_id = self.domain_ref(project.get("domain")).await?;
            let found = store::projects::get_by_name(&self.db, Some(&domain_id), name)
                .await?
                .ok_or_else(|| Error::unauthorized(format!("Could not find project: {name}.")))?;
            return Ok(RequestedScope::Project(TokenScope::Project(found.id)));
        }
        if let Some(domain) = scope.get("domain") {
            let id = self.domain_ref(Some(domain)).await?;
            return Ok(RequestedScope::Domain(TokenScope::Domain(id)));
        }
        if let Some(system) = scope.get("system") {
            if system.get("all").and_then(Value::as_bool) == Some(true) {
                return Ok(RequestedScope::System);
            }
            return Err(Error::bad_request(
                "Invalid input for field 'system': only {\"all\": true} is supported.",
            ));
        }
        if scope.contains_key("OS-TRUST:trust") {
            return Err(Error::not_implemented("Trusts are not supported."));
        }
        Err(Error::bad_request("Invalid input for field 'scope'."))
    }

    /// Resolves `{"id": ...}` or `{"name": ...}` to a domain id (401 when unknown, as Keystone).
    async fn domain_ref(&self, domain: Option<&Value>) -> Result<String> {
        let domain =
            domain.ok_or_else(|| Error::bad_request("Expecting to find domain in project."))?;
        if let Some(id) = domain.get("id").and_then(Value::as_str) {
            return Ok(id.to_string());
        }
        let name = domain
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Expecting to find id or name in domain."))?;
        let found = store::projects::get_by_name(&self.db, None, name)
            .await?
            .ok_or_else(|| Error::unauthorized(format!("Could not find domain: {name}.")))?;
        Ok(found.id)
    }

    /// Finds a user by `{"id"}` or `{"name", "domain"}`.
    async fn find_auth_user(&self, user: &Value) -> Result<Option<store::users::UserRow>> {
        if let Some(id) = user.get("id").and_then(Value::as_str) {
            return store::users::get(&self.db, id).await;
        }
        let name = user
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Expecting to find id or name in user."))?;
        let domain_id = self.domain_ref(user.get("domain")).await?;
        store::users::get_by_name(&self.db, &domain_id, name).await
    }

    async fn authenticate_password(&self, params: &Value) -> Result<Authenticated> {
        let user_ref = params
            .get("user")
            .ok_or_else(|| Error::bad_request("Expecting to find user in password."))?;
        let password = user_ref
            .get("password")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Expecting to find password in user."))?;
        let user = self.find_auth_user(user_ref).await?;
        if let Some(user) = &user {
            self.check_not_locked(user).await?;
        }
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = match &stored {
            Some(hash) => password::verify(password, hash).await,
            None => self.burn_a_verification(password).await,
        };
        if let Some(user) = &user {
            self.after_password_check(user, verified && stored.is_some())
                .await?;
        }
        let user = match user {
            Some(user) if verified && stored.is_some() => user,
            _ => return Err(unauthorized()),
        };
        if !user.enabled {
            return Err(Error::unauthorized(format!(
                "The account is disabled for user: {}.",
                user.id
            )));
        }
        Ok(Authenticated {
            user_id: user.id,
            methods: vec![AuthMethod::Password],
            parent_chain: None,
            expires_at_us: None,
            parent_scope: None,
            application_credential: None,
        })
    }

    async fn authenticate_token(&self, params: &Value) -> Result<Authenticated> {
        let id = params
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Expecting to find id in token."))?;
        // As Keystone: an unknown, expired or revoked token is a 404 "Could not find token".
        let parent = self.validate_token(id, false).await?;
        if parent.payload.application_credential_id.is_some() {
            return Err(Error::forbidden("A token created from an application credential cannot be used to create another token."));
        }
        let mut methods = parent.payload.methods.clone();
        if !methods.contains(&AuthMethod::Token) {
            methods.push(AuthMethod::Token);
        }
        Ok(Authenticated {
            user_id: parent.payload.user_id.clone(),
            methods,
            parent_chain: parent.payload.audit_ids.last().copied(),
            expires_at_us: Some(parent.payload.expires_at_us),
            parent_scope: Some(parent.payload.scope.clone()),
            application_credential: None,
        })
    }

    async fn authenticate_app_cred(&self, params: &Value) -> Result<Authenticated> {
        let secret = params
            .get("secret")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::bad_request("Expecting to find secret in application_credential.")
            })?;
        let app_cred = if let Some(id) = params.get("id").and_then(Value::as_str) {
            store::app_creds::get(&self.db, id).await?
        } else {
            let name = params.get("name").and_then(Value::as_str).ok_or_else(|| {
                Error::bad_request("Expecting to find id or name in application_credential.")
            })?;
            let user_ref = params.get("user").ok_or_else(|| {
                Error::bad_request("Expecting to find user in application_credential.")
            })?;
            match self.find_auth_user(user_ref).await? {
                Some(user) => store::app_creds::get_by_name(&self.db, &user.id, name).await?,
                None => None,
            }
        };
        let verified = match &app_cred {
            Some(a) => password::verify(secret, &a.secret_hash).await,
            None => self.burn_a_verification(secret).await,
        };
        let app_cred = match app_cred {
            Some(a) if verified => a,
            _ => return Err(unauthorized()),
        };
        if app_cred
            .expires_at
            .as_deref()
            .and_then(nubo_common::time::parse)
            .is_some_and(|t| t <= nubo_common::time::now())
        {
            return Err(unauthorized());
        }
        Ok(Authenticated {
            user_id: app_cred.user_id.clone(),
            methods: vec![AuthMethod::ApplicationCredential],
            parent_chain: None,
            expires_at_us: None,
            parent_scope: None,
            application_credential: Some(app_cred),
        })
    }

    /// Verifies `secret` against a hash nobody knows the secret of, so that an unknown user name
    /// costs as much time as a wrong password. Always false.
    async fn burn_a_verification(&self, secret: &str) -> bool {
        let hash = self
            .dummy_hash
            .get_or_try_init(|| async {
                let unknown = audit_id_text(&new_audit_id());
                password::hash(&unknown, self.settings.password_hash_cost).await
            })
            .await;
        if let Ok(hash) = hash {
            let _ = password::verify(secret, hash).await;
        }
        false
    }

    /// `GET /v3/auth/projects`: the enabled projects the caller has a role on.
    pub async fn auth_projects(&self, caller: &Caller) -> Result<Vec<store::projects::ProjectRow>> {
        let ids = self.projects_with_roles(&caller.user_id).await?;
        let mut out = Vec::new();
        for project in store::projects::list(&self.db, false).await? {
            if project.enabled && ids.contains(&project.id) {
                out.push(project);
            }
        }
        Ok(out)
    }

    /// `GET /v3/auth/domains`: the enabled domains the caller has a role on.
    pub async fn auth_domains(&self, caller: &Caller) -> Result<Vec<store::projects::ProjectRow>> {
        let mut out = Vec::new();
        for domain in store::projects::list(&self.db, true).await? {
            if domain.enabled
                && !self
                    .effective_roles(&caller.user_id, &Target::Domain(domain.id.clone()))
                    .await?
                    .is_empty()
            {
                out.push(domain);
            }
        }
        Ok(out)
    }

    /// `GET /v3/auth/system`: whether the caller has a role on the system.
    pub async fn auth_system(&self, caller: &Caller) -> Result<bool> {
        Ok(!self
            .effective_roles(&caller.user_id, &Target::System)
            .await?
            .is_empty())
    }
}

/// The first characters of a token, for messages and logs (never the whole secret).
fn shorten(token: &str) -> String {
    token.chars().take(8).collect::<String>() + "..."
}
