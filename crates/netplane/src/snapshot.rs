//! From the Networking service's snapshot (`NetworkService::desired_state`, the JSON the
//! internal API carries) to one host's [`HostNetwork`].
//!
//! The mirror types below deserialize that JSON (field names as `nubo-network` serialises them;
//! unknown fields are ignored, missing ones default), so the agent needs no dependency on the
//! network crate. [`host_network`] decides what belongs on a host:
//!
//! * VM ports: `device_owner` `compute:*` bound to this host (`host`);
//! * routers and DHCP servers live on the *network host* ([`HostContext::network_host`]; the
//!   all-in-one host is its own network host), as do network-owned ports without a binding;
//! * networks: those of local ports, plus those of routers and DHCP servers hosted here;
//! * FDB: every port located on another host, on a VXLAN network present here;
//! * DHCP: one server per network with a DHCP-enabled subnet *and* a `network:dhcp` port
//!   (without one, a warning: the network service must allocate it, as Neutron does);
//! * metadata: every compute port on the networks of routers/DHCP hosted here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;

use crate::model::*;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    pub networks: Vec<NetworkState>,
    pub ports: Vec<PortState>,
    pub security_groups: Vec<SecurityGroupState>,
    pub routers: Vec<RouterState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NetworkState {
    pub id: String,
    pub project_id: String,
    pub admin_state_up: bool,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
    pub mtu: i64,
    pub external: bool,
    pub subnets: Vec<SubnetState>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubnetState {
    pub id: String,
    pub ip_version: i64,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FixedIpState {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PortState {
    pub id: String,
    pub network_id: String,
    pub project_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIpState>,
    pub device_id: String,
    pub device_owner: String,
    pub host: String,
    pub admin_state_up: bool,
    pub port_security_enabled: bool,
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<(String, String)>,
    pub extra_dhcp_opts: Vec<(String, String, i64)>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RuleState {
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecurityGroupState {
    pub id: String,
    pub rules: Vec<RuleState>,
    pub member_ips: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouterPortState {
    pub port_id: String,
    pub network_id: String,
    pub mac_address: String,
    /// (address, subnet CIDR).
    pub addresses: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FloatingIpState {
    pub floating_ip_address: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouterState {
    pub id: String,
    pub admin_state_up: bool,
    pub gateway: Option<RouterPortState>,
    pub enable_snat: bool,
    pub interfaces: Vec<RouterPortState>,
    pub routes: Vec<(String, String)>,
    pub floating_ips: Vec<FloatingIpState>,
}

/// What the agent knows besides the snapshot.
#[derive(Debug, Clone, Default)]
pub struct HostContext {
    /// This host's name (ports' `binding:host_id`).
    pub host: String,
    /// The host that runs routers and DHCP servers (the all-in-one host itself).
    pub network_host: String,
    /// Underlay address of every host by name (this one included).
    pub host_ips: BTreeMap<String, IpAddr>,
    /// Flat physical networks: `physical_network` -> this host's interface (absent: a bridge
    /// without uplink, as the all-in-one `public` network).
    pub physical_interfaces: BTreeMap<String, String>,
    /// The metadata service (URL, shared secret); `None` turns the proxy off.
    pub metadata: Option<(String, String)>,
    /// `nubo up`: the external network's host side.
    pub external: Option<ExternalHost>,
}

pub const DHCP_OWNER: &str = "network:dhcp";

fn is_compute(p: &PortState) -> bool {
    p.device_owner.starts_with("compute:")
}

/// The tap of a port, as Nova and the compute agent name it.
pub fn tap_name(port_id: &str) -> String {
    let short: String = port_id.chars().take(11).collect();
    format!("tap{short}")
}

fn ipv6_mode(s: &Option<String>) -> Option<Ipv6Mode> {
    match s.as_deref() {
        Some("slaac") => Some(Ipv6Mode::Slaac),
        Some("dhcpv6-stateless") => Some(Ipv6Mode::Dhcpv6Stateless),
        Some("dhcpv6-stateful") => Some(Ipv6Mode::Dhcpv6Stateful),
        _ => None,
    }
}

fn addr_with_prefix(addr: &str, cidr: &str) -> Option<Cidr> {
    let a: IpAddr = addr.parse().ok()?;
    let c: Cidr = cidr.parse().ok()?;
    Cidr::new(a, c.prefix).ok()
}

/// The host's [`HostNetwork`] and warnings about what could not be expressed.
pub fn host_network(snap: &Snapshot, cx: &HostContext) -> (HostNetwork, Vec<String>) {
    let mut warn = Vec::new();
    let here_is_network_host = cx.network_host == cx.host;
    let location = |p: &PortState| -> String {
        if !p.host.is_empty() {
            p.host.clone()
        } else if !is_compute(p) {
            cx.network_host.clone()
        } else {
            String::new()
        }
    };
    let nets_by_id: BTreeMap<&str, &NetworkState> =
        snap.networks.iter().map(|n| (n.id.as_str(), n)).collect();

    let local: Vec<&PortState> = snap
        .ports
        .iter()
        .filter(|p| is_compute(p) && p.host == cx.host)
        .collect();
    let routers: Vec<&RouterState> = if here_is_network_host {
        snap.routers.iter().filter(|r| r.admin_state_up).collect()
    } else {
        Vec::new()
    };
    let routed: BTreeSet<&str> = snap
        .routers
        .iter()
        .flat_map(|r| r.interfaces.iter().map(|i| i.network_id.as_str()))
        .collect();
    let mut dhcp_nets: Vec<(&NetworkState, &PortState)> = Vec::new();
    if here_is_network_host {
        for n in &snap.networks {
            if !n.subnets.iter().any(|s| s.enable_dhcp) || n.external {
                continue;
            }
            match snap
                .ports
                .iter()
                .find(|p| p.network_id == n.id && p.device_owner == DHCP_OWNER)
            {
                Some(p) => dhcp_nets.push((n, p)),
                None => warn.push(format!(
                    "network {} has DHCP on but no {DHCP_OWNER} port: no DHCP server",
                    n.id
                )),
            }
        }
    }
    let mut net_ids: BTreeSet<String> = local.iter().map(|p| p.network_id.clone()).collect();
    for r in &routers {
        net_ids.extend(r.interfaces.iter().map(|i| i.network_id.clone()));
        net_ids.extend(r.gateway.iter().map(|g| g.network_id.clone()));
    }
    net_ids.extend(dhcp_nets.iter().map(|(n, _)| n.id.clone()));
    if let Some(x) = &cx.external {
        net_ids.insert(x.network_id.clone());
    }

    let mut out = HostNetwork::default();
    for id in &net_ids {
        let Some(n) = nets_by_id.get(id.as_str()) else {
            warn.push(format!("network {id} is not in the snapshot"));
            continue;
        };
        let segment = match (n.network_type.as_str(), n.segmentation_id) {
            ("vxlan", Some(vni)) => Segment::Vxlan { vni: vni as u32 },
            ("flat", _) => Segment::Flat {
                interface: n
                    .physical_network
                    .as_ref()
                    .and_then(|p| cx.physical_interfaces.get(p))
                    .cloned(),
            },
            (t, _) => {
                warn.push(format!("network {id}: type {t} is not supported here"));
                continue;
            }
        };
        out.networks.push(Network {
            id: n.id.clone(),
            segment,
            mtu: if n.mtu > 0 { n.mtu as u32 } else { 1450 },
            subnets: n
                .subnets
                .iter()
                .filter_map(|s| {
                    Some(Subnet {
                        id: s.id.clone(),
                        cidr: s.cidr.parse().ok()?,
                        gateway_ip: s.gateway_ip.as_ref().and_then(|g| g.parse().ok()),
                        enable_dhcp: s.enable_dhcp,
                        dns_nameservers: s
                            .dns_nameservers
                            .iter()
                            .filter_map(|d| d.parse().ok())
                            .collect(),
                        host_routes: s
                            .host_routes
                            .iter()
                            .filter_map(|(d, h)| {
                                Some(Route {
                                    destination: d.parse().ok()?,
                                    nexthop: h.parse().ok()?,
                                })
                            })
                            .collect(),
                        ipv6_ra_mode: ipv6_mode(&s.ipv6_ra_mode),
                        ipv6_address_mode: ipv6_mode(&s.ipv6_address_mode),
                    })
                })
                .collect(),
        });
    }
    let present: BTreeSet<&str> = out.networks.iter().map(|n| n.id.as_str()).collect();
    let vxlan: BTreeSet<&str> = out
        .networks
        .iter()
        .filter(|n| matches!(n.segment, Segment::Vxlan { .. }))
        .map(|n| n.id.as_str())
        .collect();

    // Local ports and their groups.
    let mut wanted_groups: BTreeSet<String> = BTreeSet::new();
    for p in &local {
        if !present.contains(p.network_id.as_str()) {
            continue;
        }
        let pairs = p
            .allowed_address_pairs
            .iter()
            .filter_map(|(ip, mac)| {
                Some(AddressPair {
                    ip_address: ip.parse().ok()?,
                    mac_address: (!mac.is_empty()).then(|| mac.clone()),
                })
            })
            .collect();
        wanted_groups.extend(p.security_groups.iter().cloned());
        out.ports.push(Port {
            id: p.id.clone(),
            network_id: p.network_id.clone(),
            mac: p.mac_address.clone(),
            fixed_ips: p
                .fixed_ips
                .iter()
                .filter_map(|f| f.ip_address.parse().ok())
                .collect(),
            tap: tap_name(&p.id),
            port_security_enabled: p.port_security_enabled,
            security_groups: p.security_groups.clone(),
            allowed_address_pairs: pairs,
            admin_state_up: p.admin_state_up,
        });
    }
    let remote_groups: Vec<String> = snap
        .security_groups
        .iter()
        .filter(|g| wanted_groups.contains(&g.id))
        .flat_map(|g| g.rules.iter().filter_map(|r| r.remote_group_id.clone()))
        .collect();
    wanted_groups.extend(remote_groups);
    for g in snap
        .security_groups
        .iter()
        .filter(|g| wanted_groups.contains(&g.id))
    {
        out.security_groups.push(SecurityGroup {
            id: g.id.clone(),
            rules: g
                .rules
                .iter()
                .filter_map(|r| {
                    Some(Rule {
                        direction: match r.direction.as_str() {
                            "ingress" => Direction::Ingress,
                            "egress" => Direction::Egress,
                            _ => return None,
                        },
                        ethertype: if r.ethertype == "IPv6" {
                            Ethertype::IPv6
                        } else {
                            Ethertype::IPv4
                        },
                        protocol: r.protocol.clone(),
                        port_range_min: r.port_range_min.and_then(|v| u32::try_from(v).ok()),
                        port_range_max: r.port_range_max.and_then(|v| u32::try_from(v).ok()),
                        remote_ip_prefix: match &r.remote_ip_prefix {
                            Some(p) => Some(p.parse().ok()?),
                            None => None,
                        },
                        remote_group_id: r.remote_group_id.clone(),
                    })
                })
                .collect(),
            member_ips: g.member_ips.iter().filter_map(|m| m.parse().ok()).collect(),
        });
    }

    // Remote hosts (FDB).
    let mut remote: BTreeMap<IpAddr, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for p in &snap.ports {
        let at = location(p);
        if at.is_empty() || at == cx.host || !vxlan.contains(p.network_id.as_str()) {
            continue;
        }
        match cx.host_ips.get(&at) {
            Some(ip) => {
                remote
                    .entry(*ip)
                    .or_default()
                    .entry(p.network_id.clone())
                    .or_default()
                    .insert(p.mac_address.to_ascii_lowercase());
            }
            None => warn.push(format!(
                "port {}: host {at} has no known underlay address",
                p.id
            )),
        }
    }
    for (ip, nets) in remote {
        out.remote_hosts.push(RemoteHost {
            underlay_ip: ip,
            networks: nets
                .into_iter()
                .map(|(n, macs)| RemoteNetwork {
                    network_id: n,
                    macs: macs.into_iter().collect(),
                })
                .collect(),
        });
    }

    // Routers.
    let subnet_of = |addr: &IpAddr| -> Option<&SubnetState> {
        snap.networks
            .iter()
            .flat_map(|n| n.subnets.iter())
            .find(|s| s.cidr.parse::<Cidr>().is_ok_and(|c| c.contains(addr)))
    };
    for r in &routers {
        let port = |p: &RouterPortState| -> Vec<Cidr> {
            p.addresses
                .iter()
                .filter_map(|(a, c)| addr_with_prefix(a, c))
                .collect()
        };
        let gateway = r
            .gateway
            .as_ref()
            .filter(|g| present.contains(g.network_id.as_str()))
            .map(|g| {
                let addresses = port(g);
                let nexthops = addresses
                    .iter()
                    .filter_map(|a| subnet_of(&a.addr)?.gateway_ip.as_ref()?.parse().ok())
                    .collect();
                RouterGateway {
                    port_id: g.port_id.clone(),
                    network_id: g.network_id.clone(),
                    mac: g.mac_address.clone(),
                    addresses,
                    nexthops,
                }
            });
        out.routers.push(Router {
            id: r.id.clone(),
            gateway,
            enable_snat: r.enable_snat,
            interfaces: r
                .interfaces
                .iter()
                .filter(|i| present.contains(i.network_id.as_str()))
                .map(|i| RouterInterface {
                    port_id: i.port_id.clone(),
                    network_id: i.network_id.clone(),
                    mac: i.mac_address.clone(),
                    addresses: port(i),
                })
                .collect(),
            routes: r
                .routes
                .iter()
                .filter_map(|(d, h)| {
                    Some(Route {
                        destination: d.parse().ok()?,
                        nexthop: h.parse().ok()?,
                    })
                })
                .collect(),
            floating_ips: r
                .floating_ips
                .iter()
                .filter_map(|f| {
                    Some(FloatingIp {
                        floating_ip: f.floating_ip_address.parse().ok()?,
                        fixed_ip: f.fixed_ip_address.as_ref()?.parse().ok()?,
                    })
                })
                .collect(),
        });
    }

    // DHCP servers.
    for (n, dp) in &dhcp_nets {
        let addresses = dp
            .fixed_ips
            .iter()
            .filter_map(|f| {
                let s = n.subnets.iter().find(|s| s.id == f.subnet_id)?;
                addr_with_prefix(&f.ip_address, &s.cidr)
            })
            .collect();
        let hosts = snap
            .ports
            .iter()
            .filter(|p| {
                p.network_id == n.id
                    && p.device_owner != DHCP_OWNER
                    && !p.device_owner.starts_with("network:router")
            })
            .map(|p| DhcpHost {
                mac: p.mac_address.clone(),
                ips: p
                    .fixed_ips
                    .iter()
                    .filter_map(|f| f.ip_address.parse().ok())
                    .collect(),
                hostname: None,
                extra_options: p
                    .extra_dhcp_opts
                    .iter()
                    .map(|(name, value, v)| DhcpOption {
                        name: name.clone(),
                        value: value.clone(),
                        ip_version: if *v == 6 { 6 } else { 4 },
                    })
                    .collect(),
            })
            .collect();
        out.dhcp_servers.push(DhcpServer {
            network_id: n.id.clone(),
            port_id: dp.id.clone(),
            mac: dp.mac_address.clone(),
            addresses,
            hosts,
            isolated_metadata: !routed.contains(n.id.as_str()),
        });
    }

    // Metadata.
    if let Some((url, secret)) = &cx.metadata {
        let served: BTreeSet<&str> = out
            .routers
            .iter()
            .flat_map(|r| r.interfaces.iter().map(|i| i.network_id.as_str()))
            .chain(
                out.dhcp_servers
                    .iter()
                    .filter(|d| d.isolated_metadata)
                    .map(|d| d.network_id.as_str()),
            )
            .collect();
        let mut instances = Vec::new();
        for p in snap
            .ports
            .iter()
            .filter(|p| is_compute(p) && served.contains(p.network_id.as_str()))
        {
            for f in &p.fixed_ips {
                if let Ok(ip) = f.ip_address.parse() {
                    instances.push(MetadataInstance {
                        network_id: p.network_id.clone(),
                        ip,
                        instance_id: p.device_id.clone(),
                        project_id: (!p.project_id.is_empty()).then(|| p.project_id.clone()),
                    });
                }
            }
        }
        out.metadata = Some(Metadata {
            url: url.clone(),
            secret: secret.clone(),
            instances,
        });
    }
    out.external = cx.external.clone();
    (out, warn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Snapshot {
        serde_json::from_value(json!({
            "networks": [
                {"id": "priv", "network_type": "vxlan", "segmentation_id": 1001, "mtu": 1450,
                 "admin_state_up": true, "external": false,
                 "subnets": [{"id": "s4", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
                              "enable_dhcp": true, "dns_nameservers": [], "host_routes": []},
                             {"id": "s6", "ip_version": 6, "cidr": "fd00::/64", "gateway_ip": "fd00::1",
                              "enable_dhcp": true, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}]},
                {"id": "public", "network_type": "flat", "physical_network": "public", "mtu": 1500,
                 "admin_state_up": true, "external": true,
                 "subnets": [{"id": "p4", "ip_version": 4, "cidr": "172.24.4.0/24", "gateway_ip": "172.24.4.1",
                              "enable_dhcp": false}]}
            ],
            "ports": [
                {"id": "vm1port-0000", "network_id": "priv", "project_id": "p", "mac_address": "fa:16:3e:00:00:01",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.5"}, {"subnet_id": "s6", "ip_address": "fd00::f816:3eff:fe00:1"}],
                 "device_id": "vm1", "device_owner": "compute:nova", "host": "h1", "admin_state_up": true,
                 "port_security_enabled": true, "security_groups": ["default"], "allowed_address_pairs": [],
                 "extra_dhcp_opts": []},
                {"id": "vm2port", "network_id": "priv", "project_id": "p", "mac_address": "fa:16:3e:00:00:02",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.6"}],
                 "device_id": "vm2", "device_owner": "compute:nova", "host": "h2", "admin_state_up": true,
                 "port_security_enabled": true, "security_groups": ["default"]},
                {"id": "dhcpport", "network_id": "priv", "mac_address": "fa:16:3e:00:00:03",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.2"}],
                 "device_owner": "network:dhcp", "host": "", "admin_state_up": true},
                {"id": "qrport", "network_id": "priv", "mac_address": "fa:16:3e:00:00:04",
                 "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.1"}],
                 "device_owner": "network:router_interface", "device_id": "r1", "admin_state_up": true}
            ],
            "security_groups": [
                {"id": "default", "rules": [
                    {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": "default"},
                    {"direction": "egress", "ethertype": "IPv4"}],
                 "member_ips": ["10.0.0.5", "10.0.0.6"]}
            ],
            "routers": [
                {"id": "r1", "admin_state_up": true, "enable_snat": true,
                 "gateway": {"port_id": "gw", "network_id": "public", "mac_address": "fa:16:3e:00:00:05",
                             "addresses": [["172.24.4.10", "172.24.4.0/24"]]},
                 "interfaces": [{"port_id": "qrport", "network_id": "priv", "mac_address": "fa:16:3e:00:00:04",
                                 "addresses": [["10.0.0.1", "10.0.0.0/24"]]}],
                 "routes": [],
                 "floating_ips": [{"floating_ip_address": "172.24.4.20", "port_id": "vm1port-0000",
                                   "fixed_ip_address": "10.0.0.5"}]}
            ]
        }))
        .unwrap()
    }

    fn cx(host: &str) -> HostContext {
        HostContext {
            host: host.into(),
            network_host: "h1".into(),
            host_ips: [
                ("h1".to_string(), "192.0.2.1".parse().unwrap()),
                ("h2".to_string(), "192.0.2.2".parse().unwrap()),
            ]
            .into(),
            physical_interfaces: BTreeMap::new(),
            metadata: Some(("http://127.0.0.1:8775".into(), "s".into())),
            external: None,
        }
    }

    #[test]
    fn network_host_gets_ports_router_dhcp_and_fdb() {
        let (h, warn) = host_network(&snapshot(), &cx("h1"));
        assert!(warn.is_empty(), "{warn:?}");
        h.validate().unwrap();
        assert_eq!(h.ports.len(), 1);
        assert_eq!(h.ports[0].tap, "tapvm1port-000");
        assert_eq!(
            h.networks.len(),
            2,
            "private + the router's external network"
        );
        assert_eq!(
            h.routers[0].gateway.as_ref().unwrap().nexthops,
            vec!["172.24.4.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(h.routers[0].floating_ips.len(), 1);
        assert_eq!(h.dhcp_servers.len(), 1);
        assert!(!h.dhcp_servers[0].isolated_metadata);
        assert_eq!(
            h.dhcp_servers[0].addresses,
            vec!["10.0.0.2/24".parse().unwrap()]
        );
        assert_eq!(h.dhcp_servers[0].hosts.len(), 2);
        assert_eq!(h.remote_hosts.len(), 1);
        assert_eq!(
            h.remote_hosts[0].networks[0].macs,
            vec!["fa:16:3e:00:00:02"]
        );
        assert_eq!(h.metadata.as_ref().unwrap().instances.len(), 3);
        assert_eq!(h.security_groups.len(), 1);
    }

    #[test]
    fn compute_host_gets_its_ports_and_the_network_hosts_macs() {
        let (h, warn) = host_network(&snapshot(), &cx("h2"));
        assert!(warn.is_empty(), "{warn:?}");
        h.validate().unwrap();
        assert!(h.routers.is_empty() && h.dhcp_servers.is_empty());
        assert_eq!(h.ports[0].id, "vm2port");
        let macs = &h.remote_hosts[0].networks[0].macs;
        assert_eq!(
            macs,
            &vec![
                "fa:16:3e:00:00:01",
                "fa:16:3e:00:00:03",
                "fa:16:3e:00:00:04"
            ]
        );
    }
}
