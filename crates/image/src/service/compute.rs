//! What the Compute service asks of Images, in process: a bootable image for a new server
//! ([`ImageService::image_for_boot`]) and a new image from a server's disk snapshot
//! ([`ImageService::create_image_from_snapshot`], for `openstack server image create`).

use std::collections::BTreeMap;
use std::sync::Arc;

use nubo_blockstore::Source;
use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use crate::service::{require_member, ImageService};
use crate::store;
use crate::store::images::{DataRecord, ImageRow};
use crate::types::{ImageId, ImageStatus, Visibility, HASH_ALGO};

/// An image a server can boot from.
#[derive(Debug, Clone)]
pub struct BootImage {
    pub image: ImageRow,
    /// The block store object with the image's data.
    pub blockstore_name: String,
}

impl BootImage {
    /// What to clone the server's root disk from (`BlockStore::create_clone`).
    pub fn source(&self) -> Source {
        if self.image.store_kind.as_deref() == Some("snapshot") {
            Source::Snapshot(self.blockstore_name.clone())
        } else {
            Source::Image(self.blockstore_name.clone())
        }
    }
}

/// The attributes of an image made from a snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotImage {
    pub name: String,
    /// Free-form properties (Nova sets `image_type=snapshot`, `instance_uuid`, `base_image_ref`...).
    pub properties: BTreeMap<String, String>,
    pub min_disk: i64,
    pub min_ram: i64,
    /// Defaults to private.
    pub visibility: Option<Visibility>,
}

impl ImageService {
    /// The image `id` if `caller` may boot from it: visible to the caller, `active`, with data,
    /// and in a format QEMU can open (raw or qcow2). 404 when invisible, 409 when not active,
    /// 400 for other formats.
    pub async fn image_for_boot(&self, caller: &Caller, id: &ImageId) -> Result<BootImage> {
        let image = self.visible_image(caller, id.as_str()).await?;
        if image.status != ImageStatus::Active {
            return Err(Error::conflict(format!(
                "Image {id} is not active (status {}).",
                image.status
            )));
        }
        let Some(blockstore_name) = image.store_name.clone() else {
            return Err(Error::conflict(format!("Image {id} has no data.")));
        };
        match image.disk_format.as_deref() {
            Some("raw") | Some("qcow2") => {}
            other => {
                return Err(Error::bad_request(format!(
                    "Image {id} has disk format {}; only raw and qcow2 images can be booted.",
                    other.unwrap_or("none")
                )))
            }
        }
        Ok(BootImage {
            image,
            blockstore_name,
        })
    }

    /// Makes an active image of the caller's project from the block store snapshot
    /// `snapshot_name` (taken by Compute from a server's disk; the image takes it over and
    /// deletes it with the image). Downloads yield the raw disk; the checksum and hash are
    /// computed in the background and appear when done.
    pub async fn create_image_from_snapshot(
        self: &Arc<Self>,
        caller: &Caller,
        snapshot_name: &str,
        request: SnapshotImage,
    ) -> Result<ImageRow> {
        require_member(caller, "add_image")?;
        let owner = caller.require_project()?.to_string();
        for (key, value) in &request.properties {
            crate::service::validate::check_value(key, &Value::String(value.clone()))?;
            if crate::service::validate::is_reserved(key) {
                return Err(Error::forbidden(format!("Attribute '{key}' is reserved.")));
            }
        }
        self.check_count_quota(&owner).await?;
        let info = self
            .store
            .info(snapshot_name)
            .await
            .map_err(|e| Error::internal(format!("snapshot {snapshot_name}: {e}")))?;
        let now = nubo_common::time::now_rfc3339();
        let image = ImageRow {
            id: ImageId(nubo_common::ids::new_uuid()),
            name: Some(request.name),
            status: ImageStatus::Queued,
            visibility: request.visibility.unwrap_or(Visibility::Private),
            owner: Some(owner),
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: request.min_disk,
            min_ram: request.min_ram,
            protected: false,
            os_hidden: false,
            properties: request.properties,
            tags: Vec::new(),
            store_name: None,
            store_kind: None,
            created_at: now.clone(),
            updated_at: now,
        };
        store::images::insert(&self.db, &image).await?;
        let record = DataRecord {
            size: info.size as i64,
            virtual_size: Some(info.virtual_size as i64),
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            store_name: snapshot_name.to_string(),
            store_kind: "snapshot",
        };
        store::images::activate(&self.db, image.id.as_str(), ImageStatus::Queued, &record).await?;
        let this = self.clone();
        let id = image.id.to_string();
        let name = snapshot_name.to_string();
        tokio::spawn(async move {
            let hashed = match this.store.open_read(&name).await {
                Ok(stream) => crate::service::data::hash_stream(stream).await,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            match hashed {
                Ok((md5, sha, _)) => {
                    if let Err(e) =
                        store::images::set_hashes(&this.db, &id, &md5, HASH_ALGO, &sha).await
                    {
                        tracing::warn!(image_id = %id, error = %e, "saving snapshot hashes failed");
                    }
                }
                Err(e) => tracing::warn!(image_id = %id, error = %e, "hashing snapshot failed"),
            }
        });
        tracing::info!(image_id = %image.id, snapshot = snapshot_name, "image created from snapshot");
        store::images::get(&self.db, image.id.as_str())
            .await?
            .ok_or_else(|| crate::service::image_not_found(image.id.as_str()))
    }
}
