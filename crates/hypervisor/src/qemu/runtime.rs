//! The runtime dir of one VM, the power-state record kept in it, and the QEMU process as seen
//! from outside (pidfd, liveness, signals, reaping).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};
use crate::types::{VmId, VmSpec};

/// `<runtime root>/<vm id>/`: everything the driver keeps about one VM.
#[derive(Debug, Clone)]
pub(crate) struct VmDir {
    pub path: PathBuf,
}

impl VmDir {
    pub fn new(root: &Path, id: VmId) -> VmDir {
        VmDir {
            path: root.join(id.to_string()),
        }
    }

    /// The VM spec as last applied (hot-plugged devices included). Written before QEMU starts.
    pub fn spec(&self) -> PathBuf {
        self.path.join("spec.json")
    }

    /// The power-state record ([`Record`]).
    pub fn record(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// QEMU's `-pidfile`.
    pub fn pidfile(&self) -> PathBuf {
        self.path.join("qemu.pid")
    }

    /// The QMP socket.
    pub fn qmp(&self) -> PathBuf {
        self.path.join("qmp.sock")
    }

    /// QEMU's stdout and stderr, one header line per launch.
    pub fn qemu_log(&self) -> PathBuf {
        self.path.join("qemu.log")
    }

    /// The serial console, unless the spec names another path.
    pub fn default_console(&self) -> PathBuf {
        self.path.join("console.log")
    }

    pub fn console(&self, spec: &VmSpec) -> PathBuf {
        spec.serial_log
            .clone()
            .unwrap_or_else(|| self.default_console())
    }
}

/// What the driver last decided about the VM's power. It tells apart the states QEMU cannot:
/// a VM with no process is `Shutdown` if we (or the guest) powered it off and `Crashed`
/// otherwise, and a stopped QEMU is `Suspended` rather than `Paused` if `suspend` stopped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub state: Recorded,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Recorded {
    Running,
    Suspended,
    Shutdown,
    Crashed,
}

impl Record {
    pub fn new(state: Recorded, reason: Option<String>) -> Record {
        Record { state, reason }
    }
}

/// Writes `value` as JSON to `path` atomically (a temporary file renamed over it), so a crash
/// never leaves half a file.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).expect("spec types always serialize");
    std::fs::write(&tmp, text).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming over", path, e))
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::io(
                "parsing",
                path,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// Removes a file, ignoring "not there".
pub(crate) fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove");
        }
    }
}

/// Removes a directory tree; "not there" is success.
pub(crate) fn remove_dir_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// The pid in a pidfile, if there is a well-formed one.
pub(crate) fn read_pidfile(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True when `pid` exists and is not a zombie. (Here PID 1 does not reap orphans, so a QEMU
/// that exited after its parent agent died stays a zombie: it must count as gone.)
pub(crate) fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold ")".
        Ok(stat) => match stat.rfind(')') {
            Some(at) => !matches!(stat[at + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// The command line of `pid`, one element per argument.
pub(crate) fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One QEMU process, ours (a child) or adopted (started by an earlier agent). Holds a pidfd
/// when the kernel has them, so waiting for the exit needs no polling and signals can never
/// reach a recycled pid.
#[derive(Debug)]
pub(crate) struct ProcWatch {
    pid: u32,
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl ProcWatch {
    /// Watches `pid`. Must be called inside a tokio runtime.
    pub fn open(pid: u32) -> ProcWatch {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        let pidfd = if fd >= 0 {
            // SAFETY: the kernel just gave us this fd and nobody else owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            // SAFETY: the AsyncFd owns the fd; nothing else closes or replaces it.
            unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }.ok()
        } else {
            None
        };
        ProcWatch { pid, pidfd }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_alive(&self) -> bool {
        is_alive(self.pid)
    }

    /// Resolves once the process has exited (zombie or reaped).
    pub async fn exited(&self) {
        if let Some(fd) = &self.pidfd {
            // A pidfd becomes readable, for good, when the process exits.
            if fd.readable().await.is_ok() {
                return;
            }
        }
        while self.is_alive() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` for the exit; true if it happened.
    pub async fn wait_exit(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.exited()).await.is_ok() || !self.is_alive()
    }

    /// Sends `signal`; a process that is already gone is not an error.
    pub fn signal(&self, signal: i32) {
        let rc = match &self.pidfd {
            // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.get_ref().as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                ) as i32
            },
            None if self.is_alive() => {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(self.pid as libc::pid_t, signal) }
            }
            None => 0,
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!(pid = self.pid, signal, error = %e, "could not signal");
            }
        }
    }

    /// Reaps the process if it is our child and has exited, and says how it ended.
    pub fn try_reap(&self) -> Reap {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let rc = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if rc == 0 {
            return Reap::NotYet;
        }
        if rc != self.pid as libc::pid_t {
            return Reap::NotOurs;
        }
        Reap::Reaped(if libc::WIFEXITED(status) {
            format!("exit status {}", libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("wait status {status}")
        })
    }

    /// Reaps an exited process, waiting up to `timeout` for it to become reapable: a process
    /// whose main thread is a zombie cannot be reaped until its other threads are gone, and
    /// QEMU has many. Returns how it ended, or why that is unknown.
    pub async fn reap(&self, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.try_reap() {
                Reap::Reaped(how) => return how,
                Reap::NotOurs => return "exit status unknown: not our child".into(),
                Reap::NotYet if std::time::Instant::now() >= deadline => {
                    return "still running".into()
                }
                Reap::NotYet => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

/// What `waitpid` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reap {
    /// Our child, now gone: how it ended.
    Reaped(String),
    /// Our child, not (yet) reapable.
    NotYet,
    /// Not our child (adopted), or already reaped.
    NotOurs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_spec_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read_json::<Record>(&path).unwrap(), None);
        let record = Record::new(Recorded::Crashed, Some("boom".into()));
        write_json(&path, &record).unwrap();
        assert_eq!(read_json::<Record>(&path).unwrap(), Some(record));
        assert!(!dir.path().join("state.json.tmp").exists());
        std::fs::write(&path, "{").unwrap();
        assert!(read_json::<Record>(&path).is_err());
    }

    #[tokio::test]
    // Reaped by pid through the watch, which is what is tested.
    #[allow(clippy::zombie_processes)]
    async fn watches_a_child() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watch = ProcWatch::open(child.id());
        assert!(watch.is_alive());
        assert!(!watch.wait_exit(Duration::from_millis(50)).await);
        assert_eq!(watch.try_reap(), Reap::NotYet);
        watch.signal(libc::SIGKILL);
        assert!(watch.wait_exit(Duration::from_secs(5)).await);
        // A zombie until reaped, and a zombie counts as gone.
        assert!(!watch.is_alive());
        assert_eq!(
            watch.reap(Duration::from_secs(5)).await,
            "killed by signal 9"
        );
        assert_eq!(watch.try_reap(), Reap::NotOurs);
        // Signalling a dead process is harmless.
        watch.signal(libc::SIGKILL);
        assert!(!cmdline(std::process::id()).is_empty());
        assert!(!is_alive(u32::MAX / 2));
    }
}
