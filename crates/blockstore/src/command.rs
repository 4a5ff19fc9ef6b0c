//! The one place external programs (`qemu-img`, `qemu-io`) are run.
//!
//! Blocking on purpose: the local backend calls it from `spawn_blocking`. Errors carry the whole
//! command line, the exit status and the program's stderr, which is where `qemu-img` explains
//! itself ("Failed to get "write" lock", "Could not open ...").

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Instant;

use tracing::debug;

use crate::error::{Error, Result};

/// Runs `program args...` to completion and returns its stdout.
pub fn run<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let command_line = || {
        let mut line = program.to_string();
        for arg in &args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    };
    let started = Instant::now();
    let output = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.to_string(),
            source,
        })?;
    debug!(
        command = %command_line(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        status = %output.status,
        "ran"
    );
    if !output.status.success() {
        return Err(Error::Command {
            command: command_line(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// True when a command failed because another process holds the image open (QEMU's image
/// locking: "Failed to get "write" lock" / "Failed to get shared "write" lock").
pub fn is_lock_conflict(error: &Error) -> bool {
    match error {
        Error::Command { stderr, .. } => {
            stderr.contains("Failed to get") && stderr.contains("lock")
        }
        _ => false,
    }
}

/// Turns a lock conflict into [`Error::InUse`] for `name`; other errors pass through.
pub fn lock_conflict_to_in_use(error: Error, name: &str) -> Error {
    if is_lock_conflict(&error) {
        Error::InUse {
            name: name.to_string(),
            reason: "its disk file is open in another process (a running VM?)".to_string(),
        }
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_stderr_and_status() {
        let error = run("sh", ["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("sh -c"), "{text}");
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
}
