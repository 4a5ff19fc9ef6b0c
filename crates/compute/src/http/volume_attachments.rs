//! `/v2.1/servers/{id}/os-volume_attachments` (attach, list, show, update, detach), and
//! Nova's deprecated Block Storage proxies `/v2.1/os-volumes` and `/v2.1/os-snapshots` (up to
//! 2.35; a 404 from 2.36, as in Nova), and `/v2.1/os-assisted-volume-snapshots`.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use http::StatusCode;
use nubo_common::http::RequestId;
use nubo_common::{Caller, Error, Result};
use nubo_volume::AttachedVolume;
use serde_json::{json, Value};

use super::{json_status, request_id, JsonBody, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route(
            "/v2.1/servers/{id}/os-volume_attachments",
            get(list).post(attach),
        )
        .route(
            "/v2.1/servers/{id}/os-volume_attachments/{volume_id}",
            get(show).put(update).delete(detach),
        )
        .route(
            "/v2.1/os-assisted-volume-snapshots",
            axum::routing::post(assisted_create),
        )
        .route(
            "/v2.1/os-assisted-volume-snapshots/{id}",
            axum::routing::delete(assisted_delete),
        )
        .route("/v2.1/os-volumes", get(proxy_list).post(proxy_create))
        .route("/v2.1/os-volumes/detail", get(proxy_list))
        .route(
            "/v2.1/os-volumes/{id}",
            get(proxy_show).delete(proxy_delete),
        )
        .route(
            "/v2.1/os-snapshots",
            get(proxy_snapshots).post(proxy_create_snapshot),
        )
        .route("/v2.1/os-snapshots/detail", get(proxy_snapshots))
        .route(
            "/v2.1/os-snapshots/{id}",
            get(proxy_snapshot).delete(proxy_delete_snapshot),
        )
}

/// `POST /v2.1/os-assisted-volume-snapshots` (Nova's schema: `snapshot.volume_id`,
/// `snapshot.create_info` with `snapshot_id`, `type` qcow2, `new_file`, optional `id`).
async fn assisted_create(
    state: Svc,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let invalid = |f: &str| Error::bad_request(format!("Invalid input for field/attribute {f}."));
    let snap = body
        .get("snapshot")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("snapshot"))?;
    let volume_id = snap
        .get("volume_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("volume_id"))?;
    let info = snap
        .get("create_info")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("create_info"))?;
    let snapshot_id = info
        .get("snapshot_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("snapshot_id"))?;
    match info.get("type") {
        None => {}
        Some(Value::String(t)) if t == "qcow2" => {}
        Some(_) => return Err(invalid("type")),
    }
    if info.get("new_file").is_some_and(|f| !f.is_string()) {
        return Err(invalid("new_file"));
    }
    let id = match info.get("id") {
        None | Some(Value::Null) => snapshot_id.to_string(),
        Some(Value::String(i)) if uuid::Uuid::parse_str(i).is_ok() => i.clone(),
        Some(_) => return Err(invalid("id")),
    };
    state
        .assisted_volume_snapshot(&caller, volume_id, "create")
        .await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"snapshot": {"id": id, "volumeId": volume_id}}),
    ))
}

#[derive(serde::Deserialize, Default)]
struct DeleteInfo {
    delete_info: Option<String>,
}

/// `DELETE /v2.1/os-assisted-volume-snapshots/{id}?delete_info={"volume_id": ...}`.
async fn assisted_delete(
    state: Svc,
    caller: Caller,
    Path(_id): Path<String>,
    Query(q): Query<DeleteInfo>,
) -> Result<StatusCode> {
    let info: Value = q
        .delete_info
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or_else(|| Error::bad_request("delete_info: a JSON object is required."))?;
    let volume_id = info
        .get("volume_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_request("delete_info: volume_id is required."))?;
    state
        .assisted_volume_snapshot(&caller, volume_id, "delete")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn view(a: &AttachedVolume, mv: Microversion) -> Value {
    let mut v = json!({
        "serverId": a.server_id,
        "volumeId": a.volume_id,
        "device": a.device,
    });
    if !mv.at_least(89) {
        v["id"] = json!(a.volume_id);
    }
    if mv.at_least(70) {
        v["tag"] = json!(a.tag);
    }
    if mv.at_least(79) {
        v["delete_on_termination"] = json!(a.delete_on_termination);
    }
    if mv.at_least(89) {
        v["attachment_id"] = json!(a.attachment_id);
        v["bdm_uuid"] = json!(a.attachment_id);
    }
    v
}

#[derive(serde::Deserialize, Default)]
struct Paging {
    limit: Option<String>,
    offset: Option<String>,
}

fn number(name: &str, v: &Option<String>) -> Result<Option<usize>> {
    match v {
        None => Ok(None),
        Some(s) => s.parse::<usize>().map(Some).map_err(|_| {
            Error::bad_request(format!(
                "Invalid input for query parameters {name}. Value: {s}."
            ))
        }),
    }
}

async fn list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> Result<Response> {
    let limit = number("limit", &p.limit)?;
    let offset = number("offset", &p.offset)?.unwrap_or(0);
    let rows = state.list_volume_attachments(&caller, &id).await?;
    let items: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|a| view(a, mv))
        .collect();
    Ok(json_status(
        StatusCode::OK,
        json!({"volumeAttachments": items}),
    ))
}

async fn show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, volume_id)): Path<(String, String)>,
) -> Result<Response> {
    let a = state
        .get_volume_attachment(&caller, &id, &volume_id)
        .await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"volumeAttachment": view(&a, mv)}),
    ))
}

async fn attach(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let a = body
        .get("volumeAttachment")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute volumeAttachment."))?;
    let volume_id = match a.get("volumeId") {
        Some(Value::String(v)) if uuid::Uuid::parse_str(v).is_ok() => v.clone(),
        _ => {
            return Err(Error::bad_request(
                "Invalid input for field/attribute volumeId. Value: it must be a UUID.",
            ))
        }
    };
    let device = match a.get("device") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field/attribute device.",
            ))
        }
    };
    let tag = match a.get("tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if mv.at_least(49) && !t.is_empty() && t.len() <= 60 => {
            Some(t.clone())
        }
        Some(_) => return Err(Error::bad_request("Invalid input for field/attribute tag.")),
    };
    let delete_on_termination = match a.get("delete_on_termination") {
        None => false,
        Some(Value::Bool(b)) if mv.at_least(79) => *b,
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field/attribute delete_on_termination.",
            ))
        }
    };
    let attached = state
        .attach_volume(
            &caller,
            &id,
            &volume_id,
            device.as_deref(),
            tag.as_deref(),
            delete_on_termination,
            &request_id(&rid),
        )
        .await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"volumeAttachment": view(&attached, mv)}),
    ))
}

async fn update(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, volume_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    state
        .update_volume_attachment(&caller, &id, &volume_id, &body, mv.at_least(85))
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn detach(
    state: Svc,
    caller: Caller,
    rid: Option<Extension<RequestId>>,
    Path((id, volume_id)): Path<(String, String)>,
) -> Result<Response> {
    state
        .detach_volume(&caller, &id, &volume_id, &request_id(&rid))
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn proxy_gone(mv: Microversion) -> Result<()> {
    if mv.at_least(36) {
        Err(Error::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

async fn proxy_list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Query(p): Query<Paging>,
) -> Result<Response> {
    proxy_gone(mv)?;
    let limit = number("limit", &p.limit)?;
    let offset = number("offset", &p.offset)?.unwrap_or(0);
    let volumes = state
        .volume_service()?
        .proxy_volumes(&caller, limit, offset)
        .await?;
    Ok(json_status(StatusCode::OK, json!({"volumes": volumes})))
}

async fn proxy_show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(mv)?;
    let v = state.volume_service()?.proxy_volume(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, json!({"volume": v})))
}

async fn proxy_create(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    proxy_gone(mv)?;
    let v = state
        .volume_service()?
        .proxy_create_volume(&caller, &body)
        .await?;
    Ok(json_status(StatusCode::OK, json!({"volume": v})))
}

async fn proxy_delete(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(mv)?;
    state
        .volume_service()?
        .proxy_delete_volume(&caller, &id)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn proxy_snapshots(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    proxy_gone(mv)?;
    let list = state.volume_service()?.proxy_snapshots(&caller).await?;
    Ok(json_status(StatusCode::OK, json!({"snapshots": list})))
}

async fn proxy_snapshot(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(mv)?;
    let s = state.volume_service()?.proxy_snapshot(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, json!({"snapshot": s})))
}

async fn proxy_create_snapshot(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    proxy_gone(mv)?;
    let s = state
        .volume_service()?
        .proxy_create_snapshot(&caller, &body)
        .await?;
    Ok(json_status(StatusCode::OK, json!({"snapshot": s})))
}

async fn proxy_delete_snapshot(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_gone(mv)?;
    state
        .volume_service()?
        .proxy_delete_snapshot(&caller, &id)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
