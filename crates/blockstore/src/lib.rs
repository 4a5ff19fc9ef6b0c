//! Nubo's block storage: images, VM disks, volumes and snapshots behind one trait.
//!
//! * [`BlockStore`]: the contract (store an image from a stream, create a volume, copy-on-write
//!   clone, snapshot, resize, flatten, delete, stream out, describe for QEMU, capacity). Its docs
//!   say what delete does to objects others depend on.
//! * [`LocalStore`]: files in a directory, clones as qcow2 overlays made by `qemu-img`.
//! * [`MemoryStore`]: the same semantics in memory, with fault injection, for tests.
//! * A `ceph` backend (librbd, `rbd:pool/image` for QEMU) is planned behind a cargo feature;
//!   [`QemuLocation::Rbd`] is already part of the types.
//!
//! ```no_run
//! # async fn example() -> nubo_blockstore::Result<()> {
//! use std::sync::Arc;
//! use nubo_blockstore::{BlockStore, LocalStore, Source};
//!
//! let store: Arc<dyn BlockStore> = Arc::new(LocalStore::open("/var/lib/nubo/blockstore")?);
//! let data = Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"disk"))]));
//! store.store_image("image-1", data).await?;
//! store.create_clone(&Source::Image("image-1".into()), "disk-1", Some(1 << 30)).await?;
//! let disk = store.describe("disk-1").await?;
//! println!("-drive {},if=virtio", disk.drive_options());
//! # Ok(()) }
//! ```

mod command;
mod error;
mod local;
mod memory;
mod qcow2;
mod store;
mod types;

pub use error::{Error, Result};
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use store::BlockStore;
pub use types::{
    round_to_sector, validate_name, ByteStream, Capacity, DiskFormat, ImageInfo, ObjectInfo,
    ObjectKind, Op, QemuDisk, QemuLocation, Source, Usage, SECTOR,
};
