//! `/v2.0/ports`.

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
        .route("/v2.0/ports", get(list).post(create))
        .route("/v2.0/ports/{id}", get(show).put(update).delete(delete))
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_ports(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("ports", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one("port", s.get_port(&ctx(&caller)?, &id).await?, &fields))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "port", "ports")?;
    Ok(created(s.create_ports(&ctx(&caller)?, body).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "port")?;
    Ok(Json(
        json!({"port": s.update_port(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_port(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}
