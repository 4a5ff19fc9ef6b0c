//! Network RBAC: `access_as_shared` (another project, or every project with `*`, may attach
//! ports to a network) and `access_as_external` (it may use the network as an external network;
//! creating one makes the network external). A policy that a project still depends on cannot be
//! removed (409 `RbacPolicyInUse`).

use nubo_common::db::is_unique_violation;
use nubo_common::ids::new_uuid;
use nubo_common::{Error, Result};
use serde_json::{json, Map, Value};

use super::{in_use, not_found, Ctx, NetworkService};
use crate::input::{invalid_input, Input, Op};
use crate::query::{self, LinkBase, ListParams, Page, Schema};
use crate::store::rbac::RbacRow;
use crate::store::{self, now, Conn};
use crate::types;

pub const SCHEMA: Schema = Schema {
    collection: "rbac_policies",
    filters: &[
        "id",
        "object_type",
        "object_id",
        "action",
        "target_tenant",
        "project_id",
        "tenant_id",
    ],
};

const ACTIONS: &[&str] = &["access_as_shared", "access_as_external"];

fn valid_target(target: &str) -> Result<()> {
    let hex: String = target.chars().filter(|c| *c != '-').collect();
    if target == "*" || (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())) {
        Ok(())
    } else {
        Err(invalid_input(format!(
            "'{target}' is not a valid target project ID; expected a UUID or '*'"
        )))
    }
}

impl NetworkService {
    async fn visible_rbac(&self, conn: &mut Conn, ctx: &Ctx, id: &str) -> Result<RbacRow> {
        match store::rbac::get(conn, id).await? {
            Some(r) if ctx.owns(&r.project_id) => Ok(r),
            _ => Err(Error::not_found(format!(
                "RBAC policy of type network with ID {id} not found"
            ))
            .with_kind("RbacPolicyNotFound")),
        }
    }

    pub async fn list_rbac_policies(
        &self,
        ctx: &Ctx,
        params: &ListParams,
        base: &LinkBase<'_>,
    ) -> Result<Page> {
        query::validate(params, &SCHEMA)?;
        let mut conn = self.read().await?;
        let items = store::rbac::list(&mut conn)
            .await?
            .iter()
            .filter(|r| ctx.owns(&r.project_id))
            .map(types::rbac)
            .collect();
        query::apply(items, params, &SCHEMA, base)
    }

    pub async fn get_rbac_policy(&self, ctx: &Ctx, id: &str) -> Result<Value> {
        let mut conn = self.read().await?;
        Ok(types::rbac(&self.visible_rbac(&mut conn, ctx, id).await?))
    }

    pub async fn create_rbac_policy(&self, ctx: &Ctx, map: Map<String, Value>) -> Result<Value> {
        ctx.require_member("create_rbac_policy")?;
        let mut input = Input::new(Op::Create, map, &["id"]);
        let project = input.project(&ctx.project, ctx.admin)?;
        let object_type = input.string("object_type", 255)?.unwrap_or_default();
        let object_id = input.string("object_id", 36)?.unwrap_or_default();
        let action = input.string("action", 255)?.unwrap_or_default();
        let target = input
            .string("target_tenant", 255)?
            .or(input.string("target_project", 255)?);
        input.finish()?;
        let object_type = object_type.trim().to_ascii_lowercase();
        if object_type != "network" {
            return Err(invalid_input(format!(
                "'{object_type}' is not a valid RBAC object type"
            )));
        }
        if !ACTIONS.contains(&action.as_str()) {
            return Err(invalid_input(format!(
                "Action '{action}' for object type network is not valid. Valid actions: {}",
                crate::query::py_list(&ACTIONS.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            )));
        }
        let target = target.ok_or_else(|| {
            Error::bad_request(
                "Failed to parse request. Required attribute 'target_tenant' not specified",
            )
            .with_kind("HTTPBadRequest")
        })?;
        valid_target(&target)?;
        let mut tx = self.write().await?;
        let mut network = match store::networks::get(&mut tx, &object_id).await? {
            Some(n) if ctx.owns(&n.project_id) => n,
            _ => return Err(not_found("Network", &object_id)),
        };
        self.check_quota(&mut tx, &project, "rbac_policy", 1)
            .await?;
        let row = RbacRow {
            id: new_uuid(),
            project_id: project,
            object_type,
            object_id,
            action,
            target_project: target,
        };
        if let Err(err) = store::rbac::insert(&mut tx, &row).await {
            if is_unique_violation(&err) {
                return Err(in_use(
                    "DuplicateRbacPolicy",
                    "An RBAC policy already exists with those values.",
                ));
            }
            return Err(err.into());
        }
        if row.action == "access_as_external" && !network.external {
            network.external = true;
            network.updated_at = now();
            network.revision_number += 1;
            store::networks::update(&mut tx, &network).await?;
        }
        tx.commit().await?;
        Ok(json!({ "rbac_policy": types::rbac(&row) }))
    }

    /// Refuses to drop a grant that some project's ports or gateways still need.
    async fn check_rbac_unused(
        &self,
        conn: &mut Conn,
        r: &RbacRow,
        new_target: Option<&str>,
    ) -> Result<()> {
        let Some(network) = store::networks::get(conn, &r.object_id).await? else {
            return Ok(());
        };
        let others: Vec<RbacRow> = store::rbac::of_object(conn, &r.object_id)
            .await?
            .into_iter()
            .filter(|o| o.id != r.id && o.action == r.action)
            .collect();
        let still_granted = |project: &str| {
            new_target.is_some_and(|t| t == "*" || t == project)
                || others
                    .iter()
                    .any(|o| o.target_project == "*" || o.target_project == project)
        };
        let affected = |project: &str| {
            project != network.project_id
                && !project.is_empty()
                && (r.target_project == "*" || r.target_project == project)
                && !still_granted(project)
        };
        let in_use_err = |details: &str| {
            Error::conflict(format!(
                "RBAC policy on object {} cannot be removed because other objects depend on it.\nDetails: {details}",
                r.object_id
            ))
            .with_kind("RbacPolicyInUse")
        };
        if r.action == "access_as_shared" {
            let ports = store::ports::list(
                conn,
                &store::ports::PortFilter {
                    network_id: Some(network.id.clone()),
                    ..Default::default()
                },
            )
            .await?;
            if let Some(p) = ports.iter().find(|p| affected(&p.project_id)) {
                return Err(in_use_err(&format!(
                    "Port {} of project {} uses the network.",
                    p.id, p.project_id
                )));
            }
        } else {
            for router in store::routers::with_gateway_on(conn, &network.id).await? {
                if affected(&router.project_id) {
                    return Err(in_use_err(&format!(
                        "Router {} has its gateway on the network.",
                        router.id
                    )));
                }
            }
            for f in store::floatingips::on_network(conn, &network.id).await? {
                if affected(&f.project_id) {
                    return Err(in_use_err(&format!(
                        "Floating IP {} is on the network.",
                        f.id
                    )));
                }
            }
        }
        Ok(())
    }

    pub async fn update_rbac_policy(
        &self,
        ctx: &Ctx,
        id: &str,
        map: Map<String, Value>,
    ) -> Result<Value> {
        let mut tx = self.write().await?;
        let mut r = self.visible_rbac(&mut tx, ctx, id).await?;
        ctx.require_member("update_rbac_policy")?;
        let mut input = Input::new(
            Op::Update,
            map,
            &[
                "id",
                "object_type",
                "object_id",
                "action",
                "tenant_id",
                "project_id",
            ],
        );
        let target = input
            .string("target_tenant", 255)?
            .or(input.string("target_project", 255)?);
        input.finish()?;
        if let Some(target) = target {
            valid_target(&target)?;
            if target != r.target_project {
                self.check_rbac_unused(&mut tx, &r, Some(&target)).await?;
                if let Err(err) = store::rbac::update_target(&mut tx, &r.id, &target).await {
                    if is_unique_violation(&err) {
                        return Err(in_use(
                            "DuplicateRbacPolicy",
                            "An RBAC policy already exists with those values.",
                        ));
                    }
                    return Err(err.into());
                }
                r.target_project = target;
            }
        }
        tx.commit().await?;
        Ok(json!({ "rbac_policy": types::rbac(&r) }))
    }

    pub async fn delete_rbac_policy(&self, ctx: &Ctx, id: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let r = self.visible_rbac(&mut tx, ctx, id).await?;
        ctx.require_member("delete_rbac_policy")?;
        self.check_rbac_unused(&mut tx, &r, None).await?;
        store::rbac::delete(&mut tx, &r.id).await?;
        tx.commit().await
    }
}
