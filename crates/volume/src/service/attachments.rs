//! Cinder's attachments API (3.27+): the bookkeeping a consumer (Nova, or anyone) does around
//! using a volume. Create without a connector reserves the volume; an update with a connector
//! returns how to connect (`connection_info`); `os-complete` (3.44) marks it attached; delete
//! releases it. These calls alone never touch a VM: Compute's own attachments (made through
//! Nova's `os-volume_attachments`) are the ones its agents hot-plug.
//!
//! ```text
//!   create ─> reserved ──update(connector)──> attaching ──os-complete──> attached
//!   create(connector) ─────────────────────> attaching
//!   delete (any) ─> gone; the volume settles to in-use / reserved / available
//! ```

use nubo_common::{Error, Result};
use serde_json::Value;

use super::actions::settle_status;
use super::input::{self, member};
use super::query::ListParams;
use super::{
    invalid_volume, now, require_member, require_reader, volume_not_found, Ctx, VolumeService,
};
use crate::store;
use crate::store::attachments::AttachmentRow;

fn attachment_not_found(id: &str) -> Error {
    Error::not_found(format!("VolumeAttachment {id} could not be found."))
}

impl VolumeService {
    /// An attachment whose volume the caller may see.
    pub(crate) async fn visible_attachment(&self, ctx: &Ctx, id: &str) -> Result<AttachmentRow> {
        require_reader(ctx, "volume:attachment_get")?;
        let a = {
            let mut conn = self.read().await?;
            store::attachments::get(&mut conn, id).await?
        }
        .ok_or_else(|| attachment_not_found(id))?;
        match self.visible_volume(ctx, &a.volume_id).await {
            Ok(_) => Ok(a),
            Err(e) if e.is_not_found() => Err(attachment_not_found(id)),
            Err(e) => Err(e),
        }
    }

    pub async fn create_attachment(&self, ctx: &Ctx, body: &Value) -> Result<AttachmentRow> {
        require_member(ctx, "volume:attachment_create")?;
        let a = member(body, "attachment")?;
        let volume_id = match a.get("volume_uuid") {
            Some(Value::String(v)) if input::is_uuid(v) => v.clone(),
            _ => return Err(input::invalid("volume_uuid", "A volume UUID is required.")),
        };
        let instance = input::opt_uuid("instance_uuid", a.get("instance_uuid"))?;
        let connector = match a.get("connector") {
            None | Some(Value::Null) => None,
            Some(Value::Object(c)) => Some(Value::Object(c.clone())),
            Some(_) => return Err(input::invalid("connector", "It must be an object.")),
        };
        let mode = if ctx.mv.at_least(54) {
            match a.get("mode") {
                None | Some(Value::Null) => "rw".to_string(),
                Some(Value::String(m)) if m == "rw" || m == "ro" => m.clone(),
                Some(_) => return Err(input::invalid("mode", "It must be rw or ro.")),
            }
        } else {
            "rw".to_string()
        };
        let v = self.visible_volume(ctx, &volume_id).await?;
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, &v.id)
            .await?
            .ok_or_else(|| volume_not_found(&volume_id))?;
        let existing = store::attachments::of_volume(&mut tx, &volume_id).await?;
        let ok = match v.status.as_str() {
            "available" | "downloading" => true,
            "in-use" | "attaching" | "reserved" => v.multiattach || existing.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(invalid_volume(format!(
                "Volume {volume_id} status must be available or downloading to reserve, but the current status is {}.",
                v.status
            )));
        }
        let now = now();
        let row = AttachmentRow {
            id: nubo_common::ids::new_uuid(),
            volume_id: volume_id.clone(),
            instance_uuid: instance,
            attached_host: connector
                .as_ref()
                .and_then(|c| c.get("host"))
                .and_then(Value::as_str)
                .map(String::from),
            mountpoint: connector
                .as_ref()
                .and_then(|c| c.get("mountpoint"))
                .and_then(Value::as_str)
                .map(String::from),
            attach_status: if connector.is_some() {
                "attaching"
            } else {
                "reserved"
            }
            .into(),
            attach_mode: if v.readonly { "ro".into() } else { mode },
            connector: connector.map(|c| c.to_string()),
            by_compute: false,
            tag: None,
            delete_on_termination: false,
            boot_index: None,
            attach_time: None,
            created_at: now.clone(),
            updated_at: None,
        };
        store::attachments::insert(&mut tx, &row).await?;
        let mut all = existing;
        all.push(row.clone());
        settle_status(&mut v, &all);
        v.updated_at = Some(now);
        store::volumes::update(&mut tx, &v).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn list_attachments(&self, ctx: &Ctx, p: ListParams) -> Result<Vec<AttachmentRow>> {
        require_reader(ctx, "volume:attachment_get_all")?;
        let rows = {
            let mut conn = self.read().await?;
            store::attachments::all(&mut conn).await?
        };
        let project = ctx.project()?.to_string();
        let all = ctx.admin() && p.all_tenants;
        let mut out = Vec::new();
        for a in rows {
            let Some(v) = self.load_volume(&a.volume_id).await? else {
                continue;
            };
            if !all && v.project_id != project {
                continue;
            }
            let keep = p.filters.iter().all(|(k, x)| match k.as_str() {
                "volume_id" => &a.volume_id == x,
                "instance_id" | "instance_uuid" => a.instance_uuid.as_deref() == Some(x.as_str()),
                "status" | "attach_status" => &a.attach_status == x,
                _ => true,
            });
            if keep {
                out.push(a);
            }
        }
        out.reverse();
        let page = super::query::page(
            out,
            &p,
            |a| a.id.as_str(),
            |m| Error::not_found(format!("Marker {m} could not be found.")),
        )?;
        Ok(page.items)
    }

    pub async fn get_attachment(&self, ctx: &Ctx, id: &str) -> Result<AttachmentRow> {
        self.visible_attachment(ctx, id).await
    }

    /// `PUT /attachments/{id}` with a connector: reserved -> attaching.
    pub async fn update_attachment(
        &self,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<AttachmentRow> {
        self.visible_attachment(ctx, id).await?;
        require_member(ctx, "volume:attachment_update")?;
        let a = member(body, "attachment")?;
        let connector = match a.get("connector") {
            Some(Value::Object(c)) => Value::Object(c.clone()),
            _ => {
                return Err(input::invalid(
                    "connector",
                    "A connector object is required.",
                ))
            }
        };
        let mut tx = self.write().await?;
        let mut row = store::attachments::get(&mut tx, id)
            .await?
            .ok_or_else(|| attachment_not_found(id))?;
        if row.attach_status == "detaching" {
            return Err(Error::bad_request(
                "Invalid volume: the attachment is being detached.",
            ));
        }
        if row.attach_status == "reserved" {
            row.attach_status = "attaching".into();
        }
        row.attached_host = connector
            .get("host")
            .and_then(Value::as_str)
            .map(String::from)
            .or(row.attached_host);
        if let Some(m) = connector.get("mountpoint").and_then(Value::as_str) {
            row.mountpoint = Some(m.to_string());
        }
        row.connector = Some(connector.to_string());
        row.updated_at = Some(now());
        store::attachments::update(&mut tx, &row).await?;
        let left = store::attachments::of_volume(&mut tx, &row.volume_id).await?;
        if let Some(mut v) = store::volumes::get(&mut tx, &row.volume_id).await? {
            settle_status(&mut v, &left);
            v.updated_at = Some(now());
            store::volumes::update(&mut tx, &v).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// `os-complete` (3.44): the consumer connected; the volume is in use.
    pub async fn complete_attachment(&self, ctx: &Ctx, id: &str) -> Result<()> {
        self.visible_attachment(ctx, id).await?;
        require_member(ctx, "volume:attachment_complete")?;
        let mut tx = self.write().await?;
        let mut row = store::attachments::get(&mut tx, id)
            .await?
            .ok_or_else(|| attachment_not_found(id))?;
        row.attach_status = "attached".into();
        row.attach_time = Some(now());
        row.updated_at = Some(now());
        store::attachments::update(&mut tx, &row).await?;
        let left = store::attachments::of_volume(&mut tx, &row.volume_id).await?;
        if let Some(mut v) = store::volumes::get(&mut tx, &row.volume_id).await? {
            settle_status(&mut v, &left);
            v.updated_at = Some(now());
            store::volumes::update(&mut tx, &v).await?;
        }
        tx.commit().await
    }

    /// `DELETE /attachments/{id}`: answers the volume's remaining attachments.
    pub async fn delete_attachment(&self, ctx: &Ctx, id: &str) -> Result<Vec<AttachmentRow>> {
        self.visible_attachment(ctx, id).await?;
        require_member(ctx, "volume:attachment_delete")?;
        let mut tx = self.write().await?;
        let row = store::attachments::get(&mut tx, id)
            .await?
            .ok_or_else(|| attachment_not_found(id))?;
        store::attachments::delete(&mut tx, id).await?;
        let left = store::attachments::of_volume(&mut tx, &row.volume_id).await?;
        if let Some(mut v) = store::volumes::get(&mut tx, &row.volume_id).await? {
            settle_status(&mut v, &left);
            v.updated_at = Some(now());
            store::volumes::update(&mut tx, &v).await?;
        }
        tx.commit().await?;
        if row.by_compute {
            if let Some(s) = &row.instance_uuid {
                self.notify_servers(std::slice::from_ref(s)).await;
            }
        }
        Ok(left)
    }
}
