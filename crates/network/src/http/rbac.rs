//! `/v2.0/rbac-policies`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Result};
use serde_json::Value;

use super::{created, ctx, no_content, one, page, AppState, Fields, ListRequest};
use crate::input::member;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0/rbac-policies", get(list).post(create))
        .route(
            "/v2.0/rbac-policies/{id}",
            get(show).put(update).delete(delete),
        )
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_rbac_policies(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("rbac_policies", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "rbac_policy",
        s.get_rbac_policy(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let map = member(body, "rbac_policy")?;
    Ok(created(s.create_rbac_policy(&ctx(&caller)?, map).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "rbac_policy")?;
    Ok(Json(s.update_rbac_policy(&ctx(&caller)?, &id, map).await?))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_rbac_policy(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}
