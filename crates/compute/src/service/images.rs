//! Nova's image proxy (`/images`, microversions up to 2.35): Glance images seen through
//! Compute, with their metadata (Glance properties).

use std::collections::BTreeMap;

use nubo_common::{Caller, Error, Result};
use nubo_image::service::list::ListQuery;
use serde_json::{json, Value};

use super::ComputeService;

fn patch(ops: Vec<Value>) -> Result<Vec<nubo_image::service::patch::Change>> {
    let body = serde_json::to_vec(&ops).unwrap_or_default();
    nubo_image::service::patch::parse(Some("application/openstack-images-v2.1-json-patch"), &body)
}

impl ComputeService {
    pub async fn proxy_images(
        &self,
        caller: &Caller,
        params: &[(String, String)],
    ) -> Result<Vec<nubo_image::service::compute::BootImage>> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in params {
            match k.as_str() {
                "limit" | "marker" => pairs.push((k.clone(), v.clone())),
                "name" => pairs.push((k.clone(), v.clone())),
                _ => {}
            }
        }
        let q = ListQuery::parse(&pairs)?;
        let page = self.image.list_images(caller, &q).await?;
        let find = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let server = find("server").map(|s| {
            s.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(&s)
                .to_string()
        });
        let kind = find("type");
        Ok(page
            .images
            .into_iter()
            .filter(|i| {
                server
                    .as_ref()
                    .is_none_or(|s| i.properties.get("instance_uuid") == Some(s))
            })
            .filter(|i| match kind.as_deref() {
                None => true,
                Some("snapshot") => {
                    i.properties.get("image_type").map(String::as_str) == Some("snapshot")
                }
                Some(_) => i.properties.get("image_type").map(String::as_str) != Some("snapshot"),
            })
            .map(|image| nubo_image::service::compute::BootImage {
                blockstore_name: String::new(),
                image,
            })
            .collect())
    }

    pub async fn proxy_image(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<nubo_image::service::compute::BootImage> {
        match self.image.get_image(caller, id).await {
            Ok(image) => Ok(nubo_image::service::compute::BootImage {
                blockstore_name: String::new(),
                image,
            }),
            Err(e) if e.is_not_found() => Err(Error::not_found("Image not found.")),
            Err(e) => Err(e),
        }
    }

    pub async fn proxy_delete_image(&self, caller: &Caller, id: &str) -> Result<()> {
        match self.image.delete_image(caller, id).await {
            Err(e) if e.is_not_found() => Err(Error::not_found("Image not found.")),
            other => other,
        }
    }

    /// Sets (merge, or replace all) image metadata; returns the result.
    pub async fn proxy_set_image_metadata(
        &self,
        caller: &Caller,
        id: &str,
        meta: &BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let image = self.proxy_image(caller, id).await?.image;
        let mut ops = Vec::new();
        if replace {
            for k in image.properties.keys() {
                if !meta.contains_key(k) {
                    ops.push(json!({"op": "remove", "path": format!("/{k}")}));
                }
            }
        }
        for (k, v) in meta {
            ops.push(json!({"op": if image.properties.contains_key(k) { "replace" } else { "add" }, "path": format!("/{k}"), "value": v}));
        }
        let row = self.image.update_image(caller, id, &patch(ops)?).await?;
        Ok(row.properties)
    }

    pub async fn proxy_delete_image_metadata(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
    ) -> Result<()> {
        let image = self.proxy_image(caller, id).await?.image;
        if !image.properties.contains_key(key) {
            return Err(Error::not_found("Metadata item was not found"));
        }
        self.image
            .update_image(
                caller,
                id,
                &patch(vec![json!({"op": "remove", "path": format!("/{key}")})])?,
            )
            .await?;
        Ok(())
    }
}
