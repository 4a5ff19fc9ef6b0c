//! `/v2.1/os-server-groups`.

use axum::extract::{Path, RawQuery};
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use nubo_common::{Caller, Result};
use serde_json::{json, Value};

use super::servers::url_pairs;
use super::{json_status, JsonBody, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/os-server-groups", get(list).post(create))
        .route("/v2.1/os-server-groups/{id}", get(show).delete(delete))
}

async fn list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let pairs = url_pairs(&raw.unwrap_or_default());
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let groups = state
        .list_server_groups(
            &caller,
            mv,
            get("all_projects").is_some(),
            get("limit"),
            get("offset"),
        )
        .await?;
    Ok(json_status(
        StatusCode::OK,
        json!({ "server_groups": groups }),
    ))
}

async fn show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    let g = state.get_server_group(&caller, &id, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "server_group": g })))
}

async fn create(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let g = state.create_server_group(&caller, &body, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "server_group": g })))
}

async fn delete(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<StatusCode> {
    state.delete_server_group(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
