//! Plain data types shared by the trait and every backend: kinds, formats, sources, what QEMU
//! needs to open a disk, capacity figures, and the name and size rules.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A stream of byte chunks: what `store_image` consumes and `open_read` produces.
///
/// Errors are `std::io::Error` so that HTTP bodies, files and pipes all map onto it easily
/// (`body.into_data_stream().map_err(std::io::Error::other)`).
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// Sizes of volumes and clones are rounded up to this (qcow2 and QEMU work in sectors).
pub const SECTOR: u64 = 512;

/// What an object is. Images are immutable uploads, volumes are writable disks (VM root disks and
/// Cinder volumes alike), snapshots are immutable point-in-time copies of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Image,
    Volume,
    Snapshot,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Image => "an image",
            ObjectKind::Volume => "a volume",
            ObjectKind::Snapshot => "a snapshot",
        })
    }
}

/// The format QEMU must be told to use (`format=` of `-drive`). Never let QEMU probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    /// The name QEMU and `qemu-img` use.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a clone is made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A stored image (a VM booted from an image, a volume created from an image).
    Image(String),
    /// A snapshot (a volume created from a snapshot).
    Snapshot(String),
    /// A volume (a volume created from a volume): the store takes a hidden snapshot of it first.
    Volume(String),
}

impl Source {
    /// The name of the object the clone is made from.
    pub fn name(&self) -> &str {
        match self {
            Source::Image(name) | Source::Snapshot(name) | Source::Volume(name) => name,
        }
    }

    /// The kind the named object must have.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Source::Image(_) => ObjectKind::Image,
            Source::Snapshot(_) => ObjectKind::Snapshot,
            Source::Volume(_) => ObjectKind::Volume,
        }
    }
}

/// What `store_image` learnt about an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Bytes received and stored (Glance's `size`).
    pub size: u64,
    /// Size of the disk the guest sees (Glance's `virtual_size`): from the qcow2 header, or `size`
    /// for raw.
    pub virtual_size: u64,
    /// Detected by the qcow2 magic `QFI\xfb`; anything else is raw.
    pub format: DiskFormat,
}

/// What `info` (and the create operations) tell about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    pub kind: ObjectKind,
    /// How the object is stored (a clone or volume on the local backend is qcow2 even when its
    /// base image is raw).
    pub format: DiskFormat,
    /// Size of the disk the guest sees.
    pub virtual_size: u64,
    /// Bytes `open_read` yields: the stored bytes of an image, the virtual size of anything else.
    pub size: u64,
}

/// How QEMU opens a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuDisk {
    pub location: QemuLocation,
    /// Always pass it: QEMU must never probe the format of a guest-controlled file.
    pub format: DiskFormat,
    /// Images and snapshots are immutable: open them read-only.
    pub read_only: bool,
}

/// Where the bytes of a disk live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuLocation {
    /// A local file (`local` backend). A qcow2 overlay names its base by absolute path in its
    /// header, so QEMU opens the whole chain from this one path.
    File(PathBuf),
    /// A Ceph RBD image (future `ceph` backend): `rbd:pool/image[@snap][:id=user][:conf=path]`.
    Rbd {
        pool: String,
        image: String,
        snapshot: Option<String>,
        user: Option<String>,
        conf: Option<PathBuf>,
    },
}

impl QemuDisk {
    /// The value of `file=` for `-drive`: a path, or an `rbd:` URI. Not escaped.
    pub fn file(&self) -> String {
        match &self.location {
            QemuLocation::File(path) => path.display().to_string(),
            QemuLocation::Rbd {
                pool,
                image,
                snapshot,
                user,
                conf,
            } => {
                let mut uri = format!("rbd:{pool}/{image}");
                if let Some(snapshot) = snapshot {
                    uri.push('@');
                    uri.push_str(snapshot);
                }
                if let Some(user) = user {
                    uri.push_str(":id=");
                    uri.push_str(user);
                }
                if let Some(conf) = conf {
                    uri.push_str(":conf=");
                    uri.push_str(&conf.display().to_string());
                }
                uri
            }
        }
    }

    /// Options for `-drive`, e.g. `file=/d/objects/7.qcow2,format=qcow2`, with commas in the file
    /// name doubled as QEMU's option parser wants. The caller adds `if=`, `id=`, `cache=`...
    pub fn drive_options(&self) -> String {
        let mut options = format!(
            "file={},format={}",
            self.file().replace(',', ",,"),
            self.format
        );
        if self.read_only {
            options.push_str(",readonly=on");
        }
        options
    }
}

/// Space of the whole store, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Size of the filesystem (local) or the configured capacity (memory).
    pub total: u64,
    /// Bytes held by the store's objects, hidden ones included.
    pub used: u64,
    /// Bytes still available to the store.
    pub free: u64,
}

/// Space of one object, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub virtual_size: u64,
    /// Bytes held by the object's own layer (not its bases): what deleting it would free if
    /// nothing depends on it.
    pub allocated: u64,
}

/// The operations of the trait, named for fault injection and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    StoreImage,
    CreateVolume,
    CreateClone,
    Snapshot,
    Resize,
    Flatten,
    Delete,
    OpenRead,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::StoreImage => "store_image",
            Op::CreateVolume => "create_volume",
            Op::CreateClone => "create_clone",
            Op::Snapshot => "snapshot",
            Op::Resize => "resize",
            Op::Flatten => "flatten",
            Op::Delete => "delete",
            Op::OpenRead => "open_read",
        })
    }
}

/// Checks a caller-chosen name: 1 to 200 characters of `A-Z a-z 0-9 . _ -`, not starting with
/// `.` or `-` (so a name is always safe in a path, a command line and an RBD image name).
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > 200 {
        return invalid("longer than 200 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return invalid("starts with '.' or '-'");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(allowed) {
        return invalid("only A-Z a-z 0-9 . _ - are allowed");
    }
    Ok(())
}

/// Rounds a size up to whole sectors.
pub fn round_to_sector(size: u64) -> u64 {
    size.div_ceil(SECTOR) * SECTOR
}

/// The virtual size of a clone of a base of `base_size` bytes, grown to `requested` if given.
pub(crate) fn clone_size(base_size: u64, requested: Option<u64>) -> Result<u64> {
    let base = round_to_sector(base_size);
    match requested {
        None => Ok(base),
        Some(size) => {
            let size = round_to_sector(size);
            if size < base {
                return Err(Error::InvalidSize {
                    size,
                    reason: format!("a clone cannot be smaller than its base ({base} bytes)"),
                });
            }
            Ok(size)
        }
    }
}

/// The virtual size of a new volume.
pub(crate) fn volume_size(size: u64) -> Result<u64> {
    if size == 0 {
        return Err(Error::InvalidSize {
            size,
            reason: "a volume needs at least one byte".to_string(),
        });
    }
    Ok(round_to_sector(size))
}

/// The new virtual size of a resize, or `None` when nothing changes.
pub(crate) fn grown_size(current: u64, requested: u64) -> Result<Option<u64>> {
    let size = round_to_sector(requested);
    if size < current {
        return Err(Error::InvalidSize {
            size: requested,
            reason: format!("shrinking is not supported (current size {current} bytes)"),
        });
    }
    Ok((size > current).then_some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["image-0f3c", "disk-1.2_3", "a"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(201);
        for bad in ["", ".hidden", "-x", "a/b", "a b", "é", long.as_str()] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(round_to_sector(0), 0);
        assert_eq!(round_to_sector(1), 512);
        assert_eq!(round_to_sector(1024), 1024);
        assert_eq!(clone_size(1000, None).unwrap(), 1024);
        assert_eq!(clone_size(1000, Some(4096)).unwrap(), 4096);
        assert!(clone_size(4096, Some(1024)).is_err());
        assert!(volume_size(0).is_err());
        assert_eq!(grown_size(1024, 1024).unwrap(), None);
        assert_eq!(grown_size(1024, 2000).unwrap(), Some(2048));
        assert!(grown_size(2048, 1024).is_err());
    }

    #[test]
    fn drive_options() {
        let disk = QemuDisk {
            location: QemuLocation::File(PathBuf::from("/d/a,b/7.qcow2")),
            format: DiskFormat::Qcow2,
            read_only: false,
        };
        assert_eq!(disk.drive_options(), "file=/d/a,,b/7.qcow2,format=qcow2");
        let rbd = QemuDisk {
            location: QemuLocation::Rbd {
                pool: "rbd".into(),
                image: "image-1".into(),
                snapshot: Some("snap".into()),
                user: Some("admin".into()),
                conf: Some(PathBuf::from("/etc/ceph/ceph.conf")),
            },
            format: DiskFormat::Raw,
            read_only: true,
        };
        assert_eq!(
            rbd.drive_options(),
            "file=rbd:rbd/image-1@snap:id=admin:conf=/etc/ceph/ceph.conf,format=raw,readonly=on"
        );
    }
}
