//! The smaller resources: availability zones, services (admins disable and freeze them),
//! hosts, pools and backend capabilities (admin views of the one backend), user messages
//! (3.3), resource filters (3.33), clusters (3.7), worker cleanup (3.24), manageable resources
//! (3.8), log levels (3.32), extensions, and the answers for backups (no backup service runs).

use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::input::{self, member};
use super::query::ListParams;
use super::{now, require_admin, require_reader, Ctx, VolumeService};
use crate::store;
use crate::store::messages::MessageRow;
use crate::store::misc::ServiceRow;

/// The binaries the volume service reports.
pub const BINARIES: &[&str] = &["cinder-scheduler", "cinder-volume"];

fn message_not_found(id: &str) -> Error {
    Error::not_found(format!("Message {id} could not be found."))
}

impl VolumeService {
    /// Records the service rows on first start.
    pub(crate) async fn ensure_services(&self) -> Result<()> {
        let now = now();
        let mut tx = self.write().await?;
        store::misc::ensure_service(&mut tx, "cinder-scheduler", &self.settings.host, &now).await?;
        store::misc::ensure_service(
            &mut tx,
            "cinder-volume",
            &format!("{}@{}", self.settings.host, self.settings.backend_name),
            &now,
        )
        .await?;
        tx.commit().await
    }

    /// Records why an asynchronous operation failed, for the project to read (3.3).
    pub(crate) async fn record_message(
        &self,
        project: &str,
        request_id: &str,
        resource_type: &str,
        resource_uuid: &str,
        event_id: &str,
        text: &str,
    ) {
        let now_t = nubo_common::time::now();
        let expires = now_t
            + chrono::Duration::from_std(self.settings.message_ttl)
                .unwrap_or_else(|_| chrono::Duration::days(30));
        let m = MessageRow {
            id: nubo_common::ids::new_uuid(),
            project_id: project.to_string(),
            request_id: request_id.to_string(),
            resource_type: Some(resource_type.to_string()),
            resource_uuid: Some(resource_uuid.to_string()),
            event_id: event_id.to_string(),
            message_level: "ERROR".into(),
            user_message: text.to_string(),
            created_at: nubo_common::time::to_rfc3339(now_t),
            expires_at: nubo_common::time::to_rfc3339(expires),
        };
        let done = async {
            let mut tx = self.write().await?;
            store::messages::insert(&mut tx, &m).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "recording a user message failed");
        }
    }

    pub fn message_view(&self, ctx: &Ctx, m: &MessageRow) -> Value {
        json!({
            "id": m.id,
            "request_id": m.request_id,
            "message_level": m.message_level,
            "event_id": m.event_id,
            "user_message": m.user_message,
            "resource_type": m.resource_type,
            "resource_uuid": m.resource_uuid,
            "created_at": super::views::wire_time(&m.created_at),
            "guaranteed_until": super::views::wire_time(&m.expires_at),
            "links": super::views::links(ctx, &m.project_id, "messages", &m.id),
        })
    }

    async fn visible_message(&self, ctx: &Ctx, id: &str) -> Result<MessageRow> {
        require_reader(ctx, "message:get")?;
        let m = {
            let mut conn = self.read().await?;
            store::messages::get(&mut conn, id).await?
        };
        match m {
            Some(m) if ctx.admin() || ctx.caller.project_id() == Some(m.project_id.as_str()) => {
                Ok(m)
            }
            _ => Err(message_not_found(id)),
        }
    }

    pub async fn list_messages(&self, ctx: &Ctx, p: &ListParams) -> Result<Vec<MessageRow>> {
        require_reader(ctx, "message:get_all")?;
        let project = if ctx.admin() && p.all_tenants {
            None
        } else {
            Some(ctx.project()?.to_string())
        };
        let mut conn = self.read().await?;
        let rows = store::messages::list(&mut conn, project.as_deref()).await?;
        Ok(rows
            .into_iter()
            .filter(|m| {
                p.filters.iter().all(|(k, v)| match k.as_str() {
                    "resource_uuid" => m.resource_uuid.as_deref() == Some(v.as_str()),
                    "resource_type" => m.resource_type.as_deref() == Some(v.as_str()),
                    "event_id" => &m.event_id == v,
                    "request_id" => &m.request_id == v,
                    "message_level" => &m.message_level == v,
                    _ => true,
                })
            })
            .collect())
    }

    pub async fn get_message(&self, ctx: &Ctx, id: &str) -> Result<MessageRow> {
        self.visible_message(ctx, id).await
    }

    pub async fn delete_message(&self, ctx: &Ctx, id: &str) -> Result<()> {
        self.visible_message(ctx, id).await?;
        super::require_member(ctx, "message:delete")?;
        let mut tx = self.write().await?;
        store::messages::delete(&mut tx, id).await?;
        tx.commit().await
    }

    // ----- availability zones -----

    pub async fn availability_zones(&self, ctx: &Ctx) -> Result<Value> {
        require_reader(ctx, "volume_extension:availability_zone_list")?;
        Ok(json!({"availabilityZoneInfo": [
            {"zoneName": self.settings.availability_zone, "zoneState": {"available": true}}
        ]}))
    }

    // ----- services -----

    fn service_view(&self, ctx: &Ctx, s: &ServiceRow) -> Value {
        let mut v = json!({
            "binary": s.binary,
            "host": s.host,
            "zone": self.settings.availability_zone,
            "status": if s.disabled { "disabled" } else { "enabled" },
            "state": "up",
            "updated_at": super::views::wire_time(&now()),
            "disabled_reason": s.disabled_reason,
        });
        if s.binary == "cinder-volume" {
            v["replication_status"] = json!("disabled");
            v["active_backend_id"] = Value::Null;
            v["frozen"] = json!(s.frozen);
        }
        if ctx.mv.at_least(7) {
            v["cluster"] = Value::Null;
        }
        if ctx.mv.at_least(49) && s.binary == "cinder-volume" {
            v["backend_state"] = json!("up");
        }
        v
    }

    pub async fn list_services(
        &self,
        ctx: &Ctx,
        host: Option<&str>,
        binary: Option<&str>,
    ) -> Result<Vec<Value>> {
        require_admin(ctx, "volume_extension:services:index")?;
        let mut conn = self.read().await?;
        Ok(store::misc::services(&mut conn)
            .await?
            .iter()
            .filter(|s| host.is_none_or(|h| s.host == h || s.host.split('@').next() == Some(h)))
            .filter(|s| binary.is_none_or(|b| s.binary == b))
            .map(|s| self.service_view(ctx, s))
            .collect())
    }

    /// `PUT /os-services/{action}`: enable, disable, disable-log-reason, freeze, thaw,
    /// failover_host, set-log, get-log.
    pub async fn update_service(&self, ctx: &Ctx, action: &str, body: &Value) -> Result<Value> {
        require_admin(ctx, "volume_extension:services:update")?;
        let host = body.get("host").and_then(Value::as_str).map(String::from);
        let binary = body.get("binary").and_then(Value::as_str).map(String::from);
        match action {
            "set-log" if ctx.mv.at_least(32) => return Ok(Value::Null),
            "get-log" if ctx.mv.at_least(32) => {
                let mut conn = self.read().await?;
                let services = store::misc::services(&mut conn).await?;
                let logs: Vec<Value> = services
                    .iter()
                    .map(|s| json!({"binary": s.binary, "host": s.host, "levels": {"cinder": "INFO"}}))
                    .collect();
                return Ok(json!({"log_levels": logs}));
            }
            "freeze" | "thaw" | "failover_host" | "failover" => {
                let host = host.ok_or_else(|| input::invalid("host", "A host is required."))?;
                let mut tx = self.write().await?;
                let services = store::misc::services(&mut tx).await?;
                let Some(mut s) = services.into_iter().find(|s| {
                    s.binary == "cinder-volume"
                        && (s.host == host || s.host.split('@').next() == Some(host.as_str()))
                }) else {
                    return Err(Error::bad_request(format!(
                        "Invalid host: host {host} has no volume service."
                    )));
                };
                if action.starts_with("failover") {
                    return Err(Error::bad_request(
                        "Invalid input received: replication is not configured: there is no backend to fail over to.",
                    ));
                }
                s.frozen = action == "freeze";
                s.updated_at = now();
                store::misc::update_service(&mut tx, &s).await?;
                tx.commit().await?;
                return Ok(Value::Null);
            }
            "enable" | "disable" | "disable-log-reason" => {}
            other => {
                return Err(Error::not_found(format!("Unknown action {other}")));
            }
        }
        let host = host.ok_or_else(|| input::invalid("host", "A host is required."))?;
        let binary = binary
            .or_else(|| {
                body.get("service")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .ok_or_else(|| input::invalid("binary", "A binary is required."))?;
        let reason = if action == "disable-log-reason" {
            match body.get("disabled_reason") {
                Some(Value::String(r)) if !r.trim().is_empty() && r.len() <= 255 => Some(r.clone()),
                _ => {
                    return Err(Error::bad_request(
                        "Disabled reason contains invalid characters or is too long",
                    ))
                }
            }
        } else {
            None
        };
        let mut tx = self.write().await?;
        let services = store::misc::services(&mut tx).await?;
        let Some(mut s) = services
            .into_iter()
            .find(|s| s.binary == binary && s.host == host)
        else {
            return Err(Error::not_found(format!(
                "Service {binary} on host {host} could not be found."
            )));
        };
        s.disabled = action != "enable";
        s.disabled_reason = if s.disabled { reason } else { None };
        s.updated_at = now();
        store::misc::update_service(&mut tx, &s).await?;
        tx.commit().await?;
        let mut out = json!({
            "host": s.host,
            "service": s.binary,
            "binary": s.binary,
            "status": if s.disabled { "disabled" } else { "enabled" },
            "disabled": s.disabled,
        });
        if action != "disable" {
            out["disabled_reason"] = json!(s.disabled_reason);
        }
        Ok(out)
    }

    // ----- hosts, pools, capabilities -----

    pub async fn list_hosts(&self, ctx: &Ctx) -> Result<Vec<Value>> {
        require_admin(ctx, "volume_extension:hosts")?;
        let mut conn = self.read().await?;
        Ok(store::misc::services(&mut conn)
            .await?
            .iter()
            .map(|s| {
                json!({
                    "service-status": if s.disabled { "unavailable" } else { "available" },
                    "service": s.binary,
                    "zone": self.settings.availability_zone,
                    "service-state": if s.disabled { "disabled" } else { "enabled" },
                    "host_name": s.host,
                    "last-update": super::views::wire_time(&now()),
                })
            })
            .collect())
    }

    pub async fn show_host(&self, ctx: &Ctx, host: &str) -> Result<Value> {
        require_admin(ctx, "volume_extension:hosts")?;
        let known = {
            let mut conn = self.read().await?;
            store::misc::services(&mut conn).await?.iter().any(|s| {
                s.binary == "cinder-volume"
                    && (s.host == host || s.host.split('@').next() == Some(host))
            })
        };
        if !known {
            return Err(Error::not_found(format!("Host {host} could not be found.")));
        }
        let rows = {
            let mut conn = self.read().await?;
            store::volumes::list(&mut conn, None).await?
        };
        let snaps = {
            let mut conn = self.read().await?;
            store::snapshots::list(&mut conn, None).await?
        };
        let mut by_project: std::collections::BTreeMap<String, (i64, i64, i64, i64)> =
            Default::default();
        for v in &rows {
            let e = by_project.entry(v.project_id.clone()).or_default();
            e.0 += 1;
            e.1 += v.size;
        }
        for s in &snaps {
            let e = by_project.entry(s.project_id.clone()).or_default();
            e.2 += 1;
            e.3 += s.size;
        }
        let total = by_project.values().fold((0, 0, 0, 0), |a, b| {
            (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
        });
        let resource = |project: &str, t: (i64, i64, i64, i64)| {
            json!({"resource": {
                "volume_count": t.0.to_string(),
                "total_volume_gb": t.1.to_string(),
                "snapshot_count": t.2.to_string(),
                "total_snapshot_gb": t.3.to_string(),
                "project": project,
                "host": host,
            }})
        };
        let mut out = vec![resource("(total)", total)];
        for (p, t) in by_project {
            out.push(resource(&p, t));
        }
        Ok(json!({"host": out}))
    }

    fn pool_name(&self) -> String {
        self.settings.volume_host()
    }

    async fn capabilities_stats(&self) -> Value {
        let (total, free) = match self.store.capacity().await {
            Ok(c) => (
                c.total as f64 / (1u64 << 30) as f64,
                c.free as f64 / (1u64 << 30) as f64,
            ),
            Err(_) => (0.0, 0.0),
        };
        json!({
            "volume_backend_name": self.settings.backend_name,
            "vendor_name": super::volumes::BACKEND_VENDOR,
            "driver_version": env!("CARGO_PKG_VERSION"),
            "storage_protocol": super::volumes::BACKEND_PROTOCOL,
            "total_capacity_gb": (total * 100.0).round() / 100.0,
            "free_capacity_gb": (free * 100.0).round() / 100.0,
            "reserved_percentage": 0,
            "QoS_support": false,
            "updated": super::views::wire_time(&now()),
            "timestamp": super::views::wire_time(&now()),
        })
    }

    pub async fn list_pools(&self, ctx: &Ctx, detail: bool) -> Result<Vec<Value>> {
        require_admin(ctx, "scheduler_extension:scheduler_stats:get_pools")?;
        let mut pool = json!({"name": self.pool_name()});
        if detail {
            pool["capabilities"] = self.capabilities_stats().await;
        }
        Ok(vec![pool])
    }

    pub async fn capabilities(&self, ctx: &Ctx, host: &str) -> Result<Value> {
        require_admin(ctx, "volume_extension:capabilities")?;
        let base = host.split('#').next().unwrap_or(host);
        let ours = format!("{}@{}", self.settings.host, self.settings.backend_name);
        if base != ours && base != self.settings.host {
            return Err(Error::not_found(format!("Host {host} could not be found.")));
        }
        let stats = self.capabilities_stats().await;
        Ok(json!({
            "namespace": format!("OS::Storage::Capabilities::{ours}"),
            "volume_backend_name": self.settings.backend_name,
            "pool_name": self.settings.backend_name,
            "driver_version": stats["driver_version"],
            "storage_protocol": stats["storage_protocol"],
            "vendor_name": stats["vendor_name"],
            "visibility": "pool",
            "display_name": "Nubo local block store",
            "description": "qcow2 copy-on-write volumes on the API host's block store",
            "replication_targets": [],
            "properties": {
                "thin_provisioning": {
                    "title": "Thin Provisioning",
                    "description": "Volumes are thin: copy-on-write qcow2 overlays.",
                    "type": "boolean",
                },
                "compression": {
                    "title": "Compression",
                    "description": "Enables compression.",
                    "type": "boolean",
                },
            },
        }))
    }

    // ----- small fixed answers -----

    pub fn resource_filters(&self, ctx: &Ctx, resource: Option<&str>) -> Result<Value> {
        require_reader(ctx, "volume:get_all")?;
        let all = [
            (
                "volume",
                vec![
                    "name",
                    "status",
                    "metadata",
                    "bootable",
                    "migration_status",
                    "availability_zone",
                    "group_id",
                    "size",
                    "created_at",
                    "updated_at",
                    "volume_type",
                    "image_metadata",
                ],
            ),
            (
                "snapshot",
                vec![
                    "name",
                    "status",
                    "volume_id",
                    "metadata",
                    "availability_zone",
                    "created_at",
                    "updated_at",
                ],
            ),
            ("backup", vec!["name", "status", "volume_id"]),
            ("group", vec![]),
            ("group_snapshot", vec!["status", "group_id"]),
            (
                "attachment",
                vec!["volume_id", "status", "instance_id", "attach_status"],
            ),
            (
                "message",
                vec![
                    "resource_uuid",
                    "resource_type",
                    "event_id",
                    "request_id",
                    "message_level",
                ],
            ),
            ("pool", vec!["name", "volume_type"]),
            ("volume_type", vec!["is_public"]),
        ];
        let filters: Vec<Value> = all
            .iter()
            .filter(|(r, _)| resource.is_none_or(|x| x == *r))
            .map(|(r, f)| json!({"resource": r, "filters": f}))
            .collect();
        Ok(json!({"resource_filters": filters}))
    }

    pub fn require_admin_call(&self, ctx: &Ctx, rule: &str) -> Result<()> {
        require_admin(ctx, rule)
    }

    pub fn backups_unavailable(&self) -> Error {
        Error::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "Service cinder-backup could not be found: this cloud runs no backup service.",
        )
    }

    /// `POST /workers/cleanup` (3.24): nothing is ever left for another node to clean.
    pub fn worker_cleanup(&self, ctx: &Ctx, body: &Value) -> Result<Value> {
        require_admin(ctx, "workers:cleanup")?;
        if !body.is_object() && !body.is_null() {
            return Err(Error::bad_request("Invalid request body."));
        }
        Ok(json!({"cleaning": [], "unavailable": []}))
    }

    pub fn extensions(&self) -> Value {
        let updated = "2026-01-01T00:00:00+00:00";
        let list = [
            ("os-hosts", "Hosts", "Admin-only host administration."),
            (
                "os-vol-tenant-attr",
                "VolumeTenantAttribute",
                "Expose the internal project_id as an attribute of a volume.",
            ),
            ("os-quota-sets", "Quotas", "Quota management support."),
            (
                "os-availability-zone",
                "AvailabilityZones",
                "Describe Availability Zones.",
            ),
            (
                "os-snapshot-actions",
                "SnapshotActions",
                "Enable snapshot manager actions.",
            ),
            (
                "os-volume-actions",
                "VolumeActions",
                "Enable volume actions.",
            ),
            (
                "os-volume-type-access",
                "VolumeTypeAccess",
                "Volume type access support.",
            ),
            (
                "os-volume-transfer",
                "VolumeTransfer",
                "Volume transfer management support.",
            ),
            ("os-types-manage", "TypesManage", "Types manage support."),
            (
                "os-types-extra-specs",
                "TypesExtraSpecs",
                "Type extra specs support.",
            ),
            (
                "os-vol-host-attr",
                "VolumeHostAttribute",
                "Expose host as an attribute of a volume.",
            ),
            (
                "os-vol-mig-status-attr",
                "VolumeMigStatusAttribute",
                "Expose migration_status as an attribute of a volume.",
            ),
            (
                "os-vol-image-meta",
                "VolumeImageMetadata",
                "Show image metadata associated with the volume.",
            ),
            (
                "os-used-limits",
                "UsedLimits",
                "Provide data on limited resources that are being used.",
            ),
            (
                "os-extended-snapshot-attributes",
                "ExtendedSnapshotAttributes",
                "Extended SnapshotAttributes support.",
            ),
            ("os-admin-actions", "AdminActions", "Enable admin actions."),
            ("os-services", "Services", "Services support."),
            (
                "os-extended-services",
                "ExtendedServices",
                "Extended services support.",
            ),
            (
                "scheduler-stats",
                "Scheduler_stats",
                "Scheduler stats support.",
            ),
            ("capabilities", "Capabilities", "Capabilities support."),
            ("qos-specs", "Qos_specs_manage", "QoS specs support."),
            (
                "os-quota-class-sets",
                "QuotaClasses",
                "Quota classes management support.",
            ),
            (
                "encryption",
                "VolumeTypeEncryption",
                "Encryption support for volume types.",
            ),
        ];
        json!({"extensions": list.iter().map(|(alias, name, description)| json!({
            "alias": alias, "name": name, "description": description, "links": [], "updated": updated,
        })).collect::<Vec<_>>()})
    }

    /// `GET /manageable_volumes` and `/manageable_snapshots` (3.8): every object of the block
    /// store belongs to Nubo already; nothing is manageable.
    pub fn manageable(&self, ctx: &Ctx, key: &str) -> Result<Value> {
        require_admin(ctx, "volume_extension:list_manageable")?;
        Ok(json!({key: []}))
    }

    pub fn manage_refused(&self, ctx: &Ctx, body: &Value, key: &str) -> Result<()> {
        require_admin(ctx, "volume_extension:volume_manage")?;
        member(body, key)?;
        Err(Error::bad_request(
            "Invalid input received: nothing in Nubo's block store exists outside Nubo: there is nothing to manage.",
        ))
    }
}
