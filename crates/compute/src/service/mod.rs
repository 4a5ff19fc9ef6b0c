//! The Compute service: every Nova operation as a method on [`ComputeService`], with its
//! authorization (Nova's default policy: project members act on their project's servers,
//! readers look, admins do everything and see every project), validation and orchestration.
//! One file per resource: `flavors`, `keypairs`, `servers` (create with undo, delete, list,
//! show, update), `actions` (power and other server actions), `scheduler` (filters, weigher,
//! atomic claims), `hosts` (the agent side: registration, desired state, reports), `metadata`
//! (the guest metadata service and config drive content), `quotas`, `views` (wire shapes per
//! microversion).
//!
//! ## The server state machine (Nova's `vm_state` / `task_state`)
//!
//! ```text
//!            create                      agent reports running
//!   (none) ─────────> building ──────────────────────────────────> active
//!                     scheduling -> networking ->                   │  ^
//!                     block_device_mapping -> spawning              │  │ os-start (powering-on)
//!                        │ every attempt failed                     │  │
//!                        v                              os-stop     v  │
//!                      error  <── (fault recorded)   (powering-off) stopped
//!
//!   active ─pause (pausing)─> paused ─unpause (unpausing)─> active
//!   active ─suspend (suspending)─> suspended ─resume (resuming)─> active
//!   active/stopped ─reboot (rebooting, rebooting_hard)─> active
//!   active/stopped/error ─rebuild (rebuilding -> rebuild_spawning)─> active
//!   any ─delete (deleting)─> gone: the agent destroys the VM, then ports, disk and row go
//! ```
//!
//! `status` is derived from the two (`views::status`). Every transition that needs the host is
//! written as desired state (`desired_power`, `reboot_seq`, `respawn_seq`, `deleting`) plus a
//! bump of the host's generation; the agent converges and reports, and `hosts::observe` moves
//! the state machine on.

pub mod actions;
pub mod aggregates;
pub mod flavors;
pub mod hosts;
pub mod images;
pub mod keypairs;
pub mod metadata;
pub mod netplane_state; // data plane (issue 6)
pub mod nova_network;
pub mod quotas;
pub mod scheduler;
pub mod server_extras;
pub mod server_groups;
pub mod servers;
pub mod views;
pub mod volume_attachments; // block storage (issue 7)

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nubo_blockstore::BlockStore;
use nubo_common::config::ComputeConfig;
use nubo_common::{Caller, Db, Error, Result};
use nubo_image::ImageService;
use nubo_network::NetworkService;
use parking_lot::Mutex;
use sqlx::Sqlite;
use tokio::sync::watch;

use crate::store;

/// The settings Compute runs with (from `[compute]`).
#[derive(Debug, Clone)]
pub struct ComputeSettings {
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    /// Pack servers onto the most loaded host instead of spreading them.
    pub pack: bool,
    pub max_build_attempts: u32,
    pub service_down_time: Duration,
    pub heartbeat_interval: Duration,
    pub build_timeout: Duration,
    pub default_az: String,
    pub quotas: quotas::QuotaDefaults,
    /// The agent secret (`Authorization: Bearer ...` on `/internal`).
    pub agent_secret: String,
    /// The secret of the metadata proxy's `X-Instance-ID-Signature` HMAC.
    pub metadata_secret: String,
}

impl ComputeSettings {
    pub fn from_config(
        config: &ComputeConfig,
        agent_secret: String,
        metadata_secret: String,
    ) -> ComputeSettings {
        ComputeSettings {
            cpu_allocation_ratio: config.cpu_allocation_ratio,
            ram_allocation_ratio: config.ram_allocation_ratio,
            disk_allocation_ratio: config.disk_allocation_ratio,
            pack: config.weigher == "pack",
            max_build_attempts: config.max_build_attempts.max(1),
            service_down_time: Duration::from_secs(config.service_down_time.max(1)),
            heartbeat_interval: Duration::from_secs(config.heartbeat_interval.max(1)),
            build_timeout: Duration::from_secs(config.build_timeout.max(1)),
            default_az: config.default_availability_zone.clone(),
            quotas: quotas::QuotaDefaults::from_config(config),
            agent_secret,
            metadata_secret,
        }
    }

    pub fn for_tests() -> ComputeSettings {
        ComputeSettings::from_config(
            &ComputeConfig::default(),
            "test-agent-secret".into(),
            "test-metadata-secret".into(),
        )
    }
}

/// Reads the secret in `path`, or makes one (32 random bytes, hex, mode 0600) if there is none.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim().to_string();
        if !text.is_empty() {
            return Ok(text);
        }
    }
    use rand::RngCore;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    Ok(secret)
}

/// A step of server create, for fault injection in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildStep {
    Claim,
    Ports,
    Disk,
    Desired,
}

pub struct ComputeService {
    pub(crate) db: Db,
    pub(crate) settings: ComputeSettings,
    pub(crate) image: Arc<ImageService>,
    pub(crate) network: Arc<NetworkService>,
    pub(crate) blockstore: Arc<dyn BlockStore>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Generation of each host's desired state, for long-polls in this process.
    host_signals: Mutex<HashMap<String, watch::Sender<i64>>>,
    /// A counter per server, bumped whenever a report changed it (build and action waiters).
    server_signals: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Servers whose create sequence runs in this process (it owns them until done).
    pub(crate) building: Mutex<HashSet<String>>,
    /// Injected failures: the next create fails at this step (tests).
    pub(crate) faults: Mutex<HashMap<BuildStep, u32>>,
    /// Turns true when the process shuts down: long-polls answer at once.
    shutdown: watch::Sender<bool>,
    /// Block Storage, once connected (`set_volume_service`; block storage, issue 7).
    pub(crate) volume: parking_lot::RwLock<Option<Arc<nubo_volume::VolumeService>>>,
}

/// A write transaction (`BEGIN IMMEDIATE`) holding this process's writer turn.
pub struct Tx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl ComputeService {
    /// Migrates the schema and creates the default flavors on first start.
    pub async fn new(
        db: Db,
        settings: ComputeSettings,
        image: Arc<ImageService>,
        network: Arc<NetworkService>,
        blockstore: Arc<dyn BlockStore>,
    ) -> Result<Arc<ComputeService>> {
        db.migrate("compute", store::MIGRATIONS).await?;
        let service = Arc::new(ComputeService {
            db,
            settings,
            image,
            network,
            blockstore,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            host_signals: Mutex::new(HashMap::new()),
            server_signals: Mutex::new(HashMap::new()),
            building: Mutex::new(HashSet::new()),
            faults: Mutex::new(HashMap::new()),
            volume: parking_lot::RwLock::new(None),
            shutdown: watch::channel(false).0,
        });
        service.ensure_default_flavors().await?;
        Ok(service)
    }

    pub fn settings(&self) -> &ComputeSettings {
        &self.settings
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The process is shutting down: every long-poll of the agent API answers now, so a
    /// graceful HTTP shutdown does not wait out their timeouts.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`Self::shut_down`] was called.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    /// Makes the next `times` creates fail at `step` (tests of the undo paths).
    pub fn inject_failure(&self, step: BuildStep, times: u32) {
        self.faults.lock().insert(step, times);
    }

    pub(crate) fn injected(&self, step: BuildStep) -> bool {
        let mut faults = self.faults.lock();
        match faults.get_mut(&step) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// A pooled connection for reads.
    pub(crate) async fn read(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        Ok(self.db.pool().acquire().await?)
    }

    /// Starts a write transaction: this process's turn, then SQLite's writer lock.
    pub(crate) async fn write(&self) -> Result<Tx> {
        let turn = self.write_lock.clone().lock_owned().await;
        let mut attempt = 0u64;
        loop {
            match self.db.pool().begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(Tx { tx, _turn: turn }),
                Err(err) if attempt < 50 && err.to_string().contains("locked") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Tells long-polls of `host` that its desired state is now at `generation`.
    pub(crate) fn signal_host(&self, host: &str, generation: i64) {
        let mut signals = self.host_signals.lock();
        let sender = signals
            .entry(host.to_string())
            .or_insert_with(|| watch::channel(0).0);
        sender.send_if_modified(|g| {
            if generation > *g {
                *g = generation;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn watch_host(&self, host: &str) -> watch::Receiver<i64> {
        let mut signals = self.host_signals.lock();
        signals
            .entry(host.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes whoever waits on a server.
    pub(crate) fn signal_server(&self, id: &str) {
        let signals = self.server_signals.lock();
        if let Some(sender) = signals.get(id) {
            sender.send_modify(|n| *n += 1);
        }
    }

    pub(crate) fn watch_server(&self, id: &str) -> watch::Receiver<u64> {
        let mut signals = self.server_signals.lock();
        signals.retain(|_, s| s.receiver_count() > 0);
        signals
            .entry(id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Bumps the generation of `host` inside `tx`; call [`Self::signal_host`] after commit.
    pub(crate) async fn bump_host(&self, tx: &mut Tx, host: &str) -> Result<i64> {
        store::hosts::bump(tx, host).await
    }

    /// Waits until `done` holds for the server (re-read on every report), or `timeout`.
    /// `Ok(None)` when the server is gone.
    pub(crate) async fn wait_server<F>(
        &self,
        id: &str,
        timeout: Duration,
        done: F,
    ) -> Result<Option<store::servers::ServerRow>>
    where
        F: Fn(&store::servers::ServerRow) -> bool,
    {
        let mut rx = self.watch_server(id);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let row = {
                let mut conn = self.read().await?;
                store::servers::get(&mut conn, id).await?
            };
            match row {
                None => return Ok(None),
                Some(row) if done(&row) => return Ok(Some(row)),
                Some(row) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Ok(Some(row));
                    }
                    // Reports from another API node do not signal here: look again every second.
                    let step = (deadline - now).min(Duration::from_secs(1));
                    let _ = tokio::time::timeout(step, rx.changed()).await;
                }
            }
        }
    }
}

/// Nova's policy refusal.
pub(crate) fn policy(rule: &str) -> Error {
    Error::forbidden(format!("Policy doesn't allow {rule} to be performed."))
}

/// Reading needs a reader, member or admin role.
pub(crate) fn require_reader(caller: &Caller) -> Result<()> {
    if caller.is_admin() || caller.has_role("reader") || caller.has_role("member") {
        Ok(())
    } else {
        Err(policy("os_compute_api:servers:show"))
    }
}

/// Changing things needs the member role (or admin).
pub(crate) fn require_member(caller: &Caller, rule: &str) -> Result<()> {
    if caller.is_member() {
        Ok(())
    } else {
        Err(policy(rule))
    }
}

pub(crate) fn require_admin(caller: &Caller, rule: &str) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(policy(rule))
    }
}

pub(crate) fn now() -> String {
    nubo_common::time::now_rfc3339()
}
