//! `/v2.1/servers`: create, list, detail, show, update, delete, actions; metadata, tags,
//! addresses, interfaces, instance actions.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use http::{HeaderMap, HeaderValue, StatusCode};
use nubo_common::http::RequestId;
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Map, Value};

use super::server_extras::{with_floating, with_groups};
use super::{json_status, request_id, view_ctx, JsonBody, PublicUrl, Routes, Svc};
use crate::microversion::Microversion;
use crate::service::actions::PowerOp;
use crate::service::servers::{parse_create, ListQuery};
use crate::service::views;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/servers", get(list).post(create))
        .route("/v2.1/servers/detail", get(detail))
        .route("/v2.1/servers/{id}", get(show).put(update).delete(delete))
        .route("/v2.1/servers/{id}/action", post(action))
        .route(
            "/v2.1/servers/{id}/metadata",
            get(list_meta).put(replace_meta).post(merge_meta),
        )
        .route(
            "/v2.1/servers/{id}/metadata/{key}",
            get(show_meta).put(put_meta).delete(delete_meta),
        )
        .route(
            "/v2.1/servers/{id}/tags",
            get(list_tags).put(replace_tags).delete(delete_tags),
        )
        .route(
            "/v2.1/servers/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(delete_tag),
        )
        .route("/v2.1/servers/{id}/ips", get(ips))
        .route("/v2.1/servers/{id}/ips/{label}", get(ips_of))
        .route(
            "/v2.1/servers/{id}/os-interface",
            get(list_interfaces).post(attach_interface),
        )
        .route(
            "/v2.1/servers/{id}/os-interface/{port}",
            get(show_interface).delete(detach_interface),
        )
        .route("/v2.1/servers/{id}/os-instance-actions", get(list_actions))
        .route(
            "/v2.1/servers/{id}/os-instance-actions/{req}",
            get(show_action),
        )
        .route(
            "/v2.1/servers/{id}/os-server-password",
            get(password).delete(clear_password),
        )
}

fn parse_query(raw: Option<String>) -> Vec<(String, String)> {
    let raw = raw.unwrap_or_default();
    url_pairs(&raw)
}

/// `a=1&b=%20x` -> pairs (percent-decoded, `+` as space).
pub(crate) fn url_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn list_query(pairs: &[(String, String)]) -> ListQuery {
    let mut q = ListQuery::default();
    for (k, v) in pairs {
        let v = v.clone();
        match k.as_str() {
            "all_tenants" => {
                q.all_tenants = !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "0" | "false" | "f" | "no" | "off"
                )
            }
            "project_id" | "tenant_id" => q.project_id = Some(v),
            "name" => q.name = Some(v),
            "status" => q.status = Some(v),
            "image" => q.image = Some(v),
            "flavor" => q.flavor = Some(v),
            "host" | "node" => q.host = Some(v),
            "changes-since" => q.changes_since = Some(v),
            "changes-before" => q.changes_before = Some(v),
            "ip" => q.ip = Some(v),
            "ip6" => q.ip6 = Some(v),
            "reservation_id" => q.reservation_id = Some(v),
            "tags" => q.tags = Some(v),
            "tags-any" => q.tags_any = Some(v),
            "not-tags" => q.not_tags = Some(v),
            "not-tags-any" => q.not_tags_any = Some(v),
            "locked" => q.locked = Some(v),
            "key_name" => q.key_name = Some(v),
            "availability_zone" => q.availability_zone = Some(v),
            "user_id" => q.user_id = Some(v),
            "sort_key" => q.sort_keys.push(v),
            "sort_dir" => q.sort_dirs.push(v),
            "limit" => q.limit = Some(v),
            "marker" => q.marker = Some(v),
            _ => {}
        }
    }
    q
}

fn next_link(
    ctx: &views::ViewCtx,
    path: &str,
    pairs: &[(String, String)],
    rows: &[crate::store::servers::ServerRow],
    q: &ListQuery,
) -> Option<Value> {
    let limit: usize = q
        .limit
        .as_ref()
        .and_then(|l| l.parse().ok())
        .unwrap_or(1000);
    if rows.len() < limit || rows.is_empty() {
        return None;
    }
    let last = &rows[rows.len() - 1].id;
    let mut params: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if q.limit.is_none() {
        params.push(format!("limit={limit}"));
    }
    params.push(format!("marker={last}"));
    Some(json!([{"rel": "next", "href": format!("{}/v2.1/{path}?{}", ctx.base, params.join("&"))}]))
}

async fn list(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let pairs = parse_query(raw);
    let q = list_query(&pairs);
    let rows = state.list_servers(&caller, &q).await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    let items: Vec<Value> = rows
        .iter()
        .map(|r| views::server_summary(&ctx, r))
        .collect();
    let mut body = Value::Object(Map::from_iter([(
        "servers".to_string(),
        Value::Array(items),
    )]));
    if let Some(l) = next_link(&ctx, "servers", &pairs, &rows, &q) {
        body["servers_links"] = l;
    }
    Ok(json_status(StatusCode::OK, body))
}

async fn detail(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let pairs = parse_query(raw);
    let q = list_query(&pairs);
    let rows = state.list_servers(&caller, &q).await?;
    let mut ctx = view_ctx(&headers, &public, mv, &caller);
    with_floating(&state, &mut ctx, &rows.iter().collect::<Vec<_>>()).await?;
    let statuses = if ctx.admin && mv.at_least(16) {
        state.host_statuses().await?
    } else {
        BTreeMap::new()
    };
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let hs = r
                .host
                .as_ref()
                .map(|h| statuses.get(h).map(String::as_str).unwrap_or("UNKNOWN"));
            views::server_detail(&ctx, r, hs, false)
        })
        .collect();
    // Moved in, not through `json!` (which would serialize a deep copy of every server).
    let mut body = Value::Object(Map::from_iter([(
        "servers".to_string(),
        Value::Array(items),
    )]));
    if let Some(l) = next_link(&ctx, "servers/detail", &pairs, &rows, &q) {
        body["servers_links"] = l;
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
    let row = state.get_server(&caller, &id).await?;
    let hs = state.host_status(&row).await?;
    let mut ctx = view_ctx(&headers, &public, mv, &caller);
    with_floating(&state, &mut ctx, &[&row]).await?;
    let mut v = views::server_detail(&ctx, &row, hs.as_deref(), true);
    with_groups(&state, &mut v, &row.id).await?;
    Ok(json_status(StatusCode::OK, json!({ "server": v })))
}

async fn create(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    rid: Option<Extension<RequestId>>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let req = parse_create(&body, mv)?;
    let created = state
        .create_servers(&caller, req, &request_id(&rid))
        .await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    if created.return_reservation_id {
        return Ok(json_status(
            StatusCode::ACCEPTED,
            json!({"reservation_id": created.reservation_id}),
        ));
    }
    let first = &created.servers[0];
    let mut server = json!({
        "id": first.id,
        "links": views::server_summary(&ctx, first)["links"].clone(),
        "OS-DCF:diskConfig": first.disk_config,
        "adminPass": created.admin_pass,
    });
    if !first.security_groups.is_empty() {
        server["security_groups"] = json!(first
            .security_groups
            .iter()
            .map(|g| json!({"name": g}))
            .collect::<Vec<_>>());
    }
    let mut response = json_status(StatusCode::ACCEPTED, json!({ "server": server }));
    if let Ok(v) = HeaderValue::from_str(&format!("{}/v2.1/servers/{}", ctx.base, first.id)) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(response)
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
    let row = state.update_server(&caller, &id, &body, mv).await?;
    let hs = state.host_status(&row).await?;
    let mut ctx = view_ctx(&headers, &public, mv, &caller);
    with_floating(&state, &mut ctx, &[&row]).await?;
    let mut v = views::server_update_view(&ctx, &row, hs.as_deref());
    with_groups(&state, &mut v, &row.id).await?;
    Ok(json_status(StatusCode::OK, json!({ "server": v })))
}

async fn delete(
    state: Svc,
    caller: Caller,
    Path(id): Path<String>,
    rid: Option<Extension<RequestId>>,
) -> Result<StatusCode> {
    state.delete_server(&caller, &id, &request_id(&rid)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn length_of(v: Option<&Value>) -> Result<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(-1) => Ok(None),
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            _ => Err(Error::bad_request(
                "Invalid input for field/attribute length.",
            )),
        },
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(-1) => Ok(None),
            Ok(n) if n >= 0 => Ok(Some(n as u64)),
            _ => Err(Error::bad_request(
                "Invalid input for field/attribute length.",
            )),
        },
        Some(_) => Err(Error::bad_request(
            "Invalid input for field/attribute length.",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
async fn action(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let rid = request_id(&rid);
    let obj = body
        .as_object()
        .ok_or_else(|| Error::bad_request("Malformed request body"))?;
    let Some(name) = obj.keys().next().cloned() else {
        return Err(Error::bad_request("Malformed request body"));
    };
    let arg = obj.get(&name).cloned().unwrap_or(Value::Null);
    // Nova looks the server up before it looks at the action: a missing one is a 404.
    state.get_server(&caller, &id).await?;
    match name.as_str() {
        "os-start" => {
            state
                .power_action(&caller, &id, PowerOp::Start, &rid)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-stop" => {
            state
                .power_action(&caller, &id, PowerOp::Stop, &rid)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "pause" => {
            state
                .power_action(&caller, &id, PowerOp::Pause, &rid)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "unpause" => {
            state
                .power_action(&caller, &id, PowerOp::Unpause, &rid)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "suspend" => {
            state
                .power_action(&caller, &id, PowerOp::Suspend, &rid)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "resume" => {
            state
                .power_action(&caller, &id, PowerOp::Resume, &rid)
                .await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "reboot" => {
            let kind = arg.get("type").and_then(Value::as_str).unwrap_or("");
            let op = match kind.to_ascii_uppercase().as_str() {
                "SOFT" => PowerOp::SoftReboot,
                "HARD" => PowerOp::HardReboot,
                _ => {
                    return Err(Error::bad_request(
                        "Invalid input for field/attribute type.",
                    ))
                }
            };
            state.power_action(&caller, &id, op, &rid).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "lock" => {
            let reason = if mv.at_least(73) {
                match arg.get("locked_reason") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(r)) if r.len() <= 255 => Some(r.clone()),
                    Some(_) => {
                        return Err(Error::bad_request(
                            "Invalid input for field/attribute locked_reason.",
                        ))
                    }
                }
            } else {
                None
            };
            state.lock_server(&caller, &id, reason, &rid).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "unlock" => {
            state.unlock_server(&caller, &id, &rid).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "forceDelete" => {
            state.delete_server(&caller, &id, &rid).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-resetState" => {
            let st = arg.get("state").and_then(Value::as_str).unwrap_or("");
            state.reset_state(&caller, &id, st).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-getConsoleOutput" => {
            let length = length_of(arg.get("length"))?;
            let output = state.console_output(&caller, &id, length).await?;
            Ok(json_status(StatusCode::OK, json!({ "output": output })))
        }
        "createImage" => {
            let image_id = state.create_image(&caller, &id, &body, &rid).await?;
            let ctx = view_ctx(&headers, &public, mv, &caller);
            let location = format!(
                "{}/images/{image_id}",
                ctx.base.trim_end_matches("/compute").to_string() + "/image/v2"
            );
            let mut response = if mv.at_least(45) {
                json_status(StatusCode::ACCEPTED, json!({ "image_id": image_id }))
            } else {
                StatusCode::ACCEPTED.into_response()
            };
            if !mv.at_least(45) {
                if let Ok(v) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(http::header::LOCATION, v);
                }
            }
            Ok(response)
        }
        "rebuild" => {
            let (row, pass) = state.rebuild_server(&caller, &id, &body, mv, &rid).await?;
            let mut ctx = view_ctx(&headers, &public, mv, &caller);
            with_floating(&state, &mut ctx, &[&row]).await?;
            let hs = state.host_status(&row).await?;
            let mut v = views::server_update_view(&ctx, &row, hs.as_deref());
            with_groups(&state, &mut v, &row.id).await?;
            if mv.at_least(54) {
                v["key_name"] = json!(row.key_name);
            }
            if mv.at_least(57) {
                v["user_data"] = json!(row.user_data);
            }
            if let Some(o) = v.as_object_mut() {
                o.remove("OS-EXT-SRV-ATTR:user_data");
            }
            v["adminPass"] = json!(pass);
            Ok(json_status(StatusCode::ACCEPTED, json!({ "server": v })))
        }
        other => {
            let base = view_ctx(&headers, &public, mv, &caller).base;
            super::server_extras::action(&state, &caller, mv, &base, &rid, &id, other, &body).await
        }
    }
}

// ----- metadata -----

async fn list_meta(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let m = state.server_metadata(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, json!({ "metadata": m })))
}

fn meta_body(body: &Value, key: &str) -> Result<BTreeMap<String, String>> {
    let m = body
        .get(key)
        .ok_or_else(|| Error::bad_request("Malformed request body"))?;
    crate::service::servers::parse_metadata(m)
}

async fn replace_meta(
    state: Svc,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let m = state
        .set_server_metadata(&caller, &id, meta_body(&body, "metadata")?, true)
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "metadata": m })))
}

async fn merge_meta(
    state: Svc,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let m = state
        .set_server_metadata(&caller, &id, meta_body(&body, "metadata")?, false)
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "metadata": m })))
}

async fn show_meta(
    state: Svc,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response> {
    let m = state.server_metadata(&caller, &id).await?;
    let v = m
        .get(&key)
        .ok_or_else(|| Error::not_found("Metadata item was not found"))?;
    Ok(json_status(StatusCode::OK, json!({"meta": { key: v }})))
}

async fn put_meta(
    state: Svc,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let m = meta_body(&body, "meta")?;
    if m.len() > 1 {
        return Err(Error::bad_request("Request body contains too many items"));
    }
    if !m.contains_key(&key) {
        return Err(Error::bad_request("Request body and URI mismatch"));
    }
    state
        .set_server_metadata(&caller, &id, m.clone(), false)
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "meta": m })))
}

async fn delete_meta(
    state: Svc,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    state.delete_server_metadata(&caller, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- tags (2.26) -----

fn require_26(mv: Microversion) -> Result<()> {
    if mv.at_least(26) {
        Ok(())
    } else {
        Err(Error::not_found("The resource could not be found."))
    }
}

async fn list_tags(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    require_26(mv)?;
    let t = state.server_tags(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, json!({ "tags": t })))
}

async fn replace_tags(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    require_26(mv)?;
    let tags: Vec<String> = body
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute tags."))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(String::from)
                .ok_or_else(|| Error::bad_request("Invalid input for field/attribute tags."))
        })
        .collect::<Result<_>>()?;
    let (t, _) = state
        .set_server_tags(&caller, &id, Some(tags), None, None)
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "tags": t })))
}

async fn delete_tags(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    require_26(mv)?;
    state
        .set_server_tags(&caller, &id, Some(Vec::new()), None, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn check_tag(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode> {
    require_26(mv)?;
    let t = state.server_tags(&caller, &id).await?;
    if t.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found(format!(
            "Tag '{tag}' could not be found for instance {id}."
        )))
    }
}

async fn add_tag(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    headers: HeaderMap,
    Extension(public): Extension<PublicUrl>,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response> {
    require_26(mv)?;
    let (_, created) = state
        .set_server_tags(&caller, &id, None, Some(tag.clone()), None)
        .await?;
    let ctx = view_ctx(&headers, &public, mv, &caller);
    let mut response = if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}/v2.1/servers/{id}/tags/{tag}", ctx.base)) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(response)
}

async fn delete_tag(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode> {
    require_26(mv)?;
    state
        .set_server_tags(&caller, &id, None, None, Some(tag))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- addresses -----

async fn ips(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let row = state.get_server(&caller, &id).await?;
    let floating = state.floating_ips_by_port(&[&row]).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"addresses": views::addresses(&row, false, &floating)}),
    ))
}

async fn ips_of(
    state: Svc,
    caller: Caller,
    Path((id, label)): Path<(String, String)>,
) -> Result<Response> {
    let row = state.get_server(&caller, &id).await?;
    let floating = state.floating_ips_by_port(&[&row]).await?;
    let all = views::addresses(&row, false, &floating);
    let list = all
        .get(&label)
        .ok_or_else(|| Error::not_found("There is no such network label"))?;
    Ok(json_status(StatusCode::OK, json!({ label: list })))
}

// ----- interfaces -----

fn strip_tag(mut v: Value, mv: Microversion) -> Value {
    if !mv.at_least(70) {
        if let Some(o) = v.as_object_mut() {
            o.remove("tag");
        }
    }
    v
}

async fn list_interfaces(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    let items = state.interfaces(&caller, &id).await?;
    let items: Vec<Value> = items.into_iter().map(|v| strip_tag(v, mv)).collect();
    Ok(json_status(
        StatusCode::OK,
        json!({ "interfaceAttachments": items }),
    ))
}

async fn show_interface(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, port)): Path<(String, String)>,
) -> Result<Response> {
    let v = state.interface(&caller, &id, &port).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({ "interfaceAttachment": strip_tag(v, mv) }),
    ))
}

async fn attach_interface(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let v = state.attach_interface(&caller, &id, &body).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({ "interfaceAttachment": strip_tag(v, mv) }),
    ))
}

async fn detach_interface(
    state: Svc,
    caller: Caller,
    Path((id, port)): Path<(String, String)>,
) -> Result<StatusCode> {
    state.detach_interface(&caller, &id, &port).await?;
    Ok(StatusCode::ACCEPTED)
}

// ----- instance actions -----

fn action_time(t: &str) -> String {
    nubo_common::time::parse(t)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

fn action_view(a: &crate::store::actions::ActionRow, mv: Microversion) -> Value {
    let mut v = json!({
        "action": a.action,
        "request_id": a.request_id,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "start_time": action_time(&a.start_time),
        "message": a.message,
        "instance_uuid": a.server_id,
    });
    if mv.at_least(58) {
        v["updated_at"] = json!(action_time(&a.updated_at));
    }
    v
}

async fn list_actions(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    let actions = state.instance_actions_at(&caller, &id, mv).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"instanceActions": actions.iter().map(|a| action_view(a, mv)).collect::<Vec<_>>()}),
    ))
}

async fn show_action(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path((id, req)): Path<(String, String)>,
) -> Result<Response> {
    let (a, events) = state.instance_action_at(&caller, &id, &req, mv).await?;
    let mut v = action_view(&a, mv);
    let admin = caller.is_admin();
    v["events"] = json!(events
        .iter()
        .map(|e| {
            let mut ev = json!({
                "event": e.event,
                "start_time": action_time(&e.start_time),
                "finish_time": e.finish_time.as_deref().map(action_time),
                "result": e.result,
            });
            if admin {
                ev["traceback"] = json!(e.traceback);
            }
            if mv.at_least(62) {
                ev["hostId"] = json!(views::host_id(&a.project_id, e.host.as_deref()));
                if admin {
                    ev["host"] = json!(e.host.clone().unwrap_or_default());
                }
            }
            if mv.at_least(51) && !admin {
                if let Some(o) = ev.as_object_mut() {
                    o.remove("traceback");
                }
            }
            ev
        })
        .collect::<Vec<_>>());
    Ok(json_status(StatusCode::OK, json!({ "instanceAction": v })))
}

async fn password(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let password = state.server_password(&caller, &id).await?;
    Ok(json_status(StatusCode::OK, json!({ "password": password })))
}

async fn clear_password(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<StatusCode> {
    state.clear_server_password(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
