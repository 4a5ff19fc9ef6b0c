//! Server groups (`os-server-groups`) and the placement rules they and the other scheduler
//! hints impose.
//!
//! A group has one policy: `affinity` (every member on one host), `anti-affinity` (no two
//! members on one host, or at most `max_server_per_host` from 2.64), and from 2.15 the soft
//! variants, which the weigher prefers but never requires. A server joins a group at create
//! (`os:scheduler_hints: {"group": id}`) and leaves it when it is deleted. Quotas:
//! `server_groups` per project, `server_group_members` per group.
//!
//! ```text
//!   claim(server) ──> Placement { required hosts, forbidden hosts, preference per host }
//!                       affinity / same_host          -> required
//!                       anti-affinity / different_host -> forbidden (full hosts)
//!                       soft-*                         -> preference (the weigher's first key)
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use nubo_common::{Caller, Error, Result};
use serde_json::{json, Map, Value};

use super::{now, require_member, require_reader, ComputeService, Tx};
use crate::microversion::Microversion;
use crate::store;
use crate::store::server_groups::GroupRow;

const POLICIES: &[&str] = &["affinity", "anti-affinity"];
const SOFT_POLICIES: &[&str] = &["soft-affinity", "soft-anti-affinity"];

fn group_not_found(id: &str) -> Error {
    Error::not_found(format!("Instance group {id} could not be found."))
}

fn invalid(field: &str) -> Error {
    Error::bad_request(format!("Invalid input for field/attribute {field}."))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && name.trim() == name
        && !name.chars().any(char::is_control)
}

/// The scheduler hints of a create request (`os:scheduler_hints`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchedulerHints {
    pub group: Option<String>,
    #[serde(default)]
    pub same_host: Vec<String>,
    #[serde(default)]
    pub different_host: Vec<String>,
}

impl SchedulerHints {
    /// Reads `os:scheduler_hints` (or `OS-SCH-HNT:scheduler_hints`) of a create body.
    pub fn parse(body: &Value) -> Result<SchedulerHints> {
        let hints = body
            .get("os:scheduler_hints")
            .or_else(|| body.get("OS-SCH-HNT:scheduler_hints"));
        let Some(hints) = hints else {
            return Ok(SchedulerHints::default());
        };
        let map = hints
            .as_object()
            .ok_or_else(|| invalid("os:scheduler_hints"))?;
        let uuids = |key: &str| -> Result<Vec<String>> {
            let list = match map.get(key) {
                None | Some(Value::Null) => return Ok(Vec::new()),
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(String::from).ok_or_else(|| invalid(key)))
                    .collect::<Result<_>>()?,
                Some(_) => return Err(invalid(key)),
            };
            if list.iter().any(|id| uuid::Uuid::parse_str(id).is_err()) {
                return Err(invalid(key));
            }
            Ok(list)
        };
        let group = match map.get("group") {
            None | Some(Value::Null) => None,
            Some(Value::String(g)) if uuid::Uuid::parse_str(g).is_ok() => Some(g.clone()),
            Some(_) => return Err(invalid("group")),
        };
        Ok(SchedulerHints {
            group,
            same_host: uuids("same_host")?,
            different_host: uuids("different_host")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.group.is_none() && self.same_host.is_empty() && self.different_host.is_empty()
    }
}

/// Where a server may go, on top of the resource and zone filters.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The host must be one of these (affinity, `same_host`).
    pub required: Option<HashSet<String>>,
    /// Never these (anti-affinity at its limit, `different_host`).
    pub forbidden: HashSet<String>,
    /// Soft policies: a higher value is preferred, before free RAM.
    pub preference: HashMap<String, i64>,
}

impl Placement {
    pub fn allows(&self, host: &str) -> bool {
        !self.forbidden.contains(host) && self.required.as_ref().is_none_or(|r| r.contains(host))
    }

    pub fn weight(&self, host: &str) -> i64 {
        self.preference.get(host).copied().unwrap_or(0)
    }

    fn require(&mut self, hosts: HashSet<String>) {
        self.required = Some(match self.required.take() {
            Some(r) => r.intersection(&hosts).cloned().collect(),
            None => hosts,
        });
    }
}

/// Nova's view of a group at the request's microversion.
pub fn group_view(mv: Microversion, g: &GroupRow, members: &[String]) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(g.id));
    v.insert("name".into(), json!(g.name));
    if mv.at_least(64) {
        v.insert("policy".into(), json!(g.policy));
        let rules = match g.max_server_per_host {
            Some(n) => json!({"max_server_per_host": n}),
            None => json!({}),
        };
        v.insert("rules".into(), rules);
    } else {
        v.insert("policies".into(), json!([g.policy]));
        v.insert("metadata".into(), json!({}));
    }
    v.insert("members".into(), json!(members));
    if mv.at_least(13) {
        v.insert("project_id".into(), json!(g.project_id));
        v.insert("user_id".into(), json!(g.user_id));
    }
    Value::Object(v)
}

impl ComputeService {
    /// A group the caller may see (its project's, any for admins), else a 404.
    async fn visible_group(&self, caller: &Caller, id: &str) -> Result<GroupRow> {
        require_reader(caller)?;
        let mut conn = self.read().await?;
        match store::server_groups::get(&mut conn, id).await? {
            Some(g) if caller.is_admin() || caller.project_id() == Some(g.project_id.as_str()) => {
                Ok(g)
            }
            _ => Err(group_not_found(id)),
        }
    }

    /// Members that still exist.
    async fn live_members(
        &self,
        conn: &mut sqlx::SqliteConnection,
        id: &str,
    ) -> Result<Vec<String>> {
        store::server_groups::members(conn, id).await
    }

    /// `GET /os-server-groups` (`all_projects` for admins; `limit` and `offset`).
    pub async fn list_server_groups(
        &self,
        caller: &Caller,
        mv: Microversion,
        all_projects: bool,
        limit: Option<&str>,
        offset: Option<&str>,
    ) -> Result<Vec<Value>> {
        require_reader(caller)?;
        let number = |name: &str, v: Option<&str>| -> Result<Option<usize>> {
            match v {
                None => Ok(None),
                Some(t) => t.parse::<usize>().map(Some).map_err(|_| {
                    Error::bad_request(format!(
                        "Invalid input for query parameters {name}. Value: {t}."
                    ))
                }),
            }
        };
        let limit = number("limit", limit)?.unwrap_or(1000).min(1000);
        let offset = number("offset", offset)?.unwrap_or(0);
        let project = if caller.is_admin() && all_projects {
            None
        } else {
            Some(caller.require_project()?.to_string())
        };
        let mut conn = self.read().await?;
        let groups = store::server_groups::list(&mut conn, project.as_deref()).await?;
        let memberships = store::server_groups::all_members(&mut conn, project.as_deref()).await?;
        let mut members: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (g, s) in &memberships {
            members.entry(g.as_str()).or_default().push(s.clone());
        }
        Ok(groups
            .iter()
            .skip(offset)
            .take(limit)
            .map(|g| {
                group_view(
                    mv,
                    g,
                    members.get(g.id.as_str()).map(Vec::as_slice).unwrap_or(&[]),
                )
            })
            .collect())
    }

    pub async fn get_server_group(
        &self,
        caller: &Caller,
        id: &str,
        mv: Microversion,
    ) -> Result<Value> {
        let g = self.visible_group(caller, id).await?;
        let mut conn = self.read().await?;
        let members = self.live_members(&mut conn, id).await?;
        Ok(group_view(mv, &g, &members))
    }

    /// `POST /os-server-groups`.
    pub async fn create_server_group(
        &self,
        caller: &Caller,
        body: &Value,
        mv: Microversion,
    ) -> Result<Value> {
        require_member(caller, "os_compute_api:os-server-groups:create")?;
        let project = caller.require_project()?.to_string();
        let g = body
            .get("server_group")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("server_group"))?;
        let allowed: &[&str] = if mv.at_least(64) {
            &["name", "policy", "rules"]
        } else {
            &["name", "policies"]
        };
        if let Some(extra) = g.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::bad_request(format!(
                "Invalid input for field/attribute server_group. Additional properties are not allowed ('{extra}' was unexpected)"
            )));
        }
        let name = match g.get("name") {
            Some(Value::String(n)) if valid_name(n) => n.clone(),
            _ => return Err(invalid("name")),
        };
        let known =
            |p: &str| POLICIES.contains(&p) || (mv.at_least(15) && SOFT_POLICIES.contains(&p));
        let (policy, max_per_host) = if mv.at_least(64) {
            let policy = match g.get("policy") {
                Some(Value::String(p)) if known(p) => p.clone(),
                _ => return Err(invalid("policy")),
            };
            let max = match g.get("rules") {
                None => None,
                Some(Value::Object(rules)) => {
                    if let Some(extra) = rules.keys().find(|k| *k != "max_server_per_host") {
                        return Err(Error::bad_request(format!(
                            "Invalid input for field/attribute rules. Additional properties are not allowed ('{extra}' was unexpected)"
                        )));
                    }
                    match rules.get("max_server_per_host") {
                        None => None,
                        Some(v) => {
                            let n = match v {
                                Value::Number(n) => n.as_i64(),
                                Value::String(s) => s.parse().ok(),
                                _ => None,
                            }
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| invalid("max_server_per_host"))?;
                            Some(n)
                        }
                    }
                }
                Some(_) => return Err(invalid("rules")),
            };
            if max.is_some() && policy != "anti-affinity" {
                return Err(Error::bad_request(
                    "Only anti-affinity policy supports rules.",
                ));
            }
            (policy, max)
        } else {
            match g.get("policies") {
                Some(Value::Array(list)) if list.len() == 1 => match list[0].as_str() {
                    Some(p) if known(p) => (p.to_string(), None),
                    _ => return Err(invalid("policies")),
                },
                _ => return Err(invalid("policies")),
            }
        };
        let limit = self.quota_limit(&project, "server_groups").await?;
        let mut tx = self.write().await?;
        if limit >= 0 && store::server_groups::count(&mut tx, &project).await? >= limit {
            return Err(Error::forbidden("Quota exceeded, too many server groups."));
        }
        let row = GroupRow {
            id: nubo_common::ids::new_uuid(),
            seq: 0,
            name,
            project_id: project,
            user_id: caller.user_id.clone(),
            policy,
            max_server_per_host: max_per_host,
            created_at: now(),
        };
        store::server_groups::insert(&mut tx, &row).await?;
        tx.commit().await?;
        tracing::info!(server_group_id = %row.id, policy = %row.policy, "server group created");
        Ok(group_view(mv, &row, &[]))
    }

    pub async fn delete_server_group(&self, caller: &Caller, id: &str) -> Result<()> {
        let g = self.visible_group(caller, id).await?;
        require_member(caller, "os_compute_api:os-server-groups:delete")?;
        let mut tx = self.write().await?;
        store::server_groups::delete(&mut tx, &g.id).await?;
        tx.commit().await
    }

    /// The ids of the groups a server is in (`server_groups` of the server view at 2.71).
    pub async fn server_group_ids(&self, server: &str) -> Result<Vec<String>> {
        let mut conn = self.read().await?;
        store::server_groups::groups_of(&mut conn, server).await
    }

    /// Checks the hints of a create of `count` servers by `project`: the group exists and is
    /// visible, and has room under `server_group_members`. Returns the group.
    pub(crate) async fn check_hints(
        &self,
        project: &str,
        hints: &SchedulerHints,
        count: i64,
    ) -> Result<Option<GroupRow>> {
        let Some(id) = &hints.group else {
            return Ok(None);
        };
        let mut conn = self.read().await?;
        let g = match store::server_groups::get(&mut conn, id).await? {
            Some(g) if g.project_id == project => g,
            _ => {
                return Err(Error::bad_request(format!(
                    "Invalid server group {id}: it could not be found."
                )))
            }
        };
        let members = store::server_groups::members(&mut conn, id).await?.len() as i64;
        drop(conn);
        let limit = self.quota_limit(project, "server_group_members").await?;
        if limit >= 0 && members + count > limit {
            return Err(Error::forbidden(
                "Quota exceeded, too many servers in group",
            ));
        }
        Ok(Some(g))
    }

    /// Records a new server's group membership and its other hints (inside the create's
    /// transaction).
    pub(crate) async fn record_hints(
        &self,
        tx: &mut Tx,
        server: &str,
        hints: &SchedulerHints,
    ) -> Result<()> {
        if let Some(g) = &hints.group {
            store::server_groups::add_member(tx, g, server).await?;
        }
        if !hints.same_host.is_empty() || !hints.different_host.is_empty() {
            sqlx::query(
                "INSERT OR REPLACE INTO compute_scheduler_hints (server_id, hints) VALUES (?, ?)",
            )
            .bind(server)
            .bind(serde_json::to_string(hints).unwrap_or_default())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Where `server` may go: its group's policy and its `same_host`/`different_host` hints.
    pub(crate) async fn placement_of(
        &self,
        conn: &mut sqlx::SqliteConnection,
        server: &str,
    ) -> Result<Placement> {
        let mut p = Placement::default();
        for group_id in store::server_groups::groups_of(conn, server).await? {
            let Some(g) = store::server_groups::get(conn, &group_id).await? else {
                continue;
            };
            let placed = store::server_groups::member_hosts(conn, &group_id, server).await?;
            let mut per_host: HashMap<String, i64> = HashMap::new();
            for (_, host) in &placed {
                *per_host.entry(host.clone()).or_default() += 1;
            }
            match g.policy.as_str() {
                "affinity" if !per_host.is_empty() => p.require(per_host.keys().cloned().collect()),
                "anti-affinity" => {
                    let max = g.max_server_per_host.unwrap_or(1);
                    p.forbidden.extend(
                        per_host
                            .iter()
                            .filter(|(_, n)| **n >= max)
                            .map(|(h, _)| h.clone()),
                    );
                }
                "soft-affinity" => {
                    for (h, n) in per_host {
                        *p.preference.entry(h).or_default() += n;
                    }
                }
                "soft-anti-affinity" => {
                    for (h, n) in per_host {
                        *p.preference.entry(h).or_default() -= n;
                    }
                }
                _ => {}
            }
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT hints FROM compute_scheduler_hints WHERE server_id = ?")
                .bind(server)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(h) = stored.and_then(|t| serde_json::from_str::<SchedulerHints>(&t).ok()) {
            let host_of = |rows: Vec<Option<String>>| -> HashSet<String> {
                rows.into_iter().flatten().collect()
            };
            if !h.same_host.is_empty() {
                let mut hosts = Vec::new();
                for id in &h.same_host {
                    hosts.push(store::servers::get(conn, id).await?.and_then(|r| r.host));
                }
                p.require(host_of(hosts));
            }
            for id in &h.different_host {
                if let Some(host) = store::servers::get(conn, id).await?.and_then(|r| r.host) {
                    p.forbidden.insert(host);
                }
            }
        }
        Ok(p)
    }

    /// Forgets a server's hints and memberships (its delete).
    pub(crate) async fn forget_hints(&self, tx: &mut Tx, server: &str) -> Result<()> {
        store::server_groups::remove_server(tx, server).await?;
        sqlx::query("DELETE FROM compute_scheduler_hints WHERE server_id = ?")
            .bind(server)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
