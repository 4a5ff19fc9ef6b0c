//! The compute control plane with real agents on fake hypervisors: many servers on many
//! hosts, no overcommit, failures at every create step leave nothing behind, deletes clean up,
//! agents restart and adopt, tenancy and admin-only rules on every endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nubo_agent::testing::{Fleet, FleetSpec, ADMIN_TOKEN, HANG_LIMIT, MEMBER_TOKEN, OTHER_TOKEN};
use nubo_blockstore::{BlockStore, Op};
use nubo_compute::service::BuildStep;
use nubo_hypervisor::Hypervisor;
use serde_json::json;

async fn disks_left(fleet: &Fleet, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        if fleet.store.exists(&format!("disk-{id}")).await.unwrap() {
            n += 1;
        }
    }
    n
}

/// Tables that keep history by design: instance actions and their events, and the records of
/// deleted servers they hang from (Nova lists the actions of a deleted server from 2.21).
const HISTORY: &[&str] = &[
    "compute_actions",
    "compute_action_events",
    "compute_deleted_servers",
];

/// Rows per table, history tables left out. The project's default security group is made
/// first (Networking makes it on the project's first use and keeps it, as Neutron does).
async fn state_rows(fleet: &Fleet) -> std::collections::BTreeMap<String, i64> {
    let (code, _) = fleet
        .call_at(
            "GET",
            "/compute/v2.1/os-security-groups",
            MEMBER_TOKEN,
            "2.35",
            None,
        )
        .await;
    assert_eq!(code, 200);
    let mut rows = fleet.table_rows().await;
    rows.retain(|t, _| !HISTORY.contains(&t.as_str()));
    rows
}

/// (vCPUs, MiB) the scheduler has claimed, summed over hosts, as os-hypervisors reports it.
async fn claimed(fleet: &Fleet) -> (i64, i64) {
    let (_, v) = fleet
        .call(
            "GET",
            "/compute/v2.1/os-hypervisors/detail",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let hs = v["hypervisors"].as_array().expect("hypervisors");
    (
        hs.iter().map(|h| h["vcpus_used"].as_i64().unwrap()).sum(),
        hs.iter()
            .map(|h| h["memory_mb_used"].as_i64().unwrap())
            .sum(),
    )
}

async fn vms_left(fleet: &Fleet) -> usize {
    let mut n = 0;
    for node in &fleet.nodes {
        n += node.hv.list().await.unwrap().len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_servers_on_twenty_hosts() {
    let spec = FleetSpec {
        hosts: 20,
        vcpus: 4,
        memory_mb: 4096,
        ..FleetSpec::default()
    };
    let fleet = Arc::new(Fleet::start(spec).await);
    fleet.wait_registered().await;
    let rows_before = fleet.server_rows().await;
    let ports_before = fleet.server_ports().await;
    let tables_before = state_rows(&fleet).await;
    let store_before = fleet.store.contents();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let f = fleet.clone();
        tasks.push(tokio::spawn(async move {
            // m1.tiny: 512 MiB; a host holds 4096 * 1.5 / 512 = 12 of them.
            f.create_server(&format!("s{i}"), "3")
                .await
                .expect("create accepted")
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let statuses = fleet.wait_all_status(&ids, &["ACTIVE", "ERROR"]).await;
    for id in &ids {
        assert_eq!(statuses[id], "ACTIVE", "server {id}");
    }
    eprintln!(
        "200 servers ACTIVE on 20 fake hosts in {:?}",
        started.elapsed()
    );
    // No overcommit: per host, what the hypervisor runs fits the host after ratios.
    let mut placed: HashMap<String, usize> = HashMap::new();
    for node in &fleet.nodes {
        let vms = node.hv.list().await.unwrap();
        let ram: u64 = vms.iter().map(|v| v.memory_mib).sum();
        assert!(ram <= 4096 * 3 / 2, "{} runs {ram} MiB", node.name);
        let vcpus: u32 = vms.iter().map(|v| v.vcpus).sum();
        assert!(vcpus <= 4 * 16, "{} runs {vcpus} vCPUs", node.name);
        placed.insert(node.name.clone(), vms.len());
    }
    assert_eq!(placed.values().sum::<usize>(), 200);
    // Every server is where the API says it is.
    let (_, detail) = fleet
        .call(
            "GET",
            "/compute/v2.1/servers/detail?all_tenants=1",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let servers = detail["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 200);
    let mut by_host: HashMap<String, usize> = HashMap::new();
    for s in servers {
        *by_host
            .entry(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(by_host, placed);
    assert_eq!(fleet.server_ports().await, ports_before + 200);
    // Delete everything.
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let f = fleet.clone();
        tasks.push(tokio::spawn(async move {
            let (code, _) = f
                .call(
                    "DELETE",
                    &format!("/compute/v2.1/servers/{id}"),
                    MEMBER_TOKEN,
                    None,
                )
                .await;
            assert_eq!(code, 204);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let statuses = fleet.wait_all_status(&ids, &["GONE"]).await;
    for id in &ids {
        assert_eq!(statuses[id], "GONE", "server {id}");
    }
    assert_eq!(fleet.server_rows().await, rows_before);
    assert_eq!(fleet.server_ports().await, ports_before);
    assert_eq!(disks_left(&fleet, &ids).await, 0);
    assert_eq!(vms_left(&fleet).await, 0);
    for node in &fleet.nodes {
        assert!(node.host.taps.lock().is_empty(), "{} keeps taps", node.name);
    }
    // The database (every table of every service but the action history), the block store
    // (every object and layer) and the claims are as before the creates.
    assert_eq!(state_rows(&fleet).await, tables_before);
    assert_eq!(fleet.store.contents(), store_before);
    assert_eq!(claimed(&fleet).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_every_create_step_leaves_nothing_behind() {
    let fleet = Fleet::start(FleetSpec {
        hosts: 2,
        ..FleetSpec::default()
    })
    .await;
    fleet.wait_registered().await;
    let ports_before = fleet.server_ports().await;
    let rows_before = fleet.server_rows().await;
    let tables_before = state_rows(&fleet).await;
    let store_before = fleet.store.contents();
    type Inject = Box<dyn Fn(&Fleet)>;
    let steps: Vec<(&str, Inject)> = vec![
        (
            "claim",
            Box::new(|f: &Fleet| f.compute.inject_failure(BuildStep::Claim, 1)),
        ),
        (
            "ports",
            Box::new(|f: &Fleet| f.compute.inject_failure(BuildStep::Ports, 1)),
        ),
        (
            "disk",
            Box::new(|f: &Fleet| f.compute.inject_failure(BuildStep::Disk, 1)),
        ),
        (
            "clone",
            Box::new(|f: &Fleet| f.store.fail_next(Op::CreateClone, 1)),
        ),
        (
            "desired",
            Box::new(|f: &Fleet| f.compute.inject_failure(BuildStep::Desired, 1)),
        ),
        (
            "spawn on every host",
            Box::new(|f: &Fleet| {
                for n in &f.nodes {
                    n.hv.fail_next_spawns(10);
                }
            }),
        ),
    ];
    for (name, inject) in steps {
        inject(&fleet);
        let id = fleet.create_server(name, "1").await.expect("accepted");
        let status = fleet.wait_status(&id, &["ERROR", "ACTIVE"]).await;
        assert_eq!(status, "ERROR", "step {name}");
        let (_, v) = fleet
            .call(
                "GET",
                &format!("/compute/v2.1/servers/{id}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        assert!(
            v["server"]["fault"]["message"].as_str().is_some(),
            "step {name}: fault {v}"
        );
        assert_eq!(
            fleet.server_ports().await,
            ports_before,
            "step {name}: ports left"
        );
        assert_eq!(
            disks_left(&fleet, std::slice::from_ref(&id)).await,
            0,
            "step {name}: disk left"
        );
        // The agent removes what a failed spawn left after it reports: wait for it.
        let deadline = Instant::now() + HANG_LIMIT;
        while vms_left(&fleet).await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(vms_left(&fleet).await, 0, "step {name}: VM left");
        assert_eq!(claimed(&fleet).await, (0, 0), "step {name}: claim left");
        assert_eq!(
            fleet.store.contents(),
            store_before,
            "step {name}: block store objects left"
        );
        let (code, _) = fleet
            .call(
                "DELETE",
                &format!("/compute/v2.1/servers/{id}"),
                MEMBER_TOKEN,
                None,
            )
            .await;
        assert_eq!(code, 204);
        assert_eq!(fleet.wait_status(&id, &["GONE"]).await, "GONE");
        for n in &fleet.nodes {
            n.hv.fail_next_spawns(0);
        }
    }
    assert_eq!(fleet.server_rows().await, rows_before);
    assert_eq!(state_rows(&fleet).await, tables_before);
    assert_eq!(fleet.store.contents(), store_before);
    // A spawn that fails once is retried on the other host.
    fleet.nodes[0].hv.fail_next_spawns(1);
    let id = fleet.create_server("retried", "1").await.unwrap();
    assert_eq!(fleet.wait_status(&id, &["ACTIVE", "ERROR"]).await, "ACTIVE");
    let (_, v) = fleet
        .call(
            "GET",
            &format!("/compute/v2.1/servers/{id}/os-instance-actions"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(v["instanceActions"][0]["action"], "create");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_actions_and_agent_restart() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let mut fleet = Fleet::start(FleetSpec::default()).await;
    fleet.wait_registered().await;
    let id = fleet.create_server("vm1", "1").await.unwrap();
    assert_eq!(fleet.wait_status(&id, &["ACTIVE"]).await, "ACTIVE");
    let act = |body: serde_json::Value| {
        let f = &fleet;
        let id = id.clone();
        async move {
            let (code, v) = f
                .call(
                    "POST",
                    &format!("/compute/v2.1/servers/{id}/action"),
                    MEMBER_TOKEN,
                    Some(body),
                )
                .await;
            assert!(code == 202 || code == 200, "{code} {v}");
            v
        }
    };
    for (body, want) in [
        (json!({"os-stop": null}), "SHUTOFF"),
        (json!({"os-start": null}), "ACTIVE"),
        (json!({"pause": null}), "PAUSED"),
        (json!({"unpause": null}), "ACTIVE"),
        (json!({"suspend": null}), "SUSPENDED"),
        (json!({"resume": null}), "ACTIVE"),
        (json!({"reboot": {"type": "HARD"}}), "ACTIVE"),
        (json!({"reboot": {"type": "SOFT"}}), "ACTIVE"),
    ] {
        act(body.clone()).await;
        assert_eq!(fleet.wait_status(&id, &[want]).await, want, "{body}");
    }
    let v = act(json!({"os-getConsoleOutput": {"length": 5}})).await;
    assert!(v["output"].as_str().unwrap().contains("nubo-guest"), "{v}");
    // Conflicting state: 409.
    let (code, _) = fleet
        .call(
            "POST",
            &format!("/compute/v2.1/servers/{id}/action"),
            MEMBER_TOKEN,
            Some(json!({"os-start": null})),
        )
        .await;
    assert_eq!(code, 409);
    // The agent restarts: the VM is adopted, not spawned again; a VM deleted meanwhile goes.
    let node = fleet.nodes.pop().unwrap();
    let name = node.name.clone();
    let (hv, host) = node.stop().await;
    let spawns = hv.spawn_count();
    let gone = fleet.create_server("gone-while-down", "1").await.unwrap();
    let (code, _) = fleet
        .call(
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(code, 204);
    let node = fleet.start_agent(&name, hv.clone(), host).await;
    fleet.nodes.push(node);
    assert_eq!(fleet.wait_status(&id, &["GONE"]).await, "GONE");
    assert_eq!(fleet.wait_status(&gone, &["ACTIVE"]).await, "ACTIVE");
    assert_eq!(hv.spawn_count(), spawns + 1);
    assert_eq!(hv.list().await.unwrap().len(), 1);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_and_admin_only_endpoints() {
    let fleet = Fleet::start(FleetSpec::default()).await;
    fleet.wait_registered().await;
    let id = fleet.create_server("mine", "1").await.unwrap();
    assert_eq!(fleet.wait_status(&id, &["ACTIVE"]).await, "ACTIVE");
    let s = format!("/compute/v2.1/servers/{id}");
    // Another project's server is a 404 everywhere.
    let per_server: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("GET", s.clone(), None),
        ("PUT", s.clone(), Some(json!({"server": {"name": "x"}}))),
        ("DELETE", s.clone(), None),
        (
            "POST",
            format!("{s}/action"),
            Some(json!({"os-stop": null})),
        ),
        (
            "POST",
            format!("{s}/action"),
            Some(json!({"os-getConsoleOutput": {}})),
        ),
        ("GET", format!("{s}/metadata"), None),
        (
            "POST",
            format!("{s}/metadata"),
            Some(json!({"metadata": {"a": "b"}})),
        ),
        ("GET", format!("{s}/tags"), None),
        ("GET", format!("{s}/ips"), None),
        ("GET", format!("{s}/os-interface"), None),
        ("GET", format!("{s}/os-instance-actions"), None),
    ];
    for (method, path, body) in &per_server {
        let (code, _) = fleet.call(method, path, OTHER_TOKEN, body.clone()).await;
        assert_eq!(code, 404, "{method} {path} by another project");
    }
    let (_, list) = fleet
        .call("GET", "/compute/v2.1/servers", OTHER_TOKEN, None)
        .await;
    assert_eq!(list["servers"].as_array().unwrap().len(), 0);
    // Admin-only endpoints refuse members with 403 and serve admins.
    let admin_only: Vec<(&str, &str, Option<serde_json::Value>)> = vec![
        ("GET", "/compute/v2.1/os-hypervisors", None),
        ("GET", "/compute/v2.1/os-hypervisors/detail", None),
        ("GET", "/compute/v2.1/os-hypervisors/statistics", None),
        ("GET", "/compute/v2.1/os-services", None),
        ("GET", "/compute/v2.1/os-simple-tenant-usage", None),
        ("GET", "/compute/v2.1/os-availability-zone/detail", None),
        (
            "POST",
            "/compute/v2.1/flavors",
            Some(json!({"flavor": {"name": "f-admin", "ram": 64, "vcpus": 1, "disk": 0}})),
        ),
        (
            "PUT",
            "/compute/v2.1/os-quota-sets/p-fleet",
            Some(json!({"quota_set": {"instances": 50}})),
        ),
        (
            "POST",
            "/compute/v2.1/flavors/1/os-extra_specs",
            Some(json!({"extra_specs": {"a": "b"}})),
        ),
    ];
    for (method, path, body) in &admin_only {
        let (code, _) = fleet.call(method, path, MEMBER_TOKEN, body.clone()).await;
        assert_eq!(code, 403, "{method} {path} by a member");
        let (code, v) = fleet.call(method, path, ADMIN_TOKEN, body.clone()).await;
        assert!(code < 300, "{method} {path} by an admin: {code} {v}");
    }
    // No token: 401.
    let (code, _) = fleet
        .call("GET", "/compute/v2.1/servers", "bogus", None)
        .await;
    assert_eq!(code, 401);
    fleet.stop().await;
}
