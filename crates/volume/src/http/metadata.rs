//! `/v3/volumes/{id}/metadata` and `/v3/snapshots/{id}/metadata`: show, merge (`POST`),
//! replace (`PUT`), and one key at a time (`GET`/`PUT`/`DELETE .../metadata/{key}`). The two
//! collections share these handlers; the owner they act on is bound when the routes are made.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::{status, AppState, JsonBody};
use crate::service::input;
use crate::service::metadata::{no_such_key, MetadataOwner};
use crate::service::Ctx;

/// The metadata routes under `/{collection}/{id}` for resources of `owner`'s kind.
pub fn routes(collection: &str, owner: MetadataOwner) -> Router<AppState> {
    Router::new()
        .route(
            &format!("/{collection}/{{id}}/metadata"),
            get(move |s, ctx, id| show(s, ctx, id, owner))
                .post(move |s, ctx, id, body| set(s, ctx, id, body, owner, false))
                .put(move |s, ctx, id, body| set(s, ctx, id, body, owner, true)),
        )
        .route(
            &format!("/{collection}/{{id}}/metadata/{{key}}"),
            get(move |s, ctx, path| show_item(s, ctx, path, owner))
                .put(move |s, ctx, path, body| set_item(s, ctx, path, body, owner))
                .delete(move |s, ctx, path| delete_item(s, ctx, path, owner)),
        )
}

async fn show(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    owner: MetadataOwner,
) -> Result<Response> {
    let m = s.metadata(&ctx, owner, &id).await?;
    Ok(status(StatusCode::OK, json!({"metadata": m})))
}

/// `POST` merges into the metadata, `PUT` (`replace`) replaces all of it.
async fn set(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
    owner: MetadataOwner,
    replace: bool,
) -> Result<Response> {
    let meta = body
        .get("metadata")
        .ok_or_else(|| Error::bad_request("Malformed request body: 'metadata' is required."))?;
    let meta = input::metadata("metadata", Some(meta), false)?;
    let m = s.set_metadata(&ctx, owner, &id, meta, replace).await?;
    Ok(status(StatusCode::OK, json!({"metadata": m})))
}

async fn show_item(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    owner: MetadataOwner,
) -> Result<Response> {
    let m = s.metadata(&ctx, owner, &id).await?;
    match m.get(&key) {
        Some(v) => Ok(status(StatusCode::OK, json!({"meta": {key: v}}))),
        None => Err(no_such_key(owner, &id, &key)),
    }
}

async fn set_item(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
    owner: MetadataOwner,
) -> Result<Response> {
    let value = input::meta_item(&body, &key)?;
    let one = BTreeMap::from([(key.clone(), value.clone())]);
    s.set_metadata(&ctx, owner, &id, one, false).await?;
    Ok(status(StatusCode::OK, json!({"meta": {key: value}})))
}

async fn delete_item(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    owner: MetadataOwner,
) -> Result<Response> {
    s.delete_metadata(&ctx, owner, &id, &key).await?;
    Ok(StatusCode::OK.into_response())
}
