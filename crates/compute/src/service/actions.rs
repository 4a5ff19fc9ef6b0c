//! Server actions (`POST /servers/{id}/action`): power (start, stop, reboot, pause, unpause,
//! suspend, resume), lock/unlock, rebuild, createImage, os-getConsoleOutput, os-resetState;
//! interface attach/detach; instance actions and their events.
//!
//! Each power action checks Nova's allowed states, sets a `task_state`, writes the desired
//! state and bumps the host's generation; `hosts::observe` clears the task when the agent
//! reports the VM where it should be.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nubo_common::{Caller, Error, Result};
use nubo_image::ImageId;
use nubo_network::ServerPortRequest;
use serde_json::{json, Value};

use super::servers::server_not_found;
use super::{now, require_admin, require_member, ComputeService};
use crate::agent_api::HostRequest;
use crate::microversion::Microversion;
use crate::store;
use crate::store::servers::{ServerPort, ServerRow};

/// The power actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerOp {
    Start,
    Stop,
    SoftReboot,
    HardReboot,
    Pause,
    Unpause,
    Suspend,
    Resume,
}

impl PowerOp {
    fn action_name(self) -> &'static str {
        match self {
            PowerOp::Start => "start",
            PowerOp::Stop => "stop",
            PowerOp::SoftReboot | PowerOp::HardReboot => "reboot",
            PowerOp::Pause => "pause",
            PowerOp::Unpause => "unpause",
            PowerOp::Suspend => "suspend",
            PowerOp::Resume => "resume",
        }
    }

    /// (allowed vm_states, task_state set, desired power)
    fn rule(self) -> (&'static [&'static str], &'static str, &'static str) {
        match self {
            PowerOp::Start => (&["stopped"], "powering-on", "running"),
            PowerOp::Stop => (&["active", "error"], "powering-off", "shutdown"),
            PowerOp::SoftReboot => (&["active"], "rebooting", "running"),
            PowerOp::HardReboot => (
                &["active", "stopped", "paused", "suspended", "error"],
                "rebooting_hard",
                "running",
            ),
            PowerOp::Pause => (&["active"], "pausing", "paused"),
            PowerOp::Unpause => (&["paused"], "unpausing", "running"),
            PowerOp::Suspend => (&["active", "paused"], "suspending", "suspended"),
            PowerOp::Resume => (&["suspended"], "resuming", "running"),
        }
    }
}

fn conflict_state(id: &str, action: &str, row: &ServerRow) -> Error {
    match &row.task_state {
        Some(task) => Error::conflict(format!(
            "Cannot '{action}' instance {id} while it is in task_state {task}"
        )),
        None => Error::conflict(format!(
            "Cannot '{action}' instance {id} while it is in vm_state {}",
            row.vm_state
        )),
    }
}

fn check_lock(caller: &Caller, row: &ServerRow) -> Result<()> {
    if row.locked && !caller.is_admin() {
        return Err(Error::conflict(format!("Instance {} is locked", row.id)));
    }
    Ok(())
}

impl ComputeService {
    /// Records an instance action (one event, open until the transition ends).
    async fn record_action(
        &self,
        tx: &mut super::Tx,
        caller: &Caller,
        row: &ServerRow,
        action: &str,
        request_id: &str,
    ) -> Result<()> {
        store::actions::record(
            tx,
            &row.id,
            action,
            request_id,
            &caller.user_id,
            &row.project_id,
            &format!("compute_{action}_instance"),
            row.host.as_deref(),
            &now(),
        )
        .await?;
        Ok(())
    }

    pub async fn power_action(
        &self,
        caller: &Caller,
        id: &str,
        op: PowerOp,
        request_id: &str,
    ) -> Result<()> {
        self.visible_server(caller, id).await?;
        require_member(
            caller,
            &format!("os_compute_api:servers:{}", op.action_name()),
        )?;
        let (allowed, task, desired) = op.rule();
        let mut tx = self.write().await?;
        let mut row = store::servers::get(&mut tx, id)
            .await?
            .ok_or_else(|| server_not_found(id))?;
        check_lock(caller, &row)?;
        let task_ok = match op {
            // A hard reboot may override a soft one in progress.
            PowerOp::HardReboot => matches!(
                row.task_state.as_deref(),
                None | Some("rebooting")
                    | Some("reboot_pending")
                    | Some("reboot_started")
                    | Some("rebooting_hard")
            ),
            _ => row.task_state.is_none(),
        };
        if !allowed.contains(&row.vm_state.as_str()) || !task_ok || row.deleting {
            return Err(conflict_state(id, op.action_name(), &row));
        }
        let Some(host) = row.host.clone() else {
            return Err(Error::conflict(format!(
                "Instance {id} is not ready: it is on no host"
            )));
        };
        row.task_state = Some(task.to_string());
        row.desired_power = desired.to_string();
        row.hard_stop = false;
        if matches!(op, PowerOp::SoftReboot | PowerOp::HardReboot) {
            row.reboot_seq = row.reboot_seq.max(row.applied_reboot_seq) + 1;
            row.reboot_hard = op == PowerOp::HardReboot;
        }
        row.updated_at = now();
        store::servers::update(&mut tx, &row).await?;
        self.record_action(&mut tx, caller, &row, op.action_name(), request_id)
            .await?;
        let generation = self.bump_host(&mut tx, &host).await?;
        tx.commit().await?;
        self.signal_host(&host, generation);
        Ok(())
    }

    pub async fn lock_server(
        &self,
        caller: &Caller,
        id: &str,
        reason: Option<String>,
        request_id: &str,
    ) -> Result<()> {
        self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-lock-server:lock")?;
        let mut tx = self.write().await?;
        let mut row = store::servers::get(&mut tx, id)
            .await?
            .ok_or_else(|| server_not_found(id))?;
        row.locked = true;
        row.locked_by = Some(if caller.project_id() == Some(row.project_id.as_str()) {
            "owner".into()
        } else {
            "admin".into()
        });
        row.locked_reason = reason;
        row.updated_at = now();
        store::servers::update(&mut tx, &row).await?;
        self.record_action(&mut tx, caller, &row, "lock", request_id)
            .await?;
        store::actions::finish(&mut tx, id, "Success", None, None, &now()).await?;
        tx.commit().await
    }

    pub async fn unlock_server(&self, caller: &Caller, id: &str, request_id: &str) -> Result<()> {
        self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-lock-server:unlock")?;
        let mut tx = self.write().await?;
        let mut row = store::servers::get(&mut tx, id)
            .await?
            .ok_or_else(|| server_not_found(id))?;
        if row.locked && row.locked_by.as_deref() == Some("admin") && !caller.is_admin() {
            return Err(super::policy(
                "os_compute_api:os-lock-server:unlock:unlock_override",
            ));
        }
        row.locked = false;
        row.locked_by = None;
        row.locked_reason = None;
        row.updated_at = now();
        store::servers::update(&mut tx, &row).await?;
        self.record_action(&mut tx, caller, &row, "unlock", request_id)
            .await?;
        store::actions::finish(&mut tx, id, "Success", None, None, &now()).await?;
        tx.commit().await
    }

    /// `os-resetState` (admin): sets vm_state, clears the task.
    pub async fn reset_state(&self, caller: &Caller, id: &str, state: &str) -> Result<()> {
        require_admin(caller, "os_compute_api:os-admin-actions:reset_state")?;
        self.visible_server(caller, id).await?;
        if state != "active" && state != "error" {
            return Err(Error::bad_request(format!(
                "Invalid input for field/attribute state. Value: {state}."
            )));
        }
        let state = state.to_string();
        self.modify(id, move |r| {
            r.vm_state = state;
            r.task_state = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `rebuild`: a fresh disk from `imageRef` (a new clone under a new name), and the VM
    /// spawned again on it; the old disk goes once the agent moved off it.
    pub async fn rebuild_server(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        body: &Value,
        mv: Microversion,
        request_id: &str,
    ) -> Result<(ServerRow, String)> {
        self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:servers:rebuild")?;
        let b = body
            .get("rebuild")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute rebuild."))?;
        let image_ref = match b.get("imageRef") {
            Some(Value::String(r)) if !r.is_empty() => r
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(r)
                .to_string(),
            _ => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute imageRef.",
                ))
            }
        };
        let boot = match self
            .image
            .image_for_boot(caller, &ImageId(image_ref.clone()))
            .await
        {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::bad_request(format!(
                    "Image {image_ref} could not be found."
                )))
            }
            Err(e) => return Err(Error::bad_request(e.message)),
        };
        let name = match b.get("name") {
            None => None,
            Some(Value::String(n)) if !n.is_empty() && n.len() <= 255 && n.trim() == n => {
                Some(n.clone())
            }
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute name.",
                ))
            }
        };
        let metadata = match b.get("metadata") {
            None => None,
            Some(m) => Some(super::servers::parse_metadata(m)?),
        };
        let description = match b.get("description") {
            None => None,
            Some(Value::Null) if mv.at_least(19) => Some(None),
            Some(Value::String(d)) if mv.at_least(19) && d.len() <= 255 => Some(Some(d.clone())),
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute description.",
                ))
            }
        };
        let key = match b.get("key_name") {
            None => None,
            Some(Value::Null) if mv.at_least(54) => Some((None, None)),
            Some(Value::String(k)) if mv.at_least(54) => {
                match store::keypairs::get(&self.db, &caller.user_id, k).await? {
                    Some(kp) => Some((Some(k.clone()), Some(kp.public_key))),
                    None => return Err(Error::bad_request("Invalid key_name provided.")),
                }
            }
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute key_name.",
                ))
            }
        };
        let user_data = match b.get("user_data") {
            None => None,
            Some(Value::Null) if mv.at_least(57) => Some(None),
            Some(Value::String(u)) if mv.at_least(57) => Some(Some(u.clone())),
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute user_data.",
                ))
            }
        };
        let v4 = b.get("accessIPv4").and_then(Value::as_str).map(|a| {
            a.parse::<std::net::IpAddr>()
                .map(|i| i.to_string())
                .unwrap_or_else(|_| a.to_string())
        });
        let v6 = b.get("accessIPv6").and_then(Value::as_str).map(|a| {
            a.parse::<std::net::IpAddr>()
                .map(|i| i.to_string())
                .unwrap_or_else(|_| a.to_string())
        });
        let disk_config = b
            .get("OS-DCF:diskConfig")
            .and_then(Value::as_str)
            .filter(|d| *d == "AUTO" || *d == "MANUAL")
            .map(String::from);
        let admin_pass = b
            .get("adminPass")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| "rebuilt-password".into());
        let row = self.visible_server(caller, id).await?;
        check_lock(caller, &row)?;
        if !["active", "stopped", "error"].contains(&row.vm_state.as_str())
            || row.task_state.is_some()
            || row.deleting
        {
            return Err(conflict_state(id, "rebuild", &row));
        }
        let Some(host) = row.host.clone() else {
            return Err(Error::conflict(format!(
                "Cannot 'rebuild' instance {id}: it is on no host"
            )));
        };
        // A volume-backed server (block storage, issue 7) is rebuilt on its boot volume: from
        // 2.93 the volume is reimaged (Cinder's reimage), before only with the volume's own
        // image (Nova's ImageUnacceptable otherwise); the server keeps no image of its own.
        let volume_backed = row
            .disk_name
            .as_deref()
            .is_some_and(|d| !super::volume_attachments::owns_disk(d));
        let new_disk = if volume_backed {
            let volumes = self.volume_service()?;
            let Some((_, volume_image)) = volumes.boot_volume_of(id).await? else {
                return Err(Error::conflict(format!(
                    "Cannot 'rebuild' instance {id}: its boot volume is gone"
                )));
            };
            if mv.at_least(93) {
                let (_, object) = volumes.reimage_boot_volume(id, &boot).await?;
                Some(object)
            } else if volume_image.as_deref() != Some(image_ref.as_str()) {
                return Err(Error::bad_request(format!(
                    "Image {image_ref} is unacceptable: Unable to rebuild with a different image for a volume-backed server."
                )));
            } else {
                None
            }
        } else {
            let size = (row.flavor.root_gb > 0).then(|| row.flavor.root_gb as u64 * (1 << 30));
            let new_disk = format!("disk-{id}-{}", &nubo_common::ids::new_hex_id()[..8]);
            self.blockstore
                .create_clone(&boot.source(), &new_disk, size)
                .await
                .map_err(|e| Error::internal(format!("disk clone: {e}")))?;
            Some(new_disk)
        };
        let mut tx = self.write().await?;
        let Some(mut r) = store::servers::get(&mut tx, id).await? else {
            if let Some(d) = new_disk
                .as_deref()
                .filter(|d| !volume_backed && !d.is_empty())
            {
                let _ = self.blockstore.delete(d).await;
            }
            return Err(server_not_found(id));
        };
        if volume_backed {
            // The volume's old object is Block Storage's to delete, never Compute's.
            if let Some(d) = new_disk {
                r.disk_name = Some(d);
            }
        } else {
            if let Some(older) = r.old_disk.take() {
                let _ = self.blockstore.delete(&older).await;
            }
            r.old_disk = std::mem::replace(&mut r.disk_name, new_disk);
            r.image_ref = image_ref;
        }
        if let Some(n) = name {
            r.name = n;
        }
        if let Some(m) = metadata {
            r.metadata = m;
        }
        if let Some(d) = description {
            r.description = d;
        }
        if let Some((k, d)) = key {
            r.key_name = k;
            r.key_data = d;
        }
        if let Some(u) = user_data {
            r.user_data = u;
        }
        if let Some(a) = v4 {
            r.access_ipv4 = a;
        }
        if let Some(a) = v6 {
            r.access_ipv6 = a;
        }
        if let Some(d) = disk_config {
            r.disk_config = d;
        }
        r.task_state = Some("rebuilding".into());
        if r.vm_state == "error" {
            r.vm_state = "active".into();
            r.desired_power = "running".into();
            r.fault = None;
        }
        r.respawn_seq = r.respawn_seq.max(r.applied_respawn_seq) + 1;
        r.updated_at = now();
        store::servers::update(&mut tx, &r).await?;
        self.record_action(&mut tx, caller, &r, "rebuild", request_id)
            .await?;
        let generation = self.bump_host(&mut tx, &host).await?;
        tx.commit().await?;
        self.signal_host(&host, generation);
        Ok((r, admin_pass))
    }

    /// `createImage`, as Nova does it: the image record first (queued; its id is the answer),
    /// then, in the background, a cold snapshot (a running VM is stopped by pulling the plug,
    /// its disk snapshotted in the block store, and the VM brought back to its power state on a
    /// fresh spec, since the disk's file changed), the snapshot's content uploaded into the
    /// image (which becomes active and independent of the server), and the snapshot deleted.
    pub async fn create_image(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<String> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:servers:create_image")?;
        let b = body
            .get("createImage")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute createImage."))?;
        let name = match b.get("name") {
            Some(Value::String(n)) if !n.is_empty() && n.len() <= 255 && n.trim() == n => n.clone(),
            _ => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute name.",
                ))
            }
        };
        let properties: BTreeMap<String, String> = match b.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(m) => super::servers::parse_metadata(m)?,
        };
        self.snapshot_to_image(
            caller,
            &row,
            name,
            properties,
            None,
            "createImage",
            request_id,
        )
        .await
    }

    /// What createImage and createBackup share: the image record (`backup`: its type and
    /// rotation, for a backup), a cold snapshot in the background, the upload, and (backups)
    /// the rotation of older backups once the new one is active.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn snapshot_to_image(
        self: &Arc<Self>,
        caller: &Caller,
        row: &ServerRow,
        name: String,
        properties: BTreeMap<String, String>,
        backup: Option<(String, i64)>,
        action: &str,
        request_id: &str,
    ) -> Result<String> {
        let id = row.id.as_str();
        check_lock(caller, row)?;
        if !["active", "stopped", "paused", "suspended"].contains(&row.vm_state.as_str())
            || row.task_state.is_some()
            || row.deleting
        {
            return Err(conflict_state(id, action, row));
        }
        if let Ok(volume) = self.volume_service() {
            if let Some((_, base_image)) = volume.boot_volume_of(id).await? {
                if backup.is_some() {
                    return Err(Error::bad_request(
                        "Backup is not supported for volume-backed instances.",
                    ));
                }
                return self
                    .snapshot_volume_backed(caller, row, base_image, name, properties, request_id)
                    .await;
            }
        }
        let (Some(host), Some(disk)) = (row.host.clone(), row.disk_name.clone()) else {
            return Err(conflict_state(id, action, row));
        };
        let mut record = serde_json::Map::new();
        record.insert("name".into(), json!(name));
        record.insert("disk_format".into(), json!("raw"));
        record.insert("container_format".into(), json!("bare"));
        record.insert("visibility".into(), json!("private"));
        record.insert("min_disk".into(), json!(row.flavor.root_gb));
        match &backup {
            Some((kind, _)) => {
                record.insert("image_type".into(), json!("backup"));
                record.insert("backup_type".into(), json!(kind));
            }
            None => {
                record.insert("image_type".into(), json!("snapshot"));
            }
        }
        record.insert("instance_uuid".into(), json!(id));
        if !row.image_ref.is_empty() {
            record.insert("base_image_ref".into(), json!(row.image_ref));
        }
        // The user's metadata wins over Nova's own properties, as in Nova.
        for (k, v) in &properties {
            record.insert(k.clone(), json!(v));
        }
        let image = self
            .image
            .create_image(caller, Value::Object(record))
            .await?;
        let image_id = image.id.to_string();
        // Hold the VM down.
        let mut tx = self.write().await?;
        let Some(mut r) = store::servers::get(&mut tx, id).await? else {
            return Err(server_not_found(id));
        };
        let previous_power = r.desired_power.clone();
        r.task_state = Some("image_snapshot".into());
        r.desired_power = "shutdown".into();
        r.hard_stop = true;
        r.updated_at = now();
        store::servers::update(&mut tx, &r).await?;
        self.record_action(&mut tx, caller, &r, action, request_id)
            .await?;
        let generation = self.bump_host(&mut tx, &host).await?;
        tx.commit().await?;
        self.signal_host(&host, generation);
        let this = self.clone();
        let caller = caller.clone();
        let server_id = id.to_string();
        let image_for_task = image_id.clone();
        tokio::spawn(async move {
            if let Err(e) = this
                .snapshot_into(
                    &caller,
                    &server_id,
                    &host,
                    &disk,
                    &image_for_task,
                    &previous_power,
                )
                .await
            {
                tracing::warn!(server_id = %server_id, image_id = %image_for_task, error = %e, "snapshot failed");
                let _ = this.image.delete_image(&caller, &image_for_task).await;
            } else if let Some((kind, rotation)) = &backup {
                this.rotate_backups(&caller, &server_id, kind, *rotation)
                    .await;
            }
        });
        Ok(image_id)
    }

    /// createImage of a volume-backed server, as Nova does it: a (forced) Block Storage
    /// snapshot of every volume the server has, and an active image with no data (size 0)
    /// whose `block_device_mapping` property names those snapshots. Booting that image makes
    /// new volumes from them (see `image_defined_volumes`). The VM keeps running; a snapshot
    /// of an in-use volume is a copy of its data at that moment (crash-consistent, as Nova's
    /// without a guest agent to quiesce it).
    async fn snapshot_volume_backed(
        self: &Arc<Self>,
        caller: &Caller,
        row: &ServerRow,
        base_image: Option<String>,
        name: String,
        properties: BTreeMap<String, String>,
        request_id: &str,
    ) -> Result<String> {
        let id = row.id.as_str();
        let volume = self.volume_service()?;
        let mut mapping = Vec::new();
        let mut taken: Vec<String> = Vec::new();
        let mut failure = None;
        for a in volume.server_attachments(id).await? {
            let request = json!({"snapshot": {
                "volume_id": a.volume_id,
                "force": true,
                "display_name": format!("snapshot for {name}"),
            }});
            match volume.proxy_create_snapshot(caller, &request).await {
                Ok(snap) => {
                    let snapshot_id = snap["id"].as_str().unwrap_or_default().to_string();
                    taken.push(snapshot_id.clone());
                    mapping.push(json!({
                        "source_type": "snapshot",
                        "destination_type": "volume",
                        "snapshot_id": snapshot_id,
                        "volume_size": snap["size"],
                        "boot_index": a.boot_index,
                        "delete_on_termination": a.delete_on_termination,
                        "device_name": a.device,
                        "tag": a.tag,
                        "device_type": "disk",
                        "disk_bus": null,
                        "guest_format": null,
                        "no_device": null,
                        "volume_id": null,
                        "image_id": null,
                    }));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let image = match failure {
            Some(e) => Err(e),
            None => {
                let mut record = serde_json::Map::new();
                record.insert("name".into(), json!(name));
                record.insert("disk_format".into(), json!("raw"));
                record.insert("container_format".into(), json!("bare"));
                record.insert("visibility".into(), json!("private"));
                record.insert("image_type".into(), json!("snapshot"));
                record.insert("instance_uuid".into(), json!(id));
                if let Some(base) = base_image {
                    record.insert("base_image_ref".into(), json!(base));
                }
                record.insert("root_device_name".into(), json!("/dev/vda"));
                record.insert("bdm_v2".into(), json!("True"));
                record.insert(
                    "block_device_mapping".into(),
                    json!(Value::Array(mapping).to_string()),
                );
                for (k, v) in &properties {
                    record.insert(k.clone(), json!(v));
                }
                self.activate_empty_image(caller, Value::Object(record))
                    .await
            }
        };
        let image_id = match image {
            Ok(image_id) => image_id,
            Err(e) => {
                // Nothing half-made stays: the snapshots already taken go.
                for snapshot in &taken {
                    if let Err(d) = volume.proxy_delete_snapshot(caller, snapshot).await {
                        tracing::warn!(server_id = %id, snapshot_id = %snapshot, error = %d, "removing a snapshot of a failed createImage failed");
                    }
                }
                return Err(e);
            }
        };
        let mut tx = self.write().await?;
        self.record_action(&mut tx, caller, row, "createImage", request_id)
            .await?;
        store::actions::finish(&mut tx, id, "Success", None, None, &now()).await?;
        tx.commit().await?;
        Ok(image_id)
    }

    /// An image with no data made active (Nova's zero-size images of volume-backed
    /// snapshots); deleted again when it cannot be activated.
    async fn activate_empty_image(&self, caller: &Caller, record: Value) -> Result<String> {
        let image = self.image.create_image(caller, record).await?;
        let image_id = image.id.to_string();
        let empty: nubo_blockstore::ByteStream = Box::pin(futures::stream::empty());
        if let Err(e) = self
            .image
            .upload_image(caller, &image_id, Some(0), empty)
            .await
        {
            let _ = self.image.delete_image(caller, &image_id).await;
            return Err(e);
        }
        Ok(image_id)
    }

    async fn snapshot_into(
        &self,
        caller: &Caller,
        id: &str,
        host: &str,
        disk: &str,
        image_id: &str,
        previous_power: &str,
    ) -> Result<()> {
        let down = self
            .wait_server(id, Duration::from_secs(120), |r| {
                r.power_state == 4 || r.deleting
            })
            .await?;
        let snap = format!("snapshot-{}", nubo_common::ids::new_uuid());
        let taken = match down {
            Some(r) if r.power_state == 4 && !r.deleting => self
                .blockstore
                .snapshot(disk, &snap)
                .await
                .map_err(|e| Error::internal(format!("snapshot of {disk}: {e}"))),
            Some(_) => Err(Error::conflict(format!(
                "Instance {id} did not stop for the snapshot"
            ))),
            None => Err(server_not_found(id)),
        };
        // Back to the previous power state, on a fresh spec.
        let mut tx = self.write().await?;
        if let Some(mut r) = store::servers::get(&mut tx, id).await? {
            r.desired_power = previous_power.to_string();
            r.hard_stop = false;
            if taken.is_ok() {
                r.respawn_seq = r.respawn_seq.max(r.applied_respawn_seq) + 1;
            }
            r.task_state = if previous_power == "shutdown" || taken.is_err() {
                None
            } else {
                Some("image_uploading".into())
            };
            r.updated_at = now();
            store::servers::update(&mut tx, &r).await?;
            if r.task_state.is_none() {
                store::actions::finish(
                    &mut tx,
                    id,
                    if taken.is_ok() { "Success" } else { "Error" },
                    None,
                    None,
                    &now(),
                )
                .await?;
            }
            let generation = self.bump_host(&mut tx, host).await?;
            tx.commit().await?;
            self.signal_host(host, generation);
        }
        taken?;
        let uploaded = async {
            let info = self
                .blockstore
                .info(&snap)
                .await
                .map_err(|e| Error::internal(format!("snapshot {snap}: {e}")))?;
            let stream = self
                .blockstore
                .open_read(&snap)
                .await
                .map_err(|e| Error::internal(format!("snapshot {snap}: {e}")))?;
            self.image
                .upload_image(caller, image_id, Some(info.size), stream)
                .await
        }
        .await;
        if let Err(e) = self.blockstore.delete(&snap).await {
            tracing::warn!(snapshot = %snap, error = %e, "snapshot not deleted");
        }
        uploaded?;
        tracing::info!(server_id = %id, image_id, "image created from server");
        Ok(())
    }

    /// `os-getConsoleOutput`: asks the host's agent for the console log (the last `length`
    /// lines, all when `None`).
    pub async fn console_output(
        &self,
        caller: &Caller,
        id: &str,
        length: Option<u64>,
    ) -> Result<String> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-console-output")?;
        let Some(host) = row.host.clone() else {
            return Err(Error::conflict(format!("Instance {id} is not ready")));
        };
        if row.vm_state == "building" && row.task_state.as_deref() != Some("spawning") {
            return Err(Error::conflict(format!("Instance {id} is not ready")));
        }
        let request = HostRequest {
            id: nubo_common::ids::new_uuid(),
            server_id: id.to_string(),
            kind: "console".into(),
            length,
        };
        store::requests::insert(&self.db, &host, &request, &now()).await?;
        let mut rx = self.watch_server(&request.id);
        let mut tx = self.write().await?;
        let generation = self.bump_host(&mut tx, &host).await?;
        tx.commit().await?;
        self.signal_host(&host, generation);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let outcome = loop {
            if let Some(o) = store::requests::outcome(&self.db, &request.id).await? {
                break Some(o);
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), rx.changed()).await;
        };
        store::requests::delete(&self.db, &request.id).await?;
        match outcome {
            Some((_, Some(error))) => {
                Err(Error::conflict(format!("Console log unavailable: {error}")))
            }
            Some((Some(output), None)) => Ok(output),
            Some((None, None)) => Ok(String::new()),
            None => Err(Error::conflict(format!(
                "Instance {id}'s host {host} did not answer"
            ))),
        }
    }

    // ----- interfaces -----

    pub async fn interfaces(&self, caller: &Caller, id: &str) -> Result<Vec<Value>> {
        let row = self.visible_server(caller, id).await?;
        let mut out = Vec::new();
        for p in &row.ports {
            out.push(self.interface_view(p).await?);
        }
        Ok(out)
    }

    pub(crate) async fn interface_view(&self, p: &ServerPort) -> Result<Value> {
        let state = self.network.port_state(&p.port_id).await?;
        let (status, fixed) = match state {
            Some(s) => (
                s.status.clone(),
                s.fixed_ips
                    .iter()
                    .map(|i| json!({"subnet_id": i.subnet_id, "ip_address": i.ip_address}))
                    .collect::<Vec<_>>(),
            ),
            None => ("DOWN".into(), Vec::new()),
        };
        Ok(json!({
            "port_state": status,
            "fixed_ips": fixed,
            "port_id": p.port_id,
            "net_id": p.network_id,
            "mac_addr": p.mac,
            "tag": p.tag,
        }))
    }

    pub async fn interface(&self, caller: &Caller, id: &str, port_id: &str) -> Result<Value> {
        let row = self.visible_server(caller, id).await?;
        let p = row
            .ports
            .iter()
            .find(|p| p.port_id == port_id)
            .ok_or_else(|| Error::not_found(format!("Port {port_id} is not attached")))?;
        self.interface_view(p).await
    }

    /// `POST os-interface`: a new port (or the user's) on the server; the agent hot-plugs it.
    pub async fn attach_interface(&self, caller: &Caller, id: &str, body: &Value) -> Result<Value> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-attach-interfaces:create")?;
        check_lock(caller, &row)?;
        if !["active", "paused", "stopped"].contains(&row.vm_state.as_str())
            || row.task_state.is_some()
            || row.deleting
        {
            return Err(conflict_state(id, "attach_interface", &row));
        }
        let Some(host) = row.host.clone() else {
            return Err(conflict_state(id, "attach_interface", &row));
        };
        let a = body
            .get("interfaceAttachment")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let port_id = a.get("port_id").and_then(Value::as_str).map(String::from);
        let net_id = a.get("net_id").and_then(Value::as_str).map(String::from);
        let fixed_ip = a
            .get("fixed_ips")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .and_then(|f| f.get("ip_address"))
            .and_then(Value::as_str)
            .map(String::from);
        let tag = a.get("tag").and_then(Value::as_str).map(String::from);
        let state = if let Some(port) = &port_id {
            match self.network.port_state(port).await? {
                Some(p) if p.project_id == row.project_id || caller.is_admin() => {
                    if !p.device_id.is_empty() {
                        return Err(Error::conflict(format!("Port {port} is still in use.")));
                    }
                }
                _ => return Err(Error::not_found(format!("Port {port} could not be found."))),
            }
            self.network
                .bind_server_port(&row.project_id, port, id, &host)
                .await?
        } else {
            let net = match net_id {
                Some(n) => n,
                None => {
                    let nets = self.resolve_auto(&row.project_id).await?;
                    nets.ok_or_else(|| {
                        Error::bad_request("No network to attach to: pass net_id or port_id.")
                    })?
                }
            };
            self.network
                .create_server_port(&ServerPortRequest {
                    project_id: row.project_id.clone(),
                    network_id: net.clone(),
                    server_id: id.to_string(),
                    host: host.clone(),
                    fixed_ip,
                    security_groups: None,
                })
                .await
                .map_err(|e| {
                    if e.is_not_found() {
                        Error::not_found(format!("Network {net} could not be found."))
                    } else {
                        e
                    }
                })?
        };
        let port = ServerPort {
            port_id: state.id.clone(),
            created: port_id.is_none(),
            mac: state.mac_address.clone(),
            network_id: state.network_id.clone(),
            network_name: self.network_name(&row.project_id, &state.network_id).await,
            ips: state
                .fixed_ips
                .iter()
                .map(|i| i.ip_address.clone())
                .collect(),
            tag,
        };
        let mut tx = self.write().await?;
        if let Some(mut r) = store::servers::get(&mut tx, id).await? {
            r.ports.push(port.clone());
            r.updated_at = now();
            store::servers::update(&mut tx, &r).await?;
        }
        let generation = self.bump_host(&mut tx, &host).await?;
        tx.commit().await?;
        self.signal_host(&host, generation);
        self.interface_view(&port).await
    }

    async fn resolve_auto(&self, project: &str) -> Result<Option<String>> {
        let ctx = nubo_network::service::Ctx {
            project: project.to_string(),
            admin: false,
            member: true,
        };
        let page = self
            .network
            .list_networks(
                &ctx,
                &nubo_network::query::ListParams::default(),
                &nubo_network::query::LinkBase { url: "" },
            )
            .await?;
        Ok(page
            .items
            .iter()
            .find(|n| n.get("project_id").and_then(Value::as_str) == Some(project))
            .and_then(|n| n.get("id").and_then(Value::as_str))
            .map(String::from))
    }

    pub async fn detach_interface(&self, caller: &Caller, id: &str, port_id: &str) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-attach-interfaces:delete")?;
        check_lock(caller, &row)?;
        let Some(port) = row.ports.iter().find(|p| p.port_id == port_id).cloned() else {
            return Err(Error::not_found(format!("Port {port_id} is not attached")));
        };
        if row.task_state.is_some() || row.deleting {
            return Err(conflict_state(id, "detach_interface", &row));
        }
        let mut tx = self.write().await?;
        if let Some(mut r) = store::servers::get(&mut tx, id).await? {
            r.ports.retain(|p| p.port_id != port_id);
            r.updated_at = now();
            store::servers::update(&mut tx, &r).await?;
        }
        let generation = match &row.host {
            Some(h) => Some((h.clone(), self.bump_host(&mut tx, h).await?)),
            None => None,
        };
        tx.commit().await?;
        if let Some((h, g)) = generation {
            self.signal_host(&h, g);
        }
        self.network
            .release_server_port(&port.port_id, port.created)
            .await
    }
}
