//! One task per VM: the VM's only owner. It receives the latest desired state through a watch
//! channel (newer replaces older; `None` means the VM must go) and converges the hypervisor to
//! it, step by step, each step idempotent:
//!
//! ```text
//!   desired None ──> destroy, remove taps and config drive, forget ──> task ends
//!   respawn_seq > applied ──> destroy (the disk changed: rebuild, snapshot)
//!   no VM ──> taps, config drive, describe disk ──> spawn   (failure: reported, not retried
//!                                                             until the desired state changes)
//!   NICs ──> attach / detach to match
//!   reboot_seq > applied ──> soft or hard reboot
//!   power ──> start / stop / pause / unpause / suspend / resume
//! ```

use std::sync::Arc;
use std::time::Duration;

use nubo_blockstore::QemuLocation;
use nubo_compute::agent_api::{DesiredPower, DesiredServer};
use nubo_hypervisor::{
    ConfigDrive, ConfigDriveFormat, Disk, DiskFormat, DiskSource, DiskSpec, Error as HvError,
    NicSpec, PowerAction, PowerState, VmId, VmSpec, VmStatus,
};
use tokio::sync::watch;

use crate::Shared;

/// What a worker is told: the desired state and a counter that forces a pass.
type Message = (Option<DesiredServer>, u64);

pub(crate) struct Handle {
    tx: watch::Sender<Message>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Sends the desired state; `force` makes the worker converge even if nothing changed
    /// (periodic resync: heals a VM that crashed or was killed by hand).
    pub fn send(&self, desired: Option<DesiredServer>, force: bool) {
        self.tx.send_if_modified(|(d, tick)| {
            if *d != desired {
                *d = desired;
                *tick += 1;
                true
            } else if force {
                *tick += 1;
                true
            } else {
                false
            }
        });
    }
}

pub(crate) fn spawn(shared: Arc<Shared>, id: String) -> Handle {
    let (tx, rx) = watch::channel((None, 0));
    let span = tracing::info_span!("vm", server_id = %id);
    let task = tokio::spawn(tracing::Instrument::instrument(run(shared, id, rx), span));
    Handle { tx, task }
}

async fn run(shared: Arc<Shared>, id: String, mut rx: watch::Receiver<Message>) {
    let Ok(vm) = id.parse::<VmId>() else {
        tracing::warn!("not a VM id");
        return;
    };
    // Wait for the first message.
    if rx.changed().await.is_err() {
        return;
    }
    let mut failed_for: Option<DesiredServer> = None;
    loop {
        let (desired, _) = rx.borrow_and_update().clone();
        match desired {
            None => {
                if let Err(e) = remove(&shared, vm, &id).await {
                    tracing::warn!(error = %e, "removing the VM failed; will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                shared.dirty.notify_one();
                // Stay alive only if the VM is wanted again.
                if rx.changed().await.is_err() {
                    return;
                }
                if rx.borrow().0.is_none() {
                    return;
                }
            }
            Some(d) => {
                if failed_for.as_ref() != Some(&d) {
                    match converge(&shared, vm, &d).await {
                        Ok(()) => {
                            failed_for = None;
                            shared.failures.lock().remove(&id);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "converging failed");
                            failed_for = Some(d.clone());
                        }
                    }
                    shared.dirty.notify_one();
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn status(shared: &Shared, vm: VmId) -> Result<Option<VmStatus>, String> {
    match shared.hv.status(vm).await {
        Ok(s) => Ok(Some(s)),
        Err(HvError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn config_drive_path(shared: &Shared, id: &str) -> std::path::PathBuf {
    shared
        .settings
        .state_dir
        .join("config-drives")
        .join(format!("{id}.vfat"))
}

/// Destroys the VM and everything the agent made for it.
async fn remove(shared: &Shared, vm: VmId, id: &str) -> Result<(), String> {
    let taps = match shared.hv.status(vm).await {
        Ok(s) => s.nics.clone(),
        Err(_) => Vec::new(),
    };
    shared.hv.destroy(vm).await.map_err(|e| e.to_string())?;
    for port in taps {
        let tap = nubo_compute::agent_api::tap_name(&port);
        shared.plumbing.remove_tap(&tap).await?;
    }
    let cd = config_drive_path(shared, id);
    let _ = std::fs::remove_file(&cd);
    shared.applied.lock().remove(id);
    shared.failures.lock().remove(id);
    tracing::info!("VM removed");
    Ok(())
}

async fn spec_of(shared: &Shared, vm: VmId, d: &DesiredServer) -> Result<VmSpec, String> {
    let disk = shared
        .blockstore
        .describe(&d.disk)
        .await
        .map_err(|e| format!("disk {}: {e}", d.disk))?;
    let source = match disk.location {
        QemuLocation::File(path) => DiskSource::File(path),
        QemuLocation::Rbd {
            pool,
            image,
            snapshot,
            user,
            conf,
        } => DiskSource::Rbd {
            pool,
            image,
            snapshot,
            user,
            conf,
        },
    };
    let format = match disk.format {
        nubo_blockstore::DiskFormat::Raw => DiskFormat::Raw,
        nubo_blockstore::DiskFormat::Qcow2 => DiskFormat::Qcow2,
    };
    let mut spec = VmSpec::new(
        vm,
        d.name
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect::<String>(),
        Disk::new(
            "root",
            DiskSpec {
                source,
                format,
                read_only: disk.read_only,
            },
        ),
    );
    spec.vcpus = d.vcpus;
    spec.memory_mib = d.memory_mb;
    for nic in &d.nics {
        let mac = nic
            .mac
            .parse()
            .map_err(|e| format!("port {}: {e}", nic.port_id))?;
        spec.nics
            .push(NicSpec::tap(nic.port_id.clone(), nic.tap.clone(), mac));
    }
    if d.config_drive {
        let path = config_drive_path(shared, &d.id);
        let content = shared.control.config_drive(&d.id).await?;
        shared.plumbing.build_config_drive(&path, &content).await?;
        spec.config_drive = Some(ConfigDrive {
            path,
            format: ConfigDriveFormat::Vfat,
        });
    }
    // Volumes (block storage, issue 7).
    spec.disks
        .extend(crate::volumes::spawn_disks(shared, d).await);
    Ok(spec)
}

/// Brings the VM to `d`.
async fn converge(shared: &Shared, vm: VmId, d: &DesiredServer) -> Result<(), String> {
    let id = d.id.clone();
    let (mut reboot_done, mut respawn_done) = shared
        .applied
        .lock()
        .get(&id)
        .copied()
        .unwrap_or((d.applied_reboot_seq, d.applied_respawn_seq));
    let mut current = status(shared, vm).await?;
    if current.is_some() && d.respawn_seq > respawn_done {
        shared.hv.destroy(vm).await.map_err(|e| e.to_string())?;
        current = None;
    }
    let current = match current {
        Some(s) => s,
        None => {
            for nic in &d.nics {
                shared.plumbing.ensure_tap(&nic.tap).await?;
            }
            let spawned = match spec_of(shared, vm, d).await {
                Ok(spec) => shared.hv.spawn(&spec).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match spawned {
                Ok(s) => {
                    tracing::info!(power = %s.power_state, "VM spawned");
                    reboot_done = d.reboot_seq;
                    respawn_done = d.respawn_seq;
                    shared
                        .applied
                        .lock()
                        .insert(id.clone(), (reboot_done, respawn_done));
                    s
                }
                Err(e) => {
                    for nic in &d.nics {
                        let _ = shared.plumbing.remove_tap(&nic.tap).await;
                    }
                    shared.failures.lock().insert(id.clone(), e.clone());
                    return Err(e);
                }
            }
        }
    };
    shared
        .applied
        .lock()
        .insert(id.clone(), (reboot_done, respawn_done));
    // NICs.
    for nic in &d.nics {
        if !current.nics.contains(&nic.port_id) {
            shared.plumbing.ensure_tap(&nic.tap).await?;
            let mac = nic
                .mac
                .parse()
                .map_err(|e| format!("port {}: {e}", nic.port_id))?;
            shared
                .hv
                .attach_nic(vm, &NicSpec::tap(nic.port_id.clone(), nic.tap.clone(), mac))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    for port in &current.nics {
        if !d.nics.iter().any(|n| &n.port_id == port) {
            shared
                .hv
                .detach_nic(vm, port)
                .await
                .map_err(|e| e.to_string())?;
            let _ = shared
                .plumbing
                .remove_tap(&nubo_compute::agent_api::tap_name(port))
                .await;
        }
    }
    // Volumes (block storage, issue 7).
    crate::volumes::converge(shared, vm, d, &current).await;
    // Reboot.
    if d.reboot_seq > reboot_done {
        let action = if d.reboot_hard {
            PowerAction::HardReboot
        } else {
            PowerAction::SoftReboot {
                timeout: shared.settings.stop_timeout,
            }
        };
        shared
            .hv
            .power(vm, action)
            .await
            .map_err(|e| e.to_string())?;
        shared
            .applied
            .lock()
            .insert(id.clone(), (d.reboot_seq, respawn_done));
    }
    // Power.
    let mut power = status(shared, vm)
        .await?
        .map(|s| s.power_state)
        .unwrap_or(PowerState::NoState);
    let stop = if d.hard_stop {
        PowerAction::HardStop
    } else {
        PowerAction::Stop {
            timeout: shared.settings.stop_timeout,
        }
    };
    for _ in 0..3 {
        let action = match (d.power, power) {
            (DesiredPower::Running, PowerState::Running) => None,
            (DesiredPower::Running, PowerState::Paused) => Some(PowerAction::Unpause),
            (DesiredPower::Running, PowerState::Suspended) => Some(PowerAction::Resume),
            (DesiredPower::Running, _) => Some(PowerAction::Start),
            (DesiredPower::Shutdown, PowerState::Shutdown) => None,
            (DesiredPower::Shutdown, _) => Some(stop),
            (DesiredPower::Paused, PowerState::Paused) => None,
            (DesiredPower::Paused, PowerState::Running) => Some(PowerAction::Pause),
            (DesiredPower::Paused, PowerState::Suspended) => Some(PowerAction::Resume),
            (DesiredPower::Paused, _) => Some(PowerAction::Start),
            (DesiredPower::Suspended, PowerState::Suspended) => None,
            (DesiredPower::Suspended, PowerState::Running | PowerState::Paused) => {
                Some(PowerAction::Suspend)
            }
            (DesiredPower::Suspended, _) => Some(PowerAction::Start),
        };
        let Some(action) = action else { break };
        let after = shared
            .hv
            .power(vm, action)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(action = action.name(), power = %after.power_state, "power changed");
        power = after.power_state;
    }
    Ok(())
}
