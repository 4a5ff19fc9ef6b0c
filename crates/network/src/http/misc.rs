//! Version discovery (`/`, public), the v2.0 resource index, `/extensions`, and the small
//! read-only collections clients probe: `/agents` (Nubo runs no Neutron agents),
//! `/service-providers` and `/availability_zones`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use http::HeaderMap;
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::{ctx, AppState, ListRequest};
use crate::extensions::EXTENSIONS;
use crate::query::{self, Schema};
use crate::types::AVAILABILITY_ZONE;

pub fn public_routes() -> Router<AppState> {
    Router::new().route("/", get(versions))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2.0", get(version))
        .route("/v2.0/", get(version))
        .route("/v2.0/extensions", get(list_extensions))
        .route("/v2.0/extensions/{alias}", get(show_extension))
        .route("/v2.0/agents", get(list_agents))
        .route("/v2.0/service-providers", get(list_service_providers))
        .route("/v2.0/availability_zones", get(list_availability_zones))
}

fn network_base(state: &AppState, headers: &HeaderMap) -> String {
    format!(
        "{}/network",
        nubo_common::http::request_base_url(headers, &state.settings().public_url)
    )
}

/// `GET /network`: the one version, `v2.0`.
pub(super) async fn versions(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = network_base(&s, &headers);
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{base}/v2.0/")}],
    }]}))
}

const RESOURCES: &[(&str, &str)] = &[
    ("network", "networks"),
    ("subnet", "subnets"),
    ("subnetpool", "subnetpools"),
    ("port", "ports"),
    ("router", "routers"),
    ("floatingip", "floatingips"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("rbac_policy", "rbac-policies"),
    ("quota", "quotas"),
];

/// `GET /network/v2.0/`: the top-level collections.
async fn version(State(s): State<AppState>, headers: HeaderMap, _caller: Caller) -> Json<Value> {
    let base = network_base(&s, &headers);
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(name, collection)| {
            json!({"name": name, "collection": collection,
                   "links": [{"rel": "self", "href": format!("{base}/v2.0/{collection}")}]})
        })
        .collect();
    Json(json!({ "resources": resources }))
}

fn extension_json(e: &crate::extensions::Extension) -> Value {
    json!({
        "alias": e.alias,
        "name": e.name,
        "description": e.description,
        "updated": e.updated,
        "links": [],
    })
}

async fn list_extensions(_caller: Caller) -> Json<Value> {
    Json(json!({"extensions": EXTENSIONS.iter().map(extension_json).collect::<Vec<_>>()}))
}

async fn show_extension(_caller: Caller, Path(alias): Path<String>) -> Result<Json<Value>> {
    EXTENSIONS
        .iter()
        .find(|e| e.alias == alias)
        .map(|e| Json(json!({ "extension": extension_json(e) })))
        .ok_or_else(|| {
            Error::not_found(format!("Extension with alias {alias} does not exist"))
                .with_kind("HTTPNotFound")
        })
}

/// No Neutron agents run in Nubo: the data plane is Nubo's own agent.
async fn list_agents(caller: Caller) -> Result<Json<Value>> {
    ctx(&caller)?;
    Ok(Json(json!({ "agents": [] })))
}

async fn list_service_providers(caller: Caller) -> Result<Json<Value>> {
    ctx(&caller)?;
    Ok(Json(json!({ "service_providers": [] })))
}

const AZ_SCHEMA: Schema = Schema {
    collection: "availability_zones",
    filters: &["name", "resource", "state"],
};

async fn list_availability_zones(caller: Caller, list: ListRequest) -> Result<Response> {
    ctx(&caller)?;
    let items = ["network", "router"]
        .iter()
        .map(|r| json!({"name": AVAILABILITY_ZONE, "resource": r, "state": "available"}))
        .collect();
    let page = query::apply(items, &list.params, &AZ_SCHEMA, &list.base())?;
    Ok(axum::response::IntoResponse::into_response(super::page(
        "availability_zones",
        page,
    )))
}
