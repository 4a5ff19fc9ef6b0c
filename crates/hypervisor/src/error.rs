//! The one error type of the hypervisor crate.
//!
//! Messages never repeat their source: whoever logs the error renders the chain (`source()`), so
//! each level says only what it adds. Errors about a process that died carry the tail of its log,
//! because that is where QEMU explains itself ("Could not open ...", "failed to get write lock").

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::types::{PowerState, VmId};

/// Result alias used by every function of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when running VMs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No VM with this id exists on this host.
    #[error("VM {id} not found")]
    NotFound { id: VmId },

    /// The spec (or a disk / NIC given to a hot-plug call) is not acceptable; nothing was done.
    #[error("invalid VM spec: {reason}")]
    InvalidSpec { reason: String },

    /// The request is well-formed but does not apply to this VM (detaching its boot disk,
    /// shrinking a disk, resizing a disk it does not have, ...).
    #[error("VM {id}: {reason}")]
    InvalidRequest { id: VmId, reason: String },

    /// The power action cannot be applied in the VM's current state (pausing a VM that is shut
    /// down, unpausing a suspended VM, ...). Applying an action whose target state is already
    /// reached is never this error: it succeeds without doing anything.
    #[error("VM {id} is {state}: cannot {action}")]
    InvalidState {
        id: VmId,
        state: PowerState,
        action: &'static str,
    },

    /// A device with this id is already attached with a different spec.
    #[error("VM {id}: {reason}")]
    Conflict { id: VmId, reason: String },

    /// Something did not happen in time (QMP socket never appeared, the guest never released a
    /// hot-unplugged device, a QMP command never answered). What was waited for is in `what`.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },

    /// The VM was destroyed while this operation was in progress.
    #[error("VM {id} was destroyed during the operation")]
    Cancelled { id: VmId },

    /// An external program could not be started at all (not installed? not executable?).
    #[error("could not start {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    /// A one-shot external command exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    /// A long-running process (QEMU) exited while it was being started or driven.
    /// `log_tail` is the end of its stderr log.
    #[error("{program} exited ({status}) {context}; its log ends with:\n{log_tail}")]
    Exited {
        program: String,
        status: String,
        context: String,
        log_tail: String,
    },

    /// QEMU answered a QMP command with an error.
    #[error("QMP {command} failed: {class}: {desc}")]
    Qmp {
        command: String,
        class: String,
        desc: String,
    },

    /// The QMP conversation broke (socket closed, garbage on the wire, refused greeting).
    #[error("QMP connection {path}: {reason}")]
    QmpProtocol { path: PathBuf, reason: String },

    /// A file operation (runtime dir, log, spec) failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A failure injected on purpose by a test (see `FakeHypervisor`'s fault knobs).
    #[error("injected failure in {op}")]
    Injected { op: &'static str },
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

    pub(crate) fn invalid_spec(reason: impl Into<String>) -> Error {
        Error::InvalidSpec {
            reason: reason.into(),
        }
    }

    /// True when the error means "no such VM" (useful for idempotent callers).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for errors a caller can reasonably retry later (timeouts, a broken QMP connection).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::QmpProtocol { .. })
    }
}
