//! Tenancy and authorization over every route: another project's resources are a 404, admin-only
//! calls refuse members with a 403, readers cannot change anything, no token is a 401, and a
//! malformed JSON body is a 400 everywhere a body is read.

mod common;

use common::api;
use http::{Method, StatusCode};
use serde_json::{json, Value};

/// Alice's resources, made as alice (and the admin where only admins can).
struct Fixture {
    volume: String,
    snapshot: String,
    attachment: String,
    transfer_volume: String,
    transfer: String,
    group: String,
    group_snapshot: String,
    message: String,
    private_type: String,
}

async fn fixture(a: &common::Api) -> Fixture {
    let v = a
        .volume(
            "alice",
            json!({"size": 1, "name": "v", "metadata": {"k": "v"}}),
        )
        .await;
    let volume = v["id"].as_str().unwrap().to_string();
    let s = a.snapshot("alice", &volume).await;
    let snapshot = s["id"].as_str().unwrap().to_string();
    let (code, body) = a
        .post(
            "alice",
            "/attachments",
            json!({"attachment": {"volume_uuid": volume, "instance_uuid": "11111111-2222-3333-4444-555555555555"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let attachment = body["attachment"]["id"].as_str().unwrap().to_string();
    let tv = a.volume("alice", json!({"size": 1})).await;
    let transfer_volume = tv["id"].as_str().unwrap().to_string();
    let (code, body) = a
        .post(
            "alice",
            "/volume-transfers",
            json!({"transfer": {"volume_id": transfer_volume}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let transfer = body["transfer"]["id"].as_str().unwrap().to_string();
    // Types and group types are the admin's.
    let (code, body) = a
        .post(
            "admin",
            "/types",
            json!({"volume_type": {"name": "private", "os-volume-type-access:is_public": false}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let private_type = body["volume_type"]["id"].as_str().unwrap().to_string();
    let (code, body) = a
        .post(
            "admin",
            "/group_types",
            json!({"group_type": {"name": "gt"}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let group_type = body["group_type"]["id"].as_str().unwrap().to_string();
    let (code, body) = a
        .post(
            "alice",
            "/groups",
            json!({"group": {"name": "g", "group_type": group_type, "volume_types": ["__DEFAULT__"]}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let group = body["group"]["id"].as_str().unwrap().to_string();
    let (code, body) = a
        .post(
            "alice",
            "/group_snapshots",
            json!({"group_snapshot": {"group_id": group, "name": "gs"}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let group_snapshot = body["group_snapshot"]["id"].as_str().unwrap().to_string();
    // A message: a volume whose type no backend offers goes to error.
    let (code, body) = a
        .post("admin", "/types", json!({"volume_type": {"name": "nowhere", "extra_specs": {"vendor_name": "Elsewhere"}}}))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = a
        .post(
            "alice",
            "/volumes",
            json!({"volume": {"size": 1, "volume_type": "nowhere"}}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let failed = body["volume"]["id"].as_str().unwrap().to_string();
    a.wait_volume("alice", &failed, "error").await;
    let (code, body) = a.get("alice", "/messages").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let message = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["resource_uuid"] == failed)
        .expect("a user message for the failed volume")["id"]
        .as_str()
        .unwrap()
        .to_string();
    a.service.settle().await;
    Fixture {
        volume,
        snapshot,
        attachment,
        transfer_volume,
        transfer,
        group,
        group_snapshot,
        message,
        private_type,
    }
}

/// Every route that names one of alice's resources.
fn resource_routes(f: &Fixture) -> Vec<(Method, String, Option<Value>)> {
    let v = &f.volume;
    let s = &f.snapshot;
    let meta = Some(json!({"metadata": {"a": "b"}}));
    let item = Some(json!({"meta": {"k": "x"}}));
    vec![
        (Method::GET, format!("/volumes/{v}"), None),
        (
            Method::PUT,
            format!("/volumes/{v}"),
            Some(json!({"volume": {"name": "x"}})),
        ),
        (Method::DELETE, format!("/volumes/{v}"), None),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-extend": {"new_size": 2}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-set_bootable": {"bootable": true}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-update_readonly_flag": {"readonly": true}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-volume_upload_image": {"image_name": "i"}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-reserve": null})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-show_image_metadata": null})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-retype": {"new_type": "__DEFAULT__"}})),
        ),
        (Method::GET, format!("/volumes/{v}/metadata"), None),
        (Method::POST, format!("/volumes/{v}/metadata"), meta.clone()),
        (Method::PUT, format!("/volumes/{v}/metadata"), meta.clone()),
        (Method::GET, format!("/volumes/{v}/metadata/k"), None),
        (
            Method::PUT,
            format!("/volumes/{v}/metadata/k"),
            item.clone(),
        ),
        (Method::DELETE, format!("/volumes/{v}/metadata/k"), None),
        (Method::GET, format!("/snapshots/{s}"), None),
        (
            Method::PUT,
            format!("/snapshots/{s}"),
            Some(json!({"snapshot": {"name": "x"}})),
        ),
        (Method::DELETE, format!("/snapshots/{s}"), None),
        (
            Method::POST,
            format!("/snapshots/{s}/action"),
            Some(json!({"os-update_snapshot_status": {"status": "error"}})),
        ),
        (Method::GET, format!("/snapshots/{s}/metadata"), None),
        (
            Method::POST,
            format!("/snapshots/{s}/metadata"),
            meta.clone(),
        ),
        (Method::PUT, format!("/snapshots/{s}/metadata"), meta),
        (Method::GET, format!("/snapshots/{s}/metadata/k"), None),
        (Method::PUT, format!("/snapshots/{s}/metadata/k"), item),
        (Method::DELETE, format!("/snapshots/{s}/metadata/k"), None),
        (
            Method::POST,
            "/snapshots".into(),
            Some(json!({"snapshot": {"volume_id": v}})),
        ),
        (
            Method::POST,
            "/volumes".into(),
            Some(json!({"volume": {"source_volid": v}})),
        ),
        (
            Method::POST,
            "/volumes".into(),
            Some(json!({"volume": {"snapshot_id": s}})),
        ),
        (Method::GET, format!("/attachments/{}", f.attachment), None),
        (
            Method::PUT,
            format!("/attachments/{}", f.attachment),
            Some(json!({"attachment": {"connector": {"host": "h"}}})),
        ),
        (
            Method::POST,
            format!("/attachments/{}/action", f.attachment),
            Some(json!({"os-complete": null})),
        ),
        (
            Method::DELETE,
            format!("/attachments/{}", f.attachment),
            None,
        ),
        (
            Method::POST,
            "/attachments".into(),
            Some(json!({"attachment": {"volume_uuid": v}})),
        ),
        (
            Method::GET,
            format!("/volume-transfers/{}", f.transfer),
            None,
        ),
        (
            Method::DELETE,
            format!("/volume-transfers/{}", f.transfer),
            None,
        ),
        (
            Method::GET,
            format!("/os-volume-transfer/{}", f.transfer),
            None,
        ),
        (
            Method::POST,
            "/volume-transfers".into(),
            Some(json!({"transfer": {"volume_id": f.transfer_volume}})),
        ),
        (Method::GET, format!("/groups/{}", f.group), None),
        (
            Method::PUT,
            format!("/groups/{}", f.group),
            Some(json!({"group": {"name": "x"}})),
        ),
        (
            Method::POST,
            format!("/groups/{}/action", f.group),
            Some(json!({"delete": {"delete-volumes": true}})),
        ),
        (
            Method::GET,
            format!("/group_snapshots/{}", f.group_snapshot),
            None,
        ),
        (
            Method::DELETE,
            format!("/group_snapshots/{}", f.group_snapshot),
            None,
        ),
        (Method::GET, format!("/messages/{}", f.message), None),
        (Method::DELETE, format!("/messages/{}", f.message), None),
        (Method::GET, format!("/types/{}", f.private_type), None),
        (
            Method::POST,
            "/volumes".into(),
            Some(json!({"volume": {"size": 1, "volume_type": f.private_type}})),
        ),
    ]
}

#[tokio::test]
async fn another_projects_resources_are_404() {
    let a = api().await;
    let f = fixture(&a).await;
    for (method, path, body) in resource_routes(&f) {
        let (code, resp) = a.call("bob", method.clone(), &path, body).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "bob {method} {path}: {resp}");
        assert!(
            resp.get("itemNotFound").is_some(),
            "Cinder's fault shape: {resp}"
        );
    }
    // Lists never show them.
    for path in [
        "/volumes",
        "/volumes/detail",
        "/snapshots",
        "/snapshots/detail",
        "/attachments",
        "/volume-transfers",
        "/groups",
        "/group_snapshots",
        "/messages",
        "/types",
    ] {
        let (code, body) = a.get("bob", path).await;
        assert_eq!(code, StatusCode::OK, "{path}: {body}");
        let text = body.to_string();
        for id in [
            &f.volume,
            &f.snapshot,
            &f.attachment,
            &f.transfer,
            &f.group,
            &f.group_snapshot,
            &f.message,
            &f.private_type,
        ] {
            assert!(
                !text.contains(id.as_str()),
                "bob sees {id} in {path}: {body}"
            );
        }
    }
    // Even with all_tenants (only admins may use it).
    let (_, body) = a.get("bob", "/volumes?all_tenants=1").await;
    assert!(!body.to_string().contains(&f.volume));
    let (_, body) = a.get("admin", "/volumes?all_tenants=1").await;
    assert!(
        body.to_string().contains(&f.volume),
        "admins see every project: {body}"
    );
    // And nothing of alice's changed.
    let (code, v) = a.get("alice", &format!("/volumes/{}", f.volume)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["volume"]["name"], "v");
    assert_eq!(
        v["volume"]["status"], "reserved",
        "reserved by its attachment"
    );
    assert_eq!(v["volume"]["size"], 1);
}

#[tokio::test]
async fn a_project_url_of_another_project_is_refused() {
    let a = api().await;
    let (code, body) = a
        .raw("bob", Method::GET, "/v3/pa/volumes", None, None)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    // Without a project in the URL (3.67+), the token's project is used.
    let (code, _) = a
        .raw("bob", Method::GET, "/v3/volumes", None, Some("3.67"))
        .await;
    assert_eq!(code, StatusCode::OK);
}

/// Routes only admins may call (alice's ids where one is needed).
fn admin_routes(f: &Fixture) -> Vec<(Method, String, Option<Value>)> {
    let v = &f.volume;
    let s = &f.snapshot;
    let t = &f.private_type;
    vec![
        (
            Method::POST,
            "/types".into(),
            Some(json!({"volume_type": {"name": "x"}})),
        ),
        (
            Method::PUT,
            format!("/types/{t}"),
            Some(json!({"volume_type": {"name": "y"}})),
        ),
        (Method::DELETE, format!("/types/{t}"), None),
        (
            Method::POST,
            format!("/types/{t}/extra_specs"),
            Some(json!({"extra_specs": {"a": "b"}})),
        ),
        (
            Method::PUT,
            format!("/types/{t}/extra_specs/a"),
            Some(json!({"a": "c"})),
        ),
        (Method::DELETE, format!("/types/{t}/extra_specs/a"), None),
        (
            Method::POST,
            format!("/types/{t}/action"),
            Some(json!({"addProjectAccess": {"project": "pb"}})),
        ),
        (
            Method::GET,
            format!("/types/{t}/os-volume-type-access"),
            None,
        ),
        (Method::GET, format!("/types/{t}/encryption"), None),
        (
            Method::POST,
            format!("/types/{t}/encryption"),
            Some(json!({"encryption": {"provider": "luks"}})),
        ),
        (Method::DELETE, format!("/types/{t}/encryption/x"), None),
        (Method::GET, "/default-types".into(), None),
        (
            Method::PUT,
            "/default-types/pa".into(),
            Some(json!({"default_type": {"volume_type": "__DEFAULT__"}})),
        ),
        (Method::GET, "/default-types/pa".into(), None),
        (Method::DELETE, "/default-types/pa".into(), None),
        (Method::GET, "/qos-specs".into(), None),
        (
            Method::POST,
            "/qos-specs".into(),
            Some(json!({"qos_specs": {"name": "q"}})),
        ),
        (
            Method::PUT,
            "/os-quota-sets/pa".into(),
            Some(json!({"quota_set": {"volumes": 5}})),
        ),
        (Method::DELETE, "/os-quota-sets/pa".into(), None),
        (Method::GET, "/os-quota-class-sets/default".into(), None),
        (
            Method::PUT,
            "/os-quota-class-sets/default".into(),
            Some(json!({"quota_class_set": {"volumes": 5}})),
        ),
        (Method::GET, "/os-services".into(), None),
        (
            Method::PUT,
            "/os-services/disable".into(),
            Some(json!({"host": "nubo", "binary": "cinder-scheduler"})),
        ),
        (Method::GET, "/os-hosts".into(), None),
        (Method::GET, "/os-hosts/nubo".into(), None),
        (Method::GET, "/scheduler-stats/get_pools".into(), None),
        (Method::GET, "/capabilities/nubo@local".into(), None),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-reset_status": {"status": "error"}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-force_delete": null})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-force_detach": {}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-migrate_volume": {"host": "x"}})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-unmanage": null})),
        ),
        (
            Method::POST,
            format!("/volumes/{v}/action"),
            Some(json!({"os-extend_volume_completion": {"error": false}})),
        ),
        (Method::DELETE, format!("/volumes/{v}?force=true"), None),
        (
            Method::POST,
            format!("/snapshots/{s}/action"),
            Some(json!({"os-reset_status": {"status": "error"}})),
        ),
        (
            Method::POST,
            format!("/snapshots/{s}/action"),
            Some(json!({"os-force_delete": null})),
        ),
        (
            Method::POST,
            format!("/snapshots/{s}/action"),
            Some(json!({"os-unmanage": null})),
        ),
        (
            Method::POST,
            "/group_types".into(),
            Some(json!({"group_type": {"name": "x"}})),
        ),
        (
            Method::POST,
            format!("/groups/{}/action", f.group),
            Some(json!({"reset_status": {"status": "error"}})),
        ),
        (
            Method::POST,
            format!("/group_snapshots/{}/action", f.group_snapshot),
            Some(json!({"reset_status": {"status": "error"}})),
        ),
        (Method::GET, "/clusters".into(), None),
        (Method::POST, "/workers/cleanup".into(), Some(json!({}))),
        (Method::GET, "/manageable_volumes".into(), None),
        (
            Method::POST,
            "/os-volume-manage".into(),
            Some(json!({"volume": {"host": "x", "ref": {}}})),
        ),
    ]
}

#[tokio::test]
async fn admin_only_calls_refuse_members() {
    let a = api().await;
    let f = fixture(&a).await;
    for (method, path, body) in admin_routes(&f) {
        let (code, resp) = a.call("alice", method.clone(), &path, body).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "alice {method} {path}: {resp}");
        assert!(resp.get("forbidden").is_some(), "{resp}");
    }
    // The quotas of another project are the admin's business too.
    let (code, _) = a.get("bob", "/os-quota-sets/pa").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = a.get("alice", "/os-quota-sets/pa").await;
    assert_eq!(code, StatusCode::OK);
    // The volume is untouched.
    let (_, v) = a.get("alice", &format!("/volumes/{}", f.volume)).await;
    assert_eq!(
        v["volume"]["status"], "reserved",
        "reserved by its attachment"
    );
}

#[tokio::test]
async fn readers_cannot_change_anything() {
    let a = api().await;
    let f = fixture(&a).await;
    for (method, path, body) in resource_routes(&f) {
        if method == Method::GET || path.starts_with("/types/") || path.starts_with("/messages/") {
            continue;
        }
        if body
            .as_ref()
            .is_some_and(|b| b.get("os-show_image_metadata").is_some())
        {
            continue;
        }
        if path == "/volumes"
            && body
                .as_ref()
                .is_some_and(|b| b.to_string().contains(&f.private_type))
        {
            continue;
        }
        let (code, resp) = a.call("reader", method.clone(), &path, body).await;
        assert_eq!(
            code,
            StatusCode::FORBIDDEN,
            "reader {method} {path}: {resp}"
        );
    }
    // Readers read.
    let (code, _) = a.get("reader", &format!("/volumes/{}", f.volume)).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn no_token_is_401_and_versions_are_public() {
    let a = api().await;
    let (code, body) = a.raw("", Method::GET, "/v3/pa/volumes", None, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    let (code, body) = a
        .raw("nobody", Method::GET, "/v3/pa/volumes", None, None)
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
    let (code, body) = a.raw("", Method::GET, "/v3/", None, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["versions"][0]["id"], "v3.0");
    assert_eq!(body["versions"][0]["version"], "3.71");
    let (code, _) = a.raw("", Method::GET, "/", None, None).await;
    assert_eq!(code, StatusCode::MULTIPLE_CHOICES);
}

#[tokio::test]
async fn malformed_json_is_400_everywhere() {
    let a = api().await;
    let f = fixture(&a).await;
    let mut routes: Vec<(Method, String)> = resource_routes(&f)
        .into_iter()
        .chain(admin_routes(&f))
        .filter(|(_, _, body)| body.is_some())
        .map(|(m, p, _)| (m, p))
        .collect();
    routes.push((Method::POST, "/volumes".into()));
    routes.push((
        Method::POST,
        format!("/volume-transfers/{}/accept", f.transfer),
    ));
    routes.push((Method::POST, "/groups/action".into()));
    for (method, path) in routes {
        let full = format!("/v3/padmin{path}");
        let (code, resp) = a
            .raw(
                "admin",
                method.clone(),
                &full,
                Some("{not json".into()),
                Some("3.71"),
            )
            .await;
        assert_eq!(
            code,
            StatusCode::BAD_REQUEST,
            "admin {method} {path}: {resp}"
        );
        assert!(resp.get("badRequest").is_some(), "{resp}");
    }
}

#[tokio::test]
async fn microversions_are_negotiated_and_echoed() {
    let a = api().await;
    let (code, body) = a
        .raw("alice", Method::GET, "/v3/pa/volumes", None, Some("3.99"))
        .await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE, "{body}");
    // Features newer than the request's version are not there.
    let (code, _) = a
        .raw(
            "alice",
            Method::GET,
            "/v3/pa/volumes/summary",
            None,
            Some("3.11"),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = a
        .raw(
            "alice",
            Method::GET,
            "/v3/pa/volumes/summary",
            None,
            Some("3.12"),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = a
        .raw(
            "alice",
            Method::GET,
            "/v3/pa/attachments",
            None,
            Some("3.26"),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = a
        .raw(
            "alice",
            Method::GET,
            "/v3/pa/attachments",
            None,
            Some("3.27"),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
}
