//! The conformance suite: what a user of `BlockStore` relies on, checked against every backend.
//!
//! Each check is an `async fn(&dyn Harness)`; the `conformance!` macro runs it once on
//! `MemoryStore` and once on `LocalStore` in a fresh temporary directory. A harness also plays
//! the guest (writes into a volume: `MemoryStore::write_at`, or `qemu-io` on the file `describe`
//! names) and the restart (reopening the directory). Checks that need `qemu-img` print
//! `SKIP: ...` and pass when it is missing.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use nubo_blockstore::{
    BlockStore, DiskFormat, Error, LocalStore, MemoryStore, ObjectKind, QemuDisk, QemuLocation,
    Source,
};

use common::{chunked, pattern, qemu_available, read_all, sha256, TempDir};

const MIB: u64 = 1 << 20;

/// A backend under test, with the powers the trait does not have.
trait Harness: Send + Sync {
    fn store(&self) -> Arc<dyn BlockStore>;
    /// Writes `len` bytes of value `byte` at `offset` into a volume, as a guest would.
    fn write(&self, name: &str, disk: &QemuDisk, offset: u64, len: u64, byte: u8);
    /// The store as a restarted process would see it, if the backend persists.
    fn reopen(&self) -> Option<Arc<dyn BlockStore>>;
    /// False (after printing a SKIP line) when clones can't be made here.
    fn can_clone(&self, test: &str) -> bool;
}

struct MemoryHarness {
    store: MemoryStore,
}

impl Harness for MemoryHarness {
    fn store(&self) -> Arc<dyn BlockStore> {
        Arc::new(self.store.clone())
    }

    fn write(&self, name: &str, _disk: &QemuDisk, offset: u64, len: u64, byte: u8) {
        self.store
            .write_at(name, offset, &vec![byte; len as usize])
            .unwrap();
    }

    fn reopen(&self) -> Option<Arc<dyn BlockStore>> {
        None
    }

    fn can_clone(&self, _test: &str) -> bool {
        true
    }
}

struct LocalHarness {
    dir: TempDir,
    store: LocalStore,
}

impl LocalHarness {
    fn new() -> LocalHarness {
        let dir = TempDir::new("conformance");
        let store = LocalStore::open(dir.path()).unwrap();
        LocalHarness { dir, store }
    }
}

impl Harness for LocalHarness {
    fn store(&self) -> Arc<dyn BlockStore> {
        Arc::new(self.store.clone())
    }

    fn write(&self, _name: &str, disk: &QemuDisk, offset: u64, len: u64, byte: u8) {
        let QemuLocation::File(path) = &disk.location else {
            panic!("local disks are files");
        };
        let output = std::process::Command::new("qemu-io")
            .arg("-f")
            .arg(disk.format.as_str())
            .arg("-c")
            .arg(format!("write -P {byte} {offset} {len}"))
            .arg(path)
            .output()
            .expect("qemu-io runs");
        assert!(
            output.status.success(),
            "qemu-io: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn reopen(&self) -> Option<Arc<dyn BlockStore>> {
        Some(Arc::new(LocalStore::open(self.dir.path()).unwrap()))
    }

    fn can_clone(&self, test: &str) -> bool {
        if qemu_available() {
            return true;
        }
        eprintln!(
            "SKIP: local::{test}: qemu-img/qemu-io not installed (apt-get install qemu-utils)"
        );
        false
    }
}

/// Runs each named check on both backends.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    let harness = super::MemoryHarness { store: nubo_blockstore::MemoryStore::new() };
                    super::$check(&harness).await;
                }
            )*
        }
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let harness = super::LocalHarness::new();
                    super::$check(&harness).await;
                }
            )*
        }
    };
}

conformance!(
    image_round_trip,
    image_format_detection,
    failed_upload_leaves_nothing,
    clone_reads_base,
    clone_writes_stay_in_clone,
    snapshot_and_clone_from_snapshot,
    clone_from_volume,
    empty_volume_and_resize,
    delete_with_dependants,
    flatten_makes_independent,
    not_found_and_invalid,
    restart_keeps_everything,
    capacity_and_usage,
    concurrent_clones,
);

async fn store_bytes(store: &dyn BlockStore, name: &str, data: &[u8]) {
    let info = store
        .store_image(name, chunked(data, 65_537))
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
}

async fn write(h: &dyn Harness, name: &str, offset: u64, len: u64, byte: u8) {
    let disk = h.store().describe(name).await.unwrap();
    assert!(!disk.read_only, "{name} should be writable");
    h.write(name, &disk, offset, len, byte);
}

async fn image_round_trip(h: &dyn Harness) {
    let store = h.store();
    // Odd size, odd chunking, and a run of zero chunks (stored sparse by `local`).
    let mut data = pattern(3 * MIB as usize + 123, 1);
    data[MIB as usize..2 * MIB as usize].fill(0);
    let info = store
        .store_image("image-1", chunked(&data, 4096))
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(info.virtual_size, data.len() as u64);
    assert_eq!(info.format, DiskFormat::Raw);
    assert_eq!(sha256(&read_all(&*store, "image-1").await), sha256(&data));

    assert!(store.exists("image-1").await.unwrap());
    let object = store.info("image-1").await.unwrap();
    assert_eq!(object.kind, ObjectKind::Image);
    assert_eq!(object.size, data.len() as u64);
    let disk = store.describe("image-1").await.unwrap();
    assert_eq!(disk.format, DiskFormat::Raw);
    assert!(disk.read_only);

    let again = store.store_image("image-1", chunked(b"other", 5)).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );

    let empty = store
        .store_image("image-empty", chunked(b"", 1))
        .await
        .unwrap();
    assert_eq!((empty.size, empty.virtual_size), (0, 0));
    assert!(read_all(&*store, "image-empty").await.is_empty());
}

/// A qcow2 v3 header (no data): enough for detection, not for booting.
fn qcow2_header(virtual_size: u64, backing_offset: u64) -> Vec<u8> {
    let mut head = vec![0u8; 512];
    head[..4].copy_from_slice(b"QFI\xfb");
    head[4..8].copy_from_slice(&3u32.to_be_bytes());
    head[8..16].copy_from_slice(&backing_offset.to_be_bytes());
    head[20..24].copy_from_slice(&16u32.to_be_bytes());
    head[24..32].copy_from_slice(&virtual_size.to_be_bytes());
    head[100..104].copy_from_slice(&104u32.to_be_bytes());
    head
}

async fn image_format_detection(h: &dyn Harness) {
    let store = h.store();
    let head = qcow2_header(10 << 30, 0);
    // Chunks smaller than the header: detection must gather them.
    let info = store
        .store_image("image-q", chunked(&head, 7))
        .await
        .unwrap();
    assert_eq!(info.format, DiskFormat::Qcow2);
    assert_eq!(info.virtual_size, 10 << 30);
    assert_eq!(info.size, 512);
    assert_eq!(
        store.describe("image-q").await.unwrap().format,
        DiskFormat::Qcow2
    );
    assert_eq!(read_all(&*store, "image-q").await, head);

    let evil = store
        .store_image("image-evil", chunked(&qcow2_header(1 << 20, 200), 512))
        .await;
    assert!(matches!(evil, Err(Error::InvalidImage { .. })), "{evil:?}");
    assert!(!store.exists("image-evil").await.unwrap());
}

async fn failed_upload_leaves_nothing(h: &dyn Harness) {
    let store = h.store();
    let before = store.capacity().await.unwrap().used;
    let stream = futures::stream::iter(vec![
        Ok(Bytes::from(pattern(MIB as usize, 2))),
        Err(std::io::Error::other("client went away")),
    ]);
    let result = store.store_image("image-broken", Box::pin(stream)).await;
    assert!(matches!(result, Err(Error::Upload(_))), "{result:?}");
    assert!(!store.exists("image-broken").await.unwrap());
    assert_eq!(store.capacity().await.unwrap().used, before);
    // The name is still free.
    store_bytes(&*store, "image-broken", b"fine").await;
}

async fn clone_reads_base(h: &dyn Harness) {
    if !h.can_clone("clone_reads_base") {
        return;
    }
    let store = h.store();
    let data = pattern(MIB as usize + 1000, 3);
    store_bytes(&*store, "image-1", &data).await;
    let source = Source::Image("image-1".into());

    let same = store
        .create_clone(&source, "disk-same", None)
        .await
        .unwrap();
    assert_eq!(same.kind, ObjectKind::Volume);
    assert_eq!(same.virtual_size, MIB + 1024, "rounded up to sectors");
    let mut expected = data.clone();
    expected.resize((MIB + 1024) as usize, 0);
    assert_eq!(
        sha256(&read_all(&*store, "disk-same").await),
        sha256(&expected)
    );
    assert!(!store.describe("disk-same").await.unwrap().read_only);

    let grown = store
        .create_clone(&source, "disk-big", Some(4 * MIB))
        .await
        .unwrap();
    assert_eq!(grown.virtual_size, 4 * MIB);
    expected.resize(4 * MIB as usize, 0);
    assert_eq!(
        sha256(&read_all(&*store, "disk-big").await),
        sha256(&expected)
    );

    let small = store.create_clone(&source, "disk-small", Some(4096)).await;
    assert!(matches!(small, Err(Error::InvalidSize { .. })), "{small:?}");
    let taken = store.create_clone(&source, "disk-same", None).await;
    assert!(
        matches!(taken, Err(Error::AlreadyExists { .. })),
        "{taken:?}"
    );
    let kind = store
        .create_clone(&Source::Snapshot("image-1".into()), "disk-x", None)
        .await;
    assert!(matches!(kind, Err(Error::WrongKind { .. })), "{kind:?}");
    assert!(!store.exists("disk-small").await.unwrap());
    assert!(!store.exists("disk-x").await.unwrap());
}

async fn clone_writes_stay_in_clone(h: &dyn Harness) {
    if !h.can_clone("clone_writes_stay_in_clone") {
        return;
    }
    let store = h.store();
    let data = pattern(2 * MIB as usize, 4);
    store_bytes(&*store, "image-1", &data).await;
    let source = Source::Image("image-1".into());
    store.create_clone(&source, "disk-1", None).await.unwrap();
    write(h, "disk-1", 4096, 8192, 0xab).await;

    let mut expected = data.clone();
    expected[4096..4096 + 8192].fill(0xab);
    assert_eq!(
        sha256(&read_all(&*store, "disk-1").await),
        sha256(&expected)
    );
    assert_eq!(sha256(&read_all(&*store, "image-1").await), sha256(&data));
    store.create_clone(&source, "disk-2", None).await.unwrap();
    assert_eq!(sha256(&read_all(&*store, "disk-2").await), sha256(&data));
}

async fn snapshot_and_clone_from_snapshot(h: &dyn Harness) {
    if !h.can_clone("snapshot_and_clone_from_snapshot") {
        return;
    }
    let store = h.store();
    let data = pattern(MIB as usize, 5);
    store_bytes(&*store, "image-1", &data).await;
    store
        .create_clone(&Source::Image("image-1".into()), "volume-1", None)
        .await
        .unwrap();
    write(h, "volume-1", 0, 65536, 0x11).await;
    let at_snapshot = read_all(&*store, "volume-1").await;

    let snap = store.snapshot("volume-1", "snapshot-1").await.unwrap();
    assert_eq!(snap.kind, ObjectKind::Snapshot);
    assert_eq!(snap.virtual_size, MIB);
    assert!(store.describe("snapshot-1").await.unwrap().read_only);
    write(h, "volume-1", 65536, 65536, 0x22).await;

    assert_eq!(
        sha256(&read_all(&*store, "snapshot-1").await),
        sha256(&at_snapshot)
    );
    let mut now = at_snapshot.clone();
    now[65536..131072].fill(0x22);
    assert_eq!(sha256(&read_all(&*store, "volume-1").await), sha256(&now));

    store
        .create_clone(
            &Source::Snapshot("snapshot-1".into()),
            "volume-2",
            Some(2 * MIB),
        )
        .await
        .unwrap();
    let mut from_snapshot = at_snapshot.clone();
    from_snapshot.resize(2 * MIB as usize, 0);
    assert_eq!(
        sha256(&read_all(&*store, "volume-2").await),
        sha256(&from_snapshot)
    );
    write(h, "volume-2", 0, 512, 0x33).await;
    assert_eq!(
        sha256(&read_all(&*store, "snapshot-1").await),
        sha256(&at_snapshot)
    );
    assert_eq!(sha256(&read_all(&*store, "volume-1").await), sha256(&now));

    // A second snapshot of the same volume, and snapshots are immutable.
    store.snapshot("volume-1", "snapshot-2").await.unwrap();
    assert_eq!(sha256(&read_all(&*store, "snapshot-2").await), sha256(&now));
    let resize = store.resize("snapshot-1", 4 * MIB).await;
    assert!(matches!(resize, Err(Error::WrongKind { .. })), "{resize:?}");
    let of_image = store.snapshot("image-1", "snapshot-3").await;
    assert!(
        matches!(of_image, Err(Error::WrongKind { .. })),
        "{of_image:?}"
    );
    let taken = store.snapshot("volume-1", "snapshot-1").await;
    assert!(
        matches!(taken, Err(Error::AlreadyExists { .. })),
        "{taken:?}"
    );
}

async fn clone_from_volume(h: &dyn Harness) {
    if !h.can_clone("clone_from_volume") {
        return;
    }
    let store = h.store();
    store.create_volume("volume-1", MIB).await.unwrap();
    write(h, "volume-1", 1024, 4096, 0x44).await;
    let original = read_all(&*store, "volume-1").await;

    store
        .create_clone(&Source::Volume("volume-1".into()), "volume-2", None)
        .await
        .unwrap();
    assert_eq!(
        sha256(&read_all(&*store, "volume-2").await),
        sha256(&original)
    );
    write(h, "volume-1", 0, 512, 0x55).await;
    write(h, "volume-2", 8192, 512, 0x66).await;
    let mut one = original.clone();
    one[..512].fill(0x55);
    let mut two = original.clone();
    two[8192..8192 + 512].fill(0x66);
    assert_eq!(sha256(&read_all(&*store, "volume-1").await), sha256(&one));
    assert_eq!(sha256(&read_all(&*store, "volume-2").await), sha256(&two));
    // The source has no user snapshot: it can be deleted, the clone keeps its data.
    store.delete("volume-1").await.unwrap();
    assert_eq!(sha256(&read_all(&*store, "volume-2").await), sha256(&two));
}

async fn empty_volume_and_resize(h: &dyn Harness) {
    if !h.can_clone("empty_volume_and_resize") {
        return;
    }
    let store = h.store();
    let info = store.create_volume("volume-1", 1000).await.unwrap();
    assert_eq!((info.kind, info.virtual_size), (ObjectKind::Volume, 1024));
    assert_eq!(read_all(&*store, "volume-1").await, vec![0u8; 1024]);
    let zero = store.create_volume("volume-0", 0).await;
    assert!(matches!(zero, Err(Error::InvalidSize { .. })), "{zero:?}");

    store.resize("volume-1", MIB).await.unwrap();
    write(h, "volume-1", 0, 512, 0x77).await;
    let grown = store.resize("volume-1", 3 * MIB).await.unwrap();
    assert_eq!(grown.virtual_size, 3 * MIB);
    assert_eq!(store.info("volume-1").await.unwrap().virtual_size, 3 * MIB);
    let content = read_all(&*store, "volume-1").await;
    assert_eq!(content.len() as u64, 3 * MIB);
    assert!(content[..512].iter().all(|&b| b == 0x77));
    assert!(content[512..].iter().all(|&b| b == 0));

    let same = store.resize("volume-1", 3 * MIB).await.unwrap();
    assert_eq!(same.virtual_size, 3 * MIB);
    let shrink = store.resize("volume-1", MIB).await;
    assert!(
        matches!(shrink, Err(Error::InvalidSize { .. })),
        "{shrink:?}"
    );

    // A clone grown past its base, then grown again, reads zeros past the base.
    let data = pattern(MIB as usize, 6);
    store_bytes(&*store, "image-1", &data).await;
    let resize_image = store.resize("image-1", 2 * MIB).await;
    assert!(
        matches!(resize_image, Err(Error::WrongKind { .. })),
        "{resize_image:?}"
    );
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", None)
        .await
        .unwrap();
    store.resize("disk-1", 2 * MIB).await.unwrap();
    let mut expected = data.clone();
    expected.resize(2 * MIB as usize, 0);
    assert_eq!(
        sha256(&read_all(&*store, "disk-1").await),
        sha256(&expected)
    );
}

async fn delete_with_dependants(h: &dyn Harness) {
    if !h.can_clone("delete_with_dependants") {
        return;
    }
    let store = h.store();
    let data = pattern(MIB as usize, 7);
    store_bytes(&*store, "image-1", &data).await;
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", None)
        .await
        .unwrap();

    // An image with a clone: gone by name at once, data kept for the clone.
    store.delete("image-1").await.unwrap();
    assert!(!store.exists("image-1").await.unwrap());
    assert!(store.info("image-1").await.unwrap_err().is_not_found());
    assert_eq!(sha256(&read_all(&*store, "disk-1").await), sha256(&data));
    // The name can be reused; the old clone still reads the old image.
    store_bytes(&*store, "image-1", b"a different image").await;
    assert_eq!(sha256(&read_all(&*store, "disk-1").await), sha256(&data));

    // A volume with a snapshot: InUse until the snapshot is deleted.
    store.snapshot("disk-1", "snapshot-1").await.unwrap();
    store
        .create_clone(&Source::Snapshot("snapshot-1".into()), "disk-2", None)
        .await
        .unwrap();
    let in_use = store.delete("disk-1").await;
    assert!(matches!(in_use, Err(Error::InUse { .. })), "{in_use:?}");
    assert!(store.exists("disk-1").await.unwrap());
    // A snapshot with a clone: gone by name, data kept for the clone.
    store.delete("snapshot-1").await.unwrap();
    assert!(!store.exists("snapshot-1").await.unwrap());
    store.delete("disk-1").await.unwrap();
    assert_eq!(sha256(&read_all(&*store, "disk-2").await), sha256(&data));

    // The last dependant goes: everything is freed.
    let used_with_clone = store.capacity().await.unwrap().used;
    store.delete("disk-2").await.unwrap();
    store.delete("image-1").await.unwrap();
    let used = store.capacity().await.unwrap().used;
    assert!(
        used + MIB / 2 < used_with_clone,
        "{used} vs {used_with_clone}"
    );
    assert_eq!(used, 0, "nothing left");

    // Deleting what is gone succeeds.
    store.delete("disk-2").await.unwrap();
    store.delete("never-existed").await.unwrap();
}

async fn flatten_makes_independent(h: &dyn Harness) {
    if !h.can_clone("flatten_makes_independent") {
        return;
    }
    let store = h.store();
    let data = pattern(MIB as usize, 8);
    store_bytes(&*store, "image-1", &data).await;
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", Some(2 * MIB))
        .await
        .unwrap();
    write(h, "disk-1", 0, 4096, 0x99).await;
    let before = read_all(&*store, "disk-1").await;
    store.delete("image-1").await.unwrap();
    let with_hidden_image = store.capacity().await.unwrap().used;

    store.flatten("disk-1").await.unwrap();
    assert_eq!(sha256(&read_all(&*store, "disk-1").await), sha256(&before));
    // The hidden image had only this dependant: flattening freed it.
    let usage = store.usage("disk-1").await.unwrap();
    let used = store.capacity().await.unwrap().used;
    assert!(
        usage.allocated >= MIB - 4096,
        "the data moved into the clone"
    );
    assert!(used <= with_hidden_image, "{used} vs {with_hidden_image}");
    assert_eq!(used, usage.allocated, "only the flattened disk is left");

    // Nothing to do for a volume without a base; images can't be flattened.
    store.flatten("disk-1").await.unwrap();
    store.create_volume("volume-1", MIB).await.unwrap();
    store.flatten("volume-1").await.unwrap();
    store_bytes(&*store, "image-2", b"x").await;
    let image = store.flatten("image-2").await;
    assert!(matches!(image, Err(Error::WrongKind { .. })), "{image:?}");
}

async fn not_found_and_invalid(h: &dyn Harness) {
    let store = h.store();
    let missing = "volume-missing";
    assert!(!store.exists(missing).await.unwrap());
    assert!(store.info(missing).await.unwrap_err().is_not_found());
    assert!(store.describe(missing).await.unwrap_err().is_not_found());
    assert!(store.usage(missing).await.unwrap_err().is_not_found());
    assert!(store.open_read(missing).await.err().unwrap().is_not_found());
    assert!(store.resize(missing, MIB).await.unwrap_err().is_not_found());
    assert!(store.flatten(missing).await.unwrap_err().is_not_found());
    assert!(store
        .snapshot(missing, "snap")
        .await
        .unwrap_err()
        .is_not_found());
    for source in [
        Source::Image(missing.into()),
        Source::Snapshot(missing.into()),
        Source::Volume(missing.into()),
    ] {
        let clone = store.create_clone(&source, "disk-1", None).await;
        assert!(clone.unwrap_err().is_not_found());
    }
    store.delete(missing).await.unwrap();

    for bad in ["", "../etc", "a b", ".hidden"] {
        let image = store.store_image(bad, chunked(b"x", 1)).await;
        assert!(matches!(image, Err(Error::InvalidName { .. })), "{image:?}");
        let volume = store.create_volume(bad, MIB).await;
        assert!(
            matches!(volume, Err(Error::InvalidName { .. })),
            "{volume:?}"
        );
    }
}

async fn restart_keeps_everything(h: &dyn Harness) {
    if !h.can_clone("restart_keeps_everything") {
        return;
    }
    let store = h.store();
    let data = pattern(MIB as usize, 9);
    store_bytes(&*store, "image-1", &data).await;
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", None)
        .await
        .unwrap();
    write(h, "disk-1", 0, 512, 0x12).await;
    store.snapshot("disk-1", "snapshot-1").await.unwrap();
    store.delete("image-1").await.unwrap();
    let disk = read_all(&*store, "disk-1").await;

    let Some(reopened) = h.reopen() else {
        eprintln!(
            "note: restart_keeps_everything: this backend does not persist; checked in place"
        );
        return;
    };
    assert!(!reopened.exists("image-1").await.unwrap());
    assert_eq!(sha256(&read_all(&*reopened, "disk-1").await), sha256(&disk));
    assert_eq!(
        sha256(&read_all(&*reopened, "snapshot-1").await),
        sha256(&disk)
    );
    assert_eq!(
        reopened.info("disk-1").await.unwrap(),
        store.info("disk-1").await.unwrap()
    );
    assert_eq!(
        reopened.describe("disk-1").await.unwrap(),
        store.describe("disk-1").await.unwrap()
    );
    // Dependency tracking survived: the volume still can't go before its snapshot.
    let in_use = reopened.delete("disk-1").await;
    assert!(matches!(in_use, Err(Error::InUse { .. })), "{in_use:?}");
    // And both handles keep working on the same objects.
    reopened
        .create_clone(&Source::Snapshot("snapshot-1".into()), "disk-2", None)
        .await
        .unwrap();
    assert!(store.exists("disk-2").await.unwrap());
}

async fn capacity_and_usage(h: &dyn Harness) {
    if !h.can_clone("capacity_and_usage") {
        return;
    }
    let store = h.store();
    let empty = store.capacity().await.unwrap();
    assert_eq!(empty.used, 0);
    assert!(empty.free <= empty.total && empty.total > 0);
    let data = pattern(4 * MIB as usize, 10);
    store_bytes(&*store, "image-1", &data).await;
    let image = store.usage("image-1").await.unwrap();
    assert_eq!(image.virtual_size, 4 * MIB);
    assert!(image.allocated >= 4 * MIB, "{image:?}");
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", Some(64 * MIB))
        .await
        .unwrap();
    let clone = store.usage("disk-1").await.unwrap();
    assert_eq!(clone.virtual_size, 64 * MIB);
    assert!(
        clone.allocated < MIB,
        "a clone holds no data of its base: {clone:?}"
    );
    let after = store.capacity().await.unwrap();
    assert_eq!(after.used, image.allocated + clone.allocated);
}

async fn concurrent_clones(h: &dyn Harness) {
    if !h.can_clone("concurrent_clones") {
        return;
    }
    let store = h.store();
    store_bytes(&*store, "image-1", &pattern(MIB as usize, 11)).await;
    let source = Source::Image("image-1".into());
    let clones = (0..16).map(|i| {
        let store = store.clone();
        let source = source.clone();
        tokio::spawn(async move {
            store
                .create_clone(&source, &format!("disk-{i}"), None)
                .await
        })
    });
    for result in futures::future::join_all(clones).await {
        result.unwrap().unwrap();
    }
    for i in 0..16 {
        assert!(store.exists(&format!("disk-{i}")).await.unwrap());
    }
    let deletes = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.delete(&format!("disk-{i}")).await })
    });
    for result in futures::future::join_all(deletes).await {
        result.unwrap().unwrap();
    }
    store.delete("image-1").await.unwrap();
    assert_eq!(store.capacity().await.unwrap().used, 0);
}
