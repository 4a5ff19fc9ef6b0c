//! Grants (`/v3/{projects|domains}/{t}/{users|groups}/{a}/roles/{r}`, `/v3/system/...`,
//! `/v3/OS-INHERIT/...`) and `GET /v3/role_assignments`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, flag, no_content, param, AppState, Params};
use crate::service::assignments::AssignmentQuery;
use crate::store::assignments::{AssignmentKind, AssignmentRow, SYSTEM_TARGET};
use crate::types;

pub fn routes() -> Router<AppState> {
    let mut router = Router::new().route("/v3/role_assignments", get(list_role_assignments));
    for (prefix, inherited) in [("/v3", false), ("/v3/OS-INHERIT", true)] {
        for target in ["projects", "domains"] {
            for actor in ["users", "groups"] {
                let suffix = if inherited {
                    "/inherited_to_projects"
                } else {
                    ""
                };
                let list = format!("{prefix}/{target}/{{target}}/{actor}/{{actor}}/roles{suffix}");
                let one = format!(
                    "{prefix}/{target}/{{target}}/{actor}/{{actor}}/roles/{{role}}{suffix}"
                );
                router = router
                    .route(&list, get(list_grants))
                    .route(&one, get(check).put(grant).delete(revoke));
            }
        }
    }
    router
        .route(
            "/v3/system/{actor_kind}/{actor}/roles",
            get(list_system_grants),
        )
        .route(
            "/v3/system/{actor_kind}/{actor}/roles/{role}",
            get(check_system).put(grant_system).delete(revoke_system),
        )
}

/// Reads the kind of grant from the request path (`/v3/OS-INHERIT/domains/.../groups/...`).
fn kind_of(path: &str) -> Result<(AssignmentKind, bool), Error> {
    let inherited =
        path.starts_with("/v3/OS-INHERIT/") || path.contains("/identity/v3/OS-INHERIT/");
    let on_project = path.contains("/projects/");
    let by_group = path.contains("/groups/");
    let kind = match (on_project, by_group) {
        (true, false) => AssignmentKind::UserProject,
        (true, true) => AssignmentKind::GroupProject,
        (false, false) => AssignmentKind::UserDomain,
        (false, true) => AssignmentKind::GroupDomain,
    };
    Ok((kind, inherited))
}

fn assignment(
    uri: &http::Uri,
    target: String,
    actor: String,
    role: String,
) -> Result<AssignmentRow, Error> {
    let (kind, inherited) = kind_of(uri.path())?;
    Ok(AssignmentRow {
        kind,
        actor_id: actor,
        target_id: target,
        role_id: role,
        inherited,
    })
}

type GrantPath = Path<(String, String, String)>;

async fn grant(
    State(s): State<AppState>,
    caller: Caller,
    uri: http::Uri,
    Path((t, a, r)): GrantPath,
) -> Result<Response, Error> {
    s.grant(&caller, assignment(&uri, t, a, r)?).await?;
    Ok(no_content())
}

async fn check(
    State(s): State<AppState>,
    caller: Caller,
    uri: http::Uri,
    Path((t, a, r)): GrantPath,
) -> Result<Response, Error> {
    s.check_grant(&caller, assignment(&uri, t, a, r)?).await?;
    Ok(no_content())
}

async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    uri: http::Uri,
    Path((t, a, r)): GrantPath,
) -> Result<Response, Error> {
    s.revoke_grant(&caller, assignment(&uri, t, a, r)?).await?;
    Ok(no_content())
}

async fn list_grants(
    State(s): State<AppState>,
    caller: Caller,
    uri: http::Uri,
    Path((target, actor)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let (kind, inherited) = kind_of(uri.path())?;
    let base = base(&s);
    let roles = s
        .list_grants(&caller, kind, &actor, &target, inherited)
        .await?;
    Ok(Json(json!({
        "roles": roles.iter().map(|r| types::role(&base, r)).collect::<Vec<_>>(),
        "links": {"self": format!("{base}{}", uri.path().trim_start_matches("/identity")), "previous": null, "next": null},
    })))
}

fn system_kind(actor_kind: &str) -> Result<AssignmentKind, Error> {
    match actor_kind {
        "users" => Ok(AssignmentKind::UserSystem),
        "groups" => Ok(AssignmentKind::GroupSystem),
        _ => Err(Error::not_found("The resource could not be found.")),
    }
}

fn system_assignment(
    actor_kind: &str,
    actor: String,
    role: String,
) -> Result<AssignmentRow, Error> {
    Ok(AssignmentRow {
        kind: system_kind(actor_kind)?,
        actor_id: actor,
        target_id: SYSTEM_TARGET.into(),
        role_id: role,
        inherited: false,
    })
}

async fn grant_system(
    State(s): State<AppState>,
    caller: Caller,
    Path((k, a, r)): GrantPath,
) -> Result<Response, Error> {
    s.grant(&caller, system_assignment(&k, a, r)?).await?;
    Ok(no_content())
}

async fn check_system(
    State(s): State<AppState>,
    caller: Caller,
    Path((k, a, r)): GrantPath,
) -> Result<Response, Error> {
    s.check_grant(&caller, system_assignment(&k, a, r)?).await?;
    Ok(no_content())
}

async fn revoke_system(
    State(s): State<AppState>,
    caller: Caller,
    Path((k, a, r)): GrantPath,
) -> Result<Response, Error> {
    s.revoke_grant(&caller, system_assignment(&k, a, r)?)
        .await?;
    Ok(no_content())
}

async fn list_system_grants(
    State(s): State<AppState>,
    caller: Caller,
    Path((actor_kind, actor)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let roles = s
        .list_grants(
            &caller,
            system_kind(&actor_kind)?,
            &actor,
            SYSTEM_TARGET,
            false,
        )
        .await?;
    Ok(Json(json!({
        "roles": roles.iter().map(|r| types::role(&base, r)).collect::<Vec<_>>(),
        "links": {"self": format!("{base}/v3/system/{actor_kind}/{actor}/roles"), "previous": null, "next": null},
    })))
}

async fn list_role_assignments(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let owned = |key: &str| param(&params, key).map(str::to_string);
    let query = AssignmentQuery {
        user_id: owned("user.id"),
        group_id: owned("group.id"),
        role_id: owned("role.id"),
        project_id: owned("scope.project.id"),
        domain_id: owned("scope.domain.id"),
        system: param(&params, "scope.system").is_some(),
        inherited_only: param(&params, "scope.OS-INHERIT:inherited_to") == Some("projects"),
        effective: flag(&params, "effective"),
        include_subtree: flag(&params, "include_subtree"),
    };
    let views = s.list_role_assignments(&caller, &query).await?;
    let base = base(&s);
    let rendered = if flag(&params, "include_names") {
        let lookups = s.assignment_name_lookups().await?;
        let domain_name = |id: &str| lookups.domains.get(id).map(String::as_str).unwrap_or("");
        views
            .iter()
            .map(|v| {
                let a = &v.assignment;
                let role = lookups.roles.get(&a.role_id);
                let actor_name = if a.kind.is_group() {
                    lookups
                        .groups
                        .get(&a.actor_id)
                        .map(|(n, d)| (n.as_str(), d.as_str(), domain_name(d)))
                } else {
                    lookups
                        .users
                        .get(&a.actor_id)
                        .map(|(n, d)| (n.as_str(), d.as_str(), domain_name(d)))
                };
                let target_name = match a.kind {
                    AssignmentKind::UserProject | AssignmentKind::GroupProject => lookups
                        .projects
                        .get(&a.target_id)
                        .map(|(n, d)| (n.as_str(), Some((d.as_str(), domain_name(d))))),
                    AssignmentKind::UserDomain | AssignmentKind::GroupDomain => lookups
                        .domains
                        .get(&a.target_id)
                        .map(|n| (n.as_str(), None)),
                    _ => None,
                };
                let names = types::AssignmentNames {
                    role,
                    role_domain_name: role.and_then(|r| r.domain_id.as_deref()).map(domain_name),
                    actor_name,
                    target_name,
                };
                types::role_assignment(&base, v, Some(&names))
            })
            .collect::<Vec<_>>()
    } else {
        views
            .iter()
            .map(|v| types::role_assignment(&base, v, None))
            .collect()
    };
    Ok(Json(
        json!({"role_assignments": rendered, "links": types::collection_links(&base, "role_assignments")}),
    ))
}
