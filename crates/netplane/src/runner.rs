//! The one place that runs `ip`, `bridge`, `nft` and `sysctl`.
//!
//! Why shell out instead of rtnetlink/nftables crates: iproute2 and nft are what the lab proved on
//! this kernel; their JSON output (`-j`) is a stable, complete view to observe from; `ip -n NS`
//! and `ip netns exec` handle namespaces without pinning a netlink socket to a thread per
//! namespace; taps need `ip tuntap` (rtnetlink cannot make them); and every failure carries the
//! exact command line an operator can run again. A command costs 2-7 ms here; an apply that
//! changes nothing runs a handful of them per namespace.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns<'a> {
    /// The host (or the host namespace of [`crate::Config::host_netns`]).
    Host,
    /// A named namespace (router, DHCP).
    Named(&'a str),
}

#[derive(Debug, Default)]
pub struct Runner {
    pub host_netns: Option<String>,
    /// Commands run (for the report and the benchmarks).
    pub commands: AtomicUsize,
    /// Commands that changed something (everything but reads).
    pub writes: AtomicUsize,
}

fn render(program: &str, args: &[String]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(a);
        }
    }
    s
}

impl Runner {
    pub fn new(host_netns: Option<String>) -> Runner {
        Runner {
            host_netns,
            ..Default::default()
        }
    }

    fn ns_name<'a>(&'a self, ns: Ns<'a>) -> Option<&'a str> {
        match ns {
            Ns::Host => self.host_netns.as_deref(),
            Ns::Named(n) => Some(n),
        }
    }

    /// Runs a program, returns its stdout. Errors carry the command line and stderr.
    pub fn run(&self, program: &str, args: &[String], stdin: Option<&str>) -> Result<String> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Missing {
                program: program.into(),
                hint: "install iproute2 and nftables (apt-get install -y iproute2 nftables)".into(),
            },
            _ => Error::Command(format!("`{}`: {e}", render(program, args))),
        })?;
        if let Some(input) = stdin {
            if let Some(mut s) = child.stdin.take() {
                s.write_all(input.as_bytes()).map_err(|e| {
                    Error::Command(format!("`{}`: writing stdin: {e}", render(program, args)))
                })?;
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Command(format!("`{}`: {e}", render(program, args))))?;
        tracing::debug!(cmd = %render(program, args), ms = started.elapsed().as_secs_f64() * 1e3, "ran");
        if !out.status.success() {
            let mut msg = format!(
                "`{}` failed ({}): {}",
                render(program, args),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            if let Some(input) = stdin {
                let shown: String = input.chars().take(4000).collect();
                msg.push_str(&format!("\n--- input ---\n{shown}"));
            }
            return Err(Error::Command(msg));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// `ip [-n NS] ARGS` (a read).
    pub fn ip_read(&self, ns: Ns, args: &[&str]) -> Result<String> {
        let mut a = Vec::new();
        if let Some(n) = self.ns_name(ns) {
            a.extend(["-n".to_string(), n.to_string()]);
        }
        a.extend(Self::args(args));
        self.run("ip", &a, None)
    }

    /// `ip [-n NS] ARGS` (a change).
    pub fn ip(&self, ns: Ns, args: &[&str]) -> Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.ip_read(ns, args).map(|_| ())
    }

    /// `ip ARGS` in the caller's namespace (namespace creation and deletion: `ip -n X netns add`
    /// would mount the new namespace inside a private mount namespace).
    pub fn ip_global(&self, args: &[&str]) -> Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.run("ip", &Self::args(args), None).map(|_| ())
    }

    pub fn ip_json_global(&self, args: &[&str]) -> Result<Vec<serde_json::Value>> {
        let mut a = vec!["-j".to_string()];
        a.extend(Self::args(args));
        parse_array(&self.run("ip", &a, None)?)
    }

    /// `bridge [-n HOSTNS] ARGS` on the host.
    pub fn bridge_read(&self, args: &[&str]) -> Result<String> {
        let mut a = Vec::new();
        if let Some(n) = self.ns_name(Ns::Host) {
            a.extend(["-n".to_string(), n.to_string()]);
        }
        a.extend(Self::args(args));
        self.run("bridge", &a, None)
    }

    pub fn bridge(&self, args: &[&str]) -> Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bridge_read(args).map(|_| ())
    }

    /// A program inside a namespace (`ip netns exec NS PROGRAM ARGS`), or directly on the host.
    pub fn exec_in(
        &self,
        ns: Ns,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String> {
        match self.ns_name(ns) {
            Some(n) => {
                let mut a = Self::args(&["netns", "exec", n, program]);
                a.extend(Self::args(args));
                self.run("ip", &a, stdin)
            }
            None => self.run(program, &Self::args(args), stdin),
        }
    }

    /// Applies an nft script (one atomic transaction).
    pub fn nft_apply(&self, ns: Ns, script: &str) -> Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.exec_in(ns, "nft", &["-f", "-"], Some(script))
            .map(|_| ())
    }

    /// `nft -j list ...`.
    pub fn nft_json(&self, ns: Ns, args: &[&str]) -> Result<serde_json::Value> {
        let mut a = vec!["-j", "list"];
        a.extend_from_slice(args);
        let out = self.exec_in(ns, "nft", &a, None)?;
        if out.trim().is_empty() {
            return Ok(serde_json::json!({"nftables": []}));
        }
        serde_json::from_str(&out)
            .map_err(|e| Error::Command(format!("nft -j list: unreadable JSON: {e}")))
    }

    /// Sets sysctls (`key=value`) in a namespace.
    pub fn sysctl(&self, ns: Ns, settings: &[String]) -> Result<()> {
        if settings.is_empty() {
            return Ok(());
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut a: Vec<&str> = vec!["-q", "-w"];
        a.extend(settings.iter().map(String::as_str));
        self.exec_in(ns, "sysctl", &a, None).map(|_| ())
    }

    /// Reads a JSON array from `ip -j ...` (empty output is an empty array).
    pub fn ip_json(&self, ns: Ns, args: &[&str]) -> Result<Vec<serde_json::Value>> {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let out = self.ip_read(ns, &a)?;
        parse_array(&out)
    }

    pub fn bridge_json(&self, args: &[&str]) -> Result<Vec<serde_json::Value>> {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let out = self.bridge_read(&a)?;
        parse_array(&out)
    }
}

fn parse_array(out: &str) -> Result<Vec<serde_json::Value>> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(out) {
        Ok(serde_json::Value::Array(a)) => Ok(a),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(Error::Command(format!(
            "unreadable JSON from iproute2: {e}"
        ))),
    }
}
