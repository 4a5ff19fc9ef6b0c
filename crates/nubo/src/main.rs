//! `nubo`: the one binary of the Nubo cloud.
//!
//! ```text
//! nubo up    [--data-dir DIR] [--listen ADDR] [--config FILE]   the whole cloud on this machine
//! nubo api   --config FILE                                      the API alone (several nodes)
//! nubo agent --config FILE                                     a hypervisor host's node agent
//! nubo admin rotate-keys [--data-dir DIR] [--config FILE]       rotate the Fernet token keys
//! nubo bench tokens [...]                                       token issue/validation figures
//! ```

mod bench;
mod bench_boot;
mod bench_servers;
mod bench_volumes;
mod server;
mod up;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nubo_common::Config;

/// mimalloc, not glibc malloc: API responses build and drop many small JSON values (a list of
/// 1,000 servers spent a third of its time in glibc's malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "nubo",
    version,
    about = "Nubo: an OpenStack-compatible cloud in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole cloud on this machine in the foreground (API + services), until SIGINT/SIGTERM.
    Up {
        /// Where state lives (database, keys, images, disks). Default: ./nubo-data
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address the API listens on. Default: 127.0.0.1:8080
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// A TOML config file (see nubo.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the API alone, configured by FILE.
    Api {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the node agent of this hypervisor host, configured by FILE (`[agent]`).
    Agent {
        #[arg(long)]
        config: PathBuf,
    },
    /// Operator tasks.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Measure and print performance figures (never asserted).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum AdminTask {
    /// Promote the staged Fernet key to primary, stage a new one, prune old ones.
    RotateKeys {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove everything the (stopped) cloud's data plane made on this host: namespaces,
    /// bridges, taps, nft tables, dnsmasq and radvd (data plane, issue 6).
    NetplaneTeardown {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load_config(
    config: Option<&PathBuf>,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<Config> {
    let mut config = Config::load(config.map(PathBuf::as_path))?;
    if let Some(dir) = data_dir {
        config.server.data_dir = dir;
    }
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    Ok(config)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            data_dir,
            listen,
            config,
        } => {
            init_logging();
            let config = load_config(config.as_ref(), data_dir, listen)?;
            up::run(config).await
        }
        Command::Api { config } => {
            init_logging();
            let config = load_config(Some(&config), None, None)?;
            let cloud = server::Cloud::open(config).await?;
            cloud.serve().await
        }
        Command::Agent { config } => {
            init_logging();
            let config = load_config(Some(&config), None, None)?;
            let agent = nubo_agent::setup::build(&config, None)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let run = tokio::spawn(agent.run(stop_rx));
            server::shutdown_signal().await;
            let _ = stop_tx.send(true);
            let _ = run.await;
            Ok(())
        }
        Command::Admin {
            task: AdminTask::RotateKeys { data_dir, config },
        } => {
            let config = load_config(config.as_ref(), data_dir, None)?;
            let dir = server::key_dir(&config.server.data_dir);
            let primary =
                nubo_identity::keys::rotate_repository(&dir, config.identity.max_active_keys)?;
            println!(
                "rotated Fernet keys in {}: key {primary} is now primary",
                dir.display()
            );
            Ok(())
        }
        Command::Admin {
            task: AdminTask::NetplaneTeardown { data_dir, config },
        } => {
            let config = load_config(config.as_ref(), data_dir, None)?;
            let summary = nubo_agent::netplane::teardown(&config)
                .await
                .map_err(anyhow::Error::msg)?;
            println!("{summary}");
            Ok(())
        }
        Command::Bench { what } => bench::run(what).await,
    }
}
