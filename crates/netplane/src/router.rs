//! What goes into a router namespace besides its ports: the nft table (SNAT, floating IP DNAT +
//! SNAT, the metadata redirect, inbound filtering) and radvd's configuration.
//!
//! ```text
//! table inet nubo-router
//!   chain prerouting   nat dstnat:  ip daddr FIP dnat ip to FIXED                  (per floating IP)
//!                                   iifname "qr-*" ip daddr 169.254.169.254 tcp dport 80
//!                                       redirect to :<metadata port>             (with metadata)
//!   chain postrouting  nat srcnat:  oifname QG ip saddr FIXED snat ip to FIP       (per floating IP)
//!                                   oifname QG ip saddr INTERNAL snat ip to GWIP   (enable_snat)
//!   chain forward      filter:      unsolicited IPv4 from qg- to non-DNAT'd addresses dropped
//!                                   (enable_snat; IPv6 is routed, security groups filter it)
//!   chain input        filter:      the metadata port only through the redirect
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::{HostNetwork, Ipv6Mode, Router};
use crate::names;
use crate::nft::{Hook, Object, Table};

pub const METADATA_IP: &str = "169.254.169.254";

pub fn nat_table(r: &Router, metadata_port: Option<u16>) -> Table {
    let mut pre = Vec::new();
    let mut post = Vec::new();
    let mut fwd = Vec::new();
    let mut input = Vec::new();
    let qg = r.gateway.as_ref().map(|g| names::qg(&g.port_id));
    let mut fips = r.floating_ips.clone();
    fips.sort();
    fips.dedup();
    if let Some(qg) = &qg {
        for f in &fips {
            pre.push(format!(
                "ip daddr {} dnat ip to {}",
                f.floating_ip, f.fixed_ip
            ));
            post.push(format!(
                "oifname \"{qg}\" ip saddr {} snat ip to {}",
                f.fixed_ip, f.floating_ip
            ));
        }
        let gw4 = r
            .gateway
            .as_ref()
            .and_then(|g| g.addresses.iter().find(|a| a.is_ipv4()))
            .map(|a| a.addr);
        if r.enable_snat {
            if let Some(gw) = gw4 {
                let internal: BTreeSet<String> = r
                    .interfaces
                    .iter()
                    .flat_map(|i| i.addresses.iter())
                    .filter(|a| a.is_ipv4())
                    .map(|a| a.network().to_string())
                    .collect();
                for cidr in internal {
                    post.push(format!("oifname \"{qg}\" ip saddr {cidr} snat ip to {gw}"));
                }
            }
            fwd.push(format!(
                "iifname \"{qg}\" meta nfproto ipv4 ct state new ct status & dnat == 0 drop"
            ));
        }
    }
    if let Some(port) = metadata_port {
        pre.push(format!(
            "iifname \"{}*\" ip daddr {METADATA_IP} tcp dport 80 redirect to :{port}",
            names::ROUTER_INTERNAL
        ));
        input.push(format!("tcp dport {port} ct status dnat accept"));
        input.push(format!("tcp dport {port} drop"));
    }
    let hook = |kind: &'static str, hook: &'static str, priority: &'static str| Hook {
        kind,
        hook,
        priority,
        policy: "accept",
    };
    Table {
        family: "inet",
        name: names::TABLE_ROUTER.into(),
        objects: vec![
            Object::base("prerouting", hook("nat", "prerouting", "dstnat"), pre),
            Object::base("postrouting", hook("nat", "postrouting", "srcnat"), post),
            Object::base("forward", hook("filter", "forward", "filter"), fwd),
            Object::base("input", hook("filter", "input", "filter"), input),
        ],
    }
}

/// radvd's configuration for a router, or `None` when no internal port has an IPv6 subnet with
/// an RA mode. Flags as Neutron sets them: SLAAC -> autonomous prefix; DHCPv6 stateless ->
/// autonomous + "other config"; DHCPv6 stateful -> "managed", prefix not autonomous.
pub fn radvd_conf(r: &Router, desired: &HostNetwork) -> Option<String> {
    let mut out = String::new();
    for i in &r.interfaces {
        let Some(net) = desired.network(&i.network_id) else {
            continue;
        };
        let mut prefixes = Vec::new();
        let (mut managed, mut other) = (false, false);
        let mut rdnss: BTreeSet<IpAddr> = BTreeSet::new();
        for a in i.addresses.iter().filter(|a| !a.is_ipv4()) {
            let Some(s) = net.subnets.iter().find(|s| s.cidr.contains(&a.addr)) else {
                continue;
            };
            let Some(mode) = s.ipv6_ra_mode else { continue };
            let auto = match mode {
                Ipv6Mode::Slaac => true,
                Ipv6Mode::Dhcpv6Stateless => {
                    other = true;
                    true
                }
                Ipv6Mode::Dhcpv6Stateful => {
                    managed = true;
                    false
                }
            };
            rdnss.extend(s.dns_nameservers.iter().filter(|d| d.is_ipv6()));
            prefixes.push(format!(
                "    prefix {} {{\n        AdvOnLink on;\n        AdvAutonomous {};\n    }};\n",
                s.cidr.network(),
                if auto { "on" } else { "off" }
            ));
        }
        if prefixes.is_empty() {
            continue;
        }
        out.push_str(&format!("interface {} {{\n", names::qr(&i.port_id)));
        out.push_str(
            "    AdvSendAdvert on;\n    MinRtrAdvInterval 3;\n    MaxRtrAdvInterval 10;\n",
        );
        out.push_str(&format!("    AdvLinkMTU {};\n", net.mtu));
        if managed {
            out.push_str("    AdvManagedFlag on;\n");
        }
        if other {
            out.push_str("    AdvOtherConfigFlag on;\n");
        }
        for p in prefixes {
            out.push_str(&p);
        }
        if !rdnss.is_empty() {
            let list: Vec<String> = rdnss.iter().map(|d| d.to_string()).collect();
            out.push_str(&format!("    RDNSS {} {{}};\n", list.join(" ")));
        }
        out.push_str("};\n");
    }
    (!out.is_empty()).then_some(out)
}

/// The host's external NAT table (`nubo up` with an uplink): masquerade the external IPv4
/// prefixes out of the uplink.
pub fn ext_table(desired: &HostNetwork) -> Option<Table> {
    let x = desired.external.as_ref()?;
    let uplink = x.nat_uplink.as_ref()?;
    let prefixes: BTreeSet<String> = x
        .addresses
        .iter()
        .filter(|a| a.is_ipv4())
        .map(|a| a.network().to_string())
        .collect();
    let bridge = names::bridge(&x.network_id);
    let mut post = Vec::new();
    let mut fwd = Vec::new();
    for p in prefixes {
        post.push(format!("oifname \"{uplink}\" ip saddr {p} masquerade"));
        fwd.push(format!(
            "iifname \"{bridge}\" oifname \"{uplink}\" ip saddr {p} accept"
        ));
        fwd.push(format!("iifname \"{uplink}\" oifname \"{bridge}\" ip daddr {p} ct state established,related accept"));
    }
    Some(Table {
        family: "inet",
        name: names::TABLE_EXT.into(),
        objects: vec![
            Object::base(
                "postrouting",
                Hook {
                    kind: "nat",
                    hook: "postrouting",
                    priority: "srcnat",
                    policy: "accept",
                },
                post,
            ),
            Object::base(
                "forward",
                Hook {
                    kind: "filter",
                    hook: "forward",
                    priority: "filter",
                    policy: "accept",
                },
                fwd,
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    pub(crate) fn router() -> (Router, HostNetwork) {
        let r = Router {
            id: "r1".into(),
            gateway: Some(RouterGateway {
                port_id: "gwport".into(),
                network_id: "ext".into(),
                mac: "02:00:00:00:00:10".into(),
                addresses: vec!["203.0.113.10/24".parse().unwrap()],
                nexthops: vec!["203.0.113.1".parse().unwrap()],
            }),
            enable_snat: true,
            interfaces: vec![RouterInterface {
                port_id: "qrport".into(),
                network_id: "n1".into(),
                mac: "02:00:00:0a:00:01".into(),
                addresses: vec![
                    "10.1.0.1/24".parse().unwrap(),
                    "fd00:a::1/64".parse().unwrap(),
                ],
            }],
            routes: vec![],
            floating_ips: vec![FloatingIp {
                floating_ip: "203.0.113.11".parse().unwrap(),
                fixed_ip: "10.1.0.12".parse().unwrap(),
            }],
        };
        let mut d = HostNetwork::default();
        d.networks.push(Network {
            id: "n1".into(),
            segment: Segment::Vxlan { vni: 100 },
            mtu: 1450,
            subnets: vec![Subnet {
                id: "s6".into(),
                cidr: "fd00:a::/64".parse().unwrap(),
                gateway_ip: Some("fd00:a::1".parse().unwrap()),
                enable_dhcp: true,
                dns_nameservers: vec![],
                host_routes: vec![],
                ipv6_ra_mode: Some(Ipv6Mode::Slaac),
                ipv6_address_mode: Some(Ipv6Mode::Slaac),
            }],
        });
        (r, d)
    }

    #[test]
    fn nat_table_is_the_labs() {
        let (r, _) = router();
        let text = nat_table(&r, Some(9697)).render();
        for want in [
            "add rule inet nubo-router prerouting ip daddr 203.0.113.11 dnat ip to 10.1.0.12",
            "add rule inet nubo-router prerouting iifname \"qr-*\" ip daddr 169.254.169.254 tcp dport 80 redirect to :9697",
            "add rule inet nubo-router postrouting oifname \"qg-gwport\" ip saddr 10.1.0.12 snat ip to 203.0.113.11",
            "add rule inet nubo-router postrouting oifname \"qg-gwport\" ip saddr 10.1.0.0/24 snat ip to 203.0.113.10",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        let fip = text.find("snat ip to 203.0.113.11").unwrap();
        let snat = text.find("snat ip to 203.0.113.10").unwrap();
        assert!(fip < snat, "the floating IP SNAT comes first");
        let mut r2 = r.clone();
        r2.enable_snat = false;
        assert!(!nat_table(&r2, None)
            .render()
            .contains("snat ip to 203.0.113.10"));
    }

    #[test]
    fn ext_table_only_with_an_uplink() {
        let (_, mut d) = router();
        d.external = Some(ExternalHost {
            network_id: "ext".into(),
            addresses: vec![
                "172.24.4.1/24".parse().unwrap(),
                "2001:db8::1/64".parse().unwrap(),
            ],
            nat_uplink: None,
        });
        assert_eq!(ext_table(&d), None);
        d.external.as_mut().unwrap().nat_uplink = Some("eth0".into());
        let text = ext_table(&d).unwrap().render();
        assert!(
            text.contains("add rule inet nubo-ext postrouting oifname \"eth0\" ip saddr 172.24.4.0/24 masquerade"),
            "{text}"
        );
        assert!(
            !text.contains("2001:db8"),
            "IPv6 is routed, not masqueraded: {text}"
        );
    }

    #[test]
    fn radvd_has_mtu_and_slaac_prefix() {
        let (r, d) = router();
        let conf = radvd_conf(&r, &d).unwrap();
        assert!(conf.contains("interface qr-qrport {"), "{conf}");
        assert!(conf.contains("AdvLinkMTU 1450;"), "{conf}");
        assert!(
            conf.contains("prefix fd00:a::/64 {\n        AdvOnLink on;\n        AdvAutonomous on;"),
            "{conf}"
        );
        assert!(!conf.contains("AdvManagedFlag"), "{conf}");
        let mut d2 = d.clone();
        d2.networks[0].subnets[0].ipv6_ra_mode = Some(Ipv6Mode::Dhcpv6Stateful);
        let conf = radvd_conf(&r, &d2).unwrap();
        assert!(
            conf.contains("AdvManagedFlag on;") && conf.contains("AdvAutonomous off;"),
            "{conf}"
        );
        d2.networks[0].subnets[0].ipv6_ra_mode = None;
        assert_eq!(radvd_conf(&r, &d2), None);
    }
}
