//! Security groups and anti-spoofing as nftables objects, in two stages (this kernel has no
//! bridge conntrack, so stateful filtering happens in the inet family through br_netfilter):
//!
//! ```text
//! table bridge nubo-sg                         (stage 1, stateless, sees the bridge ports)
//!   chain forward   hook forward prio -200: iifname vmap @from-port; oifname vmap @to-port
//!   map from-port   tap -> jump f-<port>       anti-spoofing (MAC, IPv4, ARP, IPv6, ND, no
//!                                              DHCP/RA servers), then mark |= index << 16
//!   map to-port     tap -> jump t-<port>       mark |= index
//! table inet nubo-sg                           (stage 2, stateful, via br_netfilter)
//!   chain raw-pre   hook prerouting prio raw: ct zone set iifname map @zones
//!   map zones       bridge -> conntrack zone (one per network)
//!   chain forward   hook forward prio 0: iifname "nbr-*" mark & 0xffff0000 vmap @egress;
//!                                        iifname "nbr-*" mark & 0x0000ffff vmap @ingress
//!   map egress      index << 16 -> jump e-<port>   (allowed: return; otherwise drop)
//!   map ingress     index -> jump i-<port>         (allowed: accept; otherwise drop)
//!   set r4-<group>, r6-<group>                     member addresses of remote groups
//! ```
//!
//! br_netfilter shows the bridge, not the port, as the interface in inet hooks: the port is
//! carried from stage 1 to stage 2 in the packet mark (source port in the high 16 bits,
//! destination port in the low 16 bits). A port's chains change alone when its rules change; a
//! remote group's membership changes only its set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{link_local, parse_mac, Cidr, Direction, Ethertype, HostNetwork, Port, Rule};
use crate::names;
use crate::nft::{Hook, Object, Table};

/// A name or number to an IP protocol number.
pub fn protocol_number(p: &str, ethertype: Ethertype) -> Option<Option<u8>> {
    let p = p.to_ascii_lowercase();
    let n = match p.as_str() {
        "" | "any" => return Some(None),
        "icmp" if ethertype == Ethertype::IPv6 => 58,
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => 58,
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "dccp" => 33,
        "udplite" => 136,
        "ah" => 51,
        "esp" => 50,
        "egp" => 8,
        "gre" => 47,
        "hopopt" => 0,
        "igmp" => 2,
        "ipip" => 4,
        "ipv6-encap" => 41,
        "ipv6-frag" => 44,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "ipv6-route" => 43,
        "ospf" => 89,
        "pgm" => 113,
        "rsvp" => 46,
        "vrrp" => 112,
        other => return other.parse::<u8>().ok().map(Some),
    };
    Some(Some(n))
}

fn ports_protocol(n: u8) -> bool {
    matches!(n, 6 | 17 | 132 | 33 | 136)
}

fn set_of(items: &[String]) -> String {
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// One security group rule as an nft rule ending in `verdict`, or `None` when it can match
/// nothing (an unknown protocol, a prefix of the other family, a remote group not given).
pub fn render_rule(rule: &Rule, known_groups: &BTreeSet<&str>, verdict: &str) -> Option<String> {
    let v4 = rule.ethertype == Ethertype::IPv4;
    let mut parts = vec![if v4 {
        "meta nfproto ipv4"
    } else {
        "meta nfproto ipv6"
    }
    .to_string()];
    let (fam, side) = (
        if v4 { "ip" } else { "ip6" },
        if rule.direction == Direction::Ingress {
            "saddr"
        } else {
            "daddr"
        },
    );
    if let Some(prefix) = &rule.remote_ip_prefix {
        if prefix.is_ipv4() != v4 {
            return None;
        }
        if prefix.prefix != 0 {
            parts.push(format!("{fam} {side} {}", prefix.network()));
        }
    }
    if let Some(g) = &rule.remote_group_id {
        if !known_groups.contains(g.as_str()) {
            return None;
        }
        parts.push(format!("{fam} {side} @{}", group_set(g, v4)));
    }
    let proto = protocol_number(rule.protocol.as_deref().unwrap_or(""), rule.ethertype)?;
    if let Some(n) = proto {
        if (n == 1 && !v4) || (n == 58 && v4) {
            return None;
        }
        parts.push(format!("meta l4proto {n}"));
        if ports_protocol(n) {
            match (rule.port_range_min, rule.port_range_max) {
                (Some(lo), Some(hi)) if lo > 0 && hi >= lo && hi <= 65535 => {
                    if lo == hi {
                        parts.push(format!("th dport {lo}"));
                    } else {
                        parts.push(format!("th dport {lo}-{hi}"));
                    }
                }
                (Some(lo), None) if lo > 0 && lo <= 65535 => parts.push(format!("th dport {lo}")),
                _ => {}
            }
        } else if n == 1 || n == 58 {
            let word = if n == 1 { "icmp" } else { "icmpv6" };
            if let Some(t) = rule.port_range_min.filter(|t| *t <= 255) {
                parts.push(format!("{word} type {t}"));
                if let Some(c) = rule.port_range_max.filter(|c| *c <= 255) {
                    parts.push(format!("{word} code {c}"));
                }
            }
        }
    }
    parts.push(verdict.to_string());
    Some(parts.join(" "))
}

pub fn group_set(group: &str, v4: bool) -> String {
    format!("{}-{group}", if v4 { "r4" } else { "r6" })
}

/// Canonical, overlap-free set elements: network addresses, contained prefixes dropped.
pub fn set_elements(members: &[Cidr], v4: bool) -> Vec<String> {
    let mut nets: Vec<Cidr> = members
        .iter()
        .filter(|c| c.is_ipv4() == v4)
        .map(|c| c.network())
        .collect();
    nets.sort_by_key(|c| (c.prefix, c.addr));
    nets.dedup();
    let mut kept: Vec<Cidr> = Vec::new();
    for n in nets {
        if !kept.iter().any(|k| k.contains(&n.addr)) {
            kept.push(n);
        }
    }
    kept.sort();
    kept.iter()
        .map(|c| {
            if c.is_host() {
                c.addr.to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn ip_int(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V6(a) => format!("0x{:032x}", u128::from(*a)),
        IpAddr::V4(a) => format!("0x{:08x}", u32::from(*a)),
    }
}

/// The anti-spoofing chain of a port (stage 1, "from the port").
pub fn from_port_rules(port: &Port, index: u16) -> Vec<String> {
    let mut macs: BTreeSet<String> = BTreeSet::new();
    let mut mac_bytes = Vec::new();
    for m in std::iter::once(&port.mac).chain(
        port.allowed_address_pairs
            .iter()
            .filter_map(|a| a.mac_address.as_ref()),
    ) {
        if let Ok((s, b)) = parse_mac(m) {
            if macs.insert(s) {
                mac_bytes.push(b);
            }
        }
    }
    let mut allowed: Vec<Cidr> = port.fixed_ips.iter().map(|ip| Cidr::host(*ip)).collect();
    allowed.extend(port.allowed_address_pairs.iter().map(|a| a.ip_address));
    let mut v4 = set_elements(&allowed, true);
    let mut v6_list: Vec<Cidr> = allowed.iter().filter(|c| !c.is_ipv4()).copied().collect();
    v6_list.extend(
        mac_bytes
            .iter()
            .map(|b| Cidr::host(IpAddr::V6(link_local(b)))),
    );
    let v6 = set_elements(&v6_list, false);
    let macs: Vec<String> = macs.into_iter().collect();

    let mut r = vec![
        format!("ether saddr != {} drop", set_of(&macs)),
        "ether type != { ip, ip6, arp } drop".to_string(),
        format!("ether type arp arp saddr ether != {} drop", set_of(&macs)),
    ];
    // IPv4: only its addresses; 0.0.0.0 only for DHCP discovery; ARP probes from 0.0.0.0.
    v4.push("0.0.0.0".into());
    r.push(format!(
        "ether type arp arp saddr ip != {} drop",
        set_of(&v4)
    ));
    r.push(format!("ether type ip ip saddr != {} drop", set_of(&v4)));
    r.push("ether type ip ip saddr 0.0.0.0 meta l4proto != 17 drop".into());
    r.push("ether type ip ip saddr 0.0.0.0 udp dport != 67 drop".into());
    r.push("ether type ip udp sport 67 udp dport 68 drop".into());
    // IPv6: its addresses and link-local (EUI-64 of its MACs); :: only for DAD and MLD.
    let mut v6s = v6.clone();
    v6s.push("::".into());
    r.push(format!("ether type ip6 ip6 saddr != {} drop", set_of(&v6s)));
    r.push("ether type ip6 ip6 saddr :: meta l4proto != 58 drop".into());
    r.push("ether type ip6 icmpv6 type { nd-router-advert, nd-redirect } drop".into());
    r.push("ether type ip6 udp sport 547 udp dport 546 drop".into());
    // Neighbour advertisements only for its own addresses (exact addresses; a prefix in the
    // allowed address pairs turns this check off).
    if v6_list.iter().all(|c| c.is_host()) && !v6_list.is_empty() {
        let targets: BTreeSet<String> = v6_list.iter().map(|c| ip_int(&c.addr)).collect();
        let targets: Vec<String> = targets.into_iter().collect();
        r.push(format!(
            "ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 != {} drop",
            set_of(&targets)
        ));
    }
    r.push(format!(
        "meta mark set meta mark & 0x0000ffff | 0x{:08x}",
        (index as u32) << 16
    ));
    r
}

/// Stage-1 chain "to the port".
pub fn to_port_rules(index: u16) -> Vec<String> {
    vec![format!(
        "meta mark set meta mark & 0xffff0000 | 0x{:08x}",
        index as u32
    )]
}

/// Stage-2 chains of a port: (egress, ingress).
pub fn port_filter_rules(port: &Port, desired: &HostNetwork) -> (Vec<String>, Vec<String>) {
    let groups = desired.groups();
    let known: BTreeSet<&str> = groups.keys().copied().collect();
    let mut egress = vec![
        "ct state established,related return".to_string(),
        "ct state invalid drop".to_string(),
        "meta l4proto 17 udp sport 68 udp dport 67 return".to_string(),
        "meta nfproto ipv6 meta l4proto 58 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return".to_string(),
        "meta nfproto ipv6 meta l4proto 17 udp sport 546 udp dport 547 return".to_string(),
    ];
    let mut ingress = vec![
        "ct state established,related accept".to_string(),
        "ct state invalid drop".to_string(),
        "meta l4proto 17 udp sport 67 udp dport 68 accept".to_string(),
        "meta nfproto ipv6 meta l4proto 58 icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query } accept".to_string(),
        "meta nfproto ipv6 meta l4proto 17 udp sport 547 udp dport 546 accept".to_string(),
    ];
    let mut seen = BTreeSet::new();
    for gid in &port.security_groups {
        let Some(g) = groups.get(gid.as_str()) else {
            continue;
        };
        for rule in &g.rules {
            let (list, verdict) = match rule.direction {
                Direction::Egress => (&mut egress, "return"),
                Direction::Ingress => (&mut ingress, "accept"),
            };
            if let Some(text) = render_rule(rule, &known, verdict) {
                if seen.insert((rule.direction, text.clone())) {
                    list.push(text);
                }
            }
        }
    }
    egress.push("drop".into());
    ingress.push("drop".into());
    (egress, ingress)
}

/// The two security group tables, or none when no local port has port security.
/// `marks`: port id -> index (1..=65535); `zones`: network id -> conntrack zone.
pub fn tables(
    desired: &HostNetwork,
    marks: &BTreeMap<String, u16>,
    zones: &BTreeMap<String, u16>,
) -> Vec<Table> {
    let secured: Vec<&Port> = desired
        .ports
        .iter()
        .filter(|p| p.port_security_enabled && marks.contains_key(&p.id))
        .collect();
    if secured.is_empty() {
        return Vec::new();
    }
    let mut b = Table {
        family: "bridge",
        name: names::TABLE_SG.into(),
        objects: vec![Object::base(
            "forward",
            Hook {
                kind: "filter",
                hook: "forward",
                priority: "-200",
                policy: "accept",
            },
            vec![
                "iifname vmap @from-port".into(),
                "oifname vmap @to-port".into(),
            ],
        )],
    };
    let mut from_elems = Vec::new();
    let mut to_elems = Vec::new();
    let mut i = Table {
        family: "inet",
        name: names::TABLE_SG.into(),
        objects: vec![
            Object::base(
                "raw-pre",
                Hook {
                    kind: "filter",
                    hook: "prerouting",
                    priority: "raw",
                    policy: "accept",
                },
                vec!["ct zone set iifname map @zones".into()],
            ),
            Object::base(
                "forward",
                Hook {
                    kind: "filter",
                    hook: "forward",
                    priority: "filter",
                    policy: "accept",
                },
                vec![
                    format!(
                        "iifname \"{}*\" meta mark & 0xffff0000 vmap @egress",
                        names::BRIDGE
                    ),
                    format!(
                        "iifname \"{}*\" meta mark & 0x0000ffff vmap @ingress",
                        names::BRIDGE
                    ),
                ],
            ),
        ],
    };
    let mut egress_elems = Vec::new();
    let mut ingress_elems = Vec::new();
    let mut used_groups: BTreeSet<(String, bool)> = BTreeSet::new();
    let groups = desired.groups();
    let mut nets: BTreeSet<&str> = BTreeSet::new();
    for p in &secured {
        let idx = marks[&p.id];
        nets.insert(p.network_id.as_str());
        b.objects.push(Object::chain(
            format!("f-{}", p.id),
            from_port_rules(p, idx),
        ));
        b.objects
            .push(Object::chain(format!("t-{}", p.id), to_port_rules(idx)));
        from_elems.push(format!("\"{}\" : jump f-{}", p.tap, p.id));
        to_elems.push(format!("\"{}\" : jump t-{}", p.tap, p.id));
        let (e, n) = port_filter_rules(p, desired);
        i.objects.push(Object::chain(format!("e-{}", p.id), e));
        i.objects.push(Object::chain(format!("i-{}", p.id), n));
        egress_elems.push(format!("0x{:08x} : jump e-{}", (idx as u32) << 16, p.id));
        ingress_elems.push(format!("0x{:08x} : jump i-{}", idx as u32, p.id));
        for gid in &p.security_groups {
            if let Some(g) = groups.get(gid.as_str()) {
                for r in &g.rules {
                    if let Some(rg) = &r.remote_group_id {
                        if groups.contains_key(rg.as_str()) {
                            used_groups.insert((rg.clone(), r.ethertype == Ethertype::IPv4));
                        }
                    }
                }
            }
        }
    }
    b.objects.push(Object::map(
        "from-port",
        "type ifname : verdict;",
        from_elems,
    ));
    b.objects
        .push(Object::map("to-port", "type ifname : verdict;", to_elems));
    let zone_elems: Vec<String> = nets
        .iter()
        .filter_map(|n| {
            zones
                .get(*n)
                .map(|z| format!("\"{}\" : {z}", names::bridge(n)))
        })
        .collect();
    i.objects.push(Object::map(
        "zones",
        "typeof iifname : ct zone;",
        zone_elems,
    ));
    i.objects
        .push(Object::map("egress", "type mark : verdict;", egress_elems));
    i.objects.push(Object::map(
        "ingress",
        "type mark : verdict;",
        ingress_elems,
    ));
    for (g, v4) in used_groups {
        let members = &groups[g.as_str()].member_ips;
        i.objects.push(Object::set(
            group_set(&g, v4),
            if v4 {
                "type ipv4_addr; flags interval;"
            } else {
                "type ipv6_addr; flags interval;"
            },
            set_elements(members, v4),
        ));
    }
    vec![b, i]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddressPair, SecurityGroup};

    fn rule(
        dir: Direction,
        eth: Ethertype,
        proto: Option<&str>,
        lo: Option<u32>,
        hi: Option<u32>,
    ) -> Rule {
        Rule {
            direction: dir,
            ethertype: eth,
            protocol: proto.map(str::to_string),
            port_range_min: lo,
            port_range_max: hi,
            remote_ip_prefix: None,
            remote_group_id: None,
        }
    }

    #[test]
    fn rules_render_like_neutron_means_them() {
        let none = BTreeSet::new();
        let r = rule(
            Direction::Ingress,
            Ethertype::IPv4,
            Some("tcp"),
            Some(22),
            Some(22),
        );
        assert_eq!(
            render_rule(&r, &none, "accept").unwrap(),
            "meta nfproto ipv4 meta l4proto 6 th dport 22 accept"
        );
        let mut r = rule(
            Direction::Ingress,
            Ethertype::IPv4,
            Some("udp"),
            Some(1000),
            Some(2000),
        );
        r.remote_ip_prefix = Some("10.1.0.7/24".parse().unwrap());
        assert_eq!(
            render_rule(&r, &none, "accept").unwrap(),
            "meta nfproto ipv4 ip saddr 10.1.0.0/24 meta l4proto 17 th dport 1000-2000 accept"
        );
        let r = rule(
            Direction::Ingress,
            Ethertype::IPv6,
            Some("icmp"),
            Some(128),
            None,
        );
        assert_eq!(
            render_rule(&r, &none, "accept").unwrap(),
            "meta nfproto ipv6 meta l4proto 58 icmpv6 type 128 accept"
        );
        let r = rule(
            Direction::Ingress,
            Ethertype::IPv4,
            Some("icmp"),
            Some(8),
            Some(0),
        );
        assert_eq!(
            render_rule(&r, &none, "accept").unwrap(),
            "meta nfproto ipv4 meta l4proto 1 icmp type 8 icmp code 0 accept"
        );
        let mut r = rule(Direction::Egress, Ethertype::IPv6, None, None, None);
        r.remote_group_id = Some("g1".into());
        assert_eq!(
            render_rule(&r, &none, "return"),
            None,
            "unknown group matches nothing"
        );
        let known: BTreeSet<&str> = ["g1"].into();
        assert_eq!(
            render_rule(&r, &known, "return").unwrap(),
            "meta nfproto ipv6 ip6 daddr @r6-g1 return"
        );
        let mut r = rule(Direction::Ingress, Ethertype::IPv6, None, None, None);
        r.remote_ip_prefix = Some("10.0.0.0/8".parse().unwrap());
        assert_eq!(render_rule(&r, &none, "accept"), None, "family mismatch");
        let r = rule(Direction::Ingress, Ethertype::IPv4, Some("gre"), None, None);
        assert_eq!(
            render_rule(&r, &none, "accept").unwrap(),
            "meta nfproto ipv4 meta l4proto 47 accept"
        );
        assert_eq!(protocol_number("bogus", Ethertype::IPv4), None);
    }

    #[test]
    fn set_elements_are_canonical() {
        let m: Vec<Cidr> = ["10.0.0.5", "10.0.0.0/24", "10.1.0.1", "10.1.0.1", "fd00::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(set_elements(&m, true), vec!["10.0.0.0/24", "10.1.0.1"]);
        assert_eq!(set_elements(&m, false), vec!["fd00::1"]);
    }

    fn port() -> Port {
        Port {
            id: "p1".into(),
            network_id: "n1".into(),
            mac: "02:00:00:0a:00:12".into(),
            fixed_ips: vec![
                "10.1.0.12".parse().unwrap(),
                "fd00:a::ff:fe0a:12".parse().unwrap(),
            ],
            tap: "tapp1".into(),
            port_security_enabled: true,
            security_groups: vec!["g1".into()],
            allowed_address_pairs: vec![],
            admin_state_up: true,
        }
    }

    #[test]
    fn anti_spoofing_chain() {
        let rules = from_port_rules(&port(), 3);
        let text = rules.join("\n");
        assert!(
            text.contains("ether saddr != 02:00:00:0a:00:12 drop"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr != { 10.1.0.12, 0.0.0.0 } drop"),
            "{text}"
        );
        assert!(
            text.contains("ip6 saddr != { fd00:a::ff:fe0a:12, fe80::ff:fe0a:12, :: } drop"),
            "{text}"
        );
        assert!(
            text.ends_with("meta mark set meta mark & 0x0000ffff | 0x00030000"),
            "{text}"
        );
        let mut p = port();
        p.allowed_address_pairs.push(AddressPair {
            ip_address: "10.1.0.99".parse().unwrap(),
            mac_address: Some("02:00:00:00:00:99".into()),
        });
        let text = from_port_rules(&p, 3).join("\n");
        assert!(
            text.contains("ether saddr != { 02:00:00:00:00:99, 02:00:00:0a:00:12 } drop"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr != { 10.1.0.12, 10.1.0.99, 0.0.0.0 } drop"),
            "{text}"
        );
    }

    #[test]
    fn tables_only_for_secured_ports_and_remote_groups_become_sets() {
        let mut d = HostNetwork::default();
        d.ports.push(port());
        let mut insecure = port();
        insecure.id = "p2".into();
        insecure.tap = "tapp2".into();
        insecure.port_security_enabled = false;
        d.ports.push(insecure);
        d.security_groups.push(SecurityGroup {
            id: "g1".into(),
            rules: vec![Rule {
                remote_group_id: Some("g1".into()),
                ..rule(Direction::Ingress, Ethertype::IPv4, None, None, None)
            }],
            member_ips: vec!["10.1.0.12".parse().unwrap(), "10.1.0.13".parse().unwrap()],
        });
        let marks: BTreeMap<String, u16> = [("p1".to_string(), 1), ("p2".to_string(), 2)].into();
        let zones: BTreeMap<String, u16> = [("n1".to_string(), 7)].into();
        let t = tables(&d, &marks, &zones);
        let text: String = t.iter().map(Table::render).collect();
        assert!(
            text.contains("add element bridge nubo-sg from-port { \"tapp1\" : jump f-p1 }"),
            "{text}"
        );
        assert!(!text.contains("p2"), "{text}");
        assert!(
            text.contains("add element inet nubo-sg zones { \"nbr-n1\" : 7 }"),
            "{text}"
        );
        assert!(
            text.contains("add element inet nubo-sg r4-g1 { 10.1.0.12, 10.1.0.13 }"),
            "{text}"
        );
        assert!(
            text.contains("add rule inet nubo-sg i-p1 meta nfproto ipv4 ip saddr @r4-g1 accept"),
            "{text}"
        );
        assert!(
            text.contains("add element inet nubo-sg ingress { 0x00000001 : jump i-p1 }"),
            "{text}"
        );
        assert!(
            text.contains("add element inet nubo-sg egress { 0x00010000 : jump e-p1 }"),
            "{text}"
        );
        d.ports.truncate(0);
        assert!(tables(&d, &marks, &zones).is_empty());
    }
}
