//! The real data plane: converges a Linux host to a [`HostNetwork`].
//!
//! One apply is a sequence of steps, each of which observes what exists (iproute2 / nft JSON,
//! /proc) and issues only the commands that close the gap; a failure in one object is reported
//! and the others still converge. The order:
//!
//! 1. security groups (host nft tables) first, so a tap is never plugged unfiltered;
//! 2. per network: bridge, VXLAN device (or flat uplink), FDB flood + per-MAC entries;
//! 3. taps (created persistent when missing) plugged into their bridge;
//! 4. routers: namespace, `qr-`/`qg-` veths, addresses, routes, nft table, radvd, metadata;
//! 5. DHCP: namespace, `ns-` veth, addresses, dnsmasq (files + SIGHUP, or restart), metadata;
//! 6. the external network's host side (addresses, IPv6 routes to tenant prefixes, NAT);
//! 7. garbage: our namespaces, devices, taps, processes and listeners no longer desired.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::metadata::{MetadataProxy, Scope};
use crate::model::{parse_mac, Cidr, HostNetwork, Network, Segment};
use crate::names::{self, Namespaces};
use crate::nft;
use crate::procs::Supervisor;
use crate::runner::{Ns, Runner};
use crate::state::{allocate, State};
use crate::{dhcp, router, sg, Netplane, Observed, ObservedLink, ObservedProcess, Report};

/// How the real netplane runs on this host.
#[derive(Debug, Clone)]
pub struct Config {
    /// State file, dnsmasq and radvd files (`/var/lib/nubo/netplane`).
    pub state_dir: PathBuf,
    /// This host's VXLAN endpoint address (the agent's registered host IP). Needed when any
    /// VXLAN network is desired.
    pub local_ip: Option<IpAddr>,
    /// The underlay device for VXLAN (`dev` of the VXLAN devices); `None` lets routing choose.
    pub underlay_interface: Option<String>,
    /// Run the host side inside this named namespace instead of the caller's (several "hosts"
    /// on one machine in tests).
    pub host_netns: Option<String>,
    /// Prefix of router and DHCP namespace names (`nubo-`).
    pub namespace_prefix: String,
    pub dnsmasq: String,
    pub radvd: String,
    /// The port the metadata proxy listens on in router namespaces (9697, as Neutron).
    pub metadata_port: u16,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            state_dir: PathBuf::from("/var/lib/nubo/netplane"),
            local_ip: None,
            underlay_interface: None,
            host_netns: None,
            namespace_prefix: "nubo-".into(),
            dnsmasq: "dnsmasq".into(),
            radvd: "radvd".into(),
            metadata_port: 9697,
        }
    }
}

/// The real netplane. Cheap to clone (shared inside); applies are serialised.
#[derive(Clone)]
pub struct LinuxNetplane {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    run: Runner,
    ns: Namespaces,
    sup: Supervisor,
    proxy: MetadataProxy,
    lock: Mutex<()>,
}

/// Is this process root? The data plane needs it (namespaces, bridges, nftables).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[derive(Debug, Clone, Default)]
struct Link {
    kind: String,
    master: Option<String>,
    mtu: u32,
    up: bool,
    mac: String,
    data: Value,
    /// IPv4/IPv6 addresses that are not link-local.
    addrs: BTreeSet<Cidr>,
}

fn links_of(json: &[Value]) -> BTreeMap<String, Link> {
    let mut out = BTreeMap::new();
    for l in json {
        let name = l["ifname"].as_str().unwrap_or_default().to_string();
        let flags: Vec<&str> = l["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut addrs = BTreeSet::new();
        for a in l["addr_info"].as_array().into_iter().flatten() {
            if a["scope"].as_str() == Some("link") || a["scope"].as_str() == Some("host") {
                continue;
            }
            if let (Some(ip), Some(p)) = (
                a["local"].as_str().and_then(|s| s.parse().ok()),
                a["prefixlen"].as_u64(),
            ) {
                if let Ok(c) = Cidr::new(ip, p as u8) {
                    addrs.insert(c);
                }
            }
        }
        out.insert(
            name,
            Link {
                kind: l["linkinfo"]["info_kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                master: l["master"].as_str().map(str::to_string),
                mtu: l["mtu"].as_u64().unwrap_or(0) as u32,
                up: flags.contains(&"UP"),
                mac: l["address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                data: l["linkinfo"]["info_data"].clone(),
                addrs,
            },
        );
    }
    out
}

/// Parses a route's `dst` (`default`, `10.0.0.0/24`, `10.0.0.5`).
fn route_dst(dst: &str, v4: bool) -> Option<Cidr> {
    if dst == "default" {
        let any: IpAddr = if v4 {
            "0.0.0.0".parse().ok()?
        } else {
            "::".parse().ok()?
        };
        return Cidr::new(any, 0).ok();
    }
    dst.parse().ok()
}

fn route_text(c: &Cidr) -> String {
    if c.prefix == 0 {
        "default".into()
    } else {
        c.network().to_string()
    }
}

/// Accumulates what one apply did.
struct Cx {
    report: Report,
    state: State,
    /// Networks whose bridge failed, ports whose tap failed, and whether the filters failed.
    bad_networks: BTreeSet<String>,
    bad_ports: BTreeSet<String>,
    filters_failed: bool,
}

impl Cx {
    fn change(&mut self, what: impl Into<String>) {
        let w = what.into();
        tracing::info!(change = %w, "netplane");
        self.report.changes.push(w);
    }

    fn fail(&mut self, what: &str, e: Error) {
        let msg = format!("{what}: {e}");
        tracing::warn!(error = %msg, "netplane");
        self.report.errors.push(msg);
    }
}

/// Desired devices inside a namespace: name -> (host peer, bridge, MAC, MTU, addresses).
struct NsPort {
    inner: String,
    host: String,
    bridge: String,
    mac: String,
    mtu: u32,
    addrs: BTreeSet<Cidr>,
}

impl LinuxNetplane {
    /// Makes the netplane. Nothing is touched until [`Netplane::apply`].
    pub fn new(config: Config) -> LinuxNetplane {
        LinuxNetplane {
            inner: Arc::new(Inner {
                run: Runner::new(config.host_netns.clone()),
                ns: Namespaces {
                    prefix: config.namespace_prefix.clone(),
                },
                config,
                sup: Supervisor::default(),
                proxy: MetadataProxy::default(),
                lock: Mutex::new(()),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The blocking apply (what [`Netplane::apply`] runs on a blocking thread). Must run inside
    /// a tokio runtime only for the metadata proxy: `rt` runs its listeners.
    pub fn apply_blocking(
        &self,
        desired: &HostNetwork,
        rt: &tokio::runtime::Handle,
    ) -> Result<Report> {
        self.inner.apply(desired, rt)
    }

    pub fn observe_blocking(&self) -> Result<Observed> {
        self.inner.observe()
    }
}

#[async_trait]
impl Netplane for LinuxNetplane {
    async fn apply(&self, desired: &HostNetwork) -> Result<Report> {
        if !is_root() {
            return Err(Error::NotRoot);
        }
        let rt = tokio::runtime::Handle::current();
        let me = self.clone();
        let desired = desired.clone();
        tokio::task::spawn_blocking(move || me.inner.apply(&desired, &rt))
            .await
            .map_err(|e| Error::Io(format!("apply task: {e}")))?
    }

    async fn observe(&self) -> Result<Observed> {
        if !is_root() {
            return Err(Error::NotRoot);
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.inner.observe())
            .await
            .map_err(|e| Error::Io(format!("observe task: {e}")))?
    }
}

impl Inner {
    fn apply(&self, d: &HostNetwork, rt: &tokio::runtime::Handle) -> Result<Report> {
        if !is_root() {
            return Err(Error::NotRoot);
        }
        d.validate()?;
        let _guard = self.lock.lock();
        let started = Instant::now();
        let cmds0 = self.run.commands.load(Ordering::Relaxed);
        if let Some(h) = &self.config.host_netns {
            if !Path::new(&format!("/run/netns/{h}")).exists() {
                return Err(Error::Invalid(format!("host namespace {h} does not exist")));
            }
        }
        std::fs::create_dir_all(&self.config.state_dir)
            .map_err(|e| Error::Io(format!("{}: {e}", self.config.state_dir.display())))?;
        let mut cx = Cx {
            report: Report::default(),
            state: State::load(&self.config.state_dir),
            bad_networks: BTreeSet::new(),
            bad_ports: BTreeSet::new(),
            filters_failed: false,
        };
        let ports: BTreeSet<String> = d
            .ports
            .iter()
            .filter(|p| p.port_security_enabled)
            .map(|p| p.id.clone())
            .collect();
        allocate(&mut cx.state.marks, &ports);
        let nets: BTreeSet<String> = d.ports.iter().map(|p| p.network_id.clone()).collect();
        allocate(&mut cx.state.zones, &nets);
        self.proxy.update(d);

        if let Err(e) = self.host_nft(&mut cx, d) {
            cx.filters_failed = true;
            cx.fail("security groups", e);
        }
        let links = match self.run.ip_json(Ns::Host, &["-d", "addr", "show"]) {
            Ok(j) => links_of(&j),
            Err(e) => return Err(e),
        };
        let namespaces = self.list_namespaces()?;
        self.networks(&mut cx, d, &links);
        self.taps(&mut cx, d, &links);
        for r in &d.routers {
            if let Err(e) = self.router(&mut cx, d, r, &links, &namespaces, rt) {
                cx.fail(&format!("router {}", r.id), e);
            }
        }
        for s in &d.dhcp_servers {
            if let Err(e) = self.dhcp(&mut cx, d, s, &links, &namespaces, rt) {
                cx.fail(&format!("DHCP server of network {}", s.network_id), e);
            }
        }
        if let Err(e) = self.external(&mut cx, d, &links) {
            cx.fail("external network", e);
        }
        if let Err(e) = self.garbage(&mut cx, d, &namespaces) {
            cx.fail("cleanup", e);
        }
        if let Err(e) = cx.state.save(&self.config.state_dir) {
            cx.fail("state file", e);
        }
        cx.report.ports_ready = d
            .ports
            .iter()
            .filter(|p| !cx.bad_ports.contains(&p.id) && !cx.bad_networks.contains(&p.network_id))
            .filter(|p| !(p.port_security_enabled && cx.filters_failed))
            .map(|p| p.id.clone())
            .collect();
        cx.report.duration_ms = started.elapsed().as_millis() as u64;
        cx.report.commands = self.run.commands.load(Ordering::Relaxed) - cmds0;
        Ok(cx.report)
    }

    fn list_namespaces(&self) -> Result<BTreeSet<String>> {
        let list = self.run.ip_json_global(&["netns", "list"])?;
        Ok(list
            .iter()
            .filter_map(|n| n["name"].as_str())
            .filter(|n| self.ns.parse(n).is_some())
            .map(str::to_string)
            .collect())
    }

    /// Step 1: the host's nft tables (security groups, external NAT).
    fn host_nft(&self, cx: &mut Cx, d: &HostNetwork) -> Result<()> {
        let mut tables = sg::tables(d, &cx.state.marks, &cx.state.zones);
        tables.extend(router::ext_table(d));
        let managed = [
            ("bridge", names::TABLE_SG),
            ("inet", names::TABLE_SG),
            ("inet", names::TABLE_EXT),
        ];
        self.nft_converge(cx, Ns::Host, "host|", &tables, &managed)
    }

    fn nft_converge(
        &self,
        cx: &mut Cx,
        ns: Ns,
        prefix: &str,
        tables: &[nft::Table],
        managed: &[(&'static str, &'static str)],
    ) -> Result<()> {
        let want: BTreeSet<(String, String)> = managed
            .iter()
            .map(|(f, n)| (f.to_string(), n.to_string()))
            .collect();
        let json = self.run.nft_json(ns, &["ruleset"])?;
        let observed = nft::observe(&json, &want);
        let plan = nft::plan(tables, managed, &observed, &cx.state.nft, prefix);
        if plan.script.is_empty() {
            return Ok(());
        }
        self.run.nft_apply(ns, &plan.script)?;
        for k in &plan.forget {
            cx.state.nft.remove(k);
        }
        for c in plan.changes {
            cx.change(c);
        }
        if !plan.touched.is_empty() {
            let json = self.run.nft_json(ns, &["ruleset"])?;
            let after = nft::observe(&json, &want);
            for t in tables {
                let tk = (t.family.to_string(), t.name.clone());
                if !plan.touched.contains(&tk) {
                    continue;
                }
                let Some(seen) = after.tables.get(&tk) else {
                    continue;
                };
                for o in &t.objects {
                    let word = match o.kind {
                        nft::Kind::Chain(_) => "chain",
                        nft::Kind::Set(_) => "set",
                        nft::Kind::Map(_) => "map",
                    };
                    let k = nft::key(t.family, &t.name, word, &o.name);
                    if let Some(fp) = seen.get(&k) {
                        cx.state.nft.insert(
                            format!("{prefix}{k}"),
                            nft::Record {
                                rendered: o.hash(),
                                observed: fp.clone(),
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn disable_ipv6(&self, ns: Ns, devs: &[&str]) -> Result<()> {
        let settings: Vec<String> = devs
            .iter()
            .map(|d| format!("net.ipv6.conf.{}.disable_ipv6=1", d.replace('.', "/")))
            .collect();
        self.run.sysctl(ns, &settings)
    }

    /// Is this network the external one whose bridge carries the host's own addresses?
    fn host_bridge(d: &HostNetwork, n: &Network) -> bool {
        d.external.as_ref().is_some_and(|x| x.network_id == n.id)
    }

    /// Step 2: bridges, VXLAN devices, FDB.
    fn networks(&self, cx: &mut Cx, d: &HostNetwork, links: &BTreeMap<String, Link>) {
        let fdb = match self.run.bridge_json(&["fdb", "show"]) {
            Ok(f) => f,
            Err(e) => {
                cx.fail("reading the FDB", e);
                Vec::new()
            }
        };
        for n in &d.networks {
            if let Err(e) = self.network(cx, d, n, links, &fdb) {
                cx.bad_networks.insert(n.id.clone());
                cx.fail(&format!("network {}", n.id), e);
            }
        }
    }

    fn network(
        &self,
        cx: &mut Cx,
        d: &HostNetwork,
        n: &Network,
        links: &BTreeMap<String, Link>,
        fdb: &[Value],
    ) -> Result<()> {
        let br = names::bridge(&n.id);
        let filtered = !Self::host_bridge(d, n);
        let nf = if filtered { "1" } else { "0" };
        let mtu = n.mtu.to_string();
        match links.get(&br) {
            None => {
                self.run.ip(
                    Ns::Host,
                    &[
                        "link",
                        "add",
                        &br,
                        "mtu",
                        &mtu,
                        "type",
                        "bridge",
                        "nf_call_iptables",
                        nf,
                        "nf_call_ip6tables",
                        nf,
                    ],
                )?;
                if filtered {
                    self.disable_ipv6(Ns::Host, &[&br])?;
                }
                self.run.ip(Ns::Host, &["link", "set", &br, "up"])?;
                cx.change(format!("create bridge {br}"));
            }
            Some(l) if l.kind != "bridge" => {
                return Err(Error::Invalid(format!(
                    "{br} exists and is not a bridge ({})",
                    l.kind
                )));
            }
            Some(l) => {
                let want_nf = filtered as u64;
                if l.data["nf_call_iptables"].as_u64() != Some(want_nf)
                    || l.data["nf_call_ip6tables"].as_u64() != Some(want_nf)
                {
                    self.run.ip(
                        Ns::Host,
                        &[
                            "link",
                            "set",
                            &br,
                            "type",
                            "bridge",
                            "nf_call_iptables",
                            nf,
                            "nf_call_ip6tables",
                            nf,
                        ],
                    )?;
                    cx.change(format!("set netfilter calls on {br}"));
                }
                if l.mtu != n.mtu || !l.up {
                    self.run
                        .ip(Ns::Host, &["link", "set", &br, "mtu", &mtu, "up"])?;
                    cx.change(format!("set {br} mtu {mtu} up"));
                }
            }
        }
        match &n.segment {
            Segment::Vxlan { vni } => {
                let vx = names::vxlan(&n.id);
                let local = self.config.local_ip.ok_or_else(|| {
                    Error::Invalid(
                        "VXLAN needs Config::local_ip (this host's underlay address)".into(),
                    )
                })?;
                let ok = links.get(&vx).is_some_and(|l| {
                    l.kind == "vxlan"
                        && l.data["id"].as_u64() == Some(*vni as u64)
                        && l.data["local"].as_str().or(l.data["local6"].as_str())
                            == Some(local.to_string().as_str())
                        && l.data["port"].as_u64() == Some(4789)
                        && l.data["learning"].as_bool() == Some(false)
                });
                if !ok {
                    if links.contains_key(&vx) {
                        self.run.ip(Ns::Host, &["link", "del", &vx])?;
                    }
                    let vni_s = vni.to_string();
                    let local_s = local.to_string();
                    let mut args = vec![
                        "link",
                        "add",
                        &vx,
                        "mtu",
                        &mtu,
                        "type",
                        "vxlan",
                        "id",
                        &vni_s,
                        "local",
                        &local_s,
                        "dstport",
                        "4789",
                        "nolearning",
                    ];
                    if let Some(dev) = &self.config.underlay_interface {
                        args.extend(["dev", dev.as_str()]);
                    }
                    self.run.ip(Ns::Host, &args)?;
                    self.disable_ipv6(Ns::Host, &[&vx])?;
                    self.run
                        .ip(Ns::Host, &["link", "set", &vx, "master", &br, "up"])?;
                    cx.change(format!("create vxlan {vx} (VNI {vni})"));
                } else {
                    let l = &links[&vx];
                    if l.master.as_deref() != Some(br.as_str()) || !l.up || l.mtu != n.mtu {
                        self.run.ip(
                            Ns::Host,
                            &["link", "set", &vx, "master", &br, "mtu", &mtu, "up"],
                        )?;
                        cx.change(format!("plug {vx} into {br}"));
                    }
                }
                self.fdb(cx, d, n, &vx, fdb)?;
            }
            Segment::Flat {
                interface: Some(nic),
            } => {
                let l = links.get(nic).ok_or_else(|| {
                    Error::Invalid(format!(
                        "flat network {}: interface {nic} does not exist",
                        n.id
                    ))
                })?;
                if l.master.as_deref() != Some(br.as_str()) || !l.up {
                    self.run
                        .ip(Ns::Host, &["link", "set", nic, "master", &br, "up"])?;
                    cx.change(format!("plug {nic} into {br}"));
                }
            }
            Segment::Flat { interface: None } => {}
        }
        Ok(())
    }

    fn fdb(
        &self,
        cx: &mut Cx,
        d: &HostNetwork,
        n: &Network,
        vx: &str,
        fdb: &[Value],
    ) -> Result<()> {
        const ZERO: &str = "00:00:00:00:00:00";
        let mut want: BTreeSet<(String, String)> = BTreeSet::new();
        for h in &d.remote_hosts {
            if Some(h.underlay_ip) == self.config.local_ip {
                continue;
            }
            for rn in h.networks.iter().filter(|rn| rn.network_id == n.id) {
                want.insert((ZERO.into(), h.underlay_ip.to_string()));
                for m in &rn.macs {
                    if let Ok((m, _)) = parse_mac(m) {
                        want.insert((m, h.underlay_ip.to_string()));
                    }
                }
            }
        }
        let have: BTreeSet<(String, String)> = fdb
            .iter()
            .filter(|e| e["ifname"].as_str() == Some(vx))
            .filter_map(|e| {
                Some((
                    e["mac"].as_str()?.to_ascii_lowercase(),
                    e["dst"].as_str()?.to_string(),
                ))
            })
            .collect();
        for (mac, dst) in have.difference(&want) {
            self.run
                .bridge(&["fdb", "del", mac, "dev", vx, "dst", dst])?;
            cx.change(format!("delete fdb {mac} dst {dst} on {vx}"));
        }
        for (mac, dst) in want.difference(&have) {
            let verb = if mac == ZERO { "append" } else { "replace" };
            self.run
                .bridge(&["fdb", verb, mac, "dev", vx, "dst", dst, "self", "permanent"])?;
            cx.change(format!("add fdb {mac} dst {dst} on {vx}"));
        }
        Ok(())
    }

    /// Step 3: taps.
    fn taps(&self, cx: &mut Cx, d: &HostNetwork, links: &BTreeMap<String, Link>) {
        for p in &d.ports {
            let Some(n) = d.network(&p.network_id) else {
                continue;
            };
            let br = names::bridge(&n.id);
            let mtu = n.mtu.to_string();
            let updown = if p.admin_state_up { "up" } else { "down" };
            let res = (|| -> Result<()> {
                match links.get(&p.tap) {
                    None if p.port_security_enabled && cx.filters_failed => {
                        return Err(Error::Command(
                            "not plugged: its security group filter could not be written".into(),
                        ));
                    }
                    None => {
                        self.run
                            .ip(Ns::Host, &["tuntap", "add", "dev", &p.tap, "mode", "tap"])?;
                        self.disable_ipv6(Ns::Host, &[&p.tap])?;
                        self.run.ip(
                            Ns::Host,
                            &["link", "set", &p.tap, "mtu", &mtu, "master", &br, updown],
                        )?;
                        cx.change(format!("create tap {} on {br} ({updown})", p.tap));
                    }
                    Some(l)
                        if l.master.as_deref() != Some(br.as_str())
                            && p.port_security_enabled
                            && cx.filters_failed =>
                    {
                        return Err(Error::Command(
                            "not plugged: its security group filter could not be written".into(),
                        ));
                    }
                    Some(l) => {
                        if l.master.as_deref() != Some(br.as_str())
                            || l.mtu != n.mtu
                            || l.up != p.admin_state_up
                        {
                            if l.master.as_deref() != Some(br.as_str()) {
                                // Found, not made by us (QEMU's, or a test's veth): no IPv6 on the host side.
                                self.disable_ipv6(Ns::Host, &[&p.tap])?;
                            }
                            self.run.ip(
                                Ns::Host,
                                &["link", "set", &p.tap, "mtu", &mtu, "master", &br, updown],
                            )?;
                            cx.change(format!("plug tap {} into {br} ({updown})", p.tap));
                        }
                    }
                }
                Ok(())
            })();
            match res {
                Ok(()) => {
                    cx.state.taps.insert(p.tap.clone());
                }
                Err(e) => {
                    cx.bad_ports.insert(p.id.clone());
                    cx.fail(&format!("port {} (tap {})", p.id, p.tap), e)
                }
            }
        }
    }

    fn ensure_namespace(
        &self,
        cx: &mut Cx,
        ns: &str,
        namespaces: &BTreeSet<String>,
        sysctls: &[&str],
    ) -> Result<()> {
        if namespaces.contains(ns) && Path::new(&format!("/run/netns/{ns}")).exists() {
            // Heal sysctls changed by hand (or set by an older version).
            let keys: Vec<&str> = sysctls
                .iter()
                .map(|s| s.split('=').next().unwrap_or(s))
                .collect();
            let mut args = vec!["-n"];
            args.extend(&keys);
            let out = self.run.exec_in(Ns::Named(ns), "sysctl", &args, None)?;
            let values: Vec<&str> = out.lines().map(str::trim).collect();
            let stale: Vec<String> = sysctls
                .iter()
                .enumerate()
                .filter(|(i, s)| s.split('=').nth(1) != values.get(*i).copied())
                .map(|(_, s)| s.to_string())
                .collect();
            if !stale.is_empty() {
                self.run.sysctl(Ns::Named(ns), &stale)?;
                cx.change(format!("set {} in {ns}", stale.join(" ")));
            }
            return Ok(());
        }
        self.run.ip_global(&["netns", "add", ns]).or_else(|e| {
            // Created meanwhile (or left over from a crash): fine if it is there now.
            if Path::new(&format!("/run/netns/{ns}")).exists() {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        self.run.ip(Ns::Named(ns), &["link", "set", "lo", "up"])?;
        let s: Vec<String> = sysctls.iter().map(|s| s.to_string()).collect();
        self.run.sysctl(Ns::Named(ns), &s)?;
        cx.change(format!("create namespace {ns}"));
        Ok(())
    }

    /// Veth pairs between a namespace and the host bridges, with addresses.
    fn ns_ports(
        &self,
        cx: &mut Cx,
        ns: &str,
        want: &[NsPort],
        host_links: &BTreeMap<String, Link>,
        managed_prefixes: &[&str],
    ) -> Result<()> {
        let inside = links_of(&self.run.ip_json(Ns::Named(ns), &["-d", "addr", "show"])?);
        // Devices of ours inside that are no longer wanted.
        for name in inside.keys() {
            if managed_prefixes.iter().any(|p| name.starts_with(p))
                && !want.iter().any(|w| &w.inner == name)
            {
                self.run.ip(Ns::Named(ns), &["link", "del", name])?;
                cx.change(format!("delete {name} in {ns}"));
            }
        }
        for w in want {
            let mtu = w.mtu.to_string();
            let fresh = match inside.get(&w.inner) {
                Some(l) if l.kind == "veth" => {
                    if l.mac != w.mac || l.mtu != w.mtu || !l.up {
                        self.run.ip(
                            Ns::Named(ns),
                            &[
                                "link", "set", &w.inner, "address", &w.mac, "mtu", &mtu, "up",
                            ],
                        )?;
                        cx.change(format!("set {} in {ns}", w.inner));
                    }
                    false
                }
                other => {
                    if other.is_some() {
                        self.run.ip(Ns::Named(ns), &["link", "del", &w.inner])?;
                    }
                    if host_links.contains_key(&w.host) {
                        self.run.ip(Ns::Host, &["link", "del", &w.host])?;
                    }
                    self.run.ip(
                        Ns::Host,
                        &[
                            "link", "add", &w.host, "mtu", &mtu, "type", "veth", "peer", "name",
                            &w.inner, "netns", ns, "address", &w.mac, "mtu", &mtu,
                        ],
                    )?;
                    self.disable_ipv6(Ns::Host, &[&w.host])?;
                    self.run.ip(
                        Ns::Host,
                        &["link", "set", &w.host, "master", &w.bridge, "up"],
                    )?;
                    self.run
                        .ip(Ns::Named(ns), &["link", "set", &w.inner, "up"])?;
                    cx.change(format!("create port {} in {ns} on {}", w.inner, w.bridge));
                    true
                }
            };
            if !fresh {
                match host_links.get(&w.host) {
                    Some(h)
                        if h.master.as_deref() == Some(w.bridge.as_str())
                            && h.up
                            && h.mtu == w.mtu => {}
                    _ => {
                        self.run.ip(
                            Ns::Host,
                            &[
                                "link", "set", &w.host, "master", &w.bridge, "mtu", &mtu, "up",
                            ],
                        )?;
                        cx.change(format!("plug {} into {}", w.host, w.bridge));
                    }
                }
            }
            let have = if fresh {
                BTreeSet::new()
            } else {
                inside
                    .get(&w.inner)
                    .map(|l| l.addrs.clone())
                    .unwrap_or_default()
            };
            for a in have.difference(&w.addrs) {
                self.run.ip(
                    Ns::Named(ns),
                    &["addr", "del", &a.to_string(), "dev", &w.inner],
                )?;
                cx.change(format!("delete address {a} from {} in {ns}", w.inner));
            }
            for a in w.addrs.difference(&have) {
                let s = a.to_string();
                let mut args = vec!["addr", "add", s.as_str(), "dev", w.inner.as_str()];
                if !a.is_ipv4() {
                    args.push("nodad");
                }
                self.run.ip(Ns::Named(ns), &args)?;
                cx.change(format!("add address {a} to {} in {ns}", w.inner));
            }
        }
        Ok(())
    }

    /// Routes with `proto static` in a namespace: exactly `want` (dst, via).
    fn routes(
        &self,
        cx: &mut Cx,
        ns: Ns,
        want: &BTreeSet<(Cidr, IpAddr)>,
        dev_filter: Option<&str>,
    ) -> Result<()> {
        let mut have = BTreeSet::new();
        for (fam, v4) in [("-4", true), ("-6", false)] {
            let mut args = vec![fam, "route", "show", "proto", "static"];
            if let Some(dev) = dev_filter {
                args.extend(["dev", dev]);
            }
            for r in self.run.ip_json(ns, &args)? {
                let (Some(dst), Some(gw)) = (r["dst"].as_str(), r["gateway"].as_str()) else {
                    continue;
                };
                if let (Some(dst), Ok(gw)) = (route_dst(dst, v4), gw.parse::<IpAddr>()) {
                    have.insert((dst.network(), gw));
                }
            }
        }
        let want: BTreeSet<(Cidr, IpAddr)> = want.iter().map(|(c, g)| (c.network(), *g)).collect();
        let label = match ns {
            Ns::Host => "host".to_string(),
            Ns::Named(n) => n.to_string(),
        };
        for (dst, gw) in have.difference(&want) {
            let fam = if dst.is_ipv4() { "-4" } else { "-6" };
            let dst_s = route_text(dst);
            let gw_s = gw.to_string();
            self.run.ip(
                ns,
                &[fam, "route", "del", &dst_s, "via", &gw_s, "proto", "static"],
            )?;
            cx.change(format!("delete route {dst} via {gw} in {label}"));
        }
        for (dst, gw) in want.difference(&have) {
            let fam = if dst.is_ipv4() { "-4" } else { "-6" };
            let dst_s = route_text(dst);
            let gw_s = gw.to_string();
            self.run.ip(
                ns,
                &[
                    fam, "route", "replace", &dst_s, "via", &gw_s, "proto", "static",
                ],
            )?;
            cx.change(format!("add route {dst} via {gw} in {label}"));
        }
        Ok(())
    }

    /// Step 4: one router.
    fn router(
        &self,
        cx: &mut Cx,
        d: &HostNetwork,
        r: &crate::model::Router,
        host_links: &BTreeMap<String, Link>,
        namespaces: &BTreeSet<String>,
        rt: &tokio::runtime::Handle,
    ) -> Result<()> {
        let ns = self.ns.router(&r.id);
        self.ensure_namespace(
            cx,
            &ns,
            namespaces,
            &[
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv6.conf.default.accept_ra=0",
                "net.ipv6.conf.all.accept_ra=0",
                // One network may reach the router through several qr- ports (one per
                // subnet): answer ARP only on the port that has the address, or a VM sends
                // IPv4 to a port without one and the metadata redirect has no address to use.
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            ],
        )?;
        let mut want = Vec::new();
        for i in &r.interfaces {
            let Some(n) = d.network(&i.network_id) else {
                continue;
            };
            want.push(NsPort {
                inner: names::qr(&i.port_id),
                host: names::qr_host(&i.port_id),
                bridge: names::bridge(&n.id),
                mac: parse_mac(&i.mac)?.0,
                mtu: n.mtu,
                addrs: i.addresses.iter().copied().collect(),
            });
        }
        let mut routes = BTreeSet::new();
        if let Some(g) = &r.gateway {
            if let Some(n) = d.network(&g.network_id) {
                let mut addrs: BTreeSet<Cidr> = g.addresses.iter().copied().collect();
                let own: BTreeSet<IpAddr> = addrs.iter().map(|a| a.addr).collect();
                for f in &r.floating_ips {
                    let fip = IpAddr::V4(f.floating_ip);
                    if !own.contains(&fip) {
                        addrs.insert(Cidr::host(fip));
                    }
                }
                want.push(NsPort {
                    inner: names::qg(&g.port_id),
                    host: names::qg_host(&g.port_id),
                    bridge: names::bridge(&n.id),
                    mac: parse_mac(&g.mac)?.0,
                    mtu: n.mtu,
                    addrs,
                });
                for nh in &g.nexthops {
                    let any: IpAddr = if nh.is_ipv4() {
                        "0.0.0.0".parse().expect("ip")
                    } else {
                        "::".parse().expect("ip")
                    };
                    routes.insert((Cidr::new(any, 0)?, *nh));
                }
            }
        }
        for x in &r.routes {
            routes.insert((x.destination, x.nexthop));
        }
        self.ns_ports(
            cx,
            &ns,
            &want,
            host_links,
            &[names::ROUTER_INTERNAL, names::ROUTER_GATEWAY],
        )?;
        self.routes(cx, Ns::Named(&ns), &routes, None)?;
        let md_port =
            (d.metadata.is_some() && !r.interfaces.is_empty()).then_some(self.config.metadata_port);
        let table = router::nat_table(r, md_port);
        self.nft_converge(
            cx,
            Ns::Named(&ns),
            &format!("{ns}|"),
            &[table],
            &[("inet", names::TABLE_ROUTER)],
        )?;

        // Router advertisements.
        let key = format!("radvd:{}", r.id);
        match router::radvd_conf(r, d) {
            Some(conf) => {
                let dir = self.config.state_dir.join("radvd");
                std::fs::create_dir_all(&dir)?;
                let conf_path = dir.join(format!("{}.conf", r.id));
                let pid_path = dir.join(format!("{}.pid", r.id));
                let log_path = dir.join(format!("{}.log", r.id));
                let changed =
                    std::fs::read_to_string(&conf_path).ok().as_deref() != Some(conf.as_str());
                if changed {
                    std::fs::write(&conf_path, &conf)?;
                }
                let argv: Vec<String> = vec![
                    self.config.radvd.clone(),
                    "--nodaemon".into(),
                    "-C".into(),
                    conf_path.display().to_string(),
                    "-p".into(),
                    pid_path.display().to_string(),
                    "-m".into(),
                    "logfile".into(),
                    "-l".into(),
                    log_path.display().to_string(),
                ];
                let alive = cx
                    .state
                    .processes
                    .get(&key)
                    .is_some_and(|rec| self.sup.alive(&key, rec));
                if !alive {
                    let _ = std::fs::remove_file(&pid_path);
                }
                match self
                    .sup
                    .ensure(&key, &ns, &argv, &mut cx.state, Some(&log_path))?
                {
                    Some(c) => cx.change(c),
                    None if changed => {
                        self.sup.signal(&key, &cx.state, libc::SIGHUP);
                        cx.change(format!("reload {key}"));
                    }
                    None => {}
                }
            }
            None => {
                if self.sup.stop(&key, &mut cx.state) {
                    cx.change(format!("stop {key}"));
                }
            }
        }

        if let Some(port) = md_port {
            let addr = SocketAddr::new("0.0.0.0".parse().expect("ip"), port);
            if self.proxy.ensure(
                &format!("router:{}", r.id),
                &ns,
                addr,
                Scope::Router(r.id.clone()),
                rt,
            )? {
                cx.change(format!("start metadata proxy in {ns}"));
            }
        }
        Ok(())
    }

    /// Step 5: one DHCP server.
    fn dhcp(
        &self,
        cx: &mut Cx,
        d: &HostNetwork,
        s: &crate::model::DhcpServer,
        host_links: &BTreeMap<String, Link>,
        namespaces: &BTreeSet<String>,
        rt: &tokio::runtime::Handle,
    ) -> Result<()> {
        let ns = self.ns.dhcp(&s.network_id);
        let n = d
            .network(&s.network_id)
            .ok_or_else(|| Error::Invalid(format!("network {} is not desired", s.network_id)))?;
        self.ensure_namespace(
            cx,
            &ns,
            namespaces,
            &[
                "net.ipv6.conf.default.accept_ra=0",
                "net.ipv6.conf.all.accept_ra=0",
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            ],
        )?;
        let metadata = s.isolated_metadata && d.metadata.is_some();
        let mut addrs: BTreeSet<Cidr> = s.addresses.iter().copied().collect();
        if metadata {
            addrs.insert(Cidr::host(router::METADATA_IP.parse().expect("ip")));
        }
        let want = [NsPort {
            inner: names::dhcp_port(&s.port_id),
            host: names::dhcp_host(&s.port_id),
            bridge: names::bridge(&n.id),
            mac: parse_mac(&s.mac)?.0,
            mtu: n.mtu,
            addrs,
        }];
        self.ns_ports(cx, &ns, &want, host_links, &[names::DHCP_PORT])?;

        let dir = self.config.state_dir.join("dhcp").join(&s.network_id);
        std::fs::create_dir_all(&dir)?;
        let files = dhcp::files(s, d);
        let old_hosts = std::fs::read_to_string(dir.join("hosts")).unwrap_or_default();
        let mut changed = false;
        for (name, content) in [("hosts", &files.hosts), ("opts", &files.opts)] {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                std::fs::write(&path, content)?;
                changed = true;
            }
        }
        let mut argv = vec![self.config.dnsmasq.clone()];
        argv.extend(dhcp::args(s, d, &dir));
        let key = format!("dnsmasq:{}", s.network_id);
        match self
            .sup
            .ensure(&key, &ns, &argv, &mut cx.state, Some(&dir.join("log")))?
        {
            Some(c) => cx.change(c),
            None if changed => {
                // Leases of removed hosts first: their addresses may go to new ports at once.
                let iface = names::dhcp_port(&s.port_id);
                for (ip, mac) in dhcp::released_leases(&old_hosts, &files.hosts) {
                    let (ip, mac) = (ip.to_string(), mac.as_str());
                    match self.run.exec_in(
                        Ns::Named(&ns),
                        "dhcp_release",
                        &[iface.as_str(), ip.as_str(), mac],
                        None,
                    ) {
                        Ok(_) => cx.change(format!("release lease {ip} {mac} in {key}")),
                        Err(e) => {
                            tracing::warn!(%key, %ip, error = %e, "dhcp_release failed (is dnsmasq-utils installed?)")
                        }
                    }
                }
                self.sup.signal(&key, &cx.state, libc::SIGHUP);
                cx.change(format!("reload {key}"));
            }
            None => {}
        }
        if metadata {
            let addr = SocketAddr::new(router::METADATA_IP.parse().expect("ip"), 80);
            if self.proxy.ensure(
                &format!("dhcp:{}", s.network_id),
                &ns,
                addr,
                Scope::Network(s.network_id.clone()),
                rt,
            )? {
                cx.change(format!("start metadata proxy in {ns}"));
            }
        }
        Ok(())
    }

    /// Step 6: the external network's host side.
    fn external(&self, cx: &mut Cx, d: &HostNetwork, links: &BTreeMap<String, Link>) -> Result<()> {
        let Some(x) = &d.external else {
            return Ok(());
        };
        let br = names::bridge(&x.network_id);
        // The bridge was just made when it was missing: its addresses are then none.
        let have = links.get(&br).map(|l| l.addrs.clone()).unwrap_or_default();
        let want: BTreeSet<Cidr> = x.addresses.iter().copied().collect();
        for a in have.difference(&want) {
            self.run
                .ip(Ns::Host, &["addr", "del", &a.to_string(), "dev", &br])?;
            cx.change(format!("delete address {a} from {br}"));
        }
        for a in want.difference(&have) {
            let s = a.to_string();
            let mut args = vec!["addr", "add", s.as_str(), "dev", br.as_str()];
            if !a.is_ipv4() {
                args.push("nodad");
            }
            self.run.ip(Ns::Host, &args)?;
            cx.change(format!("add address {a} to {br}"));
        }
        // Tenant prefixes the host must route to a router (IPv6 always, IPv4 without SNAT).
        let mut routes = BTreeSet::new();
        for r in &d.routers {
            let Some(g) = r.gateway.as_ref().filter(|g| g.network_id == x.network_id) else {
                continue;
            };
            for i in &r.interfaces {
                for a in &i.addresses {
                    if a.is_ipv4() && r.enable_snat {
                        continue;
                    }
                    if let Some(via) = g.addresses.iter().find(|ga| ga.is_ipv4() == a.is_ipv4()) {
                        routes.insert((a.network(), via.addr));
                    }
                }
            }
        }
        self.routes(cx, Ns::Host, &routes, Some(&br))?;
        if x.nat_uplink.is_some() {
            let cur = self
                .run
                .exec_in(Ns::Host, "sysctl", &["-n", "net.ipv4.ip_forward"], None)?;
            if cur.trim() != "1" {
                self.run
                    .sysctl(Ns::Host, &["net.ipv4.ip_forward=1".into()])?;
                cx.change("enable IPv4 forwarding on the host");
            }
        }
        Ok(())
    }

    /// Step 7: everything of ours that is no longer desired.
    fn garbage(&self, cx: &mut Cx, d: &HostNetwork, namespaces: &BTreeSet<String>) -> Result<()> {
        // Metadata listeners.
        let mut keep: Vec<String> = Vec::new();
        if d.metadata.is_some() {
            keep.extend(
                d.routers
                    .iter()
                    .filter(|r| !r.interfaces.is_empty())
                    .map(|r| format!("router:{}", r.id)),
            );
            keep.extend(
                d.dhcp_servers
                    .iter()
                    .filter(|s| s.isolated_metadata)
                    .map(|s| format!("dhcp:{}", s.network_id)),
            );
        }
        for k in self.proxy.retain(&keep) {
            cx.change(format!("stop metadata proxy {k}"));
        }
        // Processes.
        let mut keep_procs: BTreeSet<String> = BTreeSet::new();
        keep_procs.extend(
            d.routers
                .iter()
                .filter(|r| router::radvd_conf(r, d).is_some())
                .map(|r| format!("radvd:{}", r.id)),
        );
        keep_procs.extend(
            d.dhcp_servers
                .iter()
                .map(|s| format!("dnsmasq:{}", s.network_id)),
        );
        let recorded: Vec<String> = cx.state.processes.keys().cloned().collect();
        for k in recorded {
            if !keep_procs.contains(&k) {
                if self.sup.stop(&k, &mut cx.state) {
                    cx.change(format!("stop {k}"));
                }
                cx.state.processes.remove(&k);
            }
        }
        // Namespaces.
        let want_ns: BTreeSet<String> = d
            .routers
            .iter()
            .map(|r| self.ns.router(&r.id))
            .chain(d.dhcp_servers.iter().map(|s| self.ns.dhcp(&s.network_id)))
            .collect();
        for ns in namespaces.difference(&want_ns) {
            // Processes we did not record (another state directory's, or started by hand)
            // would live on in the deleted namespace: stop them first.
            let stray = self
                .run
                .run("ip", &["netns".into(), "pids".into(), ns.clone()], None)
                .unwrap_or_default();
            let pids: Vec<i32> = stray
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if !pids.is_empty() {
                crate::procs::terminate(&pids);
                cx.change(format!("stop stray processes {pids:?} in {ns}"));
            }
            self.run.ip_global(&["netns", "del", ns])?;
            cx.change(format!("delete namespace {ns}"));
            if let Some((kind, id)) = self.ns.parse(ns) {
                let sub = if kind == "router" { "radvd" } else { "dhcp" };
                let dir = self.config.state_dir.join(sub);
                if kind == "router" {
                    for ext in ["conf", "pid", "log"] {
                        let _ = std::fs::remove_file(dir.join(format!("{id}.{ext}")));
                    }
                } else {
                    let _ = std::fs::remove_dir_all(dir.join(id));
                }
            }
            let prefix = format!("{ns}|");
            cx.state.nft.retain(|k, _| !k.starts_with(&prefix));
        }
        // Host devices.
        let links = links_of(&self.run.ip_json(Ns::Host, &["-d", "link", "show"])?);
        let mut want_dev: BTreeSet<String> = BTreeSet::new();
        for n in &d.networks {
            want_dev.insert(names::bridge(&n.id));
            if matches!(n.segment, Segment::Vxlan { .. }) {
                want_dev.insert(names::vxlan(&n.id));
            }
        }
        for r in &d.routers {
            want_dev.extend(r.interfaces.iter().map(|i| names::qr_host(&i.port_id)));
            want_dev.extend(r.gateway.iter().map(|g| names::qg_host(&g.port_id)));
        }
        want_dev.extend(d.dhcp_servers.iter().map(|s| names::dhcp_host(&s.port_id)));
        let taps: BTreeSet<String> = d.ports.iter().map(|p| p.tap.clone()).collect();
        let our_bridges: BTreeSet<&String> = links
            .keys()
            .filter(|n| n.starts_with(names::BRIDGE))
            .collect();
        let mut doomed: Vec<(u8, String)> = Vec::new();
        for (name, l) in &links {
            let ours = names::HOST_PREFIXES.iter().any(|p| name.starts_with(p));
            let stale_tap = !taps.contains(name)
                && (cx.state.taps.contains(name)
                    || (l.kind == "tun"
                        && l.master.as_ref().is_some_and(|m| our_bridges.contains(m))));
            if stale_tap {
                doomed.push((0, name.clone()));
            } else if ours && !want_dev.contains(name) {
                let order = if name.starts_with(names::BRIDGE) {
                    2
                } else if name.starts_with(names::VXLAN) {
                    1
                } else {
                    0
                };
                doomed.push((order, name.clone()));
            }
        }
        doomed.sort();
        for (_, name) in doomed {
            match self.run.ip(Ns::Host, &["link", "del", &name]) {
                Ok(()) => cx.change(format!("delete device {name}")),
                // A veth goes with its peer when a namespace is torn down (asynchronously).
                Err(Error::Command(m)) if m.contains("Cannot find device") => {}
                Err(e) => return Err(e),
            }
        }
        // Flat uplinks of removed networks stay (they are the host's); only detached.
        cx.state.taps.retain(|t| taps.contains(t));
        cx.state.nft.retain(|k, _| {
            let Some((prefix, _)) = k.split_once('|') else {
                return false;
            };
            prefix == "host" || want_ns.contains(prefix)
        });
        Ok(())
    }

    fn observe(&self) -> Result<Observed> {
        if !is_root() {
            return Err(Error::NotRoot);
        }
        let _guard = self.lock.lock();
        let state = State::load(&self.config.state_dir);
        let mut o = Observed {
            namespaces: self.list_namespaces()?.into_iter().collect(),
            ..Default::default()
        };
        let links = links_of(&self.run.ip_json(Ns::Host, &["-d", "link", "show"])?);
        for (name, l) in &links {
            let ours = names::HOST_PREFIXES.iter().any(|p| name.starts_with(p))
                || state.taps.contains(name);
            if ours {
                o.links.push(ObservedLink {
                    name: name.clone(),
                    kind: l.kind.clone(),
                    master: l.master.clone(),
                    up: l.up,
                });
            }
        }
        for e in self.run.bridge_json(&["fdb", "show"])? {
            let (Some(dev), Some(mac), Some(dst)) =
                (e["ifname"].as_str(), e["mac"].as_str(), e["dst"].as_str())
            else {
                continue;
            };
            if dev.starts_with(names::VXLAN) {
                o.fdb.push(format!("{dev} {mac} {dst}"));
            }
        }
        let json = self.run.nft_json(Ns::Host, &["tables"])?;
        for t in json["nftables"].as_array().into_iter().flatten() {
            if let (Some(f), Some(n)) = (t["table"]["family"].as_str(), t["table"]["name"].as_str())
            {
                if n.starts_with("nubo-") {
                    o.nft_tables.push(format!("{f} {n}"));
                }
            }
        }
        for ns in &o.namespaces {
            if let Ok(json) = self.run.nft_json(Ns::Named(ns), &["tables"]) {
                for t in json["nftables"].as_array().into_iter().flatten() {
                    if let (Some(f), Some(n)) =
                        (t["table"]["family"].as_str(), t["table"]["name"].as_str())
                    {
                        o.nft_tables.push(format!("{ns}: {f} {n}"));
                    }
                }
            }
        }
        for (k, rec) in &state.processes {
            o.processes.push(ObservedProcess {
                key: k.clone(),
                pid: rec.pid,
                alive: self.sup.alive(k, rec),
            });
        }
        o.metadata_listeners = self.proxy.keys();
        Ok(o)
    }
}
