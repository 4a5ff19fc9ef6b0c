//! The agent's data plane: a loop that converges this host's networking (`nubo-netplane`) to
//! Networking's desired state, and the [`HostPlumbing`] that makes a VM's taps come from it.
//!
//! ```text
//!   NetplaneDriver::run (one task per agent)
//!     every poll interval, or at once when kicked (a VM needs its tap, a VM went away):
//!       GET /internal/v1/hosts/{host}/network[?all=true]   (all: this is the network host)
//!       network host: a network:dhcp port for every DHCP network missing one (PUT .../dhcp-ports)
//!       snapshot::host_network(snapshot, HostContext) ─> HostNetwork
//!       apply when it changed, when forced, or every resync interval (heals hand edits)
//!       POST .../port-status for ports whose status changed (ACTIVE = tap plugged + filtered)
//!
//!   worker: ensure_tap(tap) ─> NetplaneHost::ensure_tap ─> kick + wait for a pass that started
//!           after the kick and has the port ready (retries, forced, until the tap timeout)
//!           ─> QEMU spawn attaches to the persistent, plugged, filtered tap
//! ```
//!
//! Ownership: the loop is the only caller of [`Netplane::apply`] on this host; the workers only
//! ask it for passes and read what the last pass made ready. Nothing is held across an await
//! but the loop's own state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nubo_common::Config;
use nubo_compute::agent_api::ConfigDriveContent;
use nubo_compute::service::netplane_state::{HostNetworkState, PortStatusReport};
use nubo_netplane::snapshot::{host_network, HostContext, Snapshot, DHCP_OWNER};
use nubo_netplane::{Cidr, ExternalHost, FakeNetplane, HostNetwork, LinuxNetplane, Netplane};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::{HostPlumbing, HttpControlPlane};

/// What the netplane loop asks of the API (the data-plane part of the internal agent API).
#[async_trait::async_trait]
pub trait NetworkControl: Send + Sync + 'static {
    async fn network_state(&self, host: &str, all: bool) -> Result<HostNetworkState, String>;
    async fn ensure_dhcp_port(&self, host: &str, network: &str) -> Result<(), String>;
    async fn port_status(&self, host: &str, report: &PortStatusReport) -> Result<(), String>;
}

#[async_trait::async_trait]
impl NetworkControl for HttpControlPlane {
    async fn network_state(&self, host: &str, all: bool) -> Result<HostNetworkState, String> {
        self.call(
            http::Method::GET,
            &format!("/hosts/{host}/network?all={all}"),
            None,
            Duration::from_secs(30),
        )
        .await?
        .ok_or_else(|| "empty answer".to_string())
    }

    async fn ensure_dhcp_port(&self, host: &str, network: &str) -> Result<(), String> {
        self.call::<serde_json::Value>(
            http::Method::PUT,
            &format!("/hosts/{host}/dhcp-ports/{network}"),
            None,
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }

    async fn port_status(&self, host: &str, report: &PortStatusReport) -> Result<(), String> {
        self.call::<serde_json::Value>(
            http::Method::POST,
            &format!("/hosts/{host}/port-status"),
            serde_json::to_vec(report).ok(),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }
}

/// How the loop runs on this host.
#[derive(Debug, Clone)]
pub struct NetplaneSettings {
    /// This host's name (ports' `binding:host_id`).
    pub host: String,
    /// The host running every router and DHCP server (this one on an all-in-one cloud).
    pub network_host: String,
    /// Flat physical network -> this host's interface.
    pub physical_interfaces: BTreeMap<String, String>,
    /// Network host: put external flat networks' gateway addresses (no uplink) on the host.
    pub external_gateway: bool,
    /// Masquerade the external IPv4 ranges out of this interface.
    pub nat_uplink: Option<String>,
    /// Where the metadata proxy forwards (`http://api/metadata`); empty turns it off.
    pub metadata_url: String,
    pub poll: Duration,
    pub resync: Duration,
    /// How long `ensure_tap` waits for the port to be ready.
    pub tap_timeout: Duration,
}

impl NetplaneSettings {
    pub fn new(host: impl Into<String>) -> NetplaneSettings {
        let host = host.into();
        NetplaneSettings {
            network_host: host.clone(),
            host,
            physical_interfaces: BTreeMap::new(),
            external_gateway: true,
            nat_uplink: None,
            metadata_url: String::new(),
            poll: Duration::from_secs(1),
            resync: Duration::from_secs(10),
            tap_timeout: Duration::from_secs(30),
        }
    }

    fn is_network_host(&self) -> bool {
        self.network_host == self.host
    }
}

/// What one pass left behind, for the workers waiting on it.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// Every request numbered up to this one was made before the pass started.
    pub covers: u64,
    /// Taps (and port ids) plugged, filtered and ready.
    pub ready_taps: BTreeSet<String>,
    pub ready_ports: BTreeSet<String>,
    /// Why the pass failed as a whole (API unreachable, netplane refused).
    pub error: Option<String>,
    /// Per-object errors of the last apply.
    pub errors: Vec<String>,
}

/// The loop's own memory (only the loop touches it).
#[derive(Default)]
struct LoopState {
    last: Option<HostNetwork>,
    last_apply: Option<Instant>,
    ready_ports: BTreeSet<String>,
    ready_taps: BTreeSet<String>,
    last_errors: Vec<String>,
    last_warnings: Vec<String>,
    /// What the API was last told, per port (true: ACTIVE).
    reported: HashMap<String, bool>,
    /// DHCP ports asked for: network -> (the subnets it lacked, when), so the same request
    /// is repeated at most once per resync.
    dhcp_asked: HashMap<String, (Vec<String>, Instant)>,
}

/// Drives one host's [`Netplane`]. Share it as `Arc`.
pub struct NetplaneDriver {
    settings: NetplaneSettings,
    np: Arc<dyn Netplane>,
    control: Arc<dyn NetworkControl>,
    requested: AtomicU64,
    force: AtomicBool,
    kick: Notify,
    done: watch::Sender<Pass>,
    started: AtomicBool,
    state: tokio::sync::Mutex<LoopState>,
}

impl NetplaneDriver {
    pub fn new(
        settings: NetplaneSettings,
        np: Arc<dyn Netplane>,
        control: Arc<dyn NetworkControl>,
    ) -> Arc<NetplaneDriver> {
        Arc::new(NetplaneDriver {
            settings,
            np,
            control,
            requested: AtomicU64::new(0),
            force: AtomicBool::new(false),
            kick: Notify::new(),
            done: watch::channel(Pass::default()).0,
            started: AtomicBool::new(false),
            state: tokio::sync::Mutex::new(LoopState::default()),
        })
    }

    pub fn settings(&self) -> &NetplaneSettings {
        &self.settings
    }

    pub fn netplane(&self) -> &Arc<dyn Netplane> {
        &self.np
    }

    /// The last pass.
    pub fn last_pass(&self) -> Pass {
        self.done.borrow().clone()
    }

    /// Asks for a pass soon; returns the request's number.
    pub fn kick(&self) -> u64 {
        let n = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.kick.notify_one();
        n
    }

    /// Starts the loop once (later calls do nothing).
    pub fn start(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        if !self.started.swap(true, Ordering::SeqCst) {
            let span = tracing::info_span!("netplane", host = %self.settings.host);
            tokio::spawn(tracing::Instrument::instrument(
                self.clone().run(stop),
                span,
            ));
        }
    }

    /// The loop: a pass, then wait for a kick, the poll interval, or `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            network_host = %self.settings.network_host,
            "data plane loop started"
        );
        loop {
            if *stop.borrow() {
                break;
            }
            let covers = self.requested.load(Ordering::SeqCst);
            let force = self.force.swap(false, Ordering::SeqCst);
            let pass = self.pass_once(force, covers).await;
            if let Some(e) = &pass.error {
                tracing::warn!(error = %e, "data plane pass failed; retrying");
            }
            self.done.send_replace(pass);
            if self.requested.load(Ordering::SeqCst) > covers {
                continue;
            }
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = stop.changed() => break,
            }
        }
        tracing::info!("data plane loop stopped");
    }

    /// One pass (also what tests call directly). `force` applies even when nothing changed.
    pub async fn pass_once(&self, force: bool, covers: u64) -> Pass {
        let mut st = self.state.lock().await;
        let outcome = self.pass(&mut st, force).await;
        Pass {
            covers,
            ready_taps: st.ready_taps.clone(),
            ready_ports: st.ready_ports.clone(),
            error: outcome.err(),
            errors: st.last_errors.clone(),
        }
    }

    async fn fetch(&self) -> Result<(HostNetworkState, Snapshot), String> {
        let state = self
            .control
            .network_state(&self.settings.host, self.settings.is_network_host())
            .await?;
        let snap: Snapshot = serde_json::from_value(state.network.clone())
            .map_err(|e| format!("network state: {e}"))?;
        Ok((state, snap))
    }

    async fn pass(&self, st: &mut LoopState, force: bool) -> Result<(), String> {
        let (mut state, mut snap) = self.fetch().await?;
        if self.settings.is_network_host() && self.ensure_dhcp_ports(st, &snap).await {
            (state, snap) = self.fetch().await?;
        }
        let cx = self.context(&state, &snap);
        let (desired, warnings) = host_network(&snap, &cx);
        if warnings != st.last_warnings {
            for w in &warnings {
                tracing::warn!(warning = %w, "data plane");
            }
            st.last_warnings = warnings;
        }
        let due = st
            .last_apply
            .is_none_or(|t| t.elapsed() >= self.settings.resync);
        if force || due || st.last.as_ref() != Some(&desired) {
            let report = self.np.apply(&desired).await.map_err(|e| e.to_string())?;
            if report.changed() {
                tracing::info!(
                    changes = report.changes.len(),
                    errors = report.errors.len(),
                    ms = report.duration_ms,
                    commands = report.commands,
                    "data plane converged"
                );
            }
            if report.errors != st.last_errors {
                for e in &report.errors {
                    tracing::warn!(error = %e, "data plane object not converged; retrying next pass");
                }
            }
            st.ready_ports = report.ports_ready.iter().cloned().collect();
            st.ready_taps = desired
                .ports
                .iter()
                .filter(|p| st.ready_ports.contains(&p.id))
                .map(|p| p.tap.clone())
                .collect();
            st.last_errors = report.errors;
            st.last_apply = Some(Instant::now());
            // An apply with errors is tried again on the next pass.
            st.last = if st.last_errors.is_empty() {
                Some(desired.clone())
            } else {
                None
            };
        }
        self.report_ports(st, &desired, &snap).await;
        Ok(())
    }

    /// Makes the `network:dhcp` ports Networking lacks; true when it asked for any.
    async fn ensure_dhcp_ports(&self, st: &mut LoopState, snap: &Snapshot) -> bool {
        let mut asked = false;
        for n in &snap.networks {
            if n.external || !n.admin_state_up {
                continue;
            }
            let dhcp: BTreeSet<&str> = n
                .subnets
                .iter()
                .filter(|s| s.enable_dhcp)
                .map(|s| s.id.as_str())
                .collect();
            if dhcp.is_empty() {
                continue;
            }
            let port = snap
                .ports
                .iter()
                .find(|p| p.network_id == n.id && p.device_owner == DHCP_OWNER);
            let held: BTreeSet<&str> = port
                .map(|p| p.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect())
                .unwrap_or_default();
            let lacking: Vec<String> = dhcp.difference(&held).map(|s| s.to_string()).collect();
            if port.is_some() && lacking.is_empty() {
                st.dhcp_asked.remove(&n.id);
                continue;
            }
            if st
                .dhcp_asked
                .get(&n.id)
                .is_some_and(|(l, t)| *l == lacking && t.elapsed() < self.settings.resync)
            {
                continue;
            }
            st.dhcp_asked
                .insert(n.id.clone(), (lacking, Instant::now()));
            match self
                .control
                .ensure_dhcp_port(&self.settings.host, &n.id)
                .await
            {
                Ok(()) => {
                    tracing::info!(network_id = %n.id, "DHCP port made");
                    asked = true;
                }
                Err(e) => tracing::warn!(network_id = %n.id, error = %e, "no DHCP port"),
            }
        }
        asked
    }

    fn context(&self, state: &HostNetworkState, snap: &Snapshot) -> HostContext {
        let s = &self.settings;
        let host_ips = state
            .host_ips
            .iter()
            .filter_map(|(h, ip)| Some((h.clone(), ip.parse::<IpAddr>().ok()?)))
            .collect();
        let metadata = (!s.metadata_url.is_empty() && !state.metadata_secret.is_empty())
            .then(|| (s.metadata_url.clone(), state.metadata_secret.clone()));
        HostContext {
            host: s.host.clone(),
            network_host: s.network_host.clone(),
            host_ips,
            physical_interfaces: s.physical_interfaces.clone(),
            metadata,
            external: self.external(state, snap),
        }
    }

    /// The external flat network without uplink whose gateways the host takes (`public`
    /// first), on the network host.
    fn external(&self, state: &HostNetworkState, snap: &Snapshot) -> Option<ExternalHost> {
        let s = &self.settings;
        if !s.external_gateway || !s.is_network_host() {
            return None;
        }
        let name_of = |id: &str| -> String {
            state.network["networks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["id"].as_str() == Some(id))
                .and_then(|n| n["name"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        let mut candidates: Vec<_> = snap
            .networks
            .iter()
            .filter(|n| n.external && n.network_type == "flat")
            .filter(|n| {
                n.physical_network
                    .as_ref()
                    .is_none_or(|p| !s.physical_interfaces.contains_key(p))
            })
            .collect();
        candidates.sort_by_key(|n| (name_of(&n.id) != "public", n.id.clone()));
        let n = candidates.first()?;
        let addresses: Vec<Cidr> = n
            .subnets
            .iter()
            .filter_map(|sub| {
                let gw: IpAddr = sub.gateway_ip.as_ref()?.parse().ok()?;
                let c: Cidr = sub.cidr.parse().ok()?;
                Cidr::new(gw, c.prefix).ok()
            })
            .collect();
        Some(ExternalHost {
            network_id: n.id.clone(),
            addresses,
            nat_uplink: s.nat_uplink.clone(),
        })
    }

    /// Tells the API which ports changed status: VM ports are ACTIVE when ready; on the network
    /// host, router and DHCP ports are ACTIVE when their router / DHCP server converged.
    async fn report_ports(&self, st: &mut LoopState, desired: &HostNetwork, snap: &Snapshot) {
        let mut now: HashMap<String, bool> = HashMap::new();
        for p in &desired.ports {
            // An admin-down port keeps its tap (set down): DOWN, as Neutron says.
            now.insert(
                p.id.clone(),
                p.admin_state_up && st.ready_ports.contains(&p.id),
            );
        }
        let failed = |what: &str| st.last_errors.iter().any(|e| e.contains(what));
        for r in &desired.routers {
            let ok = !failed(&format!("router {}", r.id));
            for i in &r.interfaces {
                now.insert(i.port_id.clone(), ok);
            }
            if let Some(g) = &r.gateway {
                now.insert(g.port_id.clone(), ok);
            }
        }
        for d in &desired.dhcp_servers {
            now.insert(d.port_id.clone(), !failed(&d.network_id));
        }
        // Ports not in the snapshot any more are gone: forget them.
        let known: BTreeSet<&str> = snap.ports.iter().map(|p| p.id.as_str()).collect();
        st.reported.retain(|id, _| known.contains(id.as_str()));
        let mut report = PortStatusReport::default();
        for (id, up) in &now {
            if st.reported.get(id) != Some(up) {
                if *up {
                    report.active.push(id.clone());
                } else {
                    report.down.push(id.clone());
                }
            }
        }
        if report.active.is_empty() && report.down.is_empty() {
            return;
        }
        report.active.sort();
        report.down.sort();
        match self.control.port_status(&self.settings.host, &report).await {
            Ok(()) => st.reported.extend(now),
            Err(e) => tracing::warn!(error = %e, "port status not delivered; retrying"),
        }
    }

    /// Waits until `tap` is plugged and filtered by a pass that started after this call.
    pub async fn wait_ready(&self, tap: &str, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.done.subscribe();
        let mut attempt = 0u32;
        let mut last_error = None;
        loop {
            if attempt > 0 {
                self.force.store(true, Ordering::SeqCst);
            }
            let want = self.kick();
            loop {
                let seen = {
                    let pass = rx.borrow_and_update();
                    (pass.covers >= want).then(|| {
                        (
                            pass.ready_taps.contains(tap),
                            pass.error.clone().or_else(|| pass.errors.first().cloned()),
                        )
                    })
                };
                if let Some((ready, error)) = seen {
                    if ready {
                        return Ok(());
                    }
                    last_error = error;
                    break;
                }
                if tokio::time::timeout_at(deadline, rx.changed())
                    .await
                    .is_err()
                {
                    return Err(timeout_error(tap, timeout, last_error));
                }
            }
            attempt += 1;
            let pause = tokio::time::Instant::now() + Duration::from_millis(200);
            if pause >= deadline {
                return Err(timeout_error(tap, timeout, last_error));
            }
            tokio::time::sleep_until(pause).await;
        }
    }
}

fn timeout_error(tap: &str, timeout: Duration, error: Option<String>) -> String {
    match error {
        Some(e) => format!(
            "the data plane did not make tap {tap} ready in {} s: {e}",
            timeout.as_secs()
        ),
        None => format!(
            "the data plane did not make tap {tap} ready in {} s (is its port bound to this host?)",
            timeout.as_secs()
        ),
    }
}

/// [`HostPlumbing`] on the data plane: taps come from the netplane (persistent, plugged,
/// filtered), config drives from the wrapped plumbing.
pub struct NetplaneHost {
    driver: Arc<NetplaneDriver>,
    files: Arc<dyn HostPlumbing>,
}

impl NetplaneHost {
    pub fn new(driver: Arc<NetplaneDriver>, files: Arc<dyn HostPlumbing>) -> NetplaneHost {
        NetplaneHost { driver, files }
    }

    pub fn driver(&self) -> &Arc<NetplaneDriver> {
        &self.driver
    }
}

#[async_trait::async_trait]
impl HostPlumbing for NetplaneHost {
    async fn ensure_tap(&self, name: &str) -> Result<(), String> {
        let started = Instant::now();
        self.driver
            .wait_ready(name, self.driver.settings.tap_timeout)
            .await?;
        tracing::info!(
            tap = name,
            waited_ms = started.elapsed().as_millis() as u64,
            "tap ready"
        );
        Ok(())
    }

    /// The netplane removes a tap once its port leaves this host; a pass soon sees to it.
    async fn remove_tap(&self, _name: &str) -> Result<(), String> {
        self.driver.kick();
        Ok(())
    }

    async fn build_config_drive(
        &self,
        path: &Path,
        content: &ConfigDriveContent,
    ) -> Result<(), String> {
        self.files.build_config_drive(path, content).await
    }

    fn start(&self, stop: watch::Receiver<bool>) {
        self.driver.start(stop);
    }
}

/// The data plane `[netplane] driver` resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Linux,
    Fake,
    None,
}

/// `[netplane] driver`, with `auto` resolved against `[agent] driver`.
pub fn driver_of(config: &Config) -> Result<Driver, String> {
    match config.netplane.driver.as_str() {
        "linux" => Ok(Driver::Linux),
        "fake" => Ok(Driver::Fake),
        "none" => Ok(Driver::None),
        "auto" | "" => Ok(if config.agent.driver == "fake" {
            Driver::Fake
        } else {
            Driver::Linux
        }),
        other => Err(format!(
            "unknown [netplane] driver {other:?} (auto, linux, fake or none)"
        )),
    }
}

/// Checks, before anything is started, that the data plane can run here: root and its tools.
/// The error is one line that says how to proceed.
pub fn preflight(config: &Config) -> Result<(), String> {
    if driver_of(config)? != Driver::Linux {
        return Ok(());
    }
    if !nubo_netplane::is_root() {
        return Err(
            "the network data plane needs root (network namespaces, bridges, nftables): run \
             `sudo nubo up` (or `nubo agent` as root), or set NUBO_NETPLANE__DRIVER=none to run \
             VMs without networking"
                .into(),
        );
    }
    let missing: Vec<&str> = [
        ("ip", "iproute2"),
        ("bridge", "iproute2"),
        ("nft", "nftables"),
        ("dnsmasq", "dnsmasq-base"),
        ("radvd", "radvd"),
    ]
    .iter()
    .filter(|(program, _)| !on_path(program))
    .map(|(_, package)| *package)
    .collect();
    if !missing.is_empty() {
        let mut packages = missing.clone();
        packages.dedup();
        return Err(format!(
            "the network data plane needs {}: run `apt-get install -y {}` (or scripts/install-deps.sh)",
            packages.join(", "),
            packages.join(" ")
        ));
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(program).is_file())
}

/// `physnet:iface,physnet:iface`.
pub fn parse_interfaces(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((net, dev)) if !net.is_empty() && !dev.is_empty() => {
                Ok((net.trim().to_string(), dev.trim().to_string()))
            }
            _ => Err(format!(
                "[netplane] physical_interfaces: {pair:?} is not physnet:interface"
            )),
        })
        .collect()
}

/// One data plane per host: a lock file held for the process's life, so two clouds on one
/// machine never garbage-collect each other's bridges, namespaces and nft tables.
pub struct HostLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

impl HostLock {
    /// Takes `/run/nubo-netplane.lock`; the error names who holds it.
    pub fn acquire(state_dir: &Path) -> Result<HostLock, String> {
        use std::io::{Seek, Write};
        let path = PathBuf::from("/run/nubo-netplane.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if file.try_lock().is_err() {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(format!(
                "another Nubo data plane owns this host's networking ({})",
                holder.trim()
            ));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "pid {} state {}",
            std::process::id(),
            state_dir.display()
        );
        Ok(HostLock { _file: file, path })
    }
}

/// Wraps `files` (the plumbing that makes config drives) in the data plane `config` asks for,
/// and returns what the agent uses. `Driver::None` returns `files` unchanged (bare taps).
pub fn plumbing(
    config: &Config,
    settings: &crate::AgentSettings,
    api_url: &str,
    control: Arc<HttpControlPlane>,
    files: Arc<dyn HostPlumbing>,
) -> Result<Arc<dyn HostPlumbing>, String> {
    let c = &config.netplane;
    let mut driver = driver_of(config)?;
    let state_dir = if c.state_dir.as_os_str().is_empty() {
        config.server.data_dir.join("netplane")
    } else {
        c.state_dir.clone()
    };
    let np: Arc<dyn Netplane> = match driver {
        Driver::None => return Ok(files),
        Driver::Fake => Arc::new(FakeNetplane::new()),
        Driver::Linux => {
            preflight(config)?;
            match HostLock::acquire(&state_dir) {
                Ok(lock) => {
                    // Held until the process exits.
                    std::mem::forget(lock);
                }
                Err(e) if c.driver == "auto" || c.driver.is_empty() => {
                    tracing::warn!(
                        "{e}: this agent runs WITHOUT a data plane (bare taps, no DHCP, no \
                         routing); stop the other cloud, or set NUBO_NETPLANE__DRIVER=linux to \
                         make this an error"
                    );
                    driver = Driver::None;
                }
                Err(e) => return Err(e),
            }
            if driver == Driver::None {
                return Ok(files);
            }
            Arc::new(LinuxNetplane::new(nubo_netplane::Config {
                state_dir,
                local_ip: settings.host_ip.parse().ok(),
                underlay_interface: (!c.underlay_interface.is_empty())
                    .then(|| c.underlay_interface.clone()),
                ..nubo_netplane::Config::default()
            }))
        }
    };
    let mut s = NetplaneSettings::new(settings.host.clone());
    if !c.network_host.is_empty() {
        s.network_host = c.network_host.clone();
    }
    s.physical_interfaces = parse_interfaces(&c.physical_interfaces)?;
    s.external_gateway = c.external_gateway;
    s.nat_uplink = (!c.nat_uplink.is_empty()).then(|| c.nat_uplink.clone());
    s.metadata_url = if c.metadata_url.is_empty() {
        format!("{}/metadata", api_url.trim_end_matches('/'))
    } else {
        c.metadata_url.clone()
    };
    s.poll = Duration::from_millis(c.poll_interval_ms.max(50));
    s.resync = Duration::from_secs(c.resync_interval.max(1));
    tracing::info!(
        driver = ?driver,
        network_host = %s.network_host,
        metadata_url = %s.metadata_url,
        "data plane"
    );
    let driver = NetplaneDriver::new(s, np, control);
    Ok(Arc::new(NetplaneHost::new(driver, files)))
}

/// Removes everything the data plane of `config` made on this host (`nubo admin
/// netplane-teardown`): for a cloud stopped for good. Refuses while a data plane runs here.
pub async fn teardown(config: &Config) -> Result<String, String> {
    if driver_of(config)? != Driver::Linux {
        return Ok("no data plane configured: nothing to remove".into());
    }
    preflight(config)?;
    let state_dir = if config.netplane.state_dir.as_os_str().is_empty() {
        config.server.data_dir.join("netplane")
    } else {
        config.netplane.state_dir.clone()
    };
    let _lock = HostLock::acquire(&state_dir)?;
    let np = LinuxNetplane::new(nubo_netplane::Config {
        state_dir: state_dir.clone(),
        ..nubo_netplane::Config::default()
    });
    let report = np
        .apply(&HostNetwork::default())
        .await
        .map_err(|e| e.to_string())?;
    if !report.errors.is_empty() {
        return Err(format!(
            "data plane teardown left {} error(s): {}",
            report.errors.len(),
            report.errors.join("; ")
        ));
    }
    Ok(format!(
        "data plane of {} removed ({} changes)",
        state_dir.display(),
        report.changes.len()
    ))
}

/// Records the last desired state a fake control plane handed out (tests).
#[derive(Default)]
pub struct StaticNetworkControl {
    pub state: Mutex<Option<HostNetworkState>>,
    pub statuses: Mutex<BTreeMap<String, bool>>,
}

#[async_trait::async_trait]
impl NetworkControl for StaticNetworkControl {
    async fn network_state(&self, _host: &str, _all: bool) -> Result<HostNetworkState, String> {
        self.state
            .lock()
            .clone()
            .ok_or_else(|| "no state".to_string())
    }

    async fn ensure_dhcp_port(&self, _host: &str, _network: &str) -> Result<(), String> {
        Ok(())
    }

    async fn port_status(&self, _host: &str, report: &PortStatusReport) -> Result<(), String> {
        let mut s = self.statuses.lock();
        for p in &report.active {
            s.insert(p.clone(), true);
        }
        for p in &report.down {
            s.insert(p.clone(), false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> HostNetworkState {
        HostNetworkState {
            network: json!({
                "networks": [
                    {"id": "priv", "name": "private", "network_type": "vxlan", "segmentation_id": 7,
                     "mtu": 1450, "admin_state_up": true, "external": false,
                     "subnets": [{"id": "s4", "ip_version": 4, "cidr": "10.0.0.0/24",
                                  "gateway_ip": "10.0.0.1", "enable_dhcp": true}]},
                    {"id": "pub", "name": "public", "network_type": "flat", "physical_network": "public",
                     "mtu": 1500, "admin_state_up": true, "external": true,
                     "subnets": [{"id": "p4", "ip_version": 4, "cidr": "172.24.4.0/24",
                                  "gateway_ip": "172.24.4.1", "enable_dhcp": false},
                                 {"id": "p6", "ip_version": 6, "cidr": "2001:db8::/64",
                                  "gateway_ip": "2001:db8::1", "enable_dhcp": false}]}
                ],
                "ports": [
                    {"id": "port1-aaaaaaaa", "network_id": "priv", "project_id": "p",
                     "mac_address": "fa:16:3e:00:00:01",
                     "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.5"}],
                     "device_id": "vm1", "device_owner": "compute:nova", "host": "h1",
                     "admin_state_up": true, "port_security_enabled": true, "security_groups": []},
                    {"id": "dhcp1", "network_id": "priv", "mac_address": "fa:16:3e:00:00:02",
                     "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.2"}],
                     "device_id": "dhcp-h1", "device_owner": "network:dhcp", "host": "h1",
                     "admin_state_up": true}
                ],
                "security_groups": [],
                "routers": []
            }),
            host_ips: [("h1".to_string(), "192.0.2.1".to_string())].into(),
            metadata_secret: "s".into(),
        }
    }

    fn driver() -> (
        Arc<NetplaneDriver>,
        Arc<FakeNetplane>,
        Arc<StaticNetworkControl>,
    ) {
        let np = Arc::new(FakeNetplane::new());
        let control = Arc::new(StaticNetworkControl::default());
        *control.state.lock() = Some(state());
        let mut s = NetplaneSettings::new("h1");
        s.metadata_url = "http://127.0.0.1:1/metadata".into();
        s.tap_timeout = Duration::from_secs(2);
        let d = NetplaneDriver::new(s, np.clone(), control.clone());
        (d, np, control)
    }

    #[tokio::test]
    async fn a_pass_applies_reports_and_takes_the_public_gateways() {
        let (d, np, control) = driver();
        let pass = d.pass_once(false, 0).await;
        assert!(pass.error.is_none(), "{:?}", pass.error);
        assert!(pass.ready_taps.contains("tapport1-aaaaa"));
        let applied = np.current();
        let ext = applied.external.expect("external");
        assert_eq!(ext.network_id, "pub");
        assert_eq!(
            ext.addresses,
            vec![
                "172.24.4.1/24".parse().unwrap(),
                "2001:db8::1/64".parse().unwrap()
            ]
        );
        assert_eq!(applied.dhcp_servers.len(), 1);
        assert_eq!(
            applied.metadata.as_ref().map(|m| m.url.as_str()),
            Some("http://127.0.0.1:1/metadata")
        );
        let statuses = control.statuses.lock().clone();
        assert_eq!(statuses.get("port1-aaaaaaaa"), Some(&true));
        assert_eq!(statuses.get("dhcp1"), Some(&true));
        // Nothing changed: no apply, no report.
        let applies = np.applies();
        control.statuses.lock().clear();
        d.pass_once(false, 0).await;
        assert_eq!(np.applies(), applies);
        assert!(control.statuses.lock().is_empty());
        // Forced: applied again.
        d.pass_once(true, 0).await;
        assert_eq!(np.applies(), applies + 1);
    }

    #[tokio::test]
    async fn ensure_tap_waits_for_a_pass_and_fails_for_an_unknown_port() {
        let (d, _np, _control) = driver();
        let (_stop_tx, stop) = watch::channel(false);
        d.start(stop);
        d.wait_ready("tapport1-aaaaa", Duration::from_secs(5))
            .await
            .unwrap();
        let err = d
            .wait_ready("tapnothere", Duration::from_millis(700))
            .await
            .unwrap_err();
        assert!(err.contains("tapnothere"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_apply_is_an_error_of_the_pass() {
        let (d, np, _control) = driver();
        np.deny_root(true);
        let pass = d.pass_once(false, 0).await;
        assert!(pass.error.unwrap().contains("root"));
        assert!(pass.ready_taps.is_empty());
    }

    #[test]
    fn interfaces_parse() {
        let m = parse_interfaces("public:eth1, phys2:eth2").unwrap();
        assert_eq!(m["public"], "eth1");
        assert_eq!(m["phys2"], "eth2");
        assert!(parse_interfaces("").unwrap().is_empty());
        assert!(parse_interfaces("public").is_err());
    }

    #[test]
    fn auto_follows_the_agent_driver() {
        let mut c = Config::default();
        assert_eq!(driver_of(&c).unwrap(), Driver::Linux);
        c.agent.driver = "fake".into();
        assert_eq!(driver_of(&c).unwrap(), Driver::Fake);
        c.netplane.driver = "none".into();
        assert_eq!(driver_of(&c).unwrap(), Driver::None);
        c.netplane.driver = "bogus".into();
        assert!(driver_of(&c).is_err());
    }
}
