//! Volume transfers: a project offers an available volume (`awaiting-transfer`) with a secret
//! auth key; another project that knows the key accepts it and becomes its owner (with its
//! snapshots, unless `no_snapshots`, 3.55). The key is stored only as a salted SHA-256.

use std::sync::Arc;

use nubo_common::{Error, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::input::{self, member};
use super::{
    invalid_volume, now, require_member, require_reader, volume_not_found, Ctx, VolumeService,
};
use crate::store;
use crate::store::transfers::TransferRow;

fn transfer_not_found(id: &str) -> Error {
    Error::not_found(format!("Transfer {id} could not be found."))
}

fn hash(salt: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(key.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n.div_ceil(2)];
    rand::thread_rng().fill_bytes(&mut bytes);
    let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s[..n].to_string()
}

impl VolumeService {
    /// The transfer view: `full` adds `created_at` (and the 3.55/3.57 fields).
    pub fn transfer_view(&self, ctx: &Ctx, t: &TransferRow, full: bool, collection: &str) -> Value {
        let mut v = json!({
            "id": t.id,
            "name": t.name,
            "volume_id": t.volume_id,
            "links": super::views::links(ctx, &t.source_project_id, collection, &t.id),
        });
        if full {
            v["created_at"] = json!(super::views::wire_time(&t.created_at));
            if ctx.mv.at_least(55) {
                v["no_snapshots"] = json!(t.no_snapshots);
            }
            if ctx.mv.at_least(57) {
                v["source_project_id"] = json!(t.source_project_id);
                v["destination_project_id"] = json!(t.destination_project_id);
                v["accepted"] = json!(t.accepted);
            }
        }
        v
    }

    async fn visible_transfer(&self, ctx: &Ctx, id: &str) -> Result<TransferRow> {
        require_reader(ctx, "volume:get_transfer")?;
        let t = {
            let mut conn = self.read().await?;
            store::transfers::get(&mut conn, id).await?
        };
        match t {
            Some(t)
                if ctx.admin() || ctx.caller.project_id() == Some(t.source_project_id.as_str()) =>
            {
                Ok(t)
            }
            _ => Err(transfer_not_found(id)),
        }
    }

    /// `POST /volume-transfers`: answers the transfer and its auth key (shown only now).
    pub async fn create_transfer(&self, ctx: &Ctx, body: &Value) -> Result<(TransferRow, String)> {
        require_member(ctx, "volume:create_transfer")?;
        let b = member(body, "transfer")?;
        let volume_id = match b.get("volume_id") {
            Some(Value::String(v)) => v.clone(),
            _ => return Err(input::invalid("volume_id", "A volume id is required.")),
        };
        let name = input::opt_name("name", b.get("name"))?;
        let no_snapshots = if ctx.mv.at_least(55) {
            input::opt_boolean("no_snapshots", b.get("no_snapshots"))?.unwrap_or(false)
        } else {
            false
        };
        let v = self.visible_volume(ctx, &volume_id).await?;
        let key = random_hex(16);
        let salt = random_hex(16);
        let t = TransferRow {
            id: nubo_common::ids::new_uuid(),
            volume_id: v.id.clone(),
            name,
            crypt_hash: hash(&salt, &key),
            salt,
            source_project_id: v.project_id.clone(),
            destination_project_id: None,
            accepted: false,
            no_snapshots,
            created_at: now(),
        };
        let mut tx = self.write().await?;
        let mut v = store::volumes::get(&mut tx, &volume_id)
            .await?
            .ok_or_else(|| volume_not_found(&volume_id))?;
        if v.status != "available" {
            return Err(invalid_volume(format!(
                "Status of volume {volume_id} must be available to transfer, but is {}.",
                v.status
            )));
        }
        if v.group_id.is_some() {
            return Err(invalid_volume("Volumes in a group cannot be transferred."));
        }
        v.status = "awaiting-transfer".into();
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        store::transfers::insert(&mut tx, &t).await?;
        tx.commit().await?;
        Ok((t, key))
    }

    pub async fn list_transfers(&self, ctx: &Ctx, all_tenants: bool) -> Result<Vec<TransferRow>> {
        require_reader(ctx, "volume:get_all_transfers")?;
        let project = if ctx.admin() && all_tenants {
            None
        } else {
            Some(ctx.project()?.to_string())
        };
        let mut conn = self.read().await?;
        store::transfers::list(&mut conn, project.as_deref()).await
    }

    pub async fn get_transfer(&self, ctx: &Ctx, id: &str) -> Result<TransferRow> {
        self.visible_transfer(ctx, id).await
    }

    pub async fn delete_transfer(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let t = self.visible_transfer(ctx, id).await?;
        require_member(ctx, "volume:delete_transfer")?;
        let mut tx = self.write().await?;
        store::transfers::delete(&mut tx, id).await?;
        if let Some(mut v) = store::volumes::get(&mut tx, &t.volume_id).await? {
            if v.status == "awaiting-transfer" {
                v.status = "available".into();
                v.updated_at = Some(now());
                store::volumes::update(&mut tx, &v).await?;
            }
        }
        tx.commit().await
    }

    /// `POST /volume-transfers/{id}/accept`: any project that knows the key takes the volume.
    pub async fn accept_transfer(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<TransferRow> {
        require_member(ctx, "volume:accept_transfer")?;
        let project = ctx.project()?.to_string();
        let key = body
            .get("accept")
            .and_then(|a| a.get("auth_key"))
            .and_then(Value::as_str)
            .ok_or_else(|| input::invalid("auth_key", "The auth key is required."))?
            .to_string();
        let mut tx = self.write().await?;
        let t = store::transfers::get(&mut tx, id)
            .await?
            .ok_or_else(|| transfer_not_found(id))?;
        if hash(&t.salt, &key) != t.crypt_hash {
            return Err(Error::bad_request(format!(
                "Invalid auth key: Attempt to transfer {id} with invalid auth key."
            )));
        }
        let mut v = store::volumes::get(&mut tx, &t.volume_id)
            .await?
            .ok_or_else(|| volume_not_found(&t.volume_id))?;
        if v.status != "awaiting-transfer" {
            return Err(invalid_volume(format!(
                "Volume {} is {}, not awaiting a transfer.",
                v.id, v.status
            )));
        }
        let vtype = match &v.type_id {
            Some(tid) => store::types::get(&mut tx, tid).await?,
            None => None,
        };
        if let Some(vt) = &vtype {
            self.check_volume_quota(&mut tx, &project, vt, 1, v.size)
                .await?;
        }
        let snapshots = store::snapshots::of_volume(&mut tx, &v.id).await?;
        if t.no_snapshots && !snapshots.is_empty() {
            return Err(invalid_volume(
                "The volume has snapshots but the transfer was made without them.",
            ));
        }
        for mut s in snapshots {
            s.project_id = project.clone();
            s.user_id = ctx.caller.user_id.clone();
            s.updated_at = Some(now());
            store::snapshots::update(&mut tx, &s).await?;
        }
        v.project_id = project.clone();
        v.user_id = ctx.caller.user_id.clone();
        v.status = "available".into();
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        store::transfers::delete(&mut tx, id).await?;
        tx.commit().await?;
        let mut accepted = t;
        accepted.destination_project_id = Some(project);
        accepted.accepted = true;
        tracing::info!(volume_id = %v.id, transfer_id = %id, "volume transferred");
        Ok(accepted)
    }
}
