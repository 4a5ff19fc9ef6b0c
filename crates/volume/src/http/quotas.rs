//! `/v3/os-quota-sets`, `/v3/os-quota-class-sets` and `/v3/limits`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use nubo_common::Result;
use serde_json::Value;

use super::{status, AppState, JsonBody};
use crate::service::query::parse_bool;
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/os-quota-sets/{project}",
            get(show).put(update).delete(delete),
        )
        .route("/os-quota-sets/{project}/defaults", get(defaults))
        .route(
            "/os-quota-class-sets/{class}",
            get(show_class).put(update_class),
        )
        .route("/limits", get(limits))
}

async fn show(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let usage = q
        .iter()
        .rev()
        .find(|(k, _)| k == "usage")
        .is_some_and(|(_, v)| parse_bool(v).unwrap_or(false));
    Ok(status(
        StatusCode::OK,
        s.quota_set(&ctx, &project, usage).await?,
    ))
}

async fn defaults(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> Result<Response> {
    Ok(status(
        StatusCode::OK,
        s.default_quota_set(&ctx, &project).await?,
    ))
}

async fn update(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    Ok(status(
        StatusCode::OK,
        s.update_quota_set(&ctx, &project, &body).await?,
    ))
}

async fn delete(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> Result<Response> {
    s.delete_quota_set(&ctx, &project).await?;
    Ok(StatusCode::OK.into_response())
}

async fn show_class(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(class): Path<String>,
) -> Result<Response> {
    Ok(status(
        StatusCode::OK,
        s.quota_class_set(&ctx, &class).await?,
    ))
}

async fn update_class(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(class): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    Ok(status(
        StatusCode::OK,
        s.update_quota_class_set(&ctx, &class, &body).await?,
    ))
}

async fn limits(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let project = q
        .iter()
        .rev()
        .find(|(k, _)| k == "project_id")
        .map(|(_, v)| v.as_str());
    Ok(status(StatusCode::OK, s.limits(&ctx, project).await?))
}
