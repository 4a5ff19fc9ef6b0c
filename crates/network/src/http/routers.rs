//! `/v2.0/routers`, with `add_router_interface`, `remove_router_interface`, `add_extraroutes`
//! and `remove_extraroutes`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::{created, ctx, no_content, one, page, AppState, Fields, ListRequest};
use crate::input::{create_body, member};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0/routers", get(list).post(create))
        .route("/v2.0/routers/{id}", get(show).put(update).delete(delete))
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            put(add_interface),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            put(remove_interface),
        )
        .route("/v2.0/routers/{id}/add_extraroutes", put(add_routes))
        .route("/v2.0/routers/{id}/remove_extraroutes", put(remove_routes))
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_routers(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("routers", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "router",
        s.get_router(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "router", "routers")?;
    Ok(created(s.create_routers(&ctx(&caller)?, body).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "router")?;
    Ok(Json(
        json!({"router": s.update_router(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_router(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}

fn object(body: Value) -> Result<serde_json::Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Error::bad_request("Body must be a JSON object").with_kind("HTTPBadRequest")),
    }
}

async fn add_interface(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    Ok(Json(
        s.add_router_interface(&ctx(&caller)?, &id, object(body)?)
            .await?,
    ))
}

async fn remove_interface(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    Ok(Json(
        s.remove_router_interface(&ctx(&caller)?, &id, object(body)?)
            .await?,
    ))
}

async fn add_routes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    Ok(Json(
        s.change_extra_routes(&ctx(&caller)?, &id, body, true)
            .await?,
    ))
}

async fn remove_routes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    Ok(Json(
        s.change_extra_routes(&ctx(&caller)?, &id, body, false)
            .await?,
    ))
}
