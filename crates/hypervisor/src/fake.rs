//! The fake driver: VMs that exist only in memory.
//!
//! Like Nova's `fake.FakeDriver`, it "allows testing without a hypervisor" and "documents the
//! semantics of real hypervisor connections": it keeps the [`Hypervisor`] contract exactly (the
//! same state table, the same idempotency, the same errors), and the contract tests in
//! `tests/contract` run against it and against QEMU alike. It is cheap: thousands of VMs in
//! one process, every call a map lookup under a short lock that is never held across `.await`.
//!
//! What it fakes beyond the contract:
//!
//! * The guest boots instantly: `spawn`, `start` and reboots append the tiny guest's console
//!   markers (`nubo-guest: boot ...`, `nubo-guest: ready hostname=<name> ...`) to the VM's
//!   console, and a clean stop appends `nubo-guest: shutdown ...`, so code that waits for the
//!   ready marker works unchanged.
//! * Fault knobs, for testing the callers' recovery paths:
//!   [`FakeHypervisor::fail_next`] (any operation, N times), [`FakeHypervisor::fail_next_spawns`],
//!   [`FakeHypervisor::fail_next_destroys`], [`FakeHypervisor::set_spawn_delay`] (a spawn that
//!   hangs), [`FakeHypervisor::crash_after`] (a VM that crashes later),
//!   [`FakeHypervisor::guest_poweroff`] (the guest shuts itself down).
//!
//! Differences from QEMU worth knowing: a spawn held by [`FakeHypervisor::set_spawn_delay`] shows
//! as `NoState` to a concurrent `spawn`/`status` of the same id (QEMU's driver makes those wait);
//! a `destroy` during the delay makes that spawn fail with `Error::Cancelled`, as on QEMU.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::hypervisor::Hypervisor;
use crate::types::{
    Accel, Disk, HostInfo, NicSpec, PowerAction, PowerState, VmId, VmSpec, VmStatus,
};

/// The operations of the trait, for [`FakeHypervisor::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeOp {
    Spawn,
    Destroy,
    Power,
    Status,
    List,
    ConsoleLog,
    AttachDisk,
    DetachDisk,
    AttachNic,
    DetachNic,
    ResizeDisk,
}

impl FakeOp {
    fn name(self) -> &'static str {
        match self {
            FakeOp::Spawn => "spawn",
            FakeOp::Destroy => "destroy",
            FakeOp::Power => "power",
            FakeOp::Status => "status",
            FakeOp::List => "list",
            FakeOp::ConsoleLog => "console_log",
            FakeOp::AttachDisk => "attach_disk",
            FakeOp::DetachDisk => "detach_disk",
            FakeOp::AttachNic => "attach_nic",
            FakeOp::DetachNic => "detach_nic",
            FakeOp::ResizeDisk => "resize_disk",
        }
    }
}

/// The console of a fake VM keeps at most this much.
const CONSOLE_MAX: usize = 64 << 10;

struct FakeVm {
    spec: VmSpec,
    power: PowerState,
    reason: Option<String>,
    /// Still inside a delayed spawn.
    spawning: bool,
    crash_at: Option<Instant>,
    console: String,
    boots: u64,
    disk_sizes: HashMap<String, u64>,
}

impl FakeVm {
    /// Applies a crash whose time has come.
    fn settle(&mut self, now: Instant) {
        if let Some(at) = self.crash_at {
            if at <= now && self.has_process() {
                self.power = PowerState::Crashed;
                self.reason = Some("injected crash (FakeHypervisor::crash_after)".into());
                self.crash_at = None;
                self.log("nubo-guest: (fake) QEMU died");
            }
        }
    }

    fn has_process(&self) -> bool {
        matches!(
            self.power,
            PowerState::Running | PowerState::Paused | PowerState::Suspended
        )
    }

    fn log(&mut self, line: &str) {
        self.console.push_str(line);
        self.console.push_str("\r\n");
        if self.console.len() > CONSOLE_MAX {
            let mut cut = self.console.len() - CONSOLE_MAX;
            while !self.console.is_char_boundary(cut) {
                cut += 1;
            }
            self.console.drain(..cut);
        }
    }

    fn boot(&mut self) {
        self.boots += 1;
        self.power = PowerState::Running;
        self.reason = None;
        let name = self.spec.name.clone();
        // The tiny guest's boot sequence, as QEMU's console shows it (tools/guest-image).
        self.log("nubo-guest: boot kernel=fake uptime=0.00");
        self.log("nubo-guest: modules loaded uptime=0.00");
        self.log("nubo-guest: datasource=fake uptime=0.00");
        self.log("nubo-guest: sshd up port=22 pid=1");
        self.log(&format!(
            "nubo-guest: ready hostname={name} ip=none datasource=fake uptime=0.00 boot={}",
            self.boots
        ));
    }

    fn power_off(&mut self, clean: bool) {
        if clean {
            self.log("nubo-guest: acpi power button, powering off");
            self.log("nubo-guest: shutdown uptime=0.00");
        }
        self.power = PowerState::Shutdown;
        self.reason = None;
    }

    fn status(&self) -> VmStatus {
        let mut status = VmStatus::from_spec(&self.spec, self.power);
        status.reason = self.reason.clone();
        if self.has_process() {
            status.accel = Some(Accel::Tcg);
        }
        status
    }
}

#[derive(Default)]
struct State {
    vms: HashMap<VmId, FakeVm>,
    failures: HashMap<FakeOp, u32>,
    spawn_delay: Duration,
    spawns: u64,
}

impl State {
    /// Consumes one injected failure of `op`, if any.
    fn inject(&mut self, op: FakeOp) -> Result<()> {
        if let Some(left) = self.failures.get_mut(&op) {
            if *left > 0 {
                *left -= 1;
                return Err(Error::Injected { op: op.name() });
            }
        }
        Ok(())
    }

    fn vm(&mut self, id: VmId) -> Result<&mut FakeVm> {
        let vm = self.vms.get_mut(&id).ok_or(Error::NotFound { id })?;
        vm.settle(Instant::now());
        if vm.spawning {
            return Err(Error::InvalidState {
                id,
                state: PowerState::NoState,
                action: "change a VM that is still being spawned",
            });
        }
        Ok(vm)
    }
}

/// The in-memory driver. Share it as `Arc<FakeHypervisor>` to keep access to the knobs, and
/// hand out `Arc<dyn Hypervisor>` clones of it.
pub struct FakeHypervisor {
    state: Mutex<State>,
    host: HostInfo,
}

impl Default for FakeHypervisor {
    fn default() -> Self {
        FakeHypervisor::new()
    }
}

impl FakeHypervisor {
    /// A fake host with 64 vCPUs, 256 GiB of RAM and 2 TiB of disk.
    pub fn new() -> FakeHypervisor {
        FakeHypervisor::with_host(HostInfo {
            hostname: "fake-host".into(),
            arch: "x86_64".into(),
            vcpus: 64,
            memory_mib: 256 << 10,
            disk_gib: 2048,
            disk_free_gib: 2048,
            hypervisor_type: "fake".into(),
            hypervisor_version: 1_000,
            accel: Accel::Tcg,
        })
    }

    /// A fake host that describes itself as `host`.
    pub fn with_host(host: HostInfo) -> FakeHypervisor {
        FakeHypervisor {
            state: Mutex::new(State::default()),
            host,
        }
    }

    /// The next `n` calls of `op` fail with `Error::Injected` (and change nothing).
    pub fn fail_next(&self, op: FakeOp, n: u32) {
        self.state.lock().failures.insert(op, n);
    }

    /// The next `n` spawns fail (Nova's `FakeRescheduleDriver`). Nothing is left behind.
    pub fn fail_next_spawns(&self, n: u32) {
        self.fail_next(FakeOp::Spawn, n);
    }

    /// The next `n` destroys fail; the VM stays as it was.
    pub fn fail_next_destroys(&self, n: u32) {
        self.fail_next(FakeOp::Destroy, n);
    }

    /// Every spawn from now on takes `delay` before the VM runs (a hanging spawn: wrap the call
    /// in a timeout to test that). `Duration::ZERO` turns it off.
    pub fn set_spawn_delay(&self, delay: Duration) {
        self.state.lock().spawn_delay = delay;
    }

    /// The VM's "QEMU" dies `after` from now (if it still runs then): it becomes `Crashed`.
    pub fn crash_after(&self, id: VmId, after: Duration) -> Result<()> {
        let mut state = self.state.lock();
        let vm = state.vms.get_mut(&id).ok_or(Error::NotFound { id })?;
        vm.crash_at = Some(Instant::now() + after);
        Ok(())
    }

    /// The guest powers itself off (as if someone ran `poweroff` inside it): a running VM
    /// becomes `Shutdown`.
    pub fn guest_poweroff(&self, id: VmId) -> Result<()> {
        let mut state = self.state.lock();
        let vm = state.vm(id)?;
        if vm.power == PowerState::Running {
            vm.power_off(true);
            vm.reason = Some("the guest powered off".into());
        }
        Ok(())
    }

    /// How many VMs exist (in any state).
    pub fn vm_count(&self) -> usize {
        self.state.lock().vms.len()
    }

    /// How many spawns created a VM so far.
    pub fn spawn_count(&self) -> u64 {
        self.state.lock().spawns
    }

    /// How many times the VM booted (spawn, start, reboots).
    pub fn boot_count(&self, id: VmId) -> Result<u64> {
        let state = self.state.lock();
        Ok(state.vms.get(&id).ok_or(Error::NotFound { id })?.boots)
    }
}

#[async_trait]
impl Hypervisor for FakeHypervisor {
    async fn info(&self) -> Result<HostInfo> {
        Ok(self.host.clone())
    }

    async fn spawn(&self, spec: &VmSpec) -> Result<VmStatus> {
        spec.validate()?;
        let delay = {
            let mut state = self.state.lock();
            if let Some(vm) = state.vms.get_mut(&spec.id) {
                vm.settle(Instant::now());
                return Ok(vm.status());
            }
            state.inject(FakeOp::Spawn)?;
            let mut vm = FakeVm {
                spec: spec.clone(),
                power: PowerState::NoState,
                reason: Some("spawning".into()),
                spawning: true,
                crash_at: None,
                console: String::new(),
                boots: 0,
                disk_sizes: HashMap::new(),
            };
            let delay = state.spawn_delay;
            if delay.is_zero() {
                vm.spawning = false;
                vm.boot();
                let status = vm.status();
                state.vms.insert(spec.id, vm);
                state.spawns += 1;
                return Ok(status);
            }
            state.vms.insert(spec.id, vm);
            delay
        };
        tokio::time::sleep(delay).await;
        let mut state = self.state.lock();
        let Some(vm) = state.vms.get_mut(&spec.id).filter(|vm| vm.spawning) else {
            // Destroyed while spawning.
            return Err(Error::Cancelled { id: spec.id });
        };
        vm.spawning = false;
        vm.boot();
        let status = vm.status();
        state.spawns += 1;
        Ok(status)
    }

    async fn destroy(&self, id: VmId) -> Result<()> {
        let mut state = self.state.lock();
        if !state.vms.contains_key(&id) {
            return Ok(());
        }
        state.inject(FakeOp::Destroy)?;
        state.vms.remove(&id);
        Ok(())
    }

    async fn power(&self, id: VmId, action: PowerAction) -> Result<VmStatus> {
        let mut state = self.state.lock();
        state.inject(FakeOp::Power)?;
        let vm = state.vm(id)?;
        let current = vm.power;
        use PowerState::*;
        match (action, current) {
            (PowerAction::Start, Running) => {}
            (PowerAction::Start, Shutdown | Crashed) => vm.boot(),
            (PowerAction::Stop { .. }, Running) => vm.power_off(true),
            (PowerAction::Stop { .. } | PowerAction::HardStop, Shutdown) => {}
            (PowerAction::Stop { .. } | PowerAction::HardStop, _) => vm.power_off(false),
            (PowerAction::SoftReboot { .. }, Running) => {
                vm.power_off(true);
                vm.boot();
            }
            (PowerAction::SoftReboot { .. } | PowerAction::HardReboot, _) => vm.boot(),
            (PowerAction::Pause, Running) => vm.power = Paused,
            (PowerAction::Pause, Paused) => {}
            (PowerAction::Unpause, Paused) => vm.power = Running,
            (PowerAction::Unpause | PowerAction::Resume, Running) => {}
            (PowerAction::Suspend, Running | Paused) => vm.power = Suspended,
            (PowerAction::Suspend, Suspended) => {}
            (PowerAction::Resume, Suspended) => vm.power = Running,
            _ => {
                return Err(Error::InvalidState {
                    id,
                    state: current,
                    action: action.name(),
                })
            }
        }
        if vm.power != Crashed {
            vm.reason = None;
        }
        Ok(vm.status())
    }

    async fn status(&self, id: VmId) -> Result<VmStatus> {
        let mut state = self.state.lock();
        state.inject(FakeOp::Status)?;
        let vm = state.vms.get_mut(&id).ok_or(Error::NotFound { id })?;
        vm.settle(Instant::now());
        Ok(vm.status())
    }

    async fn list(&self) -> Result<Vec<VmStatus>> {
        let mut state = self.state.lock();
        state.inject(FakeOp::List)?;
        let now = Instant::now();
        let mut list: Vec<VmStatus> = state
            .vms
            .values_mut()
            .map(|vm| {
                vm.settle(now);
                vm.status()
            })
            .collect();
        list.sort_by_key(|status| status.id);
        Ok(list)
    }

    async fn console_log(&self, id: VmId, max_bytes: usize) -> Result<String> {
        let mut state = self.state.lock();
        state.inject(FakeOp::ConsoleLog)?;
        let vm = state.vms.get(&id).ok_or(Error::NotFound { id })?;
        let console = vm.console.as_bytes();
        let start = console.len().saturating_sub(max_bytes);
        Ok(String::from_utf8_lossy(&console[start..]).into_owned())
    }

    async fn attach_disk(&self, id: VmId, disk: &Disk) -> Result<()> {
        disk.validate()?;
        let mut state = self.state.lock();
        state.inject(FakeOp::AttachDisk)?;
        let vm = state.vm(id)?;
        if let Some(existing) = vm.spec.disk(&disk.id) {
            return if existing == disk {
                Ok(())
            } else {
                Err(Error::Conflict {
                    id,
                    reason: format!("disk {} is attached with another spec", disk.id),
                })
            };
        }
        if vm.power == PowerState::NoState {
            return Err(Error::InvalidState {
                id,
                state: vm.power,
                action: "attach a disk to",
            });
        }
        vm.spec.disks.push(disk.clone());
        Ok(())
    }

    async fn detach_disk(&self, id: VmId, disk_id: &str) -> Result<()> {
        let mut state = self.state.lock();
        state.inject(FakeOp::DetachDisk)?;
        let vm = state.vm(id)?;
        if disk_id == vm.spec.boot_disk.id {
            return Err(Error::InvalidRequest {
                id,
                reason: format!("disk {disk_id} is the boot disk"),
            });
        }
        let Some(at) = vm.spec.disks.iter().position(|d| d.id == disk_id) else {
            return Ok(());
        };
        if matches!(
            vm.power,
            PowerState::Paused | PowerState::Suspended | PowerState::NoState
        ) {
            return Err(Error::InvalidState {
                id,
                state: vm.power,
                action: "detach a disk from",
            });
        }
        vm.spec.disks.remove(at);
        vm.disk_sizes.remove(disk_id);
        Ok(())
    }

    async fn attach_nic(&self, id: VmId, nic: &NicSpec) -> Result<()> {
        nic.validate()?;
        let mut state = self.state.lock();
        state.inject(FakeOp::AttachNic)?;
        let vm = state.vm(id)?;
        if let Some(existing) = vm.spec.nic(&nic.id) {
            return if existing == nic {
                Ok(())
            } else {
                Err(Error::Conflict {
                    id,
                    reason: format!("NIC {} is attached with another spec", nic.id),
                })
            };
        }
        if vm.spec.nics.iter().any(|n| n.mac == nic.mac) {
            return Err(Error::Conflict {
                id,
                reason: format!("MAC {} is used by another NIC", nic.mac),
            });
        }
        if vm.power == PowerState::NoState {
            return Err(Error::InvalidState {
                id,
                state: vm.power,
                action: "attach a NIC to",
            });
        }
        vm.spec.nics.push(nic.clone());
        Ok(())
    }

    async fn detach_nic(&self, id: VmId, nic_id: &str) -> Result<()> {
        let mut state = self.state.lock();
        state.inject(FakeOp::DetachNic)?;
        let vm = state.vm(id)?;
        let Some(at) = vm.spec.nics.iter().position(|n| n.id == nic_id) else {
            return Ok(());
        };
        if matches!(
            vm.power,
            PowerState::Paused | PowerState::Suspended | PowerState::NoState
        ) {
            return Err(Error::InvalidState {
                id,
                state: vm.power,
                action: "detach a NIC from",
            });
        }
        vm.spec.nics.remove(at);
        Ok(())
    }

    async fn resize_disk(&self, id: VmId, disk_id: &str, size_bytes: u64) -> Result<()> {
        let mut state = self.state.lock();
        state.inject(FakeOp::ResizeDisk)?;
        let vm = state.vm(id)?;
        let Some(disk) = vm.spec.disk(disk_id) else {
            return Err(Error::InvalidRequest {
                id,
                reason: format!("no disk {disk_id} is attached"),
            });
        };
        if disk.spec.read_only {
            return Err(Error::InvalidRequest {
                id,
                reason: format!("disk {disk_id} is read-only"),
            });
        }
        if size_bytes == 0 || size_bytes % 512 != 0 {
            return Err(Error::InvalidRequest {
                id,
                reason: format!("size {size_bytes} is not a positive multiple of 512 bytes"),
            });
        }
        if !vm.has_process() {
            return Ok(());
        }
        match vm.disk_sizes.get(disk_id) {
            Some(&current) if size_bytes < current => Err(Error::InvalidRequest {
                id,
                reason: format!("disk {disk_id} is {current} bytes: disks only grow"),
            }),
            _ => {
                vm.disk_sizes.insert(disk_id.to_string(), size_bytes);
                Ok(())
            }
        }
    }
}
