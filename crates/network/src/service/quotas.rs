//! Quotas: configured defaults, per-project overrides (admins only), usage details, and the
//! check every create makes inside its transaction (so that concurrent creates cannot overshoot).

use nubo_common::config::NetworkConfig;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::{Ctx, NetworkService};
use crate::input::{repr, to_int};
use crate::store::{self, Conn};

/// The resources Networking counts, in the order Neutron lists them.
pub const RESOURCES: &[&str] = &[
    "network",
    "subnet",
    "subnetpool",
    "port",
    "router",
    "floatingip",
    "security_group",
    "security_group_rule",
    "rbac_policy",
];

/// Default limits per resource (-1 is unlimited).
#[derive(Debug, Clone)]
pub struct QuotaDefaults(pub Vec<(&'static str, i64)>);

impl QuotaDefaults {
    pub fn from_config(c: &NetworkConfig) -> QuotaDefaults {
        QuotaDefaults(vec![
            ("network", c.quota_network),
            ("subnet", c.quota_subnet),
            ("subnetpool", c.quota_subnetpool),
            ("port", c.quota_port),
            ("router", c.quota_router),
            ("floatingip", c.quota_floatingip),
            ("security_group", c.quota_security_group),
            ("security_group_rule", c.quota_security_group_rule),
            ("rbac_policy", c.quota_rbac_policy),
        ])
    }

    pub fn get(&self, resource: &str) -> i64 {
        self.0
            .iter()
            .find(|(r, _)| *r == resource)
            .map(|(_, l)| *l)
            .unwrap_or(-1)
    }
}

fn admin_required() -> Error {
    Error::forbidden("User does not have admin privileges: Only admin can view or configure quota.")
        .with_kind("AdminRequired")
}

/// How many of `resource` a project has.
pub(crate) async fn usage(conn: &mut Conn, project: &str, resource: &str) -> Result<i64> {
    match resource {
        "network" => store::networks::count_for_project(conn, project).await,
        "subnet" => store::subnets::count_for_project(conn, project).await,
        "subnetpool" => store::subnetpools::count_for_project(conn, project).await,
        "port" => store::ports::count_for_project(conn, project).await,
        "router" => store::routers::count_for_project(conn, project).await,
        "floatingip" => store::floatingips::count_for_project(conn, project).await,
        "security_group" => store::security_groups::count_groups(conn, project).await,
        "security_group_rule" => store::security_groups::count_rules(conn, project).await,
        "rbac_policy" => store::rbac::count_for_project(conn, project).await,
        _ => Ok(0),
    }
}

impl NetworkService {
    /// The limits in force for `project`.
    pub(crate) async fn limits(
        &self,
        conn: &mut Conn,
        project: &str,
    ) -> Result<Vec<(&'static str, i64)>> {
        let overrides = store::quotas::of_project(conn, project).await?;
        Ok(self
            .settings
            .quotas
            .0
            .iter()
            .map(|(r, default)| {
                let limit = overrides
                    .iter()
                    .find(|(o, _)| o == r)
                    .map(|(_, l)| *l)
                    .unwrap_or(*default);
                (*r, limit)
            })
            .collect())
    }

    /// Refuses to create `adding` more of `resource` beyond the project's limit (409 OverQuota).
    pub(crate) async fn check_quota(
        &self,
        conn: &mut Conn,
        project: &str,
        resource: &str,
        adding: i64,
    ) -> Result<()> {
        if project.is_empty() {
            return Ok(());
        }
        let limit = self
            .limits(conn, project)
            .await?
            .into_iter()
            .find(|(r, _)| *r == resource)
            .map(|(_, l)| l)
            .unwrap_or(-1);
        if limit < 0 {
            return Ok(());
        }
        let used = usage(conn, project, resource).await?;
        if used + adding > limit {
            return Err(
                Error::conflict(format!("Quota exceeded for resources: ['{resource}']."))
                    .with_kind("OverQuota"),
            );
        }
        Ok(())
    }

    fn quota_body(project: &str, limits: &[(&'static str, i64)]) -> Value {
        let mut map = Map::new();
        for (r, l) in limits {
            map.insert(r.to_string(), json!(l));
        }
        let _ = project;
        Value::Object(map)
    }

    /// `GET /quotas`: the projects with overrides (admins only).
    pub async fn list_quotas(&self, ctx: &Ctx) -> Result<Value> {
        if !ctx.admin {
            return Err(admin_required());
        }
        let mut conn = self.read().await?;
        let mut out = Vec::new();
        for project in store::quotas::projects(&mut conn).await? {
            let limits = self.limits(&mut conn, &project).await?;
            let mut body = Self::quota_body(&project, &limits);
            body["project_id"] = json!(project);
            body["tenant_id"] = json!(project);
            out.push(body);
        }
        Ok(json!({ "quotas": out }))
    }

    fn check_quota_access(ctx: &Ctx, project: &str) -> Result<()> {
        if !ctx.admin && ctx.project != project {
            return Err(Error::forbidden(
                "Non-admin is not authorized to access quotas for another project",
            )
            .with_kind("NotAuthorized"));
        }
        Ok(())
    }

    /// `GET /quotas/{project}`.
    pub async fn show_quota(&self, ctx: &Ctx, project: &str) -> Result<Value> {
        Self::check_quota_access(ctx, project)?;
        let mut conn = self.read().await?;
        let limits = self.limits(&mut conn, project).await?;
        Ok(json!({ "quota": Self::quota_body(project, &limits) }))
    }

    /// `GET /quotas/{project}/default`.
    pub async fn default_quota(&self, ctx: &Ctx, project: &str) -> Result<Value> {
        Self::check_quota_access(ctx, project)?;
        Ok(json!({ "quota": Self::quota_body(project, &self.settings.quotas.0) }))
    }

    /// `GET /quotas/{project}/details`: limit, used and reserved per resource.
    pub async fn quota_details(&self, ctx: &Ctx, project: &str) -> Result<Value> {
        Self::check_quota_access(ctx, project)?;
        let mut conn = self.read().await?;
        let limits = self.limits(&mut conn, project).await?;
        let mut map = Map::new();
        for (r, l) in limits {
            let used = usage(&mut conn, project, r).await?;
            map.insert(
                r.to_string(),
                json!({"limit": l, "used": used, "reserved": 0}),
            );
        }
        Ok(json!({ "quota": map }))
    }

    /// `PUT /quotas/{project}` (admins only).
    pub async fn update_quota(
        &self,
        ctx: &Ctx,
        project: &str,
        body: Map<String, Value>,
    ) -> Result<Value> {
        if !ctx.admin {
            return Err(admin_required());
        }
        let mut body = body;
        // `check_limit` is what older clients send to ask for the usage check Neutron now always
        // makes; `force: true` skips it.
        body.remove("check_limit");
        let force = matches!(body.remove("force"), Some(Value::Bool(true)));
        let mut changes = Vec::new();
        let mut unknown = Vec::new();
        for (key, value) in &body {
            let Some(resource) = RESOURCES.iter().find(|r| *r == key) else {
                unknown.push(key.clone());
                continue;
            };
            let limit = to_int(value).filter(|l| *l >= -1).ok_or_else(|| {
                Error::bad_request(format!(
                    "Invalid input for {key}. Reason: '{}' is not an integer or is smaller than -1.",
                    repr(value)
                ))
                .with_kind("HTTPBadRequest")
            })?;
            changes.push((*resource, limit));
        }
        if !unknown.is_empty() {
            unknown.sort();
            return Err(Error::bad_request(format!(
                "Unrecognized attribute(s) '{}'",
                unknown.join(", ")
            ))
            .with_kind("HTTPBadRequest"));
        }
        let mut tx = self.write().await?;
        if !force {
            for (resource, limit) in &changes {
                if *limit < 0 {
                    continue;
                }
                let used = usage(&mut tx, project, resource).await?;
                if used > *limit {
                    return Err(Error::bad_request(format!(
                        "Quota limit {limit} for {resource} must be greater than or equal to already used {used}"
                    ))
                    .with_kind("HTTPBadRequest"));
                }
            }
        }
        for (resource, limit) in changes {
            store::quotas::set(&mut tx, project, resource, limit).await?;
        }
        let limits = self.limits(&mut tx, project).await?;
        tx.commit().await?;
        Ok(json!({ "quota": Self::quota_body(project, &limits) }))
    }

    /// `DELETE /quotas/{project}`: back to the defaults (admins only).
    pub async fn reset_quota(&self, ctx: &Ctx, project: &str) -> Result<()> {
        if !ctx.admin {
            return Err(admin_required());
        }
        let mut tx = self.write().await?;
        store::quotas::reset(&mut tx, project).await?;
        tx.commit().await
    }
}
