//! Quotas and limits: Cinder's resources (`volumes`, `snapshots`, `gigabytes` — volumes and
//! snapshots both count —, `backups`, `backup_gigabytes`, `groups`, `per_volume_gigabytes`,
//! and per type `volumes_<type>`, `snapshots_<type>`, `gigabytes_<type>`), their defaults
//! (`[volume]`, overridden by the `default` quota class), per-project limits, usage, and
//! `GET /limits`. Checks run inside the write transaction that records the new resource, so
//! concurrent creates never overshoot.

use std::collections::BTreeMap;

use nubo_common::config::VolumeConfig;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};
use sqlx::SqliteConnection;

use super::{require_admin, require_reader, Ctx, VolumeService};
use crate::store;
use crate::store::types::TypeRow;

/// The cloud-wide defaults.
#[derive(Debug, Clone)]
pub struct QuotaDefaults {
    pub limits: BTreeMap<String, i64>,
}

/// The resources every quota set lists (besides per-type ones).
pub const RESOURCES: &[&str] = &[
    "volumes",
    "snapshots",
    "gigabytes",
    "backups",
    "backup_gigabytes",
    "groups",
    "per_volume_gigabytes",
];

impl QuotaDefaults {
    pub fn from_config(c: &VolumeConfig) -> QuotaDefaults {
        let limits = [
            ("volumes", c.quota_volumes),
            ("snapshots", c.quota_snapshots),
            ("gigabytes", c.quota_gigabytes),
            ("backups", c.quota_backups),
            ("backup_gigabytes", c.quota_backup_gigabytes),
            ("groups", c.quota_groups),
            ("per_volume_gigabytes", c.quota_per_volume_gigabytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        QuotaDefaults { limits }
    }
}

fn over(resource: &str, message: String) -> Error {
    let _ = resource;
    Error::over_limit(message)
}

impl VolumeService {
    /// Every resource's default limit: config, then the `default` class, for every type.
    async fn defaults(&self, conn: &mut SqliteConnection) -> Result<BTreeMap<String, i64>> {
        let mut limits = self.settings.quotas.limits.clone();
        for t in store::types::list(conn).await? {
            for r in ["volumes", "snapshots", "gigabytes"] {
                limits.insert(format!("{r}_{}", t.name), -1);
            }
        }
        limits.extend(store::misc::quota_class(conn, "default").await?);
        Ok(limits)
    }

    /// A project's limits: the defaults with its own overrides.
    pub(crate) async fn limits_of(
        &self,
        conn: &mut SqliteConnection,
        project: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let mut limits = self.defaults(conn).await?;
        limits.extend(store::misc::quotas_of(conn, project).await?);
        Ok(limits)
    }

    /// A project's usage of every resource.
    async fn usage_of(
        &self,
        conn: &mut SqliteConnection,
        project: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let mut usage = BTreeMap::new();
        let (vn, vgb) = store::volumes::usage(conn, project, None).await?;
        let (sn, sgb) = store::snapshots::usage(conn, project, None).await?;
        usage.insert("volumes".to_string(), vn);
        usage.insert("snapshots".to_string(), sn);
        usage.insert("gigabytes".to_string(), vgb + sgb);
        usage.insert("backups".to_string(), 0);
        usage.insert("backup_gigabytes".to_string(), 0);
        usage.insert("per_volume_gigabytes".to_string(), 0);
        let groups = store::groups::list_groups(conn, Some(project)).await?.len() as i64;
        usage.insert("groups".to_string(), groups);
        for t in store::types::list(conn).await? {
            let (vn, vgb) = store::volumes::usage(conn, project, Some(&t.id)).await?;
            let (sn, sgb) = store::snapshots::usage(conn, project, Some(&t.id)).await?;
            usage.insert(format!("volumes_{}", t.name), vn);
            usage.insert(format!("snapshots_{}", t.name), sn);
            usage.insert(format!("gigabytes_{}", t.name), vgb + sgb);
        }
        Ok(usage)
    }

    /// Checks that `count` more volumes of `gigabytes` GiB (each) of type `t` fit.
    pub(crate) async fn check_volume_quota(
        &self,
        conn: &mut SqliteConnection,
        project: &str,
        t: &TypeRow,
        count: i64,
        gigabytes: i64,
    ) -> Result<()> {
        let limits = self.limits_of(conn, project).await?;
        let usage = self.usage_of(conn, project).await?;
        let limit = |k: &str| limits.get(k).copied().unwrap_or(-1);
        let used = |k: &str| usage.get(k).copied().unwrap_or(0);
        let per_volume = limit("per_volume_gigabytes");
        if count > 0 && per_volume >= 0 && gigabytes > per_volume {
            return Err(over(
                "per_volume_gigabytes",
                format!(
                    "VolumeSizeExceedsLimit: Requested volume size {gigabytes}G is larger than maximum allowed limit {per_volume}G."
                ),
            ));
        }
        for (gb_key, n_key) in [
            ("gigabytes".to_string(), "volumes".to_string()),
            (
                format!("gigabytes_{}", t.name),
                format!("volumes_{}", t.name),
            ),
        ] {
            let l = limit(&gb_key);
            if l >= 0 && used(&gb_key) + gigabytes * count.max(1) > l {
                return Err(over(
                    &gb_key,
                    format!(
                        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed {gb_key} quota. Requested {}G, quota is {l}G and {}G has been consumed.",
                        gigabytes * count.max(1),
                        used(&gb_key)
                    ),
                ));
            }
            let l = limit(&n_key);
            if count > 0 && l >= 0 && used(&n_key) + count > l {
                return Err(over(
                    &n_key,
                    format!(
                        "VolumeLimitExceeded: Maximum number of volumes allowed ({l}) exceeded for quota '{n_key}'."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks that one more snapshot of `gigabytes` GiB of a volume of type `t` fits.
    pub(crate) async fn check_snapshot_quota(
        &self,
        conn: &mut SqliteConnection,
        project: &str,
        t: Option<&TypeRow>,
        gigabytes: i64,
    ) -> Result<()> {
        let limits = self.limits_of(conn, project).await?;
        let usage = self.usage_of(conn, project).await?;
        let limit = |k: &str| limits.get(k).copied().unwrap_or(-1);
        let used = |k: &str| usage.get(k).copied().unwrap_or(0);
        let mut keys = vec![("snapshots".to_string(), "gigabytes".to_string())];
        if let Some(t) = t {
            keys.push((
                format!("snapshots_{}", t.name),
                format!("gigabytes_{}", t.name),
            ));
        }
        for (n_key, gb_key) in keys {
            let l = limit(&n_key);
            if l >= 0 && used(&n_key) + 1 > l {
                return Err(over(
                    &n_key,
                    format!(
                        "SnapshotLimitExceeded: Maximum number of snapshots allowed ({l}) exceeded for quota '{n_key}'."
                    ),
                ));
            }
            let l = limit(&gb_key);
            if l >= 0 && used(&gb_key) + gigabytes > l {
                return Err(over(
                    &gb_key,
                    format!(
                        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed {gb_key} quota. Requested {gigabytes}G, quota is {l}G and {}G has been consumed.",
                        used(&gb_key)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks that one more group fits.
    pub(crate) async fn check_group_quota(
        &self,
        conn: &mut SqliteConnection,
        project: &str,
    ) -> Result<()> {
        let limits = self.limits_of(conn, project).await?;
        let usage = self.usage_of(conn, project).await?;
        let l = limits.get("groups").copied().unwrap_or(-1);
        if l >= 0 && usage.get("groups").copied().unwrap_or(0) + 1 > l {
            return Err(over(
                "groups",
                format!("GroupLimitExceeded: Maximum number of groups allowed ({l}) exceeded"),
            ));
        }
        Ok(())
    }

    fn may_see_quotas(&self, ctx: &Ctx, project: &str) -> Result<()> {
        require_reader(ctx, "volume_extension:quotas:show")?;
        if ctx.admin() || ctx.caller.project_id() == Some(project) {
            Ok(())
        } else {
            Err(super::policy("volume_extension:quotas:show"))
        }
    }

    /// `GET /os-quota-sets/{project}` (with `usage=true`: `{limit, in_use, reserved}` each).
    pub async fn quota_set(&self, ctx: &Ctx, project: &str, usage: bool) -> Result<Value> {
        self.may_see_quotas(ctx, project)?;
        let mut conn = self.read().await?;
        let limits = self.limits_of(&mut conn, project).await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(project));
        if usage {
            let used = self.usage_of(&mut conn, project).await?;
            for (k, l) in &limits {
                out.insert(
                    k.clone(),
                    json!({"limit": l, "in_use": used.get(k).copied().unwrap_or(0), "reserved": 0}),
                );
            }
        } else {
            for (k, l) in &limits {
                out.insert(k.clone(), json!(l));
            }
        }
        Ok(json!({"quota_set": out}))
    }

    /// `GET /os-quota-sets/{project}/defaults`.
    pub async fn default_quota_set(&self, ctx: &Ctx, project: &str) -> Result<Value> {
        require_reader(ctx, "volume_extension:quotas:show")?;
        let mut conn = self.read().await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(project));
        for (k, l) in self.defaults(&mut conn).await? {
            out.insert(k, json!(l));
        }
        Ok(json!({"quota_set": out}))
    }

    /// Parses `{"quota_set": {...}}` against the known resources.
    async fn parse_limits(
        &self,
        conn: &mut SqliteConnection,
        body: &Value,
        key: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let set = body.get(key).and_then(Value::as_object).ok_or_else(|| {
            Error::bad_request(format!("Missing required element '{key}' in request body."))
        })?;
        let known = self.defaults(conn).await?;
        let mut out = BTreeMap::new();
        for (k, v) in set {
            if k == "tenant_id" || k == "id" {
                continue;
            }
            if !known.contains_key(k) {
                return Err(Error::bad_request(format!("Bad key(s) in quota set: {k}")));
            }
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if n >= -1 && n <= i32::MAX as i64 => {
                    out.insert(k.clone(), n);
                }
                _ => {
                    return Err(Error::bad_request(format!(
                        "Invalid input received: Quota limit {v} for {k} must be an integer of at least -1."
                    )))
                }
            }
        }
        Ok(out)
    }

    /// `PUT /os-quota-sets/{project}` (admin). Limits below the current usage are refused.
    pub async fn update_quota_set(&self, ctx: &Ctx, project: &str, body: &Value) -> Result<Value> {
        require_admin(ctx, "volume_extension:quotas:update")?;
        let mut tx = self.write().await?;
        let changes = self.parse_limits(&mut tx, body, "quota_set").await?;
        let usage = self.usage_of(&mut tx, project).await?;
        for (k, l) in &changes {
            let used = usage.get(k).copied().unwrap_or(0);
            if *l >= 0 && *l < used && k != "per_volume_gigabytes" {
                return Err(Error::bad_request(format!(
                    "Invalid input received: Quota limit {l} for {k} must be equal or greater than existing resources. Current usage is {used}."
                )));
            }
        }
        for (k, l) in &changes {
            store::misc::set_quota(&mut tx, project, k, *l).await?;
        }
        let limits = self.limits_of(&mut tx, project).await?;
        tx.commit().await?;
        Ok(json!({"quota_set": limits}))
    }

    /// `DELETE /os-quota-sets/{project}` (admin): back to the defaults.
    pub async fn delete_quota_set(&self, ctx: &Ctx, project: &str) -> Result<()> {
        require_admin(ctx, "volume_extension:quotas:delete")?;
        let mut tx = self.write().await?;
        store::misc::delete_quotas(&mut tx, project).await?;
        tx.commit().await
    }

    /// `GET /os-quota-class-sets/{class}` (admin).
    pub async fn quota_class_set(&self, ctx: &Ctx, class: &str) -> Result<Value> {
        require_admin(ctx, "volume_extension:quota_classes")?;
        let mut conn = self.read().await?;
        let mut limits = self.defaults(&mut conn).await?;
        if class != "default" {
            limits.extend(store::misc::quota_class(&mut conn, class).await?);
        }
        let mut out = Map::new();
        out.insert("id".into(), json!(class));
        for (k, l) in limits {
            out.insert(k, json!(l));
        }
        Ok(json!({"quota_class_set": out}))
    }

    /// `PUT /os-quota-class-sets/{class}` (admin); the `default` class sets every project's
    /// defaults.
    pub async fn update_quota_class_set(
        &self,
        ctx: &Ctx,
        class: &str,
        body: &Value,
    ) -> Result<Value> {
        require_admin(ctx, "volume_extension:quota_classes")?;
        if class.is_empty() || class.len() > 255 {
            return Err(Error::bad_request("Invalid quota class name."));
        }
        let mut tx = self.write().await?;
        let changes = self.parse_limits(&mut tx, body, "quota_class_set").await?;
        for (k, l) in &changes {
            store::misc::set_quota_class(&mut tx, class, k, *l).await?;
        }
        let mut limits = self.defaults(&mut tx).await?;
        limits.extend(store::misc::quota_class(&mut tx, class).await?);
        tx.commit().await?;
        Ok(json!({"quota_class_set": limits}))
    }

    /// `GET /limits`: the absolute limits and usage of the caller's project (or, for an
    /// admin at 3.39+, of `project_id`).
    pub async fn limits(&self, ctx: &Ctx, project: Option<&str>) -> Result<Value> {
        require_reader(ctx, "limits_extension:used_limits")?;
        let own = ctx.project()?.to_string();
        let project = match project {
            Some(p) if ctx.admin() && ctx.mv.at_least(39) => p.to_string(),
            _ => own,
        };
        let mut conn = self.read().await?;
        let l = self.limits_of(&mut conn, &project).await?;
        let u = self.usage_of(&mut conn, &project).await?;
        let get = |m: &BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
        Ok(json!({"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": get(&l, "volumes"),
            "maxTotalSnapshots": get(&l, "snapshots"),
            "maxTotalVolumeGigabytes": get(&l, "gigabytes"),
            "maxTotalBackups": get(&l, "backups"),
            "maxTotalBackupGigabytes": get(&l, "backup_gigabytes"),
            "totalVolumesUsed": get(&u, "volumes"),
            "totalSnapshotsUsed": get(&u, "snapshots"),
            "totalGigabytesUsed": get(&u, "gigabytes"),
            "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0,
        }}}))
    }
}
