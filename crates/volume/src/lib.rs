//! Block Storage (Cinder v3) for Nubo: volumes with Cinder's status machine, snapshots, volume
//! types (extra specs, access, QoS specs, per-project defaults), attachments (Cinder's API and
//! the ones Compute makes, which its agents hot-plug into running VMs), quotas and limits,
//! generic groups and group snapshots, transfers between projects, user messages, and the
//! admin views (services, hosts, pools, capabilities). The data lives in the block store:
//! a volume is a block store volume, a snapshot a block store snapshot, and a volume from an
//! image, a snapshot or a volume is a copy-on-write clone.
//!
//! `http` -> `service` -> `store`, one direction. [`microversion`] negotiates Cinder's
//! microversions (3.0 to [`microversion::MAX`]).
//!
//! ```text
//!   cinder API ──> VolumeService ──> store (SQL)
//!                      │ create / clone / snapshot / extend / delete ──> BlockStore
//!                      │ upload to image ──> ImageService
//!                      │ online extend, attachment changes ──> ComputeHooks (Compute)
//!   Compute ─────> VolumeService::attach_for_server / begin_detach / server_gone / ...
//!                  (the agent hot-plugs what `server_disks` says; Compute reports back)
//! ```

pub mod http;
pub mod microversion;
pub mod service;
pub mod store;

pub use service::compute::{
    AttachedVolume, BootVolumeRequest, ComputeHooks, ServerDisk, ServerRef,
};
pub use service::copy::{DiskExporter, QemuImgExporter, StreamExporter};
pub use service::{VolumeService, VolumeSettings};
