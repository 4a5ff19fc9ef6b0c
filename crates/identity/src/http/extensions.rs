//! Keystone's extension APIs: domain configuration (`/v3/domains/{id}/config`), endpoint
//! filtering (`/v3/OS-EP-FILTER`) and OAuth1 consumers (`/v3/OS-OAUTH1/consumers`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, created, member, no_content, param, AppState, Params};
use crate::service::endpoint_filters::Association;
use crate::types;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/domains/config/default", get(default_config))
        .route("/v3/domains/config/{group}/default", get(default_group))
        .route(
            "/v3/domains/config/{group}/{option}/default",
            get(default_option),
        )
        .route(
            "/v3/domains/{id}/config",
            get(get_config)
                .put(create_config)
                .patch(update_config)
                .delete(delete_config),
        )
        .route(
            "/v3/domains/{id}/config/{group}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route(
            "/v3/domains/{id}/config/{group}/{option}",
            get(get_option).patch(update_option).delete(delete_option),
        )
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups/{id}",
            get(get_group_ep)
                .patch(update_group_ep)
                .delete(delete_group_ep),
        )
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups/{id}/endpoints",
            get(group_endpoints),
        )
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups/{id}/projects",
            get(group_projects),
        )
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups/{id}/projects/{project}",
            get(check_group_project)
                .put(add_group_project)
                .delete(remove_group_project),
        )
        .route(
            "/v3/OS-EP-FILTER/projects/{project}/endpoints",
            get(project_endpoints),
        )
        .route(
            "/v3/OS-EP-FILTER/projects/{project}/endpoints/{endpoint}",
            get(check_project_endpoint)
                .put(add_project_endpoint)
                .delete(remove_project_endpoint),
        )
        .route(
            "/v3/OS-EP-FILTER/endpoints/{endpoint}/projects",
            get(endpoint_projects),
        )
        .route(
            "/v3/OS-OAUTH1/consumers",
            get(list_consumers).post(create_consumer),
        )
        .route(
            "/v3/OS-OAUTH1/consumers/{id}",
            get(get_consumer)
                .patch(update_consumer)
                .delete(delete_consumer),
        )
}

fn config_body(body: Value) -> Result<Value, Error> {
    body.get("config")
        .cloned()
        .ok_or_else(|| Error::bad_request("Expecting to find config in request body."))
}

// ---------------------------------------------------------------- domain configuration

async fn default_config(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.default_domain_config(&caller, None, None).await?}),
    ))
}

async fn default_group(
    State(s): State<AppState>,
    caller: Caller,
    Path(group): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.default_domain_config(&caller, Some(&group), None).await?}),
    ))
}

async fn default_option(
    State(s): State<AppState>,
    caller: Caller,
    Path((group, option)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.default_domain_config(&caller, Some(&group), Some(&option)).await?}),
    ))
}

async fn create_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let (config, new) = s
        .create_domain_config(&caller, &id, &config_body(body)?)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"config": config}))).into_response())
}

async fn get_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.get_domain_config(&caller, &id, None, None).await?}),
    ))
}

async fn update_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.update_domain_config(&caller, &id, None, None, &config_body(body)?).await?}),
    ))
}

async fn delete_config(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_domain_config(&caller, &id, None, None).await?;
    Ok(no_content())
}

async fn get_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, group)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.get_domain_config(&caller, &id, Some(&group), None).await?}),
    ))
}

async fn update_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, group)): Path<(String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.update_domain_config(&caller, &id, Some(&group), None, &config_body(body)?).await?}),
    ))
}

async fn delete_group(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, group)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.delete_domain_config(&caller, &id, Some(&group), None)
        .await?;
    Ok(no_content())
}

async fn get_option(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, group, option)): Path<(String, String, String)>,
) -> Result<Json<Value>, Error> {
    Ok(Json(
        json!({"config": s.get_domain_config(&caller, &id, Some(&group), Some(&option)).await?}),
    ))
}

async fn update_option(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, group, option)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let config = config_body(body)?;
    Ok(Json(
        json!({"config": s.update_domain_config(&caller, &id, Some(&group), Some(&option), &config).await?}),
    ))
}

async fn delete_option(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, group, option)): Path<(String, String, String)>,
) -> Result<Response, Error> {
    s.delete_domain_config(&caller, &id, Some(&group), Some(&option))
        .await?;
    Ok(no_content())
}

// ---------------------------------------------------------------- endpoint filtering

fn endpoint_group(base: &str, g: &crate::store::endpoint_filters::EndpointGroupRow) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "filters": g.filters,
        "links": {"self": format!("{base}/v3/OS-EP-FILTER/endpoint_groups/{}", g.id)},
    })
}

async fn create_group(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let group = s
        .create_endpoint_group(&caller, member(body, "endpoint_group")?)
        .await?;
    Ok(created(
        json!({"endpoint_group": endpoint_group(&base(&s), &group)}),
    ))
}

async fn list_groups(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let groups = s
        .list_endpoint_groups(&caller, param(&params, "name"))
        .await?;
    Ok(Json(json!({
        "endpoint_groups": groups.iter().map(|g| endpoint_group(&base, g)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "OS-EP-FILTER/endpoint_groups"),
    })))
}

async fn get_group_ep(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let group = s.get_endpoint_group(&caller, &id).await?;
    Ok(Json(
        json!({"endpoint_group": endpoint_group(&base(&s), &group)}),
    ))
}

async fn update_group_ep(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let group = s
        .update_endpoint_group(&caller, &id, member(body, "endpoint_group")?)
        .await?;
    Ok(Json(
        json!({"endpoint_group": endpoint_group(&base(&s), &group)}),
    ))
}

async fn delete_group_ep(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_endpoint_group(&caller, &id).await?;
    Ok(no_content())
}

async fn group_endpoints(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let endpoints = s.endpoint_group_endpoints(&caller, &id).await?;
    Ok(Json(json!({
        "endpoints": endpoints.iter().map(|e| types::endpoint(&base, e)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("OS-EP-FILTER/endpoint_groups/{id}/endpoints")),
    })))
}

async fn group_projects(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let projects = s
        .projects_for_endpoint_filter(&caller, None, Some(&id))
        .await?;
    Ok(Json(json!({
        "projects": projects.iter().map(|p| types::project(&base, p)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("OS-EP-FILTER/endpoint_groups/{id}/projects")),
    })))
}

async fn check_group_project(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, project)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.endpoint_group_project(&caller, &id, &project, Association::Check)
        .await?;
    Ok(no_content())
}

async fn add_group_project(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, project)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.endpoint_group_project(&caller, &id, &project, Association::Add)
        .await?;
    Ok(no_content())
}

async fn remove_group_project(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, project)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.endpoint_group_project(&caller, &id, &project, Association::Remove)
        .await?;
    Ok(no_content())
}

async fn project_endpoints(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let endpoints = s.project_endpoints(&caller, &project).await?;
    Ok(Json(json!({
        "endpoints": endpoints.iter().map(|e| types::endpoint(&base, e)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("OS-EP-FILTER/projects/{project}/endpoints")),
    })))
}

async fn check_project_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    Path((project, endpoint)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.endpoint_project(&caller, &endpoint, &project, Association::Check)
        .await?;
    Ok(no_content())
}

async fn add_project_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    Path((project, endpoint)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.endpoint_project(&caller, &endpoint, &project, Association::Add)
        .await?;
    Ok(no_content())
}

async fn remove_project_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    Path((project, endpoint)): Path<(String, String)>,
) -> Result<Response, Error> {
    s.endpoint_project(&caller, &endpoint, &project, Association::Remove)
        .await?;
    Ok(no_content())
}

async fn endpoint_projects(
    State(s): State<AppState>,
    caller: Caller,
    Path(endpoint): Path<String>,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let projects = s
        .projects_for_endpoint_filter(&caller, Some(&endpoint), None)
        .await?;
    Ok(Json(json!({
        "projects": projects.iter().map(|p| types::project(&base, p)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, &format!("OS-EP-FILTER/endpoints/{endpoint}/projects")),
    })))
}

// ---------------------------------------------------------------- OAuth1 consumers

fn consumer(base: &str, c: &crate::store::consumers::ConsumerRow, secret: Option<&str>) -> Value {
    let mut out = json!({
        "id": c.id,
        "description": c.description,
        "links": {"self": format!("{base}/v3/OS-OAUTH1/consumers/{}", c.id)},
    });
    if let Some(secret) = secret {
        out["secret"] = json!(secret);
    }
    out
}

async fn create_consumer(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let (row, secret) = s
        .create_consumer(&caller, member(body, "consumer")?)
        .await?;
    Ok(created(
        json!({"consumer": consumer(&base(&s), &row, Some(&secret))}),
    ))
}

async fn list_consumers(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let rows = s.list_consumers(&caller).await?;
    Ok(Json(json!({
        "consumers": rows.iter().map(|c| consumer(&base, c, None)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "OS-OAUTH1/consumers"),
    })))
}

async fn get_consumer(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let row = s.get_consumer(&caller, &id).await?;
    Ok(Json(json!({"consumer": consumer(&base(&s), &row, None)})))
}

async fn update_consumer(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let row = s
        .update_consumer(&caller, &id, member(body, "consumer")?)
        .await?;
    Ok(Json(json!({"consumer": consumer(&base(&s), &row, None)})))
}

async fn delete_consumer(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_consumer(&caller, &id).await?;
    Ok(no_content())
}
