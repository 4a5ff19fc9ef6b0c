//! Cinder's HTTP API, mounted at `/volume`: version discovery (`/`, `/v3`, `/v3/`) is public,
//! everything else under `/v3` needs an `X-Auth-Token` and runs at the negotiated
//! microversion. Handlers extract, call the service, convert; nothing else. Faults are
//! Cinder's (Nova's shape: `{"itemNotFound": {"code": 404, "message": ...}}`).
//!
//! URLs carry the project id (`/v3/{project_id}/volumes`, as the catalog says) or, from 3.67,
//! not (`/v3/volumes`): the id is taken out before routing, and a project id that is not the
//! token's is a 400 ("Malformed request url"), as in Cinder.

mod attachments;
mod groups;
mod metadata;
mod misc;
mod quotas;
mod snapshots;
mod transfers;
mod types;
mod volumes;

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri, Query, Request};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::request::Parts;
use http::{HeaderMap, StatusCode, Uri};
use nubo_common::context::require_token;
use nubo_common::error::{render_faults, FaultStyle};
use nubo_common::http::RequestId;
use nubo_common::{Caller, Error, Result, SharedValidator};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::microversion::{self, Microversion, MAX, MIN};
use crate::service::query::ListParams;
use crate::service::{Ctx, VolumeService};

pub type AppState = Arc<VolumeService>;

/// The cloud's public URL, for links when a request carries no `Host`.
#[derive(Clone)]
pub(crate) struct PublicUrl(pub Arc<String>);

/// The project id the URL named (taken out before routing).
#[derive(Clone, Debug)]
struct UrlProject(String);

/// Top-level collections of `/v3`: a first segment that is none of these is a project id.
const COLLECTIONS: &[&str] = &[
    "volumes",
    "snapshots",
    "types",
    "attachments",
    "os-quota-sets",
    "os-quota-class-sets",
    "limits",
    "os-availability-zone",
    "os-services",
    "os-hosts",
    "scheduler-stats",
    "capabilities",
    "messages",
    "qos-specs",
    "groups",
    "group_types",
    "group_snapshots",
    "os-volume-transfer",
    "volume-transfers",
    "resource_filters",
    "clusters",
    "workers",
    "manageable_volumes",
    "manageable_snapshots",
    "os-volume-manage",
    "os-snapshot-manage",
    "backups",
    "extensions",
    "default-types",
    "consistencygroups",
    "cgsnapshots",
];

/// The Block Storage API, to be nested at `/volume`.
pub fn router(service: Arc<VolumeService>, validator: SharedValidator, public_url: &str) -> Router {
    let base = Arc::new(public_url.trim_end_matches('/').to_string());
    let authenticated = Router::new()
        .merge(volumes::routes())
        .merge(snapshots::routes())
        .merge(types::routes())
        .merge(attachments::routes())
        .merge(quotas::routes())
        .merge(misc::routes())
        .merge(groups::routes())
        .merge(transfers::routes())
        .fallback(not_found)
        .layer(from_fn(check_url_project))
        .layer(from_fn(microversion::negotiate))
        .layer(from_fn_with_state(validator, require_token));
    let public = Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version));
    let inner = Router::new()
        .merge(public)
        .nest("/v3", authenticated)
        .fallback(not_found)
        .with_state(service)
        .layer(Extension(PublicUrl(base)))
        .layer(from_fn(|req, next| {
            render_faults(FaultStyle::Nova, req, next)
        }));
    let svc = tower::service_fn(move |request: Request| {
        let inner = inner.clone();
        async move { inner.oneshot(strip_project(request)).await }
    });
    Router::new().fallback_service(svc)
}

/// `/v3/{project}/volumes/...` -> `/v3/volumes/...`, remembering the project.
fn strip_project(mut request: Request) -> Request {
    let path = request.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/v3/") else {
        return request;
    };
    let (first, tail) = match rest.split_once('/') {
        Some((f, t)) => (f, Some(t)),
        None => (rest, None),
    };
    if first.is_empty() || COLLECTIONS.contains(&first) {
        return request;
    }
    let new_path = match tail {
        Some(t) => format!("/v3/{t}"),
        None => "/v3/".to_string(),
    };
    let mut text = new_path;
    if let Some(q) = request.uri().query() {
        text.push('?');
        text.push_str(q);
    }
    if let Ok(uri) = text.parse::<Uri>() {
        request
            .extensions_mut()
            .insert(UrlProject(first.to_string()));
        *request.uri_mut() = uri;
    }
    request
}

/// A URL's project must be the token's (Cinder's "Malformed request url").
async fn check_url_project(request: Request, next: Next) -> Response {
    if let (Some(UrlProject(p)), Some(caller)) = (
        request.extensions().get::<UrlProject>(),
        request.extensions().get::<Caller>(),
    ) {
        if caller.project_id().is_some_and(|own| own != p) && !caller.is_admin() {
            return Error::bad_request("Malformed request url").into_response();
        }
    }
    next.run(request).await
}

async fn not_found() -> Error {
    Error::not_found("The resource could not be found.")
}

/// `http://host:port` as the client addressed it.
fn request_base(headers: &HeaderMap, public: &PublicUrl) -> String {
    let base = nubo_common::http::request_base_url(headers, &public.0);
    base.trim_end_matches('/').to_string()
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.0",
        "status": "CURRENT",
        "version": MAX.to_string(),
        "min_version": MIN.to_string(),
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("{base}/volume/v3/")},
        ],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.volume+json;version=3",
        }],
    })
}

/// `GET /volume` and `/volume/`: the version list (300 Multiple Choices, as Cinder).
async fn versions(Extension(public): Extension<PublicUrl>, headers: HeaderMap) -> Response {
    let base = request_base(&headers, &public);
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": [version_doc(&base)]})),
    )
        .into_response()
}

/// `GET /volume/v3/`: the v3 document (what the SDK's discovery reads).
async fn version(Extension(public): Extension<PublicUrl>, headers: HeaderMap) -> Response {
    let base = request_base(&headers, &public);
    (
        StatusCode::OK,
        Json(json!({"versions": [version_doc(&base)]})),
    )
        .into_response()
}

/// `GET /volume/` (a path the nested router never sees).
pub async fn versions_at_root(headers: HeaderMap) -> Response {
    versions(Extension(PublicUrl(Arc::new(String::new()))), headers).await
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let mv = Microversion::from_request_parts(parts, state).await?;
        let public = parts
            .extensions
            .get::<PublicUrl>()
            .cloned()
            .unwrap_or_else(|| PublicUrl(Arc::new(String::new())));
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
        Ok(Ctx {
            caller,
            mv,
            base: request_base(&parts.headers, &public),
            request_id,
        })
    }
}

/// A list request: its parameters, and the URL its `next` links lead back to.
pub(crate) struct ListRequest {
    pub params: ListParams,
    pub url: String,
}

impl FromRequestParts<AppState> for ListRequest {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ListRequest, Error> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))?;
        let public = parts
            .extensions
            .get::<PublicUrl>()
            .cloned()
            .unwrap_or_else(|| PublicUrl(Arc::new(String::new())));
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map(|o| o.0.path().to_string())
            .unwrap_or_else(|| parts.uri.path().to_string());
        Ok(ListRequest {
            params: ListParams::parse(&pairs)?,
            url: format!("{}{path}", request_base(&parts.headers, &public)),
        })
    }
}

/// Reads a JSON body (a 400 when malformed).
pub(crate) use nubo_common::http::JsonBody;

pub(crate) fn status(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

pub(crate) fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// A list body: `{"<key>": items, "<key>_links": next, "count": n}`.
pub(crate) fn list_body(
    key: &str,
    items: Vec<Value>,
    list: &ListRequest,
    last_id: Option<&str>,
    more: bool,
    count: Option<usize>,
) -> Value {
    let mut body = json!({key: items});
    if let Some(links) = crate::service::query::next_links(&list.url, &list.params, last_id, more) {
        body[format!("{key}_links")] = links;
    }
    if let Some(c) = count {
        body["count"] = json!(c);
    }
    body
}
