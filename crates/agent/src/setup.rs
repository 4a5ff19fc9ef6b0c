//! Building an agent from the configuration (`[agent]`): `nubo agent --config FILE` on a
//! hypervisor host, and the agent `nubo up` runs inside its own process.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use nubo_blockstore::BlockStore;
use nubo_common::Config;
use nubo_hypervisor::{AccelMode, FakeHypervisor, Hypervisor, QemuConfig, QemuHypervisor};

use crate::{Agent, AgentSettings, FakeHost, HostPlumbing, HttpControlPlane, RealHost};

/// The machine's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Where the agent secret is read from.
pub fn secret_path(config: &Config) -> PathBuf {
    if config.agent.secret_file.as_os_str().is_empty() {
        config.server.data_dir.join("agent-secret")
    } else {
        config.agent.secret_file.clone()
    }
}

/// Builds the agent `config` describes. `blockstore` overrides `[agent] blockstore_dir` (the
/// in-process agent shares the API's handle).
pub async fn build(
    config: &Config,
    blockstore: Option<Arc<dyn BlockStore>>,
) -> Result<Arc<Agent>, String> {
    let a = &config.agent;
    let data_dir = &config.server.data_dir;
    let state_dir = if a.state_dir.as_os_str().is_empty() {
        data_dir.join("agent")
    } else {
        a.state_dir.clone()
    };
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let secret_file = secret_path(config);
    let secret = std::fs::read_to_string(&secret_file)
        .map_err(|e| {
            format!(
                "cannot read the agent secret {}: {e}",
                secret_file.display()
            )
        })?
        .trim()
        .to_string();
    let api_url = if a.api_url.is_empty() {
        config.public_url()
    } else {
        a.api_url.clone()
    };
    let control = Arc::new(HttpControlPlane::new(&api_url, &secret)?);
    let blockstore: Arc<dyn BlockStore> = match blockstore {
        Some(b) => b,
        None => {
            let dir = if a.blockstore_dir.as_os_str().is_empty() {
                data_dir.join("blockstore")
            } else {
                a.blockstore_dir.clone()
            };
            Arc::new(
                nubo_blockstore::LocalStore::open(&dir)
                    .map_err(|e| format!("block store {}: {e}", dir.display()))?,
            )
        }
    };
    let (hv, plumbing): (Arc<dyn Hypervisor>, Arc<dyn HostPlumbing>) = match a.driver.as_str() {
        "fake" => (
            Arc::new(FakeHypervisor::new()),
            Arc::new(FakeHost::default()),
        ),
        "qemu" => {
            let mut qemu = QemuConfig::new(state_dir.join("vms"));
            qemu.accel = AccelMode::from_str(&a.accel).map_err(|e| e.to_string())?;
            let hv = QemuHypervisor::open(qemu)
                .await
                .map_err(|e| format!("QEMU driver: {e}"))?;
            (Arc::new(hv), Arc::new(RealHost))
        }
        other => return Err(format!("unknown agent driver {other:?} (qemu or fake)")),
    };
    let mut settings = AgentSettings::new(
        if a.host.is_empty() {
            hostname()
        } else {
            a.host.clone()
        },
        state_dir,
    );
    if !a.host_ip.is_empty() {
        settings.host_ip = a.host_ip.clone();
    }
    settings.availability_zone = a.availability_zone.clone();
    // The data plane (issue 6): taps come from the netplane, config drives from `plumbing`.
    let plumbing =
        crate::netplane::plumbing(config, &settings, &api_url, control.clone(), plumbing)?;
    settings.long_poll = Duration::from_secs(30);
    Ok(Agent::new(settings, hv, blockstore, plumbing, control))
}
