//! Keystone's wire shapes: every resource rendered as the JSON Keystone sends (known fields, then
//! the free-form `extra`, then `links`). Rows come from `store`; this file only spells them.

use serde_json::{json, Map, Value};

use nubo_common::Scope;

use crate::service::assignments::AssignmentView;
use crate::service::auth::ValidatedToken;
use crate::store::app_creds::{AccessRuleRow, AppCredRow};
use crate::store::assignments::{AssignmentKind, AssignmentRow};
use crate::store::catalog::{EndpointRow, RegionRow, ServiceRow};
use crate::store::credentials::{CredentialRow, PolicyRow};
use crate::store::groups::GroupRow;
use crate::store::projects::ProjectRow;
use crate::store::roles::RoleRow;
use crate::store::users::UserRow;
use crate::token::{audit_id_text, AuthMethod};

/// `extra` first, then the known fields on top (a client cannot shadow them).
fn with_extra(extra: &Map<String, Value>, known: Value) -> Value {
    let mut out = extra.clone();
    if let Value::Object(known) = known {
        out.extend(known);
    }
    Value::Object(out)
}

fn self_link(base: &str, path: &str) -> Value {
    json!({"self": format!("{base}/v3/{path}")})
}

/// The links of a collection.
pub fn collection_links(base: &str, path: &str) -> Value {
    json!({"self": format!("{base}/v3/{path}"), "previous": null, "next": null})
}

pub fn domain(base: &str, d: &ProjectRow) -> Value {
    with_extra(
        &d.extra,
        json!({
            "id": d.id,
            "name": d.name,
            "description": d.description,
            "enabled": d.enabled,
            "tags": d.tags,
            "options": d.options,
            "links": self_link(base, &format!("domains/{}", d.id)),
        }),
    )
}

pub fn project(base: &str, p: &ProjectRow) -> Value {
    with_extra(
        &p.extra,
        json!({
            "id": p.id,
            "name": p.name,
            "domain_id": p.domain_id,
            "description": p.description,
            "enabled": p.enabled,
            "parent_id": p.parent_id,
            "is_domain": p.is_domain,
            "tags": p.tags,
            "options": p.options,
            "links": self_link(base, &format!("projects/{}", p.id)),
        }),
    )
}

pub fn user(base: &str, u: &UserRow) -> Value {
    let mut known = json!({
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": u.password_expires_at,
        "options": u.options,
        "links": self_link(base, &format!("users/{}", u.id)),
    });
    if let Some(p) = &u.default_project_id {
        known["default_project_id"] = json!(p);
    }
    with_extra(&u.extra, known)
}

pub fn group(base: &str, g: &GroupRow) -> Value {
    with_extra(
        &g.extra,
        json!({
            "id": g.id,
            "name": g.name,
            "domain_id": g.domain_id,
            "description": g.description,
            "links": self_link(base, &format!("groups/{}", g.id)),
        }),
    )
}

pub fn role(base: &str, r: &RoleRow) -> Value {
    with_extra(
        &r.extra,
        json!({
            "id": r.id,
            "name": r.name,
            "domain_id": r.domain_id,
            "description": r.description,
            "options": r.options,
            "links": self_link(base, &format!("roles/{}", r.id)),
        }),
    )
}

fn role_brief(base: &str, r: &RoleRow) -> Value {
    json!({"id": r.id, "name": r.name, "links": self_link(base, &format!("roles/{}", r.id))})
}

pub fn role_inference(base: &str, prior: &RoleRow, implied: &RoleRow) -> Value {
    json!({
        "role_inference": {"prior_role": role_brief(base, prior), "implies": role_brief(base, implied)},
        "links": self_link(base, &format!("roles/{}/implies/{}", prior.id, implied.id)),
    })
}

pub fn role_inference_list(base: &str, prior: &RoleRow, implied: &[RoleRow]) -> Value {
    json!({
        "prior_role": role_brief(base, prior),
        "implies": implied.iter().map(|r| role_brief(base, r)).collect::<Vec<_>>(),
    })
}

pub fn region(base: &str, r: &RegionRow) -> Value {
    with_extra(
        &r.extra,
        json!({
            "id": r.id,
            "description": r.description,
            "parent_region_id": r.parent_region_id,
            "links": self_link(base, &format!("regions/{}", r.id)),
        }),
    )
}

pub fn service(base: &str, s: &ServiceRow) -> Value {
    with_extra(
        &s.extra,
        json!({
            "id": s.id,
            "type": s.service_type,
            "enabled": s.enabled,
            "links": self_link(base, &format!("services/{}", s.id)),
        }),
    )
}

pub fn endpoint(base: &str, e: &EndpointRow) -> Value {
    with_extra(
        &e.extra,
        json!({
            "id": e.id,
            "service_id": e.service_id,
            "interface": e.interface,
            "region": e.region_id,
            "region_id": e.region_id,
            "url": e.url,
            "enabled": e.enabled,
            "links": self_link(base, &format!("endpoints/{}", e.id)),
        }),
    )
}

pub fn credential(base: &str, c: &CredentialRow) -> Value {
    with_extra(
        &c.extra,
        json!({
            "id": c.id,
            "user_id": c.user_id,
            "project_id": c.project_id,
            "type": c.credential_type,
            "blob": c.blob,
            "links": self_link(base, &format!("credentials/{}", c.id)),
        }),
    )
}

pub fn policy(base: &str, p: &PolicyRow) -> Value {
    with_extra(
        &p.extra,
        json!({
            "id": p.id,
            "type": p.policy_type,
            "blob": p.blob,
            "links": self_link(base, &format!("policies/{}", p.id)),
        }),
    )
}

pub fn access_rule(base: &str, r: &AccessRuleRow) -> Value {
    json!({
        "id": r.id,
        "service": r.service,
        "path": r.path,
        "method": r.method,
        "links": self_link(base, &format!("users/{}/access_rules/{}", r.user_id, r.id)),
    })
}

/// An application credential; `secret` only in the create response.
pub fn app_cred(
    base: &str,
    a: &AppCredRow,
    roles: &[RoleRow],
    rules: &[AccessRuleRow],
    secret: Option<&str>,
) -> Value {
    let mut out = json!({
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "expires_at": a.expires_at,
        "unrestricted": a.unrestricted,
        "system": a.system,
        "roles": roles
            .iter()
            .filter(|r| a.role_ids.contains(&r.id))
            .map(|r| json!({"id": r.id, "name": r.name, "domain_id": r.domain_id}))
            .collect::<Vec<_>>(),
        "access_rules": rules
            .iter()
            .filter(|r| a.access_rule_ids.contains(&r.id))
            .map(|r| json!({"id": r.id, "service": r.service, "path": r.path, "method": r.method}))
            .collect::<Vec<_>>(),
        "links": self_link(base, &format!("users/{}/application_credentials/{}", a.user_id, a.id)),
    });
    if let Some(secret) = secret {
        out["secret"] = json!(secret);
    }
    out
}

/// The `token` object of an issue or validate response.
pub fn token(t: &ValidatedToken, catalog: Option<Value>) -> Value {
    let c = &t.context;
    let micros = |us: i64| {
        chrono::DateTime::from_timestamp_micros(us)
            .map(nubo_common::time::keystone_format)
            .unwrap_or_default()
    };
    let mut body = json!({
        "methods": t.payload.methods.iter().map(|m| AuthMethod::name(*m)).collect::<Vec<_>>(),
        "user": {
            "id": c.user_id,
            "name": c.user_name,
            "domain": {"id": c.user_domain_id, "name": c.user_domain_name},
            "password_expires_at": c.password_expires_at,
        },
        "audit_ids": t.payload.audit_ids.iter().map(audit_id_text).collect::<Vec<_>>(),
        "expires_at": micros(t.payload.expires_at_us),
        "issued_at": micros(t.payload.issued_at_us),
    });
    match &c.scope {
        Scope::Unscoped => {}
        Scope::Project {
            id,
            name,
            domain_id,
            domain_name,
        } => {
            body["project"] =
                json!({"id": id, "name": name, "domain": {"id": domain_id, "name": domain_name}});
            body["is_domain"] = json!(false);
        }
        Scope::Domain { id, name } => {
            body["domain"] = json!({"id": id, "name": name});
        }
        Scope::System => {
            body["system"] = json!({"all": true});
        }
    }
    if !matches!(c.scope, Scope::Unscoped) {
        body["roles"] = json!(c
            .roles
            .iter()
            .map(|r| json!({"id": r.id, "name": r.name}))
            .collect::<Vec<_>>());
    }
    if let Some((id, name, restricted)) = &c.application_credential {
        body["application_credential"] = json!({"id": id, "name": name, "restricted": restricted});
    }
    if let Some(catalog) = catalog {
        body["catalog"] = catalog;
    }
    json!({"token": body})
}

/// The URL of the grant an assignment row is.
pub fn assignment_url(base: &str, a: &AssignmentRow) -> String {
    let actor = if a.kind.is_group() { "groups" } else { "users" };
    let target = match a.kind {
        AssignmentKind::UserProject | AssignmentKind::GroupProject => {
            format!("projects/{}", a.target_id)
        }
        AssignmentKind::UserDomain | AssignmentKind::GroupDomain => {
            format!("domains/{}", a.target_id)
        }
        AssignmentKind::UserSystem | AssignmentKind::GroupSystem => "system".to_string(),
    };
    if a.inherited {
        format!(
            "{base}/v3/OS-INHERIT/{target}/{actor}/{}/roles/{}/inherited_to_projects",
            a.actor_id, a.role_id
        )
    } else {
        format!(
            "{base}/v3/{target}/{actor}/{}/roles/{}",
            a.actor_id, a.role_id
        )
    }
}

/// Names for `include_names`, looked up by the handler.
pub struct AssignmentNames<'a> {
    pub role: Option<&'a RoleRow>,
    pub actor_name: Option<(&'a str, &'a str, &'a str)>,
    pub target_name: Option<(&'a str, Option<(&'a str, &'a str)>)>,
    pub role_domain_name: Option<&'a str>,
}

/// One entry of `GET /v3/role_assignments`.
pub fn role_assignment(
    base: &str,
    v: &AssignmentView,
    names: Option<&AssignmentNames<'_>>,
) -> Value {
    let a = &v.assignment;
    let mut links = json!({"assignment": assignment_url(base, &v.origin)});
    if let Some(group) = &v.via_group {
        links["membership"] = json!(format!("{base}/v3/groups/{group}/users/{}", a.actor_id));
    }
    if let Some(prior) = &v.prior_role {
        links["prior_role"] = json!(format!("{base}/v3/roles/{prior}"));
    }
    let mut role = json!({"id": a.role_id});
    let mut actor = json!({"id": a.actor_id});
    let target_key = match a.kind {
        AssignmentKind::UserProject | AssignmentKind::GroupProject => "project",
        AssignmentKind::UserDomain | AssignmentKind::GroupDomain => "domain",
        AssignmentKind::UserSystem | AssignmentKind::GroupSystem => "system",
    };
    let mut target = if target_key == "system" {
        json!({"all": true})
    } else {
        json!({"id": a.target_id})
    };
    if let Some(names) = names {
        if let Some(r) = names.role {
            role["name"] = json!(r.name);
            if let (Some(domain_id), Some(domain_name)) = (&r.domain_id, names.role_domain_name) {
                role["domain"] = json!({"id": domain_id, "name": domain_name});
            }
        }
        if let Some((name, domain_id, domain_name)) = names.actor_name {
            actor["name"] = json!(name);
            actor["domain"] = json!({"id": domain_id, "name": domain_name});
        }
        if let Some((name, domain)) = names.target_name {
            target["name"] = json!(name);
            if let Some((domain_id, domain_name)) = domain {
                target["domain"] = json!({"id": domain_id, "name": domain_name});
            }
        }
    }
    let mut scope = json!({target_key: target});
    if a.inherited {
        scope["OS-INHERIT:inherited_to"] = json!("projects");
    }
    let actor_key = if a.kind.is_group() { "group" } else { "user" };
    json!({"links": links, "role": role, "scope": scope, actor_key: actor})
}
