//! Image data: `PUT /v2/images/{id}/file` streams the request body into the block store and
//! `GET` streams it back, never holding more than a few chunks in memory.
//!
//! An upload moves the image `queued -> saving`, then feeds every chunk both to the block store
//! and to a hashing thread (md5 for `checksum`, sha512 for `os_hash_value`), counting bytes
//! against the image size cap and the project's byte quota as they arrive. Then:
//!
//! ```text
//!   stored, format matches disk_format ─────────────> active (size, virtual_size, hashes)
//!   body broken, quota or size cap, format mismatch -> queued (the upload can be retried)
//!   the block store failed ─────────────────────────> killed (only delete remains)
//!   image deleted meanwhile ────────────────────────> 410, the stored data removed
//! ```
//!
//! Nothing is left in the block store after a failed upload: `store_image` keeps nothing on
//! error, and data refused after storing (format mismatch) is deleted at once. The upload runs
//! in its own task, so a client that hangs up cannot leave the image in `saving`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use nubo_blockstore::ByteStream;
use nubo_common::{Caller, Error, Result};
use sha2::Sha512;

use crate::service::{require_owner, ImageService};
use crate::store;
use crate::store::images::{DataRecord, ImageRow};
use crate::types::{ImageStatus, HASH_ALGO};

/// Bytes of the start of an upload kept to check its format.
const HEAD_LEN: usize = 64 * 1024;

/// Why an upload stream was cut short on our side.
#[derive(Debug)]
enum Cut {
    Quota { limit: u64 },
    SizeCap { limit: u64 },
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Quota { limit } => {
                write!(f, "image data over the project's quota of {limit} bytes")
            }
            Cut::SizeCap { limit } => write!(f, "image larger than the size cap of {limit} bytes"),
        }
    }
}

impl std::error::Error for Cut {}

/// md5 and sha512 of a stream, each computed on its own blocking thread (the two digests are
/// the upload's main CPU cost; on two cores they run side by side). Chunks are batched to about
/// 1 MiB per message; each channel holds a few batches, so memory stays bounded.
struct Hasher {
    senders: [tokio::sync::mpsc::Sender<Arc<Vec<Bytes>>>; 2],
    threads: [tokio::task::JoinHandle<String>; 2],
    batch: Vec<Bytes>,
    batched: usize,
}

const HASH_BATCH: usize = 1 << 20;

fn digest_thread<D: Digest + Send + 'static>(
    mut digest: D,
) -> (
    tokio::sync::mpsc::Sender<Arc<Vec<Bytes>>>,
    tokio::task::JoinHandle<String>,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(8);
    let thread = tokio::task::spawn_blocking(move || {
        while let Some(batch) = receiver.blocking_recv() {
            for chunk in batch.iter() {
                digest.update(chunk);
            }
        }
        hex(&digest.finalize())
    });
    (sender, thread)
}

impl Hasher {
    fn start() -> Hasher {
        let (md5_sender, md5_thread) = digest_thread(Md5::new());
        let (sha_sender, sha_thread) = digest_thread(Sha512::new());
        Hasher {
            senders: [md5_sender, sha_sender],
            threads: [md5_thread, sha_thread],
            batch: Vec::new(),
            batched: 0,
        }
    }

    async fn feed(&mut self, chunk: Bytes) {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= HASH_BATCH {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.batched = 0;
        for sender in &self.senders {
            let _ = sender.send(batch.clone()).await;
        }
    }

    /// (md5, sha512) in hex.
    async fn finish(mut self) -> Result<(String, String)> {
        self.flush().await;
        let Hasher {
            senders, threads, ..
        } = self;
        drop(senders);
        let [md5, sha] = threads;
        let md5 = md5
            .await
            .map_err(|e| Error::internal(format!("hashing thread: {e}")))?;
        let sha = sha
            .await
            .map_err(|e| Error::internal(format!("hashing thread: {e}")))?;
        Ok((md5, sha))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// What the first bytes of an upload say about its format, for the formats we can recognise.
fn detected_format(head: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| {
        head.len() >= offset + magic.len() && &head[offset..offset + magic.len()] == magic
    };
    if at(0, b"QFI\xfb") {
        Some("qcow2")
    } else if at(0, b"KDMV") {
        Some("vmdk")
    } else if at(0, b"vhdxfile") {
        Some("vhdx")
    } else if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        Some("vdi")
    } else if at(0, b"conectix") {
        Some("vhd")
    } else if at(0x8001, b"CD001") {
        Some("iso")
    } else {
        None
    }
}

/// Glance's rule: a format we recognise must be what `disk_format` says; unrecognised data is
/// accepted for `raw` and for formats that cannot be inspected (ami, ari, aki, ploop ...);
/// `raw` accepts anything (a qcow2 file uploaded as raw stays raw to the guest).
fn check_format(disk_format: &str, head: &[u8]) -> Result<()> {
    const INSPECTABLE: &[&str] = &["qcow2", "vmdk", "vhdx", "vdi", "iso"];
    let detected = detected_format(head);
    let ok = match (disk_format, detected) {
        ("raw", _) => true,
        (declared, Some(found)) => declared == found || (declared == "vhd" && found == "vhd"),
        (declared, None) => !INSPECTABLE.contains(&declared),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Image disk_format {disk_format} does not match stream data {}",
                detected.unwrap_or("raw")
            ),
        ))
    }
}

/// A download: the stream and what to put in the headers.
pub struct Download {
    pub data: ByteStream,
    pub size: Option<u64>,
    pub checksum: Option<String>,
}

impl ImageService {
    /// `PUT /v2/images/{id}/file`. `size_hint` is the request's Content-Length, when known.
    pub async fn upload_image(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        size_hint: Option<u64>,
        data: ByteStream,
    ) -> Result<ImageRow> {
        let image = self.visible_image(caller, id).await?;
        require_owner(caller, &image, "upload_image")?;
        if image.status != ImageStatus::Queued {
            return Err(Error::conflict(format!(
                "Image status transition from {} to saving is not allowed",
                image.status
            )));
        }
        let missing: Vec<&str> = [
            ("disk_format", &image.disk_format),
            ("container_format", &image.container_format),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(Error::bad_request(if missing.len() == 1 {
                format!("Property {} must be set prior to saving data.", missing[0])
            } else {
                format!(
                    "Properties {} must be set prior to saving data.",
                    missing.join(", ")
                )
            }));
        }
        let quota_left = match (&image.owner, self.settings.quota_bytes) {
            (Some(owner), quota) if quota > 0 => {
                let (_, used) = store::images::usage(&self.db, owner).await?;
                let left = quota.saturating_sub(used.max(0) as u64);
                if size_hint.is_some_and(|s| s > left) {
                    return Err(Error::over_limit(format!(
                        "Denying attempt to upload image because it exceeds the quota: {}",
                        Cut::Quota { limit: quota }
                    )));
                }
                Some((left, quota))
            }
            _ => None,
        };
        if size_hint.is_some_and(|s| s > self.settings.max_image_size) {
            return Err(Error::over_limit(format!(
                "The incoming image is too large: {}",
                Cut::SizeCap {
                    limit: self.settings.max_image_size
                }
            )));
        }
        if !store::images::begin_upload(&self.db, id).await? {
            return Err(Error::conflict(format!(
                "Image {id} is no longer queued; another upload may be in progress."
            )));
        }
        // Own task: a client that disconnects drops our handler future, not this.
        let this = self.clone();
        let id_owned = id.to_string();
        let task = tokio::spawn(async move { this.store_upload(image, data, quota_left).await });
        match task.await {
            Ok(result) => result,
            Err(e) => {
                let _ = store::images::set_status(
                    &self.db,
                    &id_owned,
                    ImageStatus::Saving,
                    ImageStatus::Killed,
                )
                .await;
                Err(Error::internal(format!("upload task failed: {e}")))
            }
        }
    }

    async fn store_upload(
        &self,
        image: ImageRow,
        mut data: ByteStream,
        quota_left: Option<(u64, u64)>,
    ) -> Result<ImageRow> {
        let id = image.id.to_string();
        let store_name = format!("image-{id}");
        let cap = self.settings.max_image_size;
        let mut hasher = Hasher::start();
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let into_store: ByteStream =
            Box::pin(futures::stream::unfold(receiver, |mut r| async move {
                r.recv().await.map(|item| (item, r))
            }));
        let store = self.store.clone();
        let name = store_name.clone();
        let storing = tokio::spawn(async move { store.store_image(&name, into_store).await });

        let mut head: Vec<u8> = Vec::with_capacity(HEAD_LEN);
        let mut received: u64 = 0;
        let mut cut: Option<Cut> = None;
        let mut last_beat = std::time::Instant::now();
        while let Some(chunk) = data.next().await {
            if last_beat.elapsed() >= crate::service::UPLOAD_HEARTBEAT {
                last_beat = std::time::Instant::now();
                if let Err(e) = store::images::touch_upload(&self.db, &id).await {
                    tracing::warn!(image_id = %id, error = %e, "upload heartbeat failed");
                }
            }
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = sender.send(Err(e)).await;
                    break;
                }
            };
            received += chunk.len() as u64;
            if received > cap {
                cut = Some(Cut::SizeCap { limit: cap });
            } else if let Some((left, quota)) = quota_left {
                if received > left {
                    cut = Some(Cut::Quota { limit: quota });
                }
            }
            if let Some(reason) = &cut {
                let _ = sender
                    .send(Err(std::io::Error::other(reason.to_string())))
                    .await;
                break;
            }
            if head.len() < HEAD_LEN {
                let take = (HEAD_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.feed(chunk.clone()).await;
            if sender.send(Ok(chunk)).await.is_err() {
                break; // the store gave up; its error is below
            }
        }
        drop(sender);
        let stored = storing
            .await
            .map_err(|e| Error::internal(format!("store task: {e}")))?;
        let (md5, sha512) = hasher.finish().await?;

        let requeue = |err: Error| async {
            let _ =
                store::images::set_status(&self.db, &id, ImageStatus::Saving, ImageStatus::Queued)
                    .await;
            Err(err)
        };
        if let Some(reason) = cut {
            return requeue(match reason {
                Cut::Quota { .. } => Error::over_limit(format!(
                    "Denying attempt to upload image because it exceeds the quota: {reason}"
                )),
                Cut::SizeCap { .. } => {
                    Error::over_limit(format!("The incoming image is too large: {reason}"))
                }
            })
            .await;
        }
        let info = match stored {
            Ok(info) => info,
            Err(nubo_blockstore::Error::Upload(e)) => {
                tracing::info!(image_id = %id, error = %e, "upload interrupted");
                return requeue(Error::bad_request(format!(
                    "Reading the image data failed: {e}"
                )))
                .await;
            }
            Err(nubo_blockstore::Error::InvalidImage { reason }) => {
                return requeue(Error::new(
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("Image failed safety checks: {reason}"),
                ))
                .await;
            }
            Err(nubo_blockstore::Error::NoSpace { .. }) => {
                return requeue(Error::over_limit("Image storage media is full.")).await;
            }
            Err(e) => {
                let _ = store::images::set_status(
                    &self.db,
                    &id,
                    ImageStatus::Saving,
                    ImageStatus::Killed,
                )
                .await;
                return Err(Error::internal(format!("storing image {id}: {e}")));
            }
        };
        let disk_format = image.disk_format.clone().unwrap_or_default();
        if image.container_format.as_deref() == Some("bare") {
            if let Err(err) = check_format(&disk_format, &head) {
                self.remove_object(&store_name).await;
                return requeue(err).await;
            }
        }
        // Data declared raw is raw to Glance's eyes whatever it holds: virtual size = size.
        let virtual_size = if disk_format == "raw" {
            info.size
        } else {
            info.virtual_size
        };
        let record = DataRecord {
            size: info.size as i64,
            virtual_size: Some(virtual_size as i64),
            checksum: Some(md5),
            os_hash_algo: Some(HASH_ALGO.to_string()),
            os_hash_value: Some(sha512),
            store_name: store_name.clone(),
            store_kind: "image",
        };
        if !store::images::activate(&self.db, &id, ImageStatus::Saving, &record).await? {
            self.remove_object(&store_name).await;
            return Err(Error::new(
                http::StatusCode::GONE,
                format!("Image {id} could not be found after upload. The image may have been deleted during the upload, cleaning up the chunks uploaded."),
            ));
        }
        tracing::info!(image_id = %id, size = info.size, "image uploaded");
        store::images::get(&self.db, &id)
            .await?
            .ok_or_else(|| crate::service::image_not_found(&id))
    }

    pub(crate) async fn remove_object(&self, name: &str) {
        if let Err(e) = self.store.delete(name).await {
            tracing::error!(store_name = name, error = %e, "removing image data failed");
        }
    }

    /// `GET /v2/images/{id}/file`: `None` when the image has no data (Glance's 204).
    pub async fn download_image(&self, caller: &Caller, id: &str) -> Result<Option<Download>> {
        let image = self.visible_image(caller, id).await?;
        if !caller.is_admin() && !caller.is_member() {
            return Err(crate::service::not_authorized("download_image"));
        }
        if image.status == ImageStatus::Deactivated && !caller.is_admin() {
            return Err(Error::forbidden(
                "The requested image has been deactivated. Image data download is forbidden.",
            ));
        }
        let Some(name) = image.store_name.as_deref() else {
            return Ok(None);
        };
        if !matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated) {
            return Ok(None);
        }
        let data = match self.store.open_read(name).await {
            Ok(data) => data,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(Error::internal(format!("reading image {id}: {e}"))),
        };
        Ok(Some(Download {
            data,
            size: image.size.map(|s| s as u64),
            checksum: image.checksum.clone(),
        }))
    }
}

/// Hex md5 and sha512 of a whole stream (snapshot images are hashed after they are active).
pub(crate) async fn hash_stream(mut data: ByteStream) -> std::io::Result<(String, String, u64)> {
    let mut hasher = Hasher::start();
    let mut size = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.feed(chunk).await;
    }
    let (md5, sha) = hasher
        .finish()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((md5, sha, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let mut qcow = b"QFI\xfb".to_vec();
        qcow.resize(512, 0);
        assert_eq!(detected_format(&qcow), Some("qcow2"));
        assert!(check_format("qcow2", &qcow).is_ok());
        assert!(check_format("raw", &qcow).is_ok());
        assert!(check_format("vmdk", &qcow).is_err());
        let zeros = vec![0u8; 1024];
        assert!(check_format("raw", &zeros).is_ok());
        assert!(check_format("ami", &zeros).is_ok());
        assert_eq!(
            check_format("qcow2", &zeros).unwrap_err().status.as_u16(),
            415
        );
        assert!(check_format("iso", &zeros).is_err());
    }
}
