//! Generic volume groups (3.11-3.20): group types with group specs (admin), groups of volumes
//! (create, update with add/remove volumes, delete with their volumes, create from a group or a
//! group snapshot, reset status), and group snapshots (a snapshot of every volume of a group).
//! Groups are bookkeeping over ordinary volumes and snapshots: a group snapshot's members are
//! taken one after the other (the block store has no atomic multi-volume snapshot).

use std::collections::BTreeMap;
use std::sync::Arc;

use nubo_common::db::is_unique_violation;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::input::{self, member};
use super::query::ListParams;
use super::volumes::CreateVolume;
use super::{now, require_admin, require_member, require_reader, Ctx, VolumeService};
use crate::store;
use crate::store::groups::{GroupRow, GroupSnapshotRow, GroupTypeRow};

fn group_not_found(id: &str) -> Error {
    Error::not_found(format!("Group {id} could not be found."))
}

fn group_type_not_found(id: &str) -> Error {
    Error::not_found(format!("Group type {id} could not be found."))
}

fn group_snapshot_not_found(id: &str) -> Error {
    Error::not_found(format!("GroupSnapshot {id} could not be found."))
}

/// Where a member of a group made from a source comes from: (volume, snapshot, volume type).
type MemberSource = (Option<String>, Option<String>, Option<String>);

/// Every group status (for reset).
const GROUP_STATUSES: &[&str] = &[
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "updating",
    "in-use",
];

impl VolumeService {
    // ----- group types -----

    pub fn group_type_view(&self, ctx: &Ctx, t: &GroupTypeRow) -> Value {
        let mut v = json!({
            "id": t.id,
            "name": t.name,
            "description": t.description,
            "is_public": t.is_public,
        });
        if ctx.admin() {
            v["group_specs"] = json!(t.group_specs);
        }
        v
    }

    pub async fn create_group_type(&self, ctx: &Ctx, body: &Value) -> Result<GroupTypeRow> {
        require_admin(ctx, "group:group_types:create")?;
        let b = member(body, "group_type")?;
        let name = match b.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => {
                n.trim().to_string()
            }
            _ => {
                return Err(input::invalid(
                    "name",
                    "A name of 1 to 255 characters is required.",
                ))
            }
        };
        let t = GroupTypeRow {
            id: nubo_common::ids::new_uuid(),
            name: name.clone(),
            description: input::opt_string("description", b.get("description"), 255)?,
            is_public: input::opt_boolean("is_public", b.get("is_public"))?.unwrap_or(true),
            group_specs: input::metadata("group_specs", b.get("group_specs"), true)?,
            created_at: now(),
        };
        let mut tx = self.write().await?;
        if let Err(e) = store::groups::insert_type(&mut tx, &t).await {
            if is_unique_violation(&e) {
                return Err(Error::conflict(format!(
                    "Group Type {name} already exists."
                )));
            }
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(t)
    }

    /// Group types: admins see every one (or `is_public=true|false` ones), others the public
    /// ones; sorted by `sort` (name, id, created_at...).
    pub async fn list_group_types(&self, ctx: &Ctx, p: &ListParams) -> Result<Vec<GroupTypeRow>> {
        require_reader(ctx, "group:group_types:get_all")?;
        let want_public = p
            .filters
            .iter()
            .rev()
            .find(|(k, _)| k == "is_public")
            .and_then(|(_, v)| super::query::parse_bool(v));
        let mut rows: Vec<GroupTypeRow> = {
            let mut conn = self.read().await?;
            store::groups::list_types(&mut conn).await?
        }
        .into_iter()
        .filter(|t| {
            if ctx.admin() {
                want_public.is_none_or(|w| w == t.is_public)
            } else {
                t.is_public
            }
        })
        .collect();
        super::query::sort(
            &mut rows,
            &p.sort,
            &["id", "name", "created_at", "is_public", "description"],
            |t, k| match k {
                "name" => t.name.clone(),
                "created_at" => t.created_at.clone(),
                "is_public" => t.is_public.to_string(),
                "description" => t.description.clone().unwrap_or_default(),
                _ => t.id.clone(),
            },
        )?;
        let page = super::query::page(
            rows,
            p,
            |t| t.id.as_str(),
            |m| Error::not_found(format!("Marker {m} could not be found.")),
        )?;
        Ok(page.items)
    }

    pub async fn get_group_type(&self, ctx: &Ctx, id: &str) -> Result<GroupTypeRow> {
        require_reader(ctx, "group:group_types:get")?;
        if id == "default" {
            return Err(Error::not_found("Default group type can not be found."));
        }
        let mut conn = self.read().await?;
        match store::groups::get_type(&mut conn, id).await? {
            Some(t) if ctx.admin() || t.is_public => Ok(t),
            _ => Err(group_type_not_found(id)),
        }
    }

    pub async fn update_group_type(
        &self,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<GroupTypeRow> {
        require_admin(ctx, "group:group_types:update")?;
        let b = member(body, "group_type")?;
        let mut tx = self.write().await?;
        let mut t = store::groups::get_type(&mut tx, id)
            .await?
            .ok_or_else(|| group_type_not_found(id))?;
        if let Some(n) = b.get("name") {
            match n {
                Value::String(n) if !n.trim().is_empty() && n.len() <= 255 => {
                    t.name = n.trim().to_string()
                }
                Value::Null => {}
                _ => return Err(input::invalid("name", "Invalid name.")),
            }
        }
        if let Some(d) = b.get("description") {
            t.description = input::opt_string("description", Some(d), 255)?;
        }
        if let Some(p) = input::opt_boolean("is_public", b.get("is_public"))? {
            t.is_public = p;
        }
        if let Err(e) = store::groups::update_type(&mut tx, &t, &now()).await {
            if is_unique_violation(&e) {
                return Err(Error::conflict(format!(
                    "Group Type {} already exists.",
                    t.name
                )));
            }
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(t)
    }

    pub async fn delete_group_type(&self, ctx: &Ctx, id: &str) -> Result<()> {
        require_admin(ctx, "group:group_types:delete")?;
        let mut tx = self.write().await?;
        let t = store::groups::get_type(&mut tx, id)
            .await?
            .ok_or_else(|| group_type_not_found(id))?;
        if store::groups::groups_of_type(&mut tx, &t.id).await? > 0 {
            return Err(Error::bad_request(format!(
                "Target group type {id} is still in use."
            )));
        }
        store::groups::delete_type(&mut tx, &t.id).await?;
        tx.commit().await
    }

    pub async fn group_specs(&self, ctx: &Ctx, id: &str) -> Result<BTreeMap<String, String>> {
        require_admin(ctx, "group:group_types_specs")?;
        let mut conn = self.read().await?;
        Ok(store::groups::get_type(&mut conn, id)
            .await?
            .ok_or_else(|| group_type_not_found(id))?
            .group_specs)
    }

    pub async fn set_group_specs(
        &self,
        ctx: &Ctx,
        id: &str,
        specs: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        require_admin(ctx, "group:group_types_specs")?;
        let mut tx = self.write().await?;
        let mut t = store::groups::get_type(&mut tx, id)
            .await?
            .ok_or_else(|| group_type_not_found(id))?;
        t.group_specs.extend(specs.clone());
        store::groups::update_type(&mut tx, &t, &now()).await?;
        tx.commit().await?;
        Ok(specs)
    }

    pub async fn delete_group_spec(&self, ctx: &Ctx, id: &str, key: &str) -> Result<()> {
        require_admin(ctx, "group:group_types_specs")?;
        let mut tx = self.write().await?;
        let mut t = store::groups::get_type(&mut tx, id)
            .await?
            .ok_or_else(|| group_type_not_found(id))?;
        if t.group_specs.remove(key).is_none() {
            return Err(Error::not_found(format!(
                "Group Type {id} has no specs with key {key}."
            )));
        }
        store::groups::update_type(&mut tx, &t, &now()).await?;
        tx.commit().await
    }

    // ----- groups -----

    pub(crate) async fn visible_group(&self, ctx: &Ctx, id: &str) -> Result<GroupRow> {
        require_reader(ctx, "group:get")?;
        let g = {
            let mut conn = self.read().await?;
            store::groups::get_group(&mut conn, id).await?
        };
        match g {
            Some(g) if ctx.admin() || ctx.caller.project_id() == Some(g.project_id.as_str()) => {
                Ok(g)
            }
            _ => Err(group_not_found(id)),
        }
    }

    pub async fn group_view(&self, ctx: &Ctx, g: &GroupRow, with_volumes: bool) -> Result<Value> {
        let mut v = json!({
            "id": g.id,
            "name": g.name,
            "description": g.description,
            "status": g.status,
            "availability_zone": g.availability_zone,
            "created_at": super::views::wire_time(&g.created_at),
            "group_type": g.group_type_id,
            "volume_types": g.volume_types,
            "group_snapshot_id": g.group_snapshot_id,
            "source_group_id": g.source_group_id,
        });
        if ctx.mv.at_least(25) && with_volumes {
            let mut conn = self.read().await?;
            let vols: Vec<String> = store::volumes::in_group(&mut conn, &g.id)
                .await?
                .into_iter()
                .map(|v| v.id)
                .collect();
            v["volumes"] = json!(vols);
        }
        if ctx.mv.at_least(38) {
            v["replication_status"] = json!(g
                .replication_status
                .clone()
                .unwrap_or_else(|| "disabled".into()));
        }
        Ok(v)
    }

    async fn set_group_status(&self, id: &str, status: &str) -> Result<()> {
        let mut tx = self.write().await?;
        if let Some(mut g) = store::groups::get_group(&mut tx, id).await? {
            g.status = status.to_string();
            g.updated_at = Some(now());
            store::groups::upsert_group(&mut tx, &g).await?;
        }
        tx.commit().await
    }

    pub async fn create_group(self: &Arc<Self>, ctx: &Ctx, body: &Value) -> Result<GroupRow> {
        require_member(ctx, "group:create")?;
        let project = ctx.project()?.to_string();
        let b = member(body, "group")?;
        let group_type = match b.get("group_type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(input::invalid("group_type", "A group type is required.")),
        };
        let t = self.get_group_type(ctx, &group_type).await?;
        let types: Vec<String> = match b.get("volume_types") {
            Some(Value::Array(list)) if !list.is_empty() => {
                let mut out = Vec::new();
                for x in list {
                    let name = x
                        .as_str()
                        .ok_or_else(|| input::invalid("volume_types", "Names or ids expected."))?;
                    out.push(self.usable_type(ctx, name).await?.id);
                }
                out
            }
            _ => {
                return Err(input::invalid(
                    "volume_types",
                    "At least one volume type is required.",
                ))
            }
        };
        if let Some(az) = input::opt_string("availability_zone", b.get("availability_zone"), 255)? {
            if az != self.settings.availability_zone {
                return Err(Error::bad_request(format!(
                    "Invalid input received: Availability zone '{az}' is invalid."
                )));
            }
        }
        let g = GroupRow {
            id: nubo_common::ids::new_uuid(),
            project_id: project.clone(),
            user_id: ctx.caller.user_id.clone(),
            name: input::opt_name("name", b.get("name"))?,
            description: input::opt_string("description", b.get("description"), 255)?,
            status: "available".into(),
            availability_zone: self.settings.availability_zone.clone(),
            group_type_id: t.id.clone(),
            volume_types: types,
            group_snapshot_id: None,
            source_group_id: None,
            replication_status: None,
            created_at: now(),
            updated_at: None,
        };
        let mut tx = self.write().await?;
        self.check_group_quota(&mut tx, &project).await?;
        store::groups::upsert_group(&mut tx, &g).await?;
        tx.commit().await?;
        Ok(g)
    }

    pub async fn list_groups(&self, ctx: &Ctx, all_tenants: bool) -> Result<Vec<GroupRow>> {
        require_reader(ctx, "group:get_all")?;
        let project = if ctx.admin() && all_tenants {
            None
        } else {
            Some(ctx.project()?.to_string())
        };
        let mut conn = self.read().await?;
        store::groups::list_groups(&mut conn, project.as_deref()).await
    }

    pub async fn get_group(&self, ctx: &Ctx, id: &str) -> Result<GroupRow> {
        self.visible_group(ctx, id).await
    }

    pub async fn update_group(&self, ctx: &Ctx, id: &str, body: &Value) -> Result<()> {
        let g = self.visible_group(ctx, id).await?;
        require_member(ctx, "group:update")?;
        let b = member(body, "group")?;
        if b.is_empty() {
            return Err(Error::bad_request(
                "Name, description, add_volumes, and remove_volumes can not be all empty in the request body.",
            ));
        }
        if g.status != "available" {
            return Err(Error::bad_request(format!(
                "Invalid group: group {id} status must be available, but is {}.",
                g.status
            )));
        }
        let split = |k: &str| -> Result<Vec<String>> {
            Ok(input::opt_string(k, b.get(k), 65535)?
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default())
        };
        let add = split("add_volumes")?;
        let remove = split("remove_volumes")?;
        let name = match b.get("name") {
            Some(n) => Some(input::opt_name("name", Some(n))?),
            None => None,
        };
        let description = match b.get("description") {
            Some(d) => Some(input::opt_string("description", Some(d), 255)?),
            None => None,
        };
        let mut tx = self.write().await?;
        for vid in &add {
            let Some(mut v) = store::volumes::get(&mut tx, vid).await? else {
                return Err(Error::bad_request(format!(
                    "Invalid volume: volume {vid} cannot be added to group {id}: it does not exist."
                )));
            };
            if v.project_id != g.project_id
                || v.group_id.is_some()
                || !["available", "in-use"].contains(&v.status.as_str())
                || !v
                    .type_id
                    .as_ref()
                    .is_some_and(|t| g.volume_types.contains(t))
            {
                return Err(Error::bad_request(format!(
                    "Invalid volume: volume {vid} cannot be added to group {id}: it must be available or in-use, of one of the group's types, and in no other group."
                )));
            }
            v.group_id = Some(id.to_string());
            v.updated_at = Some(now());
            store::volumes::update(&mut tx, &v).await?;
        }
        for vid in &remove {
            let Some(mut v) = store::volumes::get(&mut tx, vid).await? else {
                return Err(Error::bad_request(format!(
                    "Invalid volume: volume {vid} does not exist."
                )));
            };
            if v.group_id.as_deref() != Some(id) {
                return Err(Error::bad_request(format!(
                    "Invalid volume: volume {vid} is not in group {id}."
                )));
            }
            v.group_id = None;
            v.updated_at = Some(now());
            store::volumes::update(&mut tx, &v).await?;
        }
        let mut g = store::groups::get_group(&mut tx, id)
            .await?
            .ok_or_else(|| group_not_found(id))?;
        if let Some(n) = name {
            g.name = n;
        }
        if let Some(d) = description {
            g.description = d;
        }
        g.updated_at = Some(now());
        store::groups::upsert_group(&mut tx, &g).await?;
        tx.commit().await
    }

    /// `POST /groups/{id}/action`: `delete`, `reset_status` (3.20, admin), and the replication
    /// verbs (refused: no replication).
    pub async fn group_action(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        let Some((action, args)) = body.as_object().and_then(|o| o.iter().next()) else {
            return Err(Error::bad_request("There is no such action."));
        };
        match action.as_str() {
            "delete" => {
                let delete_volumes =
                    input::opt_boolean("delete-volumes", args.get("delete-volumes"))?
                        .unwrap_or(false);
                self.delete_group(ctx, id, delete_volumes).await?;
                Ok(Value::Null)
            }
            "reset_status" if ctx.mv.at_least(20) => {
                self.visible_group(ctx, id).await?;
                require_admin(ctx, "group:reset_status")?;
                let status = args
                    .get("status")
                    .and_then(Value::as_str)
                    .filter(|s| GROUP_STATUSES.contains(s))
                    .ok_or_else(|| input::invalid("status", "Not a group status."))?;
                self.set_group_status(id, status).await?;
                Ok(Value::Null)
            }
            "enable_replication" | "disable_replication" | "failover_replication" => {
                self.visible_group(ctx, id).await?;
                Err(Error::bad_request(
                    "Invalid group: replication is not configured for this group type.",
                ))
            }
            "list_replication_targets" => {
                self.visible_group(ctx, id).await?;
                Ok(json!({"replication_targets": []}))
            }
            other => Err(Error::bad_request(format!(
                "There is no such action: {other}"
            ))),
        }
    }

    async fn delete_group(
        self: &Arc<Self>,
        ctx: &Ctx,
        id: &str,
        delete_volumes: bool,
    ) -> Result<()> {
        let g = self.visible_group(ctx, id).await?;
        require_member(ctx, "group:delete")?;
        let (volumes, snapshots) = {
            let mut conn = self.read().await?;
            (
                store::volumes::in_group(&mut conn, id).await?,
                store::groups::group_snapshots_of(&mut conn, id).await?,
            )
        };
        if !["available", "error", "error_deleting"].contains(&g.status.as_str()) {
            return Err(Error::bad_request(format!(
                "Invalid group: group {id} status must be available or error, but is {}.",
                g.status
            )));
        }
        if snapshots > 0 {
            return Err(Error::bad_request(format!(
                "Invalid group: group {id} has group snapshots."
            )));
        }
        if !volumes.is_empty() && !delete_volumes {
            return Err(Error::bad_request(format!(
                "Invalid group: group {id} still contains volumes. The delete-volumes flag is required to delete it."
            )));
        }
        for v in &volumes {
            if v.attach_status == "attached"
                || !["available", "error", "error_restoring", "error_extending"]
                    .contains(&v.status.as_str())
            {
                return Err(Error::bad_request(format!(
                    "Invalid volume: volume {} in group {id} is {}.",
                    v.id, v.status
                )));
            }
        }
        self.set_group_status(id, "deleting").await?;
        for v in &volumes {
            // Remove it from the group, then delete it as any volume.
            self.modify_volume(&v.id, |v| {
                v.group_id = None;
                Ok(())
            })
            .await?;
            if let Err(e) = self.delete_volume(ctx, &v.id, true, false).await {
                self.set_group_status(id, "error_deleting").await?;
                return Err(e);
            }
        }
        let mut tx = self.write().await?;
        store::groups::delete_group(&mut tx, id).await?;
        tx.commit().await
    }

    /// `POST /groups/action` `create-from-src` (3.14): a group whose volumes are clones of a
    /// group's volumes or of a group snapshot's snapshots.
    pub async fn create_group_from_src(
        self: &Arc<Self>,
        ctx: &Ctx,
        body: &Value,
    ) -> Result<GroupRow> {
        require_member(ctx, "group:create_group_snapshot")?;
        let project = ctx.project()?.to_string();
        let b = member(body, "create-from-src")?;
        let source_group = input::opt_string("source_group_id", b.get("source_group_id"), 255)?;
        let source_snapshot =
            input::opt_string("group_snapshot_id", b.get("group_snapshot_id"), 255)?;
        let (template, sources): (GroupRow, Vec<MemberSource>) =
            match (&source_group, &source_snapshot) {
                (Some(gid), None) => {
                    let g = self.visible_group(ctx, gid).await?;
                    let mut conn = self.read().await?;
                    let vols = store::volumes::in_group(&mut conn, gid).await?;
                    (
                        g,
                        vols.into_iter()
                            .map(|v| (Some(v.id), None, v.type_id))
                            .collect(),
                    )
                }
                (None, Some(sid)) => {
                    let gs = self.visible_group_snapshot(ctx, sid).await?;
                    let g = self.visible_group(ctx, &gs.group_id).await?;
                    let mut conn = self.read().await?;
                    let snaps = store::snapshots::of_group_snapshot(&mut conn, sid).await?;
                    let mut out = Vec::new();
                    for s in snaps {
                        let t = store::volumes::get(&mut conn, &s.volume_id)
                            .await?
                            .and_then(|v| v.type_id);
                        out.push((None, Some(s.id), t));
                    }
                    (g, out)
                }
                _ => {
                    return Err(Error::bad_request(
                        "Invalid input received: exactly one of source_group_id and group_snapshot_id is required.",
                    ))
                }
            };
        let g = GroupRow {
            id: nubo_common::ids::new_uuid(),
            project_id: project.clone(),
            user_id: ctx.caller.user_id.clone(),
            name: input::opt_name("name", b.get("name"))?,
            description: input::opt_string("description", b.get("description"), 255)?,
            status: "creating".into(),
            availability_zone: template.availability_zone.clone(),
            group_type_id: template.group_type_id.clone(),
            volume_types: template.volume_types.clone(),
            group_snapshot_id: source_snapshot.clone(),
            source_group_id: source_group.clone(),
            replication_status: None,
            created_at: now(),
            updated_at: None,
        };
        {
            let mut tx = self.write().await?;
            self.check_group_quota(&mut tx, &project).await?;
            store::groups::upsert_group(&mut tx, &g).await?;
            tx.commit().await?;
        }
        let mut made = Vec::new();
        for (vol, snap, vtype) in sources {
            let req = CreateVolume {
                source_volid: vol,
                snapshot_id: snap,
                volume_type: vtype,
                group_id: None,
                ..CreateVolume::default()
            };
            match self.create_volume(ctx, req).await {
                Ok(v) => {
                    self.modify_volume(&v.id, |x| {
                        x.group_id = Some(g.id.clone());
                        Ok(())
                    })
                    .await?;
                    made.push(v.id)
                }
                Err(e) => {
                    // Undo: the volumes made so far and the group.
                    self.settle().await;
                    for vid in &made {
                        let _ = self
                            .modify_volume(vid, |x| {
                                x.group_id = None;
                                Ok(())
                            })
                            .await;
                        let _ = self.delete_volume(ctx, vid, true, false).await;
                    }
                    let mut tx = self.write().await?;
                    store::groups::delete_group(&mut tx, &g.id).await?;
                    tx.commit().await?;
                    return Err(e);
                }
            }
        }
        let this = self.clone();
        let gid = g.id.clone();
        self.spawn(async move {
            // Available once every member is.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
            loop {
                let statuses: Vec<String> = match this.read().await {
                    Ok(mut conn) => store::volumes::in_group(&mut conn, &gid)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|v| v.status)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                let status = if statuses.iter().any(|s| s == "error") {
                    Some("error")
                } else if statuses.iter().all(|s| s != "creating") {
                    Some("available")
                } else if tokio::time::Instant::now() > deadline {
                    Some("error")
                } else {
                    None
                };
                if let Some(s) = status {
                    let _ = this.set_group_status(&gid, s).await;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        Ok(g)
    }

    // ----- group snapshots -----

    pub(crate) async fn visible_group_snapshot(
        &self,
        ctx: &Ctx,
        id: &str,
    ) -> Result<GroupSnapshotRow> {
        require_reader(ctx, "group:get_group_snapshot")?;
        let g = {
            let mut conn = self.read().await?;
            store::groups::get_group_snapshot(&mut conn, id).await?
        };
        match g {
            Some(g) if ctx.admin() || ctx.caller.project_id() == Some(g.project_id.as_str()) => {
                Ok(g)
            }
            _ => Err(group_snapshot_not_found(id)),
        }
    }

    pub fn group_snapshot_view(&self, g: &GroupSnapshotRow) -> Value {
        json!({
            "id": g.id,
            "name": g.name,
            "description": g.description,
            "status": g.status,
            "group_id": g.group_id,
            "group_type_id": g.group_type_id,
            "created_at": super::views::wire_time(&g.created_at),
        })
    }

    pub async fn create_group_snapshot(
        self: &Arc<Self>,
        ctx: &Ctx,
        body: &Value,
    ) -> Result<GroupSnapshotRow> {
        require_member(ctx, "group:create_group_snapshot")?;
        let b = member(body, "group_snapshot")?;
        let gid = match b.get("group_id") {
            Some(Value::String(g)) => g.clone(),
            _ => return Err(input::invalid("group_id", "A group id is required.")),
        };
        let g = self.visible_group(ctx, &gid).await?;
        if g.status != "available" {
            return Err(Error::bad_request(format!(
                "Invalid group: group {gid} status must be available, but is {}.",
                g.status
            )));
        }
        let volumes = {
            let mut conn = self.read().await?;
            store::volumes::in_group(&mut conn, &gid).await?
        };
        let gs = GroupSnapshotRow {
            id: nubo_common::ids::new_uuid(),
            project_id: g.project_id.clone(),
            group_id: gid.clone(),
            group_type_id: g.group_type_id.clone(),
            name: input::opt_name("name", b.get("name"))?,
            description: input::opt_string("description", b.get("description"), 255)?,
            status: "creating".into(),
            created_at: now(),
        };
        {
            let mut tx = self.write().await?;
            store::groups::upsert_group_snapshot(&mut tx, &gs, &now()).await?;
            tx.commit().await?;
        }
        let mut snaps = Vec::new();
        for v in &volumes {
            match self
                .snapshot_volume(
                    ctx,
                    &v.id,
                    Some(format!("group-snapshot-{}", gs.id)),
                    None,
                    Default::default(),
                    Some(true),
                    Some(gs.id.clone()),
                )
                .await
            {
                Ok(s) => snaps.push(s.id),
                Err(e) => {
                    self.settle().await;
                    for sid in &snaps {
                        let _ = self.delete_snapshot(ctx, sid, true).await;
                    }
                    self.settle().await;
                    let mut tx = self.write().await?;
                    store::groups::delete_group_snapshot(&mut tx, &gs.id).await?;
                    tx.commit().await?;
                    return Err(e);
                }
            }
        }
        let this = self.clone();
        let gsid = gs.id.clone();
        self.spawn(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
            loop {
                let statuses: Vec<String> = match this.read().await {
                    Ok(mut conn) => store::snapshots::of_group_snapshot(&mut conn, &gsid)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|s| s.status)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                let status = if statuses.iter().any(|s| s == "error") {
                    Some("error")
                } else if statuses.iter().all(|s| s != "creating") {
                    Some("available")
                } else if tokio::time::Instant::now() > deadline {
                    Some("error")
                } else {
                    None
                };
                if let Some(s) = status {
                    if let Ok(mut tx) = this.write().await {
                        if let Ok(Some(mut g)) =
                            store::groups::get_group_snapshot(&mut tx, &gsid).await
                        {
                            g.status = s.into();
                            let _ = store::groups::upsert_group_snapshot(&mut tx, &g, &now()).await;
                            let _ = tx.commit().await;
                        }
                    }
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        Ok(gs)
    }

    pub async fn list_group_snapshots(
        &self,
        ctx: &Ctx,
        all_tenants: bool,
    ) -> Result<Vec<GroupSnapshotRow>> {
        require_reader(ctx, "group:get_all_group_snapshots")?;
        let project = if ctx.admin() && all_tenants {
            None
        } else {
            Some(ctx.project()?.to_string())
        };
        let mut conn = self.read().await?;
        store::groups::list_group_snapshots(&mut conn, project.as_deref()).await
    }

    pub async fn get_group_snapshot(&self, ctx: &Ctx, id: &str) -> Result<GroupSnapshotRow> {
        self.visible_group_snapshot(ctx, id).await
    }

    pub async fn delete_group_snapshot(self: &Arc<Self>, ctx: &Ctx, id: &str) -> Result<()> {
        let gs = self.visible_group_snapshot(ctx, id).await?;
        require_member(ctx, "group:delete_group_snapshot")?;
        if !["available", "error", "error_deleting"].contains(&gs.status.as_str()) {
            return Err(Error::bad_request(format!(
                "Invalid group snapshot: group snapshot {id} status must be available or error, but is {}.",
                gs.status
            )));
        }
        let snaps = {
            let mut conn = self.read().await?;
            store::snapshots::of_group_snapshot(&mut conn, id).await?
        };
        {
            let mut tx = self.write().await?;
            let mut g = gs.clone();
            g.status = "deleting".into();
            store::groups::upsert_group_snapshot(&mut tx, &g, &now()).await?;
            for s in &snaps {
                let mut s = s.clone();
                s.status = "deleting".into();
                s.updated_at = Some(now());
                store::snapshots::update(&mut tx, &s).await?;
            }
            tx.commit().await?;
        }
        let this = self.clone();
        let id = id.to_string();
        self.spawn(async move {
            for s in &snaps {
                this.finish_snapshot_delete(&s.id).await;
            }
            if let Ok(mut tx) = this.write().await {
                let _ = store::groups::delete_group_snapshot(&mut tx, &id).await;
                let _ = tx.commit().await;
            }
        });
        Ok(())
    }

    pub async fn reset_group_snapshot_status(
        &self,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<()> {
        let gs = self.visible_group_snapshot(ctx, id).await?;
        require_admin(ctx, "group:reset_group_snapshot_status")?;
        let status = body
            .get("reset_status")
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .filter(|s| {
                [
                    "creating",
                    "available",
                    "deleting",
                    "error",
                    "error_deleting",
                ]
                .contains(s)
            })
            .ok_or_else(|| input::invalid("status", "Not a group snapshot status."))?;
        let mut g = gs;
        g.status = status.into();
        let mut tx = self.write().await?;
        store::groups::upsert_group_snapshot(&mut tx, &g, &now()).await?;
        tx.commit().await
    }
}
