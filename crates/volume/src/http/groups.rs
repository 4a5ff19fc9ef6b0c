//! `/v3/group_types` (3.11), `/v3/groups` (3.13) and `/v3/group_snapshots` (3.14).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::{accepted, status, AppState, JsonBody, ListRequest};
use crate::service::input;
use crate::service::query::parse_bool;
use crate::service::Ctx;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/group_types", get(list_types).post(create_type))
        .route(
            "/group_types/{id}",
            get(show_type).put(update_type).delete(delete_type),
        )
        .route("/group_types/{id}/group_specs", get(specs).post(set_specs))
        .route(
            "/group_types/{id}/group_specs/{key}",
            get(spec).put(set_spec).delete(delete_spec),
        )
        .route("/groups", get(list_groups).post(create_group))
        .route("/groups/detail", get(list_groups_detail))
        .route("/groups/action", post(groups_action))
        .route("/groups/{id}", get(show_group).put(update_group))
        .route("/groups/{id}/action", post(group_action))
        .route(
            "/group_snapshots",
            get(list_snapshots).post(create_snapshot),
        )
        .route("/group_snapshots/detail", get(list_snapshots_detail))
        .route(
            "/group_snapshots/{id}",
            get(show_snapshot).delete(delete_snapshot),
        )
        .route("/group_snapshots/{id}/action", post(snapshot_action))
}

fn since(ctx: &Ctx, minor: u32) -> Result<()> {
    if ctx.mv.at_least(minor) {
        Ok(())
    } else {
        Err(Error::not_found("The resource could not be found."))
    }
}

fn flag(q: &[(String, String)], key: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == key && parse_bool(v).unwrap_or(true))
}

async fn list_types(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    since(&ctx, 11)?;
    let items: Vec<Value> = s
        .list_group_types(&ctx, &list.params)
        .await?
        .iter()
        .map(|t| s.group_type_view(&ctx, t))
        .collect();
    Ok(status(StatusCode::OK, json!({"group_types": items})))
}

async fn create_type(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 11)?;
    let t = s.create_group_type(&ctx, &body).await?;
    Ok(status(
        StatusCode::ACCEPTED,
        json!({"group_type": s.group_type_view(&ctx, &t)}),
    ))
}

async fn show_type(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since(&ctx, 11)?;
    let t = s.get_group_type(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"group_type": s.group_type_view(&ctx, &t)}),
    ))
}

async fn update_type(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 11)?;
    let t = s.update_group_type(&ctx, &id, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"group_type": s.group_type_view(&ctx, &t)}),
    ))
}

async fn delete_type(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since(&ctx, 11)?;
    s.delete_group_type(&ctx, &id).await?;
    Ok(accepted())
}

async fn specs(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    since(&ctx, 11)?;
    Ok(status(
        StatusCode::OK,
        json!({"group_specs": s.group_specs(&ctx, &id).await?}),
    ))
}

async fn set_specs(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 11)?;
    let specs = match body.get("group_specs") {
        Some(v @ Value::Object(_)) => input::metadata("group_specs", Some(v), false)?,
        _ => {
            return Err(Error::bad_request(
                "Malformed request body: 'group_specs' object is required.",
            ))
        }
    };
    let set = s.set_group_specs(&ctx, &id, specs).await?;
    Ok(status(StatusCode::ACCEPTED, json!({"group_specs": set})))
}

async fn spec(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    since(&ctx, 11)?;
    let specs = s.group_specs(&ctx, &id).await?;
    match specs.get(&key) {
        Some(v) => Ok(status(StatusCode::OK, json!({key: v}))),
        None => Err(Error::not_found(format!(
            "Group Type {id} has no specs with key {key}."
        ))),
    }
}

async fn set_spec(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 11)?;
    let Some(map) = body.as_object() else {
        return Err(Error::bad_request("Malformed request body."));
    };
    if map.len() != 1 || !map.contains_key(&key) {
        return Err(Error::bad_request("Request body and URI mismatch"));
    }
    let specs = input::metadata("group_specs", Some(&body), false)?;
    let set = s.set_group_specs(&ctx, &id, specs).await?;
    Ok(status(StatusCode::OK, json!(set)))
}

async fn delete_spec(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    since(&ctx, 11)?;
    s.delete_group_spec(&ctx, &id, &key).await?;
    Ok(accepted())
}

async fn list_common(
    s: AppState,
    ctx: Ctx,
    q: Vec<(String, String)>,
    detail: bool,
) -> Result<Response> {
    since(&ctx, 13)?;
    let rows = s.list_groups(&ctx, flag(&q, "all_tenants")).await?;
    let mut items = Vec::new();
    for g in &rows {
        if detail {
            items.push(s.group_view(&ctx, g, flag(&q, "list_volume")).await?);
        } else {
            items.push(json!({"id": g.id, "name": g.name}));
        }
    }
    Ok(status(StatusCode::OK, json!({"groups": items})))
}

async fn list_groups(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    list_common(s, ctx, q, false).await
}

async fn list_groups_detail(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    list_common(s, ctx, q, true).await
}

async fn create_group(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 13)?;
    let g = s.create_group(&ctx, &body).await?;
    Ok(status(
        StatusCode::ACCEPTED,
        json!({"group": {"id": g.id, "name": g.name}}),
    ))
}

async fn show_group(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    since(&ctx, 13)?;
    let g = s.get_group(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"group": s.group_view(&ctx, &g, flag(&q, "list_volume")).await?}),
    ))
}

async fn update_group(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 13)?;
    s.update_group(&ctx, &id, &body).await?;
    Ok(accepted())
}

async fn group_action(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 13)?;
    let out = s.group_action(&ctx, &id, &body).await?;
    Ok(if out.is_null() {
        accepted()
    } else {
        status(StatusCode::OK, out)
    })
}

async fn groups_action(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 14)?;
    let g = s.create_group_from_src(&ctx, &body).await?;
    Ok(status(
        StatusCode::ACCEPTED,
        json!({"group": {"id": g.id, "name": g.name}}),
    ))
}

async fn list_snapshots_common(
    s: AppState,
    ctx: Ctx,
    q: Vec<(String, String)>,
    detail: bool,
) -> Result<Response> {
    since(&ctx, 14)?;
    let rows = s
        .list_group_snapshots(&ctx, flag(&q, "all_tenants"))
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|g| {
            if detail {
                s.group_snapshot_view(g)
            } else {
                json!({"id": g.id, "name": g.name})
            }
        })
        .collect();
    Ok(status(StatusCode::OK, json!({"group_snapshots": items})))
}

async fn list_snapshots(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    list_snapshots_common(s, ctx, q, false).await
}

async fn list_snapshots_detail(
    State(s): State<AppState>,
    ctx: Ctx,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    list_snapshots_common(s, ctx, q, true).await
}

async fn create_snapshot(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 14)?;
    let g = s.create_group_snapshot(&ctx, &body).await?;
    Ok(status(
        StatusCode::ACCEPTED,
        json!({"group_snapshot": {"id": g.id, "name": g.name, "group_type_id": g.group_type_id}}),
    ))
}

async fn show_snapshot(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since(&ctx, 14)?;
    let g = s.get_group_snapshot(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"group_snapshot": s.group_snapshot_view(&g)}),
    ))
}

async fn delete_snapshot(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    since(&ctx, 14)?;
    s.delete_group_snapshot(&ctx, &id).await?;
    Ok(accepted())
}

async fn snapshot_action(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    since(&ctx, 19)?;
    s.reset_group_snapshot_status(&ctx, &id, &body).await?;
    Ok(accepted())
}
