//! The QEMU driver: one `qemu-system-x86_64` process per VM, driven over QMP.
//!
//! # Runtime dir
//!
//! Everything the driver knows about a VM lives in `<runtime_dir>/<vm id>/`, so that the driver
//! itself holds no state a restart could lose:
//!
//! ```text
//! <runtime_dir>/62acab81-cfcd-49e3-8eb2-cf3ece928fa8/
//!   spec.json     the VmSpec as last applied (hot-plugged disks and NICs included);
//!                 written before QEMU starts, rewritten after every attach/detach
//!   state.json    the power-state record: running | suspended | shutdown | crashed (+ reason)
//!   qemu.pid      QEMU's -pidfile
//!   qmp.sock      the QMP socket (server; one client at a time)
//!   qemu.log      QEMU's stdout + stderr, one "=== nubo launch: <command line>" header per start
//!   console.log   the serial console (append=on: survives stop/start and reboots; rotated to
//!                 console.log.0 at a start when bigger than console_rotate_bytes), unless the
//!                 spec names another path
//! ```
//!
//! # How QEMU is started, and why it survives the agent
//!
//! QEMU is started by [`crate::runner::launch_detached_in`]: a direct child of the agent, in its
//! own session (`setsid`), stdin `/dev/null`, stdout/stderr appended to `qemu.log`, and in the
//! network namespace of [`QemuConfig::netns`] when one is set (taps are looked up there). Not
//! `-daemonize`: a daemonized QEMU is re-parented to PID 1 at once, and PID 1 on these machines
//! does not reap orphans, so every VM that ever exited would stay a zombie. As a direct child,
//! QEMU is reaped by the agent that started it (`waitpid` on its pid when its pidfd turns
//! readable), and the exit status goes into the crash reason.
//!
//! When the agent exits, its QEMUs keep running: nothing kills children when their parent dies
//! (no `PR_SET_PDEATHSIG`), the new session shields them from the terminal's and the process
//! group's signals, and no pipe to the dead agent is left to `SIGPIPE` them. Under systemd the
//! agent's unit needs `KillMode=process`, or stopping the agent kills its control group and with
//! it every VM.
//!
//! `-no-shutdown` keeps QEMU alive when the guest powers off (runstate `shutdown`). That makes a
//! guest power-off observable even when no agent was watching (the next agent finds the runstate),
//! and makes a soft reboot possible (`system_reset` + `cont` after the power-off). Once a
//! power-off is seen, the driver records `shutdown` in `state.json` and tells QEMU to `quit`: a
//! VM that is shut down holds no memory and no disk locks.
//!
//! # Adoption
//!
//! [`QemuHypervisor::open`] scans the runtime dir. For each `<uuid>/spec.json` it reads the spec
//! and the record, then the pidfile; the pid counts as this VM's QEMU only if it is alive (not a
//! zombie) and its command line holds this VM's QMP socket path (a recycled pid does not). Then:
//!
//! * QEMU alive: the VM's task opens a pidfd on it and connects to QMP; the power state comes from
//!   `query-status` (a guest that powered off meanwhile is finished as above). An adopted QEMU is
//!   not our child: when it exits, its exit status is lost (and, on these machines, it stays a
//!   zombie, which counts as gone).
//! * QEMU gone: `Shutdown` if the record says so, else `Crashed` ("QEMU exited while no agent was
//!   watching").
//! * A dir without a readable spec (a spawn interrupted by a crash of the agent) is garbage: its
//!   QEMU, if one matches, is killed, and the dir removed.
//!
//! Adopted VMs are listed by [`Hypervisor::list`] like any other; the agent compares the list with
//! its desired state and destroys what no longer belongs. Only one driver may use a runtime dir
//! at a time (QMP serves one client per VM): drop the old `QemuHypervisor` before opening a new
//! one on the same dir.
//!
//! # States of a VM
//!
//! ```text
//!                 spawn (QEMU started, QMP answered)
//!                         |
//!                         v          pause / suspend            unpause / resume
//!   start  +---------> RUNNING  ------------------> PAUSED / SUSPENDED -------+
//!  hard    |            |  ^  \  <-------------------------------------------+
//!  reboot  |            |  |   \  soft reboot: power button, guest powers off,
//!          |            |  |    \ system_reset + cont (same process)
//!          |            |  +-----+
//!          |            |
//!          |            | stop: power button (re-pressed), wait <= timeout, then quit/kill
//!          |            | hard stop / guest powers off by itself
//!          |            v
//!          +------- SHUTDOWN  (no process; state.json = shutdown)
//!          |
//!          |        QEMU dies unasked / guest panics (pvpanic) / gone at adoption
//!          +------- CRASHED   (no process; state.json = crashed + reason)
//!
//!   any state --destroy--> (gone: process killed, runtime dir removed)
//!   NOSTATE: QEMU alive but QMP does not answer, or an unusual runstate (inmigrate, ...)
//! ```
//!
//! `PAUSED` and `SUSPENDED` are the same to QEMU (QMP `stop`, memory kept in the process); the
//! record tells them apart. A real managed save (migrate to a file, quit, `-incoming` on resume)
//! would free the memory; it is not done yet.
//!
//! # Devices
//!
//! Machine `pc` (i440fx): devices hot-plug straight onto the root PCI bus (q35 would need a
//! pre-made `pcie-root-port` per future device), and the IDE controller for an ISO config drive
//! is built in. `-nodefaults -no-user-config -display none`; a serial port to the console log;
//! `virtio-rng-pci` (the guest's CRNG is ready seconds earlier under TCG) and `pvpanic`. Disks are
//! `-blockdev` + `virtio-blk-pci` (the boot disk with `bootindex=0`), NICs `-netdev tap|user` +
//! `virtio-net-pci` without option ROM. `-cpu host` with KVM, `-cpu qemu64` with TCG (what Nova
//! uses; `max` was no faster). `-sandbox on` (seccomp) unless turned off.

mod args;
mod runtime;
mod vm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::host;
use crate::hypervisor::Hypervisor;
use crate::runner;
use crate::types::{
    Accel, AccelMode, Disk, HostInfo, NicSpec, PowerAction, VmId, VmSpec, VmStatus,
};
use runtime::{Record, Recorded, VmDir};
use vm::{Cmd, Start, Vm, VmHandle};

/// Settings of the QEMU driver.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Where the VMs' runtime dirs go. The QMP socket path must fit in a unix socket address
    /// (108 bytes), so this should be short: `/var/lib/nubo/vms`, `/run/nubo/vms`. Prefer a
    /// persistent dir: after a host reboot the VMs show up as crashed (and the agent restarts
    /// them) with their console logs, instead of vanishing.
    pub runtime_dir: PathBuf,
    /// `qemu-system-x86_64`, or a path to it.
    pub qemu_binary: PathBuf,
    /// The accelerator for specs that say `auto`.
    pub accel: AccelMode,
    /// QEMU's seccomp sandbox (`-sandbox on,...`).
    pub sandbox: bool,
    /// From starting QEMU to its QMP socket answering.
    pub qmp_timeout: Duration,
    /// For each QMP command to answer.
    pub command_timeout: Duration,
    /// How often a clean shutdown presses the power button again (Nova: 10 s).
    pub powerdown_retry: Duration,
    /// How long QMP `quit` may take before SIGTERM, then SIGKILL.
    pub quit_timeout: Duration,
    /// How long a detach waits for the guest to release the device.
    pub unplug_timeout: Duration,
    /// A console log bigger than this is moved aside when the VM starts.
    pub console_rotate_bytes: u64,
    /// The network namespace QEMU runs in: a name under `/run/netns` (`ip netns add NAME`) or
    /// an absolute path to a namespace file; `None` (the default): the agent's own. QEMU opens
    /// its taps (`-netdev tap,ifname=...` and hot-plugged NICs) in that namespace, so a data
    /// plane that makes them inside a host namespace (a test's second "host") gets them plugged.
    /// Files, the QMP socket included, are not affected.
    pub netns: Option<String>,
}

impl QemuConfig {
    /// Defaults for everything but the runtime dir.
    pub fn new(runtime_dir: impl Into<PathBuf>) -> QemuConfig {
        QemuConfig {
            runtime_dir: runtime_dir.into(),
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
            accel: AccelMode::Auto,
            sandbox: true,
            qmp_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            powerdown_retry: Duration::from_secs(10),
            quit_timeout: Duration::from_secs(5),
            unplug_timeout: Duration::from_secs(30),
            console_rotate_bytes: 1 << 20,
            netns: None,
        }
    }

    /// The namespace file QEMU enters, if any (see [`QemuConfig::netns`]).
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.netns.as_ref().map(|netns| {
            if netns.starts_with('/') {
                PathBuf::from(netns)
            } else {
                PathBuf::from("/run/netns").join(netns)
            }
        })
    }
}

/// What every VM task shares.
pub(crate) struct Ctx {
    pub config: Arc<QemuConfig>,
    pub kvm: bool,
}

/// The VMs of this driver. Only the driver holds it strongly: when the driver is dropped, the
/// handles go, every VM task ends (closing its QMP connection) and the QEMUs run on.
pub(crate) struct Registry {
    pub vms: parking_lot::Mutex<HashMap<VmId, VmHandle>>,
}

/// The QEMU driver. See the module docs for the runtime dir, adoption and the state machine.
pub struct QemuHypervisor {
    ctx: Arc<Ctx>,
    registry: Arc<Registry>,
    generation: AtomicU64,
    version: u64,
}

/// The longest unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

impl QemuHypervisor {
    /// Checks QEMU (`--version`), creates the runtime dir and adopts every VM found in it.
    pub async fn open(config: QemuConfig) -> Result<QemuHypervisor> {
        let probe = VmDir::new(&config.runtime_dir, VmId::new_random()).qmp();
        if probe.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::invalid_spec(format!(
                "runtime dir {} is too long: QMP socket paths in it would exceed {MAX_SOCKET_PATH} bytes",
                config.runtime_dir.display()
            )));
        }
        std::fs::create_dir_all(&config.runtime_dir)
            .map_err(|e| Error::io("creating", &config.runtime_dir, e))?;
        let binary = config.qemu_binary.clone();
        let version_text = tokio::task::spawn_blocking(move || runner::run(&binary, ["--version"]))
            .await
            .expect("version probe panicked")?;
        let version = host::parse_qemu_version(&version_text).unwrap_or(0);
        let kvm = host::kvm_usable();
        // Fail now rather than at the first spawn.
        if config.accel == AccelMode::Kvm {
            host::resolve_accel(AccelMode::Kvm, kvm)?;
        }
        let driver = QemuHypervisor {
            ctx: Arc::new(Ctx {
                config: Arc::new(config),
                kvm,
            }),
            registry: Arc::new(Registry {
                vms: parking_lot::Mutex::new(HashMap::new()),
            }),
            generation: AtomicU64::new(1),
            version,
        };
        driver.adopt_all().await?;
        info!(
            runtime_dir = %driver.ctx.config.runtime_dir.display(),
            qemu_version = version,
            kvm,
            vms = driver.registry.vms.lock().len(),
            "QEMU driver ready"
        );
        Ok(driver)
    }

    /// The driver's settings.
    pub fn config(&self) -> &QemuConfig {
        &self.ctx.config
    }

    /// The accelerator a spec saying `auto` gets on this host.
    pub fn default_accel(&self) -> Accel {
        host::resolve_accel(self.ctx.config.accel, self.ctx.kvm).unwrap_or(Accel::Tcg)
    }

    async fn adopt_all(&self) -> Result<()> {
        let root = &self.ctx.config.runtime_dir;
        let entries = std::fs::read_dir(root).map_err(|e| Error::io("listing", root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", root, e))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.parse::<VmId>().ok()) else {
                continue;
            };
            if !entry.path().is_dir() {
                continue;
            }
            let dir = VmDir::new(root, id);
            let pid = runtime::read_pidfile(&dir.pidfile()).filter(|&pid| owns(&dir, pid));
            let spec = match runtime::read_json::<VmSpec>(&dir.spec()) {
                Ok(Some(spec)) if spec.id == id => spec,
                other => {
                    warn!(vm_id = %id, spec = ?other.map(|s| s.map(|s| s.id)), "runtime dir without a usable spec; removing it");
                    remove_orphan(&dir, pid).await;
                    continue;
                }
            };
            let mut record = runtime::read_json::<Record>(&dir.record())
                .ok()
                .flatten()
                .unwrap_or(Record::new(Recorded::Running, None));
            if pid.is_none() {
                if matches!(record.state, Recorded::Running | Recorded::Suspended) {
                    record = Record::new(
                        Recorded::Crashed,
                        Some("QEMU exited while no agent was watching".into()),
                    );
                    if let Err(e) = runtime::write_json(&dir.record(), &record) {
                        warn!(vm_id = %id, error = %e, "could not write the state record");
                    }
                }
                runtime::remove_file(&dir.qmp());
                runtime::remove_file(&dir.pidfile());
            }
            let handle = Vm::start(
                self.ctx.clone(),
                Arc::downgrade(&self.registry),
                spec,
                record,
                self.next_generation(),
                Start::Adopt { pid },
            );
            self.registry.vms.lock().insert(id, handle);
        }
        Ok(())
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    fn handle(&self, id: VmId) -> Result<VmHandle> {
        self.registry
            .vms
            .lock()
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound { id })
    }

    /// Sends a command to a VM's task and waits for the answer.
    async fn call<T>(&self, id: VmId, make: impl FnOnce(vm::Reply<T>) -> Cmd) -> Result<T> {
        let handle = self.handle(id)?;
        let (tx, rx) = oneshot::channel();
        if handle.tx.send(make(tx)).await.is_err() {
            return Err(Error::NotFound { id });
        }
        rx.await.unwrap_or(Err(Error::NotFound { id }))
    }
}

/// True when `pid` is a live QEMU of this VM (its command line names this VM's QMP socket).
fn owns(dir: &VmDir, pid: u32) -> bool {
    if !runtime::is_alive(pid) {
        return false;
    }
    let socket = args::escape(&dir.qmp().to_string_lossy());
    runtime::cmdline(pid)
        .iter()
        .any(|arg| arg.contains(&format!("path={socket},")))
}

/// Kills the QEMU of a runtime dir nobody manages and removes the dir.
async fn remove_orphan(dir: &VmDir, pid: Option<u32>) {
    if let Some(pid) = pid {
        let watch = runtime::ProcWatch::open(pid);
        watch.signal(libc::SIGKILL);
        watch.wait_exit(Duration::from_secs(10)).await;
        watch.reap(Duration::from_secs(5)).await;
    }
    if let Err(e) = runtime::remove_dir_all(&dir.path) {
        warn!(dir = %dir.path.display(), error = %e, "could not remove an orphaned runtime dir");
    }
}

#[async_trait]
impl Hypervisor for QemuHypervisor {
    async fn info(&self) -> Result<HostInfo> {
        let root = self.ctx.config.runtime_dir.clone();
        let (total, free) = tokio::task::spawn_blocking(move || host::disk_space(&root))
            .await
            .expect("statvfs panicked")?;
        Ok(HostInfo {
            hostname: host::hostname(),
            arch: std::env::consts::ARCH.to_string(),
            vcpus: host::cpu_count(),
            memory_mib: host::memory_mib(),
            disk_gib: total >> 30,
            disk_free_gib: free >> 30,
            hypervisor_type: "QEMU".to_string(),
            hypervisor_version: self.version,
            accel: self.default_accel(),
        })
    }

    async fn spawn(&self, spec: &VmSpec) -> Result<VmStatus> {
        spec.validate()?;
        // A VM task that went away under us (a concurrent failed spawn or destroy) is retried.
        for _ in 0..3 {
            let (handle, reply) = {
                let mut vms = self.registry.vms.lock();
                match vms.get(&spec.id) {
                    Some(handle) => (handle.clone(), None),
                    None => {
                        let (tx, rx) = oneshot::channel();
                        let handle = Vm::start(
                            self.ctx.clone(),
                            Arc::downgrade(&self.registry),
                            spec.clone(),
                            Record::new(Recorded::Running, None),
                            self.next_generation(),
                            Start::Spawn(tx),
                        );
                        vms.insert(spec.id, handle.clone());
                        (handle, Some(rx))
                    }
                }
            };
            if let Some(reply) = reply {
                return reply.await.unwrap_or(Err(Error::NotFound { id: spec.id }));
            }
            // Exists already: report it as it is.
            let (tx, rx) = oneshot::channel();
            if handle.tx.send(Cmd::Status(tx)).await.is_ok() {
                if let Ok(result) = rx.await {
                    return result;
                }
            }
            let mut vms = self.registry.vms.lock();
            if vms.get(&spec.id).map(|h| h.generation) == Some(handle.generation) {
                vms.remove(&spec.id);
            }
        }
        Err(Error::NotFound { id: spec.id })
    }

    async fn destroy(&self, id: VmId) -> Result<()> {
        let handle = self.registry.vms.lock().get(&id).cloned();
        if let Some(handle) = handle {
            handle.cancel.send_modify(|n| *n += 1);
            let (tx, rx) = oneshot::channel();
            if handle.tx.send(Cmd::Destroy(tx)).await.is_ok() {
                if let Ok(result) = rx.await {
                    return result;
                }
            }
        }
        // No task (never existed, or a spawn that failed and cleaned up): make sure nothing is
        // left on disk either.
        let dir = VmDir::new(&self.ctx.config.runtime_dir, id);
        if dir.path.exists() {
            let pid = runtime::read_pidfile(&dir.pidfile()).filter(|&pid| owns(&dir, pid));
            remove_orphan(&dir, pid).await;
        }
        Ok(())
    }

    async fn power(&self, id: VmId, action: PowerAction) -> Result<VmStatus> {
        self.call(id, |reply| Cmd::Power(action, reply)).await
    }

    async fn status(&self, id: VmId) -> Result<VmStatus> {
        self.call(id, Cmd::Status).await
    }

    async fn list(&self) -> Result<Vec<VmStatus>> {
        let handles: Vec<(VmId, VmHandle)> = self
            .registry
            .vms
            .lock()
            .iter()
            .map(|(id, h)| (*id, h.clone()))
            .collect();
        let asks = handles.into_iter().map(|(_, handle)| async move {
            let (tx, rx) = oneshot::channel();
            handle.tx.send(Cmd::Status(tx)).await.ok()?;
            rx.await.ok()?.ok()
        });
        let mut list: Vec<VmStatus> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        list.sort_by_key(|status| status.id);
        Ok(list)
    }

    async fn console_log(&self, id: VmId, max_bytes: usize) -> Result<String> {
        let path = self.handle(id)?.console;
        let bytes = tokio::task::spawn_blocking(move || {
            match runner::tail_bytes(&path, max_bytes as u64) {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(Error::io("reading", path, e)),
            }
        })
        .await
        .expect("console read panicked")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn attach_disk(&self, id: VmId, disk: &Disk) -> Result<()> {
        let disk = disk.clone();
        self.call(id, |reply| Cmd::AttachDisk(disk, reply)).await
    }

    async fn detach_disk(&self, id: VmId, disk_id: &str) -> Result<()> {
        let disk_id = disk_id.to_string();
        self.call(id, |reply| Cmd::DetachDisk(disk_id, reply)).await
    }

    async fn attach_nic(&self, id: VmId, nic: &NicSpec) -> Result<()> {
        let nic = nic.clone();
        self.call(id, |reply| Cmd::AttachNic(nic, reply)).await
    }

    async fn detach_nic(&self, id: VmId, nic_id: &str) -> Result<()> {
        let nic_id = nic_id.to_string();
        self.call(id, |reply| Cmd::DetachNic(nic_id, reply)).await
    }

    async fn resize_disk(&self, id: VmId, disk_id: &str, size_bytes: u64) -> Result<()> {
        let disk_id = disk_id.to_string();
        self.call(id, |reply| Cmd::ResizeDisk(disk_id, size_bytes, reply))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_names_and_paths() {
        let mut config = QemuConfig::new("/run/nubo/vms");
        assert_eq!(config.netns_path(), None);
        config.netns = Some("h1".into());
        assert_eq!(config.netns_path(), Some(PathBuf::from("/run/netns/h1")));
        config.netns = Some("/proc/42/ns/net".into());
        assert_eq!(config.netns_path(), Some(PathBuf::from("/proc/42/ns/net")));
    }
}
