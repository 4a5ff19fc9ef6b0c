//! What Compute asks of Block Storage in process: a non-bootable volume is refused as a root
//! disk (Nova's InvalidBDMVolumeNotBootable), `volumes_attached` lists a server's volumes with
//! the boot volume, and reimaging a boot volume keeps its id and gives it new data.

mod common;

use nubo_common::testing::project_caller;
use nubo_volume::{BootVolumeRequest, ServerRef};
use serde_json::json;

fn root(uuid: &str) -> BootVolumeRequest {
    BootVolumeRequest {
        source_type: "volume".into(),
        uuid: Some(uuid.into()),
        size: None,
        boot_index: Some(0),
        delete_on_termination: false,
        device_name: None,
        tag: None,
        volume_type: None,
    }
}

#[tokio::test]
async fn a_non_bootable_volume_is_no_root_disk_but_may_be_a_data_disk() {
    let a = common::api().await;
    let alice = project_caller("alice", "pa", &["member", "reader"]);
    let v = a.volume("alice", json!({"size": 1})).await;
    let id = v["id"].as_str().unwrap().to_string();
    a.wait_volume("alice", &id, "available").await;
    let err = a
        .service
        .check_boot_volume(&alice, &root(&id))
        .await
        .unwrap_err();
    assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    assert!(err.message.contains("is not bootable"), "{}", err.message);
    let mut data = root(&id);
    data.boot_index = None;
    a.service
        .check_boot_volume(&alice, &data)
        .await
        .expect("a data disk");
    // Marked bootable, it may be the root disk.
    let (s, _) = a
        .post(
            "alice",
            &format!("/volumes/{id}/action"),
            json!({"os-set_bootable": {"bootable": true}}),
        )
        .await;
    assert_eq!(s, http::StatusCode::OK);
    a.service
        .check_boot_volume(&alice, &root(&id))
        .await
        .expect("bootable now");
}

#[tokio::test]
async fn a_servers_volumes_are_listed_with_its_boot_volume() {
    let a = common::api().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let v = a.volume("alice", json!({"size": 1})).await;
        let id = v["id"].as_str().unwrap().to_string();
        a.wait_volume("alice", &id, "available").await;
        ids.push(id);
    }
    let server = ServerRef {
        id: "srv-1".into(),
        project_id: "pa".into(),
        host: Some("h1".into()),
    };
    let (boot_id, _) = a
        .service
        .boot_volume(
            "pa",
            "alice",
            &server,
            &BootVolumeRequest {
                delete_on_termination: true,
                ..root(&ids[0])
            },
        )
        .await
        .expect("boot volume attached");
    assert_eq!(boot_id, ids[0]);
    let alice = project_caller("alice", "pa", &["member", "reader"]);
    a.service
        .attach_for_server(&alice, &ids[1], &server, None, None, false, None)
        .await
        .expect("data volume attaching");
    let listed = a
        .service
        .volumes_attached(&["srv-1".into(), "srv-2".into()])
        .await
        .unwrap();
    assert_eq!(
        listed.get("srv-1"),
        Some(&vec![(ids[0].clone(), true), (ids[1].clone(), false)])
    );
    assert!(!listed.contains_key("srv-2"));
    assert_eq!(
        a.service.attached_server(&ids[1]).await.unwrap().as_deref(),
        Some("srv-1")
    );
    let (boot, image) = a
        .service
        .boot_volume_of("srv-1")
        .await
        .unwrap()
        .expect("a boot volume");
    assert_eq!(boot, ids[0]);
    assert_eq!(image, None, "an empty volume has no image");
}
