//! Checks specific to the `local` backend: real qcow2 uploads, the files QEMU gets, sparse
//! uploads, cleanup after failures and crashes, and refusing to touch a disk another process
//! (a running VM) holds open. Each test prints `SKIP: ...` and passes without qemu-utils.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use nubo_blockstore::{BlockStore, DiskFormat, Error, LocalStore, QemuLocation, Source};

use common::{chunked, pattern, qemu_available, read_all, sha256, TempDir};

const MIB: u64 = 1 << 20;

fn skip_without_qemu(test: &str) -> bool {
    if qemu_available() {
        return false;
    }
    eprintln!("SKIP: {test}: qemu-img/qemu-io not installed (apt-get install qemu-utils)");
    true
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn path_of(disk: &nubo_blockstore::QemuDisk) -> PathBuf {
    match &disk.location {
        QemuLocation::File(path) => path.clone(),
        other => panic!("not a file: {other:?}"),
    }
}

#[tokio::test]
async fn qcow2_upload_clones_read_guest_content() {
    if skip_without_qemu("qcow2_upload_clones_read_guest_content") {
        return;
    }
    let tmp = TempDir::new("qcow2");
    let raw = tmp.path().join("guest.raw");
    let qcow2 = tmp.path().join("guest.qcow2");
    let guest = pattern(3 * MIB as usize, 20);
    std::fs::write(&raw, &guest).unwrap();
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ],
    );
    let file = std::fs::read(&qcow2).unwrap();

    let store = LocalStore::open(tmp.path().join("store")).unwrap();
    let info = store
        .store_image("image-q", chunked(&file, 10_000))
        .await
        .unwrap();
    assert_eq!(info.format, DiskFormat::Qcow2);
    assert_eq!(info.size, file.len() as u64);
    assert_eq!(info.virtual_size, 3 * MIB);
    // Download gives back the qcow2 file as uploaded.
    assert_eq!(sha256(&read_all(&store, "image-q").await), sha256(&file));

    store
        .create_clone(&Source::Image("image-q".into()), "disk-1", Some(4 * MIB))
        .await
        .unwrap();
    let mut expected = guest.clone();
    expected.resize(4 * MIB as usize, 0);
    assert_eq!(sha256(&read_all(&store, "disk-1").await), sha256(&expected));
}

#[tokio::test]
async fn qemu_opens_the_described_chain() {
    if skip_without_qemu("qemu_opens_the_described_chain") {
        return;
    }
    let tmp = TempDir::new("chain");
    let store = LocalStore::open(tmp.path()).unwrap();
    store
        .store_image("image-1", chunked(&pattern(MIB as usize, 21), 4096))
        .await
        .unwrap();
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", Some(8 * MIB))
        .await
        .unwrap();
    let disk = store.describe("disk-1").await.unwrap();
    assert_eq!(disk.format, DiskFormat::Qcow2);
    let path = path_of(&disk);
    assert!(path.is_absolute() && path.exists(), "{}", path.display());
    let image = path_of(&store.describe("image-1").await.unwrap());

    let info = run(
        "qemu-img",
        &[
            "info",
            "--output=json",
            "-f",
            "qcow2",
            path.to_str().unwrap(),
        ],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["virtual-size"], 8 * MIB);
    assert_eq!(info["full-backing-filename"], image.to_str().unwrap());
    assert_eq!(info["backing-filename-format"], "raw");
    run(
        "qemu-img",
        &["check", "-f", "qcow2", path.to_str().unwrap()],
    );
    assert!(disk
        .drive_options()
        .starts_with(&format!("file={},format=qcow2", path.display())));
}

#[tokio::test]
async fn uploads_are_stored_sparse() {
    let tmp = TempDir::new("sparse");
    let store = LocalStore::open(tmp.path()).unwrap();
    let mut data = vec![0u8; 64 * MIB as usize];
    data[..4096].copy_from_slice(&pattern(4096, 22));
    let info = store
        .store_image("image-1", chunked(&data, MIB as usize))
        .await
        .unwrap();
    assert_eq!(info.size, 64 * MIB);
    let usage = store.usage("image-1").await.unwrap();
    assert!(usage.allocated <= 2 * MIB, "{usage:?}");
    assert_eq!(sha256(&read_all(&store, "image-1").await), sha256(&data));
}

#[tokio::test]
async fn failed_command_reports_stderr_and_leaves_nothing() {
    if skip_without_qemu("failed_command_reports_stderr_and_leaves_nothing") {
        return;
    }
    let tmp = TempDir::new("failure");
    let store = LocalStore::open(tmp.path()).unwrap();
    store
        .store_image("image-1", chunked(b"tiny image", 4))
        .await
        .unwrap();
    let before = files_in(&tmp.path().join("objects"));
    // qcow2 can't address this much: qemu-img create fails.
    let error = store
        .create_clone(&Source::Image("image-1".into()), "disk-1", Some(1 << 62))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Command { .. }), "{text}");
    assert!(text.contains("qemu-img create"), "{text}");
    assert!(
        text.contains("too large") || text.contains("size"),
        "{text}"
    );
    assert_eq!(files_in(&tmp.path().join("objects")), before);
    assert!(!store.exists("disk-1").await.unwrap());
    assert!(files_in(&tmp.path().join("tmp")).is_empty());
}

#[tokio::test]
async fn open_removes_crash_leftovers() {
    let tmp = TempDir::new("crash");
    let store = LocalStore::open(tmp.path()).unwrap();
    store
        .store_image("image-1", chunked(b"kept", 4))
        .await
        .unwrap();
    // A file renamed into objects/ whose index write never happened, a stale upload, and a
    // fresh upload that may belong to another process.
    std::fs::write(tmp.path().join("objects/999.qcow2"), b"orphan").unwrap();
    let stale = tmp.path().join("tmp/upload-old");
    std::fs::write(&stale, b"stale").unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    std::fs::write(tmp.path().join("tmp/upload-new"), b"in progress").unwrap();

    let reopened = LocalStore::open(tmp.path()).unwrap();
    assert_eq!(files_in(&tmp.path().join("objects")), vec!["1.raw"]);
    assert_eq!(files_in(&tmp.path().join("tmp")), vec!["upload-new"]);
    assert_eq!(read_all(&reopened, "image-1").await, b"kept");
}

/// `qemu-nbd` holding a disk open for writing, like a running VM; killed and reaped on drop.
struct Holder(Child);

impl Holder {
    fn hold(path: &Path, socket: &Path) -> Option<Holder> {
        let child = Command::new("qemu-nbd")
            .args(["-f", "qcow2", "-k"])
            .arg(socket)
            .arg(path)
            .spawn()
            .ok()?;
        let holder = Holder(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if socket.exists() {
                return Some(holder);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn refuses_to_freeze_a_disk_in_use() {
    if skip_without_qemu("refuses_to_freeze_a_disk_in_use") {
        return;
    }
    let tmp = TempDir::new("inuse");
    let store = LocalStore::open(tmp.path().join("store")).unwrap();
    store.create_volume("volume-1", MIB).await.unwrap();
    let path = path_of(&store.describe("volume-1").await.unwrap());
    let Some(holder) = Holder::hold(&path, &tmp.path().join("nbd.sock")) else {
        eprintln!("SKIP: refuses_to_freeze_a_disk_in_use: qemu-nbd did not start");
        return;
    };

    let snapshot = store.snapshot("volume-1", "snapshot-1").await;
    assert!(matches!(snapshot, Err(Error::InUse { .. })), "{snapshot:?}");
    let clone = store
        .create_clone(&Source::Volume("volume-1".into()), "volume-2", None)
        .await;
    assert!(matches!(clone, Err(Error::InUse { .. })), "{clone:?}");
    let resize = store.resize("volume-1", 2 * MIB).await;
    assert!(matches!(resize, Err(Error::InUse { .. })), "{resize:?}");
    assert!(!store.exists("snapshot-1").await.unwrap());
    assert!(!store.exists("volume-2").await.unwrap());
    assert_eq!(store.info("volume-1").await.unwrap().virtual_size, MIB);

    drop(holder);
    store.snapshot("volume-1", "snapshot-1").await.unwrap();
    store.resize("volume-1", 2 * MIB).await.unwrap();
}

#[tokio::test]
async fn layout_on_disk() {
    if skip_without_qemu("layout_on_disk") {
        return;
    }
    let tmp = TempDir::new("layout");
    let store = LocalStore::open(tmp.path()).unwrap();
    assert_eq!(
        files_in(tmp.path()),
        vec!["index.json", "lock", "objects", "tmp"]
    );
    store
        .store_image("image-1", chunked(b"raw bytes", 3))
        .await
        .unwrap();
    store
        .create_clone(&Source::Image("image-1".into()), "disk-1", None)
        .await
        .unwrap();
    store.snapshot("disk-1", "snapshot-1").await.unwrap();
    // 1.raw (image) <- 2.qcow2 (snapshot-1, disk-1's first file) <- 3.qcow2 (disk-1 now)
    assert_eq!(
        files_in(&tmp.path().join("objects")),
        vec!["1.raw", "2.qcow2", "3.qcow2"]
    );
    assert!(path_of(&store.describe("disk-1").await.unwrap()).ends_with("objects/3.qcow2"));
    assert!(path_of(&store.describe("snapshot-1").await.unwrap()).ends_with("objects/2.qcow2"));

    store.delete("image-1").await.unwrap();
    store.delete("snapshot-1").await.unwrap();
    assert_eq!(
        files_in(&tmp.path().join("objects")).len(),
        3,
        "hidden, still needed"
    );
    store.flatten("disk-1").await.unwrap();
    assert_eq!(files_in(&tmp.path().join("objects")), vec!["3.qcow2"]);
    store.delete("disk-1").await.unwrap();
    assert!(files_in(&tmp.path().join("objects")).is_empty());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["names"], serde_json::json!({}));
    assert_eq!(index["files"], serde_json::json!({}));
}

#[tokio::test]
async fn sizes_follow_a_resize_done_by_qemu() {
    if skip_without_qemu("sizes_follow_a_resize_done_by_qemu") {
        return;
    }
    let tmp = TempDir::new("online-resize");
    let store = LocalStore::open(tmp.path()).unwrap();
    store.create_volume("volume-1", MIB).await.unwrap();
    // What QMP `block_resize` does to the file of a running VM's disk.
    let path = path_of(&store.describe("volume-1").await.unwrap());
    run(
        "qemu-img",
        &["resize", "-q", "-f", "qcow2", path.to_str().unwrap(), "4M"],
    );
    assert_eq!(store.info("volume-1").await.unwrap().virtual_size, 4 * MIB);
    assert_eq!(
        store
            .resize("volume-1", 4 * MIB)
            .await
            .unwrap()
            .virtual_size,
        4 * MIB
    );
    let shrink = store.resize("volume-1", 2 * MIB).await;
    assert!(
        matches!(shrink, Err(Error::InvalidSize { .. })),
        "{shrink:?}"
    );
    let snapshot = store.snapshot("volume-1", "snapshot-1").await.unwrap();
    assert_eq!(snapshot.virtual_size, 4 * MIB);
    assert_eq!(read_all(&store, "volume-1").await.len() as u64, 4 * MIB);
}
