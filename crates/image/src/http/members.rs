//! `/v2/images/{id}/members` and `/v2/images/{id}/members/{member}`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{no_content, AppState};
use crate::types::member_view;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/images/{id}/members", get(list).post(create))
        .route(
            "/v2/images/{id}/members/{member}",
            get(show).put(update).delete(delete),
        )
}

async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let members = s.list_members(&caller, &id).await?;
    Ok(Json(json!({
        "members": members.iter().map(member_view).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    })))
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let member_id = match body.get("member") {
        _ if !body.is_object() => {
            return Err(Error::bad_request(
                "Expected a member in the form: {\"member\": \"image_id\"}",
            ))
        }
        None => return Err(Error::bad_request("Member to be added not specified")),
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | Some(Value::Null) => {
            return Err(Error::bad_request("Member can't be empty"))
        }
        Some(other) => other.to_string(),
    };
    let member = s.add_member(&caller, &id, &member_id).await?;
    Ok(Json(member_view(&member)))
}

async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(member_view(
        &s.get_member(&caller, &id, &member).await?,
    )))
}

async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, member)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let status = match body.get("status") {
        _ if !body.is_object() => {
            return Err(Error::bad_request(
                "Expected a status in the form: {\"status\": \"status\"}",
            ))
        }
        None => return Err(Error::bad_request("Status not specified")),
        Some(Value::String(status)) => status.clone(),
        Some(other) => other.to_string(),
    };
    let member = s.update_member(&caller, &id, &member, &status).await?;
    Ok(Json(member_view(&member)))
}

async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, member)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_member(&caller, &id, &member).await?;
    Ok(no_content())
}
