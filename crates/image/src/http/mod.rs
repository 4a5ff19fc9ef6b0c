//! Glance's HTTP API, mounted at `/image`: version discovery (`/`, `/versions`, and any
//! unversioned path) is public, everything under `/v2` needs an `X-Auth-Token`. Handlers
//! extract, call the service, convert; nothing else. Faults are Glance's plain-text bodies.

mod discovery;
mod images;
mod members;
mod metadefs;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use nubo_common::context::require_token;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::{Error, SharedValidator};

use crate::service::ImageService;

pub type AppState = Arc<ImageService>;

/// The Image API, to be nested at `/image`. `public_url` is the cloud's base URL (used for
/// discovery links when a request carries no `Host`).
pub fn router(service: Arc<ImageService>, validator: SharedValidator, public_url: &str) -> Router {
    let base = Arc::new(public_url.trim_end_matches('/').to_string());
    let authenticated = Router::new()
        .merge(images::routes())
        .merge(members::routes())
        .merge(metadefs::routes())
        .merge(discovery::authenticated_routes())
        .layer(from_fn_with_state(validator, require_token));
    Router::new()
        .route("/", get(discovery::versions))
        .route("/versions", get(discovery::versions_explicit))
        .merge(authenticated)
        .fallback(fallback)
        .with_state(service)
        .layer(axum::Extension(PublicUrl(base)))
        .layer(axum::middleware::from_fn(|req, next| {
            render_faults(FaultStyle::Glance, req, next)
        }))
}

/// `GET /image/` (a path the nested router never sees): the version list, 300, with links
/// built from the request's `Host`.
pub async fn versions_at_root(headers: HeaderMap) -> Response {
    let public = PublicUrl(Arc::new(String::new()));
    discovery::version_list(&headers, &public, StatusCode::MULTIPLE_CHOICES)
}

/// The cloud's public URL, for discovery links.
#[derive(Clone)]
pub(crate) struct PublicUrl(pub Arc<String>);

/// Unknown paths under `/v2` are 404s; anything else is a request for an unknown version,
/// answered (as Glance does) with the version list.
async fn fallback(
    State(_): State<AppState>,
    axum::Extension(public): axum::Extension<PublicUrl>,
    request: Request,
) -> Response {
    let path = request.uri().path();
    if path == "/v2" || path.starts_with("/v2/") {
        return Error::not_found("The resource could not be found.").into_response();
    }
    discovery::version_list(request.headers(), &public, StatusCode::MULTIPLE_CHOICES)
}

/// The image URL root as the client addressed it (`http://host:port/image`).
pub(crate) fn image_base(headers: &HeaderMap, public: &PublicUrl) -> String {
    format!(
        "{}/image",
        nubo_common::http::request_base_url(headers, &public.0)
    )
}

pub(crate) fn json_status(status: StatusCode, value: serde_json::Value) -> Response {
    (status, Json(value)).into_response()
}

pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
