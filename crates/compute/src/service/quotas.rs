//! Quotas (`os-quota-sets`) and limits (`/limits`): defaults from `[compute]`, per-project
//! overrides by admins, usage counted from the servers and keypairs that exist.

use std::collections::BTreeMap;

use nubo_common::config::ComputeConfig;
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Map, Value};

use super::{require_admin, require_reader, ComputeService};
use crate::microversion::Microversion;
use crate::store;

/// Default limits per project.
#[derive(Debug, Clone)]
pub struct QuotaDefaults(pub BTreeMap<String, i64>);

/// Every resource Nova has had, with the microversion range it is shown in.
const RESOURCES: &[(&str, u32, u32)] = &[
    ("instances", 1, u32::MAX),
    ("cores", 1, u32::MAX),
    ("ram", 1, u32::MAX),
    ("floating_ips", 1, 35),
    ("fixed_ips", 1, 35),
    ("metadata_items", 1, u32::MAX),
    ("injected_files", 1, 56),
    ("injected_file_content_bytes", 1, 56),
    ("injected_file_path_bytes", 1, 56),
    ("key_pairs", 1, u32::MAX),
    ("security_groups", 1, 35),
    ("security_group_rules", 1, 35),
    ("server_groups", 1, u32::MAX),
    ("server_group_members", 1, u32::MAX),
];

impl QuotaDefaults {
    pub fn from_config(c: &ComputeConfig) -> QuotaDefaults {
        let mut m = BTreeMap::new();
        m.insert("instances".into(), c.quota_instances);
        m.insert("cores".into(), c.quota_cores);
        m.insert("ram".into(), c.quota_ram);
        m.insert("floating_ips".into(), -1);
        m.insert("fixed_ips".into(), -1);
        m.insert("metadata_items".into(), c.quota_metadata_items);
        m.insert("injected_files".into(), 5);
        m.insert("injected_file_content_bytes".into(), 10240);
        m.insert("injected_file_path_bytes".into(), 255);
        m.insert("key_pairs".into(), c.quota_key_pairs);
        m.insert("security_groups".into(), -1);
        m.insert("security_group_rules".into(), -1);
        m.insert("server_groups".into(), c.quota_server_groups);
        m.insert("server_group_members".into(), c.quota_server_group_members);
        QuotaDefaults(m)
    }
}

fn shown(mv: Microversion) -> impl Iterator<Item = &'static str> {
    let minor = mv.0 .1;
    RESOURCES
        .iter()
        .filter(move |(_, lo, hi)| minor >= *lo && minor <= *hi)
        .map(|(name, _, _)| *name)
}

impl ComputeService {
    /// The effective limits of a project.
    pub(crate) async fn limits_of(&self, project: &str) -> Result<BTreeMap<String, i64>> {
        let mut limits = self.class_defaults().await?;
        limits.extend(store::quotas::of_project(&self.db, project).await?);
        Ok(limits)
    }

    pub(crate) async fn quota_limit(&self, project: &str, resource: &str) -> Result<i64> {
        Ok(self
            .limits_of(project)
            .await?
            .get(resource)
            .copied()
            .unwrap_or(-1))
    }

    /// Usage of a project: instances, cores, ram, key_pairs (of the caller), server groups.
    async fn usage_of(&self, project: &str, user: &str) -> Result<BTreeMap<String, i64>> {
        let (instances, cores, ram, groups) = {
            let mut conn = self.read().await?;
            let (i, c, r) = store::servers::project_usage(&mut conn, project).await?;
            (
                i,
                c,
                r,
                store::server_groups::count(&mut conn, project).await?,
            )
        };
        let mut m = BTreeMap::new();
        m.insert("instances".to_string(), instances);
        m.insert("cores".to_string(), cores);
        m.insert("ram".to_string(), ram);
        m.insert("server_groups".to_string(), groups);
        m.insert(
            "key_pairs".to_string(),
            store::keypairs::count(&self.db, user).await?,
        );
        Ok(m)
    }

    fn check_quota_access(&self, caller: &Caller, project: &str) -> Result<()> {
        require_reader(caller)?;
        if caller.is_admin() || caller.project_id() == Some(project) {
            Ok(())
        } else {
            Err(super::policy("os_compute_api:os-quota-sets:show"))
        }
    }

    /// `GET /os-quota-sets/{project}` (and `/detail`, and `/defaults`).
    pub async fn quota_set(
        &self,
        caller: &Caller,
        project: &str,
        mv: Microversion,
        detail: bool,
        defaults: bool,
    ) -> Result<Value> {
        self.check_quota_access(caller, project)?;
        let limits = if defaults {
            self.settings.quotas.0.clone()
        } else {
            self.limits_of(project).await?
        };
        let usage = if detail {
            self.usage_of(project, &caller.user_id).await?
        } else {
            BTreeMap::new()
        };
        let mut body = Map::new();
        body.insert("id".into(), json!(project));
        for name in shown(mv) {
            let limit = limits.get(name).copied().unwrap_or(-1);
            if detail {
                body.insert(
                    name.into(),
                    json!({"limit": limit, "in_use": usage.get(name).copied().unwrap_or(0), "reserved": 0}),
                );
            } else {
                body.insert(name.into(), json!(limit));
            }
        }
        Ok(json!({"quota_set": body}))
    }

    /// `PUT /os-quota-sets/{project}` (admin).
    pub async fn update_quota_set(
        &self,
        caller: &Caller,
        project: &str,
        mv: Microversion,
        body: &Value,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-quota-sets:update")?;
        let set = body
            .get("quota_set")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute quota_set."))?;
        let allowed: Vec<&str> = shown(mv).collect();
        let mut changes = Vec::new();
        for (key, value) in set {
            if key == "force" {
                continue;
            }
            if !allowed.contains(&key.as_str()) {
                return Err(Error::bad_request(format!(
                    "Invalid input for field/attribute quota_set. Additional properties are not allowed ('{key}' was unexpected)"
                )));
            }
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .filter(|n| *n >= -1)
            .ok_or_else(|| {
                Error::bad_request(format!("Invalid input for field/attribute {key}."))
            })?;
            changes.push((key.clone(), n));
        }
        for (key, n) in changes {
            store::quotas::set(&self.db, project, &key, n).await?;
        }
        let mut shown_body = self.quota_set(caller, project, mv, false, false).await?;
        if let Some(q) = shown_body["quota_set"].as_object_mut() {
            q.remove("id");
        }
        Ok(shown_body)
    }

    /// The `default` quota class: the defaults every project starts from.
    pub async fn quota_class_defaults(&self, mv: Microversion, class: &str) -> Result<Value> {
        let defaults = self.class_defaults().await?;
        let mut body = Map::new();
        body.insert("id".into(), json!(class));
        for name in shown(mv) {
            if matches!(
                name,
                "fixed_ips" | "floating_ips" | "security_groups" | "security_group_rules"
            ) && mv.at_least(50)
            {
                continue;
            }
            body.insert(
                name.into(),
                json!(defaults.get(name).copied().unwrap_or(-1)),
            );
        }
        Ok(Value::Object(body))
    }

    /// Defaults, with the overrides an admin made to the `default` class.
    pub(crate) async fn class_defaults(&self) -> Result<BTreeMap<String, i64>> {
        let mut m = self.settings.quotas.0.clone();
        m.extend(store::quotas::of_project(&self.db, "__class_default").await?);
        Ok(m)
    }

    /// `PUT /os-quota-class-sets/{class}` (admin).
    pub async fn update_quota_class(
        &self,
        caller: &Caller,
        mv: Microversion,
        class: &str,
        set: &Value,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-quota-class-sets:update")?;
        let set = set.as_object().ok_or_else(|| {
            Error::bad_request("Invalid input for field/attribute quota_class_set.")
        })?;
        let allowed: Vec<&str> = shown(mv).collect();
        for (key, value) in set {
            if !allowed.contains(&key.as_str()) {
                return Err(Error::bad_request(format!("Invalid input for field/attribute quota_class_set. Additional properties are not allowed ('{key}' was unexpected)")));
            }
            let n = value.as_i64().filter(|n| *n >= -1).ok_or_else(|| {
                Error::bad_request(format!("Invalid input for field/attribute {key}."))
            })?;
            store::quotas::set(&self.db, "__class_default", key, n).await?;
        }
        let mut v = self.quota_class_defaults(mv, class).await?;
        if let Some(o) = v.as_object_mut() {
            o.remove("id");
        }
        Ok(v)
    }

    pub async fn delete_quota_set(&self, caller: &Caller, project: &str) -> Result<()> {
        require_admin(caller, "os_compute_api:os-quota-sets:delete")?;
        store::quotas::clear(&self.db, project).await
    }

    /// `GET /limits` (admins may ask for another project with `tenant_id`).
    pub async fn limits(
        &self,
        caller: &Caller,
        mv: Microversion,
        tenant: Option<&str>,
    ) -> Result<Value> {
        require_reader(caller)?;
        let project = match tenant {
            Some(t) if caller.is_admin() => t.to_string(),
            _ => caller.require_project()?.to_string(),
        };
        let l = self.limits_of(&project).await?;
        let u = self.usage_of(&project, &caller.user_id).await?;
        let get = |m: &BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
        let mut abs = Map::new();
        abs.insert("maxServerMeta".into(), json!(get(&l, "metadata_items")));
        abs.insert("maxTotalKeypairs".into(), json!(get(&l, "key_pairs")));
        abs.insert("maxTotalInstances".into(), json!(get(&l, "instances")));
        abs.insert("maxTotalCores".into(), json!(get(&l, "cores")));
        abs.insert("maxTotalRAMSize".into(), json!(get(&l, "ram")));
        abs.insert("maxServerGroups".into(), json!(get(&l, "server_groups")));
        abs.insert(
            "maxServerGroupMembers".into(),
            json!(get(&l, "server_group_members")),
        );
        abs.insert("totalCoresUsed".into(), json!(get(&u, "cores")));
        abs.insert("totalRAMUsed".into(), json!(get(&u, "ram")));
        abs.insert("totalInstancesUsed".into(), json!(get(&u, "instances")));
        abs.insert(
            "totalServerGroupsUsed".into(),
            json!(get(&u, "server_groups")),
        );
        if !mv.at_least(36) {
            abs.insert(
                "maxSecurityGroups".into(),
                json!(get(&l, "security_groups")),
            );
            abs.insert(
                "maxSecurityGroupRules".into(),
                json!(get(&l, "security_group_rules")),
            );
            abs.insert("maxTotalFloatingIps".into(), json!(get(&l, "floating_ips")));
            abs.insert("totalSecurityGroupsUsed".into(), json!(0));
            abs.insert("totalFloatingIpsUsed".into(), json!(0));
        }
        if !mv.at_least(39) {
            abs.insert("maxImageMeta".into(), json!(128));
        }
        if !mv.at_least(57) {
            abs.insert("maxPersonality".into(), json!(get(&l, "injected_files")));
            abs.insert(
                "maxPersonalitySize".into(),
                json!(get(&l, "injected_file_content_bytes")),
            );
        }
        Ok(json!({"limits": {"rate": [], "absolute": abs}}))
    }
}
