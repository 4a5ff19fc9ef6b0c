//! `/internal/v1`: the agent API (see [`crate::agent_api`]), behind the agent secret.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http::StatusCode;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::http::JsonBody;
use nubo_common::{Error, Result};
use serde::Deserialize;

use super::AppState;
use crate::agent_api::{HostRegistration, ObservedHost, RequestAnswer, BEARER};
use crate::service::ComputeService;

/// The agent API, to be nested at `/internal`.
pub fn internal_router(service: Arc<ComputeService>) -> Router {
    let secret = Arc::new(service.settings().agent_secret.clone());
    Router::new()
        .route("/v1/hosts/{host}", put(register))
        .route("/v1/hosts/{host}/desired", get(desired))
        .route("/v1/hosts/{host}/observed", post(observed))
        .route("/v1/requests/{id}", post(answer))
        .route("/v1/servers/{id}/config-drive", get(config_drive))
        .merge(super::internal_netplane::routes()) // data plane (issue 6)
        .with_state(service)
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let secret = secret.clone();
                async move { check_secret(&secret, req, next).await }
            },
        ))
        .layer(axum::middleware::from_fn(|req, next| {
            render_faults(FaultStyle::Nova, req, next)
        }))
}

async fn check_secret(secret: &str, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(BEARER))
        .unwrap_or("");
    let ok = !secret.is_empty()
        && given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !ok {
        return Error::unauthorized("The agent secret is missing or wrong.").into_response();
    }
    next.run(request).await
}

async fn register(
    State(s): State<AppState>,
    Path(host): Path<String>,
    JsonBody(reg): JsonBody<HostRegistration>,
) -> Result<Response> {
    let r = s.register_host(&host, &reg).await?;
    Ok(Json(r).into_response())
}

#[derive(Deserialize)]
struct DesiredParams {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    wait: u64,
}

async fn desired(
    State(s): State<AppState>,
    Path(host): Path<String>,
    Query(p): Query<DesiredParams>,
) -> Result<Response> {
    let d = s
        .desired_state(&host, p.after, Duration::from_secs(p.wait))
        .await?;
    Ok(Json(d).into_response())
}

async fn observed(
    State(s): State<AppState>,
    Path(host): Path<String>,
    JsonBody(report): JsonBody<ObservedHost>,
) -> Result<StatusCode> {
    s.observe(&host, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn answer(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(a): JsonBody<RequestAnswer>,
) -> Result<StatusCode> {
    s.answer_request(&id, a.output.as_deref(), a.error.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn config_drive(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    Ok(Json(s.config_drive_content(&id).await?).into_response())
}
