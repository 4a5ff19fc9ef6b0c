//! Root-only: two agent "hosts" with the real data plane, talking over VXLAN.
//!
//! The control plane is the in-process fleet (Networking, Compute, the internal agent API and
//! the metadata service on a loopback port). Each host is a network namespace with its own
//! underlay address (a veth pair, 192.0.2.1 <-> 192.0.2.2); each runs a real [`Agent`] whose
//! [`NetplaneHost`] drives a [`LinuxNetplane`] inside that namespace. `h1` is the network host
//! (router1, DHCP, metadata proxy); `h2` is a compute host.
//!
//! ```text
//!   vm1                                       vm2
//!     | tap<port1>                              | tap<port2>
//!   [h1: nbr-private nvx-private, router1,    [h2: nbr-private nvx-private]
//!        DHCP, metadata proxy]  === VXLAN 192.0.2.1 <-> 192.0.2.2 ===
//! ```
//!
//! Two tests, each with its own namespaces (prefixes `dph<pid>-` and `dpq<pid>-`):
//!
//! * `two_agent_hosts_talk_over_vxlan` (fake hypervisor): the "VMs" are namespaces on veth pairs
//!   named as the ports' taps, made before the servers are created so the netplane plugs them
//!   instead of making taps. It proves: both servers go ACTIVE through the netplane's taps and
//!   their ports are reported ACTIVE; DHCP from h1 reaches vm2 on h2 (MTU 1450); vm1 and vm2
//!   ping each other; vm2 reads its own metadata through the router on h1 (signed instance
//!   id); h2's agent restarted after its bridge was deleted by hand heals it; deleting the
//!   servers and ports removes h2's bridge and VXLAN device and both taps.
//! * `two_qemu_vms_on_two_hosts_talk`: real guests (QEMU under TCG, the `tiny` image on a
//!   file-backed block store). Each agent's QEMU driver runs QEMU inside its host's namespace
//!   ([`QemuConfig::netns`]), where the netplane made the tap. It proves: both servers go
//!   ACTIVE with their QEMU in the right namespace and no stray tap in the root one; each guest
//!   prints (serial console) its DHCP lease with the port's address and MTU 1450 (vm2's across
//!   VXLAN) and the SSH key and instance id it got from the metadata service through the router
//!   on h1; over SSH into vm1 from h1's DHCP namespace, `ping -c 3 <vm2>` across VXLAN, and
//!   back from vm2; deleting the servers stops both QEMUs and removes the taps and h2's bridge.
//!   Takes about 12 s on an idle 2-core machine (the guests boot in parallel in ~9 s).
//!
//! Without root, dnsmasq, radvd or busybox (and, for the second, qemu-system-x86_64, qemu-img,
//! ssh or tools/guest-image/out/tiny.raw) a test prints SKIP and passes. Whatever a failed run
//! leaves (QEMUs, daemons, namespaces, files) goes when its `Lab` is dropped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nubo_agent::netplane::{NetplaneDriver, NetplaneHost, NetplaneSettings};
use nubo_agent::testing::{Fleet, FleetSpec, ADMIN_TOKEN, PROJECT};
use nubo_agent::{Agent, AgentSettings, FakeHost, HostPlumbing, HttpControlPlane, RealHost};
use nubo_hypervisor::{Accel, FakeHypervisor, HostInfo, Hypervisor, QemuConfig, QemuHypervisor};
use nubo_netplane::{HostNetwork, LinuxNetplane, Netplane};
use serde_json::{json, Value};
use tokio::sync::watch;

fn root_and_tools() -> bool {
    if !nubo_netplane::is_root() {
        eprintln!("SKIP: the two-host data plane test needs root (namespaces, bridges, nftables)");
        return false;
    }
    for (tool, hint) in [
        ("dnsmasq", "dnsmasq-base"),
        ("radvd", "radvd"),
        ("busybox", "busybox"),
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

fn sh_in(ns: &str, cmd: &str) -> (bool, String) {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .expect("spawn");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip -4 addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    [ -n "$mtu" ] && ip link set $interface mtu $mtu
    for r in $router; do ip route replace default via $r dev $interface; done
    echo "LEASE ip=$ip mtu=$mtu router=$router"
    ;;
esac
"#;

/// Namespaces, state dirs and daemons of this test; removed on drop, even after a failure.
struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn add_ns(&self, name: &str) -> String {
        let n = self.ns(name);
        if Path::new(&format!("/run/netns/{n}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &n]).status();
        }
        run(&["ip", "netns", "add", &n]);
        run(&["ip", "-n", &n, "link", "set", "lo", "up"]);
        n
    }

    /// The two hosts `h1` and `h2`, on an underlay veth pair 192.0.2.1 <-> 192.0.2.2.
    fn hosts(&self) {
        let h1 = self.add_ns("h1");
        let h2 = self.add_ns("h2");
        run(&[
            "ip", "-n", &h1, "link", "add", "ul", "type", "veth", "peer", "name", "ul", "netns",
            &h2,
        ]);
        run(&["ip", "-n", &h1, "addr", "add", "192.0.2.1/24", "dev", "ul"]);
        run(&["ip", "-n", &h2, "addr", "add", "192.0.2.2/24", "dev", "ul"]);
        run(&["ip", "-n", &h1, "link", "set", "ul", "up"]);
        run(&["ip", "-n", &h2, "link", "set", "ul", "up"]);
    }

    /// A stand-in VM: namespace `name` whose eth0 (with `mac`) is the peer of `tap` in `host`.
    fn vm(&self, name: &str, host: &str, tap: &str, mac: &str) -> String {
        let n = self.add_ns(name);
        run(&[
            "ip", "-n", host, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns",
            &n,
        ]);
        run(&["ip", "-n", &n, "link", "set", "eth0", "address", mac, "up"]);
        n
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // QEMUs a failed run left behind (`<host>-vms/<vm>/qemu.pid`): first, so that the
        // namespaces they hold go when deleted.
        for host in ["h1", "h2"] {
            let vms = self.dir.path().join(format!("{host}-vms"));
            for entry in std::fs::read_dir(vms).into_iter().flatten().flatten() {
                let Ok(pid) = std::fs::read_to_string(entry.path().join("qemu.pid")) else {
                    continue;
                };
                // Only if the pid is still this VM's QEMU (its command line names the VM dir).
                let cmdline =
                    std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
                let dir = entry.path().display().to_string();
                if !String::from_utf8_lossy(&cmdline).contains(&dir) {
                    continue;
                }
                let _ = Command::new("kill")
                    .args(["-9", pid.trim()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // Daemons a failed run left behind, by their recorded PID.
        for host in ["h1", "h2"] {
            let Ok(bytes) = std::fs::read(self.dir.path().join(host).join("state.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            for rec in v["processes"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                if let Some(pid) = rec["pid"].as_u64() {
                    let _ = Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
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
            if name.starts_with(&self.prefix) {
                let _ = Command::new("ip")
                    .args(["netns", "del", name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

struct Node {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    np: LinuxNetplane,
}

/// A host with the fake hypervisor (VMs are the lab's stand-ins).
async fn start_node(fleet: &Fleet, lab: &Lab, name: &str, underlay: &str) -> Node {
    let hv = Arc::new(FakeHypervisor::with_host(HostInfo {
        hostname: name.into(),
        arch: "x86_64".into(),
        vcpus: 8,
        memory_mib: 16384,
        disk_gib: 100,
        disk_free_gib: 100,
        hypervisor_type: "fake".into(),
        hypervisor_version: 1000,
        accel: Accel::Tcg,
    }));
    start_node_with(
        fleet,
        lab,
        name,
        underlay,
        hv,
        Arc::new(FakeHost::default()),
    )
    .await
}

/// A host `name`: a [`LinuxNetplane`] inside the lab's namespace `name` with the underlay
/// address `underlay`, and an agent on `hv` (config drives through `files`).
async fn start_node_with(
    fleet: &Fleet,
    lab: &Lab,
    name: &str,
    underlay: &str,
    hv: Arc<dyn Hypervisor>,
    files: Arc<dyn HostPlumbing>,
) -> Node {
    let np = LinuxNetplane::new(nubo_netplane::Config {
        state_dir: lab.dir.path().join(name),
        local_ip: Some(underlay.parse().unwrap()),
        host_netns: Some(lab.ns(name)),
        namespace_prefix: format!("{}{name}-", lab.prefix),
        ..nubo_netplane::Config::default()
    });
    let control =
        Arc::new(HttpControlPlane::new(&format!("http://{}", fleet.addr), "fleet-secret").unwrap());
    let mut s = NetplaneSettings::new(name);
    s.network_host = "h1".into();
    s.metadata_url = format!("http://{}/metadata", fleet.addr);
    s.poll = Duration::from_millis(300);
    s.resync = Duration::from_secs(3);
    s.tap_timeout = Duration::from_secs(20);
    let driver = NetplaneDriver::new(s, Arc::new(np.clone()), control.clone());
    let plumbing = Arc::new(NetplaneHost::new(driver, files));
    let mut settings = AgentSettings::new(name, lab.dir.path().join(format!("{name}-agent")));
    settings.host_ip = underlay.into();
    settings.long_poll = Duration::from_secs(5);
    settings.stop_timeout = Duration::from_secs(10);
    let agent = Agent::new(settings, hv, fleet.blockstore.clone(), plumbing, control);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(agent.run(rx));
    Node { stop, task, np }
}

impl Node {
    async fn stop(self) -> LinuxNetplane {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.np
    }
}

async fn port_status(fleet: &Fleet, id: &str) -> String {
    fleet
        .network
        .port_state(id)
        .await
        .unwrap()
        .map(|p| p.status)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_hosts_talk_over_vxlan() {
    if !root_and_tools() {
        return;
    }
    let lab = Lab {
        prefix: format!("dph{}-", std::process::id() % 100_000),
        dir: tempfile::tempdir().unwrap(),
    };
    lab.hosts();
    let script = lab.dir.path().join("udhcpc.sh");
    std::fs::write(&script, UDHCPC_SCRIPT).unwrap();
    run(&["chmod", "755", script.to_str().unwrap()]);
    let udhcpc = format!(
        "busybox udhcpc -i eth0 -n -q -f -t 6 -T 1 -s {}",
        script.display()
    );

    let fleet = Fleet::start(FleetSpec {
        hosts: 0,
        ..FleetSpec::default()
    })
    .await;
    let node1 = start_node(&fleet, &lab, "h1", "192.0.2.1").await;
    let mut node2 = start_node(&fleet, &lab, "h2", "192.0.2.2").await;

    // Ports first (their MACs make the stand-in VMs), then servers on them, one per host.
    let ctx = nubo_network::service::Ctx::system(PROJECT);
    let mut vms = Vec::new();
    for (i, host) in [(1, "h1"), (2, "h2")] {
        let body = json!({"network_id": fleet.private_network, "name": format!("vm{i}")});
        let port = fleet
            .network
            .create_ports(
                &ctx,
                nubo_network::input::CreateBody::One(body.as_object().unwrap().clone()),
            )
            .await
            .expect("port");
        let id = port["port"]["id"].as_str().unwrap().to_string();
        let mac = port["port"]["mac_address"].as_str().unwrap().to_string();
        let ip = port["port"]["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_string();
        let tap = nubo_netplane::snapshot::tap_name(&id);
        let vm = lab.vm(&format!("vm{i}"), &lab.ns(host), &tap, &mac);
        let (status, v) = fleet
            .call(
                "POST",
                "/compute/v2.1/servers",
                ADMIN_TOKEN,
                Some(
                    json!({"server": {"name": format!("vm{i}"), "imageRef": fleet.image_id,
                    "flavorRef": "1", "networks": [{"port": id}],
                    "availability_zone": format!("nova:{host}")}}),
                ),
            )
            .await;
        assert_eq!(status, 202, "{v}");
        let server = v["server"]["id"].as_str().unwrap().to_string();
        vms.push((vm, id, ip, server, tap));
    }
    for (_, _, _, server, _) in &vms {
        let status = fleet.wait_status(server, &["ACTIVE", "ERROR"]).await;
        assert_eq!(status, "ACTIVE", "server {server}");
    }
    for (_, port, _, _, _) in &vms {
        let mut status = String::new();
        for _ in 0..50 {
            status = port_status(&fleet, port).await;
            if status == "ACTIVE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, "ACTIVE", "port {port}");
    }
    let (vm1, _, ip1, _, _) = &vms[0];
    let (vm2, _, ip2, server2, _) = &vms[1];

    // DHCP from h1's dnsmasq, on h1 and across VXLAN on h2.
    for (vm, ip) in [(vm1, ip1), (vm2, ip2)] {
        let (_, lease) = sh_in(vm, &udhcpc);
        assert!(
            lease.contains(&format!("LEASE ip={ip} mtu=1450")),
            "{vm}: {lease}"
        );
    }
    assert!(
        eventually(180, || sh_in(vm1, &format!("busybox ping -c1 -W1 {ip2}")).0).await,
        "vm1 -> vm2 over VXLAN"
    );
    assert!(
        sh_in(vm2, &format!("busybox ping -c1 -W1 {ip1}")).0,
        "vm2 -> vm1 over VXLAN"
    );
    // Metadata through the router on h1, signed for vm2's server.
    let (ok, meta) = sh_in(
        vm2,
        "timeout 5 busybox wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json",
    );
    assert!(ok && meta.contains(server2.as_str()), "{meta}");

    // h2's agent restarts after its bridge was deleted by hand: the new one heals it.
    let np2 = node2.stop().await;
    drop(np2);
    let bridge = format!(
        "nbr-{}",
        fleet.private_network.chars().take(11).collect::<String>()
    );
    run(&["ip", "-n", &lab.ns("h2"), "link", "del", &bridge]);
    assert!(!sh_in(vm2, &format!("busybox ping -c1 -W1 {ip1}")).0);
    node2 = start_node(&fleet, &lab, "h2", "192.0.2.2").await;
    assert!(
        eventually(120, || sh_in(vm2, &format!("busybox ping -c1 -W1 {ip1}")).0).await,
        "h2 healed after its agent's restart"
    );

    // Deleting the servers and ports removes h2's network and both taps.
    for (_, port, _, server, _) in &vms {
        let (status, _) = fleet
            .call(
                "DELETE",
                &format!("/compute/v2.1/servers/{server}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        assert_eq!(status, 204);
        assert_eq!(fleet.wait_status(server, &["GONE"]).await, "GONE");
        fleet.network.delete_port(&ctx, port).await.expect("port");
    }
    let h2ns = lab.ns("h2");
    let h1ns = lab.ns("h1");
    let gone = eventually(120, || {
        let (_, links) = sh_in(&h2ns, "ip -br link");
        let (_, links1) = sh_in(&h1ns, "ip -br link");
        !links.contains("nbr-")
            && !links.contains("nvx-")
            && vms
                .iter()
                .all(|(_, _, _, _, tap)| !links.contains(tap) && !links1.contains(tap))
    })
    .await;
    assert!(
        gone,
        "h2: {} h1: {}",
        sh_in(&h2ns, "ip -br link").1,
        sh_in(&h1ns, "ip -br link").1
    );

    // Tear down: agents stop, both netplanes remove what they made.
    for np in [node1.stop().await, node2.stop().await] {
        let report = np.apply(&HostNetwork::default()).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(np.observe().await.unwrap().is_empty());
    }
    fleet.stop().await;
}

/// The tiny guest image, or why this machine cannot boot it.
fn qemu_and_image() -> Option<std::path::PathBuf> {
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/guest-image/out/tiny.raw");
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !qemu {
        eprintln!("SKIP: qemu-system-x86_64 is not installed (apt-get install -y qemu-system-x86)");
        return None;
    }
    if !image.exists() {
        eprintln!(
            "SKIP: {} is missing (build it: tools/guest-image/build.sh)",
            image.display()
        );
        return None;
    }
    for tool in ["ssh", "ssh-keygen", "qemu-img"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            eprintln!("SKIP: {tool} is not installed");
            return None;
        }
    }
    Some(image)
}

/// The `nubo-guest: <key>...` marker lines of a console log (`\r` stripped).
fn markers(console: &Path, key: &str) -> Vec<String> {
    let text = std::fs::read(console).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| l.strip_prefix("nubo-guest: "))
        .filter(|l| l.starts_with(key))
        .map(str::to_string)
        .collect()
}

fn inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Real QEMU guests (TCG, the tiny image) on both hosts: each agent's QEMU driver runs QEMU
/// inside its host's namespace, where that host's netplane made the tap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_qemu_vms_on_two_hosts_talk() {
    if !root_and_tools() {
        return;
    }
    let Some(image) = qemu_and_image() else {
        return;
    };
    let started = Instant::now();
    let lab = Lab {
        prefix: format!("dpq{}-", std::process::id() % 100_000),
        dir: tempfile::tempdir().unwrap(),
    };
    lab.hosts();
    let key = lab.dir.path().join("id_ed25519");
    run(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        key.to_str().unwrap(),
    ]);
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    // The control plane on file-backed disks QEMU can open, with the tiny image.
    let store = nubo_blockstore::LocalStore::open(lab.dir.path().join("blockstore")).unwrap();
    let fleet = Fleet::start_on(
        FleetSpec {
            hosts: 0,
            ..FleetSpec::default()
        },
        Some(Arc::new(store)),
        std::fs::read(&image).unwrap(),
    )
    .await;
    let mut nodes = Vec::new();
    let mut runtimes = Vec::new();
    for (name, underlay) in [("h1", "192.0.2.1"), ("h2", "192.0.2.2")] {
        let runtime = lab.dir.path().join(format!("{name}-vms"));
        let mut config = QemuConfig::new(&runtime);
        config.netns = Some(lab.ns(name));
        let hv = QemuHypervisor::open(config).await.expect("QEMU driver");
        nodes.push(
            start_node_with(
                &fleet,
                &lab,
                name,
                underlay,
                Arc::new(hv),
                Arc::new(RealHost),
            )
            .await,
        );
        runtimes.push(runtime);
    }

    // A key for the guests, and a group that lets SSH in beside `default` (vm1 <-> vm2).
    let (status, v) = fleet
        .call(
            "POST",
            "/compute/v2.1/os-keypairs",
            ADMIN_TOKEN,
            Some(json!({"keypair": {"name": "lab", "public_key": pubkey.trim()}})),
        )
        .await;
    assert!(status == 200 || status == 201, "keypair: {status} {v}");
    let ctx = nubo_network::service::Ctx::system(PROJECT);
    let one = |v: Value| nubo_network::input::CreateBody::One(v.as_object().unwrap().clone());
    let sg = fleet
        .network
        .create_security_groups(&ctx, one(json!({"name": "ssh"})))
        .await
        .expect("security group");
    let sg_id = sg["security_group"]["id"].as_str().unwrap().to_string();
    fleet
        .network
        .create_security_group_rules(
            &ctx,
            one(json!({"security_group_id": sg_id, "direction": "ingress",
                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})),
        )
        .await
        .expect("rule");

    // One server per host, both at once.
    let mut servers = Vec::new();
    for (i, host) in [(1, "h1"), (2, "h2")] {
        let (status, v) = fleet
            .call(
                "POST",
                "/compute/v2.1/servers",
                ADMIN_TOKEN,
                Some(
                    json!({"server": {"name": format!("vm{i}"), "imageRef": fleet.image_id,
                    "flavorRef": "1", "key_name": "lab",
                    "security_groups": [{"name": "default"}, {"name": "ssh"}],
                    "networks": [{"uuid": fleet.private_network}],
                    "availability_zone": format!("nova:{host}")}}),
                ),
            )
            .await;
        assert_eq!(status, 202, "{v}");
        servers.push(v["server"]["id"].as_str().unwrap().to_string());
    }
    for server in &servers {
        let status = fleet.wait_status(server, &["ACTIVE", "ERROR"]).await;
        assert_eq!(status, "ACTIVE", "server {server}");
    }
    let mut vms = Vec::new(); // (server, port, ip, tap, console)
    for (server, runtime) in servers.iter().zip(&runtimes) {
        let ports = fleet.network.ports_of_device(server).await.unwrap();
        assert_eq!(ports.len(), 1, "{ports:?}");
        let ip = ports[0]
            .fixed_ips
            .iter()
            .find(|f| !f.ip_address.contains(':'))
            .expect("an IPv4 address")
            .ip_address
            .clone();
        let tap = nubo_netplane::snapshot::tap_name(&ports[0].id);
        let console = runtime.join(server).join("console.log");
        vms.push((server.clone(), ports[0].id.clone(), ip, tap, console));
    }
    println!(
        "both servers ACTIVE after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each QEMU runs in its host's namespace, on the tap the netplane made there; no tap of
    // that name in the root namespace.
    for ((server, port, _, tap, _), (host, runtime)) in
        vms.iter().zip(["h1", "h2"].iter().zip(&runtimes))
    {
        let pid = std::fs::read_to_string(runtime.join(server).join("qemu.pid")).unwrap();
        let want = inode(&format!("/run/netns/{}", lab.ns(host)));
        assert!(want.is_some() && want != inode("/proc/self/ns/net"));
        assert_eq!(
            inode(&format!("/proc/{}/ns/net", pid.trim())),
            want,
            "QEMU of {server} runs in {host}'s namespace"
        );
        let (ok, link) = sh_in(&lab.ns(host), &format!("ip -br link show {tap}"));
        assert!(ok && link.contains("UP"), "{host}: {link}");
        assert!(
            !Path::new("/sys/class/net").join(tap).exists(),
            "stray {tap}"
        );
        let mut status = String::new();
        for _ in 0..100 {
            status = port_status(&fleet, port).await;
            if status == "ACTIVE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, "ACTIVE", "port {port}");
    }

    // Both guests boot: the DHCP lease from h1's dnsmasq (across VXLAN for vm2), MTU 1450, the
    // SSH key and instance id from the metadata service through the router on h1, sshd up.
    for (server, _, ip, _, console) in &vms {
        let ready = eventually(600, || !markers(console, "ready ").is_empty()).await;
        let all = markers(console, "");
        assert!(ready, "{server} did not get ready: {all:#?}");
        let lease = markers(console, "ip=");
        assert!(
            lease
                .first()
                .is_some_and(|l| l.starts_with(&format!("ip={ip}/")) && l.contains(" mtu=1450 ")),
            "{server} (want {ip}, mtu 1450): {all:#?}"
        );
        assert!(
            markers(console, "ssh-keys=").contains(&format!("ssh-keys=1 uuid={server}")),
            "{server}: {all:#?}"
        );
        println!(
            "{server}: {} ({:.1} s)",
            lease[0],
            started.elapsed().as_secs_f64()
        );
    }

    // vm1 (on h1) pings vm2 (on h2) across VXLAN: over SSH from h1's DHCP namespace.
    let dhcp_ns = format!("{}h1-dhcp-{}", lab.prefix, fleet.private_network);
    let (ip1, ip2) = (vms[0].2.clone(), vms[1].2.clone());
    let ssh = |ip: &str, cmd: &str| {
        sh_in(
            &dhcp_ns,
            &format!(
                "timeout 60 ssh -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
                 -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR root@{ip} '{cmd}'",
                key.display()
            ),
        )
    };
    let mut out = String::new();
    let pinged = eventually(180, || {
        let (ok, text) = ssh(&ip1, &format!("ping -c 3 -W 2 {ip2}"));
        out = text;
        ok
    })
    .await;
    assert!(pinged, "vm1 -> vm2 over VXLAN: {out}");
    println!(
        "vm1 {ip1} (h1) -> vm2 {ip2} (h2): {}",
        out.lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_default()
    );
    let (ok, out) = ssh(&ip2, &format!("ping -c 1 -W 2 {ip1}"));
    assert!(ok, "vm2 -> vm1 over VXLAN: {out}");

    // Deleting the servers stops their QEMUs and removes both taps and h2's network.
    let mut pids = Vec::new();
    for ((server, _, _, _, _), runtime) in vms.iter().zip(&runtimes) {
        pids.push(
            std::fs::read_to_string(runtime.join(server).join("qemu.pid"))
                .unwrap()
                .trim()
                .to_string(),
        );
        let (status, _) = fleet
            .call(
                "DELETE",
                &format!("/compute/v2.1/servers/{server}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        assert_eq!(status, 204);
    }
    for (server, _, _, _, _) in &vms {
        assert_eq!(fleet.wait_status(server, &["GONE"]).await, "GONE");
    }
    let (h1ns, h2ns) = (lab.ns("h1"), lab.ns("h2"));
    let gone = eventually(120, || {
        let (_, links1) = sh_in(&h1ns, "ip -br link");
        let (_, links2) = sh_in(&h2ns, "ip -br link");
        let alive = pids.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z "))
        });
        !alive
            && !links2.contains("nbr-")
            && vms
                .iter()
                .all(|(_, _, _, tap, _)| !links1.contains(tap) && !links2.contains(tap))
    })
    .await;
    assert!(
        gone,
        "h1: {} h2: {}",
        sh_in(&h1ns, "ip -br link").1,
        sh_in(&h2ns, "ip -br link").1
    );

    for node in nodes {
        let np = node.stop().await;
        let report = np.apply(&HostNetwork::default()).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(np.observe().await.unwrap().is_empty());
    }
    fleet.stop().await;
    println!(
        "two QEMU guests on two hosts: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
