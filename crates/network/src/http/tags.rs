//! `/v2.0/{collection}/{id}/tags[/{tag}]` for every taggable collection.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Result};
use serde_json::Value;

use super::{ctx, no_content, AppState};
use crate::service::tags::TAGGABLE;

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for collection in TAGGABLE {
        let c = *collection;
        router = router
            .route(
                &format!("/v2.0/{c}/{{id}}/tags"),
                get(move |s, caller, path| list(s, caller, path, c))
                    .put(move |s, caller, path, body| replace(s, caller, path, body, c))
                    .delete(move |s, caller, path| clear(s, caller, path, c)),
            )
            .route(
                &format!("/v2.0/{c}/{{id}}/tags/{{tag}}"),
                get(move |s, caller, path| check(s, caller, path, c))
                    .put(move |s, caller, path| add(s, caller, path, c))
                    .delete(move |s, caller, path| remove(s, caller, path, c)),
            );
    }
    router
}

async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    c: &'static str,
) -> Result<Json<Value>> {
    Ok(Json(s.list_tags(&ctx(&caller)?, c, &id).await?))
}

async fn replace(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
    c: &'static str,
) -> Result<Json<Value>> {
    Ok(Json(s.replace_tags(&ctx(&caller)?, c, &id, body).await?))
}

async fn clear(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    c: &'static str,
) -> Result<Response> {
    s.clear_tags(&ctx(&caller)?, c, &id).await?;
    Ok(no_content())
}

async fn check(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
    c: &'static str,
) -> Result<Response> {
    s.check_tag(&ctx(&caller)?, c, &id, &tag).await?;
    Ok(no_content())
}

async fn add(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
    c: &'static str,
) -> Result<Response> {
    s.add_tag(&ctx(&caller)?, c, &id, &tag).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
    c: &'static str,
) -> Result<Response> {
    s.remove_tag(&ctx(&caller)?, c, &id, &tag).await?;
    Ok(no_content())
}
