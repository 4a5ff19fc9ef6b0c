//! Wire shapes: what Cinder answers for each resource, per microversion and per role.
//! Field sets follow Cinder's view builders and Tempest's strict response schemas: the
//! extension attributes (`os-vol-host-attr:host`, `os-vol-tenant-attr:tenant_id`,
//! `os-vol-mig-status-attr:*`, `volume_image_metadata`, `os-extended-snapshot-attributes:*`)
//! appear on show and detail only, never on create or update responses.

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::store::attachments::AttachmentRow;
use crate::store::snapshots::SnapshotRow;
use crate::store::types::{QosRow, TypeRow};
use crate::store::volumes::VolumeRow;

/// A stored time as Cinder writes it: `2026-11-25T18:51:37.123456` (no zone).
pub fn wire_time(stored: &str) -> String {
    match nubo_common::time::parse(stored) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        None => stored.to_string(),
    }
}

pub fn wire_time_opt(stored: &Option<String>) -> Value {
    match stored {
        Some(s) => json!(wire_time(s)),
        None => Value::Null,
    }
}

/// `self` and `bookmark` links of a resource.
pub fn links(ctx: &Ctx, project: &str, collection: &str, id: &str) -> Value {
    json!([
        {"href": format!("{}/volume/v3/{project}/{collection}/{id}", ctx.base), "rel": "self"},
        {"href": format!("{}/volume/{project}/{collection}/{id}", ctx.base), "rel": "bookmark"},
    ])
}

/// How much of a volume to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeShape {
    /// `GET /volumes`: id, name, links.
    Summary,
    /// Create and update responses: the detail without extension attributes.
    Plain,
    /// Show and `GET /volumes/detail`: everything the caller may see.
    Detail,
}

/// What a volume view needs besides the row.
pub struct VolumeExtras<'a> {
    pub attachments: &'a [AttachmentRow],
    pub volume_type: Option<&'a TypeRow>,
    pub volume_host: &'a str,
}

pub fn attachment_summary(a: &AttachmentRow, admin: bool) -> Value {
    json!({
        "id": a.volume_id,
        "attachment_id": a.id,
        "volume_id": a.volume_id,
        "server_id": a.instance_uuid,
        "host_name": if admin { json!(a.attached_host) } else { Value::Null },
        "device": a.mountpoint,
        "attached_at": wire_time_opt(&a.attach_time),
    })
}

pub fn volume(ctx: &Ctx, v: &VolumeRow, extras: &VolumeExtras, shape: VolumeShape) -> Value {
    let admin = ctx.admin();
    let links = links(ctx, &v.project_id, "volumes", &v.id);
    if shape == VolumeShape::Summary {
        return json!({"id": v.id, "name": v.name, "links": links});
    }
    let mv = ctx.mv;
    let attachments: Vec<Value> = extras
        .attachments
        .iter()
        .filter(|a| a.attach_status == "attached")
        .map(|a| attachment_summary(a, admin))
        .collect();
    let mut o = Map::new();
    o.insert("id".into(), json!(v.id));
    o.insert("status".into(), json!(v.status));
    o.insert("size".into(), json!(v.size));
    o.insert("availability_zone".into(), json!(v.availability_zone));
    o.insert("created_at".into(), json!(wire_time(&v.created_at)));
    o.insert("updated_at".into(), wire_time_opt(&v.updated_at));
    o.insert("name".into(), json!(v.name));
    o.insert("description".into(), json!(v.description));
    o.insert(
        "volume_type".into(),
        json!(extras.volume_type.map(|t| t.name.clone())),
    );
    o.insert("snapshot_id".into(), json!(v.snapshot_id));
    o.insert("source_volid".into(), json!(v.source_volid));
    o.insert("metadata".into(), json!(v.metadata));
    o.insert("links".into(), links);
    o.insert("user_id".into(), json!(v.user_id));
    o.insert("bootable".into(), json!(v.bootable.to_string()));
    o.insert("encrypted".into(), json!(false));
    o.insert("replication_status".into(), Value::Null);
    o.insert("consistencygroup_id".into(), Value::Null);
    o.insert("multiattach".into(), json!(v.multiattach));
    o.insert("attachments".into(), json!(attachments));
    if admin {
        o.insert("migration_status".into(), json!(v.migration_status));
    }
    if mv.at_least(13) {
        o.insert("group_id".into(), json!(v.group_id));
    }
    if admin && mv.at_least(21) {
        o.insert("provider_id".into(), Value::Null);
    }
    if mv.at_least(48) {
        o.insert("shared_targets".into(), json!(false));
        o.insert("service_uuid".into(), Value::Null);
    }
    if admin && mv.at_least(61) {
        o.insert("cluster_name".into(), Value::Null);
    }
    if mv.at_least(63) {
        o.insert(
            "volume_type_id".into(),
            json!(extras.volume_type.map(|t| t.id.clone())),
        );
    }
    if mv.at_least(65) {
        o.insert("consumes_quota".into(), json!(v.use_quota));
    }
    if shape == VolumeShape::Detail {
        if admin {
            o.insert("os-vol-host-attr:host".into(), json!(extras.volume_host));
            o.insert(
                "os-vol-mig-status-attr:migstat".into(),
                json!(v.migration_status),
            );
            o.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
        }
        o.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
        if !v.image_metadata.is_empty() {
            o.insert("volume_image_metadata".into(), json!(v.image_metadata));
        }
    }
    Value::Object(o)
}

/// How much of a snapshot to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotShape {
    /// Create, update and `GET /snapshots`.
    Plain,
    /// Show and `GET /snapshots/detail`: with the extended attributes.
    Detail,
}

pub fn snapshot(ctx: &Ctx, s: &SnapshotRow, shape: SnapshotShape) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(s.id));
    o.insert("created_at".into(), json!(wire_time(&s.created_at)));
    o.insert("updated_at".into(), wire_time_opt(&s.updated_at));
    o.insert("name".into(), json!(s.name));
    o.insert("description".into(), json!(s.description));
    o.insert("volume_id".into(), json!(s.volume_id));
    o.insert("status".into(), json!(s.status));
    o.insert("size".into(), json!(s.size));
    o.insert("metadata".into(), json!(s.metadata));
    if ctx.mv.at_least(14) {
        o.insert("group_snapshot_id".into(), json!(s.group_snapshot_id));
    }
    if ctx.mv.at_least(41) {
        o.insert("user_id".into(), json!(s.user_id));
    }
    if ctx.mv.at_least(65) {
        o.insert("consumes_quota".into(), json!(s.use_quota));
    }
    if shape == SnapshotShape::Detail {
        o.insert(
            "os-extended-snapshot-attributes:progress".into(),
            json!(s.progress),
        );
        o.insert(
            "os-extended-snapshot-attributes:project_id".into(),
            json!(s.project_id),
        );
    }
    Value::Object(o)
}

/// Extra specs a non-admin may see (Cinder's user visible specs).
pub const USER_VISIBLE_SPECS: &[&str] = &[
    "multiattach",
    "RESKEY:availability_zones",
    "replication_enabled",
];

/// How much of a volume type to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeShape {
    /// Show and list.
    Show,
    /// Create response (no `qos_specs_id`).
    Created,
    /// Update response (no access attribute, no `qos_specs_id`).
    Updated,
}

pub fn volume_type(ctx: &Ctx, t: &TypeRow, shape: TypeShape) -> Value {
    let admin = ctx.admin();
    let specs: serde_json::Map<String, Value> = t
        .extra_specs
        .iter()
        .filter(|(k, _)| admin || USER_VISIBLE_SPECS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut o = Map::new();
    o.insert("id".into(), json!(t.id));
    o.insert("name".into(), json!(t.name));
    o.insert("is_public".into(), json!(t.is_public));
    o.insert("description".into(), json!(t.description));
    o.insert("extra_specs".into(), Value::Object(specs));
    if shape != TypeShape::Updated {
        o.insert("os-volume-type-access:is_public".into(), json!(t.is_public));
    }
    if admin && shape == TypeShape::Show {
        o.insert("qos_specs_id".into(), json!(t.qos_specs_id));
    }
    Value::Object(o)
}

pub fn qos(q: &QosRow) -> Value {
    json!({
        "id": q.id,
        "name": q.name,
        "consumer": q.consumer,
        "specs": q.specs,
    })
}

pub fn qos_links(ctx: &Ctx, q: &QosRow) -> Value {
    json!([
        {"href": format!("{}/volume/v3/qos-specs/{}", ctx.base, q.id), "rel": "self"},
        {"href": format!("{}/volume/qos-specs/{}", ctx.base, q.id), "rel": "bookmark"},
    ])
}

/// Cinder's attachment view (3.27+).
pub fn attachment(a: &AttachmentRow, volume: Option<&VolumeRow>, detail: bool) -> Value {
    let status = a.attach_status.clone();
    let mut o = json!({
        "id": a.id,
        "status": status,
        "instance": a.instance_uuid,
        "volume_id": a.volume_id,
    });
    if detail {
        o["attached_at"] = wire_time_opt(&a.attach_time);
        o["detached_at"] = Value::Null;
        o["attach_mode"] = json!(a.attach_mode);
        o["connection_info"] = connection_info(a, volume);
    }
    o
}

/// What a client needs to reach the volume's data. Nubo's block store is opened by its
/// hypervisors directly; the connection info names the backend and the volume.
pub fn connection_info(a: &AttachmentRow, volume: Option<&VolumeRow>) -> Value {
    if a.connector.is_none() && a.attach_status == "reserved" {
        return json!({});
    }
    json!({
        "driver_volume_type": "nubo",
        "data": {
            "volume_id": a.volume_id,
            "name": volume.and_then(|v| v.store_name.clone()),
            "access_mode": a.attach_mode,
            "attachment_id": a.id,
            "encrypted": false,
            "discard": true,
        },
    })
}
