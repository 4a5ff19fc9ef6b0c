//! Snapshots: create (a block store snapshot of a detached volume: milliseconds, copy-on-write;
//! of an attached volume, a crash-consistent copy, so that the disk file a VM has open, or
//! will open at its next start, never changes under it), delete, list, show, update, metadata,
//! and the admin actions (reset status, force delete, progress updates).
//!
//! ```text
//!   creating ──(data made)──> available ──delete──> deleting ──> gone
//!      │ failure: object removed                       │ failure
//!      v                                               v
//!    error                                        error_deleting
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use nubo_common::{Error, Result};
use serde_json::Value;

use super::input::{self, member};
use super::query::{self, ListParams};
use super::{
    invalid_volume, now, require_admin, require_member, require_reader, snapshot_not_found,
    snapshot_object, store_error, volume_not_found, Ctx, Step, VolumeService,
};
use crate::store;
use crate::store::snapshots::SnapshotRow;

/// Statuses a snapshot may be deleted from without `force`.
const DELETABLE: &[&str] = &["available", "error", "error_deleting"];

/// Every snapshot status (for reset and the update action).
pub const STATUSES: &[&str] = &[
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "unmanaging",
    "backing-up",
    "restoring",
];

impl VolumeService {
    pub(crate) async fn visible_snapshot(&self, ctx: &Ctx, id: &str) -> Result<SnapshotRow> {
        require_reader(ctx, "volume:get_snapshot")?;
        let row = {
            let mut conn = self.read().await?;
            store::snapshots::get(&mut conn, id).await?
        };
        match row {
            Some(s) if ctx.admin() || ctx.caller.project_id() == Some(s.project_id.as_str()) => {
                Ok(s)
            }
            _ => Err(snapshot_not_found(id)),
        }
    }

    pub(crate) async fn load_snapshot(&self, id: &str) -> Result<Option<SnapshotRow>> {
        let mut conn = self.read().await?;
        store::snapshots::get(&mut conn, id).await
    }

    pub(crate) async fn modify_snapshot<F>(
        &self,
        id: &str,
        change: F,
    ) -> Result<Option<SnapshotRow>>
    where
        F: FnOnce(&mut SnapshotRow) -> Result<()>,
    {
        let mut tx = self.write().await?;
        let Some(mut row) = store::snapshots::get(&mut tx, id).await? else {
            return Ok(None);
        };
        change(&mut row)?;
        row.updated_at = Some(now());
        store::snapshots::update(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// `POST /snapshots`.
    pub async fn create_snapshot(self: &Arc<Self>, ctx: &Ctx, body: &Value) -> Result<SnapshotRow> {
        require_member(ctx, "volume:create_snapshot")?;
        let s = member(body, "snapshot")?;
        let volume_id = match s.get("volume_id") {
            Some(Value::String(v)) => v.clone(),
            _ => return Err(volume_not_found("None")),
        };
        let name = match s.get("name") {
            Some(n) => input::opt_name("name", Some(n))?,
            None => input::opt_name("display_name", s.get("display_name"))?,
        };
        let description = match s.get("description") {
            Some(d) => input::opt_string("description", Some(d), 255)?,
            None => input::opt_string("display_description", s.get("display_description"), 255)?,
        };
        let force = input::opt_boolean("force", s.get("force"))?;
        let metadata = input::metadata("metadata", s.get("metadata"), true)?;
        let volume = self.visible_volume(ctx, &volume_id).await?;
        self.snapshot_volume(ctx, &volume.id, name, description, metadata, force, None)
            .await
    }

    /// Records a snapshot of a volume and starts taking it (also used by group snapshots).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn snapshot_volume(
        self: &Arc<Self>,
        ctx: &Ctx,
        volume_id: &str,
        name: Option<String>,
        description: Option<String>,
        metadata: BTreeMap<String, String>,
        force: Option<bool>,
        group_snapshot_id: Option<String>,
    ) -> Result<SnapshotRow> {
        let mut tx = self.write().await?;
        let volume = store::volumes::get(&mut tx, volume_id)
            .await?
            .ok_or_else(|| volume_not_found(volume_id))?;
        match volume.status.as_str() {
            "available" => {}
            "in-use" => {
                if ctx.mv.at_least(66) {
                    if force == Some(false) {
                        return Err(Error::bad_request(
                            "Invalid input received: The 'force' parameter is not needed and may only be true at this microversion.",
                        ));
                    }
                } else if force != Some(true) {
                    return Err(invalid_volume(format!(
                        "Volume {volume_id} status must be available, but current status is: in-use. Use force to snapshot an in-use volume."
                    )));
                }
            }
            other => {
                return Err(invalid_volume(format!(
                    "Volume {volume_id} status must be available or in-use, but current status is: {other}."
                )))
            }
        }
        if volume.store_name.is_none() {
            return Err(invalid_volume(format!("Volume {volume_id} has no data.")));
        }
        let vtype = match &volume.type_id {
            Some(t) => store::types::get(&mut tx, t).await?,
            None => None,
        };
        self.check_snapshot_quota(&mut tx, &volume.project_id, vtype.as_ref(), volume.size)
            .await?;
        let row = SnapshotRow {
            id: nubo_common::ids::new_uuid(),
            project_id: volume.project_id.clone(),
            user_id: ctx.caller.user_id.clone(),
            volume_id: volume.id.clone(),
            name,
            description,
            size: volume.size,
            status: "creating".into(),
            progress: "0%".into(),
            metadata,
            store_name: None,
            store_kind: "snapshot".into(),
            group_snapshot_id,
            use_quota: true,
            created_at: now(),
            updated_at: None,
        };
        store::snapshots::insert(&mut tx, &row).await?;
        tx.commit().await?;
        let attached = volume.attach_status == "attached" || {
            let mut conn = self.read().await?;
            !store::attachments::of_volume(&mut conn, volume_id)
                .await?
                .is_empty()
        };
        let this = self.clone();
        let id = row.id.clone();
        let object = volume.store_name.clone().unwrap_or_default();
        let vid = volume.id.clone();
        let request_id = ctx.request_id.clone();
        self.spawn(async move {
            this.take_snapshot(&id, &vid, &object, attached, &request_id)
                .await;
        });
        Ok(row)
    }

    /// Makes a `creating` snapshot's data and records the outcome.
    async fn take_snapshot(
        &self,
        id: &str,
        volume_id: &str,
        object: &str,
        attached: bool,
        request_id: &str,
    ) {
        let name = snapshot_object(id);
        let outcome = async {
            let _guard = self.lock_volume(volume_id).await;
            self.injected(Step::SnapshotData)?;
            let kind = if attached {
                self.live_copy(object, &name).await?;
                "image"
            } else {
                match self.store.snapshot(object, &name).await {
                    Ok(_) => "snapshot",
                    Err(nubo_blockstore::Error::InUse { .. }) => {
                        self.live_copy(object, &name).await?;
                        "image"
                    }
                    Err(e) => return Err(store_error("snapshot", e)),
                }
            };
            self.injected(Step::SnapshotRecord)?;
            Ok::<&str, Error>(kind)
        }
        .await;
        match outcome {
            Ok(kind) => {
                let n = name.clone();
                let updated = self
                    .modify_snapshot(id, move |s| {
                        if s.status == "creating" {
                            s.status = "available".into();
                        }
                        s.progress = "100%".into();
                        s.store_name = Some(n);
                        s.store_kind = kind.into();
                        Ok(())
                    })
                    .await;
                match updated {
                    Ok(Some(_)) => tracing::info!(snapshot_id = %id, kind, "snapshot available"),
                    _ => {
                        let _ = self.store.delete(&name).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(snapshot_id = %id, error = %e, internal = ?e.internal, "snapshot failed, undone");
                let _ = self.store.delete(&name).await;
                // The message first: whoever sees the status `error` can already read why.
                if let Ok(Some(s)) = self.load_snapshot(id).await {
                    self.record_message(
                        &s.project_id,
                        request_id,
                        "SNAPSHOT",
                        id,
                        "VOLUME_SNAPSHOT_001_002",
                        "create snapshot: Snapshot failed to create.",
                    )
                    .await;
                }
                let _ = self
                    .modify_snapshot(id, |s| {
                        s.status = "error".into();
                        s.store_name = None;
                        Ok(())
                    })
                    .await;
            }
        }
    }

    /// `DELETE /snapshots/{id}` and (admin) `os-force_delete`.
    pub async fn delete_snapshot(self: &Arc<Self>, ctx: &Ctx, id: &str, force: bool) -> Result<()> {
        let s = self.visible_snapshot(ctx, id).await?;
        require_member(ctx, "volume:delete_snapshot")?;
        if force {
            require_admin(ctx, "volume_extension:snapshot_admin_actions:force_delete")?;
        } else if !DELETABLE.contains(&s.status.as_str()) {
            return Err(Error::bad_request(format!(
                "Invalid snapshot: Snapshot status must be available or error and must not be part of a group, but is {}.",
                s.status
            )));
        }
        if s.group_snapshot_id.is_some() && !force {
            return Err(Error::bad_request(
                "Invalid snapshot: Snapshot is part of a group snapshot: delete the group snapshot.",
            ));
        }
        // A volume being made from it would lose its base: Cinder refuses too.
        {
            let mut conn = self.read().await?;
            let creating = store::volumes::list(&mut conn, Some(&s.project_id))
                .await?
                .into_iter()
                .any(|v| v.snapshot_id.as_deref() == Some(id) && v.status == "creating");
            if creating {
                return Err(Error::bad_request(
                    "Invalid snapshot: a volume is being created from this snapshot.",
                ));
            }
        }
        self.modify_snapshot(id, |s| {
            s.status = "deleting".into();
            Ok(())
        })
        .await?;
        let this = self.clone();
        let id = id.to_string();
        self.spawn(async move {
            this.finish_snapshot_delete(&id).await;
        });
        Ok(())
    }

    pub(crate) async fn finish_snapshot_delete(&self, id: &str) {
        let outcome = async {
            let Some(s) = ({
                let mut conn = self.read().await?;
                store::snapshots::get(&mut conn, id).await?
            }) else {
                return Ok(());
            };
            let _guard = self.lock_volume(&s.volume_id).await;
            // Objects are named after the id; a snapshot still being taken made it or not.
            for object in s
                .store_name
                .iter()
                .cloned()
                .chain(std::iter::once(snapshot_object(id)))
            {
                self.store
                    .delete(&object)
                    .await
                    .map_err(|e| store_error("delete snapshot", e))?;
            }
            let mut tx = self.write().await?;
            store::snapshots::delete(&mut tx, id).await?;
            tx.commit().await?;
            self.collect_old_objects(&s.volume_id).await;
            Ok::<(), Error>(())
        }
        .await;
        match outcome {
            Ok(()) => tracing::info!(snapshot_id = %id, "snapshot deleted"),
            Err(e) => {
                tracing::warn!(snapshot_id = %id, error = %e, internal = ?e.internal, "deleting snapshot failed");
                let _ = self
                    .modify_snapshot(id, |s| {
                        s.status = "error_deleting".into();
                        Ok(())
                    })
                    .await;
            }
        }
    }

    /// Deletes the objects a revert or reimage replaced once no snapshot needs them.
    pub(crate) async fn collect_old_objects(&self, volume_id: &str) {
        let Ok(Some(v)) = self.load_volume(volume_id).await else {
            return;
        };
        if v.old_store_names.is_empty() {
            return;
        }
        let mut kept = Vec::new();
        for object in &v.old_store_names {
            if self.store.delete(object).await.is_err() {
                kept.push(object.clone());
            }
        }
        if kept.len() != v.old_store_names.len() {
            let _ = self
                .modify_volume(volume_id, move |v| {
                    v.old_store_names = kept;
                    Ok(())
                })
                .await;
        }
    }

    pub async fn list_snapshots(
        &self,
        ctx: &Ctx,
        mut p: ListParams,
    ) -> Result<(Vec<SnapshotRow>, usize, bool)> {
        require_reader(ctx, "volume:get_all_snapshots")?;
        let project: Option<String> = if ctx.admin() && p.all_tenants {
            p.project_id.clone()
        } else {
            Some(ctx.project()?.to_string())
        };
        let mut rows = {
            let mut conn = self.read().await?;
            store::snapshots::list(&mut conn, project.as_deref()).await?
        };
        if let Some(meta) = p.take("metadata") {
            let want = query::parse_dict(&meta)
                .ok_or_else(|| Error::bad_request(format!("Invalid metadata filter {meta:?}.")))?;
            rows.retain(|s| want.iter().all(|(k, x)| s.metadata.get(k) == Some(x)));
        }
        for (key, value) in std::mem::take(&mut p.filters) {
            let (key, like) = match key.strip_suffix('~') {
                Some(k) => (k.to_string(), true),
                None => (key, false),
            };
            let key = if key == "display_name" {
                "name".to_string()
            } else {
                key
            };
            let time = key == "created_at" || key == "updated_at";
            if ![
                "name",
                "status",
                "volume_id",
                "description",
                "created_at",
                "updated_at",
                "group_snapshot_id",
                "user_id",
                "id",
            ]
            .contains(&key.as_str())
            {
                continue;
            }
            rows.retain(|s| query::matches(&snapshot_field(s, &key), &value, like, time));
        }
        query::sort(&mut rows, &p.sort, SNAPSHOT_SORT_KEYS, snapshot_sort_field)?;
        let page = query::page(
            rows,
            &p,
            |s| s.id.as_str(),
            |m| Error::not_found(format!("Marker {m} could not be found.")),
        )?;
        Ok((page.items, page.count, page.more))
    }

    pub async fn get_snapshot(&self, ctx: &Ctx, id: &str) -> Result<SnapshotRow> {
        self.visible_snapshot(ctx, id).await
    }

    pub async fn update_snapshot(&self, ctx: &Ctx, id: &str, body: &Value) -> Result<SnapshotRow> {
        self.visible_snapshot(ctx, id).await?;
        require_member(ctx, "volume:update_snapshot")?;
        let u = member(body, "snapshot")?;
        if u.is_empty() {
            return Err(Error::bad_request(
                "Invalid input received: name or description is required.",
            ));
        }
        for key in u.keys() {
            if !["name", "description", "display_name", "display_description"]
                .contains(&key.as_str())
            {
                return Err(input::invalid(key, "This attribute cannot be updated."));
            }
        }
        let name = match (u.get("name"), u.get("display_name")) {
            (Some(n), _) | (None, Some(n)) => Some(input::opt_name("name", Some(n))?),
            _ => None,
        };
        let description = match (u.get("description"), u.get("display_description")) {
            (Some(d), _) | (None, Some(d)) => Some(input::opt_string("description", Some(d), 255)?),
            _ => None,
        };
        self.modify_snapshot(id, |s| {
            if let Some(n) = name {
                s.name = n;
            }
            if let Some(d) = description {
                s.description = d;
            }
            Ok(())
        })
        .await?
        .ok_or_else(|| snapshot_not_found(id))
    }

    /// `POST /snapshots/{id}/action`.
    pub async fn snapshot_action(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<()> {
        let Some((action, args)) = body.as_object().and_then(|o| o.iter().next()) else {
            return Err(Error::bad_request("There is no such action."));
        };
        match action.as_str() {
            "os-reset_status" => {
                self.visible_snapshot(ctx, id).await?;
                require_admin(ctx, "volume_extension:snapshot_admin_actions:reset_status")?;
                let status = args
                    .get("status")
                    .and_then(Value::as_str)
                    .filter(|s| STATUSES.contains(s))
                    .ok_or_else(|| input::invalid("status", "Not a snapshot status."))?
                    .to_string();
                self.modify_snapshot(id, |s| {
                    s.status = status;
                    Ok(())
                })
                .await?;
                Ok(())
            }
            "os-force_delete" => self.delete_snapshot(ctx, id, true).await,
            "os-update_snapshot_status" => {
                let s = self.visible_snapshot(ctx, id).await?;
                require_member(
                    ctx,
                    "snapshot_extension:snapshot_actions:update_snapshot_status",
                )?;
                let status = args
                    .get("status")
                    .and_then(Value::as_str)
                    .ok_or_else(|| input::invalid("status", "A status is required."))?
                    .to_string();
                let allowed: &[&str] = match s.status.as_str() {
                    "creating" => &["creating", "available", "error"],
                    "deleting" => &["deleting", "error_deleting"],
                    _ => &[],
                };
                if !allowed.contains(&status.as_str()) {
                    return Err(Error::bad_request(format!(
                        "Invalid snapshot: Provided snapshot status {status} not allowed for snapshot with status {}.",
                        s.status
                    )));
                }
                let progress = match args.get("progress") {
                    None => None,
                    Some(Value::String(p)) if p.len() <= 255 => Some(p.clone()),
                    Some(_) => return Err(input::invalid("progress", "It must be a string.")),
                };
                self.modify_snapshot(id, |s| {
                    s.status = status;
                    if let Some(p) = progress {
                        s.progress = p;
                    }
                    Ok(())
                })
                .await?;
                Ok(())
            }
            "os-unmanage" => {
                self.visible_snapshot(ctx, id).await?;
                require_admin(ctx, "snapshot_extension:snapshot_unmanage")?;
                // Nubo's snapshots live in its own block store: unmanaging means forgetting
                // the record and removing the data it alone knows about.
                self.delete_snapshot(ctx, id, true).await
            }
            other => Err(Error::bad_request(format!(
                "There is no such action: {other}"
            ))),
        }
    }
}

const SNAPSHOT_SORT_KEYS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "status",
    "size",
    "volume_id",
    "created_at",
    "updated_at",
    "project_id",
    "user_id",
    "description",
];

fn snapshot_field(s: &SnapshotRow, key: &str) -> String {
    match key {
        "id" => s.id.clone(),
        "name" | "display_name" => s.name.clone().unwrap_or_default(),
        "description" => s.description.clone().unwrap_or_default(),
        "status" => s.status.clone(),
        "volume_id" => s.volume_id.clone(),
        "created_at" => s.created_at.clone(),
        "updated_at" => s.updated_at.clone().unwrap_or_default(),
        "group_snapshot_id" => s.group_snapshot_id.clone().unwrap_or_default(),
        "user_id" => s.user_id.clone(),
        "project_id" => s.project_id.clone(),
        _ => String::new(),
    }
}

fn snapshot_sort_field(s: &SnapshotRow, key: &str) -> String {
    match key {
        "size" => format!("{:012}", s.size),
        k => snapshot_field(s, k),
    }
}
