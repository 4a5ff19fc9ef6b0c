//! Flavors: the defaults (m1.nano .. m1.large, ids 1..6), listing with Nova's visibility rules
//! (public ones, plus private ones a project was given), admin create/delete/update, extra
//! specs and access lists.

use std::collections::BTreeMap;

use nubo_common::{Caller, Error, Result};
use serde_json::{Map, Value};

use super::{now, require_admin, require_reader, ComputeService};
use crate::store;
use crate::store::flavors::FlavorRow;

/// DevStack's flavors, with m1.nano and m1.micro at 128 and 192 MiB (the guest needs 128).
const DEFAULTS: &[(&str, &str, i64, i64, i64)] = &[
    ("1", "m1.nano", 1, 128, 1),
    ("2", "m1.micro", 1, 192, 1),
    ("3", "m1.tiny", 1, 512, 1),
    ("4", "m1.small", 1, 2048, 20),
    ("5", "m1.medium", 2, 4096, 40),
    ("6", "m1.large", 4, 8192, 80),
];

/// Filters of `GET /flavors`.
#[derive(Debug, Clone, Default)]
pub struct FlavorQuery {
    /// `Some(true)` public only (the default), `Some(false)` private only, `None` all.
    pub is_public: Option<bool>,
    pub min_ram: Option<i64>,
    pub min_disk: Option<i64>,
    pub sort_key: Option<String>,
    pub sort_dir: Option<String>,
    pub limit: Option<usize>,
    pub marker: Option<String>,
}

pub(crate) fn flavor_not_found(id: &str) -> Error {
    Error::not_found(format!("Flavor {id} could not be found."))
}

impl ComputeService {
    pub(crate) async fn ensure_default_flavors(&self) -> Result<()> {
        if store::flavors::count(&self.db).await? > 0 {
            return Ok(());
        }
        for (id, name, vcpus, ram, disk) in DEFAULTS {
            let row = FlavorRow {
                id: id.to_string(),
                name: name.to_string(),
                vcpus: *vcpus,
                memory_mb: *ram,
                root_gb: *disk,
                ephemeral_gb: 0,
                swap: 0,
                rxtx_factor: 1.0,
                is_public: true,
                disabled: false,
                description: None,
                extra_specs: BTreeMap::new(),
                created_at: now(),
            };
            if let Err(e) = store::flavors::insert(&self.db, &row).await {
                if !nubo_common::db::is_unique_violation(&e) {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Can `caller` see this flavor? Public ones, private ones shared with its project; admins all.
    async fn can_see_flavor(&self, caller: &Caller, f: &FlavorRow) -> Result<bool> {
        if f.is_public || caller.is_admin() {
            return Ok(true);
        }
        let Some(project) = caller.project_id() else {
            return Ok(false);
        };
        Ok(store::flavors::access_list(&self.db, &f.id)
            .await?
            .iter()
            .any(|p| p == project))
    }

    pub async fn list_flavors(&self, caller: &Caller, q: &FlavorQuery) -> Result<Vec<FlavorRow>> {
        require_reader(caller)?;
        let all = store::flavors::list(&self.db).await?;
        let shared: Vec<String> = match caller.project_id() {
            Some(p) if !caller.is_admin() => store::flavors::accessible(&self.db, p).await?,
            _ => Vec::new(),
        };
        let mut out: Vec<FlavorRow> = all
            .into_iter()
            .filter(|f| {
                if caller.is_admin() {
                    q.is_public.is_none_or(|p| f.is_public == p)
                } else {
                    f.is_public || shared.contains(&f.id)
                }
            })
            .filter(|f| q.min_ram.is_none_or(|m| f.memory_mb >= m))
            .filter(|f| q.min_disk.is_none_or(|m| f.root_gb >= m))
            .collect();
        let key = q.sort_key.clone().unwrap_or_else(|| "flavorid".into());
        let valid = [
            "created_at",
            "description",
            "disabled",
            "ephemeral_gb",
            "flavorid",
            "id",
            "is_public",
            "memory_mb",
            "name",
            "root_gb",
            "rxtx_factor",
            "swap",
            "updated_at",
            "vcpu_weight",
            "vcpus",
        ];
        if !valid.contains(&key.as_str()) {
            return Err(Error::bad_request(format!("Invalid sort key: {key}")));
        }
        let descending = match q.sort_dir.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(Error::bad_request(format!(
                    "Invalid sort direction: {other}"
                )))
            }
        };
        out.sort_by(|a, b| {
            let ord = match key.as_str() {
                "name" => a.name.cmp(&b.name),
                "memory_mb" => a.memory_mb.cmp(&b.memory_mb),
                "vcpus" => a.vcpus.cmp(&b.vcpus),
                "root_gb" => a.root_gb.cmp(&b.root_gb),
                "ephemeral_gb" => a.ephemeral_gb.cmp(&b.ephemeral_gb),
                "swap" => a.swap.cmp(&b.swap),
                "created_at" | "id" => a.created_at.cmp(&b.created_at),
                _ => a.id.cmp(&b.id),
            };
            let ord = ord.then_with(|| a.id.cmp(&b.id));
            if descending {
                ord.reverse()
            } else {
                ord
            }
        });
        if let Some(marker) = &q.marker {
            let at = out
                .iter()
                .position(|f| &f.id == marker)
                .ok_or_else(|| Error::bad_request(format!("marker [{marker}] not found")))?;
            out.drain(..=at);
        }
        if let Some(limit) = q.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    pub async fn get_flavor(&self, caller: &Caller, id: &str) -> Result<FlavorRow> {
        require_reader(caller)?;
        let f = store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        if !self.can_see_flavor(caller, &f).await? {
            return Err(flavor_not_found(id));
        }
        Ok(f)
    }

    /// `POST /flavors` (admin).
    pub async fn create_flavor(&self, caller: &Caller, body: &Value) -> Result<FlavorRow> {
        require_admin(caller, "os_compute_api:os-flavor-manage:create")?;
        let f = body
            .get("flavor")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::bad_request("Invalid input for field/attribute flavor."))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("name"))?;
        if name.is_empty() || name.len() > 255 || name.trim() != name {
            return Err(invalid("name"));
        }
        let int = |key: &str, min: i64, required: bool| -> Result<i64> {
            match f.get(key) {
                None | Some(Value::Null) if !required => Ok(0),
                None | Some(Value::Null) => Err(invalid(key)),
                Some(v) => {
                    let n = match v {
                        Value::Number(n) => n
                            .as_i64()
                            .or_else(|| n.as_f64().filter(|x| x.fract() == 0.0).map(|x| x as i64)),
                        Value::String(s) => s.trim().parse::<i64>().ok(),
                        _ => None,
                    };
                    match n {
                        Some(n) if n >= min && n <= i32::MAX as i64 => Ok(n),
                        _ => Err(invalid(key)),
                    }
                }
            }
        };
        let ram = int("ram", 1, true)?;
        let vcpus = int("vcpus", 1, true)?;
        let disk = int("disk", 0, true)?;
        let ephemeral = int("OS-FLV-EXT-DATA:ephemeral", 0, false)?;
        let swap = int("swap", 0, false)?;
        let rxtx = match f.get("rxtx_factor") {
            None | Some(Value::Null) => 1.0,
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|x| *x > 0.0)
                .ok_or_else(|| invalid("rxtx_factor"))?,
        };
        let is_public = match f.get("os-flavor-access:is_public") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => true,
                "false" | "0" | "no" | "off" | "f" | "n" => false,
                _ => return Err(invalid("os-flavor-access:is_public")),
            },
            Some(_) => return Err(invalid("os-flavor-access:is_public")),
        };
        let id = match f.get("id") {
            None | Some(Value::Null) => nubo_common::ids::new_uuid(),
            Some(Value::String(s)) => {
                let ok = !s.is_empty()
                    && s.len() <= 255
                    && s.trim() == s
                    && s.chars().all(|c| c.is_alphanumeric() || "-_. ".contains(c));
                if !ok {
                    return Err(invalid("id"));
                }
                s.clone()
            }
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(_) => return Err(invalid("id")),
        };
        let description = match f.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= 65535 => Some(s.clone()),
            Some(_) => return Err(invalid("description")),
        };
        let row = FlavorRow {
            id: id.clone(),
            name: name.to_string(),
            vcpus,
            memory_mb: ram,
            root_gb: disk,
            ephemeral_gb: ephemeral,
            swap,
            rxtx_factor: rxtx,
            is_public,
            disabled: false,
            description,
            extra_specs: BTreeMap::new(),
            created_at: now(),
        };
        if store::flavors::get(&self.db, &id).await?.is_some() {
            return Err(Error::conflict(format!(
                "Flavor with ID {id} already exists."
            )));
        }
        store::flavors::insert(&self.db, &row).await.map_err(|e| {
            if nubo_common::db::is_unique_violation(&e) {
                Error::conflict(format!("Flavor with name {name} already exists."))
            } else {
                e.into()
            }
        })?;
        Ok(row)
    }

    /// `PUT /flavors/{id}` (2.55, admin): only the description changes.
    pub async fn update_flavor(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
    ) -> Result<FlavorRow> {
        require_admin(caller, "os_compute_api:os-flavor-manage:update")?;
        let f = body
            .get("flavor")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("flavor"))?;
        if f.keys().any(|k| k != "description") || !f.contains_key("description") {
            return Err(invalid("flavor"));
        }
        let description = match &f["description"] {
            Value::Null => None,
            Value::String(s) if s.len() <= 65535 => Some(s.as_str()),
            _ => return Err(invalid("description")),
        };
        store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        store::flavors::set_description(&self.db, id, description).await?;
        store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))
    }

    pub async fn delete_flavor(&self, caller: &Caller, id: &str) -> Result<()> {
        require_admin(caller, "os_compute_api:os-flavor-manage:delete")?;
        if !store::flavors::delete(&self.db, id).await? {
            return Err(flavor_not_found(id));
        }
        Ok(())
    }

    // --- extra specs ---

    pub async fn extra_specs(&self, caller: &Caller, id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.get_flavor(caller, id).await?.extra_specs)
    }

    pub async fn extra_spec(&self, caller: &Caller, id: &str, key: &str) -> Result<String> {
        let specs = self.extra_specs(caller, id).await?;
        specs.get(key).cloned().ok_or_else(|| {
            Error::not_found(format!("Flavor {id} has no extra specs with key {key}."))
        })
    }

    /// `POST os-extra_specs` (merge) and `PUT os-extra_specs/{key}` (one key).
    pub async fn set_extra_specs(
        &self,
        caller: &Caller,
        id: &str,
        specs: &Map<String, Value>,
    ) -> Result<BTreeMap<String, String>> {
        require_admin(caller, "os_compute_api:os-flavor-extra-specs:create")?;
        let f = store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        let mut merged = f.extra_specs.clone();
        let mut changed = BTreeMap::new();
        for (key, value) in specs {
            let ok_key = !key.is_empty()
                && key.len() <= 255
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.: ".contains(c));
            if !ok_key {
                return Err(Error::bad_request(format!(
                    "Invalid input for field/attribute extra_specs. Value: {key}"
                )));
            }
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(Error::bad_request(format!(
                        "Invalid input for field/attribute {key}."
                    )))
                }
            };
            if value.len() > 255 {
                return Err(Error::bad_request(format!(
                    "Invalid input for field/attribute {key}."
                )));
            }
            merged.insert(key.clone(), value.clone());
            changed.insert(key.clone(), value);
        }
        store::flavors::set_extra_specs(&self.db, id, &merged).await?;
        Ok(changed)
    }

    pub async fn delete_extra_spec(&self, caller: &Caller, id: &str, key: &str) -> Result<()> {
        require_admin(caller, "os_compute_api:os-flavor-extra-specs:delete")?;
        let f = store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        let mut specs = f.extra_specs.clone();
        if specs.remove(key).is_none() {
            return Err(Error::not_found(format!(
                "Flavor {id} has no extra specs with key {key}."
            )));
        }
        store::flavors::set_extra_specs(&self.db, id, &specs).await
    }

    // --- access ---

    pub async fn flavor_access(&self, caller: &Caller, id: &str) -> Result<Vec<String>> {
        require_admin(caller, "os_compute_api:os-flavor-access")?;
        let f = store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        if f.is_public {
            return Err(Error::not_found(
                "Access list not available for public flavors.",
            ));
        }
        store::flavors::access_list(&self.db, id).await
    }

    pub async fn add_flavor_access(
        &self,
        caller: &Caller,
        id: &str,
        project: &str,
    ) -> Result<Vec<String>> {
        require_admin(caller, "os_compute_api:os-flavor-access:add_tenant_access")?;
        let f = store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        if f.is_public {
            return Err(Error::conflict("Can not add access to a public flavor."));
        }
        if !store::flavors::add_access(&self.db, id, project).await? {
            return Err(Error::conflict(format!(
                "Flavor access already exists for flavor {id} and project {project} combination."
            )));
        }
        store::flavors::access_list(&self.db, id).await
    }

    pub async fn remove_flavor_access(
        &self,
        caller: &Caller,
        id: &str,
        project: &str,
    ) -> Result<Vec<String>> {
        require_admin(
            caller,
            "os_compute_api:os-flavor-access:remove_tenant_access",
        )?;
        store::flavors::get(&self.db, id)
            .await?
            .ok_or_else(|| flavor_not_found(id))?;
        if !store::flavors::remove_access(&self.db, id, project).await? {
            return Err(Error::not_found(format!(
                "Flavor access not found for {id} / {project} combination."
            )));
        }
        store::flavors::access_list(&self.db, id).await
    }
}

fn invalid(field: &str) -> Error {
    Error::bad_request(format!("Invalid input for field/attribute {field}."))
}
