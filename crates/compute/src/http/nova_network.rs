//! Nova's network proxies (up to 2.35): `/v2.1/os-security-groups`,
//! `/v2.1/os-security-group-rules`, `/v2.1/os-floating-ips`, `/v2.1/os-floating-ip-pools`,
//! `/v2.1/os-networks`, `/v2.1/os-tenant-networks`; and `/v2.1/servers/{id}/os-security-groups`
//! (every microversion).

use axum::extract::{Path, RawQuery};
use axum::response::Response;
use axum::routing::{get, post};
use http::StatusCode;
use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use super::servers::url_pairs;
use super::{json_status, JsonBody, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/os-security-groups", get(groups).post(create_group))
        .route(
            "/v2.1/os-security-groups/{id}",
            get(group).put(update_group).delete(delete_group),
        )
        .route("/v2.1/os-security-group-rules", post(create_rule))
        .route(
            "/v2.1/os-security-group-rules/{id}",
            axum::routing::delete(delete_rule),
        )
        .route("/v2.1/os-floating-ips", get(floating_ips).post(create_fip))
        .route(
            "/v2.1/os-floating-ips/{id}",
            get(floating_ip).delete(delete_fip),
        )
        .route("/v2.1/os-floating-ip-pools", get(pools))
        .route("/v2.1/os-networks", get(networks).post(gone))
        .route("/v2.1/os-networks/add", post(gone))
        .route("/v2.1/os-networks/{id}", get(network).delete(gone))
        .route("/v2.1/os-networks/{id}/action", post(gone))
        .route("/v2.1/os-tenant-networks", get(tenant_networks).post(gone))
        .route(
            "/v2.1/os-tenant-networks/{id}",
            get(tenant_network).delete(gone),
        )
        .route("/v2.1/servers/{id}/os-security-groups", get(server_groups))
}

/// The proxies are gone from 2.36 on.
fn proxy_version(mv: Microversion) -> Result<()> {
    if mv.at_least(36) {
        Err(Error::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

/// nova-network's write APIs: removed with nova-network (410, as Nova answers).
async fn gone(mv: Microversion) -> Result<StatusCode> {
    proxy_version(mv)?;
    Err(Error::new(
        StatusCode::GONE,
        "This API is no longer available: nova-network was removed; use the Network service.",
    ))
}

async fn groups(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    proxy_version(mv)?;
    let pairs = url_pairs(&raw.unwrap_or_default());
    let all = pairs.iter().any(|(k, v)| {
        k == "all_tenants"
            && !matches!(
                v.to_ascii_lowercase().as_str(),
                "0" | "false" | "f" | "no" | "off"
            )
    });
    Ok(json_status(
        StatusCode::OK,
        state.nova_security_groups(&caller, all).await?,
    ))
}

async fn group(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_security_group(&caller, &id).await?,
    ))
}

async fn create_group(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.create_nova_security_group(&caller, &body).await?,
    ))
}

async fn update_group(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state
            .update_nova_security_group(&caller, &id, &body)
            .await?,
    ))
}

async fn delete_group(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    proxy_version(mv)?;
    state.delete_nova_security_group(&caller, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn create_rule(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state
            .create_nova_security_group_rule(&caller, &body)
            .await?,
    ))
}

async fn delete_rule(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    proxy_version(mv)?;
    state.delete_nova_security_group_rule(&caller, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn floating_ips(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_floating_ips(&caller).await?,
    ))
}

async fn floating_ip(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_floating_ip(&caller, &id).await?,
    ))
}

async fn create_fip(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    bytes: axum::body::Bytes,
) -> Result<Response> {
    proxy_version(mv)?;
    // The body (`{"pool": name}`) is optional.
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        nubo_common::http::parse_json(&bytes)?
    };
    Ok(json_status(
        StatusCode::OK,
        state.create_nova_floating_ip(&caller, &body).await?,
    ))
}

async fn delete_fip(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    proxy_version(mv)?;
    state.delete_nova_floating_ip(&caller, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn pools(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_floating_ip_pools(&caller).await?,
    ))
}

async fn networks(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_networks(&caller, false).await?,
    ))
}

async fn network(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_network(&caller, &id, false).await?,
    ))
}

async fn tenant_networks(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_networks(&caller, true).await?,
    ))
}

async fn tenant_network(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    proxy_version(mv)?;
    Ok(json_status(
        StatusCode::OK,
        state.nova_network(&caller, &id, true).await?,
    ))
}

async fn server_groups(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.server_security_groups(&caller, &id).await?,
    ))
}
