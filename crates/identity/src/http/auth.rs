//! `/v3/auth/*`: issue, validate, check and revoke tokens; the catalog, projects, domains and
//! system a token may use.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, flag, AppState, Params};
use crate::service::auth::ValidatedToken;
use crate::types;

pub fn public_routes() -> Router<AppState> {
    Router::new().route("/v3/auth/tokens", post(issue))
}

pub fn authenticated_routes() -> Router<AppState> {
    Router::new()
        .route("/v3/auth/tokens", get(check).delete(revoke))
        .route("/v3/auth/catalog", get(catalog))
        .route("/v3/auth/projects", get(projects))
        .route("/v3/auth/domains", get(domains))
        .route("/v3/auth/system", get(system))
}

async fn token_response(
    service: &AppState,
    token: &ValidatedToken,
    nocatalog: bool,
    status: StatusCode,
) -> Result<Response, Error> {
    // Keystone puts a catalog in scoped tokens only.
    let unscoped = matches!(token.context.scope, nubo_common::Scope::Unscoped);
    let catalog = if nocatalog || unscoped {
        None
    } else {
        Some(service.catalog(token.project_id()).await?)
    };
    let body = types::token(token, catalog);
    let mut response = (status, Json(body)).into_response();
    let header = HeaderValue::from_str(&token.id).map_err(Error::internal)?;
    response.headers_mut().insert("x-subject-token", header);
    Ok(response)
}

async fn issue(
    State(service): State<AppState>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let token = service.issue_token(body).await?;
    token_response(
        &service,
        &token,
        flag(&params, "nocatalog"),
        StatusCode::CREATED,
    )
    .await
}

fn subject(headers: &HeaderMap) -> Result<&str, Error> {
    headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::bad_request("Expecting to find X-Subject-Token in the request headers.")
        })
}

async fn check(
    State(service): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, Error> {
    let token = service
        .check_token(&caller, subject(&headers)?, flag(&params, "allow_expired"))
        .await?;
    token_response(&service, &token, flag(&params, "nocatalog"), StatusCode::OK).await
}

async fn revoke(
    State(service): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, Error> {
    service.revoke_token(&caller, subject(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn catalog(State(service): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    if matches!(caller.scope, nubo_common::Scope::Unscoped) {
        return Err(Error::forbidden(
            "A scoped token is required to produce a service catalog.",
        ));
    }
    let catalog = service.catalog(caller.project_id()).await?;
    Ok(Json(
        json!({"catalog": catalog, "links": types::collection_links(&base(&service), "auth/catalog")}),
    ))
}

async fn projects(State(service): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    let base = base(&service);
    let projects = service.auth_projects(&caller).await?;
    Ok(Json(json!({
        "projects": projects.iter().map(|p| types::project(&base, p)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "auth/projects"),
    })))
}

async fn domains(State(service): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    let base = base(&service);
    let domains = service.auth_domains(&caller).await?;
    Ok(Json(json!({
        "domains": domains.iter().map(|d| types::domain(&base, d)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "auth/domains"),
    })))
}

async fn system(State(service): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    let system = if service.auth_system(&caller).await? {
        json!([{"all": true}])
    } else {
        json!([])
    };
    Ok(Json(
        json!({"system": system, "links": types::collection_links(&base(&service), "auth/system")}),
    ))
}
