//! `/v2.1/os-keypairs`: list, show, create (import or generate), delete.

use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use http::{HeaderMap, StatusCode};
use nubo_common::{Caller, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_status, view_ctx, JsonBody, PublicUrl, Routes, Svc};
use crate::microversion::Microversion;
use crate::service::keypairs::NewKeypair;
use crate::service::views;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/os-keypairs", get(list).post(create))
        .route("/v2.1/os-keypairs/{name}", get(show).delete(delete))
}

#[derive(Deserialize, Default)]
struct Params {
    user_id: Option<String>,
    limit: Option<String>,
    marker: Option<String>,
}

async fn list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Query(p): Query<Params>,
) -> Result<Response> {
    let user = if mv.at_least(10) {
        p.user_id.as_deref()
    } else {
        None
    };
    let limit = match (&p.limit, mv.at_least(35)) {
        (Some(l), true) => Some(l.parse::<usize>().map_err(|_| {
            Error::bad_request(format!(
                "Invalid input for query parameters limit. Value: {l}."
            ))
        })?),
        _ => None,
    };
    let marker = if mv.at_least(35) {
        p.marker.as_deref()
    } else {
        None
    };
    let rows = state.list_keypairs(&caller, user, limit, marker).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    let mut body = json!({"keypairs": rows.iter().map(|k| json!({"keypair": views::keypair_summary(&ctx, k)})).collect::<Vec<_>>()});
    if let (Some(limit), Some(last)) = (limit, rows.last()) {
        if rows.len() == limit {
            body["keypairs_links"] = json!([{"rel": "next", "href": format!("{}/v2.1/os-keypairs?limit={limit}&marker={}", ctx.base, last.name)}]);
        }
    }
    Ok(json_status(StatusCode::OK, body))
}

async fn show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response> {
    let user = if mv.at_least(10) {
        p.user_id.as_deref()
    } else {
        None
    };
    let k = state.get_keypair(&caller, &name, user).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    Ok(json_status(
        StatusCode::OK,
        json!({"keypair": views::keypair_detail(&ctx, &k)}),
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
    let k = body
        .get("keypair")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute keypair."))?;
    let allowed: &[&str] = if mv.at_least(10) {
        &["name", "public_key", "type", "user_id"]
    } else if mv.at_least(2) {
        &["name", "public_key", "type"]
    } else {
        &["name", "public_key"]
    };
    if let Some(extra) = k.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(Error::bad_request(format!(
            "Invalid input for field/attribute keypair. Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let name = k
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute name."))?
        .to_string();
    let public_key = match k.get("public_key") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field/attribute public_key.",
            ))
        }
    };
    if public_key.is_none() && mv.at_least(92) {
        return Err(Error::bad_request(
            "Invalid input for field/attribute keypair. 'public_key' is a required property",
        ));
    }
    let kind = match k.get("type").and_then(Value::as_str) {
        None => "ssh".to_string(),
        Some(t @ ("ssh" | "x509")) => t.to_string(),
        Some(_) => {
            return Err(Error::bad_request(
                "Invalid input for field/attribute type.",
            ))
        }
    };
    let new = NewKeypair {
        name,
        public_key,
        kind,
        user_id: k.get("user_id").and_then(Value::as_str).map(String::from),
    };
    let (row, private) = state.create_keypair(&caller, new, mv.at_least(92)).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    let mut v = views::keypair_summary(&ctx, &row);
    v["user_id"] = json!(row.user_id);
    if let Some(p) = private {
        v["private_key"] = json!(p);
    }
    let status = if mv.at_least(2) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_status(status, json!({"keypair": v})))
}

async fn delete(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<StatusCode> {
    let user = if mv.at_least(10) {
        p.user_id.as_deref()
    } else {
        None
    };
    state.delete_keypair(&caller, &name, user).await?;
    Ok(if mv.at_least(2) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}
