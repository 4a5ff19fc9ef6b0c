//! Apply timings of the real netplane (root): one "host" namespace with one VXLAN network,
//! N ports (real taps), a router with a floating IP and RA, a DHCP server and the metadata
//! proxy. Prints the first apply, the no-op apply (p50/max of 10), one port added, one port
//! removed, one rule changed, and the removal of everything. Everything it makes is in
//! namespaces it deletes at the end.
//!
//!     cargo run --release -p nubo-netplane --example apply_bench -- [N=20]

use std::process::Command;
use std::time::{Duration, Instant};

use nubo_netplane::*;

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn port(i: u32) -> Port {
    Port {
        id: format!("port{i:04}"),
        network_id: "net1".into(),
        mac: format!("02:00:00:01:{:02x}:{:02x}", i / 256, i % 256),
        fixed_ips: vec![format!("10.1.{}.{}", (i + 10) / 256, (i + 10) % 256)
            .parse()
            .unwrap()],
        tap: format!("tapb{i:04}"),
        port_security_enabled: true,
        security_groups: vec!["default".into()],
        allowed_address_pairs: vec![],
        admin_state_up: true,
    }
}

fn desired(n: u32) -> HostNetwork {
    let ports: Vec<Port> = (0..n).map(port).collect();
    let members: Vec<Cidr> = ports.iter().map(|p| Cidr::host(p.fixed_ips[0])).collect();
    let rule = |direction, ethertype, protocol: Option<&str>, group: Option<&str>| Rule {
        direction,
        ethertype,
        protocol: protocol.map(str::to_string),
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: group.map(str::to_string),
    };
    HostNetwork {
        networks: vec![
            Network {
                id: "net1".into(),
                segment: Segment::Vxlan { vni: 4242 },
                mtu: 1450,
                subnets: vec![
                    Subnet {
                        id: "s4".into(),
                        cidr: cidr("10.1.0.0/16"),
                        gateway_ip: Some("10.1.0.1".parse().unwrap()),
                        enable_dhcp: true,
                        dns_nameservers: vec![],
                        host_routes: vec![],
                        ipv6_ra_mode: None,
                        ipv6_address_mode: None,
                    },
                    Subnet {
                        id: "s6".into(),
                        cidr: cidr("fd00:1::/64"),
                        gateway_ip: Some("fd00:1::1".parse().unwrap()),
                        enable_dhcp: true,
                        dns_nameservers: vec![],
                        host_routes: vec![],
                        ipv6_ra_mode: Some(Ipv6Mode::Slaac),
                        ipv6_address_mode: Some(Ipv6Mode::Slaac),
                    },
                ],
            },
            Network {
                id: "ext".into(),
                segment: Segment::Flat { interface: None },
                mtu: 1500,
                subnets: vec![],
            },
        ],
        dhcp_servers: vec![DhcpServer {
            network_id: "net1".into(),
            port_id: "dhcpport".into(),
            mac: "02:00:00:00:00:02".into(),
            addresses: vec![cidr("10.1.0.2/16")],
            hosts: ports
                .iter()
                .map(|p| DhcpHost {
                    mac: p.mac.clone(),
                    ips: p.fixed_ips.clone(),
                    hostname: None,
                    extra_options: vec![],
                })
                .collect(),
            isolated_metadata: false,
        }],
        metadata: Some(Metadata {
            url: "http://127.0.0.1:9".into(),
            secret: "s".into(),
            instances: ports
                .iter()
                .map(|p| MetadataInstance {
                    network_id: "net1".into(),
                    ip: p.fixed_ips[0],
                    instance_id: format!("vm-{}", p.id),
                    project_id: None,
                })
                .collect(),
        }),
        ports,
        security_groups: vec![SecurityGroup {
            id: "default".into(),
            rules: vec![
                rule(Direction::Egress, Ethertype::IPv4, None, None),
                rule(Direction::Egress, Ethertype::IPv6, None, None),
                rule(Direction::Ingress, Ethertype::IPv4, None, Some("default")),
                rule(Direction::Ingress, Ethertype::IPv6, None, Some("default")),
            ],
            member_ips: members,
        }],
        remote_hosts: vec![RemoteHost {
            underlay_ip: "192.0.2.2".parse().unwrap(),
            networks: vec![RemoteNetwork {
                network_id: "net1".into(),
                macs: (0..n)
                    .map(|i| format!("02:00:00:02:{:02x}:{:02x}", i / 256, i % 256))
                    .collect(),
            }],
        }],
        routers: vec![Router {
            id: "r1".into(),
            gateway: Some(RouterGateway {
                port_id: "gw".into(),
                network_id: "ext".into(),
                mac: "02:00:00:00:00:10".into(),
                addresses: vec![cidr("203.0.113.10/24")],
                nexthops: vec!["203.0.113.1".parse().unwrap()],
            }),
            enable_snat: true,
            interfaces: vec![RouterInterface {
                port_id: "qr".into(),
                network_id: "net1".into(),
                mac: "02:00:00:00:00:01".into(),
                addresses: vec![cidr("10.1.0.1/16"), cidr("fd00:1::1/64")],
            }],
            routes: vec![],
            floating_ips: vec![FloatingIp {
                floating_ip: "203.0.113.11".parse().unwrap(),
                fixed_ip: "10.1.0.10".parse().unwrap(),
            }],
        }],
        external: Some(ExternalHost {
            network_id: "ext".into(),
            addresses: vec![cidr("203.0.113.1/24")],
            nat_uplink: None,
        }),
    }
}

async fn timed(np: &LinuxNetplane, d: &HostNetwork) -> (Duration, Report) {
    let t = Instant::now();
    let r = np.apply(d).await.expect("apply");
    assert!(r.ok(), "{:#?}", r.errors);
    (t.elapsed(), r)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !is_root() {
        eprintln!("apply_bench needs root");
        std::process::exit(1);
    }
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let host = format!("npbench{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &host])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip netns add");
    let dir = tempfile::tempdir().unwrap();
    let np = LinuxNetplane::new(Config {
        state_dir: dir.path().join("state"),
        local_ip: Some("192.0.2.1".parse().unwrap()),
        host_netns: Some(host.clone()),
        namespace_prefix: format!("{host}-"),
        ..Config::default()
    });
    let mut d = desired(n);
    println!("netplane apply timings, {n} ports, 1 router, 1 DHCP server (2 cores, shared: noisy)");
    let (t, r) = timed(&np, &d).await;
    println!(
        "first apply        {:>8.1} ms  {:>4} changes {:>4} commands",
        t.as_secs_f64() * 1e3,
        r.changes.len(),
        r.commands
    );
    let mut noop = Vec::new();
    let mut commands = 0;
    for _ in 0..10 {
        let (t, r) = timed(&np, &d).await;
        assert!(r.changes.is_empty(), "{:?}", r.changes);
        noop.push(t);
        commands = r.commands;
    }
    noop.sort();
    println!(
        "no-op apply p50    {:>8.1} ms  (max {:.1} ms, {} commands)",
        noop[5].as_secs_f64() * 1e3,
        noop[9].as_secs_f64() * 1e3,
        commands
    );
    let new = port(n);
    d.security_groups[0]
        .member_ips
        .push(Cidr::host(new.fixed_ips[0]));
    d.dhcp_servers[0].hosts.push(DhcpHost {
        mac: new.mac.clone(),
        ips: new.fixed_ips.clone(),
        hostname: None,
        extra_options: vec![],
    });
    d.ports.push(new);
    let (t, r) = timed(&np, &d).await;
    println!(
        "one port added     {:>8.1} ms  {:>4} changes {:>4} commands",
        t.as_secs_f64() * 1e3,
        r.changes.len(),
        r.commands
    );
    d.ports.remove(0);
    let (t, r) = timed(&np, &d).await;
    println!(
        "one port removed   {:>8.1} ms  {:>4} changes {:>4} commands",
        t.as_secs_f64() * 1e3,
        r.changes.len(),
        r.commands
    );
    d.security_groups[0].rules.push(Rule {
        direction: Direction::Ingress,
        ethertype: Ethertype::IPv4,
        protocol: Some("tcp".into()),
        port_range_min: Some(22),
        port_range_max: Some(22),
        remote_ip_prefix: None,
        remote_group_id: None,
    });
    let (t, r) = timed(&np, &d).await;
    println!(
        "one rule added     {:>8.1} ms  {:>4} changes {:>4} commands",
        t.as_secs_f64() * 1e3,
        r.changes.len(),
        r.commands
    );
    let (t, r) = timed(&np, &HostNetwork::default()).await;
    println!(
        "remove everything  {:>8.1} ms  {:>4} changes {:>4} commands",
        t.as_secs_f64() * 1e3,
        r.changes.len(),
        r.commands
    );
    let left = np.observe().await.unwrap();
    assert!(left.is_empty(), "{left:#?}");
    let _ = Command::new("ip").args(["netns", "del", &host]).status();
}
