//! `/v2.0/security-groups` and `/v2.0/security-group-rules`.

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
        .route("/v2.0/security-groups", get(list_groups).post(create_group))
        .route(
            "/v2.0/security-groups/{id}",
            get(show_group).put(update_group).delete(delete_group),
        )
        .route(
            "/v2.0/security-group-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/v2.0/security-group-rules/{id}",
            get(show_rule).put(update_rule).delete(delete_rule),
        )
}

async fn list_groups(
    State(s): State<AppState>,
    caller: Caller,
    list: ListRequest,
) -> Result<Json<Value>> {
    let page_ = s
        .list_security_groups(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("security_groups", page_))
}

async fn show_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "security_group",
        s.get_security_group(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create_group(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "security_group", "security_groups")?;
    Ok(created(
        s.create_security_groups(&ctx(&caller)?, body).await?,
    ))
}

async fn update_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "security_group")?;
    Ok(Json(
        json!({"security_group": s.update_security_group(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_security_group(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}

async fn list_rules(
    State(s): State<AppState>,
    caller: Caller,
    list: ListRequest,
) -> Result<Json<Value>> {
    let page_ = s
        .list_security_group_rules(&ctx(&caller)?, &list.params, &list.base())
        .await?;
    Ok(page("security_group_rules", page_))
}

async fn show_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Json<Value>> {
    Ok(one(
        "security_group_rule",
        s.get_security_group_rule(&ctx(&caller)?, &id).await?,
        &fields,
    ))
}

async fn create_rule(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let body = create_body(body, "security_group_rule", "security_group_rules")?;
    Ok(created(
        s.create_security_group_rules(&ctx(&caller)?, body).await?,
    ))
}

async fn update_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>> {
    let map = member(body, "security_group_rule")?;
    Ok(Json(
        json!({"security_group_rule": s.update_security_group_rule(&ctx(&caller)?, &id, map).await?}),
    ))
}

async fn delete_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    s.delete_security_group_rule(&ctx(&caller)?, &id).await?;
    Ok(no_content())
}
