//! Server actions beyond the power ones: `createBackup` (a snapshot with rotation),
//! diagnostics, `injectNetworkInfo`, `migrate` and `restore` (their state checks: Nubo has no
//! cold migration and no soft delete), and what remains of a deleted server (its instance
//! actions, visible from 2.21 on).

use std::collections::BTreeMap;
use std::sync::Arc;

use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::servers::server_not_found;
use super::{now, require_admin, require_member, require_reader, ComputeService, Tx};
use crate::microversion::Microversion;
use crate::store;
use crate::store::actions::{ActionRow, EventRow};
use crate::store::servers::ServerRow;

fn invalid(field: &str) -> Error {
    Error::bad_request(format!("Invalid input for field/attribute {field}."))
}

fn conflict(id: &str, action: &str, row: &ServerRow) -> Error {
    match &row.task_state {
        Some(task) => Error::conflict(format!(
            "Cannot '{action}' instance {id} while it is in task_state {task}"
        )),
        None => Error::conflict(format!(
            "Cannot '{action}' instance {id} while it is in vm_state {}",
            row.vm_state
        )),
    }
}

/// Nova's power_state names (`STATE_MAP`), as diagnostics say them.
fn power_name(state: i64) -> &'static str {
    match state {
        1 => "running",
        3 => "paused",
        4 => "shutdown",
        6 => "crashed",
        7 => "suspended",
        _ => "pending",
    }
}

impl ComputeService {
    /// `createBackup {name, backup_type, rotation, metadata}`: a snapshot image with
    /// `image_type=backup`; once it is active, the oldest backups of that type beyond
    /// `rotation` are deleted. Returns the image id and the rotation.
    pub async fn create_backup(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<(String, i64)> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-create-backup")?;
        let b = body
            .get("createBackup")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("createBackup"))?;
        if let Some(extra) = b
            .keys()
            .find(|k| !["name", "backup_type", "rotation", "metadata"].contains(&k.as_str()))
        {
            return Err(Error::bad_request(format!(
                "Invalid input for field/attribute createBackup. Additional properties are not allowed ('{extra}' was unexpected)"
            )));
        }
        let name = match b.get("name") {
            Some(Value::String(n))
                if !n.is_empty() && n.chars().count() <= 255 && n.trim() == n =>
            {
                n.clone()
            }
            _ => return Err(invalid("name")),
        };
        let kind = match b.get("backup_type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(invalid("backup_type")),
        };
        let rotation = match b.get("rotation") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            _ => None,
        }
        .filter(|r| *r >= 0)
        .ok_or_else(|| invalid("rotation"))?;
        let properties: BTreeMap<String, String> = match b.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(m) => super::servers::parse_metadata(m)?,
        };
        let image = self
            .snapshot_to_image(
                caller,
                &row,
                name,
                properties,
                Some((kind, rotation)),
                "createBackup",
                request_id,
            )
            .await?;
        Ok((image, rotation))
    }

    /// Deletes the oldest backups of `server` of type `kind` beyond the newest `rotation`.
    pub(crate) async fn rotate_backups(
        &self,
        caller: &Caller,
        server: &str,
        kind: &str,
        rotation: i64,
    ) {
        let pairs: Vec<(String, String)> = [
            ("instance_uuid", server),
            ("image_type", "backup"),
            ("backup_type", kind),
            ("sort_key", "created_at"),
            ("sort_dir", "desc"),
            ("limit", "1000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let listed = match nubo_image::service::list::ListQuery::parse(&pairs) {
            Ok(q) => self.image.list_images(caller, &q).await,
            Err(e) => Err(e),
        };
        let images = match listed {
            Ok(page) => page.images,
            Err(e) => {
                tracing::warn!(server_id = %server, error = %e, "backups not listed for rotation");
                return;
            }
        };
        for old in images.iter().skip(rotation.max(0) as usize) {
            match self.image.delete_image(caller, old.id.as_str()).await {
                Ok(()) => {
                    tracing::info!(server_id = %server, image_id = %old.id, "old backup rotated out")
                }
                Err(e) => {
                    tracing::warn!(server_id = %server, image_id = %old.id, error = %e, "old backup not deleted")
                }
            }
        }
    }

    /// `GET /servers/{id}/diagnostics` (admin): what the control plane knows of the VM, in
    /// the standard shape from 2.48 (counters it does not collect are null) and as a flat
    /// map before.
    pub async fn server_diagnostics(
        &self,
        caller: &Caller,
        id: &str,
        mv: Microversion,
    ) -> Result<Value> {
        let row = self.visible_server(caller, id).await?;
        require_admin(caller, "os_compute_api:os-server-diagnostics")?;
        let Some(host) = row.host.clone() else {
            return Err(Error::conflict(format!(
                "Instance {id} is not ready yet: it has no host."
            )));
        };
        if row.vm_state == "building" {
            return Err(conflict(id, "get_diagnostics", &row));
        }
        let hypervisor = {
            let mut conn = self.read().await?;
            store::hosts::get(&mut conn, &host)
                .await?
                .map(|h| h.hypervisor_type.to_ascii_lowercase())
        };
        let uptime = match (&row.launched_at, row.power_state) {
            (Some(t), 1) => {
                nubo_common::time::parse(t).map(|t| (chrono::Utc::now() - t).num_seconds().max(0))
            }
            _ => None,
        };
        let disks = 1 + usize::from(row.config_drive);
        if !mv.at_least(48) {
            let mut v = json!({
                "memory": row.flavor.memory_mb * 1024,
                "state": power_name(row.power_state),
                "num_cpus": row.flavor.vcpus,
                "num_nics": row.ports.len(),
                "num_disks": disks,
            });
            if let Some(u) = uptime {
                v["uptime"] = json!(u);
            }
            return Ok(v);
        }
        let null_nic = |mac: &str| {
            json!({
                "mac_address": mac, "rx_octets": null, "rx_errors": null, "rx_drop": null,
                "rx_packets": null, "rx_rate": null, "tx_octets": null, "tx_errors": null,
                "tx_drop": null, "tx_packets": null, "tx_rate": null,
            })
        };
        Ok(json!({
            "state": power_name(row.power_state),
            "driver": "libvirt",
            "hypervisor": hypervisor,
            "hypervisor_os": "linux",
            "uptime": uptime,
            "config_drive": row.config_drive,
            "num_cpus": row.flavor.vcpus,
            "num_nics": row.ports.len(),
            "num_disks": disks,
            "memory_details": {"maximum": row.flavor.memory_mb, "used": null},
            "cpu_details": (0..row.flavor.vcpus.max(0))
                .map(|i| json!({"id": i, "time": null, "utilisation": null}))
                .collect::<Vec<_>>(),
            "nic_details": row.ports.iter().map(|p| null_nic(&p.mac)).collect::<Vec<_>>(),
            "disk_details": (0..disks)
                .map(|_| json!({"read_bytes": null, "read_requests": null, "write_bytes": null,
                    "write_requests": null, "errors_count": null}))
                .collect::<Vec<_>>(),
        }))
    }

    /// `injectNetworkInfo` (admin): the guest reads its network from DHCP, the metadata
    /// service and the config drive, which always reflect the ports; nothing to push.
    pub async fn inject_network_info(
        &self,
        caller: &Caller,
        id: &str,
        request_id: &str,
    ) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_admin(
            caller,
            "os_compute_api:os-admin-actions:inject_network_info",
        )?;
        if row.host.is_none() || row.deleting {
            return Err(conflict(id, "inject_network_info", &row));
        }
        let mut tx = self.write().await?;
        store::actions::record(
            &mut tx,
            id,
            "inject_network_info",
            request_id,
            &caller.user_id,
            &row.project_id,
            "compute_inject_network_info",
            row.host.as_deref(),
            &now(),
        )
        .await?;
        store::actions::finish(&mut tx, id, "Success", None, None, &now()).await?;
        tx.commit().await
    }

    /// `migrate` (admin; a target `host` from 2.56): Nova's state checks, then a host other
    /// than the current one. Nubo does not move servers between hosts yet, so a migration that
    /// passes the checks is refused as Nova refuses one with nowhere to go.
    pub async fn migrate_server(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
        mv: Microversion,
    ) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_admin(caller, "os_compute_api:os-migrate-server:migrate")?;
        let target = match body.get("migrate") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                if let Some(extra) = m.keys().find(|k| !(mv.at_least(56) && *k == "host")) {
                    return Err(Error::bad_request(format!(
                        "Invalid input for field/attribute migrate. Additional properties are not allowed ('{extra}' was unexpected)"
                    )));
                }
                match m.get("host") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(h)) => Some(h.clone()),
                    Some(_) => return Err(invalid("host")),
                }
            }
            Some(_) => return Err(invalid("migrate")),
        };
        if row.locked && !caller.is_admin() {
            return Err(Error::conflict(format!("Instance {id} is locked")));
        }
        if !["active", "stopped"].contains(&row.vm_state.as_str())
            || row.task_state.is_some()
            || row.deleting
        {
            return Err(conflict(id, "migrate", &row));
        }
        let hosts = {
            let mut conn = self.read().await?;
            store::hosts::list(&mut conn).await?
        };
        if let Some(t) = &target {
            if !hosts.iter().any(|h| &h.name == t) {
                return Err(Error::bad_request(format!(
                    "Compute host {t} could not be found."
                )));
            }
            if row.host.as_deref() == Some(t.as_str()) {
                return Err(Error::bad_request(format!(
                    "Unable to migrate instance ({id}) to current host ({t})."
                )));
            }
        }
        let others = hosts
            .iter()
            .filter(|h| row.host.as_deref() != Some(h.name.as_str()))
            .filter(|h| self.is_up(h) && h.enabled)
            .count();
        if others == 0 {
            return Err(Error::bad_request(
                "No valid host was found. No valid host found for cold migrate",
            ));
        }
        Err(Error::bad_request(
            "No valid host was found. Cold migration between hosts is not offered by this cloud.",
        ))
    }

    /// `restore` of a soft-deleted server: Nubo deletes at once (no `reclaim_instance_interval`),
    /// so no server is ever soft-deleted and every restore is a 409, as Nova answers for a
    /// server that is not.
    pub async fn restore_server(&self, caller: &Caller, id: &str) -> Result<()> {
        let row = self.visible_server(caller, id).await?;
        require_member(caller, "os_compute_api:os-deferred-delete:restore")?;
        Err(conflict(id, "restore", &row))
    }

    /// Keeps what outlives a server inside its final delete: who owned it (for its instance
    /// actions), the delete action finished; its group memberships and hints go.
    pub(crate) async fn forget_server(&self, tx: &mut Tx, row: &ServerRow) -> Result<()> {
        let now = now();
        store::deleted::insert(
            tx,
            &store::deleted::DeletedRow {
                id: row.id.clone(),
                project_id: row.project_id.clone(),
                user_id: row.user_id.clone(),
                name: row.name.clone(),
                created_at: row.created_at.clone(),
                deleted_at: now.clone(),
            },
        )
        .await?;
        store::actions::finish(tx, &row.id, "Success", None, None, &now).await?;
        self.forget_hints(tx, &row.id).await
    }

    /// Whose actions these are: the server's, or from 2.21 a deleted server's.
    async fn actions_visible(&self, caller: &Caller, id: &str, mv: Microversion) -> Result<()> {
        match self.visible_server(caller, id).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() && mv.at_least(21) => {
                require_reader(caller)?;
                let mut conn = self.read().await?;
                match store::deleted::get(&mut conn, id).await? {
                    Some(d)
                        if caller.is_admin()
                            || caller.project_id() == Some(d.project_id.as_str()) =>
                    {
                        Ok(())
                    }
                    _ => Err(server_not_found(id)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /servers/{id}/os-instance-actions` at `mv`.
    pub async fn instance_actions_at(
        &self,
        caller: &Caller,
        id: &str,
        mv: Microversion,
    ) -> Result<Vec<ActionRow>> {
        self.actions_visible(caller, id, mv).await?;
        let mut conn = self.read().await?;
        store::actions::list(&mut conn, id).await
    }

    /// `GET /servers/{id}/os-instance-actions/{request_id}` at `mv`.
    pub async fn instance_action_at(
        &self,
        caller: &Caller,
        id: &str,
        request_id: &str,
        mv: Microversion,
    ) -> Result<(ActionRow, Vec<EventRow>)> {
        self.actions_visible(caller, id, mv).await?;
        let mut conn = self.read().await?;
        let action = store::actions::list(&mut conn, id)
            .await?
            .into_iter()
            .find(|a| a.request_id == request_id)
            .ok_or_else(|| Error::not_found(format!("Action {request_id} not found")))?;
        let events = store::actions::events(&mut conn, action.id).await?;
        Ok((action, events))
    }
}
