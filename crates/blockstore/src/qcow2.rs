//! Format detection for uploads: the qcow2 header, read from the first bytes of a stream.
//!
//! Layout (big-endian, <https://qemu.readthedocs.io/en/latest/interop/qcow2.html>):
//!
//! ```text
//!  0 magic "QFI\xfb"     4 version (2|3)      8 backing_file_offset  16 backing_file_size
//! 20 cluster_bits       24 size (virtual)    32 crypt_method        ...
//! 72 incompatible_features (v3 only): bit 1 corrupt, bit 2 external data file
//! ```
//!
//! A qcow2 upload is a guest-controlled file that QEMU will open: one that names a backing file
//! or an external data file could make QEMU read any file of the host, so such images are
//! refused, as are encrypted (unbootable without keys) and corrupt ones.

use crate::error::{Error, Result};
use crate::types::{DiskFormat, ImageInfo};

/// The qcow2 magic.
pub const MAGIC: &[u8; 4] = b"QFI\xfb";

/// How many leading bytes `detect` needs to decide.
pub const HEADER_LEN: usize = 104;

/// Decides the format and virtual size of an upload from its first bytes (at least
/// [`HEADER_LEN`] of them, or all of them when the upload is shorter) and its total size.
pub fn detect(head: &[u8], size: u64) -> Result<ImageInfo> {
    if head.len() < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        return Ok(ImageInfo {
            size,
            virtual_size: size,
            format: DiskFormat::Raw,
        });
    }
    let invalid = |reason: &str| {
        Err(Error::InvalidImage {
            reason: format!("qcow2: {reason}"),
        })
    };
    if head.len() < 72 {
        return invalid("truncated header");
    }
    let version = be_u32(head, 4);
    if version != 2 && version != 3 {
        return invalid(&format!("unsupported version {version}"));
    }
    if be_u64(head, 8) != 0 {
        return invalid("images with a backing file are not accepted");
    }
    if be_u32(head, 32) != 0 {
        return invalid("encrypted images are not accepted");
    }
    if version == 3 {
        if head.len() < HEADER_LEN {
            return invalid("truncated header");
        }
        let incompatible = be_u64(head, 72);
        if incompatible & 0b10 != 0 {
            return invalid("the image is marked corrupt");
        }
        if incompatible & 0b100 != 0 {
            return invalid("images with an external data file are not accepted");
        }
    }
    Ok(ImageInfo {
        size,
        virtual_size: be_u64(head, 24),
        format: DiskFormat::Qcow2,
    })
}

/// The virtual size from the first 32 bytes of a qcow2 file, `None` if it is not qcow2.
pub fn virtual_size(head: &[u8]) -> Option<u64> {
    if head.len() < 32 || &head[..MAGIC.len()] != MAGIC {
        return None;
    }
    Some(be_u64(head, 24))
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, virtual_size: u64) -> Vec<u8> {
        let mut head = vec![0u8; HEADER_LEN];
        head[..4].copy_from_slice(MAGIC);
        head[4..8].copy_from_slice(&version.to_be_bytes());
        head[20..24].copy_from_slice(&16u32.to_be_bytes());
        head[24..32].copy_from_slice(&virtual_size.to_be_bytes());
        head[100..104].copy_from_slice(&104u32.to_be_bytes());
        head
    }

    #[test]
    fn raw_when_no_magic() {
        let info = detect(b"hello", 5).unwrap();
        assert_eq!(info.format, DiskFormat::Raw);
        assert_eq!(info.virtual_size, 5);
        assert_eq!(detect(b"", 0).unwrap().format, DiskFormat::Raw);
    }

    #[test]
    fn qcow2_virtual_size() {
        for version in [2, 3] {
            let info = detect(&header(version, 10 << 30), 196_608).unwrap();
            assert_eq!(info.format, DiskFormat::Qcow2);
            assert_eq!(info.virtual_size, 10 << 30);
            assert_eq!(info.size, 196_608);
        }
    }

    #[test]
    fn refuses_dangerous_headers() {
        let mut backing = header(3, 1 << 20);
        backing[8..16].copy_from_slice(&512u64.to_be_bytes());
        assert!(detect(&backing, 1 << 16).is_err());

        let mut data_file = header(3, 1 << 20);
        data_file[72..80].copy_from_slice(&4u64.to_be_bytes());
        assert!(detect(&data_file, 1 << 16).is_err());

        let mut encrypted = header(3, 1 << 20);
        encrypted[32..36].copy_from_slice(&1u32.to_be_bytes());
        assert!(detect(&encrypted, 1 << 16).is_err());

        assert!(detect(&header(3, 1)[..50], 50).is_err());
        assert!(detect(&header(4, 1), 1 << 16).is_err());
    }
}
