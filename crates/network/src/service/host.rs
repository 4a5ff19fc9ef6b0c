//! The in-process interface of Networking for Compute and the data plane. These are plain
//! methods, called with Nubo's own authority (no token); Compute has already authorized the user
//! who asked for the server.
//!
//! Compute:
//! - [`NetworkService::create_server_port`] makes the port of a server NIC on a network
//!   (`device_owner` `compute:nova`, bound to the host), with the project's default security
//!   group unless groups are named; [`NetworkService::bind_server_port`] takes over a port the
//!   user made (`--port`); [`NetworkService::release_server_port`] undoes either (a port Nubo made
//!   is deleted, a user's port is unbound and kept); both are idempotent, so a failed server
//!   create can undo its ports step by step.
//! - [`NetworkService::ports_of_device`] lists a server's ports (addresses for `server show`).
//!
//! The data plane:
//! - [`NetworkService::desired_state`] is one consistent snapshot of what should exist (networks
//!   with segments and MTU, subnets, ports with MACs, addresses and security groups, groups with
//!   rules and the member addresses remote-group rules need, routers with gateway, interfaces,
//!   extra routes, floating IPs and port forwardings).
//! - [`NetworkService::set_port_status`] reports a port `ACTIVE` or `DOWN`.
//! - [`NetworkService::ensure_dhcp_port`] gives a host's DHCP server its port (and addresses)
//!   on a network.

use std::collections::{BTreeSet, HashMap};

use nubo_common::{Error, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::ipam::IpRequest;
use super::ports::{NewPort, VIF_TYPE};
use super::{is_network_owned, not_found, Ctx, NetworkService};
use crate::store::ports::{PortFilter, PortRow};
use crate::store::{self, now};

/// The device owner of server ports.
pub const COMPUTE_OWNER: &str = "compute:nova";

/// One address of a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixedIpState {
    pub subnet_id: String,
    pub ip_address: String,
}

/// A port as Compute and the data plane need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortState {
    pub id: String,
    pub network_id: String,
    pub project_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIpState>,
    pub device_id: String,
    pub device_owner: String,
    /// The host the port is bound to (`binding:host_id`); empty when unbound.
    pub host: String,
    pub admin_state_up: bool,
    pub status: String,
    pub port_security_enabled: bool,
    pub security_groups: Vec<String>,
    /// (IP address or CIDR, MAC) pairs the port may also use.
    pub allowed_address_pairs: Vec<(String, String)>,
    /// (option name, value, IP version) for DHCP.
    pub extra_dhcp_opts: Vec<(String, String, i64)>,
    /// The network's MTU, for the guest.
    pub mtu: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetState {
    pub id: String,
    pub ip_version: i64,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub dns_nameservers: Vec<String>,
    /// (destination, nexthop).
    pub host_routes: Vec<(String, String)>,
    /// Inclusive (start, end) ranges.
    pub allocation_pools: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkState {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub admin_state_up: bool,
    /// `vxlan` (the VNI is `segmentation_id`) or `flat` (on `physical_network`).
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
    pub mtu: i64,
    pub external: bool,
    pub port_security_enabled: bool,
    pub subnets: Vec<SubnetState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleState {
    pub id: String,
    pub direction: String,
    pub ethertype: String,
    /// A name (`tcp`) or a number (`"47"`); `None` is any protocol.
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroupState {
    pub id: String,
    pub project_id: String,
    pub stateful: bool,
    pub rules: Vec<RuleState>,
    /// Every address (fixed IPs and allowed-address-pair IPs) of the group's ports: what a rule
    /// with this group as `remote_group_id` matches.
    pub member_ips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterPortState {
    pub port_id: String,
    pub network_id: String,
    pub mac_address: String,
    /// (address, subnet CIDR).
    pub addresses: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FloatingIpState {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortForwardingState {
    pub id: String,
    pub floating_ip_address: String,
    pub protocol: String,
    pub external_port_range: (i64, i64),
    pub internal_ip_address: String,
    pub internal_port_range: (i64, i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterState {
    pub id: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub gateway: Option<RouterPortState>,
    pub enable_snat: bool,
    pub interfaces: Vec<RouterPortState>,
    /// (destination, nexthop).
    pub routes: Vec<(String, String)>,
    pub floating_ips: Vec<FloatingIpState>,
    pub port_forwardings: Vec<PortForwardingState>,
}

/// What should exist, as one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DesiredState {
    pub networks: Vec<NetworkState>,
    /// Every port of those networks (each says which host it is bound to, so a host can tell
    /// its own ports from its VXLAN peers').
    pub ports: Vec<PortState>,
    pub security_groups: Vec<SecurityGroupState>,
    pub routers: Vec<RouterState>,
}

/// What Compute asks for when it plugs a server into a network.
#[derive(Debug, Clone, Default)]
pub struct ServerPortRequest {
    pub project_id: String,
    pub network_id: String,
    /// The server's id (the port's `device_id`).
    pub server_id: String,
    /// The compute host (`binding:host_id`).
    pub host: String,
    /// A requested IPv4 or IPv6 address (`--nic v4-fixed-ip=`).
    pub fixed_ip: Option<String>,
    /// Security group names or ids; `None` means the project's default group.
    pub security_groups: Option<Vec<String>>,
}

impl NetworkService {
    fn state_of(
        p: &PortRow,
        ips: &[store::ports::FixedIp],
        groups: &[String],
        mtu: i64,
    ) -> PortState {
        PortState {
            id: p.id.clone(),
            network_id: p.network_id.clone(),
            project_id: p.project_id.clone(),
            mac_address: p.mac_address.clone(),
            fixed_ips: ips
                .iter()
                .map(|i| FixedIpState {
                    subnet_id: i.subnet_id.clone(),
                    ip_address: i.ip_address.clone(),
                })
                .collect(),
            device_id: p.device_id.clone(),
            device_owner: p.device_owner.clone(),
            host: p.host_id.clone(),
            admin_state_up: p.admin_state_up,
            status: p.status.clone(),
            port_security_enabled: p.port_security_enabled,
            security_groups: groups.to_vec(),
            allowed_address_pairs: p
                .allowed_address_pairs
                .iter()
                .map(|a| (a.ip_address.clone(), a.mac_address.clone()))
                .collect(),
            extra_dhcp_opts: p
                .extra_dhcp_opts
                .iter()
                .map(|o| (o.opt_name.clone(), o.opt_value.clone(), o.ip_version))
                .collect(),
            mtu,
        }
    }

    async fn port_states(
        &self,
        conn: &mut store::Conn,
        ports: &[PortRow],
    ) -> Result<Vec<PortState>> {
        let ids: Vec<String> = ports.iter().map(|p| p.id.clone()).collect();
        let ips = store::ports::fixed_ips_of(conn, &ids).await?;
        let groups = store::ports::security_groups_of(conn, &ids).await?;
        let mut mtus: HashMap<String, i64> = HashMap::new();
        let mut out = Vec::with_capacity(ports.len());
        for p in ports {
            let mtu = match mtus.get(&p.network_id) {
                Some(m) => *m,
                None => {
                    let m = store::networks::get(conn, &p.network_id)
                        .await?
                        .map(|n| n.mtu)
                        .unwrap_or(self.settings.physical_mtu);
                    mtus.insert(p.network_id.clone(), m);
                    m
                }
            };
            out.push(Self::state_of(
                p,
                ips.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
                groups.get(&p.id).map(Vec::as_slice).unwrap_or(&[]),
                mtu,
            ));
        }
        Ok(out)
    }

    /// Resolves security group names or ids of `project` to ids.
    async fn resolve_groups(
        &self,
        conn: &mut store::Conn,
        project: &str,
        names: &[String],
    ) -> Result<Vec<String>> {
        let groups = store::security_groups::list_groups(conn, Some(project)).await?;
        let mut out = Vec::new();
        for name in names {
            if groups.iter().any(|g| &g.id == name) {
                out.push(name.clone());
                continue;
            }
            if name == "default" {
                out.push(self.ensure_default_group(conn, project).await?);
                continue;
            }
            let matching: Vec<_> = groups.iter().filter(|g| &g.name == name).collect();
            match matching.len() {
                0 => return Err(not_found("Security group", name)),
                1 => out.push(matching[0].id.clone()),
                _ => {
                    return Err(Error::conflict(format!(
                        "Multiple security_group matches found for name '{name}', use an ID to be more specific."
                    ))
                    .with_kind("NoUniqueMatch"))
                }
            }
        }
        Ok(out)
    }

    /// Makes and binds the port of a server NIC. Errors are Neutron's (404 network, 409 no
    /// address left, 409 over quota ...).
    pub async fn create_server_port(&self, req: &ServerPortRequest) -> Result<PortState> {
        let ctx = Ctx::system(&req.project_id);
        let mut tx = self.write().await?;
        let mut new = NewPort::internal(
            &req.network_id,
            &req.project_id,
            &req.server_id,
            COMPUTE_OWNER,
        );
        if !req.host.is_empty() {
            new.host_id = Some(req.host.clone());
        }
        if let Some(ip) = &req.fixed_ip {
            new.fixed_ips = Some(vec![IpRequest {
                subnet_id: None,
                ip_address: Some(ip.clone()),
            }]);
        }
        if let Some(groups) = &req.security_groups {
            new.security_groups = Some(
                self.resolve_groups(&mut tx, &req.project_id, groups)
                    .await?,
            );
        }
        // A server may only use networks its project may use.
        let access = super::Access::load(&mut tx).await?;
        let user = Ctx {
            project: req.project_id.clone(),
            admin: false,
            member: true,
        };
        let network = store::networks::get(&mut tx, &req.network_id)
            .await?
            .filter(|n| access.can_see_network(&user, n))
            .ok_or_else(|| not_found("Network", &req.network_id))?;
        if !access.can_use_network(&user, &network) {
            return Err(super::policy("create_port"));
        }
        let port = self.create_port_tx(&mut tx, &ctx, new).await?;
        let state = self
            .port_states(&mut tx, std::slice::from_ref(&port))
            .await?;
        tx.commit().await?;
        Ok(state.into_iter().next().expect("one port"))
    }

    /// Attaches a port the user made to a server: sets its device and binds it to `host`.
    /// 409 `PortInUse` when another device has it.
    pub async fn bind_server_port(
        &self,
        project_id: &str,
        port_id: &str,
        server_id: &str,
        host: &str,
    ) -> Result<PortState> {
        let mut tx = self.write().await?;
        let mut p = match store::ports::get(&mut tx, port_id).await? {
            Some(p) if p.project_id == project_id => p,
            _ => return Err(not_found("Port", port_id)),
        };
        if !p.device_id.is_empty() && p.device_id != server_id {
            return Err(super::in_use(
                "PortInUse",
                format!(
                    "Unable to complete operation on port {} for network {}. Port already has an attached device {}.",
                    p.id, p.network_id, p.device_id
                ),
            ));
        }
        p.device_id = server_id.to_string();
        p.device_owner = COMPUTE_OWNER.into();
        p.host_id = host.to_string();
        p.vif_type = if host.is_empty() {
            "unbound".into()
        } else {
            VIF_TYPE.into()
        };
        p.vif_details = if host.is_empty() {
            Map::new()
        } else {
            super::ports::vif_details()
        };
        p.updated_at = now();
        p.revision_number += 1;
        store::ports::update(&mut tx, &p).await?;
        let state = self.port_states(&mut tx, std::slice::from_ref(&p)).await?;
        tx.commit().await?;
        Ok(state.into_iter().next().expect("one port"))
    }

    /// Undoes [`Self::create_server_port`] (`delete_port` true: the port goes) or
    /// [`Self::bind_server_port`] (false: the port stays, unbound). A port already gone is fine.
    pub async fn release_server_port(&self, port_id: &str, delete_port: bool) -> Result<()> {
        let mut tx = self.write().await?;
        let Some(mut p) = store::ports::get(&mut tx, port_id).await? else {
            return Ok(());
        };
        if delete_port {
            self.delete_port_tx(&mut tx, &p).await?;
        } else {
            p.device_id.clear();
            p.device_owner.clear();
            p.host_id.clear();
            p.vif_type = "unbound".into();
            p.vif_details = Map::new();
            p.status = "DOWN".into();
            p.updated_at = now();
            p.revision_number += 1;
            store::ports::update(&mut tx, &p).await?;
        }
        tx.commit().await
    }

    /// The ports of a device (a server, a router), oldest first.
    pub async fn ports_of_device(&self, device_id: &str) -> Result<Vec<PortState>> {
        let mut conn = self.read().await?;
        let ports = store::ports::list(
            &mut conn,
            &PortFilter {
                device_id: Some(device_id.to_string()),
                ..Default::default()
            },
        )
        .await?;
        self.port_states(&mut conn, &ports).await
    }

    /// One port, or `None`.
    pub async fn port_state(&self, port_id: &str) -> Result<Option<PortState>> {
        let mut conn = self.read().await?;
        let Some(p) = store::ports::get(&mut conn, port_id).await? else {
            return Ok(None);
        };
        Ok(self
            .port_states(&mut conn, std::slice::from_ref(&p))
            .await?
            .pop())
    }

    /// The DHCP port of `network_id` served from `host` (`device_owner` `network:dhcp`,
    /// `device_id` `dhcp-<host>`): made on first call with an address on every DHCP-enabled
    /// subnet, and given one on subnets added since. Idempotent; the data plane calls it when it
    /// starts serving a network. 404 when the network is gone.
    pub async fn ensure_dhcp_port(&self, network_id: &str, host: &str) -> Result<PortState> {
        let device_id = format!("dhcp-{host}");
        let mut tx = self.write().await?;
        let network = store::networks::get(&mut tx, network_id)
            .await?
            .ok_or_else(|| not_found("Network", network_id))?;
        let subnets: Vec<_> = store::subnets::of_network(&mut tx, network_id)
            .await?
            .into_iter()
            .filter(|s| s.enable_dhcp)
            .collect();
        let existing = store::ports::list(
            &mut tx,
            &PortFilter {
                network_id: Some(network_id.to_string()),
                device_id: Some(device_id.clone()),
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .find(|p| p.device_owner == super::DHCP_OWNER);
        let port = match existing {
            Some(p) => {
                let held: Vec<String> = self
                    .fixed_ips(&mut tx, &p.id)
                    .await?
                    .into_iter()
                    .map(|f| f.subnet_id)
                    .collect();
                let missing: Vec<IpRequest> = subnets
                    .iter()
                    .filter(|s| !held.contains(&s.id))
                    .map(|s| IpRequest {
                        subnet_id: Some(s.id.clone()),
                        ip_address: None,
                    })
                    .collect();
                if !missing.is_empty() {
                    let mac = crate::addr::Mac::parse(&p.mac_address).ok_or_else(|| {
                        Error::internal(format!("stored MAC {} is invalid", p.mac_address))
                    })?;
                    let all = store::subnets::of_network(&mut tx, network_id).await?;
                    self.allocate_port_ips(
                        &mut tx,
                        network_id,
                        &all,
                        &p.id,
                        &mac,
                        &p.device_owner,
                        Some(&missing),
                    )
                    .await?;
                }
                p
            }
            None => {
                let mut new = NewPort::internal(
                    network_id,
                    &network.project_id,
                    &device_id,
                    super::DHCP_OWNER,
                );
                new.host_id = Some(host.to_string());
                new.fixed_ips = Some(
                    subnets
                        .iter()
                        .map(|s| IpRequest {
                            subnet_id: Some(s.id.clone()),
                            ip_address: None,
                        })
                        .collect(),
                );
                self.create_port_tx(&mut tx, &Ctx::system(&network.project_id), new)
                    .await?
            }
        };
        let state = self
            .port_states(&mut tx, std::slice::from_ref(&port))
            .await?;
        tx.commit().await?;
        Ok(state.into_iter().next().expect("one port"))
    }

    /// The data plane's report: the port is up (`ACTIVE`) or not (`DOWN`). Unknown ports are
    /// ignored (they were deleted meanwhile).
    pub async fn set_port_status(&self, port_id: &str, up: bool) -> Result<()> {
        let mut tx = self.write().await?;
        store::ports::set_status(&mut tx, port_id, if up { "ACTIVE" } else { "DOWN" }, &now())
            .await?;
        tx.commit().await
    }

    /// The desired state: of everything (`host` `None`, what a network node hosting all
    /// routers needs), or of the networks that have a port bound to `host` (with every port of
    /// those networks, the security groups of that host's ports, and the routers attached to
    /// those networks).
    pub async fn desired_state(&self, host: Option<&str>) -> Result<DesiredState> {
        // One read transaction: a consistent snapshot (WAL readers see one point in time).
        let mut tx = self.db.pool().begin().await?;
        let conn: &mut store::Conn = &mut tx;
        let all_networks = store::networks::list(conn).await?;
        let all_ports = store::ports::list(conn, &PortFilter::default()).await?;
        let network_ids: BTreeSet<String> = match host {
            None => all_networks.iter().map(|n| n.id.clone()).collect(),
            Some(h) => all_ports
                .iter()
                .filter(|p| p.host_id == h)
                .map(|p| p.network_id.clone())
                .collect(),
        };
        let subnets = store::subnets::list(conn).await?;
        let networks: Vec<NetworkState> = all_networks
            .iter()
            .filter(|n| network_ids.contains(&n.id))
            .map(|n| NetworkState {
                id: n.id.clone(),
                project_id: n.project_id.clone(),
                name: n.name.clone(),
                admin_state_up: n.admin_state_up,
                network_type: n.network_type.clone(),
                physical_network: n.physical_network.clone(),
                segmentation_id: n.segmentation_id,
                mtu: n.mtu,
                external: n.external,
                port_security_enabled: n.port_security_enabled,
                subnets: subnets
                    .iter()
                    .filter(|s| s.network_id == n.id)
                    .map(|s| SubnetState {
                        id: s.id.clone(),
                        ip_version: s.ip_version,
                        cidr: s.cidr.clone(),
                        gateway_ip: s.gateway_ip.clone(),
                        enable_dhcp: s.enable_dhcp,
                        ipv6_ra_mode: s.ipv6_ra_mode.clone(),
                        ipv6_address_mode: s.ipv6_address_mode.clone(),
                        dns_nameservers: s.dns_nameservers.clone(),
                        host_routes: s
                            .host_routes
                            .iter()
                            .map(|r| (r.destination.clone(), r.nexthop.clone()))
                            .collect(),
                        allocation_pools: s
                            .allocation_pools
                            .iter()
                            .map(|p| (p.start.clone(), p.end.clone()))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let ports: Vec<PortRow> = all_ports
            .iter()
            .filter(|p| network_ids.contains(&p.network_id))
            .cloned()
            .collect();
        let port_states = self.port_states(conn, &ports).await?;

        // Security groups of the (local) ports, and every group their rules point at.
        let mut wanted: BTreeSet<String> = port_states
            .iter()
            .filter(|p| host.is_none_or(|h| p.host == h))
            .flat_map(|p| p.security_groups.iter().cloned())
            .collect();
        let rules = store::security_groups::list_rules(conn, None).await?;
        let groups = store::security_groups::list_groups(conn, None).await?;
        let remote: Vec<String> = rules
            .iter()
            .filter(|r| wanted.contains(&r.security_group_id))
            .filter_map(|r| r.remote_group_id.clone())
            .collect();
        wanted.extend(remote);
        let all_ids: Vec<String> = all_ports.iter().map(|p| p.id.clone()).collect();
        let memberships = store::ports::security_groups_of(conn, &all_ids).await?;
        let all_ips = store::ports::fixed_ips_of(conn, &all_ids).await?;
        let security_groups = groups
            .iter()
            .filter(|g| wanted.contains(&g.id))
            .map(|g| {
                let mut member_ips: Vec<String> = Vec::new();
                for p in &all_ports {
                    if memberships.get(&p.id).is_some_and(|gs| gs.contains(&g.id)) {
                        member_ips.extend(
                            all_ips
                                .get(&p.id)
                                .into_iter()
                                .flatten()
                                .map(|i| i.ip_address.clone()),
                        );
                        member_ips
                            .extend(p.allowed_address_pairs.iter().map(|a| a.ip_address.clone()));
                    }
                }
                member_ips.sort();
                member_ips.dedup();
                SecurityGroupState {
                    id: g.id.clone(),
                    project_id: g.project_id.clone(),
                    stateful: g.stateful,
                    rules: rules
                        .iter()
                        .filter(|r| r.security_group_id == g.id)
                        .map(|r| RuleState {
                            id: r.id.clone(),
                            direction: r.direction.clone(),
                            ethertype: r.ethertype.clone(),
                            protocol: r.protocol.clone(),
                            port_range_min: r.port_range_min,
                            port_range_max: r.port_range_max,
                            remote_ip_prefix: r.remote_ip_prefix.clone(),
                            remote_group_id: r.remote_group_id.clone(),
                        })
                        .collect(),
                    member_ips,
                }
            })
            .collect();

        // Routers attached to those networks.
        let cidr_of: HashMap<&str, &str> = subnets
            .iter()
            .map(|s| (s.id.as_str(), s.cidr.as_str()))
            .collect();
        let router_port = |p: &PortRow| RouterPortState {
            port_id: p.id.clone(),
            network_id: p.network_id.clone(),
            mac_address: p.mac_address.clone(),
            addresses: all_ips
                .get(&p.id)
                .into_iter()
                .flatten()
                .map(|i| {
                    (
                        i.ip_address.clone(),
                        cidr_of
                            .get(i.subnet_id.as_str())
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        };
        let fips = store::floatingips::list(conn, None).await?;
        let forwardings = store::floatingips::list_forwardings(conn, None).await?;
        let mut routers = Vec::new();
        for r in store::routers::list(conn, None).await? {
            let interfaces: Vec<&PortRow> = all_ports
                .iter()
                .filter(|p| p.device_id == r.id && super::is_router_interface(&p.device_owner))
                .collect();
            let gateway = r
                .gw_port_id
                .as_ref()
                .and_then(|g| all_ports.iter().find(|p| &p.id == g));
            let touches = interfaces
                .iter()
                .any(|p| network_ids.contains(&p.network_id))
                || gateway.is_some_and(|g| network_ids.contains(&g.network_id));
            if host.is_some() && !touches {
                continue;
            }
            let my_fips: Vec<_> = fips
                .iter()
                .filter(|f| f.router_id.as_deref() == Some(r.id.as_str()))
                .collect();
            routers.push(RouterState {
                id: r.id.clone(),
                project_id: r.project_id.clone(),
                admin_state_up: r.admin_state_up,
                gateway: gateway.map(router_port),
                enable_snat: r.enable_snat,
                interfaces: interfaces.into_iter().map(router_port).collect(),
                routes: r
                    .routes
                    .iter()
                    .map(|x| (x.destination.clone(), x.nexthop.clone()))
                    .collect(),
                floating_ips: my_fips
                    .iter()
                    .map(|f| FloatingIpState {
                        id: f.id.clone(),
                        floating_ip_address: f.floating_ip_address.clone(),
                        floating_network_id: f.floating_network_id.clone(),
                        port_id: f.fixed_port_id.clone(),
                        fixed_ip_address: f.fixed_ip_address.clone(),
                    })
                    .collect(),
                port_forwardings: forwardings
                    .iter()
                    .filter_map(|pf| {
                        let f = my_fips.iter().find(|f| f.id == pf.floatingip_id)?;
                        Some(PortForwardingState {
                            id: pf.id.clone(),
                            floating_ip_address: f.floating_ip_address.clone(),
                            protocol: pf.protocol.clone(),
                            external_port_range: (pf.external_port_start, pf.external_port_end),
                            internal_ip_address: pf.internal_ip_address.clone(),
                            internal_port_range: (pf.internal_port_start, pf.internal_port_end),
                        })
                    })
                    .collect(),
            });
        }
        tx.commit().await?;
        Ok(DesiredState {
            networks,
            ports: port_states,
            security_groups,
            routers,
        })
    }

    /// The snapshot as JSON (for the agent API and debugging).
    pub async fn desired_state_json(&self, host: Option<&str>) -> Result<Value> {
        let state = self.desired_state(host).await?;
        Ok(serde_json::to_value(&state).unwrap_or_else(|_| json!({})))
    }

    /// Is this port Nubo's own (router, DHCP, floating IP)?
    pub fn is_internal_owner(device_owner: &str) -> bool {
        is_network_owned(device_owner)
    }
}
