//! `/v3/groups` and group membership.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, created, filters, member, no_content, AppState, Params};
use crate::types;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/groups", get(list_groups).post(create_group))
        .route(
            "/v3/groups/{id}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route("/v3/groups/{id}/users", get(group_users))
        .route(
            "/v3/groups/{id}/users/{user}",
            get(check_member).put(add_member).delete(remove_member),
        )
}

async fn create_group(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let group = s.create_group(&caller, member(body, "group")?).await?;
    Ok(created(json!({"group": types::group(&base(&s), &group)})))
}

async fn get_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let group = s.get_group(&caller, &id).await?;
    Ok(Json(json!({"group": types::group(&base(&s), &group)})))
}

async fn list_groups(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let groups = s.list_groups(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "groups": groups.iter().map(|g| types::group(&base, g)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "groups"),
    })))
}

async fn update_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let group = s.update_group(&caller, &id, member(body, "group")?).await?;
    Ok(Json(json!({"group": types::group(&base(&s), &group)})))
}

async fn delete_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_group(&caller, &id).await?;
    Ok(no_content())
}

async fn group_users(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let users = s
        .list_group_users(&caller, &id, &filters(&params, &["password_expires_at"]))
        .await?;
    Ok(Json(json!({
        "users": users.iter().map(|u| types::user(&base, u)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("groups/{id}/users")),
    })))
}

async fn check_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.check_user_in_group(&caller, &id, &user).await?;
    Ok(no_content())
}

async fn add_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.add_user_to_group(&caller, &id, &user).await?;
    Ok(no_content())
}

async fn remove_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.remove_user_from_group(&caller, &id, &user).await?;
    Ok(no_content())
}
