//! `/v3/snapshots`: create, list (plain and detail), show, update, delete, metadata (shared with
//! volumes, in `metadata`), and the snapshot actions (reset status, force delete, status updates).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use nubo_common::Result;
use serde_json::{json, Value};

use super::metadata;
use super::{accepted, list_body, status, AppState, JsonBody, ListRequest};
use crate::service::metadata::MetadataOwner;
use crate::service::views::{self, SnapshotShape};
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/snapshots", get(list).post(create))
        .route("/snapshots/detail", get(list_detail))
        .route("/snapshots/{id}", get(show).put(update).delete(delete))
        .route("/snapshots/{id}/action", post(action))
        .merge(metadata::routes("snapshots", MetadataOwner::Snapshot))
}

async fn create(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let snap = s.create_snapshot(&ctx, &body).await?;
    Ok(status(
        StatusCode::ACCEPTED,
        json!({"snapshot": views::snapshot(&ctx, &snap, SnapshotShape::Plain)}),
    ))
}

async fn list_common(
    s: AppState,
    ctx: Ctx,
    list: ListRequest,
    shape: SnapshotShape,
) -> Result<Response> {
    let with_count = ctx.mv.at_least(45) && list.params.with_count;
    let (rows, count, more) = s.list_snapshots(&ctx, list.params.clone()).await?;
    let items = rows
        .iter()
        .map(|r| views::snapshot(&ctx, r, shape))
        .collect();
    let last = rows.last().map(|r| r.id.as_str());
    Ok(status(
        StatusCode::OK,
        list_body(
            "snapshots",
            items,
            &list,
            last,
            more,
            with_count.then_some(count),
        ),
    ))
}

async fn list(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    list_common(s, ctx, list, SnapshotShape::Plain).await
}

async fn list_detail(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    list_common(s, ctx, list, SnapshotShape::Detail).await
}

async fn show(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    let snap = s.get_snapshot(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"snapshot": views::snapshot(&ctx, &snap, SnapshotShape::Detail)}),
    ))
}

async fn update(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let snap = s.update_snapshot(&ctx, &id, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"snapshot": views::snapshot(&ctx, &snap, SnapshotShape::Plain)}),
    ))
}

async fn delete(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(_q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    s.delete_snapshot(&ctx, &id, false).await?;
    Ok(accepted())
}

async fn action(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    s.snapshot_action(&ctx, &id, &body).await?;
    Ok(accepted())
}
