//! Routers: the external gateway (a port on an external network, `enable_snat`, chosen or
//! allocated `external_fixed_ips`), interfaces added by subnet (a new port holding the subnet's
//! gateway address) or by port, extra routes (whole list, or atomically added/removed).

use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::ports::{parse_fixed_ips, NewPort};
use super::{
    in_use, is_router_interface, not_found, policy, subnet_cidr, Access, Ctx, NetworkService, Tx,
    ROUTER_GATEWAY, ROUTER_INTERFACE,
};
use crate::addr::{Cidr, Ip};
use crate::input::{invalid, CreateBody, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::ports::{FixedIp, PortFilter, PortRow};
use crate::store::routers::{Route, RouterRow};
use crate::store::{self, now, Conn};
use crate::types::{self, AVAILABILITY_ZONE};

pub const SCHEMA: Schema = Schema {
    collection: "routers",
    filters: &[
        "id",
        "name",
        "description",
        "admin_state_up",
        "status",
        "project_id",
        "tenant_id",
        "external_gateway_info",
        "routes",
        "availability_zone_hints",
        "availability_zones",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "availability_zones",
    "created_at",
    "updated_at",
    "revision_number",
];

pub(crate) fn bad_router(message: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("Bad router request: {message}.")).with_kind("BadRequest")
}

/// A requested gateway.
struct Gateway {
    network_id: String,
    enable_snat: Option<bool>,
    fixed_ips: Option<Vec<super::ipam::IpRequest>>,
}

fn parse_gateway(value: Value) -> Result<Option<Gateway>> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) if map.is_empty() => Ok(None),
        Value::Object(mut map) => {
            let network_id = match map.remove("network_id") {
                Some(Value::String(s)) => s,
                _ => return Err(invalid("external_gateway_info", "'network_id' is required")),
            };
            let enable_snat = match map.remove("enable_snat") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(b),
                Some(Value::String(s)) => Some(crate::query::parse_bool(&s).ok_or_else(|| {
                    invalid(
                        "external_gateway_info",
                        format!("'{s}' cannot be converted to boolean"),
                    )
                })?),
                Some(other) => {
                    return Err(invalid(
                        "external_gateway_info",
                        format!("'{other}' cannot be converted to boolean"),
                    ))
                }
            };
            let fixed_ips = match map.remove("external_fixed_ips") {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) => Some(parse_fixed_ips(items)?),
                Some(other) => {
                    return Err(invalid(
                        "external_gateway_info",
                        format!("'{other}' is not a list"),
                    ))
                }
            };
            if let Some(k) = map.keys().next() {
                return Err(invalid(
                    "external_gateway_info",
                    format!("Unexpected keys supplied: {k}"),
                ));
            }
            Ok(Some(Gateway {
                network_id,
                enable_snat,
                fixed_ips,
            }))
        }
        other => Err(invalid(
            "external_gateway_info",
            format!("'{other}' is not a dictionary"),
        )),
    }
}

fn parse_routes(values: Vec<Value>, max: usize, router_id: &str) -> Result<Vec<Route>> {
    if values.len() > max {
        return Err(Error::bad_request(format!(
            "Unable to complete operation for {router_id}. The number of routes exceeds the maximum {max}."
        ))
        .with_kind("RoutesExhausted"));
    }
    let mut out: Vec<Route> = Vec::new();
    for v in values {
        let (Some(dest), Some(hop)) = (v["destination"].as_str(), v["nexthop"].as_str()) else {
            return Err(invalid(
                "routes",
                format!("Invalid data format for hostroute: '{v}'"),
            ));
        };
        let d = Cidr::parse(dest)
            .ok_or_else(|| invalid("routes", format!("'{dest}' is not a valid IP subnet")))?;
        let h = Ip::parse(hop)
            .ok_or_else(|| invalid("routes", format!("'{hop}' is not a valid IP address")))?;
        let route = Route {
            destination: d.to_string(),
            nexthop: h.to_string(),
        };
        if !out.contains(&route) {
            out.push(route);
        }
    }
    Ok(out)
}

impl NetworkService {
    pub(crate) async fn visible_router(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        id: &str,
    ) -> Result<RouterRow> {
        match store::routers::get(conn, id).await? {
            Some(r) if ctx.owns(&r.project_id) => Ok(r),
            _ => Err(not_found("Router", id)),
        }
    }

    pub(crate) async fn router_json(&self, conn: &mut Conn, r: &RouterRow) -> Result<Value> {
        let gw_ips = match &r.gw_port_id {
            Some(p) => self.fixed_ips(conn, p).await?,
            None => Vec::new(),
        };
        let tags = store::tags::of(conn, "routers", &r.id).await?;
        Ok(types::router(r, &gw_ips, &tags))
    }

    /// The interface ports of a router.
    pub(crate) async fn router_interfaces(
        &self,
        conn: &mut Conn,
        router_id: &str,
    ) -> Result<Vec<PortRow>> {
        Ok(store::ports::list(
            conn,
            &PortFilter {
                device_id: Some(router_id.to_string()),
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .filter(|p| is_router_interface(&p.device_owner))
        .collect())
    }

    pub async fn list_routers(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let project = (!ctx.admin).then_some(ctx.project.as_str());
        let routers = store::routers::list(&mut conn, project).await?;
        let gw_ports: Vec<String> = routers
            .iter()
            .filter_map(|r| r.gw_port_id.clone())
            .collect();
        let ips = store::ports::fixed_ips_of(&mut conn, &gw_ports).await?;
        let ids: Vec<String> = routers.iter().map(|r| r.id.clone()).collect();
        let tags = store::tags::of_many(&mut conn, "routers", &ids).await?;
        let items = routers
            .iter()
            .map(|r| {
                let gw = r
                    .gw_port_id
                    .as_ref()
                    .and_then(|p| ips.get(p))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                types::router(r, gw, tags.get(&r.id).map(Vec::as_slice).unwrap_or(&[]))
            })
            .collect();
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_router(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let r = self.visible_router(&mut conn, ctx, id).await?;
        self.router_json(&mut conn, &r).await
    }

    pub async fn create_routers(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_router")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let r = self.create_router_tx(&mut tx, ctx, map).await?;
                json!({"router": self.router_json(&mut tx, &r).await?})
            }
            CreateBody::Bulk(maps) => {
                let mut out = Vec::new();
                for map in maps {
                    let r = self.create_router_tx(&mut tx, ctx, map).await?;
                    out.push(self.router_json(&mut tx, &r).await?);
                }
                json!({ "routers": out })
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    pub(crate) async fn create_router_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        map: Map<String, Value>,
    ) -> Result<RouterRow> {
        let mut input = Input::new(
            Op::Create,
            map,
            &[
                "id",
                "status",
                "availability_zones",
                "created_at",
                "updated_at",
                "revision_number",
                "routes",
            ],
        );
        let project = input.project(&ctx.project, ctx.admin)?;
        let name = input.string("name", 255)?.unwrap_or_default();
        let description = input.string("description", 255)?.unwrap_or_default();
        let admin_state_up = input.boolean("admin_state_up")?.unwrap_or(true);
        let gateway = match input.take("external_gateway_info") {
            Some(v) => parse_gateway(v)?,
            None => None,
        };
        let az_hints = input
            .string_list("availability_zone_hints")?
            .unwrap_or_default();
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.finish()?;
        for hint in &az_hints {
            if hint != AVAILABILITY_ZONE {
                return Err(Error::not_found(format!(
                    "AvailabilityZone {hint} could not be found."
                ))
                .with_kind("AvailabilityZoneNotFound"));
            }
        }
        self.check_quota(tx, &project, "router", 1).await?;
        let now = now();
        let mut r = RouterRow {
            id: new_uuid(),
            project_id: project,
            name,
            description,
            admin_state_up,
            status: "ACTIVE".into(),
            gw_port_id: None,
            gw_network_id: None,
            enable_snat: true,
            routes: Vec::new(),
            availability_zone_hints: az_hints,
            created_at: now.clone(),
            updated_at: now,
            revision_number: 1,
        };
        store::routers::insert(tx, &r).await?;
        if let Some(gw) = gateway {
            self.set_gateway(tx, ctx, &mut r, Some(gw)).await?;
            store::routers::update(tx, &r).await?;
        }
        for tag in tags {
            store::tags::add(tx, "routers", &r.id, &tag).await?;
        }
        tracing::info!(router_id = %r.id, "router created");
        Ok(r)
    }

    /// Sets, changes or clears (`None`) a router's gateway; the caller saves the router row.
    async fn set_gateway(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        r: &mut RouterRow,
        gw: Option<Gateway>,
    ) -> Result<()> {
        let Some(gw) = gw else {
            if r.gw_network_id.is_some() {
                self.check_gateway_unused(tx, r).await?;
                self.clear_gateway(tx, r).await?;
            }
            return Ok(());
        };
        if !ctx.admin {
            if gw.enable_snat.is_some_and(|s| !s) {
                return Err(policy("update_router:external_gateway_info:enable_snat"));
            }
            if gw.fixed_ips.is_some() {
                return Err(policy(
                    "update_router:external_gateway_info:external_fixed_ips",
                ));
            }
        }
        let access = Access::load(tx).await?;
        let network = match store::networks::get(tx, &gw.network_id).await? {
            Some(n) if access.can_see_network(ctx, &n) => n,
            _ => return Err(not_found("Network", &gw.network_id)),
        };
        if !network.external {
            return Err(bad_router(format!(
                "Network {} is not an external network",
                network.id
            )));
        }
        let same = r.gw_network_id.as_deref() == Some(network.id.as_str());
        if same {
            if let Some(requests) = gw.fixed_ips {
                let port_id = r.gw_port_id.clone().unwrap_or_default();
                if let Some(port) = store::ports::get(tx, &port_id).await? {
                    let current = self.fixed_ips(tx, &port_id).await?;
                    let wanted_same = requests.len() == current.len()
                        && requests.iter().all(|q| {
                            current.iter().any(|c| {
                                q.ip_address
                                    .as_deref()
                                    .and_then(crate::addr::canonical_ip)
                                    .as_deref()
                                    == Some(c.ip_address.as_str())
                                    || (q.ip_address.is_none()
                                        && q.subnet_id.as_deref() == Some(c.subnet_id.as_str()))
                            })
                        });
                    if !wanted_same {
                        let list: Vec<Value> = requests
                            .iter()
                            .map(|q| json!({"subnet_id": q.subnet_id, "ip_address": q.ip_address}))
                            .collect();
                        let mut body = Map::new();
                        body.insert(
                            "fixed_ips".into(),
                            json!(list
                                .into_iter()
                                .map(|v| {
                                    let mut m = v.as_object().cloned().unwrap_or_default();
                                    m.retain(|_, v| !v.is_null());
                                    Value::Object(m)
                                })
                                .collect::<Vec<_>>()),
                        );
                        let system = super::Ctx::system("");
                        self.update_port_tx(tx, &system, port, &network, body)
                            .await?;
                    }
                }
            }
            if let Some(snat) = gw.enable_snat {
                r.enable_snat = snat;
            }
            return Ok(());
        }
        if r.gw_network_id.is_some() {
            self.check_gateway_unused(tx, r).await?;
            self.clear_gateway(tx, r).await?;
        }
        let mut new = NewPort::internal(&network.id, "", &r.id, ROUTER_GATEWAY);
        new.fixed_ips = gw.fixed_ips;
        let system = super::Ctx::system("");
        let port = self.create_port_tx(tx, &system, new).await?;
        r.gw_port_id = Some(port.id);
        r.gw_network_id = Some(network.id);
        r.enable_snat = gw.enable_snat.unwrap_or(true);
        Ok(())
    }

    /// Refuses to drop a gateway floating IPs depend on.
    async fn check_gateway_unused(&self, conn: &mut Conn, r: &RouterRow) -> Result<()> {
        if !store::floatingips::of_router(conn, &r.id).await?.is_empty() {
            return Err(in_use(
                "RouterExternalGatewayInUseByFloatingIp",
                format!(
                    "Gateway cannot be updated for router {}, since a gateway to external network {} is required by one or more floating IPs.",
                    r.id,
                    r.gw_network_id.clone().unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    async fn clear_gateway(&self, tx: &mut Tx, r: &mut RouterRow) -> Result<()> {
        let port = r.gw_port_id.take();
        r.gw_network_id = None;
        r.enable_snat = true;
        store::routers::update(tx, r).await?;
        if let Some(port_id) = port {
            if let Some(p) = store::ports::get(tx, &port_id).await? {
                self.delete_port_tx(tx, &p).await?;
            }
        }
        Ok(())
    }

    /// Extra routes must go through a subnet the router is on.
    async fn check_routes(&self, conn: &mut Conn, r: &RouterRow, routes: &[Route]) -> Result<()> {
        let mut ports = self.router_interfaces(conn, &r.id).await?;
        if let Some(gw) = &r.gw_port_id {
            if let Some(p) = store::ports::get(conn, gw).await? {
                ports.push(p);
            }
        }
        let ids: Vec<String> = ports.iter().map(|p| p.id.clone()).collect();
        let ips: Vec<FixedIp> = store::ports::fixed_ips_of(conn, &ids)
            .await?
            .into_values()
            .flatten()
            .collect();
        let mut cidrs = Vec::new();
        for ip in &ips {
            if let Some(s) = store::subnets::get(conn, &ip.subnet_id).await? {
                cidrs.push(subnet_cidr(&s)?);
            }
        }
        for route in routes {
            let hop = Ip::parse(&route.nexthop).unwrap_or(Ip::v4(0));
            let invalid_routes = |reason: &str| {
                Error::bad_request(format!(
                    "Invalid format for routes: [{{'destination': '{}', 'nexthop': '{}'}}], {reason}.",
                    route.destination, route.nexthop
                ))
                .with_kind("InvalidRoutes")
            };
            if !cidrs.iter().any(|c| c.contains(&hop)) {
                return Err(invalid_routes("the nexthop is not connected with router"));
            }
            if ips.iter().any(|i| i.ip_address == route.nexthop) {
                return Err(invalid_routes("the nexthop is used by router"));
            }
        }
        Ok(())
    }

    pub async fn update_router(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut r = self.visible_router(&mut tx, ctx, id).await?;
        ctx.require_member("update_router")?;
        let mut input = Input::new(Op::Update, map, READ_ONLY);
        if let Some(v) = input.string("name", 255)? {
            r.name = v;
        }
        if let Some(v) = input.string("description", 255)? {
            r.description = v;
        }
        if let Some(v) = input.boolean("admin_state_up")? {
            r.admin_state_up = v;
        }
        let gateway = match input.take("external_gateway_info") {
            Some(v) => Some(parse_gateway(v)?),
            None => None,
        };
        let routes = input.list("routes", true)?;
        input.take("tenant_id");
        input.take("project_id");
        if input.has("availability_zone_hints") {
            return Err(Error::bad_request(
                "Cannot update read-only attribute availability_zone_hints",
            )
            .with_kind("HTTPBadRequest"));
        }
        input.finish()?;
        if let Some(gw) = gateway {
            self.set_gateway(&mut tx, ctx, &mut r, gw).await?;
        }
        if let Some(values) = routes {
            let routes = parse_routes(values, self.settings.max_routes, &r.id)?;
            self.check_routes(&mut tx, &r, &routes).await?;
            r.routes = routes;
        }
        r.updated_at = now();
        r.revision_number += 1;
        store::routers::update(&mut tx, &r).await?;
        let body = self.router_json(&mut tx, &r).await?;
        tx.commit().await?;
        Ok(body)
    }

    /// `PUT /routers/{id}/add_extraroutes` and `remove_extraroutes` (extraroute-atomic).
    pub async fn change_extra_routes(
        &self,
        ctx: &Ctx,
        id: &str,
        body: Value,
        add: bool,
    ) -> Result<Value> {
        let values = match body.get("router").and_then(|r| r.get("routes")) {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err(invalid("routes", "a list of routes is required")),
        };
        let mut tx = self.write().await?;
        let mut r = self.visible_router(&mut tx, ctx, id).await?;
        ctx.require_member("update_router")?;
        let given = parse_routes(values, self.settings.max_routes, &r.id)?;
        if add {
            self.check_routes(&mut tx, &r, &given).await?;
            for route in given {
                if !r.routes.contains(&route) {
                    r.routes.push(route);
                }
            }
            if r.routes.len() > self.settings.max_routes {
                return Err(Error::bad_request(format!(
                    "Unable to complete operation for {}. The number of routes exceeds the maximum {}.",
                    r.id, self.settings.max_routes
                ))
                .with_kind("RoutesExhausted"));
            }
        } else {
            r.routes.retain(|route| !given.contains(route));
        }
        r.updated_at = now();
        r.revision_number += 1;
        store::routers::update(&mut tx, &r).await?;
        let body = self.router_json(&mut tx, &r).await?;
        tx.commit().await?;
        Ok(json!({ "router": body }))
    }

    pub async fn delete_router(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let mut r = self.visible_router(&mut tx, ctx, id).await?;
        ctx.require_member("delete_router")?;
        if !self.router_interfaces(&mut tx, &r.id).await?.is_empty() {
            return Err(in_use(
                "RouterInUse",
                format!("Router {} still has ports", r.id),
            ));
        }
        self.check_gateway_unused(&mut tx, &r).await?;
        self.clear_gateway(&mut tx, &mut r).await?;
        store::tags::clear(&mut tx, "routers", &r.id).await?;
        store::routers::delete(&mut tx, &r.id).await?;
        tx.commit().await?;
        tracing::info!(router_id = %id, "router deleted");
        Ok(())
    }

    /// Refuses a subnet the router is already on, or one overlapping its other interfaces.
    async fn check_interface_subnets(
        &self,
        conn: &mut Conn,
        r: &RouterRow,
        new: &[store::subnets::SubnetRow],
    ) -> Result<()> {
        let ports = self.router_interfaces(conn, &r.id).await?;
        let ids: Vec<String> = ports.iter().map(|p| p.id.clone()).collect();
        let ips: Vec<FixedIp> = store::ports::fixed_ips_of(conn, &ids)
            .await?
            .into_values()
            .flatten()
            .collect();
        for s in new {
            if ips.iter().any(|ip| ip.subnet_id == s.id) {
                return Err(bad_router(format!(
                    "Router already has a port on subnet {}",
                    s.id
                )));
            }
            let cidr = subnet_cidr(s)?;
            for ip in &ips {
                if let Some(other) = store::subnets::get(conn, &ip.subnet_id).await? {
                    let other_cidr = subnet_cidr(&other)?;
                    if other_cidr.overlaps(&cidr) {
                        return Err(bad_router(format!(
                            "Cidr {cidr} of subnet {} overlaps with cidr {other_cidr} of subnet {}",
                            s.id, other.id
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn interface_info(r: &RouterRow, port: &PortRow, subnet_ids: &[String]) -> Value {
        json!({
            "id": r.id,
            "tenant_id": r.project_id,
            "project_id": r.project_id,
            "port_id": port.id,
            "network_id": port.network_id,
            "subnet_id": subnet_ids.first(),
            "subnet_ids": subnet_ids,
        })
    }

    /// `PUT /routers/{id}/add_router_interface` with `subnet_id` or `port_id`.
    pub async fn add_router_interface(
        &self,
        ctx: &Ctx,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<Value> {
        let (subnet_id, port_id) = interface_args(&body)?;
        let mut tx = self.write().await?;
        let mut r = self.visible_router(&mut tx, ctx, id).await?;
        ctx.require_member("add_router_interface")?;
        let access = Access::load(&mut tx).await?;
        let (port, subnet_ids) = match (subnet_id, port_id) {
            (Some(subnet_id), None) => {
                let (s, n) = self
                    .visible_subnet(&mut tx, ctx, &access, &subnet_id)
                    .await?;
                if !ctx.owns(&s.project_id) && !access.can_use_network(ctx, &n) {
                    return Err(policy("add_router_interface"));
                }
                let Some(gateway) = s.gateway_ip.clone() else {
                    return Err(bad_router(
                        "Subnet for router interface must have a gateway IP",
                    ));
                };
                self.check_interface_subnets(&mut tx, &r, std::slice::from_ref(&s))
                    .await?;
                let mut new =
                    NewPort::internal(&s.network_id, &r.project_id, &r.id, ROUTER_INTERFACE);
                new.fixed_ips = Some(vec![super::ipam::IpRequest {
                    subnet_id: Some(s.id.clone()),
                    ip_address: Some(gateway),
                }]);
                let system = Ctx::system(&r.project_id);
                let port = self.create_port_tx(&mut tx, &system, new).await?;
                (port, vec![s.id])
            }
            (None, Some(port_id)) => {
                let mut port = self.visible_port(&mut tx, ctx, &port_id).await?;
                if !port.device_id.is_empty() {
                    return Err(in_use(
                        "PortInUse",
                        format!(
                            "Unable to complete operation on port {} for network {}. Port already has an attached device {}.",
                            port.id, port.network_id, port.device_id
                        ),
                    ));
                }
                let ips = self.fixed_ips(&mut tx, &port.id).await?;
                if ips.is_empty() {
                    return Err(bad_router("Router port must have at least one fixed IP"));
                }
                let mut subnets = Vec::new();
                for ip in &ips {
                    if let Some(s) = store::subnets::get(&mut tx, &ip.subnet_id).await? {
                        if !subnets
                            .iter()
                            .any(|x: &store::subnets::SubnetRow| x.id == s.id)
                        {
                            subnets.push(s);
                        }
                    }
                }
                if subnets.iter().filter(|s| s.ip_version == 4).count() > 1 {
                    return Err(bad_router(
                        "Cannot have multiple IPv4 subnets on router port",
                    ));
                }
                self.check_interface_subnets(&mut tx, &r, &subnets).await?;
                port.device_id = r.id.clone();
                port.device_owner = ROUTER_INTERFACE.into();
                port.status = "ACTIVE".into();
                port.updated_at = now();
                port.revision_number += 1;
                store::ports::update(&mut tx, &port).await?;
                store::ports::set_security_groups(&mut tx, &port.id, &[]).await?;
                let ids = subnets.into_iter().map(|s| s.id).collect();
                (port, ids)
            }
            _ => unreachable!("interface_args returns exactly one"),
        };
        r.updated_at = now();
        r.revision_number += 1;
        store::routers::update(&mut tx, &r).await?;
        tx.commit().await?;
        tracing::info!(router_id = %r.id, port_id = %port.id, "router interface added");
        Ok(Self::interface_info(&r, &port, &subnet_ids))
    }

    /// `PUT /routers/{id}/remove_router_interface` with `subnet_id` or `port_id`.
    pub async fn remove_router_interface(
        &self,
        ctx: &Ctx,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<Value> {
        let (subnet_id, port_id) = interface_args_lenient(&body)?;
        let mut tx = self.write().await?;
        let mut r = self.visible_router(&mut tx, ctx, id).await?;
        ctx.require_member("remove_router_interface")?;
        let interfaces = self.router_interfaces(&mut tx, &r.id).await?;
        let ids: Vec<String> = interfaces.iter().map(|p| p.id.clone()).collect();
        let ips = store::ports::fixed_ips_of(&mut tx, &ids).await?;
        let (port, removed): (PortRow, Vec<String>) = match (&port_id, &subnet_id) {
            (Some(pid), _) => {
                let Some(port) = interfaces.iter().find(|p| &p.id == pid).cloned() else {
                    return Err(Error::not_found(format!(
                        "Router {} does not have an interface with id {pid}",
                        r.id
                    ))
                    .with_kind("RouterInterfaceNotFound"));
                };
                let subnets: Vec<String> = ips
                    .get(&port.id)
                    .map(|v| v.iter().map(|i| i.subnet_id.clone()).collect())
                    .unwrap_or_default();
                if let Some(sid) = &subnet_id {
                    if !subnets.contains(sid) {
                        return Err(Error::not_found(format!(
                            "Router {} has no interface on subnet {sid}",
                            r.id
                        ))
                        .with_kind("RouterInterfaceNotFoundForSubnet"));
                    }
                }
                (port, subnets)
            }
            (None, Some(sid)) => {
                let Some(port) = interfaces
                    .iter()
                    .find(|p| {
                        ips.get(&p.id)
                            .is_some_and(|v| v.iter().any(|i| &i.subnet_id == sid))
                    })
                    .cloned()
                else {
                    return Err(Error::not_found(format!(
                        "Router {} has no interface on subnet {sid}",
                        r.id
                    ))
                    .with_kind("RouterInterfaceNotFoundForSubnet"));
                };
                (port, vec![sid.clone()])
            }
            (None, None) => unreachable!("checked by interface_args_lenient"),
        };
        // Floating IPs and routes that need these subnets keep the interface.
        for sid in &removed {
            let Some(s) = store::subnets::get(&mut tx, sid).await? else {
                continue;
            };
            let cidr = subnet_cidr(&s)?;
            for f in store::floatingips::of_router(&mut tx, &r.id).await? {
                let fixed = f.fixed_ip_address.as_deref().and_then(Ip::parse);
                if fixed.is_some_and(|ip| cidr.contains(&ip)) {
                    return Err(in_use(
                        "RouterInterfaceInUseByFloatingIP",
                        format!("Router interface for subnet {sid} on router {} cannot be deleted, as it is required by one or more floating IPs.", r.id),
                    ));
                }
            }
            if r.routes
                .iter()
                .any(|route| Ip::parse(&route.nexthop).is_some_and(|h| cidr.contains(&h)))
            {
                return Err(in_use(
                    "RouterInterfaceInUseByRoute",
                    format!("Router interface for subnet {sid} on router {} cannot be deleted, as it is required by one or more routes.", r.id),
                ));
            }
        }
        let port_ips = ips.get(&port.id).cloned().unwrap_or_default();
        if port_id.is_none() && port_ips.iter().any(|i| !removed.contains(&i.subnet_id)) {
            for ip in port_ips.iter().filter(|i| removed.contains(&i.subnet_id)) {
                store::ports::delete_fixed_ip(&mut tx, &ip.network_id, &ip.ip_address).await?;
            }
        } else {
            self.delete_port_tx(&mut tx, &port).await?;
        }
        r.updated_at = now();
        r.revision_number += 1;
        store::routers::update(&mut tx, &r).await?;
        tx.commit().await?;
        tracing::info!(router_id = %r.id, port_id = %port.id, "router interface removed");
        Ok(Self::interface_info(&r, &port, &removed))
    }

    /// The router that can carry a floating IP on `external_network` to an address on `subnet_id`:
    /// one with its gateway there and an interface on the subnet.
    pub(crate) async fn router_for(
        &self,
        conn: &mut Conn,
        external_network: &str,
        subnet_id: &str,
    ) -> Result<Option<RouterRow>> {
        for r in store::routers::with_gateway_on(conn, external_network).await? {
            let interfaces = self.router_interfaces(conn, &r.id).await?;
            let ids: Vec<String> = interfaces.iter().map(|p| p.id.clone()).collect();
            let ips = store::ports::fixed_ips_of(conn, &ids).await?;
            if ips.values().flatten().any(|ip| ip.subnet_id == subnet_id) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }
}

fn id_arg(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(key, format!("'{other}' is not a valid UUID"))),
    }
}

fn interface_args(body: &Map<String, Value>) -> Result<(Option<String>, Option<String>)> {
    let subnet = id_arg(body, "subnet_id")?;
    let port = id_arg(body, "port_id")?;
    match (&subnet, &port) {
        (Some(_), Some(_)) => Err(bad_router("Cannot specify both subnet-id and port-id")),
        (None, None) => Err(bad_router("Either subnet_id or port_id must be specified")),
        _ => Ok((subnet, port)),
    }
}

fn interface_args_lenient(body: &Map<String, Value>) -> Result<(Option<String>, Option<String>)> {
    let subnet = id_arg(body, "subnet_id")?;
    let port = id_arg(body, "port_id")?;
    if subnet.is_none() && port.is_none() {
        return Err(bad_router("Either subnet_id or port_id must be specified"));
    }
    Ok((subnet, port))
}
