//! The contract every driver keeps. The fake driver (`FakeHypervisor`) implements exactly this and
//! nothing more; the contract tests in `tests/contract` run against both drivers.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{Disk, HostInfo, NicSpec, PowerAction, VmId, VmSpec, VmStatus};

/// Runs the VMs of one host.
///
/// Every method is idempotent in the sense the agent's reconcile loop needs: asking for a state
/// that is already reached succeeds and changes nothing. Methods on one VM are applied one after
/// the other in the order they were called (each VM has one owner inside the driver); methods on
/// different VMs run concurrently. [`Hypervisor::destroy`] is the exception: it interrupts a long
/// operation in progress on the same VM (a clean shutdown waiting for the guest, a detach waiting
/// for the guest to release the device), which then fails with `Error::Cancelled`.
///
/// Errors: a VM id that does not exist is `Error::NotFound` everywhere except in `destroy` (which
/// succeeds) and `spawn` (which creates it). A state that does not allow the action is
/// `Error::InvalidState`, and nothing was changed.
///
/// The object is meant to be shared: `Arc<dyn Hypervisor>`.
#[async_trait]
pub trait Hypervisor: Send + Sync + 'static {
    /// Describes the host: CPUs, memory, disk, hypervisor type and version, accelerator.
    async fn info(&self) -> Result<HostInfo>;

    /// Creates the VM and boots it. Returns once the VM is running (the guest has started, not
    /// finished, booting: watch [`Hypervisor::console_log`] for that).
    ///
    /// * Idempotent: if a VM with `spec.id` exists already (in any power state), nothing is done
    ///   and its status is returned. The spec is then *not* compared: to change a VM, destroy it
    ///   and spawn it again, or use the hot-plug methods.
    /// * A failed spawn cleans up after itself: no process, no runtime files, and `status` says
    ///   `NotFound`. The error says why (for QEMU, with the tail of QEMU's own log).
    /// * The spec is validated first (`Error::InvalidSpec`). The driver does not create disks,
    ///   taps or config drives: they must exist.
    async fn spawn(&self, spec: &VmSpec) -> Result<VmStatus>;

    /// Removes the VM: pulls the plug if it runs, then deletes everything the driver made for it
    /// (runtime dir, console log unless the spec named its own path). The caller's disks, taps
    /// and config drive are left alone.
    ///
    /// Succeeds when the VM does not exist (already destroyed, never spawned).
    async fn destroy(&self, id: VmId) -> Result<()>;

    /// Changes the VM's power state. Returns the status afterwards.
    ///
    /// | action | from | result |
    /// |---|---|---|
    /// | `Start` | Shutdown, Crashed | boots from the spec: Running |
    /// | `Start` | Running | nothing |
    /// | `Stop` | Running | ACPI power button (pressed again every few seconds); after `timeout`, hard stop: Shutdown |
    /// | `Stop` | Paused, Suspended, NoState | hard stop at once (a frozen guest cannot see the button): Shutdown |
    /// | `Stop`, `HardStop` | Crashed | forgets the crash: Shutdown |
    /// | `Stop`, `HardStop` | Shutdown | nothing |
    /// | `HardStop` | Running, Paused, Suspended, NoState | pulls the plug: Shutdown |
    /// | `SoftReboot` | Running | power button, then reset when the guest powered off (hard reboot after `timeout`): Running |
    /// | `SoftReboot` | any other | hard reboot |
    /// | `HardReboot` | any | pulls the plug if needed, boots again from the spec: Running |
    /// | `Pause` | Running | Paused; from Paused: nothing |
    /// | `Unpause` | Paused | Running; from Running: nothing |
    /// | `Suspend` | Running, Paused | Suspended; from Suspended: nothing |
    /// | `Resume` | Suspended | Running; from Running: nothing |
    ///
    /// Every other combination is `Error::InvalidState`.
    async fn power(&self, id: VmId, action: PowerAction) -> Result<VmStatus>;

    /// The VM's current state, observed now (the QEMU driver asks QEMU).
    async fn status(&self, id: VmId) -> Result<VmStatus>;

    /// Every VM this host has, in any power state, including VMs the driver found on the host
    /// when it started (adopted) and VMs that crashed. This is what the agent diffs against its
    /// desired state to adopt, restart or garbage-collect.
    async fn list(&self) -> Result<Vec<VmStatus>>;

    /// The last `max_bytes` bytes of the VM's serial console (lossy UTF-8; the console survives
    /// stop/start and reboots, and is kept while the VM is shut down).
    async fn console_log(&self, id: VmId, max_bytes: usize) -> Result<String>;

    /// Attaches a disk as a virtio-blk device.
    ///
    /// * Running, paused or suspended VM: hot-plugged (QMP `blockdev-add` + `device_add`); the
    ///   guest sees a new `/dev/vdX` whose serial (`/sys/block/vdX/serial`) is the first 20
    ///   bytes of `disk.id`. Identify disks in the guest by serial, not by name: `vdX` names
    ///   follow PCI slot order.
    /// * Shut down or crashed VM: recorded; the disk is there at the next start.
    /// * The disk stays in the VM's spec across stop/start and reboots, until detached.
    /// * Idempotent: the same disk (same id, same spec) attached again succeeds; the same id with
    ///   another spec is `Error::Conflict`.
    async fn attach_disk(&self, id: VmId, disk: &Disk) -> Result<()>;

    /// Detaches a disk.
    ///
    /// * Running VM: asks the guest to release the device (ACPI PCI hot-unplug), waits until
    ///   QEMU reports it gone (`DEVICE_DELETED`), then closes the image. A guest that does not
    ///   cooperate (still booting, no ACPI hot-plug support) makes this fail with
    ///   `Error::Timeout` and the disk stays attached: try again later, or stop the VM first.
    /// * Paused or suspended VM: `Error::InvalidState` (a frozen guest cannot release anything).
    /// * Shut down or crashed VM: removed from the spec at once.
    ///
    /// Succeeds when no disk with this id is attached. The boot disk cannot be detached
    /// (`Error::InvalidRequest`).
    async fn detach_disk(&self, id: VmId, disk_id: &str) -> Result<()>;

    /// Attaches a virtio-net NIC (hot-plugged when the VM runs). Same idempotency as
    /// [`Hypervisor::attach_disk`]. The tap must exist.
    async fn attach_nic(&self, id: VmId, nic: &NicSpec) -> Result<()>;

    /// Detaches a NIC; same waiting and idempotency as [`Hypervisor::detach_disk`].
    async fn detach_nic(&self, id: VmId, nic_id: &str) -> Result<()>;

    /// Tells a running VM that an attached disk grew to `size_bytes` (QMP `block_resize`, which
    /// also grows the image file): the guest sees the new size at once. Shrinking is
    /// `Error::InvalidRequest`; the same size is a no-op. On a VM that is not running there is no
    /// process to tell: this succeeds without doing anything, and the caller resizes the image
    /// itself (the block store's `resize`); the VM sees it at the next start.
    async fn resize_disk(&self, id: VmId, disk_id: &str, size_bytes: u64) -> Result<()>;
}
