//! Helper daemons (dnsmasq, radvd): started in the foreground as our children, inside their
//! namespace (`ip netns exec NS PROGRAM ...`, which execs the program: the PID is the daemon's),
//! in their own process group (a Ctrl-C of the agent does not take them down; a restarted
//! agent adopts them). Stopped with SIGTERM, then SIGKILL, and waited for by PID.
//!
//! Adoption: the state file records PID, start time, argv and the namespace inode. A restarted
//! agent keeps a recorded daemon whose PID still has that start time, is not a zombie, runs that
//! argv and lives in the current namespace of that name; anything else is replaced. (An adopted
//! daemon is not our child: when it dies, only a reaping init collects it. Here PID 1 does not
//! reap, so a dead adopted daemon stays a zombie; it is seen as dead and replaced.)

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::state::{ProcRecord, State};

#[derive(Debug, Default)]
pub struct Supervisor {
    children: Mutex<HashMap<String, Child>>,
}

/// (state, start time) of a live, non-zombie PID.
fn stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The inode of a process's network namespace.
fn proc_netns(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// The inode of a named namespace (`/run/netns/NAME`).
pub fn netns_inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{name}"))
        .ok()
        .map(|m| m.ino())
}

impl Supervisor {
    fn reap(&self, key: &str) {
        let mut children = self.children.lock();
        if let Some(c) = children.get_mut(key) {
            if let Ok(Some(_)) = c.try_wait() {
                children.remove(key);
            }
        }
    }

    /// Is the recorded process alive and still the one we started?
    pub fn alive(&self, key: &str, rec: &ProcRecord) -> bool {
        self.reap(key);
        match stat(rec.pid) {
            Some((state, start)) => state != 'Z' && state != 'X' && start == rec.start_time,
            None => false,
        }
    }

    /// Makes sure `key` runs `argv` in namespace `ns`. Returns a change description when it
    /// (re)started the process.
    pub fn ensure(
        &self,
        key: &str,
        ns: &str,
        argv: &[String],
        state: &mut State,
        log: Option<&Path>,
    ) -> Result<Option<String>> {
        let inode = netns_inode(ns).unwrap_or(0);
        if let Some(rec) = state.processes.get(key).cloned() {
            let same = rec.argv == argv
                && rec.netns_inode == inode
                && cmdline(rec.pid) == argv
                && proc_netns(rec.pid) == Some(inode);
            if self.alive(key, &rec) && same {
                return Ok(None);
            }
            let why = if self.alive(key, &rec) {
                "restart"
            } else {
                "start (was gone)"
            };
            self.stop(key, state);
            self.start(key, ns, argv, state, inode, log)?;
            return Ok(Some(format!("{why} {key}")));
        }
        self.start(key, ns, argv, state, inode, log)?;
        Ok(Some(format!("start {key}")))
    }

    fn start(
        &self,
        key: &str,
        ns: &str,
        argv: &[String],
        state: &mut State,
        inode: u64,
        log: Option<&Path>,
    ) -> Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Command(format!("starting {key} ({}): {e}", argv.join(" "))))?;
        let pid = child.id();
        // A bad configuration makes the daemon exit at once: catch it here, with its words.
        let deadline = Instant::now() + Duration::from_millis(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                if let Some(log) = log {
                    let tail = std::fs::read_to_string(log).unwrap_or_default();
                    let lines: Vec<&str> = tail.lines().rev().take(5).collect();
                    err.push_str(&lines.into_iter().rev().collect::<Vec<_>>().join("\n"));
                }
                return Err(Error::Command(format!(
                    "{key} exited at once ({status}): `{}`: {}",
                    argv.join(" "),
                    err.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Keep no pipe the daemon could block on.
        drop(child.stderr.take());
        let start_time = stat(pid).map(|s| s.1).unwrap_or(0);
        state.processes.insert(
            key.to_string(),
            ProcRecord {
                pid,
                start_time,
                argv: argv.to_vec(),
                netns_inode: inode,
            },
        );
        self.children.lock().insert(key.to_string(), child);
        tracing::info!(key, pid, "started helper");
        Ok(())
    }

    /// Sends a signal (SIGHUP: reload) to a live recorded process.
    pub fn signal(&self, key: &str, state: &State, sig: i32) -> bool {
        match state.processes.get(key) {
            Some(rec) if self.alive(key, rec) => unsafe { libc::kill(rec.pid as i32, sig) == 0 },
            _ => false,
        }
    }

    /// Stops a process (SIGTERM, 2 s, SIGKILL) and waits for it. Returns whether one ran.
    pub fn stop(&self, key: &str, state: &mut State) -> bool {
        let Some(rec) = state.processes.remove(key) else {
            return false;
        };
        let child = self.children.lock().remove(key);
        if !self.alive(key, &rec) {
            if let Some(mut c) = child {
                let _ = c.try_wait();
            }
            return false;
        }
        unsafe {
            libc::kill(rec.pid as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        match child {
            Some(mut c) => {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            None => {
                while Instant::now() < deadline {
                    // Reaps it if it happens to be our child (a netplane made again in the
                    // same process); otherwise ECHILD, harmless.
                    unsafe {
                        libc::waitpid(rec.pid as i32, std::ptr::null_mut(), libc::WNOHANG);
                    }
                    if !matches!(stat(rec.pid), Some((s, t)) if s != 'Z' && t == rec.start_time) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                unsafe {
                    libc::kill(rec.pid as i32, libc::SIGKILL);
                    libc::waitpid(rec.pid as i32, std::ptr::null_mut(), libc::WNOHANG);
                }
            }
        }
        true
    }

    /// Stops every child this object started (tests, shutdown). Adopted daemons are left alone.
    pub fn keys(&self) -> Vec<String> {
        self.children.lock().keys().cloned().collect()
    }
}

/// Stops processes that are not ours to wait for: SIGTERM, up to 2 s, then SIGKILL.
pub fn terminate(pids: &[i32]) {
    let alive = |pid: i32| matches!(stat(pid as u32), Some((s, _)) if s != 'Z');
    for &pid in pids {
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        for &pid in pids {
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
        }
    }
}
