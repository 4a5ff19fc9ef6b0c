//! `nubo bench ...`: performance figures, printed and never asserted. The machine is shared and
//! noisy: run twice, read medians.
//!
//! `nubo bench tokens` measures, on a throw-away cloud in a temporary directory:
//! token validation in process (with 0 and with N revocation events), validation over HTTP on
//! loopback with keep-alive connections (requests/s, p50, p99), and token issue by password
//! and by token over HTTP.
//!
//! `nubo bench ports` measures Networking: port create over HTTP (p50/p99, one client and
//! several), then, with `--total` ports on the network, listing ports filtered by `device_id`
//! over HTTP (p50/p99), and one unfiltered list of them all.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use nubo_common::Config;
use serde_json::json;

use crate::server::Cloud;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Token validation and issue.
    Tokens(TokenBench),
    /// Port create and filtered port listing (Networking).
    Ports(PortBench),
    /// Server create -> ACTIVE (fake driver and QEMU), concurrent creates, listing (Compute).
    Servers(crate::bench_servers::ServerBench),
    /// Server create -> SSH-able with the real data plane and QEMU, by phase (root).
    Boot(crate::bench_boot::BootBench),
    /// Volume from a 1 GiB and a 10 GiB image, empty, from a snapshot (Block Storage).
    Volumes(crate::bench_volumes::VolumeBench),
}

#[derive(Args, Clone)]
pub struct TokenBench {
    /// Seconds per HTTP phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent keep-alive connections for the HTTP validation phase.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Revocation events to load for the second in-process phase.
    #[arg(long, default_value_t = 10_000)]
    revocations: usize,
    /// bcrypt cost of the admin password (Keystone's default is 12).
    #[arg(long, default_value_t = 12)]
    hash_cost: u32,
    /// Password-issue requests to time (each costs one bcrypt verification).
    #[arg(long, default_value_t = 20)]
    issue_requests: usize,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Tokens(args) => tokens(args).await,
        BenchCommand::Ports(args) => ports(args).await,
        BenchCommand::Servers(args) => crate::bench_servers::run(args).await,
        BenchCommand::Boot(args) => crate::bench_boot::run(args).await,
        BenchCommand::Volumes(args) => crate::bench_volumes::run(args).await,
    }
}

/// Sorted latencies in microseconds -> (p50, p99).
fn percentiles(mut micros: Vec<u64>) -> (f64, f64) {
    if micros.is_empty() {
        return (0.0, 0.0);
    }
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() as f64 - 1.0) * q).round() as usize] as f64;
    (at(0.50), at(0.99))
}

async fn tokens(args: TokenBench) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("nubo-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::default();
    config.server.data_dir = dir.clone();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.identity.password_hash_cost = args.hash_cost;
    config.identity.admin_password = "bench-secret".into();

    // Bind first so the catalog carries the real port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    config.server.listen = addr;
    let cloud = Cloud::open(config).await?;
    let identity = cloud.identity.clone();
    println!(
        "nubo bench tokens: 2-core shared machine, figures are noisy; bcrypt cost {}",
        args.hash_cost
    );

    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "bench-secret"}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
    let admin = identity.issue_token(auth.clone()).await?;
    let subject = identity.issue_token(auth.clone()).await?;

    // In process.
    let in_process = |label: &str| {
        let identity = identity.clone();
        let token = subject.id.clone();
        let label = label.to_string();
        async move {
            for _ in 0..1000 {
                identity.validate_token(&token, false).await.expect("valid");
            }
            let mut samples = Vec::with_capacity(200);
            let started = Instant::now();
            let mut done = 0u64;
            while started.elapsed() < Duration::from_secs(2) {
                let t = Instant::now();
                for _ in 0..100 {
                    identity.validate_token(&token, false).await.expect("valid");
                }
                samples.push((t.elapsed().as_nanos() / 100) as u64);
                done += 100;
            }
            let (p50, p99) = percentiles(samples);
            let per_op = started.elapsed().as_secs_f64() * 1e6 / done as f64;
            println!(
                "validate in process ({label}): {per_op:.2} us/op mean, p50 {:.2} us, p99 {:.2} us (batches of 100), {done} ops",
                p50 / 1000.0,
                p99 / 1000.0
            );
        }
    };
    in_process("0 revocation events").await;
    identity.load_random_revocations(args.revocations).await?;
    in_process(&format!("{} revocation events", args.revocations)).await;

    // Over HTTP.
    let router = cloud.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let url_path = "/identity/v3/auth/tokens";
    let validate = Arc::new(move || {
        http::Request::get(url_path)
            .header("host", addr.to_string())
            .header("x-auth-token", admin.id.clone())
            .header("x-subject-token", subject.id.clone())
            .body(Full::new(Bytes::new()))
            .expect("request")
    });
    let report = http_phase(
        addr,
        args.concurrency,
        Duration::from_secs(args.seconds),
        None,
        validate.clone(),
    )
    .await?;
    report.print(&format!("validate over HTTP, c={}", args.concurrency));
    let report = http_phase(addr, 1, Duration::from_secs(args.seconds), None, validate).await?;
    report.print("validate over HTTP, c=1");

    let body = serde_json::to_vec(&auth)?;
    let issue = Arc::new(move || {
        http::Request::post(url_path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .expect("request")
    });
    let report = http_phase(
        addr,
        2,
        Duration::from_secs(600),
        Some(args.issue_requests),
        issue,
    )
    .await?;
    report.print("issue by password over HTTP, c=2");

    let parent = identity.issue_token(auth).await?.id;
    let by_token = serde_json::to_vec(
        &json!({"auth": {"identity": {"methods": ["token"], "token": {"id": parent}}}}),
    )?;
    let issue_by_token = Arc::new(move || {
        http::Request::post(url_path)
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(by_token.clone())))
            .expect("request")
    });
    let report = http_phase(
        addr,
        args.concurrency,
        Duration::from_secs(args.seconds),
        None,
        issue_by_token,
    )
    .await?;
    report.print(&format!("issue by token over HTTP, c={}", args.concurrency));

    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct PhaseReport {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl PhaseReport {
    fn print(self, label: &str) {
        let rate = self.ok as f64 / self.elapsed.as_secs_f64();
        let (p50, p99) = percentiles(self.latencies_us);
        println!(
            "{label}: {rate:.0} req/s, p50 {:.3} ms, p99 {:.3} ms ({} ok, {} failed, {:.1} s)",
            p50 / 1000.0,
            p99 / 1000.0,
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64()
        );
    }
}

type MakeRequest = Arc<dyn Fn() -> http::Request<Full<Bytes>> + Send + Sync>;

/// `concurrency` keep-alive connections, each sending its next request when the previous one is
/// answered, for `duration` or until `max_requests` in total.
async fn http_phase(
    addr: SocketAddr,
    concurrency: usize,
    duration: Duration,
    max_requests: Option<usize>,
    make: MakeRequest,
) -> anyhow::Result<PhaseReport> {
    let started = Instant::now();
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(
        max_requests.unwrap_or(usize::MAX),
    ));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let make = make.clone();
        let budget = budget.clone();
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let (mut ok, mut failed, mut latencies) = (0usize, 0usize, Vec::new());
            while started.elapsed() < duration {
                let left = budget.fetch_update(
                    std::sync::atomic::Ordering::AcqRel,
                    std::sync::atomic::Ordering::Acquire,
                    |n| n.checked_sub(1),
                );
                if left.is_err() {
                    break;
                }
                let t = Instant::now();
                let response = sender.send_request(make()).await?;
                let status = response.status();
                response.into_body().collect().await?;
                latencies.push(t.elapsed().as_micros() as u64);
                if status.is_success() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            anyhow::Ok((ok, failed, latencies))
        }));
    }
    let mut report = PhaseReport {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for worker in workers {
        let (ok, failed, latencies) = worker.await??;
        report.ok += ok;
        report.failed += failed;
        report.latencies_us.extend(latencies);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

#[derive(Args, Clone)]
pub struct PortBench {
    /// Port creates to time over HTTP, per phase.
    #[arg(long, default_value_t = 500)]
    creates: usize,
    /// Concurrent keep-alive connections for the second create phase.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Ports on the network before the listing phase.
    #[arg(long, default_value_t = 10_000)]
    total: usize,
    /// Seconds of filtered listing.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

async fn ports(args: PortBench) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("nubo-bench-ports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::default();
    config.server.data_dir = dir.clone();
    config.identity.password_hash_cost = 4;
    config.identity.admin_password = "bench-secret".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    config.server.listen = addr;
    let cloud = Cloud::open(config).await?;
    println!("nubo bench ports: 2-core shared machine, figures are noisy (SQLite WAL, synchronous=NORMAL)");

    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "bench-secret"}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
    let token = cloud.identity.issue_token(auth).await?.id;
    let network = cloud.network.clone();
    let admin = nubo_network::service::Ctx::system(&cloud.bootstrap.admin_project_id);
    let body = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    network
        .update_quota(
            &admin,
            &cloud.bootstrap.admin_project_id,
            body(json!({"port": -1})),
        )
        .await?;
    let net = network
        .create_networks(
            &admin,
            nubo_network::input::CreateBody::One(body(json!({"name": "bench"}))),
        )
        .await?;
    let net_id = net["network"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    network
        .create_subnets(
            &admin,
            nubo_network::input::CreateBody::One(body(json!({
                "network_id": net_id, "cidr": "10.128.0.0/16", "ip_version": 4}))),
        )
        .await?;

    let router = cloud.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let create = {
        let token = token.clone();
        let net_id = net_id.clone();
        let counter = counter.clone();
        Arc::new(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = json!({"port": {"network_id": net_id, "device_id": format!("server-{n}"),
                                        "device_owner": "compute:nova"}});
            http::Request::post("/network/v2.0/ports")
                .header("host", addr.to_string())
                .header("x-auth-token", token.clone())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request")
        })
    };
    let report = http_phase(
        addr,
        1,
        Duration::from_secs(600),
        Some(args.creates),
        create.clone(),
    )
    .await?;
    report.print("port create over HTTP, c=1");
    let report = http_phase(
        addr,
        args.concurrency,
        Duration::from_secs(600),
        Some(args.creates),
        create,
    )
    .await?;
    report.print(&format!("port create over HTTP, c={}", args.concurrency));

    // Fill up to `total` ports in process (each still one IPAM transaction).
    let started = Instant::now();
    let mut made = counter.load(std::sync::atomic::Ordering::Relaxed);
    let filled_from = made;
    while made < args.total {
        network
            .create_server_port(&nubo_network::ServerPortRequest {
                project_id: cloud.bootstrap.admin_project_id.clone(),
                network_id: net_id.clone(),
                server_id: format!("server-{made}"),
                host: "bench-host".into(),
                ..Default::default()
            })
            .await?;
        made += 1;
    }
    if made > filled_from {
        println!(
            "filled {} more ports in process: {:.2} ms/port mean",
            made - filled_from,
            started.elapsed().as_secs_f64() * 1000.0 / (made - filled_from) as f64
        );
    }

    let total = made;
    let list = {
        let token = token.clone();
        let picks = std::sync::atomic::AtomicUsize::new(1);
        Arc::new(move || {
            // A spread of device ids (a prime stride), not the same one every time.
            let i = picks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = i.wrapping_mul(7919) % total;
            http::Request::get(format!("/network/v2.0/ports?device_id=server-{n}"))
                .header("host", addr.to_string())
                .header("x-auth-token", token.clone())
                .body(Full::new(Bytes::new()))
                .expect("request")
        })
    };
    let report = http_phase(addr, 1, Duration::from_secs(args.seconds), None, list).await?;
    report.print(&format!(
        "list {total} ports filtered by device_id over HTTP, c=1"
    ));

    let all = {
        let token = token.clone();
        Arc::new(move || {
            http::Request::get("/network/v2.0/ports")
                .header("host", addr.to_string())
                .header("x-auth-token", token.clone())
                .body(Full::new(Bytes::new()))
                .expect("request")
        })
    };
    let report = http_phase(addr, 1, Duration::from_secs(600), Some(5), all).await?;
    report.print(&format!(
        "list all {total} ports over HTTP (unfiltered), c=1"
    ));

    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
