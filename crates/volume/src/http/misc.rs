//! The smaller resources: availability zones, services, hosts, pools, capabilities, user
//! messages (3.3), resource filters (3.33), clusters (3.7), worker cleanup (3.24), manageable
//! resources (3.8), extensions, and backups (no backup service: listed empty, created never).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::{status, AppState, JsonBody, ListRequest};
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/os-availability-zone", get(availability_zones))
        .route("/os-services", get(list_services))
        .route("/os-services/{action}", put(update_service))
        .route("/os-hosts", get(list_hosts))
        .route("/os-hosts/{host}", get(show_host))
        .route("/scheduler-stats/get_pools", get(get_pools))
        .route("/capabilities/{host}", get(capabilities))
        .route("/messages", get(list_messages))
        .route("/messages/{id}", get(show_message).delete(delete_message))
        .route("/resource_filters", get(resource_filters))
        .route("/clusters", get(list_clusters))
        .route("/clusters/detail", get(list_clusters))
        .route("/clusters/{name}", get(show_cluster))
        .route("/workers/cleanup", post(worker_cleanup))
        .route("/manageable_volumes", get(manageable_volumes))
        .route("/manageable_volumes/detail", get(manageable_volumes))
        .route("/manageable_snapshots", get(manageable_snapshots))
        .route("/manageable_snapshots/detail", get(manageable_snapshots))
        .route("/os-volume-manage", post(manage_volume))
        .route("/os-snapshot-manage", post(manage_snapshot))
        .route("/backups", get(list_backups).post(create_backup))
        .route("/backups/detail", get(list_backups))
        .route(
            "/backups/{id}",
            get(show_backup).delete(show_backup).put(show_backup),
        )
        .route(
            "/backups/{id}/{verb}",
            get(show_backup_verb).post(show_backup_verb),
        )
        .route("/extensions", get(extensions))
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn since(ctx: &Ctx, minor: u32) -> Result<()> {
    if ctx.mv.at_least(minor) {
        Ok(())
    } else {
        Err(Error::not_found("The resource could not be found."))
    }
}

async fn availability_zones(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    Ok(status(StatusCode::OK, s.availability_zones(&ctx).await?))
}

async fn list_services(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let items = s
        .list_services(&ctx, param(&q, "host"), param(&q, "binary"))
        .await?;
    Ok(status(StatusCode::OK, json!({"services": items})))
}

async fn update_service(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(action): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let out = s.update_service(&ctx, &action, &body).await?;
    Ok(if out.is_null() {
        if action.starts_with("failover") {
            StatusCode::ACCEPTED.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    } else {
        status(StatusCode::OK, out)
    })
}

async fn list_hosts(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    let hosts = s.list_hosts(&ctx).await?;
    Ok(status(StatusCode::OK, json!({"hosts": hosts})))
}

async fn show_host(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(host): Path<String>,
) -> Result<Response> {
    Ok(status(StatusCode::OK, s.show_host(&ctx, &host).await?))
}

async fn get_pools(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let detail = param(&q, "detail")
        .and_then(crate::service::query::parse_bool)
        .unwrap_or(false);
    let pools = s.list_pools(&ctx, detail).await?;
    Ok(status(StatusCode::OK, json!({"pools": pools})))
}

async fn capabilities(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(host): Path<String>,
) -> Result<Response> {
    Ok(status(StatusCode::OK, s.capabilities(&ctx, &host).await?))
}

async fn list_messages(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    since(&ctx, 3)?;
    let rows = s.list_messages(&ctx, &list.params).await?;
    let items: Vec<Value> = rows.iter().map(|m| s.message_view(&ctx, m)).collect();
    Ok(status(StatusCode::OK, json!({"messages": items})))
}

async fn show_message(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since(&ctx, 3)?;
    let m = s.get_message(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"message": s.message_view(&ctx, &m)}),
    ))
}

async fn delete_message(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since(&ctx, 3)?;
    s.delete_message(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn resource_filters(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    since(&ctx, 33)?;
    Ok(status(
        StatusCode::OK,
        s.resource_filters(&ctx, param(&q, "resource"))?,
    ))
}

async fn list_clusters(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    since(&ctx, 7)?;
    s.require_admin_call(&ctx, "clusters:get_all")?;
    Ok(status(StatusCode::OK, json!({"clusters": []})))
}

async fn show_cluster(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Response> {
    since(&ctx, 7)?;
    s.require_admin_call(&ctx, "clusters:get")?;
    Err(Error::not_found(format!(
        "Cluster {name} could not be found."
    )))
}

async fn worker_cleanup(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 24)?;
    Ok(status(StatusCode::ACCEPTED, s.worker_cleanup(&ctx, &body)?))
}

async fn manageable_volumes(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    since(&ctx, 8)?;
    Ok(status(
        StatusCode::OK,
        s.manageable(&ctx, "manageable-volumes")?,
    ))
}

async fn manageable_snapshots(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    since(&ctx, 8)?;
    Ok(status(
        StatusCode::OK,
        s.manageable(&ctx, "manageable-snapshots")?,
    ))
}

async fn manage_volume(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    s.manage_refused(&ctx, &body, "volume")?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn manage_snapshot(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    s.manage_refused(&ctx, &body, "snapshot")?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn list_backups(State(_s): State<AppState>, _ctx: Ctx) -> Result<Response> {
    Ok(status(StatusCode::OK, json!({"backups": []})))
}

async fn create_backup(
    State(s): State<AppState>,
    _ctx: Ctx,
    JsonBody(_body): JsonBody<Value>,
) -> Result<Response> {
    Err(s.backups_unavailable())
}

async fn show_backup(
    State(_s): State<AppState>,
    _ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    Err(Error::not_found(format!("Backup {id} could not be found.")))
}

async fn show_backup_verb(
    State(_s): State<AppState>,
    _ctx: Ctx,
    Path((id, _verb)): Path<(String, String)>,
) -> Result<Response> {
    Err(Error::not_found(format!("Backup {id} could not be found.")))
}

async fn extensions(State(s): State<AppState>, _ctx: Ctx) -> Result<Response> {
    Ok(status(StatusCode::OK, s.extensions()))
}
