//! `nubo up`'s first-start image: the guest image built by `tools/guest-image/build.sh`,
//! uploaded as the public image `tiny` (raw, bare) owned by the admin project, unless an image
//! named `tiny` already exists.

use std::path::Path;
use std::sync::Arc;

use nubo_blockstore::ByteStream;
use nubo_common::{Caller, Result, Scope};
use serde_json::json;

use crate::service::ImageService;
use crate::store;
use crate::store::images::ImageRow;

/// The name of the bootstrap image.
pub const BOOTSTRAP_NAME: &str = "tiny";

/// What [`ImageService::bootstrap_image`] did.
#[derive(Debug)]
pub enum Bootstrapped {
    /// Uploaded now.
    Uploaded(Box<ImageRow>),
    /// An image named `tiny` exists: nothing done.
    Exists,
    /// No file at the configured path: nothing done.
    NoFile,
}

/// An admin of `project_id`, as the bootstrap acts.
pub fn admin_caller(project_id: &str) -> Caller {
    Caller {
        user_id: "nubo-bootstrap".into(),
        user_name: "nubo-bootstrap".into(),
        user_domain_id: "default".into(),
        user_domain_name: "Default".into(),
        scope: Scope::Project {
            id: project_id.to_string(),
            name: "admin".into(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
        },
        roles: vec!["admin".into(), "member".into(), "reader".into()],
        audit_id: "bootstrap".into(),
        application_credential_id: None,
    }
}

impl ImageService {
    /// Uploads `path` as the public image `tiny` of the admin project when no image of that
    /// name exists and the file does.
    pub async fn bootstrap_image(
        self: &Arc<Self>,
        path: &Path,
        admin_project_id: &str,
    ) -> Result<Bootstrapped> {
        if path.as_os_str().is_empty() || !path.is_file() {
            return Ok(Bootstrapped::NoFile);
        }
        if !store::images::find_by_name(&self.db, BOOTSTRAP_NAME)
            .await?
            .is_empty()
        {
            return Ok(Bootstrapped::Exists);
        }
        let caller = admin_caller(admin_project_id);
        let image = self
            .create_image(
                &caller,
                json!({
                    "name": BOOTSTRAP_NAME,
                    "disk_format": "raw",
                    "container_format": "bare",
                    "visibility": "public",
                    "os_distro": "nubo-tiny",
                    "hw_disk_bus": "virtio",
                }),
            )
            .await?;
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        let data = file_stream(path).await?;
        match self
            .upload_image(&caller, image.id.as_str(), size, data)
            .await
        {
            Ok(image) => Ok(Bootstrapped::Uploaded(Box::new(image))),
            Err(e) => {
                // Leave no half-made `tiny` behind: the next start tries again.
                let _ = self.delete_image(&caller, image.id.as_str()).await;
                Err(e)
            }
        }
    }
}

/// A file as a stream of 1 MiB chunks.
pub async fn file_stream(path: &Path) -> Result<ByteStream> {
    let file = tokio::fs::File::open(path).await?;
    Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file,
        1 << 20,
    )))
}
