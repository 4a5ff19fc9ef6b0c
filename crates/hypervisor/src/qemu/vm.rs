//! The task that owns one VM: its spec, its power-state record, its QEMU process and QMP
//! connection. Callers send it [`Cmd`]s and wait for the reply; it applies them one at a time
//! and, between commands, reacts to QEMU on its own (the guest powered off, QEMU died).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn, Instrument};

use super::args::{self, Options, Paths};
use super::runtime::{self, ProcWatch, Record, Recorded, VmDir};
use super::{Ctx, Registry};
use crate::error::{Error, Result};
use crate::host::resolve_accel;
use crate::qmp::{Qmp, QmpEvent};
use crate::runner;
use crate::types::{Accel, Disk, NicSpec, PowerAction, PowerState, VmId, VmSpec, VmStatus};

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// What callers ask of a VM's task.
pub(crate) enum Cmd {
    Status(Reply<VmStatus>),
    Power(PowerAction, Reply<VmStatus>),
    AttachDisk(Disk, Reply<()>),
    DetachDisk(String, Reply<()>),
    AttachNic(NicSpec, Reply<()>),
    DetachNic(String, Reply<()>),
    ResizeDisk(String, u64, Reply<()>),
    Destroy(Reply<()>),
}

/// The caller's side of a VM's task.
#[derive(Clone)]
pub(crate) struct VmHandle {
    pub tx: mpsc::Sender<Cmd>,
    /// Bumped by `destroy` to interrupt the operation in progress.
    pub cancel: Arc<watch::Sender<u64>>,
    /// The serial console file (read directly by `console_log`, without bothering the task).
    pub console: std::path::PathBuf,
    /// Tells this task apart from a later one for the same id.
    pub generation: u64,
}

/// A live QEMU process.
struct Proc {
    watch: Arc<ProcWatch>,
    qmp: Option<Qmp>,
    accel: Accel,
}

pub(crate) struct Vm {
    id: VmId,
    dir: VmDir,
    spec: VmSpec,
    record: Record,
    proc: Option<Proc>,
    /// Events of the current QMP connection, watched between commands.
    events: Option<broadcast::Receiver<QmpEvent>>,
    ctx: Arc<Ctx>,
    registry: Weak<Registry>,
    cancel: watch::Receiver<u64>,
    generation: u64,
}

/// How a VM's task starts.
pub(crate) enum Start {
    /// A new VM: launch QEMU first, reply, and exit (cleaning up) if that fails.
    Spawn(Reply<VmStatus>),
    /// A VM found on the host: `pid` is its QEMU if one is still running.
    Adopt { pid: Option<u32> },
}

const CHANNEL_DEPTH: usize = 64;

impl Vm {
    /// Starts the task of one VM and returns its handle.
    pub(crate) fn start(
        ctx: Arc<Ctx>,
        registry: Weak<Registry>,
        spec: VmSpec,
        record: Record,
        generation: u64,
        start: Start,
    ) -> VmHandle {
        let dir = VmDir::new(&ctx.config.runtime_dir, spec.id);
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let (cancel_tx, cancel_rx) = watch::channel(0u64);
        let handle = VmHandle {
            tx,
            cancel: Arc::new(cancel_tx),
            console: dir.console(&spec),
            generation,
        };
        let span = tracing::info_span!("vm", vm_id = %spec.id);
        let vm = Vm {
            id: spec.id,
            dir,
            spec,
            record,
            proc: None,
            events: None,
            ctx,
            registry,
            cancel: cancel_rx,
            generation,
        };
        tokio::spawn(vm.run(start, rx).instrument(span));
        handle
    }

    async fn run(mut self, start: Start, mut rx: mpsc::Receiver<Cmd>) {
        match start {
            Start::Spawn(reply) => {
                let result = self.spawn().await;
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    return;
                }
            }
            Start::Adopt { pid } => self.adopt(pid).await,
        }
        loop {
            let exited = wait_exit(self.proc.as_ref().map(|p| p.watch.clone()));
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else {
                        // The driver was dropped: leave QEMU running for the next agent.
                        debug!("driver gone; leaving the VM as it is");
                        break;
                    };
                    if self.handle(cmd).await {
                        break;
                    }
                }
                () = exited => self.on_exit().await,
                event = recv_event(&mut self.events) => self.on_event(event).await,
            }
        }
    }

    // ---- start-up ----------------------------------------------------------------------

    async fn spawn(&mut self) -> Result<VmStatus> {
        let result = async {
            std::fs::create_dir(&self.dir.path)
                .map_err(|e| Error::io("creating", &self.dir.path, e))?;
            runtime::write_json(&self.dir.spec(), &self.spec)?;
            self.launch().await?;
            Ok(self.observe().await)
        }
        .await;
        if let Err(error) = &result {
            warn!(error = %error, "spawn failed; cleaning up");
            self.kill_process().await;
            if let Err(e) = runtime::remove_dir_all(&self.dir.path) {
                warn!(error = %e, "could not remove the runtime dir of a failed spawn");
            }
            self.deregister();
        }
        result
    }

    async fn adopt(&mut self, pid: Option<u32>) {
        if let Some(pid) = pid {
            let accel = runtime::cmdline(pid)
                .windows(2)
                .find(|w| w[0] == "-accel")
                .map(|w| {
                    if w[1].starts_with("kvm") {
                        Accel::Kvm
                    } else {
                        Accel::Tcg
                    }
                })
                .unwrap_or(Accel::Tcg);
            self.proc = Some(Proc {
                watch: Arc::new(ProcWatch::open(pid)),
                qmp: None,
                accel,
            });
            match self.qmp().await {
                Ok(_) => info!(pid, "adopted a running VM"),
                Err(e) => warn!(pid, error = %e, "adopted a running VM whose QMP does not answer"),
            }
            // A guest that powered off while no agent watched sits in runstate "shutdown".
            let status = self.observe().await;
            debug!(state = %status.power_state, "adopted");
        } else {
            info!(state = ?self.record.state, "adopted a VM without a QEMU process");
        }
    }

    // ---- the command loop --------------------------------------------------------------

    /// Applies one command; true when the task must end (the VM is destroyed).
    async fn handle(&mut self, cmd: Cmd) -> bool {
        self.check_exit().await;
        if let Cmd::Destroy(reply) = cmd {
            // Seen: later commands are not cancelled by this destroy.
            self.cancel.borrow_and_update();
            let result = self.destroy().await;
            let done = result.is_ok();
            let _ = reply.send(result);
            return done;
        }
        // A destroy is queued behind this command: do not start anything long.
        let cancelled = self.cancel.has_changed().unwrap_or(false);
        let id = self.id;
        macro_rules! answer {
            ($reply:expr, $work:expr) => {{
                let result = if cancelled {
                    Err(Error::Cancelled { id })
                } else {
                    $work
                };
                let _ = $reply.send(result);
            }};
        }
        match cmd {
            Cmd::Status(reply) => {
                let status = self.observe().await;
                let _ = reply.send(Ok(status));
            }
            Cmd::Power(action, reply) => answer!(reply, self.power(action).await),
            Cmd::AttachDisk(disk, reply) => answer!(reply, self.attach_disk(disk).await),
            Cmd::DetachDisk(disk_id, reply) => answer!(reply, self.detach_disk(&disk_id).await),
            Cmd::AttachNic(nic, reply) => answer!(reply, self.attach_nic(nic).await),
            Cmd::DetachNic(nic_id, reply) => answer!(reply, self.detach_nic(&nic_id).await),
            Cmd::ResizeDisk(disk_id, size, reply) => {
                answer!(reply, self.resize_disk(&disk_id, size).await)
            }
            Cmd::Destroy(_) => unreachable!("handled above"),
        }
        false
    }

    async fn on_exit(&mut self) {
        let how = self.reap().await;
        if self.record.state != Recorded::Shutdown && self.record.state != Recorded::Crashed {
            let tail = runner::log_tail(&self.dir.qemu_log(), 1500);
            let reason = format!("QEMU exited unexpectedly ({how}); QEMU said: {tail}");
            warn!(%reason, "VM crashed");
            self.set_record_logged(Recorded::Crashed, Some(reason));
        } else {
            debug!(%how, "QEMU exited");
        }
    }

    async fn on_event(&mut self, event: Option<QmpEvent>) {
        let Some(event) = event else {
            // Missed events: look at the state instead.
            self.observe().await;
            return;
        };
        match event.name.as_str() {
            "SHUTDOWN" if event.data["guest"] == json!(true) => {
                // The guest powered off (or a soft reboot in progress did it: then the runstate
                // is running again and observe() does nothing).
                self.observe().await;
            }
            "GUEST_PANICKED" => {
                warn!(data = %event.data, "guest panicked");
                self.set_record_logged(
                    Recorded::Crashed,
                    Some(format!("the guest kernel panicked ({})", event.data)),
                );
                self.kill_process().await;
            }
            _ => {}
        }
    }

    // ---- observation -------------------------------------------------------------------

    /// Notices a QEMU that exited since we last looked.
    async fn check_exit(&mut self) {
        if self.proc.as_ref().is_some_and(|p| !p.watch.is_alive()) {
            self.on_exit().await;
        }
    }

    /// The status as of now. A guest found powered off (runstate `shutdown`, kept by
    /// `-no-shutdown`) is finished here: recorded as shut down and its QEMU told to quit.
    async fn observe(&mut self) -> VmStatus {
        self.check_exit().await;
        let mut status = VmStatus::from_spec(&self.spec, PowerState::Shutdown);
        let Some(proc) = &self.proc else {
            match self.record.state {
                Recorded::Shutdown => {
                    status.reason = self.record.reason.clone();
                }
                _ => {
                    status.power_state = PowerState::Crashed;
                    status.reason = Some(
                        self.record
                            .reason
                            .clone()
                            .unwrap_or_else(|| "QEMU is not running".into()),
                    );
                }
            }
            return status;
        };
        status.pid = Some(proc.watch.pid());
        status.accel = Some(proc.accel);
        let runstate = match self.qmp().await {
            Ok(qmp) => qmp.execute("query-status", None).await,
            Err(e) => Err(e),
        };
        match runstate {
            Ok(value) => {
                let runstate = value["status"].as_str().unwrap_or("").to_string();
                if runstate == "shutdown" {
                    info!("the guest powered off");
                    self.set_record_logged(
                        Recorded::Shutdown,
                        Some("the guest powered off".into()),
                    );
                    self.kill_process().await;
                    status.pid = None;
                    status.accel = None;
                    status.reason = self.record.reason.clone();
                    return status;
                }
                let (state, reason) = map_runstate(&runstate, self.record.state);
                status.power_state = state;
                status.reason = reason;
            }
            Err(e) => {
                status.power_state = PowerState::NoState;
                status.reason = Some(format!("QEMU runs but its monitor does not answer: {e}"));
            }
        }
        status
    }

    /// The QMP connection, (re)connecting if needed. Only when a process runs.
    async fn qmp(&mut self) -> Result<Qmp> {
        let Some(proc) = self.proc.as_mut() else {
            return Err(Error::InvalidState {
                id: self.id,
                state: PowerState::Shutdown,
                action: "talk to QEMU",
            });
        };
        if let Some(qmp) = &proc.qmp {
            if !qmp.is_closed() {
                return Ok(qmp.clone());
            }
        }
        let qmp = Qmp::connect(
            &self.dir.qmp(),
            Duration::from_secs(5),
            self.ctx.config.command_timeout,
        )
        .await?;
        self.events = Some(qmp.events());
        proc.qmp = Some(qmp.clone());
        Ok(qmp)
    }

    /// The QMP connection when the VM has a live QEMU, for hot-plug; `None` when there is no
    /// process (the change then only goes into the spec). Unplugging needs the guest's help, so
    /// with `needs_guest` a paused or suspended VM is refused instead of waited on in vain.
    async fn live(&mut self, action: &'static str, needs_guest: bool) -> Result<Option<Qmp>> {
        let status = self.observe().await;
        match status.power_state {
            PowerState::Shutdown | PowerState::Crashed => Ok(None),
            PowerState::Running => self.qmp().await.map(Some),
            PowerState::Paused | PowerState::Suspended if !needs_guest => {
                self.qmp().await.map(Some)
            }
            state => Err(Error::InvalidState {
                id: self.id,
                state,
                action,
            }),
        }
    }

    // ---- process control ---------------------------------------------------------------

    /// Starts QEMU for the current spec and waits for its QMP socket.
    async fn launch(&mut self) -> Result<()> {
        let config = &self.ctx.config;
        let mode = match self.spec.accel {
            crate::types::AccelMode::Auto => config.accel,
            mode => mode,
        };
        let accel = resolve_accel(mode, self.ctx.kvm)?;
        let console = self.dir.console(&self.spec);
        rotate_console(&console, config.console_rotate_bytes);
        runtime::remove_file(&self.dir.qmp());
        runtime::remove_file(&self.dir.pidfile());
        let qmp_path = self.dir.qmp();
        let pidfile = self.dir.pidfile();
        let args = args::command_line(
            &self.spec,
            accel,
            &Paths {
                qmp: &qmp_path,
                pidfile: &pidfile,
                console: &console,
            },
            &Options {
                sandbox: config.sandbox,
            },
        );
        let started = Instant::now();
        let netns = config.netns_path();
        let child = runner::launch_detached_in(
            &config.qemu_binary,
            &args,
            &self.dir.qemu_log(),
            netns.as_deref(),
        )?;
        let pid = child.id();
        // Reaped by pid (ProcWatch::reap): dropping a std Child neither kills nor waits.
        drop(child);
        let watch = Arc::new(ProcWatch::open(pid));
        let qmp = match self.wait_qmp(&watch, started).await {
            Ok(qmp) => qmp,
            Err(e) => {
                watch.signal(libc::SIGKILL);
                watch.wait_exit(Duration::from_secs(10)).await;
                watch.reap(Duration::from_secs(5)).await;
                runtime::remove_file(&qmp_path);
                runtime::remove_file(&pidfile);
                return Err(e);
            }
        };
        info!(
            pid,
            accel = %accel,
            qmp_ready_ms = started.elapsed().as_millis() as u64,
            "QEMU started"
        );
        self.events = Some(qmp.events());
        self.proc = Some(Proc {
            watch,
            qmp: Some(qmp),
            accel,
        });
        self.set_record(Recorded::Running, None)?;
        Ok(())
    }

    async fn wait_qmp(&mut self, watch: &ProcWatch, started: Instant) -> Result<Qmp> {
        let config = self.ctx.config.clone();
        let path = self.dir.qmp();
        let deadline = started + config.qmp_timeout;
        loop {
            if !watch.is_alive() {
                let status = watch.reap(Duration::from_secs(5)).await;
                return Err(Error::Exited {
                    program: config.qemu_binary.display().to_string(),
                    status,
                    context: "while starting".into(),
                    log_tail: runner::log_tail(&self.dir.qemu_log(), 4000),
                });
            }
            if self.cancel.has_changed().unwrap_or(false) {
                return Err(Error::Cancelled { id: self.id });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "QEMU's QMP socket {} (QEMU log: {})",
                        path.display(),
                        runner::log_tail(&self.dir.qemu_log(), 1000)
                    ),
                    after: config.qmp_timeout,
                });
            }
            if path.exists() {
                match Qmp::connect(&path, Duration::from_secs(2), config.command_timeout).await {
                    Ok(qmp) => return Ok(qmp),
                    Err(e) => debug!(error = %e, "QMP not ready yet"),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends the QEMU process, if any: QMP `quit`, then SIGTERM, then SIGKILL. Reaps it.
    async fn kill_process(&mut self) {
        let Some(proc) = &self.proc else {
            return;
        };
        let watch = proc.watch.clone();
        let quit_timeout = self.ctx.config.quit_timeout;
        if let Some(qmp) = proc.qmp.clone() {
            if let Err(e) = qmp
                .execute_with_timeout("quit", None, Duration::from_secs(2))
                .await
            {
                debug!(error = %e, "QMP quit failed");
            }
        }
        if !watch.wait_exit(quit_timeout).await {
            warn!(pid = watch.pid(), "QEMU did not quit; SIGTERM");
            watch.signal(libc::SIGTERM);
            if !watch.wait_exit(Duration::from_secs(2)).await {
                warn!(pid = watch.pid(), "QEMU ignored SIGTERM; SIGKILL");
                watch.signal(libc::SIGKILL);
                watch.wait_exit(Duration::from_secs(10)).await;
            }
        }
        self.reap().await;
    }

    /// Forgets an exited process: reaps it (if it is our child) and removes its socket and
    /// pidfile. Returns how it ended.
    async fn reap(&mut self) -> String {
        let Some(proc) = self.proc.take() else {
            return "no process".into();
        };
        self.events = None;
        runtime::remove_file(&self.dir.qmp());
        runtime::remove_file(&self.dir.pidfile());
        proc.watch.reap(Duration::from_secs(5)).await
    }

    fn set_record(&mut self, state: Recorded, reason: Option<String>) -> Result<()> {
        let record = Record::new(state, reason);
        runtime::write_json(&self.dir.record(), &record)?;
        self.record = record;
        Ok(())
    }

    /// `set_record` where there is nobody to return the error to.
    fn set_record_logged(&mut self, state: Recorded, reason: Option<String>) {
        if let Err(e) = self.set_record(state, reason.clone()) {
            warn!(error = %e, "could not write the state record");
            self.record = Record::new(state, reason);
        }
    }

    fn deregister(&self) {
        if let Some(registry) = self.registry.upgrade() {
            let mut vms = registry.vms.lock();
            if vms.get(&self.id).map(|h| h.generation) == Some(self.generation) {
                vms.remove(&self.id);
            }
        }
    }

    async fn destroy(&mut self) -> Result<()> {
        self.set_record_logged(Recorded::Shutdown, Some("destroyed".into()));
        self.kill_process().await;
        runtime::remove_dir_all(&self.dir.path)?;
        self.deregister();
        info!("destroyed");
        Ok(())
    }

    // ---- power -------------------------------------------------------------------------

    async fn power(&mut self, action: PowerAction) -> Result<VmStatus> {
        let state = self.observe().await.power_state;
        let invalid = |id| Error::InvalidState {
            id,
            state,
            action: action.name(),
        };
        use PowerState::*;
        match (action, state) {
            (PowerAction::Start, Running) => {}
            (PowerAction::Start, Shutdown | Crashed) => {
                self.kill_process().await;
                self.launch().await?;
            }
            (PowerAction::Stop { timeout }, Running) => {
                if !self.acpi_powerdown(timeout).await? {
                    warn!(?timeout, "the guest did not power off; pulling the plug");
                }
                self.hard_stop(None).await?;
            }
            (PowerAction::Stop { .. } | PowerAction::HardStop, Shutdown) => {}
            (PowerAction::Stop { .. } | PowerAction::HardStop, _) => self.hard_stop(None).await?,
            (PowerAction::SoftReboot { timeout }, Running) => {
                if self.acpi_powerdown(timeout).await? && self.proc.is_some() {
                    let qmp = self.qmp().await?;
                    qmp.execute("system_reset", None).await?;
                    qmp.execute("cont", None).await?;
                    self.set_record(Recorded::Running, None)?;
                    info!("soft rebooted");
                } else {
                    warn!("soft reboot: the guest did not power off (or QEMU exited); hard reboot");
                    self.hard_reboot().await?;
                }
            }
            (PowerAction::SoftReboot { .. } | PowerAction::HardReboot, _) => {
                self.hard_reboot().await?
            }
            (PowerAction::Pause, Running) => {
                self.qmp().await?.execute("stop", None).await?;
            }
            (PowerAction::Pause, Paused) => {}
            (PowerAction::Unpause, Paused) => {
                self.qmp().await?.execute("cont", None).await?;
            }
            (PowerAction::Unpause | PowerAction::Resume, Running) => {}
            (PowerAction::Suspend, Running | Paused) => {
                if state == Running {
                    self.qmp().await?.execute("stop", None).await?;
                }
                self.set_record(Recorded::Suspended, None)?;
            }
            (PowerAction::Suspend, Suspended) => {}
            (PowerAction::Resume, Suspended) => {
                self.qmp().await?.execute("cont", None).await?;
                self.set_record(Recorded::Running, None)?;
            }
            _ => return Err(invalid(self.id)),
        }
        let status = self.observe().await;
        debug!(action = action.name(), state = %status.power_state, "power action done");
        Ok(status)
    }

    async fn hard_stop(&mut self, reason: Option<String>) -> Result<()> {
        self.set_record(Recorded::Shutdown, reason)?;
        self.kill_process().await;
        Ok(())
    }

    async fn hard_reboot(&mut self) -> Result<()> {
        self.hard_stop(None).await?;
        self.launch().await
    }

    /// Presses the ACPI power button (again every `powerdown_retry`) until the guest powers off
    /// or `timeout` passes. True when it powered off (or QEMU exited).
    async fn acpi_powerdown(&mut self, timeout: Duration) -> Result<bool> {
        let qmp = self.qmp().await?;
        let watch = match &self.proc {
            Some(proc) => proc.watch.clone(),
            None => return Ok(true),
        };
        let mut events = qmp.events();
        qmp.execute("system_powerdown", None).await?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let retry = self.ctx.config.powerdown_retry;
        let mut next_press = tokio::time::Instant::from_std(started + retry);
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => {
                    if let Ok(event) = event {
                        if event.name == "SHUTDOWN" {
                            info!(elapsed_ms = started.elapsed().as_millis() as u64, "the guest powered off");
                            return Ok(true);
                        }
                    }
                }
                () = watch.exited() => return Ok(true),
                _ = poll.tick() => {
                    if let Ok(value) = qmp.execute("query-status", None).await {
                        if value["status"] == "shutdown" {
                            return Ok(true);
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline.min(next_press)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                    debug!("pressing the power button again");
                    let _ = qmp.execute("system_powerdown", None).await;
                    next_press += retry;
                }
                _ = self.cancel.changed() => return Err(Error::Cancelled { id: self.id }),
            }
        }
    }

    // ---- devices -----------------------------------------------------------------------

    fn save_spec(&self) -> Result<()> {
        runtime::write_json(&self.dir.spec(), &self.spec)
    }

    async fn attach_disk(&mut self, disk: Disk) -> Result<()> {
        disk.validate()?;
        if let Some(existing) = self.spec.disk(&disk.id) {
            return if *existing == disk {
                Ok(())
            } else {
                Err(Error::Conflict {
                    id: self.id,
                    reason: format!("disk {} is attached with another spec", disk.id),
                })
            };
        }
        if let Some(qmp) = self.live("attach a disk to", false).await? {
            let node = args::node_name(&disk.id);
            if !block_nodes(&qmp).await?.contains(&node) {
                qmp.execute("blockdev-add", Some(args::blockdev(&node, &disk.spec)))
                    .await?;
            }
            let device_id = args::disk_device_id(&disk.id);
            if !peripherals(&qmp).await?.contains(&device_id) {
                let device = Value::Object(args::disk_device(&disk, None));
                if let Err(e) = qmp.execute("device_add", Some(device)).await {
                    let _ = qmp
                        .execute("blockdev-del", Some(json!({ "node-name": node })))
                        .await;
                    return Err(e);
                }
            }
            info!(disk = %disk.id, "disk hot-plugged");
        }
        self.spec.disks.push(disk);
        self.save_spec()
    }

    async fn detach_disk(&mut self, disk_id: &str) -> Result<()> {
        if disk_id == self.spec.boot_disk.id {
            return Err(Error::InvalidRequest {
                id: self.id,
                reason: format!("disk {disk_id} is the boot disk"),
            });
        }
        let in_spec = self.spec.disks.iter().any(|d| d.id == disk_id);
        // Not attached: done, unless QEMU might still hold it (an attach interrupted before the
        // spec was saved), which only a running guest can give back.
        if !in_spec && self.observe().await.power_state != PowerState::Running {
            return Ok(());
        }
        if let Some(qmp) = self.live("detach a disk from", true).await? {
            let device_id = args::disk_device_id(disk_id);
            if peripherals(&qmp).await?.contains(&device_id) {
                self.unplug(&qmp, &device_id).await?;
            }
            let node = args::node_name(disk_id);
            if block_nodes(&qmp).await?.contains(&node) {
                qmp.execute("blockdev-del", Some(json!({ "node-name": node })))
                    .await?;
            }
            info!(disk = %disk_id, "disk unplugged");
        }
        if let Some(at) = self.spec.disks.iter().position(|d| d.id == disk_id) {
            self.spec.disks.remove(at);
            self.save_spec()?;
        }
        Ok(())
    }

    async fn attach_nic(&mut self, nic: NicSpec) -> Result<()> {
        nic.validate()?;
        if let Some(existing) = self.spec.nic(&nic.id) {
            return if *existing == nic {
                Ok(())
            } else {
                Err(Error::Conflict {
                    id: self.id,
                    reason: format!("NIC {} is attached with another spec", nic.id),
                })
            };
        }
        if self.spec.nics.iter().any(|n| n.mac == nic.mac) {
            return Err(Error::Conflict {
                id: self.id,
                reason: format!("MAC {} is used by another NIC", nic.mac),
            });
        }
        if let Some(qmp) = self.live("attach a NIC to", false).await? {
            let device_id = args::nic_device_id(&nic.id);
            if !peripherals(&qmp).await?.contains(&device_id) {
                match qmp
                    .execute("netdev_add", Some(Value::Object(args::netdev(&nic))))
                    .await
                {
                    Ok(_) => {}
                    // Left over from an attempt interrupted after netdev_add.
                    Err(Error::Qmp { desc, .. }) if desc.contains("Duplicate") => {}
                    Err(e) => return Err(e),
                }
                let device = Value::Object(args::nic_device(&nic));
                if let Err(e) = qmp.execute("device_add", Some(device)).await {
                    let _ = qmp
                        .execute(
                            "netdev_del",
                            Some(json!({ "id": args::netdev_id(&nic.id) })),
                        )
                        .await;
                    return Err(e);
                }
            }
            info!(nic = %nic.id, "NIC hot-plugged");
        }
        self.spec.nics.push(nic);
        self.save_spec()
    }

    async fn detach_nic(&mut self, nic_id: &str) -> Result<()> {
        if self.spec.nic(nic_id).is_none()
            && self.observe().await.power_state != PowerState::Running
        {
            return Ok(());
        }
        if let Some(qmp) = self.live("detach a NIC from", true).await? {
            let device_id = args::nic_device_id(nic_id);
            let present = peripherals(&qmp).await?.contains(&device_id);
            if present {
                self.unplug(&qmp, &device_id).await?;
            }
            if present || self.spec.nic(nic_id).is_some() {
                match qmp
                    .execute("netdev_del", Some(json!({ "id": args::netdev_id(nic_id) })))
                    .await
                {
                    Ok(_) => {}
                    Err(Error::Qmp { class, .. }) if class == "DeviceNotFound" => {}
                    Err(Error::Qmp { desc, .. }) if desc.contains("not found") => {}
                    Err(e) => return Err(e),
                }
            }
            info!(nic = %nic_id, "NIC unplugged");
        }
        if let Some(at) = self.spec.nics.iter().position(|n| n.id == nic_id) {
            self.spec.nics.remove(at);
            self.save_spec()?;
        }
        Ok(())
    }

    /// `device_del`, then waits until QEMU says the guest released the device.
    async fn unplug(&mut self, qmp: &Qmp, device_id: &str) -> Result<()> {
        let mut events = qmp.events();
        match qmp
            .execute("device_del", Some(json!({ "id": device_id })))
            .await
        {
            Ok(_) => {}
            Err(Error::Qmp { class, .. }) if class == "DeviceNotFound" => return Ok(()),
            // Asked before (by us or an earlier agent): keep waiting.
            Err(Error::Qmp { desc, .. }) if desc.contains("in the process of unplug") => {}
            Err(e) => return Err(e),
        }
        let timeout = self.ctx.config.unplug_timeout;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        let watch = match &self.proc {
            Some(proc) => proc.watch.clone(),
            None => return Ok(()),
        };
        loop {
            tokio::select! {
                event = events.recv() => {
                    if let Ok(event) = event {
                        if event.name == "DEVICE_DELETED" && event.data["device"] == device_id {
                            debug!(device_id, elapsed_ms = started.elapsed().as_millis() as u64, "device deleted");
                            return Ok(());
                        }
                    }
                }
                _ = poll.tick() => {
                    if !peripherals(qmp).await?.iter().any(|d| d == device_id) {
                        return Ok(());
                    }
                }
                () = watch.exited() => return Ok(()),
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Error::Timeout {
                        what: format!("the guest to release {device_id} (ACPI hot-unplug)"),
                        after: timeout,
                    });
                }
                _ = self.cancel.changed() => return Err(Error::Cancelled { id: self.id }),
            }
        }
    }

    async fn resize_disk(&mut self, disk_id: &str, size: u64) -> Result<()> {
        let Some(disk) = self.spec.disk(disk_id) else {
            return Err(Error::InvalidRequest {
                id: self.id,
                reason: format!("no disk {disk_id} is attached"),
            });
        };
        if disk.spec.read_only {
            return Err(Error::InvalidRequest {
                id: self.id,
                reason: format!("disk {disk_id} is read-only"),
            });
        }
        if size == 0 || size % 512 != 0 {
            return Err(Error::InvalidRequest {
                id: self.id,
                reason: format!("size {size} is not a positive multiple of 512 bytes"),
            });
        }
        let status = self.observe().await;
        if self.proc.is_none() {
            return Ok(());
        }
        if status.power_state == PowerState::NoState {
            return Err(Error::InvalidState {
                id: self.id,
                state: status.power_state,
                action: "resize a disk of",
            });
        }
        let qmp = self.qmp().await?;
        let node = args::node_name(disk_id);
        let nodes = qmp
            .execute("query-named-block-nodes", Some(json!({ "flat": true })))
            .await?;
        let current = nodes
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["node-name"] == node)
            .and_then(|n| n["image"]["virtual-size"].as_u64());
        match current {
            Some(current) if size < current => Err(Error::InvalidRequest {
                id: self.id,
                reason: format!("disk {disk_id} is {current} bytes: disks only grow"),
            }),
            Some(current) if size == current => Ok(()),
            _ => {
                qmp.execute(
                    "block_resize",
                    Some(json!({ "node-name": node, "size": size })),
                )
                .await?;
                info!(disk = %disk_id, size, "disk resized");
                Ok(())
            }
        }
    }
}

/// Maps QEMU's runstate to a power state; `record` tells a suspended VM from a paused one.
pub(crate) fn map_runstate(runstate: &str, record: Recorded) -> (PowerState, Option<String>) {
    match runstate {
        "running" => (PowerState::Running, None),
        "paused" if record == Recorded::Suspended => (PowerState::Suspended, None),
        "paused" => (PowerState::Paused, None),
        // The guest suspended itself to RAM (ACPI S3).
        "suspended" => (
            PowerState::Suspended,
            Some("the guest suspended itself".into()),
        ),
        "shutdown" => (PowerState::Shutdown, Some("the guest powered off".into())),
        "io-error" => (
            PowerState::Paused,
            Some("QEMU paused the guest after a disk I/O error".into()),
        ),
        "guest-panicked" => (
            PowerState::Crashed,
            Some("the guest kernel panicked".into()),
        ),
        "internal-error" => (
            PowerState::Crashed,
            Some("QEMU stopped the guest on an internal error".into()),
        ),
        other => (PowerState::NoState, Some(format!("QEMU runstate {other}"))),
    }
}

async fn wait_exit(watch: Option<Arc<ProcWatch>>) {
    match watch {
        Some(watch) => watch.exited().await,
        None => std::future::pending().await,
    }
}

/// The next event, or `None` after missing some (the receiver lagged).
async fn recv_event(events: &mut Option<broadcast::Receiver<QmpEvent>>) -> Option<QmpEvent> {
    let Some(receiver) = events else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(event) => Some(event),
        Err(broadcast::error::RecvError::Lagged(_)) => None,
        // The connection is gone; the process watch will tell what happened.
        Err(broadcast::error::RecvError::Closed) => {
            *events = None;
            std::future::pending().await
        }
    }
}

/// Ids of the user-created devices (`/machine/peripheral`).
async fn peripherals(qmp: &Qmp) -> Result<Vec<String>> {
    let list = qmp
        .execute("qom-list", Some(json!({ "path": "/machine/peripheral" })))
        .await?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"].as_str().is_some_and(|t| t.starts_with("child<")))
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// Names of the named block nodes.
async fn block_nodes(qmp: &Qmp) -> Result<Vec<String>> {
    let nodes = qmp
        .execute("query-named-block-nodes", Some(json!({ "flat": true })))
        .await?;
    Ok(nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node-name"].as_str().map(str::to_string))
        .collect())
}

/// Moves a console log bigger than `limit` to `<name>.0` (replacing the previous one), so logs
/// stay bounded across restarts. A running QEMU appends without bound (QEMU has no rotation);
/// the agent may truncate it.
fn rotate_console(path: &std::path::Path, limit: u64) {
    let big = std::fs::metadata(path).is_ok_and(|m| m.len() > limit);
    if big {
        let mut old = path.as_os_str().to_owned();
        old.push(".0");
        if let Err(e) = std::fs::rename(path, &old) {
            warn!(path = %path.display(), error = %e, "could not rotate the console log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runstates() {
        use PowerState::*;
        assert_eq!(map_runstate("running", Recorded::Running).0, Running);
        assert_eq!(map_runstate("paused", Recorded::Running).0, Paused);
        assert_eq!(map_runstate("paused", Recorded::Suspended).0, Suspended);
        assert_eq!(map_runstate("suspended", Recorded::Running).0, Suspended);
        assert_eq!(map_runstate("guest-panicked", Recorded::Running).0, Crashed);
        assert_eq!(map_runstate("io-error", Recorded::Running).0, Paused);
        assert_eq!(map_runstate("inmigrate", Recorded::Running).0, NoState);
    }

    #[test]
    fn console_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, "small").unwrap();
        rotate_console(&path, 10);
        assert!(path.exists());
        std::fs::write(&path, "this is more than ten bytes").unwrap();
        rotate_console(&path, 10);
        assert!(!path.exists());
        assert!(dir.path().join("console.log.0").exists());
        rotate_console(&path, 10);
    }
}
