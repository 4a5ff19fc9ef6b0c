//! Tags on networks, subnets, ports, routers, subnet pools, security groups and floating IPs
//! (`/{collection}/{id}/tags[/{tag}]`): who may see the resource may read its tags, who may
//! change it may change them.

use nubo_common::{Error, Result};
use serde_json::{json, Value};

use super::{policy, Access, Ctx, NetworkService};
use crate::store::{self, Conn};

/// The collections that carry tags.
pub const TAGGABLE: &[&str] = &[
    "networks",
    "subnets",
    "ports",
    "routers",
    "subnetpools",
    "security-groups",
    "floatingips",
];

const MAX_TAG_LEN: usize = 255;

fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG_LEN || tag.contains(',') || tag.contains('/')
    {
        return Err(Error::bad_request(format!(
            "Invalid input for operation: '{tag}' is not a valid tag."
        ))
        .with_kind("InvalidInput"));
    }
    Ok(())
}

impl NetworkService {
    /// Finds the tagged resource as the caller sees it; returns whether the caller may change it.
    async fn tag_target(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        collection: &str,
        id: &str,
    ) -> Result<bool> {
        let access = Access::load(conn).await?;
        Ok(match collection {
            "networks" => {
                let n = self.visible_network(conn, ctx, &access, id).await?;
                ctx.owns(&n.project_id)
            }
            "subnets" => {
                let (s, n) = self.visible_subnet(conn, ctx, &access, id).await?;
                ctx.owns(&s.project_id) || ctx.owns(&n.project_id)
            }
            "ports" => {
                let p = self.visible_port(conn, ctx, id).await?;
                ctx.owns(&p.project_id) || ctx.admin
            }
            "routers" => {
                self.visible_router(conn, ctx, id).await?;
                true
            }
            "subnetpools" => match store::subnetpools::get(conn, id).await? {
                Some(p) if Self::can_see_pool(ctx, &p) => ctx.owns(&p.project_id),
                _ => return Err(super::not_found("Subnet pool", id)),
            },
            "security-groups" => {
                self.visible_group(conn, ctx, id).await?;
                true
            }
            "floatingips" => match store::floatingips::get(conn, id).await? {
                Some(f) if ctx.owns(&f.project_id) => true,
                _ => return Err(super::not_found("Floating IP", id)),
            },
            _ => return Err(Error::not_found("The resource could not be found.")),
        })
    }

    async fn tag_write_target(
        &self,
        conn: &mut Conn,
        ctx: &Ctx,
        collection: &str,
        id: &str,
    ) -> Result<()> {
        if !self.tag_target(conn, ctx, collection, id).await? {
            return Err(policy("update_tags"));
        }
        ctx.require_member("update_tags")
    }

    pub async fn list_tags(&self, ctx: &Ctx, collection: &str, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        self.tag_target(&mut conn, ctx, collection, id).await?;
        Ok(json!({"tags": store::tags::of(&mut conn, collection, id).await?}))
    }

    /// `GET .../tags/{tag}`: Ok when present, 404 otherwise.
    pub async fn check_tag(&self, ctx: &Ctx, collection: &str, id: &str, tag: &str) -> Result<()> {
        let mut conn = self.read().await?;
        self.tag_target(&mut conn, ctx, collection, id).await?;
        if store::tags::of(&mut conn, collection, id)
            .await?
            .iter()
            .any(|t| t == tag)
        {
            Ok(())
        } else {
            Err(tag_not_found(collection, id, tag))
        }
    }

    pub async fn replace_tags(
        &self,
        ctx: &Ctx,
        collection: &str,
        id: &str,
        body: Value,
    ) -> Result<Value> {
        let tags: Vec<String> = match body.get("tags") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::bad_request("Invalid input for tags. Reason: not a list of strings.")
                        .with_kind("HTTPBadRequest")
                })?,
            _ => {
                return Err(Error::bad_request(
                    "Invalid input for tags. Reason: 'tags' is required.",
                )
                .with_kind("HTTPBadRequest"))
            }
        };
        for t in &tags {
            check_tag(t)?;
        }
        let mut tx = self.write().await?;
        self.tag_write_target(&mut tx, ctx, collection, id).await?;
        store::tags::clear(&mut tx, collection, id).await?;
        for t in &tags {
            store::tags::add(&mut tx, collection, id, t).await?;
        }
        let now_tags = store::tags::of(&mut tx, collection, id).await?;
        tx.commit().await?;
        Ok(json!({ "tags": now_tags }))
    }

    pub async fn add_tag(&self, ctx: &Ctx, collection: &str, id: &str, tag: &str) -> Result<()> {
        check_tag(tag)?;
        let mut tx = self.write().await?;
        self.tag_write_target(&mut tx, ctx, collection, id).await?;
        store::tags::add(&mut tx, collection, id, tag).await?;
        tx.commit().await
    }

    pub async fn remove_tag(&self, ctx: &Ctx, collection: &str, id: &str, tag: &str) -> Result<()> {
        let mut tx = self.write().await?;
        self.tag_write_target(&mut tx, ctx, collection, id).await?;
        if !store::tags::remove(&mut tx, collection, id, tag).await? {
            return Err(tag_not_found(collection, id, tag));
        }
        tx.commit().await
    }

    pub async fn clear_tags(&self, ctx: &Ctx, collection: &str, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        self.tag_write_target(&mut tx, ctx, collection, id).await?;
        store::tags::clear(&mut tx, collection, id).await?;
        tx.commit().await
    }
}

fn tag_not_found(collection: &str, id: &str, tag: &str) -> Error {
    Error::not_found(format!(
        "Tag {tag} could not be found for {} {id}.",
        collection.trim_end_matches('s')
    ))
    .with_kind("TagNotFound")
}
