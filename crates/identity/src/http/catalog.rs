//! `/v3/regions`, `/v3/services`, `/v3/endpoints`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use nubo_common::http::JsonBody;
use nubo_common::{Caller, Error};
use serde_json::{json, Value};

use super::{base, created, filters, member, no_content, AppState, Params};
use crate::types;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/regions", get(list_regions).post(create_region))
        .route(
            "/v3/regions/{id}",
            get(get_region)
                .put(create_region_with_id)
                .patch(update_region)
                .delete(delete_region),
        )
        .route("/v3/services", get(list_services).post(create_service))
        .route(
            "/v3/services/{id}",
            get(get_service)
                .patch(update_service)
                .delete(delete_service),
        )
        .route("/v3/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/v3/endpoints/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
}

async fn create_region(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let region = s
        .create_region(&caller, None, member(body, "region")?)
        .await?;
    Ok(created(
        json!({"region": types::region(&base(&s), &region)}),
    ))
}

async fn create_region_with_id(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let region = s
        .create_region(&caller, Some(&id), member(body, "region")?)
        .await?;
    Ok(created(
        json!({"region": types::region(&base(&s), &region)}),
    ))
}

async fn get_region(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let region = s.get_region(&caller, &id).await?;
    Ok(Json(json!({"region": types::region(&base(&s), &region)})))
}

async fn list_regions(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let regions = s.list_regions(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "regions": regions.iter().map(|r| types::region(&base, r)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "regions"),
    })))
}

async fn update_region(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let region = s
        .update_region(&caller, &id, member(body, "region")?)
        .await?;
    Ok(Json(json!({"region": types::region(&base(&s), &region)})))
}

async fn delete_region(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_region(&caller, &id).await?;
    Ok(no_content())
}

async fn create_service(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let service = s.create_service(&caller, member(body, "service")?).await?;
    Ok(created(
        json!({"service": types::service(&base(&s), &service)}),
    ))
}

async fn get_service(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let service = s.get_service(&caller, &id).await?;
    Ok(Json(
        json!({"service": types::service(&base(&s), &service)}),
    ))
}

async fn list_services(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let services = s.list_services(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "services": services.iter().map(|x| types::service(&base, x)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "services"),
    })))
}

async fn update_service(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let service = s
        .update_service(&caller, &id, member(body, "service")?)
        .await?;
    Ok(Json(
        json!({"service": types::service(&base(&s), &service)}),
    ))
}

async fn delete_service(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_service(&caller, &id).await?;
    Ok(no_content())
}

async fn create_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, Error> {
    let endpoint = s
        .create_endpoint(&caller, member(body, "endpoint")?)
        .await?;
    Ok(created(
        json!({"endpoint": types::endpoint(&base(&s), &endpoint)}),
    ))
}

async fn get_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let endpoint = s.get_endpoint(&caller, &id).await?;
    Ok(Json(
        json!({"endpoint": types::endpoint(&base(&s), &endpoint)}),
    ))
}

async fn list_endpoints(
    State(s): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, Error> {
    let base = base(&s);
    let endpoints = s.list_endpoints(&caller, &filters(&params, &[])).await?;
    Ok(Json(json!({
        "endpoints": endpoints.iter().map(|e| types::endpoint(&base, e)).collect::<Vec<_>>(),
        "links": types::collection_links(&base, "endpoints"),
    })))
}

async fn update_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, Error> {
    let endpoint = s
        .update_endpoint(&caller, &id, member(body, "endpoint")?)
        .await?;
    Ok(Json(
        json!({"endpoint": types::endpoint(&base(&s), &endpoint)}),
    ))
}

async fn delete_endpoint(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    s.delete_endpoint(&caller, &id).await?;
    Ok(no_content())
}
