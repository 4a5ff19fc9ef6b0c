//! The node agent (`nubo agent`), one per hypervisor host. It registers the host with the API,
//! long-polls the host's desired state from the internal agent API, converges the hypervisor
//! to it, and reports what runs (which is also its heartbeat).
//!
//! ```text
//!   ┌──────────── Agent::run ─────────────┐
//!   │ register ─> desired?after=G (long-poll, 30 s) ─> one VmWorker per server (watch channel:
//!   │   ^                                         │     latest desired wins; the worker is the
//!   │   └──────────── generation G' ─────────────┘     VM's only owner and converges it)
//!   │ reporter: on any change, and every heartbeat interval: POST observed (hypervisor.list()
//!   │           + applied reboot/respawn counters + spawn failures)
//!   └─────────────────────────────────────┘
//! ```
//!
//! Restart-safe on both sides: the agent keeps nothing it cannot rebuild (the QEMU driver adopts
//! running VMs from its runtime dir; the applied counters come back in the desired state), and
//! when the API goes away it retries with backoff and registers again.

pub mod client;
pub mod host;
pub mod netplane; // data plane (issue 6)
pub mod setup;
pub mod testing;
mod volumes; // block storage (issue 7)
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use nubo_blockstore::BlockStore;
use nubo_compute::agent_api::{
    DesiredHost, FailedServer, HostRegistration, ObservedHost, ObservedServer, RequestAnswer,
};
use nubo_hypervisor::{Hypervisor, VmId};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

pub use client::{ControlPlane, HttpControlPlane};
pub use host::{FakeHost, HostPlumbing, RealHost};

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The host's name in the cloud.
    pub host: String,
    /// The underlay address it registers.
    pub host_ip: String,
    pub availability_zone: String,
    /// Where config drives go.
    pub state_dir: std::path::PathBuf,
    /// How long one desired-state poll may wait on the API.
    pub long_poll: Duration,
    /// How long a clean stop waits for the guest before pulling the plug.
    pub stop_timeout: Duration,
    /// Overrides what the hypervisor says about the host (tests: many small fake hosts).
    pub vcpus: Option<u32>,
    pub memory_mb: Option<u64>,
    pub disk_gb: Option<u64>,
}

impl AgentSettings {
    pub fn new(host: impl Into<String>, state_dir: impl Into<std::path::PathBuf>) -> AgentSettings {
        AgentSettings {
            host: host.into(),
            host_ip: "127.0.0.1".into(),
            availability_zone: String::new(),
            state_dir: state_dir.into(),
            long_poll: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(60),
            vcpus: None,
            memory_mb: None,
            disk_gb: None,
        }
    }
}

/// What the workers share with the agent.
pub(crate) struct Shared {
    pub settings: AgentSettings,
    pub hv: Arc<dyn Hypervisor>,
    pub blockstore: Arc<dyn BlockStore>,
    pub plumbing: Arc<dyn HostPlumbing>,
    pub control: Arc<dyn ControlPlane>,
    /// (applied reboot seq, applied respawn seq) per VM.
    pub applied: Mutex<HashMap<String, (u64, u64)>>,
    /// Spawn failures per VM (cleared by a later success or when the VM leaves).
    pub failures: Mutex<HashMap<String, String>>,
    /// Something changed: report soon.
    pub dirty: Notify,
    /// The generation being converged.
    pub generation: Mutex<u64>,
}

/// One agent.
pub struct Agent {
    shared: Arc<Shared>,
    workers: Mutex<HashMap<String, worker::Handle>>,
    requests_in_flight: Mutex<HashSet<String>>,
}

impl Agent {
    pub fn new(
        settings: AgentSettings,
        hv: Arc<dyn Hypervisor>,
        blockstore: Arc<dyn BlockStore>,
        plumbing: Arc<dyn HostPlumbing>,
        control: Arc<dyn ControlPlane>,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            shared: Arc::new(Shared {
                settings,
                hv,
                blockstore,
                plumbing,
                control,
                applied: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
                dirty: Notify::new(),
                generation: Mutex::new(0),
            }),
            workers: Mutex::new(HashMap::new()),
            requests_in_flight: Mutex::new(HashSet::new()),
        })
    }

    pub fn host(&self) -> &str {
        &self.shared.settings.host
    }

    async fn registration(&self) -> HostRegistration {
        let s = &self.shared.settings;
        let info = self.shared.hv.info().await.ok();
        HostRegistration {
            vcpus: s.vcpus.or(info.as_ref().map(|i| i.vcpus)).unwrap_or(1),
            memory_mb: s
                .memory_mb
                .or(info.as_ref().map(|i| i.memory_mib))
                .unwrap_or(1024),
            disk_gb: s
                .disk_gb
                .or(info.as_ref().map(|i| i.disk_gib))
                .unwrap_or(10),
            hypervisor_type: info
                .as_ref()
                .map(|i| i.hypervisor_type.clone())
                .unwrap_or_else(|| "QEMU".into()),
            hypervisor_version: info.as_ref().map(|i| i.hypervisor_version).unwrap_or(0),
            host_ip: s.host_ip.clone(),
            availability_zone: s.availability_zone.clone(),
        }
    }

    /// Registers, retrying with backoff until the API answers. Returns the heartbeat interval.
    async fn register(&self, stop: &watch::Receiver<bool>) -> Option<Duration> {
        let reg = self.registration().await;
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return None;
            }
            match self
                .shared
                .control
                .register(&self.shared.settings.host, &reg)
                .await
            {
                Ok(r) => {
                    tracing::info!(host = %self.shared.settings.host, host_id = %r.host_id, "registered with the API");
                    return Some(Duration::from_secs(r.heartbeat_interval.max(1)));
                }
                Err(e) => {
                    tracing::warn!(host = %self.shared.settings.host, error = %e, "cannot register; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Runs until `stop` turns true: register, adopt, then converge to every desired state.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Some(heartbeat) = self.register(&stop).await else {
            return;
        };
        // Adopt what runs here: a worker for every VM the hypervisor has; the first desired
        // state tells each whether it stays.
        if let Ok(vms) = self.shared.hv.list().await {
            tracing::info!(vms = vms.len(), "VMs found on the host");
        }
        // The data plane's loop (issue 6), before any VM needs a tap.
        self.shared.plumbing.start(stop.clone());
        let reporter = tokio::spawn(self.clone().report_loop(heartbeat, stop.clone()));
        let mut after: i64 = -1;
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                break;
            }
            let poll = self.shared.control.desired(
                &self.shared.settings.host,
                after,
                self.shared.settings.long_poll,
            );
            let desired = tokio::select! {
                d = poll => d,
                _ = stop.changed() => break,
            };
            match desired {
                Ok(d) => {
                    backoff = Duration::from_millis(100);
                    let forced = d.generation as i64 == after;
                    after = d.generation as i64;
                    self.apply(d, forced).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "desired state unavailable; retrying");
                    if e.contains("404") || e.contains("not registered") {
                        if self.register(&stop).await.is_none() {
                            break;
                        }
                        after = -1;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        reporter.abort();
        for (_, w) in self.workers.lock().drain() {
            w.task.abort();
        }
    }

    /// Hands every VM its desired state (None: it must go) and answers host requests.
    async fn apply(self: &Arc<Self>, desired: DesiredHost, forced: bool) {
        *self.shared.generation.lock() = desired.generation;
        let on_host: Vec<String> = match self.shared.hv.list().await {
            Ok(vms) => vms.iter().map(|v| v.id.to_string()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "hypervisor list failed");
                Vec::new()
            }
        };
        let wanted: HashSet<&str> = desired.servers.iter().map(|s| s.id.as_str()).collect();
        {
            let mut workers = self.workers.lock();
            workers.retain(|_, w| !w.task.is_finished());
            for s in &desired.servers {
                let handle = workers
                    .entry(s.id.clone())
                    .or_insert_with(|| worker::spawn(self.shared.clone(), s.id.clone()));
                handle.send(Some(s.clone()), forced);
            }
            let known: Vec<String> = workers.keys().cloned().collect();
            for id in known.iter().chain(on_host.iter()) {
                if !wanted.contains(id.as_str()) {
                    let handle = workers
                        .entry(id.clone())
                        .or_insert_with(|| worker::spawn(self.shared.clone(), id.clone()));
                    handle.send(None, forced);
                }
            }
        }
        for r in desired.requests {
            if !self.requests_in_flight.lock().insert(r.id.clone()) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                let answer = match r.server_id.parse::<VmId>() {
                    Ok(id) => match this.shared.hv.console_log(id, 1 << 20).await {
                        Ok(log) => RequestAnswer {
                            output: Some(tail_lines(&log, r.length)),
                            error: None,
                        },
                        Err(e) => RequestAnswer {
                            output: None,
                            error: Some(e.to_string()),
                        },
                    },
                    Err(e) => RequestAnswer {
                        output: None,
                        error: Some(e.to_string()),
                    },
                };
                if let Err(e) = this.shared.control.answer(&r.id, &answer).await {
                    tracing::warn!(request = %r.id, error = %e, "answer not delivered");
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
                this.requests_in_flight.lock().remove(&r.id);
            });
        }
    }

    /// What runs here, as the API wants to hear it.
    pub(crate) async fn observed(shared: &Shared) -> ObservedHost {
        let vms = shared.hv.list().await.unwrap_or_default();
        let applied = shared.applied.lock().clone();
        let failures = shared.failures.lock().clone();
        ObservedHost {
            generation: *shared.generation.lock(),
            servers: vms
                .iter()
                .map(|v| {
                    let id = v.id.to_string();
                    let (reboot, respawn) = applied.get(&id).copied().unwrap_or((0, 0));
                    ObservedServer {
                        power_state: v.power_state.nova_code(),
                        reason: v.reason.clone(),
                        applied_reboot_seq: reboot,
                        applied_respawn_seq: respawn,
                        disks: v.disks.clone(),
                        id,
                    }
                })
                .collect(),
            failed: failures
                .into_iter()
                .map(|(id, reason)| FailedServer { id, reason })
                .collect(),
        }
    }

    async fn report_loop(self: Arc<Self>, heartbeat: Duration, stop: watch::Receiver<bool>) {
        let mut last: Option<ObservedHost> = None;
        let mut last_sent = tokio::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            let _ = tokio::time::timeout(heartbeat, self.shared.dirty.notified()).await;
            // Coalesce bursts (many VMs finishing together).
            tokio::time::sleep(Duration::from_millis(2)).await;
            let report = Self::observed(&self.shared).await;
            let due = last_sent.elapsed() >= heartbeat / 2;
            if last.as_ref() == Some(&report) && !due {
                continue;
            }
            match self
                .shared
                .control
                .observe(&self.shared.settings.host, &report)
                .await
            {
                Ok(()) => {
                    last = Some(report);
                    last_sent = tokio::time::Instant::now();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "report not delivered");
                    last = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    self.shared.dirty.notify_one();
                }
            }
        }
    }
}

/// The last `n` lines of `text` (all of it when `None`).
pub fn tail_lines(text: &str, n: Option<u64>) -> String {
    match n {
        None => text.to_string(),
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n as usize);
            lines[start..].join("\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_lines("a\nb\nc\n", Some(2)), "b\nc");
        assert_eq!(tail_lines("a\nb", None), "a\nb");
        assert_eq!(tail_lines("a", Some(0)), "");
    }
}
