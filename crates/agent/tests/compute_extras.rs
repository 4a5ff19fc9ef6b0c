//! Compute beyond servers' basics, on the in-process fleet: server groups and the scheduler's
//! group rules, aggregates and the zones they give hosts, os-hosts, the usage audit log,
//! createBackup's rotation, diagnostics and the admin actions, Nova's network proxies,
//! instance actions of deleted servers, and the prompt end of agents' long-polls on shutdown.
//! Every new endpoint is checked for tenancy (another project's server or group is a 404) and
//! for its admin-only rule (403 for members).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nubo_agent::testing::{
    Fleet, FleetSpec, ADMIN_TOKEN, HANG_LIMIT, MEMBER_TOKEN, OTHER_TOKEN, PROJECT,
};
use serde_json::{json, Value};

async fn active(fleet: &Fleet, id: &str) {
    assert_eq!(fleet.wait_status(id, &["ACTIVE"]).await, "ACTIVE");
}

/// Creates a server in `group` (a scheduler hint); returns its id.
async fn create_in_group(fleet: &Fleet, name: &str, group: &str) -> String {
    let body = json!({
        "server": {"name": name, "imageRef": fleet.image_id, "flavorRef": "1",
            "networks": [{"uuid": fleet.private_network}]},
        "os:scheduler_hints": {"group": group},
    });
    let (code, v) = fleet
        .call("POST", "/compute/v2.1/servers", MEMBER_TOKEN, Some(body))
        .await;
    assert_eq!(code, 202, "{v}");
    v["server"]["id"].as_str().unwrap().to_string()
}

async fn host_of(fleet: &Fleet, id: &str) -> String {
    let (_, v) = fleet
        .call(
            "GET",
            &format!("/compute/v2.1/servers/{id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    v["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the server has no task (after snapshots and backups).
async fn idle(fleet: &Fleet, id: &str) {
    let deadline = Instant::now() + HANG_LIMIT;
    while Instant::now() < deadline {
        let (_, v) = fleet
            .call(
                "GET",
                &format!("/compute/v2.1/servers/{id}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        if v["server"]["OS-EXT-STS:task_state"].is_null() && v["server"]["status"] == "ACTIVE" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("server {id} stayed busy");
}

async fn new_group(fleet: &Fleet, version: &str, body: Value) -> String {
    let (code, v) = fleet
        .call_at(
            "POST",
            "/compute/v2.1/os-server-groups",
            MEMBER_TOKEN,
            version,
            Some(json!({ "server_group": body })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v["server_group"]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_groups_place_their_members() {
    let fleet = Fleet::start(FleetSpec {
        hosts: 3,
        ..FleetSpec::default()
    })
    .await;
    fleet.wait_registered().await;

    // Views per microversion, and validation.
    let anti = new_group(
        &fleet,
        "2.1",
        json!({"name": "anti", "policies": ["anti-affinity"]}),
    )
    .await;
    let (_, v) = fleet
        .call_at(
            "GET",
            &format!("/compute/v2.1/os-server-groups/{anti}"),
            MEMBER_TOKEN,
            "2.1",
            None,
        )
        .await;
    assert_eq!(v["server_group"]["policies"], json!(["anti-affinity"]));
    assert_eq!(v["server_group"]["metadata"], json!({}));
    assert!(v["server_group"].get("project_id").is_none());
    let (_, v) = fleet
        .call_at(
            "GET",
            &format!("/compute/v2.1/os-server-groups/{anti}"),
            MEMBER_TOKEN,
            "2.64",
            None,
        )
        .await;
    assert_eq!(v["server_group"]["policy"], "anti-affinity");
    assert_eq!(v["server_group"]["rules"], json!({}));
    assert_eq!(v["server_group"]["project_id"], PROJECT);
    assert!(v["server_group"].get("policies").is_none());
    for (version, body) in [
        ("2.1", json!({"name": "x", "policies": ["soft-affinity"]})),
        (
            "2.1",
            json!({"name": "x", "policies": ["affinity", "anti-affinity"]}),
        ),
        ("2.1", json!({"name": "", "policies": ["affinity"]})),
        ("2.64", json!({"name": "x", "policies": ["affinity"]})),
        (
            "2.64",
            json!({"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
        ),
        (
            "2.64",
            json!({"name": "x", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}),
        ),
    ] {
        let (code, _) = fleet
            .call_at(
                "POST",
                "/compute/v2.1/os-server-groups",
                MEMBER_TOKEN,
                version,
                Some(json!({ "server_group": body.clone() })),
            )
            .await;
        assert_eq!(code, 400, "{version} {body}");
    }

    // Anti-affinity: one member per host, then no valid host.
    let mut anti_members = Vec::new();
    for i in 0..3 {
        let id = create_in_group(&fleet, &format!("anti-{i}"), &anti).await;
        active(&fleet, &id).await;
        anti_members.push(id);
    }
    let mut hosts = BTreeSet::new();
    for id in &anti_members {
        hosts.insert(host_of(&fleet, id).await);
    }
    assert_eq!(
        hosts.len(),
        3,
        "anti-affinity members share a host: {hosts:?}"
    );
    let fourth = create_in_group(&fleet, "anti-3", &anti).await;
    assert_eq!(fleet.wait_status(&fourth, &["ERROR"]).await, "ERROR");

    // Affinity: every member on the first member's host.
    let aff = new_group(
        &fleet,
        "2.15",
        json!({"name": "aff", "policies": ["affinity"]}),
    )
    .await;
    let mut aff_hosts = BTreeSet::new();
    for i in 0..3 {
        let id = create_in_group(&fleet, &format!("aff-{i}"), &aff).await;
        active(&fleet, &id).await;
        aff_hosts.insert(host_of(&fleet, &id).await);
    }
    assert_eq!(aff_hosts.len(), 1, "affinity members on several hosts");

    // max_server_per_host (2.64): two per host.
    let two = new_group(
        &fleet,
        "2.64",
        json!({"name": "two", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}),
    )
    .await;
    let mut per_host = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..6 {
        let id = create_in_group(&fleet, &format!("two-{i}"), &two).await;
        active(&fleet, &id).await;
        *per_host.entry(host_of(&fleet, &id).await).or_default() += 1;
    }
    assert!(per_host.values().all(|n| *n == 2), "{per_host:?}");

    // Members, the server's own view (2.71), and leaving on delete.
    let (_, v) = fleet
        .call(
            "GET",
            &format!("/compute/v2.1/os-server-groups/{anti}"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(v["server_group"]["members"].as_array().unwrap().len(), 4);
    let (_, v) = fleet
        .call_at(
            "GET",
            &format!("/compute/v2.1/servers/{}", anti_members[0]),
            MEMBER_TOKEN,
            "2.71",
            None,
        )
        .await;
    assert_eq!(v["server"]["server_groups"], json!([anti]));
    fleet
        .call(
            "DELETE",
            &format!("/compute/v2.1/servers/{}", anti_members[0]),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(fleet.wait_status(&anti_members[0], &["GONE"]).await, "GONE");
    let (_, v) = fleet
        .call(
            "GET",
            &format!("/compute/v2.1/os-server-groups/{anti}"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert!(!v["server_group"]["members"]
        .as_array()
        .unwrap()
        .contains(&json!(anti_members[0])));

    // Tenancy: another project sees nothing, and cannot use the group.
    let (_, v) = fleet
        .call("GET", "/compute/v2.1/os-server-groups", OTHER_TOKEN, None)
        .await;
    assert_eq!(v["server_groups"], json!([]));
    for method in ["GET", "DELETE"] {
        let (code, _) = fleet
            .call(
                method,
                &format!("/compute/v2.1/os-server-groups/{anti}"),
                OTHER_TOKEN,
                None,
            )
            .await;
        assert_eq!(code, 404, "{method} of another project's group");
    }
    let (_, v) = fleet
        .call(
            "GET",
            "/compute/v2.1/os-server-groups?all_projects=1",
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(v["server_groups"].as_array().unwrap().len(), 3);

    // Quotas: server_groups, counted in limits.
    let (code, _) = fleet
        .call(
            "PUT",
            &format!("/compute/v2.1/os-quota-sets/{PROJECT}"),
            ADMIN_TOKEN,
            Some(json!({"quota_set": {"server_groups": 3, "server_group_members": 2}})),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = fleet
        .call_at(
            "POST",
            "/compute/v2.1/os-server-groups",
            MEMBER_TOKEN,
            "2.1",
            Some(json!({"server_group": {"name": "over", "policies": ["affinity"]}})),
        )
        .await;
    assert_eq!(code, 403);
    let (_, v) = fleet
        .call("GET", "/compute/v2.1/limits", MEMBER_TOKEN, None)
        .await;
    assert_eq!(v["limits"]["absolute"]["totalServerGroupsUsed"], 3);
    let body = json!({
        "server": {"name": "over", "imageRef": fleet.image_id, "flavorRef": "1",
            "networks": [{"uuid": fleet.private_network}]},
        "os:scheduler_hints": {"group": aff},
    });
    let (code, _) = fleet
        .call("POST", "/compute/v2.1/servers", MEMBER_TOKEN, Some(body))
        .await;
    assert_eq!(code, 403, "server_group_members over quota");
    let (code, _) = fleet
        .call(
            "DELETE",
            &format!("/compute/v2.1/os-server-groups/{two}"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(code, 204);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_zones_and_os_hosts() {
    let fleet = Fleet::start(FleetSpec {
        hosts: 2,
        ..FleetSpec::default()
    })
    .await;
    fleet.wait_registered().await;
    let agg = "/compute/v2.1/os-aggregates";
    // Admin only.
    for (method, path, body) in [
        ("GET", agg.to_string(), None),
        (
            "POST",
            agg.to_string(),
            Some(json!({"aggregate": {"name": "m"}})),
        ),
        ("GET", "/compute/v2.1/os-hosts".to_string(), None),
        ("GET", "/compute/v2.1/os-hosts/fake-00".to_string(), None),
        (
            "PUT",
            "/compute/v2.1/os-hosts/fake-00".to_string(),
            Some(json!({"status": "enable"})),
        ),
        (
            "GET",
            "/compute/v2.1/os-hosts/fake-00/reboot".to_string(),
            None,
        ),
        (
            "GET",
            "/compute/v2.1/os-instance_usage_audit_log".to_string(),
            None,
        ),
    ] {
        let (code, _) = fleet
            .call_at(method, &path, MEMBER_TOKEN, "2.1", body)
            .await;
        assert_eq!(code, 403, "{method} {path} by a member");
    }
    let (code, v) = fleet
        .call_at(
            "POST",
            agg,
            ADMIN_TOKEN,
            "2.41",
            Some(json!({"aggregate": {"name": "agg1", "availability_zone": "az1"}})),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert!(v["aggregate"].get("hosts").is_none());
    assert!(v["aggregate"]["uuid"].is_string());
    let id = v["aggregate"]["id"].as_i64().unwrap();
    let a = format!("{agg}/{id}");
    for (body, code) in [
        (json!({"aggregate": {"name": "agg1"}}), 409),
        (json!({"aggregate": {"name": ""}}), 400),
        (json!({"aggregate": {"name": "x".repeat(256)}}), 400),
    ] {
        assert_eq!(
            fleet.call("POST", agg, ADMIN_TOKEN, Some(body)).await.0,
            code
        );
    }
    for (method, path, body) in [
        ("GET", a.clone(), None),
        ("DELETE", a.clone(), None),
        (
            "POST",
            format!("{a}/action"),
            Some(json!({"add_host": {"host": "fake-00"}})),
        ),
    ] {
        let (code, _) = fleet.call(method, &path, MEMBER_TOKEN, body).await;
        assert_eq!(code, 403, "{method} {path} by a member");
    }
    let action = |body: Value| {
        let fleet = &fleet;
        let path = format!("{a}/action");
        async move { fleet.call("POST", &path, ADMIN_TOKEN, Some(body)).await }
    };
    let (code, v) = action(json!({"add_host": {"host": "fake-00"}})).await;
    assert_eq!(code, 200);
    assert_eq!(v["aggregate"]["hosts"], json!(["fake-00"]));
    assert_eq!(
        v["aggregate"]["metadata"],
        json!({"availability_zone": "az1"})
    );
    assert_eq!(
        action(json!({"add_host": {"host": "fake-00"}})).await.0,
        409
    );
    assert_eq!(action(json!({"add_host": {"host": "nope"}})).await.0, 404);
    assert_eq!(
        action(json!({"remove_host": {"host": "fake-01"}})).await.0,
        404
    );
    // The host is in az1 now: zones list it, and a server asked for az1 lands on it.
    let (_, v) = fleet
        .call(
            "GET",
            "/compute/v2.1/os-availability-zone",
            MEMBER_TOKEN,
            None,
        )
        .await;
    let zones: Vec<&str> = v["availabilityZoneInfo"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|z| z["zoneName"].as_str())
        .collect();
    assert!(zones.contains(&"az1"), "{zones:?}");
    let body = json!({"server": {"name": "in-az1", "imageRef": fleet.image_id, "flavorRef": "1",
        "availability_zone": "az1", "networks": [{"uuid": fleet.private_network}]}});
    let (code, v) = fleet
        .call("POST", "/compute/v2.1/servers", MEMBER_TOKEN, Some(body))
        .await;
    assert_eq!(code, 202, "{v}");
    let server = v["server"]["id"].as_str().unwrap().to_string();
    active(&fleet, &server).await;
    assert_eq!(host_of(&fleet, &server).await, "fake-00");
    // Not while a server runs there.
    assert_eq!(
        action(json!({"set_metadata": {"metadata": {"availability_zone": "az2"}}}))
            .await
            .0,
        400
    );
    assert_eq!(
        action(json!({"remove_host": {"host": "fake-00"}})).await.0,
        409
    );
    let (code, v) = action(json!({"set_metadata": {"metadata": {"k": "v"}}})).await;
    assert_eq!(code, 200);
    assert_eq!(v["aggregate"]["metadata"]["k"], "v");
    assert_eq!(fleet.call("DELETE", &a, ADMIN_TOKEN, None).await.0, 400);

    // os-hosts (up to 2.42): compute hosts and the API's own services.
    let (code, v) = fleet
        .call_at("GET", "/compute/v2.1/os-hosts", ADMIN_TOKEN, "2.1", None)
        .await;
    assert_eq!(code, 200);
    let hosts = v["hosts"].as_array().unwrap();
    assert!(hosts
        .iter()
        .any(|h| h["host_name"] == "fake-00" && h["zone"] == "az1" && h["service"] == "compute"));
    let (_, v) = fleet
        .call_at(
            "GET",
            "/compute/v2.1/os-hosts?zone=az1",
            ADMIN_TOKEN,
            "2.1",
            None,
        )
        .await;
    assert_eq!(v["hosts"].as_array().unwrap().len(), 1);
    let (code, v) = fleet
        .call_at(
            "GET",
            "/compute/v2.1/os-hosts/fake-00",
            ADMIN_TOKEN,
            "2.1",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["host"][0]["resource"]["project"], "(total)");
    assert_eq!(v["host"][3]["resource"]["project"], PROJECT);
    for (method, path, body, code) in [
        ("GET", "/compute/v2.1/os-hosts/nope", None, 404),
        (
            "PUT",
            "/compute/v2.1/os-hosts/nope",
            Some(json!({"status": "enable"})),
            404,
        ),
        (
            "PUT",
            "/compute/v2.1/os-hosts/fake-01",
            Some(json!({"status": "bogus"})),
            400,
        ),
        (
            "PUT",
            "/compute/v2.1/os-hosts/fake-01",
            Some(json!({})),
            400,
        ),
        (
            "PUT",
            "/compute/v2.1/os-hosts/fake-01",
            Some(json!({"maintenance_mode": "enable"})),
            501,
        ),
        ("GET", "/compute/v2.1/os-hosts/fake-01/shutdown", None, 501),
        ("GET", "/compute/v2.1/os-hosts/nope/startup", None, 404),
    ] {
        let (got, _) = fleet.call_at(method, path, ADMIN_TOKEN, "2.1", body).await;
        assert_eq!(got, code, "{method} {path}");
    }
    let (code, v) = fleet
        .call_at(
            "PUT",
            "/compute/v2.1/os-hosts/fake-01",
            ADMIN_TOKEN,
            "2.1",
            Some(json!({"status": "disable"})),
        )
        .await;
    assert_eq!((code, v["status"].as_str()), (200, Some("disabled")));
    fleet
        .call_at(
            "PUT",
            "/compute/v2.1/os-hosts/fake-01",
            ADMIN_TOKEN,
            "2.1",
            Some(json!({"status": "enable"})),
        )
        .await;
    let (code, _) = fleet
        .call_at("GET", "/compute/v2.1/os-hosts", ADMIN_TOKEN, "2.43", None)
        .await;
    assert_eq!(code, 404);

    // The usage audit log: every host has not run (Nubo runs no audit task).
    let (code, v) = fleet
        .call(
            "GET",
            "/compute/v2.1/os-instance_usage_audit_log",
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["instance_usage_audit_logs"]["num_hosts_not_run"], 2);
    let (code, v) = fleet
        .call(
            "GET",
            "/compute/v2.1/os-instance_usage_audit_log/2026-03-02%2010:00:00",
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        v["instance_usage_audit_log"]["period_beginning"],
        "2026-02-01 00:00:00"
    );
    assert_eq!(
        v["instance_usage_audit_log"]["period_ending"],
        "2026-03-01 00:00:00"
    );
    let (code, _) = fleet
        .call(
            "GET",
            "/compute/v2.1/os-instance_usage_audit_log/invalid_time",
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(code, 400);

    // Emptied, the aggregate goes.
    fleet
        .call(
            "DELETE",
            &format!("/compute/v2.1/servers/{server}"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(fleet.wait_status(&server, &["GONE"]).await, "GONE");
    assert_eq!(
        action(json!({"remove_host": {"host": "fake-00"}})).await.0,
        200
    );
    assert_eq!(fleet.call("DELETE", &a, ADMIN_TOKEN, None).await.0, 200);
    assert_eq!(fleet.call("GET", &a, ADMIN_TOKEN, None).await.0, 404);
    assert_eq!(
        fleet
            .call("GET", &format!("{agg}/-1"), ADMIN_TOKEN, None)
            .await
            .0,
        404
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_diagnostics_and_admin_actions() {
    let fleet = Fleet::start(FleetSpec::default()).await;
    fleet.wait_registered().await;
    let id = fleet.create_server("busy", "1").await.unwrap();
    active(&fleet, &id).await;
    let act = format!("/compute/v2.1/servers/{id}/action");

    // createBackup with rotation 2: three backups leave the newest two.
    for name in ["b1", "b2", "b3"] {
        idle(&fleet, &id).await;
        let (code, v) = fleet
            .call_at(
                "POST",
                &act,
                MEMBER_TOKEN,
                "2.45",
                Some(
                    json!({"createBackup": {"name": name, "backup_type": "daily", "rotation": 2}}),
                ),
            )
            .await;
        assert_eq!(code, 202, "{v}");
        assert!(v["image_id"].is_string());
    }
    idle(&fleet, &id).await;
    let mut names = Vec::new();
    let deadline = Instant::now() + HANG_LIMIT;
    while Instant::now() < deadline {
        let (_, v) = fleet
            .call_at(
                "GET",
                &format!("/compute/v2.1/images/detail?server={id}"),
                MEMBER_TOKEN,
                "2.35",
                None,
            )
            .await;
        names = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["metadata"]["image_type"] == "backup" && i["status"] == "ACTIVE")
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        if names == ["b2", "b3"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(names, ["b2", "b3"]);
    let (code, _) = fleet
        .call(
            "POST",
            &act,
            MEMBER_TOKEN,
            Some(json!({"createBackup": {"name": "x", "rotation": 1}})),
        )
        .await;
    assert_eq!(code, 400, "backup_type is required");

    // Diagnostics: admin only, two shapes.
    let diag = format!("/compute/v2.1/servers/{id}/diagnostics");
    assert_eq!(fleet.call("GET", &diag, MEMBER_TOKEN, None).await.0, 403);
    let (code, v) = fleet.call_at("GET", &diag, ADMIN_TOKEN, "2.48", None).await;
    assert_eq!(code, 200);
    assert_eq!(v["state"], "running");
    assert_eq!(v["num_nics"], 1);
    assert!(v["memory_details"]["maximum"].is_number());
    let (_, v) = fleet.call_at("GET", &diag, ADMIN_TOKEN, "2.1", None).await;
    assert!(v["memory"].is_number());

    // Admin actions refuse members; migrate and restore check states as Nova does.
    for body in [json!({"injectNetworkInfo": null}), json!({"migrate": null})] {
        assert_eq!(
            fleet
                .call("POST", &act, MEMBER_TOKEN, Some(body.clone()))
                .await
                .0,
            403,
            "{body}"
        );
    }
    assert_eq!(
        fleet
            .call(
                "POST",
                &act,
                ADMIN_TOKEN,
                Some(json!({"injectNetworkInfo": null}))
            )
            .await
            .0,
        202
    );
    assert_eq!(
        fleet
            .call("POST", &act, ADMIN_TOKEN, Some(json!({"migrate": null})))
            .await
            .0,
        400,
        "one host"
    );
    assert_eq!(
        fleet
            .call("POST", &act, MEMBER_TOKEN, Some(json!({"restore": null})))
            .await
            .0,
        409
    );
    fleet
        .call("POST", &act, MEMBER_TOKEN, Some(json!({"suspend": null})))
        .await;
    assert_eq!(fleet.wait_status(&id, &["SUSPENDED"]).await, "SUSPENDED");
    assert_eq!(
        fleet
            .call("POST", &act, ADMIN_TOKEN, Some(json!({"migrate": null})))
            .await
            .0,
        409
    );
    fleet
        .call("POST", &act, MEMBER_TOKEN, Some(json!({"resume": null})))
        .await;
    active(&fleet, &id).await;

    // Another project: 404 on every new action and sub-resource.
    for (method, path, body) in [
        (
            "POST",
            act.clone(),
            Some(json!({"createBackup": {"name": "x", "backup_type": "d", "rotation": 1}})),
        ),
        (
            "POST",
            act.clone(),
            Some(json!({"addSecurityGroup": {"name": "default"}})),
        ),
        (
            "POST",
            act.clone(),
            Some(json!({"removeSecurityGroup": {"name": "default"}})),
        ),
        (
            "POST",
            act.clone(),
            Some(json!({"addFloatingIp": {"address": "172.24.4.10"}})),
        ),
        ("POST", act.clone(), Some(json!({"restore": null}))),
        (
            "GET",
            format!("/compute/v2.1/servers/{id}/os-security-groups"),
            None,
        ),
        ("GET", diag.clone(), None),
    ] {
        let (code, _) = fleet
            .call_at(method, &path, OTHER_TOKEN, "2.35", body.clone())
            .await;
        assert_eq!(code, 404, "{method} {path} {body:?} by another project");
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_proxies_and_server_security_groups() {
    let fleet = Fleet::start(FleetSpec::default()).await;
    fleet.wait_registered().await;
    let id = fleet.create_server("net", "1").await.unwrap();
    active(&fleet, &id).await;
    let act = format!("/compute/v2.1/servers/{id}/action");
    let at = |method: &'static str, path: String, body: Option<Value>| {
        let fleet = &fleet;
        async move {
            fleet
                .call_at(method, &path, MEMBER_TOKEN, "2.35", body)
                .await
        }
    };

    // Security groups and rules through Nova's proxy.
    let (code, v) = at(
        "POST",
        "/compute/v2.1/os-security-groups".into(),
        Some(json!({"security_group": {"name": "web", "description": "web servers"}})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let sg = v["security_group"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        v["security_group"]["rules"],
        json!([]),
        "egress rules are not Nova's"
    );
    let (code, v) = at(
        "POST",
        "/compute/v2.1/os-security-group-rules".into(),
        Some(json!({"security_group_rule": {"parent_group_id": sg, "ip_protocol": "tcp", "from_port": 22, "to_port": 22}})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["security_group_rule"]["ip_range"]["cidr"], "0.0.0.0/0");
    let rule = v["security_group_rule"]["id"].as_str().unwrap().to_string();
    for (rule_body, code) in [
        (
            json!({"parent_group_id": sg, "ip_protocol": "tcp", "from_port": 22, "to_port": 22}),
            400,
        ),
        (
            json!({"parent_group_id": sg, "ip_protocol": "tcp", "from_port": 22, "to_port": 21}),
            400,
        ),
        (
            json!({"parent_group_id": sg, "ip_protocol": "tcp", "from_port": 70000, "to_port": 22}),
            400,
        ),
        (
            json!({"parent_group_id": sg, "ip_protocol": "bogus", "from_port": 1, "to_port": 2}),
            400,
        ),
        (
            json!({"parent_group_id": "not-a-uuid", "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
            400,
        ),
        (
            json!({"parent_group_id": "8c7a3b3e-0000-4000-8000-000000000000", "ip_protocol": "tcp", "from_port": 1, "to_port": 2}),
            404,
        ),
    ] {
        let (got, v) = at(
            "POST",
            "/compute/v2.1/os-security-group-rules".into(),
            Some(json!({ "security_group_rule": rule_body.clone() })),
        )
        .await;
        assert_eq!(got, code, "{rule_body} {v}");
    }
    let (_, v) = at(
        "GET",
        format!("/compute/v2.1/os-security-groups/{sg}"),
        None,
    )
    .await;
    assert_eq!(v["security_group"]["rules"].as_array().unwrap().len(), 1);

    // addSecurityGroup: the group is on the server's port and in its view; in use, it stays.
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"addSecurityGroup": {"name": "web"}}))
        )
        .await
        .0,
        202
    );
    let ports = fleet.network.ports_of_device(&id).await.unwrap();
    assert!(ports[0].security_groups.contains(&sg));
    let (_, v) = at(
        "GET",
        format!("/compute/v2.1/servers/{id}/os-security-groups"),
        None,
    )
    .await;
    let ids: Vec<&str> = v["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert!(ids.contains(&sg.as_str()));
    let (_, v) = at("GET", format!("/compute/v2.1/servers/{id}"), None).await;
    assert!(v["server"]["security_groups"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "web"})));
    assert_eq!(
        at(
            "DELETE",
            format!("/compute/v2.1/os-security-groups/{sg}"),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"addSecurityGroup": {"name": "nope"}}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"removeSecurityGroup": {"name": "web"}}))
        )
        .await
        .0,
        202
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"removeSecurityGroup": {"name": "web"}}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        at(
            "DELETE",
            format!("/compute/v2.1/os-security-group-rules/{rule}"),
            None
        )
        .await
        .0,
        202
    );
    assert_eq!(
        at(
            "DELETE",
            format!("/compute/v2.1/os-security-groups/{sg}"),
            None
        )
        .await
        .0,
        202
    );
    assert_eq!(
        at(
            "GET",
            format!("/compute/v2.1/os-security-groups/{sg}"),
            None
        )
        .await
        .0,
        404
    );

    // Floating IPs: allocate, associate (addresses show it), disassociate, release.
    let (_, v) = at("GET", "/compute/v2.1/os-floating-ip-pools".into(), None).await;
    assert_eq!(v["floating_ip_pools"], json!([{"name": "public"}]));
    let (code, v) = at(
        "POST",
        "/compute/v2.1/os-floating-ips".into(),
        Some(json!({"pool": "public"})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let fip = v["floating_ip"].clone();
    let address = fip["ip"].as_str().unwrap().to_string();
    assert_eq!(
        at(
            "POST",
            "/compute/v2.1/os-floating-ips".into(),
            Some(json!({"pool": "nope"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"addFloatingIp": {"address": address}}))
        )
        .await
        .0,
        202
    );
    let (_, v) = at(
        "GET",
        format!(
            "/compute/v2.1/os-floating-ips/{}",
            fip["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(v["floating_ip"]["instance_id"], json!(id));
    let (_, v) = at("GET", format!("/compute/v2.1/servers/{id}"), None).await;
    let addresses = v["server"]["addresses"]["private"].as_array().unwrap();
    assert!(
        addresses
            .iter()
            .any(|a| a["addr"] == json!(address) && a["OS-EXT-IPS:type"] == "floating"),
        "{addresses:?}"
    );
    let (_, v) = at("GET", format!("/compute/v2.1/servers/{id}/ips"), None).await;
    assert!(v["addresses"]["private"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["addr"] == json!(address)));
    assert_eq!(
        fleet
            .call_at(
                "POST",
                &act,
                MEMBER_TOKEN,
                "2.44",
                Some(json!({"addFloatingIp": {"address": address}}))
            )
            .await
            .0,
        404
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"removeFloatingIp": {"address": address}}))
        )
        .await
        .0,
        202
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"removeFloatingIp": {"address": address}}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        at(
            "POST",
            act.clone(),
            Some(json!({"addFloatingIp": {"address": "0.0.0.0"}}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        at(
            "DELETE",
            format!(
                "/compute/v2.1/os-floating-ips/{}",
                fip["id"].as_str().unwrap()
            ),
            None
        )
        .await
        .0,
        202
    );

    // Networks: the project's, Nova-shaped; gone from 2.36; nova-network's writes are 410.
    let (_, v) = at("GET", "/compute/v2.1/os-networks".into(), None).await;
    assert!(v["networks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["label"] == "private"));
    let (code, v) = at(
        "GET",
        format!("/compute/v2.1/os-tenant-networks/{}", fleet.private_network),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["network"]["label"], "private");
    assert_eq!(
        at("POST", "/compute/v2.1/os-networks".into(), Some(json!({})))
            .await
            .0,
        410
    );
    assert_eq!(
        fleet
            .call_at(
                "GET",
                "/compute/v2.1/os-networks",
                MEMBER_TOKEN,
                "2.36",
                None
            )
            .await
            .0,
        404
    );
    assert_eq!(
        fleet
            .call_at(
                "GET",
                "/compute/v2.1/os-security-groups",
                MEMBER_TOKEN,
                "2.36",
                None
            )
            .await
            .0,
        404
    );
    // Another project sees none of this project's groups or floating IPs.
    let (_, v) = fleet
        .call_at(
            "GET",
            "/compute/v2.1/os-security-groups?all_tenants=1",
            OTHER_TOKEN,
            "2.35",
            None,
        )
        .await;
    assert!(v["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["tenant_id"] == "p-other"));
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_servers_keep_their_actions() {
    let fleet = Fleet::start(FleetSpec::default()).await;
    fleet.wait_registered().await;
    let id = fleet.create_server("gone", "1").await.unwrap();
    active(&fleet, &id).await;
    fleet
        .call(
            "DELETE",
            &format!("/compute/v2.1/servers/{id}"),
            MEMBER_TOKEN,
            None,
        )
        .await;
    assert_eq!(fleet.wait_status(&id, &["GONE"]).await, "GONE");
    let path = format!("/compute/v2.1/servers/{id}/os-instance-actions");
    let (code, v) = fleet
        .call_at("GET", &path, MEMBER_TOKEN, "2.21", None)
        .await;
    assert_eq!(code, 200);
    let mut actions: Vec<&str> = v["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    actions.sort();
    assert_eq!(actions, ["create", "delete"]);
    let request = v["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = fleet
        .call_at(
            "GET",
            &format!("{path}/{request}"),
            MEMBER_TOKEN,
            "2.21",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["instanceAction"]["events"][0]["result"], "Success");
    assert_eq!(
        fleet
            .call_at("GET", &path, MEMBER_TOKEN, "2.20", None)
            .await
            .0,
        404
    );
    assert_eq!(
        fleet
            .call_at("GET", &path, OTHER_TOKEN, "2.21", None)
            .await
            .0,
        404
    );
    fleet.stop().await;
}

/// A shutting-down API answers its agents' long-polls at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_long_polls() {
    let fleet = Fleet::start(FleetSpec::default()).await;
    fleet.wait_registered().await;
    let compute = fleet.compute.clone();
    let poll = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        compute
            .desired_state("fake-00", i64::MAX - 1, Duration::from_secs(3600))
            .await
            .unwrap();
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    fleet.compute.shut_down();
    // An hour-long poll that ends within minutes was ended by the shutdown.
    let waited = tokio::time::timeout(HANG_LIMIT, poll)
        .await
        .expect("the long-poll ended")
        .unwrap();
    assert!(waited < HANG_LIMIT, "{waited:?}");
    fleet.stop().await;
}
