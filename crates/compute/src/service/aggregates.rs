//! Admin views of hosts beyond hypervisors and services: host aggregates (`os-aggregates`,
//! whose `availability_zone` becomes the zone of their hosts), `os-hosts` (deprecated at 2.43)
//! and `os-instance_usage_audit_log`.
//!
//! A host takes the zone of the first aggregate with a zone it belongs to (`store::hosts`
//! reads it so), so the scheduler's zone filter, `os-availability-zone`, `os-services` and the
//! servers' `OS-EXT-AZ:availability_zone` all follow aggregates. As in Nova, a host cannot be
//! in two aggregates with different zones, and a zone cannot change under servers.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, TimeZone, Utc};
use nubo_common::{Caller, Error, Result};
use serde_json::{json, Map, Value};

use super::{now, require_admin, ComputeService};
use crate::microversion::Microversion;
use crate::store;
use crate::store::aggregates::AggregateRow;

fn invalid(field: &str) -> Error {
    Error::bad_request(format!("Invalid input for field/attribute {field}."))
}

fn aggregate_not_found(id: &str) -> Error {
    Error::not_found(format!("Aggregate {id} could not be found."))
}

/// `2019-10-08T15:15:27.988513` (Nova's aggregate timestamps: no zone).
fn nova_time(t: &str) -> String {
    nubo_common::time::parse(t)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && name.trim() == name
        && !name.chars().any(char::is_control)
}

/// An aggregate as Nova shows it (`full`: with hosts and metadata, all but create).
pub fn aggregate_view(mv: Microversion, a: &AggregateRow, full: bool) -> Value {
    let mut v = Map::new();
    v.insert("availability_zone".into(), json!(a.availability_zone));
    v.insert("created_at".into(), json!(nova_time(&a.created_at)));
    v.insert("deleted".into(), json!(false));
    v.insert("deleted_at".into(), Value::Null);
    v.insert("id".into(), json!(a.id));
    v.insert("name".into(), json!(a.name));
    v.insert(
        "updated_at".into(),
        json!(a.updated_at.as_deref().map(nova_time)),
    );
    if mv.at_least(41) {
        v.insert("uuid".into(), json!(a.uuid));
    }
    if full {
        v.insert("hosts".into(), json!(a.hosts));
        v.insert("metadata".into(), json!(a.metadata));
    }
    Value::Object(v)
}

/// An optional zone name in a request (`null` clears it).
fn zone_of(v: Option<&Value>) -> Result<Option<Option<String>>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(z)) if valid_name(z) => Ok(Some(Some(z.clone()))),
        Some(_) => Err(invalid("availability_zone")),
    }
}

impl ComputeService {
    async fn aggregate(&self, id: &str) -> Result<AggregateRow> {
        let n: i64 = id.parse().map_err(|_| aggregate_not_found(id))?;
        let mut conn = self.read().await?;
        store::aggregates::get(&mut conn, n)
            .await?
            .ok_or_else(|| aggregate_not_found(id))
    }

    pub async fn list_aggregates(&self, caller: &Caller, mv: Microversion) -> Result<Vec<Value>> {
        require_admin(caller, "os_compute_api:os-aggregates:index")?;
        let mut conn = self.read().await?;
        Ok(store::aggregates::list(&mut conn)
            .await?
            .iter()
            .map(|a| aggregate_view(mv, a, true))
            .collect())
    }

    pub async fn get_aggregate(
        &self,
        caller: &Caller,
        id: &str,
        mv: Microversion,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-aggregates:show")?;
        Ok(aggregate_view(mv, &self.aggregate(id).await?, true))
    }

    /// `POST /os-aggregates {"aggregate": {"name", "availability_zone"}}`.
    pub async fn create_aggregate(
        &self,
        caller: &Caller,
        body: &Value,
        mv: Microversion,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-aggregates:create")?;
        let a = body
            .get("aggregate")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("aggregate"))?;
        if let Some(extra) = a.keys().find(|k| *k != "name" && *k != "availability_zone") {
            return Err(Error::bad_request(format!(
                "Invalid input for field/attribute aggregate. Additional properties are not allowed ('{extra}' was unexpected)"
            )));
        }
        let name = match a.get("name") {
            Some(Value::String(n)) if valid_name(n) => n.clone(),
            _ => return Err(invalid("name")),
        };
        let zone = zone_of(a.get("availability_zone"))?.flatten();
        let mut metadata = BTreeMap::new();
        if let Some(z) = &zone {
            metadata.insert("availability_zone".to_string(), z.clone());
        }
        let mut row = AggregateRow {
            id: 0,
            uuid: nubo_common::ids::new_uuid(),
            name,
            availability_zone: zone,
            metadata,
            created_at: now(),
            updated_at: None,
            hosts: Vec::new(),
        };
        let mut tx = self.write().await?;
        if store::aggregates::get_by_name(&mut tx, &row.name)
            .await?
            .is_some()
        {
            return Err(Error::conflict(format!(
                "Aggregate {} already exists.",
                row.name
            )));
        }
        row.id = store::aggregates::insert(&mut tx, &row).await?;
        tx.commit().await?;
        tracing::info!(aggregate_id = row.id, name = %row.name, "aggregate created");
        Ok(aggregate_view(mv, &row, false))
    }

    /// `PUT /os-aggregates/{id}`: name and zone.
    pub async fn update_aggregate(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
        mv: Microversion,
    ) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-aggregates:update")?;
        let a = body
            .get("aggregate")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("aggregate"))?;
        if a.is_empty() {
            return Err(invalid("aggregate"));
        }
        if let Some(extra) = a.keys().find(|k| *k != "name" && *k != "availability_zone") {
            return Err(Error::bad_request(format!(
                "Invalid input for field/attribute aggregate. Additional properties are not allowed ('{extra}' was unexpected)"
            )));
        }
        let name = match a.get("name") {
            None => None,
            Some(Value::String(n)) if valid_name(n) => Some(n.clone()),
            Some(_) => return Err(invalid("name")),
        };
        let zone = zone_of(a.get("availability_zone"))?;
        let mut row = self.aggregate(id).await?;
        let mut tx = self.write().await?;
        if let Some(n) = name {
            if n != row.name && store::aggregates::get_by_name(&mut tx, &n).await?.is_some() {
                return Err(Error::conflict(format!("Aggregate {n} already exists.")));
            }
            row.name = n;
        }
        if let Some(z) = zone {
            self.check_zone_change(&mut tx, &row, z.as_deref()).await?;
            match &z {
                Some(z) => row.metadata.insert("availability_zone".into(), z.clone()),
                None => row.metadata.remove("availability_zone"),
            };
            row.availability_zone = z;
        }
        row.updated_at = Some(now());
        store::aggregates::update(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(aggregate_view(mv, &row, true))
    }

    /// A zone may change only when no host of the aggregate is in another aggregate with
    /// another zone, and no server runs on its hosts (Nova's checks).
    async fn check_zone_change(
        &self,
        tx: &mut sqlx::SqliteConnection,
        row: &AggregateRow,
        zone: Option<&str>,
    ) -> Result<()> {
        if row.availability_zone.as_deref() == zone {
            return Ok(());
        }
        let all = store::aggregates::list(tx).await?;
        for host in &row.hosts {
            for other in all
                .iter()
                .filter(|o| o.id != row.id && o.hosts.contains(host))
            {
                if let (Some(theirs), Some(ours)) = (&other.availability_zone, zone) {
                    if theirs != ours {
                        return Err(Error::bad_request(format!(
                            "Cannot update aggregate {}. Reason: One or more hosts already in availability zone(s) {theirs}.",
                            row.id
                        )));
                    }
                }
            }
            if !store::servers::on_host(tx, host).await?.is_empty() {
                return Err(Error::bad_request(format!(
                    "Cannot update aggregate {}. Reason: One or more hosts contain instances in this zone.",
                    row.id
                )));
            }
        }
        Ok(())
    }

    pub async fn delete_aggregate(&self, caller: &Caller, id: &str) -> Result<()> {
        require_admin(caller, "os_compute_api:os-aggregates:delete")?;
        let row = self.aggregate(id).await?;
        if !row.hosts.is_empty() {
            return Err(Error::bad_request(format!(
                "Cannot remove aggregate {id}. Reason: Host aggregate is not empty."
            )));
        }
        let mut tx = self.write().await?;
        store::aggregates::delete(&mut tx, row.id).await?;
        tx.commit().await
    }

    /// `POST /os-aggregates/{id}/action`: `add_host`, `remove_host`, `set_metadata`.
    pub async fn aggregate_action(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
        mv: Microversion,
    ) -> Result<Value> {
        let obj = body
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| Error::bad_request("Invalid request body: one action is expected."))?;
        let (action, arg) = obj.iter().next().expect("one key");
        let host_arg = || -> Result<String> {
            match arg.get("host") {
                Some(Value::String(h)) if !h.is_empty() && h.len() <= 255 => Ok(h.clone()),
                _ => Err(invalid("host")),
            }
        };
        match action.as_str() {
            "add_host" => {
                require_admin(caller, "os_compute_api:os-aggregates:add_host")?;
                let host = host_arg()?;
                let mut row = self.aggregate(id).await?;
                let mut tx = self.write().await?;
                if store::hosts::get(&mut tx, &host).await?.is_none() {
                    return Err(Error::not_found(format!(
                        "Compute host {host} could not be found."
                    )));
                }
                if row.hosts.contains(&host) {
                    return Err(Error::conflict(format!(
                        "Aggregate {id} already has host {host}."
                    )));
                }
                if let Some(ours) = &row.availability_zone {
                    let all = store::aggregates::list(&mut tx).await?;
                    if let Some(theirs) = all
                        .iter()
                        .filter(|o| o.id != row.id && o.hosts.contains(&host))
                        .filter_map(|o| o.availability_zone.clone())
                        .find(|z| z != ours)
                    {
                        return Err(Error::conflict(format!(
                            "Cannot add host to aggregate {id}. Reason: One or more hosts already in availability zone(s) {theirs}."
                        )));
                    }
                    if !store::servers::on_host(&mut tx, &host).await?.is_empty() {
                        let current = store::hosts::get(&mut tx, &host).await?;
                        if current.is_some_and(|h| &h.availability_zone != ours) {
                            return Err(Error::conflict(format!(
                                "Cannot add host to aggregate {id}. Reason: Host {host} has instances in another availability zone."
                            )));
                        }
                    }
                }
                store::aggregates::add_host(&mut tx, row.id, &host).await?;
                tx.commit().await?;
                row.hosts.push(host);
                Ok(aggregate_view(mv, &row, true))
            }
            "remove_host" => {
                require_admin(caller, "os_compute_api:os-aggregates:remove_host")?;
                let host = host_arg()?;
                let mut row = self.aggregate(id).await?;
                if !row.hosts.contains(&host) {
                    return Err(Error::not_found(format!(
                        "Cannot remove host {host} from aggregate {id}: it is not in it."
                    )));
                }
                let mut tx = self.write().await?;
                if row.availability_zone.is_some()
                    && !store::servers::on_host(&mut tx, &host).await?.is_empty()
                {
                    return Err(Error::conflict(format!(
                        "Cannot remove host {host} from aggregate {id}. Reason: Host has instances in this availability zone."
                    )));
                }
                store::aggregates::remove_host(&mut tx, row.id, &host).await?;
                tx.commit().await?;
                row.hosts.retain(|h| h != &host);
                Ok(aggregate_view(mv, &row, true))
            }
            "set_metadata" => {
                require_admin(caller, "os_compute_api:os-aggregates:set_metadata")?;
                let meta = arg
                    .get("metadata")
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid("metadata"))?;
                let mut row = self.aggregate(id).await?;
                let mut zone: Option<Option<String>> = None;
                for (k, v) in meta {
                    if k.is_empty() || k.chars().count() > 255 {
                        return Err(invalid("metadata"));
                    }
                    match v {
                        Value::Null => {
                            row.metadata.remove(k);
                            if k == "availability_zone" {
                                zone = Some(None);
                            }
                        }
                        Value::String(s) if s.chars().count() <= 255 => {
                            if k == "availability_zone" {
                                if !valid_name(s) {
                                    return Err(invalid("availability_zone"));
                                }
                                zone = Some(Some(s.clone()));
                            }
                            row.metadata.insert(k.clone(), s.clone());
                        }
                        _ => return Err(invalid("metadata")),
                    }
                }
                let mut tx = self.write().await?;
                if let Some(z) = zone {
                    self.check_zone_change(&mut tx, &row, z.as_deref()).await?;
                    row.availability_zone = z;
                }
                row.updated_at = Some(now());
                store::aggregates::update(&mut tx, &row).await?;
                tx.commit().await?;
                Ok(aggregate_view(mv, &row, true))
            }
            other => Err(Error::bad_request(format!(
                "Invalid request body: unknown action {other}"
            ))),
        }
    }

    /// `POST /os-aggregates/{id}/images` (2.81): image pre-caching. Every boot clones from the
    /// block store, which holds the image already: accepted, nothing to do.
    pub async fn cache_images(&self, caller: &Caller, id: &str, body: &Value) -> Result<()> {
        require_admin(caller, "os_compute_api:os-aggregates:images")?;
        self.aggregate(id).await?;
        let list = body
            .get("cache")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid("cache"))?;
        for item in list {
            let image = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("id"))?;
            self.image
                .get_image(caller, image)
                .await
                .map_err(|_| Error::bad_request(format!("Image {image} could not be found.")))?;
        }
        Ok(())
    }

    // ----- os-hosts (up to 2.42) -----

    /// `GET /os-hosts[?zone=]`: every compute host, and this API node's scheduler and
    /// conductor (zone `internal`), as Nova lists its services' hosts.
    pub async fn list_os_hosts(&self, caller: &Caller, zone: Option<&str>) -> Result<Vec<Value>> {
        require_admin(caller, "os_compute_api:os-hosts:list")?;
        let hosts = {
            let mut conn = self.read().await?;
            store::hosts::list(&mut conn).await?
        };
        let api_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let mut out = vec![
            json!({"host_name": api_host, "service": "conductor", "zone": "internal"}),
            json!({"host_name": api_host, "service": "scheduler", "zone": "internal"}),
        ];
        for h in &hosts {
            out.push(
                json!({"host_name": h.name, "service": "compute", "zone": h.availability_zone}),
            );
        }
        Ok(match zone.filter(|z| !z.is_empty()) {
            Some(z) => out.into_iter().filter(|h| h["zone"] == z).collect(),
            None => out,
        })
    }

    /// `GET /os-hosts/{host}`: the host's resources, in total, used now, and per project.
    pub async fn show_os_host(&self, caller: &Caller, host: &str) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-hosts:show")?;
        let mut conn = self.read().await?;
        let h = store::hosts::get(&mut conn, host)
            .await?
            .ok_or_else(|| Error::not_found(format!("Compute host {host} could not be found.")))?;
        let servers = store::servers::on_host(&mut conn, host).await?;
        let resource = |project: &str, cpu: i64, mem: i64, disk: i64| {
            json!({"resource": {"host": h.name, "project": project, "cpu": cpu,
                "memory_mb": mem, "disk_gb": disk}})
        };
        let (mut cpu, mut mem, mut disk) = (0, 0, 0);
        let mut per_project: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for s in &servers {
            let d = s.flavor.root_gb + s.flavor.ephemeral_gb;
            cpu += s.flavor.vcpus;
            mem += s.flavor.memory_mb;
            disk += d;
            let e = per_project.entry(s.project_id.as_str()).or_default();
            e.0 += s.flavor.vcpus;
            e.1 += s.flavor.memory_mb;
            e.2 += d;
        }
        let mut out = vec![
            resource("(total)", h.vcpus, h.memory_mb, h.disk_gb),
            resource("(used_now)", cpu, mem, disk),
            resource("(used_max)", cpu, mem, disk),
        ];
        for (p, (c, m, d)) in per_project {
            out.push(resource(p, c, m, d));
        }
        Ok(json!({ "host": out }))
    }

    /// `PUT /os-hosts/{host}`: `status` enables or disables the compute service;
    /// `maintenance_mode` is not something the QEMU driver offers (Nova's libvirt driver
    /// answers 501 too).
    pub async fn update_os_host(&self, caller: &Caller, host: &str, body: &Value) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-hosts:update")?;
        let b = body.as_object().ok_or_else(|| invalid("body"))?;
        if let Some(extra) = b
            .keys()
            .find(|k| *k != "status" && *k != "maintenance_mode")
        {
            return Err(Error::bad_request(format!(
                "Additional properties are not allowed ('{extra}' was unexpected)"
            )));
        }
        let field = |k: &str| -> Result<Option<bool>> {
            match b.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                    "enable" => Ok(Some(true)),
                    "disable" => Ok(Some(false)),
                    _ => Err(invalid(k)),
                },
                Some(_) => Err(invalid(k)),
            }
        };
        let status = field("status")?;
        let maintenance = field("maintenance_mode")?;
        if status.is_none() && maintenance.is_none() {
            return Err(Error::bad_request(
                "'status' or 'maintenance_mode' needed for host update",
            ));
        }
        let mut tx = self.write().await?;
        if store::hosts::get(&mut tx, host).await?.is_none() {
            return Err(Error::not_found(format!(
                "Compute host {host} could not be found."
            )));
        }
        if maintenance.is_some() {
            return Err(Error::not_implemented(
                "Virt driver does not implement host maintenance mode.",
            ));
        }
        let enabled = status.unwrap_or(true);
        store::hosts::set_status(&mut tx, host, enabled, None, &now()).await?;
        tx.commit().await?;
        Ok(json!({"host": host, "status": if enabled { "enabled" } else { "disabled" }}))
    }

    /// `GET /os-hosts/{host}/{startup|shutdown|reboot}`: powering a hypervisor host is for
    /// its operators, not the API (501, as Nova's libvirt driver answers).
    pub async fn os_host_power(&self, caller: &Caller, host: &str, action: &str) -> Result<Value> {
        require_admin(caller, &format!("os_compute_api:os-hosts:{action}"))?;
        let mut conn = self.read().await?;
        if store::hosts::get(&mut conn, host).await?.is_none() {
            return Err(Error::not_found(format!(
                "Compute host {host} could not be found."
            )));
        }
        Err(Error::not_implemented(
            "Virt driver does not implement host power management.",
        ))
    }

    // ----- os-instance_usage_audit_log -----

    /// The audit of the period before `before` (a month, Nova's default
    /// `instance_usage_audit_period`): Nubo runs no usage audit task, so every compute host is
    /// one that has not run.
    pub async fn usage_audit_log(&self, caller: &Caller, before: Option<&str>) -> Result<Value> {
        require_admin(caller, "os_compute_api:os-instance-usage-audit-log:list")?;
        let before = match before {
            None => Utc::now(),
            Some(t) => {
                let text = t.replace('+', " ");
                let parsed = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S"]
                    .iter()
                    .find_map(|f| chrono::NaiveDateTime::parse_from_str(&text, f).ok())
                    .ok_or_else(|| Error::bad_request(format!("Invalid timestamp for date {t}")))?;
                Utc.from_utc_datetime(&parsed)
            }
        };
        let end = Utc
            .with_ymd_and_hms(before.year(), before.month(), 1, 0, 0, 0)
            .single()
            .unwrap_or(before);
        let (py, pm) = if end.month() == 1 {
            (end.year() - 1, 12)
        } else {
            (end.year(), end.month() - 1)
        };
        let begin = Utc
            .with_ymd_and_hms(py, pm, 1, 0, 0, 0)
            .single()
            .unwrap_or(end);
        let hosts: BTreeSet<String> = {
            let mut conn = self.read().await?;
            store::hosts::list(&mut conn)
                .await?
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
        Ok(json!({
            "period_beginning": fmt(begin),
            "period_ending": fmt(end),
            "num_hosts": hosts.len(),
            "num_hosts_done": 0,
            "num_hosts_running": 0,
            "num_hosts_not_run": hosts.len(),
            "hosts_not_run": hosts,
            "total_instances": 0,
            "total_errors": 0,
            "overall_status": if hosts.is_empty() {
                "ALL hosts done. 0 errors.".to_string()
            } else {
                format!("0 of {} hosts done. 0 errors.", hosts.len())
            },
            "log": {},
        }))
    }
}
