//! The one error type of the block store.
//!
//! Messages never repeat their source: the chain is rendered by whoever logs it
//! (`tracing` with `error = %e` plus `source()`), so each level says only what it adds.

use std::io;
use std::path::PathBuf;

use crate::types::{ObjectKind, Op};

/// Result alias used by every function of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a block store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No image, volume or snapshot has this name (deleted objects kept for their dependants are
    /// not visible either).
    #[error("{name} not found")]
    NotFound { name: String },

    /// The name is taken by a visible object.
    #[error("{name} already exists")]
    AlreadyExists { name: String },

    /// The object cannot be changed or deleted now: a volume that still has snapshots, or a file
    /// that another process (a running QEMU) holds open for writing.
    #[error("{name} is in use: {reason}")]
    InUse { name: String, reason: String },

    /// The operation does not apply to this kind of object (resizing an image, cloning
    /// `Source::Volume` from a snapshot name, ...).
    #[error("{name} is {actual}, the operation needs {expected}")]
    WrongKind {
        name: String,
        actual: ObjectKind,
        expected: &'static str,
    },

    /// Names are 1 to 200 characters of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// A size that cannot be used (zero, or smaller than the current size: disks only grow).
    #[error("invalid size {size}: {reason}")]
    InvalidSize { size: u64, reason: String },

    /// An uploaded image that the store refuses to keep (qcow2 with a backing file, an external
    /// data file or encryption, a truncated qcow2 header).
    #[error("invalid image: {reason}")]
    InvalidImage { reason: String },

    /// The store has no room for the data.
    #[error("not enough space: {needed} bytes needed, {free} bytes free")]
    NoSpace { needed: u64, free: u64 },

    /// The caller's upload stream returned an error; nothing was stored.
    #[error("reading the upload stream failed")]
    Upload(#[source] io::Error),

    /// An external command (`qemu-img`, `qemu-io`) exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    /// An external command could not be started (not installed?).
    #[error("could not start {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    /// A file operation inside the store directory failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The index file of a local store cannot be parsed.
    #[error("index {path} is unreadable")]
    Index {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The store's own records contradict each other (a hand-edited or damaged index).
    #[error("the store is inconsistent: {reason}")]
    Inconsistent { reason: String },

    /// A failure injected on purpose by a test (see `MemoryStore::fail_next`).
    #[error("injected failure in {op}")]
    Injected { op: Op },

    /// A blocking task of the store panicked or was cancelled.
    #[error("blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// Builds an [`Error::Io`] from a path and what was being done to it.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn not_found(name: &str) -> Error {
        Error::NotFound {
            name: name.to_string(),
        }
    }

    /// True when the error means "no such object" (useful for idempotent callers).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
