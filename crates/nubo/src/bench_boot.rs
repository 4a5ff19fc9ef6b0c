//! `nubo bench boot`: server create -> SSH-able with the real data plane and QEMU (TCG), split
//! into phases. Printed, never asserted; the machine is shared and noisy (TCG boots are very
//! sensitive to other load): run it twice and read medians.
//!
//! A throw-away control plane (the in-process fleet: Networking, Compute, the internal agent
//! API, the metadata service) and one agent with the QEMU driver and the Linux netplane, on
//! this host (root; it takes the host's data-plane lock, so no `nubo up` may run its data plane
//! meanwhile). Each VM is created, timed and deleted before the next (sequential, so boots do
//! not slow each other down). The timeline of one VM:
//!
//! ```text
//!   POST /servers ─ 202 ─ claimed ─ disk cloned ─ tap wait ─ tap ready ─ QEMU started ─┐
//!   (api)      (schedule)  (ports + disk clone) (hand-off)  (data plane)  (QEMU start)  │
//!   ┌───────────────────────────────────────────────────────────────────────────────────┘
//!   └ rcS boot marker ─ modules loaded ─ DHCP lease ─ metadata read ─ sshd up ─ SSH banner ─ ssh true
//!     (firmware + kernel)  (modules)      (DHCP)       (metadata)     (sshd)   (SSH-able)   (login)
//! ```
//!
//! Server-side points come from the processes' own tracing events (captured in process);
//! guest points from the serial console, tailed every 20 ms; "SSH-able" is the first poll
//! (every 100 ms, from the network's DHCP namespace) that reads dropbear's banner, and
//! "login" a full `ssh root@vm true` with the key from the metadata service.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use nubo_agent::netplane::{HostLock, NetplaneDriver, NetplaneHost, NetplaneSettings};
use nubo_agent::testing::{Fleet, FleetSpec, ADMIN_TOKEN, MEMBER_TOKEN, PROJECT};
use nubo_netplane::{HostNetwork, LinuxNetplane, Netplane};
use parking_lot::Mutex;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Args, Clone)]
pub struct BootBench {
    /// VMs to boot, one after the other.
    #[arg(long, default_value_t = 10)]
    vms: usize,
    /// The guest image (raw).
    #[arg(long, default_value = "tools/guest-image/out/tiny.raw")]
    image: PathBuf,
    /// Flavor id (1: m1.nano, 128 MiB).
    #[arg(long, default_value = "1")]
    flavor: String,
    /// Give up on one VM after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// One captured tracing event: when, its message, and its fields with those of its spans.
#[derive(Debug, Clone)]
struct Captured {
    at: Instant,
    message: String,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// Keeps the events of `nubo*` targets (the points of the timeline).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl<S> Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(f);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if !event.metadata().target().starts_with("nubo") {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(sf) = span.extensions().get::<Fields>() {
                    for (k, v) in &sf.0 {
                        f.0.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        let message = f.0.remove("message").unwrap_or_default();
        self.0.lock().push(Captured {
            at: Instant::now(),
            message,
            fields: f.0,
        });
    }
}

impl Capture {
    /// The first event with `message` whose field `key` contains `value`.
    fn find(&self, message: &str, key: &str, value: &str) -> Option<Captured> {
        self.0
            .lock()
            .iter()
            .find(|e| e.message == message && e.fields.get(key).is_some_and(|v| v.contains(value)))
            .cloned()
    }
}

const MARKERS: [(&str, &str); 6] = [
    ("boot", "nubo-guest: boot "),
    ("modules", "nubo-guest: modules loaded"),
    ("dhcp", "nubo-guest: ip="),
    ("metadata", "nubo-guest: datasource="),
    ("sshd", "nubo-guest: sshd up"),
    ("ready", "nubo-guest: ready"),
];

/// Tails a console log, recording when each marker first appears.
fn tail_console(
    path: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> BTreeMap<&'static str, Instant> {
    let mut seen = BTreeMap::new();
    let mut offset = 0usize;
    let mut text = String::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && seen.len() < MARKERS.len() {
        if let Ok(bytes) = std::fs::read(&path) {
            if bytes.len() > offset {
                text.push_str(&String::from_utf8_lossy(&bytes[offset..]));
                offset = bytes.len();
                let now = Instant::now();
                for (name, needle) in MARKERS {
                    if !seen.contains_key(name) && text.contains(needle) {
                        seen.insert(name, now);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

/// Polls `addr` port 22 from inside namespace `ns` every 100 ms until sshd's banner arrives.
fn wait_banner(ns: &str, addr: SocketAddr, deadline: Instant) -> Option<Instant> {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).ok()?;
    // This thread only: a socket belongs to the namespace it is made in.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return None;
    }
    let mut next = Instant::now();
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf) {
                if buf[..n].starts_with(b"SSH-") {
                    return Some(Instant::now());
                }
            }
        }
        next += Duration::from_millis(100);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    None
}

struct Sample {
    /// Offsets from POST, seconds, by point name.
    points: BTreeMap<&'static str, f64>,
}

const PHASES: [(&str, &str, &str); 13] = [
    ("api", "post", "accepted"),
    ("schedule", "accepted", "claimed"),
    ("ports + disk clone", "claimed", "cloned"),
    ("hand-off to agent", "cloned", "tap_wait"),
    ("data plane (tap)", "tap_wait", "tap_ready"),
    ("QEMU start", "tap_ready", "qemu"),
    ("firmware + kernel", "qemu", "boot"),
    ("modules", "boot", "modules"),
    ("DHCP", "modules", "dhcp"),
    ("metadata", "dhcp", "metadata"),
    ("sshd (host key, start)", "metadata", "sshd"),
    ("SSH-able (banner)", "sshd", "banner"),
    ("ssh login", "banner", "login"),
];

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub async fn run(args: BootBench) -> anyhow::Result<()> {
    let capture = Capture::default();
    let filter = tracing_subscriber::EnvFilter::new(
        "warn,nubo_compute=debug,nubo_blockstore=info,nubo_agent=info,nubo_hypervisor=info",
    );
    let _ = tracing_subscriber::registry()
        .with(capture.clone().with_filter(filter))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .try_init();

    let have_qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_qemu || !nubo_netplane::is_root() || !args.image.exists() {
        println!(
            "SKIP: nubo bench boot needs qemu-system-x86_64, root (the data plane) and {}",
            args.image.display()
        );
        return Ok(());
    }
    let work = tempfile::Builder::new()
        .prefix("nubo-bench-boot")
        .tempdir_in("/tmp")?;
    let _lock = match HostLock::acquire(&work.path().join("netplane")) {
        Ok(l) => l,
        Err(e) => {
            println!("SKIP: {e}: stop it first (the benchmark runs its own data plane)");
            return Ok(());
        }
    };
    let key = work.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()?;
    anyhow::ensure!(status.success(), "ssh-keygen failed");
    let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;

    // The control plane, on file-backed storage.
    let image = std::fs::read(&args.image)?;
    let store: Arc<dyn nubo_blockstore::BlockStore> = Arc::new(nubo_blockstore::LocalStore::open(
        work.path().join("blockstore"),
    )?);
    let fleet = Fleet::start_on(
        FleetSpec {
            hosts: 0,
            ..FleetSpec::default()
        },
        Some(store),
        image,
    )
    .await;
    // The agent: QEMU + the real data plane on this host.
    let np = LinuxNetplane::new(nubo_netplane::Config {
        state_dir: work.path().join("netplane"),
        local_ip: Some("127.0.0.1".parse()?),
        ..nubo_netplane::Config::default()
    });
    let control = Arc::new(
        nubo_agent::HttpControlPlane::new(&format!("http://{}", fleet.addr), "fleet-secret")
            .map_err(anyhow::Error::msg)?,
    );
    let mut s = NetplaneSettings::new("bench-0");
    s.metadata_url = format!("http://{}/metadata", fleet.addr);
    let driver = NetplaneDriver::new(s, Arc::new(np.clone()), control);
    let plumbing = Arc::new(NetplaneHost::new(driver, Arc::new(nubo_agent::RealHost)));
    let runtime = work.path().join("vms");
    let hv =
        nubo_hypervisor::QemuHypervisor::open(nubo_hypervisor::QemuConfig::new(runtime.clone()))
            .await?;
    let (stop, task) = fleet.start_custom_agent("bench-0", Arc::new(hv), plumbing);

    let result = measure(&args, &fleet, &capture, &runtime, &key, &pubkey).await;

    let _ = stop.send(true);
    let _ = task.await;
    let _ = np.apply(&HostNetwork::default()).await;
    fleet.stop().await;
    result
}

async fn measure(
    args: &BootBench,
    fleet: &Fleet,
    capture: &Capture,
    runtime: &Path,
    key: &Path,
    pubkey: &str,
) -> anyhow::Result<()> {
    // A keypair, and a group that lets SSH in.
    let (st, v) = fleet
        .call(
            "POST",
            "/compute/v2.1/os-keypairs",
            MEMBER_TOKEN,
            Some(json!({"keypair": {"name": "bench", "public_key": pubkey.trim()}})),
        )
        .await;
    anyhow::ensure!(st == 200 || st == 201, "keypair: {st} {v}");
    let ctx = nubo_network::service::Ctx::system(PROJECT);
    let sg = fleet
        .network
        .create_security_groups(
            &ctx,
            nubo_network::input::CreateBody::One(
                json!({"name": "bench"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await?;
    let sg_id = sg["security_group"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    fleet
        .network
        .create_security_group_rules(
            &ctx,
            nubo_network::input::CreateBody::One(
                json!({"security_group_id": sg_id, "direction": "ingress", "protocol": "tcp",
                       "port_range_min": 22, "port_range_max": 22})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ),
        )
        .await?;
    let dhcp_ns = format!("nubo-dhcp-{}", fleet.private_network);

    // Warm up: registered, the private network's DHCP server runs.
    let t = Instant::now();
    while !Path::new(&format!("/run/netns/{dhcp_ns}")).exists() {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "the data plane did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut samples = Vec::new();
    for i in 0..args.vms {
        match one(args, fleet, capture, runtime, key, &dhcp_ns, i).await {
            Ok(s) => {
                let total = s.points.get("login").copied().unwrap_or(f64::NAN);
                let qemu = s.points.get("qemu").copied().unwrap_or(f64::NAN);
                println!("vm {i}: SSH-able (login done) {total:.2} s, QEMU started at {qemu:.2} s");
                samples.push(s);
            }
            Err(e) => println!("vm {i}: {e}"),
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!(
        "nubo bench boot: {} of {} VMs, tiny image, QEMU TCG, sequential; load average {}",
        samples.len(),
        args.vms,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("(a shared, noisy 2-core machine: TCG boot times move with other load)");
    println!("{:<26} {:>9} {:>9}", "phase", "p50 (s)", "p90 (s)");
    let phase = |from: &str, to: &str| -> Vec<f64> {
        samples
            .iter()
            .filter_map(|s| Some(s.points.get(to)? - s.points.get(from)?))
            .collect()
    };
    for (name, from, to) in PHASES {
        let v = phase(from, to);
        println!(
            "{name:<26} {:>9.3} {:>9.3}",
            pct(v.clone(), 0.5),
            pct(v, 0.9)
        );
    }
    for (name, from, to) in [
        ("not the guest (POST -> QEMU started)", "post", "qemu"),
        ("guest (QEMU -> SSH banner)", "qemu", "banner"),
        ("create -> SSH banner", "post", "banner"),
        ("create -> ssh login done", "post", "login"),
    ] {
        let v = phase(from, to);
        println!(
            "{name:<38} p50 {:>7.3} s  p90 {:>7.3} s",
            pct(v.clone(), 0.5),
            pct(v, 0.9)
        );
    }
    Ok(())
}

async fn one(
    args: &BootBench,
    fleet: &Fleet,
    capture: &Capture,
    runtime: &Path,
    key: &Path,
    dhcp_ns: &str,
    i: usize,
) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let t0 = Instant::now();
    let (st, v) = fleet
        .call(
            "POST",
            "/compute/v2.1/servers",
            MEMBER_TOKEN,
            Some(
                json!({"server": {"name": format!("boot{i}"), "imageRef": fleet.image_id,
                "flavorRef": args.flavor, "key_name": "bench",
                "security_groups": [{"name": "bench"}],
                "networks": [{"uuid": fleet.private_network}]}}),
            ),
        )
        .await;
    let accepted = Instant::now();
    anyhow::ensure!(st == 202, "create: {st} {v}");
    let id = v["server"]["id"].as_str().unwrap_or_default().to_string();
    let stop_tail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tail = {
        let path = runtime.join(&id).join("console.log");
        let stop = stop_tail.clone();
        std::thread::spawn(move || tail_console(path, stop))
    };
    let result = async {
        // The fixed IPv4, once the port exists.
        let ip = loop {
            anyhow::ensure!(Instant::now() < deadline, "no address");
            let ports = fleet.network.ports_of_device(&id).await?;
            if let Some(ip) = ports
                .iter()
                .flat_map(|p| p.fixed_ips.iter())
                .find(|f| !f.ip_address.contains(':'))
            {
                break (ip.ip_address.clone(), ports[0].id.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (ip, port) = ip;
        let addr: SocketAddr = format!("{ip}:22").parse()?;
        let ns = dhcp_ns.to_string();
        let banner = tokio::task::spawn_blocking(move || wait_banner(&ns, addr, deadline))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no SSH banner from {ip} in {} s", args.timeout))?;
        // A full login with the key the guest got from the metadata service.
        let login = loop {
            let ok = tokio::process::Command::new("ip")
                .args(["netns", "exec", dhcp_ns, "ssh", "-i"])
                .arg(key)
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ConnectTimeout=5",
                    "-o",
                    "LogLevel=ERROR",
                ])
                .arg(format!("root@{ip}"))
                .arg("true")
                .status()
                .await
                .is_ok_and(|s| s.success());
            if ok {
                break Instant::now();
            }
            anyhow::ensure!(Instant::now() < deadline, "ssh login to {ip} failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok((port, banner, login))
    }
    .await;
    stop_tail.store(true, std::sync::atomic::Ordering::Relaxed);
    let markers = tail.join().unwrap_or_default();
    let (_, _) = fleet
        .call(
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    fleet.wait_status(&id, &["GONE"]).await;
    let (port, banner, login) = result?;

    let at = |t: Instant| t.duration_since(t0).as_secs_f64();
    let mut points: BTreeMap<&'static str, f64> = BTreeMap::new();
    points.insert("post", 0.0);
    points.insert("accepted", at(accepted));
    if let Some(e) = capture.find("claimed", "server_id", &id) {
        points.insert("claimed", at(e.at));
    }
    if let Some(e) = capture.find("clone created", "clone", &id) {
        points.insert("cloned", at(e.at));
    }
    let tap = nubo_netplane::snapshot::tap_name(&port);
    if let Some(e) = capture.find("tap ready", "tap", &tap) {
        let waited: f64 = e
            .fields
            .get("waited_ms")
            .and_then(|w| w.parse().ok())
            .unwrap_or(0.0);
        points.insert("tap_ready", at(e.at));
        points.insert("tap_wait", at(e.at) - waited / 1000.0);
    }
    if let Some(e) = capture.find("QEMU started", "vm_id", &id) {
        points.insert("qemu", at(e.at));
    }
    for (name, t) in markers {
        points.insert(name, at(t));
    }
    points.insert("banner", at(banner));
    points.insert("login", at(login));
    Ok(Sample { points })
}
