//! Subnets: CIDR (given, or carved from a subnet pool), gateway, allocation pools (validated,
//! or derived from the CIDR minus gateway, network and broadcast addresses), DNS servers, host
//! routes, IPv6 RA and address modes. A new automatic-address (SLAAC) subnet gives every
//! existing port on its network its EUI-64 address; deleting one takes them back.

use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::ipam::pools_of;
use super::{
    in_use, is_router_interface, not_found, policy, subnet_cidr, Access, Ctx, NetworkService, Tx,
};
use crate::addr::{default_pools, Cidr, Ip, Range};
use crate::input::{invalid, invalid_input, parse_ip, parse_subnet, CreateBody, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::networks::NetworkRow;
use crate::store::subnets::{HostRoute, Pool, SubnetRow};
use crate::store::{self, now, Conn};
use crate::types;

pub const SCHEMA: Schema = Schema {
    collection: "subnets",
    filters: &[
        "id",
        "name",
        "description",
        "network_id",
        "project_id",
        "tenant_id",
        "ip_version",
        "cidr",
        "gateway_ip",
        "enable_dhcp",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "subnetpool_id",
        "dns_nameservers",
        "allocation_pools",
        "host_routes",
        "service_types",
        "router:external",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

const READ_ONLY: &[&str] = &[
    "id",
    "network_id",
    "ip_version",
    "cidr",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "created_at",
    "updated_at",
    "revision_number",
    "router:external",
    "prefixlen",
    "use_default_subnetpool",
];

const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

fn pool_text(r: &Range) -> String {
    format!("{}-{}", r.start, r.end)
}

/// Parses and validates requested allocation pools against the CIDR (Neutron's rules).
fn parse_pools(values: Vec<Value>, cidr: &Cidr) -> Result<Vec<Range>> {
    let mut pools = Vec::new();
    for v in values {
        let (start, end) = match (&v["start"], &v["end"]) {
            (Value::String(s), Value::String(e)) => (s.clone(), e.clone()),
            _ => {
                return Err(invalid(
                    "allocation_pools",
                    format!("Invalid data format for IP pool: '{}'", v),
                ))
            }
        };
        let start = parse_ip("allocation_pools", &start)?;
        let end = parse_ip("allocation_pools", &end)?;
        let range = Range { start, end };
        if start.version != cidr.version()
            || end.version != cidr.version()
            || start.value > end.value
        {
            return Err(Error::bad_request(format!(
                "The allocation pool {} is not valid.",
                pool_text(&range)
            ))
            .with_kind("InvalidAllocationPool"));
        }
        let (first, last) = if cidr.version() == 4 && cidr.prefix <= 30 {
            (cidr.first().value + 1, cidr.last().value - 1)
        } else if cidr.version() == 4 {
            (cidr.first().value, cidr.last().value)
        } else {
            (cidr.first().value + 1, cidr.last().value)
        };
        if start.value < first || end.value > last {
            return Err(Error::bad_request(format!(
                "The allocation pool {} spans beyond the subnet cidr {cidr}.",
                pool_text(&range)
            ))
            .with_kind("OutOfBoundsAllocationPool"));
        }
        pools.push(range);
    }
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if a.overlaps(b) {
                return Err(Error::conflict(format!(
                    "Found overlapping allocation pools: {} {} for subnet {cidr}.",
                    pool_text(a),
                    pool_text(b)
                ))
                .with_kind("OverlappingAllocationPools"));
            }
        }
    }
    Ok(pools)
}

fn check_gateway_out_of_pools(gateway: &Ip, pools: &[Range]) -> Result<()> {
    if let Some(pool) = pools.iter().find(|p| p.contains(gateway)) {
        return Err(in_use(
            "GatewayConflictWithAllocationPools",
            format!(
                "Gateway ip {gateway} conflicts with allocation pool {}.",
                pool_text(pool)
            ),
        ));
    }
    Ok(())
}

fn to_pools(ranges: &[Range]) -> Vec<Pool> {
    ranges
        .iter()
        .map(|r| Pool {
            start: r.start.to_string(),
            end: r.end.to_string(),
        })
        .collect()
}

fn check_ip_version(version: i64, ip: &Ip, name: &str, text: &str) -> Result<()> {
    if i64::from(ip.version) != version {
        return Err(invalid_input(format!(
            "{name} '{text}' does not match the ip_version '{version}'"
        )));
    }
    Ok(())
}

fn parse_nameservers(
    values: Vec<String>,
    version: i64,
    max: usize,
    subnet: &str,
) -> Result<Vec<String>> {
    if values.len() > max {
        return Err(Error::bad_request(format!(
            "Unable to complete operation for {subnet}. The number of DNS nameservers exceeds the limit {max}."
        ))
        .with_kind("DNSNameServersExhausted"));
    }
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let ip = Ip::parse(&v).ok_or_else(|| {
            invalid(
                "dns_nameservers",
                format!("'{v}' is not a valid nameserver"),
            )
        })?;
        if out.contains(&ip.to_string()) {
            return Err(invalid(
                "dns_nameservers",
                format!("Duplicate nameserver '{v}'"),
            ));
        }
        check_ip_version(version, &ip, "dns_nameserver", &v)?;
        out.push(ip.to_string());
    }
    Ok(out)
}

fn parse_host_routes(
    values: Vec<Value>,
    version: i64,
    max: usize,
    subnet: &str,
) -> Result<Vec<HostRoute>> {
    if values.len() > max {
        return Err(Error::bad_request(format!(
            "Unable to complete operation for {subnet}. The number of host routes exceeds the limit {max}."
        ))
        .with_kind("HostRoutesExhausted"));
    }
    let mut out: Vec<HostRoute> = Vec::new();
    for v in values {
        let (Some(dest), Some(hop)) = (v["destination"].as_str(), v["nexthop"].as_str()) else {
            return Err(invalid(
                "host_routes",
                format!("Invalid data format for hostroute: '{v}'"),
            ));
        };
        let d = Cidr::parse(dest)
            .ok_or_else(|| invalid("host_routes", format!("'{dest}' is not a valid IP subnet")))?;
        let h = parse_ip("host_routes", hop)?;
        check_ip_version(version, &d.ip, "destination", dest)?;
        check_ip_version(version, &h, "nexthop", hop)?;
        let route = HostRoute {
            destination: d.to_string(),
            nexthop: h.to_string(),
        };
        if out.contains(&route) {
            return Err(invalid("host_routes", format!("Duplicate hostroute '{v}'")));
        }
        out.push(route);
    }
    Ok(out)
}

impl NetworkService {
    /// A subnet the caller may see (it sees the network), with its network, or 404.
    pub(crate) async fn visible_subnet(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        access: &Access,
        id: &str,
    ) -> Result<(SubnetRow, NetworkRow)> {
        let Some(s) = store::subnets::get(conn, id).await? else {
            return Err(not_found("Subnet", id));
        };
        match store::networks::get(conn, &s.network_id).await? {
            Some(n) if access.can_see_network(ctx, &n) || ctx.owns(&s.project_id) => Ok((s, n)),
            _ => Err(not_found("Subnet", id)),
        }
    }

    pub(crate) async fn subnet_json(
        &self,
        conn: &mut Conn,
        s: &SubnetRow,
        n: &NetworkRow,
    ) -> Result<Value> {
        let tags = store::tags::of(conn, "subnets", &s.id).await?;
        Ok(types::subnet(s, n.external, &tags))
    }

    pub async fn list_subnets(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let access = Access::load(&mut conn).await?;
        let networks = store::networks::list(&mut conn).await?;
        let subnets: Vec<SubnetRow> = store::subnets::list(&mut conn)
            .await?
            .into_iter()
            .filter(|s| {
                networks.iter().any(|n| {
                    n.id == s.network_id
                        && (access.can_see_network(ctx, n) || ctx.owns(&s.project_id))
                })
            })
            .collect();
        let ids: Vec<String> = subnets.iter().map(|s| s.id.clone()).collect();
        let tags = store::tags::of_many(&mut conn, "subnets", &ids).await?;
        let items = subnets
            .iter()
            .map(|s| {
                let external = networks
                    .iter()
                    .find(|n| n.id == s.network_id)
                    .is_some_and(|n| n.external);
                types::subnet(
                    s,
                    external,
                    tags.get(&s.id).map(Vec::as_slice).unwrap_or(&[]),
                )
            })
            .collect();
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_subnet(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let access = Access::load(&mut conn).await?;
        let (s, n) = self.visible_subnet(&mut conn, ctx, &access, id).await?;
        self.subnet_json(&mut conn, &s, &n).await
    }

    pub async fn create_subnets(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_subnet")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let (s, n) = self.create_subnet_tx(&mut tx, ctx, map).await?;
                json!({"subnet": self.subnet_json(&mut tx, &s, &n).await?})
            }
            CreateBody::Bulk(maps) => {
                let mut out = Vec::new();
                for map in maps {
                    let (s, n) = self.create_subnet_tx(&mut tx, ctx, map).await?;
                    out.push(self.subnet_json(&mut tx, &s, &n).await?);
                }
                json!({ "subnets": out })
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    pub(crate) async fn create_subnet_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        map: Map<String, Value>,
    ) -> Result<(SubnetRow, NetworkRow)> {
        let mut input = Input::new(Op::Create, map, &READ_ONLY[..1]);
        let project = input.project(&ctx.project, ctx.admin)?;
        let network_id = input.string("network_id", 36)?.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        let name = input.string("name", 255)?.unwrap_or_default();
        let description = input.string("description", 255)?.unwrap_or_default();
        let ip_version = input.integer("ip_version")?.flatten();
        let cidr_text = input.nullable_string("cidr", 64)?.flatten();
        let gateway = input.nullable_string("gateway_ip", 64)?;
        let pools = input.list("allocation_pools", true)?;
        let dns = input.string_list("dns_nameservers")?.unwrap_or_default();
        let routes = input.list("host_routes", true)?.unwrap_or_default();
        let enable_dhcp = input.boolean("enable_dhcp")?.unwrap_or(true);
        let ra_mode = input.nullable_string("ipv6_ra_mode", 32)?.flatten();
        let address_mode = input.nullable_string("ipv6_address_mode", 32)?.flatten();
        let mut subnetpool_id = input.nullable_string("subnetpool_id", 36)?.flatten();
        let use_default_pool = input.boolean("use_default_subnetpool")?.unwrap_or(false);
        let prefixlen = input.integer("prefixlen")?.flatten();
        let service_types = input.string_list("service_types")?.unwrap_or_default();
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.take("segment_id");
        input.take("dns_publish_fixed_ip");
        input.finish()?;

        let access = Access::load(tx).await?;
        let network = self.visible_network(tx, ctx, &access, &network_id).await?;
        if !ctx.owns(&network.project_id) {
            return Err(policy("create_subnet"));
        }
        for mode in [&ra_mode, &address_mode].into_iter().flatten() {
            if !IPV6_MODES.contains(&mode.as_str()) {
                return Err(invalid(
                    if ra_mode.as_deref() == Some(mode.as_str()) {
                        "ipv6_ra_mode"
                    } else {
                        "ipv6_address_mode"
                    },
                    format!(
                        "'{mode}' is not in {}",
                        crate::query::py_list(
                            &IPV6_MODES.iter().map(|m| m.to_string()).collect::<Vec<_>>()
                        )
                    ),
                ));
            }
        }
        let ip_version =
            match ip_version {
                Some(v @ (4 | 6)) => v,
                Some(v) => return Err(invalid("ip_version", format!("'{v}' is not in [4, 6]"))),
                None => match &cidr_text {
                    Some(c) => Cidr::parse(c).map(|c| i64::from(c.version())).unwrap_or(4),
                    None => return Err(Error::bad_request(
                        "Failed to parse request. Required attribute 'ip_version' not specified",
                    )
                    .with_kind("HTTPBadRequest")),
                },
            };
        if use_default_pool && subnetpool_id.is_none() {
            let pool = store::subnetpools::default_for(tx, ip_version)
                .await?
                .ok_or_else(|| {
                    Error::bad_request(format!("No default subnetpool found for IPv{ip_version}"))
                        .with_kind("BadRequest")
                })?;
            subnetpool_id = Some(pool.id);
        }
        let cidr =
            match (&cidr_text, &subnetpool_id) {
                (Some(text), pool_id) => {
                    let cidr = parse_subnet("cidr", text)?;
                    if i64::from(cidr.version()) != ip_version {
                        return Err(invalid_input(format!(
                            "cidr '{text}' does not match the ip_version '{ip_version}'"
                        )));
                    }
                    if let Some(pool_id) = pool_id {
                        self.check_in_pool(tx, ctx, pool_id, &cidr).await?;
                    }
                    cidr
                }
                (None, Some(pool_id)) => {
                    self.allocate_from_pool(tx, ctx, pool_id, ip_version, prefixlen)
                        .await?
                }
                (None, None) => return Err(Error::bad_request(
                    "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
                )
                .with_kind("BadRequest")),
            };
        if cidr.prefix == 0 {
            return Err(invalid_input("0 is not allowed as CIDR prefix length"));
        }
        if ip_version == 6 && cidr.first().value == 0 {
            return Err(invalid_input("IPv6 subnet '::' is not supported"));
        }
        if enable_dhcp
            && ((ip_version == 4 && cidr.prefix > 30) || (ip_version == 6 && cidr.prefix > 126))
        {
            return Err(invalid_input(
                "Subnet has a prefix length that is incompatible with DHCP service enabled",
            ));
        }
        if ip_version == 4 {
            if ra_mode.is_some() {
                return Err(invalid_input(
                    "ipv6_ra_mode is not valid when ip_version is 4",
                ));
            }
            if address_mode.is_some() {
                return Err(invalid_input(
                    "ipv6_address_mode is not valid when ip_version is 4",
                ));
            }
        } else {
            if (ra_mode.is_some() || address_mode.is_some()) && !enable_dhcp {
                return Err(invalid_input(
                    "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False",
                ));
            }
            if let (Some(ra), Some(addr)) = (&ra_mode, &address_mode) {
                if ra != addr {
                    return Err(invalid_input(format!(
                        "ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not valid. If both attributes are set, they must be the same value"
                    )));
                }
            }
            let auto = matches!(
                address_mode.as_deref(),
                Some("slaac") | Some("dhcpv6-stateless")
            );
            if auto && cidr.prefix != 64 {
                return Err(invalid_input(format!(
                    "Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"
                )));
            }
        }
        if ip_version == 6 && network.mtu < 1280 {
            return Err(Error::conflict(format!(
                "Unable to create the subnet: network {} has an MTU below 1280, which IPv6 needs.",
                network.id
            ))
            .with_kind("NetworkMTUSubnetConflict"));
        }
        // Overlaps with the network's other subnets.
        let siblings = store::subnets::of_network(tx, &network.id).await?;
        for other in &siblings {
            if subnet_cidr(other)?.overlaps(&cidr) {
                return Err(invalid_input(format!(
                    "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet",
                    network.id
                )));
            }
        }
        let gateway: Option<Ip> = match gateway {
            None => Some(if ip_version == 6 {
                cidr.first()
            } else {
                Ip {
                    version: 4,
                    value: cidr.first().value + 1,
                }
            }),
            Some(None) => None,
            Some(Some(text)) if text.is_empty() => None,
            Some(Some(text)) => {
                let ip = parse_ip("gateway_ip", &text)?;
                check_ip_version(ip_version, &ip, "gateway_ip", &text)?;
                if cidr.contains(&ip)
                    && ip_version == 4
                    && (ip == cidr.first() || ip == cidr.last())
                {
                    return Err(invalid_input("Gateway is not valid on subnet"));
                }
                Some(ip)
            }
        };
        let pools = match pools {
            Some(values) if !values.is_empty() => {
                let pools = parse_pools(values, &cidr)?;
                if let Some(gw) = &gateway {
                    check_gateway_out_of_pools(gw, &pools)?;
                }
                pools
            }
            _ => default_pools(&cidr, gateway.as_ref()),
        };
        let dns = parse_nameservers(
            dns,
            ip_version,
            self.settings.max_dns_nameservers,
            "new subnet",
        )?;
        let routes = parse_host_routes(
            routes,
            ip_version,
            self.settings.max_subnet_host_routes,
            "new subnet",
        )?;
        self.check_quota(tx, &project, "subnet", 1).await?;
        let now = now();
        let s = SubnetRow {
            id: new_uuid(),
            project_id: project,
            network_id: network.id.clone(),
            name,
            description,
            ip_version,
            cidr: cidr.to_string(),
            gateway_ip: gateway.map(|g| g.to_string()),
            enable_dhcp,
            ipv6_ra_mode: ra_mode,
            ipv6_address_mode: address_mode,
            subnetpool_id,
            allocation_pools: to_pools(&pools),
            dns_nameservers: dns,
            host_routes: routes,
            service_types,
            created_at: now.clone(),
            updated_at: now,
            revision_number: 0,
        };
        store::subnets::insert(tx, &s).await?;
        for tag in tags {
            store::tags::add(tx, "subnets", &s.id, &tag).await?;
        }
        if s.is_auto_address() {
            self.add_auto_addresses(tx, &s).await?;
        }
        tracing::info!(subnet_id = %s.id, network_id = %s.network_id, cidr = %s.cidr, "subnet created");
        Ok((s, network))
    }

    /// Gives every port on the network (but routers' and DHCP's) its EUI-64 address on a new
    /// automatic-address subnet.
    async fn add_auto_addresses(&self, conn: &mut Conn, s: &SubnetRow) -> Result<()> {
        let cidr = subnet_cidr(s)?;
        let ports = store::ports::list(
            conn,
            &store::ports::PortFilter {
                network_id: Some(s.network_id.clone()),
                ..Default::default()
            },
        )
        .await?;
        for p in ports {
            if is_router_interface(&p.device_owner) || super::is_network_owned(&p.device_owner) {
                continue;
            }
            let Some(mac) = crate::addr::Mac::parse(&p.mac_address) else {
                continue;
            };
            let ip = crate::addr::eui64(&cidr, &mac);
            let fixed = store::ports::FixedIp {
                port_id: p.id.clone(),
                network_id: s.network_id.clone(),
                subnet_id: s.id.clone(),
                ip_address: ip.to_string(),
            };
            if store::ports::ip_owner(conn, &s.network_id, &fixed.ip_address)
                .await?
                .is_none()
            {
                store::ports::insert_fixed_ip(conn, &fixed, &ip.key()).await?;
            }
        }
        Ok(())
    }

    pub async fn update_subnet(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let access = Access::load(&mut tx).await?;
        let (mut s, n) = self.visible_subnet(&mut tx, ctx, &access, id).await?;
        if !ctx.owns(&s.project_id) && !ctx.owns(&n.project_id) {
            return Err(policy("update_subnet"));
        }
        ctx.require_member("update_subnet")?;
        let cidr = subnet_cidr(&s)?;
        let mut input = Input::new(Op::Update, map, READ_ONLY);
        if let Some(v) = input.string("name", 255)? {
            s.name = v;
        }
        if let Some(v) = input.string("description", 255)? {
            s.description = v;
        }
        if let Some(v) = input.boolean("enable_dhcp")? {
            if !v && (s.ipv6_ra_mode.is_some() || s.ipv6_address_mode.is_some()) {
                return Err(invalid_input(
                    "Cannot disable enable_dhcp with ipv6 attributes set",
                ));
            }
            s.enable_dhcp = v;
        }
        if let Some(v) = input.string_list("dns_nameservers")? {
            s.dns_nameservers =
                parse_nameservers(v, s.ip_version, self.settings.max_dns_nameservers, &s.id)?;
        }
        if let Some(v) = input.list("host_routes", true)? {
            s.host_routes =
                parse_host_routes(v, s.ip_version, self.settings.max_subnet_host_routes, &s.id)?;
        }
        if let Some(v) = input.string_list("service_types")? {
            s.service_types = v;
        }
        let gateway = input.nullable_string("gateway_ip", 64)?;
        let pools = input.list("allocation_pools", true)?;
        input.take("tenant_id");
        input.take("project_id");
        input.take("segment_id");
        input.take("dns_publish_fixed_ip");
        input.finish()?;
        if let Some(gateway) = gateway {
            let new_gw = match gateway {
                None => None,
                Some(text) if text.is_empty() => None,
                Some(text) => {
                    let ip = parse_ip("gateway_ip", &text)?;
                    check_ip_version(s.ip_version, &ip, "gateway_ip", &text)?;
                    if cidr.contains(&ip)
                        && s.ip_version == 4
                        && (ip == cidr.first() || ip == cidr.last())
                    {
                        return Err(invalid_input("Gateway is not valid on subnet"));
                    }
                    Some(ip.to_string())
                }
            };
            if new_gw != s.gateway_ip {
                if let Some(current) = &s.gateway_ip {
                    if let Some(port_id) =
                        store::ports::ip_owner(&mut tx, &s.network_id, current).await?
                    {
                        if let Some(p) = store::ports::get(&mut tx, &port_id).await? {
                            if is_router_interface(&p.device_owner) {
                                return Err(in_use(
                                    "GatewayIpInUse",
                                    format!("Current gateway ip {current} already in use by port {port_id}. Unable to update."),
                                ));
                            }
                        }
                    }
                }
                s.gateway_ip = new_gw;
            }
        }
        if let Some(values) = pools {
            let ranges = if values.is_empty() {
                default_pools(&cidr, s.gateway_ip.as_deref().and_then(Ip::parse).as_ref())
            } else {
                parse_pools(values, &cidr)?
            };
            s.allocation_pools = to_pools(&ranges);
        }
        if let Some(gw) = s.gateway_ip.as_deref().and_then(Ip::parse) {
            check_gateway_out_of_pools(&gw, &pools_of(&s))?;
        }
        s.updated_at = now();
        s.revision_number += 1;
        store::subnets::update(&mut tx, &s).await?;
        let body = self.subnet_json(&mut tx, &s, &n).await?;
        tx.commit().await?;
        Ok(body)
    }

    pub async fn delete_subnet(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let access = Access::load(&mut tx).await?;
        let (s, n) = self.visible_subnet(&mut tx, ctx, &access, id).await?;
        if !ctx.owns(&s.project_id) && !ctx.owns(&n.project_id) {
            return Err(policy("delete_subnet"));
        }
        ctx.require_member("delete_subnet")?;
        let allocations = store::ports::fixed_ips_on_subnet(&mut tx, &s.id).await?;
        let port_ids: Vec<String> = allocations.iter().map(|a| a.port_id.clone()).collect();
        let ports = store::ports::list(
            &mut tx,
            &store::ports::PortFilter {
                ids: Some(port_ids),
                ..Default::default()
            },
        )
        .await?;
        let auto = s.is_auto_address();
        let blocking = ports.iter().any(|p| {
            if is_router_interface(&p.device_owner) {
                return true;
            }
            p.device_owner != super::DHCP_OWNER && !auto
        });
        if blocking {
            return Err(in_use(
                "SubnetInUse",
                format!(
                    "Unable to complete operation on subnet {}: One or more ports have an IP allocation from this subnet.",
                    s.id
                ),
            ));
        }
        store::ports::delete_fixed_ips_on_subnet(&mut tx, &s.id).await?;
        store::tags::clear(&mut tx, "subnets", &s.id).await?;
        store::subnets::delete(&mut tx, &s.id).await?;
        tx.commit().await?;
        tracing::info!(subnet_id = %id, "subnet deleted");
        Ok(())
    }
}
