//! Volumes of servers (Nova's `os-volume_attachments`, boot from volume, the `os-volumes`
//! proxy): Compute keeps no volume state of its own. Block Storage's attachments made here
//! (`nubo_volume::VolumeService::attach_for_server`) carry Nova's block device mapping fields,
//! and Compute turns them into each host's desired state.
//!
//! ```text
//!   attach:  API ──> volume attaching ──> host generation += 1 ──> agent hot-plugs (virtio-blk)
//!            agent's report lists the disk ──> observe_volumes ──> volume in-use
//!   detach:  API ──> volume detaching ──> generation += 1 ──> agent unplugs ──> report ──> available
//!   extend:  Block Storage ──> ComputeHooks::volume_extended ──> generation += 1
//!            ──> agent QMP block_resize ──> Block Storage sees the size ──> in-use
//!   delete:  VM destroyed ──> finalize_delete ──> release_volumes: attachments gone,
//!            delete_on_termination volumes deleted
//!   boot from volume: the server's root disk is the volume's block store object (never
//!            deleted by Compute: `owns_disk`)
//! ```

use std::sync::{Arc, Weak};

use nubo_common::{Caller, Error, Result};
use nubo_volume::{AttachedVolume, BootVolumeRequest, ComputeHooks, ServerRef, VolumeService};
use serde_json::Value;

use super::{now, require_member, ComputeService};
use crate::agent_api::{DesiredServer, DesiredVolume, ObservedHost};
use crate::store;
use crate::store::servers::ServerRow;

/// The states a server may have volumes attached or detached in (Nova's).
const ATTACH_STATES: &[&str] = &["active", "paused", "stopped", "suspended"];

/// Whether Compute made (and so deletes) a block store object: its own root disks are
/// `disk-<server id>`; a boot volume's object belongs to Block Storage.
pub(crate) fn owns_disk(name: &str) -> bool {
    name.starts_with("disk-")
}

fn no_volumes() -> Error {
    Error::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "Block Storage is not available in this cloud.",
    )
}

impl ComputeService {
    /// Connects Block Storage (`nubo up` and `nubo api` do this once at start).
    pub fn set_volume_service(self: &Arc<Self>, volume: Arc<VolumeService>) {
        let hooks: Weak<dyn ComputeHooks> = {
            let weak: Weak<ComputeService> = Arc::downgrade(self);
            weak
        };
        volume.set_compute(hooks);
        *self.volume.write() = Some(volume);
    }

    pub(crate) fn volume_service(&self) -> Result<Arc<VolumeService>> {
        self.volume.read().clone().ok_or_else(no_volumes)
    }

    fn server_ref(row: &ServerRow) -> ServerRef {
        ServerRef {
            id: row.id.clone(),
            project_id: row.project_id.clone(),
            host: row.host.clone(),
        }
    }

    /// Tells the server's host to converge again (its volumes changed).
    pub(crate) async fn bump_server_host(&self, server_id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let Some(row) = store::servers::get(&mut tx, server_id).await? else {
            return Ok(());
        };
        let Some(host) = row.host.clone() else {
            return Ok(());
        };
        let generation = self.bump_host(&mut tx, &host).await?;
        tx.commit().await?;
        self.signal_host(&host, generation);
        Ok(())
    }

    /// Records an instance action with one event, finished at once.
    async fn volume_action(
        &self,
        row: &ServerRow,
        action: &str,
        event: &str,
        request_id: &str,
        user_id: &str,
        result: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let now = now();
        store::actions::record(
            &mut tx,
            &row.id,
            action,
            request_id,
            user_id,
            &row.project_id,
            event,
            row.host.as_deref(),
            &now,
        )
        .await?;
        if let Some(result) = result {
            store::actions::finish(&mut tx, &row.id, result, None, None, &now).await?;
        }
        tx.commit().await
    }

    fn check_attach_state(row: &ServerRow, verb: &str) -> Result<()> {
        if row.deleting
            || row.task_state.is_some()
            || !ATTACH_STATES.contains(&row.vm_state.as_str())
            || row.host.is_none()
        {
            return Err(Error::conflict(format!(
                "Cannot '{verb}' instance {} while it is in vm_state {}",
                row.id, row.vm_state
            )));
        }
        Ok(())
    }

    /// The volumes attached to each of `rows` (Nova's `volumes_attached`); none without
    /// Block Storage.
    pub async fn volumes_attached(
        &self,
        rows: &[&ServerRow],
    ) -> Result<std::collections::HashMap<String, Vec<(String, bool)>>> {
        let Some(volumes) = self.volume.read().clone() else {
            return Ok(Default::default());
        };
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        volumes.volumes_attached(&ids).await
    }

    /// `GET /servers/{id}/os-volume_attachments`.
    pub async fn list_volume_attachments(
        &self,
        caller: &Caller,
        server_id: &str,
    ) -> Result<Vec<AttachedVolume>> {
        self.visible_server(caller, server_id).await?;
        self.volume_service()?.server_attachments(server_id).await
    }

    /// `GET /servers/{id}/os-volume_attachments/{volume_id}`.
    pub async fn get_volume_attachment(
        &self,
        caller: &Caller,
        server_id: &str,
        volume_id: &str,
    ) -> Result<AttachedVolume> {
        self.list_volume_attachments(caller, server_id)
            .await?
            .into_iter()
            .find(|a| a.volume_id == volume_id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Volume {volume_id} is not attached to server {server_id}."
                ))
            })
    }

    /// `POST /servers/{id}/os-volume_attachments`: reserves the volume and has the server's
    /// host hot-plug it.
    #[allow(clippy::too_many_arguments)]
    pub async fn attach_volume(
        &self,
        caller: &Caller,
        server_id: &str,
        volume_id: &str,
        device: Option<&str>,
        tag: Option<&str>,
        delete_on_termination: bool,
        request_id: &str,
    ) -> Result<AttachedVolume> {
        let row = self.visible_server(caller, server_id).await?;
        require_member(caller, "os_compute_api:os-volumes-attachments:create")?;
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {server_id} is locked")));
        }
        Self::check_attach_state(&row, "attach_volume")?;
        if let Some(d) = device {
            let valid = d.is_empty() || (d.starts_with("/dev/") && d.len() > 5);
            if !valid {
                return Err(Error::bad_request(format!(
                    "The supplied device path ({d}) is invalid."
                )));
            }
        }
        let volumes = self.volume_service()?;
        let attached = volumes
            .attach_for_server(
                caller,
                volume_id,
                &Self::server_ref(&row),
                device,
                tag,
                delete_on_termination,
                None,
            )
            .await?;
        self.bump_server_host(server_id).await?;
        self.volume_action(
            &row,
            "attach_volume",
            "compute_attach_volume",
            request_id,
            &caller.user_id,
            Some("Success"),
        )
        .await?;
        Ok(attached)
    }

    /// `PUT /servers/{id}/os-volume_attachments/{volume_id}`: Nova 2.85 changes
    /// `delete_on_termination`; swapping to another volume is refused (one backend, no
    /// live block copy).
    pub async fn update_volume_attachment(
        &self,
        caller: &Caller,
        server_id: &str,
        volume_id: &str,
        body: &Value,
        at_2_85: bool,
    ) -> Result<()> {
        let row = self.visible_server(caller, server_id).await?;
        let a = body
            .get("volumeAttachment")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                Error::bad_request("Invalid input for field/attribute volumeAttachment.")
            })?;
        let new_volume = a
            .get("volumeId")
            .and_then(Value::as_str)
            .unwrap_or(volume_id);
        self.get_volume_attachment(caller, server_id, volume_id)
            .await?;
        if new_volume != volume_id {
            super::require_admin(caller, "os_compute_api:os-volumes-attachments:swap")?;
            return Err(Error::bad_request(
                "Swapping a server's volume is not supported: detach it and attach the other one.",
            ));
        }
        require_member(caller, "os_compute_api:os-volumes-attachments:update")?;
        let dot = match a.get("delete_on_termination") {
            None => None,
            Some(Value::Bool(b)) if at_2_85 => Some(*b),
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute delete_on_termination.",
                ))
            }
        };
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {server_id} is locked")));
        }
        self.volume_service()?
            .update_server_attachment(server_id, volume_id, dot)
            .await?;
        Ok(())
    }

    /// `DELETE /servers/{id}/os-volume_attachments/{volume_id}`: the host unplugs it; the
    /// volume is available once the agent reports it gone.
    pub async fn detach_volume(
        &self,
        caller: &Caller,
        server_id: &str,
        volume_id: &str,
        request_id: &str,
    ) -> Result<()> {
        let row = self.visible_server(caller, server_id).await?;
        require_member(caller, "os_compute_api:os-volumes-attachments:delete")?;
        self.get_volume_attachment(caller, server_id, volume_id)
            .await?;
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {server_id} is locked")));
        }
        Self::check_attach_state(&row, "detach_volume")?;
        let volumes = self.volume_service()?;
        volumes.detach_for_server(server_id, volume_id).await?;
        self.bump_server_host(server_id).await?;
        self.volume_action(
            &row,
            "detach_volume",
            "compute_detach_volume",
            request_id,
            &caller.user_id,
            Some("Success"),
        )
        .await?;
        Ok(())
    }

    /// Nova's `os-assisted-volume-snapshots` (create and delete; admin or the `service` role):
    /// the server holding `volume_id` must be on a host with no task running, as in Nova. Nova's
    /// libvirt driver then layers a qcow2 file over a file-backed volume (NFS, GlusterFS) for
    /// Cinder; Nubo's Block Storage snapshots attached volumes in its own block store and never
    /// asks for this, so there is nothing more to do than Nova's checks. Returns the server id.
    pub async fn assisted_volume_snapshot(
        &self,
        caller: &Caller,
        volume_id: &str,
        verb: &str,
    ) -> Result<String> {
        if !caller.is_admin() && !caller.has_role("service") {
            return Err(super::policy(&format!(
                "os_compute_api:os-assisted-volume-snapshots:{verb}"
            )));
        }
        let volumes = self.volume_service()?;
        let no_bdm = || {
            Error::bad_request(format!(
                "No volume Block Device Mapping with id {volume_id}."
            ))
        };
        let server_id = volumes
            .attached_server(volume_id)
            .await?
            .ok_or_else(no_bdm)?;
        let row = {
            let mut conn = self.read().await?;
            store::servers::get(&mut conn, &server_id).await?
        }
        .ok_or_else(no_bdm)?;
        if row.host.is_none() || row.deleting {
            return Err(Error::conflict(format!(
                "Instance {server_id} is not ready"
            )));
        }
        if row.task_state.is_some() {
            return Err(Error::conflict(format!(
                "Cannot 'volume_snapshot_{verb}' instance {server_id} while it is in task_state {}",
                row.task_state.as_deref().unwrap_or_default()
            )));
        }
        tracing::info!(volume_id, server_id = %server_id, verb, "assisted volume snapshot");
        Ok(server_id)
    }

    /// Adds each server's attached volumes to its desired state.
    pub(crate) async fn add_desired_volumes(&self, servers: &mut [DesiredServer]) -> Result<()> {
        let Some(volumes) = self.volume.read().clone() else {
            return Ok(());
        };
        let ids: Vec<String> = servers.iter().map(|s| s.id.clone()).collect();
        let disks = volumes.server_disks(&ids).await?;
        for s in servers.iter_mut() {
            s.volumes = disks
                .iter()
                .filter(|d| d.server_id == s.id)
                .map(|d| DesiredVolume {
                    volume_id: d.volume_id.clone(),
                    disk: d.object.clone(),
                    read_only: d.read_only,
                    size_bytes: d.size_bytes,
                })
                .collect();
        }
        Ok(())
    }

    /// An agent's report: the disks each VM has move attachments along.
    pub(crate) async fn observe_volumes(&self, report: &ObservedHost) {
        let Some(volumes) = self.volume.read().clone() else {
            return;
        };
        for s in &report.servers {
            if let Err(e) = volumes.disks_observed(&s.id, &s.disks).await {
                tracing::warn!(server_id = %s.id, error = %e, "recording a server's disks failed");
            }
        }
    }

    /// The server is gone: its volumes are released (and deleted when so asked).
    pub(crate) async fn release_volumes(&self, server_id: &str) -> Result<()> {
        let Some(volumes) = self.volume.read().clone() else {
            return Ok(());
        };
        volumes.server_gone(server_id).await
    }

    /// Checks boot volume requests at create time.
    pub(crate) async fn check_boot_volumes(
        &self,
        caller: &Caller,
        requests: &[BootVolumeRequest],
        count: i64,
    ) -> Result<()> {
        if requests.is_empty() {
            return Ok(());
        }
        let volumes = self.volume_service()?;
        for r in requests {
            if r.source_type == "volume" && count > 1 {
                return Err(Error::bad_request(
                    "Unable to launch multiple instances with a single configured volume.",
                ));
            }
            volumes.check_boot_volume(caller, r).await?;
        }
        Ok(())
    }

    /// Makes and attaches a server's volumes (build step "block_device_mapping"); returns the
    /// root disk object when the server boots from a volume.
    pub(crate) async fn prepare_volumes(
        &self,
        row: &ServerRow,
        requests: &[BootVolumeRequest],
    ) -> Result<Option<String>> {
        if requests.is_empty() {
            return Ok(None);
        }
        let volumes = self.volume_service()?;
        let mut root = None;
        for r in requests {
            let (_, object) = volumes
                .boot_volume(&row.project_id, &row.user_id, &Self::server_ref(row), r)
                .await?;
            if r.boot_index == Some(0) {
                root = Some(object);
            }
        }
        Ok(root)
    }
}

#[async_trait::async_trait]
impl ComputeHooks for ComputeService {
    async fn server_volumes_changed(&self, server_id: &str) -> Result<()> {
        self.bump_server_host(server_id).await
    }

    async fn volume_extended(
        &self,
        server_id: &str,
        volume_id: &str,
        size_bytes: u64,
        request_id: &str,
        user_id: &str,
        resize: bool,
    ) -> Result<()> {
        let row = {
            let mut conn = self.read().await?;
            store::servers::get(&mut conn, server_id).await?
        };
        let Some(row) = row else { return Ok(()) };
        tracing::info!(
            server_id,
            volume_id,
            size_bytes,
            resize,
            "attached volume extended"
        );
        self.volume_action(
            &row,
            "extend_volume",
            "compute_extend_volume",
            request_id,
            user_id,
            None,
        )
        .await?;
        if resize {
            self.bump_server_host(server_id).await?;
        }
        Ok(())
    }

    async fn volume_extend_done(&self, server_id: &str, _volume_id: &str, success: bool) {
        let done = async {
            let mut tx = self.write().await?;
            store::actions::finish(
                &mut tx,
                server_id,
                if success { "Success" } else { "Error" },
                None,
                None,
                &now(),
            )
            .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = done {
            tracing::warn!(server_id, error = %e, "finishing the extend action failed");
        }
    }
}

/// Whether block device mappings make the server boot from a volume.
pub(crate) fn boots_from_volume(requests: &[BootVolumeRequest]) -> bool {
    requests.iter().any(|r| r.boot_index == Some(0))
}

/// One `block_device_mapping_v2` entry with destination `volume`.
pub(crate) fn parse_volume_bdm(bdm: &Value, boot_index: Option<i64>) -> Result<BootVolumeRequest> {
    let invalid = |why: &str| Error::bad_request(format!("Block Device Mapping is Invalid: {why}"));
    let source = bdm
        .get("source_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !["volume", "image", "snapshot", "blank"].contains(&source.as_str()) {
        return Err(invalid(&format!(
            "source type {source:?} with destination volume"
        )));
    }
    let uuid = match bdm.get("uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if uuid::Uuid::parse_str(u).is_ok() => Some(u.clone()),
        Some(_) => return Err(invalid("uuid is not a UUID")),
    };
    if source != "blank" && uuid.is_none() {
        return Err(invalid(&format!("a {source} mapping needs a uuid")));
    }
    let size = match bdm.get("volume_size") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => return Err(invalid("volume_size is not a number")),
    };
    if size.is_some_and(|s| s < 1) {
        return Err(invalid("volume_size must be at least 1"));
    }
    if (source == "image" || source == "blank") && size.is_none() {
        return Err(invalid(&format!(
            "Images with destination_type 'volume' need to have a non-zero size specified ({source})"
        )));
    }
    let delete_on_termination = match bdm.get("delete_on_termination") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        Some(_) => return Err(invalid("delete_on_termination is not a boolean")),
    };
    let text = |k: &str| bdm.get(k).and_then(Value::as_str).map(String::from);
    Ok(BootVolumeRequest {
        source_type: source,
        uuid,
        size,
        boot_index,
        delete_on_termination,
        device_name: text("device_name"),
        tag: text("tag"),
        volume_type: text("volume_type"),
    })
}
