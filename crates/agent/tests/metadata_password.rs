//! The guest's password through the metadata service: POSTed once to
//! `openstack/<version>/password` (a second POST is 409), read and cleared by the owner with
//! os-server-password; the EC2 `public-ipv4` is the server's floating IP.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use nubo_agent::testing::{Fleet, FleetSpec, MEMBER_TOKEN, OTHER_TOKEN};
use nubo_compute::service::metadata::sign_instance_id;
use serde_json::json;

/// One request to the metadata service as the data plane's proxy sends it.
async fn metadata(fleet: &Fleet, method: &str, path: &str, id: &str, body: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(fleet.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method(method)
        .uri(format!("/metadata{path}"))
        .header("host", fleet.addr.to_string())
        .header("x-instance-id", id)
        .header(
            "x-instance-id-signature",
            sign_instance_id("fleet-metadata", id),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_posts_its_password_once() {
    let fleet = Fleet::start(FleetSpec {
        hosts: 1,
        ..FleetSpec::default()
    })
    .await;
    let id = fleet.create_server("pw", "1").await.unwrap();
    assert_eq!(fleet.wait_status(&id, &["ACTIVE"]).await, "ACTIVE");
    let pw = format!("/compute/v2.1/servers/{id}/os-server-password");

    let (st, v) = fleet.call("GET", &pw, MEMBER_TOKEN, None).await;
    assert_eq!((st, v), (200, json!({"password": ""})));
    let listing = metadata(&fleet, "GET", "/openstack/2013-10-17", &id, "").await;
    assert!(listing.1.lines().any(|l| l == "password"), "{listing:?}");
    let (st, _) = metadata(
        &fleet,
        "POST",
        "/openstack/2013-10-17/password",
        &id,
        "secret1",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        metadata(&fleet, "GET", "/openstack/latest/password", &id, "").await,
        (200, "secret1".to_string())
    );
    let (st, _) = metadata(&fleet, "POST", "/openstack/latest/password", &id, "other").await;
    assert_eq!(st, 409, "the password is set once");
    let (st, _) = metadata(&fleet, "POST", "/openstack/latest/meta_data.json", &id, "x").await;
    assert_eq!(st, 405);
    let (st, _) = metadata(&fleet, "POST", "/openstack/2012-08-10/password", &id, "x").await;
    assert_eq!(st, 405, "no password before 2013-04-04");
    let (st, _) = metadata(
        &fleet,
        "POST",
        "/openstack/latest/password",
        &id,
        &"x".repeat(1021),
    )
    .await;
    assert_eq!(st, 400, "at most 4 x 255 bytes");

    let (st, v) = fleet.call("GET", &pw, MEMBER_TOKEN, None).await;
    assert_eq!((st, v), (200, json!({"password": "secret1"})));
    let (st, _) = fleet.call("GET", &pw, OTHER_TOKEN, None).await;
    assert_eq!(st, 404, "another project's server");
    let (st, _) = fleet.call("DELETE", &pw, MEMBER_TOKEN, None).await;
    assert_eq!(st, 204);
    let (st, v) = fleet.call("GET", &pw, MEMBER_TOKEN, None).await;
    assert_eq!((st, v), (200, json!({"password": ""})));
    let (st, _) = metadata(&fleet, "POST", "/openstack/latest/password", &id, "secret2").await;
    assert_eq!(st, 200, "cleared: the guest may post again");

    // No floating IP: public-ipv4 is empty.
    assert_eq!(
        metadata(&fleet, "GET", "/latest/meta-data/public-ipv4", &id, "").await,
        (200, String::new())
    );
    fleet.stop().await;
}
