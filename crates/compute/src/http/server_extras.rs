//! Server actions and sub-resources beyond the original set: `createBackup`,
//! `addSecurityGroup`/`removeSecurityGroup`, `addFloatingIp`/`removeFloatingIp` (up to 2.43),
//! `injectNetworkInfo`, `migrate`, `restore`; and `/v2.1/servers/{id}/diagnostics`.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode};
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::{json_status, AppState, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new().route("/v2.1/servers/{id}/diagnostics", get(diagnostics))
}

async fn diagnostics(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.server_diagnostics(&caller, &id, mv).await?,
    ))
}

/// The actions `servers::action` does not know itself. `base` is the compute URL
/// (`http://host/compute`), for the `Location` of a backup before 2.45.
#[allow(clippy::too_many_arguments)]
pub(super) async fn action(
    state: &AppState,
    caller: &Caller,
    mv: Microversion,
    base: &str,
    request_id: &str,
    id: &str,
    name: &str,
    body: &Value,
) -> Result<Response> {
    match name {
        "createBackup" => {
            let (image, rotation) = state.create_backup(caller, id, body, request_id).await?;
            if mv.at_least(45) {
                return Ok(json_status(
                    StatusCode::ACCEPTED,
                    json!({ "image_id": image }),
                ));
            }
            let mut response = StatusCode::ACCEPTED.into_response();
            if rotation > 0 {
                let location = format!("{base}/images/{image}");
                if let Ok(v) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(http::header::LOCATION, v);
                }
            }
            Ok(response)
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            state
                .change_server_security_group(caller, id, body, name == "addSecurityGroup")
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "addFloatingIp" | "removeFloatingIp" if !mv.at_least(44) => {
            if name == "addFloatingIp" {
                state.add_floating_ip(caller, id, body).await?;
            } else {
                state.remove_floating_ip(caller, id, body).await?;
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "injectNetworkInfo" => {
            state.inject_network_info(caller, id, request_id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "migrate" => {
            state.migrate_server(caller, id, body, mv).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "restore" => {
            state.restore_server(caller, id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "addFloatingIp" | "removeFloatingIp" => {
            Err(Error::not_found(format!("There is no such action: {name}")))
        }
        other => Err(Error::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

/// Fills `ctx.floating` with the floating IPs on the ports of `rows` (for `addresses`), and
/// `ctx.volumes` with their attached volumes (for `os-extended-volumes:volumes_attached`).
pub(super) async fn with_floating(
    state: &AppState,
    ctx: &mut crate::service::views::ViewCtx,
    rows: &[&crate::store::servers::ServerRow],
) -> Result<()> {
    ctx.floating = std::sync::Arc::new(state.floating_ips_by_port(rows).await?);
    ctx.volumes = std::sync::Arc::new(state.volumes_attached(rows).await?);
    Ok(())
}

/// Sets `server_groups` (2.71+) of a server view to the groups the server is in.
pub(super) async fn with_groups(state: &AppState, view: &mut Value, id: &str) -> Result<()> {
    if let Some(groups) = view.get_mut("server_groups") {
        *groups = json!(state.server_group_ids(id).await?);
    }
    Ok(())
}
