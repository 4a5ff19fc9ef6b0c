//! The index of a local store: which file each name points to and which file is based on which.
//!
//! One JSON file, `index.json`, replaced atomically (write `index.json.tmp`, fsync, rename,
//! fsync the directory), so a reader never sees a half-written index and needs no lock.
//! Writers take an exclusive `flock` on the `lock` file around load-modify-save, which
//! serialises them across tasks and processes sharing the directory.
//!
//! ```text
//! names:  "image-1"  -> { kind: image,    file: 1 }
//!         "disk-1"   -> { kind: volume,   file: 3 }
//!         "snap-1"   -> { kind: snapshot, file: 2, snapshot_of: "disk-1" }
//! files:  1 -> { path: objects/1.raw,   parent: none }
//!         2 -> { path: objects/2.qcow2, parent: 1 }     (was disk-1's file until snap-1)
//!         3 -> { path: objects/3.qcow2, parent: 2 }
//! ```
//!
//! A file is kept while a name points to it or another kept file has it as parent; everything
//! else is garbage, collected right after the change that made it so.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{DiskFormat, ObjectKind};

/// The version written into new index files.
const VERSION: u32 = 1;

/// Name of the index file inside the store directory.
pub const INDEX: &str = "index.json";

/// Name of the lock file inside the store directory.
pub const LOCK: &str = "lock";

/// The whole index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    /// Next file id; ids are never reused.
    pub next_file: u64,
    pub names: BTreeMap<String, NameRecord>,
    pub files: BTreeMap<u64, FileRecord>,
}

/// A visible object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    pub kind: ObjectKind,
    /// The file holding its top layer.
    pub file: u64,
    /// For snapshots: the volume it was taken from (a volume with snapshots can't be deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_of: Option<String>,
}

/// One disk file under `objects/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Relative to the store directory.
    pub path: String,
    pub format: DiskFormat,
    pub virtual_size: u64,
    /// For uploaded images: the bytes as uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    /// The file this one is a qcow2 overlay of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
}

impl Index {
    /// Reads the index; a missing file is an empty index.
    pub fn load(dir: &Path) -> Result<Index> {
        let path = dir.join(INDEX);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| Error::Index { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                version: VERSION,
                next_file: 1,
                ..Index::default()
            }),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    /// Writes the index atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(INDEX);
        let tmp = dir.join(format!("{INDEX}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::Index {
            path: path.clone(),
            source,
        })?;
        let mut file = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("writing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))?;
        sync_dir(dir)
    }

    /// The visible object called `name`.
    pub fn name(&self, name: &str) -> Result<&NameRecord> {
        self.names.get(name).ok_or_else(|| Error::not_found(name))
    }

    /// The file with id `id` (an index that names a missing file is corrupt).
    pub fn file(&self, id: u64) -> Result<&FileRecord> {
        self.files.get(&id).ok_or_else(|| Error::Inconsistent {
            reason: format!("the index names file {id} but has no record of it"),
        })
    }

    /// Fails with `AlreadyExists` if `name` is taken.
    pub fn ensure_free(&self, name: &str) -> Result<()> {
        if self.names.contains_key(name) {
            return Err(Error::AlreadyExists {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Reserves a new file id and returns it with its relative path.
    pub fn new_file(&mut self, format: DiskFormat) -> (u64, String) {
        let id = self.next_file;
        self.next_file += 1;
        (id, format!("objects/{id}.{format}"))
    }

    /// Removes the records of files nothing needs any more and returns their relative paths.
    pub fn collect_garbage(&mut self) -> Vec<String> {
        let mut kept = BTreeSet::new();
        for record in self.names.values() {
            let mut next = Some(record.file);
            while let Some(id) = next {
                if !kept.insert(id) {
                    break;
                }
                next = self.files.get(&id).and_then(|f| f.parent);
            }
        }
        let garbage: Vec<u64> = self
            .files
            .keys()
            .copied()
            .filter(|id| !kept.contains(id))
            .collect();
        garbage
            .into_iter()
            .filter_map(|id| self.files.remove(&id))
            .map(|f| f.path)
            .collect()
    }

    /// The relative paths of all files the index knows.
    pub fn paths(&self) -> BTreeSet<String> {
        self.files.values().map(|f| f.path.clone()).collect()
    }
}

/// An exclusive `flock` on the store's lock file, released on drop.
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Blocks until the lock is held.
    pub fn acquire(dir: &Path) -> Result<WriteLock> {
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(WriteLock { _file: file });
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io("locking", path, error));
            }
        }
    }
}

/// Makes renames and creations inside `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing", dir, e))
}

/// Removes files, ignoring those already gone (best effort: a leftover is collected at the next
/// `open`).
pub fn remove_files(dir: &Path, relative_paths: &[String]) {
    for relative in relative_paths {
        let path: PathBuf = dir.join(relative);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a store file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(parent: Option<u64>) -> FileRecord {
        FileRecord {
            path: String::new(),
            format: DiskFormat::Qcow2,
            virtual_size: 512,
            image_size: None,
            parent,
        }
    }

    fn name(kind: ObjectKind, file: u64) -> NameRecord {
        NameRecord {
            kind,
            file,
            snapshot_of: None,
        }
    }

    #[test]
    fn garbage_is_what_no_name_reaches() {
        let mut index = Index::default();
        for (id, parent) in [
            (1, None),
            (2, Some(1)),
            (3, Some(2)),
            (4, Some(1)),
            (5, None),
        ] {
            let mut record = file(parent);
            record.path = format!("objects/{id}.qcow2");
            index.files.insert(id, record);
        }
        index
            .names
            .insert("disk".into(), name(ObjectKind::Volume, 3));
        assert_eq!(
            index.collect_garbage(),
            vec!["objects/4.qcow2", "objects/5.qcow2"]
        );
        assert_eq!(
            index.files.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        index.names.clear();
        assert_eq!(index.collect_garbage().len(), 3);
    }
}
