//! The Identity API as a client sees it, in process (no socket): every route refuses a missing
//! token and malformed JSON, members are refused admin calls, other tenants' resources stay out
//! of reach, the user journeys work, and a restart keeps everything.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use nubo_common::Db;
use nubo_identity::keys::KeyRing;
use nubo_identity::{IdentityService, IdentitySettings};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Cloud {
    service: Arc<IdentityService>,
    router: Router,
}

async fn cloud_with(db: Db, keys: KeyRing) -> Cloud {
    cloud_with_settings(db, keys, IdentitySettings::for_tests()).await
}

async fn cloud_with_settings(db: Db, keys: KeyRing, settings: IdentitySettings) -> Cloud {
    let service = IdentityService::new(db, settings, keys).await.unwrap();
    service
        .bootstrap("admin-secret", "RegionOne")
        .await
        .unwrap();
    let router = nubo_identity::http::router(service.clone());
    Cloud { service, router }
}

async fn cloud() -> Cloud {
    cloud_with(Db::in_memory().await, KeyRing::ephemeral()).await
}

struct Reply {
    status: StatusCode,
    token: Option<String>,
    body: Value,
}

impl Cloud {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("x-auth-token", token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .header("content-type", "application/json")
            .body(Body::from(body.unwrap_or("").to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let token = response
            .headers()
            .get("x-subject-token")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            token,
            body,
        }
    }

    async fn json(&self, method: Method, path: &str, token: &str, body: Value) -> Reply {
        self.call(method, path, Some(token), Some(&body.to_string()))
            .await
    }

    /// A project-scoped token for `user`/`password` on `project` (names, Default domain).
    async fn login(&self, user: &str, password: &str, project: &str) -> Reply {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        self.call(
            Method::POST,
            "/v3/auth/tokens",
            None,
            Some(&body.to_string()),
        )
        .await
    }

    async fn admin_token(&self) -> String {
        let reply = self.login("admin", "admin-secret", "admin").await;
        assert_eq!(reply.status, StatusCode::CREATED);
        reply.token.unwrap()
    }

    /// A project, a user with `member` on it, and that user's token.
    async fn member_of(&self, admin: &str, project: &str, user: &str) -> (String, String, String) {
        let p = self
            .json(
                Method::POST,
                "/v3/projects",
                admin,
                json!({"project": {"name": project}}),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
        let project_id = p.body["project"]["id"].as_str().unwrap().to_string();
        let u = self
            .json(
                Method::POST,
                "/v3/users",
                admin,
                json!({"user": {"name": user, "password": "pw"}}),
            )
            .await;
        assert_eq!(u.status, StatusCode::CREATED);
        let user_id = u.body["user"]["id"].as_str().unwrap().to_string();
        let member_role = self.role_id(admin, "member").await;
        let grant = self
            .call(
                Method::PUT,
                &format!("/v3/projects/{project_id}/users/{user_id}/roles/{member_role}"),
                Some(admin),
                None,
            )
            .await;
        assert_eq!(grant.status, StatusCode::NO_CONTENT);
        let token = self.login(user, "pw", project).await.token.unwrap();
        (project_id, user_id, token)
    }

    async fn role_id(&self, admin: &str, name: &str) -> String {
        let roles = self
            .call(
                Method::GET,
                &format!("/v3/roles?name={name}"),
                Some(admin),
                None,
            )
            .await;
        roles.body["roles"][0]["id"].as_str().unwrap().to_string()
    }
}

/// Every route the HTTP layer declares, read from its source so that a new route is covered the
/// moment it is added: `(METHOD, path with {params})`. The grant routes, which `assignments.rs`
/// builds in a loop, are listed explicitly.
fn declared_routes() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(open) = rest.find('"') else { break };
            if rest[..open].trim() != "" {
                continue; // a computed path (the grant loop)
            }
            let after = &rest[open + 1..];
            let close = after.find('"').unwrap();
            let path = after[..close].to_string();
            // The method chain runs to the closing parenthesis of this `.route(` call.
            let mut depth = 1;
            let mut end = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            let chain = &rest[open + close + 2..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let mut from = 0;
                while let Some(i) = chain[from..].find(&format!("{method}(")) {
                    let at = from + i;
                    let boundary = at == 0
                        || !chain.as_bytes()[at - 1].is_ascii_alphanumeric()
                            && chain.as_bytes()[at - 1] != b'_';
                    if boundary {
                        routes.push((method.to_uppercase(), path.clone()));
                    }
                    from = at + method.len();
                }
            }
        }
    }
    for prefix in ["/v3", "/v3/OS-INHERIT"] {
        let suffix = if prefix == "/v3" {
            ""
        } else {
            "/inherited_to_projects"
        };
        for target in ["projects", "domains"] {
            for actor in ["users", "groups"] {
                routes.push((
                    "GET".into(),
                    format!("{prefix}/{target}/t/{actor}/a/roles{suffix}"),
                ));
                for method in ["GET", "PUT", "DELETE"] {
                    routes.push((
                        method.into(),
                        format!("{prefix}/{target}/t/{actor}/a/roles/r{suffix}"),
                    ));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/v3"),
    ("GET", "/v3/"),
    ("POST", "/v3/auth/tokens"),
    ("POST", "/v3/users/{id}/password"),
];

/// `{param}` -> `x`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('x');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_route_needs_a_token() {
    let cloud = cloud().await;
    let routes = declared_routes();
    assert!(
        routes.len() > 140,
        "found only {} routes: the source scan is broken",
        routes.len()
    );
    for (method, path) in routes
        .iter()
        .filter(|(m, p)| !PUBLIC.contains(&(m.as_str(), p.as_str())))
    {
        let path = concrete(path);
        let reply = cloud
            .call(method.parse().unwrap(), &path, None, Some("{}"))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token"
        );
        assert_eq!(
            reply.body["error"]["code"], 401,
            "{method} {path}: Keystone fault body"
        );
        let reply = cloud
            .call(
                method.parse().unwrap(),
                &path,
                Some("not-a-token"),
                Some("{}"),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad token"
        );
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_everywhere() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    // PUTs that take a body; the other PUTs (grants, memberships, tags, inferences) take none.
    let put_with_body = [
        "/v3/regions/{id}",
        "/v3/projects/{id}/tags",
        "/v3/domains/{id}/config",
    ];
    let with_body = declared_routes().into_iter().filter(|(m, p)| {
        m == "POST" || m == "PATCH" || (m == "PUT" && put_with_body.contains(&p.as_str()))
    });
    let mut checked = 0;
    for (method, path) in with_body {
        let token = if path == "/v3/auth/tokens" {
            None
        } else {
            Some(admin.as_str())
        };
        let path = concrete(&path);
        let reply = cloud
            .call(method.parse().unwrap(), &path, token, Some("{\"broken\": "))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} with malformed JSON"
        );
        assert_eq!(reply.body["error"]["code"], 400);
        checked += 1;
    }
    assert!(checked > 30, "only {checked} routes with bodies found");
}

/// A member of one project calling every route with the ids of another project's resources (and
/// of shared ones) is refused — 403 or 404, or 400 for a body it may not send — except where
/// Keystone lets any user act (their own token, catalog and scopes; regions).
#[tokio::test]
async fn a_member_reaches_nothing_of_another_tenant_on_any_route() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (_, _, alice) = cloud.member_of(&admin, "p1", "alice").await;
    let (p2, bob_id, _) = cloud.member_of(&admin, "p2", "bob").await;
    let member_role = cloud.role_id(&admin, "member").await;
    let open_to_any_user = [
        ("GET", "/v3/auth/catalog"),
        ("GET", "/v3/auth/projects"),
        ("GET", "/v3/auth/domains"),
        ("GET", "/v3/auth/system"),
        ("GET", "/v3/regions"),
        ("GET", "/v3/credentials"), // lists only the caller's own
    ];
    let mut checked = 0;
    for (method, path) in declared_routes() {
        if PUBLIC.contains(&(method.as_str(), path.as_str()))
            || open_to_any_user.contains(&(method.as_str(), path.as_str()))
        {
            continue;
        }
        // Bob's ids wherever a route names a user, project or role; placeholders elsewhere.
        let concrete = path
            .replace(
                "{id}",
                if path.starts_with("/v3/users/") {
                    &bob_id
                } else {
                    &p2
                },
            )
            .replace("{user}", &bob_id)
            .replace("{actor}", &bob_id)
            .replace("{project}", &p2)
            .replace("{role}", &member_role);
        let concrete = self::concrete(&concrete);
        let headers: &[(&str, &str)] = if path == "/v3/auth/tokens" {
            &[("x-subject-token", "x")]
        } else {
            &[]
        };
        let reply = cloud
            .call_with(
                method.parse().unwrap(),
                &concrete,
                Some(&alice),
                Some("{}"),
                headers,
            )
            .await;
        let refused = matches!(reply.status.as_u16(), 400 | 403 | 404 | 405 | 409);
        assert!(
            refused,
            "alice {method} {concrete} -> {} {:?}",
            reply.status, reply.body
        );
        checked += 1;
    }
    assert!(checked > 140);
}

#[tokio::test]
async fn members_are_refused_admin_calls() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (_, _, member) = cloud.member_of(&admin, "p1", "alice").await;
    let admin_only: &[(&str, &str, Value)] = &[
        ("POST", "/v3/projects", json!({"project": {"name": "x"}})),
        ("POST", "/v3/users", json!({"user": {"name": "x"}})),
        ("POST", "/v3/domains", json!({"domain": {"name": "x"}})),
        ("POST", "/v3/roles", json!({"role": {"name": "x"}})),
        ("POST", "/v3/groups", json!({"group": {"name": "x"}})),
        ("POST", "/v3/services", json!({"service": {"type": "x"}})),
        ("POST", "/v3/regions", json!({"region": {"id": "x"}})),
        ("GET", "/v3/users", Value::Null),
        ("GET", "/v3/projects", Value::Null),
        ("GET", "/v3/domains", Value::Null),
        ("GET", "/v3/role_assignments", Value::Null),
        ("GET", "/v3/services", Value::Null),
        ("GET", "/v3/endpoints", Value::Null),
    ];
    for (method, path, body) in admin_only {
        let reply = cloud
            .json(method.parse().unwrap(), path, &member, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "member {method} {path}"
        );
        assert!(reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("identity:"));
    }
}

#[tokio::test]
async fn another_tenant_is_out_of_reach() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (p1, alice_id, alice) = cloud.member_of(&admin, "p1", "alice").await;
    let (p2, bob_id, bob) = cloud.member_of(&admin, "p2", "bob").await;
    // Own project and self: readable.
    assert_eq!(
        cloud
            .call(
                Method::GET,
                &format!("/v3/projects/{p1}"),
                Some(&alice),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        cloud
            .call(
                Method::GET,
                &format!("/v3/users/{alice_id}"),
                Some(&alice),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    // The other tenant's project and user: refused.
    for path in [
        format!("/v3/projects/{p2}"),
        format!("/v3/users/{bob_id}"),
        format!("/v3/users/{bob_id}/projects"),
    ] {
        let reply = cloud.call(Method::GET, &path, Some(&alice), None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "alice GET {path}");
    }
    // Alice cannot validate Bob's token, nor revoke it.
    let reply = cloud
        .call_with(
            Method::GET,
            "/v3/auth/tokens",
            Some(&alice),
            None,
            &[("x-subject-token", &bob)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = cloud
        .call_with(
            Method::DELETE,
            "/v3/auth/tokens",
            Some(&alice),
            None,
            &[("x-subject-token", &bob)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Alice cannot scope to p2.
    let reply = cloud.login("alice", "pw", "p2").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Alice's credentials are hers.
    let reply = cloud
        .call(
            Method::GET,
            &format!("/v3/users/{bob_id}/application_credentials"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_member_of_another_domain_is_refused() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let domain = cloud
        .json(
            Method::POST,
            "/v3/domains",
            &admin,
            json!({"domain": {"name": "other"}}),
        )
        .await;
    let domain_id = domain.body["domain"]["id"].as_str().unwrap().to_string();
    let user = cloud
        .json(
            Method::POST,
            "/v3/users",
            &admin,
            json!({"user": {"name": "dave", "domain_id": domain_id, "password": "pw"}}),
        )
        .await;
    let user_id = user.body["user"]["id"].as_str().unwrap().to_string();
    let member = cloud.role_id(&admin, "member").await;
    let grant = format!("/v3/domains/{domain_id}/users/{user_id}/roles/{member}");
    assert_eq!(
        cloud
            .call(Method::PUT, &grant, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "dave", "domain": {"id": domain_id}, "password": "pw"}}}, "scope": {"domain": {"id": domain_id}}}});
    let login = cloud
        .call(
            Method::POST,
            "/v3/auth/tokens",
            None,
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.body);
    assert_eq!(login.body["token"]["domain"]["id"], domain_id.as_str());
    let dave = login.token.unwrap();
    assert_eq!(
        cloud
            .call(
                Method::GET,
                &format!("/v3/domains/{domain_id}"),
                Some(&dave),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    for path in [
        "/v3/domains/default".to_string(),
        "/v3/users".to_string(),
        "/v3/projects".to_string(),
    ] {
        let reply = cloud.call(Method::GET, &path, Some(&dave), None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "dave GET {path}");
    }
}

#[tokio::test]
async fn token_issue_validate_and_revoke() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (project_id, user_id, token) = cloud.member_of(&admin, "p1", "alice").await;

    let reply = cloud
        .call_with(
            Method::GET,
            "/v3/auth/tokens",
            Some(&admin),
            None,
            &[("x-subject-token", &token)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let t = &reply.body["token"];
    assert_eq!(t["user"]["id"], user_id.as_str());
    assert_eq!(t["project"]["id"], project_id.as_str());
    let roles: Vec<&str> = t["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"member") && roles.contains(&"reader"),
        "member implies reader: {roles:?}"
    );
    assert!(t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["type"] == "identity"));
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));

    // ?nocatalog
    let reply = cloud
        .call_with(
            Method::GET,
            "/v3/auth/tokens?nocatalog",
            Some(&admin),
            None,
            &[("x-subject-token", &token)],
        )
        .await;
    assert!(reply.body["token"].get("catalog").is_none());

    // A token from a token keeps the user and scope and carries the audit chain.
    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}}}});
    let child = cloud
        .call(
            Method::POST,
            "/v3/auth/tokens",
            None,
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(child.status, StatusCode::CREATED);
    assert_eq!(
        child.body["token"]["audit_ids"].as_array().unwrap().len(),
        2
    );

    // Revoke: the token stops working, for validation and for use.
    let reply = cloud
        .call_with(
            Method::DELETE,
            "/v3/auth/tokens",
            Some(&admin),
            None,
            &[("x-subject-token", &token)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call_with(
            Method::GET,
            "/v3/auth/tokens",
            Some(&admin),
            None,
            &[("x-subject-token", &token)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud
        .call(
            Method::GET,
            &format!("/v3/projects/{project_id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A revoked token cannot make another one: Keystone's 404 "Could not find token".
    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}}}});
    let reply = cloud
        .call(
            Method::POST,
            "/v3/auth/tokens",
            None,
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // ...but only that token: the child was issued after and has its own audit id, and the
    // chain was not revoked.
    let child_token = child.token.unwrap();
    let reply = cloud
        .call(
            Method::GET,
            &format!("/v3/projects/{project_id}"),
            Some(&child_token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_passwords_and_disabled_users_get_401() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (_, user_id, token) = cloud.member_of(&admin, "p1", "alice").await;
    assert_eq!(
        cloud.login("alice", "wrong", "p1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cloud.login("nobody", "pw", "p1").await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = cloud
        .json(
            Method::PATCH,
            &format!("/v3/users/{user_id}"),
            &admin,
            json!({"user": {"enabled": false}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        cloud.login("alice", "pw", "p1").await.status,
        StatusCode::UNAUTHORIZED
    );
    let reply = cloud
        .call(Method::GET, "/v3/auth/projects", Some(&token), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "a disabled user's tokens are revoked"
    );
    // Re-enabling does not bring the old token back.
    cloud
        .json(
            Method::PATCH,
            &format!("/v3/users/{user_id}"),
            &admin,
            json!({"user": {"enabled": true}}),
        )
        .await;
    let reply = cloud
        .call(Method::GET, "/v3/auth/projects", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_user_changes_their_own_password() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (_, user_id, token) = cloud.member_of(&admin, "p1", "alice").await;
    let path = format!("/v3/users/{user_id}/password");
    let wrong = json!({"user": {"original_password": "nope", "password": "new"}});
    assert_eq!(
        cloud.json(Method::POST, &path, &token, wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    let right = json!({"user": {"original_password": "pw", "password": "new"}});
    assert_eq!(
        cloud.json(Method::POST, &path, &token, right).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud.login("alice", "pw", "p1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cloud.login("alice", "new", "p1").await.status,
        StatusCode::CREATED
    );
    // The tokens issued before the change are revoked.
    assert_eq!(
        cloud
            .call(Method::GET, "/v3/auth/projects", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn groups_grants_and_effective_assignments() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (project_id, user_id, _) = cloud.member_of(&admin, "p1", "alice").await;
    let group = cloud
        .json(
            Method::POST,
            "/v3/groups",
            &admin,
            json!({"group": {"name": "devs"}}),
        )
        .await;
    let group_id = group.body["group"]["id"].as_str().unwrap().to_string();
    let reply = cloud
        .call(
            Method::PUT,
            &format!("/v3/groups/{group_id}/users/{user_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reader = cloud.role_id(&admin, "reader").await;
    let path = format!("/v3/projects/{project_id}/groups/{group_id}/roles/{reader}");
    assert_eq!(
        cloud
            .call(Method::PUT, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud
            .call(Method::HEAD, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    let reply = cloud
        .call(
            Method::GET,
            &format!("/v3/role_assignments?effective&include_names&scope.project.id={project_id}&user.id={user_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let assignments = reply.body["role_assignments"].as_array().unwrap();
    let names: Vec<&str> = assignments
        .iter()
        .map(|a| a["role"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"member") && names.contains(&"reader"),
        "{names:?}"
    );
    assert!(assignments
        .iter()
        .all(|a| a["user"]["name"] == "alice" && a["scope"]["project"]["name"] == "p1"));
    let via_group = assignments
        .iter()
        .any(|a| a["links"]["membership"].is_string());
    let direct_reader = assignments
        .iter()
        .any(|a| a["role"]["name"] == "reader" && a["links"]["prior_role"].is_string());
    assert!(via_group || direct_reader);

    // Without effective, the group grant is listed as a group grant.
    let reply = cloud
        .call(
            Method::GET,
            &format!("/v3/role_assignments?group.id={group_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.body["role_assignments"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn application_credentials_authenticate_and_die_with_deletion() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let (project_id, user_id, token) = cloud.member_of(&admin, "p1", "alice").await;
    let reply = cloud
        .json(
            Method::POST,
            &format!("/v3/users/{user_id}/application_credentials"),
            &token,
            json!({"application_credential": {"name": "ci"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let ac = &reply.body["application_credential"];
    let (id, secret) = (
        ac["id"].as_str().unwrap().to_string(),
        ac["secret"].as_str().unwrap().to_string(),
    );
    assert_eq!(ac["project_id"], project_id.as_str());
    assert_eq!(
        ac["roles"].as_array().unwrap().len(),
        2,
        "all the token's roles by default"
    );

    let auth = |secret: &str| {
        json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": id, "secret": secret}}}})
        .to_string()
    };
    let reply = cloud
        .call(Method::POST, "/v3/auth/tokens", None, Some(&auth(&secret)))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["token"]["project"]["id"], project_id.as_str());
    assert_eq!(
        reply.body["token"]["application_credential"]["id"],
        id.as_str()
    );
    let ac_token = reply.token.unwrap();
    assert_eq!(
        cloud
            .call(Method::POST, "/v3/auth/tokens", None, Some(&auth("wrong")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let reply = cloud
        .call(
            Method::DELETE,
            &format!("/v3/users/{user_id}/application_credentials/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        cloud
            .call(Method::POST, "/v3/auth/tokens", None, Some(&auth(&secret)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cloud
            .call(Method::GET, "/v3/auth/projects", Some(&ac_token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn domains_must_be_disabled_before_deletion_and_take_their_contents() {
    let cloud = cloud().await;
    let admin = cloud.admin_token().await;
    let domain = cloud
        .json(
            Method::POST,
            "/v3/domains",
            &admin,
            json!({"domain": {"name": "acme"}}),
        )
        .await;
    let domain_id = domain.body["domain"]["id"].as_str().unwrap().to_string();
    let user = cloud
        .json(
            Method::POST,
            "/v3/users",
            &admin,
            json!({"user": {"name": "wile", "domain_id": domain_id}}),
        )
        .await;
    let user_id = user.body["user"]["id"].as_str().unwrap().to_string();
    let path = format!("/v3/domains/{domain_id}");
    assert_eq!(
        cloud
            .call(Method::DELETE, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let reply = cloud
        .json(
            Method::PATCH,
            &path,
            &admin,
            json!({"domain": {"enabled": false}}),
        )
        .await;
    assert_eq!(reply.body["domain"]["enabled"], false);
    assert_eq!(
        cloud
            .call(Method::DELETE, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        cloud
            .call(Method::GET, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cloud
            .call(
                Method::GET,
                &format!("/v3/users/{user_id}"),
                Some(&admin),
                None
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Duplicate names are a 409.
    cloud
        .json(
            Method::POST,
            "/v3/domains",
            &admin,
            json!({"domain": {"name": "dup"}}),
        )
        .await;
    let reply = cloud
        .json(
            Method::POST,
            "/v3/domains",
            &admin,
            json!({"domain": {"name": "dup"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn version_discovery_is_public() {
    let cloud = cloud().await;
    let reply = cloud.call(Method::GET, "/", None, None).await;
    assert_eq!(reply.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(reply.body["versions"]["values"][0]["status"], "stable");
    let reply = cloud.call(Method::GET, "/v3", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["version"]["media-types"][0]["type"],
        "application/vnd.openstack.identity-v3+json"
    );
}

#[tokio::test]
async fn a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nubo.db").display());
    let keys = dir.path().join("keys");
    let (project_id, user_id, token) = {
        let cloud = cloud_with(
            Db::open(&url, 2).await.unwrap(),
            KeyRing::open(&keys).unwrap(),
        )
        .await;
        let admin = cloud.admin_token().await;
        let made = cloud.member_of(&admin, "p1", "alice").await;
        // Something revoked must stay revoked.
        let doomed = cloud.login("alice", "pw", "p1").await.token.unwrap();
        cloud
            .call_with(
                Method::DELETE,
                "/v3/auth/tokens",
                Some(&admin),
                None,
                &[("x-subject-token", &doomed)],
            )
            .await;
        drop(cloud.service);
        (made.0, made.1, (made.2, doomed))
    };
    let cloud = cloud_with(
        Db::open(&url, 2).await.unwrap(),
        KeyRing::open(&keys).unwrap(),
    )
    .await;
    let admin = cloud.admin_token().await;
    assert_eq!(
        cloud
            .call(
                Method::GET,
                &format!("/v3/projects/{project_id}"),
                Some(&admin),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        cloud
            .call(
                Method::GET,
                &format!("/v3/users/{user_id}"),
                Some(&admin),
                None
            )
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        cloud.login("alice", "pw", "p1").await.status,
        StatusCode::CREATED
    );
    let reply = cloud
        .call_with(
            Method::GET,
            "/v3/auth/tokens",
            Some(&admin),
            None,
            &[("x-subject-token", &token.0)],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a token issued before the restart still validates"
    );
    let reply = cloud
        .call_with(
            Method::GET,
            "/v3/auth/tokens",
            Some(&admin),
            None,
            &[("x-subject-token", &token.1)],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a token revoked before the restart stays revoked"
    );
    let users = cloud
        .call(Method::GET, "/v3/users?name=admin", Some(&admin), None)
        .await;
    assert_eq!(
        users.body["users"].as_array().unwrap().len(),
        1,
        "bootstrap does not duplicate on restart"
    );
}

#[tokio::test]
async fn security_compliance_rules_apply_when_configured() {
    let mut settings = IdentitySettings::for_tests();
    let config = nubo_common::config::IdentityConfig {
        lockout_failure_attempts: 2,
        lockout_duration: 1,
        unique_last_password_count: 2,
        password_regex: "^.{6,}$".into(),
        password_regex_description: "at least 6 characters".into(),
        ..Default::default()
    };
    settings.password_rules =
        nubo_identity::service::compliance::PasswordRules::from_config(&config).unwrap();
    let cloud = cloud_with_settings(Db::in_memory().await, KeyRing::ephemeral(), settings).await;
    let admin = cloud.admin_token().await;

    // The format rule applies to creation, and a refused creation leaves no user behind.
    let reply = cloud
        .json(
            Method::POST,
            "/v3/users",
            &admin,
            json!({"user": {"name": "erin", "password": "abc"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at least 6 characters"));
    let reply = cloud
        .call(Method::GET, "/v3/users?name=erin", Some(&admin), None)
        .await;
    assert_eq!(reply.body["users"].as_array().unwrap().len(), 0);

    let project = cloud
        .json(
            Method::POST,
            "/v3/projects",
            &admin,
            json!({"project": {"name": "p1"}}),
        )
        .await;
    let project_id = project.body["project"]["id"].as_str().unwrap().to_string();
    let user = cloud
        .json(
            Method::POST,
            "/v3/users",
            &admin,
            json!({"user": {"name": "alice", "password": "secret1"}}),
        )
        .await;
    let user_id = user.body["user"]["id"].as_str().unwrap().to_string();
    let member = cloud.role_id(&admin, "member").await;
    cloud
        .call(
            Method::PUT,
            &format!("/v3/projects/{project_id}/users/{user_id}/roles/{member}"),
            Some(&admin),
            None,
        )
        .await;

    // Lockout: two failures lock the account, even against the right password, for a second.
    assert_eq!(
        cloud.login("alice", "wrong", "p1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cloud.login("alice", "wrong", "p1").await.status,
        StatusCode::UNAUTHORIZED
    );
    let locked = cloud.login("alice", "secret1", "p1").await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert!(locked.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("locked"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        cloud.login("alice", "secret1", "p1").await.status,
        StatusCode::CREATED
    );

    // History: a user may not reuse either of their last two passwords.
    let change = |original: &str, new: &str| {
        json!({"user": {"original_password": original, "password": new}}).to_string()
    };
    let path = format!("/v3/users/{user_id}/password");
    let reply = cloud
        .call(
            Method::POST,
            &path,
            None,
            Some(&change("secret1", "secret2")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call(
            Method::POST,
            &path,
            None,
            Some(&change("secret2", "secret1")),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "the previous password"
    );
    let reply = cloud
        .call(
            Method::POST,
            &path,
            None,
            Some(&change("secret2", "secret2")),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "the current password"
    );
    let reply = cloud
        .call(
            Method::POST,
            &path,
            None,
            Some(&change("secret2", "secret3")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // An admin reset is not held to the history.
    let reply = cloud
        .json(
            Method::PATCH,
            &format!("/v3/users/{user_id}"),
            &admin,
            json!({"user": {"password": "secret3"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        cloud.login("alice", "secret3", "p1").await.status,
        StatusCode::CREATED
    );
}
