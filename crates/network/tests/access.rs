//! Who may do what: another project's resources are invisible (404) on every route and absent
//! from every list; admin-only attributes and calls are refused to members (403); readers only
//! read; malformed JSON is a 400 everywhere; no token is a 401.

mod common;

use common::{api, kind, Api};
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// One of everything, owned by alice (project `pa`).
struct Fixture {
    network: String,
    subnet: String,
    port: String,
    pool: String,
    router: String,
    group: String,
    rule: String,
    fip: String,
    forwarding: String,
    rbac: String,
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn fixture(api: &Api) -> Fixture {
    let external = api.external("172.30.0.0/24").await;
    let network = api.network("alice", "private").await;
    let subnet = api.subnet("alice", &network, "10.1.0.0/24").await;
    let port = id(&api
        .create("alice", "ports", "port", json!({"network_id": network}))
        .await);
    let pool = id(&api
        .create(
            "alice",
            "subnetpools",
            "subnetpool",
            json!({"name": "p", "prefixes": ["10.50.0.0/16"], "default_prefixlen": 24}),
        )
        .await);
    let router = id(&api
        .create(
            "alice",
            "routers",
            "router",
            json!({"name": "r", "external_gateway_info": {"network_id": external}}),
        )
        .await);
    let (status, body) = api
        .put(
            "alice",
            &format!("/v2.0/routers/{router}/add_router_interface"),
            json!({"subnet_id": subnet}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let group = id(&api
        .create(
            "alice",
            "security-groups",
            "security_group",
            json!({"name": "web"}),
        )
        .await);
    let rule = id(&api
        .create(
            "alice",
            "security-group-rules",
            "security_group_rule",
            json!({"security_group_id": group, "direction": "ingress", "protocol": "tcp",
                   "port_range_min": 22, "port_range_max": 22}),
        )
        .await);
    let fip = id(&api
        .create(
            "alice",
            "floatingips",
            "floatingip",
            json!({"floating_network_id": external}),
        )
        .await);
    let (_, body) = api.get("alice", &format!("/v2.0/ports/{port}")).await;
    let internal_ip = body["port"]["fixed_ips"][0]["ip_address"].clone();
    let (status, body) = api
        .post(
            "alice",
            &format!("/v2.0/floatingips/{fip}/port_forwardings"),
            json!({"port_forwarding": {"internal_port_id": port, "internal_ip_address": internal_ip,
                   "internal_port": 22, "external_port": 2222, "protocol": "tcp"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let forwarding = id(&body["port_forwarding"]);
    let rbac = id(&api
        .create(
            "alice",
            "rbac-policies",
            "rbac_policy",
            json!({"object_type": "network", "object_id": network, "action": "access_as_shared",
                   "target_tenant": "0123456789abcdef0123456789abcdef"}),
        )
        .await);
    for (collection, rid) in [
        ("networks", &network),
        ("ports", &port),
        ("routers", &router),
    ] {
        let (status, _) = api
            .put(
                "alice",
                &format!("/v2.0/{collection}/{rid}/tags/blue"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    Fixture {
        network,
        subnet,
        port,
        pool,
        router,
        group,
        rule,
        fip,
        forwarding,
        rbac,
    }
}

/// Every item route of the API, for the fixture's resources.
fn item_routes(f: &Fixture) -> Vec<(Method, String, Option<Value>)> {
    let mut routes = Vec::new();
    let put = |path: String, body: Value| (Method::PUT, path, Some(body));
    for (collection, key, rid) in [
        ("networks", "network", &f.network),
        ("subnets", "subnet", &f.subnet),
        ("ports", "port", &f.port),
        ("subnetpools", "subnetpool", &f.pool),
        ("routers", "router", &f.router),
        ("security-groups", "security_group", &f.group),
        ("security-group-rules", "security_group_rule", &f.rule),
        ("floatingips", "floatingip", &f.fip),
        ("rbac-policies", "rbac_policy", &f.rbac),
    ] {
        let path = format!("/v2.0/{collection}/{rid}");
        routes.push((Method::GET, path.clone(), None));
        routes.push((Method::GET, format!("{path}?fields=id"), None));
        routes.push(put(
            path.clone(),
            json!({ key: {"description": "mine now"} }),
        ));
        routes.push((Method::DELETE, path.clone(), None));
        if collection != "security-group-rules" && collection != "rbac-policies" {
            routes.push((Method::GET, format!("{path}/tags"), None));
            routes.push((Method::GET, format!("{path}/tags/blue"), None));
            routes.push(put(format!("{path}/tags"), json!({"tags": ["x"]})));
            routes.push(put(format!("{path}/tags/x"), json!({})));
            routes.push((Method::DELETE, format!("{path}/tags/blue"), None));
            routes.push((Method::DELETE, format!("{path}/tags"), None));
        }
    }
    let r = &f.router;
    routes.push(put(
        format!("/v2.0/routers/{r}/add_router_interface"),
        json!({"subnet_id": f.subnet}),
    ));
    routes.push(put(
        format!("/v2.0/routers/{r}/remove_router_interface"),
        json!({"subnet_id": f.subnet}),
    ));
    routes.push(put(
        format!("/v2.0/routers/{r}/add_extraroutes"),
        json!({"router": {"routes": []}}),
    ));
    routes.push(put(
        format!("/v2.0/routers/{r}/remove_extraroutes"),
        json!({"router": {"routes": []}}),
    ));
    let p = &f.pool;
    routes.push(put(
        format!("/v2.0/subnetpools/{p}/add_prefixes"),
        json!({"prefixes": ["10.60.0.0/16"]}),
    ));
    routes.push(put(
        format!("/v2.0/subnetpools/{p}/remove_prefixes"),
        json!({"prefixes": ["10.60.0.0/16"]}),
    ));
    let fip = &f.fip;
    let pf = &f.forwarding;
    routes.push((
        Method::GET,
        format!("/v2.0/floatingips/{fip}/port_forwardings"),
        None,
    ));
    routes.push((
        Method::POST,
        format!("/v2.0/floatingips/{fip}/port_forwardings"),
        Some(json!({"port_forwarding": {"internal_port_id": f.port, "internal_ip_address": "10.1.0.9",
            "internal_port": 80, "external_port": 8080, "protocol": "tcp"}})),
    ));
    routes.push((
        Method::GET,
        format!("/v2.0/floatingips/{fip}/port_forwardings/{pf}"),
        None,
    ));
    routes.push(put(
        format!("/v2.0/floatingips/{fip}/port_forwardings/{pf}"),
        json!({"port_forwarding": {"description": "x"}}),
    ));
    routes.push((
        Method::DELETE,
        format!("/v2.0/floatingips/{fip}/port_forwardings/{pf}"),
        None,
    ));
    // Creates that name alice's resources.
    routes.push((
        Method::POST,
        "/v2.0/subnets".into(),
        Some(json!({"subnet": {"network_id": f.network, "cidr": "10.2.0.0/24", "ip_version": 4}})),
    ));
    routes.push((
        Method::POST,
        "/v2.0/ports".into(),
        Some(json!({"port": {"network_id": f.network}})),
    ));
    routes.push((
        Method::POST,
        "/v2.0/security-group-rules".into(),
        Some(
            json!({"security_group_rule": {"security_group_id": f.group, "direction": "ingress"}}),
        ),
    ));
    routes.push((Method::POST, "/v2.0/rbac-policies".into(), Some(json!({"rbac_policy": {"object_type": "network", "object_id": f.network, "action": "access_as_shared", "target_tenant": "*"}}))));
    routes
}

#[tokio::test]
async fn another_projects_resources_are_404_on_every_route() {
    let api = api().await;
    let f = fixture(&api).await;
    let routes = item_routes(&f);
    assert!(routes.len() > 90, "{}", routes.len());
    for (method, path, body) in &routes {
        let (status, resp) = api.call("bob", method.clone(), path, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "bob {method} {path}: {resp}");
        assert!(resp["NeutronError"]["type"].is_string(), "{resp}");
    }
    // bob's own resources may not reach alice's either.
    let bob_net = api.network("bob", "b").await;
    let bob_subnet = api.subnet("bob", &bob_net, "10.1.0.0/24").await;
    let bob_router = id(&api
        .create("bob", "routers", "router", json!({"name": "br"}))
        .await);
    let (_, nets) = api
        .get("admin", "/v2.0/networks?router:external=True")
        .await;
    let external = id(&nets["networks"][0]);
    let bob_fip = id(&api
        .create(
            "bob",
            "floatingips",
            "floatingip",
            json!({"floating_network_id": external}),
        )
        .await);
    for (method, path, body) in [
        (
            Method::POST,
            "/v2.0/subnets".to_string(),
            json!({"subnet": {"network_id": bob_net, "subnetpool_id": f.pool, "ip_version": 4}}),
        ),
        (
            Method::PUT,
            format!("/v2.0/routers/{bob_router}/add_router_interface"),
            json!({"subnet_id": f.subnet}),
        ),
        (
            Method::PUT,
            format!("/v2.0/routers/{bob_router}/add_router_interface"),
            json!({"port_id": f.port}),
        ),
        (
            Method::PUT,
            format!("/v2.0/floatingips/{bob_fip}"),
            json!({"floatingip": {"port_id": f.port}}),
        ),
        (
            Method::POST,
            "/v2.0/security-group-rules".into(),
            json!({"security_group_rule": {"security_group_id": f.group, "direction": "ingress"}}),
        ),
        (
            Method::POST,
            "/v2.0/ports".into(),
            json!({"port": {"network_id": bob_net, "security_groups": [f.group]}}),
        ),
    ] {
        let (status, resp) = api.call("bob", method.clone(), &path, Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "bob {method} {path}: {resp}");
    }
    let _ = bob_subnet;
    // bob's lists do not show alice's things.
    let ids = [
        &f.network, &f.subnet, &f.port, &f.pool, &f.router, &f.group, &f.rule, &f.fip, &f.rbac,
    ];
    for collection in [
        "networks",
        "subnets",
        "ports",
        "subnetpools",
        "routers",
        "security-groups",
        "security-group-rules",
        "floatingips",
        "rbac-policies",
    ] {
        let (status, body) = api.get("bob", &format!("/v2.0/{collection}")).await;
        assert_eq!(status, StatusCode::OK);
        let text = body.to_string();
        for i in ids {
            assert!(!text.contains(i.as_str()), "bob sees {i} in {collection}");
        }
    }
    // Nothing bob did changed anything of alice's.
    let (status, body) = api
        .get("alice", &format!("/v2.0/networks/{}", f.network))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["network"]["description"], "");
    assert_eq!(body["network"]["tags"], json!(["blue"]));
    // Quotas of another project: Neutron answers 403, not 404.
    let (status, _) = api.get("bob", "/v2.0/quotas/pa").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // alice still sees all of it, and so does the admin.
    for (method, path, _) in routes
        .iter()
        .filter(|(m, p, _)| *m == Method::GET && !p.contains("/tags"))
    {
        let (status, resp) = api.call("alice", method.clone(), path, None).await;
        assert_eq!(status, StatusCode::OK, "alice {path}: {resp}");
        let (status, resp) = api.call("admin", method.clone(), path, None).await;
        assert_eq!(status, StatusCode::OK, "admin {path}: {resp}");
    }
}

#[tokio::test]
async fn shared_networks_are_visible_but_not_writable() {
    let api = api().await;
    let net = api.network("alice", "shared").await;
    api.subnet("alice", &net, "10.3.0.0/24").await;
    let (status, _) = api.get("bob", &format!("/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.create(
        "alice",
        "rbac-policies",
        "rbac_policy",
        json!({"object_type": "network", "object_id": net, "action": "access_as_shared", "target_tenant": "*"}),
    )
    .await;
    let (status, body) = api.get("bob", &format!("/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["network"]["shared"], true);
    let (status, _) = api
        .put(
            "bob",
            &format!("/v2.0/networks/{net}"),
            json!({"network": {"name": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // bob may plug a port into it; then the policy cannot be removed.
    let port = api
        .create("bob", "ports", "port", json!({"network_id": net}))
        .await;
    let (_, list) = api.get("alice", "/v2.0/rbac-policies").await;
    let rbac = list["rbac_policies"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = api
        .delete("alice", &format!("/v2.0/rbac-policies/{rbac}"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(kind(&body), "RbacPolicyInUse");
    // alice owns the network, so she sees bob's port on it.
    let (status, _) = api
        .get(
            "alice",
            &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn admin_only_attributes_and_calls_are_refused_to_members() {
    let api = api().await;
    let external = api.external("172.31.0.0/24").await;
    let net = api.network("alice", "n").await;
    api.subnet("alice", &net, "10.4.0.0/24").await;
    let refused: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/v2.0/networks".into(),
            json!({"network": {"provider:network_type": "vxlan"}}),
        ),
        (
            Method::POST,
            "/v2.0/networks".into(),
            json!({"network": {"provider:segmentation_id": 77, "provider:network_type": "vxlan"}}),
        ),
        (
            Method::POST,
            "/v2.0/networks".into(),
            json!({"network": {"shared": true}}),
        ),
        (
            Method::POST,
            "/v2.0/networks".into(),
            json!({"network": {"router:external": true}}),
        ),
        (
            Method::PUT,
            format!("/v2.0/networks/{net}"),
            json!({"network": {"shared": true}}),
        ),
        (
            Method::PUT,
            format!("/v2.0/networks/{net}"),
            json!({"network": {"router:external": true}}),
        ),
        (
            Method::POST,
            "/v2.0/ports".into(),
            json!({"port": {"network_id": net, "binding:host_id": "h1"}}),
        ),
        (
            Method::POST,
            "/v2.0/ports".into(),
            json!({"port": {"network_id": net, "binding:profile": {"a": 1}}}),
        ),
        (
            Method::POST,
            "/v2.0/routers".into(),
            json!({"router": {"external_gateway_info": {"network_id": external, "enable_snat": false}}}),
        ),
        (
            Method::POST,
            "/v2.0/routers".into(),
            json!({"router": {"external_gateway_info": {"network_id": external, "external_fixed_ips": [{"ip_address": "172.31.0.9"}]}}}),
        ),
        (
            Method::POST,
            "/v2.0/floatingips".into(),
            json!({"floatingip": {"floating_network_id": external, "floating_ip_address": "172.31.0.50"}}),
        ),
        (
            Method::POST,
            "/v2.0/subnetpools".into(),
            json!({"subnetpool": {"prefixes": ["10.70.0.0/16"], "shared": true}}),
        ),
        (
            Method::POST,
            "/v2.0/subnetpools".into(),
            json!({"subnetpool": {"prefixes": ["10.71.0.0/16"], "is_default": true}}),
        ),
        (
            Method::PUT,
            "/v2.0/quotas/pa".into(),
            json!({"quota": {"network": 1000}}),
        ),
        (Method::DELETE, "/v2.0/quotas/pa".into(), Value::Null),
        (Method::GET, "/v2.0/quotas".into(), Value::Null),
        // A member may not create ports on someone else's external network.
        (
            Method::POST,
            "/v2.0/ports".into(),
            json!({"port": {"network_id": external}}),
        ),
    ];
    for (method, path, body) in refused {
        let body = (!body.is_null()).then_some(body);
        let (status, resp) = api.call("alice", method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {resp}");
    }
    // Non-admins do not see binding details or provider attributes.
    let port = api
        .create("alice", "ports", "port", json!({"network_id": net}))
        .await;
    assert!(port.get("binding:host_id").is_none());
    assert!(port.get("binding:vnic_type").is_some());
    let (status, _) = api
        .put(
            "alice",
            &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()),
            json!({"port": {"binding:host_id": "h"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = api.get("alice", &format!("/v2.0/networks/{net}")).await;
    assert!(body["network"].get("provider:segmentation_id").is_none());
    let (_, body) = api.get("admin", &format!("/v2.0/networks/{net}")).await;
    assert_eq!(body["network"]["provider:network_type"], "vxlan");
    assert_eq!(body["network"]["mtu"], 1450);
    // The admin may do all of it.
    let (status, body) = api
        .put(
            "admin",
            &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()),
            json!({"port": {"binding:host_id": "h1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["port"]["binding:vif_type"], "bridge");
    // Readers read, and only read.
    let (status, _) = api.get("reader", &format!("/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .post("reader", "/v2.0/networks", json!({"network": {}}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.delete("reader", &format!("/v2.0/networks/{net}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_json_is_400_everywhere_and_no_token_is_401() {
    let api = api().await;
    let net = api.network("alice", "n").await;
    let writes = [
        (Method::POST, "/v2.0/networks".to_string()),
        (Method::PUT, format!("/v2.0/networks/{net}")),
        (Method::POST, "/v2.0/subnets".into()),
        (Method::POST, "/v2.0/ports".into()),
        (Method::POST, "/v2.0/subnetpools".into()),
        (Method::POST, "/v2.0/routers".into()),
        (Method::POST, "/v2.0/security-groups".into()),
        (Method::POST, "/v2.0/security-group-rules".into()),
        (Method::POST, "/v2.0/floatingips".into()),
        (Method::POST, "/v2.0/rbac-policies".into()),
        (Method::PUT, "/v2.0/quotas/pa".into()),
        (Method::PUT, format!("/v2.0/networks/{net}/tags")),
    ];
    for (method, path) in &writes {
        let (status, body) = api
            .raw("alice", method.clone(), path, Some("{\"network\": ".into()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert!(
            body["NeutronError"]["message"]
                .as_str()
                .unwrap()
                .contains("Malformed"),
            "{body}"
        );
        let (status, _) = api.raw("", method.clone(), path, Some("{}".into())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Well-formed but wrong: Neutron's messages.
    let (status, body) = api
        .post("alice", "/v2.0/networks", json!({"network": {"bogus": 1}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["NeutronError"]["message"]
        .as_str()
        .unwrap()
        .contains("Unrecognized attribute(s) 'bogus'"));
    let (status, _) = api
        .post("alice", "/v2.0/networks", json!({"net": {}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api.get("alice", "/v2.0/networks?bogus=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Discovery is public.
    let (status, body) = api.get("", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["versions"][0]["id"], "v2.0");
}

#[tokio::test]
async fn pagination_links_walk_the_whole_collection() {
    let api = api().await;
    for i in 0..7 {
        api.network("alice", &format!("n{i}")).await;
    }
    let mut seen = Vec::new();
    let mut url = "/v2.0/networks?limit=3&sort_key=name&sort_dir=asc".to_string();
    loop {
        let (status, body) = api.get("alice", &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for n in body["networks"].as_array().unwrap() {
            seen.push(n["name"].as_str().unwrap().to_string());
        }
        let next = body["networks_links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .map(|l| l["href"].as_str().unwrap().to_string());
        match next {
            Some(href) => {
                assert!(
                    href.starts_with("http://cloud.test/v2.0/networks?"),
                    "{href}"
                );
                url = href.trim_start_matches("http://cloud.test").to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["n0", "n1", "n2", "n3", "n4", "n5", "n6"]);
    let (_, body) = api
        .get("alice", "/v2.0/networks?fields=id&fields=name&name=n3")
        .await;
    assert_eq!(body["networks"].as_array().unwrap().len(), 1);
    assert_eq!(body["networks"][0].as_object().unwrap().len(), 2);
}
