//! Image records: create, show, update (JSON patch), delete, tags, deactivate and reactivate.

use std::collections::BTreeMap;

use nubo_common::{Caller, Error, Result};
use serde_json::{Map, Value};

use crate::service::patch::{Change, Op};
use crate::service::{
    image_not_found, not_authorized, require_member, require_owner, validate, ImageService,
};
use crate::store;
use crate::store::images::ImageRow;
use crate::types::{ImageId, ImageStatus, Visibility};

fn read_only(key: &str) -> Error {
    Error::forbidden(format!("Attribute '{key}' is read-only."))
}

fn reserved(key: &str) -> Error {
    Error::forbidden(format!("Attribute '{key}' is reserved."))
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

impl ImageService {
    /// `POST /v2/images`: a new `queued` image owned by the caller's project (or, for an admin,
    /// by the project named in `owner`).
    pub async fn create_image(&self, caller: &Caller, body: Value) -> Result<ImageRow> {
        require_member(caller, "add_image")?;
        let Value::Object(mut body) = body else {
            return Err(Error::bad_request(
                "Provided object does not match schema 'image': the body is not an object",
            ));
        };
        for key in validate::DISALLOWED_ON_CREATE {
            if body.contains_key(*key) {
                return Err(read_only(key));
            }
        }
        for (key, value) in &body {
            validate::check_value(key, value)?;
        }
        for key in validate::READ_ONLY {
            if *key != "id" && body.contains_key(*key) {
                return Err(read_only(key));
            }
        }
        let take = |body: &mut Map<String, Value>, key: &str| body.remove(key);
        let id = take(&mut body, "id").and_then(|v| string(&v));
        let tags = match take(&mut body, "tags") {
            Some(v) => validate::check_tags(&v)?,
            None => Vec::new(),
        };
        let owner = match take(&mut body, "owner") {
            Some(Value::String(owner)) => Some(owner),
            Some(_) | None => caller.project_id().map(str::to_string),
        };
        if !caller.is_admin() && owner.as_deref() != caller.project_id() {
            return Err(not_authorized("add_image"));
        }
        let visibility = match take(&mut body, "visibility") {
            Some(Value::String(v)) => Visibility::parse(&v).unwrap_or(Visibility::Shared),
            _ => Visibility::Shared,
        };
        if visibility == Visibility::Public && !caller.is_admin() {
            return Err(not_authorized("publicize_image"));
        }
        let name = take(&mut body, "name").and_then(|v| string(&v));
        let disk_format = take(&mut body, "disk_format").and_then(|v| string(&v));
        let container_format = take(&mut body, "container_format").and_then(|v| string(&v));
        let min_disk = take(&mut body, "min_disk")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let min_ram = take(&mut body, "min_ram")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let protected = take(&mut body, "protected")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let os_hidden = take(&mut body, "os_hidden")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut properties = BTreeMap::new();
        for (key, value) in body {
            if validate::is_reserved(&key) || key == "locations" {
                return Err(reserved(&key));
            }
            if let Value::String(value) = value {
                properties.insert(key, value);
            }
        }
        if properties.len() > self.settings.max_properties {
            return Err(Error::over_limit(format!(
                "Maximum number of properties ({}) exceeded.",
                self.settings.max_properties
            )));
        }
        if tags.len() > self.settings.max_tags {
            return Err(Error::over_limit(format!(
                "Maximum number of tags ({}) exceeded.",
                self.settings.max_tags
            )));
        }
        if let Some(owner) = &owner {
            self.check_count_quota(owner).await?;
        }
        let now = nubo_common::time::now_rfc3339();
        let image = ImageRow {
            id: ImageId(id.unwrap_or_else(nubo_common::ids::new_uuid)),
            name,
            status: ImageStatus::Queued,
            visibility,
            owner,
            disk_format,
            container_format,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk,
            min_ram,
            protected,
            os_hidden,
            properties,
            tags,
            store_name: None,
            store_kind: None,
            created_at: now.clone(),
            updated_at: now,
        };
        store::images::insert(&self.db, &image).await.map_err(|e| {
            if nubo_common::db::is_unique_violation(&e) {
                Error::conflict(format!(
                    "Image with identifier {} already exists!",
                    image.id
                ))
            } else {
                e.into()
            }
        })?;
        tracing::info!(image_id = %image.id, owner = ?image.owner, "image created");
        Ok(image)
    }

    /// 413 when `owner` already has as many images as its quota allows.
    pub(crate) async fn check_count_quota(&self, owner: &str) -> Result<()> {
        let limit = self.settings.quota_images;
        if limit == 0 {
            return Ok(());
        }
        let (count, _) = store::images::usage(&self.db, owner).await?;
        if count as u64 >= limit {
            return Err(Error::over_limit(format!(
                "Resource image_count_total is over limit of {limit} due to current usage {count} and delta 1"
            )));
        }
        Ok(())
    }

    /// `GET /v2/images/{id}`.
    pub async fn get_image(&self, caller: &Caller, id: &str) -> Result<ImageRow> {
        self.visible_image(caller, id).await
    }

    /// `PATCH /v2/images/{id}` with a parsed patch document.
    pub async fn update_image(
        &self,
        caller: &Caller,
        id: &str,
        changes: &[Change],
    ) -> Result<ImageRow> {
        // A concurrent status change (an upload starting) makes the save miss: try again on
        // the fresh row.
        for _ in 0..5 {
            let image = self.visible_image(caller, id).await?;
            require_owner(caller, &image, "modify_image")?;
            if changes.is_empty() {
                return Ok(image);
            }
            let mut updated = image.clone();
            for change in changes {
                self.apply_change(caller, &mut updated, change)?;
            }
            if updated.properties.len() > self.settings.max_properties {
                return Err(Error::over_limit(format!(
                    "Maximum number of properties ({}) exceeded.",
                    self.settings.max_properties
                )));
            }
            if updated.tags.len() > self.settings.max_tags {
                return Err(Error::over_limit(format!(
                    "Maximum number of tags ({}) exceeded.",
                    self.settings.max_tags
                )));
            }
            updated.updated_at = nubo_common::time::now_rfc3339();
            if store::images::update_attributes(&self.db, &updated).await? {
                return Ok(updated);
            }
        }
        Err(Error::conflict(format!(
            "Image {id} changed while it was being updated; try again."
        )))
    }

    fn apply_change(&self, caller: &Caller, image: &mut ImageRow, change: &Change) -> Result<()> {
        let root = change.root();
        if root == "locations" {
            return Err(Error::forbidden(match change.op {
                Op::Add => "It's not allowed to add locations if locations are invisible.",
                Op::Remove => "It's not allowed to remove locations if locations are invisible.",
                Op::Replace
                    if change
                        .value
                        .as_ref()
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.is_empty()) =>
                {
                    "Cannot set locations to empty list."
                }
                Op::Replace => "It's not allowed to update locations if locations are invisible.",
            }));
        }
        let is_base = validate::BASE.contains(&root);
        match change.op {
            Op::Remove => {
                if is_base {
                    return Err(Error::forbidden(format!(
                        "Property {root} may not be removed."
                    )));
                }
                if image.properties.remove(root).is_none() {
                    return Err(Error::conflict(format!("Property {root} does not exist.")));
                }
                Ok(())
            }
            Op::Add | Op::Replace => {
                let value = change.value.clone().unwrap_or(Value::Null);
                let present = is_base || image.properties.contains_key(root);
                if change.op == Op::Replace && !present {
                    return Err(Error::conflict(format!("Property {root} does not exist.")));
                }
                if change.op == Op::Add && change.draft4 && present {
                    return Err(Error::conflict(format!("Property {root} already present.")));
                }
                if is_base {
                    self.set_base(caller, image, root, value)
                } else {
                    match value {
                        Value::String(s) => {
                            image.properties.insert(root.to_string(), s);
                            Ok(())
                        }
                        other => Err(Error::bad_request(format!(
                            "Provided object does not match schema 'image': {other} is not of type 'string' ({root})"
                        ))),
                    }
                }
            }
        }
    }

    fn set_base(
        &self,
        caller: &Caller,
        image: &mut ImageRow,
        key: &str,
        value: Value,
    ) -> Result<()> {
        match key {
            "name" => image.name = string(&value),
            "visibility" => {
                let visibility = value
                    .as_str()
                    .and_then(Visibility::parse)
                    .ok_or_else(|| Error::bad_request("Invalid visibility value."))?;
                if visibility == Visibility::Public && !caller.is_admin() {
                    return Err(not_authorized("publicize_image"));
                }
                image.visibility = visibility;
            }
            "protected" => image.protected = value.as_bool().unwrap_or(false),
            "os_hidden" => image.os_hidden = value.as_bool().unwrap_or(false),
            "min_disk" => image.min_disk = value.as_i64().unwrap_or(0),
            "min_ram" => image.min_ram = value.as_i64().unwrap_or(0),
            "owner" => {
                if !caller.is_admin() {
                    return Err(Error::forbidden("Owner can't be updated by non admin."));
                }
                image.owner = string(&value);
            }
            "disk_format" | "container_format" => {
                if image.status != ImageStatus::Queued {
                    return Err(Error::forbidden(format!(
                        "Attribute {key} can be only replaced for a queued image."
                    )));
                }
                if key == "disk_format" {
                    image.disk_format = string(&value);
                } else {
                    image.container_format = string(&value);
                }
            }
            "tags" => image.tags = validate::check_tags(&value)?,
            other => return Err(read_only(other)),
        }
        Ok(())
    }

    /// `DELETE /v2/images/{id}`: removes the record, then the block store object (whose data
    /// stays while clones use it).
    pub async fn delete_image(&self, caller: &Caller, id: &str) -> Result<()> {
        let image = self.visible_image(caller, id).await?;
        require_owner(caller, &image, "delete_image")?;
        if image.protected {
            return Err(Error::forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        let Some(deleted) = store::images::delete(&self.db, id).await? else {
            return Err(image_not_found(id));
        };
        if let Some(name) = &deleted.store_name {
            if let Err(e) = self.store.delete(name).await {
                // The record is gone; the object is an orphan the operator can remove.
                tracing::error!(image_id = id, store_name = %name, error = %e, "deleting image data failed");
            }
        }
        tracing::info!(image_id = id, "image deleted");
        Ok(())
    }

    /// `PUT /v2/images/{id}/tags/{tag}`.
    pub async fn add_tag(&self, caller: &Caller, id: &str, tag: &str) -> Result<()> {
        validate::check_tag(tag)?;
        for _ in 0..5 {
            let mut image = self.visible_image(caller, id).await?;
            require_owner(caller, &image, "modify_image")?;
            if image.tags.iter().any(|t| t == tag) {
                return Ok(());
            }
            if image.tags.len() >= self.settings.max_tags {
                return Err(Error::over_limit(format!(
                    "Maximum number of tags ({}) exceeded.",
                    self.settings.max_tags
                )));
            }
            image.tags.push(tag.to_string());
            image.updated_at = nubo_common::time::now_rfc3339();
            if store::images::update_attributes(&self.db, &image).await? {
                return Ok(());
            }
        }
        Err(Error::conflict(
            "The image changed concurrently; try again.",
        ))
    }

    /// `DELETE /v2/images/{id}/tags/{tag}`: a tag the image does not have is a 404.
    pub async fn delete_tag(&self, caller: &Caller, id: &str, tag: &str) -> Result<()> {
        for _ in 0..5 {
            let mut image = self.visible_image(caller, id).await?;
            require_owner(caller, &image, "modify_image")?;
            let before = image.tags.len();
            image.tags.retain(|t| t != tag);
            if image.tags.len() == before {
                return Err(Error::not_found(format!("Tag {tag} not found")));
            }
            image.updated_at = nubo_common::time::now_rfc3339();
            if store::images::update_attributes(&self.db, &image).await? {
                return Ok(());
            }
        }
        Err(Error::conflict(
            "The image changed concurrently; try again.",
        ))
    }

    /// `POST /v2/images/{id}/actions/deactivate`: active -> deactivated (no-op when already).
    pub async fn deactivate_image(&self, caller: &Caller, id: &str) -> Result<()> {
        self.change_activation(
            caller,
            id,
            "deactivate",
            ImageStatus::Active,
            ImageStatus::Deactivated,
        )
        .await
    }

    /// `POST /v2/images/{id}/actions/reactivate`: deactivated -> active (no-op when already).
    pub async fn reactivate_image(&self, caller: &Caller, id: &str) -> Result<()> {
        self.change_activation(
            caller,
            id,
            "reactivate",
            ImageStatus::Deactivated,
            ImageStatus::Active,
        )
        .await
    }

    async fn change_activation(
        &self,
        caller: &Caller,
        id: &str,
        action: &str,
        from: ImageStatus,
        to: ImageStatus,
    ) -> Result<()> {
        let image = self.visible_image(caller, id).await?;
        require_owner(caller, &image, action)?;
        if image.status == to {
            return Ok(());
        }
        if image.status != from || !store::images::set_status(&self.db, id, from, to).await? {
            return Err(Error::forbidden(format!(
                "Not allowed to {action} image in status '{}'",
                image.status
            )));
        }
        tracing::info!(image_id = id, status = %to, "image {action}d");
        Ok(())
    }
}
