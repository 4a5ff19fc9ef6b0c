//! Servers: create (validated here, built by a task that claims, makes ports, clones the disk
//! and hands the server to its host's agent, undoing every earlier step when one fails), delete
//! (the agent destroys the VM, then ports, disk and row go), list with Nova's filters and
//! paging, show, update, metadata, tags, addresses, interfaces.
//!
//! ```text
//!   create:  claim ──> ports ──> disk clone ──> desired state ──> agent reports running ──> ACTIVE
//!   undo:    unclaim <── release ports <── delete clone <─────────── spawn failed / timeout
//!            (then the next host, up to max_build_attempts, then ERROR with a fault)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use nubo_common::{Caller, Error, Result};
use nubo_image::{BootImage, ImageId};
use nubo_network::ServerPortRequest;
use serde_json::{json, Value};

use super::{now, require_member, require_reader, BuildStep, ComputeService};
use crate::microversion::Microversion;
use crate::service::views;
use crate::store;
use crate::store::servers::{Fault, FlavorSnapshot, ServerPort, ServerRow};

const GIB: u64 = 1 << 30;

pub(crate) fn server_not_found(id: &str) -> Error {
    Error::not_found(format!("Instance {id} could not be found."))
}

fn invalid(field: &str) -> Error {
    Error::bad_request(format!("Invalid input for field/attribute {field}."))
}

/// One NIC of a create request, resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NicRequest {
    pub network_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// What `POST /servers` asked for, parsed and checked.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    pub networks: Value,
    pub key_name: Option<String>,
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub availability_zone: Option<String>,
    pub forced_host: Option<String>,
    pub security_groups: Vec<String>,
    pub min_count: i64,
    pub max_count: i64,
    pub return_reservation_id: bool,
    pub config_drive: bool,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub hostname: Option<String>,
    pub access_ipv4: String,
    pub access_ipv6: String,
    pub admin_pass: Option<String>,
    pub disk_config: String,
    /// `os:scheduler_hints`: server group, same_host, different_host.
    pub hints: super::server_groups::SchedulerHints,
    /// Volume block device mappings (destination `volume`; block storage, issue 7).
    pub block_devices: Vec<nubo_volume::BootVolumeRequest>,
}

/// What create answers.
#[derive(Debug, Clone)]
pub struct Created {
    pub servers: Vec<ServerRow>,
    pub reservation_id: String,
    pub return_reservation_id: bool,
    pub admin_pass: String,
}

/// The id at the end of a reference that may be a URL (`imageRef`, `flavorRef`).
fn ref_id(text: &str) -> String {
    text.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(text)
        .to_string()
}

fn parse_bool(v: &Value, field: &str) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "off" | "f" | "n" | "" => Ok(false),
            _ => Err(invalid(field)),
        },
        Value::Null => Ok(false),
        _ => Err(invalid(field)),
    }
}

fn parse_count(v: Option<&Value>, field: &str) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| invalid(field)),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| invalid(field)),
        Some(_) => Err(invalid(field)),
    }
}

/// Checks server metadata: keys 1..255 characters, values up to 255, strings only.
pub(crate) fn parse_metadata(v: &Value) -> Result<BTreeMap<String, String>> {
    let map = v.as_object().ok_or_else(|| invalid("metadata"))?;
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let Value::String(s) = v else {
            return Err(invalid("metadata"));
        };
        if k.is_empty() || k.chars().count() > 255 || s.chars().count() > 255 {
            return Err(invalid("metadata"));
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

pub(crate) fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.chars().count() <= 60 && !tag.contains(',') && !tag.contains('/')
}

/// Nova's hostname sanitization of a display name (`nova.utils.sanitize_hostname`): keep
/// Latin-1, cut at 63 characters, spaces, underscores and dots become dashes (an FQDN-like
/// name is not a hostname), anything else but word characters and dashes goes, lower case,
/// no leading or trailing dashes.
fn sanitize_hostname(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().filter(|c| (*c as u32) < 0x100).take(63) {
        if c == ' ' || c == '_' || c == '.' {
            out.push('-');
        } else if c.is_alphanumeric() || c == '-' {
            out.extend(c.to_lowercase());
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_string();
    if out.is_empty() {
        "server".into()
    } else {
        out
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && name.trim() == name
        && !name.chars().any(char::is_control)
}

/// A block device mapping's `boot_index` (a number, or a string of one as clients send it).
fn bdm_boot_index(bdm: &Value) -> Option<i64> {
    match bdm.get("boot_index") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// The volumes an image's `block_device_mapping` property (with `bdm_v2`, as Nova writes it
/// for a volume-backed server's snapshot) asks for, as `block_device_mapping_v2` entries; none
/// for an ordinary image.
fn image_defined_volumes(boot: &BootImage) -> Result<Vec<nubo_volume::BootVolumeRequest>> {
    let properties = &boot.image.properties;
    let v2 = properties
        .get("bdm_v2")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let Some(text) = properties.get("block_device_mapping").filter(|_| v2) else {
        return Ok(Vec::new());
    };
    let entries: Vec<Value> = serde_json::from_str(text).map_err(|_| {
        Error::bad_request(format!(
            "Block Device Mapping is Invalid: image {} has a malformed block_device_mapping property.",
            boot.image.id
        ))
    })?;
    let mut out = Vec::new();
    for e in entries {
        if e.get("destination_type").and_then(Value::as_str) != Some("volume") {
            continue;
        }
        // Nova stores the source's id under its own key; `block_device_mapping_v2` says `uuid`.
        let uuid = match e.get("source_type").and_then(Value::as_str) {
            Some("snapshot") => e.get("snapshot_id"),
            Some("volume") => e.get("volume_id"),
            Some("image") => e.get("image_id"),
            _ => None,
        };
        let mut bdm = e.clone();
        if let (Some(obj), Some(uuid)) = (bdm.as_object_mut(), uuid.cloned()) {
            obj.insert("uuid".into(), uuid);
        }
        out.push(super::volume_attachments::parse_volume_bdm(
            &bdm,
            bdm_boot_index(&e),
        )?);
    }
    Ok(out)
}

pub fn parse_create(body: &Value, mv: Microversion) -> Result<CreateRequest> {
    let s = body
        .get("server")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("server"))?;
    let name = match s.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        _ => return Err(invalid("name")),
    };
    // The image: imageRef, or a block_device_mapping_v2 image -> local boot entry.
    let mut image_id = match s.get("imageRef") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) => ref_id(r),
        Some(_) => return Err(invalid("imageRef")),
    };
    let mut block_devices = Vec::new();
    if let Some(bdms) = s.get("block_device_mapping_v2") {
        let list = bdms
            .as_array()
            .ok_or_else(|| invalid("block_device_mapping_v2"))?;
        for bdm in list {
            let source = bdm.get("source_type").and_then(Value::as_str).unwrap_or("");
            let dest = bdm
                .get("destination_type")
                .and_then(Value::as_str)
                .unwrap_or("local");
            let boot_index = bdm_boot_index(bdm);
            match (source, dest) {
                ("image", "local") if boot_index == Some(0) => {
                    let uuid = bdm.get("uuid").and_then(Value::as_str).unwrap_or("");
                    if !image_id.is_empty() && image_id != uuid {
                        return Err(Error::bad_request(
                            "Block Device Mapping is Invalid: imageRef and the boot image mapping differ.",
                        ));
                    }
                    image_id = uuid.to_string();
                }
                ("blank", "local") => {}
                (_, "volume") => {
                    block_devices.push(super::volume_attachments::parse_volume_bdm(bdm, boot_index)?)
                }
                _ => {
                    return Err(Error::bad_request(format!(
                        "Block Device Mapping is Invalid: source_type {source} with destination_type {dest} is not supported yet (volumes: Block Storage)."
                    )))
                }
            }
        }
    }
    if super::volume_attachments::boots_from_volume(&block_devices) {
        // The server boots from a volume: it has no image of its own (Nova shows "").
        image_id.clear();
    } else if image_id.is_empty() {
        return Err(Error::bad_request(
            "Block Device Mapping is Invalid: You specified more local devices than the limit allows",
        ));
    }
    let flavor_id = match s.get("flavorRef") {
        Some(Value::String(r)) if !r.is_empty() => ref_id(r),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(invalid("flavorRef")),
    };
    let networks = match s.get("networks") {
        None => {
            if mv.at_least(37) {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute server. 'networks' is a required property",
                ));
            }
            json!("auto")
        }
        Some(Value::String(x)) if (x == "auto" || x == "none") && mv.at_least(37) => json!(x),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for n in list {
                let o = n.as_object().ok_or_else(|| invalid("networks"))?;
                let text = |k: &str| -> Result<Option<String>> {
                    match o.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.clone())),
                        Some(_) => Err(invalid(k)),
                    }
                };
                let nic = NicRequest {
                    network_id: text("uuid")?,
                    port_id: text("port")?,
                    fixed_ip: text("fixed_ip")?,
                    tag: text("tag")?,
                };
                if nic.network_id.is_none() && nic.port_id.is_none() {
                    return Err(Error::bad_request(
                        "Bad networks format: network uuid is not in proper format",
                    ));
                }
                if let Some(ip) = &nic.fixed_ip {
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        return Err(Error::bad_request(format!(
                            "Invalid input for field/attribute fixed_ip. Value: {ip}. '{ip}' is not a 'ip-address'"
                        )));
                    }
                }
                if let Some(net) = &nic.network_id {
                    if uuid::Uuid::parse_str(net).is_err() {
                        return Err(Error::bad_request(format!(
                            "Bad networks format: network uuid is not in proper format ({net})"
                        )));
                    }
                }
                out.push(serde_json::to_value(nic).unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        Some(_) => return Err(invalid("networks")),
    };
    let key_name = match s.get("key_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 255 => Some(k.clone()),
        Some(_) => return Err(invalid("key_name")),
    };
    let user_data = match s.get("user_data") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => {
            if u.len() > 65535
                || base64::engine::general_purpose::STANDARD
                    .decode(u.trim())
                    .is_err()
            {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute user_data. Value: must be base64 encoded",
                ));
            }
            Some(u.clone())
        }
        Some(_) => return Err(invalid("user_data")),
    };
    let metadata = match s.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(m) => parse_metadata(m)?,
    };
    let (availability_zone, forced_host) = match s.get("availability_zone") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(az)) if !az.is_empty() && az.len() <= 255 => match az.split_once(':') {
            Some((zone, host)) => (
                (!zone.is_empty()).then(|| zone.to_string()),
                (!host.is_empty()).then(|| host.split(':').next().unwrap_or(host).to_string()),
            ),
            None => (Some(az.clone()), None),
        },
        Some(_) => return Err(invalid("availability_zone")),
    };
    let security_groups = match s.get("security_groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for g in list {
                match g.get("name").and_then(Value::as_str) {
                    Some(n) if !n.is_empty() && n.len() <= 255 => {
                        if !out.iter().any(|x: &String| x == n) {
                            out.push(n.to_string())
                        }
                    }
                    _ => return Err(invalid("security_groups")),
                }
            }
            out
        }
        Some(_) => return Err(invalid("security_groups")),
    };
    let min_count = parse_count(s.get("min_count"), "min_count")?;
    let max_count = parse_count(s.get("max_count"), "max_count")?;
    let (min_count, max_count) = match (min_count, max_count) {
        (None, None) => (1, 1),
        (Some(a), None) => (a, a),
        (None, Some(b)) => (1, b),
        (Some(a), Some(b)) => (a, b),
    };
    if min_count > max_count {
        return Err(Error::bad_request("min_count must be <= max_count"));
    }
    let return_reservation_id = match s.get("return_reservation_id") {
        None => false,
        Some(v) => parse_bool(v, "return_reservation_id")?,
    };
    let config_drive = match s.get("config_drive") {
        None => false,
        Some(v) => parse_bool(v, "config_drive")?,
    };
    let description = match s.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) if mv.at_least(19) && d.chars().count() <= 255 => {
            if d.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
            {
                return Err(invalid("description"));
            }
            Some(d.clone())
        }
        Some(_) => return Err(invalid("description")),
    };
    let tags = match s.get("tags") {
        None => Vec::new(),
        Some(Value::Array(list)) if mv.at_least(52) && list.len() <= 50 => {
            let mut out = Vec::new();
            for t in list {
                match t.as_str() {
                    Some(t) if valid_tag(t) => out.push(t.to_string()),
                    _ => return Err(invalid("tags")),
                }
            }
            out
        }
        Some(_) => return Err(invalid("tags")),
    };
    let hostname = match s.get("hostname") {
        None => None,
        Some(Value::String(h)) if mv.at_least(90) => Some(h.clone()),
        Some(_) => return Err(invalid("hostname")),
    };
    let ip = |k: &str, v6: bool| -> Result<String> {
        match s.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(a)) => match a.parse::<std::net::IpAddr>() {
                Ok(ip @ std::net::IpAddr::V4(_)) if !v6 => Ok(ip.to_string()),
                Ok(ip @ std::net::IpAddr::V6(_)) if v6 => Ok(ip.to_string()),
                _ => Err(invalid(k)),
            },
            Some(_) => Err(invalid(k)),
        }
    };
    let access_ipv4 = ip("accessIPv4", false)?;
    let access_ipv6 = ip("accessIPv6", true)?;
    let admin_pass = s.get("adminPass").and_then(Value::as_str).map(String::from);
    let disk_config = match s.get("OS-DCF:diskConfig") {
        None | Some(Value::Null) => "MANUAL".to_string(),
        Some(Value::String(d)) if d == "AUTO" || d == "MANUAL" => d.clone(),
        Some(_) => return Err(invalid("OS-DCF:diskConfig")),
    };
    Ok(CreateRequest {
        hints: super::server_groups::SchedulerHints::parse(body)?,
        disk_config,
        block_devices,
        name,
        image_id,
        flavor_id,
        networks,
        key_name,
        user_data,
        metadata,
        availability_zone,
        forced_host,
        security_groups,
        min_count,
        max_count,
        return_reservation_id,
        config_drive,
        description,
        tags,
        hostname,
        access_ipv4,
        access_ipv6,
        admin_pass,
    })
}

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// What the server list can be narrowed by.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub all_tenants: bool,
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub image: Option<String>,
    pub flavor: Option<String>,
    pub host: Option<String>,
    pub changes_since: Option<String>,
    pub changes_before: Option<String>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub reservation_id: Option<String>,
    pub tags: Option<String>,
    pub tags_any: Option<String>,
    pub not_tags: Option<String>,
    pub not_tags_any: Option<String>,
    pub locked: Option<String>,
    pub key_name: Option<String>,
    pub availability_zone: Option<String>,
    pub user_id: Option<String>,
    pub sort_keys: Vec<String>,
    pub sort_dirs: Vec<String>,
    pub limit: Option<String>,
    pub marker: Option<String>,
}

fn compile_regex(pattern: &str) -> Result<regex_automata::meta::Regex> {
    regex_automata::meta::Regex::new(pattern)
        .map_err(|_| Error::bad_request(format!("Invalid regular expression: {pattern}")))
}

impl ComputeService {
    /// A server the caller may see: its project's (or any, for admins), else a 404.
    pub(crate) async fn visible_server(&self, caller: &Caller, id: &str) -> Result<ServerRow> {
        require_reader(caller)?;
        let row = {
            let mut conn = self.read().await?;
            store::servers::get(&mut conn, id).await?
        };
        match row {
            Some(r) if caller.is_admin() || caller.project_id() == Some(r.project_id.as_str()) => {
                Ok(r)
            }
            _ => Err(server_not_found(id)),
        }
    }

    /// `host_status` (2.16) of a server's host.
    pub(crate) async fn host_status(&self, row: &ServerRow) -> Result<Option<String>> {
        let Some(host) = &row.host else {
            return Ok(Some(String::new()));
        };
        let mut conn = self.read().await?;
        let h = store::hosts::get(&mut conn, host).await?;
        Ok(Some(match h {
            None => "UNKNOWN".into(),
            Some(h) if !self.is_up(&h) => "DOWN".into(),
            Some(h) if !h.enabled => "MAINTENANCE".into(),
            Some(_) => "UP".into(),
        }))
    }

    pub async fn get_server(&self, caller: &Caller, id: &str) -> Result<ServerRow> {
        self.visible_server(caller, id).await
    }

    /// Every named security group must exist in the project (400 otherwise, as Nova says).
    async fn check_security_groups(&self, project: &str, names: &[String]) -> Result<()> {
        let ctx = nubo_network::service::Ctx {
            project: project.to_string(),
            admin: false,
            member: true,
        };
        let page = self
            .network
            .list_security_groups(
                &ctx,
                &nubo_network::query::ListParams::default(),
                &nubo_network::query::LinkBase { url: "" },
            )
            .await?;
        for name in names {
            let found = name == "default"
                || page.items.iter().any(|g| {
                    g.get("id").and_then(Value::as_str) == Some(name.as_str())
                        || g.get("name").and_then(Value::as_str) == Some(name.as_str())
                });
            if !found {
                return Err(Error::bad_request(format!(
                    "Security group {name} not found for project {project}."
                )));
            }
        }
        Ok(())
    }

    /// The networks a project's server gets with `networks: auto`: its own plus shared ones.
    async fn available_networks(&self, project: &str) -> Result<Vec<Value>> {
        let ctx = nubo_network::service::Ctx {
            project: project.to_string(),
            admin: false,
            member: true,
        };
        let page = self
            .network
            .list_networks(
                &ctx,
                &nubo_network::query::ListParams::default(),
                &nubo_network::query::LinkBase { url: "" },
            )
            .await?;
        Ok(page
            .items
            .into_iter()
            .filter(|n| {
                let shared = n.get("shared").and_then(Value::as_bool).unwrap_or(false);
                let own = n.get("project_id").and_then(Value::as_str) == Some(project);
                shared || own
            })
            .collect())
    }

    /// Turns the requested networks into a concrete NIC list (validating every network and
    /// port now, so the create call answers with the error).
    async fn resolve_networks(
        &self,
        project: &str,
        networks: &Value,
        count: i64,
    ) -> Result<Vec<NicRequest>> {
        let ctx = nubo_network::service::Ctx {
            project: project.to_string(),
            admin: false,
            member: true,
        };
        match networks {
            Value::String(x) if x == "none" => Ok(Vec::new()),
            Value::Array(list) => {
                let mut out = Vec::new();
                for n in list {
                    let nic: NicRequest =
                        serde_json::from_value(n.clone()).map_err(|_| invalid("networks"))?;
                    if let Some(port) = &nic.port_id {
                        let state = self.network.port_state(port).await?;
                        match state {
                            Some(p) if p.project_id == project => {
                                if !p.device_id.is_empty() {
                                    return Err(Error::conflict(format!(
                                        "Port {port} is still in use."
                                    )));
                                }
                                if count > 1 {
                                    return Err(Error::bad_request(
                                        "Multiple instances cannot be created with the same port.",
                                    ));
                                }
                                out.push(NicRequest {
                                    network_id: Some(p.network_id.clone()),
                                    ..nic
                                });
                            }
                            _ => {
                                return Err(Error::bad_request(format!(
                                    "Port id {port} could not be found."
                                )))
                            }
                        }
                    } else if let Some(net) = &nic.network_id {
                        if self.network.get_network(&ctx, net).await.is_err() {
                            return Err(Error::bad_request(format!(
                                "Network {net} could not be found."
                            )));
                        }
                        out.push(nic);
                    }
                }
                Ok(out)
            }
            _ => {
                let nets = self.available_networks(project).await?;
                match nets.len() {
                    0 => Ok(Vec::new()),
                    1 => Ok(vec![NicRequest {
                        network_id: nets[0].get("id").and_then(Value::as_str).map(String::from),
                        port_id: None,
                        fixed_ip: None,
                        tag: None,
                    }]),
                    _ => Err(Error::conflict(
                        "Multiple possible networks found, use a Network ID to be more specific.",
                    )),
                }
            }
        }
    }

    /// `POST /servers`: validates, checks quota, records the servers (BUILD) and starts their
    /// create sequences. Answers before any host is involved.
    pub async fn create_servers(
        self: &Arc<Self>,
        caller: &Caller,
        req: CreateRequest,
        request_id: &str,
    ) -> Result<Created> {
        require_member(caller, "os_compute_api:servers:create")?;
        let project = caller.require_project()?.to_string();
        // Flavor and image.
        let flavor = match self.get_flavor(caller, &req.flavor_id).await {
            Ok(f) => f,
            Err(e) if e.is_not_found() => {
                return Err(Error::bad_request(format!(
                    "Flavor {} could not be found.",
                    req.flavor_id
                )))
            }
            Err(e) => return Err(e),
        };
        if flavor.disabled {
            return Err(Error::bad_request(format!(
                "Flavor {} could not be found.",
                req.flavor_id
            )));
        }
        // The image (none when the server boots from a volume: block storage, issue 7).
        let mut req = req;
        let mut boot = if super::volume_attachments::boots_from_volume(&req.block_devices) {
            None
        } else {
            Some(
                match self
                    .image
                    .image_for_boot(caller, &ImageId(req.image_id.clone()))
                    .await
                {
                    Ok(b) => b,
                    Err(e) if e.is_not_found() => {
                        return Err(Error::bad_request(format!(
                            "Image {} could not be found.",
                            req.image_id
                        )))
                    }
                    Err(e) if e.status == http::StatusCode::CONFLICT => {
                        return Err(Error::bad_request(format!(
                            "Image {} is not active.",
                            req.image_id
                        )))
                    }
                    Err(e) => return Err(Error::bad_request(e.message)),
                },
            )
        };
        // An image whose properties map volumes (a volume-backed server's snapshot) boots
        // from new volumes made as it says, as in Nova.
        if let Some(b) = &boot {
            req.block_devices.extend(image_defined_volumes(b)?);
            if super::volume_attachments::boots_from_volume(&req.block_devices) {
                boot = None;
            }
        }
        if let Some(boot) = &boot {
            let image_size = boot
                .image
                .virtual_size
                .or(boot.image.size)
                .unwrap_or(0)
                .max(0) as u64;
            if flavor.root_gb > 0 && (flavor.root_gb as u64) * GIB < image_size {
                return Err(Error::bad_request(
                    "Flavor's disk is too small for requested image.",
                ));
            }
            if flavor.root_gb > 0 && boot.image.min_disk > flavor.root_gb {
                return Err(Error::bad_request(
                    "Flavor's disk is too small for requested image.",
                ));
            }
            if boot.image.min_ram > flavor.memory_mb {
                return Err(Error::bad_request(
                    "Flavor's memory is too small for requested image.",
                ));
            }
        }
        // Keypair.
        let key_data = match &req.key_name {
            None => None,
            Some(k) => match store::keypairs::get(&self.db, &caller.user_id, k).await? {
                Some(kp) => Some(kp.public_key),
                None => return Err(Error::bad_request("Invalid key_name provided.")),
            },
        };
        // Availability zone.
        if let Some(az) = &req.availability_zone {
            let mut conn = self.read().await?;
            let hosts = store::hosts::list(&mut conn).await?;
            if !hosts.iter().any(|h| &h.availability_zone == az) && az != &self.settings.default_az
            {
                return Err(Error::bad_request(
                    "The requested availability zone is not available",
                ));
            }
        }
        if req.forced_host.is_some() && !caller.is_admin() {
            return Err(super::policy("os_compute_api:servers:create:forced_host"));
        }
        // Metadata quota.
        let meta_limit = self.quota_limit(&project, "metadata_items").await?;
        if meta_limit >= 0 && req.metadata.len() as i64 > meta_limit {
            return Err(Error::forbidden(format!(
                "Quota exceeded for metadata_items: Requested {}, but already used 0 of {meta_limit} metadata_items",
                req.metadata.len()
            )));
        }
        let nics = self
            .resolve_networks(&project, &req.networks, req.max_count)
            .await?;
        self.check_boot_volumes(caller, &req.block_devices, req.max_count)
            .await?;
        if !req.security_groups.is_empty() {
            self.check_security_groups(&project, &req.security_groups)
                .await?;
        }
        self.check_hints(&project, &req.hints, req.max_count)
            .await?;
        let snapshot = FlavorSnapshot {
            id: flavor.id.clone(),
            name: flavor.name.clone(),
            vcpus: flavor.vcpus,
            memory_mb: flavor.memory_mb,
            root_gb: flavor.root_gb,
            ephemeral_gb: flavor.ephemeral_gb,
            swap: flavor.swap,
            extra_specs: flavor.extra_specs.clone(),
        };
        let reservation_id = format!("r-{}", &nubo_common::ids::new_hex_id()[..8]);
        let admin_pass = req.admin_pass.clone().unwrap_or_else(random_password);
        let security_groups = if req.security_groups.is_empty() {
            vec!["default".to_string()]
        } else {
            req.security_groups.clone()
        };
        // Quota and rows, in one transaction.
        let limits = self.limits_of(&project).await?;
        let mut tx = self.write().await?;
        let (used_n, used_cores, used_ram) =
            store::servers::project_usage(&mut tx, &project).await?;
        let fits = |n: i64| -> Option<(&'static str, i64, i64, i64)> {
            for (res, used, each) in [
                ("instances", used_n, 1),
                ("cores", used_cores, flavor.vcpus),
                ("ram", used_ram, flavor.memory_mb),
            ] {
                let limit = limits.get(res).copied().unwrap_or(-1);
                if limit >= 0 && used + each * n > limit {
                    return Some((res, each * n, used, limit));
                }
            }
            None
        };
        let mut count = req.max_count;
        while count >= req.min_count && fits(count).is_some() {
            count -= 1;
        }
        if count < req.min_count {
            let (res, asked, used, limit) = fits(req.min_count).expect("over quota");
            return Err(Error::forbidden(format!(
                "Quota exceeded for {res}: Requested {asked}, but already used {used} of {limit} {res}"
            )));
        }
        let mut rows = Vec::new();
        let now = now();
        for index in 0..count {
            let seq = store::servers::next_seq(&mut tx).await?;
            let name = if count > 1 {
                format!("{}-{}", req.name, index + 1)
            } else {
                req.name.clone()
            };
            let hostname = match &req.hostname {
                Some(h) => h.clone(),
                None => sanitize_hostname(&name),
            };
            let row = ServerRow {
                id: nubo_common::ids::new_uuid(),
                seq,
                name,
                project_id: project.clone(),
                user_id: caller.user_id.clone(),
                reservation_id: reservation_id.clone(),
                launch_index: index,
                hostname,
                description: req.description.clone(),
                vm_state: "building".into(),
                task_state: Some("scheduling".into()),
                power_state: 0,
                host: None,
                availability_zone: None,
                requested_az: req.availability_zone.clone(),
                flavor: snapshot.clone(),
                image_ref: req.image_id.clone(),
                disk_name: None,
                old_disk: None,
                key_name: req.key_name.clone(),
                key_data: key_data.clone(),
                user_data: req.user_data.clone(),
                config_drive: req.config_drive,
                access_ipv4: req.access_ipv4.clone(),
                access_ipv6: req.access_ipv6.clone(),
                metadata: req.metadata.clone(),
                tags: req.tags.clone(),
                security_groups: security_groups.clone(),
                networks: serde_json::to_value(&nics).unwrap_or(Value::Null),
                ports: Vec::new(),
                locked: false,
                locked_by: None,
                locked_reason: None,
                fault: None,
                desired_power: "running".into(),
                hard_stop: false,
                reboot_seq: 0,
                reboot_hard: false,
                respawn_seq: 0,
                applied_reboot_seq: 0,
                applied_respawn_seq: 0,
                deleting: false,
                attempts: 0,
                observed_reason: None,
                created_at: now.clone(),
                updated_at: now.clone(),
                launched_at: None,
                disk_config: req.disk_config.clone(),
            };
            store::servers::insert(&mut tx, &row).await?;
            self.record_hints(&mut tx, &row.id, &req.hints).await?;
            store::actions::record(
                &mut tx,
                &row.id,
                "create",
                request_id,
                &caller.user_id,
                &project,
                "compute__do_build_and_run_instance",
                None,
                &now,
            )
            .await?;
            rows.push(row);
        }
        tx.commit().await?;
        for row in &rows {
            self.building.lock().insert(row.id.clone());
            let this = self.clone();
            let id = row.id.clone();
            let boot = boot.clone();
            let forced = req.forced_host.clone();
            let volumes = req.block_devices.clone();
            tokio::spawn(async move {
                if let Err(e) = this.clone().build(&id, boot, forced, volumes).await {
                    tracing::error!(server_id = %id, error = %e, "create sequence failed");
                    let _ = this
                        .fail_build(&id, 500, "Build of instance aborted.", Some(&e.to_string()))
                        .await;
                }
                this.building.lock().remove(&id);
                this.finish_if_deleting(&id).await;
            });
        }
        Ok(Created {
            servers: rows,
            reservation_id,
            return_reservation_id: req.return_reservation_id,
            admin_pass,
        })
    }

    async fn load(&self, id: &str) -> Result<Option<ServerRow>> {
        let mut conn = self.read().await?;
        store::servers::get(&mut conn, id).await
    }

    /// Applies `change` to the server inside a write transaction; `None` when it is gone.
    pub(crate) async fn modify<F>(&self, id: &str, change: F) -> Result<Option<ServerRow>>
    where
        F: FnOnce(&mut ServerRow) -> Result<()>,
    {
        let mut tx = self.write().await?;
        let Some(mut row) = store::servers::get(&mut tx, id).await? else {
            return Ok(None);
        };
        change(&mut row)?;
        row.updated_at = now();
        store::servers::update(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The create sequence of one server (this task owns the server until it returns).
    async fn build(
        self: Arc<Self>,
        id: &str,
        boot: Option<BootImage>,
        forced_host: Option<String>,
        volumes: Vec<nubo_volume::BootVolumeRequest>,
    ) -> Result<()> {
        let mut excluded: Vec<String> = Vec::new();
        let mut last_reason = String::new();
        for attempt in 1..=self.settings.max_build_attempts {
            // 1. Claim.
            let Some(row) = self.load(id).await? else {
                return Ok(());
            };
            if row.deleting {
                return Ok(());
            }
            let host = if self.injected(BuildStep::Claim) {
                None
            } else {
                let mut tx = self.write().await?;
                let mut chosen = self.claim_for(&mut tx, &row, &excluded).await?;
                if let Some(forced) = &forced_host {
                    chosen = chosen.filter(|h| &h.name == forced);
                    if chosen.is_none() {
                        // A forced host skips the weigher but not the resource filters.
                        let states = self.host_states(&mut tx).await?;
                        chosen = states
                            .into_iter()
                            .find(|h| &h.host.name == forced && h.up)
                            .map(|h| h.host);
                    }
                }
                if let Some(h) = &chosen {
                    let mut r = store::servers::get(&mut tx, id)
                        .await?
                        .ok_or_else(|| server_not_found(id))?;
                    r.host = Some(h.name.clone());
                    r.availability_zone = Some(h.availability_zone.clone());
                    r.task_state = Some("networking".into());
                    r.attempts = attempt as i64;
                    r.observed_reason = None;
                    r.updated_at = now();
                    store::servers::update(&mut tx, &r).await?;
                    tx.commit().await?;
                }
                chosen
            };
            let Some(host) = host else {
                let message = if last_reason.is_empty() {
                    "No valid host was found. There are not enough hosts available.".to_string()
                } else {
                    format!(
                        "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance {id}."
                    )
                };
                let details = (!last_reason.is_empty()).then_some(last_reason.as_str());
                self.fail_build(id, 500, &message, details).await?;
                return Ok(());
            };
            tracing::debug!(server_id = %id, host = %host.name, attempt, "claimed");
            // 2. Ports; 3. disk; 4. desired state. Any failure undoes everything.
            match self.place(id, &host.name, boot.as_ref(), &volumes).await {
                Ok(true) => {}
                Ok(false) => {
                    // Deleted meanwhile: undone already.
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(server_id = %id, host = %host.name, error = %e, "create step failed, undone");
                    self.undo_placement(id).await?;
                    let message = if e.status.is_server_error() {
                        format!(
                            "Build of instance {id} aborted: {}",
                            e.internal.clone().unwrap_or(e.message.clone())
                        )
                    } else {
                        e.message.clone()
                    };
                    self.fail_build(id, e.status.as_u16(), &message, None)
                        .await?;
                    return Ok(());
                }
            }
            // 5. Wait for the agent.
            let timeout = self.settings.build_timeout;
            let outcome = self
                .wait_server(id, timeout, |r| {
                    r.deleting || r.vm_state != "building" || r.observed_reason.is_some()
                })
                .await?;
            let Some(row) = outcome else { return Ok(()) };
            if row.deleting {
                return Ok(());
            }
            if row.vm_state != "building" {
                return Ok(());
            }
            last_reason = row
                .observed_reason
                .clone()
                .unwrap_or_else(|| format!("spawn on {} timed out", host.name));
            tracing::warn!(server_id = %id, host = %host.name, reason = %last_reason, "spawn failed, rescheduling");
            self.undo_placement(id).await?;
            excluded.push(host.name.clone());
        }
        self.fail_build(
            id,
            500,
            &format!("Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance {id}."),
            Some(&last_reason),
        )
        .await
    }

    /// Steps 2 to 4 on `host`. `Ok(false)`: the server was deleted meanwhile (everything undone).
    async fn place(
        &self,
        id: &str,
        host: &str,
        boot: Option<&BootImage>,
        volumes: &[nubo_volume::BootVolumeRequest],
    ) -> Result<bool> {
        let Some(row) = self.load(id).await? else {
            return Ok(false);
        };
        // 2. Ports.
        let nics: Vec<NicRequest> =
            serde_json::from_value(row.networks.clone()).unwrap_or_default();
        // Whether any port got a security group (see after the loop).
        let mut grouped = false;
        for nic in &nics {
            if self.injected(BuildStep::Ports) {
                return Err(Error::internal("injected failure: ports"));
            }
            let state = if let Some(port) = &nic.port_id {
                self.network
                    .bind_server_port(&row.project_id, port, id, host)
                    .await?
            } else {
                // Only `default` (what an empty request means) is left to Networking, as Nova's
                // _clean_security_groups: it applies the default group where port security is
                // on, and none on a network without it (no error).
                let groups = (!row.security_groups.is_empty()
                    && row.security_groups != ["default"])
                .then(|| row.security_groups.clone());
                self.network
                    .create_server_port(&ServerPortRequest {
                        project_id: row.project_id.clone(),
                        network_id: nic.network_id.clone().unwrap_or_default(),
                        server_id: id.to_string(),
                        host: host.to_string(),
                        fixed_ip: nic.fixed_ip.clone(),
                        security_groups: groups,
                    })
                    .await?
            };
            grouped |= !state.security_groups.is_empty();
            let network_name = self.network_name(&row.project_id, &state.network_id).await;
            let port = ServerPort {
                port_id: state.id.clone(),
                created: nic.port_id.is_none(),
                mac: state.mac_address.clone(),
                network_id: state.network_id.clone(),
                network_name,
                ips: state
                    .fixed_ips
                    .iter()
                    .map(|i| i.ip_address.clone())
                    .collect(),
                tag: nic.tag.clone(),
            };
            // Record each port at once so that an undo finds it.
            let recorded = self
                .modify(id, |r| {
                    r.ports.push(port.clone());
                    Ok(())
                })
                .await?;
            if recorded.is_none_or(|r| r.deleting) {
                self.undo_placement(id).await?;
                return Ok(false);
            }
        }
        // A server that only had the implied `default` and whose ports got no group (port
        // security off) shows none, as Nova derives `security_groups` from the ports.
        let implied_default_only =
            !grouped && !nics.is_empty() && row.security_groups == ["default"];
        // 3. Disk.
        let Some(row) = self
            .modify(id, |r| {
                r.task_state = Some("block_device_mapping".into());
                if implied_default_only {
                    r.security_groups.clear();
                }
                Ok(())
            })
            .await?
        else {
            return Ok(false);
        };
        if row.deleting {
            self.undo_placement(id).await?;
            return Ok(false);
        }
        if self.injected(BuildStep::Disk) {
            return Err(Error::internal("injected failure: disk"));
        }
        // Volumes first (block storage, issue 7): a boot volume is the root disk.
        let disk = match self.prepare_volumes(&row, volumes).await? {
            Some(root) => root,
            None => {
                let Some(boot) = boot else {
                    return Err(Error::internal("no image and no boot volume"));
                };
                let disk = format!("disk-{id}");
                let size = (row.flavor.root_gb > 0).then(|| row.flavor.root_gb as u64 * GIB);
                self.blockstore
                    .create_clone(&boot.source(), &disk, size)
                    .await
                    .map_err(|e| Error::internal(format!("disk clone: {e}")))?;
                disk
            }
        };
        // 4. Desired state.
        let recorded = self
            .modify(id, |r| {
                r.disk_name = Some(disk.clone());
                Ok(())
            })
            .await?;
        if recorded.is_none_or(|r| r.deleting) {
            self.undo_placement(id).await?;
            return Ok(false);
        }
        if self.injected(BuildStep::Desired) {
            return Err(Error::internal("injected failure: desired state"));
        }
        let mut tx = self.write().await?;
        let Some(mut r) = store::servers::get(&mut tx, id).await? else {
            return Ok(false);
        };
        r.task_state = Some("spawning".into());
        r.updated_at = now();
        store::servers::update(&mut tx, &r).await?;
        let generation = self.bump_host(&mut tx, host).await?;
        tx.commit().await?;
        self.signal_host(host, generation);
        Ok(true)
    }

    pub(crate) async fn network_name(&self, project: &str, network_id: &str) -> String {
        let ctx = nubo_network::service::Ctx::system(project);
        match self.network.get_network(&ctx, network_id).await {
            Ok(v) => v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(network_id)
                .to_string(),
            Err(_) => network_id.to_string(),
        }
    }

    /// Releases what steps 1 to 4 made: the VM leaves the host's desired state, ports are
    /// deleted (or unbound, when the user brought them), the disk clone is deleted and the
    /// claim dropped. Idempotent.
    pub(crate) async fn undo_placement(&self, id: &str) -> Result<()> {
        let Some(row) = self.load(id).await? else {
            return Ok(());
        };
        for port in &row.ports {
            self.network
                .release_server_port(&port.port_id, port.created)
                .await?;
        }
        if let Some(disk) = row
            .disk_name
            .as_ref()
            .filter(|d| super::volume_attachments::owns_disk(d))
        {
            self.blockstore
                .delete(disk)
                .await
                .map_err(|e| Error::internal(format!("disk delete: {e}")))?;
        }
        let old_host = row.host.clone();
        let mut tx = self.write().await?;
        if let Some(mut r) = store::servers::get(&mut tx, id).await? {
            r.ports.clear();
            r.disk_name = None;
            r.host = None;
            r.availability_zone = None;
            r.task_state = if r.deleting {
                Some("deleting".into())
            } else {
                Some("scheduling".into())
            };
            r.updated_at = now();
            store::servers::update(&mut tx, &r).await?;
        }
        let generation = match &old_host {
            Some(h) => Some((h.clone(), self.bump_host(&mut tx, h).await?)),
            None => None,
        };
        tx.commit().await?;
        if let Some((h, g)) = generation {
            self.signal_host(&h, g);
        }
        Ok(())
    }

    /// ERROR with a fault; everything placed is released first.
    pub(crate) async fn fail_build(
        &self,
        id: &str,
        code: u16,
        message: &str,
        details: Option<&str>,
    ) -> Result<()> {
        self.undo_placement(id).await?;
        let fault = Fault {
            code,
            message: message.to_string(),
            details: details.map(String::from),
            created: now(),
        };
        let mut tx = self.write().await?;
        if let Some(mut r) = store::servers::get(&mut tx, id).await? {
            if !r.deleting {
                r.vm_state = "error".into();
                r.task_state = None;
            }
            r.fault = Some(fault);
            r.updated_at = now();
            store::servers::update(&mut tx, &r).await?;
            store::actions::finish(&mut tx, id, "Error", Some("Error"), Some(message), &now())
                .await?;
        }
        tx.commit().await?;
        self.signal_server(id);
        tracing::warn!(server_id = %id, message, "server in ERROR");
        Ok(())
    }

    // ----- delete -----

    /// `DELETE /servers/{id}` and `forceDelete`.
    pub async fn delete_server(&self, caller: &Caller, id: &str, request_id: &str) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:servers:delete")?;
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {id} is locked")));
        }
        let mut tx = self.write().await?;
        let Some(mut r) = store::servers::get(&mut tx, id).await? else {
            return Err(server_not_found(id));
        };
        if r.deleting {
            return Ok(());
        }
        r.deleting = true;
        r.task_state = Some("deleting".into());
        r.updated_at = now();
        store::servers::update(&mut tx, &r).await?;
        store::actions::record(
            &mut tx,
            id,
            "delete",
            request_id,
            &caller.user_id,
            &r.project_id,
            "compute_terminate_instance",
            r.host.as_deref(),
            &now(),
        )
        .await?;
        let generation = match &r.host {
            Some(h) => Some((h.clone(), self.bump_host(&mut tx, h).await?)),
            None => None,
        };
        let host_up = match &r.host {
            Some(h) => store::hosts::get(&mut tx, h)
                .await?
                .is_some_and(|h| self.is_up(&h)),
            None => false,
        };
        tx.commit().await?;
        if let Some((h, g)) = generation {
            self.signal_host(&h, g);
        }
        self.signal_server(id);
        // Nothing on a host (never placed, or the host is down): delete locally now. A building
        // server is finished by its create task.
        let building = self.building.lock().contains(id);
        if !building && (r.host.is_none() || !host_up || r.disk_name.is_none()) {
            self.finalize_delete(id).await?;
        }
        Ok(())
    }

    /// When the create task ends on a server marked for deletion, finish the delete.
    async fn finish_if_deleting(&self, id: &str) {
        if let Ok(Some(row)) = self.load(id).await {
            if row.deleting {
                let on_host =
                    row.host.is_some() && row.disk_name.is_some() && row.vm_state != "building";
                if !on_host {
                    if let Err(e) = self.finalize_delete(id).await {
                        tracing::warn!(server_id = %id, error = %e, "delete after build failed");
                    }
                }
            }
        }
    }

    /// The last step of delete, once no VM runs: ports, disk, row. Idempotent.
    pub(crate) async fn finalize_delete(&self, id: &str) -> Result<()> {
        let Some(row) = self.load(id).await? else {
            return Ok(());
        };
        if !row.deleting {
            return Ok(());
        }
        for port in &row.ports {
            self.network
                .release_server_port(&port.port_id, port.created)
                .await?;
        }
        // A boot volume is Block Storage's: released (and deleted when so asked) there.
        self.release_volumes(id).await?;
        for disk in row.disk_name.iter().chain(row.old_disk.iter()) {
            if !super::volume_attachments::owns_disk(disk) {
                continue;
            }
            self.blockstore
                .delete(disk)
                .await
                .map_err(|e| Error::internal(format!("disk delete {disk}: {e}")))?;
        }
        let mut tx = self.write().await?;
        store::servers::delete(&mut tx, id).await?;
        // Its instance actions stay (os-instance-actions at 2.21+), its group membership goes.
        self.forget_server(&mut tx, &row).await?;
        tx.commit().await?;
        self.signal_server(id);
        tracing::info!(server_id = %id, "server deleted");
        Ok(())
    }

    // ----- list -----

    pub async fn list_servers(&self, caller: &Caller, q: &ListQuery) -> Result<Vec<ServerRow>> {
        require_reader(caller)?;
        let admin = caller.is_admin();
        let project_filter: Option<String> = if admin && q.all_tenants {
            q.project_id.clone()
        } else {
            Some(caller.require_project()?.to_string())
        };
        let mut rows = {
            let mut conn = self.read().await?;
            store::servers::list(&mut conn, project_filter.as_deref()).await?
        };
        if let Some(name) = &q.name {
            let re = compile_regex(name)?;
            rows.retain(|r| re.is_match(&r.name));
        }
        if let Some(status) = &q.status {
            match views::states_of_status(status) {
                Some(states) => rows.retain(|r| {
                    states.contains(&r.vm_state.as_str())
                        && views::status(&r.vm_state, r.task_state.as_deref())
                            .eq_ignore_ascii_case(status)
                }),
                None => {
                    if admin {
                        return Err(Error::bad_request("Invalid status value"));
                    }
                    rows.clear();
                }
            }
        }
        if let Some(image) = &q.image {
            let image = ref_id(image);
            rows.retain(|r| r.image_ref == image);
        }
        if let Some(flavor) = &q.flavor {
            let flavor = ref_id(flavor);
            rows.retain(|r| r.flavor.id == flavor);
        }
        if let Some(host) = &q.host {
            if admin {
                rows.retain(|r| r.host.as_deref() == Some(host.as_str()));
            }
        }
        if let Some(rid) = &q.reservation_id {
            rows.retain(|r| &r.reservation_id == rid);
        }
        if let Some(k) = &q.key_name {
            rows.retain(|r| r.key_name.as_deref() == Some(k.as_str()));
        }
        if let Some(az) = &q.availability_zone {
            rows.retain(|r| r.availability_zone.as_deref() == Some(az.as_str()));
        }
        if let Some(u) = &q.user_id {
            rows.retain(|r| &r.user_id == u);
        }
        if let Some(locked) = &q.locked {
            let want = parse_bool(&json!(locked), "locked")?;
            rows.retain(|r| r.locked == want);
        }
        for (param, after) in [(&q.changes_since, true), (&q.changes_before, false)] {
            if let Some(t) = param {
                let t = nubo_common::time::parse(t).ok_or_else(|| {
                    Error::bad_request(format!(
                        "Invalid input for query parameters changes-since. Value: {t}."
                    ))
                })?;
                rows.retain(|r| {
                    let u = nubo_common::time::parse(&r.updated_at).unwrap_or(t);
                    if after {
                        u >= t
                    } else {
                        u <= t
                    }
                });
            }
        }
        if let (Some(since), Some(before)) = (&q.changes_since, &q.changes_before) {
            if nubo_common::time::parse(since) > nubo_common::time::parse(before) {
                return Err(Error::bad_request(
                    "The value of changes-since must be less than or equal to changes-before.",
                ));
            }
        }
        for (param, v6) in [(&q.ip, false), (&q.ip6, true)] {
            if let Some(ip) = param {
                let re = compile_regex(ip)?;
                rows.retain(|r| {
                    r.ports
                        .iter()
                        .flat_map(|p| p.ips.iter())
                        .any(|a| a.contains(':') == v6 && re.is_match(a))
                });
            }
        }
        let split = |s: &Option<String>| -> Vec<String> {
            s.as_deref()
                .map(|t| {
                    t.split(',')
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let tags = split(&q.tags);
        if !tags.is_empty() {
            rows.retain(|r| tags.iter().all(|t| r.tags.contains(t)));
        }
        let tags_any = split(&q.tags_any);
        if !tags_any.is_empty() {
            rows.retain(|r| tags_any.iter().any(|t| r.tags.contains(t)));
        }
        let not_tags = split(&q.not_tags);
        if !not_tags.is_empty() {
            rows.retain(|r| !not_tags.iter().all(|t| r.tags.contains(t)));
        }
        let not_tags_any = split(&q.not_tags_any);
        if !not_tags_any.is_empty() {
            rows.retain(|r| !not_tags_any.iter().any(|t| r.tags.contains(t)));
        }
        // Sort: created_at desc, id desc by default.
        let mut keys: Vec<(String, bool)> = Vec::new();
        for (i, k) in q.sort_keys.iter().enumerate() {
            let valid = [
                "access_ip_v4",
                "access_ip_v6",
                "auto_disk_config",
                "availability_zone",
                "config_drive",
                "created_at",
                "display_description",
                "display_name",
                "host",
                "hostname",
                "image_ref",
                "instance_type_id",
                "kernel_id",
                "key_name",
                "launch_index",
                "launched_at",
                "locked",
                "locked_by",
                "node",
                "power_state",
                "progress",
                "project_id",
                "ramdisk_id",
                "root_device_name",
                "task_state",
                "terminated_at",
                "updated_at",
                "user_id",
                "uuid",
                "vm_state",
            ];
            if !valid.contains(&k.as_str()) {
                return Err(Error::bad_request(format!("Invalid sort key: {k}")));
            }
            if !admin && ["host", "node"].contains(&k.as_str()) {
                return Err(Error::forbidden(format!(
                    "Only administrators can sort servers by {k}"
                )));
            }
            let dir = q.sort_dirs.get(i).map(String::as_str).unwrap_or("desc");
            if dir != "asc" && dir != "desc" {
                return Err(Error::bad_request(format!("Invalid sort direction: {dir}")));
            }
            keys.push((k.clone(), dir == "desc"));
        }
        if keys.is_empty() {
            keys.push(("created_at".into(), true));
        }
        keys.push(("uuid".into(), true));
        let field = |r: &ServerRow, k: &str| -> String {
            match k {
                "display_name" => r.name.clone(),
                "created_at" => r.created_at.clone(),
                "updated_at" => r.updated_at.clone(),
                "launched_at" => r.launched_at.clone().unwrap_or_default(),
                "host" | "node" => r.host.clone().unwrap_or_default(),
                "hostname" => r.hostname.clone(),
                "image_ref" => r.image_ref.clone(),
                "key_name" => r.key_name.clone().unwrap_or_default(),
                "vm_state" => r.vm_state.clone(),
                "task_state" => r.task_state.clone().unwrap_or_default(),
                "power_state" => format!("{:03}", r.power_state),
                "project_id" => r.project_id.clone(),
                "user_id" => r.user_id.clone(),
                "availability_zone" => r.availability_zone.clone().unwrap_or_default(),
                "launch_index" => format!("{:08}", r.launch_index),
                "instance_type_id" => r.flavor.id.clone(),
                "display_description" => r.description.clone().unwrap_or_default(),
                "locked" => r.locked.to_string(),
                "access_ip_v4" => r.access_ipv4.clone(),
                "access_ip_v6" => r.access_ipv6.clone(),
                _ => r.id.clone(),
            }
        };
        rows.sort_by(|a, b| {
            for (k, desc) in &keys {
                let ord = field(a, k).cmp(&field(b, k));
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        if let Some(marker) = &q.marker {
            let at = rows
                .iter()
                .position(|r| &r.id == marker)
                .ok_or_else(|| Error::bad_request(format!("marker [{marker}] not found")))?;
            rows.drain(..=at);
        }
        let limit = match &q.limit {
            None => 1000,
            Some(l) => l.parse::<i64>().ok().filter(|l| *l >= 0).ok_or_else(|| {
                Error::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}."
                ))
            })? as usize,
        };
        rows.truncate(limit.min(1000));
        Ok(rows)
    }

    /// The host status of each host, for list views (2.16).
    pub(crate) async fn host_statuses(&self) -> Result<BTreeMap<String, String>> {
        let mut conn = self.read().await?;
        let hosts = store::hosts::list(&mut conn).await?;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let s = if !self.is_up(&h) {
                    "DOWN"
                } else if !h.enabled {
                    "MAINTENANCE"
                } else {
                    "UP"
                };
                (h.name, s.to_string())
            })
            .collect())
    }

    // ----- update -----

    pub async fn update_server(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
        mv: Microversion,
    ) -> Result<ServerRow> {
        self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:servers:update")?;
        let s = body
            .get("server")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("server"))?;
        let mut name = None;
        if let Some(v) = s.get("name") {
            match v {
                Value::String(n) if valid_name(n) => name = Some(n.clone()),
                _ => return Err(invalid("name")),
            }
        }
        let mut description: Option<Option<String>> = None;
        if let Some(v) = s.get("description") {
            if !mv.at_least(19) {
                return Err(invalid("description"));
            }
            match v {
                Value::Null => description = Some(None),
                Value::String(d) if d.chars().count() <= 255 => description = Some(Some(d.clone())),
                _ => return Err(invalid("description")),
            }
        }
        let mut v4 = None;
        let mut v6 = None;
        if let Some(v) = s.get("accessIPv4") {
            match v.as_str().map(|a| a.parse::<std::net::Ipv4Addr>()) {
                Some(Ok(a)) => v4 = Some(a.to_string()),
                _ if v.is_null() || v.as_str() == Some("") => v4 = Some(String::new()),
                _ => return Err(invalid("accessIPv4")),
            }
        }
        if let Some(v) = s.get("accessIPv6") {
            match v.as_str().map(|a| a.parse::<std::net::Ipv6Addr>()) {
                Some(Ok(a)) => v6 = Some(a.to_string()),
                _ if v.is_null() || v.as_str() == Some("") => v6 = Some(String::new()),
                _ => return Err(invalid("accessIPv6")),
            }
        }
        let hostname = match s.get("hostname") {
            None => None,
            Some(Value::String(h)) if mv.at_least(90) => Some(h.clone()),
            Some(_) => return Err(invalid("hostname")),
        };
        let disk_config = match s.get("OS-DCF:diskConfig") {
            None => None,
            Some(Value::String(d)) if d == "AUTO" || d == "MANUAL" => Some(d.clone()),
            Some(_) => return Err(invalid("OS-DCF:diskConfig")),
        };
        self.modify(id, |r| {
            if let Some(d) = disk_config {
                r.disk_config = d;
            }
            if let Some(n) = name {
                r.name = n;
            }
            if let Some(d) = description {
                r.description = d;
            }
            if let Some(a) = v4 {
                r.access_ipv4 = a;
            }
            if let Some(a) = v6 {
                r.access_ipv6 = a;
            }
            if let Some(h) = hostname {
                r.hostname = h;
            }
            Ok(())
        })
        .await?
        .ok_or_else(|| server_not_found(id))
    }

    // ----- metadata -----

    fn check_meta_state(row: &ServerRow) -> Result<()> {
        if row.deleting
            || ![
                "active",
                "paused",
                "suspended",
                "stopped",
                "building",
                "error",
            ]
            .contains(&row.vm_state.as_str())
        {
            return Err(Error::conflict(format!(
                "Cannot 'update metadata' instance {} while it is in vm_state {}",
                row.id, row.vm_state
            )));
        }
        Ok(())
    }

    pub async fn server_metadata(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BTreeMap<String, String>> {
        Ok(self.visible_server(caller, id).await?.metadata)
    }

    /// Replaces (`replace`) or merges metadata; returns the resulting map.
    pub async fn set_server_metadata(
        &self,
        caller: &Caller,
        id: &str,
        meta: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:server-metadata:update")?;
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {id} is locked")));
        }
        Self::check_meta_state(&row)?;
        let limit = self.quota_limit(&row.project_id, "metadata_items").await?;
        let mut result = if replace {
            BTreeMap::new()
        } else {
            row.metadata.clone()
        };
        result.extend(meta);
        if limit >= 0 && result.len() as i64 > limit {
            return Err(Error::forbidden(format!(
                "Quota exceeded for metadata_items: Requested {}, but already used 0 of {limit} metadata_items",
                result.len()
            )));
        }
        let saved = result.clone();
        self.modify(id, move |r| {
            r.metadata = saved;
            Ok(())
        })
        .await?;
        Ok(result)
    }

    pub async fn delete_server_metadata(&self, caller: &Caller, id: &str, key: &str) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:server-metadata:delete")?;
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {id} is locked")));
        }
        Self::check_meta_state(&row)?;
        if !row.metadata.contains_key(key) {
            return Err(Error::not_found("Metadata item was not found"));
        }
        self.modify(id, |r| {
            r.metadata.remove(key);
            Ok(())
        })
        .await?;
        Ok(())
    }

    // ----- tags -----

    pub async fn server_tags(&self, caller: &Caller, id: &str) -> Result<Vec<String>> {
        Ok(self.visible_server(caller, id).await?.tags)
    }

    pub async fn set_server_tags(
        &self,
        caller: &Caller,
        id: &str,
        tags: Option<Vec<String>>,
        add: Option<String>,
        remove: Option<String>,
    ) -> Result<(Vec<String>, bool)> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-server-tags:update")?;
        if row.vm_state == "building" || row.deleting {
            return Err(Error::conflict(format!(
                "Cannot 'update tags' instance {id} while it is in vm_state {}",
                row.vm_state
            )));
        }
        let mut result = row.tags.clone();
        let mut created = false;
        if let Some(tags) = tags {
            if tags.len() > 50 || !tags.iter().all(|t| valid_tag(t)) {
                return Err(invalid("tags"));
            }
            result = Vec::new();
            for t in tags {
                if !result.contains(&t) {
                    result.push(t);
                }
            }
        }
        if let Some(tag) = add {
            if !valid_tag(&tag) {
                return Err(invalid("tag"));
            }
            if !result.contains(&tag) {
                if result.len() >= 50 {
                    return Err(Error::bad_request(
                        "The number of tags exceeded the per-server limit 50",
                    ));
                }
                result.push(tag);
                created = true;
            }
        }
        if let Some(tag) = remove {
            if !result.contains(&tag) {
                return Err(Error::not_found(format!(
                    "Tag '{tag}' could not be found for instance {id}."
                )));
            }
            result.retain(|t| t != &tag);
        }
        let saved = result.clone();
        self.modify(id, move |r| {
            r.tags = saved;
            Ok(())
        })
        .await?;
        Ok((result, created))
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_hostname;

    #[test]
    fn hostnames_are_sanitized_as_nova_does() {
        assert_eq!(
            sanitize_hostname("guest-instance-1.domain.com"),
            "guest-instance-1-domain-com"
        );
        assert_eq!(sanitize_hostname("My Server_1"), "my-server-1");
        assert_eq!(sanitize_hostname("--a$b--"), "ab");
        assert_eq!(sanitize_hostname("\u{2603}"), "server");
        assert_eq!(sanitize_hostname(&"a".repeat(70)).len(), 63);
    }
}
