//! `/internal/v1/hosts/{host}/network`, `.../dhcp-ports/{network}`, `.../port-status`: the data
//! plane's part of the agent API (see [`crate::service::netplane_state`]). Merged into
//! [`super::internal_router`], behind the same agent secret.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;
use nubo_common::http::JsonBody;
use nubo_common::Result;
use serde::Deserialize;

use super::AppState;
use crate::service::netplane_state::PortStatusReport;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts/{host}/network", get(network))
        .route("/v1/hosts/{host}/dhcp-ports/{network}", put(dhcp_port))
        .route("/v1/hosts/{host}/port-status", post(port_status))
}

#[derive(Deserialize)]
struct NetworkParams {
    #[serde(default)]
    all: bool,
}

async fn network(
    State(s): State<AppState>,
    Path(host): Path<String>,
    Query(p): Query<NetworkParams>,
) -> Result<Response> {
    Ok(Json(s.host_network_state(&host, p.all).await?).into_response())
}

async fn dhcp_port(
    State(s): State<AppState>,
    Path((host, network)): Path<(String, String)>,
) -> Result<StatusCode> {
    s.ensure_host_dhcp_port(&host, &network).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn port_status(
    State(s): State<AppState>,
    Path(host): Path<String>,
    JsonBody(report): JsonBody<PortStatusReport>,
) -> Result<StatusCode> {
    s.report_port_status(&host, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}
