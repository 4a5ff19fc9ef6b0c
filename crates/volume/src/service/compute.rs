//! What Compute asks of Block Storage in process, and what Block Storage tells Compute.
//!
//! Compute keeps no volume state of its own: the attachments it makes (`by_compute`) carry
//! Nova's block device mapping fields (device, tag, `delete_on_termination`, boot index).
//!
//! ```text
//!   Nova attach ──> attach_for_server: attachment attaching, volume attaching
//!   desired state of the server's host <── server_disks (attaching + attached, not the boot disk)
//!   agent hot-plugs, reports the VM's disks ──> disks_observed: attached, volume in-use
//!   Nova detach ──> detach_for_server: attachment detaching, volume detaching
//!   agent unplugs, reports ──> disks_observed: attachment gone, volume available
//!   server deleted (VM gone) ──> server_gone: attachments gone; delete_on_termination volumes deleted
//!   boot from volume ──> boot_volume: the volume (made from an image, a snapshot or blank when
//!                        asked) attached to the server as its root disk (boot index 0)
//! ```
//!
//! The other direction goes through [`ComputeHooks`], which Compute implements: an attached
//! volume grew (its agent grows it in the running VM), or a server's attachments changed through
//! Cinder's own API (force detach, reset): its host must converge again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use nubo_common::{Caller, Error, Result};
use serde_json::Value;

use super::actions::settle_status;
use super::volumes::CreateVolume;
use super::{invalid_volume, now, volume_not_found, Ctx, VolumeService, GIB};
use crate::store;
use crate::store::attachments::AttachmentRow;

/// What Block Storage tells Compute.
#[async_trait]
pub trait ComputeHooks: Send + Sync + 'static {
    /// The volumes attached to `server_id` changed outside Compute: converge its host again.
    async fn server_volumes_changed(&self, server_id: &str) -> Result<()>;

    /// A volume attached to `server_id` grew to `size_bytes`. `resize`: the VM runs, and its
    /// agent must grow the disk through QEMU (the block store cannot while QEMU holds it).
    async fn volume_extended(
        &self,
        server_id: &str,
        volume_id: &str,
        size_bytes: u64,
        request_id: &str,
        user_id: &str,
        resize: bool,
    ) -> Result<()>;

    /// The extend announced with [`ComputeHooks::volume_extended`] finished.
    async fn volume_extend_done(&self, server_id: &str, volume_id: &str, success: bool);
}

/// The server an attachment is for.
#[derive(Debug, Clone)]
pub struct ServerRef {
    pub id: String,
    pub project_id: String,
    /// The host the server runs on, when placed.
    pub host: Option<String>,
}

/// An attachment as Compute shows it (`os-volume_attachments`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttachedVolume {
    pub attachment_id: String,
    pub volume_id: String,
    pub server_id: String,
    pub device: Option<String>,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
    pub boot_index: Option<i64>,
    /// `attaching`, `attached`, `detaching` (`reserved` before the build attached it).
    pub state: String,
}

/// A disk the host of a server must give the VM.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDisk {
    pub server_id: String,
    pub volume_id: String,
    /// The block store object (ask the block store to describe it right before attaching).
    pub object: String,
    pub read_only: bool,
    pub size_bytes: u64,
}

/// A volume a server boots from (`block_device_mapping_v2` with destination `volume`).
#[derive(Debug, Clone, Default)]
pub struct BootVolumeRequest {
    /// `volume`, `image`, `snapshot` or `blank`.
    pub source_type: String,
    /// The volume, image or snapshot id (none for blank).
    pub uuid: Option<String>,
    /// GiB; needed for image and blank, defaults to the source's size otherwise.
    pub size: Option<i64>,
    pub boot_index: Option<i64>,
    pub delete_on_termination: bool,
    pub device_name: Option<String>,
    pub tag: Option<String>,
    pub volume_type: Option<String>,
}

fn attached_view(a: &AttachmentRow) -> AttachedVolume {
    AttachedVolume {
        attachment_id: a.id.clone(),
        volume_id: a.volume_id.clone(),
        server_id: a.instance_uuid.clone().unwrap_or_default(),
        device: a.mountpoint.clone(),
        tag: a.tag.clone(),
        delete_on_termination: a.delete_on_termination,
        boot_index: a.boot_index,
        state: a.attach_status.clone(),
    }
}

/// The next free `/dev/vdX` after `used` (the root disk is `/dev/vda`).
pub fn next_device(used: &[String]) -> String {
    for c in b'b'..=b'z' {
        let d = format!("/dev/vd{}", c as char);
        if !used.contains(&d) {
            return d;
        }
    }
    format!("/dev/vd{}", used.len())
}

impl VolumeService {
    /// Nova's attach: reserves `volume_id` for `server` (the caller must see the volume) and
    /// records the attachment `attaching` (or `attached` right away for a boot volume, whose
    /// disk is the VM's root disk).
    #[allow(clippy::too_many_arguments)]
    pub async fn attach_for_server(
        &self,
        caller: &Caller,
        volume_id: &str,
        server: &ServerRef,
        device: Option<&str>,
        tag: Option<&str>,
        delete_on_termination: bool,
        boot_index: Option<i64>,
    ) -> Result<AttachedVolume> {
        let ctx = Ctx::internal(caller);
        let v = self.visible_volume(&ctx, volume_id).await?;
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, &v.id)
            .await?
            .ok_or_else(|| volume_not_found(volume_id))?;
        let existing = store::attachments::of_volume(&mut tx, volume_id).await?;
        if existing
            .iter()
            .any(|a| a.instance_uuid.as_deref() == Some(server.id.as_str()))
        {
            return Err(Error::bad_request(format!(
                "Invalid volume: volume {volume_id} is already attached to server {}.",
                server.id
            )));
        }
        let ok = match v.status.as_str() {
            "available" => true,
            "in-use" | "attaching" | "reserved" => v.multiattach,
            _ => false,
        };
        if !ok {
            return Err(invalid_volume(format!(
                "volume {volume_id} status must be available to attach, but it is {}{}.",
                v.status,
                if v.status == "in-use" {
                    " (and it is not multiattach)"
                } else {
                    ""
                }
            )));
        }
        if v.availability_zone != self.settings.availability_zone {
            return Err(invalid_volume("the volume is in another availability zone"));
        }
        let others: Vec<String> = store::attachments::of_instance(&mut tx, &server.id)
            .await?
            .iter()
            .filter_map(|a| a.mountpoint.clone())
            .collect();
        let device = match device {
            Some(d) if !d.is_empty() => {
                if others.iter().any(|o| o == d) {
                    return Err(Error::bad_request(format!(
                        "The supplied device path ({d}) is in use."
                    )));
                }
                d.to_string()
            }
            _ if boot_index == Some(0) => "/dev/vda".to_string(),
            _ => {
                let mut used = others.clone();
                used.push("/dev/vda".into());
                next_device(&used)
            }
        };
        let boot = boot_index == Some(0);
        let now = now();
        let a = AttachmentRow {
            id: nubo_common::ids::new_uuid(),
            volume_id: volume_id.to_string(),
            instance_uuid: Some(server.id.clone()),
            attached_host: server.host.clone(),
            mountpoint: Some(device),
            attach_status: if boot { "attached" } else { "attaching" }.into(),
            attach_mode: if v.readonly { "ro" } else { "rw" }.into(),
            connector: None,
            by_compute: true,
            tag: tag.map(String::from),
            delete_on_termination,
            boot_index,
            attach_time: boot.then(|| now.clone()),
            created_at: now.clone(),
            updated_at: None,
        };
        store::attachments::insert(&mut tx, &a).await?;
        let mut all = existing;
        all.push(a.clone());
        settle_status(&mut v, &all);
        v.updated_at = Some(now);
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        tracing::info!(volume_id, server_id = %server.id, attachment_id = %a.id, "volume attaching");
        Ok(attached_view(&a))
    }

    /// Nova's detach: the attachment of `volume_id` to `server_id` goes `detaching`; the agent
    /// unplugs the disk and [`Self::disks_observed`] finishes. A boot volume cannot be detached.
    pub async fn detach_for_server(
        &self,
        server_id: &str,
        volume_id: &str,
    ) -> Result<AttachedVolume> {
        let mut tx = self.write().await?;
        let attachments = store::attachments::of_instance(&mut tx, server_id).await?;
        let Some(mut a) = attachments
            .into_iter()
            .find(|a| a.volume_id == volume_id && a.by_compute)
        else {
            return Err(Error::not_found(format!(
                "Volume {volume_id} is not attached to server {server_id}."
            )));
        };
        if a.boot_index == Some(0) {
            return Err(Error::bad_request("Can't detach root device volume"));
        }
        if a.attach_status == "detaching" {
            return Ok(attached_view(&a));
        }
        a.attach_status = "detaching".into();
        a.updated_at = Some(now());
        store::attachments::update(&mut tx, &a).await?;
        if let Some(mut v) = store::volumes::get(&mut tx, volume_id).await? {
            let others = store::attachments::of_volume(&mut tx, volume_id)
                .await?
                .into_iter()
                .filter(|x| x.id != a.id && x.attach_status == "attached")
                .count();
            if others == 0 {
                v.status = "detaching".into();
            }
            v.updated_at = Some(now());
            store::volumes::update(&mut tx, &v).await?;
        }
        tx.commit().await?;
        tracing::info!(volume_id, server_id, "volume detaching");
        Ok(attached_view(&a))
    }

    /// Nova 2.85: changes `delete_on_termination` of an attachment.
    pub async fn update_server_attachment(
        &self,
        server_id: &str,
        volume_id: &str,
        delete_on_termination: Option<bool>,
    ) -> Result<AttachedVolume> {
        let mut tx = self.write().await?;
        let mut a = store::attachments::of_instance(&mut tx, server_id)
            .await?
            .into_iter()
            .find(|a| a.volume_id == volume_id && a.by_compute)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Volume {volume_id} is not attached to server {server_id}."
                ))
            })?;
        if let Some(d) = delete_on_termination {
            a.delete_on_termination = d;
            a.updated_at = Some(now());
            store::attachments::update(&mut tx, &a).await?;
        }
        tx.commit().await?;
        Ok(attached_view(&a))
    }

    /// The attachments Compute made to a server, oldest first.
    pub async fn server_attachments(&self, server_id: &str) -> Result<Vec<AttachedVolume>> {
        let mut conn = self.read().await?;
        Ok(store::attachments::of_instance(&mut conn, server_id)
            .await?
            .iter()
            .filter(|a| a.by_compute)
            .map(attached_view)
            .collect())
    }

    /// Nova's `os-extended-volumes:volumes_attached` of `servers`: for each, its volumes
    /// (id, `delete_on_termination`) in attachment order, boot volume included.
    pub async fn volumes_attached(
        &self,
        servers: &[String],
    ) -> Result<HashMap<String, Vec<(String, bool)>>> {
        let mut out: HashMap<String, Vec<(String, bool)>> = HashMap::new();
        if servers.is_empty() {
            return Ok(out);
        }
        let wanted: HashSet<&str> = servers.iter().map(String::as_str).collect();
        let mut conn = self.read().await?;
        for a in store::attachments::by_compute(&mut conn).await? {
            let Some(server) = a.instance_uuid.as_deref() else {
                continue;
            };
            if wanted.contains(server) {
                out.entry(server.to_string())
                    .or_default()
                    .push((a.volume_id.clone(), a.delete_on_termination));
            }
        }
        Ok(out)
    }

    /// The server a volume is attached to by Compute, if any (Nova's BDM lookup by volume).
    pub async fn attached_server(&self, volume_id: &str) -> Result<Option<String>> {
        let mut conn = self.read().await?;
        Ok(store::attachments::of_volume(&mut conn, volume_id)
            .await?
            .into_iter()
            .filter(|a| a.by_compute)
            .find_map(|a| a.instance_uuid))
    }

    /// A server's boot volume (boot index 0): its id and the image it was made from.
    pub async fn boot_volume_of(
        &self,
        server_id: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        let mut conn = self.read().await?;
        let Some(a) = store::attachments::of_instance(&mut conn, server_id)
            .await?
            .into_iter()
            .find(|a| a.by_compute && a.boot_index == Some(0))
        else {
            return Ok(None);
        };
        let image = store::volumes::get(&mut conn, &a.volume_id)
            .await?
            .and_then(|v| v.image_metadata.get("image_id").cloned());
        Ok(Some((a.volume_id, image)))
    }

    /// Rebuild of a volume-backed server (Nova 2.93, Cinder's reimage): the boot volume's data
    /// becomes a fresh clone of `boot` (the volume keeps its id, size and attachment); returns
    /// the new block store object for the server's root disk. The old object goes at once, or
    /// once no snapshot needs it (a running QEMU keeps its open file until it is respawned).
    pub async fn reimage_boot_volume(
        self: &Arc<Self>,
        server_id: &str,
        boot: &nubo_image::service::compute::BootImage,
    ) -> Result<(String, String)> {
        let Some((id, _)) = self.boot_volume_of(server_id).await? else {
            return Err(invalid_volume(format!(
                "Server {server_id} has no boot volume."
            )));
        };
        let _guard = self.lock_volume(&id).await;
        let v = self
            .load_volume(&id)
            .await?
            .ok_or_else(|| volume_not_found(&id))?;
        let image_bytes = boot
            .image
            .virtual_size
            .or(boot.image.size)
            .unwrap_or(0)
            .max(0) as u64;
        if image_bytes > v.size as u64 * GIB || boot.image.min_disk > v.size {
            return Err(Error::bad_request(format!(
                "Invalid input received: image {} is larger than volume {id}.",
                boot.image.id
            )));
        }
        let new_object = format!("volume-{id}-{}", &nubo_common::ids::new_hex_id()[..8]);
        self.store
            .create_clone(&boot.source(), &new_object, Some(v.size as u64 * GIB))
            .await
            .map_err(|e| Error::internal(format!("reimage of volume {id}: {e}")))?;
        if let Err(e) = self.replace_data(&id, &new_object).await {
            let _ = self.store.delete(&new_object).await;
            return Err(e);
        }
        let image_id = boot.image.id.to_string();
        let image_name = boot.image.name.clone();
        self.modify_volume(&id, |v| {
            v.bootable = true;
            v.image_metadata.clear();
            v.image_metadata.insert("image_id".into(), image_id);
            if let Some(n) = image_name {
                v.image_metadata.insert("image_name".into(), n);
            }
            Ok(())
        })
        .await?;
        tracing::info!(volume_id = %id, server_id, "boot volume reimaged");
        Ok((id, new_object))
    }

    /// The volumes the hosts of `servers` must give their VMs besides the root disk: every
    /// attachment Compute made that is attaching or attached.
    pub async fn server_disks(&self, servers: &[String]) -> Result<Vec<ServerDisk>> {
        if servers.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.read().await?;
        let mut out = Vec::new();
        for a in store::attachments::by_compute(&mut conn).await? {
            let Some(server) = &a.instance_uuid else {
                continue;
            };
            if !servers.contains(server)
                || a.boot_index == Some(0)
                || !["attaching", "attached"].contains(&a.attach_status.as_str())
            {
                continue;
            }
            let Some(v) = store::volumes::get(&mut conn, &a.volume_id).await? else {
                continue;
            };
            let Some(object) = v.store_name.clone() else {
                continue;
            };
            out.push(ServerDisk {
                server_id: server.clone(),
                volume_id: v.id.clone(),
                object,
                read_only: a.attach_mode == "ro",
                size_bytes: v.size as u64 * GIB,
            });
        }
        Ok(out)
    }

    /// The agent of a server's host reported the disks its VM has (`present`: disk ids, i.e.
    /// volume ids): attachments being made become `attached`, attachments being removed go.
    /// Returns whether anything changed.
    pub async fn disks_observed(&self, server_id: &str, present: &[String]) -> Result<bool> {
        let pending: Vec<AttachmentRow> = {
            let mut conn = self.read().await?;
            store::attachments::of_instance(&mut conn, server_id)
                .await?
                .into_iter()
                .filter(|a| {
                    a.by_compute
                        && a.boot_index != Some(0)
                        && ((a.attach_status == "attaching" && present.contains(&a.volume_id))
                            || (a.attach_status == "detaching" && !present.contains(&a.volume_id)))
                })
                .collect()
        };
        if pending.is_empty() {
            return Ok(false);
        }
        let mut tx = self.write().await?;
        for a in pending {
            let Some(mut a) = store::attachments::get(&mut tx, &a.id).await? else {
                continue;
            };
            if a.attach_status == "attaching" && present.contains(&a.volume_id) {
                a.attach_status = "attached".into();
                a.attach_time = Some(now());
                a.updated_at = Some(now());
                store::attachments::update(&mut tx, &a).await?;
                tracing::info!(volume_id = %a.volume_id, server_id, "volume attached");
            } else if a.attach_status == "detaching" && !present.contains(&a.volume_id) {
                store::attachments::delete(&mut tx, &a.id).await?;
                tracing::info!(volume_id = %a.volume_id, server_id, "volume detached");
            } else {
                continue;
            }
            let left = store::attachments::of_volume(&mut tx, &a.volume_id).await?;
            if let Some(mut v) = store::volumes::get(&mut tx, &a.volume_id).await? {
                settle_status(&mut v, &left);
                v.updated_at = Some(now());
                store::volumes::update(&mut tx, &v).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A server is gone (its VM destroyed): every attachment to it goes, the volumes become
    /// available again, and those attached with `delete_on_termination` are deleted.
    pub async fn server_gone(self: &Arc<Self>, server_id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let attachments = store::attachments::of_instance(&mut tx, server_id).await?;
        let mut to_delete = Vec::new();
        for a in &attachments {
            store::attachments::delete(&mut tx, &a.id).await?;
            let left = store::attachments::of_volume(&mut tx, &a.volume_id).await?;
            if let Some(mut v) = store::volumes::get(&mut tx, &a.volume_id).await? {
                settle_status(&mut v, &left);
                v.updated_at = Some(now());
                store::volumes::update(&mut tx, &v).await?;
                if a.by_compute && a.delete_on_termination && left.is_empty() {
                    to_delete.push((v.id.clone(), v.project_id.clone()));
                }
            }
        }
        tx.commit().await?;
        for (vid, project) in to_delete {
            let caller = service_caller(&project);
            let ctx = Ctx::internal(&caller);
            match self.delete_volume(&ctx, &vid, true, false).await {
                Ok(()) => {
                    tracing::info!(volume_id = %vid, server_id, "volume deleted with its server")
                }
                Err(e) => {
                    tracing::warn!(volume_id = %vid, server_id, error = %e, "deleting a volume with its server failed")
                }
            }
        }
        Ok(())
    }

    /// Checks a boot volume request at server create time (before anything is made):
    /// the source exists and is usable by `caller`.
    pub async fn check_boot_volume(&self, caller: &Caller, req: &BootVolumeRequest) -> Result<()> {
        let ctx = Ctx::internal(caller);
        match req.source_type.as_str() {
            "volume" => {
                let id = req.uuid.as_deref().unwrap_or_default();
                let v = self.visible_volume(&ctx, id).await.map_err(|e| {
                    if e.is_not_found() {
                        Error::bad_request(format!(
                            "Block Device Mapping is Invalid: failed to get volume {id}."
                        ))
                    } else {
                        e
                    }
                })?;
                let ok = v.status == "available" || (v.multiattach && v.status == "in-use");
                if !ok {
                    return Err(Error::bad_request(format!(
                        "Invalid volume: volume {id} status must be available, but it is {}.",
                        v.status
                    )));
                }
                // Nova's InvalidBDMVolumeNotBootable: a root volume must be bootable.
                if req.boot_index == Some(0) && !v.bootable {
                    return Err(Error::bad_request(format!(
                        "Block Device {id} is not bootable."
                    )));
                }
                Ok(())
            }
            "snapshot" => {
                let id = req.uuid.as_deref().unwrap_or_default();
                self.visible_snapshot(&ctx, id).await.map_err(|e| {
                    if e.is_not_found() {
                        Error::bad_request(format!(
                            "Block Device Mapping is Invalid: failed to get snapshot {id}."
                        ))
                    } else {
                        e
                    }
                })?;
                Ok(())
            }
            "image" | "blank" => {
                if req.size.is_none_or(|s| s < 1) && req.source_type == "blank" {
                    return Err(Error::bad_request(
                        "Block Device Mapping is Invalid: a blank volume needs a volume_size.",
                    ));
                }
                Ok(())
            }
            other => Err(Error::bad_request(format!(
                "Block Device Mapping is Invalid: source type {other} is not supported."
            ))),
        }
    }

    /// Makes (when asked) and attaches the volume `req` names to `server`, waiting until a new
    /// volume is available; idempotent (a retried build finds its attachment). Returns the
    /// volume id and its block store object.
    pub async fn boot_volume(
        self: &Arc<Self>,
        project_id: &str,
        user_id: &str,
        server: &ServerRef,
        req: &BootVolumeRequest,
    ) -> Result<(String, String)> {
        let caller = service_caller_for(project_id, user_id);
        let ctx = Ctx::internal(&caller);
        // Already attached by an earlier attempt?
        let existing = {
            let mut conn = self.read().await?;
            store::attachments::of_instance(&mut conn, &server.id).await?
        };
        let boot_index = req.boot_index;
        if let Some(a) = existing
            .iter()
            .find(|a| a.by_compute && a.boot_index == boot_index && boot_index.is_some())
        {
            let v = self
                .load_volume(&a.volume_id)
                .await?
                .ok_or_else(|| volume_not_found(&a.volume_id))?;
            let object = v
                .store_name
                .clone()
                .ok_or_else(|| invalid_volume("no data"))?;
            return Ok((v.id, object));
        }
        let volume_id = match req.source_type.as_str() {
            "volume" => req.uuid.clone().unwrap_or_default(),
            source => {
                let create = CreateVolume {
                    size: req.size,
                    name: None,
                    description: None,
                    volume_type: req.volume_type.clone(),
                    availability_zone: None,
                    snapshot_id: (source == "snapshot").then(|| req.uuid.clone()).flatten(),
                    source_volid: None,
                    image_ref: (source == "image").then(|| req.uuid.clone()).flatten(),
                    metadata: Default::default(),
                    group_id: None,
                    backup_id: None,
                };
                let v = self.create_volume(&ctx, create).await?;
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
                loop {
                    let now_v = self
                        .load_volume(&v.id)
                        .await?
                        .ok_or_else(|| volume_not_found(&v.id))?;
                    match now_v.status.as_str() {
                        "available" => break,
                        "creating" if tokio::time::Instant::now() < deadline => {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await
                        }
                        other => {
                            let _ = self.delete_volume(&ctx, &v.id, true, false).await;
                            return Err(Error::internal(format!(
                                "boot volume {} ended {other}",
                                v.id
                            )));
                        }
                    }
                }
                v.id
            }
        };
        let attached = self
            .attach_for_server(
                &caller,
                &volume_id,
                server,
                req.device_name.as_deref(),
                req.tag.as_deref(),
                req.delete_on_termination,
                boot_index,
            )
            .await;
        if let Err(e) = attached {
            if req.source_type != "volume" {
                let _ = self.delete_volume(&ctx, &volume_id, true, false).await;
            }
            return Err(e);
        }
        let v = self
            .load_volume(&volume_id)
            .await?
            .ok_or_else(|| volume_not_found(&volume_id))?;
        let object = v
            .store_name
            .clone()
            .ok_or_else(|| invalid_volume("no data"))?;
        Ok((volume_id, object))
    }

    /// Views for Nova's deprecated volume proxy (`/os-volumes`, up to 2.35).
    pub async fn proxy_volume(&self, caller: &Caller, id: &str) -> Result<Value> {
        let ctx = Ctx::internal(caller);
        let v = self.visible_volume(&ctx, id).await?;
        self.nova_volume_view(&v).await
    }

    pub(crate) async fn nova_volume_view(&self, v: &store::volumes::VolumeRow) -> Result<Value> {
        let (attachments, vtype) = {
            let mut conn = self.read().await?;
            let a = store::attachments::of_volume(&mut conn, &v.id).await?;
            let t = match &v.type_id {
                Some(t) => store::types::get(&mut conn, t).await?,
                None => None,
            };
            (a, t)
        };
        let attachments: Vec<Value> = attachments
            .iter()
            .filter(|a| a.attach_status == "attached")
            .map(|a| {
                serde_json::json!({
                    "id": a.volume_id,
                    "volumeId": a.volume_id,
                    "serverId": a.instance_uuid,
                    "device": a.mountpoint,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "id": v.id,
            "status": v.status,
            "size": v.size,
            "availabilityZone": v.availability_zone,
            "createdAt": super::views::wire_time(&v.created_at),
            "attachments": if attachments.is_empty() { serde_json::json!([{}]) } else { serde_json::json!(attachments) },
            "displayName": v.name,
            "displayDescription": v.description,
            "volumeType": vtype.map(|t| t.name),
            "snapshotId": v.snapshot_id,
            "metadata": v.metadata,
        }))
    }

    /// Nova's proxy list: the caller's volumes with `offset`/`limit`.
    pub async fn proxy_volumes(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<Value>> {
        let ctx = Ctx::internal(caller);
        let p = super::query::ListParams {
            limit,
            offset,
            ..Default::default()
        };
        let (rows, _, _) = self.list_volumes(&ctx, p).await?;
        let mut out = Vec::new();
        for v in &rows {
            out.push(self.nova_volume_view(v).await?);
        }
        Ok(out)
    }

    /// Nova's proxy create (`POST /os-volumes`).
    pub async fn proxy_create_volume(
        self: &Arc<Self>,
        caller: &Caller,
        body: &Value,
    ) -> Result<Value> {
        let ctx = Ctx::internal(caller);
        let v = body
            .get("volume")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute volume."))?;
        let size = match v.get("size") {
            Some(s) => super::input::size("size", s)
                .map_err(|_| Error::bad_request("Invalid input for field/attribute size."))?,
            None => {
                return Err(Error::bad_request(
                    "Invalid input for field/attribute size.",
                ))
            }
        };
        let req = CreateVolume {
            size: Some(size),
            name: super::input::opt_name("display_name", v.get("display_name"))?,
            description: super::input::opt_string(
                "display_description",
                v.get("display_description"),
                255,
            )?,
            volume_type: super::input::opt_string("volume_type", v.get("volume_type"), 255)?,
            availability_zone: super::input::opt_string(
                "availability_zone",
                v.get("availability_zone"),
                255,
            )?,
            snapshot_id: super::input::opt_string("snapshot_id", v.get("snapshot_id"), 255)?,
            metadata: super::input::metadata("metadata", v.get("metadata"), true)?,
            ..CreateVolume::default()
        };
        let row = self.create_volume(&ctx, req).await?;
        self.nova_volume_view(&row).await
    }

    /// Nova's proxy delete.
    pub async fn proxy_delete_volume(self: &Arc<Self>, caller: &Caller, id: &str) -> Result<()> {
        let ctx = Ctx::internal(caller);
        self.delete_volume(&ctx, id, false, false).await
    }

    /// Nova's snapshot proxy views (`/os-snapshots`, up to 2.35).
    pub fn nova_snapshot_view(s: &store::snapshots::SnapshotRow) -> Value {
        serde_json::json!({
            "id": s.id,
            "volumeId": s.volume_id,
            "status": s.status,
            "size": s.size,
            "createdAt": super::views::wire_time(&s.created_at),
            "displayName": s.name,
            "displayDescription": s.description,
        })
    }

    pub async fn proxy_snapshots(&self, caller: &Caller) -> Result<Vec<Value>> {
        let ctx = Ctx::internal(caller);
        let (rows, _, _) = self
            .list_snapshots(&ctx, super::query::ListParams::default())
            .await?;
        Ok(rows.iter().map(Self::nova_snapshot_view).collect())
    }

    pub async fn proxy_snapshot(&self, caller: &Caller, id: &str) -> Result<Value> {
        let ctx = Ctx::internal(caller);
        Ok(Self::nova_snapshot_view(
            &self.visible_snapshot(&ctx, id).await?,
        ))
    }

    pub async fn proxy_create_snapshot(
        self: &Arc<Self>,
        caller: &Caller,
        body: &Value,
    ) -> Result<Value> {
        let ctx = Ctx::internal(caller);
        let s = body
            .get("snapshot")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute snapshot."))?;
        let volume_id = s
            .get("volume_id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute volume_id."))?;
        let force = super::input::opt_boolean("force", s.get("force"))?;
        let name = super::input::opt_name("display_name", s.get("display_name"))?;
        let description =
            super::input::opt_string("display_description", s.get("display_description"), 255)?;
        self.visible_volume(&ctx, volume_id).await?;
        let row = self
            .snapshot_volume(
                &ctx,
                volume_id,
                name,
                description,
                Default::default(),
                force,
                None,
            )
            .await?;
        Ok(Self::nova_snapshot_view(&row))
    }

    pub async fn proxy_delete_snapshot(self: &Arc<Self>, caller: &Caller, id: &str) -> Result<()> {
        let ctx = Ctx::internal(caller);
        self.delete_snapshot(&ctx, id, false).await
    }
}

/// A caller standing for the service itself in a project (work Compute asks for after its own
/// authorization, e.g. a server's boot volume or its delete_on_termination volumes).
fn service_caller(project: &str) -> Caller {
    service_caller_for(project, "nubo-compute")
}

fn service_caller_for(project: &str, user: &str) -> Caller {
    Caller {
        user_id: user.to_string(),
        user_name: user.to_string(),
        user_domain_id: "default".into(),
        user_domain_name: "Default".into(),
        scope: nubo_common::Scope::Project {
            id: project.to_string(),
            name: project.to_string(),
            domain_id: "default".into(),
            domain_name: "Default".into(),
        },
        roles: vec!["member".into(), "reader".into()],
        audit_id: String::new(),
        application_credential_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        assert_eq!(next_device(&["/dev/vda".into()]), "/dev/vdb");
        assert_eq!(
            next_device(&["/dev/vda".into(), "/dev/vdb".into(), "/dev/vdd".into()]),
            "/dev/vdc"
        );
    }
}
