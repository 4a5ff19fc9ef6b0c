//! The Image service: every Glance operation as a method on [`ImageService`], with its
//! authorization (Glance's default policy, written out in [`policy`]-style helpers here),
//! validation and orchestration. One file per resource: `images` (records, tags, actions),
//! `data` (streaming upload and download), `members`, `list` (filters, sorting, pagination),
//! `patch` (JSON-patch documents), `validate` (the image schema's rules), `compute` (what the
//! Compute service calls), `bootstrap` (the `tiny` image of `nubo up`).
//!
//! Tenancy: an image another project cannot see is a 404; one it can see but not change is a
//! 403 (Glance's answer). Admins see and change everything.

pub mod bootstrap;
pub mod compute;
pub mod data;
pub mod images;
pub mod list;
pub mod members;
pub mod metadefs;
pub mod patch;
pub mod validate;

use std::sync::Arc;

use nubo_blockstore::BlockStore;
use nubo_common::config::ImageConfig;
use nubo_common::{Caller, Db, Error, Result};

use crate::store;
use crate::store::images::ImageRow;
use crate::types::Visibility;

/// How often an upload in progress records that it is alive.
pub const UPLOAD_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(20);
/// An upload silent for this long is considered dead (its image goes back to `queued`).
pub const UPLOAD_STALE: std::time::Duration = std::time::Duration::from_secs(120);

/// Limits the service enforces.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// Images per project; 0 = no limit.
    pub quota_images: u64,
    /// Bytes of image data per project; 0 = no limit.
    pub quota_bytes: u64,
    /// Largest single upload.
    pub max_image_size: u64,
    /// Glance's `image_member_quota`, `image_property_quota`, `image_tag_quota`.
    pub max_members: usize,
    pub max_properties: usize,
    pub max_tags: usize,
    /// Glance's `limit_param_default` and `api_limit_max`.
    pub default_page: usize,
    pub max_page: usize,
}

impl ImageSettings {
    pub fn from_config(config: &ImageConfig) -> ImageSettings {
        ImageSettings {
            quota_images: config.quota_images,
            quota_bytes: config.quota_bytes,
            max_image_size: config.max_image_size,
            ..ImageSettings::default()
        }
    }
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            quota_images: 100,
            quota_bytes: 100 << 30,
            max_image_size: 1 << 40,
            max_members: 128,
            max_properties: 128,
            max_tags: 128,
            default_page: 25,
            max_page: 1000,
        }
    }
}

pub struct ImageService {
    pub(crate) db: Db,
    pub(crate) store: Arc<dyn BlockStore>,
    pub(crate) settings: ImageSettings,
}

impl ImageService {
    /// Migrates the schema, puts uploads a crash interrupted back to `queued`, and starts the
    /// sweeper that does so for uploads of API nodes that die later.
    pub async fn new(
        db: Db,
        store: Arc<dyn BlockStore>,
        settings: ImageSettings,
    ) -> Result<Arc<ImageService>> {
        db.migrate("image", store::MIGRATIONS).await?;
        let service = Arc::new(ImageService {
            db,
            store,
            settings,
        });
        service.reset_stale_uploads().await?;
        // Other API nodes may die mid-upload too: sweep now and then, for as long as the
        // service exists.
        let weak = Arc::downgrade(&service);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPLOAD_HEARTBEAT * 3).await;
                let Some(service) = weak.upgrade() else { break };
                if let Err(e) = service.reset_stale_uploads().await {
                    tracing::warn!(error = %e, "sweeping stale uploads failed");
                }
            }
        });
        Ok(service)
    }

    /// Puts back to `queued` the images whose upload stopped beating (see [`UPLOAD_HEARTBEAT`]).
    async fn reset_stale_uploads(&self) -> Result<()> {
        let stale = chrono::Duration::from_std(UPLOAD_STALE)
            .unwrap_or_else(|_| chrono::Duration::minutes(2));
        let cutoff = nubo_common::time::to_rfc3339(nubo_common::time::now() - stale);
        let reset = store::images::reset_stale_uploads(&self.db, &cutoff).await?;
        if reset > 0 {
            tracing::warn!(
                images = reset,
                "uploads whose API node stopped are queued again"
            );
        }
        Ok(())
    }

    pub fn settings(&self) -> &ImageSettings {
        &self.settings
    }

    pub fn block_store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// The image `id` as `caller` may see it, or a 404.
    pub(crate) async fn visible_image(&self, caller: &Caller, id: &str) -> Result<ImageRow> {
        require_reader(caller)?;
        let image = store::images::get(&self.db, id)
            .await?
            .ok_or_else(|| image_not_found(id))?;
        if self.can_see(caller, &image).await? {
            Ok(image)
        } else {
            Err(image_not_found(id))
        }
    }

    /// Glance's `is_image_visible`: admins, the owner, everyone for public and community
    /// images, and members (whatever their status) for shared ones.
    pub(crate) async fn can_see(&self, caller: &Caller, image: &ImageRow) -> Result<bool> {
        if caller.is_admin() || image.owner.is_none() {
            return Ok(true);
        }
        if matches!(image.visibility, Visibility::Public | Visibility::Community) {
            return Ok(true);
        }
        let Some(project) = caller.project_id() else {
            return Ok(false);
        };
        if image.owner.as_deref() == Some(project) {
            return Ok(true);
        }
        if image.visibility == Visibility::Shared {
            return Ok(store::members::get(&self.db, image.id.as_str(), project)
                .await?
                .is_some());
        }
        Ok(false)
    }
}

/// The 404 of a missing (or invisible) image, in Glance's words.
pub(crate) fn image_not_found(id: &str) -> Error {
    Error::not_found(format!("No image found with ID {id}"))
}

/// Glance's policy refusal.
pub(crate) fn not_authorized(action: &str) -> Error {
    Error::forbidden(format!(
        "You are not authorized to complete {action} action."
    ))
}

/// Reading needs the reader role (member and admin imply it).
pub(crate) fn require_reader(caller: &Caller) -> Result<()> {
    if caller.is_admin() || caller.has_role("reader") || caller.has_role("member") {
        Ok(())
    } else {
        Err(not_authorized("get_image"))
    }
}

/// Writing needs the member role in the project acting.
pub(crate) fn require_member(caller: &Caller, action: &str) -> Result<()> {
    if caller.is_member() {
        Ok(())
    } else {
        Err(not_authorized(action))
    }
}

/// Changing an image: admins, or members of the owning project (`ADMIN_OR_PROJECT_MEMBER`).
pub(crate) fn require_owner(caller: &Caller, image: &ImageRow, action: &str) -> Result<()> {
    if caller.is_admin() {
        return Ok(());
    }
    let owns = image.owner.is_some() && caller.project_id() == image.owner.as_deref();
    if owns && caller.has_role("member") {
        Ok(())
    } else {
        Err(not_authorized(action))
    }
}

/// A project's image quota usage (`/v2/info/usage`).
#[derive(Debug, Clone)]
pub struct QuotaUsage {
    pub count_limit: i64,
    pub count_used: i64,
    pub bytes_limit_mib: i64,
    pub bytes_used_mib: i64,
    pub uploading: i64,
}

impl ImageService {
    /// The caller's project's usage against its quotas (limits of -1 mean unlimited).
    pub async fn quota_usage(&self, caller: &Caller) -> Result<QuotaUsage> {
        require_reader(caller)?;
        let project = caller.require_project()?;
        let (count, bytes) = store::images::usage(&self.db, project).await?;
        let uploading = store::images::uploading(&self.db, project).await?;
        let limit = |n: u64| if n == 0 { -1 } else { n as i64 };
        Ok(QuotaUsage {
            count_limit: limit(self.settings.quota_images),
            count_used: count,
            bytes_limit_mib: limit(self.settings.quota_bytes >> 20),
            bytes_used_mib: bytes >> 20,
            uploading,
        })
    }
}
