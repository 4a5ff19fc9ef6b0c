//! `/v3/domains` and `/v3/projects` (with hierarchy views and tags).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, created, filters, flag, member, no_content, param, AppState, Params};
use crate::service::projects::TagFilters;
use crate::types;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/domains", get(list_domains).post(create_domain))
        .route(
            "/v3/domains/{id}",
            get(get_domain).patch(update_domain).delete(delete_domain),
        )
        .route("/v3/projects", get(list_projects).post(create_project))
        .route(
            "/v3/projects/{id}",
            get(get_project)
                .patch(update_project)
                .delete(delete_project),
        )
        .route(
            "/v3/projects/{id}/tags",
            get(list_tags).put(replace_tags).delete(delete_all_tags),
        )
        .route(
            "/v3/projects/{id}/tags/{tag}",
            get(check_tag).put(add_tag).delete(delete_tag),
        )
}

async fn create_domain(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let domain = s.create_domain(&caller, member(body, "domain")?).await?;
    Ok(created(
        json!({"domain": types::domain(&base(&s), &domain)}),
    ))
}

async fn get_domain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let domain = s.get_domain(&caller, &id).await?;
    Ok(Json(json!({"domain": types::domain(&base(&s), &domain)})))
}

async fn list_domains(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let domains = s.list_domains(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "domains": domains.iter().map(|d| types::domain(&base, d)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "domains"),
    })))
}

async fn update_domain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let domain = s
        .update_domain(&caller, &id, member(body, "domain")?)
        .await?;
    Ok(Json(json!({"domain": types::domain(&base(&s), &domain)})))
}

async fn delete_domain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_domain(&caller, &id).await?;
    Ok(no_content())
}

async fn create_project(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let project = s.create_project(&caller, member(body, "project")?).await?;
    Ok(created(
        json!({"project": types::project(&base(&s), &project)}),
    ))
}

async fn get_project(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let project = s.get_project(&caller, &id).await?;
    let mut body = types::project(&base, &project);
    if flag(&params, "parents_as_list") || flag(&params, "parents_as_ids") {
        let parents = s.project_parents(&id).await?;
        body["parents"] = if flag(&params, "parents_as_ids") {
            nested_ids(&parents.iter().map(|p| p.id.clone()).collect::<Vec<_>>())
        } else {
            json!(parents
                .iter()
                .map(|p| json!({"project": types::project(&base, p)}))
                .collect::<Vec<_>>())
        };
    }
    if flag(&params, "subtree_as_list") || flag(&params, "subtree_as_ids") {
        let subtree = s.project_subtree(&id).await?;
        body["subtree"] = if flag(&params, "subtree_as_ids") {
            subtree_ids(&id, &subtree)
        } else {
            json!(subtree
                .iter()
                .map(|p| json!({"project": types::project(&base, p)}))
                .collect::<Vec<_>>())
        };
    }
    Ok(Json(json!({"project": body})))
}

/// `parents_as_ids`: `{"parent": {"grandparent": null}}`.
fn nested_ids(chain: &[String]) -> Value {
    chain
        .iter()
        .rev()
        .fold(Value::Null, |inner, id| json!({ id: inner }))
}

/// `subtree_as_ids`: `{"child": {"grandchild": null}, "other": null}`.
fn subtree_ids(root: &str, subtree: &[crate::store::projects::ProjectRow]) -> Value {
    let children: Vec<_> = subtree
        .iter()
        .filter(|p| p.parent_id.as_deref() == Some(root))
        .collect();
    if children.is_empty() {
        return Value::Null;
    }
    let mut map = serde_json::Map::new();
    for child in children {
        map.insert(child.id.clone(), subtree_ids(&child.id, subtree));
    }
    Value::Object(map)
}

fn csv(params: &[(String, String)], key: &str) -> Vec<String> {
    param(params, key)
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

async fn list_projects(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let tags = TagFilters {
        tags: csv(&params, "tags"),
        tags_any: csv(&params, "tags-any"),
        not_tags: csv(&params, "not-tags"),
        not_tags_any: csv(&params, "not-tags-any"),
    };
    let projects = s
        .list_projects(
            &caller,
            &filters(&params, &["tags", "tags-any", "not-tags", "not-tags-any"]),
            &tags,
        )
        .await?;
    Ok(Json(json!({
        "projects": projects.iter().map(|p| types::project(&base, p)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "projects"),
    })))
}

async fn update_project(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let project = s
        .update_project(&caller, &id, member(body, "project")?)
        .await?;
    Ok(Json(
        json!({"project": types::project(&base(&s), &project)}),
    ))
}

async fn delete_project(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_project(&caller, &id).await?;
    Ok(no_content())
}

async fn list_tags(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"tags": s.list_project_tags(&caller, &id).await?}),
    ))
}

async fn replace_tags(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let tags = body
        .get("tags")
        .cloned()
        .ok_or_else(|| Error::bad_request("Expecting to find tags in request body."))?;
    Ok(Json(
        json!({"tags": s.replace_project_tags(&caller, &id, tags).await?}),
    ))
}

async fn delete_all_tags(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_project_tag(&caller, &id, None).await?;
    Ok(no_content())
}

async fn check_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.check_project_tag(&caller, &id, &tag).await?;
    Ok(no_content())
}

async fn add_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.add_project_tag(&caller, &id, &tag).await?;
    // Keystone answers 201 with an empty body (Tempest reads the body as raw text).
    Ok(http::StatusCode::CREATED.into_response())
}

async fn delete_tag(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_project_tag(&caller, &id, Some(&tag)).await?;
    Ok(no_content())
}
