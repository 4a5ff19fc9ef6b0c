//! The free-form `metadata` of volumes and snapshots: read, merge, replace, and one key at a
//! time. The two resources behave the same except for their policy names and that a volume in
//! `maintenance` or `uploading` refuses changes, so one set of methods serves both.

use std::collections::BTreeMap;

use nubo_common::{Error, Result};

use super::{
    invalid_volume, require_member, snapshot_not_found, volume_not_found, Ctx, VolumeService,
};

/// Whose metadata a call names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataOwner {
    Volume,
    Snapshot,
}

impl MetadataOwner {
    /// The word Cinder's messages use.
    fn label(self) -> &'static str {
        match self {
            MetadataOwner::Volume => "Volume",
            MetadataOwner::Snapshot => "Snapshot",
        }
    }

    fn update_policy(self) -> &'static str {
        match self {
            MetadataOwner::Volume => "volume:update_volume_metadata",
            MetadataOwner::Snapshot => "volume:update_snapshot_metadata",
        }
    }

    fn delete_policy(self) -> &'static str {
        match self {
            MetadataOwner::Volume => "volume:delete_volume_metadata",
            MetadataOwner::Snapshot => "volume:delete_snapshot_metadata",
        }
    }
}

/// The 404 for a key the resource does not have.
pub fn no_such_key(owner: MetadataOwner, id: &str, key: &str) -> Error {
    Error::not_found(format!(
        "{} {id} has no metadata with key {key}.",
        owner.label()
    ))
}

impl VolumeService {
    /// `GET .../{id}/metadata`: the resource's metadata, if the caller may see it.
    pub async fn metadata(
        &self,
        ctx: &Ctx,
        owner: MetadataOwner,
        id: &str,
    ) -> Result<BTreeMap<String, String>> {
        Ok(match owner {
            MetadataOwner::Volume => self.visible_volume(ctx, id).await?.metadata,
            MetadataOwner::Snapshot => self.visible_snapshot(ctx, id).await?.metadata,
        })
    }

    /// Replaces (`replace`) or merges metadata; returns the resulting map.
    pub async fn set_metadata(
        &self,
        ctx: &Ctx,
        owner: MetadataOwner,
        id: &str,
        meta: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let apply = |current: &mut BTreeMap<String, String>| {
            if replace {
                *current = meta;
            } else {
                current.extend(meta);
            }
        };
        match owner {
            MetadataOwner::Volume => {
                let v = self.visible_volume(ctx, id).await?;
                require_member(ctx, owner.update_policy())?;
                if v.status == "maintenance" || v.status == "uploading" {
                    return Err(invalid_volume(format!(
                        "Volume {id} is {}: its metadata cannot change now.",
                        v.status
                    )));
                }
                let row = self
                    .modify_volume(id, |v| {
                        apply(&mut v.metadata);
                        Ok(())
                    })
                    .await?;
                Ok(row.ok_or_else(|| volume_not_found(id))?.metadata)
            }
            MetadataOwner::Snapshot => {
                self.visible_snapshot(ctx, id).await?;
                require_member(ctx, owner.update_policy())?;
                let row = self
                    .modify_snapshot(id, |s| {
                        apply(&mut s.metadata);
                        Ok(())
                    })
                    .await?;
                Ok(row.ok_or_else(|| snapshot_not_found(id))?.metadata)
            }
        }
    }

    /// `DELETE .../{id}/metadata/{key}`: 404 when the key is not there.
    pub async fn delete_metadata(
        &self,
        ctx: &Ctx,
        owner: MetadataOwner,
        id: &str,
        key: &str,
    ) -> Result<()> {
        let current = self.metadata(ctx, owner, id).await?;
        require_member(ctx, owner.delete_policy())?;
        if !current.contains_key(key) {
            return Err(no_such_key(owner, id, key));
        }
        match owner {
            MetadataOwner::Volume => {
                self.modify_volume(id, |v| {
                    v.metadata.remove(key);
                    Ok(())
                })
                .await?;
            }
            MetadataOwner::Snapshot => {
                self.modify_snapshot(id, |s| {
                    s.metadata.remove(key);
                    Ok(())
                })
                .await?;
            }
        }
        Ok(())
    }
}
