//! Limits, quota sets, availability zones, hypervisors, services, simple tenant usage,
//! extensions.

use axum::extract::{Path, Query, RawQuery};
use axum::response::Response;
use axum::routing::{get, put};
use http::StatusCode;
use nubo_common::{Caller, Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::servers::url_pairs;
use super::{json_status, JsonBody, Routes, Svc};
use crate::microversion::Microversion;

pub(super) fn routes() -> Routes {
    Routes::new()
        .route("/v2.1/limits", get(limits))
        .route(
            "/v2.1/os-quota-sets/{project}",
            get(quota_show).put(quota_update).delete(quota_delete),
        )
        .route("/v2.1/os-quota-sets/{project}/detail", get(quota_detail))
        .route(
            "/v2.1/os-quota-sets/{project}/defaults",
            get(quota_defaults),
        )
        .route("/v2.1/os-availability-zone", get(az))
        .route("/v2.1/os-availability-zone/detail", get(az_detail))
        .route("/v2.1/os-hypervisors", get(hypervisors))
        .route("/v2.1/os-hypervisors/detail", get(hypervisors_detail))
        .route("/v2.1/os-hypervisors/statistics", get(hypervisor_stats))
        .route("/v2.1/os-hypervisors/{id}", get(hypervisor))
        .route("/v2.1/os-hypervisors/{id}/search", get(hypervisor_search))
        .route("/v2.1/os-hypervisors/{id}/servers", get(hypervisor_servers))
        .route("/v2.1/os-hypervisors/{id}/uptime", get(hypervisor_uptime))
        .route("/v2.1/os-services", get(services))
        .route(
            "/v2.1/os-services/{id}",
            put(service_update).delete(service_delete),
        )
        .route("/v2.1/os-simple-tenant-usage", get(usages))
        .route("/v2.1/os-simple-tenant-usage/{project}", get(usage))
        .route("/v2.1/extensions", get(extensions))
        .route("/v2.1/extensions/{alias}", get(extension))
}

#[derive(Deserialize, Default)]
struct LimitParams {
    tenant_id: Option<String>,
}

async fn limits(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Query(p): Query<LimitParams>,
) -> Result<Response> {
    let v = state.limits(&caller, mv, p.tenant_id.as_deref()).await?;
    Ok(json_status(StatusCode::OK, v))
}

async fn quota_show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(project): Path<String>,
) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.quota_set(&caller, &project, mv, false, false).await?,
    ))
}

async fn quota_detail(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(project): Path<String>,
) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.quota_set(&caller, &project, mv, true, false).await?,
    ))
}

async fn quota_defaults(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(project): Path<String>,
) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.quota_set(&caller, &project, mv, false, true).await?,
    ))
}

async fn quota_update(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.update_quota_set(&caller, &project, mv, &body).await?,
    ))
}

async fn quota_delete(
    state: Svc,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<StatusCode> {
    state.delete_quota_set(&caller, &project).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn az(state: Svc, caller: Caller) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.availability_zones(&caller, false).await?,
    ))
}

async fn az_detail(state: Svc, caller: Caller) -> Result<Response> {
    Ok(json_status(
        StatusCode::OK,
        state.availability_zones(&caller, true).await?,
    ))
}

#[derive(Deserialize, Default)]
struct HypervisorParams {
    hypervisor_hostname_pattern: Option<String>,
    with_servers: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        )
    })
}

async fn hypervisors(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Query(p): Query<HypervisorParams>,
) -> Result<Response> {
    let with = mv.at_least(53) && truthy(&p.with_servers);
    let list = state
        .list_hypervisors(
            &caller,
            false,
            mv,
            p.hypervisor_hostname_pattern.as_deref(),
            with,
        )
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "hypervisors": list })))
}

async fn hypervisors_detail(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Query(p): Query<HypervisorParams>,
) -> Result<Response> {
    let with = mv.at_least(53) && truthy(&p.with_servers);
    let list = state
        .list_hypervisors(
            &caller,
            true,
            mv,
            p.hypervisor_hostname_pattern.as_deref(),
            with,
        )
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "hypervisors": list })))
}

async fn hypervisor_stats(state: Svc, caller: Caller, mv: Microversion) -> Result<Response> {
    if mv.at_least(88) {
        return Err(Error::not_found("The resource could not be found."));
    }
    Ok(json_status(
        StatusCode::OK,
        state.hypervisor_statistics(&caller).await?,
    ))
}

async fn hypervisor(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    Query(p): Query<HypervisorParams>,
) -> Result<Response> {
    let with = mv.at_least(53) && truthy(&p.with_servers);
    let v = state.get_hypervisor(&caller, &id, mv, with).await?;
    Ok(json_status(StatusCode::OK, json!({ "hypervisor": v })))
}

async fn hypervisor_search(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(pattern): Path<String>,
) -> Result<Response> {
    if mv.at_least(53) {
        return Err(Error::not_found("The resource could not be found."));
    }
    let list = state
        .list_hypervisors(&caller, false, mv, Some(&pattern), false)
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "hypervisors": list })))
}

async fn hypervisor_servers(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(pattern): Path<String>,
) -> Result<Response> {
    if mv.at_least(53) {
        return Err(Error::not_found("The resource could not be found."));
    }
    let list = state
        .list_hypervisors(&caller, false, mv, Some(&pattern), true)
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "hypervisors": list })))
}

async fn hypervisor_uptime(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
) -> Result<Response> {
    if mv.at_least(88) {
        return Err(Error::not_found("The resource could not be found."));
    }
    let mut v = state.get_hypervisor(&caller, &id, mv, false).await?;
    let mut out = json!({
        "id": v["id"].take(),
        "hypervisor_hostname": v["hypervisor_hostname"].take(),
        "state": v["state"].take(),
        "status": v["status"].take(),
        "uptime": " 00:00:00 up 1 day,  0 users,  load average: 0.00, 0.00, 0.00",
    });
    if out["id"].is_null() {
        out["id"] = json!(id);
    }
    Ok(json_status(StatusCode::OK, json!({ "hypervisor": out })))
}

async fn services(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let pairs = url_pairs(&raw.unwrap_or_default());
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let list = state
        .list_services(
            &caller,
            mv,
            get("host").as_deref(),
            get("binary").as_deref(),
        )
        .await?;
    Ok(json_status(StatusCode::OK, json!({ "services": list })))
}

async fn service_update(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    if mv.at_least(53) {
        let forced = match body.get("forced_down") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute forced_down.",
                ))
            }
        };
        let status = field("status");
        if status.is_none() && forced.is_none() {
            return Err(Error::bad_request(
                "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
            ));
        }
        let reason = field("disabled_reason");
        if reason.is_some() && status.as_deref() != Some("disabled") {
            return Err(Error::bad_request(
                "Specifying 'disabled_reason' with status 'enabled' is invalid.",
            ));
        }
        let v = state
            .update_service(
                &caller,
                mv,
                Some(&id),
                None,
                status.as_deref(),
                reason.as_deref(),
                forced,
            )
            .await?;
        return Ok(json_status(StatusCode::OK, json!({ "service": v })));
    }
    // Before 2.53: PUT /os-services/{enable|disable|disable-log-reason|force-down} {host, binary}.
    let host = field("host")
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute host."))?;
    let binary = field("binary").unwrap_or_else(|| "nova-compute".into());
    let (status, reason, forced) = match id.as_str() {
        "enable" => (Some("enabled"), None, None),
        "disable" => (Some("disabled"), None, None),
        "disable-log-reason" => (Some("disabled"), field("disabled_reason"), None),
        "force-down" => (
            None,
            None,
            Some(
                body.get("forced_down")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            ),
        ),
        _ => return Err(Error::not_found("Unknown action")),
    };
    let v = state
        .update_service(
            &caller,
            mv,
            None,
            Some(&host),
            status,
            reason.as_deref(),
            forced,
        )
        .await?;
    let mut out = json!({"host": host, "binary": binary});
    if let Some(s) = status {
        out["status"] = json!(s);
    }
    if id == "disable-log-reason" {
        out["disabled_reason"] = v["disabled_reason"].clone();
    }
    if let Some(f) = forced {
        out["forced_down"] = json!(f);
    }
    Ok(json_status(StatusCode::OK, json!({ "service": out })))
}

async fn service_delete(state: Svc, caller: Caller, Path(id): Path<String>) -> Result<StatusCode> {
    state.delete_service(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct UsageParams {
    start: Option<String>,
    end: Option<String>,
    detailed: Option<String>,
}

async fn usages(state: Svc, caller: Caller, Query(p): Query<UsageParams>) -> Result<Response> {
    let v = state
        .tenant_usage(
            &caller,
            None,
            p.start.as_deref(),
            p.end.as_deref(),
            truthy(&p.detailed),
        )
        .await?;
    Ok(json_status(StatusCode::OK, v))
}

async fn usage(
    state: Svc,
    caller: Caller,
    Path(project): Path<String>,
    Query(p): Query<UsageParams>,
) -> Result<Response> {
    let v = state
        .tenant_usage(
            &caller,
            Some(&project),
            p.start.as_deref(),
            p.end.as_deref(),
            true,
        )
        .await?;
    Ok(json_status(StatusCode::OK, v))
}

const EXTENSIONS: &[(&str, &str)] = &[
    ("os-availability-zone", "AvailabilityZone"),
    ("os-console-output", "ConsoleOutput"),
    ("os-extended-server-attributes", "ExtendedServerAttributes"),
    ("os-extended-status", "ExtendedStatus"),
    ("os-extended-volumes", "ExtendedVolumes"),
    ("os-flavor-access", "FlavorAccess"),
    ("os-flavor-extra-specs", "FlavorExtraSpecs"),
    ("os-flavor-manage", "FlavorManage"),
    ("os-hypervisors", "Hypervisors"),
    ("os-instance-actions", "InstanceActions"),
    ("os-keypairs", "Keypairs"),
    ("os-lock-server", "LockServer"),
    ("os-pause-server", "PauseServer"),
    ("os-quota-sets", "Quotas"),
    ("os-server-tags", "ServerTags"),
    ("os-services", "Services"),
    ("os-simple-tenant-usage", "SimpleTenantUsage"),
    ("os-suspend-server", "SuspendServer"),
    ("os-attach-interfaces", "AttachInterfaces"),
    ("os-admin-actions", "AdminActions"),
    ("os-consoles", "Consoles"),
    ("os-create-backup", "CreateBackup"),
    ("os-deferred-delete", "DeferredDelete"),
    ("os-hosts", "Hosts"),
    ("os-multinic", "Multinic"),
    ("os-server-external-events", "ServerExternalEvents"),
    ("os-server-groups", "ServerGroups"),
    ("os-server-password", "ServerPassword"),
    ("os-shelve", "Shelve"),
    ("os-volumes", "Volumes"),
    ("servers", "Servers"),
    ("flavors", "Flavors"),
    ("images", "Images"),
    ("ips", "Ips"),
    ("os-access-ips", "AccessIPs"),
    ("os-config-drive", "ConfigDrive"),
    ("os-disk-config", "DiskConfig"),
    ("os-extended-availability-zone", "ExtendedAvailabilityZone"),
    ("os-server-usage", "ServerUsage"),
    ("os-user-data", "UserData"),
];

fn extension_view(alias: &str, name: &str) -> Value {
    json!({
        "alias": alias, "name": name, "namespace": format!("http://docs.openstack.org/compute/ext/{alias}/api/v1.1"),
        "description": name, "updated": "2014-12-03T00:00:00Z", "links": [],
    })
}

async fn extensions(caller: Caller) -> Result<Response> {
    let _ = caller;
    Ok(json_status(
        StatusCode::OK,
        json!({"extensions": EXTENSIONS.iter().map(|(a, n)| extension_view(a, n)).collect::<Vec<_>>()}),
    ))
}

async fn extension(caller: Caller, Path(alias): Path<String>) -> Result<Response> {
    let _ = caller;
    let (a, n) = EXTENSIONS
        .iter()
        .find(|(a, _)| *a == alias)
        .ok_or_else(|| Error::not_found(format!("Extension {alias} could not be found.")))?;
    Ok(json_status(
        StatusCode::OK,
        json!({"extension": extension_view(a, n)}),
    ))
}

pub(super) fn admin_routes() -> Routes {
    Routes::new()
        .route("/v2.1/os-migrations", get(migrations))
        .route(
            "/v2.1/os-quota-class-sets/{class}",
            get(quota_class_show).put(quota_class_update),
        )
        .route(
            "/v2.1/os-server-external-events",
            axum::routing::post(external_events),
        )
}

/// `GET /os-migrations` (admin): Nubo has no migrations yet, so the list is empty.
async fn migrations(caller: Caller) -> Result<Response> {
    if !caller.is_admin() {
        return Err(Error::forbidden(
            "Policy doesn't allow os_compute_api:os-migrations:index to be performed.",
        ));
    }
    Ok(json_status(StatusCode::OK, json!({"migrations": []})))
}

/// `GET /os-quota-class-sets/{class}`: the defaults (only the `default` class exists).
async fn quota_class_show(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(class): Path<String>,
) -> Result<Response> {
    let _ = caller;
    let set = state.quota_class_defaults(mv, &class).await?;
    Ok(json_status(StatusCode::OK, json!({"quota_class_set": set})))
}

/// `PUT /os-quota-class-sets/{class}` (admin): changes the defaults of every project.
async fn quota_class_update(
    state: Svc,
    caller: Caller,
    mv: Microversion,
    Path(class): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    let set = body
        .get("quota_class_set")
        .cloned()
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute quota_class_set."))?;
    let v = state.update_quota_class(&caller, mv, &class, &set).await?;
    Ok(json_status(StatusCode::OK, json!({"quota_class_set": v})))
}

/// `POST /os-server-external-events` (admin; what Neutron calls): accepted for known servers.
async fn external_events(
    state: Svc,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response> {
    if !caller.is_admin() {
        return Err(Error::forbidden(
            "Policy doesn't allow os_compute_api:os-server-external-events:create to be performed.",
        ));
    }
    let events = body
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::bad_request("Invalid input for field/attribute events."))?;
    let mut out = Vec::new();
    let mut found = 0;
    for e in events {
        let server = e
            .get("server_uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = e
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let exists = state.get_server(&caller, &server).await.is_ok();
        let mut ev = json!({"server_uuid": server, "name": name, "status": if exists { "completed" } else { "failed" }, "code": if exists { 200 } else { 404 }});
        if let Some(tag) = e.get("tag") {
            ev["tag"] = tag.clone();
        }
        if exists {
            found += 1;
        }
        out.push(ev);
    }
    if found == 0 {
        return Err(Error::not_found("No instances found for any event"));
    }
    let status = if found == out.len() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok(json_status(status, json!({ "events": out })))
}
