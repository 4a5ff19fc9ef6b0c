//! Wire shapes per microversion: servers (summary, detail, the reduced update/rebuild view),
//! flavors, keypairs. Nova's `_STATE_MAP` for `status` lives here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha224};

use crate::microversion::Microversion;
use crate::store::flavors::FlavorRow;
use crate::store::keypairs::KeypairRow;
use crate::store::servers::ServerRow;

/// Who looks and how: the pieces of a request that change a view.
#[derive(Debug, Clone)]
pub struct ViewCtx {
    pub mv: Microversion,
    pub admin: bool,
    /// `http://host:port/compute`.
    pub base: String,
    /// Floating IPs by port id, for `addresses` (empty unless the handler looked them up).
    pub floating: Arc<HashMap<String, Vec<String>>>,
    /// Attached volumes (id, `delete_on_termination`) by server id, for
    /// `os-extended-volumes:volumes_attached` (empty unless the handler looked them up).
    pub volumes: Arc<HashMap<String, Vec<(String, bool)>>>,
}

impl ViewCtx {
    fn server_link(&self, id: &str) -> Value {
        json!([
            {"rel": "self", "href": format!("{}/v2.1/servers/{id}", self.base)},
            {"rel": "bookmark", "href": format!("{}/servers/{id}", self.base)},
        ])
    }
}

/// Nova's `status` from `vm_state` and `task_state`.
pub fn status(vm_state: &str, task_state: Option<&str>) -> &'static str {
    let task = task_state.unwrap_or("");
    match vm_state {
        "active" => match task {
            "rebooting" | "reboot_pending" | "reboot_started" => "REBOOT",
            "rebooting_hard" | "reboot_pending_hard" | "reboot_started_hard" => "HARD_REBOOT",
            "updating_password" => "PASSWORD",
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            "migrating" => "MIGRATING",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            _ => "ACTIVE",
        },
        "building" => "BUILD",
        "stopped" => match task {
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            _ => "SHUTOFF",
        },
        "resized" => "VERIFY_RESIZE",
        "paused" => "PAUSED",
        "suspended" => "SUSPENDED",
        "rescued" => "RESCUE",
        "error" => match task {
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            _ => "ERROR",
        },
        "deleted" => "DELETED",
        "soft-delete" => "SOFT_DELETED",
        "shelved" => "SHELVED",
        "shelved_offloaded" => "SHELVED_OFFLOADED",
        _ => "UNKNOWN",
    }
}

/// The vm_states (and task_states) a `status` filter value stands for.
pub fn states_of_status(status: &str) -> Option<Vec<&'static str>> {
    Some(match status.to_ascii_uppercase().as_str() {
        "ACTIVE" | "REBOOT" | "HARD_REBOOT" | "PASSWORD" | "MIGRATING" => vec!["active"],
        "BUILD" => vec!["building"],
        "SHUTOFF" => vec!["stopped"],
        "PAUSED" => vec!["paused"],
        "SUSPENDED" => vec!["suspended"],
        "ERROR" => vec!["error"],
        "REBUILD" => vec!["active", "stopped", "error"],
        "RESIZE" => vec!["active", "stopped"],
        "VERIFY_RESIZE" => vec!["resized"],
        "RESCUE" => vec!["rescued"],
        "SHELVED" => vec!["shelved"],
        "SHELVED_OFFLOADED" => vec!["shelved_offloaded"],
        "SOFT_DELETED" => vec!["soft-delete"],
        "DELETED" => vec!["deleted"],
        _ => return None,
    })
}

/// Nova's `hostId`: sha224(project + host), or "" when unplaced.
pub fn host_id(project: &str, host: Option<&str>) -> String {
    match host {
        Some(h) if !h.is_empty() => {
            let digest = Sha224::digest(format!("{project}{h}").as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        }
        _ => String::new(),
    }
}

/// Whether `t` is exactly how rows store time (`2026-11-25T18:51:37.123456Z`), so that the
/// views below can cut it instead of parsing and formatting it (a list of 1,000 servers formats
/// 3,000 times).
fn stored_shape(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 26) || c.is_ascii_digit())
}

/// `2013-09-23T13:37:00.880302` (Nova's launched_at shape: no zone).
fn usg_time(t: &str) -> String {
    if stored_shape(t) {
        return t[..26].to_string();
    }
    nubo_common::time::parse(t)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

/// `2013-09-23T13:37:00Z`.
fn api_time(t: &str) -> String {
    if stored_shape(t) {
        return format!("{}Z", &t[..19]);
    }
    nubo_common::time::parse(t)
        .map(nubo_common::time::seconds_format)
        .unwrap_or_default()
}

/// `addresses`: network name -> [{version, addr, OS-EXT-IPS:type, OS-EXT-IPS-MAC:mac_addr}]:
/// each port's fixed IPs, then the floating IPs associated with it (`floating`, by port id).
pub fn addresses(
    row: &ServerRow,
    extended: bool,
    floating: &HashMap<String, Vec<String>>,
) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for p in &row.ports {
        let list = out
            .entry(p.network_name.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        for ip in &p.ips {
            let version = if ip.contains(':') { 6 } else { 4 };
            let mut a = json!({"version": version, "addr": ip});
            if extended {
                a["OS-EXT-IPS:type"] = json!("fixed");
                a["OS-EXT-IPS-MAC:mac_addr"] = json!(p.mac);
            }
            if let Value::Array(items) = list {
                items.push(a);
            }
        }
        for ip in floating.get(&p.port_id).map(Vec::as_slice).unwrap_or(&[]) {
            let version = if ip.contains(':') { 6 } else { 4 };
            let mut a = json!({"version": version, "addr": ip});
            if extended {
                a["OS-EXT-IPS:type"] = json!("floating");
                a["OS-EXT-IPS-MAC:mac_addr"] = json!(p.mac);
            }
            if let Value::Array(items) = list {
                items.push(a);
            }
        }
    }
    out
}

fn flavor_view(ctx: &ViewCtx, row: &ServerRow) -> Value {
    let f = &row.flavor;
    if ctx.mv.at_least(47) {
        json!({
            "vcpus": f.vcpus, "ram": f.memory_mb, "disk": f.root_gb,
            "ephemeral": f.ephemeral_gb, "swap": f.swap, "original_name": f.name,
            "extra_specs": f.extra_specs,
        })
    } else {
        json!({
            "id": f.id,
            "links": [{"rel": "bookmark", "href": format!("{}/flavors/{}", ctx.base, f.id)}],
        })
    }
}

fn image_view(ctx: &ViewCtx, row: &ServerRow) -> Value {
    if row.image_ref.is_empty() {
        json!("")
    } else {
        json!({
            "id": row.image_ref,
            "links": [{"rel": "bookmark", "href": format!("{}/images/{}", ctx.base, row.image_ref)}],
        })
    }
}

/// The fields every full view has (`show`, `update` and `rebuild` responses).
fn basic(ctx: &ViewCtx, row: &ServerRow, map: &mut Map<String, Value>, extended_addresses: bool) {
    let st = status(&row.vm_state, row.task_state.as_deref());
    map.insert("id".into(), json!(row.id));
    map.insert("name".into(), json!(row.name));
    map.insert("status".into(), json!(st));
    map.insert("tenant_id".into(), json!(row.project_id));
    map.insert("user_id".into(), json!(row.user_id));
    map.insert("metadata".into(), json!(row.metadata));
    map.insert(
        "hostId".into(),
        json!(host_id(&row.project_id, row.host.as_deref())),
    );
    map.insert("image".into(), image_view(ctx, row));
    map.insert("flavor".into(), flavor_view(ctx, row));
    map.insert("created".into(), json!(api_time(&row.created_at)));
    map.insert("updated".into(), json!(api_time(&row.updated_at)));
    map.insert(
        "addresses".into(),
        Value::Object(addresses(row, extended_addresses, &ctx.floating)),
    );
    map.insert("accessIPv4".into(), json!(row.access_ipv4));
    map.insert("accessIPv6".into(), json!(row.access_ipv6));
    map.insert("links".into(), ctx.server_link(&row.id));
    map.insert("OS-DCF:diskConfig".into(), json!(row.disk_config));
    if matches!(
        st,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    ) {
        map.insert("progress".into(), json!(0));
    }
    if let Some(fault) = &row.fault {
        if row.vm_state == "error" {
            let mut f = json!({
                "code": fault.code,
                "created": api_time(&fault.created),
                "message": fault.message,
            });
            if let Some(details) = &fault.details {
                if ctx.admin || fault.code != 500 {
                    f["details"] = json!(details);
                }
            }
            map.insert("fault".into(), f);
        }
    }
    if ctx.mv.at_least(9) {
        map.insert("locked".into(), json!(row.locked));
    }
    if ctx.mv.at_least(19) {
        map.insert("description".into(), json!(row.description));
    }
    if ctx.mv.at_least(26) {
        map.insert("tags".into(), json!(row.tags));
    }
    if ctx.mv.at_least(63) {
        map.insert("trusted_image_certificates".into(), Value::Null);
    }
    if ctx.mv.at_least(73) {
        map.insert("locked_reason".into(), json!(row.locked_reason));
    }
}

/// `GET /servers/{id}` and each item of `GET /servers/detail`.
pub fn server_detail(
    ctx: &ViewCtx,
    row: &ServerRow,
    host_status: Option<&str>,
    show: bool,
) -> Value {
    let mut m = Map::new();
    basic(ctx, row, &mut m, true);
    m.insert("key_name".into(), json!(row.key_name));
    if !row.security_groups.is_empty() {
        let groups: Vec<Value> = row
            .security_groups
            .iter()
            .map(|g| json!({"name": g}))
            .collect();
        m.insert("security_groups".into(), Value::Array(groups));
    }
    m.insert(
        "OS-SRV-USG:launched_at".into(),
        json!(row.launched_at.as_deref().map(usg_time)),
    );
    m.insert("OS-SRV-USG:terminated_at".into(), Value::Null);
    m.insert(
        "OS-EXT-AZ:availability_zone".into(),
        json!(row
            .availability_zone
            .clone()
            .or_else(|| row.requested_az.clone())
            .unwrap_or_default()),
    );
    m.insert("OS-EXT-STS:task_state".into(), json!(row.task_state));
    m.insert("OS-EXT-STS:vm_state".into(), json!(row.vm_state));
    m.insert("OS-EXT-STS:power_state".into(), json!(row.power_state));
    // Nova's extended volumes: ids, with delete_on_termination from 2.3 on.
    let attached: Vec<Value> = ctx
        .volumes
        .get(&row.id)
        .map(|vols| {
            vols.iter()
                .map(|(id, dot)| {
                    if ctx.mv.at_least(3) {
                        json!({"id": id, "delete_on_termination": dot})
                    } else {
                        json!({ "id": id })
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    m.insert(
        "os-extended-volumes:volumes_attached".into(),
        Value::Array(attached),
    );
    m.insert(
        "config_drive".into(),
        json!(if row.config_drive { "True" } else { "" }),
    );
    if ctx.admin {
        m.insert("OS-EXT-SRV-ATTR:host".into(), json!(row.host));
        m.insert(
            "OS-EXT-SRV-ATTR:hypervisor_hostname".into(),
            json!(row.host),
        );
        m.insert(
            "OS-EXT-SRV-ATTR:instance_name".into(),
            json!(format!("instance-{:08x}", row.seq)),
        );
        if ctx.mv.at_least(3) {
            m.insert(
                "OS-EXT-SRV-ATTR:reservation_id".into(),
                json!(row.reservation_id),
            );
            m.insert(
                "OS-EXT-SRV-ATTR:launch_index".into(),
                json!(row.launch_index),
            );
            m.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(row.hostname));
            m.insert("OS-EXT-SRV-ATTR:kernel_id".into(), json!(""));
            m.insert("OS-EXT-SRV-ATTR:ramdisk_id".into(), json!(""));
            m.insert("OS-EXT-SRV-ATTR:root_device_name".into(), json!("/dev/vda"));
            m.insert("OS-EXT-SRV-ATTR:user_data".into(), json!(row.user_data));
        }
        if ctx.mv.at_least(16) {
            m.insert("host_status".into(), json!(host_status.unwrap_or("")));
        }
    } else if ctx.mv.at_least(90) {
        m.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(row.hostname));
    }
    if show && ctx.mv.at_least(71) {
        m.insert("server_groups".into(), Value::Array(Vec::new()));
    }
    if ctx.mv.at_least(96) {
        m.insert("pinned_availability_zone".into(), json!(row.requested_az));
    }
    Value::Object(m)
}

/// The reduced view of update and rebuild responses (full detail from 2.75 on).
pub fn server_update_view(ctx: &ViewCtx, row: &ServerRow, host_status: Option<&str>) -> Value {
    if ctx.mv.at_least(75) {
        return server_detail(ctx, row, host_status, true);
    }
    let mut m = Map::new();
    basic(ctx, row, &mut m, false);
    if ctx.mv.at_least(71) {
        m.insert("server_groups".into(), Value::Array(Vec::new()));
    }
    Value::Object(m)
}

/// An item of `GET /servers`.
pub fn server_summary(ctx: &ViewCtx, row: &ServerRow) -> Value {
    json!({"id": row.id, "name": row.name, "links": ctx.server_link(&row.id)})
}

pub fn flavor_summary(ctx: &ViewCtx, f: &FlavorRow) -> Value {
    let mut v = json!({
        "id": f.id,
        "name": f.name,
        "links": [
            {"rel": "self", "href": format!("{}/v2.1/flavors/{}", ctx.base, f.id)},
            {"rel": "bookmark", "href": format!("{}/flavors/{}", ctx.base, f.id)},
        ],
    });
    if ctx.mv.at_least(55) {
        v["description"] = json!(f.description);
    }
    v
}

pub fn flavor_detail(ctx: &ViewCtx, f: &FlavorRow) -> Value {
    let mut v = flavor_summary(ctx, f);
    v["ram"] = json!(f.memory_mb);
    v["disk"] = json!(f.root_gb);
    v["vcpus"] = json!(f.vcpus);
    v["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral_gb);
    v["OS-FLV-DISABLED:disabled"] = json!(f.disabled);
    v["os-flavor-access:is_public"] = json!(f.is_public);
    v["rxtx_factor"] = json!(f.rxtx_factor);
    v["swap"] = if ctx.mv.at_least(75) || f.swap != 0 {
        json!(f.swap)
    } else {
        json!("")
    };
    if ctx.mv.at_least(61) {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

pub fn keypair_summary(ctx: &ViewCtx, k: &KeypairRow) -> Value {
    let mut v = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if ctx.mv.at_least(2) {
        v["type"] = json!(k.kind);
    }
    v
}

pub fn keypair_detail(ctx: &ViewCtx, k: &KeypairRow) -> Value {
    let mut v = keypair_summary(ctx, k);
    v["user_id"] = json!(k.user_id);
    v["created_at"] = json!(usg_time(&k.created_at));
    v["deleted"] = json!(false);
    v["deleted_at"] = Value::Null;
    v["updated_at"] = Value::Null;
    v["id"] = json!(k.id);
    v
}

/// Extra specs as a JSON object.
pub fn specs(specs: &BTreeMap<String, String>) -> Value {
    json!(specs)
}

#[cfg(test)]
mod tests {
    use super::{api_time, usg_time};

    #[test]
    fn stored_times_are_cut_as_they_would_be_formatted() {
        let stored = "2026-11-25T18:51:37.123456Z";
        assert_eq!(api_time(stored), "2026-11-25T18:51:37Z");
        assert_eq!(usg_time(stored), "2026-11-25T18:51:37.123456");
        let t = nubo_common::time::parse(stored).unwrap();
        assert_eq!(api_time(stored), nubo_common::time::seconds_format(t));
        // Other shapes still go through the parser.
        assert_eq!(
            api_time("2026-11-25T18:51:37+00:00"),
            "2026-11-25T18:51:37Z"
        );
        assert_eq!(
            usg_time("2026-11-25T18:51:37Z"),
            "2026-11-25T18:51:37.000000"
        );
        assert_eq!(api_time("garbage"), "");
    }
}
