//! Volumes of a VM (block storage, issue 7): the disks the desired state lists besides the root
//! disk, converged like NICs. A volume is a virtio-blk disk whose id is the volume id (so its
//! serial in the guest is the volume id's first 20 characters, as with Nova and libvirt).
//!
//! ```text
//!   spawn ──> every desired volume in the spec (described right before: paths change)
//!   desired, not attached ──> describe + attach_disk (hot-plug when running, recorded when off)
//!   attached, not desired ──> detach_disk (the guest must release it; a guest that does not
//!                             is retried at the next pass)
//!   desired size > the block store's ──> resize_disk (QMP block_resize: online extend)
//! ```
//!
//! Failures are logged and retried at the next pass; they never fail the VM's convergence
//! (a volume that cannot be attached must not keep the VM from running).

use nubo_blockstore::QemuLocation;
use nubo_compute::agent_api::{DesiredServer, DesiredVolume};
use nubo_hypervisor::{Disk, DiskFormat, DiskSource, DiskSpec, PowerState, VmId, VmStatus};

use crate::Shared;

/// The hypervisor's disk for a desired volume.
async fn disk_of(shared: &Shared, v: &DesiredVolume) -> Result<Disk, String> {
    let disk = shared
        .blockstore
        .describe(&v.disk)
        .await
        .map_err(|e| format!("volume {}: {e}", v.volume_id))?;
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
    Ok(Disk::new(
        v.volume_id.clone(),
        DiskSpec {
            source,
            format,
            read_only: disk.read_only || v.read_only,
        },
    ))
}

/// The volumes a VM is spawned with (those that cannot be described are left for the next
/// pass to attach).
pub(crate) async fn spawn_disks(shared: &Shared, d: &DesiredServer) -> Vec<Disk> {
    let mut out = Vec::new();
    for v in &d.volumes {
        match disk_of(shared, v).await {
            Ok(disk) => out.push(disk),
            Err(e) => tracing::warn!(error = %e, "volume left out of the spawn"),
        }
    }
    out
}

/// A disk id that is a volume's (a UUID): the only disks this module ever removes.
fn is_volume_id(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

/// Brings the VM's volumes to `d`.
pub(crate) async fn converge(shared: &Shared, vm: VmId, d: &DesiredServer, current: &VmStatus) {
    for v in &d.volumes {
        if current.disks.iter().any(|id| id == &v.volume_id) {
            continue;
        }
        let attached = match disk_of(shared, v).await {
            Ok(disk) => shared
                .hv
                .attach_disk(vm, &disk)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match attached {
            Ok(()) => tracing::info!(volume_id = %v.volume_id, "volume attached"),
            Err(e) => {
                tracing::warn!(volume_id = %v.volume_id, error = %e, "attaching a volume failed; will retry")
            }
        }
    }
    for id in &current.disks {
        if !is_volume_id(id) || d.volumes.iter().any(|v| &v.volume_id == id) {
            continue;
        }
        match shared.hv.detach_disk(vm, id).await {
            Ok(()) => tracing::info!(volume_id = %id, "volume detached"),
            Err(e) => {
                tracing::warn!(volume_id = %id, error = %e, "detaching a volume failed; will retry")
            }
        }
    }
    if current.power_state != PowerState::Running {
        return;
    }
    for v in &d.volumes {
        if !current.disks.iter().any(|id| id == &v.volume_id) {
            continue;
        }
        let size = match shared.blockstore.info(&v.disk).await {
            Ok(info) => info.virtual_size,
            Err(e) => {
                tracing::warn!(volume_id = %v.volume_id, error = %e, "volume size unknown");
                continue;
            }
        };
        if size < v.size_bytes {
            match shared.hv.resize_disk(vm, &v.volume_id, v.size_bytes).await {
                Ok(()) => {
                    tracing::info!(volume_id = %v.volume_id, size = v.size_bytes, "volume grown")
                }
                Err(e) => {
                    tracing::warn!(volume_id = %v.volume_id, error = %e, "growing a volume failed; will retry")
                }
            }
        }
    }
}
