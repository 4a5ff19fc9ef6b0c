//! Volume types (admins create, update and delete them; everyone lists the ones they may use),
//! their extra specs, access lists of private types, per-project default types (3.62),
//! encryption specs, and QoS specs with their associations to types.
//!
//! The default type (`[volume] default_volume_type`, `__DEFAULT__`) is made on first start and
//! cannot be deleted, as in Cinder.

use std::collections::BTreeMap;

use nubo_common::db::is_unique_violation;
use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::input::{self, member};
use super::views::{self, TypeShape};
use super::{now, require_admin, require_reader, Ctx, VolumeService};
use crate::store;
use crate::store::types::{EncryptionRow, QosRow, TypeRow};

pub(crate) fn type_not_found(id: &str) -> Error {
    Error::not_found(format!("Volume type {id} could not be found."))
}

fn qos_not_found(id: &str) -> Error {
    Error::not_found(format!("QoS Specs {id} could not be found."))
}

impl VolumeService {
    /// Makes the default type on first start.
    pub(crate) async fn ensure_default_type(&self) -> Result<()> {
        let mut tx = self.write().await?;
        if store::types::by_name(&mut tx, &self.settings.default_type)
            .await?
            .is_none()
        {
            let t = TypeRow {
                id: nubo_common::ids::new_uuid(),
                name: self.settings.default_type.clone(),
                description: Some("Default Volume Type".into()),
                is_public: true,
                extra_specs: BTreeMap::new(),
                qos_specs_id: None,
                created_at: now(),
                updated_at: None,
            };
            store::types::insert(&mut tx, &t).await?;
            tracing::info!(name = %t.name, id = %t.id, "default volume type created");
        }
        tx.commit().await
    }

    pub(crate) async fn type_by_id(&self, id: &str) -> Result<Option<TypeRow>> {
        let mut conn = self.read().await?;
        store::types::get(&mut conn, id).await
    }

    /// The default type of `project`: its own (3.62), else the cloud's.
    pub(crate) async fn default_type_for(&self, project: &str) -> Result<TypeRow> {
        let mut conn = self.read().await?;
        if let Some(id) = store::types::default_of(&mut conn, project).await? {
            if let Some(t) = store::types::get(&mut conn, &id).await? {
                return Ok(t);
            }
        }
        store::types::by_name(&mut conn, &self.settings.default_type)
            .await?
            .ok_or_else(|| Error::internal("the default volume type is missing"))
    }

    /// Whether the caller may use (see) a type: public, admin, or on its access list.
    async fn may_use(&self, ctx: &Ctx, t: &TypeRow) -> Result<bool> {
        if t.is_public || ctx.admin() {
            return Ok(true);
        }
        let Some(project) = ctx.caller.project_id() else {
            return Ok(false);
        };
        let mut conn = self.read().await?;
        Ok(store::types::access_list(&mut conn, &t.id)
            .await?
            .iter()
            .any(|p| p == project))
    }

    /// A type by id or name that the caller may use, else a 404.
    pub(crate) async fn usable_type(&self, ctx: &Ctx, name_or_id: &str) -> Result<TypeRow> {
        let t = {
            let mut conn = self.read().await?;
            match store::types::get(&mut conn, name_or_id).await? {
                Some(t) => Some(t),
                None => store::types::by_name(&mut conn, name_or_id).await?,
            }
        };
        match t {
            Some(t) if self.may_use(ctx, &t).await? => Ok(t),
            _ => Err(Error::not_found(format!(
                "Volume type with name {name_or_id} could not be found."
            ))),
        }
    }

    /// Types the caller may use (admins: every one, or `is_public=true|false` ones), sorted and
    /// paged like volumes.
    pub async fn list_types(
        &self,
        ctx: &Ctx,
        p: &super::query::ListParams,
    ) -> Result<Vec<TypeRow>> {
        let is_public = p
            .filters
            .iter()
            .rev()
            .find(|(k, _)| k == "is_public")
            .map(|(_, v)| v.as_str());
        require_reader(ctx, "volume_extension:types_manage")?;
        let rows = {
            let mut conn = self.read().await?;
            store::types::list(&mut conn).await?
        };
        let want_public = is_public.and_then(|p| {
            if p.eq_ignore_ascii_case("none") {
                None
            } else {
                super::query::parse_bool(p)
            }
        });
        let mut out = Vec::new();
        for t in rows {
            if ctx.admin() {
                if want_public.is_some_and(|w| w != t.is_public) {
                    continue;
                }
            } else if !self.may_use(ctx, &t).await? {
                continue;
            }
            out.push(t);
        }
        super::query::sort(
            &mut out,
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
            out,
            p,
            |t| t.id.as_str(),
            |m| Error::not_found(format!("Marker {m} could not be found.")),
        )?;
        Ok(page.items)
    }

    pub async fn get_type(&self, ctx: &Ctx, id: &str) -> Result<TypeRow> {
        require_reader(ctx, "volume_extension:type_get")?;
        if id == "default" {
            return self
                .default_type_for(ctx.project().unwrap_or_default())
                .await;
        }
        match self.type_by_id(id).await? {
            Some(t) if self.may_use(ctx, &t).await? => Ok(t),
            _ => Err(type_not_found(id)),
        }
    }

    pub async fn create_type(&self, ctx: &Ctx, body: &Value) -> Result<TypeRow> {
        require_admin(ctx, "volume_extension:type_create")?;
        let b = member(body, "volume_type")?;
        let name = match b.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => {
                n.trim().to_string()
            }
            _ => {
                return Err(input::invalid(
                    "name",
                    "A name of 1 to 255 characters is required.",
                ))
            }
        };
        let description = input::opt_string("description", b.get("description"), 255)?;
        let extra_specs = input::metadata("extra_specs", b.get("extra_specs"), true)?;
        let is_public = input::opt_boolean(
            "os-volume-type-access:is_public",
            b.get("os-volume-type-access:is_public"),
        )?
        .unwrap_or(true);
        let t = TypeRow {
            id: nubo_common::ids::new_uuid(),
            name: name.clone(),
            description,
            is_public,
            extra_specs,
            qos_specs_id: None,
            created_at: now(),
            updated_at: None,
        };
        let mut tx = self.write().await?;
        if let Err(e) = store::types::insert(&mut tx, &t).await {
            if is_unique_violation(&e) {
                return Err(Error::conflict(format!(
                    "Volume Type {name} already exists."
                )));
            }
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(t)
    }

    pub async fn update_type(&self, ctx: &Ctx, id: &str, body: &Value) -> Result<TypeRow> {
        require_admin(ctx, "volume_extension:type_update")?;
        let b = member(body, "volume_type")?;
        let name = match b.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => {
                Some(n.trim().to_string())
            }
            Some(_) => return Err(Error::bad_request("Volume type name can not be empty.")),
        };
        let description = match b.get("description") {
            None => None,
            Some(d) => Some(input::opt_string("description", Some(d), 255)?),
        };
        let is_public = input::opt_boolean("is_public", b.get("is_public"))?;
        if name.is_none() && description.is_none() && is_public.is_none() {
            return Err(Error::bad_request(
                "Specify volume type name, description, is_public or a combination thereof.",
            ));
        }
        let mut tx = self.write().await?;
        let mut t = store::types::get(&mut tx, id)
            .await?
            .ok_or_else(|| type_not_found(id))?;
        if let Some(n) = name {
            if t.name == self.settings.default_type && n != t.name {
                return Err(Error::bad_request(
                    "The default volume type cannot be renamed.",
                ));
            }
            t.name = n;
        }
        if let Some(d) = description {
            t.description = d;
        }
        if let Some(p) = is_public {
            t.is_public = p;
        }
        t.updated_at = Some(now());
        if let Err(e) = store::types::update(&mut tx, &t).await {
            if is_unique_violation(&e) {
                return Err(Error::conflict(format!(
                    "Volume Type {} already exists.",
                    t.name
                )));
            }
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(t)
    }

    pub async fn delete_type(&self, ctx: &Ctx, id: &str) -> Result<()> {
        require_admin(ctx, "volume_extension:type_delete")?;
        let mut tx = self.write().await?;
        let t = store::types::get(&mut tx, id)
            .await?
            .ok_or_else(|| type_not_found(id))?;
        if t.name == self.settings.default_type {
            return Err(Error::bad_request(
                "Default volume type can not be deleted.",
            ));
        }
        if store::types::is_someones_default(&mut tx, id).await? {
            return Err(Error::bad_request(
                "Volume type is the default type of a project and can not be deleted.",
            ));
        }
        if store::volumes::count_of_type(&mut tx, id).await? > 0 {
            return Err(Error::bad_request(format!(
                "Target volume type is still in use. Volume type {id} deletion is not allowed with volumes present with the type."
            )));
        }
        store::types::delete(&mut tx, id).await?;
        tx.commit().await
    }

    pub fn type_view(&self, ctx: &Ctx, t: &TypeRow, shape: TypeShape) -> Value {
        views::volume_type(ctx, t, shape)
    }

    // ----- extra specs -----

    async fn admin_type(&self, ctx: &Ctx, id: &str, rule: &str) -> Result<TypeRow> {
        require_admin(ctx, rule)?;
        self.type_by_id(id).await?.ok_or_else(|| type_not_found(id))
    }

    pub async fn type_extra_specs(&self, ctx: &Ctx, id: &str) -> Result<BTreeMap<String, String>> {
        require_reader(ctx, "volume_extension:types_extra_specs:index")?;
        let t = self.get_type(ctx, id).await?;
        Ok(if ctx.admin() {
            t.extra_specs
        } else {
            t.extra_specs
                .into_iter()
                .filter(|(k, _)| views::USER_VISIBLE_SPECS.contains(&k.as_str()))
                .collect()
        })
    }

    pub async fn type_extra_spec(&self, ctx: &Ctx, id: &str, key: &str) -> Result<String> {
        let specs = self.type_extra_specs(ctx, id).await?;
        specs.get(key).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "Volume Type {id} has no extra specs with key {key}."
            ))
        })
    }

    /// Merges extra specs (`POST`), or sets one (`PUT .../{key}`).
    pub async fn set_type_extra_specs(
        &self,
        ctx: &Ctx,
        id: &str,
        specs: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        self.admin_type(ctx, id, "volume_extension:types_extra_specs:create")
            .await?;
        let mut tx = self.write().await?;
        let mut t = store::types::get(&mut tx, id)
            .await?
            .ok_or_else(|| type_not_found(id))?;
        t.extra_specs.extend(specs.clone());
        t.updated_at = Some(now());
        store::types::update(&mut tx, &t).await?;
        tx.commit().await?;
        Ok(specs)
    }

    pub async fn delete_type_extra_spec(&self, ctx: &Ctx, id: &str, key: &str) -> Result<()> {
        self.admin_type(ctx, id, "volume_extension:types_extra_specs:delete")
            .await?;
        let mut tx = self.write().await?;
        let mut t = store::types::get(&mut tx, id)
            .await?
            .ok_or_else(|| type_not_found(id))?;
        if t.extra_specs.remove(key).is_none() {
            return Err(Error::not_found(format!(
                "Volume Type {id} has no extra specs with key {key}."
            )));
        }
        t.updated_at = Some(now());
        store::types::update(&mut tx, &t).await?;
        tx.commit().await
    }

    // ----- access -----

    pub async fn type_access(&self, ctx: &Ctx, id: &str) -> Result<Vec<String>> {
        let t = self
            .admin_type(
                ctx,
                id,
                "volume_extension:volume_type_access:addProjectAccess",
            )
            .await?;
        if t.is_public {
            return Err(Error::not_found(
                "Access list not available for public volume types.",
            ));
        }
        let mut conn = self.read().await?;
        store::types::access_list(&mut conn, id).await
    }

    pub async fn change_type_access(&self, ctx: &Ctx, id: &str, body: &Value) -> Result<()> {
        let (add, project) = if let Some(a) = body.get("addProjectAccess") {
            (true, a.get("project"))
        } else if let Some(r) = body.get("removeProjectAccess") {
            (false, r.get("project"))
        } else {
            return Err(Error::bad_request("Invalid request body: unknown action."));
        };
        let project = match project {
            Some(Value::String(p)) if !p.is_empty() && p.len() <= 255 => p.clone(),
            _ => return Err(input::invalid("project", "A project id is required.")),
        };
        let t = self
            .admin_type(
                ctx,
                id,
                "volume_extension:volume_type_access:addProjectAccess",
            )
            .await?;
        if t.is_public {
            return Err(Error::bad_request(
                "Invalid volume type: Type access modification is not applicable to public volume type.",
            ));
        }
        let mut tx = self.write().await?;
        if add {
            if !store::types::add_access(&mut tx, id, &project).await? {
                return Err(Error::conflict(format!(
                    "Volume type access for {id} / {project} combination already exists."
                )));
            }
        } else if !store::types::remove_access(&mut tx, id, &project).await? {
            return Err(Error::not_found(format!(
                "Volume type access not found for {id} / {project} combination."
            )));
        }
        tx.commit().await
    }

    // ----- default types (3.62) -----

    pub async fn set_default_type(&self, ctx: &Ctx, project: &str, body: &Value) -> Result<Value> {
        require_admin(ctx, "volume_extension:default_set_or_update")?;
        let d = member(body, "default_type")?;
        let name = match d.get("volume_type") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => return Err(input::invalid("volume_type", "A volume type is required.")),
        };
        let t = self.usable_type(ctx, &name).await?;
        let mut tx = self.write().await?;
        store::types::set_default(&mut tx, project, &t.id).await?;
        tx.commit().await?;
        Ok(json!({"project_id": project, "volume_type_id": t.id}))
    }

    pub async fn get_default_type(&self, ctx: &Ctx, project: &str) -> Result<Value> {
        require_admin(ctx, "volume_extension:default_get")?;
        let mut conn = self.read().await?;
        match store::types::default_of(&mut conn, project).await? {
            Some(t) => Ok(json!({"project_id": project, "volume_type_id": t})),
            None => Err(Error::not_found(format!(
                "Default type for project {project} could not be found."
            ))),
        }
    }

    pub async fn list_default_types(&self, ctx: &Ctx) -> Result<Vec<Value>> {
        require_admin(ctx, "volume_extension:default_get_all")?;
        let mut conn = self.read().await?;
        Ok(store::types::defaults(&mut conn)
            .await?
            .into_iter()
            .map(|(p, t)| json!({"project_id": p, "volume_type_id": t}))
            .collect())
    }

    pub async fn unset_default_type(&self, ctx: &Ctx, project: &str) -> Result<()> {
        require_admin(ctx, "volume_extension:default_unset")?;
        let mut tx = self.write().await?;
        store::types::unset_default(&mut tx, project).await?;
        tx.commit().await
    }

    // ----- encryption -----

    pub async fn type_encryption(&self, ctx: &Ctx, id: &str) -> Result<Option<EncryptionRow>> {
        self.admin_type(ctx, id, "volume_extension:volume_type_encryption:get")
            .await?;
        let mut conn = self.read().await?;
        store::types::encryption_of(&mut conn, id).await
    }

    pub async fn set_type_encryption(
        &self,
        ctx: &Ctx,
        id: &str,
        body: &Value,
        create: bool,
    ) -> Result<EncryptionRow> {
        self.admin_type(ctx, id, "volume_extension:volume_type_encryption:create")
            .await?;
        let e = member(body, "encryption")?;
        let mut tx = self.write().await?;
        let existing = store::types::encryption_of(&mut tx, id).await?;
        if create && existing.is_some() {
            return Err(Error::bad_request(format!(
                "Volume type encryption for type {id} already exists."
            )));
        }
        if !create && existing.is_none() {
            return Err(Error::not_found(format!(
                "Volume type encryption for type {id} does not exist."
            )));
        }
        if store::volumes::count_of_type(&mut tx, id).await? > 0 {
            return Err(Error::bad_request(format!(
                "Cannot change the encryption of volume type {id}: volumes of the type exist."
            )));
        }
        let base = existing.clone();
        let provider = match e.get("provider") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            None if base.is_some() => base
                .as_ref()
                .map(|b| b.provider.clone())
                .unwrap_or_default(),
            _ => return Err(input::invalid("provider", "A provider is required.")),
        };
        let cipher = match e.get("cipher") {
            None => base.as_ref().and_then(|b| b.cipher.clone()),
            Some(c) => input::opt_string("cipher", Some(c), 255)?,
        };
        let key_size = match e.get("key_size") {
            None => base.as_ref().and_then(|b| b.key_size),
            Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= 0) => n.as_i64(),
            Some(Value::String(s)) if s.parse::<i64>().is_ok_and(|n| n >= 0) => s.parse().ok(),
            Some(_) => {
                return Err(input::invalid(
                    "key_size",
                    "It must be a non-negative integer.",
                ))
            }
        };
        let control_location = match e.get("control_location") {
            None => base
                .as_ref()
                .map(|b| b.control_location.clone())
                .unwrap_or_else(|| "front-end".into()),
            Some(Value::String(c)) if c == "front-end" || c == "back-end" => c.clone(),
            Some(_) => {
                return Err(input::invalid(
                    "control_location",
                    "It must be front-end or back-end.",
                ))
            }
        };
        let row = EncryptionRow {
            type_id: id.to_string(),
            encryption_id: base
                .as_ref()
                .map(|b| b.encryption_id.clone())
                .unwrap_or_else(nubo_common::ids::new_uuid),
            provider,
            cipher,
            key_size,
            control_location,
            created_at: base
                .as_ref()
                .map(|b| b.created_at.clone())
                .unwrap_or_else(now),
            updated_at: base.as_ref().map(|_| now()),
        };
        store::types::upsert_encryption(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn delete_type_encryption(&self, ctx: &Ctx, id: &str) -> Result<()> {
        self.admin_type(ctx, id, "volume_extension:volume_type_encryption:delete")
            .await?;
        let mut tx = self.write().await?;
        if store::types::encryption_of(&mut tx, id).await?.is_none() {
            return Err(Error::not_found(format!(
                "Volume type encryption for type {id} does not exist."
            )));
        }
        if store::volumes::count_of_type(&mut tx, id).await? > 0 {
            return Err(Error::bad_request(format!(
                "Cannot delete the encryption of volume type {id}: volumes of the type exist."
            )));
        }
        store::types::delete_encryption(&mut tx, id).await?;
        tx.commit().await
    }

    /// Whether volumes of this type would be encrypted (refused: no key manager).
    pub(crate) async fn type_is_encrypted(&self, type_id: &str) -> Result<bool> {
        let mut conn = self.read().await?;
        Ok(store::types::encryption_of(&mut conn, type_id)
            .await?
            .is_some())
    }

    // ----- QoS specs -----

    pub async fn create_qos(&self, ctx: &Ctx, body: &Value) -> Result<QosRow> {
        require_admin(ctx, "volume_extension:qos_specs_manage:create")?;
        let b = member(body, "qos_specs")?;
        let name = match b.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => {
                n.trim().to_string()
            }
            _ => return Err(input::invalid("name", "A name is required.")),
        };
        let consumer = match b.get("consumer") {
            None => "back-end".to_string(),
            Some(Value::String(c)) if ["front-end", "back-end", "both"].contains(&c.as_str()) => {
                c.clone()
            }
            Some(_) => {
                return Err(Error::bad_request(
                    "Invalid input received: consumer must be front-end, back-end or both.",
                ))
            }
        };
        let mut specs = BTreeMap::new();
        for (k, v) in b {
            if k == "name" || k == "consumer" {
                continue;
            }
            match v {
                Value::String(s) => {
                    specs.insert(k.clone(), s.clone());
                }
                other => {
                    specs.insert(k.clone(), other.to_string());
                }
            }
        }
        let q = QosRow {
            id: nubo_common::ids::new_uuid(),
            name: name.clone(),
            consumer,
            specs,
            created_at: now(),
        };
        let mut tx = self.write().await?;
        if let Err(e) = store::types::insert_qos(&mut tx, &q).await {
            if is_unique_violation(&e) {
                return Err(Error::conflict(format!("QoS Specs {name} already exists.")));
            }
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(q)
    }

    pub async fn list_qos(&self, ctx: &Ctx) -> Result<Vec<QosRow>> {
        require_admin(ctx, "volume_extension:qos_specs_manage:get_all")?;
        let mut conn = self.read().await?;
        store::types::list_qos(&mut conn).await
    }

    pub async fn get_qos(&self, ctx: &Ctx, id: &str) -> Result<QosRow> {
        require_admin(ctx, "volume_extension:qos_specs_manage:get")?;
        let mut conn = self.read().await?;
        store::types::get_qos(&mut conn, id)
            .await?
            .ok_or_else(|| qos_not_found(id))
    }

    /// Sets keys (`consumer` included); answers what was set.
    pub async fn update_qos(
        &self,
        ctx: &Ctx,
        id: &str,
        body: &Value,
    ) -> Result<BTreeMap<String, String>> {
        require_admin(ctx, "volume_extension:qos_specs_manage:update")?;
        let b = member(body, "qos_specs")?;
        let mut tx = self.write().await?;
        let mut q = store::types::get_qos(&mut tx, id)
            .await?
            .ok_or_else(|| qos_not_found(id))?;
        let mut set = BTreeMap::new();
        for (k, v) in b {
            let v = v
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string());
            if k == "consumer" {
                if !["front-end", "back-end", "both"].contains(&v.as_str()) {
                    return Err(Error::bad_request(
                        "Invalid input received: consumer must be front-end, back-end or both.",
                    ));
                }
                q.consumer = v.clone();
            } else {
                q.specs.insert(k.clone(), v.clone());
            }
            set.insert(k.clone(), v);
        }
        store::types::update_qos(&mut tx, &q, &now()).await?;
        tx.commit().await?;
        Ok(set)
    }

    pub async fn unset_qos_keys(&self, ctx: &Ctx, id: &str, body: &Value) -> Result<()> {
        require_admin(ctx, "volume_extension:qos_specs_manage:update")?;
        let keys: Vec<String> = match body.get("keys") {
            Some(Value::Array(list)) => list
                .iter()
                .map(|k| k.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| input::invalid("keys", "Keys must be strings."))?,
            _ => return Err(input::invalid("keys", "A list of keys is required.")),
        };
        let mut tx = self.write().await?;
        let mut q = store::types::get_qos(&mut tx, id)
            .await?
            .ok_or_else(|| qos_not_found(id))?;
        for k in &keys {
            if q.specs.remove(k).is_none() {
                return Err(Error::not_found(format!(
                    "QoS spec {k} could not be found in QoS specs {id}."
                )));
            }
        }
        store::types::update_qos(&mut tx, &q, &now()).await?;
        tx.commit().await
    }

    pub async fn delete_qos(&self, ctx: &Ctx, id: &str, force: bool) -> Result<()> {
        require_admin(ctx, "volume_extension:qos_specs_manage:delete")?;
        let mut tx = self.write().await?;
        store::types::get_qos(&mut tx, id)
            .await?
            .ok_or_else(|| qos_not_found(id))?;
        let in_use = store::types::list(&mut tx)
            .await?
            .iter()
            .any(|t| t.qos_specs_id.as_deref() == Some(id));
        if in_use && !force {
            return Err(Error::bad_request(format!(
                "QoS Specs {id} is still associated with entities."
            )));
        }
        store::types::delete_qos(&mut tx, id).await?;
        tx.commit().await
    }

    pub async fn qos_associations(&self, ctx: &Ctx, id: &str) -> Result<Vec<Value>> {
        self.get_qos(ctx, id).await?;
        let mut conn = self.read().await?;
        Ok(store::types::list(&mut conn)
            .await?
            .into_iter()
            .filter(|t| t.qos_specs_id.as_deref() == Some(id))
            .map(|t| json!({"association_type": "volume_type", "name": t.name, "id": t.id}))
            .collect())
    }

    /// Associates (`Some(true)`), disassociates (`Some(false)`) a type, or (`None`) every type.
    pub async fn qos_associate(
        &self,
        ctx: &Ctx,
        id: &str,
        type_id: Option<&str>,
        associate: bool,
    ) -> Result<()> {
        self.get_qos(ctx, id).await?;
        let mut tx = self.write().await?;
        match type_id {
            Some(tid) => {
                let mut t = store::types::get(&mut tx, tid)
                    .await?
                    .ok_or_else(|| type_not_found(tid))?;
                if associate {
                    if t.qos_specs_id.as_deref().is_some_and(|q| q != id) {
                        return Err(Error::bad_request(format!(
                            "Volume type {tid} is already associated with another qos specs."
                        )));
                    }
                    t.qos_specs_id = Some(id.to_string());
                } else if t.qos_specs_id.as_deref() == Some(id) {
                    t.qos_specs_id = None;
                }
                t.updated_at = Some(now());
                store::types::update(&mut tx, &t).await?;
            }
            None => {
                for mut t in store::types::list(&mut tx).await? {
                    if t.qos_specs_id.as_deref() == Some(id) {
                        t.qos_specs_id = None;
                        t.updated_at = Some(now());
                        store::types::update(&mut tx, &t).await?;
                    }
                }
            }
        }
        tx.commit().await
    }
}
