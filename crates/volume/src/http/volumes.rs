//! `/v3/volumes`: create, list (summary and detail), show, update, delete, summary (3.12),
//! metadata (shared with snapshots, in `metadata`), and the `/action` verbs.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::metadata;
use super::{accepted, list_body, status, AppState, JsonBody, ListRequest};
use crate::service::actions::ActionResult;
use crate::service::metadata::MetadataOwner;
use crate::service::query::parse_bool;
use crate::service::views::VolumeShape;
use crate::service::volumes::parse_create;
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list).post(create))
        .route("/volumes/detail", get(list_detail))
        .route("/volumes/summary", get(summary))
        .route("/volumes/{id}", get(show).put(update).delete(delete))
        .route("/volumes/{id}/action", post(action))
        .merge(metadata::routes("volumes", MetadataOwner::Volume))
}

async fn create(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let req = parse_create(&body, &ctx)?;
    let v = s.create_volume(&ctx, req).await?;
    let view = s.volume_view(&ctx, &v, VolumeShape::Plain).await?;
    Ok(status(StatusCode::ACCEPTED, json!({"volume": view})))
}

async fn list_common(
    s: AppState,
    ctx: Ctx,
    list: ListRequest,
    shape: VolumeShape,
) -> Result<Response> {
    let with_count = ctx.mv.at_least(45) && list.params.with_count;
    let (rows, count, more) = s.list_volumes(&ctx, list.params.clone()).await?;
    let mut items = Vec::new();
    for v in &rows {
        items.push(s.volume_view(&ctx, v, shape).await?);
    }
    let last = rows.last().map(|v| v.id.as_str());
    Ok(status(
        StatusCode::OK,
        list_body(
            "volumes",
            items,
            &list,
            last,
            more,
            with_count.then_some(count),
        ),
    ))
}

async fn list(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    list_common(s, ctx, list, VolumeShape::Summary).await
}

async fn list_detail(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    list_common(s, ctx, list, VolumeShape::Detail).await
}

async fn summary(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    if !ctx.mv.at_least(12) {
        // Before 3.12 "summary" is a volume id that does not exist.
        return Err(Error::not_found("Volume summary could not be found."));
    }
    let all = q
        .iter()
        .any(|(k, v)| k == "all_tenants" && parse_bool(v).unwrap_or(true));
    Ok(status(StatusCode::OK, s.volume_summary(&ctx, all).await?))
}

async fn show(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    let v = s.get_volume(&ctx, &id).await?;
    let view = s.volume_view(&ctx, &v, VolumeShape::Detail).await?;
    Ok(status(StatusCode::OK, json!({"volume": view})))
}

async fn update(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let v = s.update_volume(&ctx, &id, &body).await?;
    let view = s.volume_view(&ctx, &v, VolumeShape::Plain).await?;
    Ok(status(StatusCode::OK, json!({"volume": view})))
}

async fn delete(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let flag = |name: &str| -> Result<bool> {
        match q.iter().rev().find(|(k, _)| k == name) {
            None => Ok(false),
            Some((_, v)) => parse_bool(v)
                .ok_or_else(|| Error::bad_request(format!("Invalid value '{v}' for {name}."))),
        }
    };
    let cascade = flag("cascade")?;
    let force = ctx.mv.at_least(23) && flag("force")?;
    s.delete_volume(&ctx, &id, cascade, force).await?;
    Ok(accepted())
}

async fn action(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    Ok(match s.volume_action(&ctx, &id, &body).await? {
        ActionResult::Accepted => accepted(),
        ActionResult::Ok => StatusCode::OK.into_response(),
        ActionResult::Body(v) => {
            let code = if body.get("os-volume_upload_image").is_some() {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            status(code, v)
        }
    })
}
