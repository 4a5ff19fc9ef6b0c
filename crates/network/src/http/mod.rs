//! Neutron's HTTP API, mounted at `/network`: version discovery (`/`) is public, everything under
//! `/v2.0` needs an `X-Auth-Token`. Handlers extract, call the service, convert; nothing else.
//! One file per resource. Neutron also answers every URL with a `.json` suffix (Tempest asks for
//! `/quotas/{id}/details.json`), so the suffix is stripped before routing.

mod floatingips;
mod misc;
mod networks;
mod ports;
mod quotas;
mod rbac;
mod routers;
mod security_groups;
mod subnetpools;
mod subnets;
mod tags;

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri, Query, Request};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http::request::Parts;
use http::{StatusCode, Uri};
use nubo_common::context::require_token;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::{Caller, Error, Result, SharedValidator};
use serde_json::Value;
use tower::ServiceExt;

use crate::query::{LinkBase, ListParams, Page};
use crate::service::{Ctx, NetworkService};

pub type AppState = Arc<NetworkService>;

/// The Networking API, to be nested at `/network`.
pub fn router(service: Arc<NetworkService>, validator: SharedValidator) -> Router {
    let authenticated = Router::new()
        .merge(misc::routes())
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(subnetpools::routes())
        .merge(ports::routes())
        .merge(security_groups::routes())
        .merge(routers::routes())
        .merge(floatingips::routes())
        .merge(rbac::routes())
        .merge(quotas::routes())
        .merge(tags::routes())
        .layer(from_fn_with_state(validator, require_token));
    let inner = Router::new()
        .merge(misc::public_routes())
        .merge(authenticated)
        .fallback(not_found)
        .with_state(service)
        .layer(axum::middleware::from_fn(|req, next| {
            render_faults(FaultStyle::Neutron, req, next)
        }));
    let service = tower::service_fn(move |request: Request| {
        let inner = inner.clone();
        async move { inner.oneshot(strip_json_suffix(request)).await }
    });
    Router::new().fallback_service(service)
}

/// `GET /network/` (with the slash, which nesting does not reach): the versions document.
pub fn root_versions(service: Arc<NetworkService>) -> axum::routing::MethodRouter {
    axum::routing::get(misc::versions).with_state(service)
}

/// `/v2.0/networks.json` -> `/v2.0/networks`.
fn strip_json_suffix(mut request: Request) -> Request {
    let path = request.uri().path();
    if let Some(stripped) = path.strip_suffix(".json") {
        let mut text = stripped.to_string();
        if let Some(q) = request.uri().query() {
            text.push('?');
            text.push_str(q);
        }
        if let Ok(uri) = text.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

async fn not_found() -> Error {
    Error::not_found("The resource could not be found.").with_kind("HTTPNotFound")
}

/// The caller as Networking sees it.
pub(crate) fn ctx(caller: &Caller) -> Result<Ctx> {
    Ctx::new(caller)
}

/// A list request: its parameters, and the URL its links lead back to.
pub(crate) struct ListRequest {
    pub params: ListParams,
    pub url: String,
}

impl ListRequest {
    pub fn base(&self) -> LinkBase<'_> {
        LinkBase { url: &self.url }
    }
}

/// The URL the client addressed (scheme and host from the request, path as sent).
fn request_url(parts: &Parts, default_base: &str) -> String {
    let base = nubo_common::http::request_base_url(&parts.headers, default_base);
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map(|o| o.0.path().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    format!("{base}{}", path.strip_suffix(".json").unwrap_or(&path))
}

impl FromRequestParts<AppState> for ListRequest {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ListRequest, Error> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))?;
        Ok(ListRequest {
            params: ListParams::parse(&pairs)?,
            url: request_url(parts, &state.settings().public_url),
        })
    }
}

/// `?fields=` of a show request.
pub(crate) struct Fields(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for Fields {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Fields, Error> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))?;
        Ok(Fields(
            pairs
                .into_iter()
                .filter(|(k, _)| k == "fields")
                .flat_map(|(_, v)| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect(),
        ))
    }
}

/// `{"<key>": item}`, keeping only `fields` when asked.
pub(crate) fn one(key: &str, item: Value, fields: &Fields) -> Json<Value> {
    let mut body = serde_json::Map::new();
    body.insert(key.to_string(), crate::query::project(item, &fields.0));
    Json(Value::Object(body))
}

pub(crate) fn page(collection: &str, page: Page) -> Json<Value> {
    Json(page.into_body(collection))
}

pub(crate) fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
