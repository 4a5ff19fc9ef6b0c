//! `/v3/credentials` and `/v3/policies`.

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
        .route(
            "/v3/credentials",
            get(list_credentials).post(create_credential),
        )
        .route(
            "/v3/credentials/{id}",
            get(get_credential)
                .patch(update_credential)
                .delete(delete_credential),
        )
        .route("/v3/policies", get(list_policies).post(create_policy))
        .route(
            "/v3/policies/{id}",
            get(get_policy).patch(update_policy).delete(delete_policy),
        )
}

async fn create_credential(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let c = s
        .create_credential(&caller, member(body, "credential")?)
        .await?;
    Ok(created(
        json!({"credential": types::credential(&base(&s), &c)}),
    ))
}

async fn get_credential(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let c = s.get_credential(&caller, &id).await?;
    Ok(Json(
        json!({"credential": types::credential(&base(&s), &c)}),
    ))
}

async fn list_credentials(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let rows = s.list_credentials(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "credentials": rows.iter().map(|c| types::credential(&base, c)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "credentials"),
    })))
}

async fn update_credential(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let c = s
        .update_credential(&caller, &id, member(body, "credential")?)
        .await?;
    Ok(Json(
        json!({"credential": types::credential(&base(&s), &c)}),
    ))
}

async fn delete_credential(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_credential(&caller, &id).await?;
    Ok(no_content())
}

async fn create_policy(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let p = s.create_policy(&caller, member(body, "policy")?).await?;
    Ok(created(json!({"policy": types::policy(&base(&s), &p)})))
}

async fn get_policy(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let p = s.get_policy(&caller, &id).await?;
    Ok(Json(json!({"policy": types::policy(&base(&s), &p)})))
}

async fn list_policies(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let rows = s.list_policies(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "policies": rows.iter().map(|p| types::policy(&base, p)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "policies"),
    })))
}

async fn update_policy(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let p = s
        .update_policy(&caller, &id, member(body, "policy")?)
        .await?;
    Ok(Json(json!({"policy": types::policy(&base(&s), &p)})))
}

async fn delete_policy(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_policy(&caller, &id).await?;
    Ok(no_content())
}
