//! IPAM under concurrency: 500 port creates racing on one /24 get distinct addresses inside
//! the pools and distinct MACs; the ones that do not fit get Neutron's 409, never a 500; racing
//! requests for one address get it exactly once.

mod common;

use std::collections::HashSet;

use common::{api, kind};
use http::StatusCode;
use nubo_network::addr::{Cidr, Ip};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_port_creates_on_one_slash_24() {
    let api = std::sync::Arc::new(api().await);
    let net = api.network("alice", "busy").await;
    api.subnet("alice", &net, "10.9.0.0/24").await;
    let mut tasks = Vec::new();
    for i in 0..500 {
        let api = api.clone();
        let net = net.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                "alice",
                "/v2.0/ports",
                json!({"port": {"network_id": net, "name": format!("p{i}")}}),
            )
            .await
        }));
    }
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    let (mut created, mut exhausted) = (0, 0);
    let pool = Cidr::parse("10.9.0.0/24").unwrap();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => {
                created += 1;
                let port = &body["port"];
                let fixed = port["fixed_ips"].as_array().unwrap();
                assert_eq!(fixed.len(), 1, "{body}");
                let ip = fixed[0]["ip_address"].as_str().unwrap().to_string();
                let parsed = Ip::parse(&ip).unwrap();
                assert!(pool.contains(&parsed));
                assert!(
                    parsed.value > pool.first().value + 1,
                    "took the gateway or network: {ip}"
                );
                assert!(parsed.value < pool.last().value, "took the broadcast: {ip}");
                assert!(ips.insert(ip.clone()), "duplicate address {ip}");
                assert!(macs.insert(port["mac_address"].as_str().unwrap().to_string()));
            }
            StatusCode::CONFLICT => {
                assert_eq!(kind(&body), "IpAddressGenerationFailure", "{body}");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // .2 to .254: 253 addresses.
    assert_eq!(created, 253);
    assert_eq!(exhausted, 247);
    let (_, body) = api
        .get("alice", &format!("/v2.0/ports?network_id={net}"))
        .await;
    assert_eq!(body["ports"].as_array().unwrap().len(), 253);

    // Free one address: the next port gets exactly that one.
    let victim = body["ports"][100].clone();
    let freed = victim["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = api
        .delete(
            "alice",
            &format!("/v2.0/ports/{}", victim["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let port = api
        .create("alice", "ports", "port", json!({"network_id": net}))
        .await;
    assert_eq!(port["fixed_ips"][0]["ip_address"], freed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_for_one_address_get_it_once() {
    let api = std::sync::Arc::new(api().await);
    let net = api.network("alice", "race").await;
    let subnet = api.subnet("alice", &net, "10.8.0.0/24").await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let api = api.clone();
        let body = json!({"port": {"network_id": net,
            "fixed_ips": [{"subnet_id": subnet, "ip_address": "10.8.0.77"}]}});
        tasks.push(tokio::spawn(async move {
            api.post("alice", "/v2.0/ports", body).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => won += 1,
            StatusCode::CONFLICT => assert_eq!(kind(&body), "IpAddressInUse", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_respect_the_port_quota() {
    let api = std::sync::Arc::new(api().await);
    let (status, _) = api
        .put("admin", "/v2.0/quotas/pa", json!({"quota": {"port": 7}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let net = api.network("alice", "quota").await;
    api.subnet("alice", &net, "10.7.0.0/24").await;
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let api = api.clone();
        let body = json!({"port": {"network_id": net}});
        tasks.push(tokio::spawn(async move {
            api.post("alice", "/v2.0/ports", body).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => ok += 1,
            StatusCode::CONFLICT => assert_eq!(kind(&body), "OverQuota", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 7);
    let (_, body) = api.get("alice", "/v2.0/quotas/pa/details.json").await;
    assert_eq!(body["quota"]["port"]["used"], 7);
    assert_eq!(body["quota"]["port"]["limit"], 7);
    // A limit below usage is refused unless forced; clients' `check_limit` is accepted.
    let (status, _) = api
        .put(
            "admin",
            "/v2.0/quotas/pa",
            json!({"quota": {"port": 3, "check_limit": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api
        .put(
            "admin",
            "/v2.0/quotas/pa",
            json!({"quota": {"port": 3, "force": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["quota"]["port"], 3);
}

#[tokio::test]
async fn slaac_ports_get_their_eui64_address() {
    let api = api().await;
    let net = api.network("alice", "v6").await;
    let v4 = api.subnet("alice", &net, "10.6.0.0/24").await;
    let v6 = api
        .create(
            "alice",
            "subnets",
            "subnet",
            json!({"network_id": net, "cidr": "2001:db8:6::/64", "ip_version": 6,
                   "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
        )
        .await;
    let port = api
        .create(
            "alice",
            "ports",
            "port",
            json!({"network_id": net, "mac_address": "fa:16:3e:33:44:55",
                   "fixed_ips": [{"subnet_id": v4}]}),
        )
        .await;
    let ips: Vec<(String, String)> = port["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["subnet_id"].as_str().unwrap().to_string(),
                f["ip_address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        ips.contains(&(
            v6["id"].as_str().unwrap().to_string(),
            "2001:db8:6:0:f816:3eff:fe33:4455".into()
        )),
        "{ips:?}"
    );
    assert_eq!(ips.len(), 2);
    // A SLAAC subnet refuses other addresses.
    let (status, body) = api
        .post(
            "alice",
            "/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": v6["id"], "ip_address": "2001:db8:6::5"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Deleting the SLAAC subnet takes its addresses back; the network still has ports.
    let (status, _) = api
        .delete(
            "alice",
            &format!("/v2.0/subnets/{}", v6["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = api
        .get(
            "alice",
            &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(body["port"]["fixed_ips"].as_array().unwrap().len(), 1);
    let (status, body) = api.delete("alice", &format!("/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["NeutronError"]["message"]
        .as_str()
        .unwrap()
        .contains("There are one or more ports still in use on the network"));
}
