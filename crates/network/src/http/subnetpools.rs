//! `/v2.0/subnetpools` (with `add_prefixes` / `remove_prefixes`).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Result};
use serde_json::{json, Value};

use super::{created, ctx, no_content, one, page, AppState, Fields, ListRequest};
use crate::input::member;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0/subnetpools", get(list).post(create))
        .route(
            "/v2.0/subnetpools/{id}",
            get(show).put(update).delete(delete),
        )
        .route("/v2.0/subnetpools/{id}/add_prefixes", put(add_prefixes))
        .route(
            "/v2.0/subnetpools/{id}/remove_prefixes",
            put(remove_prefixes),
        )
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_subnetpools(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("subnetpools", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "subnetpool",
        s.get_subnetpool(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let map = member(body, "subnetpool")?;
    Ok(created(s.create_subnetpool(&ctx(&caller)?, map).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "subnetpool")?;
    Ok(Json(s.update_subnetpool(&ctx(&caller)?, &id, map).await?))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_subnetpool(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}

async fn add_prefixes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    Ok(Json(
        s.change_pool_prefixes(&ctx(&caller)?, &id, body, true)
            .await?,
    ))
}

async fn remove_prefixes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let _ = json!(null);
    Ok(Json(
        s.change_pool_prefixes(&ctx(&caller)?, &id, body, false)
            .await?,
    ))
}
