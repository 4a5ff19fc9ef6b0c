//! `/v3/types` (volume types, extra specs, access, encryption), `/v3/default-types` (3.62) and
//! `/v3/qos-specs`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use http::StatusCode;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::{accepted, status, AppState, JsonBody, ListRequest};
use crate::service::input;
use crate::service::views::{self, TypeShape};
use crate::service::Ctx;
use crate::store::types::EncryptionRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/types", get(list).post(create))
        .route("/types/{id}", get(show).put(update).delete(delete))
        .route("/types/{id}/action", post(access_action))
        .route("/types/{id}/os-volume-type-access", get(access_list))
        .route("/types/{id}/extra_specs", get(specs).post(set_specs))
        .route(
            "/types/{id}/extra_specs/{key}",
            get(spec).put(set_spec).delete(delete_spec),
        )
        .route(
            "/types/{id}/encryption",
            get(encryption).post(create_encryption),
        )
        .route(
            "/types/{id}/encryption/{spec}",
            get(encryption_item)
                .put(update_encryption)
                .delete(delete_encryption),
        )
        .route("/default-types", get(list_defaults))
        .route(
            "/default-types/{project}",
            get(show_default).put(set_default).delete(unset_default),
        )
        .route("/qos-specs", get(list_qos).post(create_qos))
        .route(
            "/qos-specs/{id}",
            get(show_qos).put(update_qos).delete(delete_qos),
        )
        .route("/qos-specs/{id}/delete_keys", put(unset_qos_keys))
        .route("/qos-specs/{id}/associations", get(qos_associations))
        .route("/qos-specs/{id}/associate", get(qos_associate))
        .route("/qos-specs/{id}/disassociate", get(qos_disassociate))
        .route(
            "/qos-specs/{id}/disassociate_all",
            get(qos_disassociate_all),
        )
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn list(State(s): State<AppState>, ctx: Ctx, list: ListRequest) -> Result<Response> {
    let types = s.list_types(&ctx, &list.params).await?;
    let items: Vec<Value> = types
        .iter()
        .map(|t| s.type_view(&ctx, t, TypeShape::Show))
        .collect();
    Ok(status(StatusCode::OK, json!({"volume_types": items})))
}

async fn show(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    let t = s.get_type(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"volume_type": s.type_view(&ctx, &t, TypeShape::Show)}),
    ))
}

async fn create(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let t = s.create_type(&ctx, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"volume_type": s.type_view(&ctx, &t, TypeShape::Created)}),
    ))
}

async fn update(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let t = s.update_type(&ctx, &id, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"volume_type": s.type_view(&ctx, &t, TypeShape::Updated)}),
    ))
}

async fn delete(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    s.delete_type(&ctx, &id).await?;
    Ok(accepted())
}

async fn access_action(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    s.change_type_access(&ctx, &id, &body).await?;
    Ok(accepted())
}

async fn access_list(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    let projects = s.type_access(&ctx, &id).await?;
    let items: Vec<Value> = projects
        .iter()
        .map(|p| json!({"volume_type_id": id, "project_id": p}))
        .collect();
    Ok(status(StatusCode::OK, json!({"volume_type_access": items})))
}

async fn specs(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    let specs = s.type_extra_specs(&ctx, &id).await?;
    Ok(status(StatusCode::OK, json!({"extra_specs": specs})))
}

async fn set_specs(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let specs = match body.get("extra_specs") {
        Some(v @ Value::Object(_)) => input::metadata("extra_specs", Some(v), false)?,
        _ => {
            return Err(Error::bad_request(
                "Malformed request body: 'extra_specs' object is required.",
            ))
        }
    };
    let set = s.set_type_extra_specs(&ctx, &id, specs).await?;
    Ok(status(StatusCode::OK, json!({"extra_specs": set})))
}

async fn spec(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    let v = s.type_extra_spec(&ctx, &id, &key).await?;
    Ok(status(StatusCode::OK, json!({key: v})))
}

async fn set_spec(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let Some(map) = body.as_object() else {
        return Err(Error::bad_request("Malformed request body."));
    };
    if map.len() != 1 {
        return Err(Error::bad_request("Request body contains too many items."));
    }
    if !map.contains_key(&key) {
        return Err(Error::bad_request("Request body and URI mismatch"));
    }
    let specs = input::metadata("extra_specs", Some(&body), false)?;
    let set = s.set_type_extra_specs(&ctx, &id, specs).await?;
    Ok(status(StatusCode::OK, json!(set)))
}

async fn delete_spec(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    s.delete_type_extra_spec(&ctx, &id, &key).await?;
    Ok(accepted())
}

fn encryption_view(e: &EncryptionRow) -> Value {
    json!({
        "volume_type_id": e.type_id,
        "encryption_id": e.encryption_id,
        "provider": e.provider,
        "cipher": e.cipher,
        "key_size": e.key_size,
        "control_location": e.control_location,
        "deleted": false,
        "created_at": views::wire_time(&e.created_at),
        "updated_at": views::wire_time_opt(&e.updated_at),
        "deleted_at": Value::Null,
    })
}

fn encryption_short(e: &EncryptionRow) -> Value {
    json!({
        "volume_type_id": e.type_id,
        "encryption_id": e.encryption_id,
        "provider": e.provider,
        "cipher": e.cipher,
        "key_size": e.key_size,
        "control_location": e.control_location,
    })
}

async fn encryption(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    let e = s.type_encryption(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        e.as_ref().map(encryption_view).unwrap_or_else(|| json!({})),
    ))
}

async fn encryption_item(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, spec)): Path<(String, String)>,
) -> Result<Response> {
    let e = s.type_encryption(&ctx, &id).await?.ok_or_else(|| {
        Error::not_found(format!(
            "Volume type encryption for type {id} does not exist."
        ))
    })?;
    let view = encryption_view(&e);
    match view.get(&spec) {
        Some(v) => Ok(status(
            StatusCode::OK,
            json!({spec: v.as_str().map(String::from).unwrap_or_else(|| v.to_string())}),
        )),
        None => Err(Error::not_found(format!(
            "The encryption of volume type {id} has no spec {spec}."
        ))),
    }
}

async fn create_encryption(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let e = s.set_type_encryption(&ctx, &id, &body, true).await?;
    Ok(status(
        StatusCode::OK,
        json!({"encryption": encryption_short(&e)}),
    ))
}

async fn update_encryption(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, _encryption_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let e = s.set_type_encryption(&ctx, &id, &body, false).await?;
    let mut out = Map::new();
    if let Some(given) = body.get("encryption").and_then(Value::as_object) {
        let short = encryption_short(&e);
        for k in given.keys() {
            if let Some(v) = short.get(k) {
                if ["provider", "cipher", "key_size", "control_location"].contains(&k.as_str()) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(status(StatusCode::OK, json!({"encryption": out})))
}

async fn delete_encryption(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((id, _encryption_id)): Path<(String, String)>,
) -> Result<Response> {
    s.delete_type_encryption(&ctx, &id).await?;
    Ok(accepted())
}

fn require_mv62(ctx: &Ctx) -> Result<()> {
    if ctx.mv.at_least(62) {
        Ok(())
    } else {
        Err(Error::not_found("The resource could not be found."))
    }
}

async fn list_defaults(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    require_mv62(&ctx)?;
    let items = s.list_default_types(&ctx).await?;
    Ok(status(StatusCode::OK, json!({"default_types": items})))
}

async fn show_default(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> Result<Response> {
    require_mv62(&ctx)?;
    let d = s.get_default_type(&ctx, &project).await?;
    Ok(status(StatusCode::OK, json!({"default_type": d})))
}

async fn set_default(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_mv62(&ctx)?;
    let d = s.set_default_type(&ctx, &project, &body).await?;
    Ok(status(StatusCode::OK, json!({"default_type": d})))
}

async fn unset_default(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(project): Path<String>,
) -> Result<Response> {
    require_mv62(&ctx)?;
    s.unset_default_type(&ctx, &project).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_qos(State(s): State<AppState>, ctx: Ctx) -> Result<Response> {
    let items: Vec<Value> = s.list_qos(&ctx).await?.iter().map(views::qos).collect();
    Ok(status(StatusCode::OK, json!({"qos_specs": items})))
}

async fn create_qos(
    State(s): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let q = s.create_qos(&ctx, &body).await?;
    Ok(status(
        StatusCode::OK,
        json!({"qos_specs": views::qos(&q), "links": views::qos_links(&ctx, &q)}),
    ))
}

async fn show_qos(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response> {
    let q = s.get_qos(&ctx, &id).await?;
    Ok(status(
        StatusCode::OK,
        json!({"qos_specs": views::qos(&q), "links": views::qos_links(&ctx, &q)}),
    ))
}

async fn update_qos(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let set: BTreeMap<String, String> = s.update_qos(&ctx, &id, &body).await?;
    Ok(status(StatusCode::OK, json!({"qos_specs": set})))
}

async fn delete_qos(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let force = param(&q, "force")
        .and_then(crate::service::query::parse_bool)
        .unwrap_or(false);
    s.delete_qos(&ctx, &id, force).await?;
    Ok(accepted())
}

async fn unset_qos_keys(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    s.unset_qos_keys(&ctx, &id, &body).await?;
    Ok(accepted())
}

async fn qos_associations(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    let items = s.qos_associations(&ctx, &id).await?;
    Ok(status(StatusCode::OK, json!({"qos_associations": items})))
}

async fn qos_associate(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let t = param(&q, "vol_type_id")
        .ok_or_else(|| Error::bad_request("Volume Type id must not be None."))?;
    s.qos_associate(&ctx, &id, Some(t), true).await?;
    Ok(accepted())
}

async fn qos_disassociate(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let t = param(&q, "vol_type_id")
        .ok_or_else(|| Error::bad_request("Volume Type id must not be None."))?;
    s.qos_associate(&ctx, &id, Some(t), false).await?;
    Ok(accepted())
}

async fn qos_disassociate_all(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response> {
    s.qos_associate(&ctx, &id, None, false).await?;
    Ok(accepted())
}
