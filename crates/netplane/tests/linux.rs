//! Root-only: the real netplane on two "hosts" (network namespaces joined by a veth underlay,
//! like ../shared/reference/netlab), with "VMs" that are namespaces attached by veth pairs named
//! as taps. Everything lives in namespaces this test makes and deletes; every process it starts
//! is stopped by PID. Without root (or without dnsmasq/radvd) it prints SKIP and passes.
//!
//! ```text
//!  vmA1 vmB1 ext(203.0.113.1)        vmA2 vmB2
//!    |    |    |                       |    |
//!  [hv1: nbr-A nbr-B nbr-ext]  ====  [hv2: nbr-A nbr-B]      underlay 192.0.2.1 <-> .2
//!    router r1 (qr on A, qg on ext, FIP 203.0.113.11 -> vmA2), DHCP A   |  DHCP B (isolated
//!                                                                          metadata)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nubo_netplane::*;

fn root_and_tools() -> bool {
    if !is_root() {
        eprintln!("SKIP: the netplane integration tests need root (network namespaces, bridges, nftables)");
        return false;
    }
    for (tool, hint) in [
        ("dnsmasq", "dnsmasq-base"),
        ("radvd", "radvd"),
        ("busybox", "busybox"),
        ("curl", "curl"),
        ("python3", "python3"),
        ("nft", "nftables"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            eprintln!("SKIP: {tool} is not installed (apt-get install -y {hint})");
            return false;
        }
    }
    true
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sh -c CMD` inside a namespace; true on success.
fn ok_in(ns: &str, cmd: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn out_in(ns: &str, cmd: &str) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .expect("spawn");
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Retries `f` for up to `secs` (bounded), 200 ms apart.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The test's own namespaces and processes; removed on drop, even after a failed assertion.
struct Lab {
    p: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    state_dirs: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.p)
    }

    fn add_ns(&mut self, name: &str) -> String {
        let n = self.ns(name);
        if Path::new(&format!("/run/netns/{n}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &n]).status();
        }
        run(&["ip", "netns", "add", &n]);
        run(&["ip", "-n", &n, "link", "set", "lo", "up"]);
        self.namespaces.push(n.clone());
        n
    }

    /// A "VM": a namespace with eth0, whose peer (named like a tap) sits in the host namespace.
    fn vm(&mut self, name: &str, host: &str, tap: &str, mac: &str) -> String {
        let n = self.add_ns(name);
        run(&[
            "ip", "-n", host, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns",
            &n,
        ]);
        run(&["ip", "-n", &n, "link", "set", "eth0", "address", mac, "up"]);
        n
    }

    fn spawn_in(&mut self, ns: &str, args: &[&str]) {
        let c = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        self.children.push(c);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Daemons a failed test left behind: stop them by their recorded PID.
        for d in &self.state_dirs {
            let Ok(bytes) = std::fs::read(d.join("state.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            for rec in v["processes"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                if let Some(pid) = rec["pid"].as_u64() {
                    unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                        libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                    }
                }
            }
        }
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        for line in String::from_utf8_lossy(&list).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(&self.p) {
                let _ = Command::new("ip")
                    .args(["netns", "del", name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        for n in &self.namespaces {
            if Path::new(&format!("/run/netns/{n}")).exists() {
                let _ = Command::new("ip").args(["netns", "del", n]).status();
            }
        }
    }
}

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip -4 addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    [ -n "$mtu" ] && ip link set $interface mtu $mtu
    set -- $staticroutes
    while [ $# -ge 2 ]; do ip route replace $1 via $2 dev $interface; shift 2; done
    for r in $router; do ip route replace default via $r dev $interface; done
    echo "LEASE ip=$ip mtu=$mtu router=$router routes=$staticroutes"
    ;;
esac
"#;

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn port(id: &str, net: &str, tap: &str, mac: &str, ips: &[&str], groups: &[&str]) -> Port {
    Port {
        id: id.into(),
        network_id: net.into(),
        mac: mac.into(),
        fixed_ips: ips.iter().map(|s| ip(s)).collect(),
        tap: tap.into(),
        port_security_enabled: !groups.is_empty(),
        security_groups: groups.iter().map(|s| s.to_string()).collect(),
        allowed_address_pairs: vec![],
        admin_state_up: true,
    }
}

fn rule(
    dir: Direction,
    eth: Ethertype,
    proto: Option<&str>,
    ports: Option<(u32, u32)>,
    prefix: Option<&str>,
    group: Option<&str>,
) -> Rule {
    Rule {
        direction: dir,
        ethertype: eth,
        protocol: proto.map(str::to_string),
        port_range_min: ports.map(|p| p.0),
        port_range_max: ports.map(|p| p.1),
        remote_ip_prefix: prefix.map(cidr),
        remote_group_id: group.map(str::to_string),
    }
}

struct World {
    nets: Vec<Network>,
    sg1: SecurityGroup,
    metadata: Metadata,
}

fn networks() -> Vec<Network> {
    let v4 = |id: &str| Subnet {
        id: id.into(),
        cidr: cidr("10.1.0.0/24"),
        gateway_ip: Some(ip("10.1.0.1")),
        enable_dhcp: true,
        dns_nameservers: vec![],
        host_routes: vec![],
        ipv6_ra_mode: None,
        ipv6_address_mode: None,
    };
    vec![
        Network {
            id: "neta".into(),
            segment: Segment::Vxlan { vni: 100 },
            mtu: 1450,
            subnets: vec![
                v4("sa4"),
                Subnet {
                    id: "sa6".into(),
                    cidr: cidr("fd00:a::/64"),
                    gateway_ip: Some(ip("fd00:a::1")),
                    enable_dhcp: true,
                    dns_nameservers: vec![],
                    host_routes: vec![],
                    ipv6_ra_mode: Some(Ipv6Mode::Slaac),
                    ipv6_address_mode: Some(Ipv6Mode::Slaac),
                },
            ],
        },
        Network {
            id: "netb".into(),
            segment: Segment::Vxlan { vni: 200 },
            mtu: 1450,
            subnets: vec![v4("sb4")],
        },
    ]
}

fn dhcp_host(mac: &str, ips: &[&str]) -> DhcpHost {
    DhcpHost {
        mac: mac.into(),
        ips: ips.iter().map(|s| ip(s)).collect(),
        hostname: None,
        extra_options: vec![],
    }
}

const A1: &str = "02:00:00:0a:00:11";
const A2: &str = "02:00:00:0a:00:12";
const B1: &str = "02:00:00:0b:00:21";
const B2: &str = "02:00:00:0b:00:22";
const QR: &str = "02:00:00:0a:00:01";
const DHCPA: &str = "02:00:00:0a:00:02";
const DHCPB: &str = "02:00:00:0b:00:02";

fn host1(w: &World, ext_net: &Network) -> HostNetwork {
    let mut nets = w.nets.clone();
    nets.push(ext_net.clone());
    HostNetwork {
        networks: nets,
        ports: vec![
            port(
                "porta1",
                "neta",
                "tapa1",
                A1,
                &["10.1.0.11", "fd00:a::ff:fe0a:11"],
                &["sg1"],
            ),
            port("portb1", "netb", "tapb1", B1, &["10.1.0.21"], &[]),
            // A port whose VM has not started: the netplane makes its tap.
            port(
                "portc1",
                "neta",
                "tapc1",
                "02:00:00:0a:00:13",
                &["10.1.0.13"],
                &["sg1"],
            ),
        ],
        security_groups: vec![w.sg1.clone()],
        remote_hosts: vec![RemoteHost {
            underlay_ip: ip("192.0.2.2"),
            networks: vec![
                RemoteNetwork {
                    network_id: "neta".into(),
                    macs: vec![A2.into()],
                },
                RemoteNetwork {
                    network_id: "netb".into(),
                    macs: vec![B2.into(), DHCPB.into()],
                },
            ],
        }],
        routers: vec![Router {
            id: "r1".into(),
            gateway: Some(RouterGateway {
                port_id: "gwport".into(),
                network_id: "ext".into(),
                mac: "02:00:00:cb:00:0a".into(),
                addresses: vec![cidr("203.0.113.10/24")],
                nexthops: vec![ip("203.0.113.1")],
            }),
            enable_snat: true,
            interfaces: vec![RouterInterface {
                port_id: "qrport".into(),
                network_id: "neta".into(),
                mac: QR.into(),
                addresses: vec![cidr("10.1.0.1/24"), cidr("fd00:a::1/64")],
            }],
            // The underlay range through the host, which masquerades it out of its uplink.
            routes: vec![Route {
                destination: cidr("192.0.2.0/24"),
                nexthop: ip("203.0.113.254"),
            }],
            floating_ips: vec![FloatingIp {
                floating_ip: "203.0.113.11".parse().unwrap(),
                fixed_ip: "10.1.0.12".parse().unwrap(),
            }],
        }],
        dhcp_servers: vec![DhcpServer {
            network_id: "neta".into(),
            port_id: "dhcpa".into(),
            mac: DHCPA.into(),
            addresses: vec![cidr("10.1.0.2/24")],
            hosts: vec![dhcp_host(A1, &["10.1.0.11"]), dhcp_host(A2, &["10.1.0.12"])],
            isolated_metadata: false,
        }],
        metadata: Some(w.metadata.clone()),
        external: Some(ExternalHost {
            network_id: "ext".into(),
            addresses: vec![cidr("203.0.113.254/24")],
            nat_uplink: Some("ul".into()),
        }),
    }
}

fn host2(w: &World) -> HostNetwork {
    HostNetwork {
        networks: w.nets.clone(),
        ports: vec![
            port(
                "porta2",
                "neta",
                "tapa2",
                A2,
                &["10.1.0.12", "fd00:a::ff:fe0a:12"],
                &["sg1"],
            ),
            port("portb2", "netb", "tapb2", B2, &["10.1.0.22"], &[]),
        ],
        security_groups: vec![w.sg1.clone()],
        remote_hosts: vec![RemoteHost {
            underlay_ip: ip("192.0.2.1"),
            networks: vec![
                RemoteNetwork {
                    network_id: "neta".into(),
                    macs: vec![A1.into(), QR.into(), DHCPA.into()],
                },
                RemoteNetwork {
                    network_id: "netb".into(),
                    macs: vec![B1.into()],
                },
            ],
        }],
        routers: vec![],
        dhcp_servers: vec![DhcpServer {
            network_id: "netb".into(),
            port_id: "dhcpb".into(),
            mac: DHCPB.into(),
            addresses: vec![cidr("10.1.0.2/24")],
            hosts: vec![dhcp_host(B1, &["10.1.0.21"]), dhcp_host(B2, &["10.1.0.22"])],
            isolated_metadata: true,
        }],
        metadata: Some(w.metadata.clone()),
        external: None,
    }
}

/// A stand-in for the API's metadata service: answers the instance id when the signature is
/// right, 403 otherwise.
async fn metadata_upstream(secret: &'static str) -> SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let id = h("x-instance-id");
                        let good = !id.is_empty()
                            && h("x-instance-id-signature")
                                == nubo_netplane::metadata::sign(secret, &id)
                            && !h("x-forwarded-for").is_empty();
                        let body = if good {
                            format!("{id} {}", req.uri().path())
                        } else {
                            "bad signature".into()
                        };
                        let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                        if !good {
                            *r.status_mut() = hyper::StatusCode::FORBIDDEN;
                        }
                        Ok::<_, std::convert::Infallible>(r)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

fn assert_quiet(r: &Report, what: &str) {
    assert!(r.ok(), "{what}: errors {:#?}", r.errors);
    assert!(
        r.changes.is_empty(),
        "{what}: expected no change, got {:#?}",
        r.changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_overlay_dhcp_security_groups_routing_metadata_heal_and_remove() {
    if !root_and_tools() {
        return;
    }
    let mut lab = Lab {
        p: format!("np{}-", std::process::id() % 100000),
        namespaces: vec![],
        children: vec![],
        state_dirs: vec![],
        dir: tempfile::tempdir().unwrap(),
    };
    // Hosts and underlay.
    let hv1 = lab.add_ns("hv1");
    let hv2 = lab.add_ns("hv2");
    run(&[
        "ip", "-n", &hv1, "link", "add", "ul", "type", "veth", "peer", "name", "ul", "netns", &hv2,
    ]);
    run(&["ip", "-n", &hv1, "addr", "add", "192.0.2.1/24", "dev", "ul"]);
    run(&["ip", "-n", &hv2, "addr", "add", "192.0.2.2/24", "dev", "ul"]);
    run(&["ip", "-n", &hv1, "link", "set", "ul", "up"]);
    run(&["ip", "-n", &hv2, "link", "set", "ul", "up"]);
    // VMs (veths named as taps) and the outside world.
    let vma1 = lab.vm("vma1", &hv1, "tapa1", A1);
    let vmb1 = lab.vm("vmb1", &hv1, "tapb1", B1);
    let vma2 = lab.vm("vma2", &hv2, "tapa2", A2);
    let vmb2 = lab.vm("vmb2", &hv2, "tapb2", B2);
    let ext = lab.add_ns("ext");
    run(&[
        "ip", "-n", &hv1, "link", "add", "extup", "type", "veth", "peer", "name", "eth0", "netns",
        &ext,
    ]);
    run(&[
        "ip",
        "-n",
        &ext,
        "addr",
        "add",
        "203.0.113.1/24",
        "dev",
        "eth0",
    ]);
    run(&["ip", "-n", &ext, "link", "set", "eth0", "up"]);

    let upstream = metadata_upstream("s3cret").await;
    let world = World {
        nets: networks(),
        sg1: SecurityGroup {
            id: "sg1".into(),
            rules: vec![
                rule(Direction::Egress, Ethertype::IPv4, None, None, None, None),
                rule(Direction::Egress, Ethertype::IPv6, None, None, None, None),
                rule(
                    Direction::Ingress,
                    Ethertype::IPv4,
                    Some("icmp"),
                    None,
                    None,
                    Some("sg1"),
                ),
                rule(
                    Direction::Ingress,
                    Ethertype::IPv6,
                    Some("icmp"),
                    None,
                    None,
                    None,
                ),
                rule(
                    Direction::Ingress,
                    Ethertype::IPv4,
                    Some("tcp"),
                    Some((22, 22)),
                    Some("0.0.0.0/0"),
                    None,
                ),
            ],
            member_ips: ["10.1.0.11", "10.1.0.12", "10.1.0.13"]
                .iter()
                .map(|s| cidr(s))
                .collect(),
        },
        metadata: Metadata {
            url: format!("http://{upstream}"),
            secret: "s3cret".into(),
            instances: vec![
                MetadataInstance {
                    network_id: "neta".into(),
                    ip: ip("10.1.0.11"),
                    instance_id: "i-vma1".into(),
                    project_id: Some("p1".into()),
                },
                MetadataInstance {
                    network_id: "neta".into(),
                    ip: ip("10.1.0.12"),
                    instance_id: "i-vma2".into(),
                    project_id: Some("p1".into()),
                },
                MetadataInstance {
                    network_id: "netb".into(),
                    ip: ip("10.1.0.22"),
                    instance_id: "i-vmb2".into(),
                    project_id: Some("p2".into()),
                },
            ],
        },
    };
    let ext_net = Network {
        id: "ext".into(),
        segment: Segment::Flat {
            interface: Some("extup".into()),
        },
        mtu: 1500,
        subnets: vec![],
    };
    let prefix = lab.p.clone();
    let np = |host: &str, local: &str, n: u8, dir: &Path| {
        LinuxNetplane::new(Config {
            state_dir: dir.join(format!("state{n}")),
            local_ip: Some(ip(local)),
            underlay_interface: None,
            host_netns: Some(host.to_string()),
            namespace_prefix: format!("{prefix}{n}-"),
            ..Config::default()
        })
    };
    let np1 = np(&hv1, "192.0.2.1", 1, lab.dir.path());
    let np2 = np(&hv2, "192.0.2.2", 2, lab.dir.path());
    lab.state_dirs.push(np1.config().state_dir.clone());
    lab.state_dirs.push(np2.config().state_dir.clone());
    let mut d1 = host1(&world, &ext_net);
    let mut d2 = host2(&world);

    // First apply, then the same again: nothing to do.
    let t = Instant::now();
    let r1 = np1.apply(&d1).await.unwrap();
    let first1 = t.elapsed();
    assert!(r1.ok(), "host1 errors: {:#?}", r1.errors);
    assert_eq!(r1.ports_ready, vec!["porta1", "portb1", "portc1"]);
    let r2 = np2.apply(&d2).await.unwrap();
    assert!(r2.ok(), "host2 errors: {:#?}", r2.errors);
    eprintln!(
        "first apply: host1 {} changes in {:?} ({} commands), host2 {} changes in {} ms",
        r1.changes.len(),
        first1,
        r1.commands,
        r2.changes.len(),
        r2.duration_ms
    );
    let t = Instant::now();
    let again = np1.apply(&d1).await.unwrap();
    eprintln!(
        "no-op apply: host1 {:?} ({} commands)",
        t.elapsed(),
        again.commands
    );
    assert_quiet(&again, "second apply on host1");
    assert_quiet(&np2.apply(&d2).await.unwrap(), "second apply on host2");
    let tap = out_in(&hv1, "ip -d link show tapc1");
    assert!(
        tap.contains("tun") && tap.contains("master nbr-neta"),
        "{tap}"
    );

    // DHCP: the right address and MTU, on the server's host and across VXLAN.
    let script = lab.dir.path().join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    run(&["chmod", "755", script.to_str().unwrap()]);
    let udhcpc = format!(
        "busybox udhcpc -i eth0 -n -q -f -t 4 -T 1 -O staticroutes -s {}",
        script.display()
    );
    for (vm, want) in [
        (&vma1, "10.1.0.11"),
        (&vma2, "10.1.0.12"),
        (&vmb1, "10.1.0.21"),
        (&vmb2, "10.1.0.22"),
    ] {
        let lease = out_in(vm, &udhcpc);
        assert!(
            lease.contains(&format!("ip={want} mtu=1450")),
            "{vm}: {lease}"
        );
    }
    let lease = out_in(&vmb2, "ip route");
    assert!(
        lease.contains("169.254.169.254 via 10.1.0.2"),
        "isolated network gets the metadata route: {lease}"
    );

    // L2 over VXLAN, isolation between networks with the same CIDR.
    assert!(
        ok_in(&vma1, "busybox ping -c1 -W2 10.1.0.12"),
        "A1 -> A2 across hosts"
    );
    assert!(
        ok_in(&vmb1, "busybox ping -c1 -W2 10.1.0.22"),
        "B1 -> B2 across hosts"
    );
    assert!(
        !ok_in(&vma1, "busybox ping -c1 -W1 10.1.0.22"),
        "A1 must not reach B2"
    );
    assert!(
        !ok_in(&vma1, "busybox ping -c1 -W1 10.1.0.21"),
        "A1 must not reach B1"
    );

    // Security groups: tcp/22 open, tcp/8080 closed, ICMP only from the group.
    lab.spawn_in(
        &vma2,
        &[
            "python3",
            "-c",
            "import socket,time\nss=[]\nfor p in (22,8080):\n s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('0.0.0.0',p)); s.listen(); ss.append(s)\ntime.sleep(120)",
        ],
    );
    assert!(
        eventually(5, || ok_in(
            &vma1,
            "timeout 2 bash -c '</dev/tcp/10.1.0.12/22'"
        )),
        "tcp/22 allowed"
    );
    assert!(
        !ok_in(&vma1, "timeout 2 bash -c '</dev/tcp/10.1.0.12/8080'"),
        "tcp/8080 dropped"
    );
    assert!(
        ok_in(&vma2, "busybox ping -c1 -W2 10.1.0.11"),
        "egress + established replies"
    );

    // Routing: SNAT to the outside (which has no route back), floating IP DNAT to a VM on the
    // other host, the host's own address on the external bridge.
    assert!(
        ok_in(&vma1, "busybox ping -c1 -W2 203.0.113.1"),
        "A1 -> outside through SNAT"
    );
    assert!(
        !ok_in(&vmb1, "busybox ping -c1 -W1 203.0.113.1"),
        "B has no router"
    );
    assert!(
        ok_in(&ext, "timeout 3 bash -c '</dev/tcp/203.0.113.11/22'"),
        "outside -> floating IP tcp/22"
    );
    assert!(
        !ok_in(&ext, "busybox ping -c1 -W1 203.0.113.11"),
        "ICMP from outside: not in the group"
    );
    assert!(
        ok_in(&hv1, "busybox ping -c1 -W2 203.0.113.10"),
        "host reaches the router's gateway"
    );
    let routes = out_in(&format!("{}1-router-r1", lab.p), "ip route");
    assert!(
        routes.contains("192.0.2.0/24 via 203.0.113.254"),
        "{routes}"
    );
    assert!(
        ok_in(&vma1, "busybox ping -c1 -W2 192.0.2.2"),
        "extra route to the host, NAT out of the host's uplink"
    );

    // Anti-spoofing.
    run(&[
        "ip",
        "-n",
        &vma2,
        "addr",
        "add",
        "10.1.0.99/32",
        "dev",
        "eth0",
    ]);
    assert!(
        !ok_in(&vma2, "busybox ping -c1 -W1 -I 10.1.0.99 10.1.0.11"),
        "spoofed source dropped"
    );
    // ... until it is an allowed address pair (and, as Neutron does, a member address of the
    // port's groups, which lets it through the peer's remote-group rule).
    d2.ports[0].allowed_address_pairs.push(AddressPair {
        ip_address: cidr("10.1.0.99"),
        mac_address: None,
    });
    for d in [&mut d1, &mut d2] {
        d.security_groups[0].member_ips.push(cidr("10.1.0.99"));
    }
    let r1 = np1.apply(&d1).await.unwrap();
    assert_eq!(
        r1.changes,
        vec!["update nft set inet nubo-sg r4-sg1"],
        "{:#?}",
        r1.errors
    );
    let r2 = np2.apply(&d2).await.unwrap();
    assert!(
        r2.ok()
            && r2
                .changes
                .contains(&"update nft chain bridge nubo-sg f-porta2".to_string()),
        "{r2:#?}"
    );
    assert!(
        eventually(3, || ok_in(
            &vma2,
            "busybox ping -c1 -W1 -I 10.1.0.99 10.1.0.11"
        )),
        "allowed address pair passes"
    );
    let ct = out_in(&hv2, "cat /proc/net/nf_conntrack");
    assert!(
        ct.contains("src=10.1.0.99") && ct.contains("zone="),
        "conntrack zone per network: {ct}"
    );
    run(&[
        "ip",
        "-n",
        &vma2,
        "addr",
        "del",
        "10.1.0.99/32",
        "dev",
        "eth0",
    ]);

    // Metadata: through the router (both hosts) and the isolated network's DHCP namespace.
    for (vm, id) in [(&vma1, "i-vma1"), (&vma2, "i-vma2"), (&vmb2, "i-vmb2")] {
        let got = out_in(
            vm,
            "curl -s -m5 http://169.254.169.254/latest/meta-data/instance-id",
        );
        assert_eq!(got, format!("{id} /latest/meta-data/instance-id"), "{vm}");
    }

    // IPv6: SLAAC with the router's RA, then ping over the overlay.
    assert!(
        eventually(20, || out_in(&vma2, "ip -6 addr show eth0")
            .contains("fd00:a::ff:fe0a:12/64")),
        "SLAAC address: {}",
        out_in(&vma2, "ip -6 addr show eth0")
    );
    assert!(eventually(20, || out_in(&vma1, "ip -6 addr show eth0")
        .contains("fd00:a::ff:fe0a:11/64")));
    assert!(
        out_in(&vma2, "cat /proc/sys/net/ipv6/conf/eth0/mtu").trim() == "1450",
        "RA MTU"
    );
    assert!(
        eventually(5, || ok_in(
            &vma1,
            "busybox ping -6 -c1 -W2 fd00:a::ff:fe0a:12"
        )),
        "IPv6 A1 -> A2"
    );

    // Incremental: one rule more changes one chain; a membership change changes one set.
    d2.security_groups[0].rules.push(rule(
        Direction::Ingress,
        Ethertype::IPv4,
        Some("icmp"),
        None,
        Some("0.0.0.0/0"),
        None,
    ));
    let r = np2.apply(&d2).await.unwrap();
    assert_eq!(
        r.changes,
        vec!["update nft chain inet nubo-sg i-porta2"],
        "{:#?}",
        r.errors
    );
    assert!(
        ok_in(&ext, "busybox ping -c1 -W2 203.0.113.11"),
        "ICMP from outside now allowed"
    );
    d2.security_groups[0].member_ips.push(cidr("10.1.0.50"));
    let r = np2.apply(&d2).await.unwrap();
    assert_eq!(r.changes, vec!["update nft set inet nubo-sg r4-sg1"]);
    // One port added (VM B1's port gets security groups).
    d1.ports[1].port_security_enabled = true;
    d1.ports[1].security_groups = vec!["sg1".into()];
    let t = Instant::now();
    let r = np1.apply(&d1).await.unwrap();
    eprintln!(
        "one port added to the security groups: {:?}, changes {:?}",
        t.elapsed(),
        r.changes
    );
    assert!(r.ok() && r.changes.len() >= 4, "{r:#?}");

    // Healing: delete a bridge, a rule, a namespace and dnsmasq by hand.
    run(&["ip", "-n", &hv1, "link", "del", "nbr-neta"]);
    run(&[
        "ip", "netns", "exec", &hv2, "nft", "flush", "chain", "inet", "nubo-sg", "i-porta2",
    ]);
    run(&["ip", "netns", "del", &format!("{}2-dhcp-netb", lab.p)]);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(np1.config().state_dir.join("state.json")).unwrap())
            .unwrap();
    let pid = st["processes"]["dnsmasq:neta"]["pid"].as_u64().unwrap() as i32;
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(100));
    let h1 = np1.apply(&d1).await.unwrap();
    let h2 = np2.apply(&d2).await.unwrap();
    assert!(h1.ok() && h2.ok(), "{h1:#?} {h2:#?}");
    let all: Vec<String> = h1
        .changes
        .iter()
        .chain(h2.changes.iter())
        .cloned()
        .collect();
    for want in [
        "create bridge nbr-neta",
        "update nft chain inet nubo-sg i-porta2",
        "start (was gone) dnsmasq:neta",
        "restart dnsmasq:netb",
    ] {
        assert!(
            all.iter().any(|c| c.starts_with(want)),
            "missing {want:?} in {all:#?}"
        );
    }
    assert_quiet(&np1.apply(&d1).await.unwrap(), "host1 after healing");
    assert_quiet(&np2.apply(&d2).await.unwrap(), "host2 after healing");
    assert!(
        eventually(5, || ok_in(&vma1, "busybox ping -c1 -W2 10.1.0.12")),
        "healed overlay"
    );
    assert!(
        !ok_in(&vma1, "timeout 2 bash -c '</dev/tcp/10.1.0.12/8080'"),
        "healed filter"
    );
    assert!(ok_in(&vma1, &udhcpc), "healed DHCP");
    let got = out_in(
        &vmb2,
        "curl -s -m5 http://169.254.169.254/latest/meta-data/instance-id",
    );
    assert!(got.starts_with("i-vmb2"), "healed isolated metadata: {got}");

    // A restarted agent (a new netplane on the same state dir) adopts everything.
    drop(np1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let np1b = np(&hv1, "192.0.2.1", 1, lab.dir.path());
    let r = np1b.apply(&d1).await.unwrap();
    // The metadata listeners lived in the old object: only they are made again.
    assert!(
        r.changes
            .iter()
            .all(|c| c.starts_with("start metadata proxy")),
        "{:#?}",
        r.changes
    );

    // Removal leaves nothing.
    let pids: Vec<i32> = ["1", "2"]
        .iter()
        .filter_map(|n| std::fs::read(lab.dir.path().join(format!("state{n}/state.json"))).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .flat_map(|v| {
            v["processes"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|r| r["pid"].as_u64())
                        .map(|p| p as i32)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    assert!(pids.len() >= 3, "dnsmasq x2 + radvd: {pids:?}");
    let r = np1b.apply(&HostNetwork::default()).await.unwrap();
    assert!(r.ok(), "{r:#?}");
    let r = np2.apply(&HostNetwork::default()).await.unwrap();
    assert!(r.ok(), "{r:#?}");
    for (n, o) in [
        (1, np1b.observe().await.unwrap()),
        (2, np2.observe().await.unwrap()),
    ] {
        assert!(o.is_empty(), "host{n} still has {o:#?}");
    }
    for pid in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false);
        assert!(!alive, "process {pid} still runs");
    }
    let left = out_in(
        &hv1,
        "ip -br link; nft list tables; bridge fdb show | grep dst",
    );
    assert!(
        !left.contains("nbr-")
            && !left.contains("nubo")
            && !left.contains("tapc1")
            && !left.contains("dst"),
        "{left}"
    );
    let list = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !list.contains(&format!("{}1-", lab.p)) && !list.contains(&format!("{}2-", lab.p)),
        "{list}"
    );
}

#[tokio::test]
async fn without_root_apply_fails_at_once_with_one_clear_line() {
    if is_root() {
        // The fake checks the same contract; the real one is checked when not root.
        let f = FakeNetplane::new();
        f.deny_root(true);
        let e = f.apply(&HostNetwork::default()).await.unwrap_err();
        assert_eq!(e, Error::NotRoot);
        eprintln!(
            "SKIP (partly): running as root, so the real netplane's refusal is not exercised"
        );
        return;
    }
    let np = LinuxNetplane::new(Config::default());
    let e = np.apply(&HostNetwork::default()).await.unwrap_err();
    assert_eq!(e, Error::NotRoot);
    let msg = e.to_string();
    assert!(msg.contains("needs root") && !msg.contains('\n'), "{msg}");
}
