//! The `local` backend: files in one directory, copy-on-write by qcow2 overlays (`qemu-img`).
//!
//! ```text
//! <dir>/                    (LocalStore::open(<data_dir>/blockstore))
//!   index.json              names -> files, file -> parent file (see index.rs); atomic replace
//!   lock                    flock'ed by writers (tasks and processes sharing the directory)
//!   objects/<id>.raw        an uploaded raw image, byte for byte (holes where it had zeros)
//!   objects/<id>.qcow2      an uploaded qcow2 image, or an overlay: volume, clone, snapshot
//!   tmp/                    uploads in progress, raw exports for open_read; never a final name
//! ```
//!
//! * **Image**: stored once as uploaded; never modified.
//! * **Clone / volume from image**: `qemu-img create -f qcow2 -b <abs base> -F <fmt> <ov> <size>`;
//!   ~10 ms and ~200 KiB whatever the base's size.
//! * **Empty volume**: `qemu-img create -f qcow2 <file> <size>`.
//! * **Snapshot of a volume**: the volume's current file becomes the snapshot (frozen, read-only
//!   from then on) and the volume gets a new empty overlay on top of it. Cloning a snapshot is then
//!   one more overlay on the snapshot's file. Cloning a volume does the same with a hidden
//!   snapshot. A file's path never changes once written (overlays name their base by absolute
//!   path), so a volume's *current* file changes on snapshot: ask `describe` before using it.
//! * **Resize**: `qemu-img resize` in place. **Flatten**: `qemu-img rebase -b ""` in place.
//! * **Delete**: drop the name, then remove every file that no name reaches any more.
//!
//! Crash safety: an object exists once `index.json` names it. Files are created (or renamed from
//! `tmp/`) before the index is written and removed after; a crash in between leaves an orphan file
//! that `open` removes.

mod index;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::command;
use crate::error::{Error, Result};
use crate::qcow2;
use crate::store::BlockStore;
use crate::types::{
    clone_size, grown_size, validate_name, volume_size, ByteStream, Capacity, DiskFormat,
    ImageInfo, ObjectInfo, ObjectKind, QemuDisk, QemuLocation, Source, Usage,
};
use index::{remove_files, sync_dir, FileRecord, Index, NameRecord, WriteLock};

/// Chunks an upload may have in flight between the network and the disk (the bounded buffer).
const UPLOAD_QUEUE: usize = 8;

/// Size of the chunks `open_read` yields.
const READ_CHUNK: usize = 256 << 10;

/// Chunks a download may have read ahead of the consumer (the bounded buffer).
const READ_QUEUE: usize = 8;

/// During an upload, ask the kernel to start writing back every this many bytes, so that the
/// final fsync has little left to wait for.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Files in `tmp/` older than this are leftovers of a crash and removed by `open`.
const TMP_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Makes temporary file names unique within the process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A block store in a local directory. Cheap to clone; every clone and every other `open` of the
/// same directory (in this process or another) sees the same objects.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// Opens (creating it if needed) the store rooted at `dir`, e.g. `<data_dir>/blockstore`.
    ///
    /// Removes what a crash may have left behind: files under `objects/` the index does not
    /// name, and files under `tmp/` older than a day. Does not need `qemu-img`: uploads and
    /// downloads of images work without it, everything else runs it.
    pub fn open(dir: impl AsRef<Path>) -> Result<LocalStore> {
        let dir = dir.as_ref();
        for sub in [dir.to_path_buf(), dir.join("objects"), dir.join("tmp")] {
            fs::create_dir_all(&sub).map_err(|e| Error::io("creating", &sub, e))?;
        }
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::io("resolving", dir, e))?;
        let _lock = WriteLock::acquire(&dir)?;
        let index = Index::load(&dir)?;
        if !dir.join(index::INDEX).exists() {
            index.save(&dir)?;
        }
        remove_orphans(&dir, &index)?;
        remove_old_tmp_files(&dir.join("tmp"));
        info!(dir = %dir.display(), objects = index.names.len(), files = index.files.len(), "block store opened");
        Ok(LocalStore { dir })
    }

    /// The store directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `work` on the blocking thread pool with the store directory.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T> + Send + 'static,
    {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || work(&dir))
            .await
            .map_err(Error::Task)?
    }

    /// Reads the index without locking (it is replaced atomically) and looks `name` up.
    async fn lookup(&self, name: &str) -> Result<(NameRecord, FileRecord)> {
        let name = name.to_string();
        self.blocking(move |dir| {
            let index = Index::load(dir)?;
            let record = index.name(&name)?.clone();
            let file = match record.kind {
                ObjectKind::Volume => volume_file(dir, &index, record.file)?,
                _ => index.file(record.file)?.clone(),
            };
            Ok((record, file))
        })
        .await
    }
}

#[async_trait]
impl BlockStore for LocalStore {
    async fn store_image(&self, name: &str, mut data: ByteStream) -> Result<ImageInfo> {
        validate_name(name)?;
        if self.exists(name).await? {
            return Err(Error::AlreadyExists {
                name: name.to_string(),
            });
        }
        let tmp = self.dir.join("tmp").join(format!(
            "upload-{name}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // Removes the partial upload however this function ends (error, dropped future).
        let _cleanup = RemoveOnDrop(tmp.clone());
        let file = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || {
                File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))
            })
            .await
            .map_err(Error::Task)??
        };

        // The network side fills a bounded queue, a blocking thread drains it to disk.
        let (sender, receiver) = mpsc::channel::<Bytes>(UPLOAD_QUEUE);
        let writer = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || {
                write_sparse(file, receiver).map_err(|e| Error::io("writing", tmp, e))
            })
        };
        let mut head = Vec::with_capacity(qcow2::HEADER_LEN);
        let mut received = 0u64;
        let mut stream_error = None;
        while let Some(chunk) = data.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    stream_error = Some(e);
                    break;
                }
            };
            if head.len() < qcow2::HEADER_LEN {
                let take = (qcow2::HEADER_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            received += chunk.len() as u64;
            if sender.send(chunk).await.is_err() {
                break; // the writer failed; its error is returned below
            }
        }
        drop(sender);
        let written = writer.await.map_err(Error::Task)?;
        if let Some(e) = stream_error {
            return Err(Error::Upload(e));
        }
        let written = written?;
        if written != received {
            return Err(Error::Inconsistent {
                reason: format!("received {received} bytes but wrote {written}"),
            });
        }
        let info = qcow2::detect(&head, received)?;

        let name = name.to_string();
        self.blocking(move |dir| {
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            index.ensure_free(&name)?;
            let (id, relative) = index.new_file(info.format);
            let path = dir.join(&relative);
            let mut created = NewFiles::default();
            fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))?;
            created.push(path);
            sync_dir(&dir.join("objects"))?;
            index.files.insert(
                id,
                FileRecord {
                    path: relative,
                    format: info.format,
                    virtual_size: info.virtual_size,
                    image_size: Some(info.size),
                    parent: None,
                },
            );
            index.names.insert(
                name.clone(),
                NameRecord {
                    kind: ObjectKind::Image,
                    file: id,
                    snapshot_of: None,
                },
            );
            index.save(dir)?;
            created.commit();
            info!(image = %name, file = id, size = info.size, virtual_size = info.virtual_size, format = %info.format, "image stored");
            Ok(info)
        })
        .await
    }

    async fn create_volume(&self, name: &str, size: u64) -> Result<ObjectInfo> {
        validate_name(name)?;
        let size = volume_size(size)?;
        let name = name.to_string();
        self.blocking(move |dir| {
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            index.ensure_free(&name)?;
            let (id, relative) = index.new_file(DiskFormat::Qcow2);
            let path = dir.join(&relative);
            let mut created = NewFiles::default();
            created.push(path.clone());
            qemu_img([
                os("create"),
                os("-q"),
                os("-f"),
                os("qcow2"),
                path.into_os_string(),
                os(&size.to_string()),
            ])?;
            index.files.insert(
                id,
                FileRecord {
                    path: relative,
                    format: DiskFormat::Qcow2,
                    virtual_size: size,
                    image_size: None,
                    parent: None,
                },
            );
            index.names.insert(name.clone(), volume_record(id));
            index.save(dir)?;
            created.commit();
            info!(volume = %name, file = id, size, "volume created");
            Ok(object_info(ObjectKind::Volume, &index.files[&id]))
        })
        .await
    }

    async fn create_clone(
        &self,
        source: &Source,
        name: &str,
        size: Option<u64>,
    ) -> Result<ObjectInfo> {
        validate_name(name)?;
        let source = source.clone();
        let name = name.to_string();
        self.blocking(move |dir| {
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            index.ensure_free(&name)?;
            let record = checked_kind(&index, source.name(), source.kind())?.clone();
            let base = match source {
                Source::Volume(_) => volume_file(dir, &index, record.file)?,
                _ => index.file(record.file)?.clone(),
            };
            let size = clone_size(base.virtual_size, size)?;
            let mut created = NewFiles::default();
            if let Source::Volume(volume) = &source {
                // Freeze the volume's current file as a hidden snapshot, as `snapshot` does.
                ensure_not_open(dir, &base, volume)?;
                index.files.insert(record.file, base.clone());
                let top = new_overlay(
                    dir,
                    &mut index,
                    &mut created,
                    record.file,
                    base.virtual_size,
                )?;
                index.names.insert(volume.clone(), volume_record(top));
            }
            let id = new_overlay(dir, &mut index, &mut created, record.file, size)?;
            index.names.insert(name.clone(), volume_record(id));
            index.save(dir)?;
            created.commit();
            info!(clone = %name, source = ?source, file = id, size, "clone created");
            Ok(object_info(ObjectKind::Volume, &index.files[&id]))
        })
        .await
    }

    async fn snapshot(&self, volume: &str, snapshot: &str) -> Result<ObjectInfo> {
        validate_name(snapshot)?;
        let volume = volume.to_string();
        let snapshot = snapshot.to_string();
        self.blocking(move |dir| {
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            index.ensure_free(&snapshot)?;
            let record = checked_kind(&index, &volume, ObjectKind::Volume)?.clone();
            let frozen = volume_file(dir, &index, record.file)?;
            ensure_not_open(dir, &frozen, &volume)?;
            index.files.insert(record.file, frozen.clone());
            let mut created = NewFiles::default();
            let top = new_overlay(
                dir,
                &mut index,
                &mut created,
                record.file,
                frozen.virtual_size,
            )?;
            index.names.insert(volume.clone(), volume_record(top));
            index.names.insert(
                snapshot.clone(),
                NameRecord {
                    kind: ObjectKind::Snapshot,
                    file: record.file,
                    snapshot_of: Some(volume.clone()),
                },
            );
            index.save(dir)?;
            created.commit();
            info!(%volume, %snapshot, file = record.file, "snapshot taken");
            Ok(object_info(ObjectKind::Snapshot, &frozen))
        })
        .await
    }

    async fn resize(&self, name: &str, new_size: u64) -> Result<ObjectInfo> {
        let name = name.to_string();
        self.blocking(move |dir| {
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            let id = checked_kind(&index, &name, ObjectKind::Volume)?.file;
            let file = volume_file(dir, &index, id)?;
            let Some(size) = grown_size(file.virtual_size, new_size)? else {
                return Ok(object_info(ObjectKind::Volume, &file));
            };
            qemu_img([
                os("resize"),
                os("-q"),
                os("-f"),
                os(file.format.as_str()),
                dir.join(&file.path).into_os_string(),
                os(&size.to_string()),
            ])
            .map_err(|e| command::lock_conflict_to_in_use(e, &name))?;
            let record = index.files.get_mut(&id).expect("looked up above");
            record.virtual_size = size;
            let info = object_info(ObjectKind::Volume, record);
            index.save(dir)?;
            info!(volume = %name, size, "volume resized");
            Ok(info)
        })
        .await
    }

    async fn flatten(&self, name: &str) -> Result<()> {
        let (record, file) = self.lookup(name).await?;
        if record.kind != ObjectKind::Volume {
            return Err(wrong_kind(name, record.kind, ObjectKind::Volume));
        }
        if file.parent.is_none() {
            return Ok(());
        }
        // The copy can take long: done without the lock, in place (crash-safe: until the header
        // is rewritten at the end, the file still reads through to its base).
        let name = name.to_string();
        self.blocking(move |dir| {
            qemu_img([
                os("rebase"),
                os("-q"),
                os("-f"),
                os("qcow2"),
                os("-b"),
                os(""),
                dir.join(&file.path).into_os_string(),
            ])
            .map_err(|e| command::lock_conflict_to_in_use(e, &name))?;
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            if index.names.get(&name).map(|r| r.file) == Some(record.file) {
                if let Some(flat) = index.files.get_mut(&record.file) {
                    flat.parent = None;
                }
            }
            let garbage = index.collect_garbage();
            index.save(dir)?;
            remove_files(dir, &garbage);
            info!(volume = %name, freed_files = garbage.len(), "volume flattened");
            Ok(())
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |dir| {
            let _lock = WriteLock::acquire(dir)?;
            let mut index = Index::load(dir)?;
            let Some(record) = index.names.get(&name) else {
                return Ok(());
            };
            if record.kind == ObjectKind::Volume {
                ensure_no_snapshots(&index, &name)?;
            }
            index.names.remove(&name);
            let garbage = index.collect_garbage();
            index.save(dir)?;
            remove_files(dir, &garbage);
            info!(%name, freed_files = garbage.len(), "deleted");
            Ok(())
        })
        .await
    }

    async fn open_read(&self, name: &str) -> Result<ByteStream> {
        let (record, file) = self.lookup(name).await?;
        let name = name.to_string();
        let file = self
            .blocking(move |dir| {
                let path = dir.join(&file.path);
                if record.kind == ObjectKind::Image {
                    return File::open(&path).map_err(|e| match e.kind() {
                        io::ErrorKind::NotFound => Error::not_found(&name),
                        _ => Error::io("opening", path, e),
                    });
                }
                // The guest-visible content of an overlay chain: export it to a sparse raw file
                // in tmp/, open it, unlink it, and stream the open file.
                let export = dir.join("tmp").join(format!(
                    "export-{name}-{}-{}",
                    std::process::id(),
                    TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                let _cleanup = RemoveOnDrop(export.clone());
                qemu_img([
                    os("convert"),
                    os("-q"),
                    os("-f"),
                    os(file.format.as_str()),
                    os("-O"),
                    os("raw"),
                    path.into_os_string(),
                    export.clone().into_os_string(),
                ])
                .map_err(|e| command::lock_conflict_to_in_use(e, &name))?;
                File::open(&export).map_err(|e| Error::io("opening", &export, e))
            })
            .await?;
        Ok(read_file(file))
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        match self.lookup(name).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn info(&self, name: &str) -> Result<ObjectInfo> {
        let (record, file) = self.lookup(name).await?;
        Ok(object_info(record.kind, &file))
    }

    async fn describe(&self, name: &str) -> Result<QemuDisk> {
        let (record, file) = self.lookup(name).await?;
        Ok(QemuDisk {
            location: QemuLocation::File(self.dir.join(&file.path)),
            format: file.format,
            read_only: record.kind != ObjectKind::Volume,
        })
    }

    async fn capacity(&self) -> Result<Capacity> {
        self.blocking(|dir| {
            let (total, free) = filesystem_space(dir)?;
            let index = Index::load(dir)?;
            let mut used = 0;
            for relative in index.paths() {
                used += allocated(&dir.join(relative))?;
            }
            Ok(Capacity { total, used, free })
        })
        .await
    }

    async fn usage(&self, name: &str) -> Result<Usage> {
        let (_, file) = self.lookup(name).await?;
        let path = self.dir.join(&file.path);
        let allocated = self.blocking(move |_| allocated(&path)).await?;
        Ok(Usage {
            virtual_size: file.virtual_size,
            allocated,
        })
    }
}

/// Writes chunks from `receiver` to `file`, leaving holes for all-zero chunks, then fsyncs.
/// Returns the number of bytes written (holes included).
fn write_sparse(mut file: File, mut receiver: mpsc::Receiver<Bytes>) -> io::Result<u64> {
    let mut length = 0u64;
    let mut flushed = 0u64;
    while let Some(chunk) = receiver.blocking_recv() {
        if is_zero(&chunk) {
            file.seek(SeekFrom::Current(chunk.len() as i64))?;
        } else {
            file.write_all(&chunk)?;
        }
        length += chunk.len() as u64;
        if length - flushed >= WRITEBACK_EVERY {
            start_writeback(&file, flushed, length - flushed);
            flushed = length;
        }
    }
    file.set_len(length)?;
    file.sync_all()?;
    Ok(length)
}

/// True if every byte is zero (compares 16 bytes at a time).
fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    let words_zero = words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0);
    words_zero && words.remainder().iter().all(|&b| b == 0)
}

/// Starts writing a range of `file` back to disk without waiting (a hint: errors are ignored,
/// the final fsync reports them).
fn start_writeback(file: &File, offset: u64, length: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            length as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Streams an open file from a blocking thread through a bounded queue of chunks.
fn read_file(mut file: File) -> ByteStream {
    use std::io::Read;
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(READ_QUEUE);
    tokio::task::spawn_blocking(move || loop {
        // read_to_end fills the capacity without zeroing it first, retrying on EINTR.
        let mut buffer = Vec::with_capacity(READ_CHUNK);
        let chunk = match (&mut file).take(READ_CHUNK as u64).read_to_end(&mut buffer) {
            Ok(0) => return,
            Ok(_) => Ok(Bytes::from(buffer)),
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        // Stops when the consumer drops the stream.
        if sender.blocking_send(chunk).is_err() || failed {
            return;
        }
    });
    Box::pin(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ))
}

/// The record of a volume's file with its virtual size read from the qcow2 header: QEMU may
/// have grown the file since the index was written (online resize with QMP `block_resize`).
fn volume_file(dir: &Path, index: &Index, id: u64) -> Result<FileRecord> {
    use std::io::Read;
    let mut file = index.file(id)?.clone();
    if file.format != DiskFormat::Qcow2 {
        return Ok(file);
    }
    let path = dir.join(&file.path);
    let mut head = [0u8; 32];
    File::open(&path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| Error::io("reading the header of", &path, e))?;
    if let Some(size) = qcow2::virtual_size(&head) {
        file.virtual_size = size;
    }
    Ok(file)
}

/// Creates a qcow2 overlay of file `base` with `size` bytes and records it in `index`.
fn new_overlay(
    dir: &Path,
    index: &mut Index,
    created: &mut NewFiles,
    base: u64,
    size: u64,
) -> Result<u64> {
    let base_file = index.file(base)?.clone();
    let (id, relative) = index.new_file(DiskFormat::Qcow2);
    let path = dir.join(&relative);
    created.push(path.clone());
    qemu_img([
        os("create"),
        os("-q"),
        os("-f"),
        os("qcow2"),
        os("-b"),
        dir.join(&base_file.path).into_os_string(),
        os("-F"),
        os(base_file.format.as_str()),
        path.into_os_string(),
        os(&size.to_string()),
    ])?;
    index.files.insert(
        id,
        FileRecord {
            path: relative,
            format: DiskFormat::Qcow2,
            virtual_size: size,
            image_size: None,
            parent: Some(base),
        },
    );
    Ok(id)
}

/// Fails with `InUse` when another process (a running QEMU) holds the volume's file open for
/// writing: freezing it as a base then would corrupt everything built on it. Opening the file
/// for writing with `qemu-io` takes QEMU's own image lock, so it fails exactly then.
fn ensure_not_open(dir: &Path, file: &FileRecord, name: &str) -> Result<()> {
    command::run(
        "qemu-io",
        [
            os("-f"),
            os(file.format.as_str()),
            os("-c"),
            os("quit"),
            dir.join(&file.path).into_os_string(),
        ],
    )
    .map(|_| ())
    .map_err(|e| command::lock_conflict_to_in_use(e, name))
}

fn ensure_no_snapshots(index: &Index, volume: &str) -> Result<()> {
    let snapshots: Vec<&str> = index
        .names
        .iter()
        .filter(|(_, r)| r.snapshot_of.as_deref() == Some(volume))
        .map(|(n, _)| n.as_str())
        .collect();
    if snapshots.is_empty() {
        return Ok(());
    }
    Err(Error::InUse {
        name: volume.to_string(),
        reason: format!("it has snapshots: {}", snapshots.join(", ")),
    })
}

fn checked_kind<'a>(index: &'a Index, name: &str, kind: ObjectKind) -> Result<&'a NameRecord> {
    let record = index.name(name)?;
    if record.kind != kind {
        return Err(wrong_kind(name, record.kind, kind));
    }
    Ok(record)
}

fn wrong_kind(name: &str, actual: ObjectKind, expected: ObjectKind) -> Error {
    Error::WrongKind {
        name: name.to_string(),
        actual,
        expected: match expected {
            ObjectKind::Image => "an image",
            ObjectKind::Volume => "a volume",
            ObjectKind::Snapshot => "a snapshot",
        },
    }
}

fn volume_record(file: u64) -> NameRecord {
    NameRecord {
        kind: ObjectKind::Volume,
        file,
        snapshot_of: None,
    }
}

fn object_info(kind: ObjectKind, file: &FileRecord) -> ObjectInfo {
    ObjectInfo {
        kind,
        format: file.format,
        virtual_size: file.virtual_size,
        size: match (kind, file.image_size) {
            (ObjectKind::Image, Some(size)) => size,
            _ => file.virtual_size,
        },
    }
}

fn qemu_img<const N: usize>(args: [OsString; N]) -> Result<String> {
    command::run("qemu-img", args)
}

fn os(s: &str) -> OsString {
    OsStr::new(s).to_owned()
}

/// Bytes of disk a file occupies.
fn allocated(path: &Path) -> Result<u64> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(metadata.blocks() * 512),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io("reading metadata of", path, e)),
    }
}

/// Total and available bytes of the filesystem holding `dir`.
fn filesystem_space(dir: &Path) -> Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        Error::io(
            "reading space of",
            dir,
            io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"),
        )
    })?;
    // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(Error::io(
            "reading space of",
            dir,
            io::Error::last_os_error(),
        ));
    }
    let block = stat.f_frsize as u64;
    Ok((stat.f_blocks as u64 * block, stat.f_bavail as u64 * block))
}

/// Removes files under `objects/` that the index does not name (left by a crash).
fn remove_orphans(dir: &Path, index: &Index) -> Result<()> {
    let known = index.paths();
    let objects = dir.join("objects");
    let entries = fs::read_dir(&objects).map_err(|e| Error::io("listing", &objects, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", &objects, e))?;
        let relative = format!("objects/{}", entry.file_name().to_string_lossy());
        if !known.contains(&relative) {
            warn!(path = %entry.path().display(), "removing a file left by an interrupted operation");
            remove_files(dir, &[relative]);
        }
    }
    Ok(())
}

/// Removes temporary files older than [`TMP_MAX_AGE`] (younger ones may belong to an upload in
/// progress in another process).
fn remove_old_tmp_files(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|modified| now.duration_since(modified).unwrap_or_default() > TMP_MAX_AGE)
            .unwrap_or(false);
        if old {
            warn!(path = %entry.path().display(), "removing an old temporary file");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Removes a path when dropped (a temporary file however the function owning it ends).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Files created by an operation in progress: removed on drop unless the operation committed.
#[derive(Default)]
struct NewFiles {
    paths: Vec<PathBuf>,
}

impl NewFiles {
    fn push(&mut self, path: PathBuf) {
        self.paths.push(path);
    }

    fn commit(&mut self) {
        self.paths.clear();
    }
}

impl Drop for NewFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
    }
}
