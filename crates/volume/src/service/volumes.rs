//! Volumes: create (validated and quota-checked here, the data made by a background task:
//! an empty volume, or a copy-on-write clone of an image, a snapshot or a volume; a failure
//! removes whatever was made and leaves the volume in `error`), delete (with `cascade` for its
//! snapshots), list with Cinder's filters and paging, show, update, metadata, summary.
//!
//! ```text
//!   POST /volumes:  validate ─> quota + row (creating), one transaction ─> 202
//!   task:           lock ─> block store object ─> row: available (+ bootable, store name)
//!   undo:           object deleted <──────────── any failure ─> error (+ user message)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use nubo_blockstore::Source;
use nubo_common::{Error, Result};
use nubo_image::{BootImage, ImageId};
use serde_json::{json, Value};

use super::input::{self, member};
use super::query::{self, ListParams};
use super::views::{self, VolumeExtras, VolumeShape};
use super::{
    invalid_volume, now, require_member, require_reader, snapshot_not_found, store_error,
    volume_not_found, volume_object, Ctx, Step, VolumeService, GIB,
};
use crate::store;
use crate::store::snapshots::SnapshotRow;
use crate::store::types::TypeRow;
use crate::store::volumes::VolumeRow;

/// Statuses a volume may be deleted from (without `force`).
const DELETABLE: &[&str] = &[
    "available",
    "error",
    "error_restoring",
    "error_extending",
    "error_managing",
];

/// What `POST /volumes` asked for, checked.
#[derive(Debug, Clone, Default)]
pub struct CreateVolume {
    pub size: Option<i64>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub image_ref: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub group_id: Option<String>,
    pub backup_id: Option<String>,
}

/// Where the data of a new volume comes from.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Empty,
    Image(BootImage),
    Snapshot(SnapshotRow),
    Volume(VolumeRow),
}

pub fn parse_create(body: &Value, ctx: &Ctx) -> Result<CreateVolume> {
    let v = member(body, "volume")?;
    let name = match v.get("name") {
        Some(n) => input::opt_name("name", Some(n))?,
        None => input::opt_name("display_name", v.get("display_name"))?,
    };
    let description = match v.get("description") {
        Some(d) => input::opt_string("description", Some(d), 255)?,
        None => input::opt_string("display_description", v.get("display_description"), 255)?,
    };
    if v.get("multiattach").and_then(Value::as_bool) == Some(true) {
        return Err(Error::bad_request(
            "The multiattach parameter is no longer supported: create the volume with a volume type whose extra spec multiattach is \"<is> True\".",
        ));
    }
    input::opt_boolean("multiattach", v.get("multiattach"))?;
    let image_ref = match v.get("imageRef") {
        Some(r) => input::opt_string("imageRef", Some(r), 255)?,
        None => input::opt_string("image_id", v.get("image_id"), 255)?,
    }
    .filter(|s| !s.is_empty())
    .map(|s| {
        s.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&s)
            .to_string()
    });
    let group_id = if ctx.mv.at_least(13) {
        input::opt_string("group_id", v.get("group_id"), 255)?.filter(|s| !s.is_empty())
    } else {
        None
    };
    let backup_id = if ctx.mv.at_least(47) {
        input::opt_uuid("backup_id", v.get("backup_id"))?
    } else {
        None
    };
    if let Some(az) = v.get("availability_zone") {
        if let Value::String(s) = az {
            if s.is_empty() || s.len() > 255 {
                return Err(input::invalid("availability_zone", "Invalid length."));
            }
        } else if !az.is_null() {
            return Err(input::invalid("availability_zone", "It must be a string."));
        }
    }
    input::opt_uuid("consistencygroup_id", v.get("consistencygroup_id"))?;
    Ok(CreateVolume {
        size: input::opt_size("size", v.get("size"))?,
        name,
        description,
        volume_type: input::opt_string("volume_type", v.get("volume_type"), 255)?
            .filter(|s| !s.is_empty()),
        availability_zone: input::opt_string("availability_zone", v.get("availability_zone"), 255)?,
        snapshot_id: input::opt_uuid("snapshot_id", v.get("snapshot_id"))?,
        source_volid: input::opt_uuid("source_volid", v.get("source_volid"))?,
        image_ref,
        metadata: input::metadata("metadata", v.get("metadata"), true)?,
        group_id,
        backup_id,
    })
}

/// The image properties a volume made from it carries (`volume_image_metadata`).
fn image_metadata(boot: &BootImage) -> BTreeMap<String, String> {
    let i = &boot.image;
    let mut m = BTreeMap::new();
    m.insert("image_id".into(), i.id.to_string());
    if let Some(n) = &i.name {
        m.insert("image_name".into(), n.clone());
    }
    if let Some(c) = &i.checksum {
        m.insert("checksum".into(), c.clone());
    }
    if let Some(f) = &i.disk_format {
        m.insert("disk_format".into(), f.clone());
    }
    if let Some(f) = &i.container_format {
        m.insert("container_format".into(), f.clone());
    }
    m.insert("min_disk".into(), i.min_disk.to_string());
    m.insert("min_ram".into(), i.min_ram.to_string());
    if let Some(s) = i.size {
        m.insert("size".into(), s.to_string());
    }
    for (k, v) in &i.properties {
        if !["os_glance_import_task", "os_glance_stores"].contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

fn gib_ceil(bytes: i64) -> i64 {
    let b = bytes.max(0) as u64;
    b.div_ceil(GIB) as i64
}

impl VolumeService {
    /// A volume the caller may see: its project's (any, for admins), else a 404.
    pub(crate) async fn visible_volume(&self, ctx: &Ctx, id: &str) -> Result<VolumeRow> {
        require_reader(ctx, "volume:get")?;
        let row = {
            let mut conn = self.read().await?;
            store::volumes::get(&mut conn, id).await?
        };
        match row {
            Some(v) if ctx.admin() || ctx.caller.project_id() == Some(v.project_id.as_str()) => {
                Ok(v)
            }
            _ => Err(volume_not_found(id)),
        }
    }

    pub async fn load_volume(&self, id: &str) -> Result<Option<VolumeRow>> {
        let mut conn = self.read().await?;
        store::volumes::get(&mut conn, id).await
    }

    /// A volume's wire view.
    pub(crate) async fn volume_view(
        &self,
        ctx: &Ctx,
        v: &VolumeRow,
        shape: VolumeShape,
    ) -> Result<Value> {
        let (attachments, vtype) = {
            let mut conn = self.read().await?;
            let a = store::attachments::of_volume(&mut conn, &v.id).await?;
            let t = match &v.type_id {
                Some(t) => store::types::get(&mut conn, t).await?,
                None => None,
            };
            (a, t)
        };
        let host = self.settings.volume_host();
        Ok(views::volume(
            ctx,
            v,
            &VolumeExtras {
                attachments: &attachments,
                volume_type: vtype.as_ref(),
                volume_host: &host,
            },
            shape,
        ))
    }

    /// Applies `change` to the volume inside a write transaction; `None` when it is gone.
    pub(crate) async fn modify_volume<F>(&self, id: &str, change: F) -> Result<Option<VolumeRow>>
    where
        F: FnOnce(&mut VolumeRow) -> Result<()>,
    {
        let mut tx = self.write().await?;
        let Some(mut row) = store::volumes::get(&mut tx, id).await? else {
            return Ok(None);
        };
        change(&mut row)?;
        row.updated_at = Some(now());
        store::volumes::update(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    // ----- create -----

    /// `POST /volumes`: checks the request and the quota, records the volume (`creating`) and
    /// starts making its data. Answers the volume as recorded.
    pub async fn create_volume(
        self: &Arc<Self>,
        ctx: &Ctx,
        req: CreateVolume,
    ) -> Result<VolumeRow> {
        require_member(ctx, "volume:create")?;
        let project = ctx.project()?.to_string();
        if req.backup_id.is_some() {
            return Err(Error::bad_request(
                "Invalid input received: creating a volume from a backup is not available (no backup service).",
            ));
        }
        let sources = [
            req.snapshot_id.is_some(),
            req.source_volid.is_some(),
            req.image_ref.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources > 1 {
            return Err(Error::bad_request(
                "Invalid input received: only one of snapshot_id, source_volid and imageRef may be given.",
            ));
        }
        // The source.
        let origin = if let Some(sid) = &req.snapshot_id {
            let snap = self.visible_snapshot(ctx, sid).await.map_err(|e| {
                if e.is_not_found() {
                    snapshot_not_found(sid)
                } else {
                    e
                }
            })?;
            if snap.status != "available" {
                return Err(Error::bad_request(format!(
                    "Invalid snapshot: Originating snapshot status must be one of 'available' values (snapshot {sid} is {})",
                    snap.status
                )));
            }
            Origin::Snapshot(snap)
        } else if let Some(vid) = &req.source_volid {
            let src = self.visible_volume(ctx, vid).await?;
            if !["available", "in-use"].contains(&src.status.as_str()) || src.store_name.is_none() {
                return Err(invalid_volume(format!(
                    "Source volume {vid} status must be available or in-use, not {}.",
                    src.status
                )));
            }
            Origin::Volume(src)
        } else if let Some(image) = &req.image_ref {
            match self.image.image_for_boot(&ctx.caller, &ImageId(image.clone())).await {
                Ok(b) => Origin::Image(b),
                Err(e) if e.is_not_found() => {
                    return Err(Error::not_found(format!("Image {image} could not be found.")))
                }
                Err(e) if e.status == http::StatusCode::CONFLICT => {
                    return Err(Error::bad_request(format!(
                        "Invalid image identifier or unable to access requested image: image {image} is not active."
                    )))
                }
                Err(e) => return Err(Error::bad_request(e.message)),
            }
        } else {
            Origin::Empty
        };
        // The size.
        let size = match (&req.size, &origin) {
            (Some(s), _) => *s,
            (None, Origin::Snapshot(s)) => s.size,
            (None, Origin::Volume(v)) => v.size,
            (None, Origin::Image(b)) => {
                let bytes = b.image.virtual_size.or(b.image.size).unwrap_or(0);
                gib_ceil(bytes).max(b.image.min_disk).max(1)
            }
            (None, Origin::Empty) => {
                return Err(input::invalid(
                    "size",
                    "A size is required unless the volume is made from a snapshot, a volume or an image.",
                ))
            }
        };
        match &origin {
            Origin::Snapshot(s) if size < s.size => {
                return Err(Error::bad_request(format!(
                    "Invalid input received: Volume size '{size}'GB cannot be smaller than the snapshot size {}GB. They must be >= original snapshot size.",
                    s.size
                )))
            }
            Origin::Volume(v) if size < v.size => {
                return Err(Error::bad_request(format!(
                    "Invalid input received: Volume size '{size}'GB cannot be smaller than original volume size {}GB. They must be >= original volume size.",
                    v.size
                )))
            }
            Origin::Image(b) => {
                let image_gb = gib_ceil(b.image.virtual_size.or(b.image.size).unwrap_or(0));
                if image_gb > size {
                    return Err(Error::bad_request(format!(
                        "Invalid input received: Size of specified image {image_gb}GB is larger than volume size {size}GB."
                    )));
                }
                if b.image.min_disk > size {
                    return Err(Error::bad_request(format!(
                        "Invalid input received: Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
                        b.image.min_disk
                    )));
                }
            }
            _ => {}
        }
        // The type: asked for, else the source's, else the default.
        let vtype: TypeRow = match &req.volume_type {
            Some(t) => self.usable_type(ctx, t).await?,
            None => {
                let inherited = match &origin {
                    Origin::Snapshot(s) => self
                        .load_volume(&s.volume_id)
                        .await?
                        .and_then(|v| v.type_id),
                    Origin::Volume(v) => v.type_id.clone(),
                    _ => None,
                };
                match inherited {
                    Some(t) => match self.type_by_id(&t).await? {
                        Some(t) => t,
                        None => self.default_type_for(&project).await?,
                    },
                    None => self.default_type_for(&project).await?,
                }
            }
        };
        if self.type_is_encrypted(&vtype.id).await? {
            return Err(Error::bad_request(format!(
                "Invalid volume type: volume type {} is encrypted, and encrypted volumes need a key manager, which this cloud does not run.",
                vtype.name
            )));
        }
        // The availability zone.
        let az = match &req.availability_zone {
            Some(az) if az != &self.settings.availability_zone => {
                return Err(Error::bad_request(format!(
                    "Invalid input received: Availability zone '{az}' is invalid."
                )))
            }
            _ => self.settings.availability_zone.clone(),
        };
        // The group.
        if let Some(g) = &req.group_id {
            let group = self.visible_group(ctx, g).await?;
            if !group.volume_types.contains(&vtype.id) {
                return Err(Error::bad_request(format!(
                    "Invalid input received: volume type {} is not one of group {g}'s types.",
                    vtype.name
                )));
            }
            if group.status != "available" {
                return Err(Error::bad_request(format!(
                    "Invalid group: group {g} is {}.",
                    group.status
                )));
            }
        }
        let multiattach = vtype
            .extra_specs
            .get("multiattach")
            .is_some_and(|v| v.to_ascii_lowercase().contains("true"));
        let (bootable, image_meta, image_id) = match &origin {
            Origin::Image(b) => (true, image_metadata(b), Some(b.image.id.to_string())),
            Origin::Snapshot(s) => match self.load_volume(&s.volume_id).await? {
                Some(v) => (v.bootable, v.image_metadata, None),
                None => (false, BTreeMap::new(), None),
            },
            Origin::Volume(v) => (v.bootable, v.image_metadata.clone(), None),
            Origin::Empty => (false, BTreeMap::new(), None),
        };
        let now = now();
        let row = VolumeRow {
            id: nubo_common::ids::new_uuid(),
            project_id: project.clone(),
            user_id: ctx.caller.user_id.clone(),
            name: req.name.clone(),
            description: req.description.clone(),
            size,
            status: "creating".into(),
            previous_status: None,
            attach_status: "detached".into(),
            migration_status: None,
            availability_zone: az,
            type_id: Some(vtype.id.clone()),
            snapshot_id: req.snapshot_id.clone(),
            source_volid: req.source_volid.clone(),
            image_id,
            group_id: req.group_id.clone(),
            bootable,
            readonly: false,
            multiattach,
            metadata: req.metadata.clone(),
            image_metadata: image_meta,
            store_name: None,
            old_store_names: Vec::new(),
            use_quota: true,
            created_at: now.clone(),
            updated_at: None,
            launched_at: None,
        };
        let mut tx = self.write().await?;
        self.check_volume_quota(&mut tx, &project, &vtype, 1, size)
            .await?;
        store::volumes::insert(&mut tx, &row).await?;
        tx.commit().await?;
        tracing::info!(volume_id = %row.id, size, "volume creating");
        let this = self.clone();
        let id = row.id.clone();
        let request_id = ctx.request_id.clone();
        self.spawn(async move {
            this.make_volume_data(&id, size, origin, &request_id).await;
        });
        Ok(row)
    }

    /// Makes the data of a `creating` volume and records the outcome (`available`, or `error`
    /// with nothing left behind).
    pub(crate) async fn make_volume_data(
        &self,
        id: &str,
        size: i64,
        origin: Origin,
        request_id: &str,
    ) {
        let started = std::time::Instant::now();
        let name = volume_object(id);
        let outcome = async {
            let _guard = self.lock_volume(id).await;
            // The scheduler's capabilities filter: a type asking for what the backend lacks.
            if let Some(reason) = self.unschedulable(id).await? {
                return Err(Error::bad_request(reason).with_kind("NoValidBackend"));
            }
            self.injected(Step::CreateData)?;
            let bytes = size as u64 * GIB;
            match &origin {
                Origin::Empty => {
                    self.store
                        .create_volume(&name, bytes)
                        .await
                        .map_err(|e| store_error("create volume", e))?;
                }
                Origin::Image(b) => {
                    self.store
                        .create_clone(&b.source(), &name, Some(bytes))
                        .await
                        .map_err(|e| store_error("clone image", e))?;
                }
                Origin::Snapshot(s) => {
                    let Some(object) = s.store_name.clone() else {
                        return Err(Error::internal(format!("snapshot {} has no data", s.id)));
                    };
                    let source = if s.store_kind == "image" {
                        Source::Image(object)
                    } else {
                        Source::Snapshot(object)
                    };
                    self.store
                        .create_clone(&source, &name, Some(bytes))
                        .await
                        .map_err(|e| store_error("clone snapshot", e))?;
                }
                Origin::Volume(v) => {
                    self.clone_volume_data(v, &name, bytes).await?;
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        let outcome = match outcome {
            Ok(()) => self.injected(Step::CreateRecord).map(|_| ()),
            Err(e) => Err(e),
        };
        let outcome = match outcome {
            Ok(()) => {
                let name2 = name.clone();
                self.modify_volume(id, move |v| {
                    if v.status == "creating" {
                        v.status = "available".into();
                    }
                    v.store_name = Some(name2);
                    v.launched_at = Some(now());
                    Ok(())
                })
                .await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(_)) => {
                tracing::info!(volume_id = %id, elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "volume available");
            }
            Ok(None) => {
                // Deleted meanwhile (force delete): nothing may stay behind.
                let _ = self.store.delete(&name).await;
            }
            Err(e) => {
                tracing::warn!(volume_id = %id, error = %e, internal = ?e.internal, "creating volume failed, undone");
                if let Err(d) = self.store.delete(&name).await {
                    tracing::warn!(volume_id = %id, error = %d, "removing a half-made volume failed");
                }
                // The message first: whoever sees the status `error` can already read why.
                if let Some(v) = self.load_volume(id).await.ok().flatten() {
                    let (event, text) = if e.kind == "NoValidBackend" {
                        (
                            "VOLUME_VOLUME_001_002",
                            "schedule allocate volume:Could not find any available weighted backend.",
                        )
                    } else {
                        (
                            "VOLUME_VOLUME_001_003",
                            "create volume: Could not create the volume's data.",
                        )
                    };
                    self.record_message(&v.project_id, request_id, "VOLUME", id, event, text)
                        .await;
                }
                let _ = self
                    .modify_volume(id, |v| {
                        v.status = "error".into();
                        v.store_name = None;
                        Ok(())
                    })
                    .await;
            }
        }
    }

    /// A copy-on-write clone of a volume; of a copy of it when a running VM holds it open (the
    /// local block store cannot freeze a disk QEMU writes to).
    pub(crate) async fn clone_volume_data(
        &self,
        src: &VolumeRow,
        name: &str,
        bytes: u64,
    ) -> Result<()> {
        let Some(src_name) = src.store_name.clone() else {
            return Err(invalid_volume(format!("volume {} has no data", src.id)));
        };
        let _src_guard = self.lock_volume(&src.id).await;
        match self
            .store
            .create_clone(&Source::Volume(src_name.clone()), name, Some(bytes))
            .await
        {
            Ok(_) => Ok(()),
            Err(nubo_blockstore::Error::InUse { .. }) => {
                let copy = format!("copy-{}", nubo_common::ids::new_uuid());
                self.live_copy(&src_name, &copy).await?;
                let made = self
                    .store
                    .create_clone(&Source::Image(copy.clone()), name, Some(bytes))
                    .await
                    .map_err(|e| store_error("clone copy", e));
                // The clone keeps the copy's data; the name goes.
                let _ = self.store.delete(&copy).await;
                made.map(|_| ())
            }
            Err(e) => Err(store_error("clone volume", e)),
        }
    }

    /// Copies the guest-visible data of `object` (maybe open in a running VM: a
    /// crash-consistent copy) into the new immutable image object `copy`.
    pub(crate) async fn live_copy(&self, object: &str, copy: &str) -> Result<()> {
        let stream = self
            .exporter()
            .export(&*self.store, object, super::copy::ExportFormat::Raw, true)
            .await?;
        self.store
            .store_image(copy, stream)
            .await
            .map_err(|e| store_error("copy volume", e))?;
        Ok(())
    }

    // ----- delete -----

    /// `DELETE /volumes/{id}` (`cascade` deletes its snapshots too; `force`, admins only,
    /// skips the status check) and `os-force_delete`.
    pub async fn delete_volume(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &str,
        cascade: bool,
        force: bool,
    ) -> Result<()> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume:delete")?;
        if force {
            super::require_admin(ctx, "volume_extension:volume_admin_actions:force_delete")?;
        }
        let mut tx = self.write().await?;
        let Some(mut v) = store::volumes::get(&mut tx, &v.id).await? else {
            return Err(volume_not_found(id));
        };
        let attachments = store::attachments::of_volume(&mut tx, id).await?;
        if force && (v.attach_status == "attached" || !attachments.is_empty()) {
            return Err(invalid_volume(
                "Volume cannot be deleted while in attached state",
            ));
        }
        if !force && (!DELETABLE.contains(&v.status.as_str()) || !attachments.is_empty()) {
            return Err(invalid_volume(format!(
                "Volume {id} status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
            )));
        }
        let snapshots = store::snapshots::of_volume(&mut tx, id).await?;
        if !snapshots.is_empty() {
            if !cascade {
                return Err(invalid_volume(format!(
                    "Volume {id} still has {} dependent snapshots.",
                    snapshots.len()
                )));
            }
            if let Some(s) = snapshots
                .iter()
                .find(|s| !["available", "error"].contains(&s.status.as_str()))
            {
                return Err(invalid_volume(format!(
                    "Snapshot {} is {}: only available or error snapshots can be deleted with their volume.",
                    s.id, s.status
                )));
            }
        }
        if v.group_id.is_some() && !force {
            return Err(invalid_volume(format!(
                "Volume {id} belongs to group {}: remove it from the group first.",
                v.group_id.as_deref().unwrap_or_default()
            )));
        }
        if !store::transfers::of_volume(&mut tx, id).await?.is_empty() && !force {
            return Err(invalid_volume(format!(
                "Volume {id} is awaiting a transfer."
            )));
        }
        v.status = "deleting".into();
        v.updated_at = Some(now());
        store::volumes::update(&mut tx, &v).await?;
        for s in &snapshots {
            let mut s = s.clone();
            s.status = "deleting".into();
            s.updated_at = Some(now());
            store::snapshots::update(&mut tx, &s).await?;
        }
        tx.commit().await?;
        let this = self.clone();
        let id = id.to_string();
        self.spawn(async move {
            this.finish_delete(&id, snapshots).await;
        });
        Ok(())
    }

    /// Removes the data of a `deleting` volume (and of its cascaded snapshots), then the rows.
    /// A failure leaves the volume in `error_deleting` (delete may be retried).
    async fn finish_delete(&self, id: &str, snapshots: Vec<SnapshotRow>) {
        let outcome = async {
            let _guard = self.lock_volume(id).await;
            for s in &snapshots {
                if let Some(object) = &s.store_name {
                    self.store
                        .delete(object)
                        .await
                        .map_err(|e| store_error("delete snapshot", e))?;
                }
                let mut tx = self.write().await?;
                store::snapshots::delete(&mut tx, &s.id).await?;
                tx.commit().await?;
            }
            self.injected(Step::DeleteData)?;
            let Some(v) = self.load_volume(id).await? else {
                return Ok(());
            };
            for object in v.old_store_names.iter().chain(v.store_name.iter()) {
                self.store
                    .delete(object)
                    .await
                    .map_err(|e| store_error("delete volume", e))?;
            }
            // A create still running made nothing yet, or its object is named after the id.
            self.store
                .delete(&volume_object(id))
                .await
                .map_err(|e| store_error("delete volume", e))?;
            let mut tx = self.write().await?;
            store::volumes::delete(&mut tx, id).await?;
            let attachments = store::attachments::of_volume(&mut tx, id).await?;
            for a in attachments {
                store::attachments::delete(&mut tx, &a.id).await?;
            }
            tx.commit().await?;
            Ok::<(), Error>(())
        }
        .await;
        match outcome {
            Ok(()) => tracing::info!(volume_id = %id, "volume deleted"),
            Err(e) => {
                tracing::warn!(volume_id = %id, error = %e, internal = ?e.internal, "deleting volume failed");
                let _ = self
                    .modify_volume(id, |v| {
                        v.status = "error_deleting".into();
                        Ok(())
                    })
                    .await;
            }
        }
    }

    // ----- list, show -----

    pub async fn list_volumes(
        &self,
        ctx: &Ctx,
        mut p: ListParams,
    ) -> Result<(Vec<VolumeRow>, usize, bool)> {
        require_reader(ctx, "volume:get_all")?;
        let project: Option<String> = if ctx.admin() && p.all_tenants {
            p.project_id.clone()
        } else {
            Some(ctx.project()?.to_string())
        };
        let mut rows = {
            let mut conn = self.read().await?;
            store::volumes::list(&mut conn, project.as_deref()).await?
        };
        let types = {
            let mut conn = self.read().await?;
            store::types::list(&mut conn).await?
        };
        if let Some(meta) = p.take("metadata") {
            let want = query::parse_dict(&meta)
                .ok_or_else(|| Error::bad_request(format!("Invalid metadata filter {meta:?}.")))?;
            rows.retain(|v| want.iter().all(|(k, x)| v.metadata.get(k) == Some(x)));
        }
        for key in ["glance_metadata", "image_metadata"] {
            if let Some(meta) = p.take(key) {
                let want = query::parse_dict(&meta)
                    .ok_or_else(|| Error::bad_request(format!("Invalid {key} filter {meta:?}.")))?;
                rows.retain(|v| want.iter().all(|(k, x)| v.image_metadata.get(k) == Some(x)));
            }
        }
        for (key, value) in std::mem::take(&mut p.filters) {
            let (key, like) = match key.strip_suffix('~') {
                Some(k) => (k.to_string(), true),
                None => (key, false),
            };
            let key = match key.as_str() {
                "display_name" => "name".to_string(),
                "display_description" => "description".to_string(),
                _ => key,
            };
            let time = key == "created_at" || key == "updated_at";
            if key == "bootable" {
                let want = query::parse_bool(&value);
                rows.retain(|v| Some(v.bootable) == want);
                continue;
            }
            if key == "volume_type" || key == "volume_type_id" {
                let ids: Vec<&str> = types
                    .iter()
                    .filter(|t| t.id == value || t.name == value)
                    .map(|t| t.id.as_str())
                    .collect();
                rows.retain(|v| v.type_id.as_deref().is_some_and(|t| ids.contains(&t)));
                continue;
            }
            if ![
                "name",
                "description",
                "status",
                "availability_zone",
                "group_id",
                "migration_status",
                "size",
                "created_at",
                "updated_at",
                "user_id",
                "id",
                "snapshot_id",
                "source_volid",
            ]
            .contains(&key.as_str())
            {
                // Cinder ignores filters it does not know for users of older microversions;
                // unknown keys match nothing new either way.
                continue;
            }
            rows.retain(|v| {
                let f = volume_field(v, &key);
                match f {
                    Some(f) => query::matches(&f, &value, like, time),
                    None => false,
                }
            });
        }
        query::sort(&mut rows, &p.sort, VOLUME_SORT_KEYS, |v, k| {
            volume_sort_field(v, k, &types)
        })?;
        let page = query::page(
            rows,
            &p,
            |v| v.id.as_str(),
            |m| Error::not_found(format!("Marker {m} could not be found.")),
        )?;
        Ok((page.items, page.count, page.more))
    }

    pub async fn get_volume(&self, ctx: &Ctx, id: &str) -> Result<VolumeRow> {
        self.visible_volume(ctx, id).await
    }

    /// `GET /volumes/summary` (3.12): count, total size, and (3.36) every metadata key's values.
    pub async fn volume_summary(&self, ctx: &Ctx, all_tenants: bool) -> Result<Value> {
        require_reader(ctx, "volume:get_all")?;
        let project = if ctx.admin() && all_tenants {
            None
        } else {
            Some(ctx.project()?.to_string())
        };
        let rows = {
            let mut conn = self.read().await?;
            store::volumes::list(&mut conn, project.as_deref()).await?
        };
        let mut body = json!({
            "total_count": rows.len(),
            "total_size": rows.iter().map(|v| v.size).sum::<i64>(),
        });
        if ctx.mv.at_least(36) {
            let mut meta: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for v in &rows {
                for (k, x) in &v.metadata {
                    let e = meta.entry(k.clone()).or_default();
                    if !e.contains(x) {
                        e.push(x.clone());
                    }
                }
            }
            body["metadata"] = json!(meta);
        }
        Ok(json!({"volume-summary": body}))
    }

    // ----- update -----

    pub async fn update_volume(&self, ctx: &Ctx, id: &str, body: &Value) -> Result<VolumeRow> {
        let v = self.visible_volume(ctx, id).await?;
        require_member(ctx, "volume:update")?;
        let u = member(body, "volume")?;
        for key in u.keys() {
            if ![
                "name",
                "description",
                "display_name",
                "display_description",
                "metadata",
            ]
            .contains(&key.as_str())
            {
                return Err(input::invalid(key, "This attribute cannot be updated."));
            }
        }
        if ctx.mv.at_least(53) && u.is_empty() {
            return Err(Error::bad_request(
                "Invalid input received: at least one of name, description, display_name, display_description and metadata is required.",
            ));
        }
        let name = match (u.get("name"), u.get("display_name")) {
            (Some(n), _) | (None, Some(n)) => Some(input::opt_name("name", Some(n))?),
            _ => None,
        };
        let description = match (u.get("description"), u.get("display_description")) {
            (Some(d), _) | (None, Some(d)) => Some(input::opt_string("description", Some(d), 255)?),
            _ => None,
        };
        let metadata = match u.get("metadata") {
            Some(m) => Some(input::metadata("metadata", Some(m), false)?),
            None => None,
        };
        if v.status == "maintenance" {
            return Err(invalid_volume(format!("Volume {id} is in maintenance.")));
        }
        self.modify_volume(id, |v| {
            if let Some(n) = name {
                v.name = n;
            }
            if let Some(d) = description {
                v.description = d;
            }
            if let Some(m) = metadata {
                let readonly = v.metadata.get("readonly").cloned();
                v.metadata = m;
                if let Some(r) = readonly {
                    v.metadata.entry("readonly".into()).or_insert(r);
                }
            }
            Ok(())
        })
        .await?
        .ok_or_else(|| volume_not_found(id))
    }
}

/// A volume field as a filter compares it.
fn volume_field(v: &VolumeRow, key: &str) -> Option<String> {
    Some(match key {
        "id" => v.id.clone(),
        "name" => v.name.clone().unwrap_or_default(),
        "description" => v.description.clone().unwrap_or_default(),
        "status" => v.status.clone(),
        "availability_zone" => v.availability_zone.clone(),
        "group_id" => v.group_id.clone().unwrap_or_default(),
        "migration_status" => v.migration_status.clone().unwrap_or_default(),
        "size" => v.size.to_string(),
        "created_at" => v.created_at.clone(),
        "updated_at" => v.updated_at.clone().unwrap_or_default(),
        "user_id" => v.user_id.clone(),
        "snapshot_id" => v.snapshot_id.clone().unwrap_or_default(),
        "source_volid" => v.source_volid.clone().unwrap_or_default(),
        _ => return None,
    })
}

/// The keys volumes sort by.
const VOLUME_SORT_KEYS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "description",
    "display_description",
    "status",
    "size",
    "availability_zone",
    "created_at",
    "updated_at",
    "bootable",
    "project_id",
    "user_id",
    "volume_type",
    "volume_type_id",
    "attach_status",
    "multiattach",
    "group_id",
    "migration_status",
    "snapshot_id",
    "source_volid",
];

/// A volume field as sorting compares it (numbers padded).
fn volume_sort_field(v: &VolumeRow, key: &str, types: &[TypeRow]) -> String {
    match key {
        "size" => format!("{:012}", v.size),
        "display_name" => v.name.clone().unwrap_or_default(),
        "display_description" => v.description.clone().unwrap_or_default(),
        "bootable" => v.bootable.to_string(),
        "project_id" => v.project_id.clone(),
        "volume_type" | "volume_type_id" => {
            let t = v.type_id.clone().unwrap_or_default();
            if key == "volume_type" {
                types
                    .iter()
                    .find(|x| x.id == t)
                    .map(|x| x.name.clone())
                    .unwrap_or(t)
            } else {
                t
            }
        }
        "attach_status" => v.attach_status.clone(),
        "multiattach" => v.multiattach.to_string(),
        k => volume_field(v, k).unwrap_or_default(),
    }
}

/// The capabilities the one backend reports, as the scheduler's filter compares them with a
/// volume type's extra specs (`capabilities:` scope or none).
pub(crate) const BACKEND_VENDOR: &str = "Nubo";
pub(crate) const BACKEND_PROTOCOL: &str = "file";

/// Compares a spec value (maybe with an operator: `<is>`, `<in>`, `s==`, `==`) with a
/// capability.
fn spec_matches(spec: &str, capability: &str) -> bool {
    let s = spec.trim();
    let (op, want) = match s.split_once(' ') {
        Some((op, rest)) if op.starts_with('<') || op.contains("==") || op.contains("!=") => {
            (op, rest.trim())
        }
        _ => ("", s),
    };
    match op {
        "<in>" => capability.to_lowercase().contains(&want.to_lowercase()),
        "s!=" | "!=" => !want.eq_ignore_ascii_case(capability),
        "<or>" => want
            .split("<or>")
            .any(|w| w.trim().eq_ignore_ascii_case(capability)),
        _ => want.eq_ignore_ascii_case(capability),
    }
}

impl VolumeService {
    /// Why no backend can hold the volume (its type asks for another backend, vendor or
    /// protocol), or `None`.
    pub(crate) async fn unschedulable(&self, volume_id: &str) -> Result<Option<String>> {
        let Some(v) = self.load_volume(volume_id).await? else {
            return Ok(None);
        };
        let Some(t) = (match &v.type_id {
            Some(t) => self.type_by_id(t).await?,
            None => None,
        }) else {
            return Ok(None);
        };
        let capabilities = [
            ("volume_backend_name", self.settings.backend_name.as_str()),
            ("vendor_name", BACKEND_VENDOR),
            ("storage_protocol", BACKEND_PROTOCOL),
        ];
        for (key, value) in &t.extra_specs {
            let key = key.strip_prefix("capabilities:").unwrap_or(key);
            if let Some((_, cap)) = capabilities.iter().find(|(k, _)| *k == key) {
                if !spec_matches(value, cap) {
                    return Ok(Some(format!(
                        "No valid backend was found: volume type {} asks for {key} {value}, the backend has {cap}.",
                        t.name
                    )));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::spec_matches;

    #[test]
    fn capability_specs() {
        assert!(spec_matches("file", "file"));
        assert!(spec_matches("<is> file", "file"));
        assert!(spec_matches("<in> Nub", "Nubo"));
        assert!(!spec_matches("iSCSI", "file"));
        assert!(spec_matches("<or> iSCSI <or> file", "file"));
    }
}
