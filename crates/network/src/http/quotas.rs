//! `/v2.0/quotas`: defaults, per-project limits (admins set them), usage details.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Result};
use serde_json::Value;

use super::{ctx, no_content, AppState};
use crate::input::member;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0/quotas", get(list))
        .route(
            "/v2.0/quotas/{project}",
            get(show).put(update).delete(reset),
        )
        .route("/v2.0/quotas/{project}/default", get(defaults))
        .route("/v2.0/quotas/{project}/details", get(details))
}

async fn list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    Ok(Json(s.list_quotas(&ctx(&caller)?).await?))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(s.show_quota(&ctx(&caller)?, &project).await?))
}

async fn defaults(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(s.default_quota(&ctx(&caller)?, &project).await?))
}

async fn details(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(s.quota_details(&ctx(&caller)?, &project).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "quota")?;
    Ok(Json(s.update_quota(&ctx(&caller)?, &project, map).await?))
}

async fn reset(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Response> {
    s.reset_quota(&ctx(&caller)?, &project).await?;
    Ok(no_content())
}
