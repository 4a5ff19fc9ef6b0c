//! `/v2.0/networks`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Result};
use serde_json::{json, Value};

use super::{created, ctx, no_content, one, page, AppState, Fields, ListRequest};
use crate::input::{create_body, member};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0/networks", get(list).post(create))
        .route("/v2.0/networks/{id}", get(show).put(update).delete(delete))
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_networks(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("networks", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "network",
        s.get_network(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "network", "networks")?;
    Ok(created(s.create_networks(&ctx(&caller)?, body).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "network")?;
    Ok(Json(
        json!({"network": s.update_network(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_network(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}
