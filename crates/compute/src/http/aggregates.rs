//! `/v2.1/os-aggregates`, `/v2.1/os-hosts` (up to 2.42) and
//! `/v2.1/os-instance_usage_audit_log` (admin).

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::servers::url_pairs;
use super::{json_status, JsonBody, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/os-aggregates", get(list).post(create))
        .route(
            "/v2.1/os-aggregates/{id}",
            get(show).put(update).delete(delete),
        )
        .route("/v2.1/os-aggregates/{id}/action", post(action))
        .route("/v2.1/os-aggregates/{id}/images", post(images))
        .route("/v2.1/os-hosts", get(hosts))
        .route("/v2.1/os-hosts/{host}", get(host).put(update_host))
        .route("/v2.1/os-hosts/{host}/{power}", get(host_power))
        .route("/v2.1/os-instance_usage_audit_log", get(audit_logs))
        .route("/v2.1/os-instance_usage_audit_log/{before}", get(audit_log))
}

async fn list(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    let list = state.list_aggregates(&caller, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "aggregates": list })))
}

async fn show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = state.get_aggregate(&caller, &id, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "aggregate": a })))
}

async fn create(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let a = state.create_aggregate(&caller, &body, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "aggregate": a })))
}

async fn update(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let a = state.update_aggregate(&caller, &id, &body, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "aggregate": a })))
}

async fn delete(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    state.delete_aggregate(&caller, &id).await?;
    Ok(StatusCode::OK.into_response())
}

async fn action(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let a = state.aggregate_action(&caller, &id, &body, mv).await?;
    Ok(json_status(StatusCode::OK, json!({ "aggregate": a })))
}

async fn images(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode> {
    if !mv.at_least(81) {
        return Err(Error::not_found("The resource could not be found."));
    }
    state.cache_images(&caller, &id, &body).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `os-hosts` is gone from 2.43 on.
fn hosts_version(mv: Microversion) -> Result<()> {
    if mv.at_least(43) {
        Err(Error::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

async fn hosts(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    hosts_version(mv)?;
    let pairs = url_pairs(&raw.unwrap_or_default());
    let zone = pairs
        .iter()
        .find(|(k, _)| k == "zone")
        .map(|(_, v)| v.as_str());
    let list = state.list_os_hosts(&caller, zone).await?;
    Ok(json_status(StatusCode::OK, json!({ "hosts": list })))
}

async fn host(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(host): Path<String>,
) -> Result<Response> {
    hosts_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.show_os_host(&caller, &host).await?,
    ))
}

async fn update_host(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(host): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    hosts_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.update_os_host(&caller, &host, &body).await?,
    ))
}

async fn host_power(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((host, power)): Path<(String, String)>,
) -> Result<Response> {
    hosts_version(mv)?;
    if !["startup", "shutdown", "reboot"].contains(&power.as_str()) {
        return Err(Error::not_found("The resource could not be found."));
    }
    Ok(json_status(
        StatusCode::OK,
        state.os_host_power(&caller, &host, &power).await?,
    ))
}

async fn audit_logs(state: Svc, caller: Caller) -> Result<Response> {
    let log = state.usage_audit_log(&caller, None).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({ "instance_usage_audit_logs": log }),
    ))
}

async fn audit_log(state: Svc, caller: Caller, Path(before): Path<String>) -> Result<Response> {
    let log = state.usage_audit_log(&caller, Some(&before)).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({ "instance_usage_audit_log": log }),
    ))
}
