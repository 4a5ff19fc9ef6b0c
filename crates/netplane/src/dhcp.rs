//! dnsmasq for one network, Neutron-style: static leases only (`--dhcp-hostsfile`, so only
//! known ports get an address), per-subnet options in `--dhcp-optsfile`, both re-read on SIGHUP;
//! everything else on the command line (a change there restarts dnsmasq).
//!
//! Why dnsmasq and not a Rust server: it is what Neutron runs, it already does DHCPv4, DHCPv6
//! stateless and stateful, option 121/249, client-id quirks and lease files, and the lab proved it
//! here; a restart or crash is healed like any other object.

use std::net::IpAddr;
use std::path::Path;

use crate::model::{Cidr, DhcpServer, HostNetwork, Ipv6Mode, Subnet};
use crate::names;
use crate::router::METADATA_IP;

/// The files of one dnsmasq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub hosts: String,
    pub opts: String,
}

fn tag(subnet: &Subnet) -> String {
    format!("subnet-{}", subnet.id)
}

/// The subnets dnsmasq serves: DHCP on, IPv4, or IPv6 with a DHCPv6 address mode, and an
/// address of the DHCP port inside.
fn served<'a>(d: &DhcpServer, desired: &'a HostNetwork) -> Vec<(&'a Subnet, Cidr)> {
    let Some(net) = desired.network(&d.network_id) else {
        return Vec::new();
    };
    net.subnets
        .iter()
        .filter(|s| s.enable_dhcp)
        .filter(|s| {
            s.cidr.is_ipv4()
                || matches!(
                    s.ipv6_address_mode,
                    Some(Ipv6Mode::Dhcpv6Stateful) | Some(Ipv6Mode::Dhcpv6Stateless)
                )
        })
        .filter_map(|s| {
            d.addresses
                .iter()
                .find(|a| s.cidr.contains(&a.addr))
                .map(|a| (s, *a))
        })
        .collect()
}

/// dnsmasq's arguments (after the program name). `dir` holds the files.
pub fn args(d: &DhcpServer, desired: &HostNetwork, dir: &Path) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    let mtu = desired
        .network(&d.network_id)
        .map(|n| n.mtu)
        .unwrap_or(1500);
    let mut a = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--no-hosts".into(),
        "--no-resolv".into(),
        "--port=0".into(),
        format!("--interface={}", names::dhcp_port(&d.port_id)),
        "--except-interface=lo".into(),
        "--bind-interfaces".into(),
        format!("--dhcp-hostsfile={}", p("hosts")),
        format!("--dhcp-optsfile={}", p("opts")),
        format!("--dhcp-leasefile={}", p("leases")),
        format!("--log-facility={}", p("log")),
        "--dhcp-authoritative".into(),
        "--dhcp-lease-max=16777216".into(),
        "--user=root".into(),
        "--group=root".into(),
    ];
    for (s, _) in served(d, desired) {
        let net = s.cidr.network();
        if s.cidr.is_ipv4() {
            a.push(format!(
                "--dhcp-range=set:{},{},static,{},86400s",
                tag(s),
                net.addr,
                s.cidr.netmask4()
            ));
        } else {
            a.push(format!(
                "--dhcp-range=set:{},{},static,{},86400s",
                tag(s),
                net.addr,
                s.cidr.prefix
            ));
        }
    }
    a.push(format!("--dhcp-option-force=option:mtu,{mtu}"));
    a
}

fn hostname(ip: &IpAddr) -> String {
    format!("host-{}", ip.to_string().replace(['.', ':'], "-"))
}

/// The IPv4 leases to release when the hosts file goes from `old` to `new`: every
/// (address, MAC) of an old line that no new line has. dnsmasq keeps a lease after its host
/// line is gone and will not hand that address to the next port that gets it ("not using
/// configured address ... because it is leased to ..."); Neutron's DHCP agent releases them
/// with `dhcp_release` too.
pub fn released_leases(old: &str, new: &str) -> Vec<(std::net::Ipv4Addr, String)> {
    let pairs = |text: &str| -> std::collections::BTreeSet<(std::net::Ipv4Addr, String)> {
        let mut out = std::collections::BTreeSet::new();
        for line in text.lines() {
            let mut fields = line.split(',');
            let Some(mac) = fields.next() else { continue };
            for f in fields {
                if let Ok(ip) = f.parse::<std::net::Ipv4Addr>() {
                    out.insert((ip, mac.to_ascii_lowercase()));
                }
            }
        }
        out
    };
    let keep = pairs(new);
    pairs(old)
        .into_iter()
        .filter(|p| !keep.contains(p))
        .collect()
}

/// The hosts file and the options file.
pub fn files(d: &DhcpServer, desired: &HostNetwork) -> Files {
    let subnets = served(d, desired);
    let stateful = |ip: &IpAddr| {
        subnets.iter().any(|(s, _)| {
            s.cidr.contains(ip)
                && (s.cidr.is_ipv4() || s.ipv6_address_mode == Some(Ipv6Mode::Dhcpv6Stateful))
        })
    };
    let mut hosts = String::new();
    let mut opts = String::new();
    let mut entries: Vec<_> = d.hosts.iter().collect();
    entries.sort_by(|a, b| a.mac.cmp(&b.mac));
    for (n, h) in entries.iter().enumerate() {
        let ips: Vec<&IpAddr> = h.ips.iter().filter(|ip| stateful(ip)).collect();
        if ips.is_empty() && h.extra_options.is_empty() {
            continue;
        }
        let mut line = h.mac.to_ascii_lowercase();
        if !h.extra_options.is_empty() {
            line.push_str(&format!(",set:port{n}"));
            for o in &h.extra_options {
                let kind = if o.ip_version == 6 {
                    "option6"
                } else {
                    "option"
                };
                let name = if o.name.chars().all(|c| c.is_ascii_digit()) {
                    o.name.clone()
                } else {
                    format!("{kind}:{}", o.name)
                };
                opts.push_str(&format!("tag:port{n},{name},{}\n", o.value));
            }
        }
        for ip in &ips {
            match ip {
                IpAddr::V4(a) => line.push_str(&format!(",{a}")),
                IpAddr::V6(a) => line.push_str(&format!(",[{a}]")),
            }
        }
        let name = h
            .hostname
            .clone()
            .or_else(|| ips.first().map(|ip| hostname(ip)))
            .unwrap_or_default();
        if !name.is_empty() {
            line.push_str(&format!(",{name}"));
        }
        hosts.push_str(&line);
        hosts.push('\n');
    }
    for (s, own) in &subnets {
        let t = tag(s);
        if s.cidr.is_ipv4() {
            match s.gateway_ip {
                Some(gw) => opts.push_str(&format!("tag:{t},option:router,{gw}\n")),
                None => opts.push_str(&format!("tag:{t},option:router\n")),
            }
            let dns: Vec<String> = s
                .dns_nameservers
                .iter()
                .filter(|d| d.is_ipv4())
                .map(|d| d.to_string())
                .collect();
            if dns.is_empty() {
                opts.push_str(&format!("tag:{t},option:dns-server\n"));
            } else {
                opts.push_str(&format!("tag:{t},option:dns-server,{}\n", dns.join(",")));
            }
            // Classless static routes (121, and 249 for old Windows): the metadata route when the
            // network has no router, host routes, then the default route (a client that takes
            // option 121 ignores option 3).
            let mut routes: Vec<String> = Vec::new();
            if d.isolated_metadata {
                routes.push(format!("{METADATA_IP}/32,{}", own.addr));
            }
            for r in s.host_routes.iter().filter(|r| r.destination.is_ipv4()) {
                routes.push(format!("{},{}", r.destination.network(), r.nexthop));
            }
            if !routes.is_empty() {
                if let Some(gw) = s.gateway_ip {
                    routes.push(format!("0.0.0.0/0,{gw}"));
                }
                let list = routes.join(",");
                opts.push_str(&format!("tag:{t},option:classless-static-route,{list}\n"));
                opts.push_str(&format!("tag:{t},249,{list}\n"));
            }
        } else {
            let dns: Vec<String> = s
                .dns_nameservers
                .iter()
                .filter(|d| d.is_ipv6())
                .map(|d| format!("[{d}]"))
                .collect();
            if dns.is_empty() {
                opts.push_str(&format!("tag:{t},option6:dns-server\n"));
            } else {
                opts.push_str(&format!("tag:{t},option6:dns-server,{}\n", dns.join(",")));
            }
        }
    }
    Files { hosts, opts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn removed_or_moved_hosts_release_their_leases() {
        let old = "fa:16:3e:00:00:01,10.0.0.3,host-10-0-0-3\n\
                   fa:16:3e:00:00:02,10.0.0.4,[fdc6::4],host-10-0-0-4\n";
        // .01 gone, .02 kept, a new port reuses 10.0.0.3.
        let new = "fa:16:3e:00:00:02,10.0.0.4,[fdc6::4],host-10-0-0-4\n\
                   fa:16:3e:00:00:03,10.0.0.3,host-10-0-0-3\n";
        assert_eq!(
            released_leases(old, new),
            vec![("10.0.0.3".parse().unwrap(), "fa:16:3e:00:00:01".to_string())]
        );
        assert!(released_leases(new, new).is_empty());
        assert!(released_leases("", new).is_empty());
    }

    fn desired() -> (DhcpServer, HostNetwork) {
        let mut d = HostNetwork::default();
        d.networks.push(Network {
            id: "n1".into(),
            segment: Segment::Vxlan { vni: 100 },
            mtu: 1450,
            subnets: vec![
                Subnet {
                    id: "s4".into(),
                    cidr: "10.1.0.0/24".parse().unwrap(),
                    gateway_ip: Some("10.1.0.1".parse().unwrap()),
                    enable_dhcp: true,
                    dns_nameservers: vec!["192.0.2.53".parse().unwrap()],
                    host_routes: vec![Route {
                        destination: "10.9.0.0/16".parse().unwrap(),
                        nexthop: "10.1.0.254".parse().unwrap(),
                    }],
                    ipv6_ra_mode: None,
                    ipv6_address_mode: None,
                },
                Subnet {
                    id: "s6".into(),
                    cidr: "fd00:a::/64".parse().unwrap(),
                    gateway_ip: Some("fd00:a::1".parse().unwrap()),
                    enable_dhcp: true,
                    dns_nameservers: vec![],
                    host_routes: vec![],
                    ipv6_ra_mode: Some(Ipv6Mode::Dhcpv6Stateful),
                    ipv6_address_mode: Some(Ipv6Mode::Dhcpv6Stateful),
                },
            ],
        });
        let s = DhcpServer {
            network_id: "n1".into(),
            port_id: "dhcpport".into(),
            mac: "02:00:00:0a:00:02".into(),
            addresses: vec![
                "10.1.0.2/24".parse().unwrap(),
                "fd00:a::2/64".parse().unwrap(),
            ],
            hosts: vec![DhcpHost {
                mac: "02:00:00:0A:00:11".into(),
                ips: vec!["10.1.0.11".parse().unwrap(), "fd00:a::11".parse().unwrap()],
                hostname: None,
                extra_options: vec![DhcpOption {
                    name: "bootfile-name".into(),
                    value: "pxelinux.0".into(),
                    ip_version: 4,
                }],
            }],
            isolated_metadata: true,
        };
        (s, d)
    }

    #[test]
    fn dnsmasq_command_line() {
        let (s, d) = desired();
        let a = args(&s, &d, Path::new("/var/lib/x"));
        assert!(a.contains(&"--interface=ns-dhcpport".to_string()), "{a:?}");
        assert!(
            a.contains(
                &"--dhcp-range=set:subnet-s4,10.1.0.0,static,255.255.255.0,86400s".to_string()
            ),
            "{a:?}"
        );
        assert!(
            a.contains(&"--dhcp-range=set:subnet-s6,fd00:a::,static,64,86400s".to_string()),
            "{a:?}"
        );
        assert!(
            a.contains(&"--dhcp-option-force=option:mtu,1450".to_string()),
            "{a:?}"
        );
        assert!(
            a.contains(&"--dhcp-hostsfile=/var/lib/x/hosts".to_string()),
            "{a:?}"
        );
    }

    #[test]
    fn hosts_and_options() {
        let (s, d) = desired();
        let f = files(&s, &d);
        assert_eq!(
            f.hosts,
            "02:00:00:0a:00:11,set:port0,10.1.0.11,[fd00:a::11],host-10-1-0-11\n"
        );
        for want in [
            "tag:port0,option:bootfile-name,pxelinux.0",
            "tag:subnet-s4,option:router,10.1.0.1",
            "tag:subnet-s4,option:dns-server,192.0.2.53",
            "tag:subnet-s4,option:classless-static-route,169.254.169.254/32,10.1.0.2,10.9.0.0/16,10.1.0.254,0.0.0.0/0,10.1.0.1",
            "tag:subnet-s4,249,169.254.169.254/32,10.1.0.2,",
            "tag:subnet-s6,option6:dns-server\n",
        ] {
            assert!(f.opts.contains(want), "{want}\n{}", f.opts);
        }
        // SLAAC addresses are not leased.
        let (s, mut d) = desired();
        d.networks[0].subnets[1].ipv6_address_mode = Some(Ipv6Mode::Slaac);
        let f = files(&s, &d);
        assert!(!f.hosts.contains("fd00"), "{}", f.hosts);
        assert!(!args(&s, &d, Path::new("/x"))
            .iter()
            .any(|a| a.contains("fd00")));
    }
}
