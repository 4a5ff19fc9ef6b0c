//! The `BlockStore` trait: the contract every backend (local, memory, later ceph) keeps.
//!
//! # Objects and names
//!
//! Three kinds of objects share one namespace of caller-chosen names (`image-<uuid>`,
//! `disk-<uuid>`, `volume-<uuid>`, `snapshot-<uuid>`): the store never invents a name.
//!
//! ```text
//!   store_image ──> image (immutable) ──create_clone──> volume (writable) ──snapshot──> snapshot
//!                                                         ^   ^                          (immutable)
//!   create_volume ────────────────────────────────────────┘   └──────create_clone────────┘
//! ```
//!
//! A clone (from an image, a snapshot or a volume) is copy-on-write: it costs milliseconds and
//! no data whatever the size of its base, and reads through to the base until written.
//!
//! # Dependants and delete
//!
//! * Deleting an **image** or a **snapshot** that clones still depend on succeeds at once: the
//!   name disappears (`exists` is false, every call says `NotFound`, the name may be reused), but
//!   the data is kept, hidden, until the last dependant is deleted or flattened. This is what
//!   Glance and Cinder-on-Ceph do: an image can be deleted while VMs booted from it still run.
//! * Deleting a **volume** that still has snapshots taken from it is [`Error::InUse`] (Cinder:
//!   "volume has snapshots"); delete the snapshots first. A volume that other volumes were cloned
//!   from can be deleted (the hidden snapshot the clone was made from stays).
//! * Deleting something that does not exist succeeds.
//!
//! # Concurrency
//!
//! Calls on different names may run concurrently, from several tasks and several processes
//! sharing one store; the caller serialises calls on the same name (one owner per VM/volume).
//! A volume's disk file may change on `snapshot` and on `create_clone(Source::Volume)`: ask
//! `describe` right before starting QEMU, and don't snapshot a volume a running VM has open
//! (the local backend refuses with `InUse`; online snapshots go through the hypervisor).

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{ByteStream, Capacity, ImageInfo, ObjectInfo, QemuDisk, Source, Usage};

/// Block storage for images, VM disks, volumes and snapshots. Use it as `Arc<dyn BlockStore>`.
#[async_trait]
pub trait BlockStore: Send + Sync + 'static {
    /// Stores an image from a stream of chunks, never holding more than a few chunks in memory.
    ///
    /// The format is detected from the content: qcow2 by its header magic (its virtual size read
    /// from the header; qcow2 files with a backing file, an external data file or encryption are
    /// refused with `InvalidImage`), raw otherwise. The image appears under `name` only once
    /// complete: an error in the stream (`Upload`), a dropped future or a crash leaves nothing.
    /// `AlreadyExists` if the name is taken.
    async fn store_image(&self, name: &str, data: ByteStream) -> Result<ImageInfo>;

    /// Creates an empty (all zeros) writable volume of `size` bytes, rounded up to 512.
    async fn create_volume(&self, name: &str, size: u64) -> Result<ObjectInfo>;

    /// Creates the writable volume `name` as a copy-on-write clone of `source`, grown to `size`
    /// bytes if given (never smaller than the source: `InvalidSize`). Milliseconds, whatever the
    /// size of the source. The source must exist and be of the kind named by the `Source` variant
    /// (`NotFound`, `WrongKind`). Cloning a volume first takes a hidden snapshot of it.
    async fn create_clone(
        &self,
        source: &Source,
        name: &str,
        size: Option<u64>,
    ) -> Result<ObjectInfo>;

    /// Takes the snapshot `snapshot` of the volume `volume`: an immutable copy of its content
    /// now, cheap to clone from. Later writes to the volume do not change the snapshot.
    async fn snapshot(&self, volume: &str, snapshot: &str) -> Result<ObjectInfo>;

    /// Grows a volume to `new_size` bytes (rounded up to 512); the new part reads as zeros.
    /// Same size: nothing happens. Smaller: `InvalidSize`. Images and snapshots: `WrongKind`.
    async fn resize(&self, name: &str, new_size: u64) -> Result<ObjectInfo>;

    /// Copies into a volume everything it still reads from its bases, so that it no longer
    /// depends on them (a hidden base whose last dependant this was is then freed). A volume
    /// without a base: nothing happens.
    async fn flatten(&self, name: &str) -> Result<()>;

    /// Deletes an object; see the module docs for dependants. Already gone: `Ok`.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Streams the content: for an image the bytes as uploaded (what Glance's download returns),
    /// for a volume or snapshot the raw disk the guest sees (`virtual_size` bytes).
    async fn open_read(&self, name: &str) -> Result<ByteStream>;

    /// True if a visible object has this name.
    async fn exists(&self, name: &str) -> Result<bool>;

    /// Kind, format and sizes of an object.
    async fn info(&self, name: &str) -> Result<ObjectInfo>;

    /// How QEMU opens the object (`-drive file=...,format=...`, or QMP `blockdev-add`).
    async fn describe(&self, name: &str) -> Result<QemuDisk>;

    /// Space of the whole store.
    async fn capacity(&self) -> Result<Capacity>;

    /// Space of one object.
    async fn usage(&self, name: &str) -> Result<Usage>;
}
