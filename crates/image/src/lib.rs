//! Images (Glance v2) for Nubo: image records with Glance's status machine, visibility,
//! sharing, tags, properties and quotas; image data streamed between HTTP bodies and the
//! block store, hashed (md5 + sha512) on the way in.
//!
//! `http` -> `service` -> `store`, one direction; `types` holds the wire shapes and schemas.
//! Other services use [`ImageService`] in process: Compute calls
//! [`ImageService::image_for_boot`] and [`ImageService::create_image_from_snapshot`].

pub mod http;
pub mod service;
pub mod store;
pub mod types;

pub use service::compute::{BootImage, SnapshotImage};
pub use service::{ImageService, ImageSettings};
pub use types::ImageId;
