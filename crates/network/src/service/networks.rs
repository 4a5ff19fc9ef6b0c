//! Networks: create (tenant networks get a VXLAN segment from the configured range; admins may
//! ask for a flat network on a physical network), update (sharing and `router:external` become
//! RBAC policies, as in Neutron), delete (refused while ports other than DHCP's are on it;
//! floating IPs on an external network go with it).

use nubo_common::db::is_unique_violation;
use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{Map, Value};

use super::{in_use, not_found, policy, Access, Ctx, NetworkService, Tx};
use crate::input::{invalid, invalid_input, CreateBody, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::networks::NetworkRow;
use crate::store::rbac::RbacRow;
use crate::store::{self, now, Conn};
use crate::types::{self, NetworkExtras, AVAILABILITY_ZONE};

pub const SCHEMA: Schema = Schema {
    collection: "networks",
    filters: &[
        "id",
        "name",
        "description",
        "admin_state_up",
        "status",
        "shared",
        "project_id",
        "tenant_id",
        "router:external",
        "mtu",
        "port_security_enabled",
        "availability_zone_hints",
        "availability_zones",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
        "subnets",
        "is_default",
        "l2_adjacency",
        "created_at",
        "updated_at",
        "revision_number",
        "tags",
    ],
};

const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "subnets",
    "availability_zones",
    "created_at",
    "updated_at",
    "revision_number",
    "l2_adjacency",
    "ipv4_address_scope",
    "ipv6_address_scope",
];

/// VXLAN's overhead over the underlay MTU.
const VXLAN_OVERHEAD: i64 = 50;

impl NetworkService {
    pub(crate) fn max_mtu(&self, network_type: &str) -> i64 {
        if network_type == "vxlan" {
            self.settings.physical_mtu - VXLAN_OVERHEAD
        } else {
            self.settings.physical_mtu
        }
    }

    /// A network the caller may see, or 404.
    pub(crate) async fn visible_network(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        access: &Access,
        id: &str,
    ) -> Result<NetworkRow> {
        match store::networks::get(conn, id).await? {
            Some(n) if access.can_see_network(ctx, &n) => Ok(n),
            _ => Err(not_found("Network", id)),
        }
    }

    /// The wire form of one network as `ctx` sees it.
    pub(crate) async fn network_json(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        access: &Access,
        n: &NetworkRow,
    ) -> Result<Value> {
        let subnets = store::subnets::of_network(conn, &n.id)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let tags = store::tags::of(conn, "networks", &n.id).await?;
        Ok(types::network(
            n,
            NetworkExtras {
                subnets,
                shared: access.shared(&n.id, &ctx.project),
                tags: &tags,
                admin: ctx.admin,
            },
        ))
    }

    pub async fn list_networks(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let access = Access::load(&mut conn).await?;
        let networks: Vec<NetworkRow> = store::networks::list(&mut conn)
            .await?
            .into_iter()
            .filter(|n| access.can_see_network(ctx, n))
            .collect();
        let subnets = store::subnets::list(&mut conn).await?;
        let ids: Vec<String> = networks.iter().map(|n| n.id.clone()).collect();
        let tags = store::tags::of_many(&mut conn, "networks", &ids).await?;
        let items = networks
            .iter()
            .map(|n| {
                types::network(
                    n,
                    NetworkExtras {
                        subnets: subnets
                            .iter()
                            .filter(|s| s.network_id == n.id)
                            .map(|s| s.id.clone())
                            .collect(),
                        shared: access.shared(&n.id, &ctx.project),
                        tags: tags.get(&n.id).map(Vec::as_slice).unwrap_or(&[]),
                        admin: ctx.admin,
                    },
                )
            })
            .collect();
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_network(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        let access = Access::load(&mut conn).await?;
        let n = self.visible_network(&mut conn, ctx, &access, id).await?;
        self.network_json(&mut conn, ctx, &access, &n).await
    }

    /// `POST /networks`, one or in bulk (all or nothing).
    pub async fn create_networks(&self, ctx: &Ctx, body: CreateBody) -> Result<Value> {
        ctx.require_member("create_network")?;
        let mut tx = self.write().await?;
        let result = match body {
            CreateBody::One(map) => {
                let n = self.create_network_tx(&mut tx, ctx, map).await?;
                let access = Access::load(&mut tx).await?;
                serde_json::json!({"network": self.network_json(&mut tx, ctx, &access, &n).await?})
            }
            CreateBody::Bulk(maps) => {
                let mut rows = Vec::new();
                for map in maps {
                    rows.push(self.create_network_tx(&mut tx, ctx, map).await?);
                }
                let access = Access::load(&mut tx).await?;
                let mut out = Vec::new();
                for n in &rows {
                    out.push(self.network_json(&mut tx, ctx, &access, n).await?);
                }
                serde_json::json!({ "networks": out })
            }
        };
        tx.commit().await?;
        Ok(result)
    }

    /// Creates one network inside `tx`.
    pub(crate) async fn create_network_tx(
        &self,
        tx: &mut Tx,
        ctx: &Ctx,
        map: Map<String, Value>,
    ) -> Result<NetworkRow> {
        let mut input = Input::new(Op::Create, map, READ_ONLY);
        let project = input.project(&ctx.project, ctx.admin)?;
        let name = input.string("name", 255)?.unwrap_or_default();
        let description = input.string("description", 255)?.unwrap_or_default();
        let admin_state_up = input.boolean("admin_state_up")?.unwrap_or(true);
        let shared = input.boolean("shared")?.unwrap_or(false);
        let external = input.boolean("router:external")?.unwrap_or(false);
        let port_security_enabled = input.boolean("port_security_enabled")?.unwrap_or(true);
        let network_type = input
            .nullable_string("provider:network_type", 255)?
            .flatten();
        let physical_network = input
            .nullable_string("provider:physical_network", 64)?
            .flatten();
        let segmentation_id = input.integer("provider:segmentation_id")?.flatten();
        let mtu = input.integer("mtu")?.flatten();
        let az_hints = input
            .string_list("availability_zone_hints")?
            .unwrap_or_default();
        let is_default = input.boolean("is_default")?.unwrap_or(false);
        let tags = input.string_list("tags")?.unwrap_or_default();
        input.take("dns_domain");
        input.finish()?;
        if shared && !ctx.admin {
            return Err(policy("create_network:shared"));
        }
        if external && !ctx.admin {
            return Err(policy("create_network:router:external"));
        }
        if is_default && !ctx.admin {
            return Err(policy("create_network:is_default"));
        }
        if (network_type.is_some() || physical_network.is_some() || segmentation_id.is_some())
            && !ctx.admin
        {
            return Err(policy("create_network:provider:network_type"));
        }
        for hint in &az_hints {
            if hint != AVAILABILITY_ZONE {
                return Err(Error::not_found(format!(
                    "AvailabilityZone {hint} could not be found."
                ))
                .with_kind("AvailabilityZoneNotFound"));
            }
        }
        let (network_type, physical_network, segmentation_id) = self
            .segment(tx, network_type, physical_network, segmentation_id)
            .await?;
        let max_mtu = self.max_mtu(&network_type);
        let mtu = match mtu {
            Some(m) if m > max_mtu => {
                return Err(invalid_input(format!(
                    "Requested MTU is too big, maximum is {max_mtu}"
                )))
            }
            Some(m) if m < 68 => {
                return Err(invalid(
                    "mtu",
                    format!("'{m}' is too small - must be at least '68'"),
                ))
            }
            Some(m) => m,
            None => max_mtu,
        };
        self.check_quota(tx, &project, "network", 1).await?;
        let now = now();
        let n = NetworkRow {
            id: new_uuid(),
            project_id: project.clone(),
            name,
            description,
            admin_state_up,
            status: "ACTIVE".into(),
            external,
            is_default,
            network_type: network_type.clone(),
            physical_network,
            segmentation_id,
            mtu,
            port_security_enabled,
            availability_zone_hints: az_hints,
            created_at: now.clone(),
            updated_at: now,
            revision_number: 1,
        };
        if let Err(err) = store::networks::insert(tx, &n).await {
            if is_unique_violation(&err) {
                return Err(segment_in_use(&network_type));
            }
            return Err(err.into());
        }
        if shared {
            self.add_wildcard_rbac(tx, &n, "access_as_shared").await?;
        }
        if external {
            self.add_wildcard_rbac(tx, &n, "access_as_external").await?;
        }
        for tag in tags {
            store::tags::add(tx, "networks", &n.id, &tag).await?;
        }
        tracing::info!(network_id = %n.id, project_id = %project, network_type = %n.network_type, "network created");
        Ok(n)
    }

    async fn add_wildcard_rbac(&self, conn: &mut Conn, n: &NetworkRow, action: &str) -> Result<()> {
        let row = RbacRow {
            id: new_uuid(),
            project_id: n.project_id.clone(),
            object_type: "network".into(),
            object_id: n.id.clone(),
            action: action.into(),
            target_project: "*".into(),
        };
        match store::rbac::insert(conn, &row).await {
            Ok(()) => Ok(()),
            Err(err) if is_unique_violation(&err) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Decides a new network's segment: the one an admin asked for, or the next free VXLAN id.
    async fn segment(
        &self,
        conn: &mut Conn,
        network_type: Option<String>,
        physical_network: Option<String>,
        segmentation_id: Option<i64>,
    ) -> Result<(String, Option<String>, Option<i64>)> {
        let network_type = match network_type {
            Some(t) => t,
            None if physical_network.is_some() || segmentation_id.is_some() => {
                return Err(invalid_input("provider:network_type required"))
            }
            None => "vxlan".into(),
        };
        match network_type.as_str() {
            "vxlan" => {
                if physical_network.is_some() {
                    return Err(invalid_input(
                        "provider:physical_network specified for VXLAN network",
                    ));
                }
                let id = match segmentation_id {
                    Some(id) => {
                        if !(1..(1 << 24)).contains(&id) {
                            return Err(invalid_input(format!(
                                "VXLAN network segmentation_id {id} out of range 1 to 16777215"
                            )));
                        }
                        if store::networks::segment_owner(conn, "vxlan", id)
                            .await?
                            .is_some()
                        {
                            return Err(segment_in_use("vxlan"));
                        }
                        id
                    }
                    None => self.next_vni(conn).await?,
                };
                Ok((network_type, None, Some(id)))
            }
            "flat" => {
                if segmentation_id.is_some() {
                    return Err(invalid_input(
                        "provider:segmentation_id specified for flat network",
                    ));
                }
                let physnet = physical_network
                    .ok_or_else(|| invalid_input("provider:physical_network required"))?;
                if !self
                    .settings
                    .flat_networks
                    .iter()
                    .any(|p| p == &physnet || p == "*")
                {
                    return Err(invalid_input(format!(
                        "physical_network '{physnet}' unknown for flat provider network"
                    )));
                }
                if store::networks::flat_owner(conn, &physnet).await?.is_some() {
                    return Err(in_use(
                        "FlatNetworkInUse",
                        format!(
                            "Unable to create the flat network. Physical network {physnet} is in use."
                        ),
                    ));
                }
                Ok((network_type, Some(physnet), None))
            }
            other => Err(invalid_input(format!(
                "network_type value '{other}' not supported"
            ))),
        }
    }

    async fn next_vni(&self, conn: &mut Conn) -> Result<i64> {
        let (min, max) = (self.settings.vni_min, self.settings.vni_max);
        let used = store::networks::used_segments(conn, "vxlan", min, max).await?;
        let mut candidate = min;
        for id in used {
            if id > candidate {
                break;
            }
            candidate = id + 1;
        }
        if candidate > max {
            return Err(Error::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Unable to create the network. No tenant network is available for allocation.",
            )
            .with_kind("NoNetworkAvailable"));
        }
        Ok(candidate)
    }

    pub async fn update_network(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let access = Access::load(&mut tx).await?;
        let mut n = self.visible_network(&mut tx, ctx, &access, id).await?;
        if !ctx.owns(&n.project_id) {
            return Err(policy("update_network"));
        }
        ctx.require_member("update_network")?;
        let mut input = Input::new(Op::Update, map, READ_ONLY);
        if let Some(v) = input.string("name", 255)? {
            n.name = v;
        }
        if let Some(v) = input.string("description", 255)? {
            n.description = v;
        }
        if let Some(v) = input.boolean("admin_state_up")? {
            n.admin_state_up = v;
        }
        if let Some(v) = input.boolean("port_security_enabled")? {
            n.port_security_enabled = v;
        }
        if let Some(mtu) = input.integer("mtu")? {
            let mtu = mtu.ok_or_else(|| invalid("mtu", "'None' is not an integer"))?;
            let max = self.max_mtu(&n.network_type);
            if mtu > max {
                return Err(invalid_input(format!(
                    "Requested MTU is too big, maximum is {max}"
                )));
            }
            if mtu < 68 {
                return Err(invalid(
                    "mtu",
                    format!("'{mtu}' is too small - must be at least '68'"),
                ));
            }
            n.mtu = mtu;
        }
        let shared = input.boolean("shared")?;
        let external = input.boolean("router:external")?;
        let is_default = input.boolean("is_default")?;
        for key in [
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
        ] {
            if input.has(key) {
                if !ctx.admin {
                    return Err(policy(&format!("update_network:{key}")));
                }
                return Err(invalid_input(
                    "Plugin does not support updating provider attributes",
                ));
            }
        }
        if input.has("availability_zone_hints") {
            return Err(Error::bad_request(
                "Cannot update read-only attribute availability_zone_hints",
            )
            .with_kind("HTTPBadRequest"));
        }
        input.take("tenant_id");
        input.take("project_id");
        input.take("dns_domain");
        input.finish()?;
        if let Some(shared) = shared {
            if shared != access.shared_with_all(&n.id) {
                if !ctx.admin {
                    return Err(policy("update_network:shared"));
                }
                if shared {
                    self.add_wildcard_rbac(&mut tx, &n, "access_as_shared")
                        .await?;
                } else {
                    self.unshare(&mut tx, &n).await?;
                }
            }
        }
        if let Some(external) = external {
            if external != n.external {
                if !ctx.admin {
                    return Err(policy("update_network:router:external"));
                }
                if external {
                    self.add_wildcard_rbac(&mut tx, &n, "access_as_external")
                        .await?;
                } else {
                    if !store::routers::with_gateway_on(&mut tx, &n.id)
                        .await?
                        .is_empty()
                    {
                        return Err(in_use(
                            "ExternalNetworkInUse",
                            format!("External network {} cannot be updated to be made non-external, since it has existing gateway ports.", n.id),
                        ));
                    }
                    for r in store::rbac::of_object(&mut tx, &n.id).await? {
                        if r.action == "access_as_external" {
                            store::rbac::delete(&mut tx, &r.id).await?;
                        }
                    }
                }
                n.external = external;
            }
        }
        if let Some(is_default) = is_default {
            if !ctx.admin {
                return Err(policy("update_network:is_default"));
            }
            n.is_default = is_default;
        }
        n.updated_at = now();
        n.revision_number += 1;
        store::networks::update(&mut tx, &n).await?;
        let access = Access::load(&mut tx).await?;
        let body = self.network_json(&mut tx, ctx, &access, &n).await?;
        tx.commit().await?;
        Ok(body)
    }

    /// Removes the wildcard `access_as_shared` policy, unless other projects still use the network.
    async fn unshare(&self, conn: &mut Conn, n: &NetworkRow) -> Result<()> {
        let ports = store::ports::list(
            conn,
            &store::ports::PortFilter {
                network_id: Some(n.id.clone()),
                ..Default::default()
            },
        )
        .await?;
        let policies = store::rbac::of_object(conn, &n.id).await?;
        let still_granted = |project: &str| {
            policies
                .iter()
                .any(|r| r.action == "access_as_shared" && r.target_project == project)
        };
        if ports.iter().any(|p| {
            p.project_id != n.project_id
                && !p.project_id.is_empty()
                && !still_granted(&p.project_id)
        }) {
            return Err(in_use(
                "InvalidSharedSetting",
                format!(
                    "Unable to reconfigure sharing settings for network {}. Multiple tenants are using it.",
                    n.id
                ),
            ));
        }
        for r in policies {
            if r.action == "access_as_shared" && r.target_project == "*" {
                store::rbac::delete(conn, &r.id).await?;
            }
        }
        Ok(())
    }

    pub async fn delete_network(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let access = Access::load(&mut tx).await?;
        let n = self.visible_network(&mut tx, ctx, &access, id).await?;
        if !ctx.owns(&n.project_id) {
            return Err(policy("delete_network"));
        }
        ctx.require_member("delete_network")?;
        self.delete_network_tx(&mut tx, &n).await?;
        tx.commit().await
    }

    pub(crate) async fn delete_network_tx(&self, tx: &mut Tx, n: &NetworkRow) -> Result<()> {
        let ports = store::ports::list(
            tx,
            &store::ports::PortFilter {
                network_id: Some(n.id.clone()),
                ..Default::default()
            },
        )
        .await?;
        if ports.iter().any(|p| {
            p.device_owner != super::DHCP_OWNER && p.device_owner != super::FLOATINGIP_OWNER
        }) {
            return Err(in_use(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {}. There are one or more ports still in use on the network.",
                    n.id
                ),
            ));
        }
        for f in store::floatingips::on_network(tx, &n.id).await? {
            self.delete_floatingip_tx(tx, &f).await?;
        }
        for p in &ports {
            store::tags::clear(tx, "ports", &p.id).await?;
            store::ports::delete(tx, &p.id).await?;
        }
        for s in store::subnets::of_network(tx, &n.id).await? {
            store::tags::clear(tx, "subnets", &s.id).await?;
            store::subnets::delete(tx, &s.id).await?;
        }
        store::rbac::delete_of_object(tx, &n.id).await?;
        store::tags::clear(tx, "networks", &n.id).await?;
        store::networks::delete(tx, &n.id).await?;
        tracing::info!(network_id = %n.id, "network deleted");
        Ok(())
    }
}

fn segment_in_use(network_type: &str) -> Error {
    if network_type == "flat" {
        in_use(
            "FlatNetworkInUse",
            "Unable to create the flat network. Physical network is in use.",
        )
    } else {
        in_use(
            "TunnelIdInUse",
            "Unable to create the network. The tunnel ID is in use.",
        )
    }
}
