//! Nova's HTTP API, mounted at `/compute`: version discovery (`/`, `/v2.1`) is public,
//! everything else under `/v2.1` needs an `X-Auth-Token` and runs at the negotiated
//! microversion. Handlers extract, call the service, convert; nothing else. Faults are Nova's
//! `{"itemNotFound": {...}}` bodies.
//!
//! Two more routers live here: [`internal_router`] (`/internal`, the agent API, behind the agent
//! secret) and [`metadata_router`] (`/metadata`, the guest metadata service behind the
//! data-plane proxy's HMAC headers).

mod aggregates;
mod flavors;
mod images;
mod internal;
mod internal_netplane; // data plane (issue 6)
mod keypairs;
mod metadata;
mod misc;
mod nova_network;
mod server_extras;
mod server_groups;
mod servers;
mod volume_attachments; // block storage (issue 7)

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::{HeaderMap, StatusCode};
use nubo_common::context::require_token;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::http::RequestId;
use nubo_common::{Error, SharedValidator};
use serde_json::{json, Value};

use crate::microversion::{self, Microversion, MAX, MIN};
use crate::service::views::ViewCtx;
use crate::service::ComputeService;

pub use internal::internal_router;
pub use metadata::metadata_router;

pub type AppState = Arc<ComputeService>;

/// The cloud's public URL, for links when a request carries no `Host`.
#[derive(Clone)]
pub(crate) struct PublicUrl(pub Arc<String>);

/// The Compute API, to be nested at `/compute`.
pub fn router(
    service: Arc<ComputeService>,
    validator: SharedValidator,
    public_url: &str,
) -> Router {
    let base = Arc::new(public_url.trim_end_matches('/').to_string());
    let authenticated = Router::new()
        .merge(flavors::routes())
        .merge(images::routes())
        .merge(keypairs::routes())
        .merge(servers::routes())
        .merge(misc::routes())
        .merge(misc::admin_routes())
        .merge(server_groups::routes())
        .merge(aggregates::routes())
        .merge(nova_network::routes())
        .merge(server_extras::routes())
        .merge(volume_attachments::routes())
        .layer(axum::middleware::from_fn(microversion::negotiate))
        .layer(from_fn_with_state(validator, require_token));
    Router::new()
        .route("/", get(versions))
        .route("/v2.1", get(version))
        .route("/v2.1/", get(version))
        .route("/v2", get(version_v2))
        .route("/v2/", get(version_v2))
        .merge(authenticated)
        .fallback(not_found)
        .with_state(service)
        .layer(Extension(PublicUrl(base)))
        .layer(axum::middleware::from_fn(|req, next| {
            render_faults(FaultStyle::Nova, req, next)
        }))
}

async fn not_found(request: Request) -> Response {
    let mut response = Error::not_found("The resource could not be found.").into_response();
    if request.uri().path().starts_with("/v2.1/") {
        let v = microversion::requested(request.headers()).unwrap_or(MIN);
        if let Ok(h) = format!("compute {v}").parse() {
            response.headers_mut().insert("openstack-api-version", h);
        }
    }
    response
}

/// `http://host:port/compute` as the client addressed it.
pub(crate) fn compute_base(headers: &HeaderMap, public: &PublicUrl) -> String {
    format!(
        "{}/compute",
        nubo_common::http::request_base_url(headers, &public.0)
    )
}

pub(crate) fn view_ctx(
    headers: &HeaderMap,
    public: &PublicUrl,
    mv: Microversion,
    caller: &nubo_common::Caller,
) -> ViewCtx {
    ViewCtx {
        mv,
        admin: caller.is_admin(),
        base: compute_base(headers, public),
        floating: Default::default(),
        volumes: Default::default(),
    }
}

pub(crate) fn request_id(rid: &Option<Extension<RequestId>>) -> String {
    rid.as_ref()
        .map(|Extension(r)| r.0.clone())
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()))
}

pub(crate) fn json_status(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

fn version_doc(base: &str, v21: bool) -> Value {
    if v21 {
        json!({
            "id": "v2.1",
            "status": "CURRENT",
            "version": MAX.to_string(),
            "min_version": MIN.to_string(),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": format!("{base}/v2.1/")}],
        })
    } else {
        json!({
            "id": "v2.0",
            "status": "SUPPORTED",
            "version": "",
            "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": format!("{base}/v2/")}],
        })
    }
}

/// `GET /compute/`: the version list.
async fn versions(Extension(public): Extension<PublicUrl>, headers: HeaderMap) -> Response {
    let base = compute_base(&headers, &public);
    json_status(
        StatusCode::OK,
        json!({"versions": [version_doc(&base, false), version_doc(&base, true)]}),
    )
}

fn one_version(base: &str, v21: bool) -> Value {
    let mut v = version_doc(base, v21);
    v["links"].as_array_mut().expect("links").push(
        json!({"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}),
    );
    v["media-types"] = json!([{
        "base": "application/json",
        "type": if v21 { "application/vnd.openstack.compute+json;version=2.1" } else { "application/vnd.openstack.compute+json;version=2" },
    }]);
    json!({"version": v})
}

/// `GET /compute/v2.1`.
async fn version(Extension(public): Extension<PublicUrl>, headers: HeaderMap) -> Response {
    let base = compute_base(&headers, &public);
    let mut response = json_status(StatusCode::OK, one_version(&base, true));
    if let Ok(v) = microversion::requested(&headers) {
        if let Ok(h) = format!("compute {v}").parse() {
            response.headers_mut().insert("openstack-api-version", h);
        }
        if let Ok(h) = v.to_string().parse() {
            response
                .headers_mut()
                .insert("x-openstack-nova-api-version", h);
        }
    }
    response
}

async fn version_v2(Extension(public): Extension<PublicUrl>, headers: HeaderMap) -> Response {
    let base = compute_base(&headers, &public);
    json_status(StatusCode::OK, one_version(&base, false))
}

/// The state type used by every route table.
pub(crate) type Routes = Router<AppState>;

/// Reads a JSON body (a 400 when malformed).
pub(crate) use nubo_common::http::JsonBody;

/// Shortcut for handlers.
pub(crate) type Svc = State<AppState>;

/// `GET /compute/` (a path the nested router never sees): the version list.
pub async fn versions_at_root(headers: HeaderMap) -> Response {
    let public = PublicUrl(Arc::new(String::new()));
    versions(Extension(public), headers).await
}
