//! Keystone's HTTP API, mounted at `/identity`: version discovery and `POST /v3/auth/tokens` are
//! public, everything else needs an `X-Auth-Token`. Handlers extract, call the service, convert;
//! nothing else. One file per resource.

mod assignments;
mod auth;
mod catalog;
mod credentials;
mod extensions;
mod groups;
mod projects;
mod roles;
mod users;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use nubo_common::context::require_token;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::{Error, SharedValidator};
use serde_json::{json, Value};

use crate::service::IdentityService;

pub type AppState = Arc<IdentityService>;

/// The Identity API, to be nested at `/identity`.
pub fn router(service: Arc<IdentityService>) -> Router {
    let validator: SharedValidator = service.clone();
    let authenticated = Router::new()
        .merge(auth::authenticated_routes())
        .merge(projects::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(roles::routes())
        .merge(assignments::routes())
        .merge(catalog::routes())
        .merge(credentials::routes())
        .merge(extensions::routes())
        .layer(from_fn_with_state(validator, require_token));
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .merge(auth::public_routes())
        .merge(users::public_routes())
        .merge(authenticated)
        .fallback(not_found)
        .with_state(service)
        .layer(axum::middleware::from_fn(|req, next| {
            render_faults(FaultStyle::Keystone, req, next)
        }))
}

async fn not_found() -> Error {
    Error::not_found("The resource could not be found.")
}

fn version_document(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

/// `GET /identity`: 300 Multiple Choices, as Keystone answers.
async fn versions(State(service): State<AppState>, headers: HeaderMap) -> Response {
    let base = identity_base(&service, &headers);
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": {"values": [version_document(&base)]}})),
    )
        .into_response()
}

/// `GET /identity/v3`.
async fn version(State(service): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = identity_base(&service, &headers);
    Json(json!({"version": version_document(&base)}))
}

/// The identity root URL as the client addressed it (discovery links must lead back to where the
/// client came from).
fn identity_base(service: &IdentityService, headers: &HeaderMap) -> String {
    let public = &service.settings().public_url;
    format!(
        "{}/identity",
        nubo_common::http::request_base_url(headers, public)
    )
}

/// Base URL for resource links.
pub(crate) fn base(service: &IdentityService) -> String {
    service.identity_url()
}

/// Query parameters, in order.
pub(crate) type Params = Query<Vec<(String, String)>>;

/// The query parameters that are attribute filters (everything but `skip`).
pub(crate) fn filters(params: &[(String, String)], skip: &[&str]) -> Vec<(String, String)> {
    params
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .cloned()
        .collect()
}

pub(crate) fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// True when a flag parameter is present and not false (`?nocatalog`, `?effective=true` ...).
pub(crate) fn flag(params: &[(String, String)], key: &str) -> bool {
    param(params, key).is_some_and(|v| crate::service::parse_bool(v).unwrap_or(true))
}

/// The member `key` of a JSON request body (`{"user": {...}}` -> `{...}`), or a 400.
pub(crate) fn member(mut body: Value, key: &str) -> Result<Value, Error> {
    match body.get_mut(key).map(Value::take) {
        Some(value @ Value::Object(_)) => Ok(value),
        _ => Err(Error::bad_request(format!(
            "Expecting to find {key} in request body."
        ))),
    }
}

pub(crate) fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
