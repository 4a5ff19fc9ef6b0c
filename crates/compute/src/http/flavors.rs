//! `/v2.1/flavors`: list, detail, show, create, update (2.55), delete; extra specs; access.

use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use http::{HeaderMap, StatusCode};
use nubo_common::{Caller, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_status, view_ctx, JsonBody, PublicUrl, Routes, Svc};
use crate::microversion::Microversion;
use crate::service::flavors::FlavorQuery;
use crate::service::views;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/flavors", get(list).post(create))
        .route("/v2.1/flavors/detail", get(detail))
        .route("/v2.1/flavors/{id}", get(show).put(update).delete(delete))
        .route("/v2.1/flavors/{id}/action", post(action))
        .route("/v2.1/flavors/{id}/os-flavor-access", get(access))
        .route(
            "/v2.1/flavors/{id}/os-extra_specs",
            get(list_specs).post(create_specs),
        )
        .route(
            "/v2.1/flavors/{id}/os-extra_specs/{key}",
            get(show_spec).put(update_spec).delete(delete_spec),
        )
}

#[derive(Deserialize, Default)]
struct ListParams {
    is_public: Option<String>,
    #[serde(rename = "minRam")]
    min_ram: Option<String>,
    #[serde(rename = "minDisk")]
    min_disk: Option<String>,
    sort_key: Option<String>,
    sort_dir: Option<String>,
    limit: Option<String>,
    marker: Option<String>,
}

fn query(p: ListParams) -> Result<FlavorQuery> {
    let is_public = match p
        .is_public
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => Some(true),
        Some("none") => None,
        Some("true" | "t" | "1" | "yes" | "y" | "on") => Some(true),
        Some("false" | "f" | "0" | "no" | "n" | "off") => Some(false),
        Some(other) => {
            return Err(Error::bad_request(format!(
                "Invalid is_public filter [{other}]"
            )))
        }
    };
    let int = |v: Option<String>, name: &str| -> Result<Option<i64>> {
        v.map(|s| {
            s.parse::<i64>()
                .map_err(|_| Error::bad_request(format!("Invalid {name} filter [{s}]")))
        })
        .transpose()
    };
    let limit = match p.limit {
        None => None,
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            Error::bad_request(format!(
                "Invalid input for query parameters limit. Value: {l}."
            ))
        })?),
    };
    Ok(FlavorQuery {
        is_public,
        min_ram: int(p.min_ram, "minRam")?,
        min_disk: int(p.min_disk, "minDisk")?,
        sort_key: p.sort_key,
        sort_dir: p.sort_dir,
        limit,
        marker: p.marker,
    })
}

fn links(
    ctx: &views::ViewCtx,
    items: &[crate::store::flavors::FlavorRow],
    q: &FlavorQuery,
    detail: bool,
) -> Option<Value> {
    let limit = q.limit?;
    if items.len() < limit || items.is_empty() {
        return None;
    }
    let last = &items[items.len() - 1].id;
    let path = if detail { "flavors/detail" } else { "flavors" };
    Some(
        json!([{"rel": "next", "href": format!("{}/v2.1/{path}?limit={limit}&marker={last}", ctx.base)}]),
    )
}

async fn list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Query(p): Query<ListParams>,
) -> Result<Response> {
    let q = query(p)?;
    let rows = state.list_flavors(&caller, &q).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    let mut body =
        json!({"flavors": rows.iter().map(|f| views::flavor_summary(&ctx, f)).collect::<Vec<_>>()});
    if let Some(l) = links(&ctx, &rows, &q, false) {
        body["flavors_links"] = l;
    }
    Ok(json_status(StatusCode::OK, body))
}

async fn detail(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Query(p): Query<ListParams>,
) -> Result<Response> {
    let q = query(p)?;
    let rows = state.list_flavors(&caller, &q).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    let mut body =
        json!({"flavors": rows.iter().map(|f| views::flavor_detail(&ctx, f)).collect::<Vec<_>>()});
    if let Some(l) = links(&ctx, &rows, &q, true) {
        body["flavors_links"] = l;
    }
    Ok(json_status(StatusCode::OK, body))
}

async fn show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Path(id): Path<String>,
) -> Result<Response> {
    let f = state.get_flavor(&caller, &id).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    Ok(json_status(
        StatusCode::OK,
        json!({"flavor": views::flavor_detail(&ctx, &f)}),
    ))
}

async fn create(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    if !mv.at_least(55) && body.pointer("/flavor/description").is_some() {
        return Err(Error::bad_request("Invalid input for field/attribute flavor. Additional properties are not allowed ('description' was unexpected)"));
    }
    let f = state.create_flavor(&caller, &body).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    Ok(json_status(
        StatusCode::OK,
        json!({"flavor": views::flavor_detail(&ctx, &f)}),
    ))
}

async fn update(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    if !mv.at_least(55) {
        return Err(Error::method_not_allowed());
    }
    let f = state.update_flavor(&caller, &id, &body).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    Ok(json_status(
        StatusCode::OK,
        json!({"flavor": views::flavor_detail(&ctx, &f)}),
    ))
}

async fn delete(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<StatusCode> {
    state.delete_flavor(&caller, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

fn access_body(id: &str, projects: Vec<String>) -> Value {
    json!({"flavor_access": projects.iter().map(|p| json!({"flavor_id": id, "tenant_id": p})).collect::<Vec<_>>()})
}

async fn access(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let projects = state.flavor_access(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, access_body(&id, projects)))
}

async fn action(
    state: Svc,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let tenant = |key: &str| -> Result<String> {
        body.get(key)
            .and_then(|a| a.get("tenant"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .ok_or_else(|| Error::bad_request(format!("Invalid input for field/attribute {key}.")))
    };
    let projects = if body.get("addTenantAccess").is_some() {
        state
            .add_flavor_access(&caller, &id, &tenant("addTenantAccess")?)
            .await?
    } else if body.get("removeTenantAccess").is_some() {
        state
            .remove_flavor_access(&caller, &id, &tenant("removeTenantAccess")?)
            .await?
    } else {
        return Err(Error::bad_request("Invalid action"));
    };
    Ok(json_status(StatusCode::OK, access_body(&id, projects)))
}

async fn list_specs(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let specs = state.extra_specs(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, json!({"extra_specs": specs})))
}

async fn create_specs(
    state: Svc,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let specs = body
        .get("extra_specs")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute extra_specs."))?;
    let changed = state.set_extra_specs(&caller, &id, specs).await?;
    Ok(json_status(StatusCode::OK, json!({"extra_specs": changed})))
}

async fn show_spec(
    state: Svc,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    let value = state.extra_spec(&caller, &id, &key).await?;
    Ok(json_status(StatusCode::OK, json!({ key: value })))
}

async fn update_spec(
    state: Svc,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let map = body
        .as_object()
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute extra_specs."))?;
    if map.len() != 1 {
        return Err(Error::bad_request("Request body contains too many items"));
    }
    if !map.contains_key(&key) {
        return Err(Error::bad_request("Request body and URI mismatch"));
    }
    let changed = state.set_extra_specs(&caller, &id, map).await?;
    Ok(json_status(StatusCode::OK, json!(changed)))
}

async fn delete_spec(
    state: Svc,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    state.delete_extra_spec(&caller, &id, &key).await?;
    Ok(StatusCode::OK)
}
