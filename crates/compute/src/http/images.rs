//! `/v2.1/images` (up to 2.35): Nova's proxy to Glance, and image metadata.

use axum::extract::{Path, RawQuery};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::servers::url_pairs;
use super::{compute_base, json_status, JsonBody, PublicUrl, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/images", get(list))
        .route("/v2.1/images/detail", get(detail))
        .route("/v2.1/images/{id}", get(show).delete(delete))
        .route(
            "/v2.1/images/{id}/metadata",
            get(list_meta).put(replace_meta).post(merge_meta),
        )
        .route(
            "/v2.1/images/{id}/metadata/{key}",
            get(show_meta).put(put_meta).delete(delete_meta),
        )
}

fn require_235(mv: Microversion) -> Result<()> {
    if mv.at_least(36) {
        Err(Error::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

fn status(s: &str) -> &'static str {
    match s {
        "active" => "ACTIVE",
        "queued" | "saving" | "uploading" | "importing" => "SAVING",
        "killed" | "deactivated" => "ERROR",
        _ => "DELETED",
    }
}

fn view(base: &str, img: &nubo_image::service::compute::BootImage, detail: bool) -> Value {
    let i = &img.image;
    let id = i.id.to_string();
    let links = json!([
        {"rel": "self", "href": format!("{base}/v2.1/images/{id}")},
        {"rel": "bookmark", "href": format!("{base}/images/{id}")},
        {"rel": "alternate", "type": "application/vnd.openstack.image", "href": format!("{}/image/v2/images/{id}", base.trim_end_matches("/compute"))},
    ]);
    let mut v = json!({"id": id, "name": i.name.clone().unwrap_or_default(), "links": links});
    if detail {
        let t = |s: &str| {
            nubo_common::time::parse(s)
                .map(nubo_common::time::seconds_format)
                .unwrap_or_default()
        };
        let st = status(i.status.as_str());
        v["status"] = json!(st);
        v["progress"] = json!(if st == "ACTIVE" {
            100
        } else if st == "SAVING" {
            25
        } else {
            0
        });
        v["minRam"] = json!(i.min_ram);
        v["minDisk"] = json!(i.min_disk);
        v["created"] = json!(t(&i.created_at));
        v["updated"] = json!(t(&i.updated_at));
        v["metadata"] = json!(i.properties);
        v["OS-EXT-IMG-SIZE:size"] = json!(i.size.unwrap_or(0));
        if let Some(server) = i.properties.get("instance_uuid") {
            v["server"] = json!({"id": server, "links": [
                {"rel": "self", "href": format!("{base}/v2.1/servers/{server}")},
                {"rel": "bookmark", "href": format!("{base}/servers/{server}")},
            ]});
        }
    }
    v
}

async fn list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    require_235(mv)?;
    let images = state
        .proxy_images(&caller, &url_pairs(&raw.unwrap_or_default()))
        .await?;
    let base = compute_base(&headers, &public);
    Ok(json_status(
        StatusCode::OK,
        json!({"images": images.iter().map(|i| view(&base, i, false)).collect::<Vec<_>>()}),
    ))
}

async fn detail(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    require_235(mv)?;
    let images = state
        .proxy_images(&caller, &url_pairs(&raw.unwrap_or_default()))
        .await?;
    let base = compute_base(&headers, &public);
    Ok(json_status(
        StatusCode::OK,
        json!({"images": images.iter().map(|i| view(&base, i, true)).collect::<Vec<_>>()}),
    ))
}

async fn show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Path(id): Path<String>,
) -> Result<Response> {
    require_235(mv)?;
    let image = state.proxy_image(&caller, &id).await?;
    let base = compute_base(&headers, &public);
    Ok(json_status(
        StatusCode::OK,
        json!({"image": view(&base, &image, true)}),
    ))
}

async fn delete(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    require_235(mv)?;
    state.proxy_delete_image(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_meta(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    require_235(mv)?;
    let image = state.proxy_image(&caller, &id).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"metadata": image.image.properties}),
    ))
}

fn meta_of(body: &Value, key: &str) -> Result<std::collections::BTreeMap<String, String>> {
    crate::service::servers::parse_metadata(
        body.get(key)
            .ok_or_else(|| Error::bad_request("Malformed request body"))?,
    )
}

async fn replace_meta(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_235(mv)?;
    let m = state
        .proxy_set_image_metadata(&caller, &id, &meta_of(&body, "metadata")?, true)
        .await?;
    Ok(json_status(StatusCode::OK, json!({"metadata": m})))
}

async fn merge_meta(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_235(mv)?;
    let m = state
        .proxy_set_image_metadata(&caller, &id, &meta_of(&body, "metadata")?, false)
        .await?;
    Ok(json_status(StatusCode::OK, json!({"metadata": m})))
}

async fn show_meta(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    require_235(mv)?;
    let image = state.proxy_image(&caller, &id).await?;
    let v = image
        .image
        .properties
        .get(&key)
        .ok_or_else(|| Error::not_found("Metadata item was not found"))?;
    Ok(json_status(StatusCode::OK, json!({"meta": {key: v}})))
}

async fn put_meta(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_235(mv)?;
    let m = meta_of(&body, "meta")?;
    if m.len() != 1 || !m.contains_key(&key) {
        return Err(Error::bad_request("Request body and URI mismatch"));
    }
    state
        .proxy_set_image_metadata(&caller, &id, &m, false)
        .await?;
    Ok(json_status(StatusCode::OK, json!({"meta": m})))
}

async fn delete_meta(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    require_235(mv)?;
    state
        .proxy_delete_image_metadata(&caller, &id, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
