//! `/metadata`: the guest metadata service, for the data plane's proxy (which adds
//! `X-Instance-ID`, `X-Instance-ID-Signature` and `X-Tenant-ID`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::{Error, Result};

use crate::service::ComputeService;

/// The metadata service, to be nested at `/metadata`.
pub fn metadata_router(service: Arc<ComputeService>) -> Router {
    Router::new()
        .fallback(serve)
        .with_state(service)
        .layer(axum::middleware::from_fn(|req, next| {
            render_faults(FaultStyle::Nova, req, next)
        }))
}

async fn serve(State(s): State<Arc<ComputeService>>, request: Request) -> Result<Response> {
    let method = request.method().clone();
    if method != http::Method::GET && method != http::Method::HEAD && method != http::Method::POST {
        return Err(Error::method_not_allowed());
    }
    let headers = request.headers().clone();
    let path = request.uri().path().to_string();
    // Only the `password` file takes a POST, of at most a few hundred bytes (Nova: 4 x 255).
    let body = if method == http::Method::POST {
        axum::body::to_bytes(request.into_body(), 64 * 1024)
            .await
            .map_err(|_| Error::bad_request("Request is too large."))?
    } else {
        drop(request);
        Default::default()
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let (Some(id), Some(sig)) = (header("x-instance-id"), header("x-instance-id-signature")) else {
        return Err(Error::bad_request(
            "X-Instance-ID and X-Instance-ID-Signature are required.",
        ));
    };
    let tenant = header("x-tenant-id");
    let row = s.metadata_instance(&id, &sig, tenant.as_deref()).await?;
    if method == http::Method::POST {
        s.metadata_post(&row, &path, &body).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let answer = s.metadata_answer(&row, &path).await?;
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response())
}
