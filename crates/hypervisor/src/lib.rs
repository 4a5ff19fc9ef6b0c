//! Nubo's hypervisor layer: runs the virtual machines of one host.
//!
//! * [`Hypervisor`]: the contract (spawn, destroy, power actions, status, list, console log,
//!   disk and NIC hot-plug, disk resize, host info), documented method by method the way Nova's
//!   fake driver documents the virt driver API.
//! * [`QemuHypervisor`]: one `qemu-system-x86_64` per VM, driven over QMP ([`qmp::Qmp`]); KVM
//!   when usable, TCG otherwise. VMs outlive the agent, and a restarted agent adopts them from
//!   their runtime dirs. The [`qemu`] module docs draw the state machine and the runtime dir.
//! * [`FakeHypervisor`]: the same contract in memory, with fault knobs, for tests that run
//!   hundreds of VMs in one process.
//! * [`runner`]: the one place external programs are started.
//!
//! ```no_run
//! # async fn example() -> nubo_hypervisor::Result<()> {
//! use std::sync::Arc;
//! use nubo_hypervisor::*;
//!
//! let hv: Arc<dyn Hypervisor> =
//!     Arc::new(QemuHypervisor::open(QemuConfig::new("/var/lib/nubo/vms")).await?);
//! let boot = Disk::new("root", DiskSpec::file("/var/lib/nubo/disks/vm1.qcow2", DiskFormat::Qcow2));
//! let mut spec = VmSpec::new(VmId::new_random(), "vm1", boot);
//! spec.memory_mib = 256;
//! spec.nics.push(NicSpec::tap("port-1", "tap1a2b3c4d-5e", "fa:16:3e:00:00:01".parse()?));
//! hv.spawn(&spec).await?;
//! hv.power(spec.id, PowerAction::STOP).await?;
//! hv.destroy(spec.id).await?;
//! # Ok(()) }
//! ```

mod error;
mod fake;
pub mod host;
mod hypervisor;
pub mod qemu;
pub mod qmp;
pub mod runner;
mod types;

pub use error::{Error, Result};
pub use fake::{FakeHypervisor, FakeOp};
pub use hypervisor::Hypervisor;
pub use qemu::{QemuConfig, QemuHypervisor};
pub use types::{
    validate_device_id, Accel, AccelMode, ConfigDrive, ConfigDriveFormat, Disk, DiskFormat,
    DiskSource, DiskSpec, HostInfo, MacAddr, NicBackend, NicModel, NicSpec, PowerAction,
    PowerState, VmId, VmSpec, VmStatus,
};
