//! `/v3/os-volume-transfer` and (3.55+) `/v3/volume-transfers`: create, list, show, delete,
//! accept.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::{accepted, status, AppState, JsonBody};
use crate::service::query::parse_bool;
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/os-volume-transfer", get(list_legacy).post(create_legacy))
        .route("/os-volume-transfer/detail", get(list_detail_legacy))
        .route("/os-volume-transfer/{id}", get(show_legacy).delete(delete))
        .route("/os-volume-transfer/{id}/accept", post(accept_legacy))
        .route("/volume-transfers", get(list).post(create))
        .route("/volume-transfers/detail", get(list_detail))
        .route("/volume-transfers/{id}", get(show).delete(delete_new))
        .route("/volume-transfers/{id}/accept", post(accept))
}

const LEGACY: &str = "os-volume-transfer";
const NEW: &str = "volume-transfers";

fn since55(ctx: &Ctx) -> Result<()> {
    if ctx.mv.at_least(55) {
        Ok(())
    } else {
        Err(Error::not_found("The resource could not be found."))
    }
}

fn all(q: &[(String, String)]) -> bool {
    q.iter()
        .any(|(k, v)| k == "all_tenants" && parse_bool(v).unwrap_or(true))
}

async fn do_create(s: AppState, ctx: Ctx, body: Value, coll: &str) -> Result<Response> {
    let (t, key) = s.create_transfer(&ctx, &body).await?;
    let mut v = s.transfer_view(&ctx, &t, true, coll);
    v["auth_key"] = json!(key);
    Ok(status(StatusCode::ACCEPTED, json!({"transfer": v})))
}

async fn do_list(
    s: AppState,
    ctx: Ctx,
    q: Vec<(String, String)>,
    detail: bool,
    coll: &str,
) -> Result<Response> {
    let rows = s.list_transfers(&ctx, all(&q)).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|t| s.transfer_view(&ctx, t, detail, coll))
        .collect();
    Ok(status(StatusCode::OK, json!({"transfers": items})))
}

async fn do_show(s: AppState, ctx: Ctx, id: String, coll: &str) -> Result<Response> {
    let t = s.get_transfer(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"transfer": s.transfer_view(&ctx, &t, true, coll)}),
    ))
}

async fn do_accept(s: AppState, ctx: Ctx, id: String, body: Value, coll: &str) -> Result<Response> {
    let t = s.accept_transfer(&ctx, &id, &body).await?;
    Ok(status(
        StatusCode::ACCEPTED,
        json!({"transfer": s.transfer_view(&ctx, &t, false, coll)}),
    ))
}

async fn create_legacy(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    do_create(s, ctx, body, LEGACY).await
}

async fn list_legacy(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    do_list(s, ctx, q, false, LEGACY).await
}

async fn list_detail_legacy(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    do_list(s, ctx, q, true, LEGACY).await
}

async fn show_legacy(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    do_show(s, ctx, id, LEGACY).await
}

async fn delete(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    s.delete_transfer(&ctx, &id).await?;
    Ok(accepted())
}

async fn accept_legacy(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    do_accept(s, ctx, id, body, LEGACY).await
}

async fn create(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since55(&ctx)?;
    do_create(s, ctx, body, NEW).await
}

async fn list(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    since55(&ctx)?;
    do_list(s, ctx, q, false, NEW).await
}

async fn list_detail(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    since55(&ctx)?;
    do_list(s, ctx, q, true, NEW).await
}

async fn show(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    since55(&ctx)?;
    do_show(s, ctx, id, NEW).await
}

async fn delete_new(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since55(&ctx)?;
    s.delete_transfer(&ctx, &id).await?;
    Ok(accepted())
}

async fn accept(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since55(&ctx)?;
    do_accept(s, ctx, id, body, NEW).await
}
