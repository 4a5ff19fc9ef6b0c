//! Role assignments: granting, checking and revoking roles for users and groups on projects,
//! domains and the system (OS-INHERIT inherited grants included), what roles a user effectively
//! holds on a target (groups, inheritance and implied roles applied), and `GET /v3/role_assignments`.

use std::collections::{BTreeSet, HashMap, HashSet};

use nubo_common::{Caller, Error, Result};

use crate::cache::RoleRef;
use crate::policy;
use crate::service::{not_found, IdentityService};
use crate::store;
use crate::store::assignments::{AssignmentKind, AssignmentRow, SYSTEM_TARGET};
use crate::store::roles::RoleRow;

/// What a role is held on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Project(String),
    Domain(String),
    System,
}

/// Filters of `GET /v3/role_assignments`.
#[derive(Debug, Clone, Default)]
pub struct AssignmentQuery {
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub role_id: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub system: bool,
    /// `scope.OS-INHERIT:inherited_to=projects`: only inherited assignments.
    pub inherited_only: bool,
    pub effective: bool,
    pub include_subtree: bool,
}

/// One listed assignment, with where it came from when `effective` derived it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentView {
    pub assignment: AssignmentRow,
    /// The stored assignment this one derives from (itself when not derived).
    pub origin: AssignmentRow,
    /// Derived through membership of this group.
    pub via_group: Option<String>,
    /// Derived by inference from this role.
    pub prior_role: Option<String>,
}

/// Names by id, for `include_names`: roles, users and groups (name, domain id), projects
/// (name, domain id), domains (name).
pub struct NameLookups {
    pub roles: HashMap<String, RoleRow>,
    pub users: HashMap<String, (String, String)>,
    pub groups: HashMap<String, (String, String)>,
    pub projects: HashMap<String, (String, String)>,
    pub domains: HashMap<String, String>,
}

impl IdentityService {
    pub async fn assignment_name_lookups(&self) -> Result<NameLookups> {
        Ok(NameLookups {
            roles: store::roles::list(&self.db)
                .await?
                .into_iter()
                .map(|r| (r.id.clone(), r))
                .collect(),
            users: store::users::list(&self.db)
                .await?
                .into_iter()
                .map(|u| (u.id, (u.name, u.domain_id)))
                .collect(),
            groups: store::groups::list(&self.db)
                .await?
                .into_iter()
                .map(|g| (g.id, (g.name, g.domain_id)))
                .collect(),
            projects: store::projects::list(&self.db, false)
                .await?
                .into_iter()
                .map(|p| (p.id, (p.name, p.domain_id.unwrap_or_default())))
                .collect(),
            domains: store::projects::list(&self.db, true)
                .await?
                .into_iter()
                .map(|d| (d.id, d.name))
                .collect(),
        })
    }

    /// The roles `user_id` holds on `target`: its own and its groups' grants, grants inherited
    /// from the target's ancestors, then every role those imply. Domain-specific roles only
    /// contribute what they imply.
    pub(crate) async fn effective_roles(
        &self,
        user_id: &str,
        target: &Target,
    ) -> Result<Vec<RoleRef>> {
        let mut actors = vec![user_id.to_string()];
        actors.extend(store::users::group_ids(&self.db, user_id).await?);
        let rows = store::assignments::list_for_actors(&self.db, &actors).await?;
        let mut direct: BTreeSet<String> = BTreeSet::new();
        match target {
            Target::System => {
                for row in rows.iter().filter(|r| r.target_id == SYSTEM_TARGET) {
                    direct.insert(row.role_id.clone());
                }
            }
            Target::Domain(domain_id) => {
                for row in rows.iter().filter(|r| {
                    r.target_id == *domain_id
                        && !r.inherited
                        && matches!(
                            r.kind,
                            AssignmentKind::UserDomain | AssignmentKind::GroupDomain
                        )
                }) {
                    direct.insert(row.role_id.clone());
                }
            }
            Target::Project(project_id) => {
                let ancestors = self.ancestors(project_id).await?;
                for row in &rows {
                    let on_project = matches!(
                        row.kind,
                        AssignmentKind::UserProject | AssignmentKind::GroupProject
                    ) && row.target_id == *project_id
                        && !row.inherited;
                    let inherited = row.inherited
                        && matches!(
                            row.kind,
                            AssignmentKind::UserProject
                                | AssignmentKind::GroupProject
                                | AssignmentKind::UserDomain
                                | AssignmentKind::GroupDomain
                        )
                        && ancestors.contains(&row.target_id);
                    if on_project || inherited {
                        direct.insert(row.role_id.clone());
                    }
                }
            }
        }
        if direct.is_empty() {
            return Ok(Vec::new());
        }
        let roles: HashMap<String, RoleRow> = store::roles::list(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let implications = store::roles::list_implications(&self.db).await?;
        let all = expand_implied(&direct, &implications);
        let mut out: Vec<RoleRef> = all
            .iter()
            .filter_map(|id| roles.get(id))
            .filter(|r| r.domain_id.is_none())
            .map(|r| RoleRef {
                id: r.id.clone(),
                name: r.name.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The ids of `project_id`'s parents up to and including its domain, nearest first.
    pub(crate) async fn ancestors(&self, project_id: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut current = store::projects::get(&self.db, project_id).await?;
        while let Some(project) = current {
            let Some(parent) = project.parent_id.clone() else {
                break;
            };
            if out.contains(&parent) || out.len() > 64 {
                break;
            }
            out.push(parent.clone());
            if project.domain_id.as_deref() == Some(parent.as_str()) {
                break;
            }
            current = store::projects::get(&self.db, &parent).await?;
        }
        if let Some(project) = store::projects::get(&self.db, project_id).await? {
            if let Some(domain) = project.domain_id {
                if !out.contains(&domain) {
                    out.push(domain);
                }
            }
        }
        Ok(out)
    }

    /// Every project `user_id` holds some role on (directly, through groups or inheritance).
    pub(crate) async fn projects_with_roles(&self, user_id: &str) -> Result<HashSet<String>> {
        let query = AssignmentQuery {
            user_id: Some(user_id.to_string()),
            effective: true,
            ..Default::default()
        };
        let views = self.assignments_matching(&query).await?;
        Ok(views
            .into_iter()
            .filter(|v| matches!(v.assignment.kind, AssignmentKind::UserProject))
            .map(|v| v.assignment.target_id)
            .collect())
    }

    async fn check_grant_parts(&self, a: &AssignmentRow) -> Result<()> {
        if store::roles::get(&self.db, &a.role_id).await?.is_none() {
            return Err(not_found("role", &a.role_id));
        }
        if a.kind.is_group() {
            if store::groups::get(&self.db, &a.actor_id).await?.is_none() {
                return Err(not_found("group", &a.actor_id));
            }
        } else if store::users::get(&self.db, &a.actor_id).await?.is_none() {
            return Err(not_found("user", &a.actor_id));
        }
        match a.kind {
            AssignmentKind::UserProject | AssignmentKind::GroupProject => {
                let project = store::projects::get(&self.db, &a.target_id).await?;
                if project.is_none_or(|p| p.is_domain) {
                    return Err(not_found("project", &a.target_id));
                }
            }
            AssignmentKind::UserDomain | AssignmentKind::GroupDomain => {
                let domain = store::projects::get(&self.db, &a.target_id).await?;
                if domain.is_none_or(|d| !d.is_domain) {
                    return Err(not_found("domain", &a.target_id));
                }
            }
            AssignmentKind::UserSystem | AssignmentKind::GroupSystem => {}
        }
        Ok(())
    }

    /// `PUT .../roles/{role_id}`.
    pub async fn grant(&self, caller: &Caller, a: AssignmentRow) -> Result<()> {
        policy::require_admin(caller, "create_grant")?;
        self.check_grant_parts(&a).await?;
        store::assignments::grant(&self.db, &a).await?;
        self.changed();
        Ok(())
    }

    /// `HEAD|GET .../roles/{role_id}`: 404 unless the grant exists.
    pub async fn check_grant(&self, caller: &Caller, a: AssignmentRow) -> Result<()> {
        policy::require_reader(caller, "check_grant")?;
        self.check_grant_parts(&a).await?;
        if store::assignments::exists(&self.db, &a).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "Could not find role assignment with role: {}.",
                a.role_id
            )))
        }
    }

    /// `DELETE .../roles/{role_id}`. Tokens are not revoked: they carry no roles, which are
    /// resolved again at validation, so the role disappears from every token at once (and a
    /// token left with no role on its scope stops validating).
    pub async fn revoke_grant(&self, caller: &Caller, a: AssignmentRow) -> Result<()> {
        policy::require_admin(caller, "revoke_grant")?;
        self.check_grant_parts(&a).await?;
        if !store::assignments::revoke(&self.db, &a).await? {
            return Err(Error::not_found(format!(
                "Could not find role assignment with role: {}.",
                a.role_id
            )));
        }
        self.changed();
        Ok(())
    }

    /// `GET .../roles`: the roles granted to an actor on a target.
    pub async fn list_grants(
        &self,
        caller: &Caller,
        kind: AssignmentKind,
        actor_id: &str,
        target_id: &str,
        inherited: bool,
    ) -> Result<Vec<RoleRow>> {
        policy::require_reader(caller, "list_grants")?;
        let probe = AssignmentRow {
            kind,
            actor_id: actor_id.to_string(),
            target_id: target_id.to_string(),
            role_id: String::new(),
            inherited,
        };
        // Validate the actor and target (the role part is checked only when present).
        if let Some(role) = store::roles::list(&self.db).await?.first() {
            self.check_grant_parts(&AssignmentRow {
                role_id: role.id.clone(),
                ..probe.clone()
            })
            .await?;
        }
        let rows = store::assignments::list_for_actors(&self.db, &[actor_id.to_string()]).await?;
        let mut out = Vec::new();
        for row in rows
            .iter()
            .filter(|r| r.kind == kind && r.target_id == target_id && r.inherited == inherited)
        {
            if let Some(role) = store::roles::get(&self.db, &row.role_id).await? {
                out.push(role);
            }
        }
        Ok(out)
    }

    /// `GET /v3/role_assignments`.
    pub async fn list_role_assignments(
        &self,
        caller: &Caller,
        query: &AssignmentQuery,
    ) -> Result<Vec<AssignmentView>> {
        let own_only = query.user_id.as_deref() == Some(caller.user_id.as_str());
        if !own_only {
            policy::require_reader(caller, "list_role_assignments")?;
        }
        if query.group_id.is_some() && query.effective {
            return Err(Error::bad_request(
                "Combining effective and group filter will always result in an empty list.",
            ));
        }
        self.assignments_matching(query).await
    }

    async fn assignments_matching(&self, query: &AssignmentQuery) -> Result<Vec<AssignmentView>> {
        let stored = store::assignments::list_all(&self.db).await?;
        let mut views: Vec<AssignmentView> = Vec::new();
        if query.effective {
            let projects = store::projects::list(&self.db, false).await?;
            for row in &stored {
                // Inherited grants apply to the projects below the target, not to the target.
                let targets: Vec<(AssignmentKind, String)> = if row.inherited {
                    let kind = if row.kind.is_group() {
                        AssignmentKind::GroupProject
                    } else {
                        AssignmentKind::UserProject
                    };
                    subtree_ids(&projects, &row.target_id, row.kind)
                        .into_iter()
                        .map(|id| (kind, id))
                        .collect()
                } else {
                    vec![(row.kind, row.target_id.clone())]
                };
                for (kind, target_id) in targets {
                    let derived = AssignmentRow {
                        kind,
                        target_id,
                        inherited: false,
                        ..row.clone()
                    };
                    if kind.is_group() {
                        for user in store::users::list_in_group(&self.db, &row.actor_id).await? {
                            views.push(AssignmentView {
                                assignment: AssignmentRow {
                                    kind: user_kind(kind),
                                    actor_id: user.id,
                                    ..derived.clone()
                                },
                                origin: row.clone(),
                                via_group: Some(row.actor_id.clone()),
                                prior_role: None,
                            });
                        }
                    } else {
                        views.push(AssignmentView {
                            assignment: derived,
                            origin: row.clone(),
                            via_group: None,
                            prior_role: None,
                        });
                    }
                }
            }
            // Implied roles.
            let implications = store::roles::list_implications(&self.db).await?;
            let mut implied_views = Vec::new();
            for view in &views {
                let start: BTreeSet<String> = [view.assignment.role_id.clone()].into();
                for role_id in expand_implied(&start, &implications) {
                    if role_id != view.assignment.role_id {
                        implied_views.push(AssignmentView {
                            assignment: AssignmentRow {
                                role_id,
                                ..view.assignment.clone()
                            },
                            prior_role: Some(view.assignment.role_id.clone()),
                            ..view.clone()
                        });
                    }
                }
            }
            views.extend(implied_views);
            // Domain-specific roles never reach a token: only what they imply does.
            let domain_roles: HashSet<String> = store::roles::list(&self.db)
                .await?
                .into_iter()
                .filter(|r| r.domain_id.is_some())
                .map(|r| r.id)
                .collect();
            views.retain(|v| !domain_roles.contains(&v.assignment.role_id));
            let mut seen = HashSet::new();
            views.retain(|v| seen.insert(v.assignment.clone()));
        } else {
            views = stored
                .into_iter()
                .map(|row| AssignmentView {
                    assignment: row.clone(),
                    origin: row,
                    via_group: None,
                    prior_role: None,
                })
                .collect();
        }

        let subtree: Option<HashSet<String>> = match (&query.project_id, query.include_subtree) {
            (Some(p), true) => {
                let projects = store::projects::list(&self.db, false).await?;
                let mut ids: HashSet<String> =
                    subtree_ids(&projects, p, AssignmentKind::UserProject)
                        .into_iter()
                        .collect();
                ids.insert(p.clone());
                Some(ids)
            }
            _ => None,
        };
        views.retain(|v| {
            let a = &v.assignment;
            let actor_is_group = a.kind.is_group();
            query
                .user_id
                .as_ref()
                .is_none_or(|u| !actor_is_group && &a.actor_id == u)
                && query
                    .group_id
                    .as_ref()
                    .is_none_or(|g| actor_is_group && &a.actor_id == g)
                && query.role_id.as_ref().is_none_or(|r| &a.role_id == r)
                && query.project_id.as_ref().is_none_or(|p| {
                    matches!(
                        a.kind,
                        AssignmentKind::UserProject | AssignmentKind::GroupProject
                    ) && match &subtree {
                        Some(ids) => ids.contains(&a.target_id),
                        None => &a.target_id == p,
                    }
                })
                && query.domain_id.as_ref().is_none_or(|d| {
                    matches!(
                        a.kind,
                        AssignmentKind::UserDomain | AssignmentKind::GroupDomain
                    ) && &a.target_id == d
                })
                && (!query.system
                    || matches!(
                        a.kind,
                        AssignmentKind::UserSystem | AssignmentKind::GroupSystem
                    ))
                && (!query.inherited_only || a.inherited)
        });
        Ok(views)
    }
}

fn user_kind(kind: AssignmentKind) -> AssignmentKind {
    match kind {
        AssignmentKind::GroupProject => AssignmentKind::UserProject,
        AssignmentKind::GroupDomain => AssignmentKind::UserDomain,
        AssignmentKind::GroupSystem => AssignmentKind::UserSystem,
        other => other,
    }
}

/// Projects below `target_id`: for a domain target every project of the domain, for a project
/// target its descendants (not itself).
fn subtree_ids(
    projects: &[store::projects::ProjectRow],
    target_id: &str,
    kind: AssignmentKind,
) -> Vec<String> {
    if matches!(
        kind,
        AssignmentKind::UserDomain | AssignmentKind::GroupDomain
    ) {
        return projects
            .iter()
            .filter(|p| p.domain_id.as_deref() == Some(target_id))
            .map(|p| p.id.clone())
            .collect();
    }
    let mut out = Vec::new();
    let mut frontier = vec![target_id.to_string()];
    while let Some(parent) = frontier.pop() {
        for child in projects
            .iter()
            .filter(|p| p.parent_id.as_deref() == Some(parent.as_str()))
        {
            if !out.contains(&child.id) && child.id != target_id {
                out.push(child.id.clone());
                frontier.push(child.id.clone());
            }
        }
    }
    out
}

/// `start` plus every role reachable through inference rules.
fn expand_implied(start: &BTreeSet<String>, implications: &[(String, String)]) -> BTreeSet<String> {
    let mut all = start.clone();
    let mut frontier: Vec<String> = start.iter().cloned().collect();
    while let Some(role) = frontier.pop() {
        for (prior, implied) in implications {
            if *prior == role && all.insert(implied.clone()) {
                frontier.push(implied.clone());
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_roles_expand_transitively_and_survive_cycles() {
        let rules = vec![
            ("admin".to_string(), "member".to_string()),
            ("member".to_string(), "reader".to_string()),
            ("reader".to_string(), "admin".to_string()),
        ];
        let start: BTreeSet<String> = ["member".to_string()].into();
        let all = expand_implied(&start, &rules);
        assert_eq!(all.len(), 3);
    }
}
