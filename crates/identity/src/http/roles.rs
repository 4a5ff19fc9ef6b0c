//! `/v3/roles`, inference rules (`/v3/roles/{prior}/implies/{implied}`, `/v3/role_inferences`).

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
        .route("/v3/roles", get(list_roles).post(create_role))
        .route(
            "/v3/roles/{id}",
            get(get_role).patch(update_role).delete(delete_role),
        )
        .route("/v3/roles/{id}/implies", get(list_implied))
        .route(
            "/v3/roles/{prior}/implies/{implied}",
            get(get_implied).put(create_implied).delete(delete_implied),
        )
        .route("/v3/role_inferences", get(list_all_implied))
}

async fn create_role(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let role = s.create_role(&caller, member(body, "role")?).await?;
    Ok(created(json!({"role": types::role(&base(&s), &role)})))
}

async fn get_role(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let role = s.get_role(&caller, &id).await?;
    Ok(Json(json!({"role": types::role(&base(&s), &role)})))
}

async fn list_roles(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let roles = s.list_roles(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "roles": roles.iter().map(|r| types::role(&base, r)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "roles"),
    })))
}

async fn update_role(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let role = s.update_role(&caller, &id, member(body, "role")?).await?;
    Ok(Json(json!({"role": types::role(&base(&s), &role)})))
}

async fn delete_role(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_role(&caller, &id).await?;
    Ok(no_content())
}

async fn create_implied(
    State(s): State<AppState>,
    caller: Caller,
    Path((prior, implied)): Path<(String, String)>,
) -> Result<Response, Error> {
    let (prior, implied) = s.create_implied_role(&caller, &prior, &implied).await?;
    Ok(created(types::role_inference(&base(&s), &prior, &implied)))
}

async fn get_implied(
    State(s): State<AppState>,
    caller: Caller,
    method: http::Method,
    Path((prior, implied)): Path<(String, String)>,
) -> Result<Response, Error> {
    let (prior, implied) = s.get_implied_role(&caller, &prior, &implied).await?;
    if method == http::Method::HEAD {
        return Ok(no_content());
    }
    Ok(axum::response::IntoResponse::into_response(Json(
        types::role_inference(&base(&s), &prior, &implied),
    )))
}

async fn delete_implied(
    State(s): State<AppState>,
    caller: Caller,
    Path((prior, implied)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_implied_role(&caller, &prior, &implied).await?;
    Ok(no_content())
}

async fn list_implied(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let rules = s.list_implied_roles(&caller, Some(&id)).await?;
    let (prior, implied) = &rules[0];
    Ok(Json(json!({
        "role_inference": types::role_inference_list(&base, prior, implied),
        "links": {"self": format!("{base}/v3/roles/{id}/implies")},
    })))
}

async fn list_all_implied(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let rules = s.list_implied_roles(&caller, None).await?;
    Ok(Json(json!({
        "role_inferences": rules.iter().map(|(p, i)| types::role_inference_list(&base, p, i)).collect::<Vec<_>>(),
        "links": {"self": format!("{base}/v3/role_inferences")},
    })))
}
