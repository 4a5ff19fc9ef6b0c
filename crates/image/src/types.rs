//! Wire shapes of Glance v2: the image and member views, the JSON schemas clients read from
//! `/v2/schemas/...`, the version document, and the enumerations (statuses, visibilities, disk
//! and container formats) with their Glance spellings.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::store::images::ImageRow;
use crate::store::members::MemberRow;

nubo_common::typed_id!(
    /// A Glance image id: a dashed UUID.
    ImageId
);

/// Glance's default `disk_formats`.
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];

/// Glance's default `container_formats`.
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];

/// The hash Glance computes besides md5 (`os_hash_algo`).
pub const HASH_ALGO: &str = "sha512";

/// The one store images are kept in (`/v2/info/stores`).
pub const STORE_ID: &str = "local";

/// An image's life:
///
/// ```text
///   POST /images ──> queued ──PUT file──> saving ──stored──> active <──reactivate── deactivated
///                      ^                    │  │               │ ──deactivate────────────^
///                      └── upload refused ──┘  └─ store failed ─> killed
///                          or interrupted
///   DELETE: any status -> gone (protected images refuse; the data stays in the block store
///   while clones use it)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageStatus {
    Queued,
    Saving,
    Active,
    Killed,
    Deactivated,
}

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Active => "active",
            ImageStatus::Killed => "killed",
            ImageStatus::Deactivated => "deactivated",
        }
    }

    pub fn parse(s: &str) -> Option<ImageStatus> {
        Some(match s {
            "queued" => ImageStatus::Queued,
            "saving" => ImageStatus::Saving,
            "active" => ImageStatus::Active,
            "killed" => ImageStatus::Killed,
            "deactivated" => ImageStatus::Deactivated,
            _ => return None,
        })
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may see an image besides its owner and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Everyone, listed by default.
    Public,
    /// Everyone who knows the id; listed only for its owner (or with `visibility=community`).
    Community,
    /// The owner and the member projects (accepted members see it listed).
    Shared,
    /// The owner only.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Community => "community",
            Visibility::Shared => "shared",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        Some(match s {
            "public" => Visibility::Public,
            "community" => Visibility::Community,
            "shared" => Visibility::Shared,
            "private" => Visibility::Private,
            _ => return None,
        })
    }
}

/// Glance's `2026-11-25T18:51:37Z` from a stored RFC 3339 time.
pub fn wire_time(stored: &str) -> String {
    nubo_common::time::parse(stored)
        .map(nubo_common::time::seconds_format)
        .unwrap_or_else(|| stored.to_string())
}

/// The image view of `GET /v2/images/{id}`: free-form properties at the top level beside the
/// base attributes, as Glance renders them.
pub fn image_view(image: &ImageRow) -> Value {
    let mut view = Map::new();
    for (key, value) in &image.properties {
        view.insert(key.clone(), Value::String(value.clone()));
    }
    let id = image.id.as_str();
    let base = json!({
        "id": id,
        "name": image.name,
        "status": image.status.as_str(),
        "visibility": image.visibility.as_str(),
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "created_at": wire_time(&image.created_at),
        "updated_at": wire_time(&image.updated_at),
        "tags": image.tags,
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(base) = base {
        view.extend(base);
    }
    Value::Object(view)
}

/// The member view of `/v2/images/{id}/members/{member}`.
pub fn member_view(member: &MemberRow) -> Value {
    json!({
        "image_id": member.image_id,
        "member_id": member.member_id,
        "status": member.status,
        "created_at": wire_time(&member.created_at),
        "updated_at": wire_time(&member.updated_at),
        "schema": "/v2/schemas/member",
    })
}

/// The version list of `GET /image` and `GET /image/versions`. Only what is implemented is
/// advertised: v2.7 (hidden images) and below; not the multi-store, cache, task or new-location
/// versions.
pub fn versions(base: &str) -> Value {
    let href = format!("{}/v2/", base.trim_end_matches('/'));
    let version = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]});
    let mut list = vec![version("v2.7", "CURRENT")];
    for minor in (0..=6).rev() {
        list.push(version(&format!("v2.{minor}"), "SUPPORTED"));
    }
    json!({ "versions": list })
}

fn uuid_pattern() -> &'static str {
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
}

/// The properties of the image schema: the base attributes and the well-known optional ones.
pub fn image_schema_properties() -> Value {
    let mut disk: Vec<Value> = vec![Value::Null];
    disk.extend(DISK_FORMATS.iter().map(|f| json!(f)));
    let mut container: Vec<Value> = vec![Value::Null];
    container.extend(CONTAINER_FORMATS.iter().map(|f| json!(f)));
    json!({
        "id": {"type": "string", "description": "An identifier for the image", "pattern": uuid_pattern()},
        "name": {"type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255},
        "status": {"type": "string", "readOnly": true, "description": "Status of the image",
                   "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
                            "pending_delete", "deactivated"]},
        "visibility": {"type": "string", "description": "Scope of image accessibility",
                       "enum": ["community", "public", "private", "shared"]},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
        "checksum": {"type": ["null", "string"], "readOnly": true, "description": "md5 hash of image contents.", "maxLength": 32},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "description": "Algorithm to calculate the os_hash_value", "maxLength": 64},
        "os_hash_value": {"type": ["null", "string"], "readOnly": true, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo", "maxLength": 128},
        "owner": {"type": ["null", "string"], "description": "Owner of the image", "maxLength": 255},
        "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual size of image in bytes"},
        "container_format": {"type": ["null", "string"], "description": "Format of the container", "enum": container},
        "disk_format": {"type": ["null", "string"], "description": "Format of the disk", "enum": disk},
        "created_at": {"type": "string", "readOnly": true, "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": true, "description": "Date and time of the last image modification"},
        "tags": {"type": "array", "description": "List of strings related to the image", "items": {"type": "string", "maxLength": 255}},
        "direct_url": {"type": "string", "readOnly": true, "description": "URL to access the image file kept in external store"},
        "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": true, "description": "An image self url"},
        "file": {"type": "string", "readOnly": true, "description": "An image file url"},
        "stores": {"type": "string", "readOnly": true, "description": "Store in which image data resides.  Only present when the operator has enabled multiple stores.  May be a comma-separated list of store identifiers."},
        "schema": {"type": "string", "readOnly": true, "description": "An image schema url"},
        "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                      "items": {"type": "object", "required": ["url", "metadata"],
                                "properties": {"url": {"type": "string", "maxLength": 255}, "metadata": {"type": "object"}}}},
        "kernel_id": {"type": ["null", "string"], "pattern": uuid_pattern(), "is_base": false,
                      "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image."},
        "ramdisk_id": {"type": ["null", "string"], "pattern": uuid_pattern(), "is_base": false,
                       "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image."},
        "instance_uuid": {"type": "string", "is_base": false,
                          "description": "Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)"},
        "architecture": {"type": "string", "is_base": false, "description": "Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_distro": {"type": "string", "is_base": false, "description": "Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_version": {"type": "string", "is_base": false, "description": "Operating system version as specified by the distributor."},
    })
}

fn image_links() -> Value {
    json!([
        {"href": "{self}", "rel": "self"},
        {"href": "{file}", "rel": "enclosure"},
        {"href": "{schema}", "rel": "describedby"},
    ])
}

/// `GET /v2/schemas/image`.
pub fn image_schema() -> Value {
    json!({
        "name": "image",
        "properties": image_schema_properties(),
        "additionalProperties": {"type": "string"},
        "links": image_links(),
    })
}

/// `GET /v2/schemas/images`.
pub fn images_schema() -> Value {
    json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"href": "{first}", "rel": "first"},
            {"href": "{next}", "rel": "next"},
            {"href": "{schema}", "rel": "describedby"},
        ],
    })
}

fn member_schema_properties() -> Value {
    json!({
        "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
        "image_id": {"type": "string", "description": "An identifier for the image", "pattern": uuid_pattern()},
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": ["pending", "accepted", "rejected"]},
        "schema": {"type": "string", "readOnly": true},
    })
}

/// `GET /v2/schemas/member`.
pub fn member_schema() -> Value {
    json!({"name": "member", "properties": member_schema_properties()})
}

/// `GET /v2/schemas/members`.
pub fn members_schema() -> Value {
    json!({
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"href": "{schema}", "rel": "describedby"}],
    })
}
