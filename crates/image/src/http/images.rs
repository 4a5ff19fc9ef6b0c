//! `/v2/images`, `/v2/images/{id}`, its `file`, `tags/{tag}`, `actions/*` and `tasks`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use futures::TryStreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{image_base, json_status, no_content, AppState, PublicUrl};
use crate::service::list::ListQuery;
use crate::service::patch;
use crate::types::image_view;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/images", get(list_images).post(create_image))
        .route(
            "/v2/images/{id}",
            get(get_image).patch(update_image).delete(delete_image),
        )
        .route("/v2/images/{id}/file", get(download).put(upload))
        .route(
            "/v2/images/{id}/tags/{tag}",
            put(add_tag).delete(delete_tag),
        )
        .route("/v2/images/{id}/actions/deactivate", post(deactivate))
        .route("/v2/images/{id}/actions/reactivate", post(reactivate))
        .route("/v2/images/{id}/stage", put(stage))
        .route("/v2/images/{id}/tasks", get(image_tasks))
}

async fn list_images(
    State(s): State<AppState>,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, Error> {
    let query = ListQuery::parse(&params)?;
    let page = s.list_images(&caller, &query).await?;
    let without_marker: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let mut body = json!({
        "images": page.images.iter().map(image_view).collect::<Vec<_>>(),
        "first": with_query("/v2/images", &without_marker),
        "schema": "/v2/schemas/images",
    });
    if let Some(marker) = page.next_marker {
        let mut next = without_marker;
        next.push(("marker".into(), marker));
        body["next"] = Value::String(with_query("/v2/images", &next));
    }
    Ok(Json(body))
}

/// `path?k=v&...`, form-encoded.
fn with_query(path: &str, params: &[(String, String)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let encode = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

async fn create_image(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let image = s.create_image(&caller, body).await?;
    let mut response = json_status(StatusCode::CREATED, image_view(&image));
    let location = format!("{}/v2/images/{}", image_base(&headers, &public), image.id);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

async fn get_image(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(image_view(&s.get_image(&caller, &id).await?)))
}

/// `GET /v2/images/{id}/tasks` (Image API 2.12): the import tasks of an image. Nubo's uploads
/// and imports finish inside their request, so no image ever has a task to show.
async fn image_tasks(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    s.get_image(&caller, &id).await?;
    Ok(Json(json!({ "tasks": [] })))
}

async fn update_image(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let changes = patch::parse(content_type, &body).map_err(|e| {
        let unsupported = e.status == StatusCode::UNSUPPORTED_MEDIA_TYPE;
        let mut response = e.into_response();
        if unsupported {
            response.headers_mut().insert(
                "accept-patch",
                HeaderValue::from_str(&format!(
                    "{}, {}",
                    patch::MEDIA_TYPE_V20,
                    patch::MEDIA_TYPE_V21
                ))
                .expect("static header value"),
            );
        }
        response
    })?;
    let image = s
        .update_image(&caller, &id, &changes)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(image_view(&image)))
}

async fn delete_image(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_image(&caller, &id).await?;
    Ok(no_content())
}

async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/octet-stream") {
        return Err(Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content type {} is not supported",
                content_type.as_deref().unwrap_or("None")
            ),
        ));
    }
    let size_hint = match headers.get("x-openstack-image-size") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::bad_request("Invalid or missing image size in request headers.")
                })?,
        ),
        None => headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok()),
    };
    let data = Box::pin(body.into_data_stream().map_err(std::io::Error::other));
    s.upload_image(&caller, &id, size_hint, data).await?;
    Ok(no_content())
}

async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let Some(download) = s.download_image(&caller, &id).await? else {
        return Ok(no_content());
    };
    let mut response = Response::new(Body::from_stream(download.data));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = download.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(checksum) = download.checksum {
        if let Ok(value) = HeaderValue::from_str(&checksum) {
            headers.insert("content-md5", value);
        }
    }
    Ok(response)
}

async fn add_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.add_tag(&caller, &id, &tag).await?;
    Ok(no_content())
}

async fn delete_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_tag(&caller, &id, &tag).await?;
    Ok(no_content())
}

async fn deactivate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.deactivate_image(&caller, &id).await?;
    Ok(no_content())
}

async fn reactivate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.reactivate_image(&caller, &id).await?;
    Ok(no_content())
}

/// Staging belongs to the `glance-direct` import method, which is not offered.
async fn stage(_caller: Caller) -> Error {
    Error::not_found("'glance-direct' method is not available at this site.")
}
