//! Metadata definitions (Glance's `/v2/metadefs`): namespaces of property, object and tag
//! definitions that dashboards offer when editing images, flavors or volumes, and the resource
//! types they apply to. Writes are admin-only (Glance's default policy); a public namespace is
//! readable by everyone, a private one by its owner project.

use nubo_common::{Caller, Error, Result};
use serde_json::{json, Map, Value};

use crate::service::{require_reader, ImageService};
use crate::store;
use crate::store::metadefs::NamespaceRow;

/// The resource types Glance ships.
pub const RESOURCE_TYPES: &[&str] = &[
    "OS::Glance::Image",
    "OS::Cinder::Volume",
    "OS::Cinder::Snapshot",
    "OS::Nova::Flavor",
    "OS::Nova::Server",
    "OS::Nova::Aggregate",
    "OS::Nova::Instance",
];

fn ns_not_found(name: &str) -> Error {
    Error::not_found(format!(
        "Metadata definition namespace={name} was not found."
    ))
}

fn require_admin(caller: &Caller, action: &str) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "You are not authorized to complete {action} action."
        )))
    }
}

fn field_str(body: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::bad_request(format!(
            "Invalid input: {other} is not of type 'string' ({key})"
        ))),
    }
}

fn required_name(body: &Map<String, Value>, key: &str) -> Result<String> {
    match field_str(body, key)? {
        Some(name) if !name.is_empty() && name.chars().count() <= 80 => Ok(name),
        Some(_) => Err(Error::bad_request(format!(
            "Invalid input: '{key}' must be 1 to 80 characters"
        ))),
        None => Err(Error::bad_request(format!(
            "Invalid input: '{key}' is a required property"
        ))),
    }
}

fn object(body: Value) -> Result<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Error::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

fn now() -> String {
    nubo_common::time::seconds_format(nubo_common::time::now())
}

/// A namespace with what `GET /v2/metadefs/namespaces/{ns}` shows.
pub fn namespace_view(ns: &NamespaceRow, full: bool) -> Value {
    let mut view = Map::new();
    view.insert("namespace".into(), json!(ns.namespace));
    for key in ["display_name", "description"] {
        if let Some(value) = ns.doc.get(key) {
            view.insert(key.into(), value.clone());
        }
    }
    view.insert("visibility".into(), json!(ns.visibility));
    view.insert("protected".into(), json!(ns.protected));
    view.insert("owner".into(), json!(ns.owner));
    view.insert(
        "created_at".into(),
        json!(crate::types::wire_time(&ns.created_at)),
    );
    view.insert(
        "updated_at".into(),
        json!(crate::types::wire_time(&ns.updated_at)),
    );
    view.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    view.insert(
        "self".into(),
        json!(format!("/v2/metadefs/namespaces/{}", ns.namespace)),
    );
    if let Some(Value::Array(rtas)) = ns.doc.get("resource_type_associations") {
        if !rtas.is_empty() {
            view.insert("resource_type_associations".into(), json!(rtas));
        }
    }
    if full {
        if let Some(Value::Object(props)) = ns.doc.get("properties") {
            if !props.is_empty() {
                view.insert("properties".into(), json!(props));
            }
        }
        if let Some(Value::Object(objects)) = ns.doc.get("objects") {
            if !objects.is_empty() {
                let list: Vec<Value> = objects
                    .values()
                    .map(|o| object_view(&ns.namespace, o))
                    .collect();
                view.insert("objects".into(), json!(list));
            }
        }
        if let Some(Value::Array(tags)) = ns.doc.get("tags") {
            if !tags.is_empty() {
                view.insert("tags".into(), json!(tags));
            }
        }
    }
    Value::Object(view)
}

pub fn object_view(namespace: &str, object: &Value) -> Value {
    let mut view = object.clone();
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    view["schema"] = json!("/v2/schemas/metadefs/object");
    view["self"] = json!(format!(
        "/v2/metadefs/namespaces/{namespace}/objects/{name}"
    ));
    view
}

fn doc_map<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = doc
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().expect("just made an object")
}

fn doc_list<'a>(doc: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let entry = doc
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    entry.as_array_mut().expect("just made an array")
}

fn check_visibility(value: Option<String>) -> Result<String> {
    match value.as_deref() {
        None => Ok("private".into()),
        Some(v @ ("public" | "private")) => Ok(v.to_string()),
        Some(other) => Err(Error::bad_request(format!(
            "Invalid input: '{other}' is not one of ['public', 'private'] (visibility)"
        ))),
    }
}

impl ImageService {
    fn can_see_namespace(caller: &Caller, ns: &NamespaceRow) -> bool {
        caller.is_admin()
            || ns.visibility == "public"
            || (ns.owner.is_some() && caller.project_id() == ns.owner.as_deref())
    }

    pub async fn get_namespace(&self, caller: &Caller, name: &str) -> Result<NamespaceRow> {
        require_reader(caller)?;
        let ns = store::metadefs::get(&self.db, name)
            .await?
            .ok_or_else(|| ns_not_found(name))?;
        if Self::can_see_namespace(caller, &ns) {
            Ok(ns)
        } else {
            Err(ns_not_found(name))
        }
    }

    pub async fn list_namespaces(
        &self,
        caller: &Caller,
        params: &[(String, String)],
    ) -> Result<Vec<NamespaceRow>> {
        require_reader(caller)?;
        let visibility = params
            .iter()
            .find(|(k, _)| k == "visibility")
            .map(|(_, v)| v);
        let resource_types: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "resource_types")
            .flat_map(|(_, v)| v.split(','))
            .collect();
        Ok(store::metadefs::list(&self.db)
            .await?
            .into_iter()
            .filter(|ns| Self::can_see_namespace(caller, ns))
            .filter(|ns| visibility.is_none_or(|v| &ns.visibility == v))
            .filter(|ns| {
                resource_types.is_empty()
                    || ns
                        .doc
                        .get("resource_type_associations")
                        .and_then(Value::as_array)
                        .is_some_and(|rtas| {
                            rtas.iter().any(|r| {
                                r.get("name")
                                    .and_then(Value::as_str)
                                    .is_some_and(|n| resource_types.contains(&n))
                            })
                        })
            })
            .collect())
    }

    pub async fn create_namespace(&self, caller: &Caller, body: Value) -> Result<NamespaceRow> {
        require_admin(caller, "add_metadef_namespace")?;
        let mut body = object(body)?;
        let namespace = required_name(&body, "namespace")?;
        let visibility = check_visibility(field_str(&body, "visibility")?)?;
        let protected = body
            .get("protected")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let owner = field_str(&body, "owner")?.or_else(|| caller.project_id().map(str::to_string));
        let mut doc = Map::new();
        for key in ["display_name", "description"] {
            if let Some(value) = field_str(&body, key)? {
                doc.insert(key.into(), json!(value));
            }
        }
        let stamp = now();
        if let Some(Value::Array(rtas)) = body.remove("resource_type_associations") {
            let list: Vec<Value> = rtas
                .into_iter()
                .map(|mut r| {
                    r["created_at"] = json!(stamp);
                    r["updated_at"] = json!(stamp);
                    r
                })
                .collect();
            doc.insert("resource_type_associations".into(), json!(list));
        }
        if let Some(Value::Object(props)) = body.remove("properties") {
            doc.insert("properties".into(), Value::Object(props));
        }
        if let Some(Value::Array(objects)) = body.remove("objects") {
            let mut map = Map::new();
            for o in objects {
                if let Some(name) = o.get("name").and_then(Value::as_str) {
                    map.insert(name.to_string(), o.clone());
                }
            }
            doc.insert("objects".into(), Value::Object(map));
        }
        if let Some(Value::Array(tags)) = body.remove("tags") {
            let list: Vec<Value> = tags
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(|n| json!({"name": n, "created_at": stamp, "updated_at": stamp}))
                .collect();
            doc.insert("tags".into(), json!(list));
        }
        let created = nubo_common::time::now_rfc3339();
        let ns = NamespaceRow {
            namespace: namespace.clone(),
            owner,
            visibility,
            protected,
            doc,
            created_at: created.clone(),
            updated_at: created,
        };
        store::metadefs::insert(&self.db, &ns).await.map_err(|e| {
            if nubo_common::db::is_unique_violation(&e) {
                Error::conflict(format!(
                    "Metadata definition namespace={namespace} already exists."
                ))
            } else {
                e.into()
            }
        })?;
        Ok(ns)
    }

    /// Read-modify-write of one namespace, retried when another writer got there first.
    async fn modify_namespace<T>(
        &self,
        caller: &Caller,
        name: &str,
        action: &str,
        mut change: impl FnMut(&mut NamespaceRow) -> Result<T>,
    ) -> Result<(NamespaceRow, T)> {
        for _ in 0..5 {
            let current = self.get_namespace(caller, name).await?;
            require_admin(caller, action)?;
            let mut updated = current.clone();
            let out = change(&mut updated)?;
            let mut stamp = nubo_common::time::now_rfc3339();
            if stamp == current.updated_at {
                stamp.push('0');
            }
            updated.updated_at = stamp;
            let saved = store::metadefs::save(&self.db, name, &current.updated_at, &updated)
                .await
                .map_err(|e| {
                    if nubo_common::db::is_unique_violation(&e) {
                        Error::conflict(format!(
                            "Metadata definition namespace={} already exists.",
                            updated.namespace
                        ))
                    } else {
                        e.into()
                    }
                })?;
            if saved {
                return Ok((updated, out));
            }
        }
        Err(Error::conflict(
            "The namespace changed concurrently; try again.",
        ))
    }

    pub async fn update_namespace(
        &self,
        caller: &Caller,
        name: &str,
        body: Value,
    ) -> Result<NamespaceRow> {
        let body = object(body)?;
        let new_name = required_name(&body, "namespace")?;
        let visibility = check_visibility(field_str(&body, "visibility")?)?;
        let (ns, ()) = self
            .modify_namespace(caller, name, "modify_metadef_namespace", |ns| {
                ns.namespace = new_name.clone();
                ns.visibility = visibility.clone();
                if let Some(p) = body.get("protected").and_then(Value::as_bool) {
                    ns.protected = p;
                }
                if let Some(owner) = field_str(&body, "owner")? {
                    ns.owner = Some(owner);
                }
                for key in ["display_name", "description"] {
                    match field_str(&body, key)? {
                        Some(v) => {
                            ns.doc.insert(key.into(), json!(v));
                        }
                        None => {
                            ns.doc.remove(key);
                        }
                    }
                }
                Ok(())
            })
            .await?;
        Ok(ns)
    }

    pub async fn delete_namespace(&self, caller: &Caller, name: &str) -> Result<()> {
        let ns = self.get_namespace(caller, name).await?;
        require_admin(caller, "delete_metadef_namespace")?;
        if ns.protected {
            return Err(Error::forbidden(format!(
                "Namespace {name} is protected and cannot be deleted."
            )));
        }
        if !store::metadefs::delete(&self.db, name).await? {
            return Err(ns_not_found(name));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ objects

    pub async fn create_md_object(&self, caller: &Caller, ns: &str, body: Value) -> Result<Value> {
        let mut body = object(body)?;
        let name = required_name(&body, "name")?;
        let stamp = now();
        body.insert("created_at".into(), json!(stamp));
        body.insert("updated_at".into(), json!(stamp));
        body.entry("required").or_insert_with(|| json!([]));
        body.entry("properties").or_insert_with(|| json!({}));
        let value = Value::Object(body);
        let (_, created) = self
            .modify_namespace(caller, ns, "add_metadef_object", |row| {
                let objects = doc_map(&mut row.doc, "objects");
                if objects.contains_key(&name) {
                    return Err(Error::conflict(format!(
                        "A metadata definition object with name={name} already exists in namespace={ns}."
                    )));
                }
                objects.insert(name.clone(), value.clone());
                Ok(value.clone())
            })
            .await?;
        Ok(object_view(ns, &created))
    }

    pub async fn list_md_objects(&self, caller: &Caller, ns: &str) -> Result<Vec<Value>> {
        let row = self.get_namespace(caller, ns).await?;
        Ok(row
            .doc
            .get("objects")
            .and_then(Value::as_object)
            .map(|objects| objects.values().map(|o| object_view(ns, o)).collect())
            .unwrap_or_default())
    }

    pub async fn get_md_object(&self, caller: &Caller, ns: &str, name: &str) -> Result<Value> {
        let row = self.get_namespace(caller, ns).await?;
        row.doc
            .get("objects")
            .and_then(|o| o.get(name))
            .map(|o| object_view(ns, o))
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Metadata definition object not found for namespace={ns} and object={name}"
                ))
            })
    }

    pub async fn update_md_object(
        &self,
        caller: &Caller,
        ns: &str,
        name: &str,
        body: Value,
    ) -> Result<Value> {
        let mut body = object(body)?;
        let new_name = required_name(&body, "name")?;
        let (_, updated) = self
            .modify_namespace(caller, ns, "modify_metadef_object", |row| {
                let objects = doc_map(&mut row.doc, "objects");
                let Some(old) = objects.remove(name) else {
                    return Err(Error::not_found(format!(
                        "Metadata definition object not found for namespace={ns} and object={name}"
                    )));
                };
                if new_name != name && objects.contains_key(&new_name) {
                    return Err(Error::conflict(format!(
                        "A metadata definition object with name={new_name} already exists in namespace={ns}."
                    )));
                }
                body.insert("created_at".into(), old.get("created_at").cloned().unwrap_or(Value::Null));
                body.insert("updated_at".into(), json!(now()));
                body.entry("required").or_insert_with(|| json!([]));
                body.entry("properties").or_insert_with(|| json!({}));
                let value = Value::Object(body.clone());
                objects.insert(new_name.clone(), value.clone());
                Ok(value)
            })
            .await?;
        Ok(object_view(ns, &updated))
    }

    pub async fn delete_md_object(&self, caller: &Caller, ns: &str, name: &str) -> Result<()> {
        self.modify_namespace(caller, ns, "delete_metadef_object", |row| {
            doc_map(&mut row.doc, "objects")
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "Metadata definition object not found for namespace={ns} and object={name}"
                    ))
                })
        })
        .await
        .map(|_| ())
    }

    // --------------------------------------------------------------- properties

    pub async fn create_md_property(
        &self,
        caller: &Caller,
        ns: &str,
        body: Value,
    ) -> Result<Value> {
        let body = object(body)?;
        let name = required_name(&body, "name")?;
        if body.get("title").is_none() || body.get("type").is_none() {
            return Err(Error::bad_request(
                "Invalid input: 'title' and 'type' are required properties",
            ));
        }
        let value = Value::Object(body);
        self.modify_namespace(caller, ns, "add_metadef_property", |row| {
            let props = doc_map(&mut row.doc, "properties");
            if props.contains_key(&name) {
                return Err(Error::conflict(format!(
                    "A metadata definition property with name={name} already exists in namespace={ns}."
                )));
            }
            props.insert(name.clone(), value.clone());
            Ok(())
        })
        .await?;
        Ok(value)
    }

    pub async fn list_md_properties(
        &self,
        caller: &Caller,
        ns: &str,
    ) -> Result<Map<String, Value>> {
        let row = self.get_namespace(caller, ns).await?;
        Ok(row
            .doc
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn get_md_property(&self, caller: &Caller, ns: &str, name: &str) -> Result<Value> {
        let props = self.list_md_properties(caller, ns).await?;
        props.get(name).cloned().ok_or_else(|| {
            Error::not_found(format!(
                "Metadata definition property not found for namespace={ns} and property={name}"
            ))
        })
    }

    pub async fn update_md_property(
        &self,
        caller: &Caller,
        ns: &str,
        name: &str,
        body: Value,
    ) -> Result<Value> {
        let body = object(body)?;
        let new_name = required_name(&body, "name")?;
        let value = Value::Object(body);
        self.modify_namespace(caller, ns, "modify_metadef_property", |row| {
            let props = doc_map(&mut row.doc, "properties");
            if props.remove(name).is_none() {
                return Err(Error::not_found(format!(
                    "Metadata definition property not found for namespace={ns} and property={name}"
                )));
            }
            if new_name != name && props.contains_key(&new_name) {
                return Err(Error::conflict(format!(
                    "A metadata definition property with name={new_name} already exists in namespace={ns}."
                )));
            }
            props.insert(new_name.clone(), value.clone());
            Ok(())
        })
        .await?;
        Ok(value)
    }

    pub async fn delete_md_property(&self, caller: &Caller, ns: &str, name: &str) -> Result<()> {
        self.modify_namespace(caller, ns, "remove_metadef_property", |row| {
            doc_map(&mut row.doc, "properties")
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "Metadata definition property not found for namespace={ns} and property={name}"
                    ))
                })
        })
        .await
        .map(|_| ())
    }

    // --------------------------------------------------------------------- tags

    pub async fn create_md_tag(&self, caller: &Caller, ns: &str, name: &str) -> Result<Value> {
        let stamp = now();
        let tag = json!({"name": name, "created_at": stamp, "updated_at": stamp});
        self.modify_namespace(caller, ns, "add_metadef_tag", |row| {
            let tags = doc_list(&mut row.doc, "tags");
            if tags.iter().any(|t| t["name"] == name) {
                return Err(Error::conflict(format!(
                    "A metadata tag with name={name} already exists in namespace={ns}."
                )));
            }
            tags.push(tag.clone());
            Ok(())
        })
        .await?;
        Ok(tag)
    }

    /// `POST /tags`: replaces every tag of the namespace.
    pub async fn create_md_tags(
        &self,
        caller: &Caller,
        ns: &str,
        body: Value,
    ) -> Result<Vec<Value>> {
        let body = object(body)?;
        let Some(Value::Array(items)) = body.get("tags") else {
            return Err(Error::bad_request(
                "Invalid input: 'tags' is a required property",
            ));
        };
        let stamp = now();
        let mut tags: Vec<Value> = Vec::new();
        for item in items {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                return Err(Error::bad_request(
                    "Invalid input: every tag needs a 'name'",
                ));
            };
            if tags.iter().any(|t| t["name"] == name) {
                return Err(Error::conflict(format!(
                    "A metadata tag with name={name} already exists in namespace={ns}."
                )));
            }
            tags.push(json!({"name": name, "created_at": stamp, "updated_at": stamp}));
        }
        self.modify_namespace(caller, ns, "add_metadef_tags", |row| {
            *doc_list(&mut row.doc, "tags") = tags.clone();
            Ok(())
        })
        .await?;
        Ok(tags)
    }

    pub async fn list_md_tags(&self, caller: &Caller, ns: &str) -> Result<Vec<Value>> {
        let row = self.get_namespace(caller, ns).await?;
        Ok(row
            .doc
            .get("tags")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn get_md_tag(&self, caller: &Caller, ns: &str, name: &str) -> Result<Value> {
        self.list_md_tags(caller, ns)
            .await?
            .into_iter()
            .find(|t| t["name"] == name)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Metadata definition tag not found for namespace={ns} and tag={name}"
                ))
            })
    }

    pub async fn update_md_tag(
        &self,
        caller: &Caller,
        ns: &str,
        name: &str,
        body: Value,
    ) -> Result<Value> {
        let body = object(body)?;
        let new_name = required_name(&body, "name")?;
        let (_, tag) = self
            .modify_namespace(caller, ns, "modify_metadef_tag", |row| {
                let tags = doc_list(&mut row.doc, "tags");
                if new_name != name && tags.iter().any(|t| t["name"] == new_name.as_str()) {
                    return Err(Error::conflict(format!(
                        "A metadata tag with name={new_name} already exists in namespace={ns}."
                    )));
                }
                let Some(tag) = tags.iter_mut().find(|t| t["name"] == name) else {
                    return Err(Error::not_found(format!(
                        "Metadata definition tag not found for namespace={ns} and tag={name}"
                    )));
                };
                tag["name"] = json!(new_name);
                tag["updated_at"] = json!(now());
                Ok(tag.clone())
            })
            .await?;
        Ok(tag)
    }

    pub async fn delete_md_tag(&self, caller: &Caller, ns: &str, name: Option<&str>) -> Result<()> {
        self.modify_namespace(caller, ns, "delete_metadef_tag", |row| {
            let tags = doc_list(&mut row.doc, "tags");
            match name {
                None => tags.clear(),
                Some(name) => {
                    let before = tags.len();
                    tags.retain(|t| t["name"] != name);
                    if tags.len() == before {
                        return Err(Error::not_found(format!(
                            "Metadata definition tag not found for namespace={ns} and tag={name}"
                        )));
                    }
                }
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    // ----------------------------------------------------------- resource types

    pub async fn list_resource_types(&self, caller: &Caller) -> Result<Vec<Value>> {
        require_reader(caller)?;
        let stamp = "2014-08-28T17:13:04Z";
        Ok(RESOURCE_TYPES
            .iter()
            .map(|name| json!({"name": name, "created_at": stamp, "updated_at": stamp}))
            .collect())
    }

    pub async fn create_rt_association(
        &self,
        caller: &Caller,
        ns: &str,
        body: Value,
    ) -> Result<Value> {
        let mut body = object(body)?;
        let name = required_name(&body, "name")?;
        let stamp = now();
        body.insert("created_at".into(), json!(stamp));
        body.insert("updated_at".into(), json!(stamp));
        let value = Value::Object(body);
        self.modify_namespace(caller, ns, "add_metadef_resource_type_association", |row| {
            let list = doc_list(&mut row.doc, "resource_type_associations");
            if list.iter().any(|r| r["name"] == name.as_str()) {
                return Err(Error::conflict(format!(
                    "The metadata definition resource-type association of resource-type={name} to namespace={ns}, already exists."
                )));
            }
            list.push(value.clone());
            Ok(())
        })
        .await?;
        Ok(value)
    }

    pub async fn list_rt_associations(&self, caller: &Caller, ns: &str) -> Result<Vec<Value>> {
        let row = self.get_namespace(caller, ns).await?;
        Ok(row
            .doc
            .get("resource_type_associations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn delete_rt_association(&self, caller: &Caller, ns: &str, name: &str) -> Result<()> {
        self.modify_namespace(caller, ns, "remove_metadef_resource_type_association", |row| {
            let list = doc_list(&mut row.doc, "resource_type_associations");
            let before = list.len();
            list.retain(|r| r["name"] != name);
            if list.len() == before {
                return Err(Error::not_found(format!(
                    "The metadata definition resource-type association of resource-type={name} to namespace={ns}, was not found."
                )));
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }
}
