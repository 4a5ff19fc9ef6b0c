//! The contract every driver keeps, as tests. `tests/fake.rs` runs them against the fake driver
//! and `tests/qemu.rs` against QEMU; a driver that passes here can replace the other.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nubo_hypervisor::{
    ConfigDrive, Disk, DiskSpec, Error, Hypervisor, MacAddr, NicSpec, PowerAction, PowerState,
    VmId, VmSpec, VmStatus,
};

/// What a driver under test provides.
pub struct Fixture {
    pub hv: Arc<dyn Hypervisor>,
    /// A fresh, bootable root disk for the VM called `name`.
    pub boot_disk: Box<dyn Fn(&str) -> DiskSpec + Send + Sync>,
    /// A fresh blank 64 MiB disk called `name`.
    pub blank_disk: Box<dyn Fn(&str) -> DiskSpec + Send + Sync>,
    pub config_drive: Option<ConfigDrive>,
    pub memory_mib: u64,
    /// How long a guest may take to print its ready marker.
    pub ready_timeout: Duration,
    /// Kills the VM's "QEMU" behind the driver's back.
    pub crash: Box<dyn Fn(&VmStatus) + Send + Sync>,
}

/// Wall-clock figures of one lifecycle run.
#[derive(Debug, Default)]
pub struct Timings {
    pub spawn: Duration,
    pub ready: Duration,
    pub attach: Duration,
    pub detach: Duration,
    pub soft_reboot_ready: Duration,
    pub stop: Duration,
    pub start: Duration,
    pub hard_reboot: Duration,
    pub destroy: Duration,
}

pub const READY: &str = "nubo-guest: ready";

impl Fixture {
    pub fn spec(&self, name: &str) -> VmSpec {
        let mut spec = VmSpec::new(
            VmId::new_random(),
            name,
            Disk::new("root", (self.boot_disk)(name)),
        );
        spec.memory_mib = self.memory_mib;
        spec.config_drive = self.config_drive.clone();
        spec
    }

    /// Waits until the console holds `needle` at least `count` times.
    pub async fn wait_console(&self, id: VmId, needle: &str, count: usize) -> Duration {
        let started = Instant::now();
        loop {
            let console = self.hv.console_log(id, 1 << 20).await.unwrap();
            if console.matches(needle).count() >= count {
                return started.elapsed();
            }
            if started.elapsed() > self.ready_timeout {
                let status = self.hv.status(id).await;
                panic!(
                    "{needle:?} x{count} not on the console after {:?}; status {status:?}; console:\n{console}",
                    self.ready_timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the VM reaches `state` (for changes that happen behind the driver's back).
    pub async fn wait_state(&self, id: VmId, state: PowerState, timeout: Duration) -> VmStatus {
        let started = Instant::now();
        loop {
            let status = self.hv.status(id).await.unwrap();
            if status.power_state == state {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "VM {id} not {state} after {timeout:?}: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0x00, 0x4e, 0x42, last])
}

async fn power(f: &Fixture, id: VmId, action: PowerAction, expect: PowerState) -> VmStatus {
    let status =
        f.hv.power(id, action)
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e}", action.name()));
    assert_eq!(
        status.power_state,
        expect,
        "after {}: {status:?}",
        action.name()
    );
    status
}

async fn power_refused(f: &Fixture, id: VmId, action: PowerAction) {
    let error = f.hv.power(id, action).await.unwrap_err();
    assert!(
        matches!(error, Error::InvalidState { .. }),
        "{} should be refused: {error}",
        action.name()
    );
}

/// Everything a VM goes through, in one boot plus one soft reboot.
pub async fn lifecycle(f: &Fixture) -> Timings {
    let mut t = Timings::default();
    let hv = &f.hv;
    let mut spec = f.spec("contract-1");
    spec.nics.push(NicSpec::user("nic-1", mac(1)));
    let id = spec.id;

    // spawn, idempotently
    let started = Instant::now();
    let status = hv.spawn(&spec).await.unwrap();
    t.spawn = started.elapsed();
    assert_eq!(status.power_state, PowerState::Running, "{status:?}");
    assert_eq!(status.id, id);
    assert_eq!(status.disks, ["root"]);
    assert_eq!(status.nics, ["nic-1"]);
    let again = hv.spawn(&spec).await.unwrap();
    assert_eq!(again.power_state, PowerState::Running);
    assert_eq!(
        again.pid, status.pid,
        "a second spawn must not start another VM"
    );
    assert!(hv.list().await.unwrap().iter().any(|s| s.id == id));
    t.ready = f.wait_console(id, READY, 1).await + t.spawn;
    let tail = hv.console_log(id, 64).await.unwrap();
    assert!(
        tail.len() <= 64 + 3, /* a replacement char may grow */
        "{tail:?}"
    );

    // pause / suspend, each idempotent
    power(f, id, PowerAction::Pause, PowerState::Paused).await;
    power(f, id, PowerAction::Pause, PowerState::Paused).await;
    power_refused(f, id, PowerAction::Resume).await;
    power(f, id, PowerAction::Unpause, PowerState::Running).await;
    power(f, id, PowerAction::Unpause, PowerState::Running).await;
    power(f, id, PowerAction::Suspend, PowerState::Suspended).await;
    power(f, id, PowerAction::Suspend, PowerState::Suspended).await;
    power_refused(f, id, PowerAction::Unpause).await;
    power_refused(f, id, PowerAction::Pause).await;
    power(f, id, PowerAction::Resume, PowerState::Running).await;
    power(f, id, PowerAction::Resume, PowerState::Running).await;
    power(f, id, PowerAction::Start, PowerState::Running).await;

    // disk hot-plug
    let volume = Disk::new("vol-1", (f.blank_disk)("vol-1"));
    let started = Instant::now();
    hv.attach_disk(id, &volume).await.unwrap();
    t.attach = started.elapsed();
    hv.attach_disk(id, &volume).await.unwrap();
    let other = Disk::new("vol-1", (f.blank_disk)("vol-1-other"));
    let error = hv.attach_disk(id, &other).await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error}");
    assert_eq!(hv.status(id).await.unwrap().disks, ["root", "vol-1"]);
    hv.resize_disk(id, "vol-1", 128 << 20).await.unwrap();
    hv.resize_disk(id, "vol-1", 128 << 20).await.unwrap();
    let error = hv.resize_disk(id, "vol-1", 32 << 20).await.unwrap_err();
    assert!(
        matches!(error, Error::InvalidRequest { .. }),
        "shrink: {error}"
    );
    let error = hv.resize_disk(id, "nope", 1 << 30).await.unwrap_err();
    assert!(
        matches!(error, Error::InvalidRequest { .. }),
        "unknown disk: {error}"
    );
    // The guest must release it: give the kernel a moment to have bound the new device.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    hv.detach_disk(id, "vol-1").await.unwrap();
    t.detach = started.elapsed();
    hv.detach_disk(id, "vol-1").await.unwrap();
    assert_eq!(hv.status(id).await.unwrap().disks, ["root"]);
    let error = hv.detach_disk(id, "root").await.unwrap_err();
    assert!(matches!(error, Error::InvalidRequest { .. }), "{error}");

    // NIC hot-plug
    let nic = NicSpec::user("nic-2", mac(2));
    hv.attach_nic(id, &nic).await.unwrap();
    hv.attach_nic(id, &nic).await.unwrap();
    let clash = NicSpec::user("nic-3", mac(2));
    let error = hv.attach_nic(id, &clash).await.unwrap_err();
    assert!(matches!(error, Error::Conflict { .. }), "{error}");
    assert_eq!(hv.status(id).await.unwrap().nics, ["nic-1", "nic-2"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    hv.detach_nic(id, "nic-2").await.unwrap();
    hv.detach_nic(id, "nic-2").await.unwrap();
    assert_eq!(hv.status(id).await.unwrap().nics, ["nic-1"]);

    // soft reboot: the guest boots again
    let started = Instant::now();
    power(f, id, PowerAction::SOFT_REBOOT, PowerState::Running).await;
    f.wait_console(id, READY, 2).await;
    t.soft_reboot_ready = started.elapsed();

    // clean stop, idempotent
    let started = Instant::now();
    let status = power(
        f,
        id,
        PowerAction::Stop {
            timeout: Duration::from_secs(30),
        },
        PowerState::Shutdown,
    )
    .await;
    t.stop = started.elapsed();
    assert_eq!(status.pid, None);
    assert!(
        hv.console_log(id, 4096)
            .await
            .unwrap()
            .contains("nubo-guest: shutdown"),
        "the guest did not shut down cleanly"
    );
    power(f, id, PowerAction::STOP, PowerState::Shutdown).await;
    power(f, id, PowerAction::HardStop, PowerState::Shutdown).await;
    power_refused(f, id, PowerAction::Pause).await;
    power_refused(f, id, PowerAction::Unpause).await;
    power_refused(f, id, PowerAction::Suspend).await;
    power_refused(f, id, PowerAction::Resume).await;
    // The console outlives the process.
    assert!(hv.console_log(id, 1 << 20).await.unwrap().contains(READY));

    // devices of a VM that is shut down are recorded for the next start
    let cold = Disk::new("vol-cold", (f.blank_disk)("vol-cold"));
    hv.attach_disk(id, &cold).await.unwrap();
    assert_eq!(hv.status(id).await.unwrap().disks, ["root", "vol-cold"]);
    hv.resize_disk(id, "vol-cold", 1 << 30).await.unwrap();
    hv.detach_disk(id, "vol-cold").await.unwrap();
    assert_eq!(hv.status(id).await.unwrap().disks, ["root"]);

    // start, hard reboot
    let started = Instant::now();
    power(f, id, PowerAction::Start, PowerState::Running).await;
    t.start = started.elapsed();
    let started = Instant::now();
    power(f, id, PowerAction::HardReboot, PowerState::Running).await;
    t.hard_reboot = started.elapsed();

    // a crash behind the driver's back, and recovery
    let status = hv.status(id).await.unwrap();
    (f.crash)(&status);
    let crashed = f
        .wait_state(id, PowerState::Crashed, Duration::from_secs(10))
        .await;
    assert!(
        crashed.reason.is_some(),
        "a crash has a reason: {crashed:?}"
    );
    assert_eq!(crashed.pid, None);
    power_refused(f, id, PowerAction::Pause).await;
    power(f, id, PowerAction::Start, PowerState::Running).await;
    power(f, id, PowerAction::HardStop, PowerState::Shutdown).await;
    power(f, id, PowerAction::SOFT_REBOOT, PowerState::Running).await;

    // destroy, idempotent
    let started = Instant::now();
    hv.destroy(id).await.unwrap();
    t.destroy = started.elapsed();
    hv.destroy(id).await.unwrap();
    assert!(hv.status(id).await.unwrap_err().is_not_found());
    assert!(hv.console_log(id, 10).await.unwrap_err().is_not_found());
    assert!(!hv.list().await.unwrap().iter().any(|s| s.id == id));
    t
}

/// Errors, unknown ids and the idempotency of spawn and destroy, without waiting for a guest.
pub async fn errors_and_idempotency(f: &Fixture) {
    let hv = &f.hv;

    // An invalid spec changes nothing.
    let mut bad = f.spec("contract-bad");
    bad.vcpus = 0;
    let error = hv.spawn(&bad).await.unwrap_err();
    assert!(matches!(error, Error::InvalidSpec { .. }), "{error}");
    assert!(hv.status(bad.id).await.unwrap_err().is_not_found());

    // Unknown ids: NotFound everywhere but destroy.
    let ghost = VmId::new_random();
    assert!(hv.status(ghost).await.unwrap_err().is_not_found());
    assert!(hv
        .power(ghost, PowerAction::Start)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(hv.console_log(ghost, 10).await.unwrap_err().is_not_found());
    let disk = Disk::new("vol", (f.blank_disk)("ghost-vol"));
    assert!(hv
        .attach_disk(ghost, &disk)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(hv
        .detach_disk(ghost, "vol")
        .await
        .unwrap_err()
        .is_not_found());
    assert!(hv
        .resize_disk(ghost, "vol", 1 << 30)
        .await
        .unwrap_err()
        .is_not_found());
    let nic = NicSpec::user("n", mac(9));
    assert!(hv.attach_nic(ghost, &nic).await.unwrap_err().is_not_found());
    assert!(hv.detach_nic(ghost, "n").await.unwrap_err().is_not_found());
    hv.destroy(ghost).await.unwrap();

    // Spawn and destroy at once (the guest never gets far), twice over.
    let spec = f.spec("contract-quick");
    let first = hv.spawn(&spec).await.unwrap();
    let second = hv.spawn(&spec).await.unwrap();
    assert_eq!(first.pid, second.pid);
    // A disk id that is not acceptable is refused before anything happens.
    let error = hv
        .attach_disk(spec.id, &Disk::new("no spaces", (f.blank_disk)("x")))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidSpec { .. }), "{error}");
    hv.destroy(spec.id).await.unwrap();
    hv.destroy(spec.id).await.unwrap();
    assert!(hv.status(spec.id).await.unwrap_err().is_not_found());
    // The same id can be spawned again once destroyed.
    let spec = VmSpec {
        boot_disk: Disk::new("root", (f.boot_disk)("contract-quick-2")),
        ..spec
    };
    hv.spawn(&spec).await.unwrap();
    hv.destroy(spec.id).await.unwrap();
    assert!(!hv.list().await.unwrap().iter().any(|s| s.id == spec.id));
}

/// Concurrent spawns of one id make one VM.
pub async fn concurrent_spawns_of_one_id(f: &Fixture) {
    let spec = f.spec("contract-race");
    let (a, b, c) = tokio::join!(f.hv.spawn(&spec), f.hv.spawn(&spec), f.hv.spawn(&spec));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.pid, b.pid);
    assert_eq!(b.pid, c.pid);
    assert_eq!(
        f.hv.list()
            .await
            .unwrap()
            .iter()
            .filter(|s| s.id == spec.id)
            .count(),
        1
    );
    f.hv.destroy(spec.id).await.unwrap();
}
