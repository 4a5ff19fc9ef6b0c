//! The contract against the fake driver, plus its fault knobs and scale.

mod contract;

use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::Fixture;
use nubo_hypervisor::{
    DiskFormat, DiskSpec, Error, FakeHypervisor, FakeOp, PowerAction, PowerState, VmStatus,
};

fn fixture() -> (Arc<FakeHypervisor>, Fixture) {
    let fake = Arc::new(FakeHypervisor::new());
    let crasher = fake.clone();
    let fixture = Fixture {
        hv: fake.clone(),
        boot_disk: Box::new(|name| {
            DiskSpec::file(format!("/fake/{name}.qcow2"), DiskFormat::Qcow2)
        }),
        blank_disk: Box::new(|name| {
            DiskSpec::file(format!("/fake/{name}.qcow2"), DiskFormat::Qcow2)
        }),
        config_drive: None,
        memory_mib: 128,
        ready_timeout: Duration::from_secs(5),
        crash: Box::new(move |status: &VmStatus| {
            crasher.crash_after(status.id, Duration::ZERO).unwrap();
        }),
    };
    (fake, fixture)
}

#[tokio::test]
async fn contract_lifecycle() {
    let (_, f) = fixture();
    contract::lifecycle(&f).await;
}

#[tokio::test]
async fn contract_errors_and_idempotency() {
    let (_, f) = fixture();
    contract::errors_and_idempotency(&f).await;
}

#[tokio::test]
async fn contract_concurrent_spawns() {
    let (fake, f) = fixture();
    contract::concurrent_spawns_of_one_id(&f).await;
    assert_eq!(fake.spawn_count(), 1);
}

#[tokio::test]
async fn failed_spawns_leave_nothing() {
    let (fake, f) = fixture();
    fake.fail_next_spawns(2);
    let spec = f.spec("flaky");
    for _ in 0..2 {
        let error = f.hv.spawn(&spec).await.unwrap_err();
        assert!(matches!(error, Error::Injected { op: "spawn" }), "{error}");
        assert!(f.hv.status(spec.id).await.unwrap_err().is_not_found());
        assert_eq!(fake.vm_count(), 0);
    }
    f.hv.spawn(&spec).await.unwrap();
    assert_eq!(fake.vm_count(), 1);
}

#[tokio::test]
async fn destroy_can_fail_once() {
    let (fake, f) = fixture();
    let spec = f.spec("sticky");
    f.hv.spawn(&spec).await.unwrap();
    fake.fail_next_destroys(1);
    let error = f.hv.destroy(spec.id).await.unwrap_err();
    assert!(
        matches!(error, Error::Injected { op: "destroy" }),
        "{error}"
    );
    assert_eq!(
        f.hv.status(spec.id).await.unwrap().power_state,
        PowerState::Running
    );
    f.hv.destroy(spec.id).await.unwrap();
    assert_eq!(fake.vm_count(), 0);
}

#[tokio::test]
async fn any_operation_can_fail() {
    let (fake, f) = fixture();
    let spec = f.spec("ops");
    f.hv.spawn(&spec).await.unwrap();
    fake.fail_next(FakeOp::Power, 1);
    assert!(f.hv.power(spec.id, PowerAction::Pause).await.is_err());
    assert_eq!(
        f.hv.power(spec.id, PowerAction::Pause)
            .await
            .unwrap()
            .power_state,
        PowerState::Paused
    );
    fake.fail_next(FakeOp::List, 1);
    assert!(f.hv.list().await.is_err());
    assert_eq!(f.hv.list().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn hanging_spawn_and_destroy_during_it() {
    let (fake, f) = fixture();
    fake.set_spawn_delay(Duration::from_secs(3600));
    let spec = f.spec("slow");
    // A caller with a deadline sees the hang.
    let timed = tokio::time::timeout(Duration::from_secs(5), f.hv.spawn(&spec)).await;
    assert!(timed.is_err(), "the spawn should hang");
    // The abandoned spawn left a VM in NoState; destroy removes it.
    assert_eq!(
        f.hv.status(spec.id).await.unwrap().power_state,
        PowerState::NoState
    );
    f.hv.destroy(spec.id).await.unwrap();

    // A spawn in progress is cancelled by a destroy.
    let hv = f.hv.clone();
    let spawned = {
        let spec = spec.clone();
        tokio::spawn(async move { hv.spawn(&spec).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    f.hv.destroy(spec.id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let error = spawned.await.unwrap().unwrap_err();
    assert!(matches!(error, Error::Cancelled { .. }), "{error}");
    assert_eq!(fake.vm_count(), 0);

    fake.set_spawn_delay(Duration::ZERO);
    f.hv.spawn(&spec).await.unwrap();
}

#[tokio::test]
async fn crash_later_and_guest_poweroff() {
    let (fake, f) = fixture();
    let spec = f.spec("doomed");
    f.hv.spawn(&spec).await.unwrap();
    fake.crash_after(spec.id, Duration::from_millis(50))
        .unwrap();
    assert_eq!(
        f.hv.status(spec.id).await.unwrap().power_state,
        PowerState::Running
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    let status = f.hv.status(spec.id).await.unwrap();
    assert_eq!(status.power_state, PowerState::Crashed);
    assert!(status.reason.unwrap().contains("injected"));
    f.hv.power(spec.id, PowerAction::HardReboot).await.unwrap();
    assert_eq!(fake.boot_count(spec.id).unwrap(), 2);

    fake.guest_poweroff(spec.id).unwrap();
    let status = f.hv.status(spec.id).await.unwrap();
    assert_eq!(status.power_state, PowerState::Shutdown);
    assert!(f
        .hv
        .console_log(spec.id, 4096)
        .await
        .unwrap()
        .contains("nubo-guest: shutdown"));
}

/// Hundreds of VMs in one process: what the agent's and compute's integration tests rely on.
/// Printed, not asserted (benchmarks are not timed tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_vms() {
    const N: usize = 500;
    let (fake, f) = fixture();
    let specs: Vec<_> = (0..N).map(|i| f.spec(&format!("vm-{i}"))).collect();
    let started = Instant::now();
    let spawned = futures::future::join_all(specs.iter().map(|spec| f.hv.spawn(spec))).await;
    let spawn_time = started.elapsed();
    assert!(spawned.iter().all(|s| s.is_ok()));
    assert_eq!(fake.vm_count(), N);
    let started = Instant::now();
    let list = f.hv.list().await.unwrap();
    let list_time = started.elapsed();
    assert_eq!(list.len(), N);
    assert!(list.iter().all(|s| s.power_state == PowerState::Running));
    let started = Instant::now();
    for spec in &specs {
        f.hv.power(spec.id, PowerAction::STOP).await.unwrap();
        f.hv.power(spec.id, PowerAction::Start).await.unwrap();
    }
    let power_time = started.elapsed();
    let started = Instant::now();
    let destroyed = futures::future::join_all(specs.iter().map(|spec| f.hv.destroy(spec.id))).await;
    let destroy_time = started.elapsed();
    assert!(destroyed.iter().all(|d| d.is_ok()));
    assert_eq!(fake.vm_count(), 0);
    eprintln!(
        "fake driver, {N} VMs: spawn all {spawn_time:?}, list {list_time:?}, \
         stop+start each {power_time:?}, destroy all {destroy_time:?}"
    );
}

#[tokio::test]
async fn info_describes_the_fake_host() {
    let (_, f) = fixture();
    let info = f.hv.info().await.unwrap();
    assert_eq!(info.hypervisor_type, "fake");
    assert!(info.vcpus > 0 && info.memory_mib > 0);
}
