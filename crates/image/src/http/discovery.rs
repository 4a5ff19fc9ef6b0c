//! Version discovery, the JSON schemas, and `/v2/info/*`.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::{HeaderMap, StatusCode};
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{image_base, json_status, AppState, PublicUrl};
use crate::types;

pub fn authenticated_routes() -> Router<AppState> {
    Router::new()
        .route("/v2/schemas/image", get(|| schema(types::image_schema())))
        .route("/v2/schemas/images", get(|| schema(types::images_schema())))
        .route("/v2/schemas/member", get(|| schema(types::member_schema())))
        .route(
            "/v2/schemas/members",
            get(|| schema(types::members_schema())),
        )
        .route("/v2/info/import", get(info_import))
        .route("/v2/info/stores", get(info_stores))
        .route("/v2/info/usage", get(info_usage))
}

pub(crate) fn version_list(
    headers: &HeaderMap,
    public: &PublicUrl,
    status: StatusCode,
) -> Response {
    json_status(status, types::versions(&image_base(headers, public)))
}

/// `GET /image`: 300 Multiple Choices with the version list.
pub async fn versions(headers: HeaderMap, Extension(public): Extension<PublicUrl>) -> Response {
    version_list(&headers, &public, StatusCode::MULTIPLE_CHOICES)
}

/// `GET /image/versions`: the same list, 200.
pub async fn versions_explicit(
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
) -> Response {
    version_list(&headers, &public, StatusCode::OK)
}

async fn schema(value: Value) -> Json<Value> {
    Json(value)
}

/// No interoperable import method is implemented: the list is empty, so clients upload with
/// `PUT /file`.
async fn info_import(_caller: Caller) -> Json<Value> {
    Json(json!({
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": [],
        }
    }))
}

/// One store: the block store.
async fn info_stores(_caller: Caller) -> Json<Value> {
    Json(json!({
        "stores": [{
            "id": types::STORE_ID,
            "description": "Nubo block store (copy-on-write clones for servers and volumes)",
            "default": "true",
        }]
    }))
}

/// The caller's project quota usage, Glance's `/v2/info/usage` (sizes in MiB).
async fn info_usage(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    let usage = s.quota_usage(&caller).await?;
    Ok(Json(json!({
        "usage": {
            "image_size_total": {"limit": usage.bytes_limit_mib, "usage": usage.bytes_used_mib},
            "image_count_total": {"limit": usage.count_limit, "usage": usage.count_used},
            "image_stage_total": {"limit": 0, "usage": 0},
            "image_count_uploading": {"limit": -1, "usage": usage.uploading},
        }
    })))
}
