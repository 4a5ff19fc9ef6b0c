//! `/v2.0/subnets`.

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
        .route("/v2.0/subnets", get(list).post(create))
        .route("/v2.0/subnets/{id}", get(show).put(update).delete(delete))
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_subnets(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("subnets", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "subnet",
        s.get_subnet(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "subnet", "subnets")?;
    Ok(created(s.create_subnets(&ctx(&caller)?, body).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "subnet")?;
    Ok(Json(
        json!({"subnet": s.update_subnet(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_subnet(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}
