//! The agent side of Compute: host registration and heartbeats, the desired state of a host
//! (long-polled), the agent's reports that move the server state machine, answers to host
//! requests; and the admin views of hosts (`os-hypervisors`, `os-services`,
//! `os-availability-zone`, `os-simple-tenant-usage`).

use std::time::Duration;

use nubo_common::{Caller, Error, Result};
use serde_json::{json, Value};

use super::{now, require_admin, require_reader, ComputeService};
use crate::agent_api::{
    DesiredHost, DesiredNic, DesiredPower, DesiredServer, HostRegistered, HostRegistration,
    ObservedHost,
};
use crate::store;
use crate::store::hosts::HostRow;
use crate::store::servers::ServerRow;

/// Is this server handed to its host (past the API's own create steps)?
fn on_host(r: &ServerRow) -> bool {
    r.host.is_some()
        && r.disk_name.is_some()
        && !r.deleting
        && (r.vm_state != "building" || r.task_state.as_deref() == Some("spawning"))
}

pub(crate) fn desired_of(r: &ServerRow) -> DesiredServer {
    DesiredServer {
        id: r.id.clone(),
        name: r.name.clone(),
        vcpus: r.flavor.vcpus.max(1) as u32,
        memory_mb: r.flavor.memory_mb.max(16) as u64,
        disk: r.disk_name.clone().unwrap_or_default(),
        nics: r
            .ports
            .iter()
            .map(|p| DesiredNic {
                port_id: p.port_id.clone(),
                mac: p.mac.clone(),
                tap: crate::agent_api::tap_name(&p.port_id),
            })
            .collect(),
        config_drive: r.config_drive,
        power: DesiredPower::parse(&r.desired_power),
        hard_stop: r.hard_stop,
        reboot_seq: r.reboot_seq.max(0) as u64,
        reboot_hard: r.reboot_hard,
        applied_reboot_seq: r.applied_reboot_seq.max(0) as u64,
        respawn_seq: r.respawn_seq.max(0) as u64,
        applied_respawn_seq: r.applied_respawn_seq.max(0) as u64,
        volumes: Vec::new(),
    }
}

impl ComputeService {
    /// `PUT /internal/v1/hosts/{host}`.
    pub async fn register_host(
        &self,
        name: &str,
        reg: &HostRegistration,
    ) -> Result<HostRegistered> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::bad_request("bad host name"));
        }
        let now = now();
        let row = HostRow {
            name: name.to_string(),
            id: nubo_common::ids::new_uuid(),
            seq: 0,
            vcpus: reg.vcpus as i64,
            memory_mb: reg.memory_mb as i64,
            disk_gb: reg.disk_gb as i64,
            hypervisor_type: reg.hypervisor_type.clone(),
            hypervisor_version: reg.hypervisor_version as i64,
            host_ip: reg.host_ip.clone(),
            availability_zone: if reg.availability_zone.is_empty() {
                self.settings.default_az.clone()
            } else {
                reg.availability_zone.clone()
            },
            enabled: true,
            disabled_reason: None,
            forced_down: false,
            generation: 1,
            last_heartbeat: now.clone(),
            created_at: now.clone(),
            updated_at: now,
        };
        let mut tx = self.write().await?;
        store::hosts::upsert(&mut tx, &row).await?;
        let stored = store::hosts::get(&mut tx, name)
            .await?
            .ok_or_else(|| Error::internal("host vanished"))?;
        tx.commit().await?;
        self.signal_host(name, stored.generation);
        tracing::info!(
            host = name,
            vcpus = reg.vcpus,
            memory_mb = reg.memory_mb,
            "host registered"
        );
        Ok(HostRegistered {
            host_id: stored.id,
            heartbeat_interval: self.settings.heartbeat_interval.as_secs(),
        })
    }

    /// The desired state of `host`, once its generation passes `after` (or after `wait`).
    pub async fn desired_state(
        &self,
        host: &str,
        after: i64,
        wait: Duration,
    ) -> Result<DesiredHost> {
        let mut rx = self.watch_host(host);
        let deadline = tokio::time::Instant::now() + wait.min(Duration::from_secs(60));
        loop {
            let generation = {
                let mut conn = self.read().await?;
                let Some(h) = store::hosts::get(&mut conn, host).await? else {
                    return Err(Error::not_found(format!("Host {host} is not registered")));
                };
                h.generation
            };
            let now = tokio::time::Instant::now();
            if generation > after || now >= deadline {
                return self.desired_snapshot(host).await;
            }
            let step = (deadline - now).min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::timeout(step, rx.changed()) => {}
                // Shutting down: answer with what there is, the agent polls again elsewhere.
                _ = self.shutting_down() => return self.desired_snapshot(host).await,
            }
        }
    }

    async fn desired_snapshot(&self, host: &str) -> Result<DesiredHost> {
        let mut tx = self.db.pool().begin().await?;
        let generation = store::hosts::generation(&mut tx, host).await?;
        let rows = store::servers::on_host(&mut tx, host).await?;
        tx.commit().await?;
        let requests = store::requests::open_for(&self.db, host).await?;
        let mut servers: Vec<DesiredServer> =
            rows.iter().filter(|r| on_host(r)).map(desired_of).collect();
        self.add_desired_volumes(&mut servers).await?;
        Ok(DesiredHost {
            generation: generation.max(0) as u64,
            servers,
            requests,
        })
    }

    /// `POST /internal/v1/hosts/{host}/observed`: the heartbeat, and the state machine moves.
    pub async fn observe(
        self: &std::sync::Arc<Self>,
        host: &str,
        report: &ObservedHost,
    ) -> Result<()> {
        let now = now();
        let mut tx = self.write().await?;
        if !store::hosts::heartbeat(&mut tx, host, &now).await? {
            return Err(Error::not_found(format!("Host {host} is not registered")));
        }
        let rows = store::servers::on_host(&mut tx, host).await?;
        let mut changed = Vec::new();
        let mut to_finalize = Vec::new();
        let mut old_disks = Vec::new();
        let mut orphan_failures = Vec::new();
        for mut row in rows {
            let observed = report.servers.iter().find(|s| s.id == row.id);
            let failed = report.failed.iter().find(|f| f.id == row.id);
            let before = row.clone();
            if row.deleting {
                if observed.is_none() {
                    to_finalize.push(row.id.clone());
                }
                continue;
            }
            if !on_host(&row) {
                continue;
            }
            if let Some(f) = failed {
                if row.vm_state == "building" {
                    if row.observed_reason.is_none() {
                        row.observed_reason = Some(f.reason.clone());
                        if !self.building.lock().contains(&row.id) {
                            orphan_failures.push((row.id.clone(), f.reason.clone()));
                        }
                    }
                } else if observed.is_none() {
                    row.vm_state = "error".into();
                    row.task_state = None;
                    row.power_state = 0;
                    row.fault = Some(store::servers::Fault {
                        code: 500,
                        message: f.reason.clone(),
                        details: None,
                        created: now.clone(),
                    });
                    store::actions::finish(
                        &mut tx,
                        &row.id,
                        "Error",
                        Some("Error"),
                        Some(&f.reason),
                        &now,
                    )
                    .await?;
                }
            }
            if let Some(o) = observed {
                row.power_state = o.power_state as i64;
                row.observed_reason = if row.vm_state == "building" {
                    row.observed_reason.clone()
                } else {
                    o.reason.clone()
                };
                row.applied_reboot_seq = row.applied_reboot_seq.max(o.applied_reboot_seq as i64);
                row.applied_respawn_seq = row.applied_respawn_seq.max(o.applied_respawn_seq as i64);
                let running = o.power_state == 1;
                let mut done = false;
                match row.task_state.as_deref() {
                    Some("spawning") if row.vm_state == "building" && running => {
                        row.vm_state = "active".into();
                        row.launched_at = Some(now.clone());
                        row.observed_reason = None;
                        done = true;
                    }
                    Some("powering-off") if o.power_state == 4 => {
                        row.vm_state = "stopped".into();
                        done = true;
                    }
                    Some("powering-on") | Some("unpausing") | Some("resuming") if running => {
                        row.vm_state = "active".into();
                        done = true;
                    }
                    Some("pausing") if o.power_state == 3 => {
                        row.vm_state = "paused".into();
                        done = true;
                    }
                    Some("suspending") if o.power_state == 7 => {
                        row.vm_state = "suspended".into();
                        done = true;
                    }
                    Some("rebooting") | Some("rebooting_hard")
                        if row.applied_reboot_seq >= row.reboot_seq && running =>
                    {
                        row.vm_state = "active".into();
                        done = true;
                    }
                    Some("rebuilding") | Some("rebuild_spawning")
                        if row.applied_respawn_seq >= row.respawn_seq =>
                    {
                        let want = DesiredPower::parse(&row.desired_power);
                        if (want == DesiredPower::Running && running)
                            || (want == DesiredPower::Shutdown && o.power_state == 4)
                        {
                            row.vm_state = if running {
                                "active".into()
                            } else {
                                "stopped".into()
                            };
                            if let Some(old) = row.old_disk.take() {
                                old_disks.push(old);
                            }
                            done = true;
                        }
                    }
                    Some("image_uploading")
                        if row.applied_respawn_seq >= row.respawn_seq && running =>
                    {
                        done = true;
                    }
                    // Nova's power state sync: a guest that powered itself off is stopped.
                    None if row.vm_state == "active"
                        && (o.power_state == 4 || o.power_state == 6) =>
                    {
                        row.vm_state = "stopped".into();
                        row.desired_power = "shutdown".into();
                    }
                    _ => {}
                }
                if done {
                    row.task_state = None;
                    store::actions::finish(&mut tx, &row.id, "Success", None, None, &now).await?;
                }
            }
            if row != before {
                row.updated_at = now.clone();
                store::servers::update(&mut tx, &row).await?;
                changed.push(row.id.clone());
            }
        }
        tx.commit().await?;
        self.observe_volumes(report).await;
        for id in &changed {
            self.signal_server(id);
        }
        for disk in old_disks {
            if let Err(e) = self.blockstore.delete(&disk).await {
                tracing::warn!(disk = %disk, error = %e, "old disk not deleted");
            }
        }
        for (id, reason) in orphan_failures {
            // No create task owns it (the API restarted): fail it here.
            let this = self.clone();
            tokio::spawn(async move {
                let _ = this
                    .fail_build(
                        &id,
                        500,
                        &format!("Build of instance {id} aborted: {reason}"),
                        None,
                    )
                    .await;
            });
        }
        for id in to_finalize {
            if self.building.lock().contains(&id) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.finalize_delete(&id).await {
                    tracing::warn!(server_id = %id, error = %e, "finishing delete failed");
                }
            });
        }
        Ok(())
    }

    /// `POST /internal/v1/requests/{id}`.
    pub async fn answer_request(
        &self,
        id: &str,
        output: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        store::requests::answer(&self.db, id, output, error).await?;
        self.signal_server(id);
        Ok(())
    }

    /// Admin view of every host with its usage.
    pub async fn hosts_with_usage(&self) -> Result<Vec<super::scheduler::HostState>> {
        let mut conn = self.read().await?;
        self.host_states(&mut conn).await
    }

    // ----- os-hypervisors -----

    fn hypervisor_view(
        &self,
        h: &super::scheduler::HostState,
        detail: bool,
        mv: crate::microversion::Microversion,
        servers: Option<Vec<Value>>,
    ) -> Value {
        let id = if mv.at_least(53) {
            json!(h.host.id)
        } else {
            json!(h.host.seq)
        };
        let up = self.is_up(&h.host);
        let mut v = json!({
            "id": id,
            "hypervisor_hostname": h.host.name,
            "state": if up { "up" } else { "down" },
            "status": if h.host.enabled { "enabled" } else { "disabled" },
        });
        if detail {
            v["hypervisor_type"] = json!(h.host.hypervisor_type);
            v["hypervisor_version"] = json!(h.host.hypervisor_version);
            v["host_ip"] = json!(h.host.host_ip);
            v["service"] = json!({
                "host": h.host.name,
                "id": if mv.at_least(53) { json!(h.host.id) } else { json!(h.host.seq) },
                "disabled_reason": h.host.disabled_reason,
            });
            if !mv.at_least(88) {
                v["vcpus"] = json!(h.host.vcpus);
                v["memory_mb"] = json!(h.host.memory_mb);
                v["local_gb"] = json!(h.host.disk_gb);
                v["vcpus_used"] = json!(h.used_vcpus);
                v["memory_mb_used"] = json!(h.used_ram);
                v["local_gb_used"] = json!(h.used_disk);
                v["free_ram_mb"] = json!(h.host.memory_mb - h.used_ram);
                v["free_disk_gb"] = json!(h.host.disk_gb - h.used_disk);
                v["current_workload"] = json!(0);
                v["running_vms"] = json!(h.servers);
                v["disk_available_least"] = json!(h.host.disk_gb - h.used_disk);
                v["cpu_info"] = if mv.at_least(28) {
                    json!({"arch": "x86_64"})
                } else {
                    json!("{\"arch\": \"x86_64\"}")
                };
            } else {
                v["uptime"] = Value::Null;
            }
        }
        if let Some(s) = servers {
            v["servers"] = json!(s);
        }
        v
    }

    pub async fn list_hypervisors(
        &self,
        caller: &Caller,
        detail: bool,
        mv: crate::microversion::Microversion,
        pattern: Option<&str>,
        with_servers: bool,
    ) -> Result<Vec<Value>> {
        require_admin(caller, "os_compute_api:os-hypervisors:list")?;
        let hosts = self.hosts_with_usage().await?;
        let mut out = Vec::new();
        for h in hosts.iter() {
            if let Some(p) = pattern {
                if !h.host.name.contains(p) {
                    continue;
                }
            }
            let servers = if with_servers {
                let mut conn = self.read().await?;
                let rows = store::servers::on_host(&mut conn, &h.host.name).await?;
                Some(
                    rows.iter()
                        .map(|r| json!({"uuid": r.id, "name": format!("instance-{:08x}", r.seq)}))
                        .collect(),
                )
            } else {
                None
            };
            out.push(self.hypervisor_view(h, detail, mv, servers));
        }
        if pattern.is_some() && out.is_empty() {
            return Err(Error::not_found(format!(
                "No hypervisor matching '{}' could be found.",
                pattern.unwrap_or_default()
            )));
        }
        Ok(out)
    }

    pub async fn get_hypervisor(
        &self,
        caller: &Caller,
        id: &str,
        mv: crate::microversion::Microversion,
        with_servers: bool,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-hypervisors:show")?;
        let hosts = self.hosts_with_usage().await?;
        let h = hosts
            .iter()
            .find(|h| {
                if mv.at_least(53) {
                    h.host.id == id
                } else {
                    h.host.seq.to_string() == id
                }
            })
            .ok_or_else(|| {
                Error::not_found(format!("Hypervisor with ID {id} could not be found."))
            })?;
        let servers = if with_servers {
            let mut conn = self.read().await?;
            let rows = store::servers::on_host(&mut conn, &h.host.name).await?;
            Some(
                rows.iter()
                    .map(|r| json!({"uuid": r.id, "name": format!("instance-{:08x}", r.seq)}))
                    .collect(),
            )
        } else {
            None
        };
        Ok(self.hypervisor_view(h, true, mv, servers))
    }

    pub async fn hypervisor_statistics(&self, caller: &Caller) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-hypervisors:statistics")?;
        let hosts = self.hosts_with_usage().await?;
        let sum =
            |f: &dyn Fn(&super::scheduler::HostState) -> i64| hosts.iter().map(f).sum::<i64>();
        Ok(json!({"hypervisor_statistics": {
            "count": hosts.len(),
            "vcpus": sum(&|h| h.host.vcpus),
            "memory_mb": sum(&|h| h.host.memory_mb),
            "local_gb": sum(&|h| h.host.disk_gb),
            "vcpus_used": sum(&|h| h.used_vcpus),
            "memory_mb_used": sum(&|h| h.used_ram),
            "local_gb_used": sum(&|h| h.used_disk),
            "free_ram_mb": sum(&|h| h.host.memory_mb - h.used_ram),
            "free_disk_gb": sum(&|h| h.host.disk_gb - h.used_disk),
            "current_workload": 0,
            "running_vms": sum(&|h| h.servers),
            "disk_available_least": sum(&|h| h.host.disk_gb - h.used_disk),
        }}))
    }

    // ----- os-services -----

    fn service_view(&self, h: &HostRow, mv: crate::microversion::Microversion) -> Value {
        let mut v = json!({
            "id": if mv.at_least(53) { json!(h.id) } else { json!(h.seq) },
            "binary": "nova-compute",
            "host": h.name,
            "zone": h.availability_zone,
            "status": if h.enabled { "enabled" } else { "disabled" },
            "state": if self.is_up(h) { "up" } else { "down" },
            "updated_at": nubo_common::time::parse(&h.last_heartbeat).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
            "disabled_reason": h.disabled_reason,
        });
        if mv.at_least(11) {
            v["forced_down"] = json!(h.forced_down);
        }
        v
    }

    pub async fn list_services(
        &self,
        caller: &Caller,
        mv: crate::microversion::Microversion,
        host: Option<&str>,
        binary: Option<&str>,
    ) -> Result<Vec<Value>> {
        require_admin(caller, "os_compute_api:os-services:list")?;
        let mut conn = self.read().await?;
        let hosts = store::hosts::list(&mut conn).await?;
        Ok(hosts
            .iter()
            .filter(|h| host.is_none_or(|x| x == h.name))
            .filter(|_| binary.is_none_or(|b| b == "nova-compute"))
            .map(|h| self.service_view(h, mv))
            .collect())
    }

    /// `PUT /os-services/{id}` (2.53+) and the older `PUT /os-services/enable|disable|force-down`.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_service(
        &self,
        caller: &Caller,
        mv: crate::microversion::Microversion,
        id: Option<&str>,
        host: Option<&str>,
        status: Option<&str>,
        reason: Option<&str>,
        forced_down: Option<bool>,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-services:update")?;
        let mut tx = self.write().await?;
        let hosts = store::hosts::list(&mut tx).await?;
        let h = hosts
            .iter()
            .find(|h| {
                id.is_some_and(|i| h.id == i || h.seq.to_string() == i)
                    || host.is_some_and(|x| h.name == x)
            })
            .cloned()
            .ok_or_else(|| Error::not_found("Service not found."))?;
        let now = now();
        if let Some(status) = status {
            let enabled = match status {
                "enabled" => true,
                "disabled" => false,
                _ => {
                    return Err(Error::bad_request(format!(
                        "Invalid input for field/attribute status. Value: {status}."
                    )))
                }
            };
            store::hosts::set_status(
                &mut tx,
                &h.name,
                enabled,
                if enabled { None } else { reason },
                &now,
            )
            .await?;
        }
        if let Some(down) = forced_down {
            store::hosts::set_forced_down(&mut tx, &h.name, down, &now).await?;
        }
        let updated = store::hosts::get(&mut tx, &h.name)
            .await?
            .ok_or_else(|| Error::not_found("Service not found."))?;
        tx.commit().await?;
        Ok(self.service_view(&updated, mv))
    }

    pub async fn delete_service(&self, caller: &Caller, id: &str) -> Result<()> {
        require_admin(caller, "os_compute_api:os-services:delete")?;
        let mut tx = self.write().await?;
        let hosts = store::hosts::list(&mut tx).await?;
        let h = hosts
            .iter()
            .find(|h| h.id == id || h.seq.to_string() == id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Service {id} not found.")))?;
        if !store::servers::on_host(&mut tx, &h.name).await?.is_empty() {
            return Err(Error::conflict(
                "Unable to delete compute service that is hosting instances.",
            ));
        }
        store::hosts::delete(&mut tx, &h.name).await?;
        store::aggregates::forget_host(&mut tx, &h.name).await?;
        tx.commit().await
    }

    // ----- availability zones -----

    pub async fn availability_zones(&self, caller: &Caller, detail: bool) -> Result<Value> {
        require_reader(caller)?;
        if detail {
            require_admin(caller, "os_compute_api:os-availability-zone:detail")?;
        }
        let mut conn = self.read().await?;
        let hosts = store::hosts::list(&mut conn).await?;
        let mut zones: std::collections::BTreeMap<String, Vec<&HostRow>> =
            std::collections::BTreeMap::new();
        for h in &hosts {
            zones
                .entry(h.availability_zone.clone())
                .or_default()
                .push(h);
        }
        let mut out = Vec::new();
        if detail {
            out.push(
                json!({"zoneName": "internal", "zoneState": {"available": true}, "hosts": {}}),
            );
        }
        for (zone, hs) in zones {
            let available = hs.iter().any(|h| self.is_up(h) && h.enabled);
            let hosts_v = if detail {
                let mut m = serde_json::Map::new();
                for h in hs {
                    m.insert(h.name.clone(), json!({"nova-compute": {
                        "available": self.is_up(h),
                        "active": h.enabled,
                        "updated_at": nubo_common::time::parse(&h.last_heartbeat).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
                    }}));
                }
                Value::Object(m)
            } else {
                Value::Null
            };
            out.push(
                json!({"zoneName": zone, "zoneState": {"available": available}, "hosts": hosts_v}),
            );
        }
        Ok(json!({"availabilityZoneInfo": out}))
    }

    // ----- os-simple-tenant-usage -----

    pub async fn tenant_usage(
        &self,
        caller: &Caller,
        project: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        detailed: bool,
    ) -> Result<Value> {
        require_reader(caller)?;
        match project {
            None => require_admin(caller, "os_compute_api:os-simple-tenant-usage:list")?,
            Some(p) if caller.project_id() != Some(p) => {
                require_admin(caller, "os_compute_api:os-simple-tenant-usage:show")?
            }
            _ => {}
        }
        let parse = |t: Option<&str>,
                     default: chrono::DateTime<chrono::Utc>|
         -> Result<chrono::DateTime<chrono::Utc>> {
            match t {
                None => Ok(default),
                Some(t) => nubo_common::time::parse(t).ok_or_else(|| {
                    Error::bad_request(format!(
                        "Invalid start time. The start time cannot occur after the end time. {t}"
                    ))
                }),
            }
        };
        let now_t = chrono::Utc::now();
        let start_t = parse(start, now_t)?;
        let end_t = parse(end, now_t)?;
        if start_t > end_t {
            return Err(Error::bad_request(
                "Invalid start time. The start time cannot occur after the end time.",
            ));
        }
        let rows = {
            let mut conn = self.read().await?;
            store::servers::list(&mut conn, project).await?
        };
        let mut by_project: std::collections::BTreeMap<String, Vec<&ServerRow>> =
            std::collections::BTreeMap::new();
        for r in &rows {
            let created = nubo_common::time::parse(&r.created_at).unwrap_or(now_t);
            if created <= end_t {
                by_project.entry(r.project_id.clone()).or_default().push(r);
            }
        }
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let mut usages = Vec::new();
        for (p, servers) in by_project {
            let (mut hours, mut ram, mut cpu, mut disk) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            let mut list = Vec::new();
            for r in servers {
                let created = nubo_common::time::parse(&r.created_at).unwrap_or(now_t);
                let from = created.max(start_t);
                let h = ((end_t - from).num_milliseconds().max(0) as f64) / 3_600_000.0;
                hours += h;
                ram += h * r.flavor.memory_mb as f64;
                cpu += h * r.flavor.vcpus as f64;
                disk += h * r.flavor.root_gb as f64;
                if detailed {
                    list.push(json!({
                        "instance_id": r.id, "name": r.name, "hours": h,
                        "memory_mb": r.flavor.memory_mb, "local_gb": r.flavor.root_gb,
                        "vcpus": r.flavor.vcpus, "tenant_id": r.project_id, "flavor": r.flavor.name,
                        "started_at": fmt(created), "ended_at": Value::Null,
                        "state": r.vm_state, "uptime": (now_t - created).num_seconds(),
                    }));
                }
            }
            let mut u = json!({
                "tenant_id": p, "total_hours": hours, "total_memory_mb_usage": ram,
                "total_vcpus_usage": cpu, "total_local_gb_usage": disk,
                "start": fmt(start_t), "stop": fmt(end_t),
            });
            if detailed {
                u["server_usages"] = json!(list);
            }
            usages.push(u);
        }
        Ok(match project {
            Some(_) => {
                json!({"tenant_usage": usages.into_iter().next().unwrap_or_else(|| json!({}))})
            }
            None => json!({"tenant_usages": usages}),
        })
    }
}
