//! `/v2.0/floatingips` and `/v2.0/floatingips/{id}/port_forwardings`.

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
        .route("/v2.0/floatingips", get(list).post(create))
        .route(
            "/v2.0/floatingips/{id}",
            get(show).put(update).delete(delete),
        )
        .route(
            "/v2.0/floatingips/{id}/port_forwardings",
            get(list_forwardings).post(create_forwarding),
        )
        .route(
            "/v2.0/floatingips/{id}/port_forwardings/{pf}",
            get(show_forwarding)
                .put(update_forwarding)
                .delete(delete_forwarding),
        )
}

async fn list(State(s): State<AppState>, caller: Caller, list: ListRequest) -> Result<Json<Value>> {
    let page_ = s
        .list_floatingips(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("floatingips", page_))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "floatingip",
        s.get_floatingip(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "floatingip", "floatingips")?;
    Ok(created(s.create_floatingips(&ctx(&caller)?, body).await?))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "floatingip")?;
    Ok(Json(
        json!({"floatingip": s.update_floatingip(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_floatingip(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}

async fn list_forwardings(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    list: ListRequest,
) -> Result<Json<Value>> {
    let page_ = s
        .list_port_forwardings(&ctx(&caller)?, &id, &list.params, &list.base())
        .await?;
    Ok(page("port_forwardings", page_))
}

async fn show_forwarding(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, pf)): Path<(String, String)>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "port_forwarding",
        s.get_port_forwarding(&ctx(&caller)?, &id, &pf).await?,
        &fields,
    ))
}

async fn create_forwarding(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let map = member(body, "port_forwarding")?;
    Ok(created(
        s.create_port_forwarding(&ctx(&caller)?, &id, map).await?,
    ))
}

async fn update_forwarding(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, pf)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "port_forwarding")?;
    Ok(Json(
        s.update_port_forwarding(&ctx(&caller)?, &id, &pf, map)
            .await?,
    ))
}

async fn delete_forwarding(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, pf)): Path<(String, String)>,
) -> Result<Response> {
    s.delete_port_forwarding(&ctx(&caller)?, &id, &pf).await?;
    Ok(no_content())
}
