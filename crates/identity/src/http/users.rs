//! `/v3/users`: users, their password, groups, projects, application credentials and access rules.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, created, filters, member, no_content, param, AppState, Params};
use crate::store;
use crate::types;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/users", get(list_users).post(create_user))
        .route(
            "/v3/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/v3/users/{id}/groups", get(user_groups))
        .route("/v3/users/{id}/projects", get(user_projects))
        .route(
            "/v3/users/{id}/application_credentials",
            get(list_app_creds).post(create_app_cred),
        )
        .route(
            "/v3/users/{id}/application_credentials/{ac}",
            get(get_app_cred).delete(delete_app_cred),
        )
        .route(
            "/v3/users/{id}/credentials/OS-EC2",
            get(list_ec2).post(create_ec2),
        )
        .route(
            "/v3/users/{id}/credentials/OS-EC2/{access}",
            get(get_ec2).delete(delete_ec2),
        )
        .route("/v3/users/{id}/access_rules", get(list_access_rules))
        .route(
            "/v3/users/{id}/access_rules/{rule}",
            get(get_access_rule).delete(delete_access_rule),
        )
}

async fn create_user(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let user = s.create_user(&caller, member(body, "user")?).await?;
    Ok(created(json!({"user": types::user(&base(&s), &user)})))
}

async fn get_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let user = s.get_user(&caller, &id).await?;
    Ok(Json(json!({"user": types::user(&base(&s), &user)})))
}

async fn list_users(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let users = s
        .list_users(&caller, &filters(&params, &["password_expires_at"]))
        .await?;
    Ok(Json(json!({
        "users": users.iter().map(|u| types::user(&base, u)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "users"),
    })))
}

async fn update_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let user = s.update_user(&caller, &id, member(body, "user")?).await?;
    Ok(Json(json!({"user": types::user(&base(&s), &user)})))
}

async fn delete_user(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_user(&caller, &id).await?;
    Ok(no_content())
}

/// Public, as in Keystone: the original password is the proof, and a user whose password has
/// expired cannot get a token to change it with.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/v3/users/{id}/password", post(change_password))
}

async fn change_password(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    s.change_password(&id, member(body, "user")?).await?;
    Ok(no_content())
}

async fn user_groups(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let groups = s
        .list_user_groups(&caller, &id, &filters(&params, &[]))
        .await?;
    Ok(Json(json!({
        "groups": groups.iter().map(|g| types::group(&base, g)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("users/{id}/groups")),
    })))
}

async fn user_projects(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let projects = s
        .list_user_projects(&caller, &id, &filters(&params, &[]))
        .await?;
    Ok(Json(json!({
        "projects": projects.iter().map(|p| types::project(&base, p)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("users/{id}/projects")),
    })))
}

/// Renders credentials with their role and rule details.
async fn render_app_creds(
    s: &AppState,
    user_id: &str,
    creds: &[(store::app_creds::AppCredRow, Option<String>)],
) -> Result<Vec<Value>, Error> {
    let base = base(s);
    let (roles, rules) = s.app_cred_lookups(user_id).await?;
    Ok(creds
        .iter()
        .map(|(a, secret)| types::app_cred(&base, a, &roles, &rules, secret.as_deref()))
        .collect())
}

async fn create_app_cred(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let made = s
        .create_app_cred(&caller, &id, member(body, "application_credential")?)
        .await?;
    let rendered = render_app_creds(&s, &id, &[(made.row, Some(made.secret))]).await?;
    Ok(created(json!({"application_credential": rendered[0]})))
}

async fn get_app_cred(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, ac)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let row = s.get_app_cred(&caller, &id, &ac).await?;
    let rendered = render_app_creds(&s, &id, &[(row, None)]).await?;
    Ok(Json(json!({"application_credential": rendered[0]})))
}

async fn list_app_creds(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, Error> {
    let rows = s
        .list_app_creds(&caller, &id, param(&params, "name"))
        .await?;
    let rows: Vec<_> = rows.into_iter().map(|r| (r, None)).collect();
    let rendered = render_app_creds(&s, &id, &rows).await?;
    Ok(Json(json!({
        "application_credentials": rendered,
        "links": types::collection_links(&base(&s), &format!("users/{id}/application_credentials")),
    })))
}

async fn delete_app_cred(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, ac)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_app_cred(&caller, &id, &ac).await?;
    Ok(no_content())
}

async fn list_access_rules(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let rules = s.list_access_rules(&caller, &id).await?;
    Ok(Json(json!({
        "access_rules": rules.iter().map(|r| types::access_rule(&base, r)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("users/{id}/access_rules")),
    })))
}

async fn get_access_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, rule)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let rule = s.get_access_rule(&caller, &id, &rule).await?;
    Ok(Json(
        json!({"access_rule": types::access_rule(&base(&s), &rule)}),
    ))
}

async fn delete_access_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, rule)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_access_rule(&caller, &id, &rule).await?;
    Ok(no_content())
}

fn ec2(base: &str, c: &crate::service::credentials::Ec2Credential) -> Value {
    json!({
        "user_id": c.user_id,
        "tenant_id": c.project_id,
        "access": c.access,
        "secret": c.secret,
        "trust_id": null,
        "links": {"self": format!("{base}/v3/users/{}/credentials/OS-EC2/{}", c.user_id, c.access)},
    })
}

async fn create_ec2(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let credential = s.create_ec2_credential(&caller, &id, body).await?;
    Ok(created(json!({"credential": ec2(&base(&s), &credential)})))
}

async fn list_ec2(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let credentials = s.list_ec2_credentials(&caller, &id).await?;
    Ok(Json(json!({
        "credentials": credentials.iter().map(|c| ec2(&base, c)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("users/{id}/credentials/OS-EC2")),
    })))
}

async fn get_ec2(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, access)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let credential = s.get_ec2_credential(&caller, &id, &access).await?;
    Ok(Json(json!({"credential": ec2(&base(&s), &credential)})))
}

async fn delete_ec2(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, access)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_ec2_credential(&caller, &id, &access).await?;
    Ok(no_content())
}
