//! `nubo bench servers`: server figures, printed and never asserted, on the in-process fleet
//! of `nubo_agent::testing` (the real API and internal agent API over loopback HTTP, real
//! agents): create -> ACTIVE on the fake driver (sequential, and 20 at once), `GET
//! /servers/detail` with 1,000 servers, and create -> ACTIVE and create -> the guest's ready
//! marker on QEMU (TCG here) when QEMU and root are available. The machine is shared and noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use nubo_agent::testing::{Fleet, FleetSpec, ADMIN_TOKEN, MEMBER_TOKEN};
use serde_json::json;

#[derive(Args, Clone)]
pub struct ServerBench {
    /// Sequential creates on the fake driver.
    #[arg(long, default_value_t = 100)]
    creates: usize,
    /// Servers for the list phase.
    #[arg(long, default_value_t = 1000)]
    list_servers: usize,
    /// `GET /servers/detail` requests in the list phase.
    #[arg(long, default_value_t = 30)]
    list_requests: usize,
    /// Sequential creates on QEMU (0: skip the QEMU phase).
    #[arg(long, default_value_t = 5)]
    qemu_creates: usize,
    /// The guest image for the QEMU phase.
    #[arg(long, default_value = "tools/guest-image/out/tiny.raw")]
    image: std::path::PathBuf,
}

fn pct(mut ms: Vec<f64>) -> (f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Creates one server and polls (1 ms) until ACTIVE; returns milliseconds.
async fn create_active(fleet: &Fleet, name: &str, flavor: &str) -> (String, f64) {
    let t = Instant::now();
    let id = fleet
        .create_server(name, flavor)
        .await
        .expect("create accepted");
    loop {
        let (_, v) = fleet
            .call(
                "GET",
                &format!("/compute/v2.1/servers/{id}"),
                MEMBER_TOKEN,
                None,
            )
            .await;
        match v["server"]["status"].as_str() {
            Some("ACTIVE") => break,
            Some("ERROR") => panic!("server {id} went to ERROR: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    (id, t.elapsed().as_secs_f64() * 1000.0)
}

async fn delete_all(fleet: &Fleet, ids: &[String]) {
    for id in ids {
        fleet
            .call(
                "DELETE",
                &format!("/compute/v2.1/servers/{id}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
    }
    for id in ids {
        fleet.wait_status(id, &["GONE"]).await;
    }
}

pub async fn run(args: ServerBench) -> anyhow::Result<()> {
    println!(
        "nubo bench servers: 2-core shared machine, figures are noisy; debug or release as built"
    );
    // 1. Fake driver, sequential.
    let spec = FleetSpec {
        hosts: 10,
        vcpus: 64,
        memory_mb: 1 << 20,
        ..FleetSpec::default()
    };
    let fleet = Arc::new(Fleet::start(spec).await);
    fleet.wait_registered().await;
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for i in 0..args.creates {
        let (id, ms) = create_active(&fleet, &format!("seq{i}"), "1").await;
        times.push(ms);
        ids.push(id);
    }
    let (p50, p99) = pct(times);
    println!("fake driver, create -> ACTIVE, sequential ({} servers, 10 hosts): p50 {p50:.1} ms, p99 {p99:.1} ms", args.creates);
    delete_all(&fleet, &ids).await;
    // 2. 20 at once.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let f = fleet.clone();
        tasks.push(tokio::spawn(async move {
            create_active(&f, &format!("par{i}"), "1").await
        }));
    }
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for task in tasks {
        let (id, ms) = task.await?;
        times.push(ms);
        ids.push(id);
    }
    let wall = t.elapsed().as_secs_f64() * 1000.0;
    let (p50, p99) = pct(times);
    println!("fake driver, 20 concurrent creates: all ACTIVE in {wall:.1} ms; per server p50 {p50:.1} ms, p99 {p99:.1} ms");
    delete_all(&fleet, &ids).await;
    // 3. List 1,000 with details.
    let mut ids = Vec::new();
    for chunk in 0..args.list_servers.div_ceil(50) {
        let mut tasks = Vec::new();
        for i in 0..50.min(args.list_servers - chunk * 50) {
            let f = fleet.clone();
            let name = format!("list{}", chunk * 50 + i);
            tasks.push(tokio::spawn(async move {
                f.create_server(&name, "1").await.expect("create")
            }));
        }
        for task in tasks {
            ids.push(task.await?);
        }
    }
    for id in &ids {
        fleet.wait_status(id, &["ACTIVE"]).await;
    }
    let mut times = Vec::new();
    let mut count = 0;
    eprintln!("listing {} servers {} times", ids.len(), args.list_requests);
    for _ in 0..args.list_requests {
        let t = Instant::now();
        // Timed to the response's last byte; parsing it is the client's work.
        let (_, body) = fleet
            .call_raw(
                "GET",
                "/compute/v2.1/servers/detail",
                MEMBER_TOKEN,
                "2.79",
                None,
            )
            .await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        count = v["servers"].as_array().map(|a| a.len()).unwrap_or(0);
    }
    let (p50, p99) = pct(times);
    println!("GET /servers/detail over HTTP with {count} servers (2.79): p50 {p50:.1} ms, p99 {p99:.1} ms ({} requests)", args.list_requests);
    delete_all(&fleet, &ids).await;
    // 4. QEMU.
    if args.qemu_creates > 0 {
        qemu(&args).await?;
    }
    Ok(())
}

async fn qemu(args: &ServerBench) -> anyhow::Result<()> {
    let have_qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !have_qemu || !root || !args.image.exists() {
        eprintln!(
            "SKIP: QEMU phase needs qemu-system-x86_64, root (taps) and {}",
            args.image.display()
        );
        return Ok(());
    }
    let image = std::fs::read(&args.image)?;
    let bsdir = tempfile::tempdir()?;
    let store: Arc<dyn nubo_blockstore::BlockStore> =
        Arc::new(nubo_blockstore::LocalStore::open(bsdir.path())?);
    let fleet = Fleet::start_on(
        FleetSpec {
            hosts: 0,
            ..FleetSpec::default()
        },
        Some(store),
        image,
    )
    .await;
    let runtime = tempfile::Builder::new().prefix("nq").tempdir_in("/tmp")?;
    let hv = nubo_hypervisor::QemuHypervisor::open(nubo_hypervisor::QemuConfig::new(
        runtime.path().join("vms"),
    ))
    .await?;
    let (stop, task) =
        fleet.start_custom_agent("qemu-0", Arc::new(hv), Arc::new(nubo_agent::RealHost));
    for _ in 0..500 {
        let (_, v) = fleet
            .call("GET", "/compute/v2.1/os-hypervisors", ADMIN_TOKEN, None)
            .await;
        if v["hypervisors"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut active = Vec::new();
    let mut ready = Vec::new();
    for i in 0..args.qemu_creates {
        let t = Instant::now();
        let (id, ms) = create_active(&fleet, &format!("q{i}"), "1").await;
        active.push(ms);
        // The ready marker (no DHCP on this host's taps: the guest waits out its DHCP and
        // metadata timeouts, ~55 s; measured on the first VM only).
        if i == 0 {
            loop {
                let (_, v) = fleet
                    .call(
                        "POST",
                        &format!("/compute/v2.1/servers/{id}/action"),
                        MEMBER_TOKEN,
                        Some(json!({"os-getConsoleOutput": {}})),
                    )
                    .await;
                if v["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("nubo-guest: ready"))
                {
                    ready.push(t.elapsed().as_secs_f64());
                    break;
                }
                if t.elapsed() > Duration::from_secs(180) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        delete_all(&fleet, &[id]).await;
    }
    let (p50, p99) = pct(active);
    println!("QEMU (TCG), create -> ACTIVE (QEMU process running), sequential {}: p50 {p50:.1} ms, p99 {p99:.1} ms", args.qemu_creates);
    match ready.first() {
        Some(s) => println!("QEMU (TCG), create -> 'nubo-guest: ready' on the console: {s:.1} s (no DHCP/metadata here: the guest waits out its timeouts)"),
        None => println!("QEMU (TCG): ready marker not seen within 180 s"),
    }
    let _ = stop.send(true);
    let _ = task.await;
    Ok(())
}
