//! The one place external programs are started.
//!
//! * [`run`]: a command that runs to completion (`qemu-system-x86_64 --version`, `qemu-img`).
//!   Errors carry the whole command line, the exit status and stderr.
//! * [`launch_detached`]: a long-lived process (QEMU) that must outlive the agent. It gets its own
//!   session (`setsid`, so no terminal signal and no process-group kill from the agent's shell
//!   reaches it), stdin from `/dev/null`, and stdout + stderr appended to a log file (never a pipe:
//!   a pipe to a dead agent would kill it with `SIGPIPE` at its next warning). It stays a child
//!   of the calling process, so the caller can reap it; if the caller dies, it is re-parented
//!   and keeps running. [`launch_detached_in`] starts it inside another network namespace
//!   (`setns` between fork and exec; the mount namespace, and so every path, stays the caller's).
//! * [`log_tail`]: what goes into errors about such a process.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use tracing::debug;

use crate::error::{Error, Result};

fn command_line(program: &OsStr, args: &[std::ffi::OsString]) -> String {
    let mut line = program.to_string_lossy().into_owned();
    for arg in args {
        line.push(' ');
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        } else {
            line.push_str(&arg);
        }
    }
    line
}

/// Runs `program args...` to completion (blocking; call it from `spawn_blocking` in async code)
/// and returns its stdout.
pub fn run<P, I, S>(program: P, args: I) -> Result<String>
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let started = Instant::now();
    let output = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    debug!(
        command = %command_line(program, &args),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        status = %output.status,
        "ran"
    );
    if !output.status.success() {
        return Err(Error::Command {
            command: command_line(program, &args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Starts `program args...` in its own session with stdout and stderr appended to `log`, and
/// returns at once. A header line with the command line is appended to `log` first, so that
/// [`log_tail`] of a failed start shows the command and what the program said about it.
pub fn launch_detached<P, I, S>(program: P, args: I, log: &Path) -> Result<Child>
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    launch_detached_in(program, args, log, None)
}

/// [`launch_detached`], with the program in the network namespace of the file `netns`
/// (`/run/netns/NAME`, `/proc/PID/ns/net`) when given: it sees that namespace's interfaces
/// (QEMU opens its taps there) and nothing else changes. Entering a namespace needs
/// `CAP_SYS_ADMIN`; a file that is missing or not a network namespace is an error, and no
/// process is started.
pub fn launch_detached_in<P, I, S>(
    program: P,
    args: I,
    log: &Path,
    netns: Option<&Path>,
) -> Result<Child>
where
    P: AsRef<OsStr>,
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use std::io::Write;
    use std::os::fd::AsRawFd;

    let program = program.as_ref();
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let line = command_line(program, &args);
    // Opened here, not in the child (no allocation between fork and exec); close-on-exec, so
    // the program does not inherit it.
    let netns_file = match netns {
        Some(path) => Some(
            std::fs::File::open(path)
                .map_err(|e| Error::io("opening network namespace", path, e))?,
        ),
        None => None,
    };
    let netns_fd = netns_file.as_ref().map(|f| f.as_raw_fd());
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io("opening log", log, e))?;
    let place = match netns {
        Some(path) => format!("[netns {}] ", path.display()),
        None => String::new(),
    };
    writeln!(file, "{LAUNCH_MARK}{place}{line}").map_err(|e| Error::io("writing log", log, e))?;
    let stderr = file
        .try_clone()
        .map_err(|e| Error::io("opening log", log, e))?;
    let mut command = Command::new(program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr);
    // SAFETY: setsid() and setns() are async-signal-safe system calls and touch no memory of
    // the parent; the namespace's fd stays open in the parent until spawn() returns.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| Error::Spawn {
        program: match netns {
            Some(path) => format!(
                "{} (in network namespace {})",
                program.to_string_lossy(),
                path.display()
            ),
            None => program.to_string_lossy().into_owned(),
        },
        source,
    })?;
    drop(netns_file);
    debug!(pid = child.id(), command = %line, "launched");
    Ok(child)
}

/// Marks the start of one launch in a log written by [`launch_detached`].
pub const LAUNCH_MARK: &str = "=== nubo launch: ";

/// What the program said since its latest launch: the lines after the last [`LAUNCH_MARK`]
/// header (the header itself, a long command line, is left out), at most `max_bytes` of them
/// from the end. Never fails: a missing or unreadable file, or a silent program, gives a note.
pub fn log_tail(path: &Path, max_bytes: usize) -> String {
    // Read more than asked, to find the header of the latest launch.
    match tail_bytes(path, max_bytes as u64 + 16 * 1024) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut text = match text.rfind(LAUNCH_MARK) {
                Some(at) => match text[at..].find('\n') {
                    Some(end) => text[at + end + 1..].to_string(),
                    None => String::new(),
                },
                None => text,
            };
            if text.len() > max_bytes {
                let mut cut = text.len() - max_bytes;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                // Start at a line boundary when there is one.
                if let Some(newline) = text[cut..].find('\n') {
                    cut += newline + 1;
                }
                text.drain(..cut);
            }
            let text = text.trim().to_string();
            if text.is_empty() {
                "(no output)".to_string()
            } else {
                text
            }
        }
        Err(e) => format!("({} unreadable: {e})", path.display()),
    }
}

/// The last `max_bytes` bytes of a file.
pub fn tail_bytes(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.take(max_bytes).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_stderr_and_status() {
        let error = run("sh", ["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("sh -c 'echo oops >&2; exit 3'"), "{text}");
        assert!(text.contains("oops"), "{text}");
        assert!(text.contains('3'), "{text}");
    }

    #[test]
    fn missing_program() {
        let error = run("nubo-no-such-program", ["x"]).unwrap_err();
        assert!(matches!(error, Error::Spawn { .. }), "{error}");
    }

    #[test]
    fn returns_stdout() {
        assert_eq!(run("echo", ["hi"]).unwrap(), "hi\n");
    }

    #[test]
    fn detached_gets_own_session_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("p.log");
        std::fs::write(&log, "old run\n").unwrap();
        let mut child = launch_detached(
            "sh",
            ["-c", "echo out; echo err >&2; cut -d' ' -f6 /proc/$$/stat"],
            &log,
        )
        .unwrap();
        let pid = child.id();
        assert!(child.wait().unwrap().success());
        let tail = log_tail(&log, 4096);
        assert!(!tail.contains(LAUNCH_MARK), "{tail}");
        assert!(!tail.contains("old run"), "{tail}");
        assert!(tail.contains("out") && tail.contains("err"), "{tail}");
        // The session id is the child's own pid: setsid() worked.
        let sid: u32 = tail.lines().last().unwrap().trim().parse().unwrap();
        assert_eq!(sid, pid);
    }

    #[test]
    fn detached_in_a_network_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        // A missing namespace: an error naming it, and nothing started.
        let missing = Path::new("/run/netns/nubo-no-such-namespace");
        let error = launch_detached_in("true", ["x"], &log, Some(missing)).unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error}");
        assert!(
            error.to_string().contains("nubo-no-such-namespace"),
            "{error}"
        );
        assert!(!log.exists());
        // Not a namespace file: setns() refuses it (EINVAL, or EPERM without root).
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let error = launch_detached_in("true", ["x"], &log, Some(&plain)).unwrap_err();
        assert!(matches!(error, Error::Spawn { .. }), "{error}");
        assert!(error.to_string().contains("network namespace"), "{error}");
        // This process's own namespace (no new one made): entered as root, refused (EPERM)
        // without CAP_SYS_ADMIN.
        let own = Path::new("/proc/self/ns/net");
        let ours = std::fs::read_link(own).unwrap();
        match launch_detached_in("readlink", ["/proc/self/ns/net"], &log, Some(own)) {
            Ok(mut child) => {
                assert!(child.wait().unwrap().success());
                assert_eq!(log_tail(&log, 4096), ours.to_string_lossy());
                let text = std::fs::read_to_string(&log).unwrap();
                assert!(
                    text.contains("[netns /proc/self/ns/net] readlink"),
                    "{text}"
                );
            }
            Err(error) => assert!(matches!(error, Error::Spawn { .. }), "{error}"),
        }
    }

    #[test]
    fn tail_of_missing_file_is_a_note() {
        assert!(log_tail(Path::new("/nonexistent/x.log"), 10).contains("unreadable"));
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("q.log");
        std::fs::write(&log, format!("{LAUNCH_MARK}qemu -x\n")).unwrap();
        assert_eq!(log_tail(&log, 100), "(no output)");
        std::fs::write(&log, format!("{LAUNCH_MARK}qemu -x\nline one\nline two\n")).unwrap();
        assert_eq!(log_tail(&log, 100), "line one\nline two");
        assert_eq!(log_tail(&log, 10), "line two");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(tail_bytes(&path, 4).unwrap(), b"6789");
        assert_eq!(tail_bytes(&path, 40).unwrap(), b"0123456789");
    }
}
