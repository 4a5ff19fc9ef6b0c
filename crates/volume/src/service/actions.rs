//! `POST /volumes/{id}/action`: extend (offline by the block store, online through Compute's
//! agent and QMP `block_resize`), admin status reset and force delete/detach, readonly and
//! bootable flags, image metadata, upload to an image, the legacy attach verbs
//! (`os-reserve`, `os-attach`, `os-begin_detaching`, `os-detach`, ...), retype, revert to a
//! snapshot (3.40), reimage (3.68) and extend completion (3.71).

use std::collections::BTreeMap;
use std::sync::Arc;

use nubo_blockstore::Source;
use nubo_common::{Error, Result};
use nubo_image::ImageId;
use serde_json::{json, Value};

use super::copy::ExportFormat;
use super::input;
use super::{
    invalid_volume, now, require_admin, require_member, store_error, volume_not_found, Ctx, Step,
    VolumeService, GIB,
};
use crate::store;
use crate::store::attachments::AttachmentRow;
use crate::store::volumes::VolumeRow;

/// Every volume status (for `os-reset_status`).
pub const STATUSES: &[&str] = &[
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "error_managing",
    "managing",
    "attaching",
    "in-use",
    "detaching",
    "maintenance",
    "restoring-backup",
    "error_restoring",
    "reserved",
    "awaiting-transfer",
    "backing-up",
    "error_backing-up",
    "error_extending",
    "downloading",
    "uploading",
    "retyping",
    "extending",
    "reverting",
];

/// What an action answers.
pub enum ActionResult {
    /// 202 without a body.
    Accepted,
    /// 200 without a body.
    Ok,
    /// 200 with a body.
    Body(Value),
}

fn new_size(args: &Value) -> Result<i64> {
    let v = args
        .get("new_size")
        .ok_or_else(|| input::invalid("new_size", "A new size is required."))?;
    input::size("new_size", v)
}

impl VolumeService {
    /// Dispatches one action.
    pub async fn volume_action(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<ActionResult> {
        let Some((action, args)) = body.as_object().and_then(|o| o.iter().next()) else {
            return Err(Error::bad_request("There is no such action."));
        };
        let args = args.clone();
        match action.as_str() {
            "os-extend" => {
                let size = new_size(&args)?;
                self.extend_volume(ctx, id, size).await?;
                Ok(ActionResult::Accepted)
            }
            "os-reset_status" => {
                self.reset_volume_status(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-force_delete" => {
                self.delete_volume(ctx, id, false, true).await?;
                Ok(ActionResult::Accepted)
            }
            "os-force_detach" => {
                self.force_detach(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-update_readonly_flag" => {
                let v = self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_actions:update_readonly_flag")?;
                let readonly =
                    input::boolean("readonly", args.get("readonly").unwrap_or(&Value::Null))?;
                if !["available", "in-use"].contains(&v.status.as_str()) {
                    return Err(invalid_volume(format!(
                        "Volume {id} status must be available or in-use to update its readonly flag."
                    )));
                }
                self.modify_volume(id, |v| {
                    v.readonly = readonly;
                    v.metadata.insert(
                        "readonly".into(),
                        if readonly { "True" } else { "False" }.into(),
                    );
                    Ok(())
                })
                .await?;
                Ok(ActionResult::Accepted)
            }
            "os-set_bootable" => {
                self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_actions:set_bootable")?;
                let bootable =
                    input::boolean("bootable", args.get("bootable").unwrap_or(&Value::Null))?;
                self.modify_volume(id, |v| {
                    v.bootable = bootable;
                    Ok(())
                })
                .await?;
                Ok(ActionResult::Ok)
            }
            "os-set_image_metadata" => {
                self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_image_metadata:set")?;
                let meta = input::metadata("metadata", args.get("metadata"), false)?;
                let row = self
                    .modify_volume(id, |v| {
                        v.image_metadata.extend(meta);
                        Ok(())
                    })
                    .await?
                    .ok_or_else(|| volume_not_found(id))?;
                Ok(ActionResult::Body(json!({"metadata": row.image_metadata})))
            }
            "os-unset_image_metadata" => {
                let v = self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_image_metadata:remove")?;
                let key = args
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| input::invalid("key", "A key is required."))?
                    .to_string();
                if !v.image_metadata.contains_key(&key) {
                    return Err(Error::not_found(format!(
                        "Glance metadata for volume {id} with key {key} cannot be found."
                    )));
                }
                self.modify_volume(id, |v| {
                    v.image_metadata.remove(&key);
                    Ok(())
                })
                .await?;
                Ok(ActionResult::Ok)
            }
            "os-show_image_metadata" => {
                let v = self.visible_volume(ctx, id).await?;
                Ok(ActionResult::Body(json!({"metadata": v.image_metadata})))
            }
            "os-volume_upload_image" => {
                let body = self.upload_to_image(ctx, id, &args).await?;
                Ok(ActionResult::Body(body))
            }
            "os-reserve" => {
                self.legacy_transition(ctx, id, &["available"], "attaching", "reserve")
                    .await?;
                Ok(ActionResult::Accepted)
            }
            "os-unreserve" => {
                let v = self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_actions:unreserve")?;
                if v.status == "attaching" || v.status == "reserved" {
                    let attached = {
                        let mut conn = self.read().await?;
                        store::attachments::of_volume(&mut conn, id)
                            .await?
                            .iter()
                            .any(|a| a.attach_status == "attached")
                    };
                    let to = if attached { "in-use" } else { "available" };
                    self.modify_volume(id, |v| {
                        v.status = to.into();
                        Ok(())
                    })
                    .await?;
                }
                Ok(ActionResult::Accepted)
            }
            "os-begin_detaching" => {
                self.legacy_transition(ctx, id, &["in-use"], "detaching", "begin_detaching")
                    .await?;
                Ok(ActionResult::Accepted)
            }
            "os-roll_detaching" => {
                let v = self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_actions:roll_detaching")?;
                if v.status == "detaching" {
                    self.modify_volume(id, |v| {
                        v.status = "in-use".into();
                        Ok(())
                    })
                    .await?;
                }
                Ok(ActionResult::Accepted)
            }
            "os-attach" => {
                self.legacy_attach(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-detach" => {
                self.legacy_detach(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-initialize_connection" => {
                let v = self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_actions:initialize_connection")?;
                if args.get("connector").is_none() {
                    return Err(input::invalid("connector", "A connector is required."));
                }
                let a = AttachmentRow {
                    id: String::new(),
                    volume_id: v.id.clone(),
                    instance_uuid: None,
                    attached_host: None,
                    mountpoint: None,
                    attach_status: "attaching".into(),
                    attach_mode: if v.readonly { "ro" } else { "rw" }.into(),
                    connector: Some(args["connector"].to_string()),
                    by_compute: false,
                    tag: None,
                    delete_on_termination: false,
                    boot_index: None,
                    attach_time: None,
                    created_at: now(),
                    updated_at: None,
                };
                Ok(ActionResult::Body(json!({
                    "connection_info": super::views::connection_info(&a, Some(&v)),
                })))
            }
            "os-terminate_connection" => {
                self.visible_volume(ctx, id).await?;
                require_member(ctx, "volume_extension:volume_actions:terminate_connection")?;
                Ok(ActionResult::Accepted)
            }
            "os-retype" => {
                self.retype(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-migrate_volume" | "os-migrate_volume_completion" => {
                self.visible_volume(ctx, id).await?;
                require_admin(ctx, "volume_extension:volume_admin_actions:migrate_volume")?;
                Err(Error::bad_request(
                    "Invalid volume: this cloud has one storage backend: there is no other host to migrate to.",
                ))
            }
            "os-unmanage" => {
                self.visible_volume(ctx, id).await?;
                require_admin(ctx, "volume_extension:volume_unmanage")?;
                Err(Error::bad_request(
                    "Invalid volume: unmanaging is not supported: the data lives in Nubo's own block store.",
                ))
            }
            "revert" if ctx.mv.at_least(40) => {
                self.revert(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-reimage" if ctx.mv.at_least(68) => {
                self.reimage(ctx, id, &args).await?;
                Ok(ActionResult::Accepted)
            }
            "os-extend_volume_completion" if ctx.mv.at_least(71) => {
                let v = self.visible_volume(ctx, id).await?;
                require_admin(
                    ctx,
                    "volume_extension:volume_admin_actions:extend_volume_completion",
                )?;
                if v.status != "extending" {
                    return Err(invalid_volume(format!(
                        "Volume {id} is not being extended (status {}).",
                        v.status
                    )));
                }
                let error = input::opt_boolean("error", args.get("error"))?.unwrap_or(false);
                if error {
                    self.modify_volume(id, |v| {
                        v.status = "error_extending".into();
                        Ok(())
                    })
                    .await?;
                }
                Ok(ActionResult::Accepted)
            }
            other => Err(Error::bad_request(format!(
                "There is no such action: {other}"
            ))),
        }
    }

    /// A status change of the legacy attach verbs.
    async fn legacy_transition(
        &self,
        ctx: &Ctx,
        id: &str,
        from: &[&str],
        to: &str,
        verb: &str,
    ) -> Result<()> {
        self.visible_volume(ctx, id).await?;
        require_member(ctx, &format!("volume_extension:volume_actions:{verb}"))?;
        let to = to.to_string();
        self.modify_volume(id, |v| {
            if !from.contains(&v.status.as_str()) {
                return Err(invalid_volume(format!(
                    "Volume {id} status must be {}, but current status is: {}.",
                    from.join(" or "),
                    v.status
                )));
            }
            v.status = to;
            Ok(())
        })
        .await?;
        Ok(())
    }

    // ----- extend -----

    /// `os-extend`: grows a volume. Offline (available, or attached to a VM that is not
    /// running) the block store resizes it; a running VM's volume is grown by its agent (QMP
    /// `block_resize`) and the volume stays `extending` until the block store sees the size.
    pub async fn extend_volume(self: &Arc<Self>, ctx: &Ctx, id: &str, size: i64) -> Result<()> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume:extend")?;
        let online = match v.status.as_str() {
            "available" => false,
            "in-use" if ctx.mv.at_least(42) => true,
            other => {
                return Err(invalid_volume(format!(
                    "Volume {id} status must be '{}' to extend, currently {other}.",
                    if ctx.mv.at_least(42) {
                        "available' or 'in-use"
                    } else {
                        "available"
                    }
                )))
            }
        };
        if size <= v.size {
            return Err(Error::bad_request(format!(
                "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {size}).",
                v.size
            )));
        }
        let mut tx = self.write().await?;
        let Some(mut v) = store::volumes::get(&mut tx, id).await? else {
            return Err(volume_not_found(id));
        };
        if v.status != "available" && v.status != "in-use" {
            return Err(invalid_volume(format!("Volume {id} is {}.", v.status)));
        }
        let vtype = match &v.type_id {
            Some(t) => store::types::get(&mut tx, t).await?,
            None => None,
        };
        if let Some(t) = &vtype {
            self.check_volume_quota(&mut tx, &v.project_id, t, 0, size - v.size)
                .await?;
        }
        v.previous_status = Some(v.status.clone());
        v.status = "extending".into();
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        let this = self.clone();
        let id = id.to_string();
        let request_id = ctx.request_id.clone();
        let user = ctx.caller.user_id.clone();
        self.spawn(async move {
            this.finish_extend(&id, size, online, &request_id, &user)
                .await;
        });
        Ok(())
    }

    async fn finish_extend(&self, id: &str, size: i64, online: bool, request_id: &str, user: &str) {
        let bytes = size as u64 * GIB;
        let outcome = async {
            let _guard = self.lock_volume(id).await;
            self.injected(Step::Extend)?;
            let v = self
                .load_volume(id)
                .await?
                .ok_or_else(|| volume_not_found(id))?;
            let object = v
                .store_name
                .clone()
                .ok_or_else(|| invalid_volume("the volume has no data"))?;
            match self.store.resize(&object, bytes).await {
                Ok(_) => {
                    if online {
                        // The VM is not running (else QEMU would hold the file): it sees the
                        // size at its next start. Tell Compute anyway (instance action).
                        self.tell_compute_extended(id, size, request_id, user, false)
                            .await;
                    }
                    Ok(())
                }
                Err(nubo_blockstore::Error::InUse { .. }) if online => {
                    // A running VM holds it: its agent grows it through QEMU.
                    self.modify_volume(id, |v| {
                        v.size = size;
                        Ok(())
                    })
                    .await?;
                    self.tell_compute_extended(id, size, request_id, user, true)
                        .await;
                    let deadline = tokio::time::Instant::now() + self.settings.extend_timeout;
                    loop {
                        match self.store.info(&object).await {
                            Ok(info) if info.virtual_size >= bytes => break Ok(()),
                            Ok(_) => {}
                            Err(e) => break Err(store_error("volume info", e)),
                        }
                        if tokio::time::Instant::now() >= deadline {
                            break Err(Error::internal(
                                "the agent did not grow the attached volume in time",
                            ));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
                Err(e) => Err(store_error("resize", e)),
            }
        }
        .await;
        match outcome {
            Ok(()) => {
                let _ = self
                    .modify_volume(id, |v| {
                        v.size = size;
                        v.status = v
                            .previous_status
                            .take()
                            .unwrap_or_else(|| "available".into());
                        Ok(())
                    })
                    .await;
                self.finish_compute_extend(id, true).await;
                tracing::info!(volume_id = %id, size, online, "volume extended");
            }
            Err(e) => {
                tracing::warn!(volume_id = %id, error = %e, internal = ?e.internal, "extend failed");
                // The message first: whoever sees `error_extending` can already read why.
                if let Ok(Some(v)) = self.load_volume(id).await {
                    self.record_message(
                        &v.project_id,
                        request_id,
                        "VOLUME",
                        id,
                        "VOLUME_VOLUME_003_005",
                        "extend volume: Could not extend the volume.",
                    )
                    .await;
                }
                let _ = self
                    .modify_volume(id, |v| {
                        v.status = "error_extending".into();
                        Ok(())
                    })
                    .await;
                self.finish_compute_extend(id, false).await;
            }
        }
    }

    /// Tells Compute an attached volume grew (the servers it is attached to by Compute).
    async fn tell_compute_extended(
        &self,
        id: &str,
        size: i64,
        request_id: &str,
        user: &str,
        resize: bool,
    ) {
        let Some(hooks) = self.compute_hooks() else {
            return;
        };
        let attachments = {
            let Ok(mut conn) = self.read().await else {
                return;
            };
            store::attachments::of_volume(&mut conn, id)
                .await
                .unwrap_or_default()
        };
        for a in attachments.iter().filter(|a| a.by_compute) {
            if let Some(server) = &a.instance_uuid {
                if let Err(e) = hooks
                    .volume_extended(server, id, size as u64 * GIB, request_id, user, resize)
                    .await
                {
                    tracing::warn!(volume_id = %id, server_id = %server, error = %e, "telling Compute about an extend failed");
                }
            }
        }
    }

    async fn finish_compute_extend(&self, id: &str, success: bool) {
        let Some(hooks) = self.compute_hooks() else {
            return;
        };
        let attachments = {
            let Ok(mut conn) = self.read().await else {
                return;
            };
            store::attachments::of_volume(&mut conn, id)
                .await
                .unwrap_or_default()
        };
        for a in attachments.iter().filter(|a| a.by_compute) {
            if let Some(server) = &a.instance_uuid {
                hooks.volume_extend_done(server, id, success).await;
            }
        }
    }

    // ----- admin -----

    async fn reset_volume_status(&self, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        self.visible_volume(ctx, id).await?;
        require_admin(ctx, "volume_extension:volume_admin_actions:reset_status")?;
        let status = match args.get("status") {
            None => None,
            Some(Value::String(s)) if STATUSES.contains(&s.to_lowercase().as_str()) => {
                Some(s.to_lowercase())
            }
            Some(_) => return Err(input::invalid("status", "Not a volume status.")),
        };
        let attach_status = match args.get("attach_status") {
            None => None,
            Some(Value::String(s)) if ["attached", "detached"].contains(&s.as_str()) => {
                Some(s.clone())
            }
            Some(_) => {
                return Err(input::invalid(
                    "attach_status",
                    "It must be attached or detached.",
                ))
            }
        };
        let migration_status = match args.get("migration_status") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => return Err(input::invalid("migration_status", "It must be a string.")),
        };
        if status.is_none() && attach_status.is_none() && migration_status.is_none() {
            return Err(Error::bad_request(
                "Must specify 'status', 'attach_status' or 'migration_status' for update.",
            ));
        }
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, id)
            .await?
            .ok_or_else(|| volume_not_found(id))?;
        let mut servers = Vec::new();
        if let Some(s) = status {
            v.status = s;
        }
        if let Some(a) = attach_status {
            if a == "detached" {
                for att in store::attachments::of_volume(&mut tx, id).await? {
                    if att.by_compute {
                        servers.extend(att.instance_uuid.clone());
                    }
                    store::attachments::delete(&mut tx, &att.id).await?;
                }
            }
            v.attach_status = a;
        }
        if let Some(m) = migration_status {
            v.migration_status = m;
        }
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        self.notify_servers(&servers).await;
        Ok(())
    }

    async fn force_detach(&self, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        self.visible_volume(ctx, id).await?;
        require_admin(ctx, "volume_extension:volume_admin_actions:force_detach")?;
        let attachment_id = args.get("attachment_id").and_then(Value::as_str);
        let mut tx = self.write().await?;
        let attachments = store::attachments::of_volume(&mut tx, id).await?;
        let chosen: Vec<&AttachmentRow> = match attachment_id {
            Some(a) => {
                let found: Vec<_> = attachments.iter().filter(|x| x.id == a).collect();
                if found.is_empty() {
                    return Err(Error::not_found(format!(
                        "Attachment {a} could not be found."
                    )));
                }
                found
            }
            None => attachments.iter().collect(),
        };
        let mut servers = Vec::new();
        for a in &chosen {
            if a.by_compute {
                servers.extend(a.instance_uuid.clone());
            }
            store::attachments::delete(&mut tx, &a.id).await?;
        }
        let left = store::attachments::of_volume(&mut tx, id).await?;
        let mut v = store::volumes::get(&mut tx, id)
            .await?
            .ok_or_else(|| volume_not_found(id))?;
        settle_status(&mut v, &left);
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        self.notify_servers(&servers).await;
        Ok(())
    }

    /// Tells Compute that the volumes of these servers changed (their hosts converge again).
    pub(crate) async fn notify_servers(&self, servers: &[String]) {
        if servers.is_empty() {
            return;
        }
        if let Some(hooks) = self.compute_hooks() {
            for s in servers {
                if let Err(e) = hooks.server_volumes_changed(s).await {
                    tracing::warn!(server_id = %s, error = %e, "telling Compute about volume changes failed");
                }
            }
        }
    }

    // ----- legacy attach / detach -----

    async fn legacy_attach(&self, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume_extension:volume_actions:attach")?;
        let instance = input::opt_string("instance_uuid", args.get("instance_uuid"), 255)?;
        let host = input::opt_string("host_name", args.get("host_name"), 255)?;
        if instance.is_none() && host.is_none() {
            return Err(Error::bad_request(
                "Invalid request to attach volume to an invalid target",
            ));
        }
        let mountpoint = input::opt_string("mountpoint", args.get("mountpoint"), 255)?
            .ok_or_else(|| input::invalid("mountpoint", "A mountpoint is required."))?;
        let mode = match args.get("mode") {
            None | Some(Value::Null) => "rw".to_string(),
            Some(Value::String(m)) if m == "rw" || m == "ro" => m.clone(),
            Some(_) => return Err(Error::bad_request("Invalid request to attach volume with an invalid mode. Attaching mode should be 'rw' or 'ro'")),
        };
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, id)
            .await?
            .ok_or_else(|| volume_not_found(id))?;
        let existing = store::attachments::of_volume(&mut tx, id).await?;
        let ok = match v.status.as_str() {
            "available" | "attaching" | "reserved" => true,
            "in-use" => v.multiattach,
            _ => false,
        };
        if !ok {
            return Err(invalid_volume(format!(
                "Volume {id} status must be available or attaching, but current status is: {}.",
                v.status
            )));
        }
        if v.readonly && mode == "rw" {
            return Err(invalid_volume("Volume is read-only: attach it in mode ro."));
        }
        let now = now();
        let a = AttachmentRow {
            id: nubo_common::ids::new_uuid(),
            volume_id: id.to_string(),
            instance_uuid: instance,
            attached_host: host,
            mountpoint: Some(mountpoint),
            attach_status: "attached".into(),
            attach_mode: mode,
            connector: None,
            by_compute: false,
            tag: None,
            delete_on_termination: false,
            boot_index: None,
            attach_time: Some(now.clone()),
            created_at: now.clone(),
            updated_at: None,
        };
        store::attachments::insert(&mut tx, &a).await?;
        let _ = existing;
        v.status = "in-use".into();
        v.attach_status = "attached".into();
        v.updated_at = Some(now);
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await
    }

    async fn legacy_detach(&self, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume_extension:volume_actions:detach")?;
        let attachment_id = args.get("attachment_id").and_then(Value::as_str);
        let mut tx = self.write().await?;
        let attachments = store::attachments::of_volume(&mut tx, id).await?;
        let chosen =
            match attachment_id {
                Some(a) => attachments.iter().find(|x| x.id == a).ok_or_else(|| {
                    Error::not_found(format!("Attachment {a} could not be found."))
                })?,
                None => match attachments.as_slice() {
                    [only] => only,
                    // Nothing attached (a force detach came first): nothing to do, as Cinder.
                    [] => return Ok(()),
                    _ => return Err(invalid_volume(
                        "Volume has more than one attachment: name the attachment_id to detach.",
                    )),
                },
            };
        let servers: Vec<String> = if chosen.by_compute {
            chosen.instance_uuid.iter().cloned().collect()
        } else {
            Vec::new()
        };
        store::attachments::delete(&mut tx, &chosen.id).await?;
        let left = store::attachments::of_volume(&mut tx, id).await?;
        let mut v = store::volumes::get(&mut tx, id)
            .await?
            .ok_or_else(|| volume_not_found(id))?;
        settle_status(&mut v, &left);
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        self.notify_servers(&servers).await;
        Ok(())
    }

    // ----- upload to image -----

    async fn upload_to_image(self: &Arc<Self>, ctx: &Ctx, id: &str, args: &Value) -> Result<Value> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume_extension:volume_actions:upload_image")?;
        let image_name = match args.get("image_name") {
            Some(Value::String(n)) if !n.is_empty() && n.len() <= 255 => n.clone(),
            _ => return Err(input::invalid("image_name", "An image name is required.")),
        };
        let force = input::opt_boolean("force", args.get("force"))?.unwrap_or(false);
        let disk_format = input::opt_string("disk_format", args.get("disk_format"), 255)?
            .unwrap_or_else(|| "raw".into())
            .to_lowercase();
        let format = match disk_format.as_str() {
            "raw" => ExportFormat::Raw,
            "qcow2" => ExportFormat::Qcow2,
            other => {
                return Err(Error::bad_request(format!(
                "Invalid disk-format '{other}' is specified. Allowed disk-formats are raw, qcow2."
            )))
            }
        };
        let container_format =
            input::opt_string("container_format", args.get("container_format"), 255)?
                .unwrap_or_else(|| "bare".into());
        if container_format != "bare" {
            return Err(Error::bad_request(format!(
                "Invalid container-format '{container_format}' is specified. Allowed container-formats are bare."
            )));
        }
        let (visibility, protected) = if ctx.mv.at_least(1) {
            let visibility = input::opt_string("visibility", args.get("visibility"), 255)?
                .unwrap_or_else(|| "private".into());
            if !["public", "private", "shared", "community"].contains(&visibility.as_str()) {
                return Err(input::invalid("visibility", "Unknown visibility."));
            }
            if visibility == "public" && !ctx.admin() {
                return Err(super::policy(
                    "volume_extension:volume_actions:upload_public",
                ));
            }
            let protected =
                input::opt_boolean("protected", args.get("protected"))?.unwrap_or(false);
            (visibility, protected)
        } else {
            ("private".to_string(), false)
        };
        let live = match v.status.as_str() {
            "available" => false,
            "in-use" if force => true,
            "in-use" => {
                return Err(invalid_volume(format!(
                    "Volume {id} status must be available to upload to an image (or in-use with force)."
                )))
            }
            other => {
                return Err(invalid_volume(format!(
                    "Volume {id} status must be available or in-use, but current status is: {other}."
                )))
            }
        };
        let object = v
            .store_name
            .clone()
            .ok_or_else(|| invalid_volume("the volume has no data"))?;
        // The image record first (Glance's checks and quotas answer the request).
        let mut image_body = json!({
            "name": image_name,
            "disk_format": disk_format,
            "container_format": container_format,
            "visibility": visibility,
            "protected": protected,
            "min_disk": v.size,
        });
        for (k, val) in &v.image_metadata {
            if ![
                "image_id",
                "image_name",
                "checksum",
                "size",
                "disk_format",
                "container_format",
                "min_disk",
                "min_ram",
                "owner",
                "status",
                "id",
                "name",
                "visibility",
                "protected",
                "created_at",
                "updated_at",
                "virtual_size",
                "os_hash_algo",
                "os_hash_value",
                "locations",
                "direct_url",
                "file",
                "schema",
                "self",
                "tags",
                "stores",
            ]
            .contains(&k.as_str())
            {
                image_body[k] = json!(val);
            }
        }
        if let Some(min_ram) = v
            .image_metadata
            .get("min_ram")
            .and_then(|r| r.parse::<i64>().ok())
        {
            image_body["min_ram"] = json!(min_ram);
        }
        let image = self.image.create_image(&ctx.caller, image_body).await?;
        let previous = v.status.clone();
        let moved = self
            .modify_volume(id, |v| {
                if v.status != previous {
                    return Err(invalid_volume(format!("Volume {id} changed status.")));
                }
                v.previous_status = Some(previous.clone());
                v.status = "uploading".into();
                Ok(())
            })
            .await;
        if let Err(e) = moved {
            let _ = self
                .image
                .delete_image(&ctx.caller, image.id.as_str())
                .await;
            return Err(e);
        }
        let vtype = match &v.type_id {
            Some(t) => self.type_by_id(t).await?,
            None => None,
        };
        let this = self.clone();
        let caller = ctx.caller.clone();
        let image_id = image.id.to_string();
        let vid = id.to_string();
        let request_id = ctx.request_id.clone();
        self.spawn(async move {
            let outcome = async {
                this.injected(Step::Upload)?;
                let stream = this
                    .exporter()
                    .export(&*this.store, &object, format, live)
                    .await?;
                this.image.upload_image(&caller, &image_id, None, stream).await?;
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = &outcome {
                tracing::warn!(volume_id = %vid, image_id = %image_id, error = %e, internal = ?e.internal, "upload to image failed");
                let _ = this.image.delete_image(&caller, &image_id).await;
                if let Ok(Some(v)) = this.load_volume(&vid).await {
                    this.record_message(
                        &v.project_id,
                        &request_id,
                        "VOLUME",
                        &vid,
                        "VOLUME_VOLUME_002_002",
                        "upload image to volume: Could not upload the volume to the image.",
                    )
                    .await;
                }
            }
            let _ = this
                .modify_volume(&vid, |v| {
                    if v.status == "uploading" {
                        v.status = v.previous_status.take().unwrap_or_else(|| "available".into());
                    }
                    Ok(())
                })
                .await;
        });
        let mut out = json!({
            "id": id,
            "updated_at": super::views::wire_time(&now()),
            "status": "uploading",
            "display_description": v.description,
            "size": v.size,
            "volume_type": vtype.map(|t| json!({
                "id": t.id, "name": t.name, "description": t.description, "is_public": t.is_public,
                "extra_specs": t.extra_specs, "qos_specs_id": t.qos_specs_id, "deleted": false,
                "created_at": super::views::wire_time(&t.created_at),
                "updated_at": super::views::wire_time_opt(&t.updated_at), "deleted_at": Value::Null,
            })),
            "image_id": image.id.to_string(),
            "container_format": container_format,
            "disk_format": disk_format,
            "image_name": image_name,
        });
        if ctx.mv.at_least(1) {
            out["visibility"] = json!(visibility);
            out["protected"] = json!(protected);
        }
        Ok(json!({"os-volume_upload_image": out}))
    }

    // ----- retype -----

    async fn retype(&self, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume:retype")?;
        let new_type = match args.get("new_type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(input::invalid("new_type", "A new type is required.")),
        };
        match args.get("migration_policy") {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) if p == "never" || p == "on-demand" => {}
            Some(_) => {
                return Err(input::invalid(
                    "migration_policy",
                    "It must be never or on-demand.",
                ))
            }
        }
        let t = self.usable_type(ctx, &new_type).await?;
        if v.type_id.as_deref() == Some(t.id.as_str()) {
            return Err(Error::bad_request(
                "Invalid input received: Retype cannot change the type to the current one.",
            ));
        }
        if self.type_is_encrypted(&t.id).await? {
            return Err(Error::bad_request(
                "Invalid volume type: encrypted volume types are not available (no key manager).",
            ));
        }
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, id)
            .await?
            .ok_or_else(|| volume_not_found(id))?;
        if !["available", "in-use"].contains(&v.status.as_str()) {
            return Err(invalid_volume(format!(
                "Volume {id} status must be available or in-use, but current status is: {}.",
                v.status
            )));
        }
        if !store::snapshots::of_volume(&mut tx, id).await?.is_empty() {
            // Cinder moves snapshots with their volume; quota per type would need them too.
        }
        self.check_volume_quota(&mut tx, &v.project_id, &t, 1, v.size)
            .await?;
        v.type_id = Some(t.id.clone());
        v.multiattach = t
            .extra_specs
            .get("multiattach")
            .is_some_and(|m| m.to_ascii_lowercase().contains("true"));
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await
    }

    // ----- revert, reimage -----

    /// Replaces a volume's object by `make` (a clone): the old object is deleted, or kept
    /// while snapshots of it exist.
    pub(crate) async fn replace_data(&self, id: &str, new_object: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, id)
            .await?
            .ok_or_else(|| volume_not_found(id))?;
        if let Some(old) = v.store_name.replace(new_object.to_string()) {
            v.old_store_names.push(old);
        }
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        self.collect_old_objects(id).await;
        Ok(())
    }

    async fn revert(self: &Arc<Self>, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume:revert_to_snapshot")?;
        let sid = args
            .get("snapshot_id")
            .and_then(Value::as_str)
            .ok_or_else(|| input::invalid("snapshot_id", "A snapshot id is required."))?
            .to_string();
        let snap = self.visible_snapshot(ctx, &sid).await?;
        if snap.volume_id != v.id {
            return Err(Error::bad_request(format!(
                "Invalid input received: snapshot {sid} is not a snapshot of volume {id}."
            )));
        }
        let latest = {
            let mut conn = self.read().await?;
            let mut snaps = store::snapshots::of_volume(&mut conn, id).await?;
            snaps.sort_by(|a, b| a.created_at.cmp(&b.created_at));
            snaps.last().map(|s| s.id.clone())
        };
        if latest.as_deref() != Some(sid.as_str()) {
            return Err(Error::bad_request(
                "Invalid snapshot: the volume can only be reverted to its latest snapshot.",
            ));
        }
        if snap.status != "available" || v.status != "available" {
            return Err(invalid_volume(
                "The volume and the snapshot must be available to revert.",
            ));
        }
        if snap.size != v.size {
            return Err(invalid_volume(
                "The volume's size must equal the snapshot's to revert.",
            ));
        }
        self.modify_volume(id, |v| {
            if v.status != "available" {
                return Err(invalid_volume("The volume must be available to revert."));
            }
            v.status = "reverting".into();
            Ok(())
        })
        .await?;
        let this = self.clone();
        let id = id.to_string();
        self.spawn(async move {
            let outcome = async {
                let _guard = this.lock_volume(&id).await;
                let object = snap
                    .store_name
                    .clone()
                    .ok_or_else(|| Error::internal("the snapshot has no data"))?;
                let source = if snap.store_kind == "image" {
                    Source::Image(object)
                } else {
                    Source::Snapshot(object)
                };
                let new_object = format!("volume-{id}-{}", &nubo_common::ids::new_hex_id()[..8]);
                this.store
                    .create_clone(&source, &new_object, Some(snap.size as u64 * GIB))
                    .await
                    .map_err(|e| store_error("revert", e))?;
                if let Err(e) = this.replace_data(&id, &new_object).await {
                    let _ = this.store.delete(&new_object).await;
                    return Err(e);
                }
                Ok::<(), Error>(())
            }
            .await;
            let status = if outcome.is_ok() {
                "available"
            } else {
                "error"
            };
            if let Err(e) = outcome {
                tracing::warn!(volume_id = %id, error = %e, "revert failed");
            }
            let _ = this
                .modify_volume(&id, |v| {
                    v.status = status.into();
                    Ok(())
                })
                .await;
        });
        Ok(())
    }

    async fn reimage(self: &Arc<Self>, ctx: &Ctx, id: &str, args: &Value) -> Result<()> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume:reimage")?;
        let image_id = args
            .get("image_id")
            .and_then(Value::as_str)
            .ok_or_else(|| input::invalid("image_id", "An image id is required."))?
            .to_string();
        let reserved_ok =
            input::opt_boolean("reimage_reserved", args.get("reimage_reserved"))?.unwrap_or(false);
        let allowed: &[&str] = if reserved_ok {
            &["available", "error", "reserved"]
        } else {
            &["available", "error"]
        };
        if !allowed.contains(&v.status.as_str()) {
            return Err(invalid_volume(format!(
                "Volume {id} status must be {}, but current status is: {}.",
                allowed.join(" or "),
                v.status
            )));
        }
        let boot = match self
            .image
            .image_for_boot(&ctx.caller, &ImageId(image_id.clone()))
            .await
        {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::not_found(format!(
                    "Image {image_id} could not be found."
                )))
            }
            Err(e) => return Err(Error::bad_request(e.message)),
        };
        let image_bytes = boot
            .image
            .virtual_size
            .or(boot.image.size)
            .unwrap_or(0)
            .max(0) as u64;
        if image_bytes > v.size as u64 * GIB || boot.image.min_disk > v.size {
            return Err(Error::bad_request(format!(
                "Invalid input received: image {image_id} is larger than volume {id}."
            )));
        }
        let previous = v.status.clone();
        self.modify_volume(id, |v| {
            v.previous_status = Some(previous);
            v.status = "downloading".into();
            Ok(())
        })
        .await?;
        let this = self.clone();
        let id = id.to_string();
        let size = v.size;
        self.spawn(async move {
            let outcome = async {
                let _guard = this.lock_volume(&id).await;
                let new_object = format!("volume-{id}-{}", &nubo_common::ids::new_hex_id()[..8]);
                this.store
                    .create_clone(&boot.source(), &new_object, Some(size as u64 * GIB))
                    .await
                    .map_err(|e| store_error("reimage", e))?;
                if let Err(e) = this.replace_data(&id, &new_object).await {
                    let _ = this.store.delete(&new_object).await;
                    return Err(e);
                }
                Ok::<(), Error>(())
            }
            .await;
            let ok = outcome.is_ok();
            if let Err(e) = outcome {
                tracing::warn!(volume_id = %id, error = %e, "reimage failed");
            }
            let meta: BTreeMap<String, String> = if ok {
                let mut m = BTreeMap::new();
                m.insert("image_id".into(), boot.image.id.to_string());
                if let Some(n) = &boot.image.name {
                    m.insert("image_name".into(), n.clone());
                }
                m
            } else {
                BTreeMap::new()
            };
            let _ = this
                .modify_volume(&id, |v| {
                    if ok {
                        v.status = match v.previous_status.take().as_deref() {
                            Some("reserved") => "reserved".into(),
                            _ => "available".into(),
                        };
                        v.bootable = true;
                        v.image_metadata = meta;
                    } else {
                        v.status = "error".into();
                    }
                    Ok(())
                })
                .await;
        });
        Ok(())
    }
}

/// A volume's status once its attachments are `left`: in-use while one is attached,
/// reserved/attaching while one is pending, else available.
pub(crate) fn settle_status(v: &mut VolumeRow, left: &[AttachmentRow]) {
    if left.iter().any(|a| a.attach_status == "attached") {
        v.status = "in-use".into();
        v.attach_status = "attached".into();
    } else {
        v.attach_status = "detached".into();
        v.status = if left.iter().any(|a| a.attach_status == "attaching") {
            "attaching".into()
        } else if left.iter().any(|a| a.attach_status == "reserved") {
            "reserved".into()
        } else {
            "available".into()
        };
    }
}
