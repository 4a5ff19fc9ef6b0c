//! `/v3/attachments` (3.27+): create, list (summary and detail), show, update, complete
//! (3.44), delete.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::{status, AppState, JsonBody, ListRequest};
use crate::service::views;
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/attachments", get(list).post(create))
        .route("/attachments/detail", get(list_detail))
        .route("/attachments/{id}", get(show).put(update).delete(delete))
        .route("/attachments/{id}/action", post(action))
}

fn require_mv27(ctx: &Ctx) -> Result<()> {
    if ctx.mv.at_least(27) {
        Ok(())
    } else {
        Err(Error::not_found("The resource could not be found."))
    }
}

async fn view(
    s: &AppState,
    a: &crate::store::attachments::AttachmentRow,
    detail: bool,
) -> Result<Value> {
    let v = s.load_volume(&a.volume_id).await?;
    Ok(views::attachment(a, v.as_ref(), detail))
}

async fn create(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_mv27(&ctx)?;
    let a = s.create_attachment(&ctx, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"attachment": view(&s, &a, true).await?}),
    ))
}

async fn list_common(s: AppState, ctx: Ctx, list: ListRequest, detail: bool) -> Result<Response> {
    require_mv27(&ctx)?;
    let rows = s.list_attachments(&ctx, list.params.clone()).await?;
    let mut items = Vec::new();
    for a in &rows {
        items.push(view(&s, a, detail).await?);
    }
    Ok(status(StatusCode::OK, json!({"attachments": items})))
}

async fn list(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    list_common(s, ctx, list, false).await
}

async fn list_detail(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    list_common(s, ctx, list, true).await
}

async fn show(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    require_mv27(&ctx)?;
    let a = s.get_attachment(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"attachment": view(&s, &a, true).await?}),
    ))
}

async fn update(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_mv27(&ctx)?;
    let a = s.update_attachment(&ctx, &id, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"attachment": view(&s, &a, true).await?}),
    ))
}

async fn action(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_mv27(&ctx)?;
    if body.get("os-complete").is_some() && ctx.mv.at_least(44) {
        s.complete_attachment(&ctx, &id).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(Error::bad_request("There is no such action."))
}

async fn delete(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    require_mv27(&ctx)?;
    let left = s.delete_attachment(&ctx, &id).await?;
    let mut items = Vec::new();
    for a in &left {
        items.push(view(&s, a, false).await?);
    }
    Ok(status(StatusCode::OK, json!({"attachments": items})))
}
