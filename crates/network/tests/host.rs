//! The in-process interface for Compute and the data plane: server ports (create, bind, release,
//! idempotently), the desired-state snapshot, port status reports, and `nubo up`'s default
//! networks (made once).

mod common;

use common::api;
use nubo_common::config::NetworkConfig;
use nubo_network::ServerPortRequest;
use serde_json::json;

#[tokio::test]
async fn server_ports_and_the_desired_state() {
    let api = api().await;
    let s = &api.service;
    let defaults = s
        .ensure_default_networks("pa", &NetworkConfig::default())
        .await
        .unwrap();
    assert!(defaults.created);
    let again = s
        .ensure_default_networks("pa", &NetworkConfig::default())
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.public_network_id, defaults.public_network_id);

    let (_, nets) = api.get("alice", "/v2.0/networks?name=private").await;
    let private = nets["networks"][0]["id"].as_str().unwrap().to_string();
    let web = api
        .create(
            "alice",
            "security-groups",
            "security_group",
            json!({"name": "web"}),
        )
        .await;

    let port = s
        .create_server_port(&ServerPortRequest {
            project_id: "pa".into(),
            network_id: private.clone(),
            server_id: "server-1".into(),
            host: "host-a".into(),
            fixed_ip: None,
            security_groups: Some(vec!["web".into(), "default".into()]),
        })
        .await
        .unwrap();
    assert_eq!(port.device_owner, "compute:nova");
    assert_eq!(port.host, "host-a");
    assert_eq!(port.mtu, 1450);
    assert_eq!(
        port.fixed_ips.len(),
        2,
        "IPv4 and SLAAC IPv6: {:?}",
        port.fixed_ips
    );
    assert_eq!(port.security_groups.len(), 2);
    assert!(port
        .security_groups
        .contains(&web["id"].as_str().unwrap().to_string()));
    assert_eq!(port.status, "DOWN");

    // bob may not put a server on alice's network.
    let err = s
        .create_server_port(&ServerPortRequest {
            project_id: "pb".into(),
            network_id: private.clone(),
            server_id: "server-2".into(),
            host: "host-a".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status, 404);

    let dhcp = s.ensure_dhcp_port(&private, "host-a").await.unwrap();
    assert_eq!(dhcp.device_owner, "network:dhcp");
    assert_eq!(dhcp.fixed_ips.len(), 2);
    assert_eq!(s.ensure_dhcp_port(&private, "host-a").await.unwrap(), dhcp);

    let mine = s.ports_of_device("server-1").await.unwrap();
    assert_eq!(mine.len(), 1);
    s.set_port_status(&port.id, true).await.unwrap();

    let state = s.desired_state(Some("host-a")).await.unwrap();
    assert_eq!(state.networks.len(), 1);
    let net = &state.networks[0];
    assert_eq!(net.network_type, "vxlan");
    assert!(net.segmentation_id.is_some());
    assert_eq!(net.subnets.len(), 2);
    let local: Vec<_> = state.ports.iter().filter(|p| p.host == "host-a").collect();
    assert_eq!(local.len(), 2, "the server's port and the DHCP port");
    let local: Vec<_> = local
        .into_iter()
        .filter(|p| p.device_owner == "compute:nova")
        .collect();
    assert_eq!(local[0].status, "ACTIVE");
    // The router's interfaces are in the network's ports, and the router is in the snapshot.
    assert!(state
        .ports
        .iter()
        .any(|p| p.device_owner == "network:router_interface"));
    assert_eq!(state.routers.len(), 1);
    let router = &state.routers[0];
    assert_eq!(router.interfaces.len(), 2);
    assert!(router.gateway.is_some());
    assert!(router.enable_snat);
    // The default group's ingress rule points at itself: its members' addresses are there.
    let default = state
        .security_groups
        .iter()
        .find(|g| {
            g.rules
                .iter()
                .any(|r| r.remote_group_id.as_deref() == Some(g.id.as_str()))
        })
        .expect("default group");
    for ip in &port.fixed_ips {
        assert!(default.member_ips.contains(&ip.ip_address));
    }

    // A floating IP for the server shows up on the router.
    let fip = api
        .create(
            "alice",
            "floatingips",
            "floatingip",
            json!({"floating_network_id": defaults.public_network_id, "port_id": port.id}),
        )
        .await;
    let state = s.desired_state(None).await.unwrap();
    let router = &state.routers[0];
    assert_eq!(router.floating_ips.len(), 1);
    assert_eq!(
        router.floating_ips[0].floating_ip_address,
        fip["floating_ip_address"]
    );
    assert_eq!(state.networks.len(), 2);

    // Releasing twice is fine; the floating IP is disassociated, not deleted.
    s.release_server_port(&port.id, true).await.unwrap();
    s.release_server_port(&port.id, true).await.unwrap();
    assert!(s.ports_of_device("server-1").await.unwrap().is_empty());
    let (_, body) = api
        .get(
            "alice",
            &format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(body["floatingip"]["port_id"], serde_json::Value::Null);
    // The DHCP port keeps the network on host-a.
    let state = s.desired_state(Some("host-a")).await.unwrap();
    assert_eq!(state.networks.len(), 1);

    // A user's port: bound for the server, then unbound and kept.
    let user_port = api
        .create("alice", "ports", "port", json!({"network_id": private}))
        .await;
    let id = user_port["id"].as_str().unwrap();
    let bound = s
        .bind_server_port("pa", id, "server-3", "host-b")
        .await
        .unwrap();
    assert_eq!(bound.device_id, "server-3");
    assert_eq!(bound.host, "host-b");
    let err = s
        .bind_server_port("pa", id, "server-4", "host-b")
        .await
        .unwrap_err();
    assert_eq!(err.status, 409);
    s.release_server_port(id, false).await.unwrap();
    let kept = s.port_state(id).await.unwrap().unwrap();
    assert_eq!(kept.device_id, "");
    assert_eq!(kept.host, "");
}
