//! Ports: a MAC (generated unless given), fixed IPs (see `ipam`), the device using the port,
//! host binding (admins), security groups (the project's `default` group unless told
//! otherwise), port security, allowed address pairs and extra DHCP options.
//!
//! Router, router-gateway and floating-IP ports belong to their router or floating IP: the
//! ports API refuses to delete them (409), and they are `ACTIVE` from birth since there is no
//! agent to wire them yet; other ports start `DOWN` until the data plane reports them up.

use nubo_common::db::is_unique_violation;
use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::ipam::IpRequest;
use super::{
    in_use, is_network_owned, is_router_interface, not_found, policy, Access, Ctx, NetworkService,
    Tx, FLOATINGIP_OWNER, ROUTER_GATEWAY,
};
use crate::addr::{Cidr, Mac};
use crate::input::{invalid, parse_mac, repr, CreateBody, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::networks::NetworkRow;
use crate::store::ports::{AddressPair, DhcpOpt, FixedIp, PortFilter, PortRow};
use crate::store::{self, now, Conn};
use crate::types::{self, PortExtras};

pub const SCHEMA: Schema = Schema {
    collection: "ports",
    filters: &[
        "id",
        "name",
        "description",
        "network_id",
        "project_id",
        "tenant_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
        "fixed_ips",
        "security_groups",
        "port_security_enabled",
        "allowed_address_pairs",
        "extra_dhcp_opts",
        "binding:host_id",
        "binding:vnic_type",
        "binding:vif_type",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "network_id",
    "created_at",
    "updated_at",
    "revision_number",
    "binding:vif_type",
    "binding:vif_details",
];

const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "remote-managed",
];

/// What the data plane plugs ports as (a tap on a Linux bridge).
pub const VIF_TYPE: &str = "bridge";

/// The body of a port create, parsed.
pub(crate) struct NewPort {
    pub network_id: String,
    pub project: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub mac: Option<Mac>,
    pub fixed_ips: Option<Vec<IpRequest>>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Option<Vec<String>>,
    pub port_security_enabled: Option<bool>,
    pub allowed_address_pairs: Option<Vec<Value>>,
    pub extra_dhcp_opts: Vec<Value>,
    pub host_id: Option<String>,
    pub vnic_type: Option<String>,
    pub profile: Option<Map<String, Value>>,
    pub tags: Vec<String>,
}

impl NewPort {
    /// A port Nubo makes for itself (router, gateway, floating IP, server).
    pub fn internal(
        network_id: &str,
        project: &str,
        device_id: &str,
        device_owner: &str,
    ) -> NewPort {
        NewPort {
            network_id: network_id.to_string(),
            project: project.to_string(),
            name: String::new(),
            description: String::new(),
            admin_state_up: true,
            mac: None,
            fixed_ips: None,
            device_id: device_id.to_string(),
            device_owner: device_owner.to_string(),
            security_groups: None,
            port_security_enabled: None,
            allowed_address_pairs: None,
            extra_dhcp_opts: Vec::new(),
            host_id: None,
            vnic_type: None,
            profile: None,
            tags: Vec::new(),
        }
    }
}

/// Parses `fixed_ips` of a request.
pub(crate) fn parse_fixed_ips(values: Vec<Value>) -> Result<Vec<IpRequest>> {
    let mut out = Vec::new();
    for v in values {
        let Value::Object(map) = v else {
            return Err(invalid(
                "fixed_ips",
                format!("Invalid data format for fixed IP: '{}'", repr(&v)),
            ));
        };
        let mut req = IpRequest::default();
        for (k, val) in map {
            match (k.as_str(), val) {
                ("subnet_id", Value::String(s)) => req.subnet_id = Some(s),
                ("ip_address", Value::String(s)) => req.ip_address = Some(s),
                ("subnet_id" | "ip_address", Value::Null) => {}
                (k, _) => {
                    return Err(invalid(
                        "fixed_ips",
                        format!("Invalid data format for fixed IP: '{k}'"),
                    ))
                }
            }
        }
        out.push(req);
    }
    Ok(out)
}

fn parse_address_pairs(values: Vec<Value>, port_mac: &str, max: usize) -> Result<Vec<AddressPair>> {
    if values.len() > max {
        return Err(Error::bad_request(format!(
            "The number of allowed address pair exceeds the maximum {max}."
        ))
        .with_kind("AllowedAddressPairExhausted"));
    }
    let mut out: Vec<AddressPair> = Vec::new();
    for v in values {
        let Value::Object(map) = v else {
            return Err(invalid(
                "allowed_address_pairs",
                format!("'{}' is not a dictionary", repr(&v)),
            ));
        };
        let mut ip = None;
        let mut mac = None;
        for (k, val) in map {
            match (k.as_str(), val) {
                ("ip_address", Value::String(s)) => ip = Some(s),
                ("mac_address", Value::String(s)) => mac = Some(s),
                ("mac_address", Value::Null) => {}
                (k, _) => {
                    return Err(
                        Error::bad_request(format!("Unrecognized attribute(s) '{k}'"))
                            .with_kind("HTTPBadRequest"),
                    )
                }
            }
        }
        let ip = ip.ok_or_else(|| {
            Error::bad_request("AllowedAddressPair must contain ip_address")
                .with_kind("AllowedAddressPairsMissingIP")
        })?;
        let ip_text = match Cidr::parse_with(&ip, true) {
            Some(c) if ip.contains('/') => c.to_string(),
            Some(c) => c.ip.to_string(),
            None => {
                return Err(invalid(
                    "allowed_address_pairs",
                    format!("'{ip}' is not a valid IP address"),
                ))
            }
        };
        let mac = match mac {
            Some(m) => parse_mac("allowed_address_pairs", &m)?.to_string(),
            None => port_mac.to_string(),
        };
        let pair = AddressPair {
            ip_address: ip_text,
            mac_address: mac,
        };
        if out.contains(&pair) {
            return Err(Error::bad_request(format!(
                "Request contains duplicate address pair: mac_address {} ip_address {}.",
                pair.mac_address, pair.ip_address
            ))
            .with_kind("DuplicateAddressPairInRequest"));
        }
        out.push(pair);
    }
    Ok(out)
}

/// Applies requested DHCP options onto `current`: a `null` value removes an option.
fn merge_dhcp_opts(current: &[DhcpOpt], values: Vec<Value>) -> Result<Vec<DhcpOpt>> {
    let mut out = current.to_vec();
    for v in values {
        let Value::Object(map) = v else {
            return Err(invalid(
                "extra_dhcp_opts",
                format!("'{}' is not a dictionary", repr(&v)),
            ));
        };
        let name = map
            .get("opt_name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("extra_dhcp_opts", "opt_name is required"))?
            .to_string();
        let ip_version = match map.get("ip_version") {
            None | Some(Value::Null) => 4,
            Some(v) => crate::input::to_int(v)
                .filter(|v| *v == 4 || *v == 6)
                .ok_or_else(|| {
                    invalid("extra_dhcp_opts", format!("'{}' is not in [4, 6]", repr(v)))
                })?,
        };
        for k in map.keys() {
            if !["opt_name", "opt_value", "ip_version"].contains(&k.as_str()) {
                return Err(invalid(
                    "extra_dhcp_opts",
                    format!("Unrecognized attribute '{k}'"),
                ));
            }
        }
        out.retain(|o| !(o.opt_name == name && o.ip_version == ip_version));
        match map.get("opt_value") {
            None | Some(Value::Null) => {}
            Some(Value::String(value)) => out.push(DhcpOpt {
                opt_name: name,
                opt_value: value.clone(),
                ip_version,
            }),
            Some(other) => out.push(DhcpOpt {
                opt_name: name,
                opt_value: repr(other),
                ip_version,
            }),
        }
    }
    Ok(out)
}

fn port_security_conflict() -> Error {
    Error::bad_request(
        "Port security must be enabled and port must have an IP address in order to use security groups.",
    )
    .with_kind("PortSecurityAndIPRequiredForSecurityGroups")
}

fn address_pairs_need_security() -> Error {
    Error::conflict(
        "Port Security must be enabled in order to have allowed address pairs on a port.",
    )
    .with_kind("AddressPairAndPortSecurityRequired")
}

fn initial_status(device_owner: &str) -> &'static str {
    if device_owner == FLOATINGIP_OWNER {
        "N/A"
    } else if is_network_owned(device_owner) {
        "ACTIVE"
    } else {
        "DOWN"
    }
}

impl NetworkService {
    /// A port the caller may see: its own, or any on a network it owns.
    pub(crate) async fn visible_port(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        id: &str,
    ) -> Result<PortRow> {
        let Some(p) = store::ports::get(conn, id).await? else {
            return Err(not_found("Port", id));
        };
        if ctx.admin || p.project_id == ctx.project {
            return Ok(p);
        }
        match store::networks::get(conn, &p.network_id).await? {
            Some(n) if n.project_id == ctx.project => Ok(p),
            _ => Err(not_found("Port", id)),
        }
    }

    /// Wire forms of `ports`, with their addresses, groups and tags loaded in batches.
    pub(crate) async fn ports_json(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        ports: &[PortRow],
    ) -> Result<Vec<Value>> {
        let ids: Vec<String> = ports.iter().map(|p| p.id.clone()).collect();
        let ips = store::ports::fixed_ips_of(conn, &ids).await?;
        let groups = store::ports::security_groups_of(conn, &ids).await?;
        let tags = store::tags::of_many(conn, "ports", &ids).await?;
        Ok(ports
            .iter()
            .map(|p| {
                types::port(
                    p,
                    PortExtras {
                        fixed_ips: ips.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
                        security_groups: groups.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
                        tags: tags.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
                        admin: ctx.admin,
                    },
                )
            })
            .collect())
    }

    pub(crate) async fn port_json(&self, conn: &mut Conn, ctx: &Ctx, p: &PortRow) -> Result<Value> {
        Ok(self
            .ports_json(conn, ctx, std::slice::from_ref(p))
            .await?
            .pop()
            .unwrap_or(Value::Null))
    }

    pub async fn list_ports(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let filter = PortFilter {
            ids: params.values("id").map(<[String]>::to_vec),
            network_id: params.single("network_id").map(str::to_string),
            device_id: params.single("device_id").map(str::to_string),
            device_owner: params.single("device_owner").map(str::to_string),
            mac_address: params.single("mac_address").map(str::to_string),
            host_id: if ctx.admin {
                params.single("binding:host_id").map(str::to_string)
            } else {
                None
            },
            visible_to: (!ctx.admin).then(|| ctx.project.clone()),
        };
        let ports = store::ports::list(&mut conn, &filter).await?;
        let items = self.ports_json(&mut conn, ctx, &ports).await?;
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_port(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let p = self.visible_port(&mut conn, ctx, id).await?;
        self.port_json(&mut conn, ctx, &p).await
    }

    pub async fn create_ports(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_port")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let new = self.parse_new_port(ctx, map)?;
                let p = self.create_port_tx(&mut tx, ctx, new).await?;
                json!({"port": self.port_json(&mut tx, ctx, &p).await?})
            }
            CreateBody::Bulk(maps) => {
                let mut rows = Vec::new();
                for map in maps {
                    let new = self.parse_new_port(ctx, map)?;
                    rows.push(self.create_port_tx(&mut tx, ctx, new).await?);
                }
                json!({"ports": self.ports_json(&mut tx, ctx, &rows).await?})
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    fn parse_new_port(&self, ctx: &Ctx, map: Map<String, Value>) -> Result<NewPort> {
        let mut input = Input::new(Op::Create, map, READ_ONLY);
        let project = input.project(&ctx.project, ctx.admin)?;
        let network_id = input.string("network_id", 36)?.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        let name = input.string("name", 255)?.unwrap_or_default();
        let description = input.string("description", 255)?.unwrap_or_default();
        let admin_state_up = input.boolean("admin_state_up")?.unwrap_or(true);
        let mac = match input.string("mac_address", 32)? {
            Some(m) => Some(parse_mac("mac_address", &m)?),
            None => None,
        };
        let fixed_ips = match input.list("fixed_ips", false)? {
            Some(v) => Some(parse_fixed_ips(v)?),
            None => None,
        };
        let device_id = input.string("device_id", 255)?.unwrap_or_default();
        let device_owner = input.string("device_owner", 255)?.unwrap_or_default();
        let security_groups = input.string_list("security_groups")?;
        let port_security_enabled = input.boolean("port_security_enabled")?;
        let allowed_address_pairs = input.list("allowed_address_pairs", true)?;
        let extra_dhcp_opts = input.list("extra_dhcp_opts", true)?.unwrap_or_default();
        let host_id = input.string("binding:host_id", 255)?;
        let vnic_type = input.string("binding:vnic_type", 64)?;
        let profile = input.object("binding:profile")?;
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.take("dns_name");
        input.take("dns_domain");
        input.finish()?;
        Ok(NewPort {
            network_id,
            project,
            name,
            description,
            admin_state_up,
            mac,
            fixed_ips,
            device_id,
            device_owner,
            security_groups,
            port_security_enabled,
            allowed_address_pairs,
            extra_dhcp_opts,
            host_id,
            vnic_type,
            profile,
            tags,
        })
    }

    /// The security groups a port may be given: they must exist and belong to its project.
    async fn check_groups(
        &self,
        conn: &mut Conn,
        project: &str,
        groups: &[String],
    ) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for id in groups {
            match store::security_groups::get_group(conn, id).await? {
                Some(g) if g.project_id == project => {
                    if !out.contains(&g.id) {
                        out.push(g.id);
                    }
                }
                _ => return Err(not_found("Security group", id)),
            }
        }
        Ok(out)
    }

    /// Creates a port inside `tx` (authorization included: internal callers pass an admin ctx).
    pub(crate) async fn create_port_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        new: NewPort,
    ) -> Result<PortRow> {
        let access = Access::load(tx).await?;
        let network = self
            .visible_network(tx, ctx, &access, &new.network_id)
            .await?;
        if !access.can_use_network(ctx, &network) {
            return Err(policy("create_port"));
        }
        let network_owner = ctx.owns(&network.project_id);
        if !ctx.admin {
            if is_network_owned(&new.device_owner) && !network_owner {
                return Err(policy("create_port:device_owner"));
            }
            if new.mac.is_some() && !network_owner {
                return Err(policy("create_port:mac_address"));
            }
            if new.host_id.is_some() {
                return Err(policy("create_port:binding:host_id"));
            }
            if new.profile.is_some() {
                return Err(policy("create_port:binding:profile"));
            }
            if !network_owner {
                if new
                    .fixed_ips
                    .as_ref()
                    .is_some_and(|ips| ips.iter().any(|i| i.ip_address.is_some()))
                {
                    return Err(policy("create_port:fixed_ips:ip_address"));
                }
                if new.port_security_enabled.is_some() {
                    return Err(policy("create_port:port_security_enabled"));
                }
                if new
                    .allowed_address_pairs
                    .as_ref()
                    .is_some_and(|p| !p.is_empty())
                {
                    return Err(policy("create_port:allowed_address_pairs"));
                }
            }
        }
        if let Some(v) = &new.vnic_type {
            if !VNIC_TYPES.contains(&v.as_str()) {
                return Err(invalid(
                    "binding:vnic_type",
                    format!(
                        "'{v}' is not in {}",
                        crate::query::py_list(
                            &VNIC_TYPES.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                        )
                    ),
                ));
            }
        }
        let port_security = new
            .port_security_enabled
            .unwrap_or(network.port_security_enabled);
        let id = new_uuid();
        let mac = match new.mac {
            Some(mac) => {
                if store::ports::mac_in_use(tx, &network.id, &mac.to_string()).await? {
                    return Err(in_use(
                        "MacAddressInUse",
                        format!("Unable to complete operation for network {}. The mac address {mac} is in use.", network.id),
                    ));
                }
                mac
            }
            None => self.new_mac(tx, &network.id).await?,
        };
        let mac_text = mac.to_string();
        let pairs = match new.allowed_address_pairs {
            Some(values) if !values.is_empty() => {
                if !port_security {
                    return Err(address_pairs_need_security());
                }
                parse_address_pairs(values, &mac_text, self.settings.max_allowed_address_pairs)?
            }
            _ => Vec::new(),
        };
        let dhcp_opts = merge_dhcp_opts(&[], new.extra_dhcp_opts)?;
        let groups = match new.security_groups {
            Some(groups) if !groups.is_empty() => {
                if !port_security {
                    return Err(port_security_conflict());
                }
                self.check_groups(tx, &new.project, &groups).await?
            }
            Some(_) => Vec::new(),
            None if port_security
                && !is_network_owned(&new.device_owner)
                && !new.project.is_empty() =>
            {
                vec![self.ensure_default_group(tx, &new.project).await?]
            }
            None => Vec::new(),
        };
        self.check_quota(tx, &new.project, "port", 1).await?;
        let now = now();
        let host_id = new.host_id.unwrap_or_default();
        let p = PortRow {
            id: id.clone(),
            project_id: new.project.clone(),
            network_id: network.id.clone(),
            name: new.name,
            description: new.description,
            admin_state_up: new.admin_state_up,
            status: initial_status(&new.device_owner).into(),
            mac_address: mac_text,
            device_id: new.device_id,
            device_owner: new.device_owner,
            port_security_enabled: port_security,
            vif_type: if host_id.is_empty() {
                "unbound".into()
            } else {
                VIF_TYPE.into()
            },
            vif_details: if host_id.is_empty() {
                Map::new()
            } else {
                vif_details()
            },
            host_id,
            vnic_type: new.vnic_type.unwrap_or_else(|| "normal".into()),
            binding_profile: new.profile.unwrap_or_default(),
            allowed_address_pairs: pairs,
            extra_dhcp_opts: dhcp_opts,
            created_at: now.clone(),
            updated_at: now,
            revision_number: 1,
        };
        if let Err(err) = store::ports::insert(tx, &p).await {
            if is_unique_violation(&err) {
                return Err(in_use(
                    "MacAddressInUse",
                    format!("Unable to complete operation for network {}. The mac address {} is in use.", network.id, p.mac_address),
                ));
            }
            return Err(err.into());
        }
        let subnets = store::subnets::of_network(tx, &network.id).await?;
        self.allocate_port_ips(
            tx,
            &network.id,
            &subnets,
            &p.id,
            &mac,
            &p.device_owner,
            new.fixed_ips.as_deref(),
        )
        .await?;
        if !groups.is_empty() {
            store::ports::set_security_groups(tx, &p.id, &groups).await?;
        }
        for tag in new.tags {
            store::tags::add(tx, "ports", &p.id, &tag).await?;
        }
        tracing::debug!(port_id = %p.id, network_id = %p.network_id, "port created");
        Ok(p)
    }

    pub async fn update_port(&self, ctx: &Ctx, id: &str, map: Map<String, Value>) -> Result<Value> {
        let mut tx = self.write().await?;
        let p = self.visible_port(&mut tx, ctx, id).await?;
        let network = store::networks::get(&mut tx, &p.network_id)
            .await?
            .ok_or_else(|| not_found("Port", id))?;
        if !ctx.owns(&p.project_id) && !ctx.owns(&network.project_id) {
            return Err(policy("update_port"));
        }
        ctx.require_member("update_port")?;
        let p = self.update_port_tx(&mut tx, ctx, p, &network, map).await?;
        let body = self.port_json(&mut tx, ctx, &p).await?;
        tx.commit().await?;
        Ok(body)
    }

    pub(crate) async fn update_port_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        mut p: PortRow,
        network: &NetworkRow,
        map: Map<String, Value>,
    ) -> Result<PortRow> {
        let network_owner = ctx.owns(&network.project_id);
        let mut input = Input::new(Op::Update, map, READ_ONLY);
        if let Some(v) = input.string("name", 255)? {
            p.name = v;
        }
        if let Some(v) = input.string("description", 255)? {
            p.description = v;
        }
        if let Some(v) = input.boolean("admin_state_up")? {
            p.admin_state_up = v;
        }
        if let Some(v) = input.string("device_id", 255)? {
            p.device_id = v;
        }
        if let Some(v) = input.string("device_owner", 255)? {
            if is_network_owned(&v) && !network_owner {
                return Err(policy("update_port:device_owner"));
            }
            p.device_owner = v;
        }
        if let Some(m) = input.string("mac_address", 32)? {
            let mac = parse_mac("mac_address", &m)?.to_string();
            if mac != p.mac_address {
                if !ctx.admin {
                    return Err(policy("update_port:mac_address"));
                }
                if p.vif_type != "unbound" {
                    return Err(in_use("PortBound", format!(
                        "Unable to complete operation on port {}, port is already bound, port type: {}, old_mac {}, new_mac {}.",
                        p.id, p.vif_type, p.mac_address, mac
                    )));
                }
                if store::ports::mac_in_use(tx, &p.network_id, &mac).await? {
                    return Err(in_use(
                        "MacAddressInUse",
                        format!("Unable to complete operation for network {}. The mac address {mac} is in use.", p.network_id),
                    ));
                }
                p.mac_address = mac;
            }
        }
        if let Some(v) = input.string("binding:host_id", 255)? {
            if !ctx.admin {
                return Err(policy("update_port:binding:host_id"));
            }
            p.vif_type = if v.is_empty() {
                "unbound".into()
            } else {
                VIF_TYPE.into()
            };
            p.vif_details = if v.is_empty() {
                Map::new()
            } else {
                vif_details()
            };
            p.host_id = v;
        }
        if let Some(v) = input.object("binding:profile")? {
            if !ctx.admin {
                return Err(policy("update_port:binding:profile"));
            }
            p.binding_profile = v;
        }
        if let Some(v) = input.string("binding:vnic_type", 64)? {
            if !VNIC_TYPES.contains(&v.as_str()) {
                return Err(invalid(
                    "binding:vnic_type",
                    format!("'{v}' is not a valid vnic type"),
                ));
            }
            p.vnic_type = v;
        }
        let port_security = input.boolean("port_security_enabled")?;
        let groups = input.string_list("security_groups")?;
        let pairs = input.list("allowed_address_pairs", true)?;
        let dhcp = input.list("extra_dhcp_opts", true)?;
        let fixed_ips = match input.list("fixed_ips", false)? {
            Some(v) => Some(parse_fixed_ips(v)?),
            None => None,
        };
        input.take("dns_name");
        input.take("dns_domain");
        if let Some(project) = input.take("project_id").or_else(|| input.take("tenant_id")) {
            if project.as_str() != Some(p.project_id.as_str()) {
                return Err(
                    Error::bad_request("Cannot update read-only attribute project_id")
                        .with_kind("HTTPBadRequest"),
                );
            }
        }
        input.finish()?;
        if !ctx.admin && !network_owner {
            if port_security.is_some() {
                return Err(policy("update_port:port_security_enabled"));
            }
            if pairs.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(policy("update_port:allowed_address_pairs"));
            }
            if fixed_ips
                .as_ref()
                .is_some_and(|ips| ips.iter().any(|i| i.ip_address.is_some()))
            {
                return Err(policy("update_port:fixed_ips:ip_address"));
            }
        }
        let current_groups = store::ports::security_groups_of(tx, std::slice::from_ref(&p.id))
            .await?
            .remove(&p.id)
            .unwrap_or_default();
        let new_groups = match groups {
            Some(g) if !g.is_empty() => Some(self.check_groups(tx, &p.project_id, &g).await?),
            Some(_) => Some(Vec::new()),
            None => None,
        };
        if let Some(v) = port_security {
            p.port_security_enabled = v;
        }
        let effective_groups = new_groups.clone().unwrap_or(current_groups);
        if let Some(values) = pairs {
            p.allowed_address_pairs = parse_address_pairs(
                values,
                &p.mac_address,
                self.settings.max_allowed_address_pairs,
            )?;
        }
        if !p.port_security_enabled {
            if !effective_groups.is_empty() {
                if new_groups.as_ref().is_some_and(|g| !g.is_empty()) {
                    return Err(port_security_conflict());
                }
                return Err(in_use(
                    "PortSecurityPortHasSecurityGroup",
                    "Port has security group associated. Cannot disable port security or ip address until security group is removed",
                ));
            }
            if !p.allowed_address_pairs.is_empty() {
                return Err(address_pairs_need_security());
            }
        }
        if let Some(values) = dhcp {
            p.extra_dhcp_opts = merge_dhcp_opts(&p.extra_dhcp_opts, values)?;
        }
        if let Some(requests) = fixed_ips {
            self.change_fixed_ips(tx, &p, &requests).await?;
        }
        if let Some(groups) = new_groups {
            store::ports::set_security_groups(tx, &p.id, &groups).await?;
        }
        p.updated_at = now();
        p.revision_number += 1;
        store::ports::update(tx, &p).await?;
        Ok(p)
    }

    /// Neutron's fixed-IP update: requested addresses that the port has are kept, new ones are
    /// allocated, the rest released (automatic addresses stay unless the port is a router's).
    async fn change_fixed_ips(
        &self,
        tx: &mut Tx,
        p: &PortRow,
        requests: &[IpRequest],
    ) -> Result<()> {
        let subnets = store::subnets::of_network(tx, &p.network_id).await?;
        // Validate everything first (messages as on create).
        let mac = Mac::parse(&p.mac_address)
            .ok_or_else(|| Error::internal(format!("stored MAC {} is invalid", p.mac_address)))?;
        self.resolve_requests(
            &p.network_id,
            &subnets,
            requests,
            &p.device_owner,
            Some(&mac),
        )?;
        let original = store::ports::fixed_ips_of(tx, std::slice::from_ref(&p.id))
            .await?
            .remove(&p.id)
            .unwrap_or_default();
        let mut remaining: Vec<FixedIp> = original.clone();
        let mut keep: Vec<FixedIp> = Vec::new();
        let mut add: Vec<IpRequest> = Vec::new();
        for r in requests.iter().filter(|r| r.ip_address.is_some()) {
            let wanted = crate::addr::canonical_ip(r.ip_address.as_deref().unwrap_or(""));
            match remaining
                .iter()
                .position(|o| Some(&o.ip_address) == wanted.as_ref())
            {
                Some(i) => keep.push(remaining.remove(i)),
                None => add.push(r.clone()),
            }
        }
        for r in requests.iter().filter(|r| r.ip_address.is_none()) {
            match remaining
                .iter()
                .rposition(|o| Some(&o.subnet_id) == r.subnet_id.as_ref())
            {
                Some(i) => keep.push(remaining.remove(i)),
                None => add.push(r.clone()),
            }
        }
        for old in remaining {
            let auto = subnets
                .iter()
                .find(|s| s.id == old.subnet_id)
                .is_some_and(|s| s.is_auto_address());
            if auto && !is_router_interface(&p.device_owner) {
                continue;
            }
            store::ports::delete_fixed_ip(tx, &old.network_id, &old.ip_address).await?;
        }
        self.allocate_port_ips(
            tx,
            &p.network_id,
            &subnets,
            &p.id,
            &mac,
            &p.device_owner,
            Some(&add),
        )
        .await?;
        let _ = keep;
        Ok(())
    }

    pub async fn delete_port(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let p = self.visible_port(&mut tx, ctx, id).await?;
        let network = store::networks::get(&mut tx, &p.network_id).await?;
        let network_owner = network.as_ref().is_some_and(|n| ctx.owns(&n.project_id));
        if !ctx.owns(&p.project_id) && !network_owner {
            return Err(policy("delete_port"));
        }
        ctx.require_member("delete_port")?;
        if is_router_interface(&p.device_owner)
            || p.device_owner == ROUTER_GATEWAY
            || p.device_owner == FLOATINGIP_OWNER
        {
            return Err(in_use(
                "L3PortInUse",
                format!(
                    "Port {} cannot be deleted directly via the port API: has device owner {}.",
                    p.id, p.device_owner
                ),
            ));
        }
        self.delete_port_tx(&mut tx, &p).await?;
        tx.commit().await
    }

    /// Deletes a port: floating IPs on it are disassociated, forwardings to it removed.
    pub(crate) async fn delete_port_tx(&self, tx: &mut Tx, p: &PortRow) -> Result<()> {
        for mut f in store::floatingips::of_fixed_port(tx, &p.id).await? {
            f.fixed_port_id = None;
            f.fixed_ip_address = None;
            f.router_id = None;
            f.status = "DOWN".into();
            f.updated_at = now();
            f.revision_number += 1;
            store::floatingips::update(tx, &f).await?;
        }
        store::tags::clear(tx, "ports", &p.id).await?;
        store::ports::delete(tx, &p.id).await?;
        tracing::debug!(port_id = %p.id, "port deleted");
        Ok(())
    }

    /// Fixed IPs of one port (internal).
    pub(crate) async fn fixed_ips(&self, conn: &mut Conn, port_id: &str) -> Result<Vec<FixedIp>> {
        Ok(store::ports::fixed_ips_of(conn, &[port_id.to_string()])
            .await?
            .remove(port_id)
            .unwrap_or_default())
    }
}

pub(crate) fn vif_details() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("port_filter".into(), json!(true));
    m.insert("connectivity".into(), json!("l2"));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcp_options_merge_and_delete() {
        let opts = merge_dhcp_opts(
            &[],
            vec![json!({"opt_name": "bootfile-name", "opt_value": "pxelinux.0"})],
        )
        .unwrap();
        assert_eq!(opts.len(), 1);
        assert_eq!(opts[0].ip_version, 4);
        let opts = merge_dhcp_opts(
            &opts,
            vec![json!({"opt_name": "bootfile-name", "opt_value": null})],
        )
        .unwrap();
        assert!(opts.is_empty());
    }

    #[test]
    fn address_pairs_default_to_port_mac_and_refuse_duplicates() {
        let pairs = parse_address_pairs(
            vec![json!({"ip_address": "10.0.0.5"})],
            "fa:16:3e:00:00:01",
            10,
        )
        .unwrap();
        assert_eq!(pairs[0].mac_address, "fa:16:3e:00:00:01");
        let dup = parse_address_pairs(
            vec![
                json!({"ip_address": "10.0.0.5"}),
                json!({"ip_address": "10.0.0.5"}),
            ],
            "fa:16:3e:00:00:01",
            10,
        );
        assert_eq!(dup.unwrap_err().status, 400);
        assert!(parse_address_pairs(
            vec![json!({"ip_address": "bogus"})],
            "fa:16:3e:00:00:01",
            10
        )
        .is_err());
    }
}
