//! The contract against real QEMU (TCG here), booting the tiny guest image, plus what only the
//! QEMU driver has: adoption by a restarted driver, and errors from QEMU itself.
//!
//! Needs `qemu-system-x86_64`, `qemu-img`, `mkfs.vfat` + `mcopy` (config drive) and the image
//! from `tools/guest-image/build.sh`; otherwise every test here prints `SKIP: ...` and passes.
//! One test function runs everything, so that at most two guests boot at once on a small machine
//! (TCG boot ≈ 7 s idle, 13-25 s on a busy one): the contract lifecycle (two boots) runs beside
//! the adoption scenario (two boots, each ending in the guest powering itself off); see the
//! crate README.

mod contract;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::Fixture;
use nubo_hypervisor::{
    runner, ConfigDrive, ConfigDriveFormat, DiskFormat, DiskSpec, Error, Hypervisor, PowerAction,
    PowerState, QemuConfig, QemuHypervisor, VmStatus,
};

fn image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/guest-image/out/tiny.raw")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Why the QEMU tier cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    for program in ["qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy"] {
        if !on_path(program) && !Path::new("/usr/sbin").join(program).is_file() {
            return Some(format!(
                "{program} not found (apt-get install qemu-system-x86 qemu-utils dosfstools mtools)"
            ));
        }
    }
    if !image().is_file() {
        return Some(format!(
            "{} missing (run tools/guest-image/build.sh)",
            image().display()
        ));
    }
    None
}

macro_rules! skip_unless_qemu {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("\n=== SKIP: QEMU tier of nubo-hypervisor: {reason} ===\n");
            return;
        }
    };
}

fn mkfs_vfat() -> &'static str {
    if on_path("mkfs.vfat") {
        "mkfs.vfat"
    } else {
        "/usr/sbin/mkfs.vfat"
    }
}

/// A vfat config drive with an OpenStack meta_data.json, made without mounting anything.
fn config_drive(dir: &Path) -> PathBuf {
    config_drive_named(dir, "config", None)
}

/// A config drive `<name>.vfat`, with user-data if given.
fn config_drive_named(dir: &Path, name: &str, user_data: Option<&str>) -> PathBuf {
    let root = dir.join(format!("cd-{name}"));
    let tree = root.join("openstack/latest");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join("meta_data.json"),
        format!(r#"{{"uuid": "{name}", "hostname": "{name}"}}"#),
    )
    .unwrap();
    if let Some(user_data) = user_data {
        std::fs::write(tree.join("user_data"), user_data).unwrap();
    }
    let image = dir.join(format!("{name}.vfat"));
    let _ = std::fs::remove_file(&image);
    runner::run(
        mkfs_vfat(),
        [
            "-n".as_ref(),
            "config-2".as_ref(),
            "-C".as_ref(),
            image.as_os_str(),
            "1024".as_ref(),
        ],
    )
    .unwrap();
    runner::run(
        "mcopy",
        [
            "-s".as_ref(),
            "-i".as_ref(),
            image.as_os_str(),
            root.join("openstack").as_os_str(),
            "::/".as_ref(),
        ],
    )
    .unwrap();
    image
}

/// A blank 64 MiB qcow2 disk `<dir>/<name>.qcow2` (made once).
fn blank_disk(dir: &Path, name: &str) -> DiskSpec {
    let path = dir.join(format!("{name}.qcow2"));
    if !path.exists() {
        runner::run(
            "qemu-img",
            [
                "create".as_ref(),
                "-q".as_ref(),
                "-f".as_ref(),
                "qcow2".as_ref(),
                path.as_os_str(),
                "64M".as_ref(),
            ],
        )
        .unwrap();
    }
    DiskSpec::file(path, DiskFormat::Qcow2)
}

fn fixture(hv: Arc<dyn Hypervisor>, work: &Path) -> Fixture {
    let base = image().canonicalize().unwrap();
    let disks = work.join("disks");
    std::fs::create_dir_all(&disks).unwrap();
    let boot_dir = disks.clone();
    let blank_dir = disks;
    Fixture {
        hv,
        boot_disk: Box::new(move |name| {
            let path = boot_dir.join(format!("{name}.qcow2"));
            let _ = std::fs::remove_file(&path);
            runner::run(
                "qemu-img",
                [
                    "create".as_ref(),
                    "-q".as_ref(),
                    "-f".as_ref(),
                    "qcow2".as_ref(),
                    "-b".as_ref(),
                    base.as_os_str(),
                    "-F".as_ref(),
                    "raw".as_ref(),
                    path.as_os_str(),
                ],
            )
            .unwrap();
            DiskSpec::file(path, DiskFormat::Qcow2)
        }),
        blank_disk: Box::new(move |name| blank_disk(&blank_dir, name)),
        config_drive: Some(ConfigDrive {
            path: config_drive(work),
            format: ConfigDriveFormat::Vfat,
        }),
        memory_mib: 128,
        ready_timeout: Duration::from_secs(120),
        crash: Box::new(|status: &VmStatus| {
            let pid = status.pid.expect("a running VM has a pid");
            // SAFETY: kill has no memory effects; the pid is the VM's QEMU.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }),
    }
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

fn runtime_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_tier() {
    skip_unless_qemu!();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let work = tempfile::Builder::new()
        .prefix("nubo-hv-")
        .tempdir()
        .unwrap();
    // If an assertion fails, no QEMU of this test may outlive it on a shared machine.
    let _reaper = KillOnDrop(work.path().to_string_lossy().into_owned());

    // 0. A driver on its own runtime dir spawns a guest that powers itself off once booted (its
    // user-data), and goes away at once: that guest boots and powers off while the lifecycle
    // below runs, with no driver watching. Section 4 adopts it.
    let adopt_dir = work.path().join("vms-b");
    let adopt_config = QemuConfig::new(&adopt_dir);
    let hv_b: Arc<dyn Hypervisor> =
        Arc::new(QemuHypervisor::open(adopt_config.clone()).await.unwrap());
    let f_b = fixture(hv_b.clone(), work.path());
    let mut adoptee = f_b.spec("adoptee");
    adoptee.config_drive = Some(ConfigDrive {
        path: config_drive_named(
            work.path(),
            "adoptee",
            Some("#!/bin/sh\n(sleep 1; poweroff) &\n"),
        ),
        format: ConfigDriveFormat::Vfat,
    });
    let adoptee_started = Instant::now();
    let first_pid = hv_b.spawn(&adoptee).await.unwrap().pid.unwrap();
    // Garbage from an interrupted spawn: a runtime dir without a spec.
    let garbage = adopt_dir.join(uuid_like());
    std::fs::create_dir_all(&garbage).unwrap();
    drop(f_b);
    drop(hv_b);

    let runtime_dir = work.path().join("vms");
    let config = QemuConfig::new(&runtime_dir);
    let hv: Arc<dyn Hypervisor> = Arc::new(QemuHypervisor::open(config.clone()).await.unwrap());
    let info = hv.info().await.unwrap();
    eprintln!("host: {info:?}");
    assert_eq!(info.hypervisor_type, "QEMU");
    assert!(info.hypervisor_version > 0);
    let f = fixture(hv.clone(), work.path());

    // 1. errors, idempotency, concurrent spawns (no waiting for guests)
    contract::errors_and_idempotency(&f).await;
    contract::concurrent_spawns_of_one_id(&f).await;

    // A guest that ignores the power button (still in its BIOS here): a clean stop falls back
    // to pulling the plug after its timeout, and a destroy interrupts a long one.
    let spec = f.spec("deaf");
    hv.spawn(&spec).await.unwrap();
    let started = Instant::now();
    let one_second = PowerAction::Stop {
        timeout: Duration::from_secs(1),
    };
    let status = hv.power(spec.id, one_second).await.unwrap();
    assert_eq!(status.power_state, PowerState::Shutdown);
    eprintln!(
        "stop with a 1 s timeout, guest deaf: {:?}",
        started.elapsed()
    );
    hv.power(spec.id, PowerAction::Start).await.unwrap();
    let stopping = {
        let hv = hv.clone();
        let id = spec.id;
        let long = PowerAction::Stop {
            timeout: Duration::from_secs(300),
        };
        tokio::spawn(async move { hv.power(id, long).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    hv.destroy(spec.id).await.unwrap();
    eprintln!("destroy during a 300 s clean stop: {:?}", started.elapsed());
    let error = stopping.await.unwrap().unwrap_err();
    assert!(matches!(error, Error::Cancelled { .. }), "{error}");
    assert!(hv.status(spec.id).await.unwrap_err().is_not_found());

    // 2. a spawn QEMU refuses cleans up after itself and says why
    let mut broken = f.spec("broken");
    broken.boot_disk.spec =
        DiskSpec::file(work.path().join("no-such-disk.qcow2"), DiskFormat::Qcow2);
    let error = hv.spawn(&broken).await.unwrap_err();
    let text = error.to_string();
    eprintln!("spawn with a missing disk: {text}");
    assert!(matches!(error, Error::Exited { .. }), "{text}");
    assert!(
        text.contains("no-such-disk.qcow2"),
        "the error shows QEMU's complaint: {text}"
    );
    assert!(hv.status(broken.id).await.unwrap_err().is_not_found());
    assert!(!runtime_dir.join(broken.id.to_string()).exists());

    // 3. the whole lifecycle, with a real guest, while 4. adopts the other VM.
    let adoption = Adoption {
        work: work.path().to_path_buf(),
        config: adopt_config.clone(),
        adoptee: adoptee.clone(),
        first_pid,
        garbage: garbage.clone(),
        started: adoptee_started,
    };
    let (timings, ()) = tokio::join!(contract::lifecycle(&f), adoption.run());
    eprintln!("QEMU lifecycle timings: {timings:#?}");
    drop(f);
    drop(hv);

    // 5. nothing is left
    for dir in [&runtime_dir, &adopt_dir] {
        let leftovers = runtime_entries(dir);
        assert!(
            leftovers.is_empty(),
            "{} not empty: {leftovers:?}",
            dir.display()
        );
    }
    let mut alive = Vec::new();
    for pid in processes_mentioning(&work.path().to_string_lossy()) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if !stat.contains(") Z") {
            alive.push(pid);
        }
    }
    assert!(alive.is_empty(), "QEMU processes left: {alive:?}");
}

/// Section 4 of the QEMU tier: adoption of a VM by re-opened drivers, run beside the lifecycle.
struct Adoption {
    work: PathBuf,
    config: QemuConfig,
    adoptee: nubo_hypervisor::VmSpec,
    first_pid: u32,
    garbage: PathBuf,
    started: Instant,
}

impl Adoption {
    async fn run(self) {
        let adoptee = &self.adoptee;
        // 4. adoption. The adoptee's guest has powered off (or will soon) with nobody watching:
        // -no-shutdown keeps its QEMU in runstate "shutdown". Watch that through QMP ourselves.
        let socket = self
            .config
            .runtime_dir
            .join(adoptee.id.to_string())
            .join("qmp.sock");
        let qmp = nubo_hypervisor::qmp::Qmp::connect(
            &socket,
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        loop {
            let status = qmp.execute("query-status", None).await.unwrap();
            if status["status"] == "shutdown" {
                break;
            }
            assert!(
                self.started.elapsed() < Duration::from_secs(300),
                "the adoptee never powered off: {status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(qmp);
        // Let QEMU see that client go before the driver connects.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(Path::new(&format!("/proc/{}/cmdline", self.first_pid)).exists());

        // The next driver finds the VM, finishes the power-off, removes the garbage.
        let reopened = Instant::now();
        let hv = QemuHypervisor::open(self.config.clone()).await.unwrap();
        let list = hv.list().await.unwrap();
        eprintln!("re-open + adopt + list: {:?}", reopened.elapsed());
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].id, adoptee.id);
        assert_eq!(list[0].power_state, PowerState::Shutdown, "{list:?}");
        assert_eq!(list[0].pid, None);
        assert!(
            list[0]
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("powered off"),
            "{list:?}"
        );
        assert!(!self.garbage.exists(), "garbage runtime dirs are removed");
        let pid = hv
            .power(adoptee.id, PowerAction::Start)
            .await
            .unwrap()
            .pid
            .unwrap();
        drop(hv);

        // A running VM is adopted with its QEMU.
        let hv = QemuHypervisor::open(self.config.clone()).await.unwrap();
        let status = hv.status(adoptee.id).await.unwrap();
        assert_eq!(status.power_state, PowerState::Running);
        assert_eq!(status.pid, Some(pid), "the same QEMU, adopted");
        let status = hv.power(adoptee.id, PowerAction::Pause).await.unwrap();
        assert_eq!(status.power_state, PowerState::Paused);
        // Paused guests cannot release devices: refused rather than waited on.
        let volume =
            nubo_hypervisor::Disk::new("vol-p", blank_disk(&self.work.join("disks"), "vol-p"));
        hv.attach_disk(adoptee.id, &volume).await.unwrap();
        let error = hv.detach_disk(adoptee.id, "vol-p").await.unwrap_err();
        assert!(matches!(error, Error::InvalidState { .. }), "{error}");
        let status = hv.power(adoptee.id, PowerAction::Suspend).await.unwrap();
        assert_eq!(status.power_state, PowerState::Suspended);
        drop(hv);

        // Suspended, and the hot-plugged disk, are remembered across a restart of the driver.
        let hv = QemuHypervisor::open(self.config.clone()).await.unwrap();
        let status = hv.status(adoptee.id).await.unwrap();
        assert_eq!(status.power_state, PowerState::Suspended);
        assert_eq!(status.disks, ["root", "vol-p"]);
        let status = hv.power(adoptee.id, PowerAction::Resume).await.unwrap();
        assert_eq!(status.power_state, PowerState::Running);

        // The guest powers off by itself again (its user-data runs at every boot), now with a
        // driver watching: the SHUTDOWN event is seen and the power-off finished.
        let started = Instant::now();
        loop {
            let status = hv.status(adoptee.id).await.unwrap();
            if status.power_state == PowerState::Shutdown {
                assert_eq!(status.pid, None);
                assert!(
                    status
                        .reason
                        .as_deref()
                        .unwrap_or("")
                        .contains("powered off"),
                    "{status:?}"
                );
                assert!(!runtime_alive(pid), "QEMU quit after the power-off");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the adoptee did not power off again: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let pid = hv
            .power(adoptee.id, PowerAction::Start)
            .await
            .unwrap()
            .pid
            .unwrap();
        drop(hv);

        // QEMU dies while no driver watches: found crashed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // SAFETY: kill and waitpid have no memory effects; pid is our child QEMU.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(pid as i32, &mut status, 0);
        }
        let hv = QemuHypervisor::open(self.config.clone()).await.unwrap();
        let status = hv.status(adoptee.id).await.unwrap();
        assert_eq!(status.power_state, PowerState::Crashed, "{status:?}");
        assert!(
            status.reason.as_deref().unwrap_or("").contains("no agent"),
            "{status:?}"
        );
        hv.destroy(adoptee.id).await.unwrap();
        assert!(hv.list().await.unwrap().is_empty());
    }
}

/// True when `pid` runs and is not a zombie.
fn runtime_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z"))
        .unwrap_or(false)
}

/// Kills every process whose command line mentions the given path (the test's work dir).
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in processes_mentioning(&self.0) {
            eprintln!("killing leftover QEMU {pid}");
            // SAFETY: kill and waitpid have no memory effects.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(pid as i32, &mut status, 0);
            }
        }
    }
}

fn uuid_like() -> String {
    nubo_hypervisor::VmId::new_random().to_string()
}
