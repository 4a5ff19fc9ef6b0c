//! Image members: the projects a `shared` image is offered to, each `pending`, `accepted` or
//! `rejected`. The owner adds and removes members; only the member itself changes its status.
//! Accepted members see the image listed; every member can read it.

use nubo_common::{Caller, Error, Result};

use crate::service::{not_authorized, require_member, require_owner, ImageService};
use crate::store;
use crate::store::images::ImageRow;
use crate::store::members::MemberRow;
use crate::types::Visibility;

pub const MEMBER_STATUSES: &[&str] = &["pending", "accepted", "rejected"];

fn only_shared(image: &ImageRow) -> Result<()> {
    if image.visibility == Visibility::Shared {
        Ok(())
    } else {
        Err(Error::forbidden("Only shared images have members."))
    }
}

fn member_not_found(member_id: &str, image_id: &str) -> Error {
    Error::not_found(format!(
        "{member_id} not found in the member list of the image {image_id}."
    ))
}

/// Whether `caller` may see the membership `member_id` of `image`: admins and the owner see
/// every member, a member only itself.
fn may_see_member(caller: &Caller, image: &ImageRow, member_id: &str) -> bool {
    caller.is_admin()
        || (image.owner.is_some() && caller.project_id() == image.owner.as_deref())
        || caller.project_id() == Some(member_id)
}

impl ImageService {
    /// `POST /v2/images/{id}/members`.
    pub async fn add_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
    ) -> Result<MemberRow> {
        let image = self.visible_image(caller, image_id).await?;
        only_shared(&image)?;
        require_owner(caller, &image, "add_member").map_err(|_| {
            Error::forbidden(format!(
                "Not allowed to create members for image {image_id}."
            ))
        })?;
        if store::members::count(&self.db, image_id).await? as usize >= self.settings.max_members {
            return Err(Error::over_limit(format!(
                "Image member limit exceeded for image {image_id}: the limit is {}.",
                self.settings.max_members
            )));
        }
        let now = nubo_common::time::now_rfc3339();
        let member = MemberRow {
            image_id: image_id.to_string(),
            member_id: member_id.to_string(),
            status: "pending".into(),
            created_at: now.clone(),
            updated_at: now,
        };
        store::members::insert(&self.db, &member)
            .await
            .map_err(|e| {
                if nubo_common::db::is_unique_violation(&e) {
                    Error::conflict(format!(
                        "Member {member_id} is duplicated for image {image_id}"
                    ))
                } else if nubo_common::db::is_foreign_key_violation(&e) {
                    Error::not_found(format!("Image {image_id} not found."))
                } else {
                    e.into()
                }
            })?;
        tracing::info!(image_id, member_id, "image shared");
        Ok(member)
    }

    /// `GET /v2/images/{id}/members`: all members for the owner, the caller's own entry for a
    /// member.
    pub async fn list_members(&self, caller: &Caller, image_id: &str) -> Result<Vec<MemberRow>> {
        let image = self.visible_image(caller, image_id).await?;
        only_shared(&image)?;
        let members = store::members::list(&self.db, image_id).await?;
        Ok(members
            .into_iter()
            .filter(|m| may_see_member(caller, &image, &m.member_id))
            .collect())
    }

    /// `GET /v2/images/{id}/members/{member}`: a membership the caller may not see is a 404.
    pub async fn get_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
    ) -> Result<MemberRow> {
        let image = self.visible_image(caller, image_id).await?;
        if image.visibility != Visibility::Shared || !may_see_member(caller, &image, member_id) {
            return Err(member_not_found(member_id, image_id));
        }
        store::members::get(&self.db, image_id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id, image_id))
    }

    /// `PUT /v2/images/{id}/members/{member}`: the member (or an admin) accepts or rejects.
    pub async fn update_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
        status: &str,
    ) -> Result<MemberRow> {
        let image = self.visible_image(caller, image_id).await?;
        only_shared(&image)?;
        if !may_see_member(caller, &image, member_id) {
            return Err(member_not_found(member_id, image_id));
        }
        let mut member = store::members::get(&self.db, image_id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id, image_id))?;
        // An invalid status is refused before the role check (Glance checks the role first;
        // either way the request fails, and this way a read-only member learns why).
        if !MEMBER_STATUSES.contains(&status) {
            return Err(Error::bad_request(format!(
                "Incorrect request: Status must be one of pending, accepted, rejected (got '{status}')"
            )));
        }
        let is_that_member = caller.project_id() == Some(member_id) && caller.is_member();
        if !caller.is_admin() && !is_that_member {
            return Err(Error::forbidden(format!(
                "Not allowed to update members for image {image_id}."
            )));
        }
        store::members::set_status(&self.db, image_id, member_id, status).await?;
        member.status = status.to_string();
        member.updated_at = nubo_common::time::now_rfc3339();
        tracing::info!(image_id, member_id, status, "image membership changed");
        Ok(member)
    }

    /// `DELETE /v2/images/{id}/members/{member}`: the owner (or an admin) unshares.
    pub async fn delete_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
    ) -> Result<()> {
        let image = self.visible_image(caller, image_id).await?;
        only_shared(&image)?;
        if !may_see_member(caller, &image, member_id) {
            return Err(member_not_found(member_id, image_id));
        }
        if store::members::get(&self.db, image_id, member_id)
            .await?
            .is_none()
        {
            return Err(member_not_found(member_id, image_id));
        }
        require_member(caller, "delete_member")?;
        require_owner(caller, &image, "delete_member")
            .map_err(|_| not_authorized("delete_member"))?;
        store::members::delete(&self.db, image_id, member_id).await?;
        tracing::info!(image_id, member_id, "image unshared");
        Ok(())
    }
}
