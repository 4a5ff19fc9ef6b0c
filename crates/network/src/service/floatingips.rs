//! Floating IPs and their port forwardings. A floating IP holds an IPv4 address of an external
//! network through a port there (`network:floatingip`); associating it with a port needs a
//! router that has its gateway on that external network and an interface on the port's subnet
//! (404 otherwise, as in Neutron). Port forwardings map (protocol, external port range) of an
//! unassociated floating IP to an internal address and port range.

use nubo_common::db::is_unique_violation;
use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::ipam::IpRequest;
use super::ports::NewPort;
use super::{in_use, not_found, policy, Access, Ctx, NetworkService, Tx, FLOATINGIP_OWNER};
use crate::addr::Ip;
use crate::input::{invalid, to_int, CreateBody, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::floatingips::{FloatingIpRow, PortForwardingRow};
use crate::store::ports::PortRow;
use crate::store::{self, now, Conn};
use crate::types;

pub const SCHEMA: Schema = Schema {
    collection: "floatingips",
    filters: &[
        "id",
        "floating_ip_address",
        "floating_network_id",
        "router_id",
        "port_id",
        "fixed_ip_address",
        "status",
        "description",
        "project_id",
        "tenant_id",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

pub const PF_SCHEMA: Schema = Schema {
    collection: "port_forwardings",
    filters: &[
        "id",
        "internal_port_id",
        "internal_ip_address",
        "internal_port",
        "external_port",
        "internal_port_range",
        "external_port_range",
        "protocol",
        "description",
    ],
};

const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "router_id",
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_details",
    "port_forwardings",
    "created_at",
    "updated_at",
    "revision_number",
];

fn bad_fip(message: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("Bad floatingip request: {message}.")).with_kind("BadRequest")
}

impl NetworkService {
    async fn visible_fip(&self, conn: &mut Conn, ctx: &Ctx, id: &str) -> Result<FloatingIpRow> {
        match store::floatingips::get(conn, id).await? {
            Some(f) if ctx.owns(&f.project_id) => Ok(f),
            _ => Err(not_found("Floating IP", id)),
        }
    }

    pub(crate) async fn fip_json(&self, conn: &mut Conn, f: &FloatingIpRow) -> Result<Value> {
        let port = match &f.fixed_port_id {
            Some(p) => store::ports::get(conn, p).await?,
            None => None,
        };
        let forwardings = store::floatingips::list_forwardings(conn, Some(&f.id)).await?;
        let tags = store::tags::of(conn, "floatingips", &f.id).await?;
        Ok(types::floatingip(f, port.as_ref(), &forwardings, &tags))
    }

    pub async fn list_floatingips(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let project = (!ctx.admin).then_some(ctx.project.as_str());
        let fips = store::floatingips::list(&mut conn, project).await?;
        let mut items = Vec::with_capacity(fips.len());
        for f in &fips {
            items.push(self.fip_json(&mut conn, f).await?);
        }
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_floatingip(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let f = self.visible_fip(&mut conn, ctx, id).await?;
        self.fip_json(&mut conn, &f).await
    }

    pub async fn create_floatingips(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_floatingip")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let f = self.create_fip_tx(&mut tx, ctx, map).await?;
                json!({"floatingip": self.fip_json(&mut tx, &f).await?})
            }
            CreateBody::Bulk(maps) => {
                let mut out = Vec::new();
                for map in maps {
                    let f = self.create_fip_tx(&mut tx, ctx, map).await?;
                    out.push(self.fip_json(&mut tx, &f).await?);
                }
                json!({ "floatingips": out })
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    async fn create_fip_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        map: Map<String, Value>,
    ) -> Result<FloatingIpRow> {
        let mut input = Input::new(Op::Create, map, &READ_ONLY[..3]);
        let project = input.project(&ctx.project, ctx.admin)?;
        let network_id = input.string("floating_network_id", 36)?.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'floating_network_id' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        let address = input.nullable_string("floating_ip_address", 64)?.flatten();
        let subnet_id = input.nullable_string("subnet_id", 36)?.flatten();
        let port_id = input.nullable_string("port_id", 36)?.flatten();
        let fixed_ip = input.nullable_string("fixed_ip_address", 64)?.flatten();
        let description = input.string("description", 255)?.unwrap_or_default();
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.take("dns_name");
        input.take("dns_domain");
        input.finish()?;
        if address.is_some() && !ctx.admin {
            return Err(policy("create_floatingip:floating_ip_address"));
        }
        let access = Access::load(tx).await?;
        let network = match store::networks::get(tx, &network_id).await? {
            Some(n) if access.can_see_network(ctx, &n) => n,
            _ => return Err(not_found("Network", &network_id)),
        };
        if !network.external {
            return Err(bad_fip(format!(
                "Network {} is not a valid external network",
                network.id
            )));
        }
        self.check_quota(tx, &project, "floatingip", 1).await?;
        let id = new_uuid();
        let subnets = store::subnets::of_network(tx, &network.id).await?;
        let request = match (&address, &subnet_id) {
            (Some(a), s) => IpRequest {
                subnet_id: s.clone(),
                ip_address: Some(a.clone()),
            },
            (None, Some(s)) => {
                let subnet = subnets
                    .iter()
                    .find(|x| &x.id == s)
                    .ok_or_else(|| not_found("Subnet", s))?;
                if subnet.ip_version != 4 {
                    return Err(bad_fip(format!("Subnet {s} is not an IPv4 subnet")));
                }
                IpRequest {
                    subnet_id: Some(s.clone()),
                    ip_address: None,
                }
            }
            (None, None) => {
                let v4: Vec<_> = subnets.iter().filter(|s| s.ip_version == 4).collect();
                if v4.is_empty() {
                    return Err(bad_fip(format!(
                        "Network {} does not contain any IPv4 subnet",
                        network.id
                    )));
                }
                let mut found = None;
                for s in v4 {
                    if let Some(ip) = self.next_free(tx, s).await? {
                        found = Some(IpRequest {
                            subnet_id: Some(s.id.clone()),
                            ip_address: Some(ip.to_string()),
                        });
                        break;
                    }
                }
                found.ok_or_else(|| super::ipam::generation_failure(&network.id))?
            }
        };
        let mut new = NewPort::internal(&network.id, "", &id, FLOATINGIP_OWNER);
        new.fixed_ips = Some(vec![request]);
        let port = self.create_port_tx(tx, &Ctx::system(""), new).await?;
        let ips = self.fixed_ips(tx, &port.id).await?;
        let address = ips
            .first()
            .map(|i| i.ip_address.clone())
            .ok_or_else(|| super::ipam::generation_failure(&network.id))?;
        if Ip::parse(&address).map(|i| i.version) != Some(4) {
            return Err(bad_fip("Floating IPs must be IPv4 addresses"));
        }
        let now = now();
        let mut f = FloatingIpRow {
            id,
            project_id: project,
            floating_network_id: network.id.clone(),
            floating_port_id: port.id.clone(),
            floating_ip_address: address,
            fixed_port_id: None,
            fixed_ip_address: None,
            router_id: None,
            status: "DOWN".into(),
            description,
            created_at: now.clone(),
            updated_at: now,
            revision_number: 0,
        };
        if let Some(port_id) = port_id {
            self.associate(tx, ctx, &mut f, &port_id, fixed_ip.as_deref())
                .await?;
        }
        store::floatingips::insert(tx, &f).await?;
        for tag in tags {
            store::tags::add(tx, "floatingips", &f.id, &tag).await?;
        }
        tracing::info!(floatingip_id = %f.id, address = %f.floating_ip_address, "floating IP created");
        Ok(f)
    }

    /// Points `f` at `port_id` (and one of its IPv4 addresses), through the router that connects
    /// them. The caller saves `f`.
    async fn associate(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        f: &mut FloatingIpRow,
        port_id: &str,
        fixed_ip: Option<&str>,
    ) -> Result<()> {
        let port = self.visible_port(conn, ctx, port_id).await?;
        if port.project_id != f.project_id && !ctx.admin {
            return Err(bad_fip(format!(
                "Cannot create floating IP and bind it to Port {port_id}, since that port is owned by a different project"
            )));
        }
        let ips = self.fixed_ips(conn, &port.id).await?;
        let chosen = match fixed_ip {
            Some(text) => {
                let canonical = crate::addr::canonical_ip(text).ok_or_else(|| {
                    invalid(
                        "fixed_ip_address",
                        format!("'{text}' is not a valid IP address"),
                    )
                })?;
                ips.into_iter()
                    .find(|i| i.ip_address == canonical)
                    .ok_or_else(|| {
                        bad_fip(format!("Port {port_id} does not have fixed ip {text}"))
                    })?
            }
            None => {
                let v4: Vec<_> = ips
                    .into_iter()
                    .filter(|i| Ip::parse(&i.ip_address).is_some_and(|ip| ip.version == 4))
                    .collect();
                match v4.len() {
                    0 => return Err(bad_fip(format!("Port {port_id} does not have any IPv4 address associated with it"))),
                    1 => v4.into_iter().next().expect("one"),
                    _ => return Err(bad_fip(format!("Port {port_id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP"))),
                }
            }
        };
        if Ip::parse(&chosen.ip_address).map(|i| i.version) != Some(4) {
            return Err(bad_fip(format!(
                "Cannot process floating IP association with {}, since that is not an IPv4 address",
                chosen.ip_address
            )));
        }
        let router = self
            .router_for(conn, &f.floating_network_id, &chosen.subnet_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "External network {} is not reachable from subnet {}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
                    f.floating_network_id, chosen.subnet_id
                ))
                .with_kind("ExternalGatewayForFloatingIPNotFound")
            })?;
        for other in store::floatingips::of_fixed_port(conn, &port.id).await? {
            if other.id != f.id
                && other.fixed_ip_address.as_deref() == Some(chosen.ip_address.as_str())
            {
                return Err(in_use(
                    "FloatingIPPortAlreadyAssociated",
                    format!(
                        "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {}.",
                        f.floating_ip_address, f.id, chosen.ip_address, other.floating_network_id
                    ),
                ));
            }
        }
        if !store::floatingips::list_forwardings(conn, Some(&f.id))
            .await?
            .is_empty()
        {
            return Err(in_use(
                "FipInUseByPortForwarding",
                format!("Floating IP {} has port forwardings; it cannot also be associated with a port.", f.id),
            ));
        }
        f.fixed_port_id = Some(port.id);
        f.fixed_ip_address = Some(chosen.ip_address);
        f.router_id = Some(router.id);
        f.status = "ACTIVE".into();
        Ok(())
    }

    pub async fn update_floatingip(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut f = self.visible_fip(&mut tx, ctx, id).await?;
        ctx.require_member("update_floatingip")?;
        let mut input = Input::new(Op::Update, map, READ_ONLY);
        if let Some(d) = input.string("description", 255)? {
            f.description = d;
        }
        let port_id = input.nullable_string("port_id", 36)?;
        let fixed_ip = input.nullable_string("fixed_ip_address", 64)?.flatten();
        input.take("tenant_id");
        input.take("project_id");
        input.take("dns_name");
        input.take("dns_domain");
        input.finish()?;
        match port_id {
            Some(Some(port_id)) => {
                self.associate(&mut tx, ctx, &mut f, &port_id, fixed_ip.as_deref())
                    .await?;
            }
            Some(None) => {
                f.fixed_port_id = None;
                f.fixed_ip_address = None;
                f.router_id = None;
                f.status = "DOWN".into();
            }
            None => {}
        }
        f.updated_at = now();
        f.revision_number += 1;
        if let Err(err) = store::floatingips::update(&mut tx, &f).await {
            if is_unique_violation(&err) {
                return Err(in_use(
                    "FloatingIPPortAlreadyAssociated",
                    "That fixed IP already has a floating IP.",
                ));
            }
            return Err(err.into());
        }
        let body = self.fip_json(&mut tx, &f).await?;
        tx.commit().await?;
        Ok(body)
    }

    pub async fn delete_floatingip(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let f = self.visible_fip(&mut tx, ctx, id).await?;
        ctx.require_member("delete_floatingip")?;
        self.delete_floatingip_tx(&mut tx, &f).await?;
        tx.commit().await
    }

    pub(crate) async fn delete_floatingip_tx(&self, tx: &mut Tx, f: &FloatingIpRow) -> Result<()> {
        store::tags::clear(tx, "floatingips", &f.id).await?;
        store::floatingips::delete(tx, &f.id).await?;
        if let Some(p) = store::ports::get(tx, &f.floating_port_id).await? {
            self.delete_port_tx(tx, &p).await?;
        }
        tracing::info!(floatingip_id = %f.id, "floating IP deleted");
        Ok(())
    }

    // ---- port forwardings ----

    pub async fn list_port_forwardings(
        &self,
        ctx: &Ctx,
        fip_id: &str,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &PF_SCHEMA)?;
        let mut conn = self.read().await?;
        let f = self.visible_fip(&mut conn, ctx, fip_id).await?;
        let items = store::floatingips::list_forwardings(&mut conn, Some(&f.id))
            .await?
            .iter()
            .map(types::port_forwarding)
            .collect();
        query::apply(items, params, &PF_SCHEMA, base)
    }

    async fn visible_forwarding(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        fip_id: &str,
        id: &str,
    ) -> Result<(FloatingIpRow, PortForwardingRow)> {
        let f = self.visible_fip(conn, ctx, fip_id).await?;
        let pf = store::floatingips::list_forwardings(conn, Some(&f.id))
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| not_found("Port forwarding", id))?;
        Ok((f, pf))
    }

    pub async fn get_port_forwarding(&self, ctx: &Ctx, fip_id: &str, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let (_, pf) = self.visible_forwarding(&mut conn, ctx, fip_id, id).await?;
        Ok(types::port_forwarding(&pf))
    }

    pub async fn create_port_forwarding(
        &self,
        ctx: &Ctx,
        fip_id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut f = self.visible_fip(&mut tx, ctx, fip_id).await?;
        ctx.require_member("create_floatingip_port_forwarding")?;
        if f.fixed_port_id.is_some() {
            return Err(in_use(
                "FipInUseByPortForwarding",
                format!("Floating IP {} is associated with a port; it cannot also have port forwardings.", f.id),
            ));
        }
        let mut pf = PortForwardingRow {
            id: new_uuid(),
            floatingip_id: f.id.clone(),
            internal_port_id: String::new(),
            internal_ip_address: String::new(),
            internal_port_start: 0,
            internal_port_end: 0,
            external_port_start: 0,
            external_port_end: 0,
            protocol: String::new(),
            description: String::new(),
        };
        let mut input = Input::new(Op::Create, map, &["id", "floatingip_id"]);
        fill_forwarding(&mut input, &mut pf, true)?;
        input.finish()?;
        let router = self.check_forwarding_target(&mut tx, ctx, &f, &pf).await?;
        if let Err(err) = store::floatingips::insert_forwarding(&mut tx, &pf).await {
            if is_unique_violation(&err) {
                return Err(forwarding_conflict(&pf));
            }
            return Err(err.into());
        }
        if f.router_id.is_none() {
            f.router_id = Some(router);
            f.status = "ACTIVE".into();
            f.updated_at = now();
            f.revision_number += 1;
            store::floatingips::update(&mut tx, &f).await?;
        }
        tx.commit().await?;
        Ok(json!({ "port_forwarding": types::port_forwarding(&pf) }))
    }

    /// The internal address must be the port's, and a router must join it to the floating IP's
    /// network; external port ranges of one protocol may not overlap.
    async fn check_forwarding_target(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        f: &FloatingIpRow,
        pf: &PortForwardingRow,
    ) -> Result<String> {
        let port: PortRow = self.visible_port(conn, ctx, &pf.internal_port_id).await?;
        let ips = self.fixed_ips(conn, &port.id).await?;
        let ip = ips
            .iter()
            .find(|i| i.ip_address == pf.internal_ip_address)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "Bad port_forwarding request: The internal IP address {} is not on port {}.",
                    pf.internal_ip_address, port.id
                ))
                .with_kind("BadRequest")
            })?;
        let router = self
            .router_for(conn, &f.floating_network_id, &ip.subnet_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "External network {} is not reachable from subnet {}.  Therefore, cannot associate Port {} with a Floating IP.",
                    f.floating_network_id, ip.subnet_id, port.id
                ))
                .with_kind("ExternalGatewayForFloatingIPNotFound")
            })?;
        for other in store::floatingips::list_forwardings(conn, Some(&f.id)).await? {
            if other.id != pf.id
                && other.protocol == pf.protocol
                && other.external_port_start <= pf.external_port_end
                && pf.external_port_start <= other.external_port_end
            {
                return Err(forwarding_conflict(pf));
            }
        }
        Ok(router.id)
    }

    pub async fn update_port_forwarding(
        &self,
        ctx: &Ctx,
        fip_id: &str,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let (f, mut pf) = self.visible_forwarding(&mut tx, ctx, fip_id, id).await?;
        ctx.require_member("update_floatingip_port_forwarding")?;
        let mut input = Input::new(Op::Update, map, &["id", "floatingip_id"]);
        fill_forwarding(&mut input, &mut pf, false)?;
        input.finish()?;
        self.check_forwarding_target(&mut tx, ctx, &f, &pf).await?;
        if let Err(err) = store::floatingips::update_forwarding(&mut tx, &pf).await {
            if is_unique_violation(&err) {
                return Err(forwarding_conflict(&pf));
            }
            return Err(err.into());
        }
        tx.commit().await?;
        Ok(json!({ "port_forwarding": types::port_forwarding(&pf) }))
    }

    pub async fn delete_port_forwarding(&self, ctx: &Ctx, fip_id: &str, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let (mut f, pf) = self.visible_forwarding(&mut tx, ctx, fip_id, id).await?;
        ctx.require_member("delete_floatingip_port_forwarding")?;
        store::floatingips::delete_forwarding(&mut tx, &pf.id).await?;
        if f.fixed_port_id.is_none()
            && store::floatingips::list_forwardings(&mut tx, Some(&f.id))
                .await?
                .is_empty()
        {
            f.router_id = None;
            f.status = "DOWN".into();
            f.updated_at = now();
            f.revision_number += 1;
            store::floatingips::update(&mut tx, &f).await?;
        }
        tx.commit().await
    }
}

fn forwarding_conflict(pf: &PortForwardingRow) -> Error {
    in_use(
        "PortForwardingConflict",
        format!(
            "A duplicate port forwarding entry with same attributes already exists, conflicting values are {{'floatingip_id': '{}', 'external_port': {}, 'protocol': '{}'}}.",
            pf.floatingip_id, pf.external_port_start, pf.protocol
        ),
    )
}

fn port_range(attr: &str, value: &Value) -> Result<(i64, i64)> {
    let parse = |v: &str| {
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=65535).contains(n))
    };
    let range = match value {
        Value::String(s) => match s.split_once(':') {
            Some((a, b)) => parse(a).zip(parse(b)),
            None => parse(s).map(|n| (n, n)),
        },
        v => to_int(v)
            .filter(|n| (1..=65535).contains(n))
            .map(|n| (n, n)),
    };
    match range {
        Some((a, b)) if a <= b => Ok((a, b)),
        _ => Err(invalid(
            attr,
            format!("'{value}' is not a valid port or port range"),
        )),
    }
}

/// Reads a port forwarding's attributes into `pf` (all required on create).
fn fill_forwarding(input: &mut Input, pf: &mut PortForwardingRow, create: bool) -> Result<()> {
    let required = |name: &str| {
        Error::bad_request(format!(
            "Failed to parse request. Required attribute '{name}' not specified"
        ))
        .with_kind("HTTPBadRequest")
    };
    if let Some(v) = input.string("internal_port_id", 36)? {
        pf.internal_port_id = v;
    } else if create {
        return Err(required("internal_port_id"));
    }
    if let Some(v) = input.string("internal_ip_address", 64)? {
        pf.internal_ip_address = crate::addr::canonical_ip(&v).ok_or_else(|| {
            invalid(
                "internal_ip_address",
                format!("'{v}' is not a valid IP address"),
            )
        })?;
    } else if create {
        return Err(required("internal_ip_address"));
    }
    if let Some(v) = input.string("protocol", 8)? {
        if v != "tcp" && v != "udp" {
            return Err(invalid(
                "protocol",
                format!("'{v}' is not in ['tcp', 'udp']"),
            ));
        }
        pf.protocol = v;
    } else if create {
        return Err(required("protocol"));
    }
    if let Some(v) = input.string("description", 255)? {
        pf.description = v;
    }
    let internal = input
        .take("internal_port")
        .or_else(|| input.take("internal_port_range"));
    let external = input
        .take("external_port")
        .or_else(|| input.take("external_port_range"));
    match internal {
        Some(v) => {
            let (a, b) = port_range("internal_port", &v)?;
            pf.internal_port_start = a;
            pf.internal_port_end = b;
        }
        None if create => return Err(required("internal_port")),
        None => {}
    }
    match external {
        Some(v) => {
            let (a, b) = port_range("external_port", &v)?;
            pf.external_port_start = a;
            pf.external_port_end = b;
        }
        None if create => return Err(required("external_port")),
        None => {}
    }
    let internal_len = pf.internal_port_end - pf.internal_port_start;
    let external_len = pf.external_port_end - pf.external_port_start;
    if internal_len != external_len && internal_len != 0 {
        return Err(invalid(
            "internal_port_range",
            "internal and external port ranges must be the same size, or the internal one a single port",
        ));
    }
    Ok(())
}
