//! The desired state of one host's networking: plain, serde-serialisable structs that travel over
//! the agent's internal API. Everything here is *what should exist on this host*; the caller has
//! already chosen which networks, ports, routers and DHCP servers belong here.
//!
//! Addresses are typed ([`IpAddr`], [`Cidr`]); MACs are strings (`02:00:00:0a:00:11`, any case)
//! and are checked by [`HostNetwork::validate`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything the host should have. An empty value means "nothing of ours": applying it removes
/// every object the netplane made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNetwork {
    /// Every network that has something on this host: a local port, a router port, a DHCP
    /// server, or the external network of a router hosted here.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// The VM ports on this host (one tap each).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// The security groups of those ports. A group named by a port but missing here denies
    /// everything the missing group would have allowed.
    #[serde(default)]
    pub security_groups: Vec<SecurityGroup>,
    /// The other hosts (VXLAN endpoints) and the MACs they host on each network: flood entries
    /// and static FDB entries ("l2population").
    #[serde(default)]
    pub remote_hosts: Vec<RemoteHost>,
    /// The routers hosted here (one namespace each).
    #[serde(default)]
    pub routers: Vec<Router>,
    /// The DHCP servers hosted here (one namespace and one dnsmasq each).
    #[serde(default)]
    pub dhcp_servers: Vec<DhcpServer>,
    /// The metadata proxy's settings; `None` turns the proxy (and the 169.254.169.254 redirect)
    /// off.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// The external network's host-side configuration (`nubo up`): addresses on the bridge, NAT
    /// out of an uplink.
    #[serde(default)]
    pub external: Option<ExternalHost>,
}

/// How a network reaches other hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Segment {
    /// An overlay network: VXLAN with this VNI (Neutron's `segmentation_id`).
    Vxlan { vni: u32 },
    /// A flat network: a bridge, with `interface` (a physical NIC of this host) enslaved when
    /// given. The all-in-one external network is flat without an interface.
    Flat {
        #[serde(default)]
        interface: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub segment: Segment,
    /// The MTU of every device of the network (1450 on VXLAN over a 1500 underlay).
    pub mtu: u32,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ipv6Mode {
    Slaac,
    Dhcpv6Stateless,
    Dhcpv6Stateful,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub cidr: Cidr,
    #[serde(default)]
    pub gateway_ip: Option<IpAddr>,
    #[serde(default)]
    pub enable_dhcp: bool,
    #[serde(default)]
    pub dns_nameservers: Vec<IpAddr>,
    #[serde(default)]
    pub host_routes: Vec<Route>,
    #[serde(default)]
    pub ipv6_ra_mode: Option<Ipv6Mode>,
    #[serde(default)]
    pub ipv6_address_mode: Option<Ipv6Mode>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    pub destination: Cidr,
    pub nexthop: IpAddr,
}

/// A VM port on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub mac: String,
    #[serde(default)]
    pub fixed_ips: Vec<IpAddr>,
    /// The tap device QEMU uses (`tap` + 11 characters of the port id). The netplane creates it
    /// (persistent) when missing, or plugs the one that exists.
    pub tap: String,
    #[serde(default = "yes")]
    pub port_security_enabled: bool,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// `admin_state_up`: false keeps the tap (QEMU stays attached to it) but sets it down, so
    /// nothing passes until it is up again (Neutron's agents do the same).
    #[serde(default = "yes")]
    pub admin_state_up: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: Cidr,
    /// The pair's MAC; `None` is the port's own MAC.
    #[serde(default)]
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Every address of the group's ports (fixed IPs and allowed-address-pair prefixes), on
    /// every host: what a rule with this group as `remote_group_id` matches.
    #[serde(default)]
    pub member_ips: Vec<Cidr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ethertype {
    IPv4,
    IPv6,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub direction: Direction,
    pub ethertype: Ethertype,
    /// A name (`tcp`, `icmp`, `ipv6-icmp` ...) or a number (`"47"`); `None` or `any` is every
    /// protocol. `icmp` with IPv6 means ICMPv6, as in Neutron.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Ports for TCP/UDP/SCTP/DCCP/UDP-Lite; the ICMP type for ICMP.
    #[serde(default)]
    pub port_range_min: Option<u32>,
    /// Ports for TCP/UDP/SCTP/DCCP/UDP-Lite; the ICMP code for ICMP.
    #[serde(default)]
    pub port_range_max: Option<u32>,
    #[serde(default)]
    pub remote_ip_prefix: Option<Cidr>,
    /// Resolved through that group's `member_ips` (the group must be in
    /// [`HostNetwork::security_groups`]).
    #[serde(default)]
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteHost {
    /// The host's VXLAN endpoint.
    pub underlay_ip: IpAddr,
    #[serde(default)]
    pub networks: Vec<RemoteNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteNetwork {
    pub network_id: String,
    /// Every MAC of that network on that host (VM ports, router ports, DHCP ports).
    #[serde(default)]
    pub macs: Vec<String>,
}

/// A router hosted here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    pub id: String,
    #[serde(default)]
    pub gateway: Option<RouterGateway>,
    #[serde(default = "yes")]
    pub enable_snat: bool,
    #[serde(default)]
    pub interfaces: Vec<RouterInterface>,
    /// Extra routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub floating_ips: Vec<FloatingIp>,
}

/// A router port on a tenant subnet (`qr-`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterInterface {
    pub port_id: String,
    pub network_id: String,
    pub mac: String,
    /// The port's addresses with their subnet's prefix length (`10.1.0.1/24`).
    pub addresses: Vec<Cidr>,
}

/// The router's port on the external network (`qg-`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterGateway {
    pub port_id: String,
    pub network_id: String,
    pub mac: String,
    /// The gateway port's addresses with their prefix length (`172.24.4.10/24`).
    pub addresses: Vec<Cidr>,
    /// The default routes' next hops (the external subnets' gateway IPs), IPv4 and/or IPv6.
    #[serde(default)]
    pub nexthops: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FloatingIp {
    pub floating_ip: Ipv4Addr,
    pub fixed_ip: Ipv4Addr,
}

/// A DHCP server (dnsmasq in a namespace) for one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpServer {
    pub network_id: String,
    /// The DHCP port (Neutron's `network:dhcp` port): its id, MAC and addresses with prefix.
    pub port_id: String,
    pub mac: String,
    pub addresses: Vec<Cidr>,
    /// Every port of the network that may get a lease (any host).
    #[serde(default)]
    pub hosts: Vec<DhcpHost>,
    /// The network has no router: serve metadata at 169.254.169.254 from the DHCP namespace and
    /// hand out a route to it via the DHCP port (option 121).
    #[serde(default)]
    pub isolated_metadata: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpHost {
    pub mac: String,
    pub ips: Vec<IpAddr>,
    /// Defaults to `host-<ip with dashes>`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Neutron's `extra_dhcp_opts`.
    #[serde(default)]
    pub extra_options: Vec<DhcpOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOption {
    /// A dnsmasq option name (`bootfile-name`) or number (`66`).
    pub name: String,
    pub value: String,
    #[serde(default = "four")]
    pub ip_version: u8,
}

fn four() -> u8 {
    4
}

/// The metadata proxy (Nova's convention).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Where the API serves metadata, e.g. `http://127.0.0.1:8774`; the guest's path is
    /// appended. Plain HTTP.
    pub url: String,
    /// The shared secret of `X-Instance-ID-Signature` = hex HMAC-SHA256(secret, instance id).
    pub secret: String,
    /// Who is who: every instance address on the networks of the routers and DHCP servers
    /// hosted here (any host).
    #[serde(default)]
    pub instances: Vec<MetadataInstance>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataInstance {
    pub network_id: String,
    pub ip: IpAddr,
    pub instance_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// The external network's host side (`nubo up`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalHost {
    /// A flat network in [`HostNetwork::networks`].
    pub network_id: String,
    /// The host's addresses on the external bridge (the external subnets' gateways:
    /// `172.24.4.1/24`, `2001:db8::1/64`).
    pub addresses: Vec<Cidr>,
    /// Masquerade the external IPv4 prefixes out of this interface (off when `None`). Turns on
    /// IPv4 forwarding on the host.
    #[serde(default)]
    pub nat_uplink: Option<String>,
}

/// An address with a prefix length: `10.0.0.0/24`, `10.0.0.5/24` (an address on a subnet), or a
/// bare address (a host route: /32, /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::Invalid(format!(
                "prefix length {prefix} is too long for {addr}"
            )));
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn host(addr: IpAddr) -> Cidr {
        Cidr {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn is_host(&self) -> bool {
        self.prefix == if self.is_ipv4() { 32 } else { 128 }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Cidr {
        match self.addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                Cidr {
                    addr: IpAddr::V4(Ipv4Addr::from(bits & mask)),
                    prefix: self.prefix,
                }
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::from(bits & mask)),
                    prefix: self.prefix,
                }
            }
        }
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        if ip.is_ipv4() != self.is_ipv4() {
            return false;
        }
        Cidr::new(*ip, self.prefix).map(|c| c.network()) == Ok(self.network())
    }

    /// The IPv4 netmask (`255.255.255.0`).
    pub fn netmask4(&self) -> Ipv4Addr {
        Ipv4Addr::from(if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix.min(32))
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Cidr> {
        let bad = || Error::Invalid(format!("{s:?} is not an address or a CIDR"));
        match s.split_once('/') {
            Some((a, p)) => Cidr::new(a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?),
            None => Ok(Cidr::host(s.parse().map_err(|_| bad())?)),
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a MAC (`02:00:00:0A:00:11`) into its lowercase form and bytes.
pub fn parse_mac(mac: &str) -> Result<(String, [u8; 6])> {
    let bad = || Error::Invalid(format!("{mac:?} is not a MAC address"));
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut bytes = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        bytes[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok((mac.to_ascii_lowercase(), bytes))
}

/// The IPv6 link-local address of a MAC (modified EUI-64), as the kernel makes it.
pub fn link_local(mac: &[u8; 6]) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl HostNetwork {
    /// Checks what the kernel and the renderers rely on: ids are `[A-Za-z0-9_-]`, names fit
    /// IFNAMSIZ, MACs parse, every reference (port -> network, router port -> network, DHCP ->
    /// network) resolves, no duplicates. Returns every problem at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems: Vec<String> = Vec::new();
        let mut nets = BTreeSet::new();
        for n in &self.networks {
            if !valid_id(&n.id) {
                problems.push(format!(
                    "network id {:?} must be 1-64 of A-Z a-z 0-9 - _",
                    n.id
                ));
            }
            if !nets.insert(n.id.as_str()) {
                problems.push(format!("network {} is listed twice", n.id));
            }
            if !(68..=65535).contains(&n.mtu) {
                problems.push(format!("network {}: MTU {} is out of range", n.id, n.mtu));
            }
            match &n.segment {
                Segment::Vxlan { vni } if *vni == 0 || *vni >= 1 << 24 => {
                    problems.push(format!("network {}: VNI {vni} must be 1..16777215", n.id))
                }
                Segment::Flat { interface: Some(i) } if !valid_ifname(i) => problems.push(format!(
                    "network {}: interface {i:?} is not a device name",
                    n.id
                )),
                _ => {}
            }
            for s in &n.subnets {
                if !valid_id(&s.id) {
                    problems.push(format!(
                        "subnet id {:?} must be 1-64 of A-Z a-z 0-9 - _",
                        s.id
                    ));
                }
            }
        }
        let bridges: BTreeSet<String> = self
            .networks
            .iter()
            .map(|n| crate::names::bridge(&n.id))
            .collect();
        if bridges.len() != self.networks.len() {
            problems.push(
                "two networks share the first 11 characters of their id (one bridge name)".into(),
            );
        }
        let mut taps = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for p in &self.ports {
            if !valid_id(&p.id) || !ports.insert(p.id.as_str()) {
                problems.push(format!("port id {:?} is invalid or listed twice", p.id));
            }
            if !nets.contains(p.network_id.as_str()) {
                problems.push(format!(
                    "port {}: network {} is not in the desired state",
                    p.id, p.network_id
                ));
            }
            if !valid_ifname(&p.tap) || !taps.insert(p.tap.as_str()) {
                problems.push(format!(
                    "port {}: tap name {:?} must be 1-15 of A-Z a-z 0-9 . _ - and unique",
                    p.id, p.tap
                ));
            }
            if let Err(e) = parse_mac(&p.mac) {
                problems.push(format!("port {}: {e}", p.id));
            }
            for a in &p.allowed_address_pairs {
                if let Some(m) = &a.mac_address {
                    if let Err(e) = parse_mac(m) {
                        problems.push(format!("port {}: allowed address pair: {e}", p.id));
                    }
                }
            }
        }
        for g in &self.security_groups {
            if !valid_id(&g.id) {
                problems.push(format!(
                    "security group id {:?} must be 1-64 of A-Z a-z 0-9 - _",
                    g.id
                ));
            }
        }
        for h in &self.remote_hosts {
            for rn in &h.networks {
                for m in &rn.macs {
                    if let Err(e) = parse_mac(m) {
                        problems.push(format!("remote host {}: {e}", h.underlay_ip));
                    }
                }
            }
        }
        let mut routers = BTreeSet::new();
        for r in &self.routers {
            if !valid_id(&r.id) || !routers.insert(r.id.as_str()) {
                problems.push(format!("router id {:?} is invalid or listed twice", r.id));
            }
            let gw = r
                .gateway
                .iter()
                .map(|g| (&g.port_id, &g.network_id, &g.mac));
            let ifs = r
                .interfaces
                .iter()
                .map(|i| (&i.port_id, &i.network_id, &i.mac));
            for (port, net, mac) in gw.chain(ifs) {
                if !valid_id(port) {
                    problems.push(format!("router {}: port id {port:?} is invalid", r.id));
                }
                if !nets.contains(net.as_str()) {
                    problems.push(format!(
                        "router {}: network {net} is not in the desired state",
                        r.id
                    ));
                }
                if let Err(e) = parse_mac(mac) {
                    problems.push(format!("router {}: {e}", r.id));
                }
            }
        }
        let mut dhcp = BTreeSet::new();
        for d in &self.dhcp_servers {
            if !nets.contains(d.network_id.as_str()) || !dhcp.insert(d.network_id.as_str()) {
                problems.push(format!(
                    "DHCP server: network {} is not in the desired state or has two servers",
                    d.network_id
                ));
            }
            if !valid_id(&d.port_id) {
                problems.push(format!(
                    "DHCP server {}: port id {:?} is invalid",
                    d.network_id, d.port_id
                ));
            }
            for m in std::iter::once(&d.mac).chain(d.hosts.iter().map(|h| &h.mac)) {
                if let Err(e) = parse_mac(m) {
                    problems.push(format!("DHCP server {}: {e}", d.network_id));
                }
            }
        }
        if let Some(x) = &self.external {
            match self.networks.iter().find(|n| n.id == x.network_id) {
                Some(Network {
                    segment: Segment::Flat { .. },
                    ..
                }) => {}
                _ => problems.push(format!(
                    "external: network {} must be a flat network of the desired state",
                    x.network_id
                )),
            }
            if let Some(u) = &x.nat_uplink {
                if !valid_ifname(u) {
                    problems.push(format!("external: uplink {u:?} is not a device name"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(problems.join("; ")))
        }
    }

    pub fn network(&self, id: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.id == id)
    }

    /// The subnet of `network` that contains `ip`.
    pub fn subnet_of(&self, network: &str, ip: &IpAddr) -> Option<&Subnet> {
        self.network(network)?
            .subnets
            .iter()
            .find(|s| s.cidr.contains(ip))
    }

    /// Security groups by id.
    pub fn groups(&self) -> BTreeMap<&str, &SecurityGroup> {
        self.security_groups
            .iter()
            .map(|g| (g.id.as_str(), g))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_prints_and_contains() {
        let c: Cidr = "10.1.0.5/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.0.5/24");
        assert_eq!(c.network().to_string(), "10.1.0.0/24");
        assert!(c.contains(&"10.1.0.200".parse().unwrap()));
        assert!(!c.contains(&"10.1.1.1".parse().unwrap()));
        assert_eq!(c.netmask4(), Ipv4Addr::new(255, 255, 255, 0));
        let h: Cidr = "fd00::1".parse().unwrap();
        assert!(h.is_host());
        let v6: Cidr = "fd00:a::/64".parse().unwrap();
        assert!(v6.contains(&"fd00:a::ff:fe0a:12".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(j, "\"10.1.0.5/24\"");
        assert_eq!(serde_json::from_str::<Cidr>(&j).unwrap(), c);
    }

    #[test]
    fn link_local_is_eui64() {
        let (_, m) = parse_mac("02:00:00:0A:00:12").unwrap();
        assert_eq!(link_local(&m).to_string(), "fe80::ff:fe0a:12");
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut h = HostNetwork::default();
        h.ports.push(Port {
            id: "p1".into(),
            network_id: "missing".into(),
            mac: "zz".into(),
            fixed_ips: vec![],
            tap: "a-very-long-tap-name".into(),
            port_security_enabled: true,
            security_groups: vec![],
            allowed_address_pairs: vec![],
            admin_state_up: true,
        });
        let e = h.validate().unwrap_err().to_string();
        assert!(e.contains("network missing"), "{e}");
        assert!(e.contains("tap name"), "{e}");
        assert!(e.contains("MAC"), "{e}");
    }
}
