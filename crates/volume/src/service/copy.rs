//! Exporting a disk's data as a stream: the one side effect of this crate outside the block
//! store and the database, behind [`DiskExporter`].
//!
//! The block store streams what it holds (`open_read`), but two things it cannot do: read a
//! volume that a running VM holds open (QEMU's image lock; a force snapshot, a clone or an
//! upload of an in-use volume needs that: the copy is crash-consistent, as Cinder warns), and
//! convert to qcow2 (an upload to an image with `disk_format` qcow2). [`QemuImgExporter`] runs
//! `qemu-img convert` (`-U` to share the lock) on the file `describe` names, and falls back to
//! `open_read` for locations that are no local file. [`StreamExporter`] only uses `open_read`
//! (tests on the memory block store).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use nubo_blockstore::{BlockStore, ByteStream, QemuLocation};
use nubo_common::{Error, Result};

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Raw,
    Qcow2,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Raw => "raw",
            ExportFormat::Qcow2 => "qcow2",
        }
    }
}

#[async_trait]
pub trait DiskExporter: Send + Sync + 'static {
    /// The guest-visible content of the block store object `name` in `format`. `live`: the
    /// object may be open in a running VM (read it anyway, crash-consistently).
    async fn export(
        &self,
        store: &dyn BlockStore,
        name: &str,
        format: ExportFormat,
        live: bool,
    ) -> Result<ByteStream>;
}

/// Exports through the block store's own `open_read` (raw only; qcow2 requests get raw).
pub struct StreamExporter;

#[async_trait]
impl DiskExporter for StreamExporter {
    async fn export(
        &self,
        store: &dyn BlockStore,
        name: &str,
        _format: ExportFormat,
        _live: bool,
    ) -> Result<ByteStream> {
        store
            .open_read(name)
            .await
            .map_err(|e| Error::internal(format!("reading {name}: {e}")))
    }
}

/// Exports local files with `qemu-img convert` into a temporary file next to them (unlinked
/// once open), then streams it.
pub struct QemuImgExporter;

static COUNTER: AtomicU64 = AtomicU64::new(0);

#[async_trait]
impl DiskExporter for QemuImgExporter {
    async fn export(
        &self,
        store: &dyn BlockStore,
        name: &str,
        format: ExportFormat,
        live: bool,
    ) -> Result<ByteStream> {
        let disk = store
            .describe(name)
            .await
            .map_err(|e| Error::internal(format!("describing {name}: {e}")))?;
        let path = match &disk.location {
            QemuLocation::File(path) if path.exists() => path.clone(),
            _ => return StreamExporter.export(store, name, format, live).await,
        };
        let dir = path
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("tmp"))
            .unwrap_or_else(std::env::temp_dir);
        let _ = std::fs::create_dir_all(&dir);
        let out: PathBuf = dir.join(format!(
            "volume-export-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = tokio::process::Command::new("qemu-img");
        cmd.arg("convert").arg("-q");
        if live {
            cmd.arg("-U");
        }
        cmd.arg("-f")
            .arg(disk.format.as_str())
            .arg("-O")
            .arg(format.as_str())
            .arg(&path)
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = cmd
            .output()
            .await
            .map_err(|e| Error::internal(format!("cannot run qemu-img: {e}")))?;
        if !output.status.success() {
            let _ = std::fs::remove_file(&out);
            return Err(Error::internal(format!(
                "qemu-img convert of {name} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let file = tokio::fs::File::open(&out).await;
        let _ = std::fs::remove_file(&out);
        let file = file.map_err(|e| Error::internal(format!("opening the export: {e}")))?;
        let stream = tokio_util_stream(file);
        Ok(stream)
    }
}

/// A file as a stream of 256 KiB chunks.
fn tokio_util_stream(file: tokio::fs::File) -> ByteStream {
    use tokio::io::AsyncReadExt;
    let stream = futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Box::pin(stream.boxed())
}
